//! Agents' own second factor on the API (Spryker's `MultiFactorAuth` Glue resources with the
//! `agent-` prefix: the unprefixed ones are Spryker's customer resources, which a shop keeps
//! routing to PHP Glue): `GET /agent-multi-factor-auth-types`, `POST
//! /agent-multi-factor-auth-type-activate` (answers the `otpauth://` URI once), `POST
//! /agent-multi-factor-auth-type-verify` and `POST /agent-multi-factor-auth-type-deactivate`
//! (both with `X-MFA-Code`); the agent token in `X-Agent-Authorization`.

pub mod config;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::agent_auth_rest_api::caller::AgentCaller;
use crate::agent_auth_rest_api::mfa_code;
use crate::db;
use crate::glue_application::client_ip::ClientIp;
use crate::glue_application::error::GlueError;
use crate::glue_application::request::RestRequest;
use crate::glue_application::response::{
    created_with_tokens, json_api, resource_link, RestResource,
};
use crate::glue_application::{resource, ResourceRoutePlugin};
use crate::oauth_api::blocked;
use crate::second_factor::{self, CodeCheck, Enrolment, MethodStatus};
use crate::state::AppState;
use config::*;

pub struct AgentMultiFactorAuthResourceRoutePlugin;

impl ResourceRoutePlugin for AgentMultiFactorAuthResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(resource(&format!("/{RESOURCE_TYPES}"), "GET").route(web::get().to(get_types)))
            .service(
                resource(&format!("/{RESOURCE_ACTIVATE}"), "POST")
                    .route(web::post().to(post_activate)),
            )
            .service(
                resource(&format!("/{RESOURCE_VERIFY}"), "POST").route(web::post().to(post_verify)),
            )
            .service(
                resource(&format!("/{RESOURCE_DEACTIVATE}"), "POST")
                    .route(web::post().to(post_deactivate)),
            );
    }
}

fn error(status: StatusCode, code: &'static str, detail: &'static str) -> GlueError {
    GlueError::one(status, Some(code), detail)
}

fn type_not_found() -> GlueError {
    error(
        StatusCode::BAD_REQUEST,
        CODE_TYPE_NOT_FOUND,
        DETAIL_TYPE_NOT_FOUND,
    )
}

fn status_number(status: MethodStatus) -> i32 {
    match status {
        MethodStatus::Inactive => 0,
        MethodStatus::Pending => 1,
        MethodStatus::Active => 2,
    }
}

/// The caller's token must still be live (logout, deactivation, PHP Glue's token of an agent
/// with a method end it).
async fn ensure_live(state: &web::Data<AppState>, agent: &AgentCaller) -> Result<(), GlueError> {
    let oauth = state.services.oauth.clone();
    let mfa = state.services.mfa.clone();
    let agent = agent.clone();
    db::run(&state.services.pool, move |conn| {
        agent.ensure_active(conn, &oauth, &mfa)
    })
    .await
}

/// The method the body names: only `totp` is served (Spryker's `email` is its storefront's).
fn totp_of(body: RestRequest, resource_type: &str) -> Result<(), GlueError> {
    let attributes = body.attributes_of(resource_type)?;
    match attributes.string("type") {
        Some(TYPE_TOTP) => Ok(()),
        _ => Err(type_not_found()),
    }
}

fn code_of(request: &HttpRequest) -> Result<String, GlueError> {
    mfa_code(request).ok_or_else(|| {
        error(
            StatusCode::FORBIDDEN,
            CODE_CODE_MISSING,
            DETAIL_CODE_MISSING,
        )
    })
}

/// Checks the request's code; `Ok` when it is right now.
async fn checked_code(
    state: &web::Data<AppState>,
    agent: &AgentCaller,
    ip: &ClientIp,
    request: &HttpRequest,
) -> Result<(), GlueError> {
    let code = code_of(request)?;
    match second_factor::check_code(&state.services, agent.id_agent, ip.0, code).await? {
        CodeCheck::Accepted => Ok(()),
        CodeCheck::Invalid => {
            log::warn!(target: "security", "Second factor refused (Agent) id_agent={} ip={ip}", agent.id_agent);
            Err(error(
                StatusCode::FORBIDDEN,
                CODE_CODE_INVALID,
                DETAIL_CODE_INVALID,
            ))
        }
        CodeCheck::Blocked(refused) => Err(blocked(refused)),
    }
}

async fn get_types(
    state: web::Data<AppState>,
    request: HttpRequest,
    agent: AgentCaller,
) -> Result<HttpResponse, GlueError> {
    ensure_live(&state, &agent).await?;
    let methods = second_factor::methods(&state.services, agent.id_agent).await?;
    let base = state.settings.base_url();
    let items: Vec<_> = methods
        .into_iter()
        .map(|(method, status)| {
            RestResource::new(
                base,
                RESOURCE_TYPES,
                Some(method.name().to_string()),
                json!({"type": method.name(), "status": status_number(status)}),
                "",
            )
        })
        .collect();
    Ok(json_api(
        StatusCode::OK,
        &json!({
            "data": items,
            "links": {"self": resource_link(base, RESOURCE_TYPES, request.query_string())},
        }),
    ))
}

async fn post_activate(
    state: web::Data<AppState>,
    agent: AgentCaller,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    totp_of(body, RESOURCE_ACTIVATE)?;
    ensure_live(&state, &agent).await?;
    let issuer = state.settings.oauth.mfa_issuer.clone();
    match second_factor::enrol(&state.services, agent.id_agent, issuer).await? {
        // Carries the secret: never cached.
        Some(Enrolment::Pending(uri)) => Ok(created_with_tokens(&RestResource::new(
            state.settings.base_url(),
            RESOURCE_ACTIVATE,
            Some(TYPE_TOTP.to_string()),
            json!({"type": TYPE_TOTP, "status": 1, "otpauthUri": uri}),
            "",
        ))),
        Some(Enrolment::Unavailable) => Err(type_not_found()),
        Some(Enrolment::AlreadyActive) => Err(error(
            StatusCode::BAD_REQUEST,
            CODE_ALREADY_ACTIVE,
            DETAIL_ALREADY_ACTIVE,
        )),
        None => Err(crate::agent_auth_rest_api::caller::agent_token_invalid()),
    }
}

async fn post_verify(
    state: web::Data<AppState>,
    request: HttpRequest,
    ip: ClientIp,
    agent: AgentCaller,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    totp_of(body, RESOURCE_VERIFY)?;
    ensure_live(&state, &agent).await?;
    if second_factor::status(&state.services, agent.id_agent).await? == MethodStatus::Inactive {
        return Err(type_not_found());
    }
    checked_code(&state, &agent, &ip, &request).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn post_deactivate(
    state: web::Data<AppState>,
    request: HttpRequest,
    ip: ClientIp,
    agent: AgentCaller,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    totp_of(body, RESOURCE_DEACTIVATE)?;
    ensure_live(&state, &agent).await?;
    let pending_only = match second_factor::status(&state.services, agent.id_agent).await? {
        MethodStatus::Inactive => return Err(type_not_found()),
        // An active method goes only with a current code; a pending one protects nothing yet
        // (and only a pending one goes without a code, should a login activate it meanwhile).
        MethodStatus::Active => {
            checked_code(&state, &agent, &ip, &request).await?;
            false
        }
        MethodStatus::Pending => true,
    };
    if !second_factor::remove(&state.services, agent.id_agent, pending_only).await? {
        return Err(type_not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}
