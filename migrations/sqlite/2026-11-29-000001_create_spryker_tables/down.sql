DROP TABLE "spy_oauth_refresh_token";
DROP TABLE "spy_customer";
DROP TABLE "spy_user";
DROP TABLE "spy_oauth_client";
