//! The DHCPv6 socket I/O path: UDP port 547 with batched `recvmmsg`/`sendmmsg`, the
//! RFC 3542 ancillary data `IPV6_PKTINFO` to learn the receiving interface and destination
//! address (`IPV6_RECVPKTINFO`) and to pick the sending interface and source address, and
//! membership of the link-scoped group `ff02::1:2` on every served interface.
//!
//! It mirrors [`super::socket`] (the DHCPv4 path): fixed slots, no allocation per packet,
//! one [`Receiver6`] and any number of [`Sender6`] over clones of one socket.
//!
//! DHCPv6 needs no raw sender: a client always has a link-local address before it sends
//! (RFC 8415 §7.1, §13.1), so replies are ordinary UDP datagrams to that address on the
//! receiving interface, and relayed messages go to the relay's address (§19).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use super::reuseport_filter::{self, Family, Listener};
use super::socket::{SLOT, wait_readable};

/// `All_DHCP_Relay_Agents_and_Servers` (RFC 8415 §7.1): the link-scoped multicast group
/// clients send to; every server joins it on each interface it serves.
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// `All_DHCP_Servers` (RFC 8415 §7.1): site-scoped, used by relay agents that do not know
/// the servers' unicast addresses.
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 1, 3);

/// UDP port clients listen on (RFC 8415 §7.2).
pub const CLIENT_PORT: u16 = 546;

/// UDP port servers and relay agents listen on (RFC 8415 §7.2).
pub const SERVER_PORT: u16 = 547;

/// Errors of the DHCPv6 socket path.
#[derive(Debug, thiserror::Error)]
pub enum SocketError6 {
    /// Creating, configuring or binding the UDP socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddrV6,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Joining `ff02::1:2` on an interface failed.
    #[error("cannot join ff02::1:2 on interface {name:?} (index {ifindex}): {source}")]
    Join {
        /// Interface name.
        name: String,
        /// Interface index.
        ifindex: u32,
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
}

/// The kernel index of interface `name` (`if_nametoindex`).
pub fn interface_index(name: &str) -> Result<u32, SocketError6> {
    let err = |source| SocketError6::Interface {
        name: name.to_owned(),
        source,
    };
    let cname = std::ffi::CString::new(name)
        .map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // Safety: cname is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        Err(err(io::Error::last_os_error()))
    } else {
        Ok(ifindex)
    }
}

/// Sets an `int` socket option.
fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // Safety: valid fd; the option value is a c_int of the stated size that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Open the DHCPv6 server's UDP socket: IPv6 only (`IPV6_V6ONLY`), `SO_REUSEADDR`,
/// `IPV6_RECVPKTINFO` (RFC 3542 §6.1) so that every datagram carries its destination and
/// receiving interface, and membership of `ff02::1:2` (RFC 8415 §7.1) on each of
/// `interfaces` (`(name, index)`; an index of 0 is looked up by name). Then binds `addr`,
/// normally `[::]:547` (a socket bound to a unicast address receives no multicast).
pub fn listen6(addr: SocketAddrV6, interfaces: &[(String, u32)]) -> Result<Socket, SocketError6> {
    open6(addr, interfaces, |_| Ok(()))
}

/// Open a listener as [`listen6`] with a priority socket next to it
/// ([`super::reuseport_filter`]): both bound to `addr` with `SO_REUSEPORT` and joined to
/// `ff02::1:2`, the kernel putting CONFIRM, RENEW, REBIND, RELEASE and DECLINE (also relayed)
/// in the priority socket's receive buffer and everything else in the normal one's. When the
/// kernel refuses any step, [`Listener::priority`] says why and the normal socket serves
/// alone.
///
/// # Errors
/// When the normal socket cannot be opened, joined or bound (as [`listen6`]).
pub fn listen6_with_priority(
    addr: SocketAddrV6,
    interfaces: &[(String, u32)],
) -> Result<Listener, SocketError6> {
    let mut reuse_port = Ok(());
    let socket = open6(addr, interfaces, |s| {
        reuse_port = s.set_reuse_port(true);
        Ok(())
    })?;
    // Port 0 picks a port: the priority socket binds the one picked.
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket_ipv6())
        .unwrap_or(addr);
    let priority = reuse_port.and_then(|()| {
        reuseport_filter::open_priority(&socket, Family::V6, |prepare| {
            open6(local, interfaces, prepare).map_err(|e| match e {
                SocketError6::Listen { source, .. } => source,
                other => io::Error::other(other),
            })
        })
    });
    Ok(Listener { socket, priority })
}

