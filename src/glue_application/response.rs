//! Resource and response builders (Spryker's `RestResource` + `RestResponse`).

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::Value;

pub use super::error::JSON_API_CONTENT_TYPE;

/// `{"type", "id", "attributes", "links": {"self"}}`; `id` may be null (token resources).
#[derive(Debug, Serialize)]
pub struct RestResource {
    #[serde(rename = "type")]
    pub resource_type: &'static str,
    pub id: Option<String>,
    pub attributes: Value,
    pub links: SelfLink,
}

#[derive(Debug, Serialize)]
pub struct SelfLink {
    #[serde(rename = "self")]
    pub self_link: String,
}

impl RestResource {
    /// A resource whose `links.self` is `<base>/<type>` plus the request's query string.
    pub fn new(
        base_url: &str,
        resource_type: &'static str,
        id: Option<String>,
        attributes: impl Serialize,
        query: &str,
    ) -> Self {
        RestResource {
            resource_type,
            id,
            attributes: serde_json::to_value(attributes).unwrap_or(Value::Null),
            links: SelfLink {
                self_link: resource_link(base_url, resource_type, query),
            },
        }
    }
}

/// `<base>/<resource_type>` plus `?<query>` when there is one.
pub fn resource_link(base_url: &str, resource_type: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{base_url}/{resource_type}")
    } else {
        format!("{base_url}/{resource_type}?{query}")
    }
}

#[derive(Serialize)]
struct SingleDocument<'a> {
    data: &'a RestResource,
}

/// Any JSON body with the JSON:API content type.
pub fn json_api(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, JSON_API_CONTENT_TYPE))
            .body(bytes),
        Err(e) => actix_web::ResponseError::error_response(&super::error::GlueError::internal(e)),
    }
}

/// 201 with one resource (what POST answers).
pub fn created(resource: &RestResource) -> HttpResponse {
    json_api(StatusCode::CREATED, &SingleDocument { data: resource })
}

/// 201 with a resource that carries tokens: never cached (RFC 6749 §5.1).
pub fn created_with_tokens(resource: &RestResource) -> HttpResponse {
    let mut response = created(resource);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    response
}

/// The four attributes of every token resource, in Spryker's order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenAttributes {
    pub token_type: &'static str,
    pub expires_in: u64,
    pub access_token: String,
    pub refresh_token: String,
}
