//! The security blocker on Redis (`security_blocker.store = "redis"`), in Spryker's own keys.
//!
//! Against the Redis server `GLUE_TEST_REDIS_URL` names (`redis://127.0.0.1:6379`; CI runs it),
//! each test in a database index of its own (emptied first); the fault test starts a Redis of its
//! own on a free port and stops it, never touching the shared server. Ignored without the URL.

use std::time::{Duration, Instant};

use glue::settings::{BlockRule, BlockerStore, Secret, Settings};
use serde_json::Value;

use crate::helpers::*;

/// A connection to database `index` of the test server, emptied, and its URL for glue.
fn redis_database(index: u8) -> (redis::Connection, String) {
    let base = std::env::var("GLUE_TEST_REDIS_URL")
        .expect("a Redis test needs GLUE_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379");
    let url = format!("{}/{index}", base.trim_end_matches('/'));
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    (conn, url)
}

fn on_redis(settings: &mut Settings, url: &str) {
    settings.security_blocker.store = BlockerStore::Redis;
    settings.security_blocker.redis.url = Secret::new(url);
}

fn rule(attempts: u32, window_s: u64, block_s: u64) -> BlockRule {
    BlockRule {
        attempts,
        window_s,
        block_s,
    }
}

fn get(conn: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(conn).unwrap()
}

fn ttl(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(conn).unwrap()
}

async fn retry_after(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), 429);
    let seconds = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "4401");
    seconds
}

/// A key written exactly as Spryker's PHP writes it blocks that account from that address,
/// with Retry-After from the key's TTL; other accounts and addresses are not blocked.
#[tokio::test]
#[ignore = "needs a Redis server: GLUE_TEST_REDIS_URL (CI runs it)"]
async fn a_block_sprykers_storefront_wrote_is_honoured() {
    let (mut redis, url) = redis_database(1);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        on_redis(s, &url);
        s.glue.trusted_proxies = vec!["127.0.0.1".into()];
    });
    app.insert_user("agent@shop.test", "right-pass", true, "active");
    app.insert_customer("DE--90", "customer@shop.test", "C", "U", Some("right-pass"));
    redis::cmd("SETEX")
        .arg("kv:agent:127.0.0.1:agent@shop.test")
        .arg(360)
        .arg(9)
        .exec(&mut redis)
        .unwrap();
    redis::cmd("SETEX")
        .arg("kv:customer:2001:db8::7:customer@shop.test")
        .arg(300)
        .arg(10)
        .exec(&mut redis)
        .unwrap();
    let seconds = retry_after(app.post_agent_login("agent@shop.test", "right-pass").await).await;
    assert!((350..=361).contains(&seconds), "{seconds}");
    // Another address is not blocked.
    assert_eq!(
        app.post_agent_login_via("agent@shop.test", "right-pass", "203.0.113.5")
            .await
            .status(),
        201
    );
    // IPv6 as Symfony's getClientIp() gives it: compressed.
    let response = app
        .client
        .post(app.url("/access-tokens"))
        .header("Content-Type", JSON_API)
        .header("X-Forwarded-For", "2001:0db8:0000:0000:0000:0000:0000:0007")
        .body(
            customer_login_body(
                serde_json::json!("customer@shop.test"),
                serde_json::json!("right-pass"),
            )
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let seconds = retry_after(response).await;
    assert!((290..=301).contains(&seconds), "{seconds}");
    assert_eq!(
        app.agent_login_status(DEMO_USERNAME, DEMO_PASSWORD).await,
        201
    );
}

