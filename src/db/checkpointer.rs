//! SQLite's write-ahead log, kept short by one thread of the service instead of by whichever
//! request commits.
//!
//! SQLite copies its log back into the database file (a checkpoint) after any commit that
//! finds the log over 1,000 pages, and starts the log over from its beginning only when a
//! writer finds every page copied back and nobody still reading from the log. Under a steady
//! stream of refreshes somebody always is: measured with 8 clients refreshing on one core, the
//! log grew by about 27 MB/s for as long as the load lasted, and since it stayed over 1,000
//! pages every commit ran a checkpoint of its own (an fsync of the log and one of the database
//! for every three refreshes, on the request's thread).
//!
//! The service's pooled connections never checkpoint (`wal_autocheckpoint = 0`, see
//! [`ConnectionManager::without_autocheckpoint`]). This thread, on a connection of its own,
//! copies the log back every `every` without waiting for anyone (`PASSIVE`: the fsyncs are its
//! own), and once the log holds `restart_at` pages it starts it over (`RESTART`): it waits
//! for the readers of the log to finish, for at most [`RESTART_WAIT_MS`], while writers wait
//! for it, then the next commit writes from the log's beginning. The log's file stays bounded,
//! and a commit is on disk no later than `every` after it (`synchronous = NORMAL` syncs the log
//! at checkpoints).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;

use super::{Backend, ConnectError, ConnectionManager, DbConnection};

/// How long a restart waits for the log's readers (and holds off writers) before it gives up
/// until the next turn.
pub const RESTART_WAIT_MS: u64 = 100;

/// The thread that keeps an SQLite database's write-ahead log short; stops when dropped.
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// The answer of `PRAGMA wal_checkpoint(…)`: whether it was kept from finishing, the log's
/// pages, and how many of them are in the database file now.
#[derive(Debug, diesel::QueryableByName)]
pub struct WalState {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub busy: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub log: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub checkpointed: i64,
}

/// Runs `PRAGMA wal_checkpoint(mode)` (mode: `PASSIVE`, `RESTART`, …) on an SQLite connection.
pub fn wal_checkpoint(
    conn: &mut DbConnection,
    mode: &'static str,
) -> diesel::QueryResult<WalState> {
    diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})")).get_result(conn)
}

impl Checkpointer {
    /// The service's turn: five times a second.
    pub const EVERY: Duration = Duration::from_millis(200);
    /// The log restarts at 64 MiB of 4 KiB pages.
    pub const RESTART_AT_PAGES: i64 = 16_384;

