//! Database access (Spryker's Propel layer, minus the ORM): one connection type over SQLite,
//! PostgreSQL and (with the `mysql` feature) MariaDB/MySQL, an r2d2 pool whose manager picks
//! the backend from the URL scheme and reports the real connection error, and the embedded
//! migrations.
//!
//! Queries live with their modules (`agent`, `oauth::refresh_token`, …) as plain functions that
//! take `&mut DbConnection` first and return `QueryResult`.

pub mod layout;
pub mod schema;

pub use layout::{Layout, SchemaOwner};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::secret::Secret;

/// The `[database]` settings.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// May hold a password (postgres://user:secret@host/db), hence `Secret`.
    pub url: Secret,
    pub pool_size: u32,
    pub connect_timeout_ms: u64,
    pub sqlite_busy_timeout_ms: u64,
    /// The server cancels a statement that runs longer (PostgreSQL `statement_timeout`, MariaDB
    /// `max_statement_time`, MySQL `max_execution_time`); a request's database work answers 503
    /// once `connect_timeout_ms + statement_timeout_ms` have passed, even when the server or the
    /// network stopped answering altogether.
    pub statement_timeout_ms: u64,
    /// Who owns the `spy_*` tables: glue (creates and seeds them) or the shop's Spryker (glue
    /// only reads and writes rows, and keeps its own tables in `glue_schema`). See [`layout`].
    pub schema_owner: SchemaOwner,
    /// `spryker` mode: the PostgreSQL schema (in the shop's database) or MySQL database (on the
    /// shop's server) of glue's own tables; empty = `glue` / `<shop database>_glue`.
    pub glue_schema: String,
    /// The time zone of the timestamps glue writes into and compares with Spryker's tables
    /// (an IANA name): Spryker's PHP writes local wall-clock time in its own zone. `UTC` unless
    /// the shop's PHP runs elsewhere. glue's own tables are always UTC.
    pub timezone: String,
}

impl DatabaseSettings {
    /// The parsed `timezone`.
    pub fn zone(&self) -> Result<chrono_tz::Tz, ConnectError> {
        self.timezone.trim().parse().map_err(|_| {
            ConnectError::Setup(format!(
                "database.timezone {:?} is not an IANA time zone (e.g. UTC, Europe/Berlin)",
                self.timezone
            ))
        })
    }
}

thread_local! {
    /// The zone of Spryker's timestamps for the database work this thread does (see [`now`]).
    static SHOP_ZONE: std::cell::Cell<chrono_tz::Tz> = const { std::cell::Cell::new(chrono_tz::UTC) };
}

/// Makes [`now`] on this thread answer in `zone` (the CLI, once it has its settings; `run` does
/// it for every request from the pool's setting).
pub fn use_zone(zone: chrono_tz::Tz) {
    SHOP_ZONE.with(|z| z.set(zone));
}

/// Now, as a timestamp in Spryker's tables: the wall-clock time of `database.timezone`,
/// without a zone (as PHP writes it). Every write into and comparison with those tables' times
/// uses it; the time of a repeated hour when clocks go back is ambiguous, as it is for PHP.
pub fn now() -> chrono::NaiveDateTime {
    let zone = SHOP_ZONE.with(std::cell::Cell::get);
    chrono::Utc::now().with_timezone(&zone).naive_local()
}

/// A connection to whichever backend `DATABASE_URL` names.
#[cfg(not(feature = "mysql"))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// A connection to whichever backend `DATABASE_URL` names.
#[cfg(feature = "mysql")]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
    Mysql(diesel::mysql::MysqlConnection),
}

impl DbConnection {
    /// Which backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Postgresql(_) => Backend::Postgresql,
            DbConnection::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(_) => Backend::Mysql,
        }
    }
}

/// The backend type diesel's `MultiConnection` derive generates (for boxed expressions).
pub type DbBackend = <DbConnection as diesel::Connection>::Backend;

