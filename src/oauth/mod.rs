//! Shared OAuth (Spryker's `Oauth` + `OauthRevoke` modules): keys and the JWK Set, access-token
//! minting and verification, refresh tokens (mint, hash, persist, rotate, revoke).
//!
//! `OAuthServer` is built once in `startup.rs`. Its methods are synchronous and take a
//! connection: callers run them inside `db::run`. Nothing here knows HTTP: outcomes are enums,
//! failures [`OAuthError`].

pub mod jwt;
pub mod keys;
pub mod php_token;
pub mod refresh_token;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::{DbConnection, DbError};
use crate::settings::OAuthSettings;
use jwt::{AccessTokenRequest, UserIdentifier, VerifiedToken, VerifyError, VerifyRules};
use keys::KeySet;
use refresh_token::{Exchange, NewRefreshToken, Refusal};

/// Scope names (Spryker's `OauthAgentConnectorConfig`, `OauthCustomerConnectorConfig`).
pub const SCOPE_AGENT: &str = "agent";
pub const SCOPE_CUSTOMER: &str = "customer";
pub const SCOPE_CUSTOMER_IMPERSONATION: &str = "customer_impersonation";
pub const TOKEN_TYPE: &str = "Bearer";

/// `len` random bytes as lowercase hex (`2 * len` characters).
pub fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new opaque refresh token: 256 random bits, base64url without padding (43 characters).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores instead of a refresh token: SHA-256, lowercase hex.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn now_naive() -> chrono::NaiveDateTime {
    crate::db::now()
}

/// Who a new token pair is for.
#[derive(Debug, Clone)]
pub struct Grant {
    pub subject: UserIdentifier,
    pub scopes: Vec<String>,
    /// The acting agent's `sub` JSON, for impersonation.
    pub actor: Option<String>,
}

impl Grant {
    /// The grant a stored refresh token stands for; `None` if the row is unreadable.
    fn from_row(row: &refresh_token::RefreshTokenRow) -> Option<Self> {
        Some(Grant {
            subject: serde_json::from_str(&row.user_identifier).ok()?,
            scopes: serde_json::from_str(row.scopes.as_deref()?).ok()?,
            actor: row.actor_identifier.clone(),
        })
    }

    /// The agents this grant depends on: the subject if it is an agent, and the acting agent.
    fn agent_ids(&self) -> impl Iterator<Item = i64> {
        let acting = self
            .actor
            .as_deref()
            .and_then(|actor| serde_json::from_str::<UserIdentifier>(actor).ok())
            .and_then(|actor| actor.id_agent);
        [self.subject.id_agent, acting].into_iter().flatten()
    }
}

/// A freshly issued pair, in the shape of the four token attributes.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("signing the access token failed")]
    Sign(#[from] jwt::SignError),
    #[error("refresh token storage failed")]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        OAuthError::Database(e.into())
    }
}

/// What a refresh came to.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The presented token was retired and its successor issued, in the same family.
    Rotated(IssuedTokens),
    /// A retired token came back: a copy exists somewhere, so its whole family was revoked.
    Reused,
    /// Refused; nothing changed.
    Rejected(RefreshRejection),
}

/// Why a refresh was refused (all answered with the same 401/004).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRejection {
    Unknown,
    Expired,
    Revoked,
    WrongClient,
    /// The stored row cannot be read back into a grant.
    Unreadable,
    /// The user or the acting agent may no longer get tokens (e.g. a deactivated agent).
    Inactive,
    /// The immediately previous token came back within the grace window more often than
    /// allowed (refused without revoking anything).
    GraceExhausted,
}

impl From<Refusal> for RefreshOutcome {
    fn from(refusal: Refusal) -> Self {
        RefreshOutcome::Rejected(match refusal {
            Refusal::Unknown => RefreshRejection::Unknown,
            Refusal::GraceExhausted => RefreshRejection::GraceExhausted,
            Refusal::Expired => RefreshRejection::Expired,
            Refusal::Revoked => RefreshRejection::Revoked,
            Refusal::WrongClient => RefreshRejection::WrongClient,
            // Handled by the caller, which revokes the family.
            Refusal::Retired => RefreshRejection::Revoked,
        })
    }
}

/// Ends every session of the agent `id_agent`: its own logins and the impersonations it
/// started (after a password change or a deactivation); their access tokens stop working at
/// once. Returns how many refresh tokens it revoked. Runs inside the caller's transaction (no
/// deadlock retry of its own: the caller retries its whole transaction).
pub fn end_agent_sessions(conn: &mut DbConnection, id_agent: i64) -> diesel::QueryResult<usize> {
    let owner = UserIdentifier::agent(id_agent).to_json();
    refresh_token::revoke_all_owned_by_in(
        conn,
        refresh_token::Owner {
            user_identifier: &owner,
            actor_identifier: None,
        },
    )
}

