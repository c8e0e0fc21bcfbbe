//! WAL append micro-benchmark with group commit: 64 lease records appended, then one
//! `commit`, per iteration, with `Durability::None` (lab mode: no sync) and
//! `Durability::Fsync` (one `msync(MS_SYNC)` per commit), in a temporary directory under
//! /tmp. The log is restarted (untimed) every 256 MiB so the disk does not fill.
//!
//! ```text
//! cargo bench -p twinlease-bench --bench wal -- --warm-up-time 1 --measurement-time 3
//! ```

#![expect(missing_docs, reason = "criterion_group! generates an undocumented fn")]

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twinlease::lease::{BindingState, ClientKey, Lease4};
use twinlease::wal::{Durability, Wal, WalOptions};

const BATCH: usize = 64;
const SEGMENT: u64 = 32 << 20;
const RESTART_BYTES: u64 = 256 << 20;

fn payloads() -> Vec<Vec<u8>> {
    (0..4096u32)
        .map(|i| {
            let b = i.to_be_bytes();
            let mac = [0x02, 0x42, b[0], b[1], b[2], b[3]];
            let l = Lease4 {
                addr: Ipv4Addr::from(0x0a40_0000 + i),
                state: BindingState::Active,
                client: ClientKey::from_hw(1, &mac).expect("6-byte chaddr"),
                chaddr: mac,
                subnet_id: 1,
                expires: 1_700_003_600,
                cltt: 1_700_000_000,
                partner_expires: 0,
                update_pending: true,
            };
            let mut p = vec![0u8; l.encoded_len()];
            l.encode(&mut p);
            p
        })
        .collect()
}

fn open(root: &Path, run: &mut u32, durability: Durability) -> Wal {
    *run += 1;
    let dir = root.join(format!("run-{run}"));
    let opts = WalOptions {
        segment_size: SEGMENT,
        durability,
    };
    Wal::open(&dir, 0, opts, |_| {}).expect("WAL opens").0
}

fn bench_mode(c: &mut Criterion, name: &str, durability: Durability) {
    let payloads = payloads();
    let record_bytes: u64 = payloads
        .iter()
        .map(|p| (p.len() as u64 + 8).next_multiple_of(8))
        .sum::<u64>()
        / payloads.len() as u64;
    let tmp = tempfile::Builder::new()
        .prefix("twinlease-wal-bench-")
        .tempdir_in("/tmp")
        .expect("temp dir in /tmp");
    let root = tmp.path().to_path_buf();
    let mut run = 0u32;
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Elements(BATCH as u64));
    if durability == Durability::Fsync {
        g.sample_size(10);
    }
    let mut next = 0usize;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut wal = open(&root, &mut run, durability);
            let mut written = 0u64;
            let mut total = Duration::ZERO;
            let mut t = Instant::now();
            for _ in 0..iters {
                for _ in 0..BATCH {
                    wal.append(&payloads[next]).expect("append");
                    next = (next + 1) % payloads.len();
                }
                wal.commit().expect("commit");
                written += BATCH as u64 * record_bytes;
                if written >= RESTART_BYTES {
                    total += t.elapsed();
                    drop(wal);
                    let _ = std::fs::remove_dir_all(root.join(format!("run-{run}")));
                    wal = open(&root, &mut run, durability);
                    written = 0;
                    t = Instant::now();
                }
            }
            total += t.elapsed();
            drop(wal);
            let _ = std::fs::remove_dir_all(root.join(format!("run-{run}")));
            total
        });
    });
    g.finish();
}

fn wal(c: &mut Criterion) {
    bench_mode(c, "append64_commit_none", Durability::None);
    bench_mode(c, "append64_commit_fsync", Durability::Fsync);
}

criterion_group!(benches, wal);
criterion_main!(benches);
