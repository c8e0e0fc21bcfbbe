//! The `AF_XDP` driver: one thread, one socket per receive queue of the client-side
//! interface (transmitting on queue 0's), the steering program of `steer`, and the loop that
//! paces new exchanges at the offered rate, turns received frames into scenario events and
//! the scenario's decisions into frames, and expires overdue requests.
//!
//! The loop never blocks while work is pending; when a pass finds nothing to do it waits in
//! `poll(2)` for up to a millisecond (or until the next exchange is due), so at modest rates
//! the generator leaves the cores to the server it measures.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use twinlease::io::xdp::umem::{Umem, UmemConfig};
use twinlease::io::xdp::xsk::{BindPreference, Desc, XskConfig, XskError, XskSocket};
use twinlease::wire::v4::{MessageType as V4Type, Scratch};
use twinlease::wire::v6::MessageType as V6Type;

use super::clients::Identities;
use super::scenario::{Leases, Scenario, Send, State};
use super::stats::{DropStage, Stats};
use super::steer::{Mode, Steer, SteerError};
use super::unique::LeaseKind;
use super::wire::{
    self, ALL_DHCP_SERVERS, ALL_DHCP_SERVERS_MAC, BROADCAST_MAC, IaLease, Inbound, MAX_PAYLOAD,
    V4Kind, V4Request, V6Kind, V6Request, WireError,
};

/// An error of the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The interface could not be inspected.
    #[error("interface {iface}")]
    Interface {
        /// The interface.
        iface: String,
        /// Why.
        #[source]
        source: twinlease::tune::TuneError,
    },
    /// An `AF_XDP` socket failed.
    #[error("AF_XDP socket on queue {queue}")]
    Xsk {
        /// The queue.
        queue: u32,
        /// Why.
        #[source]
        source: XskError,
    },
    /// A UMEM could not be created.
    #[error("UMEM")]
    Umem(#[source] twinlease::io::xdp::umem::UmemError),
    /// The steering program failed.
    #[error("steering program")]
    Steer(#[source] SteerError),
    /// A frame could not be built.
    #[error("building a frame")]
    Wire(#[source] WireError),
    /// Something the configuration needs is missing or unusable.
    #[error("{0}")]
    Setup(String),
}

/// Which protocol and which IAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// DHCPv4.
    V4,
    /// DHCPv6 with an `IA_NA`, an `IA_PD`, or both.
    V6 {
        /// Ask for an address.
        na: bool,
        /// Ask for a prefix.
        pd: bool,
    },
}

/// The generator as a relay agent (RFC 2131 §4.1 `giaddr`, RFC 8415 §19.1 RELAY-FORW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relay {
    /// DHCPv4: `giaddr`, also the source address (port 67) of every relayed message.
    V4(Ipv4Addr),
    /// DHCPv6: the link-address, also the source address (port 547).
    V6(Ipv6Addr),
}

/// What the driver is configured with.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The client-side interface (in the current network namespace).
    pub iface: String,
    /// Protocol.
    pub family: Family,
    /// Relay agent mode.
    pub relay: Option<Relay>,
    /// DHCPv4 server to unicast relayed messages to (required with a v4 relay).
    pub server4: Option<Ipv4Addr>,
    /// DHCPv6 destination of relayed messages (default `ff02::1:2`).
    pub server6: Option<Ipv6Addr>,
    /// The server's hardware address, for unicast; looked up by ARP when needed and absent.
    pub server_mac: Option<[u8; 6]>,
    /// Frames per RX/TX batch.
    pub batch: usize,
    /// Descriptors per ring (power of two).
    pub ring: u32,
    /// Reply timeout.
    pub timeout: Duration,
}

/// What the progress callback is told, about every 250 ms.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time into the period.
    pub elapsed: Duration,
    /// The period's length.
    pub duration: Duration,
    /// Exchanges started.
    pub started: u64,
    /// Exchanges completed.
    pub completed: u64,
    /// Exchanges lost.
    pub drops: u64,
    /// Clients bound.
    pub bound: u32,
}

/// A server seen: DHCPv4 server identifier or DHCPv6 DUID, and its hardware address.
#[derive(Clone, Debug)]
struct Server {
    id4: Ipv4Addr,
    duid: Vec<u8>,
    mac: [u8; 6],
}

/// Most servers told apart (the client record keeps a `u8` index).
const MAX_SERVERS: usize = 16;

