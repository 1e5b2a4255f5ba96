//! Token lifecycle resources (Spryker's `AuthRestApi` + `OauthRevoke`):
//! `POST /refresh-tokens`, `DELETE /refresh-tokens/{refreshToken}` and
//! `DELETE /refresh-tokens/mine`.

pub mod config;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::agent_auth_rest_api::token_resource;
use crate::glue_application::auth::Authenticated;
use crate::glue_application::error::GlueError;
use crate::glue_application::request::RestRequest;
use crate::glue_application::response::created_with_tokens;
use crate::glue_application::ResourceRoutePlugin;
use crate::oauth::refresh_token::{self, Owner};
use crate::oauth::{hash_refresh_token, RefreshRejection};
use crate::state::AppState;
use config::*;

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
        Ok(exchanging.oauth.refresh(&mut conn, &presented)?)
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
