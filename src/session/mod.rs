//! The session lifecycle after a login (Spryker's refresh grant + `OauthRevoke`): refresh
//! (glue's own refresh tokens with their grace window and reuse detection, and the shop's PHP
//! Glue refresh tokens during a migration, see [`php`]), revoke one session or all of the
//! caller's (`mine`), and end every session of an agent (a password change, a deactivation).
//!
//! Whose a session is, is decided on parsed values ([`Identity`]), never on the identifier
//! text: glue and PHP Glue spell one identifier differently. Rows are found by indexed columns
//! (Spryker's `customer_reference`, glue's side-table `id_agent`) and then judged by their parsed
//! identity. Each entry point returns an outcome enum; nothing here knows HTTP.

pub mod php;

use std::net::IpAddr;

use chrono::NaiveDateTime;

use crate::agent;
use crate::customer;
use crate::db::{self, DbConnection};
use crate::login::LoginError;
use crate::multi_factor_auth::AgentMfa;
use crate::oauth::identity::{Identity, Principal};
use crate::oauth::jwt::VerifiedToken;
use crate::oauth::refresh_token::{self, Exchange, RefreshTokenRow, Refusal};
use crate::oauth::{hash_refresh_token, php_token, Grant, IssuedTokens, OAuthError, OAuthServer};
use crate::password::StillWanted;
use crate::security_blocker::Blocked;
use crate::services::Services;

/// What a refresh came to.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The presented token was retired and its successor issued, in the same session.
    Rotated(IssuedTokens),
    /// A retired token came back: a copy exists somewhere, so its whole session was revoked.
    Reused,
    /// Refused; nothing changed.
    Rejected(RefreshRejection),
    /// A PHP Glue token from an address with too many failed ones: refused before any work.
    Blocked(Blocked),
}

/// Why a refresh was refused (all answered alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRejection {
    Unknown,
    Expired,
    Revoked,
    WrongClient,
    /// The stored row cannot be read back into an identity.
    Unreadable,
    /// The user or the acting agent may no longer hold a session (e.g. a deactivated agent).
    Inactive,
    /// The immediately previous token came back within the grace window more often than
    /// allowed (refused without revoking anything).
    GraceExhausted,
}

impl From<Refusal> for RefreshRejection {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unknown => RefreshRejection::Unknown,
            Refusal::GraceExhausted => RefreshRejection::GraceExhausted,
            Refusal::Expired => RefreshRejection::Expired,
            // A retired token is handled by the caller, which revokes the session.
            Refusal::Revoked | Refusal::Retired => RefreshRejection::Revoked,
            Refusal::WrongClient => RefreshRejection::WrongClient,
        }
    }
}

/// Which sessions a revocation is about.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// Every session of the caller (`DELETE /refresh-tokens/mine`).
    Mine,
    /// The session of this refresh token, if it is the caller's.
    Token(String),
}

/// What a revocation came to. Whether anything was revoked is nobody else's business.
#[derive(Debug)]
pub enum Revocation {
    Done,
    /// A PHP Glue token from an address with too many failed ones: refused before any work.
    Blocked(Blocked),
}

/// Refreshes a presented refresh token: glue's own, or (when the shop's keys are configured)
/// one the shop's PHP Glue issued. Counted into `glue_refreshes_total{outcome}`.
pub async fn refresh(
    deps: &Services,
    presented: String,
    ip: Option<IpAddr>,
    still_wanted: StillWanted,
) -> Result<RefreshOutcome, LoginError> {
    let outcome =
        match php::encryption_key(&deps.oauth).filter(|_| php_token::looks_like_php(&presented)) {
            Some(key) => php::exchange(deps, key, presented, ip, still_wanted).await?,
            None => {
                let oauth = deps.oauth.clone();
                db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
                    Ok(refresh_native(conn, &oauth, &presented)?)
                })
                .await?
            }
        };
    let counted = match &outcome {
        RefreshOutcome::Rotated(_) => Some("rotated"),
        RefreshOutcome::Reused => Some("reused"),
        RefreshOutcome::Rejected(_) => Some("rejected"),
        RefreshOutcome::Blocked(_) => None,
    };
    if let Some(counted) = counted {
        deps.metrics.refreshes.with_label_values(&[counted]).inc();
    }
    Ok(outcome)
}

