//! The server runtime: receive loops hand each request to the worker that owns its client,
//! workers decide, make the batch durable (group commit), then send the replies.
//!
//! ```text
//! socket ──recvmmsg──► rx thread ── ClientKey::shard ──► bounded ring ──► worker w
//!                                                                          │ engine::v4 decides
//!                                                                          │ WAL append … one commit per batch
//!                                                                          ▼ sendmmsg / AF_PACKET
//! ```
//!
//! Job buffers are recycled through a second ring per worker, so the steady state allocates
//! nothing per packet.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};
use socket2::Socket;

use crate::config::{Config, Durability as CfgDurability};
use crate::engine::v4::{Destination, Engine, Ingress, MAX_REPLY, Verdict};
use crate::io::socket::{self, Interface, RawSender, RxMeta, SLOT};
use crate::lease::Lease4;
use crate::pool::FreeMap;
use crate::store::{self, ShardStore};
use crate::wal::{Durability, WalOptions};
use crate::wire::v4::{MessageType, Request, Scratch, client_key_fast};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A socket could not be opened.
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    /// The store could not be opened or recovered.
    #[error("lease store in {dir}: {source}")]
    Store {
        /// Data directory.
        dir: String,
        /// Why.
        #[source]
        source: store::StoreError,
    },
    /// The data directory could not be created.
    #[error("data directory {dir}: {source}")]
    DataDir {
        /// Data directory.
        dir: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configured I/O path is not available in this build.
    #[error("io = \"{0}\" is not available in this build")]
    IoUnavailable(&'static str),
    /// The pools could not be built.
    #[error("pools: {0}")]
    Pool(#[from] crate::pool::PoolError),
    /// A thread could not be spawned.
    #[error("spawning {what}: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Counters of one running server, shared by all threads. Per-packet paths update atomics
/// only; reasons are folded into the map once per batch.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Replies sent.
    pub sent: AtomicU64,
    /// Replies the kernel refused.
    pub send_failed: AtomicU64,
    /// Group commits made.
    pub commits: AtomicU64,
    /// Lease records made durable.
    pub records: AtomicU64,
    /// Requests dropped before a worker saw them because its ring was full.
    pub ring_full: AtomicU64,
    /// Outcomes by label: reply kinds (`reply_offer`…), silent handling and drop reasons.
    pub outcomes: Mutex<BTreeMap<&'static str, u64>>,
}

impl Stats {
    fn fold(&self, local: &mut Vec<(&'static str, u64)>) {
        if local.is_empty() {
            return;
        }
        if let Ok(mut m) = self.outcomes.lock() {
            for (k, v) in local.drain(..) {
                *m.entry(k).or_default() += v;
            }
        }
    }

    /// A copy of the outcome counters.
    #[must_use]
    pub fn outcomes(&self) -> BTreeMap<&'static str, u64> {
        self.outcomes.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

fn bump(local: &mut Vec<(&'static str, u64)>, k: &'static str) {
    if let Some(e) = local.iter_mut().find(|(n, _)| *n == k) {
        e.1 += 1;
    } else {
        local.push((k, 1));
    }
}

fn reply_label(kind: MessageType) -> &'static str {
    match kind {
        MessageType::Offer => "reply_offer",
        MessageType::Ack => "reply_ack",
        MessageType::Nak => "reply_nak",
        _ => "reply_other",
    }
}

/// One request on its way to a worker.
struct Job {
    len: usize,
    meta: RxMeta,
    buf: [u8; SLOT],
}

/// A running server; dropping it does not stop it, call [`Server::shutdown`].
pub struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Addresses the server listens on (with the port the kernel chose for port 0).
    pub listening: Vec<SocketAddrV4>,
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

impl Server {
    /// Open the store, the sockets and start every thread.
    pub fn start(config: &Config) -> Result<Self, DispatchError> {
        if config.server.io == crate::config::IoMode::Xdp {
            return Err(DispatchError::IoUnavailable("xdp"));
        }
        let workers = config.workers();
        let (mut engine, ranges) = crate::engine::build_v4(config);
        let reserved: Vec<Ipv4Addr> = engine.reserved_addresses().collect();
        let free = Arc::new(FreeMap::new(&ranges, workers, &|a| reserved.contains(&a))?);

        let opts = WalOptions {
            segment_size: u64::from(config.server.wal_segment_mib) << 20,
            durability: match config.server.durability {
                CfgDurability::Fsync => Durability::Fsync,
                CfgDurability::None => Durability::None,
            },
        };
        std::fs::create_dir_all(&config.server.data_dir).map_err(|source| {
            DispatchError::DataDir {
                dir: config.server.data_dir.display().to_string(),
                source,
            }
        })?;
        let (stores, report) = store::open(&config.server.data_dir, workers, opts, &free, &|a| {
            reserved.contains(&a)
        })
        .map_err(|source| DispatchError::Store {
            dir: config.server.data_dir.display().to_string(),
            source,
        })?;
        for (w, r) in report.shards.iter().enumerate() {
            tracing::info!(
                shard = w,
                snapshot_records = r.snapshot_records,
                records = r.records,
                segments = r.segments,
                elapsed_ms = r.elapsed.as_millis() as u64,
                "lease store recovered"
            );
            if let Some(stop) = &r.stopped_at {
                tracing::warn!(
                    shard = w,
                    file = %stop.file.display(),
                    offset = stop.offset,
                    reason = stop.reason,
                    valid_records_after = stop.valid_records_after,
                    "write-ahead log replay stopped early"
                );
            }
        }
        if report.conflicts_resolved > 0 {
            tracing::warn!(
                count = report.conflicts_resolved,
                "addresses bound in two shards at recovery; kept the newer binding"
            );
        }

        let mut ifaces = Vec::new();
        for name in &config.server.interfaces {
            let i = Interface::lookup(name)?;
            engine.bind_interface(name, i.ifindex);
            ifaces.push(i);
        }
        let ifaces = Arc::new(ifaces);
        let engine = Arc::new(engine);

        let mut sockets: Vec<Socket> = Vec::new();
        let mut listening = Vec::new();
        for &addr in &config.server.listen {
            let s = socket::listen(addr, None)?;
            let local = s
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket_ipv4())
                .unwrap_or(addr);
            listening.push(local);
            sockets.push(s);
        }
        let raw = if ifaces.is_empty() {
            None
        } else {
            match RawSender::open() {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "no raw sender: replies to clients without an address will be broadcast");
                    false
                }
            }
            .then_some(())
        };

        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let batch = config.server.batch_size;
        let mut to_workers = Vec::with_capacity(workers);
        let mut recycles = Vec::with_capacity(workers);
        let mut threads = Vec::new();
        let send_sock = sockets
            .first()
            .map(Socket::try_clone)
            .transpose()
            .map_err(|e| {
                DispatchError::Socket(socket::SocketError::Listen {
                    addr: listening[0],
                    source: e,
                })
            })?;
        for (w, st) in stores.into_iter().enumerate() {
            let (tx, rx) = bounded::<Box<Job>>(config.server.ring_capacity);
            let (rtx, rrx) = bounded::<Box<Job>>(config.server.ring_capacity);
            to_workers.push(tx);
            recycles.push(rrx);
            let Some(sock) = send_sock.as_ref() else {
                break;
            };
            let worker = Worker {
                engine: Arc::clone(&engine),
                free: Arc::clone(&free),
                store: st,
                rx,
                recycle: rtx,
                udp: socket::Sender::new(
                    sock.try_clone().map_err(|e| {
                        DispatchError::Socket(socket::SocketError::Listen {
                            addr: listening[0],
                            source: e,
                        })
                    })?,
                    batch,
                ),
                raw: if raw.is_some() {
                    RawSender::open().ok()
                } else {
                    None
                },
                raw_out: Vec::with_capacity(batch),
                ifaces: Arc::clone(&ifaces),
                stats: Arc::clone(&stats),
                batch,
                reply_port: config.server.reply_port,
                relay_port: config.server.relay_port,
                compacting: Arc::new(AtomicBool::new(false)),
                last_send_log: Instant::now()
                    .checked_sub(Duration::from_secs(2))
                    .unwrap_or_else(Instant::now),
            };
            let h = std::thread::Builder::new()
                .name(format!("tl-worker-{w}"))
                .spawn(move || worker.run())
                .map_err(|source| DispatchError::Spawn {
                    what: "worker",
                    source,
                })?;
            threads.push(h);
        }
        for (i, sock) in sockets.into_iter().enumerate() {
            let to = to_workers.clone();
            let rec = recycles.clone();
            let stop = Arc::clone(&stop);
            let stats = Arc::clone(&stats);
            let h = std::thread::Builder::new()
                .name(format!("tl-rx-{i}"))
                .spawn(move || rx_loop(&sock, &to, &rec, &stop, &stats, batch))
                .map_err(|source| DispatchError::Spawn {
                    what: "receiver",
                    source,
                })?;
            threads.push(h);
        }
        drop(to_workers);
        Ok(Self {
            stop,
            threads,
            stats,
            listening,
        })
    }

    /// Stop receiving, let the workers finish their batches (committing them), join.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The receive loop of one socket.
fn rx_loop(
    sock: &Socket,
    to: &[Sender<Box<Job>>],
    recycle: &[Receiver<Box<Job>>],
    stop: &AtomicBool,
    stats: &Stats,
    batch: usize,
) {
    let mut rx = socket::Receiver::new(sock, batch);
    let mut local: Vec<(&'static str, u64)> = Vec::new();
    let workers = to.len();
    while !stop.load(Ordering::Acquire) {
        let n = match rx.recv(100) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        stats.received.fetch_add(n as u64, Ordering::Relaxed);
        for i in 0..n {
            let (bytes, meta) = rx.packet(i);
            let key = match client_key_fast(bytes) {
                Ok(k) => k,
                Err(e) => {
                    bump(&mut local, e.reason());
                    continue;
                }
            };
            let w = key.shard(workers);
            let mut job = recycle[w].try_recv().unwrap_or_else(|_| {
                Box::new(Job {
                    len: 0,
                    meta,
                    buf: [0u8; SLOT],
                })
            });
            job.len = bytes.len();
            job.meta = meta;
            job.buf[..bytes.len()].copy_from_slice(bytes);
            match to[w].try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    stats.ring_full.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        stats.fold(&mut local);
    }
}

/// A reply addressed straight to a hardware address.
struct RawOut {
    ifindex: u32,
    mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    len: usize,
    durable: bool,
    buf: [u8; MAX_REPLY],
}

struct Worker {
    engine: Arc<Engine>,
    free: Arc<FreeMap>,
    store: ShardStore,
    rx: Receiver<Box<Job>>,
    recycle: Sender<Box<Job>>,
    udp: socket::Sender,
    raw: Option<RawSender>,
    raw_out: Vec<RawOut>,
    ifaces: Arc<Vec<Interface>>,
    stats: Arc<Stats>,
    batch: usize,
    reply_port: u16,
    relay_port: u16,
    compacting: Arc<AtomicBool>,
    last_send_log: Instant,
}

impl Worker {
    fn iface_addr(&self, ifindex: u32) -> Option<Ipv4Addr> {
        self.ifaces
            .iter()
            .find(|i| i.ifindex == ifindex)
            .and_then(|i| i.addr)
    }

    fn run(mut self) {
        let mut jobs: Vec<Box<Job>> = Vec::with_capacity(self.batch);
        let mut changes: Vec<Lease4> = Vec::with_capacity(self.batch * 2);
        let mut local: Vec<(&'static str, u64)> = Vec::new();
        let mut durable_udp: Vec<bool> = Vec::with_capacity(self.batch);
        let mut scratch = Box::new(Scratch::new());
        let mut reply = [0u8; MAX_REPLY];
        let mut last_reclaim = Instant::now();
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(j) => jobs.push(j),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    self.maintain(&mut last_reclaim);
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            while jobs.len() < self.batch {
                match self.rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let now = unix_now();
            changes.clear();
            durable_udp.clear();
            for job in &jobs {
                let req = match Request::parse(&job.buf[..job.len], &mut scratch) {
                    Ok(r) => r,
                    Err(e) => {
                        bump(&mut local, e.reason());
                        continue;
                    }
                };
                let m = job.meta;
                let broadcast = m.dst.is_broadcast() || m.dst.octets()[3] == 255;
                let local_addr = self
                    .iface_addr(m.ifindex)
                    .or((!broadcast && !m.dst.is_unspecified()).then_some(m.dst));
                let ingress = Ingress {
                    ifindex: m.ifindex,
                    local_addr,
                    broadcast,
                };
                let v = self.engine.handle(
                    &req,
                    &ingress,
                    now,
                    &mut self.store.shard,
                    &self.free,
                    &mut reply,
                    &mut changes,
                );
                match v {
                    Verdict::Reply {
                        kind,
                        len,
                        dest,
                        durable,
                    } => {
                        bump(&mut local, reply_label(kind));
                        let src = local_addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
                        self.queue(dest, &reply[..len], m, src, durable, &mut durable_udp);
                    }
                    Verdict::Silent(why) | Verdict::Drop(why) => bump(&mut local, why),
                }
            }
            for j in jobs.drain(..) {
                let _ = self.recycle.try_send(j);
            }
            // Group commit: every record of the batch is durable before any grant leaves
            // (draft-ietf-dhc-failover-07 §3.1.3).
            let mut committed = true;
            if !changes.is_empty() {
                for c in &changes {
                    if let Err(e) = self.store.append(c) {
                        committed = false;
                        tracing::error!(error = %e, "write-ahead log append failed; grants of this batch are not sent");
                        break;
                    }
                }
                if committed {
                    match self.store.wal.commit() {
                        Ok(_) => {
                            self.stats.commits.fetch_add(1, Ordering::Relaxed);
                            self.stats
                                .records
                                .fetch_add(changes.len() as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            committed = false;
                            tracing::error!(error = %e, "write-ahead log commit failed; grants of this batch are not sent");
                        }
                    }
                }
            }
            self.flush(committed, &durable_udp, &mut local);
            self.stats.fold(&mut local);
            if last_reclaim.elapsed() >= Duration::from_millis(100) {
                self.maintain(&mut last_reclaim);
            }
        }
        if let Err(e) = self.store.wal.commit() {
            tracing::error!(error = %e, "final commit failed");
        }
    }

    /// Put one reply on the right queue (RFC 2131 §4.1 destinations).
    fn queue(
        &mut self,
        dest: Destination,
        bytes: &[u8],
        m: RxMeta,
        src: Ipv4Addr,
        durable: bool,
        durables: &mut Vec<bool>,
    ) {
        let (to, ifindex) = match dest {
            Destination::Relay(g) => (SocketAddrV4::new(g, self.relay_port), 0),
            Destination::Unicast(c) => (SocketAddrV4::new(c, self.reply_port), 0),
            Destination::Broadcast => (
                SocketAddrV4::new(Ipv4Addr::BROADCAST, self.reply_port),
                m.ifindex,
            ),
            Destination::HwUnicast { ip, mac } => {
                if self.raw.is_some() && m.ifindex != 0 && !src.is_unspecified() {
                    let mut r = RawOut {
                        ifindex: m.ifindex,
                        mac,
                        src,
                        dst: ip,
                        len: bytes.len(),
                        durable,
                        buf: [0u8; MAX_REPLY],
                    };
                    r.buf[..bytes.len()].copy_from_slice(bytes);
                    self.raw_out.push(r);
                    return;
                }
                (
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, self.reply_port),
                    m.ifindex,
                )
            }
        };
        let Some(buf) = self.udp.next_buf() else {
            return;
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        self.udp.push(bytes.len(), to, ifindex, src);
        durables.push(durable);
    }

    /// Send the batch's replies; when the commit failed, grants are withheld.
    fn flush(
        &mut self,
        committed: bool,
        durable_udp: &[bool],
        local: &mut Vec<(&'static str, u64)>,
    ) {
        if !committed && durable_udp.iter().any(|&d| d) {
            // Rebuild the UDP queue without the grants: simplest is to drop the whole queue
            // (offers and NAKs are retransmitted by clients anyway).
            let withheld = self.udp.len();
            self.udp.clear();
            for _ in 0..withheld {
                bump(local, "withheld_not_durable");
            }
        }
        if !self.udp.is_empty() {
            let (sent, failed) = self.udp.flush();
            self.stats.sent.fetch_add(sent as u64, Ordering::Relaxed);
            self.stats
                .send_failed
                .fetch_add(failed as u64, Ordering::Relaxed);
            if let Some((e, dst)) = self.udp.take_error()
                && self.last_send_log.elapsed() >= Duration::from_secs(1)
            {
                self.last_send_log = Instant::now();
                tracing::warn!(error = %e, %dst, failed, "sending replies failed");
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
                    SocketAddrV4::new(r.dst, self.reply_port),
                    &r.buf[..r.len],
                );
                match res {
                    Ok(()) => self.stats.sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => self.stats.send_failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
        self.raw_out.clear();
    }

    /// Expiry sweep and background compaction, between batches.
    fn maintain(&mut self, last: &mut Instant) {
        *last = Instant::now();
        self.store.shard.reclaim(unix_now(), 4096, &self.free);
        if self.store.wal.should_compact() && !self.compacting.swap(true, Ordering::AcqRel) {
            let c = self.store.wal.compactor();
            let flag = Arc::clone(&self.compacting);
            let spawned = std::thread::Builder::new()
                .name("tl-compact".into())
                .spawn(move || {
                    match c.run() {
                        Ok(r) => tracing::info!(report = ?r, "compaction done"),
                        Err(e) => tracing::error!(error = %e, "compaction failed"),
                    }
                    flag.store(false, Ordering::Release);
                });
            if spawned.is_err() {
                self.compacting.store(false, Ordering::Release);
            }
        }
    }
}
