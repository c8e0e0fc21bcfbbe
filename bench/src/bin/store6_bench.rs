//! DHCPv6 lease store benchmark: (a) resident memory of `--pd` delegated prefixes plus `--na`
//! addresses, all ACTIVE, spread by DUID over `--shards` shards (`twinlease::pool::v6`),
//! allocated the way a worker does it (`Shard6::allocate` then `Shard6::upsert`); (b) the
//! allocation rate of that fill; (c) lookups of an IA's leases (`Shard6::leases_of`).
//!
//! Pools: one /64 `IA_NA` range and one `IA_PD` pool of /56s from a /32 (2^24 prefixes).
//! Clients: DUID-LLT (14 bytes, RFC 8415 §11.2), one `IA_NA` and one `IA_PD` each.
//!
//! ```text
//! cargo run --release -p twinlease-bench --bin store6_bench -- --na 1000000 --pd 1000000
//! ```

#![expect(
    clippy::cast_precision_loss,
    reason = "rates and sizes for human-readable statistics"
)]

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use twinlease::lease::{BindingState, ClientKey, IaKind, Lease6};
use twinlease::pool::v6::{Pool6, Pool6Kind, Shard6, Space6};

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "twinlease DHCPv6 lease store benchmark: memory per lease, allocation rate")]
struct Args {
    /// Address (`IA_NA`) leases.
    #[arg(long, default_value_t = 1_000_000)]
    na: u32,
    /// Delegated prefix (`IA_PD`) leases.
    #[arg(long, default_value_t = 1_000_000)]
    pd: u32,
    /// Shards the clients are spread over, by DUID.
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Lookups by IA timed after the fill.
    #[arg(long, default_value_t = 2_000_000)]
    lookups: u32,
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

/// Client `i`'s DUID-LLT: type 1, hardware type 1, time, MAC (14 bytes).
fn duid(i: u32) -> ClientKey {
    let b = i.to_be_bytes();
    ClientKey::from_duid(&[
        0, 1, 0, 1, 0x2c, 0x5e, 0x11, 0x07, 0x02, 0x42, b[0], b[1], b[2], b[3],
    ])
    .expect("14-byte DUID")
}

/// Fill `kind` leases for clients `0..n` (IAID 1), each in its owning shard; returns seconds.
fn fill(shards: &mut [Shard6], pool_id: u32, kind: IaKind, n: u32) -> f64 {
    let workers = shards.len();
    let t = Instant::now();
    for i in 0..n {
        let client = duid(i);
        let sh = &mut shards[client.shard(workers)];
        let (addr, prefix_len) = sh
            .allocate(pool_id, &client, 1, None)
            .expect("pool far from full");
        sh.upsert(Lease6 {
            kind,
            addr,
            prefix_len,
            state: BindingState::Active,
            client,
            iaid: 1,
            subnet_id: 1,
            preferred_until: 1_800_000_000,
            expires: 1_800_003_600,
            cltt: 1_700_000_000,
            partner_expires: 0,
            update_pending: true,
        });
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let args = Args::parse();
    let pools = [
        Pool6 {
            id: 1,
            subnet_id: 1,
            kind: Pool6Kind::Na {
                start: "2001:db8:0:1::".parse().expect("address"),
                end: "2001:db8:0:1:ffff:ffff:ffff:ffff".parse().expect("address"),
            },
        },
        Pool6 {
            id: 2,
            subnet_id: 1,
            kind: Pool6Kind::Pd {
                prefix: "2a00::".parse().expect("address"),
                prefix_len: 16,
                delegated_len: 56,
                excluded: None,
            },
        },
    ];
    let space = Arc::new(Space6::new(&pools, args.shards, &[]).expect("valid pools"));
    let rss0 = rss_bytes();
    let mut shards: Vec<Shard6> = (0..args.shards)
        .map(|w| Shard6::new(w, args.shards, Arc::clone(&space)))
        .collect();
    let t_pd = fill(&mut shards, 2, IaKind::Pd, args.pd);
    let t_na = fill(&mut shards, 1, IaKind::Na, args.na);
    let rss = rss_bytes() - rss0;
    let leases: usize = shards.iter().map(Shard6::len).sum();
    let heap: usize = shards.iter().map(Shard6::memory_bytes).sum();
    println!(
        "resident: {leases} leases ({} PD + {} NA) in {} shards: VmRSS +{:.1} MiB = {:.1} B/lease (heap estimate {:.1} B/lease)",
        args.pd,
        args.na,
        args.shards,
        rss as f64 / f64::from(1 << 20),
        rss as f64 / leases as f64,
        heap as f64 / leases as f64,
    );
    println!(
        "allocate+upsert (one thread, growing tables): PD {:.0}/s, NA {:.0}/s",
        f64::from(args.pd) / t_pd,
        f64::from(args.na) / t_na,
    );

    // Lookups of random clients' IA_PD leases.
    let workers = shards.len();
    let mut out = Vec::with_capacity(4);
    let mut found = 0usize;
    let mut x: u32 = 12345;
    let t = Instant::now();
    for _ in 0..args.lookups {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let client = duid(x % args.pd.max(1));
        out.clear();
        shards[client.shard(workers)].leases_of(&client, 1, IaKind::Pd, 1, &mut out);
        found += out.len();
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "leases_of (IA_PD, random clients): {:.0}/s ({found} found)",
        f64::from(args.lookups) / dt
    );
    assert!(
        args.pd == 0 || found == args.lookups as usize,
        "every client holds one prefix"
    );
}
