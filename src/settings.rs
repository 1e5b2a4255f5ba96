//! Typed settings (Spryker's `config/Shared/config_*.php`, as a tree).
//!
//! Layers, later wins: `config/default.toml` → `config/{GLUE_ENV}.toml` (both embedded in the
//! binary) → an optional extra file named by `GLUE_CONFIG_FILE` → environment variables
//! `GLUE__SECTION__KEY` → `DATABASE_URL`. Settings are loaded once in `main` and passed down;
//! there is no global. A bad value stops startup with an error that names the key.

use config::{Config, File, FileFormat};

pub use crate::db::DatabaseSettings;
pub use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// Which layer file applies, from `GLUE_ENV` (default `development`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }

    /// Reads `GLUE_ENV`; unknown values are an error rather than a silent fallback.
    pub fn from_env() -> Result<Self, SettingsError> {
        match std::env::var("GLUE_ENV") {
            Err(_) => Ok(Environment::Development),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "development" | "dev" => Ok(Environment::Development),
                "test" => Ok(Environment::Test),
                "production" | "prod" => Ok(Environment::Production),
                other => Err(SettingsError::Invalid {
                    key: "GLUE_ENV".into(),
                    message: format!(
                        "unknown environment {other:?} (development, test, production)"
                    ),
                }),
            },
        }
    }

    fn layer(self) -> &'static str {
        match self {
            Environment::Development => include_str!("../config/development.toml"),
            Environment::Test => include_str!("../config/test.toml"),
            Environment::Production => include_str!("../config/production.toml"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(skip, default = "default_environment")]
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub glue: GlueSettings,
    pub oauth: OAuthSettings,
    pub security_blocker: SecurityBlockerSettings,
    pub metrics: MetricsSettings,
    pub mail: MailSettings,
}

/// Outgoing mail (the agents' email codes; see `mail`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// `smtp://…`, `smtp://…?tls=required` (STARTTLS) or `smtps://…`; empty: no mail (agents
    /// with the email method then get 503/5910). A secret: it may hold the relay's password.
    pub smtp_url: Secret,
    /// The sender of every mail.
    pub from: String,
    /// A whole send (connect, TLS, AUTH, the mail) must finish within this many milliseconds.
    pub timeout_ms: u64,
    /// A PEM file with a CA certificate to trust besides webpki's roots (a relay with a
    /// certificate of the company's own CA); empty: none.
    pub tls_ca_path: String,
}

/// Where `/metrics` is served: an address of its own (empty = not served).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: String,
}

fn default_environment() -> Environment {
    Environment::Development
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout_s: u64,
    /// A request body must arrive within this many seconds of its headers (408 otherwise).
    pub body_timeout_s: u64,
    /// Open client connections the process accepts at most (divided among the workers); more
    /// wait in the listen backlog until one closes.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlueSettings {
    pub base_url: String,
    pub locale: String,
    pub cors_allowed_origins: Vec<String>,
    /// Request headers a browser page may send.
    pub cors_allowed_headers: Vec<String>,
    pub trusted_proxies: Vec<String>,
    pub max_page_limit: i64,
    /// Customer search counts matches up to this many (for `last`); beyond, no `last` link.
    pub search_count_limit: i64,
    /// Searches running at once per process (each holds a pooled connection and one of the
    /// searches' own threads); 0 = half of `database.pool_size` (at least 1), so that logins, refreshes and
    /// `/readyz` always find a connection however slow searches get.
    pub search_concurrency: u32,
    /// How long a search waits for its turn before it is answered 503 + Retry-After.
    pub search_queue_ms: u64,
    /// CPU priority of the threads searches run on: on SQLite the search's SQL runs there, and
    /// logins and refreshes must win the CPU from it.
    pub search_priority: SearchPriority,
    pub customer_reference_prefix: String,
}

/// Where the signing key and the client come from (`oauth.key_source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum KeySource {
    /// `oauth.private_key_*`, `oauth.client_id`.
    #[default]
    Glue,
    /// The shop's env file, as its PHP applications read it: `SPRYKER_OAUTH_KEY_PRIVATE`,
    /// `SPRYKER_OAUTH_KEY_PUBLIC`, `SPRYKER_OAUTH_ENCRYPTION_KEY` and the default client of
    /// `SPRYKER_OAUTH_CLIENT_CONFIGURATION` (see [`SprykerEnv`]).
    SprykerEnv,
}

/// The value of a setting that takes one of a few names: the one `value` names, or a message
/// with the value given and the accepted names (the setting's key is added by the loader).
pub fn one_of<T: Copy>(value: &str, names: &[(&str, T)]) -> Result<T, String> {
    names
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, named)| *named)
        .ok_or_else(|| {
            let accepted: Vec<String> = names.iter().map(|(name, _)| format!("{name:?}")).collect();
            format!("{value:?} is not one of {}", accepted.join(", "))
        })
}

