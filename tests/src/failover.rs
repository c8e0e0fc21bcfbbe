//! The failover test bench: two DHCP servers, their clients, and a partner link that can
//! be cut.
//!
//! ```text
//!   [s1] s0 10.77.0.1/24 ── p1 ┐                      ┌ p3 ── c0 [cli0]
//!                              ├── br0 [sw] (LAN) ────┼ p4 ── c0 [cli1] ...
//!   [s2] s0 10.77.0.2/24 ── p2 ┘
//!   [s1] fo0 192.0.2.1/30 ───────── partner link ───────── fo0 192.0.2.2/30 [s2]
//! ```
//!
//! The client LAN ([`LAN`], clients' pool [`POOL`]) joins both servers and every client
//! namespace through a bridge in its own namespace; the failover TCP connection
//! (draft-ietf-dhc-failover-12 §7) runs over the separate partner link
//! ([`PARTNER_ADDRS`]), which [`FailoverTopology::cut_partner_link`] takes down on both
//! ends (a partition: the servers still see every client) and
//! [`FailoverTopology::restore_partner_link`] brings back. No other route joins
//! 192.0.2.0/30, so the partners cannot reach each other over the LAN.
//!
//! [`FailoverLab`] owns the topology, a temporary folder and up to one server per server
//! namespace: `twinlease` (configured per `/work/notes/failover-contract.md` with
//! [`FailoverParams`]) or ISC `dhcpd` 4.4 with a `failover peer` block ([`Dhcpd`]). It
//! starts, stops (SIGTERM) and kills (SIGKILL) them, talks to twinlease's control API on
//! 127.0.0.1:8547 inside each server namespace ([`http_in_netns`]), reads lease stores, and
//! checks the two failover invariants: no address bound to two clients over the union of
//! both stores ([`assert_no_double_binding`]) and identical bindings after convergence
//! ([`assert_same_bindings`]). Everything is removed on drop, also on panic; the server
//! logs are printed when a test fails ([`FailoverLab::finish`], or on panic).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

use crate::capture::{self, Mac};
use crate::netns::{Netns, VethPair};
use crate::process::{self, ChildGuard};
use crate::topology::{CLIENT_IF, Ipv4Net, SERVER_IF, SUBNET6};
use crate::twinlease::{self, LeaseRecord, LeaseRecord6, Subnet6, Twinlease, TwinleaseConfig};
use crate::{Error, Result};

/// The client LAN, 10.77.0.0/24: s1 is .1, s2 is .2.
pub const LAN: Ipv4Net = Ipv4Net {
    network: Ipv4Addr::new(10, 77, 0, 0),
    prefix: 24,
};
/// The dynamic pool on [`LAN`] that both servers share.
pub const POOL: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 250));
/// The partner link's addresses (s1, s2), both /30.
pub const PARTNER_ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
/// The partner link's IPv6 addresses (s1, s2), both /64 (unique local, RFC 4193), for the
/// DHCPv6 relationship (RFC 8156) after [`FailoverTopology::enable_ipv6`].
pub const PARTNER_ADDRS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0xf0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xfd00, 0xf0, 0, 0, 0, 0, 0, 2),
];
/// The servers' global IPv6 addresses on the LAN (s1, s2), in [`SUBNET6`].
pub const LAN_ADDRS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
];
/// The DHCPv6 address pool both servers share (256 addresses).
pub const POOL6: (Ipv6Addr, Ipv6Addr) = (
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x1000),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10ff),
);
/// The DHCPv6 prefix pool both servers share: /56 prefixes of this /48 (256 of them).
pub const PD_POOL6: (Ipv6Addr, u8, u8) =
    (Ipv6Addr::new(0x2001, 0xdb8, 0x8000, 0, 0, 0, 0, 0), 48, 56);
/// Name of the partner-link interface in both server namespaces.
pub const PARTNER_IF: &str = "fo0";
/// Where twinlease's control API listens inside each server namespace.
pub const CONTROL_ADDR: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8547));
/// The failover metric that counts BNDUPD messages sent (an assumption of the tests about
/// the lead's metric name; adjust here when it differs).
pub const UPDATES_SENT_METRIC: &str = "twinlease_failover_updates_sent_total";
/// The ISC dhcpd binary (package isc-dhcp-server).
pub const DHCPD: &str = "/usr/sbin/dhcpd";
/// Lease states that are pool bookkeeping, not a binding to a client: left out of
/// [`bindings`].
pub const NOT_BINDINGS: &[&str] = &["free", "backup", "offered"];

/// Timeout of one control API request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// One of the two server hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// The first server host (s1: 10.77.0.1, partner end 192.0.2.1).
    S1,
    /// The second server host (s2: 10.77.0.2, partner end 192.0.2.2).
    S2,
}

impl Side {
    /// Both sides, S1 first.
    pub const BOTH: [Self; 2] = [Self::S1, Self::S2];

    /// 0 for S1, 1 for S2.
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::S1 => 0,
            Self::S2 => 1,
        }
    }

    /// The other side.
    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::S1 => Self::S2,
            Self::S2 => Self::S1,
        }
    }

    /// The server's address on the client LAN.
    #[must_use]
    pub fn lan_addr(self) -> Ipv4Addr {
        LAN.host(1 + u32::from(self == Self::S2))
    }

    /// The server's address on the partner link.
    #[must_use]
    pub fn partner_addr(self) -> Ipv4Addr {
        PARTNER_ADDRS[self.index()]
    }

    /// The server's IPv6 address on the partner link.
    #[must_use]
    pub fn partner_addr6(self) -> Ipv6Addr {
        PARTNER_ADDRS6[self.index()]
    }

    /// The server's global IPv6 address on the client LAN.
    #[must_use]
    pub fn lan_addr6(self) -> Ipv6Addr {
        LAN_ADDRS6[self.index()]
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::S1 => "s1",
            Self::S2 => "s2",
        })
    }
}

/// The failover role of a server (draft-ietf-dhc-failover-12 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The primary: connects to the secondary, owns the hash-bucket split.
    Primary,
    /// The secondary.
    Secondary,
}

impl Role {
    /// `primary` or `secondary`, as the config and the API spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        }
    }
}

/// The namespaces and links of the failover bench (see the module documentation). Links
/// are deleted first, then namespaces, on drop.
#[derive(Debug)]
pub struct FailoverTopology {
    #[expect(dead_code, reason = "held for its drop, which deletes the LAN links")]
    links: Vec<VethPair>,
    partner: VethPair,
    clients: Vec<Netns>,
    switch: Netns,
    servers: [Netns; 2],
}

impl FailoverTopology {
    /// Builds the bench with `n_clients` client namespaces (1..=16), each with `c0` on the
    /// LAN and no address.
    pub fn new(n_clients: usize) -> Result<Self> {
        if n_clients == 0 || n_clients > 16 {
            return Err(Error(format!("n_clients {n_clients} out of 1..=16")));
        }
        let s1 = Netns::create("s1")?;
        let s2 = Netns::create("s2")?;
        let switch = Netns::create("sw")?;
        switch.ip(&["link", "add", "br0", "type", "bridge", "forward_delay", "0"])?;
        switch.link_up("br0")?;
        let mut clients = Vec::with_capacity(n_clients);
        for i in 0..n_clients {
            clients.push(Netns::create(&format!("cli{i}"))?);
        }
        let partner = VethPair::create(&s1, PARTNER_IF, &s2, PARTNER_IF, 1)?;
        let mut links = Vec::new();
        for (i, s) in [&s1, &s2].into_iter().enumerate() {
            let port = format!("p{}", i + 1);
            links.push(VethPair::create(s, SERVER_IF, &switch, &port, 1)?);
            switch.ip(&["link", "set", &port, "master", "br0"])?;
        }
        for (i, c) in clients.iter().enumerate() {
            let port = format!("p{}", i + 3);
            links.push(VethPair::create(c, CLIENT_IF, &switch, &port, 1)?);
            switch.ip(&["link", "set", &port, "master", "br0"])?;
        }
        let topo = Self {
            links,
            partner,
            clients,
            switch,
            servers: [s1, s2],
        };
        for side in Side::BOTH {
            let ns = topo.server(side);
            ns.add_addr(SERVER_IF, &format!("{}/{}", side.lan_addr(), LAN.prefix))?;
            ns.add_addr(PARTNER_IF, &format!("{}/30", side.partner_addr()))?;
        }
        Ok(topo)
    }

    /// The namespace of server host `side`.
    #[must_use]
    pub fn server(&self, side: Side) -> &Netns {
        &self.servers[side.index()]
    }

    /// Client namespace `i`.
    ///
    /// # Panics
    /// When `i` is not below the number of clients.
    #[must_use]
    pub fn client(&self, i: usize) -> &Netns {
        &self.clients[i]
    }

