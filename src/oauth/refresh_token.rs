//! `spy_oauth_refresh_token` rows: persist, rotate with reuse detection, revoke, purge
//! (Spryker's `OauthRefreshTokenEntityManager` + `OauthRevoke`).
//!
//! Only the SHA-256 of a token is stored (`identifier`). Every token of one login shares a
//! `family`; rotating a token sets its `successor` and `revoked_at`. A retired token presented
//! again revokes its whole family.

use chrono::NaiveDateTime;
use diesel::prelude::*;

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

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
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
        .select(RefreshTokenRow::as_select())
        .first(conn)
        .optional()
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

/// Retires `current` and stores `successor` in its place, in one write transaction that first
/// locks the row (a no-op UPDATE: PostgreSQL and MySQL hold the row lock until commit, SQLite's
/// `BEGIN IMMEDIATE` holds the database) and judges it again with [`refusal`]. So N concurrent
/// exchanges of one token rotate it exactly once; the others find it retired, which revokes the
/// family.
pub fn exchange(
    conn: &mut DbConnection,
    current: &RefreshTokenRow,
    successor: &NewRefreshToken,
    client_id: &str,
) -> QueryResult<Exchange> {
    crate::db::write_transaction(conn, |conn| {
        let this =
            || t::table.filter(dsl::id_oauth_refresh_token.eq(current.id_oauth_refresh_token));
        diesel::update(this())
            .set(dsl::updated_at.eq(dsl::updated_at))
            .execute(conn)?;
        let Some(row) = this()
            .select(RefreshTokenRow::as_select())
            .first::<RefreshTokenRow>(conn)
            .optional()?
        else {
            return Ok(Exchange::Refused(Refusal::Unknown));
        };
        let now = chrono::Utc::now().naive_utc();
        match refusal(&row, client_id, now) {
            Some(Refusal::Retired) => {
                revoke_family(conn, &row.family, now)?;
                Ok(Exchange::Reused)
            }
            Some(refusal) => Ok(Exchange::Refused(refusal)),
            None => {
                diesel::update(this())
                    .set((
                        dsl::successor.eq(&successor.identifier),
                        dsl::revoked_at.eq(now),
                        dsl::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                insert(conn, successor)?;
                Ok(Exchange::Rotated)
            }
        }
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

/// True while some token of the family is not revoked (rotation revokes a token but leaves its
/// successor live; logout and reuse revoke them all).
pub fn family_is_live(conn: &mut DbConnection, family: &str) -> QueryResult<bool> {
    if !crate::db::storable(family) {
        return Ok(false);
    }
    diesel::select(diesel::dsl::exists(
        t::table
            .filter(dsl::family.eq(family))
            .filter(dsl::revoked_at.is_null()),
    ))
    .get_result(conn)
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

/// Revokes every live token `owner` has: for an impersonation session (an actor) the tokens of
/// that customer acting as that agent; otherwise every token issued to the owner and every
/// token issued to anyone *acting as* the owner (an agent's impersonation sessions; for a
/// customer, the agents acting for them).
pub fn revoke_all_owned_by(conn: &mut DbConnection, owner: Owner<'_>) -> QueryResult<usize> {
    let now = chrono::Utc::now().naive_utc();
    let target = diesel::update(t::table)
        .filter(dsl::revoked_at.is_null())
        .into_boxed();
    let target = match owner.actor_identifier {
        Some(actor) => target
            .filter(dsl::user_identifier.eq(owner.user_identifier))
            .filter(dsl::actor_identifier.eq(actor)),
        None => target.filter(
            dsl::user_identifier
                .eq(owner.user_identifier)
                .or(dsl::actor_identifier.eq(owner.user_identifier)),
        ),
    };
    target
        .set((dsl::revoked_at.eq(now), dsl::updated_at.eq(now)))
        .execute(conn)
}

/// Deletes rows that expired before `before`.
pub fn purge_expired(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(t::table.filter(dsl::expires_at.lt(before))).execute(conn)
}
