//! `spy_user` rows and queries (Spryker's `User` + `Agent` modules): agents are users with
//! `is_agent = true`; only `active` agents may log in.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::spy_user::{self as t, dsl};
use crate::db::DbConnection;

pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_BLOCKED: &str = "blocked";

/// The demo agent the first migration seeds (Spryker's documentation credentials).
pub const DEMO_USERNAME: &str = "admin@spryker.com";
pub const DEMO_PASSWORD: &str = "change123";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
pub struct User {
    pub id_user: i64,
    pub first_name: String,
    pub last_name: String,
    pub username: String,
    pub password: String,
    pub status: String,
    pub is_agent: bool,
    pub last_login: Option<NaiveDateTime>,
}

/// A user to create (an agent when `is_agent`).
#[derive(Debug, Clone, Copy)]
pub struct NewAgent<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub username: &'a str,
    /// A bcrypt hash.
    pub password: &'a str,
    pub status: &'a str,
    pub is_agent: bool,
}

#[derive(Insertable)]
#[diesel(table_name = t)]
struct UserRow<'a> {
    first_name: &'a str,
    last_name: &'a str,
    username: &'a str,
    password: &'a str,
    status: &'a str,
    is_agent: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

pub fn find_by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
    if !crate::db::storable(username) {
        return Ok(None);
    }
    t::table
        .filter(dsl::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The user if it may log in as an agent: exists, `is_agent`, `active`.
pub fn find_active_agent(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
    if !crate::db::storable(username) {
        return Ok(None);
    }
    t::table
        .filter(dsl::username.eq(username))
        .filter(dsl::is_agent.eq(true))
        .filter(dsl::status.eq(STATUS_ACTIVE))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Inserts an active agent; a duplicate username is a `UniqueViolation` error.
pub fn create(conn: &mut DbConnection, agent: &NewAgent<'_>) -> QueryResult<i64> {
    let now = chrono::Utc::now().naive_utc();
    diesel::insert_into(t::table)
        .values(UserRow {
            first_name: agent.first_name,
            last_name: agent.last_name,
            username: agent.username,
            password: agent.password,
            status: agent.status,
            is_agent: agent.is_agent,
            created_at: now,
            updated_at: now,
        })
        .returning(dsl::id_user)
        .get_result(conn)
}

/// Sets the status of the agent with this username; returns rows changed (0 = no such agent).
pub fn set_status(conn: &mut DbConnection, username: &str, status: &str) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(dsl::username.eq(username))
            .filter(dsl::is_agent.eq(true)),
    )
    .set((
        dsl::status.eq(status),
        dsl::updated_at.eq(chrono::Utc::now().naive_utc()),
    ))
    .execute(conn)
}

/// Replaces the password hash of the agent with this username; returns rows changed.
pub fn set_password(conn: &mut DbConnection, username: &str, hash: &str) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(dsl::username.eq(username))
            .filter(dsl::is_agent.eq(true)),
    )
    .set((
        dsl::password.eq(hash),
        dsl::updated_at.eq(chrono::Utc::now().naive_utc()),
    ))
    .execute(conn)
}

pub fn touch_last_login(conn: &mut DbConnection, id_user: i64) -> QueryResult<usize> {
    let now = chrono::Utc::now().naive_utc();
    diesel::update(t::table.find(id_user))
        .set(dsl::last_login.eq(now))
        .execute(conn)
}

/// The agent behind a token, if it may still act: exists, `is_agent`, `active`. An agent
/// deactivated after logging in is refused at once, not when its token expires.
pub fn find_active_agent_by_id(conn: &mut DbConnection, id_user: i64) -> QueryResult<Option<User>> {
    t::table
        .find(id_user)
        .filter(dsl::is_agent.eq(true))
        .filter(dsl::status.eq(STATUS_ACTIVE))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Replaces the password hash of the user with this id (a rehash at login).
pub fn replace_hash(conn: &mut DbConnection, id_user: i64, hash: &str) -> QueryResult<usize> {
    diesel::update(t::table.find(id_user))
        .set((
            dsl::password.eq(hash),
            dsl::updated_at.eq(chrono::Utc::now().naive_utc()),
        ))
        .execute(conn)
}

/// The highest bcrypt cost of any stored hash (one scan, at start-up).
pub fn highest_hash_cost(conn: &mut DbConnection) -> QueryResult<Option<u32>> {
    let costs: Vec<String> = t::table
        .select(crate::db::substr(dsl::password, 5, 2))
        .distinct()
        .load(conn)?;
    Ok(crate::db::highest_cost(&costs))
}
