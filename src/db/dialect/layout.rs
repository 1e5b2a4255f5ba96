//! Who owns the `spy_*` tables, and where glue keeps its own.
//!
//! - `schema_owner = "glue"` (the default): glue's migrations create Spryker's four tables, seed
//!   them, and create glue's own tables beside them, in the database `DATABASE_URL` names.
//! - `schema_owner = "spryker"`: the database is a live shop's; its Propel migrations own every
//!   `spy_*` table, and `propel:diff` proposes to drop whatever its XML does not declare. glue
//!   never creates, alters, drops or seeds a `spy_*` table or index there; its own tables live
//!   where Propel does not look:
//!   - PostgreSQL: a schema of their own in the shop's database (`glue_schema`, default `glue`),
//!     first on the search path of glue's connections, so unqualified names find glue's tables
//!     there and the shop's tables in the shop's schema;
//!   - MySQL/MariaDB: a database of their own on the shop's server (`glue_schema`, default
//!     `<shop database>_glue`), the default database of glue's connections, holding glue's
//!     tables and one view per shop table glue works with (glue's columns of the shop's table,
//!     `MERGE` algorithm, so the shop's indexes and collations serve every query unchanged);
//!   - SQLite: refused (a shop never runs Spryker on SQLite).
//!
//! Before it touches anything, `spryker` mode checks the shop's tables (see [`check_shop`]) and
//! refuses to start naming every missing or incompatible piece.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::Backend;
use crate::db::{ConnectError, DbConnection};

/// `database.schema_owner`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum SchemaOwner {
    /// glue creates and seeds Spryker's tables itself.
    #[default]
    Glue,
    /// The shop's Propel migrations own every `spy_*` table.
    Spryker,
}

impl TryFrom<String> for SchemaOwner {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "glue" => Ok(SchemaOwner::Glue),
            "spryker" => Ok(SchemaOwner::Spryker),
            other => Err(format!("{other:?} is not one of \"glue\", \"spryker\"")),
        }
    }
}

/// `database.shop_mfa_tables`: whether the shop installed `spryker/multi-factor-auth` (its
/// agents' email method), in `spryker` mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ShopMfaTables {
    /// Found out at start-up (PostgreSQL's catalog tells; MariaDB refuses to start when glue's
    /// user may not see the tables, since it then cannot tell whether they exist).
    #[default]
    Auto,
    /// The tables must be there (start-up refuses otherwise).
    Present,
    /// Not installed: glue never looks for them (no agent has the email method).
    Absent,
}

impl TryFrom<String> for ShopMfaTables {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "auto" => Ok(ShopMfaTables::Auto),
            "present" => Ok(ShopMfaTables::Present),
            "absent" => Ok(ShopMfaTables::Absent),
            other => Err(format!(
                "{other:?} is not one of \"auto\", \"present\", \"absent\""
            )),
        }
    }
}

/// Where glue's tables are, resolved from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Every table in the database the URL names.
    Glue,
    /// The shop's tables where the URL points; glue's in `glue_schema`.
    Spryker {
        /// The PostgreSQL schema or MySQL database of glue's own tables.
        glue_schema: String,
        /// MySQL: the shop's database (from the URL), which the views point into.
        shop_database: String,
        /// Whether the shop has Spryker's MFA tables.
        shop_mfa: ShopMfaTables,
    },
}

/// The shop tables glue reads and writes (the views on MySQL).
pub const SHOP_TABLES: [&str; 4] = [
    "spy_oauth_client",
    "spy_user",
    "spy_customer",
    "spy_oauth_refresh_token",
];

/// One of the shop's MFA tables (`spryker/multi-factor-auth`), used when the shop has them (the
/// agents' email method).
pub struct MfaTable {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    /// What glue needs on it to serve.
    pub privileges: &'static [&'static str],
    /// PostgreSQL: the sequence of its new rows' ids (none: glue adds no rows).
    pub sequence: Option<&'static str>,
}

/// The shop's MFA tables.
pub const MFA_TABLES: &[MfaTable] = &[
    MfaTable {
        name: "spy_user_multi_factor_auth",
        columns: &[
            "id_user_multi_factor_auth",
            "fk_user",
            "type",
            "configuration",
            "status",
            "created_at",
            "updated_at",
        ],
        privileges: &["SELECT", "UPDATE"],
        sequence: None,
    },
    MfaTable {
        name: "spy_user_multi_factor_auth_codes",
        columns: &[
            "id_user_multi_factor_auth_code",
            "fk_user_multi_factor_auth",
            "code",
            "status",
            "expiration_date",
            "created_at",
            "updated_at",
        ],
        privileges: &["SELECT", "INSERT", "UPDATE"],
        sequence: Some("id_user_multi_factor_auth_code_pk_seq"),
    },
    MfaTable {
        name: "spy_user_multi_factor_auth_codes_attempts",
        columns: &[
            "id_user_multi_factor_auth_code_attempt",
            "fk_user_multi_factor_auth_code",
            "created_at",
            "updated_at",
        ],
        privileges: &["SELECT", "INSERT"],
        sequence: Some("id_user_multi_factor_auth_code_attempt_pk_seq"),
    },
];

