//! Offline check and repair of one shard directory (`twinlease store check` / `store
//! repair`): find every damaged snapshot, segment and gap with its file and offset, without
//! changing anything; and, on an operator's request, cut the log at the damage.
//!
//! A check reads exactly what recovery would ([`super::Wal::open`]) and classifies each
//! finding: a [`Severity::Damage`] makes a server start refuse, a [`Severity::Note`] is
//! something the next start cleans up by itself (a torn tail, leftovers of an interrupted
//! compaction).

use std::path::{Path, PathBuf};

use super::dir;
use super::record::{self, ALIGN, Frame};
use super::segment::{self, HEADER_LEN, map_read};
use super::snapshot::{self, Snapshot, SnapshotWriter};
use super::{RecoveryReport, Wal, WalError, WalOptions, io_error};

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Cleaned up by the next start on its own; nothing acknowledged is lost.
    Note,
    /// The server refuses to start on it; `twinlease store repair` is needed.
    Damage,
}

/// One thing a check found, where it found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file (or, for a missing segment, the file that should exist).
    pub file: PathBuf,
    /// Byte offset in it.
    pub offset: u64,
    /// How serious it is.
    pub severity: Severity,
    /// What it is, for the operator.
    pub what: String,
}

/// The result of checking one shard directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardCheck {
    /// The shard directory.
    pub dir: PathBuf,
    /// Records of the snapshot that pass their checksum.
    pub snapshot_records: u64,
    /// Records of the segments a start would replay (up to the first stop).
    pub records: u64,
    /// Valid-looking records after the first damage, which a repair drops.
    pub records_after_damage: u64,
    /// Everything found, in file order.
    pub findings: Vec<Finding>,
}

impl ShardCheck {
    /// Whether a start would refuse this shard.
    #[must_use]
    pub fn damaged(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Damage)
    }

    fn push(&mut self, file: &Path, offset: u64, severity: Severity, what: String) {
        self.findings.push(Finding {
            file: file.to_path_buf(),
            offset,
            severity,
            what,
        });
    }
}

/// Check the shard `shard` of the store in `data_dir`, reading only. `validate` is called
/// with every record a start would replay and returns why it is unusable (undecodable), if
/// it is. The writer lock is taken, so a running server makes this fail with
/// [`WalError::Locked`].
pub fn check_shard(
    data_dir: &Path,
    shard: u32,
    validate: &mut dyn FnMut(&[u8]) -> Option<String>,
) -> Result<ShardCheck, WalError> {
    let dir = dir::shard_dir(data_dir, shard);
    let _lock = dir::lock_writer(&dir)?;
    let listing = dir::list(&dir)?;
    let mut out = ShardCheck {
        dir: dir.clone(),
        ..ShardCheck::default()
    };
    for tmp in &listing.temps {
        out.push(
            tmp,
            0,
            Severity::Note,
            "temporary file of an interrupted compaction or segment creation (removed at the \
             next start)"
                .into(),
        );
    }

    // The newest snapshot; older ones are leftovers.
    let mut first_seq = 0;
    if let Some((seq, path)) = listing.snapshots.last() {
        first_seq = *seq;
        match Snapshot::open(path, shard, *seq) {
            Ok(snap) => {
                for (off, payload) in snap.records() {
                    if let Some(why) = validate(payload) {
                        out.push(path, off as u64, Severity::Damage, why);
                    }
                }
                out.snapshot_records = snap.count;
            }
            Err(WalError::CorruptSnapshot { offset, reason, .. }) => {
                let salvage = salvage_snapshot(path)?;
                out.snapshot_records = salvage.len() as u64;
                out.push(
                    path,
                    offset,
                    Severity::Damage,
                    format!(
                        "snapshot fails its checks ({reason}); {} record(s) still pass their \
                         checksum and a repair keeps them",
                        salvage.len()
                    ),
                );
            }
            Err(e) => return Err(e),
        }
        for (_, old) in &listing.snapshots[..listing.snapshots.len() - 1] {
            out.push(
                old,
                0,
                Severity::Note,
                "older snapshot left by an interrupted compaction (removed at the next start)"
                    .into(),
            );
        }
    }

    let mut segs = Vec::new();
    for (seq, path) in listing.segments {
        if seq < first_seq {
            out.push(
                &path,
                0,
                Severity::Note,
                "segment already merged into the snapshot (removed at the next start)".into(),
            );
        } else {
            segs.push((seq, path));
        }
    }
    // A gap: the segments from the gap on are never replayed.
    let mut contiguous = segs.len();
    for (i, (seq, _)) in segs.iter().enumerate() {
        let expected = first_seq + i as u64;
        if *seq != expected {
            out.push(
                &dir.join(dir::segment_name(expected)),
                0,
                Severity::Damage,
                format!(
                    "segment missing; {} later segment(s) cannot be replayed",
                    segs.len() - i
                ),
            );
            contiguous = i;
            break;
        }
    }
    scan_segments(&mut out, shard, &segs[..contiguous], validate)?;
    Ok(out)
}

