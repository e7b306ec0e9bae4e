//! Writing the import: a temporary file next to the target, one transaction through the
//! repositories, a read-back verification, fsync, a no-replace move into place (`tempfile`'s
//! `persist_noclobber`) and an fsync of the directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use domain_chat::{ConversationStore, EphemeralKeyStore, IdentityStore};
use domain_ratchet::{RatchetStore, SkippedKeyDelta};
use tempfile::TempPath;

use super::error::LegacyImportError;
use super::source::{LegacyData, open_source, read_source, sidecar_path};
use super::{ImportCounts, ImportOutcome, ImportPhase, ImportProgress, ImportReport};
use crate::config::{DatabaseConfig, DatabaseKey, Durability, Location, MigrationMode};
use crate::database::Database;
use crate::error::PersistenceError;

/// SQLite's sidecar files of a database.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Imports the reference database at `source` into a new database described by `target`.
///
/// - `source_key`: `None` for a plain SQLite source, or the SQLCipher key of an encrypted one
///   (the reference used [`DatabaseKey::Passphrase`]). The source is opened read-only
///   (`mode=ro`); its bytes are never changed and no journal is created next to it.
/// - `target`: where the new database goes (`target.location` must be a file) and how it is
///   encrypted (`target.key`); `target.durability` and `target.busy_timeout` apply to the
///   verification pass. Migrations are always applied.
/// - `progress`: called with the phase and the records handled so far.
///
/// The import goes into the installation `target.installation()` (see
/// [`DatabaseConfig::with_installation`]; `default` unless named). A new target file is
/// written next to the target and moved into place. If the target file already exists it is
/// never overwritten:
/// - when it is a libchat database with the current schema and the installation does not
///   exist yet, or exists without an identity, conversations or intro keys, the import is
///   written into that installation, in one transaction that also compares everything with
///   the source before it commits (durably); the other installations are not touched;
/// - when the installation holds exactly this import, the result is
///   [`ImportOutcome::AlreadyImported`] and nothing is written;
/// - otherwise (an installation with another identity or other data, another key, not a
///   libchat database, an older or newer schema) [`LegacyImportError::TargetExists`].
///
/// # Errors
/// Every failure is a typed [`LegacyImportError`]; in every case the target was not created
/// (or an existing one was not modified) and no temporary file is left behind.
pub fn import_legacy(
    source: &Path,
    source_key: Option<&DatabaseKey>,
    target: &DatabaseConfig,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportReport, LegacyImportError> {
    let started = Instant::now();
    crate::config::validate_installation_name(target.installation())?;
    let target_path = match &target.location {
        Location::File(path) => path.clone(),
        Location::InMemory => {
            return Err(LegacyImportError::InvalidTargetPath {
                path: PathBuf::from(":memory:"),
            });
        }
    };
    let (directory, file_name) = split_target(&target_path)?;

    progress(ImportProgress {
        phase: ImportPhase::Reading,
        done: 0,
        total: 0,
    });
    let data = {
        let mut conn = open_source(source, source_key)?;
        read_source(&mut conn)?
        // The read-only connection closes here.
    };
    let counts = ImportCounts {
        identities: 1,
        intro_keys: data.intro_keys.len(),
        conversations: data.conversations.len(),
        ratchet_states: data.conversations.len(),
        skipped_keys: data.skipped_key_count(),
    };
    let total = record_total(&counts);
    progress(ImportProgress {
        phase: ImportPhase::Reading,
        done: total,
        total,
    });
    let report = |outcome| ImportReport {
        outcome,
        target: target_path.clone(),
        identity_name: data.identity.name.clone(),
        identity_public_hex: hex::encode(data.identity.key_pair.public().as_bytes()),
        counts,
        duration: started.elapsed(),
    };

    if std::fs::symlink_metadata(&target_path).is_ok() {
        return match check_existing(&target_path, target, &data, progress)? {
            Existing::SameImport => Ok(report(ImportOutcome::AlreadyImported)),
            Existing::Vacant { created } => {
                write_into_existing(target, &data, total, created, progress)?;
                Ok(report(ImportOutcome::Imported))
            }
        };
    }
    for suffix in SIDECARS {
        let sidecar = sidecar_path(&target_path, suffix);
        if std::fs::symlink_metadata(&sidecar).is_ok() {
            return Err(LegacyImportError::StaleTargetSidecar { sidecar });
        }
    }

    let temp = TempDatabase::create(&directory, &file_name)?;
    write(temp.path(), target, &data, total, progress)?;
    verify(temp.path(), target, &data, total, progress)?;
    progress(ImportProgress {
        phase: ImportPhase::Finishing,
        done: 0,
        total: 1,
    });
    temp.persist(&target_path, &directory)?;
    progress(ImportProgress {
        phase: ImportPhase::Finishing,
        done: 1,
        total: 1,
    });
    Ok(report(ImportOutcome::Imported))
}

/// The target's directory (`.` for a bare file name) and file name.
fn split_target(path: &Path) -> Result<(PathBuf, String), LegacyImportError> {
    let invalid = || LegacyImportError::InvalidTargetPath {
        path: path.to_path_buf(),
    };
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(invalid)?
        .to_owned();
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((directory, file_name))
}

fn record_total(counts: &ImportCounts) -> u64 {
    let records =
        counts.identities + counts.intro_keys + counts.conversations + counts.skipped_keys;
    u64::try_from(records).unwrap_or(u64::MAX)
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The configuration for the temporary file: same key, migrations applied.
fn temp_config(path: &Path, target: &DatabaseConfig, durability: Durability) -> DatabaseConfig {
    let mut config = target.clone();
    config.location = Location::File(path.to_path_buf());
    config.durability = durability;
    config.migrations = MigrationMode::Apply;
    config
}

/// Writes everything in one transaction. The file is synced explicitly before it is moved
/// into place, so the commit itself does not need `synchronous = FULL`.
fn write(
    path: &Path,
    target: &DatabaseConfig,
    data: &LegacyData,
    total: u64,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<(), LegacyImportError> {
    let mut db = Database::open(temp_config(path, target, Durability::Normal))?;
    progress(ImportProgress {
        phase: ImportPhase::Writing,
        done: 0,
        total,
    });
    db.transaction(|tx| write_records(tx, data, total, progress))?;
    Ok(())
}

/// Every record of the import, through the repositories, inside the caller's transaction.
fn write_records(
    tx: &mut crate::database::Tx<'_>,
    data: &LegacyData,
    total: u64,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<(), LegacyImportError> {
    {
        let mut done = 0u64;
        tx.save_identity(&data.identity)?;
        done += 1;
        for key in &data.intro_keys {
            tx.save_ephemeral_key(key)?;
            done += 1;
        }
        progress(ImportProgress {
            phase: ImportPhase::Writing,
            done,
            total,
        });
        for convo in &data.conversations {
            tx.save_conversation(&convo.record)?;
            let delta = SkippedKeyDelta {
                inserted: convo.skipped.clone(),
                removed: Vec::new(),
                cap: None,
            };
            tx.save_ratchet_state(&convo.record.conversation_id, &convo.state, &delta)?;
            done += 1 + as_u64(convo.skipped.len());
            progress(ImportProgress {
                phase: ImportPhase::Writing,
                done,
                total,
            });
        }
        Ok(())
    }
}

/// Reopens the written file (checking that the key opens it and the chain is complete) and
/// compares everything with the source.
fn verify(
    path: &Path,
    target: &DatabaseConfig,
    data: &LegacyData,
    total: u64,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<(), LegacyImportError> {
    let mut db = Database::open(temp_config(path, target, target.durability))?;
    let status = db.schema_status()?;
    if !status.is_current() {
        return Err(LegacyImportError::VerificationFailed {
            what: format!("schema not current after migration: {status:?}"),
        });
    }
    let mut on_progress = |done| {
        progress(ImportProgress {
            phase: ImportPhase::Verifying,
            done,
            total,
        });
    };
    let result = db.transaction(|tx| -> Result<Result<(), String>, LegacyImportError> {
        compare(tx, data, &mut on_progress)
    })?;
    result.map_err(|what| LegacyImportError::VerificationFailed { what })
}

/// What an existing target file holds for the import.
enum Existing {
    /// The installation holds exactly this import.
    SameImport,
    /// The installation can take the import: it holds nothing (`created`: it did not exist).
    Vacant { created: bool },
}

/// The target exists: [`Existing`] when its installation holds exactly this import or
/// nothing, else `TargetExists`. Nothing is written: a target whose schema is not current is
/// not migrated, just refused, and an installation that does not exist is not created.
fn check_existing(
    path: &Path,
    target: &DatabaseConfig,
    data: &LegacyData,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<Existing, LegacyImportError> {
    let exists = |same_identity| LegacyImportError::TargetExists {
        path: path.to_path_buf(),
        same_identity,
    };
    let mut config = target.clone();
    config.migrations = MigrationMode::Skip;
    let status = match Database::inspect(&config) {
        Ok(status) => status,
        // Not a database, another key, another application's or the reference's database:
        // certainly not this import.
        Err(
            PersistenceError::WrongKeyOrNotADatabase { .. }
            | PersistenceError::ForeignDatabase { .. }
            | PersistenceError::LegacyDatabase { .. },
        ) => return Err(exists(false)),
        Err(e) => return Err(e.into()),
    };
    if !status.is_current() {
        return Err(exists(false));
    }
    let installed = Database::list_installations(&config)?
        .iter()
        .any(|i| i.name == target.installation());
    if !installed {
        return Ok(Existing::Vacant { created: true });
    }
    let mut db = Database::open(config)?;
    let total = record_total(&ImportCounts {
        identities: 1,
        intro_keys: data.intro_keys.len(),
        conversations: data.conversations.len(),
        ratchet_states: 0,
        skipped_keys: data.skipped_key_count(),
    });
    let mut on_progress = |done| {
        progress(ImportProgress {
            phase: ImportPhase::Verifying,
            done,
            total,
        });
    };
    // None: vacant; Some((same identity, same data)).
    let found = db.read(|tx| -> Result<Option<(bool, bool)>, LegacyImportError> {
        let Some(identity) = tx.load_identity()? else {
            if is_vacant(tx)? {
                return Ok(None);
            }
            return Ok(Some((false, false)));
        };
        if identity.key_pair.public() != data.identity.key_pair.public() {
            return Ok(Some((false, false)));
        }
        Ok(Some((true, compare(tx, data, &mut on_progress)?.is_ok())))
    })?;
    match found {
        None => Ok(Existing::Vacant { created: false }),
        Some((true, true)) => Ok(Existing::SameImport),
        Some((same_identity, _)) => Err(exists(same_identity)),
    }
}

/// Whether the transaction's installation holds no identity, intro key or conversation (the
/// mailbox follows conversations).
fn is_vacant(tx: &mut crate::database::Tx<'_>) -> Result<bool, LegacyImportError> {
    Ok(tx.load_identity()?.is_none()
        && tx.count_ephemeral_keys()? == 0
        && tx.list_conversations()?.is_empty())
}

/// Writes the import into the vacant installation of an existing target file, and compares
/// it with the source, in one durable transaction: on any failure nothing stays (an
/// installation this import created is removed again).
fn write_into_existing(
    target: &DatabaseConfig,
    data: &LegacyData,
    total: u64,
    created: bool,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<(), LegacyImportError> {
    let mut config = target.clone();
    config.migrations = MigrationMode::Skip;
    let mut db = Database::open(config)?;
    let result = db.transaction_synced(|tx| -> Result<(), LegacyImportError> {
        // Checked again under the write lock: another process may have used it since.
        if !is_vacant(tx)? {
            return Err(LegacyImportError::TargetExists {
                path: target_file(target),
                same_identity: false,
            });
        }
        write_records(tx, data, total, progress)?;
        let mut on_progress = |done| {
            progress(ImportProgress {
                phase: ImportPhase::Verifying,
                done,
                total,
            });
        };
        compare(tx, data, &mut on_progress)?
            .map_err(|what| LegacyImportError::VerificationFailed { what })
    });
    if result.is_err() && created {
        // Best effort: the installation row this import's open created, empty again.
        let _ = db.transaction(|tx| -> Result<(), PersistenceError> {
            use diesel::prelude::*;
            if is_vacant(tx).unwrap_or(false) {
                diesel::delete(
                    crate::schema::installations::table
                        .filter(crate::schema::installations::name.eq(target.installation())),
                )
                .execute(tx.conn)?;
            }
            Ok(())
        });
    }
    result
}

/// The target's path (a file: checked before).
fn target_file(target: &DatabaseConfig) -> PathBuf {
    match &target.location {
        Location::File(path) => path.clone(),
        Location::InMemory => PathBuf::from(":memory:"),
    }
}

/// Compares the store with the source's data: `Ok(Err(what))` names the first difference.
/// Every record is compared in full (secrets included), and the store must hold nothing else.
fn compare<S>(
    store: &mut S,
    data: &LegacyData,
    progress: &mut dyn FnMut(u64),
) -> Result<Result<(), String>, LegacyImportError>
where
    S: IdentityStore + EphemeralKeyStore + ConversationStore + RatchetStore,
{
    let mut done = 0u64;
    match store.load_identity()? {
        Some(identity) if identity == data.identity => {}
        Some(_) => return Ok(Err("the identity differs".into())),
        None => return Ok(Err("no identity".into())),
    }
    done += 1;
    let stored_intro = store.count_ephemeral_keys()?;
    if stored_intro != data.intro_keys.len() {
        return Ok(Err(format!(
            "{stored_intro} intro keys, expected {}",
            data.intro_keys.len()
        )));
    }
    for key in &data.intro_keys {
        let public = key.public();
        match store.load_ephemeral_key(&public)? {
            Some(stored) if stored == *key => {}
            _ => {
                return Ok(Err(format!(
                    "intro key {} is missing or differs",
                    hex::encode(public.as_bytes())
                )));
            }
        }
        done += 1;
    }
    progress(done);
    let stored_convos = store.list_conversations()?;
    if stored_convos.len() != data.conversations.len() {
        return Ok(Err(format!(
            "{} conversations, expected {}",
            stored_convos.len(),
            data.conversations.len()
        )));
    }
    for convo in &data.conversations {
        let id = &convo.record.conversation_id;
        if store.load_conversation(id)?.as_ref() != Some(&convo.record) {
            return Ok(Err(format!("conversation {id} is missing or differs")));
        }
        if store.load_ratchet_state(id)?.as_ref() != Some(&convo.state) {
            return Ok(Err(format!(
                "the ratchet state of conversation {id} is missing or differs"
            )));
        }
        let stored = store.load_skipped_keys(id)?;
        if stored != convo.skipped {
            return Ok(Err(format!(
                "the skipped keys of conversation {id} differ ({} stored, expected {})",
                stored.len(),
                convo.skipped.len()
            )));
        }
        done += 1 + as_u64(convo.skipped.len());
        progress(done);
    }
    Ok(Ok(()))
}

/// A temporary database file next to the target (created by `tempfile`, owner-only); removed
/// with its sidecars on drop unless it was moved into place.
struct TempDatabase {
    /// The file; `tempfile` removes it when this drops.
    temp: TempPath,
    /// Its sidecars, removed when this drops.
    sidecars: Sidecars,
}

impl TempDatabase {
    /// Creates a new, empty, owner-only file `.<name>.import-<random>.tmp` in `directory`.
    fn create(directory: &Path, name: &str) -> Result<Self, LegacyImportError> {
        let file = tempfile::Builder::new()
            .prefix(&format!(".{name}.import-"))
            .suffix(".tmp")
            .tempfile_in(directory)
            .map_err(|source| LegacyImportError::TargetIo {
                path: directory.to_path_buf(),
                source,
            })?;
        // SQLite opens the file by name: keep no descriptor of our own (closing another
        // descriptor of a file drops every POSIX lock the process holds on it).
        let temp = file.into_temp_path();
        let sidecars = Sidecars {
            path: temp.to_path_buf(),
        };
        Ok(Self { temp, sidecars })
    }

    fn path(&self) -> &Path {
        &self.temp
    }

    /// Syncs the file, moves it to `target` without ever replacing an existing file
    /// (`tempfile`'s `persist_noclobber`: `renameat2(RENAME_NOREPLACE)` where the kernel and
    /// file system support it, else a hard link, which fails if the target exists, then
    /// unlinking the temporary name), then syncs the directory. `tempfile` syncs neither the
    /// file nor the directory: both are done here.
    fn persist(self, target: &Path, directory: &Path) -> Result<(), LegacyImportError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LegacyImportError::TargetIo { path, source }
        };
        let Self { temp, sidecars } = self;
        let temp_path = temp.to_path_buf();
        // Every connection is closed: the WAL must have been checkpointed into the file.
        for suffix in ["-wal", "-journal"] {
            let sidecar = sidecar_path(&temp_path, suffix);
            if std::fs::metadata(&sidecar).is_ok_and(|m| m.len() > 0) {
                return Err(LegacyImportError::VerificationFailed {
                    what: format!("{} was not checkpointed", sidecar.display()),
                });
            }
        }
        File::open(&temp_path)
            .and_then(|f| f.sync_all())
            .map_err(io(&temp_path))?;
        if let Err(e) = temp.persist_noclobber(target) {
            // `e.path` (the temporary file) and `sidecars` are removed when they drop.
            return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                LegacyImportError::TargetExists {
                    path: target.to_path_buf(),
                    same_identity: false,
                }
            } else {
                LegacyImportError::TargetIo {
                    path: target.to_path_buf(),
                    source: e.error,
                }
            });
        }
        // The hard-link fallback ignores a failure to unlink the temporary name: a second name
        // of the imported database must not stay behind.
        match std::fs::remove_file(&temp_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&temp_path)(e));
            }
            _ => {}
        }
        drop(sidecars);
        sync_directory(directory).map_err(io(directory))?;
        Ok(())
    }
}

/// The sidecar files (`-wal`, `-shm`, `-journal`) of a temporary database, removed on drop.
struct Sidecars {
    path: PathBuf,
}

impl Drop for Sidecars {
    fn drop(&mut self) {
        for suffix in SIDECARS {
            let _ = std::fs::remove_file(sidecar_path(&self.path, suffix));
        }
    }
}

/// Makes a rename or link in `directory` durable (a no-op where directories cannot be opened).
fn sync_directory(directory: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(directory)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        Ok(())
    }
}