/// A name glue puts into DDL without quoting it any further: letters, digits, `_` (and `$`,
/// `-` on MySQL, whose database names allow them), at most 63 bytes.
fn is_identifier(name: &str, backend: Backend) -> bool {
    let extra: &[char] = match backend {
        Backend::Mysql => &['_', '$', '-'],
        _ => &['_'],
    };
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The database a `mysql://…/name?…` URL names.
fn mysql_database(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let path = &rest[rest.find('/')? + 1..];
    let name = path.split(['?', '#']).next().unwrap_or("");
    (!name.is_empty()).then_some(name)
}

impl Layout {
    /// The layout `owner` and `glue_schema` ask for on the `backend` database at `url`.
    pub fn resolve(
        owner: SchemaOwner,
        glue_schema: &str,
        backend: Backend,
        url: &str,
    ) -> Result<Layout, String> {
        if owner == SchemaOwner::Glue {
            return Ok(Layout::Glue);
        }
        let (default, shop_database) = match backend {
            Backend::Sqlite => {
                return Err(
                    "database.schema_owner = \"spryker\" needs the shop's PostgreSQL or MariaDB/MySQL database; SQLite is only for glue-owned tables".into(),
                )
            }
            Backend::Postgresql => ("glue".to_string(), String::new()),
            Backend::Mysql => {
                let shop = mysql_database(url.trim()).ok_or(
                    "database.schema_owner = \"spryker\" on MySQL needs the shop's database in the URL (mysql://user@host:3306/<database>)",
                )?;
                if !is_identifier(shop, backend) {
                    // Not echoed: a URL whose password holds a raw `/` would show part of it.
                    return Err("the shop's database name in DATABASE_URL has characters glue does not quote (letters, digits, _, $, - only; percent-encode a `/` or `@` in the password)".to_string());
                }
                (format!("{shop}_glue"), shop.to_string())
            }
        };
        let glue_schema = match glue_schema.trim() {
            "" => default,
            name => name.to_string(),
        };
        if !is_identifier(&glue_schema, backend) {
            return Err(format!(
                "database.glue_schema {glue_schema:?} (or the default <shop database>_glue): letters, digits and _ (on MySQL also $ and -) only, at most 63 bytes, not starting with a digit"
            ));
        }
        if glue_schema == shop_database || glue_schema == "public" {
            return Err(format!(
                "database.glue_schema {glue_schema:?} is where the shop's tables are: glue's must be elsewhere, or Propel drops them"
            ));
        }
        Ok(Layout::Spryker {
            glue_schema,
            shop_database,
            shop_mfa: ShopMfaTables::Auto,
        })
    }

    /// The layout with `database.shop_mfa_tables` (`spryker` mode only; glue's own schema always
    /// has the tables).
    pub fn with_shop_mfa(self, setting: ShopMfaTables) -> Layout {
        match self {
            Layout::Spryker {
                glue_schema,
                shop_database,
                ..
            } => Layout::Spryker {
                glue_schema,
                shop_database,
                shop_mfa: setting,
            },
            glue => glue,
        }
    }

    pub fn is_spryker(&self) -> bool {
        matches!(self, Layout::Spryker { .. })
    }

    /// What every new connection runs first (after the backend's own settings).
    pub(super) fn on_connect(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        let Layout::Spryker { glue_schema, .. } = self else {
            return Ok(());
        };
        match conn.backend() {
            Backend::Postgresql => conn.batch_execute(&format!(
                "SELECT set_config('search_path', '\"{glue_schema}\", ' || current_setting('search_path'), false)"
            ))?,
            Backend::Mysql => conn.batch_execute(&format!("USE `{glue_schema}`")).map_err(|e| {
                ConnectError::Setup(format!(
                    "cannot use glue's database `{glue_schema}` ({e}); `glue migrate` creates it"
                ))
            })?,
            Backend::Sqlite => {}
        }
        Ok(())
    }
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
    #[diesel(sql_type = Text)]
    extra: String,
}

/// A column type as glue reads and writes it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    BigInt,
    SmallInt,
    Text,
    Bool,
    Timestamp,
}

impl Kind {
    /// The `information_schema`/`format_type` names that hold this kind on `backend`.
    fn accepts(self, backend: Backend, data_type: &str) -> bool {
        let names: &[&str] = match (backend, self) {
            (Backend::Mysql, Kind::Int) => &["int"],
            (Backend::Mysql, Kind::BigInt) => &["bigint"],
            (Backend::Mysql, Kind::SmallInt) => &["tinyint", "smallint"],
            (Backend::Mysql, Kind::Text) => &["varchar", "text", "mediumtext", "longtext", "char"],
            (Backend::Mysql, Kind::Bool) => &["tinyint"],
            // Not TIMESTAMP: MySQL converts those by the session's zone, PHP reads them in its own.
            (Backend::Mysql, Kind::Timestamp) => &["datetime"],
            (_, Kind::Int) => &["integer"],
            (_, Kind::BigInt) => &["bigint"],
            (_, Kind::SmallInt) => &["smallint"],
            (_, Kind::Text) => &["character varying", "text"],
            (_, Kind::Bool) => &["boolean"],
            (_, Kind::Timestamp) => &["timestamp without time zone"],
        };
        names.contains(&data_type.to_ascii_lowercase().as_str())
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Int => "INTEGER",
            Kind::BigInt => "BIGINT",
            Kind::SmallInt => "SMALLINT/TINYINT",
            Kind::Text => "VARCHAR/TEXT",
            Kind::Bool => "BOOLEAN/TINYINT(1)",
            Kind::Timestamp => "TIMESTAMP without time zone (PostgreSQL) / DATETIME (MySQL)",
        }
    }
}

