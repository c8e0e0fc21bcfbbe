//! Unit tests of the IPv4 DHCP engine: one test per protocol rule, each citing its RFC, plus a
//! property test of the allocation invariants across two shards.
//!
//! Requests are built with the crate's own [`ReplyWriter`] (op 1), parsed with
//! [`Request::parse`] exactly as the I/O path does, and replies are decoded with [`Packet`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::{Destination, Engine, FailoverView, Ingress, LoadBalance, MAX_REPLY, Verdict};
use crate::lease::{BindingState, ClientKey, Lease4};
use crate::pool::{FreeMap, Shard, Share};
use crate::wire::v4::{
    FLAG_BROADCAST, MessageType, Packet, ReplyHeader, ReplyWriter, Request, Scratch, opt,
};

// ---------------------------------------------------------------------------------------
// Fixture

const SERVER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OTHER_SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const ETH1: u32 = 2;
const ETH2: u32 = 3;
const HOLD: u32 = 30;
const PROBATION: u32 = 600;
const T0: u32 = 1_000_000;

/// Large custom options of subnet 2, to exercise the maximum message size.
const BIG43: usize = 200;
const BIG66: usize = 150;

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// Subnet 1 (10.0.0.0/24 on eth1, pool .100-.109, reservations, option 42, lease 3600 in
/// 600..=7200); subnet 2 (10.1.0.0/24 on eth2 and relay 198.51.100.7, pool .100-.149,
/// rapid commit, big options 43 and 66).
fn config() -> String {
    let mut hex43 = String::new();
    for i in 0..BIG43 {
        if i > 0 {
            hex43.push(':');
        }
        let _ = write!(hex43, "{:02x}", i % 251);
    }
    let text66 = "t".repeat(BIG66);
    format!(
        r#"
[server]
interfaces = ["eth1", "eth2"]
server-id = "192.0.2.1"
offer-hold-secs = {HOLD}
decline-probation-secs = {PROBATION}

[[subnet4]]
id = 1
subnet = "10.0.0.0/24"
interface = "eth1"
routers = ["10.0.0.1"]
dns-servers = ["10.0.0.53", "10.0.0.54"]
domain-name = "example.net"
lease-time = 3600
min-lease-time = 600
max-lease-time = 7200

[[subnet4.pool]]
range = "10.0.0.100-10.0.0.109"

[[subnet4.reservation]]
hw-address = "02:00:00:00:00:aa"
address = "10.0.0.10"

[[subnet4.reservation]]
client-id = "01:02:00:00:00:00:bb"
address = "10.0.0.11"

[[subnet4.option]]
code = 42
ips = ["10.0.0.123"]

[[subnet4]]
id = 2
subnet = "10.1.0.0/24"
interface = "eth2"
relay-addresses = ["198.51.100.7"]
routers = ["10.1.0.1"]
lease-time = 1800
rapid-commit = true

[[subnet4.pool]]
range = "10.1.0.100-10.1.0.149"

[[subnet4.option]]
code = 43
hex = "{hex43}"

[[subnet4.option]]
code = 66
text = "{text66}"
"#
    )
}

/// An engine, its free map and `n` shards, the way a dispatcher wires them.
struct Fx {
    engine: Engine,
    free: FreeMap,
    shards: Vec<Shard>,
    /// What the failover state allows (standalone unless a test sets it).
    fo: FailoverView,
}

/// What one request produced.
#[derive(Debug)]
struct Out {
    verdict: Verdict,
    reply: Option<Reply>,
    changes: Vec<Lease4>,
}

impl Out {
    #[track_caller]
    fn reply(&self) -> &Reply {
        self.reply
            .as_ref()
            .unwrap_or_else(|| panic!("expected a reply, got {:?}", self.verdict))
    }

    fn kind(&self) -> Option<MessageType> {
        self.reply.as_ref().map(|r| r.kind)
    }

    fn dest(&self) -> Option<Destination> {
        match self.verdict {
            Verdict::Reply { dest, .. } => Some(dest),
            _ => None,
        }
    }

    fn durable(&self) -> bool {
        matches!(self.verdict, Verdict::Reply { durable: true, .. })
    }
}

/// A decoded reply.
#[derive(Debug, Clone)]
struct Reply {
    kind: MessageType,
    op: u8,
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: Vec<u8>,
    len: usize,
    /// Options, instances of one code concatenated (RFC 3396).
    opts: BTreeMap<u8, Vec<u8>>,
    /// Option codes in wire order, one per instance.
    order: Vec<u8>,
}

impl Reply {
    fn decode(bytes: &[u8]) -> Self {
        let p = Packet::new_checked(bytes).expect("reply is a DHCP message");
        let mut opts: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        let mut order = Vec::new();
        for item in p.option_iter() {
            let (code, value) = item.expect("well-formed reply options");
            opts.entry(code).or_default().extend_from_slice(value);
            order.push(code);
        }
        let kind = MessageType::try_from(opts[&opt::MESSAGE_TYPE][0]).expect("known type");
        Self {
            kind,
            op: p.op(),
            xid: p.xid(),
            flags: p.flags(),
            ciaddr: p.ciaddr(),
            yiaddr: p.yiaddr(),
            giaddr: p.giaddr(),
            chaddr: p.chaddr().to_vec(),
            len: bytes.len(),
            opts,
            order,
        }
    }

    fn u32_opt(&self, code: u8) -> Option<u32> {
        self.opts
            .get(&code)
            .map(|v| u32::from_be_bytes(v[..4].try_into().expect("4 bytes")))
    }

    fn ip_opt(&self, code: u8) -> Option<Ipv4Addr> {
        self.opts
            .get(&code)
            .map(|v| Ipv4Addr::from(<[u8; 4]>::try_from(&v[..4]).expect("4 bytes")))
    }

    fn has(&self, code: u8) -> bool {
        self.opts.contains_key(&code)
    }

    fn pos(&self, code: u8) -> usize {
        self.order
            .iter()
            .position(|&c| c == code)
            .unwrap_or_else(|| panic!("option {code} missing from {:?}", self.order))
    }
}

impl Fx {
    fn with(text: &str, shards: usize) -> Self {
        let cfg = crate::config::parse(text, "engine-test.toml")
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let (mut engine, ranges) = crate::engine::build_v4(&cfg);
        engine.bind_interface("eth1", ETH1);
        engine.bind_interface("eth2", ETH2);
        let reserved: Vec<Ipv4Addr> = engine.reserved_addresses().collect();
        let free = FreeMap::new(&ranges, shards, &|a| reserved.contains(&a)).expect("pools");
        let shards = (0..shards).map(|i| Shard::new(i, shards)).collect();
        Self {
            engine,
            free,
            shards,
            fo: FailoverView::STANDALONE,
        }
    }

    fn new() -> Self {
        Self::with(&config(), 2)
    }

    /// Handle `m` at `now` in the shard owning its client.
    fn send(&mut self, m: &Msg, now: u32) -> Out {
        let bytes = m.build();
        let mut scratch = Scratch::new();
        let req = Request::parse(&bytes, &mut scratch).expect("test request parses");
        let key = req.client_key().expect("client key");
        let n = self.shards.len();
        let shard = &mut self.shards[key.shard(n)];
        let ingress = Ingress {
            ifindex: m.ifindex,
            local_addr: None,
            broadcast: m.to_broadcast,
        };
        let mut out = vec![0u8; MAX_REPLY];
        let mut changes = Vec::new();
        let verdict = self.engine.handle_fo(
            &req,
            &ingress,
            now,
            shard,
            &self.free,
            &self.fo,
            &mut out,
            &mut changes,
        );
        let reply = match verdict {
            Verdict::Reply { kind, len, .. } => {
                let r = Reply::decode(&out[..len]);
                assert_eq!(r.kind, kind, "verdict kind matches option 53");
                Some(r)
            }
            _ => None,
        };
        Out {
            verdict,
            reply,
            changes,
        }
    }

    fn reclaim(&mut self, now: u32) {
        for s in &mut self.shards {
            s.reclaim(now, 100_000, &self.free);
        }
    }

    /// The record of `addr` in whichever shard has one with a binding (or the first found).
    fn lease_at(&self, addr: Ipv4Addr) -> Option<Lease4> {
        let all: Vec<Lease4> = self
            .shards
            .iter()
            .filter_map(|s| s.get_by_addr(addr))
            .collect();
        all.iter()
            .copied()
            .find(|l| l.state.holds_address())
            .or_else(|| all.first().copied())
    }

