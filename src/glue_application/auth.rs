//! Bearer authentication (Spryker's `OauthApi` access-token validation and
//! `AgentAuthRestApi`'s agent-token check), as extractors every resource module can use.
//!
//! The core middleware verifies `Authorization` on every Glue route: a present but invalid
//! header is 401/`001` even on public routes, as in Spryker; a valid one is kept in the request
//! extensions. `X-Agent-Authorization` is checked only where an agent is required.

use std::future::{ready, Ready};

use actix_web::http::StatusCode;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};

use super::error::GlueError;
use crate::oauth::jwt::VerifiedToken;
use crate::oauth::SCOPE_AGENT;
use crate::state::AppState;

pub const CODE_INVALID_ACCESS_TOKEN: &str = "001";
pub const CODE_MISSING_ACCESS_TOKEN: &str = "002";
pub const DETAIL_INVALID_ACCESS_TOKEN: &str = "Invalid access token.";
pub const DETAIL_MISSING_ACCESS_TOKEN: &str = "Missing access token.";

pub const CODE_AGENT_TOKEN_INVALID: &str = "4102";
pub const CODE_AGENT_ONLY: &str = "4103";
pub const DETAIL_AGENT_TOKEN_INVALID: &str = "Agent access token is invalid.";
pub const DETAIL_AGENT_ONLY: &str = "Action is available to agent user only.";

pub const AGENT_AUTHORIZATION: &str = "x-agent-authorization";

pub fn invalid_access_token() -> GlueError {
    GlueError::one(
        StatusCode::UNAUTHORIZED,
        Some(CODE_INVALID_ACCESS_TOKEN),
        DETAIL_INVALID_ACCESS_TOKEN,
    )
}

pub fn missing_access_token() -> GlueError {
    GlueError::one(
        StatusCode::FORBIDDEN,
        Some(CODE_MISSING_ACCESS_TOKEN),
        DETAIL_MISSING_ACCESS_TOKEN,
    )
}

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

/// Splits `Bearer <token>` into the token: exactly two whitespace-separated parts, the first
/// `Bearer` in any case.
pub fn parse_bearer(value: &str) -> Option<&str> {
    let mut parts = value.split_whitespace();
    let (scheme, token) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token)
}

/// Counts whitespace-separated parts of a header value (Spryker's 4102 rule needs two).
pub fn part_count(value: &str) -> usize {
    value.split_whitespace().count()
}

/// The verified `Authorization` token, stored by the middleware.
#[derive(Debug, Clone)]
pub struct AuthorizationToken(pub VerifiedToken);

/// Checks `Authorization` when present; called by the core middleware for every Glue route.
pub fn authenticate_authorization(req: &HttpRequest, state: &AppState) -> Result<(), GlueError> {
    let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(());
    };
    let token = value
        .to_str()
        .ok()
        .and_then(parse_bearer)
        .ok_or_else(invalid_access_token)?;
    let verified = state
        .oauth
        .verify(token)
        .map_err(|_| invalid_access_token())?;
    req.extensions_mut().insert(AuthorizationToken(verified));
    Ok(())
}

/// Any caller with a valid `Authorization` bearer token; 403/`002` without one.
#[derive(Debug, Clone)]
pub struct Authenticated(pub VerifiedToken);

impl FromRequest for Authenticated {
    type Error = GlueError;
    type Future = Ready<Result<Self, GlueError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<AuthorizationToken>()
                .map(|t| Authenticated(t.0.clone()))
                .ok_or_else(missing_access_token),
        )
    }
}

/// The agent id of the caller, from `X-Agent-Authorization` or from an agent token in
/// `Authorization`. 4102 when `X-Agent-Authorization` holds two parts and an invalid token;
/// 4103 for everything else that is not an agent.
#[derive(Debug, Clone)]
pub struct AgentCaller {
    pub id_agent: i64,
    pub token: VerifiedToken,
}

fn as_agent(token: &VerifiedToken) -> Option<AgentCaller> {
    let id_agent = token.subject.id_agent?;
    if token.actor.is_some() || !token.scopes.iter().any(|s| s == SCOPE_AGENT) {
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
        if part_count(text) == 2 {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| GlueError::internal("application state missing"))?;
            let token = parse_bearer(text).ok_or_else(agent_token_invalid)?;
            let verified = state
                .oauth
                .verify(token)
                .map_err(|_| agent_token_invalid())?;
            return as_agent(&verified).ok_or_else(agent_only);
        }
    }
    req.extensions()
        .get::<AuthorizationToken>()
        .and_then(|t| as_agent(&t.0))
        .ok_or_else(agent_only)
}
