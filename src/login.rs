//! The password grants' one login flow (Spryker's `OauthUserProvider` + `SecurityBlocker`
//! checks), shared by agents and customers (their connectors implement [`Accounts`]): throttle
//! check, user lookup, one bcrypt verification, the second factor once the password is right
//! (agents with a method, see [`crate::multi_factor_auth`]), then either a new token pair or a
//! counted failure.
//!
//! Every failure — unknown user, wrong password, missing or malformed credentials — costs one
//! bcrypt verification at the target cost (see [`crate::password`]), so failures cannot be
//! produced faster than the cores verify hashes and take as long whether the user exists or
//! not. The attempt reserves its place with the security blocker *before* verifying, so a burst
//! cannot slip past the limit; a blocked key costs no bcrypt at all, and a full bcrypt queue is
//! refused before anything else happens. Nothing here knows HTTP: the outcome is a
//! [`LoginOutcome`].

use std::net::IpAddr;

use diesel::QueryResult;

use crate::db::{self, DbConnection, DbError};
use crate::mail::MailError;
use crate::multi_factor_auth::email::{self, OutgoingCode};
use crate::multi_factor_auth::{AgentMfa, Checked, Method, MfaError, SecondFactor};
use crate::oauth::{Grant, IssuedTokens, OAuthError};
use crate::password::{Password, PasswordError, StillWanted};
use crate::security_blocker::{Account, Admission, Blocked, BlockerError, EntityType};
use crate::services::Services;

/// A username as sent: a non-blank string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// `None` for a missing or blank username.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        value
            .filter(|v| !v.trim().is_empty())
            .map(|v| Username(v.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One login attempt as it arrived; missing parts still cost a verification.
#[derive(Clone)]
pub struct LoginAttempt {
    pub username: Option<Username>,
    pub password: Option<Password>,
    pub ip: Option<IpAddr>,
    /// Whether the client still waits (its verification is skipped otherwise).
    pub still_wanted: StillWanted,
    /// The second factor's code (`X-MFA-Code`), looked at only once the password was right.
    pub mfa_code: Option<String>,
}

/// What a login came to.
#[derive(Debug)]
pub enum LoginOutcome<U> {
    Issued {
        user: U,
        tokens: IssuedTokens,
    },
    InvalidCredentials,
    Blocked(Blocked),
    /// The password was right, the second factor was not: missing (5900), invalid (5901), or
    /// not set up where one is required (5902).
    SecondFactor(SecondFactor),
}

/// Why a login could not be decided (answered with 503 or 500, never with a login error).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The second factor could not be checked (its database work, or a secret that does not
    /// decrypt under the configured key).
    #[error(transparent)]
    SecondFactor(MfaError),
    /// The security blocker's shared store (Redis) does not answer: logins fail closed.
    #[error(transparent)]
    BlockerStore(#[from] crate::security_blocker::redis_store::StoreUnavailable),
    /// The email method's code could not be sent (503, Spryker's 5910).
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl From<MfaError> for LoginError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::Database(e) => e.into(),
            other => LoginError::SecondFactor(other),
        }
    }
}

impl From<BlockerError> for LoginError {
    fn from(e: BlockerError) -> Self {
        match e {
            BlockerError::Database(e) => e.into(),
            BlockerError::Store(e) => LoginError::BlockerStore(e),
        }
    }
}

impl From<diesel::result::Error> for LoginError {
    fn from(e: diesel::result::Error) -> Self {
        LoginError::Database(e.into())
    }
}

/// The accounts one grant logs into.
pub trait Accounts: Send + 'static {
    type User: Send + 'static;
    /// Whose counters the security blocker keeps.
    const ENTITY: EntityType;
    /// The key the security blocker counts `username` under: every spelling [`Accounts::find`]
    /// takes for one account must share one count, and a name no account has is counted exactly
    /// like one that exists. By default lower-cased (Rust's Unicode folding): an exact lookup
    /// (agents) then shares one count among spellings it keeps apart, which is stricter.
    fn account_key(_conn: &mut DbConnection, username: &Username) -> QueryResult<String> {
        Ok(username.as_str().to_lowercase())
    }
    /// The user that may log in with this name, and its bcrypt hash (if it has one).
    fn find(
        conn: &mut DbConnection,
        username: &Username,
    ) -> QueryResult<Option<(Self::User, Option<String>)>>;
    /// What the new token pair grants.
    fn grant(user: &Self::User) -> Grant;
    /// The form of the password bcrypt sees (the shop's hasher may transform it first).
    fn password_form(password: Password) -> Password {
        password
    }
    /// The second factor of a login whose password was right (agents: see
    /// [`crate::multi_factor_auth`]); by default none.
    fn second_factor(
        _mfa: &AgentMfa,
        _conn: &mut DbConnection,
        _user: &Self::User,
        _code: Option<&str>,
    ) -> Result<Checked, MfaError> {
        Ok(SecondFactor::NotNeeded.into())
    }
    /// Bookkeeping after a successful login (e.g. `last_login`).
    fn logged_in(_conn: &mut DbConnection, _user: &Self::User) -> QueryResult<()> {
        Ok(())
    }
    /// Stores a new hash of the user's password (its old one was below the configured cost),
    /// only if `old_hash` is still the stored one.
    fn rehash(
        conn: &mut DbConnection,
        user: &Self::User,
        old_hash: &str,
        new_hash: &str,
    ) -> QueryResult<()>;
}