    /// DISCOVER + REQUEST(selecting): the address acknowledged.
    #[track_caller]
    fn lease(&mut self, m: &Msg, now: u32) -> Ipv4Addr {
        let o = self.send(&m.clone().kind(MessageType::Discover), now);
        assert_eq!(o.kind(), Some(MessageType::Offer), "{:?}", o.verdict);
        let a = o.reply().yiaddr;
        let ack = self.send(&m.clone().selecting(a, SERVER_ID), now);
        assert_eq!(ack.kind(), Some(MessageType::Ack), "{:?}", ack.verdict);
        assert_eq!(ack.reply().yiaddr, a);
        a
    }
}

/// A client message to build.
#[derive(Debug, Clone)]
struct Msg {
    kind: MessageType,
    htype: u8,
    mac: [u8; 6],
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    client_id: Option<Vec<u8>>,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    lease_time: Option<u32>,
    prl: Option<Vec<u8>>,
    max_size: Option<u16>,
    relay_info: Option<Vec<u8>>,
    subnet_sel: Option<Ipv4Addr>,
    rapid: bool,
    ifindex: u32,
    to_broadcast: bool,
    secs: u16,
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0x00, 0x00, 0x00, 0x01, n]
}

/// A DHCPDISCOVER from the client with MAC `mac(n)`, received broadcast on eth1.
fn discover(n: u8) -> Msg {
    Msg {
        kind: MessageType::Discover,
        htype: 1,
        mac: mac(n),
        xid: 0x1000_0000 | u32::from(n),
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        client_id: None,
        requested: None,
        server_id: None,
        lease_time: None,
        prl: None,
        max_size: None,
        relay_info: None,
        subnet_sel: None,
        rapid: false,
        ifindex: ETH1,
        to_broadcast: true,
        secs: 0,
    }
}

impl Msg {
    fn kind(mut self, k: MessageType) -> Self {
        self.kind = k;
        self
    }
    fn with_mac(mut self, m: [u8; 6]) -> Self {
        self.mac = m;
        self
    }
    fn cid(mut self, id: &[u8]) -> Self {
        self.client_id = Some(id.to_vec());
        self
    }
    fn want(mut self, a: Ipv4Addr) -> Self {
        self.requested = Some(a);
        self
    }
    fn sid(mut self, a: Ipv4Addr) -> Self {
        self.server_id = Some(a);
        self
    }
    fn lease_secs(mut self, t: u32) -> Self {
        self.lease_time = Some(t);
        self
    }
    fn prl(mut self, p: &[u8]) -> Self {
        self.prl = Some(p.to_vec());
        self
    }
    fn max_size(mut self, m: u16) -> Self {
        self.max_size = Some(m);
        self
    }
    fn relay(mut self, giaddr: Ipv4Addr) -> Self {
        self.giaddr = giaddr;
        self.to_broadcast = false;
        self
    }
    fn agent_info(mut self, v: &[u8]) -> Self {
        self.relay_info = Some(v.to_vec());
        self
    }
    fn subnet_selection(mut self, a: Ipv4Addr) -> Self {
        self.subnet_sel = Some(a);
        self
    }
    fn rapid(mut self) -> Self {
        self.rapid = true;
        self
    }
    fn bcast_flag(mut self) -> Self {
        self.flags |= FLAG_BROADCAST;
        self
    }
    fn on(mut self, ifindex: u32) -> Self {
        self.ifindex = ifindex;
        self
    }
    fn ci(mut self, a: Ipv4Addr) -> Self {
        self.ciaddr = a;
        self
    }

    /// REQUEST in SELECTING state (RFC 2131 §4.3.2): server id and requested address.
    fn selecting(self, a: Ipv4Addr, sid: Ipv4Addr) -> Self {
        self.kind(MessageType::Request).want(a).sid(sid)
    }
    /// REQUEST in INIT-REBOOT state: requested address, no server id, ciaddr 0.
    fn init_reboot(self, a: Ipv4Addr) -> Self {
        self.kind(MessageType::Request).want(a)
    }
    /// REQUEST in RENEWING state: ciaddr, unicast to the server.
    fn renewing(mut self, a: Ipv4Addr) -> Self {
        self.to_broadcast = false;
        self.kind(MessageType::Request).ci(a)
    }
    /// REQUEST in REBINDING state: ciaddr, broadcast.
    fn rebinding(mut self, a: Ipv4Addr) -> Self {
        self.to_broadcast = true;
        self.kind(MessageType::Request).ci(a)
    }
    fn release(mut self, a: Ipv4Addr) -> Self {
        self.to_broadcast = false;
        self.kind(MessageType::Release).ci(a).sid(SERVER_ID)
    }
    fn decline(self, a: Ipv4Addr) -> Self {
        self.kind(MessageType::Decline).want(a).sid(SERVER_ID)
    }
    fn inform(mut self, a: Ipv4Addr) -> Self {
        self.to_broadcast = false;
        self.kind(MessageType::Inform).ci(a)
    }

    fn key(&self) -> ClientKey {
        match &self.client_id {
            Some(id) => ClientKey::from_client_id(id).expect("key"),
            None => ClientKey::from_hw(self.htype, &self.mac).expect("key"),
        }
    }

    /// The message bytes, written with the codec's writer and `op` = BOOTREQUEST.
    fn build(&self) -> Vec<u8> {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&self.mac);
        let hdr = ReplyHeader {
            op: 1,
            htype: self.htype,
            hlen: 6,
            hops: u8::from(!self.giaddr.is_unspecified()),
            xid: self.xid,
            secs: self.secs,
            flags: self.flags,
            ciaddr: self.ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: self.giaddr,
            chaddr,
        };
        let mut buf = vec![0u8; 1500];
        let mut w = ReplyWriter::new(&mut buf, &hdr).expect("writer");
        w.option_u8(opt::MESSAGE_TYPE, self.kind as u8).unwrap();
        if let Some(id) = &self.client_id {
            w.option(opt::CLIENT_ID, id).unwrap();
        }
        if let Some(a) = self.requested {
            w.option_ip(opt::REQUESTED_IP, a).unwrap();
        }
        if let Some(a) = self.server_id {
            w.option_ip(opt::SERVER_ID, a).unwrap();
        }
        if let Some(t) = self.lease_time {
            w.option_u32(opt::LEASE_TIME, t).unwrap();
        }
        if let Some(p) = &self.prl {
            w.option(opt::PRL, p).unwrap();
        }
        if let Some(m) = self.max_size {
            w.option_u16(opt::MAX_SIZE, m).unwrap();
        }
        if let Some(a) = self.subnet_sel {
            w.option_ip(opt::SUBNET_SELECTION, a).unwrap();
        }
        if self.rapid {
            w.option(opt::RAPID_COMMIT, &[]).unwrap();
        }
        if let Some(ri) = &self.relay_info {
            w.option(opt::RELAY_AGENT_INFO, ri).unwrap();
        }
        let len = w.finish();
        buf.truncate(len);
        buf
    }
}

fn subnet1_pool(a: Ipv4Addr) -> bool {
    (ip(10, 0, 0, 100)..=ip(10, 0, 0, 109)).contains(&a)
}

fn subnet2_pool(a: Ipv4Addr) -> bool {
    (ip(10, 1, 0, 100)..=ip(10, 1, 0, 149)).contains(&a)
}

/// Option 82 with circuit-id, remote-id and a link-selection sub-option (RFC 3527 §3).
fn agent_info_with_link(link: Ipv4Addr) -> Vec<u8> {
    let mut v = vec![1, 4, b'p', b'o', b'r', b't', 2, 3, 0xaa, 0xbb, 0xcc, 5, 4];
    v.extend_from_slice(&link.octets());
    v
}

// ---------------------------------------------------------------------------------------
// DISCOVER → OFFER (RFC 2131 §4.3.1)

/// RFC 2131 §4.3.1: a new client is offered a free address of its subnet's pool, with the
/// lease time, T1/T2 (§4.4.5), server identifier and mask; the offer is not durable.
#[test]
fn discover_offers_free_pool_address() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1), T0);
    let r = o.reply();
    assert_eq!(r.kind, MessageType::Offer);
    assert_eq!(r.op, 2);
    assert_eq!(r.xid, discover(1).xid);
    assert_eq!(&r.chaddr[..6], &mac(1));
    assert!(subnet1_pool(r.yiaddr), "{}", r.yiaddr);
    assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.ip_opt(opt::SERVER_ID), Some(SERVER_ID));
    assert_eq!(r.u32_opt(opt::LEASE_TIME), Some(3600));
    assert_eq!(r.u32_opt(opt::RENEWAL_T1), Some(1800));
    assert_eq!(r.u32_opt(opt::REBINDING_T2), Some(3600 / 8 * 7));
    assert_eq!(r.ip_opt(opt::SUBNET_MASK), Some(ip(255, 255, 255, 0)));
    assert!(!o.durable());
    assert!(o.changes.is_empty(), "an offer is never written to the WAL");
    assert!(!fx.free.is_free(r.yiaddr), "the offered address is held");
}

