//! `GET /openapi.json`: the OpenAPI 3.1 description of every endpoint (`openapi/openapi.json`,
//! embedded at build time). The integration tests validate real responses against it, and CI
//! runs schemathesis against it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::{operational_resource, ResourceRoutePlugin};

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const OPENAPI_DOCUMENT: &str = include_str!("../../openapi/openapi.json");

pub struct OpenApiResourceRoutePlugin;

impl ResourceRoutePlugin for OpenApiResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            operational_resource(OPENAPI_PATH, "GET, HEAD")
                .route(web::get().to(get_openapi))
                .route(web::head().to(get_openapi)),
        );
    }
}

async fn get_openapi() -> HttpResponse {
    HttpResponse::build(StatusCode::OK)
        .insert_header(("content-type", "application/json"))
        .body(OPENAPI_DOCUMENT)
}
