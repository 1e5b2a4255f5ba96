//! Migrating from PHP Glue (`oauth.key_source = "spryker-env"`): tokens the shop's PHP Glue
//! issued, produced here byte for byte from the documented formats — access tokens as
//! league/oauth2-server emits them, refresh tokens encrypted as defuse/php-encryption v2 password
//! mode does (an encryptor written here from the spec, cross-checked against an independent
//! Node.js port in `fixtures/defuse_v2.mjs`) — and glue's own tokens judged by a
//! re-implementation of league's `BearerTokenValidator`.

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_256};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{digest, hkdf, hmac, pbkdf2};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::prelude::*;
use glue::settings::{KeySource, Secret, SprykerEnv};
use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

pub const ENCRYPTION_KEY: &str = "Kx3m9Qp2Vd7Zr4Tn8Lw6Hy1Jb5Fc0Gs2Ne7Ua4Wq9Xo3Yt6E";

/// The test key pair in the shop's env format (newlines as `__LINE__`).
pub fn shop_env() -> SprykerEnv {
    let (private, public) = test_key_pair();
    let env = |name: &str| {
        match name {
        "SPRYKER_OAUTH_KEY_PRIVATE" => Some(private.replace('\n', "__LINE__")),
        "SPRYKER_OAUTH_KEY_PUBLIC" => Some(public.replace('\n', "__LINE__")),
        "SPRYKER_OAUTH_ENCRYPTION_KEY" => Some(ENCRYPTION_KEY.to_string()),
        "SPRYKER_OAUTH_CLIENT_CONFIGURATION" => Some(
            r#"[{"identifier":"backoffice","secret":"x","isConfidential":true},{"identifier":"frontend","secret":"y","isConfidential":true,"isDefault":true}]"#
                .to_string(),
        ),
        _ => None,
    }
    };
    SprykerEnv::read(env).expect("the shop's env")
}

pub fn spawn_migrating_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |settings| {
        let env = shop_env();
        settings.oauth.key_source = KeySource::SprykerEnv;
        settings.oauth.client_id = env.client_id.clone();
        settings.oauth.spryker_env = Some(env);
        settings.oauth.private_key_pem = Secret::default();
    })
}

// ---- PHP's formats, from the spec -------------------------------------------------------------

/// An access token exactly as league's `AccessTokenTrait::convertToJWT` emits it: header
/// `{"typ":"JWT","alg":"RS256"}`, claims aud, jti, iat, nbf, exp (floats with microseconds),
/// sub (a JSON string), scopes; no `kid`, no `iss`.
pub fn php_access_token(sub: &str, scopes: &[&str], iat: f64, ttl_s: f64) -> String {
    let header = r#"{"typ":"JWT","alg":"RS256"}"#;
    let claims = format!(
        r#"{{"aud":"frontend","jti":"{}","iat":{iat:.6},"nbf":{iat:.6},"exp":{:.6},"sub":{},"scopes":{}}}"#,
        "ab".repeat(40),
        iat + ttl_s,
        serde_json::to_string(sub).unwrap(),
        serde_json::to_string(scopes).unwrap(),
    );
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let keys = glue::oauth::keys::KeySet::from_pems(test_private_key().as_bytes(), &[]).unwrap();
    let signature = keys.signing.sign(message.as_bytes()).unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// defuse/php-encryption v2 `Crypto::encryptWithPassword`, hex output, written from its spec.
fn defuse_encrypt(password: &str, plaintext: &[u8], salt: [u8; 32], iv: [u8; 16]) -> String {
    let prehash = digest::digest(&digest::SHA256, password.as_bytes());
    let mut prekey = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(100_000).unwrap(),
        &salt,
        prehash.as_ref(),
        &mut prekey,
    );
    let derive = |info: &[u8]| {
        let mut key = [0u8; 32];
        hkdf::Salt::new(hkdf::HKDF_SHA256, &salt)
            .extract(&prekey)
            .expand(&[info], Len(32))
            .unwrap()
            .fill(&mut key)
            .unwrap();
        key
    };
    let akey = derive(b"DefusePHP|V2|KeyForAuthentication");
    let ekey = derive(b"DefusePHP|V2|KeyForEncryption");
    let mut ciphertext = plaintext.to_vec();
    EncryptingKey::ctr(UnboundCipherKey::new(&AES_256, &ekey).unwrap())
        .unwrap()
        .less_safe_encrypt(
            &mut ciphertext,
            EncryptionContext::Iv128(FixedLength::from(iv)),
        )
        .unwrap();
    let mut message = vec![0xDE, 0xF5, 0x02, 0x00];
    message.extend_from_slice(&salt);
    message.extend_from_slice(&iv);
    message.extend_from_slice(&ciphertext);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &akey), &message);
    message.extend_from_slice(tag.as_ref());
    hex::encode(message)
}

