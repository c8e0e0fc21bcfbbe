//! Recovery at open: newest snapshot, then the segments in order, up to the first torn or
//! corrupt record. A torn tail (nothing valid follows) is discarded so it can never be
//! replayed after records appended later; damage followed by valid records is ambiguous and
//! refused ([`WalError::AmbiguousLog`]) unless an operator's repair asked to drop everything
//! after it (kept aside for inspection).

use std::path::Path;
use std::time::Instant;

use super::dir;
use super::record::{self, Frame};
use super::segment::{self, HEADER_LEN, Segment, map_read};
use super::snapshot::Snapshot;
use super::{RecoveryReport, StopPoint, WalError, WalOptions, io_error};

/// The writer's starting point.
pub(crate) struct Recovered {
    pub(crate) report: RecoveryReport,
    /// The segment to write next, mapped.
    pub(crate) active: Segment,
    /// Offset after its last valid record.
    pub(crate) pos: usize,
    /// Sequence of the loaded snapshot (or of the first segment): nothing below is unmerged.
    pub(crate) merged_below: u64,
}

/// Where the scan stopped, before classification.
#[derive(Clone, Copy)]
struct RawStop {
    /// Index into the replayed segment list.
    index: usize,
    offset: usize,
    reason: &'static str,
    /// One past the last non-zero byte at or after `offset` (what must be zeroed).
    junk_end: Option<usize>,
}

/// What recovery does with damage that valid records follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnDamage {
    /// Refuse: [`WalError::AmbiguousLog`] (what a server start does).
    Refuse,
    /// Replay up to the damage and discard the rest, kept aside (`twinlease store repair
    /// --drop-after-corruption`).
    DropAfter,
}

/// Run recovery in the shard directory `dir`.
pub(crate) fn recover(
    dir: &Path,
    shard: u32,
    opts: &WalOptions,
    on_damage: OnDamage,
    mut replay: impl FnMut(&[u8]),
) -> Result<Recovered, WalError> {
    let start = Instant::now();
    // No compaction may add or delete files while we look.
    let _guard = dir::lock_compaction(dir)?;
    let listing = dir::list(dir)?;
    for tmp in &listing.temps {
        dir::remove(tmp)?;
    }
    let mut report = RecoveryReport::default();

    // 1. The newest snapshot. A damaged one is an error, never a silent fallback to an older
    //    one: the segments it replaced may already be gone.
    let mut first_seq = 0;
    if let Some((seq, path)) = listing.snapshots.last() {
        let snap = Snapshot::open(path, shard, *seq)?;
        for (_, payload) in snap.records() {
            replay(payload);
        }
        report.snapshot = Some(path.clone());
        report.snapshot_records = snap.count;
        first_seq = *seq;
        // Older snapshots are leftovers of a compaction interrupted before its cleanup.
        for (_, old) in &listing.snapshots[..listing.snapshots.len() - 1] {
            dir::remove(old)?;
        }
    }

    // 2. Segments the snapshot covers are leftovers too; the rest must follow without a gap.
    let mut segs = Vec::with_capacity(listing.segments.len());
    for (seq, path) in listing.segments {
        if seq < first_seq {
            dir::remove(&path)?;
        } else {
            segs.push((seq, path));
        }
    }
    for (i, (seq, _)) in segs.iter().enumerate() {
        let expected = first_seq + i as u64;
        if *seq != expected {
            return Err(WalError::MissingSegment {
                dir: dir.to_path_buf(),
                seq: expected,
            });
        }
    }

    // 3. Replay in order up to the first bad record.
    let mut active: Option<(Segment, usize)> = None;
    let mut stop: Option<RawStop> = None;
    for (index, (seq, path)) in segs.iter().enumerate() {
        let seg = Segment::open(path, *seq)?.filter(|s| segment::header_ok(s.bytes(), shard, *seq));
        let Some(seg) = seg else {
            stop = Some(RawStop {
                index,
                offset: 0,
                reason: "bad_header",
                junk_end: None,
            });
            break;
        };
        report.segments += 1;
        let b = seg.bytes();
        let mut off = HEADER_LEN;
        loop {
            match record::read_frame(b, off) {
                Frame::Record(payload, next) => {
                    replay(payload);
                    report.records += 1;
                    off = next;
                }
                Frame::End => {
                    // Non-zero bytes after the end marker: a zeroed length word in front of
                    // data, or garbage from an interrupted write.
                    if let Some(junk_end) = record::last_nonzero(b, off) {
                        stop = Some(RawStop {
                            index,
                            offset: off,
                            reason: "bad_length",
                            junk_end: Some(junk_end),
                        });
                    }
                    break;
                }
                Frame::Bad(bad) => {
                    let junk_end = record::last_nonzero(b, off);
                    stop = Some(RawStop {
                        index,
                        offset: off,
                        reason: bad.reason(),
                        junk_end,
                    });
                    break;
                }
            }
        }
        // What was replayed must be durable before anything new is acknowledged: the
        // previous process may have died before the kernel wrote it back.
        seg.sync_data()?;
        active = Some((seg, off));
        if stop.is_some() {
            break;
        }
    }

    // 4. Discard everything after the stop point.
    if let Some(raw) = stop {
        let (stop_point, new_active) =
            discard_after(dir, shard, opts, on_damage, &segs, raw, active.take())?;
        report.stopped_at = Some(stop_point);
        active = Some(new_active);
    }

    let (active, pos) = match active {
        Some(a) => a,
        None => (
            Segment::create(dir, shard, first_seq, opts.segment_size)?,
            HEADER_LEN,
        ),
    };
    report.elapsed = start.elapsed();
    Ok(Recovered {
        report,
        active,
        pos,
        merged_below: first_seq,
    })
}

