//! The REST core (Spryker's `GlueApplication`): knows HTTP and JSON:API, no resource and no
//! domain module.
//!
//! Resource modules implement [`ResourceRoutePlugin`]; the composition root (`startup.rs`)
//! lists them, the way Spryker's project-level `GlueApplicationDependencyProvider` fills the
//! core's empty plugin list. A route says when it registers whether it is an API route
//! ([`resource`]: content negotiation and the request validators run) or an operational one
//! ([`operational_resource`]: health checks, key sets, documents). The core owns the error
//! envelope ([`error`]), the request envelope ([`request`]), response builders ([`response`]),
//! the client address ([`client_ip`]), CORS ([`cors`]) and the middleware ([`middleware`]).

pub mod client_ip;
pub mod connection;
pub mod context;
pub mod cors;
pub mod error;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod request;
pub mod response;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{web, HttpRequest};

use client_ip::TrustedProxies;
use error::GlueError;

/// A resource module's routes (Spryker's `ResourceRoutePluginInterface`).
pub trait ResourceRoutePlugin: Send + Sync {
    fn configure(&self, cfg: &mut web::ServiceConfig);
}

/// The future a [`RequestValidator`] returns.
pub type ValidationFuture = Pin<Box<dyn Future<Output = Result<(), GlueError>>>>;

/// A check that runs before the controller of every API route (Spryker's
/// `RequestValidatorPlugin`), e.g. that a present `Authorization` header holds a valid token.
/// A validator may leave what it learned in the request extensions for extractors to read.
pub trait RequestValidator: Send + Sync {
    fn validate(&self, req: &HttpRequest) -> ValidationFuture;
}

/// Told about every answered request (e.g. to record latency), by the middleware.
pub trait ResponseObserver: Send + Sync {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64);
}

/// What the core itself needs at run time; registered as app data by `startup`.
pub struct GlueCore {
    /// `Content-Language` of every response.
    pub locale: String,
    pub trusted_proxies: TrustedProxies,
    pub validators: Vec<Arc<dyn RequestValidator>>,
    pub observers: Vec<Arc<dyn ResponseObserver>>,
    /// How long a request body may take to arrive after its headers.
    pub body_timeout: std::time::Duration,
}

/// The prefix of an operational resource's name: the middleware skips negotiation and the
/// validators for it.
const OPERATIONAL: &str = "operational:";

/// An API resource: negotiation and validators apply; any method but `allow` (e.g. `"POST"`)
/// answers 405 with `Allow` and a JSON:API body.
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || method_not_allowed(allow)))
}

/// An operational resource (health, key set, API document): served to any client as it is.
pub fn operational_resource(path: &str, allow: &'static str) -> actix_web::Resource {
    resource(path, allow).name(&format!("{OPERATIONAL}{path}"))
}

async fn method_not_allowed(allow: &'static str) -> Result<actix_web::HttpResponse, GlueError> {
    Err(GlueError::MethodNotAllowed { allow })
}

/// True when the request's path belongs to an operational resource.
fn is_operational(req: &HttpRequest) -> bool {
    req.match_name()
        .is_some_and(|name| name.starts_with(OPERATIONAL))
}

/// Registers every plugin's routes.
pub fn configure(cfg: &mut web::ServiceConfig, plugins: &[Arc<dyn ResourceRoutePlugin>]) {
    for plugin in plugins {
        plugin.configure(cfg);
    }
}

/// The fallback for unknown paths and methods.
pub async fn not_found() -> Result<actix_web::HttpResponse, GlueError> {
    Err(GlueError::not_found())
}
