//! The TOML shape of the configuration and the checks that turn it into a [`Config`].
//!
//! Serde only sees strings and integers here; every address is parsed by hand so that a bad
//! one is reported with its field path and the rest of the file is still checked.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;

use serde::Deserialize;

use super::model::{
    Config, Control, Durability, IoMode, Ipv4Net, Pool4, RawOption, Reservation4, Server, Subnet4,
};
use super::{ConfigError, ConfigErrors};

mod failover;
mod failover6;
mod relationship;
mod v6;

/// The whole file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    subnet4: Vec<RawSubnet4>,
    #[serde(default)]
    subnet6: Vec<v6::RawSubnet6>,
    control: Option<RawControl>,
    failover: Option<failover::RawFailover>,
    failover6: Option<failover6::RawFailover6>,
}

/// `[control]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawControl {
    listen: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
}

/// `[server]` as written; absent keys take the [`Server`] defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawServer {
    data_dir: Option<String>,
    workers: Option<usize>,
    durability: Option<String>,
    io: Option<String>,
    listen: Option<Vec<String>>,
    listen6: Option<Vec<String>>,
    interfaces: Vec<String>,
    server_id: Option<String>,
    offer_hold_secs: Option<u32>,
    decline_probation_secs: Option<u32>,
    batch_size: Option<usize>,
    ring_capacity: Option<usize>,
    stale_request_ms: Option<u32>,
    per_client_rate: Option<u32>,
    wal_segment_mib: Option<u32>,
    reply_port: Option<u16>,
    relay_port: Option<u16>,
    worker_cores: Option<Vec<usize>>,
    user: Option<String>,
    drop_capabilities: Option<bool>,
    log: Option<String>,
    xdp: Option<RawXdp>,
}

/// The `[server.xdp]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawXdp {
    attach_mode: Option<String>,
    busy_poll: Option<bool>,
    ring_size: Option<u32>,
    frames: Option<u32>,
    queues: Option<u32>,
    queue_cores: Option<Vec<usize>>,
}

/// One `[[subnet4]]` as written. `id` and `subnet` are required, but optional here so that
/// their absence is reported with the subnet's path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawSubnet4 {
    id: Option<u32>,
    subnet: Option<String>,
    interface: Option<String>,
    relay_addresses: Vec<String>,
    pool: Vec<RawPool>,
    routers: Vec<String>,
    dns_servers: Vec<String>,
    domain_name: Option<String>,
    broadcast_address: Option<String>,
    lease_time: Option<u32>,
    renew_time: Option<u32>,
    rebind_time: Option<u32>,
    min_lease_time: Option<u32>,
    #[serde(default)]
    rapid_commit: bool,
    max_lease_time: Option<u32>,
    reservation: Vec<RawReservation>,
    option: Vec<RawOptionSpec>,
}

/// One `[[subnet4.pool]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawPool {
    range: Option<String>,
}

/// One `[[subnet4.reservation]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawReservation {
    hw_address: Option<String>,
    client_id: Option<String>,
    address: Option<String>,
    hostname: Option<String>,
}

/// One `[[subnet4.option]]`: a code and exactly one way of writing the value. Integers are
/// read as `i64` so an out-of-range value is reported with its path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawOptionSpec {
    code: Option<i64>,
    ip: Option<String>,
    ips: Option<Vec<String>>,
    text: Option<String>,
    hex: Option<String>,
    u8: Option<i64>,
    u16: Option<i64>,
    u32: Option<i64>,
}

/// Options the server writes itself (RFC 2132 §9.1-§9.10, §9.14; RFC 3046 §2), which a
/// custom option must not override.
fn managed_option(code: u8) -> Option<&'static str> {
    Some(match code {
        50 => "requested IP address",
        51 => "IP address lease time",
        52 => "option overload",
        53 => "DHCP message type",
        54 => "server identifier",
        55 => "parameter request list",
        56 => "message",
        57 => "maximum DHCP message size",
        58 => "renewal (T1) time",
        59 => "rebinding (T2) time",
        61 => "client identifier",
        82 => "relay agent information",
        _ => return None,
    })
}

/// Options that have their own configuration field; configuring them twice would be
/// ambiguous.
fn option_with_field(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "the subnet mask comes from `subnet`",
        3 => "use `routers`",
        6 => "use `dns-servers`",
        15 => "use `domain-name`",
        28 => "use `broadcast-address`",
        _ => return None,
    })
}

/// Collects errors for one file.
struct Checker<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn err(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn ipv4(&mut self, field: &str, text: &str) -> Option<Ipv4Addr> {
        match parse_ipv4(text) {
            Ok(ip) => Some(ip),
            Err(reason) => {
                self.err(field, reason);
                None
            }
        }
    }

    /// A unicast address a client may be told about (router, DNS server, server id).
    fn unicast(&mut self, field: &str, text: &str, what: &str) -> Option<Ipv4Addr> {
        let ip = self.ipv4(field, text)?;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            self.err(
                field,
                format!("{ip} cannot be a {what}: it is not a unicast address"),
            );
            return None;
        }
        Some(ip)
    }
}