/// The shop columns glue reads or writes: (table, column, type, must be NOT NULL — glue reads
/// it as never NULL). The columns of `db::schema`.
const NEEDED: &[(&str, &str, Kind, bool)] = &[
    ("spy_oauth_client", "id_oauth_client", Kind::Int, true),
    ("spy_oauth_client", "identifier", Kind::Text, true),
    ("spy_oauth_client", "is_confidential", Kind::Bool, false),
    ("spy_oauth_client", "name", Kind::Text, true),
    ("spy_user", "id_user", Kind::Int, true),
    ("spy_user", "first_name", Kind::Text, true),
    ("spy_user", "is_agent", Kind::Bool, false),
    ("spy_user", "last_login", Kind::Timestamp, false),
    ("spy_user", "last_name", Kind::Text, true),
    ("spy_user", "password", Kind::Text, true),
    ("spy_user", "status", Kind::SmallInt, true),
    ("spy_user", "username", Kind::Text, true),
    ("spy_user", "created_at", Kind::Timestamp, false),
    ("spy_user", "updated_at", Kind::Timestamp, false),
    ("spy_customer", "id_customer", Kind::Int, true),
    ("spy_customer", "customer_reference", Kind::Text, true),
    ("spy_customer", "email", Kind::Text, true),
    ("spy_customer", "first_name", Kind::Text, false),
    ("spy_customer", "last_name", Kind::Text, false),
    ("spy_customer", "password", Kind::Text, false),
    ("spy_customer", "anonymized_at", Kind::Timestamp, false),
    ("spy_customer", "created_at", Kind::Timestamp, false),
    ("spy_customer", "updated_at", Kind::Timestamp, false),
    (
        "spy_oauth_refresh_token",
        "id_oauth_refresh_token",
        Kind::BigInt,
        true,
    ),
    ("spy_oauth_refresh_token", "identifier", Kind::Text, true),
    ("spy_oauth_refresh_token", "scopes", Kind::Text, false),
    (
        "spy_oauth_refresh_token",
        "customer_reference",
        Kind::Text,
        false,
    ),
    (
        "spy_oauth_refresh_token",
        "user_identifier",
        Kind::Text,
        true,
    ),
    (
        "spy_oauth_refresh_token",
        "fk_oauth_client",
        Kind::Text,
        true,
    ),
    (
        "spy_oauth_refresh_token",
        "expires_at",
        Kind::Timestamp,
        true,
    ),
    (
        "spy_oauth_refresh_token",
        "revoked_at",
        Kind::Timestamp,
        false,
    ),
    (
        "spy_oauth_refresh_token",
        "created_at",
        Kind::Timestamp,
        false,
    ),
    (
        "spy_oauth_refresh_token",
        "updated_at",
        Kind::Timestamp,
        false,
    ),
];

