//! The validated configuration model: the types the server is written against.
//!
//! Every value here has passed [`super::parse`]'s checks; the fields are public so tests and
//! the server can also build a configuration in code (start from [`Server::default`] and
//! [`Subnet4::new`]).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;

/// A whole twinlease configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// Process-wide settings (`[server]`).
    pub server: Server,
    /// `DHCPv4` subnets (`[[subnet4]]`), in file order.
    pub subnet4: Vec<Subnet4>,
    /// `DHCPv6` subnets (`[[subnet6]]`), in file order.
    pub subnet6: Vec<Subnet6>,
    /// The control API (`[control]`); `None` when the table is absent: no control API.
    pub control: Option<Control>,
    /// The `DHCPv4` failover relationship (`[failover]`); `None`: a standalone server.
    pub failover: Option<Failover>,
    /// The `DHCPv6` failover relationship (`[failover6]`, RFC 8156); `None`: the `DHCPv6`
    /// side is standalone.
    pub failover6: Option<Failover6>,
}

impl Config {
    /// Number of worker threads to run: `server.workers`, or one per available core when it
    /// is 0 (1 if the core count cannot be determined).
    #[must_use]
    pub fn workers(&self) -> usize {
        if self.server.workers == 0 {
            std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
        } else {
            self.server.workers
        }
    }

    /// The subnet with this id, if any.
    #[must_use]
    pub fn subnet4_by_id(&self, id: u32) -> Option<&Subnet4> {
        self.subnet4.iter().find(|s| s.id == id)
    }

    /// The `DHCPv6` subnet with this id, if any.
    #[must_use]
    pub fn subnet6_by_id(&self, id: u32) -> Option<&Subnet6> {
        self.subnet6.iter().find(|s| s.id == id)
    }
}

/// When lease records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `"fsync"`: every batch is `fdatasync`ed before its ACKs are sent (draft-ietf-dhc-failover
    /// §3.1.3: stable storage before the ACK). The default.
    #[default]
    Fsync,
    /// `"none"`: never sync; a crash may forget granted leases. For labs and benchmarks only.
    None,
}

/// How packets move between the NIC and the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// `"socket"`: ordinary UDP/raw sockets through the kernel's stack. The default.
    #[default]
    Socket,
    /// `"xdp"`: an XDP program steers DHCP on the configured interfaces into `AF_XDP`
    /// sockets, one per receive queue (see [`XdpSettings`]).
    Xdp,
}

/// How the XDP program is attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpAttachMode {
    /// Native (driver) mode when the driver supports it, else generic (skb) mode.
    #[default]
    Auto,
    /// Native mode only; refuse to start when the driver lacks it.
    Driver,
    /// Generic (skb) mode: works everywhere, slower.
    Skb,
}

/// The `[server.xdp]` table: settings of the XDP/`AF_XDP` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpSettings {
    /// XDP attach mode (`attach-mode`: "auto", "driver", "skb"). Default auto.
    pub attach_mode: XdpAttachMode,
    /// Busy-poll the `AF_XDP` rings instead of sleeping in poll(2) when idle. Default false.
    pub busy_poll: bool,
    /// Descriptors per `AF_XDP` ring (fill, completion, RX, TX): a power of two. Default 2048.
    pub ring_size: u32,
    /// UMEM frames per socket. Default 4096.
    pub frames: u32,
    /// Queues to serve per interface (0: every receive queue). Default 0.
    pub queues: u32,
    /// Cores the queue loops are pinned to (`queue-cores`): loop i runs on
    /// `queue_cores[i % len]`. Empty (the default): not pinned.
    pub queue_cores: Vec<usize>,
}

impl Default for XdpSettings {
    fn default() -> Self {
        Self {
            attach_mode: XdpAttachMode::Auto,
            busy_poll: false,
            ring_size: 2048,
            frames: 4096,
            queues: 0,
            queue_cores: Vec::new(),
        }
    }
}

/// The control API: the `[control]` table (HTTP/JSON and Prometheus `/metrics`).
///
/// A listen address that is not a loopback address requires a bearer token (`token` or
/// `token-file`); with a token, every request must carry `Authorization: Bearer <token>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Control {
    /// Address the HTTP server listens on. Default `127.0.0.1:8547`.
    pub listen: std::net::SocketAddr,
    /// The bearer token, given inline (`token`).
    pub token: Option<String>,
    /// A file holding the bearer token (`token-file`), read when the server starts; leading
    /// and trailing white space is ignored.
    pub token_file: Option<PathBuf>,
}

