//! The security blocker (contract §7): failed-login counters in the database.

use diesel::prelude::*;
use glue::db::schema::glue_login_attempt_counter::dsl;
use glue::settings::{BlockRule, Settings};
use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

backends!(
    nine_wrong_passwords_block_the_tenth_attempt_even_with_the_right_password,
    ten_wrong_customer_passwords_block_the_eleventh,
    a_block_ends_after_its_time_and_a_window_resets_the_count,
    a_success_does_not_reset_the_counter_and_envelope_errors_do_not_count,
    the_account_counter_stops_a_guess_spread_over_many_addresses,
    x_forwarded_for_counts_only_from_trusted_proxies,
    two_instances_share_one_block,
    concurrent_failures_are_all_counted,
    expired_counters_are_swept,
);

fn rule(attempts: u32, window_s: u64, block_s: u64) -> BlockRule {
    BlockRule {
        attempts,
        window_s,
        block_s,
    }
}

fn app_with(backend: Backend, customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(backend, customize)
}

async fn assert_blocked(response: reqwest::Response, minutes: u64, max_retry_after: u64) {
    assert_blocked_with(response, max_retry_after, &format!("Too many log in attempts from your address. Please wait {minutes} minutes before trying again.")).await;
}

/// The account-wide block's own text.
async fn assert_account_blocked(response: reqwest::Response, minutes: u64, max_retry_after: u64) {
    assert_blocked_with(response, max_retry_after, &format!("Too many failed log in attempts for this account. Please wait {minutes} minutes before trying again.")).await;
}

async fn assert_blocked_with(response: reqwest::Response, max_retry_after: u64, detail: &str) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=max_retry_after).contains(&retry_after),
        "{retry_after}"
    );
    assert_eq!(response.headers()["content-type"], JSON_API);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"errors":[{"code":"4401","status":429,"detail":detail}]})
    );
}

async fn nine_wrong_passwords_block_the_tenth_attempt_even_with_the_right_password(
    backend: Backend,
) {
    let app = app_with(backend, |_| {});
    app.insert_user("blocked-agent@example.com", "right-pass", true, "active");
    for _ in 0..9 {
        assert_error(
            app.post_agent_login("blocked-agent@example.com", "wrong")
                .await,
            Some("4101"),
            401,
            "Failed to authenticate an agent.",
        )
        .await;
    }
    assert_blocked(
        app.post_agent_login("blocked-agent@example.com", "right-pass")
            .await,
        6,
        361,
    )
    .await;
    // Case does not make another key.
    assert_blocked(
        app.post_agent_login("BLOCKED-AGENT@example.com", "right-pass")
            .await,
        6,
        361,
    )
    .await;
    // Another username from the same address is not blocked.
    assert_eq!(
        app.agent_login_status(DEMO_USERNAME, DEMO_PASSWORD).await,
        201
    );
}

async fn ten_wrong_customer_passwords_block_the_eleventh(backend: Backend) {
    let app = app_with(backend, |_| {});
    app.insert_customer(
        "B-1",
        "blocked@example.com",
        "Blo",
        "Cked",
        Some("right-pass"),
    );
    for _ in 0..10 {
        let response = app
            .customer_login(&json!("blocked@example.com"), &json!("wrong"))
            .await;
        assert_error(response, Some("003"), 401, "Failed to authenticate user.").await;
    }
    // Validation errors are not login attempts and are still answered.
    assert_eq!(
        app.customer_login(&json!("blocked@example.com"), &json!(""))
            .await
            .status(),
        422
    );
    assert_blocked(
        app.customer_login(&json!("blocked@example.com"), &json!("right-pass"))
            .await,
        5,
        301,
    )
    .await;
    // Agents and customers are counted apart.
    app.insert_user("blocked@example.com", "agent-pass", true, "active");
    assert_eq!(
        app.agent_login_status("blocked@example.com", "agent-pass")
            .await,
        201
    );
}

