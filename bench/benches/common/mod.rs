//! Fixtures shared by the micro-benchmarks (`bench/benches/*.rs`) and the instruction-count
//! binary (`bench/src/bin/icount.rs`): realistic DHCPv4 and DHCPv6 requests, the reply a
//! server writes, and an engine with a prepared shard and free map.
//!
//! Every includer uses a different subset of these items.
#![allow(
    dead_code,
    reason = "each includer uses a different subset of the fixtures"
)]

use std::net::{Ipv4Addr, Ipv6Addr};

use twinlease::engine::v4::{Engine, Ingress, MAX_REPLY, Verdict};
use twinlease::lease::Lease4;
use twinlease::pool::{FreeMap, Shard};
use twinlease::wire::v4::{self, MessageType, ReplyHeader, ReplyWriter, Request, Scratch, opt};
use twinlease::wire::v6;

/// The server identifier of the engine fixture.
pub const SERVER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The relay agent (giaddr) every DHCPv4 request comes through.
pub const GIADDR: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
/// "Now" for the engine: constant, so that held offers and leases never expire mid-bench.
pub const NOW: u32 = 1_700_000_000;
/// Clients in the engine fixture's shard.
pub const CLIENTS: u32 = 16_384;

/// The MAC of client `i` (locally administered).
#[must_use]
pub fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

/// A relayed DHCPv4 DISCOVER (or, with `selecting = Some((addr, server))`, a REQUEST in
/// SELECTING state) from client `i`, as a Windows/CPE client sends it through a relay
/// agent: message type, client identifier, maximum message size, hostname, vendor class,
/// parameter request list, and the relay agent information (option 82: circuit id and
/// remote id) the relay appended.
#[must_use]
pub fn v4_request(i: u32, selecting: Option<(Ipv4Addr, Ipv4Addr)>) -> Vec<u8> {
    let m = mac(i);
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&m);
    let hdr = ReplyHeader {
        op: v4::BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 1,
        xid: 0x5a00_0000 ^ i,
        secs: 3,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: GIADDR,
        chaddr,
    };
    let mut buf = vec![0u8; 1500];
    let mut w = ReplyWriter::new(&mut buf, &hdr).expect("buffer is large enough");
    let kind = if selecting.is_some() {
        MessageType::Request
    } else {
        MessageType::Discover
    };
    let mut client_id = [1u8; 7];
    client_id[1..].copy_from_slice(&m);
    let host = format!("cpe-{i:08x}");
    let mut agent = Vec::with_capacity(32);
    let circuit = format!("ge-0/0/1.{}:{}", 100 + i % 8, i % 4094 + 1);
    agent.extend([opt::relay::CIRCUIT_ID, circuit.len() as u8]);
    agent.extend_from_slice(circuit.as_bytes());
    agent.extend([opt::relay::REMOTE_ID, 6]);
    agent.extend_from_slice(&m);
    w.option_u8(opt::MESSAGE_TYPE, kind.into()).expect("fits");
    w.option(opt::CLIENT_ID, &client_id).expect("fits");
    if let Some((addr, server)) = selecting {
        w.option_ip(opt::REQUESTED_IP, addr).expect("fits");
        w.option_ip(opt::SERVER_ID, server).expect("fits");
    }
    w.option_u16(opt::MAX_SIZE, 1500).expect("fits");
    w.option(opt::HOSTNAME, host.as_bytes()).expect("fits");
    w.option(opt::VENDOR_CLASS, b"MSFT 5.0").expect("fits");
    w.option(
        opt::PRL,
        &[1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252],
    )
    .expect("fits");
    w.option(opt::RELAY_AGENT_INFO, &agent).expect("fits");
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// Write the DHCPACK a server sends for `req` granting `yiaddr`, with the usual options:
/// message type, server id, lease time, T1, T2, subnet mask, routers, DNS servers, domain
/// name, broadcast address, and option 82 echoed (RFC 3046 §2.2). Returns its length.
pub fn v4_ack(req: &Request<'_>, yiaddr: Ipv4Addr, out: &mut [u8]) -> usize {
    let mut hdr = ReplyHeader::for_request(req);
    hdr.yiaddr = yiaddr;
    let mut w = ReplyWriter::new(out, &hdr).expect("buffer is large enough");
    if let Some(max) = req.max_message_size {
        w = w.with_max_size(max);
    }
    w.option_u8(opt::MESSAGE_TYPE, MessageType::Ack.into())
        .expect("fits");
    w.option_ip(opt::SERVER_ID, SERVER_ID).expect("fits");
    w.option_u32(opt::LEASE_TIME, 3600).expect("fits");
    w.option_u32(opt::RENEWAL_T1, 1800).expect("fits");
    w.option_u32(opt::REBINDING_T2, 3150).expect("fits");
    w.option_ip(opt::SUBNET_MASK, Ipv4Addr::new(255, 255, 0, 0))
        .expect("fits");
    w.option_ips(opt::ROUTER, &[GIADDR]).expect("fits");
    w.option_ips(
        opt::DNS,
        &[Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)],
    )
    .expect("fits");
    w.option(opt::DOMAIN_NAME, b"isp.example.net")
        .expect("fits");
    w.option_ip(opt::BROADCAST, Ipv4Addr::new(10, 64, 255, 255))
        .expect("fits");
    if let Some(agent) = req.relay_agent_info {
        w.option(opt::RELAY_AGENT_INFO, agent).expect("fits");
    }
    w.finish()
}

