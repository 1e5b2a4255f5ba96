//! `GET /.well-known/jwks.json`: the public keys that verify our access tokens (RFC 7517), so
//! any standard JWT library can check a token without sharing a secret with us.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::glue_application::{operational_resource, ResourceRoutePlugin};
use crate::state::AppState;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";

pub struct JwksResourceRoutePlugin;

impl ResourceRoutePlugin for JwksResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            operational_resource(JWKS_PATH, "GET, HEAD")
                .route(web::get().to(get_jwks))
                .route(web::head().to(get_jwks)),
        );
    }
}

/// The key set as `application/json` (RFC 7517 allows `application/jwk-set+json` too; plain
/// JSON is what every client library fetches).
async fn get_jwks(state: web::Data<AppState>) -> HttpResponse {
    let mut response = HttpResponse::Ok().json(state.services.oauth.keys.jwks());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=300"),
    );
    response
}
