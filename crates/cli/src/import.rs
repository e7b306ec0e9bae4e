//! `libchat import --from OLD.db --to NEW.db`: adopt a reference libchat database.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use libchat::{DatabaseConfig, ImportOutcome, ImportProgress, import_legacy};
use serde_json::json;

use super::{Global, read_key};
use crate::output::Out;

/// Arguments of `import`. The target's key comes from the global `--key-env`/`--key-file`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The reference implementation's database file (never modified).
    #[arg(long)]
    pub from: PathBuf,
    /// The new database file to create.
    #[arg(long)]
    pub to: PathBuf,
    /// Environment variable holding the source database's passphrase.
    #[arg(long, value_name = "VAR", conflicts_with = "from_key_file")]
    pub from_key_env: Option<String>,
    /// File holding the source database's passphrase.
    #[arg(long, value_name = "PATH")]
    pub from_key_file: Option<PathBuf>,
}

/// Runs the import.
pub(crate) fn run(global: &Global, args: &ImportArgs) -> Result<()> {
    let source_key = read_key(args.from_key_env.as_deref(), args.from_key_file.as_deref())?;
    libchat::validate_installation_name(&global.installation)
        .map_err(|e| crate::Usage(format!("--installation: {e}")))?;
    let mut target = DatabaseConfig::file(&args.to)
        .with_durability(global.durability.into())
        .with_installation(&global.installation);
    if let Some(key) = global.key()? {
        target = target.with_key(key);
    }
    let mut out = Out::new(global.mode())?;
    let bar = if !global.json && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let mut on_progress = |p: ImportProgress| {
        if let Some(bar) = &bar {
            bar.set_message(p.phase.as_str());
            bar.set_length(p.total);
            bar.set_position(p.done);
        }
    };
    let result = import_legacy(&args.from, source_key.as_ref(), &target, &mut on_progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result.with_context(|| format!("cannot import {}", args.from.display()))?;
    if report.outcome == ImportOutcome::Imported {
        crate::chat::warn_plaintext(global, &format!("{} is", report.target.display()));
    }
    let outcome = match report.outcome {
        ImportOutcome::Imported => "imported",
        ImportOutcome::AlreadyImported => "already_imported",
    };
    let c = report.counts;
    out.text(
        &json!({
            "outcome": outcome,
            "target": report.target.display().to_string(),
            "identity": report.identity_name,
            "public_key": report.identity_public_hex,
            "intro_keys": c.intro_keys,
            "conversations": c.conversations,
            "ratchet_states": c.ratchet_states,
            "skipped_keys": c.skipped_keys,
            "duration_ms": report.duration.as_millis() as u64,
        }),
        || {
            format!(
                "{outcome}: {} -> {}\n  identity {} ({})\n  {} intro keys, {} conversations, {} skipped keys, verified in {:.1?}",
                args.from.display(),
                report.target.display(),
                report.identity_name,
                report.identity_public_hex,
                c.intro_keys,
                c.conversations,
                c.skipped_keys,
                report.duration
            )
        },
    )
}
