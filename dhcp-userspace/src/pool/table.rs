//! A table of compact records with two indexes: by address, and by (client key, subnet).
//!
//! Records live in a `Vec` of slots with a list of vacant slots threaded through them. Both
//! indexes are `hashbrown::HashTable<u32>` holding slot numbers only: the hash is computed
//! from the record, so an entry costs 4 bytes plus one control byte.
//!
//! Index rules:
//! - `by_addr`: exactly one entry per live record.
//! - `by_client`: at most one entry per (client key, subnet), pointing at the record of that
//!   client in that subnet that was written last. When that record is removed, or rewritten
//!   for another client, the entry goes away (the client's older records stay reachable by
//!   address).

use hashbrown::HashTable;

use super::record::{KeyArena, Rec};
use crate::lease::{Lease4, hash_bytes};

/// No slot.
const NONE: u32 = u32::MAX;

/// 64-bit finaliser (the `MurmurHash3` fmix64 constants): hashbrown uses both the top 7
/// bits (control byte) and the low bits (bucket), so both must be well mixed.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Address hash that keeps runs of 64 consecutive addresses in 64 consecutive buckets: the
/// free map hands addresses out in order, so consecutive inserts touch the same few cache
/// lines of the index instead of one random line each. The bucket bits (hashbrown uses the
/// low bits) are the address's low 6 bits above a mix of the rest; the top 7 bits (hashbrown's
/// control tag) mix the whole address, so neighbours do not share a tag.
fn addr_hash(a: u32) -> u64 {
    const TAG: u64 = 0x7f << 57;
    let a = u64::from(a);
    let block = (mix64(a >> 6) << 6) | (a & 63);
    (block & !TAG) | (mix64(a) & TAG)
}

fn client_hash(key: &[u8], subnet_id: u32) -> u64 {
    mix64(hash_bytes(key) ^ u64::from(subnet_id))
}

/// Records plus their indexes and key arena.
#[derive(Default)]
pub(crate) struct Table {
    recs: Vec<Rec>,
    /// Head of the vacant-slot list.
    vacant: u32,
    live: usize,
    by_addr: HashTable<u32>,
    by_client: HashTable<u32>,
    arena: KeyArena,
}

impl Table {
    pub(crate) fn new() -> Self {
        Self {
            vacant: NONE,
            ..Self::default()
        }
    }

    /// Make room for `n` more records without reallocating.
    pub(crate) fn reserve(&mut self, n: usize) {
        let Self {
            recs,
            by_addr,
            by_client,
            arena,
            ..
        } = self;
        recs.reserve(n);
        by_addr.reserve(n, |&s| addr_hash(recs[s as usize].addr));
        by_client.reserve(n, |&s| {
            let r = &recs[s as usize];
            client_hash(r.key(arena), r.subnet_id)
        });
    }

    /// Live records.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Slots (live or vacant): the range of valid slot numbers.
    pub(crate) fn slots(&self) -> usize {
        self.recs.len()
    }

    pub(crate) fn rec(&self, slot: u32) -> &Rec {
        &self.recs[slot as usize]
    }

    /// Mutable access to a record. The caller must not change its address, key or subnet
    /// (the indexes hash them); state, times and flags are fine.
    pub(crate) fn rec_mut(&mut self, slot: u32) -> &mut Rec {
        &mut self.recs[slot as usize]
    }

    pub(crate) fn lease(&self, slot: u32) -> Lease4 {
        self.rec(slot).lease(&self.arena)
    }

    pub(crate) fn slot_of_addr(&self, addr: u32) -> Option<u32> {
        let recs = &self.recs;
        self.by_addr
            .find(addr_hash(addr), |&s| recs[s as usize].addr == addr)
            .copied()
    }

    pub(crate) fn slot_of_client(&self, key: &[u8], subnet_id: u32) -> Option<u32> {
        let Self {
            recs,
            by_client,
            arena,
            ..
        } = self;
        by_client
            .find(client_hash(key, subnet_id), |&s| {
                recs[s as usize].is_client(key, subnet_id, arena)
            })
            .copied()
    }