/// Classify the stop, keep what looked valid aside, zero the garbage in the stop segment and
/// remove later segments. Returns the stop point and the segment to write next.
///
/// Damage that valid records follow is refused under [`OnDamage::Refuse`] before anything is
/// changed. A kill at any moment never leaves that pattern: a frame's length word is written
/// last ([`record::write_frame`]), a rollback zeroes from the end, and a segment is synced
/// before the next one gets data. Only damage to the medium (or a power loss tearing a
/// multi-page commit out of order, whose records were never acknowledged) does.
fn discard_after(
    dir: &Path,
    shard: u32,
    opts: &WalOptions,
    on_damage: OnDamage,
    segs: &[(u64, std::path::PathBuf)],
    raw: RawStop,
    scanned: Option<(Segment, usize)>,
) -> Result<(StopPoint, (Segment, usize)), WalError> {
    let (stop_seq, stop_path) = &segs[raw.index];
    let bad_header = raw.reason == "bad_header";
    let mut preserved = Vec::new();

    // Does anything valid follow? In the stop segment after the bad frame ...
    let mut next_valid = match (&scanned, bad_header) {
        (Some((seg, _)), false) => {
            record::next_valid_frame(seg.bytes(), raw.offset + record::ALIGN)
        }
        _ => map_read(stop_path)?.and_then(|m| record::next_valid_frame(&m, HEADER_LEN)),
    }
    .map(|off| (stop_path.clone(), off));
    // ... or in a later segment.
    let mut later_has_data = Vec::with_capacity(segs.len() - raw.index - 1);
    for (seq, path) in &segs[raw.index + 1..] {
        let map = map_read(path)?;
        let b: &[u8] = map.as_deref().unwrap_or_default();
        let empty_spare =
            segment::header_ok(b, shard, *seq) && record::last_nonzero(b, HEADER_LEN).is_none();
        if next_valid.is_none() {
            next_valid =
                record::next_valid_frame(b, HEADER_LEN.min(b.len())).map(|off| (path.clone(), off));
        }
        later_has_data.push(!empty_spare);
    }
    let valid_after = next_valid.is_some();
    if let (Some((next_file, next_offset)), OnDamage::Refuse) = (&next_valid, on_damage) {
        return Err(WalError::AmbiguousLog {
            path: stop_path.clone(),
            offset: raw.offset as u64,
            reason: raw.reason,
            next_file: next_file.clone(),
            next_offset: *next_offset as u64,
        });
    }

    let reason = if bad_header {
        "bad_header"
    } else if valid_after {
        raw.reason
    } else {
        // Nothing valid follows: the tail of a write that was never acknowledged.
        "torn_tail"
    };

    for ((_, path), has_data) in segs[raw.index + 1..].iter().zip(later_has_data) {
        if has_data {
            preserved.push(dir::set_aside(path, "discarded")?);
        } else {
            dir::remove(path)?;
        }
    }

    let new_active = if bad_header {
        preserved.push(dir::set_aside(stop_path, "discarded")?);
        match scanned {
            // The previous segment (sealed, fully replayed) takes the next records.
            Some(prev) => prev,
            None => (
                Segment::create(dir, shard, *stop_seq, opts.segment_size)?,
                HEADER_LEN,
            ),
        }
    } else {
        let (mut seg, pos) = scanned.expect("a stop inside a segment comes with the segment");
        if valid_after {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let copy = stop_path.with_extension(format!("seg.corrupt-{nanos}"));
            std::fs::copy(stop_path, &copy).map_err(io_error("copy", stop_path))?;
            preserved.push(copy);
        }
        if let Some(junk_end) = raw.junk_end {
            // Zero the garbage durably: later appends must never line up with stale frames.
            seg.bytes_mut()[pos..junk_end].fill(0);
            seg.flush(pos, junk_end)?;
        }
        (seg, pos)
    };
    dir::fsync_dir(dir)?;

    let stop = StopPoint {
        file: stop_path.clone(),
        offset: raw.offset as u64,
        reason,
        valid_records_after: valid_after,
        preserved,
    };
    Ok((stop, new_active))
}
