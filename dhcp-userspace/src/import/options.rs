//! The DHCP options both sources name the same way (Kea kept dhcpd's names), how their
//! values are written, and how options collected at the global, shared-network and subnet
//! levels are merged into one subnet.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Item, Loc, PlanOption, PlanSubnet4, PlanSubnet6, Report};

/// An option value in one of the forms a twinlease `[[subnetN.option]]` table accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptValue {
    /// IPv4 addresses (`ips`).
    Ips4(Vec<Ipv4Addr>),
    /// IPv6 addresses (`ips` of a `subnet6`).
    Ips6(Vec<Ipv6Addr>),
    /// Text (`text`).
    Text(String),
    /// Raw bytes (`hex`).
    Hex(Vec<u8>),
    /// One byte (`u8`).
    U8(u8),
    /// Two bytes (`u16`).
    U16(u16),
    /// Four bytes (`u32`).
    U32(u32),
}

/// How an option's value is written in the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ip4List,
    Ip6List,
    Text,
    U8,
    U16,
    U32,
    I32,
    Bool,
    /// A list of domain names, sent in DNS wire format (RFC 1035 §3.1, RFC 3397).
    Names,
    /// Only raw bytes can be converted.
    HexOnly,
    /// Has its own twinlease setting.
    Field(Field),
    /// The server computes it; configuring it has no twinlease equivalent.
    Managed,
}

/// Options with their own twinlease setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    SubnetMask,
    Routers,
    Dns,
    DomainName,
    Broadcast,
    LeaseTime,
    Renew,
    Rebind,
    Dns6,
    Search6,
    InfoRefresh,
    SolMaxRt,
}

const V4: &[(&str, u16, Kind)] = &[
    ("subnet-mask", 1, Kind::Field(Field::SubnetMask)),
    ("time-offset", 2, Kind::I32),
    ("routers", 3, Kind::Field(Field::Routers)),
    ("time-servers", 4, Kind::Ip4List),
    ("name-servers", 5, Kind::Ip4List),
    ("ien116-name-servers", 5, Kind::Ip4List),
    ("domain-name-servers", 6, Kind::Field(Field::Dns)),
    ("log-servers", 7, Kind::Ip4List),
    ("cookie-servers", 8, Kind::Ip4List),
    ("lpr-servers", 9, Kind::Ip4List),
    ("impress-servers", 10, Kind::Ip4List),
    ("resource-location-servers", 11, Kind::Ip4List),
    ("host-name", 12, Kind::Text),
    ("boot-size", 13, Kind::U16),
    ("merit-dump", 14, Kind::Text),
    ("domain-name", 15, Kind::Field(Field::DomainName)),
    ("swap-server", 16, Kind::Ip4List),
    ("root-path", 17, Kind::Text),
    ("extensions-path", 18, Kind::Text),
    ("ip-forwarding", 19, Kind::Bool),
    ("non-local-source-routing", 20, Kind::Bool),
    ("max-dgram-reassembly", 22, Kind::U16),
    ("default-ip-ttl", 23, Kind::U8),
    ("path-mtu-aging-timeout", 24, Kind::U32),
    ("interface-mtu", 26, Kind::U16),
    ("all-subnets-local", 27, Kind::Bool),
    ("broadcast-address", 28, Kind::Field(Field::Broadcast)),
    ("perform-mask-discovery", 29, Kind::Bool),
    ("mask-supplier", 30, Kind::Bool),
    ("router-discovery", 31, Kind::Bool),
    ("router-solicitation-address", 32, Kind::Ip4List),
    ("trailer-encapsulation", 34, Kind::Bool),
    ("arp-cache-timeout", 35, Kind::U32),
    ("ieee802-3-encapsulation", 36, Kind::Bool),
    ("default-tcp-ttl", 37, Kind::U8),
    ("tcp-keepalive-interval", 38, Kind::U32),
    ("tcp-keepalive-garbage", 39, Kind::Bool),
    ("nis-domain", 40, Kind::Text),
    ("nis-servers", 41, Kind::Ip4List),
    ("ntp-servers", 42, Kind::Ip4List),
    ("vendor-encapsulated-options", 43, Kind::HexOnly),
    ("netbios-name-servers", 44, Kind::Ip4List),
    ("netbios-dd-server", 45, Kind::Ip4List),
    ("netbios-node-type", 46, Kind::U8),
    ("netbios-scope", 47, Kind::Text),
    ("font-servers", 48, Kind::Ip4List),
    ("x-display-manager", 49, Kind::Ip4List),
    ("dhcp-requested-address", 50, Kind::Managed),
    ("dhcp-lease-time", 51, Kind::Field(Field::LeaseTime)),
    ("dhcp-option-overload", 52, Kind::Managed),
    ("dhcp-message-type", 53, Kind::Managed),
    ("dhcp-server-identifier", 54, Kind::Managed),
    ("dhcp-parameter-request-list", 55, Kind::Managed),
    ("dhcp-message", 56, Kind::Managed),
    ("dhcp-max-message-size", 57, Kind::Managed),
    ("dhcp-renewal-time", 58, Kind::Field(Field::Renew)),
    ("dhcp-rebinding-time", 59, Kind::Field(Field::Rebind)),
    ("vendor-class-identifier", 60, Kind::Text),
    ("dhcp-client-identifier", 61, Kind::Managed),
    ("nwip-domain-name", 62, Kind::Text),
    ("nisplus-domain-name", 64, Kind::Text),
    ("nis+-domain-name", 64, Kind::Text),
    ("nisplus-servers", 65, Kind::Ip4List),
    ("nis+-servers", 65, Kind::Ip4List),
    ("tftp-server-name", 66, Kind::Text),
    ("boot-file-name", 67, Kind::Text),
    ("bootfile-name", 67, Kind::Text),
    ("mobile-ip-home-agent", 68, Kind::Ip4List),
    ("smtp-server", 69, Kind::Ip4List),
    ("pop-server", 70, Kind::Ip4List),
    ("nntp-server", 71, Kind::Ip4List),
    ("www-server", 72, Kind::Ip4List),
    ("finger-server", 73, Kind::Ip4List),
    ("irc-server", 74, Kind::Ip4List),
    ("streettalk-server", 75, Kind::Ip4List),
    ("streettalk-directory-assistance-server", 76, Kind::Ip4List),
    ("dhcp-agent-options", 82, Kind::Managed),
    ("relay-agent-information", 82, Kind::Managed),
    ("domain-search", 119, Kind::Names),
    ("v4-captive-portal", 114, Kind::Text),
    ("default-url", 114, Kind::Text),
];

