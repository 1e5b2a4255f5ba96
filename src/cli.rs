//! The command line: `serve` (default), `migrate`, `agent …`, `keys generate`, `bcrypt kernels`.
//! Every command reads the same settings and database as the server.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::{self, ConnectError, ConnectionManager, DbConnection, DbError};
use crate::oauth::keys::KeyError;
use crate::password::PasswordError;
use crate::settings::{Environment, Settings};
use crate::{agent, customer, password};

#[derive(Debug, Parser)]
#[command(name = "glue", version, about = "Spryker Glue API for agent assist")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(ServeArgs),
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply pending database migrations.
    Migrate,
    /// Manage agents (back-office users allowed to assist customers).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Manage customers.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Housekeeping of stored tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Database tools for a DBA.
    #[command(subcommand)]
    Db(DbCommand),
    /// The bcrypt kernels this CPU runs.
    #[command(subcommand)]
    Bcrypt(BcryptCommand),
}

#[derive(Debug, Subcommand)]
pub enum BcryptCommand {
    /// Measure every SIMD kernel this CPU runs, and the scalar one, at oauth.bcrypt_cost on one
    /// core (each in a process of its own: a process keeps one kernel), and name the fastest
    /// for oauth.bcrypt_simd. Needs no database.
    Kernels {
        /// Seconds of measurement per kernel, split into three interleaved rounds (the best
        /// round counts).
        #[arg(long, default_value_t = 6.0)]
        seconds: f64,
    },
    /// One kernel's rate, printed as a number (run by `kernels` in a child process).
    #[command(hide = true)]
    Rate {
        #[arg(long)]
        cost: u32,
        #[arg(long)]
        seconds: f64,
        /// The scalar kernel instead of the process's SIMD kernel.
        #[arg(long)]
        scalar: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Print the DDL of the expression indexes that make customer search index-backed on a
    /// shop's PostgreSQL database (never run by glue; used when present).
    SearchIndexes,
    /// Print the GRANT statements glue's database user needs on a shop's database
    /// (`database.schema_owner = "spryker"`): minimal for serving, then housekeeping, then
    /// glue's own schema or database. Needs no connection.
    Grants,
}

/// Overrides of the settings for one `serve`.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Listen address (overrides `server.host`).
    #[arg(long)]
    pub host: Option<String>,
    /// Listen port (overrides `server.port`; 0 = any free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// An extra configuration file, layered like `GLUE_CONFIG_FILE`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (every layer applied) as JSON, secrets redacted.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Delete refresh tokens that expired more than RETENTION ago (Spryker's
    /// `oauth:refresh-token:remove-expired`) and login counters whose window and block are over.
    PurgeExpired {
        /// How long expired tokens are kept, e.g. 30d, 12h, 90m or 1h 30m.
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        retention: chrono::TimeDelta,
    },
}

