//! Property tests of the request path: arbitrary bytes, strings and documents never panic the
//! parsers and never reach the client as anything but a JSON:API error below 500.

use actix_web::ResponseError;
use glue::agent_auth_rest_api::customer_search::SearchParams;
use glue::glue_application::auth::parse_bearer;
use glue::glue_application::error::GlueError;
use glue::glue_application::request::RestRequest;
use glue::oauth::jwt::{self, VerifyRules};
use glue::oauth::keys::KeySet;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::helpers::*;

fn client_error(error: &GlueError) -> u16 {
    let status = error.status_code().as_u16();
    assert!(matches!(error, GlueError::Rest(_)), "{error:?}");
    assert!((400..500).contains(&status), "{status}");
    status
}

/// Arbitrary JSON documents, nested a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        Just(json!("agent-access-tokens")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("data".to_string()),
                    Just("type".to_string()),
                    Just("attributes".to_string()),
                    ".{0,8}".prop_map(String::from)
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_envelope_parser_takes_any_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(error) = RestRequest::parse(&body) {
            prop_assert_eq!(client_error(&error), 400);
        }
    }

    #[test]
    fn the_envelope_parser_takes_any_document(document in json_value()) {
        let bytes = serde_json::to_vec(&document).unwrap();
        match RestRequest::parse(&bytes) {
            Ok(request) => {
                // Well-formed envelope: the type check is the only other outcome.
                if let Err(error) = request.attributes_of("agent-access-tokens") {
                    prop_assert_eq!(client_error(&error), 400);
                }
            }
            Err(error) => prop_assert_eq!(client_error(&error), 400),
        }
    }

    #[test]
    fn the_bearer_parser_takes_any_header(value in "\\PC{0,64}") {
        if let Some(token) = parse_bearer(&value) {
            prop_assert!(!token.is_empty());
            prop_assert!(!token.chars().any(char::is_whitespace));
        }
    }

    #[test]
    fn pagination_parsing_takes_any_query(query in "[a-z\\[\\]=&%0-9.+-]{0,48}", max in 1i64..200) {
        match SearchParams::parse(&query, max) {
            Ok(params) => {
                prop_assert!(params.limit >= 1 && params.limit <= max);
                prop_assert!(params.offset >= 0);
                prop_assert_eq!(params.offset % params.limit, 0);
            }
            Err(error) => prop_assert_eq!(client_error(&error), 400),
        }
    }

    #[test]
    fn pagination_parsing_takes_any_numbers(offset in any::<i64>(), limit in any::<i64>()) {
        let query = format!("q=x&page[offset]={offset}&page[limit]={limit}");
        match SearchParams::parse(&query, 100) {
            Ok(params) => {
                prop_assert!(offset >= 0 && limit >= 1);
                prop_assert_eq!(params.limit, limit.min(100));
                prop_assert!(params.offset <= offset && offset - params.offset < params.limit);
            }
            Err(error) => {
                prop_assert!(offset < 0 || limit < 1);
                prop_assert_eq!(client_error(&error), 400);
            }
        }
    }
}

fn key_set() -> &'static KeySet {
    static KEYS: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| KeySet::from_pems(test_private_key().as_bytes(), &[]).unwrap())
}

fn rules() -> VerifyRules<'static> {
    VerifyRules {
        audience: "frontend",
        issuer: BASE_URL,
        leeway_s: 30,
    }
}

fn valid_token() -> String {
    let sub = glue::oauth::jwt::UserIdentifier::agent(1).to_json();
    let scopes = vec!["agent".to_string()];
    jwt::mint(
        key_set(),
        &jwt::AccessTokenRequest {
            audience: "frontend",
            issuer: BASE_URL,
            ttl_s: 600,
            subject: &sub,
            scopes: &scopes,
            actor: None,
        },
        chrono::Utc::now().timestamp(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verification_refuses_arbitrary_strings(token in "\\PC{0,300}") {
        let now = chrono::Utc::now().timestamp() as f64;
        prop_assert!(jwt::verify(key_set(), &token, &rules(), now).is_err());
    }

    #[test]
    fn verification_refuses_every_altered_token(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let token = valid_token();
        let now = chrono::Utc::now().timestamp() as f64;
        prop_assert!(jwt::verify(key_set(), &token, &rules(), now).is_ok());
        let mut bytes = token.into_bytes();
        let i = position.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        // Changing a base64 padding bit can leave the decoded bytes as they were.
        let altered = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(verified) = jwt::verify(key_set(), &altered, &rules(), now) {
            prop_assert_eq!(verified.subject_json, glue::oauth::jwt::UserIdentifier::agent(1).to_json());
            prop_assert!(
                i + 1 == bytes.len() || bytes[i + 1] == b'.',
                "only the last character of a segment (unused base64 bits) may change harmlessly"
            );
        }
    }
}

/// Random requests against a running application: never a 5xx, always JSON:API.
#[test]
fn the_running_service_answers_any_request_with_a_json_api_document() {
    let app = spawn_app(Backend::Sqlite).unwrap();
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
