//! Model test: two failover servers (primary, secondary) driven by random schedules of DHCP
//! activity, message delivery, partitions, crashes and operator commands. Both servers use
//! the real [`Machine`], [`Policy`], [`grant_expiry`], [`apply_update`] and [`ack_effect`];
//! the test plays the partner threads (lazy BNDUPD/BNDACK, UPDREQ answers) and the clients.
//!
//! Invariant (the failover protocol's reason to exist, draft-12 §1, §5.2): no address is
//! held (unexpired) by two different clients, neither in the clients' own view nor across
//! the two servers' binding databases (live or crashed: a crashed server's stable storage
//! comes back).
//!
//! Schedules stay within what the protocol promises to survive: the operator declares the
//! partner down only when it is down (§9.4: "If one server is in PARTNER-DOWN state, the
//! other server MUST NOT be operating"), no safe period (auto partner-down of a live
//! partner is a documented risk, §10), and a server restarting while its partner is in
//! PARTNER-DOWN reaches it before its STARTUP time ends (§9.3.2 step 6 "Reasons to wait"; so
//! the partner neither crashes nor gets partitioned away meanwhile).
#![expect(
    clippy::many_single_char_names,
    reason = "a model: c client, i server, a address, r record, b binding, k choice"
)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::lease::BindingState as B;
use crate::wire::failover::ServerState;

const N_ADDR: usize = 16;
const N_CLIENT: u8 = 8;
const MCLT: u32 = 60;
const DESIRED: u32 = 120;

#[derive(Debug, Clone)]
struct Rec {
    state: B,
    client: Option<u8>,
    expires: u32,
    cltt: u32,
    sent_pot: u32,
    acked_pot: u32,
    recv_pot: u32,
    pending: bool,
    in_flight: bool,
}

impl Rec {
    fn binding(&self, addr: usize) -> Binding {
        Binding {
            addr: Ipv4Addr::new(10, 0, 0, addr as u8),
            state: self.state,
            client: self.client.map(|c| vec![1, c]),
            expires: self.expires,
            cltt: self.cltt,
            potential_expires: self.sent_pot,
        }
    }
}

#[derive(Debug, Clone)]
enum Msg {
    State(ServerState, u8, u32),
    Upd(usize, Binding),
    Ack(usize, Binding, Option<u8>),
    Req(UpdateRequest),
    Done,
}

struct Server {
    m: Machine,
    db: Vec<Rec>,
    up: bool,
    saved: Persisted,
    role: Role,
    buckets: Buckets,
}

struct World {
    now: u32,
    s: [Server; 2],
    link: bool,
    partitioned: bool,
    /// `q[i]`: messages on their way to server `i`.
    q: [VecDeque<Msg>; 2],
    /// Client `c`'s lease: (address, expiry).
    clients: Vec<Option<(usize, u32)>>,
    log: Vec<String>,
}

#[derive(Debug, Clone)]
enum Act {
    Advance(u32),
    Allocate(u8, usize, usize),
    Renew(u8, usize),
    Release(u8, usize),
    Deliver(usize, usize),
    Partition,
    Heal,
    Crash(usize),
    Restart(usize),
    OperatorPd(usize),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (1u32..60).prop_map(Act::Advance),
        4 => (0..N_CLIENT, 0..2usize, 0..N_ADDR).prop_map(|(c, s, k)| Act::Allocate(c, s, k)),
        3 => (0..N_CLIENT, 0..2usize).prop_map(|(c, s)| Act::Renew(c, s)),
        1 => (0..N_CLIENT, 0..2usize).prop_map(|(c, s)| Act::Release(c, s)),
        6 => (0..2usize, 1..10usize).prop_map(|(s, n)| Act::Deliver(s, n)),
        1 => Just(Act::Partition),
        1 => Just(Act::Heal),
        1 => (0..2usize).prop_map(Act::Crash),
        2 => (0..2usize).prop_map(Act::Restart),
        1 => (0..2usize).prop_map(Act::OperatorPd),
    ]
}

const T_START: u32 = 1000;

impl World {
    fn new() -> Self {
        let server = |role: Role| {
            let db = (0..N_ADDR)
                .map(|a| Rec {
                    // §5.4: the first half is the primary's, the rest given to the secondary.
                    state: if a < N_ADDR / 2 { B::Free } else { B::Backup },
                    client: None,
                    expires: 0,
                    cltt: 0,
                    sent_pot: 0,
                    acked_pot: 0,
                    recv_pot: 0,
                    pending: false,
                    in_flight: false,
                })
                .collect();
            let m = Machine::new(role, MCLT, None, None, T_START);
            let saved = m.persisted();
            Server {
                m,
                db,
                up: true,
                saved,
                role,
                buckets: Buckets::split(128, role),
            }
        };
        let mut w = Self {
            now: T_START,
            s: [server(Role::Primary), server(Role::Secondary)],
            link: false,
            partitioned: false,
            q: [VecDeque::new(), VecDeque::new()],
            clients: vec![None; usize::from(N_CLIENT)],
            log: Vec::new(),
        };
        w.connect();
        w
    }

