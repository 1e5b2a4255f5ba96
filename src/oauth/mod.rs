//! Shared OAuth (Spryker's `Oauth` + `OauthRevoke` modules): keys and the JWK Set, access-token
//! minting and verification, refresh tokens (mint, hash, persist, rotate, revoke).
//!
//! `OAuthServer` is built once in `startup.rs`. Its methods are synchronous and take a
//! connection: callers run them inside `web::block`.

pub mod grant;
pub mod jwks_rest_api;
pub mod jwt;
pub mod keys;
pub mod refresh_token;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::DbConnection;
use crate::glue_application::error::GlueError;
use crate::settings::OAuthSettings;
use jwt::{AccessTokenRequest, UserIdentifier, VerifiedToken, VerifyError, VerifyRules};
use keys::KeySet;
use refresh_token::{NewRefreshToken, RotateOutcome};

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
    chrono::Utc::now().naive_utc()
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
            scopes: serde_json::from_str(&row.scopes).ok()?,
            actor: row.actor_identifier.clone(),
        })
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
    Database(#[from] diesel::result::Error),
}

impl From<OAuthError> for GlueError {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Database(db) => db.into(),
            sign => GlueError::internal(sign),
        }
    }
}

/// Why a refresh was refused (all answered with the same 401/004).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRejection {
    Unknown,
    Expired,
    Revoked,
    WrongClient,
    /// A rotated token came back: its family has been revoked.
    Reused,
    /// Another request rotated the token between our read and our write.
    LostRace,
    /// The user or the acting agent may no longer get tokens (e.g. a deactivated agent).
    Inactive,
}

pub struct OAuthServer {
    pub keys: Arc<KeySet>,
    pub settings: OAuthSettings,
}

impl OAuthServer {
    pub fn new(keys: Arc<KeySet>, settings: OAuthSettings) -> Self {
        OAuthServer { keys, settings }
    }

    fn mint_access_token(&self, grant: &Grant, subject_json: &str) -> Result<String, OAuthError> {
        Ok(jwt::mint(
            &self.keys,
            &AccessTokenRequest {
                audience: &self.settings.client_id,
                issuer: &self.settings.issuer,
                ttl_s: self.settings.access_token_ttl_s,
                subject: subject_json,
                scopes: &grant.scopes,
                actor: grant.actor.as_deref(),
            },
            now_s(),
        )?)
    }

    fn new_row(
        &self,
        grant: &Grant,
        subject_json: &str,
        scopes_json: &str,
        identifier: &str,
        family: &str,
    ) -> NewRefreshToken {
        let now = now_naive();
        let ttl = chrono::Duration::seconds(
            i64::try_from(self.settings.refresh_token_ttl_s).unwrap_or(i64::MAX / 1000),
        );
        NewRefreshToken {
            identifier: identifier.to_string(),
            family: family.to_string(),
            scopes: scopes_json.to_string(),
            customer_reference: grant.subject.customer_reference.clone(),
            user_identifier: subject_json.to_string(),
            actor_identifier: grant.actor.clone(),
            fk_oauth_client: self.settings.client_id.clone(),
            expires_at: now + ttl,
            created_at: now,
            updated_at: now,
        }
    }

    /// Issues a new pair starting a new refresh-token family (a login or an impersonation).
    pub fn issue(
        &self,
        conn: &mut DbConnection,
        grant: &Grant,
    ) -> Result<IssuedTokens, OAuthError> {
        let subject_json = grant.subject.to_json();
        let access_token = self.mint_access_token(grant, &subject_json)?;
        let refresh_token = new_refresh_token();
        let identifier = hash_refresh_token(&refresh_token);
        let family = random_hex(16);
        let scopes_json = serde_json::to_string(&grant.scopes).unwrap_or_else(|_| "[]".into());
        let row = self.new_row(grant, &subject_json, &scopes_json, &identifier, &family);
        refresh_token::insert(conn, &row)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            expires_in: self.settings.access_token_ttl_s,
        })
    }

    /// Exchanges a refresh token for a new pair in the same family, atomically: the presented
    /// token is retired and its successor stored in one transaction, or nothing changes. The
    /// access token is signed before the transaction so no lock is held while signing.
    ///
    /// `may_act` decides whether the token's user (and acting agent) may still get tokens, e.g.
    /// that an agent was not deactivated since logging in; if not, nothing changes.
    pub fn refresh(
        &self,
        conn: &mut DbConnection,
        presented: &str,
        may_act: impl FnOnce(&mut DbConnection, &Grant) -> diesel::QueryResult<bool>,
    ) -> Result<Result<IssuedTokens, RefreshRejection>, OAuthError> {
        let presented_hash = hash_refresh_token(presented);
        let Some(current) = refresh_token::find(conn, &presented_hash)? else {
            return Ok(Err(RefreshRejection::Unknown));
        };
        let exchangeable =
            refresh_token::is_exchangeable(&current, &self.settings.client_id, now_naive());
        let grant = Grant::from_row(&current);
        if let (true, Some(grant)) = (exchangeable, &grant) {
            if !may_act(conn, grant)? {
                return Ok(Err(RefreshRejection::Inactive));
            }
        }
        let prepared = match (exchangeable, grant) {
            (true, Some(grant)) => {
                let access_token = self.mint_access_token(&grant, &current.user_identifier)?;
                let refresh_token = new_refresh_token();
                let row = self.new_row(
                    &grant,
                    &current.user_identifier,
                    &current.scopes,
                    &hash_refresh_token(&refresh_token),
                    &current.family,
                );
                Some((row, access_token, refresh_token))
            }
            _ => None,
        };
        let outcome = refresh_token::rotate(
            conn,
            &presented_hash,
            prepared.as_ref().map(|(row, _, _)| row),
            &self.settings.client_id,
        )?;
        Ok(match (outcome, prepared) {
            (RotateOutcome::Rotated, Some((_, access_token, refresh_token))) => Ok(IssuedTokens {
                access_token,
                refresh_token,
                expires_in: self.settings.access_token_ttl_s,
            }),
            (RotateOutcome::Rejected(reason), _) => Err(reason),
            (RotateOutcome::Rotated, None) => Err(RefreshRejection::LostRace),
        })
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
