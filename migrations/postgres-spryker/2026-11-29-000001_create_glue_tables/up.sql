-- `database.schema_owner = "spryker"`: the shop's Propel migrations own every spy_* table, so
-- glue creates only its own tables, in a schema of their own (`database.glue_schema`, put first
-- on glue's search_path), where Propel — which diffs only its own schema — never proposes to
-- drop them. Same tables as the glue-owned layout, without the foreign key into
-- spy_oauth_refresh_token: glue adds nothing to the shop's tables, and `glue tokens
-- purge-expired` removes side rows whose token row the shop deleted.

CREATE TABLE "glue_oauth_refresh_token"
(
    "id_oauth_refresh_token" INT8 NOT NULL,
    "family" VARCHAR(32) NOT NULL,
    "successor" VARCHAR(128),
    "actor_identifier" VARCHAR(1024),
    "grace_uses" INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ("id_oauth_refresh_token")
);
CREATE INDEX "glue_oauth_refresh_token-family" ON "glue_oauth_refresh_token" ("family");
CREATE INDEX "glue_oauth_refresh_token-actor_identifier" ON "glue_oauth_refresh_token" ("actor_identifier");

CREATE TABLE "glue_login_attempt_counter"
(
    "id_login_attempt_counter" BIGSERIAL PRIMARY KEY,
    "entity_type" VARCHAR(32) NOT NULL,
    "counter_key" VARCHAR(64) NOT NULL,
    "attempts" INTEGER NOT NULL,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "window_expires_at" TIMESTAMP NOT NULL,
    "blocked_until" TIMESTAMP,
    CONSTRAINT "glue_login_attempt_counter-key" UNIQUE ("entity_type", "counter_key")
);
CREATE INDEX "glue_login_attempt_counter-window_expires_at" ON "glue_login_attempt_counter" ("window_expires_at");

CREATE TABLE "glue_login_trusted_address"
(
    "id_login_trusted_address" BIGSERIAL PRIMARY KEY,
    "entity_type" VARCHAR(32) NOT NULL,
    "trust_key" VARCHAR(64) NOT NULL,
    "expires_at" TIMESTAMP NOT NULL,
    CONSTRAINT "glue_login_trusted_address-key" UNIQUE ("entity_type", "trust_key")
);
CREATE INDEX "glue_login_trusted_address-expires_at" ON "glue_login_trusted_address" ("expires_at");
