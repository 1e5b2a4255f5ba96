//! What every OAuth resource shares (Spryker's `OauthApi` + `SecurityBlockerRestApi`): the
//! `Authorization` check the REST core runs before each API route, the [`Authenticated`]
//! extractor, the token resource, the 429 of a blocked login, the JWK Set, and the one place
//! where the domain errors below (login, OAuth, passwords) become HTTP answers.

pub mod discovery;
pub mod jwks;

use std::future::{ready, Ready};
use std::sync::Arc;

use crate::db::{self, DbPool};

use actix_web::http::StatusCode;
use actix_web::{dev::Payload, FromRequest, HttpMessage, HttpRequest};

use crate::glue_application::error::{GlueError, RestErrorMessage};
use crate::glue_application::response::{RestResource, TokenAttributes};
use crate::glue_application::{RequestValidator, ValidationFuture};
use crate::login::LoginError;
use crate::oauth::jwt::{VerifiedToken, VerifyError};
use crate::oauth::{IssuedTokens, OAuthError, OAuthServer, TOKEN_TYPE};
use crate::password::PasswordError;
use crate::security_blocker::{BlockScope, Blocked};

pub const CODE_INVALID_ACCESS_TOKEN: &str = "001";
pub const CODE_MISSING_ACCESS_TOKEN: &str = "002";
pub const DETAIL_INVALID_ACCESS_TOKEN: &str = "Invalid access token.";
pub const DETAIL_MISSING_ACCESS_TOKEN: &str = "Missing access token.";
/// The email method's code could not be sent (Spryker's `RESPONSE_SENDING_CODE_ERROR`).
pub const CODE_SENDING_CODE_ERROR: &str = "5910";
pub const DETAIL_SENDING_CODE_ERROR: &str = "Something went wrong while sending your code. Please try again later or contact the system administrator.";
/// When a client may ask for a code again after a failed send.
pub const SENDING_CODE_RETRY_AFTER_S: u64 = 30;
pub const CODE_BLOCKED: &str = "4401";

pub fn invalid_access_token() -> GlueError {
    GlueError::one(
        StatusCode::UNAUTHORIZED,
        Some(CODE_INVALID_ACCESS_TOKEN),
        DETAIL_INVALID_ACCESS_TOKEN,
    )
}

pub fn missing_access_token() -> GlueError {
    GlueError::one(
        StatusCode::FORBIDDEN,
        Some(CODE_MISSING_ACCESS_TOKEN),
        DETAIL_MISSING_ACCESS_TOKEN,
    )
}

/// Splits `Bearer <token>` into the token: exactly two whitespace-separated parts, the first
/// `Bearer` in any case.
pub fn parse_bearer(value: &str) -> Option<&str> {
    let mut parts = value.split_whitespace();
    let (scheme, token) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token)
}

/// The verified `Authorization` token, left in the request extensions by
/// [`BearerAuthorization`].
#[derive(Debug, Clone)]
pub struct AuthorizationToken(pub VerifiedToken);

/// Counts a refused access token into `glue_token_refusals_total{reason}` and, for the reasons an
/// operator can act on (a foreign issuer, an unknown `kid`, a bad signature: instances that do
/// not share `oauth.issuer` or the keys), logs it at `info` once per reason and minute, with the
/// `kid` and `iss` seen — never the token.
pub fn refused_token(metrics: &crate::metrics::Metrics, token: &str, error: &VerifyError) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_LOGGED: [AtomicI64; 3] = [const { AtomicI64::new(i64::MIN) }; 3];
    let reason = error.reason();
    metrics.token_refusals.with_label_values(&[reason]).inc();
    let slot = match error {
        VerifyError::Issuer => 0,
        VerifyError::UnknownKey => 1,
        VerifyError::Signature => 2,
        _ => return,
    };
    let minute = chrono::Utc::now().timestamp() / 60;
    if LAST_LOGGED[slot].swap(minute, Ordering::Relaxed) == minute {
        return;
    }
    let (kid, issuer) = crate::oauth::jwt::unverified_kid_and_issuer(token);
    log::info!(
        target: "security",
        "Access token refused ({reason}): kid={} iss={} (every instance must share oauth.issuer and the signing keys; logged once a minute per reason)",
        kid.as_deref().unwrap_or("-"),
        issuer.as_deref().unwrap_or("-"),
    );
}