/// Parses `text` and validates the result; see [`super::parse`].
pub(super) fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let field = e.span().map_or_else(
                || "(toml)".to_owned(),
                |span| {
                    let (line, column) = line_column(text, span.start);
                    format!("line {line}, column {column}")
                },
            );
            return Err(ConfigErrors {
                errors: vec![ConfigError {
                    file: file.to_owned(),
                    field,
                    // toml gives some syntax errors (a NUL in a comment) an empty message.
                    reason: match e.message().trim() {
                        "" => "invalid TOML syntax".to_owned(),
                        m => m.replace('\n', "; "),
                    },
                }],
            });
        }
    };
    let mut c = Checker {
        file,
        errors: Vec::new(),
    };
    let server = check_server(&mut c, raw.server);
    let subnet4 = check_subnets(&mut c, &server, raw.subnet4);
    let subnet6 = v6::check_subnets6(&mut c, &server, raw.subnet6);
    let control = raw.control.map(|r| check_control(&mut c, r));
    let failover = raw
        .failover
        .and_then(|r| failover::check_failover(&mut c, r));
    let failover6 = raw
        .failover6
        .and_then(|r| failover6::check_failover6(&mut c, r));
    if c.errors.is_empty() {
        Ok(Config {
            server,
            subnet4,
            subnet6,
            control,
            failover,
            failover6,
        })
    } else {
        Err(ConfigErrors { errors: c.errors })
    }
}

