//! The partner thread: one per failover relationship. It owns the connection to the partner
//! ([`super::link`]), the failover state machine ([`super::state::Machine`]) and the update
//! queues, and talks to the workers only through bounded rings ([`super::channel`]), so no
//! reply ever waits for it (draft-ietf-dhc-failover-12 §3.1.3, lazy updates §5.1).
//!
//! What it does, by draft-12 section:
//! - connection: CONNECT / CONNECTACK, STATE on connect and on every change (§7.8–7.10);
//!   CONTACT when idle, the connection declared down after max-response-delay without any
//!   message (§8.3); DISCONNECT on orderly shutdown (§7.12);
//! - binding updates: every committed change is sent as a BNDUPD, pipelined up to the
//!   partner's max-unacked-BNDUPD; each BNDACK feeds "partner knows expiry X" back to the
//!   owning worker (§7.1, §7.2, §5.2.1);
//! - the partner's BNDUPDs are applied by the worker owning the client (after it made them
//!   durable the BNDACK leaves), with the address taken from another worker when needed;
//! - UPDREQ / UPDREQALL / UPDDONE stream the store from the workers without pausing them
//!   (§7.3–7.5);
//! - pool balancing: the primary moves free addresses to the secondary's BACKUP share with
//!   BNDUPDs (persisting the split first), on POOLREQ and by itself (§5.4, §7.6, §7.7).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::channel::{ApplyOutcome, FromPartner, PartnerEnd, SharedView, ToPartner};
use super::link::{Link, LinkConfig, LinkEvent};
use super::state::{Event, Machine, Outcome, Role, State, UpdateRequest};
use crate::config::Failover;
use crate::lease::{BindingState, ClientKey, Lease4};
use crate::pool::{FreeMap, Share};
use crate::wire::failover::{
    BindingAck, BindingUpdate, Connect, ConnectAck, Disconnect, Message, MessageType,
    PROTOCOL_VERSION, Packet, PoolResp, StateMsg, adjust_time, reject, transaction_addresses,
    write_header_only,
};

