//! `spy_customer` rows and queries (Spryker's `Customer` module): search by prefix, lookup by
//! reference and by email, creation — on Spryker's columns only.
//!
//! Case-insensitive matching is each backend's own:
//! - PostgreSQL: `lower(column) COLLATE "C" LIKE lower('p%')` with `%`, `_` escaped: PostgreSQL
//!   folds both sides, and with custom plans turns the constant prefix into a byte-order range
//!   over the `lower(column) COLLATE "C"` expression indexes glue creates.
//! - SQLite: a prefix `p` matches exactly the values with `p <= lower(column) < successor(p)`
//!   (UTF-8 byte order is code-point order) over `lower(column)` indexes, with glue's
//!   Unicode-aware `lower()` (registered on every connection in place of SQLite's ASCII-only
//!   one, so Rust's folding of `p` agrees with the index); `%`/`_` are ordinary characters.
//! - MySQL/MariaDB: Spryker's `utf8_unicode_ci` collation ignores case (and accents) in `=` and
//!   `LIKE`, so `column LIKE 'p%'` with `%`, `_` and the escape character escaped is served by the
//!   plain indexes Spryker already has.
//!
//! Emails are looked up case-insensitively the same way (Spryker: `UPPER(email) = UPPER(?)`).
//! Anonymized customers (`anonymized_at` set) are left out of every lookup, as Spryker's
//! `SpyCustomerQuery::create()` does.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::spy_customer::{self as t, dsl};
use crate::db::{Backend, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
pub struct Customer {
    pub id_customer: i32,
    pub customer_reference: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub password: Option<String>,
}

/// A customer to create, as Spryker's registration writes it.
#[derive(Debug, Clone, Copy)]
pub struct NewCustomer<'a> {
    pub customer_reference: &'a str,
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    /// A bcrypt hash; `None` = the customer cannot log in.
    pub password: Option<&'a str>,
}

#[derive(Insertable)]
#[diesel(table_name = t)]
struct CustomerRow<'a> {
    customer_reference: &'a str,
    email: &'a str,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    password: Option<&'a str>,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
}

type Filter = crate::db::Condition<t::table>;

/// The reference equals `q` exactly (references are identifiers: case matters everywhere).
fn same_reference(backend: Backend, q: &str) -> Filter {
    backend.equals_exactly("customer_reference", q)
}

/// Matches: email, first or last name starting with `q` (any case), or reference equal to `q`.
fn search_filter(backend: Backend, q: &str, scan: bool) -> Filter {
    Box::new(
        backend
            .starts_with_folded("email", q, scan)
            .or(backend.starts_with_folded("first_name", q, scan))
            .or(backend.starts_with_folded("last_name", q, scan))
            .or(same_reference(backend, q)),
    )
}

/// How many customers a search matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matches {
    /// Counted to the end.
    Exactly(i64),
    /// More than the count limit: counting stopped there.
    MoreThan(i64),
}

