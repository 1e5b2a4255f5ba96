//! `GET /agent-customer-search` (contract §4).

use serde_json::{json, Value};

use crate::backends;
use crate::helpers::*;

backends!(
    search_matches_prefixes_of_email_and_names_and_exact_references,
    percent_and_underscore_match_literally,
    pagination_pages_links_and_rounding,
    beyond_the_count_limit_there_is_next_but_no_last,
    the_count_takes_each_live_match_once_whichever_test_found_it,
    bad_pagination_parameters_are_400,
    only_agents_may_search,
    a_deactivated_agents_token_stops_working,
    customers_without_names_are_served_with_null_names,
    emails_match_in_any_case_and_references_exactly,
);

async fn customers_without_names_are_served_with_null_names(backend: Backend) {
    let app = spawn_app(backend);
    glue::customer::create(
        &mut app.conn(),
        &glue::customer::NewCustomer {
            customer_reference: "DE--N1",
            email: "nameless@example.com",
            first_name: None,
            last_name: None,
            password: None,
        },
    )
    .unwrap();
    let (agent, _) = app.agent_session("nulls@example.com").await;
    let body = search_json(&app, "q=NAMELESS", &agent).await;
    assert_eq!(
        body["data"][0]["attributes"]["customers"],
        json!([{"customerReference":"DE--N1","email":"nameless@example.com","firstName":null,"lastName":null}])
    );
}

/// Emails (login and search) ignore case on every backend, as Spryker's UPPER(email) does;
/// customer references are identifiers and match exactly, also under MySQL's case-insensitive
/// collation.
async fn emails_match_in_any_case_and_references_exactly(backend: Backend) {
    let app = spawn_app(backend);
    app.insert_customer(
        "DE--Mx",
        "Mixed.Case@Example.COM",
        "Mia",
        "Case",
        Some("own-pass-1"),
    );
    for email in [
        "mixed.case@example.com",
        "MIXED.CASE@EXAMPLE.COM",
        "Mixed.Case@Example.COM",
    ] {
        let response = app
            .customer_login(&json!(email), &json!("own-pass-1"))
            .await;
        assert_eq!(response.status(), 201, "{email}");
    }
    let (agent, _) = app.agent_session("refs@example.com").await;
    assert_eq!(
        references(&search_json(&app, "q=mixed.CASE@", &agent).await),
        ["DE--Mx"]
    );
    assert_eq!(
        references(&search_json(&app, "q=DE--Mx", &agent).await),
        ["DE--Mx"]
    );
    assert!(references(&search_json(&app, "q=DE--MX", &agent).await).is_empty());
    assert_error(
        app.impersonate(&json!("de--mx"), &agent).await,
        Some("4104"),
        401,
        "Failed to impersonate a customer.",
    )
    .await;
}

fn references(body: &Value) -> Vec<String> {
    body["data"][0]["attributes"]["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customerReference"].as_str().unwrap().to_string())
        .collect()
}

async fn search_json(app: &TestApp, query: &str, token: &str) -> Value {
    let response = app.search(query, token).await;
    assert_eq!(response.status(), 200, "{query}");
    assert_eq!(response.headers()["content-type"], JSON_API);
    response.json().await.unwrap()
}

