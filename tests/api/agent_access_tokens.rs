//! `POST /agent-access-tokens` (contract sections 2, 3, 8).

use diesel::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::backends;
use crate::helpers::*;

backends!(
    the_seed_request_returns_the_seed_shape,
    the_access_token_verifies_with_the_jwks_and_carries_every_claim,
    every_login_failure_is_the_same_4101,
    a_password_longer_than_72_bytes_never_logs_in_by_its_prefix,
    spryker_hash_variants_verify,
    the_refresh_token_row_holds_only_a_hash,
    a_successful_login_records_last_login,
    an_invalid_authorization_header_is_refused_even_on_login,
);

async fn the_seed_request_returns_the_seed_shape(backend: Backend) {
    let app = spawn_app(backend);
    let response = app.post_agent_login(DEMO_USERNAME, DEMO_PASSWORD).await;
    assert_eq!(response.status(), 201);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], JSON_API);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();

    let data = body["data"].as_object().unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["type", "id", "attributes", "links"]
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only data at the top level"
    );
    assert_eq!(data["type"], "agent-access-tokens");
    assert_eq!(data["id"], Value::Null);
    assert_eq!(
        data["links"],
        json!({"self": format!("{BASE_URL}/agent-access-tokens")})
    );
    let attributes = data["attributes"].as_object().unwrap();
    assert_eq!(
        attributes.keys().collect::<Vec<_>>(),
        ["tokenType", "expiresIn", "accessToken", "refreshToken"]
    );
    assert_eq!(attributes["tokenType"], "Bearer");
    assert_eq!(attributes["expiresIn"], json!(28800));
    assert!(attributes["expiresIn"].is_u64());
    assert_eq!(
        attributes["accessToken"]
            .as_str()
            .unwrap()
            .split('.')
            .count(),
        3
    );
    let refresh = attributes["refreshToken"].as_str().unwrap();
    assert!(refresh.len() >= 43, "at least 256 bits");
    assert!(refresh
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
}

async fn the_access_token_verifies_with_the_jwks_and_carries_every_claim(backend: Backend) {
    let app = spawn_app(backend);
    let body = app.demo_agent_tokens().await;
    let token = body["data"]["attributes"]["accessToken"].as_str().unwrap();

    let header: Value = serde_json::from_str(&jwt_segment(token, 0)).unwrap();
    let jwks = app.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    let kid = jwks.keys[0].common.key_id.clone().unwrap();
    assert_eq!(header, json!({"typ":"JWT","alg":"RS256","kid":kid}));
    assert_eq!(
        jwt_segment(token, 0),
        format!(r#"{{"typ":"JWT","alg":"RS256","kid":"{kid}"}}"#)
    );

    let claims = app.verify_with_jwks(token).await;
    let raw: serde_json::Map<String, Value> = serde_json::from_str(&jwt_segment(token, 1)).unwrap();
    assert_eq!(
        raw.keys().collect::<Vec<_>>(),
        ["aud", "jti", "iat", "nbf", "exp", "sub", "scopes", "iss", "sid"]
    );
    assert_eq!(claims["aud"], "frontend");
    // The session: the family of the refresh token issued with it.
    let sid = claims["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 32);
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 80);
    assert!(jti
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    let iat = claims["iat"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - iat).abs() <= 5);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    // exp is issue time + the TTL; iat and nbf are backdated by oauth.issued_at_backdate_s (1 s)
    // so that PHP's zero-leeway check accepts a fresh token.
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 28800 + 1);
    assert_eq!(
        claims["sub"],
        r#"{"id_company_user":null,"id_agent":1,"customer_reference":null,"id_customer":null,"permissions":null}"#
    );
    assert_eq!(claims["scopes"], json!(["agent"]));
    assert_eq!(claims["iss"], BASE_URL);

    // Every login gets its own jti and refresh token.
    let second = app.demo_agent_tokens().await;
    let second_claims = app
        .verify_with_jwks(
            second["data"]["attributes"]["accessToken"]
                .as_str()
                .unwrap(),
        )
        .await;
    assert_ne!(second_claims["jti"], claims["jti"]);
    assert_ne!(
        second["data"]["attributes"]["refreshToken"],
        body["data"]["attributes"]["refreshToken"]
    );
}

