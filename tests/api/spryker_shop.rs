//! `database.schema_owner = "spryker"`: glue on a live shop's database (Spryker's DDL as Propel
//! emits it, seeded as Zed and the storefront would: `fixtures/spryker-shop-*.sql`). The whole
//! flow — agent login, refresh, reuse, revoke, search, impersonation, customer login, the shop's
//! own revocation, blocker, CLI — and the description of every table, index, constraint and
//! view of the shop's schema identical before and after.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use glue::db::{ConnectionManager, DbConnection, SchemaOwner};
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::*;
use crate::{backends, mail_backends};

/// The identifier of the refresh-token row the fixture's PHP Glue wrote.
const PHP_ROW: &str =
    "5d8f0c1e0b7a4f2a9c3e6d1b8a7f4e2c5d8f0c1e0b7a4f2a9c3e6d1b8a7f4e2c5d8f0c1e0b7a4f2a";
const AGENT: (&str, &str) = ("agent@shop.test", "Agent-Pass-2026");
const CUSTOMER_PASSWORD: &str = "Customer-Pass-2026";
/// 120 bytes: Symfony's NativePasswordHasher stored base64(sha512(it)).
const LONG_PASSWORD: &str = "correct horse battery staple, correct horse battery staple, correct horse battery staple, correct horse battery staple, ";
const NUL_PASSWORD: &str = "nul\0byte-Pass-2026";

/// A shop's database on `backend`, with the fixture loaded.
fn shop_database(backend: Backend) -> TestDatabase {
    let db = TestDatabase::create(backend);
    match backend {
        Backend::Postgres => diesel::PgConnection::establish(&db.url)
            .unwrap()
            .batch_execute(include_str!("fixtures/spryker-shop-postgres.sql"))
            .expect("load the shop fixture"),
        Backend::Mysql => load_mysql_fixture(&db.url),
        Backend::Sqlite => unreachable!("a shop's database is PostgreSQL or MariaDB"),
    }
    db
}

fn load_mysql_fixture(url: &str) {
    mysql_execute(url, include_str!("fixtures/spryker-shop-mysql.sql"));
}

#[cfg(feature = "mysql")]
fn mysql_execute(url: &str, sql: &str) {
    diesel::MysqlConnection::establish(url)
        .unwrap()
        .batch_execute(sql)
        .expect(sql);
}

#[cfg(not(feature = "mysql"))]
fn mysql_execute(_url: &str, _sql: &str) {
    panic!("the MySQL variants need a build with `--features mysql`")
}

/// Runs `sql` on the shop's database as the shop would (not through glue's connection).
fn raw_execute(db: &TestDatabase, backend: Backend, sql: &str) {
    match backend {
        Backend::Postgres => diesel::PgConnection::establish(&db.url)
            .unwrap()
            .batch_execute(sql)
            .expect(sql),
        _ => mysql_execute(&db.url, sql),
    }
}

fn shop_settings(db: &TestDatabase) -> glue::settings::Settings {
    let mut settings = test_settings(&db.url);
    settings.database.schema_owner = SchemaOwner::Spryker;
    settings.database.timezone = SHOP_ZONE.into();
    // And the shop's keys, as when migrating from PHP Glue (issue 17).
    let env = crate::php_glue::shop_env();
    settings.oauth.key_source = glue::settings::KeySource::SprykerEnv;
    settings.oauth.client_id = env.client_id.clone();
    settings.oauth.spryker_env = Some(env);
    settings
}

/// The shop's PHP time zone in these tests: far from UTC (+14:00, no daylight saving time), so
/// a timestamp written in UTC would stand out.
const SHOP_ZONE: &str = "Pacific/Kiritimati";

/// A connection as glue's own (the shop's tables, glue's schema first).
fn glue_connection(db: &TestDatabase) -> DbConnection {
    ConnectionManager::for_settings(&shop_settings(db).database)
        .unwrap()
        .establish()
        .unwrap()
}

#[derive(QueryableByName, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Every table, column (type, nullability, default, collation), index, constraint, sequence,
/// view and trigger of the shop's own schema (not glue's), sorted.
fn describe_shop(db: &TestDatabase, backend: Backend) -> Vec<String> {
    let mut lines: Vec<Line> = match backend {
        Backend::Postgres => {
            let mut conn = diesel::PgConnection::establish(&db.url).unwrap();
            diesel::sql_query(
                r#"SELECT 'relation ' || c.relname || ' ' || c.relkind::text AS line
                   FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
                   UNION ALL
                   SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type
                       || COALESCE('(' || character_maximum_length || ')', '') || ' ' || is_nullable
                       || COALESCE(' DEFAULT ' || column_default, '') || COALESCE(' ' || collation_name, '')
                   FROM information_schema.columns WHERE table_schema = 'public'
                   UNION ALL
                   SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
                   UNION ALL
                   SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
                   FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                   UNION ALL
                   SELECT 'trigger ' || tgrelid::regclass::text || ' ' || tgname FROM pg_trigger
                   WHERE tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)"#,
            )
            .load(&mut conn)
            .unwrap()
        }
        Backend::Mysql => describe_mysql(db),
        Backend::Sqlite => unreachable!(),
    };
    lines.sort();
    lines.into_iter().map(|l| l.line).collect()
}

