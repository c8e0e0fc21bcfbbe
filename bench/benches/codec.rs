//! Wire codec micro-benchmarks: DHCPv4 parse of a relayed DISCOVER and REQUEST with option
//! 82, the dispatcher's client-key lookup, DHCPv4 emit of a DHCPACK with the usual options,
//! DHCPv6 parse of a relayed SOLICIT with `IA_NA` + `IA_PD`, DHCPv6 emit of its ADVERTISE.
//!
//! ```text
//! cargo bench -p twinlease-bench --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```

#![expect(missing_docs, reason = "criterion_group! generates an undocumented fn")]

mod common;

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twinlease::wire::{v4, v6};

fn codec(c: &mut Criterion) {
    let discover = common::v4_request(7, None);
    let request = common::v4_request(7, Some((Ipv4Addr::new(10, 64, 1, 7), common::SERVER_ID)));
    let solicit = common::v6_solicit(7);

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    let mut scratch = v4::Scratch::new();
    g.bench_function("v4_parse_discover_opt82", |b| {
        b.iter(|| {
            let r = v4::Request::parse(black_box(&discover), &mut scratch).expect("parses");
            black_box(r.relay_agent_info);
        });
    });
    g.bench_function("v4_parse_request_opt82", |b| {
        b.iter(|| {
            let r = v4::Request::parse(black_box(&request), &mut scratch).expect("parses");
            black_box(r.requested_ip);
        });
    });
    g.bench_function("v4_client_key_fast", |b| {
        b.iter(|| black_box(v4::client_key_fast(black_box(&discover)).expect("key")));
    });
    let mut req_scratch = v4::Scratch::new();
    let req = v4::Request::parse(&request, &mut req_scratch).expect("parses");
    let mut out = [0u8; 1500];
    g.bench_function("v4_emit_ack", |b| {
        b.iter(|| {
            black_box(common::v4_ack(
                black_box(&req),
                Ipv4Addr::new(10, 64, 1, 7),
                &mut out,
            ))
        });
    });
    g.bench_function("v6_parse_relayed_solicit_na_pd", |b| {
        b.iter(|| {
            let r = v6::Request::parse(black_box(&solicit)).expect("parses");
            black_box(r.ia_pd().len());
        });
    });
    let req6 = v6::Request::parse(&solicit).expect("parses");
    assert_eq!((req6.ia_na().len(), req6.ia_pd().len()), (1, 1));
    g.bench_function("v6_emit_advertise_na_pd", |b| {
        b.iter(|| black_box(common::v6_advertise(black_box(&req6), &mut out)));
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
