DROP TABLE `glue_agent_totp`;
DROP TABLE `spy_user_multi_factor_auth_codes_attempts`;
DROP TABLE `spy_user_multi_factor_auth_codes`;
DROP TABLE `spy_user_multi_factor_auth`;
