-- The agent a session hangs on (the subject agent, or the agent acting for the customer): glue's
-- key for ending an agent's sessions by value. The identifier texts are a storage format that
-- PHP Glue spells differently (key order, whitespace, numbers as strings), never a key.
-- The live rows are backfilled from the texts: the acting agent of an impersonation, otherwise
-- the subject when it is an agent (no customer reference).
ALTER TABLE "glue_oauth_refresh_token" ADD COLUMN "id_agent" BIGINT;
CREATE INDEX "glue_oauth_refresh_token-id_agent" ON "glue_oauth_refresh_token" ("id_agent");
UPDATE "glue_oauth_refresh_token" SET "id_agent" = (
    SELECT CAST(CASE
        WHEN json_valid("glue_oauth_refresh_token"."actor_identifier")
            THEN json_extract("glue_oauth_refresh_token"."actor_identifier", '$.id_agent')
        WHEN json_valid(t."user_identifier")
            AND COALESCE(json_extract(t."user_identifier", '$.customer_reference'), '') = ''
            THEN json_extract(t."user_identifier", '$.id_agent')
    END AS INTEGER)
    FROM "spy_oauth_refresh_token" t
    WHERE t."id_oauth_refresh_token" = "glue_oauth_refresh_token"."id_oauth_refresh_token"
        AND t."revoked_at" IS NULL
);
