//! The DHCPv6 partner thread (RFC 8156): one per `[failover6]` relationship. Like the DHCPv4
//! one ([`super::partner`]) it owns the connection ([`super::link`] with
//! [`Framing::Rfc8156`]), the failover state machine (RFC 8156 §8 uses the states of
//! draft-ietf-dhc-failover-12, so [`super::state::Machine`] serves as is) and the update
//! queues, and talks to the workers only through bounded rings ([`super::channel6`]).
//!
//! What it does, by RFC 8156 section:
//! - connection: the primary sends CONNECT, the secondary answers CONNECTREPLY (§6.1), both
//!   send STATE on connect and on every change (§6.2); CONTACT when idle, the connection
//!   declared down after max-response-delay without any message (§6.1.3, keepalive time);
//!   DISCONNECT on orderly shutdown (§5.3.10);
//! - binding updates: every committed change is sent as a BNDUPD carrying one client's
//!   binding, pipelined up to the partner's max-unacked-BNDUPD (§5.5.8, §7.4); each
//!   successful BNDREPLY feeds "partner knows lifetime X" back to the owning worker (§4.4);
//! - the partner's BNDUPDs are applied by the worker owning the client (the BNDREPLY leaves
//!   after the record is durable, §7.5); the worker owning the member's partition holds it;
//! - UPDREQ / UPDREQALL / UPDDONE stream the store from the workers (§5.3.5–5.3.7).
//!
//! The free space needs no POOLREQ: the shares are static ([`crate::pool::v6::Share6`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::channel::ApplyOutcome;
use super::channel6::{FromPartner6, PartnerEnd6, SharedView6, ToPartner6};
use super::link::{Framing, Link, LinkConfig, LinkEvent};
use super::partner::{Command, Counters, PartnerError, PartnerHandle, Status, sanitize, unix_now};
use super::state::{Event, Machine, Outcome, Role, State, UpdateRequest};
use crate::config::Failover6;
use crate::lease::{BindingState, ClientKey, Lease6};
use crate::pool::v6::Space6;
use crate::wire::failover6::{
    BindingBody, BindingReply6, BindingTimes, BindingUpdate6, ClientData6, Connect6, ConnectReply6,
    Disconnect6, Header, LeaseBinding, Message, MessageType, MessageWriter, PROTOCOL_VERSION,
    ServerState, State6, StatusValue, frame_message, from_unix, server_flags, status, to_unix,
};

/// The RFC 8156 server state of a state-machine state; PAUSED and SHUTDOWN have none (RFC
/// 8156 §8 dropped them).
fn wire_state(s: State) -> Option<ServerState> {
    Some(match s {
        State::Startup => ServerState::Startup,
        State::Normal => ServerState::Normal,
        State::CommunicationsInterrupted => ServerState::CommunicationsInterrupted,
        State::PartnerDown => ServerState::PartnerDown,
        State::PotentialConflict => ServerState::PotentialConflict,
        State::ConflictDone => ServerState::ConflictDone,
        State::ResolutionInterrupted => ServerState::ResolutionInterrupted,
        State::Recover => ServerState::Recover,
        State::RecoverWait => ServerState::RecoverWait,
        State::RecoverDone => ServerState::RecoverDone,
        State::Paused | State::Shutdown => return None,
    })
}

/// The state-machine state of an RFC 8156 server state (RFC 8156 §5.5.19).
fn machine_state(s: ServerState) -> State {
    match s {
        ServerState::Startup => State::Startup,
        ServerState::Normal => State::Normal,
        ServerState::CommunicationsInterrupted => State::CommunicationsInterrupted,
        ServerState::PartnerDown => State::PartnerDown,
        ServerState::PotentialConflict => State::PotentialConflict,
        ServerState::Recover => State::Recover,
        ServerState::RecoverWait => State::RecoverWait,
        ServerState::RecoverDone => State::RecoverDone,
        ServerState::ResolutionInterrupted => State::ResolutionInterrupted,
        ServerState::ConflictDone => State::ConflictDone,
    }
}

