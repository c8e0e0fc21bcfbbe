//! The socket I/O path: UDP port 67 with batched `recvmmsg`/`sendmmsg`, `IP_PKTINFO` to learn
//! the receiving interface and to pick the sending one, and an `AF_PACKET` sender for replies
//! to clients that have no address yet (RFC 2131 §4.1: unicast to chaddr/yiaddr without ARP).
//!
//! This path is the fallback for hosts without XDP and the one tests use on loopback.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

pub use super::reuseport_filter::Listener;
use super::reuseport_filter::{self, Family};

/// Errors of the socket path.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Creating or binding the UDP socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddrV4,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An interface named in the configuration does not exist.
    #[error("interface {name:?}: {source}")]
    Interface {
        /// Interface name.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The raw (`AF_PACKET`) sender could not be opened.
    #[error("cannot open the raw packet sender: {0}")]
    Raw(#[source] io::Error),
}

/// An interface the server serves directly attached clients on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// Kernel index.
    pub ifindex: u32,
    /// First IPv4 address, if any.
    pub addr: Option<Ipv4Addr>,
    /// IPv6 link-local address (`fe80::/10`), if any: the source of DHCPv6 replies to clients.
    pub addr6_link_local: Option<Ipv6Addr>,
    /// First global IPv6 address, if any: the source of DHCPv6 replies to relay agents.
    pub addr6_global: Option<Ipv6Addr>,
    /// Hardware address.
    pub mac: [u8; 6],
}

impl Interface {
    /// Look an interface up by name.
    pub fn lookup(name: &str) -> Result<Self, SocketError> {
        let err = |source| SocketError::Interface {
            name: name.to_owned(),
            source,
        };
        let cname = std::ffi::CString::new(name)
            .map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        // Safety: cname is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(err(io::Error::last_os_error()));
        }
        let mac_text =
            std::fs::read_to_string(format!("/sys/class/net/{name}/address")).map_err(err)?;
        let mut mac = [0u8; 6];
        for (i, part) in mac_text.trim().split(':').take(6).enumerate() {
            mac[i] = u8::from_str_radix(part, 16).unwrap_or(0);
        }
        let a = addresses_of(name);
        Ok(Self {
            name: name.to_owned(),
            ifindex,
            addr: a.v4,
            addr6_link_local: a.v6_link_local,
            addr6_global: a.v6_global,
            mac,
        })
    }
}

/// The addresses of one interface, as getifaddrs reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfAddresses {
    /// First IPv4 address.
    pub v4: Option<Ipv4Addr>,
    /// First IPv6 link-local address (`fe80::/10`).
    pub v6_link_local: Option<Ipv6Addr>,
    /// First other (global or unique-local) IPv6 address.
    pub v6_global: Option<Ipv6Addr>,
}

/// The first IPv4 address of an interface (getifaddrs).
#[must_use]
pub fn ipv4_of(name: &str) -> Option<Ipv4Addr> {
    addresses_of(name).v4
}

/// The addresses of an interface (getifaddrs).
#[must_use]
pub fn addresses_of(name: &str) -> IfAddresses {
    let mut out = IfAddresses::default();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // Safety: getifaddrs writes a list head into ifap, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&raw mut ifap) } != 0 {
        return out;
    }
    let mut p = ifap;
    while !p.is_null() {
        // Safety: p is a node of the list getifaddrs returned and has not been freed.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // Safety: ifa_name is a NUL-terminated string owned by the list.
        let n = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if n.to_bytes() != name.as_bytes() {
            continue;
        }
        // Safety: ifa_addr is non-null and points at a sockaddr of at least sa_family's size.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET && out.v4.is_none() {
            // Safety: the family is AF_INET, so the sockaddr is a sockaddr_in; read_unaligned
            // makes no assumption about its alignment.
            let sin = unsafe { ifa.ifa_addr.cast::<libc::sockaddr_in>().read_unaligned() };
            out.v4 = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        } else if family == libc::AF_INET6 {
            // Safety: the family is AF_INET6, so the sockaddr is a sockaddr_in6.
            let sin6 = unsafe { ifa.ifa_addr.cast::<libc::sockaddr_in6>().read_unaligned() };
            let a = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            if a.is_unicast_link_local() {
                out.v6_link_local.get_or_insert(a);
            } else if !a.is_loopback() && !a.is_multicast() {
                out.v6_global.get_or_insert(a);
            }
        }
    }
    // Safety: ifap came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(ifap) };
    out
}

