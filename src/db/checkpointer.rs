//! SQLite's write-ahead log, kept short by one thread of the service instead of by whichever
//! request commits.
//!
//! SQLite copies its log back into the database file (a checkpoint) after any commit that
//! finds the log over 1,000 pages, and starts the log over from its beginning only when a
//! writer finds every page copied back and nobody still reading from the log. Under a steady
//! stream of refreshes somebody always is: measured with 8 clients refreshing on one core, the
//! log grew by about 27 MB/s for as long as the load lasted, and since it stayed over 1,000
//! pages every commit ran a checkpoint of its own (about one fsync for every three refreshes,
//! on the request's thread).
//!
//! The service's pooled connections leave checkpoints to this thread (their own start only at
//! [`POOL_AUTOCHECKPOINT_PAGES`], a safety net should the thread fail; [`Checkpointer::start`]
//! hands out their manager with the thread). The thread, on a connection of its own,
//! copies the log back every `every` without waiting for anyone (`PASSIVE`: the copying and the
//! log's `fsync` are its own), and once the log holds `restart_at` pages, nearly all of them
//! copied back, it starts it over (`RESTART`): while writers wait for it, it copies the rest,
//! syncs the database file (SQLite syncs it only when a checkpoint copied the whole log, so
//! this covers what the `PASSIVE` turns copied since; `restart_at` bounds it) and waits for
//! the readers of the log to finish, for at most [`RESTART_WAIT_MS`]; the next commit then
//! writes from the log's beginning. A restart kept from finishing by a reader is tried again
//! after a growing pause, so a long reader does not hold off writers on every turn.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;

use super::{Backend, ConnectError, ConnectionManager, DbConnection};

/// How long a restart waits for the log's readers (and holds off writers) before it gives up.
pub const RESTART_WAIT_MS: u64 = 100;

/// The pool's connections checkpoint on their own only past this many pages (256 MiB of 4 KiB
/// pages): never while the thread keeps the log short, but the log stays bounded if it fails.
pub const POOL_AUTOCHECKPOINT_PAGES: i64 = 65_536;

/// After a restart a reader kept from finishing, the next is tried a turn later, then after a
/// pause doubled on every further failure, up to this.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The pool's connections cut the log's file back to this size when it starts over (32 MiB):
/// one large transaction does not leave it large.
pub const JOURNAL_SIZE_LIMIT_BYTES: i64 = 32 << 20;

