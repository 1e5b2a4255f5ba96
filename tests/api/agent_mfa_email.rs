//! The shop's email second factor on `POST /agent-access-tokens`, against a real SMTP server
//! (aiosmtpd): the code mailed with 5900, stored as Spryker stores it, accepted once, three
//! wrong ones blocking it, expiry, the per-agent rate limit, a failed send (503/5910), the
//! blocker, and the CLI that gives an agent the method.

use diesel::prelude::*;
use glue::db::schema::spy_user_multi_factor_auth_codes as codes;
use glue::db::schema::spy_user_multi_factor_auth_codes_attempts as attempts;
use glue::settings::BlockRule;

use crate::helpers::*;
use crate::{backends, mail_backends};

mail_backends!(
    an_agent_with_the_email_method_needs_the_mailed_code,
    wrong_email_codes_count_with_the_blocker,
    bursts_get_one_mail_and_one_pass,
);
backends!(a_mail_that_cannot_be_sent_is_503_5910);

const AGENT: &str = "mail-agent@shop.test";
const PASSWORD: &str = "right-pass";

async fn login_with(app: &TestApp, password: &str, code: Option<&str>) -> reqwest::Response {
    app.agent_login_with_code(AGENT, password, code).await
}

fn activate_email(app: &TestApp) {
    let output = glue_in(
        "test",
        &app.db,
        &[
            "agent",
            "mfa",
            "activate",
            "--username",
            AGENT,
            "--type",
            "email",
        ],
        None,
    );
    assert!(output.status.success(), "{output:?}");
}

/// (status, expiration_date, created_at) of every code, oldest first.
fn code_rows(app: &TestApp) -> Vec<(Option<i32>, chrono::NaiveDateTime)> {
    codes::table
        .order(codes::id_user_multi_factor_auth_code.asc())
        .select((codes::status, codes::expiration_date))
        .load(&mut app.conn())
        .unwrap()
}

fn attempt_count(app: &TestApp) -> i64 {
    attempts::table.count().get_result(&mut app.conn()).unwrap()
}

/// The code of the newest mail, after checking it went to the agent.
fn newest_code(smtp: &SmtpServer, expected_mails: usize) -> String {
    let mails = smtp.mails();
    assert_eq!(mails.len(), expected_mails, "{mails:?}");
    let mail = mails.last().unwrap();
    assert!(mail.contains(&format!("To: {AGENT}")), "{mail}");
    assert!(mail.contains("From: glue@shop.test"), "{mail}");
    assert!(mail.contains("Subject: Your verification code"), "{mail}");
    SmtpServer::code_in(mail)
}

