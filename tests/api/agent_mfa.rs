//! Agents' second factor on `POST /agent-access-tokens` (TOTP): 5900/5901/5902, the codes of an
//! independent RFC 6238 implementation (totp-rs), replay, the blocker, the modes, the CLI, and
//! PHP Glue's tokens of an agent with a method.

use glue::clock::Clock;
use glue::settings::{AgentMfaMode, BlockRule};
use serde_json::Value;

use crate::backends;
use crate::helpers::*;

backends!(an_agent_with_totp_needs_a_valid_code_once);

const AGENT: &str = "mfa-agent@shop.test";
const PASSWORD: &str = "right-pass";

/// The otpauth:// URI `glue agent mfa activate` printed, read by totp-rs.
fn authenticator(uri: &str) -> totp_rs::TOTP {
    totp_rs::TOTP::from_url(uri).expect("an otpauth URI an authenticator app reads")
}

/// The code the app shows at the app's clock time.
fn code_now(app: &TestApp, totp: &totp_rs::TOTP) -> String {
    let now = app.clock.now().and_utc().timestamp();
    totp.generate(u64::try_from(now).unwrap())
}

async fn login_with(
    app: &TestApp,
    username: &str,
    password: &str,
    code: Option<&str>,
) -> reqwest::Response {
    app.agent_login_with_code(username, password, code).await
}

async fn assert_mfa(response: reqwest::Response, code: &str, detail: &str) {
    assert_error(response, Some(code), 403, detail).await;
}

fn glue_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    glue_in("test", &app.db, args, None)
}

fn enrol(app: &TestApp, username: &str) -> String {
    let output = glue_cli(
        app,
        &[
            "agent",
            "mfa",
            "activate",
            "--username",
            username,
            "--type",
            "totp",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .find(|line| line.starts_with("otpauth://totp/"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string()
}

async fn an_agent_with_totp_needs_a_valid_code_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.security_blocker.agent = BlockRule {
            attempts: 7,
            window_s: 600,
            block_s: 600,
        }
    });
    app.insert_user(AGENT, PASSWORD, true, "active");
    let uri = enrol(&app, AGENT);
    assert!(uri.contains("issuer=Spryker%20agent%20assist"), "{uri}");
    let totp = authenticator(&uri);
    // Pending (no code verified yet): the password alone still logs in.
    let response = login_with(&app, AGENT, PASSWORD, None).await;
    assert_eq!(response.status(), 201);
    let (password_only, password_only_refresh) = token_pair(response.json().await.unwrap());
    assert_eq!(app.search("q=sonia", &password_only).await.status(), 200);
    // The secret is stored encrypted: not in the table in clear.
    let secret = totp.secret.clone();
    let stored: Vec<u8> = {
        use diesel::prelude::*;
        glue::db::schema::glue_agent_totp::table
            .select(glue::db::schema::glue_agent_totp::secret)
            .first(&mut app.conn())
            .unwrap()
    };
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));

    // The first login with a code verifies the method, and ends what the password alone
    // opened before (someone who phished it included).
    let code = code_now(&app, &totp);
    assert_eq!(
        login_with(&app, AGENT, PASSWORD, Some(&code))
            .await
            .status(),
        201
    );
    assert_eq!(app.search("q=sonia", &password_only).await.status(), 401);
    assert_refresh_fails(&app, &password_only_refresh).await;
    // Now every login needs one: a right password alone is 5900, issues nothing and counts
    // no failure (eight of them, with a limit of seven).
    for _ in 0..8 {
        assert_mfa(
            login_with(&app, AGENT, PASSWORD, None).await,
            "5900",
            "X-MFA-Code header is missing.",
        )
        .await;
    }
    // A code is accepted once: the same one again is 5901.
    assert_mfa(
        login_with(&app, AGENT, PASSWORD, Some(&code)).await,
        "5901",
        "X-MFA-Code is invalid.",
    )
    .await;
    // A wrong password says nothing about the second factor, with or without a code.
    assert_error(
        login_with(&app, AGENT, "wrong", None).await,
        Some("4101"),
        401,
        "Failed to authenticate an agent.",
    )
    .await;
    // The next time step's code passes once.
    app.clock.advance(std::time::Duration::from_secs(30));
    let next = code_now(&app, &totp);
    let response = login_with(&app, AGENT, PASSWORD, Some(&next)).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert!(body["data"]["attributes"]["accessToken"].is_string());
    // Codes that are not six digits, and bytes that are not text, are wrong codes, never 5xx.
    for bad in ["12345", "1234567", "abcdef", "１２３４５６"] {
        assert_mfa(
            login_with(&app, AGENT, PASSWORD, Some(bad)).await,
            "5901",
            "X-MFA-Code is invalid.",
        )
        .await;
    }
    // A valid code of another hour is wrong now.
    let elsewhen = u64::try_from(app.clock.now().and_utc().timestamp() + 3600).unwrap();
    assert_mfa(
        login_with(&app, AGENT, PASSWORD, Some(&totp.generate(elsewhen))).await,
        "5901",
        "X-MFA-Code is invalid.",
    )
    .await;
    // Wrong codes count as failed logins (the replay, the wrong password, five wrong codes:
    // the limit of seven): blocked now, even with a right code.
    app.clock.advance(std::time::Duration::from_secs(30));
    let later = code_now(&app, &totp);
    assert_eq!(
        login_with(&app, AGENT, PASSWORD, Some(&later))
            .await
            .status(),
        429
    );
}