/// [`password_grant`], counted into `glue_logins_total{kind, outcome}`.
pub async fn counted_password_grant<A: Accounts>(
    deps: &Services,
    attempt: LoginAttempt,
) -> Result<LoginOutcome<A::User>, LoginError> {
    let result = password_grant::<A>(deps, attempt).await;
    let outcome = match &result {
        Ok(LoginOutcome::Issued { .. }) => Some("issued"),
        Ok(LoginOutcome::InvalidCredentials) => Some("invalid"),
        Ok(LoginOutcome::Blocked(_)) => Some("blocked"),
        Ok(LoginOutcome::SecondFactor(SecondFactor::Missing)) => Some("mfa_missing"),
        Ok(LoginOutcome::SecondFactor(SecondFactor::Invalid)) => Some("mfa_invalid"),
        Ok(LoginOutcome::SecondFactor(_)) => Some("mfa_not_set_up"),
        Err(LoginError::Password(PasswordError::Overloaded)) => Some("shed"),
        Err(LoginError::Password(PasswordError::Abandoned)) => Some("abandoned"),
        Err(LoginError::Mail(_)) => Some("mfa_unsent"),
        Err(_) => None,
    };
    if let Some(outcome) = outcome {
        let kind = A::ENTITY.name();
        deps.metrics
            .logins
            .with_label_values(&[kind, outcome])
            .inc();
    }
    result
}

/// Gives an attempt's places back (it was never verified: its client left, or its work failed
/// before proving anything), so nobody is locked out by attempts that never counted.
pub(crate) async fn give_places_back(
    deps: &Services,
    reservation: crate::security_blocker::Reservation,
) -> Result<(), LoginError> {
    let blocker = deps.blocker.clone();
    db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        Ok(blocker.release(conn, &reservation)?)
    })
    .await
}

/// Mails an email-method code; one that cannot be sent is withdrawn (so the next request sends
/// a new one at once) and answered 503/5910. Logged without the code. The send runs as a task
/// of its own: a client that leaves meanwhile neither stops the mail nor leaves a stored code
/// unsent (which would hold the agent's next mail back for the rate limit's interval).
pub async fn deliver(deps: &Services, outgoing: OutgoingCode) -> Result<(), LoginError> {
    let deps = deps.clone();
    let sending = tokio::spawn(async move {
        let (subject, text) = email::message(&outgoing.code);
        match deps.mailer.send(&outgoing.to, subject, text).await {
            Ok(()) => {
                deps.mfa.event(outgoing.id_user, Method::Email, "code_sent");
                Ok(())
            }
            Err(error) => {
                deps.mfa
                    .event(outgoing.id_user, Method::Email, "send_failed");
                log::error!(target: "security", "second factor code not sent: agent {}, email: {error}", outgoing.id_user);
                let mfa = deps.mfa.clone();
                let id_code = outgoing.id_code;
                // Best effort: the code was never seen, so nothing is lost if it stays.
                let _ = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
                    Ok(email::withdraw(conn, id_code, mfa.shop_now())?)
                })
                .await;
                Err(LoginError::from(error))
            }
        }
    });
    sending
        .await
        .unwrap_or_else(|_| Err(MailError::Relay("the send task ended early".into()).into()))
}

/// The first step's result.
enum Lookup<U> {
    Blocked(Blocked),
    Admitted {
        reservation: crate::security_blocker::Reservation,
        user: Option<U>,
        hash: Option<String>,
    },
}