/// `[control]`: the listen address, and a token whenever the API is reachable from off the
/// host.
fn check_control(c: &mut Checker<'_>, raw: RawControl) -> Control {
    let mut out = Control::default();
    if let Some(text) = raw.listen {
        match text.parse::<std::net::SocketAddr>() {
            Ok(a) => out.listen = a,
            Err(_) => c.err(
                "control.listen",
                format!("{text:?} is not an address and port (e.g. \"127.0.0.1:8547\")"),
            ),
        }
    }
    if let Some(t) = raw.token {
        if t.trim().is_empty() {
            c.err("control.token", "the token is empty");
        } else if t.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            c.err("control.token", "the token contains white space");
        } else {
            out.token = Some(t);
        }
    }
    if let Some(f) = raw.token_file {
        if f.is_empty() {
            c.err("control.token-file", "the path is empty");
        } else {
            out.token_file = Some(PathBuf::from(f));
        }
    }
    if out.token.is_some() && out.token_file.is_some() {
        c.err(
            "control.token-file",
            "give either token or token-file, not both",
        );
    }
    if !out.listen.ip().is_loopback() && out.token.is_none() && out.token_file.is_none() {
        c.err(
            "control.listen",
            format!(
                "{} is not a loopback address: a control API reachable from the network \
                 requires token or token-file",
                out.listen
            ),
        );
    }
    out
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn check_server(c: &mut Checker<'_>, raw: RawServer) -> Server {
    let d = Server::default();
    let mut s = Server {
        data_dir: raw.data_dir.map_or(d.data_dir, PathBuf::from),
        workers: raw.workers.unwrap_or(d.workers),
        durability: d.durability,
        io: d.io,
        listen: Vec::new(),
        listen6: Vec::new(),
        interfaces: Vec::new(),
        server_id: None,
        offer_hold_secs: raw.offer_hold_secs.unwrap_or(d.offer_hold_secs),
        decline_probation_secs: raw
            .decline_probation_secs
            .unwrap_or(d.decline_probation_secs),
        batch_size: raw.batch_size.unwrap_or(d.batch_size),
        ring_capacity: raw.ring_capacity.unwrap_or(d.ring_capacity),
        stale_request_ms: raw.stale_request_ms.unwrap_or(d.stale_request_ms),
        per_client_rate: raw.per_client_rate.unwrap_or(d.per_client_rate),
        wal_segment_mib: raw.wal_segment_mib.unwrap_or(d.wal_segment_mib),
        reply_port: raw.reply_port.unwrap_or(d.reply_port),
        relay_port: raw.relay_port.unwrap_or(d.relay_port),
        xdp: d.xdp.clone(),
        worker_cores: raw.worker_cores.clone().unwrap_or_default(),
        user: raw.user.clone(),
        drop_capabilities: raw.drop_capabilities.unwrap_or(d.drop_capabilities),
        log: raw.log.clone(),
    };
    if let Some(spec) = &s.log
        && let Err(e) = crate::logging::check_filter(spec)
    {
        c.err("server.log", format!("{spec:?} is not a log filter: {e}"));
    }
    if let Some(u) = &s.user
        && (u.is_empty()
            || u.len() > 32
            || !u
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
    {
        c.err(
            "server.user",
            format!("`{u}` is not a user name (1-32 letters, digits, `.`, `_`, `-`)"),
        );
    }

    check_cores(c, "server.worker-cores", &s.worker_cores);
    if s.data_dir.as_os_str().is_empty() {
        c.err("server.data-dir", "must not be empty");
    }
    if s.workers > Server::MAX_WORKERS {
        c.err(
            "server.workers",
            format!(
                "{} workers is more than the maximum {} (0 means one per core)",
                s.workers,
                Server::MAX_WORKERS
            ),
        );
    }
    match raw.durability.as_deref() {
        None | Some("fsync") => s.durability = Durability::Fsync,
        Some("none") => s.durability = Durability::None,
        Some(other) => c.err(
            "server.durability",
            format!("unknown durability `{other}`: expected \"fsync\" or \"none\""),
        ),
    }
    match raw.io.as_deref() {
        None | Some("socket") => s.io = IoMode::Socket,
        Some("xdp") => {
            s.io = IoMode::Xdp;
            if raw.interfaces.is_empty() {
                c.err(
                    "server.interfaces",
                    "io = \"xdp\" needs at least one interface to attach the XDP program to",
                );
            }
        }
        Some(other) => c.err(
            "server.io",
            format!("unknown io mode `{other}`: expected \"socket\" or \"xdp\""),
        ),
    }
    if let Some(x) = &raw.xdp {
        let dx = super::model::XdpSettings::default();
        match x.attach_mode.as_deref() {
            None | Some("auto") => s.xdp.attach_mode = super::model::XdpAttachMode::Auto,
            Some("driver") => s.xdp.attach_mode = super::model::XdpAttachMode::Driver,
            Some("skb") => s.xdp.attach_mode = super::model::XdpAttachMode::Skb,
            Some(other) => c.err(
                "server.xdp.attach-mode",
                format!("unknown attach mode `{other}`: expected \"auto\", \"driver\" or \"skb\""),
            ),
        }
        s.xdp.busy_poll = x.busy_poll.unwrap_or(dx.busy_poll);
        s.xdp.ring_size = x.ring_size.unwrap_or(dx.ring_size);
        if !s.xdp.ring_size.is_power_of_two() || !(64..=65_536).contains(&s.xdp.ring_size) {
            c.err(
                "server.xdp.ring-size",
                format!(
                    "{} must be a power of two from 64 to 65536",
                    s.xdp.ring_size
                ),
            );
        }
        s.xdp.frames = x.frames.unwrap_or(dx.frames);
        if !(s.xdp.ring_size..=1 << 20).contains(&s.xdp.frames) {
            c.err(
                "server.xdp.frames",
                format!(
                    "{} must be at least ring-size ({}) and at most 1048576",
                    s.xdp.frames, s.xdp.ring_size
                ),
            );
        }
        s.xdp.queues = x.queues.unwrap_or(dx.queues);
        s.xdp.queue_cores = x.queue_cores.clone().unwrap_or_default();
        check_cores(c, "server.xdp.queue-cores", &s.xdp.queue_cores);
    }

    match raw.listen {
        None => s.listen = d.listen,
        Some(list) if list.is_empty() => c.err(
            "server.listen",
            "at least one listen address is needed (e.g. \"0.0.0.0:67\")",
        ),
        Some(list) => {
            for (i, text) in list.iter().enumerate() {
                let field = format!("server.listen[{i}]");
                let Ok(addr) = text.trim().parse::<SocketAddrV4>() else {
                    c.err(
                        field,
                        format!("`{text}` is not an IPv4 address:port such as 0.0.0.0:67"),
                    );
                    continue;
                };
                if addr.port() == 0 {
                    c.err(field, format!("{addr}: port 0 is not a port to listen on"));
                } else if let Some(j) = s.listen.iter().position(|&a| a == addr) {
                    c.err(field, format!("{addr} is already listed (listen[{j}])"));
                } else {
                    s.listen.push(addr);
                }
            }
        }
    }

    match raw.listen6 {
        None => s.listen6 = d.listen6,
        Some(list) if list.is_empty() => c.err(
            "server.listen6",
            "at least one listen address is needed (e.g. \"[::]:547\")",
        ),
        Some(list) => {
            for (i, text) in list.iter().enumerate() {
                let field = format!("server.listen6[{i}]");
                let Ok(addr) = text.trim().parse::<SocketAddrV6>() else {
                    c.err(
                        field,
                        format!("`{text}` is not an IPv6 [address]:port such as [::]:547"),
                    );
                    continue;
                };
                if addr.port() == 0 {
                    c.err(field, format!("{addr}: port 0 is not a port to listen on"));
                } else if let Some(j) = s.listen6.iter().position(|&a| a == addr) {
                    c.err(field, format!("{addr} is already listed (listen6[{j}])"));
                } else {
                    s.listen6.push(addr);
                }
            }
        }
    }

    for (i, name) in raw.interfaces.into_iter().enumerate() {
        let field = format!("server.interfaces[{i}]");
        if let Err(reason) = check_interface_name(&name) {
            c.err(field, reason);
        } else if s.interfaces.contains(&name) {
            c.err(field, format!("interface `{name}` is listed twice"));
        } else {
            s.interfaces.push(name);
        }
    }

    if let Some(text) = raw.server_id {
        s.server_id = c.unicast("server.server-id", &text, "server identifier");
    }
    if s.offer_hold_secs == 0 {
        c.err(
            "server.offer-hold-secs",
            "must be > 0: an offered address has to stay reserved until the REQUEST arrives",
        );
    }
    if s.decline_probation_secs == 0 {
        c.err(
            "server.decline-probation-secs",
            "must be > 0: a DECLINEd address must be marked unavailable (RFC 2131 §4.3.3)",
        );
    }
    if s.batch_size == 0 || s.batch_size > Server::MAX_BATCH_SIZE {
        c.err(
            "server.batch-size",
            format!("{} is outside 1..={}", s.batch_size, Server::MAX_BATCH_SIZE),
        );
    } else if s.ring_capacity < s.batch_size {
        c.err(
            "server.ring-capacity",
            format!(
                "{} is smaller than batch-size {}: a ring must hold at least one batch",
                s.ring_capacity, s.batch_size
            ),
        );
    }
    if s.wal_segment_mib == 0 {
        c.err("server.wal-segment-mib", "must be > 0");
    }
    if s.per_client_rate > Server::MAX_PER_CLIENT_RATE {
        c.err(
            "server.per-client-rate",
            format!(
                "{} is above {} requests/s",
                s.per_client_rate,
                Server::MAX_PER_CLIENT_RATE
            ),
        );
    }
    if s.reply_port == 0 {
        c.err("server.reply-port", "port 0 cannot be sent to");
    }
    if s.relay_port == 0 {
        c.err("server.relay-port", "port 0 cannot be sent to");
    }
    s
}

/// Linux's rules for a network device name (`dev_valid_name`): 1-15 bytes, not `.` or `..`,
/// no `/`, `:` or whitespace.
/// Core lists for pinning: each core must exist on this machine (`sched_setaffinity` would
/// refuse it at start otherwise).
fn check_cores(c: &mut Checker<'_>, field: &str, cores: &[usize]) {
    let available = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    for (i, &core) in cores.iter().enumerate() {
        if core >= available {
            c.err(
                format!("{field}[{i}]"),
                format!("core {core} does not exist here (this machine has {available} core(s): 0..={})", available - 1),
            );
        }
    }
}

fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an interface name cannot be empty".to_owned());
    }
    if name.len() > 15 {
        return Err(format!(
            "interface name `{name}` is longer than 15 bytes (IFNAMSIZ)"
        ));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!("`{name}` is not a valid interface name"));
    }
    Ok(())
}