/// glue's failures are written as Spryker's SecurityBlockerStorageWriter writes them (value and
/// TTL), under the account as typed and as folded, so the storefront counts them; glue's own
/// keys hold no username.
#[tokio::test]
#[ignore = "needs a Redis server: GLUE_TEST_REDIS_URL (CI runs it)"]
async fn glue_failures_follow_sprykers_rule_in_sprykers_keys() {
    let (mut redis, url) = redis_database(2);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        on_redis(s, &url);
        s.security_blocker.agent = rule(3, 900, 360);
    });
    app.insert_user("mixed@shop.test", "right-pass", true, "active");
    let typed = "kv:agent:127.0.0.1:Mixed@Shop.test";
    let folded = "kv:agent:127.0.0.1:mixed@shop.test";
    assert_eq!(
        app.agent_login_status("Mixed@Shop.test", "wrong").await,
        401
    );
    assert_eq!(get(&mut redis, typed).as_deref(), Some("1"));
    assert_eq!(get(&mut redis, folded).as_deref(), Some("1"));
    assert!((890..=900).contains(&ttl(&mut redis, folded)));
    assert_eq!(
        app.agent_login_status("mixed@shop.test", "wrong").await,
        401
    );
    assert_eq!(get(&mut redis, typed).as_deref(), Some("1"));
    assert_eq!(get(&mut redis, folded).as_deref(), Some("2"));
    // The failure that reaches the limit: SETEX key block_for n.
    assert_eq!(
        app.agent_login_status("MIXED@shop.test", "wrong").await,
        401
    );
    assert_eq!(get(&mut redis, folded).as_deref(), Some("3"));
    assert!(
        (350..=360).contains(&ttl(&mut redis, folded)),
        "{}",
        ttl(&mut redis, folded)
    );
    // Blocked in every spelling, since they share the folded key.
    for spelling in ["mixed@shop.test", "Mixed@Shop.test", "MIXED@SHOP.TEST"] {
        let seconds = retry_after(app.post_agent_login(spelling, "right-pass").await).await;
        assert!((1..=361).contains(&seconds), "{seconds}");
    }
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis).unwrap();
    for key in &keys {
        assert!(
            key.starts_with("kv:agent:127.0.0.1:") || !key.to_lowercase().contains("shop.test"),
            "{key}"
        );
        assert!(
            key.starts_with("kv:") || key.starts_with("glue:security-blocker:"),
            "{key}"
        );
    }
}

/// 30 wrong logins at once: at most the limit is verified, the rest refused before bcrypt.
#[tokio::test]
#[ignore = "needs a Redis server: GLUE_TEST_REDIS_URL (CI runs it)"]
async fn a_burst_verifies_at_most_the_limit() {
    let (_redis, url) = redis_database(3);
    let app = spawn_app_with(Backend::Sqlite, |s| on_redis(s, &url));
    app.insert_user("burst@shop.test", "right-pass", true, "active");
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/agent-access-tokens"))
                .header("Content-Type", JSON_API)
                .body(agent_login_body("burst@shop.test", "wrong").to_string());
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let verified = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!((1..=9).contains(&verified), "{statuses:?}");
    assert_eq!(verified + refused, 30, "{statuses:?}");
    assert_eq!(
        app.agent_login_status("burst@shop.test", "right-pass")
            .await,
        429
    );
}

/// Two instances on one Redis count together.
#[tokio::test]
#[ignore = "needs a Redis server: GLUE_TEST_REDIS_URL (CI runs it)"]
async fn two_instances_share_one_redis() {
    let (_redis, url) = redis_database(4);
    let db = std::sync::Arc::new(TestDatabase::create(Backend::Sqlite));
    let mut settings = test_settings(&db.url);
    on_redis(&mut settings, &url);
    settings.security_blocker.agent = rule(4, 600, 600);
    let first = start(settings.clone(), db.clone()).unwrap();
    let second = start(settings, db.clone()).unwrap();
    first.insert_user("shared@shop.test", "right-pass", true, "active");
    for app in [&first, &second, &first, &second] {
        assert_eq!(
            app.agent_login_status("shared@shop.test", "wrong").await,
            401
        );
    }
    for app in [&first, &second] {
        let seconds =
            retry_after(app.post_agent_login("shared@shop.test", "right-pass").await).await;
        assert!((1..=601).contains(&seconds), "{seconds}");
    }
}

/// A block ends with its key's TTL (real time: a 2 s block), and a success afterwards trusts
/// the address.
#[tokio::test]
#[ignore = "needs a Redis server: GLUE_TEST_REDIS_URL (CI runs it)"]
async fn a_block_ends_with_its_time() {
    let (mut redis, url) = redis_database(5);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        on_redis(s, &url);
        s.security_blocker.agent = rule(2, 60, 2);
    });
    app.insert_user("short@shop.test", "right-pass", true, "active");
    for _ in 0..2 {
        assert_eq!(
            app.agent_login_status("short@shop.test", "wrong").await,
            401
        );
    }
    let seconds = retry_after(app.post_agent_login("short@shop.test", "right-pass").await).await;
    assert!((1..=3).contains(&seconds), "{seconds}");
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let status = app
            .agent_login_status("short@shop.test", "right-pass")
            .await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 429);
        assert!(Instant::now() < deadline, "the block did not end");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("glue:security-blocker:agent-trust:*")
        .query(&mut redis)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

