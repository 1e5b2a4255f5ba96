//! The customer `password` grant (Spryker's `OauthCustomerConnector`): finds a customer by
//! email (any case) and verifies the password, spending one bcrypt verification whether or not
//! the customer exists or has a password. The `customer_impersonation` grant lives with the
//! agent resources (`agent_auth_rest_api::impersonation`), which need the agent.

use actix_web::web;

use crate::customer::{self, Customer};
use crate::glue_application::error::GlueError;
use crate::oauth_agent_connector::Password;
use crate::state::AppState;

/// The customer if the email and password match; `None` otherwise.
pub async fn authenticate(
    state: &AppState,
    email: String,
    password: Password,
) -> Result<Option<Customer>, GlueError> {
    let pool = state.pool.clone();
    let customer = web::block(move || -> Result<_, GlueError> {
        let mut conn = pool.get()?;
        Ok(customer::find_by_email(&mut conn, &email)?)
    })
    .await??;
    let hash = customer.as_ref().and_then(|c| c.password.clone());
    let matched = state.passwords.verify(password.into_inner(), hash).await?;
    Ok(customer.filter(|_| matched))
}