/// Makes sure the `spy_oauth_client` row of `client_id` exists (refresh tokens reference it),
/// creating it as Spryker's installer does for `frontend`.
/// True when `spy_oauth_client` has the client `client_id`.
pub fn client_exists(conn: &mut DbConnection, client_id: &str) -> diesel::QueryResult<bool> {
    use crate::db::schema::spy_oauth_client::{self as clients, dsl};
    use diesel::prelude::*;
    diesel::select(diesel::dsl::exists(
        clients::table.filter(dsl::identifier.eq(client_id)),
    ))
    .get_result(conn)
}

pub fn ensure_client(conn: &mut DbConnection, client_id: &str) -> Result<(), OAuthError> {
    use crate::db::schema::spy_oauth_client::{self as clients, dsl};
    use diesel::prelude::*;
    if !client_exists(conn, client_id)? {
        let values = (
            dsl::identifier.eq(client_id),
            dsl::name.eq(client_id),
            dsl::is_confidential.eq(Some(false)),
        );
        crate::db::insert_with_id(conn, "spy_oauth_client_pk_seq", |conn, id| match id {
            Some(id) => diesel::insert_into(clients::table)
                .values((dsl::id_oauth_client.eq(id as i32), values))
                .execute(conn),
            None => diesel::insert_into(clients::table)
                .values(values)
                .execute(conn),
        })?;
    }
    Ok(())
}

pub struct OAuthServer {
    pub keys: Arc<KeySet>,
    pub settings: OAuthSettings,
}

impl OAuthServer {
    pub fn new(keys: Arc<KeySet>, settings: OAuthSettings) -> Self {
        OAuthServer { keys, settings }
    }

    fn mint_access_token(
        &self,
        grant: &Grant,
        subject_json: &str,
        session: &str,
    ) -> Result<String, OAuthError> {
        Ok(jwt::mint(
            &self.keys,
            &AccessTokenRequest {
                audience: &self.settings.client_id,
                issuer: &self.settings.issuer,
                ttl_s: self.settings.access_token_ttl_s,
                subject: subject_json,
                scopes: &grant.scopes,
                actor: grant.actor.as_deref(),
                session: Some(session),
                backdate_s: self.settings.issued_at_backdate_s,
            },
            now_s(),
        )?)
    }

    /// A signed access token and the row of its new refresh token, in `family`.
    fn new_pair(
        &self,
        grant: &Grant,
        subject_json: &str,
        scopes_json: &str,
        family: &str,
    ) -> Result<(IssuedTokens, NewRefreshToken), OAuthError> {
        let access_token = self.mint_access_token(grant, subject_json, family)?;
        let refresh_token = new_refresh_token();
        let now = now_naive();
        let ttl = chrono::Duration::seconds(
            i64::try_from(self.settings.refresh_token_ttl_s).unwrap_or(i64::MAX / 1000),
        );
        let row = NewRefreshToken {
            identifier: hash_refresh_token(&refresh_token),
            family: family.to_string(),
            scopes: scopes_json.to_string(),
            customer_reference: grant.subject.customer_reference.clone(),
            user_identifier: subject_json.to_string(),
            actor_identifier: grant.actor.clone(),
            fk_oauth_client: self.settings.client_id.clone(),
            expires_at: now + ttl,
            created_at: now,
        };
        let tokens = IssuedTokens {
            access_token,
            refresh_token,
            expires_in: self.settings.access_token_ttl_s,
        };
        Ok((tokens, row))
    }

    /// Issues a new pair starting a new refresh-token family (a login or an impersonation).
    pub fn issue(
        &self,
        conn: &mut DbConnection,
        grant: &Grant,
    ) -> Result<IssuedTokens, OAuthError> {
        let scopes_json = serde_json::to_string(&grant.scopes).unwrap_or_else(|_| "[]".into());
        let (tokens, row) = self.new_pair(
            grant,
            &grant.subject.to_json(),
            &scopes_json,
            &random_hex(16),
        )?;
        crate::db::retry_deadlocks(|| {
            crate::db::write_transaction(&mut *conn, |conn| refresh_token::insert(conn, &row))
        })?;
        Ok(tokens)
    }

