//! Behaviour tests of the write-ahead log: replay order, rotation, torn tails, corruption,
//! compaction (alone and concurrent with appends) and a full disk.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::lease::{BindingState, ClientKey, Lease4, encoded_is_tombstone};

/// A real encoded lease: `n` picks the address (the key), `version` the expiry.
fn lease(n: u32, version: u32, free: bool) -> Vec<u8> {
    let l = Lease4 {
        addr: Ipv4Addr::from(0x0a00_0000 + n),
        state: if free {
            BindingState::Free
        } else {
            BindingState::Active
        },
        client: ClientKey::from_hw(1, &[2, 0, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8])
            .unwrap(),
        chaddr: [2, 0, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8],
        subnet_id: 1,
        expires: version,
        cltt: version,
        partner_expires: 0,
        update_pending: false,
    };
    let mut buf = vec![0u8; l.encoded_len()];
    l.encode(&mut buf);
    buf
}

fn opts(segment_size: u64) -> WalOptions {
    WalOptions {
        segment_size,
        ..WalOptions::default()
    }
}

fn open(dir: &Path, o: WalOptions) -> (Wal, RecoveryReport, Vec<Vec<u8>>) {
    let mut got = Vec::new();
    let (wal, report) = Wal::open(dir, 0, o, |p| got.push(p.to_vec())).unwrap();
    (wal, report, got)
}

/// Apply records the way the lease store does: newest per key wins, tombstones remove.
fn state_of<'a>(records: impl IntoIterator<Item = &'a Vec<u8>>) -> HashMap<Vec<u8>, Vec<u8>> {
    let mut m = HashMap::new();
    for r in records {
        let key = r[..KEY_LEN].to_vec();
        if encoded_is_tombstone(r) {
            m.remove(&key);
        } else {
            m.insert(key, r.clone());
        }
    }
    m
}

fn seg_path(data: &Path, seq: u64) -> PathBuf {
    dir::shard_dir(data, 0).join(dir::segment_name(seq))
}

fn append_all(wal: &mut Wal, recs: &[Vec<u8>], batch: usize) {
    for chunk in recs.chunks(batch) {
        for r in chunk {
            wal.append(r).unwrap();
        }
        assert_eq!(wal.pending(), chunk.len());
        let stats = wal.commit().unwrap();
        assert_eq!(stats.records, chunk.len());
        assert!(stats.synced);
        assert_eq!(wal.pending(), 0);
    }
}

#[test]
fn append_commit_reopen_replays_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..1000).map(|i| lease(i % 300, i, false)).collect();
    {
        let (mut wal, report, got) = open(tmp.path(), opts(1 << 20));
        assert!(got.is_empty());
        assert_eq!(report.stopped_at, None);
        append_all(&mut wal, &recs[..600], 16);
    }
    {
        let (mut wal, report, got) = open(tmp.path(), opts(1 << 20));
        assert_eq!(got, recs[..600]);
        assert_eq!(report.records, 600);
        assert_eq!(report.stopped_at, None);
        append_all(&mut wal, &recs[600..], 7);
    }
    let (_wal, _, got) = open(tmp.path(), opts(1 << 20));
    assert_eq!(got, recs);
}

#[test]
fn rotation_across_many_small_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..20_000).map(|i| lease(i, i, false)).collect();
    {
        let (mut wal, _, _) = open(tmp.path(), opts(64 << 10));
        append_all(&mut wal, &recs, 64);
        assert!(wal.active_seq() >= 18, "active seq {}", wal.active_seq());
        assert_eq!(
            wal.active_seq_handle().load(Ordering::Acquire),
            wal.active_seq()
        );
        assert!(wal.should_compact());
        // The spare is preallocated ahead of the active segment.
        assert!(seg_path(tmp.path(), wal.active_seq() + 1).exists());
    }
    let (wal, report, got) = open(tmp.path(), opts(64 << 10));
    assert_eq!(got.len(), recs.len());
    assert_eq!(got, recs);
    assert_eq!(report.segments as u64, wal.active_seq() + 1);
}