/// Maps DHCPv6 addresses or prefixes of one length to 32-bit indexes: the index is the 32
/// bits above the prefix length, the bits above them must be the same for every lease (the
/// first one seen sets them). Pools within one aligned block of 2^32 addresses or prefixes
/// qualify.
#[derive(Clone, Copy, Debug, Default)]
struct Indexer {
    base: Option<(u128, u8)>,
}

impl Indexer {
    fn index(&mut self, l: IaLease) -> Option<u32> {
        let shift = 128 - u32::from(l.len.min(128));
        let v = u128::from(l.addr).checked_shr(shift).unwrap_or(0);
        let (hi, lo) = (v >> 32, v as u32);
        match self.base {
            None => {
                self.base = Some((hi, l.len));
                Some(lo)
            }
            Some((b, len)) if b == hi && len == l.len => Some(lo),
            Some(_) => None,
        }
    }

    fn lease(&self, index: u32) -> Option<IaLease> {
        let (hi, len) = self.base?;
        let shift = 128 - u32::from(len);
        let v = ((hi << 32) | u128::from(index))
            .checked_shl(shift)
            .unwrap_or(0);
        Some(IaLease {
            addr: Ipv6Addr::from(v),
            len,
        })
    }
}

/// Something to transmit, decided while the RX frames were borrowed.
#[derive(Clone, Copy, Debug)]
enum Out {
    /// A client's request.
    Client(u32, Send),
    /// An ARP reply: (our MAC, our IP) to (their MAC, their IP).
    ArpReply([u8; 6], Ipv4Addr, [u8; 6], Ipv4Addr),
    /// An ARP request for the server's hardware address.
    ArpRequest(Ipv4Addr),
}

/// Everything but the sockets (so frames of one socket can be read while this is mutated).
struct Core {
    cfg: DriverConfig,
    ids: Identities,
    scenario: Scenario,
    servers: Vec<Server>,
    na: Indexer,
    pd: Indexer,
    my_mac: [u8; 6],
    my_link_local: Ipv6Addr,
    scratch: Scratch,
    t0: Instant,
}

/// The running generator.
pub struct Driver {
    socks: Vec<XskSocket>,
    steer: Steer,
    core: Core,
    rx: Vec<Desc>,
    out: Vec<Out>,
    tx: Vec<(Desc, u32)>,
    tx_descs: Vec<Desc>,
    pollfds: Vec<libc::pollfd>,
}

/// The hardware address of `iface` (`SIOCGIFHWADDR`, in the current network namespace).
fn hw_addr(iface: &str) -> Result<[u8; 6], DriverError> {
    let err = |what: &str| {
        DriverError::Setup(format!(
            "{what} of {iface}: {}",
            std::io::Error::last_os_error()
        ))
    };
    // Safety: plain socket(2); checked, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("socket"));
    }
    // Safety: an all-zero ifreq is valid; the name is copied in bounds below.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req
        .ifr_name
        .iter_mut()
        .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s.cast_signed();
    }
    // Safety: fd is a socket and req a valid ifreq for SIOCGIFHWADDR.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &raw mut req) };
    // Safety: fd is ours.
    unsafe { libc::close(fd) };
    if r != 0 {
        return Err(err("SIOCGIFHWADDR"));
    }
    // Safety: SIOCGIFHWADDR filled the sockaddr of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = b.cast_unsigned();
    }
    Ok(mac)
}

/// The first link-local IPv6 address of `iface` (`getifaddrs`, current network namespace).
fn link_local(iface: &str) -> Option<Ipv6Addr> {
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // Safety: getifaddrs fills ifap; freed below.
    if unsafe { libc::getifaddrs(&raw mut ifap) } != 0 {
        return None;
    }
    let mut found = None;
    let mut p = ifap;
    while !p.is_null() {
        // Safety: p walks the list getifaddrs returned.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // Safety: ifa_name is a NUL-terminated string of the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        // Safety: ifa_addr points to a sockaddr of the list.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if name.to_bytes() != iface.as_bytes() || family != libc::AF_INET6 {
            continue;
        }
        // Safety: an AF_INET6 address is a sockaddr_in6.
        let sin6 = unsafe { ifa.ifa_addr.cast::<libc::sockaddr_in6>().read_unaligned() };
        let a = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
        if a.segments()[0] & 0xffc0 == 0xfe80 {
            found = Some(a);
            break;
        }
    }
    // Safety: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(ifap) };
    found
}

