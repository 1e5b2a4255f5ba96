//! Refresh-token rows: Spryker's `spy_oauth_refresh_token` plus glue's side table
//! `glue_oauth_refresh_token` joined by id; persist, rotate with reuse detection, revoke, purge
//! (Spryker's `OauthRefreshTokenEntityManager` + `OauthRevoke`).
//!
//! Only the SHA-256 of a token is stored (`identifier`). Every token of one login shares a
//! `family` (the session); rotating a token sets its `successor` and `revoked_at`. A retired
//! token presented again revokes its whole family.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::glue_oauth_refresh_token::{self as g, dsl as side};
use crate::db::schema::spy_oauth_refresh_token::{self as t, dsl};
use crate::db::DbConnection;

/// A token pair's refresh row, both halves.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub identifier: String,
    pub family: String,
    pub scopes: String,
    pub customer_reference: Option<String>,
    pub user_identifier: String,
    pub actor_identifier: Option<String>,
    /// The agent the session hangs on (the subject agent, or the agent acting for the
    /// customer): glue's normalised key for ending an agent's sessions.
    pub id_agent: Option<i64>,
    pub fk_oauth_client: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

/// `None` is written as NULL (a bound parameter), not as `DEFAULT`: a statement with `DEFAULT`
/// in it is prepared afresh on every execution on PostgreSQL and MySQL.
#[derive(Insertable)]
#[diesel(table_name = t, treat_none_as_default_value = false)]
struct SpyRow<'a> {
    identifier: &'a str,
    scopes: Option<&'a str>,
    customer_reference: Option<&'a str>,
    user_identifier: &'a str,
    fk_oauth_client: &'a str,
    expires_at: NaiveDateTime,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
}

/// A stored token with glue's side of it (`family` is `None` for a row glue did not write).
#[derive(Debug, Clone, Queryable)]
pub struct RefreshTokenRow {
    pub id_oauth_refresh_token: i64,
    pub identifier: String,
    pub scopes: Option<String>,
    pub customer_reference: Option<String>,
    pub user_identifier: String,
    pub fk_oauth_client: String,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub family: Option<String>,
    pub successor: Option<String>,
    pub actor_identifier: Option<String>,
    /// How often this retired token was honoured within the grace window.
    pub grace_uses: Option<i32>,
}

/// The columns of [`RefreshTokenRow`] over `spy_oauth_refresh_token LEFT JOIN
/// glue_oauth_refresh_token`.
macro_rules! row_columns {
    () => {
        (
            dsl::id_oauth_refresh_token,
            dsl::identifier,
            dsl::scopes,
            dsl::customer_reference,
            dsl::user_identifier,
            dsl::fk_oauth_client,
            dsl::expires_at,
            dsl::revoked_at,
            side::family.nullable(),
            side::successor.nullable(),
            side::actor_identifier.nullable(),
            side::grace_uses.nullable(),
        )
    };
}

/// Stores a new token (a Propel sequence id on PostgreSQL) and its side row; returns the id.
/// Callers run it inside a write transaction.
pub fn insert(conn: &mut DbConnection, row: &NewRefreshToken) -> QueryResult<i64> {
    let spy = SpyRow {
        identifier: &row.identifier,
        scopes: Some(&row.scopes),
        customer_reference: row.customer_reference.as_deref(),
        user_identifier: &row.user_identifier,
        fk_oauth_client: &row.fk_oauth_client,
        expires_at: row.expires_at,
        created_at: Some(row.created_at),
        updated_at: Some(row.created_at),
    };
    let id = crate::db::insert_with_id(
        conn,
        "spy_oauth_refresh_token_pk_seq",
        |conn, id| match id {
            Some(id) => diesel::insert_into(t::table)
                .values((dsl::id_oauth_refresh_token.eq(id), &spy))
                .execute(conn),
            None => diesel::insert_into(t::table).values(&spy).execute(conn),
        },
    )?;
    diesel::insert_into(g::table)
        .values((
            side::id_oauth_refresh_token.eq(id),
            side::family.eq(&row.family),
            side::actor_identifier.eq(row.actor_identifier.as_deref()),
            side::id_agent.eq(row.id_agent),
        ))
        .execute(conn)?;
    Ok(id)
}