/// One page of matches, ordered by id, how many matched, and whether rows follow the page.
///
/// The cost follows the page, not the table. First the ids of at most `count_limit + 1`
/// matches are read, in whatever order the indexes give them. When that is all of them, they
/// are the count, and the page is those ids sorted and sliced, read by primary key. When there
/// are more (a broad search: matches are dense), the page is read by walking the table in id
/// order, which stops after `offset + limit + 1` matches — on SQLite with the prefix tests in
/// a form no index serves, as its planner would otherwise collect and sort every match. On
/// MySQL/MariaDB the ids are read one prefix test at a time ([`live_matches_by_branch`]).
pub fn search(
    conn: &mut DbConnection,
    q: &str,
    offset: i64,
    limit: i64,
    count_limit: i64,
) -> QueryResult<(Vec<Customer>, Matches, bool)> {
    if !crate::db::storable(q) {
        return Ok((Vec::new(), Matches::Exactly(0), false));
    }
    let backend = conn.backend();
    let matching = |scan: bool| {
        let query = t::table.filter(dsl::anonymized_at.is_null()).into_boxed();
        if q.is_empty() {
            query
        } else {
            query.filter(search_filter(backend, q, scan))
        }
    };
    let by_branch = if backend.counts_searches_by_branch() && !q.is_empty() {
        live_matches_by_branch(conn, backend, q, count_limit)?
    } else {
        None
    };
    let mut ids = match by_branch {
        Some(ids) => ids,
        None => matching(false)
            .select(dsl::id_customer)
            .limit(count_limit.saturating_add(1))
            .load::<i32>(conn)?,
    };
    if ids.len() as i64 <= count_limit {
        ids.sort_unstable();
        let total = ids.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(total);
        let end = usize::try_from(offset.saturating_add(limit))
            .unwrap_or(usize::MAX)
            .min(total);
        let page = &ids[start..end];
        let customers = if page.is_empty() {
            Vec::new()
        } else {
            t::table
                .filter(dsl::id_customer.eq_any(page))
                .filter(dsl::anonymized_at.is_null())
                .order(dsl::id_customer.asc())
                .select(Customer::as_select())
                .load(conn)?
        };
        return Ok((customers, Matches::Exactly(total as i64), end < total));
    }
    let mut matches = Matches::MoreThan(count_limit);
    let mut customers = matching(backend.sorts_broad_searches())
        .order(dsl::id_customer.asc())
        .offset(offset)
        .limit(limit.saturating_add(1))
        .select(Customer::as_select())
        .load(conn)?;
    if customers.is_empty() && offset > 0 {
        // Past the end of an uncounted result: count it all (the offset scan just cost as
        // much), so the links lead back to the last page instead of into the void.
        matches = Matches::Exactly(matching(false).count().get_result(conn)?);
    }
    let more = customers.len() as i64 > limit;
    customers.truncate(limit.max(0) as usize);
    Ok((customers, matches, more))
}

/// The bounded count of [`search`] one prefix test at a time, for engines whose optimizer
/// collects every match of the OR ([`Backend::counts_searches_by_branch`]). Each test reads at
/// most `count_limit + 1` ids from its own index (index-only: no row is fetched); then, in id
/// order and a thousand at a time, the rows of their union are checked for `anonymized_at IS
/// NULL` until `count_limit + 1` live ones are found. Returns the live matching ids (all of them,
/// or `count_limit + 1` of them when there are more), or `None` when a test was cut off at its
/// cap yet anonymized rows left fewer live ids than that: the caller counts the usual way.
fn live_matches_by_branch(
    conn: &mut DbConnection,
    backend: Backend,
    q: &str,
    count_limit: i64,
) -> QueryResult<Option<Vec<i32>>> {
    const CHECKED_AT_ONCE: usize = 1000;
    let cap = count_limit.saturating_add(1);
    let branches: [Filter; 4] = [
        backend.starts_with_folded("email", q, false),
        backend.starts_with_folded("first_name", q, false),
        backend.starts_with_folded("last_name", q, false),
        same_reference(backend, q),
    ];
    let mut candidates = Vec::new();
    let mut cut_off = false;
    for branch in branches {
        let ids = t::table
            .into_boxed()
            .filter(branch)
            .select(dsl::id_customer)
            .limit(cap)
            .load::<i32>(conn)?;
        cut_off |= ids.len() as i64 >= cap;
        candidates.extend(ids);
    }
    candidates.sort_unstable();
    candidates.dedup();
    let wanted = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut live = Vec::new();
    for chunk in candidates.chunks(CHECKED_AT_ONCE) {
        live.extend(
            t::table
                .filter(dsl::id_customer.eq_any(chunk))
                .filter(dsl::anonymized_at.is_null())
                .select(dsl::id_customer)
                .load::<i32>(conn)?,
        );
        if live.len() >= wanted {
            live.truncate(wanted);
            return Ok(Some(live));
        }
    }
    Ok((!cut_off).then_some(live))
}