/// `glue.search_priority`: the CPU priority of the customer searches' threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum SearchPriority {
    /// Linux's `SCHED_IDLE`: CPU time nothing else wants.
    #[default]
    Idle,
    /// Nice 19: below bcrypt (`oauth.bcrypt_nice`) and every request.
    Low,
    /// As every request thread.
    Normal,
}

impl TryFrom<String> for SearchPriority {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        one_of(
            &value,
            &[
                ("idle", SearchPriority::Idle),
                ("low", SearchPriority::Low),
                ("normal", SearchPriority::Normal),
            ],
        )
    }
}

impl TryFrom<String> for KeySource {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        one_of(
            &value,
            &[
                ("glue", KeySource::Glue),
                ("spryker-env", KeySource::SprykerEnv),
            ],
        )
    }
}

impl TryFrom<String> for BcryptKernel {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        one_of(
            &value,
            &[
                ("batch", BcryptKernel::Batch),
                ("scalar", BcryptKernel::Scalar),
                ("reference", BcryptKernel::Reference),
            ],
        )
    }
}

/// The shop's OAuth key material, read from its environment variables.
#[derive(Clone)]
pub struct SprykerEnv {
    /// PEM (PKCS#1 or PKCS#8) with real newlines.
    pub private_pem: Secret,
    /// SPKI PEM with real newlines.
    pub public_pem: String,
    /// The password PHP's league/oauth2-server encrypts refresh tokens with.
    pub encryption_key: Secret,
    /// The identifier of the `isDefault` client.
    pub client_id: String,
}

impl std::fmt::Debug for SprykerEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SprykerEnv")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl SprykerEnv {
    /// Reads the four variables through `var`; each missing or malformed one is named.
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let required = |name: &str| {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| invalid(name, "missing (oauth.key_source = \"spryker-env\")"))
        };
        // Spryker's env files write PEM newlines as the literal `__LINE__`.
        let pem = |name: &str, tags: &[&str]| -> Result<String, SettingsError> {
            let text = required(name)?.replace("__LINE__", "\n");
            match pem::parse(text.trim().as_bytes()) {
                Ok(block) if tags.contains(&block.tag()) => Ok(text),
                _ => Err(invalid(
                    name,
                    format!("not a PEM block of type {}", tags.join(" or ")),
                )),
            }
        };
        let private_pem = Secret::new(pem(
            "SPRYKER_OAUTH_KEY_PRIVATE",
            &["PRIVATE KEY", "RSA PRIVATE KEY"],
        )?);
        let public_pem = pem(
            "SPRYKER_OAUTH_KEY_PUBLIC",
            &["PUBLIC KEY", "RSA PUBLIC KEY"],
        )?;
        let encryption_key = Secret::new(required("SPRYKER_OAUTH_ENCRYPTION_KEY")?);
        let clients = required("SPRYKER_OAUTH_CLIENT_CONFIGURATION")?;
        let clients: Vec<serde_json::Value> = serde_json::from_str(&clients).map_err(|_| {
            invalid(
                "SPRYKER_OAUTH_CLIENT_CONFIGURATION",
                "not a JSON list of clients",
            )
        })?;
        let client_id = clients
            .iter()
            .find(|c| c["isDefault"] == serde_json::Value::Bool(true))
            .and_then(|c| c["identifier"].as_str())
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| {
                invalid(
                    "SPRYKER_OAUTH_CLIENT_CONFIGURATION",
                    "no client with \"isDefault\": true and an \"identifier\"",
                )
            })?
            .to_string();
        Ok(SprykerEnv {
            private_pem,
            public_pem,
            encryption_key,
            client_id,
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// `glue` or `spryker-env` (the shop's keys and client; see [`SprykerEnv`]).
    pub key_source: KeySource,
    /// The shop's key material when `key_source = "spryker-env"` (read at start-up, never shown).
    #[serde(skip)]
    pub spryker_env: Option<SprykerEnv>,
    /// New tokens' `iat`/`nbf` lie this many seconds in the past, so that a verifier with no
    /// leeway and a clock slightly behind (PHP's league/oauth2-server) accepts them at once.
    pub issued_at_backdate_s: u64,
    pub client_id: String,
    /// Seconds after a rotation during which the retired token is honoured again (0 = never).
    pub refresh_reuse_grace_s: u64,
    /// How often, at most, within that window.
    pub refresh_reuse_grace_uses: u32,
    pub issuer: String,
    pub access_token_ttl_s: u64,
    pub refresh_token_ttl_s: u64,
    pub private_key_path: String,
    #[serde(default)]
    pub private_key_pem: Secret,
    pub verification_key_paths: Vec<String>,
    pub leeway_s: u64,
    pub bcrypt_cost: u32,
    /// `batch` (SIMD lanes for logins that wait together), `scalar` or `reference`.
    pub bcrypt_kernel: BcryptKernel,
    /// Which SIMD kernel `batch` runs: `widest`, `measure` or a kernel's name.
    pub bcrypt_simd: BcryptSimd,
    pub bcrypt_concurrency: usize,
    pub bcrypt_nice: i32,
    /// Logins waiting for or in bcrypt beyond this many are answered 503 at once.
    pub bcrypt_queue_depth: usize,
    /// Pad every verification to the highest cost of any stored hash (not only to
    /// `bcrypt_cost`), so that no failure tells whether the user exists. Only tests turn it off.
    pub bcrypt_pad_to_stored_cost: bool,
    /// Passwords the CLI sets must have at least this many characters.
    pub password_min_length: usize,
    /// Agents' second factor: `if-enrolled`, `required` or `off` (see `multi_factor_auth`).
    pub agent_mfa: AgentMfaMode,
    /// A file with base64 of 32 random bytes: the key TOTP secrets are stored under. Empty:
    /// `var/keys/mfa.key` (written on first use) outside production; in production TOTP
    /// enrolment is refused until it is set.
    pub mfa_key_path: String,
    /// The issuer authenticator apps show next to the agent's username.
    pub mfa_issuer: String,
    /// The email method: a new code goes out at most this often per agent (a login without a
    /// code while one is still waiting answers 5900 and sends nothing).
    pub mfa_email_interval_s: u64,
}

/// Whether agents need a second factor to get tokens (`oauth.agent_mfa`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum AgentMfaMode {
    /// Agents with an active method need a code; the others log in with their password.
    #[default]
    IfEnrolled,
    /// Agents without an active method get no tokens (403/5902).
    Required,
    /// No code is asked for (Spryker's Glue).
    Off,
}