pub fn find(conn: &mut DbConnection, identifier: &str) -> QueryResult<Option<RefreshTokenRow>> {
    if !crate::db::storable(identifier) {
        return Ok(None);
    }
    crate::db::first_match(
        t::table
            .left_join(g::table)
            .filter(dsl::identifier.eq(identifier))
            .select(row_columns!()),
        conn,
    )
}

pub fn find_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<Option<RefreshTokenRow>> {
    crate::db::first_match(
        t::table
            .left_join(g::table)
            .filter(dsl::id_oauth_refresh_token.eq(id))
            .select(row_columns!()),
        conn,
    )
}

/// The refresh grace window (`oauth.refresh_reuse_grace_s`, `oauth.refresh_reuse_grace_uses`):
/// for a client that sends one token twice (two tabs, a retry after a lost answer), the token a
/// rotation retired is honoured again — a new pair in the same family — up to `max_uses` times
/// within `window_s` seconds, as long as its successor is still the live head of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    pub window_s: u64,
    pub max_uses: u32,
}

impl Grace {
    /// True when `row` was retired within the window (0 = no window).
    pub fn covers(&self, row: &RefreshTokenRow, now: NaiveDateTime) -> bool {
        let window = chrono::TimeDelta::seconds(i64::try_from(self.window_s).unwrap_or(0));
        self.window_s > 0 && row.revoked_at.is_some_and(|retired| retired + window > now)
    }
}

/// Why a stored token cannot be exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The row is gone (purged between two reads).
    Unknown,
    WrongClient,
    /// Rotated before: presenting it again is a reuse.
    Retired,
    Revoked,
    Expired,
    /// Retired within the grace window, but honoured as often as allowed already.
    GraceExhausted,
}

/// The one rule for "exchangeable": `None` when `client_id` may exchange the row at `now`,
/// otherwise why not.
pub fn refusal(row: &RefreshTokenRow, client_id: &str, now: NaiveDateTime) -> Option<Refusal> {
    if row.fk_oauth_client != client_id {
        Some(Refusal::WrongClient)
    } else if row.successor.is_some() {
        Some(Refusal::Retired)
    } else if row.revoked_at.is_some() {
        Some(Refusal::Revoked)
    } else if row.expires_at <= now {
        Some(Refusal::Expired)
    } else {
        None
    }
}

/// What `exchange` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Rotated,
    /// The row had been rotated meanwhile: its family is now revoked.
    Reused,
    Refused(Refusal),
}

/// Retires `current` and stores `successor` in its place, in one write transaction. A live row
/// is retired by one conditional UPDATE; otherwise the transaction locks the row (a no-op
/// UPDATE: PostgreSQL and MySQL hold the row lock until commit, SQLite's `BEGIN IMMEDIATE`
/// holds the database) and judges it again with [`refusal`]. So N concurrent exchanges of one
/// token rotate it exactly once; the others find it retired, which revokes the family (or, in
/// the grace window, is honoured).
pub fn exchange(
    conn: &mut DbConnection,
    current: &RefreshTokenRow,
    successor: &NewRefreshToken,
    client_id: &str,
    grace: Grace,
    now: NaiveDateTime,
) -> QueryResult<Exchange> {
    let id = current.id_oauth_refresh_token;
    crate::db::retry_deadlocks(|| {
        crate::db::write_transaction(&mut *conn, |conn| {
            let this = || t::table.filter(dsl::id_oauth_refresh_token.eq(id));
            if let Some(done) = rotate_if_live(conn, current, successor, client_id, now)? {
                return Ok(done);
            }
            diesel::update(this())
                .set(dsl::updated_at.eq(dsl::updated_at))
                .execute(conn)?;
            let Some(row) =
                find_by_id(conn, id)?.filter(|row| row.identifier == current.identifier)
            else {
                // Gone, or (a server that reuses ids after a restart) another token's row now.
                return Ok(Exchange::Refused(Refusal::Unknown));
            };
            match refusal(&row, client_id, now) {
                Some(Refusal::Retired)
                    if grace.covers(&row, now) && head_is_live(conn, &row, client_id, now)? =>
                {
                    let allowed = i32::try_from(grace.max_uses).unwrap_or(i32::MAX);
                    if row.grace_uses.unwrap_or(0) >= allowed {
                        return Ok(Exchange::Refused(Refusal::GraceExhausted));
                    }
                    diesel::update(g::table.find(id))
                        .set(side::grace_uses.eq(side::grace_uses + 1))
                        .execute(conn)?;
                    insert(conn, successor)?;
                    Ok(Exchange::Rotated)
                }
                Some(Refusal::Retired) => {
                    if let Some(family) = &row.family {
                        revoke_family(conn, family, now)?;
                    }
                    Ok(Exchange::Reused)
                }
                Some(refusal) => Ok(Exchange::Refused(refusal)),
                // Live after all (the first UPDATE read an older version): the same guarded
                // rotation, now under the lock.
                None => Ok(rotate_if_live(conn, current, successor, client_id, now)?
                    .unwrap_or(Exchange::Refused(Refusal::Unknown))),
            }
        })
    })
}

