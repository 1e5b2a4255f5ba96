//! bcrypt, compatible with Spryker's PHP `password_hash`/`password_verify`.
//!
//! `$2y$`, `$2b$` and `$2a$` hashes all verify; new hashes are written as `$2y$` so a Spryker
//! back office can still read them. A password longer than 72 bytes never verifies (bcrypt would
//! silently compare only its first 72 bytes) but costs the same time as one that does.
//! Verifications are CPU-bound: [`PasswordVerifier`] runs them on a few low-priority threads of
//! its own, so a login storm queues instead of spawning hundreds of threads fighting for the
//! cores, and everything else preempts it.

use std::fmt;
use std::sync::{mpsc, Arc, Mutex};

use rand::distr::{Alphanumeric, SampleString};

/// bcrypt reads at most this many bytes of a password.
pub const BCRYPT_MAX_BYTES: usize = 72;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {BCRYPT_MAX_BYTES} bytes")]
    TooLong,
    #[error("hashing failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    #[error("password verification unavailable: {0}")]
    Threads(String),
}

/// A password as sent: a non-empty string. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// `None` for a missing or empty password.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        value
            .filter(|v| !v.is_empty())
            .map(|v| Password(v.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A new `$2y$` hash of `password` at `cost`.
pub fn hash(password: &str, cost: u32) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > BCRYPT_MAX_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(bcrypt::hash_with_result(password, cost)?.format_for_version(bcrypt::Version::TwoY))
}

/// True if `password` matches `hash`. Always spends one bcrypt verification.
pub fn verify(password: &str, hash: &str) -> bool {
    let matched = bcrypt::verify(password, hash).unwrap_or_else(|e| {
        log::warn!(target: "glue::password", "stored password hash is unusable: {e}");
        false
    });
    matched && password.len() <= BCRYPT_MAX_BYTES
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Verifies passwords on a dedicated pool of `threads` threads running at a lower CPU priority
/// (`nice`), against the real hash or — for an unknown user — a dummy hash of the configured
/// cost, so the answer takes as long either way. A login storm queues here: it can neither
/// spawn more bcrypt work than there are threads nor delay the async workers and the shared
/// blocking pool, whose short requests preempt bcrypt whenever they need a core.
pub struct PasswordVerifier {
    jobs: mpsc::Sender<Job>,
    dummy_hash: Arc<str>,
}

impl PasswordVerifier {
    /// Hashes a random dummy password once (one bcrypt at `cost`) and starts the threads.
    pub fn new(cost: u32, threads: usize, nice: i32) -> Result<Self, PasswordError> {
        let dummy = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("glue-bcrypt-{i}"))
                .spawn(move || {
                    lower_priority(nice);
                    loop {
                        let job = match receiver.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            // The verifier was dropped: the server is gone.
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| PasswordError::Threads(e.to_string()))?;
        }
        Ok(PasswordVerifier {
            jobs: sender,
            dummy_hash: hash(&dummy, cost)?.into(),
        })
    }

    /// `hash = None` means "no such user" and `password = None` "no usable password": the
    /// dummy (or the hash) is verified all the same and the result is false.
    pub async fn verify(
        &self,
        password: Option<Password>,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let dummy = self.dummy_hash.clone();
        let job: Job = Box::new(move || {
            let candidate = password.as_ref().map_or("", Password::expose);
            let matched = match hash {
                Some(hash) => verify(candidate, &hash) && password.is_some(),
                None => {
                    verify(candidate, &dummy);
                    false
                }
            };
            let _ = done.send(matched);
        });
        self.jobs
            .send(job)
            .map_err(|_| PasswordError::Threads("the bcrypt threads are gone".into()))?;
        result
            .await
            .map_err(|_| PasswordError::Threads("a bcrypt thread stopped".into()))
    }
}

/// Lowers the calling thread's CPU priority (Linux threads have their own nice value).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is shared.
        let result = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice)
        };
        if result != 0 {
            log::warn!(target: "glue::password", "could not lower the priority of a bcrypt thread");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}