/// The connection pool, with the time every request's database work must finish within.
#[derive(Clone)]
pub struct DbPool {
    inner: r2d2::Pool<ConnectionManager>,
    deadline: Duration,
    zone: chrono_tz::Tz,
}

impl DbPool {
    /// A pooled connection (waits at most `database.connect_timeout_ms`).
    pub fn get(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, r2d2::Error> {
        self.inner.get()
    }

    /// (open connections, idle connections).
    pub fn state(&self) -> (u32, u32) {
        let state = self.inner.state();
        (state.connections, state.idle_connections)
    }
}

/// Counts the pool's waits and timeouts into the metrics.
#[derive(Debug)]
struct PoolEvents(Arc<crate::metrics::Metrics>);

impl r2d2::HandleEvent for PoolEvents {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        if event.duration() >= Duration::from_millis(1) {
            self.0.pool_waits.inc();
        }
    }

    fn handle_timeout(&self, _event: r2d2::event::TimeoutEvent) {
        self.0.pool_timeouts.inc();
    }
}

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
#[cfg(feature = "mysql")]
pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
/// `schema_owner = "spryker"`: glue's own tables only (see [`layout`]).
pub const POSTGRES_SPRYKER_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("migrations/postgres-spryker");
#[cfg(feature = "mysql")]
pub const MYSQL_SPRYKER_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("migrations/mysql-spryker");

diesel::define_sql_function! {
    /// SQL `substr(text, start, length)` (1-based), on every backend.
    fn substr(text: diesel::sql_types::Text, start: diesel::sql_types::Integer, length: diesel::sql_types::Integer) -> diesel::sql_types::Text;
}

/// Inserts a row whose id comes from Propel's sequence `sequence` on PostgreSQL (`insert`
/// gets `Some(id)` and must write it) or from AUTO_INCREMENT on SQLite and MySQL (`None`); returns
/// the new id. `sequence` is a constant name, never input.
pub fn insert_with_id(
    conn: &mut DbConnection,
    sequence: &'static str,
    insert: impl FnOnce(&mut DbConnection, Option<i64>) -> QueryResult<usize>,
) -> QueryResult<i64> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    let last_id = match conn.backend() {
        Backend::Postgresql => {
            let id: i64 = diesel::select(sql::<BigInt>(&format!("nextval('{sequence}')")))
                .get_result(conn)?;
            insert(conn, Some(id))?;
            return Ok(id);
        }
        Backend::Sqlite => "last_insert_rowid()",
        Backend::Mysql => "CAST(LAST_INSERT_ID() AS SIGNED)",
    };
    insert(conn, None)?;
    diesel::select(sql::<BigInt>(last_id)).get_result(conn)
}

diesel::define_sql_function! {
    /// SQLite's `lower(text)`, replaced by a Unicode-aware one (see `ConnectionManager`).
    fn lower(text: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgresql,
    Sqlite,
    Mysql,
}

/// The forms `DATABASE_URL` may take, for error messages.
pub const ACCEPTED_URLS: &str = "`sqlite://path` or a plain file path without `://`, `postgres://…` or `postgresql://…`, `mysql://user:password@host:port/database`";

/// Why a database URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("unknown database URL scheme {0:?}: use {ACCEPTED_URLS}")]
    UnknownScheme(String),
    #[error("a mysql:// URL needs a build with MySQL support: `cargo build --release --features mysql` (links libmariadb; on Debian `apt-get install libmariadb-dev`)")]
    MysqlNotBuilt,
    #[error("the database URL is empty: use {ACCEPTED_URLS}")]
    Empty,
}

