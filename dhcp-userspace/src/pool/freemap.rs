//! [`FreeMap`]: the free addresses of every configured pool, shared by all workers.
//!
//! Layout: each pool starts on a fresh 64-bit word (so a word belongs to one pool) and its
//! words are cut into one contiguous *region* per shard, the shard's home. A shard hands out
//! addresses from its home region front to back, touching only its own cache lines; when the
//! home region is exhausted it borrows from the next shards' regions with the same atomic
//! claim, so no shard stops while any address of the pool is free. An atomic per-region free
//! counter serves both the statistics and the "is this region worth scanning" test.
//!
//! Nothing here decides *whether* an address may be given to a client (failover rules,
//! draft-ietf-dhc-failover-12 §5.4): the protocol engine does; the free map only makes sure
//! that a free address is claimed by exactly one worker.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::bitmap::{AtomicBitmap, WORD_BITS};
use super::{PoolError, PoolRange};

/// A free counter alone on its cache line pair, so shards counting in their own regions do
/// not bounce each other's lines.
#[repr(align(128))]
struct RegionCounter(AtomicI64);

/// Where one pool lives in the bitmap.
struct PoolLayout {
    /// First address, as an integer.
    start: u32,
    /// Index of the pool's first word in the bitmap.
    first_word: usize,
    /// `shards + 1` pool-relative word boundaries: shard `s` owns words
    /// `bounds[s]..bounds[s + 1]`.
    bounds: Box<[usize]>,
    /// Free addresses per region (may dip below zero for an instant while a release is
    /// between its bit and its count; exact at quiescence).
    free: Box<[RegionCounter]>,
}

impl PoolLayout {
    /// The region (home shard) of pool-relative word `rel`.
    fn region_of(&self, rel: usize) -> usize {
        self.bounds.partition_point(|&b| b <= rel) - 1
    }
}

/// The free-address bitmap of all pools (1 bit per address, 1 = free). `Send + Sync`: share
/// it in an `Arc` between the workers.
pub struct FreeMap {
    /// Pools sorted by start address.
    pools: Box<[PoolRange]>,
    /// Layout of `pools[i]`.
    layout: Box<[PoolLayout]>,
    /// `(pool id, index into pools)`, sorted by id.
    by_id: Box<[(u32, usize)]>,
    /// Excluded addresses (sorted): never free, whatever `give_back` is told.
    excluded: Box<[u32]>,
    bits: AtomicBitmap,
    /// Failover split (draft-ietf-dhc-failover-12 §5.4): bit set = the address belongs to the
    /// secondary's BACKUP share while it is free; clear = the primary's FREE share. Written
    /// only by the partner thread (and at start), read by the workers when they allocate.
    backup: Box<[AtomicU64]>,
    shards: usize,
}

/// Which free addresses an allocation may take (draft-ietf-dhc-failover-12 §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Any free address: a standalone server, or a partner past PARTNER-DOWN's MCLT wait.
    Any,
    /// Only the primary's FREE share.
    Free,
    /// Only the secondary's BACKUP share.
    Backup,
}

impl std::fmt::Debug for FreeMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreeMap")
            .field("pools", &self.pools)
            .field("shards", &self.shards)
            .field("excluded", &self.excluded.len())
            .finish_non_exhaustive()
    }
}

impl FreeMap {
    /// Largest number of addresses over all pools (a 32 MiB bitmap).
    pub const MAX_ADDRESSES: u64 = 1 << 28;