/// A subnet whose prefix parsed, with where it came from, for the cross-subnet checks. Its
/// `id` is 0 when the id was missing or wrong (already reported).
struct Seen {
    index: usize,
    subnet: Subnet4,
}

fn check_subnets(c: &mut Checker<'_>, server: &Server, raw: Vec<RawSubnet4>) -> Vec<Subnet4> {
    let mut ids: HashMap<u32, usize> = HashMap::new();
    let mut interfaces: HashMap<String, usize> = HashMap::new();
    let mut relays: HashMap<Ipv4Addr, (usize, usize)> = HashMap::new();
    let mut seen: Vec<Seen> = Vec::new();
    // Every pool that parsed, for the overlap sweep: (start, end, path).
    let mut pools: Vec<(Ipv4Addr, Ipv4Addr, String)> = Vec::new();

    for (i, r) in raw.into_iter().enumerate() {
        let path = format!("subnet4[{i}]");
        let id = match r.id {
            None => {
                c.err(format!("{path}.id"), "is required");
                None
            }
            Some(0) => {
                c.err(format!("{path}.id"), "must be > 0");
                None
            }
            Some(id) => match ids.entry(id) {
                Entry::Occupied(e) => {
                    c.err(
                        format!("{path}.id"),
                        format!("id {id} is already used by subnet4[{}]", e.get()),
                    );
                    None
                }
                Entry::Vacant(e) => {
                    e.insert(i);
                    Some(id)
                }
            },
        };
        let net = match r.subnet.as_deref() {
            None => {
                c.err(format!("{path}.subnet"), "is required");
                None
            }
            Some(text) => match text.trim().parse::<Ipv4Net>() {
                Err(e) => {
                    c.err(format!("{path}.subnet"), e.to_string());
                    None
                }
                Ok(net) if net.addr != net.network() => {
                    c.err(
                        format!("{path}.subnet"),
                        format!(
                            "{net} is not a network address: the network is {}/{}",
                            net.network(),
                            net.prefix_len
                        ),
                    );
                    None
                }
                Ok(net) => Some(net),
            },
        };

        if let Some(name) = &r.interface {
            let field = format!("{path}.interface");
            if let Err(reason) = check_interface_name(name) {
                c.err(field, reason);
            } else if !server.interfaces.contains(name) {
                c.err(
                    field,
                    format!(
                        "interface `{name}` is not listed in server.interfaces, so no client \
                         would arrive on it"
                    ),
                );
            } else if let Some(&j) = interfaces.get(name) {
                c.err(
                    field,
                    format!("interface `{name}` already selects subnet4[{j}]"),
                );
            } else {
                interfaces.insert(name.clone(), i);
            }
        }

        let mut relay_addresses = Vec::new();
        for (k, text) in r.relay_addresses.iter().enumerate() {
            let field = format!("{path}.relay-addresses[{k}]");
            let Some(ip) = c.ipv4(&field, text) else {
                continue;
            };
            if ip.is_unspecified() {
                c.err(
                    field,
                    "0.0.0.0 cannot be a relay address: giaddr 0 means the client is directly \
                     attached (RFC 2131 §4.1)",
                );
            } else if let Some(&(j, kk)) = relays.get(&ip) {
                c.err(
                    field,
                    format!("{ip} is already listed at subnet4[{j}].relay-addresses[{kk}]"),
                );
            } else {
                relays.insert(ip, (i, k));
                relay_addresses.push(ip);
            }
        }

        let routers: Vec<Ipv4Addr> = r
            .routers
            .iter()
            .enumerate()
            .filter_map(|(k, text)| {
                let field = format!("{path}.routers[{k}]");
                let ip = c.unicast(&field, text, "router")?;
                // Option 3 (RFC 2132 §3.5) lists routers on the client's subnet.
                if let Some(net) = net
                    && !host_in(net, ip)
                {
                    c.err(
                        field,
                        format!("router {ip} is not a host address of subnet {net}"),
                    );
                    return None;
                }
                Some(ip)
            })
            .collect();
        let dns_servers: Vec<Ipv4Addr> = r
            .dns_servers
            .iter()
            .enumerate()
            .filter_map(|(k, text)| {
                c.unicast(&format!("{path}.dns-servers[{k}]"), text, "DNS server")
            })
            .collect();
        if let Some(name) = &r.domain_name
            && let Err(reason) = check_domain_name(name)
        {
            c.err(format!("{path}.domain-name"), reason);
        }
        let broadcast_address = r.broadcast_address.as_deref().and_then(|text| {
            let field = format!("{path}.broadcast-address");
            let ip = c.ipv4(&field, text)?;
            if let Some(net) = net
                && !net.contains(ip)
            {
                c.err(field, format!("{ip} is outside subnet {net}"));
            }
            Some(ip)
        });

        let pool = check_pools(c, &path, net, &routers, &r.pool, &mut pools);
        let lease_time = check_lease_times(c, &path, &r);
        let reservation = net.map_or_else(Vec::new, |net| {
            check_reservations(c, &path, net, &routers, &r.reservation)
        });
        let option = check_options(c, &path, &r.option);

        if let Some(net) = net {
            seen.push(Seen {
                index: i,
                subnet: Subnet4 {
                    id: id.unwrap_or(0),
                    subnet: net,
                    interface: r.interface,
                    relay_addresses,
                    pool,
                    routers,
                    dns_servers,
                    domain_name: r.domain_name,
                    broadcast_address,
                    lease_time,
                    renew_time: r.renew_time,
                    rebind_time: r.rebind_time,
                    min_lease_time: r.min_lease_time,
                    rapid_commit: r.rapid_commit,
                    max_lease_time: r.max_lease_time,
                    reservation,
                    option,
                },
            });
        }
    }

    // Overlapping subnets would make the subnet of a giaddr or client address ambiguous.
    let mut by_start: Vec<&Seen> = seen.iter().collect();
    by_start.sort_by_key(|s| {
        (
            s.subnet.subnet.network(),
            s.subnet.subnet.prefix_len,
            s.index,
        )
    });
    let mut widest: Option<&Seen> = None;
    for s in by_start {
        if let Some(w) = widest {
            if w.subnet.subnet.overlaps(&s.subnet.subnet) {
                c.err(
                    format!("subnet4[{}].subnet", s.index),
                    format!(
                        "{} overlaps subnet4[{}] ({})",
                        s.subnet.subnet, w.index, w.subnet.subnet
                    ),
                );
            }
            if s.subnet.subnet.broadcast() > w.subnet.subnet.broadcast() {
                widest = Some(s);
            }
        } else {
            widest = Some(s);
        }
    }

    // A relay address inside another subnet: that subnet's giaddr rule selects it already.
    for s in &seen {
        for (k, ip) in s.subnet.relay_addresses.iter().enumerate() {
            if let Some(o) = seen
                .iter()
                .find(|o| o.index != s.index && o.subnet.subnet.contains(*ip))
            {
                c.err(
                    format!("subnet4[{}].relay-addresses[{k}]", s.index),
                    format!(
                        "{ip} is inside subnet4[{}] ({}), which a giaddr of {ip} selects",
                        o.index, o.subnet.subnet
                    ),
                );
            }
        }
    }

    // Overlapping pools, within and across subnets.
    pools.sort_by_key(|p| (p.0, p.1));
    let mut reach: Option<(Ipv4Addr, Ipv4Addr, &str)> = None;
    for (start, end, path) in &pools {
        match reach {
            Some((rs, re, rpath)) if *start <= re => {
                c.err(
                    path.clone(),
                    format!("range {start}-{end} overlaps {rpath} ({rs}-{re})"),
                );
                if *end > re {
                    reach = Some((*start, *end, path));
                }
            }
            _ => reach = Some((*start, *end, path)),
        }
    }

    seen.into_iter()
        .map(|s| s.subnet)
        .filter(|s| s.id != 0)
        .collect()
}