    /// Number of client namespaces.
    #[must_use]
    pub fn n_clients(&self) -> usize {
        self.clients.len()
    }

    /// The namespace holding the LAN bridge `br0` (capture the whole LAN there).
    #[must_use]
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// Gives client `i`'s `c0` the fixed LAN address host(10 + i), outside [`POOL`], and
    /// returns it (perfdhcp sends as a relay from it).
    pub fn assign_client_addr(&self, i: usize) -> Result<Ipv4Addr> {
        let n = 10 + u32::try_from(i).map_err(|_| Error::msg("client index too large"))?;
        self.client(i).add_addr(CLIENT_IF, &LAN.cidr_of(n))?;
        Ok(LAN.host(n))
    }

    /// The MAC address of client `i`'s `c0`, as `aa:bb:cc:dd:ee:ff`.
    pub fn client_mac(&self, i: usize) -> Result<String> {
        let out = self.client(i).ip(&["-o", "link", "show", CLIENT_IF])?;
        out.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_owned)
            .ok_or_else(|| Error(format!("no MAC in {out:?}")))
    }

    /// Cuts the partner link: `fo0` down on both ends. The servers keep their LAN.
    pub fn cut_partner_link(&self) -> Result<()> {
        for ns in &self.servers {
            ns.ip(&["link", "set", self.partner_name(), "down"])?;
        }
        Ok(())
    }

    /// Restores the partner link: `fo0` up on both ends (the addresses stayed on it).
    pub fn restore_partner_link(&self) -> Result<()> {
        for ns in &self.servers {
            ns.link_up(self.partner_name())?;
        }
        Ok(())
    }

    fn partner_name(&self) -> &str {
        self.partner.name_a()
    }

    /// Makes the bench IPv6-ready: no duplicate address detection anywhere, no multicast
    /// snooping on the bridge (DHCPv6 is multicast), [`PARTNER_ADDRS6`] on the partner link
    /// and [`LAN_ADDRS6`] on the servers' LAN interfaces; waits (bounded) for every
    /// link-local address.
    pub fn enable_ipv6(&self) -> Result<()> {
        const WAIT: Duration = Duration::from_secs(10);
        for side in Side::BOTH {
            let ns = self.server(side);
            ns.disable_dad(SERVER_IF)?;
            ns.disable_dad(self.partner_name())?;
            // Linux drops IPv6 addresses when a link goes down unless told otherwise:
            // [`Self::cut_partner_link`] must leave them, like the IPv4 ones.
            ns.sysctl(
                &format!("net.ipv6.conf.{}.keep_addr_on_down", self.partner_name()),
                "1",
            )?;
            ns.add_addr6(SERVER_IF, &format!("{}/64", side.lan_addr6()))?;
            ns.add_addr6(self.partner_name(), &format!("{}/64", side.partner_addr6()))?;
        }
        for c in &self.clients {
            c.disable_dad(CLIENT_IF)?;
        }
        for i in 1..=self.clients.len() + 2 {
            self.switch.disable_dad(&format!("p{i}"))?;
        }
        self.switch.ip(&[
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        for c in &self.clients {
            c.wait_link_local(CLIENT_IF, WAIT)?;
        }
        for ns in &self.servers {
            ns.wait_link_local(SERVER_IF, WAIT)?;
            ns.wait_link_local(self.partner_name(), WAIT)?;
        }
        Ok(())
    }

    /// Whether one ping (1 s timeout) from `from` reaches the other side's IPv6 address
    /// over the partner link.
    #[must_use]
    pub fn partner_ping6(&self, from: Side) -> bool {
        let to = from.other().partner_addr6().to_string();
        self.server(from)
            .exec(
                "ping",
                &["-6", "-c1", "-W1", "-n", &to],
                Duration::from_secs(5),
            )
            .is_ok_and(|o| o.status.success())
    }

    /// Whether one ping (1 s timeout) from `from` reaches the other side over the partner
    /// link.
    #[must_use]
    pub fn partner_ping(&self, from: Side) -> bool {
        let to = from.other().partner_addr().to_string();
        self.server(from)
            .exec("ping", &["-c1", "-W1", "-n", &to], Duration::from_secs(5))
            .is_ok_and(|o| o.status.success())
    }
}

/// The `[failover]` parameters of a relationship (both sides use the same), with the
/// contract's key names. Defaults suit tests: MCLT 5 s, max-response-delay 5 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverParams {
    /// `name`: the relationship name (draft-12 §7.3).
    pub name: String,
    /// `port` and `peer-port` (both sides listen on the same port, each in its namespace).
    pub port: u16,
    /// `mclt`, seconds.
    pub mclt: u32,
    /// `max-response-delay`, seconds.
    pub max_response_delay: u32,
    /// `max-unacked-updates`.
    pub max_unacked_updates: u32,
    /// `load-balance-split`: buckets of 256 the primary answers (RFC 3074).
    pub split: u32,
    /// `load-balance-max-seconds`.
    pub load_balance_max_seconds: u32,
    /// `max-lease-misbalance`, percent.
    pub max_lease_misbalance: u32,
    /// `auto-partner-down`, seconds; 0 = off.
    pub auto_partner_down: u32,
}

impl Default for FailoverParams {
    fn default() -> Self {
        Self {
            name: "edge".to_owned(),
            port: 647,
            mclt: 5,
            max_response_delay: 5,
            max_unacked_updates: 100,
            split: 128,
            load_balance_max_seconds: 3,
            max_lease_misbalance: 15,
            auto_partner_down: 0,
        }
    }
}

impl FailoverParams {
    /// The `[failover]` table of the server on `side` in `role` (its peer is the other
    /// side), per the contract.
    #[must_use]
    pub fn to_toml(&self, side: Side, role: Role) -> String {
        let mut s = String::from("\n[failover]\n");
        let _ = writeln!(s, "name = \"{}\"", self.name);
        let _ = writeln!(s, "role = \"{}\"", role.as_str());
        let _ = writeln!(s, "address = \"{}\"", side.partner_addr());
        let _ = writeln!(s, "port = {}", self.port);
        let _ = writeln!(s, "peer-address = \"{}\"", side.other().partner_addr());
        let _ = writeln!(s, "peer-port = {}", self.port);
        let _ = writeln!(s, "mclt = {}", self.mclt);
        let _ = writeln!(s, "max-response-delay = {}", self.max_response_delay);
        let _ = writeln!(s, "max-unacked-updates = {}", self.max_unacked_updates);
        let _ = writeln!(s, "load-balance-split = {}", self.split);
        let _ = writeln!(
            s,
            "load-balance-max-seconds = {}",
            self.load_balance_max_seconds
        );
        let _ = writeln!(s, "max-lease-misbalance = {}", self.max_lease_misbalance);
        let _ = writeln!(s, "auto-partner-down = {}", self.auto_partner_down);
        s
    }
}

impl FailoverParams {
    /// The `[failover6]` table (RFC 8156) of the server on `side` in `role`, over
    /// [`PARTNER_ADDRS6`], with `address-share` `share` percent.
    #[must_use]
    pub fn to_toml6(&self, side: Side, role: Role, share: u8) -> String {
        let mut s = String::from("\n[failover6]\n");
        let _ = writeln!(s, "name = \"{}-v6\"", self.name);
        let _ = writeln!(s, "role = \"{}\"", role.as_str());
        let _ = writeln!(s, "address = \"{}\"", side.partner_addr6());
        let _ = writeln!(s, "port = {}", self.port);
        let _ = writeln!(s, "peer-address = \"{}\"", side.other().partner_addr6());
        let _ = writeln!(s, "peer-port = {}", self.port);
        let _ = writeln!(s, "mclt = {}", self.mclt);
        let _ = writeln!(s, "max-response-delay = {}", self.max_response_delay);
        let _ = writeln!(s, "max-unacked-updates = {}", self.max_unacked_updates);
        let _ = writeln!(s, "address-share = {share}");
        let _ = writeln!(s, "auto-partner-down = {}", self.auto_partner_down);
        s
    }
}

/// DHCPv6 lifetimes of the failover bench's `[[subnet6]]`, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes6 {
    /// `preferred-lifetime`.
    pub preferred: u32,
    /// `valid-lifetime`.
    pub valid: u32,
    /// `renew-time` (T1).
    pub renew: u32,
    /// `rebind-time` (T2).
    pub rebind: u32,
}