impl TryFrom<String> for AgentMfaMode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        one_of(
            &value,
            &[
                ("if-enrolled", AgentMfaMode::IfEnrolled),
                ("required", AgentMfaMode::Required),
                ("off", AgentMfaMode::Off),
            ],
        )
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityBlockerSettings {
    pub enabled: bool,
    /// Where the counters are kept: glue's database tables, or the shop's Redis in Spryker's
    /// own keys (shared with the storefront and PHP Glue).
    pub store: BlockerStore,
    /// `store = "redis"`: the connection.
    pub redis: RedisStoreSettings,
    pub sweep_interval_s: u64,
    /// After a successful login an address is exempt from the account-wide counter of that
    /// username for this long.
    pub trusted_address_s: u64,
    pub agent: BlockRule,
    pub customer: BlockRule,
    pub address: BlockRule,
    pub account: BlockRule,
}

/// Where the security blocker keeps its counters (`security_blocker.store`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum BlockerStore {
    /// glue's tables in its database (every instance on that database shares them).
    #[default]
    Database,
    /// The shop's Redis (`SECURITY_BLOCKER_REDIS`), in Spryker's `kv:{type}:{ip}:{account}` keys.
    Redis,
}

impl TryFrom<String> for BlockerStore {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        one_of(
            &value,
            &[
                ("database", BlockerStore::Database),
                ("redis", BlockerStore::Redis),
            ],
        )
    }
}

/// `[security_blocker.redis]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStoreSettings {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS); may hold a password.
    pub url: Secret,
    pub pool_size: u32,
    pub connect_timeout_ms: u64,
    /// Bounds every command (read and write timeouts); a login past it answers 503.
    pub command_timeout_ms: u64,
    /// The prefix of glue's own keys (reservations, the per-address and per-account counters,
    /// trusted addresses); Spryker's keys are always `kv:…`.
    pub key_prefix: String,
}

/// `attempts` failures within `window_s` seconds block the key for `block_s` seconds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRule {
    pub attempts: u32,
    pub window_s: u64,
    pub block_s: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration error: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration error: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The `GLUE_…` variables of the project that are not settings (`GLUE__SECTION__KEY` are): the
/// environment, the log format and an extra config file glue reads, and the variables its tests
/// and CI scripts export. Any other `GLUE_…` variable is refused at start-up: it is a setting
/// misspelt (`GLUE_OAUTH__…` with one underscore, `GLUE_DATABASE_SCHEMA_OWNER`) that would
/// otherwise be silently ignored.
pub const PROJECT_VARIABLES: &[&str] = &[
    "GLUE_ENV",
    "GLUE_LOG_FORMAT",
    "GLUE_CONFIG_FILE",
    "GLUE_TEST_DATABASE_URL",
    "GLUE_TEST_MYSQL_URL",
    "GLUE_TEST_REDIS_URL",
    "GLUE_TEST_AIOSMTPD",
    "GLUE_BASE",
];