    /// Insert or replace the record of `l.addr`; it becomes the client's latest record.
    /// Returns its slot.
    pub(crate) fn upsert(&mut self, l: &Lease4) -> u32 {
        let a = u32::from(l.addr);
        let slot = if let Some(slot) = self.slot_of_addr(a) {
            let r = self.rec(slot);
            if !r.is_client(l.client.as_bytes(), l.subnet_id, &self.arena) {
                // The address changes hands: the previous client's entry must not follow it.
                self.unlink_client(slot);
            }
            let Self { recs, arena, .. } = self;
            recs[slot as usize].replace(l, arena);
            slot
        } else {
            let rec = Rec::new(l, &mut self.arena);
            let slot = self.alloc_slot(rec);
            let recs = &self.recs;
            self.by_addr
                .insert_unique(addr_hash(a), slot, |&s| addr_hash(recs[s as usize].addr));
            slot
        };
        self.link_client(slot);
        slot
    }

    /// Point the client index entry of `slot`'s (key, subnet) at `slot`.
    fn link_client(&mut self, slot: u32) {
        let Self {
            recs,
            by_client,
            arena,
            ..
        } = self;
        let r = &recs[slot as usize];
        let key = r.key(arena);
        let h = client_hash(key, r.subnet_id);
        let entry = by_client.entry(
            h,
            |&s| recs[s as usize].is_client(key, r.subnet_id, arena),
            |&s| {
                let o = &recs[s as usize];
                client_hash(o.key(arena), o.subnet_id)
            },
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = slot,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(slot);
            }
        }
    }

    /// Drop the client index entry of `slot`'s (key, subnet) if it points at `slot`.
    pub(crate) fn unlink_client(&mut self, slot: u32) {
        let r = &self.recs[slot as usize];
        let h = client_hash(r.key(&self.arena), r.subnet_id);
        if let Ok(e) = self.by_client.find_entry(h, |&s| s == slot) {
            e.remove();
        }
    }

    /// Remove the record in `slot` from both indexes and free the slot.
    pub(crate) fn remove_slot(&mut self, slot: u32) -> Lease4 {
        let lease = self.lease(slot);
        self.unlink_client(slot);
        let h = addr_hash(self.recs[slot as usize].addr);
        if let Ok(e) = self.by_addr.find_entry(h, |&s| s == slot) {
            e.remove();
        }
        let Self { recs, arena, .. } = self;
        recs[slot as usize].free_key(arena);
        recs[slot as usize] = Rec::vacant(self.vacant);
        self.vacant = slot;
        self.live -= 1;
        lease
    }

    fn alloc_slot(&mut self, rec: Rec) -> u32 {
        self.live += 1;
        if self.vacant == NONE {
            let slot = u32::try_from(self.recs.len())
                .ok()
                .filter(|&s| s != NONE)
                .unwrap_or_else(|| panic!("more than {} records in one table", NONE - 1));
            self.recs.push(rec);
            slot
        } else {
            let slot = self.vacant;
            self.vacant = self.recs[slot as usize].addr;
            self.recs[slot as usize] = rec;
            slot
        }
    }

    /// Slots of the live records.
    pub(crate) fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_live())
            .map(|(s, _)| s as u32)
    }

    /// Approximate heap bytes (capacity based).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.recs.capacity() * size_of::<Rec>()
            + self.by_addr.allocation_size()
            + self.by_client.allocation_size()
            + self.arena.memory_bytes()
    }

    /// Live bytes in the key arena (tests only).
    #[cfg(test)]
    pub(crate) fn arena_live_bytes(&self) -> usize {
        self.arena.live_bytes()
    }

    /// Check every index invariant of the module documentation (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let live: Vec<u32> = self.live_slots().collect();
        assert_eq!(live.len(), self.live);
        assert_eq!(self.by_addr.len(), self.live);
        for &s in &live {
            assert_eq!(self.slot_of_addr(self.rec(s).addr), Some(s));
        }
        for &s in &self.by_client {
            let r = self.rec(s);
            assert!(r.is_live(), "client index points at vacant slot {s}");
            assert_eq!(
                self.slot_of_client(r.key(&self.arena), r.subnet_id),
                Some(s)
            );
        }
        let mut n = 0;
        let mut v = self.vacant;
        while v != NONE {
            assert!(!self.rec(v).is_live());
            v = self.rec(v).addr;
            n += 1;
        }
        assert_eq!(n + self.live, self.recs.len());
    }
}