/// league's refresh-token payload.
pub fn php_payload(
    client: &str,
    id: &str,
    user_id: &str,
    scopes: &[&str],
    expire_time: i64,
) -> String {
    json!({
        "client_id": client,
        "refresh_token_id": id,
        "access_token_id": "cd".repeat(40),
        "scopes": scopes,
        "user_id": user_id,
        "expire_time": expire_time,
    })
    .to_string()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    for b in &mut bytes {
        *b = rand::random();
    }
    bytes
}

pub fn php_refresh_token(password: &str, payload: &str) -> String {
    defuse_encrypt(password, payload.as_bytes(), random_bytes(), random_bytes())
}

/// The `sub` PHP writes for a customer (every key of the transfer, nulls included).
pub fn customer_sub(reference: &str, id: i64) -> String {
    format!(
        r#"{{"customer_reference":"{reference}","id_customer":{id},"id_company_user":null,"id_agent":null,"permissions":null}}"#
    )
}

/// A `spy_oauth_refresh_token` row as PHP Glue writes it (identifier = the plain id).
pub fn insert_php_row(app: &TestApp, identifier: &str, reference: &str, sub: &str, expires: &str) {
    let mut conn = app.conn();
    glue::db::insert_with_id(&mut conn, "spy_oauth_refresh_token_pk_seq", |conn, id| {
        let (id_column, id_value) = match id {
            Some(id) => ("id_oauth_refresh_token, ", format!("{id}, ")),
            None => ("", String::new()),
        };
        diesel::sql_query(format!(
            "INSERT INTO spy_oauth_refresh_token ({id_column}identifier, scopes, customer_reference, user_identifier, fk_oauth_client, expires_at, created_at, updated_at) \
             VALUES ({id_value}'{identifier}', '[\"customer\"]', '{reference}', '{}', 'frontend', '{expires}', '2026-11-01 08:00:00', '2026-11-01 08:00:00')",
            sub.replace('\'', "''")
        ))
        .execute(conn)
    })
    .unwrap();
}

pub fn row_revoked(app: &TestApp, identifier: &str) -> bool {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
        revoked_at: Option<chrono::NaiveDateTime>,
    }
    let row: Row = diesel::sql_query(format!(
        "SELECT revoked_at FROM spy_oauth_refresh_token WHERE identifier = '{identifier}'"
    ))
    .get_result(&mut app.conn())
    .unwrap();
    row.revoked_at.is_some()
}

