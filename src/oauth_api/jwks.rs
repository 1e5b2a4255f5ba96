//! `GET /.well-known/jwks.json`: the public keys that verify our access tokens (RFC 7517), so
//! any standard JWT library can check a token without sharing a secret with us.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};

use crate::glue_application::response::json_api;
use crate::glue_application::{operational_resource, ResourceRoutePlugin};
use crate::state::AppState;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";

pub struct JwksResourceRoutePlugin;

impl ResourceRoutePlugin for JwksResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(operational_resource(JWKS_PATH).route(web::get().to(get_jwks)));
    }
}

async fn get_jwks(state: web::Data<AppState>) -> HttpResponse {
    let mut response = json_api(StatusCode::OK, &state.oauth.keys.jwks());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=300"),
    );
    response
}
