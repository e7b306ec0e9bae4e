//! The storage model behind the VFS, in plain Rust: what is durable, what is held back, and
//! what a power loss leaves on the disk.
//!
//! The real files receive every write as it happens (so SQLite reads back what it wrote). Next
//! to them the model keeps, per file, a *shadow*: the bytes that are durable (as of the file's
//! last sync) and the list of operations since then. A power loss replaces each file by its
//! durable bytes with each held-back operation applied whole, dropped, or torn at 512-byte
//! sector granularity, in issue order, chosen by a seeded RNG.
//!
//! Directory entries are modelled the same way: a path names an inode; the entry durable at the
//! last directory sync and the current one may differ (a file created, or deleted, since);
//! after a power loss each such path independently names the one or the other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::Rng;

/// The granularity of a torn write: each aligned 512-byte sector a write covers is written or
/// not, independently. (Drives write sectors atomically; SQLite's `POWERSAFE_OVERWRITE`
/// assumption, that bytes outside a write are never damaged, holds in the model.)
pub const SECTOR: u64 = 512;

/// An inode: the file's content independent of the names pointing at it.
pub(crate) type InodeId = usize;

/// An operation on a file's content that is not yet durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Write { offset: u64, data: Vec<u8> },
    Truncate { size: u64 },
}

#[derive(Debug, Clone, Default)]
struct Inode {
    /// The content as of the last sync.
    durable: Vec<u8>,
    /// Operations since the last sync, in issue order.
    pending: Vec<Op>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    /// The inode this path names now (`None`: no such file).
    current: Option<InodeId>,
    /// The inode it named at the last sync of its directory.
    durable: Option<InodeId>,
}

/// What became of one held-back operation, or of one directory entry, at the power loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Applied whole.
    Whole,
    /// Lost.
    Dropped,
    /// Torn: the listed sectors (by index in the file) were written, the others not.
    Torn(Vec<u64>),
}

/// One decision taken at a power loss, kept to explain a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The file.
    pub path: PathBuf,
    /// What happened (`write 4096+4096`, `truncate to 0`, `created`, `deleted`).
    pub what: String,
    /// Its fate.
    pub fate: Fate,
}

/// A file after the power loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashedFile {
    /// Its path.
    pub path: PathBuf,
    /// Its content after the power loss (`None`: the file does not exist).
    pub after_power_loss: Option<Vec<u8>>,
    /// Its content had every operation issued before the cut reached the disk (`None`: does
    /// not exist). This is also what the real file holds, since the VFS writes through.
    pub all_written: Option<Vec<u8>>,
}

/// A file that exists, and what of it is not yet durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBack {
    /// Its path.
    pub path: PathBuf,
    /// Writes and truncations since its last sync.
    pub operations: usize,
    /// Whether its directory entry survives a power loss.
    pub entry_durable: bool,
}

/// How a power loss treats held-back operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossPolicy {
    /// Probability that a held-back write reaches the disk whole (the rest is split evenly
    /// between dropped and torn). 1.0 models a process crash; 0.0 loses everything unsynced.
    pub keep: f64,
}

/// The files one VFS instance has seen, as inodes and directory entries.
#[derive(Debug, Default)]
pub(crate) struct Model {
    inodes: Vec<Inode>,
    entries: BTreeMap<PathBuf, Entry>,
}

impl Model {
    /// The inode an open of `path` refers to. `existing` is the file's content on disk when it
    /// exists and the model has no current inode for it (a file the model has not seen is
    /// taken to be durable as it is); `create` says whether the open may create it.
    pub(crate) fn open(
        &mut self,
        path: &Path,
        existing: impl FnOnce() -> Option<Vec<u8>>,
        create: bool,
    ) -> Option<InodeId> {
        if let Some(Entry {
            current: Some(id), ..
        }) = self.entries.get(path)
        {
            return Some(*id);
        }
        let known = self.entries.contains_key(path);
        match existing() {
            Some(content) => {
                let id = self.new_inode(content);
                let entry = self.entries.entry(path.to_path_buf()).or_default();
                entry.current = Some(id);
                if !known {
                    entry.durable = Some(id);
                }
                Some(id)
            }
            None if create => {
                let id = self.new_inode(Vec::new());
                self.entries.entry(path.to_path_buf()).or_default().current = Some(id);
                Some(id)
            }
            None => None,
        }
    }