    /// Build the map with every address of `pools` free except those `excluded` says
    /// (reservations, the server's own addresses): those start non-free and are never handed
    /// out by [`Self::take_free`] nor made free by [`Self::give_back`].
    pub fn new(
        pools: &[PoolRange],
        shards: usize,
        excluded: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Result<Self, PoolError> {
        if shards == 0 {
            return Err(PoolError::NoShards);
        }
        let mut sorted = pools.to_vec();
        for p in &sorted {
            if p.is_empty() {
                return Err(PoolError::EmptyRange {
                    id: p.id,
                    start: p.start,
                    end: p.end,
                });
            }
        }
        sorted.sort_by_key(|p| u32::from(p.start));
        for w in sorted.windows(2) {
            if u32::from(w[1].start) <= u32::from(w[0].end) {
                return Err(PoolError::Overlap {
                    a: w[0].id,
                    b: w[1].id,
                });
            }
        }
        let total: u64 = sorted.iter().map(PoolRange::len).sum();
        if total > Self::MAX_ADDRESSES {
            return Err(PoolError::TooManyAddresses(total));
        }
        let mut by_id: Vec<(u32, usize)> =
            sorted.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        by_id.sort_unstable();
        if let Some(w) = by_id.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(PoolError::DuplicateId(w[0].0));
        }

        let mut words: Vec<u64> = Vec::new();
        let mut layout = Vec::with_capacity(sorted.len());
        let mut excl = Vec::new();
        for p in &sorted {
            // `total` ≤ 2^28, so every per-pool count fits in usize.
            let len = p.len() as usize;
            let nwords = len.div_ceil(WORD_BITS);
            let first_word = words.len();
            words.resize(first_word + nwords, 0);
            let start = u32::from(p.start);
            for off in 0..len {
                let a = start + off as u32;
                if excluded(Ipv4Addr::from(a)) {
                    excl.push(a);
                } else {
                    words[first_word + off / WORD_BITS] |= 1u64 << (off % WORD_BITS);
                }
            }
            let bounds: Box<[usize]> = (0..=shards).map(|s| s * nwords / shards).collect();
            let free = (0..shards)
                .map(|s| {
                    let n: u32 = words[first_word + bounds[s]..first_word + bounds[s + 1]]
                        .iter()
                        .map(|w| w.count_ones())
                        .sum();
                    RegionCounter(AtomicI64::new(i64::from(n)))
                })
                .collect();
            layout.push(PoolLayout {
                start,
                first_word,
                bounds,
                free,
            });
        }
        // Pools are visited in address order, so `excl` is already sorted.
        Ok(Self {
            pools: sorted.into(),
            layout: layout.into(),
            by_id: by_id.into(),
            excluded: excl.into(),
            backup: (0..words.len()).map(|_| AtomicU64::new(0)).collect(),
            bits: AtomicBitmap::from_words(&words),
            shards,
        })
    }

    /// The configured pools, sorted by start address.
    #[must_use]
    pub fn pools(&self) -> &[PoolRange] {
        &self.pools
    }

    /// Number of shards the words are divided between.
    #[must_use]
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Index (into [`Self::pools`]) of the pool containing `addr`: a binary search over the
    /// sorted, disjoint ranges.
    fn index_of(&self, addr: Ipv4Addr) -> Option<usize> {
        let a = u32::from(addr);
        let i = self
            .pools
            .partition_point(|p| u32::from(p.start) <= a)
            .checked_sub(1)?;
        (a <= u32::from(self.pools[i].end)).then_some(i)
    }

    /// Id of the pool containing `addr`, if any.
    #[must_use]
    pub fn pool_of(&self, addr: Ipv4Addr) -> Option<u32> {
        self.index_of(addr).map(|i| self.pools[i].id)
    }

    /// Pool index, bitmap word, bit and region of `addr`.
    fn locate(&self, addr: Ipv4Addr) -> Option<(usize, usize, u32, usize)> {
        let i = self.index_of(addr)?;
        let l = &self.layout[i];
        let off = (u32::from(addr) - l.start) as usize;
        let rel = off / WORD_BITS;
        Some((
            i,
            l.first_word + rel,
            (off % WORD_BITS) as u32,
            l.region_of(rel),
        ))
    }

    fn index_of_id(&self, pool_id: u32) -> Option<usize> {
        self.by_id
            .binary_search_by_key(&pool_id, |&(id, _)| id)
            .ok()
            .map(|k| self.by_id[k].1)
    }

    /// Whether `addr` is in a pool and currently free.
    #[must_use]
    pub fn is_free(&self, addr: Ipv4Addr) -> bool {
        self.locate(addr)
            .is_some_and(|(_, w, bit, _)| self.bits.is_set(w, bit))
    }

    /// Claim exactly `addr` if it is free (e.g. a client asking for its previous address,
    /// RFC 2131 §4.3.1). Returns `true` when this call claimed it.
    #[must_use = "the address is claimed only when this returns true"]
    pub fn try_take(&self, addr: Ipv4Addr) -> bool {
        let Some((i, w, bit, r)) = self.locate(addr) else {
            return false;
        };
        let ok = self.bits.claim_exact(w, bit);
        if ok {
            self.layout[i].free[r].0.fetch_sub(1, Ordering::Relaxed);
        }
        ok
    }

