//! Database outages: PostgreSQL behind an in-test TCP proxy that can cut every connection and
//! refuse new ones, then let them through again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// A TCP proxy to the PostgreSQL server, on its own thread and runtime.
struct FaultProxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl FaultProxy {
    fn start(upstream: SocketAddr) -> Self {
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let (thread_up, thread_connections) = (up.clone(), connections.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !thread_up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    thread_connections.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        FaultProxy {
            port: rx.recv().unwrap(),
            up,
            connections,
        }
    }

    /// Closes every open connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db` with the proxy's address instead of the server's.
fn through_proxy(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}127.0.0.1:{port}/{path}")
}

fn upstream_address(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    use std::net::ToSocketAddrs;
    host_port.to_socket_addrs().unwrap().next().unwrap()
}

#[tokio::test]
#[ignore = "needs a PostgreSQL server: GLUE_TEST_DATABASE_URL (CI runs it)"]
async fn postgres_outage_is_503_with_retry_after_and_heals_without_a_restart() {
    let db = TestDatabase::create(Backend::Postgres);
    let db = Arc::new(db);
    let proxy = FaultProxy::start(upstream_address(&db.url));
    let mut settings = test_settings(&through_proxy(&db.url, proxy.port));
    settings.database.connect_timeout_ms = 500;
    let app = start(settings, db.clone()).unwrap();

    let (access, refresh) = app.agent_session("outage@example.com").await;
    proxy.cut();

    let login = json!({"data":{"type":"agent-access-tokens","attributes":{"username":"outage@example.com","password":"agent-pass"}}});
    let refresh_body =
        json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":refresh}}});
    for round in 0..2 {
        let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
            (
                "login",
                app.client
                    .post(app.url("/agent-access-tokens"))
                    .header("Content-Type", JSON_API)
                    .body(login.to_string()),
            ),
            (
                "refresh",
                app.client
                    .post(app.url("/refresh-tokens"))
                    .header("Content-Type", JSON_API)
                    .body(refresh_body.to_string()),
            ),
            (
                "search",
                app.client
                    .get(app.url("/agent-customer-search?q=a"))
                    .bearer_auth(&access),
            ),
            (
                "logout",
                app.client
                    .delete(app.url("/refresh-tokens/mine"))
                    .bearer_auth(&access),
            ),
            ("readyz", app.client.get(app.url("/readyz"))),
        ];
        for (name, request) in requests {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!(response.status(), 503, "{name}, round {round}");
            // Bounded by connect_timeout_ms (500 ms) plus slack for a noisy machine: the point
            // is that nobody waits for r2d2's default 30 s.
            assert!(
                elapsed < Duration::from_millis(2500),
                "{name} took {elapsed:?}"
            );
            assert_eq!(response.headers()["retry-after"], "5");
            assert_eq!(response.headers()["content-type"], JSON_API);
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body,
                json!({"errors":[{"status":503,"detail":"Service temporarily unavailable. Please try again later."}]}),
                "{name}"
            );
        }
        // What needs no database keeps answering.
        for path in ["/healthz", "/.well-known/jwks.json", "/nope"] {
            let status = app.client.get(app.url(path)).send().await.unwrap().status();
            assert!(status == 200 || status == 404, "{path}: {status}");
        }
    }

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The refresh attempted during the outage consumed nothing.
    let response = app.refresh(&json!(refresh)).await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        app.post_agent_login("outage@example.com", "agent-pass")
            .await
            .status(),
        201
    );
    assert_eq!(app.search("q=a", &access).await.status(), 200);
}

#[tokio::test]
async fn a_locked_sqlite_file_is_503_and_leaves_no_partial_row() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use glue::db::schema::spy_oauth_refresh_token::dsl;

    let app = spawn_app_with(Backend::Sqlite, |s| s.database.sqlite_busy_timeout_ms = 200);
    app.insert_user("locked-login@example.com", "agent-pass", true, "active");
    let mut locker = app.conn();
    locker.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let response = app
        .post_agent_login("locked-login@example.com", "agent-pass")
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    locker.batch_execute("ROLLBACK").unwrap();
    let rows: i64 = dsl::spy_oauth_refresh_token
        .count()
        .get_result(&mut app.conn())
        .unwrap();
    assert_eq!(rows, 0, "no token row from the failed login");
    assert_eq!(
        app.post_agent_login("locked-login@example.com", "agent-pass")
            .await
            .status(),
        201
    );
    let rows: i64 = dsl::spy_oauth_refresh_token
        .count()
        .get_result(&mut app.conn())
        .unwrap();
    assert_eq!(rows, 1);
}