/// Replay-order scan of the segments, like recovery but without changing anything.
fn scan_segments(
    out: &mut ShardCheck,
    shard: u32,
    segs: &[(u64, PathBuf)],
    validate: &mut dyn FnMut(&[u8]) -> Option<String>,
) -> Result<(), WalError> {
    for (index, (seq, path)) in segs.iter().enumerate() {
        let map = map_read(path)?;
        let b: &[u8] = map.as_deref().unwrap_or_default();
        let (offset, reason) = if segment::header_ok(b, shard, *seq) {
            let mut off = HEADER_LEN;
            let stop = loop {
                match record::read_frame(b, off) {
                    Frame::Record(payload, next) => {
                        if let Some(why) = validate(payload) {
                            out.push(path, off as u64, Severity::Damage, why);
                        }
                        out.records += 1;
                        off = next;
                    }
                    Frame::End => {
                        break record::last_nonzero(b, off).map(|_| (off, "bad_length"));
                    }
                    Frame::Bad(bad) => break Some((off, bad.reason())),
                }
            };
            let Some(stop) = stop else { continue };
            stop
        } else {
            (0, "bad_header")
        };
        // Valid records after the stop, in this segment and the later ones.
        let from = if reason == "bad_header" {
            HEADER_LEN
        } else {
            offset + ALIGN
        };
        let mut after = count_valid_frames(b, from);
        let mut first_after = (after > 0).then(|| path.clone());
        for (_, later) in &segs[index + 1..] {
            let m = map_read(later)?;
            let n = count_valid_frames(m.as_deref().unwrap_or_default(), HEADER_LEN);
            if n > 0 && first_after.is_none() {
                first_after = Some(later.clone());
            }
            after += n;
        }
        out.records_after_damage = after;
        match first_after {
            Some(next) => out.push(
                path,
                offset as u64,
                Severity::Damage,
                format!(
                    "{reason}: {after} valid-looking record(s) follow (first in {}); a start \
                     refuses, a repair drops them",
                    next.display()
                ),
            ),
            None if reason == "bad_header" => out.push(
                path,
                0,
                Severity::Note,
                "segment header damaged, no record in it or after it (set aside at the next \
                 start)"
                    .into(),
            ),
            None => out.push(
                path,
                offset as u64,
                Severity::Note,
                "torn tail: a write interrupted by a crash, never acknowledged (discarded at \
                 the next start)"
                    .into(),
            ),
        }
        return Ok(());
    }
    Ok(())
}

/// Valid-looking frames at aligned offsets in `buf[from..]`, skipping over damage.
fn count_valid_frames(buf: &[u8], from: usize) -> u64 {
    let mut n = 0;
    let mut off = from;
    while let Some(at) = record::next_valid_frame(buf, off) {
        n += 1;
        match record::read_frame(buf, at) {
            Frame::Record(_, next) => off = next,
            Frame::End | Frame::Bad(_) => off = at + ALIGN,
        }
    }
    n
}

