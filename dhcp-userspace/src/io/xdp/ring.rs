//! The four single-producer/single-consumer rings an AF_XDP socket shares with the kernel
//! (linux `Documentation/networking/af_xdp.rst`, "Rings"): fill and TX are produced by us and
//! consumed by the kernel, RX and completion the other way round.
//!
//! Each ring is an `mmap` of the socket at a fixed page offset; `XDP_MMAP_OFFSETS` tells where
//! the producer index, the consumer index, the flags word and the descriptor array live inside
//! that mapping. Indexes are free-running `u32` counters that wrap; the slot of index `i` is
//! `i & (size - 1)`. The side that writes descriptors publishes them with a release store of
//! its index, and the other side reads that index with an acquire load before reading the
//! descriptors (`af_xdp.rst`: the rings follow the kernel's `smp_load_acquire`/`smp_store_release`
//! protocol). Both sides keep cached copies of the other's index and refresh them only when the
//! cached view does not satisfy a request, so a batch costs one or two atomic operations.
//!
//! The protocol code ([`ProdRing`], [`ConsRing`]) reaches the ring's memory through the
//! [`RingMemory`] trait, statically dispatched: outside the loom model tests its only
//! implementation is the mapping [`Raw`], with std atomics and volatile descriptor accesses,
//! so the production build compiles to what direct calls would. The `loom_tests` module
//! (built with `RUSTFLAGS="--cfg twinlease_loom"`) runs the same protocol code over heap
//! memory with loom atomics for the indexes and loom cells for the descriptor slots, a
//! producer ring and a consumer ring sharing it (the second standing for the kernel, which
//! follows the same protocol):
//! `CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg twinlease_loom" cargo test -p dhcp-userspace --lib io::xdp::ring::loom_tests`.

use std::io;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Errors of ring setup.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// A ring size is not a power of two (`af_xdp.rst`: "The size of the rings need to be of
    /// size power of two").
    #[error("ring size {0} is not a power of two")]
    Size(u32),
    /// Mapping the ring into our address space failed.
    #[error("mmap of the {ring} ring: {source}")]
    Map {
        /// Which ring.
        ring: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Where one ring's parts sit inside its mapping (`struct xdp_ring_offset` of `if_xdp.h`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingOffsets {
    pub(crate) producer: u64,
    pub(crate) consumer: u64,
    pub(crate) desc: u64,
    pub(crate) flags: u64,
}

impl From<libc::xdp_ring_offset> for RingOffsets {
    fn from(o: libc::xdp_ring_offset) -> Self {
        Self {
            producer: o.producer,
            consumer: o.consumer,
            desc: o.desc,
            flags: o.flags,
        }
    }
}

/// One `mmap`ed ring, unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Safety: base/len are exactly what mmap returned; nothing refers to the mapping after
        // the ring that owns it is dropped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Load and store of a ring's 32-bit words (producer index, consumer index, flags).
pub(crate) trait IndexWord {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u32;
    /// Atomic store.
    fn store(&self, value: u32, order: Ordering);
}

impl IndexWord for AtomicU32 {
    #[inline]
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }

    #[inline]
    fn store(&self, value: u32, order: Ordering) {
        AtomicU32::store(self, value, order);
    }
}

/// The memory of one ring as the protocol code sees it: its three words and its descriptor
/// slots. Implemented by [`Raw`] (the kernel's mapping) and, in the loom model tests, by heap
/// memory with loom atomics and cells.
pub(crate) trait RingMemory<T> {
    /// The type of the producer, consumer and flags words.
    type Word: IndexWord;
    /// The producer index.
    fn producer(&self) -> &Self::Word;
    /// The consumer index.
    fn consumer(&self) -> &Self::Word;
    /// The flags word.
    fn flags(&self) -> &Self::Word;
    /// Entries in the ring (a power of two).
    fn size(&self) -> u32;
    /// Write the slot of free-running index `index`.
    ///
    /// # Safety
    ///
    /// The caller is the producer and the slot is its own: at or after its producer index
    /// and before the consumer index it last read (acquire) plus the size.
    unsafe fn write(&self, index: u32, item: T);
    /// Read the slot of free-running index `index`.
    ///
    /// # Safety
    ///
    /// The caller is the consumer and the slot is published to it: at or after its consumer
    /// index and before the producer index it last read (acquire).
    unsafe fn read(&self, index: u32) -> T;
}

