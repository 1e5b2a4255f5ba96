//! The REST core: envelope errors, negotiation, 404s, headers, health and JWKS (contract §1).

use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

backends!(
    envelope_errors_are_400_with_the_exact_body,
    unknown_paths_and_methods_are_json_api_404s,
    content_negotiation_answers_415_for_non_json,
    a_body_over_the_limit_is_413,
    every_response_carries_the_security_headers,
    health_and_readiness_answer,
    the_jwks_publishes_one_rsa_signing_key,
);

async fn post_raw(app: &TestApp, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/agent-access-tokens"))
        .header("Content-Type", JSON_API)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn envelope_errors_are_400_with_the_exact_body(backend: Backend) {
    let app = spawn_app(backend);
    let invalid = [
        "",
        "not json",
        "{",
        "[]",
        "null",
        "\"text\"",
        "{}",
        r#"{"data":null}"#,
        r#"{"data":[]}"#,
        r#"{"data":"x"}"#,
        r#"{"data":{}}"#,
        r#"{"data":{"attributes":{"username":"a","password":"b"}}}"#,
        r#"{"data":{"type":"agent-access-tokens"}}"#,
        r#"{"data":{"type":"agent-access-tokens","attributes":null}}"#,
        r#"{"data":{"type":"agent-access-tokens","attributes":"x"}}"#,
        r#"{"data":{"type":"agent-access-tokens","attributes":[]}}"#,
    ];
    for body in invalid {
        assert_error(
            post_raw(&app, body).await,
            None,
            400,
            "Post data is invalid.",
        )
        .await;
    }
    // Invalid UTF-8 and deep nesting are the same client error, never a 500.
    let response = app
        .client
        .post(app.url("/agent-access-tokens"))
        .header("Content-Type", JSON_API)
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .await
        .unwrap();
    assert_error(response, None, 400, "Post data is invalid.").await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert_error(
        post_raw(&app, &deep).await,
        None,
        400,
        "Post data is invalid.",
    )
    .await;

    for resource_type in [
        json!("access-tokens"),
        json!(""),
        json!(1),
        json!(null),
        json!("Agent-Access-Tokens"),
    ] {
        let body = json!({"data":{"type":resource_type,"attributes":{"username":DEMO_USERNAME,"password":DEMO_PASSWORD}}});
        assert_error(
            post_raw(&app, &body.to_string()).await,
            None,
            400,
            "Invalid type.",
        )
        .await;
    }
    // Unknown attributes are ignored.
    let body = json!({"data":{"type":"agent-access-tokens","attributes":{"username":DEMO_USERNAME,"password":DEMO_PASSWORD,"extra":[1,2]}},"meta":{}});
    assert_eq!(post_raw(&app, &body.to_string()).await.status(), 201);
}

async fn unknown_paths_and_methods_are_json_api_404s(backend: Backend) {
    let app = spawn_app(backend);
    let send = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(path))
            .header("Content-Type", JSON_API)
            .body("{}")
            .send()
    };
    for (method, path) in [
        (reqwest::Method::GET, "/nope"),
        (reqwest::Method::GET, "/"),
        (reqwest::Method::POST, "/agent-access-token"),
        (reqwest::Method::POST, "/agent-access-tokens/1"),
    ] {
        let response = send(method.clone(), path).await.unwrap();
        assert_error(response, None, 404, "Not Found").await;
    }
    // A known resource with another method: 405 with `Allow`.
    for (method, path, allow) in [
        (reqwest::Method::GET, "/agent-access-tokens", "POST"),
        (reqwest::Method::PATCH, "/agent-access-tokens", "POST"),
        (reqwest::Method::DELETE, "/agent-access-tokens", "POST"),
        (reqwest::Method::PUT, "/agent-access-tokens", "POST"),
        (reqwest::Method::POST, "/agent-customer-search", "GET"),
        (reqwest::Method::GET, "/refresh-tokens/mine", "DELETE"),
        (reqwest::Method::POST, "/healthz", "GET, HEAD"),
    ] {
        let response = send(method.clone(), path).await.unwrap();
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_error(response, None, 405, "Method not allowed.").await;
    }
    // HEAD on the operational endpoints; the key set and the API document are plain JSON.
    for path in [
        "/healthz",
        "/readyz",
        "/.well-known/jwks.json",
        "/openapi.json",
    ] {
        let response = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "HEAD {path}");
    }
    for path in ["/.well-known/jwks.json", "/openapi.json"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
    }
}

