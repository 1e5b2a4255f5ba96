-- The agent a session hangs on (the subject agent, or the agent acting for the customer): glue's
-- key for ending an agent's sessions by value. The identifier texts are a storage format that
-- PHP Glue spells differently (key order, whitespace, numbers as strings), never a key.
-- The live rows are backfilled from the texts: the acting agent of an impersonation, otherwise
-- the subject when it is an agent (no customer reference).
ALTER TABLE `glue_oauth_refresh_token`
    ADD COLUMN `id_agent` BIGINT NULL,
    ADD INDEX `glue_oauth_refresh_token-id_agent` (`id_agent`);
UPDATE `glue_oauth_refresh_token` g
JOIN `spy_oauth_refresh_token` t ON t.`id_oauth_refresh_token` = g.`id_oauth_refresh_token`
SET g.`id_agent` = CASE
    WHEN g.`actor_identifier` IS NOT NULL
        THEN CAST(NULLIF(JSON_UNQUOTE(JSON_EXTRACT(g.`actor_identifier`, '$.id_agent')), 'null') AS SIGNED)
    WHEN COALESCE(JSON_UNQUOTE(JSON_EXTRACT(t.`user_identifier`, '$.customer_reference')), 'null') IN ('null', '')
        THEN CAST(NULLIF(JSON_UNQUOTE(JSON_EXTRACT(t.`user_identifier`, '$.id_agent')), 'null') AS SIGNED)
END
WHERE t.`revoked_at` IS NULL;
