//! The SQLite side: a VFS that forwards every call to the default (unix) VFS and keeps the
//! [`Model`] up to date, and that loses power at the cut.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use libsqlite3_sys as ffi;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{HeldBack, InodeId, LossPolicy, Model};
use crate::{Crash, Flaw, VfsError};

/// The cut shared by every VFS instance of one workload: the calls that change a file
/// (`xWrite`, `xTruncate`, `xSync`, `xDelete`) are numbered from 0 across all of them, and call
/// number `cut_at` is the moment the power fails, on the instance that makes it.
#[derive(Debug)]
pub struct CutPlan {
    events: AtomicU64,
    cut_at: Option<u64>,
    fired: AtomicBool,
}

impl CutPlan {
    /// A plan cutting the power at call number `cut_at` (0-based), or never.
    pub fn new(cut_at: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            events: AtomicU64::new(0),
            cut_at,
            fired: AtomicBool::new(false),
        })
    }

    /// How many file-changing calls were made so far (with no cut, the length of the
    /// workload in cut points).
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::SeqCst)
    }

    /// The cut point, if any.
    pub fn cut_at(&self) -> Option<u64> {
        self.cut_at
    }

    /// Whether the power has failed (on any instance sharing the plan).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Numbers one call; true when it is the cut.
    fn next_is_cut(&self) -> bool {
        let n = self.events.fetch_add(1, Ordering::SeqCst);
        let cut = self.cut_at == Some(n);
        if cut {
            self.fired.store(true, Ordering::SeqCst);
        }
        cut
    }
}

/// One armed run of a VFS instance.
struct Run {
    plan: Arc<CutPlan>,
    seed: u64,
    flaw: Flaw,
}

/// Everything behind the VFS's lock.
struct State {
    model: Model,
    run: Option<Run>,
    crash: Option<Crash>,
    open_files: usize,
}

