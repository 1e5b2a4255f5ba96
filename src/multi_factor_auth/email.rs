//! The shop's own `email` method (Spryker's `spryker/multi-factor-auth`), in Spryker's tables and
//! with Spryker's rules, so that Zed sees every code and attempt: a method is a
//! `spy_user_multi_factor_auth` row (type `email`, status 2 active); a code is a
//! `spy_user_multi_factor_auth_codes` row (six digits, 100000–999999 as Spryker draws them, valid
//! 30 minutes in the shop's time zone, earlier unverified ones invalidated); every code entered
//! is a `spy_user_multi_factor_auth_codes_attempts` row, and the third wrong one blocks the code.
//!
//! Only the latest code counts (Spryker's `getUserCode`), and each decision on it runs under its
//! row lock, so that a burst of guesses cannot pass three attempts nor one code pass twice.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::spy_user_multi_factor_auth::{self as m, dsl as md};
use crate::db::schema::spy_user_multi_factor_auth_codes::{self as c, dsl as cd};
use crate::db::schema::spy_user_multi_factor_auth_codes_attempts::{self as a, dsl as ad};
use crate::db::DbConnection;

/// `spy_user_multi_factor_auth.type` of the shop's email method.
pub const TYPE_EMAIL: &str = "email";

/// Method statuses (Spryker's `MultiFactorAuthConstants`).
pub const METHOD_INACTIVE: i32 = 0;
pub const METHOD_PENDING: i32 = 1;
pub const METHOD_ACTIVE: i32 = 2;

/// Code statuses.
pub const CODE_UNVERIFIED: i32 = 0;
pub const CODE_BLOCKED: i32 = 1;
pub const CODE_VERIFIED: i32 = 2;
pub const CODE_INVALIDATED: i32 = 3;

/// Spryker's `getUserCodeValidityTtl()` (minutes) and `getUserAttemptsLimit()`.
pub const CODE_VALIDITY_MINUTES: i64 = 30;
pub const ATTEMPTS_LIMIT: i64 = 3;

/// A code to mail: never shown in `Debug` output.
pub struct OutgoingCode {
    pub id_user: i32,
    pub id_code: i32,
    /// The agent's address (`spy_user.username`).
    pub to: String,
    pub code: String,
}

impl std::fmt::Debug for OutgoingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingCode")
            .field("id_user", &self.id_user)
            .field("id_code", &self.id_code)
            .finish_non_exhaustive()
    }
}

/// The mail a code goes out in: (subject, text). Spryker's glossary text (`en_US`).
pub fn message(code: &str) -> (&'static str, String) {
    (
        "Your verification code",
        format!(
            "To proceed with your request, please use the following verification code: {code}. \
             If you did not request this code, please ignore this email.\r\n\r\n\
             The code is valid for {CODE_VALIDITY_MINUTES} minutes.\r\n"
        ),
    )
}

/// The agent's email method: (id, status), the latest row if the shop keeps several.
pub fn method_of(conn: &mut DbConnection, id_user: i32) -> QueryResult<Option<(i32, i32)>> {
    m::table
        .filter(md::fk_user.eq(id_user))
        .filter(md::kind.eq(TYPE_EMAIL))
        .order(md::id_user_multi_factor_auth.desc())
        .select((md::id_user_multi_factor_auth, md::status))
        .first::<(i32, Option<i32>)>(conn)
        .optional()
        .map(|row| row.map(|(id, status)| (id, status.unwrap_or(METHOD_INACTIVE))))
}

/// The id of the agent's active email method.
pub fn active_method(conn: &mut DbConnection, id_user: i32) -> QueryResult<Option<i32>> {
    m::table
        .filter(md::fk_user.eq(id_user))
        .filter(md::kind.eq(TYPE_EMAIL))
        .filter(md::status.eq(METHOD_ACTIVE))
        .order(md::id_user_multi_factor_auth.desc())
        .select(md::id_user_multi_factor_auth)
        .first(conn)
        .optional()
}

/// Takes the method row's lock (and changes nothing) for the rest of the transaction.
fn lock_method(conn: &mut DbConnection, id_method: i32) -> QueryResult<()> {
    diesel::update(m::table.filter(md::id_user_multi_factor_auth.eq(id_method)))
        .set(md::status.eq(md::status))
        .execute(conn)
        .map(|_| ())
}

/// A new six-digit code, as Spryker draws them.
fn new_code() -> String {
    rand::random_range(100_000..=999_999u32).to_string()
}

