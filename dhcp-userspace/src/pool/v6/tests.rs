//! Tests of the DHCPv6 pools and shards.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::lease::{BindingState, ClientKey, IaKind, Lease6};

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// DUID-LL (RFC 8415 §11.4) of client `i`: 10 bytes.
fn duid(i: u32) -> ClientKey {
    let b = i.to_be_bytes();
    ClientKey::from_duid(&[0, 3, 0, 1, 0x02, 0, b[0], b[1], b[2], b[3]]).unwrap()
}

fn lease(kind: IaKind, addr: Ipv6Addr, len: u8, client: &ClientKey, iaid: u32) -> Lease6 {
    Lease6 {
        kind,
        addr,
        prefix_len: len,
        state: BindingState::Active,
        client: *client,
        iaid,
        subnet_id: 1,
        preferred_until: 500,
        expires: 1000,
        cltt: 100,
        partner_expires: 0,
        update_pending: true,
    }
}

fn na(id: u32, start: &str, end: &str) -> Pool6 {
    Pool6 {
        id,
        subnet_id: 1,
        kind: Pool6Kind::Na {
            start: ip(start),
            end: ip(end),
        },
    }
}

fn pd(id: u32, prefix: &str, plen: u8, dlen: u8, excluded: Option<(&str, u8)>) -> Pool6 {
    Pool6 {
        id,
        subnet_id: 1,
        kind: Pool6Kind::Pd {
            prefix: ip(prefix),
            prefix_len: plen,
            delegated_len: dlen,
            excluded: excluded.map(|(a, l)| (ip(a), l)),
        },
    }
}

fn shard(pools: &[Pool6], shards: usize, reserved: &[(Ipv6Addr, u8)], id: usize) -> Shard6 {
    Shard6::new(
        id,
        shards,
        Arc::new(Space6::new(pools, shards, reserved).unwrap()),
    )
}

