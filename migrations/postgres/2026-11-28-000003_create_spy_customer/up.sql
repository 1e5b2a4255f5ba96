-- Customers (Spryker's spy_customer). The search_* columns hold the lower-cased email and
-- names in the "C" collation: prefix search is a byte-order range scan on them
-- ("abc" <= x < "abd"), which uses the indexes with bound parameters and makes % and _
-- ordinary characters.
CREATE TABLE spy_customer (
    id_customer BIGSERIAL PRIMARY KEY,
    customer_reference VARCHAR(255) NOT NULL UNIQUE,
    email VARCHAR(255) NOT NULL UNIQUE,
    first_name VARCHAR(100) NOT NULL,
    last_name VARCHAR(100) NOT NULL,
    password VARCHAR(255),
    search_email VARCHAR(255) COLLATE "C" NOT NULL UNIQUE,
    search_first_name VARCHAR(100) COLLATE "C" NOT NULL,
    search_last_name VARCHAR(100) COLLATE "C" NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    updated_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
CREATE INDEX spy_customer_search_first_name ON spy_customer (search_first_name);
CREATE INDEX spy_customer_search_last_name ON spy_customer (search_last_name);

-- Demo customers from Spryker's demo shop, without passwords: they can be searched and
-- impersonated, not logged into. `glue customer create` makes customers who can log in.
INSERT INTO spy_customer (customer_reference, email, first_name, last_name, search_email, search_first_name, search_last_name) VALUES
    ('DE--1', 'sonia@spryker.com', 'Sonia', 'Wagner', 'sonia@spryker.com', 'sonia', 'wagner'),
    ('DE--2', 'spencor.hopkin@spryker.com', 'Spencor', 'Hopkin', 'spencor.hopkin@spryker.com', 'spencor', 'hopkin'),
    ('DE--3', 'maria.williams@spryker.com', 'Maria', 'Williams', 'maria.williams@spryker.com', 'maria', 'williams'),
    ('DE--4', 'esther.parker@spryker.com', 'Esther', 'Parker', 'esther.parker@spryker.com', 'esther', 'parker'),
    ('DE--5', 'bill.martin@spryker.com', 'Bill', 'Martin', 'bill.martin@spryker.com', 'bill', 'martin'),
    ('DE--6', 'karl.schneider@spryker.com', 'Karl', 'Schneider', 'karl.schneider@spryker.com', 'karl', 'schneider');