impl Backend {
    /// The backend a URL names. A plain path is an SQLite file; anything that looks like
    /// `scheme:` must be a scheme we serve, so a URL is never taken for a file name.
    pub fn of_url(url: &str) -> Result<Backend, UrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .filter(|scheme| {
                let mut chars = scheme.chars();
                chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                    && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            });
        match scheme.map(str::to_ascii_lowercase).as_deref() {
            None if !url.contains("://") => Ok(Backend::Sqlite),
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") if url.contains("://") => Ok(Backend::Postgresql),
            Some("mysql") if url.contains("://") => {
                if cfg!(feature = "mysql") {
                    Ok(Backend::Mysql)
                } else {
                    Err(UrlError::MysqlNotBuilt)
                }
            }
            Some(other) => Err(UrlError::UnknownScheme(other.to_string())),
            None => Err(UrlError::UnknownScheme(
                url.split("://").next().unwrap_or("").to_string(),
            )),
        }
    }
}

/// The SQLite file a URL names (`sqlite://path`, `sqlite:path` or a bare path).
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to the database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Url(#[from] UrlError),
}

/// r2d2 manager that dispatches on the URL scheme, so a PostgreSQL URL never silently becomes
/// an SQLite file name and a down server reports its own error.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
    backend: Backend,
    sqlite_busy_timeout_ms: u64,
    statement_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    layout: Layout,
}

impl ConnectionManager {
    /// A manager for `url`, refused when the URL names no backend this build serves.
    pub fn new(url: &str, sqlite_busy_timeout_ms: u64) -> Result<Self, UrlError> {
        Ok(ConnectionManager {
            url: url.trim().to_string(),
            backend: Backend::of_url(url)?,
            sqlite_busy_timeout_ms,
            statement_timeout_ms: None,
            connect_timeout_ms: None,
            layout: Layout::Glue,
        })
    }

    /// The manager the settings describe: URL, timeouts and layout.
    pub fn for_settings(settings: &DatabaseSettings) -> Result<Self, ConnectError> {
        settings.zone()?;
        let url = settings.url.expose();
        let layout = Layout::resolve(settings.schema_owner, &settings.glue_schema, url)
            .map_err(ConnectError::Setup)?;
        Ok(
            ConnectionManager::new(url, settings.sqlite_busy_timeout_ms)?
                .with_timeouts(settings.statement_timeout_ms, settings.connect_timeout_ms)
                .with_layout(layout),
        )
    }

    /// Where glue's own tables are (see [`layout`]).
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Bounds every statement on the server, and (PostgreSQL) the connection handshake.
    pub fn with_timeouts(mut self, statement_timeout_ms: u64, connect_timeout_ms: u64) -> Self {
        self.statement_timeout_ms = Some(statement_timeout_ms);
        self.connect_timeout_ms = Some(connect_timeout_ms);
        self
    }

