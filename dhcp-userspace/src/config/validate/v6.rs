//! The `[[subnet6]]` tables as written and the checks that turn them into [`Subnet6`]s.
//!
//! Field paths follow the v4 ones: `subnet6[1].pd-pool[0].delegated-len`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::Ipv6Addr;

use serde::Deserialize;

use super::super::model::{
    AddressPool6, Ipv6Net, PrefixPool6, RawOption6, Reservation6, Server, Subnet6,
};
use super::{Checker, RawOptionSpec, check_domain_name, check_interface_name, parse_hex};

/// Shortest DUID: a 2-byte type and at least one byte (RFC 8415 §11.1).
const MIN_DUID: usize = 3;
/// Longest DUID: a 2-byte type and at most 128 bytes (RFC 8415 §11.1).
const MAX_DUID: usize = 130;
/// Largest custom option value accepted: a reply has to fit one packet on a link with the
/// IPv6 minimum MTU of 1280 bytes (RFC 8200 §5) together with its leases.
const MAX_OPTION6_LEN: usize = 1024;
/// `SOL_MAX_RT` bounds (RFC 8415 §21.24: clients ignore values outside 60..=86400).
const SOL_MAX_RT: std::ops::RangeInclusive<u32> = 60..=86_400;
/// `IRT_MINIMUM` (RFC 8415 §7.6, §21.23): clients raise a smaller refresh time to it.
const IRT_MINIMUM: u32 = 600;

/// One `[[subnet6]]` as written. `id` and `prefix` are required, but optional here so that
/// their absence is reported with the subnet's path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(in crate::config) struct RawSubnet6 {
    id: Option<u32>,
    prefix: Option<String>,
    interface: Option<String>,
    interface_id: Option<RawBytes>,
    pool: Vec<RawPool6>,
    pd_pool: Vec<RawPdPool6>,
    preferred_lifetime: Option<u32>,
    valid_lifetime: Option<u32>,
    renew_time: Option<u32>,
    rebind_time: Option<u32>,
    rapid_commit: bool,
    dns_servers: Vec<String>,
    domain_search: Vec<String>,
    sol_max_rt: Option<u32>,
    information_refresh_time: Option<u32>,
    reservation: Vec<RawReservation6>,
    option: Vec<RawOptionSpec>,
}

/// Bytes written as text (`"ge-0/0/1.100"`) or as a table `{ text = "…" }` / `{ hex = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawBytes {
    Text(String),
    Table(RawBytesTable),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBytesTable {
    text: Option<String>,
    hex: Option<String>,
}

/// One `[[subnet6.pool]]`: `range` or `prefix`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawPool6 {
    range: Option<String>,
    prefix: Option<String>,
}

/// One `[[subnet6.pd-pool]]`. `delegated-len` is read as `i64` so a bad value is reported
/// with its path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawPdPool6 {
    prefix: Option<String>,
    delegated_len: Option<i64>,
    excluded_prefix: Option<String>,
}

/// One `[[subnet6.reservation]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawReservation6 {
    duid: Option<String>,
    address: Option<String>,
    prefix: Option<String>,
}

/// Options the server writes itself (RFC 8415 §21; RFC 6603 §4.2), which a custom option
/// must not override.
fn managed_option6(code: u16) -> Option<&'static str> {
    Some(match code {
        1 => "client identifier",
        2 => "server identifier",
        3 => "IA_NA",
        4 => "IA_TA",
        5 => "IA address",
        6 => "option request",
        8 => "elapsed time",
        9 => "relay message",
        11 => "authentication",
        12 => "server unicast",
        13 => "status code",
        14 => "rapid commit",
        18 => "interface-id",
        19 => "reconfigure message",
        20 => "reconfigure accept",
        25 => "IA_PD",
        26 => "IA prefix",
        67 => "prefix exclude (use `excluded-prefix` of a pd-pool)",
        79 => "client link-layer address",
        _ => return None,
    })
}

/// Options that have their own configuration field.
fn option6_with_field(code: u16) -> Option<&'static str> {
    Some(match code {
        23 => "use `dns-servers`",
        24 => "use `domain-search`",
        32 => "use `information-refresh-time`",
        82 => "use `sol-max-rt`",
        _ => return None,
    })
}

