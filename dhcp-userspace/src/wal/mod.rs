//! The write-ahead log: makes lease changes durable before the reply that grants them.
//!
//! draft-ietf-dhc-failover-12 §3.1.3 (draft-07 §3.1.3): a server must commit a binding to
//! stable storage before it acknowledges it to a client (or to the partner). Each worker
//! owns one shard of the log and is its only writer; it [`Wal::append`]s the records of a
//! batch (a memcpy into a memory-mapped segment, no syscall) and pays for durability once
//! per batch with [`Wal::commit`] (group commit), before any reply of that batch is sent.
//!
//! Layout on disk, for shard `w` under the data directory:
//!
//! ```text
//! <data_dir>/shard-<w>/wal-<seq:016x>.seg    preallocated segments, one being written
//! <data_dir>/shard-<w>/snap-<seq:016x>.snap  newest record per key of all segments < seq
//! ```
//!
//! Records are opaque byte strings (in practice [`crate::lease::Lease4::encode`] output)
//! whose first [`KEY_LEN`] bytes are the record's key; [`compact`] keeps only the newest
//! record per key and drops tombstones ([`crate::lease::encoded_is_tombstone`]).
//!
//! One job per file: `record.rs` (framing), `segment.rs` (preallocated, mapped segment
//! files), `snapshot.rs` (snapshot files), `recovery.rs` (replay at open), `compaction.rs`
//! (background merge), `check.rs` (offline check and repair) and `dir.rs` (names, listing,
//! locks).

mod check;
mod compaction;
mod dir;
mod record;
mod recovery;
mod segment;
mod snapshot;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub use check::{Finding, Severity, ShardCheck, ShardRepair, check_shard, repair_shard};
pub use compaction::{CompactionReport, Compactor, compact};

use crate::lease::KEY_LEN;
use segment::{HEADER_LEN, Segment};

/// Default size of a segment file: 64 MiB, about a million 55-byte lease records.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// [`Wal::should_compact`] says yes once this many segments are sealed and not yet merged
/// into a snapshot.
pub const COMPACT_AFTER_SEALED: u64 = 4;

/// Errors of the write-ahead log. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O operation failed.
    #[error("WAL: {op} {path} failed")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file system is full (ENOSPC, EDQUOT, or EFBIG from a file size limit): a new
    /// segment or snapshot could not be allocated. Nothing already committed is affected.
    #[error("WAL: disk full during {op} of {path}")]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file that could not be allocated.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A snapshot fails its checks. Recovery refuses to guess: an operator must look.
    #[error("WAL: snapshot {path} is corrupt at offset {offset}: {reason}")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Byte offset of the failing header, frame or trailer.
        offset: u64,
        /// `bad_header`, `truncated`, `bad_length`, `crc_mismatch`, `bad_trailer` or
        /// `count_mismatch`.
        reason: &'static str,
    },
    /// A sealed segment being compacted fails its checks.
    #[error("WAL: segment {path} is corrupt at offset {offset}: {reason}")]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the failing header or frame.
        offset: u64,
        /// `bad_header`, `bad_length`, `crc_mismatch` or `short_record`.
        reason: &'static str,
    },
    /// A record fails its checks (or a segment header is damaged) and valid records follow
    /// it: damage in the middle of the log, not a torn tail. Recovery refuses to guess which
    /// records to trust; `twinlease store check` lists the damage and `twinlease store repair
    /// --drop-after-corruption` keeps what precedes it (docs/operations.md).
    #[error(
        "WAL: segment {path} is corrupt at offset {offset} ({reason}) and valid records follow \
         ({next_file} offset {next_offset}): refusing to start on ambiguous data; run \
         `twinlease store check --data-dir <dir>`, then `twinlease store repair --data-dir <dir> \
         --drop-after-corruption` (docs/operations.md)"
    )]
    AmbiguousLog {
        /// The segment file holding the damage.
        path: PathBuf,
        /// Byte offset of the failing header (0) or frame.
        offset: u64,
        /// `crc_mismatch`, `bad_length` or `bad_header`.
        reason: &'static str,
        /// The file of the first valid record after the damage.
        next_file: PathBuf,
        /// Its offset.
        next_offset: u64,
    },
    /// The segments do not follow each other (or the snapshot) without a gap.
    #[error("WAL: segment {seq:016x} is missing in {dir}")]
    MissingSegment {
        /// The shard directory.
        dir: PathBuf,
        /// The first missing sequence number.
        seq: u64,
    },
    /// Another writer holds the shard.
    #[error("WAL: {path} is locked by another writer")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The payload is shorter than its key.
    #[error("WAL: record of {len} bytes is shorter than its {KEY_LEN}-byte key")]
    PayloadTooShort {
        /// The payload length.
        len: usize,
    },
    /// The payload does not fit in an empty segment.
    #[error("WAL: record of {len} bytes does not fit in a segment (at most {max})")]
    RecordTooLarge {
        /// The payload length.
        len: usize,
        /// The largest payload a segment takes.
        max: usize,
    },
    /// The options are unusable.
    #[error("WAL: invalid options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: &'static str,
    },
    /// The [`Wal`] a [`Compactor`] belongs to was dropped; its idea of the active segment is
    /// stale.
    #[error("WAL: the writer of {dir} is closed")]
    WriterClosed {
        /// The shard directory.
        dir: PathBuf,
    },
}

