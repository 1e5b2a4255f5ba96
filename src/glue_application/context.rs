//! Who a log line is about: the request id and the client address of the request being served,
//! kept for the request's whole task (`X-Request-Id` taken from the client when it is a sane
//! token, generated otherwise, and echoed in the answer), and the log format that prints them
//! on every line — text, or one JSON object per line with `GLUE_LOG_FORMAT=json`.

use std::future::Future;
use std::io::Write;

use actix_web::http::header::HeaderValue;
use actix_web::HttpRequest;

use super::client_ip::ClientIp;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request being served.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: ClientIp,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    /// The client's `X-Request-Id` if it is 1–64 characters of `A-Z a-z 0-9 - _ . :`, else a
    /// new random one.
    pub fn of(req: &HttpRequest, client_ip: ClientIp) -> Self {
        let offered = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| {
                (1..=64).contains(&id.len())
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
            });
        let request_id = offered.map_or_else(
            || {
                use rand::RngCore;
                let mut bytes = [0u8; 12];
                rand::rng().fill_bytes(&mut bytes);
                hex::encode(bytes)
            },
            str::to_string,
        );
        RequestContext {
            request_id,
            client_ip,
        }
    }

    pub fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.request_id).ok()
    }
}

/// Runs `work` with `context` as the current request.
pub async fn scope<F: Future>(context: RequestContext, work: F) -> F::Output {
    CONTEXT.scope(context, work).await
}

/// The request the current task serves, if any.
pub fn current() -> Option<RequestContext> {
    CONTEXT.try_with(Clone::clone).ok()
}

/// env_logger's format: `time LEVEL target: message request_id=… client_ip=…`, or with `json`
/// one object per line with those fields.
pub fn write_log_line(
    out: &mut env_logger::fmt::Formatter,
    record: &log::Record<'_>,
    json: bool,
) -> std::io::Result<()> {
    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let context = current();
    if json {
        let mut line = serde_json::json!({
            "ts": time.to_string(),
            "level": record.level().as_str(),
            "target": record.target(),
            "msg": record.args().to_string(),
        });
        if let Some(context) = context {
            line["request_id"] = context.request_id.into();
            line["client_ip"] = context.client_ip.to_string().into();
        }
        return writeln!(out, "{line}");
    }
    write!(
        out,
        "{time} {:<5} {}: {}",
        record.level(),
        record.target(),
        record.args()
    )?;
    if let Some(context) = context {
        write!(
            out,
            " request_id={} client_ip={}",
            context.request_id, context.client_ip
        )?;
    }
    writeln!(out)
}