/// Open a UDP listener with the options the DHCP server needs.
pub fn listen(addr: SocketAddrV4, bind_device: Option<&str>) -> Result<Socket, SocketError> {
    open(addr, bind_device, |_| Ok(())).map_err(|source| SocketError::Listen { addr, source })
}

/// Open a listener with a priority socket next to it ([`super::reuseport_filter`]): both
/// bound to `addr` with `SO_REUSEPORT`, the kernel putting renewals (`ciaddr` set) in the
/// priority socket's receive buffer and everything else in the normal one's. When the kernel
/// refuses any step, [`Listener::priority`] says why and the normal socket serves alone.
///
/// # Errors
/// When the normal socket cannot be opened or bound (as [`listen`]).
pub fn listen_with_priority(
    addr: SocketAddrV4,
    bind_device: Option<&str>,
) -> Result<Listener, SocketError> {
    let err = |source| SocketError::Listen { addr, source };
    let mut reuse_port = Ok(());
    let socket = open(addr, bind_device, |s| {
        reuse_port = s.set_reuse_port(true);
        Ok(())
    })
    .map_err(err)?;
    // Port 0 picks a port: the priority socket binds the one picked.
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket_ipv4())
        .unwrap_or(addr);
    let priority = reuse_port.and_then(|()| {
        reuseport_filter::open_priority(&socket, Family::V4, |prepare| {
            open(local, bind_device, prepare)
        })
    });
    Ok(Listener { socket, priority })
}

/// Create a UDP socket with the server's options, call `prepare` on it, then bind `addr`.
fn open(
    addr: SocketAddrV4,
    bind_device: Option<&str>,
    prepare: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    if let Some(dev) = bind_device {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    let on: libc::c_int = 1;
    // Safety: valid fd, option value is a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    s.set_recv_buffer_size(8 << 20)?;
    s.set_send_buffer_size(8 << 20)?;
    prepare(&s)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Wait up to `timeout_ms` until one of `fds` has something to read (`poll`): which ones
/// (any event counts: a read then tells what it was). All false on timeout.
pub fn wait_readable<const N: usize>(fds: [RawFd; N], timeout_ms: i32) -> io::Result<[bool; N]> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // Safety: `pfds` is an array of N valid pollfds that outlives the call.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), N as libc::nfds_t, timeout_ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pfds.map(|p| p.revents != 0))
}

/// What the kernel told us about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address of the datagram (255.255.255.255 for broadcasts).
    pub dst: Ipv4Addr,
    /// Receiving interface index.
    pub ifindex: u32,
}

/// Size of one receive or send slot.
pub const SLOT: usize = 1536;

const CMSG_SPACE: usize = 64;

/// A batch receiver over one socket: `recvmmsg` into fixed slots, no allocation per packet.
pub struct Receiver {
    fd: RawFd,
    bufs: Vec<[u8; SLOT]>,
    names: Vec<libc::sockaddr_in>,
    ctrl: Vec<[u8; CMSG_SPACE]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// Safety: the raw pointers inside the header arrays point only into the receiver's own
// buffers and are rebuilt before every call; the receiver is used by one thread at a time.
unsafe impl Send for Receiver {}

impl Receiver {
    /// A receiver of up to `batch` datagrams per call on `sock`.
    #[must_use]
    pub fn new(sock: &Socket, batch: usize) -> Self {
        Self {
            fd: sock.as_raw_fd(),
            bufs: vec![[0u8; SLOT]; batch],
            // Safety: sockaddr_in, iovec and mmsghdr are plain C structs for which all-zero is valid.
            names: vec![unsafe { zeroed() }; batch],
            ctrl: vec![[0u8; CMSG_SPACE]; batch],
            // Safety: as above.
            iov: vec![unsafe { zeroed() }; batch],
            // Safety: as above.
            hdrs: vec![unsafe { zeroed() }; batch],
        }
    }

