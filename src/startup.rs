//! The composition root. `Application::build(settings)`: keys, pool, migrations, the
//! production guard, state, the list of resources and the bound HTTP server. `main` and the
//! integration tests go through exactly this wiring; port 0 binds a free port.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::clock::{Clock, SystemClock};
use crate::db::{self, ConnectError, DbPool};
use crate::glue_application::client_ip::TrustedProxies;
use crate::glue_application::health::HealthResourceRoutePlugin;
use crate::glue_application::openapi::OpenApiResourceRoutePlugin;
use crate::glue_application::{
    self, middleware::glue_core, middleware::glue_validation, GlueCore, ResourceRoutePlugin,
    ResponseObserver,
};
use crate::metrics::Metrics;
use crate::multi_factor_auth::AgentMfa;
use crate::oauth::keys::{KeyError, KeySet};
use crate::oauth::OAuthServer;
use crate::oauth_api::discovery::DiscoveryResourceRoutePlugin;
use crate::oauth_api::jwks::JwksResourceRoutePlugin;
use crate::oauth_api::BearerAuthorization;
use crate::password::{self, PasswordError, PasswordVerifier};
use crate::security_blocker::SecurityBlocker;
use crate::services::Services;
use crate::settings::{Environment, Settings};
use crate::state::AppState;
use crate::{agent_auth_rest_api, auth_rest_api};

/// Every resource the API serves; adding a resource is one module plus one line here
/// (Spryker's project-level `GlueApplicationDependencyProvider::getResourceRoutePlugins()`).
fn resource_route_plugins(
    pool: &DbPool,
    layout: &db::Layout,
    blocker: &Arc<SecurityBlocker>,
) -> Vec<Arc<dyn ResourceRoutePlugin>> {
    let mut checks: Vec<Arc<dyn glue_application::health::ReadinessCheck>> =
        vec![Arc::new(DatabaseReadiness(layout.clone()))];
    if blocker.redis().is_some() {
        checks.push(Arc::new(BlockerStoreReadiness(blocker.clone())));
    }
    vec![
        Arc::new(HealthResourceRoutePlugin::new(pool.clone(), checks)),
        Arc::new(OpenApiResourceRoutePlugin),
        Arc::new(JwksResourceRoutePlugin),
        Arc::new(DiscoveryResourceRoutePlugin),
        Arc::new(agent_auth_rest_api::AgentAccessTokensResourceRoutePlugin),
        Arc::new(crate::agent_mfa_rest_api::AgentMultiFactorAuthResourceRoutePlugin),
        Arc::new(auth_rest_api::AccessTokensResourceRoutePlugin),
        Arc::new(auth_rest_api::RefreshTokensResourceRoutePlugin),
    ]
}

/// `/readyz` on the database side: glue's own tables present and, on a shop's database, every
/// privilege glue needs to serve still held (a DBA may revoke one, or drop glue's database,
/// while the service runs).
struct DatabaseReadiness(db::Layout);

impl glue_application::health::ReadinessCheck for DatabaseReadiness {
    fn problems(&self, conn: &mut db::DbConnection) -> Result<Vec<String>, db::DbError> {
        Ok(db::layout::readiness_problems(conn, &self.0)?)
    }
}

/// `/readyz` on the security blocker's Redis store: reported when it does not answer (logins
/// answer 503 meanwhile), never a reason to leave rotation — every instance shares it.
struct BlockerStoreReadiness(Arc<SecurityBlocker>);

impl glue_application::health::ReadinessCheck for BlockerStoreReadiness {
    fn problems(&self, _conn: &mut db::DbConnection) -> Result<Vec<String>, db::DbError> {
        Ok(match self.0.redis().map(|store| store.ping()) {
            Some(Err(_)) => vec![
                "the security blocker's Redis store does not answer (security_blocker.store = \"redis\"): logins answer 503 until it does".to_string(),
            ],
            _ => Vec::new(),
        })
    }