/// Offsets of the frames of `recs` written from the start of an empty segment.
fn frame_offsets(recs: &[Vec<u8>]) -> Vec<usize> {
    let mut off = HEADER_LEN;
    recs.iter()
        .map(|r| {
            let at = off;
            off += record::framed_len(r.len());
            at
        })
        .collect()
}

fn patch(path: &Path, offset: usize, bytes: &[u8]) {
    let mut all = std::fs::read(path).unwrap();
    all[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, all).unwrap();
}

#[test]
fn torn_tail_replays_prefix_and_appending_after_reopen_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..100).map(|i| lease(i, i, false)).collect();
    let offs = frame_offsets(&recs);
    {
        let (mut wal, _, _) = open(tmp.path(), opts(1 << 20));
        append_all(&mut wal, &recs, 10);
    }
    // Zero the second half of the last record's payload: a write torn mid-record.
    let last = offs[99];
    patch(&seg_path(tmp.path(), 0), last + 40, &[0u8; 20]);
    let more: Vec<Vec<u8>> = (100..105).map(|i| lease(i, i, false)).collect();
    {
        let (mut wal, report, got) = open(tmp.path(), opts(1 << 20));
        assert_eq!(got, recs[..99]);
        let stop = report.stopped_at.unwrap();
        assert_eq!(stop.reason, "torn_tail");
        assert_eq!(stop.offset, last as u64);
        assert_eq!(stop.file, seg_path(tmp.path(), 0));
        assert!(!stop.valid_records_after);
        append_all(&mut wal, &more, 2);
    }
    let (_wal, report, got) = open(tmp.path(), opts(1 << 20));
    assert_eq!(report.stopped_at, None);
    let expected: Vec<Vec<u8>> = recs[..99].iter().chain(&more).cloned().collect();
    assert_eq!(got, expected);
}

#[test]
fn garbage_after_last_record_is_a_torn_tail_and_is_zeroed() {
    let tmp = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..50).map(|i| lease(i, i, false)).collect();
    let end = HEADER_LEN
        + recs
            .iter()
            .map(|r| record::framed_len(r.len()))
            .sum::<usize>();
    {
        let (mut wal, _, _) = open(tmp.path(), opts(1 << 20));
        append_all(&mut wal, &recs, 50);
    }
    // A plausible length word, a wrong crc and junk: an interrupted append.
    let mut junk = vec![0xa5u8; 300];
    junk[..4].copy_from_slice(&60u32.to_le_bytes());
    patch(&seg_path(tmp.path(), 0), end, &junk);
    {
        let (mut wal, report, got) = open(tmp.path(), opts(1 << 20));
        assert_eq!(got, recs);
        let stop = report.stopped_at.unwrap();
        assert_eq!((stop.reason, stop.offset), ("torn_tail", end as u64));
        // The junk is gone from the file, not just skipped.
        let file = std::fs::read(seg_path(tmp.path(), 0)).unwrap();
        assert!(file[end..end + 300].iter().all(|&b| b == 0));
        append_all(&mut wal, &recs[..1], 1);
    }
    let (_wal, report, got) = open(tmp.path(), opts(1 << 20));
    assert_eq!(report.stopped_at, None);
    assert_eq!(got.len(), 51);
}

#[test]
fn truncated_last_segment_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..80).map(|i| lease(i, i, false)).collect();
    let offs = frame_offsets(&recs);
    {
        let (mut wal, _, _) = open(tmp.path(), opts(64 << 10));
        append_all(&mut wal, &recs, 80);
    }
    let path = seg_path(tmp.path(), 0);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(offs[79] as u64 + 30).unwrap();
    drop(file);
    {
        let (mut wal, report, got) = open(tmp.path(), opts(64 << 10));
        assert_eq!(got, recs[..79]);
        let stop = report.stopped_at.unwrap();
        assert_eq!((stop.reason, stop.offset), ("torn_tail", offs[79] as u64));
        // The short segment fills up early and rotation moves on.
        append_all(&mut wal, &recs, 20);
    }
    let (_wal, report, got) = open(tmp.path(), opts(64 << 10));
    assert_eq!(report.stopped_at, None);
    assert_eq!(got.len(), 79 + 80);
    assert_eq!(got[79..], recs);
}