impl Control {
    /// Default `listen` address: loopback only.
    pub const DEFAULT_LISTEN: std::net::SocketAddr =
        std::net::SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8547));
}

impl Default for Control {
    fn default() -> Self {
        Self {
            listen: Self::DEFAULT_LISTEN,
            token: None,
            token_file: None,
        }
    }
}

impl fmt::Debug for Control {
    /// Never prints the token itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Process-wide settings: the `[server]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Where the WAL segments and snapshots live. Default `/var/lib/twinlease`.
    pub data_dir: PathBuf,
    /// Worker threads; 0 means one per core (see [`Config::workers`]). Default 0, at most 1024.
    pub workers: usize,
    /// Durability of lease records. Default [`Durability::Fsync`].
    pub durability: Durability,
    /// Packet I/O path. Default [`IoMode::Socket`].
    pub io: IoMode,
    /// Addresses to listen on. Default `["0.0.0.0:67"]`; never empty.
    pub listen: Vec<SocketAddrV4>,
    /// `DHCPv6` addresses to listen on (`listen6`). Default `["[::]:547"]` (RFC 8415 §7.2:
    /// servers listen on UDP port 547); never empty.
    pub listen6: Vec<SocketAddrV6>,
    /// Interfaces on which directly attached clients (giaddr 0) are served. May be empty for a
    /// relay-only server. Default empty.
    pub interfaces: Vec<String>,
    /// The server identifier, option 54 (RFC 2132 §9.7). `None` (the default): the address of
    /// the interface the request arrived on.
    pub server_id: Option<Ipv4Addr>,
    /// How long an offered address stays reserved for the client, in seconds. Default 30.
    pub offer_hold_secs: u32,
    /// How long a declined (`DHCPDECLINE`) address is quarantined, in seconds (RFC 2131 §4.3.3). Default 86400.
    pub decline_probation_secs: u32,
    /// Most requests one worker handles per group commit. Default 64, range 1..=4096.
    pub batch_size: usize,
    /// Capacity of each dispatcher→worker ring (each worker has a priority and a bulk
    /// ring). Default 4096, at least `batch_size`.
    pub ring_capacity: usize,
    /// Bulk requests (anything but renewals and releases) that waited longer than this many
    /// milliseconds in a worker's ring are dropped unanswered (`stale-request-ms`); 0 never
    /// drops. Default 2000.
    pub stale_request_ms: u32,
    /// Requests per second accepted from one client (by client key, per receive loop),
    /// after a burst of `max(rate, 4)` (`per-client-rate`); 0 (the default) is no limit.
    pub per_client_rate: u32,
    /// Size of one WAL segment, in MiB. Default 64.
    pub wal_segment_mib: u32,
    /// UDP port replies to directly attached clients go to. Default 68 (RFC 2131 §4.1).
    pub reply_port: u16,
    /// UDP port replies to relay agents go to. Default 67 (RFC 2131 §4.1).
    pub relay_port: u16,
    /// Settings of the XDP path (used when `io = "xdp"`).
    pub xdp: XdpSettings,
    /// Cores the workers are pinned to (`worker-cores`): worker w runs on
    /// `worker_cores[w % len]`. Empty (the default): not pinned.
    pub worker_cores: Vec<usize>,
    /// User to switch to once the sockets are bound and the XDP program attached (`user`).
    /// `None` (the default): stay the user the server was started as.
    pub user: Option<String>,
    /// Clear the capabilities and set `no_new_privs` after the start
    /// (`drop-capabilities`). Default `true`.
    pub drop_capabilities: bool,
    /// Log filter in `tracing`'s `EnvFilter` syntax (`log`, e.g.
    /// `"info,twinlease::failover=debug"`); the `TWINLEASE_LOG` environment variable
    /// overrides it. `None` (the default): `"info"`. Changed by a reload.
    pub log: Option<String>,
}

