ALTER TABLE "glue_oauth_refresh_token" DROP COLUMN "grace_uses";
