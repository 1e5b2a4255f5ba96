//! The security blocker's counters on the shop's Redis (`security_blocker.store = "redis"`),
//! counted together with Spryker's own `spryker/security-blocker`.
//!
//! **Spryker's keys.** Spryker's storefront and PHP Glue count failed logins under
//! `kv:{type}:{ip}:{account}` (type `agent` or `customer`, the account as the client typed it),
//! value = failures so far: the first failure `SETEX key ttl 1`, the next ones `INCR` while
//! below the limit, the failure that reaches it `SETEX key block_for n`; a login is blocked while
//! the value is at least the number of attempts. glue reads those keys and writes its settled
//! failures into them with exactly these semantics, under the account as typed (what Spryker
//! reads) and as the database folds it (so that spellings of one account cannot split the
//! count); a block either side sets holds on both.
//!
//! **glue's own keys** (under `security_blocker.redis.key_prefix`, never in Spryker's `kv:`
//! space): the same three counters as the database store — per (address, account), per address,
//! per account — as hashes `{attempts, failures, blocked}` that expire with their window (or
//! block), and trusted addresses. `attempts` are places taken by attempts not yet settled plus
//! settled failures: a reservation is refused when a counter is blocked or full, or when the
//! places in flight plus Spryker's settled failures would exceed the limit. Each step is one Lua
//! script, so a reservation is atomic across every instance sharing the Redis. PHP refresh tokens
//! count only in glue's own keys.
//!
//! Keys of glue's own are SHA-256 of their parts (no usernames in them); Spryker's keys carry the
//! account as typed because that is their format.

use std::net::IpAddr;
use std::time::Duration;

use redis::{ConnectionLike, Script};

use super::{BlockScope, Blocked, EntityType, Reservation};
use crate::settings::{BlockRule, RedisStoreSettings};

/// Why the store could not answer (the login is answered 503 + Retry-After: fail closed).
#[derive(Debug, thiserror::Error)]
#[error("the security blocker's Redis store is unavailable")]
pub struct StoreUnavailable(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl From<redis::RedisError> for StoreUnavailable {
    fn from(e: redis::RedisError) -> Self {
        StoreUnavailable(Box::new(e))
    }
}

impl From<r2d2::Error> for StoreUnavailable {
    fn from(e: r2d2::Error) -> Self {
        StoreUnavailable(Box::new(e))
    }
}

/// Opens connections with the configured connect timeout and bounds every command.
#[derive(Debug)]
struct Connector {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl r2d2::ManageConnection for Connector {
    type Connection = redis::Connection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<redis::Connection, redis::RedisError> {
        let conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.command_timeout))?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut redis::Connection) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query::<String>(conn).map(|_| ())
    }

    fn has_broken(&self, conn: &mut redis::Connection) -> bool {
        !conn.is_open()
    }
}

/// Checks (and with `ARGV[1] = "reserve"`, takes a place on) an attempt's counters.
/// KEYS: per-(address, account), per-address, per-account counters, the trust key, then the
/// Spryker keys. ARGV: mode, the number of Spryker keys, then limit, window ms and block ms of
/// each counter. Returns `{scope, retry_ms}` when refused (scope 0 address, 1 account), else
/// `{-1, trusted}`.
const ADMIT: &str = r#"
local mode = ARGV[1]
local nspryker = tonumber(ARGV[2])
local trusted = redis.call('EXISTS', KEYS[4]) == 1
local limit1 = tonumber(ARGV[3])
local scope, retry = -1, -1
local function consider(s, ms)
  if ms > retry then scope, retry = s, ms end
end
local function remaining(key, fallback)
  local ms = redis.call('PTTL', key)
  if ms < 0 then return fallback end
  return ms
end
local settled = 0
for i = 5, 4 + nspryker do
  local v = tonumber(redis.call('GET', KEYS[i])) or 0
  if v > settled then settled = v end
  if v >= limit1 then consider(0, remaining(KEYS[i], tonumber(ARGV[5]))) end
end
for c = 1, 3 do
  if not (c == 3 and trusted) then
    local limit = tonumber(ARGV[3 * c])
    local block = tonumber(ARGV[3 * c + 2])
    local s = 0
    if c == 3 then s = 1 end
    local h = redis.call('HMGET', KEYS[c], 'attempts', 'failures', 'blocked')
    local attempts = tonumber(h[1]) or 0
    local failures = tonumber(h[2]) or 0
    if h[3] == '1' then
      consider(s, remaining(KEYS[c], block))
    elseif attempts + 1 > limit then
      consider(s, block)
    elseif c == 1 and (attempts - failures) + settled + 1 > limit then
      consider(s, block)
    end
  end
end
if scope >= 0 then return {scope, retry} end
if mode == 'reserve' then
  for c = 1, 3 do
    if not (c == 3 and trusted) then
      if redis.call('HINCRBY', KEYS[c], 'attempts', 1) == 1 then
        redis.call('PEXPIRE', KEYS[c], tonumber(ARGV[3 * c + 1]))
      end
    end
  end
