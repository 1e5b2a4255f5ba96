//! Threads of their own at a lower CPU priority: the bcrypt verifier's and a [`Lane`]'s (the
//! customer searches', whose SQL runs inside the process on SQLite). Linux threads have their own
//! nice value, and a thread may lower its priority but not raise it again, so work that must
//! yield to the rest runs on threads kept for it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};

/// A thread's CPU priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Nice value 0..=19 (0: as every other thread).
    Nice(i32),
    /// Linux's `SCHED_IDLE`: the thread gets a core when nothing else wants it (a sliver of
    /// time otherwise, so it never stops entirely).
    Idle,
}

/// Lowers the calling thread's CPU priority to `nice` (0 leaves it as it is).
pub fn lower_priority(nice: i32) -> std::io::Result<()> {
    set_priority(Priority::Nice(nice))
}

/// Sets the calling thread's priority; only ever lowers it (no privilege is needed for that).
pub fn set_priority(priority: Priority) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id; the parameter lives on the stack.
        let result = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
            match priority {
                Priority::Nice(0) => 0,
                Priority::Nice(nice) => {
                    libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
                }
                Priority::Idle => {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param)
                }
            }
        };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
    Ok(())
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads at a lower priority taking jobs in order. The number of threads bounds
/// what the jobs can hold at once (a pooled connection each), also when a caller stopped waiting
/// for a job that still runs: later jobs queue behind it instead of taking more.
pub struct Lane {
    jobs: mpsc::Sender<Job>,
}

/// The lane's threads are gone (the process is shutting down) or the job panicked.
#[derive(Debug, thiserror::Error)]
#[error("the job did not finish on its lane")]
pub struct LaneFailed;

impl Lane {
    /// Starts `threads` threads (at least one) named `name-N`, each at `priority`.
    pub fn new(name: &str, threads: usize, priority: Priority) -> std::io::Result<Lane> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    if set_priority(priority).is_err() {
                        log::warn!(target: "glue::threads", "could not lower the priority of a lane thread");
                    }
                    loop {
                        let job = match receiver.lock() {
                            Ok(guard) => match guard.recv() {
                                Ok(job) => job,
                                // The lane was dropped.
                                Err(_) => return,
                            },
                            Err(_) => return,
                        };
                        // A panicking job drops its answer (the caller sees `LaneFailed`); the
                        // thread stays for the next.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Lane { jobs })
    }

    /// Runs `job` on one of the lane's threads and answers what it returned.
    pub async fn run<T, F>(&self, job: F) -> Result<T, LaneFailed>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = answer.send(job());
            }))
            .map_err(|_| LaneFailed)?;
        answered.await.map_err(|_| LaneFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[actix_web::test]
    async fn a_lane_runs_jobs_at_its_priority_and_survives_a_panic() {
        // (nice value, scheduling policy) of the thread that runs the job.
        fn own_priority() -> (i32, i32) {
            // SAFETY: reads the calling thread's own priority and policy.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
                (
                    libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t),
                    libc::sched_getscheduler(tid),
                )
            }
        }
        let lane = Lane::new("glue-test-lane", 1, Priority::Nice(19)).unwrap();
        assert_eq!(
            lane.run(own_priority).await.unwrap(),
            (19, libc::SCHED_OTHER)
        );
        assert!(lane.run(|| panic!("a job fails")).await.is_err());
        assert_eq!(lane.run(|| 7).await.unwrap(), 7);

        let idle = Lane::new("glue-test-idle", 2, Priority::Idle).unwrap();
        assert_eq!(idle.run(own_priority).await.unwrap().1, libc::SCHED_IDLE);
    }
}
