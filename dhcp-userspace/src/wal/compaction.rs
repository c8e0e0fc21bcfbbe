//! Background compaction: merge the newest snapshot with the sealed segments into a new
//! snapshot holding only the newest record per key, without tombstones.
//!
//! Crash safety: the new snapshot is written under a temporary name, fsynced, renamed and the
//! directory fsynced before any input is deleted, so a crash at any point leaves either the
//! old snapshot and all its segments, or the new snapshot (plus leftovers recovery removes).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use memmap2::Mmap;

use super::dir;
use super::record::{self, Frame};
use super::segment::{self, HEADER_LEN, map_read};
use super::snapshot::{Snapshot, SnapshotWriter};
use super::{AliveToken, WalError};
use crate::lease::{KEY_LEN, encoded_is_tombstone};

/// Bits of a record location holding the byte offset; the source index sits above them.
const OFFSET_BITS: u32 = 40;

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// The snapshot written; `None` when there was nothing sealed to merge.
    pub snapshot: Option<PathBuf>,
    /// Every segment below this sequence is now covered by the newest snapshot.
    pub covered_below: u64,
    /// Segments merged (and deleted).
    pub segments_merged: usize,
    /// Records read from the old snapshot and the segments.
    pub records_in: u64,
    /// Records written to the new snapshot.
    pub records_out: u64,
    /// Newest-per-key records dropped because they are tombstones.
    pub tombstones_dropped: u64,
    /// Size of the new snapshot file.
    pub bytes_written: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Compacts one shard on a background thread while its [`super::Wal`] keeps writing.
/// Obtained from [`super::Wal::compactor`]; cheap to clone and `Send`.
#[derive(Debug, Clone)]
pub struct Compactor {
    data_dir: PathBuf,
    shard: u32,
    active_seq: Arc<AtomicU64>,
    merged_below: Arc<AtomicU64>,
    alive: AliveToken,
}

impl Compactor {
    pub(crate) fn new(
        data_dir: PathBuf,
        shard: u32,
        active_seq: Arc<AtomicU64>,
        merged_below: Arc<AtomicU64>,
        alive: AliveToken,
    ) -> Self {
        Self {
            data_dir,
            shard,
            active_seq,
            merged_below,
            alive,
        }
    }

    /// Merge every segment sealed so far. Fails with [`WalError::WriterClosed`] once the
    /// writer is dropped (a later writer may have re-used sequence numbers after recovery).
    pub fn run(&self) -> Result<CompactionReport, WalError> {
        let dir = dir::shard_dir(&self.data_dir, self.shard);
        let _guard = dir::lock_compaction(&dir)?;
        // Checked under the lock: recovery by a newer writer needs the same lock, so while we
        // hold it and our writer is alive, no newer writer has rewritten the directory.
        if self.alive.strong_count() == 0 {
            return Err(WalError::WriterClosed { dir });
        }
        let below = self.active_seq.load(Ordering::Acquire);
        let report = compact_locked(&dir, self.shard, below)?;
        self.merged_below
            .fetch_max(report.covered_below, Ordering::AcqRel);
        Ok(report)
    }
}

/// Merge the newest snapshot of `shard` with its segments whose sequence is below
/// `below_seq` into `snap-<below_seq>.snap`, then delete the merged segments and older
/// snapshots. Every segment below `below_seq` must be sealed: pass the value of
/// [`super::Wal::active_seq_handle`] (or, with no writer open, one past the last segment).
pub fn compact(data_dir: &Path, shard: u32, below_seq: u64) -> Result<CompactionReport, WalError> {
    let dir = dir::shard_dir(data_dir, shard);
    let _guard = dir::lock_compaction(&dir)?;
    compact_locked(&dir, shard, below_seq)
}

/// One input: the old snapshot or a sealed segment.
struct Source {
    path: PathBuf,
    map: Option<Mmap>,
    snapshot: Option<Snapshot>,
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match (&self.snapshot, &self.map) {
            (Some(s), _) => s.bytes(),
            (None, Some(m)) => m,
            (None, None) => &[],
        }
    }
}