    /// The socket's descriptor, for [`wait_readable`].
    #[must_use]
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Wait up to `timeout_ms` for datagrams, then receive as many as are queued (up to the
    /// batch size). Returns how many; [`Self::packet`] reads them.
    pub fn recv(&mut self, timeout_ms: i32) -> io::Result<usize> {
        if wait_readable([self.fd], timeout_ms)? == [false] {
            return Ok(0);
        }
        self.recv_ready()
    }

    /// Receive as many datagrams as are queued (up to the batch size) without waiting: one
    /// `recvmmsg`. Returns how many (0 when none); [`Self::packet`] reads them.
    pub fn recv_ready(&mut self) -> io::Result<usize> {
        for i in 0..self.bufs.len() {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: SLOT,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_SPACE;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // Safety: every header points at live buffers of the stated sizes owned by self.
        let n = unsafe {
            libc::recvmmsg(
                self.fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Datagram `i` of the last [`Self::recv`]: its bytes and metadata.
    #[must_use]
    pub fn packet(&self, i: usize) -> (&[u8], RxMeta) {
        let len = (self.hdrs[i].msg_len as usize).min(SLOT);
        let name = &self.names[i];
        let src = SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)),
            u16::from_be(name.sin_port),
        );
        let (ifindex, dst) = pktinfo(&self.hdrs[i].msg_hdr);
        (&self.bufs[i][..len], RxMeta { src, dst, ifindex })
    }
}

/// Read `IP_PKTINFO` from a received message's control data.
fn pktinfo(h: &libc::msghdr) -> (u32, Ipv4Addr) {
    // Safety: the control buffer was filled by the kernel for this header; CMSG_* walk it
    // within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let pi = libc::CMSG_DATA(c)
                    .cast::<libc::in_pktinfo>()
                    .read_unaligned();
                return (
                    u32::try_from(pi.ipi_ifindex).unwrap_or(0),
                    Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr)),
                );
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    (0, Ipv4Addr::UNSPECIFIED)
}

/// One datagram queued for [`Sender::flush`].
#[derive(Debug, Clone, Copy)]
struct TxMeta {
    dst: SocketAddrV4,
    ifindex: u32,
    src: Ipv4Addr,
    len: usize,
}

/// A batch sender over one UDP socket (`sendmmsg`), choosing the outgoing interface and
/// source address per datagram with `IP_PKTINFO`.
pub struct Sender {
    sock: Socket,
    bufs: Vec<[u8; SLOT]>,
    meta: Vec<TxMeta>,
    names: Vec<libc::sockaddr_in>,
    ctrl: Vec<[u8; CMSG_SPACE]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    last_error: Option<(io::Error, SocketAddrV4)>,
}

// Safety: as for Receiver: the pointers are rebuilt before each call and point into self.
unsafe impl Send for Sender {}

impl Sender {
    /// A sender of up to `batch` datagrams per flush over `sock` (a clone of the listener is
    /// fine: datagram sends from several threads do not interleave).
    #[must_use]
    pub fn new(sock: Socket, batch: usize) -> Self {
        Self {
            sock,
            bufs: vec![[0u8; SLOT]; batch],
            meta: Vec::with_capacity(batch),
            // Safety: plain C structs; all-zero is valid.
            names: vec![unsafe { zeroed() }; batch],
            ctrl: vec![[0u8; CMSG_SPACE]; batch],
            // Safety: as above.
            iov: vec![unsafe { zeroed() }; batch],
            // Safety: as above.
            hdrs: vec![unsafe { zeroed() }; batch],
            last_error: None,
        }
    }

    /// The last send error since the previous call, with the destination it concerned.
    pub fn take_error(&mut self) -> Option<(io::Error, SocketAddrV4)> {
        self.last_error.take()
    }

    /// The buffer for the next datagram, or `None` when the batch is full (flush first).
    pub fn next_buf(&mut self) -> Option<&mut [u8; SLOT]> {
        let i = self.meta.len();
        self.bufs.get_mut(i)
    }

    /// Queue the datagram written into [`Self::next_buf`].
    pub fn push(&mut self, len: usize, dst: SocketAddrV4, ifindex: u32, src: Ipv4Addr) {
        debug_assert!(self.meta.len() < self.bufs.len());
        self.meta.push(TxMeta {
            dst,
            ifindex,
            src,
            len,
        });
    }

