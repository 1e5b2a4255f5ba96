//! Agents' second factor (Spryker's `spryker/multi-factor-auth`, closed on the API).
//!
//! An agent can impersonate any customer, and Spryker's Glue `POST /agent-access-tokens` checks
//! only the password even when the agent's storefront login asks for a code. glue asks for one:
//! with `oauth.agent_mfa = "if-enrolled"` (the default) an agent with an active method gets tokens
//! only with a valid `X-MFA-Code`; `"required"` refuses agents without one; `"off"` is Spryker's
//! behaviour.
//!
//! The method glue serves is TOTP (RFC 6238, see [`totp`]), kept in glue's own table
//! `glue_agent_totp` — never in `spy_user_multi_factor_auth`, since Zed and Yves have no plugin
//! for it — with the secret encrypted under `oauth.mfa_key_path` ([`cipher`]). A code is
//! accepted once: the last accepted time step is stored, and only a later one passes.
//!
//! The shop's own `email` method ([`email`]) is honoured in Spryker's tables: a login without a
//! code mails one (rate-limited per agent), and a code entered counts as Spryker counts it.

pub mod cipher;
pub mod email;
pub mod totp;

use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::clock::Clock;
use crate::db::schema::glue_agent_totp::{self as t, dsl};
use crate::db::schema::spy_user;
use crate::db::DbConnection;
use crate::settings::{AgentMfaMode, Environment, Settings};
use cipher::{SecretCipher, Undecryptable};

/// Enrolled, no code verified yet.
pub const STATUS_PENDING: i32 = 1;
/// Asked for at every login.
pub const STATUS_ACTIVE: i32 = 2;

/// What the second factor of a login whose password was right came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// No code needed (no active method, or `agent_mfa = "off"`).
    NotNeeded,
    /// A valid code for an active method.
    Passed,
    /// A valid code that made a pending method active: every session the agent opened before
    /// (with its password alone) must end now.
    Activated,
    /// The agent has an active method and sent no code: 403/5900.
    Missing,
    /// A wrong, expired or replayed code: 403/5901, a failed login.
    Invalid,
    /// `agent_mfa = "required"` and the agent has no active method: 403/5902.
    NoMethod,
}

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Undecryptable(#[from] Undecryptable),
    #[error("no key for TOTP secrets: set oauth.mfa_key_path (openssl rand -base64 32 > FILE)")]
    NoKey,
    #[error("the agent's TOTP method is already active: deactivate it first")]
    AlreadyActive,
    #[error("{0}")]
    DevelopmentKey(String),
}

/// An agent's TOTP method, as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnrolledAgent {
    pub id_user: i32,
    pub username: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: &'static str,
    /// UTC, RFC 3339.
    pub enrolled_at: String,
}

/// Where the key of TOTP secrets comes from.
pub enum KeySource {
    /// `oauth.mfa_key_path`, loaded at start-up.
    Loaded(SecretCipher),
    /// Development and tests: `var/keys/mfa.key`, read (or written) when first needed, so a
    /// start that is refused leaves no file behind.
    Development,
    /// Production without `oauth.mfa_key_path`: no TOTP.
    Missing,
}

/// The agents' second factor: the policy, the key and the clock codes are checked against.
pub struct AgentMfa {
    mode: AgentMfaMode,
    key: KeySource,
    development: std::sync::OnceLock<Result<SecretCipher, String>>,
    clock: Arc<dyn Clock>,
    /// Whether the database holds Spryker's MFA tables (found at start-up).
    email_tables: std::sync::atomic::AtomicBool,
    email_interval: chrono::Duration,
    /// `glue_agent_mfa_events_total{method, event}`.
    events: Option<prometheus::IntCounterVec>,
    /// Where the email method's codes go out (asked before a code is stored).
    mailer: Arc<crate::mail::Mailer>,
}

