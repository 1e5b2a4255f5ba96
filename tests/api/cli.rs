//! The `glue` binary's commands against a real database.

use std::process::Output;

use crate::backends;
use crate::helpers::*;

fn glue(db: &TestDatabase, args: &[&str], stdin: Option<&str>) -> Output {
    glue_in("test", db, args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn assert_fails_with(output: &Output, message: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(message),
        "expected {message:?} in {stderr:?}"
    );
}

async fn agent_commands_manage_agents_that_can_log_in(backend: Backend) {
    let db = TestDatabase::create(backend);
    assert_ok(&glue(&db, &["migrate"], None));
    let create = [
        "agent",
        "create",
        "--username",
        "cli@example.com",
        "--first-name",
        "Cli",
        "--last-name",
        "Agent",
        "--password-stdin",
    ];
    let output = glue(&db, &create, Some("s3cret pass\n"));
    assert_ok(&output);
    assert!(text(&output.stdout).contains("created agent cli@example.com"));
    // Duplicate username.
    assert_fails_with(&glue(&db, &create, Some("other-pass\n")), "already exists");
    // Empty password, and no password source at all.
    let create_other = [
        "agent",
        "create",
        "--username",
        "other@example.com",
        "--first-name",
        "O",
        "--last-name",
        "A",
        "--password-stdin",
    ];
    assert_fails_with(&glue(&db, &create_other, Some("\n")), "must not be empty");
    assert_fails_with(&glue(&db, &create_other[..8], None), "--password-stdin");
    // Shorter than oauth.password_min_length (8 here).
    assert_fails_with(
        &glue(&db, &create_other, Some("seven77\n")),
        "at least 8 characters",
    );

    // Written as Spryker's back office would: status 0, is_agent, a `$2y$` hash, and on
    // PostgreSQL an id drawn from Propel's sequence.
    let created = glue::agent::find_by_username(&mut db.connect(), "cli@example.com")
        .unwrap()
        .unwrap();
    assert_eq!(created.status, glue::agent::STATUS_ACTIVE);
    assert_eq!(created.is_agent, Some(true));
    assert!(created.password.starts_with("$2y$"), "{}", created.password);
    if backend == Backend::Postgres {
        use diesel::prelude::*;
        let mut pg = diesel::PgConnection::establish(&db.url).unwrap();
        let last: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT last_value FROM spy_user_pk_seq)",
        ))
        .get_result(&mut pg)
        .unwrap();
        // The seeded demo agent drew 1, this agent 2; the refused duplicate drew one more
        // (sequences are not transactional, as in Propel).
        assert_eq!(created.id_user, 2);
        assert_eq!(last, 3);
    }

    let db = std::sync::Arc::new(db);
    let app = start(test_settings(&db.url), db.clone()).unwrap();
    assert_eq!(
        app.post_agent_login("cli@example.com", "s3cret pass")
            .await
            .status(),
        201
    );
    // The line ending is not part of the password.
    assert_eq!(
        app.post_agent_login("cli@example.com", "s3cret pass\n")
            .await
            .status(),
        401
    );

    assert_ok(&glue(
        &db,
        &["agent", "deactivate", "--username", "cli@example.com"],
        None,
    ));
    assert_eq!(
        app.post_agent_login("cli@example.com", "s3cret pass")
            .await
            .status(),
        401
    );
    assert_ok(&glue(
        &db,
        &["agent", "activate", "--username", "cli@example.com"],
        None,
    ));
    assert_eq!(
        app.post_agent_login("cli@example.com", "s3cret pass")
            .await
            .status(),
        201
    );

    let set = [
        "agent",
        "set-password",
        "--username",
        "cli@example.com",
        "--password-stdin",
    ];
    assert_ok(&glue(&db, &set, Some("new-pass\r\n")));
    assert_eq!(
        app.post_agent_login("cli@example.com", "s3cret pass")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post_agent_login("cli@example.com", "new-pass")
            .await
            .status(),
        201
    );
    assert_fails_with(&glue(&db, &set, Some("\n")), "must not be empty");
    assert_fails_with(
        &glue(&db, &set, Some(&format!("{}\n", "x".repeat(73)))),
        "at most 72 bytes",
    );

    for args in [
        &["agent", "deactivate", "--username", "ghost@example.com"][..],
        &["agent", "activate", "--username", "ghost@example.com"][..],
        &[
            "agent",
            "set-password",
            "--username",
            "ghost@example.com",
            "--password-stdin",
        ][..],
    ] {
        assert_fails_with(&glue(&db, args, Some("pw\n")), "no agent with username");
    }
}

