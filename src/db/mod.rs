//! Database access (Spryker's Propel layer, minus the ORM): one connection type over SQLite,
//! PostgreSQL and (with the `mysql` feature) MariaDB/MySQL, an r2d2 pool whose manager picks
//! the backend from the URL scheme and reports the real connection error, and the embedded
//! migrations.
//!
//! Queries live with their modules (`agent`, `oauth::refresh_token`, …) as plain functions that
//! take `&mut DbConnection` first and return `QueryResult`.

pub mod cached;
pub mod checkpointer;
pub mod dialect;
pub mod schema;
pub mod site_migrations;

pub use cached::{first_match, update_cached, Verbatim};
pub use checkpointer::Checkpointer;
pub use dialect::layout::{self, Layout, SchemaOwner, ShopMfaTables};
pub use dialect::{
    checkpoint, insert_with_id, is_deadlock, migrate, sqlite_compile_options, sqlite_path,
    write_transaction, Backend, Condition, UrlError, WriteLock, ACCEPTED_URLS,
};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::secret::Secret;
use crate::threads::Lane;

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
    /// At start-up, wait up to this many seconds for the database to accept a connection
    /// (orchestrators that start glue before its database); 0 = fail at once.
    pub startup_wait_s: u64,
    /// A folder of the deployment's own migrations, one subfolder per engine, applied after
    /// glue's (see [`site_migrations`]); empty = none. Refused in `spryker` mode.
    pub site_migrations_path: String,
    /// `spryker` mode: whether the shop installed `spryker/multi-factor-auth` (`auto`,
    /// `present`, `absent`; see [`ShopMfaTables`]).
    pub shop_mfa_tables: ShopMfaTables,
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
    in_shop_zone(chrono::Utc::now().naive_utc())
}

/// `utc` as a timestamp in Spryker's tables (see [`now`]).
pub fn in_shop_zone(utc: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    let zone = SHOP_ZONE.with(std::cell::Cell::get);
    utc.and_utc().with_timezone(&zone).naive_local()
}

/// A timestamp from Spryker's tables (the shop's wall-clock time) in UTC; the earlier reading of
/// a repeated hour, none for an hour the clocks skipped.
pub fn from_shop_zone(local: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
    use chrono::TimeZone;
    let zone = SHOP_ZONE.with(std::cell::Cell::get);
    zone.from_local_datetime(&local)
        .earliest()
        .map(|at| at.naive_utc())
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

/// Counts the pool's waits and timeouts into the metrics, and tells the outage log when a
/// connection is made again.
#[derive(Debug)]
struct PoolEvents(Arc<crate::metrics::Metrics>, Arc<OutageLog>);

impl r2d2::HandleEvent for PoolEvents {
    fn handle_acquire(&self, _event: r2d2::event::AcquireEvent) {
        self.1.recovered();
    }

    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        if event.duration() >= Duration::from_millis(1) {
            self.0.pool_waits.inc();
        }
    }

    fn handle_timeout(&self, _event: r2d2::event::TimeoutEvent) {
        self.0.pool_timeouts.inc();
    }
}