async fn a_block_ends_after_its_time_and_a_window_resets_the_count(backend: Backend) {
    // Window and block long enough that real time on a loaded runner cannot end them between
    // two requests (a 1-second block once ended before the blocked request arrived); the test
    // clock moves them on.
    let app = app_with(backend, |s| s.security_blocker.agent = rule(3, 60, 30));
    app.insert_user("timed@example.com", "right-pass", true, "active");
    for _ in 0..3 {
        assert_eq!(
            app.agent_login_status("timed@example.com", "wrong").await,
            401
        );
    }
    assert_blocked(
        app.post_agent_login("timed@example.com", "right-pass")
            .await,
        1,
        30,
    )
    .await;
    app.clock.advance(std::time::Duration::from_secs(31));
    assert_eq!(
        app.agent_login_status("timed@example.com", "right-pass")
            .await,
        201
    );

    // Two failures, then the window (60 s) passes: the next two start a new count.
    for _ in 0..2 {
        assert_eq!(
            app.agent_login_status("timed@example.com", "wrong").await,
            401
        );
    }
    app.clock.advance(std::time::Duration::from_secs(61));
    for _ in 0..2 {
        assert_eq!(
            app.agent_login_status("timed@example.com", "wrong").await,
            401
        );
    }
    assert_eq!(
        app.agent_login_status("timed@example.com", "right-pass")
            .await,
        201
    );
}

