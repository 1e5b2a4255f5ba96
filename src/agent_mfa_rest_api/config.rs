//! Constants of the agents' `MultiFactorAuth` resources (Spryker's `MultiFactorAuthConfig`,
//! with the `agent-` prefix).

pub const RESOURCE_TYPES: &str = "agent-multi-factor-auth-types";
pub const RESOURCE_ACTIVATE: &str = "agent-multi-factor-auth-type-activate";
pub const RESOURCE_VERIFY: &str = "agent-multi-factor-auth-type-verify";
pub const RESOURCE_DEACTIVATE: &str = "agent-multi-factor-auth-type-deactivate";

/// The one method glue serves.
pub const TYPE_TOTP: &str = "totp";

pub const CODE_CODE_MISSING: &str = "5900";
pub const DETAIL_CODE_MISSING: &str = "X-MFA-Code header is missing.";
pub const CODE_CODE_INVALID: &str = "5901";
pub const DETAIL_CODE_INVALID: &str = "X-MFA-Code is invalid.";
pub const CODE_ALREADY_ACTIVE: &str = "5904";
pub const DETAIL_ALREADY_ACTIVE: &str = "Multi-factor authentication type already activated.";
pub const CODE_TYPE_NOT_FOUND: &str = "5906";
pub const DETAIL_TYPE_NOT_FOUND: &str = "Multi-factor authentication type is not found.";
