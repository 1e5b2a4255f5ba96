//! RFC 8414 metadata: a client that knows only the service's URL verifies a token with it.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_token_verifies_with_the_discovery_document_alone() {
    // The issuer defaults to the public base URL.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.glue.base_url = "https://api.shop.example/".into();
        s.oauth.issuer = String::new();
    });
    let public = "https://api.shop.example";
    let metadata: Value = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], public);
    assert_eq!(
        metadata["token_endpoint"],
        format!("{public}/access-tokens")
    );
    // What the client does: fetch the JWK Set the document names (through the test's own
    // address instead of the public one), then verify with the issuer it names.
    let jwks_uri = metadata["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{public}/.well-known/jwks.json"));
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .client
        .get(jwks_uri.replace(public, &app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (access, _) = token_pair(app.demo_agent_tokens().await);
    let kid = jsonwebtoken::decode_header(&access).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["frontend"]);
    validation.set_issuer(&[metadata["issuer"].as_str().unwrap()]);
    let claims = jsonwebtoken::decode::<Value>(&access, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], public);
}
