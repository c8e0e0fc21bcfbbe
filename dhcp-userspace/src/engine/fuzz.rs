//! Bodies of the `engine_v4` and `engine_v6` fuzz targets (also run on the seed corpora by
//! `tests/fuzz_corpus.rs`): a sequence of datagrams handed to an engine built from a small
//! fixed configuration, two shards and their free map, exactly as a dispatcher wires them.
//!
//! Input format, so that the fuzzer can build stateful exchanges (DISCOVER then REQUEST, …):
//! records `[ctl: u8][len: u16 big-endian][len bytes]`, the last record taking whatever is
//! left when `len` overruns the input. `ctl` chooses the ingress (bits 0-2), how far the clock
//! moves before the datagram ([`ADVANCE`], bits 3-5), and whether expired leases are reclaimed
//! first (bit 6).
//!
//! Invariants checked after every datagram: a reply fits its buffer and parses back with the
//! request's transaction id (and, for DHCPv4, chaddr; for DHCPv6, its relay levels); an
//! address or prefix granted by an OFFER/ACK/ADVERTISE/REPLY, and every lease record the
//! engine emits, lies in a configured pool or is a reservation; a durable DHCPACK comes with a
//! record of its yiaddr; no address or prefix is active for two clients; an active DHCPv4
//! pool address is never free in the free map.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::sync::{Arc, OnceLock};

use crate::config::Config;
use crate::lease::{BindingState, ClientKey, IaKind, Lease4, Lease6};
use crate::pool::v6::{Pool6, Pool6Kind, Shard6, Space6};
use crate::pool::{FreeMap, PoolRange, Shard};
use crate::wire::v4::{MessageType, Request, Scratch};
use crate::wire::v6 as w6;

use super::v4::{Engine, Ingress, MAX_REPLY, Verdict};
use super::v6::{Engine6, Ingress6, Verdict6};

/// Seconds the clock moves before a datagram, by `ctl` bits 3-5: nothing, a second, past the
/// offer hold, past T1, past the shortest lease, past the decline probation, a day, a week.
pub const ADVANCE: [u32; 8] = [0, 1, 61, 1_801, 3_601, 7_201, 86_400, 604_800];

/// Shards (workers) of the fixture.
const SHARDS: usize = 2;
/// Start of the fixture's clock, unix seconds.
const T0: u32 = 1_700_000_000;

/// Interface index of `eth1` in the fixtures.
pub const ETH1: u32 = 2;

/// The DHCPv4 fixture: subnet 1 on `eth1` (reservations by hardware address and client id),
/// subnet 2 behind relay 198.51.100.7 (or a giaddr inside it), rapid commit.
pub const CONFIG_V4: &str = r#"
[server]
interfaces = ["eth1"]
server-id = "192.0.2.1"
offer-hold-secs = 60
decline-probation-secs = 7200

[[subnet4]]
id = 1
subnet = "10.0.0.0/24"
interface = "eth1"
routers = ["10.0.0.1"]
dns-servers = ["10.0.0.53"]
domain-name = "example.net"
lease-time = 3600
min-lease-time = 600
max-lease-time = 7200

[[subnet4.pool]]
range = "10.0.0.100-10.0.0.115"

[[subnet4.reservation]]
hw-address = "02:00:00:00:00:aa"
address = "10.0.0.10"

[[subnet4.reservation]]
client-id = "01:02:00:00:00:00:bb"
address = "10.0.0.11"

[[subnet4]]
id = 2
subnet = "10.1.0.0/24"
relay-addresses = ["198.51.100.7"]
routers = ["10.1.0.1"]
lease-time = 1800
rapid-commit = true

[[subnet4.pool]]
range = "10.1.0.100-10.1.0.107"

[[subnet4.option]]
code = 42
ips = ["10.1.0.123"]
"#;

/// The DHCPv6 fixture: subnet 1 on `eth1` (addresses, /56 prefixes with an excluded prefix,
/// a reservation, rapid commit), subnet 2 by Interface-Id `port-7`, subnet 3 by link-address.
pub const CONFIG_V6: &str = r#"
[server]
interfaces = ["eth1"]
offer-hold-secs = 60
decline-probation-secs = 7200

[[subnet6]]
id = 1
prefix = "2001:db8:1::/64"
interface = "eth1"
rapid-commit = true
dns-servers = ["2001:db8::53"]
domain-search = ["example.net"]