    fn event(&mut self, i: usize, ev: Event) {
        let out = self.s[i].m.handle(ev);
        if let Some(t) = out.transition {
            self.log.push(format!(
                "t={} {}: {} -> {} ({})",
                t.at,
                self.s[i].role.name(),
                t.from,
                t.to,
                t.reason
            ));
        }
        self.s[i].saved = self.s[i].m.persisted();
        if self.link {
            if out.send_state {
                let (st, fl, t) = self.s[i].m.state_message();
                self.q[1 - i].push_back(Msg::State(st, fl, t));
            }
            if let Some(r) = out.request {
                self.q[1 - i].push_back(Msg::Req(r));
            }
        }
    }

    fn connect(&mut self) {
        if self.link || self.partitioned || !self.s[0].up || !self.s[1].up {
            return;
        }
        self.link = true;
        for i in 0..2 {
            for r in &mut self.s[i].db {
                r.in_flight = false;
            }
            self.event(i, Event::Connected { now: self.now });
        }
    }

    fn cut(&mut self) {
        if !self.link {
            return;
        }
        self.link = false;
        self.q = [VecDeque::new(), VecDeque::new()];
        for i in 0..2 {
            for r in &mut self.s[i].db {
                r.in_flight = false;
            }
            if self.s[i].up {
                self.event(i, Event::ConnectionLost { now: self.now });
            }
        }
    }

    fn deliver_one(&mut self, i: usize) {
        let Some(msg) = self.q[i].pop_front() else {
            return;
        };
        let now = self.now;
        let role = self.s[i].role;
        match msg {
            Msg::State(st, fl, t) => {
                if let Some(ev) = State::event_of_state_message(st, fl, t, now) {
                    self.event(i, ev);
                }
            }
            Msg::Upd(a, b) => {
                let local = self.s[i].db[a].binding(a);
                let d = apply_update(Some(&local), &b, now, self.s[i].m.state(), role);
                match d {
                    Decision::Accept => {
                        let r = &mut self.s[i].db[a];
                        r.state = state_after_ack(role, b.state);
                        r.client = b.client.as_ref().map(|c| c[1]);
                        r.expires = b.expires;
                        r.cltt = b.cltt;
                        r.recv_pot = b.potential_expires;
                        r.acked_pot = 0;
                        r.sent_pot = 0;
                        r.pending = false;
                        r.in_flight = false;
                        self.q[1 - i].push_back(Msg::Ack(a, b, None));
                    }
                    Decision::Reject { reason, keep_local } => {
                        if keep_local {
                            let r = &mut self.s[i].db[a];
                            r.pending = true;
                            r.in_flight = false;
                        }
                        self.q[1 - i].push_back(Msg::Ack(a, b, Some(reason)));
                    }
                }
            }
            Msg::Ack(a, b, reject) => {
                let r = &mut self.s[i].db[a];
                if reject.is_none() {
                    let e = ack_effect(&r.binding(a), &b, r.acked_pot, role);
                    r.state = e.state;
                    r.acked_pot = e.partner_expires;
                    r.pending = e.still_pending;
                } else {
                    r.pending = false;
                }
                r.in_flight = false;
            }
            Msg::Req(kind) => {
                for a in 0..N_ADDR {
                    let r = &mut self.s[i].db[a];
                    if kind == UpdateRequest::All || (r.pending && !r.in_flight) {
                        r.in_flight = true;
                        let b = r.binding(a);
                        self.q[1 - i].push_back(Msg::Upd(a, b));
                    }
                }
                self.q[1 - i].push_back(Msg::Done);
                self.event(i, Event::UpdDoneSent { now });
            }
            Msg::Done => self.event(i, Event::UpdDoneReceived { now }),
        }
    }

    /// Expiry sweep, lazy updates, timers.
    fn pump(&mut self) {
        let now = self.now;
        for i in 0..2 {
            if !self.s[i].up {
                continue;
            }
            let st = self.s[i].m.state();
            for r in &mut self.s[i].db {
                if r.state == B::Active && r.expires <= now {
                    r.state = state_after_expiry(self.s[i].role, st);
                    r.pending = true;
                    r.in_flight = false;
                }
            }
            self.event(i, Event::Tick { now });
            let st = self.s[i].m.state();
            let lazy = matches!(
                st,
                State::Normal | State::PartnerDown | State::ConflictDone | State::RecoverDone
            );
            if self.link && self.s[i].m.comm_ok() && lazy {
                for a in 0..N_ADDR {
                    let r = &mut self.s[i].db[a];
                    if r.pending && !r.in_flight {
                        r.in_flight = true;
                        let b = r.binding(a);
                        self.q[1 - i].push_back(Msg::Upd(a, b));
                    }
                }
            }
        }
    }