pub async fn refresh_status(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app.refresh(&json!(token)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A customer, a live PHP refresh-token row for it, and the PHP token naming that row.
pub fn php_session(app: &TestApp, reference: &str) -> (String, String, String) {
    let id = app.insert_customer(
        reference,
        &format!("{reference}@example.com"),
        "Php",
        "Customer",
        Some("customer-pass"),
    );
    let sub = customer_sub(reference, id);
    let identifier = glue::oauth::random_hex(40);
    insert_php_row(app, &identifier, reference, &sub, "2099-01-01 00:00:00");
    let expire = chrono::Utc::now().timestamp() + 86_400;
    let token = php_refresh_token(
        ENCRYPTION_KEY,
        &php_payload("frontend", &identifier, &sub, &["customer"], expire),
    );
    (token, identifier, sub)
}

// ---- scenarios --------------------------------------------------------------------------------

async fn php_access_tokens_are_accepted(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    // Customer routes: Authorization with a PHP customer token.
    let id = app.insert_customer("DE--P1", "p1@example.com", "Paula", "Php", None);
    let token = php_access_token(
        &customer_sub("DE--P1", id),
        &["customer"],
        now - 5.0,
        28_800.0,
    );
    let response = app.delete_refresh_token("mine", Some(&token)).await;
    assert_eq!(response.status(), 204);
    // Agent routes: X-Agent-Authorization with a PHP agent token.
    let agent = app.insert_user("php-agent@example.com", "agent-pass", true, "active");
    let agent_sub = format!(
        r#"{{"customer_reference":null,"id_customer":null,"id_company_user":null,"id_agent":{agent},"permissions":null}}"#
    );
    let agent_token = php_access_token(&agent_sub, &["agent"], now - 5.0, 28_800.0);
    let response = app.search("q=paula", &agent_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"][0]["attributes"]["customers"][0]["customerReference"],
        "DE--P1"
    );
    let response = app.impersonate(&json!("DE--P1"), &agent_token).await;
    assert_eq!(response.status(), 201);
    // Expired, or signed by another key: refused.
    let expired = php_access_token(
        &customer_sub("DE--P1", id),
        &["customer"],
        now - 100.0,
        50.0,
    );
    assert_eq!(
        app.delete_refresh_token("mine", Some(&expired))
            .await
            .status(),
        401
    );
    let (other, _) = glue::oauth::keys::generate_pem().unwrap();
    let forged = {
        let mut parts = token.rsplitn(2, '.');
        let _ = parts.next();
        let message = parts.next().unwrap();
        let keys = glue::oauth::keys::KeySet::from_pems(other.as_bytes(), &[]).unwrap();
        format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(keys.signing.sign(message.as_bytes()).unwrap())
        )
    };
    assert_eq!(
        app.delete_refresh_token("mine", Some(&forged))
            .await
            .status(),
        401
    );
}

async fn a_php_refresh_token_is_exchanged_once(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let (php_token, identifier, sub) = php_session(&app, "DE--P2");
    let (status, body) = refresh_status(&app, &php_token).await;
    assert_eq!(status, 201, "{body}");
    let attributes = &body["data"]["attributes"];
    let claims = app
        .verify_with_jwks(attributes["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(claims["sub"], json!(sub), "the same sub, verbatim");
    assert_eq!(claims["scopes"], json!(["customer"]));
    assert!(row_revoked(&app, &identifier));
    // glue's new pair works like any other.
    let (status, _) = refresh_status(&app, attributes["refreshToken"].as_str().unwrap()).await;
    assert_eq!(status, 201);
    // The PHP token again: refused.
    let (status, body) = refresh_status(&app, &php_token).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["code"], "004");

    // An agent's PHP refresh token: glue's agent pair, while the agent is active.
    let agent = app.insert_user("php-agent@example.com", "agent-pass", true, "active");
    let agent_sub = format!(
        r#"{{"customer_reference":null,"id_customer":null,"id_company_user":null,"id_agent":{agent},"permissions":null}}"#
    );
    let identifier = glue::oauth::random_hex(40);
    insert_php_row(&app, &identifier, "", &agent_sub, "2099-01-01 00:00:00");
    let token = php_refresh_token(
        ENCRYPTION_KEY,
        &php_payload(
            "frontend",
            &identifier,
            &agent_sub,
            &["agent"],
            chrono::Utc::now().timestamp() + 600,
        ),
    );
    let (status, body) = refresh_status(&app, &token).await;
    assert_eq!(status, 201, "{body}");
    let access = body["data"]["attributes"]["accessToken"].as_str().unwrap();
    assert_eq!(
        app.search("q=x", access).await.status(),
        200,
        "an agent token"
    );
}

async fn parallel_php_exchanges_have_one_winner(backend: Backend) {
    let app = std::sync::Arc::new(spawn_migrating_app(backend));
    let (php_token, _, _) = php_session(&app, "DE--P3");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, token) = (app.clone(), php_token.clone());
        tasks.push(tokio::spawn(
            async move { refresh_status(&app, &token).await.0 },
        ));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 401, 401, 401, 401, 401, 401, 401]);
}