/// Create the socket with the options of [`listen6`], join the groups, call `prepare`, bind.
fn open6(
    addr: SocketAddrV6,
    interfaces: &[(String, u32)],
    prepare: impl FnOnce(&Socket) -> io::Result<()>,
) -> Result<Socket, SocketError6> {
    let err = |source| SocketError6::Listen { addr, source };
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    s.set_only_v6(true).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    set_int(s.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1).map_err(err)?;
    // Replies to relay agents may cross routers; link-scoped multicast never leaves the link.
    s.set_multicast_loop_v6(false).map_err(err)?;
    s.set_recv_buffer_size(8 << 20).map_err(err)?;
    s.set_send_buffer_size(8 << 20).map_err(err)?;
    for (name, index) in interfaces {
        let ifindex = if *index == 0 {
            interface_index(name)?
        } else {
            *index
        };
        s.join_multicast_v6(&ALL_DHCP_RELAY_AGENTS_AND_SERVERS, ifindex)
            .map_err(|source| SocketError6::Join {
                name: name.clone(),
                ifindex,
                source,
            })?;
    }
    prepare(&s).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    Ok(s)
}

/// What the kernel told us about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta6 {
    /// Source address and port; a link-local source carries the receiving interface as its
    /// scope id, so it can be answered as is.
    pub src: SocketAddrV6,
    /// Destination address of the datagram (`ff02::1:2` for multicast from clients).
    pub dst: Ipv6Addr,
    /// Receiving interface index (0 when the kernel gave no `IPV6_PKTINFO`).
    pub ifindex: u32,
}

/// Control buffer per slot: `CMSG_SPACE(sizeof(in6_pktinfo))` is 40 bytes on 64-bit Linux.
const CMSG_SPACE: usize = 64;

fn zeroed_vec<T: Clone>(n: usize) -> Vec<T> {
    // Safety: only instantiated below with sockaddr_in6, iovec and mmsghdr, plain C structs
    // for which all-zero bytes are a valid value.
    vec![unsafe { zeroed() }; n]
}

