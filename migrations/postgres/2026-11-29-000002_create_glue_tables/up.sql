-- glue's own tables: what glue needs beyond Spryker's columns, joined by key.

-- Rotation and sessions of refresh tokens (one row per spy_oauth_refresh_token row glue wrote):
-- every token of one login shares a family (the session, the access tokens' `sid`); a rotated
-- token names its successor (the SHA-256 identifier); impersonation tokens name the acting agent.
CREATE TABLE "glue_oauth_refresh_token"
(
    "id_oauth_refresh_token" INT8 NOT NULL,
    "family" VARCHAR(32) NOT NULL,
    "successor" VARCHAR(128),
    "actor_identifier" VARCHAR(1024),
    PRIMARY KEY ("id_oauth_refresh_token"),
    CONSTRAINT "glue_oauth_refresh_token-id_oauth_refresh_token"
        FOREIGN KEY ("id_oauth_refresh_token") REFERENCES "spy_oauth_refresh_token" ("id_oauth_refresh_token")
        ON DELETE CASCADE
);
CREATE INDEX "glue_oauth_refresh_token-family" ON "glue_oauth_refresh_token" ("family");
CREATE INDEX "glue_oauth_refresh_token-actor_identifier" ON "glue_oauth_refresh_token" ("actor_identifier");

-- Failed-login counters of the security blocker (Spryker keeps them in Redis), shared by every
-- instance. counter_key is the SHA-256 (hex) of "ip|username", "ip" or "username": no usernames.
CREATE TABLE "glue_login_attempt_counter"
(
    "id_login_attempt_counter" BIGSERIAL PRIMARY KEY,
    "entity_type" VARCHAR(32) NOT NULL,
    "counter_key" VARCHAR(64) NOT NULL,
    "attempts" INTEGER NOT NULL,
    "window_expires_at" TIMESTAMP NOT NULL,
    "blocked_until" TIMESTAMP,
    CONSTRAINT "glue_login_attempt_counter-key" UNIQUE ("entity_type", "counter_key")
);
CREATE INDEX "glue_login_attempt_counter-window_expires_at" ON "glue_login_attempt_counter" ("window_expires_at");

-- Addresses a user logged in from successfully (exempt from the account-wide counter).
-- trust_key is the SHA-256 (hex) of "ip|username".
CREATE TABLE "glue_login_trusted_address"
(
    "id_login_trusted_address" BIGSERIAL PRIMARY KEY,
    "entity_type" VARCHAR(32) NOT NULL,
    "trust_key" VARCHAR(64) NOT NULL,
    "expires_at" TIMESTAMP NOT NULL,
    CONSTRAINT "glue_login_trusted_address-key" UNIQUE ("entity_type", "trust_key")
);
CREATE INDEX "glue_login_trusted_address-expires_at" ON "glue_login_trusted_address" ("expires_at");
