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

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use redis::{ConnectionLike, Script};

use super::{Blocked, Reservation};
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

impl From<&'static str> for StoreUnavailable {
    fn from(e: &'static str) -> Self {
        StoreUnavailable(e.into())
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

/// How long a reservation holds its place at most (seconds): an attempt is settled long before
/// (a verification waits for at most the bcrypt queue), and a place whose settling was lost
/// (a timeout, a crash) is free again after this, never only when the window ends.
pub const LEASE_S: u64 = 300;

/// Checks (and with `ARGV[1] = "reserve"`, takes a place on) an attempt's counters.
/// KEYS: for each of the three counters (per (address, account), per address, per account) its
/// hash `{failures, blocked}` and its set of places in flight, then the trust key, then the
/// Spryker keys. ARGV: mode, reservation id, lease ms, the number of Spryker keys, then limit,
/// window ms and block ms of each counter. Returns `{source, retry_ms}` when refused (source 0:
/// a Spryker key, 1–3: the counter), else `{-1, trusted}`.
const ADMIT: &str = r#"
local mode, id, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local nspryker = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local trusted = redis.call('EXISTS', KEYS[7]) == 1
local limit1 = tonumber(ARGV[5])
local source, retry = -1, -1
local function consider(s, ms)
  if ms > retry then source, retry = s, ms end
end
local function remaining(key, fallback)
  local ms = redis.call('PTTL', key)
  if ms < 0 then return fallback end
  return ms
end
local settled = 0
for i = 8, 7 + nspryker do
  local v = tonumber(redis.call('GET', KEYS[i])) or 0
  if v > settled then settled = v end
  if v >= limit1 then consider(0, remaining(KEYS[i], tonumber(ARGV[7]))) end
end
for c = 1, 3 do
  if not (c == 3 and trusted) then
    local hash, places = KEYS[2 * c - 1], KEYS[2 * c]
    local limit, block = tonumber(ARGV[2 + 3 * c]), tonumber(ARGV[4 + 3 * c])
    redis.call('ZREMRANGEBYSCORE', places, '-inf', now)
    local inflight = redis.call('ZCARD', places)
    local h = redis.call('HMGET', hash, 'failures', 'blocked')
    local failures = tonumber(h[1]) or 0
    if h[2] == '1' then
      consider(c, remaining(hash, block))
    elseif failures + inflight + 1 > limit then
      consider(c, block)
    elseif c == 1 and inflight + settled + 1 > limit then
      consider(c, block)
    end
  end
end
if source >= 0 then return {source, retry} end
if mode == 'reserve' then
  for c = 1, 3 do
    if not (c == 3 and trusted) then
      local hash, places = KEYS[2 * c - 1], KEYS[2 * c]
      redis.call('ZADD', places, now + lease, id)
      redis.call('PEXPIRE', places, lease)
      if redis.call('EXISTS', hash) == 0 then
        redis.call('HSET', hash, 'failures', 0)
        redis.call('PEXPIRE', hash, tonumber(ARGV[3 + 3 * c]))
      end
    end
  end
end
if trusted then return {-1, 1} end
return {-1, 0}
"#;

/// Settles a failure: the reservation's places go, each counter counts a failure (in the window
/// now running; a counter that reaches its limit is blocked), and Spryker's keys count it as
/// Spryker's writer would. KEYS: hash and places of each of the reservation's counters, then the
/// Spryker keys. ARGV: reservation id, the number of counters, then limit, window ms and block ms
/// of each counter, then Spryker's limit, ttl s and block s.
const FAIL: &str = r#"
local id = ARGV[1]
local n = tonumber(ARGV[2])
for c = 1, n do
  local hash, places = KEYS[2 * c - 1], KEYS[2 * c]
  local limit = tonumber(ARGV[3 * c])
  redis.call('ZREM', places, id)
  if redis.call('EXISTS', hash) == 0 then
    redis.call('HSET', hash, 'failures', 0)
    redis.call('PEXPIRE', hash, tonumber(ARGV[3 * c + 1]))
  end
  local failures = redis.call('HINCRBY', hash, 'failures', 1)
  if failures >= limit and redis.call('HGET', hash, 'blocked') ~= '1' then
    redis.call('HSET', hash, 'blocked', '1')
    redis.call('PEXPIRE', hash, tonumber(ARGV[3 * c + 2]))
  end
end
local base = 3 * n + 3
local limit = tonumber(ARGV[base])
local ttl = tonumber(ARGV[base + 1])
local block = tonumber(ARGV[base + 2])
for i = 2 * n + 1, #KEYS do
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

/// Gives the reservation's places back, and with ARGV[2] > 0 trusts the address for that many
/// ms. KEYS: the places of each counter, then the trust key. ARGV: reservation id, trust ms.
const GIVE_BACK: &str = r#"
for c = 1, #KEYS - 1 do
  redis.call('ZREM', KEYS[c], ARGV[1])
end
local trust_ms = tonumber(ARGV[2])
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
    /// Until when (ms since the epoch) Redis counts as down after a failure: calls answer at
    /// once instead of each waiting for the connect timeout.
    down_until_ms: AtomicI64,
}

