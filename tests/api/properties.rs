//! Randomized requests against the running service: never a 5xx, always JSON:API. (The parsers'
//! own property tests live beside them, in `src/`.)

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::helpers::*;

/// Random requests against a running application: never a 5xx, always JSON:API.
#[test]
fn the_running_service_answers_any_request_with_a_json_api_document() {
    let app = spawn_app(Backend::Sqlite);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let paths = [
        "/agent-access-tokens",
        "/access-tokens",
        "/refresh-tokens",
        "/refresh-tokens/mine",
        "/refresh-tokens/abc",
        "/agent-customer-search",
        "/agent-customer-impersonation-access-tokens",
        "/nope",
    ];
    let methods = ["GET", "POST", "DELETE", "PATCH", "PUT"];
    let content_types = [
        JSON_API,
        "application/json",
        "text/plain",
        "",
        "application/json; charset=utf-8",
    ];
    let strategy = (
        prop::sample::select(paths.to_vec()),
        prop::sample::select(methods.to_vec()),
        prop::sample::select(content_types.to_vec()),
        prop::collection::vec(any::<u8>(), 0..256),
        prop::option::of("[ -~]{0,80}"),
        prop::option::of("[ -~]{0,80}"),
        "[a-z\\[\\]=&%0-9]{0,30}",
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    runner
        .run(
            &strategy,
            |(path, method, content_type, body, authorization, agent_authorization, query)| {
                let response = runtime.block_on(async {
                    let mut request = app
                        .client
                        .request(method.parse().unwrap(), app.url(&format!("{path}?{query}")))
                        .header("Content-Type", content_type)
                        .body(body.clone());
                    if let Some(value) = &authorization {
                        request = request.header("Authorization", value.as_str());
                    }
                    if let Some(value) = &agent_authorization {
                        request = request.header("X-Agent-Authorization", value.as_str());
                    }
                    request.send().await.unwrap()
                });
                let status = response.status().as_u16();
                prop_assert!(status < 500, "{method} {path}: {status}");
                if status == 204 {
                    return Ok(());
                }
                prop_assert_eq!(
                    response.headers()["content-type"].to_str().unwrap(),
                    JSON_API
                );
                let document: Value = runtime.block_on(response.json()).unwrap();
                prop_assert!(document.get("errors").is_some() || document.get("data").is_some());
                Ok(())
            },
        )
        .unwrap();

    // The extremes: a huge body, deep nesting, NUL bytes, invalid UTF-8, a very long header.
    runtime.block_on(async {
        let post = |body: Vec<u8>| {
            app.client
                .post(app.url("/agent-access-tokens"))
                .header("Content-Type", JSON_API)
                .body(body)
                .send()
        };
        assert_eq!(post(vec![b'{'; 4 * 1024 * 1024]).await.unwrap().status(), 413);
        let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert_eq!(post(deep.into_bytes()).await.unwrap().status(), 400);
        let nul = json!({"data":{"type":"agent-access-tokens","attributes":{"username":"a\u{0}b","password":"\u{0}"}}});
        assert_eq!(post(nul.to_string().into_bytes()).await.unwrap().status(), 401);
        assert_eq!(post(vec![0xc3, 0x28, 0xa0, 0xa1]).await.unwrap().status(), 400);
        let response = app
            .client
            .get(app.url("/agent-customer-search"))
            .header("Authorization", format!("Bearer {}", "a".repeat(60_000)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["content-type"], JSON_API);
    });
}