impl Server {
    /// Default `data-dir`.
    pub const DEFAULT_DATA_DIR: &'static str = "/var/lib/twinlease";
    /// Default `listen` address.
    pub const DEFAULT_LISTEN: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67);
    /// Default `listen6` address: every address, the server port (RFC 8415 §7.2).
    pub const DEFAULT_LISTEN6: SocketAddrV6 = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 547, 0, 0);
    /// Default `offer-hold-secs`.
    pub const DEFAULT_OFFER_HOLD_SECS: u32 = 30;
    /// Default `decline-probation-secs`.
    pub const DEFAULT_DECLINE_PROBATION_SECS: u32 = 86_400;
    /// Default `batch-size`.
    pub const DEFAULT_BATCH_SIZE: usize = 64;
    /// Default `ring-capacity`.
    pub const DEFAULT_RING_CAPACITY: usize = 4096;
    /// Default `stale-request-ms`: half the 4 s a DHCPv4 client waits before its first
    /// retransmission (RFC 2131 §4.1); an older request is likely retransmitted already.
    pub const DEFAULT_STALE_REQUEST_MS: u32 = 2000;
    /// Largest accepted `per-client-rate`.
    pub const MAX_PER_CLIENT_RATE: u32 = 1_000_000;
    /// Default `wal-segment-mib`.
    pub const DEFAULT_WAL_SEGMENT_MIB: u32 = 64;
    /// Default `reply-port` (the DHCP client port, RFC 2131 §4.1).
    pub const DEFAULT_REPLY_PORT: u16 = 68;
    /// Default `relay-port` (the DHCP server port, RFC 2131 §4.1).
    pub const DEFAULT_RELAY_PORT: u16 = 67;
    /// Largest accepted `workers`.
    pub const MAX_WORKERS: usize = 1024;
    /// Largest accepted `batch-size`.
    pub const MAX_BATCH_SIZE: usize = 4096;
}

impl Default for Server {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(Self::DEFAULT_DATA_DIR),
            workers: 0,
            durability: Durability::default(),
            io: IoMode::default(),
            listen: vec![Self::DEFAULT_LISTEN],
            listen6: vec![Self::DEFAULT_LISTEN6],
            interfaces: Vec::new(),
            server_id: None,
            offer_hold_secs: Self::DEFAULT_OFFER_HOLD_SECS,
            decline_probation_secs: Self::DEFAULT_DECLINE_PROBATION_SECS,
            batch_size: Self::DEFAULT_BATCH_SIZE,
            ring_capacity: Self::DEFAULT_RING_CAPACITY,
            stale_request_ms: Self::DEFAULT_STALE_REQUEST_MS,
            per_client_rate: 0,
            wal_segment_mib: Self::DEFAULT_WAL_SEGMENT_MIB,
            reply_port: Self::DEFAULT_REPLY_PORT,
            relay_port: Self::DEFAULT_RELAY_PORT,
            xdp: XdpSettings::default(),
            worker_cores: Vec::new(),
            user: None,
            drop_capabilities: true,
            log: None,
        }
    }
}

/// An IPv4 prefix, written `"10.0.0.0/24"`.
///
/// A configured subnet always has `addr` equal to its network address and `prefix_len <= 32`;
/// the methods treat a `prefix_len` above 32 as 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    /// The address as written (the network address, once validated).
    pub addr: Ipv4Addr,
    /// Prefix length in bits, 0..=32.
    pub prefix_len: u8,
}

impl Ipv4Net {
    /// A prefix from an address and a length; `None` if `prefix_len > 32`.
    #[must_use]
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        if prefix_len > 32 {
            None
        } else {
            Some(Self { addr, prefix_len })
        }
    }

    /// The netmask as a `u32` (option 1's value, RFC 2132 §3.3).
    #[must_use]
    pub const fn mask_u32(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n if n >= 32 => u32::MAX,
            n => u32::MAX << (32 - n),
        }
    }

    /// The netmask, e.g. 255.255.255.0 for a /24.
    #[must_use]
    pub const fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.mask_u32())
    }

    /// The network address (host bits cleared).
    #[must_use]
    pub const fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() & self.mask_u32())
    }

    /// The directed broadcast address (host bits set). For a /32 this is the address itself.
    #[must_use]
    pub const fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask_u32())
    }

    /// Whether `ip` lies inside this prefix.
    #[must_use]
    pub const fn contains(&self, ip: Ipv4Addr) -> bool {
        ip.to_bits() & self.mask_u32() == self.network().to_bits()
    }

    /// Whether the two prefixes share any address.
    #[must_use]
    pub const fn overlaps(&self, other: &Self) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// Whether the prefix has a distinct network and broadcast address that must not be given
    /// to hosts: true up to /30; /31 (RFC 3021 §2) and /32 have none.
    #[must_use]
    pub const fn has_network_and_broadcast(&self) -> bool {
        self.prefix_len <= 30
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Why a string is not an [`Ipv4Net`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4NetError {
    /// No `/` separating address and prefix length.
    #[error("`{0}` is not a prefix: expected ADDRESS/LENGTH such as 10.0.0.0/24")]
    MissingSlash(String),
    /// The address part is not a dotted-quad IPv4 address.
    #[error("`{0}` is not an IPv4 address")]
    BadAddress(String),
    /// The length part is not a number.
    #[error("`{0}` is not a prefix length")]
    BadLength(String),
    /// The length is above 32.
    #[error("prefix length {0} is larger than 32")]
    LengthTooLarge(u32),
}

impl FromStr for Ipv4Net {
    type Err = Ipv4NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| Ipv4NetError::MissingSlash(s.to_owned()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| Ipv4NetError::BadAddress(addr.to_owned()))?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Ipv4NetError::BadLength(len.to_owned()));
        }
        let len: u32 = len
            .parse()
            .map_err(|_| Ipv4NetError::BadLength(len.to_owned()))?;
        let prefix_len = u8::try_from(len)
            .ok()
            .filter(|&l| l <= 32)
            .ok_or(Ipv4NetError::LengthTooLarge(len))?;
        Ok(Self { addr, prefix_len })
    }
}

