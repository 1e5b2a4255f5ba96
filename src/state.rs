//! `AppState`: the value resource modules read as app data, built once in `startup.rs`.

use crate::services::Services;
use crate::settings::Settings;

pub struct AppState {
    pub settings: Settings,
    /// What the flows run on (pool, OAuth server, blocker, verifier, metrics), held once.
    pub services: Services,
}