/// The raw view of a mapped ring shared by both ring kinds.
pub(crate) struct Raw<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    _map: Mapping,
    _t: PhantomData<T>,
}

impl<T: Copy> Raw<T> {
    /// Map the ring of `size` entries found at page offset `pgoff` of socket `fd`.
    fn map(
        fd: BorrowedFd<'_>,
        ring: &'static str,
        pgoff: u64,
        off: RingOffsets,
        size: u32,
    ) -> Result<Self, RingError> {
        if !size.is_power_of_two() {
            return Err(RingError::Size(size));
        }
        let map_err = |source| RingError::Map { ring, source };
        let len = usize::try_from(off.desc)
            .ok()
            .and_then(|d| d.checked_add(size as usize * size_of::<T>()))
            .ok_or_else(|| map_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        let pgoff = libc::off_t::try_from(pgoff)
            .map_err(|_| map_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        // Safety: a fresh shared mapping of the socket's ring at the page offset the ABI fixes
        // for this ring (`if_xdp.h` XDP_PGOFF_*); the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(map_err(io::Error::last_os_error()));
        }
        let base = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| map_err(io::Error::from(io::ErrorKind::AddrNotAvailable)))?;
        let map = Mapping { base, len };
        let at = |o: u64, bytes: usize| -> Result<NonNull<u8>, RingError> {
            let o = usize::try_from(o).unwrap_or(usize::MAX);
            if o.checked_add(bytes).is_none_or(|end| end > len) {
                return Err(map_err(io::Error::from(io::ErrorKind::InvalidData)));
            }
            // Safety: o + bytes <= len, so the pointer stays inside the mapping.
            Ok(unsafe { map.base.add(o) })
        };
        let producer = at(off.producer, 4)?.cast::<AtomicU32>();
        let consumer = at(off.consumer, 4)?.cast::<AtomicU32>();
        let flags = at(off.flags, 4)?.cast::<AtomicU32>();
        let descs = at(off.desc, size as usize * size_of::<T>())?.cast::<T>();
        for p in [producer, consumer, flags] {
            if !p.as_ptr().is_aligned() {
                return Err(map_err(io::Error::from(io::ErrorKind::InvalidData)));
            }
        }
        if !descs.as_ptr().is_aligned() {
            return Err(map_err(io::Error::from(io::ErrorKind::InvalidData)));
        }
        Ok(Self {
            producer,
            consumer,
            flags,
            descs,
            mask: size - 1,
            size,
            _map: map,
            _t: PhantomData,
        })
    }

    fn slot(&self, index: u32) -> *mut T {
        // Safety: index & mask < size, and the descriptor array of `size` entries lies inside
        // the mapping (checked in map).
        unsafe { self.descs.as_ptr().add((index & self.mask) as usize) }
    }
}

impl<T: Copy> RingMemory<T> for Raw<T> {
    type Word = AtomicU32;

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        // Safety: the pointer is inside the live mapping, 4-aligned (checked in map), and the
        // kernel only accesses the word atomically.
        unsafe { self.producer.as_ref() }
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        // Safety: as for producer().
        unsafe { self.consumer.as_ref() }
    }

    #[inline]
    fn flags(&self) -> &AtomicU32 {
        // Safety: as for producer().
        unsafe { self.flags.as_ref() }
    }

    #[inline]
    fn size(&self) -> u32 {
        self.size
    }

    #[inline]
    unsafe fn write(&self, index: u32, item: T) {
        // Safety: slot() points inside the descriptor array; the slot is ours (the caller's
        // contract), so the kernel does not read it concurrently.
        unsafe { self.slot(index).write_volatile(item) }
    }

    #[inline]
    unsafe fn read(&self, index: u32) -> T {
        // Safety: slot() points inside the descriptor array; the slot was published by the
        // kernel and is not reused by it until we release it (the caller's contract).
        unsafe { self.slot(index).read_volatile() }
    }
}