/// `--seconds` as a duration, from `least` to ten minutes.
fn measuring_time(seconds: f64, least: f64) -> Result<std::time::Duration, CliError> {
    if !(least..=600.0).contains(&seconds) {
        return Err(refused(format!("--seconds must be from {least} to 600")));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// `glue bcrypt kernels`: each kernel's verifications per second at `cost` on one core, measured
/// in a child process per kernel and round (bcrypt-rust settles one kernel per process), rounds
/// interleaved so that a noisy neighbour hits every kernel alike; the best round counts.
fn bcrypt_kernels(cost: u32, seconds: f64) -> Result<String, CliError> {
    const ROUNDS: u32 = 3;
    // Each of the three rounds runs a child process per kernel: a thirtieth of a second at least.
    let round = measuring_time(seconds, 0.1)? / ROUNDS;
    let glue = std::env::current_exe()
        .map_err(|e| refused(format!("cannot find glue's own binary: {e}")))?;
    let mut kernels: Vec<(&str, usize, f64)> = password::kernels_this_cpu_runs()
        .iter()
        .map(|b| (b.name(), b.lanes(), 0.0))
        .collect();
    for _ in 0..ROUNDS {
        for (name, lanes, best) in kernels.iter_mut() {
            let mut child = std::process::Command::new(&glue);
            child
                .args(["bcrypt", "rate", "--cost", &cost.to_string()])
                .args(["--seconds", &round.as_secs_f64().to_string()])
                .env(password::SIMD_VARIABLE, *name)
                .stdin(std::process::Stdio::null());
            if *lanes == 1 {
                child.arg("--scalar");
            }
            let output = child
                .output()
                .map_err(|e| refused(format!("cannot run {}: {e}", glue.display())))?;
            let rate = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|_| output.status.success())
                .ok_or_else(|| {
                    refused(format!(
                        "measuring {name} failed: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ))
                })?;
            *best = best.max(rate);
        }
    }
    let scalar = kernels.last().map_or(0.0, |k| k.2);
    let mut table = format!(
        "bcrypt verifications per second at cost {cost} on one core, the best of {ROUNDS} rounds of {:.1} s each{}:\n{:<8} {:>5} {:>16} {:>10}\n",
        round.as_secs_f64(),
        if cfg!(debug_assertions) {
            " (a debug build: its figures say nothing about a release build's)"
        } else {
            ""
        },
        "kernel",
        "lanes",
        "verifications/s",
        "vs scalar"
    );
    for (name, lanes, rate) in &kernels {
        table += &format!(
            "{name:<8} {lanes:>5} {rate:>16.2} {:>8.2} ×\n",
            rate / scalar
        );
    }
    let (fastest, _, _) =
        kernels.iter().copied().fold(
            ("scalar", 1, 0.0),
            |best, k| if k.2 > best.2 { k } else { best },
        );
    let widest = password::Simd::Widest
        .kernel()
        .map_or("scalar", |kernel| kernel.name());
    table += &if fastest == "scalar" {
        "fastest: scalar. Batching does not pay on this CPU: oauth.bcrypt_kernel = \"scalar\""
            .to_string()
    } else {
        format!("fastest: {fastest}. oauth.bcrypt_simd = \"{fastest}\" pins it; \"widest\" (the default) runs {widest}")
    };
    Ok(table)
}

/// A duration in humantime's syntax (`90s`, `15m`, `12h`, `30d`, `2w`, `1h 30m`) → a duration.
pub fn parse_duration(text: &str) -> Result<chrono::TimeDelta, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 30d, 12h, 15m or 90s: {e}"))?;
    chrono::TimeDelta::from_std(duration).map_err(|_| format!("{text:?} is too long"))
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an active agent.
    Create {
        /// The login name (at most 45 characters in Spryker's spy_user).
        #[arg(long)]
        username: String,
        /// The agent's first name.
        #[arg(long)]
        first_name: String,
        /// The agent's last name.
        #[arg(long)]
        last_name: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Block an agent: it can no longer log in, and every session it has ends.
    Deactivate {
        /// The agent's login name.
        #[arg(long)]
        username: String,
    },
    /// Allow a blocked agent to log in again.
    Activate {
        /// The agent's login name.
        #[arg(long)]
        username: String,
    },
    /// List the agents (all spy_user rows with is_agent).
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace an agent's password; every session it has ends.
    SetPassword {
        /// The agent's login name.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// An agent's second factor (TOTP for authenticator apps, or the shop's email method).
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Print the bcrypt hash (`$2y$`, oauth.bcrypt_cost) of a new password, for an agent row in
    /// a site migration (database.site_migrations_path). The same rules as set-password; the
    /// password is never echoed; no database is needed.
    HashPassword {
        #[command(flatten)]
        password: PasswordInput,
    },
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Enrol the agent in a method. totp: prints the otpauth:// URI (and, on a terminal, its QR
    /// code) for an authenticator app; the method is pending until a code verifies it. email
    /// (glue's own schema only): active at once, codes go to the agent's username address.
    Activate {
        #[arg(long)]
        username: String,
        /// The method: totp or email.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
    },
    /// Verify a code from the agent's app, activating a pending method.
    Verify {
        #[arg(long)]
        username: String,
        #[arg(long)]
        code: String,
    },
    /// Remove the agent's method (email: set inactive, as Spryker keeps the row).
    Deactivate {
        #[arg(long)]
        username: String,
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
    },
    /// List the agents with a method and its status.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer. Without --password-stdin the customer has no password: it can be
    /// searched and impersonated but not log in itself.
    Create {
        /// The customer's email (unique in any case; the login name).
        #[arg(long)]
        email: String,
        /// The customer's first name.
        #[arg(long)]
        first_name: String,
        /// The customer's last name.
        #[arg(long)]
        last_name: String,
        /// The customer reference; by default the next free one made of
        /// glue.customer_reference_prefix and a number, e.g. DE--7.
        #[arg(long)]
        customer_reference: Option<String>,
        /// Read the customer's password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct PasswordInput {
    /// Read the password from the first line of standard input (without its line ending)
    /// instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new RS256 key pair (private.pem, public.pem) into DIR.
    Generate {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// A failed command (exit status 1); `main` prints it with its causes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot read the password")]
    Input(#[from] std::io::Error),
}

impl From<crate::oauth::OAuthError> for CliError {
    fn from(e: crate::oauth::OAuthError) -> Self {
        match e {
            crate::oauth::OAuthError::Database(db) => CliError::Database(db),
            sign => CliError::Refused(sign.to_string()),
        }
    }
}

impl From<DieselError> for CliError {
    fn from(e: DieselError) -> Self {
        CliError::Database(e.into())
    }
}

fn refused(message: impl Into<String>) -> CliError {
    CliError::Refused(message.into())
}

/// A unique-constraint violation becomes `duplicate`; anything else stays a database error.
fn unless_duplicate(e: DieselError, duplicate: String) -> CliError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => refused(duplicate),
        other => other.into(),
    }
}

/// A connection to the configured database, checked and migrated as `serve` does.
fn connect(settings: &Settings) -> Result<DbConnection, CliError> {
    let manager = ConnectionManager::for_settings(&settings.database)?;
    db::migrate(&manager)?;
    db::use_zone(settings.database.zone()?);
    Ok(manager.establish()?)
}

/// In `spryker` mode the shop's back office creates users and its storefront registers
/// customers (with the rows, sequences and events glue does not know): glue refuses.
fn refuse_on_shop_database(settings: &Settings, what: &str, instead: &str) -> Result<(), CliError> {
    if settings.database.schema_owner == db::SchemaOwner::Spryker {
        return Err(refused(format!(
            "database.schema_owner = \"spryker\": glue does not create {what} in a shop's database; {instead}"
        )));
    }
    Ok(())
}

/// One line of standard input without its line ending.
fn read_stdin_line() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string())
}

fn check_password(settings: &Settings, password: String) -> Result<String, CliError> {
    if password.is_empty() {
        return Err(refused("the password must not be empty"));
    }
    if password.contains('\0') {
        return Err(refused(
            "the password must not contain NUL bytes (bcrypt implementations differ at them: PHP's ends the password there, bcrypt's key schedule repeats it)",
        ));
    }
    let min = settings.oauth.password_min_length;
    if password.chars().count() < min {
        return Err(refused(format!(
            "the password must have at least {min} characters (oauth.password_min_length)"
        )));
    }
    if password.len() > password::BCRYPT_MAX_BYTES {
        return Err(refused(format!(
            "the password must be at most {} bytes (bcrypt ignores the rest)",
            password::BCRYPT_MAX_BYTES
        )));
    }
    Ok(password)
}

/// The bcrypt hash of a new password read with [`read_password`]. Production refuses one that
/// verifies against the demo password — compared by verification, not by text, so no spelling
/// bcrypt treats alike (a suffix past 72 bytes, a repetition of it) gets through.
fn hash_new_password(settings: &Settings, input: &PasswordInput) -> Result<String, CliError> {
    let secret = read_password(settings, input)?;
    let hash = password::hash(&secret, settings.oauth.bcrypt_cost)?;
    if settings.environment == Environment::Production
        && password::verify(agent::DEMO_PASSWORD, &hash)
    {
        return Err(refused("the demo password is refused in production"));
    }
    Ok(hash)
}

fn read_password(settings: &Settings, input: &PasswordInput) -> Result<String, CliError> {
    let password = if input.password_stdin {
        read_stdin_line()?
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            return Err(refused("the passwords do not match"));
        }
        first
    } else {
        return Err(refused(
            "standard input is not a terminal: pass --password-stdin to read the password from it",
        ));
    };
    check_password(settings, password)
}

fn require_agent(changed: usize, username: &str) -> Result<(), CliError> {
    if changed == 0 {
        Err(refused(format!("no agent with username {username:?}")))
    } else {
        Ok(())
    }
}

/// The user a database URL connects as (`scheme://user[:password]@host/…`), `glue` when it
/// names none.
fn url_user(url: &str) -> String {
    url.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo.split(':').next().unwrap_or("").to_string())
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "glue".to_string())
}

