//! The state machine of every simulated client, and the choice of which client does what
//! next: a weighted mix of operations (`dora=20,renew=80`), each started on a client in the
//! state it needs, followed through its request/reply steps to completion, refusal or
//! timeout. Pure logic: the driver sends what it is told and reports what comes back.
//!
//! Per client a [`Client`] record of 24 bytes: state, transaction id, the current
//! exchange's start and step timestamps (µs since the run began, wrapping), the lease
//! (IPv4 address, or index of the DHCPv6 address and prefix), and the server that granted it.

use std::collections::VecDeque;

use super::stats::{DropStage, Op, Stats, Step};
use super::unique::{LeaseKind, Uniqueness};

/// Where a client is (RFC 2131 §4.4 figure 5, RFC 8415 §18.2, simplified to what a load
/// generator follows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// No lease, nothing outstanding.
    Idle = 0,
    /// DISCOVER/SOLICIT sent, waiting for an OFFER/ADVERTISE.
    Selecting,
    /// REQUEST sent after an offer, waiting for ACK/REPLY.
    Requesting,
    /// Holds a lease, nothing outstanding.
    Bound,
    /// RENEW (v4: REQUEST with `ciaddr`, unicast) sent.
    Renewing,
    /// REBIND (v4: REQUEST with `ciaddr`, broadcast) sent.
    Rebinding,
    /// DHCPv6 RELEASE sent, waiting for its REPLY.
    Releasing,
    /// DHCPv6 DECLINE sent, waiting for its REPLY.
    Declining,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Selecting,
            2 => Self::Requesting,
            3 => Self::Bound,
            4 => Self::Renewing,
            5 => Self::Rebinding,
            6 => Self::Releasing,
            7 => Self::Declining,
            _ => Self::Idle,
        }
    }

    /// Whether a reply is awaited.
    #[must_use]
    pub fn waiting(self) -> bool {
        !matches!(self, Self::Idle | Self::Bound)
    }
}

/// The message the driver must send for a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Send {
    /// DHCPDISCOVER / SOLICIT.
    Discover,
    /// DHCPREQUEST (SELECTING) / REQUEST, to the server that offered.
    Select,
    /// DHCPREQUEST (RENEWING) / RENEW.
    Renew,
    /// DHCPREQUEST (REBINDING) / REBIND.
    Rebind,
    /// DHCPRELEASE / RELEASE.
    Release,
    /// DHCPDECLINE / DECLINE.
    Decline,
}

const HAVE_ADDR: u8 = 1;
const HAVE_PREFIX: u8 = 2;

/// One simulated client's state: 24 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Client {
    /// Transaction id of the current exchange.
    pub xid: u32,
    /// When the current exchange began (DORA: the DISCOVER), µs since the run began.
    pub t_start: u32,
    /// When the current step's request was sent.
    pub t_step: u32,
    /// The IPv4 address, or the index of the DHCPv6 address (offered or held).
    pub addr: u32,
    /// The index of the DHCPv6 delegated prefix (offered or held).
    pub prefix: u32,
    state: u8,
    /// Index of the server that offered or granted the lease (the driver's table).
    pub server: u8,
    op: u8,
    have: u8,
}

impl Client {
    /// Where the client is.
    #[must_use]
    pub fn state(&self) -> State {
        State::from_u8(self.state)
    }

    /// The operation under way (meaningful while [`State::waiting`]).
    #[must_use]
    pub fn op(&self) -> Op {
        Op::ALL[usize::from(self.op).min(Op::ALL.len() - 1)]
    }

    /// The address index it holds or was offered.
    #[must_use]
    pub fn address(&self) -> Option<u32> {
        (self.have & HAVE_ADDR != 0).then_some(self.addr)
    }

    /// The prefix index it holds or was offered.
    #[must_use]
    pub fn delegated_prefix(&self) -> Option<u32> {
        (self.have & HAVE_PREFIX != 0).then_some(self.prefix)
    }

    fn set(&mut self, state: State) {
        self.state = state as u8;
    }
}

/// Leases carried by a reply, as keys (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leases {
    /// The address.
    pub addr: Option<u32>,
    /// The delegated prefix.
    pub prefix: Option<u32>,
}