impl WalError {
    /// Whether this is a full file system (the server should alarm and refuse new leases,
    /// not crash).
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::DiskFull { .. } => true,
            Self::Io { source, .. } => errno_is_disk_full(source),
            _ => false,
        }
    }
}

fn errno_is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
    )
}

/// Map an `io::Error` of `op` on `path` to [`WalError::DiskFull`] or [`WalError::Io`].
pub(crate) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| {
        if errno_is_disk_full(&source) {
            WalError::DiskFull { op, path, source }
        } else {
            WalError::Io { op, path, source }
        }
    }
}

/// When a committed batch is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// [`Wal::commit`] msyncs the batch (`MS_SYNC`) before returning: required by
    /// draft-07 §3.1.3 before any DHCPACK is sent.
    Fsync,
    /// [`Wal::commit`] leaves write-back to the kernel. For labs and benchmarks only: a power
    /// loss forgets acknowledged leases. Never the default.
    None,
}

/// How a [`Wal`] is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Bytes preallocated per segment file: a multiple of 4096, at least 8192.
    pub segment_size: u64,
    /// When a commit is durable.
    pub durability: Durability,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
            durability: Durability::Fsync,
        }
    }
}

impl WalOptions {
    fn validate(&self) -> Result<(), WalError> {
        if self.segment_size < 8192 || !self.segment_size.is_multiple_of(4096) {
            return Err(WalError::InvalidOptions {
                reason: "segment_size must be a multiple of 4096 and at least 8192",
            });
        }
        if usize::try_from(self.segment_size).is_err() || self.segment_size > u64::from(u32::MAX) {
            return Err(WalError::InvalidOptions {
                reason: "segment_size must be below 4 GiB",
            });
        }
        Ok(())
    }

    /// Largest payload one segment takes.
    fn max_payload(&self) -> usize {
        self.segment_size as usize - HEADER_LEN - record::FRAME_HEADER
    }
}

/// Where recovery stopped reading the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopPoint {
    /// The segment file.
    pub file: PathBuf,
    /// Byte offset of the first record not replayed (0 for a bad header).
    pub offset: u64,
    /// `torn_tail` (nothing valid follows: an interrupted, never-acknowledged write),
    /// `crc_mismatch` or `bad_length` (valid records follow: damage in the middle of the
    /// log; only with [`Wal::open_dropping_after_damage`], a plain open refuses it), or
    /// `bad_header` (the segment header is wrong).
    pub reason: &'static str,
    /// Whether valid-looking records follow the stop point, in this segment or a later one.
    ///
    /// A crash during one multi-page commit can leave later pages of that same
    /// (unacknowledged) batch on disk while an earlier page is missing, so this alone does not
    /// prove damage; records after the stop were in any case never replayed.
    pub valid_records_after: bool,
    /// Copies or set-aside files kept for inspection when data after the stop point was
    /// discarded (`*.corrupt-<nanos>`, `*.discarded-<nanos>`).
    pub preserved: Vec<PathBuf>,
}

/// What [`Wal::open`] found and replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot loaded, if any.
    pub snapshot: Option<PathBuf>,
    /// Records replayed from it.
    pub snapshot_records: u64,
    /// Segment files replayed.
    pub segments: usize,
    /// Records replayed from segments.
    pub records: u64,
    /// Where replay stopped early, if it did.
    pub stopped_at: Option<StopPoint>,
    /// Wall time of the whole recovery.
    pub elapsed: Duration,
}