/// Whether `ip` is inside `net` and may be given to a host: not the network or broadcast
/// address where the prefix has them.
fn host_in(net: Ipv4Net, ip: Ipv4Addr) -> bool {
    net.contains(ip)
        && !(net.has_network_and_broadcast() && (ip == net.network() || ip == net.broadcast()))
}

fn check_pools(
    c: &mut Checker<'_>,
    path: &str,
    net: Option<Ipv4Net>,
    routers: &[Ipv4Addr],
    raw: &[RawPool],
    all: &mut Vec<(Ipv4Addr, Ipv4Addr, String)>,
) -> Vec<Pool4> {
    let mut out = Vec::new();
    for (k, p) in raw.iter().enumerate() {
        let field = format!("{path}.pool[{k}]");
        let Some(text) = &p.range else {
            c.err(
                format!("{field}.range"),
                "is required (e.g. \"10.0.0.100-10.0.0.200\")",
            );
            continue;
        };
        let Some((a, b)) = text.split_once('-') else {
            c.err(
                format!("{field}.range"),
                format!("`{text}` is not a range FIRST-LAST such as 10.0.0.100-10.0.0.200"),
            );
            continue;
        };
        let start = c.ipv4(&format!("{field}.range"), a.trim());
        let end = c.ipv4(&format!("{field}.range"), b.trim());
        let (Some(start), Some(end)) = (start, end) else {
            continue;
        };
        let pool = Pool4 { start, end };
        if start > end {
            c.err(
                field,
                format!("range {pool}: start {start} is after end {end}"),
            );
            continue;
        }
        all.push((start, end, field.clone()));
        if let Some(net) = net {
            if !net.contains(start) || !net.contains(end) {
                c.err(field, format!("range {pool} is outside subnet {net}"));
                continue;
            }
            if net.has_network_and_broadcast() {
                if pool.contains(net.network()) {
                    c.err(
                        &field,
                        format!(
                            "range {pool} contains the network address {} of subnet {net}",
                            net.network()
                        ),
                    );
                }
                if pool.contains(net.broadcast()) {
                    c.err(
                        &field,
                        format!(
                            "range {pool} contains the broadcast address {} of subnet {net}",
                            net.broadcast()
                        ),
                    );
                }
            }
        }
        for r in routers.iter().filter(|&&r| pool.contains(r)) {
            c.err(&field, format!("range {pool} contains router address {r}"));
        }
        out.push(pool);
    }
    out
}

