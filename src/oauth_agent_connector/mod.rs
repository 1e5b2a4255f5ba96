//! The `agent_credentials` grant (Spryker's `OauthAgentConnector`): an active agent found by
//! username, logged in through the one login flow ([`crate::login`]).

use crate::agent::{self, User};
use crate::db::DbConnection;
use crate::login::{self, Accounts, LoginAttempt, LoginError, LoginOutcome, Username};
use crate::multi_factor_auth::{AgentMfa, Checked, MfaError, SecondFactor};
use crate::oauth::identity::{Identity, Principal};
use crate::oauth::{Grant, SCOPE_AGENT};
use crate::security_blocker::EntityType;
use crate::services::Services;

/// Agents: `spy_user` rows with `is_agent` and status `active`.
pub struct Agents;

impl Accounts for Agents {
    type User = User;
    const ENTITY: EntityType = EntityType::Agent;

    fn find(
        conn: &mut DbConnection,
        username: &Username,
    ) -> diesel::QueryResult<Option<(User, Option<String>)>> {
        Ok(
            agent::find_active_agent(conn, username.as_str())?.map(|user| {
                let hash = user.password.clone();
                (user, Some(hash))
            }),
        )
    }

    fn grant(user: &User) -> Grant {
        Grant::new(
            Identity::of(Principal::Agent {
                id_user: user.id_user.into(),
            }),
            vec![SCOPE_AGENT.to_string()],
        )
    }

    fn second_factor(
        mfa: &AgentMfa,
        conn: &mut DbConnection,
        user: &User,
        code: Option<&str>,
    ) -> Result<Checked, MfaError> {
        let checked = mfa.check(conn, user.id_user, &user.username, code)?;
        if checked.outcome == SecondFactor::Activated {
            // Sessions its password alone opened (someone who phished it included) end before
            // this login's pair is issued.
            crate::session::end_agent_sessions(conn, i64::from(user.id_user))?;
        }
        Ok(checked)
    }

    fn logged_in(conn: &mut DbConnection, user: &User) -> diesel::QueryResult<()> {
        agent::touch_last_login(conn, user.id_user).map(|_| ())
    }

    fn rehash(
        conn: &mut DbConnection,
        user: &User,
        old_hash: &str,
        new_hash: &str,
    ) -> diesel::QueryResult<()> {
        agent::replace_hash(conn, user.id_user, old_hash, new_hash).map(|_| ())
    }
}

/// Logs an agent in.
pub async fn authenticate(
    deps: &Services,
    attempt: LoginAttempt,
) -> Result<LoginOutcome<User>, LoginError> {
    login::counted_password_grant::<Agents>(deps, attempt).await
}