/// The common case of [`exchange`] in one statement: retires `current`'s row if it is still
/// that token's, the client's and live (neither retired nor revoked — a rotation sets
/// `revoked_at` with the successor — and not expired), then records and stores `successor`.
/// The UPDATE takes the row lock and, on PostgreSQL and MySQL, judges the latest committed
/// version, so of concurrent exchanges exactly one retires it. `None` when it matched nothing
/// (the caller judges the row); `Refused(Unknown)` when glue's side row has gone meanwhile: the
/// token stays retired, without a successor.
fn rotate_if_live(
    conn: &mut DbConnection,
    current: &RefreshTokenRow,
    successor: &NewRefreshToken,
    client_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Exchange>> {
    let id = current.id_oauth_refresh_token;
    let retired = crate::db::update_cached(
        t::table,
        (dsl::revoked_at.eq(now), dsl::updated_at.eq(now)),
        dsl::id_oauth_refresh_token
            .eq(id)
            .and(dsl::identifier.eq(&current.identifier))
            .and(dsl::fk_oauth_client.eq(client_id))
            .and(dsl::revoked_at.is_null())
            .and(dsl::expires_at.gt(now)),
    )
    .execute(conn)?;
    if retired != 1 {
        return Ok(None);
    }
    let recorded = crate::db::update_cached(
        g::table,
        side::successor.eq(&successor.identifier),
        side::id_oauth_refresh_token.eq(id),
    )
    .execute(conn)?;
    if recorded != 1 {
        return Ok(Some(Exchange::Refused(Refusal::Unknown)));
    }
    insert(conn, successor)?;
    Ok(Some(Exchange::Rotated))
}

/// True when the token that replaced `row` is still exchangeable: `row` is the immediately
/// previous generation, not an older one.
fn head_is_live(
    conn: &mut DbConnection,
    row: &RefreshTokenRow,
    client_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let Some(successor) = &row.successor else {
        return Ok(false);
    };
    Ok(find(conn, successor)?.is_some_and(|head| refusal(&head, client_id, now).is_none()))
}

/// Revokes every live token of a family.
pub fn revoke_family(
    conn: &mut DbConnection,
    family: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    until_settled(|| {
        diesel::update(
            t::table.filter(dsl::revoked_at.is_null()).filter(
                dsl::id_oauth_refresh_token.eq_any(
                    g::table
                        .filter(side::family.eq(family))
                        .select(side::id_oauth_refresh_token),
                ),
            ),
        )
        .set((dsl::revoked_at.eq(now), dsl::updated_at.eq(now)))
        .execute(&mut *conn)
    })
}

/// Runs a revoking UPDATE at least twice, until a pass changes nothing. Under PostgreSQL's READ
/// COMMITTED an UPDATE that waited for a row a concurrent rotation held re-checks only that
/// row: the successor the rotation inserted is invisible to it, and only a later statement
/// sees (and revokes) it.
fn until_settled(mut pass: impl FnMut() -> QueryResult<usize>) -> QueryResult<usize> {
    let mut total = pass()?;
    loop {
        let more = pass()?;
        if more == 0 {
            return Ok(total);
        }
        total += more;
    }
}

/// True while some token of the family is not revoked (rotation revokes a token but leaves its
/// successor live; logout and reuse revoke them all).
pub fn family_is_live(conn: &mut DbConnection, family: &str) -> QueryResult<bool> {
    if !crate::db::storable(family) {
        return Ok(false);
    }
    diesel::select(diesel::dsl::exists(
        t::table
            .inner_join(g::table)
            .filter(side::family.eq(family))
            .filter(dsl::revoked_at.is_null()),
    ))
    .get_result(conn)
}

/// The live rows filed under the customer reference `reference` (glue's and PHP Glue's; by
/// Spryker's indexed column, compared as the database compares): candidates only, the caller
/// decides on the parsed identifiers.
pub fn live_rows_of_customer(
    conn: &mut DbConnection,
    reference: &str,
) -> QueryResult<Vec<RefreshTokenRow>> {
    if !crate::db::storable(reference) {
        return Ok(Vec::new());
    }
    t::table
        .left_join(g::table)
        .filter(dsl::customer_reference.eq(reference))
        .filter(dsl::revoked_at.is_null())
        .select(row_columns!())
        .load(conn)
}

/// The live rows glue wrote for sessions that hang on the agent `id_agent` (its logins and the
/// impersonations it started), by glue's indexed key: these are the agent's, no parsing needed.
pub fn live_rows_keyed_to_agent(
    conn: &mut DbConnection,
    id_agent: i64,
) -> QueryResult<Vec<RefreshTokenRow>> {
    t::table
        .inner_join(g::table)
        .filter(side::id_agent.eq(id_agent))
        .filter(dsl::revoked_at.is_null())
        .select(row_columns!())
        .load(conn)
}

/// Live rows without glue's agent key whose identifier texts mention the digits of `id_agent`:
/// the rows the shop's PHP Glue wrote without a customer reference (agent sessions; Spryker's
/// table has no agent column) and, with `unkeyed_glue_rows`, rows a glue older than the key
/// wrote (an instance not yet upgraded). Found by a scan with a textual pre-filter: candidates
/// only, the caller decides on the parsed identities.
pub fn live_rows_mentioning_agent(
    conn: &mut DbConnection,
    id_agent: i64,
    unkeyed_glue_rows: bool,
) -> QueryResult<Vec<RefreshTokenRow>> {
    let digits = format!("%{id_agent}%");
    let mut rows: Vec<RefreshTokenRow> = t::table
        .left_join(g::table)
        .filter(side::id_oauth_refresh_token.nullable().is_null())
        .filter(dsl::revoked_at.is_null())
        .filter(
            dsl::customer_reference
                .is_null()
                .or(dsl::customer_reference.eq("")),
        )
        .filter(dsl::user_identifier.like(&digits))
        .select(row_columns!())
        .load(conn)?;
    if unkeyed_glue_rows {
        rows.extend(
            t::table
                .inner_join(g::table)
                .filter(side::id_agent.is_null())
                .filter(dsl::revoked_at.is_null())
                .filter(
                    dsl::user_identifier
                        .like(&digits)
                        .or(side::actor_identifier.like(&digits)),
                )
                .select(row_columns!())
                .load::<RefreshTokenRow>(conn)?,
        );
    }
    Ok(rows)
}

/// What [`revoke_rows`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Tokens revoked.
    pub tokens: usize,
    /// Some session was changed by someone else between reading it and revoking it (a rotation,
    /// a PHP token exchanged into a new session): read the candidates again.
    pub contested: bool,
}

