//! Giving up privileges once the server has started (`[server] user`, `drop-capabilities`).
//!
//! Everything that needs a capability happens inside `Server::start`: binding ports below
//! 1024, opening the `AF_PACKET` socket, loading and attaching the XDP program. What the
//! server does afterwards — `recvmmsg`/`sendmmsg` on bound sockets, sends on the open
//! `AF_PACKET` socket, the `AF_XDP` rings, WAL writes, rotation and compaction in its own data
//! directory, closing the BPF link fds at shutdown (which detaches the program) — needs none.
//!
//! Order in `twinlease run`:
//!
//! 1. [`resolve_user`] and [`check_data_dir`] before the start: a data directory (or any file
//!    below it) the user could not write refuses the start, naming the path. Nothing is
//!    chowned.
//! 2. [`create_as`] before the start: the calling thread's file-system uid/gid become the
//!    user's, so the shard directories and segments `Server::start` creates belong to the
//!    user (its network capabilities are untouched by `setfsuid`).
//! 3. [`drop_privileges`] after the start: `setgroups([])`, `setgid`, `setuid` (glibc applies
//!    each to every thread of the process), with `PR_SET_KEEPCAPS` off, so the change from
//!    root to a non-zero uid clears the permitted, effective and ambient capabilities of
//!    every thread; then, with `drop-capabilities`, the calling thread clears all its sets
//!    (`capset`), the ambient set, and sets `PR_SET_NO_NEW_PRIVS`.
//!
//! Capabilities and `no_new_privs` are per thread on Linux and the worker threads are already
//! running: without `user`, `drop-capabilities` only reaches the main thread. [`Dropped`]
//! reports, from `/proc/self/task`, the threads that still hold capabilities, and `run` logs
//! them. Run the packaged unit with its own `User=` (its bounding set then limits them) or set
//! `user` to clear every thread.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Why privileges could not be given up.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `getpwnam` found no such user.
    #[error("server.user: no user `{0}` (getpwnam)")]
    NoUser(String),
    /// `getpwnam` failed.
    #[error("server.user: looking up `{name}`: {source}")]
    Lookup {
        /// The user.
        name: String,
        /// The error.
        source: std::io::Error,
    },
    /// The data directory is unusable for the user.
    #[error(
        "server.data-dir: {path} {reason} for user `{user}` (uid {uid}, gid {gid}); \
         make the data directory and everything below it belong to that user"
    )]
    DataDir {
        /// The offending path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// The user.
        user: String,
        /// Its uid.
        uid: u32,
        /// Its gid.
        gid: u32,
    },
    /// A system call failed.
    #[error("{call}: {source}")]
    Sys {
        /// The call.
        call: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The switch did not take (e.g. root could be regained).
    #[error("privilege drop did not take: {0}")]
    NotDropped(String),
}

/// A resolved `[server] user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

fn sys(call: &'static str) -> PrivilegeError {
    PrivilegeError::Sys {
        call,
        source: std::io::Error::last_os_error(),
    }
}

/// Resolve a user name with `getpwnam_r`.
///
/// # Errors
/// No such user, or the lookup failed.
pub fn resolve_user(name: &str) -> Result<Account, PrivilegeError> {
    let c = CString::new(name).map_err(|_| PrivilegeError::NoUser(name.to_owned()))?;
    let mut buf = vec![0u8; 16 * 1024];
    // Safety: passwd is plain data, filled in by getpwnam_r.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // Safety: valid C string, out-structure, buffer of the given length and out-pointer.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &raw mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &raw mut out,
        )
    };
    if rc != 0 {
        return Err(PrivilegeError::Lookup {
            name: name.to_owned(),
            source: std::io::Error::from_raw_os_error(rc),
        });
    }
    if out.is_null() {
        return Err(PrivilegeError::NoUser(name.to_owned()));
    }
    Ok(Account {
        name: name.to_owned(),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
    })
}