async fn content_negotiation_answers_415_for_non_json(backend: Backend) {
    let app = spawn_app(backend);
    let body = agent_login_body(DEMO_USERNAME, DEMO_PASSWORD).to_string();
    let send = |content_type: Option<&'static str>, accept: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/agent-access-tokens"))
            .body(body.clone());
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        if let Some(a) = accept {
            request = request.header("Accept", a);
        }
        request.send()
    };
    for (ct, accept) in [
        (Some(""), None),
        (Some("text/plain"), None),
        (Some("application/x-www-form-urlencoded"), None),
        (Some(JSON_API), Some("application/vnd.api+xml")),
        (Some(JSON_API), Some("text/html")),
    ] {
        let response = send(ct, accept).await.unwrap();
        assert_error(response, None, 415, "Unsupported media type.").await;
    }
    for (ct, accept) in [
        (Some(JSON_API), None),
        (Some("application/json"), None),
        (
            Some("application/json; charset=utf-8"),
            Some("application/json"),
        ),
        (Some("application/vnd.api+json; version=1.0"), Some("*/*")),
        (Some(JSON_API), Some(JSON_API)),
        (Some(JSON_API), Some("text/html, application/json;q=0.9")),
        (None, None),
    ] {
        assert_eq!(
            send(ct, accept).await.unwrap().status(),
            201,
            "{ct:?} {accept:?}"
        );
    }
}

async fn a_body_over_the_limit_is_413(backend: Backend) {
    let app = spawn_app(backend);
    let big = format!(
        r#"{{"data":{{"type":"agent-access-tokens","attributes":{{"username":"{}","password":"x"}}}}}}"#,
        "a".repeat(70 * 1024)
    );
    assert_error(
        post_raw(&app, &big).await,
        None,
        413,
        "Request body is too large.",
    )
    .await;
    // Just under the limit is read and judged on its content.
    let fits = format!(
        r#"{{"data":{{"type":"agent-access-tokens","attributes":{{"username":"{}","password":"x"}}}}}}"#,
        "a".repeat(60 * 1024)
    );
    assert_eq!(post_raw(&app, &fits).await.status(), 401);
}

async fn every_response_carries_the_security_headers(backend: Backend) {
    let app = spawn_app(backend);
    let responses = vec![
        app.post_agent_login(DEMO_USERNAME, DEMO_PASSWORD).await,
        app.post_agent_login(DEMO_USERNAME, "wrong").await,
        app.client.get(app.url("/nope")).send().await.unwrap(),
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        post_raw(&app, "{").await,
    ];
    for response in responses {
        let h = response.headers();
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        assert_eq!(h["content-security-policy"], "frame-ancestors 'self'");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-xss-protection"], "1; mode=block");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["content-language"], "en_US");
        assert_eq!(h["content-type"], JSON_API);
    }
    // Only token responses forbid caching.
    let failed = app.post_agent_login(DEMO_USERNAME, "wrong").await;
    assert!(failed.headers().get("cache-control").is_none());
}

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app(backend);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body, json!({"status":"ready"}));
}

