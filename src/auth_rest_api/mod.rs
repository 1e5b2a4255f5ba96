//! Customer login and the token lifecycle (Spryker's `AuthRestApi` + `OauthRevoke`):
//! `POST /access-tokens`, `POST /refresh-tokens`, `DELETE /refresh-tokens/{refreshToken}` and
//! `DELETE /refresh-tokens/mine`.

pub mod config;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::Value;

use crate::glue_application::client_ip::ClientIp;
use crate::glue_application::connection::ClientConnection;
use crate::glue_application::error::{GlueError, RestErrorMessage};
use crate::glue_application::request::RestRequest;
use crate::glue_application::response::created_with_tokens;
use crate::glue_application::{resource, ResourceRoutePlugin};
use crate::login::{LoginAttempt, LoginOutcome, Username};
use crate::oauth_api::{blocked, token_resource, Authenticated};
use crate::password::Password;
use crate::session::{self, RefreshOutcome, Revocation, RevokeTarget};
use crate::state::AppState;
use config::*;

pub struct AccessTokensResourceRoutePlugin;

impl ResourceRoutePlugin for AccessTokensResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            resource(&format!("/{RESOURCE_ACCESS_TOKENS}"), "POST")
                .route(web::post().to(post_access_tokens)),
        );
    }
}

pub struct RefreshTokensResourceRoutePlugin;

impl ResourceRoutePlugin for RefreshTokensResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            resource(&format!("/{RESOURCE_REFRESH_TOKENS}"), "POST")
                .route(web::post().to(post_refresh_tokens)),
        )
        .service(
            resource(
                &format!("/{RESOURCE_REFRESH_TOKENS}/{{refreshToken}}"),
                "DELETE",
            )
            .route(web::delete().to(delete_refresh_tokens)),
        );
    }
}

/// One 422/`901` error per violated field (Spryker's RestRequestValidator format).
fn validation_error(violations: &[(&str, &str)]) -> GlueError {
    GlueError::Rest(
        violations
            .iter()
            .map(|(field, message)| {
                RestErrorMessage::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(CODE_VALIDATION),
                    format!("{field} => {message}"),
                )
            })
            .collect(),
    )
}

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
    ip: ClientIp,
    client: ClientConnection,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    let attributes = body.attributes_of(RESOURCE_ACCESS_TOKENS)?;
    let username = Username::parse(attributes.string("username"));
    let password = Password::parse(attributes.string("password"));
    let mut violations = Vec::new();
    match &username {
        None => violations.push(("username", NOT_BLANK)),
        Some(email) if !crate::customer::is_valid_email(email.as_str()) => {
            violations.push(("username", NOT_AN_EMAIL))
        }
        Some(_) => {}
    }
    if password.is_none() {
        violations.push(("password", NOT_BLANK));
    }
    let (Some(email), Some(password), true) = (username, password, violations.is_empty()) else {
        return Err(validation_error(&violations));
    };
    let attempt = LoginAttempt {
        username: Some(email.clone()),
        password: Some(password),
        ip: ip.0,
        still_wanted: client.still_wanted(),
        mfa_code: None,
    };
    match crate::oauth_customer_connector::authenticate(&state.services, attempt).await? {
        LoginOutcome::Issued { user, tokens } => {
            log::info!(
                target: "security",
                "Successful Login (Customer) customer_reference={:?} ip={ip}",
                user.customer_reference
            );
            Ok(created_with_tokens(&token_resource(
                state.settings.base_url(),
                RESOURCE_ACCESS_TOKENS,
                tokens,
            )))
        }
        LoginOutcome::Blocked(refused) => {
            log::warn!(target: "security", "Blocked Login (Customer) username={:?} ip={ip}", email.as_str());
            Err(blocked(refused))
        }
        // Customers' logins ask for no second factor (theirs is Spryker's storefront's).
        LoginOutcome::InvalidCredentials | LoginOutcome::SecondFactor(_) => {
            log::warn!(target: "security", "Failed Login (Customer) username={:?} ip={ip}", email.as_str());
            Err(invalid_login())
        }
    }
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
    ip: ClientIp,
    client: ClientConnection,
    body: RestRequest,
) -> Result<HttpResponse, GlueError> {
    let attributes = body.attributes_of(RESOURCE_REFRESH_TOKENS)?;
    let presented = match attributes.0.get("refreshToken") {
        None | Some(Value::Null) => return Err(validation_error(&[("refreshToken", NOT_BLANK)])),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(validation_error(&[("refreshToken", NOT_BLANK)]))
        }
        Some(Value::String(s)) => s.clone(),
        // Present but not a string: not blank, and no token either.
        Some(_) => return Err(refresh_failed()),
    };
    let still_wanted = client.still_wanted();
    match session::refresh(&state.services, presented, ip.0, still_wanted).await? {
        RefreshOutcome::Rotated(tokens) => Ok(created_with_tokens(&token_resource(
            state.settings.base_url(),
            RESOURCE_REFRESH_TOKENS,
            tokens,
        ))),
        RefreshOutcome::Reused => {
            log::warn!(target: "security", "Refresh token reuse detected: token family revoked");
            Err(refresh_failed())
        }
        RefreshOutcome::Rejected(_) => Err(refresh_failed()),
        RefreshOutcome::Blocked(refused) => {
            log::warn!(target: "security", "Blocked PHP refresh token exchange ip={ip}");
            Err(blocked(refused))
        }
    }
}

/// Always 204: whether anything was revoked is nobody else's business.
async fn delete_refresh_tokens(
    state: web::Data<AppState>,
    caller: Authenticated,
    ip: ClientIp,
    client: ClientConnection,
    path: web::Path<String>,
) -> Result<HttpResponse, GlueError> {
    let target = match path.into_inner() {
        mine if mine == REFRESH_TOKEN_MINE => RevokeTarget::Mine,
        token => RevokeTarget::Token(token),
    };
    let still_wanted = client.still_wanted();
    match session::revoke(
        &state.services,
        caller.0.identity,
        target,
        ip.0,
        still_wanted,
    )
    .await?
    {
        Revocation::Done => Ok(HttpResponse::NoContent().finish()),
        Revocation::Blocked(refused) => Err(blocked(refused)),
    }
}
