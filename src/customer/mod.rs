//! `spy_customer` rows and queries (Spryker's `Customer` module): search by prefix, lookup by
//! reference and by email, creation.
//!
//! Search is case-insensitive through the `search_*` columns, which hold the lower-cased email
//! and names. A prefix `p` matches exactly the values `v` with `p <= v < successor(p)` in byte
//! order (UTF-8 byte order is code-point order), so every match is an index range scan, even
//! with bound parameters, and `%`/`_` are ordinary characters.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::spy_customer::{self as t, dsl};
use crate::db::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = t)]
pub struct Customer {
    pub id_customer: i64,
    pub customer_reference: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password: Option<String>,
}

/// A customer to create; [`create`] derives whatever search keys the schema needs.
#[derive(Debug, Clone, Copy)]
pub struct NewCustomer<'a> {
    pub customer_reference: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// A bcrypt hash; `None` = the customer cannot log in.
    pub password: Option<&'a str>,
}

#[derive(Insertable)]
#[diesel(table_name = t)]
struct CustomerRow<'a> {
    customer_reference: &'a str,
    email: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    password: Option<&'a str>,
    search_email: String,
    search_first_name: String,
    search_last_name: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// The form of a value that search compares against.
fn search_key(value: &str) -> String {
    value.to_lowercase()
}

/// The smallest string greater than every string that starts with `prefix`; `None` when no
/// such bound exists (every character is U+10FFFF).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

type Filter =
    Box<dyn BoxableExpression<t::table, crate::db::DbBackend, SqlType = diesel::sql_types::Bool>>;

/// `lower <= column < upper` as a boxed filter.
macro_rules! prefix_filter {
    ($column:expr, $lower:expr, $upper:expr) => {
        match $upper {
            Some(upper) => {
                Box::new($column.ge($lower.clone()).and($column.lt(upper.clone()))) as Filter
            }
            None => Box::new($column.ge($lower.clone())) as Filter,
        }
    };
}

/// Matches: email, first or last name starting with `q` (any case), or reference equal to `q`.
fn search_filter(q: &str) -> Option<Filter> {
    if q.is_empty() {
        return None;
    }
    let lower = search_key(q);
    let upper = prefix_successor(&lower);
    Some(Box::new(
        prefix_filter!(dsl::search_email, lower, &upper)
            .or(prefix_filter!(dsl::search_first_name, lower, &upper))
            .or(prefix_filter!(dsl::search_last_name, lower, &upper))
            .or(dsl::customer_reference.eq(q.to_string())),
    ))
}

/// One page of matches, ordered by id, and the total number of matches.
pub fn search(
    conn: &mut DbConnection,
    q: &str,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Customer>, i64)> {
    if !crate::db::storable(q) {
        return Ok((Vec::new(), 0));
    }
    let mut count = t::table.into_boxed();
    let mut page = t::table.into_boxed();
    if let (Some(a), Some(b)) = (search_filter(q), search_filter(q)) {
        count = count.filter(a);
        page = page.filter(b);
    }
    let total: i64 = count.count().get_result(conn)?;
    if total == 0 || offset >= total {
        return Ok((Vec::new(), total));
    }
    let customers = page
        .order(dsl::id_customer.asc())
        .offset(offset)
        .limit(limit)
        .select(Customer::as_select())
        .load(conn)?;
    Ok((customers, total))
}

pub fn find_by_reference(
    conn: &mut DbConnection,
    reference: &str,
) -> QueryResult<Option<Customer>> {
    if !crate::db::storable(reference) {
        return Ok(None);
    }
    t::table
        .filter(dsl::customer_reference.eq(reference))
        .select(Customer::as_select())
        .first(conn)
        .optional()
}

/// Emails are matched without regard to case.
pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<Customer>> {
    if !crate::db::storable(email) {
        return Ok(None);
    }
    t::table
        .filter(dsl::search_email.eq(search_key(email)))
        .select(Customer::as_select())
        .first(conn)
        .optional()
}

/// Inserts a customer; duplicates of email or reference are `UniqueViolation` errors.
pub fn create(conn: &mut DbConnection, customer: &NewCustomer<'_>) -> QueryResult<i64> {
    let now = chrono::Utc::now().naive_utc();
    diesel::insert_into(t::table)
        .values(CustomerRow {
            customer_reference: customer.customer_reference,
            email: customer.email,
            first_name: customer.first_name,
            last_name: customer.last_name,
            password: customer.password,
            search_email: search_key(customer.email),
            search_first_name: search_key(customer.first_name),
            search_last_name: search_key(customer.last_name),
            created_at: now,
            updated_at: now,
        })
        .returning(dsl::id_customer)
        .get_result(conn)
}

/// Replaces the password hash of the customer with this id (a rehash at login).
pub fn replace_hash(conn: &mut DbConnection, id_customer: i64, hash: &str) -> QueryResult<usize> {
    diesel::update(t::table.find(id_customer))
        .set((
            dsl::password.eq(hash),
            dsl::updated_at.eq(chrono::Utc::now().naive_utc()),
        ))
        .execute(conn)
}

/// The highest bcrypt cost of any stored hash (one scan, at start-up).
pub fn highest_hash_cost(conn: &mut DbConnection) -> QueryResult<Option<u32>> {
    let costs: Vec<String> = t::table
        .filter(dsl::password.is_not_null())
        .select(crate::db::substr(dsl::password.assume_not_null(), 5, 2))
        .distinct()
        .load(conn)?;
    Ok(crate::db::highest_cost(&costs))
}

/// The next free reference of the form `{prefix}{n}` (Spryker's `DE--1`, `DE--2`, …).
pub fn next_reference(conn: &mut DbConnection, prefix: &str) -> QueryResult<String> {
    let max_id: Option<i64> = t::table
        .select(diesel::dsl::max(dsl::id_customer))
        .first(conn)?;
    let mut n = max_id.unwrap_or(0) + 1;
    loop {
        let candidate = format!("{prefix}{n}");
        if find_by_reference(conn, &candidate)?.is_none() {
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