/// A `DHCPv4` subnet: the `[[subnet4]]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet4 {
    /// Stable identifier, unique and > 0; lease records refer to it.
    pub id: u32,
    /// The prefix; `subnet.addr` is the network address.
    pub subnet: Ipv4Net,
    /// Directly attached clients arriving on this interface (giaddr 0) use this subnet.
    pub interface: Option<String>,
    /// Relay agent addresses (giaddr, RFC 2131 §4.3.1) that select this subnet, besides any
    /// giaddr inside the subnet itself.
    pub relay_addresses: Vec<Ipv4Addr>,
    /// Dynamic address ranges.
    pub pool: Vec<Pool4>,
    /// Option 3, routers (RFC 2132 §3.5), in order of preference.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6, domain name servers (RFC 2132 §3.8).
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15, domain name (RFC 2132 §3.17).
    pub domain_name: Option<String>,
    /// Option 28, broadcast address (RFC 2132 §5.3); `None` means the subnet's computed
    /// broadcast address (see [`Subnet4::broadcast_address`]).
    pub broadcast_address: Option<Ipv4Addr>,
    /// Lease time given when the client asks for none, in seconds (option 51). Default 3600.
    pub lease_time: u32,
    /// T1, option 58 (RFC 2132 §9.11). `None`: half the lease (RFC 2131 §4.4.5).
    pub renew_time: Option<u32>,
    /// T2, option 59 (RFC 2132 §9.12). `None`: 7/8 of the lease (RFC 2131 §4.4.5).
    pub rebind_time: Option<u32>,
    /// Lower bound a client's requested lease time (option 51) is clamped to.
    pub min_lease_time: Option<u32>,
    /// Upper bound a client's requested lease time (option 51) is clamped to.
    pub max_lease_time: Option<u32>,
    /// Answer a DHCPDISCOVER carrying Rapid Commit (option 80) with a committed DHCPACK
    /// (RFC 4039 §4). Default off.
    pub rapid_commit: bool,
    /// Fixed address assignments.
    pub reservation: Vec<Reservation4>,
    /// Further options sent to clients of this subnet, already encoded.
    pub option: Vec<RawOption>,
}

impl Subnet4 {
    /// Default `lease-time`.
    pub const DEFAULT_LEASE_TIME: u32 = 3600;

    /// A subnet with this id and prefix and every other field at its default: no interface,
    /// relays, pools, options or reservations, `lease-time` 3600.
    #[must_use]
    pub fn new(id: u32, subnet: Ipv4Net) -> Self {
        Self {
            id,
            subnet,
            interface: None,
            relay_addresses: Vec::new(),
            pool: Vec::new(),
            routers: Vec::new(),
            dns_servers: Vec::new(),
            domain_name: None,
            broadcast_address: None,
            lease_time: Self::DEFAULT_LEASE_TIME,
            renew_time: None,
            rebind_time: None,
            min_lease_time: None,
            max_lease_time: None,
            rapid_commit: false,
            reservation: Vec::new(),
            option: Vec::new(),
        }
    }

    /// The broadcast address to announce: the configured one or the subnet's own.
    #[must_use]
    pub fn broadcast_address(&self) -> Ipv4Addr {
        self.broadcast_address
            .unwrap_or_else(|| self.subnet.broadcast())
    }