/// RFC 2131 §4.3.1: the server reserves the offered address; the same client asking again
/// (retransmission) gets the same offer.
#[test]
fn discover_repeated_gets_same_offer() {
    let mut fx = Fx::new();
    let a = fx.send(&discover(1), T0).reply().yiaddr;
    let b = fx.send(&discover(1), T0 + 5).reply().yiaddr;
    assert_eq!(a, b);
}

/// RFC 2131 §4.3.1: an address offered (held) for one client is not offered to another; the
/// pool runs dry after as many clients as it has addresses and then DISCOVER is dropped.
#[test]
fn discover_distinct_clients_distinct_addresses_then_exhaustion() {
    let mut fx = Fx::new();
    let mut seen = std::collections::HashSet::new();
    for n in 1..=10 {
        let a = fx.send(&discover(n), T0).reply().yiaddr;
        assert!(subnet1_pool(a));
        assert!(seen.insert(a), "{a} offered twice");
    }
    let o = fx.send(&discover(11), T0);
    assert_eq!(o.verdict, Verdict::Drop("pool_exhausted"));
    // A client with a binding still gets its own address when the pool is empty.
    let o = fx.send(&discover(3), T0);
    assert_eq!(o.kind(), Some(MessageType::Offer));
}

/// RFC 2131 §4.3.1: "The client's current address as recorded in the client's current
/// binding" comes first, before the requested address.
#[test]
fn discover_offers_current_binding_first() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let other = (100..=109)
        .map(|d| ip(10, 0, 0, d))
        .find(|&x| x != a)
        .unwrap();
    let o = fx.send(&discover(1).want(other), T0 + 10);
    assert_eq!(o.reply().yiaddr, a);
    assert!(
        fx.free.is_free(other),
        "the requested address was not claimed"
    );
}

/// RFC 2131 §4.3.1: "the client's previous address as recorded in the client's (now expired
/// or released) binding, if that address is ... not already allocated".
#[test]
fn discover_after_release_offers_previous_address_if_free() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    assert_eq!(
        fx.send(&discover(1).release(a), T0 + 1).verdict,
        Verdict::Silent("released")
    );
    // Another client takes some other address meanwhile: the first client's old one is kept.
    let other = (100..=109)
        .map(|d| ip(10, 0, 0, d))
        .find(|&x| x != a)
        .unwrap();
    assert_eq!(fx.lease(&discover(2).want(other), T0 + 2), other);
    assert_eq!(fx.send(&discover(1), T0 + 3).reply().yiaddr, a);
}

/// RFC 2131 §4.3.1: the previous address is not offered when another client now has it.
#[test]
fn discover_after_release_not_previous_address_when_taken() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let _ = fx.send(&discover(1).release(a), T0 + 1);
    let b = fx.lease(&discover(2).want(a), T0 + 2);
    assert_eq!(b, a, "a free requested address is honoured");
    let c = fx.send(&discover(1), T0 + 3).reply().yiaddr;
    assert_ne!(c, a);
    assert!(subnet1_pool(c));
}

/// RFC 2131 §4.3.1: "The address requested in the 'Requested IP Address' option, if that
/// address is valid and not already allocated".
#[test]
fn discover_requested_address_honoured_when_free() {
    let mut fx = Fx::new();
    for d in [109, 104, 100] {
        let want = ip(10, 0, 0, d);
        let o = fx.send(&discover(d).want(want), T0);
        assert_eq!(o.reply().yiaddr, want);
    }
}

/// RFC 2131 §4.3.1: a requested address that is taken, outside the pools, outside the subnet
/// or reserved for another client is ignored; the client gets a free pool address.
#[test]
fn discover_requested_address_ignored_when_not_available() {
    let mut fx = Fx::new();
    let taken = fx.lease(&discover(1), T0);
    for want in [
        taken,
        ip(10, 0, 0, 50),
        ip(10, 1, 0, 120),
        ip(10, 0, 0, 10),
        ip(10, 0, 0, 11),
    ] {
        let n = 20 + want.octets()[3] % 200;
        let o = fx.send(&discover(n).want(want), T0);
        let got = o.reply().yiaddr;
        assert_ne!(got, want, "requested {want}");
        assert!(subnet1_pool(got), "{got}");
    }
    assert_eq!(fx.lease_at(taken).unwrap().client, discover(1).key());
}

/// RFC 2131 §4.3.1 (static allocation): a reservation by hardware address always wins over
/// the requested address, and the reserved address is acknowledged.
#[test]
fn reservation_by_mac_wins() {
    let mut fx = Fx::new();
    let m = discover(0).with_mac([0x02, 0, 0, 0, 0, 0xaa]);
    let o = fx.send(&m.clone().want(ip(10, 0, 0, 105)), T0);
    assert_eq!(o.reply().yiaddr, ip(10, 0, 0, 10));
    assert!(fx.free.is_free(ip(10, 0, 0, 105)));
    let ack = fx.send(&m.clone().selecting(ip(10, 0, 0, 10), SERVER_ID), T0);
    assert_eq!(ack.kind(), Some(MessageType::Ack));
    assert_eq!(ack.changes.last().unwrap().addr, ip(10, 0, 0, 10));
    // Asking for a different address than the reservation is refused.
    let nak = fx.send(&m.selecting(ip(10, 0, 0, 106), SERVER_ID), T0 + 1);
    assert_eq!(nak.kind(), Some(MessageType::Nak));
}

/// RFC 2131 §4.2 / §4.3.1: a reservation by client identifier (option 61) wins, whatever the
/// MAC.
#[test]
fn reservation_by_client_id_wins() {
    let mut fx = Fx::new();
    let cid = [0x01, 0x02, 0, 0, 0, 0, 0xbb];
    for n in [7, 8] {
        let o = fx.send(&discover(n).cid(&cid).want(ip(10, 0, 0, 101)), T0);
        assert_eq!(o.reply().yiaddr, ip(10, 0, 0, 11));
    }
    // The same MAC without the client id is an ordinary client.
    let o = fx.send(&discover(9), T0);
    assert_ne!(o.reply().yiaddr, ip(10, 0, 0, 11));
}

/// RFC 2131 §4.3.1 (the server "need not" reserve the offer; we hold it for
/// offer-hold-secs): the hold lapses through `Shard::reclaim` and the address is free again.
#[test]
fn offer_hold_lapses_via_reclaim() {
    let mut fx = Fx::new();
    let a = fx.send(&discover(1), T0).reply().yiaddr;
    fx.reclaim(T0 + HOLD - 1);
    assert!(!fx.free.is_free(a), "still held before offer-hold-secs");
    fx.reclaim(T0 + HOLD);
    assert!(fx.free.is_free(a), "free after offer-hold-secs");
    let b = fx.send(&discover(2).want(a), T0 + HOLD + 1).reply().yiaddr;
    assert_eq!(b, a);
}

// ---------------------------------------------------------------------------------------
// REQUEST (RFC 2131 §4.3.2)

/// RFC 2131 §4.3.2 SELECTING: the offered address is acknowledged with lease time, T1, T2, server id
/// and mask; the binding (ACTIVE, expiry now + lease) is in `changes` and the ACK is durable
/// (draft-ietf-dhc-failover §3.1.3).
#[test]
fn selecting_acks_offered_address() {
    let mut fx = Fx::new();
    let a = fx.send(&discover(1), T0).reply().yiaddr;
    let o = fx.send(&discover(1).selecting(a, SERVER_ID), T0 + 2);
    let r = o.reply();
    assert_eq!(r.kind, MessageType::Ack);
    assert_eq!(r.yiaddr, a);
    assert_eq!(r.u32_opt(opt::LEASE_TIME), Some(3600));
    assert_eq!(r.u32_opt(opt::RENEWAL_T1), Some(1800));
    assert_eq!(r.u32_opt(opt::REBINDING_T2), Some(3150));
    assert_eq!(r.ip_opt(opt::SERVER_ID), Some(SERVER_ID));
    assert_eq!(r.ip_opt(opt::SUBNET_MASK), Some(ip(255, 255, 255, 0)));
    assert!(o.durable());
    assert_eq!(o.changes.len(), 1);
    let l = o.changes[0];
    assert_eq!(l.addr, a);
    assert_eq!(l.state, BindingState::Active);
    assert_eq!(l.client, discover(1).key());
    assert_eq!(l.subnet_id, 1);
    assert_eq!(l.expires, T0 + 2 + 3600);
    assert_eq!(l.cltt, T0 + 2);
    assert_eq!(l.chaddr, mac(1));
    assert_eq!(fx.lease_at(a), Some(l));
    assert!(!fx.free.is_free(a));
}