[[subnet6.pool]]
range = "2001:db8:1::100-2001:db8:1::10f"

[[subnet6.pd-pool]]
prefix = "2001:db8:8000::/52"
delegated-len = 56
excluded-prefix = "2001:db8:8000:ff::/64"

[[subnet6.reservation]]
duid = "00:03:00:01:02:00:00:00:00:aa"
address = "2001:db8:1::10"
prefix = "2001:db8:f000::/56"

[[subnet6]]
id = 2
prefix = "2001:db8:2::/64"
interface-id = "port-7"
preferred-lifetime = 1000
valid-lifetime = 2000

[[subnet6.pool]]
range = "2001:db8:2::100-2001:db8:2::103"

[[subnet6.pd-pool]]
prefix = "2001:db8:9000::/62"
delegated-len = 64

[[subnet6]]
id = 3
prefix = "2001:db8:3::/64"

[[subnet6.pool]]
range = "2001:db8:3::100-2001:db8:3::107"
"#;

/// The server DUID of the DHCPv6 fixture (DUID-UUID), which REQUEST/RENEW seeds carry.
pub const SERVER_DUID: [u8; 18] = [0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// One record of the input: control byte and datagram.
fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&ctl, rest) = data.split_first()?;
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or(&[]);
        let (d, tail) = rest.split_at(len.min(rest.len()));
        data = tail;
        Some((ctl, d))
    })
}

/// Builds a fuzz input from `(ctl, datagram)` records (the inverse of the parsing above).
#[must_use]
pub fn encode_records(recs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (ctl, d) in recs {
        v.push(*ctl);
        let len = u16::try_from(d.len()).expect("a datagram fits 64 KiB");
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(d);
    }
    v
}

fn fixture_config(text: &str) -> Config {
    crate::config::parse(text, "fuzz.toml").unwrap_or_else(|e| panic!("fixture invalid:\n{e}"))
}

struct V4Fixed {
    engine: Engine,
    ranges: Vec<PoolRange>,
    reserved: Vec<Ipv4Addr>,
}

fn v4_fixed() -> &'static V4Fixed {
    static FIXED: OnceLock<V4Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let (mut engine, ranges) = super::build_v4(&fixture_config(CONFIG_V4));
        engine.bind_interface("eth1", ETH1);
        let reserved = engine.reserved_addresses().collect();
        V4Fixed {
            engine,
            ranges,
            reserved,
        }
    })
}

