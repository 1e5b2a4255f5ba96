//! Sessions exchanged from the shop's PHP Glue end like any other: ownership is decided on the
//! parsed identity, never on the identifier text, which PHP writes in another key order
//! (`{"customer_reference":…,"id_customer":…,"id_company_user":null,"id_agent":null,…}`) than
//! glue. Each scenario holds a session exchanged from a PHP refresh token and checks that
//! exactly the sessions concerned end.

use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;
use crate::php_glue::*;
use crate::sessions::{assert_access_token_refused, assert_agent_token_refused, impersonation};

backends!(
    a_customers_logout_of_everything_ends_her_exchanged_session,
    deleting_an_exchanged_token_with_a_glue_token_ends_it,
    a_php_access_tokens_logout_of_everything_ends_glue_sessions,
    a_password_change_ends_an_agents_exchanged_and_php_sessions,
    deactivation_ends_an_agents_exchanged_session_for_good,
    an_agents_logout_of_everything_ends_its_php_rows_and_impersonations,
);

/// Exchanges `php_token` and returns glue's pair.
async fn exchange(app: &TestApp, php_token: &str) -> (String, String) {
    let (status, body) = refresh_status(app, php_token).await;
    assert_eq!(status, 201, "{body}");
    token_pair(body)
}

/// A glue login of the customer `php_session` created.
async fn customer_glue_session(app: &TestApp, reference: &str) -> (String, String) {
    let response = app
        .customer_login(
            &json!(format!("{reference}@example.com")),
            &json!("customer-pass"),
        )
        .await;
    assert_eq!(response.status(), 201);
    token_pair(response.json().await.unwrap())
}

/// The `sub` PHP writes for an agent, in PHP's key order.
fn php_agent_sub(id_agent: i64) -> String {
    format!(
        r#"{{"customer_reference":null,"id_customer":null,"id_company_user":null,"id_agent":{id_agent},"permissions":null}}"#
    )
}

/// An agent, a live PHP row for it, and the PHP token naming that row.
fn php_agent_session(app: &TestApp, username: &str) -> (String, String) {
    let agent = app.insert_user(username, "agent-pass", true, "active");
    let sub = php_agent_sub(agent);
    let identifier = glue::oauth::random_hex(40);
    insert_php_row(app, &identifier, "", &sub, "2099-01-01 00:00:00");
    let token = php_refresh_token(
        ENCRYPTION_KEY,
        &php_payload(
            "frontend",
            &identifier,
            &sub,
            &["agent"],
            chrono::Utc::now().timestamp() + 3600,
        ),
    );
    (token, identifier)
}

/// Another live PHP row of the agent `username`, which nobody exchanges; its identifier.
fn second_php_row(app: &TestApp, username: &str) -> String {
    let agent_id = glue::agent::find_by_username(&mut app.conn(), username)
        .unwrap()
        .unwrap()
        .id_user;
    let identifier = glue::oauth::random_hex(40);
    insert_php_row(
        app,
        &identifier,
        "",
        &php_agent_sub(agent_id.into()),
        "2099-01-01 00:00:00",
    );
    identifier
}

async fn a_customers_logout_of_everything_ends_her_exchanged_session(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let (php_token, _, _) = php_session(&app, "DE--V1");
    let (exchanged_access, exchanged_refresh) = exchange(&app, &php_token).await;
    let (glue_access, _) = customer_glue_session(&app, "DE--V1").await;
    // A bystander's exchanged session goes on.
    let (other_token, _, _) = php_session(&app, "DE--V9");
    let (other_access, other_refresh) = exchange(&app, &other_token).await;

    let response = app.delete_refresh_token("mine", Some(&glue_access)).await;
    assert_eq!(response.status(), 204);
    assert_access_token_refused(&app, &exchanged_access).await;
    assert_refresh_fails(&app, &exchanged_refresh).await;
    assert_access_token_refused(&app, &glue_access).await;
    let (status, _) = refresh_status(&app, &other_refresh).await;
    assert_eq!(status, 201);
    assert_eq!(
        app.delete_refresh_token("unrelated", Some(&other_access))
            .await
            .status(),
        204
    );
}

async fn deleting_an_exchanged_token_with_a_glue_token_ends_it(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let (php_token, _, _) = php_session(&app, "DE--V2");
    let (exchanged_access, exchanged_refresh) = exchange(&app, &php_token).await;
    let (glue_access, glue_refresh) = customer_glue_session(&app, "DE--V2").await;
    // Another customer's token ends nothing.
    let (stranger_token, _, _) = php_session(&app, "DE--V3");
    let (stranger_access, _) = exchange(&app, &stranger_token).await;
    let response = app
        .delete_refresh_token(&exchanged_refresh, Some(&stranger_access))
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.delete_refresh_token("unrelated", Some(&exchanged_access))
            .await
            .status(),
        204,
        "still live"
    );

    let response = app
        .delete_refresh_token(&exchanged_refresh, Some(&glue_access))
        .await;
    assert_eq!(response.status(), 204);
    assert_access_token_refused(&app, &exchanged_access).await;
    assert_refresh_fails(&app, &exchanged_refresh).await;
    // Only that session: her glue login goes on.
    let (status, _) = refresh_status(&app, &glue_refresh).await;
    assert_eq!(status, 201);
}

