-- glue's own tables: what glue needs beyond Spryker's columns, joined by key (see the
-- PostgreSQL migration for what each holds).
CREATE TABLE `glue_oauth_refresh_token`
(
    `id_oauth_refresh_token` BIGINT NOT NULL,
    `family` VARCHAR(32) NOT NULL,
    `successor` VARCHAR(128),
    `actor_identifier` VARCHAR(1024),
    PRIMARY KEY (`id_oauth_refresh_token`),
    INDEX `glue_oauth_refresh_token-family` (`family`),
    INDEX `glue_oauth_refresh_token-actor_identifier` (`actor_identifier`),
    CONSTRAINT `glue_oauth_refresh_token-id_oauth_refresh_token`
        FOREIGN KEY (`id_oauth_refresh_token`)
        REFERENCES `spy_oauth_refresh_token` (`id_oauth_refresh_token`)
        ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

CREATE TABLE `glue_login_attempt_counter`
(
    `id_login_attempt_counter` BIGINT NOT NULL AUTO_INCREMENT,
    `entity_type` VARCHAR(32) NOT NULL,
    `counter_key` VARCHAR(64) NOT NULL,
    `attempts` INTEGER NOT NULL,
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