impl Checker<'_> {
    fn ipv6(&mut self, field: &str, text: &str) -> Option<Ipv6Addr> {
        if let Ok(ip) = text.trim().parse() {
            Some(ip)
        } else {
            self.err(field, format!("`{text}` is not an IPv6 address"));
            None
        }
    }

    /// A prefix written as its network address.
    fn ipv6_net(&mut self, field: &str, text: &str) -> Option<Ipv6Net> {
        match text.trim().parse::<Ipv6Net>() {
            Err(e) => {
                self.err(field, e.to_string());
                None
            }
            Ok(net) if net.addr != net.network() => {
                self.err(
                    field,
                    format!(
                        "{net} is not a network address: the network is {}/{}",
                        net.network(),
                        net.prefix_len
                    ),
                );
                None
            }
            Ok(net) => Some(net),
        }
    }
}

/// The Subnet-Router anycast address of `net` (RFC 4291 §2.6.1), which must not be given to
/// a host; prefixes of /127 and /128 have none (RFC 6164 §6).
fn subnet_router_anycast(net: Ipv6Net) -> Option<Ipv6Addr> {
    (net.prefix_len < 127).then(|| net.network())
}

/// A subnet that passed its own checks, for the cross-subnet checks.
struct Seen6 {
    index: usize,
    subnet: Subnet6,
}

/// Everything parsed across subnets, for the overlap sweeps.
#[derive(Default)]
struct Spaces {
    /// Every address pool: (start, end, path).
    pools: Vec<(Ipv6Addr, Ipv6Addr, String)>,
    /// Every pd-pool: (prefix, delegated length, subnet index, path).
    pd_pools: Vec<(Ipv6Net, u8, usize, String)>,
    /// Every reserved prefix: (prefix, subnet index, path).
    reserved_prefixes: Vec<(Ipv6Net, usize, String)>,
}