/// The twinlease configuration of the server on `side` for a DHCPv6 failover test: the
/// standard DHCPv4 config (standalone) plus a `[[subnet6]]` on `s0` with [`POOL6`],
/// [`PD_POOL6`] and `life`, the control API, and `[failover6]` when `failover` is given
/// (role, parameters, address share).
#[must_use]
pub fn twinlease_toml6(
    data_dir: &Path,
    side: Side,
    life: Lifetimes6,
    failover: Option<(Role, &FailoverParams, u8)>,
) -> String {
    let mut config = TwinleaseConfig::standard(data_dir, LAN, POOL, 3600);
    config.subnets[0].routers = vec![side.lan_addr()];
    config.subnets6.push(Subnet6 {
        id: 1,
        prefix: SUBNET6.to_owned(),
        interface: SERVER_IF.to_owned(),
        pools: vec![POOL6],
        pd_pools: vec![PD_POOL6],
    });
    let head = "[[subnet6]]\nid = 1\n";
    let keys = format!(
        "preferred-lifetime = {}\nvalid-lifetime = {}\nrenew-time = {}\nrebind-time = {}\n",
        life.preferred, life.valid, life.renew, life.rebind
    );
    let mut s = config.to_toml().replacen(head, &format!("{head}{keys}"), 1);
    let _ = write!(s, "\n[control]\nlisten = \"{CONTROL_ADDR}\"\n");
    if let Some((role, params, share)) = failover {
        s.push_str(&params.to_toml6(side, role, share));
    }
    s
}

/// The whole twinlease configuration of the server on `side`: the standard config on the
/// LAN (`s0`, `pool`, `lease_time`) with data in `data_dir`, the control API on
/// [`CONTROL_ADDR`], and a `[failover]` table when `failover` is given.
#[must_use]
pub fn twinlease_toml(
    data_dir: &Path,
    side: Side,
    pool: (Ipv4Addr, Ipv4Addr),
    lease_time: u32,
    failover: Option<(Role, &FailoverParams)>,
) -> String {
    let mut config = TwinleaseConfig::standard(data_dir, LAN, pool, lease_time);
    config.subnets[0].routers = vec![side.lan_addr()];
    config.subnets[0].dns_servers = vec![side.lan_addr()];
    let mut s = config.to_toml();
    let _ = write!(s, "\n[control]\nlisten = \"{CONTROL_ADDR}\"\n");
    if let Some((role, params)) = failover {
        s.push_str(&params.to_toml(side, role));
    }
    s
}

/// An HTTP answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The body (chunked transfer decoded).
    pub body: String,
}

