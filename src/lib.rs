//! libchat
