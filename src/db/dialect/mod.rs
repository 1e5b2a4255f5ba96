//! The one place that knows the database engines apart (Propel's adapters): which engine a
//! URL names, how a connection is set up, how ids come back from an insert (Propel's sequences
//! on PostgreSQL, AUTO_INCREMENT elsewhere), how text is compared (exactly, or folded to lower
//! case the way each engine folds it), how a write transaction takes its lock, which
//! migrations run under which lock, and which errors mean "the database is unavailable".
//! Repositories say *what* they want; the methods of [`Backend`] say *how* on each engine, and
//! nothing outside this module matches on the engine. [`layout`] is the part about a shop's
//! own database (where glue's tables live beside Spryker's).

pub mod layout;

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::site_migrations::SiteMigrations;
use super::{abandoned, ConnectError, ConnectionManager, DbBackend, DbConnection};
use layout::Layout;

diesel::define_sql_function! {
    /// SQLite's `lower(text)`, replaced by a Unicode-aware one (see [`Backend::establish`]).
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

/// A MySQL column's collation, as [`Backend::folded_key`] needs it.
#[derive(Debug, Clone)]
struct Collation {
    charset: String,
    name: String,
    /// The hex weight of a space, when the collation pads (trailing spaces do not count).
    padding: Option<String>,
}

/// The collation of `table.column` in the connection's database, read once per process (a
/// process serves one database); Spryker's `utf8` / `utf8_unicode_ci` when it cannot be read.
fn mysql_collation(
    conn: &mut DbConnection,
    table: &'static str,
    column: &'static str,
) -> QueryResult<Collation> {
    static KNOWN: std::sync::OnceLock<Collation> = std::sync::OnceLock::new();
    if let Some(known) = KNOWN.get() {
        return Ok(known.clone());
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        charset: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        name: Option<String>,
    }
    let found: Option<Row> = diesel::sql_query(
        "SELECT CHARACTER_SET_NAME AS charset, COLLATION_NAME AS name FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
    )
    .bind::<Text, _>(table)
    .bind::<Text, _>(column)
    .get_result(conn)
    .optional()?;
    let plain = |name: &str| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let (charset, name) = match found {
        Some(Row {
            charset: Some(charset),
            name: Some(name),
        }) if plain(&charset) && plain(&name) => (charset, name),
        _ => ("utf8".to_string(), "utf8_unicode_ci".to_string()),
    };
    #[derive(QueryableByName)]
    struct Padding {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        pads: bool,
        #[diesel(sql_type = Text)]
        space: String,
    }
    let padding: Padding = diesel::sql_query(format!(
        "SELECT (CONVERT('a' USING {charset}) COLLATE {name} = CONVERT('a ' USING {charset})) AS pads, \
         HEX(WEIGHT_STRING(CONVERT(' ' USING {charset}) COLLATE {name})) AS space"
    ))
    .get_result(conn)?;
    let collation = Collation {
        charset,
        name,
        padding: padding.pads.then_some(padding.space),
    };
    Ok(KNOWN.get_or_init(|| collation).clone())
}

/// A condition on a row, for boxed queries on any table.
pub type Condition<QS> = Box<dyn BoxableExpression<QS, DbBackend, SqlType = Bool>>;

/// What a write transaction locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteLock {
    /// The whole database (SQLite): every other writer waits, and gets the lock soon after it
    /// comes free (see `lock_pause`).
    Database,
    /// The rows it touches (PostgreSQL, MySQL).
    Rows,
}

/// `value` as a `LIKE` literal with `!` as the escape character.
fn like_literal(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '%' | '_' | '!') {
            escaped.push('!');
        }
        escaped.push(c);
    }
    escaped
}