    /// T1 for the default lease time: `renew-time`, or half of `lease-time`.
    #[must_use]
    pub fn renew_time(&self) -> u32 {
        self.renew_time.unwrap_or(self.lease_time / 2)
    }

    /// T2 for the default lease time: `rebind-time`, or 7/8 of `lease-time`.
    #[must_use]
    pub fn rebind_time(&self) -> u32 {
        self.rebind_time
            .unwrap_or_else(|| seven_eighths(self.lease_time))
    }

    /// The lease time to grant when the client requests `requested` seconds (option 51,
    /// RFC 2132 §9.2) or nothing: the request clamped into `min-lease-time..=max-lease-time`,
    /// or `lease-time` without a request.
    #[must_use]
    pub fn lease_time_for(&self, requested: Option<u32>) -> u32 {
        let Some(wanted) = requested else {
            return self.lease_time;
        };
        let low = self.min_lease_time.unwrap_or(self.lease_time);
        let high = self.max_lease_time.unwrap_or(self.lease_time);
        wanted.clamp(low.min(high), high)
    }
}

/// 7/8 of `secs`, without overflow.
pub(super) const fn seven_eighths(secs: u32) -> u32 {
    (secs as u64 * 7 / 8) as u32
}

/// 4/5 of `secs`, without overflow.
pub(super) const fn four_fifths(secs: u32) -> u32 {
    (secs as u64 * 4 / 5) as u32
}

/// A dynamic address range, both ends included: `range = "10.0.0.100-10.0.0.200"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool4 {
    /// First address of the range.
    pub start: Ipv4Addr,
    /// Last address of the range (inclusive, `>= start`).
    pub end: Ipv4Addr,
}

impl Pool4 {
    /// Whether `ip` lies in the range.
    #[must_use]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// Number of addresses in the range.
    #[must_use]
    pub fn len(&self) -> u64 {
        u64::from(self.end.to_bits()).saturating_sub(u64::from(self.start.to_bits())) + 1
    }

    /// Always false: a validated range holds at least one address.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

impl fmt::Display for Pool4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A fixed assignment: the `[[subnet4.reservation]]` tables. At least one of `hw_address`
/// and `client_id` is set; when a client sends a client identifier (option 61) it is matched
/// first (RFC 2131 §4.2: the client identifier, if present, identifies the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation4 {
    /// Client hardware address (chaddr, Ethernet), written `"aa:bb:cc:dd:ee:ff"`.
    pub hw_address: Option<[u8; 6]>,
    /// Client identifier, option 61 (RFC 2132 §9.14), written in hex `"01:aa:bb:cc:dd:ee:ff"`.
    pub client_id: Option<Vec<u8>>,
    /// The reserved address, inside the subnet.
    pub address: Ipv4Addr,
    /// Host name to send as option 12 (RFC 2132 §3.14).
    pub hostname: Option<String>,
}

/// A custom option, already encoded: the `[[subnet4.option]]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    /// Option code, 1..=254 and not one the server manages itself.
    pub code: u8,
    /// The option's value bytes (without code and length), at most 255 bytes.
    pub data: Vec<u8>,
}

/// An IPv6 prefix, written `"2001:db8:1::/64"`.
///
/// A configured prefix always has `addr` equal to its network address and
/// `prefix_len <= 128`; the methods treat a `prefix_len` above 128 as 128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Net {
    /// The address as written (the network address, once validated).
    pub addr: Ipv6Addr,
    /// Prefix length in bits, 0..=128.
    pub prefix_len: u8,
}

impl Ipv6Net {
    /// A prefix from an address and a length; `None` if `prefix_len > 128`.
    #[must_use]
    pub const fn new(addr: Ipv6Addr, prefix_len: u8) -> Option<Self> {
        if prefix_len > 128 {
            None
        } else {
            Some(Self { addr, prefix_len })
        }
    }

    /// The mask of `len` leading one bits as a `u128` (`len` above 128 counts as 128).
    #[must_use]
    pub const fn mask_of(len: u8) -> u128 {
        match len {
            0 => 0,
            n if n >= 128 => u128::MAX,
            n => u128::MAX << (128 - n),
        }
    }

