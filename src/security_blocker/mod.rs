//! Failed-login throttling (Spryker's `SecurityBlocker` + `SecurityBlockerRestApi`), with the
//! counters in the database so every instance behind a load balancer shares them.
//!
//! Three counters per attempt: per (entity type, client IP, username) with Spryker's limits;
//! per (entity type, client IP) whatever the username, which stops one address spraying many
//! usernames; and per (entity type, username) from any address, which stops a guess spread
//! over many addresses. `attempts` failures within the window block the key for the block time;
//! when the block or the window is over the key starts from zero.
//!
//! **Reserve, then verify.** An attempt takes its place on every counter in one write
//! transaction *before* its password is verified, and is refused (nothing taken) when a counter
//! is blocked or already full. So however many attempts arrive at once, at most `attempts` per
//! key are verified within a window. A failure keeps its place (and blocks the key once the
//! count is reached); a success gives its place back — it does not reset anyone else's — and
//! makes its address *trusted* for that username for `trusted_address_s`: the account-wide
//! counter neither counts nor blocks attempts from a trusted address, so failures from
//! elsewhere cannot lock an agent out of the place it works from.
//!
//! The account is counted under the key the database's own comparison gives its name (see
//! `Accounts::account_key` in `login`): spellings the lookup matches to one account — case,
//! and on MariaDB accents and width — share one count, and a name no account has is counted
//! exactly like one that exists. Keys are stored as SHA-256, so the tables hold no usernames and
//! have fixed-size keys.
//!
//! **Check, then queue, then reserve.** A login first *checks* its counters (a read): a blocked
//! key is refused before it takes a place in the bcrypt queue, so blocked traffic never
//! displaces anyone else's login. An attempt that is never verified (its client left while it
//! waited) gives its places back: a client that does not wait for answers cannot lock anyone
//! out. PHP Glue refresh tokens count under kinds of their own, so garbage tokens from an
//! office's address never block its customers' logins.
//!
//! **Two stores.** `security_blocker.store = "database"` keeps the counters in glue's tables;
//! `"redis"` keeps them on the shop's Redis, counted together with Spryker's own blocker (see
//! [`redis_store`]). The rules, the reservation and the settling are the same in both.

pub mod redis_store;

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::db::schema::glue_login_attempt_counter::{self as t, dsl};
use crate::db::schema::glue_login_trusted_address::{self as trusted, dsl as trusted_dsl};
use crate::db::DbConnection;
use crate::settings::{BlockRule, BlockerStore, SecurityBlockerSettings};
use redis_store::{RedisStore, StoreUnavailable};

/// Why the blocker could not decide (the login is answered 503, never with a login error).
#[derive(Debug, thiserror::Error)]
pub enum BlockerError {
    #[error(transparent)]
    Database(#[from] DieselError),
    #[error(transparent)]
    Store(#[from] StoreUnavailable),
}

/// Whose logins are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    Agent,
    Customer,
    /// Refresh tokens of the shop's PHP Glue, opened during a migration: their own key space,
    /// with the customer rule per (address, token) and the address rule per address.
    PhpRefreshToken,
}

impl EntityType {
    pub fn name(self) -> &'static str {
        match self {
            EntityType::Agent => "agent",
            EntityType::Customer => "customer",
            EntityType::PhpRefreshToken => "php-refresh-token",
        }
    }
    fn per_address(self) -> &'static str {
        match self {
            EntityType::Agent => "agent-address",
            EntityType::Customer => "customer-address",
            EntityType::PhpRefreshToken => "php-refresh-token-address",
        }
    }
    fn per_account(self) -> &'static str {
        match self {
            EntityType::Agent => "agent-account",
            EntityType::Customer => "customer-account",
            EntityType::PhpRefreshToken => "php-refresh-token-account",
        }
    }
    /// The kind of trusted-address keys in a key-value store.
    fn trust_kind(self) -> &'static str {
        match self {
            EntityType::Agent => "agent-trust",
            EntityType::Customer => "customer-trust",
            EntityType::PhpRefreshToken => "php-refresh-token-trust",
        }
    }
    /// Spryker's `SecurityCheckAuthContext` type counting the same logins, if any: PHP refresh
    /// tokens name no account and count only in glue's own keys.
    fn spryker_type(self) -> Option<&'static str> {
        match self {
            EntityType::Agent => Some("agent"),
            EntityType::Customer => Some("customer"),
            EntityType::PhpRefreshToken => None,
        }
    }
}