async fn bad_php_refresh_tokens_are_refused(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let id = app.insert_customer("DE--P4", "p4@example.com", "Pia", "Php", None);
    let sub = customer_sub("DE--P4", id);
    let identifier = glue::oauth::random_hex(40);
    insert_php_row(&app, &identifier, "DE--P4", &sub, "2099-01-01 00:00:00");
    let later = chrono::Utc::now().timestamp() + 86_400;
    let good = php_payload("frontend", &identifier, &sub, &["customer"], later);
    let valid = php_refresh_token(ENCRYPTION_KEY, &good);
    let mut tampered_mac = valid.clone().into_bytes();
    let last = tampered_mac.len() - 1;
    tampered_mac[last] = if tampered_mac[last] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let mut tampered_body = valid.clone().into_bytes();
    tampered_body[200] = if tampered_body[200] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let unknown_row = glue::oauth::random_hex(40);
    for (case, token) in [
        ("wrong key", php_refresh_token("another-shops-key", &good)),
        ("tampered MAC", String::from_utf8(tampered_mac).unwrap()),
        (
            "tampered ciphertext",
            String::from_utf8(tampered_body).unwrap(),
        ),
        (
            "wrong client",
            php_refresh_token(
                ENCRYPTION_KEY,
                &php_payload("backoffice", &identifier, &sub, &["customer"], later),
            ),
        ),
        (
            "expired",
            php_refresh_token(
                ENCRYPTION_KEY,
                &php_payload("frontend", &identifier, &sub, &["customer"], 1_700_000_000),
            ),
        ),
        (
            "no row (PHP would accept it)",
            php_refresh_token(
                ENCRYPTION_KEY,
                &php_payload("frontend", &unknown_row, &sub, &["customer"], later),
            ),
        ),
        (
            "not JSON inside",
            php_refresh_token(ENCRYPTION_KEY, "not json"),
        ),
        ("header only", format!("def50200{}", "00".repeat(80))),
    ] {
        let (status, body) = refresh_status(&app, &token).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(body["errors"][0]["code"], "004", "{case}");
    }
    assert!(!row_revoked(&app, &identifier), "nothing was consumed");
    // A payload naming a row glue wrote (its identifier is the SHA-256 of glue's token).
    app.insert_customer(
        "DE--P9",
        "p9@example.com",
        "Gina",
        "Glue",
        Some("customer-pass"),
    );
    let response = app
        .customer_login(&json!("p9@example.com"), &json!("customer-pass"))
        .await;
    let (_, glue_refresh) = token_pair(response.json().await.unwrap());
    let glue_row = glue::oauth::hash_refresh_token(&glue_refresh);
    let naming_glue_row = php_refresh_token(
        ENCRYPTION_KEY,
        &php_payload("frontend", &glue_row, &sub, &["customer"], later),
    );
    assert_eq!(refresh_status(&app, &naming_glue_row).await.0, 401);
    assert_eq!(
        refresh_status(&app, &glue_refresh).await.0,
        201,
        "glue's token untouched"
    );
    let (status, _) = refresh_status(&app, &valid).await;
    assert_eq!(status, 201);
}