/// A fresh code for the method, unless one went out less than `interval` ago and was neither
/// used nor withdrawn (then `None`: the agent has it already — or blocked it with wrong
/// guesses, which must not buy a new mail either — so a mailbox cannot be flooded). Earlier
/// unverified codes are invalidated. `now`: the shop's wall-clock time.
pub fn issue_code(
    conn: &mut DbConnection,
    id_method: i32,
    id_user: i32,
    to: &str,
    now: NaiveDateTime,
    interval: Duration,
) -> QueryResult<Option<OutgoingCode>> {
    crate::db::retry_deadlocks(|| {
        crate::db::write_transaction(&mut *conn, |conn| {
            lock_method(conn, id_method)?;
            let latest: Option<(Option<i32>, NaiveDateTime, Option<NaiveDateTime>)> = c::table
                .filter(cd::fk_user_multi_factor_auth.eq(id_method))
                .order(cd::id_user_multi_factor_auth_code.desc())
                .select((cd::status, cd::expiration_date, cd::created_at))
                .first::<(Option<i32>, NaiveDateTime, Option<NaiveDateTime>)>(conn)
                .optional()?;
            if let Some((status, _, Some(created))) = latest {
                let counts = matches!(
                    status.unwrap_or(CODE_UNVERIFIED),
                    CODE_UNVERIFIED | CODE_BLOCKED
                );
                if counts && created > now - interval {
                    return Ok(None);
                }
            }
            diesel::update(
                c::table
                    .filter(cd::fk_user_multi_factor_auth.eq(id_method))
                    .filter(cd::status.eq(CODE_UNVERIFIED)),
            )
            .set((cd::status.eq(CODE_INVALIDATED), cd::updated_at.eq(now)))
            .execute(conn)?;
            let code = new_code();
            let values = (
                cd::fk_user_multi_factor_auth.eq(id_method),
                cd::code.eq(code.clone()),
                cd::status.eq(CODE_UNVERIFIED),
                cd::expiration_date.eq(now + Duration::minutes(CODE_VALIDITY_MINUTES)),
                cd::created_at.eq(now),
                cd::updated_at.eq(now),
            );
            let id = crate::db::insert_with_id(
                conn,
                "id_user_multi_factor_auth_code_pk_seq",
                |conn, id| match id {
                    Some(id) => diesel::insert_into(c::table)
                        .values((cd::id_user_multi_factor_auth_code.eq(id as i32), values))
                        .execute(conn),
                    None => diesel::insert_into(c::table).values(values).execute(conn),
                },
            )?;
            Ok(Some(OutgoingCode {
                id_user,
                id_code: id as i32,
                to: to.to_string(),
                code,
            }))
        })
    })
}

/// Withdraws a code that could not be sent, so that the next request sends a new one at once.
pub fn withdraw(conn: &mut DbConnection, id_code: i32, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        c::table
            .filter(cd::id_user_multi_factor_auth_code.eq(id_code))
            .filter(cd::status.eq(CODE_UNVERIFIED)),
    )
    .set((cd::status.eq(CODE_INVALIDATED), cd::updated_at.eq(now)))
    .execute(conn)
    .map(|_| ())
}

