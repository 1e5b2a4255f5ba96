//! Logins that wait together are verified together in SIMD lanes (`oauth.bcrypt_kernel =
//! "batch"`): every answer is the one a lone verification gives — right passwords, wrong ones
//! and unknown users mixed in one batch — and the batches show in `/metrics`.

use std::sync::Arc;

use crate::helpers::*;

/// 24 logins at once on cost-8 hashes: 8 right, 8 wrong, 8 unknown users.
/// Where a hash cheaper than the target cost (4 < 8) comes in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cheap {
    Nowhere,
    /// In the database before the service starts (found by the start-up scan).
    AtStart,
    /// Its user logs in before the storm.
    LoggedInFirst,
}

async fn storm(kernel: glue::password::Kernel, cheap: Cheap) -> (Vec<(usize, u16)>, String) {
    let _ = env_logger::builder().is_test(true).try_init();
    let db = Arc::new(TestDatabase::create(Backend::Sqlite));
    if cheap == Cheap::AtStart {
        glue::agent::create(
            &mut db.connect(),
            &glue::agent::NewAgent {
                first_name: "Cheap",
                last_name: "Hash",
                username: "cheap@example.com",
                password: &glue::password::hash("cheap-pass", 4).unwrap(),
                status: 0,
                is_agent: true,
            },
        )
        .unwrap();
    }
    let mut settings = test_settings(&db.url);
    settings.oauth.bcrypt_cost = 8;
    settings.oauth.bcrypt_kernel = kernel;
    settings.metrics.listen = "127.0.0.1:0".into();
    let app = Arc::new(start(settings, db).expect("application starts"));
    for i in 0..8 {
        let hash = glue::password::hash(&format!("pass-{i}-right"), 8).unwrap();
        app.insert_user_with_hash(&format!("agent{i}@example.com"), &hash, true, "active");
    }
    if cheap == Cheap::LoggedInFirst {
        app.insert_user("cheap@example.com", "cheap-pass", true, "active");
        assert_eq!(
            app.agent_login_status("cheap@example.com", "cheap-pass")
                .await,
            201
        );
    }
    let mut tasks = Vec::new();
    for n in 0..24 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let i = n % 8;
            let (username, password) = match n / 8 {
                0 => (format!("agent{i}@example.com"), format!("pass-{i}-right")),
                1 => (format!("agent{i}@example.com"), format!("pass-{i}-wrong")),
                _ => (format!("nobody{i}@example.com"), format!("pass-{i}-right")),
            };
            (n, app.agent_login_status(&username, &password).await)
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let metrics = app
        .client
        .get(format!(
            "http://127.0.0.1:{}/metrics",
            app.metrics_port.unwrap()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (statuses, metrics)
}

fn assert_answers(statuses: &[(usize, u16)]) {
    for &(n, status) in statuses {
        let expected = if n < 8 { 201 } else { 401 };
        assert_eq!(status, expected, "login {n}");
    }
}

#[tokio::test]
async fn batched_logins_get_the_answers_lone_ones_would() {
    let (statuses, metrics) = storm(glue::password::Kernel::Batch, Cheap::Nowhere).await;
    assert_answers(&statuses);
    // Every login was served once; some shared a round (batches of several lanes).
    assert_eq!(
        metric_sample(&metrics, "glue_bcrypt_batch_size_sum"),
        24.0,
        "{metrics}"
    );
    // (On a CPU without SIMD lanes bcrypt-rust offers none, and every login is verified alone.)
    let rounds = metric_sample(&metrics, "glue_bcrypt_batch_size_count");
    if glue::password::Kernel::Batch.lanes() > 1 {
        assert!(rounds < 24.0, "no batch formed\n{metrics}");
    } else {
        assert_eq!(rounds, 24.0);
    }
}

#[tokio::test]
async fn the_scalar_switch_verifies_one_login_at_a_time() {
    for kernel in [
        glue::password::Kernel::Scalar,
        glue::password::Kernel::Reference,
    ] {
        let (statuses, metrics) = storm(kernel, Cheap::Nowhere).await;
        assert_answers(&statuses);
        assert_eq!(metric_sample(&metrics, "glue_bcrypt_batch_size_sum"), 24.0);
        assert_eq!(
            metric_sample(&metrics, "glue_bcrypt_batch_size_count"),
            24.0
        );
    }
}

/// A hash cheaper than the target needs dummies of other costs, which lanes cannot share: once
/// one is met, every login is verified alone (so a batch's duration never depends on whose
/// hash it holds).
#[tokio::test]
async fn batching_stops_once_a_cheaper_hash_is_met() {
    // The same storm as in `batched_logins_get_the_answers_lone_ones_would`, where batches form.
    let (statuses, metrics) = storm(glue::password::Kernel::Batch, Cheap::LoggedInFirst).await;
    assert_answers(&statuses);
    assert_eq!(metric_sample(&metrics, "glue_bcrypt_batch_size_sum"), 25.0);
    assert_eq!(
        metric_sample(&metrics, "glue_bcrypt_batch_size_count"),
        25.0
    );
    let (statuses, metrics) = storm(glue::password::Kernel::Batch, Cheap::AtStart).await;
    assert_answers(&statuses);
    assert_eq!(metric_sample(&metrics, "glue_bcrypt_batch_size_sum"), 24.0);
    assert_eq!(
        metric_sample(&metrics, "glue_bcrypt_batch_size_count"),
        24.0
    );
}