    /// Claim any free address of pool `pool_id` for `shard`: from the shard's home region
    /// first, then by borrowing from the other shards' regions in turn.
    ///
    /// `cursor` is the caller's search position in that pool (a word index): keep one per
    /// (shard, pool), start it at 0, and pass it back unchanged; it makes handing out a
    /// region front to back O(1) per address. Returns `None` when the pool has no free
    /// address (or the id is unknown).
    pub fn take_free(&self, pool_id: u32, shard: usize, cursor: &mut u32) -> Option<Ipv4Addr> {
        self.take_free_with(pool_id, shard, cursor, |w| self.bits.claim_any(w))
    }

    /// Like [`Self::take_free`], restricted to the free addresses of `share`.
    pub fn take_free_in(
        &self,
        pool_id: u32,
        shard: usize,
        cursor: &mut u32,
        from_share: Share,
    ) -> Option<Ipv4Addr> {
        let invert = match from_share {
            Share::Any => return self.take_free(pool_id, shard, cursor),
            Share::Free => true,
            Share::Backup => false,
        };
        self.take_free_with(pool_id, shard, cursor, |w| {
            let bk = self.backup[w].load(Ordering::Acquire);
            let mask = if invert { !bk } else { bk };
            self.bits.claim_masked(w, mask)
        })
    }

    /// The search of [`Self::take_free`] and [`Self::take_free_in`]: `claim(w)` claims a bit
    /// of candidate word `w` (any, or one of a share). Each caller gets its own copy of the
    /// loop with its claim in place (one call site each: inlined).
    #[inline]
    fn take_free_with(
        &self,
        pool_id: u32,
        shard: usize,
        cursor: &mut u32,
        claim: impl Fn(usize) -> Option<u32>,
    ) -> Option<Ipv4Addr> {
        let i = self.index_of_id(pool_id)?;
        let l = &self.layout[i];
        let home = shard % self.shards;
        let cur = *cursor as usize;
        for k in 0..self.shards {
            let r = (home + k) % self.shards;
            let (lo, hi) = (l.bounds[r], l.bounds[r + 1]);
            if lo == hi || l.free[r].0.load(Ordering::Relaxed) <= 0 {
                continue;
            }
            let from = if (lo..hi).contains(&cur) { cur } else { lo };
            // From the cursor to the region's end, then the part before the cursor.
            for (a, b) in [(from, hi), (lo, from)] {
                let mut next = a;
                while let Some(w) = self
                    .bits
                    .next_candidate(l.first_word + next, l.first_word + b)
                {
                    if let Some(bit) = claim(w) {
                        l.free[r].0.fetch_sub(1, Ordering::Relaxed);
                        let rel = w - l.first_word;
                        *cursor = rel as u32;
                        return Some(Ipv4Addr::from(l.start + (rel * WORD_BITS) as u32 + bit));
                    }
                    next = w - l.first_word + 1;
                }
            }
        }
        None
    }

    /// Whether `addr` belongs to the secondary's BACKUP share (when free).
    #[must_use]
    pub fn is_backup(&self, addr: Ipv4Addr) -> bool {
        self.locate(addr).is_some_and(|(_, w, bit, _)| {
            self.backup[w].load(Ordering::Acquire) & (1u64 << bit) != 0
        })
    }

    /// Whether `addr` may be taken by an allocation restricted to `share`.
    #[must_use]
    pub fn in_share(&self, addr: Ipv4Addr, share: Share) -> bool {
        match share {
            Share::Any => true,
            Share::Free => !self.is_backup(addr),
            Share::Backup => self.is_backup(addr),
        }
    }

    /// Move `addr` to the BACKUP share (`true`) or the FREE share (`false`). Addresses
    /// outside every pool are ignored. Only the partner thread calls this.
    pub fn set_backup(&self, addr: Ipv4Addr, backup: bool) {
        if let Some((_, w, bit, _)) = self.locate(addr) {
            let m = 1u64 << bit;
            if backup {
                self.backup[w].fetch_or(m, Ordering::AcqRel);
            } else {
                self.backup[w].fetch_and(!m, Ordering::AcqRel);
            }
        }
    }