    fn new_inode(&mut self, durable: Vec<u8>) -> InodeId {
        self.inodes.push(Inode {
            durable,
            pending: Vec::new(),
        });
        self.inodes.len() - 1
    }

    pub(crate) fn write(&mut self, inode: InodeId, offset: u64, data: &[u8]) {
        if let Some(node) = self.inodes.get_mut(inode) {
            node.pending.push(Op::Write {
                offset,
                data: data.to_vec(),
            });
        }
    }

    pub(crate) fn truncate(&mut self, inode: InodeId, size: u64) {
        if let Some(node) = self.inodes.get_mut(inode) {
            node.pending.push(Op::Truncate { size });
        }
    }

    /// Makes the inode's held-back operations durable, except the last `keep_back` writes
    /// (0 for a correct sync; the broken variants keep some back).
    pub(crate) fn sync(&mut self, inode: InodeId, keep_back: usize) {
        let Some(node) = self.inodes.get_mut(inode) else {
            return;
        };
        let mut held = Vec::new();
        let mut to_hold = keep_back;
        while to_hold > 0 {
            match node.pending.last() {
                Some(Op::Write { .. }) => {
                    if let Some(op) = node.pending.pop() {
                        held.push(op);
                    }
                    to_hold -= 1;
                }
                _ => break,
            }
        }
        for op in std::mem::take(&mut node.pending) {
            apply(&mut node.durable, &op);
        }
        held.reverse();
        node.pending = held;
    }

    /// The path no longer names a file.
    pub(crate) fn delete(&mut self, path: &Path) {
        if let Some(entry) = self.entries.get_mut(path) {
            entry.current = None;
        }
    }

    /// Makes every entry of `directory` durable.
    pub(crate) fn sync_directory(&mut self, directory: &Path) {
        for (path, entry) in &mut self.entries {
            if path.parent() == Some(directory) {
                entry.durable = entry.current;
            }
        }
    }

    /// Every file that exists now, with its held-back operations and whether its directory
    /// entry is durable.
    pub(crate) fn held_back(&self) -> Vec<HeldBack> {
        self.entries
            .iter()
            .filter_map(|(path, entry)| {
                let id = entry.current?;
                Some(HeldBack {
                    path: path.clone(),
                    operations: self.inodes.get(id).map_or(0, |node| node.pending.len()),
                    entry_durable: entry.durable == entry.current,
                })
            })
            .collect()
    }

    /// Held-back operations of the file `path` names now (for tests of the model).
    #[cfg(test)]
    pub(crate) fn pending(&self, path: &Path) -> usize {
        self.entries
            .get(path)
            .and_then(|e| e.current)
            .and_then(|id| self.inodes.get(id))
            .map_or(0, |node| node.pending.len())
    }

    /// Every file after a power loss now, with the decisions taken.
    pub(crate) fn power_loss(
        &self,
        rng: &mut impl Rng,
        policy: LossPolicy,
    ) -> (Vec<CrashedFile>, Vec<Decision>) {
        let mut decisions = Vec::new();
        // Each inode's content once, whichever names survive.
        let mut crashed: BTreeMap<InodeId, Vec<u8>> = BTreeMap::new();
        let mut files = Vec::new();
        for (path, entry) in &self.entries {
            let survivor = if entry.current == entry.durable {
                entry.current
            } else {
                let keep_new = rng.gen_bool(0.5);
                let what = match (entry.durable, entry.current) {
                    (None, Some(_)) => "created",
                    (Some(_), None) => "deleted",
                    _ => "replaced",
                };
                decisions.push(Decision {
                    path: path.clone(),
                    what: what.to_owned(),
                    fate: if keep_new { Fate::Whole } else { Fate::Dropped },
                });
                if keep_new {
                    entry.current
                } else {
                    entry.durable
                }
            };
            let after_power_loss = match survivor {
                None => None,
                Some(id) => {
                    if let Some(content) = crashed.get(&id) {
                        Some(content.clone())
                    } else {
                        let content = self.crash_inode(id, path, rng, policy, &mut decisions);
                        crashed.insert(id, content.clone());
                        Some(content)
                    }
                }
            };
            let all_written = entry.current.map(|id| self.all_written(id));
            files.push(CrashedFile {
                path: path.clone(),
                after_power_loss,
                all_written,
            });
        }
        (files, decisions)
    }