/// Run a sequence of DHCPv4 datagrams through the engine; see the module documentation.
///
/// # Panics
/// When an invariant breaks.
#[doc(hidden)]
#[must_use]
pub fn fuzz_v4(data: &[u8]) -> Vec<String> {
    let mut trace = Vec::new();
    let fx = v4_fixed();
    let in_pool = |a: Ipv4Addr| fx.ranges.iter().any(|r| r.start <= a && a <= r.end);
    let allowed = |a: Ipv4Addr| in_pool(a) || fx.reserved.contains(&a);
    let free =
        FreeMap::new(&fx.ranges, SHARDS, &|a| fx.reserved.contains(&a)).expect("fixture pools");
    let mut shards: Vec<Shard> = (0..SHARDS).map(|i| Shard::new(i, SHARDS)).collect();
    let mut now = T0;
    let mut out = vec![0u8; MAX_REPLY];
    let mut changes: Vec<Lease4> = Vec::new();
    for (ctl, datagram) in records(data) {
        now += ADVANCE[usize::from((ctl >> 3) & 7)];
        if ctl & 0x40 != 0 {
            for s in &mut shards {
                s.reclaim(now, 1 << 16, &free);
            }
        }
        let mut scratch = Scratch::new();
        let Ok(req) = Request::parse(datagram, &mut scratch) else {
            trace.push("unparsed".to_owned());
            continue;
        };
        let ingress = Ingress {
            ifindex: if ctl & 1 == 0 { ETH1 } else { 9 },
            local_addr: (ctl & 4 != 0).then_some(Ipv4Addr::new(10, 0, 0, 2)),
            broadcast: ctl & 2 != 0,
        };
        // The dispatcher's choice of shard; requests without a usable key go to shard 0.
        let w = req.client_key().map_or(0, |k| k.shard(SHARDS));
        changes.clear();
        let verdict = fx.engine.handle(
            &req,
            &ingress,
            now,
            &mut shards[w],
            &free,
            &mut out,
            &mut changes,
        );
        if let Verdict::Reply {
            kind, len, durable, ..
        } = verdict
        {
            assert!(len <= out.len(), "reply overruns its buffer");
            let mut scratch2 = Scratch::new();
            let reply = Request::parse(&out[..len], &mut scratch2)
                .unwrap_or_else(|e| panic!("the engine's reply does not parse: {e}"));
            assert_eq!(reply.op, 2, "reply is not a BOOTREPLY");
            assert_eq!(reply.xid, req.xid, "reply xid");
            assert_eq!(reply.chaddr, req.chaddr, "reply chaddr");
            assert_eq!(reply.message_type, Some(kind), "reply type");
            trace.push(format!(
                "{kind:?} {}{}",
                reply.yiaddr,
                if durable { " durable" } else { "" }
            ));
            if matches!(kind, MessageType::Offer | MessageType::Ack)
                && !reply.yiaddr.is_unspecified()
            {
                assert!(
                    allowed(reply.yiaddr),
                    "{kind:?} yiaddr {} outside every pool",
                    reply.yiaddr
                );
            }
            if durable && kind == MessageType::Ack {
                assert!(
                    changes
                        .iter()
                        .any(|l| l.addr == reply.yiaddr && l.state == BindingState::Active),
                    "durable ACK of {} without an active lease record",
                    reply.yiaddr
                );
            }
        }
        match verdict {
            Verdict::Silent(r) => trace.push(format!("silent {r}")),
            Verdict::Drop(r) => trace.push(format!("drop {r}")),
            Verdict::Reply { .. } => {}
        }
        for l in &changes {
            assert!(
                allowed(l.addr),
                "lease record for {} outside every pool",
                l.addr
            );
        }
        // Cross-shard: one active client per address; an active pool address is never free.
        let mut holders: HashMap<Ipv4Addr, ClientKey> = HashMap::new();
        for s in &shards {
            for l in s.iter() {
                if l.state != BindingState::Active || l.expires <= now {
                    continue;
                }
                if let Some(prev) = holders.insert(l.addr, l.client) {
                    assert!(prev == l.client, "{} active for two clients", l.addr);
                }
                if in_pool(l.addr) {
                    assert!(!free.is_free(l.addr), "active {} is free", l.addr);
                }
            }
        }
    }
    trace
}

struct V6Fixed {
    engine: Engine6,
    pools: Vec<Pool6>,
    reserved: Vec<(Ipv6Addr, u8)>,
}

fn v6_fixed() -> &'static V6Fixed {
    static FIXED: OnceLock<V6Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let (mut engine, pools, reserved) =
            super::build_v6(&fixture_config(CONFIG_V6), SERVER_DUID.to_vec());
        engine.bind_interface("eth1", ETH1);
        V6Fixed {
            engine,
            pools,
            reserved,
        }
    })
}

fn in_prefix(a: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    a.to_bits() & mask == net.to_bits() & mask
}

impl V6Fixed {
    /// Whether an address (`len` 128) or prefix may be granted: a pool member or a reservation.
    fn allowed(&self, a: Ipv6Addr, len: u8) -> bool {
        self.reserved.contains(&(a, len))
            || self.pools.iter().any(|p| match p.kind {
                Pool6Kind::Na { start, end } => len == 128 && start <= a && a <= end,
                Pool6Kind::Pd {
                    prefix,
                    prefix_len,
                    delegated_len,
                    ..
                } => len == delegated_len && in_prefix(a, prefix, prefix_len),
            })
    }
}

/// Unwrap RELAY-REPL levels; `None` when a level has no Relay Message option.
fn unwrap_relay_repl(mut d: &[u8]) -> Option<(usize, &[u8])> {
    let mut levels = 0;
    while d.first() == Some(&(w6::MessageType::RelayRepl as u8)) {
        let opts = d.get(w6::field::relay::HEADER_LEN..)?;
        d = w6::find_option(opts, w6::opt::RELAY_MSG).ok()??;
        levels += 1;
    }
    Some((levels, d))
}

