//! An AF_XDP socket bound to one (interface, queue), with its UMEM and its four rings
//! (linux `Documentation/networking/af_xdp.rst`).
//!
//! The API is shaped for batches: [`XskSocket::recv_batch`] takes every received descriptor
//! up to the caller's array, [`XskSocket::submit_tx`] publishes many frames with one release
//! store, and the system calls ([`XskSocket::kick_tx`], the fill-ring wakeup in
//! [`XskSocket::fill`]) happen once per batch and only when the ring's `XDP_RING_NEED_WAKEUP`
//! flag asks for them (`af_xdp.rst`, "`XDP_USE_NEED_WAKEUP` bind flag").

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::ring::{ConsRing, ProdRing, RingError};
use super::umem::{Umem, UmemError, setsockopt};

/// Errors of AF_XDP sockets.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// A ring size is not a power of two.
    #[error("invalid socket configuration: {0}")]
    Config(&'static str),
    /// `socket(AF_XDP)` failed.
    #[error("cannot create an AF_XDP socket: {0}")]
    Socket(#[source] io::Error),
    /// Registering the UMEM failed.
    #[error("UMEM: {0}")]
    Umem(#[source] UmemError),
    /// Mapping a ring failed.
    #[error("ring: {0}")]
    Ring(#[source] RingError),
    /// A socket option (ring size, offsets, statistics) failed.
    #[error("{what}: {source}")]
    Option {
        /// Which option.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `bind` to the interface queue failed.
    #[error("bind to ifindex {ifindex} queue {queue}: {source}")]
    Bind {
        /// Interface index.
        ifindex: u32,
        /// Queue.
        queue: u32,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A system call of the data path (`sendto`, `poll`) failed.
    #[error("{what}: {source}")]
    Io {
        /// Which call.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Which bind modes to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindPreference {
    /// `XDP_ZEROCOPY` first, `XDP_COPY` if the driver refuses (`EOPNOTSUPP`, `EINVAL`).
    #[default]
    Auto,
    /// `XDP_COPY` only.
    Copy,
    /// `XDP_ZEROCOPY` only.
    ZeroCopy,
}

/// The mode the socket is bound in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// The driver DMAs into the UMEM.
    ZeroCopy,
    /// The kernel copies between its buffers and the UMEM (generic or driver XDP without
    /// zero-copy support, e.g. veth).
    Copy,
}

/// Sizes and flags of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// RX ring entries (power of two); 0 for a TX-only socket.
    pub rx_size: u32,
    /// TX ring entries (power of two); 0 for an RX-only socket.
    pub tx_size: u32,
    /// Bind modes to try.
    pub bind: BindPreference,
    /// Bind with `XDP_USE_NEED_WAKEUP` and make system calls only when a ring asks for them.
    pub need_wakeup: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            rx_size: 2048,
            tx_size: 2048,
            bind: BindPreference::Auto,
            need_wakeup: true,
        }
    }
}

/// A descriptor: a UMEM address and a length (RX: where the kernel put a frame; TX: what to
/// send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Desc {
    /// Offset in the UMEM.
    pub addr: u64,
    /// Bytes.
    pub len: u32,
}

/// A received frame.
pub type RxDesc = Desc;
/// A frame to send.
pub type TxDesc = Desc;

/// A free frame to build an outgoing frame in; write it with [`XskSocket::frame_mut`], send it
/// with [`XskSocket::submit_tx`], or give it back with [`XskSocket::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxSlot {
    /// Base address of the frame.
    pub addr: u64,
    /// Bytes available.
    pub capacity: usize,
}

/// Kernel counters of the socket (`XDP_STATISTICS`, `struct xdp_statistics` of `if_xdp.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Frames dropped for reasons other than an invalid descriptor (e.g. no fill frame).
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty on a send attempt.
    pub tx_ring_empty_descs: u64,
}

/// How many `sendto` calls one [`XskSocket::kick_tx`] makes at most. Copy mode sends a bounded
/// number of descriptors per call (the kernel's TX batch, 32 today) and answers `EAGAIN` while
/// more are queued, so a full 4096-entry TX ring needs 128 calls.
const MAX_KICKS: usize = 256;

/// An AF_XDP socket bound to one interface queue, owning its UMEM.
pub struct XskSocket {
    // Field order matters: the rings are unmapped, then the socket closed, then the UMEM
    // unmapped (fields drop in declaration order).
    rx: Option<ConsRing<libc::xdp_desc>>,
    tx: Option<ProdRing<libc::xdp_desc>>,
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    fd: OwnedFd,
    umem: Umem,
    mode: BindMode,
    need_wakeup: bool,
    ifindex: u32,
    queue: u32,
}