/// What the second factor of a login came to, and the code to mail (the email method, when the
/// login sent none).
#[derive(Debug)]
pub struct Checked {
    pub outcome: SecondFactor,
    pub outgoing: Option<email::OutgoingCode>,
    /// The email method's code cannot go out at all (no relay, or a username that is no mail
    /// address): nothing was stored; answered 503/5910.
    pub undeliverable: bool,
}

impl From<SecondFactor> for Checked {
    fn from(outcome: SecondFactor) -> Self {
        Checked {
            outcome,
            outgoing: None,
            undeliverable: false,
        }
    }
}

/// A second factor's method, as metrics and log lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    Email,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Email => email::TYPE_EMAIL,
        }
    }
}

struct Totp {
    /// As stored: the accepting update is bound to it, so a code checked against a secret
    /// that an enrolment replaced meanwhile activates nothing.
    sealed: Vec<u8>,
    secret: Vec<u8>,
    status: i32,
    last_step: Option<i64>,
}

/// What a code came to outside the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Valid for an active method.
    Accepted,
    /// Valid, and it made a pending method active (the agent's sessions must end).
    Activated,
    /// Wrong, expired, replayed, or no method.
    Rejected,
}

impl AgentMfa {
    pub fn new(mode: AgentMfaMode, key: KeySource, clock: Arc<dyn Clock>) -> Self {
        AgentMfa {
            mode,
            key,
            development: std::sync::OnceLock::new(),
            clock,
            email_tables: std::sync::atomic::AtomicBool::new(false),
            email_interval: chrono::Duration::seconds(60),
            events: None,
            mailer: Arc::new(crate::mail::Mailer::none()),
        }
    }