/// Whether `user` has all permission `bits` (r=4, w=2, x=1) on a file of `meta`, by owner
/// and mode alone (no supplementary groups: they are cleared).
fn allows(meta: &std::fs::Metadata, user: &Account, bits: u32) -> bool {
    let mode = meta.mode();
    let granted = if meta.uid() == user.uid {
        (mode >> 6) & 7
    } else if meta.gid() == user.gid {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    granted & bits == bits
}

/// Refuse a data directory `user` could not use after the drop: every ancestor must be
/// searchable, the directory and every directory below it writable and searchable, every file
/// below it readable and writable.
///
/// # Errors
/// The first offending path, with the reason.
pub fn check_data_dir(dir: &Path, user: &Account) -> Result<(), PrivilegeError> {
    let bad = |path: &Path, reason: &str| PrivilegeError::DataDir {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
        user: user.name.clone(),
        uid: user.uid,
        gid: user.gid,
    };
    let abs = std::path::absolute(dir).map_err(|_| bad(dir, "cannot be resolved"))?;
    for anc in abs.ancestors().skip(1) {
        let meta = std::fs::metadata(anc).map_err(|_| bad(anc, "cannot be read"))?;
        if !allows(&meta, user, 1) {
            return Err(bad(anc, "is not searchable (x)"));
        }
    }
    let meta = std::fs::metadata(&abs).map_err(|_| {
        bad(
            &abs,
            "does not exist (it is not created as root: create it owned by the user)",
        )
    })?;
    walk(&abs, &meta, user, &bad)
}

fn walk(
    path: &Path,
    meta: &std::fs::Metadata,
    user: &Account,
    bad: &dyn Fn(&Path, &str) -> PrivilegeError,
) -> Result<(), PrivilegeError> {
    if meta.is_dir() {
        if !allows(meta, user, 7) {
            return Err(bad(path, "is not readable, writable and searchable (rwx)"));
        }
        let rd = std::fs::read_dir(path).map_err(|_| bad(path, "cannot be listed"))?;
        for entry in rd {
            let entry = entry.map_err(|_| bad(path, "cannot be listed"))?;
            let p = entry.path();
            let m = std::fs::symlink_metadata(&p).map_err(|_| bad(&p, "cannot be read"))?;
            walk(&p, &m, user, bad)?;
        }
    } else if meta.is_file() && !allows(meta, user, 6) {
        return Err(bad(path, "is not readable and writable (rw)"));
    }
    Ok(())
}

/// Make files the calling thread creates from now on belong to `user` (`setfsuid`,
/// `setfsgid`); threads it spawns inherit this. The network capabilities stay.
///
/// # Errors
/// The change did not take.
pub fn create_as(user: &Account) -> Result<(), PrivilegeError> {
    // Safety: setfsgid/setfsuid only change the calling thread's credentials; -1 (an
    // invalid id) only queries the current value.
    let (gid, uid) = unsafe {
        libc::setfsgid(user.gid);
        libc::setfsuid(user.uid);
        (libc::setfsgid(u32::MAX), libc::setfsuid(u32::MAX))
    };
    if u32::try_from(gid).ok() != Some(user.gid) || u32::try_from(uid).ok() != Some(user.uid) {
        return Err(PrivilegeError::NotDropped(format!(
            "setfsuid/setfsgid to {}:{} left {uid}:{gid}",
            user.uid, user.gid
        )));
    }
    Ok(())
}

/// `_LINUX_CAPABILITY_VERSION_3`.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What [`drop_privileges`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The uid now in effect.
    pub uid: u32,
    /// The gid now in effect.
    pub gid: u32,
    /// Threads (tid, `CapEff` in hex) that still hold effective or permitted capabilities.
    pub threads_with_caps: Vec<(u32, String)>,
}

