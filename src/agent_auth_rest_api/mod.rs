//! Agent assist resources (Spryker's `AgentAuthRestApi`): `POST /agent-access-tokens`,
//! `GET /agent-customer-search`, `POST /agent-customer-impersonation-access-tokens`, and the
//! agent-token extractor ([`caller::AgentCaller`]) with its codes 4102/4103.

pub mod caller;
pub mod config;
pub mod customer_search;
pub mod impersonation;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::glue_application::client_ip::ClientIp;
use crate::glue_application::connection::ClientConnection;
use crate::glue_application::error::GlueError;
use crate::glue_application::request::RestRequest;
use crate::glue_application::response::created_with_tokens;
use crate::glue_application::{resource, ResourceRoutePlugin};
use crate::login::{LoginAttempt, LoginOutcome, Username};
use crate::multi_factor_auth::SecondFactor;
use crate::oauth_api::{blocked, token_resource};
use crate::password::Password;
use crate::state::AppState;
use config::*;

pub struct AgentAccessTokensResourceRoutePlugin;

impl ResourceRoutePlugin for AgentAccessTokensResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            resource(&format!("/{RESOURCE_AGENT_ACCESS_TOKENS}"), "POST")
                .route(web::post().to(post_agent_access_tokens)),
        )
        .service(
            resource(&format!("/{RESOURCE_AGENT_CUSTOMER_SEARCH}"), "GET")
                .route(web::get().to(customer_search::get_agent_customer_search)),
        )
        .service(
            resource(
                &format!("/{RESOURCE_AGENT_CUSTOMER_IMPERSONATION_ACCESS_TOKENS}"),
                "POST",
            )
            .route(web::post().to(impersonation::post_impersonation_access_tokens)),
        );
    }
}

fn authentication_failed() -> GlueError {
    GlueError::one(
        StatusCode::UNAUTHORIZED,
        Some(CODE_AGENT_AUTHENTICATION_FAILED),
        DETAIL_AGENT_AUTHENTICATION_FAILED,
    )
}

async fn post_agent_access_tokens(
    request: HttpRequest,
    state: web::Data<AppState>,
    ip: ClientIp,
    client: ClientConnection,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    let attributes = body.attributes_of(RESOURCE_AGENT_ACCESS_TOKENS)?;
    let username_for_log = attributes.string("username").unwrap_or("").to_string();
    let attempt = LoginAttempt {
        username: Username::parse(attributes.string("username")),
        password: Password::parse(attributes.string("password")),
        ip: ip.0,
        still_wanted: client.still_wanted(),
        mfa_code: mfa_code(&request),
    };
    match crate::oauth_agent_connector::authenticate(&state.services, attempt).await? {
        LoginOutcome::Issued { user, tokens } => {
            log::info!(target: "security", "Successful Login (Agent) username={:?} id_agent={} ip={ip}", user.username, user.id_user);
            Ok(created_with_tokens(&token_resource(
                state.settings.base_url(),
                RESOURCE_AGENT_ACCESS_TOKENS,
                tokens,
            )))
        }
        LoginOutcome::Blocked(refused) => {
            log::warn!(target: "security", "Blocked Login (Agent) username={username_for_log:?} ip={ip}");
            Err(blocked(refused))
        }
        LoginOutcome::InvalidCredentials => {
            log::warn!(target: "security", "Failed Login (Agent) username={username_for_log:?} ip={ip}");
            Err(authentication_failed())
        }
        LoginOutcome::SecondFactor(refused) => {
            let (code, detail) = match refused {
                SecondFactor::Missing => (CODE_MFA_CODE_MISSING, DETAIL_MFA_CODE_MISSING),
                SecondFactor::Invalid => (CODE_MFA_CODE_INVALID, DETAIL_MFA_CODE_INVALID),
                _ => (CODE_MFA_TYPE_MISSING, DETAIL_MFA_TYPE_MISSING),
            };
            log::warn!(target: "security", "Second factor refused (Agent) code={code} username={username_for_log:?} ip={ip}");
            Err(GlueError::one(StatusCode::FORBIDDEN, Some(code), detail))
        }
    }
}

/// The `X-MFA-Code` header: its value when it is one (a code is digits; anything else, or a
/// header that is not text, is a wrong code, not a missing one).
pub fn mfa_code(request: &HttpRequest) -> Option<String> {
    request.headers().get(MFA_CODE_HEADER).map(|value| {
        value
            .to_str()
            .map(|code| code.trim().chars().take(16).collect())
            .unwrap_or_default()
    })
}
