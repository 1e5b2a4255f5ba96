-- `database.schema_owner = "spryker"`: the shop's Propel migrations own every spy_* table, so
-- glue creates only its own tables, in a database of their own on the shop's server
-- (`database.glue_schema`), where Propel — which diffs only the shop's database — never proposes
-- to drop them. glue's connections use that database; the shop's four tables glue works with
-- are reached through views of the same names there (see `db::layout`). No foreign key into
-- the shop's spy_oauth_refresh_token: `glue tokens purge-expired` removes orphaned side rows.

CREATE TABLE `glue_oauth_refresh_token`
(
    `id_oauth_refresh_token` BIGINT NOT NULL,
    `family` VARCHAR(32) NOT NULL,
    `successor` VARCHAR(128),
    `actor_identifier` VARCHAR(1024),
    `grace_uses` INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (`id_oauth_refresh_token`),
    INDEX `glue_oauth_refresh_token-family` (`family`),
    INDEX `glue_oauth_refresh_token-actor_identifier` (`actor_identifier`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

CREATE TABLE `glue_login_attempt_counter`
(
    `id_login_attempt_counter` BIGINT NOT NULL AUTO_INCREMENT,
    `entity_type` VARCHAR(32) NOT NULL,
    `counter_key` VARCHAR(64) NOT NULL,
    `attempts` INTEGER NOT NULL,
    `failures` INTEGER NOT NULL DEFAULT 0,
    `window_expires_at` DATETIME NOT NULL,
    `blocked_until` DATETIME,
    PRIMARY KEY (`id_login_attempt_counter`),
    UNIQUE INDEX `glue_login_attempt_counter-key` (`entity_type`, `counter_key`),
    INDEX `glue_login_attempt_counter-window_expires_at` (`window_expires_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

CREATE TABLE `glue_login_trusted_address`
(
    `id_login_trusted_address` BIGINT NOT NULL AUTO_INCREMENT,
    `entity_type` VARCHAR(32) NOT NULL,
    `trust_key` VARCHAR(64) NOT NULL,
    `expires_at` DATETIME NOT NULL,
    PRIMARY KEY (`id_login_trusted_address`),
    UNIQUE INDEX `glue_login_trusted_address-key` (`entity_type`, `trust_key`),
    INDEX `glue_login_trusted_address-expires_at` (`expires_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;
