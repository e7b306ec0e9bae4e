//! `libchat db status` and `libchat db migrate`.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::Global;
use crate::chat::require_database;
use crate::output::{Out, warn};

/// Schema tools.
#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Applied and pending migrations; whether the database is newer than this build; a
    /// warning for each of its files that other users may read or write. Reads only: nothing
    /// is written.
    Status,
    /// Apply pending migrations (refuses a database migrated by a newer build).
    Migrate,
    /// List the installations of the database: name and creation time, oldest first. Reads
    /// only: nothing is written.
    Installations,
}

/// Runs a `db` command.
pub(crate) fn run(global: &Global, command: &DbCommand) -> Result<()> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = global.postgres()? {
        return run_postgres(global, command, &pg);
    }
    let config = global.database()?;
    require_database(global)?;
    let mut out = Out::new(global.mode())?;
    match command {
        DbCommand::Status => {
            // The modes first: reading the schema may remove an empty -wal file on close.
            let warnings = libchat::permission_warnings(&config)
                .with_context(|| format!("cannot read the modes of {}", global.db.display()))?;
            let status = libchat::schema_status(&config)
                .with_context(|| format!("cannot read {}", global.db.display()))?;
            // One line per file on stderr, in every mode.
            for warning in &warnings {
                warn(&warning.to_string());
            }
            let state = if status.is_newer_than_build() {
                "newer than this build"
            } else if status.pending.is_empty() {
                "up to date"
            } else {
                "pending migrations"
            };
            let listed: Vec<serde_json::Value> = warnings
                .iter()
                .map(|w| {
                    json!({
                        "path": w.path.display().to_string(),
                        "mode": format!("{:04o}", w.mode),
                        "warning": w.to_string(),
                    })
                })
                .collect();
            out.text(
                &json!({
                    "database": global.db.display().to_string(),
                    "state": state,
                    "applied": status.applied,
                    "pending": status.pending,
                    "unknown_applied": status.unknown_applied,
                    "permission_warnings": listed,
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
            )
        }
        DbCommand::Installations => {
            let listed = libchat::installations(&config)
                .with_context(|| format!("cannot read {}", global.db.display()))?;
            print_installations(&mut out, &listed, &global.db.display().to_string())
        }
        DbCommand::Migrate => {
            let applied = libchat::migrate_schema(&config)
                .with_context(|| format!("cannot migrate {}", global.db.display()))?;
            out.text(&json!({"applied": applied}), || {
                if applied.is_empty() {
                    "nothing to migrate".to_owned()
                } else {
                    format!("applied {}", applied.join(", "))
                }
            })
        }
    }
}

/// `db status`, `db migrate` and `db installations` on PostgreSQL.
#[cfg(feature = "postgres")]
fn run_postgres(global: &Global, command: &DbCommand, pg: &crate::Postgres) -> Result<()> {
    let mut out = Out::new(global.mode())?;
    match command {
        DbCommand::Status => {
            let status = pg
                .pool
                .schema_status()
                .context("cannot read the PostgreSQL schema")?;
            let state = if status.is_newer_than_build() {
                "newer than this build"
            } else if status.pending.is_empty() {
                "up to date"
            } else {
                "pending migrations"
            };
            out.text(
                &json!({
                    "database": "postgresql",
                    "state": state,
                    "applied": status.applied,
                    "pending": status.pending,
                    "unknown_applied": status.unknown_applied,
                }),
                || {
                    let mut out = format!("PostgreSQL database: {state}\n");
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
            )
        }
        DbCommand::Migrate => {
            let applied = pg
                .pool
                .migrate()
                .context("cannot migrate the PostgreSQL database")?;
            out.text(&json!({"applied": applied}), || {
                if applied.is_empty() {
                    "nothing to migrate".to_owned()
                } else {
                    format!("applied {}", applied.join(", "))
                }
            })
        }
        DbCommand::Installations => {
            let listed = pg
                .pool
                .installations()
                .context("cannot read the PostgreSQL database's installations")?;
            print_installations(&mut out, &listed, "the PostgreSQL database")
        }
    }
}

/// Prints `listed` (one line or JSON object per installation); warns when there is none
/// (`database` names the database in the warning).
fn print_installations(
    out: &mut Out,
    listed: &[libchat::Installation],
    database: &str,
) -> Result<()> {
    for installation in listed {
        let created = crate::output::local_time(installation.created_at);
        out.text(
            &json!({
                "name": installation.name,
                "created_at": created,
                "created_at_ms": installation.created_at.as_millis(),
            }),
            || format!("{}  created {created}", installation.name),
        )?;
    }
    if listed.is_empty() {
        warn(&format!(
            "{database}: no installations yet (an older database: `libchat db migrate` makes its \
             data the installation \"default\"; a new one: `libchat --installation NAME init`)"
        ));
    }
    Ok(())
}