    /// The PostgreSQL URL with libpq's `connect_timeout` (whole seconds, at least 2) unless the
    /// URL sets one.
    fn postgres_url(&self) -> String {
        match self.connect_timeout_ms {
            Some(ms) if !self.url.contains("connect_timeout=") => {
                let separator = if self.url.contains('?') { '&' } else { '?' };
                format!(
                    "{}{separator}connect_timeout={}",
                    self.url,
                    ms.div_ceil(1000).max(2)
                )
            }
            _ => self.url.clone(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Opens one connection (used by the pool and by the CLI).
    pub fn establish(&self) -> Result<DbConnection, ConnectError> {
        match self.backend {
            Backend::Postgresql => {
                let mut conn = PgConnection::establish(&self.postgres_url())?;
                if let Some(ms) = self.statement_timeout_ms {
                    conn.batch_execute(&format!("SET statement_timeout = {ms}"))?;
                }
                // diesel caches prepared statements; after five runs PostgreSQL may switch one
                // to a generic plan that ignores the parameters. For customer search that plan
                // walks the primary key for a rare prefix (67 ms instead of 0.2 ms on 100,000
                // customers). Our statements are small: planning each run costs microseconds.
                conn.batch_execute("SET plan_cache_mode = force_custom_plan")?;
                let mut conn = DbConnection::Postgresql(conn);
                self.layout.on_connect(&mut conn)?;
                Ok(conn)
            }
            Backend::Sqlite => {
                let path = sqlite_path(&self.url);
                if path.is_empty() || path == ":memory:" {
                    return Err(ConnectError::Setup(
                        "an SQLite database must be a file (each pooled connection would get its own in-memory database)".into(),
                    ));
                }
                create_private_file(std::path::Path::new(path))?;
                let mut conn = SqliteConnection::establish(path)?;
                // SQLite's own lower() folds ASCII only: glue's replaces it on every connection
                // (deterministic, so the `lower(column)` search indexes use it) with Unicode
                // lower-casing, the same Rust applies to the searched prefix.
                lower_utils::register_impl(&mut conn, |text: Option<String>| {
                    text.map(|text| text.to_lowercase())
                })?;
                // busy_timeout first: switching to WAL needs the lock, and parallel pool
                // start-up fails with "database is locked" in the other order.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    self.sqlite_busy_timeout_ms
                ))?;
                Ok(DbConnection::Sqlite(conn))
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql => {
                let mut conn = diesel::mysql::MysqlConnection::establish(&self.url)?;
                // Spryker's connection: utf8 text, times as written (UTC here).
                conn.batch_execute(
                    "SET NAMES utf8 COLLATE utf8_unicode_ci; SET time_zone = '+00:00'",
                )?;
                if let Some(ms) = self.statement_timeout_ms {
                    // MariaDB counts seconds, MySQL 8 milliseconds (and bounds SELECTs only);
                    // a lock wait gives up no later than the statement would.
                    let seconds = (ms as f64 / 1000.0).max(0.001);
                    if conn
                        .batch_execute(&format!("SET SESSION max_statement_time = {seconds}"))
                        .is_err()
                    {
                        conn.batch_execute(&format!("SET SESSION max_execution_time = {ms}"))?;
                    }
                    let lock_wait_s = ms.div_ceil(1000).max(1);
                    conn.batch_execute(&format!(
                        "SET SESSION innodb_lock_wait_timeout = {lock_wait_s}"
                    ))?;
                }
                let mut conn = DbConnection::Mysql(conn);
                self.layout.on_connect(&mut conn)?;
                Ok(conn)
            }
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql => Err(UrlError::MysqlNotBuilt.into()),
        }
    }
}

/// Creates the SQLite file (mode 0600) and its missing directories (0700) before SQLite opens
/// it: the file holds password hashes. SQLite gives its `-wal` and `-shm` files the database
/// file's permissions.
fn create_private_file(path: &std::path::Path) -> Result<(), ConnectError> {
    let setup = |what: &str, path: &std::path::Path, e: std::io::Error| {
        ConnectError::Setup(format!("cannot create the {what} {}: {e}", path.display()))
    };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(parent)
                .map_err(|e| setup("directory", parent, e))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(setup("database file", path, e)),
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1").map_err(ConnectError::Query)
    }

    /// A connection a panic left inside a transaction must not go back to the pool.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        use diesel::connection::TransactionManager;
        std::thread::panicking()
            || <DbConnection as diesel::Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Logs pool errors at warn level instead of r2d2's default of printing nothing useful.
#[derive(Debug)]
struct PoolErrorLogger;

impl r2d2::HandleError<ConnectError> for PoolErrorLogger {
    fn handle_error(&self, error: ConnectError) {
        log::warn!(target: "glue::db", "database connection failed: {error}");
    }
}

/// Builds the pool without waiting for a connection: a database that is down at start-up shows
/// up as 503 on requests and as "not ready" on /readyz, not as a hung boot.
pub fn build_pool(
    settings: &DatabaseSettings,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<DbPool, ConnectError> {
    let manager = ConnectionManager::for_settings(settings)?;
    let zone = settings.zone()?;
    // A server connection can die with the server or the network: check it on checkout.
    // An SQLite connection is a file handle that cannot.
    let test_on_check_out = manager.backend() != Backend::Sqlite;
    let inner = r2d2::Pool::builder()
        .max_size(settings.pool_size)
        .min_idle(Some(settings.pool_size.min(2)))
        .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .test_on_check_out(test_on_check_out)
        .error_handler(Box::new(PoolErrorLogger))
        .event_handler(Box::new(PoolEvents(metrics)))
        .build_unchecked(manager);
    Ok(DbPool {
        inner,
        deadline: Duration::from_millis(
            settings
                .connect_timeout_ms
                .saturating_add(settings.statement_timeout_ms),
        ),
        zone,
    })
}

/// Checks, prepares and migrates the database `manager` connects to, as its layout asks:
/// everything `glue migrate` and `glue serve` do before serving. Returns the migrations applied.
///
/// `spryker` layout: refuses (naming each piece) when the shop's tables lack what glue needs,
/// and otherwise creates only glue's own schema or database and tables — never a `spy_*` one.
/// `glue` layout: refuses a database that already holds Spryker tables glue did not create.
pub fn migrate(manager: &ConnectionManager) -> Result<usize, ConnectError> {
    let layout = manager.layout().clone();
    // On MySQL glue's database may not exist yet: connect to the shop's and move over.
    let mut conn = match &layout {
        Layout::Spryker { .. } if manager.backend() == Backend::Mysql => {
            manager.clone().with_layout(Layout::Glue).establish()?
        }
        _ => manager.establish()?,
    };
    if layout.is_spryker() {
        let problems = layout::check_shop(&mut conn, &layout)?;
        if !problems.is_empty() {
            return Err(ConnectError::Setup(format!(
                "the shop's database lacks what glue needs (database.schema_owner = \"spryker\"): {}",
                problems.join("; ")
            )));
        }
    } else if layout::holds_foreign_spryker_tables(&mut conn)? {
        return Err(ConnectError::Setup(
            "the database already holds Spryker tables that glue did not create: to serve a shop's own database set database.schema_owner = \"spryker\" (GLUE__DATABASE__SCHEMA_OWNER=spryker)".into(),
        ));
    }
    run_migrations_in(&mut conn, &layout)
}

/// Runs every pending migration of the connection's backend in the glue-owned layout (tests
/// and tools that connect by hand; services go through [`migrate`]).
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, ConnectError> {
    run_migrations_in(conn, &Layout::Glue)
}

/// Runs every pending migration of `layout`. An advisory lock (PostgreSQL) or named lock
/// (MySQL) keeps two instances that start together from migrating at the same time.
fn run_migrations_in(conn: &mut DbConnection, layout: &Layout) -> Result<usize, ConnectError> {
    const MIGRATION_LOCK: i64 = 0x676c_7565; // "glue"
    let spryker = layout.is_spryker();
    let applied = match conn {
        DbConnection::Postgresql(_) => {
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let result = layout::prepare(conn, layout).and_then(|()| {
                let DbConnection::Postgresql(pg) = conn else {
                    unreachable!()
                };
                let migrations = if spryker {
                    POSTGRES_SPRYKER_MIGRATIONS
                } else {
                    POSTGRES_MIGRATIONS
                };
                pg.run_pending_migrations(migrations)
                    .map(|v| v.len())
                    .map_err(|e| ConnectError::Setup(format!("migration failed: {e}")))
            });
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            result
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.len())
            .map_err(|e| ConnectError::Setup(format!("migration failed: {e}"))),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(_) => {
            conn.batch_execute("DO GET_LOCK('glue_migrations', 60)")?;
            let result = layout::prepare(conn, layout).and_then(|()| {
                let DbConnection::Mysql(mysql) = conn else {
                    unreachable!()
                };
                let migrations = if spryker {
                    MYSQL_SPRYKER_MIGRATIONS
                } else {
                    MYSQL_MIGRATIONS
                };
                mysql
                    .run_pending_migrations(migrations)
                    .map(|v| v.len())
                    .map_err(|e| ConnectError::Setup(format!("migration failed: {e}")))
            });
            conn.batch_execute("DO RELEASE_LOCK('glue_migrations')")?;
            result
        }
    };
    applied
}

/// SQLite: copies the write-ahead log into the database now, without waiting for anyone
/// (`PRAGMA wal_checkpoint(PASSIVE)`), so a long housekeeping run pays for its own checkpoints
/// instead of the next request that commits. Other backends: nothing to do.
pub fn checkpoint(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    if conn.backend() == Backend::Sqlite {
        diesel::connection::SimpleConnection::batch_execute(
            conn,
            "PRAGMA wal_checkpoint(PASSIVE)",
        )?;
    }
    Ok(())
}

/// Runs `f` in a transaction that holds the write lock from its first statement: `BEGIN
/// IMMEDIATE` on SQLite (a deferred transaction that reads first and writes later can fail
/// with SQLITE_BUSY_SNAPSHOT instead of waiting for the lock), a normal transaction on
/// PostgreSQL and MySQL, where row locks and re-checked conditions do that job. `f` must not open
/// transactions of its own.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(_) => {
            conn.batch_execute("BEGIN IMMEDIATE")?;
            // A panic must not hand the pool a connection that is still inside a transaction.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
            let result = match result {
                Ok(result) => result,
                Err(panic) => {
                    let _ = conn.batch_execute("ROLLBACK");
                    std::panic::resume_unwind(panic);
                }
            };
            let result = result.and_then(|value| {
                if abandoned() {
                    Err(diesel::result::Error::RollbackTransaction.into())
                } else {
                    Ok(value)
                }
            });
            match result {
                Ok(value) => match conn.batch_execute("COMMIT") {
                    Ok(()) => Ok(value),
                    Err(e) => {
                        let _ = conn.batch_execute("ROLLBACK");
                        Err(e.into())
                    }
                },
                Err(e) => {
                    let _ = conn.batch_execute("ROLLBACK");
                    Err(e)
                }
            }
        }
        // Row locks and re-checked conditions do the job on the servers.
        _ => conn.transaction(|conn| {
            let value = f(conn)?;
            if abandoned() {
                return Err(diesel::result::Error::RollbackTransaction.into());
            }
            Ok(value)
        }),
    }
}