fn v6_opt(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend(code.to_be_bytes());
    out.extend((value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// The DUID-LLT of DHCPv6 client `i`.
#[must_use]
pub fn duid(i: u32) -> [u8; 14] {
    let mut d = [0u8; 14];
    d[..8].copy_from_slice(&[0, 1, 0, 1, 0x2c, 0x5e, 0x11, 0x22]);
    d[8..].copy_from_slice(&mac(i));
    d
}

/// A DHCPv6 SOLICIT from client `i` asking for an address (`IA_NA`) and a delegated prefix
/// (`IA_PD` with a /56 length hint), relayed once: a RELAY-FORW with Interface-Id and Remote-Id
/// (RFC 4649) around it, as a BNG sends it.
#[must_use]
pub fn v6_solicit(i: u32) -> Vec<u8> {
    let mut inner = vec![1u8]; // SOLICIT
    inner.extend(&(0x00ab_0000 ^ i).to_be_bytes()[1..]);
    v6_opt(&mut inner, v6::opt::CLIENTID, &duid(i));
    v6_opt(&mut inner, v6::opt::ELAPSED_TIME, &0u16.to_be_bytes());
    let oro: Vec<u8> = [
        v6::opt::DNS_SERVERS,
        v6::opt::DOMAIN_LIST,
        v6::opt::SOL_MAX_RT,
    ]
    .iter()
    .flat_map(|c| c.to_be_bytes())
    .collect();
    v6_opt(&mut inner, v6::opt::ORO, &oro);
    let mut ia_na = Vec::new();
    ia_na.extend(1u32.to_be_bytes());
    ia_na.extend([0u8; 8]); // T1, T2
    v6_opt(&mut inner, v6::opt::IA_NA, &ia_na);
    let mut hint = Vec::new();
    hint.extend([0u8; 8]); // preferred, valid
    hint.push(56);
    hint.extend(Ipv6Addr::UNSPECIFIED.octets());
    let mut ia_pd = Vec::new();
    ia_pd.extend(2u32.to_be_bytes());
    ia_pd.extend([0u8; 8]);
    v6_opt(&mut ia_pd, v6::opt::IAPREFIX, &hint);
    v6_opt(&mut inner, v6::opt::IA_PD, &ia_pd);

    let mut relay = vec![12u8, 0]; // RELAY-FORW, hop count 0
    relay.extend(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).octets());
    let m = mac(i);
    let peer = Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 2, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    );
    relay.extend(peer.octets());
    let ifid = format!("ge-0/0/1.{}:{}", 100 + i % 8, i % 4094 + 1);
    v6_opt(&mut relay, v6::opt::INTERFACE_ID, ifid.as_bytes());
    let mut remote = 4491u32.to_be_bytes().to_vec();
    remote.extend_from_slice(&m);
    v6_opt(&mut relay, 37, &remote); // OPTION_REMOTE_ID (RFC 4649)
    v6_opt(&mut relay, v6::opt::RELAY_MSG, &inner);
    relay
}

/// The server DUID the v6 reply fixture answers as (DUID-LL).
pub const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0, 0x5e, 0, 0x53, 0x01];

/// Write the ADVERTISE answering `req` (a parsed [`v6_solicit`]): RELAY-REPL with the
/// Interface-Id echoed, server and client id, an `IA_NA` with one address, an `IA_PD` with
/// one /56, DNS servers. Returns its length.
pub fn v6_advertise(req: &v6::Request<'_>, out: &mut [u8]) -> usize {
    let mut w = v6::ReplyWriter::for_request(out, req, v6::MessageType::Advertise)
        .expect("buffer is large enough");
    w.option(v6::opt::SERVERID, &SERVER_DUID).expect("fits");
    if let Some(id) = req.client_id {
        w.option(v6::opt::CLIENTID, id).expect("fits");
    }
    let xid = req.xid;
    let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (xid >> 16) as u16, xid as u16);
    let prefix = Ipv6Addr::new(0x2001, 0xdb8, 0x8000 | (xid >> 8) as u16, 0, 0, 0, 0, 0);
    for ia in req.ia_na() {
        w.ia_na(ia.iaid, 1800, 2880, |w| {
            w.ia_addr(addr, 3600, 7200, |_| Ok(()))
        })
        .expect("fits");
    }
    for ia in req.ia_pd() {
        w.ia_pd(ia.iaid, 1800, 2880, |w| {
            w.ia_prefix(prefix, 56, 3600, 7200, |_| Ok(()))
        })
        .expect("fits");
    }
    w.option_ip6s(
        v6::opt::DNS_SERVERS,
        &[
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x54),
        ],
    )
    .expect("fits");
    w.finish()
}

