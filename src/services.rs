//! The shared services every flow runs on, built once in `startup.rs`: the connection pool,
//! the OAuth server, the security blocker, agents' second factor and its mail relay, the bcrypt
//! verifier and the metrics.

use std::sync::Arc;

use crate::db::DbPool;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::multi_factor_auth::AgentMfa;
use crate::oauth::OAuthServer;
use crate::password::PasswordVerifier;
use crate::security_blocker::SecurityBlocker;

/// Cheap to clone (everything is shared).
#[derive(Clone)]
pub struct Services {
    pub pool: DbPool,
    pub oauth: Arc<OAuthServer>,
    pub blocker: Arc<SecurityBlocker>,
    /// Agents' second factor.
    pub mfa: Arc<AgentMfa>,
    /// The email method's codes go out here.
    pub mailer: Arc<Mailer>,
    pub passwords: Arc<PasswordVerifier>,
    pub metrics: Arc<Metrics>,
}