const V6: &[(&str, u16, Kind)] = &[
    ("preference", 7, Kind::U8),
    ("unicast", 12, Kind::Managed),
    ("sip-server-dns", 21, Kind::Names),
    ("sip-server-addr", 22, Kind::Ip6List),
    ("dns-servers", 23, Kind::Field(Field::Dns6)),
    ("domain-search", 24, Kind::Field(Field::Search6)),
    ("nis-servers", 27, Kind::Ip6List),
    ("nisp-servers", 28, Kind::Ip6List),
    ("nis-domain-name", 29, Kind::Names),
    ("nisp-domain-name", 30, Kind::Names),
    ("sntp-servers", 31, Kind::Ip6List),
    (
        "information-refresh-time",
        32,
        Kind::Field(Field::InfoRefresh),
    ),
    ("bcmcs-server-dns", 33, Kind::Names),
    ("bcmcs-server-addr", 34, Kind::Ip6List),
    ("new-posix-timezone", 41, Kind::Text),
    ("new-tzdb-timezone", 42, Kind::Text),
    ("sol-max-rt", 82, Kind::Field(Field::SolMaxRt)),
];

/// An option the source configured, converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Converted {
    SubnetMask(Ipv4Addr),
    Routers(Vec<Ipv4Addr>),
    Dns(Vec<Ipv4Addr>),
    DomainName(String),
    Broadcast(Ipv4Addr),
    LeaseTime(u32),
    Renew(u32),
    Rebind(u32),
    Dns6(Vec<Ipv6Addr>),
    Search6(Vec<String>),
    InfoRefresh(u32),
    SolMaxRt(u32),
    Custom(PlanOption),
}

/// How an option is written in the source.
pub(super) struct Written<'a> {
    /// Its name, if named.
    pub name: Option<&'a str>,
    /// Its code, if given.
    pub code: Option<u16>,
    /// The value text: comma-separated items, a string, or hex bytes.
    pub data: &'a str,
    /// Whether `data` is raw hex (Kea `csv-format: false`).
    pub hex: bool,
}

