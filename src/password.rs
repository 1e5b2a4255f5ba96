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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

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
    #[error("the bcrypt kernel failed its self-test: {0}; set oauth.bcrypt_kernel = \"reference\" to use the bcrypt crate")]
    SelfTest(String),
    #[error("bcrypt's SIMD kernel: {0}")]
    Simd(String),
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

pub use crate::settings::BcryptKernel as Kernel;

impl Kernel {
    /// One verification with this kernel's scalar code.
    fn verify_one(self, password: &[u8], hash: &str) -> bool {
        match self {
            Kernel::Reference => bcrypt::verify(password, hash).unwrap_or(false),
            _ => bcrypt_rust::verify(password, hash).unwrap_or(false),
        }
    }

    /// How many verifications run together (1 = no batching).
    pub fn lanes(self) -> usize {
        match self {
            Kernel::Batch => bcrypt_rust::detected_backend().lanes(),
            _ => 1,
        }
    }
}

pub use crate::settings::BcryptSimd as Simd;

/// The variable bcrypt-rust reads, once per process, when a batch first needs its SIMD kernel.
pub const SIMD_VARIABLE: &str = "BCRYPT_FORCE_BACKEND";

/// The kernels this CPU runs: its SIMD kernels, the most lanes first, then the scalar one.
pub fn kernels_this_cpu_runs() -> Vec<bcrypt_rust::Backend> {
    let mut kernels = Simd::available();
    kernels.push(bcrypt_rust::Backend::Scalar);
    kernels
}

/// What chose this process's SIMD kernel, once [`pin_simd`] ran.
static SIMD_CHOSEN_BY: OnceLock<&'static str> = OnceLock::new();

/// Applies `oauth.bcrypt_simd` to this process. bcrypt-rust settles its SIMD kernel once, when a
/// batch first needs it: from [`SIMD_VARIABLE`] when that is set, otherwise by a short timed
/// contest whose winner can change from start to start on a busy host. A value the environment
/// already holds outranks the setting. Either is checked here, so that an unknown kernel or one
/// this CPU cannot run stops start-up with a clear error instead of bcrypt-rust's panic at the
/// first batch.
///
/// # Safety
///
/// Sets an environment variable: no other thread may exist yet (one that reads or writes the
/// environment meanwhile is undefined behaviour on most platforms).
pub unsafe fn pin_simd(choice: Simd) -> Result<(), PasswordError> {
    let runs = || {
        let names: Vec<&str> = kernels_this_cpu_runs().iter().map(|b| b.name()).collect();
        names.join(", ")
    };
    if let Some(value) = std::env::var_os(SIMD_VARIABLE) {
        let named = bcrypt_rust::Backend::ALL
            .iter()
            .find(|b| value.to_str() == Some(b.name()));
        if !named.is_some_and(|b| b.is_available()) {
            return Err(PasswordError::Simd(format!(
                "{SIMD_VARIABLE}={value:?} is not a kernel this CPU runs (it runs {})",
                runs()
            )));
        }
        let _ = SIMD_CHOSEN_BY.set(SIMD_VARIABLE);
        return Ok(());
    }
    match choice.kernel() {
        Some(kernel) if !kernel.is_available() => Err(PasswordError::Simd(format!(
            "oauth.bcrypt_simd = {:?}: this CPU cannot run that kernel (it runs {})",
            kernel.name(),
            runs()
        ))),
        Some(kernel) => {
            std::env::set_var(SIMD_VARIABLE, kernel.name());
            let _ = SIMD_CHOSEN_BY.set("oauth.bcrypt_simd");
            Ok(())
        }
        None => {
            let _ = SIMD_CHOSEN_BY.set("bcrypt-rust's start-up contest");
            Ok(())
        }
    }
}

/// Why this process runs the SIMD kernel it runs, for the start-up log.
fn simd_chosen_by() -> &'static str {
    match SIMD_CHOSEN_BY.get() {
        Some(by) => by,
        None if std::env::var_os(SIMD_VARIABLE).is_some() => SIMD_VARIABLE,
        None => "bcrypt-rust, left to itself",
    }
}