    /// Free addresses of pool `pool_id` in the FREE and in the BACKUP share: `(free,
    /// backup)`. Scans the pool's words (for balancing and statistics, not the packet path).
    #[must_use]
    pub fn share_counts(&self, pool_id: u32) -> (u64, u64) {
        let Some(idx) = self.index_of_id(pool_id) else {
            return (0, 0);
        };
        let layout = &self.layout[idx];
        let words = layout.first_word..layout.first_word + layout.bounds[self.shards];
        let (mut in_free, mut in_backup) = (0u64, 0u64);
        for w in words {
            let free = self.bits.load_word(w);
            let bk = self.backup[w].load(Ordering::Acquire);
            in_free += u64::from((free & !bk).count_ones());
            in_backup += u64::from((free & bk).count_ones());
        }
        (in_free, in_backup)
    }

    /// Up to `n` free addresses of pool `pool_id` currently in `from` share (`Free` or
    /// `Backup`), taken from the end of the pool: candidates for moving to the other share.
    /// The addresses stay free; the caller moves them with [`Self::set_backup`].
    #[must_use]
    pub fn pick_in_share(&self, pool_id: u32, from: Share, n: usize) -> Vec<Ipv4Addr> {
        let mut out = Vec::new();
        let Some(i) = self.index_of_id(pool_id) else {
            return out;
        };
        let l = &self.layout[i];
        let words = l.bounds[self.shards];
        for rel in (0..words).rev() {
            if out.len() >= n {
                break;
            }
            let w = l.first_word + rel;
            let free = self.bits.load_word(w);
            let bk = self.backup[w].load(Ordering::Acquire);
            let mut cand = match from {
                Share::Free => free & !bk,
                Share::Backup => free & bk,
                Share::Any => free,
            };
            while cand != 0 && out.len() < n {
                let bit = cand.ilog2();
                cand &= !(1u64 << bit);
                out.push(Ipv4Addr::from(l.start + (rel * WORD_BITS) as u32 + bit));
            }
        }
        out
    }

    /// Every address currently in the BACKUP share, as inclusive ranges in address order
    /// (what the split file stores).
    #[must_use]
    pub fn backup_ranges(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (p, l) in self.pools.iter().zip(self.layout.iter()) {
            let len = p.len() as usize;
            // A word at a time: a pool of millions of addresses is scanned in well under a
            // millisecond when its BACKUP share is sparse or made of long runs.
            for rel in 0..len.div_ceil(WORD_BITS) {
                let mut word = self.backup[l.first_word + rel].load(Ordering::Acquire);
                while word != 0 {
                    let bit = word.trailing_zeros() as usize;
                    let off = rel * WORD_BITS + bit;
                    if off >= len {
                        break;
                    }
                    // A run of set bits from `bit` up: one range step per run.
                    let run = (word >> bit).trailing_ones() as usize;
                    let run = run.min(len - off);
                    let (a, b) = (l.start + off as u32, l.start + (off + run - 1) as u32);
                    match out.last_mut() {
                        Some(last) if last.1 + 1 == a => last.1 = b,
                        _ => out.push((a, b)),
                    }
                    word = if bit + run >= WORD_BITS {
                        0
                    } else {
                        word & !((1u64 << (bit + run)) - 1)
                    };
                }
            }
        }
        out.into_iter()
            .map(|(a, b)| (Ipv4Addr::from(a), Ipv4Addr::from(b)))
            .collect()
    }

