//! The shard directory: file names, listing, directory fsync and the advisory locks.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::WalError;

/// Name of the lock held by the only writer of a shard.
const WRITER_LOCK: &str = "LOCK";
/// Name of the lock held while compacting or recovering a shard.
const COMPACT_LOCK: &str = "COMPACT.lock";
/// Suffix of files being written that are not yet durable (snapshot, spare segment).
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// `<data_dir>/shard-<w>`.
pub(crate) fn shard_dir(data_dir: &Path, shard: u32) -> PathBuf {
    data_dir.join(format!("shard-{shard}"))
}

/// `wal-<seq:016x>.seg`.
pub(crate) fn segment_name(seq: u64) -> String {
    format!("wal-{seq:016x}.seg")
}

/// `snap-<seq:016x>.snap`: the snapshot covering every segment with a sequence below `seq`.
pub(crate) fn snapshot_name(seq: u64) -> String {
    format!("snap-{seq:016x}.snap")
}

fn parse_seq(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let hex = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// What a shard directory holds, each list sorted by sequence.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Segment files `(seq, path)`.
    pub(crate) segments: Vec<(u64, PathBuf)>,
    /// Snapshot files `(seq, path)`.
    pub(crate) snapshots: Vec<(u64, PathBuf)>,
    /// Leftover temporary files of an interrupted compaction or segment creation.
    pub(crate) temps: Vec<PathBuf>,
}

/// List the segment, snapshot and temporary files of `dir`; other names are ignored.
pub(crate) fn list(dir: &Path) -> Result<Listing, WalError> {
    let err = |source| WalError::Io {
        op: "list directory",
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Listing::default();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse_seq(name, "wal-", ".seg") {
            out.segments.push((seq, entry.path()));
        } else if let Some(seq) = parse_seq(name, "snap-", ".snap") {
            out.snapshots.push((seq, entry.path()));
        } else if name.ends_with(TMP_SUFFIX) {
            out.temps.push(entry.path());
        }
    }
    out.segments.sort_unstable();
    out.snapshots.sort_unstable();
    Ok(out)
}

/// Make renames, creations and deletions in `dir` durable (a rename is only durable once the
/// directory itself is synced).
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| WalError::Io {
            op: "fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Remove a file; a file already gone is not an error.
pub(crate) fn remove(path: &Path) -> Result<(), WalError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(WalError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Move a file out of the way of recovery, keeping it for an operator to inspect:
/// `<name>.discarded-<unix nanos>`. Returns the new path.
pub(crate) fn set_aside(path: &Path, what: &str) -> Result<PathBuf, WalError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}-{nanos}"));
    let to = path.with_file_name(name);
    fs::rename(path, &to).map_err(|source| WalError::Io {
        op: "rename aside",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(to)
}

/// An advisory `flock` held until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

fn lock(path: PathBuf, blocking: bool) -> Result<DirLock, WalError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| WalError::Io {
            op: "open lock file",
            path: path.clone(),
            source,
        })?;
    let op = if blocking {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // Safety: `file` is an open descriptor owned by this function; flock touches no memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(DirLock { _file: file });
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EWOULDBLOCK) => return Err(WalError::Locked { path }),
            _ => {
                return Err(WalError::Io {
                    op: "flock",
                    path,
                    source: e,
                });
            }
        }
    }
}

/// The writer's lock: one [`super::Wal`] per shard directory, across processes too.
pub(crate) fn lock_writer(dir: &Path) -> Result<DirLock, WalError> {
    lock(dir.join(WRITER_LOCK), false)
}

/// The compaction lock, also taken by recovery so neither sees the other's half-done work.
pub(crate) fn lock_compaction(dir: &Path) -> Result<DirLock, WalError> {
    lock(dir.join(COMPACT_LOCK), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        assert_eq!(segment_name(0x2a), "wal-000000000000002a.seg");
        assert_eq!(parse_seq(&segment_name(0x2a), "wal-", ".seg"), Some(0x2a));
        assert_eq!(parse_seq(&snapshot_name(7), "snap-", ".snap"), Some(7));
        assert_eq!(parse_seq("wal-2a.seg", "wal-", ".seg"), None);
        assert_eq!(
            parse_seq("wal-000000000000002a.seg.tmp", "wal-", ".seg"),
            None
        );
    }
}