    /// The network address (bits past the prefix length cleared).
    #[must_use]
    pub const fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from_bits(self.addr.to_bits() & Self::mask_of(self.prefix_len))
    }

    /// The last address of the prefix (bits past the prefix length set).
    #[must_use]
    pub const fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from_bits(self.addr.to_bits() | !Self::mask_of(self.prefix_len))
    }

    /// Whether `ip` lies inside this prefix.
    #[must_use]
    pub const fn contains(&self, ip: Ipv6Addr) -> bool {
        let m = Self::mask_of(self.prefix_len);
        ip.to_bits() & m == self.addr.to_bits() & m
    }

    /// Whether `other` lies wholly inside this prefix.
    #[must_use]
    pub const fn contains_net(&self, other: &Self) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.addr)
    }

    /// Whether the two prefixes share any address.
    #[must_use]
    pub const fn overlaps(&self, other: &Self) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Why a string is not an [`Ipv6Net`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ipv6NetError {
    /// No `/` separating address and prefix length.
    #[error("`{0}` is not a prefix: expected ADDRESS/LENGTH such as 2001:db8:1::/64")]
    MissingSlash(String),
    /// The address part is not an IPv6 address.
    #[error("`{0}` is not an IPv6 address")]
    BadAddress(String),
    /// The length part is not a number.
    #[error("`{0}` is not a prefix length")]
    BadLength(String),
    /// The length is above 128.
    #[error("prefix length {0} is larger than 128")]
    LengthTooLarge(u32),
}

impl FromStr for Ipv6Net {
    type Err = Ipv6NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| Ipv6NetError::MissingSlash(s.to_owned()))?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| Ipv6NetError::BadAddress(addr.to_owned()))?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Ipv6NetError::BadLength(len.to_owned()));
        }
        let len: u32 = len
            .parse()
            .map_err(|_| Ipv6NetError::BadLength(len.to_owned()))?;
        let prefix_len = u8::try_from(len)
            .ok()
            .filter(|&l| l <= 128)
            .ok_or(Ipv6NetError::LengthTooLarge(len))?;
        Ok(Self { addr, prefix_len })
    }
}

/// A `DHCPv6` subnet (one link): the `[[subnet6]]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet6 {
    /// Stable identifier, unique among the `DHCPv6` subnets and > 0; lease records refer to it.
    pub id: u32,
    /// The link's prefix; `prefix.addr` is the network address. A relay's link-address
    /// inside it selects the subnet (RFC 8415 §9, §13.1).
    pub prefix: Ipv6Net,
    /// Directly attached clients arriving on this interface use this subnet.
    pub interface: Option<String>,
    /// The relay Interface-Id option value (RFC 8415 §21.18) that selects this subnet.
    pub interface_id: Option<Vec<u8>>,
    /// Dynamic address ranges (`IA_NA`, RFC 8415 §21.4).
    pub pool: Vec<AddressPool6>,
    /// Delegated prefix pools (`IA_PD`, RFC 8415 §21.21).
    pub pd_pool: Vec<PrefixPool6>,
    /// Preferred lifetime of addresses and prefixes, seconds (RFC 8415 §21.6, §21.22).
    /// Default 3000.
    pub preferred_lifetime: u32,
    /// Valid lifetime of addresses and prefixes, seconds (RFC 8415 §21.6, §21.22), at least
    /// the preferred lifetime. Default 4000.
    pub valid_lifetime: u32,
    /// T1 of every IA (RFC 8415 §21.4, §21.21). `None`: half the preferred lifetime.
    pub renew_time: Option<u32>,
    /// T2 of every IA (RFC 8415 §21.4, §21.21). `None`: 0.8 of the preferred lifetime.
    pub rebind_time: Option<u32>,
    /// Answer a SOLICIT carrying Rapid Commit with a committing REPLY (RFC 8415 §18.3.1,
    /// §21.14). Default off.
    pub rapid_commit: bool,
    /// Option 23, recursive DNS servers (RFC 3646 §3).
    pub dns_servers: Vec<Ipv6Addr>,
    /// Option 24, the domain search list (RFC 3646 §4), names as written.
    pub domain_search: Vec<String>,
    /// Option 82, `SOL_MAX_RT` (RFC 8415 §21.24), 60..=86400 seconds.
    pub sol_max_rt: Option<u32>,
    /// Option 32, `INFORMATION_REFRESH_TIME` (RFC 8415 §21.23), at least 600 seconds.
    pub information_refresh_time: Option<u32>,
    /// Fixed assignments by DUID.
    pub reservation: Vec<Reservation6>,
    /// Further options sent to clients of this subnet when they ask for them, already encoded.
    pub option: Vec<RawOption6>,
}

