//! Bearer authentication (contract §1, §3): what a valid access token is, and every forgery
//! that must be refused with 401/001.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

backends!(forged_tokens_are_refused_and_valid_variants_accepted);

const AGENT_SUB: &str = r#"{"id_company_user":null,"id_agent":1,"customer_reference":null,"id_customer":null,"permissions":null}"#;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims() -> Value {
    let now = now();
    json!({"aud":"frontend","jti":"a".repeat(80),"iat":now,"nbf":now,"exp":now + 600,"sub":AGENT_SUB,"scopes":["agent"],"iss":BASE_URL})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn header() -> Header {
    Header {
        kid: Some(test_key_id()),
        ..Header::new(Algorithm::RS256)
    }
}

fn signed(claims: &Value) -> String {
    sign_with_test_key(header(), claims)
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn status_with(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app.delete_refresh_token("mine", Some(token)).await;
    let status = response.status().as_u16();
    let body = if status == 204 {
        Value::Null
    } else {
        response.json().await.unwrap()
    };
    (status, body)
}

async fn forged_tokens_are_refused_and_valid_variants_accepted(backend: Backend) {
    let app = spawn_app(backend);
    let valid = signed(&claims());
    let (_, public_pem) = test_key_pair();
    let (other_private, _) = glue::oauth::keys::generate_pem().unwrap();
    let other_kid = glue::oauth::keys::KeySet::from_pems(other_private.as_bytes(), &[])
        .unwrap()
        .signing
        .kid;
    let parts: Vec<&str> = valid.split('.').collect();

    let forged: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"typ":"JWT","alg":"none"})),
                b64(&claims())
            ),
        ),
        (
            "alg none with kid",
            format!(
                "{}.{}.",
                b64(&json!({"typ":"JWT","alg":"none","kid":test_key_id()})),
                b64(&claims())
            ),
        ),
        (
            "HS256 with the public key as secret",
            jsonwebtoken::encode(
                &Header {
                    kid: Some(test_key_id()),
                    ..Header::new(Algorithm::HS256)
                },
                &claims(),
                &EncodingKey::from_secret(public_pem.as_bytes()),
            )
            .unwrap(),
        ),
        (
            "wrong aud",
            signed(&with(claims(), "aud", json!("backoffice"))),
        ),
        (
            "aud list without us",
            signed(&with(claims(), "aud", json!(["a", "b"]))),
        ),
        ("no aud", signed(&without(claims(), "aud"))),
        (
            "wrong iss",
            signed(&with(claims(), "iss", json!("https://evil.example"))),
        ),
        (
            "expired beyond the leeway",
            signed(&with(claims(), "exp", json!(now() - 60))),
        ),
        ("no exp", signed(&without(claims(), "exp"))),
        (
            "nbf in the future",
            signed(&with(claims(), "nbf", json!(now() + 120))),
        ),
        (
            "sub not JSON",
            signed(&with(claims(), "sub", json!("agent-1"))),
        ),
        (
            "unknown kid",
            jsonwebtoken::encode(
                &Header {
                    kid: Some(other_kid.clone()),
                    ..Header::new(Algorithm::RS256)
                },
                &claims(),
                &EncodingKey::from_rsa_pem(other_private.as_bytes()).unwrap(),
            )
            .unwrap(),
        ),
        (
            "another key claiming our kid",
            jsonwebtoken::encode(
                &header(),
                &claims(),
                &EncodingKey::from_rsa_pem(other_private.as_bytes()).unwrap(),
            )
            .unwrap(),
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&with(claims(), "sub", json!(AGENT_SUB.replace("1", "2")))),
                parts[2]
            ),
        ),
        (
            "truncated signature",
            format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]),
        ),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("garbage", "definitely-not-a-jwt".into()),
    ];
    for (case, token) in forged {
        let (status, body) = status_with(&app, &token).await;
        assert_eq!(status, 401, "{case}");
        assert_eq!(
            body,
            error_body(Some("001"), 401, "Invalid access token."),
            "{case}"
        );
    }

    let now_f = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let accepted: Vec<(&str, String)> = vec![
        ("as issued", valid.clone()),
        (
            "float timestamps (Spryker's PHP)",
            signed(
                &json!({"aud":"frontend","jti":"b","iat":now_f,"nbf":now_f,"exp":now_f + 600.5,"sub":AGENT_SUB,"scopes":["agent"]}),
            ),
        ),
        (
            "no kid: every key is tried",
            sign_with_test_key(Header::new(Algorithm::RS256), &claims()),
        ),
        (
            "aud as a list",
            signed(&with(claims(), "aud", json!(["other", "frontend"]))),
        ),
        ("no iss", signed(&without(claims(), "iss"))),
        (
            "expired within the leeway",
            signed(&with(claims(), "exp", json!(now() - 10))),
        ),
        (
            "nbf within the leeway",
            signed(&with(claims(), "nbf", json!(now() + 10))),
        ),
    ];
    for (case, token) in accepted {
        let (status, body) = status_with(&app, &token).await;
        assert_eq!(status, 204, "{case}: {body}");
    }
    // The scheme is case-insensitive; anything but two parts is refused.
    for (value, expected) in [
        (format!("bearer {valid}"), 204),
        (format!("BEARER {valid}"), 204),
        (format!("Bearer  {valid} "), 204),
        (format!("Token {valid}"), 401),
        (format!("Bearer {valid} extra"), 401),
        (valid.clone(), 401),
    ] {
        let response = app
            .client
            .delete(app.url("/refresh-tokens/mine"))
            .header("Authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
    }
}

#[tokio::test]
async fn tokens_of_a_rotated_out_key_verify_while_its_public_key_stays_configured() {
    let (old_private, old_public) = glue::oauth::keys::generate_pem().unwrap();
    let dir = std::env::temp_dir().join(format!("glue-rotation-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let old_public_path = dir.join("old-public.pem");
    std::fs::write(&old_public_path, &old_public).unwrap();
    let old_kid = glue::oauth::keys::KeySet::from_pems(old_private.as_bytes(), &[])
        .unwrap()
        .signing
        .kid;
    let old_token = jsonwebtoken::encode(
        &Header {
            kid: Some(old_kid.clone()),
            ..Header::new(Algorithm::RS256)
        },
        &claims(),
        &EncodingKey::from_rsa_pem(old_private.as_bytes()).unwrap(),
    )
    .unwrap();

    // Without the old public key the token is refused.
    let app = spawn_app(Backend::Sqlite);
    assert_eq!(status_with(&app, &old_token).await.0, 401);
    drop(app);

    let path = old_public_path.display().to_string();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.oauth.verification_key_paths = vec![path]
    });
    assert_eq!(status_with(&app, &old_token).await.0, 204);
    let jwks = app.jwks().await;
    let kids: Vec<String> = jwks
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, vec![test_key_id(), old_kid]);
    // New tokens are signed with the new key.
    let (access, _) = app.agent_session("rotation@example.com").await;
    assert_eq!(
        jsonwebtoken::decode_header(&access).unwrap().kid,
        Some(test_key_id())
    );
    let _ = std::fs::remove_dir_all(dir);
}
