//! Statements that stay prepared. diesel keeps a prepared statement per connection for most
//! queries, but prepares afresh every `UPDATE` (a changeset may skip `None` fields) and every
//! statement with an `sql` fragment, and SQLite compiles a statement with a bound `LIMIT` again on
//! every execution. Preparing costs SQLite a parse and the servers a round trip: on the refresh
//! path that was nine of a refresh's eleven statements, a tenth to a sixth of its CPU on SQLite. The
//! forms here keep their statements prepared; each one's SQL text comes from a closed set, so the
//! cache (keyed by that text) stays small.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression};
use diesel::prelude::*;
use diesel::query_builder::{AsChangeset, AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Bool;

use super::DbConnection;

/// The row a lookup by a key finds, if any: [`first`](diesel::RunQueryDsl::first) without its
/// `LIMIT ?`. SQLite marks a statement whose `LIMIT` is a bound parameter as depending on that
/// value and compiles it again on every execution (about a tenth of a refresh's CPU, in the
/// profile), so lookups that match one row by construction (a primary key, a unique column, a
/// token's SHA-256) read the first row of the result instead; the statement stays cached.
pub fn first_match<'query, Q, U>(query: Q, conn: &mut DbConnection) -> QueryResult<Option<U>>
where
    Q: diesel::query_dsl::LoadQuery<'query, DbConnection, U> + 'query,
    U: 'query,
{
    query
        .load_iter::<U, diesel::connection::DefaultLoadingMode>(conn)?
        .next()
        .transpose()
}

/// `UPDATE table SET changes WHERE filter`, as `diesel::update(table.filter(filter)).set(changes)`
/// writes it, but kept prepared. Only for changesets without optional fields (tuples of
/// `column.eq(value)`), whose text never varies.
pub fn update_cached<T, V, W>(
    table: T,
    changes: V,
    filter: W,
) -> CachedUpdate<T::FromClause, V::Changeset, W>
where
    T: Table,
    V: AsChangeset<Target = T>,
    W: Expression<SqlType = Bool> + AppearsOnTable<T>,
{
    CachedUpdate {
        from: table.from_clause(),
        changes: changes.as_changeset(),
        filter,
    }
}

/// See [`update_cached`].
#[derive(Debug, Clone)]
pub struct CachedUpdate<F, V, W> {
    from: F,
    changes: V,
    filter: W,
}

impl<F, V, W> QueryId for CachedUpdate<F, V, W> {
    // Keyed by its SQL text (see the module's note).
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, V, W, DB> QueryFragment<DB> for CachedUpdate<F, V, W>
where
    DB: Backend,
    F: QueryFragment<DB>,
    V: QueryFragment<DB>,
    W: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.changes.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

impl<F, V, W, Conn> RunQueryDsl<Conn> for CachedUpdate<F, V, W> {}

/// A constant statement (`BEGIN IMMEDIATE`, `SELECT last_insert_rowid()`), kept prepared;
/// `ST` is the SQL type of its one result column, if it has one.
#[derive(Debug, Clone)]
pub struct Verbatim<ST = diesel::sql_types::Untyped> {
    sql: String,
    result: PhantomData<ST>,
}

impl<ST> Verbatim<ST> {
    /// `sql` must come from a closed set (constants, names from the code), never from input.
    pub fn new(sql: impl Into<String>) -> Self {
        Verbatim {
            sql: sql.into(),
            result: PhantomData,
        }
    }
}

impl<ST> QueryId for Verbatim<ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST, DB: Backend> QueryFragment<DB> for Verbatim<ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(&self.sql);
        Ok(())
    }
}

impl<ST: diesel::sql_types::SqlType> Query for Verbatim<ST> {
    type SqlType = ST;
}

impl<ST, Conn> RunQueryDsl<Conn> for Verbatim<ST> {}