async fn php_rows_are_revoked_by_their_customer(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let (php_token, identifier, sub) = php_session(&app, "DE--P5");
    let second = glue::oauth::random_hex(40);
    insert_php_row(&app, &second, "DE--P5", &sub, "2099-01-01 00:00:00");
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let access = php_access_token(&sub, &["customer"], now - 5.0, 28_800.0);
    // Someone else's token revokes nothing.
    let other = app.insert_customer("DE--P6", "p6@example.com", "Otto", "Other", None);
    let other_access = php_access_token(
        &customer_sub("DE--P6", other),
        &["customer"],
        now - 5.0,
        28_800.0,
    );
    assert_eq!(
        app.delete_refresh_token(&php_token, Some(&other_access))
            .await
            .status(),
        204
    );
    assert!(!row_revoked(&app, &identifier));
    // The owner revokes the one its PHP token names, then all with `mine`.
    assert_eq!(
        app.delete_refresh_token(&php_token, Some(&access))
            .await
            .status(),
        204
    );
    assert!(row_revoked(&app, &identifier));
    assert!(!row_revoked(&app, &second));
    assert_eq!(
        app.delete_refresh_token("mine", Some(&access))
            .await
            .status(),
        204
    );
    assert!(row_revoked(&app, &second));
}

/// league's `BearerTokenValidator` as PHP Glue runs it: RS256, no `enc`, the signature with the
/// shop's public key, and `LooseValidAt` with zero leeway; then Glue reads `sub` and `scopes`.
fn league_accepts(token: &str, public_pem: &str, now: f64) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not three parts".into());
    };
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    if header["alg"] != "RS256" || header.get("enc").is_some() {
        return Err(format!("header {header}"));
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
    let message = format!("{}.{}", parts[0], parts[1]);
    if !jsonwebtoken::crypto::verify(
        signature,
        message.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::RS256,
    )
    .map_err(|e| e.to_string())?
    {
        return Err("signature".into());
    }
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let time = |name: &str| claims.get(name).map(|v| v.as_f64().expect("a number"));
    if time("iat").is_some_and(|iat| now < iat) || time("nbf").is_some_and(|nbf| now < nbf) {
        return Err("not yet valid (zero leeway)".into());
    }
    if time("exp").is_some_and(|exp| now >= exp) {
        return Err("expired".into());
    }
    let sub: Value = serde_json::from_str(claims["sub"].as_str().ok_or("sub is not a string")?)
        .map_err(|_| "sub is not JSON")?;
    if !claims["scopes"].is_array() {
        return Err("scopes is not an array".into());
    }
    Ok(sub)
}

async fn glue_tokens_pass_leagues_validation(backend: Backend) {
    let app = spawn_migrating_app(backend);
    app.insert_customer(
        "DE--P7",
        "p7@example.com",
        "Pam",
        "Php",
        Some("customer-pass"),
    );
    let response = app
        .customer_login(&json!("p7@example.com"), &json!("customer-pass"))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let token = body["data"]["attributes"]["accessToken"].as_str().unwrap();
    // iat and nbf lie oauth.issued_at_backdate_s (1 s) before the issue time, exp the TTL after.
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        28_800 + 1
    );
    // PHP's clock, read right after glue issued the token (and even 0.5 s behind glue's).
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let public = &test_key_pair().1;
    for php_now in [now, now - 0.5] {
        let sub = league_accepts(token, public, php_now).expect("league accepts glue's token");
        assert_eq!(sub["customer_reference"], "DE--P7");
        assert!(sub["id_customer"].is_i64());
        for key in ["id_company_user", "id_agent", "permissions"] {
            assert!(
                sub.get(key).is_some(),
                "sub has {key}, as PHP's transfer does"
            );
        }
    }
    // The same rules refuse a token signed elsewhere.
    let (other_private, _) = glue::oauth::keys::generate_pem().unwrap();
    let other = glue::oauth::keys::KeySet::from_pems(other_private.as_bytes(), &[]).unwrap();
    let (message, _) = token.rsplit_once('.').unwrap();
    let forged = format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(other.signing.sign(message.as_bytes()).unwrap())
    );
    assert!(league_accepts(&forged, public, now).is_err());
}