impl Subnet6 {
    /// Default `preferred-lifetime`.
    pub const DEFAULT_PREFERRED_LIFETIME: u32 = 3000;
    /// Default `valid-lifetime`.
    pub const DEFAULT_VALID_LIFETIME: u32 = 4000;

    /// A subnet with this id and prefix and every other field at its default: no interface,
    /// interface-id, pools, options or reservations, lifetimes 3000/4000.
    #[must_use]
    pub fn new(id: u32, prefix: Ipv6Net) -> Self {
        Self {
            id,
            prefix,
            interface: None,
            interface_id: None,
            pool: Vec::new(),
            pd_pool: Vec::new(),
            preferred_lifetime: Self::DEFAULT_PREFERRED_LIFETIME,
            valid_lifetime: Self::DEFAULT_VALID_LIFETIME,
            renew_time: None,
            rebind_time: None,
            rapid_commit: false,
            dns_servers: Vec::new(),
            domain_search: Vec::new(),
            sol_max_rt: None,
            information_refresh_time: None,
            reservation: Vec::new(),
            option: Vec::new(),
        }
    }

    /// T1: `renew-time`, or 0.5 of the preferred lifetime (RFC 8415 §21.4 recommends 0.5
    /// times the shortest preferred lifetime of the IA).
    #[must_use]
    pub fn renew_time(&self) -> u32 {
        self.renew_time.unwrap_or(self.preferred_lifetime / 2)
    }

    /// T2: `rebind-time`, or 0.8 of the preferred lifetime (RFC 8415 §21.4).
    #[must_use]
    pub fn rebind_time(&self) -> u32 {
        self.rebind_time
            .unwrap_or_else(|| four_fifths(self.preferred_lifetime))
    }
}

/// A dynamic address range, both ends included: `range = "2001:db8:1::100-2001:db8:1::1ff"`
/// or `prefix = "2001:db8:1:0:1::/80"` (every address of the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressPool6 {
    /// First address of the range.
    pub start: Ipv6Addr,
    /// Last address of the range (inclusive, `>= start`).
    pub end: Ipv6Addr,
}

impl AddressPool6 {
    /// Whether `ip` lies in the range.
    #[must_use]
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        self.start <= ip && ip <= self.end
    }
}

impl fmt::Display for AddressPool6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A pool of prefixes to delegate: the `[[subnet6.pd-pool]]` tables. `prefix` is cut into
/// prefixes of `delegated_len` bits (RFC 8415 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixPool6 {
    /// The prefix the delegated prefixes are taken from.
    pub prefix: Ipv6Net,
    /// Length of each delegated prefix, `prefix.prefix_len..=128`.
    pub delegated_len: u8,
    /// The prefix excluded from every delegated prefix (RFC 6603 §4.2), written as it lies
    /// inside the pool's first delegated prefix: its bits from `delegated_len` on are the
    /// IPv6 subnet ID sent in `OPTION_PD_EXCLUDE`, and its length is above `delegated_len`.
    pub excluded: Option<Ipv6Net>,
}

impl PrefixPool6 {
    /// The prefix `excluded` describes inside the delegated prefix `delegated` (RFC 6603
    /// §4.2): the delegated prefix's bits followed by the configured subnet ID bits.
    #[must_use]
    pub fn excluded_in(&self, delegated: Ipv6Addr) -> Option<Ipv6Net> {
        let e = self.excluded?;
        let high = Ipv6Net::mask_of(self.delegated_len);
        let bits = (delegated.to_bits() & high) | (e.addr.to_bits() & !high);
        Some(Ipv6Net {
            addr: Ipv6Addr::from_bits(bits & Ipv6Net::mask_of(e.prefix_len)),
            prefix_len: e.prefix_len,
        })
    }
}

/// A fixed assignment: the `[[subnet6.reservation]]` tables. At least one of `address` and
/// `prefix` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation6 {
    /// The client's DUID (RFC 8415 §11), written in hex `"00:01:00:01:…"`, 3..=130 bytes.
    pub duid: Vec<u8>,
    /// The address given to the client's `IA_NA`, inside the subnet's prefix.
    pub address: Option<Ipv6Addr>,
    /// The prefix delegated to the client's `IA_PD`.
    pub prefix: Option<Ipv6Net>,
}

