//! The server runtime: receive loops hand each request to the worker that owns its client,
//! workers decide, make the batch durable (group commit), then send the replies.
//!
//! ```text
//! socket (recvmmsg) or AF_XDP queue ──► receive loop ── ClientKey::shard ──► bounded ring ──► worker w
//!                                                                                              │ engine::v4 decides
//!                                                                                              │ WAL append … one commit per batch
//!                                                                                              ▼ egress: sendmmsg / AF_PACKET, or AF_XDP TX
//! ```
//!
//! - [`socket`]: the receive loop and the egress of the socket path.
//! - [`xdp`]: the per-queue `AF_XDP` loops and their egress.
//!
//! Job buffers are recycled through a further ring per worker, so the steady state allocates
//! nothing per packet.
//!
//! Overload: each worker has two rings, priority (renewals and releases of clients that hold
//! a lease, [`admission`]) and bulk (everything else); it drains the priority ring first
//! every batch and drops bulk requests that waited longer than `stale-request-ms`. A
//! per-client rate limit (`per-client-rate`) may refuse requests before either ring.

pub mod admission;
mod partner;
pub mod reload;
mod partner6;
mod partner_side;
mod shed;
pub mod socket;
pub mod xdp;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};
use partner_side::WorkerFailover;

use crate::config::{Config, Durability as CfgDurability, IoMode};
use crate::control::metrics::{
    BATCH_BOUNDS, COMMIT_MICROS_BOUNDS, Family, Histogram, MsgCounters, MsgLocal, Path,
};
use crate::control::{CtlRequest, Handle};
use crate::engine::v4::{Destination, Engine, FailoverView, Ingress, MAX_REPLY, Verdict};
use crate::engine::v6::{Engine6, Ingress6, Verdict6};
use crate::io::socket::{Interface, RxMeta, SLOT};
use crate::io::socket6::RxMeta6;
use crate::io::xdp::frame::EthHeader;
use crate::lease::Lease4;
use crate::lease::{ClientKey, Lease6, hash_bytes};
use crate::pool::FreeMap;
use crate::pool::v6::Space6;
use crate::store::{self, ShardStore};
use crate::wal::{Durability, WalOptions};
use crate::wire::v4::{MessageType, Request, Scratch};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A socket could not be opened.
    #[error(transparent)]
    Socket(#[from] crate::io::socket::SocketError),
    /// A DHCPv6 socket could not be opened.
    #[error(transparent)]
    Socket6(crate::io::socket6::SocketError6),
    /// The XDP path could not be set up.
    #[error(transparent)]
    Xdp(#[from] Box<xdp::XdpSetupError>),
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
    /// The pools could not be built.
    #[error("pools: {0}")]
    Pool(#[from] crate::pool::PoolError),
    /// The DHCPv6 pools could not be built.
    #[error("DHCPv6 pools: {0}")]
    Pool6(#[source] crate::pool::v6::Pool6Error),
    /// The control API could not be started.
    #[error(transparent)]
    Control(#[from] crate::control::api::ControlError),
    /// The failover partner thread could not start.
    #[error(transparent)]
    Failover(#[from] crate::failover::partner::PartnerError),
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
/// only; reasons, message types and histograms are folded in once per batch.
#[derive(Debug)]
pub struct Stats {
    /// Datagrams received on the socket path.
    pub received: AtomicU64,
    /// Of [`Self::received`], those read from a priority socket (renewals the kernel kept
    /// apart from the rest: [`crate::io::reuseport_filter`]).
    pub received_priority: AtomicU64,
    /// Listeners opened without a priority socket because the kernel refused
    /// `SO_REUSEPORT` or a classic BPF program (each then serves from one socket).
    pub priority_socket_fallbacks: AtomicU64,
    /// DHCP frames received on the `AF_XDP` path.
    pub received_xdp: AtomicU64,
    /// Replies sent on the socket path.
    pub sent: AtomicU64,
    /// Replies sent on the `AF_XDP` path.
    pub sent_xdp: AtomicU64,
    /// Replies the kernel refused, or for which no TX slot was free.
    pub send_failed: AtomicU64,
    /// Group commits made.
    pub commits: AtomicU64,
    /// Lease records made durable.
    pub records: AtomicU64,
    /// Requests dropped before a worker saw them because its ring was full.
    pub ring_full: AtomicU64,
    /// Of [`Self::ring_full`], those dropped from a full priority ring.
    pub ring_full_priority: AtomicU64,
    /// Bulk requests dropped by a worker because they waited longer than
    /// `stale-request-ms` in its ring.
    pub stale_dropped: AtomicU64,
    /// Requests refused by the per-client rate limit (`per-client-rate`).
    pub rate_limited: AtomicU64,
    /// Lease changes that found the ring to the failover partner thread full (sent later
    /// by a rescan of the pending records).
    pub partner_ring_full: AtomicU64,
    /// Outcomes by label: reply kinds (`reply_offer`…), silent handling and drop reasons.
    pub outcomes: Mutex<BTreeMap<&'static str, u64>>,
    /// The outcome labels seen for requests handled on purpose without a reply (a release,
    /// a decline, a request for another server); the other non-reply labels are drops.
    pub silent: Mutex<BTreeSet<&'static str>>,
    /// Requests handed to workers, by family, path and message type.
    pub requests: MsgCounters,
    /// Replies built by workers, by family, path and message type.
    pub replies: MsgCounters,
    /// DHCPv4 ACTIVE records (grants and extensions) made durable.
    pub granted_v4: AtomicU64,
    /// DHCPv6 ACTIVE records (grants and extensions) made durable.
    pub granted_v6: AtomicU64,
    /// Latency of each group commit, microseconds.
    pub commit_micros: Histogram,
    /// Requests per worker batch.
    pub batch_sizes: Histogram,
    /// Shards whose write-ahead log is in a disk-full outage right now (a gauge): their
    /// grants and renewals are withheld until space returns.
    pub wal_disk_full: AtomicU64,
    /// Failed WAL appends or commits (each fails a batch) because the disk was full.
    pub wal_failures_disk_full: AtomicU64,
    /// Failed WAL appends or commits for any other I/O error.
    pub wal_failures_io: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            received: AtomicU64::new(0),
            received_priority: AtomicU64::new(0),
            priority_socket_fallbacks: AtomicU64::new(0),
            received_xdp: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            sent_xdp: AtomicU64::new(0),
            send_failed: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            records: AtomicU64::new(0),
            ring_full: AtomicU64::new(0),
            ring_full_priority: AtomicU64::new(0),
            stale_dropped: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            partner_ring_full: AtomicU64::new(0),
            outcomes: Mutex::default(),
            silent: Mutex::default(),
            requests: MsgCounters::default(),
            replies: MsgCounters::default(),
            granted_v4: AtomicU64::new(0),
            granted_v6: AtomicU64::new(0),
            commit_micros: Histogram::new(COMMIT_MICROS_BOUNDS),
            batch_sizes: Histogram::new(BATCH_BOUNDS),
            wal_disk_full: AtomicU64::new(0),
            wal_failures_disk_full: AtomicU64::new(0),
            wal_failures_io: AtomicU64::new(0),
        }
    }
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

    /// A copy of [`Self::silent`].
    #[must_use]
    pub fn silent_labels(&self) -> BTreeSet<&'static str> {
        self.silent.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn fold_silent(&self, seen: &mut Vec<&'static str>) {
        if seen.is_empty() {
            return;
        }
        if let Ok(mut m) = self.silent.lock() {
            m.extend(seen.drain(..));
        }
    }
}

/// Count one outcome in a thread-local list (folded into [`Stats`] once per batch).
fn bump(local: &mut Vec<(&'static str, u64)>, k: &'static str) {
    if let Some(e) = local.iter_mut().find(|(n, _)| *n == k) {
        e.1 += 1;
    } else {
        local.push((k, 1));
    }
}

fn reply6_label(kind: crate::wire::v6::MessageType) -> &'static str {
    use crate::wire::v6::MessageType as M;
    match kind {
        M::Advertise => "reply6_advertise",
        M::Reply => "reply6_reply",
        _ => "reply6_other",
    }
}

/// The hash that places a DHCPv6 datagram's client on its worker
/// ([`crate::lease::shard_of`]), also the key of the per-client rate limit: of its DUID (0 for
/// an unusable one: worker 0), or, for a message without one (an INFORMATION-REQUEST may omit
/// it, RFC 8415 §18.2.6; it creates no lease), of its source.
fn key_hash_v6(bytes: &[u8], src: &std::net::SocketAddrV6) -> Result<u64, crate::wire::v6::Error> {
    match crate::wire::v6::client_duid_fast(bytes)? {
        Some(duid) => Ok(ClientKey::from_duid(duid).map_or(0, |k| k.hash64())),
        None => Ok(hash_bytes(&src.ip().octets())),
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

/// Link-layer facts of a request that came through `AF_XDP`, needed to build the reply frame.
#[derive(Debug, Clone, Copy)]
struct L2Meta {
    /// Index of the XDP port (interface queue) it came in on.
    port: usize,
    /// Its Ethernet header (addresses and VLAN tags).
    eth: EthHeader,
}

/// How a request arrived.
#[derive(Debug, Clone, Copy)]
enum JobMeta {
    /// DHCPv4.
    V4(RxMeta),
    /// DHCPv6.
    V6(RxMeta6),
}

/// One request on its way to a worker.
struct Job {
    len: usize,
    meta: JobMeta,
    l2: Option<L2Meta>,
    /// When the receive loop read it ([`admission::coarse_ms`]).
    at: u32,
    buf: [u8; SLOT],
}

/// Rings between the receive loops and one worker.
#[derive(Clone)]
struct WorkerLink {
    /// Bulk requests (DISCOVER, SOLICIT, SELECTING and INIT-REBOOT REQUESTs…).
    to: Sender<Box<Job>>,
    /// Requests of clients holding a lease ([`admission::priority_v4`], `priority_v6`).
    to_prio: Sender<Box<Job>>,
    recycle: Receiver<Box<Job>>,
}

impl WorkerLink {
    /// How full the bulk ring is, in percent of its capacity.
    fn bulk_fill_percent(&self) -> u32 {
        let cap = self.to.capacity().unwrap_or(0).max(1);
        u32::try_from(self.to.len().min(cap) * 100 / cap).unwrap_or(100)
    }

    /// Hand a request read at `at` ([`admission::coarse_ms`]) to the worker: pick its ring
    /// (priority or bulk), copy it into a recycled job and try to enqueue it. A full ring is
    /// counted and the request dropped, before any copy; the receive loop never blocks.
    fn offer(
        &self,
        bytes: &[u8],
        meta: JobMeta,
        l2: Option<L2Meta>,
        stats: &Stats,
        at: u32,
    ) -> bool {
        if bytes.len() > SLOT {
            return false;
        }
        let prio = match meta {
            JobMeta::V4(_) => admission::priority_v4(bytes),
            JobMeta::V6(_) => admission::priority_v6(bytes),
        };
        let ring = if prio { &self.to_prio } else { &self.to };
        if ring.is_full() {
            return ring_full(stats, prio);
        }
        let mut job = self.recycle.try_recv().unwrap_or_else(|_| {
            Box::new(Job {
                len: 0,
                meta,
                l2: None,
                at,
                buf: [0u8; SLOT],
            })
        });
        job.len = bytes.len();
        job.meta = meta;
        job.l2 = l2;
        job.at = at;
        job.buf[..bytes.len()].copy_from_slice(bytes);
        if ring.try_send(job).is_ok() {
            return true;
        }
        ring_full(stats, prio)
    }
}

/// Count a request dropped at a full ring; `false`, what [`WorkerLink::offer`] returns.
fn ring_full(stats: &Stats, prio: bool) -> bool {
    stats.ring_full.fetch_add(1, Ordering::Relaxed);
    if prio {
        stats.ring_full_priority.fetch_add(1, Ordering::Relaxed);
    }
    false
}

/// A running server; dropping it does not stop it, call [`Server::shutdown`].
pub struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Shared with the control thread, which reads the XDP counters (never on the packet path).
    xdp: Arc<Mutex<Option<xdp::XdpPath>>>,
    control: Option<crate::control::api::ControlServer>,
    /// The failover partner thread, when there is a relationship.
    partner: Option<crate::failover::partner::PartnerHandle>,
    /// The DHCPv6 failover partner thread, when there is a `[failover6]` relationship.
    partner6: Option<crate::failover::partner::PartnerHandle>,
    handle: Handle,
    /// Replaces the running configuration (SIGHUP, `POST /v1/reload`).
    reloader: Arc<reload::Reloader>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Addresses the socket path listens on (with the port the kernel chose for port 0).
    pub listening: Vec<SocketAddrV4>,
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

impl Server {
    /// Open the store, the sockets or `AF_XDP` queues, and start every thread.
    pub fn start(config: &Config) -> Result<Self, DispatchError> {
        let workers = config.workers();
        // Listen first: a refused or busy control address fails the start before any thread.
        let control_bound = config
            .control
            .as_ref()
            .map(crate::control::api::bind)
            .transpose()?;
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
        let (engine6, space6) = if config.subnet6.is_empty() {
            (
                None,
                Arc::new(Space6::new(&[], workers, &[]).map_err(DispatchError::Pool6)?),
            )
        } else {
            let duid = crate::engine::v6::load_or_create_server_duid(&config.server.data_dir)
                .map_err(|source| DispatchError::DataDir {
                    dir: config.server.data_dir.display().to_string(),
                    source,
                })?;
            let (e6, pools6, reserved6) = crate::engine::build_v6(config, duid);
            let space = Space6::new(&pools6, workers, &reserved6).map_err(DispatchError::Pool6)?;
            (Some(e6), Arc::new(space))
        };
        let mut engine6 = engine6;
        let (mut stores, report) = store::open(
            &config.server.data_dir,
            workers,
            opts,
            &free,
            &|a| reserved.contains(&a),
            &space6,
        )
        .map_err(|source| DispatchError::Store {
            dir: config.server.data_dir.display().to_string(),
            source,
        })?;
        log_recovery(&report);

        let mut ifaces = Vec::new();
        for name in &config.server.interfaces {
            let i = Interface::lookup(name)?;
            engine.bind_interface(name, i.ifindex);
            if let Some(e6) = engine6.as_mut() {
                e6.bind_interface(name, i.ifindex);
            }
            ifaces.push(i);
        }
        let ifaces = Arc::new(ifaces);
        let engine = Arc::new(engine);
        let engine6 = engine6.map(Arc::new);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let batch = config.server.batch_size;

        // The ingress side decides the egress each worker gets.
        let mut links = Vec::with_capacity(workers);
        let mut worker_rx = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (to, rx) = bounded::<Box<Job>>(config.server.ring_capacity);
            let (to_prio, rx_prio) = bounded::<Box<Job>>(config.server.ring_capacity);
            let (rtx, recycle) = bounded::<Box<Job>>(config.server.ring_capacity);
            links.push(WorkerLink {
                to,
                to_prio,
                recycle,
            });
            let inbox = admission::Inbox::new(
                rx_prio,
                rx,
                rtx.clone(),
                config.server.stale_request_ms,
                Arc::clone(&stats),
            );
            worker_rx.push((inbox, rtx));
        }
        let (ctl_tx, ctl_rx) = crate::control::rings(workers);
        // The failover relationship: its rings, the published view, the partner thread.
        let (fo_worker_ends, partner) = match &config.failover {
            None => (Vec::new(), None),
            Some(fo) => {
                let view = Arc::new(crate::failover::channel::SharedView::new(
                    fo.mclt,
                    crate::engine::v4::LoadBalance {
                        buckets: crate::failover::lb::Buckets::split(
                            fo.load_balance_split,
                            match fo.role {
                                crate::config::FailoverRole::Primary => {
                                    crate::failover::state::Role::Primary
                                }
                                crate::config::FailoverRole::Secondary => {
                                    crate::failover::state::Role::Secondary
                                }
                            },
                        ),
                        max_secs: fo.load_balance_max_seconds,
                    },
                ));
                hold_released(&mut stores, &free, fo.mclt, unix_now());
                let (w_ends, p_ends) = crate::failover::channel::rings(workers, &view);
                let newest_cltt = stores
                    .iter()
                    .flat_map(|st| st.shard.iter().map(|l| l.cltt))
                    .max()
                    .unwrap_or(0);
                let handle = crate::failover::partner::spawn(
                    fo,
                    &config.server.data_dir,
                    Arc::clone(&free),
                    p_ends,
                    view,
                    newest_cltt,
                )?;
                (w_ends, Some(handle))
            }
        };
        // The DHCPv6 relationship (RFC 8156): the same, with its own rings and view.
        let (v6_worker_ends, partner6) = match &config.failover6 {
            None => (Vec::new(), None),
            Some(fo) => {
                let view = Arc::new(crate::failover::channel6::SharedView6::new(
                    fo.mclt,
                    fo.role == crate::config::FailoverRole::Primary,
                    fo.address_share,
                ));
                for st in &mut stores {
                    st.shard6.set_hold_ended(true);
                }
                let (w_ends, p_ends) = crate::failover::channel6::rings6(workers, &view);
                let newest_cltt = stores
                    .iter()
                    .flat_map(|st| st.shard6.iter().map(|l| l.cltt))
                    .max()
                    .unwrap_or(0);
                let handle = crate::failover::partner6::spawn6(
                    fo,
                    &config.server.data_dir,
                    Arc::clone(&space6),
                    p_ends,
                    view,
                    newest_cltt,
                )?;
                (w_ends, Some(handle))
            }
        };
        let mut fo_ends = fo_worker_ends.into_iter();
        let mut v6_ends = v6_worker_ends.into_iter();
        let mut threads = Vec::new();
        let mut listening = Vec::new();
        let mut xdp_path = None;
        let mut egresses: Vec<Egress> = Vec::with_capacity(workers);
        match config.server.io {
            IoMode::Socket => {
                let (eg, ls, th) = socket::start(config, &ifaces, &links, &stop, &stats, batch)?;
                egresses.extend(eg.into_iter().map(|e| Egress::Socket(Box::new(e))));
                listening = ls;
                threads.extend(th);
            }
            IoMode::Xdp => {
                let (eg, path) = xdp::start(config, &ifaces, &links, &stop, &stats)?;
                egresses.extend(eg.into_iter().map(Egress::Xdp));
                xdp_path = Some(path);
            }
        }
        drop(links);
        for (w, (((st, (rx, recycle)), egress), ctl)) in stores
            .into_iter()
            .zip(worker_rx)
            .zip(egresses)
            .zip(ctl_rx)
            .enumerate()
        {
            let mut rx = rx;
            rx.watch_control(ctl.clone());
            let worker = Worker {
                engine: Arc::clone(&engine),
                engine6: engine6.clone(),
                free: Arc::clone(&free),
                store: st,
                rx,
                recycle,
                egress,
                ifaces: Arc::clone(&ifaces),
                stats: Arc::clone(&stats),
                batch,
                reply_port: config.server.reply_port,
                relay_port: config.server.relay_port,
                compacting: Arc::new(AtomicBool::new(false)),
                ctl,
                requests: MsgLocal::default(),
                replies: MsgLocal::default(),
                silent_seen: Vec::new(),
                failover: fo_ends
                    .next()
                    .map(|e| WorkerFailover::new(e.to, e.from, e.view)),
                failover6: v6_ends
                    .next()
                    .map(|e| WorkerFailover::new(e.to, e.from, e.view)),
            };
            let core = (!config.server.worker_cores.is_empty())
                .then(|| config.server.worker_cores[w % config.server.worker_cores.len()]);
            let h = std::thread::Builder::new()
                .name(format!("tl-worker-{w}"))
                .spawn(move || {
                    crate::privilege::thread_start();
                    pin(core, "worker", w);
                    worker.run();
                })
                .map_err(|source| DispatchError::Spawn {
                    what: "worker",
                    source,
                })?;
            threads.push(h);
        }
        let xdp = Arc::new(Mutex::new(xdp_path));
        let xdp_source = Arc::clone(&xdp);
        let reload_rings = ctl_tx.clone();
        let handle = Handle::new(
            ctl_tx,
            Arc::clone(&free),
            Arc::clone(&space6),
            Arc::clone(&stats),
            Arc::new(move || {
                xdp_source
                    .lock()
                    .ok()
                    .and_then(|x| x.as_ref().map(xdp::XdpPath::counters))
                    .unwrap_or_default()
            }),
        );
        let mut handle = handle;
        let reloader = Arc::new(reload::Reloader::new(
            config.clone(),
            reload_rings,
            Arc::clone(&ifaces),
            handle.shared_pools(),
            partner
                .as_ref()
                .map(crate::failover::partner::PartnerHandle::commands),
        ));
        handle.set_reloader(Arc::clone(&reloader));
        for p in partner.iter().chain(partner6.iter()) {
            handle.set_failover(crate::control::FailoverControl {
                status: p.status_source(),
                commands: p.commands(),
            });
        }
        let mut server = Self {
            stop,
            threads,
            xdp,
            control: None,
            partner,
            partner6,
            handle,
            reloader,
            stats,
            listening,
        };
        if let Some(b) = control_bound {
            // On failure the server is dropped here: its threads stop with the stop flag.
            server.control = Some(b.spawn(server.handle.clone())?);
        }
        Ok(server)
    }

    /// A handle to query and change the workers' leases in process (what the control API
    /// uses).
    #[must_use]
    pub fn control(&self) -> Handle {
        self.handle.clone()
    }

    /// Remember the file the configuration was loaded from: a reload (SIGHUP,
    /// `POST /v1/reload`) reads it again.
    pub fn set_config_path(&self, path: &std::path::Path) {
        self.reloader.set_path(path.to_path_buf());
    }

    /// Reload the configuration file (see [`Self::set_config_path`] and [`reload`]).
    pub fn reload(&self) -> Result<reload::ReloadReport, reload::ReloadError> {
        self.reloader.reload_file()
    }

    /// The address the control API listens on (`None` without a `[control]` table).
    #[must_use]
    pub fn control_addr(&self) -> Option<std::net::SocketAddr> {
        self.control
            .as_ref()
            .map(crate::control::api::ControlServer::local_addr)
    }

    /// Per-queue counters and shed levels of the XDP path (empty on the socket path).
    #[must_use]
    pub fn xdp_counters(&self) -> Vec<crate::control::XdpQueueStats> {
        self.xdp
            .lock()
            .ok()
            .and_then(|x| x.as_ref().map(xdp::XdpPath::counters))
            .unwrap_or_default()
    }

    /// Stop receiving, let the workers finish their batches (committing them), join, and
    /// detach the XDP programs.
    pub fn shutdown(mut self) {
        // The control API first: no operator request is left waiting on a stopped worker.
        if let Some(c) = self.control.take() {
            c.stop();
        }
        self.stop.store(true, Ordering::Release);
        // Ingress next: once the receive loops are gone the workers' rings close, the
        // workers commit their last batch and exit.
        if let Ok(mut x) = self.xdp.lock()
            && let Some(x) = x.as_mut()
        {
            x.stop_loops();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Last: the partner hears DISCONNECT (an orderly stop, not a failure) after every
        // worker's final commit.
        if let Some(p) = self.partner.take() {
            p.shutdown();
        }
        if let Some(p) = self.partner6.take() {
            p.shutdown();
        }
        let path = self.xdp.lock().ok().and_then(|mut x| x.take());
        if let Some(x) = path {
            x.shutdown();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave an XDP program attached, also when the server is dropped on an error.
        self.control.take();
        self.stop.store(true, Ordering::Release);
        let path = self.xdp.lock().ok().and_then(|mut x| x.take());
        if let Some(x) = path {
            x.shutdown();
        }
    }
}

/// With a failover partner a RELEASED binding keeps its address until the MCLT has passed
/// (draft-ietf-dhc-failover-12 §5.2.1; the engine does not give it back on release): after a
/// restart, claim those addresses again, and mark the older ones FREE in memory so the
/// expiry sweep never gives back a bit it does not hold.
fn hold_released(stores: &mut [ShardStore], free: &FreeMap, mclt: u32, now: u32) {
    for st in stores {
        let released: Vec<Lease4> = st
            .shard
            .iter()
            .filter(|l| l.state == crate::lease::BindingState::Released)
            .collect();
        for mut l in released {
            let within = l.expires.max(l.partner_expires).saturating_add(mclt) > now;
            // A failed claim means another binding holds the address now.
            if !(within && free.try_take(l.addr)) {
                l.state = crate::lease::BindingState::Free;
                st.shard.upsert(l);
            }
        }
    }
}

/// Pin the calling thread to `core` when one is configured; a refusal is logged, not fatal.
fn pin(core: Option<usize>, what: &str, index: usize) {
    if let Some(core) = core {
        match crate::tune::pin_current_thread(core) {
            Ok(()) => tracing::info!(thread = what, index, core, "pinned"),
            Err(e) => tracing::warn!(thread = what, index, core, error = %e, "could not pin"),
        }
    }
}

fn log_recovery(report: &store::OpenReport) {
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
}

/// Count a failed WAL append or commit (the WAL itself logs it, once per outage) and keep the
/// disk-full gauge in step: `full_before` says whether this shard was already counted in it.
fn wal_failed(stats: &Stats, e: &crate::wal::WalError, full_before: bool) {
    let full = e.is_disk_full();
    let counter = if full {
        &stats.wal_failures_disk_full
    } else {
        &stats.wal_failures_io
    };
    counter.fetch_add(1, Ordering::Relaxed);
    match (full_before, full) {
        (false, true) => {
            stats.wal_disk_full.fetch_add(1, Ordering::Relaxed);
        }
        (true, false) => {
            stats.wal_disk_full.fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// Where a worker's replies go.
enum Egress {
    Socket(Box<socket::SocketEgress>),
    Xdp(xdp::XdpEgress),
}

/// What the egress needs to address one reply.
struct ReplyTo<'a> {
    dest: Destination,
    meta: RxMeta,
    l2: Option<&'a L2Meta>,
    src: Ipv4Addr,
    durable: bool,
    reply_port: u16,
    relay_port: u16,
}

impl ReplyTo<'_> {
    /// UDP destination of the reply (RFC 2131 §4.1).
    fn udp_dst(&self) -> SocketAddrV4 {
        match self.dest {
            Destination::Relay(g) => SocketAddrV4::new(g, self.relay_port),
            Destination::Unicast(c) => SocketAddrV4::new(c, self.reply_port),
            Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, self.reply_port),
            Destination::HwUnicast { ip, .. } => SocketAddrV4::new(ip, self.reply_port),
        }
    }
}

/// What the egress needs to address one DHCPv6 reply.
struct ReplyTo6<'a> {
    /// The client (its link-local address, port 546) or the relay agent (port 547).
    dest: std::net::SocketAddrV6,
    /// Interface the request came in on.
    ifindex: u32,
    l2: Option<&'a L2Meta>,
    durable: bool,
}

impl Egress {
    fn push(&mut self, to: &ReplyTo<'_>, bytes: &[u8], local: &mut Vec<(&'static str, u64)>) {
        match self {
            Self::Socket(e) => e.push(to, bytes),
            Self::Xdp(e) => e.push(to, bytes, local),
        }
    }

    fn push6(&mut self, to: &ReplyTo6<'_>, bytes: &[u8], local: &mut Vec<(&'static str, u64)>) {
        match self {
            Self::Socket(e) => e.push6(to, bytes, local),
            Self::Xdp(e) => e.push6(to, bytes, local),
        }
    }

    fn flush(&mut self, committed: bool, stats: &Stats, local: &mut Vec<(&'static str, u64)>) {
        match self {
            Self::Socket(e) => e.flush(committed, stats, local),
            Self::Xdp(e) => e.flush(committed, stats, local),
        }
    }
}

struct Worker {
    engine: Arc<Engine>,
    engine6: Option<Arc<Engine6>>,
    free: Arc<FreeMap>,
    store: ShardStore,
    rx: admission::Inbox,
    recycle: Sender<Box<Job>>,
    egress: Egress,
    ifaces: Arc<Vec<Interface>>,
    stats: Arc<Stats>,
    batch: usize,
    reply_port: u16,
    relay_port: u16,
    compacting: Arc<AtomicBool>,
    /// Operator requests, served between batches and when idle.
    ctl: Receiver<CtlRequest>,
    /// This batch's requests by type (folded into `stats.requests` per batch).
    requests: MsgLocal,
    /// This batch's replies by type (folded into `stats.replies` per batch).
    replies: MsgLocal,
    /// Silent-outcome labels seen in this batch (folded into `stats.silent`).
    silent_seen: Vec<&'static str>,
    /// The failover relationship's rings, when there is one.
    failover: Option<WorkerFailover<Lease4>>,
    /// The DHCPv6 failover relationship's rings, when there is one.
    failover6: Option<WorkerFailover<Lease6>>,
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
        let mut changes6: Vec<Lease6> = Vec::with_capacity(self.batch * 4);
        let mut local: Vec<(&'static str, u64)> = Vec::new();
        let mut scratch = Box::new(Scratch::new());
        let mut reply = [0u8; MAX_REPLY];
        let mut last_reclaim = Instant::now();
        // With a failover partner the partner thread's requests (updates to apply, scans,
        // acknowledgements) must not wait for client traffic: wake up often when idle.
        let idle_wait = if self.failover.is_some() {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(100)
        };
        loop {
            match self.rx.recv_timeout(idle_wait) {
                Ok(j) => jobs.push(j),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if last_reclaim.elapsed() >= Duration::from_millis(100) {
                        self.maintain(&mut last_reclaim);
                    }
                    self.serve_control();
                    self.serve_partner::<Lease4>();
                    self.serve_partner::<Lease6>();
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
            let fo_view = self
                .failover
                .as_ref()
                .map_or(FailoverView::STANDALONE, |f| f.view.load());
            let fo_view6 = self
                .failover6
                .as_ref()
                .map_or(crate::engine::v6::FailoverView6::STANDALONE, |f| {
                    f.view.load()
                });
            changes.clear();
            changes6.clear();
            self.stats.batch_sizes.observe(jobs.len() as u64);
            for job in &jobs {
                let path = if job.l2.is_some() {
                    Path::Xdp
                } else {
                    Path::Socket
                };
                let m = match job.meta {
                    JobMeta::V4(m) => m,
                    JobMeta::V6(m) => {
                        self.handle6(
                            job,
                            m,
                            now,
                            &fo_view6,
                            &mut reply,
                            &mut changes6,
                            &mut local,
                        );
                        continue;
                    }
                };
                let req = match Request::parse(&job.buf[..job.len], &mut scratch) {
                    Ok(r) => r,
                    Err(e) => {
                        self.requests.bump(Family::V4, path, 0);
                        bump(&mut local, e.reason());
                        continue;
                    }
                };
                self.requests
                    .bump(Family::V4, path, req.message_type.map_or(0, |t| t as u8));
                let broadcast = m.dst.is_broadcast() || m.dst.octets()[3] == 255;
                let local_addr = self
                    .iface_addr(m.ifindex)
                    .or((!broadcast && !m.dst.is_unspecified()).then_some(m.dst));
                let ingress = Ingress {
                    ifindex: m.ifindex,
                    local_addr,
                    broadcast,
                };
                let v = self.engine.handle_fo(
                    &req,
                    &ingress,
                    now,
                    &mut self.store.shard,
                    &self.free,
                    &fo_view,
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
                        self.replies.bump(Family::V4, path, kind as u8);
                        let to = ReplyTo {
                            dest,
                            meta: m,
                            l2: job.l2.as_ref(),
                            src: local_addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
                            durable,
                            reply_port: self.reply_port,
                            relay_port: self.relay_port,
                        };
                        self.egress.push(&to, &reply[..len], &mut local);
                    }
                    Verdict::Silent(why) => {
                        bump(&mut local, why);
                        self.note_silent(why);
                    }
                    Verdict::Drop(why) => bump(&mut local, why),
                }
            }
            for j in jobs.drain(..) {
                let _ = self.recycle.try_send(j);
            }
            let committed = self.commit(&changes, &changes6);
            self.egress.flush(committed, &self.stats, &mut local);
            if committed {
                self.queue_updates(&changes);
                self.queue_updates(&changes6);
            }
            self.stats.fold(&mut local);
            self.stats.requests.fold(&mut self.requests);
            self.stats.replies.fold(&mut self.replies);
            self.stats.fold_silent(&mut self.silent_seen);
            if last_reclaim.elapsed() >= Duration::from_millis(100) {
                self.maintain(&mut last_reclaim);
            }
            self.serve_control();
            self.serve_partner::<Lease4>();
            self.serve_partner::<Lease6>();
        }
        if let Err(e) = self.store.wal.commit() {
            tracing::error!(error = %e, "final commit failed");
        }
    }

    /// Group commit: every record of the batch is durable before any grant leaves
    /// (draft-ietf-dhc-failover-07 §3.1.3). Returns whether the grants may be sent.
    ///
    /// A failed append or commit withholds every reply of the batch that needs a durable
    /// record, renewals included: RFC 2131 §4.3.2 has the server record a lease before its
    /// DHCPACK, and staying silent lets the client retransmit (RENEWING, then REBINDING)
    /// while it keeps using its lease. The WAL discards the failed batch and logs once per
    /// outage; each later batch tries again, so service resumes as soon as space returns.
    fn commit(&mut self, changes: &[Lease4], changes6: &[Lease6]) -> bool {
        if changes.is_empty() && changes6.is_empty() {
            return true;
        }
        let full_before = self.store.wal.outage().is_some_and(|o| o.disk_full);
        let appended = changes
            .iter()
            .try_for_each(|c| self.store.append(c))
            .and_then(|()| changes6.iter().try_for_each(|c| self.store.append6(c)));
        if let Err(e) = appended {
            wal_failed(&self.stats, &e, full_before);
            return false;
        }
        let started = Instant::now();
        match self.store.wal.commit() {
            Ok(_) => {
                if full_before {
                    self.stats.wal_disk_full.fetch_sub(1, Ordering::Relaxed);
                }
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.stats.commit_micros.observe(micros);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .records
                    .fetch_add(changes.len() as u64, Ordering::Relaxed);
                let active =
                    |s: crate::lease::BindingState| s == crate::lease::BindingState::Active;
                let g4 = changes.iter().filter(|c| active(c.state)).count() as u64;
                let g6 = changes6.iter().filter(|c| active(c.state)).count() as u64;
                if g4 > 0 {
                    self.stats.granted_v4.fetch_add(g4, Ordering::Relaxed);
                }
                if g6 > 0 {
                    self.stats.granted_v6.fetch_add(g6, Ordering::Relaxed);
                }
                true
            }
            Err(e) => {
                wal_failed(&self.stats, &e, full_before);
                false
            }
        }
    }

    /// Decide one DHCPv6 datagram and queue its reply.
    #[expect(
        clippy::too_many_arguments,
        reason = "the job, its context, the failover view and the outputs"
    )]
    fn handle6(
        &mut self,
        job: &Job,
        m: RxMeta6,
        now: u32,
        fo: &crate::engine::v6::FailoverView6,
        reply: &mut [u8; MAX_REPLY],
        changes6: &mut Vec<Lease6>,
        local: &mut Vec<(&'static str, u64)>,
    ) {
        let path = if job.l2.is_some() {
            Path::Xdp
        } else {
            Path::Socket
        };
        self.requests.bump(
            Family::V6,
            path,
            job.buf[..job.len].first().copied().unwrap_or(0),
        );
        let Some(e6) = self.engine6.as_ref() else {
            bump(local, "v6_not_configured");
            return;
        };
        let ingress = Ingress6 {
            ifindex: m.ifindex,
            src: m.src,
            dst: m.dst,
        };
        match e6.handle_fo(
            &job.buf[..job.len],
            &ingress,
            now,
            &mut self.store.shard6,
            fo,
            reply,
            changes6,
        ) {
            Verdict6::Reply {
                kind,
                len,
                dest,
                durable,
            } => {
                bump(local, reply6_label(kind));
                self.replies.bump(Family::V6, path, kind as u8);
                let to = ReplyTo6 {
                    dest,
                    ifindex: m.ifindex,
                    l2: job.l2.as_ref(),
                    durable,
                };
                self.egress.push6(&to, &reply[..len], local);
            }
            Verdict6::Silent(why) => {
                bump(local, why);
                self.note_silent(why);
            }
            Verdict6::Drop(why) => bump(local, why),
        }
    }

    /// Remember that `why` labels a request handled on purpose without a reply.
    fn note_silent(&mut self, why: &'static str) {
        if !self.silent_seen.contains(&why) {
            self.silent_seen.push(why);
        }
    }

    /// Serve a few operator requests from the control ring (between batches, or when idle):
    /// at most [`crate::control::PER_POLL`], so the packet loop is never held up for long.
    fn serve_control(&mut self) {
        for _ in 0..crate::control::PER_POLL {
            let Ok(req) = self.ctl.try_recv() else {
                return;
            };
            if let crate::control::CtlOp::Reload(t) = &req.op {
                let _ = req.reply.try_send(self.reload(t));
                continue;
            }
            let reply = crate::control::serve(&mut self.store, &self.free, &req.op, unix_now());
            let _ = req.reply.try_send(reply);
        }
    }

    /// Take part in a configuration reload ([`reload`]): stop with the other workers, claim
    /// this worker's addresses in the new pools, swap the engines and pools.
    fn reload(&mut self, t: &reload::ReloadTicket) -> crate::control::CtlReply {
        let mclt = self.failover.as_ref().map(|f| f.view.mclt());
        let mut side = reload::WorkerSide {
            id: self.store.shard.id(),
            store: &mut self.store,
            free: &mut self.free,
            engine: &mut self.engine,
            engine6: &mut self.engine6,
            mclt,
        };
        reload::serve_worker(t, &mut side, unix_now())
    }

    /// Expiry sweep and background compaction, between batches.
    fn maintain(&mut self, last: &mut Instant) {
        *last = Instant::now();
        match self.failover.as_ref().map(|f| f.view.mclt()) {
            None => {
                self.store.shard.reclaim(unix_now(), 4096, &self.free);
            }
            Some(mclt) => {
                // draft-12 §5.2.1: an ended binding's address waits the MCLT; the partner
                // hears of the expiry.
                let mut ended = Vec::new();
                self.store
                    .shard
                    .reclaim_delayed(unix_now(), 4096, &self.free, mclt, &mut |l| {
                        ended.push(*l);
                    });
                self.queue_updates(&ended);
            }
        }
        match self.failover6.as_ref().map(|f| f.view.mclt()) {
            None => {
                self.store.shard6.reclaim(unix_now(), 4096);
            }
            Some(mclt) => {
                // RFC 8156 §4.4: an ended binding waits the MCLT; the partner hears of it.
                let mut ended = Vec::new();
                self.store
                    .shard6
                    .reclaim_delayed(unix_now(), 4096, mclt, &mut |l| ended.push(*l));
                self.queue_updates(&ended);
            }
        }
        if self.store.wal.should_compact() && !self.compacting.swap(true, Ordering::AcqRel) {
            let c = self.store.wal.compactor();
            let flag = Arc::clone(&self.compacting);
            let spawned = std::thread::Builder::new()
                .name("tl-compact".into())
                .spawn(move || {
                    crate::privilege::thread_start();
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