/// `"required"`: an agent without an active method gets no tokens (5902); `"off"`: the password
/// alone, as Spryker's Glue, even for an agent with a method.
#[tokio::test]
async fn required_and_off_modes() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.oauth.agent_mfa = AgentMfaMode::Required
    });
    assert_mfa(
        app.post_agent_login(DEMO_USERNAME, DEMO_PASSWORD).await,
        "5902",
        "Multi-factor authentication type is missing.",
    )
    .await;
    app.insert_user(AGENT, PASSWORD, true, "active");
    let totp = authenticator(&enrol(&app, AGENT));
    let code = code_now(&app, &totp);
    assert_eq!(
        login_with(&app, AGENT, PASSWORD, Some(&code))
            .await
            .status(),
        201
    );
    drop(app);

    let app = spawn_app_with(Backend::Sqlite, |s| s.oauth.agent_mfa = AgentMfaMode::Off);
    app.insert_user(AGENT, PASSWORD, true, "active");
    let totp = authenticator(&enrol(&app, AGENT));
    let code = code_now(&app, &totp);
    let verified = glue_cli(
        &app,
        &[
            "agent",
            "mfa",
            "verify",
            "--username",
            AGENT,
            "--code",
            &code,
        ],
    );
    assert!(verified.status.success(), "{verified:?}");
    assert_eq!(login_with(&app, AGENT, PASSWORD, None).await.status(), 201);
}

