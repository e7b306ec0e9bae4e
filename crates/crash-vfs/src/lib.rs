//! # crash-vfs (test only)
//!
//! A crash-simulating SQLite VFS, after SQLite's own `test6.c`: a shim over the default (unix)
//! VFS that remembers, per file, every write since that file's last `xSync`, and that can
//! lose power at a chosen moment. It is never a dependency of a library crate; the power-loss
//! sweep of the libchat `Client` lives in this crate's `tests/`.
//!
//! ## The model
//! - **Cut points.** The calls that change a file — `xWrite`, `xTruncate`, `xSync` and
//!   `xDelete` — are numbered from 0 across every VFS instance sharing one [`CutPlan`]
//!   (one per installation of a workload). Call number `cut_at` is where the power fails,
//!   on the instance that makes it: that call is not performed and fails with
//!   `SQLITE_IOERR_*`, and so does every later call on that instance (opens, reads, writes,
//!   syncs, locks); closing and unlocking are still forwarded so that connections can be
//!   dropped. Other instances sharing the plan keep working (another machine).
//! - **Held-back writes.** The real files receive every write as it happens, so SQLite reads
//!   back what it wrote. Alongside, a shadow keeps each file's *durable* bytes (as of its last
//!   successful `xSync`) and the writes and truncations since. At the cut, the image of each
//!   file after the power loss is its durable bytes with each held-back operation, in issue
//!   order, applied whole, dropped, or torn — each aligned 512-byte sector it covers written
//!   or not — chosen by a RNG seeded with the run's seed. How much survives varies per crash
//!   ([`LossPolicy::keep`]: all, nothing, or a random share).
//! - **Directory entries.** A file created, or deleted, since the last sync of its directory
//!   may or may not be there after the power loss (a deleted one comes back with its durable
//!   content). The default VFS syncs the directory on the first `xSync` of a journal or WAL it
//!   opened with `SQLITE_OPEN_CREATE` (its `UNIXFILE_DIRSYNC` flag; `SQLITE_DISABLE_DIRSYNC` is
//!   not set in the bundled build) and after `xDelete` with `dirSync`; the model does the
//!   same. (`SQLITE_SYNC_DATAONLY` only asks for `fdatasync`; it does not signal a directory
//!   sync.) A file the model has not seen before is taken to be durable as it is.
//! - **Shared memory.** The `-shm` methods pass through: SQLite rebuilds the wal-index from
//!   the WAL after a crash.
//!
//! After the cut, close every connection on the crashed instance's files, then
//! [`Crash::restore`] writes the power-loss image over the real files; reopen them with the
//! default VFS. [`Crash::files`] also holds what every file would contain had every write
//! before the cut reached the disk (what the real files hold), to tell "the operation in
//! flight committed" from "it did not".
//!
//! ```no_run
//! use crash_vfs::{CrashVfs, CutPlan, Flaw};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let vfs = CrashVfs::register("crash-example")?;
//! let plan = CutPlan::new(Some(40));
//! vfs.arm(&plan, 7, Flaw::None);
//! // ... open `file:/tmp/x.db?vfs=crash-example` and work until a call fails ...
//! if let Some(crash) = vfs.disarm() {
//!     // close every connection first, then:
//!     crash.restore()?;
//! }
//! # Ok(()) }
//! ```

mod model;
mod vfs;

use std::path::Path;

pub use model::{CrashedFile, Decision, Fate, HeldBack, LossPolicy, SECTOR};
pub use vfs::CutPlan;

/// A deliberately broken variant of the shim, to prove that the checks catch a VFS (or disk)
/// that does not keep its promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// The correct shim.
    None,
    /// A sync of a WAL file is forwarded but does not make its writes durable: the writes
    /// SQLite believes synced are still held back (a disk ignoring flushes).
    WalSyncIgnored,
    /// The last write before each sync of a WAL file reaches the disk after the sync (the
    /// commit frame reordered with the flush that should make it durable).
    CommitWriteAfterWalSync,
}

/// Why a VFS could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    /// The name contains a NUL byte.
    #[error("invalid VFS name {0:?}")]
    InvalidName(String),
    /// A VFS with that name is already registered.
    #[error("a VFS named {0:?} is already registered")]
    NameTaken(String),
    /// SQLite has no default VFS.
    #[error("no default SQLite VFS")]
    NoDefaultVfs,
    /// `sqlite3_vfs_register` failed with this code.
    #[error("sqlite3_vfs_register failed: {0}")]
    Register(i32),
}