pub(in crate::config) fn check_subnets6(
    c: &mut Checker<'_>,
    server: &Server,
    raw: Vec<RawSubnet6>,
) -> Vec<Subnet6> {
    let mut ids: HashMap<u32, usize> = HashMap::new();
    let mut interfaces: HashMap<String, usize> = HashMap::new();
    let mut interface_ids: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut seen: Vec<Seen6> = Vec::new();
    let mut spaces = Spaces::default();

    for (i, r) in raw.into_iter().enumerate() {
        let path = format!("subnet6[{i}]");
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
                        format!("id {id} is already used by subnet6[{}]", e.get()),
                    );
                    None
                }
                Entry::Vacant(e) => {
                    e.insert(i);
                    Some(id)
                }
            },
        };
        let prefix = match r.prefix.as_deref() {
            None => {
                c.err(format!("{path}.prefix"), "is required");
                None
            }
            Some(text) => {
                let field = format!("{path}.prefix");
                c.ipv6_net(&field, text).filter(|net| {
                    if net.addr.is_multicast() {
                        c.err(field, format!("{net} is a multicast prefix, not a link"));
                        return false;
                    }
                    true
                })
            }
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
                    format!("interface `{name}` already selects subnet6[{j}]"),
                );
            } else {
                interfaces.insert(name.clone(), i);
            }
        }

        let interface_id = r.interface_id.as_ref().and_then(|raw| {
            let field = format!("{path}.interface-id");
            let bytes = interface_id_bytes(c, &field, raw)?;
            if bytes.is_empty() {
                // RFC 8415 §21.18: the option carries an opaque value of at least one byte
                // for the relay to recognise its interface.
                c.err(field, "an Interface-Id cannot be empty (RFC 8415 §21.18)");
                return None;
            }
            match interface_ids.entry(bytes.clone()) {
                Entry::Occupied(e) => {
                    c.err(
                        field,
                        format!("this Interface-Id already selects subnet6[{}]", e.get()),
                    );
                    None
                }
                Entry::Vacant(e) => {
                    e.insert(i);
                    Some(bytes)
                }
            }
        });

        let pool = check_pools6(c, &path, prefix, &r.pool, &mut spaces);
        let pd_pool = check_pd_pools(c, &path, i, &r.pd_pool, &mut spaces);
        let (preferred_lifetime, valid_lifetime) = check_lifetimes(c, &path, &r);

        let dns_servers: Vec<Ipv6Addr> = r
            .dns_servers
            .iter()
            .enumerate()
            .filter_map(|(k, text)| {
                let field = format!("{path}.dns-servers[{k}]");
                let ip = c.ipv6(&field, text)?;
                if ip.is_unspecified() || ip.is_multicast() {
                    c.err(
                        field,
                        format!("{ip} cannot be a DNS server: it is not a unicast address"),
                    );
                    return None;
                }
                Some(ip)
            })
            .collect();
        for (k, name) in r.domain_search.iter().enumerate() {
            if let Err(reason) = check_domain_name(name) {
                c.err(format!("{path}.domain-search[{k}]"), reason);
            }
        }
        if let Some(v) = r.sol_max_rt.filter(|v| !SOL_MAX_RT.contains(v)) {
            c.err(
                format!("{path}.sol-max-rt"),
                format!(
                    "{v} is outside 60..=86400 seconds, which clients ignore (RFC 8415 §21.24)"
                ),
            );
        }
        if let Some(v) = r.information_refresh_time.filter(|&v| v < IRT_MINIMUM) {
            c.err(
                format!("{path}.information-refresh-time"),
                format!(
                    "{v} is below the minimum of {IRT_MINIMUM} seconds clients accept \
                     (RFC 8415 §21.23)"
                ),
            );
        }
        let reservation = prefix.map_or_else(Vec::new, |net| {
            check_reservations6(c, &path, i, net, &pd_pool, &r.reservation, &mut spaces)
        });
        let option = check_options6(c, &path, &r.option);

        if let Some(prefix) = prefix {
            seen.push(Seen6 {
                index: i,
                subnet: Subnet6 {
                    id: id.unwrap_or(0),
                    prefix,
                    interface: r.interface,
                    interface_id,
                    pool,
                    pd_pool,
                    preferred_lifetime,
                    valid_lifetime,
                    renew_time: r.renew_time,
                    rebind_time: r.rebind_time,
                    rapid_commit: r.rapid_commit,
                    dns_servers,
                    domain_search: r.domain_search,
                    sol_max_rt: r.sol_max_rt,
                    information_refresh_time: r.information_refresh_time,
                    reservation,
                    option,
                },
            });
        }
    }

    check_overlaps(c, &seen, &mut spaces);

    seen.into_iter()
        .map(|s| s.subnet)
        .filter(|s| s.id != 0)
        .collect()
}

