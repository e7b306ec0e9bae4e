//! `libchat db status` and `libchat db migrate`.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::Global;
use super::chat::print;

/// Schema tools.
#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Applied and pending migrations; whether the database is newer than this build.
    /// Reads only: nothing is written.
    Status,
    /// Apply pending migrations (refuses a database migrated by a newer build).
    Migrate,
}

/// Runs a `db` command.
pub(crate) fn run(global: &Global, command: &DbCommand) -> Result<()> {
    let config = global.database()?;
    match command {
        DbCommand::Status => {
            if !global.db.exists() {
                bail!("no database at {}", global.db.display());
            }
            let status = libchat::schema_status(&config)
                .with_context(|| format!("cannot read {}", global.db.display()))?;
            let state = if status.is_newer_than_build() {
                "newer than this build"
            } else if status.pending.is_empty() {
                "up to date"
            } else {
                "pending migrations"
            };
            print(
                global,
                &json!({
                    "database": global.db.display().to_string(),
                    "state": state,
                    "applied": status.applied,
                    "pending": status.pending,
                    "unknown_applied": status.unknown_applied,
                }),
                || {
                    let mut out = format!("{}: {state}\n", global.db.display());
                    for v in &status.applied {
                        out.push_str(&format!("  applied  {v}\n"));
                    }
                    for v in &status.pending {
                        out.push_str(&format!("  pending  {v}\n"));
                    }
                    for v in &status.unknown_applied {
                        out.push_str(&format!("  unknown  {v} (applied by a newer build)\n"));
                    }
                    out.trim_end().to_owned()
                },
            );
        }
        DbCommand::Migrate => {
            let applied = libchat::migrate_schema(&config)
                .with_context(|| format!("cannot migrate {}", global.db.display()))?;
            print(global, &json!({"applied": applied}), || {
                if applied.is_empty() {
                    "nothing to migrate".to_owned()
                } else {
                    format!("applied {}", applied.join(", "))
                }
            });
        }
    }
    Ok(())
}