/// Errors starting the partner thread.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    /// The persisted failover state could not be read.
    #[error("failover state: {0}")]
    State(#[source] super::persist::PersistError),
    /// The FREE/BACKUP split could not be read.
    #[error("failover split: {0}")]
    Split(#[source] super::split::SplitError),
    /// The tokio runtime could not be built.
    #[error("failover runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The partner connection could not be set up (address busy, TLS files...).
    #[error("failover link: {0}")]
    Link(#[source] super::link::LinkError),
    /// The thread could not be spawned.
    #[error("spawn partner thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// A snapshot of the relationship for the control API and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    /// Relationship name.
    pub name: String,
    /// `v4` (draft-ietf-dhc-failover-12) or `v6` (RFC 8156).
    pub family: &'static str,
    /// `primary` or `secondary`.
    pub role: &'static str,
    /// This server's state.
    pub state: &'static str,
    /// The partner's last known state.
    pub partner_state: Option<&'static str>,
    /// When this server entered its state (unix seconds).
    pub state_since: u32,
    /// Whether the partner connection is up (handshake done).
    pub connected: bool,
    /// Binding updates sent and not yet acknowledged.
    pub unacked_updates: usize,
    /// Binding updates waiting to be sent.
    pub pending_updates: usize,
    /// Age of the oldest unacknowledged update, milliseconds.
    pub oldest_unacked_ms: u64,
    /// Last message from the partner (unix seconds).
    pub last_contact: Option<u32>,
    /// MCLT, seconds.
    pub mclt: u32,
    /// When PARTNER-DOWN began (unix seconds).
    pub pd_start: Option<u32>,
    /// Binding updates sent.
    pub updates_sent: u64,
    /// Binding updates acknowledged by the partner.
    pub updates_acked: u64,
    /// Binding updates the partner rejected.
    pub updates_rejected: u64,
    /// Binding updates received from the partner.
    pub updates_received: u64,
    /// Binding updates from the partner we rejected.
    pub updates_refused: u64,
    /// Free addresses moved to the secondary's BACKUP share by pool balancing.
    pub addresses_transferred: u64,
    /// Connections from addresses other than the peer's, closed unread.
    pub refused_connections: u64,
    /// Connections reset for a malformed or oversized message.
    pub malformed_messages: u64,
    /// Failed TLS handshakes.
    pub tls_failures: u64,
}

/// Operator commands.
#[derive(Debug)]
pub enum Command {
    /// Enter PARTNER-DOWN (draft-12 §9.x: only an operator knows the partner is down).
    PartnerDown(std::sync::mpsc::SyncSender<Result<&'static str, String>>),
    /// A configuration reload replaced the free map (its pools): use this one from now on.
    SetFreeMap(Arc<FreeMap>),
}

/// The running partner thread.
#[derive(Debug)]
pub struct PartnerHandle {
    status: Arc<Mutex<Status>>,
    cmd: tokio::sync::mpsc::Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PartnerHandle {
    /// A handle over a running partner thread (also the DHCPv6 one, [`super::partner6`]).
    pub(super) fn from_parts(
        status: Arc<Mutex<Status>>,
        cmd: tokio::sync::mpsc::Sender<Command>,
        stop: Arc<AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    ) -> Self {
        Self {
            status,
            cmd,
            stop,
            thread: Some(thread),
        }
    }

    /// The current status.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Ask for PARTNER-DOWN; returns the new state's name or why not.
    pub fn partner_down(&self) -> Result<&'static str, String> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.cmd
            .try_send(Command::PartnerDown(tx))
            .map_err(|_| "the partner thread is busy or stopped".to_owned())?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the partner thread did not answer".to_owned())?
    }

    /// A cloneable reader of the status (for the control API).
    #[must_use]
    pub fn status_source(&self) -> Arc<Mutex<Status>> {
        Arc::clone(&self.status)
    }

    /// A cloneable command sender (for the control API).
    #[must_use]
    pub fn commands(&self) -> tokio::sync::mpsc::Sender<Command> {
        self.cmd.clone()
    }

    /// Send DISCONNECT, close, persist the state and join the thread.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PartnerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

pub(super) fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// Start the partner thread of `cfg`. `ends` are the partner's ends of each worker's rings;
/// `newest_cltt` is the latest client transaction in the recovered store (when this server
/// last granted anything, draft-12 §9.3.2).
pub fn spawn(
    cfg: &Failover,
    data_dir: &std::path::Path,
    free: Arc<FreeMap>,
    ends: Vec<PartnerEnd>,
    view: Arc<SharedView>,
    newest_cltt: u32,
) -> Result<PartnerHandle, PartnerError> {
    let split_file = super::split::path(data_dir);
    super::split::load(&split_file, &free).map_err(PartnerError::Split)?;
    let started = super::session::start(
        &super::session::Relationship {
            name: &cfg.name,
            family: "v4",
            role: cfg.role,
            mclt: cfg.mclt,
            auto_partner_down: cfg.auto_partner_down,
            state_file: data_dir.join(format!("failover-{}.state", sanitize(&cfg.name))),
            newest_cltt,
            tls: cfg.tls.as_ref(),
        },
        LinkConfig {
            framing: super::link::Framing::Draft12,
            ..LinkConfig::new(SocketAddr::V4(cfg.local), SocketAddr::V4(cfg.peer), false)
        },
    )?;
    let super::session::Started {
        role,
        machine,
        status,
        rt,
        link,
        events,
    } = started;
    let p = Partner {
        cfg: cfg.clone(),
        role,
        machine,
        state_file: data_dir.join(format!("failover-{}.state", sanitize(&cfg.name))),
        split_file,
        free,
        ends,
        view,
        status: Arc::clone(&status),
        link,
        xid: 1,
        handshake: false,
        peer_max_unacked: 0,
        outq: VecDeque::new(),
        inflight: HashMap::new(),
        applies: HashMap::new(),
        next_token: 1,
        scans: HashMap::new(),
        upddone_pending: None,
        last_recv: Instant::now(),
        last_send: Instant::now(),
        last_contact_unix: None,
        last_balance: Instant::now(),
        balance_more: false,
        split_pending: SplitPending::default(),
        last_poolreq: None,
        counters: Counters::default(),
        buf: vec![0u8; 65_535],
        skew: 0,
    };
    p.publish();
    p.persist();
    tracing::info!(
        relationship = %cfg.name,
        role = role.name(),
        state = p.machine.state().name(),
        local = %cfg.local,
        peer = %cfg.peer,
        "failover relationship starting"
    );
    super::session::launch(format!("tl-partner-{}", cfg.name), rt, p, events, status)
}

pub(super) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) acked: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) transferred: AtomicU64,
}

/// One update in flight.
type Inflight = super::session::Inflight<Lease4>;

/// A partner update being applied by the workers.
#[derive(Debug, Clone)]
struct Applying {
    xid: u32,
    lease: Lease4,
    /// Workers asked to surrender the address, and whether one gave it up.
    surrender_waiting: usize,
    gave_up: bool,
    refused: Option<u8>,
    tries: u8,
}

/// Balancing runs at most this often (and on every POOLREQ).
const BALANCE_EVERY: Duration = Duration::from_secs(5);
/// Addresses moved per balancing round per pool (the rest follows in the next rounds).
const BALANCE_BATCH: usize = 4096;
/// The split file is written at most this often for the partner's FREE/BACKUP updates: the
/// changes in between are written together, and their BNDACKs leave after that write.
const SPLIT_SAVE_EVERY: Duration = Duration::from_millis(10);

/// The partner's FREE/BACKUP updates applied to the free map, waiting for the split file to
/// be written before they are acknowledged (draft-12 §5.4: durable before the BNDACK).
#[derive(Default)]
struct SplitPending {
    /// (xid, address, BACKUP before the update), in arrival order.
    changes: Vec<(u32, Ipv4Addr, bool)>,
    /// When the split file was last written.
    saved: Option<Instant>,
}

struct Partner {
    cfg: Failover,
    role: Role,
    machine: Machine,
    state_file: PathBuf,
    split_file: PathBuf,
    free: Arc<FreeMap>,
    ends: Vec<PartnerEnd>,
    view: Arc<SharedView>,
    status: Arc<Mutex<Status>>,
    link: Link,
    xid: u32,
    /// CONNECT/CONNECTACK completed on the current connection.
    handshake: bool,
    peer_max_unacked: usize,
    outq: VecDeque<(Lease4, u32)>,
    inflight: HashMap<(u32, Ipv4Addr), Inflight>,
    applies: HashMap<u64, Applying>,
    next_token: u64,
    /// Scans for the partner's UPDREQ/UPDREQALL: token → workers not finished.
    scans: HashMap<u64, usize>,
    /// xid of the partner's UPDREQ/UPDREQALL to answer with UPDDONE once everything is
    /// sent and acknowledged.
    upddone_pending: Option<(u32, u64)>,
    last_recv: Instant,
    last_send: Instant,
    last_contact_unix: Option<u32>,
    last_balance: Instant,
    /// The last balancing round moved a full batch: the next follows as soon as the
    /// partner has taken the previous one, not after [`BALANCE_EVERY`].
    balance_more: bool,
    split_pending: SplitPending,
    last_poolreq: Option<Instant>,
    counters: Counters,
    buf: Vec<u8>,
    /// Partner clock minus ours, seconds (draft-12 §6.1 time field).
    skew: i64,
}

impl Partner {
    fn next_xid(&mut self) -> u32 {
        self.xid = self.xid.wrapping_add(1).max(1);
        self.xid
    }

    /// Send one encoded message (from `self.buf[..len]`).
    fn send_buf(&mut self, len: usize) -> bool {
        let ok = self.link.send(self.buf[..len].to_vec()).is_ok();
        if ok {
            self.last_send = Instant::now();
        }
        ok
    }

    fn send_header_only(&mut self, t: MessageType, xid: u32) {
        if let Ok(n) = write_header_only(t, unix_now(), xid, &mut self.buf) {
            self.send_buf(n);
        }
    }

    fn send_state(&mut self) {
        // In STARTUP the previous state with the STARTUP flag (draft-12 §9.3.1).
        let (state, flags, start_time) = self.machine.state_message();
        let m = StateMsg {
            state,
            flags,
            start_time,
        };
        let xid = self.next_xid();
        if let Ok(n) = m.write(unix_now(), xid, &mut self.buf) {
            self.send_buf(n);
        }
    }

    /// The hash-bucket-assignment sent in CONNECT: the buckets the receiver (the partner)
    /// answers in NORMAL (draft-12 §12.11, RFC 3074).
    fn hba(&self) -> [u8; 32] {
        // ISC dhcpd sends (and expects) the primary's buckets as set bits, whichever side
        // sends the CONNECT.
        super::lb::Buckets::split(self.cfg.load_balance_split, Role::Primary).isc_hba()
    }

    fn send_connect(&mut self) {
        let name = self.cfg.name.clone();
        let hba = self.hba();
        let m = Connect {
            relationship: name.as_bytes(),
            max_unacked: self.cfg.max_unacked_updates,
            receive_timer: self.cfg.max_response_delay,
            vendor: b"twinlease",
            protocol_version: PROTOCOL_VERSION,
            tls_request: None,
            // dhcpd refuses a CONNECT without MCLT or hash-bucket-assignment, from either
            // role (reject reasons 5 and 18).
            mclt: Some(self.cfg.mclt),
            hba: Some(hba),
        };
        let xid = self.next_xid();
        if let Ok(n) = m.write(unix_now(), xid, &mut self.buf) {
            self.send_buf(n);
        }
    }

    fn connection_lost(&mut self) {
        // What the partner already moved is kept (written now); its BNDACKs are gone with
        // the connection and the partner sends those updates again.
        self.save_split_pending(true);
        self.split_pending.changes.clear();
        let was = self.handshake;
        self.handshake = false;
        super::session::requeue(&mut self.inflight, &mut self.outq);
        self.applies.clear();
        self.scans.clear();
        self.upddone_pending = None;
        if was {
            let out = self
                .machine
                .handle(Event::ConnectionLost { now: unix_now() });
            self.after(out);
        }
    }

    fn on_message(&mut self, bytes: &[u8]) {
        let Ok(p) = Packet::new_checked(bytes) else {
            self.link.drop_connection("malformed failover message");
            return;
        };
        self.skew = i64::from(p.time()) - i64::from(unix_now());
        let xid = p.xid();
        let msg = match Message::parse(&p) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(relationship = %self.cfg.name, error = %e, "bad message from partner");
                if matches!(p.message_type(), Ok(MessageType::BndUpd)) {
                    // draft-12 §6.3: each named address gets a BNDACK with a reject.
                    let addrs: Vec<Ipv4Addr> = transaction_addresses(p.payload()).collect();
                    for a in addrs {
                        self.send_bndack(xid, a, Some(reject::MISSING_BINDING_INFORMATION));
                    }
                    return;
                }
                self.link.drop_connection("unparseable failover message");
                return;
            }
        };
        match msg {
            Message::Connect(c) => self.on_connect(&c, xid),
            Message::ConnectAck(a) => self.on_connect_ack(&a),
            Message::State(s) => {
                // draft-12 §9.3.1: a STATE with the STARTUP flag carries the partner's
                // previous state.
                if let Some(ev) = State::event_of_state_message(
                    s.state,
                    s.flags,
                    adjust_time(s.start_time, self.skew),
                    unix_now(),
                ) {
                    let out = self.machine.handle(ev);
                    self.after(out);
                }
            }
            Message::Contact => {}
            Message::Disconnect(d) => {
                tracing::warn!(
                    relationship = %self.cfg.name,
                    reason = d.reason,
                    message = %String::from_utf8_lossy(d.message),
                    "partner disconnected"
                );
                self.link.drop_connection("partner sent DISCONNECT");
                self.connection_lost();
            }
            Message::BndUpd(all) => {
                let ups: Vec<_> = all.flatten().collect();
                for u in ups {
                    self.on_bndupd(xid, &u);
                }
            }
            Message::BndAck(all) => {
                let acks: Vec<(Ipv4Addr, Option<u8>)> = all
                    .flatten()
                    .map(|a| (a.addr, a.reject.map(|r| r.0)))
                    .collect();
                for (addr, rej) in acks {
                    self.on_bndack(xid, addr, rej);
                }
            }
            Message::UpdReq => self.start_scan(xid, true),
            Message::UpdReqAll => self.start_scan(xid, false),
            Message::UpdDone => {
                let out = self
                    .machine
                    .handle(Event::UpdDoneReceived { now: unix_now() });
                self.after(out);
            }
            Message::PoolReq => {
                let moved = if self.role == Role::Primary {
                    self.balance(true)
                } else {
                    0
                };
                if let Ok(n) =
                    (PoolResp { transferred: moved }).write(unix_now(), xid, &mut self.buf)
                {
                    self.send_buf(n);
                }
            }
            Message::PoolResp(r) => {
                tracing::info!(relationship = %self.cfg.name, transferred = r.transferred, "pool response");
            }
        }
    }

    fn on_connect(&mut self, c: &Connect<'_>, xid: u32) {
        let rej = if c.relationship != self.cfg.name.as_bytes() {
            Some((reject::INVALID_PARTNER, "unknown relationship name"))
        } else if c.protocol_version != PROTOCOL_VERSION {
            Some((reject::VERSION_MISMATCH, "protocol version mismatch"))
        } else if self.role == Role::Secondary && c.mclt.is_none() {
            Some((reject::INVALID_MCLT, "CONNECT without MCLT"))
        } else if self.skew.unsigned_abs() > 60 {
            Some((reject::TIME_MISMATCH, "clocks differ by more than 60 s"))
        } else {
            None
        };
        let name = self.cfg.name.clone();
        let ack = ConnectAck {
            relationship: name.as_bytes(),
            max_unacked: Some(self.cfg.max_unacked_updates),
            receive_timer: Some(self.cfg.max_response_delay),
            vendor: Some(b"twinlease"),
            protocol_version: PROTOCOL_VERSION,
            tls_reply: c.tls_request.map(|_| 0),
            reject: rej.map(|(r, m)| (r, m.as_bytes())),
        };
        if let Ok(n) = ack.write(unix_now(), xid, &mut self.buf) {
            self.send_buf(n);
        }
        if let Some((r, m)) = rej {
            tracing::warn!(relationship = %self.cfg.name, reason = r, message = m, "refused partner CONNECT");
            self.link.drop_connection(m);
            return;
        }
        self.peer_max_unacked = c.max_unacked.clamp(1, 65_535) as usize;
        if let Some(m) = c.mclt
            && m != self.cfg.mclt
        {
            tracing::warn!(relationship = %self.cfg.name, ours = self.cfg.mclt, theirs = m, "the partner's MCLT differs from ours");
        }
        if let Some(h) = c.hba
            && h != self.hba()
        {
            tracing::warn!(relationship = %self.cfg.name, "the partner's load-balancing split differs from ours (load-balance-split)");
        }
        // The secondary's handshake completes with its CONNECTACK; the primary's with the
        // CONNECTACK to its own CONNECT.
        if self.role == Role::Secondary {
            self.connected();
        }
    }

    fn on_connect_ack(&mut self, a: &ConnectAck<'_>) {
        if let Some((r, m)) = a.reject {
            tracing::warn!(
                relationship = %self.cfg.name,
                reason = r,
                message = %String::from_utf8_lossy(m),
                "partner refused our CONNECT"
            );
            self.link.drop_connection("CONNECT refused");
            return;
        }
        self.peer_max_unacked = a.max_unacked.unwrap_or(100).clamp(1, 65_535) as usize;
        self.connected();
    }

    fn connected(&mut self) {
        if self.handshake {
            return;
        }
        self.handshake = true;
        let out = self.machine.handle(Event::Connected { now: unix_now() });
        self.after(out);
        self.send_state();
        // Whatever the partner has not acknowledged yet (changes made while the connection
        // was down, updates lost with it) goes out now, without waiting for an UPDREQ that
        // a return from COMMUNICATIONS-INTERRUPTED to NORMAL does not bring (draft-12 §7.1:
        // an update is sent until it is acknowledged): every worker streams its pending
        // records as plain updates (token 0), as the DHCPv6 partner thread does.
        for w in 0..self.ends.len() {
            let _ = self.ends[w].to.try_send(FromPartner::Scan {
                token: 0,
                pending_only: true,
            });
        }
    }

    /// Apply what the state machine decided.
    fn after(&mut self, out: Outcome) {
        if let Some(t) = out.transition {
            tracing::info!(
                relationship = %self.cfg.name,
                from = t.from.name(),
                to = t.to.name(),
                reason = t.reason,
                "failover state change"
            );
            self.persist();
            self.publish();
            // The secondary needs its share as soon as both are NORMAL (draft-12 §5.4).
            if t.to == State::Normal && self.role == Role::Primary && self.handshake {
                self.balance(false);
            }
        }
        if out.send_state && self.handshake {
            self.send_state();
        }
        if let Some(r) = out.request
            && self.handshake
        {
            let t = match r {
                UpdateRequest::Missed => MessageType::UpdReq,
                UpdateRequest::All => MessageType::UpdReqAll,
            };
            let xid = self.next_xid();
            self.send_header_only(t, xid);
        }
    }

    fn persist(&self) {
        super::session::persist(&self.state_file, &self.machine, &self.cfg.name);
    }

    /// Publish what the current state allows to the workers.
    fn publish(&self) {
        let now = unix_now();
        let p = self.machine.policy(now);
        let own = match self.role {
            Role::Primary => Share::Free,
            Role::Secondary => Share::Backup,
        };
        let share = if p.partner_free_now { Share::Any } else { own };
        self.view.publish(
            p.respond,
            p.serve_new,
            p.serve_new && p.allocate_own,
            share,
            p.load_balance,
        );
    }

    fn operator_partner_down(&mut self) -> Result<&'static str, String> {
        let out = self
            .machine
            .handle(Event::OperatorPartnerDown { now: unix_now() });
        let changed = out.transition.is_some();
        self.after(out);
        super::session::partner_down_answer(changed, &self.machine)
    }

    /// Whether some pool's BACKUP share is empty while FREE addresses exist.
    fn backup_low(&self) -> bool {
        self.free.pools().iter().any(|p| {
            let (f, b) = self.free.share_counts(p.id);
            b == 0 && f > 0
        })
    }

    /// Primary: move free addresses to the secondary's BACKUP share until each pool is
    /// within max-lease-misbalance of an even split (draft-12 §5.4). The split is made
    /// durable before the BNDUPDs leave. Returns how many moved.
    fn balance(&mut self, forced: bool) -> u32 {
        self.last_balance = Instant::now();
        let mut more = false;
        self.balance_more = false;
        let mut moved = Vec::new();
        let pools: Vec<u32> = self.free.pools().iter().map(|p| p.id).collect();
        for id in pools {
            let (f, b) = self.free.share_counts(id);
            let total = f + b;
            if total < 2 {
                continue;
            }
            let target = total / 2;
            let slack = total * u64::from(self.cfg.max_lease_misbalance) / 100;
            if b + slack >= target && !(forced && b < target) {
                continue;
            }
            let n = (target - b).min(BALANCE_BATCH as u64) as usize;
            more |= n == BALANCE_BATCH;
            for a in self.free.pick_in_share(id, Share::Free, n) {
                self.free.set_backup(a, true);
                moved.push(a);
            }
        }
        if moved.is_empty() {
            return 0;
        }
        if let Err(e) = super::split::save(&self.split_file, &self.free) {
            // Not durable: take the move back, nothing was sent.
            for a in &moved {
                self.free.set_backup(*a, false);
            }
            tracing::error!(relationship = %self.cfg.name, error = %e, "could not persist the pool split");
            return 0;
        }
        self.balance_more = more;
        tracing::info!(relationship = %self.cfg.name, addresses = moved.len(), "moved free addresses to the secondary's share");
        self.counters
            .transferred
            .fetch_add(moved.len() as u64, Ordering::Relaxed);
        let now = unix_now();
        for a in &moved {
            let l = Lease4 {
                addr: *a,
                state: BindingState::Backup,
                client: pool_key(),
                chaddr: [0; 6],
                subnet_id: 0,
                expires: 0,
                cltt: now,
                partner_expires: 0,
                update_pending: true,
            };
            self.outq.push_back((l, 0));
        }
        moved.len() as u32
    }

    /// Read what the workers said.
    fn poll_workers(&mut self) {
        for w in 0..self.ends.len() {
            for _ in 0..4096 {
                let Ok(m) = self.ends[w].from.try_recv() else {
                    break;
                };
                match m {
                    ToPartner::Update { lease, potential } => {
                        if lease.state == BindingState::Active {
                            self.machine.note_activity(unix_now());
                        }
                        if self.handshake {
                            self.outq.push_back((lease, potential));
                        }
                        // Not connected: the record stays pending in its shard and is sent
                        // when the partner asks (UPDREQ) after reconnecting.
                    }
                    ToPartner::Scanned {
                        token,
                        leases,
                        done,
                    } => {
                        if self.scans.contains_key(&token) {
                            self.outq.extend(leases);
                            if done && let Some(n) = self.scans.get_mut(&token) {
                                *n -= 1;
                            }
                        }
                    }
                    ToPartner::Applied { token, outcome } => self.on_applied(w, token, outcome),
                    ToPartner::Surrendered {
                        token,
                        gave_up,
                        refused,
                    } => self.on_surrendered(token, gave_up, refused),
                }
            }
        }
        self.scans.retain(|_, n| *n > 0);
    }

    /// Send queued updates up to the partner's window, and UPDDONE when a requested scan
    /// is complete and acknowledged.
    fn pump(&mut self) {
        if !self.handshake {
            return;
        }
        let window = self.peer_max_unacked.max(1);
        let now = unix_now();
        // One clock reading per burst.
        let sent_at = Instant::now();
        while self.inflight.len() < window {
            let Some((lease, potential)) = self.outq.pop_front() else {
                break;
            };
            let xid = self.next_xid();
            let u = BindingUpdate::from_lease(&lease, potential, now);
            let Ok(n) = u.write(now, xid, &mut self.buf) else {
                continue;
            };
            if !self.send_buf(n) {
                self.outq.push_front((lease, potential));
                break;
            }
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            self.inflight.insert(
                (xid, lease.addr),
                Inflight {
                    lease,
                    potential,
                    sent: sent_at,
                },
            );
        }
        if let Some((xid, token)) = self.upddone_pending
            && !self.scans.contains_key(&token)
            && self.outq.is_empty()
            && self.inflight.is_empty()
        {
            self.upddone_pending = None;
            self.send_header_only(MessageType::UpdDone, xid);
            let out = self.machine.handle(Event::UpdDoneSent { now });
            self.after(out);
        }
    }

    fn on_bndack(&mut self, xid: u32, addr: Ipv4Addr, rej: Option<u8>) {
        let Some(i) = self.inflight.remove(&(xid, addr)) else {
            return;
        };
        if let Some(r) = rej {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(relationship = %self.cfg.name, %addr, reason = r, "partner rejected a binding update");
            return;
        }
        self.counters.acked.fetch_add(1, Ordering::Relaxed);
        if matches!(i.lease.state, BindingState::Free | BindingState::Backup)
            && i.lease.client.as_bytes() == pool_key().as_bytes()
        {
            return;
        }
        let w = i.lease.client.shard(self.ends.len());
        let _ = self.ends[w].to.try_send(FromPartner::Acked {
            addr,
            client: i.lease.client,
            cltt: i.lease.cltt,
            potential: i.potential,
        });
    }

    fn send_bndack(&mut self, xid: u32, addr: Ipv4Addr, rej: Option<u8>) {
        let a = BindingAck {
            addr,
            reject: rej.map(|r| (r, &b""[..])),
        };
        if let Ok(n) = a.write(unix_now(), xid, &mut self.buf) {
            self.send_buf(n);
        }
    }

    fn on_bndupd(&mut self, xid: u32, u: &BindingUpdate<'_>) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        // draft-12 §7.1: a server MUST NOT send more BNDUPDs ahead of their BNDACKs than the
        // receiver's max-unacked-BNDUPD. A partner ignoring it would make us buffer without
        // bound: drop the connection instead.
        if self.applies.len() >= self.cfg.max_unacked_updates as usize {
            tracing::warn!(
                relationship = %self.cfg.name,
                window = self.cfg.max_unacked_updates,
                "the partner sent more binding updates than max-unacked-updates allows; dropping the connection"
            );
            self.link
                .drop_connection("partner exceeded max-unacked-updates");
            self.connection_lost();
            return;
        }
        if let Err((r, m)) = u.check() {
            tracing::warn!(relationship = %self.cfg.name, addr = %u.addr, reason = r, message = m, "refused a binding update");
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            self.send_bndack(xid, u.addr, Some(r));
            return;
        }
        let u = u.adjusted(self.skew);
        let Ok(parts) = u.to_lease_parts() else {
            self.send_bndack(xid, u.addr, Some(reject::MISSING_BINDING_INFORMATION));
            return;
        };
        if self.free.pool_of(parts.addr).is_none() {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            self.send_bndack(xid, parts.addr, Some(reject::ILLEGAL_IP_ADDRESS));
            return;
        }
        match (parts.state, parts.client) {
            (BindingState::Free | BindingState::Backup, _) => {
                // draft-12 §5.4: the primary assigns the free addresses; FREE is its share,
                // BACKUP the secondary's. Durable before the BNDACK.
                let backup = parts.state == BindingState::Backup;
                let was = self.free.is_backup(parts.addr);
                if was == backup && self.split_pending.changes.is_empty() {
                    self.send_bndack(xid, parts.addr, None);
                } else {
                    // Acknowledged once the split file holds it (with the others of the
                    // next few milliseconds), in order.
                    self.free.set_backup(parts.addr, backup);
                    self.split_pending.changes.push((xid, parts.addr, was));
                }
            }
            (_, None) => {
                // ABANDONED / RESET without a client: record it under the address.
                self.send_bndack(xid, parts.addr, None);
            }
            (state, Some(client)) => {
                let now = unix_now();
                let lease = Lease4 {
                    addr: parts.addr,
                    state,
                    client,
                    chaddr: parts.chaddr,
                    subnet_id: self.subnet_of(parts.addr),
                    expires: parts.expires.unwrap_or(now),
                    cltt: parts.cltt.unwrap_or(now),
                    partner_expires: parts
                        .potential_expiry
                        .unwrap_or(0)
                        .max(parts.expires.unwrap_or(0)),
                    update_pending: false,
                };
                let token = self.next_token;
                self.next_token += 1;
                self.applies.insert(
                    token,
                    Applying {
                        xid,
                        lease,
                        surrender_waiting: 0,
                        gave_up: false,
                        refused: None,
                        tries: 0,
                    },
                );
                self.send_apply(token, false);
            }
        }
    }

    fn subnet_of(&self, addr: Ipv4Addr) -> u32 {
        self.free
            .pools()
            .iter()
            .find(|p| p.contains(addr))
            .map_or(0, |p| p.subnet_id)
    }

    fn send_apply(&mut self, token: u64, transferred: bool) {
        let Some(a) = self.applies.get(&token) else {
            return;
        };
        let w = a.lease.client.shard(self.ends.len());
        let msg = FromPartner::Apply {
            token,
            lease: a.lease,
            transferred,
        };
        if self.ends[w].to.try_send(msg).is_err() {
            // The worker is far behind: no BNDACK; the partner sends it again later.
            self.applies.remove(&token);
        }
    }

    fn on_applied(&mut self, worker: usize, token: u64, outcome: ApplyOutcome) {
        let Some(a) = self.applies.get_mut(&token) else {
            return;
        };
        match outcome {
            ApplyOutcome::Accepted => {
                let (xid, addr) = (a.xid, a.lease.addr);
                self.applies.remove(&token);
                self.send_bndack(xid, addr, None);
            }
            ApplyOutcome::Rejected(r) => {
                let (xid, addr) = (a.xid, a.lease.addr);
                self.applies.remove(&token);
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(relationship = %self.cfg.name, %addr, reason = r, "binding update conflicts with a local binding");
                self.send_bndack(xid, addr, Some(r));
            }
            ApplyOutcome::NotDurable => {
                // No BNDACK: the partner resends after reconnecting or on UPDREQ.
                self.applies.remove(&token);
            }
            ApplyOutcome::HeldElsewhere => {
                a.tries += 1;
                if a.tries > 3 {
                    let (xid, addr) = (a.xid, a.lease.addr);
                    self.applies.remove(&token);
                    self.send_bndack(xid, addr, Some(reject::FATAL_CONFLICT));
                    return;
                }
                a.surrender_waiting = self.ends.len() - 1;
                a.gave_up = false;
                a.refused = None;
                let (addr, cltt, client) = (a.lease.addr, a.lease.cltt, a.lease.client);
                for w in 0..self.ends.len() {
                    if w != worker {
                        let _ = self.ends[w].to.try_send(FromPartner::Surrender {
                            token,
                            addr,
                            cltt,
                            client,
                        });
                    }
                }
                if self.ends.len() == 1 {
                    // Nobody else to ask: held by this worker's own offer or lost; retry.
                    self.send_apply(token, false);
                }
            }
        }
    }

    fn on_surrendered(&mut self, token: u64, gave_up: bool, refused: Option<u8>) {
        let Some(a) = self.applies.get_mut(&token) else {
            return;
        };
        a.gave_up |= gave_up;
        if refused.is_some() {
            a.refused = refused;
        }
        a.surrender_waiting = a.surrender_waiting.saturating_sub(1);
        if a.surrender_waiting > 0 {
            return;
        }
        if let Some(r) = a.refused {
            let (xid, addr) = (a.xid, a.lease.addr);
            self.applies.remove(&token);
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            self.send_bndack(xid, addr, Some(r));
            return;
        }
        let transferred = a.gave_up;
        self.send_apply(token, transferred);
    }

    /// The partner asked for updates (draft-12 §7.3, §7.4): stream the workers' records.
    fn start_scan(&mut self, xid: u32, pending_only: bool) {
        let token = self.next_token;
        self.next_token += 1;
        self.scans.insert(token, self.ends.len());
        self.upddone_pending = Some((xid, token));
        if !pending_only {
            // UPDREQALL also covers the split of the free addresses (primary).
            if self.role == Role::Primary {
                let now = unix_now();
                for (a, b) in self.free.backup_ranges() {
                    for x in u32::from(a)..=u32::from(b) {
                        let addr = Ipv4Addr::from(x);
                        if self.free.is_free(addr) {
                            self.outq.push_back((
                                Lease4 {
                                    addr,
                                    state: BindingState::Backup,
                                    client: pool_key(),
                                    chaddr: [0; 6],
                                    subnet_id: 0,
                                    expires: 0,
                                    cltt: now,
                                    partner_expires: 0,
                                    update_pending: true,
                                },
                                0,
                            ));
                        }
                    }
                }
            }
        }
        for w in 0..self.ends.len() {
            let _ = self.ends[w].to.try_send(FromPartner::Scan {
                token,
                pending_only,
            });
        }
        tracing::info!(relationship = %self.cfg.name, all = !pending_only, "partner asked for updates");
    }
}