/// Checks lease-time, T1/T2 and the clamping bounds; returns the lease time.
fn check_lease_times(c: &mut Checker<'_>, path: &str, r: &RawSubnet4) -> u32 {
    let lease = r.lease_time.unwrap_or(Subnet4::DEFAULT_LEASE_TIME);
    if lease == 0 {
        c.err(format!("{path}.lease-time"), "must be > 0");
        return lease;
    }
    // RFC 2131 §4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease; a client expects
    // T1 < T2 < lease time, and stops renewing otherwise.
    let t1 = r.renew_time.unwrap_or(lease / 2);
    let t2 = r
        .rebind_time
        .unwrap_or_else(|| super::model::seven_eighths(lease));
    if r.rebind_time.is_some() && t2 >= lease {
        c.err(
            format!("{path}.rebind-time"),
            format!("rebind-time (T2) {t2} must be less than lease-time {lease}"),
        );
    }
    if (r.renew_time.is_some() || r.rebind_time.is_some()) && t1 >= t2 {
        c.err(
            format!("{path}.renew-time"),
            format!("renew-time (T1) {t1} must be less than rebind-time (T2) {t2}"),
        );
    }
    for (name, v) in [
        ("min-lease-time", r.min_lease_time),
        ("max-lease-time", r.max_lease_time),
    ] {
        if v == Some(0) {
            c.err(format!("{path}.{name}"), "must be > 0");
        }
    }
    match (r.min_lease_time, r.max_lease_time) {
        (Some(min), Some(max)) if min > max => c.err(
            format!("{path}.min-lease-time"),
            format!("min-lease-time {min} is greater than max-lease-time {max}"),
        ),
        (min, max) => {
            if let Some(min) = min.filter(|&m| m > lease) {
                c.err(
                    format!("{path}.lease-time"),
                    format!("lease-time {lease} is below min-lease-time {min}"),
                );
            }
            if let Some(max) = max.filter(|&m| m < lease) {
                c.err(
                    format!("{path}.lease-time"),
                    format!("lease-time {lease} is above max-lease-time {max}"),
                );
            }
        }
    }
    lease
}

