//! Constants of `AuthRestApi` (Spryker's `AuthRestApiConfig`).

pub const RESOURCE_ACCESS_TOKENS: &str = "access-tokens";
pub const RESOURCE_REFRESH_TOKENS: &str = "refresh-tokens";

/// `DELETE /refresh-tokens/mine` revokes every token of the caller.
pub const REFRESH_TOKEN_MINE: &str = "mine";

pub const CODE_INVALID_LOGIN: &str = "003";
pub const DETAIL_INVALID_LOGIN: &str = "Failed to authenticate user.";
pub const CODE_REFRESH_FAILED: &str = "004";
pub const DETAIL_REFRESH_FAILED: &str = "Failed to refresh token.";
pub const CODE_VALIDATION: &str = "901";

pub const NOT_BLANK: &str = "This value should not be blank.";
pub const NOT_AN_EMAIL: &str = "This value is not a valid email address.";