/// A ring we produce into (fill, TX).
pub(crate) struct ProdRing<T, M = Raw<T>> {
    raw: M,
    /// Our producer index (published with [`Self::submit`]).
    cached_prod: u32,
    /// The kernel's consumer index plus the ring size: the first index we may not write.
    cached_end: u32,
    _t: PhantomData<T>,
}

impl<T: Copy> ProdRing<T> {
    /// Map a producer ring.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        ring: &'static str,
        pgoff: u64,
        off: RingOffsets,
        size: u32,
    ) -> Result<Self, RingError> {
        Raw::<T>::map(fd, ring, pgoff, off, size).map(Self::over)
    }
}

impl<T: Copy, M: RingMemory<T>> ProdRing<T, M> {
    /// The producer side of the ring in `raw`.
    fn over(raw: M) -> Self {
        let cached_prod = raw.producer().load(Ordering::Relaxed);
        let cached_end = raw
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(raw.size());
        Self {
            raw,
            cached_prod,
            cached_end,
            _t: PhantomData,
        }
    }

    /// How many slots (at most `want`) may be written now. The kernel's consumer index is
    /// re-read (acquire: it has finished reading the slots it gave back) only when the cached
    /// view has fewer than `want` free slots, so the answer can be less than what is free.
    pub(crate) fn reserve(&mut self, want: u32) -> u32 {
        let mut free = self.cached_end.wrapping_sub(self.cached_prod);
        if free < want {
            self.cached_end = self
                .raw
                .consumer()
                .load(Ordering::Acquire)
                .wrapping_add(self.raw.size());
            free = self.cached_end.wrapping_sub(self.cached_prod);
        }
        free.min(want)
    }

    /// Write the `i`th slot after our producer index; `i` must be below the last
    /// [`Self::reserve`] answer.
    pub(crate) fn write(&mut self, i: u32, item: T) {
        debug_assert!(i < self.cached_end.wrapping_sub(self.cached_prod));
        // Safety: the slot is ours: `i` is below the last reserve() answer, so the slot lies
        // between our producer index and the kernel's consumer index (acquired) plus size.
        unsafe { self.raw.write(self.cached_prod.wrapping_add(i), item) }
    }

    /// Publish `n` written slots: release store of the producer index, so the kernel sees the
    /// descriptors before the index that covers them.
    pub(crate) fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.raw
            .producer()
            .store(self.cached_prod, Ordering::Release);
    }

    /// Whether the kernel asked to be woken (`XDP_RING_NEED_WAKEUP`, `af_xdp.rst`
    /// "`XDP_USE_NEED_WAKEUP` bind flag").
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.raw.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Slots published but not yet consumed by the kernel.
    pub(crate) fn pending(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.raw.consumer().load(Ordering::Acquire))
            .min(self.raw.size())
    }
}

/// A ring we consume from (RX, completion).
pub(crate) struct ConsRing<T, M = Raw<T>> {
    raw: M,
    /// The kernel's producer index as last read.
    cached_prod: u32,
    /// Our consumer index (published with [`Self::release`]).
    cached_cons: u32,
    _t: PhantomData<T>,
}

impl<T: Copy> ConsRing<T> {
    /// Map a consumer ring.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        ring: &'static str,
        pgoff: u64,
        off: RingOffsets,
        size: u32,
    ) -> Result<Self, RingError> {
        Raw::<T>::map(fd, ring, pgoff, off, size).map(Self::over)
    }
}

