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

use super::{still_entitled, RefreshOutcome, RefreshRejection, Revocation};
use crate::db::{self, DbConnection};
use crate::login::LoginError;
use crate::multi_factor_auth::AgentMfa;
use crate::oauth::identity::Identity;
use crate::oauth::php_token::{self, PhpRefreshPayload};
use crate::oauth::refresh_token::{self, Refusal};
use crate::oauth::{Grant, OAuthError, OAuthServer};
use crate::password::StillWanted;
use crate::secret::Secret;
use crate::security_blocker::{
    Account, Admission, Blocked, BlockerError, EntityType, Reservation, SecurityBlocker,
};
use crate::services::Services;

/// The shop's refresh-token encryption key, when PHP Glue's tokens are accepted
/// (`oauth.key_source = "spryker-env"`).
pub fn encryption_key(oauth: &OAuthServer) -> Option<Secret> {
    oauth
        .settings
        .spryker_env
        .as_ref()
        .map(|env| env.encryption_key.clone())
}

/// What opening a presented PHP token came to.
enum Opened {
    /// It decrypted with the shop's key into league's payload; the reservation is settled by
    /// what the token then achieves.
    Payload(PhpRefreshPayload, Box<Reservation>),
    /// It did not (wrong key, altered, not league's): counted as a failure.
    Invalid,
    /// Too many failures from this address: refused before any work.
    Blocked(Blocked),
}

/// Decrypts `token` with the shop's `encryption_key` under the blocker and the bounded queue.
async fn open(
    deps: &Services,
    encryption_key: Secret,
    token: String,
    ip: Option<IpAddr>,
    still_wanted: StillWanted,
) -> Result<Opened, LoginError> {
    // Counted per address (and per token salt, which an attacker varies at will), in a key
    // space of their own: the key identifies no account, and failures here block neither an
    // account nor the customers' logins from the same address.
    let counted = token.get(8..72).unwrap_or("").to_string();
    let entity = EntityType::PhpRefreshToken;
    let blocker = deps.blocker.clone();
    let key = counted.clone();
    let refused = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        Ok(blocker.check(conn, entity, ip, Account::exact(&key))?)
    })
    .await?;
    if let Some(blocked) = refused {
        return Ok(Opened::Blocked(blocked));
    }
    let slot = deps.passwords.slot()?;
    let blocker = deps.blocker.clone();
    let admission = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        Ok(blocker.reserve(conn, entity, ip, Account::exact(&counted))?)
    })
    .await?;
    let reservation = match admission {
        Admission::Blocked(blocked) => return Ok(Opened::Blocked(blocked)),
        Admission::Admitted(reservation) => reservation,
    };
    let opened = match deps
        .passwords
        .run(slot, still_wanted, move || {
            php_token::open(encryption_key.expose().as_bytes(), &token)
        })
        .await
    {
        Ok(opened) => opened,
        Err(error) => {
            // Never opened (the client left while it waited).
            crate::login::give_places_back(deps, reservation).await?;
            return Err(error.into());
        }
    };
    match opened {
        Ok(payload) => Ok(Opened::Payload(payload, Box::new(reservation))),
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
    conn: &mut DbConnection,
    reservation: &Reservation,
    achieved: bool,
) -> Result<(), BlockerError> {
    if achieved {
        blocker.release(conn, reservation)
    } else {
        blocker.fail(conn, reservation)
    }
}

/// Exchanges a PHP refresh token for glue's own pair (see [`exchange_payload`]).
pub async fn exchange(
    deps: &Services,
    encryption_key: Secret,
    token: String,
    ip: Option<IpAddr>,
    still_wanted: StillWanted,
) -> Result<RefreshOutcome, LoginError> {
    let (payload, reservation) = match open(deps, encryption_key, token, ip, still_wanted).await? {
        Opened::Payload(payload, reservation) => (payload, *reservation),
        Opened::Invalid => return Ok(RefreshOutcome::Rejected(RefreshRejection::Unknown)),
        Opened::Blocked(blocked) => return Ok(RefreshOutcome::Blocked(blocked)),
    };
    let oauth = deps.oauth.clone();
    let blocker = deps.blocker.clone();
    let mfa = deps.mfa.clone();
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        let outcome = exchange_payload(conn, &oauth, &mfa, &payload)?;
        let rotated = matches!(outcome, RefreshOutcome::Rotated(_));
        settle(&blocker, conn, &reservation, rotated)?;
        Ok(outcome)
    })
    .await
}