impl HttpReply {
    /// The body as JSON; an error when the status is not 2xx or the body is not JSON.
    pub fn json(&self) -> Result<Value> {
        if !(200..300).contains(&self.status) {
            return Err(Error(format!("HTTP {}: {}", self.status, self.body.trim())));
        }
        serde_json::from_str(&self.body)
            .map_err(|e| Error(format!("not JSON ({e}): {:?}", self.body)))
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`, optional JSON `body`) to `addr` from
/// inside namespace `netns` (its name under `/run/netns`) and returns the answer. The
/// connection is made from a short-lived thread that joins the namespace, so nothing else
/// of the test process changes namespace.
pub fn http_in_netns(
    netns: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<HttpReply> {
    let ns_path = PathBuf::from("/run/netns").join(netns);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    let _ = write!(req, "Content-Length: {}\r\n\r\n{body}", body.len());
    let what = format!("{method} http://{addr}{path} in {netns}");
    let joined = std::thread::spawn(move || -> std::result::Result<Vec<u8>, String> {
        let ns =
            std::fs::File::open(&ns_path).map_err(|e| format!("{}: {e}", ns_path.display()))?;
        // Safety: setns(2) with a valid namespace fd; a network namespace switch affects
        // only the calling thread, which ends right after this request.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        let io = |e: std::io::Error| e.to_string();
        let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(io)?;
        s.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(io)?;
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        Ok(raw)
    })
    .join();
    let raw = match joined {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => return Err(Error(format!("{what}: {e}"))),
        Err(_) => return Err(Error(format!("{what}: the request thread panicked"))),
    };
    parse_http_response(&raw).ok_or_else(|| {
        Error(format!(
            "{what}: malformed answer {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

/// Splits a raw HTTP/1.1 response into status and body, honouring `Content-Length` and
/// decoding `Transfer-Encoding: chunked` (RFC 9112 §7.1).
#[must_use]
pub fn parse_http_response(raw: &[u8]) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse::<u16>()
        .ok()?;
    let mut body: Vec<u8> = raw[end + 4..].to_vec();
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-length") {
            let n: usize = v.trim().parse().ok()?;
            body.truncate(n);
        } else if k.eq_ignore_ascii_case("transfer-encoding")
            && v.trim().eq_ignore_ascii_case("chunked")
        {
            body = dechunk(&body)?;
        }
    }
    Some(HttpReply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// The sum of every sample of metric `name` (all label sets) in Prometheus text format;
/// `None` when the metric has no sample.
#[must_use]
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            match labels.split_once('}') {
                Some((_, after)) => after,
                None => continue,
            }
        } else if rest.starts_with(' ') {
            rest
        } else {
            continue; // another metric whose name starts with `name`
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

/// One relationship in `GET /v1/failover` (contract field names; absent fields default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FailoverStatus {
    /// The relationship name.
    pub name: String,
    /// `primary` or `secondary`.
    pub role: String,
    /// This server's state (`normal`, `communications-interrupted`, `partner-down`, ...).
    pub state: String,
    /// The partner's state as last heard.
    pub partner_state: String,
    /// Since when (UNIX seconds) the server is in `state`.
    pub state_since: u64,
    /// Whether the partner connection is up.
    pub connected: bool,
    /// BNDUPDs sent and not acknowledged yet.
    pub unacked_updates: u64,
    /// Binding changes waiting to be sent.
    pub pending_updates: u64,
    /// Age of the oldest unacknowledged update, milliseconds.
    pub oldest_unacked_ms: u64,
    /// Last message from the partner, UNIX seconds.
    pub last_contact: Option<u64>,
    /// The MCLT, seconds.
    pub mclt: u64,
    /// When PARTNER-DOWN began, UNIX seconds.
    pub pd_start: Option<u64>,
}

/// Parses a `GET /v1/failover` answer.
pub fn parse_failover(v: &Value) -> Result<Vec<FailoverStatus>> {
    let rel = v
        .get("relationships")
        .cloned()
        .ok_or_else(|| Error(format!("no `relationships` in {v}")))?;
    serde_json::from_value(rel).map_err(|e| Error(format!("relationships in {v}: {e}")))
}

/// The v4 leases of a `GET /v1/leases` page (`family` `v4`, or no family field).
pub fn parse_lease_page(v: &Value) -> Result<Vec<LeaseRecord>> {
    let leases = v
        .get("leases")
        .and_then(Value::as_array)
        .ok_or_else(|| Error(format!("no `leases` array in {v}")))?;
    leases
        .iter()
        .filter(|l| {
            l.get("family")
                .and_then(Value::as_str)
                .is_none_or(|f| f == "v4")
        })
        .map(|l| serde_json::from_value(l.clone()).map_err(|e| Error(format!("lease {l}: {e}"))))
        .collect()
}

/// The v6 leases of a `GET /v1/leases` page (`family` `v6`).
pub fn parse_lease_page6(v: &Value) -> Result<Vec<LeaseRecord6>> {
    let leases = v
        .get("leases")
        .and_then(Value::as_array)
        .ok_or_else(|| Error(format!("no `leases` array in {v}")))?;
    leases
        .iter()
        .filter(|l| l.get("family").and_then(Value::as_str) == Some("v6"))
        .map(|l| serde_json::from_value(l.clone()).map_err(|e| Error(format!("lease {l}: {e}"))))
        .collect()
}

/// The comparable part of one DHCPv6 lease: state, client and IAID (times differ between
/// partners by design, RFC 8156 §4.4).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding6 {
    /// The lease state.
    pub state: String,
    /// The client key (`duid:...`).
    pub client: Option<String>,
    /// The IAID.
    pub iaid: Option<u32>,
}

/// DHCPv6 states that hold no member for a client.
const NOT_BINDINGS6: &[&str] = &["free", "backup", "offered", "expired", "released"];

/// The DHCPv6 bindings of a store by (address or prefix, length): every lease whose state
/// holds its member. Fails when one is listed twice.
pub fn bindings6(leases: &[LeaseRecord6]) -> Result<BTreeMap<(Ipv6Addr, u8), Binding6>> {
    let mut out = BTreeMap::new();
    for l in leases
        .iter()
        .filter(|l| !NOT_BINDINGS6.contains(&l.state.as_str()))
    {
        let b = Binding6 {
            state: l.state.clone(),
            client: l.client.clone(),
            iaid: l.iaid,
        };
        if let Some(prev) = out.insert((l.addr, l.prefix_len), b) {
            return Err(Error(format!(
                "{}/{} listed twice: {prev:?} and {l:?}",
                l.addr, l.prefix_len
            )));
        }
    }
    Ok(out)
}

/// Ok when both stores hold the same DHCPv6 bindings ([`bindings6`]); else an error listing
/// every difference.
pub fn assert_same_bindings6(a: &[LeaseRecord6], b: &[LeaseRecord6]) -> Result<()> {
    let (ba, bb) = (bindings6(a)?, bindings6(b)?);
    let mut diff = String::new();
    for (m, x) in &ba {
        if bb.get(m) != Some(x) {
            let _ = writeln!(diff, "  {}/{}: {x:?} vs {:?}", m.0, m.1, bb.get(m));
        }
    }
    for (m, y) in &bb {
        if !ba.contains_key(m) {
            let _ = writeln!(diff, "  {}/{}: None vs {y:?}", m.0, m.1);
        }
    }
    if diff.is_empty() {
        Ok(())
    } else {
        Err(Error(format!(
            "the DHCPv6 stores differ ({} vs {} bindings):\n{diff}",
            ba.len(),
            bb.len()
        )))
    }
}

/// Ok when, over the union of `stores`, no address or prefix is active and unexpired at
/// `now` for two different clients, and no two active delegated prefixes overlap.
pub fn assert_no_double_binding6(stores: &[&[LeaseRecord6]], now: u64) -> Result<()> {
    let mut held: BTreeMap<(Ipv6Addr, u8), Vec<(usize, String)>> = BTreeMap::new();
    for (i, store) in stores.iter().enumerate() {
        for l in store
            .iter()
            .filter(|l| l.state == "active" && l.expires > now)
        {
            let who = l.client.clone().unwrap_or_else(|| "?".to_owned());
            held.entry((l.addr, l.prefix_len))
                .or_default()
                .push((i, who));
        }
    }
    let mut bad = String::new();
    for (m, holders) in &held {
        if holders.iter().any(|(_, h)| *h != holders[0].1) {
            let _ = writeln!(bad, "  {}/{}: (store, client) {holders:?}", m.0, m.1);
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error(format!("members bound to two clients:\n{bad}")))
    }
}

/// The current time, UNIX seconds.
#[must_use]
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who holds a lease: its hardware address, else its client key.
#[must_use]
pub fn holder(l: &LeaseRecord) -> Option<String> {
    l.chaddr
        .clone()
        .or_else(|| l.client.clone())
        .map(|h| h.to_ascii_lowercase())
}

/// The comparable part of one lease: state and holder (times differ between partners by
/// design: the MCLT bounds one side's expiry, draft-ietf-dhc-failover-12 §5.2.1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    /// The lease state.
    pub state: String,
    /// The client key (`id:...`), when listed.
    pub client: Option<String>,
    /// The hardware address, when listed.
    pub chaddr: Option<String>,
}

/// The bindings of a store by address: every lease whose state is not in
/// [`NOT_BINDINGS`]. Fails when an address is listed twice.
pub fn bindings(leases: &[LeaseRecord]) -> Result<BTreeMap<Ipv4Addr, Binding>> {
    // A store keeps each client's last record, so an address may appear more than once: an
    // expired or released record of an earlier client beside the current one (the records
    // live in the shard of their client). The binding of an address is its active record,
    // else its most recent one; two active records for different clients are an error.
    let mut out: BTreeMap<Ipv4Addr, (Binding, u64)> = BTreeMap::new();
    for l in leases
        .iter()
        .filter(|l| !NOT_BINDINGS.contains(&l.state.as_str()))
    {
        let b = Binding {
            state: l.state.clone(),
            client: l.client.clone(),
            chaddr: l.chaddr.clone(),
        };
        let cltt = l.cltt.unwrap_or(0);
        match out.get(&l.addr) {
            None => {
                out.insert(l.addr, (b, cltt));
            }
            Some((prev, _)) if prev.state == "active" && b.state == "active" => {
                return Err(Error(format!(
                    "{} active twice in one store: {prev:?} and {l:?}",
                    l.addr
                )));
            }
            Some((prev, prev_cltt)) => {
                let wins = b.state == "active"
                    || (prev.state != "active" && (cltt, &b.client) > (*prev_cltt, &prev.client));
                if wins {
                    out.insert(l.addr, (b, cltt));
                }
            }
        }
    }
    Ok(out.into_iter().map(|(a, (b, _))| (a, b)).collect())
}

/// Ok when both stores hold the same bindings ([`bindings`]: address, state, client,
/// hardware address; times ignored); else an error listing every difference.
pub fn assert_same_bindings(a: &[LeaseRecord], b: &[LeaseRecord]) -> Result<()> {
    let (ba, bb) = (bindings(a)?, bindings(b)?);
    let mut diff = String::new();
    for (addr, x) in &ba {
        match bb.get(addr) {
            Some(y) if y == x => {}
            other => {
                let _ = writeln!(diff, "  {addr}: {x:?} vs {other:?}");
            }
        }
    }
    for (addr, y) in &bb {
        if !ba.contains_key(addr) {
            let _ = writeln!(diff, "  {addr}: None vs {y:?}");
        }
    }
    if diff.is_empty() {
        Ok(())
    } else {
        Err(Error(format!(
            "the stores differ ({} vs {} bindings):\n{diff}",
            ba.len(),
            bb.len()
        )))
    }
}

/// Ok when, over the union of `stores`, no address is active and unexpired at `now` for
/// two different holders ([`holder`]); else an error naming every such address.
pub fn assert_no_double_binding(stores: &[&[LeaseRecord]], now: u64) -> Result<()> {
    let mut held: BTreeMap<Ipv4Addr, Vec<(usize, String)>> = BTreeMap::new();
    for (i, store) in stores.iter().enumerate() {
        for l in store
            .iter()
            .filter(|l| l.state == "active" && l.expires > now)
        {
            let who = holder(l).unwrap_or_else(|| "?".to_owned());
            held.entry(l.addr).or_default().push((i, who));
        }
    }
    let mut bad = String::new();
    for (addr, holders) in &held {
        if holders.iter().any(|(_, h)| *h != holders[0].1) {
            let _ = writeln!(bad, "  {addr}: (store, holder) {holders:?}");
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error(format!("addresses bound to two clients:\n{bad}")))
    }
}

/// Ok when no address was acknowledged (DHCPACK) to two different hardware addresses in the capture
/// `pcap` (a wire-level double binding; only meaningful over a window shorter than the
/// shortest lease plus MCLT, after which an address may rightly move); returns the ACKs
/// as address → (hardware address, the server's IP source).
pub fn assert_no_double_ack(pcap: &Path) -> Result<BTreeMap<Ipv4Addr, (Mac, Ipv4Addr)>> {
    let mut out: BTreeMap<Ipv4Addr, (Mac, Ipv4Addr)> = BTreeMap::new();
    let mut bad = String::new();
    for m in capture::read_pcap(pcap)? {
        if m.op != 2 || m.msg_type != Some(capture::DHCPACK) || m.yiaddr.is_unspecified() {
            continue;
        }
        if let Some((mac, src)) = out.get(&m.yiaddr)
            && *mac != m.chaddr
        {
            let _ = writeln!(
                bad,
                "  {} ACKed to {mac} (by {src}) and to {} (by {})",
                m.yiaddr, m.chaddr, m.ip_src
            );
        }
        out.insert(m.yiaddr, (m.chaddr, m.ip_src));
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(Error(format!("double binding on the wire:\n{bad}")))
    }
}

/// One lease of an ISC `dhcpd.leases` file (the last record of each address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpdLease {
    /// The address.
    pub addr: Ipv4Addr,
    /// `binding state` (`active`, `free`, `backup`, `expired`, `released`, ...).
    pub binding_state: String,
    /// `hardware ethernet`, lower case.
    pub hw: Option<String>,
    /// The `ends` value as written (`4 2025/11/20 10:00:00`, `never`, `epoch N; # ...`).
    pub ends: Option<String>,
}

/// Parses a `dhcpd.leases` file: every `lease A { ... }` block, the later one winning for
/// an address (dhcpd appends); other blocks (`failover peer ... state`, `server-duid`)
/// are skipped.
#[must_use]
pub fn parse_dhcpd_leases(text: &str) -> Vec<DhcpdLease> {
    let mut out: BTreeMap<Ipv4Addr, DhcpdLease> = BTreeMap::new();
    let mut current: Option<DhcpdLease> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("lease ") {
            current = rest
                .split_whitespace()
                .next()
                .and_then(|a| a.parse().ok())
                .map(|addr| DhcpdLease {
                    addr,
                    binding_state: String::new(),
                    hw: None,
                    ends: None,
                });
            continue;
        }
        let Some(lease) = current.as_mut() else {
            continue;
        };
        if line.starts_with('}') {
            if let Some(l) = current.take() {
                out.insert(l.addr, l);
            }
        } else if let Some(v) = line.strip_prefix("binding state ") {
            v.trim_end_matches(';')
                .trim()
                .clone_into(&mut lease.binding_state);
        } else if let Some(v) = line.strip_prefix("hardware ethernet ") {
            lease.hw = Some(v.trim_end_matches(';').trim().to_ascii_lowercase());
        } else if let Some(v) = line.strip_prefix("ends ") {
            lease.ends = Some(v.split(';').next().unwrap_or(v).trim().to_owned());
        }
    }
    out.into_values().collect()
}

