//! The `agent_credentials` grant (Spryker's `OauthAgentConnector`): finds an active agent by
//! username and verifies the password, spending one bcrypt verification whether or not the
//! agent exists.

use std::fmt;

use actix_web::web;

use crate::agent;
use crate::glue_application::error::GlueError;
use crate::glue_application::request::Attributes;
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

/// `username` + `password` attributes, both non-empty strings.
#[derive(Debug, Clone)]
pub struct AgentCredentials {
    pub username: Username,
    pub password: Password,
}

impl AgentCredentials {
    /// `None` when either field is missing, empty or not a string.
    pub fn parse(attributes: &Attributes) -> Option<Self> {
        Some(AgentCredentials {
            username: Username::parse(attributes.string("username"))?,
            password: Password::parse(attributes.string("password"))?,
        })
    }
}

/// The agent if the credentials are right and the agent is active; `None` otherwise.
pub async fn authenticate(
    state: &AppState,
    credentials: AgentCredentials,
) -> Result<Option<agent::User>, GlueError> {
    let pool = state.pool.clone();
    let username = credentials.username.clone();
    let user = web::block(move || -> Result<_, GlueError> {
        let mut conn = pool.get()?;
        Ok(agent::find_active_agent(&mut conn, username.as_str())?)
    })
    .await??;
    let hash = user.as_ref().map(|u| u.password.clone());
    let matched = state
        .passwords
        .verify(credentials.password.into_inner(), hash)
        .await?;
    Ok(user.filter(|_| matched))
}
