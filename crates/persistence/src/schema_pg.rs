// @generated automatically by Diesel CLI.

diesel::table! {
    conversations (installation_id, local_id) {
        local_id -> Text,
        remote_id -> Text,
        kind -> Text,
        created_at -> Int8,
        peer_key -> Nullable<Bytea>,
        installation_id -> Int8,
    }
}

diesel::table! {
    identity (installation_id) {
        name -> Text,
        secret_key -> Bytea,
        created_at -> Int8,
        installation_id -> Int8,
    }
}

diesel::table! {
    inbox (id) {
        id -> Int8,
        conversation_id -> Text,
        content -> Bytea,
        sent_at -> Int8,
        received_at -> Int8,
        is_new_conversation -> Bool,
        installation_id -> Int8,
    }
}

diesel::table! {
    installations (id) {
        id -> Int8,
        name -> Text,
        created_at -> Int8,
        key_check -> Nullable<Bytea>,
    }
}

diesel::table! {
    intro_keys (installation_id, public_key) {
        public_key -> Bytea,
        secret_key -> Bytea,
        created_at -> Int8,
        installation_id -> Int8,
    }
}

diesel::table! {
    messages (id) {
        id -> Int8,
        conversation_id -> Text,
        direction -> Text,
        content -> Bytea,
        timestamp -> Int8,
        installation_id -> Int8,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        conversation_id -> Text,
        conversation_hint -> Text,
        delivery_address -> Text,
        envelope -> Bytea,
        created_at -> Int8,
        installation_id -> Int8,
    }
}

diesel::table! {
    processed_envelopes (installation_id, digest) {
        digest -> Bytea,
        processed_at -> Int8,
        installation_id -> Int8,
    }
}

diesel::table! {
    ratchet_states (installation_id, conversation_id) {
        conversation_id -> Text,
        root_key -> Bytea,
        sending_chain -> Nullable<Bytea>,
        receiving_chain -> Nullable<Bytea>,
        dh_self_secret -> Bytea,
        dh_self_public -> Bytea,
        dh_remote -> Nullable<Bytea>,
        msg_send -> Int8,
        msg_recv -> Int8,
        prev_chain_len -> Int8,
        skipped_bound -> Int8,
        installation_id -> Int8,
    }
}

diesel::table! {
    skipped_keys (id) {
        id -> Int8,
        conversation_id -> Text,
        public_key -> Bytea,
        msg_num -> Int8,
        message_key -> Bytea,
        stored_at -> Int8,
        installation_id -> Int8,
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
