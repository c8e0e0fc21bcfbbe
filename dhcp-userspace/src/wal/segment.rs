//! One WAL segment file: preallocated, memory-mapped, with a 64-byte header.
//!
//! Header layout (little-endian): magic (8) · version (4) · shard (4) · seq (8) · size (8) ·
//! crc32c of the previous 32 bytes (4) · zeros up to [`HEADER_LEN`]. Frames
//! ([`super::record`]) follow from offset [`HEADER_LEN`].
//!
//! The file is fully allocated with `posix_fallocate` before it is mapped, so a full disk is
//! an error when the segment is created and never a `SIGBUS` when a record is copied in.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};

use super::dir::{self, TMP_SUFFIX};
use super::{WalError, io_error};

/// Bytes of the segment header; the first frame starts here.
pub(crate) const HEADER_LEN: usize = 64;
const MAGIC: &[u8; 8] = b"TWLWAL\r\n";
const VERSION: u32 = 1;

/// The header of segment `seq` of `shard`, `size` bytes long.
pub(crate) fn encode_header(shard: u32, seq: u64, size: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&shard.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&size.to_le_bytes());
    let crc = crc32c::crc32c(&h[..32]);
    h[32..36].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Whether `file` starts with the header of segment `seq` of `shard` and is no longer than
/// the header says. A shorter file (truncated by an operator or a file system repair) is
/// accepted: its frames are checked one by one like any others.
pub(crate) fn header_ok(file: &[u8], shard: u32, seq: u64) -> bool {
    if file.len() < HEADER_LEN {
        return false;
    }
    let declared = u64::from_le_bytes(file[24..32].try_into().expect("8 bytes"));
    declared >= file.len() as u64 && file[..HEADER_LEN] == encode_header(shard, seq, declared)
}

/// Map a file read-only (sealed segments and snapshots).
pub(crate) fn map_read(path: &Path) -> Result<Option<Mmap>, WalError> {
    let file = File::open(path).map_err(io_error("open", path))?;
    let len = file.metadata().map_err(io_error("stat", path))?.len();
    if len == 0 {
        return Ok(None);
    }
    // Safety: the files of a shard directory are written only by its one writer (guarded by
    // the directory's writer lock) and never truncated; sealed segments and renamed
    // snapshots are never written again, so the mapping does not change under us.
    let map = unsafe { Mmap::map(&file) }.map_err(io_error("mmap", path))?;
    Ok(Some(map))
}

/// A segment mapped read-write (the one being written, or one being checked by recovery).
#[derive(Debug)]
pub(crate) struct Segment {
    /// Its sequence number.
    pub(crate) seq: u64,
    /// Its path.
    pub(crate) path: PathBuf,
    file: File,
    map: MmapMut,
}

impl Segment {
    /// Create segment `seq` in `dir`: preallocate `size` bytes under a temporary name, write
    /// and fsync the header, rename into place and fsync the directory. Only a complete,
    /// durable segment ever carries a segment name.
    pub(crate) fn create(dir: &Path, shard: u32, seq: u64, size: u64) -> Result<Self, WalError> {
        let path = dir.join(dir::segment_name(seq));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", dir::segment_name(seq)));
        let result = Self::create_at(&tmp, &path, shard, seq, size);
        if result.is_err() {
            // Give the space back; the error being returned is the one that matters.
            let _ = std::fs::remove_file(&tmp);
        }
        let file = result?;
        dir::fsync_dir(dir)?;
        Self::map(file, path, seq)
    }

    fn create_at(
        tmp: &Path,
        path: &Path,
        shard: u32,
        seq: u64,
        size: u64,
    ) -> Result<File, WalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(io_error("create", tmp))?;
        let len = libc::off_t::try_from(size).map_err(|_| WalError::InvalidOptions {
            reason: "segment_size does not fit off_t",
        })?;
        // Safety: `file` is an open descriptor; posix_fallocate only changes the file's extents.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        if rc != 0 {
            return Err(io_error("preallocate", tmp)(
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        file.write_all_at(&encode_header(shard, seq, size), 0)
            .map_err(io_error("write header", tmp))?;
        file.sync_all().map_err(io_error("fsync", tmp))?;
        std::fs::rename(tmp, path).map_err(io_error("rename", tmp))?;
        Ok(file)
    }

    /// Map an existing segment file read-write. `None` when the file is empty.
    pub(crate) fn open(path: &Path, seq: u64) -> Result<Option<Self>, WalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_error("open", path))?;
        if file.metadata().map_err(io_error("stat", path))?.len() == 0 {
            return Ok(None);
        }
        Self::map(file, path.to_path_buf(), seq).map(Some)
    }

    fn map(file: File, path: PathBuf, seq: u64) -> Result<Self, WalError> {
        // Safety: the file is fully allocated and never truncated; it is written only through
        // this mapping by the shard's one writer (the directory's writer lock is held), and
        // the compactor only reads segments the writer has sealed.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io_error("mmap", &path))?;
        Ok(Self {
            seq,
            path,
            file,
            map,
        })
    }

    /// The whole file, header included.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The whole file, writable.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Make bytes `from..to` durable: `msync(MS_SYNC)` of the pages covering them, which on
    /// Linux also writes the extent metadata the data needs (fdatasync of the range).
    pub(crate) fn flush(&self, from: usize, to: usize) -> Result<(), WalError> {
        if to <= from {
            return Ok(());
        }
        self.map
            .flush_range(from, to - from)
            .map_err(io_error("msync", &self.path))
    }

    /// fdatasync the whole file.
    pub(crate) fn sync_data(&self) -> Result<(), WalError> {
        self.file
            .sync_data()
            .map_err(io_error("fdatasync", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_check_header() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 3, 9, 64 * 1024).unwrap();
        assert_eq!(seg.bytes().len(), 64 * 1024);
        assert!(header_ok(seg.bytes(), 3, 9));
        assert!(!header_ok(seg.bytes(), 4, 9));
        assert!(!header_ok(seg.bytes(), 3, 8));
        assert!(header_ok(&seg.bytes()[..1000], 3, 9));
        let mut longer = seg.bytes().to_vec();
        longer.push(0);
        assert!(!header_ok(&longer, 3, 9));
        assert!(seg.bytes()[HEADER_LEN..].iter().all(|&b| b == 0));
        assert!(dir.path().join(dir::segment_name(9)).exists());
        let listing = dir::list(dir.path()).unwrap();
        assert_eq!(listing.segments.len(), 1);
        assert!(listing.temps.is_empty());
    }
}
