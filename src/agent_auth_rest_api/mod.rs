//! Agent assist resources (Spryker's `AgentAuthRestApi`): `POST /agent-access-tokens`,
//! `GET /agent-customer-search`, `POST /agent-customer-impersonation-access-tokens`.

pub mod config;
pub mod customer_search;
pub mod impersonation;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::glue_application::error::GlueError;
use crate::glue_application::error::RestErrorMessage;
use crate::glue_application::request::RestRequest;
use crate::glue_application::response::{created_with_tokens, RestResource, TokenAttributes};
use crate::glue_application::ResourceRoutePlugin;
use crate::oauth::grant::LoginOutcome;
use crate::oauth::jwt::UserIdentifier;
use crate::oauth::{Grant, IssuedTokens, SCOPE_AGENT, TOKEN_TYPE};
use crate::oauth_agent_connector::{self, Password, Username};
use crate::security_blocker::{Blocked, CODE_BLOCKED};
use crate::state::AppState;
use config::*;

pub struct AgentAccessTokensResourceRoutePlugin;

impl ResourceRoutePlugin for AgentAccessTokensResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            crate::glue_application::resource(&format!("/{RESOURCE_AGENT_ACCESS_TOKENS}"))
                .route(web::post().to(post_agent_access_tokens)),
        )
        .service(
            crate::glue_application::resource(&format!("/{RESOURCE_AGENT_CUSTOMER_SEARCH}"))
                .route(web::get().to(customer_search::get_agent_customer_search)),
        )
        .service(
            crate::glue_application::resource(&format!(
                "/{RESOURCE_AGENT_CUSTOMER_IMPERSONATION_ACCESS_TOKENS}"
            ))
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

/// Refuses a token whose agent was deactivated (or deleted) after it logged in: 401/`4102`.
pub fn ensure_active_agent(
    conn: &mut crate::db::DbConnection,
    id_agent: i64,
) -> Result<(), GlueError> {
    match crate::agent::find_active_agent_by_id(conn, id_agent)? {
        Some(_) => Ok(()),
        None => Err(crate::glue_application::auth::agent_token_invalid()),
    }
}

/// The token resource every token endpoint answers with.
pub fn token_resource(
    state: &AppState,
    resource_type: &'static str,
    tokens: IssuedTokens,
) -> RestResource {
    RestResource::new(
        state.settings.base_url(),
        resource_type,
        None,
        TokenAttributes {
            token_type: TOKEN_TYPE,
            expires_in: tokens.expires_in,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        },
        "",
    )
}

/// 429/`4401` for a blocked key, with `Retry-After`.
pub fn blocked(blocked: Blocked) -> GlueError {
    GlueError::Throttled {
        error: RestErrorMessage::new(
            StatusCode::TOO_MANY_REQUESTS,
            Some(CODE_BLOCKED),
            blocked.detail(),
        ),
        retry_after_s: blocked.retry_after_s,
    }
}

async fn post_agent_access_tokens(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    let attributes = body.attributes_of(RESOURCE_AGENT_ACCESS_TOKENS)?;
    let ip = state.trusted_proxies.client_ip(&req);
    let ip_text = crate::glue_application::client_ip::display(ip);
    let username = Username::parse(attributes.string("username"));
    let username_for_log = attributes.string("username").unwrap_or("").to_string();
    let password = Password::parse(attributes.string("password"));

    let agent = match oauth_agent_connector::authenticate(&state, ip, username, password).await? {
        LoginOutcome::Authenticated(agent) => agent,
        LoginOutcome::Blocked(refused) => {
            log::warn!(target: "security", "Blocked Login (Agent) username={username_for_log:?} ip={ip_text}");
            return Err(blocked(refused));
        }
        LoginOutcome::Failed => {
            log::warn!(target: "security", "Failed Login (Agent) username={username_for_log:?} ip={ip_text}");
            return Err(authentication_failed());
        }
    };

    let issuing = state.clone();
    let id_agent = agent.id_user;
    let tokens = web::block(move || -> Result<IssuedTokens, GlueError> {
        let mut conn = issuing.pool.get()?;
        let grant = Grant {
            subject: UserIdentifier::agent(id_agent),
            scopes: vec![SCOPE_AGENT.to_string()],
            actor: None,
        };
        let tokens = issuing.oauth.issue(&mut conn, &grant)?;
        crate::agent::touch_last_login(&mut conn, id_agent)?;
        Ok(tokens)
    })
    .await??;
    log::info!(target: "security", "Successful Login (Agent) username={:?} id_agent={id_agent} ip={ip_text}", agent.username);
    Ok(created_with_tokens(&token_resource(
        &state,
        RESOURCE_AGENT_ACCESS_TOKENS,
        tokens,
    )))
}