/// What one [`Wal::commit`] made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Records committed.
    pub records: usize,
    /// Bytes committed (framed).
    pub bytes: u64,
    /// Whether a sync was issued (false with nothing pending or with [`Durability::None`]).
    pub synced: bool,
    /// Time spent in the commit.
    pub elapsed: Duration,
}

/// A run of failed writes of one [`Wal`]: from the first failed append or commit to the next
/// successful commit. While it lasts no record is durable, so no grant may be sent; every
/// batch tries again (the records of a failed batch are discarded, see [`Wal::append`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When the first write of the run failed.
    pub since: Instant,
    /// Appends and commits that failed in this run.
    pub failures: u64,
    /// Whether the last failure was a full file system ([`WalError::is_disk_full`]).
    pub disk_full: bool,
}

/// How often a still-running [`Outage`] is logged again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_mins(1);

/// The writer of one shard's log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    data_dir: PathBuf,
    shard: u32,
    opts: WalOptions,
    active: Segment,
    /// Where the next frame goes in `active`.
    pos: usize,
    /// Everything in `active` below this offset is durable.
    synced: usize,
    /// End of the range the next sync must cover (at least `pos`): beyond `pos` after a failed
    /// batch was rolled back, so that the zeros written over its records reach the disk too.
    dirty_hi: usize,
    /// The next segment, preallocated ahead so rotation costs no allocation.
    spare: Option<Segment>,
    pending: usize,
    pending_bytes: u64,
    /// The current run of failed writes, if any, and when it was last logged.
    outage: Option<(Outage, Instant)>,
    /// Test hook: the next sync writes the data but then fails with this errno.
    #[cfg(test)]
    fail_next_sync: Option<i32>,
    active_seq: Arc<AtomicU64>,
    merged_below: Arc<AtomicU64>,
    alive: Arc<()>,
    _lock: dir::DirLock,
}

impl Wal {
    /// Open (creating if needed) the log of `shard` under `data_dir`: load the newest
    /// snapshot, replay every segment in order calling `replay` for each record, stop at the
    /// first torn or corrupt record (reported in [`RecoveryReport::stopped_at`]), discard
    /// what follows it so it is never replayed later, and position the writer after the last
    /// valid record.
    ///
    /// A corrupt snapshot ([`WalError::CorruptSnapshot`]) and damage that valid records
    /// follow ([`WalError::AmbiguousLog`]) are errors: the server must not start on ambiguous
    /// data. Only a torn tail (nothing valid after it) is discarded silently.
    pub fn open(
        data_dir: &Path,
        shard: u32,
        opts: WalOptions,
        replay: impl FnMut(&[u8]),
    ) -> Result<(Self, RecoveryReport), WalError> {
        Self::open_with(data_dir, shard, opts, recovery::OnDamage::Refuse, replay)
    }

    /// [`Self::open`], but damage that valid records follow is not an error: replay stops
    /// there and everything after it is discarded (a copy of the damaged segment and the later
    /// segments are kept aside, see [`StopPoint::preserved`]). For `twinlease store repair
    /// --drop-after-corruption` only.
    pub fn open_dropping_after_damage(
        data_dir: &Path,
        shard: u32,
        opts: WalOptions,
        replay: impl FnMut(&[u8]),
    ) -> Result<(Self, RecoveryReport), WalError> {
        Self::open_with(data_dir, shard, opts, recovery::OnDamage::DropAfter, replay)
    }

    fn open_with(
        data_dir: &Path,
        shard: u32,
        opts: WalOptions,
        on_damage: recovery::OnDamage,
        replay: impl FnMut(&[u8]),
    ) -> Result<(Self, RecoveryReport), WalError> {
        opts.validate()?;
        let dir = dir::shard_dir(data_dir, shard);
        std::fs::create_dir_all(&dir).map_err(io_error("create directory", &dir))?;
        let lock = dir::lock_writer(&dir)?;
        let rec = recovery::recover(&dir, shard, &opts, on_damage, replay)?;
        let mut wal = Self {
            active_seq: Arc::new(AtomicU64::new(rec.active.seq)),
            merged_below: Arc::new(AtomicU64::new(rec.merged_below)),
            dir,
            data_dir: data_dir.to_path_buf(),
            shard,
            opts,
            active: rec.active,
            pos: rec.pos,
            synced: rec.pos,
            dirty_hi: rec.pos,
            spare: None,
            pending: 0,
            pending_bytes: 0,
            outage: None,
            #[cfg(test)]
            fail_next_sync: None,
            alive: Arc::new(()),
            _lock: lock,
        };
        wal.prepare_spare();
        Ok((wal, rec.report))
    }

