//! `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata, so a client configured
//! with nothing but the service's URL finds the issuer to expect in `iss`, the JWK Set that
//! verifies the tokens, and the token endpoints.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::jwks::JWKS_PATH;
use crate::glue_application::{operational_resource, ResourceRoutePlugin};
use crate::state::AppState;

pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

pub struct DiscoveryResourceRoutePlugin;

impl ResourceRoutePlugin for DiscoveryResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            operational_resource(METADATA_PATH, "GET, HEAD")
                .route(web::get().to(get_metadata))
                .route(web::head().to(get_metadata)),
        );
    }
}

async fn get_metadata(state: web::Data<AppState>) -> HttpResponse {
    let base = state.settings.base_url();
    let metadata = json!({
        "issuer": state.services.oauth.settings.issuer,
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        // Glue's token endpoints take JSON:API documents, not form posts: each is named here
        // (glue_*) besides the standard token_endpoint (customer login).
        "token_endpoint": format!("{base}/access-tokens"),
        "glue_agent_token_endpoint": format!("{base}/agent-access-tokens"),
        "glue_impersonation_token_endpoint": format!("{base}/agent-customer-impersonation-access-tokens"),
        "glue_refresh_token_endpoint": format!("{base}/refresh-tokens"),
        "revocation_endpoint": format!("{base}/refresh-tokens/{{refreshToken}}"),
        "grant_types_supported": ["password", "refresh_token", "agent_credentials", "customer_impersonation"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["agent", "customer", "customer_impersonation"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let mut response = HttpResponse::Ok().json(metadata);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=300"),
    );
    response
}