#[test]
fn corrupt_record_in_the_middle_stops_there_with_crc_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..3000).map(|i| lease(i, i, false)).collect();
    {
        let (mut wal, _, _) = open(tmp.path(), opts(64 << 10));
        append_all(&mut wal, &recs, 100);
        assert!(wal.active_seq() >= 2);
    }
    let offs = frame_offsets(&recs);
    let victim = 500;
    patch(&seg_path(tmp.path(), 0), offs[victim] + 30, &[0xff]);
    // A start refuses, naming the damage and the next valid record, and changes nothing.
    let before = std::fs::read(seg_path(tmp.path(), 0)).unwrap();
    for _ in 0..2 {
        match Wal::open(tmp.path(), 0, opts(64 << 10), |_| {}) {
            Err(WalError::AmbiguousLog {
                path,
                offset,
                reason,
                next_file,
                next_offset,
            }) => {
                assert_eq!(path, seg_path(tmp.path(), 0));
                assert_eq!(offset, offs[victim] as u64);
                assert_eq!(reason, "crc_mismatch");
                assert_eq!(next_file, seg_path(tmp.path(), 0));
                assert_eq!(next_offset, offs[victim + 1] as u64);
            }
            other => panic!("expected AmbiguousLog, got {:?}", other.map(|(_, r)| r)),
        }
    }
    assert_eq!(std::fs::read(seg_path(tmp.path(), 0)).unwrap(), before);
    {
        let mut got = Vec::new();
        let (_wal, report) = Wal::open_dropping_after_damage(tmp.path(), 0, opts(64 << 10), |p| {
            got.push(p.to_vec());
        })
        .unwrap();
        assert_eq!(got, recs[..victim]);
        let stop = report.stopped_at.unwrap();
        assert_eq!(stop.reason, "crc_mismatch");
        assert_eq!(stop.file, seg_path(tmp.path(), 0));
        assert_eq!(stop.offset, offs[victim] as u64);
        assert!(stop.valid_records_after);
        // The damaged segment is copied and the later ones kept aside, not destroyed.
        assert!(stop.preserved.len() >= 2);
        assert!(stop.preserved.iter().all(|p| p.exists()));
    }
    // The discarded data is never replayed again.
    let (mut wal, report, got) = open(tmp.path(), opts(64 << 10));
    assert_eq!(report.stopped_at, None);
    assert_eq!(got, recs[..victim]);
    append_all(&mut wal, &recs[..3], 3);
}

#[test]
fn corrupt_length_word_is_bad_length() {
    let tmp = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..100).map(|i| lease(i, i, false)).collect();
    {
        let (mut wal, _, _) = open(tmp.path(), opts(1 << 20));
        append_all(&mut wal, &recs, 100);
    }
    let offs = frame_offsets(&recs);
    patch(&seg_path(tmp.path(), 0), offs[40], &u32::MAX.to_le_bytes());
    match Wal::open(tmp.path(), 0, opts(1 << 20), |_| {}) {
        Err(e @ WalError::AmbiguousLog { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("offset {} (bad_length)", offs[40])),
                "{msg}"
            );
            assert!(msg.contains("twinlease store repair"), "{msg}");
        }
        other => panic!("expected AmbiguousLog, got {:?}", other.map(|(_, r)| r)),
    }
    let mut got = Vec::new();
    let (_wal, report) =
        Wal::open_dropping_after_damage(tmp.path(), 0, opts(1 << 20), |p| got.push(p.to_vec()))
            .unwrap();
    assert_eq!(got, recs[..40]);
    let stop = report.stopped_at.unwrap();
    assert_eq!(
        (stop.reason, stop.offset, stop.valid_records_after),
        ("bad_length", offs[40] as u64, true)
    );
}