/// What `pAppData` points to.
pub(crate) struct Shared {
    /// The default VFS everything is forwarded to.
    real: *mut ffi::sqlite3_vfs,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot happen (no code here panics); a poisoned
        // lock still holds a consistent model.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The registration: the VFS struct SQLite keeps a pointer to, its name and its state. Boxed
/// and never moved.
pub(crate) struct Registered {
    vfs: ffi::sqlite3_vfs,
    name: CString,
    shared: Shared,
}

/// The outcome of numbering a file-changing call.
enum Gate {
    /// Perform the call.
    Go,
    /// The power is off: fail without touching the file.
    PowerOff,
}

impl State {
    /// Numbers a file-changing call; at the cut, takes the power-loss image. After the cut
    /// (this instance's), every call fails.
    fn gate(&mut self) -> Gate {
        if self.crash.is_some() {
            return Gate::PowerOff;
        }
        let Some(run) = &self.run else {
            return Gate::Go;
        };
        if !run.plan.next_is_cut() {
            return Gate::Go;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(run.seed);
        // A spread of severities: sometimes everything unsynced survives (like a process
        // crash), sometimes nothing does, mostly something in between.
        let keep = match rng.gen_range(0..8u8) {
            0 => 1.0,
            1 => 0.0,
            _ => rng.gen_range(0.0..1.0),
        };
        let policy = LossPolicy { keep };
        let (files, decisions) = self.model.power_loss(&mut rng, policy);
        self.crash = Some(Crash {
            event: run.plan.events().saturating_sub(1),
            seed: run.seed,
            policy,
            files,
            decisions,
        });
        Gate::PowerOff
    }

    fn powered_off(&self) -> bool {
        self.crash.is_some()
    }
}

/// Our `sqlite3_file`: SQLite's base struct first, then our fields, then (at `real`) the
/// default VFS's own file object, in the same allocation.
#[repr(C)]
struct CrashFile {
    base: ffi::sqlite3_file,
    shared: *const Shared,
    real: *mut ffi::sqlite3_file,
    /// The inode this handle writes (`None`: a temporary file the model does not track).
    inode: Option<InodeId>,
    path: Option<PathBuf>,
    is_wal: bool,
    /// The default VFS syncs the directory on the first sync of a journal or WAL it created
    /// (`UNIXFILE_DIRSYNC`, set in `unixOpen` when `SQLITE_OPEN_CREATE` is given for a main
    /// or super journal or a WAL); the model does the same.
    dirsync_on_first_sync: bool,
}

/// Offset of the real file object inside our allocation.
const REAL_OFFSET: usize = std::mem::size_of::<CrashFile>().next_multiple_of(16);

impl Registered {
    /// Registers a VFS named `name` over the default VFS.
    pub(crate) fn register(name: &str) -> Result<*mut Registered, VfsError> {
        let c_name = CString::new(name).map_err(|_| VfsError::InvalidName(name.to_owned()))?;
        // SAFETY: `sqlite3_vfs_find` takes a NUL-terminated name (`c_name` lives through the
        // call) and returns a pointer to a registered VFS or null.
        let existing = unsafe { ffi::sqlite3_vfs_find(c_name.as_ptr()) };
        if !existing.is_null() {
            return Err(VfsError::NameTaken(name.to_owned()));
        }
        // SAFETY: a null name asks for the default VFS; SQLite initializes itself first.
        let real = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
        if real.is_null() {
            return Err(VfsError::NoDefaultVfs);
        }
        // SAFETY: `real` is the default VFS, registered for the life of the process; we copy
        // its plain fields and function pointers.
        let template = unsafe { *real };
        let real_size = usize::try_from(template.szOsFile).unwrap_or(0);
        let size = c_int::try_from(REAL_OFFSET + real_size).map_err(|_| VfsError::NoDefaultVfs)?;
        let registered = Box::new(Registered {
            vfs: ffi::sqlite3_vfs {
                iVersion: template.iVersion,
                szOsFile: size,
                mxPathname: template.mxPathname,
                pNext: std::ptr::null_mut(),
                zName: std::ptr::null(),
                pAppData: std::ptr::null_mut(),
                xOpen: Some(x_open),
                xDelete: Some(x_delete),
                xAccess: Some(x_access),
                xFullPathname: Some(x_full_pathname),
                xDlOpen: None,
                xDlError: None,
                xDlSym: None,
                xDlClose: None,
                xRandomness: Some(x_randomness),
                xSleep: Some(x_sleep),
                xCurrentTime: Some(x_current_time),
                xGetLastError: Some(x_get_last_error),
                xCurrentTimeInt64: Some(x_current_time_int64),
                xSetSystemCall: None,
                xGetSystemCall: None,
                xNextSystemCall: None,
            },
            name: c_name,
            shared: Shared {
                real,
                state: Mutex::new(State {
                    model: Model::default(),
                    run: None,
                    crash: None,
                    open_files: 0,
                }),
            },
        });
        let raw = Box::into_raw(registered);
        // SAFETY: `raw` comes from `Box::into_raw` just above: valid, aligned, uniquely ours.
        let this = unsafe { &mut *raw };
        this.vfs.zName = this.name.as_ptr();
        this.vfs.pAppData = std::ptr::from_ref(&this.shared).cast_mut().cast();
        // SAFETY: the VFS struct and everything it points to (name, state) live in the leaked
        // box until `unregister` (which frees it only once no file is open).
        let rc = unsafe { ffi::sqlite3_vfs_register(&mut this.vfs, 0) };
        if rc != ffi::SQLITE_OK {
            // SAFETY: not registered, so nothing else points at the box.
            drop(unsafe { Box::from_raw(raw) });
            return Err(VfsError::Register(rc));
        }
        Ok(raw)
    }

