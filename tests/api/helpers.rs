//! Test harness: every test gets its own database (a fresh SQLite file, or a freshly created
//! PostgreSQL database on the server `GLUE_TEST_DATABASE_URL` names) and the real application
//! on a free port, built by `Application::build` exactly as in production.
//!
//! [`backends!`] makes one variant of a scenario per backend. The PostgreSQL variants are
//! `#[ignore]`d, so a plain `cargo test` reports them as ignored (never as passed);
//! `cargo test -- --ignored` with `GLUE_TEST_DATABASE_URL` set runs them (CI does), and without
//! it they fail.

use std::path::PathBuf;
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use glue::db::{ConnectionManager, DbConnection};
use glue::settings::{Environment, Secret, Settings};
use glue::startup::Application;
use serde_json::{json, Value};

pub const DEMO_USERNAME: &str = "admin@spryker.com";
pub const DEMO_PASSWORD: &str = "change123";
pub const BASE_URL: &str = "http://glue.test";
pub const JSON_API: &str = "application/vnd.api+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

/// One RSA key pair (private PEM, public PEM) for the whole test binary.
pub fn test_key_pair() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| glue::oauth::keys::generate_pem().expect("key generation"))
}

/// The private key every test app signs with.
pub fn test_private_key() -> &'static str {
    &test_key_pair().0
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("GLUE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect("a PostgreSQL variant needs GLUE_TEST_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres")
}

/// The MariaDB/MySQL server tests create their databases on.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub fn mysql_server_url() -> String {
    std::env::var("GLUE_TEST_MYSQL_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect("a MySQL variant needs GLUE_TEST_MYSQL_URL, e.g. mysql://root@127.0.0.1:3306/mysql")
}

