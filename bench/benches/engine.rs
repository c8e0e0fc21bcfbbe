//! Protocol engine micro-benchmarks: `Engine::handle` in steady state on a shard of
//! 16 384 clients (one free map of 65 000 addresses): DISCOVER → OFFER for clients that hold
//! an offer (re-offer, hold renewed), REQUEST (SELECTING) → ACK for clients with an ACTIVE
//! lease (the lease is committed again and one change record produced). Requests are parsed
//! before timing; clients are visited in a scrambled order so that shard lookups miss the
//! cache the way they do under load.
//!
//! ```text
//! cargo bench -p twinlease-bench --bench engine -- --warm-up-time 1 --measurement-time 3
//! ```

#![expect(missing_docs, reason = "criterion_group! generates an undocumented fn")]

mod common;

use std::hint::black_box;

use common::{EngineFx, NOW, Phase};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twinlease::engine::v4::{MAX_REPLY, Verdict};
use twinlease::wire::v4::MessageType;

/// A permutation of the client indices (multiplying by an odd number is a bijection mod
/// 2^k).
fn order(n: usize) -> Vec<usize> {
    assert!(n.is_power_of_two());
    (0..n)
        .map(|i| i.wrapping_mul(2_654_435_761) & (n - 1))
        .collect()
}

fn one(c: &mut Criterion, name: &str, phase: &Phase, expect: MessageType) {
    let (mut fx, bytes) = EngineFx::prepare(phase);
    let free_before = fx.free.free_count(1);
    let mut scratch = Vec::new();
    let reqs = common::parse_all(&bytes, &mut scratch);
    let order = order(reqs.len());
    let mut out = vec![0u8; MAX_REPLY];
    let mut changes = Vec::with_capacity(4);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    let mut k = 0usize;
    g.bench_function(name, |b| {
        b.iter(|| {
            let req = &reqs[order[k]];
            k = (k + 1) % order.len();
            changes.clear();
            let v = fx.engine.handle(
                black_box(req),
                &fx.ingress,
                NOW,
                &mut fx.shard,
                &fx.free,
                &mut out,
                &mut changes,
            );
            debug_assert!(matches!(v, Verdict::Reply { kind, .. } if kind == expect));
            black_box(v)
        });
    });
    g.finish();
    // Steady state: every answer was the expected one, nothing leaked from the pool.
    for &i in order.iter().take(64) {
        changes.clear();
        let v = fx.engine.handle(
            &reqs[i],
            &fx.ingress,
            NOW,
            &mut fx.shard,
            &fx.free,
            &mut out,
            &mut changes,
        );
        assert!(
            matches!(v, Verdict::Reply { kind, .. } if kind == expect),
            "{v:?}"
        );
    }
    assert_eq!(
        fx.free.free_count(1),
        free_before,
        "no address leaked or taken"
    );
}

fn engine(c: &mut Criterion) {
    one(c, "v4_discover_offer", &Phase::Offered, MessageType::Offer);
    one(c, "v4_request_ack", &Phase::Bound, MessageType::Ack);
}

criterion_group!(benches, engine);
criterion_main!(benches);