    /// Unregisters and frees the registration (leaked instead if a file is still open, since
    /// SQLite would call into it on close).
    ///
    /// # Safety
    /// `raw` comes from [`Registered::register`] and is not used afterwards.
    pub(crate) unsafe fn unregister(raw: *mut Registered) {
        // SAFETY: per the contract, `raw` is a live registration.
        let this = unsafe { &mut *raw };
        // SAFETY: `this.vfs` is the struct we registered.
        unsafe { ffi::sqlite3_vfs_unregister(&mut this.vfs) };
        if this.shared.lock().open_files == 0 {
            // SAFETY: unregistered and no file open: SQLite holds no pointer into the box.
            drop(unsafe { Box::from_raw(raw) });
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.name.to_str().unwrap_or("")
    }

    /// Starts a run: forgets every file, numbers calls in `plan`.
    pub(crate) fn arm(&self, plan: &Arc<CutPlan>, seed: u64, flaw: Flaw) {
        let mut state = self.shared.lock();
        state.model = Model::default();
        state.crash = None;
        state.run = Some(Run {
            plan: Arc::clone(plan),
            seed,
            flaw,
        });
    }

    /// Ends the run; returns the power-loss image if this instance lost power.
    pub(crate) fn disarm(&self) -> Option<Crash> {
        let mut state = self.shared.lock();
        state.run = None;
        state.model = Model::default();
        state.crash.take()
    }

    pub(crate) fn crash(&self) -> Option<Crash> {
        self.shared.lock().crash.clone()
    }

    pub(crate) fn held_back(&self) -> Vec<HeldBack> {
        self.shared.lock().model.held_back()
    }

    pub(crate) fn open_files(&self) -> usize {
        self.shared.lock().open_files
    }
}

/// The shared state of the VFS `vfs`.
///
/// # Safety
/// `vfs` is one of our registered VFS structs.
unsafe fn shared_of<'a>(vfs: *mut ffi::sqlite3_vfs) -> &'a Shared {
    // SAFETY: per the contract, `pAppData` points to the `Shared` of a live registration.
    unsafe { &*((*vfs).pAppData as *const Shared) }
}

/// Our file struct behind a `sqlite3_file` pointer SQLite hands us.
///
/// # Safety
/// `file` was opened by [`x_open`] and not closed yet.
unsafe fn crash_file<'a>(file: *mut ffi::sqlite3_file) -> &'a mut CrashFile {
    // SAFETY: per the contract, `file` is the start of a `CrashFile` we initialised.
    unsafe { &mut *file.cast::<CrashFile>() }
}

/// The real file's methods.
///
/// # Safety
/// `real` is an open file of the default VFS.
unsafe fn real_methods<'a>(real: *mut ffi::sqlite3_file) -> &'a ffi::sqlite3_io_methods {
    // SAFETY: per the contract, `pMethods` of an open file points to the VFS's static table.
    unsafe { &*(*real).pMethods }
}

/// Path of a name SQLite passes (`None` for a temporary file without a name).
///
/// # Safety
/// `name` is null or a NUL-terminated string.
unsafe fn path_of(name: *const c_char) -> Option<PathBuf> {
    if name.is_null() {
        return None;
    }
    // SAFETY: per the contract, non-null `name` is NUL-terminated (SQLite's database names
    // carry URI parameters after the first NUL; the path ends there).
    let text = unsafe { CStr::from_ptr(name) };
    text.to_str().ok().map(PathBuf::from)
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

const TRACKED: c_int = ffi::SQLITE_OPEN_MAIN_DB
    | ffi::SQLITE_OPEN_MAIN_JOURNAL
    | ffi::SQLITE_OPEN_SUPER_JOURNAL
    | ffi::SQLITE_OPEN_WAL;
const DIRSYNC_TYPES: c_int =
    ffi::SQLITE_OPEN_MAIN_JOURNAL | ffi::SQLITE_OPEN_SUPER_JOURNAL | ffi::SQLITE_OPEN_WAL;

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite calls xOpen with our VFS.
    let shared = unsafe { shared_of(vfs) };
    // SAFETY: `file` points to `szOsFile` bytes for us to fill; nothing is there yet.
    let real = unsafe { file.cast::<u8>().add(REAL_OFFSET) }.cast::<ffi::sqlite3_file>();
    // SAFETY: `file` is valid for writes of our base struct; a null `pMethods` tells SQLite
    // there is nothing to close should we fail.
    unsafe { (*file).pMethods = std::ptr::null() };
    let mut state = shared.lock();
    if state.powered_off() {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: `name` is null or NUL-terminated, as SQLite passes it.
    let path = unsafe { path_of(name) }.filter(|_| flags & TRACKED != 0);
    let existed = path.as_ref().map(|p| std::fs::metadata(p).is_ok());
    // SAFETY: `shared.real` is the default VFS; `real` is `szOsFile` bytes of the default VFS
    // inside our allocation; `name`, `flags` and `out_flags` are SQLite's own.
    let rc = unsafe {
        match (*shared.real).xOpen {
            Some(open) => open(shared.real, name, real, flags, out_flags),
            None => ffi::SQLITE_CANTOPEN,
        }
    };
    if rc != ffi::SQLITE_OK {
        // SAFETY: on failure the default VFS may still have set `pMethods`; if so its file
        // must be closed.
        unsafe {
            if !(*real).pMethods.is_null()
                && let Some(close) = real_methods(real).xClose
            {
                close(real);
            }
        }
        return rc;
    }
    let create = flags & ffi::SQLITE_OPEN_CREATE != 0;
    let inode = match (&path, existed) {
        (Some(p), Some(existed)) => {
            let read_existing = || {
                if existed { std::fs::read(p).ok() } else { None }
            };
            state.model.open(p, read_existing, create)
        }
        _ => None,
    };
    let is_wal = flags & ffi::SQLITE_OPEN_WAL != 0;
    let dirsync_on_first_sync = create && flags & DIRSYNC_TYPES != 0;
    // SAFETY: `file` has room for a `CrashFile` before `REAL_OFFSET` (szOsFile says so) and
    // is suitably aligned (SQLite allocates it 8-byte aligned and our fields need no more).
    unsafe {
        file.cast::<CrashFile>().write(CrashFile {
            base: ffi::sqlite3_file { pMethods: &METHODS },
            shared,
            real,
            inode,
            path,
            is_wal,
            dirsync_on_first_sync,
        });
    }
    state.open_files += 1;
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    // SAFETY: SQLite calls xDelete with our VFS.
    let shared = unsafe { shared_of(vfs) };
    let mut state = shared.lock();
    if let Gate::PowerOff = state.gate() {
        return ffi::SQLITE_IOERR_DELETE;
    }
    // SAFETY: forwarding SQLite's own arguments to the default VFS.
    let rc = unsafe {
        match (*shared.real).xDelete {
            Some(delete) => delete(shared.real, name, sync_dir),
            None => ffi::SQLITE_IOERR_DELETE,
        }
    };
    if rc == ffi::SQLITE_OK {
        // SAFETY: `name` is NUL-terminated, as SQLite passes it.
        if let Some(path) = unsafe { path_of(name) } {
            state.model.delete(&path);
            if sync_dir & 1 != 0 {
                state.model.sync_directory(&parent_of(&path));
            }
        }
    }
    rc
}

unsafe extern "C" fn x_access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    // SAFETY: SQLite calls xAccess with our VFS.
    let shared = unsafe { shared_of(vfs) };
    if shared.lock().powered_off() {
        return ffi::SQLITE_IOERR_ACCESS;
    }
    // SAFETY: forwarding SQLite's own arguments to the default VFS.
    unsafe {
        match (*shared.real).xAccess {
            Some(access) => access(shared.real, name, flags, out),
            None => ffi::SQLITE_IOERR_ACCESS,
        }
    }
}

unsafe extern "C" fn x_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: SQLite calls this with our VFS.
    let shared = unsafe { shared_of(vfs) };
    // SAFETY: forwarding SQLite's own arguments to the default VFS.
    unsafe {
        match (*shared.real).xFullPathname {
            Some(full) => full(shared.real, name, n_out, out),
            None => ffi::SQLITE_ERROR,
        }
    }
}

unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // SAFETY: SQLite calls this with our VFS.
    let shared = unsafe { shared_of(vfs) };
    // SAFETY: forwarding SQLite's own arguments to the default VFS.
    unsafe {
        match (*shared.real).xRandomness {
            Some(randomness) => randomness(shared.real, n, out),
            None => 0,
        }
    }
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, microseconds: c_int) -> c_int {
    // SAFETY: SQLite calls this with our VFS.
    let shared = unsafe { shared_of(vfs) };
    // SAFETY: forwarding SQLite's own arguments to the default VFS.
    unsafe {
        match (*shared.real).xSleep {
            Some(sleep) => sleep(shared.real, microseconds),
            None => 0,
        }
    }
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: SQLite calls this with our VFS.
    let shared = unsafe { shared_of(vfs) };
    // SAFETY: forwarding SQLite's own arguments to the default VFS.
    unsafe {
        match (*shared.real).xCurrentTime {
            Some(time) => time(shared.real, out),
            None => ffi::SQLITE_ERROR,
        }
    }
}

unsafe extern "C" fn x_current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    // SAFETY: SQLite calls this with our VFS.
    let shared = unsafe { shared_of(vfs) };
    // SAFETY: forwarding SQLite's own arguments to the default VFS.
    unsafe {
        match (*shared.real).xCurrentTimeInt64 {
            Some(time) => time(shared.real, out),
            None => ffi::SQLITE_ERROR,
        }
    }
}

