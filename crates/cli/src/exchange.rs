//! The exchange directory: envelopes travel as files that both installations can read and
//! write. A file is named `<hint>.<created ms, 20 digits>-<outbox id, 20 digits>-<digest>.env`:
//! the hint lets each side pick only what is addressed to it, the time and id keep one
//! sender's envelopes in send order, and a digest of the envelope keeps two senders' names
//! apart.
//!
//! Writing is atomic and durable: each envelope goes to a unique temporary name in the
//! directory (hidden, `O_EXCL`), is fsynced, renamed to its final name, and the directory is
//! fsynced before the outbox entries are marked delivered. A crash or a power cut at any point
//! leaves either no file under the final name or the complete envelope, never a truncated one;
//! the outbox still holds whatever was not marked delivered, and the next `flush` writes it
//! again (the receiver refuses a second copy as a duplicate). Two processes writing the same
//! envelope write the same name: the second rename replaces the first with the same bytes.
//!
//! Reading never trusts the directory: an entry that is not a regular file (a directory, a
//! FIFO, a symlink, a socket) is skipped and reported, never opened (`O_NOFOLLOW | O_NONBLOCK`
//! and a check of the opened file, so a swap after the listing does not help), a file larger
//! than [`MAX_ENVELOPE_LEN`] is not read beyond that size, and one bad entry never stops the
//! others. Every error names the file.
//!
//! The file operations of the writer go through [`ExchangeFs`], so that the tests can cut the
//! power at every step ([`tests`]).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use libchat::{MAX_ENVELOPE_LEN, OutboxEntry};
use sha2::{Digest, Sha256};

/// Suffix of envelope files.
pub(crate) const ENVELOPE_SUFFIX: &str = ".env";
/// Suffix an envelope the protocol refused is renamed to (kept for inspection, never read
/// again).
pub(crate) const REJECTED_SUFFIX: &str = ".rejected";
/// Suffix of temporary files (hidden: their names start with a dot).
const TEMP_SUFFIX: &str = ".tmp";

/// The file operations of [`export`]. [`RealFs`] is the file system.
pub(crate) trait ExchangeFs {
    /// An open file being written.
    type File: Write;
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()>;
    /// Creates `path`, which must not exist (`O_EXCL`), for writing.
    fn create_new(&mut self, path: &Path) -> io::Result<Self::File>;
    /// Makes `file`'s content durable (`fsync`).
    fn sync_file(&mut self, file: &mut Self::File) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes `dir`'s entries durable (`fsync` of the directory).
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
    /// Removes `path`.
    fn remove_file(&mut self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default)]
pub(crate) struct RealFs;

impl ExchangeFs for RealFs {
    type File = File;

    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn create_new(&mut self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
    }

    fn sync_file(&mut self, file: &mut File) -> io::Result<()> {
        file.sync_all()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// The final file name of an outbox envelope. The hint must be a plain name component (it is
/// hex for every envelope libchat produces).
pub(crate) fn file_name(entry: &OutboxEntry) -> Result<String> {
    let hint = &entry.conversation_hint;
    if hint.is_empty() || !hint.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!(
            "outbox entry {}: its hint {hint:?} cannot name a file",
            entry.id
        );
    }
    let digest = Sha256::digest(&entry.envelope);
    let mut name = format!(
        "{hint}.{:020}-{:020}-",
        entry.created_at.as_millis().max(0),
        entry.id.max(0)
    );
    for b in &digest[..8] {
        let _ = write!(name, "{b:02x}");
    }
    name.push_str(ENVELOPE_SUFFIX);
    Ok(name)
}

/// The hint part of an envelope file name (before the first dot), if `name` is one.
pub(crate) fn hint_of(name: &str) -> Option<&str> {
    if name.starts_with('.') || !name.ends_with(ENVELOPE_SUFFIX) {
        return None;
    }
    name.split('.').next().filter(|h| !h.is_empty())
}

/// Writes `envelopes` (final name, bytes) into `dir` atomically and durably: each to a
/// temporary name, fsynced; then each renamed to its final name; then the directory fsynced.
/// On an error, the temporary files not yet renamed are removed (best effort) and the error
/// names the file; the envelopes renamed before it are complete.
pub(crate) fn export<F: ExchangeFs>(
    fs: &mut F,
    dir: &Path,
    envelopes: &[(String, &[u8])],
) -> Result<()> {
    fs.create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut staged: Vec<PathBuf> = Vec::with_capacity(envelopes.len());
    let result = stage_and_rename(fs, dir, envelopes, &mut staged);
    if result.is_err() {
        for tmp in &staged {
            let _ = fs.remove_file(tmp);
        }
    }
    result
}

fn stage_and_rename<F: ExchangeFs>(
    fs: &mut F,
    dir: &Path,
    envelopes: &[(String, &[u8])],
    staged: &mut Vec<PathBuf>,
) -> Result<()> {
    for (name, bytes) in envelopes {
        let (tmp, mut file) = create_temp(fs, dir, name)?;
        staged.push(tmp.clone());
        file.write_all(bytes)
            .and_then(|()| file.flush())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs.sync_file(&mut file)
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
    }
    let renames: Vec<(PathBuf, PathBuf)> = staged
        .iter()
        .zip(envelopes)
        .map(|(tmp, (name, _))| (tmp.clone(), dir.join(name)))
        .collect();
    for (tmp, target) in renames {
        fs.rename(&tmp, &target)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))?;
        staged.retain(|t| *t != tmp);
    }
    fs.sync_dir(dir)
        .with_context(|| format!("cannot sync the directory {}", dir.display()))
}

