//! A lock-free two-level bitmap of free addresses: the atomic claim / release primitives that
//! [`super::FreeMap`] builds on.
//!
//! Level 0 holds one bit per address (1 = free) in `AtomicU64` words. Level 1 (the
//! *summary*) holds one bit per level-0 word: set when that word may hold a free bit. A
//! search reads the summary to skip 64 exhausted words (4096 addresses) per load, so finding
//! a free bit costs O(words / 4096) in the worst case and O(1) while a region is being
//! handed out front to back.
//!
//! Invariant kept without locks: *at quiescence, a nonzero word has its summary bit set*
//! (the summary may have false positives, never false negatives). It rests on two rules:
//!
//! - whoever turns a word from zero to nonzero ([`AtomicBitmap::release`]) sets the summary
//!   bit afterwards (release ordering);
//! - whoever clears a summary bit ([`AtomicBitmap::retire`]) does so with an acquire-release
//!   RMW and reloads the word afterwards, setting the bit again when the word is nonzero. If
//!   the clear is ordered after a releaser's set, it synchronises with that set and so sees
//!   the releaser's word update; if it is ordered before, the set survives.

#[cfg(twinlease_loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(twinlease_loom))]
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits per word.
pub(crate) const WORD_BITS: usize = 64;

/// A fixed-size two-level atomic bitmap, 1 = free.
pub(crate) struct AtomicBitmap {
    /// One bit per address.
    words: Box<[AtomicU64]>,
    /// One bit per entry of `words`: the word may be nonzero.
    summary: Box<[AtomicU64]>,
}

impl AtomicBitmap {
    /// A bitmap of `nwords` words, all bits clear (nothing free).
    #[cfg(test)]
    pub(crate) fn new(nwords: usize) -> Self {
        let words = (0..nwords).map(|_| AtomicU64::new(0)).collect();
        let summary = (0..nwords.div_ceil(WORD_BITS))
            .map(|_| AtomicU64::new(0))
            .collect();
        Self { words, summary }
    }

    /// A bitmap holding `words` (level 0) with its summary computed from them.
    pub(crate) fn from_words(words: &[u64]) -> Self {
        let summary = words
            .chunks(WORD_BITS)
            .map(|c| {
                let s = c
                    .iter()
                    .enumerate()
                    .fold(0u64, |s, (i, &w)| s | (u64::from(w != 0) << i));
                AtomicU64::new(s)
            })
            .collect();
        let words = words.iter().map(|&w| AtomicU64::new(w)).collect();
        Self { words, summary }
    }

    /// Heap bytes used by both levels.
    pub(crate) fn memory_bytes(&self) -> usize {
        (self.words.len() + self.summary.len()) * size_of::<u64>()
    }

    /// Whether bit `bit` of word `w` is set (the address is free).
    pub(crate) fn is_set(&self, w: usize, bit: u32) -> bool {
        self.words[w].load(Ordering::Acquire) & (1u64 << bit) != 0
    }

    /// Set bit `bit` of word `w` (mark the address free). Returns `true` when the bit was
    /// clear before, i.e. this call made one more address free.
    pub(crate) fn release(&self, w: usize, bit: u32) -> bool {
        let m = 1u64 << bit;
        let prev = self.words[w].fetch_or(m, Ordering::AcqRel);
        if prev == 0 {
            // Zero → nonzero: publish the word in the summary (module rule 1).
            self.summary[w / WORD_BITS].fetch_or(1u64 << (w % WORD_BITS), Ordering::AcqRel);
        }
        prev & m == 0
    }

    /// Claim exactly bit `bit` of word `w`. Returns `true` when this call cleared it.
    pub(crate) fn claim_exact(&self, w: usize, bit: u32) -> bool {
        let m = 1u64 << bit;
        let prev = self.words[w].fetch_and(!m, Ordering::AcqRel);
        if prev == m {
            self.retire(w);
        }
        prev & m != 0
    }