/// A warning when batches run another kernel than `choice` pins because [`pin_simd`] did not run
/// before bcrypt-rust settled (glue used as a library, or a test's in-process server). None
/// when [`SIMD_VARIABLE`] chose: it outranks the setting, as the start-up log says.
pub fn simd_mismatch(kernel: Kernel, choice: Simd) -> Option<String> {
    if simd_chosen_by() == SIMD_VARIABLE {
        return None;
    }
    let wanted = choice.kernel().filter(|_| kernel == Kernel::Batch)?;
    let running = bcrypt_rust::detected_backend();
    (running != wanted).then(|| {
        format!(
            "oauth.bcrypt_simd pins {wanted}, but batches run {running} ({}): only `glue serve` applies the setting, before its threads start",
            simd_chosen_by()
        )
    })
}

/// Verifications per second on the calling thread at `cost`, over at least `at_least`: with
/// this process's SIMD kernel, every lane full (`batch`), or with the scalar kernel. For
/// `glue bcrypt kernels`, which runs it in one process per kernel.
pub fn raw_rate(
    cost: u32,
    at_least: std::time::Duration,
    batch: bool,
) -> Result<f64, PasswordError> {
    const PASSWORD: &str = "glue-bcrypt-kernels";
    let hash = self::hash(PASSWORD, cost)?;
    let lanes = if batch {
        bcrypt_rust::detected_backend().lanes()
    } else {
        1
    };
    let passwords = vec![PASSWORD.as_bytes(); lanes];
    let hashes = vec![hash.as_str(); lanes];
    let started = std::time::Instant::now();
    let mut verified = 0usize;
    while verified == 0 || started.elapsed() < at_least {
        let matched = if batch {
            bcrypt_rust::verify_many(&passwords, &hashes)
                .into_iter()
                .all(|verdict| verdict.ok() == Some(true))
        } else {
            bcrypt_rust::verify(PASSWORD, &hash).unwrap_or(false)
        };
        if !matched {
            return Err(PasswordError::SelfTest(
                "a measured verification did not match".into(),
            ));
        }
        verified += lanes;
    }
    Ok(verified as f64 / started.elapsed().as_secs_f64())
}

/// Checks, before the service trusts it, that the selected kernel agrees with the `bcrypt`
/// crate on known vectors: hashes made by the reference verify (batched and alone), wrong
/// passwords do not, and both hash alike.
pub fn self_test(kernel: Kernel) -> Result<(), PasswordError> {
    if kernel == Kernel::Reference {
        return Ok(());
    }
    let salt = *b"glue-self-test!!";
    let passwords: [&[u8]; 6] = [
        b"a",
        b"change123",
        "pässwörd €".as_bytes(),
        b"nul\0inside",
        &[b'x'; 72],
        &[b'y'; 73],
    ];
    let fail = |what: &str| {
        Err(PasswordError::SelfTest(format!(
            "{what} ({kernel:?} kernel)"
        )))
    };
    let mut hashes = Vec::new();
    for password in passwords {
        let reference = bcrypt::hash_with_salt(password, 4, salt)
            .map_err(PasswordError::Hash)?
            .format_for_version(bcrypt::Version::TwoY);
        let ours = bcrypt_rust::hash_with_salt(password, 4, salt)
            .map(|h| h.format_for_version(bcrypt_rust::Version::TwoY))
            .map_err(|e| PasswordError::SelfTest(e.to_string()))?;
        if ours != reference {
            return fail("a hash differs from the reference");
        }
        if !kernel.verify_one(password, &reference) || kernel.verify_one(b"wrong", &reference) {
            return fail("a scalar verification disagrees with the reference");
        }
        hashes.push(reference);
    }
    if kernel != Kernel::Batch {
        return Ok(());
    }
    // A batch wider than any lane count, right and wrong passwords interleaved.
    let mut batch_passwords: Vec<&[u8]> = Vec::new();
    let mut batch_hashes: Vec<&str> = Vec::new();
    for round in 0..6 {
        for (i, hash) in hashes.iter().enumerate() {
            batch_passwords.push(if (round + i) % 3 == 0 {
                b"wrong"
            } else {
                passwords[i]
            });
            batch_hashes.push(hash);
        }
    }
    let results = bcrypt_rust::verify_many(&batch_passwords, &batch_hashes);
    for ((password, result), i) in batch_passwords.iter().zip(results).zip(0..) {
        let expected = *password != b"wrong";
        if result.ok() != Some(expected) {
            return fail(&format!("batch lane {i} disagrees with the reference"));
        }
    }
    Ok(())
}

