//! Unit tests of the DHCPv6 engine: one test per protocol rule, each citing its RFC section,
//! plus a property test of the allocation invariants across two shards.
//!
//! Client messages are built with the crate's own [`ReplyWriter`] (it writes any non-relay
//! message type) and RELAY-FORW headers by hand, parsed by the engine exactly as the I/O path
//! hands them over, and replies are decoded with the v6 codec's views.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;

use proptest::prelude::*;

use super::{
    Engine6, FailoverView6, Ingress6, Verdict6, encode_domain_list, load_or_create_server_duid,
};
use crate::config::parse;
use crate::engine::build_v6;
use crate::lease::{BindingState, ClientKey, IaKind, Lease6};
use crate::pool::v6::{Pool6Kind, Shard6, Space6};
use crate::wire::v6::{
    Ia, IaAddr, IaPrefix, Message, MessageType, OptionIter, RelayMessage, ReplyWriter, StatusCode,
    StatusOption, client_duid_fast, find_option, opt,
};

// ---------------------------------------------------------------------------------------
// Fixture

const ETH1: u32 = 2;
const T0: u32 = 1_000_000;
const HOLD: u32 = 30;
const PROBATION: u32 = 600;
const SERVER_DUID: &[u8] = &[0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const OTHER_DUID: &[u8] = &[0, 4, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
const RESERVED_DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0xaa];
const MULTICAST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

/// Subnet 1 (`2001:db8:1::/64` on eth1): 64 addresses, 256 /56 prefixes excluding subnet ID ff,
/// rapid commit, stateless options, a reservation. Subnet 2 (Interface-Id "port-7"): 4
/// addresses, 4 /64 prefixes. Subnet 3 (`2001:db8:3::/64`, by link-address): 16 addresses.
const CONFIG: &str = r#"
[server]
interfaces = ["eth1"]
offer-hold-secs = 30
decline-probation-secs = 600

[[subnet6]]
id = 1
prefix = "2001:db8:1::/64"
interface = "eth1"
rapid-commit = true
dns-servers = ["2001:db8::53"]
domain-search = ["example.net"]
sol-max-rt = 600
information-refresh-time = 3600

[[subnet6.pool]]
range = "2001:db8:1::100-2001:db8:1::13f"

[[subnet6.pd-pool]]
prefix = "2001:db8:8000::/48"
delegated-len = 56
excluded-prefix = "2001:db8:8000:ff::/64"

[[subnet6.reservation]]
duid = "00:03:00:01:02:00:00:00:00:aa"
address = "2001:db8:1::10"
prefix = "2001:db8:f000::/56"

[[subnet6.option]]
code = 31
ips = ["2001:db8::123"]

[[subnet6]]
id = 2
prefix = "2001:db8:2::/64"
interface-id = "port-7"
preferred-lifetime = 1000
valid-lifetime = 2000
renew-time = 400
rebind-time = 700

[[subnet6.pool]]
range = "2001:db8:2::100-2001:db8:2::103"

[[subnet6.pd-pool]]
prefix = "2001:db8:9000::/62"
delegated-len = 64

[[subnet6]]
id = 3
prefix = "2001:db8:3::/64"

[[subnet6.pool]]
range = "2001:db8:3::100-2001:db8:3::10f"
"#;

struct Fx {
    engine: Engine6,
    shards: Vec<Shard6>,
    fo: FailoverView6,
}

impl Fx {
    fn new(shards: usize) -> Self {
        Self::with(CONFIG, shards)
    }

    fn with(text: &str, shards: usize) -> Self {
        let config = parse(text, "v6.toml").unwrap_or_else(|e| panic!("{e}"));
        let (mut engine, pools, reserved) = build_v6(&config, SERVER_DUID.to_vec());
        engine.bind_interface("eth1", ETH1);
        let space = Arc::new(Space6::new(&pools, shards, &reserved).expect("valid pools"));
        let shards = (0..shards)
            .map(|i| Shard6::new(i, shards, Arc::clone(&space)))
            .collect();
        Self {
            engine,
            shards,
            fo: FailoverView6::STANDALONE,
        }
    }

    /// Hand `datagram` to the engine with the shard the dispatcher would pick (by DUID).
    fn send_at(&mut self, datagram: &[u8], ingress: &Ingress6, now: u32) -> Out {
        let n = self.shards.len();
        let w = client_duid_fast(datagram)
            .ok()
            .flatten()
            .and_then(|d| ClientKey::from_duid(d).ok())
            .map_or(0, |k| k.shard(n));
        let mut buf = [0u8; 1500];
        let mut changes = Vec::new();
        let verdict = self.engine.handle_fo(
            datagram,
            ingress,
            now,
            &mut self.shards[w],
            &self.fo,
            &mut buf,
            &mut changes,
        );
        let reply = match verdict {
            Verdict6::Reply { len, .. } => Some(Reply::decode(&buf[..len])),
            _ => None,
        };
        Out {
            verdict,
            reply,
            changes,
        }
    }

    fn direct(&mut self, m: &Msg, now: u32) -> Out {
        self.send_at(&m.build(), &direct_ingress(), now)
    }

    fn lease(&self, kind: IaKind, a: Ipv6Addr) -> Option<Lease6> {
        self.shards.iter().find_map(|s| s.get(kind, a))
    }

    fn reclaim(&mut self, now: u32) {
        for s in &mut self.shards {
            s.reclaim(now, 1 << 16);
        }
    }
}

fn direct_ingress() -> Ingress6 {
    Ingress6 {
        ifindex: ETH1,
        src: SocketAddrV6::new(ip("fe80::1"), 546, 0, 0),
        dst: MULTICAST,
    }
}

fn relay_ingress() -> Ingress6 {
    Ingress6 {
        ifindex: 9,
        src: SocketAddrV6::new(ip("2001:db8:ffff::1"), 547, 0, 0),
        dst: ip("2001:db8::1"),
    }
}

/// What one datagram produced.
#[derive(Debug)]
struct Out {
    verdict: Verdict6,
    reply: Option<Reply>,
    changes: Vec<Lease6>,
}

impl Out {
    #[track_caller]
    fn reply(&self) -> &Reply {
        self.reply
            .as_ref()
            .unwrap_or_else(|| panic!("expected a reply, got {:?}", self.verdict))
    }

    fn durable(&self) -> bool {
        matches!(self.verdict, Verdict6::Reply { durable: true, .. })
    }

    fn dest(&self) -> Option<SocketAddrV6> {
        match self.verdict {
            Verdict6::Reply { dest, .. } => Some(dest),
            _ => None,
        }
    }
}

/// A client message to build.
#[derive(Debug, Clone)]
struct Msg {
    kind: MessageType,
    xid: u32,
    duid: Option<Vec<u8>>,
    server: Option<Vec<u8>>,
    ia_na: Vec<(u32, Vec<Ipv6Addr>)>,
    ia_pd: Vec<(u32, Vec<(Ipv6Addr, u8)>)>,
    oro: Vec<u16>,
    rapid: bool,
}

fn duid(n: u16) -> Vec<u8> {
    let b = n.to_be_bytes();
    vec![0, 3, 0, 1, 0x02, 0, 0, 0, b[0], b[1]]
}

impl Msg {
    fn new(kind: MessageType, client: &[u8]) -> Self {
        Self {
            kind,
            xid: 0x00ab_cdef,
            duid: Some(client.to_vec()),
            server: None,
            ia_na: Vec::new(),
            ia_pd: Vec::new(),
            oro: Vec::new(),
            rapid: false,
        }
    }

    fn na(mut self, iaid: u32, addrs: &[Ipv6Addr]) -> Self {
        self.ia_na.push((iaid, addrs.to_vec()));
        self
    }

    fn pd(mut self, iaid: u32, prefixes: &[(Ipv6Addr, u8)]) -> Self {
        self.ia_pd.push((iaid, prefixes.to_vec()));
        self
    }

    fn server(mut self, duid: &[u8]) -> Self {
        self.server = Some(duid.to_vec());
        self
    }

    fn ours(self) -> Self {
        self.server(SERVER_DUID)
    }

    fn oro(mut self, codes: &[u16]) -> Self {
        self.oro = codes.to_vec();
        self
    }

    fn rapid(mut self) -> Self {
        self.rapid = true;
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut buf = [0u8; 1500];
        let mut w = ReplyWriter::new_message(&mut buf, self.kind, self.xid).expect("header");
        if let Some(d) = &self.duid {
            w.option(opt::CLIENTID, d).expect("room");
        }
        if let Some(s) = &self.server {
            w.option(opt::SERVERID, s).expect("room");
        }
        if !self.oro.is_empty() {
            let v: Vec<u8> = self.oro.iter().flat_map(|c| c.to_be_bytes()).collect();
            w.option(opt::ORO, &v).expect("room");
        }
        if self.rapid {
            w.option(opt::RAPID_COMMIT, &[]).expect("room");
        }
        for (iaid, addrs) in &self.ia_na {
            w.ia_na(*iaid, 0, 0, |w| {
                for a in addrs {
                    w.ia_addr(*a, 0, 0, |_| Ok(()))?;
                }
                Ok(())
            })
            .expect("room");
        }
        for (iaid, prefixes) in &self.ia_pd {
            w.ia_pd(*iaid, 0, 0, |w| {
                for (p, l) in prefixes {
                    w.ia_prefix(*p, *l, 0, 0, |_| Ok(()))?;
                }
                Ok(())
            })
            .expect("room");
        }
        let n = w.finish();
        buf[..n].to_vec()
    }
}

/// Wrap `inner` in a RELAY-FORW (RFC 8415 §9).
fn relay_forw(
    inner: &[u8],
    hop: u8,
    link: Ipv6Addr,
    peer: Ipv6Addr,
    iid: Option<&[u8]>,
) -> Vec<u8> {
    let mut m = vec![12, hop];
    m.extend_from_slice(&link.octets());
    m.extend_from_slice(&peer.octets());
    if let Some(id) = iid {
        m.extend_from_slice(&opt::INTERFACE_ID.to_be_bytes());
        m.extend_from_slice(&(id.len() as u16).to_be_bytes());
        m.extend_from_slice(id);
    }
    m.extend_from_slice(&opt::RELAY_MSG.to_be_bytes());
    m.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    m.extend_from_slice(inner);
    m
}

/// One address or prefix of a decoded IA.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ItemR {
    addr: Ipv6Addr,
    len: u8,
    preferred: u32,
    valid: u32,
    exclude: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct IaR {
    kind: IaKind,
    iaid: u32,
    t1: u32,
    t2: u32,
    items: Vec<ItemR>,
    status: Option<u16>,
}

/// A decoded reply: relay levels (outermost first) and the inner message.
#[derive(Debug, Clone)]
struct Reply {
    relays: Vec<(Ipv6Addr, Ipv6Addr, Option<Vec<u8>>)>,
    kind: MessageType,
    xid: u32,
    codes: Vec<u16>,
    opts: HashMap<u16, Vec<u8>>,
    ias: Vec<IaR>,
    status: Option<u16>,
}

fn status_of(options: &[u8]) -> Option<u16> {
    find_option(options, opt::STATUS_CODE)
        .expect("well-formed")
        .map(|v| StatusOption::new(v).expect("status").code())
}

impl Reply {
    fn decode(bytes: &[u8]) -> Self {
        let mut relays = Vec::new();
        let mut inner = bytes;
        while inner[0] == MessageType::RelayRepl as u8 {
            let r = RelayMessage::new_checked(inner).expect("relay-repl");
            let iid = find_option(r.options(), opt::INTERFACE_ID)
                .expect("well-formed")
                .map(<[u8]>::to_vec);
            relays.push((r.link_address(), r.peer_address(), iid));
            inner = find_option(r.options(), opt::RELAY_MSG)
                .expect("well-formed")
                .expect("relay-msg");
            // Re-borrow from `bytes`: `r` only lives in this iteration.
            let start = inner.as_ptr() as usize - bytes.as_ptr() as usize;
            inner = &bytes[start..start + inner.len()];
        }
        let m = Message::new_checked(inner).expect("message");
        let mut opts = HashMap::new();
        let mut codes = Vec::new();
        let mut ias = Vec::new();
        for item in m.option_iter() {
            let (code, v) = item.expect("well-formed reply");
            codes.push(code);
            if code == opt::IA_NA || code == opt::IA_PD {
                let ia = Ia::new(code, v).expect("ia");
                let mut items = Vec::new();
                for sub in ia.option_iter() {
                    let (c, sv) = sub.expect("well-formed ia");
                    if c == opt::IAADDR {
                        let a = IaAddr::new(sv).expect("iaaddr");
                        items.push(ItemR {
                            addr: a.address(),
                            len: 128,
                            preferred: a.preferred(),
                            valid: a.valid(),
                            exclude: None,
                        });
                    } else if c == opt::IAPREFIX {
                        let p = IaPrefix::new(sv).expect("iaprefix");
                        items.push(ItemR {
                            addr: p.prefix(),
                            len: p.prefix_len(),
                            preferred: p.preferred(),
                            valid: p.valid(),
                            exclude: find_option(p.options(), opt::PD_EXCLUDE)
                                .expect("well-formed")
                                .map(<[u8]>::to_vec),
                        });
                    }
                }
                ias.push(IaR {
                    kind: if code == opt::IA_NA {
                        IaKind::Na
                    } else {
                        IaKind::Pd
                    },
                    iaid: ia.iaid(),
                    t1: ia.t1(),
                    t2: ia.t2(),
                    items,
                    status: status_of(ia.options()),
                });
            } else {
                opts.insert(code, v.to_vec());
            }
        }
        assert!(OptionIter::new(m.options()).all(|i| i.is_ok()));
        Self {
            relays,
            kind: m.message_type().expect("known type"),
            xid: m.xid(),
            codes,
            status: status_of(m.options()),
            opts,
            ias,
        }
    }

    #[track_caller]
    fn ia(&self, kind: IaKind, iaid: u32) -> &IaR {
        self.ias
            .iter()
            .find(|i| i.kind == kind && i.iaid == iaid)
            .unwrap_or_else(|| panic!("no {kind:?} IA {iaid} in {self:#?}"))
    }

    #[track_caller]
    fn one(&self, kind: IaKind, iaid: u32) -> Ipv6Addr {
        let ia = self.ia(kind, iaid);
        assert_eq!(ia.status, None, "{ia:?}");
        assert_eq!(ia.items.len(), 1, "{ia:?}");
        ia.items[0].addr
    }
}

fn in_range(a: Ipv6Addr, lo: &str, hi: &str) -> bool {
    ip(lo) <= a && a <= ip(hi)
}

/// SOLICIT, then REQUEST what was advertised: the bound address of `IA_NA` 1.
fn bind(fx: &mut Fx, client: &[u8], now: u32) -> Ipv6Addr {
    let adv = fx.direct(&Msg::new(MessageType::Solicit, client).na(1, &[]), now);
    let a = adv.reply().one(IaKind::Na, 1);
    let rep = fx.direct(
        &Msg::new(MessageType::Request, client).ours().na(1, &[a]),
        now,
    );
    assert_eq!(rep.reply().one(IaKind::Na, 1), a);
    a
}

// ---------------------------------------------------------------------------------------
// SOLICIT / ADVERTISE / REQUEST

#[test]
fn solicit_is_advertised_and_held() {
    // RFC 8415 §18.3.1: ADVERTISE with SERVERID, CLIENTID and the IA's address; not durable.
    let mut fx = Fx::new(2);
    let c = duid(1);
    let out = fx.direct(&Msg::new(MessageType::Solicit, &c).na(7, &[]), T0);
    let r = out.reply();
    assert_eq!(r.kind, MessageType::Advertise);
    assert_eq!(r.xid, 0x00ab_cdef);
    assert_eq!(r.opts[&opt::SERVERID], SERVER_DUID);
    assert_eq!(r.opts[&opt::CLIENTID], c);
    assert!(r.relays.is_empty());
    let ia = r.ia(IaKind::Na, 7);
    assert_eq!((ia.t1, ia.t2), (1500, 2400));
    assert_eq!((ia.items[0].preferred, ia.items[0].valid), (3000, 4000));
    let a = ia.items[0].addr;
    assert!(in_range(a, "2001:db8:1::100", "2001:db8:1::13f"), "{a}");
    assert!(!out.durable() && out.changes.is_empty());
    // A direct client's reply goes to its link-local source, scoped to the interface.
    assert_eq!(
        out.dest(),
        Some(SocketAddrV6::new(ip("fe80::1"), 546, 0, ETH1))
    );
    // Held: the same client gets it again, no lease record yet.
    let again = fx.direct(&Msg::new(MessageType::Solicit, &c).na(7, &[]), T0 + 1);
    assert_eq!(again.reply().one(IaKind::Na, 7), a);
    assert_eq!(fx.lease(IaKind::Na, a), None);
    // Another client is advertised another address.
    let other = fx.direct(&Msg::new(MessageType::Solicit, &duid(2)).na(7, &[]), T0);
    assert_ne!(other.reply().one(IaKind::Na, 7), a);
}

#[test]
fn request_binds_durably() {
    // RFC 8415 §18.3.2: REPLY with the bound lease; recorded before the reply leaves.
    let mut fx = Fx::new(2);
    let c = duid(1);
    let adv = fx.direct(&Msg::new(MessageType::Solicit, &c).na(1, &[]), T0);
    let a = adv.reply().one(IaKind::Na, 1);
    let out = fx.direct(
        &Msg::new(MessageType::Request, &c).ours().na(1, &[a]),
        T0 + 2,
    );
    let r = out.reply();
    assert_eq!(r.kind, MessageType::Reply);
    assert_eq!(r.one(IaKind::Na, 1), a);
    assert!(out.durable());
    assert_eq!(out.changes.len(), 1);
    let l = out.changes[0];
    assert_eq!(
        (l.state, l.addr, l.iaid, l.subnet_id),
        (BindingState::Active, a, 1, 1)
    );
    assert_eq!(
        (l.preferred_until, l.expires, l.cltt),
        (T0 + 3002, T0 + 4002, T0 + 2)
    );
    assert_eq!(l.client, ClientKey::from_duid(&c).unwrap());
    assert_eq!(fx.lease(IaKind::Na, a), Some(l));
}

#[test]
fn rapid_commit_replies_at_once_when_allowed() {
    // RFC 8415 §18.3.1: Rapid Commit → REPLY with RAPID_COMMIT, bound and durable.
    let mut fx = Fx::new(2);
    let out = fx.direct(
        &Msg::new(MessageType::Solicit, &duid(3)).rapid().na(1, &[]),
        T0,
    );
    let r = out.reply();
    assert_eq!(r.kind, MessageType::Reply);
    assert!(r.opts.contains_key(&opt::RAPID_COMMIT));
    let a = r.one(IaKind::Na, 1);
    assert!(out.durable());
    assert_eq!(
        fx.lease(IaKind::Na, a).map(|l| l.state),
        Some(BindingState::Active)
    );
    // Subnet 2 does not allow it: ADVERTISE without RAPID_COMMIT.
    let m = Msg::new(MessageType::Solicit, &duid(3)).rapid().na(1, &[]);
    let out = fx.send_at(
        &relay_forw(
            &m.build(),
            0,
            Ipv6Addr::UNSPECIFIED,
            ip("fe80::9"),
            Some(b"port-7"),
        ),
        &relay_ingress(),
        T0,
    );
    assert_eq!(out.reply().kind, MessageType::Advertise);
    assert!(!out.reply().opts.contains_key(&opt::RAPID_COMMIT));
    assert!(out.changes.is_empty());
}

#[test]
fn several_ias_each_get_their_own_lease() {
    // RFC 8415 §6.6, §12: every IA_NA and IA_PD of a message is answered by its IAID.
    let mut fx = Fx::new(2);
    let c = duid(4);
    let m = Msg::new(MessageType::Solicit, &c)
        .rapid()
        .na(1, &[])
        .na(2, &[])
        .pd(10, &[])
        .pd(11, &[]);
    let out = fx.direct(&m, T0);
    let r = out.reply();
    let (a1, a2) = (r.one(IaKind::Na, 1), r.one(IaKind::Na, 2));
    let (p1, p2) = (r.one(IaKind::Pd, 10), r.one(IaKind::Pd, 11));
    assert_ne!(a1, a2);
    assert_ne!(p1, p2);
    for p in [p1, p2] {
        let it = &r.ia(IaKind::Pd, if p == p1 { 10 } else { 11 }).items[0];
        assert_eq!(it.len, 56);
        assert!(
            in_range(p, "2001:db8:8000::", "2001:db8:8000:ff00::"),
            "{p}"
        );
    }
    assert_eq!(out.changes.len(), 4);
    // RENEW of both IA_NA extends both, each in its own IA.
    let renew = Msg::new(MessageType::Renew, &c)
        .ours()
        .na(1, &[a1])
        .na(2, &[a2]);
    let out = fx.direct(&renew, T0 + 100);
    assert_eq!(out.reply().one(IaKind::Na, 1), a1);
    assert_eq!(out.reply().one(IaKind::Na, 2), a2);
    assert_eq!(out.changes.len(), 2);
}

#[test]
fn reservations_go_to_their_duid_only() {
    // A DUID's reserved address and prefix are given to it, and never dynamically.
    let mut fx = Fx::new(2);
    let m = Msg::new(MessageType::Solicit, RESERVED_DUID)
        .rapid()
        .na(1, &[])
        .pd(2, &[]);
    let out = fx.direct(&m, T0);
    assert_eq!(out.reply().one(IaKind::Na, 1), ip("2001:db8:1::10"));
    assert_eq!(out.reply().one(IaKind::Pd, 2), ip("2001:db8:f000::"));
    assert_eq!(out.reply().ia(IaKind::Pd, 2).items[0].len, 56);
    for n in 0..40 {
        let out = fx.direct(
            &Msg::new(MessageType::Solicit, &duid(100 + n)).na(1, &[ip("2001:db8:1::10")]),
            T0,
        );
        assert_ne!(out.reply().one(IaKind::Na, 1), ip("2001:db8:1::10"));
    }
}

#[test]
fn hints_are_honoured_when_free() {
    // RFC 8415 §18.2.1, §18.3.1: the client may suggest addresses and prefixes.
    let mut fx = Fx::new(1);
    let want = ip("2001:db8:1::123");
    let p = ip("2001:db8:8000:4200::");
    let m = Msg::new(MessageType::Solicit, &duid(5))
        .na(1, &[want])
        .pd(2, &[(p, 56)]);
    let out = fx.direct(&m, T0);
    assert_eq!(out.reply().one(IaKind::Na, 1), want);
    assert_eq!(out.reply().one(IaKind::Pd, 2), p);
    // Held for duid 5: another client asking for it gets another address.
    let out = fx.direct(&Msg::new(MessageType::Solicit, &duid(6)).na(1, &[want]), T0);
    assert_ne!(out.reply().one(IaKind::Na, 1), want);
    // Once the hold lapses it is free again.
    fx.reclaim(T0 + HOLD + 1);
    let out = fx.direct(
        &Msg::new(MessageType::Solicit, &duid(7)).na(1, &[want]),
        T0 + HOLD + 1,
    );
    assert_eq!(out.reply().one(IaKind::Na, 1), want);
    // A hint outside the pools is ignored.
    let out = fx.direct(
        &Msg::new(MessageType::Solicit, &duid(8)).na(1, &[ip("2001:db8:1::9999")]),
        T0,
    );
    assert!(in_range(
        out.reply().one(IaKind::Na, 1),
        "2001:db8:1::100",
        "2001:db8:1::13f"
    ));
}

#[test]
fn exhaustion_is_reported_in_the_ia() {
    // RFC 8415 §18.3.1, §18.3.2: NoAddrsAvail / NoPrefixAvail inside the IA.
    let mut fx = Fx::new(1);
    let relayed = |m: &Msg| {
        relay_forw(
            &m.build(),
            0,
            Ipv6Addr::UNSPECIFIED,
            ip("fe80::9"),
            Some(b"port-7"),
        )
    };
    for n in 0..4 {
        let m = Msg::new(MessageType::Solicit, &duid(n))
            .rapid()
            .na(1, &[])
            .pd(2, &[]);
        let out = fx.send_at(&relayed(&m), &relay_ingress(), T0);
        // Subnet 2 has no rapid commit: ADVERTISE holds, which exhausts as well.
        assert_eq!(out.reply().kind, MessageType::Advertise);
        out.reply().one(IaKind::Na, 1);
        out.reply().one(IaKind::Pd, 2);
    }
    let m = Msg::new(MessageType::Solicit, &duid(4))
        .na(1, &[])
        .pd(2, &[]);
    let out = fx.send_at(&relayed(&m), &relay_ingress(), T0);
    let r = out.reply();
    let na = r.ia(IaKind::Na, 1);
    assert_eq!(na.status, Some(StatusCode::NoAddrsAvail as u16));
    assert!(na.items.is_empty());
    assert_eq!((na.t1, na.t2), (0, 0));
    assert_eq!(
        r.ia(IaKind::Pd, 2).status,
        Some(StatusCode::NoPrefixAvail as u16)
    );
    // REQUEST says the same in its REPLY.
    let m = Msg::new(MessageType::Request, &duid(4)).ours().na(1, &[]);
    let out = fx.send_at(&relayed(&m), &relay_ingress(), T0);
    assert_eq!(
        out.reply().ia(IaKind::Na, 1).status,
        Some(StatusCode::NoAddrsAvail as u16)
    );
    assert!(out.changes.is_empty() && !out.durable());
}

#[test]
fn request_with_off_link_address_is_not_on_link() {
    // RFC 8415 §18.3.2: NotOnLink in the IA for addresses not appropriate for the link.
    let mut fx = Fx::new(2);
    let m = Msg::new(MessageType::Request, &duid(9))
        .ours()
        .na(1, &[ip("2001:db8:2::100")]);
    let out = fx.direct(&m, T0);
    assert_eq!(
        out.reply().ia(IaKind::Na, 1).status,
        Some(StatusCode::NotOnLink as u16)
    );
    assert!(out.changes.is_empty());
}

// ---------------------------------------------------------------------------------------
// Relays and link selection

#[test]
fn relayed_by_interface_id_is_wrapped_and_sent_to_the_relay() {
    // RFC 8415 §19.3: RELAY-REPL copies hop-count, link and peer, echoes Interface-Id (§21.18).
    let mut fx = Fx::new(2);
    let m = Msg::new(MessageType::Solicit, &duid(10)).na(1, &[]);
    let d = relay_forw(
        &m.build(),
        0,
        Ipv6Addr::UNSPECIFIED,
        ip("fe80::9"),
        Some(b"port-7"),
    );
    let out = fx.send_at(&d, &relay_ingress(), T0);
    let r = out.reply();
    assert_eq!(
        r.relays,
        [(
            Ipv6Addr::UNSPECIFIED,
            ip("fe80::9"),
            Some(b"port-7".to_vec())
        )]
    );
    assert!(in_range(
        r.one(IaKind::Na, 1),
        "2001:db8:2::100",
        "2001:db8:2::103"
    ));
    assert_eq!((r.ia(IaKind::Na, 1).t1, r.ia(IaKind::Na, 1).t2), (400, 700));
    assert_eq!(
        out.dest(),
        Some(SocketAddrV6::new(ip("2001:db8:ffff::1"), 547, 0, 0))
    );
    // Two relay levels: the innermost Interface-Id counts, both levels are wrapped.
    let inner = relay_forw(
        &m.build(),
        0,
        Ipv6Addr::UNSPECIFIED,
        ip("fe80::9"),
        Some(b"port-7"),
    );
    let outer = relay_forw(&inner, 1, ip("2001:db8:3::1"), ip("2001:db8:ffff::7"), None);
    let out = fx.send_at(&outer, &relay_ingress(), T0);
    let r = out.reply();
    assert_eq!(r.relays.len(), 2);
    assert_eq!(r.relays[1].2.as_deref(), Some(&b"port-7"[..]));
    assert!(in_range(
        r.one(IaKind::Na, 1),
        "2001:db8:2::100",
        "2001:db8:2::103"
    ));
}

#[test]
fn relayed_by_link_address() {
    // RFC 8415 §13.1: the relay's link-address identifies the client's link.
    let mut fx = Fx::new(2);
    let m = Msg::new(MessageType::Solicit, &duid(11)).na(1, &[]);
    let d = relay_forw(
        &m.build(),
        0,
        ip("2001:db8:3::1"),
        ip("fe80::9"),
        Some(b"unknown"),
    );
    let out = fx.send_at(&d, &relay_ingress(), T0);
    assert!(in_range(
        out.reply().one(IaKind::Na, 1),
        "2001:db8:3::100",
        "2001:db8:3::10f"
    ));
    // No matching Interface-Id nor link: dropped.
    let d = relay_forw(&m.build(), 0, ip("2001:db8:77::1"), ip("fe80::9"), None);
    assert_eq!(
        fx.send_at(&d, &relay_ingress(), T0).verdict,
        Verdict6::Drop("no_subnet")
    );
    // A direct client on an interface without a subnet: dropped.
    let mut ing = direct_ingress();
    ing.ifindex = 77;
    assert_eq!(
        fx.send_at(&m.build(), &ing, T0).verdict,
        Verdict6::Drop("no_subnet")
    );
}

// ---------------------------------------------------------------------------------------
// RENEW / REBIND

#[test]
fn renew_extends_and_unknown_ia_has_no_binding() {
    // RFC 8415 §18.3.4.
    let mut fx = Fx::new(2);
    let c = duid(12);
    let a = bind(&mut fx, &c, T0);
    let out = fx.direct(
        &Msg::new(MessageType::Renew, &c).ours().na(1, &[a]),
        T0 + 1500,
    );
    let r = out.reply();
    assert_eq!(r.one(IaKind::Na, 1), a);
    assert_eq!(
        (r.ia(IaKind::Na, 1).t1, r.ia(IaKind::Na, 1).t2),
        (1500, 2400)
    );
    assert!(out.durable());
    assert_eq!(out.changes[0].expires, T0 + 1500 + 4000);
    // An IA the server knows nothing about: NoBinding.
    let out = fx.direct(
        &Msg::new(MessageType::Renew, &c).ours().na(2, &[a]),
        T0 + 1500,
    );
    assert_eq!(
        out.reply().ia(IaKind::Na, 2).status,
        Some(StatusCode::NoBinding as u16)
    );
    assert!(out.changes.is_empty());
    // Another client renewing that address: NoBinding, the lease stays with its owner.
    let out = fx.direct(
        &Msg::new(MessageType::Renew, &duid(13)).ours().na(1, &[a]),
        T0 + 1500,
    );
    assert_eq!(
        out.reply().ia(IaKind::Na, 1).status,
        Some(StatusCode::NoBinding as u16)
    );
    assert_eq!(
        fx.lease(IaKind::Na, a).unwrap().client,
        ClientKey::from_duid(&c).unwrap()
    );
}

#[test]
fn renew_after_expiry_revives_a_free_lease() {
    // RFC 8415 §18.3.4: the server may extend a lease it still can give.
    let mut fx = Fx::new(2);
    let c = duid(14);
    let a = bind(&mut fx, &c, T0);
    fx.reclaim(T0 + 5000);
    assert_eq!(
        fx.lease(IaKind::Na, a).unwrap().state,
        BindingState::Expired
    );
    let out = fx.direct(
        &Msg::new(MessageType::Renew, &c).ours().na(1, &[a]),
        T0 + 5000,
    );
    assert_eq!(out.reply().one(IaKind::Na, 1), a);
    assert_eq!(fx.lease(IaKind::Na, a).unwrap().state, BindingState::Active);
}

#[test]
fn rebind_extends_refuses_off_link_and_is_silent_otherwise() {
    // RFC 8415 §18.3.5.
    let mut fx = Fx::new(2);
    let c = duid(15);
    let a = bind(&mut fx, &c, T0);
    let out = fx.direct(&Msg::new(MessageType::Rebind, &c).na(1, &[a]), T0 + 2500);
    assert_eq!(out.reply().one(IaKind::Na, 1), a);
    assert!(out.durable());
    // No binding, address not appropriate for the link: lifetimes 0.
    let off = ip("2001:db8:2::100");
    let out = fx.direct(&Msg::new(MessageType::Rebind, &duid(16)).na(1, &[off]), T0);
    let ia = out.reply().ia(IaKind::Na, 1).clone();
    assert_eq!(
        ia.items,
        [ItemR {
            addr: off,
            len: 128,
            preferred: 0,
            valid: 0,
            exclude: None
        }]
    );
    assert_eq!((ia.t1, ia.t2), (0, 0));
    assert!(out.changes.is_empty());
    // No binding for an on-link address: another server may own it, say nothing.
    let out = fx.direct(
        &Msg::new(MessageType::Rebind, &duid(16)).na(1, &[ip("2001:db8:1::120")]),
        T0,
    );
    assert_eq!(out.verdict, Verdict6::Silent("rebind_unknown_binding"));
    // A REBIND carrying a SERVERID is invalid (RFC 8415 §16.7).
    let out = fx.direct(&Msg::new(MessageType::Rebind, &c).ours().na(1, &[a]), T0);
    assert_eq!(out.verdict, Verdict6::Drop("server_id_not_allowed"));
}

// ---------------------------------------------------------------------------------------
// RELEASE / DECLINE / CONFIRM / INFORMATION-REQUEST

#[test]
fn release_frees_and_then_has_no_binding() {
    // RFC 8415 §18.3.7: Success at the top level; unknown IAs get NoBinding.
    let mut fx = Fx::new(1);
    let c = duid(17);
    let a = bind(&mut fx, &c, T0);
    let out = fx.direct(
        &Msg::new(MessageType::Release, &c).ours().na(1, &[a]),
        T0 + 10,
    );
    let r = out.reply();
    assert_eq!(r.status, Some(StatusCode::Success as u16));
    assert!(r.ias.is_empty());
    assert_eq!(out.changes.len(), 1);
    assert_eq!(
        (out.changes[0].state, out.changes[0].expires),
        (BindingState::Released, T0 + 10)
    );
    let out = fx.direct(
        &Msg::new(MessageType::Release, &c).ours().na(1, &[a]),
        T0 + 11,
    );
    assert_eq!(
        out.reply().ia(IaKind::Na, 1).status,
        Some(StatusCode::NoBinding as u16)
    );
    // Free for anyone again.
    let out = fx.direct(
        &Msg::new(MessageType::Solicit, &duid(18)).na(1, &[a]),
        T0 + 12,
    );
    assert_eq!(out.reply().one(IaKind::Na, 1), a);
}

#[test]
fn decline_quarantines_for_the_probation() {
    // RFC 8415 §18.3.8: the address is not used until the probation ends.
    let mut fx = Fx::new(1);
    let c = duid(19);
    let a = bind(&mut fx, &c, T0);
    let out = fx.direct(
        &Msg::new(MessageType::Decline, &c).ours().na(1, &[a]),
        T0 + 5,
    );
    assert_eq!(out.reply().status, Some(StatusCode::Success as u16));
    let l = out.changes[0];
    assert_eq!(
        (l.state, l.expires),
        (BindingState::Abandoned, T0 + 5 + PROBATION)
    );
    let out = fx.direct(
        &Msg::new(MessageType::Solicit, &duid(20)).na(1, &[a]),
        T0 + 6,
    );
    assert_ne!(out.reply().one(IaKind::Na, 1), a);
    // Declining what one does not hold: NoBinding.
    let out = fx.direct(
        &Msg::new(MessageType::Decline, &duid(21)).ours().na(1, &[a]),
        T0 + 6,
    );
    assert_eq!(
        out.reply().ia(IaKind::Na, 1).status,
        Some(StatusCode::NoBinding as u16)
    );
    // After the probation the sweep frees it.
    fx.reclaim(T0 + 5 + PROBATION);
    let out = fx.direct(
        &Msg::new(MessageType::Solicit, &duid(20)).na(2, &[a]),
        T0 + 700,
    );
    assert_eq!(out.reply().one(IaKind::Na, 2), a);
}

#[test]
fn confirm_checks_the_link_only() {
    // RFC 8415 §18.3.3.
    let mut fx = Fx::new(2);
    let c = duid(22);
    let on = Msg::new(MessageType::Confirm, &c).na(1, &[ip("2001:db8:1::5")]);
    let r = fx.direct(&on, T0);
    assert_eq!(r.reply().status, Some(StatusCode::Success as u16));
    assert!(r.changes.is_empty() && r.reply().ias.is_empty());
    let off = Msg::new(MessageType::Confirm, &c).na(1, &[ip("2001:db8:1::5"), ip("2001:db8:9::5")]);
    assert_eq!(
        fx.direct(&off, T0).reply().status,
        Some(StatusCode::NotOnLink as u16)
    );
    let none = Msg::new(MessageType::Confirm, &c).na(1, &[]);
    assert_eq!(
        fx.direct(&none, T0).verdict,
        Verdict6::Silent("confirm_without_addresses")
    );
}

#[test]
fn information_request_gets_the_asked_options() {
    // RFC 8415 §18.3.6, §21.7, §21.23.
    let mut fx = Fx::new(2);
    let mut m = Msg::new(MessageType::InformationRequest, &duid(23)).oro(&[23, 24, 32, 82, 31]);
    let out = fx.direct(&m, T0);
    let r = out.reply();
    assert_eq!(r.kind, MessageType::Reply);
    assert_eq!(r.opts[&opt::DNS_SERVERS], ip("2001:db8::53").octets());
    assert_eq!(r.opts[&opt::DOMAIN_LIST], b"\x07example\x03net\x00");
    assert_eq!(
        r.opts[&opt::INFORMATION_REFRESH_TIME],
        3600u32.to_be_bytes()
    );
    assert_eq!(r.opts[&31], ip("2001:db8::123").octets());
    // SOL_MAX_RT belongs to replies to SOLICIT (RFC 8415 §21.24).
    assert!(!r.opts.contains_key(&opt::SOL_MAX_RT));
    assert!(out.changes.is_empty() && !out.durable());
    // Without CLIENTID it is still answered (RFC 8415 §18.2.6).
    m.duid = None;
    let r = fx.direct(&m, T0);
    assert!(!r.reply().opts.contains_key(&opt::CLIENTID));
    // For another server: silence (RFC 8415 §16.12).
    let other = Msg::new(MessageType::InformationRequest, &duid(23)).server(OTHER_DUID);
    assert_eq!(
        fx.direct(&other, T0).verdict,
        Verdict6::Silent("other_server")
    );
}

#[test]
fn oro_decides_the_options_of_an_advertise() {
    // RFC 8415 §21.7: options sent because the client asked; §21.24 SOL_MAX_RT.
    let mut fx = Fx::new(2);
    let bare = fx.direct(&Msg::new(MessageType::Solicit, &duid(24)).na(1, &[]), T0);
    assert_eq!(
        bare.reply().codes,
        [opt::SERVERID, opt::CLIENTID, opt::IA_NA]
    );
    let asked = Msg::new(MessageType::Solicit, &duid(24))
        .na(1, &[])
        .oro(&[82, 23, 23, 32, 999]);
    let r = fx.direct(&asked, T0);
    let r = r.reply();
    assert_eq!(r.opts[&opt::SOL_MAX_RT], 600u32.to_be_bytes());
    assert!(r.opts.contains_key(&opt::DNS_SERVERS));
    assert_eq!(
        r.codes.iter().filter(|&&c| c == opt::DNS_SERVERS).count(),
        1
    );
    assert!(!r.opts.contains_key(&opt::INFORMATION_REFRESH_TIME));
    assert!(!r.opts.contains_key(&999));
}

#[test]
fn prefix_exclude_is_sent_when_asked() {
    // RFC 6603 §4.2: OPTION_PD_EXCLUDE inside the IAPREFIX, subnet ID bits after /56.
    let mut fx = Fx::new(2);
    let m = Msg::new(MessageType::Solicit, &duid(25))
        .pd(1, &[])
        .oro(&[opt::PD_EXCLUDE]);
    let out = fx.direct(&m, T0);
    let it = out.reply().ia(IaKind::Pd, 1).items[0].clone();
    assert_eq!(it.exclude, Some(vec![64, 0xff]));
    // Decoded back: the excluded /64 is the delegated /56 with subnet ID ff.
    let excluded = Ipv6Addr::from_bits(it.addr.to_bits() | (0xffu128 << 64));
    assert_eq!(excluded.segments()[3] & 0xff, 0xff);
    assert_eq!(excluded.segments()[..3], it.addr.segments()[..3]);
    let plain = fx.direct(&Msg::new(MessageType::Solicit, &duid(26)).pd(1, &[]), T0);
    assert_eq!(plain.reply().ia(IaKind::Pd, 1).items[0].exclude, None);
}

// ---------------------------------------------------------------------------------------
// Message validation (RFC 8415 §16)

#[test]
fn other_server_is_silent_and_changes_nothing() {
    // RFC 8415 §16.4, §16.6, §16.9, §16.10: a SERVERID not ours → discard.
    let mut fx = Fx::new(2);
    let c = duid(27);
    let a = bind(&mut fx, &c, T0);
    for kind in [
        MessageType::Request,
        MessageType::Renew,
        MessageType::Release,
        MessageType::Decline,
    ] {
        let out = fx.direct(&Msg::new(kind, &c).server(OTHER_DUID).na(1, &[a]), T0 + 1);
        assert_eq!(out.verdict, Verdict6::Silent("other_server"), "{kind:?}");
        assert!(out.changes.is_empty());
    }
    assert_eq!(fx.lease(IaKind::Na, a).unwrap().state, BindingState::Active);
    // Without a SERVERID these are invalid; a SOLICIT with one is invalid too.
    let out = fx.direct(&Msg::new(MessageType::Request, &c).na(1, &[a]), T0);
    assert_eq!(out.verdict, Verdict6::Drop("missing_server_id"));
    let out = fx.direct(&Msg::new(MessageType::Solicit, &c).ours().na(1, &[]), T0);
    assert_eq!(out.verdict, Verdict6::Drop("server_id_not_allowed"));
    let mut m = Msg::new(MessageType::Solicit, &c).na(1, &[]);
    m.duid = None;
    assert_eq!(
        fx.direct(&m, T0).verdict,
        Verdict6::Drop("missing_client_id")
    );
    assert_eq!(
        fx.send_at(&[2, 0, 0, 1], &direct_ingress(), T0).verdict,
        Verdict6::Drop("not_client_message")
    );
    assert_eq!(
        fx.send_at(&[1, 0], &direct_ingress(), T0).verdict,
        Verdict6::Drop("truncated")
    );
}

#[test]
fn unicast_without_server_unicast_gets_use_multicast() {
    // RFC 8415 §18.3.2 (and §18.3.4, §18.3.7, §18.3.8): UseMulticast, identifiers only.
    let mut fx = Fx::new(2);
    let c = duid(28);
    let a = bind(&mut fx, &c, T0);
    let mut ing = direct_ingress();
    ing.dst = ip("2001:db8:1::1");
    for kind in [
        MessageType::Request,
        MessageType::Renew,
        MessageType::Release,
        MessageType::Decline,
    ] {
        let out = fx.send_at(&Msg::new(kind, &c).ours().na(1, &[a]).build(), &ing, T0 + 1);
        let r = out.reply();
        assert_eq!(r.kind, MessageType::Reply);
        assert_eq!(r.status, Some(StatusCode::UseMulticast as u16), "{kind:?}");
        assert_eq!(r.codes, [opt::SERVERID, opt::CLIENTID, opt::STATUS_CODE]);
        assert!(out.changes.is_empty());
    }
    assert_eq!(fx.lease(IaKind::Na, a).unwrap().state, BindingState::Active);
    // RFC 8415 §16: unicast SOLICIT, REBIND, CONFIRM and INFORMATION-REQUEST are discarded.
    for kind in [
        MessageType::Solicit,
        MessageType::Rebind,
        MessageType::Confirm,
        MessageType::InformationRequest,
    ] {
        let out = fx.send_at(&Msg::new(kind, &c).na(1, &[a]).build(), &ing, T0);
        assert_eq!(out.verdict, Verdict6::Drop("unicast_discarded"), "{kind:?}");
    }
    // A relayed message may reach the server by unicast.
    let d = relay_forw(
        &Msg::new(MessageType::Renew, &c).ours().na(1, &[a]).build(),
        0,
        ip("2001:db8:1::1"),
        ip("fe80::1"),
        None,
    );
    assert_eq!(
        fx.send_at(&d, &relay_ingress(), T0)
            .reply()
            .one(IaKind::Na, 1),
        a
    );
}

// ---------------------------------------------------------------------------------------
// Construction

#[test]
fn build_v6_numbers_pools_and_lists_reservations() {
    let config = parse(CONFIG, "v6.toml").unwrap();
    let (engine, pools, reserved) = build_v6(&config, SERVER_DUID.to_vec());
    assert_eq!(
        pools
            .iter()
            .map(|p| (p.id, p.subnet_id))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]
    );
    assert!(matches!(
        pools[1].kind,
        Pool6Kind::Pd {
            delegated_len: 56,
            excluded: None,
            ..
        }
    ));
    assert_eq!(
        reserved,
        [(ip("2001:db8:1::10"), 128), (ip("2001:db8:f000::"), 56)]
    );
    assert_eq!(engine.server_duid(), SERVER_DUID);
    assert_eq!(
        engine.subnets()[0].pd_pools[0].excluded,
        Some((ip("2001:db8:8000:ff::"), 64))
    );
    assert_eq!(engine.subnets()[1].t1, 400);
    assert_eq!(engine.settings().offer_hold_secs, HOLD);
    assert_eq!(
        encode_domain_list(&["a.b.", "c"]),
        b"\x01a\x01b\x00\x01c\x00"
    );
}

