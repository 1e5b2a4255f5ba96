//! glue: Spryker's Glue REST API for agent assist, in Rust.
//!
//! Layers; a module imports only from the layers below it (Spryker module in brackets):
//! 1. entry points: `main`, [`cli`], [`startup`] (the composition root: lists the resources)
//! 2. resources, HTTP in and out, each with its own codes: [`agent_auth_rest_api`]
//!    (`/agent-access-tokens`, `/agent-customer-search`,
//!    `/agent-customer-impersonation-access-tokens`) [AgentAuthRestApi], [`auth_rest_api`]
//!    (`/access-tokens`, `/refresh-tokens`) [AuthRestApi, OauthRevoke], and what they share,
//!    [`agent_mfa_rest_api`] (`/agent-multi-factor-auth-*`) [MultiFactorAuth],
//!    [`oauth_api`] (the `Authorization` check, token resources, JWKS, domain errors → HTTP)
//!    [OauthApi]; [`state`] is the app data they read
//! 3. flows, one outcome enum each: [`login`] (the one login flow), [`session`] (refresh of
//!    glue's and PHP Glue's refresh tokens, revoke one / `mine`, end an agent's sessions)
//!    [Oauth refresh grant, OauthRevoke], [`oauth_agent_connector`] [OauthAgentConnector],
//!    [`oauth_customer_connector`] (password and impersonation grants) [OauthCustomerConnector],
//!    [`second_factor`] (an agent's method and codes outside the login) [MultiFactorAuth];
//!    [`services`], what they run on
//! 4. [`oauth`]: keys + JWKS, identities as values, JWT mint/verify, refresh-token rows and
//!    rules [Oauth]; [`security_blocker`] failed-login counters [SecurityBlocker];
//!    [`password`] bcrypt compatible with PHP's `password_hash`, batched in SIMD lanes;
//!    [`multi_factor_auth`] agents' second factor (TOTP, the shop's email method)
//!    [MultiFactorAuth]
//! 5. repositories: [`agent`] `spy_user` [User, Agent], [`customer`] `spy_customer` [Customer]
//! 6. [`db`] pool, SQLite/PostgreSQL/MySQL connection, migrations, the layout on a shop's own
//!    database [Propel]; [`settings`], [`secret`]; [`clock`], [`metrics`]; [`mail`] SMTP
//!    [Mail]; [`threads`] lanes of lower-priority threads (a leaf: `db` runs searches on one)
//!
//! [`glue_application`], the REST core (envelope, errors, negotiation, headers, client address,
//! plugin and validator traits) [GlueApplication], is used by the resources and `startup` and
//! itself imports only `db`.

pub mod agent;
pub mod agent_auth_rest_api;
pub mod agent_mfa_rest_api;
pub mod auth_rest_api;
pub mod cli;
pub mod clock;
pub mod customer;
pub mod db;
pub mod glue_application;
pub mod login;
pub mod mail;
pub mod metrics;
pub mod multi_factor_auth;
pub mod oauth;
pub mod oauth_agent_connector;
pub mod oauth_api;
pub mod oauth_customer_connector;
pub mod password;
pub mod second_factor;
pub mod secret;
pub mod security_blocker;
pub mod services;
pub mod session;
pub mod settings;
pub mod startup;
pub mod state;
pub mod threads;
