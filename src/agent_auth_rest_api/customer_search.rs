//! `GET /agent-customer-search` (Spryker's `AgentCustomerSearchResource`): one resource whose
//! `customers` are a page of matches, with Spryker's pagination links.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};

use super::caller::AgentCaller;
use super::config::*;
use crate::customer::{self, Matches};
use crate::db;
use crate::glue_application::error::GlueError;
use crate::glue_application::response::{json_api, resource_link, RestResource};
use crate::state::AppState;

/// `q`, `page[offset]` and `page[limit]` after validation; `offset` is on a page boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParams {
    pub q: String,
    pub offset: i64,
    pub limit: i64,
}

pub fn pagination_invalid() -> GlueError {
    GlueError::one(StatusCode::BAD_REQUEST, None, DETAIL_PAGINATION_INVALID)
}

impl SearchParams {
    /// Parses a raw query string. Both page parameters must be integers, the limit positive,
    /// the offset non-negative; an offset needs a limit. The limit is capped at `max_limit`
    /// and the offset rounded down to a page boundary (Spryker behaviour).
    pub fn parse(query: &str, max_limit: i64) -> Result<Self, GlueError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| pagination_invalid())?
            .into_inner();
        let value = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let q = value("q").unwrap_or("").to_string();
        let integer = |text: &str| text.parse::<i64>().map_err(|_| pagination_invalid());
        let (offset, limit) = match (value("page[offset]"), value("page[limit]")) {
            (None, None) => (0, DEFAULT_PAGE_LIMIT),
            (Some(_), None) => return Err(pagination_invalid()),
            (offset, Some(limit)) => (
                offset.map(integer).transpose()?.unwrap_or(0),
                integer(limit)?,
            ),
        };
        if limit <= 0 || offset < 0 {
            return Err(pagination_invalid());
        }
        let limit = limit.min(max_limit);
        Ok(SearchParams {
            q,
            offset: offset / limit * limit,
            limit,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerAttributes {
    customer_reference: String,
    email: String,
    /// `null` when the shop has none (Spryker's columns are nullable).
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Serialize)]
struct SearchAttributes {
    customers: Vec<CustomerAttributes>,
}

/// Percent-encodes a query value, leaving RFC 3986 unreserved characters and `@` as they are.
fn encode_query_value(value: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    /// Everything but RFC 3986's unreserved characters and `@`.
    const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'@');
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// `self`, then — when anything matched — `last`, `first`, `prev` (offset > 0) and `next`
/// (more remain), in Spryker's order. Checked arithmetic: no link points past the last page or
/// below zero, whatever the offset. When more customers matched than the search counts
/// (`glue.search_count_limit`), the last page is unknown: no `last`, and `next` exactly when
/// the page was followed by another row.
fn links(
    base_url: &str,
    raw_query: &str,
    params: &SearchParams,
    matches: Matches,
    more: bool,
) -> Map<String, Value> {
    let mut links = Map::new();
    links.insert(
        "self".into(),
        resource_link(base_url, RESOURCE_AGENT_CUSTOMER_SEARCH, raw_query).into(),
    );
    let total = match matches {
        Matches::Exactly(total) if total <= 0 => return links,
        Matches::Exactly(total) => Some(total),
        Matches::MoreThan(_) => None,
    };
    let page = |offset: i64| {
        format!(
            "{base_url}/{RESOURCE_AGENT_CUSTOMER_SEARCH}?q={}&page[offset]={offset}&page[limit]={}",
            encode_query_value(&params.q),
            params.limit
        )
    };
    let last = total.map(|total| (total - 1) / params.limit * params.limit);
    if let Some(last) = last {
        links.insert("last".into(), page(last).into());
    }
    links.insert("first".into(), page(0).into());
    if params.offset > 0 {
        let prev = params.offset.saturating_sub(params.limit).max(0);
        let prev = last.map_or(prev, |last| prev.min(last));
        links.insert("prev".into(), page(prev).into());
    }
    if let Some(next) = params
        .offset
        .checked_add(params.limit)
        .filter(|next| match total {
            Some(total) => *next < total,
            None => more,
        })
    {
        links.insert("next".into(), page(next).into());
    }
    links
}

pub async fn get_agent_customer_search(
    state: web::Data<AppState>,
    req: HttpRequest,
    agent: AgentCaller,
) -> Result<HttpResponse, GlueError> {
    let params = SearchParams::parse(req.query_string(), state.settings.glue.max_page_limit)?;
    let query = params.clone();
    // A turn among the searches' share of the pool: past it, 503 + Retry-After at once after a
    // short wait, never a connection that a login or a refresh needs. The work runs on the
    // searches' own threads at a low priority, so on SQLite it cannot take a login's CPU either.
    let turn = state.search_slots.turn().await.map_err(|no_turn| {
        state.services.metrics.searches_shed.inc();
        GlueError::unavailable(no_turn)
    })?;
    let oauth = state.services.oauth.clone();
    let mfa = state.services.mfa.clone();
    let count_limit = state.settings.glue.search_count_limit;
    let (customers, matches, more) = db::run_on(
        state.search_slots.lane(),
        &state.services.pool,
        move |conn| -> Result<_, GlueError> {
            // The turn ends with the work, not with the request: a search whose request gave up
            // (503 at the pool's deadline) keeps its turn while its thread still works on it.
            let _turn = turn;
            agent.ensure_active(conn, &oauth, &mfa)?;
            customer::search(conn, &query.q, query.offset, query.limit, count_limit)
                .map_err(|e| db::DbError::from(e).into())
        },
    )
    .await?;

    let base = state.settings.base_url();
    let resource = RestResource::new(
        base,
        RESOURCE_AGENT_CUSTOMER_SEARCH,
        None,
        SearchAttributes {
            customers: customers
                .into_iter()
                .map(|c| CustomerAttributes {
                    customer_reference: c.customer_reference,
                    email: c.email,
                    first_name: c.first_name,
                    last_name: c.last_name,
                })
                .collect(),
        },
        req.query_string(),
    );
    let mut document = Map::new();
    document.insert(
        "data".into(),
        serde_json::to_value([resource]).map_err(GlueError::internal)?,
    );
    document.insert(
        "links".into(),
        Value::Object(links(base, req.query_string(), &params, matches, more)),
    );
    let mut response = json_api(StatusCode::OK, &document);
    // Personal data: no cache may keep it.
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use proptest::prelude::*;

    use super::*;

    fn is_client_error(error: &GlueError) -> bool {
        matches!(error, GlueError::Rest(_)) && error.status_code() == StatusCode::BAD_REQUEST
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_query_is_valid_parameters_or_a_400(query in "[a-z\\[\\]=&%0-9.+-]{0,48}", max in 1i64..200) {
            match SearchParams::parse(&query, max) {
                Ok(params) => {
                    prop_assert!(params.limit >= 1 && params.limit <= max);
                    prop_assert!(params.offset >= 0);
                    prop_assert_eq!(params.offset % params.limit, 0);
                }
                Err(error) => prop_assert!(is_client_error(&error)),
            }
        }

        #[test]
        fn any_page_numbers_are_a_page_or_a_400(offset in any::<i64>(), limit in any::<i64>()) {
            let query = format!("q=x&page[offset]={offset}&page[limit]={limit}");
            match SearchParams::parse(&query, 100) {
                Ok(params) => {
                    prop_assert!(offset >= 0 && limit >= 1);
                    prop_assert_eq!(params.limit, limit.min(100));
                    prop_assert!(params.offset <= offset && offset - params.offset < params.limit);
                }
                Err(error) => {
                    prop_assert!(offset < 0 || limit < 1);
                    prop_assert!(is_client_error(&error));
                }
            }
        }
    }

    /// The page offsets of a document's links.
    fn offsets(links: &Map<String, Value>) -> Vec<(String, i64)> {
        links
            .iter()
            .filter(|(name, _)| name.as_str() != "self")
            .map(|(name, link)| {
                let link = link.as_str().unwrap();
                let offset = link.split("page[offset]=").nth(1).unwrap();
                let offset = offset.split('&').next().unwrap().parse().unwrap();
                (name.clone(), offset)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Over the whole i64 range: no negative offset, no link past the last page, `next`
        /// exactly when more remain.
        #[test]
        fn links_stay_within_the_results(offset in 0..=i64::MAX, limit in 1i64..=100, total in prop_oneof![0..=1000i64, 0..=i64::MAX]) {
            let query = format!("q=a&page[offset]={offset}&page[limit]={limit}");
            let params = SearchParams::parse(&query, 100).unwrap();
            let more = i128::from(params.offset) + i128::from(params.limit) < i128::from(total);
            let links = links("http://glue.test", &query, &params, Matches::Exactly(total), more);
            let last = if total > 0 { (total - 1) / params.limit * params.limit } else { 0 };
            for (name, at) in offsets(&links) {
                prop_assert!(at >= 0, "{name} {at}");
                prop_assert!(at <= last, "{name} {at} beyond {last}");
                prop_assert_eq!(at % params.limit, 0);
            }
            let more_remain = i128::from(params.offset) + i128::from(params.limit) < i128::from(total);
            prop_assert_eq!(links.contains_key("next"), more_remain);
            prop_assert_eq!(links.contains_key("prev"), total > 0 && params.offset > 0);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Beyond the count limit: no `last`, `next` exactly when a row followed the page, no
        /// link below zero.
        #[test]
        fn uncounted_results_have_no_last_link(offset in 0..=i64::MAX, limit in 1i64..=100, more: bool) {
            let query = format!("q=a&page[offset]={offset}&page[limit]={limit}");
            let params = SearchParams::parse(&query, 100).unwrap();
            let links = links("http://glue.test", &query, &params, Matches::MoreThan(10_000), more);
            prop_assert!(!links.contains_key("last"));
            prop_assert!(links.contains_key("first"));
            for (name, at) in offsets(&links) {
                prop_assert!(at >= 0, "{name} {at}");
            }
            let next_fits = params.offset.checked_add(params.limit).is_some();
            prop_assert_eq!(links.contains_key("next"), more && next_fits);
            prop_assert_eq!(links.contains_key("prev"), params.offset > 0);
        }
    }

    #[test]
    fn the_largest_offset_gives_no_next_and_a_prev_on_the_last_page() {
        let query = "q=a&page[offset]=9223372036854775807&page[limit]=100";
        let params = SearchParams::parse(query, 100).unwrap();
        let links = links(
            "http://glue.test",
            query,
            &params,
            Matches::Exactly(250),
            false,
        );
        assert_eq!(
            offsets(&links),
            vec![
                ("last".into(), 200),
                ("first".into(), 0),
                ("prev".into(), 200)
            ]
        );
    }

    #[test]
    fn query_values_are_percent_encoded_except_unreserved_characters_and_at() {
        assert_eq!(encode_query_value("a.b-c_d~e@f"), "a.b-c_d~e@f");
        assert_eq!(encode_query_value("a b&c=d%"), "a%20b%26c%3Dd%25");
        assert_eq!(encode_query_value("ü"), "%C3%BC");
    }
}
