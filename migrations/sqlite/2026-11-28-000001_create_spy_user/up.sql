-- Back-office users; agents are users with is_agent = 1 (Spryker's spy_user + AgentGui).
CREATE TABLE spy_user (
    id_user INTEGER PRIMARY KEY AUTOINCREMENT,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked', 'deleted')),
    is_agent BOOLEAN NOT NULL DEFAULT 0,
    last_login TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Demo agent from Spryker's documentation (admin@spryker.com / change123, bcrypt cost 12).
-- Production refuses to start while it still has this password.
INSERT INTO spy_user (first_name, last_name, username, password, status, is_agent)
VALUES ('Admin', 'Spryker', 'admin@spryker.com', '$2y$12$odiEutHi/SlifYBtaA2T1u4lqZA0Wt6naudRHHuXowyhrMv0dE5Py', 'active', 1);
