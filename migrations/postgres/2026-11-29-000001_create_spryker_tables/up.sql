-- Spryker's tables as Propel 2 emits them for PostgreSQL (spryker/user + agent + user-locale,
-- spryker/customer + customer-user-connector + agent, spryker/oauth, spryker/oauth-revoke):
-- INTEGER/INT8 ids without a DEFAULT (every INSERT names nextval('<table>_pk_seq'), as Propel
-- does), ENUMs as the 0-based INT2 index, nullable timestamps. Foreign keys to tables glue does
-- not have (spy_locale, spy_customer_address) are left out. glue's own additions are the
-- expression indexes for case-insensitive prefix search (no extra columns) and the seed rows.

CREATE SEQUENCE "spy_oauth_client_pk_seq";
CREATE TABLE "spy_oauth_client"
(
    "id_oauth_client" INTEGER NOT NULL,
    "identifier" VARCHAR(1024) NOT NULL,
    "is_confidential" BOOLEAN,
    "name" VARCHAR(1024) NOT NULL,
    "redirect_uri" VARCHAR(1024),
    "secret" VARCHAR(1024),
    PRIMARY KEY ("id_oauth_client"),
    CONSTRAINT "spy_oauth_client-identifier" UNIQUE ("identifier")
);

CREATE SEQUENCE "spy_user_pk_seq";
CREATE TABLE "spy_user"
(
    "id_user" INTEGER NOT NULL,
    "fk_locale" INTEGER,
    "first_name" VARCHAR(45) NOT NULL,
    "is_agent" BOOLEAN,
    "last_login" TIMESTAMP,
    "last_name" VARCHAR(255) NOT NULL,
    "password" VARCHAR(255) NOT NULL,
    "status" INT2 DEFAULT 0 NOT NULL,
    "username" VARCHAR(45) NOT NULL,
    "created_at" TIMESTAMP,
    "updated_at" TIMESTAMP,
    PRIMARY KEY ("id_user"),
    CONSTRAINT "spy_user-username" UNIQUE ("username")
);