fn elapsed_cs(now: u32, start: u32) -> u16 {
    u16::try_from(now.wrapping_sub(start) / 10_000).unwrap_or(u16::MAX)
}

impl Core {
    fn now(&self) -> u32 {
        self.t0.elapsed().as_micros() as u32
    }

    fn server_index(&mut self, id4: Ipv4Addr, duid: &[u8], mac: [u8; 6]) -> Option<u8> {
        if let Some(i) = self
            .servers
            .iter()
            .position(|s| s.id4 == id4 && s.duid == duid)
        {
            return Some(i as u8);
        }
        if self.servers.len() >= MAX_SERVERS {
            return None;
        }
        self.servers.push(Server {
            id4,
            duid: duid.to_vec(),
            mac,
        });
        Some((self.servers.len() - 1) as u8)
    }

    fn client_of_mac(&self, mac: &[u8]) -> Option<u32> {
        self.ids
            .index_of_mac(mac)
            .filter(|&i| i < self.scenario.len())
    }

    /// Turns one received frame into scenario events and things to send.
    fn handle(&mut self, frame: &[u8], out: &mut Vec<Out>) {
        let now = self.now();
        let Ok(inbound) = wire::parse_inbound(frame, &mut self.scratch) else {
            self.scenario.stats.rx_malformed += 1;
            return;
        };
        match inbound {
            Inbound::V4(r) => self.handle_v4(&r, now, out),
            Inbound::V6(r) => self.handle_v6(&r, now, out),
            Inbound::ArpRequest { sender, target } => {
                let ours = match self.cfg.relay {
                    Some(Relay::V4(g)) if g == target => Some(self.my_mac),
                    _ => self
                        .scenario
                        .unique
                        .holder(LeaseKind::Address, u32::from(target))
                        .filter(|&i| {
                            let c = self.scenario.client(i);
                            !matches!(c.state(), State::Idle | State::Selecting)
                        })
                        .map(|i| self.ids.mac(i)),
                };
                if let (Some(mac), Family::V4) = (ours, self.cfg.family) {
                    self.scenario.stats.arp_answered += 1;
                    out.push(Out::ArpReply(mac, target, sender.0, sender.1));
                }
            }
            Inbound::ArpReply { sender } => {
                if Some(sender.1) == self.cfg.server4 && self.cfg.server_mac.is_none() {
                    self.cfg.server_mac = Some(sender.0);
                }
            }
            Inbound::Other => {}
        }
    }

    fn handle_v4(&mut self, r: &wire::V4Reply, now: u32, out: &mut Vec<Out>) {
        let Some(i) = self.client_of_mac(&r.chaddr) else {
            self.scenario.stats.rx_unmatched += 1;
            return;
        };
        let id = r.server_id.unwrap_or(r.src_ip);
        let Some(server) = self.server_index(id, &[], r.src_mac) else {
            self.scenario.stats.rx_unmatched += 1;
            return;
        };
        let leases = Leases {
            addr: Some(u32::from(r.yiaddr)),
            prefix: None,
        };
        match r.message_type {
            V4Type::Offer => {
                if let Some(send) = self.scenario.on_offer(i, r.xid, server, leases, now) {
                    out.push(Out::Client(i, send));
                }
            }
            V4Type::Ack => {
                self.scenario.on_reply(i, r.xid, server, true, leases, now);
            }
            V4Type::Nak => {
                self.scenario
                    .on_reply(i, r.xid, server, false, Leases::default(), now);
            }
            _ => self.scenario.stats.rx_unmatched += 1,
        }
    }

    /// The leases of a DHCPv6 reply as indexes, and whether every IA asked for got one.
    fn v6_leases(&mut self, r: &wire::V6Reply<'_>) -> (Leases, bool) {
        let Family::V6 { na, pd } = self.cfg.family else {
            return (Leases::default(), false);
        };
        let mut ok = r.status.is_none_or(|s| s == 0);
        let mut leases = Leases::default();
        for (want, ia, is_pd) in [(na, r.ia_na, false), (pd, r.ia_pd, true)] {
            if !want {
                continue;
            }
            let lease = ia
                .filter(|o| o.status.is_none_or(|s| s == 0))
                .and_then(|o| o.lease);
            let Some(l) = lease else {
                ok = false;
                continue;
            };
            let idx = if is_pd {
                self.pd.index(l)
            } else {
                self.na.index(l)
            };
            match idx {
                Some(x) if is_pd => leases.prefix = Some(x),
                Some(x) => leases.addr = Some(x),
                None => {
                    self.scenario.stats.lease_unindexable += 1;
                    ok = false;
                }
            }
        }
        (leases, ok)
    }