/// True while every principal the session depends on may still hold one: the subject agent
/// and the acting agent must exist and be active; the customer must exist and not be
/// anonymised (Spryker's `SpyCustomerQuery`, as search, impersonation and login see it).
pub fn still_entitled(conn: &mut DbConnection, identity: &Identity) -> diesel::QueryResult<bool> {
    for id_agent in [identity.subject.agent_id(), identity.acting_agent]
        .into_iter()
        .flatten()
    {
        if agent::find_active_agent_by_id(conn, id_agent)?.is_none() {
            return Ok(false);
        }
    }
    if let Principal::Customer {
        reference,
        id_customer,
    } = &identity.subject
    {
        let found = customer::find_by_reference(conn, reference)?;
        if !found.is_some_and(|c| id_customer.is_none_or(|id| id == i64::from(c.id_customer))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// True while an access token may still act: its session has not ended (logout, reuse
/// detection, a password change or deactivation end it; a token without a session — PHP
/// Glue's — has nothing to end) and everyone it names is [still entitled](still_entitled).
/// The check every authenticated request makes (a few indexed reads).
pub fn token_is_live(
    conn: &mut DbConnection,
    oauth: &OAuthServer,
    mfa: &AgentMfa,
    token: &VerifiedToken,
) -> Result<bool, OAuthError> {
    Ok(oauth.session_is_live(conn, token)?
        && still_entitled(conn, &token.identity)?
        // PHP Glue's tokens (no session of glue's) were issued without a second factor.
        && !(token.session.is_none() && lacks_second_factor(conn, mfa, &token.identity)?))
}

/// Whether a session of `identity` that no second factor opened (PHP Glue's agent login asks
/// for none) must be refused: its agent (the subject, or the agent acting for a customer) has
/// an active method, or `oauth.agent_mfa = "required"`; never with `"off"`.
pub(crate) fn lacks_second_factor(
    conn: &mut DbConnection,
    mfa: &AgentMfa,
    identity: &Identity,
) -> diesel::QueryResult<bool> {
    match identity.agent().and_then(|id| i32::try_from(id).ok()) {
        Some(id_user) => mfa.refuses_without_code(conn, id_user),
        None => Ok(false),
    }
}

/// Exchanges one of glue's refresh tokens for a new pair in the same session. The checks and
/// the RS256 signature happen before the write transaction, so no lock is held while signing;
/// the transaction judges the row again under its lock and either retires it and stores the
/// successor, or changes nothing. A retired token (outside the grace window) revokes its whole
/// session. A token whose agent (or acting agent) was deactivated is refused without being
/// consumed.
fn refresh_native(
    conn: &mut DbConnection,
    oauth: &OAuthServer,
    presented: &str,
) -> Result<RefreshOutcome, OAuthError> {
    let rejected = |why: RefreshRejection| Ok(RefreshOutcome::Rejected(why));
    let Some(current) = refresh_token::find(conn, &hash_refresh_token(presented))? else {
        return rejected(RefreshRejection::Unknown);
    };
    let grace = oauth.grace();
    let now = oauth.shop_now();
    match refresh_token::refusal(&current, &oauth.settings.client_id, now) {
        // A token retired within the grace window may still be honoured: the exchange decides
        // under the row lock.
        Some(Refusal::Retired) if grace.covers(&current, now) => {}
        Some(Refusal::Retired) => {
            if let Some(family) = &current.family {
                // In a transaction, so that a request that already answered 503 (its database
                // hung) cannot revoke a session once the database answers again.
                db::retry_deadlocks(|| {
                    db::write_transaction(&mut *conn, |conn| {
                        refresh_token::revoke_family(conn, family, oauth.shop_now())
                    })
                })?;
            }
            return Ok(RefreshOutcome::Reused);
        }
        Some(refusal) => return rejected(refusal.into()),
        None => {}
    }
    let (Some(grant), Some(family)) = (grant_of(&current), current.family.as_deref()) else {
        return rejected(RefreshRejection::Unreadable);
    };
    if !still_entitled(conn, &grant.identity)? {
        return rejected(RefreshRejection::Inactive);
    }
    let (tokens, successor) = oauth.new_pair(&grant, family)?;
    Ok(
        match refresh_token::exchange(
            conn,
            &current,
            &successor,
            &oauth.settings.client_id,
            grace,
            oauth.shop_now(),
        )? {
            Exchange::Rotated => RefreshOutcome::Rotated(tokens),
            Exchange::Reused => RefreshOutcome::Reused,
            Exchange::Refused(refusal) => RefreshOutcome::Rejected(refusal.into()),
        },
    )
}

/// The identity a stored row stands for; `None` if it names nobody.
fn identity_of(row: &RefreshTokenRow) -> Option<Identity> {
    Identity::parse(&row.user_identifier, row.actor_identifier.as_deref())
}

/// The grant a stored row goes on with: its identity, its `sub` text verbatim, its scopes.
fn grant_of(row: &RefreshTokenRow) -> Option<Grant> {
    Some(Grant {
        identity: identity_of(row)?,
        subject_text: row.user_identifier.clone(),
        scopes: serde_json::from_str(row.scopes.as_deref()?).ok()?,
    })
}

/// Ends sessions of `caller`: the one a refresh token names (if the caller [owns](Identity::owns)
/// it), or every session `mine` [includes](Identity::includes). A customer (not an impersonation)
/// also ends the rows the shop's PHP Glue wrote for it, as PHP's own `DELETE` does: all of them
/// for `mine`, or the one a PHP refresh token names (opened like an exchange, when PHP Glue's
/// tokens are accepted).
pub async fn revoke(
    deps: &Services,
    caller: Identity,
    target: RevokeTarget,
    ip: Option<IpAddr>,
    still_wanted: StillWanted,
) -> Result<Revocation, LoginError> {
    let php_key = php::encryption_key(&deps.oauth);
    match target {
        RevokeTarget::Token(token)
            if php_key.is_some()
                && php_token::looks_like_php(&token)
                && caller.acting_agent.is_none()
                && caller.subject.customer_reference().is_some() =>
        {
            let key = php_key.expect("checked above");
            php::revoke(deps, key, token, ip, still_wanted, caller).await
        }
        RevokeTarget::Token(token) => {
            let identifier = hash_refresh_token(&token);
            let oauth = deps.oauth.clone();
            db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
                revoke_settled(conn, |conn| {
                    let owned: Vec<_> = refresh_token::find(conn, &identifier)?
                        .filter(|row| identity_of(row).is_some_and(|id| caller.owns(&id)))
                        .into_iter()
                        .collect();
                    refresh_token::revoke_rows(conn, &owned, oauth.shop_now())
                })?;
                Ok(Revocation::Done)
            })
            .await
        }
        RevokeTarget::Mine => {
            let oauth = deps.oauth.clone();
            db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
                revoke_settled(conn, |conn| revoke_mine(conn, &caller, oauth.shop_now()))?;
                Ok(Revocation::Done)
            })
            .await
        }
    }
}

