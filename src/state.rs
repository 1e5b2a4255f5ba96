//! `AppState`: the one value registered as app data, built once in `startup.rs`.

use crate::db::DbPool;
use crate::glue_application::client_ip::TrustedProxies;
use crate::oauth::OAuthServer;
use crate::password::PasswordVerifier;
use crate::security_blocker::SecurityBlocker;
use crate::settings::Settings;

pub struct AppState {
    pub settings: Settings,
    pub pool: DbPool,
    pub oauth: OAuthServer,
    pub passwords: PasswordVerifier,
    pub trusted_proxies: TrustedProxies,
    pub security_blocker: SecurityBlocker,
}