/// RFC 2131 §4.3.2: a REQUEST for an address that was not offered and is taken is refused.
#[test]
fn selecting_nak_for_taken_address() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(2).selecting(a, SERVER_ID), T0 + 1);
    let r = o.reply();
    assert_eq!(r.kind, MessageType::Nak);
    assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(!r.has(opt::LEASE_TIME));
    assert_eq!(r.ip_opt(opt::SERVER_ID), Some(SERVER_ID));
    assert!(o.changes.is_empty());
    assert!(!o.durable());
    assert_eq!(fx.lease_at(a).unwrap().client, discover(1).key());
}

/// RFC 2131 §4.3.2: a REQUEST naming another server means the client declined our offer:
/// no reply, and the held address is released.
#[test]
fn selecting_other_server_releases_hold() {
    let mut fx = Fx::new();
    let a = fx.send(&discover(1), T0).reply().yiaddr;
    assert!(!fx.free.is_free(a));
    let o = fx.send(&discover(1).selecting(a, OTHER_SERVER), T0 + 1);
    assert_eq!(o.verdict, Verdict::Silent("other_server"));
    assert!(o.changes.is_empty());
    assert!(fx.free.is_free(a));
}

/// RFC 2131 §4.3.2 INIT-REBOOT: a request matching the client's record is acknowledged.
#[test]
fn init_reboot_ack_when_record_matches() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(1).init_reboot(a), T0 + 100);
    assert_eq!(o.kind(), Some(MessageType::Ack));
    assert_eq!(o.reply().yiaddr, a);
    assert_eq!(o.changes.last().unwrap().expires, T0 + 100 + 3600);
}

/// RFC 2131 §4.3.2 INIT-REBOOT: "If the requested IP address is incorrect or is on the wrong
/// network" the server SHOULD NAK.
#[test]
fn init_reboot_nak_wrong_network() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).init_reboot(ip(10, 1, 0, 120)), T0);
    assert_eq!(o.kind(), Some(MessageType::Nak));
    assert_eq!(o.dest(), Some(Destination::Broadcast));
}

/// RFC 2131 §4.3.2 INIT-REBOOT: an address bound to another client is refused.
#[test]
fn init_reboot_nak_address_of_another_client() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(2).init_reboot(a), T0 + 1);
    assert_eq!(o.kind(), Some(MessageType::Nak));
    assert_eq!(fx.lease_at(a).unwrap().client, discover(1).key());
}

/// RFC 2131 §4.3.2 INIT-REBOOT: "If the DHCP server has no record of this client, then it
/// MUST remain silent" (address free; and an address outside our pools, which another server
/// of the same network may have given).
#[test]
fn init_reboot_silent_without_record() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).init_reboot(ip(10, 0, 0, 104)), T0);
    assert!(matches!(o.verdict, Verdict::Silent(_)), "{:?}", o.verdict);
    assert!(fx.free.is_free(ip(10, 0, 0, 104)));
    let o = fx.send(&discover(1).init_reboot(ip(10, 0, 0, 60)), T0);
    assert!(matches!(o.verdict, Verdict::Silent(_)), "{:?}", o.verdict);
}

/// RFC 2131 §4.3.2 INIT-REBOOT: the server SHOULD NAK when "the client's notion of its IP
/// address is incorrect": we hold an active binding of this client at another address.
#[test]
fn init_reboot_nak_when_bound_elsewhere() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let other = (100..=109)
        .map(|d| ip(10, 0, 0, d))
        .find(|&x| x != a)
        .unwrap();
    let o = fx.send(&discover(1).init_reboot(other), T0 + 1);
    assert_eq!(o.kind(), Some(MessageType::Nak), "{:?}", o.verdict);
    assert!(fx.free.is_free(other));
    assert_eq!(fx.lease_at(a).unwrap().state, BindingState::Active);
}

/// RFC 2131 §4.3.2 RENEWING: the lease is extended; RFC 2131 §4.1 and Table 3: ciaddr is
/// echoed and the ACK is unicast to ciaddr.
#[test]
fn renewing_extends_lease_unicast() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(1).renewing(a), T0 + 1800);
    let r = o.reply();
    assert_eq!(r.kind, MessageType::Ack);
    assert_eq!(r.yiaddr, a);
    assert_eq!(r.ciaddr, a);
    assert_eq!(o.dest(), Some(Destination::Unicast(a)));
    assert!(o.durable());
    assert_eq!(o.changes.last().unwrap().expires, T0 + 1800 + 3600);
    assert_eq!(fx.lease_at(a).unwrap().expires, T0 + 1800 + 3600);
}

/// RFC 2131 §4.3.2 REBINDING (broadcast, ciaddr set): the lease is extended, reply to ciaddr.
#[test]
fn rebinding_extends_lease() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(1).rebinding(a), T0 + 3200);
    assert_eq!(o.kind(), Some(MessageType::Ack));
    assert_eq!(o.dest(), Some(Destination::Unicast(a)));
    assert_eq!(o.changes.last().unwrap().expires, T0 + 3200 + 3600);
}

/// RFC 2131 §4.3.2 RENEWING/REBINDING: a lease that belongs to another client is refused and
/// the other client's binding is untouched.
#[test]
fn renewing_and_rebinding_nak_for_other_clients_lease() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    for m in [discover(2).renewing(a), discover(2).rebinding(a)] {
        let o = fx.send(&m, T0 + 10);
        assert_eq!(o.kind(), Some(MessageType::Nak), "{:?}", o.verdict);
        // RFC 2131 §4.1: with giaddr 0 a DHCPNAK is broadcast.
        assert_eq!(o.dest(), Some(Destination::Broadcast));
        assert!(o.changes.is_empty());
    }
    let l = fx.lease_at(a).unwrap();
    assert_eq!((l.client, l.expires), (discover(1).key(), T0 + 3600));
}

// ---------------------------------------------------------------------------------------
// RELEASE, DECLINE, INFORM (RFC 2131 §4.3.3-§4.3.5)

/// RFC 2131 §4.3.4: on DHCPRELEASE the binding is marked released (durably) and the address
/// is free; no reply.
#[test]
fn release_frees_address() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(1).release(a), T0 + 5);
    assert_eq!(o.verdict, Verdict::Silent("released"));
    assert_eq!(o.changes.len(), 1);
    assert_eq!(o.changes[0].state, BindingState::Released);
    assert_eq!(o.changes[0].addr, a);
    assert_eq!(fx.lease_at(a).unwrap().state, BindingState::Released);
    assert!(fx.free.is_free(a));
}

/// RFC 2131 §4.3.4: a RELEASE from a client that does not hold the address, or naming
/// another server, changes nothing.
#[test]
fn release_by_other_client_or_other_server_ignored() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(2).release(a), T0 + 5);
    assert!(matches!(o.verdict, Verdict::Drop(_) | Verdict::Silent(_)));
    assert!(o.changes.is_empty());
    let o = fx.send(&discover(1).release(a).sid(OTHER_SERVER), T0 + 5);
    assert_eq!(o.verdict, Verdict::Silent("other_server"));
    assert!(o.changes.is_empty());
    assert!(!fx.free.is_free(a));
    assert_eq!(fx.lease_at(a).unwrap().state, BindingState::Active);
}

/// RFC 2131 §4.3.3: on DHCPDECLINE the server "MUST mark the network address as not
/// available": ABANDONED until the probation ends, offered to nobody; then free again.
#[test]
fn decline_quarantines_until_probation_end() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(1).decline(a), T0 + 3);
    assert!(matches!(o.verdict, Verdict::Silent(_)), "{:?}", o.verdict);
    assert_eq!(o.changes.len(), 1);
    assert_eq!(o.changes[0].state, BindingState::Abandoned);
    assert_eq!(o.changes[0].expires, T0 + 3 + PROBATION);
    assert!(!fx.free.is_free(a));
    // Nobody is offered it, not even when asking for it; the decliner gets another one.
    for n in 1..=10 {
        let o = fx.send(&discover(n).want(a), T0 + 4);
        if let Some(r) = &o.reply {
            assert_ne!(r.yiaddr, a, "client {n}");
        }
    }
    fx.reclaim(T0 + 3 + PROBATION - 1);
    assert!(!fx.free.is_free(a));
    fx.reclaim(T0 + 3 + PROBATION + HOLD);
    assert!(fx.free.is_free(a), "free after the probation");
    let o = fx.send(&discover(50).want(a), T0 + 3 + PROBATION + HOLD + 1);
    assert_eq!(o.reply().yiaddr, a);
}