/// N exchanges of one decrypted PHP token released at once (no queue in between): exactly one
/// retires the row and gets a pair.
async fn racing_exchanges_have_one_winner(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let id = app.insert_customer("DE--RC", "rc@example.com", "Rita", "Race", None);
    let sub = customer_sub("DE--RC", id);
    let identifier = glue::oauth::random_hex(40);
    insert_php_row(&app, &identifier, "DE--RC", &sub, "2099-01-01 00:00:00");
    let payload: glue::oauth::php_token::PhpRefreshPayload = serde_json::from_str(&php_payload(
        "frontend",
        &identifier,
        &sub,
        &["customer"],
        chrono::Utc::now().timestamp() + 600,
    ))
    .unwrap();
    let mut settings = test_settings(&app.db.url).oauth;
    settings.client_id = "frontend".into();
    let keys = glue::oauth::keys::KeySet::from_pems(test_private_key().as_bytes(), &[]).unwrap();
    let oauth = std::sync::Arc::new(glue::oauth::OAuthServer::new(
        std::sync::Arc::new(keys),
        settings,
        std::sync::Arc::new(glue::clock::SystemClock),
    ));
    let mfa = std::sync::Arc::new(glue::multi_factor_auth::AgentMfa::new(
        glue::settings::AgentMfaMode::IfEnrolled,
        glue::multi_factor_auth::KeySource::Missing,
        std::sync::Arc::new(glue::clock::SystemClock),
    ));
    let racers = 8;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(racers));
    let threads: Vec<_> = (0..racers)
        .map(|_| {
            let (oauth, mfa, payload, barrier) =
                (oauth.clone(), mfa.clone(), payload.clone(), barrier.clone());
            let mut conn = app.conn();
            std::thread::spawn(move || {
                barrier.wait();
                matches!(
                    glue::session::php::exchange_payload(&mut conn, &oauth, &mfa, &payload)
                        .unwrap(),
                    glue::session::RefreshOutcome::Rotated(_)
                )
            })
        })
        .collect();
    let winners = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1);
}

backends!(
    racing_exchanges_have_one_winner,
    php_access_tokens_are_accepted,
    a_php_refresh_token_is_exchanged_once,
    parallel_php_exchanges_have_one_winner,
    bad_php_refresh_tokens_are_refused,
    php_rows_are_revoked_by_their_customer,
    glue_tokens_pass_leagues_validation,
);

/// Garbage `def50200…` strings cost a PBKDF2 each: they count toward the blocker per address.
#[tokio::test]
async fn undecryptable_php_tokens_are_counted_and_blocked() {
    let app = spawn_migrating_app(Backend::Sqlite);
    let mut statuses = Vec::new();
    for _ in 0..31 {
        let garbage = format!("def50200{}", hex::encode(random_bytes::<120>()));
        statuses.push(refresh_status(&app, &garbage).await.0);
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[30], 429, "the address is blocked");
}

/// A genuine token replayed after its exchange costs a derivation each time: it counts too.
#[tokio::test]
async fn a_replayed_php_token_is_counted_and_blocked() {
    let app = spawn_migrating_app(Backend::Sqlite);
    let (php_token, _, _) = php_session(&app, "DE--R1");
    assert_eq!(refresh_status(&app, &php_token).await.0, 201);
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(refresh_status(&app, &php_token).await.0);
    }
    // The same token comes back under one key (address and token salt): the customer rule,
    // 10 failures, blocks the 11th.
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[10], 429, "blocked");
}

