//! `POST /refresh-tokens` and `DELETE /refresh-tokens/…` (contract §3): rotation, reuse
//! detection, atomicity under concurrency, revocation with ownership.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use glue::db::schema::glue_oauth_refresh_token::dsl as side;
use glue::db::schema::spy_oauth_refresh_token::dsl;
use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

backends!(
    a_refresh_chain_rotates_and_keeps_the_subject,
    replaying_a_rotated_token_revokes_its_whole_family,
    blank_and_invalid_refresh_tokens_are_refused,
    expired_revoked_and_foreign_client_tokens_are_refused,
    concurrent_refreshes_of_one_token_rotate_it_exactly_once,
    delete_revokes_only_the_callers_own_tokens,
    delete_mine_revokes_every_token_of_the_caller,
    delete_requires_an_access_token,
);

fn hash(token: &str) -> String {
    glue::oauth::hash_refresh_token(token)
}

async fn refresh_ok(app: &TestApp, token: &str) -> (String, String) {
    let response = app.refresh(&json!(token)).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    token_pair(response.json().await.unwrap())
}

async fn a_refresh_chain_rotates_and_keeps_the_subject(backend: Backend) {
    let app = spawn_app(backend);
    let (access1, rt1) = app.agent_session("chain@example.com").await;
    let claims1 = app.verify_with_jwks(&access1).await;

    let response = app.refresh(&json!(rt1)).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["type"], "refresh-tokens");
    assert_eq!(body["data"]["id"], Value::Null);
    assert_eq!(
        body["data"]["links"]["self"],
        format!("{BASE_URL}/refresh-tokens")
    );
    assert_eq!(
        body["data"]["attributes"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["tokenType", "expiresIn", "accessToken", "refreshToken"]
    );
    assert_eq!(body["data"]["attributes"]["expiresIn"], 28800);
    let (access2, rt2) = token_pair(body);
    // Two rotations within the same second give distinct tokens that all work.
    let (access3, rt3) = refresh_ok(&app, &rt2).await;
    assert!(rt1 != rt2 && rt2 != rt3 && rt1 != rt3);
    for access in [&access2, &access3] {
        let claims = app.verify_with_jwks(access).await;
        assert_eq!(claims["sub"], claims1["sub"]);
        assert_eq!(claims["scopes"], json!(["agent"]));
        assert_ne!(claims["jti"], claims1["jti"]);
    }
    // RT1 and RT2 are retired and linked to their successors in one family.
    let mut conn = app.conn();
    let rows: Vec<(String, String, Option<String>)> = dsl::spy_oauth_refresh_token
        .inner_join(side::glue_oauth_refresh_token)
        .select((dsl::identifier, side::family, side::successor))
        .order(dsl::id_oauth_refresh_token)
        .load(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], (hash(&rt1), rows[0].1.clone(), Some(hash(&rt2))));
    assert_eq!(rows[1], (hash(&rt2), rows[0].1.clone(), Some(hash(&rt3))));
    assert_eq!(rows[2], (hash(&rt3), rows[0].1.clone(), None));
    // The newest keeps working.
    refresh_ok(&app, &rt3).await;
}

async fn replaying_a_rotated_token_revokes_its_whole_family(backend: Backend) {
    let app = spawn_app(backend);
    let (_, rt1) = app.agent_session("replay@example.com").await;
    let (_, other_family) = app.agent_session("replay@example.com").await;
    let (_, rt2) = refresh_ok(&app, &rt1).await;
    let (_, rt3) = refresh_ok(&app, &rt2).await;
    // RT1 comes back (stolen copy): refused, and RT2/RT3 die with it.
    assert_refresh_fails(&app, &rt1).await;
    assert_refresh_fails(&app, &rt3).await;
    assert_refresh_fails(&app, &rt2).await;
    // Another login of the same agent is another family and lives on.
    refresh_ok(&app, &other_family).await;
}

