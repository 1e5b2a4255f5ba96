//! Sessions that really end: logout, reuse detection, a password change and deactivation end
//! the access tokens of the sessions concerned at once (the `sid` claim names the session).

use serde_json::json;

use crate::backends;
use crate::helpers::*;

backends!(
    logout_ends_the_sessions_access_tokens,
    an_agents_logout_of_everything_ends_its_impersonations,
    reuse_detection_ends_the_sessions_access_tokens,
    a_password_change_ends_every_session_of_the_agent,
    deactivation_ends_sessions_and_activation_brings_none_back,
    a_customers_logout_ends_agents_impersonations_of_them,
);

/// 401/4102 on an agent route.
pub async fn assert_agent_token_refused(app: &TestApp, access: &str) {
    assert_error(
        app.search("q=sonia", access).await,
        Some("4102"),
        401,
        "Agent access token is invalid.",
    )
    .await;
}

/// 401/001 with the token in `Authorization`.
pub async fn assert_access_token_refused(app: &TestApp, access: &str) {
    assert_error(
        app.delete_refresh_token("mine", Some(access)).await,
        Some("001"),
        401,
        "Invalid access token.",
    )
    .await;
}

pub async fn impersonation(app: &TestApp, agent_access: &str, reference: &str) -> (String, String) {
    let response = app.impersonate(&json!(reference), agent_access).await;
    assert_eq!(response.status(), 201);
    token_pair(response.json().await.unwrap())
}

async fn logout_ends_the_sessions_access_tokens(backend: Backend) {
    let app = spawn_app(backend);
    let (access, refresh) = app.agent_session("logout@example.com").await;
    let (other_access, _) = app.agent_session("logout@example.com").await;
    assert_eq!(app.search("q=sonia", &access).await.status(), 200);
    assert_eq!(
        app.delete_refresh_token(&refresh, Some(&access))
            .await
            .status(),
        204
    );
    assert_agent_token_refused(&app, &access).await;
    assert_access_token_refused(&app, &access).await;
    // Another session of the same agent goes on.
    assert_eq!(app.search("q=sonia", &other_access).await.status(), 200);
}

async fn an_agents_logout_of_everything_ends_its_impersonations(backend: Backend) {
    let app = spawn_app(backend);
    let (agent_access, _) = app.agent_session("everything@example.com").await;
    let (customer_access, customer_refresh) = impersonation(&app, &agent_access, "DE--1").await;
    assert_eq!(
        app.delete_refresh_token("mine", Some(&agent_access))
            .await
            .status(),
        204
    );
    assert_agent_token_refused(&app, &agent_access).await;
    assert_access_token_refused(&app, &customer_access).await;
    assert_refresh_fails(&app, &customer_refresh).await;
}

async fn reuse_detection_ends_the_sessions_access_tokens(backend: Backend) {
    let app = spawn_app(backend);
    let (first_access, first_refresh) = app.agent_session("reuse@example.com").await;
    let response = app.refresh(&json!(first_refresh)).await;
    assert_eq!(response.status(), 201);
    let (second_access, _) = token_pair(response.json().await.unwrap());
    // Rotation keeps the session: both access tokens work.
    assert_eq!(app.search("q=sonia", &first_access).await.status(), 200);
    assert_eq!(app.search("q=sonia", &second_access).await.status(), 200);
    // A replay of the rotated token ends the session.
    assert_refresh_fails(&app, &first_refresh).await;
    assert_agent_token_refused(&app, &first_access).await;
    assert_agent_token_refused(&app, &second_access).await;
}

async fn a_password_change_ends_every_session_of_the_agent(backend: Backend) {
    let app = spawn_app(backend);
    let (agent_access, agent_refresh) = app.agent_session("changed@example.com").await;
    let (customer_access, customer_refresh) = impersonation(&app, &agent_access, "DE--2").await;
    let (bystander, _) = app.agent_session("bystander@example.com").await;
    let output = glue_in(
        "test",
        &app.db,
        &[
            "agent",
            "set-password",
            "--username",
            "changed@example.com",
            "--password-stdin",
        ],
        Some("a-new-password\n"),
    );
    assert!(output.status.success(), "{output:?}");
    assert_agent_token_refused(&app, &agent_access).await;
    assert_access_token_refused(&app, &customer_access).await;
    assert_refresh_fails(&app, &agent_refresh).await;
    assert_refresh_fails(&app, &customer_refresh).await;
    assert_eq!(app.search("q=sonia", &bystander).await.status(), 200);
    assert_eq!(
        app.agent_login_status("changed@example.com", "a-new-password")
            .await,
        201
    );
}

async fn deactivation_ends_sessions_and_activation_brings_none_back(backend: Backend) {
    let app = spawn_app(backend);
    let (access, refresh) = app.agent_session("paused@example.com").await;
    let (customer_access, _) = impersonation(&app, &access, "DE--3").await;
    let cli = |command: &str| {
        let output = glue_in(
            "test",
            &app.db,
            &["agent", command, "--username", "paused@example.com"],
            None,
        );
        assert!(output.status.success(), "{output:?}");
    };
    cli("deactivate");
    assert_agent_token_refused(&app, &access).await;
    assert_access_token_refused(&app, &customer_access).await;
    cli("activate");
    assert_agent_token_refused(&app, &access).await;
    assert_access_token_refused(&app, &customer_access).await;
    assert_refresh_fails(&app, &refresh).await;
    assert_eq!(
        app.agent_login_status("paused@example.com", "agent-pass")
            .await,
        201
    );
}

/// Decided and documented: a customer who logs out of everything also ends the sessions of
/// agents acting as them.
async fn a_customers_logout_ends_agents_impersonations_of_them(backend: Backend) {
    let app = spawn_app(backend);
    app.insert_customer(
        "DE--77",
        "self@example.com",
        "Self",
        "Service",
        Some("own-pass"),
    );
    let (agent_access, _) = app.agent_session("helper@example.com").await;
    let (acting_access, acting_refresh) = impersonation(&app, &agent_access, "DE--77").await;
    let response = app
        .customer_login(&json!("self@example.com"), &json!("own-pass"))
        .await;
    assert_eq!(response.status(), 201);
    let (own_access, _) = token_pair(response.json().await.unwrap());
    assert_eq!(
        app.delete_refresh_token("mine", Some(&own_access))
            .await
            .status(),
        204
    );
    assert_access_token_refused(&app, &acting_access).await;
    assert_refresh_fails(&app, &acting_refresh).await;
    // The agent's own session is not the customer's to end.
    assert_eq!(app.search("q=sonia", &agent_access).await.status(), 200);
}
