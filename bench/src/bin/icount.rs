//! Runs one hot-path operation N times, for instruction counting under callgrind
//! (`cargo xtask bench-micro --icount`): the instruction count of a run with N₂ iterations
//! minus that of a run with N₁, divided by N₂ − N₁, is the cost of one operation with the
//! set-up and the loop entry cancelled out. Instruction counts do not depend on the load of
//! the machine, so they compare across commits where timings on 2 shared cores cannot.
//!
//! The operations work on the same fixtures as the criterion benches (`bench/benches/common`):
//!
//! - `v4-parse`: `wire::v4::Request::parse` of a relayed DHCPREQUEST with option 82;
//! - `v4-emit`: `wire::v4::ReplyWriter` of a DHCPACK with the usual options;
//! - `engine-discover`: `Engine::handle` DISCOVER → OFFER (clients holding an offer);
//! - `engine-request`: `Engine::handle` REQUEST → ACK (clients with an ACTIVE lease);
//! - `v6-parse`: `wire::v6::Request::parse` of a relayed SOLICIT with `IA_NA` + `IA_PD`;
//! - `v6-emit`: `wire::v6::ReplyWriter` of the ADVERTISE to it;
//! - `alloc-take-free`: `FreeMap::take_free` from a fresh pool of 2^18 addresses;
//! - `alloc-take-free-in`: `FreeMap::take_free_in` of the FREE share, every other address
//!   of that pool in the BACKUP share.
//!
//! The timed loop is the function `icount_measure` (never inlined), so that callgrind can
//! count it alone: `valgrind --tool=callgrind --toggle-collect=icount_measure* …`.
//!
//! ```text
//! cargo build --release -p twinlease-bench --bin icount
//! valgrind --tool=callgrind --toggle-collect='icount_measure*' target/release/icount v4-parse 10000
//! ```

#[path = "../../benches/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use common::{EngineFx, NOW, Phase};
use twinlease::engine::v4::MAX_REPLY;
use twinlease::pool::{FreeMap, PoolRange, Share};
use twinlease::wire::{v4, v6};

/// The operations, with a one-line description each.
const OPS: &[(&str, &str)] = &[
    (
        "v4-parse",
        "DHCPv4 Request::parse, relayed REQUEST with option 82",
    ),
    ("v4-emit", "DHCPv4 ReplyWriter, ACK with the usual options"),
    (
        "engine-discover",
        "Engine::handle DISCOVER -> OFFER, steady state",
    ),
    (
        "engine-request",
        "Engine::handle REQUEST -> ACK, steady state",
    ),
    (
        "v6-parse",
        "DHCPv6 Request::parse, relayed SOLICIT with IA_NA + IA_PD",
    ),
    (
        "v6-emit",
        "DHCPv6 ReplyWriter, relayed ADVERTISE with IA_NA + IA_PD",
    ),
    (
        "alloc-take-free",
        "FreeMap::take_free, fresh pool of 2^18 addresses",
    ),
    (
        "alloc-take-free-in",
        "FreeMap::take_free_in FREE share, every other address BACKUP",
    ),
];

/// The measured loop: `op(i)` for `i` in `0..n`. Never inlined, so callgrind's
/// `--toggle-collect=icount_measure*` counts exactly this.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "Rust" fn icount_measure(n: u64, op: &mut dyn FnMut(u64) -> usize) -> usize {
    let mut acc = 0usize;
    for i in 0..n {
        acc = acc.wrapping_add(op(black_box(i)));
    }
    acc
}

fn engine(phase: &Phase, n: u64) -> usize {
    let (mut fx, bytes) = EngineFx::prepare(phase);
    let mut scratch = Vec::new();
    let reqs = common::parse_all(&bytes, &mut scratch);
    let mut out = vec![0u8; MAX_REPLY];
    let mut changes = Vec::with_capacity(4);
    let len = reqs.len() as u64;
    icount_measure(n, &mut |i| {
        changes.clear();
        let v = fx.engine.handle(
            &reqs[(i % len) as usize],
            &fx.ingress,
            NOW,
            &mut fx.shard,
            &fx.free,
            &mut out,
            &mut changes,
        );
        match v {
            twinlease::engine::v4::Verdict::Reply { len, .. } => len,
            other => panic!("unexpected verdict {other:?}"),
        }
    })
}

/// `take_free` (or `take_free_in` of the FREE share, every other address in the BACKUP
/// share) from a fresh pool of 2^18 addresses, one shard; `n` must stay below 2^17.
fn alloc(n: u64, share: Option<Share>) -> usize {
    const POOL: u32 = 1 << 18;
    assert!(n < u64::from(POOL / 2), "pool sized for the run");
    let start = u32::from(Ipv4Addr::new(10, 64, 0, 0));
    let pool = PoolRange {
        id: 1,
        subnet_id: 1,
        start: Ipv4Addr::from(start),
        end: Ipv4Addr::from(start + POOL - 1),
    };
    let free = FreeMap::new(&[pool], 1, &|_| false).expect("valid pool");
    if share.is_some() {
        for a in (start..start + POOL).step_by(2) {
            free.set_backup(Ipv4Addr::from(a), true);
        }
    }
    let mut cursor = 0u32;
    icount_measure(n, &mut |_| {
        let a = match share {
            None => free.take_free(1, 0, &mut cursor),
            Some(s) => free.take_free_in(1, 0, &mut cursor, s),
        };
        u32::from(a.expect("pool sized for the run")) as usize
    })
}

fn run(op: &str, n: u64) -> Option<usize> {
    let request = common::v4_request(7, Some((Ipv4Addr::new(10, 64, 1, 7), common::SERVER_ID)));
    let solicit = common::v6_solicit(7);
    let mut out = [0u8; 1500];
    Some(match op {
        "v4-parse" => {
            let mut scratch = v4::Scratch::new();
            icount_measure(n, &mut |_| {
                let r = v4::Request::parse(black_box(&request), &mut scratch).expect("parses");
                r.relay_agent_info.map_or(0, <[u8]>::len)
            })
        }
        "v4-emit" => {
            let mut scratch = v4::Scratch::new();
            let req = v4::Request::parse(&request, &mut scratch).expect("parses");
            icount_measure(n, &mut |_| {
                common::v4_ack(black_box(&req), Ipv4Addr::new(10, 64, 1, 7), &mut out)
            })
        }
        "engine-discover" => engine(&Phase::Offered, n),
        "engine-request" => engine(&Phase::Bound, n),
        "v6-parse" => icount_measure(n, &mut |_| {
            let r = v6::Request::parse(black_box(&solicit)).expect("parses");
            r.ia_na().len() + r.ia_pd().len()
        }),
        "v6-emit" => {
            let req = v6::Request::parse(&solicit).expect("parses");
            icount_measure(n, &mut |_| common::v6_advertise(black_box(&req), &mut out))
        }
        "alloc-take-free" => alloc(n, None),
        "alloc-take-free-in" => alloc(n, Some(Share::Free)),
        _ => return None,
    })
}

fn usage() -> ExitCode {
    eprintln!("usage: icount <op> <iterations>\n\nops:");
    for (name, what) in OPS {
        eprintln!("  {name:<16} {what}");
    }
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        for (name, what) in OPS {
            println!("{name}\t{what}");
        }
        return ExitCode::SUCCESS;
    }
    let [op, n] = args.as_slice() else {
        return usage();
    };
    let Ok(n) = n.parse::<u64>() else {
        return usage();
    };
    match run(op, n) {
        Some(acc) => {
            println!("{op} {n} {acc}");
            ExitCode::SUCCESS
        }
        None => usage(),
    }
}