unsafe extern "C" fn x_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: SQLite calls this with our VFS.
    let shared = unsafe { shared_of(vfs) };
    // SAFETY: forwarding SQLite's own arguments to the default VFS.
    unsafe {
        match (*shared.real).xGetLastError {
            Some(last) => last(shared.real, n, out),
            None => 0,
        }
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(f_close),
    xRead: Some(f_read),
    xWrite: Some(f_write),
    xTruncate: Some(f_truncate),
    xSync: Some(f_sync),
    xFileSize: Some(f_file_size),
    xLock: Some(f_lock),
    xUnlock: Some(f_unlock),
    xCheckReservedLock: Some(f_check_reserved_lock),
    xFileControl: Some(f_file_control),
    xSectorSize: Some(f_sector_size),
    xDeviceCharacteristics: Some(f_device_characteristics),
    xShmMap: Some(f_shm_map),
    xShmLock: Some(f_shm_lock),
    xShmBarrier: Some(f_shm_barrier),
    xShmUnmap: Some(f_shm_unmap),
    xFetch: Some(f_fetch),
    xUnfetch: Some(f_unfetch),
};

/// Forwards a call to the real file's method `$method`, or returns `$missing` when the default
/// VFS does not implement it.
macro_rules! forward {
    ($file:expr, $method:ident, $missing:expr $(, $arg:expr)*) => {{
        let real = $file.real;
        // SAFETY: `real` is the default VFS's open file inside our allocation; the arguments
        // are SQLite's own, forwarded unchanged.
        unsafe {
            match real_methods(real).$method {
                Some(method) => method(real $(, $arg)*),
                None => $missing,
            }
        }
    }};
}