/// The `failover peer` block and pool of an ISC dhcpd 4.4 partner (dhcpd.conf(5),
/// "DHCP FAILOVER").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpdConfig {
    /// The side dhcpd runs on (its addresses).
    pub side: Side,
    /// Its role.
    pub role: Role,
    /// The relationship's parameters (name, port, mclt, split, delays).
    pub params: FailoverParams,
    /// Lease time given to clients (default and max), seconds.
    pub lease_time: u32,
    /// The pool on [`LAN`] (first, last).
    pub pool: (Ipv4Addr, Ipv4Addr),
}

impl DhcpdConfig {
    /// The dhcpd.conf text. `mclt` and `split` are written for the primary only (dhcpd
    /// rejects them on a secondary).
    #[must_use]
    pub fn to_conf(&self) -> String {
        let p = &self.params;
        let mut s = String::from("# Written by the twinlease test harness.\n");
        // No ICMP probe before an offer (dhcpd.conf(5) `ping-check`): it delays every
        // OFFER by a second, past perfdhcp's drop time.
        s.push_str("authoritative;\nddns-update-style none;\nping-check false;\n");
        let _ = writeln!(s, "default-lease-time {};", self.lease_time);
        let _ = writeln!(s, "max-lease-time {};", self.lease_time);
        let _ = writeln!(s, "failover peer \"{}\" {{", p.name);
        let _ = writeln!(s, "  {};", self.role.as_str());
        let _ = writeln!(s, "  address {};", self.side.partner_addr());
        let _ = writeln!(s, "  port {};", p.port);
        let _ = writeln!(s, "  peer address {};", self.side.other().partner_addr());
        let _ = writeln!(s, "  peer port {};", p.port);
        let _ = writeln!(s, "  max-response-delay {};", p.max_response_delay);
        let _ = writeln!(s, "  max-unacked-updates {};", p.max_unacked_updates);
        if self.role == Role::Primary {
            let _ = writeln!(s, "  mclt {};", p.mclt);
            let _ = writeln!(s, "  split {};", p.split);
        }
        let _ = writeln!(
            s,
            "  load balance max seconds {};",
            p.load_balance_max_seconds
        );
        if p.auto_partner_down > 0 {
            let _ = writeln!(s, "  auto-partner-down {};", p.auto_partner_down);
        }
        s.push_str("}\n");
        let _ = writeln!(s, "subnet {} netmask 255.255.255.0 {{", LAN.network);
        let _ = writeln!(s, "  option routers {};", self.side.lan_addr());
        let _ = writeln!(
            s,
            "  pool {{\n    failover peer \"{}\";\n    range {} {};\n  }}",
            p.name, self.pool.0, self.pool.1
        );
        s.push_str("}\n");
        let _ = writeln!(
            s,
            "subnet {} netmask 255.255.255.252 {{ }}",
            Ipv4Addr::from(u32::from(PARTNER_ADDRS[0]) & !3)
        );
        s
    }
}

/// ISC dhcpd running in the foreground (`-f -d`) in a server namespace with its own
/// config, lease file, pid file and log; killed on drop.
#[derive(Debug)]
pub struct Dhcpd {
    child: ChildGuard,
    leases: PathBuf,
}

impl Dhcpd {
    /// Writes `config` into `dir` and starts `dhcpd -4 -f -d -cf -lf -pf s0` in `ns`
    /// (logging to `dir/dhcpd.log`); fails when it exits within the first second.
    pub fn start(ns: &Netns, config: &DhcpdConfig, dir: &Path) -> Result<Self> {
        if !Path::new(DHCPD).exists() {
            return Err(Error(format!(
                "{DHCPD} is absent: apt-get install isc-dhcp-server"
            )));
        }
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("dhcpd.conf");
        let leases = dir.join("dhcpd.leases");
        std::fs::write(&conf, config.to_conf())?;
        if !leases.exists() {
            std::fs::write(&leases, "")?;
        }
        let log = dir.join("dhcpd.log");
        let args = [
            "-4".to_owned(),
            "-f".to_owned(),
            "-d".to_owned(),
            "-cf".to_owned(),
            conf.display().to_string(),
            "-lf".to_owned(),
            leases.display().to_string(),
            "-pf".to_owned(),
            dir.join("dhcpd.pid").display().to_string(),
            SERVER_IF.to_owned(),
        ];
        let mut child = ns.spawn("dhcpd", DHCPD, &args, &log)?;
        if child.wait_timeout(Duration::from_secs(1))?.is_some() {
            return Err(Error(format!(
                "dhcpd exited at once:\n{}",
                child.log_text()
            )));
        }
        Ok(Self { child, leases })
    }

    /// The log so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.child.log_text()
    }

    /// Whether the log contains `needle`.
    #[must_use]
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log().contains(needle)
    }

    /// Waits up to `timeout` until a log line contains all of `needles`; fails early
    /// when dhcpd exits.
    pub fn wait_log(&mut self, needles: &[&str], timeout: Duration) -> Result<String> {
        let found = process::wait_until(timeout, || {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(Ok(l.to_owned()));
            }
            (!self.child.is_running()).then_some(Err(()))
        });
        match found {
            Some(Ok(line)) => Ok(line),
            Some(Err(())) => Err(Error(format!(
                "dhcpd exited before logging {needles:?}:\n{}",
                self.log()
            ))),
            None => Err(Error(format!(
                "dhcpd did not log {needles:?} within {timeout:?}:\n{}",
                self.log()
            ))),
        }
    }

    /// Waits until dhcpd logs `failover peer NAME: I move from X to normal`.
    pub fn wait_normal(&mut self, name: &str, timeout: Duration) -> Result<String> {
        let me = format!("failover peer {name}: I move from");
        self.wait_log(&[&me, " to normal"], timeout)
    }

    /// The leases in its lease file now.
    pub fn leases(&self) -> Result<Vec<DhcpdLease>> {
        Ok(parse_dhcpd_leases(&std::fs::read_to_string(&self.leases)?))
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// SIGTERM, then SIGKILL after the grace period.
    pub fn stop(&mut self) -> Result<()> {
        self.child.terminate().map(drop)
    }

    /// SIGKILL.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill9().map(drop)
    }
}

/// What runs on one server host.
#[derive(Debug)]
enum Server {
    Twinlease(Twinlease),
    Dhcpd(Dhcpd),
}

/// How [`FailoverLab::wait_pair_normal`] (and the `start_pair` functions) wait for a
/// twinlease pair to reach NORMAL, and what they check of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairWait<'a> {
    /// How long each side (s1, then s2) may take to reach NORMAL; a fresh start may include
    /// RECOVER-WAIT, one MCLT.
    pub normal: Duration,
    /// How long each side may then take to see its partner connected and in NORMAL (the
    /// partner's view settles after its own state).
    pub partner: Duration,
    /// When set, the relationship name both sides must report, s1 as primary and s2 as
    /// secondary.
    pub relationship: Option<&'a str>,
}

/// The failover bench with its servers: a [`FailoverTopology`], a temporary folder with
/// one sub-folder per side (`s1/`, `s2/`: config, data, logs), and at most one running
/// server per side. Field order is drop order: servers stop before the namespaces go.
#[derive(Debug)]
pub struct FailoverLab {
    servers: [Option<Server>; 2],
    topo: FailoverTopology,
    bin: PathBuf,
    dir: TempDir,
    logs: [Vec<PathBuf>; 2],
    pool: (Ipv4Addr, Ipv4Addr),
}

impl FailoverLab {
    /// A bench with `n_clients` client namespaces, the `twinlease` binary
    /// ([`twinlease::binary`]), and nothing running.
    pub fn new(n_clients: usize) -> Result<Self> {
        let bin = twinlease::binary()?;
        let topo = FailoverTopology::new(n_clients)?;
        let dir = tempfile::Builder::new().prefix("tl-failover").tempdir()?;
        for side in Side::BOTH {
            std::fs::create_dir_all(dir.path().join(side.to_string()).join("data"))?;
        }
        Ok(Self {
            servers: [None, None],
            topo,
            bin,
            dir,
            logs: [Vec::new(), Vec::new()],
            pool: POOL,
        })
    }

    /// The pool the configs written from now on use ([`POOL`] unless changed).
    #[must_use]
    pub fn pool(&self) -> (Ipv4Addr, Ipv4Addr) {
        self.pool
    }