/// The CLI: activate prints a URI (never stores the secret in clear), verify activates, list
/// shows the status, deactivate removes; `email`, unknown methods and agents are refused.
#[tokio::test]
async fn the_cli_manages_an_agents_totp() {
    let app = spawn_app(Backend::Sqlite);
    app.insert_user(AGENT, PASSWORD, true, "active");
    let list = |app: &TestApp| -> Value {
        let output = glue_cli(app, &["agent", "mfa", "list", "--json"]);
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice(&output.stdout).unwrap()
    };
    assert_eq!(list(&app), serde_json::json!([]));
    let totp = authenticator(&enrol(&app, AGENT));
    assert_eq!(list(&app)[0]["status"], "pending");
    assert_eq!(list(&app)[0]["type"], "totp");
    let wrong = glue_cli(
        &app,
        &[
            "agent",
            "mfa",
            "verify",
            "--username",
            AGENT,
            "--code",
            "000000",
        ],
    );
    assert_eq!(wrong.status.code(), Some(1));
    let code = code_now(&app, &totp);
    let verified = glue_cli(
        &app,
        &[
            "agent",
            "mfa",
            "verify",
            "--username",
            AGENT,
            "--code",
            &code,
        ],
    );
    assert!(verified.status.success(), "{verified:?}");
    assert_eq!(list(&app)[0]["status"], "active");
    // An active method is not replaced by a new enrolment.
    let again = glue_cli(
        &app,
        &[
            "agent",
            "mfa",
            "activate",
            "--username",
            AGENT,
            "--type",
            "totp",
        ],
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already active"),
        "{again:?}"
    );
    for (args, message) in [
        (
            vec![
                "agent",
                "mfa",
                "deactivate",
                "--username",
                AGENT,
                "--type",
                "email",
            ],
            "has no active email method",
        ),
        (
            vec![
                "agent",
                "mfa",
                "activate",
                "--username",
                AGENT,
                "--type",
                "sms",
            ],
            "unknown method",
        ),
        (
            vec![
                "agent",
                "mfa",
                "activate",
                "--username",
                "ghost@shop.test",
                "--type",
                "totp",
            ],
            "no agent with username",
        ),
    ] {
        let output = glue_cli(&app, &args);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    let removed = glue_cli(
        &app,
        &[
            "agent",
            "mfa",
            "deactivate",
            "--username",
            AGENT,
            "--type",
            "totp",
        ],
    );
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(list(&app), serde_json::json!([]));
    assert_eq!(login_with(&app, AGENT, PASSWORD, None).await.status(), 201);
}

/// PHP Glue's agent login asks for no second factor: beside it (the shop's keys), PHP-issued
/// tokens of an agent with an active method — its own and the impersonations it started — are
/// refused; glue's own, from a login with a code, work.
#[tokio::test]
async fn php_glue_tokens_of_an_agent_with_a_method_are_refused() {
    let app = crate::php_glue::spawn_migrating_app(Backend::Sqlite);
    let agent = app.insert_user(AGENT, PASSWORD, true, "active");
    let customer = app.insert_customer("DE--M1", "m1@shop.test", "Mia", "Mfa", None);
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let agent_sub = format!(
        r#"{{"customer_reference":null,"id_customer":null,"id_company_user":null,"id_agent":{agent},"permissions":null}}"#
    );
    let php_agent = crate::php_glue::php_access_token(&agent_sub, &["agent"], now - 5.0, 28_800.0);
    assert_eq!(app.search("q=mia", &php_agent).await.status(), 200);
    // A customer's own PHP token (PHP's tokens carry no `act`: it names no agent).
    let php_customer = crate::php_glue::php_access_token(
        &crate::php_glue::customer_sub("DE--M1", customer),
        &["customer"],
        now - 5.0,
        28_800.0,
    );

    // The agent gets a method (as `glue agent mfa activate` and `verify` do).
    let mfa = glue::multi_factor_auth::AgentMfa::new(
        AgentMfaMode::IfEnrolled,
        glue::multi_factor_auth::KeySource::Development,
        std::sync::Arc::new(glue::clock::SystemClock),
    );
    let uri = mfa
        .enrol_totp(
            &mut app.conn(),
            i32::try_from(agent).unwrap(),
            "Shop",
            AGENT,
        )
        .unwrap();
    let totp = authenticator(&uri);
    let code = totp.generate(u64::try_from(chrono::Utc::now().timestamp()).unwrap());
    assert_eq!(
        mfa.verify_totp(&mut app.conn(), i32::try_from(agent).unwrap(), &code)
            .unwrap(),
        glue::multi_factor_auth::Verification::Activated
    );

    assert_error(
        app.search("q=mia", &php_agent).await,
        Some("4102"),
        401,
        "Agent access token is invalid.",
    )
    .await;
    // A customer's own PHP token names no agent: it still works.
    assert_eq!(
        app.delete_refresh_token("mine", Some(&php_customer))
            .await
            .status(),
        204
    );
    // glue's login with the next code works, and so do its tokens.
    let next = totp.generate(u64::try_from(chrono::Utc::now().timestamp() + 30).unwrap());
    let response = login_with(&app, AGENT, PASSWORD, Some(&next)).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let token = body["data"]["attributes"]["accessToken"].as_str().unwrap();
    assert_eq!(app.search("q=mia", token).await.status(), 200);
}

async fn mfa_request(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    code: Option<&str>,
) -> reqwest::Response {
    let mut request = match &body {
        Some(body) => app
            .client
            .post(app.url(path))
            .header("Content-Type", JSON_API)
            .body(body.to_string()),
        None => app.client.get(app.url(path)),
    };
    if let Some(token) = token {
        request = request.header("X-Agent-Authorization", format!("Bearer {token}"));
    }
    if let Some(code) = code {
        request = request.header("X-MFA-Code", code);
    }
    request.send().await.unwrap()
}

fn typed(resource: &str, method: &str) -> Value {
    serde_json::json!({"data": {"type": resource, "attributes": {"type": method}}})
}

async fn method_status(app: &TestApp, token: &str) -> i64 {
    let response = mfa_request(
        app,
        "/agent-multi-factor-auth-types",
        Some(token),
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][0]["type"], "agent-multi-factor-auth-types");
    assert_eq!(body["data"][0]["attributes"]["type"], "totp");
    // The shop's email method is listed too (glue's schema has Spryker's tables): not enrolled.
    assert_eq!(body["data"][1]["attributes"]["type"], "email");
    assert_eq!(body["data"][1]["attributes"]["status"], 0);
    body["data"][0]["attributes"]["status"].as_i64().unwrap()
}