/// Revokes the sessions of `rows`: the whole family of a row glue wrote (a successor a
/// concurrent rotation stores is caught), the row itself for one PHP Glue wrote. Runs inside
/// the caller's transaction.
pub fn revoke_rows(
    conn: &mut DbConnection,
    rows: &[RefreshTokenRow],
    now: NaiveDateTime,
) -> QueryResult<Revoked> {
    let mut families: Vec<&str> = rows.iter().filter_map(|r| r.family.as_deref()).collect();
    families.sort_unstable();
    families.dedup();
    let mut done = Revoked::default();
    // Contested: a row that was live when read revoked nothing (someone changed it meanwhile);
    // a session that had already ended is not.
    for family in families {
        let revoked = revoke_family(conn, family, now)?;
        let was_live = rows
            .iter()
            .any(|r| r.family.as_deref() == Some(family) && r.revoked_at.is_none());
        done.contested |= revoked == 0 && was_live;
        done.tokens += revoked;
    }
    for row in rows.iter().filter(|r| r.family.is_none()) {
        let revoked = revoke_one(conn, row.id_oauth_refresh_token, now)?;
        done.contested |= revoked == 0 && row.revoked_at.is_none();
        done.tokens += revoked;
    }
    Ok(done)
}

/// Retires a row glue did not write (the shop's PHP Glue did: no side row), only if it is not
/// revoked yet; returns 1 for the one caller that retired it, 0 for everyone else.
pub fn retire_foreign(conn: &mut DbConnection, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(dsl::id_oauth_refresh_token.eq(id))
            .filter(dsl::revoked_at.is_null())
            .filter(diesel::dsl::not(diesel::dsl::exists(
                g::table.filter(side::id_oauth_refresh_token.eq(id)),
            ))),
    )
    .set((dsl::revoked_at.eq(now), dsl::updated_at.eq(now)))
    .execute(conn)
}