async fn blank_and_invalid_refresh_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend);
    for attributes in [
        json!({}),
        json!({"refreshToken":""}),
        json!({"refreshToken":"  "}),
        json!({"refreshToken":null}),
    ] {
        let response = app
            .post(
                "/refresh-tokens",
                &json!({"data":{"type":"refresh-tokens","attributes":attributes}}),
            )
            .await;
        assert_error(
            response,
            Some("901"),
            422,
            "refreshToken => This value should not be blank.",
        )
        .await;
    }
    for token in [
        json!("garbage"),
        json!(12),
        json!(["x"]),
        json!("a".repeat(5000)),
    ] {
        let response = app.refresh(&token).await;
        assert_error(response, Some("004"), 401, "Failed to refresh token.").await;
    }
    let response = app
        .post(
            "/refresh-tokens",
            &json!({"data":{"type":"access-tokens","attributes":{"refreshToken":"x"}}}),
        )
        .await;
    assert_error(response, None, 400, "Invalid type.").await;
}

async fn expired_revoked_and_foreign_client_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend);
    let (_, expired) = app.agent_session("expiry@example.com").await;
    let (_, foreign) = app.agent_session("expiry@example.com").await;
    let (_, revoked) = app.agent_session("expiry@example.com").await;
    let mut conn = app.conn();
    let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1);
    diesel::update(dsl::spy_oauth_refresh_token.filter(dsl::identifier.eq(hash(&expired))))
        .set(dsl::expires_at.eq(past))
        .execute(&mut conn)
        .unwrap();
    glue::oauth::ensure_client(&mut conn, "another-client").unwrap();
    diesel::update(dsl::spy_oauth_refresh_token.filter(dsl::identifier.eq(hash(&foreign))))
        .set(dsl::fk_oauth_client.eq("another-client"))
        .execute(&mut conn)
        .unwrap();
    diesel::update(dsl::spy_oauth_refresh_token.filter(dsl::identifier.eq(hash(&revoked))))
        .set(dsl::revoked_at.eq(Some(past)))
        .execute(&mut conn)
        .unwrap();
    for token in [&expired, &foreign, &revoked] {
        assert_refresh_fails(&app, token).await;
    }
    // A refused token is not consumed or altered.
    let successor: Option<String> = dsl::spy_oauth_refresh_token
        .inner_join(side::glue_oauth_refresh_token)
        .filter(dsl::identifier.eq(hash(&foreign)))
        .select(side::successor)
        .first(&mut conn)
        .unwrap();
    assert_eq!(successor, None);
}

async fn concurrent_refreshes_of_one_token_rotate_it_exactly_once(backend: Backend) {
    let app = spawn_app(backend);
    for parallel in [2usize, 8, 32] {
        for round in 0..6 {
            let (_, token) = app.agent_session("race@example.com").await;
            let mut tasks = Vec::new();
            for _ in 0..parallel {
                let client = app.client.clone();
                let url = app.url("/refresh-tokens");
                let body =
                    json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":token}}})
                        .to_string();
                tasks.push(tokio::spawn(async move {
                    let response = client
                        .post(url)
                        .header("Content-Type", JSON_API)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    (status, response.json::<Value>().await.unwrap())
                }));
            }
            let mut created = Vec::new();
            let mut refused = 0;
            for task in tasks {
                let (status, body) = task.await.unwrap();
                match status {
                    201 => created.push(body),
                    401 => {
                        assert_eq!(
                            body,
                            error_body(Some("004"), 401, "Failed to refresh token.")
                        );
                        refused += 1;
                    }
                    other => {
                        panic!("{parallel} parallel, round {round}: unexpected {other}: {body}")
                    }
                }
            }
            assert_eq!(created.len(), 1, "{parallel} parallel, round {round}");
            assert_eq!(refused, parallel - 1);
            // Exactly one successor row exists.
            let mut conn = app.conn();
            let family: String = dsl::spy_oauth_refresh_token
                .inner_join(side::glue_oauth_refresh_token)
                .filter(dsl::identifier.eq(hash(&token)))
                .select(side::family)
                .first(&mut conn)
                .unwrap();
            let rows: i64 = side::glue_oauth_refresh_token
                .filter(side::family.eq(family))
                .count()
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(rows, 2);
            // The losers presented a retired token: that is reuse, the family is revoked.
            let (_, winner) = token_pair(created.pop().unwrap());
            assert_refresh_fails(&app, &winner).await;
        }
    }
}

