//! The standard test network: a server namespace and client namespaces on one link.
//!
//! ```text
//!  n_clients == 1:   [srv] s0 ───────────── c0 [cli0]
//!  n_clients  > 1:   [srv] s0 ── p0 ┐
//!                                   br0 [sw] ├─ p1 ── c0 [cli0]
//!                                            └─ p2 ── c0 [cli1] ...
//! ```
//!
//! `s0` carries the server address (192.0.2.1/24 by default); the clients' `c0` have no
//! address, as DHCP clients expect. [`Topology::assign_client_addr`] gives a client
//! interface a fixed address for tools that need one (perfdhcp acts as a relay and needs a
//! source address).
//!
//! For DHCPv6, [`Topology::enable_ipv6`] turns duplicate address detection off on every
//! veth end, stops the bridge from filtering multicast by MLD snooping, gives `s0`
//! [`SERVER_ADDR6`] in [`SUBNET6`] (documentation prefix, RFC 3849) and waits until every
//! `s0`/`c0` has a usable link-local address, which DHCPv6 clients send from and servers
//! answer to (RFC 8415 §7.1, §13.1).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::netns::{Netns, VethPair};
use crate::{Error, Result};

/// Name of the server's interface in the server namespace.
pub const SERVER_IF: &str = "s0";
/// Name of the client interface in each client namespace.
pub const CLIENT_IF: &str = "c0";

/// The DHCPv6 test link's prefix (inside `2001:db8::/32`, RFC 3849).
pub const SUBNET6: &str = "2001:db8:1::/64";
/// The server's global address on `s0` in [`SUBNET6`].
pub const SERVER_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// The prefix delegated prefixes are taken from in the DHCPv6 tests (RFC 3849 space).
pub const PD_PREFIX6: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 0x8000, 0, 0, 0, 0, 0), 40);
/// The length of each delegated prefix in the DHCPv6 tests.
pub const PD_DELEGATED_LEN: u8 = 56;

/// How long [`Topology::enable_ipv6`] waits for link-local addresses.
const LINK_LOCAL_WAIT: Duration = Duration::from_secs(15);

/// An IPv4 subnet: network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The network address (host bits zero).
    pub network: Ipv4Addr,
    /// The prefix length, 8..=30.
    pub prefix: u8,
}