/// `postgres://host/db?x` with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    Postgres {
        admin_url: String,
        name: String,
    },
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Mysql {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    pub fn create(backend: Backend) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("glue-test-{id}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                TestDatabase {
                    url: dir.join("glue.sqlite3").display().to_string(),
                    cleanup: Cleanup::Directory(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_server_url();
                let name = format!("glue_test_{id}");
                let mut admin = diesel::PgConnection::establish(&admin_url)
                    .expect("GLUE_TEST_DATABASE_URL must reach a PostgreSQL server");
                admin
                    .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .expect("create test database");
                TestDatabase {
                    url: with_database(&admin_url, &name),
                    cleanup: Cleanup::Postgres { admin_url, name },
                }
            }
            Backend::Mysql => create_mysql_database(&id),
        }
    }

    pub fn connect(&self) -> DbConnection {
        let mut conn = ConnectionManager::new(&self.url, 5000)
            .unwrap()
            .establish()
            .expect("connect to the test database");
        glue::db::run_migrations(&mut conn).expect("migrations");
        conn
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
                }
            }
            #[cfg(feature = "mysql")]
            Cleanup::Mysql { admin_url, name } => {
                if let Ok(mut admin) = diesel::MysqlConnection::establish(admin_url) {
                    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"));
                    // glue's own database beside a shop's (schema_owner = "spryker").
                    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}_glue`"));
                }
            }
            #[cfg(not(feature = "mysql"))]
            Cleanup::Mysql { .. } => {}
        }
    }
}

/// A fresh MariaDB database with Spryker's charset (`utf8` / `utf8_unicode_ci`).
#[cfg(feature = "mysql")]
fn create_mysql_database(id: &str) -> TestDatabase {
    let admin_url = mysql_server_url();
    let name = format!("glue_test_{id}");
    let mut admin = diesel::MysqlConnection::establish(&admin_url)
        .expect("GLUE_TEST_MYSQL_URL must reach a MariaDB/MySQL server");
    admin
        .batch_execute(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8 COLLATE utf8_unicode_ci"
        ))
        .expect("create test database");
    TestDatabase {
        url: with_database(&admin_url, &name),
        cleanup: Cleanup::Mysql { admin_url, name },
    }
}

#[cfg(not(feature = "mysql"))]
fn create_mysql_database(_id: &str) -> TestDatabase {
    panic!("the MySQL variants need a build with `--features mysql`")
}

/// Settings as the tests use them: `config/test.toml` plus the test's database and key.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::load_for(Environment::Test).expect("test settings");
    settings.database.url = Secret::new(database_url);
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.oauth.private_key_pem = Secret::new(test_private_key());
    settings
}

/// The test apps' clock: the system's, moved by [`ManualClock::advance`] instead of sleeping.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms.fetch_add(
            i64::try_from(by.as_millis()).unwrap(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// Puts the clock `by` behind the system's.
    pub fn set_behind(&self, by: std::time::Duration) {
        self.offset_ms.store(
            -i64::try_from(by.as_millis()).unwrap(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

impl glue::clock::Clock for ManualClock {
    fn now(&self) -> chrono::NaiveDateTime {
        let offset = self.offset_ms.load(std::sync::atomic::Ordering::SeqCst);
        chrono::Utc::now().naive_utc() + chrono::TimeDelta::milliseconds(offset)
    }
}

/// A running application on its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: std::sync::Arc<ManualClock>,
    /// The `/metrics` listener, when `metrics.listen` was set.
    pub metrics_port: Option<u16>,
    handle: actix_web::dev::ServerHandle,
    // Dropped after the server is told to stop.
    pub db: std::sync::Arc<TestDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // `stop` sends its command at once; the server's own thread carries it out.
        drop(self.handle.stop(false));
    }
}

/// Starts the application in its own thread and actix system, the way `main` does.
pub fn start(settings: Settings, db: std::sync::Arc<TestDatabase>) -> Result<TestApp, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let server_settings = settings;
    let clock = std::sync::Arc::new(ManualClock::default());
    let server_clock = clock.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match Application::build_with_clock(server_settings, server_clock) {
                Ok(app) => {
                    let _ = tx.send(Ok((app.port(), app.metrics_port(), app.handle())));
                    let _ = app.run_until_stopped().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let (port, metrics_port, handle) = rx.recv().map_err(|e| e.to_string())??;
    Ok(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        clock,
        metrics_port,
        handle,
        db,
    })
}

/// A fresh database and the application on it, with `customize` applied to the settings.
pub fn spawn_app_with(backend: Backend, customize: impl FnOnce(&mut Settings)) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let db = std::sync::Arc::new(TestDatabase::create(backend));
    let mut settings = test_settings(&db.url);
    customize(&mut settings);
    start(settings, db).expect("application starts")
}

pub fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {})
}

/// Runs each named scenario `async fn name(backend: Backend)` once per backend, as
/// `name::sqlite`, `name::postgres` and `name::mysql`: `sqlite` always; `postgres` (needs
/// `GLUE_TEST_DATABASE_URL`) and `mysql` (needs `--features mysql` and `GLUE_TEST_MYSQL_URL`)
/// are ignored unless asked for with `--ignored` (CI runs them). `backends!(servers: …)` makes
/// only the server variants, `backends!(postgres: …)` only PostgreSQL's: the one mechanism for
/// every backend variant.
#[macro_export]
macro_rules! backends {
    (servers: $($name:ident),* $(,)?) => {
        $( $crate::backends!(@scenario [postgres, mysql] $name); )*
    };
    (postgres: $($name:ident),* $(,)?) => {
        $( $crate::backends!(@scenario [postgres] $name); )*
    };
    (mysql: $($name:ident),* $(,)?) => {
        $( $crate::backends!(@scenario [mysql] $name); )*
    };
    (@scenario [$($backend:ident),*] $name:ident) => {
        mod $name {
            $( $crate::backends!(@variant $backend $name); )*
        }
    };
    (@variant sqlite $name:ident) => {
        #[tokio::test]
        async fn sqlite() {
            super::$name($crate::helpers::Backend::Sqlite).await;
        }
    };
    (@variant postgres $name:ident) => {
        #[tokio::test]
        #[ignore = "needs a PostgreSQL server: GLUE_TEST_DATABASE_URL (CI runs it)"]
        async fn postgres() {
            super::$name($crate::helpers::Backend::Postgres).await;
        }
    };
    (@variant mysql $name:ident) => {
        #[tokio::test]
        #[ignore = "needs --features mysql and a MariaDB server: GLUE_TEST_MYSQL_URL (CI runs it)"]
        async fn mysql() {
            super::$name($crate::helpers::Backend::Mysql).await;
        }
    };
    ($($name:ident),* $(,)?) => {
        $( $crate::backends!(@scenario [sqlite, postgres, mysql] $name); )*
    };
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn conn(&self) -> DbConnection {
        self.db.connect()
    }

    /// POST a JSON:API document.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("Content-Type", JSON_API)
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// `POST /agent-access-tokens`, with `X-MFA-Code` when a second factor's code is given.
    pub async fn agent_login_with_code(
        &self,
        username: &str,
        password: &str,
        code: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/agent-access-tokens"))
            .header("Content-Type", JSON_API)
            .body(agent_login_body(username, password).to_string());
        if let Some(code) = code {
            request = request.header("X-MFA-Code", code);
        }
        request.send().await.expect("request")
    }

    pub async fn post_agent_login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/agent-access-tokens",
            &agent_login_body(username, password),
        )
        .await
    }

    /// Logs the demo agent in and returns the response body.
    pub async fn demo_agent_tokens(&self) -> Value {
        let response = self.post_agent_login(DEMO_USERNAME, DEMO_PASSWORD).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Inserts a user with a cheap bcrypt hash; returns its id.
    pub fn insert_user(&self, username: &str, password: &str, is_agent: bool, status: &str) -> i64 {
        let hash = glue::password::hash(password, 4).unwrap();
        self.insert_user_with_hash(username, &hash, is_agent, status)
    }

    pub fn insert_user_with_hash(
        &self,
        username: &str,
        hash: &str,
        is_agent: bool,
        status: &str,
    ) -> i64 {
        glue::agent::create(
            &mut self.conn(),
            &glue::agent::NewAgent {
                first_name: "Test",
                last_name: "User",
                username,
                password: hash,
                status: status_code(status),
                is_agent,
            },
        )
        .unwrap()
        .into()
    }

    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Verifies a token the way a client would: with the JWKS key its `kid` names.
    pub async fn verify_with_jwks(&self, token: &str) -> Value {
        let jwks = self.jwks().await;
        let header = jsonwebtoken::decode_header(token).unwrap();
        let kid = header.kid.expect("kid in header");
        let jwk = jwks.find(&kid).expect("kid listed in the JWKS");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["frontend"]);
        validation.set_issuer(&[BASE_URL]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("token verifies with the JWKS")
            .claims
    }
}

/// `spy_user.status` for a status name (Propel's ENUM index).
/// The body of `POST /agent-access-tokens`.
pub fn agent_login_body(username: impl serde::Serialize, password: impl serde::Serialize) -> Value {
    json!({"data":{"type":"agent-access-tokens","attributes":{"username":username,"password":password}}})
}

/// The body of `POST /access-tokens`.
pub fn customer_login_body(
    username: impl serde::Serialize,
    password: impl serde::Serialize,
) -> Value {
    json!({"data":{"type":"access-tokens","attributes":{"username":username,"password":password}}})
}

pub fn status_code(status: &str) -> i16 {
    match status {
        "active" => glue::agent::STATUS_ACTIVE,
        "blocked" => glue::agent::STATUS_BLOCKED,
        "deleted" => glue::agent::STATUS_DELETED,
        other => panic!("unknown status {other}"),
    }
}

/// The exact single-error body.
pub fn error_body(code: Option<&str>, status: u16, detail: &str) -> Value {
    match code {
        Some(code) => json!({"errors":[{"code":code,"status":status,"detail":detail}]}),
        None => json!({"errors":[{"status":status,"detail":detail}]}),
    }
}

/// Asserts status, JSON:API content type and the exact body.
pub async fn assert_error(
    response: reqwest::Response,
    code: Option<&str>,
    status: u16,
    detail: &str,
) {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        JSON_API
    );
    if status == 401 {
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            "Bearer realm=\"Access to shop API\""
        );
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, error_body(code, status, detail));
}

/// Decodes a JWT segment without verifying (to look at key order and the raw header).
pub fn jwt_segment(token: &str, index: usize) -> String {
    use base64::Engine;
    let segment = token.split('.').nth(index).unwrap();
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .unwrap(),
    )
    .unwrap()
}

impl TestApp {
    pub async fn refresh(&self, refresh_token: &Value) -> reqwest::Response {
        self.post(
            "/refresh-tokens",
            &json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":refresh_token}}}),
        )
        .await
    }

    pub async fn delete_refresh_token(
        &self,
        target: &str,
        access_token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .delete(self.url(&format!("/refresh-tokens/{target}")));
        if let Some(token) = access_token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.send().await.unwrap()
    }

    /// Creates an agent with a cheap hash and logs it in; returns (access, refresh).
    pub async fn agent_session(&self, username: &str) -> (String, String) {
        if glue::agent::find_by_username(&mut self.conn(), username)
            .unwrap()
            .is_none()
        {
            self.insert_user(username, "agent-pass", true, "active");
        }
        let response = self.post_agent_login(username, "agent-pass").await;
        assert_eq!(response.status(), 201);
        token_pair(response.json().await.unwrap())
    }
}

/// (accessToken, refreshToken) of a token response body.
pub fn token_pair(body: Value) -> (String, String) {
    let attributes = &body["data"]["attributes"];
    (
        attributes["accessToken"].as_str().unwrap().to_string(),
        attributes["refreshToken"].as_str().unwrap().to_string(),
    )
}

/// Signs `claims` with the test key (the key the test apps sign with) and the given header.
pub fn sign_with_test_key(header: jsonwebtoken::Header, claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(test_private_key().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// The `kid` the test key has.
pub fn test_key_id() -> String {
    glue::oauth::keys::KeySet::from_pems(test_private_key().as_bytes(), &[])
        .unwrap()
        .signing
        .kid
}

impl TestApp {
    /// Inserts a customer; `password` None = cannot log in. Returns its id.
    pub fn insert_customer(
        &self,
        reference: &str,
        email: &str,
        first: &str,
        last: &str,
        password: Option<&str>,
    ) -> i64 {
        let hash = password.map(|p| glue::password::hash(p, 4).unwrap());
        glue::customer::create(
            &mut self.conn(),
            &glue::customer::NewCustomer {
                customer_reference: reference,
                email,
                first_name: Some(first),
                last_name: Some(last),
                password: hash.as_deref(),
            },
        )
        .map(i64::from)
        .unwrap()
    }

    /// GET /agent-customer-search?{query} with the agent token in X-Agent-Authorization.
    pub async fn search(&self, query: &str, agent_token: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/agent-customer-search?{query}")))
            .header("X-Agent-Authorization", format!("Bearer {agent_token}"))
            .send()
            .await
            .unwrap()
    }

    pub async fn impersonate(&self, reference: &Value, agent_token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/agent-customer-impersonation-access-tokens"))
            .header("Content-Type", JSON_API)
            .header("X-Agent-Authorization", format!("Bearer {agent_token}"))
            .body(
                json!({"data":{"type":"agent-customer-impersonation-access-tokens","attributes":{"customerReference":reference}}})
                    .to_string(),
            )
            .send()
            .await
            .unwrap()
    }

    pub async fn customer_login(&self, username: &Value, password: &Value) -> reqwest::Response {
        self.post("/access-tokens", &customer_login_body(username, password))
            .await
    }
}

impl TestApp {
    /// POST /agent-access-tokens as if forwarded for `forwarded_for`.
    pub async fn post_agent_login_via(
        &self,
        username: &str,
        password: &str,
        forwarded_for: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/agent-access-tokens"))
            .header("Content-Type", JSON_API)
            .header("X-Forwarded-For", forwarded_for)
            .body(agent_login_body(username, password).to_string())
            .send()
            .await
            .unwrap()
    }
}

/// A refresh with `token` is refused with exactly 401/004.
pub async fn assert_refresh_fails(app: &TestApp, token: &str) {
    assert_error(
        app.refresh(&json!(token)).await,
        Some("004"),
        401,
        "Failed to refresh token.",
    )
    .await;
}

impl TestApp {
    /// The status of an agent login.
    pub async fn agent_login_status(&self, username: &str, password: &str) -> u16 {
        self.post_agent_login(username, password)
            .await
            .status()
            .as_u16()
    }
}

/// Runs the `glue` binary in `environment` on the test database, feeding `stdin`.
pub fn glue_in(
    environment: &str,
    db: &TestDatabase,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    glue_with_env(environment, db, &[], args, stdin)
}

/// The `glue` binary with `args`, in `environment` (`GLUE_ENV`), on the database `database_url`
/// (`DATABASE_URL`), logging warnings, with `env` set last (it may override any of them): the
/// one place a test assembles the command; run it with `.output()`, or see [`glue_with_env`].
pub fn glue_command(
    environment: &str,
    database_url: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_glue"));
    command
        .args(args)
        .env("GLUE_ENV", environment)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        // The bcrypt kernel is the settings' choice, whatever the test runner's environment says.
        .env_remove("BCRYPT_FORCE_BACKEND")
        .envs(env.iter().copied());
    command
}

/// [`glue_in`] with more environment variables.
pub fn glue_with_env(
    environment: &str,
    db: &TestDatabase,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut child = glue_command(environment, &db.url, env, args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run glue");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            // A command that refuses before reading its input may already have exited.
            match std::io::Write::write_all(&mut input, text.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.unwrap(),
            }
        }
    }
    child.wait_with_output().unwrap()
}

/// The value of the Prometheus sample line that starts with `series` (`name{labels}`), 0 when
/// absent.
pub fn metric_sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// A port nothing listens on right now (for a server or peer a test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server for the email second factor: Python's `aiosmtpd` (a maintained package,
/// installed by `.ci/run` into `target/ci-venv`), started per test with its `Mailbox` handler,
/// which writes every accepted mail into a Maildir the test reads. `GLUE_TEST_AIOSMTPD` names
/// the Python that has it; the tests that need it are ignored unless asked for (CI runs them).
pub struct SmtpServer {
    child: std::process::Child,
    pub port: u16,
    maildir: std::path::PathBuf,
}

impl SmtpServer {
    /// Plain SMTP, no authentication: `python -m aiosmtpd` with its Mailbox handler.
    pub fn start() -> Self {
        Self::spawn(|port, maildir| {
            vec![
                "-m".into(),
                "aiosmtpd".into(),
                "-n".into(),
                "-l".into(),
                format!("127.0.0.1:{port}"),
                "-c".into(),
                "aiosmtpd.handlers.Mailbox".into(),
                maildir.to_string(),
            ]
        })
    }

    /// STARTTLS required (the certificate `cert`/`key`), then AUTH as `user`/`password`
    /// (`fixtures/aiosmtpd_starttls_auth.py`).
    pub fn start_starttls_auth(cert: &str, key: &str, user: &str, password: &str) -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/fixtures/aiosmtpd_starttls_auth.py"
        );
        Self::spawn(|port, maildir| {
            [
                script,
                &port.to_string(),
                maildir,
                cert,
                key,
                user,
                password,
            ]
            .map(str::to_string)
            .to_vec()
        })
    }

    fn spawn(args: impl FnOnce(u16, &str) -> Vec<String>) -> Self {
        let python = std::env::var("GLUE_TEST_AIOSMTPD").expect(
            "an email variant needs GLUE_TEST_AIOSMTPD: a Python with aiosmtpd (.ci/run makes target/ci-venv/bin/python)",
        );
        let port = free_port();
        // Created by the handler (with its new/, cur/ and tmp/).
        let maildir = std::env::temp_dir().join(format!("glue-smtp-{}", uuid::Uuid::new_v4()));
        let child = std::process::Command::new(python)
            .args(args(port, maildir.to_str().unwrap()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let server = SmtpServer {
            child,
            port,
            maildir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }

    /// `mail.smtp_url` for it (plain SMTP on the loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail it accepted, oldest first (raw RFC 5322 text).
    pub fn mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, String, std::path::PathBuf)> = entries
            .map(|entry| entry.unwrap())
            .map(|entry| {
                let modified = entry.metadata().unwrap().modified().unwrap();
                (
                    modified,
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                )
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(.., path)| std::fs::read_to_string(path).unwrap())
            .collect()
    }

    /// The six-digit code in a mail of glue's (soft line breaks undone).
    pub fn code_in(mail: &str) -> String {
        let text = mail.replace("=\r\n", "").replace("=\n", "");
        let at = text
            .find("verification code: ")
            .unwrap_or_else(|| panic!("no code in {text}"))
            + "verification code: ".len();
        let code: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert_eq!(code.len(), 6, "{text}");
        code
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// Like [`backends!`], for scenarios that also need an SMTP server ([`SmtpServer`]): every
/// variant, SQLite's too, is ignored unless asked for (`.ci/run` sets `GLUE_TEST_AIOSMTPD` and
/// runs them).
#[macro_export]
macro_rules! mail_backends {
    (servers: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                #[ignore = "needs a PostgreSQL server and aiosmtpd: GLUE_TEST_DATABASE_URL, GLUE_TEST_AIOSMTPD (CI runs it)"]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
                #[tokio::test]
                #[ignore = "needs --features mysql, a MariaDB server and aiosmtpd: GLUE_TEST_MYSQL_URL, GLUE_TEST_AIOSMTPD (CI runs it)"]
                async fn mysql() {
                    super::$name($crate::helpers::Backend::Mysql).await;
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                #[ignore = "needs aiosmtpd: GLUE_TEST_AIOSMTPD (CI runs it)"]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
                #[tokio::test]
                #[ignore = "needs a PostgreSQL server and aiosmtpd: GLUE_TEST_DATABASE_URL, GLUE_TEST_AIOSMTPD (CI runs it)"]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
                #[tokio::test]
                #[ignore = "needs --features mysql, a MariaDB server and aiosmtpd: GLUE_TEST_MYSQL_URL, GLUE_TEST_AIOSMTPD (CI runs it)"]
                async fn mysql() {
                    super::$name($crate::helpers::Backend::Mysql).await;
                }
            }
        )*
    };
}
