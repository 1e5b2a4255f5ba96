//! The security blocker and the session checks at their seams (hardening, round 2): a spelling
//! the database matches to an account never splits its count, an attempt that is never verified
//! gives its places back, blocked traffic takes no place in the bcrypt queue, PHP Glue's garbage
//! tokens never block customer logins, and a customer who is gone stops refreshing.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use crate::backends;
use crate::helpers::*;

backends!(
    spelling_variants_the_database_matches_share_one_count,
    abandoned_attempts_give_their_places_back,
    blocked_traffic_takes_no_queue_place,
    garbage_php_tokens_never_block_customer_logins,
    deleted_and_anonymised_customers_stop_refreshing,
);

fn rule(attempts: u32, window_s: u64, block_s: u64) -> glue::settings::BlockRule {
    glue::settings::BlockRule {
        attempts,
        window_s,
        block_s,
    }
}

/// A customer login from `address` (a trusted proxy forwards it).
async fn customer_login_via(app: &TestApp, email: &str, password: &str, address: &str) -> u16 {
    app.client
        .post(app.url("/access-tokens"))
        .header("Content-Type", JSON_API)
        .header("X-Forwarded-For", address)
        .body(customer_login_body(email, password).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn spelling_variants_the_database_matches_share_one_count(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.glue.trusted_proxies = vec!["127.0.0.1".into()];
        s.security_blocker.customer = rule(3, 600, 300);
        s.security_blocker.account = rule(5, 600, 300);
    });
    let email = "victim.iris@test.example";
    app.insert_customer("DE--VI", email, "Victim", "Iris", Some("right-pass"));
    let variants = [
        "VICTIM.IRIS@TEST.EXAMPLE",
        "Victim.Iris@Test.Example",
        "víctim.iris@test.example",
        "victim.irís@tést.example",
        "\u{ff56}ictim.iris@test.example",
        "v\u{130}ctim.iris@test.example",
    ];
    // The spellings this database takes for her: ASCII case everywhere; MariaDB's
    // utf8_unicode_ci also accents, width and trailing spaces.
    let matched: Vec<&str> = variants
        .into_iter()
        .filter(|v| {
            glue::customer::find_by_email(&mut app.conn(), v)
                .unwrap()
                .is_some()
        })
        .collect();
    assert!(matched.contains(&"VICTIM.IRIS@TEST.EXAMPLE"), "{matched:?}");
    if backend == Backend::Mysql {
        assert!(matched.len() >= 6, "{matched:?}");
    }
    // Per (address, account): three failures under her plain spelling block every spelling the
    // database matches, from that address.
    for _ in 0..3 {
        assert_eq!(
            customer_login_via(&app, email, "wrong", "198.51.100.1").await,
            401
        );
    }
    for variant in &matched {
        assert_eq!(
            customer_login_via(&app, variant, "right-pass", "198.51.100.1").await,
            429,
            "{variant:?}"
        );
    }
    // Per account, from any address: failures under the variants add up to one count (three
    // so far; two more reach the account rule's five).
    for (i, variant) in matched.iter().rev().cycle().take(2).enumerate() {
        let address = format!("203.0.113.{}", i + 1);
        assert_eq!(
            customer_login_via(&app, variant, "wrong", &address).await,
            401,
            "{variant:?}"
        );
    }
    assert_eq!(
        customer_login_via(&app, email, "right-pass", "192.0.2.77").await,
        429,
        "the account is blocked"
    );
}

async fn abandoned_attempts_give_their_places_back(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.glue.trusted_proxies = vec!["127.0.0.1".into()];
        s.oauth.bcrypt_concurrency = 1;
        s.oauth.bcrypt_kernel = glue::settings::BcryptKernel::Scalar;
    });
    let address = "203.0.113.9";
    // The demo agent's hash has cost 12: each verification holds the only bcrypt thread a
    // while. Seven wrong logins whose clients leave after 50 ms: at most the first is verified,
    // the others are skipped when their turn comes.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..7)
        .map(|_| {
            let request = impatient
                .post(app.url("/agent-access-tokens"))
                .header("Content-Type", JSON_API)
                .header("X-Forwarded-For", address)
                .body(agent_login_body(DEMO_USERNAME, "wrong").to_string());
            tokio::spawn(async move { request.send().await.is_err() })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap(), "the client gave up");
    }
    // Two real failures: with the skipped seven still holding places the agent rule (9) would
    // be full; they gave them back.
    for _ in 0..2 {
        let response = app
            .post_agent_login_via(DEMO_USERNAME, "wrong", address)
            .await;
        assert_eq!(response.status(), 401);
    }
    let response = app
        .post_agent_login_via(DEMO_USERNAME, DEMO_PASSWORD, address)
        .await;
    assert_eq!(response.status(), 201);
}