/// Every record of a (damaged) snapshot file that passes its checksum, in file order. A
/// snapshot holds one record per key, so records after a damaged one are as good as those
/// before it.
fn salvage_snapshot(path: &Path) -> Result<Vec<Vec<u8>>, WalError> {
    let map = map_read(path)?;
    let b: &[u8] = map.as_deref().unwrap_or_default();
    // The trailer, when present, is no frame; stop before it if it is intact.
    let end = if b.len() >= snapshot::HEADER_LEN + snapshot::TRAILER_LEN
        && b[b.len() - snapshot::TRAILER_LEN..].starts_with(snapshot::TRAILER_MAGIC)
    {
        b.len() - snapshot::TRAILER_LEN
    } else {
        b.len()
    };
    let body = &b[..end];
    let mut out = Vec::new();
    let mut off = snapshot::HEADER_LEN.min(body.len());
    while let Some(at) = record::next_valid_frame(body, off) {
        match record::read_frame(body, at) {
            Frame::Record(p, next) => {
                out.push(p.to_vec());
                off = next;
            }
            Frame::End | Frame::Bad(_) => off = at + ALIGN,
        }
    }
    Ok(out)
}

/// What [`repair_shard`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardRepair {
    /// Files copied into the backup directory before anything was changed.
    pub backed_up: Vec<PathBuf>,
    /// The snapshot rewritten from its salvaged records, and how many it kept.
    pub snapshot_rewritten: Option<(PathBuf, u64)>,
    /// Segments after a gap, set aside (`*.discarded-<nanos>`).
    pub set_aside: Vec<PathBuf>,
    /// The recovery that cut the log at its first damage.
    pub recovery: Option<RecoveryReport>,
}

/// Repair shard `shard` of the store in `data_dir` when [`check_shard`] finds damage in its
/// files: first copy every snapshot and segment of the shard into `backup/shard-<shard>/`,
/// then rewrite a damaged snapshot from the records that pass their checksum, set aside the
/// segments after a gap, and replay the log up to its first damage, dropping everything after
/// it ([`Wal::open_dropping_after_damage`]). Does nothing to a shard without damage.
pub fn repair_shard(
    data_dir: &Path,
    shard: u32,
    opts: WalOptions,
    backup: &Path,
) -> Result<ShardRepair, WalError> {
    let mut rep = ShardRepair::default();
    let found = check_shard(data_dir, shard, &mut |_| None)?;
    if !found.damaged() {
        return Ok(rep);
    }
    let dir = dir::shard_dir(data_dir, shard);
    let lock = dir::lock_writer(&dir)?;
    let to = backup.join(format!("shard-{shard}"));
    std::fs::create_dir_all(&to).map_err(io_error("create directory", &to))?;
    let listing = dir::list(&dir)?;
    for (_, path) in listing.snapshots.iter().chain(&listing.segments) {
        let copy = to.join(path.file_name().unwrap_or_default());
        std::fs::copy(path, &copy).map_err(io_error("copy", path))?;
        rep.backed_up.push(copy);
    }
    dir::fsync_dir(&to)?;

    let mut first_seq = 0;
    if let Some((seq, path)) = listing.snapshots.last() {
        first_seq = *seq;
        if Snapshot::open(path, shard, *seq).is_err() {
            let keep = salvage_snapshot(path)?;
            let mut w = SnapshotWriter::create(&dir, shard, *seq, keep.len() as u64)?;
            for p in &keep {
                if let Err(e) = w.push(p) {
                    w.abandon();
                    return Err(e);
                }
            }
            let (written, _) = w.finish()?;
            rep.snapshot_rewritten = Some((written, keep.len() as u64));
        }
    }
    let mut expected = first_seq;
    let mut gap = false;
    for (seq, path) in &listing.segments {
        if *seq < first_seq {
            continue;
        }
        gap |= *seq != expected;
        if gap {
            rep.set_aside.push(dir::set_aside(path, "discarded")?);
        }
        expected += 1;
    }
    dir::fsync_dir(&dir)?;
    drop(lock);
    let (wal, report) = Wal::open_dropping_after_damage(data_dir, shard, opts, |_| {})?;
    drop(wal);
    rep.recovery = Some(report);
    Ok(rep)
}
