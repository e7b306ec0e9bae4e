//! Conversation kinds. Only PrivateV1 exists.

pub(crate) mod private_v1;