    /// Claim any set bit of word `w`, lowest first. Returns the bit claimed, or `None` when
    /// the word has no set bit (its summary bit is then retired).
    /// Claim the lowest set bit of word `w` that is also set in `mask`; `None` when the word
    /// has none. Unlike [`Self::claim_any`] a word that still holds bits outside `mask` keeps
    /// its summary bit.
    pub(crate) fn claim_masked(&self, w: usize, mask: u64) -> Option<u32> {
        let word = &self.words[w];
        let mut cur = word.load(Ordering::Acquire);
        loop {
            if cur == 0 {
                self.retire(w);
                return None;
            }
            let avail = cur & mask;
            if avail == 0 {
                return None;
            }
            let bit = avail.trailing_zeros();
            let m = 1u64 << bit;
            let prev = word.fetch_and(!m, Ordering::AcqRel);
            if prev & m != 0 {
                if prev == m {
                    self.retire(w);
                }
                return Some(bit);
            }
            cur = prev;
        }
    }

    /// The current value of word `w` (a snapshot; bits may change right after).
    pub(crate) fn load_word(&self, w: usize) -> u64 {
        self.words[w].load(Ordering::Acquire)
    }

    pub(crate) fn claim_any(&self, w: usize) -> Option<u32> {
        let word = &self.words[w];
        let mut cur = word.load(Ordering::Acquire);
        loop {
            if cur == 0 {
                self.retire(w);
                return None;
            }
            let bit = cur.trailing_zeros();
            let m = 1u64 << bit;
            let prev = word.fetch_and(!m, Ordering::AcqRel);
            if prev & m != 0 {
                if prev == m {
                    // We emptied the word.
                    self.retire(w);
                }
                return Some(bit);
            }
            // Someone else took that bit first; retry with what the word holds now.
            cur = prev;
        }
    }

    /// Clear the summary bit of word `w`, then restore it if the word is nonzero after all
    /// (module rule 2).
    fn retire(&self, w: usize) {
        let s = &self.summary[w / WORD_BITS];
        let m = 1u64 << (w % WORD_BITS);
        s.fetch_and(!m, Ordering::AcqRel);
        if self.words[w].load(Ordering::Acquire) != 0 {
            s.fetch_or(m, Ordering::AcqRel);
        }
    }

    /// First word index in `from..to` whose summary bit is set (it *may* hold a free bit).
    pub(crate) fn next_candidate(&self, from: usize, to: usize) -> Option<usize> {
        if from >= to {
            return None;
        }
        let mut i = from / WORD_BITS;
        let last = (to - 1) / WORD_BITS;
        // Mask off the bits below `from` in the first summary word.
        let mut mask = !0u64 << (from % WORD_BITS);
        while i <= last {
            let s = self.summary[i].load(Ordering::Acquire) & mask;
            if s != 0 {
                let w = i * WORD_BITS + s.trailing_zeros() as usize;
                return (w < to).then_some(w);
            }
            mask = !0;
            i += 1;
        }
        None
    }
}

#[cfg(all(test, not(twinlease_loom)))]
mod tests {
    use super::*;

    #[test]
    fn claim_release_and_summary() {
        let b = AtomicBitmap::new(200);
        assert_eq!(b.next_candidate(0, 200), None);
        assert!(b.release(130, 5));
        assert!(
            !b.release(130, 5),
            "second release of the same bit is a no-op"
        );
        assert!(b.release(131, 0));
        assert_eq!(b.next_candidate(0, 200), Some(130));
        assert_eq!(b.next_candidate(131, 200), Some(131));
        assert_eq!(b.next_candidate(0, 130), None);
        assert_eq!(b.next_candidate(132, 200), None);
        assert!(b.is_set(130, 5));
        assert_eq!(b.claim_any(130), Some(5));
        assert!(!b.is_set(130, 5));
        assert_eq!(b.claim_any(130), None);
        // The emptied word left the summary.
        assert_eq!(b.next_candidate(0, 200), Some(131));
        assert!(!b.claim_exact(131, 1));
        assert!(b.claim_exact(131, 0));
        assert_eq!(b.next_candidate(0, 200), None);
    }

    #[test]
    fn claim_any_takes_lowest_bits_in_order() {
        let b = AtomicBitmap::new(1);
        for bit in [3, 9, 63] {
            b.release(0, bit);
        }
        assert_eq!(b.claim_any(0), Some(3));
        assert_eq!(b.claim_any(0), Some(9));
        assert_eq!(b.claim_any(0), Some(63));
        assert_eq!(b.claim_any(0), None);
    }
}