/// The smallest string greater than every string that starts with `prefix` (`None` when there
/// is none): the upper bound of an index range for a prefix.
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl Backend {
    /// `column` folded to lower case the way this engine can index it.
    fn folded(self, column: &str) -> String {
        match self {
            Backend::Postgresql => format!("lower({column}) COLLATE \"C\""),
            _ => format!("lower({column})"),
        }
    }

    /// Byte-wise equality of a text column with `value` (identifiers: usernames, references).
    /// MySQL's collation ignores case and accents: `column = value AND BINARY column = value`
    /// (the first keeps the index); `=` is exact elsewhere. `column` is a constant, never input.
    pub fn equals_exactly<QS>(self, column: &'static str, value: &str) -> Condition<QS> {
        let equal = sql::<Bool>(&format!("{column} = ")).bind::<Text, _>(value.to_string());
        match self {
            Backend::Mysql => Box::new(
                equal
                    .sql(&format!(" AND BINARY {column} = "))
                    .bind::<Text, _>(value.to_string()),
            ),
            _ => Box::new(equal),
        }
    }

    /// Equality without regard to case, as the engine folds it: MySQL's collation ignores case
    /// (the column's index serves); elsewhere both sides folded by the database.
    pub fn equals_folded<QS>(self, column: &'static str, value: &str) -> Condition<QS> {
        match self {
            Backend::Mysql => {
                Box::new(sql::<Bool>(&format!("{column} = ")).bind::<Text, _>(value.to_string()))
            }
            _ => Box::new(
                sql::<Bool>(&format!("{} = lower(", self.folded(column)))
                    .bind::<Text, _>(value.to_string())
                    .sql(")"),
            ),
        }
    }

    /// `column` starts with `prefix`, in any case, in a form the engine's index on the folded
    /// column serves. `scan`: in a form no index serves (SQLite only), for a broad search that
    /// walks the table in id order and stops at the page's last row.
    pub fn starts_with_folded<QS>(
        self,
        column: &'static str,
        prefix: &str,
        scan: bool,
    ) -> Condition<QS> {
        let pattern = format!("{}%", like_literal(prefix));
        match self {
            Backend::Mysql => {
                return Box::new(
                    sql::<Bool>(&format!("{column} LIKE "))
                        .bind::<Text, _>(pattern)
                        .sql(" ESCAPE '!'"),
                )
            }
            // The database folds both sides (Rust's and PostgreSQL's lower-casing differ for a
            // few characters); the planner turns the constant prefix into an index range.
            Backend::Postgresql => {
                return Box::new(
                    sql::<Bool>(&format!("{} LIKE lower(", self.folded(column)))
                        .bind::<Text, _>(pattern)
                        .sql(") ESCAPE '!'"),
                )
            }
            Backend::Sqlite => {}
        }
        // SQLite's lower() is glue's own (Rust's), so folding here agrees with the index.
        let lower = prefix.to_lowercase();
        let column = self.folded(column);
        if scan {
            // substr counts characters, as chars() does: "starts with", unindexable.
            return Box::new(
                sql::<Bool>(&format!(
                    "substr({column}, 1, {}) = ",
                    lower.chars().count()
                ))
                .bind::<Text, _>(lower),
            );
        }
        match prefix_successor(&lower) {
            Some(upper) => Box::new(
                sql::<Bool>(&format!("({column} >= "))
                    .bind::<Text, _>(lower)
                    .sql(&format!(" AND {column} < "))
                    .bind::<Text, _>(upper)
                    .sql(")"),
            ),
            None => Box::new(sql::<Bool>(&format!("{column} >= ")).bind::<Text, _>(lower)),
        }
    }

    /// The key of `value` under the engine's case-insensitive equality with `table.column`
    /// ([`Self::equals_folded`]), computed by the database itself: two values are equal there
    /// exactly when their keys are. PostgreSQL and SQLite (glue's own `lower`) fold with
    /// `lower()`. On MySQL the column's own collation decides (read once from
    /// `information_schema`; Spryker's `utf8_unicode_ci` ignores case, accents and width): the
    /// key is the collation's weight string (hex), without the trailing weights of spaces when
    /// the collation pads (then `a`, `a ` and `a` + U+00A0 are equal).
    pub fn folded_key(
        self,
        conn: &mut DbConnection,
        table: &'static str,
        column: &'static str,
        value: &str,
    ) -> QueryResult<String> {
        if !super::storable(value) {
            // Matches nothing anywhere (see `storable`); any key will do, the same every time.
            return Ok(value.to_lowercase());
        }
        let key: Option<String> = match self {
            Backend::Mysql => {
                let collation = mysql_collation(conn, table, column)?;
                let mut key: Option<String> = diesel::select(
                    sql::<diesel::sql_types::Nullable<Text>>("HEX(WEIGHT_STRING(CONVERT(")
                        .bind::<Text, _>(value.to_string())
                        .sql(&format!(
                            " USING {}) COLLATE {}))",
                            collation.charset, collation.name
                        )),
                )
                .get_result(conn)?;
                if let (Some(key), Some(space)) = (key.as_mut(), &collation.padding) {
                    while !space.is_empty()
                        && key.ends_with(space.as_str())
                        && (key.len() - space.len()) % space.len() == 0
                    {
                        key.truncate(key.len() - space.len());
                    }
                }
                key
            }
            _ => diesel::select(
                sql::<diesel::sql_types::Nullable<Text>>("lower(")
                    .bind::<Text, _>(value.to_string())
                    .sql(")"),
            )
            .get_result(conn)?,
        };
        // NULL only for a value beyond what the server takes; it matches nothing either.
        Ok(key.unwrap_or_else(|| value.to_lowercase()))
    }

    /// True when the planner would collect and sort every match of a broad search before its
    /// `LIMIT` (SQLite), so such a search walks the table in id order with unindexable tests.
    pub fn sorts_broad_searches(self) -> bool {
        self == Backend::Sqlite
    }

    /// True when a search counts its matches one prefix test at a time (MySQL/MariaDB): the
    /// optimizer answers their OR with an index-merge sort-union, which collects every match's
    /// row id and fetches every row before a `LIMIT` applies; one capped read per test is
    /// index-only.
    pub fn counts_searches_by_branch(self) -> bool {
        self == Backend::Mysql
    }

    /// What a write transaction locks.
    pub fn write_lock(self) -> WriteLock {
        match self {
            Backend::Sqlite => WriteLock::Database,
            _ => WriteLock::Rows,
        }
    }

    /// True when a connection can die with a server or the network (checked on checkout); an
    /// SQLite connection is a file handle that cannot.
    pub fn connections_can_die(self) -> bool {
        self != Backend::Sqlite
    }

    pub(in crate::db) fn establish(
        self,
        manager: &ConnectionManager,
    ) -> Result<DbConnection, ConnectError> {
        match self {
            Backend::Postgresql => {
                let mut conn = PgConnection::establish(&manager.postgres_url())?;
                if let Some(ms) = manager.statement_timeout_ms {
                    conn.batch_execute(&format!("SET statement_timeout = {ms}"))?;
                }
                // diesel caches prepared statements; after five runs PostgreSQL may switch one
                // to a generic plan that ignores the parameters. For customer search that plan
                // walks the primary key for a rare prefix (67 ms instead of 0.2 ms on 100,000
                // customers). Our statements are small: planning each run costs microseconds.
                conn.batch_execute("SET plan_cache_mode = force_custom_plan")?;
                // One core per statement: glue's statements are index lookups that parallel
                // workers never speed up, except a search that scans `spy_customer` (a shop's
                // database without `glue db search-indexes`), which would otherwise take every
                // core of the server with its workers and starve the logins and refreshes
                // beside it. With this, searches use at most `glue.search_concurrency` cores.
                conn.batch_execute("SET max_parallel_workers_per_gather = 0")?;
                let mut conn = DbConnection::Postgresql(conn);
                manager.layout.on_connect(&mut conn)?;
                Ok(conn)
            }
            Backend::Sqlite => {
                let path = sqlite_path(&manager.url);
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
                    manager.sqlite_busy_timeout_ms
                ))?;
                // Then glue's own wait for the lock (it replaces the timeout's handler; the
                // timeout stays the same). The checkpointer sets its own short timeout on its
                // connection, which puts SQLite's handler back there.
                wait_for_lock_finely(
                    &mut conn,
                    std::time::Duration::from_millis(manager.sqlite_busy_timeout_ms),
                );
                if !manager.sqlite_autocheckpoint {
                    // The log is the checkpointer's (see `db::checkpointer`); after a restart
                    // its file shrinks back to what the checkpointer lets it reach.
                    conn.batch_execute(&format!(
                        "PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {}",
                        super::checkpointer::POOL_AUTOCHECKPOINT_PAGES,
                        super::checkpointer::JOURNAL_SIZE_LIMIT_BYTES
                    ))?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql => {
                // Named with its server, as libpq names PostgreSQL's.
                let mut conn =
                    diesel::mysql::MysqlConnection::establish(&manager.url).map_err(|e| {
                        diesel::ConnectionError::BadConnection(format!(
                            "MariaDB/MySQL at {}: {e}",
                            mysql_server(&manager.url)
                        ))
                    })?;
                // Spryker's connection: utf8 text, times as written (UTC here).
                conn.batch_execute(
                    "SET NAMES utf8 COLLATE utf8_unicode_ci; SET time_zone = '+00:00'",
                )?;
                if let Some(ms) = manager.statement_timeout_ms {
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
                    // Row locks and metadata locks (a shop's ALTER TABLE during a deploy): the
                    // latter wait a year by default, and no statement timeout covers them.
                    conn.batch_execute(&format!(
                        "SET SESSION innodb_lock_wait_timeout = {lock_wait_s}; SET SESSION lock_wait_timeout = {lock_wait_s}"
                    ))?;
                }
                let mut conn = DbConnection::Mysql(conn);
                manager.layout.on_connect(&mut conn)?;
                Ok(conn)
            }
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql => Err(UrlError::MysqlNotBuilt.into()),
        }
    }
}

