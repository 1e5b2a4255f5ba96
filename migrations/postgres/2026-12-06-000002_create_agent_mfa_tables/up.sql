-- Spryker's multi-factor authentication tables for back-office users (spryker/multi-factor-auth,
-- spy_multi_factor_auth.schema.xml) as Propel emits them for PostgreSQL: ids from the sequences
-- the XML names (id-method-parameter), no DEFAULT; status 0 inactive / 1 pending activation /
-- 2 active; code status 0 unverified / 1 blocked / 2 verified / 3 invalidated.
CREATE SEQUENCE "id_user_multi_factor_auth_pk_seq";
CREATE TABLE "spy_user_multi_factor_auth"
(
    "id_user_multi_factor_auth" INTEGER NOT NULL,
    "fk_user" INTEGER NOT NULL,
    "type" VARCHAR(50) NOT NULL,
    "configuration" VARCHAR(255),
    "status" INTEGER DEFAULT 0,
    "created_at" TIMESTAMP,
    "updated_at" TIMESTAMP,
    PRIMARY KEY ("id_user_multi_factor_auth")
);

CREATE SEQUENCE "id_user_multi_factor_auth_code_pk_seq";
CREATE TABLE "spy_user_multi_factor_auth_codes"
(
    "id_user_multi_factor_auth_code" INTEGER NOT NULL,
    "fk_user_multi_factor_auth" INTEGER NOT NULL,
    "code" VARCHAR(50) NOT NULL,
    "status" INTEGER DEFAULT 0,
    "expiration_date" TIMESTAMP NOT NULL,
    "created_at" TIMESTAMP,
    "updated_at" TIMESTAMP,
    PRIMARY KEY ("id_user_multi_factor_auth_code")
);
CREATE INDEX "spy_user_mfa_codes-fk_user_type" ON "spy_user_multi_factor_auth_codes" ("fk_user_multi_factor_auth","status");

CREATE SEQUENCE "id_user_multi_factor_auth_code_attempt_pk_seq";
CREATE TABLE "spy_user_multi_factor_auth_codes_attempts"
(
    "id_user_multi_factor_auth_code_attempt" INTEGER NOT NULL,
    "fk_user_multi_factor_auth_code" INTEGER NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP,
    PRIMARY KEY ("id_user_multi_factor_auth_code_attempt")
);

ALTER TABLE "spy_user_multi_factor_auth" ADD CONSTRAINT "spy_user_mfa-fk_user"
    FOREIGN KEY ("fk_user") REFERENCES "spy_user" ("id_user");
ALTER TABLE "spy_user_multi_factor_auth_codes" ADD CONSTRAINT "spy_user_mfa-fk_user_mfa"
    FOREIGN KEY ("fk_user_multi_factor_auth") REFERENCES "spy_user_multi_factor_auth" ("id_user_multi_factor_auth");
ALTER TABLE "spy_user_multi_factor_auth_codes_attempts" ADD CONSTRAINT "spy_user_mfa-fk_user_mfa_code"
    FOREIGN KEY ("fk_user_multi_factor_auth_code") REFERENCES "spy_user_multi_factor_auth_codes" ("id_user_multi_factor_auth_code");

-- glue's own second factor for agents: TOTP (RFC 6238), which Spryker does not ship, so it never
-- goes into spy_user_multi_factor_auth (Zed and Yves have no plugin for it). The secret is
-- encrypted (AES-256-GCM under oauth.mfa_key_path: 12-byte nonce, ciphertext, tag); status 1
-- pending (enrolled, no code verified yet) / 2 active; last_step = the last accepted time step,
-- so that a code is accepted once.
CREATE TABLE "glue_agent_totp"
(
    "id_user" INTEGER NOT NULL PRIMARY KEY,
    "secret" BYTEA NOT NULL,
    "status" INTEGER NOT NULL DEFAULT 1,
    "last_step" BIGINT,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
);