/// Equal in constant time (the code is short, but its comparison tells nothing either way).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Enters `code` for the method, as Spryker's `AbstractCodeValidator` does: an attempt row; the
/// latest code passes when it matches, is unverified and not expired (it becomes verified, and a
/// pending method active); otherwise it is blocked once its attempts reach the limit or it has
/// expired. True when the code passed.
pub fn enter_code(
    conn: &mut DbConnection,
    id_method: i32,
    code: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    crate::db::retry_deadlocks(|| {
        crate::db::write_transaction(&mut *conn, |conn| {
            lock_method(conn, id_method)?;
            let latest: Option<(i32, String, Option<i32>, NaiveDateTime)> = c::table
                .filter(cd::fk_user_multi_factor_auth.eq(id_method))
                .order(cd::id_user_multi_factor_auth_code.desc())
                .select((
                    cd::id_user_multi_factor_auth_code,
                    cd::code,
                    cd::status,
                    cd::expiration_date,
                ))
                .first::<(i32, String, Option<i32>, NaiveDateTime)>(conn)
                .optional()?;
            let Some((id_code, stored, status, expires)) = latest else {
                return Ok(false);
            };
            let status = status.unwrap_or(CODE_UNVERIFIED);
            let values = (
                ad::fk_user_multi_factor_auth_code.eq(id_code),
                ad::created_at.eq(now),
                ad::updated_at.eq(now),
            );
            crate::db::insert_with_id(
                conn,
                "id_user_multi_factor_auth_code_attempt_pk_seq",
                |conn, id| match id {
                    Some(id) => diesel::insert_into(a::table)
                        .values((
                            ad::id_user_multi_factor_auth_code_attempt.eq(id as i32),
                            values,
                        ))
                        .execute(conn),
                    None => diesel::insert_into(a::table).values(values).execute(conn),
                },
            )?;
            let expired = expires < now;
            if status == CODE_UNVERIFIED && !expired && same(&stored, code) {
                // Verified, and expired now: Spryker's Zed and Yves ask no code while the
                // user's latest code is verified and unexpired, so a code used here must not
                // open the back office or the storefront for the rest of its 30 minutes.
                diesel::update(c::table.filter(cd::id_user_multi_factor_auth_code.eq(id_code)))
                    .set((
                        cd::status.eq(CODE_VERIFIED),
                        cd::expiration_date.eq(now),
                        cd::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                diesel::update(
                    m::table
                        .filter(md::id_user_multi_factor_auth.eq(id_method))
                        .filter(md::status.eq(METHOD_PENDING)),
                )
                .set((md::status.eq(METHOD_ACTIVE), md::updated_at.eq(now)))
                .execute(conn)?;
                return Ok(true);
            }
            if status == CODE_UNVERIFIED {
                let attempts: i64 = a::table
                    .filter(ad::fk_user_multi_factor_auth_code.eq(id_code))
                    .count()
                    .get_result(conn)?;
                if attempts >= ATTEMPTS_LIMIT || expired {
                    diesel::update(c::table.filter(cd::id_user_multi_factor_auth_code.eq(id_code)))
                        .set((cd::status.eq(CODE_BLOCKED), cd::updated_at.eq(now)))
                        .execute(conn)?;
                }
            }
            Ok(false)
        })
    })
}

/// Gives the agent the email method, active at once (`glue agent mfa activate --type email`:
/// the operator vouches for the address the back office keeps); false when it already had it.
pub fn activate(conn: &mut DbConnection, id_user: i32, now: NaiveDateTime) -> QueryResult<bool> {
    crate::db::write_transaction(conn, |conn| {
        if let Some((id, status)) = method_of(conn, id_user)? {
            if status == METHOD_ACTIVE {
                return Ok(false);
            }
            diesel::update(m::table.filter(md::id_user_multi_factor_auth.eq(id)))
                .set((md::status.eq(METHOD_ACTIVE), md::updated_at.eq(now)))
                .execute(conn)?;
            return Ok(true);
        }
        let values = (
            md::fk_user.eq(id_user),
            md::kind.eq(TYPE_EMAIL),
            md::status.eq(METHOD_ACTIVE),
            md::created_at.eq(now),
            md::updated_at.eq(now),
        );
        crate::db::insert_with_id(
            conn,
            "id_user_multi_factor_auth_pk_seq",
            |conn, id| match id {
                Some(id) => diesel::insert_into(m::table)
                    .values((md::id_user_multi_factor_auth.eq(id as i32), values))
                    .execute(conn),
                None => diesel::insert_into(m::table).values(values).execute(conn),
            },
        )?;
        Ok(true)
    })
}

/// Sets the agent's email method inactive (Spryker keeps the row and its codes); false when it
/// had no method that was not inactive already.
pub fn deactivate(conn: &mut DbConnection, id_user: i32, now: NaiveDateTime) -> QueryResult<bool> {
    let changed = diesel::update(
        m::table
            .filter(md::fk_user.eq(id_user))
            .filter(md::kind.eq(TYPE_EMAIL))
            .filter(md::status.ne(METHOD_INACTIVE)),
    )
    .set((md::status.eq(METHOD_INACTIVE), md::updated_at.eq(now)))
    .execute(conn)?;
    Ok(changed > 0)
}

/// Every agent's email method that is not inactive: (id_user, status, created_at).
pub fn methods(conn: &mut DbConnection) -> QueryResult<Vec<(i32, i32, Option<NaiveDateTime>)>> {
    let rows: Vec<(i32, Option<i32>, Option<NaiveDateTime>)> = m::table
        .filter(md::kind.eq(TYPE_EMAIL))
        .filter(md::status.ne(METHOD_INACTIVE))
        .select((md::fk_user, md::status, md::created_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, status, created)| (id, status.unwrap_or(METHOD_INACTIVE), created))
        .collect())
}

/// Whether this database holds Spryker's three MFA tables (a shop without them did not install
/// `spryker/multi-factor-auth`: no agent has the email method there).
pub fn tables_present(conn: &mut DbConnection, layout: &crate::db::Layout) -> QueryResult<bool> {
    crate::db::layout::mfa_tables_present(conn, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_as_spryker_draws_them() {
        for _ in 0..1000 {
            let code = new_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
            assert_ne!(code.as_bytes()[0], b'0');
        }
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same("123456", "123456"));
        assert!(!same("123456", "123457"));
        assert!(!same("123456", "12345"));
        assert!(!same("", "1"));
    }

    #[test]
    fn an_outgoing_code_never_shows_in_debug() {
        let outgoing = OutgoingCode {
            id_user: 1,
            id_code: 7,
            to: "a@b.test".into(),
            code: "987654".into(),
        };
        assert!(!format!("{outgoing:?}").contains("987654"));
    }
}