/// Runs a command other than `serve`; returns what to print on success.
pub fn run(command: Command, settings: &Settings) -> Result<String, CliError> {
    match command {
        Command::Serve(_) => unreachable!("serve is dispatched by main"),
        Command::Config(ConfigCommand::Show) => {
            let mut shown = serde_json::to_value(settings).map_err(|e| refused(e.to_string()))?;
            shown["environment"] = settings.environment.as_str().into();
            // The schema or database glue's tables are in, as resolved (not the empty default).
            if let Ok(manager) = db::ConnectionManager::for_settings(&settings.database) {
                if let db::Layout::Spryker { glue_schema, .. } = manager.layout() {
                    shown["database"]["glue_schema"] = glue_schema.as_str().into();
                }
            }
            serde_json::to_string_pretty(&shown).map_err(|e| refused(e.to_string()))
        }
        Command::Migrate => migrate(settings),
        Command::Db(DbCommand::Grants) => {
            let manager = ConnectionManager::for_settings(&settings.database)?;
            let user = url_user(settings.database.url.expose());
            let user = match manager.backend() {
                db::Backend::Mysql => format!("'{user}'@'%'"),
                _ => format!("\"{user}\""),
            };
            Ok(db::layout::grants_ddl(
                manager.backend(),
                manager.layout(),
                &user,
            ))
        }
        Command::Bcrypt(BcryptCommand::Kernels { seconds }) => {
            bcrypt_kernels(settings.oauth.bcrypt_cost, seconds)
        }
        Command::Bcrypt(BcryptCommand::Rate {
            cost,
            seconds,
            scalar,
        }) => {
            let at_least = measuring_time(seconds, 0.01)?;
            Ok(password::raw_rate(cost, at_least, !scalar)?.to_string())
        }
        Command::Db(DbCommand::SearchIndexes) => {
            let backend =
                db::Backend::of_url(settings.database.url.expose()).map_err(ConnectError::from)?;
            Ok(db::layout::search_index_ddl(backend))
        }
        Command::Agent(AgentCommand::Create {
            username,
            first_name,
            last_name,
            password,
        }) => agent_create(settings, &username, &first_name, &last_name, &password),
        Command::Agent(AgentCommand::Deactivate { username }) => {
            agent_set_status(settings, &username, agent::STATUS_BLOCKED)
        }
        Command::Agent(AgentCommand::Activate { username }) => {
            agent_set_status(settings, &username, agent::STATUS_ACTIVE)
        }
        Command::Agent(AgentCommand::List { json }) => agent_list(settings, json),
        Command::Agent(AgentCommand::SetPassword { username, password }) => {
            agent_set_password(settings, &username, &password)
        }
        Command::Agent(AgentCommand::Mfa(command)) => agent_mfa(settings, command),
        Command::Agent(AgentCommand::HashPassword { password }) => {
            hash_new_password(settings, &password)
        }
        Command::Customer(CustomerCommand::Create {
            email,
            first_name,
            last_name,
            customer_reference,
            password_stdin,
        }) => customer_create(
            settings,
            &email,
            &first_name,
            &last_name,
            customer_reference.as_deref(),
            password_stdin,
        ),
        Command::Tokens(TokensCommand::PurgeExpired { retention }) => {
            purge_expired(settings, retention)
        }
        Command::Keys(KeysCommand::Generate { out }) => {
            let (private, public) = crate::oauth::keys::write_key_pair(&out)?;
            Ok(format!(
                "wrote {} and {}",
                private.display(),
                public.display()
            ))
        }
    }
}

