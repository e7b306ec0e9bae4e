//! Reading a reference database (PROTOCOL.md §9): open it read-only, recognise its layout
//! exactly, read every row with raw SQL and map it to domain records, checking every value.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use diesel::backend::Backend;
use diesel::connection::SimpleConnection;
use diesel::deserialize::{self, FromSql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use domain_chat::{ConversationKind, ConversationRecord, Identity};
use domain_ratchet::{
    DhKeyPair, KEY_LEN, PublicKey, RatchetState, SkippedKey, SymmetricKey, Timestamp,
};
use zeroize::Zeroizing;

use super::error::LegacyImportError;
use crate::config::DatabaseKey;
use crate::error::PersistenceError;

/// The 16 bytes every plain SQLite 3 database starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

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

/// One conversation of the source with everything that belongs to it.
pub(crate) struct LegacyConversation {
    /// The conversation record (created_at converted to milliseconds).
    pub(crate) record: ConversationRecord,
    /// Its ratchet state.
    pub(crate) state: RatchetState,
    /// Its skipped keys, oldest first (`created_at`, then insertion order).
    pub(crate) skipped: Vec<SkippedKey>,
}

/// Everything a reference database holds, validated and mapped to domain records.
/// Secrets are zeroized on drop (inside the domain key types).
pub(crate) struct LegacyData {
    /// The installation identity.
    pub(crate) identity: Identity,
    /// The intro-bundle ephemeral keys, in `public_key_hex` order.
    pub(crate) intro_keys: Vec<DhKeyPair>,
    /// The conversations, in `created_at`, then id order.
    pub(crate) conversations: Vec<LegacyConversation>,
}

impl LegacyData {
    /// Total number of skipped keys over all conversations.
    pub(crate) fn skipped_key_count(&self) -> usize {
        self.conversations.iter().map(|c| c.skipped.len()).sum()
    }
}

/// Opens `path` read-only (never writing to it, never creating a journal next to it), checks
/// the key and the integrity of the file, and recognises the reference layout.
pub(crate) fn open_source(
    path: &Path,
    key: Option<&DatabaseKey>,
) -> Result<SqliteConnection, LegacyImportError> {
    let io_err = |source| LegacyImportError::SourceIo {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io_err)?;
    if !metadata.is_file() {
        return Err(not_legacy(path, "it is not a regular file"));
    }
    let mut header = [0u8; 100];
    let header_len = read_prefix(path, &mut header).map_err(io_err)?;
    if header_len == 0 {
        return Err(not_legacy(path, "the file is empty"));
    }
    let plain = header_len >= SQLITE_MAGIC.len() && &header[..SQLITE_MAGIC.len()] == SQLITE_MAGIC;
    match (plain, key) {
        (true, Some(_)) => return Err(LegacyImportError::UnexpectedSourceKey),
        (false, None) => return Err(LegacyImportError::MissingSourceKey),
        _ => {}
    }
    // Bytes 18 and 19 are the read/write format versions: 2 means WAL.
    if plain && header_len >= 20 && (header[18] == 2 || header[19] == 2) {
        return Err(not_legacy(
            path,
            "it is in WAL mode, which the reference never uses (is it a database of this implementation?)",
        ));
    }
    for suffix in ["-journal", "-wal"] {
        let sidecar = sidecar_path(path, suffix);
        if std::fs::metadata(&sidecar).is_ok_and(|m| m.len() > 0) {
            return Err(LegacyImportError::SourceInUse {
                reason: format!(
                    "{} exists: open the source once with the reference to recover it, then retry",
                    sidecar.display()
                ),
            });
        }
    }

    let uri = read_only_uri(path)?;
    let mut conn = SqliteConnection::establish(&uri).map_err(|e| LegacyImportError::SourceIo {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if let Some(key) = key {
        let pragma = key.pragma().map_err(|e| match e {
            PersistenceError::InvalidKey { reason } => {
                LegacyImportError::InvalidSourceKey { reason }
            }
            other => LegacyImportError::Target(other),
        })?;
        conn.batch_execute(&pragma)
            .map_err(LegacyImportError::Source)?;
        // SQLCipher logs decryption failures to stderr; a wrong key is a typed error instead.
        // After the key: its first activation in the process (by `PRAGMA key`) resets the
        // level to WARN, see `crate::database`.
        conn.batch_execute("PRAGMA cipher_log_level = NONE;")
            .map_err(LegacyImportError::Source)?;
    }
    // The first read decrypts page 1: this is where a wrong key shows.
    let probe: Result<Count, _> =
        diesel::sql_query("SELECT count(*) AS n FROM sqlite_master").get_result(&mut conn);
    if let Err(e) = probe {
        return Err(match (classify(&e), key) {
            (SqliteFailure::NotADatabase, Some(_)) => LegacyImportError::WrongSourceKey,
            (SqliteFailure::NotADatabase | SqliteFailure::Corrupt, _) => {
                LegacyImportError::CorruptSource {
                    detail: e.to_string(),
                }
            }
            (SqliteFailure::Other, _) => LegacyImportError::Source(e),
        });
    }
    size_check(&mut conn, metadata.len())?;
    integrity_check(&mut conn)?;
    check_layout(&mut conn, path)?;
    Ok(conn)
}

/// Reads and validates every row of an opened source.
pub(crate) fn read_source(conn: &mut SqliteConnection) -> Result<LegacyData, LegacyImportError> {
    let identity = read_identity(conn)?;
    let intro_keys = read_intro_keys(conn)?;
    let records = read_conversations(conn)?;
    let mut states = read_ratchet_states(conn)?;
    let mut skipped = read_skipped_keys(conn, &states)?;

    let mut conversations = Vec::with_capacity(records.len());
    for record in records {
        let Some(state) = states.remove(&record.conversation_id) else {
            return Err(LegacyImportError::InconsistentSource {
                reason: format!(
                    "conversation '{}' has no row in ratchet_state",
                    record.conversation_id
                ),
            });
        };
        let keys = skipped.remove(&record.conversation_id).unwrap_or_default();
        conversations.push(LegacyConversation {
            record,
            state,
            skipped: keys,
        });
    }
    if let Some(orphan) = sorted_keys(&states).first() {
        return Err(LegacyImportError::InconsistentSource {
            reason: format!("ratchet_state '{orphan}' has no row in conversations"),
        });
    }
    Ok(LegacyData {
        identity,
        intro_keys,
        conversations,
    })
}

fn sorted_keys<V>(map: &HashMap<String, V>) -> Vec<&String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys
}

fn not_legacy(path: &Path, reason: impl Into<String>) -> LegacyImportError {
    LegacyImportError::NotALegacyDatabase {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads up to `buf.len()` bytes from the start of the file; returns how many were read.
fn read_prefix(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut file = std::fs::File::open(path)?;
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// `path` with `suffix` appended to its file name (`db` → `db-journal`).
pub(crate) fn sidecar_path(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// A `file:` URI that opens `path` read-only. Every byte outside the unreserved set and `/`
/// is percent-encoded, so `?`, `#` and `%` in file names are safe.
fn read_only_uri(path: &Path) -> Result<String, LegacyImportError> {
    let absolute = std::path::absolute(path).map_err(|source| LegacyImportError::SourceIo {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(text) = absolute.to_str() else {
        return Err(LegacyImportError::UnsupportedSourcePath {
            path: path.to_path_buf(),
        });
    };
    let mut uri = String::from("file:");
    if !text.starts_with('/') {
        // Windows paths (C:\...) need a leading slash in a file URI.
        uri.push('/');
    }
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(char::from(byte));
            }
            b'\\' if cfg!(windows) => uri.push('/'),
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri.push_str("?mode=ro");
    Ok(uri)
}

/// How a SQLite failure should be reported.
enum SqliteFailure {
    /// SQLITE_NOTADB: not a database, or (encrypted) the wrong key.
    NotADatabase,
    /// SQLITE_CORRUPT / short read: a damaged or truncated file.
    Corrupt,
    /// Anything else.
    Other,
}

fn classify(error: &diesel::result::Error) -> SqliteFailure {
    let message = match error {
        diesel::result::Error::DatabaseError(_, info) => info.message().to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    };
    if message.contains("file is not a database") {
        SqliteFailure::NotADatabase
    } else if message.contains("malformed") || message.contains("disk i/o error") {
        SqliteFailure::Corrupt
    } else {
        SqliteFailure::Other
    }
}

/// Maps a read error of the source: corruption is typed, anything else is passed through.
fn source_error(error: diesel::result::Error) -> LegacyImportError {
    match classify(&error) {
        SqliteFailure::NotADatabase | SqliteFailure::Corrupt => LegacyImportError::CorruptSource {
            detail: error.to_string(),
        },
        SqliteFailure::Other => LegacyImportError::Source(error),
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The file must hold exactly `page_count` pages: SQLite reads missing pages of a truncated
/// file as zeros, which `quick_check` does not always notice.
fn size_check(conn: &mut SqliteConnection, file_len: u64) -> Result<(), LegacyImportError> {
    let page_size: Count = diesel::sql_query("SELECT page_size AS n FROM pragma_page_size()")
        .get_result(conn)
        .map_err(source_error)?;
    let page_count: Count = diesel::sql_query("SELECT page_count AS n FROM pragma_page_count()")
        .get_result(conn)
        .map_err(source_error)?;
    let expected = u64::try_from(page_size.n)
        .ok()
        .zip(u64::try_from(page_count.n).ok())
        .and_then(|(size, count)| size.checked_mul(count));
    if expected != Some(file_len) {
        return Err(LegacyImportError::CorruptSource {
            detail: format!(
                "the file has {file_len} bytes, but its header describes {} pages of {} bytes (truncated?)",
                page_count.n, page_size.n
            ),
        });
    }
    Ok(())
}

#[derive(QueryableByName)]
struct CheckLine {
    #[diesel(sql_type = Text)]
    quick_check: String,
}

/// `PRAGMA quick_check`: finds truncation and damaged pages (and, with SQLCipher, pages
/// whose HMAC does not verify) before anything is read.
fn integrity_check(conn: &mut SqliteConnection) -> Result<(), LegacyImportError> {
    let lines: Vec<CheckLine> =
        diesel::sql_query("PRAGMA quick_check")
            .load(conn)
            .map_err(|e| LegacyImportError::CorruptSource {
                detail: e.to_string(),
            })?;
    match lines.as_slice() {
        [line] if line.quick_check == "ok" => Ok(()),
        _ => Err(LegacyImportError::CorruptSource {
            detail: lines
                .iter()
                .take(5)
                .map(|l| l.quick_check.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

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
fn check_layout(conn: &mut SqliteConnection, path: &Path) -> Result<(), LegacyImportError> {
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

/// A secret BLOB column as read: zeroized when the row drops, never printed.
struct SecretBlob(Zeroizing<Vec<u8>>);

impl FromSql<Binary, Sqlite> for SecretBlob {
    fn from_sql(bytes: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <Vec<u8> as FromSql<Binary, Sqlite>>::from_sql(bytes).map(|v| SecretBlob(Zeroizing::new(v)))
    }
}

impl std::ops::Deref for SecretBlob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

fn key_bytes(
    bytes: &[u8],
    table: &'static str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> Result<Zeroizing<[u8; KEY_LEN]>, LegacyImportError> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(LegacyImportError::WrongBlobLength {
            table,
            column,
            row: row(),
            expected: KEY_LEN,
            actual: bytes.len(),
        });
    }
    out.copy_from_slice(bytes);
    Ok(out)
}

fn symmetric(
    bytes: &[u8],
    table: &'static str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> Result<SymmetricKey, LegacyImportError> {
    key_bytes(bytes, table, column, row).map(|k| SymmetricKey::from_bytes(*k))
}

fn public(
    bytes: &[u8],
    table: &'static str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> Result<PublicKey, LegacyImportError> {
    key_bytes(bytes, table, column, row).map(|k| PublicKey(*k))
}

fn counter(
    value: i64,
    table: &'static str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> Result<u32, LegacyImportError> {
    u32::try_from(value).map_err(|_| LegacyImportError::InvalidValue {
        table,
        column,
        row: row(),
        reason: format!("{value} is not a message counter (0..=4294967295)"),
    })
}

#[derive(QueryableByName)]
struct IdentityRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Binary)]
    secret_key: SecretBlob,
}

fn read_identity(conn: &mut SqliteConnection) -> Result<Identity, LegacyImportError> {
    let rows: Vec<IdentityRow> =
        diesel::sql_query("SELECT id, name, secret_key FROM identity ORDER BY id")
            .load(conn)
            .map_err(source_error)?;
    let row = match rows.as_slice() {
        [row] => row,
        [] => {
            return Err(LegacyImportError::InconsistentSource {
                reason: "the identity table is empty".into(),
            });
        }
        _ => {
            return Err(LegacyImportError::InconsistentSource {
                reason: format!("the identity table has {} rows, expected 1", rows.len()),
            });
        }
    };
    let secret = key_bytes(&row.secret_key, "identity", "secret_key", || {
        format!("id = {}", row.id)
    })?;
    Ok(Identity {
        name: row.name.clone(),
        key_pair: DhKeyPair::from_secret_bytes(*secret),
    })
}

#[derive(QueryableByName)]
struct EphemeralRow {
    #[diesel(sql_type = Text)]
    public_key_hex: String,
    #[diesel(sql_type = Binary)]
    secret_key: SecretBlob,
}

fn read_intro_keys(conn: &mut SqliteConnection) -> Result<Vec<DhKeyPair>, LegacyImportError> {
    let rows: Vec<EphemeralRow> = diesel::sql_query(
        "SELECT public_key_hex, secret_key FROM ephemeral_keys ORDER BY public_key_hex",
    )
    .load(conn)
    .map_err(source_error)?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let label = || format!("public_key_hex = '{}'", row.public_key_hex);
        let secret = key_bytes(&row.secret_key, "ephemeral_keys", "secret_key", label)?;
        let pair = DhKeyPair::from_secret_bytes(*secret);
        let derived_hex = hex::encode(pair.public().as_bytes());
        if derived_hex != row.public_key_hex {
            return Err(LegacyImportError::EphemeralKeyMismatch {
                public_key_hex: row.public_key_hex.clone(),
                derived_hex,
            });
        }
        keys.push(pair);
    }
    Ok(keys)
}

#[derive(QueryableByName)]
struct ConversationRow {
    #[diesel(sql_type = Text)]
    local_convo_id: String,
    #[diesel(sql_type = Text)]
    remote_convo_id: String,
    #[diesel(sql_type = Text)]
    convo_type: String,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
}

fn read_conversations(
    conn: &mut SqliteConnection,
) -> Result<Vec<ConversationRecord>, LegacyImportError> {
    let rows: Vec<ConversationRow> = diesel::sql_query(
        "SELECT local_convo_id, remote_convo_id, convo_type, created_at FROM conversations ORDER BY created_at, local_convo_id",
    )
    .load(conn)
    .map_err(source_error)?;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let label = || format!("local_convo_id = '{}'", row.local_convo_id);
        if row.local_convo_id.is_empty() {
            return Err(LegacyImportError::InvalidValue {
                table: "conversations",
                column: "local_convo_id",
                row: label(),
                reason: "empty conversation id".into(),
            });
        }
        let Some(kind) = ConversationKind::parse(&row.convo_type) else {
            return Err(LegacyImportError::InvalidValue {
                table: "conversations",
                column: "convo_type",
                row: label(),
                reason: format!("unknown conversation type '{}'", row.convo_type),
            });
        };
        let created_at = seconds(row.created_at, "conversations", "created_at", label)?;
        records.push(ConversationRecord {
            conversation_id: row.local_convo_id,
            remote_conversation_id: row.remote_convo_id,
            kind,
            created_at,
            // The reference never stored the peer's installation key.
            peer_key: None,
        });
    }
    Ok(records)
}

#[derive(QueryableByName)]
struct RatchetRow {
    #[diesel(sql_type = Text)]
    conversation_id: String,
    #[diesel(sql_type = Binary)]
    root_key: SecretBlob,
    #[diesel(sql_type = Nullable<Binary>)]
    sending_chain: Option<SecretBlob>,
    #[diesel(sql_type = Nullable<Binary>)]
    receiving_chain: Option<SecretBlob>,
    #[diesel(sql_type = Binary)]
    dh_self_secret: SecretBlob,
    #[diesel(sql_type = Nullable<Binary>)]
    dh_remote: Option<Vec<u8>>,
    #[diesel(sql_type = BigInt)]
    msg_send: i64,
    #[diesel(sql_type = BigInt)]
    msg_recv: i64,
    #[diesel(sql_type = BigInt)]
    prev_chain_len: i64,
}

fn read_ratchet_states(
    conn: &mut SqliteConnection,
) -> Result<HashMap<String, RatchetState>, LegacyImportError> {
    const T: &str = "ratchet_state";
    let rows: Vec<RatchetRow> = diesel::sql_query(
        "SELECT conversation_id, root_key, sending_chain, receiving_chain, dh_self_secret, dh_remote, msg_send, msg_recv, prev_chain_len FROM ratchet_state ORDER BY conversation_id",
    )
    .load(conn)
    .map_err(source_error)?;
    let mut states = HashMap::with_capacity(rows.len());
    for row in rows {
        let label = || format!("conversation_id = '{}'", row.conversation_id);
        let state = RatchetState {
            root_key: symmetric(&row.root_key, T, "root_key", label)?,
            sending_chain: row
                .sending_chain
                .as_ref()
                .map(|b| symmetric(b, T, "sending_chain", label))
                .transpose()?,
            receiving_chain: row
                .receiving_chain
                .as_ref()
                .map(|b| symmetric(b, T, "receiving_chain", label))
                .transpose()?,
            dh_self: DhKeyPair::from_secret_bytes(*key_bytes(
                &row.dh_self_secret,
                T,
                "dh_self_secret",
                label,
            )?),
            dh_remote: row
                .dh_remote
                .as_ref()
                .map(|b| public(b, T, "dh_remote", label))
                .transpose()?,
            msg_send: counter(row.msg_send, T, "msg_send", label)?,
            msg_recv: counter(row.msg_recv, T, "msg_recv", label)?,
            prev_chain_len: counter(row.prev_chain_len, T, "prev_chain_len", label)?,
        };
        states.insert(row.conversation_id, state);
    }
    Ok(states)
}

#[derive(QueryableByName)]
struct SkippedRow {
    #[diesel(sql_type = BigInt)]
    row_id: i64,
    #[diesel(sql_type = Text)]
    conversation_id: String,
    #[diesel(sql_type = Binary)]
    public_key: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    msg_num: i64,
    #[diesel(sql_type = Binary)]
    message_key: SecretBlob,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
}

/// A time the reference stored in Unix seconds, as a [`Timestamp`] (milliseconds).
fn seconds(
    value: i64,
    table: &'static str,
    column: &'static str,
    label: impl FnOnce() -> String,
) -> Result<Timestamp, LegacyImportError> {
    value
        .checked_mul(1000)
        .map(Timestamp::from_millis)
        .ok_or_else(|| LegacyImportError::InvalidValue {
            table,
            column,
            row: label(),
            reason: format!("{value} seconds is out of range"),
        })
}

/// Reads every skipped key, grouped by conversation, each group oldest first
/// (`created_at`, then insertion order).
fn read_skipped_keys(
    conn: &mut SqliteConnection,
    states: &HashMap<String, RatchetState>,
) -> Result<HashMap<String, Vec<SkippedKey>>, LegacyImportError> {
    const T: &str = "skipped_keys";
    let rows: Vec<SkippedRow> = diesel::sql_query(
        "SELECT rowid AS row_id, conversation_id, public_key, msg_num, message_key, created_at FROM skipped_keys ORDER BY created_at, rowid",
    )
    .load(conn)
    .map_err(source_error)?;
    let mut grouped: HashMap<String, Vec<SkippedKey>> = HashMap::with_capacity(states.len());
    for row in rows {
        let label = || {
            format!(
                "rowid {} (conversation_id = '{}', msg_num = {})",
                row.row_id, row.conversation_id, row.msg_num
            )
        };
        if !states.contains_key(&row.conversation_id) {
            return Err(LegacyImportError::InconsistentSource {
                reason: format!("skipped_keys {} belongs to no ratchet_state", label()),
            });
        }
        let key = SkippedKey {
            dh_pub: public(&row.public_key, T, "public_key", label)?,
            msg_num: counter(row.msg_num, T, "msg_num", label)?,
            message_key: symmetric(&row.message_key, T, "message_key", label)?,
            stored_at: seconds(row.created_at, T, "created_at", label)?,
        };
        match grouped.get_mut(&row.conversation_id) {
            Some(keys) => keys.push(key),
            None => {
                grouped.insert(row.conversation_id, vec![key]);
            }
        }
    }
    Ok(grouped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_uri_escapes_uri_syntax_in_file_names() {
        let uri = read_only_uri(Path::new("/tmp/a b?c#d%e&mode=rw.db")).unwrap();
        assert_eq!(uri, "file:/tmp/a%20b%3Fc%23d%25e%26mode%3Drw.db?mode=ro");
    }

    #[test]
    fn sidecar_appends_to_the_file_name() {
        assert_eq!(
            sidecar_path(Path::new("/x/y.db"), "-wal"),
            PathBuf::from("/x/y.db-wal")
        );
    }
}
