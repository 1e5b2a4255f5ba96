//! glue: Spryker's Glue REST API for agent assist, in Rust.
//!
//! Module map (Spryker module in brackets):
//! - [`glue_application`] the REST core: plugins, envelope, errors, auth, negotiation [GlueApplication]
//! - [`agent_auth_rest_api`] `/agent-access-tokens`, `/agent-customer-search`,
//!   `/agent-customer-impersonation-access-tokens` [AgentAuthRestApi]
//! - [`auth_rest_api`] `/access-tokens`, `/refresh-tokens` [AuthRestApi, OauthRevoke]
//! - [`oauth`] keys + JWKS, JWT mint/verify, refresh tokens [Oauth, OauthRevoke]
//! - [`oauth_agent_connector`] the agent credentials grant [OauthAgentConnector]
//! - [`oauth_customer_connector`] the customer password grant [OauthCustomerConnector]
//! - [`agent`] `spy_user` rows [User, Agent]
//! - [`customer`] `spy_customer` rows and search [Customer]
//! - [`security_blocker`] failed-login counters in the database [SecurityBlocker]
//! - [`password`] bcrypt compatible with PHP's `password_hash`
//! - [`db`] pool, SQLite/PostgreSQL connection, migrations [Propel]
//! - [`settings`], [`state`], [`startup`], [`cli`] wiring

pub mod agent;
pub mod agent_auth_rest_api;
pub mod auth_rest_api;
pub mod cli;
pub mod customer;
pub mod db;
pub mod glue_application;
pub mod oauth;
pub mod oauth_agent_connector;
pub mod oauth_customer_connector;
pub mod password;
pub mod security_blocker;
pub mod settings;
pub mod startup;
pub mod state;
