//! Outgoing mail over SMTP (`[mail]`): the agents' email codes. `mail.smtp_url` names the relay
//! and is a secret like `database.url`:
//!
//! - `smtp://host:25` plain (a relay on the same host or network);
//! - `smtp://user:password@host:587?tls=required` STARTTLS, refused if the server does not offer
//!   it (`?tls=opportunistic` upgrades when offered);
//! - `smtps://user:password@host:465` TLS from the first byte.
//!
//! Certificates are checked against webpki's roots, plus `mail.tls_ca_path` (a PEM file) for a
//! relay with a certificate of the company's own CA. Credentials go only over TLS: a URL with a
//! user or password must be `smtps://` or ask for `tls=required` (opportunistic STARTTLS can be
//! stripped by anyone on the path, and the password would follow in clear).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::settings::MailSettings;

/// Why a mail did not go out (never with its content).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("no mail relay is configured (mail.smtp_url)")]
    NotConfigured,
    #[error("the recipient address is not one SMTP takes")]
    Recipient,
    #[error("no mail can go out to this agent (mail.smtp_url is not set, or its username is no mail address)")]
    Undeliverable,
    #[error("the mail relay did not take the mail: {0}")]
    Relay(String),
}

/// The relay and the sender, checked at start-up.
pub struct Mailer {
    transport: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    /// The whole send (connect, TLS, AUTH, the mail) must finish within it: a relay that stalls
    /// mid-dialogue must not hold a login for minutes.
    deadline: Duration,
}

impl Mailer {
    /// As `[mail]` asks; no relay when `mail.smtp_url` is empty.
    pub fn for_settings(settings: &MailSettings) -> Result<Self, String> {
        let url = settings.smtp_url.expose().trim();
        let deadline = Duration::from_millis(settings.timeout_ms);
        if url.is_empty() {
            return Ok(Mailer {
                transport: None,
                deadline,
            });
        }
        let from: Mailbox = settings
            .from
            .trim()
            .parse()
            .map_err(|_| format!("mail.from {:?} is not a mail address", settings.from))?;
        // Not echoed: the URL may hold the relay's password.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| {
            "mail.smtp_url is not an smtp:// or smtps:// URL (smtp://user:password@host:587?tls=required)".to_string()
        })?;
        builder = builder.timeout(Some(deadline));
        let parsed = url::Url::parse(url).map_err(|_| "mail.smtp_url is not a URL")?;
        let credentials = !parsed.username().is_empty() || parsed.password().is_some();
        let encrypted =
            parsed.scheme() == "smtps" || query_tls(&parsed).as_deref() == Some("required");
        if credentials && !encrypted {
            return Err("mail.smtp_url carries credentials but does not require TLS: use smtps://, or add ?tls=required (STARTTLS)".into());
        }
        let ca_path = settings.tls_ca_path.trim();
        if !ca_path.is_empty() {
            let host = parsed.host_str().unwrap_or_default().to_string();
            let pem = std::fs::read(ca_path)
                .map_err(|e| format!("mail.tls_ca_path {ca_path:?} cannot be read: {e}"))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|_| format!("mail.tls_ca_path {ca_path:?} is not a PEM certificate"))?;
            let parameters = TlsParameters::builder(host)
                .add_root_certificate(certificate)
                .build_rustls()
                .map_err(|e| format!("mail.tls_ca_path {ca_path:?}: {e}"))?;
            let tls = match (parsed.scheme(), query_tls(&parsed).as_deref()) {
                ("smtps", _) => Tls::Wrapper(parameters),
                (_, Some("required")) => Tls::Required(parameters),
                (_, Some("opportunistic")) => Tls::Opportunistic(parameters),
                _ => {
                    return Err(
                        "mail.tls_ca_path is set, but mail.smtp_url asks for no TLS (smtps://, or ?tls=required)".into(),
                    )
                }
            };
            builder = builder.tls(tls);
        }
        Ok(Mailer {
            transport: Some((builder.build(), from)),
            deadline,
        })
    }

    /// A mailer that sends nothing (tests of other parts, tools).
    pub fn none() -> Self {
        Mailer {
            transport: None,
            deadline: Duration::from_secs(10),
        }
    }

    pub fn is_configured(&self) -> bool {
        self.transport.is_some()
    }

    /// Whether a mail to `to` can go out at all (a relay, and an address SMTP takes).
    pub fn can_send_to(&self, to: &str) -> bool {
        self.is_configured() && to.parse::<Mailbox>().is_ok()
    }

    /// Sends a plain-text mail.
    pub async fn send(&self, to: &str, subject: &str, text: String) -> Result<(), MailError> {
        let Some((transport, from)) = &self.transport else {
            return Err(MailError::NotConfigured);
        };
        let to: Mailbox = to.parse().map_err(|_| MailError::Recipient)?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|_| MailError::Recipient)?;
        match tokio::time::timeout(self.deadline, transport.send(message)).await {
            Ok(sent) => sent
                .map(|_| ())
                .map_err(|e| MailError::Relay(e.to_string())),
            Err(_) => Err(MailError::Relay(format!(
                "no answer within mail.timeout_ms ({} ms)",
                self.deadline.as_millis()
            ))),
        }
    }
}

fn query_tls(url: &url::Url) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned())
}
