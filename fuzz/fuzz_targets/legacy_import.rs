//! Legacy import (`persistence::import_legacy`) of a mutated reference database.
//!
//! The input is the bytes of a plain SQLite file (seeded with
//! `../shared/vectors/legacy/raya_plain.db`). It is written to a scratch file and imported
//! into a new target; any typed error is fine, a panic or an abort is not. Two documented
//! promises are checked as well: the source's bytes are never changed and nothing is left
//! next to it or the target (no journal, no temporary file) whatever the outcome, and
//! importing the same source again into the target it just produced reports
//! `AlreadyImported`.
//!
//! Run with `-max_len=65536` (the seed is 53,248 bytes).
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use persistence::DatabaseConfig;
use persistence::{ImportOutcome, import_legacy};

/// Scratch files of this process: a tmpfs directory when there is one (the import syncs
/// files), removed when the process exits normally.
struct Scratch {
    dir: tempfile::TempDir,
    source: PathBuf,
    target: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("libchat-fuzz-legacy-")
                .tempdir_in(shm)
        } else {
            tempfile::Builder::new()
                .prefix("libchat-fuzz-legacy-")
                .tempdir()
        }
        .expect("create a scratch directory");
        Self {
            source: dir.path().join("source.db"),
            target: dir.path().join("target.db"),
            dir,
        }
    }

    /// Panics if the scratch directory holds anything but the source (and the target when
    /// `with_target`).
    fn assert_only(&self, with_target: bool) {
        let entries = std::fs::read_dir(self.dir.path()).expect("list the scratch directory");
        for entry in entries {
            let path = entry.expect("read a directory entry").path();
            let expected = path == self.source || (with_target && path == self.target);
            assert!(expected, "import_legacy left {} behind", path.display());
        }
    }

    /// Removes a database file and its SQLite sidecars.
    fn remove(path: &Path) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(name));
        }
    }
}

thread_local! {
    static SCRATCH: Scratch = Scratch::new();
}

fuzz_target!(|data: &[u8]| {
    SCRATCH.with(|scratch| {
        Scratch::remove(&scratch.source);
        Scratch::remove(&scratch.target);
        std::fs::write(&scratch.source, data).expect("write the source file");
        let target = DatabaseConfig::file(&scratch.target);

        let first = import_legacy(&scratch.source, None, &target, &mut |_| {});
        let after = std::fs::read(&scratch.source).expect("read the source file back");
        assert!(after == data, "import_legacy changed the source file");
        scratch.assert_only(first.is_ok());

        if let Ok(report) = first {
            assert_eq!(report.outcome, ImportOutcome::Imported);
            match import_legacy(&scratch.source, None, &target, &mut |_| {}) {
                Ok(again) => assert_eq!(
                    again.outcome,
                    ImportOutcome::AlreadyImported,
                    "a second import into the same target"
                ),
                Err(e) => panic!("re-importing into the target just imported failed: {e}"),
            }
        }
        Scratch::remove(&scratch.source);
        Scratch::remove(&scratch.target);
    });
});
