//! `POST /agent-customer-impersonation-access-tokens` (Spryker's
//! `AgentCustomerImpersonationAccessTokensResource`): an agent gets a customer token pair whose
//! `act` claim names the agent (RFC 8693), so every action taken with it is traceable.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::caller::AgentCaller;
use super::config::*;
use crate::db;
use crate::glue_application::client_ip::ClientIp;
use crate::glue_application::error::GlueError;
use crate::glue_application::request::RestRequest;
use crate::glue_application::response::created_with_tokens;
use crate::oauth_api::token_resource;
use crate::oauth_customer_connector::impersonate;
use crate::state::AppState;

fn impersonation_failed() -> GlueError {
    GlueError::one(
        StatusCode::UNAUTHORIZED,
        Some(CODE_IMPERSONATION_FAILED),
        DETAIL_IMPERSONATION_FAILED,
    )
}

pub async fn post_impersonation_access_tokens(
    state: web::Data<AppState>,
    ip: ClientIp,
    agent: AgentCaller,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    let attributes = body.attributes_of(RESOURCE_AGENT_CUSTOMER_IMPERSONATION_ACCESS_TOKENS)?;
    let Some(reference) = attributes
        .non_blank_string("customerReference")
        .map(str::to_string)
    else {
        return Err(impersonation_failed());
    };
    let oauth = state.services.oauth.clone();
    let mfa = state.services.mfa.clone();
    let acting = agent.clone();
    let (customer, tokens) = db::run(&state.services.pool, move |conn| -> Result<_, GlueError> {
        acting.ensure_active(conn, &oauth, &mfa)?;
        impersonate(conn, &oauth, acting.id_agent, &reference)?.ok_or_else(impersonation_failed)
    })
    .await?;
    log::info!(
        target: "security",
        "Customer Impersonation (Agent) id_agent={} customer_reference={:?} id_customer={} ip={ip}",
        agent.id_agent,
        customer.customer_reference,
        customer.id_customer
    );
    Ok(created_with_tokens(&token_resource(
        state.settings.base_url(),
        RESOURCE_AGENT_CUSTOMER_IMPERSONATION_ACCESS_TOKENS,
        tokens,
    )))
}