/// A load error about an unknown key, said in the user's words: the `GLUE__…` variable that
/// introduced the key is named (`GLUE__DATABSE__SCHEMA_OWNER`), not only the field.
fn name_the_variable(error: config::ConfigError, names: &[String]) -> SettingsError {
    let text = error.to_string();
    let unknown = text
        .split("unknown field `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .map(str::to_ascii_lowercase);
    let variable = unknown.and_then(|field| {
        names.iter().find(|name| {
            name.strip_prefix("GLUE__").is_some_and(|path| {
                path.split("__")
                    .any(|part| part.to_ascii_lowercase() == field)
            })
        })
    });
    match variable {
        Some(name) => invalid(
            name,
            format!("names no setting ({text}); `glue config show` lists every setting"),
        ),
        None => SettingsError::Load(error),
    }
}

/// True for the variables Kubernetes sets for every service of a namespace whose name starts
/// with `glue` (`GLUE_SERVICE_HOST=10.0.0.7`, `GLUE_STOREFRONT_SERVICE_PORT_HTTP=80`,
/// `GLUE_PORT=tcp://10.0.0.7:80`, `GLUE_PORT_80_TCP_ADDR=10.0.0.7`, …) and Docker's legacy links
/// (`GLUE_NAME=/web/glue`, `GLUE_ENV_…`), told by their names *and* values: they are the
/// platform's, not misspelt settings (`GLUE_METRICS_PORT=9100` is not a link's value).
fn is_service_link_variable(name: &str, value: &str) -> bool {
    let address = |v: &str| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
    };
    let number = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let url = |v: &str| {
        ["tcp://", "udp://", "sctp://"]
            .iter()
            .any(|p| v.starts_with(p))
    };
    if name.contains("_ENV_") {
        return true;
    }
    if name.ends_with("_SERVICE_HOST") {
        return address(value);
    }
    if name.contains("_SERVICE_PORT") {
        return number(value);
    }
    if name.ends_with("_NAME") {
        return value.starts_with('/');
    }
    if name.ends_with("_PORT") {
        return url(value);
    }
    // `…_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]`
    name.match_indices("_PORT_").any(|(at, _)| {
        let mut parts = name[at + "_PORT_".len()..].splitn(3, '_');
        let port = parts.next().unwrap_or("");
        let protocol = parts.next().unwrap_or("");
        number(port)
            && matches!(protocol, "TCP" | "UDP" | "SCTP")
            && match parts.next() {
                None => url(value),
                Some("PROTO") => matches!(value, "tcp" | "udp" | "sctp"),
                Some("PORT") => number(value),
                Some("ADDR") => address(value),
                Some(_) => false,
            }
    })
}