// Safety: the raw ring pointers refer to mappings owned by this value; nothing else in this
// process touches them, so the socket may move to another thread (it is not Sync: all access
// to the rings goes through &mut self).
unsafe impl Send for XskSocket {}

impl XskSocket {
    /// Create a socket, register `umem` with it, map its rings and bind it to `queue` of
    /// `ifindex`. With [`BindPreference::Auto`] a zero-copy bind refused with `EOPNOTSUPP` or
    /// `EINVAL` is retried in copy mode on a fresh socket.
    pub fn new(ifindex: u32, queue: u32, umem: Umem, config: &XskConfig) -> Result<Self, XskError> {
        for (size, what) in [(config.rx_size, "RX"), (config.tx_size, "TX")] {
            if size != 0 && !size.is_power_of_two() {
                return Err(XskError::Config(if what == "RX" {
                    "RX ring size must be 0 or a power of two"
                } else {
                    "TX ring size must be 0 or a power of two"
                }));
            }
        }
        if config.rx_size == 0 && config.tx_size == 0 {
            return Err(XskError::Config("a socket needs an RX or a TX ring"));
        }
        let modes: &[BindMode] = match config.bind {
            BindPreference::Auto => &[BindMode::ZeroCopy, BindMode::Copy],
            BindPreference::Copy => &[BindMode::Copy],
            BindPreference::ZeroCopy => &[BindMode::ZeroCopy],
        };
        let mut last = None;
        for &mode in modes {
            match Self::open(ifindex, queue, &umem, config, mode) {
                Ok(parts) => return Ok(Self::assemble(parts, umem, mode, config, ifindex, queue)),
                Err(XskError::Bind { source, .. })
                    if mode == BindMode::ZeroCopy
                        && config.bind == BindPreference::Auto
                        && matches!(
                            source.raw_os_error(),
                            Some(libc::EOPNOTSUPP | libc::EINVAL)
                        ) =>
                {
                    last = Some(XskError::Bind {
                        ifindex,
                        queue,
                        source,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(XskError::Config("no bind mode to try")))
    }

    fn assemble(
        parts: Parts,
        umem: Umem,
        mode: BindMode,
        config: &XskConfig,
        ifindex: u32,
        queue: u32,
    ) -> Self {
        Self {
            rx: parts.rx,
            tx: parts.tx,
            fill: parts.fill,
            comp: parts.comp,
            fd: parts.fd,
            umem,
            mode,
            need_wakeup: config.need_wakeup,
            ifindex,
            queue,
        }
    }

    /// One attempt: socket, UMEM registration, ring sizes, offsets, mappings, bind.
    fn open(
        ifindex: u32,
        queue: u32,
        umem: &Umem,
        config: &XskConfig,
        mode: BindMode,
    ) -> Result<Parts, XskError> {
        // Safety: plain socket(2); the result is checked and owned below.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(XskError::Socket(io::Error::last_os_error()));
        }
        // Safety: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let b = fd.as_fd();
        umem.register(b).map_err(XskError::Umem)?;
        let opt = |o, v: &u32, what| {
            setsockopt(b, o, v, what).map_err(|e| match e {
                UmemError::Register { what, source } => XskError::Option { what, source },
                other => XskError::Umem(other),
            })
        };
        if config.rx_size != 0 {
            opt(libc::XDP_RX_RING, &config.rx_size, "XDP_RX_RING")?;
        }
        if config.tx_size != 0 {
            opt(libc::XDP_TX_RING, &config.tx_size, "XDP_TX_RING")?;
        }
        let off = mmap_offsets(b)?;
        let uc = umem.config();
        let fill = ProdRing::map(
            b,
            "fill",
            libc::XDP_UMEM_PGOFF_FILL_RING,
            off.fr.into(),
            uc.fill_size,
        )
        .map_err(XskError::Ring)?;
        let comp = ConsRing::map(
            b,
            "completion",
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            off.cr.into(),
            uc.comp_size,
        )
        .map_err(XskError::Ring)?;
        let rx = if config.rx_size == 0 {
            None
        } else {
            Some(
                ConsRing::map(
                    b,
                    "RX",
                    libc::XDP_PGOFF_RX_RING as u64,
                    off.rx.into(),
                    config.rx_size,
                )
                .map_err(XskError::Ring)?,
            )
        };
        let tx = if config.tx_size == 0 {
            None
        } else {
            Some(
                ProdRing::map(
                    b,
                    "TX",
                    libc::XDP_PGOFF_TX_RING as u64,
                    off.tx.into(),
                    config.tx_size,
                )
                .map_err(XskError::Ring)?,
            )
        };
        let mut flags = match mode {
            BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
            BindMode::Copy => libc::XDP_COPY,
        };
        if config.need_wakeup {
            flags |= libc::XDP_USE_NEED_WAKEUP;
        }
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // Safety: valid socket and a sockaddr_xdp of the stated size.
        let rc = unsafe {
            libc::bind(
                b.as_raw_fd(),
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(XskError::Bind {
                ifindex,
                queue,
                source: io::Error::last_os_error(),
            });
        }
        Ok(Parts {
            rx,
            tx,
            fill,
            comp,
            fd,
        })
    }

    /// The socket descriptor (to register in the XDP program's `XskMap`).
    #[must_use]
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The mode the bind succeeded in.
    #[must_use]
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// Interface index bound to.
    #[must_use]
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Queue bound to.
    #[must_use]
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The UMEM (free-frame count, frame size).
    #[must_use]
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Move free frames to the fill ring, as many as both allow; returns how many. If the
    /// kernel flagged the fill ring `XDP_RING_NEED_WAKEUP`, wake it with one non-blocking
    /// `recvfrom` (`af_xdp.rst`: "the application needs to ... call `poll()` or `recvfrom()`").
    pub fn fill(&mut self) -> usize {
        let want = u32::try_from(self.umem.free_frames()).unwrap_or(u32::MAX);
        let n = self.fill.reserve(want);
        for i in 0..n {
            // reserve() answered at most free_frames, so alloc() succeeds n times.
            let Some(addr) = self.umem.alloc() else {
                self.fill.submit(i);
                return i as usize;
            };
            self.fill.write(i, addr);
        }
        self.fill.submit(n);
        if self.need_wakeup && self.fill.needs_wakeup() {
            // Safety: valid socket; a zero-length receive into no buffer only wakes the driver.
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
        n as usize
    }

    /// Take received frames off the RX ring into `out`; returns how many. Each frame stays the
    /// caller's until it is [`Self::release`]d or sent with [`Self::submit_tx`].
    pub fn recv_batch(&mut self, out: &mut [RxDesc]) -> usize {
        let Some(rx) = self.rx.as_mut() else {
            return 0;
        };
        let n = rx.peek(u32::try_from(out.len()).unwrap_or(u32::MAX));
        for (i, o) in (0..n).zip(out.iter_mut()) {
            let d = rx.read(i);
            *o = Desc {
                addr: d.addr,
                len: d.len,
            };
        }
        rx.release(n);
        n as usize
    }

    /// The bytes of a received frame (empty if the descriptor is outside the UMEM).
    #[must_use]
    pub fn packet(&self, d: RxDesc) -> &[u8] {
        let f = self.umem.frame(d.addr);
        &f[..f.len().min(d.len as usize)]
    }

    /// The bytes from `addr` to the end of its frame.
    #[must_use]
    pub fn frame(&self, addr: u64) -> &[u8] {
        self.umem.frame(addr)
    }

    /// The writable bytes from `addr` to the end of its frame.
    pub fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        self.umem.frame_mut(addr)
    }

    /// Give a frame (received, or taken with [`Self::tx_frame`] and not sent) back.
    pub fn release(&mut self, addr: u64) {
        self.umem.release(addr);
    }

    /// A free frame to build an outgoing frame in; reaps the completion ring first when the
    /// free list is empty.
    pub fn tx_frame(&mut self) -> Option<TxSlot> {
        if self.umem.free_frames() == 0 {
            self.complete();
        }
        let addr = self.umem.alloc()?;
        Some(TxSlot {
            addr,
            capacity: self.umem.frame_size() as usize,
        })
    }

    /// Publish frames on the TX ring with one release store; returns how many of `descs` (a
    /// prefix) were taken. The rest stay the caller's: the ring had no room, or the first
    /// refused descriptor does not lie within one UMEM frame (the kernel would drop it and
    /// never complete it, losing the frame). Call [`Self::kick_tx`] afterwards.
    pub fn submit_tx(&mut self, descs: &[TxDesc]) -> usize {
        let Some(tx) = self.tx.as_mut() else {
            return 0;
        };
        let valid = descs
            .iter()
            .position(|d| d.len == 0 || !self.umem.contains(d.addr, d.len))
            .unwrap_or(descs.len());
        let n = tx.reserve(u32::try_from(valid).unwrap_or(u32::MAX));
        for (i, d) in (0..n).zip(descs) {
            tx.write(
                i,
                libc::xdp_desc {
                    addr: d.addr,
                    len: d.len,
                    options: 0,
                },
            );
        }
        tx.submit(n);
        n as usize
    }

    /// Make the kernel send what is on the TX ring: `sendto(MSG_DONTWAIT)`, only if the TX ring
    /// asks for a wakeup (always, without `need_wakeup`). Copy mode sends a bounded batch per
    /// call and answers `EAGAIN` while more are queued, `EBUSY` when the completion ring is
    /// full: both are retried (reaping completions in between) at most [`MAX_KICKS`] times.
    /// `ENOBUFS` (no memory for a buffer now) ends the attempt without error; the frames stay
    /// queued for the next kick.
    pub fn kick_tx(&mut self) -> Result<(), XskError> {
        let Some(tx) = self.tx.as_ref() else {
            return Ok(());
        };
        if self.need_wakeup && !tx.needs_wakeup() {
            return Ok(());
        }
        for _ in 0..MAX_KICKS {
            // Safety: valid socket; a zero-length send with no address only kicks the TX path.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if r >= 0 {
                if self.mode == BindMode::ZeroCopy || self.tx_pending() == 0 {
                    return Ok(());
                }
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY) => {
                    self.complete();
                    if self.tx_pending() == 0 {
                        return Ok(());
                    }
                }
                Some(libc::ENOBUFS | libc::EINTR) => return Ok(()),
                _ => {
                    return Err(XskError::Io {
                        what: "sendto",
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    /// TX descriptors published but not yet taken by the kernel.
    #[must_use]
    pub fn tx_pending(&self) -> u32 {
        self.tx.as_ref().map_or(0, ProdRing::pending)
    }

    /// Move sent frames from the completion ring to the free list; returns how many.
    pub fn complete(&mut self) -> usize {
        let n = self.comp.peek(u32::MAX);
        for i in 0..n {
            let addr = self.comp.read(i);
            self.umem.release(addr);
        }
        self.comp.release(n);
        n as usize
    }

    /// Wait up to `timeout_ms` (negative: forever) for the RX ring to hold frames; returns
    /// whether it does.
    pub fn poll_rx(&mut self, timeout_ms: i32) -> Result<bool, XskError> {
        if let Some(rx) = self.rx.as_mut()
            && rx.peek(1) > 0
        {
            return Ok(true);
        }
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Safety: one valid pollfd.
        let r = unsafe { libc::poll(&raw mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(XskError::Io {
                what: "poll",
                source: e,
            });
        }
        Ok(r > 0 && pfd.revents & libc::POLLIN != 0)
    }

    /// The kernel's counters for this socket.
    pub fn stats(&self) -> Result<Stats, XskError> {
        // Safety: all-zero is a valid xdp_statistics (plain integers).
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // Safety: valid socket; s and len describe a writable buffer of that size. Older
        // kernels fill only the first three counters and shorten len; the rest stay zero.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&raw mut s).cast(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return Err(XskError::Option {
                what: "XDP_STATISTICS",
                source: io::Error::last_os_error(),
            });
        }
        Ok(Stats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.fd)
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("umem", &self.umem)
            .finish_non_exhaustive()
    }
}

/// What one open attempt produces.
struct Parts {
    rx: Option<ConsRing<libc::xdp_desc>>,
    tx: Option<ProdRing<libc::xdp_desc>>,
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    fd: OwnedFd,
}

/// `XDP_MMAP_OFFSETS`: where the rings' parts sit in their mappings. Kernels since 5.4 return
/// the layout with the flags word; an older, shorter answer is refused (no need-wakeup flags).
fn mmap_offsets(fd: BorrowedFd<'_>) -> Result<libc::xdp_mmap_offsets, XskError> {
    // Safety: all-zero is a valid xdp_mmap_offsets (plain integers).
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // Safety: valid socket; off and len describe a writable buffer of that size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            (&raw mut off).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(XskError::Option {
            what: "XDP_MMAP_OFFSETS",
            source: io::Error::last_os_error(),
        });
    }
    if len as usize != size_of::<libc::xdp_mmap_offsets>() {
        return Err(XskError::Option {
            what: "XDP_MMAP_OFFSETS",
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                "kernel too old: ring offsets without the flags word",
            ),
        });
    }
    Ok(off)
}
