//! Failed-login throttling (Spryker's `SecurityBlocker` + `SecurityBlockerRestApi`), with the
//! counters in the database so every instance behind a load balancer shares them.
//!
//! Two counters per failure: one per (entity type, client IP, username) with Spryker's limits,
//! and one per (entity type, username) from any address with a higher limit, which stops a
//! guess spread over many addresses. `attempts` failures within the window block the key for
//! the block time; when the block or the window is over the key starts from zero. A success
//! does not reset anything (Spryker behaviour).
//!
//! Increments are single statements (no read-modify-write), so concurrent failures are never
//! lost: stale rows are deleted, then `attempts = attempts + 1`, else an INSERT, retried if a
//! concurrent INSERT won. Usernames are lower-cased and keys stored as SHA-256, so the table
//! holds no usernames and has fixed-size keys.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::db::schema::glue_login_attempt_counter::{self as t, dsl};
use crate::db::DbConnection;
use crate::settings::{BlockRule, SecurityBlockerSettings};

/// Whose logins are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    Agent,
    Customer,
}

impl EntityType {
    fn per_address(self) -> &'static str {
        match self {
            EntityType::Agent => "agent",
            EntityType::Customer => "customer",
        }
    }
    fn per_account(self) -> &'static str {
        match self {
            EntityType::Agent => "agent-account",
            EntityType::Customer => "customer-account",
        }
    }
}

/// A refused attempt: the detail's minutes and the seconds until the block ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub block_minutes: u64,
    pub retry_after_s: u64,
}

pub struct SecurityBlocker {
    settings: SecurityBlockerSettings,
    clock: Arc<dyn Clock>,
    last_sweep: AtomicI64,
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

impl SecurityBlocker {
    pub fn new(settings: SecurityBlockerSettings, clock: Arc<dyn Clock>) -> Self {
        SecurityBlocker {
            settings,
            clock,
            last_sweep: AtomicI64::new(i64::MIN),
        }
    }

    fn counters(
        &self,
        entity: EntityType,
        ip: Option<IpAddr>,
        username: &str,
    ) -> [(&'static str, String, BlockRule); 2] {
        let username = username.to_lowercase();
        let address = ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        let per_address_rule = match entity {
            EntityType::Agent => self.settings.agent,
            EntityType::Customer => self.settings.customer,
        };
        [
            (
                entity.per_address(),
                counter_key(&[&address, &username]),
                per_address_rule,
            ),
            (
                entity.per_account(),
                counter_key(&[&username]),
                self.settings.account,
            ),
        ]
    }

    /// `Some` when either counter of this attempt is blocked now.
    pub fn check(
        &self,
        conn: &mut DbConnection,
        entity: EntityType,
        ip: Option<IpAddr>,
        username: &str,
    ) -> QueryResult<Option<Blocked>> {
        if !self.settings.enabled {
            return Ok(None);
        }
        let now = self.clock.now();
        let mut refused: Option<Blocked> = None;
        for (kind, key, rule) in self.counters(entity, ip, username) {
            let until: Option<Option<NaiveDateTime>> = t::table
                .filter(dsl::entity_type.eq(kind))
                .filter(dsl::counter_key.eq(&key))
                .select(dsl::blocked_until)
                .first(conn)
                .optional()?;
            if let Some(Some(until)) = until {
                if until > now {
                    let retry_after_s = u64::try_from((until - now).num_seconds()).unwrap_or(0) + 1;
                    let blocked = Blocked {
                        block_minutes: rule.block_s.div_ceil(60),
                        retry_after_s,
                    };
                    // Report the block that lasts longest.
                    if refused.is_none_or(|r| r.retry_after_s < blocked.retry_after_s) {
                        refused = Some(blocked);
                    }
                }
            }
        }
        Ok(refused)
    }

    /// Counts one failed login on both counters.
    pub fn record_failure(
        &self,
        conn: &mut DbConnection,
        entity: EntityType,
        ip: Option<IpAddr>,
        username: &str,
    ) -> QueryResult<()> {
        if !self.settings.enabled {
            return Ok(());
        }
        for (kind, key, rule) in self.counters(entity, ip, username) {
            increment(conn, self.clock.as_ref(), kind, &key, rule)?;
        }
        self.maybe_sweep(conn)
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
            sweep(conn, self.clock.now())?;
        }
        Ok(())
    }
}

/// One atomic increment of a counter.
fn increment(
    conn: &mut DbConnection,
    clock: &dyn Clock,
    kind: &str,
    key: &str,
    rule: BlockRule,
) -> QueryResult<()> {
    let this = || {
        t::table
            .filter(dsl::entity_type.eq(kind))
            .filter(dsl::counter_key.eq(key))
    };
    for _ in 0..10 {
        let now = clock.now();
        // A counter whose window or block is over starts again from zero.
        diesel::delete(
            this().filter(
                dsl::window_expires_at
                    .le(now)
                    .and(dsl::blocked_until.is_null())
                    .or(dsl::blocked_until.le(now)),
            ),
        )
        .execute(conn)?;
        let updated = diesel::update(this())
            .set(dsl::attempts.eq(dsl::attempts + 1))
            .execute(conn)?;
        if updated == 0 {
            let inserted = diesel::insert_into(t::table)
                .values((
                    dsl::entity_type.eq(kind),
                    dsl::counter_key.eq(key),
                    dsl::attempts.eq(1),
                    dsl::window_expires_at.eq(now + seconds(rule.window_s)),
                ))
                .execute(conn);
            match inserted {
                Ok(_) => {}
                // Another request created the row first: count on it.
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => continue,
                Err(e) => return Err(e),
            }
        }
        let threshold = i32::try_from(rule.attempts).unwrap_or(i32::MAX);
        diesel::update(
            this()
                .filter(dsl::attempts.ge(threshold))
                .filter(dsl::blocked_until.is_null()),
        )
        .set(dsl::blocked_until.eq(now + seconds(rule.block_s)))
        .execute(conn)?;
        return Ok(());
    }
    Err(DieselError::RollbackTransaction)
}

/// Deletes every counter whose window and block are over; returns how many.
pub fn sweep(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        t::table.filter(
            dsl::window_expires_at
                .le(now)
                .and(dsl::blocked_until.is_null().or(dsl::blocked_until.le(now))),
        ),
    )
    .execute(conn)
}
