// @generated automatically by Diesel CLI.

diesel::table! {
    conversations (local_id) {
        local_id -> Text,
        remote_id -> Text,
        kind -> Text,
        created_at -> BigInt,
        peer_key -> Nullable<Binary>,
    }
}

diesel::table! {
    identity (id) {
        id -> BigInt,
        name -> Text,
        secret_key -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    inbox (id) {
        id -> BigInt,
        conversation_id -> Text,
        content -> Binary,
        sent_at -> BigInt,
        received_at -> BigInt,
        is_new_conversation -> Bool,
    }
}

diesel::table! {
    intro_keys (public_key) {
        public_key -> Binary,
        secret_key -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        conversation_id -> Text,
        direction -> Text,
        content -> Binary,
        timestamp -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        conversation_id -> Text,
        conversation_hint -> Text,
        delivery_address -> Text,
        envelope -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    processed_envelopes (digest) {
        digest -> Binary,
        processed_at -> BigInt,
    }
}

diesel::table! {
    ratchet_states (conversation_id) {
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
    }
}

diesel::table! {
    skipped_keys (id) {
        id -> BigInt,
        conversation_id -> Text,
        public_key -> Binary,
        msg_num -> BigInt,
        message_key -> Binary,
        stored_at -> BigInt,
    }
}

diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(ratchet_states -> conversations (conversation_id));
diesel::joinable!(skipped_keys -> conversations (conversation_id));

diesel::allow_tables_to_appear_in_same_query!(
    conversations,
    identity,
    inbox,
    intro_keys,
    messages,
    outbox,
    processed_envelopes,
    ratchet_states,
    skipped_keys,
);