/// A batch receiver over one socket: `recvmmsg` into fixed slots, no allocation per packet.
pub struct Receiver6 {
    fd: RawFd,
    bufs: Vec<[u8; SLOT]>,
    names: Vec<libc::sockaddr_in6>,
    ctrl: Vec<[u8; CMSG_SPACE]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// Safety: the raw pointers inside the header arrays point only into the receiver's own
// buffers and are rebuilt before every call; the receiver is used by one thread at a time.
unsafe impl Send for Receiver6 {}

impl Receiver6 {
    /// A receiver of up to `batch` datagrams per call on `sock` (which must outlive it).
    #[must_use]
    pub fn new(sock: &Socket, batch: usize) -> Self {
        let batch = batch.max(1);
        Self {
            fd: sock.as_raw_fd(),
            bufs: vec![[0u8; SLOT]; batch],
            names: zeroed_vec(batch),
            ctrl: vec![[0u8; CMSG_SPACE]; batch],
            iov: zeroed_vec(batch),
            hdrs: zeroed_vec(batch),
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
            h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
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
    ///
    /// # Panics
    /// When `i` is not below the batch size.
    #[must_use]
    pub fn packet(&self, i: usize) -> (&[u8], RxMeta6) {
        let len = (self.hdrs[i].msg_len as usize).min(SLOT);
        let name = &self.names[i];
        let src = SocketAddrV6::new(
            Ipv6Addr::from(name.sin6_addr.s6_addr),
            u16::from_be(name.sin6_port),
            u32::from_be(name.sin6_flowinfo),
            name.sin6_scope_id,
        );
        let (ifindex, dst) = pktinfo6(&self.hdrs[i].msg_hdr);
        (&self.bufs[i][..len], RxMeta6 { src, dst, ifindex })
    }
}

/// Read `IPV6_PKTINFO` (RFC 3542 §6.1) from a received message's control data.
fn pktinfo6(h: &libc::msghdr) -> (u32, Ipv6Addr) {
    // Safety: the control buffer was filled by the kernel for this header; CMSG_* walk it
    // within msg_controllen, and the data of an IPV6_PKTINFO message is an in6_pktinfo,
    // read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_PKTINFO {
                let pi = libc::CMSG_DATA(c)
                    .cast::<libc::in6_pktinfo>()
                    .read_unaligned();
                return (pi.ipi6_ifindex, Ipv6Addr::from(pi.ipi6_addr.s6_addr));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    (0, Ipv6Addr::UNSPECIFIED)
}

/// Whether a destination needs a scope id (interface) to be reachable: link-local unicast
/// and interface- or link-scoped multicast.
fn needs_scope(a: &Ipv6Addr) -> bool {
    let s = a.segments();
    (s[0] & 0xffc0) == 0xfe80 || (a.is_multicast() && matches!(s[0] & 0x000f, 1 | 2))
}

/// One datagram queued for [`Sender6::flush`].
#[derive(Debug, Clone, Copy)]
struct TxMeta6 {
    dst: SocketAddrV6,
    ifindex: u32,
    src: Ipv6Addr,
    len: usize,
}

/// A batch sender over one UDP socket (`sendmmsg`), choosing the outgoing interface and
/// source address per datagram with `IPV6_PKTINFO` (RFC 3542 §6.2).
pub struct Sender6 {
    sock: Socket,
    bufs: Vec<[u8; SLOT]>,
    meta: Vec<TxMeta6>,
    names: Vec<libc::sockaddr_in6>,
    ctrl: Vec<[u8; CMSG_SPACE]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    last_error: Option<(io::Error, SocketAddrV6)>,
}

// Safety: as for Receiver6: the pointers are rebuilt before each call and point into self.
unsafe impl Send for Sender6 {}

impl Sender6 {
    /// A sender of up to `batch` datagrams per flush over `sock` (a clone of the listener is
    /// fine: datagram sends from several threads do not interleave).
    #[must_use]
    pub fn new(sock: Socket, batch: usize) -> Self {
        let batch = batch.max(1);
        Self {
            sock,
            bufs: vec![[0u8; SLOT]; batch],
            meta: Vec::with_capacity(batch),
            names: zeroed_vec(batch),
            ctrl: vec![[0u8; CMSG_SPACE]; batch],
            iov: zeroed_vec(batch),
            hdrs: zeroed_vec(batch),
            last_error: None,
        }
    }

    /// The last send error since the previous call, with the destination it concerned.
    pub fn take_error(&mut self) -> Option<(io::Error, SocketAddrV6)> {
        self.last_error.take()
    }

    /// The buffer for the next datagram, or `None` when the batch is full (flush first).
    pub fn next_buf(&mut self) -> Option<&mut [u8; SLOT]> {
        let i = self.meta.len();
        self.bufs.get_mut(i)
    }

    /// Queue the first `len` bytes written into [`Self::next_buf`] for `dst`, sent on
    /// interface `ifindex` from source `src`. `ifindex` 0 and `src` `::` leave the choice to
    /// the routing table. A link-local or link-scoped multicast `dst` without a scope id is
    /// sent on `ifindex`; one with a scope id other than a non-zero `ifindex` fails at flush
    /// (the kernel refuses the contradiction).
    ///
    /// # Panics
    /// In debug builds, when the batch is full or `len` exceeds a slot.
    pub fn push(&mut self, len: usize, dst: SocketAddrV6, ifindex: u32, src: Ipv6Addr) {
        debug_assert!(self.meta.len() < self.bufs.len(), "batch full: flush first");
        debug_assert!(len <= SLOT, "datagram larger than a slot");
        if self.meta.len() < self.bufs.len() {
            self.meta.push(TxMeta6 {
                dst,
                ifindex,
                src,
                len: len.min(SLOT),
            });
        }
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
            let scope = if m.dst.scope_id() == 0 && needs_scope(m.dst.ip()) {
                m.ifindex
            } else {
                m.dst.scope_id()
            };
            self.names[i] = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: m.dst.port().to_be(),
                sin6_flowinfo: m.dst.flowinfo().to_be(),
                sin6_addr: libc::in6_addr {
                    s6_addr: m.dst.ip().octets(),
                },
                sin6_scope_id: scope,
            };
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: m.len,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_flags = 0;
            if m.ifindex == 0 && m.src.is_unspecified() {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            } else {
                // Safety: CMSG_SPACE bytes are reserved per slot, enough for one in6_pktinfo
                // (CMSG_SPACE(20) = 40); CMSG_FIRSTHDR of a control buffer that large is
                // non-null, and its data is written unaligned.
                unsafe {
                    let space = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize;
                    debug_assert!(space <= CMSG_SPACE);
                    h.msg_control = self.ctrl[i].as_mut_ptr().cast();
                    h.msg_controllen = space;
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::IPPROTO_IPV6;
                    (*c).cmsg_type = libc::IPV6_PKTINFO;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as usize;
                    let pi = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: m.src.octets(),
                        },
                        ipi6_ifindex: m.ifindex,
                    };
                    libc::CMSG_DATA(c)
                        .cast::<libc::in6_pktinfo>()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::net::UdpSocket;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn scope_rules() {
        assert!(needs_scope(&"fe80::1".parse().unwrap()));
        assert!(needs_scope(&ALL_DHCP_RELAY_AGENTS_AND_SERVERS));
        assert!(!needs_scope(&ALL_DHCP_SERVERS));
        assert!(!needs_scope(&"2001:db8::1".parse().unwrap()));
        assert!(!needs_scope(&Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn unknown_interface_is_an_error() {
        let e = listen6(
            SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0),
            &[("tl-no-such-if0".to_owned(), 0)],
        )
        .unwrap_err();
        assert!(matches!(e, SocketError6::Interface { .. }), "{e}");
    }

    #[test]
    fn loopback_batch_roundtrip_with_pktinfo() {
        let lo = interface_index("lo").unwrap();
        let srv = listen6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0), &[]).unwrap();
        let port = srv.local_addr().unwrap().as_socket_ipv6().unwrap().port();
        let cli = listen6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0), &[]).unwrap();
        let cport = cli.local_addr().unwrap().as_socket_ipv6().unwrap().port();
        let mut tx = Sender6::new(cli.try_clone().unwrap(), 8);
        let to = SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0);
        for i in 0..6u8 {
            let b = tx.next_buf().unwrap();
            b[..3].copy_from_slice(&[i, 0xd6, i]);
            // Half with IPV6_PKTINFO (lo, ::1), half leaving the choice to the kernel.
            if i % 2 == 0 {
                tx.push(3, to, lo, Ipv6Addr::LOCALHOST);
            } else {
                tx.push(3, to, 0, Ipv6Addr::UNSPECIFIED);
            }
        }
        assert_eq!(tx.len(), 6);
        assert_eq!(tx.flush(), (6, 0));
        assert!(tx.is_empty());
        assert!(tx.take_error().is_none());
        let mut rx = Receiver6::new(&srv, 4);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 6 && Instant::now() < deadline {
            let n = rx.recv(100).unwrap();
            assert!(n <= 4);
            for i in 0..n {
                let (p, m) = rx.packet(i);
                assert_eq!(p.len(), 3);
                assert_eq!(p[1], 0xd6);
                assert_eq!(m.src, SocketAddrV6::new(Ipv6Addr::LOCALHOST, cport, 0, 0));
                assert_eq!(m.dst, Ipv6Addr::LOCALHOST);
                assert_eq!(m.ifindex, lo);
                got.push(p[0]);
            }
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn send_from_foreign_source_fails_and_is_reported() {
        let srv = listen6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0), &[]).unwrap();
        let port = srv.local_addr().unwrap().as_socket_ipv6().unwrap().port();
        let mut tx = Sender6::new(srv.try_clone().unwrap(), 2);
        let to = SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0);
        tx.next_buf().unwrap()[0] = 1;
        // 2001:db8::dead is not an address of this host: the kernel refuses it as source.
        tx.push(1, to, 0, "2001:db8::dead".parse().unwrap());
        tx.next_buf().unwrap()[0] = 2;
        tx.push(1, to, 0, Ipv6Addr::UNSPECIFIED);
        assert!(tx.next_buf().is_none());
        assert_eq!(tx.flush(), (1, 1));
        let (_, dst) = tx.take_error().unwrap();
        assert_eq!(dst, to);
        let mut rx = Receiver6::new(&srv, 4);
        assert_eq!(rx.recv(2000).unwrap(), 1);
        assert_eq!(rx.packet(0).0, &[2]);
    }

    /// Two namespaces joined by a veth pair (`va` in `a`, `vb` in `b`), with DAD off so the
    /// link-local addresses are usable at once. Removed on drop.
    struct Pair {
        a: String,
        b: String,
    }

    static COUNTER: AtomicU32 = AtomicU32::new(0);

    fn ip(args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    impl Pair {
        fn new() -> Option<Self> {
            // Safety: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                println!("skipped: needs root");
                return None;
            }
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = Self {
                a: format!("t6a{}-{n}", std::process::id()),
                b: format!("t6b{}-{n}", std::process::id()),
            };
            // The guard exists before the namespaces, so a failure below removes them.
            for ns in [&p.a, &p.b] {
                ip(&["netns", "add", ns]);
                for key in ["all", "default"] {
                    let k = format!("net.ipv6.conf.{key}.accept_dad=0");
                    let out = Command::new("ip")
                        .args(["netns", "exec", ns, "sysctl", "-q", "-w", &k])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "sysctl {k}");
                }
            }
            #[rustfmt::skip]
            ip(&["link", "add", "va", "netns", &p.a, "type", "veth", "peer", "name", "vb",
                "netns", &p.b]);
            for (ns, dev) in [(&p.a, "va"), (&p.a, "lo"), (&p.b, "vb"), (&p.b, "lo")] {
                ip(&["-n", ns, "link", "set", dev, "up"]);
            }
            Some(p)
        }

        /// The link-local address of `dev` in `ns`, waiting (bounded) until it is usable.
        fn link_local(ns: &str, dev: &str) -> Ipv6Addr {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let text = ip(&[
                    "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
                ]);
                let usable = !text.contains("tentative");
                let addr = text
                    .split_whitespace()
                    .skip_while(|w| *w != "inet6")
                    .nth(1)
                    .and_then(|c| c.split('/').next())
                    .and_then(|a| a.parse().ok());
                if let (true, Some(a)) = (usable, addr) {
                    return a;
                }
                assert!(Instant::now() < deadline, "no link-local on {dev}: {text}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// Run `f` on a thread inside namespace `ns` (sockets keep the namespace they were
        /// created in, so they may be used from any thread afterwards).
        fn within<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
            std::thread::scope(|s| {
                s.spawn(|| {
                    let fd = File::open(format!("/run/netns/{ns}")).unwrap();
                    // Safety: fd is an open namespace file; CLONE_NEWNET checks its type.
                    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
                    f()
                })
                .join()
                .unwrap()
            })
        }
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            // Deleting a namespace destroys its veth end, and with it the peer.
            for ns in [&self.a, &self.b] {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }

    #[test]
    fn multicast_solicit_and_link_local_reply_over_veth() {
        let Some(pair) = Pair::new() else { return };
        let ll_a = Pair::link_local(&pair.a, "va");
        let ll_b = Pair::link_local(&pair.b, "vb");
        let (srv, idx_a) = Pair::within(&pair.a, || {
            let idx = interface_index("va").unwrap();
            let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0);
            (listen6(any, &[("va".to_owned(), idx)]).unwrap(), idx)
        });
        let (cli, idx_b) = Pair::within(&pair.b, || {
            let idx = interface_index("vb").unwrap();
            let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0);
            (UdpSocket::bind(any).unwrap(), idx)
        });
        cli.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let group = SocketAddrV6::new(ALL_DHCP_RELAY_AGENTS_AND_SERVERS, SERVER_PORT, 0, idx_b);
        let mut rx = Receiver6::new(&srv, 8);
        // The first datagram may race the veth carrier: resend (bounded) until one arrives.
        let mut got = None;
        for _ in 0..20 {
            cli.send_to(b"\x01solicit", group).unwrap();
            if rx.recv(250).unwrap() > 0 {
                let (p, m) = rx.packet(0);
                got = Some((p.to_vec(), m));
                break;
            }
        }
        let (payload, meta) = got.expect("no datagram to ff02::1:2 arrived");
        assert_eq!(payload, b"\x01solicit");
        assert_eq!(meta.dst, ALL_DHCP_RELAY_AGENTS_AND_SERVERS);
        assert_eq!(meta.ifindex, idx_a);
        assert_eq!(*meta.src.ip(), ll_b);
        assert_eq!(meta.src.port(), CLIENT_PORT);
        assert_eq!(meta.src.scope_id(), idx_a);

        // Reply to the client's link-local address, chosen interface and source; the scope id
        // is left out to exercise the fill-in from the interface index.
        let mut tx = Sender6::new(srv.try_clone().unwrap(), 4);
        tx.next_buf().unwrap()[..6].copy_from_slice(b"\x02reply");
        let to = SocketAddrV6::new(ll_b, CLIENT_PORT, 0, 0);
        tx.push(6, to, idx_a, ll_a);
        assert_eq!(tx.flush(), (1, 0), "{:?}", tx.take_error());
        let mut buf = [0u8; 64];
        let (n, from) = cli.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x02reply");
        let std::net::SocketAddr::V6(from) = from else {
            panic!("reply from {from}")
        };
        assert_eq!(*from.ip(), ll_a);
        assert_eq!(from.port(), SERVER_PORT);
        assert_eq!(from.scope_id(), idx_b);
    }

    #[test]
    fn multicast_renew_lands_on_the_priority_socket_only() {
        let Some(pair) = Pair::new() else { return };
        let _ = Pair::link_local(&pair.a, "va");
        let _ = Pair::link_local(&pair.b, "vb");
        let l = Pair::within(&pair.a, || {
            let idx = interface_index("va").unwrap();
            let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0);
            listen6_with_priority(any, &[("va".to_owned(), idx)]).unwrap()
        });
        let prio = l.priority.expect("priority socket on this kernel");
        let (cli, idx_b) = Pair::within(&pair.b, || {
            let idx = interface_index("vb").unwrap();
            let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0);
            (UdpSocket::bind(any).unwrap(), idx)
        });
        let group = SocketAddrV6::new(ALL_DHCP_RELAY_AGENTS_AND_SERVERS, SERVER_PORT, 0, idx_b);
        let mut rx = Receiver6::new(&l.socket, 8);
        let mut rx_prio = Receiver6::new(&prio, 8);
        // The first datagram may race the veth carrier: a SOLICIT (type 1), resent (bounded)
        // until one arrives.
        let mut up = false;
        for _ in 0..20 {
            cli.send_to(b"\x01solicit", group).unwrap();
            if rx.recv(250).unwrap() > 0 {
                up = true;
                break;
            }
        }
        assert!(up, "no datagram to ff02::1:2 arrived");
        while rx.recv(100).unwrap() > 0 {}
        // Every socket bound to the port gets a copy of a multicast: the socket filters keep a
        // RENEW (type 5, RFC 8415 §18.2.4) on the priority socket alone, a SOLICIT on the
        // normal one alone.
        cli.send_to(b"\x05renew", group).unwrap();
        cli.send_to(b"\x01solicit", group).unwrap();
        let got = |rx: &mut Receiver6| {
            let mut out = Vec::new();
            while let Ok(n @ 1..) = rx.recv(300) {
                for i in 0..n {
                    let (p, m) = rx.packet(i);
                    assert_eq!(m.dst, ALL_DHCP_RELAY_AGENTS_AND_SERVERS);
                    out.push(p.to_vec());
                }
            }
            out
        };
        assert_eq!(got(&mut rx_prio), vec![b"\x05renew".to_vec()]);
        assert_eq!(got(&mut rx), vec![b"\x01solicit".to_vec()]);
    }

    #[test]
    fn join_fails_on_interface_index_that_does_not_exist() {
        let Some(pair) = Pair::new() else { return };
        let r = Pair::within(&pair.a, || {
            listen6(
                SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0),
                &[("ghost".to_owned(), 999_999)],
            )
        });
        assert!(matches!(
            r,
            Err(SocketError6::Join {
                ifindex: 999_999,
                ..
            })
        ));
    }
}
