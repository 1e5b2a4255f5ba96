// Kept by hand (diesel's MultiConnection has no print-schema); checked against
// `diesel print-schema` of both backends. Ids are BIGINT on both.

diesel::table! {
    spy_user (id_user) {
        id_user -> BigInt,
        first_name -> Text,
        last_name -> Text,
        username -> Text,
        password -> Text,
        status -> Text,
        is_agent -> Bool,
        last_login -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    spy_oauth_refresh_token (id_oauth_refresh_token) {
        id_oauth_refresh_token -> BigInt,
        identifier -> Text,
        family -> Text,
        successor -> Nullable<Text>,
        scopes -> Text,
        customer_reference -> Nullable<Text>,
        user_identifier -> Text,
        actor_identifier -> Nullable<Text>,
        fk_oauth_client -> Text,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    spy_customer (id_customer) {
        id_customer -> BigInt,
        customer_reference -> Text,
        email -> Text,
        first_name -> Text,
        last_name -> Text,
        password -> Nullable<Text>,
        search_email -> Text,
        search_first_name -> Text,
        search_last_name -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    glue_login_attempt_counter (id_login_attempt_counter) {
        id_login_attempt_counter -> BigInt,
        entity_type -> Text,
        counter_key -> Text,
        attempts -> Integer,
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

diesel::allow_tables_to_appear_in_same_query!(
    spy_user,
    spy_oauth_refresh_token,
    spy_customer,
    glue_login_attempt_counter,
    glue_login_trusted_address,
);
