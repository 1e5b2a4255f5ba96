DROP INDEX "glue_oauth_refresh_token-id_agent";
ALTER TABLE "glue_oauth_refresh_token" DROP COLUMN "id_agent";