/// The client key of updates that name no client (FREE and BACKUP addresses of pool
/// balancing): never a real client's (form byte 0xff).
fn pool_key() -> ClientKey {
    ClientKey::from_bytes(&[0xff]).unwrap_or_else(|_| unreachable!("one byte is a valid key"))
}

impl Partner {
    /// Take the free map of a reloaded configuration (its BACKUP bits were copied from the
    /// old map by the workers) and persist its split.
    fn set_free_map(&mut self, free: Arc<FreeMap>) {
        // Pending changes were made to the old map (the workers copied its bits).
        self.save_split_pending(true);
        self.free = free;
        if let Err(e) = super::split::save(&self.split_file, &self.free) {
            tracing::warn!(relationship = %self.cfg.name, error = %e, "cannot save the pool split after a reload");
        }
    }

    /// Write the split file for the partner's pending FREE/BACKUP updates (at most every
    /// [`SPLIT_SAVE_EVERY`] unless `now`), then acknowledge them. If it cannot be written,
    /// the changes are taken back, newest first, and nothing is acknowledged: the partner
    /// sends them again.
    fn save_split_pending(&mut self, now: bool) {
        let p = &mut self.split_pending;
        if p.changes.is_empty() || (!now && p.saved.is_some_and(|t| t.elapsed() < SPLIT_SAVE_EVERY))
        {
            return;
        }
        p.saved = Some(Instant::now());
        let changes = std::mem::take(&mut p.changes);
        if let Err(e) = super::split::save(&self.split_file, &self.free) {
            for &(_, addr, was) in changes.iter().rev() {
                self.free.set_backup(addr, was);
            }
            tracing::error!(relationship = %self.cfg.name, error = %e, "could not persist the pool split");
            return;
        }
        if self.handshake {
            for (xid, addr, _) in changes {
                self.send_bndack(xid, addr, None);
            }
        }
    }
}

