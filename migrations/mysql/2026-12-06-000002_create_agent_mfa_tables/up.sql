-- Spryker's multi-factor authentication tables for back-office users (spryker/multi-factor-auth,
-- spy_multi_factor_auth.schema.xml) as Propel emits them for MySQL; status 0 inactive / 1 pending
-- activation / 2 active; code status 0 unverified / 1 blocked / 2 verified / 3 invalidated.
CREATE TABLE `spy_user_multi_factor_auth`
(
    `id_user_multi_factor_auth` INTEGER NOT NULL AUTO_INCREMENT,
    `fk_user` INTEGER NOT NULL,
    `type` VARCHAR(50) NOT NULL,
    `configuration` VARCHAR(255),
    `status` INTEGER DEFAULT 0,
    `created_at` DATETIME,
    `updated_at` DATETIME,
    PRIMARY KEY (`id_user_multi_factor_auth`),
    INDEX `spy_user_multi_factor_auth-fi_user` (`fk_user`),
    CONSTRAINT `spy_user_mfa-fk_user`
        FOREIGN KEY (`fk_user`) REFERENCES `spy_user` (`id_user`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

CREATE TABLE `spy_user_multi_factor_auth_codes`
(
    `id_user_multi_factor_auth_code` INTEGER NOT NULL AUTO_INCREMENT,
    `fk_user_multi_factor_auth` INTEGER NOT NULL,
    `code` VARCHAR(50) NOT NULL,
    `status` INTEGER DEFAULT 0,
    `expiration_date` DATETIME NOT NULL,
    `created_at` DATETIME,
    `updated_at` DATETIME,
    PRIMARY KEY (`id_user_multi_factor_auth_code`),
    INDEX `spy_user_mfa_codes-fk_user_type` (`fk_user_multi_factor_auth`, `status`),
    CONSTRAINT `spy_user_mfa-fk_user_mfa`
        FOREIGN KEY (`fk_user_multi_factor_auth`) REFERENCES `spy_user_multi_factor_auth` (`id_user_multi_factor_auth`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

CREATE TABLE `spy_user_multi_factor_auth_codes_attempts`
(
    `id_user_multi_factor_auth_code_attempt` INTEGER NOT NULL AUTO_INCREMENT,
    `fk_user_multi_factor_auth_code` INTEGER NOT NULL,
    `created_at` DATETIME NOT NULL,
    `updated_at` DATETIME,
    PRIMARY KEY (`id_user_multi_factor_auth_code_attempt`),
    INDEX `spy_user_multi_factor_auth_codes_attempts-fi_user_mfa_code` (`fk_user_multi_factor_auth_code`),
    CONSTRAINT `spy_user_mfa-fk_user_mfa_code`
        FOREIGN KEY (`fk_user_multi_factor_auth_code`) REFERENCES `spy_user_multi_factor_auth_codes` (`id_user_multi_factor_auth_code`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;

-- glue's own second factor for agents: TOTP (RFC 6238), which Spryker does not ship, so it never
-- goes into spy_user_multi_factor_auth. The secret is encrypted (AES-256-GCM under
-- oauth.mfa_key_path); status 1 pending / 2 active; last_step = the last accepted time step.
CREATE TABLE `glue_agent_totp`
(
    `id_user` INTEGER NOT NULL,
    `secret` VARBINARY(128) NOT NULL,
    `status` INTEGER NOT NULL DEFAULT 1,
    `last_step` BIGINT,
    `created_at` DATETIME NOT NULL,
    `updated_at` DATETIME NOT NULL,
    PRIMARY KEY (`id_user`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_unicode_ci;
