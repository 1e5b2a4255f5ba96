// Kept by hand (diesel's MultiConnection has no print-schema). Spryker's tables list the
// columns glue reads or writes (the others are nullable and left alone); ids are INTEGER except
// the refresh token's BIGINT, as in Spryker. Checked against `diesel print-schema` per backend.

diesel::table! {
    spy_oauth_client (id_oauth_client) {
        id_oauth_client -> Integer,
        identifier -> Text,
        is_confidential -> Nullable<Bool>,
        name -> Text,
    }
}

diesel::table! {
    spy_user (id_user) {
        id_user -> Integer,
        first_name -> Text,
        is_agent -> Nullable<Bool>,
        last_login -> Nullable<Timestamp>,
        last_name -> Text,
        password -> Text,
        /// Propel ENUM: 0 active, 1 blocked, 2 deleted.
        status -> SmallInt,
        username -> Text,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    spy_customer (id_customer) {
        id_customer -> Integer,
        customer_reference -> Text,
        email -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        password -> Nullable<Text>,
        /// Set when the customer was anonymized (GDPR): Spryker's `SpyCustomerQuery::create()`
        /// leaves such customers out of every query, and so does glue.
        anonymized_at -> Nullable<Timestamp>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    spy_oauth_refresh_token (id_oauth_refresh_token) {
        id_oauth_refresh_token -> BigInt,
        identifier -> Text,
        scopes -> Nullable<Text>,
        customer_reference -> Nullable<Text>,
        user_identifier -> Text,
        fk_oauth_client -> Text,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    glue_oauth_refresh_token (id_oauth_refresh_token) {
        id_oauth_refresh_token -> BigInt,
        family -> Text,
        successor -> Nullable<Text>,
        actor_identifier -> Nullable<Text>,
        grace_uses -> Integer,
        id_agent -> Nullable<BigInt>,
    }
}

diesel::table! {
    glue_login_attempt_counter (id_login_attempt_counter) {
        id_login_attempt_counter -> BigInt,
        entity_type -> Text,
        counter_key -> Text,
        /// Places taken: failures plus attempts still being verified.
        attempts -> Integer,
        /// Settled failures (what blocks).
        failures -> Integer,
        window_expires_at -> Timestamp,
        blocked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    glue_login_trusted_address (id_login_trusted_address) {
        id_login_trusted_address -> BigInt,
        entity_type -> Text,
        trust_key -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    /// glue's own second factor for agents (TOTP); see `multi_factor_auth`.
    glue_agent_totp (id_user) {
        id_user -> Integer,
        /// nonce ‖ AES-256-GCM ciphertext ‖ tag.
        secret -> Binary,
        /// 1 pending (no code verified yet), 2 active.
        status -> Integer,
        /// The last time step whose code was accepted (a code is accepted once).
        last_step -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Spryker's back-office users' second-factor methods (`spryker/multi-factor-auth`): status
    /// 0 inactive, 1 pending activation, 2 active. Absent from a shop that did not install MFA.
    spy_user_multi_factor_auth (id_user_multi_factor_auth) {
        id_user_multi_factor_auth -> Integer,
        fk_user -> Integer,
        #[sql_name = "type"]
        kind -> Text,
        configuration -> Nullable<Text>,
        status -> Nullable<Integer>,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// The codes sent for a method: status 0 unverified, 1 blocked, 2 verified, 3 invalidated;
    /// `expiration_date` in the shop's time zone.
    spy_user_multi_factor_auth_codes (id_user_multi_factor_auth_code) {
        id_user_multi_factor_auth_code -> Integer,
        fk_user_multi_factor_auth -> Integer,
        code -> Text,
        status -> Nullable<Integer>,
        expiration_date -> Timestamp,
        created_at -> Nullable<Timestamp>,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// One row per code entered (right or wrong): three wrong ones block the code.
    spy_user_multi_factor_auth_codes_attempts (id_user_multi_factor_auth_code_attempt) {
        id_user_multi_factor_auth_code_attempt -> Integer,
        fk_user_multi_factor_auth_code -> Integer,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(spy_user_multi_factor_auth_codes -> spy_user_multi_factor_auth (fk_user_multi_factor_auth));

diesel::joinable!(glue_oauth_refresh_token -> spy_oauth_refresh_token (id_oauth_refresh_token));

diesel::allow_tables_to_appear_in_same_query!(
    spy_oauth_client,
    spy_user,
    spy_customer,
    spy_oauth_refresh_token,
    glue_oauth_refresh_token,
    glue_login_attempt_counter,
    glue_login_trusted_address,
    glue_agent_totp,
    spy_user_multi_factor_auth,
    spy_user_multi_factor_auth_codes,
    spy_user_multi_factor_auth_codes_attempts,
);