pub fn find_by_reference(
    conn: &mut DbConnection,
    reference: &str,
) -> QueryResult<Option<Customer>> {
    if !crate::db::storable(reference) {
        return Ok(None);
    }
    if conn.backend() == Backend::Mysql {
        // The collation ignores case in `=`: the exact test needs its `BINARY` fragment.
        return t::table
            .filter(dsl::anonymized_at.is_null())
            .filter(same_reference(Backend::Mysql, reference))
            .select(Customer::as_select())
            .first(conn)
            .optional();
    }
    // `=` is exact on SQLite and PostgreSQL; a plain column test and no `LIMIT ?` keep the
    // statement prepared (it runs on every customer refresh). The reference is unique.
    crate::db::first_match(
        t::table
            .filter(dsl::anonymized_at.is_null())
            .filter(dsl::customer_reference.eq(reference))
            .select(Customer::as_select()),
        conn,
    )
}

/// Emails are matched without regard to case.
pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<Customer>> {
    if !crate::db::storable(email) {
        return Ok(None);
    }
    let same_email: Filter = conn.backend().equals_folded("email", email);
    t::table
        .filter(dsl::anonymized_at.is_null())
        .filter(same_email)
        .select(Customer::as_select())
        .first(conn)
        .optional()
}

/// Inserts a customer as Spryker's registration would (a Propel sequence id on PostgreSQL);
/// duplicates of email or reference are `UniqueViolation` errors.
pub fn create(conn: &mut DbConnection, customer: &NewCustomer<'_>) -> QueryResult<i32> {
    let now = crate::db::now();
    let row = CustomerRow {
        customer_reference: customer.customer_reference,
        email: customer.email,
        first_name: customer.first_name,
        last_name: customer.last_name,
        password: customer.password,
        created_at: Some(now),
        updated_at: Some(now),
    };
    let id = crate::db::insert_with_id(conn, "spy_customer_pk_seq", |conn, id| match id {
        Some(id) => diesel::insert_into(t::table)
            .values((dsl::id_customer.eq(id as i32), &row))
            .execute(conn),
        None => diesel::insert_into(t::table).values(&row).execute(conn),
    })?;
    Ok(id as i32)
}

/// Replaces the password hash of the customer with this id (a rehash at login), only if it is
/// still `old_hash`.
pub fn replace_hash(
    conn: &mut DbConnection,
    id_customer: i32,
    old_hash: &str,
    new_hash: &str,
) -> QueryResult<usize> {
    diesel::update(
        t::table
            .find(id_customer)
            .filter(dsl::password.eq(old_hash)),
    )
    .set((
        dsl::password.eq(new_hash),
        dsl::updated_at.eq(crate::db::now()),
    ))
    .execute(conn)
}

/// The bcrypt costs of the stored hashes, each once (one scan, at start-up).
pub fn hash_costs(conn: &mut DbConnection) -> QueryResult<Vec<u32>> {
    let costs: Vec<String> = t::table
        .filter(dsl::password.is_not_null())
        .select(crate::db::substr(dsl::password.assume_not_null(), 5, 2))
        .distinct()
        .load(conn)?;
    Ok(costs.iter().filter_map(|c| c.parse().ok()).collect())
}

/// The next free reference of the form `{prefix}{n}` (Spryker's `DE--1`, `DE--2`, …).
pub fn next_reference(conn: &mut DbConnection, prefix: &str) -> QueryResult<String> {
    let max_id: Option<i32> = t::table
        .select(diesel::dsl::max(dsl::id_customer))
        .first(conn)?;
    let mut n = i64::from(max_id.unwrap_or(0)) + 1;
    loop {
        let candidate = format!("{prefix}{n}");
        // Taken also by an anonymized customer (the reference stays unique).
        let taken = t::table
            .filter(same_reference(conn.backend(), &candidate))
            .select(dsl::id_customer)
            .first::<i32>(conn)
            .optional()?
            .is_some();
        if !taken {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// Symfony's loose `Email` constraint (`/^.+\@\S+\.\S+$/`), which Spryker validates
/// `username` of `POST /access-tokens` with.
pub fn is_valid_email(value: &str) -> bool {
    if value.contains('\n') {
        return false;
    }
    let Some(at) = value.rfind('@') else {
        return false;
    };
    if at == 0 {
        return false;
    }
    let domain = &value[at + 1..];
    if domain.is_empty() || domain.chars().any(char::is_whitespace) {
        return false;
    }
    domain
        .char_indices()
        .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
}