async fn delete_revokes_only_the_callers_own_tokens(backend: Backend) {
    let app = spawn_app(backend);
    let (access_a, rt_a1) = app.agent_session("a@example.com").await;
    let (access_a2, rt_a2) = app.agent_session("a@example.com").await;
    let (access_b, rt_b) = app.agent_session("b@example.com").await;

    // A cannot revoke B's token; unknown and garbage tokens change nothing either.
    for target in [rt_b.as_str(), "unknown-token", "%00%ff", "mine2"] {
        let response = app.delete_refresh_token(target, Some(&access_a)).await;
        assert_eq!(response.status(), 204, "{target}");
        assert!(response.headers().get("content-type").is_none());
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let (_, rt_b) = refresh_ok(&app, &rt_b).await;

    // A revokes its own first session: that family only.
    let (_, rt_a1_next) = refresh_ok(&app, &rt_a1).await;
    assert_eq!(
        app.delete_refresh_token(&rt_a1, Some(&access_a))
            .await
            .status(),
        204
    );
    assert_refresh_fails(&app, &rt_a1_next).await;
    // That session's access token ended with it; the second session's still works.
    assert_error(
        app.delete_refresh_token(&rt_a2, Some(&access_a)).await,
        Some("001"),
        401,
        "Invalid access token.",
    )
    .await;
    let (_, rt_a2) = refresh_ok(&app, &rt_a2).await;
    assert_eq!(
        app.delete_refresh_token(&rt_a2, Some(&access_a2))
            .await
            .status(),
        204
    );
    assert_refresh_fails(&app, &rt_a2).await;

    // B's session is untouched and B can end it.
    assert_eq!(
        app.delete_refresh_token(&rt_b, Some(&access_b))
            .await
            .status(),
        204
    );
    assert_refresh_fails(&app, &rt_b).await;
}

async fn delete_mine_revokes_every_token_of_the_caller(backend: Backend) {
    let app = spawn_app(backend);
    let (access, rt1) = app.agent_session("mine@example.com").await;
    let (_, rt2) = app.agent_session("mine@example.com").await;
    let (_, other) = app.agent_session("other@example.com").await;
    let response = app.delete_refresh_token("mine", Some(&access)).await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_refresh_fails(&app, &rt1).await;
    assert_refresh_fails(&app, &rt2).await;
    refresh_ok(&app, &other).await;
    // The caller's access tokens ended with its sessions.
    assert_error(
        app.delete_refresh_token("mine", Some(&access)).await,
        Some("001"),
        401,
        "Invalid access token.",
    )
    .await;
}

async fn delete_requires_an_access_token(backend: Backend) {
    let app = spawn_app(backend);
    let (_, rt) = app.agent_session("auth@example.com").await;
    assert_error(
        app.delete_refresh_token(&rt, None).await,
        Some("002"),
        403,
        "Missing access token.",
    )
    .await;
    assert_error(
        app.delete_refresh_token("mine", Some("not-a-jwt")).await,
        Some("001"),
        401,
        "Invalid access token.",
    )
    .await;
    // A refresh token is not an access token.
    assert_error(
        app.delete_refresh_token("mine", Some(&rt)).await,
        Some("001"),
        401,
        "Invalid access token.",
    )
    .await;
    refresh_ok(&app, &rt).await;
}

#[tokio::test]
async fn a_refresh_that_meets_a_locked_database_consumes_nothing() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.database.sqlite_busy_timeout_ms = 200);
    let (_, rt) = app.agent_session("locked@example.com").await;
    let mut locker = app.conn();
    locker.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let response = app.refresh(&json!(rt)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"errors":[{"status":503,"detail":"Service temporarily unavailable. Please try again later."}]})
    );
    locker.batch_execute("ROLLBACK").unwrap();
    refresh_ok(&app, &rt).await;
}

fn glue_cli(db_url: &str, args: &[&str]) -> std::process::Output {
    glue_command("test", db_url, &[], args).output().unwrap()
}