/// Runs `attempt` again (up to eight more times, after short growing pauses) when the database chose it as a deadlock victim
/// or refused it as a serialization failure: InnoDB's gap locks make concurrent writers to the
/// same keys deadlock where PostgreSQL and SQLite would wait. Each attempt must be a whole
/// transaction (it was rolled back).
pub fn retry_deadlocks<T>(mut attempt: impl FnMut() -> QueryResult<T>) -> QueryResult<T> {
    let mut tries = 0;
    loop {
        match attempt() {
            Err(error) if tries < 8 && is_deadlock(&error) => {
                tries += 1;
                // Victims that retry in step deadlock again: spread them out a little.
                let jitter = u64::from(rand::random::<u8>() % 8);
                std::thread::sleep(Duration::from_millis((1 << tries) + jitter));
            }
            other => return other,
        }
    }
}

/// True when the error only asks for the transaction to be run again (see [`retry_deadlocks`]):
/// a serialization failure (MySQL reports its deadlocks so) or PostgreSQL's "deadlock detected".
pub fn is_deadlock(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        Error::DatabaseError(_, info) => info.message().contains("deadlock detected"),
        _ => false,
    }
}

/// Exact (byte-wise) equality of a text column with `value` where the collation ignores case:
/// on MySQL `BINARY column = value` (combined with `column = value`, which keeps the index);
/// `None` elsewhere, where `=` is exact already.
pub fn exactly<QS>(
    backend: Backend,
    column: &'static str,
    value: &str,
) -> Option<Box<dyn BoxableExpression<QS, DbBackend, SqlType = diesel::sql_types::Bool>>> {
    match backend {
        Backend::Mysql => Some(Box::new(
            diesel::dsl::sql::<diesel::sql_types::Bool>(&format!("BINARY {column} = "))
                .bind::<diesel::sql_types::Text, _>(value.to_string()),
        )),
        _ => None,
    }
}

