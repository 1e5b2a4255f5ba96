//! `AppState`: the value resource modules read as app data, built once in `startup.rs`.

use std::sync::Arc;

use crate::db::DbPool;
use crate::login::LoginDeps;
use crate::oauth::OAuthServer;
use crate::settings::Settings;

pub struct AppState {
    pub settings: Settings,
    pub pool: DbPool,
    pub oauth: Arc<OAuthServer>,
    /// What the login flow needs (the pool and the OAuth server again, the security blocker,
    /// the bcrypt verifier).
    pub login: LoginDeps,
    pub metrics: Arc<crate::metrics::Metrics>,
}
