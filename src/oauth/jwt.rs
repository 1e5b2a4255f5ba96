//! Access tokens: RS256 JWTs shaped exactly like Spryker's (league/oauth2-server) ones.
//!
//! Header `{"typ":"JWT","alg":"RS256","kid":…}`; claims in the order `aud`, `jti`, `iat`, `nbf`,
//! `exp`, `sub`, `scopes`, `iss` (+ `act` for impersonation, RFC 8693), then `sid`, the session
//! (refresh-token family) the token belongs to, which ends when the session does. `sub` is a
//! JSON string holding Spryker's five-key user identifier object.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::identity::Identity;
pub use super::identity::UserIdentifier;
use super::keys::{KeyError, KeySet};

/// RFC 8693 actor: who is acting on behalf of `sub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    jti: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    sub: &'a str,
    scopes: &'a [String],
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
}

/// What to put into a new access token.
#[derive(Debug, Clone)]
pub struct AccessTokenRequest<'a> {
    pub audience: &'a str,
    pub issuer: &'a str,
    pub ttl_s: u64,
    /// The `sub` JSON text.
    pub subject: &'a str,
    pub scopes: &'a [String],
    /// The acting agent's `sub` JSON text, for impersonation tokens.
    pub actor: Option<&'a str>,
    /// The session (refresh-token family).
    pub session: Option<&'a str>,
    /// `iat`/`nbf` lie this many seconds before `now`.
    pub backdate_s: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("claims do not serialize: {0}")]
    Claims(#[from] serde_json::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// `header.claims.signature` with the signing key's precomputed header.
pub fn sign(keys: &KeySet, claims: &impl Serialize) -> Result<String, SignError> {
    let payload = serde_json::to_vec(claims)?;
    let mut token =
        String::with_capacity(keys.signing.header_segment.len() + payload.len() * 4 / 3 + 350);
    token.push_str(&keys.signing.header_segment);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = keys.signing.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

/// Signs a new access token; `now` is seconds since the epoch.
pub fn mint(
    keys: &KeySet,
    request: &AccessTokenRequest<'_>,
    now: i64,
) -> Result<String, SignError> {
    let issued = now.saturating_sub(i64::try_from(request.backdate_s).unwrap_or(0));
    let claims = Claims {
        aud: request.audience,
        jti: super::random_hex(40),
        iat: issued,
        nbf: issued,
        exp: now.saturating_add(i64::try_from(request.ttl_s).unwrap_or(i64::MAX)),
        sub: request.subject,
        scopes: request.scopes,
        iss: request.issuer,
        act: request.actor.map(|sub| Actor {
            sub: sub.to_string(),
        }),
        sid: request.session,
    };
    sign(keys, &claims)
}

/// Claims as they arrive: timestamps may be integers or floats (Spryker's PHP emits floats),
/// `aud` a string or a list.
#[derive(Debug, Deserialize)]
struct IncomingClaims {
    #[serde(default)]
    aud: Option<Value>,
    exp: f64,
    #[serde(default)]
    nbf: Option<f64>,
    sub: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    act: Option<Actor>,
    #[serde(default)]
    sid: Option<String>,
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// Whose it is (`sub`, and `act` for an impersonation), read as a value: glue's and PHP
    /// Glue's spellings of one identifier are the same identity.
    pub identity: Identity,
    pub scopes: Vec<String>,
    /// The session it belongs to (`None` for tokens glue did not issue with one).
    pub session: Option<String>,
}

/// What must hold for a token to be accepted.
#[derive(Debug, Clone)]
pub struct VerifyRules<'a> {
    pub audience: &'a str,
    pub issuer: &'a str,
    pub leeway_s: u64,
}

/// Why a token was refused (never shown to clients; they all get the same error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed token or header")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("bad signature or algorithm")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("wrong audience")]
    Audience,
    #[error("wrong issuer")]
    Issuer,
    #[error("malformed subject")]
    Subject,
}

impl VerifyError {
    /// A label for metrics and logs (a closed set).
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::Signature => "signature",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::Audience => "audience",
            VerifyError::Issuer => "issuer",
            VerifyError::Subject => "subject",
        }
    }
}

/// The `kid` of a token's header and the `iss` of its claims, read without verifying anything
/// (for the log of a refused token), each cut to 64 printable ASCII characters.
pub fn unverified_kid_and_issuer(token: &str) -> (Option<String>, Option<String>) {
    let printable = |text: &str| -> String {
        text.chars()
            .take(64)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect()
    };
    let kid = jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|header| header.kid)
        .map(|kid| printable(&kid));
    let issuer = token
        .split('.')
        .nth(1)
        .and_then(|claims| URL_SAFE_NO_PAD.decode(claims).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|claims| claims.get("iss").and_then(Value::as_str).map(printable));
    (kid, issuer)
}

