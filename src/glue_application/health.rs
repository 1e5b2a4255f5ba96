//! `GET /healthz` (the process answers) and `GET /readyz` (the database side can serve: it
//! answers, and every readiness check the composition root registered passes). Not in Spryker;
//! load balancers and orchestrators need them.

use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Whether the checked dependency is one every instance shares and only some requests need
    /// (e.g. the security blocker's Redis): its problems are reported in the body, but taking
    /// every instance out of rotation would not help, so the instance stays ready.
    fn shared(&self) -> bool {
        false
    }
}

/// What one round of checks found: problems that make this instance unready, and problems of
/// shared dependencies that are only reported.
#[derive(Debug, Clone, Default)]
struct Findings {
    problems: Vec<String>,
    shared: Vec<String>,
}

/// How long a verdict of the checks is reused: a load balancer polling every second costs the
/// database one round of checks every few seconds, not one per poll.
const VERDICT_TTL: Duration = Duration::from_secs(3);

pub struct HealthResourceRoutePlugin {
    readiness: Readiness,
}

impl HealthResourceRoutePlugin {
    /// `/healthz` and `/readyz` on `pool`, with the composition root's `checks`. One verdict is
    /// kept for the whole process (every worker shares it).
    pub fn new(pool: DbPool, checks: Vec<Arc<dyn ReadinessCheck>>) -> Self {
        HealthResourceRoutePlugin {
            readiness: Readiness {
                pool,
                checks: Arc::new(checks),
                verdict: Arc::new(Mutex::new(None)),
                refreshing: Arc::new(AtomicBool::new(false)),
            },
        }
    }
}

/// The problems the checks found, and when.
type Verdict = Option<(Instant, Findings)>;

#[derive(Clone)]
struct Readiness {
    pool: DbPool,
    checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    /// The last verdict, shared by every worker.
    verdict: Arc<Mutex<Verdict>>,
    /// Set while one request refreshes the verdict: the others answer with the last one, so a
    /// burst of `/readyz` runs the checks once, not once per request.
    refreshing: Arc<AtomicBool>,
}

/// Clears [`Readiness::refreshing`] however the refresh ends.
struct Refreshing(Arc<AtomicBool>);

impl Drop for Refreshing {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl ResourceRoutePlugin for HealthResourceRoutePlugin {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        let (get, head) = (self.readiness.clone(), self.readiness.clone());
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
    let last = readiness
        .verdict
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let fresh = last
        .as_ref()
        .filter(|(at, _)| at.elapsed() < VERDICT_TTL)
        .map(|(_, problems)| problems.clone());
    let problems = match (fresh, last) {
        (Some(problems), _) => problems,
        // Another request is refreshing: the last verdict stands meanwhile.
        (None, Some((_, problems))) if readiness.refreshing.swap(true, Ordering::SeqCst) => {
            problems
        }
        (None, _) => {
            let _refreshing = Refreshing(readiness.refreshing.clone());
            readiness.refreshing.store(true, Ordering::SeqCst);
            let checks = readiness.checks.clone();
            let problems = db::run(&readiness.pool, move |conn| {
                conn.batch_execute("SELECT 1").map_err(DbError::from)?;
                let mut findings = Findings::default();
                for check in checks.iter() {
                    let found = check.problems(conn)?;
                    if check.shared() {
                        findings.shared.extend(found);
                    } else {
                        findings.problems.extend(found);
                    }
                }
                Ok::<_, DbError>(findings)
            })
            .await?;
            *readiness.verdict.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), problems.clone()));
            problems
        }
    };
    let Findings { problems, shared } = problems;
    if problems.is_empty() {
        return Ok(json_api(
            StatusCode::OK,
            &if shared.is_empty() {
                json!({"status": "ready"})
            } else {
                json!({"status": "ready", "degraded": shared})
            },
        ));
    }
    let mut all = problems;
    all.extend(shared);
    Err(GlueError::Throttled {
        error: RestErrorMessage::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!("Not ready: {}", all.join("; ")),
        ),
        retry_after_s: 5,
    })
}