#[test]
fn space_rejects_bad_pools() {
    let e = |p: &[Pool6]| Space6::new(p, 2, &[]).unwrap_err();
    assert_eq!(
        e(&[na(1, "2001:db8::9", "2001:db8::1")]),
        Pool6Error::EmptyRange {
            id: 1,
            start: ip("2001:db8::9"),
            end: ip("2001:db8::1")
        }
    );
    assert!(matches!(
        e(&[pd(2, "2001:db8::", 48, 40, None)]),
        Pool6Error::BadLength { id: 2, .. }
    ));
    assert!(matches!(
        e(&[pd(2, "2001:db8::", 48, 129, None)]),
        Pool6Error::BadLength { id: 2, .. }
    ));
    assert!(matches!(
        e(&[pd(3, "2001:db8:0:1::", 48, 56, None)]),
        Pool6Error::NotAligned { id: 3, .. }
    ));
    // Excluded prefix outside the pool, misaligned, or as short as the pool.
    for x in [("2001:db9::", 64), ("2001:db8::1", 64), ("2001:db8::", 48)] {
        assert!(matches!(
            e(&[pd(4, "2001:db8::", 48, 56, Some(x))]),
            Pool6Error::BadExcluded { id: 4, .. }
        ));
    }
    assert_eq!(
        e(&[na(5, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]),
        Pool6Error::TooLarge { id: 5 }
    );
    assert_eq!(
        e(&[pd(6, "::", 0, 128, None)]),
        Pool6Error::TooLarge { id: 6 }
    );
    // Overlap within a kind and across kinds (an address inside a delegable prefix).
    assert_eq!(
        e(&[
            na(1, "2001:db8::1", "2001:db8::10"),
            na(2, "2001:db8::10", "2001:db8::20")
        ]),
        Pool6Error::Overlap { a: 1, b: 2 }
    );
    assert_eq!(
        e(&[
            pd(7, "2001:db8::", 48, 56, None),
            na(8, "2001:db8:0:5::1", "2001:db8:0:5::9")
        ]),
        Pool6Error::Overlap { a: 7, b: 8 }
    );
    assert_eq!(
        e(&[
            na(1, "2001:db8::1", "2001:db8::2"),
            na(1, "2001:db8::5", "2001:db8::6")
        ]),
        Pool6Error::DuplicateId(1)
    );
    let ok = [na(1, "2001:db8::1", "2001:db8::2")];
    assert_eq!(Space6::new(&ok, 0, &[]).unwrap_err(), Pool6Error::NoShards);
    assert!(matches!(
        Space6::new(&ok, 1, &[(ip("2001:db8::1"), 64)]).unwrap_err(),
        Pool6Error::BadReservation { .. }
    ));
    assert!(matches!(
        Space6::new(&ok, 1, &[(ip("2001:db8::1"), 129)]).unwrap_err(),
        Pool6Error::BadReservation { .. }
    ));
}

#[test]
fn pool_of_and_size_edges() {
    let s = Space6::new(
        &[
            na(1, "2001:db8::10", "2001:db8::1f"),
            pd(
                2,
                "2001:db8:100::",
                40,
                48,
                Some(("2001:db8:105:8000::", 50)),
            ),
            pd(3, "2001:db8:200::", 48, 56, Some(("2001:db8:200::", 52))),
            na(4, "2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
        ],
        2,
        &[],
    )
    .unwrap();
    let na_of = |a: &str| s.pool_of(IaKind::Na, ip(a), 128);
    assert_eq!(na_of("2001:db8::10"), Some(1));
    assert_eq!(na_of("2001:db8::1f"), Some(1));
    assert_eq!(na_of("2001:db8::f"), None);
    assert_eq!(na_of("2001:db8::20"), None);
    assert_eq!(s.pool_of(IaKind::Na, ip("2001:db8::10"), 64), None);
    assert_eq!(s.pool_of(IaKind::Pd, ip("2001:db8::10"), 128), None);
    assert_eq!(na_of("2001:db8:1:2:ffff:ffff:ffff:ffff"), Some(4));
    let pd_of = |a: &str, l| s.pool_of(IaKind::Pd, ip(a), l);
    assert_eq!(pd_of("2001:db8:100::", 48), Some(2));
    assert_eq!(pd_of("2001:db8:1ff::", 48), Some(2));
    assert_eq!(pd_of("2001:db8:200::", 48), None, "outside pool 2");
    assert_eq!(pd_of("2001:db8:101::", 56), None, "wrong length");
    assert_eq!(pd_of("2001:db8:101:100::", 48), None, "misaligned");
    assert_eq!(
        pd_of("2001:db8:105::", 48),
        None,
        "contains the excluded /50"
    );
    assert_eq!(pd_of("2001:db8:104::", 48), Some(2));
    assert_eq!(
        s.pool_of(IaKind::Na, ip("2001:db8:104::"), 48),
        None,
        "kind"
    );
    // Pool 3: the excluded /52 covers 16 of the 256 /56s.
    assert_eq!(pd_of("2001:db8:200:f00::", 56), None);
    assert_eq!(pd_of("2001:db8:200:1000::", 56), Some(3));
    assert_eq!(s.size(1), 16);
    assert_eq!(s.size(2), 255);
    assert_eq!(s.size(3), 240);
    assert_eq!(s.size(4), 1 << 64);
    assert_eq!(s.size(99), 0);
    assert_eq!(s.pools().len(), 4);
    assert_eq!(s.shards(), 2);
    assert_eq!(s.owner(IaKind::Na, ip("2001:db8::10"), 128), Some(0));
    assert_eq!(s.owner(IaKind::Na, ip("2001:db8::11"), 128), Some(1));
    assert_eq!(s.owner(IaKind::Pd, ip("2001:db8:101::"), 48), Some(1));
}

/// Claim everything two shards can allocate; return (address, length) per shard.
fn claim_all(shards: &mut [Shard6], pool_id: u32, kind: IaKind) -> Vec<Vec<(Ipv6Addr, u8)>> {
    let mut got = vec![Vec::new(); shards.len()];
    for (w, sh) in shards.iter_mut().enumerate() {
        for c in 0.. {
            let client = duid(c);
            let Some((a, l)) = sh.allocate(pool_id, &client, 1, None) else {
                break;
            };
            // Alternate offers and leases: both must hold the member.
            let ls = lease(kind, a, l, &client, 1);
            if c % 2 == 0 {
                sh.hold_offer(ls, 50);
            } else {
                sh.upsert(ls);
            }
            got[w].push((a, l));
        }
        sh.check();
    }
    got
}

#[test]
fn two_shard_partitions_cover_the_pool_without_overlap() {
    let pools = [
        na(1, "2001:db8::100", "2001:db8::1ff"),
        pd(
            2,
            "2001:db8:100::",
            48,
            56,
            Some(("2001:db8:100:4000::", 64)),
        ),
    ];
    let reserved = [
        (ip("2001:db8::100"), 128),
        (ip("2001:db8::155"), 128),
        (ip("2001:db8:100:8000::"), 56),
        (ip("2001:db8:100:9000::"), 60),
    ];
    let space = Arc::new(Space6::new(&pools, 2, &reserved).unwrap());
    let mut shards: Vec<Shard6> = (0..2)
        .map(|w| Shard6::new(w, 2, Arc::clone(&space)))
        .collect();

    let got = claim_all(&mut shards, 1, IaKind::Na);
    let all: Vec<_> = got.concat();
    let uniq: HashSet<_> = all.iter().copied().collect();
    assert_eq!(uniq.len(), all.len(), "no address handed out twice");
    let want: HashSet<_> = (0x100u128..=0x1ff)
        .filter(|&x| x != 0x100 && x != 0x155)
        .map(|x| (Ipv6Addr::from(0x2001_0db8_u128 << 96 | x), 128))
        .collect();
    assert_eq!(uniq, want);
    for (w, g) in got.iter().enumerate() {
        assert!(
            g.iter()
                .all(|&(a, l)| space.owner(IaKind::Na, a, l) == Some(w))
        );
    }

    let got = claim_all(&mut shards, 2, IaKind::Pd);
    let all: Vec<_> = got.concat();
    let uniq: HashSet<_> = all.iter().copied().collect();
    assert_eq!(uniq.len(), all.len(), "no prefix delegated twice");
    let base = u128::from(ip("2001:db8:100::"));
    let want: HashSet<_> = (0u128..256)
        .filter(|&k| k != 0x40 && k != 0x80 && k != 0x90)
        .map(|k| (Ipv6Addr::from(base | k << 72), 56))
        .collect();
    assert_eq!(uniq, want, "all /56s but the excluded and reserved ones");
    assert_eq!(space.size(2), 255);
    for (w, g) in got.iter().enumerate() {
        assert!(
            g.iter()
                .all(|&(a, l)| space.owner(IaKind::Pd, a, l) == Some(w))
        );
    }
}

#[test]
fn allocation_skips_held_members_and_reuses_expired_ones() {
    let pools = [na(1, "2001:db8::1", "2001:db8::4")];
    let mut sh = shard(&pools, 1, &[(ip("2001:db8::1"), 128)], 0);
    let c = duid(7);
    let mut l = lease(IaKind::Na, ip("2001:db8::2"), 128, &c, 1);
    sh.upsert(l);
    l.addr = ip("2001:db8::3");
    l.state = BindingState::Abandoned;
    sh.upsert(l);
    sh.hold_offer(lease(IaKind::Na, ip("2001:db8::4"), 128, &duid(8), 1), 50);
    assert_eq!(
        sh.allocate(1, &c, 1, None),
        None,
        "reserved, active, abandoned, offered"
    );
    // Same address as a prefix is another key: does not hold the address.
    sh.upsert(lease(IaKind::Pd, ip("2001:db8::4"), 128, &c, 1));
    assert_eq!(sh.allocate(1, &c, 1, None), None);
    // An expired or released lease does not hold its address.
    l.state = BindingState::Expired;
    sh.upsert(l);
    assert_eq!(sh.allocate(1, &c, 1, None), Some((ip("2001:db8::3"), 128)));
    assert!(sh.cancel_offer(IaKind::Na, ip("2001:db8::4")).is_some());
    assert!(sh.cancel_offer(IaKind::Na, ip("2001:db8::4")).is_none());
    l.state = BindingState::Active;
    sh.upsert(l);
    assert_eq!(sh.allocate(1, &c, 1, None), Some((ip("2001:db8::4"), 128)));
    assert_eq!(sh.allocate(9, &c, 1, None), None, "unknown pool");
}

#[test]
fn hints_are_honoured_only_when_allowed() {
    let pools = [
        na(1, "2001:db8::", "2001:db8::ff"),
        pd(
            2,
            "2001:db8:100::",
            48,
            56,
            Some(("2001:db8:100:200::", 56)),
        ),
    ];
    let reserved = [(ip("2001:db8::20"), 128)];
    let mut sh = shard(&pools, 2, &reserved, 0);
    let c = duid(1);
    let hint = |a: &str, l| Some((ip(a), l));
    // Free, in the pool, in partition 0 (even index): honoured.
    assert_eq!(
        sh.allocate(1, &c, 1, hint("2001:db8::42", 128)),
        Some((ip("2001:db8::42"), 128))
    );
    assert_eq!(
        sh.allocate(2, &c, 1, hint("2001:db8:100:400::", 56)),
        Some((ip("2001:db8:100:400::"), 56))
    );
    let ignored = [
        (1, hint("2001:db8::43", 128), "other shard's partition"),
        (1, hint("2001:db8::20", 128), "reserved"),
        (1, hint("2001:db8::1:0", 128), "outside the pool"),
        (1, hint("2001:db8::42", 64), "not an address"),
        (2, hint("2001:db8:100:200::", 56), "excluded (RFC 6603)"),
        (2, hint("2001:db8:100:480::", 56), "misaligned"),
        (2, hint("2001:db8:100:400::", 60), "wrong length"),
        (2, hint("::", 56), "length-only hint"),
    ];
    for (pool, h, why) in ignored {
        let got = sh.allocate(pool, &c, 1, h).unwrap();
        assert_ne!(Some(got), h, "{why}");
        assert_eq!(
            sh.space().pool_of(
                if pool == 1 { IaKind::Na } else { IaKind::Pd },
                got.0,
                got.1
            ),
            Some(pool)
        );
    }
    // Held: ignored, and the allocator picks something else.
    sh.upsert(lease(IaKind::Na, ip("2001:db8::42"), 128, &duid(2), 1));
    let got = sh.allocate(1, &c, 1, hint("2001:db8::42", 128)).unwrap();
    assert_ne!(got.0, ip("2001:db8::42"));
}

#[test]
fn slash64_allocation_is_deterministic_and_bounded() {
    let pools = [na(1, "2001:db8:0:1::", "2001:db8:0:1:ffff:ffff:ffff:ffff")];
    let space = Arc::new(Space6::new(&pools, 2, &[]).unwrap());
    let mut a = Shard6::new(1, 2, Arc::clone(&space));
    let mut b = Shard6::new(1, 2, Arc::clone(&space));
    let mut seen = HashSet::new();
    let start = std::time::Instant::now();
    for i in 0..20_000 {
        let c = duid(i);
        let x = a.allocate(1, &c, 9, None).unwrap();
        assert_eq!(
            b.allocate(1, &c, 9, None),
            Some(x),
            "same (client, iaid), same address"
        );
        assert_eq!(space.owner(IaKind::Na, x.0, x.1), Some(1));
        assert!(seen.insert(x));
        a.upsert(lease(IaKind::Na, x.0, 128, &c, 9));
    }
    // 20 000 allocations: a linear scan of a /64 would never finish.
    assert!(start.elapsed().as_secs() < 20);
    // Another IAID of the same client gets another address; the held one is never returned.
    let c = duid(0);
    let first = a.allocate(1, &c, 9, None).unwrap();
    assert!(
        a.get(IaKind::Na, first.0).is_none(),
        "an address held by nobody"
    );
    assert_ne!(a.allocate(1, &c, 10, None), Some(first));
    a.check();
}

#[test]
fn pd_excluded_larger_than_delegated_blocks_every_overlapping_prefix() {
    let pools = [pd(1, "2001:db8::", 56, 64, Some(("2001:db8:0:10::", 60)))];
    let mut sh = shard(&pools, 1, &[], 0);
    let mut got = HashSet::new();
    for c in 0.. {
        let Some((a, l)) = sh.allocate(1, &duid(c), 0, None) else {
            break;
        };
        assert_eq!(l, 64);
        assert_eq!(u128::from(a) & ((1 << 64) - 1), 0, "aligned /64");
        assert!(got.insert(a));
        sh.upsert(lease(IaKind::Pd, a, l, &duid(c), 0));
    }
    assert_eq!(got.len(), 240);
    assert!(
        (0x10..0x20)
            .all(|k| !got.contains(&Ipv6Addr::from(u128::from(ip("2001:db8::")) | k << 64)))
    );
    assert_eq!(sh.space().size(1), 240);
}

#[test]
fn offers_hold_until_reclaimed() {
    let pools = [na(1, "2001:db8::1", "2001:db8::2")];
    let mut sh = shard(&pools, 1, &[], 0);
    let c = duid(3);
    let a1 = sh.allocate(1, &c, 5, None).unwrap();
    sh.hold_offer(lease(IaKind::Na, a1.0, 128, &c, 5), 100);
    let a2 = sh.allocate(1, &c, 5, None).unwrap();
    assert_ne!(a1, a2);
    sh.hold_offer(lease(IaKind::Na, a2.0, 128, &c, 5), 200);
    assert_eq!(sh.allocate(1, &duid(4), 1, None), None);
    let (o, until) = sh.offer_of(&c, 5, IaKind::Na, 1).unwrap();
    assert_eq!((o.addr, until), (a2.0, 200), "newest offer first");
    assert!(sh.offer_of(&c, 5, IaKind::Pd, 1).is_none());
    assert!(sh.offer_of(&c, 6, IaKind::Na, 1).is_none());
    assert!(sh.offer_of(&c, 5, IaKind::Na, 2).is_none());
    assert!(
        sh.is_empty() && sh.iter().next().is_none(),
        "offers are not leases"
    );
    let st = sh.reclaim(150, 10);
    assert_eq!(st.offers_lapsed, 1);
    assert_eq!(sh.offer_of(&c, 5, IaKind::Na, 1).unwrap().0.addr, a2.0);
    assert_eq!(sh.allocate(1, &duid(4), 1, None), Some(a1));
    // A lease for the offered address supersedes the offer.
    sh.upsert(lease(IaKind::Na, a2.0, 128, &c, 5));
    assert!(sh.offer_of(&c, 5, IaKind::Na, 1).is_none());
    assert_eq!(sh.offers_len(), 0);
    assert_eq!(sh.len(), 1);
    sh.check();
}

#[test]
fn reclaim_expires_active_and_frees_abandoned() {
    let pools = [na(1, "2001:db8::1", "2001:db8::ff")];
    let mut sh = shard(&pools, 1, &[], 0);
    let mk = |n: u128, st, exp| {
        let mut l = lease(
            IaKind::Na,
            Ipv6Addr::from(u128::from(ip("2001:db8::")) | n),
            128,
            &duid(n as u32),
            1,
        );
        l.state = st;
        l.expires = exp;
        l
    };
    sh.upsert(mk(1, BindingState::Active, 100));
    sh.upsert(mk(2, BindingState::Active, 300));
    sh.upsert(mk(3, BindingState::Abandoned, 100));
    sh.upsert(mk(4, BindingState::Released, 100));
    let mut changed = Vec::new();
    let st = sh.reclaim_with(100, 2, &mut |l| changed.push(l.addr));
    assert_eq!(st.visited, 2);
    let st2 = sh.reclaim_with(100, 10, &mut |l| changed.push(l.addr));
    assert_eq!(st.expired + st2.expired, 1);
    assert_eq!(st.abandoned_freed + st2.abandoned_freed, 1);
    changed.sort();
    assert_eq!(changed, [ip("2001:db8::1"), ip("2001:db8::3")]);
    let state = |n: u128| {
        sh.get(IaKind::Na, Ipv6Addr::from(u128::from(ip("2001:db8::")) | n))
            .unwrap()
            .state
    };
    assert_eq!(state(1), BindingState::Expired);
    assert_eq!(state(2), BindingState::Active);
    assert_eq!(state(3), BindingState::Free);
    assert_eq!(state(4), BindingState::Released);
    assert_eq!(sh.reclaim(299, 100).expired, 0);
    assert_eq!(sh.reclaim(300, 100).expired, 1);
    assert!(sh.memory_bytes() > 0);
}

#[test]
fn long_and_non_duid_keys_roundtrip() {
    let pools = [na(1, "2001:db8::1", "2001:db8::ff")];
    let mut sh = shard(&pools, 1, &[], 0);
    let keys = [
        ClientKey::from_duid(&[]).unwrap(),
        ClientKey::from_duid(&[7; 16]).unwrap(),
        ClientKey::from_duid(&[7; 17]).unwrap(),
        ClientKey::from_duid(&[9; 255]).unwrap(),
        ClientKey::from_client_id(&[7; 16]).unwrap(),
        ClientKey::from_bytes(&[0xaa; 256]).unwrap(),
    ];
    for (k, c) in keys.iter().enumerate() {
        let l = lease(IaKind::Na, Ipv6Addr::from(k as u128 + 1), 128, c, 1);
        sh.upsert(l);
        assert_eq!(sh.get(IaKind::Na, l.addr), Some(l));
    }
    for (k, c) in keys.iter().enumerate() {
        let mut out = Vec::new();
        sh.leases_of(c, 1, IaKind::Na, 1, &mut out);
        assert_eq!(out.len(), 1, "key {k} is its own IA");
    }
    sh.check();
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Box<Lease6>),
    Remove(IaKind, Ipv6Addr),
}

fn arb_lease() -> impl Strategy<Value = Lease6> {
    let key = prop_oneof![
        (0u8..4).prop_map(|i| ClientKey::from_duid(&[0, 3, 0, 1, i]).unwrap()),
        (0u8..2).prop_map(|i| ClientKey::from_duid(&[i; 30]).unwrap()),
        (0u8..2).prop_map(|i| ClientKey::from_client_id(&[i; 3]).unwrap()),
    ];
    (
        any::<bool>(),
        0u128..8,
        key,
        0u32..2,
        1u32..3,
        1u8..8,
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(|(pd, a, client, iaid, subnet_id, st, t, pending)| Lease6 {
            kind: if pd { IaKind::Pd } else { IaKind::Na },
            addr: Ipv6Addr::from(a << 64),
            prefix_len: if pd { 64 } else { 128 },
            state: BindingState::from_u8(st).unwrap(),
            client,
            iaid,
            subnet_id,
            preferred_until: t / 2,
            expires: t,
            cltt: t / 3,
            partner_expires: t / 4,
            update_pending: pending,
        })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => arb_lease().prop_map(|l| Op::Upsert(Box::new(l))),
        1 => (any::<bool>(), 0u128..8).prop_map(|(pd, a)| Op::Remove(
            if pd { IaKind::Pd } else { IaKind::Na },
            Ipv6Addr::from(a << 64)
        )),
    ]
}

fn kind_n(k: IaKind) -> u8 {
    match k {
        IaKind::Na => 0,
        IaKind::Pd => 1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The shard against a model: a map (kind, address) → (lease, write sequence).
    #[test]
    fn model_upsert_remove_get_leases_of(ops in proptest::collection::vec(arb_op(), 1..80)) {
        let pools = [na(1, "2001:db8::1", "2001:db8::ff")];
        let mut sh = shard(&pools, 1, &[], 0);
        let mut model: BTreeMap<(u8, Ipv6Addr), (Lease6, usize)> = BTreeMap::new();
        for (seq, op) in ops.into_iter().enumerate() {
            match op {
                Op::Upsert(l) => {
                    let l = *l;
                    sh.upsert(l);
                    model.insert((kind_n(l.kind), l.addr), (l, seq));
                }
                Op::Remove(k, a) => {
                    let want = model.remove(&(kind_n(k), a)).map(|x| x.0);
                    prop_assert_eq!(sh.remove(k, a), want);
                }
            }
            sh.check();
            prop_assert_eq!(sh.len(), model.len());
            for a in 0u128..8 {
                for k in [IaKind::Na, IaKind::Pd] {
                    let addr = Ipv6Addr::from(a << 64);
                    prop_assert_eq!(sh.get(k, addr), model.get(&(kind_n(k), addr)).map(|x| x.0));
                }
            }
            for (l, _) in model.values() {
                let mut got = Vec::new();
                sh.leases_of(&l.client, l.iaid, l.kind, l.subnet_id, &mut got);
                let mut want: Vec<_> = model
                    .values()
                    .filter(|(m, _)| m.client == l.client && m.iaid == l.iaid
                        && m.kind == l.kind && m.subnet_id == l.subnet_id)
                    .collect();
                want.sort_by_key(|x| std::cmp::Reverse(x.1));
                let want: Vec<Lease6> = want.into_iter().map(|x| x.0).collect();
                prop_assert_eq!(got, want);
            }
        }
        let mut all: Vec<_> = sh.iter().map(|l| (kind_n(l.kind), l.addr)).collect();
        all.sort();
        prop_assert_eq!(all, model.keys().copied().collect::<Vec<_>>());
    }
}

/// Allocate every member `s` can give under its share, holding each as an offer.
fn drain(s: &mut Shard6, pool: u32, kind: IaKind) -> Vec<(Ipv6Addr, u8)> {
    let c = duid(77);
    let mut got = Vec::new();
    while let Some((a, len)) = s.allocate(pool, &c, 1, None) {
        let mut l = lease(kind, a, len, &c, 1);
        l.state = BindingState::Free;
        s.hold_offer(l, u32::MAX);
        got.push((a, len));
        assert!(got.len() <= 4096, "allocation never ends");
    }
    got
}

#[test]
fn failover_shares_split_every_pool_between_the_partners() {
    let pools = [
        na(1, "2001:db8::1000", "2001:db8::13ff"),
        pd(2, "2001:db8:100::", 48, 56, None),
    ];
    for shards in [1, 3] {
        let mut prim = HashSet::new();
        let mut sec = HashSet::new();
        for id in 0..shards {
            let mut p = shard(&pools, shards, &[], id);
            p.set_share(Share6::Primary { address_share: 30 });
            prim.extend(drain(&mut p, 1, IaKind::Na));
            prim.extend(drain(&mut p, 2, IaKind::Pd));
            let mut s = shard(&pools, shards, &[], id);
            s.set_share(Share6::Secondary { address_share: 30 });
            sec.extend(drain(&mut s, 1, IaKind::Na));
            sec.extend(drain(&mut s, 2, IaKind::Pd));
        }
        assert!(prim.is_disjoint(&sec), "a member in both shares");
        let na_p = prim.iter().filter(|m| m.1 == 128).count();
        let na_s = sec.iter().filter(|m| m.1 == 128).count();
        assert_eq!(na_p + na_s, 1024, "every address in one share");
        // 30 % of 1024 addresses, give or take the hash's spread.
        assert!((230..=390).contains(&na_p), "primary got {na_p} addresses");
        // Independent allocation of prefixes: the first half to the primary.
        let first_half =
            |m: &(Ipv6Addr, u8)| u128::from(m.0) < u128::from(ip("2001:db8:100:8000::"));
        let pd_p: Vec<_> = prim.iter().filter(|m| m.1 == 56).collect();
        let pd_s: Vec<_> = sec.iter().filter(|m| m.1 == 56).collect();
        assert_eq!((pd_p.len(), pd_s.len()), (128, 128));
        assert!(pd_p.iter().all(|m| first_half(m)));
        assert!(pd_s.iter().all(|m| !first_half(m)));
    }
    // The predicate agrees with what allocation does.
    let s = shard(&pools, 2, &[], 0);
    assert_eq!(
        s.primary_owns(IaKind::Pd, ip("2001:db8:100::"), 56, 50),
        Some(true)
    );
    assert_eq!(
        s.primary_owns(IaKind::Pd, ip("2001:db8:100:ff00::"), 56, 50),
        Some(false)
    );
    assert_eq!(s.primary_owns(IaKind::Na, ip("2001:db8::1"), 128, 50), None);
    assert_eq!(
        s.primary_owns(IaKind::Na, ip("2001:db8::1000"), 128, 100),
        Some(true)
    );
    assert_eq!(
        s.primary_owns(IaKind::Na, ip("2001:db8::1000"), 128, 0),
        Some(false)
    );
}

#[test]
fn a_hint_in_the_partners_share_is_not_given() {
    let pools = [pd(2, "2001:db8:100::", 48, 56, None)];
    let mut s = shard(&pools, 1, &[], 0);
    s.set_share(Share6::Secondary { address_share: 50 });
    let hint = (ip("2001:db8:100::"), 56);
    assert_ne!(s.allocate(2, &duid(1), 1, Some(hint)), Some(hint));
    s.set_share(Share6::Any);
    assert_eq!(s.allocate(2, &duid(1), 1, Some(hint)), Some(hint));
}

#[test]
fn scan_and_partner_acks_track_pending_records() {
    let pools = [na(1, "2001:db8::1000", "2001:db8::10ff")];
    let mut s = shard(&pools, 1, &[], 0);
    let c = duid(5);
    for k in 0..10u32 {
        let mut l = lease(IaKind::Na, ip("2001:db8::1000"), 128, &c, k);
        l.addr = Ipv6Addr::from(u128::from(ip("2001:db8::1000")) + u128::from(k));
        l.update_pending = k % 2 == 0;
        s.upsert(l);
    }
    let mut out = Vec::new();
    let mut next = Some(0);
    while let Some(from) = next {
        next = s.scan(from, 3, true, &mut out);
    }
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|l| l.update_pending));
    let mut all = Vec::new();
    assert_eq!(s.scan(0, 100, false, &mut all), None);
    assert_eq!(all.len(), 10);
    // An ack for the same CLTT clears the flag and records the partner's lifetime.
    let a = out[0];
    let got = s
        .partner_acked(IaKind::Na, a.addr, &c, a.cltt, 5000)
        .unwrap();
    assert!(!got.update_pending);
    assert_eq!(got.partner_expires, 5000);
    // An ack of an older transaction keeps the record pending.
    let b = out[1];
    let got = s
        .partner_acked(IaKind::Na, b.addr, &c, b.cltt - 1, 4000)
        .unwrap();
    assert!(got.update_pending);
    assert_eq!(got.partner_expires, 4000);
    // Another client's ack changes nothing.
    assert!(
        s.partner_acked(IaKind::Na, b.addr, &duid(6), b.cltt, 1)
            .is_none()
    );
    let mut left = Vec::new();
    s.scan(0, 100, true, &mut left);
    assert_eq!(left.len(), 4);
}

