//! WAL benchmark: (a) durable group-commit append rate for several batch sizes, (b) recovery
//! time of a large lease store, from segments and from a compacted snapshot.
//!
//! ```text
//! cargo run --release -p twinlease-bench --bin wal_bench -- --leases 10000000
//! ```

#![expect(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "rates, sizes and percentile indices for human-readable statistics"
)]

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use twinlease::lease::{BindingState, ClientKey, Lease4};
use twinlease::wal::{self, Durability, Wal, WalOptions};

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "twinlease WAL benchmark: group-commit append rate and recovery time")]
struct Args {
    /// Directory to work in (a temporary directory inside it is used and removed).
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    /// Records per append run.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// At most this many commits per append run (bounds the batch-of-1 run).
    #[arg(long, default_value_t = 3000)]
    max_commits: usize,
    /// Batch sizes (records per commit) to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    batches: Vec<usize>,
    /// Leases in the recovery store (0 skips the recovery benchmark).
    #[arg(long, default_value_t = 10_000_000)]
    leases: usize,
    /// Segment size in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Use `Durability::None` (lab mode) instead of fsync.
    #[arg(long)]
    no_fsync: bool,
    /// Evict the store's files from the page cache before each recovery (cold read).
    #[arg(long)]
    cold: bool,
}

fn lease(i: u32, version: u32) -> Lease4 {
    let mac = [
        0x02,
        0x42,
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ];
    Lease4 {
        addr: Ipv4Addr::from(0x0a00_0000_u32.wrapping_add(i)),
        state: BindingState::Active,
        client: ClientKey::from_hw(1, &mac).expect("6-byte chaddr"),
        chaddr: mac,
        subnet_id: 1 + i % 64,
        expires: 1_700_000_000 + version,
        cltt: 1_699_990_000 + version,
        partner_expires: 0,
        update_pending: true,
    }
}

fn options(args: &Args) -> WalOptions {
    WalOptions {
        segment_size: args.segment_mib << 20,
        durability: if args.no_fsync {
            Durability::None
        } else {
            Durability::Fsync
        },
    }
}

/// Result of one append run.
struct AppendRun {
    batch: usize,
    records: usize,
    commits: usize,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
}

