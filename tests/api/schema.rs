//! glue's migrations create Spryker's tables exactly as Propel does: the `information_schema`
//! (and `pg_indexes`) description of `spy_user`, `spy_customer`, `spy_oauth_client` and
//! `spy_oauth_refresh_token` equals a fixture written from Spryker's Propel schema XML. glue's
//! only additions to them are indexes named `glue-…` (no columns).

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::backends;
use crate::helpers::*;

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

const TABLES: &str = "'spy_user', 'spy_customer', 'spy_oauth_client', 'spy_oauth_refresh_token'";

/// The fixture's lines, without comments and blank lines, sorted.
fn fixture(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// Splits the database's description into Spryker's part and glue's additions.
fn compare(described: Vec<Line>, expected: &str) {
    let (additions, mut spryker): (Vec<String>, Vec<String>) =
        described.into_iter().map(|l| l.line).partition(|l| {
            l.starts_with("index ") && l.split(' ').nth(2).is_some_and(|n| n.starts_with("glue-"))
        });
    spryker.sort();
    let expected = fixture(expected);
    let missing: Vec<_> = expected.iter().filter(|l| !spryker.contains(l)).collect();
    let extra: Vec<_> = spryker.iter().filter(|l| !expected.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "differs from Spryker's schema\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
    for addition in &additions {
        assert!(
            addition.starts_with("index spy_customer glue-"),
            "{addition}"
        );
    }
}

backends!(servers: spryker_tables_match_propels_schema);

/// glue's migrations create Spryker's tables exactly as Propel's schema does on each engine
/// (columns, types, defaults, sequences, indexes), plus only glue's own search indexes.
async fn spryker_tables_match_propels_schema(backend: Backend) {
    let db = TestDatabase::create(backend);
    let mut conn = db.connect();
    let (query, expected) = match backend {
        Backend::Postgres => (
            format!(
                r#"SELECT 'column ' || table_name || '.' || column_name || ' '
               || CASE WHEN character_maximum_length IS NOT NULL
                       THEN data_type || '(' || character_maximum_length || ')' ELSE data_type END
               || CASE is_nullable WHEN 'YES' THEN ' NULL' ELSE ' NOT NULL' END
               || COALESCE(' DEFAULT ' || column_default, '') AS line
           FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name IN ({TABLES})
           UNION ALL
           SELECT 'sequence ' || sequence_name FROM information_schema.sequences
           WHERE sequence_schema = current_schema() AND sequence_name LIKE 'spy\_%'
           UNION ALL
           SELECT 'index ' || tablename || ' ' || indexname
               || CASE WHEN indexdef LIKE 'CREATE UNIQUE%' THEN ' unique' ELSE '' END
               || ' (' || substring(indexdef from 'USING btree \((.*)\)$') || ')'
           FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ({TABLES})"#
            ),
            include_str!("fixtures/spryker-schema-postgres.txt"),
        ),
        _ => (
            format!(
                r#"SELECT CONCAT('column ', TABLE_NAME, '.', COLUMN_NAME, ' ', COLUMN_TYPE,
                  IF(IS_NULLABLE = 'YES', ' NULL', ' NOT NULL'),
                  IF(COLUMN_DEFAULT IS NULL OR COLUMN_DEFAULT = 'NULL', '', CONCAT(' DEFAULT ', COLUMN_DEFAULT)),
                  IF(COLLATION_NAME IS NULL, '', CONCAT(' ', REPLACE(COLLATION_NAME, 'utf8mb3', 'utf8')))) AS line
           FROM information_schema.COLUMNS
           WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({TABLES})
           UNION ALL
           SELECT CONCAT('index ', TABLE_NAME, ' ', INDEX_NAME, IF(NON_UNIQUE = 0, ' unique', ''), ' (',
                  GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ', '), ')')
           FROM information_schema.STATISTICS
           WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({TABLES})
           GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE"#
            ),
            include_str!("fixtures/spryker-schema-mysql.txt"),
        ),
    };
    let described: Vec<Line> = diesel::sql_query(query).load(&mut conn).unwrap();
    compare(described, expected);
}