impl<T: Copy, M: RingMemory<T>> ConsRing<T, M> {
    /// The consumer side of the ring in `raw`.
    fn over(raw: M) -> Self {
        let cached_cons = raw.consumer().load(Ordering::Relaxed);
        let cached_prod = raw.producer().load(Ordering::Acquire);
        Self {
            raw,
            cached_prod,
            cached_cons,
            _t: PhantomData,
        }
    }

    /// How many filled slots (at most `want`) may be read now. The kernel's producer index is
    /// re-read (acquire: pairs with its release store after writing the descriptors) only when
    /// the cached view holds fewer than `want`.
    pub(crate) fn peek(&mut self, want: u32) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < want {
            self.cached_prod = self.raw.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        avail.min(want)
    }

    /// Read the `i`th slot after our consumer index; `i` must be below the last
    /// [`Self::peek`] answer.
    pub(crate) fn read(&self, i: u32) -> T {
        debug_assert!(i < self.cached_prod.wrapping_sub(self.cached_cons));
        // Safety: the slot is published to us: `i` is below the last peek() answer, so the
        // slot lies between our consumer index and the kernel's producer index (acquired).
        unsafe { self.raw.read(self.cached_cons.wrapping_add(i)) }
    }

    /// Hand `n` read slots back: release store of the consumer index, after our reads.
    pub(crate) fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.raw
            .consumer()
            .store(self.cached_cons, Ordering::Release);
    }
}

