//! Prometheus metrics (what Keycloak and Hydra expose): logins and refreshes by outcome, the
//! bcrypt queue, request latency per route pattern, and the connection pool. Served in the
//! Prometheus text format on `metrics.listen`, a listener of its own (off by default), never on
//! the public API port.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric glue exports, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `glue_logins_total{kind="agent|customer", outcome="issued|invalid|blocked|shed"}`.
    pub logins: IntCounterVec,
    /// `glue_refreshes_total{outcome="rotated|reused|rejected"}`.
    pub refreshes: IntCounterVec,
    /// Access tokens refused, by reason (a closed set: see `VerifyError::reason`).
    pub token_refusals: IntCounterVec,
    /// Logins waiting for or in bcrypt right now.
    pub bcrypt_queue_depth: IntGauge,
    /// Seconds a login waited for a bcrypt thread.
    pub bcrypt_wait: Histogram,
    /// Logins verified together (1 = alone, with the scalar kernel).
    pub bcrypt_batch_size: Histogram,
    /// `glue_http_request_duration_seconds{method, route, status}`.
    pub http_latency: HistogramVec,
    /// Pool connections checked out right now, and open in all.
    pub pool_in_use: IntGauge,
    pub pool_open: IntGauge,
    /// Checkouts that had to wait, and checkouts that gave up (answered 503).
    pub pool_waits: IntCounter,
    pub pool_timeouts: IntCounter,
    /// Searches answered 503 because the searches' share of the pool was taken.
    pub searches_shed: IntCounter,
    /// The search expression indexes missing on a shop's PostgreSQL (0 = all there).
    pub search_indexes_missing: IntGauge,
    /// `glue_agent_mfa_events_total{method="totp|email", event}`: codes sent, accepted,
    /// rejected, sends failed, methods enrolled, activated, disabled.
    pub mfa_events: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("glue".into()), None).expect("a valid prefix");
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "Login attempts by kind and outcome"),
            &["kind", "outcome"],
        )
        .expect("valid metric");
        let refreshes = IntCounterVec::new(
            Opts::new("refreshes_total", "Refresh-token exchanges by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        let token_refusals = IntCounterVec::new(
            Opts::new(
                "token_refusals_total",
                "Access tokens refused, by reason (foreign issuer, unknown key id, bad signature, expired, …)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let bcrypt_queue_depth =
            IntGauge::new("bcrypt_queue_depth", "Logins waiting for or in bcrypt")
                .expect("valid metric");
        let bcrypt_wait = Histogram::with_opts(
            HistogramOpts::new(
                "bcrypt_wait_seconds",
                "Time a login waited for a bcrypt thread",
            )
            .buckets(vec![0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("valid metric");
        let bcrypt_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "bcrypt_batch_size",
                "Logins verified together in SIMD lanes (1 = alone, scalar)",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 12.0, 16.0]),
        )
        .expect("valid metric");
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Request latency by method, route pattern and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let pool_in_use = IntGauge::new("db_pool_connections_in_use", "Checked-out connections")
            .expect("valid metric");
        let pool_open =
            IntGauge::new("db_pool_connections", "Open connections").expect("valid metric");
        let pool_waits = IntCounter::new(
            "db_pool_waits_total",
            "Checkouts that waited for a connection",
        )
        .expect("valid metric");
        let pool_timeouts = IntCounter::new(
            "db_pool_timeouts_total",
            "Checkouts that gave up waiting (answered 503)",
        )
        .expect("valid metric");
        let searches_shed = IntCounter::new(
            "searches_shed_total",
            "Customer searches answered 503 because searches had their share of the pool",
        )
        .expect("valid metric");
        let search_indexes_missing = IntGauge::new(
            "search_indexes_missing",
            "Search expression indexes missing on a shop's PostgreSQL (glue db search-indexes)",
        )
        .expect("valid metric");
        let mfa_events = IntCounterVec::new(
            Opts::new(
                "agent_mfa_events_total",
                "Agents' second factor: codes sent, accepted, rejected, sends failed, methods enrolled, activated, disabled",
            ),
            &["method", "event"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(logins.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(mfa_events.clone()),
            Box::new(refreshes.clone()),
            Box::new(token_refusals.clone()),
            Box::new(bcrypt_queue_depth.clone()),
            Box::new(bcrypt_wait.clone()),
            Box::new(bcrypt_batch_size.clone()),
            Box::new(http_latency.clone()),
            Box::new(pool_in_use.clone()),
            Box::new(pool_open.clone()),
            Box::new(pool_waits.clone()),
            Box::new(pool_timeouts.clone()),
            Box::new(searches_shed.clone()),
            Box::new(search_indexes_missing.clone()),
        ] {
            registry
                .register(metric)
                .expect("each metric registered once");
        }
        Metrics {
            registry,
            logins,
            refreshes,
            token_refusals,
            bcrypt_queue_depth,
            bcrypt_wait,
            bcrypt_batch_size,
            http_latency,
            pool_in_use,
            pool_open,
            pool_waits,
            pool_timeouts,
            searches_shed,
            search_indexes_missing,
            mfa_events,
        }
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