/// How often a revocation reads its candidates again when someone changed them under it.
const MAX_REVOCATION_PASSES: usize = 8;

/// Runs `pass` (read the candidate sessions, revoke them) in a write transaction, and again in
/// a fresh one while a pass was contested: a session that a rotation or a PHP token's exchange
/// turned into another between the read and the revocation is read again (a new transaction
/// sees what committed meanwhile, also under MariaDB's REPEATABLE READ). Returns the tokens
/// revoked.
fn revoke_settled(
    conn: &mut DbConnection,
    mut pass: impl FnMut(&mut DbConnection) -> diesel::QueryResult<refresh_token::Revoked>,
) -> diesel::QueryResult<usize> {
    let mut total = 0;
    for _ in 0..MAX_REVOCATION_PASSES {
        let done = db::retry_deadlocks(|| db::write_transaction(&mut *conn, &mut pass))?;
        total += done.tokens;
        if !done.contested {
            break;
        }
    }
    Ok(total)
}

/// Revokes every live session `caller` includes.
fn revoke_mine(
    conn: &mut DbConnection,
    caller: &Identity,
    now: NaiveDateTime,
) -> diesel::QueryResult<refresh_token::Revoked> {
    match &caller.subject {
        Principal::Customer { reference, .. } => {
            let mine: Vec<_> = refresh_token::live_rows_of_customer(conn, reference)?
                .into_iter()
                .filter(|row| identity_of(row).is_some_and(|id| caller.includes(&id)))
                .collect();
            refresh_token::revoke_rows(conn, &mine, now)
        }
        // An agent's sessions are those that hang on it (its logins and its impersonations),
        // PHP Glue's rows of it included.
        Principal::Agent { id_user } => agent_pass(conn, *id_user, false, now),
    }
}