    fn shared(&self) -> bool {
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A setting glue cannot use (the message names it).
    #[error("{0}")]
    Setting(String),
    #[error("database: {0}")]
    Database(#[from] ConnectError),
    #[error("database: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("cannot start the customer searches' threads: {0}")]
    SearchThreads(std::io::Error),
    #[error("cannot start SQLite's checkpoint thread: {0}")]
    Checkpointer(std::io::Error),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("refusing to start in production: {0}")]
    ProductionGuard(String),
}

pub struct Application {
    port: u16,
    server: Server,
    /// The `/metrics` listener's port and server, when `metrics.listen` is set.
    metrics: Option<(u16, Server)>,
    /// SQLite: keeps the write-ahead log short while the server runs.
    _checkpointer: Option<db::Checkpointer>,
}

/// Request latency into `glue_http_request_duration_seconds`.
struct Latency(Arc<Metrics>);

impl ResponseObserver for Latency {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.0
            .http_latency
            .with_label_values(&[method, route, &status.to_string()])
            .observe(seconds);
    }
}

/// `GET /metrics` in the Prometheus text format, on a listener of its own. The gauges are read
/// when scraped.
fn metrics_server(
    address: &str,
    metrics: Arc<Metrics>,
    pool: DbPool,
    passwords: Arc<PasswordVerifier>,
) -> Result<(u16, Server), StartupError> {
    let listener = TcpListener::bind(address)?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        let (metrics, pool, passwords) = (metrics.clone(), pool.clone(), passwords.clone());
        App::new().route(
            "/metrics",
            web::get().to(move || {
                let (open, idle) = pool.state();
                metrics.pool_open.set(i64::from(open));
                metrics
                    .pool_in_use
                    .set(i64::from(open.saturating_sub(idle)));
                metrics
                    .bcrypt_queue_depth
                    .set(i64::try_from(passwords.queue_depth()).unwrap_or(i64::MAX));
                let body = metrics.render();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    // Only the API server handles SIGTERM/SIGINT: an actix server stops the whole system once
    // it has stopped, and the idle metrics listener would do so at once, cutting the API's
    // in-flight requests short. The API's stop stops this one (`run_until_stopped`).
    .disable_signals()
    .listen(listener)?
    .run();
    log::info!(target: "glue::startup", "metrics on http://{address}/metrics (port {port})");
    Ok((port, server))
}

/// The bcrypt verifier the settings ask for, reporting into `metrics`.
fn password_verifier(
    settings: &Settings,
    metrics: &Metrics,
) -> Result<Arc<PasswordVerifier>, StartupError> {
    Ok(Arc::new(
        PasswordVerifier::new(
            settings.oauth.bcrypt_cost,
            settings.bcrypt_concurrency(),
            settings.oauth.bcrypt_nice,
            settings.oauth.bcrypt_queue_depth,
            settings.oauth.bcrypt_pad_to_stored_cost,
            settings.oauth.bcrypt_kernel,
        )?
        .observing(
            metrics.bcrypt_wait.clone(),
            metrics.bcrypt_batch_size.clone(),
        )
        .rehashing(settings.database.schema_owner == db::SchemaOwner::Glue),
    ))
}

/// Waits up to `wait_s` seconds for the database to accept a connection (`database.startup_wait_s`),
/// saying so once; 0 waits not at all (the first connection's error stops the start).
fn wait_for_database(manager: &db::ConnectionManager, wait_s: u64) -> Result<(), StartupError> {
    if wait_s == 0 {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(wait_s);
    let mut said = false;
    // The server is waited for, not glue's schema or database (the migration creates them).
    let server = manager.clone().with_layout(db::Layout::Glue);
    loop {
        match server.establish() {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() < deadline => {
                if !said {
                    log::warn!(target: "glue::startup", "waiting up to {wait_s} s for the database (database.startup_wait_s): {e}");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(StartupError::Database(e)),
        }
    }
}

/// Whether the shop installed Spryker's MFA (its three tables; without them no agent has the
/// email method), and whether agents that have it can get their codes.
fn check_email_method(
    pool: &db::DbPool,
    layout: &db::Layout,
    mfa: &AgentMfa,
    mailer: &crate::mail::Mailer,
) -> Result<(), StartupError> {
    let mut conn = pool.get()?;
    let present = crate::multi_factor_auth::email::tables_present(&mut conn, layout)?;
    mfa.set_email_tables(present);
    if let (
        false,
        db::Layout::Spryker {
            shop_mfa: db::ShopMfaTables::Present,
            ..
        },
    ) = (present, layout)
    {
        return Err(StartupError::Setting(
            "database.shop_mfa_tables = \"present\", but the shop's database has no spy_user_multi_factor_auth tables".into(),
        ));
    }
    if !present {
        log::info!(target: "glue::startup", "the database has no spy_user_multi_factor_auth tables (spryker/multi-factor-auth is not installed): no agent has the email method");
        return Ok(());
    }
    let agents = crate::multi_factor_auth::email::methods(&mut conn)?
        .iter()
        .filter(|(_, status, _)| *status == crate::multi_factor_auth::email::METHOD_ACTIVE)
        .count();
    if agents > 0 && !mailer.is_configured() {
        log::warn!(target: "glue::startup", "{agents} agent(s) have the email method, but mail.smtp_url is not set: their logins are answered 503/5910 until it is");
    }
    Ok(())
}

/// What the service checks on its database before serving: no demo credentials in production,
/// the OAuth client's row, and the costliest stored hash (failed logins take as long as its
/// verification).
fn check_database(
    settings: &Settings,
    pool: &db::DbPool,
    layout: &db::Layout,
    passwords: &PasswordVerifier,
    mfa: &AgentMfa,
) -> Result<(), StartupError> {
    let mut conn = pool.get()?;
    if settings.environment == Environment::Production {
        production_guard(&mut conn)?;
    }
    if !mfa.has_key() && crate::multi_factor_auth::enrolled_count(&mut conn)? > 0 {
        return Err(StartupError::Setting(
            "agents have TOTP methods, but oauth.mfa_key_path is not set: their secrets cannot be read (set it to the key they were enrolled under)".into(),
        ));
    }
    let client = &settings.oauth.client_id;
    let client_ready = if layout.is_spryker() {
        // The shop's installer made its clients; glue adds no row to its tables.
        crate::oauth::client_exists(&mut conn, client)?
    } else {
        crate::oauth::ensure_client(&mut conn, client).map_err(|e| match e {
            crate::oauth::OAuthError::Database(db) => StartupError::Db(db),
            other => StartupError::Db(crate::db::DbError::Unavailable(Box::new(other))),
        })?;
        true
    };
    if !client_ready {
        return Err(StartupError::Database(ConnectError::Setup(format!(
                "the shop's spy_oauth_client has no row with identifier {client:?} (oauth.client_id); Spryker's installer creates `frontend`"
            ))));
    }
    // Failed logins take as long as a verification of the costliest stored hash.
    let mut costs = crate::agent::hash_costs(&mut conn)?;
    costs.extend(crate::customer::hash_costs(&mut conn)?);
    if settings.oauth.bcrypt_pad_to_stored_cost {
        for &cost in &costs {
            passwords.raise_target_cost(cost);
        }
    }
    passwords.stored_costs(&costs);
    log::info!(target: "glue::password", "verifying with {}", passwords.describe());
    if let Some(warning) =
        crate::password::simd_mismatch(settings.oauth.bcrypt_kernel, settings.oauth.bcrypt_simd)
    {
        log::warn!(target: "glue::password", "{warning}");
    }
    log::info!(target: "glue::password", "every failed login costs one bcrypt verification at cost {}", passwords.target_cost());
    Ok(())
}

impl Application {
    /// Everything up to a bound, not yet running server. Blocking (runs migrations).
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock))
    }

    /// [`Application::build`] with another clock for the time-dependent rules (tests).
    pub fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        // Configured keys are checked before the database is touched; development's generated
        // pair (written under var/keys on first use) waits until the database checks passed,
        // so a refused start leaves nothing behind.
        let load_keys = |settings: &Settings| -> Result<KeySet, StartupError> {
            let keys = KeySet::load(settings)?;
            crate::oauth::jwt::self_test(&keys)?;
            Ok(keys)
        };
        let early_keys = if KeySet::generates_development_key(&settings) {
            None
        } else {
            Some(load_keys(&settings)?)
        };
        let metrics = Arc::new(Metrics::new());
        let passwords = password_verifier(&settings, &metrics)?;
        if settings.oauth.key_source == crate::settings::KeySource::SprykerEnv
            && settings.database.schema_owner != db::SchemaOwner::Spryker
        {
            log::warn!(target: "glue::startup", "oauth.key_source = \"spryker-env\" on a database glue owns: PHP Glue's refresh tokens name rows in the shop's spy_oauth_refresh_token, which this database does not have, so none of them can be exchanged (set database.schema_owner = \"spryker\" and the shop's DATABASE_URL)");
        }
        let manager = db::ConnectionManager::for_settings(&settings.database)?;
        wait_for_database(&manager, settings.database.startup_wait_s)?;
        let applied = db::migrate(&manager)?;
        if applied > 0 {
            log::info!(target: "glue::db", "applied {applied} migration(s)");
        }
        // SQLite: one thread checkpoints the write-ahead log, the pool's connections never do.
        let (checkpointer, pooled) = db::Checkpointer::start(
            &manager,
            db::Checkpointer::EVERY,
            db::Checkpointer::RESTART_AT_PAGES,
        )
        .map_err(StartupError::Checkpointer)?;
        let pool = db::build_pool(pooled, &settings.database, metrics.clone())?;
        let mailer = Arc::new(
            crate::mail::Mailer::for_settings(&settings.mail).map_err(StartupError::Setting)?,
        );
        let mfa = Arc::new(
            AgentMfa::for_settings(&settings, clock.clone())
                .map_err(StartupError::Setting)?
                .with_events(metrics.mfa_events.clone())
                .with_mailer(mailer.clone()),
        );
        check_database(&settings, &pool, manager.layout(), &passwords, &mfa)?;
        check_email_method(&pool, manager.layout(), &mfa, &mailer)?;
        if db::sqlite_compile_options(&mut *pool.get()?)?
            .iter()
            .any(|o| o == "ENABLE_MEMORY_MANAGEMENT")
        {
            log::warn!(target: "glue::startup", "this build's SQLite shares one page cache between all connections behind one lock (SQLITE_ENABLE_MEMORY_MANAGEMENT): a search at glue.search_priority can hold it and stall logins and refreshes; build glue from its own directory, where .cargo/config.toml compiles SQLite without it");
        }
        {
            let missing = db::layout::missing_search_indexes(&mut *pool.get()?, manager.layout())?;
            metrics
                .search_indexes_missing
                .set(i64::try_from(missing.len()).unwrap_or(i64::MAX));
            if !missing.is_empty() {
                log::warn!(target: "glue::startup", "customer search scans spy_customer: the shop's database lacks glue's search indexes ({}); print their DDL with `glue db search-indexes` and let a DBA apply it (searches meanwhile run at most glue.search_concurrency = {} at once per instance)", missing.join(", "), settings.search_concurrency());
            }
        }
        let keys = match early_keys {
            Some(keys) => keys,
            None => load_keys(&settings)?,
        };

        let mut oauth_settings = settings.oauth.clone();
        oauth_settings.issuer = settings.issuer().to_string();
        let oauth = Arc::new(OAuthServer::new(
            Arc::new(keys),
            oauth_settings,
            clock.clone(),
        ));
        let core = web::Data::new(GlueCore {
            locale: settings.glue.locale.clone(),
            trusted_proxies: TrustedProxies::new(settings.trusted_proxy_networks()),
            validators: vec![Arc::new(BearerAuthorization {
                oauth: oauth.clone(),
                mfa: mfa.clone(),
                pool: pool.clone(),
                metrics: metrics.clone(),
            })],
            observers: vec![Arc::new(Latency(metrics.clone()))],
            body_timeout: Duration::from_secs(settings.server.body_timeout_s),
        });
        let blocker = Arc::new(
            SecurityBlocker::new(settings.security_blocker.clone(), clock)
                .map_err(StartupError::Setting)?,
        );
        let plugins = resource_route_plugins(&pool, manager.layout(), &blocker);
        let kid = oauth.keys.signing.kid.clone();
        let state = web::Data::new(AppState {
            services: Services {
                pool: pool.clone(),
                blocker,
                mfa,
                mailer,
                passwords: passwords.clone(),
                oauth,
                metrics: metrics.clone(),
            },
            search_slots: crate::state::SearchSlots::new(
                settings.search_concurrency(),
                Duration::from_millis(settings.glue.search_queue_ms),
                match settings.glue.search_priority {
                    crate::settings::SearchPriority::Idle => crate::threads::Priority::Idle,
                    crate::settings::SearchPriority::Low => crate::threads::Priority::Nice(19),
                    crate::settings::SearchPriority::Normal => crate::threads::Priority::Nice(0),
                },
            )
            .map_err(StartupError::SearchThreads)?,
            settings: settings.clone(),
        });
        let bcrypt = passwords.describe();
        let metrics_server = match settings.metrics.listen.trim() {
            "" => None,
            address => Some(metrics_server(address, metrics, pool, passwords)?),
        };

        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))?;
        let port = listener.local_addr()?.port();
        let max_body = settings.server.max_body_bytes;
        let origins = settings.glue.cors_allowed_origins.clone();
        let cors_headers = settings.glue.cors_allowed_headers.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(core.clone())
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                // Inner: CORS answers preflights; outer: the core adds its headers to them too.
                // Innermost: negotiation and validators, whose refusals pass back through CORS;
                // then CORS, which answers preflights; outside it the core (request id,
                // access log, envelope), which sees every answer.
                .wrap(from_fn(glue_validation))
                .wrap(glue_application::cors::cors(&origins, &cors_headers))
                .wrap(from_fn(glue_core))
                .wrap(glue_application::middleware::security_headers())
                .configure(|cfg| glue_application::configure(cfg, &plugins))
                .default_service(web::to(glue_application::not_found))
        })
        .on_connect(glue_application::connection::on_connect)
        .workers(settings.worker_count())
        .max_connections(settings.max_connections_per_worker())
        .shutdown_timeout(settings.server.shutdown_timeout_s)
        .client_request_timeout(Duration::from_secs(10))
        .listen(listener)?
        .run();
        // One line that says what runs.
        let glue_schema = match manager.layout() {
            db::Layout::Spryker { glue_schema, .. } => glue_schema.as_str(),
            db::Layout::Glue => "-",
        };
        let blocker_store = match settings.security_blocker.store {
            crate::settings::BlockerStore::Database => "database".to_string(),
            crate::settings::BlockerStore::Redis => format!(
                "redis({})",
                crate::secret::url_without_password(settings.security_blocker.redis.url.expose())
            ),
        };
        log::info!(
            target: "glue::startup",
            "serving: environment={} schema_owner={} engine={:?} database={} glue_schema={glue_schema} key_source={:?} kid={} listen={}:{port} metrics={} bcrypt=\"{bcrypt}\" blocker_store={blocker_store}",
            settings.environment.as_str(),
            if manager.layout().is_spryker() { "spryker" } else { "glue" },
            manager.backend(),
            crate::secret::url_without_password(settings.database.url.expose()),
            settings.oauth.key_source,
            kid,
            settings.server.host,
            metrics_server
                .as_ref()
                .map_or_else(|| "off".to_string(), |(port, _)| format!("port {port}")),
        );
        Ok(Application {
            port,
            server,
            metrics: metrics_server,
            _checkpointer: checkpointer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM stop it gracefully).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.metrics {
            // Both servers run only while polled: drive them together; when the API stops
            // (e.g. SIGTERM) the metrics listener follows.
            Some((_, metrics)) => {
                let handle = metrics.handle();
                match futures_util::future::select(self.server, metrics).await {
                    // The API stopped (gracefully, on a signal) and stops the actix system
                    // after it: the metrics listener is told to stop, not waited for (its
                    // workers may already be gone).
                    futures_util::future::Either::Left((served, _metrics)) => {
                        drop(handle.stop(false));
                        served
                    }
                    futures_util::future::Either::Right((_, server)) => server.await,
                }
            }
            None => self.server.await,
        }
    }

    /// The `/metrics` listener's port, when `metrics.listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }
}

/// Refuses production while the demo agent can still log in with the demo password.
fn production_guard(conn: &mut db::DbConnection) -> Result<(), StartupError> {
    if let Some(demo) = crate::agent::find_active_agent(conn, crate::agent::DEMO_USERNAME)? {
        if password::verify(crate::agent::DEMO_PASSWORD, &demo.password) {
            return Err(StartupError::ProductionGuard(format!(
                "the demo agent {} still has the demo password; run `glue agent set-password --username {}` or `glue agent deactivate --username {}`",
                crate::agent::DEMO_USERNAME,
                crate::agent::DEMO_USERNAME,
                crate::agent::DEMO_USERNAME
            )));
        }
    }
    Ok(())
}