/// Convert one configured option; `Err` says why it cannot be converted.
pub(super) fn convert(v6: bool, w: &Written<'_>) -> Result<Converted, String> {
    let table = if v6 { V6 } else { V4 };
    let known = match (w.name, w.code) {
        (Some(n), _) => table.iter().find(|(name, _, _)| *name == n).copied(),
        (None, Some(c)) => table.iter().find(|(_, code, _)| *code == c).copied(),
        (None, None) => return Err("option has neither a name nor a code".into()),
    };
    let (name, code, kind) = match (known, w.code) {
        (Some((_, tc, _)), Some(c)) if tc != c => {
            return Err(format!("name and code {c} disagree"));
        }
        (Some(k), _) => k,
        (None, Some(c)) if w.hex => ("", c, Kind::HexOnly),
        (None, Some(c)) => {
            return Err(format!(
                "option code {c} has no known format; give its value as raw bytes \
                 (csv-format false) to convert it"
            ));
        }
        (None, None) => {
            return Err("unknown option name (option definitions are not converted)".into());
        }
    };
    let name = w.name.unwrap_or(name).to_owned();
    if kind == Kind::Managed {
        return Err(format!(
            "option {code} is managed by twinlease itself and cannot be configured"
        ));
    }
    if w.hex {
        let bytes = super::parse_hex_bytes(w.data)
            .ok_or_else(|| format!("`{}` is not hex bytes", w.data))?;
        if let Kind::Field(_) = kind {
            return Err("raw bytes for an option twinlease sets from its own setting".into());
        }
        return Ok(custom(code, name, OptValue::Hex(bytes)));
    }
    let items: Vec<&str> = w
        .data
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let one = || -> Result<&str, String> {
        match items.as_slice() {
            [x] => Ok(x),
            _ => Err(format!("`{}` is not a single value", w.data)),
        }
    };
    let num = |max: u64| -> Result<u64, String> {
        one()?
            .parse::<u64>()
            .ok()
            .filter(|&v| v <= max)
            .ok_or_else(|| format!("`{}` is not a number in 0..={max}", w.data))
    };
    let ips4 = || -> Result<Vec<Ipv4Addr>, String> {
        items
            .iter()
            .map(|t| {
                t.parse()
                    .map_err(|_| format!("`{t}` is not an IPv4 address"))
            })
            .collect()
    };
    let ips6 = || -> Result<Vec<Ipv6Addr>, String> {
        items
            .iter()
            .map(|t| {
                t.parse()
                    .map_err(|_| format!("`{t}` is not an IPv6 address"))
            })
            .collect()
    };
    let secs = || u32::try_from(num(u64::from(u32::MAX))?).map_err(|e| e.to_string());
    let value = match kind {
        Kind::Ip4List => OptValue::Ips4(ips4()?),
        Kind::Ip6List => OptValue::Ips6(ips6()?),
        Kind::Text => OptValue::Text(w.data.to_owned()),
        Kind::U8 => OptValue::U8(u8::try_from(num(0xff)?).map_err(|e| e.to_string())?),
        Kind::U16 => OptValue::U16(u16::try_from(num(0xffff)?).map_err(|e| e.to_string())?),
        Kind::U32 => OptValue::U32(secs()?),
        Kind::I32 => {
            let v: i32 = one()?
                .parse()
                .map_err(|_| format!("`{}` is not a signed 32-bit number", w.data))?;
            OptValue::Hex(v.to_be_bytes().to_vec())
        }
        Kind::Bool => OptValue::U8(match one()? {
            "true" | "on" | "1" => 1,
            "false" | "off" | "0" => 0,
            other => return Err(format!("`{other}` is not true or false")),
        }),
        Kind::Names => OptValue::Hex(encode_names(&items)?),
        Kind::HexOnly => {
            return Err("this option's value can only be converted from raw bytes".into());
        }
        Kind::Managed => unreachable!("handled above"),
        Kind::Field(f) => {
            return Ok(match f {
                Field::SubnetMask => Converted::SubnetMask(
                    one()?
                        .parse()
                        .map_err(|_| format!("`{}` is not a netmask", w.data))?,
                ),
                Field::Routers => Converted::Routers(ips4()?),
                Field::Dns => Converted::Dns(ips4()?),
                Field::DomainName => Converted::DomainName(w.data.trim().to_owned()),
                Field::Broadcast => Converted::Broadcast(
                    one()?
                        .parse()
                        .map_err(|_| format!("`{}` is not an IPv4 address", w.data))?,
                ),
                Field::LeaseTime => Converted::LeaseTime(secs()?),
                Field::Renew => Converted::Renew(secs()?),
                Field::Rebind => Converted::Rebind(secs()?),
                Field::Dns6 => Converted::Dns6(ips6()?),
                Field::Search6 => {
                    Converted::Search6(items.iter().map(|s| (*s).to_owned()).collect())
                }
                Field::InfoRefresh => Converted::InfoRefresh(secs()?),
                Field::SolMaxRt => Converted::SolMaxRt(secs()?),
            });
        }
    };
    Ok(custom(code, name, value))
}