/// Model check of the ring protocol with `RUSTFLAGS="--cfg twinlease_loom"` (command in the
/// module documentation).
///
/// A producer ring and a consumer ring share one heap ring (the kernel's side of a real ring
/// follows the same protocol, so one of them stands for it). The indexes and the flags word
/// are loom atomics, each descriptor slot a loom cell: loom fails the model if a slot is read
/// without its write happening before (through the release store of the producer index and
/// the acquire load that sees it), or written again while a read of it is not ordered before
/// (through the consumer index), besides the assertions on the values.
///
/// Not checked here: the kernel's own implementation of its side, the page layout of the
/// mapping (offsets and alignment, checked at run time by `Raw::map`), and the flags word's
/// wakeup protocol (read relaxed, as a hint only).
#[cfg(all(test, twinlease_loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicU32 as LoomU32;
    use loom::thread;

    impl IndexWord for LoomU32 {
        fn load(&self, order: Ordering) -> u32 {
            LoomU32::load(self, order)
        }

        fn store(&self, value: u32, order: Ordering) {
            LoomU32::store(self, value, order);
        }
    }

    /// The memory of one ring on the heap, shared by its two ends.
    struct Heap<T> {
        producer: LoomU32,
        consumer: LoomU32,
        flags: LoomU32,
        slots: Box<[UnsafeCell<T>]>,
    }

    // Safety: the slots are shared by the two ends of the ring the way the kernel's mapping
    // is, each slot accessed by one end at a time under the ring protocol; loom's cells check
    // exactly that in every execution of the model.
    unsafe impl<T: Send> Sync for Heap<T> {}

    impl<T: Copy> RingMemory<T> for Arc<Heap<T>> {
        type Word = LoomU32;

        fn producer(&self) -> &LoomU32 {
            &self.producer
        }

        fn consumer(&self) -> &LoomU32 {
            &self.consumer
        }

        fn flags(&self) -> &LoomU32 {
            &self.flags
        }

        fn size(&self) -> u32 {
            u32::try_from(self.slots.len()).expect("a model ring is small")
        }

        unsafe fn write(&self, index: u32, item: T) {
            let slot = &self.slots[(index & (self.size() - 1)) as usize];
            // Safety: the caller owns the slot (the contract of `RingMemory::write`); the
            // pointer is the cell's own, valid for a write of `T`.
            slot.with_mut(|p| unsafe { p.write(item) });
        }

        unsafe fn read(&self, index: u32) -> T {
            let slot = &self.slots[(index & (self.size() - 1)) as usize];
            // Safety: the slot is published to the caller (the contract of
            // `RingMemory::read`) and was written before, so it holds an initialised `T`.
            slot.with(|p| unsafe { p.read() })
        }
    }

    /// The producer end of a model ring of descriptors.
    type ModelProd = ProdRing<u64, Arc<Heap<u64>>>;
    /// The consumer end of a model ring of descriptors.
    type ModelCons = ConsRing<u64, Arc<Heap<u64>>>;

    /// The two ends of a ring of `size` slots (initialised to `u64::MAX`, never sent) whose
    /// indexes start at `start`.
    fn ring(size: u32, start: u32) -> (ModelProd, ModelCons) {
        assert!(size.is_power_of_two());
        let heap = Arc::new(Heap {
            producer: LoomU32::new(start),
            consumer: LoomU32::new(start),
            flags: LoomU32::new(0),
            slots: (0..size).map(|_| UnsafeCell::new(u64::MAX)).collect(),
        });
        (ProdRing::over(Arc::clone(&heap)), ConsRing::over(heap))
    }

    /// A ring end moved to its own loom thread.
    struct Owned<R>(R);

    // Safety: each ring end is used by one thread only (it moves there whole); what it shares
    // with the other end is the `Heap`, whose words are atomics and whose slots are checked by
    // loom.
    unsafe impl<R> Send for Owned<R> {}

    /// The producer sends `0..n` in batches of at most `batch` while the consumer takes
    /// batches of at most `batch`; both spin (yielding) when the ring is full or empty. The
    /// consumer gets everything once, in order, and the ring ends empty.
    fn transfer(size: u32, start: u32, n: u64, batch: u32) {
        let (prod, cons) = ring(size, start);
        let prod = Owned(prod);
        let producer = thread::spawn(move || {
            let Owned(mut p) = prod;
            let mut next = 0u64;
            while next < n {
                let want = u32::try_from((n - next).min(u64::from(batch))).unwrap();
                let got = p.reserve(want);
                assert!(got <= want);
                if got == 0 {
                    thread::yield_now();
                    continue;
                }
                for i in 0..got {
                    p.write(i, next + u64::from(i));
                }
                p.submit(got);
                next += u64::from(got);
                assert!(p.pending() <= size);
            }
            assert!(!p.needs_wakeup());
            Owned(p)
        });
        let cons = Owned(cons);
        let consumer = thread::spawn(move || {
            let Owned(mut c) = cons;
            let mut seen = Vec::new();
            while (seen.len() as u64) < n {
                let got = c.peek(batch);
                if got == 0 {
                    thread::yield_now();
                    continue;
                }
                for i in 0..got {
                    seen.push(c.read(i));
                }
                c.release(got);
            }
            (seen, Owned(c))
        });
        let Owned(p) = producer.join().unwrap();
        let (seen, Owned(mut c)) = consumer.join().unwrap();
        // FIFO, no loss, no duplicate: exactly `0..n`, in order (a slot overwritten before
        // its read would show here too, besides failing loom's cell check).
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
        assert_eq!(p.pending(), 0, "everything sent was consumed");
        assert_eq!(c.peek(1), 0, "nothing left to read");
    }

    /// Four descriptors through a ring of two slots in batches of two: each slot is written
    /// again after its first read, so the producer must wait for the consumer's release.
    #[test]
    fn two_slots_batches_of_two() {
        loom::model(|| transfer(2, 0, 4, 2));
    }

    /// Four descriptors through a ring of four slots in batches of up to three, the indexes
    /// starting two before `u32::MAX`: the free-running counters wrap during the transfer and
    /// batches straddle the end of the slot array.
    #[test]
    fn four_slots_indexes_wrap() {
        loom::model(|| transfer(4, u32::MAX - 1, 4, 3));
    }
}