/// Revokes one token (a row without a family: nothing else belongs to its session).
pub fn revoke_one(conn: &mut DbConnection, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(dsl::id_oauth_refresh_token.eq(id))
            .filter(dsl::revoked_at.is_null()),
    )
    .set((dsl::revoked_at.eq(now), dsl::updated_at.eq(now)))
    .execute(conn)
}

/// Rows read per step by [`purge_expired`], and the most it deletes in one transaction.
const PURGE_BATCH: i64 = 1000;
/// How long one purge transaction should hold its locks; the batch size follows it. One lock
/// for the whole database (SQLite): a refresh that finds it taken waits for the transaction to
/// end, so 2 ms, to keep that wait near a refresh's own time. Row locks (PostgreSQL, MySQL):
/// only the expired rows are locked, which nobody else uses, so a tenth of a second (a commit's
/// flush alone can take milliseconds).
fn purge_transaction_target(lock: crate::db::WriteLock) -> std::time::Duration {
    match lock {
        crate::db::WriteLock::Database => std::time::Duration::from_millis(2),
        crate::db::WriteLock::Rows => std::time::Duration::from_millis(100),
    }
}

/// Where a purge is, reported after every batch.
#[derive(Debug, Clone, Default)]
pub struct PurgeProgress {
    /// Token rows deleted so far.
    pub deleted: usize,
    /// Write transactions committed so far.
    pub transactions: usize,
    /// The longest of them (locks are held for no longer).
    pub longest_transaction: std::time::Duration,
}

