//! Allocation micro-benchmark: `FreeMap::take_free` + `Shard::upsert` of an ACTIVE lease for
//! a new client, the core of a first DHCPACK. The store starts empty with a pool of 2^18
//! addresses; when the pool runs dry a fresh store is built outside the timed region.
//!
//! ```text
//! cargo bench -p twinlease-bench --bench alloc -- --warm-up-time 1 --measurement-time 3
//! ```

#![expect(missing_docs, reason = "criterion_group! generates an undocumented fn")]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twinlease::lease::{BindingState, ClientKey, Lease4};
use twinlease::pool::{FreeMap, PoolRange, Shard};

const POOL: u32 = 1 << 18;
const NOW: u32 = 1_700_000_000;

fn fresh() -> (FreeMap, Shard) {
    let start = u32::from(Ipv4Addr::new(10, 64, 0, 0));
    let pool = PoolRange {
        id: 1,
        subnet_id: 1,
        start: Ipv4Addr::from(start),
        end: Ipv4Addr::from(start + POOL - 1),
    };
    let free = FreeMap::new(&[pool], 1, &|_| false).expect("valid pool");
    (free, Shard::with_capacity(0, 1, POOL as usize))
}

fn lease(i: u32, addr: Ipv4Addr) -> Lease4 {
    let b = i.to_be_bytes();
    let mac = [0x02, 0x42, b[0], b[1], b[2], b[3]];
    Lease4 {
        addr,
        state: BindingState::Active,
        client: ClientKey::from_hw(1, &mac).expect("6-byte chaddr"),
        chaddr: mac,
        subnet_id: 1,
        expires: NOW + 3600,
        cltt: NOW,
        partner_expires: NOW + 1800,
        update_pending: true,
    }
}

/// Time `iters` allocations, rebuilding the store (untimed) whenever its pool is empty.
fn allocate(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let (free, mut shard) = fresh();
        let mut cursor = 0u32;
        let n = left.min(u64::from(POOL)) as u32;
        let t = Instant::now();
        for i in 0..n {
            let addr = free
                .take_free(1, 0, &mut cursor)
                .expect("pool sized for the run");
            shard.upsert(lease(i, addr));
        }
        total += t.elapsed();
        black_box(shard.len());
        left -= u64::from(n);
        // The store is dropped outside the timed region.
    }
    total
}

fn alloc(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc");
    g.throughput(Throughput::Elements(1));
    g.bench_function("take_free_upsert", |b| b.iter_custom(allocate));
    g.finish();
}

criterion_group!(benches, alloc);
criterion_main!(benches);
