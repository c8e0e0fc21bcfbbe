//! [`Index`]: an open-addressing hash index from a 32-bit hash to a record slot number.
//!
//! The table stores no keys: each entry is one `u64`, the key's 32-bit hash in the high half
//! and `slot + 1` in the low half (0 = empty). The caller hashes its key and confirms a hash
//! match against its own record (`eq`), so an entry costs 8 bytes whatever the key size.
//!
//! - Linear probing from the home bucket `hash & (capacity - 1)`, capacity a power of two,
//!   load at most [`MAX_LOAD_NUM`]` / `[`MAX_LOAD_DEN`] (so every probe sequence meets an
//!   empty entry and stops).
//! - Deletion by backward shift, no tombstones: lookups never slow down with churn.
//! - Since the full 32-bit hash is stored, a lookup touches a record only on a full hash
//!   match (almost always the right one), growth needs neither the records nor rehashing,
//!   and growth copies the old table in probe order, so its writes stream through the new
//!   table (an entry of old home `b` moves to home `b` or `b + old capacity`).
//! - [`Index::prefetch`]: the address of a key's home bucket is known from its hash alone,
//!   so a batch of lookups can issue all its cache misses before the first one is waited for.

/// Largest load factor, numerator.
const MAX_LOAD_NUM: usize = 17;
/// Largest load factor, denominator (17 / 20 = 0.85).
const MAX_LOAD_DEN: usize = 20;
/// Smallest non-zero capacity.
const MIN_CAPACITY: usize = 16;

/// Hash to slot index; see the module documentation.
#[derive(Default)]
pub(crate) struct Index {
    /// `hash << 32 | (slot + 1)`, or 0 for an empty bucket. Empty vector: no allocation yet.
    entries: Vec<u64>,
    len: usize,
}

/// Issue a software prefetch of the cache line holding `p` (a hint: never faults).
#[inline]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // Safety: `prefetch` is only a hint to the cache; it never dereferences `p` in a way
        // that can fault, whatever the address, and SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Ask the kernel to back `v`'s buffer (its whole capacity) with transparent huge pages (Linux, buffers of at
/// least 4 MiB; elsewhere a no-op). A big index or record table is read at random: with
/// 4 KiB pages nearly every access also misses the TLB, adding a page walk to the cache miss.
/// Only a hint: it changes no content, and a refusal (THP disabled) is ignored.
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let bytes = v.capacity() * size_of::<T>();
        if bytes < 4 << 20 {
            return;
        }
        let start = v.as_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let len = (start + bytes - aligned) / PAGE * PAGE;
        // Safety: `[aligned, aligned + len)` lies inside `v`'s allocation and is
        // page-aligned; `MADV_HUGEPAGE` only changes how the kernel backs those pages, never
        // their content, so no Rust reference into `v` is affected.
        let _ = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[inline]
fn entry(hash: u32, slot: u32) -> u64 {
    debug_assert!(slot != u32::MAX, "slot u32::MAX cannot be stored");
    (u64::from(hash) << 32) | u64::from(slot + 1)
}

#[inline]
fn entry_hash(e: u64) -> u32 {
    (e >> 32) as u32
}

#[inline]
fn entry_slot(e: u64) -> u32 {
    (e as u32).wrapping_sub(1)
}

