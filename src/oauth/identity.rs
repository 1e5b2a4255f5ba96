//! Who a token or a refresh-token row is for, as a value (Spryker's `OauthUserTransfer`
//! identifier, read the way PHP's `json_decode` reads it).
//!
//! The `sub` / `user_identifier` text is a storage format, never a key: glue writes its keys in
//! one order, PHP Glue in another, and a row or token may carry whitespace or numbers as
//! strings. Everything that decides *whose* a session is (ownership, logout, `mine`, ending an
//! agent's sessions) parses the text once into a [`Principal`] or an [`Identity`] and compares
//! those.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Spryker's `OauthUserTransfer` identifier, serialized into `sub` with exactly these keys in
/// this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdentifier {
    pub id_company_user: Option<Value>,
    pub id_agent: Option<i64>,
    pub customer_reference: Option<String>,
    pub id_customer: Option<i64>,
    pub permissions: Option<Value>,
}

impl UserIdentifier {
    pub fn agent(id_agent: i64) -> Self {
        UserIdentifier {
            id_company_user: None,
            id_agent: Some(id_agent),
            customer_reference: None,
            id_customer: None,
            permissions: None,
        }
    }

    pub fn customer(customer_reference: String, id_customer: i64) -> Self {
        UserIdentifier {
            id_company_user: None,
            id_agent: None,
            customer_reference: Some(customer_reference),
            id_customer: Some(id_customer),
            permissions: None,
        }
    }

    /// The JSON text that goes into `sub` and `user_identifier`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a user identifier always serializes")
    }
}

/// A subject: an agent (a `spy_user` row, by `id_user`) or a customer (by its reference, and
/// its id where the identifier carries one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Agent {
        id_user: i64,
    },
    Customer {
        reference: String,
        id_customer: Option<i64>,
    },
}

/// An integer as PHP may have written it: a JSON number, or a string of digits.
fn integer(map: &Map<String, Value>, key: &str) -> Option<i64> {
    match map.get(key)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Principal {
    /// Reads an identifier object in any key order; `None` when it names nobody. A non-empty
    /// `customer_reference` makes a customer (a customer token), otherwise `id_agent` an agent.
    pub fn parse(text: &str) -> Option<Self> {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        match map.get("customer_reference") {
            Some(Value::String(reference)) if !reference.is_empty() => Some(Principal::Customer {
                reference: reference.clone(),
                id_customer: integer(&map, "id_customer"),
            }),
            _ => integer(&map, "id_agent").map(|id_user| Principal::Agent { id_user }),
        }
    }

    /// The same agent (`id_user`), or the same customer: equal references, and equal ids where
    /// both sides carry one.
    pub fn same_as(&self, other: &Principal) -> bool {
        match (self, other) {
            (Principal::Agent { id_user: a }, Principal::Agent { id_user: b }) => a == b,
            (
                Principal::Customer {
                    reference: a,
                    id_customer: x,
                },
                Principal::Customer {
                    reference: b,
                    id_customer: y,
                },
            ) => a == b && (x.is_none() || y.is_none() || x == y),
            _ => false,
        }
    }

    pub fn agent_id(&self) -> Option<i64> {
        match self {
            Principal::Agent { id_user } => Some(*id_user),
            Principal::Customer { .. } => None,
        }
    }

    pub fn customer_reference(&self) -> Option<&str> {
        match self {
            Principal::Customer { reference, .. } => Some(reference),
            Principal::Agent { .. } => None,
        }
    }

    /// The text glue writes for this principal (Spryker's five keys, in the contract's order).
    pub fn to_json(&self) -> String {
        match self {
            Principal::Agent { id_user } => UserIdentifier::agent(*id_user).to_json(),
            Principal::Customer {
                reference,
                id_customer,
            } => UserIdentifier {
                id_company_user: None,
                id_agent: None,
                customer_reference: Some(reference.clone()),
                id_customer: *id_customer,
                permissions: None,
            }
            .to_json(),
        }
    }
}

/// Whose session a token or row belongs to: its subject and, for an impersonation, the agent
/// acting for the customer (RFC 8693 `act`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: Principal,
    pub acting_agent: Option<i64>,
}

impl Identity {
    /// Reads a subject text and an optional actor text; `None` when either names nobody, or
    /// the actor is not an agent.
    pub fn parse(subject: &str, actor: Option<&str>) -> Option<Self> {
        let acting_agent = match actor {
            Some(actor) => Some(Principal::parse(actor)?.agent_id()?),
            None => None,
        };
        Some(Identity {
            subject: Principal::parse(subject)?,
            acting_agent,
        })
    }

    pub fn of(subject: Principal) -> Self {
        Identity {
            subject,
            acting_agent: None,
        }
    }

    /// The agent this session hangs on: the subject when it is an agent, otherwise the agent
    /// acting for the customer. A password change or deactivation of that agent ends it.
    pub fn agent(&self) -> Option<i64> {
        self.subject.agent_id().or(self.acting_agent)
    }

    /// The acting agent's text, as glue writes it (`act.sub`, `actor_identifier`).
    pub fn actor_json(&self) -> Option<String> {
        self.acting_agent
            .map(|id_user| Principal::Agent { id_user }.to_json())
    }

