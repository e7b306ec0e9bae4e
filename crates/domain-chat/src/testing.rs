//! Conformance test kit for ChatStore implementations (in progress).