/// The account an attempt names: as the client typed it (Spryker's key) and the key glue counts
/// it under (the database's folding, see `Accounts::account_key` in `login`).
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub typed: &'a str,
    pub key: &'a str,
}

impl<'a> Account<'a> {
    /// An account with one spelling (e.g. a PHP token's salt).
    pub fn exact(key: &'a str) -> Self {
        Account { typed: key, key }
    }
}

/// Which kind of counter refused an attempt (they get different texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockScope {
    /// The client's address (with this username, or with any).
    Address,
    /// The username, from any untrusted address.
    Account,
}

/// A refused attempt: the block's length in minutes and the seconds until a retry may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub scope: BlockScope,
    pub block_minutes: u64,
    pub retry_after_s: u64,
}

/// One counter an attempt is counted on.
#[derive(Debug, Clone)]
struct Counter {
    kind: &'static str,
    key: String,
    rule: BlockRule,
    scope: BlockScope,
}

/// The places an admitted attempt holds until [`SecurityBlocker::fail`] or
/// [`SecurityBlocker::succeed`] settles them.
#[derive(Debug, Clone)]
pub struct Reservation {
    entity: EntityType,
    counters: Vec<Counter>,
    trust_key: String,
    /// The per-(address, account) rule (Spryker's, for its keys).
    per_user_rule: BlockRule,
    /// Names this attempt's places in a key-value store (random).
    id: String,
    ip: Option<IpAddr>,
    typed: String,
    folded: String,
}

/// What [`SecurityBlocker::reserve`] decided.
#[derive(Debug)]
pub enum Admission {
    Admitted(Reservation),
    Blocked(Blocked),
}

pub struct SecurityBlocker {
    settings: SecurityBlockerSettings,
    clock: Arc<dyn Clock>,
    last_sweep: AtomicI64,
    redis: Option<RedisStore>,
}