/// RFC 2131 §4.3.3: the declined address stays quarantined when the decliner then binds
/// another address (its ABANDONED record is not "released" by the new binding).
#[test]
fn decline_then_new_lease_keeps_quarantine() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let _ = fx.send(&discover(1).decline(a), T0 + 1);
    let b = fx.lease(&discover(1), T0 + 2);
    assert_ne!(b, a);
    assert!(!fx.free.is_free(a));
    assert_eq!(fx.lease_at(a).unwrap().state, BindingState::Abandoned);
    let o = fx.send(&discover(1).init_reboot(b), T0 + 3);
    assert_eq!(o.kind(), Some(MessageType::Ack));
    assert!(!fx.free.is_free(a));
}

/// RFC 2131 §4.3.3: a DECLINE of an address the client was never given is dropped (a client
/// cannot quarantine others' addresses).
#[test]
fn decline_of_unheld_address_dropped() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(2).decline(a), T0 + 1);
    assert_eq!(o.verdict, Verdict::Drop("decline_unknown_binding"));
    assert!(o.changes.is_empty());
    assert_eq!(fx.lease_at(a).unwrap().state, BindingState::Active);
    let o = fx.send(&discover(2).decline(ip(10, 0, 0, 107)), T0 + 1);
    assert_eq!(o.verdict, Verdict::Drop("decline_unknown_binding"));
    assert!(fx.free.is_free(ip(10, 0, 0, 107)));
}

/// RFC 2131 §4.3.3: declining a bound address while an offer is held for the client at
/// another address (e.g. a binding learnt from a failover partner) must not leak the offered
/// address: it is free again once the decline cancelled the offer.
#[test]
fn decline_with_other_offer_does_not_leak_it() {
    let mut fx = Fx::new();
    let m = discover(1);
    let a = fx.lease(&m, T0);
    let y = (100..=109)
        .map(|d| ip(10, 0, 0, d))
        .find(|&x| x != a)
        .unwrap();
    assert!(fx.free.try_take(y));
    let shards = fx.shards.len();
    let shard = &mut fx.shards[m.key().shard(shards)];
    let mut held = shard.lease_of(&m.key(), 1).unwrap();
    held.addr = y;
    held.state = BindingState::Free;
    shard.hold_offer(held, T0 + HOLD);
    let o = fx.send(&m.decline(a), T0 + 1);
    assert_eq!(
        o.changes.last().map(|l| l.state),
        Some(BindingState::Abandoned)
    );
    fx.reclaim(T0 + 10 * HOLD);
    assert!(fx.free.is_free(y), "the cancelled offer's address leaked");
    assert!(!fx.free.is_free(a));
}

/// RFC 2131 §4.3.5: DHCPINFORM gets a DHCPACK with no lease time, yiaddr 0, ciaddr echoed
/// (Table 3), unicast to ciaddr, and no binding.
#[test]
fn inform_acks_without_lease() {
    let mut fx = Fx::new();
    let c = ip(10, 0, 0, 50);
    let o = fx.send(&discover(1).inform(c).prl(&[3, 6]), T0);
    let r = o.reply();
    assert_eq!(r.kind, MessageType::Ack);
    assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.ciaddr, c);
    for code in [opt::LEASE_TIME, opt::RENEWAL_T1, opt::REBINDING_T2] {
        assert!(!r.has(code), "option {code}");
    }
    assert_eq!(r.ip_opt(opt::ROUTER), Some(ip(10, 0, 0, 1)));
    assert_eq!(o.dest(), Some(Destination::Unicast(c)));
    assert!(!o.durable());
    assert!(o.changes.is_empty());
}

// ---------------------------------------------------------------------------------------
// Destinations (RFC 2131 §4.1)

/// RFC 2131 §4.1: giaddr set → to the relay; broadcast bit → broadcast; neither and ciaddr
/// 0 → unicast to yiaddr at chaddr.
#[test]
fn destinations_follow_section_4_1() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).relay(ip(10, 1, 0, 1)), T0);
    assert_eq!(o.dest(), Some(Destination::Relay(ip(10, 1, 0, 1))));
    assert_eq!(o.reply().giaddr, ip(10, 1, 0, 1));

    let o = fx.send(&discover(2).bcast_flag(), T0);
    assert_eq!(o.dest(), Some(Destination::Broadcast));
    assert_eq!(o.reply().flags & FLAG_BROADCAST, FLAG_BROADCAST);

    let o = fx.send(&discover(3), T0);
    let y = o.reply().yiaddr;
    assert_eq!(
        o.dest(),
        Some(Destination::HwUnicast { ip: y, mac: mac(3) })
    );

    let o = fx.send(&discover(3).ci(ip(10, 0, 0, 70)), T0);
    assert_eq!(o.dest(), Some(Destination::Unicast(ip(10, 0, 0, 70))));
}

/// RFC 2131 §4.1: a DHCPNAK with giaddr 0 is broadcast; §4.3.2: a relayed DHCPNAK goes to
/// the relay with the broadcast bit set.
#[test]
fn nak_destinations() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    let o = fx.send(&discover(2).selecting(a, SERVER_ID), T0);
    assert_eq!(o.kind(), Some(MessageType::Nak));
    assert_eq!(o.dest(), Some(Destination::Broadcast));

    let b = fx.lease(&discover(3).relay(ip(10, 1, 0, 1)), T0);
    let o = fx.send(&discover(4).relay(ip(10, 1, 0, 1)).init_reboot(b), T0);
    assert_eq!(o.kind(), Some(MessageType::Nak));
    assert_eq!(o.dest(), Some(Destination::Relay(ip(10, 1, 0, 1))));
    assert_eq!(o.reply().flags & FLAG_BROADCAST, FLAG_BROADCAST);
}

// ---------------------------------------------------------------------------------------
// Subnet selection

/// RFC 2131 §4.3.1: a relayed request gets an address from the subnet containing giaddr.
#[test]
fn subnet_by_giaddr_inside() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).relay(ip(10, 1, 0, 1)).on(ETH1), T0);
    assert!(subnet2_pool(o.reply().yiaddr));
}

/// RFC 2131 §4.3.1 (a relay address that is not inside the subnet, e.g. a loopback):
/// configured relay-addresses select the subnet.
#[test]
fn subnet_by_relay_address() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).relay(ip(198, 51, 100, 7)), T0);
    assert!(subnet2_pool(o.reply().yiaddr));
}

/// RFC 3527 §3: the link-selection sub-option of option 82 selects the subnet, overriding
/// giaddr (which still receives the reply).
#[test]
fn link_selection_beats_giaddr() {
    let mut fx = Fx::new();
    let m = discover(1)
        .relay(ip(10, 0, 0, 1))
        .agent_info(&agent_info_with_link(ip(10, 1, 0, 0)));
    let o = fx.send(&m, T0);
    assert!(subnet2_pool(o.reply().yiaddr));
    assert_eq!(o.dest(), Some(Destination::Relay(ip(10, 0, 0, 1))));
}

/// RFC 3011 §2: the subnet selection option (118) selects the subnet, overriding the
/// receiving interface and giaddr; the server returns an identical copy of the option.
#[test]
fn subnet_selection_option() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).subnet_selection(ip(10, 1, 0, 9)).on(ETH1), T0);
    let r = o.reply();
    assert!(subnet2_pool(r.yiaddr));
    assert_eq!(r.opts.get(&opt::SUBNET_SELECTION), Some(&vec![10, 1, 0, 9]));
    let o = fx.send(
        &discover(2)
            .relay(ip(10, 0, 0, 1))
            .subnet_selection(ip(10, 1, 0, 9)),
        T0,
    );
    assert!(subnet2_pool(o.reply().yiaddr));
}

/// RFC 2131 §4.3.1: a directly attached client is served from the subnet of the receiving
/// interface.
#[test]
fn subnet_by_receiving_interface() {
    let mut fx = Fx::new();
    assert!(subnet1_pool(
        fx.send(&discover(1).on(ETH1), T0).reply().yiaddr
    ));
    assert!(subnet2_pool(
        fx.send(&discover(2).on(ETH2), T0).reply().yiaddr
    ));
}

