//! Body of the `config_parse` fuzz target (also run on the seed corpus by
//! `tests/fuzz_corpus.rs`).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::{Config, parse};
use crate::pool::FreeMap;
use crate::pool::v6::Space6;

/// Largest pool total for which the body also builds the free map and the v6 space.
const BUILD_LIMIT: u128 = 1 << 16;

/// Parse `data` (when it is UTF-8) as a configuration file and check what came out.
///
/// Invariants: [`parse`] never panics and is deterministic; an error lists at least one
/// problem, each naming the file; an accepted configuration has unique non-zero subnet ids,
/// pools and reservations inside their subnet, delegated lengths between the pool's length
/// and 128, and (when its pools are small) builds both engines, the DHCPv4 free map and the
/// DHCPv6 space without error, as `twinlease run` does at start-up.
///
/// # Panics
/// When one of the invariants above does not hold.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = parse(text, "fuzz.toml");
    assert_eq!(
        first,
        parse(text, "fuzz.toml"),
        "parse is not deterministic"
    );
    match first {
        Err(errors) => {
            assert!(!errors.is_empty(), "an error without a problem");
            for e in &errors {
                assert_eq!(e.file, "fuzz.toml");
                assert!(!e.reason.is_empty(), "an error without a reason: {e:?}");
            }
            assert!(!errors.to_string().is_empty());
        }
        Ok(config) => check(&config),
    }
}

fn check(config: &Config) {
    let mut ids = HashSet::new();
    let mut size4: u128 = 0;
    for s in &config.subnet4 {
        assert!(
            s.id > 0 && ids.insert(s.id),
            "subnet4 id {} reused or zero",
            s.id
        );
        let inside =
            |a: Ipv4Addr| a.to_bits() & s.subnet.mask_u32() == s.subnet.network().to_bits();
        for p in &s.pool {
            assert!(p.start <= p.end, "pool {}-{} reversed", p.start, p.end);
            assert!(
                inside(p.start) && inside(p.end),
                "pool outside {}",
                s.subnet.network()
            );
            size4 += u128::from(p.len());
        }
        for r in &s.reservation {
            assert!(
                inside(r.address),
                "reservation {} outside its subnet",
                r.address
            );
        }
    }
    let mut ids = HashSet::new();
    let mut size6: u128 = 0;
    for s in &config.subnet6 {
        assert!(
            s.id > 0 && ids.insert(s.id),
            "subnet6 id {} reused or zero",
            s.id
        );
        let mask = super::Ipv6Net::mask_of(s.prefix.prefix_len);
        let net = s.prefix.network().to_bits();
        for p in &s.pool {
            assert!(p.start <= p.end, "pool {p} reversed");
            assert!(
                p.start.to_bits() & mask == net && p.end.to_bits() & mask == net,
                "pool {p} outside its subnet"
            );
            size6 = size6.saturating_add(p.end.to_bits() - p.start.to_bits() + 1);
        }
        for p in &s.pd_pool {
            assert!(
                (p.prefix.prefix_len..=128).contains(&p.delegated_len),
                "delegated length {} outside {}..=128",
                p.delegated_len,
                p.prefix.prefix_len
            );
            let bits = u32::from(p.delegated_len - p.prefix.prefix_len);
            size6 = size6.saturating_add(1u128.checked_shl(bits).unwrap_or(u128::MAX));
        }
    }

    let (engine4, ranges) = crate::engine::build_v4(config);
    let (_, pools6, reserved6) = crate::engine::build_v6(config, vec![0, 4, 1, 2, 3, 4]);
    if size4 <= BUILD_LIMIT && !ranges.is_empty() {
        let reserved: Vec<Ipv4Addr> = engine4.reserved_addresses().collect();
        if let Err(e) = FreeMap::new(&ranges, 2, &|a| reserved.contains(&a)) {
            panic!("an accepted configuration has no free map: {e}");
        }
    }
    if size6 <= BUILD_LIMIT
        && !pools6.is_empty()
        && let Err(e) = Space6::new(&pools6, 2, &reserved6)
    {
        panic!("an accepted configuration has no DHCPv6 space: {e}");
    }
}
