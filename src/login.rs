//! The password grants' one login flow (Spryker's `OauthUserProvider` + `SecurityBlocker`
//! checks), shared by agents and customers (their connectors implement [`Accounts`]): throttle check, user lookup, one bcrypt verification,
//! then either a new token pair or a counted failure.
//!
//! Every failure — unknown user, wrong password, missing or malformed credentials — costs one
//! bcrypt verification, so failures cannot be produced faster than the cores verify hashes:
//! that bounds both the guessing rate and the growth of the counter table. A blocked key costs
//! no bcrypt at all. Nothing here knows HTTP: the outcome is a [`LoginOutcome`].

use std::net::IpAddr;
use std::sync::Arc;

use diesel::QueryResult;

use crate::db::{self, DbConnection, DbError, DbPool};
use crate::oauth::{Grant, IssuedTokens, OAuthError, OAuthServer};
use crate::password::{Password, PasswordError, PasswordVerifier};
use crate::security_blocker::{Blocked, EntityType, SecurityBlocker};

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
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub username: Option<Username>,
    pub password: Option<Password>,
    pub ip: Option<IpAddr>,
}

impl LoginAttempt {
    /// The name the security blocker counts under (empty when missing).
    fn counted_name(&self) -> &str {
        self.username.as_ref().map_or("", Username::as_str)
    }
}

/// What a login came to.
#[derive(Debug)]
pub enum LoginOutcome<U> {
    Issued { user: U, tokens: IssuedTokens },
    InvalidCredentials,
    Blocked(Blocked),
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
    /// The user that may log in with this name, and its bcrypt hash (if it has one).
    fn find(
        conn: &mut DbConnection,
        username: &Username,
    ) -> QueryResult<Option<(Self::User, Option<String>)>>;
    /// What the new token pair grants.
    fn grant(user: &Self::User) -> Grant;
    /// Bookkeeping after a successful login (e.g. `last_login`).
    fn logged_in(_conn: &mut DbConnection, _user: &Self::User) -> QueryResult<()> {
        Ok(())
    }
}

/// What a login needs; cheap to clone (everything is shared).
#[derive(Clone)]
pub struct LoginDeps {
    pub pool: DbPool,
    pub blocker: Arc<SecurityBlocker>,
    pub passwords: Arc<PasswordVerifier>,
    pub oauth: Arc<OAuthServer>,
}

/// The first step's result.
enum Lookup<U> {
    Blocked(Blocked),
    Found { user: U, hash: Option<String> },
    Unknown,
}

/// Logs in to `A`'s accounts: the blocker's check, the lookup, one bcrypt verification, then a
/// new token pair (and `A::logged_in`) or a counted failure.
pub async fn password_grant<A: Accounts>(
    deps: &LoginDeps,
    attempt: LoginAttempt,
) -> Result<LoginOutcome<A::User>, LoginError> {
    let checking = deps.blocker.clone();
    let lookup = attempt.clone();
    let looked_up = db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
        if let Some(blocked) = checking.check(conn, A::ENTITY, lookup.ip, lookup.counted_name())? {
            return Ok(Lookup::Blocked(blocked));
        }
        Ok(match &lookup.username {
            Some(username) => match A::find(conn, username)? {
                Some((user, hash)) => Lookup::Found { user, hash },
                None => Lookup::Unknown,
            },
            None => Lookup::Unknown,
        })
    })
    .await?;
    let (user, hash) = match looked_up {
        Lookup::Blocked(blocked) => return Ok(LoginOutcome::Blocked(blocked)),
        Lookup::Found { user, hash } => (Some(user), hash),
        Lookup::Unknown => (None, None),
    };
    let matched = deps
        .passwords
        .verify(attempt.password.clone(), hash)
        .await?;
    match user {
        Some(user) if matched => {
            let oauth = deps.oauth.clone();
            db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
                let tokens = oauth.issue(conn, &A::grant(&user))?;
                A::logged_in(conn, &user)?;
                Ok(LoginOutcome::Issued { user, tokens })
            })
            .await
        }
        _ => {
            let blocker = deps.blocker.clone();
            db::run(&deps.pool, move |conn| -> Result<_, LoginError> {
                blocker.record_failure(conn, A::ENTITY, attempt.ip, attempt.counted_name())?;
                Ok(LoginOutcome::InvalidCredentials)
            })
            .await
        }
    }
}
