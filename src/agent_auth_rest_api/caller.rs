//! The agent behind a request (Spryker's `AgentAuthRestApi` agent-token check), as an
//! extractor: from `X-Agent-Authorization`, or from an agent token in `Authorization`.

use std::future::{ready, Ready};

use actix_web::http::StatusCode;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};

use super::config::*;
use crate::db::DbConnection;
use crate::glue_application::error::GlueError;
use crate::oauth::jwt::VerifiedToken;
use crate::oauth::{OAuthServer, SCOPE_AGENT};
use crate::oauth_api::{parse_bearer, AuthorizationToken};
use crate::state::AppState;

pub fn agent_only() -> GlueError {
    GlueError::one(
        StatusCode::UNAUTHORIZED,
        Some(CODE_AGENT_ONLY),
        DETAIL_AGENT_ONLY,
    )
}

pub fn agent_token_invalid() -> GlueError {
    GlueError::one(
        StatusCode::UNAUTHORIZED,
        Some(CODE_AGENT_TOKEN_INVALID),
        DETAIL_AGENT_TOKEN_INVALID,
    )
}

/// The agent id of the caller. 4102 when `X-Agent-Authorization` holds two parts and an
/// invalid token; 4103 for everything else that is not an agent token.
#[derive(Debug, Clone)]
pub struct AgentCaller {
    pub id_agent: i64,
    pub token: VerifiedToken,
}

impl AgentCaller {
    /// Refuses a token whose agent was deactivated (or deleted) after it logged in, or whose
    /// session has ended (logout, reuse, password change): 401/`4102`. Runs inside the route's
    /// own database work.
    pub fn ensure_active(
        &self,
        conn: &mut DbConnection,
        oauth: &OAuthServer,
        mfa: &crate::multi_factor_auth::AgentMfa,
    ) -> Result<(), GlueError> {
        if !crate::session::token_is_live(conn, oauth, mfa, &self.token)? {
            return Err(agent_token_invalid());
        }
        Ok(())
    }
}

fn as_agent(token: &VerifiedToken) -> Option<AgentCaller> {
    let id_agent = token.identity.subject.agent_id()?;
    if token.identity.acting_agent.is_some() || !token.scopes.iter().any(|s| s == SCOPE_AGENT) {
        return None;
    }
    Some(AgentCaller {
        id_agent,
        token: token.clone(),
    })
}

impl FromRequest for AgentCaller {
    type Error = GlueError;
    type Future = Ready<Result<Self, GlueError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(agent_caller(req))
    }
}

fn agent_caller(req: &HttpRequest) -> Result<AgentCaller, GlueError> {
    if let Some(value) = req.headers().get(AGENT_AUTHORIZATION) {
        let text = value.to_str().unwrap_or("");
        // Spryker's rule: only a two-part value is checked as a token (and 4102 if invalid).
        if text.split_whitespace().count() == 2 {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| GlueError::internal("application state missing"))?;
            let token = parse_bearer(text).ok_or_else(agent_token_invalid)?;
            let verified = state.services.oauth.verify(token).map_err(|error| {
                crate::oauth_api::refused_token(&state.services.metrics, token, &error);
                agent_token_invalid()
            })?;
            return as_agent(&verified).ok_or_else(agent_only);
        }
    }
    req.extensions()
        .get::<AuthorizationToken>()
        .and_then(|t| as_agent(&t.0))
        .ok_or_else(agent_only)
}
