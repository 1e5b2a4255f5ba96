//! Database outages: the database server behind an in-test TCP proxy that can cut every
//! connection and refuse new ones, or keep every connection open and stop forwarding bytes (a
//! hung server, a network partition), then let traffic through again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::backends;
use crate::helpers::*;

/// A TCP proxy to the PostgreSQL server, on its own thread and runtime.
struct FaultProxy {
    port: u16,
    up: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

/// Copies `from` to `to`, holding every chunk back while `stalled` is set.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

impl FaultProxy {
    fn start(upstream: SocketAddr) -> Self {
        let up = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let (thread_up, thread_stalled, thread_connections) =
            (up.clone(), stalled.clone(), connections.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !thread_up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let stalled = thread_stalled.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            let (client_read, client_write) = client.into_split();
                            let (server_read, server_write) = server.into_split();
                            tokio::join!(
                                pump(client_read, server_write, stalled.clone()),
                                pump(server_read, client_write, stalled),
                            );
                        }
                    });
                    thread_connections.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        FaultProxy {
            port: rx.recv().unwrap(),
            up,
            stalled,
            connections,
        }
    }

    /// Keeps every connection (and accepts new ones) but forwards nothing.
    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
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
    let default_port = if url.starts_with("mysql://") {
        3306
    } else {
        5432
    };
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:{default_port}")
    };
    use std::net::ToSocketAddrs;
    host_port.to_socket_addrs().unwrap().next().unwrap()
}

backends!(postgres: an_outage_is_503_with_retry_after_and_heals_without_a_restart);

async fn an_outage_is_503_with_retry_after_and_heals_without_a_restart(backend: Backend) {
    let db = TestDatabase::create(backend);
    let db = Arc::new(db);
    let proxy = FaultProxy::start(upstream_address(&db.url));
    let mut settings = test_settings(&through_proxy(&db.url, proxy.port));
    settings.database.connect_timeout_ms = 500;
    let app = start(settings, db.clone()).unwrap();

    let (access, refresh) = app.agent_session("outage@example.com").await;
    proxy.cut();

    for round in 0..2 {
        let requests = requests_needing_the_database(&app, "outage@example.com", &access, &refresh);
        assert_all_unavailable(requests, Duration::from_millis(2500), round).await;
        assert_answers_without_the_database(&app).await;
    }

    proxy.restore();
    wait_until_ready(&app, Duration::from_secs(10)).await;
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

/// Login, refresh, search, logout and `/readyz`: everything that needs the database.
fn requests_needing_the_database(
    app: &TestApp,
    username: &str,
    access: &str,
    refresh: &str,
) -> Vec<(&'static str, reqwest::RequestBuilder)> {
    let login = agent_login_body(username, "agent-pass");
    let refresh = json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":refresh}}});
    vec![
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
                .body(refresh.to_string()),
        ),
        (
            "search",
            app.client
                .get(app.url("/agent-customer-search?q=a"))
                .bearer_auth(access),
        ),
        (
            "logout",
            app.client
                .delete(app.url("/refresh-tokens/mine"))
                .bearer_auth(access),
        ),
        ("readyz", app.client.get(app.url("/readyz"))),
    ]
}

/// Each request is answered 503 + `Retry-After: 5` with the JSON:API body within `bound`.
async fn assert_all_unavailable(
    requests: Vec<(&str, reqwest::RequestBuilder)>,
    bound: Duration,
    round: usize,
) {
    for (name, request) in requests {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 503, "{name}, round {round}");
        assert!(elapsed < bound, "{name} took {elapsed:?}");
        assert_eq!(response.headers()["retry-after"], "5");
        assert_eq!(response.headers()["content-type"], JSON_API);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"errors":[{"status":503,"detail":"Service temporarily unavailable. Please try again later."}]}),
            "{name}"
        );
    }
}

/// What needs no database keeps answering.
async fn assert_answers_without_the_database(app: &TestApp) {
    for (path, expected) in [
        ("/healthz", 200),
        ("/.well-known/jwks.json", 200),
        ("/nope", 404),
    ] {
        let status = app.client.get(app.url(path)).send().await.unwrap().status();
        assert_eq!(status, expected, "{path}");
    }
}

/// Polls `/readyz` until it answers 200 (the pool recovered without a restart).
async fn wait_until_ready(app: &TestApp, within: Duration) {
    let deadline = Instant::now() + within;
    while app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "no recovery within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server that accepts and then never answers: every request that needs the database answers
/// 503 within connect_timeout_ms + statement_timeout_ms, `/readyz` says so, the pool recovers
/// without a restart once bytes flow again, and the refresh tried meanwhile consumed nothing
/// (its transaction rolled back when the server finally answered).
async fn a_hung_database_is_503_within_the_bound_and_heals(backend: Backend) {
    let db = Arc::new(TestDatabase::create(backend));
    drop(db.connect()); // migrated before the proxy gets in the way
    let proxy = FaultProxy::start(upstream_address(&db.url));
    let mut settings = test_settings(&through_proxy(&db.url, proxy.port));
    settings.database.connect_timeout_ms = 500;
    settings.database.statement_timeout_ms = 1000;
    settings.database.pool_size = 4;
    settings.metrics.listen = "127.0.0.1:0".into();
    let app = start(settings, db.clone()).unwrap();
    let (access, refresh) = app.agent_session("hung@example.com").await;

    proxy.stall();
    for round in 0..2 {
        let requests = requests_needing_the_database(&app, "hung@example.com", &access, &refresh);
        // The bound is 1.5 s; slack for a noisy machine.
        assert_all_unavailable(requests, Duration::from_millis(3500), round).await;
        assert_answers_without_the_database(&app).await;
    }

    proxy.resume();
    wait_until_ready(&app, Duration::from_secs(20)).await;
    // The stuck work finishes before what it left behind is judged: every connection is back
    // in the pool.
    let metrics_url = format!("http://127.0.0.1:{}/metrics", app.metrics_port.unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric_sample(
        &reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "glue_db_pool_connections_in_use",
    ) > 0.0
    {
        assert!(Instant::now() < deadline, "the stuck work never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not consumed, and not taken for a replay either.
    let response = app.refresh(&json!(refresh)).await;
    assert_eq!(response.status(), 201);
    assert_eq!(app.search("q=a", &access).await.status(), 200);
}

backends!(servers: a_hung_database_is_503_within_the_bound_and_heals);

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
