//! Snapshot files: the newest record of every live key, covering every segment whose
//! sequence is below the snapshot's.
//!
//! Layout (little-endian): header of [`HEADER_LEN`] bytes — magic (8) · version (4) ·
//! shard (4) · covered-below seq (8) · record count (8) · crc32c of those 32 bytes (4) ·
//! zeros — then the records framed exactly like WAL records ([`super::record`]), then a
//! trailer of [`TRAILER_LEN`] bytes — magic (8) · record count (8) · crc32c of every byte
//! between header and trailer (4) · crc32c of the previous 20 trailer bytes (4).
//!
//! A snapshot is written under a temporary name, fsynced, renamed and the directory fsynced,
//! so a file with a snapshot name is complete; one that fails a check is therefore damage,
//! and loading it is an error naming the file and offset rather than a silent fallback.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::dir::{self, TMP_SUFFIX};
use super::record::{self, Frame};
use super::segment::map_read;
use super::{WalError, io_error};

/// Bytes of the snapshot header.
pub(crate) const HEADER_LEN: usize = 64;
/// Bytes of the snapshot trailer.
pub(crate) const TRAILER_LEN: usize = 24;
const MAGIC: &[u8; 8] = b"TWLSNAP\n";
pub(crate) const TRAILER_MAGIC: &[u8; 8] = b"TWLSEND\n";
const VERSION: u32 = 1;

fn encode_header(shard: u32, seq: u64, count: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&shard.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c(&h[..32]);
    h[32..36].copy_from_slice(&crc.to_le_bytes());
    h
}

fn encode_trailer(count: u64, body_crc: u32) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[..8].copy_from_slice(TRAILER_MAGIC);
    t[8..16].copy_from_slice(&count.to_le_bytes());
    t[16..20].copy_from_slice(&body_crc.to_le_bytes());
    let crc = crc32c::crc32c(&t[..20]);
    t[20..24].copy_from_slice(&crc.to_le_bytes());
    t
}

/// Writes a snapshot: [`Self::push`] exactly `count` records, then [`Self::finish`].
pub(crate) struct SnapshotWriter {
    dir: PathBuf,
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    declared: u64,
    count: u64,
    body_crc: u32,
    bytes: u64,
    frame: Vec<u8>,
}

