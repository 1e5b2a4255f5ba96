-- The refresh grace window: how often a retired token was honoured again (oauth.refresh_reuse_grace_s).
ALTER TABLE "glue_oauth_refresh_token" ADD COLUMN "grace_uses" INTEGER NOT NULL DEFAULT 0;
