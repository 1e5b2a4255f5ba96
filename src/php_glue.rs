//! Tokens of the shop's PHP Glue during a migration (`oauth.key_source = "spryker-env"`): a
//! refresh token PHP issued is exchanged once for glue's own pair, or revoked by its owner.
//!
//! Opening one costs a PBKDF2 derivation of 100,000 iterations whether it is genuine or not, so
//! it is treated like a password: a place in the bounded credential queue first, a reservation
//! with the security blocker (per address) before the work, the work on the low-priority
//! credential threads, and every token that does not decrypt — or decrypts but achieves nothing
//! (replayed, expired, someone else's) — counted as a failure: neither garbage `def50200…`
//! strings nor one genuine token sent again and again can take more CPU than failed logins can.

use std::net::IpAddr;

use crate::db;
use crate::login::{LoginDeps, LoginError};
use crate::oauth::php_token::{self, PhpRefreshPayload};
use crate::oauth::{refresh_token, RefreshOutcome};
use crate::password::StillWanted;
use crate::security_blocker::{Admission, Blocked, EntityType, Reservation, SecurityBlocker};

/// What opening a presented PHP token came to.
enum Opened {
    /// It decrypted with the shop's key into league's payload; the reservation is settled by
    /// what the token then achieves.
    Payload(PhpRefreshPayload, Reservation),
    /// It did not (wrong key, altered, not league's): counted as a failure.
    Invalid,
    /// Too many failures from this address: refused before any work.
    Blocked(Blocked),
}

/// Decrypts `token` with the shop's `encryption_key` under the blocker and the bounded queue.
async fn open(
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
    match opened {
        Ok(payload) => Ok(Opened::Payload(payload, reservation)),
        Err(_) => {
            let blocker = deps.blocker.clone();
            db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
                Ok(blocker.fail(conn, &reservation)?)
            })
            .await?;
            Ok(Opened::Invalid)
        }
    }
}

/// Gives the places back when the token achieved something, counts a failure otherwise: a
/// genuine token replayed after its exchange (or expired, or someone else's) costs a
/// derivation every time, so it counts like garbage does.
fn settle(
    blocker: &SecurityBlocker,
    conn: &mut crate::db::DbConnection,
    reservation: &Reservation,
    achieved: bool,
) -> diesel::QueryResult<()> {
    if achieved {
        blocker.release(conn, reservation)
    } else {
        blocker.fail(conn, reservation)
    }
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
    let (payload, reservation) = match open(deps, encryption_key, token, ip, still_wanted).await? {
        Opened::Payload(payload, reservation) => (payload, reservation),
        Opened::Invalid => {
            return Ok(PhpRefresh::Outcome(RefreshOutcome::Rejected(
                crate::oauth::RefreshRejection::Unknown,
            )))
        }
        Opened::Blocked(blocked) => return Ok(PhpRefresh::Blocked(blocked)),
    };
    let oauth = deps.oauth.clone();
    let blocker = deps.blocker.clone();
    let outcome = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        let outcome = oauth.refresh_php(conn, &payload)?;
        let rotated = matches!(outcome, RefreshOutcome::Rotated(_));
        settle(&blocker, conn, &reservation, rotated)?;
        Ok(outcome)
    })
    .await?;
    Ok(PhpRefresh::Outcome(outcome))
}

/// `DELETE /refresh-tokens/{PHP token}` by the customer with `customer_reference`: revokes the
/// live row the token names if it is that customer's (PHP's own rule); `Some` when the address
/// is blocked. Nothing tells the caller whether a row was revoked.
pub async fn revoke(
    deps: &LoginDeps,
    encryption_key: crate::secret::Secret,
    token: String,
    ip: Option<IpAddr>,
    still_wanted: StillWanted,
    customer_reference: String,
) -> Result<Option<Blocked>, LoginError> {
    let (payload, reservation) = match open(deps, encryption_key, token, ip, still_wanted).await? {
        Opened::Payload(payload, reservation) => (payload, reservation),
        Opened::Invalid => return Ok(None),
        Opened::Blocked(blocked) => return Ok(Some(blocked)),
    };
    let client_id = deps.oauth.settings.client_id.clone();
    let blocker = deps.blocker.clone();
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        let revoked = if payload.client_id == client_id {
            refresh_token::revoke_foreign_of_customer(
                conn,
                &customer_reference,
                Some(&payload.refresh_token_id),
            )?
        } else {
            0
        };
        settle(&blocker, conn, &reservation, revoked > 0)?;
        Ok(None)
    })
    .await
}