async fn a_success_does_not_reset_the_counter_and_envelope_errors_do_not_count(backend: Backend) {
    let app = app_with(backend, |s| s.security_blocker.agent = rule(3, 600, 600));
    app.insert_user("steady@example.com", "right-pass", true, "active");
    for _ in 0..20 {
        let response = app
            .client
            .post(app.url("/agent-access-tokens"))
            .header("Content-Type", JSON_API)
            .body(r#"{"data":{"type":"agent-access-tokens"}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
    for _ in 0..2 {
        assert_eq!(
            app.agent_login_status("steady@example.com", "wrong").await,
            401
        );
    }
    assert_eq!(
        app.agent_login_status("steady@example.com", "right-pass")
            .await,
        201
    );
    // Missing or malformed credentials are failed logins too.
    let response = app
        .post(
            "/agent-access-tokens",
            &agent_login_body("steady@example.com", 7),
        )
        .await;
    assert_eq!(response.status(), 401);
    assert_blocked(
        app.post_agent_login("steady@example.com", "right-pass")
            .await,
        10,
        601,
    )
    .await;
}

async fn the_account_counter_stops_a_guess_spread_over_many_addresses(backend: Backend) {
    let app = app_with(backend, |s| {
        s.glue.trusted_proxies = vec!["127.0.0.1".into()];
        s.security_blocker.agent = rule(100, 600, 600);
        s.security_blocker.account = rule(5, 600, 120);
    });
    app.insert_user("target@example.com", "right-pass", true, "active");
    for i in 1..=5 {
        let response = app
            .post_agent_login_via("target@example.com", "wrong", &format!("203.0.113.{i}"))
            .await;
        assert_eq!(response.status(), 401);
    }
    assert_account_blocked(
        app.post_agent_login_via("target@example.com", "right-pass", "203.0.113.99")
            .await,
        2,
        121,
    )
    .await;
    // Other accounts are not affected.
    assert_eq!(
        app.post_agent_login_via(DEMO_USERNAME, DEMO_PASSWORD, "203.0.113.1")
            .await
            .status(),
        201
    );
}

async fn x_forwarded_for_counts_only_from_trusted_proxies(backend: Backend) {
    // Untrusted peer: the header is ignored, every attempt counts for 127.0.0.1.
    let app = app_with(backend, |s| s.security_blocker.agent = rule(3, 600, 600));
    app.insert_user("spoof@example.com", "right-pass", true, "active");
    for i in 1..=3 {
        let response = app
            .post_agent_login_via("spoof@example.com", "wrong", &format!("203.0.113.{i}"))
            .await;
        assert_eq!(response.status(), 401);
    }
    assert_blocked(
        app.post_agent_login_via("spoof@example.com", "right-pass", "203.0.113.200")
            .await,
        10,
        601,
    )
    .await;
    drop(app);

    // Trusted proxies: the right-most address that is not a trusted proxy is the client.
    let app = app_with(backend, |s| {
        s.glue.trusted_proxies = vec!["127.0.0.1".into(), "198.51.100.0/24".into()];
        s.security_blocker.agent = rule(3, 600, 600);
    });
    app.insert_user("proxied@example.com", "right-pass", true, "active");
    for chain in [
        "203.0.113.9",
        "203.0.113.9, 198.51.100.7",
        "1.2.3.4, 203.0.113.9, 198.51.100.8",
    ] {
        assert_eq!(
            app.post_agent_login_via("proxied@example.com", "wrong", chain)
                .await
                .status(),
            401
        );
    }
    assert_blocked(
        app.post_agent_login_via("proxied@example.com", "right-pass", "203.0.113.9")
            .await,
        10,
        601,
    )
    .await;
    // Another client behind the same proxies is not blocked.
    let response = app
        .post_agent_login_via(
            "proxied@example.com",
            "right-pass",
            "203.0.113.10, 198.51.100.7",
        )
        .await;
    assert_eq!(response.status(), 201);
}

async fn two_instances_share_one_block(backend: Backend) {
    let db = std::sync::Arc::new(TestDatabase::create(backend));
    let mut settings = test_settings(&db.url);
    settings.security_blocker.agent = rule(4, 600, 600);
    let first = start(settings.clone(), db.clone()).unwrap();
    let second = start(settings, db.clone()).unwrap();
    first.insert_user("shared@example.com", "right-pass", true, "active");
    for app in [&first, &second, &first, &second] {
        assert_eq!(
            app.agent_login_status("shared@example.com", "wrong").await,
            401
        );
    }
    for app in [&first, &second] {
        assert_blocked(
            app.post_agent_login("shared@example.com", "right-pass")
                .await,
            10,
            601,
        )
        .await;
    }
}

async fn concurrent_failures_are_all_counted(backend: Backend) {
    let app = app_with(backend, |s| {
        s.security_blocker.agent = rule(1000, 600, 600);
        s.security_blocker.address = rule(1000, 600, 600);
        s.security_blocker.account = rule(1000, 600, 600);
    });
    app.insert_user("burst@example.com", "right-pass", true, "active");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/agent-access-tokens");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("Content-Type", JSON_API)
                .body(agent_login_body("burst@example.com", "wrong").to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 401);
    }
    let counts: Vec<(String, i32)> = dsl::glue_login_attempt_counter
        .select((dsl::entity_type, dsl::attempts))
        .order(dsl::entity_type)
        .load(&mut app.conn())
        .unwrap();
    assert_eq!(
        counts,
        vec![
            ("agent".to_string(), 20),
            ("agent-account".to_string(), 20),
            ("agent-address".to_string(), 20)
        ]
    );
    // No username is stored in the table.
    let keys: Vec<String> = dsl::glue_login_attempt_counter
        .select(dsl::counter_key)
        .load(&mut app.conn())
        .unwrap();
    assert!(keys.iter().all(|k| k.len() == 64 && !k.contains("burst")));
}

async fn expired_counters_are_swept(backend: Backend) {
    // Windows of 3 s of real time: the first five attempts must all be counted before any of
    // them expires, also on a loaded machine running the whole suite.
    let app = app_with(backend, |s| {
        s.security_blocker.agent = rule(9, 3, 3);
        s.security_blocker.address = rule(50, 3, 3);
        s.security_blocker.account = rule(50, 3, 3);
        s.security_blocker.sweep_interval_s = 0;
    });
    for i in 0..5 {
        let _ = app
            .post_agent_login(&format!("spray{i}@example.com"), "x")
            .await;
    }
    let count = || -> i64 {
        dsl::glue_login_attempt_counter
            .count()
            .get_result(&mut app.conn())
            .unwrap()
    };
    // Per (address, username) and per username for each, one per address for all.
    assert_eq!(count(), 11);
    app.clock.advance(std::time::Duration::from_millis(3300));
    let _ = app.post_agent_login("one-more@example.com", "x").await;
    assert_eq!(count(), 3, "only the newest attempt's counters remain");
    // Counters written by a clock 10 s behind have expired in real time: the CLI (which runs on
    // the system clock) sweeps those two and leaves the two that have not.
    app.clock.set_behind(std::time::Duration::from_secs(10));
    let _ = app.post_agent_login("late@example.com", "x").await;
    assert_eq!(count(), 5);
    let output = glue_in("test", &app.db, &["tokens", "purge-expired"], None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(
            "deleted 0 expired refresh token(s)\ndeleted 2 expired login counter(s)\ndeleted 0 expired trusted address(es)\n0 transaction(s)"
        ),
        "{stdout}"
    );
    assert_eq!(count(), 3);
}
