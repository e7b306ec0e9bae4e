//! Time to import a reference database with 1,000 conversations and 100,000 skipped keys
//! (issue 7: must be under 10 s). Run: `cargo bench -p persistence --bench legacy_import`.
//! Prints the time of each run; timing is never asserted.
// `criterion_group!` defines an undocumented public function.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/legacy_support/mod.rs"]
mod legacy_support;

use std::time::Instant;

use legacy_support::{Synthetic, create_legacy_db};
use persistence::import_legacy;
use persistence::{DatabaseConfig, DatabaseKey};

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing special. Either
    // way, run once per configuration.
    let spec = Synthetic {
        conversations: 1_000,
        skipped_per_conversation: 100,
        intro_keys: 10,
    };
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("legacy_plain.db");
    let encrypted = dir.path().join("legacy_encrypted.db");
    let started = Instant::now();
    create_legacy_db(&plain, None, spec);
    create_legacy_db(&encrypted, Some("bench passphrase"), spec);
    println!(
        "generated 2 x ({} conversations, {} skipped keys) in {:.2?}",
        spec.conversations,
        spec.conversations * spec.skipped_per_conversation,
        started.elapsed()
    );

    let runs: [(
        &str,
        &std::path::Path,
        Option<DatabaseKey>,
        Option<DatabaseKey>,
    ); 3] = [
        ("plain -> plain", &plain, None, None),
        (
            "plain -> sqlcipher (raw key)",
            &plain,
            None,
            Some(DatabaseKey::Raw([9u8; 32])),
        ),
        (
            "sqlcipher (passphrase) -> sqlcipher (passphrase)",
            &encrypted,
            Some(DatabaseKey::Passphrase(
                "bench passphrase".to_owned().into(),
            )),
            Some(DatabaseKey::Passphrase("new passphrase".to_owned().into())),
        ),
    ];
    for (i, (label, source, source_key, target_key)) in runs.into_iter().enumerate() {
        let target = dir.path().join(format!("target{i}.db"));
        let mut config = DatabaseConfig::file(&target);
        if let Some(key) = target_key {
            config = config.with_key(key);
        }
        let started = Instant::now();
        let report = import_legacy(source, source_key.as_ref(), &config, &mut |_| {}).unwrap();
        let elapsed = started.elapsed();
        println!(
            "legacy import {label}: {} conversations, {} skipped keys in {:.2?} (report: {:.2?})",
            report.counts.conversations, report.counts.skipped_keys, elapsed, report.duration
        );
    }
}