async fn search_matches_prefixes_of_email_and_names_and_exact_references(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, _) = app.agent_session("searcher@example.com").await;
    app.insert_customer("DE--100", "Emile.Zola@Example.com", "Émile", "Zola", None);

    let body = search_json(&app, "q=sonia", &agent).await;
    assert_eq!(
        body,
        json!({
            "data":[{"type":"agent-customer-search","id":null,
                "attributes":{"customers":[{"customerReference":"DE--1","email":"sonia@spryker.com","firstName":"Sonia","lastName":"Wagner"}]},
                "links":{"self":format!("{BASE_URL}/agent-customer-search?q=sonia")}}],
            "links":{
                "self":format!("{BASE_URL}/agent-customer-search?q=sonia"),
                "last":format!("{BASE_URL}/agent-customer-search?q=sonia&page[offset]=0&page[limit]=10"),
                "first":format!("{BASE_URL}/agent-customer-search?q=sonia&page[offset]=0&page[limit]=10")
            }
        })
    );
    let attribute_keys: Vec<String> = body["data"][0]["attributes"]["customers"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        attribute_keys,
        ["customerReference", "email", "firstName", "lastName"]
    );

    let cases: &[(&str, &[&str])] = &[
        (
            "q=",
            &[
                "DE--1", "DE--2", "DE--3", "DE--4", "DE--5", "DE--6", "DE--100",
            ],
        ),
        (
            "",
            &[
                "DE--1", "DE--2", "DE--3", "DE--4", "DE--5", "DE--6", "DE--100",
            ],
        ),
        ("q=spencor.h", &["DE--2"]),
        ("q=SPENCOR.HOPKIN%40SPRYKER.COM", &["DE--2"]),
        ("q=Maria", &["DE--3"]),
        ("q=wil", &["DE--3"]),
        ("q=parker", &["DE--4"]),
        ("q=m", &["DE--3", "DE--5"]),
        ("q=s", &["DE--1", "DE--2", "DE--6"]),
        ("q=DE--3", &["DE--3"]),
        ("q=de--3", &[]),
        ("q=DE--", &[]),
        ("q=agner", &[]),
        ("q=spryker.com", &[]),
        ("q=%C3%A9mi", &["DE--100"]),
        ("q=%C3%89MILE", &["DE--100"]),
        ("q=emile.z", &["DE--100"]),
        ("q=zz", &[]),
    ];
    for (query, expected) in cases {
        let body = search_json(&app, query, &agent).await;
        assert_eq!(references(&body), *expected, "{query}");
        assert_eq!(
            body["data"].as_array().unwrap().len(),
            1,
            "always one resource"
        );
    }
    // No matches: an empty list and only the self link.
    let body = search_json(&app, "q=nobody", &agent).await;
    assert_eq!(body["data"][0]["attributes"]["customers"], json!([]));
    assert_eq!(
        body["links"],
        json!({"self": format!("{BASE_URL}/agent-customer-search?q=nobody")})
    );
}

async fn percent_and_underscore_match_literally(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, _) = app.agent_session("wild@example.com").await;
    app.insert_customer("W-1", "a_b@example.com", "Under", "Score", None);
    app.insert_customer("W-2", "a%c@example.com", "Per", "Cent", None);
    app.insert_customer("W-3", "axb@example.com", "Plain", "Letters", None);
    app.insert_customer("W-4", "abc@example.com", "Other", "Plain", None);
    for (query, expected) in [
        ("q=a_", vec!["W-1"]),
        ("q=a%25", vec!["W-2"]),
        ("q=%25", vec![]),
        ("q=_", vec![]),
        ("q=a", vec!["W-1", "W-2", "W-3", "W-4"]),
        ("q=a%5C", vec![]),
        ("q=%27%20OR%201%3D1%20--", vec![]),
    ] {
        assert_eq!(
            references(&search_json(&app, query, &agent).await),
            expected,
            "{query}"
        );
    }
}

