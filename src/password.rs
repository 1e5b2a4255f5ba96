//! bcrypt, compatible with Spryker's PHP `password_hash`/`password_verify`.
//!
//! `$2y$`, `$2b$` and `$2a$` hashes all verify; new hashes are written as `$2y$` so a Spryker
//! back office can still read them. A password longer than 72 bytes never verifies (bcrypt would
//! silently compare only its first 72 bytes) but costs the same time as one that does.
//! Verifications are CPU-bound: [`PasswordVerifier`] runs them on a few low-priority threads of
//! its own, so a login storm queues instead of spawning hundreds of threads fighting for the
//! cores, and everything else preempts it. The queue is bounded ([`PasswordVerifier::slot`]),
//! and a login whose client has gone is dropped before its verification starts.
//!
//! **Equal time for every failure.** bcrypt's time doubles with each cost step, so a stored
//! hash of cost 10 on a cost-12 service would answer four times faster than an unknown user.
//! Every verification is therefore padded with dummy verifications up to the *target cost* —
//! the configured cost or the highest cost any stored hash has, whichever is higher (found at
//! start-up, raised when a higher one is met): cost c plus dummies of costs c, c+1, …, t−1 is
//! exactly the work of one cost-t verification. A successful login with a hash below the
//! configured cost gets a new hash (PHP's `password_needs_rehash` convention).

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
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
    #[error("too many logins are waiting for password verification")]
    Overloaded,
    #[error("the login was abandoned by its client before its verification started")]
    Abandoned,
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

    /// The password as Symfony's `NativePasswordHasher` (Spryker's customers) hands it to
    /// bcrypt: one longer than 72 bytes or holding a NUL byte (bcrypt would cut it) becomes
    /// base64(SHA-512(password)), of which bcrypt reads the first 72 bytes. Symfony refuses
    /// passwords over 4096 bytes outright; those stay as they are and so never verify.
    pub fn symfony_native(self) -> Self {
        use base64::Engine;
        use sha2::Digest;
        let long = self.0.len() > BCRYPT_MAX_BYTES;
        if self.0.len() > SYMFONY_MAX_BYTES || !(long || self.0.contains('\0')) {
            return self;
        }
        let digest = sha2::Sha512::digest(self.0.as_bytes());
        let mut encoded = base64::engine::general_purpose::STANDARD.encode(digest);
        encoded.truncate(BCRYPT_MAX_BYTES);
        Password(encoded)
    }
}

/// Symfony's `PasswordHasherInterface::MAX_PASSWORD_LENGTH`.
pub const SYMFONY_MAX_BYTES: usize = 4096;

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