    /// Copy one record into the active segment. No syscall, except when the segment is full:
    /// then the next segment is made ready (the spare, or a new one), the full one is synced
    /// (so a sealed segment is always entirely durable) and the next becomes active. The
    /// record is durable only after the next [`Self::commit`].
    ///
    /// When that rotation fails (a full disk: no next segment can be allocated, or the sync
    /// fails), every record appended since the last successful commit is discarded: zeroed in
    /// the mapped segment, so neither a later commit nor recovery sees it, and the grants of
    /// the failed batch must not be sent. The writer stays usable: the next append tries the
    /// rotation again, so writing resumes by itself once space returns. (Records of a batch
    /// that crossed into a new segment before failing stay in the sealed one: durable without
    /// a reply, which is allowed; a reply without a durable record never happens.)
    pub fn append(&mut self, payload: &[u8]) -> Result<(), WalError> {
        if payload.len() < KEY_LEN {
            return Err(WalError::PayloadTooShort { len: payload.len() });
        }
        if payload.len() > self.opts.max_payload() {
            return Err(WalError::RecordTooLarge {
                len: payload.len(),
                max: self.opts.max_payload(),
            });
        }
        let n = record::framed_len(payload.len());
        if self.pos + n > self.active.bytes().len()
            && let Err(e) = self.rotate()
        {
            return Err(self.fail(e));
        }
        record::write_frame(
            &mut self.active.bytes_mut()[self.pos..self.pos + n],
            payload,
        );
        self.pos += n;
        self.pending += 1;
        self.pending_bytes += n as u64;
        Ok(())
    }

    /// Make everything appended so far durable (group commit: one `msync(MS_SYNC)` of the
    /// dirty range per batch). Replies granting the batch's leases may be sent once this
    /// returns `Ok` (draft-07 §3.1.3).
    ///
    /// A failed sync discards the records appended since the last successful commit, as a
    /// failed [`Self::append`] does: after a failed `msync` the kernel may have marked the
    /// pages clean without writing them, so those records can no longer be trusted to reach
    /// the disk. They are zeroed in the mapping, which dirties every page they touched again,
    /// and the next sync covers that whole range: the file then holds exactly the committed
    /// records followed by zeros, whatever part of the failed batch did reach the disk. What
    /// was committed before sits below the failed range and stays durable.
    pub fn commit(&mut self) -> Result<CommitStats, WalError> {
        let start = Instant::now();
        let mut stats = CommitStats {
            records: self.pending,
            bytes: self.pending_bytes,
            ..CommitStats::default()
        };
        if self.pending == 0 {
            return Ok(stats);
        }
        if self.opts.durability == Durability::Fsync {
            if let Err(e) = self.sync_active() {
                return Err(self.fail(e));
            }
            stats.synced = true;
        }
        self.pending = 0;
        self.pending_bytes = 0;
        self.end_outage();
        stats.elapsed = start.elapsed();
        Ok(stats)
    }

    /// The current run of failed writes: `Some` from a failed append or commit until the
    /// next successful commit.
    #[must_use]
    pub fn outage(&self) -> Option<Outage> {
        self.outage.map(|(o, _)| o)
    }

    /// Records appended since the last successful commit.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Sequence number of the segment being written.
    #[must_use]
    pub fn active_seq(&self) -> u64 {
        self.active.seq
    }

