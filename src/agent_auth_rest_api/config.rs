//! Constants of `AgentAuthRestApi` (Spryker's `AgentAuthRestApiConfig`).

pub const RESOURCE_AGENT_ACCESS_TOKENS: &str = "agent-access-tokens";

pub const CODE_AGENT_AUTHENTICATION_FAILED: &str = "4101";
pub const DETAIL_AGENT_AUTHENTICATION_FAILED: &str = "Failed to authenticate an agent.";