/// Switch to `user` (all threads) and, with `drop_caps`, clear the calling thread's
/// capabilities and set `no_new_privs`.
///
/// # Errors
/// A system call failed, or the result was checked and privileges remained.
pub fn drop_privileges(user: Option<&Account>, drop_caps: bool) -> Result<Dropped, PrivilegeError> {
    if drop_caps {
        // Safety: prctl with integer arguments only.
        if unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        } != 0
        {
            return Err(sys("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
        }
    }
    if let Some(u) = user {
        switch_user(u)?;
    }
    if drop_caps {
        let mut hdr = CapHeader {
            version: CAP_VERSION_3,
            pid: 0,
        };
        let data = [CapData::default(); 2];
        // Safety: header and two data structs as capset(2) takes for version 3.
        if unsafe { libc::syscall(libc::SYS_capset, &raw mut hdr, data.as_ptr()) } != 0 {
            return Err(sys("capset"));
        }
        // Safety: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(sys("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
    }
    // Safety: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Ok(Dropped {
        uid,
        gid,
        threads_with_caps: threads_with_caps(),
    })
}

fn switch_user(u: &Account) -> Result<(), PrivilegeError> {
    // Safety: the id getters cannot fail.
    let already = unsafe {
        libc::getuid() == u.uid
            && libc::geteuid() == u.uid
            && libc::getgid() == u.gid
            && libc::getegid() == u.gid
    };
    if already && u.uid != 0 {
        tracing::info!(user = %u.name, "already running as the configured user");
        return Ok(());
    }
    // Safety: prctl and the set*id wrappers take integers / a null list of length 0; glibc
    // applies setgroups/setgid/setuid to every thread of the process.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0 {
            return Err(sys("prctl(PR_SET_KEEPCAPS, 0)"));
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(sys("setgroups([])"));
        }
        if libc::setgid(u.gid) != 0 {
            return Err(sys("setgid"));
        }
        if libc::setuid(u.uid) != 0 {
            return Err(sys("setuid"));
        }
    }
    // Safety: the id getters cannot fail; setuid(0) is expected to fail and changes nothing
    // when it does.
    let (ruid, euid, regained) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            u.uid != 0 && libc::setuid(0) == 0,
        )
    };
    if ruid != u.uid || euid != u.uid || regained {
        return Err(PrivilegeError::NotDropped(format!(
            "uid {ruid}/{euid} after setuid({}), root regained: {regained}",
            u.uid
        )));
    }
    Ok(())
}

/// Threads of this process (tid, `CapEff` in hex) that still hold effective or permitted
/// capabilities, from `/proc/self/task/*/status`.
#[must_use]
pub fn threads_with_caps() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let (eff, prm) = (field("CapEff:"), field("CapPrm:"));
        if u64::from_str_radix(&eff, 16).unwrap_or(1) != 0
            || u64::from_str_radix(&prm, 16).unwrap_or(1) != 0
        {
            out.push((tid, eff));
        }
    }
    out.sort_unstable();
    out
}

/// Whether threads the server starts drop their own capabilities as they begin (set by
/// [`drop_in_new_threads`]). Capabilities are per thread on Linux: when no `user` is
/// configured there is no setuid to clear them in every thread at once, so each long-lived
/// thread (receive loops, queue loops, workers, compaction, control) clears its own.
static DROP_IN_THREADS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Make every thread started from now on clear its capabilities first
/// ([`thread_start`]). Only for the case without `user`: with a user, the uid change clears
/// them in all threads, and a thread without `CAP_SETUID` would make glibc's setuid broadcast
/// fail.
pub fn drop_in_new_threads(on: bool) {
    DROP_IN_THREADS.store(on, std::sync::atomic::Ordering::Release);
}

/// Called first by each long-lived server thread: clears the calling thread's capability
/// sets and sets `no_new_privs` when [`drop_in_new_threads`] asked for it. Nothing such a
/// thread does needs a capability: its sockets are open and its files are its own.
pub fn thread_start() {
    if !DROP_IN_THREADS.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // Safety: header and two data structs as capset(2) takes for version 3; affects only
    // the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut hdr, data.as_ptr()) };
    // Safety: prctl with integer arguments only.
    let rc2 = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 || rc2 != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "a thread could not drop its capabilities");
    }
}