/// The shop tables' columns as the database describes them.
fn shop_columns(conn: &mut DbConnection, layout: &Layout) -> QueryResult<Vec<Column>> {
    let tables = SHOP_TABLES.map(|t| format!("'{t}'")).join(", ");
    let query = match conn.backend() {
        // The tables unqualified names resolve to on glue's search path.
        Backend::Postgresql => format!(
            "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
                    format_type(a.atttypid, NULL) AS data_type, \
                    CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END AS is_nullable, \
                    CASE WHEN to_regclass(c.relname || '_pk_seq') IS NULL THEN '' ELSE 'sequence' END AS extra \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             WHERE a.attrelid IN (SELECT to_regclass(t) FROM unnest(ARRAY[{tables}]) AS t) \
               AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        Backend::Mysql => {
            let Layout::Spryker { shop_database, .. } = layout else {
                return Ok(Vec::new());
            };
            format!(
                "SELECT CAST(TABLE_NAME AS CHAR) AS table_name, CAST(COLUMN_NAME AS CHAR) AS column_name, \
                        CAST(DATA_TYPE AS CHAR) AS data_type, CAST(IS_NULLABLE AS CHAR) AS is_nullable, \
                        CAST(EXTRA AS CHAR) AS extra \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = '{shop_database}' AND TABLE_NAME IN ({tables})"
            )
        }
        Backend::Sqlite => return Ok(Vec::new()),
    };
    diesel::sql_query(query).load(conn)
}

/// Whether `table` exists whatever the user's privileges (`None`: the engine cannot tell).
fn table_exists(conn: &mut DbConnection, table: &str) -> QueryResult<Option<bool>> {
    if conn.backend() != Backend::Postgresql {
        return Ok(None);
    }
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found = diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS exists")
        .bind::<Text, _>(table)
        .get_result::<Exists>(conn)?;
    Ok(Some(found.exists))
}

/// Every way the shop's tables fall short of what glue reads and writes (empty: all there).
pub fn check_shop(conn: &mut DbConnection, layout: &Layout) -> QueryResult<Vec<String>> {
    let backend = conn.backend();
    let columns = shop_columns(conn, layout)?;
    let mut problems = Vec::new();
    for table in SHOP_TABLES {
        if !columns.iter().any(|c| c.table_name == table) {
            let user = current_user(conn)?;
            let privileges = SERVING
                .iter()
                .find(|(t, ..)| *t == table)
                .map_or(&[][..], |(_, _, privileges)| *privileges);
            let fix = grant(backend, layout, &user, &privileges.join(", "), table);
            // PostgreSQL's catalog shows every table to everyone; MySQL's shows only those the
            // user has a privilege on.
            problems.push(match table_exists(conn, table)? {
                Some(false) => format!("table {table} is missing"),
                Some(true) => format!(
                    "table {table} is not visible to {user} (it has no privilege on it): {fix}"
                ),
                None => format!(
                    "table {table} is missing or not visible to {user} (no privilege on it): {fix}"
                ),
            });
        }
    }
    for (table, column, kind, not_null) in NEEDED {
        if !columns.iter().any(|c| c.table_name == *table) {
            continue;
        }
        match columns
            .iter()
            .find(|c| c.table_name == *table && c.column_name == *column)
        {
            None => problems.push(format!("column {table}.{column} is missing")),
            Some(found) if !kind.accepts(backend, &found.data_type) => problems.push(format!(
                "column {table}.{column} is {} where glue needs {}",
                found.data_type,
                kind.describe()
            )),
            Some(found) if *not_null && found.is_nullable != "NO" => problems.push(format!(
                "column {table}.{column} is nullable where glue needs NOT NULL"
            )),
            Some(_) => {}
        }
    }
    // glue's schema must not be the shop's (Propel would drop glue's tables there).
    if let (Backend::Postgresql, Layout::Spryker { glue_schema, .. }) = (backend, layout) {
        #[derive(QueryableByName)]
        struct Schema {
            #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
            schema: Option<String>,
        }
        let found: Schema = diesel::sql_query(
            "SELECT (SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass('spy_user')) AS schema",
        )
        .get_result(conn)?;
        if found.schema.as_deref() == Some(glue_schema.as_str()) {
            problems.push(format!(
                "database.glue_schema {glue_schema:?} holds the shop's tables: glue's must be elsewhere, or Propel drops them"
            ));
        }
    }
    // New refresh-token rows take their ids as the shop's own inserts do.
    if let Some(id) = columns.iter().find(|c| {
        c.table_name == "spy_oauth_refresh_token" && c.column_name == "id_oauth_refresh_token"
    }) {
        let ok = match backend {
            Backend::Mysql => id.extra.to_ascii_lowercase().contains("auto_increment"),
            _ => id.extra == "sequence",
        };
        if !ok {
            problems.push(match backend {
                Backend::Mysql => {
                    "column spy_oauth_refresh_token.id_oauth_refresh_token is not AUTO_INCREMENT"
                        .to_string()
                }
                _ => "sequence spy_oauth_refresh_token_pk_seq is missing".to_string(),
            });
        }
    }
    Ok(problems)
}

/// The privileges glue needs on the shop's tables to serve (`spryker` mode), with the columns
/// it updates there. `glue tokens purge-expired` also needs [`HOUSEKEEPING`].
pub const SERVING: &[(&str, &[&str], &[&str])] = &[
    (
        "spy_user",
        &["last_login", "updated_at"],
        &["SELECT", "UPDATE"],
    ),
    ("spy_customer", &[], &["SELECT"]),
    ("spy_oauth_client", &[], &["SELECT"]),
    (
        "spy_oauth_refresh_token",
        &["revoked_at", "updated_at"],
        &["SELECT", "INSERT", "UPDATE"],
    ),
];

/// What `glue tokens purge-expired` needs beyond [`SERVING`] (it deletes glue's expired rows).
pub const HOUSEKEEPING: &[(&str, &[&str], &[&str])] =
    &[("spy_oauth_refresh_token", &[], &["DELETE"])];

/// A statement that changes nothing but is refused without `privilege` on `table`, over every
/// column glue reads, writes or updates there (so column-level grants count as glue uses them).
/// The INSERT reads its values back from the table itself (MySQL checks missing defaults before
/// it finds that no row comes).
fn probe(table: &str, updated: &[&str], privilege: &str) -> String {
    let columns = NEEDED
        .iter()
        .filter(|(t, ..)| *t == table)
        .map(|(_, column, ..)| *column)
        .collect::<Vec<_>>()
        .join(", ");
    match privilege {
        "UPDATE" => format!(
            "UPDATE {table} SET {} WHERE 1 = 0",
            updated
                .iter()
                .map(|column| format!("{column} = {column}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "INSERT" => {
            format!("INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE 1 = 0")
        }
        "DELETE" => format!("DELETE FROM {table} WHERE 1 = 0"),
        _ => format!("SELECT {columns} FROM {table} WHERE 1 = 0"),
    }
}

/// True when a probe was refused for want of a privilege (or because the table is not visible
/// to the user), as opposed to any other failure.
fn is_refusal(error: &diesel::result::Error) -> bool {
    let message = error.to_string().to_ascii_lowercase();
    [
        "denied",
        "permission",
        "lack rights",
        "doesn't exist",
        "does not exist",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// The user glue connects as, for GRANT statements (`'glue'@'%'` on MySQL).
fn current_user(conn: &mut DbConnection) -> QueryResult<String> {
    #[derive(QueryableByName)]
    struct User {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let query = match conn.backend() {
        Backend::Mysql => "SELECT CURRENT_USER() AS name",
        _ => "SELECT CAST(current_user AS TEXT) AS name",
    };
    let user = diesel::sql_query(query).get_result::<User>(conn)?.name;
    Ok(match conn.backend() {
        Backend::Mysql => match user.rsplit_once('@') {
            Some((name, host)) => format!("'{name}'@'{host}'"),
            None => format!("'{user}'"),
        },
        _ => format!("\"{user}\""),
    })
}

/// The GRANT that gives `user` `privilege` on the shop's `table`.
fn grant(backend: Backend, layout: &Layout, user: &str, privilege: &str, table: &str) -> String {
    match (backend, layout) {
        (Backend::Mysql, Layout::Spryker { shop_database, .. }) => {
            format!("GRANT {privilege} ON `{shop_database}`.`{table}` TO {user};")
        }
        _ => format!("GRANT {privilege} ON {table} TO {user};"),
    }
}

/// Every privilege glue needs to serve that this user lacks on the shop's tables (`spryker`
/// mode; empty: all held), each named with the GRANT that fixes it. Probed with statements that
/// change nothing, so views, roles and inherited grants count as the database counts them.
pub fn missing_privileges(conn: &mut DbConnection, layout: &Layout) -> QueryResult<Vec<String>> {
    if !layout.is_spryker() {
        return Ok(Vec::new());
    }
    let backend = conn.backend();
    let user = current_user(conn)?;
    let mut problems = Vec::new();
    for (table, updated, privileges) in SERVING {
        for privilege in *privileges {
            if let Err(e) = conn.batch_execute(&probe(table, updated, privilege)) {
                if super::is_unavailable(&e) || !is_refusal(&e) {
                    return Err(e);
                }
                problems.push(format!(
                    "{privilege} on {table} is not granted to {user} (or the table is not visible to it): {}",
                    grant(backend, layout, &user, privilege, table)
                ));
            }
        }
    }
    // The shop's MFA tables, when it has them (their absence is no problem: no agent then has
    // the email method).
    let required = matches!(
        layout,
        Layout::Spryker {
            shop_mfa: ShopMfaTables::Present,
            ..
        }
    );
    let mfa = match mfa_tables_seen(conn, layout)? {
        Some(seen) => seen,
        None if required => true,
        None => {
            problems.push(format!(
                "glue's database user {user} may not read the shop's spy_user_multi_factor_auth tables, so glue cannot tell whether the shop installed spryker/multi-factor-auth (MariaDB/MySQL answer alike for a table that does not exist): grant the \"Agents' email method\" lines of `glue db grants`, or set database.shop_mfa_tables = \"absent\" if the shop has not installed it"
            ));
            false
        }
    };
    if mfa {
        for MfaTable {
            name: table,
            columns,
            privileges,
            ..
        } in MFA_TABLES
        {
            for privilege in *privileges {
                if let Err(e) = conn.batch_execute(&mfa_probe(table, columns, privilege)) {
                    if super::is_unavailable(&e) || !is_refusal(&e) {
                        return Err(e);
                    }
                    problems.push(format!(
                        "{privilege} on {table} is not granted to {user} (the agents' email method needs it): {}",
                        grant(backend, layout, &user, privilege, table)
                    ));
                }
            }
        }
    }
    if backend == Backend::Postgresql {
        let mut sequences = vec!["spy_oauth_refresh_token_pk_seq"];
        if mfa {
            sequences.extend(MFA_TABLES.iter().filter_map(|table| table.sequence));
        }
        for sequence in sequences {
            if !sequence_held(conn, sequence)? {
                problems.push(format!(
                    "USAGE on the sequence {sequence} is not granted to {user}: GRANT USAGE ON SEQUENCE {sequence} TO {user};"
                ));
            }
        }
    }
    Ok(problems)
}

/// Whether the database (glue's view of it) holds the shop's three MFA tables ([`MFA_TABLES`]).
/// A table this user may not read counts as present ([`missing_privileges`] names the grant);
/// `database.shop_mfa_tables = "absent"` is never looked for.
pub fn mfa_tables_present(conn: &mut DbConnection, layout: &Layout) -> QueryResult<bool> {
    Ok(mfa_tables_seen(conn, layout)?.unwrap_or(true))
}

/// [`mfa_tables_present`], `None` when the engine cannot tell: MySQL/MariaDB check privileges
/// before existence, so to a user with table grants only, a table it may not read and one that
/// does not exist look alike ("command denied"). PostgreSQL says "does not exist" first.
fn mfa_tables_seen(conn: &mut DbConnection, layout: &Layout) -> QueryResult<Option<bool>> {
    if let Layout::Spryker {
        shop_mfa: ShopMfaTables::Absent,
        ..
    } = layout
    {
        return Ok(Some(false));
    }
    let mut unknown = false;
    for MfaTable { name: table, .. } in MFA_TABLES {
        if let Err(e) = conn.batch_execute(&format!("SELECT 1 FROM {table} WHERE 1 = 0")) {
            let message = e.to_string().to_ascii_lowercase();
            if message.contains("does not exist")
                || message.contains("doesn't exist")
                || message.contains("no such table")
            {
                return Ok(Some(false));
            }
            if super::is_unavailable(&e) || !is_refusal(&e) {
                return Err(e);
            }
            unknown |= conn.backend() == Backend::Mysql;
        }
    }
    Ok(if unknown { None } else { Some(true) })
}

/// Whether this user may take ids from `sequence` (PostgreSQL: nextval() needs USAGE or
/// UPDATE; a sequence the user cannot see is not held either).
fn sequence_held(conn: &mut DbConnection, sequence: &str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        held: bool,
    }
    match diesel::sql_query("SELECT has_sequence_privilege($1, 'USAGE, UPDATE') AS held")
        .bind::<Text, _>(sequence)
        .get_result::<Held>(conn)
    {
        Ok(found) => Ok(found.held),
        Err(e) if super::is_unavailable(&e) || !is_refusal(&e) => Err(e),
        Err(_) => Ok(false),
    }
}

/// A statement on one of the shop's MFA tables that changes nothing but is refused without
/// `privilege` (see [`probe`]).
fn mfa_probe(table: &str, columns: &[&str], privilege: &str) -> String {
    let columns = columns.join(", ");
    match privilege {
        "UPDATE" => format!("UPDATE {table} SET status = status WHERE 1 = 0"),
        "INSERT" => {
            format!("INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE 1 = 0")
        }
        _ => format!("SELECT {columns} FROM {table} WHERE 1 = 0"),
    }
}

/// glue's own tables: present, and reachable by this user.
const GLUE_TABLES: [&str; 4] = [
    "glue_oauth_refresh_token",
    "glue_login_attempt_counter",
    "glue_login_trusted_address",
    "glue_agent_totp",
];

/// What keeps the database side from serving right now (empty: nothing): glue's own tables
/// missing or unreachable, and on a shop's database every privilege glue needs that is no longer
/// held. For `/readyz`; an unreachable database is an error, not a problem.
pub fn readiness_problems(conn: &mut DbConnection, layout: &Layout) -> QueryResult<Vec<String>> {
    let mut problems = Vec::new();
    for table in GLUE_TABLES {
        if let Err(e) = conn.batch_execute(&format!("SELECT 1 FROM {table} WHERE 1 = 0")) {
            if super::is_unavailable(&e) || !is_refusal(&e) {
                return Err(e);
            }
            problems.push(format!(
                "glue's table {table} is missing or not visible to this user (restart glue to create its tables again)"
            ));
        }
    }
    problems.extend(missing_privileges(conn, layout)?);
    Ok(problems)
}

/// The GRANT statements a DBA runs for glue on a shop's database (`glue db grants`): minimal for
/// serving, then what `glue tokens purge-expired` adds, then what glue's own migrations of its
/// own schema or database need.
pub fn grants_ddl(backend: Backend, layout: &Layout, user: &str) -> String {
    let mut lines = vec![format!(
        "-- Serving (glue serve): the shop's tables in {}",
        match backend {
            Backend::Mysql => "the shop's database",
            _ => "the shop's schema",
        }
    )];
    let statement = |privileges: &[&str], table: &str| match (backend, layout) {
        (Backend::Mysql, Layout::Spryker { shop_database, .. }) => format!(
            "GRANT {} ON `{shop_database}`.`{table}` TO {user};",
            privileges.join(", ")
        ),
        _ => format!("GRANT {} ON {table} TO {user};", privileges.join(", ")),
    };
    for (table, _, privileges) in SERVING {
        lines.push(statement(privileges, table));
    }
    if backend == Backend::Postgresql {
        lines.push(format!(
            "GRANT USAGE ON SEQUENCE spy_oauth_refresh_token_pk_seq TO {user};"
        ));
        lines.push(format!(
            "GRANT USAGE ON SCHEMA public TO {user};  -- the schema of the shop's tables"
        ));
    }
    lines.push(
        "-- Agents' email method, if the shop installed spryker/multi-factor-auth (skip otherwise)"
            .into(),
    );
    for table in MFA_TABLES {
        lines.push(statement(table.privileges, table.name));
    }
    if backend == Backend::Postgresql {
        for sequence in MFA_TABLES.iter().filter_map(|table| table.sequence) {
            lines.push(format!("GRANT USAGE ON SEQUENCE {sequence} TO {user};"));
        }
    }
    lines.push("-- Housekeeping (glue tokens purge-expired): glue's expired rows".into());
    for (table, _, privileges) in HOUSEKEEPING {
        lines.push(statement(privileges, table));
    }
    lines.push("-- glue's own tables (glue migrate, and glue serve at start-up)".into());
    match (backend, layout) {
        (Backend::Mysql, Layout::Spryker { glue_schema, .. }) => lines.push(format!(
            "GRANT ALL ON `{glue_schema}`.* TO {user};  -- or CREATE DATABASE `{glue_schema}` first and grant ALL on it"
        )),
        (Backend::Postgresql, Layout::Spryker { glue_schema, .. }) => lines.push(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{glue_schema}\" AUTHORIZATION {user};  -- or GRANT CREATE ON DATABASE <shop> TO {user};"
        )),
        _ => lines.push("-- (schema_owner = \"glue\": glue owns the whole database)".into()),
    }
    lines.join("\n")
}

/// True when the database already holds Spryker's tables that glue's migrations did not create
/// (a shop's database reached with `schema_owner = "glue"`).
pub(super) fn holds_foreign_spryker_tables(conn: &mut DbConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let query = match conn.backend() {
        Backend::Postgresql => {
            "SELECT to_regclass('spy_user') IS NOT NULL AND to_regclass('__diesel_schema_migrations') IS NULL AS found"
        }
        Backend::Mysql => {
            "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'spy_user') > 0 \
                AND (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '__diesel_schema_migrations') = 0 AS found"
        }
        Backend::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'spy_user') \
                AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '__diesel_schema_migrations') AS found"
        }
    };
    Ok(diesel::sql_query(query).get_result::<Found>(conn)?.found)
}

/// Creates the place of glue's tables (and, on MySQL, the views of the shop's tables); run
/// under the migration lock, after [`check_shop`] passed.
pub(super) fn prepare(conn: &mut DbConnection, layout: &Layout) -> Result<(), ConnectError> {
    let Layout::Spryker {
        glue_schema,
        shop_database,
        ..
    } = layout
    else {
        return Ok(());
    };
    match conn.backend() {
        // Created only when missing: a schema the DBA made needs no CREATE on the database.
        Backend::Postgresql => {
            #[derive(QueryableByName)]
            struct Exists {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                exists: bool,
            }
            let exists = diesel::sql_query(format!(
                "SELECT to_regnamespace('\"{glue_schema}\"') IS NOT NULL AS exists"
            ))
            .get_result::<Exists>(conn)?
            .exists;
            if !exists {
                log::warn!(target: "glue::db", "glue's schema {glue_schema:?} does not exist: creating it with glue's tables (the first start on this database, or the schema was dropped)");
                conn.batch_execute(&format!("CREATE SCHEMA \"{glue_schema}\""))?;
            }
        }
        Backend::Mysql => {
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let existed = diesel::sql_query(
                "SELECT COUNT(*) AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            )
            .bind::<Text, _>(glue_schema)
            .get_result::<Count>(conn)?
            .n > 0;
            if !existed {
                log::warn!(target: "glue::db", "glue's database {glue_schema:?} does not exist: creating it with glue's tables (the first start on this server, or the database was dropped)");
            }
            conn.batch_execute(&format!(
                "CREATE DATABASE IF NOT EXISTS `{glue_schema}` DEFAULT CHARACTER SET utf8 COLLATE utf8_unicode_ci"
            ))?;
            // Only the columns glue uses (checked above), so the shop may add, change or drop
            // any other column without breaking the view; an INSERT through it leaves the
            // others to their defaults. Recreated at every start.
            let views = SHOP_TABLES.iter().try_for_each(|table| {
                let columns = NEEDED
                    .iter()
                    .filter(|(t, ..)| t == table)
                    .map(|(_, column, ..)| format!("`{column}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                conn.batch_execute(&format!(
                    "CREATE OR REPLACE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW `{glue_schema}`.`{table}` AS SELECT {columns} FROM `{shop_database}`.`{table}`"
                ))
            });
            // The shop's MFA tables, when it has them; a view whose table is gone goes too.
            let views = views
                .map_err(ConnectError::from)
                .and_then(|()| mfa_views(conn, glue_schema, shop_database, layout));
            if let Err(e) = views {
                // A refused start leaves nothing behind: the database this start created goes.
                if !existed {
                    let _ = conn.batch_execute(&format!("DROP DATABASE `{glue_schema}`"));
                }
                return Err(e);
            }
            conn.batch_execute(&format!("USE `{glue_schema}`"))?;
        }
        Backend::Sqlite => {}
    }
    Ok(())
}

/// MySQL: the views of the shop's MFA tables in glue's database. MariaDB checks privileges
/// before existence, so to a user with table grants only a table it may not see and a table
/// that does not exist look alike ("command denied"): then `auto` refuses to guess (a guess of
/// "absent" would let agents with the email method in with their password alone).
fn mfa_views(
    conn: &mut DbConnection,
    glue_schema: &str,
    shop_database: &str,
    layout: &Layout,
) -> Result<(), ConnectError> {
    let setting = match layout {
        Layout::Spryker { shop_mfa, .. } => *shop_mfa,
        Layout::Glue => return Ok(()),
    };
    for MfaTable {
        name: table,
        columns,
        ..
    } in MFA_TABLES
    {
        let drop = format!("DROP VIEW IF EXISTS `{glue_schema}`.`{table}`");
        if setting == ShopMfaTables::Absent {
            conn.batch_execute(&drop)?;
            continue;
        }
        let columns = columns
            .iter()
            .map(|column| format!("`{column}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let created = conn.batch_execute(&format!(
            "CREATE OR REPLACE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW `{glue_schema}`.`{table}` AS SELECT {columns} FROM `{shop_database}`.`{table}`"
        ));
        let Err(e) = created else { continue };
        let message = e.to_string().to_ascii_lowercase();
        if message.contains("doesn't exist") {
            conn.batch_execute(&drop)?;
            if setting == ShopMfaTables::Present {
                return Err(ConnectError::Setup(format!(
                    "database.shop_mfa_tables = \"present\", but the shop's database has no table {table} (spryker/multi-factor-auth is not installed)"
                )));
            }
            continue;
        }
        if is_refusal(&e) && !super::is_unavailable(&e) {
            return Err(ConnectError::Setup(format!(
                "glue's database user may not read the shop's {table}, so glue cannot tell whether the shop installed spryker/multi-factor-auth (MariaDB answers alike for a table that does not exist): grant the \"Agents' email method\" lines of `glue db grants`, or set database.shop_mfa_tables = \"absent\" if the shop has not installed it"
            )));
        }
        return Err(e.into());
    }
    Ok(())
}

/// The names of the search expression indexes ([`search_index_ddl`]).
pub const SEARCH_INDEXES: [&str; 3] = [
    "glue-spy_customer-lower_email",
    "glue-spy_customer-lower_first_name",
    "glue-spy_customer-lower_last_name",
];

/// The search expression indexes a shop's PostgreSQL lacks (its customer search then scans
/// `spy_customer`); none elsewhere (glue's own migrations create them, MariaDB needs none).
pub fn missing_search_indexes(
    conn: &mut DbConnection,
    layout: &Layout,
) -> QueryResult<Vec<&'static str>> {
    if !layout.is_spryker() || conn.backend() != Backend::Postgresql {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    struct Index {
        #[diesel(sql_type = Text)]
        indexname: String,
    }
    let present: Vec<String> = diesel::sql_query(
        "SELECT indexname::text AS indexname FROM pg_indexes WHERE tablename = 'spy_customer' AND schemaname = ANY (current_schemas(false))",
    )
    .load::<Index>(conn)?
    .into_iter()
    .map(|index| index.indexname)
    .collect();
    Ok(SEARCH_INDEXES
        .into_iter()
        .filter(|name| !present.iter().any(|p| p == name))
        .collect())
}

/// The expression indexes that make case-insensitive prefix search on a shop's PostgreSQL
/// database index-backed (`glue db search-indexes`): for a DBA to review and apply; glue never
/// creates them in `spryker` mode, and its queries use them when they exist. MariaDB/MySQL
/// need none: Spryker's `utf8_unicode_ci` indexes already serve `LIKE 'p%'` in any case.
pub fn search_index_ddl(backend: Backend) -> String {
    match backend {
        Backend::Postgresql => [
            "-- glue: case-insensitive prefix search on spy_customer as index range scans.",
            "-- CONCURRENTLY: no write lock on spy_customer while the indexes build.",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"glue-spy_customer-lower_email\" ON \"spy_customer\" ((lower(\"email\") COLLATE \"C\"));",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"glue-spy_customer-lower_first_name\" ON \"spy_customer\" ((lower(\"first_name\") COLLATE \"C\"));",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"glue-spy_customer-lower_last_name\" ON \"spy_customer\" ((lower(\"last_name\") COLLATE \"C\"));",
            "-- Propel does not know these indexes: a later `propel:diff` proposes to drop them.",
            "-- Remove those DROP INDEX lines from the generated migration, or declare the",
            "-- indexes in the shop's spy_customer schema XML.",
        ]
        .join("\n"),
        Backend::Mysql => "-- MariaDB/MySQL: nothing to add. Spryker's spy_customer indexes on email, first_name and\n-- last_name use utf8_unicode_ci, which ignores case, so glue's `LIKE 'p%'` is index-backed.".to_string(),
        Backend::Sqlite => "-- SQLite: glue's own migrations create the search indexes.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_glue_layout_needs_nothing_resolved() {
        assert_eq!(
            Layout::resolve(
                SchemaOwner::Glue,
                "anything",
                Backend::Sqlite,
                "var/glue.sqlite3"
            ),
            Ok(Layout::Glue)
        );
    }

    #[test]
    fn spryker_mode_puts_glues_tables_beside_the_shops() {
        assert_eq!(
            Layout::resolve(
                SchemaOwner::Spryker,
                "",
                Backend::Postgresql,
                "postgres://glue@db/shop"
            ),
            Ok(Layout::Spryker {
                glue_schema: "glue".into(),
                shop_database: String::new(),
                shop_mfa: ShopMfaTables::Auto,
            })
        );
        if cfg!(feature = "mysql") {
            assert_eq!(
                Layout::resolve(
                    SchemaOwner::Spryker,
                    "",
                    Backend::Mysql,
                    "mysql://glue@db:3306/shop?x=1"
                ),
                Ok(Layout::Spryker {
                    glue_schema: "shop_glue".into(),
                    shop_database: "shop".into(),
                    shop_mfa: ShopMfaTables::Auto,
                })
            );
        }
    }

    #[test]
    fn spryker_mode_refuses_what_it_cannot_keep_apart_or_quote() {
        let refused = |schema: &str, url: &str| {
            let backend = if url.starts_with("postgres") {
                Backend::Postgresql
            } else {
                Backend::Sqlite
            };
            Layout::resolve(SchemaOwner::Spryker, schema, backend, url).unwrap_err()
        };
        assert!(refused("", "var/glue.sqlite3").contains("SQLite"));
        assert!(refused("public", "postgres://glue@db/shop").contains("shop's tables"));
        for bad in ["glue\"; DROP", "1glue", "glue schema", &"g".repeat(64)] {
            assert!(
                refused(bad, "postgres://glue@db/shop").contains("database.glue_schema"),
                "{bad}"
            );
        }
    }
}