/// Logs in to `A`'s accounts: the blocker's check (a read; a blocked key takes no place in the
/// bcrypt queue), a place in the queue, the blocker's reservation and the lookup, one
/// verification at the target cost, then a new token pair (and `A::logged_in`, and a new hash
/// when the old one was cheaper than configured) or a counted failure. An attempt that is never
/// verified (its client left while it waited) gives its places back.
pub async fn password_grant<A: Accounts>(
    deps: &Services,
    attempt: LoginAttempt,
) -> Result<LoginOutcome<A::User>, LoginError> {
    let blocker = deps.blocker.clone();
    let checked = attempt.clone();
    let (account, refused) = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        let account = match &checked.username {
            Some(username) => A::account_key(conn, username)?,
            None => String::new(),
        };
        let typed = checked.username.as_ref().map_or("", Username::as_str);
        let refused = blocker.check(
            conn,
            A::ENTITY,
            checked.ip,
            Account {
                typed,
                key: &account,
            },
        )?;
        Ok((account, refused))
    })
    .await?;
    if let Some(blocked) = refused {
        return Ok(LoginOutcome::Blocked(blocked));
    }
    let slot = deps.passwords.slot()?;
    let blocker = deps.blocker.clone();
    let lookup = attempt.clone();
    let looked_up = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        let typed = lookup.username.as_ref().map_or("", Username::as_str);
        let account = Account {
            typed,
            key: &account,
        };
        let reservation = match blocker.reserve(conn, A::ENTITY, lookup.ip, account)? {
            Admission::Blocked(blocked) => return Ok(Lookup::Blocked(blocked)),
            Admission::Admitted(reservation) => reservation,
        };
        let found = match &lookup.username {
            Some(username) => match A::find(conn, username) {
                Ok(found) => found,
                Err(e) => {
                    // Never verified: its places go back (best effort: the database failed).
                    let _ = blocker.release(conn, &reservation);
                    return Err(e.into());
                }
            },
            None => None,
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        Ok(Lookup::Admitted {
            reservation,
            user,
            hash,
        })
    })
    .await?;
    let (reservation, user, hash) = match looked_up {
        Lookup::Blocked(blocked) => return Ok(LoginOutcome::Blocked(blocked)),
        Lookup::Admitted {
            reservation,
            user,
            hash,
        } => (reservation, user, hash),
    };
    let verified_hash = hash.clone();
    let verification = match deps
        .passwords
        .verify(
            slot,
            attempt.still_wanted.clone(),
            attempt.password.clone().map(A::password_form),
            hash,
        )
        .await
    {
        Ok(verification) => verification,
        Err(error) => {
            // Never verified: the attempt proved nothing.
            give_places_back(deps, reservation).await?;
            return Err(error.into());
        }
    };
    let blocker = deps.blocker.clone();
    let username = attempt.username.clone();
    let oauth = deps.oauth.clone();
    let mfa = deps.mfa.clone();
    let code = attempt.mfa_code.clone();
    let (outcome, outgoing) = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        // The hash must still be the one verified: a password changed meanwhile (which ends
        // every session) must not be undone by a rehash nor answered with a new session.
        let still_current = match (&user, &username) {
            (Some(_), Some(username)) if verification.matched => {
                A::find(conn, username)?.and_then(|(_, hash)| hash) == verified_hash
            }
            _ => false,
        };
        match user {
            Some(user) if still_current => {
                // Only now, with the password right, is the second factor looked at: a wrong
                // password answers exactly as before, and tells nothing about it.
                let Checked {
                    outcome,
                    outgoing,
                    undeliverable,
                } = match A::second_factor(&mfa, conn, &user, code.as_deref()) {
                    Ok(checked) => checked,
                    Err(e) => {
                        // Never decided: its places go back (best effort: the check failed).
                        let _ = blocker.release(conn, &reservation);
                        return Err(e.into());
                    }
                };
                match outcome {
                    SecondFactor::NotNeeded | SecondFactor::Passed | SecondFactor::Activated => {}
                    SecondFactor::Invalid => {
                        blocker.fail(conn, &reservation)?;
                        return Ok((LoginOutcome::SecondFactor(SecondFactor::Invalid), None));
                    }
                    // A right password without its code is no failure, and trusts nothing.
                    refused => {
                        blocker.release(conn, &reservation)?;
                        if undeliverable {
                            return Err(MailError::Undeliverable.into());
                        }
                        return Ok((LoginOutcome::SecondFactor(refused), outgoing));
                    }
                }
                blocker.succeed(conn, &reservation)?;
                if let (Some(new_hash), Some(old_hash)) = (&verification.rehashed, &verified_hash) {
                    A::rehash(conn, &user, old_hash, new_hash)?;
                }
                let tokens = oauth.issue(conn, &A::grant(&user))?;
                A::logged_in(conn, &user)?;
                Ok((LoginOutcome::Issued { user, tokens }, None))
            }
            _ => {
                blocker.fail(conn, &reservation)?;
                Ok((LoginOutcome::InvalidCredentials, None))
            }
        }
    })
    .await?;
    // The email method: the code this answer asks for goes out now (5900 tells the agent to
    // look in the mailbox; a code still waiting from a moment ago is not sent again).
    if let Some(outgoing) = outgoing {
        deliver(deps, outgoing).await?;
    }
    Ok(outcome)
}