/// A database failure, as the layers above see it: unreachable or busy (answered with 503),
/// or anything else (a bug or a constraint violation: 500). The cause is kept for the log.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database query failed")]
    Query(#[source] diesel::result::Error),
    #[error("the database task stopped before finishing")]
    Task,
    #[error("the database did not answer within {0:?}")]
    TimedOut(Duration),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        if is_unavailable(&e) {
            DbError::Unavailable(Box::new(e))
        } else {
            DbError::Query(e)
        }
    }
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> Self {
        DbError::Unavailable(Box::new(e))
    }
}

thread_local! {
    /// Set on a blocking thread while it runs one request's database work: true once the
    /// request has given up waiting for it.
    static ABANDONED: std::cell::RefCell<Option<Arc<AtomicBool>>> =
        const { std::cell::RefCell::new(None) };
}

/// True when the request this thread works for has already answered 503 (its deadline passed
/// while the database did not answer): a transaction must not commit then.
fn abandoned() -> bool {
    ABANDONED.with(|flag| {
        flag.borrow()
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    })
}

/// Runs `f` with a pooled connection on the blocking thread pool, never on an async worker:
/// pool checkout and every query of a request happen inside one such call. When the database
/// does not finish within the pool's deadline (a hung server, a black-holed network) the
/// request gets `Unavailable` at once; the stuck work goes on in the background and any write
/// transaction in it rolls back instead of committing when the database answers again.
pub async fn run<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let inner = pool.inner.clone();
    let zone = pool.zone;
    let flag = Arc::new(AtomicBool::new(false));
    let worker_flag = flag.clone();
    let work = actix_web::rt::task::spawn_blocking(move || {
        ABANDONED.with(|slot| *slot.borrow_mut() = Some(worker_flag));
        use_zone(zone);
        let result = inner
            .get()
            .map_err(|e| DbError::from(e).into())
            .and_then(|mut conn| f(&mut conn));
        ABANDONED.with(|slot| *slot.borrow_mut() = None);
        result
    });
    match actix_web::rt::time::timeout(pool.deadline, work).await {
        Ok(joined) => joined.unwrap_or_else(|_| Err(DbError::Task.into())),
        Err(_) => {
            flag.store(true, Ordering::SeqCst);
            Err(DbError::TimedOut(pool.deadline).into())
        }
    }
}

/// False for text no backend can hold or match: PostgreSQL refuses NUL bytes in text, so
/// lookups with one answer "not found" on every backend instead of failing on one.
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// True when the error means the database could not be reached or is busy (answered with 503),
/// as opposed to a bug or a constraint violation (500).
fn is_unavailable(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => true,
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked")
                || message.contains("database table is locked")
                || message.contains("server closed the connection")
                || message.contains("terminating connection")
                || message.contains("no connection to the server")
                || message.contains("could not connect")
                || message.contains("could not receive data")
                || message.contains("could not send data")
                || message.contains("connection to server")
                || message.contains("SSL SYSCALL error")
                || message.contains("server has gone away")
                || message.contains("canceling statement due to statement timeout")
                || message.contains("canceling statement due to lock timeout")
                || message.contains("max_statement_time exceeded")
                || message.contains("maximum statement execution time exceeded")
                || message.contains("Lost connection to")
                || message.contains("Can't connect to")
                || message.contains("Lock wait timeout exceeded")
                || message.contains("Deadlock found")
        }
        _ => false,
    }
}