/// A failing thread says so again at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// A restart copies what is left of the log while writers wait for it: it is tried only when
/// that is at most this many pages (4 MiB). After a bulk load (the benchmark's seeding writes
/// 440 MB per transaction) the unbounded copy and its `fsync` held writers for over the busy
/// timeout; the `PASSIVE` turns copy such a log first, without holding anyone.
pub const RESTART_LEFT_PAGES: i64 = 1024;

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
    /// The log restarts at 16 MiB of 4 KiB pages: at most that much copied into the database
    /// file but not yet synced when a restart syncs it with writers waiting.
    pub const RESTART_AT_PAGES: i64 = 4_096;

    /// SQLite: starts the thread for `manager`'s database, and returns it with the manager the
    /// service's pool is built from, whose connections leave checkpoints to it (the two go
    /// together: without the thread those connections would let the log grow to
    /// [`POOL_AUTOCHECKPOINT_PAGES`]). Other backends need no thread (`None`) and keep
    /// `manager`.
    pub fn start(
        manager: &ConnectionManager,
        every: Duration,
        restart_at: i64,
    ) -> std::io::Result<(Option<Self>, ConnectionManager)> {
        if manager.backend() != Backend::Sqlite {
            return Ok((None, manager.clone()));
        }
        // Opened here, so that a later reopen never creates a database that went away.
        let conn = open(manager).map_err(|e| std::io::Error::other(e.to_string()))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = std::thread::Builder::new()
            .name("glue-checkpoint".into())
            .spawn({
                let manager = manager.clone();
                let stop = stop.clone();
                move || run(&manager, conn, every, restart_at, &stop)
            })?;
        Ok((
            Some(Checkpointer {
                stop,
                thread: Some(thread),
            }),
            manager.clone().without_autocheckpoint(),
        ))
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
    conn: DbConnection,
    every: Duration,
    restart_at: i64,
    stop: &(Mutex<bool>, Condvar),
) {
    let (stopped, wake) = stop;
    let mut conn = Some(conn);
    let mut restarts = Restarts::default();
    // Since when the thread fails, how often, and when it last said so.
    let mut failing: Option<(Instant, u64, Instant)> = None;
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
            Some(open) => turn(open, every, restart_at, &mut restarts).map_err(ConnectError::from),
            None => reopen(manager).and_then(|mut opened| {
                let done = turn(&mut opened, every, restart_at, &mut restarts);
                conn = Some(opened);
                done.map_err(ConnectError::from)
            }),
        };
        match (turn, &mut failing) {
            (Ok(()), Some((since, _, _))) => {
                log::info!(target: "glue::db", "SQLite checkpoints resumed after {} s", since.elapsed().as_secs());
                failing = None;
            }
            (Ok(()), None) => {}
            (Err(error), Some((_, count, said))) => {
                *count += 1;
                if said.elapsed() >= WARN_EVERY {
                    log::warn!(target: "glue::db", "SQLite checkpoints still failing ({count} turns): {error}");
                    *said = Instant::now();
                }
                conn = None;
            }
            (Err(error), None) => {
                log::warn!(target: "glue::db", "SQLite checkpoint failed, trying again every {} ms: {error}", every.as_millis());
                failing = Some((Instant::now(), 1, Instant::now()));
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

/// [`open`] again after a failure, unless the database file is gone (it is not created anew).
fn reopen(manager: &ConnectionManager) -> Result<DbConnection, ConnectError> {
    let path = super::sqlite_path(&manager.url);
    if !std::path::Path::new(path).exists() {
        return Err(ConnectError::Setup(format!(
            "the database file {path} is gone"
        )));
    }
    open(manager)
}

/// When the next restart may be tried, after restarts a reader kept from finishing.
#[derive(Default)]
struct Restarts {
    not_before: Option<Instant>,
    pause: Duration,
}

/// One turn: copy back what can be copied; restart a log that reached `restart_at` pages once
/// at most [`RESTART_LEFT_PAGES`] of it are still to copy.
fn turn(
    conn: &mut DbConnection,
    every: Duration,
    restart_at: i64,
    restarts: &mut Restarts,
) -> diesel::QueryResult<()> {
    let passive = wal_checkpoint(conn, "PASSIVE")?;
    if passive.log >= restart_at
        && passive.log - passive.checkpointed <= RESTART_LEFT_PAGES
        && restarts.not_before.is_none_or(|t| Instant::now() >= t)
    {
        if wal_checkpoint(conn, "RESTART")?.busy == 0 {
            *restarts = Restarts::default();
        } else {
            // A reader (or a long write) outlasted the wait: pause before holding writers again.
            restarts.pause = (restarts.pause * 2).clamp(every, RESTART_BACKOFF_MAX);
            restarts.not_before = Some(Instant::now() + restarts.pause);
        }
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
    /// near `restart_at` pages while many times that passes through it (with SQLite's own
    /// checkpoints instead of the thread, this test's load grew the log to 2,486 pages in
    /// 3,131 commits), and nothing is lost.
    #[test]
    fn under_reads_and_writes_without_pause_the_log_stays_bounded() {
        const RESTART_AT: i64 = 256;
        const BOUND_PAGES: u64 = 2048;
        let dir = std::env::temp_dir().join(format!(
            "glue-checkpointer-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("glue.db");
        let manager =
            ConnectionManager::new(&format!("sqlite://{}", path.display()), 5000).unwrap();
        manager
            .establish()
            .unwrap()
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB NOT NULL); CREATE INDEX t_k ON t (k)")
            .unwrap();
        let (checkpointer, pooled) =
            Checkpointer::start(&manager, Duration::from_millis(20), RESTART_AT).unwrap();
        let checkpointer = checkpointer.expect("a thread for SQLite");
        assert_eq!(
            autocheckpoint(&manager),
            1000,
            "SQLite's own default elsewhere"
        );
        assert_eq!(
            autocheckpoint(&pooled),
            super::POOL_AUTOCHECKPOINT_PAGES,
            "the pool's connections leave checkpoints to the thread"
        );

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

    /// A server database needs no thread, and its pool's connections are left as they are
    /// (nothing is connected to find that out).
    #[test]
    fn a_server_database_gets_no_thread_and_its_manager_back() {
        let manager = ConnectionManager::new("postgres://glue@127.0.0.1:1/glue", 5000).unwrap();
        let (checkpointer, pooled) = Checkpointer::start(
            &manager,
            Checkpointer::EVERY,
            Checkpointer::RESTART_AT_PAGES,
        )
        .unwrap();
        assert!(checkpointer.is_none());
        assert!(pooled.sqlite_autocheckpoint);
        assert_eq!(pooled.url, manager.url);
    }
}