#[test]
fn the_shops_env_is_read_as_php_reads_it() {
    let env = shop_env();
    assert_eq!(env.client_id, "frontend");
    assert!(env.private_pem.expose().contains("\n"));
    let missing = SprykerEnv::read(|_| None).unwrap_err().to_string();
    assert!(missing.contains("SPRYKER_OAUTH_KEY_PRIVATE"), "{missing}");
    let (private, public) = test_key_pair();
    let with = |name: &'static str, value: &'static str| {
        move |var: &str| match var {
            v if v == name => Some(value.to_string()),
            "SPRYKER_OAUTH_KEY_PRIVATE" => Some(private.replace('\n', "__LINE__")),
            "SPRYKER_OAUTH_KEY_PUBLIC" => Some(public.replace('\n', "__LINE__")),
            "SPRYKER_OAUTH_ENCRYPTION_KEY" => Some(ENCRYPTION_KEY.into()),
            "SPRYKER_OAUTH_CLIENT_CONFIGURATION" => {
                Some(r#"[{"identifier":"frontend","isDefault":true}]"#.into())
            }
            _ => None,
        }
    };
    for (name, value, named) in [
        (
            "SPRYKER_OAUTH_CLIENT_CONFIGURATION",
            "not json",
            "SPRYKER_OAUTH_CLIENT_CONFIGURATION",
        ),
        (
            "SPRYKER_OAUTH_CLIENT_CONFIGURATION",
            r#"[{"identifier":"frontend"}]"#,
            "isDefault",
        ),
        (
            "SPRYKER_OAUTH_KEY_PUBLIC",
            "-----BEGIN CERTIFICATE-----__LINE__AAAA__LINE__-----END CERTIFICATE-----",
            "SPRYKER_OAUTH_KEY_PUBLIC",
        ),
        (
            "SPRYKER_OAUTH_ENCRYPTION_KEY",
            " ",
            "SPRYKER_OAUTH_ENCRYPTION_KEY",
        ),
    ] {
        let error = SprykerEnv::read(with(name, value)).unwrap_err().to_string();
        assert!(error.contains(named), "{name}: {error}");
        assert!(!error.contains(ENCRYPTION_KEY), "never the key itself");
    }
}

/// The defuse encryptor above and the Node.js port agree, both ways, and glue exchanges a token
/// the port made: one misreading of the spec cannot make both sides agree.
#[tokio::test]
#[ignore = "needs node (Node.js 20; CI runs it)"]
async fn defuse_port_cross_check() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/api/fixtures/defuse_v2.mjs"
    );
    let node = |args: &[&str], stdin: &[u8]| {
        let mut child = std::process::Command::new("node")
            .arg(script)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("node on PATH");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    // Known answer: the same salt and IV give the same bytes.
    let payload = php_payload(
        "frontend",
        &"ef".repeat(40),
        r#"{"id_customer":1}"#,
        &["customer"],
        1_800_000_000,
    );
    let (salt, iv) = ([7u8; 32], [9u8; 16]);
    let ours = defuse_encrypt(ENCRYPTION_KEY, payload.as_bytes(), salt, iv);
    let out = node(
        &[
            "encrypt-fixed",
            ENCRYPTION_KEY,
            &hex::encode(salt),
            &hex::encode(iv),
        ],
        payload.as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), ours);
    // Node decrypts ours; glue's decryptor reads Node's.
    let out = node(
        &[
            "decrypt",
            ENCRYPTION_KEY,
            &php_refresh_token(ENCRYPTION_KEY, &payload),
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, payload.as_bytes());
    let out = node(&["encrypt", ENCRYPTION_KEY], payload.as_bytes());
    assert!(out.status.success(), "{out:?}");
    let theirs = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        glue::oauth::php_token::decrypt(ENCRYPTION_KEY.as_bytes(), &theirs).unwrap(),
        payload.as_bytes()
    );
    // And the service exchanges a token Node made.
    let app = spawn_migrating_app(Backend::Sqlite);
    let id = app.insert_customer("DE--P8", "p8@example.com", "Node", "Made", None);
    let sub = customer_sub("DE--P8", id);
    let identifier = glue::oauth::random_hex(40);
    insert_php_row(&app, &identifier, "DE--P8", &sub, "2099-01-01 00:00:00");
    let later = chrono::Utc::now().timestamp() + 3600;
    let out = node(
        &["encrypt", ENCRYPTION_KEY],
        php_payload("frontend", &identifier, &sub, &["customer"], later).as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(refresh_status(&app, &token).await.0, 201);
}

