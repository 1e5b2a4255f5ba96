-- glue's own second factor for agents: TOTP (RFC 6238), which Spryker does not ship, so it never
-- goes into the shop's spy_user_multi_factor_auth. The secret is encrypted (AES-256-GCM under
-- oauth.mfa_key_path); status 1 pending / 2 active; last_step = the last accepted time step.
-- No foreign key into the shop's spy_user (glue changes nothing there).
CREATE TABLE "glue_agent_totp"
(
    "id_user" INTEGER NOT NULL PRIMARY KEY,
    "secret" BYTEA NOT NULL,
    "status" INTEGER NOT NULL DEFAULT 1,
    "last_step" BIGINT,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
);