    fn all_written(&self, id: InodeId) -> Vec<u8> {
        let Some(node) = self.inodes.get(id) else {
            return Vec::new();
        };
        let mut content = node.durable.clone();
        for op in &node.pending {
            apply(&mut content, op);
        }
        content
    }

    fn crash_inode(
        &self,
        id: InodeId,
        path: &Path,
        rng: &mut impl Rng,
        policy: LossPolicy,
        decisions: &mut Vec<Decision>,
    ) -> Vec<u8> {
        let Some(node) = self.inodes.get(id) else {
            return Vec::new();
        };
        let mut content = node.durable.clone();
        for op in &node.pending {
            let (what, fate) = match op {
                Op::Truncate { size } => {
                    let fate = if rng.gen_bool(policy.keep) {
                        apply(&mut content, op);
                        Fate::Whole
                    } else {
                        Fate::Dropped
                    };
                    (format!("truncate to {size}"), fate)
                }
                Op::Write { offset, data } => {
                    let what = format!("write {offset}+{}", data.len());
                    if rng.gen_bool(policy.keep) {
                        apply(&mut content, op);
                        (what, Fate::Whole)
                    } else if rng.gen_bool(0.5) {
                        (what, Fate::Dropped)
                    } else {
                        let written = tear(&mut content, *offset, data, rng);
                        (what, Fate::Torn(written))
                    }
                }
            };
            decisions.push(Decision {
                path: path.to_path_buf(),
                what,
                fate,
            });
        }
        content
    }
}

/// Applies one operation to a file's content (a write past the end fills the gap with zeros,
/// as a hole reads).
fn apply(content: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => write_at(content, *offset, data),
        Op::Truncate { size } => content.resize(to_usize(*size), 0),
    }
}

fn write_at(content: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_usize(offset);
    let end = start.saturating_add(data.len());
    if content.len() < end {
        content.resize(end, 0);
    }
    if let Some(target) = content.get_mut(start..end) {
        target.copy_from_slice(data);
    }
}