    /// Sets the pool of the configs written from now on (inside [`LAN`], above .10 + the
    /// client count, which [`FailoverTopology::assign_client_addr`] uses).
    pub fn set_pool(&mut self, pool: (Ipv4Addr, Ipv4Addr)) -> Result<()> {
        if !LAN.contains(pool.0) || !LAN.contains(pool.1) || pool.0 > pool.1 {
            return Err(Error(format!("pool {pool:?} not inside {LAN}")));
        }
        self.pool = pool;
        Ok(())
    }

    /// A dhcpd configuration for `side` in `role` with this lab's pool.
    #[must_use]
    pub fn dhcpd_config(
        &self,
        side: Side,
        role: Role,
        params: &FailoverParams,
        lease_time: u32,
    ) -> DhcpdConfig {
        DhcpdConfig {
            side,
            role,
            params: params.clone(),
            lease_time,
            pool: self.pool,
        }
    }

    /// The topology.
    #[must_use]
    pub fn topo(&self) -> &FailoverTopology {
        &self.topo
    }

    /// The `twinlease` binary.
    #[must_use]
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The folder of `side`: `config.toml`, `data/`, `twinlease.log`, `dhcpd/`.
    #[must_use]
    pub fn side_dir(&self, side: Side) -> PathBuf {
        self.dir.path().join(side.to_string())
    }

    /// The twinlease data directory of `side`.
    #[must_use]
    pub fn data_dir(&self, side: Side) -> PathBuf {
        self.side_dir(side).join("data")
    }

    /// The twinlease config file of `side`.
    #[must_use]
    pub fn config_path(&self, side: Side) -> PathBuf {
        self.side_dir(side).join("config.toml")
    }

    /// Writes the twinlease config of `side` ([`twinlease_toml`]).
    pub fn write_config(
        &self,
        side: Side,
        lease_time: u32,
        failover: Option<(Role, &FailoverParams)>,
    ) -> Result<()> {
        let text = twinlease_toml(&self.data_dir(side), side, self.pool, lease_time, failover);
        std::fs::write(self.config_path(side), text)?;
        Ok(())
    }

    /// Writes the configs of a twinlease pair: s1 primary, s2 secondary, both `params`.
    pub fn write_pair(&self, params: &FailoverParams, lease_time: u32) -> Result<()> {
        self.write_config(Side::S1, lease_time, Some((Role::Primary, params)))?;
        self.write_config(Side::S2, lease_time, Some((Role::Secondary, params)))
    }

