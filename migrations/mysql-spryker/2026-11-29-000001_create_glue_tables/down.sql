DROP TABLE `glue_login_trusted_address`;
DROP TABLE `glue_login_attempt_counter`;
DROP TABLE `glue_oauth_refresh_token`;