#[test]
fn server_duid_is_created_once_and_kept() {
    // RFC 8415 §11.5: DUID-UUID, type 4, 16 bytes; RFC 8415 §11: stable across restarts.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = load_or_create_server_duid(&data).unwrap();
    assert_eq!(first.len(), 18);
    assert_eq!(first[..2], [0, 4]);
    assert_eq!(first[8] >> 4, 4, "a version 4 UUID");
    assert_eq!(load_or_create_server_duid(&data).unwrap(), first);
    let other = tempfile::tempdir().unwrap();
    assert_ne!(load_or_create_server_duid(other.path()).unwrap(), first);
    std::fs::write(data.join("server-duid"), "zz\n").unwrap();
    let e = load_or_create_server_duid(&data).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    std::fs::write(data.join("server-duid"), "0001\n").unwrap();
    assert!(
        load_or_create_server_duid(&data).is_err(),
        "too short for a DUID"
    );
}

// ---------------------------------------------------------------------------------------
// Property test

/// A small subnet so that clients compete: 24 addresses and 16 /60 prefixes over 2 shards.
const PROP_CONFIG: &str = r#"
[server]
interfaces = ["eth1"]
offer-hold-secs = 30
decline-probation-secs = 600

[[subnet6]]
id = 1
prefix = "2001:db8:1::/64"
interface = "eth1"
rapid-commit = true
preferred-lifetime = 300
valid-lifetime = 400

