//! The socket path: one receive loop per listening address (batched `recvmmsg` on its normal
//! socket and, first every round, on its priority socket: [`crate::io::reuseport_filter`]),
//! and per worker an egress that sends with `sendmmsg`, or with `AF_PACKET` to clients that
//! have no address yet (RFC 2131 §4.1).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::Socket;

use super::admission::Admission;
use super::{DispatchError, JobMeta, ReplyTo, ReplyTo6, Stats, WorkerLink, bump, key_hash_v6};
use crate::config::Config;
use crate::engine::v4::{Destination, MAX_REPLY};
use crate::io::socket::{self, Interface, RawSender, Receiver, wait_readable};
use crate::io::socket6::{self, Receiver6, Sender6};
use crate::lease::shard_of;
use crate::logging::RateLimit;
use crate::wire::v4::client_key_fast;

/// What [`start`] gives back: one egress per worker, the bound addresses, the receive loops.
type Started = (Vec<SocketEgress>, Vec<SocketAddrV4>, Vec<JoinHandle<()>>);

/// Open the listeners, start their receive loops, and make one egress per worker.
pub(super) fn start(
    config: &Config,
    ifaces: &Arc<Vec<Interface>>,
    links: &[WorkerLink],
    stop: &Arc<AtomicBool>,
    stats: &Arc<Stats>,
    batch: usize,
) -> Result<Started, DispatchError> {
    let mut sockets: Vec<Socket> = Vec::new();
    let mut priority: Vec<Option<Socket>> = Vec::new();
    let mut listening = Vec::new();
    for &addr in &config.server.listen {
        let l = socket::listen_with_priority(addr, None)?;
        let local = l
            .socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket_ipv4())
            .unwrap_or(addr);
        listening.push(local);
        priority.push(priority_or_fallback(l.priority, &local.to_string(), stats));
        sockets.push(l.socket);
    }
    // DHCPv6: one listener per listen6 address, joined to ff02::1:2 on every interface
    // (RFC 8415 §7.1), when DHCPv6 subnets are configured.
    let mut sockets6 = Vec::new();
    let mut priority6: Vec<Option<Socket>> = Vec::new();
    if !config.subnet6.is_empty() {
        let joined: Vec<(String, u32)> =
            ifaces.iter().map(|i| (i.name.clone(), i.ifindex)).collect();
        for &addr in &config.server.listen6 {
            let l =
                socket6::listen6_with_priority(addr, &joined).map_err(DispatchError::Socket6)?;
            priority6.push(priority_or_fallback(l.priority, &addr.to_string(), stats));
            sockets6.push(l.socket);
        }
    }
    let want_raw = !ifaces.is_empty();
    let mut egresses = Vec::with_capacity(links.len());
    for _ in links {
        let sock = sockets[0].try_clone().map_err(|source| {
            DispatchError::Socket(socket::SocketError::Listen {
                addr: listening[0],
                source,
            })
        })?;
        let raw = if want_raw {
            match RawSender::open() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "no raw sender: replies to clients without an address will be broadcast");
                    None
                }
            }
        } else {
            None
        };
        let udp6 = match sockets6.first() {
            Some(s6) => Some(Sender6::new(
                s6.try_clone().map_err(|source| {
                    DispatchError::Socket6(socket6::SocketError6::Listen {
                        addr: config.server.listen6[0],
                        source,
                    })
                })?,
                batch,
            )),
            None => None,
        };
        egresses.push(SocketEgress {
            udp6,
            durable6: Vec::with_capacity(batch),
            udp: socket::Sender::new(sock, batch),
            durable: Vec::with_capacity(batch),
            raw,
            raw_out: Vec::with_capacity(batch),
        });
    }
    let mut threads = Vec::new();
    let rate = config.server.per_client_rate;
    for (i, (sock, prio)) in sockets.into_iter().zip(priority).enumerate() {
        let links = links.to_vec();
        let stop = Arc::clone(stop);
        let stats = Arc::clone(stats);
        let h = std::thread::Builder::new()
            .name(format!("tl-rx-{i}"))
            .spawn(move || {
                crate::privilege::thread_start();
                rx_loop(&sock, prio.as_ref(), &links, &stop, &stats, batch, rate);
            })
            .map_err(|source| DispatchError::Spawn {
                what: "receiver",
                source,
            })?;
        threads.push(h);
    }
    for (i, (sock, prio)) in sockets6.into_iter().zip(priority6).enumerate() {
        let links = links.to_vec();
        let stop = Arc::clone(stop);
        let stats = Arc::clone(stats);
        let h = std::thread::Builder::new()
            .name(format!("tl-rx6-{i}"))
            .spawn(move || {
                crate::privilege::thread_start();
                rx6_loop(&sock, prio.as_ref(), &links, &stop, &stats, batch, rate);
            })
            .map_err(|source| DispatchError::Spawn {
                what: "receiver6",
                source,
            })?;
        threads.push(h);
    }
    Ok((egresses, listening, threads))
}