#[test]
fn damage_at_the_end_of_a_sealed_segment_with_data_in_the_next_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let recs: Vec<Vec<u8>> = (0..3000).map(|i| lease(i, i, false)).collect();
    {
        let (mut wal, _, _) = open(tmp.path(), opts(64 << 10));
        append_all(&mut wal, &recs, 100);
        assert!(wal.active_seq() >= 2);
    }
    // The last record of segment 0: nothing valid follows in that segment, but segment 1
    // (written only after segment 0 was synced) holds records.
    let offs = frame_offsets(&recs);
    let per_seg = offs
        .iter()
        .zip(&recs)
        .take_while(|(o, r)| **o + record::framed_len(r.len()) <= 64 << 10)
        .count();
    patch(&seg_path(tmp.path(), 0), offs[per_seg - 1] + 20, &[0x33]);
    match Wal::open(tmp.path(), 0, opts(64 << 10), |_| {}) {
        Err(WalError::AmbiguousLog {
            path,
            offset,
            next_file,
            next_offset,
            ..
        }) => {
            assert_eq!(path, seg_path(tmp.path(), 0));
            assert_eq!(offset, offs[per_seg - 1] as u64);
            assert_eq!(next_file, seg_path(tmp.path(), 1));
            assert_eq!(next_offset, HEADER_LEN as u64);
        }
        other => panic!("expected AmbiguousLog, got {:?}", other.map(|(_, r)| r)),
    }
    // The check names the same place, the repair cuts there and keeps a backup.
    let found = check_shard(tmp.path(), 0, &mut |_| None).unwrap();
    assert!(found.damaged());
    assert_eq!(found.records, per_seg as u64 - 1);
    assert_eq!(found.records_after_damage, (3000 - per_seg) as u64);
    let damage: Vec<_> = found
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Damage)
        .collect();
    assert_eq!(damage.len(), 1);
    assert_eq!(
        (&damage[0].file, damage[0].offset),
        (&seg_path(tmp.path(), 0), offs[per_seg - 1] as u64)
    );
    let backup = tmp.path().join("backup");
    let rep = repair_shard(tmp.path(), 0, opts(64 << 10), &backup).unwrap();
    assert!(rep.backed_up.len() >= 3);
    let original = std::fs::read(backup.join("shard-0").join(dir::segment_name(1))).unwrap();
    assert!(record::valid_frame_after(&original, HEADER_LEN));
    assert!(!check_shard(tmp.path(), 0, &mut |_| None).unwrap().damaged());
    let (_wal, report, got) = open(tmp.path(), opts(64 << 10));
    assert_eq!(report.stopped_at, None);
    assert_eq!(got, recs[..per_seg - 1]);
}

#[test]
fn damaged_snapshot_check_names_it_and_repair_keeps_its_intact_records() {
    let tmp = tempfile::tempdir().unwrap();
    let recs = workload(5000);
    {
        let (mut wal, _, _) = open(tmp.path(), opts(64 << 10));
        append_all(&mut wal, &recs, 50);
        wal.compactor().run().unwrap();
    }
    let listing = dir::list(&dir::shard_dir(tmp.path(), 0)).unwrap();
    let snap_path = listing.snapshots[0].1.clone();
    let snap_seq = listing.snapshots[0].0;
    let victim_off = {
        let snap = snapshot::Snapshot::open(&snap_path, 0, snap_seq).unwrap();
        snap.records().nth(10).unwrap().0
    };
    let victim_key = {
        let snap = snapshot::Snapshot::open(&snap_path, 0, snap_seq).unwrap();
        snap.records().nth(10).unwrap().1[..KEY_LEN].to_vec()
    };
    patch(&snap_path, victim_off + 12, &[0xee, 0xee]);
    assert!(matches!(
        Wal::open(tmp.path(), 0, opts(64 << 10), |_| {}),
        Err(WalError::CorruptSnapshot { offset, .. }) if offset == victim_off as u64
    ));
    let found = check_shard(tmp.path(), 0, &mut |_| None).unwrap();
    let damage: Vec<_> = found
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Damage)
        .collect();
    assert_eq!(damage.len(), 1, "{found:?}");
    assert_eq!(
        (&damage[0].file, damage[0].offset),
        (&snap_path, victim_off as u64)
    );
    let backup = tmp.path().join("backup");
    let rep = repair_shard(tmp.path(), 0, opts(64 << 10), &backup).unwrap();
    let (_, kept) = rep.snapshot_rewritten.clone().unwrap();
    assert_eq!(kept, found.snapshot_records);
    assert!(
        backup
            .join("shard-0")
            .join(dir::snapshot_name(snap_seq))
            .exists()
    );
    let (_wal, report, got) = open(tmp.path(), opts(64 << 10));
    assert_eq!(report.snapshot_records, kept);
    // Everything but the damaged record's key survives (unless a later segment rewrote it).
    let mut model = state_of(&recs);
    let after = state_of(&got);
    if !after.contains_key(&victim_key) {
        model.remove(&victim_key);
    }
    assert_eq!(after, model);
}