impl SnapshotWriter {
    /// Start `snap-<seq>.snap` of `shard` in `dir`, announcing `count` records.
    pub(crate) fn create(dir: &Path, shard: u32, seq: u64, count: u64) -> Result<Self, WalError> {
        let path = dir.join(dir::snapshot_name(seq));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", dir::snapshot_name(seq)));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_error("create", &tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&encode_header(shard, seq, count))
            .map_err(io_error("write", &tmp))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tmp,
            path,
            out,
            declared: count,
            count: 0,
            body_crc: 0,
            bytes: HEADER_LEN as u64,
            frame: Vec::with_capacity(512),
        })
    }

    /// Append one record.
    pub(crate) fn push(&mut self, payload: &[u8]) -> Result<(), WalError> {
        self.frame.resize(record::framed_len(payload.len()), 0);
        record::write_frame(&mut self.frame, payload);
        self.out
            .write_all(&self.frame)
            .map_err(io_error("write", &self.tmp))?;
        self.body_crc = crc32c::crc32c_append(self.body_crc, &self.frame);
        self.bytes += self.frame.len() as u64;
        self.count += 1;
        Ok(())
    }

    /// Write the trailer, fsync, rename into place and fsync the directory (draft-07 §3.1.3:
    /// the snapshot must be on stable storage before the segments it replaces are deleted).
    /// Returns the final path and the file size.
    pub(crate) fn finish(mut self) -> Result<(PathBuf, u64), WalError> {
        assert_eq!(
            self.count, self.declared,
            "snapshot record count announced wrongly"
        );
        self.out
            .write_all(&encode_trailer(self.count, self.body_crc))
            .map_err(io_error("write", &self.tmp))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| io_error("write", &self.tmp)(e.into_error()))?;
        file.sync_all().map_err(io_error("fsync", &self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io_error("rename", &self.tmp))?;
        dir::fsync_dir(&self.dir)?;
        Ok((self.path, self.bytes + TRAILER_LEN as u64))
    }

    /// Abandon the snapshot, removing its temporary file.
    pub(crate) fn abandon(self) {
        drop(self.out);
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// A verified, mapped snapshot.
pub(crate) struct Snapshot {
    map: Option<memmap2::Mmap>,
    /// Records it holds.
    pub(crate) count: u64,
}

impl Snapshot {
    /// Map `path` (snapshot `seq` of `shard`) and check header, every frame, the record count
    /// and the body checksum. Any failure is [`WalError::CorruptSnapshot`] with the offset.
    pub(crate) fn open(path: &Path, shard: u32, seq: u64) -> Result<Self, WalError> {
        let corrupt = |offset: usize, reason: &'static str| WalError::CorruptSnapshot {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        let map = map_read(path)?;
        let b: &[u8] = map.as_deref().unwrap_or_default();
        if b.len() < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(0, "truncated"));
        }
        let count = u64::from_le_bytes(b[24..32].try_into().expect("8 bytes"));
        if b[..HEADER_LEN] != encode_header(shard, seq, count) {
            return Err(corrupt(0, "bad_header"));
        }
        let body_end = b.len() - TRAILER_LEN;
        let body = &b[..body_end];
        let mut off = HEADER_LEN;
        let mut seen = 0u64;
        while off < body_end {
            match record::read_frame(body, off) {
                Frame::Record(_, next) => {
                    seen += 1;
                    off = next;
                }
                Frame::End => return Err(corrupt(off, "bad_length")),
                Frame::Bad(bad) => return Err(corrupt(off, bad.reason())),
            }
        }
        let body_crc = crc32c::crc32c(&b[HEADER_LEN..body_end]);
        if b[body_end..] != encode_trailer(count, body_crc) {
            return Err(corrupt(body_end, "bad_trailer"));
        }
        if seen != count {
            return Err(corrupt(body_end, "count_mismatch"));
        }
        Ok(Self { map, count })
    }

    /// Every record with its offset in the file, in file order (already verified).
    pub(crate) fn records(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let b: &[u8] = self.map.as_deref().unwrap_or_default();
        let body = &b[..b.len().saturating_sub(TRAILER_LEN)];
        let mut off = HEADER_LEN;
        std::iter::from_fn(move || match record::read_frame(body, off) {
            Frame::Record(p, next) => {
                let at = off;
                off = next;
                Some((at, p))
            }
            Frame::End | Frame::Bad(_) => None,
        })
    }

    /// The mapped file.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, payloads: &[&[u8]]) -> PathBuf {
        let mut w = SnapshotWriter::create(dir, 1, 5, payloads.len() as u64).unwrap();
        for p in payloads {
            w.push(p).unwrap();
        }
        w.finish().unwrap().0
    }

    #[test]
    fn roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let recs: [&[u8]; 3] = [
            b"aaaaaaaaaaaaaaaaaaaa",
            b"bbbbbbbbbbbbbbbbbbbbbbb",
            b"ccccccccccccccccc",
        ];
        let path = write(dir.path(), &recs);
        let snap = Snapshot::open(&path, 1, 5).unwrap();
        assert_eq!(snap.count, 3);
        let got: Vec<&[u8]> = snap.records().map(|(_, p)| p).collect();
        assert_eq!(got, recs);
        assert!(matches!(
            Snapshot::open(&path, 2, 5),
            Err(WalError::CorruptSnapshot { offset: 0, .. })
        ));
    }

    #[test]
    fn flipped_byte_is_an_error_with_offset() {
        let dir = tempfile::tempdir().unwrap();
        let recs: [&[u8]; 2] = [b"aaaaaaaaaaaaaaaaaaaa", b"bbbbbbbbbbbbbbbbbbbbbbb"];
        let path = write(dir.path(), &recs);
        let second = HEADER_LEN + record::framed_len(recs[0].len());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second + 10] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        match Snapshot::open(&path, 1, 5) {
            Err(WalError::CorruptSnapshot {
                offset,
                reason,
                path: p,
            }) => {
                assert_eq!(offset, second as u64);
                assert_eq!(reason, "crc_mismatch");
                assert_eq!(p, path);
            }
            other => panic!(
                "expected corrupt snapshot, got {:?}",
                other.map(|s| s.count)
            ),
        }
        // A lost trailer (truncated file) is caught too.
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        assert!(matches!(
            Snapshot::open(&path, 1, 5),
            Err(WalError::CorruptSnapshot { .. })
        ));
    }
}