end
if trusted then return {-1, 1} end
return {-1, 0}
"#;

/// Settles a failure. KEYS: the reservation's counters, then the Spryker keys. ARGV: the number
/// of counters, then limit, window ms and block ms of each counter, then Spryker's limit, ttl s
/// and block s.
const FAIL: &str = r#"
local n = tonumber(ARGV[1])
for c = 1, n do
  local key = KEYS[c]
  local limit = tonumber(ARGV[3 * c - 1])
  local existed = redis.call('EXISTS', key) == 1
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  if not existed then
    redis.call('HSET', key, 'attempts', 1)
    redis.call('PEXPIRE', key, tonumber(ARGV[3 * c]))
  end
  if failures >= limit and redis.call('HGET', key, 'blocked') ~= '1' then
    redis.call('HSET', key, 'blocked', '1')
    redis.call('PEXPIRE', key, tonumber(ARGV[3 * c + 1]))
  end
end
local base = 3 * n + 2
local limit = tonumber(ARGV[base])
local ttl = tonumber(ARGV[base + 1])
local block = tonumber(ARGV[base + 2])
for i = n + 1, #KEYS do
  -- Spryker's SecurityBlockerStorageWriter::updateStorage, to the letter.
  local existing = tonumber(redis.call('GET', KEYS[i])) or 0
  local new = existing + 1
  if existing > 0 and new < limit then
    redis.call('INCR', KEYS[i])
  elseif existing == 0 then
    redis.call('SETEX', KEYS[i], ttl, tostring(new))
  else
    redis.call('SETEX', KEYS[i], block, tostring(new))
  end
end
return 1
"#;

/// Gives the reservation's places back, and with ARGV[1] > 0 trusts the address for that many
/// ms. KEYS: the counters, then the trust key.
const GIVE_BACK: &str = r#"
local n = #KEYS - 1
for c = 1, n do
  if (tonumber(redis.call('HGET', KEYS[c], 'attempts')) or 0) > 0 then
    redis.call('HINCRBY', KEYS[c], 'attempts', -1)
  end
