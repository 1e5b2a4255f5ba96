//! Shared OAuth (Spryker's `Oauth` module): keys and the JWK Set, identities as values,
//! access-token minting and verification, refresh-token rows and their rules (mint, hash,
//! persist, rotate, revoke). The session lifecycle built on them is the `session` flow module, above this one.
//!
//! `OAuthServer` is built once in `startup.rs`. Its methods are synchronous and take a
//! connection: callers run them inside `db::run`. Nothing here knows HTTP: outcomes are enums,
//! failures [`OAuthError`].

pub mod identity;
pub mod jwt;
pub mod keys;
pub mod php_token;
pub mod refresh_token;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::db::{DbConnection, DbError};
use crate::settings::OAuthSettings;
use identity::Identity;
use jwt::{AccessTokenRequest, VerifiedToken, VerifyError, VerifyRules};
use keys::KeySet;
use refresh_token::NewRefreshToken;

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

/// What a new token pair is for.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Whose session it is.
    pub identity: Identity,
    /// The `sub` text the tokens carry: glue's own for a new session; for a session that goes
    /// on (a refresh, an exchanged PHP Glue token) the text it had, verbatim, as PHP does.
    pub subject_text: String,
    pub scopes: Vec<String>,
}

impl Grant {
    /// A new session of `identity`, its `sub` written as glue writes it.
    pub fn new(identity: Identity, scopes: Vec<String>) -> Self {
        Grant {
            subject_text: identity.subject.to_json(),
            identity,
            scopes,
        }
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

/// True when `spy_oauth_client` has the client `client_id`.
pub fn client_exists(conn: &mut DbConnection, client_id: &str) -> diesel::QueryResult<bool> {
    use crate::db::schema::spy_oauth_client::{self as clients, dsl};
    use diesel::prelude::*;
    diesel::select(diesel::dsl::exists(
        clients::table.filter(dsl::identifier.eq(client_id)),
    ))
    .get_result(conn)
}

/// Makes sure the `spy_oauth_client` row of `client_id` exists (refresh tokens reference it),
/// creating it as Spryker's installer does for `frontend`.
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
    /// The one clock of every time rule: token lifetimes, refresh-token expiry and the grace
    /// window (the security blocker is given the same one).
    clock: Arc<dyn Clock>,
}

impl OAuthServer {
    pub fn new(keys: Arc<KeySet>, settings: OAuthSettings, clock: Arc<dyn Clock>) -> Self {
        OAuthServer {
            keys,
            settings,
            clock,
        }
    }

    /// Now, in seconds since the epoch.
    pub fn now_s(&self) -> i64 {
        self.clock.now().and_utc().timestamp()
    }

    /// Now, as a timestamp in Spryker's tables (the shop's wall-clock time, see
    /// [`crate::db::in_shop_zone`]).
    pub fn shop_now(&self) -> chrono::NaiveDateTime {
        crate::db::in_shop_zone(self.clock.now())
    }

    fn mint_access_token(&self, grant: &Grant, session: &str) -> Result<String, OAuthError> {
        let actor = grant.identity.actor_json();
        Ok(jwt::mint(
            &self.keys,
            &AccessTokenRequest {
                audience: &self.settings.client_id,
                issuer: &self.settings.issuer,
                ttl_s: self.settings.access_token_ttl_s,
                subject: &grant.subject_text,
                scopes: &grant.scopes,
                actor: actor.as_deref(),
                session: Some(session),
                backdate_s: self.settings.issued_at_backdate_s,
            },
            self.now_s(),
        )?)
    }

    /// A signed access token and the row of its new refresh token, in `family` (no lock is
    /// held while signing: callers store the row afterwards).
    pub fn new_pair(
        &self,
        grant: &Grant,
        family: &str,
    ) -> Result<(IssuedTokens, NewRefreshToken), OAuthError> {
        let access_token = self.mint_access_token(grant, family)?;
        let refresh_token = new_refresh_token();
        let now = self.shop_now();
        let ttl = chrono::Duration::seconds(
            i64::try_from(self.settings.refresh_token_ttl_s).unwrap_or(i64::MAX / 1000),
        );
        let row = NewRefreshToken {
            identifier: hash_refresh_token(&refresh_token),
            family: family.to_string(),
            scopes: serde_json::to_string(&grant.scopes).unwrap_or_else(|_| "[]".into()),
            customer_reference: grant
                .identity
                .subject
                .customer_reference()
                .map(str::to_string),
            user_identifier: grant.subject_text.clone(),
            actor_identifier: grant.identity.actor_json(),
            id_agent: grant.identity.agent(),
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

    /// A new refresh-token family id (a session).
    pub fn new_family() -> String {
        random_hex(16)
    }

    /// Issues a new pair starting a new refresh-token family (a login or an impersonation).
    pub fn issue(
        &self,
        conn: &mut DbConnection,
        grant: &Grant,
    ) -> Result<IssuedTokens, OAuthError> {
        let (tokens, row) = self.new_pair(grant, &Self::new_family())?;
        crate::db::retry_deadlocks(|| {
            crate::db::write_transaction(&mut *conn, |conn| refresh_token::insert(conn, &row))
        })?;
        Ok(tokens)
    }

    /// The refresh grace window of the settings.
    pub fn grace(&self) -> refresh_token::Grace {
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
        let now = self.clock.now().and_utc().timestamp_micros() as f64 / 1e6;
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