async fn an_agent_with_the_email_method_needs_the_mailed_code(backend: Backend) {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(backend, |s| {
        s.mail.smtp_url = glue::settings::Secret::new(smtp.url());
        s.mail.from = "glue@shop.test".into();
        s.metrics.listen = "127.0.0.1:0".into();
        s.security_blocker.agent = BlockRule {
            attempts: 100,
            window_s: 3600,
            block_s: 600,
        };
    });
    app.insert_user(AGENT, PASSWORD, true, "active");
    activate_email(&app);

    // A wrong password says nothing of the method, and mails nothing.
    assert_error(
        login_with(&app, "wrong-pass", None).await,
        Some("4101"),
        401,
        "Failed to authenticate an agent.",
    )
    .await;
    assert!(smtp.mails().is_empty());

    // The right password alone: 5900, and a fresh code in the agent's mailbox, stored as
    // Spryker stores it (unverified, 30 minutes).
    let before = chrono::Utc::now().naive_utc();
    assert_error(
        login_with(&app, PASSWORD, None).await,
        Some("5900"),
        403,
        "X-MFA-Code header is missing.",
    )
    .await;
    let code = newest_code(&smtp, 1);
    let rows = code_rows(&app);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, Some(0), "unverified");
    let ttl = rows[0].1 - before;
    assert!(
        ttl > chrono::TimeDelta::minutes(29) && ttl <= chrono::TimeDelta::minutes(31),
        "{ttl}"
    );

    // Asked again at once: still 5900, but no second mail (the first code still waits).
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 403);
    assert_eq!(smtp.mails().len(), 1);
    assert_eq!(code_rows(&app).len(), 1);

    // A wrong code: 5901, an attempt on the code, no token.
    let wrong = if code == "123456" { "654321" } else { "123456" };
    assert_error(
        login_with(&app, PASSWORD, Some(wrong)).await,
        Some("5901"),
        403,
        "X-MFA-Code is invalid.",
    )
    .await;
    assert_eq!(attempt_count(&app), 1);
    // The mailed code: 201, and the code is verified ...
    let response = login_with(&app, PASSWORD, Some(&code)).await;
    assert_eq!(response.status(), 201);
    let (access, _) = token_pair(response.json().await.unwrap());
    app.verify_with_jwks(&access).await;
    // The agent sees its method on the API.
    let types: serde_json::Value = app
        .client
        .get(app.url("/agent-multi-factor-auth-types"))
        .header("X-Agent-Authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(types["data"][1]["id"], "email", "{types}");
    assert_eq!(types["data"][1]["attributes"]["status"], 2, "{types}");
    // Verified, and expired at once: Zed and Yves ask no code while the latest one is verified
    // and unexpired, so a code used here must not open them for its remaining 30 minutes.
    assert_eq!(code_rows(&app)[0].0, Some(2), "verified");
    assert!(code_rows(&app)[0].1 <= chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(5));
    // ... and used: the same code again is 5901.
    assert_eq!(login_with(&app, PASSWORD, Some(&code)).await.status(), 403);

    // After the interval a login without a code mails a new one; three wrong codes block it,
    // so that the right one no longer passes.
    app.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 403);
    let second = newest_code(&smtp, 2);
    let wrong = if second == "123456" {
        "654321"
    } else {
        "123456"
    };
    for _ in 0..3 {
        assert_eq!(login_with(&app, PASSWORD, Some(wrong)).await.status(), 403);
    }
    assert_eq!(
        code_rows(&app)[1].0,
        Some(1),
        "blocked after three attempts"
    );
    assert_error(
        login_with(&app, PASSWORD, Some(&second)).await,
        Some("5901"),
        403,
        "X-MFA-Code is invalid.",
    )
    .await;

    // Blocking a code with wrong guesses buys no new mail before the interval is up either.
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 403);
    assert_eq!(smtp.mails().len(), 2);
    app.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 403);
    let third = newest_code(&smtp, 3);
    // Thirty minutes later it has expired (the shop's clock).
    app.clock.advance(std::time::Duration::from_secs(31 * 60));
    assert_eq!(login_with(&app, PASSWORD, Some(&third)).await.status(), 403);
    assert_eq!(code_rows(&app)[2].0, Some(1), "an expired code is blocked");

    // A fourth code: earlier unverified ones are invalidated when a new one goes out.
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 403);
    let fourth = newest_code(&smtp, 4);
    app.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 403);
    let fifth = newest_code(&smtp, 5);
    assert_eq!(
        code_rows(&app)[3].0,
        Some(3),
        "invalidated by the next code"
    );
    if fourth != fifth {
        assert_eq!(
            login_with(&app, PASSWORD, Some(&fourth)).await.status(),
            403
        );
    }

    // The CLI lists the method; deactivated, the password alone logs in again.
    let list = glue_in("test", &app.db, &["agent", "mfa", "list", "--json"], None);
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed[0]["type"], "email", "{listed}");
    assert_eq!(listed[0]["status"], "active", "{listed}");
    let output = glue_in(
        "test",
        &app.db,
        &[
            "agent",
            "mfa",
            "deactivate",
            "--username",
            AGENT,
            "--type",
            "email",
        ],
        None,
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 201);
    assert_eq!(smtp.mails().len(), 5, "no mail without the method");

    // Counted per outcome, with closed labels.
    let metrics = app
        .client
        .get(format!(
            "http://127.0.0.1:{}/metrics",
            app.metrics_port.unwrap()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rejected = 7.0 + f64::from(u8::from(fourth != fifth));
    for (event, count) in [
        ("code_sent", 5.0),
        ("accepted", 1.0),
        ("rejected", rejected),
    ] {
        assert_eq!(
            metric_sample(
                &metrics,
                &format!("glue_agent_mfa_events_total{{event=\"{event}\",method=\"email\"}}")
            ),
            count,
            "{event}: {metrics}"
        );
    }
}

async fn wrong_email_codes_count_with_the_blocker(backend: Backend) {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(backend, |s| {
        s.mail.smtp_url = glue::settings::Secret::new(smtp.url());
        s.mail.from = "glue@shop.test".into();
        s.security_blocker.agent = BlockRule {
            attempts: 3,
            window_s: 600,
            block_s: 600,
        };
    });
    app.insert_user(AGENT, PASSWORD, true, "active");
    activate_email(&app);
    // Right passwords without a code count nothing (five of them, with a limit of three).
    for _ in 0..5 {
        assert_eq!(login_with(&app, PASSWORD, None).await.status(), 403);
    }
    let code = newest_code(&smtp, 1);
    let wrong = if code == "123456" { "654321" } else { "123456" };
    for _ in 0..3 {
        assert_eq!(login_with(&app, PASSWORD, Some(wrong)).await.status(), 403);
    }
    // Three wrong codes are three failed logins: the key is blocked, the right code included.
    assert_eq!(login_with(&app, PASSWORD, Some(&code)).await.status(), 429);
}

#[test]
fn the_relay_url_is_a_secret() {
    let db = TestDatabase::create(Backend::Sqlite);
    let output = glue_with_env(
        "test",
        &db,
        &[(
            "GLUE__MAIL__SMTP_URL",
            "smtp://relay-user:relay-s3cret@mail.shop.test:587?tls=required",
        )],
        &["config", "show"],
        None,
    );
    assert!(output.status.success(), "{output:?}");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(!shown.contains("relay-s3cret"), "{shown}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("relay-s3cret"));
}

async fn a_mail_that_cannot_be_sent_is_503_5910(backend: Backend) {
    // Nothing listens there: the relay is down.
    let port = free_port();
    let app = spawn_app_with(backend, |s| {
        s.mail.smtp_url = glue::settings::Secret::new(format!("smtp://127.0.0.1:{port}"));
        s.mail.from = "glue@shop.test".into();
        s.mail.timeout_ms = 2000;
    });
    app.insert_user(AGENT, PASSWORD, true, "active");
    activate_email(&app);
    let response = login_with(&app, PASSWORD, None).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "5910", "{body}");
    assert_eq!(
        body["errors"][0]["detail"],
        "Something went wrong while sending your code. Please try again later or contact the system administrator."
    );
    // The code nobody received is withdrawn: once the relay is back, the next login mails a
    // new one at once (no rate limit on a code that never went out).
    assert_eq!(code_rows(&app)[0].0, Some(3));
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 503);
    assert_eq!(
        code_rows(&app).len(),
        2,
        "a new code for every try while the relay is down"
    );

    // No relay at all: 5910 at once, and nothing stored in the shop's table.
    let app = spawn_app(backend);
    app.insert_user(AGENT, PASSWORD, true, "active");
    activate_email(&app);
    let response = login_with(&app, PASSWORD, None).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "5910", "{body}");
    assert!(code_rows(&app).is_empty());
}