/// A method `--type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MethodKind {
    Totp,
    Email,
}

fn method_kind(kind: &str) -> Result<MethodKind, CliError> {
    match kind {
        "totp" => Ok(MethodKind::Totp),
        "email" => Ok(MethodKind::Email),
        other => Err(refused(format!(
            "unknown method {other:?}: the accepted values are \"totp\" and \"email\""
        ))),
    }
}

/// The shop's MFA tables must be there for the email method.
fn email_tables(conn: &mut DbConnection, layout: &db::Layout) -> Result<(), CliError> {
    if crate::multi_factor_auth::email::tables_present(conn, layout)? {
        Ok(())
    } else {
        Err(refused(
            "the database has no spy_user_multi_factor_auth tables (spryker/multi-factor-auth is not installed)",
        ))
    }
}

fn agent_mfa(settings: &Settings, command: MfaCommand) -> Result<String, CliError> {
    let mfa = crate::multi_factor_auth::AgentMfa::for_settings(
        settings,
        std::sync::Arc::new(crate::clock::SystemClock),
    )
    .map_err(refused)?;
    let layout = ConnectionManager::for_settings(&settings.database)?
        .layout()
        .clone();
    let mut conn = connect(settings)?;
    let agent_id = |conn: &mut DbConnection, username: &str| -> Result<i32, CliError> {
        agent::find_by_username(conn, username)?
            .filter(|user| user.is_agent == Some(true))
            .map(|user| user.id_user)
            .ok_or_else(|| refused(format!("no agent with username {username:?}")))
    };
    match command {
        MfaCommand::Activate { username, kind } => {
            if method_kind(&kind)? == MethodKind::Email {
                refuse_on_shop_database(
                    settings,
                    "second-factor methods",
                    "the agent activates the email method in its profile on the shop's storefront (Spryker's agent MFA), and glue honours it",
                )?;
                let id_user = agent_id(&mut conn, &username)?;
                email_tables(&mut conn, &layout)?;
                return if crate::multi_factor_auth::email::activate(&mut conn, id_user, db::now())?
                {
                    log::info!(target: "security", "second factor enrolled (active): agent {id_user}, email");
                    Ok(format!(
                        "activated the email method for agent {username}: its logins now need the code glue mails to {username} (mail.smtp_url)"
                    ))
                } else {
                    Err(refused(format!(
                        "agent {username}'s email method is already active"
                    )))
                };
            }
            let id_user = agent_id(&mut conn, &username)?;
            let uri = mfa
                .enrol_totp(&mut conn, id_user, &settings.oauth.mfa_issuer, &username)
                .map_err(|e| refused(e.to_string()))?;
            let mut out = format!(
                "enrolled agent {username} in totp (pending until a code verifies it: `glue agent mfa verify --username {username} --code …`, or its first login with X-MFA-Code)\n{uri}"
            );
            if std::io::stdout().is_terminal() {
                if let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) {
                    out.push('\n');
                    out.push_str(
                        &code
                            .render::<qrcode::render::unicode::Dense1x2>()
                            .quiet_zone(true)
                            .build(),
                    );
                }
            }
            Ok(out)
        }
        MfaCommand::Verify { username, code } => {
            let id_user = agent_id(&mut conn, &username)?;
            match mfa
                .verify_totp(&mut conn, id_user, code.trim())
                .map_err(|e| refused(e.to_string()))?
            {
                crate::multi_factor_auth::Verification::Activated => {
                    let ended = crate::session::end_agent_sessions(&mut conn, i64::from(id_user))?;
                    Ok(format!(
                        "verified: agent {username}'s totp method is active (ended {ended} session token(s) opened without it)"
                    ))
                }
                crate::multi_factor_auth::Verification::Accepted => Ok(format!(
                    "the code is valid: agent {username}'s totp method was already active"
                )),
                crate::multi_factor_auth::Verification::Rejected => Err(refused(format!(
                    "the code is not valid now for agent {username} (or it has no totp method)"
                ))),
            }
        }
        MfaCommand::Deactivate { username, kind } => {
            let id_user = agent_id(&mut conn, &username)?;
            if method_kind(&kind)? == MethodKind::Email {
                email_tables(&mut conn, &layout)?;
                return if crate::multi_factor_auth::email::deactivate(
                    &mut conn,
                    id_user,
                    db::now(),
                )? {
                    log::info!(target: "security", "second factor disabled: agent {id_user}, email");
                    Ok(format!("deactivated agent {username}'s email method"))
                } else {
                    Err(refused(format!(
                        "agent {username} has no active email method"
                    )))
                };
            }
            if mfa.deactivate_totp(&mut conn, id_user, false)? {
                Ok(format!("removed agent {username}'s totp method"))
            } else {
                Err(refused(format!("agent {username} has no totp method")))
            }
        }
        MfaCommand::List { json } => {
            let email = crate::multi_factor_auth::email::tables_present(&mut conn, &layout)?;
            let agents = crate::multi_factor_auth::list(&mut conn, email)?;
            if json {
                return serde_json::to_string_pretty(&agents).map_err(|e| refused(e.to_string()));
            }
            let mut out = format!("{:<40} {:<6} {:<8} ENROLLED", "USERNAME", "TYPE", "STATUS");
            for agent in agents {
                out.push_str(&format!(
                    "\n{:<40} {:<6} {:<8} {}",
                    agent.username, agent.kind, agent.status, agent.enrolled_at
                ));
            }
            Ok(out)
        }
    }
}