    fn handle_v6(&mut self, r: &wire::V6Reply<'_>, now: u32, out: &mut Vec<Out>) {
        let Some(i) = r
            .client_duid
            .and_then(|d| self.ids.index_of_duid(d))
            .filter(|&i| i < self.scenario.len())
        else {
            self.scenario.stats.rx_unmatched += 1;
            return;
        };
        let Some(server) = self.server_index(
            Ipv4Addr::UNSPECIFIED,
            r.server_duid.unwrap_or_default(),
            r.src_mac,
        ) else {
            self.scenario.stats.rx_unmatched += 1;
            return;
        };
        let (leases, ok) = self.v6_leases(r);
        match r.message_type {
            V6Type::Advertise => {
                if ok {
                    if let Some(send) = self.scenario.on_offer(i, r.xid, server, leases, now) {
                        out.push(Out::Client(i, send));
                    }
                } else {
                    self.scenario.on_offer_refused(i, r.xid);
                }
            }
            V6Type::Reply => {
                self.scenario.on_reply(i, r.xid, server, ok, leases, now);
            }
            _ => self.scenario.stats.rx_unmatched += 1,
        }
    }

    /// Writes the frame for `out` into `buf`; returns its length, or `None` when there is
    /// nothing to send (an unknown server).
    fn build(&mut self, o: Out, buf: &mut [u8], now: u32) -> Result<Option<usize>, WireError> {
        match o {
            Out::ArpReply(mac, ip, to_mac, to_ip) => {
                wire::build_arp(buf, false, (mac, ip), (to_mac, to_ip)).map(Some)
            }
            Out::ArpRequest(target) => {
                let me = match self.cfg.relay {
                    Some(Relay::V4(g)) => g,
                    _ => Ipv4Addr::UNSPECIFIED,
                };
                wire::build_arp(buf, true, (self.my_mac, me), ([0; 6], target)).map(Some)
            }
            Out::Client(i, send) => match self.cfg.family {
                Family::V4 => self.build_v4(i, send, buf),
                Family::V6 { na, pd } => self.build_v6(i, send, buf, now, na, pd),
            },
        }
    }

    fn build_v4(&self, i: u32, send: Send, buf: &mut [u8]) -> Result<Option<usize>, WireError> {
        let c = *self.scenario.client(i);
        let mac = self.ids.mac(i);
        let cid = self.ids.client_id(i);
        let server = self.servers.get(usize::from(c.server));
        let addr = Ipv4Addr::from(c.address().unwrap_or(0));
        let kind = match send {
            Send::Discover => V4Kind::Discover,
            Send::Select => V4Kind::Select,
            Send::Renew => V4Kind::Renew,
            Send::Rebind => V4Kind::Rebind,
            Send::Release => V4Kind::Release,
            Send::Decline => V4Kind::Decline,
        };
        let giaddr = match self.cfg.relay {
            Some(Relay::V4(g)) => g,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let needs_server = !matches!(kind, V4Kind::Discover | V4Kind::Rebind);
        if needs_server && server.is_none() {
            return Ok(None);
        }
        let mut payload = [0u8; MAX_PAYLOAD];
        let n = wire::build_v4(
            &mut payload,
            &V4Request {
                kind,
                xid: c.xid,
                mac,
                client_id: &cid,
                addr,
                server_id: server.map_or(Ipv4Addr::UNSPECIFIED, |s| s.id4),
                giaddr,
            },
        )?;
        let payload = &payload[..n];
        let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, wire::V4_SERVER_PORT);
        let len = if giaddr.is_unspecified() {
            // RFC 2131 §4.4.4: broadcast until the client has an address and a server;
            // RENEWING and RELEASE go unicast to the server.
            let (src_ip, dst, dst_mac) = match kind {
                V4Kind::Renew | V4Kind::Release => {
                    let s = server.ok_or(WireError::Arp)?;
                    (addr, SocketAddrV4::new(s.id4, wire::V4_SERVER_PORT), s.mac)
                }
                V4Kind::Rebind => (addr, bcast, BROADCAST_MAC),
                _ => (Ipv4Addr::UNSPECIFIED, bcast, BROADCAST_MAC),
            };
            let src = SocketAddrV4::new(src_ip, wire::V4_CLIENT_PORT);
            wire::frame_v4(buf, mac, dst_mac, src, dst, payload)?
        } else {
            // RFC 2131 §4.1: a relay agent sends from port 67 to the server's port 67.
            let (Some(s4), Some(smac)) = (self.cfg.server4, self.cfg.server_mac) else {
                return Ok(None);
            };
            wire::frame_v4(
                buf,
                self.my_mac,
                smac,
                SocketAddrV4::new(giaddr, wire::V4_SERVER_PORT),
                SocketAddrV4::new(s4, wire::V4_SERVER_PORT),
                payload,
            )?
        };
        Ok(Some(len))
    }