diesel::define_sql_function! {
    /// SQL `substr(text, start, length)` (1-based), on every backend.
    fn substr(text: diesel::sql_types::Text, start: diesel::sql_types::Integer, length: diesel::sql_types::Integer) -> diesel::sql_types::Text;
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
    site_migrations: Option<site_migrations::SiteMigrations>,
    /// SQLite: whether a connection copies the write-ahead log back itself after a commit
    /// (SQLite's default); for the service's pool, whose log a [`Checkpointer`] keeps, only
    /// as a safety net (see [`checkpointer::POOL_AUTOCHECKPOINT_PAGES`]).
    sqlite_autocheckpoint: bool,
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
            site_migrations: None,
            sqlite_autocheckpoint: true,
        })
    }

    /// The manager the settings describe: URL, timeouts and layout.
    pub fn for_settings(settings: &DatabaseSettings) -> Result<Self, ConnectError> {
        settings.zone()?;
        let manager =
            ConnectionManager::new(settings.url.expose(), settings.sqlite_busy_timeout_ms)?;
        let layout = Layout::resolve(
            settings.schema_owner,
            &settings.glue_schema,
            manager.backend,
            &manager.url,
        )
        .map_err(ConnectError::Setup)?
        .with_shop_mfa(settings.shop_mfa_tables);
        let site_path = settings.site_migrations_path.trim();
        let site_migrations = if site_path.is_empty() {
            None
        } else if layout.is_spryker() {
            return Err(ConnectError::Setup(
                "database.site_migrations_path is set, but database.schema_owner = \"spryker\": the shop's back office (Zed) owns its users and tables, so glue applies no migrations of its own to them; leave database.site_migrations_path empty".into(),
            ));
        } else {
            Some(site_migrations::SiteMigrations::new(site_path))
        };
        Ok(ConnectionManager {
            site_migrations,
            ..manager
                .with_timeouts(settings.statement_timeout_ms, settings.connect_timeout_ms)
                .with_layout(layout)
        })
    }

    /// The deployment's own migrations, applied after glue's (see [`site_migrations`]).
    pub fn site_migrations(&self) -> Option<&site_migrations::SiteMigrations> {
        self.site_migrations.as_ref()
    }

    /// SQLite: connections that leave checkpoints to a [`Checkpointer`] (see there), for the
    /// service's pool; only [`Checkpointer::start`] hands them out, with the thread that does
    /// them. Other backends: unchanged.
    pub(in crate::db) fn without_autocheckpoint(mut self) -> Self {
        self.sqlite_autocheckpoint = false;
        self
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

    /// Opens one connection (used by the pool and by the CLI), set up as its engine needs.
    pub fn establish(&self) -> Result<DbConnection, ConnectError> {
        self.backend.establish(self)
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

/// How often a repeated connection failure is summarised while the database stays away.
const OUTAGE_SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The log of an outage: the pool retries its connections all the time, so the first failure
/// is logged at `warn`, repeats of the same message are counted and summarised once a minute
/// (a different message is logged at once), and the recovery is logged once.
#[derive(Debug, Default)]
struct OutageLog {
    state: std::sync::Mutex<OutageState>,
}

#[derive(Debug, Default)]
struct OutageState {
    /// The message being repeated, while the database is away.
    message: Option<String>,
    since: Option<std::time::Instant>,
    summarised: Option<std::time::Instant>,
    repeats: u64,
    failures: u64,
}

impl OutageState {
    /// The line to log (at `warn`) for a failure with `message` at `now`, if any.
    fn failed(&mut self, message: String, now: std::time::Instant) -> Option<String> {
        self.failures += 1;
        if self.message.as_deref() == Some(message.as_str()) {
            self.repeats += 1;
            let due = self
                .summarised
                .is_some_and(|at| now.duration_since(at) >= OUTAGE_SUMMARY_EVERY);
            if !due {
                return None;
            }
            let line = format!(
                "database connection still failing: {message} (repeated {} times in the last {}s)",
                self.repeats,
                OUTAGE_SUMMARY_EVERY.as_secs()
            );
            self.repeats = 0;
            self.summarised = Some(now);
            return Some(line);
        }
        self.since.get_or_insert(now);
        self.summarised = Some(now);
        self.repeats = 0;
        let line = format!("database connection failed: {message}");
        self.message = Some(message);
        Some(line)
    }

    /// The line to log (at `info`) when a connection is made at `now`, once per outage.
    fn recovered(&mut self, now: std::time::Instant) -> Option<String> {
        let since = self.since.take()?;
        let line = format!(
            "database connection recovered after {:.0?} ({} failed attempts)",
            now.duration_since(since),
            self.failures
        );
        *self = OutageState::default();
        Some(line)
    }
}

impl OutageLog {
    fn failed(&self, message: String) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(line) = state.failed(message, std::time::Instant::now()) {
            log::warn!(target: "glue::db", "{line}");
        }
    }

    fn recovered(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(line) = state.recovered(std::time::Instant::now()) {
            log::info!(target: "glue::db", "{line}");
        }
    }
}

/// Logs pool errors through the [`OutageLog`] instead of r2d2's default of printing nothing
/// useful.
#[derive(Debug)]
struct PoolErrorLogger(Arc<OutageLog>);

impl r2d2::HandleError<ConnectError> for PoolErrorLogger {
    fn handle_error(&self, error: ConnectError) {
        self.0.failed(error.to_string());
    }
}

/// Builds the pool of `manager` (made from `settings`, see [`ConnectionManager::for_settings`])
/// without waiting for a connection: a database that is down at start-up shows up as 503 on
/// requests and as "not ready" on /readyz, not as a hung boot.
pub fn build_pool(
    manager: ConnectionManager,
    settings: &DatabaseSettings,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<DbPool, ConnectError> {
    let zone = settings.zone()?;
    // A server connection can die with the server or the network: check it on checkout.
    let test_on_check_out = manager.backend().connections_can_die();
    let outage = Arc::new(OutageLog::default());
    let inner = r2d2::Pool::builder()
        .max_size(settings.pool_size)
        .min_idle(Some(settings.pool_size.min(2)))
        .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .test_on_check_out(test_on_check_out)
        .error_handler(Box::new(PoolErrorLogger(outage.clone())))
        .event_handler(Box::new(PoolEvents(metrics, outage)))
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

/// Runs every pending migration of the connection's backend in the glue-owned layout (tests
/// and tools that connect by hand; services go through [`migrate`]).
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, ConnectError> {
    dialect::run_migrations_in(conn, &Layout::Glue, None)
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
        if dialect::is_unavailable(&e) {
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
pub(crate) fn abandoned() -> bool {
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
    run_in(pool, None, f).await
}

/// [`run`] on `lane`'s threads instead of the shared blocking pool: work that must yield the CPU
/// to everything else (customer searches, whose SQL runs inside the process on SQLite) and may
/// hold no more connections than the lane has threads. The deadline counts from the call, so a
/// job that waits behind abandoned ones answers `Unavailable` like one the database kept
/// waiting, and a job whose request answered so before it started is skipped.
pub async fn run_on<T, E, F>(lane: &Lane, pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    run_in(pool, Some(lane), f).await
}

async fn run_in<T, E, F>(pool: &DbPool, lane: Option<&Lane>, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let inner = pool.inner.clone();
    let zone = pool.zone;
    let flag = Arc::new(AtomicBool::new(false));
    let worker_flag = flag.clone();
    let deadline = pool.deadline;
    let job = move || {
        if worker_flag.load(Ordering::SeqCst) {
            // Queued behind work that outlived its deadline, and answered 503 meanwhile: nobody
            // waits for this any more.
            return Err(DbError::TimedOut(deadline).into());
        }
        ABANDONED.with(|slot| *slot.borrow_mut() = Some(worker_flag));
        use_zone(zone);
        let result = inner
            .get()
            .map_err(|e| DbError::from(e).into())
            .and_then(|mut conn| f(&mut conn));
        ABANDONED.with(|slot| *slot.borrow_mut() = None);
        result
    };
    let work = async move {
        match lane {
            None => actix_web::rt::task::spawn_blocking(job)
                .await
                .map_err(|_| DbError::Task),
            Some(lane) => lane.run(job).await.map_err(|_| DbError::Task),
        }
    };
    match actix_web::rt::time::timeout(pool.deadline, work).await {
        Ok(finished) => finished.unwrap_or_else(|task| Err(task.into())),
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

#[cfg(test)]
mod tests {
    use super::{OutageState, OUTAGE_SUMMARY_EVERY};
    use std::time::{Duration, Instant};

    /// `.cargo/config.toml` compiles the bundled SQLite without the process-wide mutexes of a
    /// shared page cache, its overflow statistics and memory statistics: with them, a customer
    /// search preempted on its low-priority thread while holding one stalls every refresh and
    /// login that touches SQLite.
    #[test]
    fn the_bundled_sqlite_shares_no_page_cache_between_connections() {
        use diesel::Connection;
        let mut conn =
            super::DbConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
        let options = super::sqlite_compile_options(&mut conn).unwrap();
        assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        for wanted in ["DEFAULT_MEMSTATUS=0", "DISABLE_PAGECACHE_OVERFLOW_STATS"] {
            assert!(options.iter().any(|o| o == wanted), "{wanted}: {options:?}");
        }
    }

    /// A search queued behind one that outlived the pool's deadline answers 503 at its own
    /// deadline, and when its turn on the lane finally comes it is skipped: no connection, no
    /// query for a request nobody waits for.
    #[actix_web::test]
    async fn a_lane_job_whose_request_gave_up_before_it_started_is_skipped() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let path = std::env::temp_dir().join(format!("glue-lane-{}.db", std::process::id()));
        let manager =
            super::ConnectionManager::new(&format!("sqlite://{}", path.display()), 1000).unwrap();
        let pool = super::DbPool {
            inner: r2d2::Pool::builder().max_size(2).build_unchecked(manager),
            deadline: Duration::from_millis(100),
            zone: chrono_tz::UTC,
        };
        let lane =
            crate::threads::Lane::new("glue-test-db-lane", 1, crate::threads::Priority::Nice(0))
                .unwrap();
        let (slow_done, queued_ran) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let slow = {
            let done = slow_done.clone();
            super::run_on(&lane, &pool, move |_| -> Result<(), super::DbError> {
                std::thread::sleep(Duration::from_millis(400));
                done.store(true, Ordering::SeqCst);
                Ok(())
            })
        };
        let queued = {
            let ran = queued_ran.clone();
            super::run_on(&lane, &pool, move |_| -> Result<(), super::DbError> {
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
        };
        let (slow, queued) = tokio::join!(slow, queued);
        assert!(matches!(slow, Err(super::DbError::TimedOut(_))), "{slow:?}");
        assert!(
            matches!(queued, Err(super::DbError::TimedOut(_))),
            "{queued:?}"
        );
        // The slow job goes on to the end; the one behind it is skipped, and the lane serves
        // the next job as usual.
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        let after = super::run_on(&lane, &pool, |_| -> Result<u8, super::DbError> { Ok(7) }).await;
        assert_eq!(after.unwrap(), 7);
        assert!(slow_done.load(Ordering::SeqCst));
        assert!(!queued_ran.load(Ordering::SeqCst));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_outage_is_logged_once_then_summarised_then_its_recovery_once() {
        let start = Instant::now();
        let mut state = OutageState::default();
        let refused = || "connection refused".to_string();
        assert!(state
            .failed(refused(), start)
            .unwrap()
            .contains("failed: connection refused"));
        for i in 1..=20 {
            let at = start + Duration::from_secs(i);
            assert_eq!(
                state.failed(refused(), at),
                None,
                "repeat {i} is counted, not logged"
            );
        }
        let summary = state
            .failed(
                refused(),
                start + OUTAGE_SUMMARY_EVERY + Duration::from_secs(1),
            )
            .unwrap();
        assert!(summary.contains("repeated 21 times"), "{summary}");
        let other = state
            .failed("timed out".into(), start + Duration::from_secs(70))
            .unwrap();
        assert!(other.contains("failed: timed out"), "{other}");
        let recovered = state.recovered(start + Duration::from_secs(90)).unwrap();
        assert!(
            recovered.contains("recovered after") && recovered.contains("23 failed attempts"),
            "{recovered}"
        );
        assert_eq!(state.recovered(start + Duration::from_secs(91)), None);
    }
}
