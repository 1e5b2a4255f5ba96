-- Spryker's tables as Propel 2 emits them for MySQL/MariaDB (InnoDB; see the PostgreSQL
-- migration for the modules): AUTO_INCREMENT ids, ENUMs as the 0-based TINYINT index, BOOLEAN
-- as TINYINT(1), TIMESTAMP as DATETIME, Spryker's charset utf8 / utf8_unicode_ci (so `=`,
-- LIKE and UNIQUE on text ignore case). Foreign keys to tables glue does not have are left out.

CREATE TABLE `spy_oauth_client`
(
    `id_oauth_client` INTEGER NOT NULL AUTO_INCREMENT,
    `identifier` VARCHAR(1024) NOT NULL,
    `is_confidential` TINYINT(1),
    `name` VARCHAR(1024) NOT NULL,
    `redirect_uri` VARCHAR(1024),
    `secret` VARCHAR(1024),
    PRIMARY KEY (`id_oauth_client`),
    UNIQUE INDEX `spy_oauth_client-identifier` (`identifier`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

CREATE TABLE `spy_user`
(
    `id_user` INTEGER NOT NULL AUTO_INCREMENT,
    `fk_locale` INTEGER,
    `first_name` VARCHAR(45) NOT NULL,
    `is_agent` TINYINT(1),
    `last_login` DATETIME,
    `last_name` VARCHAR(255) NOT NULL,
    `password` VARCHAR(255) NOT NULL,
    `status` TINYINT(10) DEFAULT 0 NOT NULL,
    `username` VARCHAR(45) NOT NULL,
    `created_at` DATETIME,
    `updated_at` DATETIME,
    PRIMARY KEY (`id_user`),
    UNIQUE INDEX `spy_user-username` (`username`),
    INDEX `spy_user-fi_locale` (`fk_locale`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

CREATE TABLE `spy_customer`
(
    `id_customer` INTEGER NOT NULL AUTO_INCREMENT,
    `fk_locale` INTEGER,
    `fk_user` INTEGER,
    `anonymized_at` DATETIME,
    `company` VARCHAR(100),
    `customer_reference` VARCHAR(255) NOT NULL,
    `date_of_birth` DATE,
    `default_billing_address` INTEGER,
    `default_shipping_address` INTEGER,
    `email` VARCHAR(255) NOT NULL,
    `first_name` VARCHAR(100),
    `gender` TINYINT,
    `last_name` VARCHAR(100),
    `password` VARCHAR(255),
    `phone` VARCHAR(255),
    `registered` DATE,
    `registration_key` VARCHAR(150),
    `restore_password_date` DATETIME,
    `restore_password_key` VARCHAR(150),
    `salutation` TINYINT,
    `created_at` DATETIME,
    `updated_at` DATETIME,
    PRIMARY KEY (`id_customer`),
    UNIQUE INDEX `spy_customer-email` (`email`),
    UNIQUE INDEX `spy_customer-customer_reference` (`customer_reference`),
    INDEX `spy_customer-first_name` (`first_name`),
    INDEX `spy_customer-last_name` (`last_name`),
    INDEX `index-spy_customer-default_billing_address` (`default_billing_address`),
    INDEX `index-spy_customer-default_shipping_address` (`default_shipping_address`),
    INDEX `index-spy_customer-fk_locale` (`fk_locale`),
    INDEX `index-spy_customer-fk_user` (`fk_user`),
    CONSTRAINT `spy_customer-fk_user`
        FOREIGN KEY (`fk_user`)
        REFERENCES `spy_user` (`id_user`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

CREATE TABLE `spy_oauth_refresh_token`
(
    `id_oauth_refresh_token` BIGINT NOT NULL AUTO_INCREMENT,
    `identifier` VARCHAR(128) NOT NULL,
    `scopes` VARCHAR(1024),
    `customer_reference` VARCHAR(255),
    `user_identifier` VARCHAR(1024) NOT NULL,
    `fk_oauth_client` VARCHAR(1024) NOT NULL,
    `expires_at` DATETIME NOT NULL,
    `revoked_at` DATETIME,
    `created_at` DATETIME,
    `updated_at` DATETIME,
    PRIMARY KEY (`id_oauth_refresh_token`),
    INDEX `index-spy_oauth_refresh_token-identifier` (`identifier`),
    INDEX `index-spy_oauth_refresh_token-customer_reference` (`customer_reference`),
    INDEX `index-spy_oauth_refresh_token-fk_oauth_client` (`fk_oauth_client`),
    INDEX `index-spy_oauth_refresh_token-user_identifier` (`user_identifier`),
    CONSTRAINT `spy_oauth_refresh_token-identifier`
        FOREIGN KEY (`fk_oauth_client`)
        REFERENCES `spy_oauth_client` (`identifier`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

-- Spryker's installer creates the storefront client `frontend`.
INSERT INTO `spy_oauth_client` (`identifier`, `name`, `is_confidential`) VALUES ('frontend', 'Customer client', 0);

-- Demo agent from Spryker's documentation (admin@spryker.com / change123, bcrypt cost 12),
-- status 0 = active. Production refuses to start while it still has this password.
INSERT INTO `spy_user` (`first_name`, `last_name`, `username`, `password`, `status`, `is_agent`, `created_at`, `updated_at`)
VALUES ('Admin', 'Spryker', 'admin@spryker.com', '$2y$12$odiEutHi/SlifYBtaA2T1u4lqZA0Wt6naudRHHuXowyhrMv0dE5Py', 0, 1, UTC_TIMESTAMP(), UTC_TIMESTAMP());

-- Demo customers from Spryker's demo shop, without passwords.
INSERT INTO `spy_customer` (`customer_reference`, `email`, `first_name`, `last_name`, `created_at`, `updated_at`) VALUES
    ('DE--1', 'sonia@spryker.com', 'Sonia', 'Wagner', UTC_TIMESTAMP(), UTC_TIMESTAMP()),
    ('DE--2', 'spencor.hopkin@spryker.com', 'Spencor', 'Hopkin', UTC_TIMESTAMP(), UTC_TIMESTAMP()),
    ('DE--3', 'maria.williams@spryker.com', 'Maria', 'Williams', UTC_TIMESTAMP(), UTC_TIMESTAMP()),
    ('DE--4', 'esther.parker@spryker.com', 'Esther', 'Parker', UTC_TIMESTAMP(), UTC_TIMESTAMP()),
    ('DE--5', 'bill.martin@spryker.com', 'Bill', 'Martin', UTC_TIMESTAMP(), UTC_TIMESTAMP()),
    ('DE--6', 'karl.schneider@spryker.com', 'Karl', 'Schneider', UTC_TIMESTAMP(), UTC_TIMESTAMP());
