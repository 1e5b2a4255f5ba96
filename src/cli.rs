//! The command line: `serve` (default), `migrate`, `agent …`, `keys generate`.
//! Every command reads the same settings and database as the server.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::{self, ConnectionManager, DbConnection};
use crate::settings::Settings;
use crate::{agent, password};

#[derive(Debug, Parser)]
#[command(name = "glue", version, about = "Spryker Glue API for agent assist")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
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
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Delete refresh tokens that expired more than RETENTION ago (Spryker's
    /// `oauth:refresh-token:remove-expired`) and login counters whose window and block are over.
    PurgeExpired {
        /// How long expired tokens are kept: a number with s, m, h, d or w (e.g. 30d, 12h).
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        retention: chrono::TimeDelta,
    },
}

/// `90`, `90s`, `15m`, `12h`, `30d`, `2w` → a duration.
pub fn parse_duration(text: &str) -> Result<chrono::TimeDelta, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30d, 12h, 15m or 90s"))?;
    let seconds_per_unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h, d, w)")),
    };
    number
        .checked_mul(seconds_per_unit)
        .and_then(chrono::TimeDelta::try_seconds)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an active agent.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Block an agent: it can no longer log in.
    Deactivate {
        #[arg(long)]
        username: String,
    },
    /// Allow a blocked agent to log in again.
    Activate {
        #[arg(long)]
        username: String,
    },
    /// Replace an agent's password.
    SetPassword {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        password: PasswordInput,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer. Without --password-stdin the customer has no password: it can be
    /// searched and impersonated but not log in itself.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        /// Defaults to the next free `{glue.customer_reference_prefix}{n}`, e.g. DE--7.
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

/// A failed command: the message for standard error (exit status 1).
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

fn connect(settings: &Settings) -> Result<DbConnection, CliError> {
    let manager = ConnectionManager::new(
        settings.database.url.expose(),
        settings.database.sqlite_busy_timeout_ms,
    );
    let mut conn = manager.establish()?;
    db::run_migrations(&mut conn)?;
    Ok(conn)
}

/// One line of standard input without its line ending.
fn read_stdin_line() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string())
}

fn check_password(password: String) -> Result<String, CliError> {
    if password.is_empty() {
        return Err(CliError("the password must not be empty".into()));
    }
    if password.len() > password::BCRYPT_MAX_BYTES {
        return Err(CliError(format!(
            "the password must be at most {} bytes (bcrypt ignores the rest)",
            password::BCRYPT_MAX_BYTES
        )));
    }
    Ok(password)
}

fn read_password(input: &PasswordInput) -> Result<String, CliError> {
    let password = if input.password_stdin {
        read_stdin_line()?
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            return Err(CliError("the passwords do not match".into()));
        }
        first
    } else {
        return Err(CliError(
            "standard input is not a terminal: pass --password-stdin to read the password from it"
                .into(),
        ));
    };
    check_password(password)
}

fn require_one(changed: usize, username: &str) -> Result<(), CliError> {
    if changed == 0 {
        Err(CliError(format!("no agent with username {username:?}")))
    } else {
        Ok(())
    }
}

