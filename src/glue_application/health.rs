//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers too).
//! Not in Spryker; load balancers and orchestrators need them.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde_json::json;

use super::error::GlueError;
use super::response::json_api;
use super::{operational_resource, ResourceRoutePlugin};
use crate::db::{self, DbError, DbPool};

pub struct HealthResourceRoutePlugin {
    pub pool: DbPool,
}

impl ResourceRoutePlugin for HealthResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        let (get_pool, head_pool) = (self.pool.clone(), self.pool.clone());
        cfg.service(
            operational_resource("/healthz", "GET, HEAD")
                .route(web::get().to(healthz))
                .route(web::head().to(healthz)),
        )
        .service(
            operational_resource("/readyz", "GET, HEAD")
                .route(web::get().to(move || readyz(get_pool.clone())))
                .route(web::head().to(move || readyz(head_pool.clone()))),
        );
    }
}

async fn healthz() -> HttpResponse {
    json_api(StatusCode::OK, &json!({"status": "ok"}))
}

async fn readyz(pool: DbPool) -> Result<HttpResponse, GlueError> {
    db::run(&pool, |conn| {
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    })
    .await?;
    Ok(json_api(StatusCode::OK, &json!({"status": "ready"})))
}
