//! `POST /agent-customer-impersonation-access-tokens` (Spryker's
//! `AgentCustomerImpersonationAccessTokensResource`): an agent gets a customer token pair whose
//! `act` claim names the agent (RFC 8693), so every action taken with it is traceable.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::config::*;
use super::{ensure_active_agent, token_resource};
use crate::customer;
use crate::glue_application::auth::AgentCaller;
use crate::glue_application::error::GlueError;
use crate::glue_application::request::RestRequest;
use crate::glue_application::response::created_with_tokens;
use crate::oauth::jwt::UserIdentifier;
use crate::oauth::{Grant, SCOPE_CUSTOMER, SCOPE_CUSTOMER_IMPERSONATION};
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
    req: HttpRequest,
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
    let issuing = state.clone();
    let id_agent = agent.id_agent;
    let actor = agent.token.subject_json.clone();
    let (tokens, customer) = web::block(move || -> Result<_, GlueError> {
        let mut conn = issuing.pool.get()?;
        ensure_active_agent(&mut conn, id_agent)?;
        let customer =
            customer::find_by_reference(&mut conn, &reference)?.ok_or_else(impersonation_failed)?;
        let grant = Grant {
            subject: UserIdentifier::customer(
                customer.customer_reference.clone(),
                customer.id_customer,
            ),
            scopes: vec![
                SCOPE_CUSTOMER_IMPERSONATION.to_string(),
                SCOPE_CUSTOMER.to_string(),
            ],
            actor: Some(actor),
        };
        Ok((issuing.oauth.issue(&mut conn, &grant)?, customer))
    })
    .await??;
    let ip = crate::glue_application::client_ip::display(state.trusted_proxies.client_ip(&req));
    log::info!(
        target: "security",
        "Customer Impersonation (Agent) id_agent={id_agent} customer_reference={:?} id_customer={} ip={ip}",
        customer.customer_reference,
        customer.id_customer
    );
    Ok(created_with_tokens(&token_resource(
        &state,
        RESOURCE_AGENT_CUSTOMER_IMPERSONATION_ACCESS_TOKENS,
        tokens,
    )))
}