async fn a_php_access_tokens_logout_of_everything_ends_glue_sessions(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let (php_token, _, sub) = php_session(&app, "DE--V4");
    let (exchanged_access, exchanged_refresh) = exchange(&app, &php_token).await;
    let (glue_access, glue_refresh) = customer_glue_session(&app, "DE--V4").await;
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let php_access = php_access_token(&sub, &["customer"], now - 5.0, 28_800.0);

    let response = app.delete_refresh_token("mine", Some(&php_access)).await;
    assert_eq!(response.status(), 204);
    for access in [&exchanged_access, &glue_access] {
        assert_access_token_refused(&app, access).await;
    }
    for refresh in [&exchanged_refresh, &glue_refresh] {
        assert_refresh_fails(&app, refresh).await;
    }
}

/// Runs `glue agent <args>` on the app's database and expects success.
fn agent_cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> String {
    let mut all = vec!["agent"];
    all.extend_from_slice(args);
    let output = glue_in("test", &app.db, &all, stdin);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

async fn a_password_change_ends_an_agents_exchanged_and_php_sessions(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let (php_token, _) = php_agent_session(&app, "exchanged@example.com");
    let (agent_access, agent_refresh) = exchange(&app, &php_token).await;
    assert_eq!(app.search("q=x", &agent_access).await.status(), 200);
    let (customer_access, customer_refresh) = impersonation(&app, &agent_access, "DE--1").await;
    // A second PHP row of the agent that nobody exchanged.
    let untouched = second_php_row(&app, "exchanged@example.com");
    // Another agent's exchanged session goes on.
    let (bystander_token, bystander_row) = php_agent_session(&app, "bystander@example.com");
    let (bystander_access, _) = exchange(&app, &bystander_token).await;

    let printed = agent_cli(
        &app,
        &[
            "set-password",
            "--username",
            "exchanged@example.com",
            "--password-stdin",
        ],
        Some("a-new-password\n"),
    );
    // The exchanged session, the impersonation and the untouched PHP row.
    assert!(printed.contains("ended 3 session token(s)"), "{printed}");
    assert_agent_token_refused(&app, &agent_access).await;
    assert_refresh_fails(&app, &agent_refresh).await;
    assert_access_token_refused(&app, &customer_access).await;
    assert_refresh_fails(&app, &customer_refresh).await;
    assert!(row_revoked(&app, &untouched));
    assert_eq!(app.search("q=x", &bystander_access).await.status(), 200);
    assert!(row_revoked(&app, &bystander_row), "exchanged, not ended");
}

async fn deactivation_ends_an_agents_exchanged_session_for_good(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let (php_token, _) = php_agent_session(&app, "paused-php@example.com");
    let (agent_access, agent_refresh) = exchange(&app, &php_token).await;
    let (customer_access, customer_refresh) = impersonation(&app, &agent_access, "DE--1").await;
    agent_cli(
        &app,
        &["deactivate", "--username", "paused-php@example.com"],
        None,
    );
    agent_cli(
        &app,
        &["activate", "--username", "paused-php@example.com"],
        None,
    );
    assert_agent_token_refused(&app, &agent_access).await;
    assert_refresh_fails(&app, &agent_refresh).await;
    assert_access_token_refused(&app, &customer_access).await;
    assert_refresh_fails(&app, &customer_refresh).await;
    let body: Value = app.demo_agent_tokens().await;
    assert!(body["data"]["attributes"]["accessToken"].is_string());
}

async fn an_agents_logout_of_everything_ends_its_php_rows_and_impersonations(backend: Backend) {
    let app = spawn_migrating_app(backend);
    let (php_token, _) = php_agent_session(&app, "leaving@example.com");
    let (agent_access, agent_refresh) = exchange(&app, &php_token).await;
    let (customer_access, customer_refresh) = impersonation(&app, &agent_access, "DE--1").await;
    let untouched = second_php_row(&app, "leaving@example.com");
    // Another agent keeps its PHP row.
    let (_, lookalike_row) = php_agent_session(&app, "lookalike@example.com");

    let response = app.delete_refresh_token("mine", Some(&agent_access)).await;
    assert_eq!(response.status(), 204);
    assert_agent_token_refused(&app, &agent_access).await;
    assert_refresh_fails(&app, &agent_refresh).await;
    assert_access_token_refused(&app, &customer_access).await;
    assert_refresh_fails(&app, &customer_refresh).await;
    assert!(row_revoked(&app, &untouched));
    assert!(!row_revoked(&app, &lookalike_row));
}