/// An error in the mix specification.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// An element is not `name=weight` with a known name and a number.
    #[error(
        "mix element {0:?}: expected NAME=WEIGHT with NAME one of dora, renew, rebind, release, decline"
    )]
    Element(String),
    /// Every weight is 0.
    #[error("the mix has no positive weight")]
    Empty,
}

/// A weighted mix of operations, picked by smooth weighted round robin (deterministic: the
/// same mix gives the same sequence, and every window of `total weight` picks holds each
/// operation exactly `weight` times).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    entries: Vec<(Op, i64, i64)>,
    total: i64,
}

impl Mix {
    /// Only `op`.
    #[must_use]
    pub fn only(op: Op) -> Self {
        Self {
            entries: vec![(op, 1, 0)],
            total: 1,
        }
    }

    /// Parses `renew=80,dora=20` (a bare name has weight 1).
    pub fn parse(text: &str) -> Result<Self, MixError> {
        let mut entries: Vec<(Op, i64, i64)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let op = Op::from_name(name.trim()).ok_or_else(|| MixError::Element(part.into()))?;
            let w: u32 = weight
                .trim()
                .parse()
                .map_err(|_| MixError::Element(part.into()))?;
            match entries.iter_mut().find(|e| e.0 == op) {
                Some(e) => e.1 += i64::from(w),
                None => entries.push((op, i64::from(w), 0)),
            }
        }
        entries.retain(|e| e.1 > 0);
        let total = entries.iter().map(|e| e.1).sum();
        if total == 0 {
            return Err(MixError::Empty);
        }
        Ok(Self { entries, total })
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Op {
        for e in &mut self.entries {
            e.2 += e.1;
        }
        // The highest current weight; the first on ties.
        let best = (0..self.entries.len())
            .max_by_key(|&i| (self.entries[i].2, std::cmp::Reverse(i)))
            .unwrap_or(0);
        self.entries[best].2 -= self.total;
        self.entries[best].0
    }

    /// Whether some operation needs a bound client.
    #[must_use]
    pub fn needs_bound(&self) -> bool {
        self.entries.iter().any(|e| e.0 != Op::Dora)
    }

