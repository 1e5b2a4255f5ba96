DROP TABLE "glue_agent_totp";
DROP TABLE "spy_user_multi_factor_auth_codes_attempts";
DROP SEQUENCE "id_user_multi_factor_auth_code_attempt_pk_seq";
DROP TABLE "spy_user_multi_factor_auth_codes";
DROP SEQUENCE "id_user_multi_factor_auth_code_pk_seq";
DROP TABLE "spy_user_multi_factor_auth";
DROP SEQUENCE "id_user_multi_factor_auth_pk_seq";