/// A workload with overwrites and tombstones over a small key space.
fn workload(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let key = (i.wrapping_mul(2_654_435_761) >> 7) % 700;
            lease(key, i, i % 11 == 0)
        })
        .collect()
}

#[test]
fn compaction_keeps_newest_per_key_and_matches_uncompacted_replay() {
    let plain = tempfile::tempdir().unwrap();
    let compacted = tempfile::tempdir().unwrap();
    let recs = workload(12_000);
    let model = state_of(&recs);
    {
        let (mut wal, _, _) = open(plain.path(), opts(64 << 10));
        append_all(&mut wal, &recs, 32);
    }
    {
        let (mut wal, _, _) = open(compacted.path(), opts(64 << 10));
        append_all(&mut wal, &recs[..8000], 32);
        assert!(wal.should_compact());
        let report = wal.compactor().run().unwrap();
        assert_eq!(report.covered_below, wal.active_seq());
        assert!(report.segments_merged >= 4);
        assert!(report.tombstones_dropped > 0);
        assert!(report.records_out < report.records_in);
        assert!(!wal.should_compact());
        // Only the active segment, its spare and the snapshot remain.
        let listing = dir::list(wal.dir()).unwrap();
        assert_eq!(listing.snapshots.len(), 1);
        assert_eq!(listing.segments.len(), 2);
        append_all(&mut wal, &recs[8000..], 32);
        // A second compaction merges the previous snapshot too.
        let second = wal.compactor().run().unwrap();
        assert!(second.segments_merged >= 1);
        assert_eq!(dir::list(wal.dir()).unwrap().snapshots.len(), 1);
    }
    let (_w1, r1, plain_got) = open(plain.path(), opts(64 << 10));
    let (_w2, r2, comp_got) = open(compacted.path(), opts(64 << 10));
    assert_eq!(r1.snapshot, None);
    assert!(r2.snapshot.is_some());
    assert!(comp_got.len() < plain_got.len());
    assert_eq!(state_of(&plain_got), model);
    assert_eq!(state_of(&comp_got), model);
    // The snapshot part holds one record per key and no tombstone.
    let snap_part = &comp_got[..r2.snapshot_records as usize];
    assert!(snap_part.iter().all(|r| !encoded_is_tombstone(r)));
    let keys: std::collections::HashSet<&[u8]> = snap_part.iter().map(|r| &r[..KEY_LEN]).collect();
    assert_eq!(keys.len(), snap_part.len());
}

#[test]
fn compaction_concurrent_with_appends_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let recs = workload(60_000);
    let model = state_of(&recs);
    let (mut wal, _, _) = open(tmp.path(), opts(64 << 10));
    let compactor = wal.compactor();
    let stop = AtomicBool::new(false);
    let runs = std::thread::scope(|s| {
        let bg = s.spawn(|| {
            let mut merged = 0;
            while !stop.load(Ordering::Acquire) {
                merged += compactor.run().unwrap().segments_merged;
                std::thread::sleep(Duration::from_millis(2));
            }
            merged
        });
        for chunk in recs.chunks(64) {
            for r in chunk {
                wal.append(r).unwrap();
            }
            wal.commit().unwrap();
        }
        stop.store(true, Ordering::Release);
        bg.join().unwrap()
    });
    assert!(runs > 0, "the compactor never merged anything");
    drop(wal);
    assert!(matches!(
        compactor.run(),
        Err(WalError::WriterClosed { .. })
    ));
    let (_wal, report, got) = open(tmp.path(), opts(64 << 10));
    assert!(report.snapshot.is_some());
    assert_eq!(state_of(&got), model);
}

