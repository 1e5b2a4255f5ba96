//! A deployment's own SQL migrations (`database.site_migrations_path`): how a site seeds its
//! agents, or anything else it keeps beside glue's tables, the way glue seeds its demo agent.
//!
//! The folder holds one subfolder per engine (`sqlite`, `postgres`, `mysql`, as glue's own
//! `migrations/`), each of diesel-style `<version>_<name>/up.sql` (and `down.sql`). They are
//! applied after glue's own, wherever glue applies its own (`glue migrate` and start-up), in
//! version order, tracked in the same bookkeeping table (`__diesel_schema_migrations`), each in
//! its own transaction: on PostgreSQL and SQLite a failing file changes nothing; on MariaDB and
//! MySQL every DDL statement commits at once, so only the file's plain row changes are undone.
//! Never in `spryker` mode: the shop's back office owns its users.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};

use super::ConnectError;

/// The setting's name, as every message about it says it.
const SETTING: &str = "database.site_migrations_path";

/// The configured folder of a deployment's own migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteMigrations {
    root: PathBuf,
}

impl SiteMigrations {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SiteMigrations { root: root.into() }
    }

    /// Applies the pending migrations of the engine's subfolder (`sqlite`, `postgres` or
    /// `mysql`, as glue's own `migrations/`), in version order; the number
    /// applied. Refuses, before applying any, a folder that is missing or holds something
    /// that is not a migration, a version glue reserves for its own, or a version twice; stops
    /// at the first file that fails, naming it (the ones before it stay applied).
    pub(in crate::db) fn apply<C, DB>(
        &self,
        conn: &mut C,
        engine: &str,
    ) -> Result<usize, ConnectError>
    where
        DB: diesel::backend::Backend,
        C: MigrationHarness<DB>,
    {
        let folder = self.root.join(engine);
        if !folder.is_dir() {
            return Err(setup(format!(
                "{SETTING}: {} is not a folder (the setting names a folder with one subfolder per engine: sqlite, postgres, mysql)",
                folder.display()
            )));
        }
        let source = FileBasedMigrations::from_path(&folder)
            .map_err(|e| setup(format!("{SETTING}: {}: {e}", folder.display())))?;
        let mut migrations: Vec<Box<dyn Migration<DB>>> = source
            .migrations()
            .map_err(|e| setup(format!("{SETTING}: {}: {e}", folder.display())))?;
        migrations.sort_by_key(|m| m.name().version().as_owned());
        let mut seen = HashSet::new();
        for migration in &migrations {
            let version = migration.name().version().to_string();
            if is_reserved(&version) {
                return Err(setup(format!(
                    "{SETTING}: {} has a version glue reserves for its own migrations (YYYY-MM-DD-000000 to YYYY-MM-DD-000999): give it another, e.g. a time of day such as {}-120000_…",
                    folder.join(migration.name().to_string()).display(),
                    version.get(..8).map_or("2026-12-06".into(), |d| format!(
                        "{}-{}-{}",
                        &d[..4],
                        &d[4..6],
                        &d[6..8]
                    )),
                )));
            }
            if !seen.insert(version) {
                return Err(setup(format!(
                    "{SETTING}: {} has the same version as another migration in {}",
                    folder.join(migration.name().to_string()).display(),
                    folder.display()
                )));
            }
        }
        let applied: HashSet<String> = conn
            .applied_migrations()
            .map_err(|e| setup(format!("cannot read the applied migrations: {e}")))?
            .into_iter()
            .map(|v| v.to_string())
            .collect();
        let mut count = 0;
        for migration in migrations
            .iter()
            .filter(|m| !applied.contains(&m.name().version().to_string()))
        {
            conn.run_migration(migration.as_ref()).map_err(|e| {
                setup(format!(
                    "site migration {} failed: {e}",
                    up_sql(&folder, &migration.name().to_string()).display()
                ))
            })?;
            count += 1;
        }
        Ok(count)
    }
}

fn up_sql(folder: &Path, name: &str) -> PathBuf {
    folder.join(name).join("up.sql")
}

fn setup(message: String) -> ConnectError {
    ConnectError::Setup(message)
}

/// Whether `version` (as diesel keeps it: the folder name up to its first `_`, dashes removed)
/// is in the range glue's own migrations use: `YYYY-MM-DD-000NNN`. Reserved ahead, so that no
/// later glue migration can have a version a site already applied (diesel would skip it).
pub(in crate::db) fn is_reserved(version: &str) -> bool {
    version.len() == 14 && version.bytes().all(|b| b.is_ascii_digit()) && &version[8..11] == "000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_versions() {
        assert!(is_reserved("20261206000001"));
        assert!(is_reserved("20261206000999"));
        assert!(!is_reserved("20261206001000"));
        assert!(!is_reserved("20261206120000"));
        assert!(!is_reserved("2026120600000"));
        assert!(!is_reserved("1"));
    }
}