fn counter_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\0");
        }
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn seconds(s: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

fn minutes(s: u64) -> u64 {
    s.div_ceil(60)
}

/// A reservation refused inside its transaction (which then rolls back every place taken).
enum Refusal {
    Blocked(Blocked),
    Database(DieselError),
}

impl From<DieselError> for Refusal {
    fn from(e: DieselError) -> Self {
        Refusal::Database(e)
    }
}

impl SecurityBlocker {
    /// The blocker on its configured store; refused (naming the setting) when the Redis URL is
    /// not one glue can use. Redis need not be up: logins answer 503 until it is.
    pub fn new(settings: SecurityBlockerSettings, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let redis = match settings.store {
            BlockerStore::Database => None,
            BlockerStore::Redis => Some(RedisStore::new(&settings.redis)?),
        };
        Ok(SecurityBlocker {
            settings,
            clock,
            last_sweep: AtomicI64::new(i64::MIN),
            redis,
        })
    }

    /// The Redis store, when the counters are kept there (and the blocker is enabled).
    pub fn redis(&self) -> Option<&RedisStore> {
        self.redis.as_ref().filter(|_| self.settings.enabled)
    }

    /// The counters of an attempt on `account` from `ip`.
    fn reservation(&self, entity: EntityType, ip: Option<IpAddr>, account: Account) -> Reservation {
        let username = account.key;
        // An IPv4 client of a dual-stack listener counts as its IPv4 address.
        let address = ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_canonical().to_string());
        let per_user_rule = match entity {
            EntityType::Agent => self.settings.agent,
            EntityType::Customer | EntityType::PhpRefreshToken => self.settings.customer,
        };
        Reservation {
            entity,
            counters: vec![
                Counter {
                    kind: entity.name(),
                    key: counter_key(&[&address, username]),
                    rule: per_user_rule,
                    scope: BlockScope::Address,
                },
                Counter {
                    kind: entity.per_address(),
                    key: counter_key(&[&address]),
                    rule: self.settings.address,
                    scope: BlockScope::Address,
                },
                Counter {
                    kind: entity.per_account(),
                    key: counter_key(&[username]),
                    rule: self.settings.account,
                    scope: BlockScope::Account,
                },
            ],
            trust_key: counter_key(&[&address, username]),
            per_user_rule,
            id: {
                let mut id = [0u8; 16];
                rand::fill(&mut id[..]);
                hex::encode(id)
            },
            ip,
            typed: account.typed.to_string(),
            folded: account.key.to_string(),
        }
    }

    /// Whether an attempt on `account` from `ip` would be refused now — a read, taking nothing:
    /// the check a login makes before it takes a place in the bcrypt queue. [`Self::reserve`]
    /// decides again under its lock.
    pub fn check(
        &self,
        conn: &mut DbConnection,
        entity: EntityType,
        ip: Option<IpAddr>,
        account: Account,
    ) -> Result<Option<Blocked>, BlockerError> {
        if !self.settings.enabled {
            return Ok(None);
        }
        let reservation = self.reservation(entity, ip, account);
        if let Some(redis) = &self.redis {
            return Ok(redis.admit(&reservation, false)?.err());
        }
        let now = self.clock.now();
        let trusted = is_trusted(conn, entity, &reservation.trust_key, now)?;
        let mut refused: Option<Blocked> = None;
        for counter in &reservation.counters {
            if trusted && counter.scope == BlockScope::Account {
                continue;
            }
            let row: Option<(i32, NaiveDateTime, Option<NaiveDateTime>)> = this(counter)
                .select((dsl::attempts, dsl::window_expires_at, dsl::blocked_until))
                .first(conn)
                .optional()?;
            let Some((attempts, window_expires_at, blocked_until)) = row else {
                continue;
            };
            // A counter whose window or block is over would start again from zero.
            let over = match blocked_until {
                Some(until) => until <= now,
                None => window_expires_at <= now,
            };
            if over {
                continue;
            }
            if let Some(blocked) = refusal(counter, attempts + 1, blocked_until, now) {
                if refused.is_none_or(|r| r.retry_after_s < blocked.retry_after_s) {
                    refused = Some(blocked);
                }
            }
        }
        Ok(refused)
    }

    /// Takes this attempt's place on each of its counters, or refuses it (taking nothing) when
    /// a counter is blocked or full. One write transaction; retried when two first attempts
    /// race to create the same counter.
    pub fn reserve(
        &self,
        conn: &mut DbConnection,
        entity: EntityType,
        ip: Option<IpAddr>,
        account: Account,
    ) -> Result<Admission, BlockerError> {
        let mut reservation = self.reservation(entity, ip, account);
        if !self.settings.enabled {
            reservation.counters.clear();
            return Ok(Admission::Admitted(reservation));
        }
        if let Some(redis) = &self.redis {
            return Ok(match redis.admit(&reservation, true)? {
                Ok(trusted) => {
                    if trusted {
                        reservation
                            .counters
                            .retain(|c| c.scope != BlockScope::Account);
                    }
                    Admission::Admitted(reservation)
                }
                Err(blocked) => Admission::Blocked(blocked),
            });
        }
        for _ in 0..10 {
            let now = self.clock.now();
            let result = crate::db::write_transaction(conn, |conn| {
                let trusted = is_trusted(conn, entity, &reservation.trust_key, now)?;
                let mut refused: Option<Blocked> = None;
                for counter in &reservation.counters {
                    if trusted && counter.scope == BlockScope::Account {
                        continue;
                    }
                    if let Some(blocked) = take_place(conn, counter, now)? {
                        if refused.is_none_or(|r| r.retry_after_s < blocked.retry_after_s) {
                            refused = Some(blocked);
                        }
                    }
                }
                match refused {
                    Some(blocked) => Err(Refusal::Blocked(blocked)),
                    None => Ok(trusted),
                }
            });
            return match result {
                Ok(trusted) => {
                    if trusted {
                        reservation
                            .counters
                            .retain(|c| c.scope != BlockScope::Account);
                    }
                    Ok(Admission::Admitted(reservation))
                }
                Err(Refusal::Blocked(blocked)) => Ok(Admission::Blocked(blocked)),
                // Another attempt created a counter first, or InnoDB chose this transaction as
                // a deadlock victim: start again.
                Err(Refusal::Database(DieselError::DatabaseError(
                    DatabaseErrorKind::UniqueViolation,
                    _,
                ))) => continue,
                Err(Refusal::Database(e)) if crate::db::is_deadlock(&e) => continue,
                Err(Refusal::Database(e)) => Err(e.into()),
            };
        }
        Err(DieselError::RollbackTransaction.into())
    }

    /// Settles a failed attempt: its places stay taken and count as failures; a counter whose
    /// failures reached its limit is blocked from now on.
    pub fn fail(
        &self,
        conn: &mut DbConnection,
        reservation: &Reservation,
    ) -> Result<(), BlockerError> {
        if reservation.counters.is_empty() {
            return Ok(());
        }
        if let Some(redis) = &self.redis {
            settled_best_effort("failure", redis.fail(reservation));
            return Ok(());
        }
        let now = self.clock.now();
        crate::db::retry_deadlocks(|| {
            crate::db::write_transaction(&mut *conn, |conn| {
                for counter in &reservation.counters {
                    let threshold = i32::try_from(counter.rule.attempts).unwrap_or(i32::MAX);
                    // Settled failures block, not places still held by attempts in bcrypt
                    // (which may well succeed).
                    diesel::update(this(counter))
                        .set(dsl::failures.eq(dsl::failures + 1))
                        .execute(conn)?;
                    diesel::update(
                        this(counter)
                            .filter(dsl::failures.ge(threshold))
                            .filter(dsl::blocked_until.is_null()),
                    )
                    .set(dsl::blocked_until.eq(now + seconds(counter.rule.block_s)))
                    .execute(conn)?;
                }
                Ok(())
            })
        })?;
        Ok(self.maybe_sweep(conn)?)
    }

    /// Settles a successful attempt: its places are given back, and its address becomes
    /// trusted for this username.
    pub fn succeed(
        &self,
        conn: &mut DbConnection,
        reservation: &Reservation,
    ) -> Result<(), BlockerError> {
        if !self.settings.enabled {
            return Ok(());
        }
        if let Some(redis) = &self.redis {
            settled_best_effort(
                "success",
                redis.give_back(reservation, Some(self.settings.trusted_address_s)),
            );
            return Ok(());
        }
        let now = self.clock.now();
        let mut tries = 0;
        loop {
            let settled = crate::db::retry_deadlocks(|| {
                crate::db::write_transaction(&mut *conn, |conn| {
                    for counter in &reservation.counters {
                        diesel::update(this(counter).filter(dsl::attempts.gt(0)))
                            .set(dsl::attempts.eq(dsl::attempts - 1))
                            .execute(conn)?;
                    }
                    trust(
                        conn,
                        reservation,
                        now + seconds(self.settings.trusted_address_s),
                    )
                })
            });
            match settled {
                // A concurrent success trusted the address first: run again, renewing it.
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
                    if tries < 3 =>
                {
                    tries += 1
                }
                other => return Ok(other?),
            }
        }
    }

    /// Settles an attempt that proved nothing about an account (e.g. a PHP refresh token that
    /// decrypted): its places are given back, nothing becomes trusted.
    pub fn release(
        &self,
        conn: &mut DbConnection,
        reservation: &Reservation,
    ) -> Result<(), BlockerError> {
        if !self.settings.enabled {
            return Ok(());
        }
        if let Some(redis) = &self.redis {
            settled_best_effort("release", redis.give_back(reservation, None));
            return Ok(());
        }
        Ok(crate::db::retry_deadlocks(|| {
            crate::db::write_transaction(&mut *conn, |conn| {
                for counter in &reservation.counters {
                    diesel::update(this(counter).filter(dsl::attempts.gt(0)))
                        .set(dsl::attempts.eq(dsl::attempts - 1))
                        .execute(conn)?;
                }
                Ok(())
            })
        })?)
    }

    /// Deletes expired counters at most every `sweep_interval_s` per instance, so a spray of
    /// random usernames cannot grow the table beyond what one window holds.
    fn maybe_sweep(&self, conn: &mut DbConnection) -> QueryResult<()> {
        let now = self.clock.now().and_utc().timestamp();
        let last = self.last_sweep.load(Ordering::Relaxed);
        let interval = i64::try_from(self.settings.sweep_interval_s).unwrap_or(i64::MAX);
        if now.saturating_sub(last) < interval {
            return Ok(());
        }
        if self
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            // Housekeeping: a busy or locked table must not turn the login's answer into a 5xx;
            // the next sweep (or `glue tokens purge-expired`) catches up.
            if let Err(e) = sweep(conn, self.clock.now()) {
                log::warn!(target: "glue::security_blocker", "sweeping expired counters failed: {e}");
            }
        }
        Ok(())
    }
}