/// The power loss of one VFS instance: when, with which seed, and every file's image.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The cut point (the number of the call that did not happen).
    pub event: u64,
    /// The seed the decisions were drawn from.
    pub seed: u64,
    /// How much of the held-back writes survived.
    pub policy: LossPolicy,
    /// Every file the instance saw, after the power loss and with every write applied.
    pub files: Vec<CrashedFile>,
    /// Every held-back operation's and directory entry's fate.
    pub decisions: Vec<Decision>,
}

impl Crash {
    /// Writes the power-loss image over the real files (creating, rewriting or removing each).
    /// Close every connection on them first.
    pub fn restore(&self) -> std::io::Result<()> {
        for file in &self.files {
            write_or_remove(&file.path, file.after_power_loss.as_deref())?;
        }
        Ok(())
    }

    /// Writes, into `directory`, each file as it would be had every write before the cut
    /// reached the disk (same file names).
    pub fn write_all_written_into(&self, directory: &Path) -> std::io::Result<()> {
        for file in &self.files {
            if let Some(name) = file.path.file_name() {
                write_or_remove(&directory.join(name), file.all_written.as_deref())?;
            }
        }
        Ok(())
    }

    /// Checks the shadow against the real files: each holds exactly what every write before
    /// the cut put there (the VFS writes through). A mismatch (a bookkeeping error of the
    /// model) is described.
    pub fn check_live_files(&self) -> Result<(), String> {
        for file in &self.files {
            let real = std::fs::read(&file.path).ok();
            if real != file.all_written {
                return Err(format!(
                    "{}: the real file ({:?} bytes) differs from the model's ({:?} bytes)",
                    file.path.display(),
                    real.as_ref().map(Vec::len),
                    file.all_written.as_ref().map(Vec::len)
                ));
            }
        }
        Ok(())
    }

    /// A short description of the crash (for failure messages).
    pub fn summary(&self) -> String {
        let count = |f: fn(&Fate) -> bool| self.decisions.iter().filter(|d| f(&d.fate)).count();
        format!(
            "cut at call {}, seed {}, keep {:.2}: {} held-back operations/entries ({} whole, {} dropped, {} torn)",
            self.event,
            self.seed,
            self.policy.keep,
            self.decisions.len(),
            count(|f| matches!(f, Fate::Whole)),
            count(|f| matches!(f, Fate::Dropped)),
            count(|f| matches!(f, Fate::Torn(_))),
        )
    }
}

fn write_or_remove(path: &Path, content: Option<&[u8]>) -> std::io::Result<()> {
    match content {
        Some(bytes) => std::fs::write(path, bytes),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// A registered crash-simulating VFS. Unregistered on drop (close its connections first).
pub struct CrashVfs {
    registered: *mut vfs::Registered,
}

impl std::fmt::Debug for CrashVfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashVfs")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl CrashVfs {
    /// Registers a VFS named `name` over the default one (not as the default). Open a
    /// database through it with the URI `file:PATH?vfs=NAME`.
    pub fn register(name: &str) -> Result<Self, VfsError> {
        Ok(Self {
            registered: vfs::Registered::register(name)?,
        })
    }

    fn inner(&self) -> &vfs::Registered {
        // SAFETY: `registered` is live from `register` until `drop`.
        unsafe { &*self.registered }
    }

    /// The name it is registered under.
    pub fn name(&self) -> &str {
        self.inner().name()
    }

    /// Starts a run: forgets every file seen so far and numbers this instance's calls in
    /// `plan`; a power loss draws its decisions from `seed`; `flaw` selects a broken variant.
    pub fn arm(&self, plan: &std::sync::Arc<CutPlan>, seed: u64, flaw: Flaw) {
        self.inner().arm(plan, seed, flaw);
    }

    /// Ends the run (calls are no longer numbered or failed); returns the power loss if this
    /// instance had one.
    pub fn disarm(&self) -> Option<Crash> {
        self.inner().disarm()
    }

    /// The power loss of the current run, if it happened on this instance.
    pub fn crash(&self) -> Option<Crash> {
        self.inner().crash()
    }

    /// Every file of the current run that exists, with what of it is not yet durable.
    pub fn held_back(&self) -> Vec<HeldBack> {
        self.inner().held_back()
    }

    /// Files currently open through this VFS.
    pub fn open_files(&self) -> usize {
        self.inner().open_files()
    }
}

impl Drop for CrashVfs {
    fn drop(&mut self) {
        // SAFETY: `registered` came from `register` and is not used after this.
        unsafe { vfs::Registered::unregister(self.registered) };
    }
}
