//! `spy_oauth_refresh_token` rows: persist, rotate with reuse detection, revoke, purge
//! (Spryker's `OauthRefreshTokenEntityManager` + `OauthRevoke`).
//!
//! Only the SHA-256 of a token is stored (`identifier`). Every token of one login shares a
//! `family`; rotating a token sets its `successor` and `revoked_at`. A retired token presented
//! again revokes its whole family.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::RefreshRejection;
use crate::db::schema::spy_oauth_refresh_token::{self as t, dsl};
use crate::db::DbConnection;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = t)]
pub struct NewRefreshToken {
    pub identifier: String,
    pub family: String,
    pub scopes: String,
    pub customer_reference: Option<String>,
    pub user_identifier: String,
    pub actor_identifier: Option<String>,
    pub fk_oauth_client: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The columns of [`RefreshTokenRow`], in its field order (diesel's `as_returning()` does not
/// work through the multi-backend connection; an explicit tuple does).
#[allow(clippy::type_complexity)]
const COLUMNS: (
    dsl::id_oauth_refresh_token,
    dsl::identifier,
    dsl::family,
    dsl::successor,
    dsl::scopes,
    dsl::customer_reference,
    dsl::user_identifier,
    dsl::actor_identifier,
    dsl::fk_oauth_client,
    dsl::expires_at,
    dsl::revoked_at,
) = (
    dsl::id_oauth_refresh_token,
    dsl::identifier,
    dsl::family,
    dsl::successor,
    dsl::scopes,
    dsl::customer_reference,
    dsl::user_identifier,
    dsl::actor_identifier,
    dsl::fk_oauth_client,
    dsl::expires_at,
    dsl::revoked_at,
);

#[derive(Debug, Clone, Queryable)]
pub struct RefreshTokenRow {
    pub id_oauth_refresh_token: i64,
    pub identifier: String,
    pub family: String,
    pub successor: Option<String>,
    pub scopes: String,
    pub customer_reference: Option<String>,
    pub user_identifier: String,
    pub actor_identifier: Option<String>,
    pub fk_oauth_client: String,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &NewRefreshToken) -> QueryResult<()> {
    diesel::insert_into(t::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, identifier: &str) -> QueryResult<Option<RefreshTokenRow>> {
    t::table
        .filter(dsl::identifier.eq(identifier))
        .select(COLUMNS)
        .first(conn)
        .optional()
}

/// What `rotate` did.
#[derive(Debug)]
pub enum RotateOutcome<T> {
    Rotated(T),
    Rejected(RefreshRejection),
}

/// Retires the token `presented` and stores the successor that `successor_of` builds from it,
/// in one transaction. The conditional UPDATE comes first: its affected row decides who wins
/// a race (PostgreSQL re-checks the condition after a concurrent commit; SQLite takes its write
/// lock with that statement), so N concurrent exchanges of one token rotate it exactly once.
pub fn rotate<T>(
    conn: &mut DbConnection,
    presented: &str,
    successor_identifier: &str,
    client_id: &str,
    successor_of: impl FnOnce(&RefreshTokenRow) -> QueryResult<(NewRefreshToken, T)>,
) -> QueryResult<RotateOutcome<T>> {
    conn.transaction(|conn| {
        let now = chrono::Utc::now().naive_utc();
        let claimed = diesel::update(
            t::table
                .filter(dsl::identifier.eq(presented))
                .filter(dsl::successor.is_null())
                .filter(dsl::revoked_at.is_null())
                .filter(dsl::expires_at.gt(now))
                .filter(dsl::fk_oauth_client.eq(client_id)),
        )
        .set((
            dsl::successor.eq(successor_identifier),
            dsl::revoked_at.eq(now),
            dsl::updated_at.eq(now),
        ))
        .returning(COLUMNS)
        .get_result(conn)
        .optional()?;
        if let Some(old) = claimed {
            let (row, value) = successor_of(&old)?;
            insert(conn, &row)?;
            return Ok(RotateOutcome::Rotated(value));
        }
        let Some(row) = find(conn, presented)? else {
            return Ok(RotateOutcome::Rejected(RefreshRejection::Unknown));
        };
        let reason = if row.fk_oauth_client != client_id {
            RefreshRejection::WrongClient
        } else if row.successor.is_some() {
            revoke_family(conn, &row.family, now)?;
            RefreshRejection::Reused
        } else if row.revoked_at.is_some() {
            RefreshRejection::Revoked
        } else if row.expires_at <= now {
            RefreshRejection::Expired
        } else {
            RefreshRejection::LostRace
        };
        Ok(RotateOutcome::Rejected(reason))
    })
}

/// Revokes every live token of a family.
pub fn revoke_family(
    conn: &mut DbConnection,
    family: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(dsl::family.eq(family))
            .filter(dsl::revoked_at.is_null()),
    )
    .set((dsl::revoked_at.eq(now), dsl::updated_at.eq(now)))
    .execute(conn)
}

/// Revokes the family of the token with this identifier, only if `owner` (a `sub` JSON) owns it.
pub fn revoke_family_owned_by(
    conn: &mut DbConnection,
    identifier: &str,
    owner: &str,
) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let family: Option<String> = t::table
            .filter(dsl::identifier.eq(identifier))
            .filter(dsl::user_identifier.eq(owner))
            .select(dsl::family)
            .first(conn)
            .optional()?;
        match family {
            Some(family) => revoke_family(conn, &family, chrono::Utc::now().naive_utc()),
            None => Ok(0),
        }
    })
}

/// Revokes every live token `owner` (a `sub` JSON) has.
pub fn revoke_all_owned_by(conn: &mut DbConnection, owner: &str) -> QueryResult<usize> {
    let now = chrono::Utc::now().naive_utc();
    diesel::update(
        t::table
            .filter(dsl::user_identifier.eq(owner))
            .filter(dsl::revoked_at.is_null()),
    )
    .set((dsl::revoked_at.eq(now), dsl::updated_at.eq(now)))
    .execute(conn)
}

/// Deletes rows that expired before `before`.
pub fn purge_expired(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(t::table.filter(dsl::expires_at.lt(before))).execute(conn)
}