/// Exchanges a refresh token the shop's PHP Glue issued (already decrypted) for glue's own pair
/// in a new session with the same `sub` (verbatim, as PHP copies it) and scopes. Stricter than
/// PHP: the token's `spy_oauth_refresh_token` row must exist, and retiring it is a conditional
/// update in the transaction that stores the new pair, so of parallel exchanges exactly one
/// wins; a later replay finds the row revoked.
pub fn exchange_payload(
    conn: &mut DbConnection,
    oauth: &OAuthServer,
    mfa: &AgentMfa,
    payload: &PhpRefreshPayload,
) -> Result<RefreshOutcome, OAuthError> {
    let rejected = |why| Ok(RefreshOutcome::Rejected(why));
    if payload.client_id != oauth.settings.client_id {
        return rejected(RefreshRejection::WrongClient);
    }
    if payload.expire_time < oauth.now_s() {
        return rejected(RefreshRejection::Expired);
    }
    let Some(row) = refresh_token::find(conn, &payload.refresh_token_id)? else {
        return rejected(RefreshRejection::Unknown);
    };
    // A row glue wrote is found by a SHA-256, never by a PHP token's id.
    if row.family.is_some() {
        return rejected(RefreshRejection::Unknown);
    }
    match refresh_token::refusal(&row, &oauth.settings.client_id, oauth.shop_now()) {
        // PHP Glue rotated or revoked it: no reuse detection for a family glue never had.
        Some(Refusal::Retired | Refusal::Revoked) => return rejected(RefreshRejection::Revoked),
        Some(refusal) => return rejected(refusal.into()),
        None => {}
    }
    let Some(identity) = Identity::parse(&payload.user_id, None) else {
        return rejected(RefreshRejection::Unreadable);
    };
    if !still_entitled(conn, &identity)? {
        return rejected(RefreshRejection::Inactive);
    }
    // PHP Glue's agent login asked for no second factor: its sessions of an agent who has one
    // do not become glue's.
    if super::lacks_second_factor(conn, mfa, &identity)? {
        return rejected(RefreshRejection::Inactive);
    }
    let grant = Grant {
        identity,
        subject_text: payload.user_id.clone(),
        scopes: payload.scopes.clone(),
    };
    let (tokens, successor) = oauth.new_pair(&grant, &OAuthServer::new_family())?;
    let won = db::retry_deadlocks(|| {
        db::write_transaction(&mut *conn, |conn| {
            if refresh_token::retire_foreign(conn, row.id_oauth_refresh_token, oauth.shop_now())?
                == 0
            {
                return Ok(false);
            }
            refresh_token::insert(conn, &successor)?;
            Ok(true)
        })
    })?;
    Ok(if won {
        RefreshOutcome::Rotated(tokens)
    } else {
        RefreshOutcome::Rejected(RefreshRejection::Revoked)
    })
}

/// `DELETE /refresh-tokens/{PHP token}` by the customer `caller`: revokes the live row the token
/// names if PHP Glue wrote it for that customer (compared as values). Nothing tells the caller
/// whether a row was revoked.
pub async fn revoke(
    deps: &Services,
    encryption_key: Secret,
    token: String,
    ip: Option<IpAddr>,
    still_wanted: StillWanted,
    caller: Identity,
) -> Result<Revocation, LoginError> {
    let (payload, reservation) = match open(deps, encryption_key, token, ip, still_wanted).await? {
        Opened::Payload(payload, reservation) => (payload, *reservation),
        Opened::Invalid => return Ok(Revocation::Done),
        Opened::Blocked(blocked) => return Ok(Revocation::Blocked(blocked)),
    };
    let oauth = deps.oauth.clone();
    let blocker = deps.blocker.clone();
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        let revoked = if payload.client_id == oauth.settings.client_id {
            db::retry_deadlocks(|| {
                db::write_transaction(&mut *conn, |conn| {
                    match refresh_token::find(conn, &payload.refresh_token_id)? {
                        Some(row)
                            if row.family.is_none()
                                && Identity::parse(&row.user_identifier, None)
                                    .is_some_and(|id| caller.owns(&id)) =>
                        {
                            refresh_token::revoke_one(
                                conn,
                                row.id_oauth_refresh_token,
                                oauth.shop_now(),
                            )
                        }
                        _ => Ok(0),
                    }
                })
            })?
        } else {
            0
        };
        settle(&blocker, conn, &reservation, revoked > 0)?;
        Ok(Revocation::Done)
    })
    .await
}
