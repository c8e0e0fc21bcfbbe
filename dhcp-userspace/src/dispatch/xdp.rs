//! The `AF_XDP` path: the XDP program steers DHCP on each configured interface to one
//! `AF_XDP` socket per receive queue; one loop per queue receives a batch, finds each client's
//! worker, and transmits the reply frames the workers hand back.
//!
//! Under overload each queue loop sets its queue's shed level in the XDP program
//! ([`super::shed`]): the program then drops part of the new-client frames (DISCOVER,
//! SOLICIT, ...) before the RX ring, never renewals, so the ring does not overflow.
//!
//! Workers never touch a socket: they build complete Ethernet frames (VLAN tags mirrored,
//! IPv4/UDP checksums) and push them, after their group commit, onto the queue's TX ring of
//! frames; an eventfd wakes the queue loop once per batch.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;

use crossbeam_queue::ArrayQueue;

use super::admission::{Admission, coarse_ms};
use super::shed::ShedControl;
use super::{
    DispatchError, JobMeta, L2Meta, ReplyTo, ReplyTo6, Stats, WorkerLink, bump, key_hash_v6,
};
use crate::config::{Config, XdpAttachMode};
use crate::control::XdpQueueStats;
use crate::engine::v4::Destination;
use crate::io::socket::{Interface, RxMeta};
use crate::io::socket6::RxMeta6;
use crate::io::xdp::frame::{self, EthHeader, IpPair};
use crate::io::xdp::program::{AttachMode, MAX_SHED_LEVEL, ProgramError, ShedHandle, XdpProgram};
use crate::io::xdp::umem::{Umem, UmemConfig, UmemError};
use crate::io::xdp::xsk::{BindPreference, RxDesc, TxDesc, XskConfig, XskError, XskSocket};
use crate::lease::shard_of;
use crate::wire::v4::client_key_fast;