/// A relay URL with credentials must not send them in clear.
#[test]
fn credentials_go_only_over_tls() {
    let db = TestDatabase::create(Backend::Sqlite);
    for (url, refused) in [
        ("smtp://user:pw@mail.shop.test:587", true),
        ("smtp://user:pw@mail.shop.test:587?tls=opportunistic", true),
        ("smtp://user:pw@mail.shop.test:587?tls=required", false),
        ("smtps://user:pw@mail.shop.test:465", false),
        ("smtp://mail.shop.test:25", false),
    ] {
        let mut settings = test_settings(&db.url);
        settings.mail.smtp_url = glue::settings::Secret::new(url);
        match (refused, glue::mail::Mailer::for_settings(&settings.mail)) {
            (true, Err(e)) => assert!(e.contains("require TLS") && !e.contains("pw"), "{e}"),
            (false, Ok(_)) => {}
            (_, other) => panic!("{url}: {:?}", other.err()),
        }
    }
}

/// The shop's email method cannot be traded for a TOTP someone else enrolled: while it is
/// active, the API enrols no TOTP, and a login does not activate a pending one.
#[tokio::test]
#[ignore = "needs aiosmtpd: GLUE_TEST_AIOSMTPD (CI runs it)"]
async fn no_totp_replaces_an_active_email_method() {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.mail.smtp_url = glue::settings::Secret::new(smtp.url());
        s.mail.from = "glue@shop.test".into();
    });
    app.insert_user(AGENT, PASSWORD, true, "active");
    // A session opened with the password alone, before the email method.
    let response = login_with(&app, PASSWORD, None).await;
    assert_eq!(response.status(), 201);
    let (old_session, _) = token_pair(response.json().await.unwrap());
    activate_email(&app);
    let enrol = app
        .client
        .post(app.url("/agent-multi-factor-auth-type-activate"))
        .header("Content-Type", JSON_API)
        .header("X-Agent-Authorization", format!("Bearer {old_session}"))
        .body(
            serde_json::json!({"data": {"type": "agent-multi-factor-auth-type-activate", "attributes": {"type": "totp"}}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_error(
        enrol,
        Some("5904"),
        400,
        "Multi-factor authentication type already activated.",
    )
    .await;
    // Enrolled by the operator, pending: its code does not replace the mailed one.
    let output = glue_in(
        "test",
        &app.db,
        &[
            "agent",
            "mfa",
            "activate",
            "--username",
            AGENT,
            "--type",
            "totp",
        ],
        None,
    );
    assert!(output.status.success(), "{output:?}");
    let uri = String::from_utf8(output.stdout).unwrap();
    let uri = uri.lines().find(|l| l.starts_with("otpauth://")).unwrap();
    let totp = totp_rs::TOTP::from_url(uri).unwrap();
    let now = u64::try_from(glue::clock::Clock::now(&*app.clock).and_utc().timestamp()).unwrap();
    assert_eq!(
        login_with(&app, PASSWORD, Some(&totp.generate(now)))
            .await
            .status(),
        403
    );
}

async fn bursts_get_one_mail_and_one_pass(backend: Backend) {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(backend, |s| {
        s.mail.smtp_url = glue::settings::Secret::new(smtp.url());
        s.mail.from = "glue@shop.test".into();
        s.security_blocker.agent = BlockRule {
            attempts: 100,
            window_s: 600,
            block_s: 600,
        };
    });
    app.insert_user(AGENT, PASSWORD, true, "active");
    activate_email(&app);
    // Twenty logins without a code at once: one code, one mail.
    let burst = (0..20).map(|_| login_with(&app, PASSWORD, None));
    for response in futures_util::future::join_all(burst).await {
        assert_eq!(response.status(), 403);
    }
    assert_eq!(code_rows(&app).len(), 1);
    let code = newest_code(&smtp, 1);
    // Ten logins with the right code at once: one session, the code used by it.
    let burst = (0..10).map(|_| login_with(&app, PASSWORD, Some(&code)));
    let statuses: Vec<u16> = futures_util::future::join_all(burst)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(attempt_count(&app), 10);
}

/// The relay as a company runs it: STARTTLS required, with a certificate of the company's own
/// CA (`mail.tls_ca_path`), and AUTH only after it.
#[tokio::test]
#[ignore = "needs aiosmtpd: GLUE_TEST_AIOSMTPD (CI runs it)"]
async fn mail_goes_over_starttls_with_auth() {
    let dir = std::env::temp_dir().join(format!("glue-smtp-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    std::fs::write(
        path("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=glue test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &path("leaf.key"),
            "-out",
            &path("leaf.csr"),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &path("leaf.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &path("leaf.ext"),
            "-out",
            &path("leaf.pem"),
        ],
    ] {
        let output = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let smtp = SmtpServer::start_starttls_auth(
        &path("leaf.pem"),
        &path("leaf.key"),
        "glue-relay",
        "relay-pass",
    );
    let app_with = |url: String, ca: bool| {
        let ca_path = path("ca.pem");
        let app = spawn_app_with(Backend::Sqlite, move |s| {
            s.mail.smtp_url = glue::settings::Secret::new(url);
            s.mail.from = "glue@shop.test".into();
            s.mail.timeout_ms = 5000;
            if ca {
                s.mail.tls_ca_path = ca_path;
            }
        });
        app.insert_user(AGENT, PASSWORD, true, "active");
        activate_email(&app);
        app
    };
    let url = |password: &str| {
        format!(
            "smtp://glue-relay:{password}@127.0.0.1:{}?tls=required",
            smtp.port
        )
    };
    // The right credentials over STARTTLS, the certificate checked against the company's CA.
    let app = app_with(url("relay-pass"), true);
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 403);
    let code = newest_code(&smtp, 1);
    assert_eq!(login_with(&app, PASSWORD, Some(&code)).await.status(), 201);
    // A certificate glue cannot trust: no mail, 503/5910 (nothing sent in clear).
    let app = app_with(url("relay-pass"), false);
    let response = login_with(&app, PASSWORD, None).await;
    assert_eq!(response.status(), 503);
    // Credentials the relay refuses (and then a relay that stalls: aiosmtpd keeps that dialogue
    // open for its 300-second timeout): 503 once mail.timeout_ms (5 s) is up, not minutes later.
    let app = app_with(url("wrong-pass"), true);
    let started = std::time::Instant::now();
    assert_eq!(login_with(&app, PASSWORD, None).await.status(), 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(smtp.mails().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
