-- Spryker's multi-factor authentication tables for back-office users (spryker/multi-factor-auth,
-- spy_multi_factor_auth.schema.xml); status 0 inactive / 1 pending activation / 2 active; code
-- status 0 unverified / 1 blocked / 2 verified / 3 invalidated.
CREATE TABLE "spy_user_multi_factor_auth"
(
    "id_user_multi_factor_auth" INTEGER PRIMARY KEY AUTOINCREMENT,
    "fk_user" INTEGER NOT NULL REFERENCES "spy_user" ("id_user"),
    "type" VARCHAR(50) NOT NULL,
    "configuration" VARCHAR(255),
    "status" INTEGER DEFAULT 0,
    "created_at" TIMESTAMP,
    "updated_at" TIMESTAMP
);

CREATE TABLE "spy_user_multi_factor_auth_codes"
(
    "id_user_multi_factor_auth_code" INTEGER PRIMARY KEY AUTOINCREMENT,
    "fk_user_multi_factor_auth" INTEGER NOT NULL REFERENCES "spy_user_multi_factor_auth" ("id_user_multi_factor_auth"),
    "code" VARCHAR(50) NOT NULL,
    "status" INTEGER DEFAULT 0,
    "expiration_date" TIMESTAMP NOT NULL,
    "created_at" TIMESTAMP,
    "updated_at" TIMESTAMP
);
CREATE INDEX "spy_user_mfa_codes-fk_user_type" ON "spy_user_multi_factor_auth_codes" ("fk_user_multi_factor_auth", "status");

CREATE TABLE "spy_user_multi_factor_auth_codes_attempts"
(
    "id_user_multi_factor_auth_code_attempt" INTEGER PRIMARY KEY AUTOINCREMENT,
    "fk_user_multi_factor_auth_code" INTEGER NOT NULL REFERENCES "spy_user_multi_factor_auth_codes" ("id_user_multi_factor_auth_code"),
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP
);

-- glue's own second factor for agents: TOTP (RFC 6238), which Spryker does not ship, so it never
-- goes into spy_user_multi_factor_auth. The secret is encrypted (AES-256-GCM under
-- oauth.mfa_key_path); status 1 pending / 2 active; last_step = the last accepted time step.
CREATE TABLE "glue_agent_totp"
(
    "id_user" INTEGER NOT NULL PRIMARY KEY,
    "secret" BLOB NOT NULL,
    "status" INTEGER NOT NULL DEFAULT 1,
    "last_step" BIGINT,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
);