fn migrate(settings: &Settings) -> Result<String, CliError> {
    let manager = ConnectionManager::for_settings(&settings.database)?;
    let applied = db::migrate(&manager)?;
    Ok(format!("applied {applied} migration(s)"))
}

fn agent_create(
    settings: &Settings,
    username: &str,
    first_name: &str,
    last_name: &str,
    input: &PasswordInput,
) -> Result<String, CliError> {
    refuse_on_shop_database(
        settings,
        "agents",
        "create the user in the shop's back office (Zed: Users > Create user, with \"This user is an agent\" ticked), then use `glue agent set-password`, `activate` or `deactivate` here",
    )?;
    if username.trim().is_empty() {
        return Err(refused("the username must not be empty"));
    }
    let hash = hash_new_password(settings, input)?;
    let mut conn = connect(settings)?;
    let id = agent::create(
        &mut conn,
        &agent::NewAgent {
            first_name,
            last_name,
            username,
            password: &hash,
            status: agent::STATUS_ACTIVE,
            is_agent: true,
        },
    )
    .map_err(|e| {
        unless_duplicate(
            e,
            format!("a user with username {username:?} already exists"),
        )
    })?;
    Ok(format!("created agent {username} (id_user {id})"))
}

/// Activates or deactivates an agent. Deactivation ends every session of the agent at once
/// (so activating it again brings none back); production refuses to activate an agent that
/// still has the demo password.
fn agent_set_status(settings: &Settings, username: &str, status: i16) -> Result<String, CliError> {
    let mut conn = connect(settings)?;
    let Some(user) = agent::find_by_username(&mut conn, username)?.filter(agent::User::is_agent)
    else {
        return Err(refused(format!("no agent with username {username:?}")));
    };
    if status == agent::STATUS_ACTIVE {
        if settings.environment == Environment::Production
            && password::verify(agent::DEMO_PASSWORD, &user.password)
        {
            return Err(refused(format!(
                "{username} still has the demo password: set another with `glue agent set-password --username {username}` first"
            )));
        }
        require_agent(agent::set_status(&mut conn, username, status)?, username)?;
        return Ok(format!("activated agent {username}"));
    }
    let (changed, ended) =
        crate::session::change_agent_and_end_sessions(&mut conn, user.id_user.into(), |conn| {
            agent::set_status(conn, username, status)
        })?;
    require_agent(changed, username)?;
    Ok(format!(
        "deactivated agent {username} (ended {ended} session token(s))"
    ))
}

