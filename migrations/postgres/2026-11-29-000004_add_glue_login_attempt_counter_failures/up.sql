-- Settled failures block a key; attempts also counts places held by logins still in bcrypt.
ALTER TABLE "glue_login_attempt_counter" ADD COLUMN "failures" INTEGER NOT NULL DEFAULT 0;