#[cfg(feature = "mysql")]
fn describe_mysql(db: &TestDatabase) -> Vec<Line> {
    let mut conn = diesel::MysqlConnection::establish(&db.url).unwrap();
    diesel::sql_query(
        r#"SELECT CONCAT('table ', TABLE_NAME, ' ', TABLE_TYPE, ' ', COALESCE(ENGINE, ''), ' ', COALESCE(TABLE_COLLATION, '')) AS line
           FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
           UNION ALL
           SELECT CONCAT('column ', TABLE_NAME, '.', COLUMN_NAME, ' ', COLUMN_TYPE, ' ', IS_NULLABLE,
                  ' ', COALESCE(COLUMN_DEFAULT, '-'), ' ', EXTRA, ' ', COALESCE(COLLATION_NAME, ''))
           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
           UNION ALL
           SELECT CONCAT('index ', TABLE_NAME, ' ', INDEX_NAME, ' ', NON_UNIQUE, ' ', SEQ_IN_INDEX, ' ', COLUMN_NAME, ' ', INDEX_TYPE)
           FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
           UNION ALL
           SELECT CONCAT('constraint ', TABLE_NAME, ' ', CONSTRAINT_NAME, ' ', CONSTRAINT_TYPE)
           FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = DATABASE()
           UNION ALL
           SELECT CONCAT('reference ', TABLE_NAME, ' ', CONSTRAINT_NAME, ' ', COLUMN_NAME, ' ', COALESCE(REFERENCED_TABLE_SCHEMA, ''), '.', COALESCE(REFERENCED_TABLE_NAME, ''), '.', COALESCE(REFERENCED_COLUMN_NAME, ''))
           FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() OR REFERENCED_TABLE_SCHEMA = DATABASE()
           UNION ALL
           SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"#,
    )
    .load(&mut conn)
    .unwrap()
}

#[cfg(not(feature = "mysql"))]
fn describe_mysql(_db: &TestDatabase) -> Vec<Line> {
    panic!("the MySQL variants need a build with `--features mysql`")
}

#[derive(QueryableByName, Debug)]
struct TokenRow {
    #[diesel(sql_type = BigInt)]
    id_oauth_refresh_token: i64,
    #[diesel(sql_type = Nullable<Text>)]
    scopes: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    customer_reference: Option<String>,
    #[diesel(sql_type = Text)]
    user_identifier: String,
    #[diesel(sql_type = Text)]
    fk_oauth_client: String,
    #[diesel(sql_type = Nullable<Text>)]
    revoked: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamp>)]
    created_at: Option<chrono::NaiveDateTime>,
}

/// The shop's row of a refresh token (found by the SHA-256 of the token, as glue stores it).
fn token_row(conn: &mut DbConnection, token: &str) -> TokenRow {
    let identifier = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    diesel::sql_query(format!(
        "SELECT id_oauth_refresh_token, scopes, customer_reference, user_identifier, fk_oauth_client, \
                CASE WHEN revoked_at IS NULL THEN NULL ELSE 'revoked' END AS revoked, created_at \
         FROM spy_oauth_refresh_token WHERE identifier = '{identifier}'"
    ))
    .get_result(conn)
    .unwrap()
}

fn access_and_refresh(body: &Value) -> (String, Value) {
    let attributes = &body["data"]["attributes"];
    (
        attributes["accessToken"].as_str().unwrap().to_string(),
        attributes["refreshToken"].clone(),
    )
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["errors"][0]["code"].as_str().unwrap_or("").to_string(),
    )
}