/// The longest account name written into Spryker's keys (its `spy_customer.email` column).
const SPRYKER_ACCOUNT_MAX_BYTES: usize = 255;

/// How long Redis counts as down after a failed call.
const BACK_OFF_MS: i64 = 1000;

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
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
        let prefix = settings.key_prefix.trim();
        if prefix.is_empty() || prefix.starts_with("kv:") {
            return Err(format!(
                "security_blocker.redis.key_prefix {prefix:?}: glue's own keys need a prefix of their own, outside Spryker's kv: space (e.g. \"glue:security-blocker:\")"
            ));
        }
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
            // A dead connection shows on its next command (and `has_broken`): no PING per
            // checkout, which against a stalled server would wait once per idle connection.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_millis(settings.connect_timeout_ms.max(1)))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Connector {
                client,
                connect_timeout: Duration::from_millis(settings.connect_timeout_ms.max(1)),
                command_timeout: Duration::from_millis(settings.command_timeout_ms.max(1)),
            });
        Ok(RedisStore {
            pool,
            prefix: prefix.to_string(),
            admit: Script::new(ADMIT),
            fail: Script::new(FAIL),
            give_back: Script::new(GIVE_BACK),
            down_until_ms: AtomicI64::new(0),
        })
    }

    /// Runs `work` on a pooled connection; a failure marks Redis down for [`BACK_OFF_MS`], during
    /// which calls answer at once.
    fn call<T>(
        &self,
        work: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreUnavailable> {
        if now_ms() < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(StoreUnavailable::from(
                "Redis did not answer a moment ago; not asking again yet",
            ));
        }
        let result = match self.pool.get() {
            Ok(mut conn) => work(&mut conn).map_err(StoreUnavailable::from),
            Err(e) => Err(StoreUnavailable::from(e)),
        };
        if result.is_err() {
            self.down_until_ms
                .store(now_ms() + BACK_OFF_MS, Ordering::Relaxed);
        }
        result
    }

    /// Whether the store answers (`/readyz` reports it; it never takes an instance out of
    /// rotation, since every instance shares it).
    pub fn ping(&self) -> Result<(), StoreUnavailable> {
        self.call(|conn| redis::cmd("PING").query::<String>(conn).map(|_| ()))
    }

    fn own(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }

    /// A counter's hash `{failures, blocked}` and its set of places in flight.
    fn counter_keys(&self, kind: &str, key: &str) -> [String; 2] {
        [
            self.own(kind, key),
            self.own(kind, &format!("{key}:places")),
        ]
    }

    /// Spryker's keys of an attempt: `kv:{type}:{ip}:{account}` as typed and as folded.
    fn spryker_keys(reservation: &Reservation) -> Vec<String> {
        let Some(kind) = reservation.entity.spryker_type() else {
            return Vec::new();
        };
        // Symfony's getClientIp(): IPv4 dotted, IPv6 in its compressed form, an IPv4 client
        // of a dual-stack listener (::ffff:a.b.c.d) as a.b.c.d; none → "".
        let address = reservation
            .ip
            .map(|ip| ip.to_canonical().to_string())
            .unwrap_or_default();
        // No account has a name longer than Spryker's columns (VARCHAR(255)): such a name is
        // counted in glue's own hashed keys only, so failures cannot fill the shop's Redis
        // with large keys.
        let mut keys: Vec<String> = Vec::new();
        for account in [&reservation.typed, &reservation.folded] {
            let key = format!("kv:{kind}:{address}:{account}");
            if account.len() <= SPRYKER_ACCOUNT_MAX_BYTES && !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// Checks, or (`reserve`) checks and takes the places of, `reservation`'s counters (all
    /// three: the script leaves out the account-wide one when the address is trusted).
    /// Returns the refusal, or whether the address is trusted.
    pub fn admit(
        &self,
        reservation: &Reservation,
        reserve: bool,
    ) -> Result<Result<bool, Blocked>, StoreUnavailable> {
        let mut invocation = self.admit.prepare_invoke();
        for counter in &reservation.counters {
            for key in self.counter_keys(counter.kind, &counter.key) {
                invocation.key(key);
            }
        }
        invocation.key(self.own(reservation.entity.trust_kind(), &reservation.trust_key));
        let spryker = Self::spryker_keys(reservation);
        for key in &spryker {
            invocation.key(key);
        }
        invocation
            .arg(if reserve { "reserve" } else { "check" })
            .arg(&reservation.id)
            .arg(LEASE_S * 1000)
            .arg(spryker.len());
        for counter in &reservation.counters {
            push_rule(&mut invocation, counter.rule);
        }
        let (source, value): (i64, i64) = self.call(|conn| invocation.invoke(conn))?;
        if source < 0 {
            return Ok(Ok(value == 1));
        }
        // Spryker's key is the per-(address, account) rule's.
        let counter = &reservation.counters[usize::try_from(source - 1).unwrap_or(0).min(2)];
        Ok(Err(Blocked {
            scope: counter.scope,
            block_minutes: super::minutes(counter.rule.block_s),
            retry_after_s: u64::try_from(value).unwrap_or(0) / 1000 + 1,
        }))
    }

    /// Settles a failure on the reservation's counters and on Spryker's keys.
    pub fn fail(&self, reservation: &Reservation) -> Result<(), StoreUnavailable> {
        let mut invocation = self.fail.prepare_invoke();
        for counter in &reservation.counters {
            for key in self.counter_keys(counter.kind, &counter.key) {
                invocation.key(key);
            }
        }
        for key in Self::spryker_keys(reservation) {
            invocation.key(key);
        }
        invocation
            .arg(&reservation.id)
            .arg(reservation.counters.len());
        for counter in &reservation.counters {
            push_rule(&mut invocation, counter.rule);
        }
        let per_user = reservation.per_user_rule;
        invocation
            .arg(per_user.attempts)
            .arg(per_user.window_s.max(1))
            .arg(per_user.block_s.max(1));
        self.call(|conn| invocation.invoke::<i64>(conn))?;
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
            let [_, places] = self.counter_keys(counter.kind, &counter.key);
            invocation.key(places);
        }
        invocation.key(self.own(reservation.entity.trust_kind(), &reservation.trust_key));
        invocation
            .arg(&reservation.id)
            .arg(trust_s.map_or(0, |s| s.saturating_mul(1000)));
        self.call(|conn| invocation.invoke::<i64>(conn))?;
        Ok(())
    }
}

fn push_rule(invocation: &mut redis::ScriptInvocation<'_>, rule: BlockRule) {
    invocation
        .arg(rule.attempts)
        .arg(rule.window_s.max(1).saturating_mul(1000))
        .arg(rule.block_s.max(1).saturating_mul(1000));
}
