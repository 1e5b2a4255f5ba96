//! The OpenAPI document is true: real responses of every operation, successes and errors,
//! validate against the schemas and headers it declares.

use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

backends!(every_response_matches_the_openapi_document);

/// What client generators need (CI also runs redocly and generates Python and TypeScript clients
/// from the document): every operation declares its security (`[]` when public) and a unique
/// operationId; no `allOf` (openapi-python-client cannot merge an enum with a const); every
/// JSON:API success body is a named document whose resource `type` is a string const; a license.
#[test]
fn the_document_suits_client_generators() {
    let document: Value = serde_json::from_str(glue::glue_application::openapi::OPENAPI_DOCUMENT)
        .expect("the embedded document is JSON");
    assert!(document["info"]["license"]["name"].is_string());
    assert!(
        !glue::glue_application::openapi::OPENAPI_DOCUMENT.contains("allOf"),
        "allOf is back in the document"
    );
    let schemas = &document["components"]["schemas"];
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(operation["security"].is_array(), "{name}: no security");
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(operation_ids.insert(id.to_string()), "{name}: {id} twice");
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('2') {
                    continue;
                }
                // JSON:API answers; the operational ones (JWKS, metadata) are plain JSON.
                if let Some(media) = response["content"]["application/vnd.api+json"].as_object() {
                    let reference = media["schema"]["$ref"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name} {status}: an inline schema"));
                    let schema_name = reference.trim_start_matches("#/components/schemas/");
                    let data = &schemas[schema_name]["properties"]["data"];
                    let resource = data["$ref"]
                        .as_str()
                        .or(data["items"]["$ref"].as_str())
                        .map(|r| &schemas[r.trim_start_matches("#/components/schemas/")]);
                    if let Some(resource) = resource {
                        let kind = &resource["properties"]["type"];
                        assert_eq!(kind["type"], "string", "{name} {status}");
                        assert!(
                            kind["const"].is_string(),
                            "{name} {status}: type not a const"
                        );
                    }
                }
            }
        }
    }
}

struct Spec {
    document: Value,
}

impl Spec {
    async fn load(app: &TestApp) -> Spec {
        let response = app
            .client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let document: Value = response.json().await.unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        Spec { document }
    }

    /// Checks status, declared headers and body of `response` for `method path_template`.
    async fn check(
        &self,
        method: &str,
        path_template: &str,
        response: reqwest::Response,
    ) -> (u16, Value) {
        let status = response.status().as_u16();
        let operation = &self.document["paths"][path_template][method];
        assert!(
            operation.is_object(),
            "{method} {path_template} is not documented"
        );
        let declared = &operation["responses"][status.to_string()];
        assert!(
            declared.is_object(),
            "{method} {path_template}: status {status} is not documented"
        );
        if let Some(headers) = declared["headers"].as_object() {
            for (name, header) in headers {
                let value = response
                    .headers()
                    .get(name.as_str())
                    .map(|v| v.to_str().unwrap().to_string());
                if header["required"] == json!(true) {
                    assert!(
                        value.is_some(),
                        "{method} {path_template} {status}: header {name} missing"
                    );
                }
                if let (Some(value), Some(expected)) = (&value, header["schema"]["const"].as_str())
                {
                    assert_eq!(
                        value, expected,
                        "{method} {path_template} {status}: header {name}"
                    );
                }
            }
        }
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.bytes().await.unwrap();
        let Some(content) = declared["content"].as_object() else {
            assert!(
                bytes.is_empty(),
                "{method} {path_template} {status}: undeclared body"
            );
            return (status, Value::Null);
        };
        let content_type = content_type.expect("content type");
        let schema = &content[&content_type]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path_template} {status}: {content_type} not declared"
        );
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.document["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::validator_for(&root).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path_template} {status}: {errors:?}\n{body}"
        );
        (status, body)
    }
}