/// The engine's configuration: one /16 behind relay 10.64.0.1, a pool of 65 000 addresses.
pub const CONFIG: &str = r#"
[server]
interfaces = ["eth0"]
server-id = "192.0.2.1"
offer-hold-secs = 30

[[subnet4]]
id = 1
subnet = "10.64.0.0/16"
routers = ["10.64.0.1"]
dns-servers = ["192.0.2.53", "192.0.2.54"]
domain-name = "isp.example.net"
lease-time = 3600

[[subnet4.pool]]
range = "10.64.1.0-10.64.254.255"
"#;

/// An engine, its free map and one shard holding [`CLIENTS`] clients.
pub struct EngineFx {
    /// The engine.
    pub engine: Engine,
    /// The free map.
    pub free: FreeMap,
    /// The only shard.
    pub shard: Shard,
    /// The relay's ingress.
    pub ingress: Ingress,
}

/// What a prepared engine answers.
pub enum Phase {
    /// Every client has an offer held: a DISCOVER is answered by re-offering it.
    Offered,
    /// Every client has an ACTIVE lease: a REQUEST (SELECTING) for it is acknowledged again.
    Bound,
}

impl EngineFx {
    /// Build the engine from [`CONFIG`] and bring every client to `phase`. Returns the
    /// fixture and, per client, the request to time (DISCOVER for `Offered`, REQUEST for
    /// `Bound`), unparsed.
    #[must_use]
    pub fn prepare(phase: &Phase) -> (Self, Vec<Vec<u8>>) {
        let cfg = twinlease::config::parse(CONFIG, "bench.toml").expect("bench config is valid");
        let (engine, ranges) = twinlease::engine::build_v4(&cfg);
        let free = FreeMap::new(&ranges, 1, &|_| false).expect("valid pools");
        let mut fx = Self {
            engine,
            free,
            shard: Shard::with_capacity(0, 1, CLIENTS as usize),
            ingress: Ingress {
                ifindex: 0,
                local_addr: None,
                broadcast: false,
            },
        };
        let mut out = vec![0u8; MAX_REPLY];
        let mut changes = Vec::new();
        let mut timed = Vec::with_capacity(CLIENTS as usize);
        for i in 0..CLIENTS {
            let discover = v4_request(i, None);
            let v = fx.handle(&discover, &mut out, &mut changes);
            let Verdict::Reply { kind, len, .. } = v else {
                panic!("DISCOVER of client {i}: {v:?}")
            };
            assert_eq!(kind, MessageType::Offer);
            let yiaddr = v4::Packet::new_checked(&out[..len])
                .expect("reply parses")
                .yiaddr();
            match phase {
                Phase::Offered => timed.push(discover),
                Phase::Bound => {
                    let request = v4_request(i, Some((yiaddr, SERVER_ID)));
                    let v = fx.handle(&request, &mut out, &mut changes);
                    assert!(
                        matches!(
                            v,
                            Verdict::Reply {
                                kind: MessageType::Ack,
                                ..
                            }
                        ),
                        "REQUEST of client {i}: {v:?}"
                    );
                    timed.push(request);
                }
            }
        }
        (fx, timed)
    }

    /// Parse `bytes` and hand them to the engine (set-up path, not timed).
    pub fn handle(&mut self, bytes: &[u8], out: &mut [u8], changes: &mut Vec<Lease4>) -> Verdict {
        let mut scratch = Scratch::new();
        let req = Request::parse(bytes, &mut scratch).expect("fixture request parses");
        changes.clear();
        self.engine.handle(
            &req,
            &self.ingress,
            NOW,
            &mut self.shard,
            &self.free,
            out,
            changes,
        )
    }
}

/// Parse every message of `bytes`, each with its own scratch buffer from `scratch`
/// (resized to fit), so that the engine can be timed without the parser.
pub fn parse_all<'a>(bytes: &'a [Vec<u8>], scratch: &'a mut Vec<Scratch>) -> Vec<Request<'a>> {
    scratch.resize_with(bytes.len(), Scratch::new);
    bytes
        .iter()
        .zip(scratch.iter_mut())
        .map(|(b, s)| Request::parse(b, s).expect("fixture request parses"))
        .collect()
}
