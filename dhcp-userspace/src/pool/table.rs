//! A table of compact records with two indexes: by address, and by (client key, subnet).
//!
//! Records live in a `Vec` of slots with a list of vacant slots threaded through them. Both
//! indexes are [`Index`]es (linear probing, 8 bytes an entry: a 32-bit hash and the slot
//! number), whose home bucket is known from the hash alone, so [`Table::prefetch_client_hash`]
//! and [`Table::prefetch_addr`] can start a batch's cache misses before they are needed.
//!
//! Index rules:
//! - `by_addr`: exactly one entry per live record.
//! - `by_client`: at most one entry per (client key, subnet), pointing at the record of that
//!   client in that subnet that was written last. When that record is removed, or rewritten
//!   for another client, the entry goes away (the client's older records stay reachable by
//!   address).

use super::index::{Index, prefetch};
use super::record::{KeyArena, Rec};
use crate::lease::{Lease4, hash_bytes};

/// No slot.
const NONE: u32 = u32::MAX;

/// 64-bit finaliser (the `MurmurHash3` fmix64 constants).
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Address hash: the `MurmurHash3` fmix32 finaliser, a bijection of `u32`, so two
/// addresses never share a hash and a new address never touches a record while probing.
///
/// Not a locality-keeping hash: mapping runs of consecutive addresses to runs of consecutive
/// buckets (so in-order allocations hit the same cache lines) makes linear probing form long
/// clusters, whose scans cost more than the misses they save. The bucket miss is instead
/// overlapped with the client index's in [`Table::upsert`], and batches prefetch it.
fn addr_hash(a: u32) -> u32 {
    let mut h = a;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn client_hash(key: &[u8], subnet_id: u32) -> u32 {
    // The low half of a full 64-bit mix (the index uses every bit of it).
    mix64(hash_bytes(key) ^ u64::from(subnet_id)) as u32
}

/// Records plus their indexes and key arena.
#[derive(Default)]
pub(crate) struct Table {
    recs: Vec<Rec>,
    /// Head of the vacant-slot list.
    vacant: u32,
    live: usize,
    by_addr: Index,
    by_client: Index,
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
        self.recs.reserve(n);
        self.by_addr.reserve(n);
        self.by_client.reserve(n);
    }

    /// Start loading what a lookup or upsert of `addr` will touch: its index bucket.
    pub(crate) fn prefetch_addr(&self, addr: u32) {
        self.by_addr.prefetch(addr_hash(addr));
    }

    /// The client index hash of (`key`, `subnet_id`), for [`Self::prefetch_client_hash`].
    pub(crate) fn client_hash(key: &[u8], subnet_id: u32) -> u32 {
        client_hash(key, subnet_id)
    }

    /// Start loading what a lookup or upsert of the client of hash `h` (see
    /// [`Self::client_hash`]) will touch: its index bucket.
    pub(crate) fn prefetch_client_hash(&self, h: u32) {
        self.by_client.prefetch(h);
    }

    /// Second stage of a batch: when the client's index bucket is already cached (after
    /// [`Self::prefetch_client_hash`]), find its record and start loading it.
    pub(crate) fn prefetch_client_record(&self, h: u32) {
        if let Some(s) = self.by_client.find(h, |_| true) {
            // A 52-byte record may straddle two cache lines: fetch both ends.
            let p = self.recs.as_ptr().wrapping_add(s as usize);
            prefetch(p);
            prefetch(p.cast::<u8>().wrapping_add(size_of::<Rec>() - 1));
        }
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
            .find(addr_hash(addr), |s| recs[s as usize].addr == addr)
    }

    pub(crate) fn slot_of_client(&self, key: &[u8], subnet_id: u32) -> Option<u32> {
        let Self {
            recs,
            by_client,
            arena,
            ..
        } = self;
        by_client.find(client_hash(key, subnet_id), |s| {
            recs[s as usize].is_client(key, subnet_id, arena)
        })
    }

    /// Insert or replace the record of `l.addr`; it becomes the client's latest record.
    /// Returns its slot.
    pub(crate) fn upsert(&mut self, l: &Lease4) -> u32 {
        let a = u32::from(l.addr);
        // Both index buckets are (usually) cache misses at unrelated addresses: start the
        // client one now so it overlaps the address one instead of following it.
        self.by_client
            .prefetch(client_hash(l.client.as_bytes(), l.subnet_id));
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
            self.by_addr.insert_unique(addr_hash(a), slot);
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
        by_client.set(h, slot, |s| {
            recs[s as usize].is_client(key, r.subnet_id, arena)
        });
    }

    /// Drop the client index entry of `slot`'s (key, subnet) if it points at `slot`.
    pub(crate) fn unlink_client(&mut self, slot: u32) {
        let r = &self.recs[slot as usize];
        let h = client_hash(r.key(&self.arena), r.subnet_id);
        self.by_client.remove(h, |s| s == slot);
    }

    /// Remove the record in `slot` from both indexes and free the slot.
    pub(crate) fn remove_slot(&mut self, slot: u32) -> Lease4 {
        let lease = self.lease(slot);
        self.unlink_client(slot);
        let h = addr_hash(self.recs[slot as usize].addr);
        self.by_addr.remove(h, |s| s == slot);
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
            + self.by_addr.memory_bytes()
            + self.by_client.memory_bytes()
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
        self.by_addr.check();
        self.by_client.check();
        for s in self.by_client.slots() {
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
