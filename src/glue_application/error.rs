//! The one error envelope (Spryker's `RestErrorMessageTransfer` + `RestErrorCollectionTransfer`).
//!
//! Error policy: only `GlueError` becomes an HTTP error response. A client error is a list of
//! `RestErrorMessage { status, code, detail }` with texts chosen by the resource module (its
//! `config.rs` constants). Everything else is `Internal` (500) or `Unavailable` (503 with
//! `Retry-After`): the cause goes to the log with its whole chain, the client gets a fixed,
//! generic detail. No status mapping defaults to 400 and no internal text reaches a response.

use std::error::Error as StdError;
use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The media type of every JSON:API answer.
pub const JSON_API_CONTENT_TYPE: &str = "application/vnd.api+json";

pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_S: u32 = 5;

pub const DETAIL_INTERNAL: &str = "Internal server error.";
pub const DETAIL_UNAVAILABLE: &str = "Service temporarily unavailable. Please try again later.";
pub const DETAIL_NOT_FOUND: &str = "Not Found";
pub const DETAIL_METHOD_NOT_ALLOWED: &str = "Method not allowed.";
pub const DETAIL_POST_DATA_INVALID: &str = "Post data is invalid.";
pub const DETAIL_INVALID_TYPE: &str = "Invalid type.";
pub const DETAIL_UNSUPPORTED_MEDIA_TYPE: &str = "Unsupported media type.";
pub const DETAIL_PAYLOAD_TOO_LARGE: &str = "Request body is too large.";
pub const DETAIL_REQUEST_TIMEOUT: &str = "The request body did not arrive in time.";

/// One entry of `errors`: `code` is omitted when absent, `status` is a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestErrorMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub status: u16,
    pub detail: String,
}

impl RestErrorMessage {
    pub fn new(status: StatusCode, code: Option<&'static str>, detail: impl Into<String>) -> Self {
        RestErrorMessage {
            code,
            status: status.as_u16(),
            detail: detail.into(),
        }
    }
}

pub enum GlueError {
    /// Errors the client caused, answered as they are.
    Rest(Vec<RestErrorMessage>),
    /// 405 with `Allow`: the resource exists, the method does not.
    MethodNotAllowed { allow: &'static str },
    /// 429 with `Retry-After`: the client must wait this many seconds.
    Throttled {
        error: RestErrorMessage,
        retry_after_s: u64,
    },
    /// The database is unreachable, busy or the pool is exhausted: 503 + Retry-After.
    Unavailable(BoxError),
    /// A bug or an unexpected failure: 500.
    Internal(BoxError),
}

impl GlueError {
    pub fn one(status: StatusCode, code: Option<&'static str>, detail: impl Into<String>) -> Self {
        GlueError::Rest(vec![RestErrorMessage::new(status, code, detail)])
    }
    pub fn not_found() -> Self {
        Self::one(StatusCode::NOT_FOUND, None, DETAIL_NOT_FOUND)
    }
    pub fn post_data_invalid() -> Self {
        Self::one(StatusCode::BAD_REQUEST, None, DETAIL_POST_DATA_INVALID)
    }
    pub fn invalid_type() -> Self {
        Self::one(StatusCode::BAD_REQUEST, None, DETAIL_INVALID_TYPE)
    }
    pub fn unsupported_media_type() -> Self {
        Self::one(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            DETAIL_UNSUPPORTED_MEDIA_TYPE,
        )
    }
    /// 408: the body did not arrive in time.
    pub fn request_timeout() -> Self {
        Self::one(StatusCode::REQUEST_TIMEOUT, None, DETAIL_REQUEST_TIMEOUT)
    }
    pub fn payload_too_large() -> Self {
        Self::one(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            DETAIL_PAYLOAD_TOO_LARGE,
        )
    }
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        GlueError::Internal(cause.into())
    }
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        GlueError::Unavailable(cause.into())
    }
}

impl fmt::Debug for GlueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlueError::Rest(errors) => f.debug_tuple("Rest").field(errors).finish(),
            GlueError::Throttled { error, .. } => f.debug_tuple("Throttled").field(error).finish(),
            GlueError::MethodNotAllowed { allow } => write!(f, "MethodNotAllowed({allow})"),
            GlueError::Unavailable(e) => write!(f, "Unavailable({})", chain(e.as_ref())),
            GlueError::Internal(e) => write!(f, "Internal({})", chain(e.as_ref())),
        }
    }
}

impl fmt::Display for GlueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlueError::Rest(errors) => {
                let details: Vec<&str> = errors.iter().map(|e| e.detail.as_str()).collect();
                write!(f, "{}", details.join("; "))
            }
            GlueError::Throttled { error, .. } => f.write_str(&error.detail),
            GlueError::MethodNotAllowed { .. } => f.write_str(DETAIL_METHOD_NOT_ALLOWED),
            GlueError::Unavailable(_) => f.write_str(DETAIL_UNAVAILABLE),
            GlueError::Internal(_) => f.write_str(DETAIL_INTERNAL),
        }
    }
}

/// "outer: inner: innermost", for the log and the command line (the one error-chain printer):
/// a cause whose text the message already ends with is not repeated.
pub fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    errors: &'a [RestErrorMessage],
}

/// Builds the `{"errors":[…]}` response; the HTTP status is the status of the last error.
pub fn error_response(errors: &[RestErrorMessage]) -> HttpResponse {
    let status = errors
        .last()
        .and_then(|e| StatusCode::from_u16(e.status).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&ErrorEnvelope { errors }).unwrap_or_default();
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, JSON_API_CONTENT_TYPE));
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"Access to shop API\"",
        ));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, RETRY_AFTER_S.to_string()));
    }
    response.body(body)
}

impl ResponseError for GlueError {
    fn status_code(&self) -> StatusCode {
        match self {
            GlueError::Rest(errors) => errors
                .last()
                .and_then(|e| StatusCode::from_u16(e.status).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            GlueError::Throttled { error, .. } => {
                StatusCode::from_u16(error.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS)
            }
            GlueError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GlueError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GlueError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            GlueError::Rest(errors) => error_response(errors),
            GlueError::Throttled {
                error,
                retry_after_s,
            } => {
                let mut response = error_response(std::slice::from_ref(error));
                if let Ok(value) = header::HeaderValue::from_str(&retry_after_s.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            GlueError::MethodNotAllowed { allow } => {
                let mut response = error_response(&[RestErrorMessage::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    DETAIL_METHOD_NOT_ALLOWED,
                )]);
                response
                    .headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static(allow));
                response
            }
            GlueError::Unavailable(cause) => {
                log::warn!(target: "glue::error", "503: {}", chain(cause.as_ref()));
                error_response(&[RestErrorMessage::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    DETAIL_UNAVAILABLE,
                )])
            }
            GlueError::Internal(cause) => {
                log::error!(target: "glue::error", "500: {}", chain(cause.as_ref()));
                error_response(&[RestErrorMessage::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    DETAIL_INTERNAL,
                )])
            }
        }
    }
}

impl From<crate::db::DbError> for GlueError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Unavailable(_) | crate::db::DbError::TimedOut(_) => {
                GlueError::Unavailable(Box::new(e))
            }
            other => GlueError::Internal(Box::new(other)),
        }
    }
}