backends!(agent_commands_manage_agents_that_can_log_in);

#[test]
fn keys_generate_writes_a_usable_pair_and_never_overwrites() {
    let db = TestDatabase::create(Backend::Sqlite);
    let dir = std::env::temp_dir().join(format!("glue-keys-{}", uuid::Uuid::new_v4().simple()));
    let out = dir.display().to_string();
    assert_ok(&glue(&db, &["keys", "generate", "--out", &out], None));
    let private = std::fs::read(dir.join("private.pem")).unwrap();
    let public = std::fs::read(dir.join("public.pem")).unwrap();
    assert!(String::from_utf8_lossy(&private).starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("private.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The pair loads as signing key + verification key.
    let keys =
        glue::oauth::keys::KeySet::from_pems(&private, &[("public.pem".into(), public)]).unwrap();
    assert_eq!(
        keys.verification.len(),
        1,
        "the public key is the signing key's own"
    );
    glue::oauth::jwt::self_test(&keys).unwrap();
    assert_fails_with(
        &glue(&db, &["keys", "generate", "--out", &out], None),
        "file exists",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_setting_stops_startup_naming_the_key() {
    let db = TestDatabase::create(Backend::Sqlite);
    let migrate = |environment: &str, env: &[(&str, &str)]| {
        glue_with_env(environment, &db, env, &["migrate"], None)
    };
    let output = migrate("test", &[("GLUE__SERVER__PORT", "not-a-port")]);
    assert_fails_with(&output, "server.port");
    let output = migrate("test", &[("GLUE__OAUTH__BCRYPT_COST", "99")]);
    assert_fails_with(&output, "oauth.bcrypt_cost");
    let output = migrate("staging", &[]);
    assert_fails_with(&output, "GLUE_ENV");
}

/// `glue bcrypt kernels` measures every SIMD kernel this CPU runs and the scalar one at the
/// configured cost, each in processes of its own, and names the fastest for
/// `oauth.bcrypt_simd`.
#[test]
fn bcrypt_kernels_measures_each_kernel_this_cpu_runs_and_names_the_fastest() {
    let db = TestDatabase::create(Backend::Sqlite);
    let kernels = |args: &[&str]| {
        let mut all = vec!["bcrypt", "kernels"];
        all.extend(args);
        glue_with_env(
            "test",
            &db,
            &[("GLUE__OAUTH__BCRYPT_COST", "5")],
            &all,
            None,
        )
    };
    let output = kernels(&["--seconds", "0.6"]);
    assert_ok(&output);
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("bcrypt verifications per second at cost 5 on one core"),
        "{stdout}"
    );
    let rows: Vec<(String, usize, f64)> = stdout
        .lines()
        .skip(2)
        .take_while(|line| !line.starts_with("fastest: "))
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells.len(), 5, "{line}");
            (
                cells[0].to_string(),
                cells[1].parse().unwrap(),
                cells[2].parse().unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<(String, usize)> = glue::settings::BcryptSimd::available()
        .iter()
        .map(|b| (b.name().to_string(), b.lanes()))
        .collect();
    expected.push(("scalar".into(), 1));
    assert_eq!(
        rows.iter()
            .map(|(name, lanes, _)| (name.clone(), *lanes))
            .collect::<Vec<_>>(),
        expected,
        "{stdout}"
    );
    assert!(rows.iter().all(|(_, _, rate)| *rate > 0.0), "{stdout}");
    let fastest = rows
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(name, _, _)| name.as_str())
        .unwrap();
    let verdict = stdout.lines().last().unwrap();
    assert!(
        verdict.starts_with(&format!("fastest: {fastest}.")),
        "{stdout}"
    );
    if fastest != "scalar" {
        assert!(
            verdict.contains(&format!("oauth.bcrypt_simd = \"{fastest}\"")),
            "{stdout}"
        );
    }
    for bad in ["0", "0.09", "1e-10", "-1", "NaN", "inf", "601"] {
        assert_fails_with(&kernels(&[&format!("--seconds={bad}")]), "--seconds");
    }
}

#[test]
fn production_refuses_a_low_bcrypt_cost_and_a_missing_key() {
    let db = TestDatabase::create(Backend::Sqlite);
    let serve = |env: &[(&str, &str)]| glue_with_env("production", &db, env, &["serve"], None);
    assert_fails_with(
        &serve(&[("GLUE__OAUTH__BCRYPT_COST", "9")]),
        "oauth.bcrypt_cost",
    );
    assert_fails_with(&serve(&[("GLUE__SERVER__PORT", "0")]), "no signing key");
}

#[tokio::test]
async fn production_refuses_to_start_while_the_demo_agent_has_the_demo_password() {
    let db = std::sync::Arc::new(TestDatabase::create(Backend::Sqlite));
    let mut settings = test_settings(&db.url);
    settings.environment = glue::settings::Environment::Production;
    settings.oauth.bcrypt_cost = 10;
    let error = start(settings.clone(), db.clone()).err().expect("refused");
    assert!(error.contains("demo agent"), "{error}");

    let set = [
        "agent",
        "set-password",
        "--username",
        DEMO_USERNAME,
        "--password-stdin",
    ];
    assert_ok(&glue(&db, &set, Some("a-real-password\n")));
    let app = start(settings.clone(), db.clone()).expect("starts once the password changed");
    assert_eq!(
        app.post_agent_login(DEMO_USERNAME, "a-real-password")
            .await
            .status(),
        201
    );
    drop(app);

    // Deactivating the demo agent also satisfies the guard.
    assert_ok(&glue(&db, &set, Some(&format!("{DEMO_PASSWORD}\n"))));
    assert!(start(settings.clone(), db.clone()).is_err());
    assert_ok(&glue(
        &db,
        &["agent", "deactivate", "--username", DEMO_USERNAME],
        None,
    ));
    assert!(start(settings, db).is_ok());
}

#[test]
fn production_cli_refuses_the_demo_credential_and_short_passwords() {
    let db = TestDatabase::create(Backend::Sqlite);
    let set = [
        "agent",
        "set-password",
        "--username",
        DEMO_USERNAME,
        "--password-stdin",
    ];
    // Production's minimum is 12 characters; the demo password is shorter anyway.
    assert_fails_with(
        &glue_in("production", &db, &set, Some(&format!("{DEMO_PASSWORD}\n"))),
        "at least 12 characters",
    );
    assert_fails_with(
        &glue_in("production", &db, &set, Some("eleven-char\n")),
        "at least 12 characters",
    );
    // An agent that still has the demo password is not activated in production...
    assert_ok(&glue(
        &db,
        &["agent", "deactivate", "--username", DEMO_USERNAME],
        None,
    ));
    assert_fails_with(
        &glue_in(
            "production",
            &db,
            &["agent", "activate", "--username", DEMO_USERNAME],
            None,
        ),
        "demo password",
    );
    // ... until it has another one.
    assert_ok(&glue_in(
        "production",
        &db,
        &set,
        Some("a-long-real-password\n"),
    ));
    assert_ok(&glue_in(
        "production",
        &db,
        &["agent", "activate", "--username", DEMO_USERNAME],
        None,
    ));
}

async fn customer_create_makes_searchable_customers_who_can_log_in(backend: Backend) {
    let db = TestDatabase::create(backend);
    let create = |email: &str, reference: Option<&str>, stdin: Option<&str>| {
        let mut args = vec![
            "customer",
            "create",
            "--email",
            email,
            "--first-name",
            "Grace",
            "--last-name",
            "Hopper",
        ];
        if let Some(r) = reference {
            args.extend(["--customer-reference", r]);
        }
        if stdin.is_some() {
            args.push("--password-stdin");
        }
        glue(&db, &args, stdin)
    };
    // The demo data holds DE--1 … DE--6: the next generated reference is DE--7.
    let output = create("grace@example.com", None, Some("grace-pass\n"));
    assert_ok(&output);
    assert!(
        text(&output.stdout).contains("created customer DE--7"),
        "{}",
        text(&output.stdout)
    );
    assert_ok(&create("no-password@example.com", Some("EXT-42"), None));
    assert_fails_with(&create("GRACE@example.com", None, None), "already exists");
    assert_fails_with(
        &create("other@example.com", Some("EXT-42"), None),
        "already exists",
    );
    assert_fails_with(
        &create("not-an-email", None, None),
        "not a valid email address",
    );
    assert_fails_with(
        &create("empty@example.com", None, Some("\n")),
        "must not be empty",
    );

    let db = std::sync::Arc::new(db);
    let app = start(test_settings(&db.url), db.clone()).unwrap();
    for (email, password, status) in [
        ("grace@example.com", "grace-pass", 201),
        ("no-password@example.com", "", 422),
        ("no-password@example.com", "anything", 401),
    ] {
        let response = app
            .customer_login(&serde_json::json!(email), &serde_json::json!(password))
            .await;
        assert_eq!(response.status(), status, "{email}");
    }
    let (agent, _) = app.agent_session("cli-agent@example.com").await;
    let body: serde_json::Value = app.search("q=grace", &agent).await.json().await.unwrap();
    let references: Vec<&str> = body["data"][0]["attributes"]["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customerReference"].as_str().unwrap())
        .collect();
    assert_eq!(references, ["DE--7", "EXT-42"]);
}

backends!(customer_create_makes_searchable_customers_who_can_log_in);

#[test]
fn an_unknown_database_url_is_refused_naming_the_accepted_forms() {
    let dir = std::env::temp_dir().join(format!("glue-url-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |url: &str, args: &[&str]| {
        glue_command("test", url, &[], args)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    for url in [
        "redis://127.0.0.1/0",
        "mariadb://root@localhost/shop",
        "postgres:/x",
    ] {
        for args in [
            &["migrate"][..],
            &["serve"][..],
            &["tokens", "purge-expired"][..],
        ] {
            let output = run(url, args);
            assert_eq!(output.status.code(), Some(1), "{url} {args:?}");
            let stderr = text(&output.stderr);
            for form in ["sqlite://", "postgres://", "mysql://"] {
                assert!(stderr.contains(form), "{url}: {stderr}");
            }
        }
    }
    #[cfg(not(feature = "mysql"))]
    {
        let output = run("mysql://root@127.0.0.1:3306/shop", &["migrate"]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains("--features mysql"),
            "{}",
            text(&output.stderr)
        );
    }
    // Nothing was taken for an SQLite file name.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unknown_setting_stops_every_command_naming_it() {
    let db = TestDatabase::create(Backend::Sqlite);
    let run = |args: &[&str], env: &[(&str, &str)]| glue_with_env("test", &db, env, args, None);
    let typo = run(&["serve"], &[("GLUE__SERVR__PORT", "1")]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        text(&typo.stderr).contains("unknown field `servr`"),
        "{}",
        text(&typo.stderr)
    );
    let nested = run(&["migrate"], &[("GLUE__OAUTH__CLIENT_IDD", "x")]);
    assert_eq!(nested.status.code(), Some(1));
    assert!(text(&nested.stderr).contains("unknown field `client_idd`"));
    let file = std::env::temp_dir().join(format!("glue-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, "[security_blocker.agent]\nattempt = 3\n").unwrap();
    let in_file = run(
        &["migrate"],
        &[("GLUE_CONFIG_FILE", file.to_str().unwrap())],
    );
    assert_eq!(in_file.status.code(), Some(1));
    assert!(text(&in_file.stderr).contains("unknown field `attempt`"));
    std::fs::remove_file(file).unwrap();
}

#[test]
fn config_show_prints_the_effective_settings_with_secrets_redacted() {
    let db = TestDatabase::create(Backend::Sqlite);
    let output = glue_command(
        "test",
        "postgres://glue:s3cret-pw@127.0.0.1/glue",
        &[
            ("GLUE__OAUTH__PRIVATE_KEY_PEM", test_private_key()),
            ("GLUE__SECURITY_BLOCKER__AGENT__ATTEMPTS", "7"),
        ],
        &["config", "show"],
    )
    .output()
    .unwrap();
    assert_ok(&output);
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["environment"], "test");
    assert_eq!(shown["database"]["url"], "[redacted]");
    assert_eq!(shown["oauth"]["private_key_pem"], "[redacted]");
    assert_eq!(shown["security_blocker"]["agent"]["attempts"], 7);
    let printed = text(&output.stdout);
    assert!(!printed.contains("s3cret-pw") && !printed.contains("PRIVATE KEY"));
    drop(db);
}

#[tokio::test]
async fn serve_takes_host_port_and_config_overrides() {
    let db = TestDatabase::create(Backend::Sqlite);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = std::env::temp_dir().join(format!("glue-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, "[glue]\nlocale = \"de_DE\"\n").unwrap();
    let port_text = port.to_string();
    let mut child = glue_command(
        "test",
        &db.url,
        &[("GLUE__OAUTH__PRIVATE_KEY_PEM", test_private_key())],
        &["serve", "--host", "127.0.0.1", "--port", &port_text],
    )
    .args(["--config", file.to_str().unwrap()])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let response = loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            break response;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-language"], "de_DE");
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_file(file).unwrap();
}

#[test]
fn agent_list_shows_every_agent_with_its_status() {
    let db = TestDatabase::create(Backend::Sqlite);
    let create = [
        "agent",
        "create",
        "--username",
        "listed@example.com",
        "--first-name",
        "Lis",
        "--last-name",
        "Ted",
        "--password-stdin",
    ];
    assert_ok(&glue(&db, &create, Some("a-good-password\n")));
    assert_ok(&glue(
        &db,
        &["agent", "deactivate", "--username", "listed@example.com"],
        None,
    ));
    let table = glue(&db, &["agent", "list"], None);
    assert_ok(&table);
    let lines: Vec<String> = text(&table.stdout).lines().map(String::from).collect();
    assert!(lines[0].starts_with("ID  USERNAME"), "{lines:?}");
    assert!(lines
        .iter()
        .any(|l| l.contains("admin@spryker.com") && l.contains("active")));
    assert!(lines.iter().any(|l| l.contains("listed@example.com")
        && l.contains("Lis Ted")
        && l.contains("blocked")
        && l.contains("never")));
    let json = glue(&db, &["agent", "list", "--json"], None);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows[1]["username"], "listed@example.com");
    assert_eq!(rows[1]["status"], "blocked");
    assert_eq!(rows[1]["last_login"], serde_json::Value::Null);
}

/// A password with a NUL byte is refused with the reason (bcrypt implementations differ at it:
/// `("change123\0" × 8)[:72]` verified as `change123` by bcrypt's key cycling); production
/// refuses the demo password however it is spelt, by verification.
#[test]
fn passwords_with_nul_bytes_and_the_demo_password_in_production_are_refused() {
    let db = TestDatabase::create(Backend::Sqlite);
    let set = [
        "agent",
        "set-password",
        "--username",
        "admin@spryker.com",
        "--password-stdin",
    ];
    let cycled: String = "change123\0".repeat(8).chars().take(72).collect();
    assert_fails_with(&glue(&db, &set, Some(&format!("{cycled}\n"))), "NUL");
    let production = |password: &str| {
        glue_with_env("production", &db, &[], &set, Some(&format!("{password}\n")))
    };
    // Refused for its length first (production asks for 12 characters); its NUL-cycled form
    // for the NUL; and were both allowed, the check by verification would refuse it.
    assert_eq!(production("change123").status.code(), Some(1));
    assert_fails_with(&production(&cycled), "NUL");
    assert_ok(&production("a-better-password-for-production"));
}

/// A `GLUE_…` variable that is neither a setting (`GLUE__SECTION__KEY`) nor one of the
/// project's own is refused, naming it: a misspelt setting is never silently ignored.
#[test]
fn a_misspelt_glue_variable_is_refused_naming_it() {
    let db = TestDatabase::create(Backend::Sqlite);
    for (name, value) in [
        ("GLUE_OAUTH__REFRESH_REUSE_GRACE_S", "5"),
        ("GLUE_DATABASE_SCHEMA_OWNER", "spryker"),
    ] {
        let output = glue_with_env("test", &db, &[(name, value)], &["config", "show"], None);
        assert_fails_with(&output, name);
        assert_fails_with(&output, "GLUE__SECTION__KEY");
    }
    assert_ok(&glue_with_env(
        "test",
        &db,
        &[("GLUE_LOG_FORMAT", "json")],
        &["config", "show"],
        None,
    ));
}

/// Production refuses settings that turn its protections off or stretch them past sense,
/// naming the setting and the bound; and a verification key shorter than 2048 bits.
#[test]
fn production_refuses_weakened_protections() {
    let db = TestDatabase::create(Backend::Sqlite);
    for (name, value, setting) in [
        (
            "GLUE__SECURITY_BLOCKER__ENABLED",
            "false",
            "security_blocker.enabled",
        ),
        (
            "GLUE__OAUTH__BCRYPT_PAD_TO_STORED_COST",
            "false",
            "oauth.bcrypt_pad_to_stored_cost",
        ),
        ("GLUE__OAUTH__LEEWAY_S", "315360000", "oauth.leeway_s"),
        (
            "GLUE__OAUTH__BCRYPT_QUEUE_DEPTH",
            "1000000",
            "oauth.bcrypt_queue_depth",
        ),
    ] {
        let output = glue_with_env(
            "production",
            &db,
            &[(name, value)],
            &["config", "show"],
            None,
        );
        assert_fails_with(&output, setting);
    }
    let dir = std::env::temp_dir().join(format!("glue-short-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("short.pem");
    let public = dir.join("short.pub.pem");
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&["genrsa", "-out", private.to_str().unwrap(), "1024"]);
    openssl(&[
        "rsa",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let output = glue_with_env(
        "production",
        &db,
        &[
            ("GLUE__OAUTH__PRIVATE_KEY_PEM", test_private_key()),
            (
                "GLUE__OAUTH__VERIFICATION_KEY_PATHS",
                public.to_str().unwrap(),
            ),
            ("GLUE__SERVER__PORT", "0"),
        ],
        &["serve"],
        None,
    );
    assert_fails_with(&output, "oauth.verification_key_paths");
    assert_fails_with(&output, "1024 bits; at least 2048");
    let _ = std::fs::remove_dir_all(dir);
}

/// `agent list` shows `last_login` — the shop's wall-clock time (`database.timezone`) — with its
/// real zone, and as RFC 3339 with the offset in JSON.
#[tokio::test]
async fn agent_list_shows_last_login_in_its_real_zone() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.database.timezone = "Europe/Berlin".into()
    });
    assert_eq!(
        app.agent_login_status(DEMO_USERNAME, DEMO_PASSWORD).await,
        201
    );
    let berlin = [("GLUE__DATABASE__TIMEZONE", "Europe/Berlin")];
    let table = glue_with_env("test", &app.db, &berlin, &["agent", "list"], None);
    assert_ok(&table);
    let line = text(&table.stdout)
        .lines()
        .find(|l| l.contains(DEMO_USERNAME))
        .unwrap()
        .to_string();
    assert!(line.ends_with("Europe/Berlin"), "{line}");
    assert!(!line.contains("UTC"), "{line}");
    let json = glue_with_env("test", &app.db, &berlin, &["agent", "list", "--json"], None);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let shown = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["username"] == DEMO_USERNAME)
        .unwrap()["last_login"]
        .as_str()
        .unwrap()
        .to_string();
    let at = chrono::DateTime::parse_from_rfc3339(&shown).unwrap();
    let off = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
        .num_seconds()
        .abs();
    assert!(
        off < 300,
        "{shown} is the login time, in its zone ({off} s off)"
    );
}

/// Errors in the user's words: a wrong value names the setting, the value and the accepted
/// ones; a misspelt variable is named as the user set it; an unreadable key names its setting.
#[test]
fn configuration_errors_name_what_the_user_set() {
    let db = TestDatabase::create(Backend::Sqlite);
    let show = |env: &[(&str, &str)]| glue_with_env("test", &db, env, &["config", "show"], None);
    let wrong = show(&[("GLUE__DATABASE__SCHEMA_OWNER", "Spryker")]);
    assert_fails_with(&wrong, r#""Spryker" is not one of "glue", "spryker""#);
    assert_fails_with(&wrong, "schema_owner");
    let misspelt = show(&[("GLUE__DATABSE__SCHEMA_OWNER", "spryker")]);
    assert_fails_with(&misspelt, "GLUE__DATABSE__SCHEMA_OWNER");
    let missing = glue_with_env(
        "test",
        &db,
        &[
            ("GLUE__OAUTH__PRIVATE_KEY_PEM", ""),
            ("GLUE__OAUTH__PRIVATE_KEY_PATH", "/nonexistent/private.pem"),
            ("GLUE__SERVER__PORT", "0"),
        ],
        &["serve"],
        None,
    );
    assert_fails_with(
        &missing,
        "oauth.private_key_path: cannot read /nonexistent/private.pem",
    );
}

/// A refused start leaves nothing behind: development's key pair is not written when the
/// database is refused first.
#[test]
fn a_refused_start_writes_no_development_key() {
    let dir = std::env::temp_dir().join(format!("glue-leftover-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("glue.sqlite3").display());
    let output = glue_command(
        "development",
        &url,
        &[
            ("GLUE__DATABASE__SCHEMA_OWNER", "spryker"),
            ("GLUE__SERVER__PORT", "0"),
        ],
        &["serve"],
    )
    .current_dir(&dir)
    .output()
    .unwrap();
    assert_fails_with(&output, "SQLite");
    assert!(!dir.join("var/keys").exists(), "a key was written");
    let _ = std::fs::remove_dir_all(dir);
}

/// `config show` prints the schema glue's tables are in as resolved, and a reader that closes
/// the pipe early (`glue config show | head -1`) is no error.
#[test]
fn config_show_resolves_the_glue_schema_and_survives_a_closed_pipe() {
    let output = glue_command(
        "test",
        "postgres://glue:pw@127.0.0.1:1/shop",
        &[("GLUE__DATABASE__SCHEMA_OWNER", "spryker")],
        &["config", "show"],
    )
    .output()
    .unwrap();
    assert_ok(&output);
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["database"]["glue_schema"], "glue");
    let mut child = glue_command("test", "sqlite://never.db", &[], &["config", "show"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

/// `database.startup_wait_s`: a database that does not answer is waited for, once said in the
/// log, up to the bound; then start-up stops with the database's error.
#[test]
fn start_up_waits_for_the_database_up_to_the_bound() {
    let started = std::time::Instant::now();
    let output = glue_command(
        "test",
        "postgres://postgres@127.0.0.1:1/nowhere",
        &[
            ("GLUE__DATABASE__STARTUP_WAIT_S", "2"),
            ("GLUE__DATABASE__CONNECT_TIMEOUT_MS", "200"),
            ("GLUE__OAUTH__PRIVATE_KEY_PEM", test_private_key()),
            ("GLUE__SERVER__PORT", "0"),
        ],
        &["serve"],
    )
    .output()
    .unwrap();
    let waited = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr.matches("waiting up to 2 s for the database").count(),
        1,
        "{stderr}"
    );
    assert!(waited >= std::time::Duration::from_secs(2), "{waited:?}");
}

/// The seed of one agent as a site migration would write it on `backend`, with `hash`.
fn seed_agent_sql(backend: Backend, username: &str, hash: &str) -> String {
    match backend {
        Backend::Postgres => format!(
            "INSERT INTO spy_user (id_user, first_name, last_name, username, password, status, is_agent, created_at, updated_at)\n\
             VALUES (nextval('spy_user_pk_seq'), 'Site', 'Agent', '{username}', '{hash}', 0, true, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc');\n"
        ),
        Backend::Mysql => format!(
            "INSERT INTO spy_user (first_name, last_name, username, password, status, is_agent, created_at, updated_at)\n\
             VALUES ('Site', 'Agent', '{username}', '{hash}', 0, 1, UTC_TIMESTAMP(), UTC_TIMESTAMP());\n"
        ),
        Backend::Sqlite => format!(
            "INSERT INTO spy_user (first_name, last_name, username, password, status, is_agent, created_at, updated_at)\n\
             VALUES ('Site', 'Agent', '{username}', '{hash}', 0, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);\n"
        ),
    }
}

fn engine_folder(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
        Backend::Mysql => "mysql",
    }
}

/// `database.site_migrations_path`: a deployment seeds its agents in its own migrations, applied
/// after glue's by `glue migrate` and at start-up, once; a broken file stops with its name and
/// changes nothing; a version in glue's range is refused; `glue agent hash-password` makes the
/// hash without a database.
async fn site_migrations_seed_agents_that_log_in(backend: Backend) {
    // hash-password: no database (the URL points nowhere), the password's rules, never echoed.
    let nowhere = "postgres://nobody@127.0.0.1:1/nothing";
    let hash_it = |stdin: &str| {
        let mut child = glue_command(
            "test",
            nowhere,
            &[],
            &["agent", "hash-password", "--password-stdin"],
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let output = hash_it("site pass 1\n");
    assert_ok(&output);
    let hash = text(&output.stdout).trim().to_string();
    assert!(hash.starts_with("$2y$"), "{hash}");
    assert!(bcrypt::verify("site pass 1", &hash).unwrap());
    assert!(!text(&output.stdout).contains("site pass"));
    assert!(!text(&output.stderr).contains("site pass"));
    assert_fails_with(&hash_it("seven77\n"), "at least 8 characters");
    assert_fails_with(&hash_it("\n"), "must not be empty");

    let dir = std::env::temp_dir().join(format!("glue-site-{}", uuid::Uuid::new_v4().simple()));
    let engine = dir.join(engine_folder(backend));
    let write = |name: &str, sql: &str| {
        std::fs::create_dir_all(engine.join(name)).unwrap();
        std::fs::write(engine.join(name).join("up.sql"), sql).unwrap();
    };
    write(
        "2026-12-06-120000_seed_agents",
        &seed_agent_sql(backend, "site@example.com", &hash),
    );
    let site = dir.display().to_string();
    let env = [("GLUE__DATABASE__SITE_MIGRATIONS_PATH", site.as_str())];

    let db = TestDatabase::create(backend);
    let first = glue_with_env("test", &db, &env, &["migrate"], None);
    assert_ok(&first);
    let glue_only = TestDatabase::create(backend);
    let applied_by_glue = glue(&glue_only, &["migrate"], None);
    assert_ok(&applied_by_glue);
    let count = |output: &Output| {
        text(&output.stdout)
            .trim()
            .strip_prefix("applied ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{}", text(&output.stdout)))
    };
    assert_eq!(count(&first), count(&applied_by_glue) + 1);
    // Applied once: a second run, and a start-up, apply nothing more.
    assert_eq!(
        count(&glue_with_env("test", &db, &env, &["migrate"], None)),
        0
    );

    // A broken file stops `migrate` with its name, and changes nothing (its first statement
    // is rolled back with it); fixed, it applies.
    write(
        "2026-12-06-130000_broken",
        &format!(
            "{}INSERT INTO no_such_table VALUES (1);\n",
            seed_agent_sql(backend, "broken@example.com", &hash)
        ),
    );
    let broken = glue_with_env("test", &db, &env, &["migrate"], None);
    assert_fails_with(&broken, "2026-12-06-130000_broken/up.sql");
    assert!(
        glue::agent::find_by_username(&mut db.connect(), "broken@example.com")
            .unwrap()
            .is_none()
    );
    assert_fails_with(
        &glue_with_env("test", &db, &env, &["migrate"], None),
        "2026-12-06-130000_broken/up.sql",
    );
    write(
        "2026-12-06-130000_broken",
        &seed_agent_sql(backend, "fixed@example.com", &hash),
    );
    assert_eq!(
        count(&glue_with_env("test", &db, &env, &["migrate"], None)),
        1
    );

    // A version in glue's own range is refused before anything runs, naming the folder.
    write(
        "2026-12-06-000500_mine",
        &seed_agent_sql(backend, "reserved@example.com", &hash),
    );
    assert_fails_with(
        &glue_with_env("test", &db, &env, &["migrate"], None),
        "2026-12-06-000500_mine has a version glue reserves",
    );
    std::fs::remove_dir_all(engine.join("2026-12-06-000500_mine")).unwrap();

    // The seeded agents log in on a server that applies the site's migrations at start-up.
    let db = std::sync::Arc::new(db);
    let mut settings = test_settings(&db.url);
    settings.database.site_migrations_path = site.clone();
    let app = start(settings, db.clone()).unwrap();
    for username in ["site@example.com", "fixed@example.com"] {
        assert_eq!(
            app.post_agent_login(username, "site pass 1").await.status(),
            201,
            "{username}"
        );
    }

    // A missing engine folder is named.
    let other = dir.join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    let other = other.display().to_string();
    assert_fails_with(
        &glue_with_env(
            "test",
            &db,
            &[("GLUE__DATABASE__SITE_MIGRATIONS_PATH", other.as_str())],
            &["migrate"],
            None,
        ),
        &format!(
            "{} is not a folder",
            std::path::Path::new(&other)
                .join(engine_folder(backend))
                .display()
        ),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

backends!(site_migrations_seed_agents_that_log_in);

#[test]
fn site_migrations_are_refused_on_a_shops_database() {
    for url in [
        "postgres://nobody@127.0.0.1:1/shop",
        "mysql://nobody@127.0.0.1:1/shop",
    ] {
        if url.starts_with("mysql") && !cfg!(feature = "mysql") {
            continue;
        }
        let output = glue_command(
            "test",
            url,
            &[
                ("GLUE__DATABASE__SCHEMA_OWNER", "spryker"),
                (
                    "GLUE__DATABASE__SITE_MIGRATIONS_PATH",
                    "/srv/site-migrations",
                ),
            ],
            &["migrate"],
        )
        .output()
        .unwrap();
        assert_fails_with(
            &output,
            "database.site_migrations_path is set, but database.schema_owner = \"spryker\"",
        );
    }
}
