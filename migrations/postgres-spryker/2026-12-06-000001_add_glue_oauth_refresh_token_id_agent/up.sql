-- The agent a session hangs on (the subject agent, or the agent acting for the customer): glue's
-- key for ending an agent's sessions by value. The identifier texts are a storage format that
-- PHP Glue spells differently (key order, whitespace, numbers as strings), never a key.
-- The live rows are backfilled from the texts: the acting agent of an impersonation, otherwise
-- the subject when it is an agent (no customer reference).
ALTER TABLE "glue_oauth_refresh_token" ADD COLUMN "id_agent" INT8;
CREATE INDEX "glue_oauth_refresh_token-id_agent" ON "glue_oauth_refresh_token" ("id_agent");
UPDATE "glue_oauth_refresh_token" g SET "id_agent" = CASE
    WHEN g."actor_identifier" IS NOT NULL
        THEN NULLIF(g."actor_identifier"::json ->> 'id_agent', '')::INT8
    WHEN COALESCE(t."user_identifier"::json ->> 'customer_reference', '') = ''
        THEN NULLIF(t."user_identifier"::json ->> 'id_agent', '')::INT8
END
FROM "spy_oauth_refresh_token" t
WHERE t."id_oauth_refresh_token" = g."id_oauth_refresh_token" AND t."revoked_at" IS NULL;