impl Index {
    /// Entries (tests only).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Buckets (0 before the first insertion).
    pub(crate) fn capacity(&self) -> usize {
        self.entries.len()
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// The smallest capacity holding `n` entries within the load limit.
    fn capacity_for(n: usize) -> usize {
        (n.saturating_mul(MAX_LOAD_DEN).div_ceil(MAX_LOAD_NUM))
            .max(MIN_CAPACITY)
            .next_power_of_two()
    }

    /// Make room for `n` more entries without growing.
    pub(crate) fn reserve(&mut self, n: usize) {
        let need = self.len.saturating_add(n);
        if need * MAX_LOAD_DEN > self.capacity() * MAX_LOAD_NUM || self.entries.is_empty() {
            let cap = Self::capacity_for(need);
            if cap > self.capacity() {
                self.resize(cap);
            }
        }
    }

    /// Move every entry into a table of `cap` buckets (a power of two, above the load).
    fn resize(&mut self, cap: usize) {
        debug_assert!(cap.is_power_of_two() && self.len * MAX_LOAD_DEN <= cap * MAX_LOAD_NUM);
        // Zeroed allocation: the kernel maps zero pages, nothing is written here.
        let old = std::mem::replace(&mut self.entries, vec![0; cap]);
        advise_huge_pages(&self.entries);
        if self.len == 0 {
            return;
        }
        let old_mask = old.len() - 1;
        // Start right after an empty bucket, so no cluster is split by the wrap-around and
        // the new table is filled in the order of the homes.
        let start = old.iter().position(|&e| e == 0).map_or(0, |p| p + 1);
        let mask = self.mask();
        for k in 0..old.len() {
            let e = old[(start + k) & old_mask];
            if e != 0 {
                let mut i = entry_hash(e) as usize & mask;
                while self.entries[i] != 0 {
                    i = (i + 1) & mask;
                }
                self.entries[i] = e;
            }
        }
    }

    /// Grow (double) if one more entry would pass the load limit.
    #[inline]
    fn grow_for_one(&mut self) {
        if (self.len + 1) * MAX_LOAD_DEN > self.capacity() * MAX_LOAD_NUM {
            let cap = Self::capacity_for(self.len + 1).max(self.capacity() * 2);
            self.resize(cap);
        }
    }

    /// Bucket of the first entry with hash `hash` whose slot satisfies `eq`.
    #[inline]
    fn find_bucket(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let e = self.entries[i];
            if e == 0 {
                return None;
            }
            if entry_hash(e) == hash && eq(entry_slot(e)) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot of the first entry with hash `hash` whose slot satisfies `eq`.
    #[inline]
    pub(crate) fn find(&self, hash: u32, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.find_bucket(hash, eq)
            .map(|i| entry_slot(self.entries[i]))
    }

    /// Add `slot` under `hash`; the caller knows no entry of the same key exists.
    #[inline]
    pub(crate) fn insert_unique(&mut self, hash: u32, slot: u32) {
        self.grow_for_one();
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.entries[i] != 0 {
            i = (i + 1) & mask;
        }
        self.entries[i] = entry(hash, slot);
        self.len += 1;
    }

    /// Point the entry of the key (`hash`, `eq`) at `slot`, adding it if there is none.
    /// Returns the slot it pointed at before.
    #[inline]
    pub(crate) fn set(
        &mut self,
        hash: u32,
        slot: u32,
        mut eq: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        self.grow_for_one();
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let e = self.entries[i];
            if e == 0 {
                self.entries[i] = entry(hash, slot);
                self.len += 1;
                return None;
            }
            if entry_hash(e) == hash && eq(entry_slot(e)) {
                self.entries[i] = entry(hash, slot);
                return Some(entry_slot(e));
            }
            i = (i + 1) & mask;
        }
    }

    /// Remove the first entry with hash `hash` whose slot satisfies `eq`; returns its slot.
    pub(crate) fn remove(&mut self, hash: u32, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut gap = self.find_bucket(hash, eq)?;
        let slot = entry_slot(self.entries[gap]);
        let mask = self.mask();
        // Backward shift: move up every later entry of the cluster whose home is not
        // between the gap and its bucket (cyclically), so no probe sequence is cut.
        let mut j = (gap + 1) & mask;
        loop {
            let e = self.entries[j];
            if e == 0 {
                break;
            }
            let home = entry_hash(e) as usize & mask;
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(gap) & mask {
                self.entries[gap] = e;
                gap = j;
            }
            j = (j + 1) & mask;
        }
        self.entries[gap] = 0;
        self.len -= 1;
        Some(slot)
    }

    /// Prefetch the cache line of `hash`'s home bucket and the next one (a no-op before the
    /// first insertion): at the upper loads a probe often runs past the end of the home line,
    /// and a second miss discovered only then would serialise again.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u32) {
        let mask = self.capacity().wrapping_sub(1);
        let i = hash as usize & mask;
        if let Some(e) = self.entries.get(i) {
            prefetch(e);
            prefetch(self.entries.as_ptr().wrapping_add((i + 8) & mask));
        }
    }

    /// Every stored slot, in bucket order (tests only).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .filter(|&&e| e != 0)
            .map(|&e| entry_slot(e))
    }

    /// Heap bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<u64>()
    }

    /// Check the probing invariant: every entry is reachable from its home without crossing
    /// an empty bucket, and the count is right (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let n = self.entries.iter().filter(|&&e| e != 0).count();
        assert_eq!(n, self.len);
        assert!(self.len * MAX_LOAD_DEN <= self.capacity() * MAX_LOAD_NUM);
        if self.len == 0 {
            return;
        }
        let mask = self.mask();
        for (i, &e) in self.entries.iter().enumerate() {
            if e == 0 {
                continue;
            }
            let mut b = entry_hash(e) as usize & mask;
            while b != i {
                assert_ne!(
                    self.entries[b], 0,
                    "entry in bucket {i} cut off from its home"
                );
                b = (b + 1) & mask;
            }
        }
    }
}

