//! The customer grants (Spryker's `OauthCustomerConnector`): `password` (a customer found by
//! email, any case, logged in through the one login flow, [`crate::login`]) and
//! `customer_impersonation` (an agent gets a customer token pair whose `act` claim names the
//! agent, RFC 8693).

use crate::customer::{self, Customer};
use crate::db::DbConnection;
use crate::login::{self, Accounts, LoginAttempt, LoginError, LoginOutcome, Username};
use crate::oauth::identity::{Identity, Principal};
use crate::oauth::{
    Grant, IssuedTokens, OAuthError, OAuthServer, SCOPE_CUSTOMER, SCOPE_CUSTOMER_IMPERSONATION,
};
use crate::password::Password;
use crate::security_blocker::EntityType;
use crate::services::Services;

fn principal(customer: &Customer) -> Principal {
    Principal::Customer {
        reference: customer.customer_reference.clone(),
        id_customer: Some(customer.id_customer.into()),
    }
}

/// Customers: `spy_customer` rows, found by email in any case.
pub struct Customers;

impl Accounts for Customers {
    type User = Customer;
    const ENTITY: EntityType = EntityType::Customer;

    /// Emails are compared as the database compares them (any case; on MariaDB also accents
    /// and width): counted under the database's own key of the name.
    fn account_key(conn: &mut DbConnection, email: &Username) -> diesel::QueryResult<String> {
        conn.backend()
            .folded_key(conn, "spy_customer", "email", email.as_str())
    }

    fn find(
        conn: &mut DbConnection,
        email: &Username,
    ) -> diesel::QueryResult<Option<(Customer, Option<String>)>> {
        Ok(customer::find_by_email(conn, email.as_str())?.map(|c| {
            let hash = c.password.clone();
            (c, hash)
        }))
    }

    fn grant(customer: &Customer) -> Grant {
        Grant::new(
            Identity::of(principal(customer)),
            vec![SCOPE_CUSTOMER.to_string()],
        )
    }

    /// Spryker hashes customer passwords with Symfony's `NativePasswordHasher`.
    fn password_form(password: Password) -> Password {
        password.symfony_native()
    }

    fn rehash(
        conn: &mut DbConnection,
        customer: &Customer,
        old_hash: &str,
        new_hash: &str,
    ) -> diesel::QueryResult<()> {
        customer::replace_hash(conn, customer.id_customer, old_hash, new_hash).map(|_| ())
    }
}

/// Logs a customer in by email and password.
pub async fn authenticate(
    deps: &Services,
    attempt: LoginAttempt,
) -> Result<LoginOutcome<Customer>, LoginError> {
    login::counted_password_grant::<Customers>(deps, attempt).await
}

/// A customer token pair for the customer with `reference`, the agent `id_agent` acting for
/// it; `None` when there is no such customer.
pub fn impersonate(
    conn: &mut DbConnection,
    oauth: &OAuthServer,
    id_agent: i64,
    reference: &str,
) -> Result<Option<(Customer, IssuedTokens)>, OAuthError> {
    let Some(customer) = customer::find_by_reference(conn, reference)? else {
        return Ok(None);
    };
    let grant = Grant::new(
        Identity {
            subject: principal(&customer),
            acting_agent: Some(id_agent),
        },
        vec![
            SCOPE_CUSTOMER_IMPERSONATION.to_string(),
            SCOPE_CUSTOMER.to_string(),
        ],
    );
    let tokens = oauth.issue(conn, &grant)?;
    Ok(Some((customer, tokens)))
}