    #[expect(clippy::many_single_char_names, reason = "client index, record, sizes")]
    fn build_v6(
        &self,
        i: u32,
        send: Send,
        buf: &mut [u8],
        now: u32,
        na: bool,
        pd: bool,
    ) -> Result<Option<usize>, WireError> {
        let c = *self.scenario.client(i);
        let duid = self.ids.duid(i);
        let kind = match send {
            Send::Discover => V6Kind::Solicit,
            Send::Select => V6Kind::Request,
            Send::Renew => V6Kind::Renew,
            Send::Rebind => V6Kind::Rebind,
            Send::Release => V6Kind::Release,
            Send::Decline => V6Kind::Decline,
        };
        let server = self.servers.get(usize::from(c.server));
        let server_duid = match kind {
            V6Kind::Solicit | V6Kind::Rebind => None,
            _ => match server {
                Some(s) => Some(s.duid.as_slice()),
                None => return Ok(None),
            },
        };
        let held = |x: Option<u32>, ix: &Indexer| x.and_then(|x| ix.lease(x));
        let ia_na = (na).then(|| {
            if kind == V6Kind::Solicit {
                None
            } else {
                held(c.address(), &self.na)
            }
        });
        // RFC 8415 §18.2.8: DECLINE is for addresses only.
        let ia_pd = (pd && kind != V6Kind::Decline).then(|| {
            if kind == V6Kind::Solicit {
                None
            } else {
                held(c.delegated_prefix(), &self.pd)
            }
        });
        let mut inner = [0u8; MAX_PAYLOAD];
        let n = wire::build_v6(
            &mut inner,
            &V6Request {
                kind,
                xid: c.xid,
                duid: &duid,
                server_duid,
                ia_na,
                ia_pd,
                elapsed: elapsed_cs(now, c.t_start),
            },
        )?;
        let len = match self.cfg.relay {
            Some(Relay::V6(link)) => {
                let mut relayed = [0u8; MAX_PAYLOAD + 64];
                let m = wire::relay_forw(&mut relayed, link, self.ids.link_local(i), &inner[..n])?;
                let dst = self.cfg.server6.unwrap_or(ALL_DHCP_SERVERS);
                let dst_mac = if dst.is_multicast() {
                    let o = dst.octets();
                    [0x33, 0x33, o[12], o[13], o[14], o[15]]
                } else {
                    match self.cfg.server_mac {
                        Some(m) => m,
                        None => return Ok(None),
                    }
                };
                wire::frame_v6(
                    buf,
                    self.my_mac,
                    dst_mac,
                    SocketAddrV6::new(link, wire_v6_port(), 0, 0),
                    SocketAddrV6::new(dst, wire_v6_port(), 0, 0),
                    &relayed[..m],
                )?
            }
            _ => wire::frame_v6(
                buf,
                self.my_mac,
                ALL_DHCP_SERVERS_MAC,
                SocketAddrV6::new(self.my_link_local, twinlease::wire::v6::CLIENT_PORT, 0, 0),
                SocketAddrV6::new(ALL_DHCP_SERVERS, wire_v6_port(), 0, 0),
                &inner[..n],
            )?,
        };
        Ok(Some(len))
    }
}

/// The DHCPv6 server and relay port (RFC 8415 §7.2).
fn wire_v6_port() -> u16 {
    twinlease::wire::v6::SERVER_PORT
}

