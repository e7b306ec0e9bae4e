// @generated automatically by Diesel CLI.

diesel::table! {
    conversations (installation_id, local_id) {
        installation_id -> BigInt,
        local_id -> Text,
        remote_id -> Text,
        kind -> Text,
        created_at -> BigInt,
        peer_key -> Nullable<Binary>,
    }
}

diesel::table! {
    identity (installation_id) {
        installation_id -> BigInt,
        name -> Text,
        secret_key -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    inbox (id) {
        id -> BigInt,
        installation_id -> BigInt,
        conversation_id -> Text,
        content -> Binary,
        sent_at -> BigInt,
        received_at -> BigInt,
        is_new_conversation -> Bool,
    }
}

diesel::table! {
    installations (id) {
        id -> BigInt,
        name -> Text,
        created_at -> BigInt,
        key_check -> Nullable<Binary>,
    }
}

diesel::table! {
    intro_keys (installation_id, public_key) {
        installation_id -> BigInt,
        public_key -> Binary,
        secret_key -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        installation_id -> BigInt,
        conversation_id -> Text,
        direction -> Text,
        content -> Binary,
        timestamp -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        installation_id -> BigInt,
        conversation_id -> Text,
        conversation_hint -> Text,
        delivery_address -> Text,
        envelope -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    processed_envelopes (installation_id, digest) {
        installation_id -> BigInt,
        digest -> Binary,
        processed_at -> BigInt,
    }
}

diesel::table! {
    ratchet_states (installation_id, conversation_id) {
        installation_id -> BigInt,
        conversation_id -> Text,
        root_key -> Binary,
        sending_chain -> Nullable<Binary>,
        receiving_chain -> Nullable<Binary>,
        dh_self_secret -> Binary,
        dh_self_public -> Binary,
        dh_remote -> Nullable<Binary>,
        msg_send -> BigInt,
        msg_recv -> BigInt,
        prev_chain_len -> BigInt,
        skipped_bound -> BigInt,
        skipped_next_id -> BigInt,
    }
}

diesel::table! {
    skipped_keys (installation_id, conversation_id, public_key, msg_num) {
        id -> BigInt,
        installation_id -> BigInt,
        conversation_id -> Text,
        public_key -> Binary,
        msg_num -> BigInt,
        message_key -> Binary,
        stored_at -> BigInt,
    }
}

diesel::joinable!(conversations -> installations (installation_id));
diesel::joinable!(identity -> installations (installation_id));
diesel::joinable!(inbox -> installations (installation_id));
diesel::joinable!(intro_keys -> installations (installation_id));
diesel::joinable!(outbox -> installations (installation_id));
diesel::joinable!(processed_envelopes -> installations (installation_id));

diesel::allow_tables_to_appear_in_same_query!(
    conversations,
    identity,
    inbox,
    installations,
    intro_keys,
    messages,
    outbox,
    processed_envelopes,
    ratchet_states,
    skipped_keys,
);