/// A custom `DHCPv6` option, already encoded: the `[[subnet6.option]]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption6 {
    /// Option code, 1..=65535 and not one the server manages itself.
    pub code: u16,
    /// The option's value bytes (without code and length).
    pub data: Vec<u8>,
}

/// Which side of a failover relationship this server is (draft-ietf-dhc-failover-12 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverRole {
    /// `"primary"`: connects to the peer, owns the FREE share of the free addresses and
    /// sends the MCLT and the load-balancing assignment.
    Primary,
    /// `"secondary"`: accepts the primary's connection and owns the BACKUP share.
    Secondary,
}

/// Mutual TLS on the partner connection (`tls-cert`, `tls-key`, `tls-ca`): both partners
/// present a certificate signed by `ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverTls {
    /// PEM certificate chain of this server.
    pub cert: PathBuf,
    /// PEM private key of this server.
    pub key: PathBuf,
    /// PEM certificate of the authority that signed the partner's certificate.
    pub ca: PathBuf,
    /// Name the partner's certificate must carry (default: the peer address).
    pub peer_name: Option<String>,
}

/// A `DHCPv4` failover relationship: the `[failover]` table. It covers every `[[subnet4]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// Relationship name (draft-12 relationship-name option), the same on both partners.
    pub name: String,
    /// This server's role.
    pub role: FailoverRole,
    /// Local address and TCP port: listened on, and connected from (default port 647).
    pub local: SocketAddrV4,
    /// The partner's address and port: the only source accepted, and the connect target.
    pub peer: SocketAddrV4,
    /// Maximum client lead time, seconds (draft-12 §5.2.1).
    pub mclt: u32,
    /// Seconds without any message from the partner before the connection is declared down
    /// (draft-12 §8.3).
    pub max_response_delay: u32,
    /// Binding updates the partner may send ahead of our acknowledgements (we announce it
    /// in CONNECT; the partner announces its own). Default 2000.
    pub max_unacked_updates: u32,
    /// RFC 3074 hash buckets (of 256) the primary answers in NORMAL; the secondary answers
    /// the rest.
    pub load_balance_split: u16,
    /// A client whose `secs` field exceeds this is answered by either partner (RFC 3074 §4).
    pub load_balance_max_seconds: u16,
    /// Percent by which the FREE/BACKUP split of a pool may drift before the primary
    /// rebalances it.
    pub max_lease_misbalance: u8,
    /// Seconds in COMMUNICATIONS-INTERRUPTED after which the server enters PARTNER-DOWN by
    /// itself; `None` (0 in the file, the default): only an operator does.
    pub auto_partner_down: Option<u32>,
    /// Mutual TLS; `None`: plain TCP restricted to the peer address (what ISC dhcpd speaks).
    pub tls: Option<FailoverTls>,
}

impl Failover {
    /// Default TCP port of the failover protocol (draft-12 §6).
    pub const DEFAULT_PORT: u16 = 647;
}

/// A `DHCPv6` failover relationship (RFC 8156): the `[failover6]` table. It covers every
/// `[[subnet6]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover6 {
    /// Relationship name (`OPTION_F_RELATIONSHIP_NAME`, RFC 8156 §5.5.17), the same on both
    /// partners.
    pub name: String,
    /// This server's role: the primary connects (RFC 8156 §6.1).
    pub role: FailoverRole,
    /// Local address and TCP port: listened on, and connected from (default port 647).
    pub local: SocketAddrV6,
    /// The partner's address and port: the only source accepted, and the connect target.
    pub peer: SocketAddrV6,
    /// Maximum client lead time, seconds (RFC 8156 §4.4).
    pub mclt: u32,
    /// Seconds without any message from the partner before the connection is declared down
    /// (the keepalive time sent in CONNECT, RFC 8156 §5.5.15).
    pub max_response_delay: u32,
    /// Binding updates the partner may send ahead of our replies (RFC 8156 §5.5.8).
    pub max_unacked_updates: u32,
    /// Percent of each `IA_NA` pool's addresses the primary allocates; the secondary
    /// allocates the rest (proportional allocation, RFC 8156 §4.2.2).
    pub address_share: u8,
    /// Seconds in COMMUNICATIONS-INTERRUPTED after which the server enters PARTNER-DOWN by
    /// itself; `None`: only an operator does.
    pub auto_partner_down: Option<u32>,
    /// Mutual TLS; `None`: plain TCP restricted to the peer address.
    pub tls: Option<FailoverTls>,
}