fn custom(code: u16, name: String, value: OptValue) -> Converted {
    let name = if name.is_empty() {
        format!("code {code}")
    } else {
        name
    };
    Converted::Custom(PlanOption { code, name, value })
}

/// Domain names in DNS wire format without compression (RFC 1035 §3.1).
fn encode_names(names: &[&str]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for n in names {
        let body = n.trim_matches('"').trim_end_matches('.');
        for label in body.split('.').filter(|l| !l.is_empty()) {
            let len = u8::try_from(label.len())
                .ok()
                .filter(|&l| l <= 63)
                .ok_or_else(|| format!("label `{label}` of `{n}` is longer than 63 bytes"))?;
            out.push(len);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    Ok(out)
}

/// Option-derived settings collected at one level (global, shared network, subnet).
#[derive(Debug, Clone, Default)]
pub(super) struct Level {
    mask: Option<Item<Ipv4Addr>>,
    routers: Option<Item<Vec<Ipv4Addr>>>,
    dns: Option<Item<Vec<Ipv4Addr>>>,
    domain_name: Option<Item<String>>,
    broadcast: Option<Item<Ipv4Addr>>,
    /// Lease time from option 51.
    pub lease_time: Option<u32>,
    renew: Option<u32>,
    rebind: Option<u32>,
    dns6: Option<Item<Vec<Ipv6Addr>>>,
    search6: Option<Item<Vec<String>>>,
    info_refresh: Option<u32>,
    sol_max_rt: Option<u32>,
    custom: Vec<Item<PlanOption>>,
}

impl Level {
    /// Record a converted option found at `loc`.
    pub(super) fn set(&mut self, c: Converted, loc: &Loc) {
        fn item<T>(value: T, loc: &Loc) -> Item<T> {
            let loc = loc.clone();
            Item { value, loc }
        }
        match c {
            Converted::SubnetMask(v) => self.mask = Some(item(v, loc)),
            Converted::Routers(v) => self.routers = Some(item(v, loc)),
            Converted::Dns(v) => self.dns = Some(item(v, loc)),
            Converted::DomainName(v) => {
                self.domain_name = Some(Item {
                    value: v,
                    loc: loc.clone(),
                });
            }
            Converted::Broadcast(v) => self.broadcast = Some(item(v, loc)),
            Converted::LeaseTime(v) => self.lease_time = Some(v),
            Converted::Renew(v) => self.renew = Some(v),
            Converted::Rebind(v) => self.rebind = Some(v),
            Converted::Dns6(v) => {
                self.dns6 = Some(Item {
                    value: v,
                    loc: loc.clone(),
                });
            }
            Converted::Search6(v) => {
                self.search6 = Some(Item {
                    value: v,
                    loc: loc.clone(),
                });
            }
            Converted::InfoRefresh(v) => self.info_refresh = Some(v),
            Converted::SolMaxRt(v) => self.sol_max_rt = Some(v),
            Converted::Custom(o) => {
                self.custom.retain(|x| x.value.code != o.code);
                self.custom.push(Item {
                    value: o,
                    loc: loc.clone(),
                });
            }
        }
    }

    /// This level with `parent`'s settings filled in where this one has none.
    #[must_use]
    pub(super) fn under(&self, parent: &Self) -> Self {
        let mut custom = parent.custom.clone();
        custom.retain(|p| !self.custom.iter().any(|c| c.value.code == p.value.code));
        custom.extend(self.custom.iter().cloned());
        Self {
            mask: self.mask.clone().or_else(|| parent.mask.clone()),
            routers: self.routers.clone().or_else(|| parent.routers.clone()),
            dns: self.dns.clone().or_else(|| parent.dns.clone()),
            domain_name: self
                .domain_name
                .clone()
                .or_else(|| parent.domain_name.clone()),
            broadcast: self.broadcast.clone().or_else(|| parent.broadcast.clone()),
            lease_time: self.lease_time.or(parent.lease_time),
            renew: self.renew.or(parent.renew),
            rebind: self.rebind.or(parent.rebind),
            dns6: self.dns6.clone().or_else(|| parent.dns6.clone()),
            search6: self.search6.clone().or_else(|| parent.search6.clone()),
            info_refresh: self.info_refresh.or(parent.info_refresh),
            sol_max_rt: self.sol_max_rt.or(parent.sol_max_rt),
            custom,
        }
    }

    /// Put the settings into a `DHCPv4` subnet (timers only where the subnet has none).
    pub(super) fn apply4(self, s: &mut PlanSubnet4, report: &mut Report) {
        if let Some(m) = self.mask
            && m.value != s.subnet.mask()
        {
            report.skip(
                &m.loc,
                format!("option subnet-mask {}", m.value),
                format!(
                    "twinlease sends the mask of the subnet prefix {} ({})",
                    s.subnet,
                    s.subnet.mask()
                ),
            );
        }
        let spread = |it: Item<Vec<Ipv4Addr>>| {
            it.value
                .into_iter()
                .map(|value| Item {
                    value,
                    loc: it.loc.clone(),
                })
                .collect()
        };
        if let Some(r) = self.routers {
            s.routers = spread(r);
        }
        if let Some(d) = self.dns {
            s.dns_servers = spread(d);
        }
        s.domain_name = self.domain_name;
        s.broadcast_address = self.broadcast;
        s.lease_time = s.lease_time.or(self.lease_time);
        s.renew_time = s.renew_time.or(self.renew);
        s.rebind_time = s.rebind_time.or(self.rebind);
        s.options = self.custom;
    }

    /// Put the settings into a `DHCPv6` subnet.
    pub(super) fn apply6(self, s: &mut PlanSubnet6) {
        if let Some(d) = self.dns6 {
            s.dns_servers = d
                .value
                .into_iter()
                .map(|value| Item {
                    value,
                    loc: d.loc.clone(),
                })
                .collect();
        }
        if let Some(d) = self.search6 {
            s.domain_search = d
                .value
                .into_iter()
                .map(|value| Item {
                    value,
                    loc: d.loc.clone(),
                })
                .collect();
        }
        s.information_refresh_time = self.info_refresh;
        s.sol_max_rt = self.sol_max_rt;
        s.options = self.custom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<'a>(name: &'a str, data: &'a str) -> Written<'a> {
        Written {
            name: Some(name),
            code: None,
            data,
            hex: false,
        }
    }

    #[test]
    fn names_are_dns_wire_format() {
        let c = convert(false, &w("domain-search", "example.net, lab.example.net")).unwrap();
        let Converted::Custom(o) = c else {
            panic!("{c:?}")
        };
        assert_eq!(o.code, 119);
        let mut want = b"\x07example\x03net\x00".to_vec();
        want.extend_from_slice(b"\x03lab\x07example\x03net\x00");
        assert_eq!(o.value, OptValue::Hex(want));
    }

    #[test]
    fn fields_managed_and_unknown() {
        assert_eq!(
            convert(false, &w("routers", "10.0.0.1, 10.0.0.2")).unwrap(),
            Converted::Routers(vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)])
        );
        assert!(convert(false, &w("dhcp-server-identifier", "10.0.0.1")).is_err());
        assert!(convert(false, &w("no-such-option", "1")).is_err());
        assert!(convert(false, &w("interface-mtu", "70000")).is_err());
        let c = convert(false, &w("time-offset", "-3600")).unwrap();
        let Converted::Custom(o) = c else {
            panic!("{c:?}")
        };
        assert_eq!(o.value, OptValue::Hex(vec![0xff, 0xff, 0xf1, 0xf0]));
        let by_code = Written {
            name: None,
            code: Some(224),
            data: "01:02",
            hex: true,
        };
        let Converted::Custom(o) = convert(false, &by_code).unwrap() else {
            panic!()
        };
        assert_eq!((o.code, o.value), (224, OptValue::Hex(vec![1, 2])));
    }
}
