//! Agents' second factor outside the login (Spryker's `MultiFactorAuth` Glue resources, for
//! agents): enrolment, and a code checked for an agent who is logged in — under the security
//! blocker like a password, since a stolen access token must not be able to guess codes.

use std::net::IpAddr;

use crate::agent;
use crate::db;
use crate::login::LoginError;
use crate::multi_factor_auth::{self, email, Method, MfaError, Verification};
use crate::security_blocker::{Account, Admission, Blocked, EntityType};
use crate::services::Services;

/// An agent's method as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodStatus {
    Inactive,
    Pending,
    Active,
}

/// What a code came to.
#[derive(Debug)]
pub enum CodeCheck {
    Accepted,
    /// Wrong, expired, replayed, or the agent has no method: a failed attempt.
    Invalid,
    Blocked(Blocked),
}

/// What an enrolment came to.
#[derive(Debug)]
pub enum Enrolment {
    /// The `otpauth://` URI, shown once.
    Pending(String),
    AlreadyActive,
    /// TOTP is not offered here (no key for its secrets).
    Unavailable,
}

/// The agent's TOTP method.
pub async fn status(deps: &Services, id_user: i64) -> Result<MethodStatus, LoginError> {
    let Ok(id_user) = i32::try_from(id_user) else {
        return Ok(MethodStatus::Inactive);
    };
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        Ok(match multi_factor_auth::status_of(conn, id_user)? {
            Some(multi_factor_auth::STATUS_ACTIVE) => MethodStatus::Active,
            Some(_) => MethodStatus::Pending,
            None => MethodStatus::Inactive,
        })
    })
    .await
}

/// Every method the agent can have here and its status: TOTP, and the shop's email method when
/// the shop has Spryker's MFA tables (enrolled on the storefront; listed, not managed, here).
pub async fn methods(
    deps: &Services,
    id_user: i64,
) -> Result<Vec<(Method, MethodStatus)>, LoginError> {
    let totp = status(deps, id_user).await?;
    let mut methods = vec![(Method::Totp, totp)];
    if deps.mfa.email_tables() {
        let email = match i32::try_from(id_user) {
            Ok(id_user) => db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
                Ok(email::method_of(conn, id_user)?)
            })
            .await?
            .map(|(_, status)| status),
            Err(_) => None,
        };
        methods.push((
            Method::Email,
            match email {
                Some(email::METHOD_ACTIVE) => MethodStatus::Active,
                Some(email::METHOD_PENDING) => MethodStatus::Pending,
                _ => MethodStatus::Inactive,
            },
        ));
    }
    Ok(methods)
}

/// Enrols the agent in TOTP (pending until a code verifies it).
pub async fn enrol(
    deps: &Services,
    id_user: i64,
    issuer: String,
) -> Result<Option<Enrolment>, LoginError> {
    let mfa = deps.mfa.clone();
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        let Some(user) = agent::find_active_agent_by_id(conn, id_user)? else {
            return Ok(None);
        };
        // An agent whose shop's email method is active enrols TOTP through the CLI only: a
        // token alone (one opened before that method, or stolen) must not add a factor that
        // replaces the mailed code.
        if mfa.email_method(conn, user.id_user)?.is_some() {
            return Ok(Some(Enrolment::AlreadyActive));
        }
        match mfa.enrol_totp(conn, user.id_user, &issuer, &user.username) {
            Ok(uri) => Ok(Some(Enrolment::Pending(uri))),
            Err(MfaError::AlreadyActive) => Ok(Some(Enrolment::AlreadyActive)),
            // This deployment has no key for TOTP secrets (production without
            // oauth.mfa_key_path): the method is not offered.
            Err(MfaError::NoKey) => Ok(Some(Enrolment::Unavailable)),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Checks `code` for the agent's method (activating a pending one), counted with the security
/// blocker under the agent's name from `ip`: a wrong code is a failed attempt, a right one gives
/// its place back (it trusts no address: no login happened).
pub async fn check_code(
    deps: &Services,
    id_user: i64,
    ip: Option<IpAddr>,
    code: String,
) -> Result<CodeCheck, LoginError> {
    let mfa = deps.mfa.clone();
    let blocker = deps.blocker.clone();
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        let Some(user) = agent::find_active_agent_by_id(conn, id_user)? else {
            return Ok(CodeCheck::Invalid);
        };
        // A pending TOTP is not made active here while the email method is (see `enrol`).
        let pending = multi_factor_auth::status_of(conn, user.id_user)?
            .is_some_and(|status| status != multi_factor_auth::STATUS_ACTIVE);
        if pending && mfa.email_method(conn, user.id_user)?.is_some() {
            return Ok(CodeCheck::Invalid);
        }
        let key = user.username.to_lowercase();
        let account = Account {
            typed: &user.username,
            key: &key,
        };
        let reservation = match blocker.reserve(conn, EntityType::Agent, ip, account)? {
            Admission::Blocked(blocked) => return Ok(CodeCheck::Blocked(blocked)),
            Admission::Admitted(reservation) => reservation,
        };
        let verification = match mfa.verify_totp(conn, user.id_user, &code) {
            Ok(verification) => verification,
            Err(e) => {
                // Never decided: its places go back (best effort: the check itself failed).
                let _ = blocker.release(conn, &reservation);
                return Err(e.into());
            }
        };
        match verification {
            Verification::Rejected => {
                blocker.fail(conn, &reservation)?;
                Ok(CodeCheck::Invalid)
            }
            accepted => {
                blocker.release(conn, &reservation)?;
                if accepted == Verification::Activated {
                    // What the password alone opened (this caller's session too) ends.
                    crate::session::end_agent_sessions(conn, i64::from(user.id_user))?;
                }
                Ok(CodeCheck::Accepted)
            }
        }
    })
    .await
}

/// Removes the agent's method (`pending_only` when no code was checked); false when none was
/// removed.
pub async fn remove(deps: &Services, id_user: i64, pending_only: bool) -> Result<bool, LoginError> {
    let Ok(id_user) = i32::try_from(id_user) else {
        return Ok(false);
    };
    let mfa = deps.mfa.clone();
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        Ok(mfa.deactivate_totp(conn, id_user, pending_only)?)
    })
    .await
}