    /// The shared sequence number of the segment being written: every segment below it is
    /// sealed (entirely durable and never written again), so a compactor may merge it.
    #[must_use]
    pub fn active_seq_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.active_seq)
    }

    /// Whether enough sealed segments wait to be merged that the worker should wake its
    /// compactor ([`COMPACT_AFTER_SEALED`]).
    #[must_use]
    pub fn should_compact(&self) -> bool {
        let merged = self.merged_below.load(Ordering::Acquire);
        self.active.seq.saturating_sub(merged) >= COMPACT_AFTER_SEALED
    }

    /// A compactor for this shard, to run on a background thread; it merges only sealed
    /// segments, so the writer never waits for it.
    #[must_use]
    pub fn compactor(&self) -> Compactor {
        Compactor::new(
            self.data_dir.clone(),
            self.shard,
            Arc::clone(&self.active_seq),
            Arc::clone(&self.merged_below),
            Arc::downgrade(&self.alive),
        )
    }

    /// The shard directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A write failed: discard the uncommitted records (see [`Self::commit`]), count the
    /// failure, log it once per outage (and again every [`OUTAGE_LOG_EVERY`] while it lasts),
    /// and hand the error back.
    fn fail(&mut self, e: WalError) -> WalError {
        self.rollback();
        let now = Instant::now();
        let disk_full = e.is_disk_full();
        match &mut self.outage {
            None => {
                tracing::error!(
                    dir = %self.dir.display(), error = %e, disk_full,
                    "write-ahead log cannot write: no lease is granted or renewed until it can; \
                     retrying with every batch"
                );
                self.outage = Some((
                    Outage {
                        since: now,
                        failures: 1,
                        disk_full,
                    },
                    now,
                ));
            }
            Some((o, logged)) => {
                o.failures += 1;
                o.disk_full = disk_full;
                if now.duration_since(*logged) >= OUTAGE_LOG_EVERY {
                    *logged = now;
                    tracing::error!(
                        dir = %self.dir.display(), error = %e, failures = o.failures,
                        outage_secs = now.duration_since(o.since).as_secs(),
                        "write-ahead log still cannot write"
                    );
                }
            }
        }
        e
    }

    /// A commit succeeded: an outage, if one was running, is over.
    fn end_outage(&mut self) {
        if let Some((o, _)) = self.outage.take() {
            tracing::warn!(
                dir = %self.dir.display(),
                failures = o.failures,
                outage_ms = u64::try_from(o.since.elapsed().as_millis()).unwrap_or(u64::MAX),
                "write-ahead log writes again"
            );
        }
    }

    /// Forget the records appended since the last successful commit: zero them in the
    /// mapping and widen the next sync over them.
    fn rollback(&mut self) {
        let end = self.pos.max(self.dirty_hi);
        if end > self.synced {
            record::zero_backwards(&mut self.active.bytes_mut()[self.synced..end]);
        }
        self.dirty_hi = end;
        self.pos = self.synced;
        self.pending = 0;
        self.pending_bytes = 0;
    }

    fn sync_active(&mut self) -> Result<(), WalError> {
        let end = self.pos.max(self.dirty_hi);
        #[cfg(test)]
        if let Some(errno) = self.fail_next_sync.take() {
            // The worst case: the data did reach the disk, yet the sync reports a failure.
            self.active.flush(self.synced, end)?;
            return Err(io_error("msync", &self.active.path)(
                io::Error::from_raw_os_error(errno),
            ));
        }
        self.active.flush(self.synced, end)?;
        self.synced = self.pos;
        self.dirty_hi = self.pos;
        Ok(())
    }

    /// Switch to the next segment. The next one is made ready first, so that a full disk
    /// fails the rotation before anything changed. The full one is then synced, so data never
    /// reaches a later segment before everything in the earlier one is durable: recovery can
    /// then tell a torn tail from damage in the middle.
    fn rotate(&mut self) -> Result<(), WalError> {
        let next_seq = self.active.seq + 1;
        let next = match self.spare.take() {
            Some(s) => s,
            None => Segment::create(&self.dir, self.shard, next_seq, self.opts.segment_size)?,
        };
        if self.opts.durability == Durability::Fsync
            && let Err(e) = self.sync_active()
        {
            self.spare = Some(next);
            return Err(e);
        }
        // The full segment is unmapped here; it is sealed from now on.
        drop(std::mem::replace(&mut self.active, next));
        self.pos = HEADER_LEN;
        self.synced = HEADER_LEN;
        self.dirty_hi = HEADER_LEN;
        self.active_seq.store(next_seq, Ordering::Release);
        self.prepare_spare();
        Ok(())
    }

    /// Preallocate the next segment. A failure (disk full) is only logged: appends go on in
    /// the active segment, and the error surfaces when that one is full and rotation has to
    /// create the segment itself.
    fn prepare_spare(&mut self) {
        if self.spare.is_some() {
            return;
        }
        match Segment::create(
            &self.dir,
            self.shard,
            self.active.seq + 1,
            self.opts.segment_size,
        ) {
            Ok(s) => self.spare = Some(s),
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot preallocate the spare WAL segment");
            }
        }
    }
}

/// Token a [`Compactor`] checks to know its writer is still open.
type AliveToken = Weak<()>;