fn agent_list(settings: &Settings, json: bool) -> Result<String, CliError> {
    let agents = agent::list_agents(&mut connect(settings)?)?;
    let status = |code: i16| match code {
        agent::STATUS_ACTIVE => "active",
        agent::STATUS_BLOCKED => "blocked",
        agent::STATUS_DELETED => "deleted",
        _ => "unknown",
    };
    // `last_login` is the shop's wall-clock time (database.timezone): shown with its real zone.
    let zone = settings.database.zone()?;
    let in_zone = |t: chrono::NaiveDateTime| {
        use chrono::TimeZone;
        zone.from_local_datetime(&t)
            .earliest()
            .map(|local| local.fixed_offset())
    };
    let last_login = |user: &agent::User| {
        user.last_login.map_or_else(
            || "never".to_string(),
            |t| match in_zone(t) {
                Some(local) => format!("{} {zone}", local.format("%Y-%m-%d %H:%M:%S %:z")),
                None => format!("{t} {zone}"),
            },
        )
    };
    if json {
        let rows: Vec<_> = agents
            .iter()
            .map(|a| {
                serde_json::json!({
                    "id_user": a.id_user,
                    "username": a.username,
                    "first_name": a.first_name,
                    "last_name": a.last_name,
                    "status": status(a.status),
                    // A wall-clock time in a DST gap has no offset: shown with its zone's name.
                    "last_login": a.last_login.map(|t| {
                        in_zone(t).map_or_else(|| format!("{t} {zone}"), |local| local.to_rfc3339())
                    }),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&rows).map_err(|e| refused(e.to_string()));
    }
    let mut rows = vec![[
        "ID".to_string(),
        "USERNAME".to_string(),
        "NAME".to_string(),
        "STATUS".to_string(),
        "LAST LOGIN".to_string(),
    ]];
    for a in &agents {
        rows.push([
            a.id_user.to_string(),
            a.username.clone(),
            format!("{} {}", a.first_name, a.last_name),
            status(a.status).to_string(),
            last_login(a),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect();
    Ok(lines.join("\n"))
}

fn agent_set_password(
    settings: &Settings,
    username: &str,
    input: &PasswordInput,
) -> Result<String, CliError> {
    let mut conn = connect(settings)?;
    let Some(user) = agent::find_by_username(&mut conn, username)?.filter(agent::User::is_agent)
    else {
        return Err(refused(format!("no agent with username {username:?}")));
    };
    let hash = hash_new_password(settings, input)?;
    // The new hash and the end of every session commit together.
    let (changed, ended) =
        crate::session::change_agent_and_end_sessions(&mut conn, user.id_user.into(), |conn| {
            agent::set_password(conn, username, &hash)
        })?;
    require_agent(changed, username)?;
    Ok(format!(
        "changed the password of agent {username} (ended {ended} session token(s))"
    ))
}

fn customer_create(
    settings: &Settings,
    email: &str,
    first_name: &str,
    last_name: &str,
    customer_reference: Option<&str>,
    password_stdin: bool,
) -> Result<String, CliError> {
    refuse_on_shop_database(
        settings,
        "customers",
        "customers register in the shop's storefront or are created in its back office (Zed: Customers > Add customer)",
    )?;
    if !customer::is_valid_email(email) {
        return Err(refused(format!("{email:?} is not a valid email address")));
    }
    if first_name.trim().is_empty() || last_name.trim().is_empty() {
        return Err(refused("first and last name must not be empty"));
    }
    if customer_reference.is_some_and(|r| r.trim().is_empty()) {
        return Err(refused("the customer reference must not be empty"));
    }
    let hash = if password_stdin {
        Some(password::hash(
            &check_password(settings, read_stdin_line()?)?,
            settings.oauth.bcrypt_cost,
        )?)
    } else {
        None
    };
    let mut conn = connect(settings)?;
    let (reference, id) = db::write_transaction(&mut conn, |conn| {
        // The email is unique in any case (Spryker checks UPPER(email) before it inserts).
        if customer::find_by_email(conn, email)?.is_some() {
            return Err(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                Box::new("email exists".to_string()),
            ));
        }
        let reference = match customer_reference {
            Some(r) => r.to_string(),
            None => customer::next_reference(conn, &settings.glue.customer_reference_prefix)?,
        };
        let id = customer::create(
            conn,
            &customer::NewCustomer {
                customer_reference: &reference,
                email,
                first_name: Some(first_name),
                last_name: Some(last_name),
                password: hash.as_deref(),
            },
        )?;
        Ok::<_, DieselError>((reference, id))
    })
    .map_err(|e| {
        unless_duplicate(
            e,
            "a customer with this email or customer reference already exists".into(),
        )
    })?;
    Ok(format!(
        "created customer {reference} ({email}, id_customer {id})"
    ))
}

fn purge_expired(settings: &Settings, retention: chrono::TimeDelta) -> Result<String, CliError> {
    use std::io::{IsTerminal, Write};
    let mut conn = connect(settings)?;
    let before = db::now() - retention;
    // On a terminal: one line, rewritten at most twice a second, with what is left and when
    // it will be done (the count is one read before the first batch).
    let terminal = std::io::stderr().is_terminal();
    let expired = if terminal {
        crate::oauth::refresh_token::count_expired(&mut conn, before)?.max(0) as usize
    } else {
        0
    };
    let started = std::time::Instant::now();
    let show = |deleted: usize| {
        let rate = deleted as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let left = expired.saturating_sub(deleted);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\rdeleted {deleted} of {expired} expired refresh token(s), {left} left, {rate:.0} rows/s, about {:.0} s to go   ",
            left as f64 / rate.max(1.0),
        );
        let _ = stderr.flush();
    };
    let mut shown = std::time::Instant::now();
    let done = crate::oauth::refresh_token::purge_expired(&mut conn, before, |p| {
        if terminal && shown.elapsed() >= std::time::Duration::from_millis(500) {
            shown = std::time::Instant::now();
            show(p.deleted);
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if terminal {
        show(done.deleted);
        eprintln!();
    }
    let (counters, trusts) =
        crate::security_blocker::sweep(&mut conn, chrono::Utc::now().naive_utc())?;
    Ok(format!(
        "deleted {deleted} expired refresh token(s)\ndeleted {counters} expired login counter(s)\ndeleted {trusts} expired trusted address(es)\n{transactions} transaction(s), the longest {longest} ms; {rate:.0} rows/s over {seconds:.1} s",
        deleted = done.deleted,
        transactions = done.transactions,
        longest = done.longest_transaction.as_millis(),
        rate = done.deleted as f64 / seconds.max(1e-3),
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use chrono::TimeDelta;

    #[test]
    fn durations_are_read_by_humantime() {
        assert_eq!(parse_duration("30d"), Ok(TimeDelta::days(30)));
        assert_eq!(parse_duration(" 12h "), Ok(TimeDelta::hours(12)));
        assert_eq!(parse_duration("1h 30m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse_duration("2w"), Ok(TimeDelta::weeks(2)));
        assert_eq!(parse_duration("0s"), Ok(TimeDelta::zero()));
        for bad in ["90", "soon", "", "-1d", "30x", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
