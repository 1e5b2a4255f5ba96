//! `spy_user` rows and queries (Spryker's `User` + `Agent` modules): agents are users with
//! `is_agent` true (NULL is not an agent) and status 0 (Propel's ENUM index of `active`).
//! Usernames match exactly on every backend (also under MySQL's case-insensitive collation).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::spy_user::{self as t, dsl};
use crate::db::DbConnection;

/// `spy_user.status`, Propel's 0-based index into `active, blocked, deleted`.
pub const STATUS_ACTIVE: i16 = 0;
pub const STATUS_BLOCKED: i16 = 1;
pub const STATUS_DELETED: i16 = 2;

/// The demo agent the first migration seeds (Spryker's documentation credentials).
pub const DEMO_USERNAME: &str = "admin@spryker.com";
pub const DEMO_PASSWORD: &str = "change123";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
pub struct User {
    pub id_user: i32,
    pub first_name: String,
    pub last_name: String,
    pub username: String,
    pub password: String,
    pub status: i16,
    pub is_agent: Option<bool>,
    pub last_login: Option<NaiveDateTime>,
}

impl User {
    pub fn is_agent(&self) -> bool {
        self.is_agent == Some(true)
    }
}

/// A user to create (an agent when `is_agent`).
#[derive(Debug, Clone, Copy)]
pub struct NewAgent<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub username: &'a str,
    /// A bcrypt hash.
    pub password: &'a str,
    pub status: i16,
    pub is_agent: bool,
}

#[derive(Insertable)]
#[diesel(table_name = t)]
struct UserRow<'a> {
    first_name: &'a str,
    last_name: &'a str,
    username: &'a str,
    password: &'a str,
    status: i16,
    is_agent: Option<bool>,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
}

fn now() -> NaiveDateTime {
    crate::db::now()
}

pub fn find_by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
    if !crate::db::storable(username) {
        return Ok(None);
    }
    t::table
        .filter(conn.backend().equals_exactly("username", username))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The user if it may log in as an agent: exists, `is_agent`, active.
pub fn find_active_agent(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
    if !crate::db::storable(username) {
        return Ok(None);
    }
    t::table
        .filter(conn.backend().equals_exactly("username", username))
        .filter(dsl::is_agent.eq(true))
        .filter(dsl::status.eq(STATUS_ACTIVE))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Every agent (`is_agent` true), by id.
pub fn list_agents(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    t::table
        .filter(dsl::is_agent.eq(true))
        .order(dsl::id_user.asc())
        .select(User::as_select())
        .load(conn)
}

/// Inserts a user as Spryker's back office would (a Propel sequence id on PostgreSQL); a
/// duplicate username is a `UniqueViolation` error.
pub fn create(conn: &mut DbConnection, agent: &NewAgent<'_>) -> QueryResult<i32> {
    let row = UserRow {
        first_name: agent.first_name,
        last_name: agent.last_name,
        username: agent.username,
        password: agent.password,
        status: agent.status,
        is_agent: Some(agent.is_agent),
        created_at: Some(now()),
        updated_at: Some(now()),
    };
    let id = crate::db::insert_with_id(conn, "spy_user_pk_seq", |conn, id| match id {
        Some(id) => diesel::insert_into(t::table)
            .values((dsl::id_user.eq(id as i32), &row))
            .execute(conn),
        None => diesel::insert_into(t::table).values(&row).execute(conn),
    })?;
    Ok(id as i32)
}

/// Sets the status of the agent with this username; returns rows changed (0 = no such agent).
pub fn set_status(conn: &mut DbConnection, username: &str, status: i16) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(dsl::username.eq(username))
            .filter(dsl::is_agent.eq(true)),
    )
    .set((dsl::status.eq(status), dsl::updated_at.eq(now())))
    .execute(conn)
}

/// Replaces the password hash of the agent with this username; returns rows changed.
pub fn set_password(conn: &mut DbConnection, username: &str, hash: &str) -> QueryResult<usize> {
    diesel::update(
        t::table
            .filter(dsl::username.eq(username))
            .filter(dsl::is_agent.eq(true)),
    )
    .set((dsl::password.eq(hash), dsl::updated_at.eq(now())))
    .execute(conn)
}

pub fn touch_last_login(conn: &mut DbConnection, id_user: i32) -> QueryResult<usize> {
    diesel::update(t::table.find(id_user))
        .set(dsl::last_login.eq(now()))
        .execute(conn)
}

/// The agent behind a token, if it may still act: exists, `is_agent`, active. An agent
/// deactivated after logging in is refused at once, not when its token expires.
pub fn find_active_agent_by_id(conn: &mut DbConnection, id_user: i64) -> QueryResult<Option<User>> {
    let Ok(id_user) = i32::try_from(id_user) else {
        return Ok(None);
    };
    crate::db::first_match(
        t::table
            .find(id_user)
            .filter(dsl::is_agent.eq(true))
            .filter(dsl::status.eq(STATUS_ACTIVE))
            .select(User::as_select()),
        conn,
    )
}

/// Replaces the password hash of the user with this id (a rehash at login), only if it is
/// still `old_hash`.
pub fn replace_hash(
    conn: &mut DbConnection,
    id_user: i32,
    old_hash: &str,
    new_hash: &str,
) -> QueryResult<usize> {
    diesel::update(t::table.find(id_user).filter(dsl::password.eq(old_hash)))
        .set((
            dsl::password.eq(new_hash),
            dsl::updated_at.eq(crate::db::now()),
        ))
        .execute(conn)
}

/// The bcrypt costs of the stored hashes, each once (one scan, at start-up).
pub fn hash_costs(conn: &mut DbConnection) -> QueryResult<Vec<u32>> {
    let costs: Vec<String> = t::table
        .select(crate::db::substr(dsl::password, 5, 2))
        .distinct()
        .load(conn)?;
    Ok(costs.iter().filter_map(|c| c.parse().ok()).collect())
}
