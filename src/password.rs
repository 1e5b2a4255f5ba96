//! bcrypt, compatible with Spryker's PHP `password_hash`/`password_verify`.
//!
//! `$2y$`, `$2b$` and `$2a$` hashes all verify; new hashes are written as `$2y$` so a Spryker
//! back office can still read them. A password longer than 72 bytes never verifies (bcrypt would
//! silently compare only its first 72 bytes) but costs the same time as one that does.
//! Verifications are CPU-bound: [`PasswordVerifier`] caps how many run at once, so a login storm
//! queues instead of spawning hundreds of threads fighting for the cores.

use std::sync::Arc;

use tokio::sync::Semaphore;

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

/// Verifies passwords on the blocking pool, at most `permits` at a time, against the real
/// hash or — for an unknown user — a dummy hash of the configured cost, so the answer takes
/// as long either way.
#[derive(Clone)]
pub struct PasswordVerifier {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl PasswordVerifier {
    /// Hashes a random dummy password once (one bcrypt at `cost`).
    pub fn new(cost: u32, permits: usize) -> Result<Self, PasswordError> {
        let dummy = crate::oauth::random_hex(16);
        Ok(PasswordVerifier {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            dummy_hash: hash(&dummy, cost)?.into(),
        })
    }

    /// `hash = None` means "no such user": the dummy is verified and the result is false.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, actix_web::error::BlockingError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let dummy = self.dummy_hash.clone();
        actix_web::web::block(move || match hash {
            Some(hash) => verify(&password, &hash),
            None => {
                verify(&password, &dummy);
                false
            }
        })
        .await
    }
}