/// Creates a temporary file for `name` in `dir` under a fresh random name.
fn create_temp<F: ExchangeFs>(fs: &mut F, dir: &Path, name: &str) -> Result<(PathBuf, F::File)> {
    let mut last = None;
    for _ in 0..16 {
        let tmp = dir.join(format!(
            ".{name}.{:016x}{TEMP_SUFFIX}",
            rand::random::<u64>()
        ));
        match fs.create_new(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", tmp.display())),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// An entry of the exchange directory addressed to us that is not a regular file.
#[derive(Debug)]
pub(crate) struct Skipped {
    /// The entry.
    pub path: PathBuf,
    /// What it is.
    pub kind: &'static str,
}

/// An entry that could not be examined.
#[derive(Debug)]
pub(crate) struct Unreadable {
    /// The entry (or the directory, when the listing itself failed for one entry).
    pub path: PathBuf,
    /// Why.
    pub error: anyhow::Error,
}

/// What [`scan`] found: envelope files addressed to us (sorted by name: one sender's in send
/// order), and the entries skipped or unreadable.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Regular files named like envelopes for one of the hints.
    pub files: Vec<PathBuf>,
    /// Entries named like envelopes for one of the hints that are not regular files.
    pub skipped: Vec<Skipped>,
    /// Entries that could not be examined.
    pub unreadable: Vec<Unreadable>,
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Lists the envelope files in `dir` whose hint is in `hints`, leaving out those in `done`.
/// Only a failure to list `dir` at all is an error.
pub(crate) fn scan(dir: &Path, hints: &HashSet<String>, done: &HashSet<PathBuf>) -> Result<Scan> {
    let listing = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the exchange directory {}", dir.display()))?;
    let mut scan = Scan::default();
    for entry in listing {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                scan.unreadable.push(Unreadable {
                    path: dir.to_path_buf(),
                    error: anyhow::Error::new(e).context("cannot list an entry"),
                });
                continue;
            }
        };
        let path = entry.path();
        // Names that are not UTF-8 carry no hint of ours.
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(hint) = hint_of(&name) else {
            continue;
        };
        if !hints.contains(hint) || done.contains(&path) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_file() => scan.files.push(path),
            Ok(t) => scan.skipped.push(Skipped {
                path,
                kind: kind_of(t),
            }),
            Err(e) => scan.unreadable.push(Unreadable {
                path,
                error: e.into(),
            }),
        }
    }
    scan.files.sort();
    scan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(scan)
}

/// Why an envelope file was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Not a regular file (swapped in after the listing, or a symlink): skip it.
    NotRegular(&'static str),
    /// Larger than any envelope: reject it.
    TooLarge(u64),
    /// The read failed: report it, keep the file.
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotRegular(kind) => write!(f, "{kind}, not a regular file"),
            ReadError::TooLarge(len) => write!(
                f,
                "{len} bytes or more, larger than any envelope ({MAX_ENVELOPE_LEN} bytes)"
            ),
            ReadError::Io(e) => write!(f, "cannot read it: {e}"),
        }
    }
}

