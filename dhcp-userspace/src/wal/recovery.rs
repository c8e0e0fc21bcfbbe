//! Recovery at open: newest snapshot, then the segments in order, up to the first torn or
//! corrupt record; everything after that point is discarded (kept aside for inspection when
//! it looked valid) so it can never be replayed after records appended later.

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

/// Run recovery in the shard directory `dir`.
pub(crate) fn recover(
    dir: &Path,
    shard: u32,
    opts: &WalOptions,
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
        let (stop_point, new_active) = discard_after(dir, shard, opts, &segs, raw, active.take())?;
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
fn discard_after(
    dir: &Path,
    shard: u32,
    opts: &WalOptions,
    segs: &[(u64, std::path::PathBuf)],
    raw: RawStop,
    scanned: Option<(Segment, usize)>,
) -> Result<(StopPoint, (Segment, usize)), WalError> {
    let (stop_seq, stop_path) = &segs[raw.index];
    let bad_header = raw.reason == "bad_header";
    let mut preserved = Vec::new();

    // Does anything valid follow? In the stop segment after the bad frame ...
    let mut valid_after = match (&scanned, bad_header) {
        (Some((seg, _)), false) => {
            record::valid_frame_after(seg.bytes(), raw.offset + record::ALIGN)
        }
        _ => map_read(stop_path)?.is_some_and(|m| record::valid_frame_after(&m, HEADER_LEN)),
    };
    // ... or in a later segment.
    let mut later_has_data = Vec::with_capacity(segs.len() - raw.index - 1);
    for (seq, path) in &segs[raw.index + 1..] {
        let map = map_read(path)?;
        let b: &[u8] = map.as_deref().unwrap_or_default();
        let empty_spare =
            segment::header_ok(b, shard, *seq) && record::last_nonzero(b, HEADER_LEN).is_none();
        let valid = record::valid_frame_after(b, HEADER_LEN.min(b.len()));
        valid_after |= valid;
        later_has_data.push(!empty_spare);
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