/// RFC 2131 §4.3.1: no subnet for the request (unknown interface, unknown giaddr, link
/// selection outside every subnet) → dropped.
#[test]
fn no_subnet_dropped() {
    let mut fx = Fx::new();
    for m in [
        discover(1).on(9),
        discover(1).relay(ip(203, 0, 113, 1)),
        discover(1)
            .relay(ip(10, 0, 0, 1))
            .agent_info(&agent_info_with_link(ip(172, 16, 0, 0))),
    ] {
        assert_eq!(fx.send(&m, T0).verdict, Verdict::Drop("no_subnet"));
    }
}

// ---------------------------------------------------------------------------------------
// Options

/// RFC 2132 §9.8: options the client asked for are sent in the order of its parameter
/// request list; options it did not ask for (custom ones) are not.
#[test]
fn prl_order_honoured() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).prl(&[15, 42, 6, 3, 28]), T0);
    let r = o.reply();
    let pos: Vec<usize> = [15, 42, 6, 3, 28].iter().map(|&c| r.pos(c)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{:?}", r.order);
    assert_eq!(r.opts[&opt::DOMAIN_NAME], b"example.net");
    assert_eq!(r.ip_opt(opt::BROADCAST), Some(ip(10, 0, 0, 255)));
    let o = fx.send(&discover(2).prl(&[3]), T0);
    assert!(!o.reply().has(42));
    assert!(!o.reply().has(opt::DNS));
}

/// RFC 3396 §7: a code listed twice in the PRL must not produce two instances (which the
/// client would concatenate into a corrupt value).
#[test]
fn prl_duplicate_codes_sent_once() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).prl(&[15, 3, 15, 3]), T0);
    let r = o.reply();
    assert_eq!(r.order.iter().rposition(|&c| c == 15), Some(r.pos(15)));
    assert_eq!(r.opts[&opt::DOMAIN_NAME], b"example.net");
    assert_eq!(r.opts[&opt::ROUTER], ip(10, 0, 0, 1).octets());
}

/// RFC 2131 §4.3.1 / RFC 2132: without a PRL the server sends routers, DNS servers, the
/// domain name and its configured options.
#[test]
fn no_prl_sends_usual_set() {
    let mut fx = Fx::new();
    let r = fx.send(&discover(1), T0).reply().clone();
    assert_eq!(r.ip_opt(opt::ROUTER), Some(ip(10, 0, 0, 1)));
    let mut dns = ip(10, 0, 0, 53).octets().to_vec();
    dns.extend_from_slice(&ip(10, 0, 0, 54).octets());
    assert_eq!(r.opts[&opt::DNS], dns);
    assert_eq!(r.opts[&opt::DOMAIN_NAME], b"example.net");
    assert_eq!(r.ip_opt(42), Some(ip(10, 0, 0, 123)));
}

/// RFC 3046 §2.2: the relay agent information option is echoed byte for byte, in OFFER, ACK
/// and NAK.
#[test]
fn option_82_echoed_verbatim() {
    let mut fx = Fx::new();
    let ri = agent_info_with_link(ip(10, 1, 0, 0));
    let m = discover(1).relay(ip(10, 1, 0, 1)).agent_info(&ri);
    let o = fx.send(&m, T0);
    assert_eq!(o.reply().opts[&opt::RELAY_AGENT_INFO], ri);
    let a = o.reply().yiaddr;
    let o = fx.send(&m.clone().selecting(a, SERVER_ID), T0);
    assert_eq!(o.kind(), Some(MessageType::Ack));
    assert_eq!(o.reply().opts[&opt::RELAY_AGENT_INFO], ri);
    let o = fx.send(
        &discover(2)
            .relay(ip(10, 1, 0, 1))
            .agent_info(&ri)
            .selecting(a, SERVER_ID),
        T0,
    );
    assert_eq!(o.kind(), Some(MessageType::Nak));
    assert_eq!(o.reply().opts[&opt::RELAY_AGENT_INFO], ri);
    // RFC 3046 §2.2: copied as the last option of the reply.
    assert_eq!(o.reply().order.last(), Some(&opt::RELAY_AGENT_INFO));
    let o = fx.send(&discover(3).relay(ip(10, 1, 0, 1)).agent_info(&ri), T0);
    assert_eq!(o.reply().order.last(), Some(&opt::RELAY_AGENT_INFO));
}

/// RFC 6842 §3: the server MUST return the client identifier in OFFER, ACK and NAK.
#[test]
fn client_id_echoed() {
    let mut fx = Fx::new();
    let cid = [0xff, 1, 2, 3, 4, 5, 6, 7, 8];
    let o = fx.send(&discover(1).cid(&cid), T0);
    assert_eq!(o.reply().opts[&opt::CLIENT_ID], cid);
    let a = o.reply().yiaddr;
    let o = fx.send(&discover(1).cid(&cid).selecting(a, SERVER_ID), T0);
    assert_eq!(o.kind(), Some(MessageType::Ack));
    assert_eq!(o.reply().opts[&opt::CLIENT_ID], cid);
    assert_eq!(
        o.changes[0].client,
        ClientKey::from_client_id(&cid).unwrap()
    );
    let o = fx.send(&discover(2).cid(&[0xff, 9, 9]).selecting(a, SERVER_ID), T0);
    assert_eq!(o.kind(), Some(MessageType::Nak));
    assert_eq!(o.reply().opts[&opt::CLIENT_ID], [0xff, 9, 9]);
}

/// RFC 2132 §9.10 / RFC 2131 §2: the reply fits the client's maximum message size (minus
/// IP and UDP headers; 576 when absent or smaller); options that do not fit are skipped and
/// later ones that fit are still sent.
#[test]
fn max_message_size_respected() {
    let mut fx = Fx::new();
    let prl = [43, 66, 3];
    for (max, limit) in [
        (None, 576),
        (Some(300), 576),
        (Some(576), 576),
        (Some(700), 700),
    ] {
        let mut m = discover(1).on(ETH2).prl(&prl);
        if let Some(x) = max {
            m = m.max_size(x);
        }
        let r = fx.send(&m, T0).reply().clone();
        assert!(r.len <= limit - 28, "{max:?}: {} > {}", r.len, limit - 28);
        assert_eq!(
            r.opts[&43].len(),
            BIG43,
            "{max:?}: the first big option fits"
        );
        assert_eq!(r.ip_opt(opt::ROUTER), Some(ip(10, 1, 0, 1)), "{max:?}");
        assert_eq!(r.has(66), limit > 576, "{max:?}: option 66 only with room");
    }
}

/// RFC 2132 §9.8: configured custom options are sent when asked for, verbatim.
#[test]
fn custom_option_sent_when_asked() {
    let mut fx = Fx::new();
    let r = fx
        .send(&discover(1).on(ETH2).prl(&[66]).max_size(1500), T0)
        .reply()
        .clone();
    assert_eq!(r.opts[&66], vec![b't'; BIG66]);
    assert!(!r.has(43));
}

// ---------------------------------------------------------------------------------------
// Rapid commit, lease time

/// RFC 4039 §4: with rapid commit enabled, DISCOVER + option 80 gets a durable DHCPACK that
/// carries option 80; without it (subnet 1), an OFFER without option 80.
#[test]
fn rapid_commit() {
    let mut fx = Fx::new();
    let o = fx.send(&discover(1).on(ETH2).rapid(), T0);
    let r = o.reply();
    assert_eq!(r.kind, MessageType::Ack);
    assert!(subnet2_pool(r.yiaddr));
    assert_eq!(r.opts.get(&opt::RAPID_COMMIT), Some(&Vec::new()));
    assert!(o.durable());
    assert_eq!(o.changes.last().unwrap().state, BindingState::Active);
    assert_eq!(o.changes.last().unwrap().expires, T0 + 1800);
    assert_eq!(fx.lease_at(r.yiaddr).unwrap().state, BindingState::Active);

    let o = fx.send(&discover(2).on(ETH1).rapid(), T0);
    assert_eq!(o.kind(), Some(MessageType::Offer));
    assert!(!o.reply().has(opt::RAPID_COMMIT));
    assert!(o.changes.is_empty());

    let o = fx.send(&discover(3).on(ETH2), T0);
    assert_eq!(o.kind(), Some(MessageType::Offer));
}

