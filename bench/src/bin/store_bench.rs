//! In-memory lease store benchmark: (a) resident memory of a 10 M lease store (free bitmap +
//! two shards), (b) allocation rate (`take_free` + `upsert` of an ACTIVE lease) on one core,
//! (c) lookups by client in the big store.
//!
//! (b) and (c) are timed twice: one request at a time, and in batches of `--batch` requests
//! the way a worker handles a receive batch: first `Shard::prefetch_client` (allocations: and
//! `Shard::prefetch_addr` of the claimed address) for every request of the batch (lookups:
//! then `Shard::prefetch_client_record` too), then the real work.
//!
//! ```text
//! cargo run --release -p twinlease-bench --bin store_bench -- --leases 10000000
//! ```

#![expect(
    clippy::cast_precision_loss,
    reason = "rates and sizes for human-readable statistics"
)]

use std::net::Ipv4Addr;
use std::time::Instant;

use clap::Parser;
use twinlease::lease::{BindingState, ClientKey, Lease4};
use twinlease::pool::{FreeMap, PoolRange, Shard};

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "twinlease lease store benchmark: memory per lease, allocation and lookup rates")]
struct Args {
    /// Leases in the memory test (one pool of this many addresses from 10.0.0.0).
    #[arg(long, default_value_t = 10_000_000)]
    leases: u32,
    /// Shards (workers) the leases are spread over, by client key.
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Reserve each shard's capacity up front (pool size / shards) instead of growing.
    #[arg(long)]
    reserve: bool,
    /// Allocations timed on one thread in a fresh one-shard store.
    #[arg(long, default_value_t = 2_000_000)]
    allocs: u32,
    /// Lookups by client timed on one thread in the big store.
    #[arg(long, default_value_t = 2_000_000)]
    lookups: u32,
    /// Requests per batch in the batched runs.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

/// `VmRSS` of this process in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Client `i`'s key: option 61 = hardware type 1 + a locally administered MAC (7 bytes).
fn client(i: u32) -> (ClientKey, [u8; 6]) {
    let b = i.to_be_bytes();
    let mac = [0x02, 0x42, b[0], b[1], b[2], b[3]];
    let mut id = [1u8; 7];
    id[1..].copy_from_slice(&mac);
    (
        ClientKey::from_client_id(&id).expect("7-byte client id"),
        mac,
    )
}

fn active(addr: Ipv4Addr, key: &ClientKey, chaddr: [u8; 6], now: u32) -> Lease4 {
    Lease4 {
        addr,
        state: BindingState::Active,
        client: *key,
        chaddr,
        subnet_id: 1,
        expires: now + 3600,
        cltt: now,
        partner_expires: now + 1800,
        update_pending: true,
    }
}

fn one_pool(n: u32) -> FreeMap {
    let start = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let pool = PoolRange {
        id: 1,
        subnet_id: 1,
        start: Ipv4Addr::from(start),
        end: Ipv4Addr::from(start + n - 1),
    };
    FreeMap::new(&[pool], 1, &|_| false).expect("valid pool")
}

/// A permutation of `0..n` visited pseudo-randomly: multiplying by a prime larger than any
/// pool (the free map holds at most 2^28 addresses) is a bijection modulo `n`.
fn scrambled(i: u32, n: u32) -> u32 {
    const STEP: u64 = 2_654_435_761;
    ((u64::from(i) * STEP) % u64::from(n)) as u32
}

/// Seconds to make `args.allocs` allocations (`take_free` + `upsert` of an ACTIVE lease of a
/// new client) in a fresh one-shard store, in batches of `batch` (1: one at a time, no
/// prefetch; more: claim the batch's addresses, `prefetch_client` and `prefetch_addr` for
/// the whole batch, then the upserts).
fn allocate(args: &Args, now: u32, batch: usize) -> f64 {
    let free = one_pool(args.allocs);
    let mut shard = if args.reserve {
        Shard::with_capacity(0, 1, args.allocs as usize)
    } else {
        Shard::new(0, 1)
    };
    let mut cursor = 0u32;
    let t = Instant::now();
    if batch <= 1 {
        for i in 0..args.allocs {
            let (key, mac) = client(i);
            let addr = free
                .take_free(1, 0, &mut cursor)
                .expect("pool sized for every client");
            shard.upsert(active(addr, &key, mac, now));
        }
    } else {
        let mut reqs: Vec<(ClientKey, [u8; 6], Ipv4Addr)> = Vec::with_capacity(batch);
        let mut i = 0;
        while i < args.allocs {
            let m = (args.allocs - i).min(u32::try_from(batch).unwrap_or(u32::MAX));
            reqs.clear();
            reqs.extend((i..i + m).map(|j| {
                let (key, mac) = client(j);
                let addr = free
                    .take_free(1, 0, &mut cursor)
                    .expect("pool sized for every client");
                (key, mac, addr)
            }));
            for (key, _, addr) in &reqs {
                shard.prefetch_client(key, 1);
                shard.prefetch_addr(*addr);
            }
            for (key, mac, addr) in &reqs {
                shard.upsert(active(*addr, key, *mac, now));
            }
            i += m;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(shard.len(), args.allocs as usize);
    secs
}

fn main() {
    let args = Args::parse();
    let now = 1_700_000_000u32;
    let n = args.leases;

    // (a) Memory: every address of one pool leased to a distinct client.
    let rss0 = rss_bytes();
    let start = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let pool = PoolRange {
        id: 1,
        subnet_id: 1,
        start: Ipv4Addr::from(start),
        end: Ipv4Addr::from(start + n - 1),
    };
    let free = FreeMap::new(&[pool], args.shards, &|_| false).expect("valid pool");
    // The hash split is not exact: leave 1 % headroom so no shard outgrows its reservation.
    let per_shard = n as usize / args.shards * 101 / 100 + 1024;
    let mut shards: Vec<Shard> = (0..args.shards)
        .map(|s| {
            if args.reserve {
                Shard::with_capacity(s, args.shards, per_shard)
            } else {
                Shard::new(s, args.shards)
            }
        })
        .collect();
    let mut cursors = vec![0u32; args.shards];
    let t = Instant::now();
    for i in 0..n {
        let (key, mac) = client(i);
        let s = key.shard(args.shards);
        let addr = free
            .take_free(1, s, &mut cursors[s])
            .expect("pool sized for every client");
        shards[s].upsert(active(addr, &key, mac, now));
    }
    let fill_secs = t.elapsed().as_secs_f64();
    assert_eq!(free.free_count(1), 0);
    let rss1 = rss_bytes();
    let heap: usize = shards.iter().map(Shard::memory_bytes).sum::<usize>() + free.memory_bytes();
    let rss_per_lease = rss1.saturating_sub(rss0) as f64 / f64::from(n);
    let heap_per_lease = heap as f64 / f64::from(n);

    // (c) Lookups by client in the big store, in scrambled order (cache-missing).
    let lk = args.lookups.min(n);
    let t = Instant::now();
    let mut found = 0u32;
    for i in 0..lk {
        let (key, _) = client(scrambled(i, n));
        if shards[key.shard(args.shards)]
            .get_by_client(&key, 1)
            .is_some()
        {
            found += 1;
        }
    }
    let lookup_secs = t.elapsed().as_secs_f64();
    assert_eq!(found, lk, "every client has its lease");

    // (c') The same lookups in batches: prefetch the index buckets of the whole batch, then
    // the records, then look up.
    let batch = args.batch.max(1);
    let mut keys: Vec<ClientKey> = Vec::with_capacity(batch);
    let t = Instant::now();
    let mut found = 0u32;
    let mut i = 0;
    while i < lk {
        let m = (lk - i).min(u32::try_from(batch).unwrap_or(u32::MAX));
        keys.clear();
        keys.extend((i..i + m).map(|j| client(scrambled(j, n)).0));
        for k in &keys {
            shards[k.shard(args.shards)].prefetch_client(k, 1);
        }
        for k in &keys {
            shards[k.shard(args.shards)].prefetch_client_record(k, 1);
        }
        for k in &keys {
            if shards[k.shard(args.shards)].get_by_client(k, 1).is_some() {
                found += 1;
            }
        }
        i += m;
    }
    let lookup_batch_secs = t.elapsed().as_secs_f64();
    assert_eq!(found, lk, "every client has its lease");
    drop(shards);
    drop(free);

    // (b) Allocations on one thread: take_free + upsert into a fresh one-shard store, one at a
    // time, then in batches (prefetch_client for the whole batch first).
    let alloc_secs = allocate(&args, now, 1);
    let alloc_batch_secs = allocate(&args, now, batch);

    let mib = |b: f64| b / (1024.0 * 1024.0);
    let fill_rate = f64::from(n) / fill_secs;
    let alloc_rate = f64::from(args.allocs) / alloc_secs;
    let alloc_batch_rate = f64::from(args.allocs) / alloc_batch_secs;
    let lookup_rate = f64::from(lk) / lookup_secs;
    let lookup_batch_rate = f64::from(lk) / lookup_batch_secs;
    println!(
        "twinlease store benchmark ({} shards{})",
        args.shards,
        if args.reserve { ", reserved" } else { "" }
    );
    println!("{:<44} {:>14}", "leases resident", n);
    println!(
        "{:<44} {:>11.1} MiB",
        "RSS before / after",
        mib(rss0 as f64)
    );
    println!("{:<44} {:>11.1} MiB", "", mib(rss1 as f64));
    println!(
        "{:<44} {:>14.1}",
        "RSS bytes per lease (incl. indexes, bitmap)", rss_per_lease
    );
    println!(
        "{:<44} {:>14.1}",
        "heap bytes per lease (capacity based)", heap_per_lease
    );
    println!(
        "{:<44} {:>12.2} M/s",
        "fill: take_free + upsert, 10 M store",
        fill_rate / 1e6
    );
    println!(
        "{:<44} {:>12.2} M/s",
        format!(
            "allocs/core, one at a time, {} M shard",
            args.allocs / 1_000_000
        ),
        alloc_rate / 1e6
    );
    println!(
        "{:<44} {:>12.2} M/s",
        format!("allocs/core, batches of {batch} + prefetch"),
        alloc_batch_rate / 1e6
    );
    println!(
        "{:<44} {:>12.2} M/s",
        "lookups by client/core, one at a time",
        lookup_rate / 1e6
    );
    println!(
        "{:<44} {:>12.2} M/s",
        format!("lookups by client/core, batches of {batch}"),
        lookup_batch_rate / 1e6
    );
    let json = serde_json::json!({
        "bench": "store",
        "shards": args.shards,
        "reserved": args.reserve,
        "leases": n,
        "rss_before_bytes": rss0,
        "rss_after_bytes": rss1,
        "rss_bytes_per_lease": rss_per_lease,
        "heap_bytes_per_lease": heap_per_lease,
        "fill_per_sec": fill_rate,
        "allocs": args.allocs,
        "allocs_per_sec_per_core": alloc_rate,
        "batch": batch,
        "allocs_per_sec_per_core_batched": alloc_batch_rate,
        "lookups": lk,
        "lookups_per_sec_per_core": lookup_rate,
        "lookups_per_sec_per_core_batched": lookup_batch_rate,
    });
    println!("{json}");
}