/// The event a received STATE means (RFC 8156 §6.2; with the STARTUP flag, §5.5.18, the
/// state is the partner's previous one, as in draft-12 §9.3.1).
fn state_event(s: &State6, start_time: u32, now: u32) -> Event {
    let state = machine_state(s.state);
    if s.flags & server_flags::STARTUP != 0 || state == State::Startup {
        Event::PartnerStartup {
            state,
            start_time,
            now,
        }
    } else {
        Event::PartnerState {
            state,
            start_time,
            now,
        }
    }
}

/// Largest whole frame: the 2-byte `msg-size` and 65535 bytes of message (RFC 8156 §5.1).
const MAX_FRAME: usize = 65_537;

/// Start the DHCPv6 partner thread of `cfg`. `ends` are the partner's ends of each worker's
/// rings; `newest_cltt` is the latest client transaction in the recovered DHCPv6 store.
pub fn spawn6(
    cfg: &Failover6,
    data_dir: &std::path::Path,
    space: Arc<Space6>,
    ends: Vec<PartnerEnd6>,
    view: Arc<SharedView6>,
    newest_cltt: u32,
) -> Result<PartnerHandle, PartnerError> {
    let state_file = data_dir.join(format!("failover6-{}.state", sanitize(&cfg.name)));
    let started = super::session::start(
        &super::session::Relationship {
            name: &cfg.name,
            family: "v6",
            role: cfg.role,
            mclt: cfg.mclt,
            auto_partner_down: cfg.auto_partner_down,
            state_file: state_file.clone(),
            newest_cltt,
            tls: cfg.tls.as_ref(),
        },
        LinkConfig {
            max_message: MAX_FRAME,
            framing: Framing::Rfc8156,
            ..LinkConfig::new(SocketAddr::V6(cfg.local), SocketAddr::V6(cfg.peer), false)
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
    let p = Partner6 {
        cfg: cfg.clone(),
        role,
        machine,
        state_file,
        space,
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
        counters: Counters::default(),
        buf: vec![0u8; MAX_FRAME],
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
        "DHCPv6 failover relationship starting"
    );
    super::session::launch(format!("tl-partner6-{}", cfg.name), rt, p, events, status)
}

/// One update in flight.
type Inflight = super::session::Inflight<Lease6>;

/// A partner BNDUPD being applied by the workers.
#[derive(Debug, Clone)]
struct Applying {
    xid: u32,
    leases: Vec<Lease6>,
    /// Workers' answers still expected.
    waiting: usize,
    /// The first refusal.
    refused: Option<u16>,
    not_durable: bool,
}

struct Partner6 {
    cfg: Failover6,
    role: Role,
    machine: Machine,
    state_file: PathBuf,
    space: Arc<Space6>,
    ends: Vec<PartnerEnd6>,
    view: Arc<SharedView6>,
    status: Arc<Mutex<Status>>,
    link: Link,
    xid: u32,
    handshake: bool,
    peer_max_unacked: usize,
    outq: VecDeque<(Lease6, u32)>,
    inflight: HashMap<u32, Inflight>,
    applies: HashMap<u64, Applying>,
    next_token: u64,
    scans: HashMap<u64, usize>,
    upddone_pending: Option<(u32, u64)>,
    last_recv: Instant,
    last_send: Instant,
    last_contact_unix: Option<u32>,
    counters: Counters,
    buf: Vec<u8>,
    /// Partner clock minus ours, seconds (RFC 8156 §5.2 sent-time).
    skew: i64,
}

impl Partner6 {
    fn next_xid(&mut self) -> u32 {
        // RFC 8156 §5.4: 24-bit transaction ids.
        self.xid = (self.xid.wrapping_add(1) & 0x00ff_ffff).max(1);
        self.xid
    }

    /// Our clock on the wire (RFC 8156 §5.2: seconds since 2000-01-01).
    fn sent_time() -> u32 {
        from_unix(unix_now())
    }

    /// A partner time (failover epoch) in our unix seconds, corrected for the skew.
    fn local_time(&self, t: u32) -> u32 {
        let u = i64::from(to_unix(t)) - self.skew;
        u32::try_from(u.clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX)
    }

    /// A partner unix time corrected for the skew (0 stays 0).
    fn adjust(&self, t: u32) -> u32 {
        if t == 0 {
            return 0;
        }
        u32::try_from((i64::from(t) - self.skew).clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX)
    }

    fn send_buf(&mut self, len: usize) -> bool {
        let ok = self.link.send(self.buf[..len].to_vec()).is_ok();
        if ok {
            self.last_send = Instant::now();
        }
        ok
    }

    fn send_header_only(&mut self, msg_type: MessageType, xid: u32) {
        let h = Header {
            msg_type,
            xid,
            sent_time: Self::sent_time(),
        };
        if let Ok(n) = MessageWriter::header_only(&mut self.buf, &h) {
            self.send_buf(n);
        }
    }

    fn send_state(&mut self) {
        // In STARTUP the previous state with the STARTUP flag (RFC 8156 §5.5.18, §8.3).
        let (state, flags, start_time) = self.machine.state_message();
        let Some(state) = State::from_wire(state).and_then(wire_state) else {
            return;
        };
        let mut f = server_flags::COMMUNICATED;
        if flags & crate::wire::failover::server_flags::STARTUP != 0 {
            f |= server_flags::STARTUP;
        }
        let m = State6 {
            state,
            flags: f,
            start_time: from_unix(start_time),
            partner_down_time: self.machine.pd_start().map(from_unix),
        };
        let xid = self.next_xid();
        if let Ok(n) = m.emit(&mut self.buf, xid, Self::sent_time()) {
            self.send_buf(n);
        }
    }

    fn params(&self) -> Connect6<'static> {
        Connect6 {
            relationship: None,
            protocol_version: PROTOCOL_VERSION,
            mclt: self.cfg.mclt,
            keepalive: self.cfg.max_response_delay,
            max_unacked: self.cfg.max_unacked_updates,
            connect_flags: 0,
        }
    }

    fn send_connect(&mut self) {
        let name = self.cfg.name.clone();
        let m = Connect6 {
            relationship: Some(name.as_bytes()),
            ..self.params()
        };
        let xid = self.next_xid();
        if let Ok(n) = m.emit(&mut self.buf, xid, Self::sent_time()) {
            self.send_buf(n);
        }
    }

    fn connection_lost(&mut self) {
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

    fn on_message(&mut self, frame: &[u8]) {
        let Ok(m) = frame_message(frame).and_then(Message::new_checked) else {
            self.link
                .drop_connection("malformed DHCPv6 failover message");
            return;
        };
        self.skew = i64::from(to_unix(m.sent_time())) - i64::from(unix_now());
        let xid = m.xid();
        let Ok(kind) = m.message_type() else {
            // RFC 8415 §16 spirit: unknown messages are ignored.
            return;
        };
        let now = unix_now();
        match kind {
            MessageType::Connect => self.on_connect(m, xid),
            MessageType::ConnectReply => self.on_connect_reply(m),
            MessageType::State => match State6::parse(m) {
                Ok(s) => {
                    let start = self.local_time(s.start_time);
                    let out = self.machine.handle(state_event(&s, start, now));
                    self.after(out);
                }
                Err(e) => {
                    tracing::warn!(relationship = %self.cfg.name, error = %e, "bad STATE from partner");
                }
            },
            // CONTACT only proves the partner is alive (last_recv is set); POOLRESP needs
            // nothing: the shares are static.
            MessageType::Contact | MessageType::PoolResp => {}
            MessageType::Disconnect => {
                let why = Disconnect6::parse(m)
                    .ok()
                    .and_then(|d| d.status)
                    .map(|s| String::from_utf8_lossy(s.message).into_owned())
                    .unwrap_or_default();
                tracing::warn!(relationship = %self.cfg.name, message = %why, "DHCPv6 partner disconnected");
                self.link.drop_connection("partner sent DISCONNECT");
                self.connection_lost();
            }
            MessageType::BndUpd => self.on_bndupd(m, xid),
            MessageType::BndReply => self.on_bndreply(m, xid),
            MessageType::UpdReq => self.start_scan(xid, true),
            MessageType::UpdReqAll => self.start_scan(xid, false),
            MessageType::UpdDone => {
                let out = self.machine.handle(Event::UpdDoneReceived { now });
                self.after(out);
            }
            MessageType::PoolReq => self.send_header_only(MessageType::PoolResp, xid),
        }
    }

    fn on_connect(&mut self, m: Message<&[u8]>, xid: u32) {
        let c = match Connect6::parse(m) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(relationship = %self.cfg.name, error = %e, "bad CONNECT from partner");
                self.link.drop_connection("bad CONNECT");
                return;
            }
        };
        // RFC 8156 §6.1.2: the secondary checks the CONNECT and answers CONNECTREPLY.
        let rej: Option<(u16, &str)> = if self.role == Role::Primary {
            Some((status::UNSPEC_FAIL, "CONNECT sent to the primary"))
        } else if c
            .relationship
            .is_some_and(|n| n != self.cfg.name.as_bytes())
        {
            Some((status::UNSPEC_FAIL, "unknown relationship name"))
        } else if c.protocol_version.major != PROTOCOL_VERSION.major {
            Some((status::NOT_SUPPORTED, "protocol version not supported"))
        } else if self.skew.unsigned_abs() > 60 {
            Some((
                status::EXCESSIVE_TIME_SKEW,
                "clocks differ by more than 60 s",
            ))
        } else {
            None
        };
        let reply = match rej {
            Some((code, msg)) => ConnectReply6::reject(code, msg.as_bytes()),
            None => ConnectReply6::accept(self.params()),
        };
        if let Ok(n) = reply.emit(&mut self.buf, xid, Self::sent_time()) {
            self.send_buf(n);
        }
        if let Some((code, msg)) = rej {
            tracing::warn!(relationship = %self.cfg.name, code, message = msg, "refused DHCPv6 partner CONNECT");
            self.link.drop_connection(msg);
            return;
        }
        if c.mclt != self.cfg.mclt {
            tracing::warn!(relationship = %self.cfg.name, ours = self.cfg.mclt, theirs = c.mclt, "the partner's MCLT differs from ours");
        }
        self.peer_max_unacked = c.max_unacked.clamp(1, 65_535) as usize;
        self.connected();
    }

    fn on_connect_reply(&mut self, m: Message<&[u8]>) {
        let r = match ConnectReply6::parse(m) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(relationship = %self.cfg.name, error = %e, "bad CONNECTREPLY from partner");
                self.link.drop_connection("bad CONNECTREPLY");
                return;
            }
        };
        if !r.accepted() {
            let msg = r
                .status
                .map(|s| String::from_utf8_lossy(s.message).into_owned())
                .unwrap_or_default();
            tracing::warn!(relationship = %self.cfg.name, message = %msg, "partner refused our CONNECT");
            self.link.drop_connection("CONNECT refused");
            return;
        }
        self.peer_max_unacked = r.params.map_or(100, |p| p.max_unacked).clamp(1, 65_535) as usize;
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
        // was down, updates lost with it) goes out now: every worker streams its pending
        // records as plain updates (token 0), without waiting for an UPDREQ.
        for w in 0..self.ends.len() {
            let _ = self.ends[w].to.try_send(FromPartner6::Scan {
                token: 0,
                pending_only: true,
            });
        }
    }

    fn after(&mut self, out: Outcome) {
        if let Some(t) = out.transition {
            tracing::info!(
                relationship = %self.cfg.name,
                from = t.from.name(),
                to = t.to.name(),
                reason = t.reason,
                "DHCPv6 failover state change"
            );
            self.persist();
            self.publish();
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

    fn publish(&self) {
        let p = self.machine.policy(unix_now());
        self.view
            .publish(p.respond, p.serve_new && p.allocate_own, p.partner_free_now);
    }

    fn operator_partner_down(&mut self) -> Result<&'static str, String> {
        let out = self
            .machine
            .handle(Event::OperatorPartnerDown { now: unix_now() });
        let changed = out.transition.is_some();
        self.after(out);
        super::session::partner_down_answer(changed, &self.machine)
    }

    fn poll_workers(&mut self) {
        for w in 0..self.ends.len() {
            for _ in 0..4096 {
                let Ok(m) = self.ends[w].from.try_recv() else {
                    break;
                };
                match m {
                    ToPartner6::Update { lease, potential } => {
                        if lease.state == BindingState::Active {
                            self.machine.note_activity(unix_now());
                        }
                        self.hold_in_owner(w, &lease);
                        if self.handshake {
                            self.outq.push_back((lease, potential));
                        }
                    }
                    ToPartner6::Scanned {
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
                    ToPartner6::Applied { token, outcome } => self.on_applied(token, outcome),
                }
            }
        }
        self.scans.retain(|_, n| *n > 0);
    }

    /// Worker `w` changed `lease`, whose member may lie in another worker's partition (a
    /// binding that came from the partner): keep that worker's hold in step, so it neither
    /// allocates a live member nor keeps an ended one forever.
    fn hold_in_owner(&self, w: usize, lease: &Lease6) {
        let Some(o) = self.space.owner(lease.kind, lease.addr, lease.prefix_len) else {
            return;
        };
        if o == w {
            return;
        }
        let until = if lease.state.holds_address() {
            u32::MAX
        } else {
            // The worker's sweep ended it after the MCLT already, or the client released
            // it: the MCLT from now bounds both.
            unix_now().saturating_add(self.cfg.mclt)
        };
        let _ = self.ends[o].to.try_send(FromPartner6::Hold {
            lease: *lease,
            until,
        });
    }

    /// Write the BNDUPD of `lease` into `self.buf` (RFC 8156 §7.4).
    fn write_bndupd(&mut self, lease: &Lease6, potential: u32, xid: u32) -> Option<usize> {
        let now = unix_now();
        let key = lease.client.as_bytes();
        if key.first() != Some(&ClientKey::FORM_DUID) {
            return None;
        }
        let t = BindingTimes {
            now,
            start_time_of_state: if lease.cltt == 0 { now } else { lease.cltt },
            partner_lifetime: potential.max(lease.expires),
            expiration_time: lease.partner_expires.max(lease.expires),
        };
        let b = LeaseBinding::from_lease6(lease, &t);
        let cd = ClientData6::new(&key[1..], from_unix(now));
        BindingUpdate6::emit_client(&cd, [b], &mut self.buf, xid, from_unix(now)).ok()
    }

    fn pump(&mut self) {
        if !self.handshake {
            return;
        }
        let window = self.peer_max_unacked.max(1);
        // One clock reading per burst.
        let sent_at = Instant::now();
        while self.inflight.len() < window {
            let Some((lease, potential)) = self.outq.pop_front() else {
                break;
            };
            let xid = self.next_xid();
            let Some(n) = self.write_bndupd(&lease, potential, xid) else {
                continue;
            };
            if !self.send_buf(n) {
                self.outq.push_front((lease, potential));
                break;
            }
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            self.inflight.insert(
                xid,
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
            let out = self.machine.handle(Event::UpdDoneSent { now: unix_now() });
            self.after(out);
        }
    }

    fn on_bndreply(&mut self, m: Message<&[u8]>, xid: u32) {
        let Some(i) = self.inflight.remove(&xid) else {
            return;
        };
        // RFC 8156 §7.6: a status other than Success at the top, in an IA or in a binding
        // rejects it.
        let rejected: Option<u16> = match BindingReply6::parse(m) {
            Err(_) => Some(status::UNSPEC_FAIL),
            Ok(r) => {
                let bad =
                    |s: Option<StatusValue<'_>>| s.filter(|s| !s.is_success()).map(|s| s.code);
                bad(r.top_status()).or_else(|| match r.body {
                    BindingBody::Client(cd) => cd
                        .leases()
                        .flatten()
                        .find_map(|l| bad(l.status_code).or(bad(l.ia_status))),
                    BindingBody::Prefix(_) => None,
                })
            }
        };
        if let Some(code) = rejected {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(relationship = %self.cfg.name, addr = %i.lease.addr, code, "partner rejected a DHCPv6 binding update");
            return;
        }
        self.counters.acked.fetch_add(1, Ordering::Relaxed);
        let w = i.lease.client.shard(self.ends.len());
        let _ = self.ends[w].to.try_send(FromPartner6::Acked {
            kind: i.lease.kind,
            addr: i.lease.addr,
            client: i.lease.client,
            cltt: i.lease.cltt,
            potential: i.potential,
        });
    }

    /// Answer a BNDUPD of client `duid` with `leases` (RFC 8156 §7.5, §7.6).
    fn send_bndreply(&mut self, xid: u32, leases: &[Lease6], refused: Option<u16>) {
        let Some(first) = leases.first() else {
            return;
        };
        let key = first.client.as_bytes();
        let duid = key.get(1..).unwrap_or_default().to_vec();
        let mut cd = ClientData6::new(&duid, Self::sent_time());
        if let Some(code) = refused {
            cd.status = Some(StatusValue::new(code, b"binding update refused"));
        }
        let bindings = leases.iter().map(|l| {
            let mut b = LeaseBinding::new(l.kind, l.addr, l.prefix_len);
            b.iaid = l.iaid;
            b.partner_lifetime_sent =
                (l.partner_expires != 0).then(|| from_unix(l.partner_expires));
            b
        });
        if let Ok(n) =
            BindingReply6::emit_client(&cd, bindings, &mut self.buf, xid, Self::sent_time())
        {
            self.send_buf(n);
        }
    }

    fn on_bndupd(&mut self, m: Message<&[u8]>, xid: u32) {
        // RFC 8156 §6.1 (OPTION_F_MAX_UNACKED_BNDUPD): a partner sending more BNDUPDs ahead
        // of our BNDREPLYs than we allow would make us buffer without bound.
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
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let u = match BindingUpdate6::parse(m) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(relationship = %self.cfg.name, error = %e, "refused a DHCPv6 binding update");
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let BindingBody::Client(cd) = u.body else {
            // A delegable prefix bound to no client (POOLREQ pools): nothing to record.
            if let Ok(n) =
                (BindingReply6 { body: u.body }).emit(&mut self.buf, xid, Self::sent_time())
            {
                self.send_buf(n);
            }
            return;
        };
        let base = cd.base_time.unwrap_or_else(Self::sent_time);
        let mut leases = Vec::new();
        let mut refused = None;
        for b in cd.leases() {
            let Ok(b) = b else {
                refused = Some(status::MISSING_BINDING_INFORMATION);
                break;
            };
            let Some(pool) = self.space.pool_of(b.kind, b.addr, b.prefix_len) else {
                refused = Some(status::CONFIGURATION_CONFLICT);
                break;
            };
            let subnet = self
                .space
                .pools()
                .iter()
                .find(|p| p.id == pool)
                .map_or(0, |p| p.subnet_id);
            let Ok(mut l) = b.to_lease6(cd.duid, base, subnet) else {
                refused = Some(status::MISSING_BINDING_INFORMATION);
                break;
            };
            l.expires = self.adjust(l.expires);
            l.preferred_until = self.adjust(l.preferred_until);
            l.cltt = self.adjust(l.cltt);
            let lifetime = b.partner_lifetime.map_or(0, |t| self.local_time(t));
            l.partner_expires = lifetime.max(l.expires);
            l.update_pending = false;
            leases.push(l);
        }
        if refused.is_some() || leases.is_empty() {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            let code = refused.unwrap_or(status::MISSING_BINDING_INFORMATION);
            if leases.is_empty() {
                // Nothing to name: a reply with the client data's status alone.
                if let Ok(key) = ClientKey::from_duid(cd.duid) {
                    let stub = Lease6 {
                        kind: crate::lease::IaKind::Na,
                        addr: std::net::Ipv6Addr::UNSPECIFIED,
                        prefix_len: 128,
                        state: BindingState::Free,
                        client: key,
                        iaid: 0,
                        subnet_id: 0,
                        preferred_until: 0,
                        expires: 0,
                        cltt: 0,
                        partner_expires: 0,
                        update_pending: false,
                    };
                    self.send_bndreply(xid, &[stub], Some(code));
                }
            } else {
                self.send_bndreply(xid, &leases, Some(code));
            }
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        let n = self.ends.len();
        let now = unix_now();
        for l in &leases {
            // The partition owner of the member must not allocate it (pool::v6 "Ownership").
            let w = l.client.shard(n);
            if let Some(o) = self.space.owner(l.kind, l.addr, l.prefix_len)
                && o != w
            {
                // A live binding is held until an update ends it; an ended one for the MCLT
                // after its end (RFC 8156 §4.4), then the hold lapses.
                let until = if l.state.holds_address() {
                    u32::MAX
                } else {
                    l.expires.max(now).saturating_add(self.cfg.mclt)
                };
                let _ = self.ends[o]
                    .to
                    .try_send(FromPartner6::Hold { lease: *l, until });
            }
        }
        let mut sent = 0;
        for l in &leases {
            let w = l.client.shard(n);
            if self.ends[w]
                .to
                .try_send(FromPartner6::Apply { token, lease: *l })
                .is_ok()
            {
                sent += 1;
            }
        }
        if sent != leases.len() {
            // A worker is far behind: no BNDREPLY; the partner sends it again later.
            return;
        }
        self.applies.insert(
            token,
            Applying {
                xid,
                leases,
                waiting: sent,
                refused: None,
                not_durable: false,
            },
        );
    }

    fn on_applied(&mut self, token: u64, outcome: ApplyOutcome) {
        let Some(a) = self.applies.get_mut(&token) else {
            return;
        };
        match outcome {
            ApplyOutcome::Accepted => {}
            ApplyOutcome::Rejected(r) => {
                a.refused.get_or_insert(u16::from(r));
            }
            ApplyOutcome::NotDurable | ApplyOutcome::HeldElsewhere => a.not_durable = true,
        }
        a.waiting = a.waiting.saturating_sub(1);
        if a.waiting > 0 {
            return;
        }
        let Some(a) = self.applies.remove(&token) else {
            return;
        };
        if a.not_durable {
            return;
        }
        if let Some(code) = a.refused {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(relationship = %self.cfg.name, code, "DHCPv6 binding update conflicts with a local binding");
        }
        self.send_bndreply(a.xid, &a.leases, a.refused);
    }

    fn start_scan(&mut self, xid: u32, pending_only: bool) {
        let token = self.next_token;
        self.next_token += 1;
        self.scans.insert(token, self.ends.len());
        self.upddone_pending = Some((xid, token));
        for w in 0..self.ends.len() {
            let _ = self.ends[w].to.try_send(FromPartner6::Scan {
                token,
                pending_only,
            });
        }
        tracing::info!(relationship = %self.cfg.name, all = !pending_only, "DHCPv6 partner asked for updates");
    }
}

impl super::session::Driver for Partner6 {
    const TICK: Duration = Duration::from_millis(5);

    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Up { peer, tls } => {
                tracing::info!(relationship = %self.cfg.name, %peer, tls, "DHCPv6 partner connection up");
                self.handshake = false;
                self.last_recv = Instant::now();
                // RFC 8156 §6.1.1: the primary sends CONNECT.
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
                tracing::warn!(relationship = %self.cfg.name, reason = %reason, "DHCPv6 partner connection down");
                self.connection_lost();
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        if let Command::PartnerDown(reply) = cmd {
            let r = self.operator_partner_down();
            let _ = reply.try_send(r);
        }
    }

    fn tick(&mut self) {
        self.poll_workers();
        self.pump();
    }

    fn every_second(&mut self) {
        let now = unix_now();
        let out = self.machine.handle(Event::Tick { now });
        self.after(out);
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
                tracing::warn!(relationship = %self.cfg.name, "no message from the DHCPv6 partner within max-response-delay");
                self.link.drop_connection("max-response-delay exceeded");
                self.connection_lost();
            }
            super::session::Liveness::Contact => {
                let xid = self.next_xid();
                self.send_header_only(MessageType::Contact, xid);
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
            let d = Disconnect6 {
                status: Some(StatusValue::new(
                    status::SERVER_SHUTTING_DOWN,
                    b"server shutting down",
                )),
            };
            let xid = self.next_xid();
            if let Ok(n) = d.emit(&mut self.buf, xid, Self::sent_time()) {
                self.send_buf(n);
            }
        }
        self.persist();
        self.link.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rfc8156_state_maps_back_and_forth() {
        for v in 1u8..=10 {
            let s = ServerState::try_from(v).unwrap();
            assert_eq!(wire_state(machine_state(s)), Some(s));
        }
        assert_eq!(wire_state(State::Paused), None);
        assert_eq!(wire_state(State::Shutdown), None);
    }

    #[test]
    fn a_state_with_the_startup_flag_is_the_partners_previous_state() {
        let s = State6 {
            state: ServerState::Normal,
            flags: server_flags::STARTUP,
            start_time: 0,
            partner_down_time: None,
        };
        assert!(matches!(
            state_event(&s, 5, 9),
            Event::PartnerStartup {
                state: State::Normal,
                start_time: 5,
                now: 9
            }
        ));
        let s = State6 { flags: 0, ..s };
        assert!(matches!(
            state_event(&s, 5, 9),
            Event::PartnerState {
                state: State::Normal,
                ..
            }
        ));
    }
}