async fn blocked_traffic_takes_no_queue_place(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app_with(backend, |s| {
        s.glue.trusted_proxies = vec!["127.0.0.1".into()];
        s.oauth.bcrypt_queue_depth = 2;
        s.security_blocker.agent = rule(2, 600, 300);
    }));
    app.insert_user("target@example.com", "right-pass", true, "active");
    app.insert_user("legit@example.com", "right-pass", true, "active");
    let blocked = "203.0.113.66";
    for _ in 0..2 {
        let response = app
            .post_agent_login_via("target@example.com", "wrong", blocked)
            .await;
        assert_eq!(response.status(), 401);
    }
    // 32 clients hammer the blocked key while another address logs in, one after another.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammers: Vec<_> = (0..32)
        .map(|_| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let mut refused = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let response = app
                        .post_agent_login_via("target@example.com", "wrong", blocked)
                        .await;
                    assert_eq!(response.status(), 429);
                    refused += 1;
                }
                refused
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = app
            .post_agent_login_via("legit@example.com", "right-pass", "198.51.100.2")
            .await;
        statuses.push(response.status().as_u16());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut refused = 0;
    for hammer in hammers {
        refused += hammer.await.unwrap();
    }
    assert!(refused >= 32, "the blocked key was hammered ({refused})");
    assert_eq!(statuses, vec![201; 6], "no legitimate login was displaced");
}

async fn garbage_php_tokens_never_block_customer_logins(backend: Backend) {
    let app = crate::php_glue::spawn_migrating_app(backend);
    app.insert_customer(
        "DE--NAT",
        "office@example.com",
        "Of",
        "Fice",
        Some("right-pass"),
    );
    let mut statuses = Vec::new();
    for _ in 0..31 {
        let garbage = format!(
            "def50200{}",
            hex::encode([7u8; 120].map(|_| rand::random::<u8>()))
        );
        statuses.push(app.refresh(&json!(garbage)).await.status().as_u16());
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[30], 429, "the address is blocked for PHP tokens");
    // The office's customers still log in from that address.
    let response = app
        .customer_login(&json!("office@example.com"), &json!("right-pass"))
        .await;
    assert_eq!(response.status(), 201);
}

async fn deleted_and_anonymised_customers_stop_refreshing(backend: Backend) {
    let app = spawn_app(backend);
    let (agent_access, _) = app.agent_session("acting@example.com").await;
    for (reference, email, gone) in [
        ("DE--AN", "anonymised@example.com", "UPDATE spy_customer SET anonymized_at = created_at WHERE customer_reference = 'DE--AN'"),
        ("DE--DL", "deleted@example.com", "DELETE FROM spy_customer WHERE customer_reference = 'DE--DL'"),
    ] {
        app.insert_customer(reference, email, "Gone", "Soon", Some("right-pass"));
        let response = app
            .customer_login(&json!(email), &json!("right-pass"))
            .await;
        assert_eq!(response.status(), 201);
        let (own_access, own_refresh) = token_pair(response.json().await.unwrap());
        let response = app.impersonate(&json!(reference), &agent_access).await;
        assert_eq!(response.status(), 201);
        let (acting_access, acting_refresh) = token_pair(response.json().await.unwrap());

        diesel::sql_query(gone).execute(&mut app.conn()).unwrap();
        for refresh in [&own_refresh, &acting_refresh] {
            assert_refresh_fails(&app, refresh).await;
        }
        for access in [&own_access, &acting_access] {
            crate::sessions::assert_access_token_refused(&app, access).await;
        }
    }
    // The agent's own session goes on.
    assert_eq!(app.search("q=x", &agent_access).await.status(), 200);
}