    /// Queued datagrams.
    #[must_use]
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Whether nothing is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Drop everything queued (e.g. the batch's commit failed).
    pub fn clear(&mut self) {
        self.meta.clear();
    }

    /// Send everything queued; returns (sent, failed).
    pub fn flush(&mut self) -> (usize, usize) {
        let n = self.meta.len();
        for i in 0..n {
            let m = self.meta[i];
            self.names[i] = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: m.dst.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*m.dst.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: m.len,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_flags = 0;
            if m.ifindex == 0 && m.src.is_unspecified() {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            } else {
                // Safety: CMSG_SPACE bytes are reserved per slot, enough for one in_pktinfo.
                unsafe {
                    let space = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize;
                    h.msg_control = self.ctrl[i].as_mut_ptr().cast();
                    h.msg_controllen = space;
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::IPPROTO_IP;
                    (*c).cmsg_type = libc::IP_PKTINFO;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize;
                    let pi = libc::in_pktinfo {
                        ipi_ifindex: libc::c_int::try_from(m.ifindex).unwrap_or(0),
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(m.src).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    libc::CMSG_DATA(c)
                        .cast::<libc::in_pktinfo>()
                        .write_unaligned(pi);
                }
            }
        }
        let mut sent = 0usize;
        let mut failed = 0usize;
        let mut off = 0usize;
        let mut spins = 0;
        while off < n && spins < 64 {
            // Safety: headers [off, n) point at live buffers owned by self.
            let r = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    self.hdrs[off..n].as_mut_ptr(),
                    (n - off) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                    spins += 1;
                    continue;
                }
                // Skip the datagram that failed and go on with the rest.
                self.last_error = Some((e, self.meta[off].dst));
                failed += 1;
                off += 1;
                continue;
            }
            let r = usize::try_from(r).unwrap_or(0);
            sent += r;
            off += r;
        }
        failed += n - off;
        self.meta.clear();
        (sent, failed)
    }
}

/// Sends replies to clients that have no IPv4 address yet straight to their hardware address
/// (`AF_PACKET`, `SOCK_DGRAM`: the kernel adds the Ethernet header), building the IPv4 and UDP
/// headers here (RFC 2131 §4.1).
pub struct RawSender {
    fd: OwnedFd,
    frame: [u8; SLOT + 28],
}

impl RawSender {
    /// Open the sender (needs `CAP_NET_RAW`).
    pub fn open() -> Result<Self, SocketError> {
        // Safety: plain socket(2) call; the result is checked and owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from((libc::ETH_P_IP as u16).to_be()),
            )
        };
        if fd < 0 {
            return Err(SocketError::Raw(io::Error::last_os_error()));
        }
        // Restrict receive to nothing: this socket only sends. An unbound AF_PACKET socket with
        // protocol ETH_P_IP would queue every IP frame, so bind it to protocol 0.
        // Safety: fd is a fresh socket we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Safety: zeroed sockaddr_ll is valid; protocol 0 receives nothing.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = 0;
        // Safety: valid fd and sockaddr of the stated size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(SocketError::Raw(io::Error::last_os_error()));
        }
        Ok(Self {
            fd,
            frame: [0u8; SLOT + 28],
        })
    }

    /// Send `payload` as UDP `src:sport → dst:dport` to `mac` on `ifindex`.
    pub fn send(
        &mut self,
        ifindex: u32,
        mac: [u8; 6],
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()> {
        let n = build_ipv4_udp(&mut self.frame, src, dst, payload)?;
        // Safety: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
        // Safety: valid fd, buffer of n bytes, sockaddr of the stated size.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                self.frame.as_ptr().cast(),
                n,
                0,
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// Write an IPv4 header (no options, DF clear, TTL 64) and a UDP header with checksums in
/// front of `payload` into `out`; returns the datagram length.
pub fn build_ipv4_udp(
    out: &mut [u8],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> io::Result<usize> {
    let total = 28 + payload.len();
    if total > out.len() || total > usize::from(u16::MAX) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let o = &mut out[..total];
    o[0] = 0x45;
    o[1] = 0x10; // DSCP low-delay, as DHCP servers customarily send
    o[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    o[4..8].fill(0);
    o[8] = 64;
    o[9] = 17;
    o[10..12].fill(0);
    o[12..16].copy_from_slice(&src.ip().octets());
    o[16..20].copy_from_slice(&dst.ip().octets());
    let ipsum = checksum(&o[..20], 0);
    o[10..12].copy_from_slice(&ipsum.to_be_bytes());
    let ulen = (8 + payload.len()) as u16;
    o[20..22].copy_from_slice(&src.port().to_be_bytes());
    o[22..24].copy_from_slice(&dst.port().to_be_bytes());
    o[24..26].copy_from_slice(&ulen.to_be_bytes());
    o[26..28].fill(0);
    o[28..].copy_from_slice(payload);
    // RFC 768: pseudo-header of source, destination, protocol and UDP length.
    let mut pseudo = 0u32;
    for w in [&src.ip().octets(), &dst.ip().octets()] {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]))
            + u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    pseudo += 17 + u32::from(ulen);
    let mut usum = checksum(&o[20..], pseudo);
    if usum == 0 {
        usum = 0xffff;
    }
    o[26..28].copy_from_slice(&usum.to_be_bytes());
    Ok(total)
}

/// RFC 1071 Internet checksum of `data` with an initial sum.
#[must_use]
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_udp_checksums_verify() {
        let mut out = [0u8; 600];
        let payload = [7u8; 301];
        let n = build_ipv4_udp(
            &mut out,
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 67),
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 100), 68),
            &payload,
        )
        .unwrap();
        assert_eq!(n, 329);
        // A header whose checksum is right sums to zero.
        assert_eq!(checksum(&out[..20], 0), 0);
        let mut pseudo = 0u32;
        for w in [[192u8, 0, 2, 1], [192, 0, 2, 100]] {
            pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]))
                + u32::from(u16::from_be_bytes([w[2], w[3]]));
        }
        pseudo += 17 + (n as u32 - 20);
        assert_eq!(checksum(&out[20..n], pseudo), 0);
    }

    #[test]
    fn priority_listener_sorts_renewals_and_keeps_pktinfo() {
        let l = listen_with_priority(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), None).unwrap();
        let prio = l.priority.expect("priority socket on this kernel");
        let port = l
            .socket
            .local_addr()
            .unwrap()
            .as_socket_ipv4()
            .unwrap()
            .port();
        assert_eq!(
            prio.local_addr().unwrap().as_socket_ipv4().unwrap().port(),
            port
        );
        let cli = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // A BOOTREQUEST with ciaddr (RENEWING, RFC 2131 §4.3.2) and one without.
        let mut renew = [0u8; 300];
        renew[0] = 1;
        renew[12..16].copy_from_slice(&[198, 18, 1, 7]);
        let mut discover = [0u8; 300];
        discover[0] = 1;
        discover[4] = 0xd1;
        for m in [&discover, &renew, &discover] {
            cli.send_to(m, (Ipv4Addr::LOCALHOST, port)).unwrap();
        }
        let mut rx = Receiver::new(&l.socket, 8);
        let mut rx_prio = Receiver::new(&prio, 8);
        let [ready, ready_prio] = wait_readable([rx.fd(), rx_prio.fd()], 1000).unwrap();
        assert!(ready || ready_prio);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(rx_prio.recv_ready().unwrap(), 1);
        let (p, m) = rx_prio.packet(0);
        assert_eq!(p, &renew);
        assert_eq!(m.dst, Ipv4Addr::LOCALHOST);
        assert_ne!(m.ifindex, 0);
        assert_eq!(rx.recv_ready().unwrap(), 2);
        assert!((0..2).all(|i| rx.packet(i).0 == discover));
        assert_eq!(rx_prio.recv_ready().unwrap(), 0);
    }

    #[test]
    fn loopback_batch_roundtrip() {
        let srv = listen(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), None).unwrap();
        let port = srv.local_addr().unwrap().as_socket_ipv4().unwrap().port();
        let cli = listen(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), None).unwrap();
        let cport = cli.local_addr().unwrap().as_socket_ipv4().unwrap().port();
        let mut tx = Sender::new(cli.try_clone().unwrap(), 8);
        for i in 0..5u8 {
            let b = tx.next_buf().unwrap();
            b[0] = i;
            tx.push(
                1,
                SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
                0,
                Ipv4Addr::UNSPECIFIED,
            );
        }
        assert_eq!(tx.flush(), (5, 0));
        let mut rx = Receiver::new(&srv, 8);
        let mut got = Vec::new();
        for _ in 0..20 {
            let n = rx.recv(100).unwrap();
            for i in 0..n {
                let (p, m) = rx.packet(i);
                assert_eq!(m.src.port(), cport);
                assert_eq!(m.dst, Ipv4Addr::LOCALHOST);
                assert_ne!(m.ifindex, 0);
                got.push(p[0]);
            }
            if got.len() == 5 {
                break;
            }
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }
}