async fn purge_expired_deletes_only_long_expired_rows(backend: Backend) {
    let app = spawn_app(backend);
    let (_, old) = app.agent_session("purge@example.com").await;
    let (_, recent) = app.agent_session("purge@example.com").await;
    let (_, live) = app.agent_session("purge@example.com").await;
    let mut conn = app.conn();
    let now = chrono::Utc::now().naive_utc();
    for (token, age_days) in [(&old, 40), (&recent, 2)] {
        diesel::update(dsl::spy_oauth_refresh_token.filter(dsl::identifier.eq(hash(token))))
            .set(dsl::expires_at.eq(now - chrono::TimeDelta::days(age_days)))
            .execute(&mut conn)
            .unwrap();
    }
    let output = glue_cli(&app.db.url, &["tokens", "purge-expired"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("deleted 1 expired refresh token(s)\n")
    );
    let output = glue_cli(
        &app.db.url,
        &["tokens", "purge-expired", "--retention", "1d"],
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("deleted 1 expired refresh token(s)\n")
    );
    let left: Vec<String> = dsl::spy_oauth_refresh_token
        .select(dsl::identifier)
        .load(&mut conn)
        .unwrap();
    assert_eq!(left, vec![hash(&live)]);
    let output = glue_cli(
        &app.db.url,
        &["tokens", "purge-expired", "--retention", "soon"],
    );
    assert_eq!(output.status.code(), Some(2), "clap rejects a bad duration");
}

backends!(purge_expired_deletes_only_long_expired_rows);

backends!(
    with_a_grace_window_parallel_refreshes_of_one_token_keep_the_session,
    with_a_grace_window_older_generations_and_late_replays_are_still_reuse,
);

fn with_grace(settings: &mut glue::settings::Settings) {
    settings.oauth.refresh_reuse_grace_s = 30;
    settings.oauth.refresh_reuse_grace_uses = 4;
}

/// `n` refreshes of `token` at once: the bodies of the 201s and the number of 401/004s.
async fn parallel_refreshes(app: &TestApp, token: &str, n: usize) -> (Vec<Value>, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/refresh-tokens"))
                .header("Content-Type", JSON_API)
                .body(
                    json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":token}}})
                        .to_string(),
                );
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let (mut created, mut refused) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            (201, body) => created.push(body),
            (401, body) => {
                assert_eq!(
                    body,
                    error_body(Some("004"), 401, "Failed to refresh token.")
                );
                refused += 1;
            }
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    (created, refused)
}

async fn with_a_grace_window_parallel_refreshes_of_one_token_keep_the_session(backend: Backend) {
    let app = spawn_app_with(backend, with_grace);
    // Two tabs: both get a pair. Eight: one rotation plus at most four honoured replays.
    for (parallel, succeed) in [(2usize, 2usize), (8, 5)] {
        let (_, token) = app.agent_session("tabs@example.com").await;
        let (created, refused) = parallel_refreshes(&app, &token, parallel).await;
        assert_eq!(created.len(), succeed, "{parallel} parallel");
        assert_eq!(refused, parallel - succeed);
        // Nothing was revoked: every pair handed out keeps working.
        for body in created {
            let (access, refresh) = token_pair(body);
            assert_eq!(app.search("q=sonia", &access).await.status(), 200);
            refresh_ok(&app, &refresh).await;
        }
    }
}

async fn with_a_grace_window_older_generations_and_late_replays_are_still_reuse(backend: Backend) {
    let app = spawn_app_with(backend, with_grace);
    // A grandparent inside the window is reuse: the family ends.
    let (_, first) = app.agent_session("generations@example.com").await;
    let (_, second) = refresh_ok(&app, &first).await;
    let (_, third) = refresh_ok(&app, &second).await;
    assert_refresh_fails(&app, &first).await;
    assert_refresh_fails(&app, &third).await;

    // The immediately previous token after the window is reuse too.
    let (_, first) = app.agent_session("generations@example.com").await;
    let (_, second) = refresh_ok(&app, &first).await;
    let long_ago = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(60);
    diesel::update(dsl::spy_oauth_refresh_token.filter(dsl::identifier.eq(hash(&first))))
        .set(dsl::revoked_at.eq(Some(long_ago)))
        .execute(&mut app.conn())
        .unwrap();
    assert_refresh_fails(&app, &first).await;
    assert_refresh_fails(&app, &second).await;

    // Pairs honoured within the window stay one family: ending one session ends all of it.
    let (_, first) = app.agent_session("generations@example.com").await;
    let (_, second) = refresh_ok(&app, &first).await;
    let (replayed_access, replayed) = refresh_ok(&app, &first).await;
    assert_eq!(
        app.delete_refresh_token(&replayed, Some(&replayed_access))
            .await
            .status(),
        204
    );
    assert_refresh_fails(&app, &second).await;
}

backends!(every_statement_of_a_refresh_exchange_stays_prepared);

/// diesel prepares every `UPDATE`, every statement with an `sql` fragment and (on SQLite, in
/// effect) every `LIMIT ?` lookup afresh on each execution: a parse for SQLite, a round trip for
/// the servers. The refresh path's reads and its write transaction keep theirs prepared: after
/// the first exchange on a connection, every statement another exchange runs is one the
/// connection's cache holds (the servers' plain `BEGIN`/`COMMIT` go unprepared, as one round trip
/// each, and are left out).
async fn every_statement_of_a_refresh_exchange_stays_prepared(backend: Backend) {
    use diesel::connection::InstrumentationEvent;
    use glue::oauth::refresh_token::{self, Exchange, Grace, NewRefreshToken};
    use std::sync::{Arc, Mutex};

    let db = TestDatabase::create(backend);
    let mut conn = db.connect();
    glue::oauth::ensure_client(&mut conn, "frontend").unwrap();
    let now = chrono::Utc::now().naive_utc();
    let row = |n: usize| NewRefreshToken {
        identifier: hash(&format!("token-{n}")),
        family: "f".repeat(32),
        scopes: "[\"agent\"]".into(),
        customer_reference: None,
        user_identifier: r#"{"id_agent":1}"#.into(),
        actor_identifier: None,
        id_agent: Some(1),
        fk_oauth_client: "frontend".into(),
        expires_at: now + chrono::TimeDelta::days(1),
        created_at: now,
    };

    #[derive(Default)]
    struct Seen {
        started: Vec<String>,
        cached: std::collections::HashSet<String>,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let events = seen.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        let mut seen = events.lock().unwrap();
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                let sql = text.split(" -- binds:").next().unwrap_or_default();
                seen.started.push(sql.trim().to_string());
            }
            InstrumentationEvent::CacheQuery { sql, .. } => {
                seen.cached.insert(sql.trim().to_string());
            }
            _ => {}
        }
    });
    glue::db::write_transaction(&mut conn, |conn| refresh_token::insert(conn, &row(0))).unwrap();
    let grace = Grace {
        window_s: 0,
        max_uses: 0,
    };
    for n in 0..3 {
        if n == 1 {
            seen.lock().unwrap().started.clear();
        }
        let current = refresh_token::find(&mut conn, &hash(&format!("token-{n}")))
            .unwrap()
            .expect("the chain's head");
        assert!(glue::agent::find_active_agent_by_id(&mut conn, 1)
            .unwrap()
            .is_some());
        // A customer's refresh looks the customer up instead (on MySQL/MariaDB with a `BINARY`
        // fragment for the exact match, which diesel prepares afresh).
        if backend != Backend::Mysql {
            glue::customer::find_by_reference(&mut conn, "DE--1").unwrap();
        }
        let exchanged =
            refresh_token::exchange(&mut conn, &current, &row(n + 1), "frontend", grace, now)
                .unwrap();
        assert_eq!(exchanged, Exchange::Rotated);
    }

    let seen = seen.lock().unwrap();
    let unprepared: Vec<&String> = seen
        .started
        .iter()
        .filter(|sql| !seen.cached.contains(*sql))
        .filter(|sql| backend == Backend::Sqlite || !matches!(sql.as_str(), "BEGIN" | "COMMIT"))
        .collect();
    assert!(
        seen.started.len() >= 2 * 8,
        "two exchanges ran their statements: {:?}",
        seen.started
    );
    assert!(
        unprepared.is_empty(),
        "prepared again on every execution: {unprepared:#?}"
    );
    // SQLite compiles a statement whose LIMIT is a bound parameter again on every execution.
    let limited: Vec<&String> = seen
        .started
        .iter()
        .filter(|sql| sql.contains("LIMIT"))
        .collect();
    assert!(limited.is_empty(), "a bound LIMIT: {limited:#?}");
}
