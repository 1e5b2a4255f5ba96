//! One integration-test binary: every scenario against the real application over HTTP,
//! on SQLite and (with GLUE_TEST_DATABASE_URL) PostgreSQL.

mod helpers;

mod agent_access_tokens;
mod agent_customer_search;
mod agent_mfa;
mod agent_mfa_email;
mod architecture;
mod bcrypt_batching;
mod bearer_auth;
mod blocker_seams;
mod cli;
mod database_faults;
mod discovery;
mod glue_core;
mod hardening;
mod hostile_traffic;
mod impersonation;
mod metrics;
mod openapi;
mod php_glue;
mod php_sessions;
mod process;
mod properties;
mod redis_blocker;
mod refresh_tokens;
mod schema;
mod security_blocker;
mod sessions;
mod spryker_shop;