impl Driver {
    /// Binds the sockets on every receive queue of `cfg.iface`, loads and attaches the
    /// steering program, and prepares `scenario` for `ids`' clients.
    pub fn new(
        cfg: DriverConfig,
        ids: Identities,
        scenario: Scenario,
    ) -> Result<Self, DriverError> {
        let iface_err = |source| DriverError::Interface {
            iface: cfg.iface.clone(),
            source,
        };
        let ifindex = twinlease::tune::ifindex(&cfg.iface).map_err(iface_err)?;
        let queues = twinlease::tune::channels(&cfg.iface)
            .map_or(1, |c| c.rx.max(c.combined).max(1))
            .min(super::steer::MAX_QUEUES);
        let my_mac = hw_addr(&cfg.iface)?;
        let my_link_local = match cfg.family {
            Family::V6 { .. } if cfg.relay.is_none() => {
                link_local(&cfg.iface).ok_or_else(|| {
                    DriverError::Setup(format!(
                        "{} has no link-local IPv6 address to send from",
                        cfg.iface
                    ))
                })?
            }
            _ => Ipv6Addr::UNSPECIFIED,
        };
        if matches!(cfg.relay, Some(Relay::V4(_))) && cfg.server4.is_none() {
            return Err(DriverError::Setup(
                "a DHCPv4 relay needs the server's address (--server)".into(),
            ));
        }
        let mut steer = Steer::load().map_err(DriverError::Steer)?;
        let ring = cfg.ring.next_power_of_two().clamp(64, 16384);
        let mut socks = Vec::new();
        for q in 0..queues {
            let umem = Umem::new(UmemConfig {
                frame_count: ring * 4,
                frame_size: 2048,
                fill_size: ring,
                comp_size: ring,
            })
            .map_err(DriverError::Umem)?;
            let config = XskConfig {
                rx_size: ring,
                tx_size: if q == 0 { ring } else { 64 },
                bind: BindPreference::Auto,
                need_wakeup: true,
            };
            let mut s = XskSocket::new(ifindex, q, umem, &config)
                .map_err(|source| DriverError::Xsk { queue: q, source })?;
            s.fill();
            steer.register(q, s.fd()).map_err(DriverError::Steer)?;
            socks.push(s);
        }
        steer.attach(ifindex).map_err(DriverError::Steer)?;
        let batch = cfg.batch.clamp(1, 1024);
        Ok(Self {
            socks,
            steer,
            rx: vec![Desc::default(); batch],
            out: Vec::with_capacity(batch * 2),
            tx: Vec::with_capacity(batch * 2),
            tx_descs: Vec::with_capacity(batch * 2),
            pollfds: Vec::new(),
            core: Core {
                cfg,
                ids,
                scenario,
                servers: Vec::new(),
                na: Indexer::default(),
                pd: Indexer::default(),
                my_mac,
                my_link_local,
                scratch: Scratch::default(),
                t0: Instant::now(),
            },
        })
    }

    /// How the steering program is attached.
    #[must_use]
    pub fn steer_mode(&self) -> Option<Mode> {
        self.steer.mode()
    }

    /// Receive queues served.
    #[must_use]
    pub fn queues(&self) -> usize {
        self.socks.len()
    }

    /// The scenario (client states, counters, uniqueness).
    #[must_use]
    pub fn scenario(&self) -> &Scenario {
        &self.core.scenario
    }

    /// The scenario, to change the mix between periods.
    pub fn scenario_mut(&mut self) -> &mut Scenario {
        &mut self.core.scenario
    }

    /// The server hardware address in use (given, or learned by ARP).
    #[must_use]
    pub fn server_mac(&self) -> Option<[u8; 6]> {
        self.core.cfg.server_mac
    }

    /// Servers seen so far (by DHCPv4 server identifier or DHCPv6 DUID).
    #[must_use]
    pub fn servers_seen(&self) -> usize {
        self.core.servers.len()
    }