/// Settling on Redis is best effort: the reservation's places free themselves when their lease
/// ends ([`redis_store::LEASE_S`]), and an answer already decided (new tokens, a revoked PHP
/// token) must not be lost to a store that stopped answering a moment later.
fn settled_best_effort(what: &str, result: Result<(), StoreUnavailable>) {
    if let Err(e) = result {
        log::warn!(target: "glue::security_blocker", "could not settle a login's {what} on Redis (its places free themselves within {} s): {}", redis_store::LEASE_S, e.0);
    }
}

type ThisCounter<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<t::table, diesel::dsl::Eq<dsl::entity_type, &'static str>>,
    diesel::dsl::Eq<dsl::counter_key, &'a str>,
>;

/// The row of one counter.
fn this(counter: &Counter) -> ThisCounter<'_> {
    t::table
        .filter(dsl::entity_type.eq(counter.kind))
        .filter(dsl::counter_key.eq(counter.key.as_str()))
}

/// Makes the reservation's address trusted for its username until `expires_at`.
fn trust(
    conn: &mut DbConnection,
    reservation: &Reservation,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    let key = || {
        trusted::table
            .filter(trusted_dsl::entity_type.eq(reservation.entity.name()))
            .filter(trusted_dsl::trust_key.eq(&reservation.trust_key))
    };
    let renewed = diesel::update(key())
        .set(trusted_dsl::expires_at.eq(expires_at))
        .execute(conn)?;
    if renewed == 0 {
        diesel::insert_into(trusted::table)
            .values((
                trusted_dsl::entity_type.eq(reservation.entity.name()),
                trusted_dsl::trust_key.eq(&reservation.trust_key),
                trusted_dsl::expires_at.eq(expires_at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn is_trusted(
    conn: &mut DbConnection,
    entity: EntityType,
    trust_key: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        trusted::table
            .filter(trusted_dsl::entity_type.eq(entity.name()))
            .filter(trusted_dsl::trust_key.eq(trust_key))
            .filter(trusted_dsl::expires_at.gt(now)),
    ))
    .get_result(conn)
}

/// Takes one place on a counter (inside the caller's write transaction); `Some` when the
/// counter refuses: blocked now, or its places are all taken by attempts not yet settled.
fn take_place(
    conn: &mut DbConnection,
    counter: &Counter,
    now: NaiveDateTime,
) -> QueryResult<Option<Blocked>> {
    // A counter whose window or block is over starts again from zero.
    diesel::delete(
        this(counter).filter(
            dsl::window_expires_at
                .le(now)
                .and(dsl::blocked_until.is_null())
                .or(dsl::blocked_until.le(now)),
        ),
    )
    .execute(conn)?;
    let updated = diesel::update(this(counter))
        .set(dsl::attempts.eq(dsl::attempts + 1))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(t::table)
            .values((
                dsl::entity_type.eq(counter.kind),
                dsl::counter_key.eq(&counter.key),
                dsl::attempts.eq(1),
                dsl::window_expires_at.eq(now + seconds(counter.rule.window_s)),
            ))
            .execute(conn)?;
    }
    let (attempts, blocked_until): (i32, Option<NaiveDateTime>) = this(counter)
        .select((dsl::attempts, dsl::blocked_until))
        .first(conn)?;
    Ok(refusal(counter, attempts, blocked_until, now))
}

/// Whether a counter holding `attempts` places (this attempt's included) refuses: blocked
/// now, or its places are all taken by attempts not yet settled.
fn refusal(
    counter: &Counter,
    attempts: i32,
    blocked_until: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Option<Blocked> {
    let block_minutes = minutes(counter.rule.block_s);
    if let Some(until) = blocked_until.filter(|until| *until > now) {
        let retry_after_s = u64::try_from((until - now).num_seconds()).unwrap_or(0) + 1;
        return Some(Blocked {
            scope: counter.scope,
            block_minutes,
            retry_after_s,
        });
    }
    if i64::from(attempts) > i64::from(counter.rule.attempts) {
        // Full of attempts still being verified: if they fail, the block starts then.
        return Some(Blocked {
            scope: counter.scope,
            block_minutes,
            retry_after_s: counter.rule.block_s,
        });
    }
    None
}

/// Deletes every counter whose window and block are over, and every expired trust; returns
/// how many of each went.
pub fn sweep(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<(usize, usize)> {
    let counters = diesel::delete(
        t::table.filter(
            dsl::window_expires_at
                .le(now)
                .and(dsl::blocked_until.is_null().or(dsl::blocked_until.le(now))),
        ),
    )
    .execute(conn)?;
    let trusts =
        diesel::delete(trusted::table.filter(trusted_dsl::expires_at.le(now))).execute(conn)?;
    Ok((counters, trusts))
}
