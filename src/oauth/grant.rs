//! The password grants' common path (Spryker's `OauthUserProvider` + `SecurityBlocker`
//! checks): throttle check, user lookup, one bcrypt verification, failure accounting.
//!
//! Every failure — unknown user, wrong password, missing or malformed credentials — costs one
//! bcrypt verification, so failures cannot be produced faster than the cores verify hashes:
//! that bounds both the guessing rate and the growth of the counter table. A blocked key costs
//! no bcrypt at all.

use std::net::IpAddr;

use actix_web::web;

use crate::db::DbConnection;
use crate::glue_application::error::GlueError;
use crate::oauth_agent_connector::Password;
use crate::security_blocker::{Blocked, EntityType};
use crate::state::AppState;

pub enum LoginOutcome<T> {
    Authenticated(T),
    Failed,
    Blocked(Blocked),
}

/// Checks the blocker, looks the user up (`lookup` returns the user and its bcrypt hash, if
/// any), verifies `password`, and counts a failure. `password: None` (missing or malformed)
/// always fails, after the same work.
pub async fn password_grant<T, F>(
    state: &web::Data<AppState>,
    entity: EntityType,
    ip: Option<IpAddr>,
    username: String,
    password: Option<Password>,
    lookup: F,
) -> Result<LoginOutcome<T>, GlueError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection, &str) -> diesel::QueryResult<Option<(T, Option<String>)>>
        + Send
        + 'static,
{
    let checking = state.clone();
    let name = username.clone();
    let looked_up = web::block(move || -> Result<_, GlueError> {
        let mut conn = checking.pool.get()?;
        if let Some(blocked) = checking
            .security_blocker
            .check(&mut conn, entity, ip, &name)?
        {
            return Ok(Err(blocked));
        }
        if name.trim().is_empty() {
            return Ok(Ok(None));
        }
        Ok(Ok(lookup(&mut conn, &name)?))
    })
    .await??;
    let found = match looked_up {
        Err(blocked) => return Ok(LoginOutcome::Blocked(blocked)),
        Ok(found) => found,
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let matched = match password {
        Some(password) => state.passwords.verify(password.into_inner(), hash).await?,
        None => {
            // Same cost as a wrong password.
            state.passwords.verify(String::new(), None).await?;
            false
        }
    };
    match user {
        Some(user) if matched => Ok(LoginOutcome::Authenticated(user)),
        _ => {
            let counting = state.clone();
            web::block(move || -> Result<(), GlueError> {
                let mut conn = counting.pool.get()?;
                Ok(counting
                    .security_blocker
                    .record_failure(&mut conn, entity, ip, &username)?)
            })
            .await??;
            Ok(LoginOutcome::Failed)
        }
    }
}
