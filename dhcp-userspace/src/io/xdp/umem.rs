//! The UMEM of an AF_XDP socket: one anonymous `mmap` area cut into equal frames ("chunks"),
//! registered with the socket by `XDP_UMEM_REG` (linux `Documentation/networking/af_xdp.rst`,
//! "UMEM"), and the frame allocator over it.
//!
//! Every frame is, at any time, in exactly one place: our free list, the fill ring, the kernel
//! (received into, not yet on the RX ring), the RX ring or the application (received, not yet
//! released), the TX ring, or the completion ring. The free list is a `Vec` whose capacity is
//! the frame count, so moving frames in and out of it never allocates.
//!
//! Aligned-chunk mode is used: a descriptor address may point anywhere inside its frame (the
//! kernel puts received data after `XDP_PACKET_HEADROOM`), and the frame's base is the address
//! rounded down to the frame size.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// Errors of UMEM creation and registration.
#[derive(Debug, thiserror::Error)]
pub enum UmemError {
    /// The configuration is not usable.
    #[error("invalid UMEM configuration: {0}")]
    Config(&'static str),
    /// The frame area could not be mapped.
    #[error("cannot map {len} bytes of UMEM: {source}")]
    Map {
        /// Bytes asked for.
        len: usize,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A `setsockopt` of the registration failed.
    #[error("setsockopt {what}: {source}")]
    Register {
        /// Which option.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Sizes of a UMEM and of its two rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Number of frames.
    pub frame_count: u32,
    /// Bytes per frame: 2048 or 4096 (aligned mode needs a power of two no larger than a page).
    pub frame_size: u32,
    /// Fill ring entries (power of two).
    pub fill_size: u32,
    /// Completion ring entries (power of two).
    pub comp_size: u32,
}

impl Default for UmemConfig {
    fn default() -> Self {
        Self {
            frame_count: 4096,
            frame_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
        }
    }
}

/// The frame area and its free list.
pub struct Umem {
    base: NonNull<u8>,
    len: usize,
    config: UmemConfig,
    frame_mask: u64,
    free: Vec<u64>,
}

// Safety: the area is owned by this value alone (the kernel writes only frames we handed it
// through the rings of the one socket that owns the Umem), so moving it to another thread is
// sound; it has no interior mutability reachable through &self.
unsafe impl Send for Umem {}

impl Umem {
    /// Map a zeroed area of `frame_count * frame_size` bytes, all frames free.
    pub fn new(config: UmemConfig) -> Result<Self, UmemError> {
        if config.frame_size != 2048 && config.frame_size != 4096 {
            return Err(UmemError::Config("frame size must be 2048 or 4096"));
        }
        if config.frame_count == 0 {
            return Err(UmemError::Config("frame count must not be zero"));
        }
        if !config.fill_size.is_power_of_two() || !config.comp_size.is_power_of_two() {
            return Err(UmemError::Config(
                "fill and completion ring sizes must be powers of two",
            ));
        }
        let len = (config.frame_count as usize)
            .checked_mul(config.frame_size as usize)
            .ok_or(UmemError::Config("area size overflows"))?;
        // Safety: anonymous private mapping; the result is checked before use. MAP_POPULATE
        // pre-faults the pages so the first packets do not take page faults.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(UmemError::Map {
                len,
                source: io::Error::last_os_error(),
            });
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(UmemError::Config("mmap returned null"))?;
        let frame_size = u64::from(config.frame_size);
        // Highest address first so that alloc() hands out frame 0 first (pop from the end).
        let free = (0..u64::from(config.frame_count))
            .rev()
            .map(|i| i * frame_size)
            .collect();
        Ok(Self {
            base,
            len,
            config,
            frame_mask: !(frame_size - 1),
            free,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> UmemConfig {
        self.config
    }

    /// Bytes per frame.
    #[must_use]
    pub fn frame_size(&self) -> u32 {
        self.config.frame_size
    }

    /// Frames currently on the free list.
    #[must_use]
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Take a free frame: its base address (offset into the area).
    pub fn alloc(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Return the frame that `addr` points into to the free list. Addresses outside the area
    /// are ignored; so is a release beyond the frame count (a double release, a caller bug
    /// caught by a debug assertion) so the list never reallocates.
    pub fn release(&mut self, addr: u64) {
        let base = addr & self.frame_mask;
        if !self.contains(base, 1) {
            debug_assert!(false, "release of {addr:#x} outside the UMEM");
            return;
        }
        if self.free.len() < self.free.capacity() {
            self.free.push(base);
        } else {
            debug_assert!(false, "frame {addr:#x} released twice");
        }
    }

    /// Whether `[addr, addr + len)` lies inside the area and inside one frame (the kernel's
    /// aligned-mode rule for TX descriptors, `af_xdp.rst` "`XDP_UMEM_REG` setsockopt").
    #[must_use]
    pub fn contains(&self, addr: u64, len: u32) -> bool {
        let Some(end) = addr.checked_add(u64::from(len)) else {
            return false;
        };
        let in_area = usize::try_from(end).is_ok_and(|e| e <= self.len);
        let one_frame = len == 0 || (addr & self.frame_mask) == ((end - 1) & self.frame_mask);
        in_area && one_frame
    }

    /// The bytes from `addr` to the end of its frame (empty if `addr` is outside the area).
    #[must_use]
    pub fn frame(&self, addr: u64) -> &[u8] {
        let (start, n) = self.span(addr);
        // Safety: span() keeps [start, start + n) inside the area, which lives as long as
        // self; shared access follows from &self (the kernel does not write frames that are not
        // in the fill ring, and a frame the application reads was taken off the RX ring).
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(start), n) }
    }

    /// The writable bytes from `addr` to the end of its frame (empty if outside the area).
    pub fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        let (start, n) = self.span(addr);
        // Safety: as for frame(); &mut self makes this the only reference into the area.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(start), n) }
    }

    /// Offset and length of the part of the frame from `addr` on; (0, 0) when outside.
    fn span(&self, addr: u64) -> (usize, usize) {
        match usize::try_from(addr) {
            Ok(a) if a < self.len => {
                let end = ((addr & self.frame_mask) + u64::from(self.config.frame_size)) as usize;
                (a, end.min(self.len) - a)
            }
            _ => (0, 0),
        }
    }

    /// Register the area with socket `fd` (`XDP_UMEM_REG`, no headroom, aligned chunks) and
    /// size its fill and completion rings.
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> Result<(), UmemError> {
        let reg = libc::xdp_umem_reg {
            addr: self.base.as_ptr() as u64,
            len: self.len as u64,
            chunk_size: self.config.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        setsockopt(
            fd,
            libc::XDP_UMEM_FILL_RING,
            &self.config.fill_size,
            "XDP_UMEM_FILL_RING",
        )?;
        setsockopt(
            fd,
            libc::XDP_UMEM_COMPLETION_RING,
            &self.config.comp_size,
            "XDP_UMEM_COMPLETION_RING",
        )
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // Safety: base/len are what mmap returned. The socket that registered the area is
        // dropped before its Umem (field order in XskSocket), and the kernel pins the pages it
        // still uses until the socket is released anyway.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem")
            .field("config", &self.config)
            .field("free_frames", &self.free.len())
            .finish_non_exhaustive()
    }
}

/// `setsockopt(fd, SOL_XDP, opt, value)`.
pub(crate) fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    opt: libc::c_int,
    value: &T,
    what: &'static str,
) -> Result<(), UmemError> {
    // Safety: value points at a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(UmemError::Register {
            what,
            source: io::Error::last_os_error(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_configs() {
        for c in [
            UmemConfig {
                frame_size: 1000,
                ..UmemConfig::default()
            },
            UmemConfig {
                frame_count: 0,
                ..UmemConfig::default()
            },
            UmemConfig {
                fill_size: 1000,
                ..UmemConfig::default()
            },
        ] {
            assert!(matches!(Umem::new(c), Err(UmemError::Config(_))), "{c:?}");
        }
    }

    #[test]
    fn allocator_hands_out_each_frame_once_and_takes_back_interior_addresses() {
        let mut u = Umem::new(UmemConfig {
            frame_count: 8,
            frame_size: 4096,
            fill_size: 4,
            comp_size: 4,
        })
        .unwrap();
        let mut got: Vec<u64> = std::iter::from_fn(|| u.alloc()).collect();
        assert_eq!(got.len(), 8);
        assert_eq!(got[0], 0);
        got.sort_unstable();
        assert_eq!(got, (0..8).map(|i| i * 4096).collect::<Vec<_>>());
        // RX descriptors point past the headroom; release rounds down to the frame.
        u.release(3 * 4096 + 256);
        assert_eq!(u.free_frames(), 1);
        assert_eq!(u.alloc(), Some(3 * 4096));
        assert_eq!(u.alloc(), None);
    }

    #[test]
    fn frame_slices_stop_at_frame_end_and_outside_is_empty() {
        let mut u = Umem::new(UmemConfig {
            frame_count: 2,
            frame_size: 2048,
            fill_size: 2,
            comp_size: 2,
        })
        .unwrap();
        assert_eq!(u.frame(0).len(), 2048);
        assert_eq!(u.frame(2048 + 256).len(), 2048 - 256);
        assert!(u.frame(4096).is_empty());
        assert!(u.frame(u64::MAX).is_empty());
        u.frame_mut(2048)[..3].copy_from_slice(b"abc");
        assert_eq!(&u.frame(2048)[..3], b"abc");
        assert!(u.frame(0).iter().all(|&b| b == 0));
        assert!(u.contains(0, 2048));
        assert!(!u.contains(1, 2048), "crosses into the next frame");
        assert!(!u.contains(2048, 2049));
        assert!(!u.contains(4096, 1));
        assert!(!u.contains(u64::MAX, 2));
    }
}
