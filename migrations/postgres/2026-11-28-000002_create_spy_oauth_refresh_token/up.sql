-- Refresh tokens (Spryker's spy_oauth_refresh_token). identifier is the SHA-256 (hex) of the
-- token, never the token. Rotation: every token of one login shares a family; a rotated token
-- names its successor.
CREATE TABLE spy_oauth_refresh_token (
    id_oauth_refresh_token BIGSERIAL PRIMARY KEY,
    identifier VARCHAR(64) NOT NULL UNIQUE,
    family TEXT NOT NULL,
    successor TEXT,
    scopes TEXT NOT NULL,
    customer_reference TEXT,
    user_identifier TEXT NOT NULL,
    actor_identifier TEXT,
    fk_oauth_client TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    updated_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
CREATE INDEX spy_oauth_refresh_token_family ON spy_oauth_refresh_token (family);
CREATE INDEX spy_oauth_refresh_token_user_identifier ON spy_oauth_refresh_token (user_identifier);
CREATE INDEX spy_oauth_refresh_token_expires_at ON spy_oauth_refresh_token (expires_at);
