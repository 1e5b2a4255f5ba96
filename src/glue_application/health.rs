//! `GET /healthz` (the process answers) and `GET /readyz` (the database side can serve: it
//! answers, and every readiness check the composition root registered passes). Not in Spryker;
//! load balancers and orchestrators need them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde_json::json;

use super::error::{GlueError, RestErrorMessage};
use super::response::json_api;
use super::{operational_resource, ResourceRoutePlugin};
use crate::db::{self, DbConnection, DbError, DbPool};

/// One thing `/readyz` checks on a database connection (e.g. glue's tables present, the
/// privileges it needs held): the problems found, empty when it can serve.
pub trait ReadinessCheck: Send + Sync {
    fn problems(&self, conn: &mut DbConnection) -> Result<Vec<String>, DbError>;
}

/// How long a verdict of the checks is reused: a load balancer polling every second costs the
/// database one round of checks every few seconds, not one per poll.
const VERDICT_TTL: Duration = Duration::from_secs(3);

pub struct HealthResourceRoutePlugin {
    pub pool: DbPool,
    pub checks: Vec<Arc<dyn ReadinessCheck>>,
}

/// The problems the checks found, and when.
type Verdict = Option<(Instant, Vec<String>)>;

#[derive(Clone)]
struct Readiness {
    pool: DbPool,
    checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    /// The last verdict (problems found) and when it was reached.
    verdict: Arc<Mutex<Verdict>>,
}

impl ResourceRoutePlugin for HealthResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        let readiness = Readiness {
            pool: self.pool.clone(),
            checks: Arc::new(self.checks.clone()),
            verdict: Arc::new(Mutex::new(None)),
        };
        let (get, head) = (readiness.clone(), readiness);
        cfg.service(
            operational_resource("/healthz", "GET, HEAD")
                .route(web::get().to(healthz))
                .route(web::head().to(healthz)),
        )
        .service(
            operational_resource("/readyz", "GET, HEAD")
                .route(web::get().to(move || readyz(get.clone())))
                .route(web::head().to(move || readyz(head.clone()))),
        );
    }
}

async fn healthz() -> HttpResponse {
    json_api(StatusCode::OK, &json!({"status": "ok"}))
}

/// 200 when the database answers and every check passes; 503 (JSON:API, `Retry-After`) naming
/// each problem otherwise. Bounded like any request's database work (`db::run`).
async fn readyz(readiness: Readiness) -> Result<HttpResponse, GlueError> {
    let cached = readiness
        .verdict
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|(at, _)| at.elapsed() < VERDICT_TTL)
        .map(|(_, problems)| problems.clone());
    let problems = match cached {
        Some(problems) => problems,
        None => {
            let checks = readiness.checks.clone();
            let problems = db::run(&readiness.pool, move |conn| {
                conn.batch_execute("SELECT 1").map_err(DbError::from)?;
                let mut problems = Vec::new();
                for check in checks.iter() {
                    problems.extend(check.problems(conn)?);
                }
                Ok::<_, DbError>(problems)
            })
            .await?;
            *readiness.verdict.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), problems.clone()));
            problems
        }
    };
    if problems.is_empty() {
        return Ok(json_api(StatusCode::OK, &json!({"status": "ready"})));
    }
    Err(GlueError::Throttled {
        error: RestErrorMessage::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!("Not ready: {}", problems.join("; ")),
        ),
        retry_after_s: 5,
    })
}