    /// The mix as text, `dora=20,renew=80`.
    #[must_use]
    pub fn describe(&self) -> String {
        self.entries
            .iter()
            .map(|(op, w, _)| format!("{}={w}", op.name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How many clients a pick looks at before it gives up (counted in `no_eligible`).
const SCAN_LIMIT: u32 = 1024;

/// A request awaiting its reply: client, transaction, state it was sent in, deadline.
#[derive(Clone, Copy, Debug)]
struct Pending {
    client: u32,
    xid: u32,
    deadline: u32,
    state: State,
}

/// Whether wrapping timestamp `a` is at or after `b` (they are within 2^31 µs, 35 min).
fn reached(now: u32, deadline: u32) -> bool {
    now.wrapping_sub(deadline) < 1 << 31
}

/// The population's states, the mix, the timeouts, and the counters they feed.
pub struct Scenario {
    clients: Vec<Client>,
    mix: Mix,
    v6: bool,
    /// v4 RELEASE and DECLINE have no reply (RFC 2131 §4.4.4, §4.4.6).
    fire_and_forget: bool,
    dora_cursor: u32,
    bound_cursor: u32,
    pending: VecDeque<Pending>,
    timeout_us: u32,
    xid_counter: u32,
    bound: u32,
    /// The counters of the current period.
    pub stats: Stats,
    /// The uniqueness check.
    pub unique: Uniqueness,
}

impl Scenario {
    /// `clients` clients, all idle; `v6` selects DHCPv6 rules (24-bit transaction ids,
    /// replies to RELEASE and DECLINE); replies are awaited `timeout_us`.
    #[must_use]
    pub fn new(clients: u32, mix: Mix, v6: bool, timeout_us: u32) -> Self {
        Self {
            clients: vec![Client::default(); clients as usize],
            mix,
            v6,
            fire_and_forget: !v6,
            dora_cursor: 0,
            bound_cursor: 0,
            pending: VecDeque::new(),
            timeout_us: timeout_us.max(1),
            xid_counter: 0,
            bound: 0,
            stats: Stats::default(),
            // Tables grow as leases are granted; callers who know the size reserve it by
            // replacing this (see the binary).
            unique: Uniqueness::default(),
        }
    }

    /// The number of clients.
    #[must_use]
    pub fn len(&self) -> u32 {
        self.clients.len() as u32
    }

    /// Whether there are no clients.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Client `i`.
    #[must_use]
    pub fn client(&self, i: u32) -> &Client {
        &self.clients[i as usize]
    }

    /// Clients holding a lease (bound, or extending or giving it back).
    #[must_use]
    pub fn bound(&self) -> u32 {
        self.bound
    }

    /// Requests awaiting a reply.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of per-client state.
    #[must_use]
    pub fn bytes_per_client() -> usize {
        size_of::<Client>()
    }

    /// Replaces the mix.
    pub fn set_mix(&mut self, mix: Mix) {
        self.mix = mix;
    }

    /// The mix.
    #[must_use]
    pub fn mix(&self) -> &Mix {
        &self.mix
    }

    fn new_xid(&mut self) -> u32 {
        self.xid_counter = self.xid_counter.wrapping_add(1);
        let x = self.xid_counter.wrapping_mul(0x9E37_79B1);
        if self.v6 { x & 0x00ff_ffff } else { x }
    }

    /// Finds a client in `want` state from `cursor` on, at most [`SCAN_LIMIT`] looks.
    fn pick(&mut self, bound: bool) -> Option<u32> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let want = if bound { State::Bound } else { State::Idle };
        let cursor = if bound {
            &mut self.bound_cursor
        } else {
            &mut self.dora_cursor
        };
        for _ in 0..SCAN_LIMIT.min(n) {
            let i = *cursor;
            *cursor = if i + 1 >= n { 0 } else { i + 1 };
            if self.clients[i as usize].state() == want {
                return Some(i);
            }
        }
        None
    }

    /// Starts the mix's next operation on a client that can do it, at `now` (µs). Returns
    /// the client and the message to send, then report [`Self::sent`] or [`Self::unsent`].
    /// `None` when no client is in the needed state (counted in `no_eligible`).
    pub fn begin_next(&mut self, now: u32) -> Option<(u32, Send)> {
        let op = self.mix.next_op();
        let Some(i) = self.pick(op != Op::Dora) else {
            self.stats.no_eligible += 1;
            return None;
        };
        self.begin(i, op, now).map(|s| (i, s))
    }

    /// Starts `op` on client `i` if its state allows (Idle for DORA, Bound for the rest).
    pub fn begin(&mut self, i: u32, op: Op, now: u32) -> Option<Send> {
        let xid = self.new_xid();
        let c = &mut self.clients[i as usize];
        let (state, send) = match (c.state(), op) {
            (State::Idle, Op::Dora) => (State::Selecting, Send::Discover),
            (State::Bound, Op::Renew) => (State::Renewing, Send::Renew),
            (State::Bound, Op::Rebind) => (State::Rebinding, Send::Rebind),
            (State::Bound, Op::Release) => (State::Releasing, Send::Release),
            (State::Bound, Op::Decline) => (State::Declining, Send::Decline),
            _ => return None,
        };
        c.set(state);
        c.op = op as u8;
        c.xid = xid;
        c.t_start = now;
        c.t_step = now;
        self.stats.start(op);
        Some(send)
    }

    /// The request for client `i` is on the TX ring: start waiting for its reply (v4
    /// RELEASE and DECLINE, which have none, complete here).
    pub fn sent(&mut self, i: u32, now: u32) {
        let c = self.clients[i as usize];
        let state = c.state();
        if self.fire_and_forget && matches!(state, State::Releasing | State::Declining) {
            self.drop_lease(i);
            self.clients[i as usize].set(State::Idle);
            self.stats.complete(c.op());
            return;
        }
        self.pending.push_back(Pending {
            client: i,
            xid: c.xid,
            deadline: now.wrapping_add(self.timeout_us),
            state,
        });
    }

    /// The request for client `i` could not be queued: the exchange is lost at
    /// [`DropStage::TxFull`] and the client goes back to where it was.
    pub fn unsent(&mut self, i: u32) {
        self.unsent_at(i, DropStage::TxFull);
    }

    /// Like [`Self::unsent`], counting the loss at `stage` (a request that could not even be
    /// addressed, e.g. to a server whose hardware address is unknown, counts as unanswered).
    pub fn unsent_at(&mut self, i: u32, stage: DropStage) {
        self.stats.drop_at(stage);
        self.abandon(i);
    }

    /// An ADVERTISE for client `i`'s SOLICIT `xid` that lacks what the client asked for (a
    /// status such as `NoAddrsAvail`, RFC 8415 §21.13): the exchange ends at
    /// [`DropStage::Nak`] instead of waiting for the timeout.
    pub fn on_offer_refused(&mut self, i: u32, xid: u32) {
        match self.clients.get(i as usize) {
            Some(c) if c.state() == State::Selecting && c.xid == xid => {
                self.stats.drop_at(DropStage::Nak);
                self.abandon(i);
            }
            _ => self.stats.rx_unmatched += 1,
        }
    }

    /// Ends client `i`'s exchange without success.
    fn abandon(&mut self, i: u32) {
        let c = &mut self.clients[i as usize];
        match c.state() {
            State::Selecting | State::Requesting => {
                c.have = 0;
                c.set(State::Idle);
            }
            State::Renewing | State::Rebinding => c.set(State::Bound),
            State::Releasing | State::Declining => {
                self.drop_lease(i);
                self.clients[i as usize].set(State::Idle);
            }
            State::Idle | State::Bound => {}
        }
    }

    /// Forgets client `i`'s lease (uniqueness table and bound count).
    fn drop_lease(&mut self, i: u32) {
        let c = &mut self.clients[i as usize];
        let kind = LeaseKind::Address;
        if let Some(a) = c.address() {
            self.unique.unbind(kind, a, i);
        }
        if let Some(p) = c.delegated_prefix() {
            self.unique.unbind(LeaseKind::Prefix, p, i);
        }
        c.have = 0;
        self.bound = self.bound.saturating_sub(1);
    }

    /// An OFFER/ADVERTISE for client `i`, transaction `xid`, from server `server`, with
    /// `leases`. Returns `Some(Send::Select)` when the client takes it (the first offer of
    /// its current DISCOVER); the driver then sends the REQUEST and reports
    /// [`Self::sent`]. Anything else is counted as unmatched.
    pub fn on_offer(
        &mut self,
        i: u32,
        xid: u32,
        server: u8,
        leases: Leases,
        now: u32,
    ) -> Option<Send> {
        let new_xid = if self.v6 { Some(self.new_xid()) } else { None };
        let Some(c) = self.clients.get_mut(i as usize) else {
            self.stats.rx_unmatched += 1;
            return None;
        };
        if c.state() != State::Selecting || c.xid != xid {
            self.stats.rx_unmatched += 1;
            return None;
        }
        let offer_us = now.wrapping_sub(c.t_start);
        c.have = 0;
        if let Some(a) = leases.addr {
            c.addr = a;
            c.have |= HAVE_ADDR;
        }
        if let Some(p) = leases.prefix {
            c.prefix = p;
            c.have |= HAVE_PREFIX;
        }
        c.server = server;
        c.t_step = now;
        // RFC 2131 table 5: the REQUEST keeps the OFFER's xid; RFC 8415 §18.2.2: a REQUEST
        // is a new transaction.
        if let Some(x) = new_xid {
            c.xid = x;
        }
        c.set(State::Requesting);
        self.stats.latency(Step::Offer, u64::from(offer_us));
        Some(Send::Select)
    }

    /// An ACK/REPLY (`granted` true, with `leases`) or a NAK / REPLY without the asked
    /// leases (`granted` false) for client `i`, transaction `xid`, from server `server`.
    /// Returns whether it matched a waiting client.
    pub fn on_reply(
        &mut self,
        i: u32,
        xid: u32,
        server: u8,
        granted: bool,
        leases: Leases,
        now: u32,
    ) -> bool {
        let Some(c) = self.clients.get(i as usize).copied() else {
            self.stats.rx_unmatched += 1;
            return false;
        };
        let state = c.state();
        let expected = matches!(
            state,
            State::Requesting
                | State::Renewing
                | State::Rebinding
                | State::Releasing
                | State::Declining
        );
        if !expected || c.xid != xid {
            self.stats.rx_unmatched += 1;
            return false;
        }
        let step_us = u64::from(now.wrapping_sub(c.t_step));
        let op = c.op();
        if matches!(state, State::Releasing | State::Declining) {
            // RFC 8415 §18.2.7, §18.2.8: whatever the status, the client stops using the
            // leases once the server answered.
            self.drop_lease(i);
            self.clients[i as usize].set(State::Idle);
            self.stats.latency(
                if state == State::Releasing {
                    Step::Release
                } else {
                    Step::Decline
                },
                step_us,
            );
            self.stats.complete(op);
            return true;
        }
        if !granted {
            self.stats.drop_at(DropStage::Nak);
            if state == State::Requesting {
                self.clients[i as usize].have = 0;
            } else {
                self.drop_lease(i);
            }
            self.clients[i as usize].set(State::Idle);
            return true;
        }
        let was_bound = state != State::Requesting;
        // A renewal may move the lease; the old keys are released before the new are bound.
        if was_bound {
            let old = (c.address(), c.delegated_prefix());
            if old != (leases.addr, leases.prefix) {
                self.drop_lease(i);
                self.bound += 1;
            }
        } else {
            self.bound += 1;
        }
        let cm = &mut self.clients[i as usize];
        cm.have = 0;
        if let Some(a) = leases.addr {
            cm.addr = a;
            cm.have |= HAVE_ADDR;
        }
        if let Some(p) = leases.prefix {
            cm.prefix = p;
            cm.have |= HAVE_PREFIX;
        }
        cm.server = server;
        cm.set(State::Bound);
        if let Some(a) = leases.addr {
            self.unique.bind(LeaseKind::Address, a, i);
        }
        if let Some(p) = leases.prefix {
            self.unique.bind(LeaseKind::Prefix, p, i);
        }
        let step = match state {
            State::Requesting => {
                self.stats
                    .latency(Step::Dora, u64::from(now.wrapping_sub(c.t_start)));
                Step::Request
            }
            State::Renewing => Step::Renew,
            _ => Step::Rebind,
        };
        self.stats.latency(step, step_us);
        self.stats.complete(op);
        true
    }

    /// Ends every exchange whose reply is overdue at `now`, counting the loss at its stage:
    /// no OFFER/ADVERTISE for a DISCOVER/SOLICIT, no ACK/REPLY for the rest.
    pub fn expire(&mut self, now: u32) {
        while let Some(p) = self.pending.front().copied() {
            if !reached(now, p.deadline) {
                break;
            }
            self.pending.pop_front();
            let c = self.clients[p.client as usize];
            if c.xid != p.xid || c.state() != p.state {
                continue; // answered, or moved on to its next step
            }
            let stage = if p.state == State::Selecting {
                DropStage::NoOffer
            } else {
                DropStage::NoAck
            };
            self.stats.drop_at(stage);
            self.abandon(p.client);
        }
    }

    /// Ends every outstanding exchange now (end of a run), counting each as lost.
    pub fn expire_all(&mut self) {
        let last = self.pending.back().map(|p| p.deadline);
        if let Some(d) = last {
            self.expire(d);
        }
    }

    /// Takes the counters of the period that ends, leaving zeroed ones.
    pub fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u32 = 1_000_000;

    fn dora(s: &mut Scenario, i: u32, addr: u32, now: u32) {
        assert_eq!(s.begin(i, Op::Dora, now), Some(Send::Discover));
        s.sent(i, now);
        let xid = s.client(i).xid;
        assert_eq!(
            s.on_offer(
                i,
                xid,
                0,
                Leases {
                    addr: Some(addr),
                    prefix: None
                },
                now + 100
            ),
            Some(Send::Select)
        );
        s.sent(i, now + 100);
        let xid = s.client(i).xid;
        assert!(s.on_reply(
            i,
            xid,
            0,
            true,
            Leases {
                addr: Some(addr),
                prefix: None
            },
            now + 300
        ));
    }

    #[test]
    fn client_state_is_24_bytes() {
        assert_eq!(Scenario::bytes_per_client(), 24);
    }

    #[test]
    fn dora_then_renew_release_v4() {
        let mut s = Scenario::new(4, Mix::only(Op::Dora), false, T);
        dora(&mut s, 2, 0x0a00_0005, 10);
        assert_eq!(s.client(2).state(), State::Bound);
        assert_eq!(s.client(2).address(), Some(0x0a00_0005));
        assert_eq!(s.bound(), 1);
        assert_eq!(s.stats.completed[Op::Dora as usize], 1);
        assert_eq!(s.stats.histogram(Step::Offer).quantile(0.5), 100);
        assert_eq!(s.stats.histogram(Step::Request).quantile(0.5), 200);
        assert_eq!(s.stats.histogram(Step::Dora).quantile(0.5), 300);
        assert_eq!(s.unique.holder(LeaseKind::Address, 0x0a00_0005), Some(2));

        // A second DORA on a bound client is refused; a renew is accepted.
        assert_eq!(s.begin(2, Op::Dora, 500), None);
        assert_eq!(s.begin(2, Op::Renew, 500), Some(Send::Renew));
        s.sent(2, 500);
        // A reply with the wrong xid does not match.
        assert!(!s.on_reply(2, 12345, 0, true, Leases::default(), 600));
        assert_eq!(s.stats.rx_unmatched, 1);
        let xid = s.client(2).xid;
        assert!(s.on_reply(
            2,
            xid,
            0,
            true,
            Leases {
                addr: Some(0x0a00_0005),
                prefix: None
            },
            650
        ));
        assert_eq!(s.stats.histogram(Step::Renew).quantile(0.5), 150);
        assert_eq!(s.bound(), 1);

        // v4 RELEASE has no reply: complete at send.
        assert_eq!(s.begin(2, Op::Release, 700), Some(Send::Release));
        s.sent(2, 700);
        assert_eq!(s.client(2).state(), State::Idle);
        assert_eq!(s.bound(), 0);
        assert_eq!(s.unique.holder(LeaseKind::Address, 0x0a00_0005), None);
        assert_eq!(s.stats.completed[Op::Release as usize], 1);
        assert_eq!(
            s.outstanding(),
            3,
            "DISCOVER/REQUEST/RENEW entries left to expire"
        );
        s.expire(700 + 2 * T);
        assert_eq!(
            s.stats.total_drops(),
            0,
            "answered requests do not time out"
        );
    }

    #[test]
    fn timeouts_count_at_their_stage() {
        let mut s = Scenario::new(3, Mix::only(Op::Dora), false, T);
        // Client 0: no OFFER.
        s.begin(0, Op::Dora, 0);
        s.sent(0, 0);
        // Client 1: OFFER, then no ACK.
        s.begin(1, Op::Dora, 0);
        s.sent(1, 0);
        let xid = s.client(1).xid;
        s.on_offer(
            1,
            xid,
            0,
            Leases {
                addr: Some(9),
                prefix: None,
            },
            10,
        );
        s.sent(1, 10);
        s.expire(T - 1);
        assert_eq!(s.stats.total_drops(), 0, "not yet");
        s.expire(T + 10);
        assert_eq!(s.stats.drops[DropStage::NoOffer as usize], 1);
        assert_eq!(s.stats.drops[DropStage::NoAck as usize], 1);
        assert_eq!(s.client(0).state(), State::Idle);
        assert_eq!(s.client(1).state(), State::Idle);
        // A late ACK does not count.
        assert!(!s.on_reply(
            1,
            xid,
            0,
            true,
            Leases {
                addr: Some(9),
                prefix: None
            },
            T + 20
        ));
        assert_eq!(s.unique.held(), 0);

        // A renewal that times out leaves the client bound.
        dora(&mut s, 2, 77, 2 * T);
        s.begin(2, Op::Renew, 3 * T);
        s.sent(2, 3 * T);
        s.expire(5 * T);
        assert_eq!(s.client(2).state(), State::Bound);
        assert_eq!(s.stats.drops[DropStage::NoAck as usize], 2);
    }

    #[test]
    fn a_second_offer_is_ignored_and_nak_frees() {
        let mut s = Scenario::new(1, Mix::only(Op::Dora), false, T);
        s.begin(0, Op::Dora, 0);
        s.sent(0, 0);
        let xid = s.client(0).xid;
        let l = Leases {
            addr: Some(5),
            prefix: None,
        };
        assert!(s.on_offer(0, xid, 0, l, 1).is_some());
        // The failover partner's OFFER arrives second.
        assert!(
            s.on_offer(
                0,
                xid,
                1,
                Leases {
                    addr: Some(6),
                    prefix: None
                },
                2
            )
            .is_none()
        );
        assert_eq!(s.client(0).server, 0);
        s.sent(0, 2);
        assert!(s.on_reply(0, xid, 0, false, Leases::default(), 3));
        assert_eq!(s.stats.drops[DropStage::Nak as usize], 1);
        assert_eq!(s.client(0).state(), State::Idle);
        assert_eq!(s.bound(), 0);
    }

    #[test]
    fn unsent_requests_are_tx_drops_and_roll_back() {
        let mut s = Scenario::new(1, Mix::only(Op::Dora), false, T);
        s.begin(0, Op::Dora, 0);
        s.unsent(0);
        assert_eq!(s.client(0).state(), State::Idle);
        assert_eq!(s.stats.drops[DropStage::TxFull as usize], 1);
        dora(&mut s, 0, 4, 10);
        s.begin(0, Op::Rebind, 20);
        s.unsent(0);
        assert_eq!(s.client(0).state(), State::Bound);
    }

    #[test]
    fn v6_release_waits_for_its_reply_and_request_changes_xid() {
        let mut s = Scenario::new(2, Mix::only(Op::Dora), true, T);
        s.begin(1, Op::Dora, 0);
        s.sent(1, 0);
        let xid = s.client(1).xid;
        assert!(xid <= 0x00ff_ffff);
        let l = Leases {
            addr: Some(1),
            prefix: Some(2),
        };
        s.on_offer(1, xid, 0, l, 5);
        let xid2 = s.client(1).xid;
        assert_ne!(xid, xid2, "RFC 8415 §18.2.2: a new transaction");
        s.sent(1, 5);
        assert!(s.on_reply(1, xid2, 0, true, l, 9));
        assert_eq!(s.unique.holder(LeaseKind::Prefix, 2), Some(1));
        s.begin(1, Op::Release, 20);
        s.sent(1, 20);
        assert_eq!(s.client(1).state(), State::Releasing);
        let xid3 = s.client(1).xid;
        assert!(s.on_reply(1, xid3, 0, true, Leases::default(), 30));
        assert_eq!(s.client(1).state(), State::Idle);
        assert_eq!(s.unique.held(), 0);
        assert_eq!(s.stats.histogram(Step::Release).quantile(1.0), 10);
    }

    #[test]
    fn duplicate_grants_are_found_through_the_state_machine() {
        let mut s = Scenario::new(2, Mix::only(Op::Dora), false, T);
        dora(&mut s, 0, 42, 0);
        dora(&mut s, 1, 42, 10);
        assert_eq!(s.unique.duplicates(), 1);
    }

    #[test]
    fn mix_is_weighted_and_deterministic() {
        let mut m = Mix::parse("renew=80, dora=20").unwrap();
        assert!(m.needs_bound());
        let picks: Vec<Op> = (0..100).map(|_| m.next_op()).collect();
        assert_eq!(picks.iter().filter(|&&o| o == Op::Renew).count(), 80);
        assert_eq!(picks.iter().filter(|&&o| o == Op::Dora).count(), 20);
        // Spread out, not 80 renews then 20 doras.
        assert!(picks[..10].contains(&Op::Dora));
        let mut again = Mix::parse("renew=80,dora=20").unwrap();
        let picks2: Vec<Op> = (0..100).map(|_| again.next_op()).collect();
        assert_eq!(picks, picks2);
        assert!(Mix::parse("renew=0").is_err());
        assert!(Mix::parse("bogus=1").is_err());
        assert!(Mix::parse("dora=x").is_err());
        assert_eq!(Mix::parse("dora").unwrap().describe(), "dora=1");
        assert!(!Mix::parse("dora").unwrap().needs_bound());
    }

    #[test]
    fn begin_next_picks_eligible_clients() {
        let mut s = Scenario::new(3, Mix::parse("renew=1").unwrap(), false, T);
        assert_eq!(s.begin_next(0), None, "nobody bound yet");
        assert_eq!(s.stats.no_eligible, 1);
        dora(&mut s, 1, 7, 0);
        assert_eq!(s.begin_next(10), Some((1, Send::Renew)));
        s.set_mix(Mix::only(Op::Dora));
        let (a, _) = s.begin_next(20).unwrap();
        let (b, _) = s.begin_next(20).unwrap();
        assert_ne!(a, b);
        assert!(a != 1 && b != 1, "bound client 1 cannot start a DORA");
        assert_eq!(s.begin_next(20), None, "every client busy");
    }
}
