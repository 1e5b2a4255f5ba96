-- Ending an agent's sessions also ends the impersonation sessions it started (actor_identifier).
CREATE INDEX spy_oauth_refresh_token_actor_identifier ON spy_oauth_refresh_token (actor_identifier);