/// Whether the fallback to a single socket per listener was logged (once per process).
static PRIORITY_FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// The priority socket of a listener, or `None` after counting (and logging once) why the
/// kernel refused it: the listener then serves everything from its one socket, renewals
/// competing with the flood for its receive buffer.
fn priority_or_fallback(
    priority: std::io::Result<Socket>,
    listener: &str,
    stats: &Stats,
) -> Option<Socket> {
    match priority {
        Ok(s) => Some(s),
        Err(e) => {
            stats
                .priority_socket_fallbacks
                .fetch_add(1, Ordering::Relaxed);
            if !PRIORITY_FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    error = %e,
                    listener,
                    "no priority socket (SO_REUSEPORT with a classic BPF program): renewals share the receive buffer with everything else under overload"
                );
            }
            None
        }
    }
}

/// Wait up to `timeout_ms` for the normal socket `fd` or the priority socket `prio`: which
/// are readable, `(normal, priority)`.
fn wait_pair(fd: RawFd, prio: Option<RawFd>, timeout_ms: i32) -> std::io::Result<(bool, bool)> {
    match prio {
        Some(p) => wait_readable([fd, p], timeout_ms).map(|[n, p]| (n, p)),
        None => wait_readable([fd], timeout_ms).map(|[n]| (n, false)),
    }
}

