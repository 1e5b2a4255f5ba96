//! The `agent_credentials` grant (Spryker's `OauthAgentConnector`): finds an active agent by
//! username and verifies the password, spending one bcrypt verification whether or not the
//! agent exists, behind the security blocker.

use std::fmt;

use std::net::IpAddr;

use actix_web::web;

use crate::agent;
use crate::glue_application::error::GlueError;
use crate::oauth::grant::{password_grant, LoginOutcome};
use crate::security_blocker::EntityType;
use crate::state::AppState;

/// A username as sent: a non-blank JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(value: Option<&str>) -> Option<Self> {
        value
            .filter(|v| !v.trim().is_empty())
            .map(|v| Username(v.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as sent: a non-empty JSON string. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(value: Option<&str>) -> Option<Self> {
        value
            .filter(|v| !v.is_empty())
            .map(|v| Password(v.to_string()))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Logs an agent in: the active agent named `username` whose password matches, after the
/// security blocker's check; every failure is counted and costs one bcrypt verification.
pub async fn authenticate(
    state: &web::Data<AppState>,
    ip: Option<IpAddr>,
    username: Option<Username>,
    password: Option<Password>,
) -> Result<LoginOutcome<agent::User>, GlueError> {
    let username = username.map(|u| u.0).unwrap_or_default();
    password_grant(
        state,
        EntityType::Agent,
        ip,
        username,
        password,
        |conn, name| {
            Ok(agent::find_active_agent(conn, name)?.map(|user| {
                let hash = user.password.clone();
                (user, Some(hash))
            }))
        },
    )
    .await
}