fn append_run(args: &Args, root: &Path, batch: usize) -> Result<AppendRun, wal::WalError> {
    let dir = root.join(format!("append-{batch}"));
    let commits = (args.records / batch).clamp(1, args.max_commits);
    let records = commits * batch;
    let payloads: Vec<Vec<u8>> = (0..records as u32)
        .map(|i| {
            let l = lease(i % 1_000_000, i);
            let mut b = vec![0u8; l.encoded_len()];
            l.encode(&mut b);
            b
        })
        .collect();
    let (mut w, _) = Wal::open(&dir, 0, options(args), |_| {})?;
    let mut lat = Vec::with_capacity(commits);
    let start = Instant::now();
    for chunk in payloads.chunks(batch) {
        for p in chunk {
            w.append(p)?;
        }
        let t = Instant::now();
        w.commit()?;
        lat.push(t.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    Ok(AppendRun {
        batch,
        records,
        commits,
        secs,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    })
}

/// Result of one recovery.
struct Recovery {
    label: &'static str,
    records: u64,
    bytes: u64,
    secs: f64,
}

/// Drop the store's own pages from the page cache (no effect on other files).
fn evict(dir: &Path) {
    for e in std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        if let Ok(f) = std::fs::File::open(e.path()) {
            let _ = f.sync_all();
            // Safety: `f` is an open descriptor; the advice changes only page-cache state.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

fn time_recovery(args: &Args, root: &Path, label: &'static str) -> Result<Recovery, wal::WalError> {
    let shard_dir = root.join("shard-0");
    if args.cold {
        evict(&shard_dir);
    }
    let mut decoded = 0u64;
    let mut bytes = 0u64;
    let mut check = 0u64;
    let start = Instant::now();
    let (w, report) = Wal::open(root, 0, options(args), |p| {
        let l = Lease4::decode(p).expect("bench records decode");
        decoded += 1;
        // Framed size: 8-byte length and crc words, payload, padding to 8 bytes.
        bytes += (8 + p.len()).next_multiple_of(8) as u64;
        check = check.wrapping_add(u64::from(l.expires));
    })?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(decoded, report.snapshot_records + report.records);
    assert!(
        report.stopped_at.is_none(),
        "unexpected stop: {:?}",
        report.stopped_at
    );
    std::hint::black_box(check);
    drop(w);
    Ok(Recovery {
        label,
        records: decoded,
        bytes,
        secs,
    })
}

fn recovery_runs(args: &Args, root: &Path) -> Result<(f64, Vec<Recovery>, f64), wal::WalError> {
    let store = root.join("recovery");
    let (mut w, _) = Wal::open(&store, 0, options(args), |_| {})?;
    let mut buf = [0u8; Lease4::MAX_ENCODED_LEN];
    let start = Instant::now();
    for i in 0..args.leases as u32 {
        let n = lease(i, i).encode(&mut buf);
        w.append(&buf[..n])?;
        if i % 4096 == 4095 {
            w.commit()?;
        }
    }
    w.commit()?;
    let write_secs = start.elapsed().as_secs_f64();
    let active = w.active_seq();
    drop(w);

    let mut out = vec![time_recovery(args, &store, "segments")?];
    let t = Instant::now();
    let report = wal::compact(&store, 0, active)?;
    let compact_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "compaction: {} segments, {} records in, {} out, {:.1} MB, {compact_secs:.2} s",
        report.segments_merged,
        report.records_in,
        report.records_out,
        report.bytes_written as f64 / 1e6
    );
    out.push(time_recovery(args, &store, "snapshot")?);
    Ok((write_secs, out, compact_secs))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tmp = tempfile::Builder::new()
        .prefix("wal-bench-")
        .tempdir_in(&args.dir)?;
    let root = tmp.path();
    let mode = if args.no_fsync { "none" } else { "fsync" };

    println!(
        "WAL group commit ({mode}, {} MiB segments, dir {})",
        args.segment_mib,
        args.dir.display()
    );
    println!(
        "{:>6} {:>9} {:>8} {:>14} {:>11} {:>12} {:>12}",
        "batch", "records", "commits", "durable rec/s", "commits/s", "p50 commit", "p99 commit"
    );
    let mut appends = Vec::new();
    for &b in &args.batches {
        let r = append_run(&args, root, b.max(1))?;
        println!(
            "{:>6} {:>9} {:>8} {:>14.0} {:>11.0} {:>10.0}us {:>10.0}us",
            r.batch,
            r.records,
            r.commits,
            r.records as f64 / r.secs,
            r.commits as f64 / r.secs,
            r.p50_us,
            r.p99_us
        );
        appends.push(r);
    }

    let mut recoveries = Vec::new();
    let mut write_secs = 0.0;
    let mut compact_secs = 0.0;
    if args.leases > 0 {
        let (w, r, c) = recovery_runs(&args, root)?;
        (write_secs, recoveries, compact_secs) = (w, r, c);
        println!(
            "\nRecovery of {} leases (written in {write_secs:.1} s, compacted in {compact_secs:.1} s, {})",
            args.leases,
            if args.cold {
                "cold page cache"
            } else {
                "warm page cache"
            }
        );
        println!(
            "{:>9} {:>10} {:>9} {:>8} {:>12}",
            "from", "records", "MB", "secs", "records/s"
        );
        for r in &recoveries {
            println!(
                "{:>9} {:>10} {:>9.1} {:>8.2} {:>12.0}",
                r.label,
                r.records,
                r.bytes as f64 / 1e6,
                r.secs,
                r.records as f64 / r.secs
            );
        }
    }

    let json = serde_json::json!({
        "bench": "wal",
        "durability": mode,
        "segment_mib": args.segment_mib,
        "append": appends.iter().map(|r| serde_json::json!({
            "batch": r.batch,
            "records": r.records,
            "commits": r.commits,
            "durable_records_per_s": r.records as f64 / r.secs,
            "commits_per_s": r.commits as f64 / r.secs,
            "p50_commit_us": r.p50_us,
            "p99_commit_us": r.p99_us,
        })).collect::<Vec<_>>(),
        "recovery": recoveries.iter().map(|r| serde_json::json!({
            "from": r.label,
            "records": r.records,
            "mb": r.bytes as f64 / 1e6,
            "secs": r.secs,
        })).collect::<Vec<_>>(),
        "leases": args.leases,
        "write_secs": write_secs,
        "compact_secs": compact_secs,
        "cold": args.cold,
    });
    println!("{json}");
    Ok(())
}