/// One login waiting for its verification.
struct VerifyJob {
    slot: Slot,
    still_wanted: StillWanted,
    done: tokio::sync::oneshot::Sender<Option<Verification>>,
    password: Option<Password>,
    hash: Option<String>,
    enqueued: std::time::Instant,
}

enum Work {
    Verify(VerifyJob),
    /// Other slow credential work (see [`PasswordVerifier::run`]).
    Task(Job),
}

/// What the threads share.
struct Shared {
    kernel: Kernel,
    lanes: usize,
    cost: u32,
    target_cost: AtomicU32,
    /// A valid bcrypt hash of a random password whose cost digits are swapped for a dummy.
    dummy_template: String,
    /// Raise the target when a verification meets a costlier hash.
    learn_costs: bool,
    /// Rehash a matched password whose hash is cheaper than `cost`.
    rehash: AtomicBool,
    /// Batching is allowed only while every stored hash is known to be at the target cost:
    /// then every login — existing user or not — is one verification at that cost, and a
    /// batch takes as long whoever is in it. A cheaper hash would be padded with dummies of
    /// other costs, which lanes cannot share; seeing one turns batching off for good.
    uniform: AtomicBool,
    /// How long jobs waited for a thread (seconds).
    waits: OnceLock<prometheus::Histogram>,
    /// How many logins each verification round served.
    batch_sizes: OnceLock<prometheus::Histogram>,
    /// Places taken in the queue (the verifier's `queued`): logins on their way here or waiting.
    queued: Arc<AtomicUsize>,
    /// Jobs the threads have taken and are working on.
    in_flight: AtomicUsize,
}

/// How long a thread that took a login waits for more that are already on their way (a login
/// takes its place in the queue before its database lookup, then arrives here): a batch
/// verification takes a second or more at production costs, so a few milliseconds fill lanes
/// that would otherwise run empty. A lone login (nothing else on its way) never waits.
const GATHER: std::time::Duration = std::time::Duration::from_millis(15);

/// One verification a job needs: (candidate, hash, is it the real one).
type Item = (Vec<u8>, String, bool);

