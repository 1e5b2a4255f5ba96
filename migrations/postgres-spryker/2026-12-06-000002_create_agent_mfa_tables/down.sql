DROP TABLE "glue_agent_totp";