    /// For a DHCPv4 relay without `server_mac`: ARP for the server, up to `wait`.
    pub fn resolve_server(&mut self, wait: Duration, stop: &AtomicBool) -> Result<(), DriverError> {
        let (Some(Relay::V4(_)), Some(s4), None) = (
            self.core.cfg.relay,
            self.core.cfg.server4,
            self.core.cfg.server_mac,
        ) else {
            return Ok(());
        };
        let end = Instant::now() + wait;
        while self.core.cfg.server_mac.is_none() && Instant::now() < end {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            self.out.push(Out::ArpRequest(s4));
            self.flush()?;
            let t = Instant::now() + Duration::from_millis(200);
            while Instant::now() < t && self.core.cfg.server_mac.is_none() {
                self.receive();
                self.flush()?;
                self.wait(1)?;
            }
        }
        if self.core.cfg.server_mac.is_none() {
            return Err(DriverError::Setup(format!(
                "no ARP answer from the server {s4} within {wait:?}"
            )));
        }
        Ok(())
    }

    /// Takes every received frame off the RX rings and handles it; the frames to send go to
    /// `self.out`. Returns how many frames were received.
    fn receive(&mut self) -> usize {
        let mut total = 0;
        for s in &mut self.socks {
            loop {
                let n = s.recv_batch(&mut self.rx);
                if n == 0 {
                    break;
                }
                for d in &self.rx[..n] {
                    self.core.handle(s.packet(*d), &mut self.out);
                    s.release(d.addr);
                }
                total += n;
                if n < self.rx.len() {
                    break;
                }
            }
            s.fill();
        }
        self.core.scenario.stats.rx_frames += total as u64;
        total
    }

