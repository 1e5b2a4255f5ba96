//! `/metrics` on its own listener: the counters move with the traffic.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn metrics_count_logins_refreshes_latency_and_the_pool() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.metrics.listen = "127.0.0.1:0".into());
    let metrics_url = format!("http://127.0.0.1:{}/metrics", app.metrics_port.unwrap());
    let scrape = || async {
        let response = app.client.get(&metrics_url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    let before = scrape().await;
    assert_eq!(
        metric_sample(
            &before,
            r#"glue_logins_total{kind="agent",outcome="issued"}"#
        ),
        0.0
    );

    let (_, refresh) = token_pair(app.demo_agent_tokens().await);
    assert_eq!(app.agent_login_status(DEMO_USERNAME, "wrong").await, 401);
    assert_eq!(app.refresh(&json!(refresh)).await.status(), 201);
    assert_eq!(app.refresh(&json!("unknown")).await.status(), 401);

    let after = scrape().await;
    for (series, expected) in [
        (r#"glue_logins_total{kind="agent",outcome="issued"}"#, 1.0),
        (r#"glue_logins_total{kind="agent",outcome="invalid"}"#, 1.0),
        (r#"glue_refreshes_total{outcome="rotated"}"#, 1.0),
        (r#"glue_refreshes_total{outcome="rejected"}"#, 1.0),
        (
            r#"glue_http_request_duration_seconds_count{method="POST",route="/agent-access-tokens",status="201"}"#,
            1.0,
        ),
        (
            r#"glue_http_request_duration_seconds_count{method="POST",route="/refresh-tokens",status="401"}"#,
            1.0,
        ),
        ("glue_bcrypt_wait_seconds_count", 2.0),
    ] {
        assert_eq!(metric_sample(&after, series), expected, "{series}\n{after}");
    }
    assert!(
        metric_sample(&after, "glue_db_pool_connections") >= 1.0,
        "{after}"
    );
    assert_eq!(metric_sample(&after, "glue_bcrypt_queue_depth"), 0.0);
    assert!(after.contains("glue_db_pool_timeouts_total 0"), "{after}");
    // Not on the public API port.
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
}

/// Customer searches get a bounded share of the pool (`glue.search_concurrency`): past it a
/// search waits `glue.search_queue_ms`, then is answered 503 + Retry-After (counted in
/// `glue_searches_shed_total`) — never a 500 — while logins go on.
#[tokio::test]
async fn searches_beyond_their_share_are_shed_and_counted() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.metrics.listen = "127.0.0.1:0".into();
        s.glue.search_concurrency = 1;
        s.glue.search_queue_ms = 0;
    });
    let metrics_url = format!("http://127.0.0.1:{}/metrics", app.metrics_port.unwrap());
    let (access, _) = token_pair(app.demo_agent_tokens().await);
    let searches: Vec<_> = (0..40)
        .map(|_| {
            let request = app
                .client
                .get(app.url("/agent-customer-search?q=s"))
                .header("X-Agent-Authorization", format!("Bearer {access}"));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let retry_after = response.headers().contains_key("retry-after");
                (response.status().as_u16(), retry_after)
            })
        })
        .collect();
    assert_eq!(
        app.agent_login_status(DEMO_USERNAME, DEMO_PASSWORD).await,
        201
    );
    let mut shed = 0;
    for search in searches {
        match search.await.unwrap() {
            (200, _) => {}
            (503, true) => shed += 1,
            other => panic!("{other:?}"),
        }
    }
    let text = app
        .client
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric_sample(&text, "glue_searches_shed_total"),
        f64::from(shed)
    );
    assert_eq!(metric_sample(&text, "glue_search_indexes_missing"), 0.0);
}

#[test]
fn a_search_share_that_would_take_the_whole_pool_is_refused() {
    let output = glue_command(
        "test",
        "sqlite://never.db",
        &[
            ("GLUE__DATABASE__POOL_SIZE", "4"),
            ("GLUE__GLUE__SEARCH_CONCURRENCY", "4"),
        ],
        &["config", "show"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("glue.search_concurrency"), "{stderr}");
}

#[test]
fn an_unknown_search_priority_is_refused() {
    let output = glue_command(
        "test",
        "sqlite://never.db",
        &[("GLUE__GLUE__SEARCH_PRIORITY", "lowest")],
        &["config", "show"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("search_priority"), "{stderr}");
}