/// RFC 2131 §4.3.1: the lease time the client asks for (51) is granted within the server's
/// bounds; RFC 2131 §4.4.5: T1 = 0.5, T2 = 0.875 of it.
#[test]
fn requested_lease_time_clamped() {
    let mut fx = Fx::new();
    for (n, asked, granted) in [(1, 60, 600), (2, 100_000, 7200), (3, 5000, 5000)] {
        let m = discover(n).lease_secs(asked);
        let r = fx.send(&m, T0).reply().clone();
        assert_eq!(r.u32_opt(opt::LEASE_TIME), Some(granted));
        let o = fx.send(&m.selecting(r.yiaddr, SERVER_ID), T0);
        let a = o.reply();
        assert_eq!(a.u32_opt(opt::LEASE_TIME), Some(granted));
        let (t1, t2) = (
            a.u32_opt(opt::RENEWAL_T1).unwrap(),
            a.u32_opt(opt::REBINDING_T2).unwrap(),
        );
        assert_eq!(t1, granted / 2);
        assert!(t1 < t2 && t2 < granted, "{t1} {t2} {granted}");
        assert_eq!(o.changes.last().unwrap().expires, T0 + granted);
    }
}

// ---------------------------------------------------------------------------------------
// Property test: allocation invariants across two shards

const PROP_CONFIG: &str = r#"
[server]
interfaces = ["eth1"]
server-id = "192.0.2.1"
offer-hold-secs = 20
decline-probation-secs = 200

[[subnet4]]
id = 7
subnet = "10.7.0.0/24"
interface = "eth1"
lease-time = 300
rapid-commit = true
min-lease-time = 60
max-lease-time = 900

[[subnet4.pool]]
range = "10.7.0.10-10.7.0.25"

[[subnet4.reservation]]
hw-address = "02:00:00:00:01:00"
address = "10.7.0.5"
"#;

fn prop_pool(a: Ipv4Addr) -> bool {
    (ip(10, 7, 0, 10)..=ip(10, 7, 0, 25)).contains(&a)
}

#[derive(Debug, Clone)]
enum Op {
    Discover(u8, Option<u8>, bool),
    Select(u8, Option<u8>),
    SelectOther(u8),
    InitReboot(u8, u8),
    Renew(u8),
    Rebind(u8),
    Release(u8),
    Decline(u8),
    Inform(u8),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0u8..50;
    let a = 5u8..30;
    prop_oneof![
        4 => (c.clone(), proptest::option::of(a.clone()), proptest::bool::weighted(0.2))
            .prop_map(|(c, a, r)| Op::Discover(c, a, r)),
        4 => (c.clone(), proptest::option::of(a.clone())).prop_map(|(c, a)| Op::Select(c, a)),
        1 => c.clone().prop_map(Op::SelectOther),
        1 => (c.clone(), a).prop_map(|(c, a)| Op::InitReboot(c, a)),
        2 => c.clone().prop_map(Op::Renew),
        1 => c.clone().prop_map(Op::Rebind),
        2 => c.clone().prop_map(Op::Release),
        1 => c.clone().prop_map(Op::Decline),
        1 => c.prop_map(Op::Inform),
        2 => (1u16..400).prop_map(Op::Advance),
    ]
}

/// A client of the property test: odd ones use a client identifier.
fn prop_client(c: u8) -> Msg {
    let m = discover(c);
    if c % 2 == 1 {
        m.cid(&[0xff, c, c, 7])
    } else {
        m
    }
}