/// Self-service on the API: an agent enrols, verifies, logs in with codes and removes its
/// method (with a current code), Spryker's resource verbs with the `agent-` prefix.
#[tokio::test]
async fn an_agent_manages_its_own_totp_on_the_api() {
    let app = spawn_app(Backend::Sqlite);
    app.insert_user(AGENT, PASSWORD, true, "active");
    let response = login_with(&app, AGENT, PASSWORD, None).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let token = body["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(method_status(&app, &token).await, 0);

    let activate = "/agent-multi-factor-auth-type-activate";
    let verify = "/agent-multi-factor-auth-type-verify";
    let deactivate = "/agent-multi-factor-auth-type-deactivate";
    assert_error(
        mfa_request(
            &app,
            activate,
            Some(&token),
            Some(typed(&activate[1..], "email")),
            None,
        )
        .await,
        Some("5906"),
        400,
        "Multi-factor authentication type is not found.",
    )
    .await;
    // Without an agent token: agents only (Spryker's 4103).
    assert_error(
        mfa_request(
            &app,
            activate,
            None,
            Some(typed(&activate[1..], "totp")),
            None,
        )
        .await,
        Some("4103"),
        401,
        "Action is available to agent user only.",
    )
    .await;
    let response = mfa_request(
        &app,
        activate,
        Some(&token),
        Some(typed(&activate[1..], "totp")),
        None,
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let totp = authenticator(body["data"]["attributes"]["otpauthUri"].as_str().unwrap());
    assert_eq!(method_status(&app, &token).await, 1);

    assert_error(
        mfa_request(
            &app,
            verify,
            Some(&token),
            Some(typed(&verify[1..], "totp")),
            None,
        )
        .await,
        Some("5900"),
        403,
        "X-MFA-Code header is missing.",
    )
    .await;
    let elsewhen = u64::try_from(app.clock.now().and_utc().timestamp() + 3600).unwrap();
    assert_error(
        mfa_request(
            &app,
            verify,
            Some(&token),
            Some(typed(&verify[1..], "totp")),
            Some(&totp.generate(elsewhen)),
        )
        .await,
        Some("5901"),
        403,
        "X-MFA-Code is invalid.",
    )
    .await;
    let code = code_now(&app, &totp);
    assert_eq!(
        mfa_request(
            &app,
            verify,
            Some(&token),
            Some(typed(&verify[1..], "totp")),
            Some(&code)
        )
        .await
        .status(),
        204
    );
    // Activation ends what the password alone opened, this session included: log in again,
    // with a code now.
    assert_error(
        mfa_request(
            &app,
            "/agent-multi-factor-auth-types",
            Some(&token),
            None,
            None,
        )
        .await,
        Some("4102"),
        401,
        "Agent access token is invalid.",
    )
    .await;
    app.clock.advance(std::time::Duration::from_secs(30));
    let response = login_with(&app, AGENT, PASSWORD, Some(&code_now(&app, &totp))).await;
    assert_eq!(response.status(), 201);
    let (token, _) = token_pair(response.json().await.unwrap());
    assert_eq!(method_status(&app, &token).await, 2);
    assert_error(
        mfa_request(
            &app,
            activate,
            Some(&token),
            Some(typed(&activate[1..], "totp")),
            None,
        )
        .await,
        Some("5904"),
        400,
        "Multi-factor authentication type already activated.",
    )
    .await;

    // Logins need a code now.
    assert_eq!(login_with(&app, AGENT, PASSWORD, None).await.status(), 403);
    app.clock.advance(std::time::Duration::from_secs(30));
    let next = code_now(&app, &totp);
    assert_eq!(
        login_with(&app, AGENT, PASSWORD, Some(&next))
            .await
            .status(),
        201
    );

    // Removing an active method takes a current code (a used one is refused).
    assert_error(
        mfa_request(
            &app,
            deactivate,
            Some(&token),
            Some(typed(&deactivate[1..], "totp")),
            None,
        )
        .await,
        Some("5900"),
        403,
        "X-MFA-Code header is missing.",
    )
    .await;
    assert_error(
        mfa_request(
            &app,
            deactivate,
            Some(&token),
            Some(typed(&deactivate[1..], "totp")),
            Some(&next),
        )
        .await,
        Some("5901"),
        403,
        "X-MFA-Code is invalid.",
    )
    .await;
    app.clock.advance(std::time::Duration::from_secs(30));
    let later = code_now(&app, &totp);
    assert_eq!(
        mfa_request(
            &app,
            deactivate,
            Some(&token),
            Some(typed(&deactivate[1..], "totp")),
            Some(&later)
        )
        .await
        .status(),
        204
    );
    assert_eq!(method_status(&app, &token).await, 0);
    assert_eq!(login_with(&app, AGENT, PASSWORD, None).await.status(), 201);
    assert_error(
        mfa_request(
            &app,
            deactivate,
            Some(&token),
            Some(typed(&deactivate[1..], "totp")),
            None,
        )
        .await,
        Some("5906"),
        400,
        "Multi-factor authentication type is not found.",
    )
    .await;
}

/// `"required"` beside PHP Glue: every agent needs a second factor, so no PHP-issued agent
/// token passes (PHP's login asked for none), with or without a method.
#[tokio::test]
async fn required_mode_refuses_every_php_agent_token() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        let env = crate::php_glue::shop_env();
        s.oauth.key_source = glue::settings::KeySource::SprykerEnv;
        s.oauth.client_id = env.client_id.clone();
        s.oauth.spryker_env = Some(env);
        s.oauth.private_key_pem = glue::settings::Secret::default();
        s.oauth.agent_mfa = AgentMfaMode::Required;
    });
    let agent = app.insert_user(AGENT, PASSWORD, true, "active");
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let agent_sub = format!(
        r#"{{"customer_reference":null,"id_customer":null,"id_company_user":null,"id_agent":{agent},"permissions":null}}"#
    );
    let php_agent = crate::php_glue::php_access_token(&agent_sub, &["agent"], now - 5.0, 28_800.0);
    assert_error(
        app.search("q=sonia", &php_agent).await,
        Some("4102"),
        401,
        "Agent access token is invalid.",
    )
    .await;
}