/// Errors setting up the `AF_XDP` path.
#[derive(Debug, thiserror::Error)]
pub enum XdpSetupError {
    /// Loading or attaching the XDP program failed.
    #[error("XDP program on {iface}: {source}")]
    Program {
        /// Interface.
        iface: String,
        /// Why.
        #[source]
        source: Box<ProgramError>,
    },
    /// The UMEM of a queue could not be created.
    #[error("UMEM for {iface} queue {queue}: {source}")]
    Umem {
        /// Interface.
        iface: String,
        /// Queue.
        queue: u32,
        /// Why.
        #[source]
        source: UmemError,
    },
    /// The `AF_XDP` socket of a queue could not be bound.
    #[error("AF_XDP socket for {iface} queue {queue}: {source}")]
    Socket {
        /// Interface.
        iface: String,
        /// Queue.
        queue: u32,
        /// Why.
        #[source]
        source: XskError,
    },
    /// The receive queues of an interface could not be counted.
    #[error("{iface}: cannot count receive queues in /sys/class/net: {source}")]
    Queues {
        /// Interface.
        iface: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An eventfd could not be created.
    #[error("eventfd: {0}")]
    EventFd(#[source] io::Error),
}

/// Largest frame a worker builds (1500-byte IP datagram, Ethernet header, two VLAN tags).
const TX_FRAME: usize = 1536;

/// A reply frame on its way from a worker to a queue loop.
struct TxFrame {
    len: usize,
    buf: [u8; TX_FRAME],
}

/// One interface queue as the workers see it.
struct Port {
    iface: String,
    queue: u32,
    ifindex: u32,
    mac: [u8; 6],
    addr: Option<Ipv4Addr>,
    addr6_link_local: Option<Ipv6Addr>,
    addr6_global: Option<Ipv6Addr>,
    tx: ArrayQueue<Box<TxFrame>>,
    wake: OwnedFd,
    /// The queue's shed level as last written to the XDP program (for the metrics).
    shed_level: AtomicU32,
}

impl Port {
    /// Wake the queue loop (one write per batch, not per frame).
    fn wake(&self) {
        let one: u64 = 1;
        // Safety: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Reset the eventfd counter after a wakeup.
    fn drain_wake(&self) {
        let mut v: u64 = 0;
        // Safety: reads 8 bytes into a live u64 from our non-blocking eventfd.
        unsafe { libc::read(self.wake.as_raw_fd(), (&raw mut v).cast(), 8) };
    }
}

/// The running `AF_XDP` path: programs, queue loops.
pub(super) struct XdpPath {
    programs: Vec<(String, XdpProgram)>,
    /// The queues, for their shed levels (set once the loops start).
    ports: Arc<Vec<Port>>,
    /// Keeps `ff02::1:2` joined on the interfaces (RFC 8415 §7.1), so that NICs that filter
    /// multicast in hardware accept DHCPv6 frames; it is never read: XDP takes them first.
    _v6_group: Option<socket2::Socket>,
    loops: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl XdpPath {
    /// Per-queue counters of every interface's program, with the queues' shed levels.
    pub(super) fn counters(&self) -> Vec<XdpQueueStats> {
        let mut out = Vec::new();
        for (name, p) in &self.programs {
            if let Ok(c) = p.counters() {
                for (q, counters) in c.into_iter().enumerate() {
                    let queue = q as u32;
                    let shed_level = self
                        .ports
                        .iter()
                        .find(|p| p.iface == *name && p.queue == queue)
                        .map_or(0, |p| p.shed_level.load(Ordering::Relaxed));
                    out.push(XdpQueueStats {
                        iface: name.clone(),
                        queue,
                        counters,
                        shed_level,
                    });
                }
            }
        }
        out
    }

    /// Stop and join the queue loops (the workers' rings then close).
    pub(super) fn stop_loops(&mut self) {
        self.stop.store(true, Ordering::Release);
        for h in self.loops.drain(..) {
            let _ = h.join();
        }
    }

    /// Detach every program: no stale XDP program is left on an interface.
    pub(super) fn shutdown(mut self) {
        self.stop_loops();
        for (name, mut p) in self.programs.drain(..) {
            match p.detach() {
                Ok(()) => tracing::info!(iface = %name, "XDP program detached"),
                Err(e) => {
                    tracing::error!(iface = %name, error = %e, "detaching the XDP program failed");
                }
            }
        }
    }
}

impl Drop for XdpPath {
    fn drop(&mut self) {
        self.stop_loops();
        for (_, p) in &mut self.programs {
            let _ = p.detach();
        }
    }
}

/// Number of receive queues of an interface (`/sys/class/net/IF/queues/rx-N`).
fn rx_queues(iface: &str) -> Result<u32, Box<XdpSetupError>> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let rd = std::fs::read_dir(&dir).map_err(|source| {
        Box::new(XdpSetupError::Queues {
            iface: iface.to_owned(),
            source,
        })
    })?;
    let n = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(u32::try_from(n.max(1)).unwrap_or(1))
}

fn eventfd() -> Result<OwnedFd, Box<XdpSetupError>> {
    // Safety: plain eventfd(2); the result is checked and owned.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(Box::new(XdpSetupError::EventFd(io::Error::last_os_error())));
    }
    // Safety: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Load and attach the program on every configured interface, bind one socket per queue,
/// start the queue loops, and make one egress per worker.
pub(super) fn start(
    config: &Config,
    ifaces: &Arc<Vec<Interface>>,
    links: &[WorkerLink],
    stop: &Arc<AtomicBool>,
    stats: &Arc<Stats>,
) -> Result<(Vec<XdpEgress>, XdpPath), DispatchError> {
    let x = &config.server.xdp;
    let mode = match x.attach_mode {
        XdpAttachMode::Auto => AttachMode::Auto,
        XdpAttachMode::Driver => AttachMode::Driver,
        XdpAttachMode::Skb => AttachMode::Skb,
    };
    // The loops get their own stop flag so the path can be stopped before the workers.
    let loop_stop = Arc::new(AtomicBool::new(false));
    let v6_group = if config.subnet6.is_empty() {
        None
    } else {
        let joined: Vec<(String, u32)> =
            ifaces.iter().map(|i| (i.name.clone(), i.ifindex)).collect();
        let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0);
        Some(crate::io::socket6::listen6(any, &joined).map_err(DispatchError::Socket6)?)
    };
    let mut path = XdpPath {
        programs: Vec::new(),
        ports: Arc::new(Vec::new()),
        _v6_group: v6_group,
        loops: Vec::new(),
        stop: Arc::clone(&loop_stop),
    };
    let mut ports = Vec::new();
    let mut sockets = Vec::new();
    let mut sheds = Vec::new();
    for iface in ifaces.iter() {
        let name = iface.name.clone();
        let perr = |source| {
            Box::new(XdpSetupError::Program {
                iface: name.clone(),
                source: Box::new(source),
            })
        };
        let mut prog = XdpProgram::load().map_err(perr)?;
        let mut queues = rx_queues(&iface.name)?;
        if x.queues > 0 {
            queues = queues.min(x.queues);
        }
        for q in 0..queues {
            let umem = Umem::new(UmemConfig {
                frame_count: x.frames,
                frame_size: 2048,
                fill_size: x.ring_size,
                comp_size: x.ring_size,
            })
            .map_err(|source| {
                Box::new(XdpSetupError::Umem {
                    iface: name.clone(),
                    queue: q,
                    source,
                })
            })?;
            let xsk = XskSocket::new(
                iface.ifindex,
                q,
                umem,
                &XskConfig {
                    rx_size: x.ring_size,
                    tx_size: x.ring_size,
                    bind: BindPreference::Auto,
                    need_wakeup: !x.busy_poll,
                },
            )
            .map_err(|source| {
                Box::new(XdpSetupError::Socket {
                    iface: name.clone(),
                    queue: q,
                    source,
                })
            })?;
            prog.register_socket(q, xsk.fd()).map_err(perr)?;
            sheds.push(prog.shed_handle(q).map_err(perr)?);
            tracing::info!(iface = %name, queue = q, mode = ?xsk.mode(), "AF_XDP socket bound");
            ports.push(Port {
                iface: name.clone(),
                queue: q,
                ifindex: iface.ifindex,
                mac: iface.mac,
                addr: iface.addr,
                addr6_link_local: iface.addr6_link_local,
                addr6_global: iface.addr6_global,
                tx: ArrayQueue::new(x.ring_size as usize),
                wake: eventfd()?,
                shed_level: AtomicU32::new(0),
            });
            sockets.push(xsk);
        }
        prog.attach(&name, mode).map_err(perr)?;
        path.programs.push((name, prog));
    }
    let ports = Arc::new(ports);
    path.ports = Arc::clone(&ports);
    let pool = Arc::new(ArrayQueue::new((x.ring_size as usize) * ports.len().max(1)));
    let batch = config.server.batch_size;
    for (idx, (xsk, shed)) in sockets.into_iter().zip(sheds).enumerate() {
        let ql = QueueLoop {
            idx,
            xsk,
            shed,
            shed_ctl: ShedControl::new(coarse_ms(), MAX_SHED_LEVEL),
            ports: Arc::clone(&ports),
            links: links.to_vec(),
            stats: Arc::clone(stats),
            pool: Arc::clone(&pool),
            busy_poll: x.busy_poll,
            batch,
            adm: Admission::new(config.server.per_client_rate),
        };
        let loop_stop = Arc::clone(&loop_stop);
        let server_stop = Arc::clone(stop);
        let core = (!x.queue_cores.is_empty()).then(|| x.queue_cores[idx % x.queue_cores.len()]);
        let h = std::thread::Builder::new()
            .name(format!("tl-xdp-{}-{}", ports[idx].iface, ports[idx].queue))
            .spawn(move || {
                crate::privilege::thread_start();
                super::pin(core, "queue loop", idx);
                ql.run(&loop_stop, &server_stop);
            })
            .map_err(|source| DispatchError::Spawn {
                what: "AF_XDP queue loop",
                source,
            })?;
        path.loops.push(h);
    }
    let egresses = links
        .iter()
        .map(|_| XdpEgress {
            ports: Arc::clone(&ports),
            pool: Arc::clone(&pool),
            pending: Vec::with_capacity(batch),
            touched: vec![false; ports.len()],
        })
        .collect();
    Ok((egresses, path))
}

/// The loop of one interface queue.
struct QueueLoop {
    idx: usize,
    xsk: XskSocket,
    /// Writes this queue's shed level into the XDP program.
    shed: ShedHandle,
    /// Decides that level from what the loop sees.
    shed_ctl: ShedControl,
    ports: Arc<Vec<Port>>,
    links: Vec<WorkerLink>,
    stats: Arc<Stats>,
    pool: Arc<ArrayQueue<Box<TxFrame>>>,
    busy_poll: bool,
    batch: usize,
    /// Clock and per-client rate limit of this loop.
    adm: Admission,
}

impl QueueLoop {
    fn run(mut self, stop: &AtomicBool, server_stop: &AtomicBool) {
        let mut rx = vec![RxDesc::default(); self.batch];
        let mut txd: Vec<TxDesc> = Vec::with_capacity(self.batch);
        let mut local: Vec<(&'static str, u64)> = Vec::new();
        let ports = Arc::clone(&self.ports);
        let port = &ports[self.idx];
        while !stop.load(Ordering::Acquire) && !server_stop.load(Ordering::Acquire) {
            self.xsk.fill();
            let n = self.xsk.recv_batch(&mut rx);
            if n > 0 {
                self.adm.begin(&self.stats);
            }
            let mut refused = 0u32;
            for d in &rx[..n] {
                let bytes = self.xsk.packet(*d);
                match frame::parse(bytes) {
                    Ok(info) => match info.ip {
                        IpPair::V4 { src, dst } if info.dst_port == 67 => {
                            let payload = info.payload(bytes);
                            let meta = RxMeta {
                                src: SocketAddrV4::new(src, info.src_port),
                                dst,
                                ifindex: port.ifindex,
                            };
                            match client_key_fast(payload) {
                                Ok(k) if self.adm.admit(k.hash64()) => {
                                    let l2 = L2Meta {
                                        port: self.idx,
                                        eth: info.eth,
                                    };
                                    let taken = self.links[k.shard(self.links.len())].offer(
                                        payload,
                                        JobMeta::V4(meta),
                                        Some(l2),
                                        &self.stats,
                                        self.adm.now(),
                                    );
                                    refused += u32::from(!taken);
                                }
                                Ok(_) => {}
                                Err(e) => bump(&mut local, e.reason()),
                            }
                        }
                        IpPair::V6 { src, dst } if info.dst_port == 547 => {
                            let payload = info.payload(bytes);
                            // A link-local source is answered on the interface it came in on.
                            let scope = if src.is_unicast_link_local() {
                                port.ifindex
                            } else {
                                0
                            };
                            let meta = RxMeta6 {
                                src: SocketAddrV6::new(src, info.src_port, 0, scope),
                                dst,
                                ifindex: port.ifindex,
                            };
                            match key_hash_v6(payload, &meta.src) {
                                Ok(h) if self.adm.admit(h) => {
                                    let l2 = L2Meta {
                                        port: self.idx,
                                        eth: info.eth,
                                    };
                                    let taken = self.links[shard_of(h, self.links.len())].offer(
                                        payload,
                                        JobMeta::V6(meta),
                                        Some(l2),
                                        &self.stats,
                                        self.adm.now(),
                                    );
                                    refused += u32::from(!taken);
                                }
                                Ok(_) => {}
                                Err(e) => bump(&mut local, e.reason()),
                            }
                        }
                        _ => bump(&mut local, "xdp_not_dhcp"),
                    },
                    Err(_) => bump(&mut local, "xdp_bad_frame"),
                }
                self.xsk.release(d.addr);
            }
            self.stats
                .received_xdp
                .fetch_add(n as u64, Ordering::Relaxed);
            self.shed_ctl.poll(n, self.batch, refused);
            let now = coarse_ms();
            if self.shed_ctl.due(now) {
                self.shed_tick(now, port);
            }

            // Reply frames from the workers → TX ring.
            while txd.len() < self.batch {
                let Some(f) = port.tx.pop() else { break };
                let Some(slot) = self.xsk.tx_frame() else {
                    // No free UMEM frame: give it back to the ring (or drop if that filled).
                    if let Err(f) = port.tx.push(f) {
                        self.stats.send_failed.fetch_add(1, Ordering::Relaxed);
                        let _ = self.pool.push(f);
                    }
                    break;
                };
                let len = f.len.min(slot.capacity);
                self.xsk.frame_mut(slot.addr)[..len].copy_from_slice(&f.buf[..len]);
                txd.push(TxDesc {
                    addr: slot.addr,
                    len: len as u32,
                });
                let _ = self.pool.push(f);
            }
            let sent_now = !txd.is_empty();
            if sent_now {
                let k = self.xsk.submit_tx(&txd);
                for d in &txd[k..] {
                    self.xsk.release(d.addr);
                }
                self.stats.sent_xdp.fetch_add(k as u64, Ordering::Relaxed);
                self.stats
                    .send_failed
                    .fetch_add((txd.len() - k) as u64, Ordering::Relaxed);
                txd.clear();
                if let Err(e) = self.xsk.kick_tx() {
                    tracing::debug!(error = %e, "AF_XDP TX kick");
                }
            }
            self.xsk.complete();
            self.stats.fold(&mut local);
            if n == 0 && !sent_now && port.tx.is_empty() {
                if self.busy_poll {
                    std::hint::spin_loop();
                } else {
                    self.sleep(port);
                }
            }
        }
    }

    /// End a shed interval: write the queue's new level, if it changed, into the program.
    fn shed_tick(&mut self, now: u32, port: &Port) {
        let fill = self
            .links
            .iter()
            .map(WorkerLink::bulk_fill_percent)
            .max()
            .unwrap_or(0);
        let Some(level) = self.shed_ctl.tick(now, fill) else {
            return;
        };
        match self.shed.set(level) {
            Ok(()) => {
                port.shed_level.store(level, Ordering::Relaxed);
                tracing::debug!(iface = %port.iface, queue = port.queue, level, "XDP shed level");
            }
            Err(e) => {
                tracing::warn!(iface = %port.iface, queue = port.queue, error = %e, "XDP shed level");
            }
        }
    }

    /// Sleep until a frame arrives, a worker hands over replies, or 100 ms pass.
    fn sleep(&self, port: &Port) {
        let mut fds = [
            libc::pollfd {
                fd: self.xsk.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: port.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Safety: two valid pollfd entries.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, 100) };
        if fds[1].revents & libc::POLLIN != 0 {
            port.drain_wake();
        }
    }
}

/// One worker's egress on the `AF_XDP` path.
pub(super) struct XdpEgress {
    ports: Arc<Vec<Port>>,
    pool: Arc<ArrayQueue<Box<TxFrame>>>,
    pending: Vec<(usize, bool, Box<TxFrame>)>,
    touched: Vec<bool>,
}

impl XdpEgress {
    /// Build the reply frame (RFC 2131 §4.1 destinations at the link layer).
    pub(super) fn push(
        &mut self,
        to: &ReplyTo<'_>,
        bytes: &[u8],
        local: &mut Vec<(&'static str, u64)>,
    ) {
        let Some(l2) = to.l2 else {
            bump(local, "xdp_reply_without_l2");
            return;
        };
        let port = &self.ports[l2.port];
        // Relayed and unicast replies go back to the request's link-layer source (the relay,
        // the router, or the client itself); broadcast to everyone; HwUnicast to chaddr.
        let dst_mac = match to.dest {
            Destination::Broadcast => [0xff; 6],
            Destination::HwUnicast { mac, .. } => mac,
            Destination::Relay(_) | Destination::Unicast(_) => l2.eth.src_mac,
        };
        let eth = EthHeader {
            dst_mac,
            src_mac: port.mac,
            vlans: l2.eth.vlans,
        };
        let src_ip = if to.src.is_unspecified() {
            port.addr.unwrap_or(Ipv4Addr::UNSPECIFIED)
        } else {
            to.src
        };
        let mut f = self.pool.pop().unwrap_or_else(|| {
            Box::new(TxFrame {
                len: 0,
                buf: [0u8; TX_FRAME],
            })
        });
        if let Ok(n) = frame::build_udp4_reply(
            &mut f.buf,
            &eth,
            SocketAddrV4::new(src_ip, 67),
            to.udp_dst(),
            bytes,
        ) {
            f.len = n;
            self.pending.push((l2.port, to.durable, f));
        } else {
            bump(local, "xdp_frame_too_large");
            let _ = self.pool.push(f);
        }
    }

    /// Build a DHCPv6 reply frame: back to the request's link-layer source (the client or the
    /// relay), from our link-local address to a link-local client, else from our global one
    /// (RFC 8415 §18.4; the UDP checksum is mandatory, RFC 8200 §8.1).
    pub(super) fn push6(
        &mut self,
        to: &ReplyTo6<'_>,
        bytes: &[u8],
        local: &mut Vec<(&'static str, u64)>,
    ) {
        let Some(l2) = to.l2 else {
            bump(local, "xdp_reply_without_l2");
            return;
        };
        let port = &self.ports[l2.port];
        let src_ip = if to.dest.ip().is_unicast_link_local() {
            port.addr6_link_local
        } else {
            port.addr6_global.or(port.addr6_link_local)
        };
        let Some(src_ip) = src_ip else {
            bump(local, "xdp_no_ipv6_source");
            return;
        };
        let eth = EthHeader {
            dst_mac: l2.eth.src_mac,
            src_mac: port.mac,
            vlans: l2.eth.vlans,
        };
        let mut f = self.pool.pop().unwrap_or_else(|| {
            Box::new(TxFrame {
                len: 0,
                buf: [0u8; TX_FRAME],
            })
        });
        if let Ok(n) = frame::build_udp6_reply(
            &mut f.buf,
            &eth,
            SocketAddrV6::new(src_ip, 547, 0, 0),
            to.dest,
            bytes,
        ) {
            f.len = n;
            self.pending.push((l2.port, to.durable, f));
        } else {
            bump(local, "xdp_frame_too_large");
            let _ = self.pool.push(f);
        }
    }

    /// Hand the batch's frames to their queue loops; grants are withheld when the commit
    /// failed.
    pub(super) fn flush(
        &mut self,
        committed: bool,
        stats: &Stats,
        local: &mut Vec<(&'static str, u64)>,
    ) {
        for (p, durable, f) in self.pending.drain(..) {
            if durable && !committed {
                bump(local, "withheld_not_durable");
                let _ = self.pool.push(f);
                continue;
            }
            if let Err(f) = self.ports[p].tx.push(f) {
                stats.send_failed.fetch_add(1, Ordering::Relaxed);
                bump(local, "xdp_tx_ring_full");
                let _ = self.pool.push(f);
                continue;
            }
            self.touched[p] = true;
        }
        for (p, t) in self.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                self.ports[p].wake();
            }
        }
    }
}