unsafe extern "C" fn f_close(file: *mut ffi::sqlite3_file) -> c_int {
    let (rc, shared) = {
        // SAFETY: SQLite closes a file we opened, once.
        let this = unsafe { crash_file(file) };
        // Always forwarded, even with the power off: the descriptor and locks must be
        // released.
        (forward!(this, xClose, ffi::SQLITE_OK), this.shared)
    };
    {
        // SAFETY: `shared` outlives every open file (the registration is leaked while files
        // are open).
        let mut state = unsafe { &*shared }.lock();
        state.open_files = state.open_files.saturating_sub(1);
    }
    // SAFETY: our fields were initialised in `x_open` and are dropped exactly once, here;
    // SQLite frees the memory itself.
    unsafe { std::ptr::drop_in_place(file.cast::<CrashFile>()) };
    rc
}

unsafe extern "C" fn f_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    // SAFETY: `shared` outlives every open file.
    if unsafe { &*this.shared }.lock().powered_off() {
        return ffi::SQLITE_IOERR_READ;
    }
    forward!(this, xRead, ffi::SQLITE_IOERR_READ, buf, amount, offset)
}

unsafe extern "C" fn f_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    // SAFETY: `shared` outlives every open file.
    let shared = unsafe { &*this.shared };
    let mut state = shared.lock();
    if let Gate::PowerOff = state.gate() {
        return ffi::SQLITE_IOERR_WRITE;
    }
    let rc = forward!(this, xWrite, ffi::SQLITE_IOERR_WRITE, buf, amount, offset);
    if rc == ffi::SQLITE_OK
        && let Some(inode) = this.inode
    {
        let len = usize::try_from(amount).unwrap_or(0);
        // SAFETY: SQLite passes `amount` readable bytes at `buf`.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        state
            .model
            .write(inode, u64::try_from(offset).unwrap_or(0), data);
    }
    rc
}