    /// The relay the email method's codes go out through.
    pub fn with_mailer(mut self, mailer: Arc<crate::mail::Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Counts events into `counter` (`{method, event}`).
    pub fn with_events(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.events = Some(counter);
        self
    }

    /// A new email code goes out at most this often per agent.
    pub fn with_email_interval(mut self, interval_s: u64) -> Self {
        self.email_interval =
            chrono::Duration::seconds(i64::try_from(interval_s).unwrap_or(i64::MAX / 1000));
        self
    }

    /// Whether the shop's email method is served (its tables exist); set at start-up.
    pub fn set_email_tables(&self, present: bool) {
        self.email_tables
            .store(present, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn email_tables(&self) -> bool {
        self.email_tables.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts an event and writes its `security` line (never a code or secret).
    pub fn event(&self, id_user: i32, method: Method, event: &'static str) {
        if let Some(counter) = &self.events {
            counter.with_label_values(&[method.name(), event]).inc();
        }
        log::info!(target: "security", "second factor {event}: agent {id_user}, {}", method.name());
    }

    /// Now in the shop's wall-clock time (Spryker's MFA tables).
    pub fn shop_now(&self) -> NaiveDateTime {
        crate::db::in_shop_zone(self.clock.now())
    }

    /// The agent's active email method, if the shop has the tables.
    pub fn email_method(&self, conn: &mut DbConnection, id_user: i32) -> QueryResult<Option<i32>> {
        if !self.email_tables() {
            return Ok(None);
        }
        email::active_method(conn, id_user)
    }

    /// A fresh email code for the agent's active method (rate-limited; `None`: one is waiting
    /// already, or the agent has no such method).
    pub fn email_code(
        &self,
        conn: &mut DbConnection,
        id_user: i32,
        to: &str,
    ) -> QueryResult<Option<email::OutgoingCode>> {
        let Some(method) = self.email_method(conn, id_user)? else {
            return Ok(None);
        };
        email::issue_code(
            conn,
            method,
            id_user,
            to,
            self.shop_now(),
            self.email_interval,
        )
    }

    /// As the settings ask: the key of TOTP secrets from `oauth.mfa_key_path` (checked now),
    /// development's key file outside production, none in production without the setting.
    pub fn for_settings(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let path = settings.oauth.mfa_key_path.trim();
        let production = settings.environment == Environment::Production;
        let key = if !path.is_empty() {
            KeySource::Loaded(SecretCipher::load(std::path::Path::new(path), production)?)
        } else if production {
            KeySource::Missing
        } else {
            KeySource::Development
        };
        Ok(AgentMfa::new(settings.oauth.agent_mfa, key, clock)
            .with_email_interval(settings.oauth.mfa_email_interval_s))
    }

    fn cipher(&self) -> Result<&SecretCipher, MfaError> {
        match &self.key {
            KeySource::Loaded(cipher) => Ok(cipher),
            KeySource::Missing => Err(MfaError::NoKey),
            KeySource::Development => self
                .development
                .get_or_init(SecretCipher::development)
                .as_ref()
                .map_err(|e| MfaError::DevelopmentKey(e.clone())),
        }
    }

    /// Whether TOTP secrets can be read (start-up refuses enrolled agents without a key).
    pub fn has_key(&self) -> bool {
        !matches!(self.key, KeySource::Missing)
    }

    pub fn mode(&self) -> AgentMfaMode {
        self.mode
    }

    fn now_s(&self) -> i64 {
        self.clock.now().and_utc().timestamp()
    }

    fn find(&self, conn: &mut DbConnection, id_user: i32) -> Result<Option<Totp>, MfaError> {
        let row: Option<(Vec<u8>, i32, Option<i64>)> = t::table
            .filter(dsl::id_user.eq(id_user))
            .select((dsl::secret, dsl::status, dsl::last_step))
            .first(conn)
            .optional()?;
        let Some((sealed, status, last_step)) = row else {
            return Ok(None);
        };
        let cipher = self.cipher()?;
        Ok(Some(Totp {
            secret: cipher.open(id_user, &sealed)?,
            sealed,
            status,
            last_step,
        }))
    }

    /// Accepts `code` once: the step it belongs to must be later than the last accepted one,
    /// and is stored (making a pending method active) in the same statement, which only touches
    /// the row whose secret the code was checked against.
    fn accept(
        &self,
        conn: &mut DbConnection,
        id_user: i32,
        totp: &Totp,
        code: &str,
    ) -> Result<Verification, MfaError> {
        let Some(step) = totp::matching_step(&totp.secret, code, self.now_s()) else {
            return Ok(Verification::Rejected);
        };
        if totp.last_step.is_some_and(|last| last >= step) {
            return Ok(Verification::Rejected);
        }
        let taken = diesel::update(
            t::table
                .filter(dsl::id_user.eq(id_user))
                .filter(dsl::secret.eq(&totp.sealed))
                .filter(dsl::last_step.is_null().or(dsl::last_step.lt(step))),
        )
        .set((
            dsl::last_step.eq(step),
            dsl::status.eq(STATUS_ACTIVE),
            dsl::updated_at.eq(self.clock.now()),
        ))
        .execute(conn)?;
        Ok(match (taken, totp.status) {
            (1, STATUS_ACTIVE) => Verification::Accepted,
            (1, _) => Verification::Activated,
            _ => Verification::Rejected,
        })
    }

    /// The second factor of a login whose password was right. Without a code, an agent with
    /// the email method gets one mailed (see [`Checked::outgoing`]); a code is tried against the
    /// TOTP method first, then against the latest email code (an attempt there).
    pub fn check(
        &self,
        conn: &mut DbConnection,
        id_user: i32,
        username: &str,
        code: Option<&str>,
    ) -> Result<Checked, MfaError> {
        if self.mode == AgentMfaMode::Off {
            return Ok(SecondFactor::NotNeeded.into());
        }
        let totp = self.find(conn, id_user)?;
        let email_method = self.email_method(conn, id_user)?;
        let Some(code) = code else {
            if let Some(method) = email_method {
                if !self.mailer.can_send_to(username) {
                    return Ok(Checked {
                        outcome: SecondFactor::Missing,
                        outgoing: None,
                        undeliverable: true,
                    });
                }
                let outgoing = email::issue_code(
                    conn,
                    method,
                    id_user,
                    username,
                    self.shop_now(),
                    self.email_interval,
                )?;
                return Ok(Checked {
                    outcome: SecondFactor::Missing,
                    outgoing,
                    undeliverable: false,
                });
            }
            return Ok(match totp {
                Some(totp) if totp.status == STATUS_ACTIVE => SecondFactor::Missing,
                _ if self.mode == AgentMfaMode::Required => SecondFactor::NoMethod,
                _ => SecondFactor::NotNeeded,
            }
            .into());
        };
        // An active TOTP method, or a pending one the agent now sends a code for (the first
        // login with a code verifies it) — but not while the shop's email method is active:
        // whoever enrolled that TOTP (a session opened before the email method, a stolen token)
        // must not trade the mailed code for an app of their own.
        let totp = totp.filter(|totp| totp.status == STATUS_ACTIVE || email_method.is_none());
        if let Some(totp) = &totp {
            match self.accept(conn, id_user, totp, code)? {
                Verification::Accepted => {
                    self.event(id_user, Method::Totp, "accepted");
                    return Ok(SecondFactor::Passed.into());
                }
                Verification::Activated => {
                    self.event(id_user, Method::Totp, "accepted");
                    return Ok(SecondFactor::Activated.into());
                }
                Verification::Rejected => {}
            }
        }
        if let Some(method) = email_method {
            if email::enter_code(conn, method, code, self.shop_now())? {
                self.event(id_user, Method::Email, "accepted");
                return Ok(SecondFactor::Passed.into());
            }
            self.event(id_user, Method::Email, "rejected");
            return Ok(SecondFactor::Invalid.into());
        }
        Ok(match totp {
            Some(_) => {
                self.event(id_user, Method::Totp, "rejected");
                SecondFactor::Invalid
            }
            None if self.mode == AgentMfaMode::Required => SecondFactor::NoMethod,
            None => SecondFactor::NotNeeded,
        }
        .into())
    }

    /// Whether a session of this agent that no second factor opened (PHP Glue's agent login
    /// asks for none) must be refused: the agent has an active method, or `agent_mfa =
    /// "required"` (then every agent needs one); never with `"off"`.
    pub fn refuses_without_code(&self, conn: &mut DbConnection, id_user: i32) -> QueryResult<bool> {
        match self.mode {
            AgentMfaMode::Off => Ok(false),
            AgentMfaMode::Required => Ok(true),
            AgentMfaMode::IfEnrolled => {
                let totp: bool = diesel::select(diesel::dsl::exists(
                    t::table
                        .filter(dsl::id_user.eq(id_user))
                        .filter(dsl::status.eq(STATUS_ACTIVE)),
                ))
                .get_result(conn)?;
                Ok(totp || self.email_method(conn, id_user)?.is_some())
            }
        }
    }

    /// Enrols the agent in TOTP (pending until a code verifies it) and returns the
    /// `otpauth://` URI for its authenticator app; a pending enrolment is replaced.
    pub fn enrol_totp(
        &self,
        conn: &mut DbConnection,
        id_user: i32,
        issuer: &str,
        account: &str,
    ) -> Result<String, MfaError> {
        let cipher = self.cipher()?;
        let secret = totp::new_secret();
        let sealed = cipher.seal(id_user, &secret);
        let now = self.clock.now();
        // Under the write lock from the first statement: a pending enrolment is replaced, an
        // active method (made active by a login a moment ago included) never is.
        let enrolled = crate::db::retry_deadlocks(|| {
            crate::db::write_transaction(&mut *conn, |conn| {
                diesel::delete(
                    t::table
                        .filter(dsl::id_user.eq(id_user))
                        .filter(dsl::status.ne(STATUS_ACTIVE)),
                )
                .execute(conn)?;
                let inserted = diesel::insert_into(t::table)
                    .values((
                        dsl::id_user.eq(id_user),
                        dsl::secret.eq(&sealed),
                        dsl::status.eq(STATUS_PENDING),
                        dsl::created_at.eq(now),
                        dsl::updated_at.eq(now),
                    ))
                    .execute(conn);
                match inserted {
                    Ok(_) => Ok(true),
                    // The row left is an active method.
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => Ok(false),
                    Err(e) => Err(e),
                }
            })
        })?;
        if !enrolled {
            return Err(MfaError::AlreadyActive);
        }
        self.event(id_user, Method::Totp, "enrolled");
        Ok(totp::otpauth_uri(issuer, account, &secret))
    }

    /// Verifies a code for the agent's method (activating a pending one).
    pub fn verify_totp(
        &self,
        conn: &mut DbConnection,
        id_user: i32,
        code: &str,
    ) -> Result<Verification, MfaError> {
        let Some(totp) = self.find(conn, id_user)? else {
            return Ok(Verification::Rejected);
        };
        let verification = self.accept(conn, id_user, &totp, code)?;
        if verification == Verification::Activated {
            self.event(id_user, Method::Totp, "activated");
        }
        Ok(verification)
    }

    /// Removes the agent's TOTP method (`pending_only`: only a pending one, when no code was
    /// checked — a method a login made active meanwhile stays); false when none was removed.
    pub fn deactivate_totp(
        &self,
        conn: &mut DbConnection,
        id_user: i32,
        pending_only: bool,
    ) -> QueryResult<bool> {
        let removed = if pending_only {
            diesel::delete(
                t::table
                    .filter(dsl::id_user.eq(id_user))
                    .filter(dsl::status.ne(STATUS_ACTIVE)),
            )
            .execute(conn)?
        } else {
            diesel::delete(t::table.filter(dsl::id_user.eq(id_user))).execute(conn)?
        };
        if removed > 0 {
            self.event(id_user, Method::Totp, "disabled");
        }
        Ok(removed > 0)
    }
}

/// Every agent with a TOTP method, and (`email`: the shop has the tables) every agent whose
/// email method is not inactive, by username.
pub fn list(conn: &mut DbConnection, email: bool) -> QueryResult<Vec<EnrolledAgent>> {
    let rows: Vec<(i32, String, i32, NaiveDateTime)> = t::table
        .inner_join(spy_user::table.on(spy_user::id_user.eq(dsl::id_user)))
        .select((
            dsl::id_user,
            spy_user::username,
            dsl::status,
            dsl::created_at,
        ))
        .load(conn)?;
    let mut agents: Vec<EnrolledAgent> = rows
        .into_iter()
        .map(|(id_user, username, status, enrolled_at)| EnrolledAgent {
            id_user,
            username,
            kind: Method::Totp.name(),
            status: if status == STATUS_ACTIVE {
                "active"
            } else {
                "pending"
            },
            enrolled_at: enrolled_at.and_utc().to_rfc3339(),
        })
        .collect();
    if email {
        for (id_user, status, created) in email::methods(conn)? {
            let username: Option<String> = spy_user::table
                .filter(spy_user::id_user.eq(id_user))
                .select(spy_user::username)
                .first(conn)
                .optional()?;
            let Some(username) = username else { continue };
            agents.push(EnrolledAgent {
                id_user,
                username,
                kind: Method::Email.name(),
                status: if status == email::METHOD_ACTIVE {
                    "active"
                } else {
                    "pending"
                },
                enrolled_at: created
                    .and_then(crate::db::from_shop_zone)
                    .map(|at| at.and_utc().to_rfc3339())
                    .unwrap_or_default(),
            });
        }
    }
    agents.sort_by(|a, b| (&a.username, a.kind).cmp(&(&b.username, b.kind)));
    Ok(agents)
}

/// The status of the agent's TOTP method, if it has one.
pub fn status_of(conn: &mut DbConnection, id_user: i32) -> QueryResult<Option<i32>> {
    t::table
        .filter(dsl::id_user.eq(id_user))
        .select(dsl::status)
        .first(conn)
        .optional()
}

/// How many agents have a TOTP method (start-up refuses to run without the key then).
pub fn enrolled_count(conn: &mut DbConnection) -> QueryResult<i64> {
    t::table.count().get_result(conn)
}