impl Shared {
    /// `first` and, when batching, the logins queued behind it — waiting up to [`GATHER`] for
    /// those that took a place but have not arrived yet — up to a lane-width.
    fn gather(&self, jobs: &mpsc::Receiver<Work>, first: Work) -> Vec<Work> {
        let mut taken = vec![first];
        let batching = self.kernel == Kernel::Batch
            && self.lanes > 1
            && self.uniform.load(Ordering::SeqCst)
            && matches!(taken[0], Work::Verify(_));
        if !batching {
            return taken;
        }
        // A lane batch costs a full pass of every lane however few are filled: below about
        // half the lanes, verifying one at a time (and leaving the rest to the other threads)
        // is as fast.
        let waiting = self
            .queued
            .load(Ordering::SeqCst)
            .saturating_sub(self.in_flight.load(Ordering::SeqCst));
        if waiting < self.lanes.div_ceil(2).max(2) {
            return taken;
        }
        let deadline = std::time::Instant::now() + GATHER;
        while taken.len() < self.lanes {
            match jobs.try_recv() {
                Ok(work) => {
                    taken.push(work);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let on_their_way = self
                .queued
                .load(Ordering::SeqCst)
                .saturating_sub(self.in_flight.load(Ordering::SeqCst) + taken.len());
            let now = std::time::Instant::now();
            if on_their_way == 0 || now >= deadline {
                break;
            }
            match jobs.recv_timeout(deadline - now) {
                Ok(work) => taken.push(work),
                Err(_) => break,
            }
        }
        taken
    }

    /// [`Self::gather`], counted as in flight before the queue is released to other threads.
    fn take(&self, jobs: &mpsc::Receiver<Work>, first: Work) -> Vec<Work> {
        let taken = self.gather(jobs, first);
        self.in_flight.fetch_add(taken.len(), Ordering::SeqCst);
        taken
    }

    /// A hash off the target cost was met: from now on every login is verified alone.
    fn stop_batching(&self) {
        if self.uniform.swap(false, Ordering::SeqCst) && self.kernel == Kernel::Batch {
            log::warn!(target: "glue::password", "a stored hash is off the target cost: logins are verified one at a time from now on (a batch's duration would depend on whose hash it holds)");
        }
    }

    fn dummy(&self, cost: u32) -> String {
        format!("$2y${cost:02}{}", &self.dummy_template[6..])
    }

    /// The verifications that make up `job` at the target cost: the real one (if the user has
    /// a usable hash) and dummies up to the target, or one dummy at the target.
    fn plan(&self, job: &VerifyJob) -> (Vec<Item>, Option<u32>) {
        let candidate = job
            .password
            .as_ref()
            .map_or(&[][..], |p| p.expose().as_bytes())
            .to_vec();
        let target = self.target_cost.load(Ordering::SeqCst);
        let spent = job.hash.as_deref().and_then(cost_of);
        let mut items = Vec::new();
        // A hash bcrypt cannot use costs a dummy verification, like a missing one: never less
        // work (which would tell which accounts have one), never a lane left empty.
        let usable = job
            .hash
            .as_deref()
            .is_some_and(|h| h.parse::<bcrypt_rust::HashParts>().is_ok());
        let spent = spent.filter(|_| usable);
        match (&job.hash, spent) {
            (Some(hash), Some(cost)) => {
                items.push((candidate.clone(), hash.clone(), true));
                if cost < target {
                    self.stop_batching();
                    for c in cost..target {
                        items.push((candidate.clone(), self.dummy(c), false));
                    }
                } else if cost > target && self.learn_costs {
                    self.target_cost.fetch_max(cost, Ordering::SeqCst);
                    self.stop_batching();
                }
            }
            (Some(_), None) => {
                log::warn!(target: "glue::password", "stored password hash is unusable");
                items.push((candidate, self.dummy(target), false));
            }
            (None, _) => items.push((candidate, self.dummy(target), false)),
        }
        (items, spent)
    }

    /// Verifies the jobs taken together: in lanes when batching is allowed and several are
    /// single verifications at the target cost, one by one otherwise.
    fn verify_jobs(&self, jobs: Vec<VerifyJob>) {
        let mut live = Vec::new();
        for job in jobs {
            if let Some(waits) = self.waits.get() {
                waits.observe(job.enqueued.elapsed().as_secs_f64());
            }
            if job.done.is_closed() || !(job.still_wanted)() {
                self.finish(job, None);
                continue;
            }
            let (items, spent) = self.plan(&job);
            live.push((job, items, spent));
        }
        let target = self.target_cost.load(Ordering::SeqCst);
        let batchable =
            |items: &Vec<Item>| items.len() == 1 && cost_of(&items[0].1) == Some(target);
        let batch: Vec<usize> =
            if self.kernel == Kernel::Batch && self.uniform.load(Ordering::SeqCst) {
                (0..live.len()).filter(|&i| batchable(&live[i].1)).collect()
            } else {
                Vec::new()
            };
        let mut results: Vec<Option<bool>> = vec![None; live.len()];
        if let Some(sizes) = self.batch_sizes.get() {
            let batched = if batch.len() > 1 { batch.len() } else { 0 };
            if batched > 0 {
                sizes.observe(batched as f64);
            }
            (batched..live.len()).for_each(|_| sizes.observe(1.0));
        }
        if batch.len() > 1 {
            let passwords: Vec<&[u8]> = batch.iter().map(|&i| &live[i].1[0].0[..]).collect();
            let hashes: Vec<&str> = batch.iter().map(|&i| live[i].1[0].1.as_str()).collect();
            let verdicts = bcrypt_rust::verify_many(&passwords, &hashes);
            for (&i, verdict) in batch.iter().zip(verdicts) {
                results[i] = Some(live[i].1[0].2 && verdict.unwrap_or(false));
            }
        }
        // Batched jobs are answered first; the others are verified one after the other, each
        // answered as soon as it is done, and whoever left meanwhile is skipped when its turn
        // comes, as a lone login would be.
        let mut order: Vec<usize> = batch.iter().copied().filter(|_| batch.len() > 1).collect();
        order.extend((0..live.len()).filter(|i| results[*i].is_none()));
        let mut live: Vec<Option<_>> = live.into_iter().map(Some).collect();
        for i in order {
            let Some((job, items, spent)) = live[i].take() else {
                continue;
            };
            let matched = match results[i] {
                Some(matched) => matched,
                None if job.done.is_closed() || !(job.still_wanted)() => {
                    self.finish(job, None);
                    continue;
                }
                None => items
                    .iter()
                    .fold(false, |matched, (candidate, hash, real)| {
                        let verdict = self.kernel.verify_one(candidate, hash);
                        matched | (*real && verdict)
                    }),
            };
            let matched = matched
                && job
                    .password
                    .as_ref()
                    .is_some_and(|p| p.expose().len() <= BCRYPT_MAX_BYTES);
            let rehashed = match spent {
                Some(cost) if self.rehash.load(Ordering::SeqCst) && matched && cost < self.cost => {
                    job.password
                        .as_ref()
                        .and_then(|p| self::hash(p.expose(), self.cost).ok())
                }
                _ => None,
            };
            self.finish(job, Some(Verification { matched, rehashed }));
        }
    }

    /// Gives the job's place back and answers it (`None`: nobody waits any more).
    fn finish(&self, job: VerifyJob, verification: Option<Verification>) {
        drop(job.slot);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let _ = job.done.send(verification);
    }
}

/// Verifies passwords on a dedicated pool of `threads` threads running at a lower CPU priority
/// (`nice`), against the real hash or — for an unknown user — a dummy of the target cost, so the
/// answer takes as long either way. A login storm queues here (up to `queue_depth`): it can
/// neither spawn more bcrypt work than there are threads nor delay the async workers and the
/// shared blocking pool, whose short requests preempt bcrypt whenever they need a core.
///
/// **Batching** (`Kernel::Batch`): a thread that takes a login also takes up to a lane-width of
/// logins waiting behind it and verifies them in SIMD lanes (bcrypt-rust's `verify_many`), which
/// does more verifications per core-second than any scalar kernel; a lone login runs the scalar
/// kernel, so an idle login is as fast as ever. Lanes run in lockstep, so every login of a batch
/// takes as long as the batch, whichever lanes hold a right password or a real user.
pub struct PasswordVerifier {
    jobs: mpsc::Sender<Work>,
    shared: Arc<Shared>,
    queued: Arc<AtomicUsize>,
    queue_depth: usize,
}

impl PasswordVerifier {
    /// Starts the threads; `cost` is the configured cost of new hashes. With `learn_costs` a
    /// verification that meets a hash costlier than the target raises the target. The kernel
    /// must pass [`self_test`] first.
    pub fn new(
        cost: u32,
        threads: usize,
        nice: i32,
        queue_depth: usize,
        learn_costs: bool,
        kernel: Kernel,
    ) -> Result<Self, PasswordError> {
        self_test(kernel)?;
        let dummy = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let queued = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            kernel,
            lanes: kernel.lanes().max(1),
            cost,
            target_cost: AtomicU32::new(cost),
            dummy_template: hash(&dummy, 4)?,
            learn_costs,
            rehash: AtomicBool::new(true),
            uniform: AtomicBool::new(true),
            waits: OnceLock::new(),
            batch_sizes: OnceLock::new(),
            queued: queued.clone(),
            in_flight: AtomicUsize::new(0),
        });
        let (sender, receiver) = mpsc::channel::<Work>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("glue-bcrypt-{i}"))
                .spawn(move || {
                    if crate::threads::lower_priority(nice).is_err() {
                        log::warn!(target: "glue::password", "could not lower the priority of a bcrypt thread");
                    }
                    loop {
                        let taken = match receiver.lock() {
                            Ok(guard) => match guard.recv() {
                                Ok(first) => shared.take(&guard, first),
                                // The verifier was dropped: the server is gone.
                                Err(_) => return,
                            },
                            Err(_) => return,
                        };

                        let mut verifications = Vec::new();
                        let mut tasks = Vec::new();
                        for work in taken {
                            match work {
                                Work::Verify(job) => verifications.push(job),
                                Work::Task(task) => tasks.push(task),
                            }
                        }
                        // Tasks are short (a PHP token's PBKDF2): they go first, not behind a batch.
                        for task in tasks {
                            task();
                            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                        }
                        if !verifications.is_empty() {
                            shared.verify_jobs(verifications);
                        }
                    }
                })
                .map_err(|e| PasswordError::Threads(e.to_string()))?;
        }
        Ok(PasswordVerifier {
            jobs: sender,
            shared,
            queued,
            queue_depth,
        })
    }

    /// Observes every job's wait for a thread into `waits`, and the logins each verification
    /// round served into `batch_sizes`.
    pub fn observing(
        self,
        waits: prometheus::Histogram,
        batch_sizes: prometheus::Histogram,
    ) -> Self {
        let _ = self.shared.waits.set(waits);
        let _ = self.shared.batch_sizes.set(batch_sizes);
        self
    }

    /// Whether a successful login replaces a hash cheaper than the configured cost (not on a
    /// shop's database, whose back office owns its users' hashes).
    pub fn rehashing(self, rehash: bool) -> Self {
        self.shared.rehash.store(rehash, Ordering::SeqCst);
        self
    }

    /// Logins waiting for or in bcrypt right now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// The cost every verification takes as long as.
    pub fn target_cost(&self) -> u32 {
        self.shared.target_cost.load(Ordering::SeqCst)
    }

    /// Raises the target cost to `cost` if that is higher (a stored hash of that cost exists).
    pub fn raise_target_cost(&self, cost: u32) {
        if (4..=31).contains(&cost) {
            self.shared.target_cost.fetch_max(cost, Ordering::SeqCst);
        }
    }

    /// Tells the verifier the costs of the stored hashes (at start-up, after the target is
    /// set): batching stays on only if none is below the target.
    pub fn stored_costs(&self, costs: &[u32]) {
        let target = self.target_cost();
        if costs.iter().any(|&c| c < target) {
            self.shared.uniform.store(false, Ordering::SeqCst);
        }
    }

    /// How verifications run now, for the start-up log.
    pub fn describe(&self) -> String {
        match self.shared.kernel {
            Kernel::Batch if self.shared.uniform.load(Ordering::SeqCst) => format!(
                "bcrypt-rust, up to {} logins per batch ({} lanes, chosen by {})",
                self.shared.lanes,
                bcrypt_rust::detected_backend(),
                simd_chosen_by()
            ),
            Kernel::Batch => "bcrypt-rust scalar: batching is off because stored hashes are cheaper than the target cost (a batch's duration would depend on whose hash it holds)".to_string(),
            Kernel::Scalar => "bcrypt-rust scalar (oauth.bcrypt_kernel = \"scalar\")".to_string(),
            Kernel::Reference => "the bcrypt crate (oauth.bcrypt_kernel = \"reference\")".to_string(),
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
        let job = VerifyJob {
            slot,
            still_wanted,
            done,
            password,
            hash,
            enqueued: std::time::Instant::now(),
        };
        self.jobs
            .send(Work::Verify(job))
            .map_err(|_| PasswordError::Threads("the bcrypt threads are gone".into()))?;
        result
            .await
            .map_err(|_| PasswordError::Threads("a bcrypt thread stopped".into()))?
            .ok_or(PasswordError::Abandoned)
    }

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
        let shared = self.shared.clone();
        let enqueued = std::time::Instant::now();
        let job: Job = Box::new(move || {
            let slot = slot;
            if let Some(waits) = shared.waits.get() {
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
            .send(Work::Task(job))
            .map_err(|_| PasswordError::Threads("the bcrypt threads are gone".into()))?;
        result
            .await
            .map_err(|_| PasswordError::Threads("a bcrypt thread stopped".into()))?
            .ok_or(PasswordError::Abandoned)
    }
}

#[cfg(test)]
mod differential {
    //! bcrypt-rust (not independently audited) against the `bcrypt` crate: random passwords of
    //! 0–72 bytes (NUL included), random salts, costs 4–8, hashing and verification, right and
    //! wrong passwords, batched and alone, every `$2?$` prefix; and hashes PHP made.
    use proptest::prelude::*;

    use super::*;

    fn reference(password: &[u8], cost: u32, salt: [u8; 16]) -> bcrypt::HashParts {
        bcrypt::hash_with_salt(password, cost, salt).unwrap()
    }

    fn prefix(version: u8) -> (bcrypt::Version, bcrypt_rust::Version) {
        match version % 4 {
            0 => (bcrypt::Version::TwoA, bcrypt_rust::Version::TwoA),
            1 => (bcrypt::Version::TwoB, bcrypt_rust::Version::TwoB),
            2 => (bcrypt::Version::TwoX, bcrypt_rust::Version::TwoX),
            _ => (bcrypt::Version::TwoY, bcrypt_rust::Version::TwoY),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Cost 4: the bulk of the cases.
        #[test]
        fn hashing_and_verification_agree_at_cost_4(
            password in prop::collection::vec(any::<u8>(), 0..=72),
            other in prop::collection::vec(any::<u8>(), 0..=72),
            salt in any::<[u8; 16]>(),
            version in any::<u8>(),
        ) {
            check(&password, &other, 4, salt, version)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60))]
        #[test]
        fn hashing_and_verification_agree_at_costs_5_to_8(
            password in prop::collection::vec(any::<u8>(), 0..=72),
            other in prop::collection::vec(any::<u8>(), 0..=72),
            salt in any::<[u8; 16]>(),
            version in any::<u8>(),
            cost in 5u32..=8,
        ) {
            check(&password, &other, cost, salt, version)?;
        }
    }

    fn check(
        password: &[u8],
        other: &[u8],
        cost: u32,
        salt: [u8; 16],
        version: u8,
    ) -> Result<(), TestCaseError> {
        let (theirs, ours) = prefix(version);
        let expected = reference(password, cost, salt).format_for_version(theirs);
        let made = bcrypt_rust::hash_with_salt(password, cost, salt)
            .unwrap()
            .format_for_version(ours);
        prop_assert_eq!(&made, &expected);
        for candidate in [password, other] {
            let truth = bcrypt::verify(candidate, &expected).unwrap();
            prop_assert_eq!(bcrypt_rust::verify(candidate, &expected).unwrap(), truth);
            prop_assert_eq!(Kernel::Scalar.verify_one(candidate, &expected), truth);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A batch of up to 20 lanes (wider than AVX2's 8 and AVX-512's 16) answers as the
        /// reference does lane by lane.
        #[test]
        fn a_batch_agrees_lane_by_lane(
            lanes in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..=72), any::<[u8; 16]>(), any::<bool>(), any::<u8>()),
                1..=20,
            ),
        ) {
            let hashes: Vec<String> = lanes
                .iter()
                .map(|(password, salt, _, version)| {
                    reference(password, 4, *salt).format_for_version(prefix(*version).0)
                })
                .collect();
            let candidates: Vec<Vec<u8>> = lanes
                .iter()
                .map(|(password, _, right, _)| {
                    if *right { password.clone() } else { [password.as_slice(), b"!"].concat() }
                })
                .collect();
            let refs: Vec<&[u8]> = candidates.iter().map(Vec::as_slice).collect();
            let hash_refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
            let verdicts = bcrypt_rust::verify_many(&refs, &hash_refs);
            for ((candidate, hash), verdict) in candidates.iter().zip(&hashes).zip(verdicts) {
                prop_assert_eq!(verdict.unwrap(), bcrypt::verify(candidate, hash).unwrap());
            }
        }
    }

    /// Hashes made by libxcrypt's bcrypt (Openwall's crypt_blowfish, which PHP's
    /// `password_hash` also runs), at PHP's default cost 10 — the shop fixture's agent and
    /// customer — and the demo agent's cost-12 hash.
    #[test]
    fn php_made_hashes_verify() {
        let hashes = [
            (
                "Agent-Pass-2026",
                "$2y$10$9iaTsP72OgDpQdDub/H0.u1BfidXF5N4AURpKXG37JOtH.NTkPgGm",
            ),
            (
                "Customer-Pass-2026",
                "$2y$10$ARrIlbFrmaJJ64dEXVYRp.zI5WXaDCjJpfP8Xll8AO92H6BIIB95a",
            ),
            (
                "change123",
                "$2y$12$odiEutHi/SlifYBtaA2T1u4lqZA0Wt6naudRHHuXowyhrMv0dE5Py",
            ),
        ];
        for (password, hash) in hashes {
            assert!(bcrypt_rust::verify(password, hash).unwrap());
            assert!(!bcrypt_rust::verify("wrong", hash).unwrap());
        }
        let verdicts = bcrypt_rust::verify_many(
            &[b"Agent-Pass-2026", b"wrong", b"Customer-Pass-2026"],
            &[hashes[0].1, hashes[0].1, hashes[1].1],
        );
        assert_eq!(
            verdicts.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [true, false, true]
        );
    }

    #[test]
    fn every_kernel_passes_the_self_test() {
        for kernel in [Kernel::Batch, Kernel::Scalar, Kernel::Reference] {
            self_test(kernel).unwrap();
        }
    }
}