#[test]
fn corrupt_snapshot_is_an_error_naming_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _, _) = open(tmp.path(), opts(64 << 10));
        append_all(&mut wal, &workload(5000), 50);
        wal.compactor().run().unwrap();
    }
    let listing = dir::list(&dir::shard_dir(tmp.path(), 0)).unwrap();
    let snap = listing.snapshots[0].1.clone();
    patch(&snap, snapshot::HEADER_LEN + 100, &[0x5a, 0x5a]);
    match Wal::open(tmp.path(), 0, opts(64 << 10), |_| {}) {
        Err(WalError::CorruptSnapshot { path, offset, .. }) => {
            assert_eq!(path, snap);
            assert!(
                offset >= snapshot::HEADER_LEN as u64
                    && offset <= snapshot::HEADER_LEN as u64 + 100
            );
        }
        other => panic!("expected CorruptSnapshot, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn second_writer_is_refused_and_bad_payloads_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _, _) = open(tmp.path(), opts(64 << 10));
    assert!(matches!(
        Wal::open(tmp.path(), 0, opts(64 << 10), |_| {}),
        Err(WalError::Locked { .. })
    ));
    assert!(matches!(
        wal.append(&[1; 5]),
        Err(WalError::PayloadTooShort { len: 5 })
    ));
    assert!(matches!(
        wal.append(&vec![1; 70_000]),
        Err(WalError::RecordTooLarge { .. })
    ));
    assert!(matches!(
        Wal::open(tmp.path(), 1, opts(5000), |_| {}),
        Err(WalError::InvalidOptions { .. })
    ));
    assert_eq!(wal.commit().unwrap(), CommitStats::default());
}

/// A small tmpfs (1 MiB unless said otherwise), unmounted on drop.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    fn mount() -> Self {
        Self::try_mount("1m").expect("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    }

    /// `None` when the mount is refused (not root).
    fn try_mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run mount");
        status.success().then_some(Self { dir })
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_is_an_error_not_a_crash() {
    let fs = TinyFs::mount();
    let o = opts(256 << 10);
    let recs: Vec<Vec<u8>> = (0..40_000).map(|i| lease(i, i, false)).collect();
    let mut appended = 0;
    {
        let (mut wal, _, _) = open(fs.dir.path(), o);
        let err = loop {
            match wal.append(&recs[appended]) {
                Ok(()) => appended += 1,
                Err(e) => break e,
            }
            if appended % 100 == 0 {
                wal.commit().unwrap();
            }
        };
        assert!(err.is_disk_full(), "{err:?}");
        assert!(matches!(err, WalError::DiskFull { .. }));
        // 1 MiB holds four 256 KiB segments: records filled three and most of the fourth.
        assert!(
            appended > 3 * 4000,
            "only {appended} records before the disk was full"
        );
        // The failed batch (appended since the last commit) is discarded, not committed later.
        assert_eq!(wal.pending(), 0);
        assert!(wal.outage().is_some_and(|o| o.disk_full && o.failures == 1));
        appended -= appended % 100;
        wal.commit().unwrap();
        // A second writer on another shard cannot even create its first segment.
        let other = Wal::open(fs.dir.path(), 1, o, |_| {});
        assert!(other.is_err_and(|e| e.is_disk_full()));
    }
    // Reopening on the full disk replays everything (the spare cannot be made: logged only).
    let (_wal, report, got) = open(fs.dir.path(), o);
    assert_eq!(report.stopped_at, None);
    assert_eq!(got, recs[..appended]);
}

/// Fill the rest of the file system behind `dir` with one file; its path.
fn fill_up(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert!(errno_is_disk_full(&e), "{e}");
                break;
            }
        }
    }
    path
}