/// Reads an envelope file without following a symlink, without blocking on a FIFO, and
/// without reading more than [`MAX_ENVELOPE_LEN`] + 1 bytes.
pub(crate) fn read_envelope(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match file {
        Ok(file) => file,
        // O_NOFOLLOW on a symlink.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::NotRegular("a symbolic link"));
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    let metadata = file.metadata().map_err(ReadError::Io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegular(kind_of(metadata.file_type())));
    }
    let limit = MAX_ENVELOPE_LEN as u64;
    if metadata.len() > limit {
        return Err(ReadError::TooLarge(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Where a refused envelope file is moved: its name with `.rejected` instead of `.env`.
pub(crate) fn rejected_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(ENVELOPE_SUFFIX).unwrap_or(&name);
    path.with_file_name(format!("{stem}{REJECTED_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    //! Power cuts during the export, at every step, on a simulated file system that loses what
    //! was not made durable (the model of SQLite's crash tests, for files and one directory):
    //! a file's content is durable up to its last fsync, the directory's entries up to the
    //! directory's last fsync; at the cut, writes since the last fsync are each kept, lost or
    //! torn, and directory changes since the last directory fsync are kept or lost. After
    //! every cut and in every outcome, no final name holds anything but the complete envelope,
    //! and a second `flush` completes the export. A deliberately wrong writer (rename before
    //! fsync) is caught by the same check.

    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use libchat::{Client, ClientConfig, DatabaseConfig};

    use super::*;

    #[derive(Debug, Clone, Default)]
    struct Inode {
        /// What a reader sees now.
        data: Vec<u8>,
        /// What survives a power cut for sure (as of the last fsync).
        synced: Vec<u8>,
    }

    /// One directory.
    #[derive(Debug, Clone, Default)]
    struct Disk {
        inodes: Vec<Inode>,
        /// Entries as a reader sees them now.
        dir: BTreeMap<String, usize>,
        /// Entries as of the last directory fsync.
        dir_synced: BTreeMap<String, usize>,
    }

    /// Which unsynced state survives the cut.
    #[derive(Debug, Clone, Copy)]
    enum Data {
        Lost,
        Torn,
        Kept,
    }

    impl Disk {
        /// The disk after a power cut: directory changes since the last directory fsync
        /// `kept` or lost, unsynced file data kept, lost or torn (half of it).
        fn after_power_cut(&self, dir_kept: bool, data: Data) -> Disk {
            let inodes = self
                .inodes
                .iter()
                .map(|i| {
                    let survived = match data {
                        Data::Kept => i.data.clone(),
                        Data::Lost => i.synced.clone(),
                        Data::Torn => {
                            let common = i.synced.len().min(i.data.len());
                            let extra = (i.data.len() - common) / 2;
                            i.data[..common + extra].to_vec()
                        }
                    };
                    Inode {
                        data: survived.clone(),
                        synced: survived,
                    }
                })
                .collect();
            let dir = if dir_kept {
                self.dir.clone()
            } else {
                self.dir_synced.clone()
            };
            Disk {
                inodes,
                dir_synced: dir.clone(),
                dir,
            }
        }

        /// Every survivor state of a power cut.
        fn outcomes(&self) -> Vec<Disk> {
            let mut out = Vec::new();
            for dir_kept in [false, true] {
                for data in [Data::Lost, Data::Torn, Data::Kept] {
                    out.push(self.after_power_cut(dir_kept, data));
                }
            }
            out
        }

        fn file(&self, name: &str) -> Option<&[u8]> {
            self.dir.get(name).map(|&i| self.inodes[i].data.as_slice())
        }
    }

    fn name_of(path: &Path) -> String {
        path.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// The disk and the power: `budget` steps succeed, then the power is cut (the step that
    /// hits it fails — a write after half of its bytes reached the page cache — and so does
    /// every later one).
    #[derive(Debug)]
    struct Power {
        disk: Disk,
        budget: Option<usize>,
        steps: usize,
        cut: bool,
    }

    impl Power {
        /// Counts a step; false when the power is off (it just went, or went before).
        fn step(&mut self) -> bool {
            if self.cut {
                return false;
            }
            self.steps += 1;
            if self.budget.is_some_and(|b| self.steps > b) {
                self.cut = true;
                return false;
            }
            true
        }
    }

    fn power_cut() -> io::Error {
        io::Error::other("power cut")
    }

    /// The simulated file system of one directory.
    #[derive(Debug, Clone)]
    struct CrashFs(Rc<RefCell<Power>>);

    impl CrashFs {
        fn new(disk: Disk, budget: Option<usize>) -> Self {
            Self(Rc::new(RefCell::new(Power {
                disk,
                budget,
                steps: 0,
                cut: false,
            })))
        }

        fn steps(&self) -> usize {
            self.0.borrow().steps
        }

        fn was_cut(&self) -> bool {
            self.0.borrow().cut
        }

        fn disk(&self) -> Disk {
            self.0.borrow().disk.clone()
        }
    }

    struct CrashFile {
        power: Rc<RefCell<Power>>,
        inode: usize,
    }

    impl Write for CrashFile {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut p = self.power.borrow_mut();
            let was_on = !p.cut;
            let on = p.step();
            let inode = self.inode;
            if on {
                p.disk.inodes[inode].data.extend_from_slice(buf);
                Ok(buf.len())
            } else {
                if was_on {
                    p.disk.inodes[inode]
                        .data
                        .extend_from_slice(&buf[..buf.len() / 2]);
                }
                Err(power_cut())
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl ExchangeFs for CrashFs {
        type File = CrashFile;

        fn create_dir_all(&mut self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }

        fn create_new(&mut self, path: &Path) -> io::Result<CrashFile> {
            let mut p = self.0.borrow_mut();
            if !p.step() {
                return Err(power_cut());
            }
            let name = name_of(path);
            if p.disk.dir.contains_key(&name) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            let inode = p.disk.inodes.len();
            p.disk.inodes.push(Inode::default());
            p.disk.dir.insert(name, inode);
            Ok(CrashFile {
                power: self.0.clone(),
                inode,
            })
        }

        fn sync_file(&mut self, file: &mut CrashFile) -> io::Result<()> {
            let mut p = self.0.borrow_mut();
            if !p.step() {
                return Err(power_cut());
            }
            let inode = &mut p.disk.inodes[file.inode];
            inode.synced = inode.data.clone();
            Ok(())
        }

        fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
            let mut p = self.0.borrow_mut();
            if !p.step() {
                return Err(power_cut());
            }
            let inode = p
                .disk
                .dir
                .remove(&name_of(from))
                .ok_or(io::ErrorKind::NotFound)?;
            p.disk.dir.insert(name_of(to), inode);
            Ok(())
        }

        fn sync_dir(&mut self, _dir: &Path) -> io::Result<()> {
            let mut p = self.0.borrow_mut();
            if !p.step() {
                return Err(power_cut());
            }
            p.disk.dir_synced = p.disk.dir.clone();
            Ok(())
        }

        fn remove_file(&mut self, path: &Path) -> io::Result<()> {
            let mut p = self.0.borrow_mut();
            if !p.step() {
                return Err(power_cut());
            }
            p.disk
                .dir
                .remove(&name_of(path))
                .map(|_| ())
                .ok_or_else(|| io::ErrorKind::NotFound.into())
        }
    }

    /// Saro's database `dir/saro.db` with three envelopes in the outbox (a handshake and two
    /// messages, one of 3,000 bytes), closed.
    fn sender(dir: &Path) -> PathBuf {
        let path = dir.join("saro.db");
        let mut raya =
            Client::open(ClientConfig::new(DatabaseConfig::in_memory(), "raya")).unwrap();
        let mut saro =
            Client::open(ClientConfig::new(DatabaseConfig::file(&path), "saro")).unwrap();
        let bundle = raya.create_intro_bundle().unwrap();
        let started = saro.start_conversation(&bundle, b"hello").unwrap();
        saro.send(&started.conversation_id, &[7u8; 3000]).unwrap();
        saro.send(&started.conversation_id, b"third").unwrap();
        path
    }

    /// A client on a fresh copy of the database at `source`.
    fn open_copy(source: &Path, n: usize) -> Client {
        let copy = source.with_file_name(format!("copy-{n}.db"));
        std::fs::copy(source, &copy).unwrap();
        Client::open(ClientConfig::new(DatabaseConfig::file(&copy), "saro")).unwrap()
    }

    /// Final name -> envelope of everything in the outbox.
    fn expected(client: &mut Client) -> BTreeMap<String, Vec<u8>> {
        client
            .outbox(usize::MAX)
            .unwrap()
            .iter()
            .map(|e| (file_name(e).unwrap(), e.envelope.clone()))
            .collect()
    }

    /// The envelope-named files on `disk` that do not hold exactly their envelope.
    fn violations(disk: &Disk, expected: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
        disk.dir
            .keys()
            .filter(|n| hint_of(n).is_some())
            .filter_map(|name| {
                let data = disk.file(name).unwrap_or_default();
                match expected.get(name) {
                    Some(envelope) if envelope.as_slice() == data => None,
                    Some(envelope) => Some(format!(
                        "{name}: {} of {} bytes",
                        data.len(),
                        envelope.len()
                    )),
                    None => Some(format!("{name}: unexpected")),
                }
            })
            .collect()
    }

    const DIR: &str = "/exchange";

    #[test]
    fn a_power_cut_at_any_step_leaves_no_truncated_envelope_and_flush_completes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let source = sender(tmp.path());
        let mut copies = 0;
        let mut next = || {
            copies += 1;
            open_copy(&source, copies)
        };
        let expected = expected(&mut next());
        assert_eq!(expected.len(), 3);
        // The steps of a whole export: 3 × (create, write, sync), 3 renames, 1 directory sync.
        let mut dry = CrashFs::new(Disk::default(), None);
        assert_eq!(
            crate::chat::flush_with(&mut next(), Path::new(DIR), &mut dry).unwrap(),
            3
        );
        let total = dry.steps();
        assert!(violations(&dry.disk(), &expected).is_empty());

        let mut checked = 0;
        for budget in 0..total {
            let mut client = next();
            let mut fs = CrashFs::new(Disk::default(), Some(budget));
            let result = crate::chat::flush_with(&mut client, Path::new(DIR), &mut fs);
            assert!(
                result.is_err() && fs.was_cut(),
                "cut at step {budget}: {result:?}"
            );
            // Nothing was marked delivered: that comes after the directory sync.
            assert_eq!(client.outbox(usize::MAX).unwrap().len(), 3);
            drop(client);
            for (n, outcome) in fs.disk().outcomes().into_iter().enumerate() {
                let bad = violations(&outcome, &expected);
                assert!(bad.is_empty(), "cut at step {budget}, outcome {n}: {bad:?}");
                // After the reboot, the next flush completes the export, durably.
                let mut after = CrashFs::new(outcome, None);
                let mut client = next();
                let written = crate::chat::flush_with(&mut client, Path::new(DIR), &mut after);
                assert_eq!(written.unwrap(), 3, "cut at step {budget}, outcome {n}");
                assert!(client.outbox(1).unwrap().is_empty());
                let durable = after.disk().after_power_cut(false, Data::Lost);
                assert!(violations(&durable, &expected).is_empty());
                for (name, envelope) in &expected {
                    assert_eq!(
                        durable.file(name),
                        Some(envelope.as_slice()),
                        "cut at step {budget}, outcome {n}: {name} after the second flush"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, total * 6);
        assert_eq!(total, 3 * 3 + 3 + 1);
    }

    /// The check above is no check unless it catches a writer that gets the order wrong:
    /// renaming before the fsync, or not syncing the directory before reporting success.
    #[test]
    fn the_power_cut_check_catches_a_wrong_order() {
        let envelope = vec![9u8; 2000];
        let name = "abc.00000000000000000001-00000000000000000001-0000000000000000.env".to_owned();
        let expected: BTreeMap<String, Vec<u8>> = [(name.clone(), envelope.clone())].into();
        // Rename before fsync: some cut leaves a truncated envelope under its final name.
        let rename_first = |fs: &mut CrashFs| -> io::Result<()> {
            let tmp = Path::new(DIR).join(".tmp");
            let mut file = fs.create_new(&tmp)?;
            file.write_all(&envelope)?;
            fs.rename(&tmp, &Path::new(DIR).join(&name))?;
            fs.sync_dir(Path::new(DIR))?;
            fs.sync_file(&mut file)
        };
        let caught = (0..5).any(|budget| {
            let mut fs = CrashFs::new(Disk::default(), Some(budget));
            let _ = rename_first(&mut fs);
            fs.disk()
                .outcomes()
                .iter()
                .any(|o| !violations(o, &expected).is_empty())
        });
        assert!(caught, "a rename before the fsync went unnoticed");
        // No directory sync: the envelope is lost although the writer reported success (the
        // caller would then mark it delivered).
        let mut fs = CrashFs::new(Disk::default(), None);
        let tmp = Path::new(DIR).join(".tmp");
        let mut file = fs.create_new(&tmp).unwrap();
        file.write_all(&envelope).unwrap();
        fs.sync_file(&mut file).unwrap();
        fs.rename(&tmp, &Path::new(DIR).join(&name)).unwrap();
        let durable = fs.disk().after_power_cut(false, Data::Lost);
        assert_eq!(durable.file(&name), None);
    }

    /// On the real file system: a write that fails half-way leaves no file under the final
    /// name and no temporary file; the next flush writes the envelope whole.
    #[test]
    fn a_failed_write_on_disk_leaves_nothing_and_the_next_flush_completes_it() {
        struct FailingWrite {
            real: RealFs,
            fail_after: usize,
        }
        struct HalfFile(File, usize);
        impl Write for HalfFile {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.1 == 0 {
                    return Err(io::Error::other("injected write failure"));
                }
                let n = buf.len().min(self.1);
                self.1 -= n;
                self.0.write(&buf[..n])
            }
            fn flush(&mut self) -> io::Result<()> {
                self.0.flush()
            }
        }
        impl ExchangeFs for FailingWrite {
            type File = HalfFile;
            fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
                self.real.create_dir_all(dir)
            }
            fn create_new(&mut self, path: &Path) -> io::Result<HalfFile> {
                Ok(HalfFile(self.real.create_new(path)?, self.fail_after))
            }
            fn sync_file(&mut self, file: &mut HalfFile) -> io::Result<()> {
                self.real.sync_file(&mut file.0)
            }
            fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
                self.real.rename(from, to)
            }
            fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
                self.real.sync_dir(dir)
            }
            fn remove_file(&mut self, path: &Path) -> io::Result<()> {
                self.real.remove_file(path)
            }
        }

        let tmp = tempfile::tempdir().unwrap();
        let source = sender(tmp.path());
        let mut client = open_copy(&source, 1);
        let expected = expected(&mut client);
        let dir = tmp.path().join("exchange");
        let mut failing = FailingWrite {
            real: RealFs,
            fail_after: 1000,
        };
        let error = crate::chat::flush_with(&mut client, &dir, &mut failing).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("injected write failure"), "{message}");
        assert!(
            message.contains(&dir.display().to_string()),
            "names the file: {message}"
        );
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(client.outbox(usize::MAX).unwrap().len(), 3);

        assert_eq!(
            crate::chat::flush_with(&mut client, &dir, &mut RealFs).unwrap(),
            3
        );
        for (name, envelope) in &expected {
            assert_eq!(&std::fs::read(dir.join(name)).unwrap(), envelope);
        }
        assert!(client.outbox(1).unwrap().is_empty());
    }

    #[test]
    fn envelope_names_carry_the_hint_and_refuse_path_characters() {
        let tmp = tempfile::tempdir().unwrap();
        let source = sender(tmp.path());
        let mut client = open_copy(&source, 1);
        let mut entries = client.outbox(usize::MAX).unwrap();
        let name = file_name(&entries[0]).unwrap();
        assert_eq!(hint_of(&name), Some(entries[0].conversation_hint.as_str()));
        entries[0].conversation_hint = "../etc".to_owned();
        assert!(file_name(&entries[0]).is_err());
        assert_eq!(hint_of(".abc.env"), None);
        assert_eq!(hint_of("abc.rejected"), None);
        assert_eq!(
            rejected_path(Path::new("/x/abc.1-2.env")),
            Path::new("/x/abc.1-2.rejected")
        );
    }
}