    fn note_start(&mut self, side: Side, log: &Path, what: &str) -> Result<()> {
        let mut f = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)?;
        writeln!(
            f,
            "===== harness: starting {what} on {side} at {} =====",
            unix_now()
        )?;
        if !self.logs[side.index()].iter().any(|l| l == log) {
            self.logs[side.index()].push(log.to_path_buf());
        }
        Ok(())
    }

    /// Starts twinlease on `side` with its written config (log appended to
    /// `twinlease.log`), waiting until it serves ([`Twinlease::start`]).
    pub fn start(&mut self, side: Side) -> Result<()> {
        if self.servers[side.index()].is_some() {
            return Err(Error(format!("a server already runs on {side}")));
        }
        let log = self.side_dir(side).join("twinlease.log");
        self.note_start(side, &log, "twinlease")?;
        let server = Twinlease::start(
            self.topo.server(side),
            &self.bin,
            &self.config_path(side),
            &log,
        )?;
        self.servers[side.index()] = Some(Server::Twinlease(server));
        Ok(())
    }

    /// Starts ISC dhcpd on `side` (role and parameters in `config`; its folder is
    /// `side_dir/dhcpd`, lease file kept across restarts).
    pub fn start_dhcpd(&mut self, config: &DhcpdConfig) -> Result<()> {
        let side = config.side;
        if self.servers[side.index()].is_some() {
            return Err(Error(format!("a server already runs on {side}")));
        }
        let dir = self.side_dir(side).join("dhcpd");
        std::fs::create_dir_all(&dir)?;
        self.note_start(side, &dir.join("dhcpd.log"), "dhcpd")?;
        let d = Dhcpd::start(self.topo.server(side), config, &dir)?;
        self.servers[side.index()] = Some(Server::Dhcpd(d));
        Ok(())
    }

    /// The dhcpd running on `side`.
    pub fn dhcpd(&mut self, side: Side) -> Result<&mut Dhcpd> {
        match self.servers[side.index()].as_mut() {
            Some(Server::Dhcpd(d)) => Ok(d),
            _ => Err(Error(format!("no dhcpd runs on {side}"))),
        }
    }

    /// Whether a server process runs on `side`.
    pub fn is_running(&mut self, side: Side) -> bool {
        match self.servers[side.index()].as_mut() {
            Some(Server::Twinlease(t)) => t.is_running(),
            Some(Server::Dhcpd(d)) => d.is_running(),
            None => false,
        }
    }

    /// Stops the server on `side` with SIGTERM; for twinlease it must exit 0 within
    /// 10 s. Nothing running is fine.
    pub fn stop(&mut self, side: Side) -> Result<()> {
        match self.servers[side.index()].take() {
            Some(Server::Twinlease(mut t)) => t.stop(),
            Some(Server::Dhcpd(mut d)) => d.stop(),
            None => Ok(()),
        }
    }

    /// SIGKILLs the server on `side` (a crash).
    pub fn kill9(&mut self, side: Side) -> Result<()> {
        match self.servers[side.index()].take() {
            Some(Server::Twinlease(mut t)) => t.kill9(),
            Some(Server::Dhcpd(mut d)) => d.kill9(),
            None => Err(Error(format!("nothing runs on {side}"))),
        }
    }

    /// Runs `load` on another thread with the topology, SIGKILLs the server on `side`
    /// `after` it started, runs `on_kill` at once on this thread (e.g. to note the
    /// clients' event counts), and waits for `load` to end. Returns both results.
    pub fn kill9_under<T: Send, U>(
        &mut self,
        side: Side,
        after: Duration,
        load: impl FnOnce(&FailoverTopology) -> T + Send,
        on_kill: impl FnOnce() -> U,
    ) -> Result<(T, U)> {
        let Self { servers, topo, .. } = self;
        let topo: &FailoverTopology = topo;
        let (loaded, killed) = std::thread::scope(|s| {
            let running = s.spawn(|| load(topo));
            std::thread::sleep(after);
            let killed = match servers[side.index()].take() {
                Some(Server::Twinlease(mut t)) => t.kill9().map(|()| on_kill()),
                Some(Server::Dhcpd(mut d)) => d.kill9().map(|()| on_kill()),
                None => Err(Error(format!("nothing runs on {side}"))),
            };
            (running.join(), killed)
        });
        let loaded = loaded.map_err(|_| Error::msg("the load thread panicked"))?;
        Ok((loaded, killed?))
    }

    /// One control API request to the twinlease on `side`.
    pub fn http(
        &self,
        side: Side,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<HttpReply> {
        http_in_netns(
            self.topo.server(side).name(),
            CONTROL_ADDR,
            method,
            path,
            body,
        )
    }

    /// `GET path` on `side`'s control API as JSON (2xx required).
    pub fn get_json(&self, side: Side, path: &str) -> Result<Value> {
        self.http(side, "GET", path, None)?.json()
    }

    /// The relationships of `GET /v1/failover` on `side`.
    pub fn failover_status(&self, side: Side) -> Result<Vec<FailoverStatus>> {
        parse_failover(&self.get_json(side, "/v1/failover")?)
    }

    /// The first (only) relationship of `side`.
    pub fn relationship(&self, side: Side) -> Result<FailoverStatus> {
        self.failover_status(side)?
            .into_iter()
            .next()
            .ok_or_else(|| Error(format!("{side} has no failover relationship")))
    }

    /// Polls `GET /v1/failover` on `side` (every 200 ms, at most `timeout`) until the
    /// relationship's state is `state`; returns it. The error names the last state seen.
    pub fn wait_state(&self, side: Side, state: &str, timeout: Duration) -> Result<FailoverStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let last = match self.relationship(side) {
                Ok(r) if r.state == state => return Ok(r),
                Ok(r) => format!("{r:?}"),
                Err(e) => e.0,
            };
            if std::time::Instant::now() >= deadline {
                return Err(Error(format!(
                    "{side} not in state {state} within {timeout:?}; last: {last}"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until both twinleases are in NORMAL (s1 first, each for at most
    /// `wait.normal`, checking their role and name when `wait.relationship` is set), then
    /// until each is connected and sees its partner in NORMAL (at most `wait.partner` each).
    pub fn wait_pair_normal(&self, wait: &PairWait<'_>) -> Result<()> {
        for (side, role) in [(Side::S1, Role::Primary), (Side::S2, Role::Secondary)] {
            let r = self.wait_state(side, "normal", wait.normal)?;
            if let Some(name) = wait.relationship
                && (r.role != role.as_str() || r.name != name)
            {
                return Err(Error(format!("{side}: unexpected relationship {r:?}")));
            }
        }
        for side in Side::BOTH {
            let ok = process::wait_until(wait.partner, || {
                self.relationship(side)
                    .ok()
                    .filter(|r| r.connected && r.partner_state == "normal")
            });
            if ok.is_none() {
                return Err(Error(format!(
                    "{side} does not see its partner in normal: {:?}",
                    self.relationship(side)
                )));
            }
        }
        Ok(())
    }

    /// Writes the configs of a DHCPv4 twinlease pair ([`FailoverLab::write_pair`]: s1
    /// primary, s2 secondary), starts s1 then s2 and waits for NORMAL
    /// ([`FailoverLab::wait_pair_normal`]).
    pub fn start_pair(
        &mut self,
        params: &FailoverParams,
        lease_time: u32,
        wait: &PairWait<'_>,
    ) -> Result<()> {
        self.write_pair(params, lease_time)?;
        self.start_both(wait)
    }

    /// Writes the configs of a DHCPv6 twinlease pair ([`FailoverLab::write_pair6`]: s1
    /// primary with `share` percent of the addresses, s2 secondary), starts s1 then s2 and
    /// waits for NORMAL ([`FailoverLab::wait_pair_normal`]).
    pub fn start_pair6(
        &mut self,
        params: &FailoverParams,
        life: Lifetimes6,
        share: u8,
        wait: &PairWait<'_>,
    ) -> Result<()> {
        self.write_pair6(params, life, share)?;
        self.start_both(wait)
    }

    fn start_both(&mut self, wait: &PairWait<'_>) -> Result<()> {
        self.start(Side::S1)?;
        self.start(Side::S2)?;
        self.wait_pair_normal(wait)
    }

    /// `POST /v1/failover/partner-down` on `side` (body `{"name": NAME}`); returns the
    /// state it answers.
    pub fn partner_down(&self, side: Side, name: &str) -> Result<String> {
        let body = serde_json::json!({ "name": name }).to_string();
        let v = self
            .http(side, "POST", "/v1/failover/partner-down", Some(&body))?
            .json()?;
        v.get("state")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error(format!("partner-down answer without state: {v}")))
    }

    /// `GET /metrics` on `side`.
    pub fn metrics(&self, side: Side) -> Result<String> {
        let r = self.http(side, "GET", "/metrics", None)?;
        if r.status == 200 {
            Ok(r.body)
        } else {
            Err(Error(format!("GET /metrics on {side}: HTTP {}", r.status)))
        }
    }

    /// The sum of metric `name` on `side` (0 when absent).
    pub fn metric(&self, side: Side, name: &str) -> Result<f64> {
        Ok(metric_sum(&self.metrics(side)?, name).unwrap_or(0.0))
    }

    /// The DHCPv4 leases of the twinlease on `side`: from the control API while it runs
    /// (`GET /v1/leases`, every page), from the store (`twinlease leases`) when stopped.
    pub fn leases(&self, side: Side) -> Result<Vec<LeaseRecord>> {
        match &self.servers[side.index()] {
            Some(Server::Twinlease(_)) => {
                let mut all = Vec::new();
                let mut cursor: Option<String> = None;
                for _ in 0..10_000 {
                    let mut path = String::from("/v1/leases?limit=1000");
                    if let Some(c) = &cursor {
                        let _ = write!(path, "&cursor={}", percent_encode(c));
                    }
                    let v = self.get_json(side, &path)?;
                    all.extend(parse_lease_page(&v)?);
                    match v.get("next_cursor").and_then(Value::as_str) {
                        Some(n) => cursor = Some(n.to_owned()),
                        None => return Ok(all),
                    }
                }
                Err(Error(format!("{side}: lease listing does not end")))
            }
            Some(Server::Dhcpd(_)) => Err(Error(format!("{side} runs dhcpd: use dhcpd_leases"))),
            None => twinlease::leases(&self.bin, &self.data_dir(side)),
        }
    }

    /// The leases of the dhcpd on `side`.
    pub fn dhcpd_leases(&mut self, side: Side) -> Result<Vec<DhcpdLease>> {
        self.dhcpd(side)?.leases()
    }

    /// Writes the DHCPv6 failover configs of a twinlease pair ([`twinlease_toml6`]): s1
    /// primary, s2 secondary, both `params`, the primary allocating `share` percent of the
    /// addresses.
    pub fn write_pair6(&self, params: &FailoverParams, life: Lifetimes6, share: u8) -> Result<()> {
        for (side, role) in [(Side::S1, Role::Primary), (Side::S2, Role::Secondary)] {
            let text = twinlease_toml6(
                &self.data_dir(side),
                side,
                life,
                Some((role, params, share)),
            );
            std::fs::write(self.config_path(side), text)?;
        }
        Ok(())
    }

    /// The DHCPv6 leases of the twinlease on `side`: from the control API while it runs
    /// (`GET /v1/leases`, every page, `family` `v6`), from the store when stopped.
    pub fn leases6(&self, side: Side) -> Result<Vec<LeaseRecord6>> {
        match &self.servers[side.index()] {
            Some(Server::Twinlease(_)) => {
                let mut all = Vec::new();
                let mut cursor: Option<String> = None;
                for _ in 0..10_000 {
                    let mut path = String::from("/v1/leases?limit=1000");
                    if let Some(c) = &cursor {
                        let _ = write!(path, "&cursor={}", percent_encode(c));
                    }
                    let v = self.get_json(side, &path)?;
                    all.extend(parse_lease_page6(&v)?);
                    match v.get("next_cursor").and_then(Value::as_str) {
                        Some(n) => cursor = Some(n.to_owned()),
                        None => return Ok(all),
                    }
                }
                Err(Error(format!("{side}: lease listing does not end")))
            }
            Some(Server::Dhcpd(_)) => Err(Error(format!("{side} runs dhcpd"))),
            None => twinlease::leases6(&self.bin, &self.data_dir(side)),
        }
    }

    /// Both sides' DHCPv6 leases, and [`assert_no_double_binding6`] over them now.
    pub fn check_no_double_binding6(&self) -> Result<[Vec<LeaseRecord6>; 2]> {
        let a = self.leases6(Side::S1)?;
        let b = self.leases6(Side::S2)?;
        assert_no_double_binding6(&[&a, &b], unix_now())?;
        Ok([a, b])
    }

    /// Polls both twinleases' DHCPv6 leases (every 500 ms, at most `timeout`) until
    /// [`assert_same_bindings6`] holds; returns the bindings.
    pub fn wait_converged6(&self, timeout: Duration) -> Result<BTreeMap<(Ipv6Addr, u8), Binding6>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let attempt = (|| {
                let [a, b] = self.check_no_double_binding6()?;
                assert_same_bindings6(&a, &b)?;
                bindings6(&a)
            })();
            match attempt {
                Ok(b) => return Ok(b),
                Err(e) if std::time::Instant::now() >= deadline => {
                    return Err(Error(format!("not converged within {timeout:?}: {e}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Both sides' twinlease leases, and [`assert_no_double_binding`] over them now.
    pub fn check_no_double_binding(&self) -> Result<[Vec<LeaseRecord>; 2]> {
        let a = self.leases(Side::S1)?;
        let b = self.leases(Side::S2)?;
        assert_no_double_binding(&[&a, &b], unix_now())?;
        Ok([a, b])
    }

    /// Polls both twinleases' leases (every 500 ms, at most `timeout`) until
    /// [`assert_same_bindings`] holds; returns the bindings. The error is the last
    /// difference.
    pub fn wait_converged(&self, timeout: Duration) -> Result<BTreeMap<Ipv4Addr, Binding>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let attempt = (|| {
                let [a, b] = self.check_no_double_binding()?;
                assert_same_bindings(&a, &b)?;
                bindings(&a)
            })();
            match attempt {
                Ok(b) => return Ok(b),
                Err(e) if std::time::Instant::now() >= deadline => {
                    return Err(Error(format!("not converged within {timeout:?}: {e}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Every server log of this lab so far, with headers.
    #[must_use]
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for side in Side::BOTH {
            for path in &self.logs[side.index()] {
                let text = std::fs::read(path)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let _ = write!(s, "\n----- {side}: {} -----\n{text}", path.display());
            }
        }
        s
    }

    /// Prints the server logs when `result` is an error, and returns it: end a test with
    /// `lab.finish(body(&mut lab))`.
    pub fn finish<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            eprintln!("test failed: {e}\nserver logs:{}", self.logs());
        }
        result
    }
}

impl Drop for FailoverLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test panicked; server logs:{}", self.logs());
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(addr: [u8; 4], state: &str, mac: &str, expires: u64) -> LeaseRecord {
        LeaseRecord {
            addr: Ipv4Addr::from(addr),
            state: state.to_owned(),
            client: Some(format!("id:01:{mac}")),
            chaddr: Some(mac.to_owned()),
            subnet_id: 1,
            expires,
            cltt: Some(1),
        }
    }

    #[test]
    fn double_binding_needs_two_holders_active_and_unexpired() {
        let a = [lease([10, 77, 0, 100], "active", "02:00:00:00:00:01", 200)];
        let same = [lease([10, 77, 0, 100], "active", "02:00:00:00:00:01", 150)];
        let other = [lease([10, 77, 0, 100], "active", "02:00:00:00:00:02", 200)];
        let expired = [lease([10, 77, 0, 100], "active", "02:00:00:00:00:02", 99)];
        let released = [lease(
            [10, 77, 0, 100],
            "released",
            "02:00:00:00:00:02",
            200,
        )];
        assert!(assert_no_double_binding(&[&a, &same], 100).is_ok());
        let e = assert_no_double_binding(&[&a, &other], 100).unwrap_err();
        assert!(e.0.contains("10.77.0.100"), "{e}");
        assert!(assert_no_double_binding(&[&a, &expired], 100).is_ok());
        assert!(assert_no_double_binding(&[&a, &released], 100).is_ok());
        // Within one store too.
        let both = [a[0].clone(), other[0].clone()];
        assert!(assert_no_double_binding(&[&both], 100).is_err());
    }

    #[test]
    fn same_bindings_ignore_times_and_pool_states() {
        let base = [
            lease([10, 77, 0, 100], "active", "02:00:00:00:00:01", 200),
            lease([10, 77, 0, 101], "free", "02:00:00:00:00:09", 0),
        ];
        let later = [lease([10, 77, 0, 100], "active", "02:00:00:00:00:01", 500)];
        assert!(assert_same_bindings(&base, &later).is_ok());
        let expired = [lease([10, 77, 0, 100], "expired", "02:00:00:00:00:01", 200)];
        let err = assert_same_bindings(&base, &expired).unwrap_err();
        assert!(err.0.contains("10.77.0.100"), "{err}");
        let more = [
            later[0].clone(),
            lease([10, 77, 0, 102], "active", "02:00:00:00:00:03", 9),
        ];
        assert!(
            assert_same_bindings(&base, &more)
                .unwrap_err()
                .0
                .contains("10.77.0.102")
        );
    }

    #[test]
    fn writes_the_failover_table_of_the_contract() {
        let p = FailoverParams::default();
        let t = p.to_toml(Side::S2, Role::Secondary);
        for want in [
            "[failover]\nname = \"edge\"\nrole = \"secondary\"\naddress = \"192.0.2.2\"\nport = 647\n",
            "peer-address = \"192.0.2.1\"\npeer-port = 647\nmclt = 5\nmax-response-delay = 5\n",
            "max-unacked-updates = 100\nload-balance-split = 128\nload-balance-max-seconds = 3\n",
            "max-lease-misbalance = 15\nauto-partner-down = 0\n",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        let whole = twinlease_toml(
            Path::new("/d"),
            Side::S1,
            POOL,
            60,
            Some((Role::Primary, &p)),
        );
        assert!(
            whole.contains("[control]\nlisten = \"127.0.0.1:8547\"\n"),
            "{whole}"
        );
        assert!(
            whole.contains("range = \"10.77.0.100-10.77.0.250\""),
            "{whole}"
        );
        assert!(whole.contains("routers = [\"10.77.0.1\"]"), "{whole}");
        assert!(whole.contains("role = \"primary\""), "{whole}");
        assert!(!twinlease_toml(Path::new("/d"), Side::S1, POOL, 60, None).contains("[failover]"));
    }

    #[test]
    fn writes_dhcpd_failover_blocks_per_role() {
        let mut c = DhcpdConfig {
            side: Side::S1,
            role: Role::Primary,
            params: FailoverParams::default(),
            lease_time: 60,
            pool: POOL,
        };
        let t = c.to_conf();
        for want in [
            "failover peer \"edge\" {\n  primary;\n  address 192.0.2.1;\n  port 647;\n",
            "  peer address 192.0.2.2;\n  peer port 647;\n",
            "  mclt 5;\n  split 128;\n  load balance max seconds 3;\n}",
            "range 10.77.0.100 10.77.0.250;",
            "subnet 192.0.2.0 netmask 255.255.255.252 { }",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        c.role = Role::Secondary;
        c.side = Side::S2;
        let t = c.to_conf();
        assert!(t.contains("  secondary;\n  address 192.0.2.2;"), "{t}");
        assert!(!t.contains("mclt") && !t.contains("split"), "{t}");
    }

    #[test]
    fn parses_dhcpd_leases_last_record_wins() {
        let text = r#"# The format of this file is documented in the dhcpd.leases(5) manual page.
authoring-byte-order little-endian;

failover peer "edge" state {
  my state normal at 4 2025/11/20 10:00:00;
  partner state normal at 4 2025/11/20 10:00:00;
}
lease 10.77.0.100 {
  starts 4 2025/11/20 10:00:00;
  ends 4 2025/11/20 10:00:05;
  tstp 4 2025/11/20 10:01:00;
  cltt 4 2025/11/20 10:00:00;
  binding state active;
  next binding state expired;
  hardware ethernet 02:AA:00:00:00:01;
  uid "\001\002\252\000\000\000\001";
}
lease 10.77.0.101 {
  binding state backup;
}
lease 10.77.0.100 {
  ends never;
  binding state free;
  hardware ethernet 02:aa:00:00:00:01;
}
"#;
        let l = parse_dhcpd_leases(text);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].addr, Ipv4Addr::new(10, 77, 0, 100));
        assert_eq!(l[0].binding_state, "free");
        assert_eq!(l[0].hw.as_deref(), Some("02:aa:00:00:00:01"));
        assert_eq!(l[0].ends.as_deref(), Some("never"));
        assert_eq!(l[1].binding_state, "backup");
        assert_eq!(l[1].hw, None);
        assert!(
            parse_dhcpd_leases(&text[..text.find("lease 10.77.0.101").unwrap()])[0].binding_state
                == "active"
        );
    }

    #[test]
    fn parses_http_answers() {
        let r = parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        let r = parse_http_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "{\"a\":1}"));
        assert!(r.json().is_err());
        assert!(parse_http_response(b"garbage").is_none());
    }

    #[test]
    fn sums_metric_samples_over_labels_only_of_that_name() {
        let text = "# HELP twinlease_failover_updates_sent_total x\n\
                    # TYPE twinlease_failover_updates_sent_total counter\n\
                    twinlease_failover_updates_sent_total{relationship=\"edge\"} 7\n\
                    twinlease_failover_updates_sent_total{relationship=\"b\"} 3\n\
                    twinlease_failover_updates_sent_total_other 100\n\
                    twinlease_up 1\n";
        assert_eq!(metric_sum(text, UPDATES_SENT_METRIC), Some(10.0));
        assert_eq!(metric_sum(text, "twinlease_up"), Some(1.0));
        assert_eq!(metric_sum(text, "nope"), None);
    }

    #[test]
    fn parses_failover_status_and_lease_pages() {
        let v: Value = serde_json::from_str(
            r#"{"relationships":[{"name":"edge","role":"primary","state":"normal","partner_state":"normal","state_since":1763700000,"connected":true,"unacked_updates":0,"pending_updates":0,"oldest_unacked_ms":0,"last_contact":1763700010,"mclt":3600,"pd_start":null}]}"#,
        )
        .unwrap();
        let r = parse_failover(&v).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].state.as_str(), r[0].connected, r[0].mclt),
            ("normal", true, 3600)
        );
        assert_eq!(r[0].pd_start, None);
        assert!(
            parse_failover(&serde_json::json!({"relationships": []}))
                .unwrap()
                .is_empty()
        );
        assert!(parse_failover(&serde_json::json!({})).is_err());

        let page: Value = serde_json::from_str(
            r#"{"leases":[{"family":"v4","addr":"10.77.0.100","state":"active","client":"id:01:02:00:00:00:00:01","chaddr":"02:00:00:00:00:01","subnet_id":1,"expires":5,"cltt":1},
            {"family":"v6","kind":"na","addr":"2001:db8::1","prefix_len":128,"state":"active","subnet_id":1,"expires":5}],"next_cursor":null}"#,
        )
        .unwrap();
        let l = parse_lease_page(&page).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].addr, Ipv4Addr::new(10, 77, 0, 100));
    }

    #[test]
    fn sides_have_their_addresses() {
        assert_eq!(Side::S1.lan_addr(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(Side::S2.lan_addr(), Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(Side::S2.partner_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(Side::S1.other(), Side::S2);
        assert!(LAN.contains(POOL.0) && LAN.contains(POOL.1));
    }
}