impl super::session::Driver for Partner {
    const TICK: Duration = Duration::from_millis(1);

    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Up { peer, tls } => {
                tracing::info!(relationship = %self.cfg.name, %peer, tls, "partner connection up");
                self.handshake = false;
                self.last_recv = Instant::now();
                // The side that opened the connection (the primary, draft-12 §8.2) sends
                // CONNECT; the other answers it with CONNECTACK (§7.8, §7.9). ISC dhcpd as the
                // accepting secondary sends a CONNECT of its own too, answered the same way.
                if self.role == Role::Primary {
                    self.send_connect();
                }
            }
            LinkEvent::Message(bytes) => {
                self.last_recv = Instant::now();
                self.last_contact_unix = Some(unix_now());
                self.on_message(&bytes);
            }
            LinkEvent::Down { reason } => {
                tracing::warn!(relationship = %self.cfg.name, reason = %reason, "partner connection down");
                self.connection_lost();
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::PartnerDown(reply) => {
                let r = self.operator_partner_down();
                let _ = reply.try_send(r);
            }
            Command::SetFreeMap(free) => self.set_free_map(free),
        }
    }

    fn tick(&mut self) {
        self.poll_workers();
        self.save_split_pending(false);
        if self.balance_more
            && self.role == Role::Primary
            && self.handshake
            && self.machine.state() == State::Normal
            && self.outq.len() < self.peer_max_unacked.max(1)
        {
            // A big pool is balanced at the pace the partner takes the moves.
            self.balance(false);
        }
        self.pump();
    }

    fn every_second(&mut self) {
        let now = unix_now();
        let out = self.machine.handle(Event::Tick { now });
        self.after(out);
        // The partner-down wait may have ended: the share widens.
        self.publish();
        match super::session::liveness(
            self.link.is_up(),
            self.handshake,
            self.last_recv,
            self.last_send,
            self.cfg.max_response_delay,
        ) {
            super::session::Liveness::Fine => {}
            super::session::Liveness::Dead => {
                tracing::warn!(relationship = %self.cfg.name, "no message from the partner within max-response-delay");
                self.link.drop_connection("max-response-delay exceeded");
                self.connection_lost();
            }
            super::session::Liveness::Contact => {
                let xid = self.next_xid();
                self.send_header_only(MessageType::Contact, xid);
            }
        }
        if self.handshake && self.machine.state() == State::Normal {
            if self.role == Role::Primary && self.last_balance.elapsed() >= BALANCE_EVERY {
                self.balance(false);
            }
            if self.role == Role::Secondary
                && self
                    .last_poolreq
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
                && self.backup_low()
            {
                self.last_poolreq = Some(Instant::now());
                let xid = self.next_xid();
                self.send_header_only(MessageType::PoolReq, xid);
            }
        }
    }

    fn update_status(&self) {
        if let Ok(mut s) = self.status.lock() {
            super::session::fill_status(
                &mut s,
                &super::session::StatusParts {
                    machine: &self.machine,
                    connected: self.handshake,
                    inflight: &self.inflight,
                    pending: self.outq.len(),
                    last_contact: self.last_contact_unix,
                    counters: &self.counters,
                    link: self.link.stats(),
                },
            );
        }
    }

    async fn shutdown(mut self) {
        let out = self.machine.handle(Event::Shutdown { now: unix_now() });
        self.after(out);
        if self.link.is_up() {
            let d = Disconnect {
                reason: reject::UNKNOWN_REASON,
                message: b"server shutting down",
            };
            let xid = self.next_xid();
            if let Ok(n) = d.write(unix_now(), xid, &mut self.buf) {
                self.send_buf(n);
            }
        }
        self.save_split_pending(true);
        self.persist();
        self.link.shutdown().await;
    }
}