    /// True when a caller with this identity may end a session of `row`: the same subject,
    /// and, when the caller is an impersonation, the same acting agent (an agent ends its own
    /// impersonation, not the customer's logins or another agent's).
    pub fn owns(&self, row: &Identity) -> bool {
        row.subject.same_as(&self.subject)
            && self
                .acting_agent
                .is_none_or(|acting| row.acting_agent == Some(acting))
    }

    /// True when ending this caller's sessions (`mine`) ends `row`: what it [owns](Self::owns),
    /// and for an agent also every impersonation it started.
    pub fn includes(&self, row: &Identity) -> bool {
        self.owns(row)
            || (self.acting_agent.is_none()
                && self.subject.agent_id().is_some()
                && row.acting_agent == self.subject.agent_id())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GLUE_CUSTOMER: &str = r#"{"id_company_user":null,"id_agent":null,"customer_reference":"DE--7","id_customer":7,"permissions":null}"#;
    const PHP_CUSTOMER: &str = r#"{"customer_reference":"DE--7","id_customer":7,"id_company_user":null,"id_agent":null,"permissions":null}"#;

    #[test]
    fn glue_and_php_key_orders_name_the_same_customer() {
        let glue = Principal::parse(GLUE_CUSTOMER).unwrap();
        let php = Principal::parse(PHP_CUSTOMER).unwrap();
        assert_eq!(glue, php);
        assert!(glue.same_as(&php));
        assert_eq!(
            Principal::parse(" {\n \"customer_reference\" : \"DE--7\", \"id_customer\": \"7\" } "),
            Some(glue.clone())
        );
        assert_eq!(Principal::parse(&glue.to_json()), Some(glue));
    }

    #[test]
    fn agents_are_their_id_whatever_the_spelling() {
        let agent = Principal::Agent { id_user: 5 };
        for text in [
            r#"{"id_agent":5}"#,
            r#"{"customer_reference":null,"id_customer":null,"id_company_user":null,"id_agent":5,"permissions":null}"#,
            r#"{"id_agent":"5","customer_reference":""}"#,
            r#"{ "id_agent" : 5.0 }"#,
        ] {
            assert_eq!(Principal::parse(text), Some(agent.clone()), "{text}");
        }
        assert_eq!(Principal::parse(&agent.to_json()), Some(agent));
    }

    #[test]
    fn identifiers_that_name_nobody_are_refused() {
        for text in [
            "",
            "null",
            "[]",
            r#"{"id_agent":null}"#,
            r#"{"id_agent":"x"}"#,
            r#"{"customer_reference":7}"#,
            "not json",
        ] {
            assert_eq!(Principal::parse(text), None, "{text}");
        }
        assert_eq!(Identity::parse(GLUE_CUSTOMER, Some(GLUE_CUSTOMER)), None);
    }

    #[test]
    fn customers_differ_by_reference_or_by_ids_both_carry() {
        let a = |reference: &str, id| Principal::Customer {
            reference: reference.into(),
            id_customer: id,
        };
        assert!(a("DE--1", Some(1)).same_as(&a("DE--1", None)));
        assert!(!a("DE--1", Some(1)).same_as(&a("DE--1", Some(2))));
        assert!(!a("DE--1", Some(1)).same_as(&a("de--1", Some(1))));
        assert!(!a("DE--1", Some(1)).same_as(&Principal::Agent { id_user: 1 }));
    }

    #[test]
    fn an_agent_includes_its_impersonations_and_an_impersonation_only_itself() {
        let customer = Principal::parse(PHP_CUSTOMER).unwrap();
        let agent = Identity::of(Principal::Agent { id_user: 3 });
        let impersonation = Identity {
            subject: customer.clone(),
            acting_agent: Some(3),
        };
        let other = Identity {
            subject: customer.clone(),
            acting_agent: Some(4),
        };
        let login = Identity::of(customer);
        assert!(agent.includes(&impersonation) && !agent.owns(&impersonation));
        assert!(impersonation.owns(&impersonation) && !impersonation.owns(&other));
        assert!(!impersonation.includes(&login));
        assert!(login.owns(&impersonation) && login.owns(&other) && login.owns(&login));
    }

    proptest! {
        #[test]
        fn any_key_order_and_spacing_reads_the_same(
            reference in "[A-Z]{2}--[0-9]{1,6}",
            id in 1i64..1_000_000,
            as_string in any::<bool>(),
            order in Just(vec![0usize, 1, 2, 3, 4]).prop_shuffle(),
            space in "[ \n\t]{0,2}",
        ) {
            let id_text = if as_string { format!("\"{id}\"") } else { id.to_string() };
            let entries = [
                format!("\"customer_reference\":{space}\"{reference}\""),
                format!("\"id_customer\":{space}{id_text}"),
                "\"id_company_user\":null".to_string(),
                "\"id_agent\":null".to_string(),
                "\"permissions\":null".to_string(),
            ];
            let text = format!(
                "{{{space}{}{space}}}",
                order.iter().map(|i| entries[*i].clone()).collect::<Vec<_>>().join(&format!(",{space}"))
            );
            prop_assert_eq!(
                Principal::parse(&text),
                Some(Principal::Customer { reference, id_customer: Some(id) })
            );
        }
    }
}
