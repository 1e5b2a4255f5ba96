//! The real `glue serve` binary as a child process: graceful shutdown, several instances on one
//! database, and what the logs may contain.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

/// One thread of a running server, from `/proc`.
#[derive(Debug, Clone)]
pub struct ThreadInfo {
    pub name: String,
    pub nice: i64,
    pub policy: i64,
    pub ran_ns: u64,
}

/// A running `glue serve` process.
pub struct ServeProcess {
    child: Option<Child>,
    pub base: String,
    client: reqwest::Client,
}

impl ServeProcess {
    /// Starts the binary on a free port against `database_url`, with the test key and
    /// `extra` environment; waits until /readyz answers 200.
    pub async fn start(database_url: &str, extra: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let port = port.to_string();
        let child = glue_command(
            "test",
            database_url,
            &[
                ("GLUE__SERVER__PORT", &port),
                ("GLUE__OAUTH__PRIVATE_KEY_PEM", test_private_key()),
                ("RUST_LOG", "info"),
            ],
            &["serve"],
        )
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start glue serve");
        let process = ServeProcess {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = process.client.get(process.url("/readyz")).send().await {
                if r.status() == 200 {
                    return process;
                }
            }
            assert!(Instant::now() < deadline, "glue serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server's resident memory, in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Each of the server's threads: its name, nice value, scheduling policy (0 normal,
    /// 5 `SCHED_IDLE`) and nanoseconds it ran, from `/proc/<pid>/task/<tid>/stat` and
    /// `schedstat`.
    pub fn threads(&self) -> Vec<ThreadInfo> {
        let pid = self.child.as_ref().unwrap().id();
        let mut threads = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let task = task.unwrap().path();
            let (Ok(stat), Ok(schedstat)) = (
                std::fs::read_to_string(task.join("stat")),
                std::fs::read_to_string(task.join("schedstat")),
            ) else {
                continue; // the thread ended meanwhile
            };
            let name = stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()].to_string();
            // After the name: state is field 3, nice field 19, policy field 41.
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .collect();
            threads.push(ThreadInfo {
                name,
                nice: fields[16].parse().unwrap(),
                policy: fields[38].parse().unwrap(),
                ran_ns: schedstat
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap(),
            });
        }
        threads
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("Content-Type", JSON_API)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Sends SIGTERM and waits for the exit; returns (exit code, stdout + stderr).
    pub fn terminate(&mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut output = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut output)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut output)
            .unwrap();
        (status.code(), output)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Logs the demo agent in on `server`; (access, refresh).
async fn demo_login(server: &ServeProcess) -> (String, String) {
    let response = server
        .post(
            "/agent-access-tokens",
            &agent_login_body(DEMO_USERNAME, DEMO_PASSWORD),
        )
        .await;
    assert_eq!(response.status(), 201);
    token_pair(response.json().await.unwrap())
}

#[tokio::test]
async fn sigterm_finishes_in_flight_logins_then_exits_zero() {
    let db = TestDatabase::create(Backend::Sqlite);
    // The demo agent's hash has cost 12: each login is a few hundred ms of bcrypt, queued on two
    // threads, so SIGTERM lands while most of them are in the middle of bcrypt.
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let mut server = ServeProcess::start(
        &db.url,
        &[
            ("GLUE__SERVER__SHUTDOWN_TIMEOUT_S", "30"),
            ("GLUE__METRICS__LISTEN", &metrics_listen),
        ],
    )
    .await;
    let mut in_flight = Vec::new();
    for _ in 0..6 {
        let client = reqwest::Client::new();
        let url = server.url("/agent-access-tokens");
        in_flight.push(tokio::spawn(async move {
            client
                .post(url)
                .header("Content-Type", JSON_API)
                .body(agent_login_body(DEMO_USERNAME, DEMO_PASSWORD).to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    // SIGTERM once the server holds all six: each is waiting for or in bcrypt, or done.
    let metrics_url = format!("http://{metrics_listen}/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let held = metric_sample(&text, "glue_bcrypt_queue_depth")
            + metric_sample(
                &text,
                "glue_logins_total{kind=\"agent\",outcome=\"issued\"}",
            );
        if held >= 6.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the logins never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let base = server.base.clone();
    let (code, _) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "clean exit");
    let mut statuses = Vec::new();
    for request in in_flight {
        statuses.push(request.await.unwrap().expect("in-flight request answered"));
    }
    assert_eq!(statuses, vec![201; 6], "every in-flight login completed");
    // And the port no longer accepts anything.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}

/// On SQLite a customer search's SQL runs inside the service. It runs on the searches' own
/// threads, `glue.search_concurrency` of them at `glue.search_priority` (`SCHED_IDLE` by
/// default; nice 19 with "low"), below bcrypt's `oauth.bcrypt_nice`, so a storm of searches
/// takes only the CPU that logins and refreshes leave over; the request threads and the
/// blocking pool keep the normal priority.
#[tokio::test]
async fn searches_run_on_their_own_threads_below_bcrypts_priority() {
    const SCHED_OTHER: i64 = 0;
    const SCHED_IDLE: i64 = 5;
    for (priority, nice, policy) in [("idle", 0, SCHED_IDLE), ("low", 19, SCHED_OTHER)] {
        let db = TestDatabase::create(Backend::Sqlite);
        let server = ServeProcess::start(
            &db.url,
            &[
                ("GLUE__GLUE__SEARCH_CONCURRENCY", "2"),
                ("GLUE__GLUE__SEARCH_PRIORITY", priority),
            ],
        )
        .await;
        let named = |prefix: &str| -> Vec<ThreadInfo> {
            server
                .threads()
                .into_iter()
                .filter(|t| t.name.starts_with(prefix))
                .collect()
        };
        let before = named("glue-search-");
        assert_eq!(before.len(), 2, "{priority}: {:?}", server.threads());
        assert!(
            before.iter().all(|t| t.nice == nice && t.policy == policy),
            "{priority}: {before:?}"
        );
        let bcrypt = named("glue-bcrypt-");
        assert!(!bcrypt.is_empty());
        assert!(
            bcrypt
                .iter()
                .all(|t| t.nice == 10 && t.policy == SCHED_OTHER),
            "{bcrypt:?}"
        );
        let others: Vec<ThreadInfo> = server
            .threads()
            .into_iter()
            .filter(|t| !t.name.starts_with("glue-search-") && !t.name.starts_with("glue-bcrypt-"))
            .collect();
        assert!(
            others
                .iter()
                .all(|t| t.nice == 0 && t.policy == SCHED_OTHER),
            "{others:?}"
        );

        let (access, _) = demo_login(&server).await;
        for q in ["s", "sonia", "DE--1", "x"] {
            let response = server
                .client
                .get(server.url(&format!("/agent-customer-search?q={q}")))
                .header("X-Agent-Authorization", format!("Bearer {access}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        // The lane's threads sleep until a job comes: time they ran is the searches' work.
        let ran = |threads: &[ThreadInfo]| threads.iter().map(|t| t.ran_ns).sum::<u64>();
        let after = named("glue-search-");
        assert!(ran(&after) > ran(&before), "{before:?} -> {after:?}");
    }
}

backends!(sqlites_write_ahead_log_is_kept_by_a_thread_of_its_own);

/// `glue serve` on SQLite copies the write-ahead log back and starts it over on one thread of
/// its own, `glue-checkpoint` (at the normal priority), which takes its turns while requests
/// write; the pool's connections leave that to it (the unit tests of `db::checkpointer` check
/// them and the log's bound). PostgreSQL and MariaDB have no such thread.
async fn sqlites_write_ahead_log_is_kept_by_a_thread_of_its_own(backend: Backend) {
    const SCHED_OTHER: i64 = 0;
    let db = TestDatabase::create(backend);
    let server = ServeProcess::start(&db.url, &[]).await;
    let checkpointer = || -> Vec<ThreadInfo> {
        server
            .threads()
            .into_iter()
            .filter(|t| t.name == "glue-checkpoint")
            .collect()
    };
    if backend != Backend::Sqlite {
        assert!(checkpointer().is_empty(), "{:?}", server.threads());
        return;
    }
    let before = checkpointer();
    assert_eq!(before.len(), 1, "{:?}", server.threads());
    assert!(
        before[0].nice == 0 && before[0].policy == SCHED_OTHER,
        "{before:?}"
    );
    // A login and refreshes write to the log; the thread's turns come five times a second.
    let (_, mut refresh) = demo_login(&server).await;
    for _ in 0..5 {
        let response = server
            .post(
                "/refresh-tokens",
                &json!({"data": {"type": "refresh-tokens", "attributes": {"refreshToken": refresh}}}),
            )
            .await;
        assert_eq!(response.status(), 201);
        refresh = token_pair(response.json().await.unwrap()).1;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = checkpointer();
        assert_eq!(now.len(), 1, "{:?}", server.threads());
        if now[0].ran_ns > before[0].ran_ns {
            break;
        }
        assert!(Instant::now() < deadline, "the thread never ran: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// bcrypt-rust settles one SIMD kernel per process, by a short timed contest unless told (on a
/// shared host its pick changed from start to start, and the kernels differ by a sixth in
/// logins per second). `glue serve` runs the kernel `oauth.bcrypt_simd` names, by default the
/// widest this CPU runs, at every start alike; BCRYPT_FORCE_BACKEND outranks the setting; an
/// unknown kernel, or one this CPU cannot run, stops start-up with the reason (not bcrypt-rust's
/// panic at the first batch).
#[tokio::test]
async fn glue_serve_runs_the_simd_kernel_its_settings_name() {
    use glue::settings::BcryptSimd;
    let db = TestDatabase::create(Backend::Sqlite);
    let kernel_line = |extra: Vec<(&'static str, String)>| {
        let db_url = db.url.clone();
        async move {
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut server = ServeProcess::start(&db_url, &extra).await;
            let (access, _) = demo_login(&server).await;
            assert!(!access.is_empty());
            let (code, output) = server.terminate();
            assert_eq!(code, Some(0), "{output}");
            // The settings' choice was applied, so nothing says it was not.
            assert!(!output.contains("oauth.bcrypt_simd pins"), "{output}");
            output
                .lines()
                .find(|l| l.contains("verifying with "))
                .unwrap_or_else(|| panic!("no kernel in the log: {output}"))
                .to_string()
        }
    };
    let available = BcryptSimd::available();
    let widest = BcryptSimd::Widest.kernel().unwrap();
    assert!(widest.name() == "scalar" || available.contains(&widest));
    let lanes_of = |kernel: &str, by: &str| format!("({kernel} lanes, chosen by {by})");
    for _ in 0..3 {
        let line = kernel_line(vec![]).await;
        assert!(
            line.contains(&lanes_of(widest.name(), "oauth.bcrypt_simd")),
            "{line}"
        );
    }
    for kernel in &available {
        let line = kernel_line(vec![("GLUE__OAUTH__BCRYPT_SIMD", kernel.name().into())]).await;
        assert!(
            line.contains(&lanes_of(kernel.name(), "oauth.bcrypt_simd"))
                && line.contains(&format!("up to {} logins per batch", kernel.lanes())),
            "{line}"
        );
    }
    if let Some(narrowest) = available.last() {
        let line = kernel_line(vec![
            ("BCRYPT_FORCE_BACKEND", narrowest.name().into()),
            ("GLUE__OAUTH__BCRYPT_SIMD", widest.name().into()),
        ])
        .await;
        assert!(
            line.contains(&lanes_of(narrowest.name(), "BCRYPT_FORCE_BACKEND")),
            "{line}"
        );
    }

    let refused = |env: &[(&str, &str)]| {
        let output = glue_command("test", &db.url, env, &["serve", "--port", "0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    let stderr = refused(&[("GLUE__OAUTH__BCRYPT_SIMD", "avx1024")]);
    assert!(
        stderr.contains("oauth.bcrypt_simd") && stderr.contains("\"avx1024\" is not one of"),
        "{stderr}"
    );
    let stderr = refused(&[("BCRYPT_FORCE_BACKEND", "avx1024")]);
    assert!(
        stderr.contains("BCRYPT_FORCE_BACKEND=\"avx1024\" is not a kernel this CPU runs"),
        "{stderr}"
    );
    // A kernel of another CPU (NEON on x86, AVX2 on ARM).
    let foreign = bcrypt_rust::Backend::ALL
        .iter()
        .find(|b| b.lanes() > 1 && !b.is_available() && b.name() != "wasm128")
        .expect("every CPU lacks some kernel");
    let stderr = refused(&[("GLUE__OAUTH__BCRYPT_SIMD", foreign.name())]);
    assert!(
        stderr.contains("oauth.bcrypt_simd") && stderr.contains("this CPU cannot run that kernel"),
        "{stderr}"
    );
}

backends!(servers: two_processes_on_one_database_share_every_piece_of_state);

async fn two_processes_on_one_database_share_every_piece_of_state(backend: Backend) {
    let db = TestDatabase::create(backend);
    let blocker = [("GLUE__SECURITY_BLOCKER__AGENT__ATTEMPTS", "3")];
    let a = ServeProcess::start(&db.url, &blocker).await;
    let b = ServeProcess::start(&db.url, &blocker).await;

    let tokens = |body: Value| {
        let attributes = &body["data"]["attributes"];
        (
            attributes["accessToken"].as_str().unwrap().to_string(),
            attributes["refreshToken"].as_str().unwrap().to_string(),
        )
    };
    let refresh =
        |token: &str| json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":token}}});

    // Reuse detected across instances: rotate on A, replay on B, the family is gone on A.
    let response = a
        .post(
            "/agent-access-tokens",
            &agent_login_body(DEMO_USERNAME, DEMO_PASSWORD),
        )
        .await;
    let (_, rt1) = tokens(response.json().await.unwrap());
    let response = a.post("/refresh-tokens", &refresh(&rt1)).await;
    assert_eq!(response.status(), 201);
    let (_, rt2) = tokens(response.json().await.unwrap());
    assert_eq!(
        b.post("/refresh-tokens", &refresh(&rt1)).await.status(),
        401
    );
    assert_eq!(
        a.post("/refresh-tokens", &refresh(&rt2)).await.status(),
        401
    );

    // A revoke on B is honoured by A; tokens from A verify on B (one key, one JWKS).
    let response = a
        .post(
            "/agent-access-tokens",
            &agent_login_body(DEMO_USERNAME, DEMO_PASSWORD),
        )
        .await;
    let (access, rt) = tokens(response.json().await.unwrap());
    let response = b
        .client
        .delete(b.url("/refresh-tokens/mine"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(a.post("/refresh-tokens", &refresh(&rt)).await.status(), 401);

    // The security blocker is shared: failures on both, blocked on both.
    for server in [&a, &b, &a] {
        assert_eq!(
            server
                .post(
                    "/agent-access-tokens",
                    &agent_login_body(DEMO_USERNAME, "wrong")
                )
                .await
                .status(),
            401
        );
    }
    for server in [&b, &a] {
        assert_eq!(
            server
                .post(
                    "/agent-access-tokens",
                    &agent_login_body(DEMO_USERNAME, DEMO_PASSWORD)
                )
                .await
                .status(),
            429
        );
    }
}

#[tokio::test]
async fn no_password_or_token_reaches_the_logs() {
    let db = TestDatabase::create(Backend::Sqlite);
    let mut server = ServeProcess::start(&db.url, &[("RUST_LOG", "debug")]).await;
    let mut secrets: Vec<String> = vec![DEMO_PASSWORD.into(), "wrong-password-123".into()];

    // A full session: failed and successful logins, refresh, search, impersonation, logout.
    let _ = server
        .post(
            "/agent-access-tokens",
            &agent_login_body(DEMO_USERNAME, "wrong-password-123"),
        )
        .await;
    let (access, refresh) = demo_login(&server).await;
    secrets.push(access.clone());
    secrets.push(refresh.clone());
    let body: Value = server
        .post(
            "/refresh-tokens",
            &json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":refresh}}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let refresh2 = body["data"]["attributes"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(
        body["data"]["attributes"]["accessToken"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    secrets.push(refresh2.clone());
    // Replay (reuse detection logs a warning) and garbage tokens in every place.
    let _ = server
        .post(
            "/refresh-tokens",
            &json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":refresh}}}),
        )
        .await;
    // The replay ended that session: search and impersonate in a new one.
    let (access, refresh3) = demo_login(&server).await;
    secrets.push(access.clone());
    secrets.push(refresh3);
    let search = server
        .client
        .get(server.url("/agent-customer-search?q=mar"))
        .header("X-Agent-Authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
    let response = server
        .client
        .post(server.url("/agent-customer-impersonation-access-tokens"))
        .header("Content-Type", JSON_API)
        .bearer_auth(&access)
        .body(json!({"data":{"type":"agent-customer-impersonation-access-tokens","attributes":{"customerReference":"DE--3"}}}).to_string())
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    secrets.push(
        body["data"]["attributes"]["accessToken"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    secrets.push(
        body["data"]["attributes"]["refreshToken"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let forged = format!("{access}x");
    secrets.push(forged.clone());
    let _ = server
        .client
        .get(server.url("/agent-customer-search"))
        .bearer_auth(&forged)
        .send()
        .await;
    let _ = server
        .client
        .delete(server.url(&format!("/refresh-tokens/{refresh2}")))
        .bearer_auth(&access)
        .send()
        .await;
    let _ = server
        .client
        .delete(server.url(&format!("/refresh-tokens/{refresh2}/extra")))
        .send()
        .await;

    let (code, logs) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        logs.contains("Successful Login (Agent)"),
        "the audit log is there: {logs}"
    );
    assert!(logs.contains("Failed Login (Agent)"));
    assert!(logs.contains("Customer Impersonation (Agent)"));
    for secret in &secrets {
        // Long tokens: any 16-character piece of them is a leak.
        let probe = if secret.len() > 40 {
            &secret[secret.len() / 2..secret.len() / 2 + 16]
        } else {
            secret.as_str()
        };
        assert!(
            !logs.contains(probe),
            "a secret reached the logs: {probe}\n{logs}"
        );
    }
}

#[test]
fn debug_output_of_settings_redacts_secrets() {
    let mut settings = test_settings("postgres://glue:db-secret-password@db.internal/glue");
    settings.oauth.private_key_pem = glue::settings::Secret::new(test_private_key());
    let debug = format!("{settings:?}");
    assert!(!debug.contains("db-secret-password"), "{debug}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains("[redacted]"));
}

backends!(serve_uses_the_database_for_the_demo_agent);

/// `glue serve` on each engine serves the demo agent from it: the login's `last_login` and its
/// refresh token are read back from the database itself.
async fn serve_uses_the_database_for_the_demo_agent(backend: Backend) {
    use diesel::prelude::*;
    let db = TestDatabase::create(backend);
    let server = ServeProcess::start(&db.url, &[]).await;
    demo_login(&server).await;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
        last_login: Option<chrono::NaiveDateTime>,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        tokens: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT last_login, (SELECT COUNT(*) FROM spy_oauth_refresh_token) AS tokens \
         FROM spy_user WHERE username = 'admin@spryker.com'",
    )
    .get_result(&mut db.connect())
    .unwrap();
    assert!(row.last_login.is_some());
    assert_eq!(row.tokens, 1);
}

/// `GLUE_LOG_FORMAT=json`: one JSON object per line; the access line carries the request id
/// (the client's when it is sane, else a new one, echoed in `X-Request-Id`) and client address.
#[tokio::test]
async fn json_logs_carry_the_request_id_and_client_address() {
    let db = TestDatabase::create(Backend::Sqlite);
    let mut server = ServeProcess::start(&db.url, &[("GLUE_LOG_FORMAT", "json")]).await;
    let client = reqwest::Client::new();
    let offered = client
        .get(server.url("/healthz"))
        .header("X-Request-Id", "trace-42.a:b")
        .send()
        .await
        .unwrap();
    assert_eq!(offered.headers()["x-request-id"], "trace-42.a:b");
    let generated = client
        .get(server.url("/nope/secret-looking/part"))
        .header("X-Request-Id", "not allowed because of spaces")
        .send()
        .await
        .unwrap();
    let generated_id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(generated_id.len(), 24);
    assert!(generated_id.chars().all(|c| c.is_ascii_hexdigit()));
    let failed = server
        .post(
            "/agent-access-tokens",
            &agent_login_body(DEMO_USERNAME, "wrong-password-123"),
        )
        .await;
    let failed_id = failed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (_, output) = server.terminate();
    let lines: Vec<Value> = output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let access = |id: &str| {
        lines
            .iter()
            .find(|l| l["target"] == "glue::access" && l["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}: {output}"))
            .clone()
    };
    assert_eq!(
        access("trace-42.a:b")["msg"].as_str().unwrap(),
        access("trace-42.a:b")["msg"]
    );
    assert!(access("trace-42.a:b")["msg"]
        .as_str()
        .unwrap()
        .starts_with("GET /healthz 200"));
    assert_eq!(access("trace-42.a:b")["client_ip"], "127.0.0.1");
    assert!(access(&generated_id)["msg"]
        .as_str()
        .unwrap()
        .starts_with("GET (unmatched) 404"));
    // The audit line of the failed login carries the same request id.
    assert!(lines.iter().any(|l| l["target"] == "security"
        && l["request_id"] == failed_id.as_str()
        && l["msg"]
            .as_str()
            .unwrap()
            .starts_with("Failed Login (Agent)")));
    assert!(!output.contains("secret-looking"));
}