/// The number of rows [`purge_expired`] would delete (one read; for progress output).
pub fn count_expired(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<i64> {
    t::table
        .inner_join(g::table)
        .filter(dsl::expires_at.lt(before))
        .count()
        .get_result(conn)
}

/// Deletes the rows glue wrote (those with a side row) that expired before `before`, with
/// their side rows, then side rows whose token row is gone (deleted by the shop). Rows the
/// shop's own PHP Glue wrote are the shop's to purge.
///
/// The cost grows with the table once, not per batch: the rows are found by a plain read that
/// walks the primary key from where the last batch stopped (no index on `expires_at` needed,
/// none added to Spryker's table), [`PURGE_BATCH`] ids at a time, and deleted in transactions
/// sized to last about [`purge_transaction_target`] (2 ms on SQLite, 100 ms elsewhere), with the expiry checked again. After each
/// transaction the purge pauses as long as the transaction took, so the service's writers
/// (SQLite has one lock for the whole database) always get at least half of the time.
/// `progress` sees every transaction.
pub fn purge_expired(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    mut progress: impl FnMut(&PurgeProgress),
) -> QueryResult<PurgeProgress> {
    let mut done = PurgeProgress::default();
    let target = purge_transaction_target(conn.backend().write_lock());
    let mut batch_size = 100;
    let mut after = i64::MIN;
    loop {
        // The cursor on both sides of the join: PostgreSQL's merge join does not carry a range
        // from one side to the other, and would read the side table from its start each time.
        let ids: Vec<i64> = t::table
            .inner_join(g::table)
            .filter(dsl::id_oauth_refresh_token.gt(after))
            .filter(side::id_oauth_refresh_token.gt(after))
            .filter(dsl::expires_at.lt(before))
            .select(dsl::id_oauth_refresh_token)
            .order(dsl::id_oauth_refresh_token.asc())
            .limit(PURGE_BATCH)
            .load(conn)?;
        if ids.is_empty() {
            break;
        }
        let mut start = 0;
        while start < ids.len() {
            let chunk = &ids[start..(start + batch_size).min(ids.len())];
            start += chunk.len();
            // Timed from the first statement to the commit: waiting for SQLite's lock is not
            // holding it.
            let begun = std::cell::Cell::new(std::time::Instant::now());
            let batch = crate::db::retry_deadlocks(|| {
                crate::db::write_transaction(&mut *conn, |conn| {
                    begun.set(std::time::Instant::now());
                    purge_batch(conn, chunk, before)
                })
            })?;
            let took = begun.get().elapsed();
            done.deleted += batch;
            done.transactions += 1;
            done.longest_transaction = done.longest_transaction.max(took);
            progress(&done);
            // The next batch aims at the target duration; then the service's writers get a
            // turn at least as long as this transaction was.
            let scaled = batch_size as f64 * target.as_secs_f64() / took.as_secs_f64().max(1e-6);
            batch_size = (scaled as usize).clamp(10, PURGE_BATCH as usize);
            crate::db::checkpoint(conn)?;
            std::thread::sleep(took);
        }
        after = *ids.last().expect("not empty");
    }
    purge_orphans(conn)?;
    Ok(done)
}

/// Deletes, in the caller's transaction, the rows of `chunk` that expired before `before` and
/// are still glue's; returns how many token rows.
fn purge_batch(
    conn: &mut DbConnection,
    chunk: &[i64],
    before: NaiveDateTime,
) -> QueryResult<usize> {
    let expired = || {
        t::table
            .filter(dsl::id_oauth_refresh_token.eq_any(chunk))
            .filter(dsl::expires_at.lt(before))
    };
    // Token rows first, as an exchange locks them (a no-op UPDATE holds the
    // row locks on PostgreSQL and MySQL), then the ones that are still glue's.
    diesel::update(expired())
        .set(dsl::updated_at.eq(dsl::updated_at))
        .execute(conn)?;
    let gone: Vec<i64> = expired()
        .inner_join(g::table)
        .select(dsl::id_oauth_refresh_token)
        .load(conn)?;
    diesel::delete(g::table.filter(side::id_oauth_refresh_token.eq_any(&gone))).execute(conn)?;
    let batch =
        diesel::delete(t::table.filter(dsl::id_oauth_refresh_token.eq_any(&gone))).execute(conn)?;
    Ok(batch)
}

/// Deletes side rows whose token row is gone (deleted by the shop).
fn purge_orphans(conn: &mut DbConnection) -> QueryResult<()> {
    // Orphans: found by a plain read (a side row is written after its token row, so a visible
    // side row without a visible token row has lost it), then deleted with the check repeated.
    let mut after = i64::MIN;
    loop {
        let orphans: Vec<i64> = g::table
            .filter(side::id_oauth_refresh_token.gt(after))
            .filter(diesel::dsl::not(diesel::dsl::exists(t::table.filter(
                dsl::id_oauth_refresh_token.eq(side::id_oauth_refresh_token),
            ))))
            .select(side::id_oauth_refresh_token)
            .order(side::id_oauth_refresh_token.asc())
            .limit(PURGE_BATCH)
            .load(conn)?;
        let Some(&last) = orphans.last() else {
            break;
        };
        after = last;
        diesel::delete(
            g::table
                .filter(side::id_oauth_refresh_token.eq_any(&orphans))
                .filter(diesel::dsl::not(diesel::dsl::exists(t::table.filter(
                    dsl::id_oauth_refresh_token.eq(side::id_oauth_refresh_token),
                )))),
        )
        .execute(conn)?;
    }
    Ok(())
}