/// Run a sequence of DHCPv6 datagrams through the engine; see the module documentation.
/// `ctl` bits 0-1: 0 a direct client multicasting on eth1, 1 a relay agent (unicast), 2 a
/// direct client unicasting, 3 a client on an unknown interface.
///
/// # Panics
/// When an invariant breaks.
#[doc(hidden)]
#[must_use]
pub fn fuzz_v6(data: &[u8]) -> Vec<String> {
    let mut trace = Vec::new();
    let fx = v6_fixed();
    // A fresh space per input: its free sets are shared state.
    let space = Arc::new(Space6::new(&fx.pools, SHARDS, &fx.reserved).expect("fixture pools"));
    let mut shards: Vec<Shard6> = (0..SHARDS)
        .map(|i| Shard6::new(i, SHARDS, Arc::clone(&space)))
        .collect();
    let mut now = T0;
    let mut out = vec![0u8; 1500];
    let mut changes: Vec<Lease6> = Vec::new();
    let multicast = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
    let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    for (ctl, datagram) in records(data) {
        now += ADVANCE[usize::from((ctl >> 3) & 7)];
        if ctl & 0x40 != 0 {
            for s in &mut shards {
                s.reclaim(now, 1 << 16);
            }
        }
        let ingress = match ctl & 3 {
            0 => Ingress6 {
                ifindex: ETH1,
                src: SocketAddrV6::new(link_local, 546, 0, ETH1),
                dst: multicast,
            },
            1 => Ingress6 {
                ifindex: 9,
                src: SocketAddrV6::new(
                    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1),
                    547,
                    0,
                    0,
                ),
                dst: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            },
            2 => Ingress6 {
                ifindex: ETH1,
                src: SocketAddrV6::new(link_local, 546, 0, ETH1),
                dst: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
            },
            _ => Ingress6 {
                ifindex: 77,
                src: SocketAddrV6::new(link_local, 546, 0, 77),
                dst: multicast,
            },
        };
        let w = w6::client_duid_fast(datagram)
            .ok()
            .flatten()
            .and_then(|d| ClientKey::from_duid(d).ok())
            .map_or(0, |k| k.shard(SHARDS));
        changes.clear();
        let verdict = fx.engine.handle(
            datagram,
            &ingress,
            now,
            &mut shards[w],
            &mut out,
            &mut changes,
        );
        if let Verdict6::Reply {
            kind, len, durable, ..
        } = verdict
        {
            let mut t = format!("{kind:?}{}", if durable { " durable" } else { "" });
            assert!(len <= out.len(), "reply overruns its buffer");
            let req = w6::Request::parse(datagram)
                .unwrap_or_else(|e| panic!("answered a datagram that does not parse: {e}"));
            let (levels, inner) = unwrap_relay_repl(&out[..len])
                .unwrap_or_else(|| panic!("the engine's reply does not unwrap"));
            assert_eq!(levels, req.relays().len(), "relay levels differ");
            let reply = w6::Request::parse(inner)
                .unwrap_or_else(|e| panic!("the engine's reply does not parse: {e}"));
            assert_eq!(reply.message_type, kind, "reply type");
            assert_eq!(reply.xid, req.xid, "reply xid");
            assert_eq!(reply.server_id, Some(&SERVER_DUID[..]), "reply server id");
            for ia in reply.ia_na().iter().chain(reply.ia_pd()) {
                for h in ia.hints() {
                    let _ = write!(t, " {}/{}", h.address, h.prefix_len);
                    if h.valid > 0 {
                        assert!(
                            fx.allowed(h.address, h.prefix_len),
                            "{kind:?} grants {}/{} outside every pool",
                            h.address,
                            h.prefix_len
                        );
                    }
                }
            }
            trace.push(t);
        }
        match verdict {
            Verdict6::Silent(r) => trace.push(format!("silent {r}")),
            Verdict6::Drop(r) => trace.push(format!("drop {r}")),
            Verdict6::Reply { .. } => {}
        }
        for l in &changes {
            if l.state == BindingState::Active {
                assert!(
                    fx.allowed(l.addr, l.prefix_len),
                    "lease record for {}/{} outside every pool",
                    l.addr,
                    l.prefix_len
                );
            }
        }
        let mut holders: HashMap<(IaKind, Ipv6Addr, u8), ClientKey> = HashMap::new();
        for s in &shards {
            for l in s.iter() {
                if l.state != BindingState::Active || l.expires <= now {
                    continue;
                }
                if let Some(prev) = holders.insert((l.kind, l.addr, l.prefix_len), l.client) {
                    assert!(
                        prev == l.client,
                        "{}/{} active for two clients",
                        l.addr,
                        l.prefix_len
                    );
                }
            }
        }
    }
    trace
}