fn compact_locked(dir: &Path, shard: u32, below: u64) -> Result<CompactionReport, WalError> {
    let start = Instant::now();
    let listing = dir::list(dir)?;
    let base = listing.snapshots.last().cloned();
    let from = base.as_ref().map_or(0, |(seq, _)| *seq);
    let inputs: Vec<(u64, PathBuf)> = listing
        .segments
        .into_iter()
        .filter(|(seq, _)| *seq >= from && *seq < below)
        .collect();
    let mut report = CompactionReport {
        covered_below: from,
        ..CompactionReport::default()
    };
    if inputs.is_empty() {
        report.elapsed = start.elapsed();
        return Ok(report);
    }
    for (i, (seq, _)) in inputs.iter().enumerate() {
        let expected = from + i as u64;
        if *seq != expected {
            return Err(WalError::MissingSegment {
                dir: dir.to_path_buf(),
                seq: expected,
            });
        }
    }
    let covered_below = from + inputs.len() as u64;

    // Map the inputs in log order: the old snapshot first, then the segments.
    let mut sources = Vec::with_capacity(inputs.len() + 1);
    if let Some((seq, path)) = &base {
        let snapshot = Snapshot::open(path, shard, *seq)?;
        sources.push(Source {
            path: path.clone(),
            map: None,
            snapshot: Some(snapshot),
        });
    }
    for (seq, path) in &inputs {
        let map = map_read(path)?;
        let b: &[u8] = map.as_deref().unwrap_or_default();
        if !segment::header_ok(b, shard, *seq) {
            return Err(corrupt(path, 0, "bad_header"));
        }
        sources.push(Source {
            path: path.clone(),
            map,
            snapshot: None,
        });
    }

    // Newest location per key; later sources and offsets overwrite earlier ones.
    let mut newest: HashMap<[u8; KEY_LEN], u64> = HashMap::new();
    for (index, src) in sources.iter().enumerate() {
        let b = src.bytes();
        let first = if src.snapshot.is_some() {
            super::snapshot::HEADER_LEN
        } else {
            HEADER_LEN
        };
        let end = if src.snapshot.is_some() {
            b.len() - super::snapshot::TRAILER_LEN
        } else {
            b.len()
        };
        let b = &b[..end];
        let mut off = first;
        loop {
            match record::read_frame(b, off) {
                Frame::Record(payload, next) => {
                    let key: [u8; KEY_LEN] = payload
                        .get(..KEY_LEN)
                        .and_then(|k| k.try_into().ok())
                        .ok_or_else(|| corrupt(&src.path, off, "short_record"))?;
                    newest.insert(key, ((index as u64) << OFFSET_BITS) | off as u64);
                    report.records_in += 1;
                    off = next;
                }
                Frame::End => break,
                // Recovery truncated every segment at its first bad record, so this is
                // damage after the fact: refuse rather than drop records.
                Frame::Bad(bad) => return Err(corrupt(&src.path, off, bad.reason())),
            }
        }
    }

    // Keep log order in the snapshot (deterministic output, sequential reads).
    let mut keep: Vec<u64> = newest.into_values().collect();
    keep.sort_unstable();
    let payload_at = |loc: u64| -> &[u8] {
        let src = &sources[(loc >> OFFSET_BITS) as usize];
        match record::read_frame(src.bytes(), (loc & ((1 << OFFSET_BITS) - 1)) as usize) {
            Frame::Record(p, _) => p,
            Frame::End | Frame::Bad(_) => unreachable!("location of a verified record"),
        }
    };
    let before = keep.len();
    keep.retain(|&loc| !encoded_is_tombstone(payload_at(loc)));
    report.tombstones_dropped = (before - keep.len()) as u64;

    let mut writer = SnapshotWriter::create(dir, shard, covered_below, keep.len() as u64)?;
    for &loc in &keep {
        if let Err(e) = writer.push(payload_at(loc)) {
            writer.abandon();
            return Err(e);
        }
    }
    let (path, bytes) = writer.finish()?;
    report.records_out = keep.len() as u64;
    report.bytes_written = bytes;
    report.segments_merged = inputs.len();
    report.covered_below = covered_below;
    report.snapshot = Some(path);
    drop(sources);

    // The new snapshot is durable: the inputs may go.
    for (_, seg) in &inputs {
        dir::remove(seg)?;
    }
    for (seq, snap) in &listing.snapshots {
        if *seq < covered_below {
            dir::remove(snap)?;
        }
    }
    dir::fsync_dir(dir)?;
    report.elapsed = start.elapsed();
    Ok(report)
}

fn corrupt(path: &Path, offset: usize, reason: &'static str) -> WalError {
    WalError::CorruptSegment {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    }
}