async fn every_login_failure_is_the_same_4101(backend: Backend) {
    let app = spawn_app(backend);
    app.insert_user("blocked@example.com", "secret-1", true, "blocked");
    app.insert_user("deleted@example.com", "secret-1", true, "deleted");
    app.insert_user("not-an-agent@example.com", "secret-1", false, "active");
    app.insert_user("agent@example.com", "secret-1", true, "active");

    let attributes = [
        json!({"username":"nobody@example.com","password":"secret-1"}),
        json!({"username":"agent@example.com","password":"wrong"}),
        json!({"username":"agent@example.com","password":"SECRET-1"}),
        json!({"username":"AGENT@example.com","password":"secret-1"}),
        json!({"username":"blocked@example.com","password":"secret-1"}),
        json!({"username":"deleted@example.com","password":"secret-1"}),
        json!({"username":"not-an-agent@example.com","password":"secret-1"}),
        json!({"password":"secret-1"}),
        json!({"username":"agent@example.com"}),
        json!({}),
        json!({"username":"","password":"secret-1"}),
        json!({"username":"agent@example.com","password":""}),
        json!({"username":"   ","password":"secret-1"}),
        json!({"username":12,"password":"secret-1"}),
        json!({"username":"agent@example.com","password":123456}),
        json!({"username":["agent@example.com"],"password":"secret-1"}),
        json!({"username":"agent@example.com","password":["secret-1"]}),
        json!({"username":"agent@example.com","password":{"a":1}}),
        json!({"username":null,"password":null}),
        json!({"username":true,"password":false}),
    ];
    for attrs in attributes {
        let response = app
            .post(
                "/agent-access-tokens",
                &json!({"data":{"type":"agent-access-tokens","attributes":attrs}}),
            )
            .await;
        assert_eq!(response.status(), 401, "{attrs}");
        assert_error(
            response,
            Some("4101"),
            401,
            "Failed to authenticate an agent.",
        )
        .await;
    }
    // The right credentials still work afterwards.
    assert_eq!(
        app.post_agent_login("agent@example.com", "secret-1")
            .await
            .status(),
        201
    );
}

async fn a_password_longer_than_72_bytes_never_logs_in_by_its_prefix(backend: Backend) {
    let app = spawn_app(backend);
    let prefix = "p".repeat(72);
    app.insert_user("long@example.com", &prefix, true, "active");
    assert_eq!(
        app.post_agent_login("long@example.com", &prefix)
            .await
            .status(),
        201
    );
    let longer = format!("{prefix}x");
    assert_error(
        app.post_agent_login("long@example.com", &longer).await,
        Some("4101"),
        401,
        "Failed to authenticate an agent.",
    )
    .await;
    // Multi-byte characters count in bytes: 36 × 'é' = 72 bytes, one more is 74.
    let accented = "é".repeat(36);
    app.insert_user("accent@example.com", &accented, true, "active");
    assert_eq!(
        app.post_agent_login("accent@example.com", &accented)
            .await
            .status(),
        201
    );
    assert_eq!(
        app.post_agent_login("accent@example.com", &format!("{accented}é"))
            .await
            .status(),
        401
    );
}