[[subnet6.pool]]
range = "2001:db8:1::100-2001:db8:1::117"

[[subnet6.pd-pool]]
prefix = "2001:db8:8000::/56"
delegated-len = 60

[[subnet6.reservation]]
duid = "00:03:00:01:02:00:00:00:00:05"
address = "2001:db8:1::5"
"#;

/// The addresses and prefixes last granted to one IA of the property test.
type Granted = (Vec<Ipv6Addr>, Vec<(Ipv6Addr, u8)>);

#[derive(Debug, Clone)]
enum Op {
    Advance(u16),
    Send {
        client: u16,
        kind: u8,
        iaid: u32,
        hint: Option<u8>,
        rapid: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1u16..600).prop_map(Op::Advance),
        8 => (0u16..30, 0u8..9, 0u32..2, proptest::option::of(0u8..32), any::<bool>())
            .prop_map(|(client, kind, iaid, hint, rapid)| Op::Send { client, kind, iaid, hint, rapid }),
    ]
}

fn check_invariants(fx: &Fx) -> Result<(), TestCaseError> {
    let mut held: HashMap<(u8, Ipv6Addr), Lease6> = HashMap::new();
    let mut prefixes: Vec<Lease6> = Vec::new();
    for s in &fx.shards {
        for l in s.iter() {
            if !l.state.holds_address() {
                continue;
            }
            let k = (l.kind.record_kind(), l.addr);
            if let Some(prev) = held.insert(k, l) {
                prop_assert!(false, "{:?} held twice: {prev:?} and {l:?}", l.addr);
            }
            if l.kind == IaKind::Pd {
                prefixes.push(l);
            } else {
                prop_assert!(
                    in_range(l.addr, "2001:db8:1::100", "2001:db8:1::117")
                        || l.addr == ip("2001:db8:1::5"),
                    "{l:?} outside the pool"
                );
            }
        }
    }
    for (i, a) in prefixes.iter().enumerate() {
        prop_assert_eq!(a.prefix_len, 60);
        for b in &prefixes[i + 1..] {
            let m = crate::config::Ipv6Net::mask_of(60);
            prop_assert!(
                a.addr.to_bits() & m != b.addr.to_bits() & m,
                "{a:?} overlaps {b:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// RFC 8415 §18.3 under random interleavings of ~30 clients over 2 shards: no address or
    /// prefix is bound (or quarantined) twice, every lease in a REPLY is ACTIVE for the
    /// client that got it, and the engine never panics.
    #[test]
    fn allocation_invariants(ops in proptest::collection::vec(op(), 1..150)) {
        let mut fx = Fx::with(PROP_CONFIG, 2);
        let mut now = T0;
        let mut last: HashMap<(u16, u32), Granted> = HashMap::new();
        for op in ops {
            match op {
                Op::Advance(s) => {
                    now += u32::from(s);
                    fx.reclaim(now);
                }
                Op::Send { client, kind, iaid, hint, rapid } => {
                    // duid(5) holds the reservation of PROP_CONFIG.
                    let c = duid(client);
                    let (mut na, mut pd) = last.get(&(client, iaid)).cloned().unwrap_or_default();
                    if let Some(h) = hint {
                        na = vec![Ipv6Addr::from_bits(ip("2001:db8:1::100").to_bits() + u128::from(h))];
                        pd = vec![(Ipv6Addr::from_bits(ip("2001:db8:8000::").to_bits() + (u128::from(h % 16) << 68)), 60)];
                    }
                    let kinds = [
                        MessageType::Solicit, MessageType::Request, MessageType::Renew,
                        MessageType::Rebind, MessageType::Release, MessageType::Decline,
                        MessageType::Confirm, MessageType::InformationRequest, MessageType::Request,
                    ];
                    let k = kinds[usize::from(kind)];
                    let mut m = Msg::new(k, &c).na(iaid, &na).pd(iaid + 10, &pd);
                    if matches!(k, MessageType::Request | MessageType::Renew | MessageType::Release | MessageType::Decline) {
                        m = m.ours();
                    }
                    if rapid {
                        m = m.rapid();
                    }
                    let out = fx.direct(&m, now);
                    let key = ClientKey::from_duid(&c).unwrap();
                    if let Some(r) = &out.reply {
                        if r.kind == MessageType::Reply {
                            for ia in &r.ias {
                                for it in ia.items.iter().filter(|i| i.valid > 0) {
                                    let l = fx.lease(ia.kind, it.addr);
                                    prop_assert!(
                                        l.is_some_and(|l| l.client == key && l.state == BindingState::Active),
                                        "granted {:?} but the shard has {l:?}", it
                                    );
                                }
                            }
                            prop_assert_eq!(out.durable(), !out.changes.is_empty());
                        }
                        let get = |kind: IaKind| r.ias.iter().filter(|i| i.kind == kind).flat_map(|i| i.items.iter()).filter(|i| i.valid > 0).map(|i| (i.addr, i.len)).collect::<Vec<_>>();
                        let na: Vec<Ipv6Addr> = get(IaKind::Na).into_iter().map(|(a, _)| a).collect();
                        let pd = get(IaKind::Pd);
                        if !na.is_empty() || !pd.is_empty() {
                            last.insert((client, iaid), (na, pd));
                        }
                    }
                }
            }
            check_invariants(&fx)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// DHCPv6 failover (RFC 8156)

fn fo_view(mclt: u32, share: crate::pool::v6::Share6) -> FailoverView6 {
    FailoverView6 {
        enabled: true,
        respond: true,
        allocate: true,
        share,
        mclt,
    }
}

#[test]
fn failover_bounds_lifetimes_by_the_mclt_until_the_partner_acknowledges() {
    // RFC 8156 §4.4: a lifetime never runs past what the partner acknowledged plus the MCLT.
    let mut fx = Fx::new(1);
    fx.fo = fo_view(600, crate::pool::v6::Share6::Any);
    let c = duid(1);
    let adv = fx.direct(&Msg::new(MessageType::Solicit, &c).na(1, &[]), T0);
    let ia = adv.reply().ia(IaKind::Na, 1);
    assert_eq!((ia.items[0].preferred, ia.items[0].valid), (600, 600));
    let a = ia.items[0].addr;
    let out = fx.direct(&Msg::new(MessageType::Request, &c).ours().na(1, &[a]), T0);
    let ia = out.reply().ia(IaKind::Na, 1);
    assert_eq!((ia.items[0].preferred, ia.items[0].valid), (600, 600));
    // T1 and T2 follow the shortened lifetime (RFC 8415 §21.4 ratios).
    assert_eq!((ia.t1, ia.t2), (300, 480));
    let l = out.changes[0];
    assert_eq!(l.expires, T0 + 600);
    assert!(l.update_pending, "a change for the partner");
    assert_eq!(
        fx.lease(IaKind::Na, a).map(|l| l.update_pending),
        Some(true)
    );
    // The partner acknowledges a lifetime to T0 + 5000: the renewal gets the whole 4000 s.
    let key = ClientKey::from_duid(&c).unwrap();
    fx.shards[0].partner_acked(IaKind::Na, a, &key, T0, T0 + 5000);
    let r = fx.direct(
        &Msg::new(MessageType::Renew, &c).ours().na(1, &[a]),
        T0 + 100,
    );
    let ia = r.reply().ia(IaKind::Na, 1);
    assert_eq!((ia.items[0].preferred, ia.items[0].valid), (3000, 4000));
    assert_eq!((ia.t1, ia.t2), (1500, 2400));
    assert_eq!(r.changes[0].partner_expires, T0 + 5000);
    // Later, past what was acknowledged: the MCLT beyond it again.
    let r = fx.direct(
        &Msg::new(MessageType::Renew, &c).ours().na(1, &[a]),
        T0 + 4800,
    );
    let ia = r.reply().ia(IaKind::Na, 1);
    assert_eq!(ia.items[0].valid, 200 + 600);
    assert!(ia.items[0].preferred <= ia.items[0].valid);
}

#[test]
fn failover_states_that_do_not_respond_or_allocate() {
    let mut fx = Fx::new(1);
    fx.fo = fo_view(600, crate::pool::v6::Share6::Any);
    let c = duid(1);
    let a = bind(&mut fx, &c, T0);
    fx.fo.respond = false;
    let out = fx.direct(
        &Msg::new(MessageType::Renew, &c).ours().na(1, &[a]),
        T0 + 10,
    );
    assert_eq!(out.verdict, Verdict6::Silent("failover_not_serving"));
    assert!(out.changes.is_empty());
    // Serving existing bindings only: the renewal works, a new client gets nothing.
    fx.fo.respond = true;
    fx.fo.allocate = false;
    let out = fx.direct(
        &Msg::new(MessageType::Renew, &c).ours().na(1, &[a]),
        T0 + 10,
    );
    assert_eq!(out.reply().one(IaKind::Na, 1), a);
    let out = fx.direct(
        &Msg::new(MessageType::Solicit, &duid(2)).na(1, &[]),
        T0 + 10,
    );
    assert_eq!(
        out.reply().ia(IaKind::Na, 1).status,
        Some(StatusCode::NoAddrsAvail as u16)
    );
}

#[test]
fn failover_allocates_from_its_own_share_only() {
    use crate::pool::v6::Share6;
    let mut fx = Fx::new(2);
    // The secondary with every address in the primary's share: no address, but prefixes
    // from the second half of the pool.
    fx.fo = fo_view(600, Share6::Secondary { address_share: 100 });
    let c = duid(3);
    let out = fx.direct(
        &Msg::new(MessageType::Solicit, &c).na(1, &[]).pd(2, &[]),
        T0,
    );
    let r = out.reply();
    assert_eq!(
        r.ia(IaKind::Na, 1).status,
        Some(StatusCode::NoAddrsAvail as u16)
    );
    let p = r.one(IaKind::Pd, 2);
    assert!(
        u128::from(p) >= u128::from(ip("2001:db8:8000:8000::")),
        "{p}"
    );
    // In PARTNER-DOWN after the MCLT (Any): addresses again.
    fx.fo.share = Share6::Any;
    let out = fx.direct(&Msg::new(MessageType::Solicit, &c).na(1, &[]), T0);
    assert!(in_range(
        out.reply().one(IaKind::Na, 1),
        "2001:db8:1::100",
        "2001:db8:1::13f"
    ));
    // The primary's prefixes come from the first half.
    let mut fx = Fx::new(2);
    fx.fo = fo_view(600, Share6::Primary { address_share: 50 });
    let out = fx.direct(&Msg::new(MessageType::Solicit, &duid(4)).pd(2, &[]), T0);
    let p = out.reply().one(IaKind::Pd, 2);
    assert!(
        u128::from(p) < u128::from(ip("2001:db8:8000:8000::")),
        "{p}"
    );
}