fn check_reservations(
    c: &mut Checker<'_>,
    path: &str,
    net: Ipv4Net,
    routers: &[Ipv4Addr],
    raw: &[RawReservation],
) -> Vec<Reservation4> {
    let mut hw_seen: HashMap<[u8; 6], usize> = HashMap::new();
    let mut cid_seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut addr_seen: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut out = Vec::new();
    for (k, r) in raw.iter().enumerate() {
        let field = format!("{path}.reservation[{k}]");
        let mut ok = true;
        let address = match &r.address {
            None => {
                c.err(format!("{field}.address"), "is required");
                None
            }
            Some(text) => c.ipv4(&format!("{field}.address"), text),
        };
        if let Some(ip) = address {
            if !net.contains(ip) {
                c.err(
                    format!("{field}.address"),
                    format!("{ip} is outside subnet {net}"),
                );
                ok = false;
            } else if !host_in(net, ip) {
                c.err(
                    format!("{field}.address"),
                    format!("{ip} is the network or broadcast address of subnet {net}"),
                );
                ok = false;
            } else if routers.contains(&ip) {
                c.err(
                    format!("{field}.address"),
                    format!("{ip} is a router of this subnet"),
                );
                ok = false;
            } else if let Some(&j) = addr_seen.get(&ip) {
                c.err(
                    format!("{field}.address"),
                    format!("{ip} is already reserved by reservation[{j}]"),
                );
                ok = false;
            } else {
                addr_seen.insert(ip, k);
            }
        } else {
            ok = false;
        }
        if r.hw_address.is_none() && r.client_id.is_none() {
            c.err(
                &field,
                "a reservation needs a hw-address or a client-id to recognise the client",
            );
            ok = false;
        }
        let hw_address = r.hw_address.as_deref().and_then(|text| {
            let f = format!("{field}.hw-address");
            match parse_mac(text) {
                Err(reason) => {
                    c.err(f, reason);
                    None
                }
                Ok(mac) => {
                    if let Some(j) = hw_seen.get(&mac) {
                        c.err(
                            f,
                            format!("{} is already reserved by reservation[{j}]", text.trim()),
                        );
                        None
                    } else {
                        hw_seen.insert(mac, k);
                        Some(mac)
                    }
                }
            }
        });
        ok &= hw_address.is_some() == r.hw_address.is_some();
        let client_id = r.client_id.as_deref().and_then(|text| {
            let f = format!("{field}.client-id");
            match parse_hex(text) {
                Err(reason) => {
                    c.err(f, reason);
                    None
                }
                // RFC 2132 §9.14: option 61 has a minimum length of 2.
                Ok(id) if id.len() < 2 => {
                    c.err(
                        f,
                        "a client identifier is at least 2 bytes (RFC 2132 §9.14)",
                    );
                    None
                }
                Ok(id) if id.len() > 255 => {
                    c.err(f, "a client identifier is at most 255 bytes (RFC 2132 §2)");
                    None
                }
                Ok(id) => {
                    if let Some(j) = cid_seen.get(&id) {
                        c.err(
                            f,
                            format!("{} is already reserved by reservation[{j}]", text.trim()),
                        );
                        None
                    } else {
                        cid_seen.insert(id.clone(), k);
                        Some(id)
                    }
                }
            }
        });
        ok &= client_id.is_some() == r.client_id.is_some();
        if let Some(name) = &r.hostname
            && let Err(reason) = check_domain_name(name)
        {
            c.err(format!("{field}.hostname"), reason);
            ok = false;
        }
        if ok && let Some(address) = address {
            out.push(Reservation4 {
                hw_address,
                client_id,
                address,
                hostname: r.hostname.clone(),
            });
        }
    }
    out
}

fn check_options(c: &mut Checker<'_>, path: &str, raw: &[RawOptionSpec]) -> Vec<RawOption> {
    let mut out: Vec<RawOption> = Vec::new();
    let mut codes: HashMap<u8, usize> = HashMap::new();
    for (k, o) in raw.iter().enumerate() {
        let field = format!("{path}.option[{k}]");
        let code = match o.code {
            None => {
                c.err(format!("{field}.code"), "is required");
                None
            }
            Some(0) => {
                c.err(
                    format!("{field}.code"),
                    "option 0 is the pad option (RFC 2132 §3.1), not a configurable option",
                );
                None
            }
            Some(255) => {
                c.err(
                    format!("{field}.code"),
                    "option 255 is the end option (RFC 2132 §3.2), not a configurable option",
                );
                None
            }
            Some(n) => match u8::try_from(n) {
                Err(_) => {
                    c.err(format!("{field}.code"), format!("{n} is outside 1..=254"));
                    None
                }
                Ok(code) => {
                    if let Some(what) = managed_option(code) {
                        c.err(
                            format!("{field}.code"),
                            format!(
                                "option {code} ({what}) is managed by the server and cannot be \
                                 configured"
                            ),
                        );
                        None
                    } else if let Some(hint) = option_with_field(code) {
                        c.err(
                            format!("{field}.code"),
                            format!("option {code} has its own setting: {hint}"),
                        );
                        None
                    } else if let Some(j) = codes.get(&code) {
                        c.err(
                            format!("{field}.code"),
                            format!("option {code} is already set by option[{j}]"),
                        );
                        None
                    } else {
                        codes.insert(code, k);
                        Some(code)
                    }
                }
            },
        };
        let data = option_data(c, &field, o);
        if let (Some(code), Some(data)) = (code, data) {
            out.push(RawOption { code, data });
        }
    }
    out
}