    /// Exchanges a refresh token for a new pair in the same family. The checks and the RS256
    /// signature happen before the write transaction, so no lock is held while signing; the
    /// transaction judges the row again under its lock and either retires it and stores the
    /// successor, or changes nothing. A retired token revokes its whole family. A token whose
    /// agent (or acting agent) was deactivated is refused without being consumed.
    pub fn refresh(
        &self,
        conn: &mut DbConnection,
        presented: &str,
    ) -> Result<RefreshOutcome, OAuthError> {
        let presented_hash = hash_refresh_token(presented);
        let Some(current) = refresh_token::find(conn, &presented_hash)? else {
            return Ok(RefreshOutcome::Rejected(RefreshRejection::Unknown));
        };
        let grace = self.grace();
        match refresh_token::refusal(&current, &self.settings.client_id, now_naive()) {
            // A token retired within the grace window may still be honoured: the exchange
            // decides under the row lock.
            Some(Refusal::Retired) if grace.covers(&current, now_naive()) => {}
            Some(Refusal::Retired) => {
                if let Some(family) = &current.family {
                    // In a transaction, so that a request that already answered 503 (its
                    // database hung) cannot revoke a family once the database answers again.
                    crate::db::retry_deadlocks(|| {
                        crate::db::write_transaction(&mut *conn, |conn| {
                            refresh_token::revoke_family(conn, family, now_naive())
                        })
                    })?;
                }
                return Ok(RefreshOutcome::Reused);
            }
            Some(refusal) => return Ok(refusal.into()),
            None => {}
        }
        let (Some(grant), Some(family), Some(scopes)) = (
            Grant::from_row(&current),
            current.family.as_deref(),
            current.scopes.as_deref(),
        ) else {
            return Ok(RefreshOutcome::Rejected(RefreshRejection::Unreadable));
        };
        for id_agent in grant.agent_ids() {
            if crate::agent::find_active_agent_by_id(conn, id_agent)?.is_none() {
                return Ok(RefreshOutcome::Rejected(RefreshRejection::Inactive));
            }
        }
        let (tokens, successor) =
            self.new_pair(&grant, &current.user_identifier, scopes, family)?;
        Ok(
            match refresh_token::exchange(
                conn,
                &current,
                &successor,
                &self.settings.client_id,
                grace,
            )? {
                Exchange::Rotated => RefreshOutcome::Rotated(tokens),
                Exchange::Reused => RefreshOutcome::Reused,
                Exchange::Refused(refusal) => refusal.into(),
            },
        )
    }

    /// Exchanges a refresh token the shop's PHP Glue issued (already decrypted, see
    /// [`php_token`]) for glue's own pair in a new family with the same `sub` and scopes.
    /// Stricter than PHP: the token's `spy_oauth_refresh_token` row must exist, and retiring it
    /// is a conditional update in the transaction that stores the new pair, so of parallel
    /// exchanges exactly one wins; a later replay finds the row revoked.
    pub fn refresh_php(
        &self,
        conn: &mut DbConnection,
        payload: &php_token::PhpRefreshPayload,
    ) -> Result<RefreshOutcome, OAuthError> {
        let rejected = |why| Ok(RefreshOutcome::Rejected(why));
        if payload.client_id != self.settings.client_id {
            return rejected(RefreshRejection::WrongClient);
        }
        if payload.expire_time < now_s() {
            return rejected(RefreshRejection::Expired);
        }
        let Some(row) = refresh_token::find(conn, &payload.refresh_token_id)? else {
            return rejected(RefreshRejection::Unknown);
        };
        // A row glue wrote is found by a SHA-256, never by a PHP token's id.
        if row.family.is_some() {
            return rejected(RefreshRejection::Unknown);
        }
        match refresh_token::refusal(&row, &self.settings.client_id, now_naive()) {
            // PHP Glue rotated or revoked it: no reuse detection for a family glue never had.
            Some(Refusal::Retired | Refusal::Revoked) => {
                return rejected(RefreshRejection::Revoked)
            }
            Some(refusal) => return Ok(refusal.into()),
            None => {}
        }
        let Ok(subject) = serde_json::from_str::<jwt::UserIdentifier>(&payload.user_id) else {
            return rejected(RefreshRejection::Unreadable);
        };
        let grant = Grant {
            subject,
            scopes: payload.scopes.clone(),
            actor: None,
        };
        for id_agent in grant.agent_ids() {
            if crate::agent::find_active_agent_by_id(conn, id_agent)?.is_none() {
                return rejected(RefreshRejection::Inactive);
            }
        }
        let scopes_json = serde_json::to_string(&grant.scopes).unwrap_or_else(|_| "[]".into());
        let (tokens, successor) =
            self.new_pair(&grant, &payload.user_id, &scopes_json, &random_hex(16))?;
        let won = crate::db::retry_deadlocks(|| {
            crate::db::write_transaction(&mut *conn, |conn| {
                if refresh_token::retire_foreign(conn, row.id_oauth_refresh_token, now_naive())?
                    == 0
                {
                    return Ok(false);
                }
                refresh_token::insert(conn, &successor)?;
                Ok(true)
            })
        })?;
        Ok(if won {
            RefreshOutcome::Rotated(tokens)
        } else {
            RefreshOutcome::Rejected(RefreshRejection::Revoked)
        })
    }

    /// The refresh grace window of the settings.
    fn grace(&self) -> refresh_token::Grace {
        refresh_token::Grace {
            window_s: self.settings.refresh_reuse_grace_s,
            max_uses: self.settings.refresh_reuse_grace_uses,
        }
    }

    /// True while the session an access token belongs to has not ended (logout, reuse
    /// detection, a password change or deactivation end it): one indexed read. A token without
    /// a session (not issued by glue with one) has nothing to end.
    pub fn session_is_live(
        &self,
        conn: &mut DbConnection,
        token: &VerifiedToken,
    ) -> Result<bool, OAuthError> {
        match &token.session {
            Some(family) => Ok(refresh_token::family_is_live(conn, family)?),
            None => Ok(true),
        }
    }

    /// Verifies an access token against every configured key and the claim rules.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        jwt::verify(
            &self.keys,
            token,
            &VerifyRules {
                audience: &self.settings.client_id,
                issuer: &self.settings.issuer,
                leeway_s: self.settings.leeway_s,
            },
            now,
        )
    }
}
