DROP TABLE "spy_oauth_refresh_token";
DROP SEQUENCE "spy_oauth_refresh_token_pk_seq";
DROP TABLE "spy_customer";
DROP SEQUENCE "spy_customer_pk_seq";
DROP TABLE "spy_user";
DROP SEQUENCE "spy_user_pk_seq";
DROP TABLE "spy_oauth_client";
DROP SEQUENCE "spy_oauth_client_pk_seq";
