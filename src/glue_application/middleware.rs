//! The core middleware, run around every request:
//! 1. content negotiation (Spryker's `HeaderValidator`): `Accept` must allow JSON,
//!    `Content-Type`, when present, must be JSON — 415 otherwise;
//! 2. the request validators `startup` registered (e.g. a present `Authorization` header must
//!    hold a valid token);
//! 3. `Content-Language` on every response (Spryker's security headers come from
//!    [`security_headers`], which `startup` wraps around everything);
//! 4. one access-log line per request with the method and the *route pattern*, each from a
//!    closed set (registered patterns and `(unmatched)`; the standard methods and `other`:
//!    nothing a client chooses, so neither a token sent as a path nor invented paths and methods
//!    reach the log or grow the metrics' label sets), status and duration; no body, no header
//!    values;
//! 5. the request id (`X-Request-Id`, see [`super::context`]) echoed in the answer and, with
//!    the client address, on every log line written while the request is served.
//!
//! Operational resources (registered with [`super::operational_resource`]) skip steps 1 and 2.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use super::client_ip::ClientIp;
use super::context::{RequestContext, REQUEST_ID_HEADER};
use super::error::GlueError;
use super::{is_operational, GlueCore};

fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

const JSON_TYPES: [&str; 2] = ["application/json", "application/vnd.api+json"];

/// `Accept` allows a JSON answer (missing or empty counts as "anything").
fn accept_allows_json(value: Option<&str>) -> bool {
    let Some(value) = value else { return true };
    if value.trim().is_empty() {
        return true;
    }
    value
        .split(',')
        .map(media_type)
        .any(|t| t == "*/*" || t == "application/*" || JSON_TYPES.contains(&t.as_str()))
}

/// `Content-Type`, when present, names JSON.
fn content_type_is_json(value: Option<&str>) -> bool {
    match value {
        None => true,
        Some(v) => JSON_TYPES.contains(&media_type(v).as_str()),
    }
}

fn negotiate(req: &ServiceRequest) -> Result<(), GlueError> {
    let headers = req.headers();
    let accept = headers
        .get(header::ACCEPT)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""));
    if !accept_allows_json(accept) || !content_type_is_json(content_type) {
        return Err(GlueError::unsupported_media_type());
    }
    Ok(())
}

/// The route of every path no resource matched, in the access log and the metrics: a path is
/// the client's to choose (it may be a token, and there is no end to them).
pub const UNMATCHED_ROUTE: &str = "(unmatched)";

/// A request method as the access log and the metrics show it: the standard ones by name,
/// every other (a client may invent any) as `other`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

async fn validate(req: &ServiceRequest, core: &GlueCore) -> Result<(), GlueError> {
    negotiate(req)?;
    for validator in &core.validators {
        validator.validate(req.request()).await?;
    }
    Ok(())
}

/// An error of an inner middleware as a JSON:API error: a client error keeps its status and
/// text (e.g. "Origin is not allowed to make this request"), anything else is a generic 500.
fn enveloped(error: &actix_web::Error) -> GlueError {
    let status = error.as_response_error().status_code();
    if status.is_client_error() {
        GlueError::one(status, None, error.to_string())
    } else {
        GlueError::internal(error.to_string())
    }
}

/// A client error answered by an inner middleware in plain text (actix-cors refusing a
/// preflight: "Origin is not allowed to make this request") in the JSON:API envelope, same
/// status and text.
async fn enveloped_refusal(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let plain = response.status().is_client_error()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|t| t.to_str().is_ok_and(|t| t.starts_with("text/plain")));
    if !plain {
        return response;
    }
    let (request, answer) = response.into_parts();
    let status = answer.status();
    let body = actix_web::body::to_bytes(answer.into_body())
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let detail = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Bad request")
            .to_string()
    } else {
        text
    };
    let error = GlueError::one(status, None, detail);
    ServiceResponse::new(request, actix_web::ResponseError::error_response(&error))
}

/// Spryker's security headers, on every response (`startup` wraps the whole app in it).
pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("x-frame-options", "SAMEORIGIN"))
        .add(("content-security-policy", "frame-ancestors 'self'"))
        .add(("x-content-type-options", "nosniff"))
        .add(("x-xss-protection", "1; mode=block"))
        .add(("referrer-policy", "same-origin"))
}

/// Steps 1 and 2, negotiation and the request validators, as the innermost middleware: inside
/// CORS, so that their refusals (401/`001` for an expired token, 415) carry the same CORS
/// headers as any answer and a browser page can read them (`WWW-Authenticate` included).
pub async fn glue_validation(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !is_operational(req.request()) {
        let core = req
            .app_data::<web::Data<GlueCore>>()
            .cloned()
            .ok_or_else(|| actix_web::error::ErrorInternalServerError("core state missing"))?;
        if let Err(error) = validate(&req, &core).await {
            let response = actix_web::ResponseError::error_response(&error);
            return Ok(req.into_response(response).map_into_boxed_body());
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

pub async fn glue_core(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let core = req
        .app_data::<web::Data<GlueCore>>()
        .cloned()
        .ok_or_else(|| actix_web::error::ErrorInternalServerError("core state missing"))?;
    let method = req.method().clone();
    let context = RequestContext::of(
        req.request(),
        ClientIp(core.trusted_proxies.client_ip(req.request())),
    );
    let request_id = context.header_value();
    let access_context = context.clone();
    let mut response = super::context::scope(context, async move {
        // An error from an inner middleware (e.g. a refused CORS preflight) is answered in the
        // JSON:API envelope too (actix renders the returned GlueError).
        let response = match next.call(req).await {
            Ok(response) => enveloped_refusal(response.map_into_boxed_body()).await,
            Err(error) => return Err(enveloped(&error).into()),
        };
        Ok::<_, actix_web::Error>(response)
    })
    .await?;
    if let Some(id) = request_id {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
    }

    if let Ok(locale) = HeaderValue::from_str(&core.locale) {
        response
            .headers_mut()
            .insert(header::CONTENT_LANGUAGE, locale);
    }

    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
    let method = method_label(&method);
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    for observer in &core.observers {
        observer.observe(method, &route, status, seconds);
    }
    super::context::scope(access_context, async {
        log::info!(
            target: "glue::access",
            "{} {} {} {:.1}ms",
            method,
            route,
            status,
            seconds * 1000.0
        );
    })
    .await;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_are_one_label() {
        use actix_web::http::Method;
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for invented in ["M007ETHOD", "get", "PROPFIND", "X"] {
            assert_eq!(
                method_label(&Method::from_bytes(invented.as_bytes()).unwrap()),
                "other"
            );
        }
    }

    #[test]
    fn accept_must_allow_a_json_answer() {
        for allowed in [
            None,
            Some(""),
            Some("*/*"),
            Some("application/*"),
            Some("application/json"),
            Some("application/vnd.api+json; version=1.0"),
            Some("text/html, application/json;q=0.9"),
        ] {
            assert!(accept_allows_json(allowed), "{allowed:?}");
        }
        for refused in [Some("text/html"), Some("application/vnd.api+xml")] {
            assert!(!accept_allows_json(refused), "{refused:?}");
        }
    }

    #[test]
    fn a_content_type_must_be_json_when_present() {
        assert!(content_type_is_json(None));
        assert!(content_type_is_json(Some(
            "application/json; charset=utf-8"
        )));
        assert!(content_type_is_json(Some("Application/Vnd.Api+Json")));
        assert!(!content_type_is_json(Some("")));
        assert!(!content_type_is_json(Some("text/plain")));
    }
}
