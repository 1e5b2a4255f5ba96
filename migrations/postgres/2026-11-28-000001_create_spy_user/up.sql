-- Back-office users; agents are users with is_agent = true (Spryker's spy_user + AgentGui).
CREATE TABLE spy_user (
    id_user BIGSERIAL PRIMARY KEY,
    first_name VARCHAR(255) NOT NULL,
    last_name VARCHAR(255) NOT NULL,
    username VARCHAR(255) NOT NULL UNIQUE,
    password VARCHAR(255) NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked', 'deleted')),
    is_agent BOOLEAN NOT NULL DEFAULT false,
    last_login TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    updated_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

-- Demo agent from Spryker's documentation (admin@spryker.com / change123, bcrypt cost 12).
-- Production refuses to start while it still has this password.
INSERT INTO spy_user (first_name, last_name, username, password, status, is_agent)
VALUES ('Admin', 'Spryker', 'admin@spryker.com', '$2y$12$odiEutHi/SlifYBtaA2T1u4lqZA0Wt6naudRHHuXowyhrMv0dE5Py', 'active', true);
