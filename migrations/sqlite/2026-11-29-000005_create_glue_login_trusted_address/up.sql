-- Addresses a user logged in from successfully (the security blocker's exemption from the
-- account-wide counter). trust_key is the SHA-256 (hex) of "ip|username": no usernames are stored.
CREATE TABLE glue_login_trusted_address (
    id_login_trusted_address INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_type TEXT NOT NULL,
    trust_key TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    UNIQUE (entity_type, trust_key)
);
CREATE INDEX glue_login_trusted_address_expires_at ON glue_login_trusted_address (expires_at);