async fn spryker_hash_variants_verify(backend: Backend) {
    let app = spawn_app(backend);
    let hash = glue::password::hash("change123", 4).unwrap();
    assert!(hash.starts_with("$2y$04$"), "new hashes are PHP's $2y$");
    for (i, prefix) in ["$2y$", "$2b$", "$2a$"].iter().enumerate() {
        let variant = format!("{prefix}{}", &hash[4..]);
        let username = format!("variant{i}@example.com");
        app.insert_user_with_hash(&username, &variant, true, "active");
        assert_eq!(
            app.post_agent_login(&username, "change123").await.status(),
            201,
            "{prefix}"
        );
        assert_eq!(
            app.post_agent_login(&username, "change124").await.status(),
            401
        );
    }
    // A hash written by PHP's password_hash('change123', PASSWORD_BCRYPT) (the demo agent).
    assert_eq!(
        app.post_agent_login(DEMO_USERNAME, DEMO_PASSWORD)
            .await
            .status(),
        201
    );
    // A corrupt stored hash is a failed login, not a 500.
    app.insert_user_with_hash("corrupt@example.com", "not-a-hash", true, "active");
    assert_eq!(
        app.post_agent_login("corrupt@example.com", "x")
            .await
            .status(),
        401
    );
}

#[derive(Queryable, Debug)]
struct TokenRow {
    identifier: String,
    family: String,
    successor: Option<String>,
    scopes: Option<String>,
    customer_reference: Option<String>,
    user_identifier: String,
    actor_identifier: Option<String>,
    fk_oauth_client: String,
    expires_at: chrono::NaiveDateTime,
    revoked_at: Option<chrono::NaiveDateTime>,
}

async fn the_refresh_token_row_holds_only_a_hash(backend: Backend) {
    let app = spawn_app(backend);
    let body = app.demo_agent_tokens().await;
    let refresh = body["data"]["attributes"]["refreshToken"].as_str().unwrap();
    use glue::db::schema::glue_oauth_refresh_token::dsl as side;
    use glue::db::schema::spy_oauth_refresh_token::dsl::*;
    let rows: Vec<TokenRow> = spy_oauth_refresh_token
        .inner_join(side::glue_oauth_refresh_token)
        .select((
            identifier,
            side::family,
            side::successor,
            scopes,
            customer_reference,
            user_identifier,
            side::actor_identifier,
            fk_oauth_client,
            expires_at,
            revoked_at,
        ))
        .load(&mut app.conn())
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        row.identifier,
        hex::encode(Sha256::digest(refresh.as_bytes()))
    );
    let dump = format!("{row:?}");
    assert!(!dump.contains(refresh), "no plaintext token stored");
    assert!(!row.family.is_empty());
    assert_eq!(row.successor, None);
    assert_eq!(row.scopes.as_deref(), Some(r#"["agent"]"#));
    assert_eq!(row.customer_reference, None);
    assert_eq!(
        row.user_identifier,
        r#"{"id_company_user":null,"id_agent":1,"customer_reference":null,"id_customer":null,"permissions":null}"#
    );
    assert_eq!(row.actor_identifier, None);
    assert_eq!(row.fk_oauth_client, "frontend");
    assert_eq!(row.revoked_at, None);
    let lifetime = row.expires_at - chrono::Utc::now().naive_utc();
    assert!(
        (lifetime.num_seconds() - 2_592_000).abs() <= 10,
        "{lifetime}"
    );
}

async fn a_successful_login_records_last_login(backend: Backend) {
    let app = spawn_app(backend);
    let before = glue::agent::find_by_username(&mut app.conn(), DEMO_USERNAME)
        .unwrap()
        .unwrap();
    assert_eq!(before.last_login, None);
    app.demo_agent_tokens().await;
    let after = glue::agent::find_by_username(&mut app.conn(), DEMO_USERNAME)
        .unwrap()
        .unwrap();
    let last = after.last_login.expect("last_login set");
    assert!((chrono::Utc::now().naive_utc() - last).num_seconds().abs() <= 5);
}

async fn an_invalid_authorization_header_is_refused_even_on_login(backend: Backend) {
    let app = spawn_app(backend);
    for value in ["Bearer garbage", "Bearer", "Basic abc", "Bearer a b"] {
        let response = app
            .client
            .post(app.url("/agent-access-tokens"))
            .header("Content-Type", JSON_API)
            .header("Authorization", value)
            .body(agent_login_body(DEMO_USERNAME, DEMO_PASSWORD).to_string())
            .send()
            .await
            .unwrap();
        assert_error(response, Some("001"), 401, "Invalid access token.").await;
    }
}