/// The core's request validator for `Authorization`: when present it must hold a valid token
/// of a live session — 401/`001` otherwise, even on public routes, as in Spryker.
pub struct BearerAuthorization {
    pub oauth: Arc<OAuthServer>,
    pub mfa: Arc<crate::multi_factor_auth::AgentMfa>,
    pub pool: DbPool,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl RequestValidator for BearerAuthorization {
    fn validate(&self, req: &HttpRequest) -> ValidationFuture {
        let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
            return Box::pin(ready(Ok(())));
        };
        let verified = match value.to_str().ok().and_then(parse_bearer) {
            Some(token) => self.oauth.verify(token).map_err(|error| {
                refused_token(&self.metrics, token, &error);
                invalid_access_token()
            }),
            None => Err(invalid_access_token()),
        };
        let verified = match verified {
            Ok(verified) => verified,
            Err(error) => return Box::pin(ready(Err(error))),
        };
        let req = req.clone();
        let oauth = self.oauth.clone();
        let mfa = self.mfa.clone();
        let pool = self.pool.clone();
        Box::pin(async move {
            let checked = verified.clone();
            let live = db::run(&pool, move |conn| {
                crate::session::token_is_live(conn, &oauth, &mfa, &checked)
            })
            .await?;
            if !live {
                return Err(invalid_access_token());
            }
            req.extensions_mut().insert(AuthorizationToken(verified));
            Ok(())
        })
    }
}

/// Any caller with a valid `Authorization` bearer token; 403/`002` without one.
#[derive(Debug, Clone)]
pub struct Authenticated(pub VerifiedToken);

impl FromRequest for Authenticated {
    type Error = GlueError;
    type Future = Ready<Result<Self, GlueError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<AuthorizationToken>()
                .map(|t| Authenticated(t.0.clone()))
                .ok_or_else(missing_access_token),
        )
    }
}

/// The resource every token endpoint answers with: the four attributes, `id` null.
pub fn token_resource(
    base_url: &str,
    resource_type: &'static str,
    tokens: IssuedTokens,
) -> RestResource {
    RestResource::new(
        base_url,
        resource_type,
        None,
        TokenAttributes {
            token_type: TOKEN_TYPE,
            expires_in: tokens.expires_in,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        },
        "",
    )
}

/// 429/`4401` for a blocked login, with `Retry-After`; the text says which counter refused.
pub fn blocked(blocked: Blocked) -> GlueError {
    let detail = match blocked.scope {
        BlockScope::Address => format!(
            "Too many log in attempts from your address. Please wait {} minutes before trying again.",
            blocked.block_minutes
        ),
        BlockScope::Account => format!(
            "Too many failed log in attempts for this account. Please wait {} minutes before trying again.",
            blocked.block_minutes
        ),
    };
    GlueError::Throttled {
        error: RestErrorMessage::new(StatusCode::TOO_MANY_REQUESTS, Some(CODE_BLOCKED), detail),
        retry_after_s: blocked.retry_after_s,
    }
}

// The one place where failures below the resource layer become HTTP answers: an unreachable
// database is 503 (through `DbError`), anything else 500 with its cause in the log.

impl From<OAuthError> for GlueError {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Database(db) => db.into(),
            sign => GlueError::internal(sign),
        }
    }
}

impl From<PasswordError> for GlueError {
    fn from(e: PasswordError) -> Self {
        match e {
            // The bcrypt queue is full: shed the login at once, with Retry-After.
            PasswordError::Overloaded => GlueError::unavailable(e),
            // Nobody reads this answer (the client left); nothing went wrong on our side.
            PasswordError::Abandoned => GlueError::one(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                crate::glue_application::error::DETAIL_UNAVAILABLE,
            ),
            other => GlueError::internal(other),
        }
    }
}

impl From<LoginError> for GlueError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Database(db) => db.into(),
            LoginError::OAuth(oauth) => oauth.into(),
            LoginError::Password(password) => password.into(),
            LoginError::SecondFactor(mfa) => GlueError::internal(mfa),
            // Fail closed, with Retry-After: no login is decided without its counters.
            LoginError::BlockerStore(store) => GlueError::unavailable(store),
            // Logged (without the code) where it failed; the answer names no relay.
            LoginError::Mail(_) => GlueError::Throttled {
                error: RestErrorMessage::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(CODE_SENDING_CODE_ERROR),
                    DETAIL_SENDING_CODE_ERROR,
                ),
                retry_after_s: SENDING_CODE_RETRY_AFTER_S,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::parse_bearer;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_bearer_header_in_any_spacing_and_case_yields_its_token(
            scheme in "[bB][eE][aA][rR][eE][rR]",
            lead in "[ \t]{0,3}",
            gap in "[ \t]{1,3}",
            trail in "[ \t]{0,3}",
            token in "[A-Za-z0-9._~+/=-]{1,64}",
        ) {
            let header = format!("{lead}{scheme}{gap}{token}{trail}");
            prop_assert_eq!(parse_bearer(&header), Some(token.as_str()));
            let extra = format!("{header} more");
            prop_assert_eq!(parse_bearer(&extra), None);
        }

        #[test]
        fn any_header_is_one_token_or_nothing(value in "\\PC{0,64}") {
            if let Some(token) = parse_bearer(&value) {
                prop_assert!(!token.is_empty());
                prop_assert!(!token.chars().any(char::is_whitespace));
            }
        }
    }

    #[test]
    fn a_bearer_header_is_the_scheme_in_any_case_and_one_token() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bEaReR   abc "), Some("abc"));
        assert_eq!(parse_bearer("Bearer"), None);
        assert_eq!(parse_bearer("Bearer a b"), None);
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer(""), None);
    }
}
