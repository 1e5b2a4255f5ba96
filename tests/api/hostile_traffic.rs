//! Hostile traffic against the real binary (hardening, round 2): nothing a client chooses —
//! a path, a method — becomes a metric label or an access-log field, so invented ones cannot
//! grow the process's memory or smuggle a token into the log.

use crate::helpers::*;
use crate::process::ServeProcess;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// 50,000 requests to unique unknown paths, half of them with invented methods, over eight
/// keep-alive connections: `/metrics` stays under 256 KiB and the server's resident memory
/// grows by less than 16 MiB (both grew without bound while every path and method was a label).
#[tokio::test]
async fn invented_paths_and_methods_leave_metrics_and_memory_bounded() {
    let db = TestDatabase::create(Backend::Sqlite);
    let listen = format!("127.0.0.1:{}", free_port());
    let server = ServeProcess::start(
        &db.url,
        &[("GLUE__METRICS__LISTEN", &listen), ("RUST_LOG", "warn")],
    )
    .await;
    let metrics_url = format!("http://{listen}/metrics");
    let send = |client: reqwest::Client, base: String, from: usize, to: usize| async move {
        for i in from..to {
            let method = if i % 2 == 0 {
                reqwest::Method::GET
            } else {
                reqwest::Method::from_bytes(format!("M{i:07}ETHOD").as_bytes()).unwrap()
            };
            let response = client
                .request(method, format!("{base}/unknown-{i}/x"))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_client_error(), "{}", response.status());
        }
    };
    // Warm up first, so the baseline includes what the server allocates once.
    send(reqwest::Client::new(), server.base.clone(), 0, 2_000).await;
    let before = server.rss_kib();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (from, to) = (2_000 + t * 6_250, 2_000 + (t + 1) * 6_250);
            tokio::spawn(send(reqwest::Client::new(), server.base.clone(), from, to))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let metrics = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let after = server.rss_kib();
    assert!(
        metrics.len() < 256 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    assert!(
        metrics.contains(r#"method="other",route="(unmatched)",status="405""#)
            || metrics.contains(r#"method="other",route="(unmatched)",status="404""#)
    );
    assert!(!metrics.contains("unknown-"), "no path in a label");
}

/// A refresh token sent as a path (`DELETE /<token>`, a client's mistake) or as a method never
/// reaches the access log; the log line shows `(unmatched)` and `other`.
#[tokio::test]
async fn a_token_sent_as_a_path_never_reaches_the_log() {
    let db = TestDatabase::create(Backend::Sqlite);
    let mut server = ServeProcess::start(&db.url, &[]).await;
    let token = glue::oauth::new_refresh_token();
    let client = reqwest::Client::new();
    for path in [format!("/{token}"), format!("/{token}/more")] {
        let response = client.delete(server.url(&path)).send().await.unwrap();
        assert!(response.status().is_client_error());
    }
    let invented = reqwest::Method::from_bytes(b"SECRETMETHOD").unwrap();
    let response = client
        .request(invented, server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    let (_, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(!log.contains(&token), "{log}");
    assert!(!log.contains("SECRETMETHOD"), "{log}");
    assert!(log.contains("DELETE (unmatched) 404"), "{log}");
}