/// The cost of a bcrypt hash (`$2y$12$…` → 12), if it is one.
pub fn cost_of(hash: &str) -> Option<u32> {
    let mut parts = hash.strip_prefix('$')?.splitn(3, '$');
    let _version = parts.next()?;
    let cost = parts.next()?;
    if cost.len() != 2 {
        return None;
    }
    cost.parse().ok().filter(|c| (4..=31).contains(c))
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

/// A place in the verification queue, taken before a login does any other work and held until
/// its verification ends (or is dropped unstarted).
pub struct Slot {
    queued: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tells, just before a queued verification starts, whether anyone still waits for it (e.g.
/// whether the client is still connected).
pub type StillWanted = Arc<dyn Fn() -> bool + Send + Sync>;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub matched: bool,
    /// A new hash at the configured cost, when the password matched a cheaper hash.
    pub rehashed: Option<String>,
}

/// Verifies passwords on a dedicated pool of `threads` threads running at a lower CPU priority
/// (`nice`), against the real hash or — for an unknown user — a dummy of the target cost, so the
/// answer takes as long either way. A login storm queues here (up to `queue_depth`): it can
/// neither spawn more bcrypt work than there are threads nor delay the async workers and the
/// shared blocking pool, whose short requests preempt bcrypt whenever they need a core.
pub struct PasswordVerifier {
    jobs: mpsc::Sender<Job>,
    cost: u32,
    target_cost: Arc<AtomicU32>,
    /// A valid bcrypt hash of a random password whose cost digits are swapped for a dummy.
    dummy_template: Arc<str>,
    queued: Arc<AtomicUsize>,
    queue_depth: usize,
    /// Raise the target when a verification meets a costlier hash.
    learn_costs: bool,
    /// Rehash a matched password whose hash is cheaper than `cost`.
    rehash: bool,
    /// How long jobs waited for a thread (seconds).
    waits: Option<prometheus::Histogram>,
}

impl PasswordVerifier {
    /// Starts the threads; `cost` is the configured cost of new hashes. With `learn_costs` a
    /// verification that meets a hash costlier than the target raises the target.
    pub fn new(
        cost: u32,
        threads: usize,
        nice: i32,
        queue_depth: usize,
        learn_costs: bool,
    ) -> Result<Self, PasswordError> {
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
            cost,
            target_cost: Arc::new(AtomicU32::new(cost)),
            dummy_template: hash(&dummy, 4)?.into(),
            queued: Arc::new(AtomicUsize::new(0)),
            queue_depth,
            learn_costs,
            rehash: true,
            waits: None,
        })
    }

    /// Whether a successful login replaces a hash cheaper than the configured cost (not on a
    /// shop's database, whose back office owns its users' hashes).
    pub fn rehashing(mut self, rehash: bool) -> Self {
        self.rehash = rehash;
        self
    }

    /// Observes every job's wait for a thread into `histogram`.
    pub fn observing(mut self, histogram: prometheus::Histogram) -> Self {
        self.waits = Some(histogram);
        self
    }

    /// Logins waiting for or in bcrypt right now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// The cost every verification takes as long as.
    pub fn target_cost(&self) -> u32 {
        self.target_cost.load(Ordering::SeqCst)
    }

    /// Raises the target cost to `cost` if that is higher (a stored hash of that cost exists).
    pub fn raise_target_cost(&self, cost: u32) {
        if (4..=31).contains(&cost) {
            self.target_cost.fetch_max(cost, Ordering::SeqCst);
        }
    }

    /// A place in the queue, or `Overloaded` when `queue_depth` logins already wait.
    pub fn slot(&self) -> Result<Slot, PasswordError> {
        let slot = Slot {
            queued: self.queued.clone(),
        };
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.queue_depth {
            return Err(PasswordError::Overloaded);
        }
        Ok(slot)
    }

    /// Verifies `password` against `hash` in the time of one verification at the target cost.
    /// `hash = None` means "no such user" and `password = None` "no usable password": the
    /// result is then false after the same work. A job nobody waits for any more (the future
    /// was dropped, or `still_wanted` says no) is skipped when its turn comes.
    pub async fn verify(
        &self,
        slot: Slot,
        still_wanted: StillWanted,
        password: Option<Password>,
        hash: Option<String>,
    ) -> Result<Verification, PasswordError> {
        let (done, result) = tokio::sync::oneshot::channel::<Option<Verification>>();
        let target_cost = self.target_cost.clone();
        let template = self.dummy_template.clone();
        let configured = self.cost;
        let learn_costs = self.learn_costs;
        let rehash = self.rehash;
        let waits = self.waits.clone();
        let enqueued = std::time::Instant::now();
        let job: Job = Box::new(move || {
            // Held until the verification is done; given back before the answer goes out.
            let slot = slot;
            if let Some(waits) = &waits {
                waits.observe(enqueued.elapsed().as_secs_f64());
            }
            if done.is_closed() || !still_wanted() {
                drop(slot);
                let _ = done.send(None);
                return;
            }
            let candidate = password.as_ref().map_or("", Password::expose);
            let target = target_cost.load(Ordering::SeqCst);
            let dummy = |cost: u32| verify(candidate, &format!("$2y${cost:02}{}", &template[6..]));
            let (matched, spent) = match &hash {
                Some(hash) => (verify(candidate, hash) && password.is_some(), cost_of(hash)),
                None => (false, None),
            };
            match spent {
                Some(cost) if cost >= target => {
                    if learn_costs {
                        target_cost.fetch_max(cost, Ordering::SeqCst);
                    }
                }
                Some(cost) => (cost..target).for_each(|c| {
                    dummy(c);
                }),
                None => {
                    dummy(target);
                }
            }
            let rehashed = match spent {
                Some(cost) if rehash && matched && cost < configured => {
                    self::hash(candidate, configured).ok()
                }
                _ => None,
            };
            drop(slot);
            let _ = done.send(Some(Verification { matched, rehashed }));
        });
        self.jobs
            .send(job)
            .map_err(|_| PasswordError::Threads("the bcrypt threads are gone".into()))?;
        result
            .await
            .map_err(|_| PasswordError::Threads("a bcrypt thread stopped".into()))?
            .ok_or(PasswordError::Abandoned)
    }
}

impl PasswordVerifier {
    /// Runs other deliberately slow credential work (e.g. the PBKDF2 derivation of a PHP refresh
    /// token) on the same bounded, low-priority threads, holding `slot` until it is done; skipped
    /// like a verification when nobody waits for it any more.
    pub async fn run<T: Send + 'static>(
        &self,
        slot: Slot,
        still_wanted: StillWanted,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (done, result) = tokio::sync::oneshot::channel::<Option<T>>();
        let waits = self.waits.clone();
        let enqueued = std::time::Instant::now();
        let job: Job = Box::new(move || {
            let slot = slot;
            if let Some(waits) = &waits {
                waits.observe(enqueued.elapsed().as_secs_f64());
            }
            if done.is_closed() || !still_wanted() {
                drop(slot);
                let _ = done.send(None);
                return;
            }
            let value = work();
            drop(slot);
            let _ = done.send(Some(value));
        });
        self.jobs
            .send(job)
            .map_err(|_| PasswordError::Threads("the bcrypt threads are gone".into()))?;
        result
            .await
            .map_err(|_| PasswordError::Threads("a bcrypt thread stopped".into()))?
            .ok_or(PasswordError::Abandoned)
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