#[test]
fn ended_bindings_wait_the_mclt_before_reuse() {
    let pools = [na(1, "2001:db8::1000", "2001:db8::1000")];
    let mut s = shard(&pools, 1, &[], 0);
    s.set_hold_ended(true);
    let c = duid(5);
    let mut l = lease(IaKind::Na, ip("2001:db8::1000"), 128, &c, 1);
    l.state = BindingState::Released;
    l.expires = 1000;
    l.partner_expires = 1200;
    l.update_pending = false;
    s.upsert(l);
    // RELEASED holds the only address.
    assert_eq!(s.allocate(1, &duid(6), 1, None), None);
    let mut changed = Vec::new();
    // Not before max(expires, partner_expires) + MCLT = 1300.
    s.reclaim_delayed(1299, 100, 100, &mut |l| changed.push(*l));
    assert!(changed.is_empty());
    assert_eq!(s.allocate(1, &duid(6), 1, None), None);
    s.reclaim_delayed(1300, 100, 100, &mut |l| changed.push(*l));
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].state, BindingState::Free);
    assert!(changed[0].update_pending, "the partner must hear of it");
    assert_eq!(
        s.allocate(1, &duid(6), 1, None),
        Some((ip("2001:db8::1000"), 128))
    );
    // An ACTIVE binding expires only after the MCLT too.
    let mut a = lease(IaKind::Na, ip("2001:db8::1000"), 128, &c, 1);
    a.expires = 2000;
    a.partner_expires = 0;
    s.upsert(a);
    changed.clear();
    s.reclaim_delayed(2050, 100, 100, &mut |l| changed.push(*l));
    assert!(changed.is_empty());
    s.reclaim_delayed(2100, 100, 100, &mut |l| changed.push(*l));
    assert_eq!(changed[0].state, BindingState::Expired);
}