/// Model check of claim / release on one word with `RUSTFLAGS="--cfg twinlease_loom"`:
/// `CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg twinlease_loom" cargo test -p dhcp-userspace --lib pool::bitmap::loom_tests`.
#[cfg(all(test, twinlease_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two claimers race for the two free bits of a word while a third thread hands one bit
    /// back: no bit is claimed twice, and afterwards the summary covers every nonzero word.
    #[test]
    fn claim_and_release_one_word() {
        loom::model(|| {
            let b = Arc::new(AtomicBitmap::new(1));
            b.release(0, 0);
            b.release(0, 1);
            let claimers: Vec<_> = (0..2)
                .map(|_| {
                    let b = Arc::clone(&b);
                    thread::spawn(move || b.claim_any(0))
                })
                .collect();
            let giver = {
                let b = Arc::clone(&b);
                // Bit 2 was never free: releasing it adds one free address.
                thread::spawn(move || b.release(0, 2))
            };
            let got: Vec<u32> = claimers
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect();
            assert!(giver.join().unwrap());
            // Both claimers succeed (two bits were free from the start), never on the same bit.
            assert_eq!(got.len(), 2);
            assert_ne!(got[0], got[1]);
            // Exactly one bit remains free, and the summary advertises it.
            let left: Vec<u32> = (0..3).filter(|&i| b.is_set(0, i)).collect();
            assert_eq!(left.len(), 1);
            assert!(!got.contains(&left[0]));
            assert_eq!(b.next_candidate(0, 1), Some(0));
        });
    }

    /// The failover shares: a claimer restricted to the FREE share (bits 0, 1) and one
    /// restricted to the BACKUP share (bits 2, 3) race with a releaser on one word: no bit is
    /// claimed twice, a restricted claimer never takes a bit outside its mask, and the
    /// summary still covers every free bit.
    #[test]
    fn masked_claims_respect_their_share() {
        loom::model(|| {
            let b = Arc::new(AtomicBitmap::new(1));
            for bit in [0, 2] {
                b.release(0, bit);
            }
            let free_share = {
                let b = Arc::clone(&b);
                thread::spawn(move || b.claim_masked(0, 0b0011))
            };
            let backup_share = {
                let b = Arc::clone(&b);
                thread::spawn(move || b.claim_masked(0, 0b1100))
            };
            let giver = {
                let b = Arc::clone(&b);
                thread::spawn(move || b.release(0, 3))
            };
            let f = free_share.join().unwrap();
            let k = backup_share.join().unwrap();
            assert!(giver.join().unwrap());
            // Bit 0 was the only FREE-share bit: the FREE claimer gets it, whatever the order.
            assert_eq!(f, Some(0));
            // The BACKUP claimer gets bit 2 or 3, never a FREE-share bit.
            assert!(matches!(k, Some(2 | 3)), "{k:?}");
            // One BACKUP bit is left, and the summary advertises it.
            let left: Vec<u32> = (0..4).filter(|&i| b.is_set(0, i)).collect();
            assert_eq!(left.len(), 1);
            assert!(left[0] == 2 || left[0] == 3);
            assert_ne!(Some(left[0]), k);
            assert_eq!(b.next_candidate(0, 1), Some(0), "free bit hidden from the summary");
        });
    }

    /// A claimer empties the word while a releaser refills it: the summary bit must survive
    /// (this is the race rule 2 of the module documentation exists for).
    #[test]
    fn retire_races_refill() {
        loom::model(|| {
            let b = Arc::new(AtomicBitmap::new(1));
            b.release(0, 0);
            let c = {
                let b = Arc::clone(&b);
                thread::spawn(move || b.claim_any(0))
            };
            let g = {
                let b = Arc::clone(&b);
                thread::spawn(move || b.release(0, 1))
            };
            let claimed = c.join().unwrap();
            assert!(g.join().unwrap());
            assert!(claimed.is_some());
            if b.words[0].load(Ordering::Acquire) != 0 {
                assert_eq!(
                    b.next_candidate(0, 1),
                    Some(0),
                    "free bit hidden from the summary"
                );
            }
        });
    }
}