/// Refuses a `GLUE_…` variable among `variables` (name, value) that is neither a setting nor in
/// [`PROJECT_VARIABLES`] (nor a platform's service link), naming it and the form settings take.
pub fn check_variable_names<'a>(
    variables: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), SettingsError> {
    for (name, value) in variables {
        // A double underscore is a setting's separator, never part of a platform's variable.
        if name.starts_with("GLUE_")
            && !name.starts_with("GLUE__")
            && !PROJECT_VARIABLES.contains(&name)
            && (name.contains("__") || !is_service_link_variable(name, value))
        {
            return Err(invalid(
                name,
                format!(
                    "is not a setting: settings are GLUE__SECTION__KEY, with two underscores after GLUE and between the parts (e.g. GLUE__DATABASE__SCHEMA_OWNER); the other GLUE_ variables are {}",
                    PROJECT_VARIABLES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// True for `*` or an origin `http(s)://host[:port]` (a trailing `/` is allowed).
pub fn is_valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' '])
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

/// Parses `10.0.0.1` or `10.0.0.0/8` (IPv4 or IPv6) into a network.
fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

/// Ten years: far beyond any sensible lifetime, and keeps date arithmetic in range.
const MAX_TTL_S: u64 = 10 * 366 * 86_400;

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

impl Settings {
    /// `glue.search_concurrency` resolved: 0 = half the pool (at least 1).
    pub fn search_concurrency(&self) -> usize {
        match self.glue.search_concurrency {
            0 => (self.database.pool_size as usize / 2).max(1),
            n => n as usize,
        }
    }

    /// Loads the layers for the environment named by `GLUE_ENV`.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_for(Environment::from_env()?)
    }

    /// Loads the layers for `environment`, reading the process environment for overrides.
    pub fn load_for(environment: Environment) -> Result<Self, SettingsError> {
        let variables: Vec<(String, String)> = std::env::vars_os()
            .map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            })
            .collect();
        check_variable_names(variables.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
        let names: Vec<String> = variables.into_iter().map(|(name, _)| name).collect();
        let mut builder = Config::builder()
            .add_source(File::from_str(
                include_str!("../config/default.toml"),
                FileFormat::Toml,
            ))
            .add_source(File::from_str(environment.layer(), FileFormat::Toml));
        if let Ok(extra) = std::env::var("GLUE_CONFIG_FILE") {
            builder = builder.add_source(File::with_name(&extra).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("GLUE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("glue.cors_allowed_origins")
                .with_list_parse_key("glue.cors_allowed_headers")
                .with_list_parse_key("glue.trusted_proxies")
                .with_list_parse_key("oauth.verification_key_paths"),
        );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            builder = builder.set_override("database.url", url)?;
        }
        let mut settings: Settings = builder
            .build()?
            .try_deserialize()
            .map_err(|e| name_the_variable(e, &names))?;
        settings.environment = environment;
        if settings.oauth.key_source == KeySource::SprykerEnv {
            let env = SprykerEnv::read(|name| std::env::var(name).ok())?;
            settings.oauth.client_id = env.client_id.clone();
            settings.oauth.spryker_env = Some(env);
        }

        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that deserialize fine but cannot work.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.validate_database()?;
        self.validate_http()?;
        self.validate_oauth()?;
        self.validate_mail()?;
        self.validate_security_blocker()
    }

    /// `[mail]` and the email method's rate limit.
    fn validate_mail(&self) -> Result<(), SettingsError> {
        if !(1..=300_000).contains(&self.mail.timeout_ms) {
            return Err(invalid(
                "mail.timeout_ms",
                "must be between 1 and 300000 (five minutes)",
            ));
        }
        if self.oauth.mfa_email_interval_s == 0 {
            return Err(invalid(
                "oauth.mfa_email_interval_s",
                "must be at least 1: without it a login could mail a code per request",
            ));
        }
        Ok(())
    }

    /// `[database]`.
    fn validate_database(&self) -> Result<(), SettingsError> {
        if let Err(e) = crate::db::Backend::of_url(self.database.url.expose()) {
            return Err(invalid("database.url", e.to_string()));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        if self.database.statement_timeout_ms == 0 {
            return Err(invalid(
                "database.statement_timeout_ms",
                "must be at least 1",
            ));
        }
        if self.database.startup_wait_s > 3600 {
            return Err(invalid(
                "database.startup_wait_s",
                "must be at most 3600 (an hour)",
            ));
        }
        if self.database.connect_timeout_ms == 0 {
            return Err(invalid("database.connect_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }

    /// `[server]` and `[glue]`: limits, URLs, CORS, proxies.
    fn validate_http(&self) -> Result<(), SettingsError> {
        if self.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be at least 1"));
        }
        if !(1..=300).contains(&self.server.body_timeout_s) {
            return Err(invalid(
                "server.body_timeout_s",
                "must be between 1 and 300",
            ));
        }
        if self.server.max_connections < self.worker_count() {
            return Err(invalid(
                "server.max_connections",
                "must be at least one per worker (server.workers)",
            ));
        }
        for (key, url) in [
            ("glue.base_url", &self.glue.base_url),
            ("oauth.issuer", &self.issuer().to_string()),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(key, "must be an http:// or https:// URL"));
            }
        }
        if self.glue.locale.trim().is_empty() {
            return Err(invalid("glue.locale", "must not be empty"));
        }
        if self.glue.search_concurrency >= self.database.pool_size.max(1) {
            return Err(invalid(
                "glue.search_concurrency",
                "must be below database.pool_size (0 = half of it), so that searches never take every connection",
            ));
        }
        if self.glue.search_queue_ms > 60_000 {
            return Err(invalid("glue.search_queue_ms", "must be at most 60000"));
        }
        if self.glue.max_page_limit < 1 {
            return Err(invalid("glue.max_page_limit", "must be at least 1"));
        }
        if !(1..=100_000).contains(&self.glue.search_count_limit) {
            return Err(invalid(
                "glue.search_count_limit",
                "must be between 1 and 100000",
            ));
        }
        for origin in &self.glue.cors_allowed_origins {
            if !is_valid_origin(origin) {
                return Err(invalid(
                    "glue.cors_allowed_origins",
                    format!("{origin:?} is not an origin like https://shop.example or http://localhost:3000 (or \"*\")"),
                ));
            }
        }
        for name in &self.glue.cors_allowed_headers {
            if actix_web::http::header::HeaderName::try_from(name.as_str()).is_err() {
                return Err(invalid(
                    "glue.cors_allowed_headers",
                    format!("{name:?} is not a header name"),
                ));
            }
        }
        for proxy in &self.glue.trusted_proxies {
            if parse_network(proxy).is_none() {
                return Err(invalid(
                    "glue.trusted_proxies",
                    format!("{proxy:?} is not an IP address or CIDR network"),
                ));
            }
        }
        Ok(())
    }

    /// `[oauth]`: lifetimes, bcrypt, the grace window, password rules.
    fn validate_oauth(&self) -> Result<(), SettingsError> {
        if self.oauth.client_id.is_empty() {
            return Err(invalid("oauth.client_id", "must not be empty"));
        }
        if !(1..=MAX_TTL_S).contains(&self.oauth.access_token_ttl_s) {
            return Err(invalid(
                "oauth.access_token_ttl_s",
                "must be between 1 s and 10 years",
            ));
        }
        if !(1..=MAX_TTL_S).contains(&self.oauth.refresh_token_ttl_s) {
            return Err(invalid(
                "oauth.refresh_token_ttl_s",
                "must be between 1 s and 10 years",
            ));
        }
        if !(4..=31).contains(&self.oauth.bcrypt_cost) {
            return Err(invalid("oauth.bcrypt_cost", "must be between 4 and 31"));
        }
        if self.oauth.issued_at_backdate_s > 60 {
            return Err(invalid(
                "oauth.issued_at_backdate_s",
                "at most 60 (a second or two covers the clock skew it is for)",
            ));
        }
        if self.oauth.refresh_reuse_grace_s > 300 {
            return Err(invalid(
                "oauth.refresh_reuse_grace_s",
                "must be at most 300 (5 minutes)",
            ));
        }
        if self.oauth.refresh_reuse_grace_s > 0 && self.oauth.refresh_reuse_grace_uses == 0 {
            return Err(invalid(
                "oauth.refresh_reuse_grace_uses",
                "must be at least 1 when oauth.refresh_reuse_grace_s is set",
            ));
        }
        if self.oauth.bcrypt_queue_depth == 0 {
            return Err(invalid("oauth.bcrypt_queue_depth", "must be at least 1"));
        }
        if !(1..=72).contains(&self.oauth.password_min_length) {
            return Err(invalid(
                "oauth.password_min_length",
                "must be between 1 and 72",
            ));
        }
        if self.environment == Environment::Production && self.oauth.password_min_length < 12 {
            return Err(invalid(
                "oauth.password_min_length",
                "must be at least 12 in production",
            ));
        }
        if !(0..=19).contains(&self.oauth.bcrypt_nice) {
            return Err(invalid("oauth.bcrypt_nice", "must be between 0 and 19"));
        }
        if self.environment == Environment::Production {
            if self.oauth.leeway_s > 300 {
                return Err(invalid(
                    "oauth.leeway_s",
                    "must be at most 300 (5 minutes) in production",
                ));
            }
            if self.oauth.bcrypt_queue_depth > 1024 {
                return Err(invalid(
                    "oauth.bcrypt_queue_depth",
                    "must be at most 1024 in production (a deeper queue only makes waiting logins time out)",
                ));
            }
            if !self.oauth.bcrypt_pad_to_stored_cost {
                return Err(invalid(
                    "oauth.bcrypt_pad_to_stored_cost",
                    "must be true in production (otherwise a failure's duration tells whether the account exists)",
                ));
            }
        }
        if self.environment == Environment::Production && self.oauth.bcrypt_cost < 10 {
            return Err(invalid(
                "oauth.bcrypt_cost",
                "must be at least 10 in production",
            ));
        }
        Ok(())
    }

    /// `[security_blocker]`: every rule's attempts, window and block.
    fn validate_security_blocker(&self) -> Result<(), SettingsError> {
        if self.environment == Environment::Production && !self.security_blocker.enabled {
            return Err(invalid(
                "security_blocker.enabled",
                "must be true in production (failed logins would be unlimited)",
            ));
        }
        if !(1..=MAX_TTL_S).contains(&self.security_blocker.trusted_address_s) {
            return Err(invalid(
                "security_blocker.trusted_address_s",
                "must be between 1 s and 10 years",
            ));
        }
        for (key, rule) in [
            ("security_blocker.agent", &self.security_blocker.agent),
            ("security_blocker.customer", &self.security_blocker.customer),
            ("security_blocker.address", &self.security_blocker.address),
            ("security_blocker.account", &self.security_blocker.account),
        ] {
            if rule.attempts == 0 || rule.attempts > 1_000_000 {
                return Err(invalid(
                    &format!("{key}.attempts"),
                    "must be between 1 and 1000000",
                ));
            }
            if !(1..=MAX_TTL_S).contains(&rule.window_s) {
                return Err(invalid(
                    &format!("{key}.window_s"),
                    "must be between 1 s and 10 years",
                ));
            }
            if !(1..=MAX_TTL_S).contains(&rule.block_s) {
                return Err(invalid(
                    &format!("{key}.block_s"),
                    "must be between 1 s and 10 years",
                ));
            }
        }
        Ok(())
    }

    /// `glue.trusted_proxies` as networks (validated at load time).
    pub fn trusted_proxy_networks(&self) -> Vec<ipnet::IpNet> {
        self.glue
            .trusted_proxies
            .iter()
            .filter_map(|entry| parse_network(entry))
            .collect()
    }

    /// The issuer of every token: `oauth.issuer`, or `glue.base_url` when that is empty.
    pub fn issuer(&self) -> &str {
        if self.oauth.issuer.trim().is_empty() {
            self.base_url()
        } else {
            &self.oauth.issuer
        }
    }

    /// `base_url` without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.glue.base_url.trim_end_matches('/')
    }

    /// Workers for the HTTP server: the setting, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.server.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.server.workers
        }
    }

    /// Open connections each worker accepts: `server.max_connections` divided among the workers
    /// (rounded down, at least one), so the process never holds more than the setting.
    pub fn max_connections_per_worker(&self) -> usize {
        (self.server.max_connections / self.worker_count()).max(1)
    }

    /// Concurrent bcrypt verifications: the setting, or one per core.
    pub fn bcrypt_concurrency(&self) -> usize {
        if self.oauth.bcrypt_concurrency == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.oauth.bcrypt_concurrency
        }
    }
}

/// Which bcrypt implementation verifies logins (`oauth.bcrypt_kernel`; the kernels themselves
/// are in `password`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum BcryptKernel {
    /// bcrypt-rust: logins waiting together are verified in SIMD lanes (AVX2/AVX-512/NEON,
    /// chosen at run time), a lone login with the scalar kernel.
    #[default]
    Batch,
    /// bcrypt-rust's scalar kernel only (the switch that turns batching off).
    Scalar,
    /// The `bcrypt` crate, glue's original implementation.
    Reference,
}