/// Encodes the one value of an option, or reports why it cannot.
fn option_data(c: &mut Checker<'_>, field: &str, o: &RawOptionSpec) -> Option<Vec<u8>> {
    let given: Vec<&str> = [
        ("ip", o.ip.is_some()),
        ("ips", o.ips.is_some()),
        ("text", o.text.is_some()),
        ("hex", o.hex.is_some()),
        ("u8", o.u8.is_some()),
        ("u16", o.u16.is_some()),
        ("u32", o.u32.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match given.as_slice() {
        [] => {
            c.err(
                field,
                "an option needs a value: one of ip, ips, text, hex, u8, u16 or u32",
            );
            return None;
        }
        [_] => {}
        many => {
            c.err(
                field,
                format!(
                    "an option takes exactly one value, found {}",
                    many.join(", ")
                ),
            );
            return None;
        }
    }
    let data = if let Some(text) = &o.ip {
        c.ipv4(&format!("{field}.ip"), text)?.octets().to_vec()
    } else if let Some(list) = &o.ips {
        let mut data = Vec::with_capacity(list.len() * 4);
        let mut ok = true;
        for (k, text) in list.iter().enumerate() {
            match c.ipv4(&format!("{field}.ips[{k}]"), text) {
                Some(ip) => data.extend_from_slice(&ip.octets()),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        data
    } else if let Some(text) = &o.text {
        text.as_bytes().to_vec()
    } else if let Some(text) = &o.hex {
        match parse_hex(text) {
            Ok(data) => data,
            Err(reason) => {
                c.err(format!("{field}.hex"), reason);
                return None;
            }
        }
    } else {
        let (name, value, max) = if let Some(v) = o.u8 {
            ("u8", v, u64::from(u8::MAX))
        } else if let Some(v) = o.u16 {
            ("u16", v, u64::from(u16::MAX))
        } else {
            ("u32", o.u32.unwrap_or_default(), u64::from(u32::MAX))
        };
        let Some(v) = u64::try_from(value).ok().filter(|&v| v <= max) else {
            c.err(
                format!("{field}.{name}"),
                format!("{value} is outside 0..={max}"),
            );
            return None;
        };
        let bytes = v.to_be_bytes();
        let width = match name {
            "u8" => 1,
            "u16" => 2,
            _ => 4,
        };
        bytes[8 - width..].to_vec()
    };
    // RFC 2132 §2: the length octet counts at most 255 bytes of data.
    if data.len() > 255 {
        c.err(
            field,
            format!(
                "the value is {} bytes; an option holds at most 255 (RFC 2132 §2)",
                data.len()
            ),
        );
        return None;
    }
    Some(data)
}

fn parse_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv4 address"))
}

/// An Ethernet address: six two-digit hex bytes separated by `:` or `-`.
fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("`{text}` is not a MAC address such as aa:bb:cc:dd:ee:ff");
    let t = text.trim();
    let sep = if t.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut parts = t.split(sep);
    for byte in &mut mac {
        *byte = parse_hex_byte(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Hex bytes, either `:`-separated two-digit groups (`01:aa:bb`) or one run of an even number
/// of digits (`01aabb`).
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("`{text}` is not hex bytes such as 01:aa:bb or 01aabb");
    let t = text.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    if t.contains(':') {
        return t
            .split(':')
            .map(|p| parse_hex_byte(p).ok_or_else(bad))
            .collect();
    }
    if !t.len().is_multiple_of(2) || !t.is_ascii() {
        return Err(bad());
    }
    (0..t.len())
        .step_by(2)
        .map(|i| parse_hex_byte(&t[i..i + 2]).ok_or_else(bad))
        .collect()
}

fn parse_hex_byte(p: &str) -> Option<u8> {
    if p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(p, 16).ok()
    } else {
        None
    }
}

/// A host or domain name: dot-separated labels of letters, digits and hyphens, 1-63 bytes
/// each, not starting or ending with a hyphen (RFC 1035 §2.3.1, RFC 1123 §2.1), at most 253
/// bytes in all; one trailing dot is allowed.
fn check_domain_name(name: &str) -> Result<(), String> {
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.is_empty() {
        return Err("a name cannot be empty".to_owned());
    }
    if body.len() > 253 {
        return Err(format!("`{name}` is longer than 253 bytes"));
    }
    for label in body.split('.') {
        let valid = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "`{name}` is not a valid name: label `{label}` must be 1-63 letters, digits or \
                 inner hyphens (RFC 1123 §2.1)"
            ));
        }
    }
    Ok(())
}