/// A Redis of the test's own, on a free port.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (CI installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis { port, child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Redis stopped mid-run: logins answer 503 + Retry-After at once (fail closed), refresh and
/// search keep working, `/readyz` reports it but stays ready; Redis back, logins work again
/// without a restart.
#[tokio::test]
#[ignore = "needs a Redis server: GLUE_TEST_REDIS_URL (CI runs it)"]
async fn redis_down_fails_logins_closed_and_recovers() {
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let app = spawn_app_with(Backend::Sqlite, |s| on_redis(s, &url));
    let response = app.post_agent_login(DEMO_USERNAME, DEMO_PASSWORD).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let access = body["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = body["data"]["attributes"]["refreshToken"].clone();

    redis.stop();
    let started = Instant::now();
    let response = app.post_agent_login(DEMO_USERNAME, DEMO_PASSWORD).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let text = response.text().await.unwrap();
    assert!(!text.to_lowercase().contains("redis"), "{text}");
    assert_eq!(
        app.customer_login(&serde_json::json!("x@shop.test"), &serde_json::json!("pw"))
            .await
            .status(),
        503
    );
    assert_eq!(app.refresh(&refresh).await.status(), 201);
    assert_eq!(app.search("q=sonia", &access).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        if body["degraded"].is_array() {
            assert!(
                body["degraded"][0].as_str().unwrap().contains("Redis"),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let _redis = OwnRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.agent_login_status(DEMO_USERNAME, DEMO_PASSWORD).await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "logins did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sentinel and cluster addresses, and anything that is not a Redis URL, are refused at start
/// naming the setting; nothing is connected.
#[test]
fn unsupported_redis_urls_are_refused() {
    for (url, message) in [
        ("redis+sentinel://127.0.0.1:26379/mymaster", "Sentinel"),
        ("redis://127.0.0.1:7000,127.0.0.1:7001/0", "several hosts"),
        ("redis-cluster://127.0.0.1:7000", "Cluster"),
        ("http://127.0.0.1:6379", "expected redis://"),
    ] {
        let db = std::sync::Arc::new(TestDatabase::create(Backend::Sqlite));
        let mut settings = test_settings(&db.url);
        on_redis(&mut settings, url);
        let error = start(settings, db).err().expect("refused");
        assert!(
            error.contains("security_blocker.redis.url") && error.contains(message),
            "{url}: {error}"
        );
        assert!(!error.contains("7001/0") || url.contains("7001"), "{error}");
    }
}

/// PHP Glue's refresh tokens count in glue's own keys on Redis, never in Spryker's
/// `kv:customer:…` (they name no account).
#[tokio::test]
#[ignore = "needs a Redis server: GLUE_TEST_REDIS_URL (CI runs it)"]
async fn php_token_failures_stay_out_of_sprykers_keys() {
    let (mut redis, url) = redis_database(6);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        on_redis(s, &url);
        let env = crate::php_glue::shop_env();
        s.oauth.key_source = glue::settings::KeySource::SprykerEnv;
        s.oauth.client_id = env.client_id.clone();
        s.oauth.spryker_env = Some(env);
        s.oauth.private_key_pem = Secret::default();
    });
    for i in 0..3u8 {
        let garbage = format!("def50200{}", hex::encode([i; 120]));
        let response = app.refresh(&serde_json::json!(garbage)).await;
        assert_eq!(response.status(), 401);
    }
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis).unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|k| k.starts_with("glue:security-blocker:php-refresh-token")),
        "{keys:?}"
    );
}

/// A name longer than any account's (Spryker's columns hold 255 bytes) counts in glue's own
/// hashed keys only: failures cannot fill the shop's Redis with large keys.
#[tokio::test]
#[ignore = "needs a Redis server: GLUE_TEST_REDIS_URL (CI runs it)"]
async fn overlong_names_stay_out_of_sprykers_keys() {
    let (mut redis, url) = redis_database(7);
    let app = spawn_app_with(Backend::Sqlite, |s| on_redis(s, &url));
    let long = format!("{}@shop.test", "a".repeat(300));
    assert_eq!(app.agent_login_status(&long, "wrong").await, 401);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis).unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.starts_with("kv:")), "{keys:?}");
    assert!(keys.iter().all(|k| k.len() < 200), "{keys:?}");
}
