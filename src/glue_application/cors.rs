//! CORS for browser storefronts (Spryker's `GlueApplication` CORS settings). The allowed
//! request headers include `X-Agent-Authorization`, which Spryker forgets, so browser agents
//! can send it. A request from an origin that is not allowed is served without CORS headers
//! (the browser then withholds the answer) rather than answered with a non-JSON:API error.

use actix_cors::Cors;
use actix_web::http::{header, Method};

/// The CORS middleware for `allowed_origins` (`["*"]` = any origin; empty = none).
pub fn cors(allowed_origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::ACCEPT_LANGUAGE,
            header::HeaderName::from_static("x-agent-authorization"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::CONTENT_LANGUAGE,
            header::WWW_AUTHENTICATE,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600)
        .block_on_origin_mismatch(false);
    for origin in allowed_origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin.trim_end_matches('/'))
        };
    }
    cors
}