    /// Mark `addr` free again. Idempotent; addresses outside every pool and excluded
    /// addresses are ignored.
    pub fn give_back(&self, addr: Ipv4Addr) {
        let Some((i, w, bit, r)) = self.locate(addr) else {
            return;
        };
        if self.excluded.binary_search(&u32::from(addr)).is_ok() {
            return;
        }
        if self.bits.release(w, bit) {
            self.layout[i].free[r].0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Free addresses of pool `pool_id` (0 for an unknown id). Exact when no claim or
    /// release is in flight.
    #[must_use]
    pub fn free_count(&self, pool_id: u32) -> u64 {
        self.index_of_id(pool_id).map_or(0, |i| {
            let n: i64 = self.layout[i]
                .free
                .iter()
                .map(|c| c.0.load(Ordering::Relaxed))
                .sum();
            n.max(0).unsigned_abs()
        })
    }

    /// Addresses in pool `pool_id`'s range, excluded ones included (0 for an unknown id).
    #[must_use]
    pub fn size(&self, pool_id: u32) -> u64 {
        self.index_of_id(pool_id).map_or(0, |i| self.pools[i].len())
    }

    /// Approximate heap bytes used.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.bits.memory_bytes()
            + self.backup.len() * size_of::<u64>()
            + self.excluded.len() * size_of::<u32>()
            + self
                .layout
                .iter()
                .map(|l| l.free.len() * size_of::<RegionCounter>())
                .sum::<usize>()
    }

    /// Words in pool `pool_id` and the home region of `shard` (pool-relative words), for
    /// tests and statistics.
    #[cfg(all(test, not(twinlease_loom)))]
    fn home_words(&self, pool_id: u32, shard: usize) -> (usize, std::ops::Range<usize>) {
        let l = &self.layout[self.index_of_id(pool_id).unwrap()];
        (l.bounds[self.shards], l.bounds[shard]..l.bounds[shard + 1])
    }
}

#[cfg(all(test, not(twinlease_loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn ip(a: u32) -> Ipv4Addr {
        Ipv4Addr::from(a)
    }

    fn range(id: u32, start: Ipv4Addr, end: Ipv4Addr) -> PoolRange {
        PoolRange {
            id,
            subnet_id: 1,
            start,
            end,
        }
    }

    fn none(_: Ipv4Addr) -> bool {
        false
    }

    #[test]
    fn pool_of_edges_and_outside() {
        let pools = [
            range(2, Ipv4Addr::new(10, 0, 1, 0), Ipv4Addr::new(10, 0, 1, 255)),
            range(1, Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 20)),
            // Adjacent to pool 2: allowed.
            range(3, Ipv4Addr::new(10, 0, 2, 0), Ipv4Addr::new(10, 0, 2, 0)),
            range(4, Ipv4Addr::new(255, 255, 255, 254), Ipv4Addr::BROADCAST),
        ];
        let m = FreeMap::new(&pools, 2, &none).unwrap();
        let cases = [
            (Ipv4Addr::UNSPECIFIED, None),
            (Ipv4Addr::new(10, 0, 0, 9), None),
            (Ipv4Addr::new(10, 0, 0, 10), Some(1)),
            (Ipv4Addr::new(10, 0, 0, 20), Some(1)),
            (Ipv4Addr::new(10, 0, 0, 21), None),
            (Ipv4Addr::new(10, 0, 0, 255), None),
            (Ipv4Addr::new(10, 0, 1, 0), Some(2)),
            (Ipv4Addr::new(10, 0, 1, 255), Some(2)),
            (Ipv4Addr::new(10, 0, 2, 0), Some(3)),
            (Ipv4Addr::new(10, 0, 2, 1), None),
            (Ipv4Addr::new(255, 255, 255, 253), None),
            (Ipv4Addr::BROADCAST, Some(4)),
        ];
        for (a, want) in cases {
            assert_eq!(m.pool_of(a), want, "{a}");
            assert_eq!(m.is_free(a), want.is_some(), "{a}");
        }
        assert_eq!(
            m.pools().iter().map(|p| p.id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            (m.size(1), m.size(2), m.size(3), m.size(4), m.size(9)),
            (11, 256, 1, 2, 0)
        );
        assert_eq!(m.free_count(2), 256);
    }

    #[test]
    fn construction_errors() {
        let a = Ipv4Addr::new(10, 0, 0, 0);
        let b = Ipv4Addr::new(10, 0, 0, 100);
        let c = Ipv4Addr::new(10, 0, 0, 200);
        assert_eq!(
            FreeMap::new(&[range(1, b, a)], 1, &none).unwrap_err(),
            PoolError::EmptyRange {
                id: 1,
                start: b,
                end: a
            }
        );
        assert_eq!(
            FreeMap::new(&[range(1, a, b), range(2, b, c)], 1, &none).unwrap_err(),
            PoolError::Overlap { a: 1, b: 2 }
        );
        assert_eq!(
            FreeMap::new(&[range(7, a, a), range(7, c, c)], 1, &none).unwrap_err(),
            PoolError::DuplicateId(7)
        );
        assert_eq!(
            FreeMap::new(
                &[range(1, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)],
                1,
                &none
            )
            .unwrap_err(),
            PoolError::TooManyAddresses(1 << 32)
        );
        assert_eq!(
            FreeMap::new(&[range(1, a, b)], 0, &none).unwrap_err(),
            PoolError::NoShards
        );
    }

    #[test]
    fn take_until_exhausted_skips_excluded_and_give_back() {
        let start = u32::from(Ipv4Addr::new(192, 168, 0, 1));
        let pools = [range(5, ip(start), ip(start + 299))];
        let excluded = |a: Ipv4Addr| u32::from(a) % 7 == 0 || a == ip(start);
        let m = FreeMap::new(&pools, 1, &excluded).unwrap();
        let want: HashSet<u32> = (start..start + 300).filter(|&a| !excluded(ip(a))).collect();
        assert_eq!(m.free_count(5), want.len() as u64);
        let mut cursor = 0;
        let mut got = HashSet::new();
        while let Some(a) = m.take_free(5, 0, &mut cursor) {
            assert!(got.insert(u32::from(a)), "{a} handed out twice");
        }
        assert_eq!(got, want);
        assert_eq!(m.free_count(5), 0);
        assert_eq!(m.take_free(5, 0, &mut cursor), None);
        assert_eq!(m.take_free(99, 0, &mut cursor), None, "unknown pool");

        // Excluded and outside addresses stay non-free whatever give_back is told.
        m.give_back(ip(start));
        m.give_back(ip(start + 300));
        m.give_back(ip(start - 1));
        assert!(!m.is_free(ip(start)));
        assert_eq!(m.free_count(5), 0);
        assert!(!m.try_take(ip(start)));

        // give_back is idempotent, and the address comes back out.
        let a = ip(start + 151);
        assert!(!excluded(a));
        m.give_back(a);
        m.give_back(a);
        assert_eq!(m.free_count(5), 1);
        assert!(m.is_free(a));
        assert_eq!(m.take_free(5, 0, &mut cursor), Some(a));
        assert_eq!(m.free_count(5), 0);
        assert_eq!(m.take_free(5, 0, &mut cursor), None);
    }

    #[test]
    fn try_take_exact_address() {
        let pools = [range(
            1,
            Ipv4Addr::new(10, 0, 0, 0),
            Ipv4Addr::new(10, 0, 0, 255),
        )];
        let m = FreeMap::new(&pools, 2, &none).unwrap();
        let a = Ipv4Addr::new(10, 0, 0, 77);
        assert!(m.try_take(a));
        assert!(!m.try_take(a));
        assert!(!m.is_free(a));
        assert_eq!(m.free_count(1), 255);
        assert!(
            !m.try_take(Ipv4Addr::new(10, 0, 1, 0)),
            "outside every pool"
        );
        // take_free never returns the address taken by try_take.
        let mut cursor = 0;
        let mut n = 0;
        while let Some(x) = m.take_free(1, 1, &mut cursor) {
            assert_ne!(x, a);
            n += 1;
        }
        assert_eq!(n, 255);
        m.give_back(a);
        assert!(m.try_take(a));
    }

    #[test]
    fn home_first_then_borrow_then_home_again() {
        // 8 words, two shards: shard 0 is home on words 0..4, shard 1 on 4..8.
        let start = u32::from(Ipv4Addr::new(10, 1, 0, 0));
        let pools = [range(1, ip(start), ip(start + 511))];
        let m = FreeMap::new(&pools, 2, &none).unwrap();
        let (nwords, home0) = m.home_words(1, 0);
        assert_eq!((nwords, home0.clone()), (8, 0..4));
        let word = |a: Ipv4Addr| ((u32::from(a) - start) / 64) as usize;
        let mut c0 = 0;
        for _ in 0..256 {
            let a = m.take_free(1, 0, &mut c0).unwrap();
            assert!(
                home0.contains(&word(a)),
                "{a} outside shard 0's home while it had some"
            );
        }
        // Home exhausted: shard 0 borrows from shard 1's words.
        let borrowed = m.take_free(1, 0, &mut c0).unwrap();
        assert!((4..8).contains(&word(borrowed)));
        // A home address returned is preferred over borrowing again.
        let back = ip(start + 100);
        m.give_back(back);
        assert_eq!(m.take_free(1, 0, &mut c0), Some(back));
        // Shard 1 still gets everything else, from its own words.
        let mut c1 = 0;
        let mut n = 0;
        while let Some(a) = m.take_free(1, 1, &mut c1) {
            assert!((4..8).contains(&word(a)));
            assert_ne!(a, borrowed);
            n += 1;
        }
        assert_eq!(n, 255);
        assert_eq!(m.free_count(1), 0);
        assert_eq!(m.take_free(1, 0, &mut c0), None);
    }

    #[test]
    fn pool_smaller_than_shard_count() {
        // One word, four shards: three shards have no home words and always borrow.
        let pools = [range(
            1,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 3),
        )];
        let m = FreeMap::new(&pools, 4, &none).unwrap();
        let mut got = HashSet::new();
        for s in 0..4 {
            let mut c = 0;
            if let Some(a) = m.take_free(1, s, &mut c) {
                assert!(got.insert(a));
            }
        }
        assert_eq!(got.len(), 3);
    }

    /// Threads, each a different shard, claim until the pool is exhausted while handing
    /// some addresses back: at the end every address is held by exactly one thread.
    #[test]
    fn threads_never_share_an_address() {
        const N: u32 = 100_003;
        let start = u32::from(Ipv4Addr::new(10, 8, 0, 0));
        let excluded = |a: Ipv4Addr| u32::from(a) % 1000 == 0;
        let pools = [
            range(1, ip(start), ip(start + N - 1)),
            range(2, ip(start + N), ip(start + N + 999)),
        ];
        for threads in [2usize, 4] {
            let m = Arc::new(FreeMap::new(&pools, threads, &excluded).unwrap());
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let m = Arc::clone(&m);
                    std::thread::spawn(move || {
                        let mut held = Vec::new();
                        let mut cursors = [0u32; 2];
                        for (k, pool) in [1u32, 2].into_iter().enumerate() {
                            let mut i = 0u32;
                            let first = held.len();
                            while let Some(a) = m.take_free(pool, t, &mut cursors[k]) {
                                held.push(a);
                                i += 1;
                                // Churn: every third claim hands an earlier one (of this
                                // pool) back.
                                if i.is_multiple_of(3) {
                                    let back = held.swap_remove(first + (held.len() - first) / 2);
                                    m.give_back(back);
                                }
                            }
                        }
                        held
                    })
                })
                .collect();
            let mut all = HashSet::new();
            for h in handles {
                for a in h.join().unwrap() {
                    assert!(all.insert(u32::from(a)), "{a} claimed twice");
                }
            }
            let want: HashSet<u32> = (start..start + N + 1000)
                .filter(|&a| !excluded(ip(a)))
                .collect();
            assert_eq!(all.len(), want.len());
            assert_eq!(all, want);
            assert_eq!(m.free_count(1) + m.free_count(2), 0);
        }
    }

    proptest::proptest! {
        /// `backup_ranges` (a word at a time) equals the ranges built address by address,
        /// for pools that do not start or end on a word boundary.
        #[test]
        fn backup_ranges_match_the_addresses(
            len_a in 1u32..300,
            gap in 0u32..3,
            len_b in 1u32..200,
            picks in proptest::collection::vec((proptest::bool::ANY, 0u32..500), 0..200),
        ) {
            let a0 = 0x0a00_0005_u32;
            let b0 = a0 + len_a + gap;
            let pools = [
                range(1, ip(a0), ip(a0 + len_a - 1)),
                range(2, ip(b0), ip(b0 + len_b - 1)),
            ];
            let m = FreeMap::new(&pools, 2, &none).unwrap();
            let all: Vec<u32> = (a0..a0 + len_a).chain(b0..b0 + len_b).collect();
            for (on, i) in picks {
                m.set_backup(ip(all[i as usize % all.len()]), on);
            }
            let mut want: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
            for &x in &all {
                if m.is_backup(ip(x)) {
                    match want.last_mut() {
                        Some(last) if u32::from(last.1) + 1 == x => last.1 = ip(x),
                        _ => want.push((ip(x), ip(x))),
                    }
                }
            }
            proptest::prop_assert_eq!(m.backup_ranges(), want);
        }
    }
}
