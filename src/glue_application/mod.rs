//! The REST core (Spryker's `GlueApplication`): knows HTTP and JSON:API, no resource.
//!
//! Resource modules implement [`ResourceRoutePlugin`] and are listed once in
//! [`resource_route_plugins`]. The core owns the error envelope ([`error`]), the request
//! envelope ([`request`]), response builders ([`response`]), bearer authentication ([`auth`]),
//! content negotiation, security headers, access logging and the 404 fallback ([`middleware`]).

pub mod auth;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod request;
pub mod response;

use actix_web::web;

use error::GlueError;

/// A resource module's routes (Spryker's `ResourceRoutePluginInterface`).
pub trait ResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig);
}

/// Every resource the API serves; adding a resource is one module plus one line here
/// (Spryker's `GlueApplicationDependencyProvider::getResourceRoutePlugins()`).
pub fn resource_route_plugins() -> Vec<Box<dyn ResourceRoutePlugin>> {
    vec![
        Box::new(health::HealthResourceRoutePlugin),
        Box::new(openapi::OpenApiResourceRoutePlugin),
        Box::new(crate::oauth::jwks_rest_api::JwksResourceRoutePlugin),
        Box::new(crate::agent_auth_rest_api::AgentAccessTokensResourceRoutePlugin),
        Box::new(crate::auth_rest_api::AccessTokensResourceRoutePlugin),
        Box::new(crate::auth_rest_api::RefreshTokensResourceRoutePlugin),
    ]
}

/// A resource whose unsupported methods answer the JSON:API 404 (Spryker's legacy behaviour)
/// instead of actix's bare 405.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(not_found))
}

/// Registers every plugin's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for plugin in resource_route_plugins() {
        plugin.configure(cfg);
    }
}

/// The fallback for unknown paths and methods.
pub async fn not_found() -> Result<actix_web::HttpResponse, GlueError> {
    Err(GlueError::not_found())
}