/// Which SIMD kernel bcrypt-rust verifies batched logins with (`oauth.bcrypt_simd`). bcrypt-rust
/// settles its kernel once per process; `password::pin_simd` applies this choice before it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum BcryptSimd {
    /// The widest of bcrypt-rust's standard kernels this CPU runs (AVX-512, else AVX2, else NEON
    /// or SSE4.1; its 12-lane AVX2 kernel only by name): no timing, the same at every start.
    #[default]
    Widest,
    /// bcrypt-rust's contest at start-up (cost 4, 48 hashes, three timed rounds per width).
    Measure,
    /// This kernel; `glue serve` refuses to start where the CPU cannot run it.
    Kernel(bcrypt_rust::Backend),
}

impl BcryptSimd {
    /// The SIMD kernels this CPU runs, the most lanes first.
    pub fn available() -> Vec<bcrypt_rust::Backend> {
        let mut kernels: Vec<bcrypt_rust::Backend> = bcrypt_rust::Backend::ALL
            .iter()
            .copied()
            .filter(|b| b.lanes() > 1 && b.is_available())
            .collect();
        kernels.sort_by_key(|b| std::cmp::Reverse(b.lanes()));
        kernels
    }

    /// The kernel this choice pins, or `None` for `measure` (bcrypt-rust decides).
    pub fn kernel(self) -> Option<bcrypt_rust::Backend> {
        use bcrypt_rust::Backend;
        match self {
            BcryptSimd::Measure => None,
            BcryptSimd::Kernel(kernel) => Some(kernel),
            // bcrypt-rust's static order; its 12-lane AVX2 kernel is only ever a measured pick.
            BcryptSimd::Widest => Some(
                [
                    Backend::Avx512,
                    Backend::Avx2,
                    Backend::Neon,
                    Backend::Sse41,
                ]
                .into_iter()
                .find(|b| b.is_available())
                .unwrap_or(Backend::Scalar),
            ),
        }
    }
}

