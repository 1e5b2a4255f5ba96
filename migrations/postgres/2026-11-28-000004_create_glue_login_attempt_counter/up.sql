-- Failed-login counters of the security blocker (Spryker keeps them in Redis). Shared by every
-- instance. counter_key is the SHA-256 (hex) of "ip|username" or "username": no usernames are
-- stored and the key has a fixed size.
CREATE TABLE glue_login_attempt_counter (
    id_login_attempt_counter BIGSERIAL PRIMARY KEY,
    entity_type VARCHAR(32) NOT NULL,
    counter_key VARCHAR(64) NOT NULL,
    attempts INTEGER NOT NULL,
    window_expires_at TIMESTAMP NOT NULL,
    blocked_until TIMESTAMP,
    UNIQUE (entity_type, counter_key)
);
CREATE INDEX glue_login_attempt_counter_window ON glue_login_attempt_counter (window_expires_at);
