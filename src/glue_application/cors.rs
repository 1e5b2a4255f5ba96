//! CORS for browser storefronts (Spryker's `GlueApplication` CORS settings). The allowed
//! request headers include `X-Agent-Authorization`, which Spryker forgets, so browser agents
//! can send it. A simple request from an origin that is not allowed is served without CORS
//! headers (the browser then withholds the answer).

use actix_cors::Cors;
use actix_web::http::{header, Method};

/// The CORS middleware for `allowed_origins` (`["*"]` = any origin; empty = none) and the
/// request headers a browser may send (`X-Agent-Authorization`, `X-Request-Id` and tracing
/// headers by default). `Retry-After`, `Content-Language`, `WWW-Authenticate` and `X-Request-Id`
/// are readable by the page. A refused preflight is answered with a JSON:API 400 by the core
/// middleware.
pub fn cors(allowed_origins: &[String], allowed_headers: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers(
            allowed_headers
                .iter()
                .filter_map(|name| header::HeaderName::try_from(name.as_str()).ok()),
        )
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
            // Any origin but `null` (sandboxed frames, file: pages, redirects): reflecting it
            // would grant every such document at once.
            cors.allowed_origin_fn(|origin, _| origin.as_bytes() != b"null")
        } else {
            cors.allowed_origin(origin.trim_end_matches('/'))
        };
    }
    cors
}
