//! Tokens of the shop's PHP Glue during a migration (`oauth.key_source = "spryker-env"`): a
//! refresh token PHP issued is exchanged once for glue's own pair, or revoked by its owner.
//!
//! Opening one costs a PBKDF2 derivation of 100,000 iterations whether it is genuine or not, so
//! it is treated like a password: a place in the bounded credential queue first, a reservation
//! with the security blocker (per address) before the work, the work on the low-priority
//! credential threads, and every token that does not decrypt counted as a failure — garbage
//! `def50200…` strings cannot take more CPU than failed logins can.

use std::net::IpAddr;

use crate::db;
use crate::login::{LoginDeps, LoginError};
use crate::oauth::php_token::{self, PhpRefreshPayload};
use crate::oauth::RefreshOutcome;
use crate::password::StillWanted;
use crate::security_blocker::{Admission, Blocked, EntityType};

/// What opening a presented PHP token came to.
#[derive(Debug)]
pub enum Opened {
    /// It decrypted with the shop's key into league's payload.
    Payload(PhpRefreshPayload),
    /// It did not (wrong key, altered, not league's): counted as a failure.
    Invalid,
    /// Too many failures from this address: refused before any work.
    Blocked(Blocked),
}

/// Decrypts `token` with the shop's `encryption_key` under the blocker and the bounded queue.
pub async fn open(
    deps: &LoginDeps,
    encryption_key: crate::secret::Secret,
    token: String,
    ip: Option<IpAddr>,
    still_wanted: StillWanted,
) -> Result<Opened, LoginError> {
    let slot = deps.passwords.slot()?;
    // Counted per address (and per token salt, which an attacker varies at will): the key
    // identifies no account, so no account can be locked out by someone else's garbage.
    let counted = format!("php-refresh-token:{}", token.get(8..72).unwrap_or(""));
    let blocker = deps.blocker.clone();
    let admission = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        Ok(blocker.reserve(conn, EntityType::Customer, ip, &counted)?)
    })
    .await?;
    let reservation = match admission {
        Admission::Blocked(blocked) => return Ok(Opened::Blocked(blocked)),
        Admission::Admitted(reservation) => reservation,
    };
    let opened = deps
        .passwords
        .run(slot, still_wanted, move || {
            php_token::open(encryption_key.expose().as_bytes(), &token)
        })
        .await?;
    let blocker = deps.blocker.clone();
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        Ok(match opened {
            Ok(payload) => {
                blocker.release(conn, &reservation)?;
                Opened::Payload(payload)
            }
            Err(_) => {
                blocker.fail(conn, &reservation)?;
                Opened::Invalid
            }
        })
    })
    .await
}

/// `POST /refresh-tokens` with a PHP refresh token: glue's own pair, or why not.
pub enum PhpRefresh {
    Outcome(RefreshOutcome),
    Blocked(Blocked),
}

/// Exchanges a PHP refresh token (see [`crate::oauth::OAuthServer::refresh_php`]).
pub async fn exchange(
    deps: &LoginDeps,
    encryption_key: crate::secret::Secret,
    token: String,
    ip: Option<IpAddr>,
    still_wanted: StillWanted,
) -> Result<PhpRefresh, LoginError> {
    let payload = match open(deps, encryption_key, token, ip, still_wanted).await? {
        Opened::Payload(payload) => payload,
        Opened::Invalid => {
            return Ok(PhpRefresh::Outcome(RefreshOutcome::Rejected(
                crate::oauth::RefreshRejection::Unknown,
            )))
        }
        Opened::Blocked(blocked) => return Ok(PhpRefresh::Blocked(blocked)),
    };
    let oauth = deps.oauth.clone();
    let outcome = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        Ok(oauth.refresh_php(conn, &payload)?)
    })
    .await?;
    Ok(PhpRefresh::Outcome(outcome))
}