/// `glue serve` configured from the shop's env file alone: signs with the shop's key, takes the
/// default client as `oauth.client_id`, and never writes a key into its log.
#[tokio::test]
async fn serve_takes_the_shops_env_and_never_logs_it() {
    let db = TestDatabase::create(Backend::Sqlite);
    let (private, public) = glue::oauth::keys::generate_pem().unwrap();
    let (private_env, public_env) = (
        private.replace('\n', "__LINE__"),
        public.replace('\n', "__LINE__"),
    );
    let mut server = crate::process::ServeProcess::start(
        &db.url,
        &[
            ("RUST_LOG", "debug"),
            ("GLUE__OAUTH__KEY_SOURCE", "spryker-env"),
            ("SPRYKER_OAUTH_KEY_PRIVATE", &private_env),
            ("SPRYKER_OAUTH_KEY_PUBLIC", &public_env),
            ("SPRYKER_OAUTH_ENCRYPTION_KEY", ENCRYPTION_KEY),
            (
                "SPRYKER_OAUTH_CLIENT_CONFIGURATION",
                r#"[{"identifier":"yves","secret":"s3cr3t-client","isConfidential":true,"isDefault":true}]"#,
            ),
        ],
    )
    .await;
    let response = server
        .post(
            "/agent-access-tokens",
            &agent_login_body(DEMO_USERNAME, DEMO_PASSWORD),
        )
        .await;
    assert_eq!(response.status(), 201);
    let (access, _) = token_pair(response.json().await.unwrap());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["yves"]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap();
    jsonwebtoken::decode::<Value>(&access, &key, &validation).expect("signed with the shop's key");
    let (_, output) = server.terminate();
    assert!(!output.contains(ENCRYPTION_KEY));
    assert!(!output.contains("s3cr3t-client"));
    for line in private
        .lines()
        .chain(public.lines())
        .filter(|l| !l.starts_with("-----"))
    {
        assert!(!output.contains(line), "a key line reached the log");
    }
}

#[test]
fn a_backdate_beyond_a_minute_is_refused() {
    let db = TestDatabase::create(Backend::Sqlite);
    let out = glue_with_env(
        "test",
        &db,
        &[("GLUE__OAUTH__ISSUED_AT_BACKDATE_S", "61")],
        &["config", "show"],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("oauth.issued_at_backdate_s"));
}

#[test]
fn a_missing_or_mismatched_shop_key_stops_start_up() {
    let db = TestDatabase::create(Backend::Sqlite);
    let out = glue_with_env(
        "test",
        &db,
        &[("GLUE__OAUTH__KEY_SOURCE", "spryker-env")],
        &["config", "show"],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SPRYKER_OAUTH_KEY_PRIVATE"), "{stderr}");

    let db = std::sync::Arc::new(TestDatabase::create(Backend::Sqlite));
    let mut settings = test_settings(&db.url);
    let mut env = shop_env();
    env.public_pem = glue::oauth::keys::generate_pem().unwrap().1;
    settings.oauth.key_source = KeySource::SprykerEnv;
    settings.oauth.spryker_env = Some(env);
    let error = start(settings, db.clone()).err().expect("refused");
    assert!(error.contains("not the public key"), "{error}");
}
