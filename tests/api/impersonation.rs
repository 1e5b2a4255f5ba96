//! `POST /agent-customer-impersonation-access-tokens` (contract §5) and customer login
//! `POST /access-tokens` (contract §6).

use diesel::prelude::*;
use glue::db::schema::spy_oauth_refresh_token::dsl;
use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

backends!(
    an_agent_impersonates_a_customer_with_a_traceable_token,
    impersonation_failures_are_4104,
    an_impersonation_token_is_a_customer_token_not_an_agent_token,
    customer_login_validates_each_field,
    customer_login_failures_are_003_and_success_is_a_customer_token,
);

async fn an_agent_impersonates_a_customer_with_a_traceable_token(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, _) = app.agent_session("imp@example.com").await;
    let agent_claims = app.verify_with_jwks(&agent).await;
    let response = app.impersonate(&json!("DE--3"), &agent).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["type"],
        "agent-customer-impersonation-access-tokens"
    );
    assert_eq!(body["data"]["id"], Value::Null);
    assert_eq!(
        body["data"]["links"]["self"],
        format!("{BASE_URL}/agent-customer-impersonation-access-tokens")
    );
    assert_eq!(body["data"]["attributes"]["tokenType"], "Bearer");
    assert_eq!(body["data"]["attributes"]["expiresIn"], 28800);
    let (access, refresh) = token_pair(body);

    let claims = app.verify_with_jwks(&access).await;
    let raw: serde_json::Map<String, Value> =
        serde_json::from_str(&jwt_segment(&access, 1)).unwrap();
    assert_eq!(
        raw.keys().collect::<Vec<_>>(),
        ["aud", "jti", "iat", "nbf", "exp", "sub", "scopes", "iss", "act", "sid"]
    );
    assert_eq!(
        claims["sub"],
        r#"{"id_company_user":null,"id_agent":null,"customer_reference":"DE--3","id_customer":3,"permissions":null}"#
    );
    assert_eq!(
        claims["scopes"],
        json!(["customer_impersonation", "customer"])
    );
    assert_eq!(claims["act"], json!({"sub": agent_claims["sub"]}));

    // The refresh token is stored for the customer, with the agent as actor.
    let (reference, actor): (Option<String>, Option<String>) = dsl::spy_oauth_refresh_token
        .inner_join(glue::db::schema::glue_oauth_refresh_token::table)
        .filter(dsl::identifier.eq(glue::oauth::hash_refresh_token(&refresh)))
        .select((
            dsl::customer_reference,
            glue::db::schema::glue_oauth_refresh_token::actor_identifier,
        ))
        .first(&mut app.conn())
        .unwrap();
    assert_eq!(reference.as_deref(), Some("DE--3"));
    assert_eq!(actor.as_deref(), agent_claims["sub"].as_str());

    // A refresh keeps the customer, the scopes and the actor.
    let response = app.refresh(&json!(refresh)).await;
    assert_eq!(response.status(), 201);
    let (refreshed, _) = token_pair(response.json().await.unwrap());
    let refreshed_claims = app.verify_with_jwks(&refreshed).await;
    assert_eq!(refreshed_claims["sub"], claims["sub"]);
    assert_eq!(refreshed_claims["scopes"], claims["scopes"]);
    assert_eq!(refreshed_claims["act"], claims["act"]);

    // The Authorization header works as well as X-Agent-Authorization.
    let response = app
        .client
        .post(app.url("/agent-customer-impersonation-access-tokens"))
        .header("Content-Type", JSON_API)
        .bearer_auth(&agent)
        .body(json!({"data":{"type":"agent-customer-impersonation-access-tokens","attributes":{"customerReference":"DE--1"}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

async fn impersonation_failures_are_4104(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, _) = app.agent_session("imp-fail@example.com").await;
    for reference in [
        json!("DE--999"),
        json!(""),
        json!("  "),
        json!(3),
        json!(null),
        json!(["DE--1"]),
        json!("de--1"),
    ] {
        assert_error(
            app.impersonate(&reference, &agent).await,
            Some("4104"),
            401,
            "Failed to impersonate a customer.",
        )
        .await;
    }
    let response = app
        .client
        .post(app.url("/agent-customer-impersonation-access-tokens"))
        .header("Content-Type", JSON_API)
        .bearer_auth(&agent)
        .body(
            json!({"data":{"type":"agent-customer-impersonation-access-tokens","attributes":{}}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        Some("4104"),
        401,
        "Failed to impersonate a customer.",
    )
    .await;
    // Without an agent token: 4103, whatever the body.
    let response = app
        .post(
            "/agent-customer-impersonation-access-tokens",
            &json!({"data":{"type":"agent-customer-impersonation-access-tokens","attributes":{"customerReference":"DE--1"}}}),
        )
        .await;
    assert_error(
        response,
        Some("4103"),
        401,
        "Action is available to agent user only.",
    )
    .await;
}

async fn an_impersonation_token_is_a_customer_token_not_an_agent_token(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, _) = app.agent_session("imp-scope@example.com").await;
    app.insert_customer("C-7", "seven@example.com", "Se", "Ven", Some("seven-pass"));
    let response = app
        .customer_login(&json!("seven@example.com"), &json!("seven-pass"))
        .await;
    let (_, own_refresh) = token_pair(response.json().await.unwrap());
    let response = app.impersonate(&json!("C-7"), &agent).await;
    let (impersonation, impersonation_refresh) = token_pair(response.json().await.unwrap());

    // Not an agent: cannot search or impersonate further.
    assert_error(
        app.search("q=s", &impersonation).await,
        Some("4103"),
        401,
        "Action is available to agent user only.",
    )
    .await;
    assert_error(
        app.impersonate(&json!("DE--1"), &impersonation).await,
        Some("4103"),
        401,
        "Action is available to agent user only.",
    )
    .await;
    // A customer token: it ends its own session with DELETE /refresh-tokens/mine …
    assert_eq!(
        app.delete_refresh_token("mine", Some(&impersonation))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.refresh(&json!(impersonation_refresh)).await.status(),
        401
    );
    // … without logging the customer out of their own session.
    assert_eq!(app.refresh(&json!(own_refresh)).await.status(), 201);
}

async fn customer_login_validates_each_field(backend: Backend) {
    let app = spawn_app(backend);
    let blank_user = ("username", "This value should not be blank.");
    let bad_email = ("username", "This value is not a valid email address.");
    let blank_password = ("password", "This value should not be blank.");
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!({}), vec![blank_user, blank_password]),
        (
            json!({"username":"","password":""}),
            vec![blank_user, blank_password],
        ),
        (json!({"username":"  ","password":"x"}), vec![blank_user]),
        (
            json!({"username":"not-an-email","password":""}),
            vec![bad_email, blank_password],
        ),
        (json!({"username":"a@b","password":"x"}), vec![bad_email]),
        (json!({"username":"a b@c.de","password":"x"}), vec![]),
        (json!({"username":"@c.de","password":"x"}), vec![bad_email]),
        (
            json!({"username":"a@c .de","password":"x"}),
            vec![bad_email],
        ),
        (json!({"username":12,"password":"x"}), vec![blank_user]),
        (json!({"username":"a@b.cd"}), vec![blank_password]),
        (
            json!({"username":"a@b.cd","password":7}),
            vec![blank_password],
        ),
    ];
    for (attributes, violations) in cases {
        let response = app
            .post(
                "/access-tokens",
                &json!({"data":{"type":"access-tokens","attributes":attributes}}),
            )
            .await;
        if violations.is_empty() {
            assert_error(response, Some("003"), 401, "Failed to authenticate user.").await;
            continue;
        }
        assert_eq!(response.status(), 422, "{attributes}");
        assert_eq!(response.headers()["content-type"], JSON_API);
        let body: Value = response.json().await.unwrap();
        let expected: Vec<Value> = violations
            .iter()
            .map(|(field, message)| json!({"code":"901","status":422,"detail":format!("{field} => {message}")}))
            .collect();
        assert_eq!(body, json!({"errors": expected}), "{attributes}");
    }
}

async fn customer_login_failures_are_003_and_success_is_a_customer_token(backend: Backend) {
    let app = spawn_app(backend);
    let id = app.insert_customer("C-9", "Nine@Example.com", "Ni", "Ne", Some("nine-pass"));
    for (username, password) in [
        ("nobody@example.com", "nine-pass"),
        ("nine@example.com", "wrong"),
        ("nine@example.com", "NINE-PASS"),
        // A demo customer has no password and cannot log in.
        ("sonia@spryker.com", "change123"),
    ] {
        assert_error(
            app.customer_login(&json!(username), &json!(password)).await,
            Some("003"),
            401,
            "Failed to authenticate user.",
        )
        .await;
    }
    for username in ["Nine@Example.com", "nine@example.com", "NINE@EXAMPLE.COM"] {
        let response = app
            .customer_login(&json!(username), &json!("nine-pass"))
            .await;
        assert_eq!(response.status(), 201, "{username}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"]["type"], "access-tokens");
        assert_eq!(
            body["data"]["links"]["self"],
            format!("{BASE_URL}/access-tokens")
        );
        let (access, _) = token_pair(body);
        let claims = app.verify_with_jwks(&access).await;
        assert_eq!(
            claims["sub"],
            format!(
                r#"{{"id_company_user":null,"id_agent":null,"customer_reference":"C-9","id_customer":{id},"permissions":null}}"#
            )
        );
        assert_eq!(claims["scopes"], json!(["customer"]));
        assert!(claims.get("act").is_none());
    }
}