    fn allocate(&mut self, c: u8, i: usize, k: usize) {
        let now = self.now;
        if self.clients[usize::from(c)].is_some_and(|(_, e)| e > now) || !self.s[i].up {
            return;
        }
        let srv = &mut self.s[i];
        let pol = srv.m.policy(now);
        let mine = srv.buckets.answers(client_hash(None, &[c]), 0, 3);
        if !pol.answers(false, mine) {
            return;
        }
        let candidates: Vec<usize> = (0..N_ADDR)
            .filter(|&a| {
                let r = &srv.db[a];
                match Share::of(srv.role, r.state) {
                    Some(share) => pol.may_allocate(share, now),
                    None => pol.pd_start.is_some_and(|pd| {
                        matches!(r.state, B::Active | B::Expired | B::Released)
                            && r.expires <= now
                            && now
                                >= partner_down_reuse_at(
                                    r.expires.max(r.sent_pot).max(r.acked_pot).max(r.recv_pot),
                                    pd,
                                    MCLT,
                                )
                    }),
                }
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        // The k-th candidate: the schedule chooses which address (own or partner's share).
        let a = candidates[k % candidates.len()];
        let r = &mut srv.db[a];
        let exp = grant_expiry(now, DESIRED, 0, MCLT);
        *r = Rec {
            state: B::Active,
            client: Some(c),
            expires: exp,
            cltt: now,
            sent_pot: potential_expiry(now, DESIRED, exp),
            acked_pot: 0,
            recv_pot: 0,
            pending: true,
            in_flight: false,
        };
        srv.m.note_activity(now);
        self.clients[usize::from(c)] = Some((a, exp));
        self.log.push(format!(
            "t={now} {} gives {a} to c{c} until {exp}",
            srv.role.name()
        ));
    }

    fn renew(&mut self, c: u8, i: usize) {
        let now = self.now;
        let Some((a, e)) = self.clients[usize::from(c)] else {
            return;
        };
        if e <= now || !self.s[i].up {
            return;
        }
        let srv = &mut self.s[i];
        if !srv.m.policy(now).answers(true, true) {
            return;
        }
        let r = &mut srv.db[a];
        if r.state != B::Active || r.client != Some(c) || r.expires <= now {
            return;
        }
        let exp = grant_expiry(now, DESIRED, r.acked_pot.max(r.recv_pot), MCLT);
        r.expires = exp;
        r.cltt = now;
        r.sent_pot = r.sent_pot.max(potential_expiry(now, DESIRED, exp));
        r.pending = true;
        r.in_flight = false;
        srv.m.note_activity(now);
        self.clients[usize::from(c)] = Some((a, exp));
        self.log.push(format!(
            "t={now} {} renews {a} for c{c} until {exp}",
            srv.role.name()
        ));
    }

    fn release(&mut self, c: u8, i: usize) {
        let now = self.now;
        let Some((a, _)) = self.clients[usize::from(c)].take() else {
            return;
        };
        let srv = &mut self.s[i];
        if !srv.up || !srv.m.policy(now).respond {
            return;
        }
        let r = &mut srv.db[a];
        if r.state == B::Active && r.client == Some(c) {
            r.state = B::Released;
            r.cltt = now;
            r.pending = true;
            r.in_flight = false;
        }
    }

    fn step(&mut self, a: &Act) {
        match *a {
            Act::Advance(dt) => {
                // A server in STARTUP that is connected hears its partner promptly (TCP).
                if self.link && self.s.iter().any(|s| s.m.state() == State::Startup) {
                    while !self.q[0].is_empty() || !self.q[1].is_empty() {
                        self.deliver_one(0);
                        self.deliver_one(1);
                    }
                }
                self.now += dt;
            }
            Act::Allocate(c, i, k) => self.allocate(c, i, k),
            Act::Renew(c, i) => self.renew(c, i),
            Act::Release(c, i) => self.release(c, i),
            Act::Deliver(i, n) => {
                for _ in 0..n {
                    self.deliver_one(i);
                }
            }
            Act::Partition => {
                let risky = self
                    .s
                    .iter()
                    .any(|s| matches!(s.m.state(), State::PartnerDown | State::Startup) || !s.up);
                if !risky {
                    self.partitioned = true;
                    self.cut();
                }
            }
            Act::Heal => {
                self.partitioned = false;
                self.connect();
            }
            Act::Crash(i) => {
                // A partner in STARTUP must hear from us (see the module documentation).
                let partner_starting =
                    self.s[1 - i].up && self.s[1 - i].m.state() == State::Startup;
                if self.s[i].up && !partner_starting {
                    self.log
                        .push(format!("t={} {} crashes", self.now, self.s[i].role.name()));
                    self.cut();
                    self.s[i].up = false;
                }
            }
            Act::Restart(i) => {
                if !self.s[i].up && !self.partitioned {
                    let srv = &mut self.s[i];
                    let mut m = Machine::new(srv.role, MCLT, None, Some(&srv.saved), self.now);
                    // The newest grant in the lease store bounds the last operation.
                    let newest = srv.db.iter().map(|r| r.cltt).max().unwrap_or(0);
                    m.note_prior_activity(newest);
                    srv.m = m;
                    srv.up = true;
                    self.log
                        .push(format!("t={} {} restarts", self.now, srv.role.name()));
                    self.connect();
                }
            }
            Act::OperatorPd(i) => {
                if self.s[i].up && !self.s[1 - i].up {
                    self.event(i, Event::OperatorPartnerDown { now: self.now });
                }
            }
        }
        self.connect();
        self.pump();
    }

    fn check(&self) -> Result<(), String> {
        let now = self.now;
        for a in 0..N_ADDR {
            let holders: Vec<u8> = (0..N_CLIENT)
                .filter(|&c| self.clients[usize::from(c)].is_some_and(|(x, e)| x == a && e > now))
                .collect();
            if holders.len() > 1 {
                return Err(format!("t={now}: address {a} held by clients {holders:?}"));
            }
            let mut bound: Vec<u8> = self
                .s
                .iter()
                .filter_map(|s| {
                    let r = &s.db[a];
                    (r.state == B::Active && r.expires > now).then_some(r.client?)
                })
                .collect();
            bound.dedup();
            if bound.len() > 1 {
                return Err(format!(
                    "t={now}: address {a} bound to {bound:?} in the servers' views"
                ));
            }
        }
        Ok(())
    }
}

fn run(acts: &[Act]) -> Result<(), TestCaseError> {
    let mut w = World::new();
    for a in acts {
        w.log.push(format!("t={} {a:?}", w.now));
        w.step(a);
        if let Err(e) = w.check() {
            let tail = w.log[w.log.len().saturating_sub(60)..].join("\n");
            return Err(TestCaseError::fail(format!("{e}\n{tail}")));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn no_address_bound_to_two_clients(acts in prop::collection::vec(act(), 1..120)) {
        run(&acts)?;
    }
}

/// A deterministic walk through the main paths, asserting the states reached.
#[test]
fn scripted_failover_cycle() {
    let mut w = World::new();
    let deliver_all = |w: &mut World| {
        for _ in 0..50 {
            w.step(&Act::Deliver(0, 10));
            w.step(&Act::Deliver(1, 10));
        }
    };
    // Both fresh: RECOVER → UPDREQALL both ways → RECOVER-DONE → NORMAL.
    deliver_all(&mut w);
    assert_eq!(w.s[0].m.state(), State::Normal, "{:#?}", w.log);
    assert_eq!(w.s[1].m.state(), State::Normal);
    // Allocate on both (load balanced: try every client on both servers).
    for c in 0..N_CLIENT {
        w.step(&Act::Allocate(c, 0, 0));
        w.step(&Act::Allocate(c, 1, 0));
    }
    assert!(
        w.clients.iter().all(Option::is_some),
        "every client served once"
    );
    deliver_all(&mut w);
    // Partition: both COMMUNICATIONS-INTERRUPTED.
    w.step(&Act::Partition);
    assert_eq!(w.s[0].m.state(), State::CommunicationsInterrupted);
    assert_eq!(w.s[1].m.state(), State::CommunicationsInterrupted);
    w.step(&Act::Heal);
    deliver_all(&mut w);
    assert_eq!(w.s[0].m.state(), State::Normal);
    assert_eq!(w.s[1].m.state(), State::Normal);
    // Secondary crashes, operator declares it down, MCLT passes.
    w.step(&Act::Crash(1));
    w.step(&Act::Advance(1));
    w.step(&Act::OperatorPd(0));
    assert_eq!(w.s[0].m.state(), State::PartnerDown);
    for _ in 0..10 {
        w.step(&Act::Advance(39));
    }
    w.check().unwrap();
    // Secondary returns: RECOVER, RECOVER-WAIT for the MCLT, then both NORMAL.
    w.step(&Act::Restart(1));
    deliver_all(&mut w);
    assert_eq!(w.s[1].m.state(), State::RecoverWait, "{:#?}", w.log);
    w.step(&Act::Advance(MCLT));
    deliver_all(&mut w);
    assert_eq!(w.s[0].m.state(), State::Normal, "{:#?}", w.log);
    assert_eq!(w.s[1].m.state(), State::Normal);
    w.check().unwrap();
}
