//! The uniqueness check: no address or prefix may be held by two clients at once, whichever
//! server (one, or both of a failover pair) granted it. Keyed on the lease (an IPv4 address,
//! or the index of a DHCPv6 address or prefix, see `scenario`) to the client index holding it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The kind of lease a key names: the keys of different kinds live in separate tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseKind {
    /// A DHCPv4 address, or a DHCPv6 `IA_NA` address.
    Address,
    /// A DHCPv6 delegated prefix.
    Prefix,
}

/// A duplicate found: the lease, the client that held it and the one it was granted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The kind of lease.
    pub kind: LeaseKind,
    /// Its key.
    pub key: u32,
    /// The client that held it.
    pub holder: u32,
    /// The client it was granted to as well.
    pub other: u32,
}

/// Multiply-shift hashing of 32-bit keys: the keys are addresses and indexes, no adversary.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        // The golden-ratio multiplier spreads consecutive keys over the high bits, which
        // hashbrown uses for its control bytes, and the rotation brings them down for the
        // bucket index.
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

type Table = HashMap<u32, u32, BuildHasherDefault<KeyHasher>>;

/// Who holds which lease, and the duplicates seen.
#[derive(Default)]
pub struct Uniqueness {
    addresses: Table,
    prefixes: Table,
    duplicates: u64,
    examples: Vec<Duplicate>,
}

/// Duplicates kept as examples for the report.
const EXAMPLES: usize = 8;

impl Uniqueness {
    /// An empty check with room for `expected` leases of each kind in use.
    #[must_use]
    pub fn with_capacity(addresses: usize, prefixes: usize) -> Self {
        Self {
            addresses: Table::with_capacity_and_hasher(addresses, BuildHasherDefault::default()),
            prefixes: Table::with_capacity_and_hasher(prefixes, BuildHasherDefault::default()),
            ..Self::default()
        }
    }

    fn table(&mut self, kind: LeaseKind) -> &mut Table {
        match kind {
            LeaseKind::Address => &mut self.addresses,
            LeaseKind::Prefix => &mut self.prefixes,
        }
    }

    /// Records that `client` was granted lease `key`. When another client holds it, that is a
    /// duplicate: it is counted and returned, and the lease is recorded for `client` (the
    /// newest grant), so a third grant counts again.
    pub fn bind(&mut self, kind: LeaseKind, key: u32, client: u32) -> Option<Duplicate> {
        let previous = self.table(kind).insert(key, client);
        match previous {
            Some(holder) if holder != client => {
                let d = Duplicate {
                    kind,
                    key,
                    holder,
                    other: client,
                };
                self.duplicates += 1;
                if self.examples.len() < EXAMPLES {
                    self.examples.push(d);
                }
                Some(d)
            }
            _ => None,
        }
    }

    /// Records that `client` no longer holds `key` (released, declined, refused, expired).
    /// A key recorded for another client is left alone.
    pub fn unbind(&mut self, kind: LeaseKind, key: u32, client: u32) {
        let table = self.table(kind);
        if table.get(&key) == Some(&client) {
            table.remove(&key);
        }
    }

    /// The client holding `key`.
    #[must_use]
    pub fn holder(&self, kind: LeaseKind, key: u32) -> Option<u32> {
        match kind {
            LeaseKind::Address => self.addresses.get(&key).copied(),
            LeaseKind::Prefix => self.prefixes.get(&key).copied(),
        }
    }

    /// Leases held, both kinds.
    #[must_use]
    pub fn held(&self) -> usize {
        self.addresses.len() + self.prefixes.len()
    }

    /// Duplicates found so far.
    #[must_use]
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The first duplicates found.
    #[must_use]
    pub fn examples(&self) -> &[Duplicate] {
        &self.examples
    }

    /// Approximate heap bytes of the tables: per slot a key, a value and a control byte.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        (self.addresses.capacity() + self.prefixes.capacity()) * (2 * size_of::<u32>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_granted_to_two_clients_is_a_duplicate() {
        let mut u = Uniqueness::with_capacity(16, 16);
        assert_eq!(u.bind(LeaseKind::Address, 100, 1), None);
        assert_eq!(u.bind(LeaseKind::Address, 101, 2), None);
        // The same client renewing the same lease is not a duplicate.
        assert_eq!(u.bind(LeaseKind::Address, 100, 1), None);
        let d = u.bind(LeaseKind::Address, 100, 3).expect("duplicate found");
        assert_eq!(
            d,
            Duplicate {
                kind: LeaseKind::Address,
                key: 100,
                holder: 1,
                other: 3
            }
        );
        assert_eq!(u.duplicates(), 1);
        assert_eq!(u.examples(), &[d]);
        assert_eq!(u.holder(LeaseKind::Address, 100), Some(3));
    }

    #[test]
    fn a_released_lease_may_go_to_another_client() {
        let mut u = Uniqueness::default();
        u.bind(LeaseKind::Prefix, 7, 1);
        // Another client's release does not free it.
        u.unbind(LeaseKind::Prefix, 7, 2);
        assert_eq!(u.holder(LeaseKind::Prefix, 7), Some(1));
        u.unbind(LeaseKind::Prefix, 7, 1);
        assert_eq!(u.holder(LeaseKind::Prefix, 7), None);
        assert_eq!(u.bind(LeaseKind::Prefix, 7, 2), None);
        assert_eq!(u.duplicates(), 0);
    }

    #[test]
    fn kinds_are_separate() {
        let mut u = Uniqueness::default();
        u.bind(LeaseKind::Address, 5, 1);
        assert_eq!(u.bind(LeaseKind::Prefix, 5, 2), None);
        assert_eq!(u.held(), 2);
        assert!(u.memory_bytes() > 0);
    }

    #[test]
    fn many_clients_one_duplicate() {
        let mut u = Uniqueness::with_capacity(100_000, 0);
        for c in 0..100_000u32 {
            assert_eq!(u.bind(LeaseKind::Address, 0x0a00_0000 + c, c), None);
        }
        // One server hands client 100000 the address of client 31337.
        assert!(
            u.bind(LeaseKind::Address, 0x0a00_0000 + 31_337, 100_000)
                .is_some()
        );
        assert_eq!(u.duplicates(), 1);
    }
}
