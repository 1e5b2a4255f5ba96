//! The `RestRequest` envelope extractor (Spryker's `RequestFormatter` for POST bodies).
//!
//! Reads the body under `server.max_body_bytes` (413 beyond), parses
//! `{"data":{"type":…,"attributes":{…}}}` and answers 400 `Post data is invalid.` for anything
//! else. The route's own type is checked by `attributes_of`, which answers 400 `Invalid type.`.
//! Attribute values stay JSON values: each controller parses them into its own newtypes, so a
//! wrong-typed field can get the resource's own error (e.g. 4101) instead of a generic one.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use serde_json::{Map, Value};

use super::error::GlueError;

#[derive(Debug)]
pub struct RestRequest {
    resource_type: Value,
    attributes: Map<String, Value>,
}

impl RestRequest {
    /// Parses a POST body into the envelope.
    pub fn parse(body: &[u8]) -> Result<Self, GlueError> {
        let document: Value =
            serde_json::from_slice(body).map_err(|_| GlueError::post_data_invalid())?;
        let Value::Object(mut document) = document else {
            return Err(GlueError::post_data_invalid());
        };
        let Some(Value::Object(mut data)) = document.remove("data") else {
            return Err(GlueError::post_data_invalid());
        };
        let Some(resource_type) = data.remove("type") else {
            return Err(GlueError::post_data_invalid());
        };
        let Some(Value::Object(attributes)) = data.remove("attributes") else {
            return Err(GlueError::post_data_invalid());
        };
        Ok(RestRequest {
            resource_type,
            attributes,
        })
    }

    /// The attributes, if `data.type` is exactly `expected_type`.
    pub fn attributes_of(self, expected_type: &str) -> Result<Attributes, GlueError> {
        match &self.resource_type {
            Value::String(t) if t == expected_type => Ok(Attributes(self.attributes)),
            _ => Err(GlueError::invalid_type()),
        }
    }
}

/// `data.attributes` of a request whose type was checked.
#[derive(Debug)]
pub struct Attributes(pub Map<String, Value>);

impl Attributes {
    /// The attribute if it is a JSON string; `None` when missing or of another type.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// The attribute if it is a non-blank JSON string.
    pub fn non_blank_string(&self, key: &str) -> Option<&str> {
        self.string(key).filter(|s| !s.trim().is_empty())
    }
}

impl FromRequest for RestRequest {
    type Error = GlueError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, GlueError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Bytes::from_request(req, payload);
        let deadline = req
            .app_data::<actix_web::web::Data<super::GlueCore>>()
            .map_or(std::time::Duration::from_secs(10), |core| core.body_timeout);
        Box::pin(async move {
            // A body trickled in (or announced and never sent) holds a connection and a worker's
            // attention: it gets a deadline, as slow headers do.
            let body = actix_web::rt::time::timeout(deadline, body)
                .await
                .map_err(|_| GlueError::request_timeout())?;
            let bytes = body.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => GlueError::payload_too_large(),
                _ => match e.as_response_error().status_code().as_u16() {
                    413 => GlueError::payload_too_large(),
                    _ => GlueError::post_data_invalid(),
                },
            })?;
            RestRequest::parse(&bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    fn client_error(error: &GlueError) -> u16 {
        assert!(matches!(error, GlueError::Rest(_)), "{error:?}");
        error.status_code().as_u16()
    }

    /// JSON documents, nested a few levels deep, often close to a valid envelope.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
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
        fn any_bytes_are_an_envelope_or_a_400(body in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Err(error) = RestRequest::parse(&body) {
                prop_assert_eq!(client_error(&error), 400);
            }
        }

        #[test]
        fn any_document_is_an_envelope_or_a_400(document in json_value()) {
            let bytes = serde_json::to_vec(&document).unwrap();
            match RestRequest::parse(&bytes) {
                Ok(request) => {
                    if let Err(error) = request.attributes_of("agent-access-tokens") {
                        prop_assert_eq!(client_error(&error), 400);
                    }
                }
                Err(error) => prop_assert_eq!(client_error(&error), 400),
            }
        }

        /// Well-formed envelopes: the attributes come back exactly when the type matches.
        #[test]
        fn a_well_formed_envelope_yields_its_attributes(
            resource_type in prop_oneof![Just("agent-access-tokens".to_string()), "[a-z-]{0,20}"],
            attributes in prop::collection::btree_map("[a-zA-Z]{1,10}", ".{0,20}", 0..5),
        ) {
            let document = json!({"data": {"type": resource_type, "attributes": attributes}});
            let request = RestRequest::parse(document.to_string().as_bytes()).unwrap();
            match request.attributes_of("agent-access-tokens") {
                Ok(parsed) => {
                    prop_assert_eq!(resource_type.as_str(), "agent-access-tokens");
                    for (key, value) in &attributes {
                        prop_assert_eq!(parsed.string(key), Some(value.as_str()));
                    }
                }
                Err(error) => {
                    prop_assert_ne!(resource_type.as_str(), "agent-access-tokens");
                    prop_assert_eq!(client_error(&error), 400);
                }
            }
        }
    }
}
