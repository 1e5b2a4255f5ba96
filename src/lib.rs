//! glue: Spryker's Glue REST API for agent assist, in Rust.
//!
//! Module map (Spryker module in brackets):
//! - [`glue_application`] the REST core: plugins, envelope, errors, auth, negotiation [GlueApplication]
//! - [`agent_auth_rest_api`] `/agent-access-tokens` [AgentAuthRestApi]
//! - [`auth_rest_api`] `/refresh-tokens` [AuthRestApi, OauthRevoke]
//! - [`oauth`] keys + JWKS, JWT mint/verify, refresh tokens [Oauth, OauthRevoke]
//! - [`oauth_agent_connector`] the agent credentials grant [OauthAgentConnector]
//! - [`agent`] `spy_user` rows [User, Agent]
//! - [`password`] bcrypt compatible with PHP's `password_hash`
//! - [`db`] pool, SQLite/PostgreSQL connection, migrations [Propel]
//! - [`settings`], [`state`], [`startup`], [`cli`] wiring

pub mod agent;
pub mod agent_auth_rest_api;
pub mod auth_rest_api;
pub mod cli;
pub mod db;
pub mod glue_application;
pub mod oauth;
pub mod oauth_agent_connector;
pub mod password;
pub mod settings;
pub mod startup;
pub mod state;