#[cfg(all(test, not(twinlease_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Keys are `u32`s stored in a "record" vector; `hash` maps them into few distinct
    /// values and few home buckets, so clusters, collisions and wrap-around are common.
    #[derive(Debug, Clone)]
    enum Op {
        Set(u16),
        Remove(u16),
        Reserve(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u16..300).prop_map(Op::Set),
            3 => (0u16..300).prop_map(Op::Remove),
            1 => (0u8..64).prop_map(Op::Reserve),
        ]
    }

    proptest! {
        /// Random set/remove/reserve sequences against a `HashMap` model, with hash functions
        /// from "all distinct" to "everything collides" and keys near the top bucket.
        #[test]
        fn matches_hashmap_model(
            ops in prop::collection::vec(op(), 1..400),
            spread in prop_oneof![Just(1u32), Just(7), Just(64), Just(u32::MAX)],
            shift in 0u32..32,
        ) {
            let hash = |k: u16| (u32::from(k).wrapping_mul(0x9e37_79b9) % spread).rotate_left(shift)
                ^ 0xffff_fff0;
            // slot -> key: each set writes a fresh slot, like a record table would.
            let mut keys: Vec<u16> = Vec::new();
            let mut ix = Index::default();
            let mut model: HashMap<u16, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Set(k) => {
                        let slot = u32::try_from(keys.len()).unwrap();
                        keys.push(k);
                        let old = ix.set(hash(k), slot, |s| keys[s as usize] == k);
                        prop_assert_eq!(old, model.insert(k, slot));
                    }
                    Op::Remove(k) => {
                        let got = ix.remove(hash(k), |s| keys[s as usize] == k);
                        prop_assert_eq!(got, model.remove(&k));
                    }
                    Op::Reserve(n) => {
                        let cap = ix.capacity();
                        ix.reserve(usize::from(n));
                        prop_assert!(ix.capacity() >= cap);
                        prop_assert!(
                            (ix.len() + usize::from(n)) * MAX_LOAD_DEN
                                <= ix.capacity() * MAX_LOAD_NUM,
                            "reserve must make room for {} more", n
                        );
                    }
                }
                prop_assert_eq!(ix.len(), model.len());
                ix.check();
            }
            for k in 0..300u16 {
                prop_assert_eq!(ix.find(hash(k), |s| keys[s as usize] == k), model.get(&k).copied());
            }
            let mut slots: Vec<u32> = ix.slots().collect();
            slots.sort_unstable();
            let mut want: Vec<u32> = model.values().copied().collect();
            want.sort_unstable();
            prop_assert_eq!(slots, want);
        }
    }

    #[test]
    fn insert_unique_grows_and_keeps_everything() {
        let mut ix = Index::default();
        assert_eq!(ix.find(5, |_| true), None);
        ix.prefetch(5);
        for s in 0..10_000u32 {
            ix.insert_unique(s.wrapping_mul(0x9e37_79b9), s);
        }
        ix.check();
        assert_eq!(ix.len(), 10_000);
        assert_eq!(ix.capacity(), 16_384);
        for s in 0..10_000u32 {
            assert_eq!(ix.find(s.wrapping_mul(0x9e37_79b9), |x| x == s), Some(s));
            ix.prefetch(s);
        }
        for s in (0..10_000u32).step_by(2) {
            assert_eq!(ix.remove(s.wrapping_mul(0x9e37_79b9), |x| x == s), Some(s));
        }
        ix.check();
        assert_eq!(ix.len(), 5_000);
        assert_eq!(ix.memory_bytes(), 16_384 * 8);
    }

    #[test]
    fn reserve_sizes_for_the_load_limit() {
        let mut ix = Index::default();
        ix.reserve(0);
        assert_eq!(ix.capacity(), MIN_CAPACITY);
        ix.reserve(1000);
        assert_eq!(ix.capacity(), 2048);
        for s in 0..1000 {
            ix.insert_unique(s, s);
        }
        assert_eq!(ix.capacity(), 2048, "no growth within the reservation");
        ix.reserve(1000);
        assert_eq!(ix.capacity(), 4096);
        ix.check();
    }
}