fn check_invariants(fx: &Fx, acked: &[Ipv4Addr]) -> Result<(), TestCaseError> {
    let mut active: HashMap<Ipv4Addr, ClientKey> = HashMap::new();
    for s in &fx.shards {
        for l in s.iter() {
            if l.state == BindingState::Active
                && let Some(prev) = active.insert(l.addr, l.client)
            {
                prop_assert!(false, "{} active for {} and {}", l.addr, prev, l.client);
            }
            if l.state.holds_address() && l.addr != ip(10, 7, 0, 5) {
                prop_assert!(prop_pool(l.addr), "{l:?} outside the pool");
                prop_assert!(!fx.free.is_free(l.addr), "{l:?} is marked free");
            }
        }
    }
    for &a in acked {
        prop_assert!(
            prop_pool(a) || a == ip(10, 7, 0, 5),
            "ACKed {a} outside the pool"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// RFC 2131 §4.3.1-§4.3.4 and §4.1 under random interleavings: no address is ACTIVE for two
    /// clients, every ACK is in its subnet's pool, bound and quarantined addresses are never
    /// free in the free map, and the engine never panics.
    #[test]
    fn allocation_invariants(ops in proptest::collection::vec(op(), 1..160)) {
        let mut fx = Fx::with(PROP_CONFIG, 2);
        let mut now = T0;
        let mut offered: HashMap<u8, Ipv4Addr> = HashMap::new();
        let mut bound: HashMap<u8, Ipv4Addr> = HashMap::new();
        let addr = |d: u8| ip(10, 7, 0, d);
        for op in ops {
            let mut acked = Vec::new();
            let out = match op {
                Op::Advance(s) => {
                    now += u32::from(s);
                    fx.reclaim(now);
                    None
                }
                Op::Discover(c, want, rapid) => {
                    let mut m = prop_client(c);
                    if rapid {
                        m = m.rapid();
                    }
                    if let Some(d) = want {
                        m = m.want(addr(d));
                    }
                    Some((c, fx.send(&m, now)))
                }
                Op::Select(c, want) => {
                    let a = want.map(addr).or_else(|| offered.get(&c).copied()).unwrap_or(addr(12));
                    Some((c, fx.send(&prop_client(c).selecting(a, SERVER_ID), now)))
                }
                Op::SelectOther(c) => {
                    let a = offered.get(&c).copied().unwrap_or(addr(13));
                    Some((c, fx.send(&prop_client(c).selecting(a, OTHER_SERVER), now)))
                }
                Op::InitReboot(c, d) => Some((c, fx.send(&prop_client(c).init_reboot(addr(d)), now))),
                Op::Renew(c) => {
                    let a = bound.get(&c).copied().unwrap_or(addr(14));
                    Some((c, fx.send(&prop_client(c).renewing(a), now)))
                }
                Op::Rebind(c) => {
                    let a = bound.get(&c).copied().unwrap_or(addr(15));
                    Some((c, fx.send(&prop_client(c).rebinding(a), now)))
                }
                Op::Release(c) => {
                    let a = bound.get(&c).copied().unwrap_or(addr(16));
                    Some((c, fx.send(&prop_client(c).release(a), now)))
                }
                Op::Decline(c) => {
                    let a = bound.get(&c).or(offered.get(&c)).copied().unwrap_or(addr(17));
                    Some((c, fx.send(&prop_client(c).decline(a), now)))
                }
                Op::Inform(c) => Some((c, fx.send(&prop_client(c).inform(addr(40)), now))),
            };
            if let Some((c, o)) = out {
                match o.reply.as_ref().map(|r| (r.kind, r.yiaddr)) {
                    Some((MessageType::Offer, y)) => {
                        prop_assert!(prop_pool(y) || y == addr(5), "offered {y}");
                        offered.insert(c, y);
                    }
                    Some((MessageType::Ack, y)) if !y.is_unspecified() => {
                        acked.push(y);
                        bound.insert(c, y);
                        prop_assert!(o.durable());
                        prop_assert_eq!(o.changes.last().map(|l| (l.addr, l.state)), Some((y, BindingState::Active)));
                    }
                    _ => {}
                }
            }
            check_invariants(&fx, &acked)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Failover rules (draft-ietf-dhc-failover-12), as the engine applies a `FailoverView`.

const MCLT: u32 = 600;

/// A view of a partner in NORMAL without load balancing, allocating from `share`.
fn fo_view(share: Share) -> FailoverView {
    FailoverView {
        enabled: true,
        respond: true,
        serve_new: true,
        allocate: true,
        share,
        mclt: MCLT,
        lb: None,
    }
}

/// §5.4: the secondary allocates only BACKUP addresses, the primary only FREE ones; when
/// its share is empty a server offers nothing rather than the partner's addresses.
#[test]
fn failover_allocates_only_from_own_share() {
    let mut fx = Fx::new();
    for last in [104, 105, 106] {
        fx.free.set_backup(ip(10, 0, 0, last), true);
    }
    fx.fo = fo_view(Share::Backup);
    let mut got = Vec::new();
    for n in 0..3 {
        let o = fx.send(&discover(n), T0);
        assert_eq!(o.kind(), Some(MessageType::Offer), "{:?}", o.verdict);
        got.push(o.reply().yiaddr);
    }
    got.sort();
    assert_eq!(
        got,
        [ip(10, 0, 0, 104), ip(10, 0, 0, 105), ip(10, 0, 0, 106)]
    );
    assert_eq!(
        fx.send(&discover(3), T0).verdict,
        Verdict::Drop("pool_exhausted")
    );
    // A client asking for a FREE (primary's) address gets none of it from the secondary.
    let o = fx.send(&discover(4).want(ip(10, 0, 0, 100)), T0);
    assert_eq!(o.verdict, Verdict::Drop("pool_exhausted"));
    // The primary's view: FREE addresses only.
    fx.fo = fo_view(Share::Free);
    let o = fx.send(&discover(5).want(ip(10, 0, 0, 104)), T0);
    assert_eq!(o.kind(), Some(MessageType::Offer));
    assert!(!fx.free.is_backup(o.reply().yiaddr), "{}", o.reply().yiaddr);
}

/// §5.2.1: a new client's lease is at most the MCLT; once the partner acknowledged the
/// potential expiry sent ahead, the renewal gets the full time; the record is marked as an
/// update still to send.
#[test]
fn failover_mclt_bounds_lease_time_until_the_partner_acknowledges() {
    let mut fx = Fx::new();
    fx.fo = fo_view(Share::Any);
    let m = discover(1);
    let o = fx.send(&m, T0);
    assert_eq!(o.reply().u32_opt(opt::LEASE_TIME), Some(MCLT));
    let a = o.reply().yiaddr;
    let ack = fx.send(&m.clone().selecting(a, SERVER_ID), T0);
    assert_eq!(ack.kind(), Some(MessageType::Ack));
    assert_eq!(ack.reply().u32_opt(opt::LEASE_TIME), Some(MCLT));
    // T1/T2 keep their proportions of the shortened lease.
    assert_eq!(ack.reply().u32_opt(opt::RENEWAL_T1), Some(MCLT / 2));
    assert!(ack.changes.iter().all(|c| c.update_pending));
    // Renewal before the partner acknowledged anything: still the MCLT from now.
    let r = fx.send(&m.clone().renewing(a), T0 + 100);
    assert_eq!(r.reply().u32_opt(opt::LEASE_TIME), Some(MCLT));
    // The partner acknowledges a potential expiry of T0 + 3600.
    let key = m.key();
    let shards = fx.shards.len();
    let cltt = fx.lease_at(a).unwrap().cltt;
    fx.shards[key.shard(shards)]
        .partner_acked(a, &key, cltt, T0 + 3600)
        .expect("record");
    let r = fx.send(&m.clone().renewing(a), T0 + 200);
    assert_eq!(r.reply().u32_opt(opt::LEASE_TIME), Some(3600));
    // Never past acknowledged + MCLT.
    let r = fx.send(&m.clone().renewing(a).lease_secs(7200), T0 + 200);
    assert_eq!(r.reply().u32_opt(opt::LEASE_TIME), Some(3600 + MCLT - 200));
}

/// §9.7.1 (RECOVER-DONE): only RENEWING and REBINDING are answered; unresponsive states
/// answer nothing.
#[test]
fn failover_renewals_only_and_unresponsive_states() {
    let mut fx = Fx::new();
    let m = discover(1);
    let a = fx.lease(&m, T0);
    fx.fo = FailoverView {
        serve_new: false,
        allocate: false,
        ..fo_view(Share::Any)
    };
    assert_eq!(
        fx.send(&discover(2), T0).verdict,
        Verdict::Silent("failover_renewals_only")
    );
    assert_eq!(
        fx.send(&m.clone().init_reboot(a), T0).verdict,
        Verdict::Silent("failover_renewals_only")
    );
    assert_eq!(
        fx.send(&m.clone().renewing(a), T0 + 10).kind(),
        Some(MessageType::Ack)
    );
    assert_eq!(
        fx.send(&m.clone().rebinding(a), T0 + 10).kind(),
        Some(MessageType::Ack)
    );
    fx.fo = FailoverView {
        respond: false,
        ..fo_view(Share::Any)
    };
    assert_eq!(
        fx.send(&m.clone().renewing(a), T0 + 20).verdict,
        Verdict::Silent("failover_not_serving")
    );
}

/// RFC 3074 in NORMAL: a client of the partner's hash buckets is left to the partner, unless
/// its `secs` is above load-balance-max-seconds; renewals are answered whatever the bucket.
#[test]
fn failover_load_balancing() {
    let mut fx = Fx::new();
    let m = discover(1);
    let a = fx.lease(&m, T0);
    fx.fo = FailoverView {
        lb: Some(LoadBalance {
            buckets: crate::failover::Buckets::NONE,
            max_secs: 3,
        }),
        ..fo_view(Share::Any)
    };
    assert_eq!(
        fx.send(&discover(2), T0).verdict,
        Verdict::Silent("failover_lb_partner")
    );
    let mut late = discover(2);
    late.secs = 4;
    assert_eq!(fx.send(&late, T0).kind(), Some(MessageType::Offer));
    assert_eq!(
        fx.send(&m.clone().renewing(a), T0 + 10).kind(),
        Some(MessageType::Ack)
    );
    // draft-12 §9.8.2: every REBINDING is processed, whatever the bucket.
    assert_eq!(
        fx.send(&m.clone().rebinding(a), T0 + 20).kind(),
        Some(MessageType::Ack)
    );
    fx.fo.lb = Some(LoadBalance {
        buckets: crate::failover::Buckets::ALL,
        max_secs: 3,
    });
    assert_eq!(fx.send(&discover(3), T0).kind(), Some(MessageType::Offer));
}

/// §5.2.1: with a partner a released address is not free until the MCLT has passed (the
/// partner may have extended the binding meanwhile).
#[test]
fn failover_released_address_waits_the_mclt() {
    let mut fx = Fx::new();
    fx.fo = fo_view(Share::Any);
    let m = discover(1);
    let a = fx.lease(&m, T0);
    assert_eq!(
        fx.send(&m.clone().release(a), T0 + 10).verdict,
        Verdict::Silent("released")
    );
    assert!(!fx.free.is_free(a), "held for the MCLT");
    // Another client cannot get it.
    let o = fx.send(&discover(2).want(a), T0 + 20);
    assert_ne!(o.reply().yiaddr, a);
    // The sweep frees it only MCLT after the end, as FREE, marked for the partner.
    for s in &mut fx.shards {
        s.reclaim_delayed(T0 + 10 + MCLT - 1, 100_000, &fx.free, MCLT, &mut |_| {});
    }
    assert!(!fx.free.is_free(a));
    let mut ended = Vec::new();
    for s in &mut fx.shards {
        s.reclaim_delayed(T0 + 10 + MCLT, 100_000, &fx.free, MCLT, &mut |l| {
            ended.push(*l);
        });
    }
    assert!(fx.free.is_free(a));
    assert!(
        ended
            .iter()
            .any(|l| l.addr == a && l.state == BindingState::Free && l.update_pending)
    );
}

/// RFC 2131 §3.2, §4.3.2: after a reload removed its pool, a binding's renewal is refused
/// (DHCPNAK) while its record is kept; the client's next DISCOVER gets an address of the pool
/// now configured.
#[test]
fn renewal_of_an_address_whose_pool_was_removed_is_naked() {
    let mut fx = Fx::new();
    let a = fx.lease(&discover(1), T0);
    assert!(subnet1_pool(a));
    // The reload: subnet 1's pool moves to .120-.129 (the shards and their records stay).
    let moved = config().replace(
        "range = \"10.0.0.100-10.0.0.109\"",
        "range = \"10.0.0.120-10.0.0.129\"",
    );
    let cfg = crate::config::parse(&moved, "engine-test.toml").unwrap();
    let (mut engine, ranges) = crate::engine::build_v4(&cfg);
    engine.bind_interface("eth1", ETH1);
    engine.bind_interface("eth2", ETH2);
    let reserved: Vec<Ipv4Addr> = engine.reserved_addresses().collect();
    fx.engine = engine;
    fx.free = FreeMap::new(&ranges, 2, &|x| reserved.contains(&x)).unwrap();
    for m in [discover(1).renewing(a), discover(1).rebinding(a)] {
        let o = fx.send(&m, T0 + 1800);
        assert_eq!(o.kind(), Some(MessageType::Nak), "{:?}", o.verdict);
        assert!(o.changes.is_empty());
    }
    assert_eq!(fx.lease_at(a).map(|l| l.state), Some(BindingState::Active));
    let b = fx.lease(&discover(1), T0 + 1801);
    assert!((120..=129).contains(&b.octets()[3]), "{b}");
}
