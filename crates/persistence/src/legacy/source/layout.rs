//! Recognising the reference layout exactly (`vectors/legacy/schema.sql`), reading only.

use std::path::Path;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;

use super::{not_legacy, source_error};
use crate::error::PersistenceError;
use crate::legacy::error::LegacyImportError;

/// The only migration of the reference's chat storage.
const LEGACY_MIGRATION: &str = "001_initial_schema";

/// One expected column: name, declared type, NOT NULL, position in the primary key.
type Column = (&'static str, &'static str, bool, i64);

/// The reference layout, table by table (`vectors/legacy/schema.sql`), as `PRAGMA table_info`
/// reports it.
const LAYOUT: &[(&str, &[Column])] = &[
    (
        "_migrations",
        &[
            ("name", "TEXT", false, 1),
            ("applied_at", "INTEGER", true, 0),
        ],
    ),
    (
        "identity",
        &[
            ("id", "INTEGER", false, 1),
            ("name", "TEXT", true, 0),
            ("secret_key", "BLOB", true, 0),
        ],
    ),
    (
        "ephemeral_keys",
        &[
            ("public_key_hex", "TEXT", false, 1),
            ("secret_key", "BLOB", true, 0),
        ],
    ),
    (
        "conversations",
        &[
            ("local_convo_id", "TEXT", false, 1),
            ("remote_convo_id", "TEXT", true, 0),
            ("convo_type", "TEXT", true, 0),
            ("created_at", "INTEGER", true, 0),
        ],
    ),
    (
        "ratchet_state",
        &[
            ("conversation_id", "TEXT", false, 1),
            ("root_key", "BLOB", true, 0),
            ("sending_chain", "BLOB", false, 0),
            ("receiving_chain", "BLOB", false, 0),
            ("dh_self_secret", "BLOB", true, 0),
            ("dh_remote", "BLOB", false, 0),
            ("msg_send", "INTEGER", true, 0),
            ("msg_recv", "INTEGER", true, 0),
            ("prev_chain_len", "INTEGER", true, 0),
        ],
    ),
    (
        "skipped_keys",
        &[
            ("conversation_id", "TEXT", true, 1),
            ("public_key", "BLOB", true, 2),
            ("msg_num", "INTEGER", true, 3),
            ("message_key", "BLOB", true, 0),
            ("created_at", "INTEGER", true, 0),
        ],
    ),
];

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    col_type: String,
    #[diesel(sql_type = BigInt)]
    not_null: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

/// Whether an open database has exactly the reference layout (the check [`open_source`]
/// makes before an import), reading only.
pub(crate) fn is_reference_layout(conn: &mut SqliteConnection) -> Result<bool, PersistenceError> {
    match check_layout(conn, Path::new("")) {
        Ok(()) => Ok(true),
        Err(LegacyImportError::NotALegacyDatabase { .. }) => Ok(false),
        Err(LegacyImportError::Source(e)) => Err(e.into()),
        Err(other) => Err(PersistenceError::corrupt(
            "sqlite_master",
            other.to_string(),
        )),
    }
}

/// Recognises the reference layout exactly: the six tables with exactly their columns, and
/// `_migrations` holding exactly `001_initial_schema`.
pub(super) fn check_layout(
    conn: &mut SqliteConnection,
    path: &Path,
) -> Result<(), LegacyImportError> {
    let tables: Vec<NameRow> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .load(conn)
    .map_err(source_error)?;
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    if names.contains(&"__diesel_schema_migrations") {
        return Err(not_legacy(
            path,
            "it is a database of this implementation (it has __diesel_schema_migrations), not of the reference",
        ));
    }
    for name in &names {
        if !LAYOUT.iter().any(|(table, _)| table == name) {
            return Err(not_legacy(path, format!("unexpected table '{name}'")));
        }
    }
    for (table, columns) in LAYOUT {
        if !names.contains(table) {
            return Err(not_legacy(path, format!("table '{table}' is missing")));
        }
        let found: Vec<ColumnRow> = diesel::sql_query(
            "SELECT name, type AS col_type, \"notnull\" AS not_null, pk FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind::<Text, _>(*table)
        .load(conn)
        .map_err(source_error)?;
        let matches = found.len() == columns.len()
            && found
                .iter()
                .zip(columns.iter())
                .all(|(f, (name, ty, nn, pk))| {
                    f.name == *name
                        && f.col_type.eq_ignore_ascii_case(ty)
                        && (f.not_null != 0) == *nn
                        && f.pk == *pk
                });
        if !matches {
            let found_desc: Vec<String> = found
                .iter()
                .map(|f| format!("{} {}", f.name, f.col_type))
                .collect();
            return Err(not_legacy(
                path,
                format!(
                    "table '{table}' has the columns ({}), not those of the reference",
                    found_desc.join(", ")
                ),
            ));
        }
    }
    let migrations: Vec<NameRow> = diesel::sql_query("SELECT name FROM _migrations ORDER BY name")
        .load(conn)
        .map_err(source_error)?;
    let migration_names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
    if migration_names != [LEGACY_MIGRATION] {
        return Err(not_legacy(
            path,
            format!(
                "_migrations holds [{}], expected exactly [{LEGACY_MIGRATION}]",
                migration_names.join(", ")
            ),
        ));
    }
    Ok(())
}