/// The receive loop of one DHCPv6 listener (its priority socket, if any, read first every
/// round); `rate` is `per-client-rate`.
fn rx6_loop(
    sock: &Socket,
    prio: Option<&Socket>,
    links: &[WorkerLink],
    stop: &AtomicBool,
    stats: &Stats,
    batch: usize,
    rate: u32,
) {
    let mut rx = Receiver6::new(sock, batch);
    let mut rx_prio = prio.map(|p| Receiver6::new(p, batch));
    let mut local: Vec<(&'static str, u64)> = Vec::new();
    let mut adm = Admission::new(rate);
    let offer = |rx: &Receiver6, n: usize, adm: &mut Admission, local: &mut Vec<_>| {
        for i in 0..n {
            let (bytes, meta) = rx.packet(i);
            match key_hash_v6(bytes, &meta.src) {
                Ok(h) if adm.admit(h) => {
                    let w = shard_of(h, links.len());
                    links[w].offer(bytes, JobMeta::V6(meta), None, stats, adm.now());
                }
                Ok(_) => {}
                Err(e) => bump(local, e.reason()),
            }
        }
    };
    loop {
        // On stop, one last pass without waiting (as in rx_loop).
        let stopping = stop.load(Ordering::Acquire);
        let timeout = if stopping { 0 } else { 100 };
        let round = wait_pair(rx.fd(), rx_prio.as_ref().map(Receiver6::fd), timeout).and_then(
            |(ready, ready_prio)| {
                let np = match rx_prio.as_mut() {
                    Some(p) if ready_prio => p.recv_ready()?,
                    _ => 0,
                };
                let n = if ready { rx.recv_ready()? } else { 0 };
                Ok((n, np))
            },
        );
        let (n, np) = match round {
            Ok(r) => r,
            Err(e) => {
                if stopping {
                    break;
                }
                crate::warn_limited!(RX6_FAILED, error = %e, "DHCPv6 receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        stats.received.fetch_add((n + np) as u64, Ordering::Relaxed);
        stats
            .received_priority
            .fetch_add(np as u64, Ordering::Relaxed);
        adm.begin(stats);
        if let Some(p) = rx_prio.as_ref() {
            offer(p, np, &mut adm, &mut local);
        }
        offer(&rx, n, &mut adm, &mut local);
        stats.fold(&mut local);
        if stopping && n < batch && np < batch {
            break;
        }
    }
}

/// Per-packet-path warnings: at most 5 lines per 10 s each (see [`crate::logging`]).
static RX_FAILED: RateLimit = RateLimit::new(5, Duration::from_secs(10));
static RX6_FAILED: RateLimit = RateLimit::new(5, Duration::from_secs(10));
static TX_FAILED: RateLimit = RateLimit::new(5, Duration::from_secs(10));
static TX6_FAILED: RateLimit = RateLimit::new(5, Duration::from_secs(10));

/// The receive loop of one DHCPv4 listener; `rate` is `per-client-rate`.
///
/// Every round waits for either socket, then reads the priority socket first (one
/// `recvmmsg`, renewals the kernel kept apart from the flood: [`crate::io::reuseport_filter`])
/// and the normal one second, so renewals reach the workers' priority rings ahead of a batch
/// of DISCOVERs however full the normal socket is.
fn rx_loop(
    sock: &Socket,
    prio: Option<&Socket>,
    links: &[WorkerLink],
    stop: &AtomicBool,
    stats: &Stats,
    batch: usize,
    rate: u32,
) {
    let mut rx = Receiver::new(sock, batch);
    let mut rx_prio = prio.map(|p| Receiver::new(p, batch));
    let mut local: Vec<(&'static str, u64)> = Vec::new();
    let mut adm = Admission::new(rate);
    let offer = |rx: &Receiver, n: usize, adm: &mut Admission, local: &mut Vec<_>| {
        for i in 0..n {
            let (bytes, meta) = rx.packet(i);
            match client_key_fast(bytes) {
                Ok(k) => {
                    let h = k.hash64();
                    if adm.admit(h) {
                        let w = shard_of(h, links.len());
                        links[w].offer(bytes, JobMeta::V4(meta), None, stats, adm.now());
                    }
                }
                Err(e) => bump(local, e.reason()),
            }
        }
    };
    loop {
        // On stop, one last pass without waiting: requests the kernel had already queued
        // when the stop came are handled (the workers drain their rings before exiting).
        let stopping = stop.load(Ordering::Acquire);
        let timeout = if stopping { 0 } else { 100 };
        let round = wait_pair(rx.fd(), rx_prio.as_ref().map(Receiver::fd), timeout).and_then(
            |(ready, ready_prio)| {
                let np = match rx_prio.as_mut() {
                    Some(p) if ready_prio => p.recv_ready()?,
                    _ => 0,
                };
                let n = if ready { rx.recv_ready()? } else { 0 };
                Ok((n, np))
            },
        );
        let (n, np) = match round {
            Ok(r) => r,
            Err(e) => {
                if stopping {
                    break;
                }
                crate::warn_limited!(RX_FAILED, error = %e, "receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        stats.received.fetch_add((n + np) as u64, Ordering::Relaxed);
        stats
            .received_priority
            .fetch_add(np as u64, Ordering::Relaxed);
        adm.begin(stats);
        if let Some(p) = rx_prio.as_ref() {
            offer(p, np, &mut adm, &mut local);
        }
        offer(&rx, n, &mut adm, &mut local);
        stats.fold(&mut local);
        if stopping && n < batch && np < batch {
            break;
        }
    }
}

/// A reply addressed straight to a hardware address.
struct RawOut {
    ifindex: u32,
    mac: [u8; 6],
    src: Ipv4Addr,
    dst: SocketAddrV4,
    len: usize,
    durable: bool,
    buf: [u8; MAX_REPLY],
}

/// One worker's egress on the socket path.
pub(super) struct SocketEgress {
    /// DHCPv6 replies (when DHCPv6 is configured).
    udp6: Option<Sender6>,
    /// Whether each queued DHCPv6 datagram grants, extends or gives back a lease.
    durable6: Vec<bool>,
    udp: socket::Sender,
    /// Whether each queued UDP datagram grants a lease.
    durable: Vec<bool>,
    raw: Option<RawSender>,
    raw_out: Vec<RawOut>,
}

impl SocketEgress {
    pub(super) fn push(&mut self, to: &ReplyTo<'_>, bytes: &[u8]) {
        let m = to.meta;
        let dst = to.udp_dst();
        let ifindex = match to.dest {
            Destination::Relay(_) | Destination::Unicast(_) => 0,
            Destination::Broadcast => m.ifindex,
            Destination::HwUnicast { mac, .. } => {
                if self.raw.is_some() && m.ifindex != 0 && !to.src.is_unspecified() {
                    let mut r = RawOut {
                        ifindex: m.ifindex,
                        mac,
                        src: to.src,
                        dst,
                        len: bytes.len(),
                        durable: to.durable,
                        buf: [0u8; MAX_REPLY],
                    };
                    r.buf[..bytes.len()].copy_from_slice(bytes);
                    self.raw_out.push(r);
                    return;
                }
                // No raw sender: broadcast instead (RFC 2131 §4.1 allows it).
                let Some(buf) = self.udp.next_buf() else {
                    return;
                };
                buf[..bytes.len()].copy_from_slice(bytes);
                self.udp.push(
                    bytes.len(),
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, dst.port()),
                    m.ifindex,
                    to.src,
                );
                self.durable.push(to.durable);
                return;
            }
        };
        let Some(buf) = self.udp.next_buf() else {
            return;
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        self.udp.push(bytes.len(), dst, ifindex, to.src);
        self.durable.push(to.durable);
    }

    pub(super) fn push6(
        &mut self,
        to: &ReplyTo6<'_>,
        bytes: &[u8],
        local: &mut Vec<(&'static str, u64)>,
    ) {
        let Some(udp6) = self.udp6.as_mut() else {
            bump(local, "v6_no_socket");
            return;
        };
        let Some(buf) = udp6.next_buf() else { return };
        buf[..bytes.len()].copy_from_slice(bytes);
        // A link-local destination (a client) needs the interface; a relay is routed.
        let ifindex = if to.dest.ip().is_unicast_link_local() {
            to.ifindex
        } else {
            0
        };
        udp6.push(
            bytes.len(),
            to.dest,
            ifindex,
            std::net::Ipv6Addr::UNSPECIFIED,
        );
        self.durable6.push(to.durable);
    }

    /// Send the batch's replies; when the commit failed, grants are withheld.
    pub(super) fn flush(
        &mut self,
        committed: bool,
        stats: &Stats,
        local: &mut Vec<(&'static str, u64)>,
    ) {
        if let Some(udp6) = self.udp6.as_mut() {
            if !committed && self.durable6.iter().any(|&d| d) {
                for _ in 0..udp6.len() {
                    bump(local, "withheld_not_durable");
                }
                udp6.clear();
            }
            if !udp6.is_empty() {
                let (sent, failed) = udp6.flush();
                stats.sent.fetch_add(sent as u64, Ordering::Relaxed);
                stats
                    .send_failed
                    .fetch_add(failed as u64, Ordering::Relaxed);
                if let Some((e, dst)) = udp6.take_error() {
                    crate::warn_limited!(TX6_FAILED, error = %e, %dst, failed, "sending DHCPv6 replies failed");
                }
            }
        }
        self.durable6.clear();
        if !committed && self.durable.iter().any(|&d| d) {
            // Offers and NAKs of this batch are withheld too: clients retransmit.
            for _ in 0..self.udp.len() {
                bump(local, "withheld_not_durable");
            }
            self.udp.clear();
        }
        self.durable.clear();
        if !self.udp.is_empty() {
            let (sent, failed) = self.udp.flush();
            stats.sent.fetch_add(sent as u64, Ordering::Relaxed);
            stats
                .send_failed
                .fetch_add(failed as u64, Ordering::Relaxed);
            if let Some((e, dst)) = self.udp.take_error() {
                crate::warn_limited!(TX_FAILED, error = %e, %dst, failed, "sending replies failed");
            }
        }
        if let Some(raw) = self.raw.as_mut() {
            for r in self.raw_out.drain(..) {
                if r.durable && !committed {
                    bump(local, "withheld_not_durable");
                    continue;
                }
                let res = raw.send(
                    r.ifindex,
                    r.mac,
                    SocketAddrV4::new(r.src, 67),
                    r.dst,
                    &r.buf[..r.len],
                );
                match res {
                    Ok(()) => stats.sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => stats.send_failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
        self.raw_out.clear();
    }
}