    /// SQLite: starts the thread for `manager`'s database; other backends need none (`None`).
    pub fn start(
        manager: &ConnectionManager,
        every: Duration,
        restart_at: i64,
    ) -> std::io::Result<Option<Self>> {
        if manager.backend() != Backend::Sqlite {
            return Ok(None);
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = std::thread::Builder::new()
            .name("glue-sqlite-checkpoint".into())
            .spawn({
                let manager = manager.clone();
                let stop = stop.clone();
                move || run(&manager, every, restart_at, &stop)
            })?;
        Ok(Some(Checkpointer {
            stop,
            thread: Some(thread),
        }))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    manager: &ConnectionManager,
    every: Duration,
    restart_at: i64,
    stop: &(Mutex<bool>, Condvar),
) {
    let (stopped, wake) = stop;
    let mut conn: Option<DbConnection> = None;
    let mut failing = false;
    loop {
        {
            let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, _) = wake
                .wait_timeout_while(guard, every, |stopped| !*stopped)
                .unwrap_or_else(|e| e.into_inner());
            if *guard {
                return;
            }
        }
        let turn = match conn.as_mut() {
            Some(conn) => turn(conn, restart_at).map_err(ConnectError::from),
            None => open(manager).map(|opened| {
                conn = Some(opened);
            }),
        };
        match turn {
            Ok(()) if failing => {
                failing = false;
                log::info!(target: "glue::db", "SQLite checkpoints resumed");
            }
            Ok(()) => {}
            Err(error) => {
                if !failing {
                    log::warn!(target: "glue::db", "SQLite checkpoint failed, trying again every {} ms: {error}", every.as_millis());
                }
                failing = true;
                conn = None;
            }
        }
    }
}

/// The checkpointer's own connection: a restart waits at most [`RESTART_WAIT_MS`].
fn open(manager: &ConnectionManager) -> Result<DbConnection, ConnectError> {
    let mut conn = manager.establish()?;
    conn.batch_execute(&format!("PRAGMA busy_timeout = {RESTART_WAIT_MS}"))?;
    Ok(conn)
}

/// One turn: copy back what can be copied; restart a log that reached `restart_at` pages.
fn turn(conn: &mut DbConnection, restart_at: i64) -> diesel::QueryResult<()> {
    let passive = wal_checkpoint(conn, "PASSIVE")?;
    if passive.log >= restart_at {
        // Busy (a reader outlasted the wait): the next turn tries again.
        wal_checkpoint(conn, "RESTART")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Checkpointer;
    use crate::db::ConnectionManager;
    use diesel::connection::SimpleConnection;
    use diesel::RunQueryDsl;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        wal_autocheckpoint: i64,
    }

    fn autocheckpoint(manager: &ConnectionManager) -> i64 {
        diesel::sql_query("PRAGMA wal_autocheckpoint")
            .get_result::<Setting>(&mut manager.establish().unwrap())
            .unwrap()
            .wal_autocheckpoint
    }

    /// Writers and readers that never pause: the log keeps starting over, so its file stays
    /// near `restart_at` pages while many times that passes through it, and the pool's
    /// connections never checkpoint on their own.
    #[test]
    fn under_reads_and_writes_without_pause_the_log_stays_bounded() {
        const RESTART_AT: i64 = 256;
        const BOUND_PAGES: u64 = 1024;
        let dir = std::env::temp_dir().join(format!("glue-checkpointer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("glue.db");
        let manager =
            ConnectionManager::new(&format!("sqlite://{}", path.display()), 5000).unwrap();
        let pooled = manager.clone().without_autocheckpoint();
        assert_eq!(
            autocheckpoint(&manager),
            1000,
            "SQLite's own default elsewhere"
        );
        assert_eq!(
            autocheckpoint(&pooled),
            0,
            "the pool's connections never checkpoint"
        );
        manager
            .establish()
            .unwrap()
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB NOT NULL); CREATE INDEX t_k ON t (k)")
            .unwrap();
        let checkpointer = Checkpointer::start(&manager, Duration::from_millis(20), RESTART_AT)
            .unwrap()
            .expect("a thread for SQLite");

        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for writer in 0..2u64 {
            let (pooled, stop, commits) = (pooled.clone(), stop.clone(), commits.clone());
            threads.push(std::thread::spawn(move || {
                let mut conn = pooled.establish().unwrap();
                let mut n = writer;
                while !stop.load(Ordering::Relaxed) {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    conn.batch_execute(&format!(
                        "INSERT INTO t (k, v) VALUES ('{n:016x}', zeroblob(2048))"
                    ))
                    .unwrap();
                    commits.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(500));
                }
            }));
        }
        for reader in 0..3u64 {
            let (pooled, stop) = (pooled.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut conn = pooled.establish().unwrap();
                let mut n = reader;
                while !stop.load(Ordering::Relaxed) {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    conn.batch_execute(&format!(
                        "SELECT count(*) FROM (SELECT id FROM t WHERE k >= '{n:016x}' LIMIT 50)"
                    ))
                    .unwrap();
                }
            }));
        }
        let wal = dir.join("glue.db-wal");
        let mut largest = 0;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2)
            || commits.load(Ordering::Relaxed) < 3 * BOUND_PAGES
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the writers stalled"
            );
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(2));
        }
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().unwrap();
        }
        drop(checkpointer);

        // Every commit wrote at least one page (its 2 KiB) to the log: without restarts the
        // log would hold them all.
        let pages = largest / 4096;
        assert!(
            pages <= BOUND_PAGES,
            "the log grew to {pages} pages with {} commits",
            commits.load(Ordering::Relaxed)
        );
        // Nothing was lost to the restarts.
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let rows = diesel::sql_query("SELECT count(*) AS n FROM t")
            .get_result::<Count>(&mut manager.establish().unwrap())
            .unwrap()
            .n;
        assert_eq!(rows as u64, commits.load(Ordering::Relaxed));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