/// The cross-subnet checks: overlapping links, address pools, pd-pools and reserved
/// prefixes.
fn check_overlaps(c: &mut Checker<'_>, seen: &[Seen6], spaces: &mut Spaces) {
    // Overlapping links would make the subnet of a relay's link-address ambiguous
    // (RFC 8415 §13.1).
    let mut nets: Vec<(Ipv6Net, String)> = seen
        .iter()
        .map(|s| (s.subnet.prefix, format!("subnet6[{}]", s.index)))
        .collect();
    for (field, msg) in sweep(&mut nets) {
        c.err(format!("{field}.prefix"), msg);
    }

    // Address pools, within and across subnets.
    spaces.pools.sort_by_key(|p| (p.0, p.1));
    let mut reach: Option<(Ipv6Addr, Ipv6Addr, &str)> = None;
    for (start, end, path) in &spaces.pools {
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

    // Delegated prefixes: one pd-pool per prefix, and never a link's own prefix.
    let mut pd: Vec<(Ipv6Net, String)> = spaces
        .pd_pools
        .iter()
        .map(|(net, _, _, path)| (*net, path.clone()))
        .collect();
    for (field, msg) in sweep(&mut pd) {
        c.err(field, msg);
    }
    for (net, _, _, path) in &spaces.pd_pools {
        if let Some(s) = seen.iter().find(|s| s.subnet.prefix.overlaps(net)) {
            c.err(
                path.clone(),
                format!(
                    "prefix {net} overlaps the link prefix of subnet6[{}] ({})",
                    s.index, s.subnet.prefix
                ),
            );
        }
    }

    // Reserved prefixes: each either one delegated prefix of a pd-pool of its own subnet,
    // or outside every pd-pool and link; never two reservations of one prefix.
    for (net, index, path) in &spaces.reserved_prefixes {
        let own_fit = spaces
            .pd_pools
            .iter()
            .any(|(p, d, si, _)| *si == *index && p.contains_net(net) && net.prefix_len == *d);
        if !own_fit
            && let Some((p, d, _, ppath)) =
                spaces.pd_pools.iter().find(|(p, _, _, _)| p.overlaps(net))
        {
            c.err(
                path.clone(),
                format!(
                    "{net} overlaps {ppath} ({p}, delegated-len {d}) without being one of its \
                     /{d} prefixes in this subnet"
                ),
            );
        }
        if let Some(s) = seen.iter().find(|s| s.subnet.prefix.overlaps(net)) {
            c.err(
                path.clone(),
                format!(
                    "{net} overlaps the link prefix of subnet6[{}] ({})",
                    s.index, s.subnet.prefix
                ),
            );
        }
    }
    let mut reserved: Vec<(Ipv6Net, String)> = spaces
        .reserved_prefixes
        .iter()
        .map(|(net, _, path)| (*net, path.clone()))
        .collect();
    for (field, msg) in sweep(&mut reserved) {
        c.err(field, msg);
    }
}

/// Sort prefixes and report each one that overlaps an earlier one: (path, reason).
fn sweep(nets: &mut [(Ipv6Net, String)]) -> Vec<(String, String)> {
    nets.sort_by_key(|n| (n.0.network(), n.0.prefix_len));
    let mut out = Vec::new();
    let mut widest: Option<&(Ipv6Net, String)> = None;
    for n in nets.iter() {
        if let Some(w) = widest {
            if w.0.overlaps(&n.0) {
                out.push((n.1.clone(), format!("{} overlaps {} ({})", n.0, w.1, w.0)));
            }
            if n.0.last() > w.0.last() {
                widest = Some(n);
            }
        } else {
            widest = Some(n);
        }
    }
    out
}

fn interface_id_bytes(c: &mut Checker<'_>, field: &str, raw: &RawBytes) -> Option<Vec<u8>> {
    match raw {
        RawBytes::Text(t)
        | RawBytes::Table(RawBytesTable {
            text: Some(t),
            hex: None,
        }) => Some(t.as_bytes().to_vec()),
        RawBytes::Table(RawBytesTable {
            text: None,
            hex: Some(h),
        }) => match parse_hex(h) {
            Ok(b) => Some(b),
            Err(reason) => {
                c.err(format!("{field}.hex"), reason);
                None
            }
        },
        RawBytes::Table(_) => {
            c.err(
                field,
                "write the Interface-Id as a string, { text = \"…\" } or { hex = \"…\" }",
            );
            None
        }
    }
}

fn check_pools6(
    c: &mut Checker<'_>,
    path: &str,
    net: Option<Ipv6Net>,
    raw: &[RawPool6],
    spaces: &mut Spaces,
) -> Vec<AddressPool6> {
    let mut out = Vec::new();
    for (k, p) in raw.iter().enumerate() {
        let field = format!("{path}.pool[{k}]");
        let pool = match (&p.range, &p.prefix) {
            (Some(text), None) => {
                let rf = format!("{field}.range");
                let Some((a, b)) = text.split_once('-') else {
                    c.err(
                        rf,
                        format!(
                            "`{text}` is not a range FIRST-LAST such as \
                             2001:db8:1::100-2001:db8:1::1ff"
                        ),
                    );
                    continue;
                };
                let start = c.ipv6(&rf, a.trim());
                let end = c.ipv6(&rf, b.trim());
                let (Some(start), Some(end)) = (start, end) else {
                    continue;
                };
                AddressPool6 { start, end }
            }
            (None, Some(text)) => {
                let Some(p) = c.ipv6_net(&format!("{field}.prefix"), text) else {
                    continue;
                };
                AddressPool6 {
                    start: p.network(),
                    end: p.last(),
                }
            }
            _ => {
                c.err(
                    &field,
                    "a pool needs exactly one of range (\"FIRST-LAST\") or prefix \
                     (\"ADDRESS/LENGTH\")",
                );
                continue;
            }
        };
        if pool.start > pool.end {
            c.err(
                field,
                format!(
                    "range {pool}: start {} is after end {}",
                    pool.start, pool.end
                ),
            );
            continue;
        }
        spaces.pools.push((pool.start, pool.end, field.clone()));
        if let Some(net) = net {
            if !net.contains(pool.start) || !net.contains(pool.end) {
                c.err(field, format!("range {pool} is outside prefix {net}"));
                continue;
            }
            if let Some(a) = subnet_router_anycast(net).filter(|&a| pool.contains(a)) {
                c.err(
                    &field,
                    format!(
                        "range {pool} contains {a}, the Subnet-Router anycast address of {net} \
                         (RFC 4291 §2.6.1)"
                    ),
                );
            }
        }
        out.push(pool);
    }
    out
}

fn check_pd_pools(
    c: &mut Checker<'_>,
    path: &str,
    index: usize,
    raw: &[RawPdPool6],
    spaces: &mut Spaces,
) -> Vec<PrefixPool6> {
    let mut out = Vec::new();
    for (k, p) in raw.iter().enumerate() {
        let field = format!("{path}.pd-pool[{k}]");
        let prefix = match &p.prefix {
            None => {
                c.err(
                    format!("{field}.prefix"),
                    "is required (e.g. \"2001:db8:8000::/40\")",
                );
                None
            }
            Some(text) => c.ipv6_net(&format!("{field}.prefix"), text),
        };
        let delegated_len = match p.delegated_len {
            None => {
                c.err(format!("{field}.delegated-len"), "is required (e.g. 56)");
                None
            }
            Some(d) => match (u8::try_from(d).ok().filter(|&d| d <= 128), prefix) {
                (None, _) => {
                    c.err(
                        format!("{field}.delegated-len"),
                        format!("{d} is outside 1..=128"),
                    );
                    None
                }
                (Some(d), Some(net)) if d < net.prefix_len => {
                    c.err(
                        format!("{field}.delegated-len"),
                        format!(
                            "{d} is shorter than the pool prefix {net}: delegated prefixes are \
                             cut from it, so delegated-len must be {}..=128",
                            net.prefix_len
                        ),
                    );
                    None
                }
                (Some(d), _) => Some(d),
            },
        };
        let excluded = p.excluded_prefix.as_deref().and_then(|text| {
            let ef = format!("{field}.excluded-prefix");
            let e = c.ipv6_net(&ef, text)?;
            let (Some(net), Some(d)) = (prefix, delegated_len) else {
                return None;
            };
            // RFC 6603 §4.2: the excluded prefix-len is between the IAPREFIX prefix-length
            // + 1 and 128, and the excluded prefix lies inside the delegated prefix.
            if e.prefix_len <= d {
                c.err(
                    ef,
                    format!(
                        "{e} must be longer than delegated-len {d}: it is excluded from inside \
                         each delegated prefix (RFC 6603 §4.2)"
                    ),
                );
                return None;
            }
            let first = Ipv6Net {
                addr: net.network(),
                prefix_len: d,
            };
            if !first.contains_net(&e) {
                c.err(
                    ef,
                    format!(
                        "{e} must lie inside the pool's first delegated prefix {first}: its bits \
                         past /{d} (the IPv6 subnet ID, RFC 6603 §4.2) are excluded from every \
                         delegated prefix"
                    ),
                );
                return None;
            }
            Some(e)
        });
        let (Some(prefix), Some(delegated_len)) = (prefix, delegated_len) else {
            continue;
        };
        if p.excluded_prefix.is_some() && excluded.is_none() {
            continue;
        }
        spaces
            .pd_pools
            .push((prefix, delegated_len, index, field.clone()));
        out.push(PrefixPool6 {
            prefix,
            delegated_len,
            excluded,
        });
    }
    out
}

/// Checks the lifetimes and T1/T2; returns (preferred, valid).
fn check_lifetimes(c: &mut Checker<'_>, path: &str, r: &RawSubnet6) -> (u32, u32) {
    let preferred = r
        .preferred_lifetime
        .unwrap_or(Subnet6::DEFAULT_PREFERRED_LIFETIME);
    let valid = r.valid_lifetime.unwrap_or(Subnet6::DEFAULT_VALID_LIFETIME);
    if valid == 0 {
        c.err(
            format!("{path}.valid-lifetime"),
            "must be > 0: a lease with valid lifetime 0 is gone when it is given",
        );
    }
    // RFC 8415 §21.6, §21.22: a client discards an address or prefix whose preferred
    // lifetime is greater than its valid lifetime.
    if preferred > valid {
        c.err(
            format!("{path}.preferred-lifetime"),
            format!(
                "preferred-lifetime {preferred} is greater than valid-lifetime {valid} \
                 (RFC 8415 §21.6)"
            ),
        );
    }
    // RFC 8415 §21.4: T1 and T2 default to 0.5 and 0.8 of the preferred lifetime.
    let t1 = r.renew_time.unwrap_or(preferred / 2);
    let t2 = r
        .rebind_time
        .unwrap_or_else(|| super::super::model::four_fifths(preferred));
    // RFC 8415 §21.4: a client discards an IA whose T1 is greater than its T2 when both are
    // above 0.
    if (r.renew_time.is_some() || r.rebind_time.is_some()) && t1 > 0 && t2 > 0 && t1 > t2 {
        c.err(
            format!("{path}.renew-time"),
            format!("renew-time (T1) {t1} is greater than rebind-time (T2) {t2} (RFC 8415 §21.4)"),
        );
    }
    if r.rebind_time.is_some() && valid > 0 && t2 > valid {
        c.err(
            format!("{path}.rebind-time"),
            format!(
                "rebind-time (T2) {t2} is greater than valid-lifetime {valid}: the leases would \
                 expire before the client rebinds"
            ),
        );
    }
    (preferred, valid)
}

fn check_reservations6(
    c: &mut Checker<'_>,
    path: &str,
    index: usize,
    net: Ipv6Net,
    pd_pools: &[PrefixPool6],
    raw: &[RawReservation6],
    spaces: &mut Spaces,
) -> Vec<Reservation6> {
    let mut duid_seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut addr_seen: HashMap<Ipv6Addr, usize> = HashMap::new();
    let mut out = Vec::new();
    for (k, r) in raw.iter().enumerate() {
        let field = format!("{path}.reservation[{k}]");
        let mut ok = true;
        let duid = match &r.duid {
            None => {
                c.err(format!("{field}.duid"), "is required");
                None
            }
            Some(text) => match parse_hex(text) {
                Err(reason) => {
                    c.err(format!("{field}.duid"), reason);
                    None
                }
                Ok(d) if !(MIN_DUID..=MAX_DUID).contains(&d.len()) => {
                    c.err(
                        format!("{field}.duid"),
                        format!(
                            "a DUID is {MIN_DUID} to {MAX_DUID} bytes (RFC 8415 §11.1), this one \
                             is {}",
                            d.len()
                        ),
                    );
                    None
                }
                Ok(d) => match duid_seen.entry(d.clone()) {
                    Entry::Occupied(e) => {
                        c.err(
                            format!("{field}.duid"),
                            format!(
                                "{} is already reserved by reservation[{}]",
                                text.trim(),
                                e.get()
                            ),
                        );
                        None
                    }
                    Entry::Vacant(e) => {
                        e.insert(k);
                        Some(d)
                    }
                },
            },
        };
        ok &= duid.is_some();
        if r.address.is_none() && r.prefix.is_none() {
            c.err(&field, "a reservation needs an address, a prefix or both");
            ok = false;
        }
        let address = r.address.as_deref().and_then(|text| {
            let f = format!("{field}.address");
            let ip = c.ipv6(&f, text)?;
            if !net.contains(ip) {
                c.err(f, format!("{ip} is outside prefix {net}"));
                None
            } else if subnet_router_anycast(net) == Some(ip) {
                c.err(
                    f,
                    format!("{ip} is the Subnet-Router anycast address of {net} (RFC 4291 §2.6.1)"),
                );
                None
            } else if let Some(&j) = addr_seen.get(&ip) {
                c.err(f, format!("{ip} is already reserved by reservation[{j}]"));
                None
            } else {
                addr_seen.insert(ip, k);
                Some(ip)
            }
        });
        ok &= address.is_some() == r.address.is_some();
        let prefix = r.prefix.as_deref().and_then(|text| {
            let f = format!("{field}.prefix");
            let p = c.ipv6_net(&f, text)?;
            // The pd-pools of this subnet were checked already; a prefix inside one must be
            // one of its delegated prefixes (the global overlaps are checked at the end).
            if let Some(pool) = pd_pools.iter().find(|pool| pool.prefix.overlaps(&p))
                && !(pool.prefix.contains_net(&p) && p.prefix_len == pool.delegated_len)
            {
                c.err(
                    f,
                    format!(
                        "{p} is inside pd-pool {} but not one of its /{} delegated prefixes",
                        pool.prefix, pool.delegated_len
                    ),
                );
                return None;
            }
            spaces.reserved_prefixes.push((p, index, f));
            Some(p)
        });
        ok &= prefix.is_some() == r.prefix.is_some();
        if ok && let Some(duid) = duid {
            out.push(Reservation6 {
                duid,
                address,
                prefix,
            });
        }
    }
    out
}

fn check_options6(c: &mut Checker<'_>, path: &str, raw: &[RawOptionSpec]) -> Vec<RawOption6> {
    let mut out = Vec::new();
    let mut codes: HashMap<u16, usize> = HashMap::new();
    for (k, o) in raw.iter().enumerate() {
        let field = format!("{path}.option[{k}]");
        let cf = format!("{field}.code");
        let code = match o.code {
            None => {
                c.err(cf, "is required");
                None
            }
            Some(n) => match u16::try_from(n).ok().filter(|&n| n > 0) {
                None => {
                    c.err(cf, format!("{n} is outside 1..=65535"));
                    None
                }
                Some(code) => {
                    if let Some(what) = managed_option6(code) {
                        c.err(
                            cf,
                            format!(
                                "option {code} ({what}) is managed by the server and cannot be \
                                 configured"
                            ),
                        );
                        None
                    } else if let Some(hint) = option6_with_field(code) {
                        c.err(cf, format!("option {code} has its own setting: {hint}"));
                        None
                    } else if let Some(j) = codes.get(&code) {
                        c.err(cf, format!("option {code} is already set by option[{j}]"));
                        None
                    } else {
                        codes.insert(code, k);
                        Some(code)
                    }
                }
            },
        };
        let data = option6_data(c, &field, o);
        if let (Some(code), Some(data)) = (code, data) {
            out.push(RawOption6 { code, data });
        }
    }
    out
}

/// Encodes the one value of a `DHCPv6` option (addresses are IPv6), or reports why it
/// cannot.
fn option6_data(c: &mut Checker<'_>, field: &str, o: &RawOptionSpec) -> Option<Vec<u8>> {
    let given = [
        o.ip.is_some(),
        o.ips.is_some(),
        o.text.is_some(),
        o.hex.is_some(),
        o.u8.is_some(),
        o.u16.is_some(),
        o.u32.is_some(),
    ]
    .into_iter()
    .filter(|&g| g)
    .count();
    if given != 1 {
        c.err(
            field,
            "an option takes exactly one value: one of ip, ips, text, hex, u8, u16 or u32",
        );
        return None;
    }
    let data = if let Some(text) = &o.ip {
        c.ipv6(&format!("{field}.ip"), text)?.octets().to_vec()
    } else if let Some(list) = &o.ips {
        let mut data = Vec::with_capacity(list.len() * 16);
        let mut ok = true;
        for (k, text) in list.iter().enumerate() {
            match c.ipv6(&format!("{field}.ips[{k}]"), text) {
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
        let (name, value, width) = if let Some(v) = o.u8 {
            ("u8", v, 1)
        } else if let Some(v) = o.u16 {
            ("u16", v, 2)
        } else {
            ("u32", o.u32.unwrap_or_default(), 4)
        };
        let max = (1u64 << (8 * width)) - 1;
        let Some(v) = u64::try_from(value).ok().filter(|&v| v <= max) else {
            c.err(
                format!("{field}.{name}"),
                format!("{value} is outside 0..={max}"),
            );
            return None;
        };
        v.to_be_bytes()[8 - width..].to_vec()
    };
    if data.len() > MAX_OPTION6_LEN {
        c.err(
            field,
            format!(
                "the value is {} bytes; at most {MAX_OPTION6_LEN} fit a reply",
                data.len()
            ),
        );
        return None;
    }
    Some(data)
}