async fn the_jwks_publishes_one_rsa_signing_key(backend: Backend) {
    let app = spawn_app(backend);
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("Accept", "application/jwk-set+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["e"], "AQAB");
    assert!(key["n"].as_str().unwrap().len() >= 342, "2048-bit modulus");
    assert!(!key.contains_key("d"), "no private parts");
    // kid is the RFC 7638 thumbprint.
    use base64::Engine;
    use sha2::Digest;
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        key["e"].as_str().unwrap(),
        key["n"].as_str().unwrap()
    );
    let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(canonical.as_bytes()));
    assert_eq!(key["kid"], thumbprint);
}

#[tokio::test]
async fn cors_lets_configured_origins_send_the_agent_header() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.glue.cors_allowed_origins = vec!["https://shop.example".into()]
    });
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/agent-customer-search"))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-agent-authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-agent-authorization"), "{allowed}");
    assert_eq!(h["x-frame-options"], "SAMEORIGIN");

    let response = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://shop.example"
    );

    // Another origin is served without CORS headers: the browser keeps the answer from it.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn cors_is_off_unless_configured() {
    let app = spawn_app(Backend::Sqlite);
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn cors_refusals_are_json_api_and_tracing_headers_are_allowed() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.glue.cors_allowed_origins = vec!["https://shop.example".into()];
        s.glue.cors_allowed_headers.push("x-shop-tenant".into());
    });
    let preflight = |origin: &'static str, headers: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/agent-customer-search"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", headers)
            .send()
    };
    for headers in [
        "x-request-id,traceparent",
        "x-agent-authorization",
        "x-shop-tenant",
    ] {
        let response = preflight("https://shop.example", headers).await.unwrap();
        assert_eq!(response.status(), 200, "{headers}");
    }
    // What the page may read of an actual answer.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["www-authenticate", "retry-after", "x-request-id"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    for (origin, headers) in [
        ("https://evil.example", "x-agent-authorization"),
        ("https://shop.example", "x-not-allowed"),
    ] {
        let response = preflight(origin, headers).await.unwrap();
        assert_eq!(response.status(), 400, "{origin} {headers}");
        assert_eq!(response.headers()["content-type"], JSON_API);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["status"], 400);
        assert!(body["errors"][0]["detail"].as_str().unwrap().len() > 5);
    }
}

#[test]
fn an_origin_without_a_scheme_is_refused_at_start_up() {
    let output = glue_command(
        "test",
        "sqlite://never-opened.db",
        &[(
            "GLUE__GLUE__CORS_ALLOWED_ORIGINS",
            "https://ok.example,shop.example",
        )],
        &["config", "show"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("glue.cors_allowed_origins") && stderr.contains("\"shop.example\""),
        "{stderr}"
    );
}

/// Every refusal carries the same CORS headers as a success, so a browser page can read a
/// 401/`001` (and its `WWW-Authenticate`) when its token expires, and a 415; with `"*"` an
/// `Origin: null` (sandboxed frames, file: pages) is never reflected.
#[tokio::test]
async fn errors_carry_cors_headers_and_null_is_never_reflected() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.glue.cors_allowed_origins = vec!["https://shop.example".into()]
    });
    let origin = "https://shop.example";
    let expired = app
        .client
        .delete(app.url("/refresh-tokens/mine"))
        .header("Origin", origin)
        .header("Authorization", "Bearer not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    assert_eq!(expired.headers()["access-control-allow-origin"], origin);
    let exposed = expired.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    let unsupported = app
        .client
        .post(app.url("/agent-access-tokens"))
        .header("Origin", origin)
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(unsupported.status(), 415);
    assert_eq!(unsupported.headers()["access-control-allow-origin"], origin);

    let any = spawn_app_with(Backend::Sqlite, |s| {
        s.glue.cors_allowed_origins = vec!["*".into()]
    });
    let from_null = any
        .client
        .get(any.url("/healthz"))
        .header("Origin", "null")
        .send()
        .await
        .unwrap();
    assert!(
        from_null
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        from_null.headers()
    );
    let from_shop = any
        .client
        .get(any.url("/healthz"))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(from_shop.headers()["access-control-allow-origin"], origin);
}