async fn pagination_pages_links_and_rounding(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, _) = app.agent_session("pager@example.com").await;
    for i in 1..=25 {
        app.insert_customer(
            &format!("P-{i:02}"),
            &format!("page{i:02}@example.com"),
            "Page",
            "Customer",
            None,
        );
    }
    let link = |offset: i64, limit: i64| {
        format!("{BASE_URL}/agent-customer-search?q=page&page[offset]={offset}&page[limit]={limit}")
    };
    let expect_page = |body: &Value, first: usize, count: usize| {
        let expected: Vec<String> = (first..first + count)
            .map(|i| format!("P-{i:02}"))
            .collect();
        assert_eq!(references(body), expected);
    };

    let body = search_json(&app, "q=page", &agent).await;
    expect_page(&body, 1, 10);
    assert_eq!(
        body["links"],
        json!({"self":format!("{BASE_URL}/agent-customer-search?q=page"),"last":link(20, 10),"first":link(0, 10),"next":link(10, 10)})
    );
    let keys: Vec<&String> = body["links"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["self", "last", "first", "next"]);

    let query = "q=page&page[offset]=10&page[limit]=10";
    let body = search_json(&app, query, &agent).await;
    expect_page(&body, 11, 10);
    assert_eq!(
        body["links"],
        json!({"self":format!("{BASE_URL}/agent-customer-search?{query}"),"last":link(20, 10),"first":link(0, 10),"prev":link(0, 10),"next":link(20, 10)})
    );
    let keys: Vec<&String> = body["links"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["self", "last", "first", "prev", "next"]);
    assert_eq!(
        body["data"][0]["links"]["self"],
        format!("{BASE_URL}/agent-customer-search?{query}")
    );

    let body = search_json(&app, "q=page&page[offset]=20&page[limit]=10", &agent).await;
    expect_page(&body, 21, 5);
    assert!(body["links"].get("next").is_none());
    assert_eq!(body["links"]["prev"], link(10, 10));

    // An unaligned offset is rounded down to its page.
    let body = search_json(&app, "q=page&page[offset]=15&page[limit]=10", &agent).await;
    expect_page(&body, 11, 10);
    assert_eq!(body["links"]["prev"], link(0, 10));
    assert_eq!(body["links"]["next"], link(20, 10));

    let body = search_json(&app, "q=page&page[offset]=7&page[limit]=7", &agent).await;
    expect_page(&body, 8, 7);
    assert_eq!(body["links"]["last"], link(21, 7));

    // Beyond the end: nothing on the page, links still lead back, never past the last page.
    let body = search_json(&app, "q=page&page[offset]=40&page[limit]=10", &agent).await;
    assert_eq!(body["data"][0]["attributes"]["customers"], json!([]));
    assert_eq!(body["links"]["prev"], link(20, 10));
    assert!(body["links"].get("next").is_none());

    // The limit is capped at glue.max_page_limit (100); a limit alone starts at 0.
    let body = search_json(&app, "q=page&page[limit]=1000", &agent).await;
    expect_page(&body, 1, 25);
    assert_eq!(body["links"]["first"], link(0, 100));
    let body = search_json(&app, "q=page&page[limit]=5", &agent).await;
    expect_page(&body, 1, 5);
    // Special characters in q are encoded in the links.
    let body = search_json(&app, "q=a%26b%20c", &agent).await;
    assert_eq!(
        body["links"]["self"],
        format!("{BASE_URL}/agent-customer-search?q=a%26b%20c")
    );
}

