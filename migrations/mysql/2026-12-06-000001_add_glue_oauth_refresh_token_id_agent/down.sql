ALTER TABLE `glue_oauth_refresh_token` DROP INDEX `glue_oauth_refresh_token-id_agent`, DROP COLUMN `id_agent`;