impl Ipv4Net {
    /// The subnet `network/prefix`; fails when the prefix is out of 8..=30 or host bits
    /// are set.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self> {
        if !(8..=30).contains(&prefix) {
            return Err(Error(format!("prefix /{prefix} out of 8..=30")));
        }
        let net = Self { network, prefix };
        if u32::from(network) & !net.mask() != 0 {
            return Err(Error(format!("{network}/{prefix} has host bits set")));
        }
        Ok(net)
    }

    /// 192.0.2.0/24 (TEST-NET-1), the default test subnet.
    #[must_use]
    pub fn test_net_1() -> Self {
        Self {
            network: Ipv4Addr::new(192, 0, 2, 0),
            prefix: 24,
        }
    }

    /// 198.18.0.0/15, the range reserved for benchmarking (RFC 2544): room for tens of
    /// thousands of leases in load tests.
    #[must_use]
    pub fn benchmark_net() -> Self {
        Self {
            network: Ipv4Addr::new(198, 18, 0, 0),
            prefix: 15,
        }
    }

    /// The netmask as a number.
    #[must_use]
    pub fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The `n`-th host address (`n` = 1 is the first usable address).
    #[must_use]
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(n))
    }

    /// Number of usable host addresses.
    #[must_use]
    pub fn host_count(&self) -> u32 {
        (!self.mask()) - 1
    }

    /// Whether `addr` is inside the subnet.
    #[must_use]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }

    /// `a.b.c.d/p` text of host `n` in this subnet.
    #[must_use]
    pub fn cidr_of(&self, n: u32) -> String {
        format!("{}/{}", self.host(n), self.prefix)
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A server namespace and `n` client namespaces on one Ethernet segment. Everything is
/// removed on drop (links first, then namespaces). Declare it before the processes that
/// run inside it, so they are stopped first.
#[derive(Debug)]
pub struct Topology {
    links: Vec<VethPair>,
    clients: Vec<Netns>,
    switch: Option<Netns>,
    srv: Netns,
    subnet: Ipv4Net,
}

impl Topology {
    /// The standard topology on 192.0.2.0/24 with the server at 192.0.2.1.
    pub fn new(n_clients: usize) -> Result<Self> {
        Self::with_subnet(n_clients, Ipv4Net::test_net_1())
    }

    /// The topology on `subnet`; the server's `s0` gets the subnet's first host address.
    pub fn with_subnet(n_clients: usize, subnet: Ipv4Net) -> Result<Self> {
        Self::build(n_clients, subnet, 1)
    }

    /// Like [`Topology::with_subnet`] with `queues` RX/TX queues on each veth end (for the
    /// multi-queue XDP paths).
    pub fn build(n_clients: usize, subnet: Ipv4Net, queues: u32) -> Result<Self> {
        if n_clients == 0 || n_clients > 32 {
            return Err(Error(format!("n_clients {n_clients} out of 1..=32")));
        }
        let srv = Netns::create("srv")?;
        let mut topo = Self {
            links: Vec::new(),
            clients: Vec::new(),
            switch: None,
            srv,
            subnet,
        };
        for i in 0..n_clients {
            topo.clients.push(Netns::create(&format!("cli{i}"))?);
        }
        if n_clients == 1 {
            topo.links.push(VethPair::create(
                &topo.srv,
                SERVER_IF,
                &topo.clients[0],
                CLIENT_IF,
                queues,
            )?);
        } else {
            let sw = Netns::create("sw")?;
            sw.ip(&["link", "add", "br0", "type", "bridge", "forward_delay", "0"])?;
            sw.link_up("br0")?;
            topo.links
                .push(VethPair::create(&topo.srv, SERVER_IF, &sw, "p0", queues)?);
            sw.ip(&["link", "set", "p0", "master", "br0"])?;
            for i in 0..n_clients {
                let port = format!("p{}", i + 1);
                topo.links.push(VethPair::create(
                    &topo.clients[i],
                    CLIENT_IF,
                    &sw,
                    &port,
                    queues,
                )?);
                sw.ip(&["link", "set", &port, "master", "br0"])?;
            }
            topo.switch = Some(sw);
        }
        topo.srv.add_addr(SERVER_IF, &subnet.cidr_of(1))?;
        Ok(topo)
    }

    /// The server namespace.
    #[must_use]
    pub fn srv(&self) -> &Netns {
        &self.srv
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

    /// The subnet of the segment.
    #[must_use]
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The server's address on `s0`.
    #[must_use]
    pub fn server_addr(&self) -> Ipv4Addr {
        self.subnet.host(1)
    }

    /// Prepares the segment for DHCPv6 (see the module documentation) and returns the
    /// server's link-local address on `s0`. Safe to call more than once.
    pub fn enable_ipv6(&self) -> Result<Ipv6Addr> {
        self.srv.disable_dad(SERVER_IF)?;
        for c in &self.clients {
            c.disable_dad(CLIENT_IF)?;
        }
        if let Some(sw) = &self.switch {
            for i in 0..=self.clients.len() {
                sw.disable_dad(&format!("p{i}"))?;
            }
            sw.ip(&[
                "link",
                "set",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ])?;
        }
        if !self
            .srv
            .ipv6_addrs(SERVER_IF, "global")?
            .contains(&SERVER_ADDR6)
        {
            self.srv
                .add_addr6(SERVER_IF, &format!("{SERVER_ADDR6}/64"))?;
        }
        for c in &self.clients {
            c.wait_link_local(CLIENT_IF, LINK_LOCAL_WAIT)?;
        }
        self.srv.wait_link_local(SERVER_IF, LINK_LOCAL_WAIT)
    }

    /// The server's usable link-local address on `s0`, if any.
    pub fn server_link_local(&self) -> Result<Option<Ipv6Addr>> {
        Ok(self.srv.ipv6_addrs(SERVER_IF, "link")?.first().copied())
    }

    /// Gives client `i`'s `c0` the fixed address `2001:db8:1::(2 + i)/64` (no DAD) and
    /// returns it: perfdhcp as a DHCPv6 relay uses it as link-address (RFC 8415 §9).
    pub fn assign_client_addr6(&self, i: usize) -> Result<Ipv6Addr> {
        let n = 2 + u16::try_from(i).map_err(|_| Error::msg("client index too large"))?;
        let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n);
        self.client(i).add_addr6(CLIENT_IF, &format!("{addr}/64"))?;
        Ok(addr)
    }

    /// Gives client `i`'s `c0` the fixed address host(2 + i) of the subnet and returns it
    /// (perfdhcp sends as a relay from this address).
    pub fn assign_client_addr(&self, i: usize) -> Result<Ipv4Addr> {
        let n = 2 + u32::try_from(i).map_err(|_| Error::msg("client index too large"))?;
        self.client(i)
            .add_addr(CLIENT_IF, &self.subnet.cidr_of(n))?;
        Ok(self.subnet.host(n))
    }
}