/// `glue.search_count_limit`: a search that matches more customers than the limit is not
/// counted to the end; its links have `next` while rows follow and never a `last`.
async fn beyond_the_count_limit_there_is_next_but_no_last(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.glue.search_count_limit = 5);
    let (agent, _) = app.agent_session("counter@example.com").await;
    for i in 1..=7 {
        app.insert_customer(
            &format!("C-{i:02}"),
            &format!("count{i:02}@example.com"),
            "Count",
            "Customer",
            None,
        );
    }
    let link = |offset: i64| {
        format!("{BASE_URL}/agent-customer-search?q=count&page[offset]={offset}&page[limit]=3")
    };
    let body = search_json(&app, "q=count&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["C-01", "C-02", "C-03"]);
    assert_eq!(
        body["links"],
        json!({"self":format!("{BASE_URL}/agent-customer-search?q=count&page[limit]=3"),"first":link(0),"next":link(3)})
    );
    let keys: Vec<&String> = body["links"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["self", "first", "next"]);

    let body = search_json(&app, "q=count&page[offset]=3&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["C-04", "C-05", "C-06"]);
    assert_eq!(body["links"]["next"], link(6));
    assert_eq!(body["links"]["prev"], link(0));
    assert!(body["links"].get("last").is_none());

    // The last page: a row short of a full page, so no next.
    let body = search_json(&app, "q=count&page[offset]=6&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["C-07"]);
    assert!(body["links"].get("next").is_none());
    assert!(body["links"].get("last").is_none());
    assert_eq!(body["links"]["prev"], link(3));

    // Past the end of an uncounted result, the search counts after all: `last` and `prev`
    // lead back to the data.
    let body = search_json(&app, "q=count&page[offset]=30&page[limit]=3", &agent).await;
    assert_eq!(body["data"][0]["attributes"]["customers"], json!([]));
    assert_eq!(body["links"]["last"], link(6));
    assert_eq!(body["links"]["prev"], link(6));
    assert!(body["links"].get("next").is_none());

    // Within the limit the count is exact and `last` is there.
    let body = search_json(&app, "q=count01&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["C-01"]);
    assert_eq!(
        body["links"]["last"],
        format!("{BASE_URL}/agent-customer-search?q=count01&page[offset]=0&page[limit]=3")
    );
}

/// Each live match counts once, whichever prefix tests (one or several) found it, and anonymized
/// customers never count. MySQL/MariaDB count one prefix test at a time, each capped at
/// `search_count_limit + 1` ids from its own index, then check the union for `anonymized_at`:
/// these are that count's seams, checked on every backend.
async fn the_count_takes_each_live_match_once_whichever_test_found_it(backend: Backend) {
    use diesel::RunQueryDsl;
    let app = spawn_app_with(backend, |s| s.glue.search_count_limit = 5);
    let (agent, _) = app.agent_session("seams@example.com").await;
    let anonymize = |reference: &str| {
        diesel::sql_query(format!(
            "UPDATE spy_customer SET anonymized_at = created_at WHERE customer_reference = '{reference}'"
        ))
        .execute(&mut app.conn())
        .unwrap();
    };
    let link = |q: &str, offset: i64| {
        format!("{BASE_URL}/agent-customer-search?q={q}&page[offset]={offset}&page[limit]=3")
    };

    // Found by email, by email and first name, by first name, by last name; one anonymized.
    for (reference, email, first, last) in [
        ("Z-1", "zed1@example.com", "Ann", "Ohm"),
        ("Z-2", "zed2@example.com", "Zed", "Ohm"),
        ("Z-3", "a3@example.com", "Zed", "Ohm"),
        ("Z-4", "a4@example.com", "Ann", "Zedd"),
        ("Z-5", "zed5@example.com", "Zed", "Zedd"),
    ] {
        app.insert_customer(reference, email, first, last, None);
    }
    anonymize("Z-5");
    let body = search_json(&app, "q=zed&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["Z-1", "Z-2", "Z-3"]);
    assert_eq!(body["links"]["last"], link("zed", 3), "four live matches");
    let body = search_json(&app, "q=zed&page[offset]=3&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["Z-4"]);
    assert!(body["links"].get("next").is_none());

    // One test alone reaches the cap (6), but two of its rows are anonymized: 4 live matches,
    // counted exactly.
    for i in 1..=6 {
        app.insert_customer(
            &format!("A-{i}"),
            &format!("anon{i}@example.com"),
            "Ann",
            "Ohm",
            None,
        );
    }
    anonymize("A-2");
    anonymize("A-5");
    let body = search_json(&app, "q=anon&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["A-1", "A-3", "A-4"]);
    assert_eq!(body["links"]["last"], link("anon", 3));
    let body = search_json(&app, "q=anon&page[offset]=3&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["A-6"]);

    // No test reaches the cap, but together they find 6 live matches: more than the limit.
    for i in 1..=3 {
        app.insert_customer(
            &format!("Y-{i}"),
            &format!("yo{i}@example.com"),
            "Ann",
            "Ohm",
            None,
        );
        app.insert_customer(
            &format!("Y-{}", i + 3),
            &format!("b{i}@example.com"),
            "Yoko",
            "Ohm",
            None,
        );
    }
    let body = search_json(&app, "q=yo&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["Y-1", "Y-4", "Y-2"]);
    assert!(body["links"].get("last").is_none(), "{}", body["links"]);
    assert_eq!(body["links"]["next"], link("yo", 3));
    let body = search_json(&app, "q=yo&page[offset]=3&page[limit]=3", &agent).await;
    assert_eq!(references(&body), ["Y-5", "Y-3", "Y-6"]);
    assert!(body["links"].get("next").is_none());
}

async fn bad_pagination_parameters_are_400(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, _) = app.agent_session("badpage@example.com").await;
    for query in [
        "page[offset]=abc&page[limit]=10",
        "page[offset]=0&page[limit]=abc",
        "page[offset]=0&page[limit]=0",
        "page[offset]=0&page[limit]=-5",
        "page[offset]=-10&page[limit]=10",
        "page[offset]=10",
        "page[offset]=1.5&page[limit]=10",
        "page[offset]=0&page[limit]=",
        "page[offset]=0&page[limit]=99999999999999999999",
    ] {
        assert_error(
            app.search(query, &agent).await,
            None,
            400,
            "Pagination parameters are invalid.",
        )
        .await;
    }
}

async fn only_agents_may_search(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, _) = app.agent_session("gate@example.com").await;
    app.insert_customer(
        "C-1",
        "customer@example.com",
        "Cus",
        "Tomer",
        Some("customer-pass"),
    );
    let response = app
        .customer_login(&json!("customer@example.com"), &json!("customer-pass"))
        .await;
    assert_eq!(response.status(), 201);
    let (customer_token, _) = token_pair(response.json().await.unwrap());
    let response = app.impersonate(&json!("C-1"), &agent).await;
    assert_eq!(response.status(), 201);
    let (impersonation_token, _) = token_pair(response.json().await.unwrap());

    let url = app.url("/agent-customer-search?q=c");
    let agent_only = |r: reqwest::Response| {
        assert_error(
            r,
            Some("4103"),
            401,
            "Action is available to agent user only.",
        )
    };
    agent_only(app.client.get(&url).send().await.unwrap()).await;
    for token in [&customer_token, &impersonation_token] {
        agent_only(
            app.client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        agent_only(
            app.client
                .get(&url)
                .header("X-Agent-Authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    // A one-part X-Agent-Authorization is no agent token at all.
    agent_only(
        app.client
            .get(&url)
            .header("X-Agent-Authorization", "garbage")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Two parts and an invalid token: 4102.
    for value in [
        "Bearer garbage",
        "Bearer eyJ0eXAiOiJKV1QifQ.e30.sig",
        "Token abc",
    ] {
        assert_error(
            app.client
                .get(&url)
                .header("X-Agent-Authorization", value)
                .send()
                .await
                .unwrap(),
            Some("4102"),
            401,
            "Agent access token is invalid.",
        )
        .await;
    }
    // An agent token works in either header.
    assert_eq!(
        app.client
            .get(&url)
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.search("q=c", &agent).await.status(), 200);
}

async fn a_deactivated_agents_token_stops_working(backend: Backend) {
    let app = spawn_app(backend);
    let (agent, agent_refresh) = app.agent_session("leaver@example.com").await;
    assert_eq!(app.search("q=s", &agent).await.status(), 200);
    let response = app.impersonate(&json!("DE--1"), &agent).await;
    let (_, impersonation_refresh) = token_pair(response.json().await.unwrap());
    glue::agent::set_status(
        &mut app.conn(),
        "leaver@example.com",
        status_code("blocked"),
    )
    .unwrap();
    // Neither the agent's session nor an impersonation it started can be refreshed …
    for token in [&agent_refresh, &impersonation_refresh] {
        assert_refresh_fails(&app, token).await;
    }
    // … and nothing was consumed: reactivated, the agent carries on.
    glue::agent::set_status(&mut app.conn(), "leaver@example.com", status_code("active")).unwrap();
    let response = app.refresh(&json!(agent_refresh)).await;
    assert_eq!(response.status(), 201);
    let (agent, _) = token_pair(response.json().await.unwrap());
    assert_eq!(
        app.refresh(&json!(impersonation_refresh)).await.status(),
        201
    );
    glue::agent::set_status(
        &mut app.conn(),
        "leaver@example.com",
        status_code("blocked"),
    )
    .unwrap();
    assert_error(
        app.search("q=s", &agent).await,
        Some("4102"),
        401,
        "Agent access token is invalid.",
    )
    .await;
    assert_error(
        app.impersonate(&json!("DE--1"), &agent).await,
        Some("4102"),
        401,
        "Agent access token is invalid.",
    )
    .await;
}