/// `host:port` of a `mysql://` URL (port 3306 when the URL names none), for messages.
#[cfg(feature = "mysql")]
fn mysql_server(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    // The authority ends at the first `/`; the password may hold `?`, `:` or `@`.
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host.split('?').next().unwrap_or(host);
    if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:3306")
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

/// Runs every pending migration of `layout`. An advisory lock (PostgreSQL) or named lock
/// (MySQL) keeps two instances that start together from migrating at the same time.
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
        let missing = layout::missing_privileges(&mut conn, &layout)?;
        if !missing.is_empty() {
            return Err(ConnectError::Setup(format!(
                "glue's database user lacks privileges it needs to serve (database.schema_owner = \"spryker\"; `glue db grants` prints them all): {}",
                missing.join("; ")
            )));
        }
    } else if layout::holds_foreign_spryker_tables(&mut conn)? {
        return Err(ConnectError::Setup(
            "the database already holds Spryker tables that glue did not create: to serve a shop's own database set database.schema_owner = \"spryker\" (GLUE__DATABASE__SCHEMA_OWNER=spryker)".into(),
        ));
    }
    run_migrations_in(&mut conn, &layout, manager.site_migrations())
}

/// glue's pending migrations of `layout`, then the deployment's own (`site`), under the
/// migration lock of the engine.
pub(in crate::db) fn run_migrations_in(
    conn: &mut DbConnection,
    layout: &Layout,
    site: Option<&SiteMigrations>,
) -> Result<usize, ConnectError> {
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
                apply(pg, migrations, site, Backend::Postgresql)
            });
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            result
        }
        DbConnection::Sqlite(sqlite) => apply(sqlite, SQLITE_MIGRATIONS, site, Backend::Sqlite),
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
                apply(mysql, migrations, site, Backend::Mysql)
            });
            conn.batch_execute("DO RELEASE_LOCK('glue_migrations')")?;
            result
        }
    };
    applied
}