/// One pass over the sessions that hang on the agent `id_agent`: glue's by their key, PHP
/// Glue's (and, with `unkeyed_glue_rows`, those an older glue wrote without the key) by their
/// parsed identity.
fn agent_pass(
    conn: &mut DbConnection,
    id_agent: i64,
    unkeyed_glue_rows: bool,
    now: NaiveDateTime,
) -> diesel::QueryResult<refresh_token::Revoked> {
    let mut rows = refresh_token::live_rows_keyed_to_agent(conn, id_agent)?;
    rows.extend(
        refresh_token::live_rows_mentioning_agent(conn, id_agent, unkeyed_glue_rows)?
            .into_iter()
            .filter(|row| identity_of(row).is_some_and(|id| id.agent() == Some(id_agent))),
    );
    refresh_token::revoke_rows(conn, &rows, now)
}

/// Ends every session of the agent `id_agent` (see [`change_agent_and_end_sessions`]): a second
/// factor became active, so what its password alone opened must not outlive it. Returns how
/// many refresh tokens were revoked.
pub fn end_agent_sessions(conn: &mut DbConnection, id_agent: i64) -> diesel::QueryResult<usize> {
    change_agent_and_end_sessions(conn, id_agent, |_| Ok(())).map(|((), ended)| ended)
}

/// Runs `change` on the agent `id_agent` (a password change, a deactivation) and ends every
/// session of the agent in the same write transaction (retried whole on a deadlock): its own
/// logins — glue's, exchanged ones whatever their spelling, rows the shop's PHP Glue wrote and
/// nobody exchanged, rows a glue older than the agent key wrote — and the impersonations it
/// started. Their access tokens stop working at once; a session changed meanwhile is read
/// again in further transactions. Returns what `change` returned and how many refresh tokens
/// were revoked.
pub fn change_agent_and_end_sessions<T>(
    conn: &mut DbConnection,
    id_agent: i64,
    mut change: impl FnMut(&mut DbConnection) -> diesel::QueryResult<T>,
) -> diesel::QueryResult<(T, usize)> {
    let (value, first) = db::retry_deadlocks(|| {
        db::write_transaction(&mut *conn, |conn| {
            let value = change(conn)?;
            Ok((value, agent_pass(conn, id_agent, true, db::now())?))
        })
    })?;
    let more = if first.contested {
        revoke_settled(conn, |conn| agent_pass(conn, id_agent, true, db::now()))?
    } else {
        0
    };
    Ok((value, first.tokens + more))
}
