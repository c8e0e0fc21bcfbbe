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

/// The raw view of a mapped ring shared by both ring kinds.
struct Raw<T> {
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

    fn producer(&self) -> &AtomicU32 {
        // Safety: the pointer is inside the live mapping, 4-aligned (checked in map), and the
        // kernel only accesses the word atomically.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // Safety: as for producer().
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // Safety: as for producer().
        unsafe { self.flags.as_ref() }
    }

    fn slot(&self, index: u32) -> *mut T {
        // Safety: index & mask < size, and the descriptor array of `size` entries lies inside
        // the mapping (checked in map).
        unsafe { self.descs.as_ptr().add((index & self.mask) as usize) }
    }
}

/// A ring we produce into (fill, TX).
pub(crate) struct ProdRing<T> {
    raw: Raw<T>,
    /// Our producer index (published with [`Self::submit`]).
    cached_prod: u32,
    /// The kernel's consumer index plus the ring size: the first index we may not write.
    cached_end: u32,
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
        let raw = Raw::<T>::map(fd, ring, pgoff, off, size)?;
        let cached_prod = raw.producer().load(Ordering::Relaxed);
        let cached_end = raw.consumer().load(Ordering::Acquire).wrapping_add(size);
        Ok(Self {
            raw,
            cached_prod,
            cached_end,
        })
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
                .wrapping_add(self.raw.size);
            free = self.cached_end.wrapping_sub(self.cached_prod);
        }
        free.min(want)
    }

    /// Write the `i`th slot after our producer index; `i` must be below the last
    /// [`Self::reserve`] answer.
    pub(crate) fn write(&mut self, i: u32, item: T) {
        debug_assert!(i < self.cached_end.wrapping_sub(self.cached_prod));
        // Safety: slot() points inside the descriptor array; the slot is ours (between our
        // producer index and the kernel's consumer index plus size), so the kernel does not
        // read it concurrently.
        unsafe {
            self.raw
                .slot(self.cached_prod.wrapping_add(i))
                .write_volatile(item);
        }
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
            .min(self.raw.size)
    }
}

/// A ring we consume from (RX, completion).
pub(crate) struct ConsRing<T> {
    raw: Raw<T>,
    /// The kernel's producer index as last read.
    cached_prod: u32,
    /// Our consumer index (published with [`Self::release`]).
    cached_cons: u32,
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
        let raw = Raw::<T>::map(fd, ring, pgoff, off, size)?;
        let cached_cons = raw.consumer().load(Ordering::Relaxed);
        let cached_prod = raw.producer().load(Ordering::Acquire);
        Ok(Self {
            raw,
            cached_prod,
            cached_cons,
        })
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
        // Safety: slot() points inside the descriptor array; the slot was published by the
        // kernel (below its producer index, read with acquire) and is not reused by it until we
        // release it.
        unsafe {
            self.raw
                .slot(self.cached_cons.wrapping_add(i))
                .read_volatile()
        }
    }

    /// Hand `n` read slots back: release store of the consumer index, after our reads.
    pub(crate) fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.raw
            .consumer()
            .store(self.cached_cons, Ordering::Release);
    }
}