#[test]
fn disk_full_then_space_returns_resumes_without_reopen() {
    let Some(fs) = TinyFs::try_mount("2m") else {
        eprintln!("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    let o = opts(256 << 10);
    let recs: Vec<Vec<u8>> = (0..60_000).map(|i| lease(i % 5000, i, false)).collect();
    let mut committed: Vec<Vec<u8>> = Vec::new();
    let mut next = 0;
    // One batch of `n` records; `Ok` when appended and committed.
    let batch = |wal: &mut Wal, next: &mut usize, n: usize| -> Result<Vec<Vec<u8>>, WalError> {
        let b = recs[*next..*next + n].to_vec();
        *next += n;
        for r in &b {
            wal.append(r)?;
        }
        wal.commit()?;
        Ok(b)
    };
    {
        let (mut wal, _, _) = open(fs.dir.path(), o);
        // The active segment and its spare exist; the filler takes everything else.
        let filler = fill_up(fs.dir.path());
        let first_err = loop {
            match batch(&mut wal, &mut next, 100) {
                Ok(b) => committed.extend(b),
                Err(e) => break e,
            }
        };
        assert!(first_err.is_disk_full(), "{first_err:?}");
        // The spare was used, then no third segment could be made: two segments' worth.
        assert!(
            committed.len() > 2 * 3000,
            "only {} records committed",
            committed.len()
        );
        // While the disk stays full every batch fails the same way, and nothing is pending.
        for k in 2..=5 {
            let e = batch(&mut wal, &mut next, 100).unwrap_err();
            assert!(e.is_disk_full(), "{e:?}");
            assert_eq!(wal.pending(), 0);
            let o = wal.outage().unwrap();
            assert_eq!((o.failures, o.disk_full), (k, true));
        }
        // A batch without records commits trivially and ends nothing.
        wal.commit().unwrap();
        assert!(wal.outage().is_some());
        // Space returns: the very next batch goes through, no reopen.
        std::fs::remove_file(&filler).unwrap();
        committed.extend(batch(&mut wal, &mut next, 100).unwrap());
        assert_eq!(wal.outage(), None);
        for _ in 0..20 {
            committed.extend(batch(&mut wal, &mut next, 100).unwrap());
        }
        // Records appended but not committed at a crash are the usual torn tail.
        wal.append(&recs[next]).unwrap();
    }
    let (_wal, report, got) = open(fs.dir.path(), o);
    assert_eq!(report.stopped_at, None);
    assert_eq!(got.len(), committed.len() + 1);
    assert_eq!(got[..committed.len()], committed[..]);
}

/// The byte range frames `recs` take when written from the start of a segment.
fn frames_len(recs: &[Vec<u8>]) -> usize {
    recs.iter().map(|r| record::framed_len(r.len())).sum()
}

#[test]
fn failed_sync_discards_the_batch_and_the_next_commit_rewrites_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let options = opts(64 << 10);
    let batch_a: Vec<Vec<u8>> = (0..10).map(|i| lease(i, 1, false)).collect();
    let batch_b: Vec<Vec<u8>> = (100..130).map(|i| lease(i, 2, false)).collect();
    let batch_c: Vec<Vec<u8>> = (200..203).map(|i| lease(i, 3, false)).collect();
    let seg = seg_path(dir.path(), 0);
    {
        let (mut wal, _, _) = open(dir.path(), options);
        append_all(&mut wal, &batch_a, batch_a.len());
        for r in &batch_b {
            wal.append(r).unwrap();
        }
        wal.fail_next_sync = Some(libc::EIO);
        let e = wal.commit().unwrap_err();
        assert!(!e.is_disk_full());
        assert_eq!(wal.pending(), 0);
        assert!(
            wal.outage()
                .is_some_and(|o| !o.disk_full && o.failures == 1)
        );
        // B had reached the file (the worst case) before the failure was reported; it is
        // zeroed now (in the shared mapping, so in what any reader of the file sees).
        let start = HEADER_LEN + frames_len(&batch_a);
        let end = start + frames_len(&batch_b);
        let bytes = std::fs::read(&seg).unwrap();
        assert!(bytes[start..end].iter().all(|&x| x == 0));
        // C is shorter than B; the commit must still cover all of B's old range.
        append_all(&mut wal, &batch_c, batch_c.len());
        assert_eq!(wal.outage(), None);
        let bytes = std::fs::read(&seg).unwrap();
        let c_end = start + frames_len(&batch_c);
        assert!(bytes[c_end..end].iter().all(|&x| x == 0));
        assert_eq!(wal.synced, c_end);
        assert_eq!(wal.dirty_hi, c_end);
    }
    let (_wal, report, got) = open(dir.path(), options);
    assert_eq!(report.stopped_at, None);
    let want: Vec<Vec<u8>> = batch_a.iter().chain(&batch_c).cloned().collect();
    assert_eq!(got, want);
}

#[test]
fn failed_sync_during_rotation_keeps_the_spare_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(8192);
    let recs: Vec<Vec<u8>> = (0..2000).map(|i| lease(i, i, false)).collect();
    let mut committed = Vec::new();
    let mut i = 0;
    {
        let (mut wal, _, _) = open(dir.path(), o);
        // Fill segment 0 in committed batches of 10 until the next record would rotate.
        let cap = 8192 - HEADER_LEN;
        while frames_len(&recs[..i + 10]) <= cap - 64 {
            append_all(&mut wal, &recs[i..i + 10], 10);
            committed.extend_from_slice(&recs[i..i + 10]);
            i += 10;
        }
        let seq = wal.active_seq();
        let mut failed = None;
        wal.fail_next_sync = Some(libc::ENOSPC);
        for r in &recs[i..i + 10] {
            if let Err(e) = wal.append(r) {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("the rotation's sync failed");
        assert!(e.is_disk_full());
        assert_eq!(wal.active_seq(), seq, "no rotation after a failed sync");
        assert!(wal.spare.is_some(), "the spare is kept for the retry");
        assert_eq!(wal.pending(), 0);
        i += 10;
        // The same batch again: rotation succeeds now.
        for r in &recs[i..i + 10] {
            wal.append(r).unwrap();
        }
        wal.commit().unwrap();
        committed.extend_from_slice(&recs[i..i + 10]);
        assert_eq!(wal.active_seq(), seq + 1);
        assert_eq!(wal.outage(), None);
    }
    let (_wal, report, got) = open(dir.path(), o);
    assert_eq!(report.stopped_at, None);
    assert_eq!(got, committed);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever mix of committed, failed (sync failure) and uncommitted batches, a reopen
    /// replays exactly the committed records, in order, then at most the uncommitted tail.
    #[test]
    fn replay_is_exactly_the_committed_records(
        plan in proptest::collection::vec((1usize..40, 0u8..4), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(8192);
        let mut committed = Vec::new();
        let mut n = 0u32;
        {
            let (mut wal, _, _) = open(dir.path(), o);
            for &(len, what) in &plan {
                let b: Vec<Vec<u8>> = (0..len).map(|k| lease(n + k as u32, n, false)).collect();
                n += len as u32;
                if what == 0 {
                    wal.fail_next_sync = Some(libc::EIO);
                }
                let r = b.iter().try_for_each(|r| wal.append(r)).and_then(|()| wal.commit().map(drop));
                if r.is_ok() {
                    proptest::prop_assert_ne!(what, 0);
                    committed.extend(b);
                } else {
                    proptest::prop_assert_eq!(what, 0);
                    proptest::prop_assert_eq!(wal.pending(), 0);
                }
                // A failure armed but not consumed (no sync happened) is disarmed.
                wal.fail_next_sync = None;
            }
        }
        let (_wal, report, got) = open(dir.path(), o);
        proptest::prop_assert_eq!(report.stopped_at, None);
        proptest::prop_assert_eq!(got, committed);
    }
}