/// Applies glue's pending migrations of `set`, then the deployment's own; the number applied.
fn apply<C, DB>(
    conn: &mut C,
    set: EmbeddedMigrations,
    site: Option<&SiteMigrations>,
    backend: Backend,
) -> Result<usize, ConnectError>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
{
    let glue = conn
        .run_pending_migrations(set)
        .map(|v| v.len())
        .map_err(|e| ConnectError::Setup(format!("migration failed: {e}")))?;
    let site = match site {
        Some(site) => site.apply(
            conn,
            match backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgresql => "postgres",
                Backend::Mysql => "mysql",
            },
        )?,
        None => 0,
    };
    Ok(glue + site)
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

/// SQLite: the compile-time options of the SQLite in this process (`PRAGMA compile_options`);
/// other backends: none.
pub fn sqlite_compile_options(conn: &mut DbConnection) -> diesel::QueryResult<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }
    if conn.backend() != Backend::Sqlite {
        return Ok(Vec::new());
    }
    Ok(diesel::sql_query("PRAGMA compile_options")
        .load::<CompileOption>(conn)?
        .into_iter()
        .map(|o| o.compile_options)
        .collect())
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
            // Prepared once per connection (`sqlite3_exec` would parse the text every time).
            super::Verbatim::<diesel::sql_types::Untyped>::new("BEGIN IMMEDIATE").execute(conn)?;
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
                Ok(value) => match super::Verbatim::<diesel::sql_types::Untyped>::new("COMMIT")
                    .execute(conn)
                {
                    Ok(_) => Ok(value),
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

/// Inserts a row whose id comes from Propel's sequence `sequence` on PostgreSQL (`insert`
/// gets `Some(id)` and must write it) or from AUTO_INCREMENT on SQLite and MySQL (`None`); returns
/// the new id. `sequence` is a constant name, never input.
pub fn insert_with_id(
    conn: &mut DbConnection,
    sequence: &'static str,
    insert: impl FnOnce(&mut DbConnection, Option<i64>) -> QueryResult<usize>,
) -> QueryResult<i64> {
    use diesel::sql_types::BigInt;
    let last_id = match conn.backend() {
        Backend::Postgresql => {
            let id: i64 = super::Verbatim::<BigInt>::new(format!("SELECT nextval('{sequence}')"))
                .get_result(conn)?;
            insert(conn, Some(id))?;
            return Ok(id);
        }
        Backend::Sqlite => "SELECT last_insert_rowid()",
        Backend::Mysql => "SELECT CAST(LAST_INSERT_ID() AS SIGNED)",
    };
    insert(conn, None)?;
    super::Verbatim::<BigInt>::new(last_id).get_result(conn)
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

/// The shortest and the longest pause of [`lock_pause`].
const LOCK_PAUSE_MIN: std::time::Duration = std::time::Duration::from_micros(250);
const LOCK_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(10);

/// How long a connection that found SQLite's lock taken pauses before it tries again, having
/// waited `waited` of at most `timeout`; `None`: give up (the statement fails as busy).
///
/// SQLite's own handler (`busy_timeout`) tries again after 1, 3, 8, 18, 33 … ms: a writer that
/// finds the lock taken by a transaction of 5 ms gets it at 8 ms, a transaction of 0.3 ms costs
/// it a whole millisecond. Here a pause is an eighth of the wait so far, at least 0.25 ms and at
/// most 10 ms: a waiter gets the lock at most an eighth (or 0.25 ms) after it came free, and
/// tries about 550 times in a wait of 5 s (each try is a lock call on the `-shm` file).
fn lock_pause(
    waited: std::time::Duration,
    timeout: std::time::Duration,
) -> Option<std::time::Duration> {
    let left = timeout.checked_sub(waited).filter(|left| !left.is_zero())?;
    Some((waited / 8).clamp(LOCK_PAUSE_MIN, LOCK_PAUSE_MAX).min(left))
}

/// Makes `conn` wait for a taken lock in the pauses of [`lock_pause`], for at most `timeout`
/// per statement (as `busy_timeout` would).
fn wait_for_lock_finely(conn: &mut SqliteConnection, timeout: std::time::Duration) {
    let mut since = std::time::Instant::now();
    let mut last_try = since;
    conn.on_busy(move |tries| {
        let now = std::time::Instant::now();
        // SQLite counts the tries of each wait from 0, except while it compiles a statement
        // (its count goes on from the last statement's): a call long after the last one
        // starts a new wait too.
        if tries == 0 || now.duration_since(last_try) > LOCK_PAUSE_MAX * 2 {
            since = now;
        }
        last_try = now;
        match lock_pause(now.duration_since(since), timeout) {
            Some(pause) => {
                std::thread::sleep(pause);
                last_try = std::time::Instant::now();
                diesel::sqlite::BusyDecision::Retry
            }
            None => diesel::sqlite::BusyDecision::GiveUp,
        }
    });
}

/// True when the error means the database could not be reached or is busy (answered with 503),
/// as opposed to a bug or a constraint violation (500).
pub(in crate::db) fn is_unavailable(error: &diesel::result::Error) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::migration::MigrationSource;
    use std::time::Duration;

    #[test]
    fn a_lock_wait_pauses_finely_and_gives_up_at_the_timeout() {
        let ms = Duration::from_millis;
        let timeout = ms(5000);
        // Fine while the wait is young, an eighth of it later, 10 ms at most.
        assert_eq!(lock_pause(Duration::ZERO, timeout), Some(LOCK_PAUSE_MIN));
        assert_eq!(lock_pause(ms(1), timeout), Some(LOCK_PAUSE_MIN));
        assert_eq!(lock_pause(ms(8), timeout), Some(ms(1)));
        assert_eq!(lock_pause(ms(40), timeout), Some(ms(5)));
        assert_eq!(lock_pause(ms(2000), timeout), Some(LOCK_PAUSE_MAX));
        // Never past the timeout, and nothing at or after it.
        assert_eq!(lock_pause(ms(4995), timeout), Some(ms(5)));
        assert_eq!(lock_pause(timeout, timeout), None);
        assert_eq!(lock_pause(ms(6000), timeout), None);
        assert_eq!(lock_pause(Duration::ZERO, Duration::ZERO), None);
        // The whole wait: the pauses add up to the timeout, in about 550 tries.
        let (mut waited, mut tries) = (Duration::ZERO, 0);
        while let Some(pause) = lock_pause(waited, timeout) {
            waited += pause;
            tries += 1;
        }
        assert_eq!(waited, timeout);
        assert!((500..600).contains(&tries), "{tries} tries");
    }

    #[derive(diesel::QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        timeout: i64,
    }

    /// An SQLite connection as the pool and the CLI get it waits for a taken lock with glue's
    /// handler (SQLite's timeout reads 0 once a handler replaced it), gets the lock once it is
    /// free, and gives up as busy no sooner than `sqlite_busy_timeout_ms`.
    #[test]
    fn an_sqlite_connection_waits_for_the_lock_with_glues_handler_up_to_the_timeout() {
        let dir = std::env::temp_dir().join(format!(
            "glue-lock-wait-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("glue.db").display());
        let patient = ConnectionManager::new(&url, 10_000).unwrap();
        let mut waiter = patient.establish().unwrap();
        let timeout = diesel::sql_query("PRAGMA busy_timeout")
            .get_result::<Timeout>(&mut waiter)
            .unwrap()
            .timeout;
        assert_eq!(timeout, 0, "SQLite's own handler is still in place");
        waiter.batch_execute("CREATE TABLE t (n INTEGER)").unwrap();

        // Taken for a while, then freed: the waiter waits for it and gets it.
        let mut holder = patient.establish().unwrap();
        holder
            .batch_execute("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .unwrap();
        let started = std::time::Instant::now();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            holder.batch_execute("COMMIT").unwrap();
            holder
        });
        waiter.batch_execute("INSERT INTO t VALUES (2)").unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        let mut holder = release.join().unwrap();

        // Held past the timeout: busy, and not before the whole timeout passed.
        let mut waiter = ConnectionManager::new(&url, 300)
            .unwrap()
            .establish()
            .unwrap();
        holder.batch_execute("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        let error = waiter
            .batch_execute("INSERT INTO t VALUES (3)")
            .unwrap_err();
        let waited = started.elapsed();
        assert!(is_unavailable(&error), "{error}");
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        holder.batch_execute("ROLLBACK").unwrap();
        let rows: Vec<Timeout> = diesel::sql_query("SELECT n AS timeout FROM t ORDER BY n")
            .load(&mut waiter)
            .unwrap();
        assert_eq!(rows.iter().map(|r| r.timeout).collect::<Vec<_>>(), [1, 2]);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Every one of glue's migrations is numbered in the range it reserves, so no later glue
    /// migration can have a version a site already applied (see `site_migrations`).
    #[test]
    fn glue_keeps_its_own_versions_in_the_reserved_range() {
        let sets = [
            SQLITE_MIGRATIONS,
            POSTGRES_MIGRATIONS,
            POSTGRES_SPRYKER_MIGRATIONS,
            #[cfg(feature = "mysql")]
            MYSQL_MIGRATIONS,
            #[cfg(feature = "mysql")]
            MYSQL_SPRYKER_MIGRATIONS,
        ];
        for set in sets {
            let migrations = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&set).unwrap();
            assert!(!migrations.is_empty());
            for migration in migrations {
                let version = migration.name().version().to_string();
                assert!(
                    super::super::site_migrations::is_reserved(&version),
                    "{version} is outside glue's range"
                );
            }
        }
    }
}