CREATE SEQUENCE "spy_customer_pk_seq";
CREATE TABLE "spy_customer"
(
    "id_customer" INTEGER NOT NULL,
    "fk_locale" INTEGER,
    "fk_user" INTEGER,
    "anonymized_at" TIMESTAMP,
    "company" VARCHAR(100),
    "customer_reference" VARCHAR(255) NOT NULL,
    "date_of_birth" DATE,
    "default_billing_address" INTEGER,
    "default_shipping_address" INTEGER,
    "email" VARCHAR(255) NOT NULL,
    "first_name" VARCHAR(100),
    "gender" INT2,
    "last_name" VARCHAR(100),
    "password" VARCHAR(255),
    "phone" VARCHAR(255),
    "registered" DATE,
    "registration_key" VARCHAR(150),
    "restore_password_date" TIMESTAMP,
    "restore_password_key" VARCHAR(150),
    "salutation" INT2,
    "created_at" TIMESTAMP,
    "updated_at" TIMESTAMP,
    PRIMARY KEY ("id_customer"),
    CONSTRAINT "spy_customer-email" UNIQUE ("email"),
    CONSTRAINT "spy_customer-customer_reference" UNIQUE ("customer_reference")
);
CREATE INDEX "spy_customer-first_name" ON "spy_customer" ("first_name");
CREATE INDEX "spy_customer-last_name" ON "spy_customer" ("last_name");
CREATE INDEX "index-spy_customer-fk_user" ON "spy_customer" ("fk_user");
CREATE INDEX "index-spy_customer-default_billing_address" ON "spy_customer" ("default_billing_address");
CREATE INDEX "index-spy_customer-default_shipping_address" ON "spy_customer" ("default_shipping_address");
CREATE INDEX "index-spy_customer-fk_locale" ON "spy_customer" ("fk_locale");
-- glue: case-insensitive prefix search and email lookup as byte-order range scans
-- (`glue db search-indexes` prints these for a shop's own database).
CREATE INDEX "glue-spy_customer-lower_email" ON "spy_customer" ((lower("email") COLLATE "C"));
CREATE INDEX "glue-spy_customer-lower_first_name" ON "spy_customer" ((lower("first_name") COLLATE "C"));
CREATE INDEX "glue-spy_customer-lower_last_name" ON "spy_customer" ((lower("last_name") COLLATE "C"));

CREATE SEQUENCE "spy_oauth_refresh_token_pk_seq";
CREATE TABLE "spy_oauth_refresh_token"
(
    "id_oauth_refresh_token" INT8 NOT NULL,
    "identifier" VARCHAR(128) NOT NULL,
    "scopes" VARCHAR(1024),
    "customer_reference" VARCHAR(255),
    "user_identifier" VARCHAR(1024) NOT NULL,
    "fk_oauth_client" VARCHAR(1024) NOT NULL,
    "expires_at" TIMESTAMP NOT NULL,
    "revoked_at" TIMESTAMP,
    "created_at" TIMESTAMP,
    "updated_at" TIMESTAMP,
    PRIMARY KEY ("id_oauth_refresh_token")
);
CREATE INDEX "index-spy_oauth_refresh_token-identifier" ON "spy_oauth_refresh_token" ("identifier");
CREATE INDEX "index-spy_oauth_refresh_token-customer_reference" ON "spy_oauth_refresh_token" ("customer_reference");
CREATE INDEX "index-spy_oauth_refresh_token-fk_oauth_client" ON "spy_oauth_refresh_token" ("fk_oauth_client");
CREATE INDEX "index-spy_oauth_refresh_token-user_identifier" ON "spy_oauth_refresh_token" ("user_identifier");

ALTER TABLE "spy_customer" ADD CONSTRAINT "spy_customer-fk_user"
    FOREIGN KEY ("fk_user") REFERENCES "spy_user" ("id_user");
ALTER TABLE "spy_oauth_refresh_token" ADD CONSTRAINT "spy_oauth_refresh_token-identifier"
    FOREIGN KEY ("fk_oauth_client") REFERENCES "spy_oauth_client" ("identifier");

-- Spryker's installer creates the storefront client `frontend`.
INSERT INTO "spy_oauth_client" ("id_oauth_client", "identifier", "name", "is_confidential")
VALUES (nextval('spy_oauth_client_pk_seq'), 'frontend', 'Customer client', false);

-- Demo agent from Spryker's documentation (admin@spryker.com / change123, bcrypt cost 12),
-- status 0 = active. Production refuses to start while it still has this password.
INSERT INTO "spy_user" ("id_user", "first_name", "last_name", "username", "password", "status", "is_agent", "created_at", "updated_at")
VALUES (nextval('spy_user_pk_seq'), 'Admin', 'Spryker', 'admin@spryker.com', '$2y$12$odiEutHi/SlifYBtaA2T1u4lqZA0Wt6naudRHHuXowyhrMv0dE5Py', 0, true, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc');

-- Demo customers from Spryker's demo shop, without passwords: they can be searched and
-- impersonated, not logged into. `glue customer create` makes customers who can log in.
INSERT INTO "spy_customer" ("id_customer", "customer_reference", "email", "first_name", "last_name", "created_at", "updated_at") VALUES
    (nextval('spy_customer_pk_seq'), 'DE--1', 'sonia@spryker.com', 'Sonia', 'Wagner', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'),
    (nextval('spy_customer_pk_seq'), 'DE--2', 'spencor.hopkin@spryker.com', 'Spencor', 'Hopkin', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'),
    (nextval('spy_customer_pk_seq'), 'DE--3', 'maria.williams@spryker.com', 'Maria', 'Williams', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'),
    (nextval('spy_customer_pk_seq'), 'DE--4', 'esther.parker@spryker.com', 'Esther', 'Parker', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'),
    (nextval('spy_customer_pk_seq'), 'DE--5', 'bill.martin@spryker.com', 'Bill', 'Martin', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'),
    (nextval('spy_customer_pk_seq'), 'DE--6', 'karl.schneider@spryker.com', 'Karl', 'Schneider', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc');
