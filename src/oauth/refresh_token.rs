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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated,
    Rejected(RefreshRejection),
}

/// True if the row can be exchanged now by `client_id`.
pub fn is_exchangeable(row: &RefreshTokenRow, client_id: &str, now: NaiveDateTime) -> bool {
    row.successor.is_none()
        && row.revoked_at.is_none()
        && row.expires_at > now
        && row.fk_oauth_client == client_id
}

/// Retires the token `presented` and stores `successor` in its place, in one write
/// transaction. The conditional UPDATE decides who wins a race: PostgreSQL re-checks its
/// condition after a concurrent commit, SQLite serializes writers, so N concurrent exchanges of
/// one token rotate it exactly once. Without a successor (the caller already saw that the token
/// cannot be exchanged) only the reason is worked out. A retired token (one with a successor)
/// revokes its whole family: it is either stolen or replayed.
pub fn rotate(
    conn: &mut DbConnection,
    presented: &str,
    successor: Option<&NewRefreshToken>,
    client_id: &str,
) -> QueryResult<RotateOutcome> {
    crate::db::write_transaction(conn, |conn| {
        let now = chrono::Utc::now().naive_utc();
        if let Some(successor) = successor {
            let claimed = diesel::update(
                t::table
                    .filter(dsl::identifier.eq(presented))
                    .filter(dsl::successor.is_null())
                    .filter(dsl::revoked_at.is_null())
                    .filter(dsl::expires_at.gt(now))
                    .filter(dsl::fk_oauth_client.eq(client_id)),
            )
            .set((
                dsl::successor.eq(&successor.identifier),
                dsl::revoked_at.eq(now),
                dsl::updated_at.eq(now),
            ))
            .execute(conn)?;
            if claimed == 1 {
                insert(conn, successor)?;
                return Ok(RotateOutcome::Rotated);
            }
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

/// Whose tokens a caller may revoke: its `sub` JSON and, for an impersonation session, the
/// acting agent's `sub` JSON (an agent ends its own impersonation, not the customer's logins).
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub user_identifier: &'a str,
    pub actor_identifier: Option<&'a str>,
}

impl Owner<'_> {
    fn owns(&self, row: &RefreshTokenRow) -> bool {
        row.user_identifier == self.user_identifier
            && match self.actor_identifier {
                Some(actor) => row.actor_identifier.as_deref() == Some(actor),
                None => true,
            }
    }
}

/// Revokes the family of the token with this identifier, only if `owner` owns it.
pub fn revoke_family_owned_by(
    conn: &mut DbConnection,
    identifier: &str,
    owner: Owner<'_>,
) -> QueryResult<usize> {
    crate::db::write_transaction(conn, |conn| match find(conn, identifier)? {
        Some(row) if owner.owns(&row) => {
            revoke_family(conn, &row.family, chrono::Utc::now().naive_utc())
        }
        _ => Ok(0),
    })
}

/// Revokes every live token `owner` has.
pub fn revoke_all_owned_by(conn: &mut DbConnection, owner: Owner<'_>) -> QueryResult<usize> {
    let now = chrono::Utc::now().naive_utc();
    let mut target = diesel::update(t::table)
        .filter(dsl::user_identifier.eq(owner.user_identifier))
        .filter(dsl::revoked_at.is_null())
        .into_boxed();
    if let Some(actor) = owner.actor_identifier {
        target = target.filter(dsl::actor_identifier.eq(actor));
    }
    target
        .set((dsl::revoked_at.eq(now), dsl::updated_at.eq(now)))
        .execute(conn)
}

/// Deletes rows that expired before `before`.
pub fn purge_expired(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(t::table.filter(dsl::expires_at.lt(before))).execute(conn)
}
