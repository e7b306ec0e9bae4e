//! Conversation kinds. Only PrivateV1 exists.

pub mod private_v1;
