//! The customer `password` grant (Spryker's `OauthCustomerConnector`): finds a customer by
//! email (any case) and verifies the password, spending one bcrypt verification whether or not
//! the customer exists or has a password, behind the security blocker. The
//! `customer_impersonation` grant lives with the agent resources
//! (`agent_auth_rest_api::impersonation`), which need the agent.

use std::net::IpAddr;

use actix_web::web;

use crate::customer::{self, Customer};
use crate::glue_application::error::GlueError;
use crate::oauth::grant::{password_grant, LoginOutcome};
use crate::oauth_agent_connector::Password;
use crate::security_blocker::EntityType;
use crate::state::AppState;

/// Logs a customer in by email and password.
pub async fn authenticate(
    state: &web::Data<AppState>,
    ip: Option<IpAddr>,
    email: String,
    password: Password,
) -> Result<LoginOutcome<Customer>, GlueError> {
    password_grant(
        state,
        EntityType::Customer,
        ip,
        email,
        Some(password),
        |conn, email| {
            Ok(customer::find_by_email(conn, email)?.map(|c| {
                let hash = c.password.clone();
                (c, hash)
            }))
        },
    )
    .await
}
