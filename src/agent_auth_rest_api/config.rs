//! Constants of `AgentAuthRestApi` (Spryker's `AgentAuthRestApiConfig`).

pub const RESOURCE_AGENT_ACCESS_TOKENS: &str = "agent-access-tokens";

pub const CODE_AGENT_AUTHENTICATION_FAILED: &str = "4101";
pub const DETAIL_AGENT_AUTHENTICATION_FAILED: &str = "Failed to authenticate an agent.";

pub const RESOURCE_AGENT_CUSTOMER_SEARCH: &str = "agent-customer-search";
pub const RESOURCE_AGENT_CUSTOMER_IMPERSONATION_ACCESS_TOKENS: &str =
    "agent-customer-impersonation-access-tokens";

pub const CODE_IMPERSONATION_FAILED: &str = "4104";
pub const DETAIL_IMPERSONATION_FAILED: &str = "Failed to impersonate a customer.";
pub const DETAIL_PAGINATION_INVALID: &str = "Pagination parameters are invalid.";

/// Page size when the request names none (Spryker's default).
pub const DEFAULT_PAGE_LIMIT: i64 = 10;

pub const CODE_AGENT_TOKEN_INVALID: &str = "4102";
pub const DETAIL_AGENT_TOKEN_INVALID: &str = "Agent access token is invalid.";
pub const CODE_AGENT_ONLY: &str = "4103";
pub const DETAIL_AGENT_ONLY: &str = "Action is available to agent user only.";

/// The header agents send their token in (Spryker's `X-Agent-Authorization`).
pub const AGENT_AUTHORIZATION: &str = "x-agent-authorization";

/// The header of the second factor's code (Spryker's `MultiFactorAuthConfig::HEADER_MULTI_FACTOR_AUTH_CODE`).
pub const MFA_CODE_HEADER: &str = "x-mfa-code";
pub const CODE_MFA_CODE_MISSING: &str = "5900";
pub const DETAIL_MFA_CODE_MISSING: &str = "X-MFA-Code header is missing.";
pub const CODE_MFA_CODE_INVALID: &str = "5901";
pub const DETAIL_MFA_CODE_INVALID: &str = "X-MFA-Code is invalid.";
pub const CODE_MFA_TYPE_MISSING: &str = "5902";
pub const DETAIL_MFA_TYPE_MISSING: &str = "Multi-factor authentication type is missing.";