unsafe extern "C" fn f_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    // SAFETY: `shared` outlives every open file.
    let shared = unsafe { &*this.shared };
    let mut state = shared.lock();
    if let Gate::PowerOff = state.gate() {
        return ffi::SQLITE_IOERR_TRUNCATE;
    }
    let rc = forward!(this, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size);
    if rc == ffi::SQLITE_OK
        && let Some(inode) = this.inode
    {
        state
            .model
            .truncate(inode, u64::try_from(size).unwrap_or(0));
    }
    rc
}

unsafe extern "C" fn f_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    // SAFETY: `shared` outlives every open file.
    let shared = unsafe { &*this.shared };
    let mut state = shared.lock();
    if let Gate::PowerOff = state.gate() {
        return ffi::SQLITE_IOERR_FSYNC;
    }
    let rc = forward!(this, xSync, ffi::SQLITE_IOERR_FSYNC, flags);
    if rc == ffi::SQLITE_OK {
        let flaw = state.run.as_ref().map_or(Flaw::None, |run| run.flaw);
        if let Some(inode) = this.inode {
            match (flaw, this.is_wal) {
                (Flaw::WalSyncIgnored, true) => {}
                (Flaw::CommitWriteAfterWalSync, true) => state.model.sync(inode, 1),
                _ => state.model.sync(inode, 0),
            }
        }
        if this.dirsync_on_first_sync {
            this.dirsync_on_first_sync = false;
            if let Some(path) = &this.path {
                state.model.sync_directory(&parent_of(path));
            }
        }
    }
    rc
}

unsafe extern "C" fn f_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    // SAFETY: `shared` outlives every open file.
    if unsafe { &*this.shared }.lock().powered_off() {
        return ffi::SQLITE_IOERR_FSTAT;
    }
    forward!(this, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn f_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    // SAFETY: `shared` outlives every open file.
    if unsafe { &*this.shared }.lock().powered_off() {
        return ffi::SQLITE_IOERR_LOCK;
    }
    forward!(this, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn f_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    // Always forwarded: releasing locks is how a dead connection gets out of the way.
    forward!(this, xUnlock, ffi::SQLITE_OK, level)
}

unsafe extern "C" fn f_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(
        this,
        xCheckReservedLock,
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
        out
    )
}

unsafe extern "C" fn f_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(this, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

unsafe extern "C" fn f_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(this, xSectorSize, 4096)
}

unsafe extern "C" fn f_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(this, xDeviceCharacteristics, 0)
}

unsafe extern "C" fn f_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(
        this,
        xShmMap,
        ffi::SQLITE_IOERR_SHMMAP,
        page,
        page_size,
        extend,
        out
    )
}

unsafe extern "C" fn f_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(this, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
}

unsafe extern "C" fn f_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(this, xShmBarrier, ())
}

unsafe extern "C" fn f_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(this, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn f_fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    // SAFETY: `shared` outlives every open file.
    if unsafe { &*this.shared }.lock().powered_off() {
        return ffi::SQLITE_IOERR_READ;
    }
    // SAFETY: `real` is the default VFS's open file; without memory mapping (`xFetch`
    // missing) the answer is "no mapping", a null pointer in SQLite's `out`.
    unsafe {
        match real_methods(this.real).xFetch {
            Some(fetch) => fetch(this.real, offset, amount, out),
            None => {
                *out = std::ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}

unsafe extern "C" fn f_unfetch(file: *mut ffi::sqlite3_file, offset: i64, p: *mut c_void) -> c_int {
    // SAFETY: SQLite calls this on a file we opened.
    let this = unsafe { crash_file(file) };
    forward!(this, xUnfetch, ffi::SQLITE_OK, offset, p)
}