/// Writes each aligned sector the write covers with probability 1/2; returns the sectors
/// written.
fn tear(content: &mut Vec<u8>, offset: u64, data: &[u8], rng: &mut impl Rng) -> Vec<u64> {
    let mut written = Vec::new();
    let end = offset.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
    let mut position = offset;
    while position < end {
        let sector = position / SECTOR;
        let piece_end = ((sector + 1) * SECTOR).min(end);
        if rng.gen_bool(0.5) {
            let from = to_usize(position - offset);
            let to = to_usize(piece_end - offset);
            if let Some(piece) = data.get(from..to) {
                write_at(content, position, piece);
                written.push(sector);
            }
        }
        position = piece_end;
    }
    written
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn file(files: &[CrashedFile], path: &str) -> Option<Vec<u8>> {
        files
            .iter()
            .find(|f| f.path == Path::new(path))
            .and_then(|f| f.after_power_loss.clone())
    }

    #[test]
    fn synced_writes_survive_and_unsynced_ones_are_lost_when_nothing_is_kept() {
        let mut model = Model::default();
        let dir = Path::new("/d");
        let id = model.open(Path::new("/d/a"), || None, true).unwrap();
        model.write(id, 0, b"hello");
        model.sync(id, 0);
        model.sync_directory(dir);
        model.write(id, 5, b" world");
        assert_eq!(model.pending(Path::new("/d/a")), 1);
        let (files, decisions) = model.power_loss(&mut rng(1), LossPolicy { keep: 0.0 });
        let content = file(&files, "/d/a").unwrap();
        // Dropped or torn: either way no byte of " world" survives whole.
        assert!(content.starts_with(b"hello"));
        assert_ne!(content, b"hello world");
        assert_eq!(decisions.len(), 1);
        assert_eq!(files[0].all_written.as_deref(), Some(&b"hello world"[..]));
        let (files, _) = model.power_loss(&mut rng(1), LossPolicy { keep: 1.0 });
        assert_eq!(file(&files, "/d/a").unwrap(), b"hello world");
    }

    #[test]
    fn a_torn_write_keeps_whole_sectors_only() {
        let mut model = Model::default();
        let id = model
            .open(Path::new("/d/a"), || Some(vec![0xaa; 2048]), false)
            .unwrap();
        // 1,500 bytes from offset 100: pieces [100,512), [512,1024), [1024,1536), [1536,1600).
        model.write(id, 100, &[0x55; 1500]);
        let mut torn_seen = false;
        for seed in 0..200 {
            let (files, decisions) = model.power_loss(&mut rng(seed), LossPolicy { keep: 0.0 });
            let content = file(&files, "/d/a").unwrap();
            assert_eq!(content.len(), 2048);
            assert!(content[..100].iter().all(|&b| b == 0xaa));
            assert!(content[1600..].iter().all(|&b| b == 0xaa));
            for (start, end) in [(100, 512), (512, 1024), (1024, 1536), (1536, 1600)] {
                let piece = &content[start..end];
                assert!(
                    piece.iter().all(|&b| b == 0x55) || piece.iter().all(|&b| b == 0xaa),
                    "a sector was written in part"
                );
            }
            if let Fate::Torn(sectors) = &decisions[0].fate {
                torn_seen = true;
                for s in 0..4u64 {
                    let start = usize::try_from((s * SECTOR).max(100)).unwrap();
                    assert_eq!(content[start] == 0x55, sectors.contains(&s));
                }
            }
        }
        assert!(torn_seen);
    }

    #[test]
    fn a_file_created_since_the_last_directory_sync_may_vanish() {
        let mut outcomes = (false, false);
        for seed in 0..64 {
            let mut model = Model::default();
            let id = model.open(Path::new("/d/new"), || None, true).unwrap();
            model.write(id, 0, b"data");
            model.sync(id, 0);
            let (files, _) = model.power_loss(&mut rng(seed), LossPolicy { keep: 1.0 });
            match file(&files, "/d/new") {
                Some(content) => {
                    assert_eq!(content, b"data");
                    outcomes.0 = true;
                }
                None => outcomes.1 = true,
            }
            model.sync_directory(Path::new("/d"));
            let (files, _) = model.power_loss(&mut rng(seed), LossPolicy { keep: 1.0 });
            assert_eq!(file(&files, "/d/new").unwrap(), b"data");
        }
        assert_eq!(outcomes, (true, true));
    }

    #[test]
    fn a_file_deleted_since_the_last_directory_sync_may_come_back_with_its_durable_content() {
        let mut back = false;
        for seed in 0..64 {
            let mut model = Model::default();
            let id = model
                .open(Path::new("/d/j"), || Some(b"old".to_vec()), true)
                .unwrap();
            model.write(id, 0, b"new");
            model.sync(id, 0);
            model.write(id, 0, b"xyz");
            model.delete(Path::new("/d/j"));
            let (files, _) = model.power_loss(&mut rng(seed), LossPolicy { keep: 0.0 });
            if let Some(content) = file(&files, "/d/j") {
                back = true;
                assert!(content == b"new" || content == b"xyz", "{content:?}");
            }
            assert_eq!(files[0].all_written, None);
            model.sync_directory(Path::new("/d"));
            let (files, _) = model.power_loss(&mut rng(seed), LossPolicy { keep: 1.0 });
            assert_eq!(file(&files, "/d/j"), None);
        }
        assert!(back);
    }

    #[test]
    fn a_flawed_sync_keeps_the_last_writes_back() {
        let mut model = Model::default();
        let id = model.open(Path::new("/d/w"), || None, true).unwrap();
        model.write(id, 0, b"aa");
        model.write(id, 2, b"bb");
        model.sync(id, 1);
        model.sync_directory(Path::new("/d"));
        assert_eq!(model.pending(Path::new("/d/w")), 1);
        let mut lost = false;
        for seed in 0..16 {
            let (files, _) = model.power_loss(&mut rng(seed), LossPolicy { keep: 0.0 });
            let content = file(&files, "/d/w").unwrap();
            assert!(content.starts_with(b"aa"));
            lost |= content == b"aa";
        }
        assert!(lost);
    }

    #[test]
    fn truncation_is_held_back_like_a_write() {
        let mut model = Model::default();
        let id = model
            .open(Path::new("/d/t"), || Some(vec![1; 100]), false)
            .unwrap();
        model.truncate(id, 10);
        let (files, _) = model.power_loss(&mut rng(0), LossPolicy { keep: 0.0 });
        assert_eq!(file(&files, "/d/t").unwrap().len(), 100);
        let (files, _) = model.power_loss(&mut rng(0), LossPolicy { keep: 1.0 });
        assert_eq!(file(&files, "/d/t").unwrap().len(), 10);
    }
}
