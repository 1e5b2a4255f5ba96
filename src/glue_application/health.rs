//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers too).
//! Not in Spryker; load balancers and orchestrators need them.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde_json::json;

use super::error::GlueError;
use super::response::json_api;
use super::ResourceRoutePlugin;
use crate::state::AppState;

pub struct HealthResourceRoutePlugin;

impl ResourceRoutePlugin for HealthResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(super::resource("/healthz").route(web::get().to(healthz)))
            .service(super::resource("/readyz").route(web::get().to(readyz)));
    }
}

async fn healthz() -> HttpResponse {
    json_api(StatusCode::OK, &json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, GlueError> {
    let pool = state.pool.clone();
    web::block(move || -> Result<(), GlueError> {
        let mut conn = pool.get()?;
        conn.batch_execute("SELECT 1")?;
        Ok(())
    })
    .await??;
    Ok(json_api(StatusCode::OK, &json!({"status": "ready"})))
}