/// Verifies signature (RS256 only, key chosen by `kid`, every key when there is none) and
/// claims; `now` is seconds since the epoch.
pub fn verify(
    keys: &KeySet,
    token: &str,
    rules: &VerifyRules<'_>,
    now: f64,
) -> Result<VerifiedToken, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(VerifyError::Signature);
    }
    let mut validation = Validation::new(Algorithm::RS256);
    // Claims are checked below, where floats and our own rules are handled.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();

    let candidates: Vec<_> = match &header.kid {
        Some(kid) => vec![keys.verification_key(kid).ok_or(VerifyError::UnknownKey)?],
        None => keys.verification.iter().collect(),
    };
    let claims = candidates
        .iter()
        .find_map(|key| {
            jsonwebtoken::decode::<IncomingClaims>(token, &key.decoding_key, &validation).ok()
        })
        .ok_or(VerifyError::Signature)?
        .claims;

    let leeway = rules.leeway_s as f64;
    if !claims.exp.is_finite() || claims.exp + leeway < now {
        return Err(VerifyError::Expired);
    }
    if let Some(nbf) = claims.nbf {
        if !nbf.is_finite() || nbf - leeway > now {
            return Err(VerifyError::NotYetValid);
        }
    }
    let audience_ok = match &claims.aud {
        Some(Value::String(aud)) => aud == rules.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(rules.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(VerifyError::Audience);
    }
    if let Some(iss) = &claims.iss {
        if iss != rules.issuer {
            return Err(VerifyError::Issuer);
        }
    }
    let identity = Identity::parse(&claims.sub, claims.act.as_ref().map(|a| a.sub.as_str()))
        .ok_or(VerifyError::Subject)?;
    Ok(VerifiedToken {
        identity,
        scopes: claims.scopes,
        session: claims.sid,
    })
}

/// Signs a token with our signer and verifies it with jsonwebtoken, so a broken key or crypto
/// backend fails at boot, not on the first login.
pub fn self_test(keys: &KeySet) -> Result<(), KeyError> {
    let claims = serde_json::json!({"sub": "self-test", "exp": 4_102_444_800u64});
    let token = sign(keys, &claims).map_err(|e| KeyError::SelfTest(e.to_string()))?;
    let key = keys
        .verification_key(&keys.signing.kid)
        .ok_or_else(|| KeyError::SelfTest("signing key missing from the JWK Set".into()))?;
    jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &key.decoding_key,
        &jsonwebtoken::Validation::new(Algorithm::RS256),
    )
    .map_err(|e| KeyError::SelfTest(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn keys() -> &'static KeySet {
        static KEYS: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| {
            let (private, _) = super::super::keys::generate_pem().unwrap();
            KeySet::from_pems(private.as_bytes(), &[]).unwrap()
        })
    }

    const RULES: VerifyRules<'static> = VerifyRules {
        audience: "frontend",
        issuer: "http://glue.test",
        leeway_s: 30,
    };

    fn valid_token(now: i64) -> String {
        let sub = UserIdentifier::agent(1).to_json();
        let scopes = vec!["agent".to_string()];
        mint(
            keys(),
            &AccessTokenRequest {
                audience: "frontend",
                issuer: "http://glue.test",
                ttl_s: 600,
                subject: &sub,
                scopes: &scopes,
                actor: None,
                session: Some("0123abcd"),
                backdate_s: 1,
            },
            now,
        )
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Validly signed tokens whose claims vary: accepted exactly when every rule holds.
        #[test]
        fn a_signed_token_is_accepted_exactly_when_its_claims_hold(
            aud in prop_oneof![
                Just(json!("frontend")), Just(json!("other")), Just(json!(["x", "frontend"])),
                Just(json!(["x"])), Just(json!(null)), Just(json!(7))
            ],
            iss in prop_oneof![Just(None), Just(Some("http://glue.test")), Just(Some("http://evil.test"))],
            exp_offset in -100i64..100,
            nbf_offset in prop::option::of(-100i64..100),
            float_times in any::<bool>(),
            sub in prop_oneof![
                Just(UserIdentifier::agent(3).to_json()),
                Just(UserIdentifier::customer("DE--1".into(), 1).to_json()),
                Just("not json".to_string()),
            ],
        ) {
            let now = 1_800_000_000i64;
            let time = |offset: i64| if float_times {
                json!(now as f64 + offset as f64 + 0.25)
            } else {
                json!(now + offset)
            };
            let mut claims = json!({"aud": aud, "exp": time(exp_offset), "sub": sub, "scopes": ["agent"]});
            if let Some(offset) = nbf_offset {
                claims["nbf"] = time(offset);
            }
            if let Some(iss) = iss {
                claims["iss"] = json!(iss);
            }
            let token = sign(keys(), &claims).unwrap();
            let extra = if float_times { 0.25 } else { 0.0 };
            let expected = match verify(keys(), &token, &RULES, now as f64) {
                Ok(verified) => {
                    prop_assert_eq!(Some(verified.identity), Identity::parse(&sub, None));
                    true
                }
                Err(_) => false,
            };
            let audience_ok = aud == json!("frontend") || aud == json!(["x", "frontend"]);
            let holds = audience_ok
                && iss != Some("http://evil.test")
                && exp_offset as f64 + extra + 30.0 >= 0.0
                && nbf_offset.is_none_or(|n| n as f64 + extra - 30.0 <= 0.0)
                && sub != "not json";
            prop_assert_eq!(expected, holds);
        }

        /// Every single-byte alteration of a valid token is refused, except in the unused low
        /// bits of a segment's last base64 character.
        #[test]
        fn an_altered_token_is_refused(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let now = 1_800_000_000i64;
            let token = valid_token(now);
            prop_assert!(verify(keys(), &token, &RULES, now as f64).is_ok());
            let mut bytes = token.into_bytes();
            let i = position.index(bytes.len());
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            let altered = String::from_utf8_lossy(&bytes).into_owned();
            if verify(keys(), &altered, &RULES, now as f64).is_ok() {
                prop_assert!(
                    i + 1 == bytes.len() || bytes[i + 1] == b'.',
                    "only the last character of a segment may change harmlessly"
                );
            }
        }

        #[test]
        fn arbitrary_strings_are_refused(token in "\\PC{0,300}") {
            prop_assert!(verify(keys(), &token, &RULES, 1_800_000_000.0).is_err());
        }
    }
}
