//! Customer login and the token lifecycle (Spryker's `AuthRestApi` + `OauthRevoke`):
//! `POST /access-tokens`, `POST /refresh-tokens`, `DELETE /refresh-tokens/{refreshToken}` and
//! `DELETE /refresh-tokens/mine`.

pub mod config;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::agent_auth_rest_api::{blocked, token_resource};
use crate::glue_application::auth::Authenticated;
use crate::glue_application::error::GlueError;
use crate::glue_application::request::RestRequest;
use crate::glue_application::response::created_with_tokens;
use crate::glue_application::ResourceRoutePlugin;
use crate::oauth::grant::LoginOutcome;
use crate::oauth::jwt::UserIdentifier;
use crate::oauth::refresh_token::{self, Owner};
use crate::oauth::{hash_refresh_token, Grant, IssuedTokens, RefreshRejection, SCOPE_CUSTOMER};
use crate::oauth_agent_connector::Password;
use crate::state::AppState;
use config::*;

pub struct AccessTokensResourceRoutePlugin;

impl ResourceRoutePlugin for AccessTokensResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            crate::glue_application::resource(&format!("/{RESOURCE_ACCESS_TOKENS}"))
                .route(web::post().to(post_access_tokens)),
        );
    }
}

pub struct RefreshTokensResourceRoutePlugin;

impl ResourceRoutePlugin for RefreshTokensResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            crate::glue_application::resource(&format!("/{RESOURCE_REFRESH_TOKENS}"))
                .route(web::post().to(post_refresh_tokens)),
        )
        .service(
            crate::glue_application::resource(&format!(
                "/{RESOURCE_REFRESH_TOKENS}/{{refreshToken}}"
            ))
            .route(web::delete().to(delete_refresh_tokens)),
        );
    }
}

/// One 422/`901` error per violated field (Spryker's RestRequestValidator format).
pub fn validation_error(violations: &[(&str, &str)]) -> GlueError {
    GlueError::Rest(
        violations
            .iter()
            .map(|(field, message)| {
                crate::glue_application::error::RestErrorMessage::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(CODE_VALIDATION),
                    format!("{field} => {message}"),
                )
            })
            .collect(),
    )
}

pub const NOT_BLANK: &str = "This value should not be blank.";
pub const NOT_AN_EMAIL: &str = "This value is not a valid email address.";

fn invalid_login() -> GlueError {
    GlueError::one(
        StatusCode::UNAUTHORIZED,
        Some(CODE_INVALID_LOGIN),
        DETAIL_INVALID_LOGIN,
    )
}

/// Customer login: 422/`901` per violated field (all together), 401/`003` for wrong
/// credentials, 201 `access-tokens` with scopes `["customer"]`.
async fn post_access_tokens(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    let attributes = body.attributes_of(RESOURCE_ACCESS_TOKENS)?;
    let username = attributes.string("username").unwrap_or("");
    let password = Password::parse(attributes.string("password"));
    let mut violations = Vec::new();
    if username.trim().is_empty() {
        violations.push(("username", NOT_BLANK));
    } else if !crate::customer::is_valid_email(username) {
        violations.push(("username", NOT_AN_EMAIL));
    }
    if password.is_none() {
        violations.push(("password", NOT_BLANK));
    }
    let Some(password) = password.filter(|_| violations.is_empty()) else {
        return Err(validation_error(&violations));
    };
    let ip = state.trusted_proxies.client_ip(&req);
    let ip_text = crate::glue_application::client_ip::display(ip);
    let email = username.to_string();
    let customer = match crate::oauth_customer_connector::authenticate(
        &state,
        ip,
        email.clone(),
        password,
    )
    .await?
    {
        LoginOutcome::Authenticated(customer) => customer,
        LoginOutcome::Blocked(refused) => {
            log::warn!(target: "security", "Blocked Login (Customer) username={email:?} ip={ip_text}");
            return Err(blocked(refused));
        }
        LoginOutcome::Failed => {
            log::warn!(target: "security", "Failed Login (Customer) username={email:?} ip={ip_text}");
            return Err(invalid_login());
        }
    };
    let issuing = state.clone();
    let grant = Grant {
        subject: UserIdentifier::customer(
            customer.customer_reference.clone(),
            customer.id_customer,
        ),
        scopes: vec![SCOPE_CUSTOMER.to_string()],
        actor: None,
    };
    let tokens = web::block(move || -> Result<IssuedTokens, GlueError> {
        let mut conn = issuing.pool.get()?;
        Ok(issuing.oauth.issue(&mut conn, &grant)?)
    })
    .await??;
    log::info!(
        target: "security",
        "Successful Login (Customer) customer_reference={:?} ip={ip_text}",
        customer.customer_reference
    );
    Ok(created_with_tokens(&token_resource(
        &state,
        RESOURCE_ACCESS_TOKENS,
        tokens,
    )))
}

fn refresh_failed() -> GlueError {
    GlueError::one(
        StatusCode::UNAUTHORIZED,
        Some(CODE_REFRESH_FAILED),
        DETAIL_REFRESH_FAILED,
    )
}

async fn post_refresh_tokens(
    state: web::Data<AppState>,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    let attributes = body.attributes_of(RESOURCE_REFRESH_TOKENS)?;
    let presented = match attributes.0.get("refreshToken") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(Some(s.clone())),
        // Present but not a string: not blank, and no token either.
        Some(_) => Some(None),
    };
    let Some(presented) = presented else {
        return Err(validation_error(&[("refreshToken", NOT_BLANK)]));
    };
    let Some(presented) = presented else {
        return Err(refresh_failed());
    };
    let exchanging = state.clone();
    let outcome = web::block(move || -> Result<_, GlueError> {
        let mut conn = exchanging.pool.get()?;
        Ok(exchanging
            .oauth
            .refresh(&mut conn, &presented, agents_still_active)?)
    })
    .await??;
    match outcome {
        Ok(tokens) => Ok(created_with_tokens(&token_resource(
            &state,
            RESOURCE_REFRESH_TOKENS,
            tokens,
        ))),
        Err(reason) => {
            if reason == RefreshRejection::Reused {
                log::warn!(target: "security", "Refresh token reuse detected: token family revoked");
            }
            Err(refresh_failed())
        }
    }
}

/// False if the token belongs to, or acts for, an agent who was deactivated since logging in.
fn agents_still_active(
    conn: &mut crate::db::DbConnection,
    grant: &Grant,
) -> diesel::QueryResult<bool> {
    let acting = grant
        .actor
        .as_deref()
        .and_then(|actor| serde_json::from_str::<UserIdentifier>(actor).ok())
        .and_then(|actor| actor.id_agent);
    for id_agent in [grant.subject.id_agent, acting].into_iter().flatten() {
        if crate::agent::find_active_agent_by_id(conn, id_agent)?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Always 204: whether anything was revoked is nobody else's business.
async fn delete_refresh_tokens(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, GlueError> {
    let target = path.into_inner();
    let token = caller.0;
    web::block(move || -> Result<(), GlueError> {
        let mut conn = state.pool.get()?;
        let owner = Owner {
            user_identifier: &token.subject_json,
            actor_identifier: token.actor.as_ref().map(|a| a.sub.as_str()),
        };
        if target == REFRESH_TOKEN_MINE {
            refresh_token::revoke_all_owned_by(&mut conn, owner)?;
        } else {
            refresh_token::revoke_family_owned_by(&mut conn, &hash_refresh_token(&target), owner)?;
        }
        Ok(())
    })
    .await??;
    Ok(HttpResponse::NoContent().finish())
}