end
local trust_ms = tonumber(ARGV[1])
if trust_ms > 0 then
  redis.call('SET', KEYS[#KEYS], '1', 'PX', trust_ms)
end
return 1
"#;

pub struct RedisStore {
    pool: r2d2::Pool<Connector>,
    prefix: String,
    admit: Script,
    fail: Script,
    give_back: Script,
}

/// Refuses a URL glue cannot serve as the blocker's store, naming the setting.
pub fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("redis" | "rediss") => {}
        Some(s) if s.contains("sentinel") => {
            return Err("security_blocker.redis.url: Redis Sentinel is not supported: give the address of the primary (redis://host:6379/0)".into())
        }
        Some(s) if s.contains("cluster") => {
            return Err("security_blocker.redis.url: Redis Cluster is not supported: give one server's address (redis://host:6379/0)".into())
        }
        _ => {
            return Err("security_blocker.redis.url: expected redis://[user:password@]host[:port][/db] or rediss://… (TLS)".into())
        }
    }
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .unwrap_or("");
    let hosts = authority.rsplit('@').next().unwrap_or("");
    if hosts.contains(',') {
        return Err("security_blocker.redis.url: several hosts (a cluster or Sentinel list) are not supported: give one server's address".into());
    }
    redis::Client::open(url).map(|_| ()).map_err(|e| {
        format!(
            "security_blocker.redis.url is not a Redis URL: {}",
            e.kind_description()
        )
    })
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for redis::RedisError {
    /// The error's kind, never its text (which may quote the URL and its password).
    fn kind_description(&self) -> String {
        format!("{:?}", self.kind())
    }
}

impl RedisStore {
    /// A store on `settings.url`; connections are opened when first needed, so glue starts
    /// (and serves everything but logins) while Redis is down.
    pub fn new(settings: &RedisStoreSettings) -> Result<Self, String> {
        let url = settings.url.expose();
        check_url(url)?;
        if url.to_ascii_lowercase().starts_with("rediss://") {
            // rustls needs its process-wide provider (aws-lc, which signs glue's tokens too).
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let client = redis::Client::open(url).map_err(|e| {
            format!(
                "security_blocker.redis.url is not a Redis URL: {}",
                e.kind_description()
            )
        })?;
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(Duration::from_millis(settings.connect_timeout_ms.max(1)))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Connector {
                client,
                connect_timeout: Duration::from_millis(settings.connect_timeout_ms.max(1)),
                command_timeout: Duration::from_millis(settings.command_timeout_ms.max(1)),
            });
        Ok(RedisStore {
            pool,
            prefix: settings.key_prefix.clone(),
            admit: Script::new(ADMIT),
            fail: Script::new(FAIL),
            give_back: Script::new(GIVE_BACK),
        })
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<Connector>, StoreUnavailable> {
        Ok(self.pool.get()?)
    }

    /// Whether the store answers (`/readyz` reports it; it never takes an instance out of
    /// rotation, since every instance shares it).
    pub fn ping(&self) -> Result<(), StoreUnavailable> {
        let mut conn = self.connection()?;
        redis::cmd("PING").query::<String>(&mut *conn)?;
        Ok(())
    }

    fn own(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }

    /// Spryker's keys of an attempt: `kv:{type}:{ip}:{account}` as typed and as folded.
    fn spryker_keys(
        entity: EntityType,
        ip: Option<IpAddr>,
        typed: &str,
        folded: &str,
    ) -> Vec<String> {
        let Some(kind) = entity.spryker_type() else {
            return Vec::new();
        };
        // Symfony's getClientIp(): IPv4 dotted, IPv6 in its compressed form; none → "".
        // An IPv4 client of a dual-stack listener (::ffff:a.b.c.d) is written as a.b.c.d.
        let address = ip
            .map(|ip| ip.to_canonical().to_string())
            .unwrap_or_default();
        let mut keys = vec![format!("kv:{kind}:{address}:{typed}")];
        let folded = format!("kv:{kind}:{address}:{folded}");
        if folded != keys[0] {
            keys.push(folded);
        }
        keys
    }

    /// Checks, or (`reserve`) checks and takes the places of, `reservation`'s counters.
    /// Returns the refusal, or whether the address is trusted.
    pub fn admit(
        &self,
        reservation: &Reservation,
        ip: Option<IpAddr>,
        typed: &str,
        folded: &str,
        reserve: bool,
    ) -> Result<Result<bool, Blocked>, StoreUnavailable> {
        let mut invocation = self.admit.prepare_invoke();
        for counter in &reservation.counters {
            invocation.key(self.own(counter.kind, &counter.key));
        }
        invocation.key(self.own(reservation.entity.trust_kind(), &reservation.trust_key));
        let spryker = Self::spryker_keys(reservation.entity, ip, typed, folded);
        for key in &spryker {
            invocation.key(key);
        }
        invocation
            .arg(if reserve { "reserve" } else { "check" })
            .arg(spryker.len());
        for counter in &reservation.counters {
            push_rule(&mut invocation, counter.rule);
        }
        let mut conn = self.connection()?;
        let (scope, value): (i64, i64) = invocation.invoke(&mut *conn)?;
        if scope < 0 {
            return Ok(Ok(value == 1));
        }
        let scope = if scope == 1 {
            BlockScope::Account
        } else {
            BlockScope::Address
        };
        let rule = match scope {
            BlockScope::Account => reservation.counters[2].rule,
            BlockScope::Address => reservation.counters[0].rule,
        };
        Ok(Err(Blocked {
            scope,
            block_minutes: super::minutes(rule.block_s),
            retry_after_s: u64::try_from(value).unwrap_or(0) / 1000 + 1,
        }))
    }

    /// Settles a failure on the reservation's counters and on Spryker's keys.
    pub fn fail(
        &self,
        reservation: &Reservation,
        ip: Option<IpAddr>,
        typed: &str,
        folded: &str,
    ) -> Result<(), StoreUnavailable> {
        let mut invocation = self.fail.prepare_invoke();
        for counter in &reservation.counters {
            invocation.key(self.own(counter.kind, &counter.key));
        }
        let spryker = Self::spryker_keys(reservation.entity, ip, typed, folded);
        for key in &spryker {
            invocation.key(key);
        }
        invocation.arg(reservation.counters.len());
        for counter in &reservation.counters {
            push_rule(&mut invocation, counter.rule);
        }
        let per_user = reservation.per_user_rule;
        invocation
            .arg(per_user.attempts)
            .arg(per_user.window_s.max(1))
            .arg(per_user.block_s.max(1));
        let mut conn = self.connection()?;
        invocation.invoke::<i64>(&mut *conn)?;
        Ok(())
    }

    /// Gives the reservation's places back; with `trust_s`, trusts its address for so long.
    pub fn give_back(
        &self,
        reservation: &Reservation,
        trust_s: Option<u64>,
    ) -> Result<(), StoreUnavailable> {
        let mut invocation = self.give_back.prepare_invoke();
        for counter in &reservation.counters {
            invocation.key(self.own(counter.kind, &counter.key));
        }
        invocation.key(self.own(reservation.entity.trust_kind(), &reservation.trust_key));
        invocation.arg(trust_s.map_or(0, |s| s.saturating_mul(1000)));
        let mut conn = self.connection()?;
        invocation.invoke::<i64>(&mut *conn)?;
        Ok(())
    }
}

fn push_rule(invocation: &mut redis::ScriptInvocation<'_>, rule: BlockRule) {
    invocation
        .arg(rule.attempts)
        .arg(rule.window_s.max(1).saturating_mul(1000))
        .arg(rule.block_s.max(1).saturating_mul(1000));
}