impl TryFrom<String> for BcryptSimd {
    type Error = String;
    /// A kernel is checked by name only: whether this CPU runs it is `glue serve`'s check
    /// (`password::pin_simd`), so that one configuration serves hosts of several kinds and the
    /// other commands run anywhere.
    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "widest" => return Ok(BcryptSimd::Widest),
            "measure" => return Ok(BcryptSimd::Measure),
            _ => {}
        }
        // The kernels of CPUs glue runs on (WebAssembly's is not one).
        let kernels = || {
            bcrypt_rust::Backend::ALL
                .iter()
                .copied()
                .filter(|b| b.lanes() > 1 && b.name() != "wasm128")
        };
        kernels()
            .find(|b| b.name() == value)
            .map(BcryptSimd::Kernel)
            .ok_or_else(|| {
                let names: Vec<String> = kernels().map(|b| format!("{:?}", b.name())).collect();
                format!(
                    "{value:?} is not one of \"widest\", \"measure\", {}",
                    names.join(", ")
                )
            })
    }
}

impl From<BcryptSimd> for String {
    fn from(simd: BcryptSimd) -> String {
        match simd {
            BcryptSimd::Widest => "widest".into(),
            BcryptSimd::Measure => "measure".into(),
            BcryptSimd::Kernel(kernel) => kernel.name().into(),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn bcrypt_simd_names_a_kernel_and_says_it_back() {
        use super::BcryptSimd;
        let parse = |v: &str| BcryptSimd::try_from(v.to_string());
        assert_eq!(parse("widest"), Ok(BcryptSimd::Widest));
        assert_eq!(parse("measure"), Ok(BcryptSimd::Measure));
        assert_eq!(BcryptSimd::default(), BcryptSimd::Widest);
        assert_eq!(BcryptSimd::Measure.kernel(), None);
        let available = BcryptSimd::available();
        for (kernel, narrower) in available.iter().zip(available.iter().skip(1)) {
            assert!(kernel.lanes() > narrower.lanes(), "{available:?}");
        }
        for &kernel in &available {
            let simd = parse(kernel.name()).unwrap();
            assert_eq!(simd, BcryptSimd::Kernel(kernel));
            assert_eq!(simd.kernel(), Some(kernel));
            assert_eq!(String::from(simd), kernel.name());
        }
        // The widest, by bcrypt-rust's own order; its 12-lane AVX2 kernel only if measured.
        let widest = BcryptSimd::Widest.kernel().unwrap();
        assert!(widest.is_available() && widest.name() != "avx2_12");
        assert!(available
            .iter()
            .all(|k| k.name() == "avx2_12" || k.lanes() <= widest.lanes()));
        // Not a SIMD kernel (that is oauth.bcrypt_kernel = "scalar"), an unknown one.
        for bad in ["scalar", "avx1024", "", "AVX2", "widest "] {
            let error = parse(bad).unwrap_err();
            assert!(
                error.contains("is not one of \"widest\", \"measure\""),
                "{error}"
            );
        }
        // Another CPU's kernel is a kernel (a configuration may serve hosts of several kinds):
        // `glue serve` refuses it where it cannot run (`password::pin_simd`).
        for foreign in bcrypt_rust::Backend::ALL
            .iter()
            .filter(|b| b.lanes() > 1 && !b.is_available() && b.name() != "wasm128")
        {
            assert_eq!(parse(foreign.name()), Ok(BcryptSimd::Kernel(*foreign)));
        }
        assert!(parse("wasm128").is_err());
    }

    #[test]
    fn glue_variables_are_settings_the_projects_own_or_a_services_links() {
        use super::check_variable_names;
        for ok in [
            ("GLUE__OAUTH__LEEWAY_S", "5"),
            ("GLUE_ENV", "test"),
            ("GLUE_LOG_FORMAT", "json"),
            ("GLUE_SERVICE_HOST", "10.0.0.7"),
            ("GLUE_SERVICE_PORT", "80"),
            ("GLUE_SERVICE_PORT_HTTP", "80"),
            ("GLUE_PORT", "tcp://10.0.0.7:80"),
            ("GLUE_PORT_8080_TCP", "tcp://10.0.0.7:8080"),
            ("GLUE_PORT_8080_TCP_ADDR", "10.0.0.7"),
            ("GLUE_STOREFRONT_SERVICE_HOST", "fd00::7"),
            ("GLUE_STOREFRONT_PORT_443_TCP_PROTO", "tcp"),
            ("GLUE_NAME", "/web/glue"),
            ("GLUE_ENV_FOO", "bar"),
            ("GLUEY_THING", "x"),
        ] {
            assert!(check_variable_names([ok]).is_ok(), "{ok:?}");
        }
        for refused in [
            ("GLUE_OAUTH__REFRESH_REUSE_GRACE_S", "5"),
            ("GLUE_DATABASE_SCHEMA_OWNER", "spryker"),
            ("GLUE_PORT_HTTP", "80"),
            ("GLUE_PORT_80_XYZ", "x"),
            ("GLUE_OAUTH__LEEWAY_S", "5"),
            ("GLUE_SECURITY_BLOCKER_ENABLED", "false"),
            ("GLUE_METRICS_PORT", "9100"),
            ("GLUE_SERVER_PORT", "8080"),
            ("GLUE_DATABASE_NAME", "shop"),
        ] {
            assert!(check_variable_names([refused]).is_err(), "{refused:?}");
        }
    }

    use super::is_valid_origin;

    #[test]
    fn an_origin_is_a_scheme_and_an_authority() {
        for good in [
            "*",
            "https://shop.example",
            "http://localhost:3000",
            "https://a.b/",
        ] {
            assert!(is_valid_origin(good), "{good}");
        }
        for bad in [
            "shop.example",
            "https://",
            "https://shop.example/path",
            "ftp://x",
            "https://a b",
        ] {
            assert!(!is_valid_origin(bad), "{bad}");
        }
    }
}