    /// Builds and transmits everything in `self.out`. Requests that find no free frame or
    /// no room on the TX ring are lost at [`DropStage::TxFull`].
    fn flush(&mut self) -> Result<(), DriverError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let now = self.core.now();
        let sock = &mut self.socks[0];
        self.tx.clear();
        let outs = std::mem::take(&mut self.out);
        for &o in &outs {
            let client = match o {
                Out::Client(i, _) => i,
                _ => u32::MAX,
            };
            let Some(slot) = sock.tx_frame() else {
                if client != u32::MAX {
                    self.core.scenario.unsent(client);
                }
                continue;
            };
            match self.core.build(o, sock.frame_mut(slot.addr), now) {
                Ok(Some(len)) => self.tx.push((
                    Desc {
                        addr: slot.addr,
                        len: len as u32,
                    },
                    client,
                )),
                Ok(None) => {
                    sock.release(slot.addr);
                    if client != u32::MAX {
                        // Not the ring's fault: nothing could be addressed.
                        self.core.scenario.unsent_at(client, DropStage::NoAck);
                    }
                }
                Err(e) => {
                    sock.release(slot.addr);
                    return Err(DriverError::Wire(e));
                }
            }
        }
        self.out = outs;
        self.out.clear();
        self.tx_descs.clear();
        self.tx_descs.extend(self.tx.iter().map(|t| t.0));
        let descs = &self.tx_descs;
        let mut done = 0;
        // A full ring gets a kick and one more try before the rest is given up.
        for attempt in 0..2 {
            done += sock.submit_tx(&descs[done..]);
            if done == descs.len() || attempt == 1 {
                break;
            }
            sock.kick_tx()
                .map_err(|source| DriverError::Xsk { queue: 0, source })?;
            sock.complete();
        }
        for &(d, client) in &self.tx[..done] {
            let _ = d;
            if client != u32::MAX {
                self.core.scenario.sent(client, now);
            }
        }
        for &(d, client) in &self.tx[done..] {
            sock.release(d.addr);
            if client != u32::MAX {
                self.core.scenario.unsent(client);
            }
        }
        self.core.scenario.stats.tx_frames += done as u64;
        sock.kick_tx()
            .map_err(|source| DriverError::Xsk { queue: 0, source })?;
        sock.complete();
        Ok(())
    }

    /// Waits up to `ms` for a frame on any socket.
    fn wait(&mut self, ms: i32) -> Result<(), DriverError> {
        if self.socks.len() == 1 {
            self.socks[0]
                .poll_rx(ms)
                .map_err(|source| DriverError::Xsk { queue: 0, source })?;
            return Ok(());
        }
        self.pollfds.clear();
        self.pollfds.extend(self.socks.iter().map(|s| libc::pollfd {
            fd: s.fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // Safety: pollfds is a live array of valid pollfds of the given length.
        unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                ms,
            )
        };
        Ok(())
    }

    /// Runs one period: starts exchanges at `rate` per second for `duration` (or until `stop`,
    /// or until `limit` exchanges were started), then waits up to the reply timeout for the
    /// outstanding ones and counts the rest as lost. Returns the period's counters (elapsed =
    /// the sending time).
    pub fn run_period(
        &mut self,
        rate: u64,
        duration: Duration,
        limit: u64,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Stats, DriverError> {
        let _ = self.core.scenario.take_stats();
        let start = Instant::now();
        let mut started: u64 = 0;
        let batch = self.rx.len() as u64;
        let mut next_progress = start;
        let timeout = self.core.cfg.timeout;
        let mut sending = true;
        let mut send_end = start + duration;
        loop {
            let now_i = Instant::now();
            if sending && (now_i >= send_end || started >= limit || stop.load(Ordering::Relaxed)) {
                sending = false;
                send_end = now_i;
            }
            if !sending
                && (self.core.scenario.outstanding() == 0
                    || now_i >= send_end + timeout
                    || stop.load(Ordering::Relaxed))
            {
                break;
            }
            let got = self.receive();
            let now = self.core.now();
            self.core.scenario.expire(now);
            let mut begun = 0;
            if sending {
                let due = u64::try_from((now_i - start).as_micros() * u128::from(rate) / 1_000_000)
                    .unwrap_or(u64::MAX);
                let n = due.min(limit).saturating_sub(started).min(batch);
                for _ in 0..n {
                    started += 1;
                    if let Some((i, send)) = self.core.scenario.begin_next(now) {
                        self.out.push(Out::Client(i, send));
                        begun += 1;
                    }
                }
            }
            let pending_out = !self.out.is_empty();
            self.flush()?;
            if now_i >= next_progress {
                next_progress = now_i + Duration::from_millis(250);
                let st = &self.core.scenario.stats;
                progress(&Progress {
                    elapsed: now_i - start,
                    duration,
                    started: st.total_started(),
                    completed: st.total_completed(),
                    drops: st.total_drops(),
                    bound: self.core.scenario.bound(),
                });
            }
            if got == 0 && begun == 0 && !pending_out {
                // Nothing happened: sleep until a frame arrives, at most 1 ms (the next
                // exchanges then go out as one batch). Never spin: on a small machine the
                // generator shares the cores with the server it measures.
                self.wait(1)?;
            }
        }
        self.core.scenario.expire_all();
        let mut stats = self.core.scenario.take_stats();
        stats.elapsed = send_end - start;
        Ok(stats)
    }

    /// The kernel counters of every socket, summed: (RX dropped, RX ring full, fill ring empty).
    #[must_use]
    pub fn socket_drops(&self) -> (u64, u64, u64) {
        self.socks
            .iter()
            .filter_map(|s| s.stats().ok())
            .fold((0, 0, 0), |a, s| {
                (
                    a.0 + s.rx_dropped,
                    a.1 + s.rx_ring_full,
                    a.2 + s.rx_fill_ring_empty_descs,
                )
            })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for q in 0..self.socks.len() {
            let _ = self.steer.unregister(q as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexer_round_trips_addresses_and_prefixes() {
        let mut na = Indexer::default();
        let first: Ipv6Addr = "2001:db8:1::1:2345".parse().unwrap();
        let i1 = na
            .index(IaLease {
                addr: first,
                len: 128,
            })
            .unwrap();
        assert_eq!(na.lease(i1).unwrap().addr, first);
        let last: Ipv6Addr = "2001:db8:1::ffff:ffff".parse().unwrap();
        let i2 = na
            .index(IaLease {
                addr: last,
                len: 128,
            })
            .unwrap();
        assert_ne!(i1, i2);
        assert_eq!(na.lease(i2).unwrap().addr, last);
        // Outside the 2^32 block of the first address.
        assert_eq!(
            na.index(IaLease {
                addr: "2001:db8:2::1".parse().unwrap(),
                len: 128
            }),
            None
        );

        let mut pd = Indexer::default();
        let p1: Ipv6Addr = "2001:db8:80ab:cd00::".parse().unwrap();
        let k1 = pd.index(IaLease { addr: p1, len: 56 }).unwrap();
        let back = pd.lease(k1).unwrap();
        assert_eq!((back.addr, back.len), (p1, 56));
        let p2: Ipv6Addr = "2001:db8:80ff:ff00::".parse().unwrap();
        assert_ne!(pd.index(IaLease { addr: p2, len: 56 }).unwrap(), k1);
        assert_eq!(
            pd.index(IaLease { addr: p2, len: 60 }),
            None,
            "one length only"
        );
    }
}
