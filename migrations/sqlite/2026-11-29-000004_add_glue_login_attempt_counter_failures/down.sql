ALTER TABLE "glue_login_attempt_counter" DROP COLUMN "failures";