async fn every_response_matches_the_openapi_document(backend: Backend) {
    let app = spawn_app(backend);
    let spec = Spec::load(&app).await;
    let post = |path: &str, body: Value| {
        app.client
            .post(app.url(path))
            .header("Content-Type", JSON_API)
            .body(body.to_string())
    };
    let login = |password: &str| agent_login_body(DEMO_USERNAME, password);

    let (_, body) = spec
        .check(
            "post",
            "/agent-access-tokens",
            post("/agent-access-tokens", login(DEMO_PASSWORD))
                .send()
                .await
                .unwrap(),
        )
        .await;
    let (agent, refresh) = token_pair(body);
    for (request, expected) in [
        (post("/agent-access-tokens", login("wrong")), 401),
        (post("/agent-access-tokens", json!({"data":{}})), 400),
        (
            post(
                "/agent-access-tokens",
                json!({"data":{"type":"x","attributes":{}}}),
            ),
            400,
        ),
        (
            app.client
                .post(app.url("/agent-access-tokens"))
                .header("Content-Type", "text/plain")
                .body(login("x").to_string()),
            415,
        ),
        (
            post("/agent-access-tokens", json!({"pad":"x".repeat(70_000)})),
            413,
        ),
    ] {
        let (status, _) = spec
            .check(
                "post",
                "/agent-access-tokens",
                request.send().await.unwrap(),
            )
            .await;
        assert_eq!(status, expected);
    }

    let search = |query: &str, token: Option<&str>| {
        let mut request = app
            .client
            .get(app.url(&format!("/agent-customer-search?{query}")));
        if let Some(token) = token {
            request = request.header("X-Agent-Authorization", format!("Bearer {token}"));
        }
        request
    };
    for (request, expected) in [
        (search("q=m", Some(&agent)), 200),
        (search("q=nobody", Some(&agent)), 200),
        (search("q=&page[offset]=2&page[limit]=2", Some(&agent)), 200),
        (search("page[limit]=0", Some(&agent)), 400),
        (search("q=m", None), 401),
        (search("q=m", Some("garbage")), 401),
    ] {
        let (status, _) = spec
            .check(
                "get",
                "/agent-customer-search",
                request.send().await.unwrap(),
            )
            .await;
        assert_eq!(status, expected);
    }

    let impersonate = |reference: &str| {
        post(
            "/agent-customer-impersonation-access-tokens",
            json!({"data":{"type":"agent-customer-impersonation-access-tokens","attributes":{"customerReference":reference}}}),
        )
        .header("X-Agent-Authorization", format!("Bearer {agent}"))
    };
    for (reference, expected) in [("DE--2", 201), ("DE--404", 401)] {
        let (status, _) = spec
            .check(
                "post",
                "/agent-customer-impersonation-access-tokens",
                impersonate(reference).send().await.unwrap(),
            )
            .await;
        assert_eq!(status, expected);
    }

    app.insert_customer(
        "C-OA",
        "openapi@example.com",
        "Open",
        "Api",
        Some("open-pass"),
    );
    let customer_login = |username: &str, password: &str| {
        post("/access-tokens", customer_login_body(username, password))
    };
    for (request, expected) in [
        (customer_login("openapi@example.com", "open-pass"), 201),
        (customer_login("openapi@example.com", "wrong"), 401),
        (customer_login("", ""), 422),
    ] {
        let (status, _) = spec
            .check("post", "/access-tokens", request.send().await.unwrap())
            .await;
        assert_eq!(status, expected);
    }

    let refresh_request = |token: &str| {
        post(
            "/refresh-tokens",
            json!({"data":{"type":"refresh-tokens","attributes":{"refreshToken":token}}}),
        )
    };
    for (request, expected) in [
        (refresh_request(&refresh), 201),
        (refresh_request("nope"), 401),
        (refresh_request(""), 422),
    ] {
        let (status, _) = spec
            .check("post", "/refresh-tokens", request.send().await.unwrap())
            .await;
        assert_eq!(status, expected);
    }

    for (template, request, expected) in [
        (
            "/refresh-tokens/mine",
            app.client
                .delete(app.url("/refresh-tokens/mine"))
                .bearer_auth(&agent),
            204,
        ),
        (
            "/refresh-tokens/mine",
            app.client.delete(app.url("/refresh-tokens/mine")),
            403,
        ),
        (
            "/refresh-tokens/{refreshToken}",
            app.client.delete(app.url("/refresh-tokens/abc")),
            403,
        ),
        (
            "/refresh-tokens/{refreshToken}",
            app.client
                .delete(app.url("/refresh-tokens/abc"))
                .bearer_auth("garbage"),
            401,
        ),
    ] {
        let (status, _) = spec
            .check("delete", template, request.send().await.unwrap())
            .await;
        assert_eq!(status, expected, "DELETE {template}");
    }

    for path in [
        "/.well-known/jwks.json",
        "/openapi.json",
        "/healthz",
        "/readyz",
        "/.well-known/oauth-authorization-server",
    ] {
        let (status, _) = spec
            .check(
                "get",
                path,
                app.client.get(app.url(path)).send().await.unwrap(),
            )
            .await;
        assert_eq!(status, 200);
    }
}
