//! The durable FREE/BACKUP split of the free addresses (draft-ietf-dhc-failover-12 §5.4):
//! which free addresses belong to the secondary. Written by the partner thread before it
//! tells the partner about a move (primary) or acknowledges one (secondary), so after a
//! crash neither side can believe an address is its own that the other was given.
//!
//! Format: `TLSPLIT1`, a record count (u32 LE), then per record an inclusive range of
//! addresses (two u32 LE), then a CRC32C (u32 LE) of everything before it. Replaced
//! atomically (temporary file, fsync, rename, directory fsync).

use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::pool::FreeMap;

const MAGIC: &[u8; 8] = b"TLSPLIT1";

/// Errors reading or writing the split file.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The file could not be read or written.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operation.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid split file.
    #[error("{path}: corrupt failover split file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The split file of a data directory.
#[must_use]
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("failover-split.bin")
}

/// Write `free`'s BACKUP share to `file`, atomically and durably.
pub fn save(file: &Path, free: &FreeMap) -> Result<(), SplitError> {
    let ranges = free.backup_ranges();
    let mut buf = Vec::with_capacity(16 + ranges.len() * 8);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    for (a, b) in &ranges {
        buf.extend_from_slice(&u32::from(*a).to_le_bytes());
        buf.extend_from_slice(&u32::from(*b).to_le_bytes());
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let io = |what| {
        move |source| SplitError::Io {
            path: file.to_path_buf(),
            what,
            source,
        }
    };
    let tmp = file.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io("create"))?;
    f.write_all(&buf).map_err(io("write"))?;
    f.sync_all().map_err(io("fsync"))?;
    drop(f);
    fs::rename(&tmp, file).map_err(io("rename"))?;
    if let Some(dir) = file.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory"))?;
    }
    Ok(())
}

/// Read `file` into `free`'s BACKUP share. Returns `Ok(false)` when the file does not exist
/// (a new relationship: everything is FREE, the primary's, until it balances).
pub fn load(file: &Path, free: &FreeMap) -> Result<bool, SplitError> {
    let buf = match fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(SplitError::Io {
                path: file.to_path_buf(),
                what: "read",
                source,
            });
        }
    };
    let corrupt = |reason| SplitError::Corrupt {
        path: file.to_path_buf(),
        reason,
    };
    if buf.len() < 16 || &buf[..8] != MAGIC {
        return Err(corrupt("bad header"));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(corrupt("checksum mismatch"));
    }
    let n = u32::from_le_bytes([body[8], body[9], body[10], body[11]]) as usize;
    if body.len() != 12 + n * 8 {
        return Err(corrupt("length does not match the record count"));
    }
    for r in body[12..].chunks_exact(8) {
        let a = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let b = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
        if b < a {
            return Err(corrupt("range ends before it starts"));
        }
        for x in a..=b {
            free.set_backup(Ipv4Addr::from(x), true);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{PoolRange, Share};

    fn map() -> FreeMap {
        FreeMap::new(
            &[PoolRange {
                id: 1,
                subnet_id: 1,
                start: Ipv4Addr::new(10, 0, 0, 0),
                end: Ipv4Addr::new(10, 0, 0, 199),
            }],
            2,
            &|_| false,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_share_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let f = path(dir.path());
        let m = map();
        assert!(!load(&f, &m).unwrap());
        for a in m.pick_in_share(1, Share::Free, 100) {
            m.set_backup(a, true);
        }
        assert_eq!(m.share_counts(1), (100, 100));
        save(&f, &m).unwrap();
        let m2 = map();
        assert!(load(&f, &m2).unwrap());
        assert_eq!(m2.backup_ranges(), m.backup_ranges());
        // The secondary allocates only BACKUP addresses, the primary only FREE ones.
        let mut c = 0;
        let mut got = Vec::new();
        while let Some(a) = m2.take_free_in(1, 0, &mut c, Share::Backup) {
            assert!(m2.is_backup(a));
            got.push(a);
        }
        assert_eq!(got.len(), 100);
        let mut c = 0;
        let mut n = 0;
        while let Some(a) = m2.take_free_in(1, 1, &mut c, Share::Free) {
            assert!(!m2.is_backup(a));
            n += 1;
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn corrupt_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = path(dir.path());
        let m = map();
        m.set_backup(Ipv4Addr::new(10, 0, 0, 5), true);
        save(&f, &m).unwrap();
        let mut b = fs::read(&f).unwrap();
        let last = b.len() - 5;
        b[last] ^= 1;
        fs::write(&f, &b).unwrap();
        let e = load(&f, &map()).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        fs::write(&f, b"nonsense").unwrap();
        assert!(load(&f, &map()).unwrap_err().to_string().contains("header"));
    }
}