/// Runs a command other than `serve`; returns what to print on success.
pub fn run(command: Command, settings: &Settings) -> Result<String, CliError> {
    match command {
        Command::Serve => unreachable!("serve is dispatched by main"),
        Command::Migrate => {
            let manager = ConnectionManager::new(
                settings.database.url.expose(),
                settings.database.sqlite_busy_timeout_ms,
            );
            let mut conn = manager.establish()?;
            let applied = db::run_migrations(&mut conn)?;
            Ok(format!("applied {applied} migration(s)"))
        }
        Command::Agent(AgentCommand::Create {
            username,
            first_name,
            last_name,
            password: input,
        }) => {
            if username.trim().is_empty() {
                return Err(CliError("the username must not be empty".into()));
            }
            let secret = read_password(&input)?;
            let hash = password::hash(&secret, settings.oauth.bcrypt_cost)?;
            let mut conn = connect(settings)?;
            let now = chrono::Utc::now().naive_utc();
            let id = agent::create(
                &mut conn,
                &agent::NewAgent {
                    first_name: &first_name,
                    last_name: &last_name,
                    username: &username,
                    password: &hash,
                    status: agent::STATUS_ACTIVE,
                    is_agent: true,
                    created_at: now,
                    updated_at: now,
                },
            )
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    CliError(format!("a user with username {username:?} already exists"))
                }
                other => CliError(other.to_string()),
            })?;
            Ok(format!("created agent {username} (id_user {id})"))
        }
        Command::Agent(AgentCommand::Deactivate { username }) => {
            let mut conn = connect(settings)?;
            require_one(
                agent::set_status(&mut conn, &username, agent::STATUS_BLOCKED)?,
                &username,
            )?;
            Ok(format!("deactivated agent {username}"))
        }
        Command::Agent(AgentCommand::Activate { username }) => {
            let mut conn = connect(settings)?;
            require_one(
                agent::set_status(&mut conn, &username, agent::STATUS_ACTIVE)?,
                &username,
            )?;
            Ok(format!("activated agent {username}"))
        }
        Command::Agent(AgentCommand::SetPassword {
            username,
            password: input,
        }) => {
            let mut conn = connect(settings)?;
            if agent::find_by_username(&mut conn, &username)?
                .filter(|u| u.is_agent)
                .is_none()
            {
                return Err(CliError(format!("no agent with username {username:?}")));
            }
            let secret = read_password(&input)?;
            let hash = password::hash(&secret, settings.oauth.bcrypt_cost)?;
            require_one(agent::set_password(&mut conn, &username, &hash)?, &username)?;
            Ok(format!("changed the password of agent {username}"))
        }
        Command::Customer(CustomerCommand::Create {
            email,
            first_name,
            last_name,
            customer_reference,
            password_stdin,
        }) => {
            if !crate::customer::is_valid_email(&email) {
                return Err(CliError(format!("{email:?} is not a valid email address")));
            }
            if first_name.trim().is_empty() || last_name.trim().is_empty() {
                return Err(CliError("first and last name must not be empty".into()));
            }
            if customer_reference
                .as_deref()
                .is_some_and(|r| r.trim().is_empty())
            {
                return Err(CliError("the customer reference must not be empty".into()));
            }
            let hash = if password_stdin {
                Some(password::hash(
                    &check_password(read_stdin_line()?)?,
                    settings.oauth.bcrypt_cost,
                )?)
            } else {
                None
            };
            let mut conn = connect(settings)?;
            let (reference, id) = db::write_transaction(&mut conn, |conn| {
                let reference = match &customer_reference {
                    Some(r) => r.clone(),
                    None => crate::customer::next_reference(
                        conn,
                        &settings.glue.customer_reference_prefix,
                    )?,
                };
                let now = chrono::Utc::now().naive_utc();
                let id = crate::customer::create(
                    conn,
                    &crate::customer::NewCustomer {
                        customer_reference: &reference,
                        email: &email,
                        first_name: &first_name,
                        last_name: &last_name,
                        password: hash.as_deref(),
                        search_email: &crate::customer::search_key(&email),
                        search_first_name: &crate::customer::search_key(&first_name),
                        search_last_name: &crate::customer::search_key(&last_name),
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                Ok::<_, DieselError>((reference, id))
            })
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => CliError(
                    "a customer with this email or customer reference already exists".into(),
                ),
                other => CliError(other.to_string()),
            })?;
            Ok(format!(
                "created customer {reference} ({email}, id_customer {id})"
            ))
        }
        Command::Tokens(TokensCommand::PurgeExpired { retention }) => {
            let mut conn = connect(settings)?;
            let before = chrono::Utc::now().naive_utc() - retention;
            let deleted = crate::oauth::refresh_token::purge_expired(&mut conn, before)?;
            let counters =
                crate::security_blocker::sweep(&mut conn, chrono::Utc::now().naive_utc())?;
            Ok(format!(
                "deleted {deleted} expired refresh token(s)\ndeleted {counters} expired login counter(s)"
            ))
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