async fn serves_a_spryker_shop_database_unchanged(backend: Backend) {
    let _ = env_logger::builder().is_test(true).try_init();
    let db = std::sync::Arc::new(shop_database(backend));
    let before = describe_shop(&db, backend);
    let app = start(shop_settings(&db), db.clone()).expect("glue starts on the shop's database");
    let mut conn = glue_connection(&db);

    // Agents: is_agent true and status 0; NULL is_agent, blocked and deleted users are refused
    // as an unknown user is.
    let response = app.post_agent_login(AGENT.0, AGENT.1).await;
    assert_eq!(response.status(), 201);
    let agent_body: Value = response.json().await.unwrap();
    let (agent_access, agent_refresh) = access_and_refresh(&agent_body);
    let claims = app.verify_with_jwks(&agent_access).await;
    let sub: Value = serde_json::from_str(claims["sub"].as_str().unwrap()).unwrap();
    assert_eq!(sub["id_agent"], 7002, "the shop's own id for the agent");
    for (username, password) in [
        ("admin@shop.test", "Admin-Pass-2026"),
        ("blocked@shop.test", "Blocked-Pass-2026"),
        ("deleted@shop.test", "Deleted-Pass-2026"),
        (AGENT.0, "wrong-password"),
    ] {
        let refused = app.post_agent_login(username, password).await;
        assert_eq!(
            error_code(refused).await,
            (401, "4101".into()),
            "{username}"
        );
    }

    // The refresh token is a Spryker-shaped row with the shop's next id.
    let row = token_row(&mut conn, agent_refresh.as_str().unwrap());
    assert!(row.id_oauth_refresh_token > 500_001, "{row:?}");
    assert_eq!(row.scopes.as_deref(), Some(r#"["agent"]"#));
    assert_eq!(row.customer_reference, None);
    assert_eq!(
        serde_json::from_str::<Value>(&row.user_identifier).unwrap(),
        sub
    );
    assert_eq!(row.fk_oauth_client, "frontend");
    let shop_now = chrono::Utc::now().naive_utc() + chrono::TimeDelta::hours(14);
    let written = row.created_at.unwrap();
    assert!(
        (shop_now - written).num_seconds().abs() < 60,
        "written in the shop's zone: {written} vs {shop_now}"
    );

    // Refresh rotates; a reused token ends the family.
    let rotated = app.refresh(&agent_refresh).await;
    assert_eq!(rotated.status(), 201);
    let (_, agent_refresh_2) = access_and_refresh(&rotated.json().await.unwrap());
    assert_eq!(
        token_row(&mut conn, agent_refresh.as_str().unwrap()).revoked,
        Some("revoked".into())
    );
    assert_eq!(error_code(app.refresh(&agent_refresh).await).await.0, 401);
    assert_eq!(error_code(app.refresh(&agent_refresh_2).await).await.0, 401);

    // Expiry is judged in the shop's zone: a row that expired a minute ago, shop time (14 hours
    // ahead of UTC), is expired — judged in UTC it would still look valid.
    let response = app.post_agent_login(AGENT.0, AGENT.1).await;
    let (_, expiring) = access_and_refresh(&response.json().await.unwrap());
    let shop_now = chrono::Utc::now().naive_utc() + chrono::TimeDelta::hours(14);
    let a_minute_ago = (shop_now - chrono::TimeDelta::minutes(1)).format("%Y-%m-%d %H:%M:%S");
    let id = token_row(&mut conn, expiring.as_str().unwrap()).id_oauth_refresh_token;
    conn.batch_execute(&format!(
        "UPDATE spy_oauth_refresh_token SET expires_at = '{a_minute_ago}' WHERE id_oauth_refresh_token = {id}"
    ))
    .unwrap();
    assert_eq!(error_code(app.refresh(&expiring).await).await.0, 401);
    let last_login = glue::agent::find_by_username(&mut conn, AGENT.0)
        .unwrap()
        .unwrap()
        .last_login
        .unwrap();
    assert!(
        (shop_now - last_login).num_seconds().abs() < 60,
        "last_login in the shop's zone: {last_login} vs {shop_now}"
    );

    // A new session: search on Spryker's columns (any case; NULL names; references).
    let response = app.post_agent_login(AGENT.0, AGENT.1).await;
    let (agent_access, agent_refresh) = access_and_refresh(&response.json().await.unwrap());
    for (query, expected) in [
        ("mixed.CASE@", vec!["DE--90001"]),
        ("carl", vec!["DE--90001"]),
        ("DE--90002", vec!["DE--90002"]),
        ("nonames", vec!["DE--90002"]),
        ("n", vec!["DE--90002", "DE--90004"]),
        ("nora", vec![]),
    ] {
        let response = app
            .search(&format!("q={}", urlencode(query)), &agent_access)
            .await;
        assert_eq!(response.status(), 200, "{query}");
        let body: Value = response.json().await.unwrap();
        let found: Vec<&str> = body["data"][0]["attributes"]["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["customerReference"].as_str().unwrap())
            .collect();
        assert_eq!(found, expected, "{query}: {body}");
        if query == "nonames" {
            let customer = &body["data"][0]["attributes"]["customers"][0];
            assert_eq!(customer["firstName"], Value::Null);
            assert_eq!(customer["lastName"], Value::Null);
        }
    }

    // An anonymized customer is nobody: not found, not impersonated, no login.
    let response = app.impersonate(&json!("DE--90005"), &agent_access).await;
    assert_eq!(response.status(), 401, "as for an unknown reference");
    let response = app
        .customer_login(&json!("nora.gone@shop.test"), &json!(CUSTOMER_PASSWORD))
        .await;
    assert_eq!(response.status(), 401);

    // Impersonation writes a customer row naming the shop's customer.
    let response = app.impersonate(&json!("DE--90001"), &agent_access).await;
    assert_eq!(response.status(), 201);
    let (_, impersonation_refresh) = access_and_refresh(&response.json().await.unwrap());
    let row = token_row(&mut conn, impersonation_refresh.as_str().unwrap());
    assert_eq!(row.customer_reference.as_deref(), Some("DE--90001"));

    // Customers log in with the shop's hashes: PHP `$2y$10$`, any case of the email, and
    // Symfony's prehash for a long password and one with a NUL byte.
    for (email, password) in [
        ("mixed.case@shop.test", CUSTOMER_PASSWORD),
        ("LONG.PASSWORD@shop.test", LONG_PASSWORD),
        ("nul.byte@shop.test", NUL_PASSWORD),
    ] {
        let response = app.customer_login(&json!(email), &json!(password)).await;
        assert_eq!(response.status(), 201, "{email}");
    }
    for (email, password) in [
        ("long.password@shop.test", &LONG_PASSWORD[..72]),
        ("nul.byte@shop.test", "nul"),
        ("nonames@shop.test", "anything"),
    ] {
        let response = app.customer_login(&json!(email), &json!(password)).await;
        assert_eq!(response.status(), 401, "{email} with a wrong password");
    }

    // The refresh token the shop's PHP Glue issued (the fixture's row) is exchanged once.
    let php_token = crate::php_glue::php_refresh_token(
        crate::php_glue::ENCRYPTION_KEY,
        &crate::php_glue::php_payload(
            "frontend",
            PHP_ROW,
            r#"{"id_customer":90001,"customer_reference":"DE--90001","id_agent":null}"#,
            &["customer"],
            chrono::Utc::now().timestamp() + 3600,
        ),
    );
    let response = app.refresh(&json!(php_token)).await;
    assert_eq!(response.status(), 201);
    assert_eq!(app.refresh(&json!(php_token)).await.status(), 401);

    // The shop's own revocation (Spryker's revoke by customer reference) stops glue's tokens.
    let response = app
        .customer_login(&json!("mixed.case@shop.test"), &json!(CUSTOMER_PASSWORD))
        .await;
    let (customer_access, customer_refresh) = access_and_refresh(&response.json().await.unwrap());
    conn.batch_execute(
        "UPDATE spy_oauth_refresh_token SET revoked_at = created_at WHERE customer_reference = 'DE--90001' AND revoked_at IS NULL",
    )
    .unwrap();
    assert_eq!(
        error_code(app.refresh(&customer_refresh).await).await.0,
        401
    );
    let response = app
        .delete_refresh_token("mine", Some(&customer_access))
        .await;
    assert_eq!(response.status(), 401, "the session ended with the row");

    // Logout revokes the agent's rows.
    let response = app.delete_refresh_token("mine", Some(&agent_access)).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        token_row(&mut conn, agent_refresh.as_str().unwrap()).revoked,
        Some("revoked".into())
    );

    // The blocker's counters live in glue's own schema.
    for _ in 0..3 {
        app.post_agent_login(AGENT.0, "wrong-again").await;
    }
    let counters: i64 = diesel::select(diesel::dsl::sql::<BigInt>(match backend {
        Backend::Mysql => "CAST((SELECT COUNT(*) FROM glue_login_attempt_counter) AS SIGNED)",
        _ => "(SELECT COUNT(*) FROM glue_login_attempt_counter)",
    }))
    .get_result(&mut conn)
    .unwrap();
    assert!(counters > 0);

    // A new row of the shop's own (its next id) does not collide with glue's.
    conn.batch_execute(match backend {
        Backend::Postgres => "INSERT INTO spy_oauth_refresh_token (id_oauth_refresh_token, identifier, user_identifier, fk_oauth_client, expires_at) VALUES (nextval('spy_oauth_refresh_token_pk_seq'), 'php-row', '{}', 'frontend', '2099-01-01 00:00:00')",
        _ => "INSERT INTO spy_oauth_refresh_token (identifier, user_identifier, fk_oauth_client, expires_at) VALUES ('php-row', '{}', 'frontend', '2099-01-01 00:00:00')",
    })
    .expect("the shop's next insert");

    // CLI on the shop's database.
    let env = [
        ("GLUE__DATABASE__SCHEMA_OWNER", "spryker"),
        ("GLUE__DATABASE__TIMEZONE", SHOP_ZONE),
    ];
    let run = |args: &[&str], stdin: Option<&str>| glue_with_env("test", &db, &env, args, stdin);
    let out = run(&["agent", "deactivate", "--username", AGENT.0], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(user_status(&mut conn, AGENT.0), 1);
    assert_eq!(app.agent_login_status(AGENT.0, AGENT.1).await, 401);
    let out = run(&["agent", "activate", "--username", AGENT.0], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(user_status(&mut conn, AGENT.0), 0);
    let out = run(
        &[
            "agent",
            "set-password",
            "--username",
            AGENT.0,
            "--password-stdin",
        ],
        Some("New-Agent-Pass-2026\n"),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(user_password(&mut conn, AGENT.0).starts_with("$2y$"));
    assert_eq!(
        app.agent_login_status(AGENT.0, "New-Agent-Pass-2026").await,
        201
    );
    for args in [
        &[
            "agent",
            "create",
            "--username",
            "new@shop.test",
            "--first-name",
            "N",
            "--last-name",
            "A",
            "--password-stdin",
        ][..],
        &[
            "customer",
            "create",
            "--email",
            "new@shop.test",
            "--first-name",
            "N",
            "--last-name",
            "C",
        ][..],
    ] {
        let out = run(args, Some("Some-Pass-2026\n"));
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("back office"), "{stderr}");
    }

    // purge-expired removes glue's expired rows and their side rows, never the shop's, and side
    // rows whose token row the shop deleted.
    conn.batch_execute(
        "INSERT INTO glue_oauth_refresh_token (id_oauth_refresh_token, family) VALUES (999999999, 'orphaned')",
    )
    .unwrap();
    conn.batch_execute("UPDATE spy_oauth_refresh_token SET expires_at = '2001-01-01 00:00:00'")
        .unwrap();
    let out = run(&["tokens", "purge-expired", "--retention", "0s"], None);
    assert!(out.status.success(), "{out:?}");
    let left: Vec<Line> = diesel::sql_query(
        "SELECT identifier AS line FROM spy_oauth_refresh_token ORDER BY identifier",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(
        left.into_iter().map(|l| l.line).collect::<Vec<_>>(),
        [PHP_ROW, "php-row"]
    );

    let side_rows: i64 = diesel::select(diesel::dsl::sql::<BigInt>(match backend {
        Backend::Mysql => "CAST((SELECT COUNT(*) FROM glue_oauth_refresh_token) AS SIGNED)",
        _ => "(SELECT COUNT(*) FROM glue_oauth_refresh_token)",
    }))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(
        side_rows, 0,
        "the orphan and the purged rows' side rows are gone"
    );

    drop(conn);
    drop(app);
    // The shop's schema is as it was: glue changed rows, never a definition.
    let after = describe_shop(&db, backend);
    assert_eq!(before, after);
}

fn urlencode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn user_status(conn: &mut DbConnection, username: &str) -> i16 {
    glue::agent::find_by_username(conn, username)
        .unwrap()
        .unwrap()
        .status
}

fn user_password(conn: &mut DbConnection, username: &str) -> String {
    glue::agent::find_by_username(conn, username)
        .unwrap()
        .unwrap()
        .password
}

/// Start-up refusals: each names what is missing.
async fn refuses_a_shop_database_it_cannot_serve(backend: Backend) {
    // No Spryker tables at all.
    let empty = std::sync::Arc::new(TestDatabase::create(backend));
    let error = start(shop_settings(&empty), empty.clone())
        .err()
        .expect("refused");
    for table in [
        "spy_user",
        "spy_customer",
        "spy_oauth_client",
        "spy_oauth_refresh_token",
    ] {
        assert!(
            error.contains(&format!("table {table} is missing")),
            "{error}"
        );
    }

    // A shop without the `frontend` client, and with a column glue cannot read.
    let shop = std::sync::Arc::new(shop_database(backend));
    raw_execute(
        &shop,
        backend,
        "DELETE FROM spy_oauth_refresh_token; DELETE FROM spy_oauth_client",
    );
    let error = start(shop_settings(&shop), shop.clone())
        .err()
        .expect("refused");
    assert!(error.contains("\"frontend\""), "{error}");
    raw_execute(&shop, backend, match backend {
        Backend::Postgres => "ALTER TABLE spy_customer DROP COLUMN last_name; ALTER TABLE spy_user ALTER COLUMN username DROP NOT NULL",
        _ => "ALTER TABLE spy_customer DROP COLUMN last_name; ALTER TABLE spy_user MODIFY username VARCHAR(45) NULL",
    });
    let error = start(shop_settings(&shop), shop.clone())
        .err()
        .expect("refused");
    assert!(
        error.contains("column spy_customer.last_name is missing"),
        "{error}"
    );
    assert!(
        error.contains("column spy_user.username is nullable"),
        "{error}"
    );

    // The shop's database in the default mode: refused before glue creates anything.
    let shop = std::sync::Arc::new(shop_database(backend));
    let before = describe_shop(&shop, backend);
    let error = start(test_settings(&shop.url), shop.clone())
        .err()
        .expect("refused");
    assert!(error.contains("schema_owner = \"spryker\""), "{error}");
    assert_eq!(before, describe_shop(&shop, backend));
}

backends!(servers: serves_a_spryker_shop_database_unchanged, refuses_a_shop_database_it_cannot_serve);

#[test]
fn spryker_mode_is_refused_on_sqlite() {
    let db = std::sync::Arc::new(TestDatabase::create(Backend::Sqlite));
    let mut settings = test_settings(&db.url);
    settings.database.schema_owner = SchemaOwner::Spryker;
    let error = start(settings, db.clone()).err().expect("refused");
    assert!(error.contains("SQLite"), "{error}");
}

#[test]
fn search_indexes_are_printed_not_applied() {
    let db = TestDatabase::create(Backend::Sqlite);
    let out = glue_with_env(
        "test",
        &db,
        &[("DATABASE_URL", "postgres://shop@127.0.0.1:1/shop")],
        &["db", "search-indexes"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let ddl = String::from_utf8(out.stdout).unwrap();
    assert!(
        ddl.contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS \"glue-spy_customer-lower_email\""),
        "{ddl}"
    );
}

#[test]
fn an_unknown_time_zone_is_refused() {
    let db = std::sync::Arc::new(TestDatabase::create(Backend::Sqlite));
    let mut settings = test_settings(&db.url);
    settings.database.timezone = "Mars/Olympus_Mons".into();
    let error = start(settings, db.clone()).err().expect("refused");
    assert!(error.contains("database.timezone"), "{error}");
}

backends!(postgres: runs_with_the_documented_grants_only);

/// The README's DBA checklist on PostgreSQL: a role with only the listed grants on the shop's
/// tables, and the schema `glue` created by the DBA (no CREATE on the database).
async fn runs_with_the_documented_grants_only(backend: Backend) {
    let db = std::sync::Arc::new(shop_database(backend));
    let role = format!("glue_role_{}", uuid::Uuid::new_v4().simple());
    raw_execute(
        &db,
        Backend::Postgres,
        &format!(
            "CREATE ROLE {role} LOGIN;
             CREATE SCHEMA glue AUTHORIZATION {role};
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON spy_user, spy_customer, spy_oauth_client, spy_oauth_refresh_token TO {role};
             GRANT USAGE ON SEQUENCE spy_oauth_refresh_token_pk_seq TO {role};
             GRANT SELECT, UPDATE ON spy_user_multi_factor_auth TO {role};
             GRANT SELECT, INSERT, UPDATE ON spy_user_multi_factor_auth_codes TO {role};
             GRANT SELECT, INSERT ON spy_user_multi_factor_auth_codes_attempts TO {role};
             GRANT USAGE ON SEQUENCE id_user_multi_factor_auth_code_pk_seq, id_user_multi_factor_auth_code_attempt_pk_seq TO {role};"
        ),
    );
    let url = db.url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(
        url, db.url,
        "GLUE_TEST_DATABASE_URL names the user postgres"
    );
    let mut settings = shop_settings(&db);
    settings.database.url = glue::settings::Secret::new(&url);
    let app = start(settings, db.clone()).expect("starts with the documented grants");
    let response = app.post_agent_login(AGENT.0, AGENT.1).await;
    assert_eq!(response.status(), 201);
    let (access, refresh) = access_and_refresh(&response.json().await.unwrap());
    assert_eq!(app.refresh(&refresh).await.status(), 201);
    assert_eq!(app.search("q=carl", &access).await.status(), 200);
    let response = app
        .customer_login(&json!("mixed.case@shop.test"), &json!(CUSTOMER_PASSWORD))
        .await;
    assert_eq!(response.status(), 201);
    drop(app);
    // Best effort: the role is the server's, not the test database's.
    if let Ok(mut admin) = diesel::PgConnection::establish(&db.url) {
        let _ = admin.batch_execute(&format!(
            "DROP SCHEMA glue CASCADE; DROP OWNED BY {role}; DROP ROLE {role};"
        ));
    }
}

backends!(servers: the_printed_grants_suffice_and_each_missing_one_is_named);

/// `glue db grants` prints what glue's user needs on a shop's database; with exactly those
/// grants every flow works; without any one of the serving grants start-up refuses naming the
/// privilege, the table and the GRANT that fixes it; and a grant revoked while glue runs takes
/// it out of rotation (`/readyz` 503 naming it).
async fn the_printed_grants_suffice_and_each_missing_one_is_named(backend: Backend) {
    let db = std::sync::Arc::new(shop_database(backend));
    let user = format!(
        "glue_u_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let url = match backend {
        Backend::Postgres => db.url.replacen("://postgres@", &format!("://{user}@"), 1),
        _ => db.url.replacen("://root@", &format!("://{user}:pw@"), 1),
    };
    assert_ne!(url, db.url, "the test server URLs name postgres and root");
    let printed = glue_command(
        "test",
        &url,
        &[("GLUE__DATABASE__SCHEMA_OWNER", "spryker")],
        &["db", "grants"],
    )
    .output()
    .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let grants = String::from_utf8(printed.stdout).unwrap();
    let create = match backend {
        Backend::Postgres => {
            format!("CREATE ROLE {user} LOGIN; GRANT USAGE ON SCHEMA public TO {user};")
        }
        _ => format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw';"),
    };
    raw_execute(&db, backend, &create);
    for statement in grants
        .lines()
        .filter(|l| l.starts_with("GRANT") || l.starts_with("CREATE"))
    {
        let statement = statement.split("  --").next().unwrap();
        raw_execute(&db, backend, statement);
    }
    let settings = || {
        let mut settings = shop_settings(&db);
        settings.database.url = glue::settings::Secret::new(&url);
        settings
    };
    {
        let app = start(settings(), db.clone()).expect("starts with the printed grants");
        let response = app.post_agent_login(AGENT.0, AGENT.1).await;
        assert_eq!(response.status(), 201);
        let (access, refresh) = access_and_refresh(&response.json().await.unwrap());
        assert_eq!(app.refresh(&refresh).await.status(), 201);
        assert_eq!(app.search("q=carl", &access).await.status(), 200);
        assert_eq!(
            app.customer_login(&json!("mixed.case@shop.test"), &json!(CUSTOMER_PASSWORD))
                .await
                .status(),
            201
        );
        assert_eq!(
            app.client
                .get(app.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // Revoked while glue runs: out of rotation within the verdict's few seconds.
        raw_execute(
            &db,
            backend,
            &revoke(backend, &db, &user, "UPDATE", "spy_user"),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let response = app.client.get(app.url("/readyz")).send().await.unwrap();
            if response.status() == 503 {
                let body: Value = response.json().await.unwrap();
                let detail = body["errors"][0]["detail"].as_str().unwrap();
                assert!(detail.contains("UPDATE on spy_user"), "{detail}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "still ready");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        raw_execute(
            &db,
            backend,
            &grant(backend, &db, &user, "UPDATE", "spy_user"),
        );
    }
    for (table, privilege) in [
        ("spy_user", "SELECT"),
        ("spy_user", "UPDATE"),
        ("spy_customer", "SELECT"),
        ("spy_oauth_client", "SELECT"),
        ("spy_oauth_refresh_token", "SELECT"),
        ("spy_oauth_refresh_token", "INSERT"),
        ("spy_oauth_refresh_token", "UPDATE"),
    ] {
        raw_execute(&db, backend, &revoke(backend, &db, &user, privilege, table));
        let error = start(settings(), db.clone()).err().expect("refused");
        assert!(
            error.contains(table) && error.contains(privilege) && error.contains("GRANT"),
            "{privilege} on {table}: {error}"
        );
        raw_execute(&db, backend, &grant(backend, &db, &user, privilege, table));
    }
    // The shop's MFA tables (the fixture's shop installed spryker/multi-factor-auth): without
    // glue's grant on one, PostgreSQL's start names it; MariaDB cannot tell a table the user may
    // not see from one that does not exist, so it refuses to guess and names the setting that
    // says "not installed". Never a start that lets the email method's agents in by password.
    let table = "spy_user_multi_factor_auth_codes";
    raw_execute(&db, backend, &revoke(backend, &db, &user, "SELECT", table));
    let error = start(settings(), db.clone()).err().expect("refused");
    match backend {
        Backend::Postgres => assert!(
            error.contains(table) && error.contains("SELECT") && error.contains("GRANT"),
            "{error}"
        ),
        _ => assert!(
            error.contains("spy_user_multi_factor_auth")
                && error.contains("database.shop_mfa_tables = \"absent\""),
            "{error}"
        ),
    }
    let mut absent = settings();
    absent.database.shop_mfa_tables = glue::db::ShopMfaTables::Absent;
    {
        let app = start(absent, db.clone()).expect("starts: the shop says MFA is not installed");
        assert_eq!(app.post_agent_login(AGENT.0, AGENT.1).await.status(), 201);
    }
    raw_execute(&db, backend, &grant(backend, &db, &user, "SELECT", table));
    // Best effort: users are the server's, not the test database's.
    let drop_user = match backend {
        Backend::Postgres => {
            format!("DROP SCHEMA IF EXISTS glue CASCADE; DROP OWNED BY {user}; DROP ROLE {user};")
        }
        _ => {
            let database = database_name(&db);
            format!("DROP USER '{user}'@'%'; DROP DATABASE IF EXISTS `{database}_glue`;")
        }
    };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        raw_execute(&db, backend, &drop_user)
    }));
}

/// The database a MySQL test URL names.
fn database_name(db: &TestDatabase) -> &str {
    db.url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
}

/// The table `table` of the shop as a GRANT/REVOKE names it.
fn shop_table(backend: Backend, db: &TestDatabase, table: &str) -> String {
    match backend {
        Backend::Postgres => table.to_string(),
        _ => {
            let database = database_name(db);
            format!("`{database}`.`{table}`")
        }
    }
}

fn grantee(backend: Backend, user: &str) -> String {
    match backend {
        Backend::Postgres => user.to_string(),
        _ => format!("'{user}'@'%'"),
    }
}

fn grant(backend: Backend, db: &TestDatabase, user: &str, privilege: &str, table: &str) -> String {
    privilege_statement("GRANT", "TO", backend, db, user, privilege, table)
}

fn revoke(backend: Backend, db: &TestDatabase, user: &str, privilege: &str, table: &str) -> String {
    privilege_statement("REVOKE", "FROM", backend, db, user, privilege, table)
}

/// `GRANT privilege ON table TO user` or `REVOKE … FROM user` on the shop's table.
fn privilege_statement(
    verb: &str,
    preposition: &str,
    backend: Backend,
    db: &TestDatabase,
    user: &str,
    privilege: &str,
    table: &str,
) -> String {
    format!(
        "{verb} {privilege} ON {} {preposition} {}",
        shop_table(backend, db, table),
        grantee(backend, user)
    )
}

backends!(mysql: a_refused_start_leaves_no_glue_database_behind);

/// MariaDB: glue's database is created by the first start; when that start is then refused
/// (here: CREATE VIEW denied on it), the database it created goes again, and the next start with
/// the grant creates it anew.
async fn a_refused_start_leaves_no_glue_database_behind(backend: Backend) {
    let db = std::sync::Arc::new(shop_database(backend));
    let user = format!(
        "glue_l_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let url = db.url.replacen("://root@", &format!("://{user}:pw@"), 1);
    assert_ne!(url, db.url, "the test server URL names root");
    let printed = glue_command(
        "test",
        &url,
        &[("GLUE__DATABASE__SCHEMA_OWNER", "spryker")],
        &["db", "grants"],
    )
    .output()
    .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    raw_execute(
        &db,
        backend,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw';"),
    );
    for statement in String::from_utf8(printed.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("GRANT"))
    {
        raw_execute(&db, backend, statement.split("  --").next().unwrap());
    }
    let glue_database = format!("{}_glue", database_name(&db));
    raw_execute(
        &db,
        backend,
        &format!("REVOKE CREATE VIEW ON `{glue_database}`.* FROM '{user}'@'%'"),
    );
    let exists = || {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = ConnectionManager::new(&db.url, 5000)
            .unwrap()
            .establish()
            .unwrap();
        diesel::sql_query(
            "SELECT COUNT(*) AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind::<diesel::sql_types::Text, _>(&glue_database)
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n > 0
    };
    let settings = || {
        let mut settings = shop_settings(&db);
        settings.database.url = glue::settings::Secret::new(&url);
        settings
    };
    assert!(!exists());
    let error = start(settings(), db.clone()).err().expect("refused");
    assert!(
        error.contains("CREATE VIEW") || error.contains("denied"),
        "{error}"
    );
    assert!(
        !exists(),
        "{glue_database} was left behind by a refused start"
    );
    raw_execute(
        &db,
        backend,
        &format!("GRANT CREATE VIEW ON `{glue_database}`.* TO '{user}'@'%'"),
    );
    let app = start(settings(), db.clone()).expect("starts with the grant back");
    assert!(exists());
    assert_eq!(app.post_agent_login(AGENT.0, AGENT.1).await.status(), 201);
    drop(app);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        raw_execute(
            &db,
            backend,
            &format!("DROP USER '{user}'@'%'; DROP DATABASE IF EXISTS `{glue_database}`;"),
        )
    }));
}

backends!(postgres: missing_search_indexes_are_reported_until_applied);

/// A shop's PostgreSQL without glue's search indexes: start-up says so (the gauge
/// `glue_search_indexes_missing` counts them) and searches still answer; once a DBA applied
/// `glue db search-indexes`, the next start finds none missing.
async fn missing_search_indexes_are_reported_until_applied(backend: Backend) {
    let db = std::sync::Arc::new(shop_database(backend));
    let gauge = |app: &TestApp| {
        let url = format!("http://127.0.0.1:{}/metrics", app.metrics_port.unwrap());
        let client = app.client.clone();
        async move {
            let text = client.get(url).send().await.unwrap().text().await.unwrap();
            metric_sample(&text, "glue_search_indexes_missing")
        }
    };
    let settings = || {
        let mut settings = shop_settings(&db);
        settings.metrics.listen = "127.0.0.1:0".into();
        settings
    };
    {
        let app = start(settings(), db.clone()).unwrap();
        assert_eq!(gauge(&app).await, 3.0);
        let response = app.post_agent_login(AGENT.0, AGENT.1).await;
        let (access, _) = access_and_refresh(&response.json().await.unwrap());
        assert_eq!(app.search("q=carl", &access).await.status(), 200);
    }
    let ddl = glue::db::layout::search_index_ddl(glue::db::Backend::Postgresql);
    for statement in ddl.lines().filter(|l| l.starts_with("CREATE INDEX")) {
        // Outside a transaction block, as CONCURRENTLY needs.
        raw_execute(&db, backend, statement);
    }
    let app = start(settings(), db.clone()).unwrap();
    assert_eq!(gauge(&app).await, 0.0);
}

mail_backends!(servers: honours_the_email_method_the_shop_activated);
backends!(servers: a_shop_without_mfa_tables_has_no_methods);

/// The shop's code rows as Zed reads them: (code, status, expiration_date).
fn shop_codes(db: &TestDatabase) -> Vec<(String, Option<i32>, chrono::NaiveDateTime)> {
    use glue::db::schema::spy_user_multi_factor_auth_codes as codes;
    codes::table
        .order(codes::id_user_multi_factor_auth_code.asc())
        .select((codes::code, codes::status, codes::expiration_date))
        .load(&mut glue_connection(db))
        .unwrap()
}

async fn honours_the_email_method_the_shop_activated(backend: Backend) {
    let smtp = SmtpServer::start();
    let db = std::sync::Arc::new(shop_database(backend));
    // Anna activated the email method in her agent profile: Zed wrote the row.
    raw_execute(
        &db,
        backend,
        match backend {
            Backend::Postgres => "INSERT INTO spy_user_multi_factor_auth (id_user_multi_factor_auth, fk_user, type, status, created_at, updated_at) VALUES (nextval('id_user_multi_factor_auth_pk_seq'), 7002, 'email', 2, '2026-03-02 09:00:00', '2026-03-02 09:00:00')",
            _ => "INSERT INTO spy_user_multi_factor_auth (fk_user, type, status, created_at, updated_at) VALUES (7002, 'email', 2, '2026-03-02 09:00:00', '2026-03-02 09:00:00')",
        },
    );
    let before = describe_shop(&db, backend);
    let mut settings = shop_settings(&db);
    settings.mail.smtp_url = glue::settings::Secret::new(smtp.url());
    settings.mail.from = "glue@shop.test".into();
    let app = start(settings, db.clone()).expect("glue starts on the shop's database");

    // Her password alone no longer gets tokens from the API either: 5900, and a code mailed
    // to her username, stored in the shop's table as Zed stores it (the code itself, 30
    // minutes in the shop's time zone, unverified).
    let utc_now = chrono::Utc::now().naive_utc();
    let refused = app.post_agent_login(AGENT.0, AGENT.1).await;
    assert_eq!(error_code(refused).await, (403, "5900".into()));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains(&format!("To: {}", AGENT.0)),
        "{}",
        mails[0]
    );
    let code = SmtpServer::code_in(&mails[0]);
    let rows = shop_codes(&db);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].1), (code.as_str(), Some(0)));
    let zone: chrono_tz::Tz = SHOP_ZONE.parse().unwrap();
    let shop_now = utc_now.and_utc().with_timezone(&zone).naive_local();
    let ttl = rows[0].2 - shop_now;
    assert!(
        ttl > chrono::TimeDelta::minutes(29) && ttl <= chrono::TimeDelta::minutes(31),
        "expires in the shop's zone: {ttl}"
    );

    // The mailed code gets her tokens; Zed sees the code verified and the attempt.
    let response = app
        .agent_login_with_code(AGENT.0, AGENT.1, Some(&code))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(shop_codes(&db)[0].1, Some(2));
    let attempts: i64 = glue::db::schema::spy_user_multi_factor_auth_codes_attempts::table
        .count()
        .get_result(&mut glue_connection(&db))
        .unwrap();
    assert_eq!(attempts, 1);
    // Used once: the same code again is 5901.
    let again = app
        .agent_login_with_code(AGENT.0, AGENT.1, Some(&code))
        .await;
    assert_eq!(error_code(again).await, (403, "5901".into()));

    // Rows, not schema: the shop's tables are as they were.
    drop(app);
    assert_eq!(before, describe_shop(&db, backend));
}

async fn a_shop_without_mfa_tables_has_no_methods(backend: Backend) {
    let db = std::sync::Arc::new(shop_database(backend));
    raw_execute(
        &db,
        backend,
        "DROP TABLE spy_user_multi_factor_auth_codes_attempts; DROP TABLE spy_user_multi_factor_auth_codes; DROP TABLE spy_user_multi_factor_auth",
    );
    let app = start(shop_settings(&db), db.clone()).expect("glue starts without the MFA tables");
    assert_eq!(app.post_agent_login(AGENT.0, AGENT.1).await.status(), 201);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}
