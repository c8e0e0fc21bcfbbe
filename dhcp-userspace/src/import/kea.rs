//! Kea: `kea-dhcp4.conf` / `kea-dhcp6.conf` (JSON with `//`, `#` and `/* */` comments) and
//! the memfile lease files (`kea-leases4.csv`, `kea-leases6.csv`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::options::{self, Level, Written};
use super::{
    ImportError, Item, Loc, Plan, PlanPdPool, PlanPool6, PlanReservation4, PlanReservation6,
    PlanSubnet4, PlanSubnet6, Report, keep_last, lease4, parse_hex_bytes, parse_mac, parse_net4,
    parse_net6, settle_state,
};
use crate::config::{Ipv6Net, Pool4};
use crate::lease::{BindingState, ClientKey, IaKind, Lease6};

/// `text` with every comment outside strings replaced by spaces (newlines kept, so line
/// numbers stay right).
fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
            i += 1;
        } else if c == b'"' {
            in_str = true;
            out.push(c);
            i += 1;
        } else if c == b'#' || (c == b'/' && b.get(i + 1) == Some(&b'/')) {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            out.extend_from_slice(b"  ");
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            if i < b.len() {
                out.extend_from_slice(b"  ");
                i += 2;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    // Only ASCII bytes were replaced, and only outside strings or inside comments, whose
    // multi-byte characters are replaced byte by byte with spaces.
    String::from_utf8(out).unwrap_or_default()
}

/// The line of every value of a (valid) JSON text, by JSON pointer (`/Dhcp4/subnet4/0`).
struct Lines<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    map: HashMap<String, usize>,
}

impl Lines<'_> {
    fn index(text: &str) -> HashMap<String, usize> {
        let mut l = Lines {
            b: text.as_bytes(),
            i: 0,
            line: 1,
            map: HashMap::new(),
        };
        l.value("");
        l.map
    }

    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b'\n' {
                self.line += 1;
            } else if !c.is_ascii_whitespace() {
                return;
            }
            self.i += 1;
        }
    }

    fn string(&mut self) -> String {
        let mut s = Vec::new();
        self.i += 1;
        while let Some(&c) = self.b.get(self.i) {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(&e) = self.b.get(self.i) {
                        s.push(e);
                        self.i += 1;
                    }
                }
                c => s.push(c),
            }
        }
        String::from_utf8_lossy(&s).into_owned()
    }

    fn value(&mut self, path: &str) {
        self.ws();
        self.map.insert(path.to_owned(), self.line);
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                loop {
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b'"') => {
                            let k = self.string().replace('~', "~0").replace('/', "~1");
                            self.ws();
                            self.i += 1; // ':'
                            self.value(&format!("{path}/{k}"));
                        }
                        Some(b',') => self.i += 1,
                        Some(_) => {
                            self.i += 1;
                            return;
                        }
                        None => return,
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut k = 0;
                loop {
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b']') | None => {
                            self.i += 1;
                            return;
                        }
                        Some(b',') => self.i += 1,
                        Some(_) => {
                            self.value(&format!("{path}/{k}"));
                            k += 1;
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string();
            }
            _ => {
                while let Some(&c) = self.b.get(self.i) {
                    if matches!(c, b',' | b']' | b'}') || c.is_ascii_whitespace() {
                        break;
                    }
                    self.i += 1;
                }
            }
        }
    }
}

/// A parsed Kea file: its values and the line of each.
struct Doc<'a> {
    file: &'a str,
    lines: HashMap<String, usize>,
}

impl Doc<'_> {
    fn loc(&self, ptr: &str) -> Loc {
        let mut p = ptr;
        loop {
            if let Some(&l) = self.lines.get(p) {
                return Loc::new(self.file, l);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Loc::new(self.file, 1),
            }
        }
    }
}

fn parse_doc<'a>(text: &str, file: &'a str) -> Result<(Value, Doc<'a>), ImportError> {
    let stripped = strip_comments(text);
    let value: Value = serde_json::from_str(&stripped).map_err(|e| ImportError::Syntax {
        file: file.to_owned(),
        line: e.line(),
        reason: format!("not valid JSON (after removing comments): {e}"),
    })?;
    let lines = Lines::index(&stripped);
    Ok((value, Doc { file, lines }))
}

/// Why a Kea parameter is not converted; `None` for the ones that need nothing.
/// Why Kea's High Availability hook is not converted.
const HA_REASON: &str = "Kea HA is not convertible: it is a different protocol (Kea's lease \
    updates over its HTTP control channel) from the failover twinlease speaks \
    (draft-ietf-dhc-failover-12, RFC 8156); write [failover] by hand for a twinlease pair \
    (see docs/configuration.md); the rest of the configuration is converted";

/// Report the High Availability hook among `hooks-libraries` (at `ptr`) with its own reason;
/// every hook library is reported as not supported either way.
fn skip_ha(rd: &mut Reader<'_, '_>, ptr: &str, v: &Value) {
    for (i, h) in v.as_array().into_iter().flatten().enumerate() {
        let lib = h.get("library").and_then(Value::as_str).unwrap_or("");
        let has_ha = lib.contains("libdhcp_ha")
            || h.get("parameters")
                .and_then(|p| p.get("high-availability"))
                .is_some();
        if has_ha {
            rd.skip(
                &format!("{ptr}/{i}"),
                "high-availability (libdhcp_ha)",
                HA_REASON,
            );
        }
    }
}

fn why_not(key: &str) -> Option<&'static str> {
    Some(match key {
        "comment" | "user-context" => return None,
        "lease-database" => "twinlease keeps leases in its own store (import the lease file)",
        "hosts-database" | "hosts-databases" => {
            "reservations kept in a database are not read; put them into the configuration"
        }
        "control-socket" | "control-sockets" => "twinlease has its own control interface",
        "loggers" => "twinlease logs to stderr, filtered by TWINLEASE_LOG",
        "hooks-libraries" => "hook libraries are not supported",
        "client-classes"
        | "client-class"
        | "require-client-classes"
        | "evaluate-additional-classes" => "client classification is not supported",
        "dhcp-ddns" => "DNS updates (DDNS) are not supported",
        k if k.starts_with("ddns-") || k.starts_with("hostname-char") => {
            "DNS updates (DDNS) are not supported"
        }
        "option-def" => {
            "option definitions are not supported; custom options convert by code from raw bytes"
        }
        "multi-threading" => "twinlease runs one worker per shard (server.workers)",
        "expired-leases-processing" => "twinlease reclaims expired leases itself",
        "next-server" | "server-hostname" | "boot-file-name" => {
            "BOOTP header fields (siaddr, sname, file) are not supported"
        }
        "high-availability" => HA_REASON,
        "authoritative" => "twinlease always answers as the authoritative server of its subnets",
        "match-client-id"
        | "echo-client-id"
        | "host-reservation-identifiers"
        | "reservation-mode"
        | "reservations-global"
        | "reservations-in-subnet"
        | "reservations-out-of-pool"
        | "early-global-reservations-lookup" => {
            "twinlease matches reservations by client-id, then hw-address, in their subnet"
        }
        "calculate-tee-times" | "t1-percent" | "t2-percent" => {
            "timers are converted only when given in seconds (renew-timer, rebind-timer)"
        }
        "min-preferred-lifetime"
        | "max-preferred-lifetime"
        | "min-valid-lifetime"
        | "max-valid-lifetime" => "twinlease DHCPv6 grants fixed lifetimes",
        "relay" => "twinlease selects DHCPv6 subnets by link-address or interface-id only",
        _ => "unknown or unsupported Kea parameter",
    })
}

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

fn u32_of(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// Inherited subnet settings (global → shared network → subnet).
#[derive(Debug, Clone, Default)]
struct Inherit {
    opts: Level,
    valid: Option<u32>,
    preferred: Option<u32>,
    renew: Option<u32>,
    rebind: Option<u32>,
    min: Option<u32>,
    max: Option<u32>,
    interface: Option<String>,
    interface_id: Option<String>,
    relay: Vec<Item<Ipv4Addr>>,
    rapid_commit: Option<bool>,
}

struct Reader<'a, 'r> {
    doc: Doc<'a>,
    report: &'r mut Report,
    v6: bool,
}

impl Reader<'_, '_> {
    fn skip(&mut self, ptr: &str, what: impl Into<String>, reason: impl Into<String>) {
        let loc = self.doc.loc(ptr);
        self.report.skip(&loc, what, reason);
    }

    /// Read the keys every level (global, shared network, subnet) may carry into `inh`;
    /// returns the keys it did not know, for the caller.
    fn common<'m>(
        &mut self,
        ptr: &str,
        m: &'m Map<String, Value>,
        inh: &mut Inherit,
    ) -> Vec<(&'m String, &'m Value)> {
        let mut rest = Vec::new();
        for (k, v) in m {
            let p = format!("{ptr}/{k}");
            match k.as_str() {
                "valid-lifetime" => inh.valid = u32_of(v).or(inh.valid),
                "preferred-lifetime" if self.v6 => inh.preferred = u32_of(v).or(inh.preferred),
                "renew-timer" => inh.renew = u32_of(v).or(inh.renew),
                "rebind-timer" => inh.rebind = u32_of(v).or(inh.rebind),
                "min-valid-lifetime" if !self.v6 => inh.min = u32_of(v).or(inh.min),
                "max-valid-lifetime" if !self.v6 => inh.max = u32_of(v).or(inh.max),
                "rapid-commit" if self.v6 => inh.rapid_commit = v.as_bool(),
                "interface" => match v.as_str() {
                    Some(s) => inh.interface = Some(s.to_owned()),
                    None => self.skip(&p, "interface", "not a string"),
                },
                "interface-id" if self.v6 => match v.as_str() {
                    Some(s) => inh.interface_id = Some(s.to_owned()),
                    None => self.skip(&p, "interface-id", "not a string"),
                },
                "relay" if !self.v6 => self.relay(&p, v, inh),
                "option-data" => {
                    let mut level = Level::default();
                    self.option_data(&p, v, &mut level);
                    inh.opts = level.under(&inh.opts);
                }
                _ => rest.push((k, v)),
            }
        }
        rest
    }

    fn relay(&mut self, ptr: &str, v: &Value, inh: &mut Inherit) {
        let Some(m) = obj(v) else {
            self.skip(ptr, "relay", "not an object");
            return;
        };
        inh.relay.clear();
        for (k, v) in m {
            let p = format!("{ptr}/{k}");
            let list: Vec<(String, &Value)> = match (k.as_str(), v) {
                ("ip-addresses", Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (format!("{p}/{i}"), x))
                    .collect(),
                ("ip-address", x) => vec![(p.clone(), x)],
                _ => {
                    self.skip(&p, format!("relay {k}"), "unknown relay parameter");
                    continue;
                }
            };
            for (p, x) in list {
                match x.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
                    Some(ip) => inh.relay.push(Item {
                        value: ip,
                        loc: self.doc.loc(&p),
                    }),
                    None => self.skip(&p, "relay address", format!("{x} is not an IPv4 address")),
                }
            }
        }
    }

    fn option_data(&mut self, ptr: &str, v: &Value, level: &mut Level) {
        let Some(list) = v.as_array() else {
            self.skip(ptr, "option-data", "not a list");
            return;
        };
        for (i, o) in list.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let Some(m) = obj(o) else {
                self.skip(&p, "option-data entry", "not an object");
                continue;
            };
            let name = m.get("name").and_then(Value::as_str);
            let code = m
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok());
            let label = match (name, code) {
                (Some(n), _) => format!("option {n}"),
                (None, Some(c)) => format!("option code {c}"),
                (None, None) => "option".to_owned(),
            };
            let space = m.get("space").and_then(Value::as_str);
            let default_space = if self.v6 { "dhcp6" } else { "dhcp4" };
            if space.is_some_and(|s| s != default_space) {
                self.skip(
                    &p,
                    label,
                    format!("options of space {} are not supported", space.unwrap_or("")),
                );
                continue;
            }
            for k in m.keys() {
                if !matches!(
                    k.as_str(),
                    "name"
                        | "code"
                        | "data"
                        | "csv-format"
                        | "space"
                        | "always-send"
                        | "never-send"
                        | "comment"
                        | "user-context"
                ) {
                    self.skip(
                        &format!("{p}/{k}"),
                        format!("{label}: {k}"),
                        "option parameter not supported",
                    );
                }
            }
            let written = Written {
                name,
                code,
                data: m.get("data").and_then(Value::as_str).unwrap_or(""),
                hex: m.get("csv-format").and_then(Value::as_bool) == Some(false),
            };
            match options::convert(self.v6, &written) {
                Ok(c) => level.set(c, &self.doc.loc(&p)),
                Err(reason) => self.skip(&p, label, reason),
            }
        }
    }

    fn interfaces(&mut self, ptr: &str, v: &Value, plan: &mut Plan) {
        let Some(m) = obj(v) else { return };
        for (k, v) in m {
            let p = format!("{ptr}/{k}");
            if k != "interfaces" {
                if why_not(k).is_some() {
                    self.skip(
                        &p,
                        format!("interfaces-config {k}"),
                        "socket options are not converted",
                    );
                }
                continue;
            }
            for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                let p = format!("{p}/{i}");
                let Some(s) = x.as_str() else { continue };
                let name = s.split('/').next().unwrap_or(s);
                if name == "*" {
                    self.skip(
                        &p,
                        "interface *",
                        "list the interfaces in server.interfaces",
                    );
                } else if !plan.interfaces.iter().any(|i| i.value == name) {
                    plan.interfaces.push(Item {
                        value: name.to_owned(),
                        loc: self.doc.loc(&p),
                    });
                }
            }
        }
    }
}

fn top<'v>(v: &'v Value, key: &str, file: &str) -> Result<&'v Map<String, Value>, ImportError> {
    v.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| ImportError::Syntax {
            file: file.to_owned(),
            line: 1,
            reason: format!("no \"{key}\" object: not a Kea configuration"),
        })
}

/// Read `kea-dhcp4.conf` into `plan`.
pub(super) fn read_config4(
    text: &str,
    file: &str,
    plan: &mut Plan,
    report: &mut Report,
) -> Result<(), ImportError> {
    let (value, doc) = parse_doc(text, file)?;
    let root = top(&value, "Dhcp4", file)?;
    let mut rd = Reader {
        doc,
        report,
        v6: false,
    };
    let mut global = Inherit::default();
    let rest = rd.common("/Dhcp4", root, &mut global);
    let mut subnets: Vec<(String, &Value, Inherit)> = Vec::new();
    let mut globals: Vec<(String, &Value)> = Vec::new();
    for (k, v) in rest {
        let p = format!("/Dhcp4/{k}");
        if k == "hooks-libraries" {
            skip_ha(&mut rd, &p, v);
        }
        match k.as_str() {
            "interfaces-config" => rd.interfaces(&p, v, plan),
            "decline-probation-period" => plan.decline_probation_secs = u32_of(v),
            "subnet4" => collect(&p, v, &global, &mut subnets),
            "shared-networks" => shared(&mut rd, &p, v, &global, "subnet4", &mut subnets),
            "reservations" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    globals.push((format!("{p}/{i}"), x));
                }
            }
            _ => {
                if let Some(why) = why_not(k) {
                    rd.skip(&p, k.clone(), why);
                }
            }
        }
    }
    let mut used: Vec<u32> = subnets
        .iter()
        .filter_map(|(_, v, _)| v.get("id").and_then(u32_of))
        .collect();
    for (p, v, inh) in subnets {
        if let Some(s) = subnet4(&mut rd, &p, v, inh, &mut used) {
            plan.subnet4.push(s);
        }
    }
    for (p, v) in globals {
        let Some(res) = reservation4(&mut rd, &p, v) else {
            continue;
        };
        match plan
            .subnet4
            .iter_mut()
            .find(|s| s.subnet.contains(res.value.address))
        {
            Some(s) => s.reservations.push(res),
            None => rd.skip(&p, "global reservation", "its ip-address is in no subnet4"),
        }
    }
    Ok(())
}

fn collect<'v>(
    ptr: &str,
    v: &'v Value,
    inh: &Inherit,
    out: &mut Vec<(String, &'v Value, Inherit)>,
) {
    for (i, s) in v.as_array().into_iter().flatten().enumerate() {
        out.push((format!("{ptr}/{i}"), s, inh.clone()));
    }
}

fn shared<'v>(
    rd: &mut Reader<'_, '_>,
    ptr: &str,
    v: &'v Value,
    global: &Inherit,
    key: &str,
    out: &mut Vec<(String, &'v Value, Inherit)>,
) {
    for (i, net) in v.as_array().into_iter().flatten().enumerate() {
        let p = format!("{ptr}/{i}");
        let Some(m) = obj(net) else { continue };
        let mut inh = global.clone();
        let rest = rd.common(&p, m, &mut inh);
        let name = m.get("name").and_then(Value::as_str).unwrap_or("");
        for (k, v) in rest {
            let kp = format!("{p}/{k}");
            if k == key {
                let n = v.as_array().map_or(0, Vec::len);
                rd.skip(
                    &p,
                    format!("shared-network {name}"),
                    format!(
                        "flattened into its {n} subnet(s), which inherit its settings; twinlease \
                     does not pool the addresses of a shared network: each subnet is selected \
                     on its own (relay address, interface)"
                    ),
                );
                collect(&kp, v, &inh, out);
            } else if k != "name"
                && let Some(why) = why_not(k)
            {
                rd.skip(&kp, format!("shared-network {k}"), why);
            }
        }
    }
}

fn next_id(used: &mut Vec<u32>) -> u32 {
    let id = used.iter().copied().max().unwrap_or(0) + 1;
    used.push(id);
    id
}

fn subnet4(
    rd: &mut Reader<'_, '_>,
    ptr: &str,
    v: &Value,
    mut inh: Inherit,
    used: &mut Vec<u32>,
) -> Option<PlanSubnet4> {
    let m = obj(v)?;
    let text = m.get("subnet").and_then(Value::as_str).unwrap_or("");
    let Some(net) = parse_net4(text) else {
        rd.skip(
            ptr,
            format!("subnet4 {text}"),
            "`subnet` is not an IPv4 network prefix",
        );
        return None;
    };
    let parent_opts = std::mem::take(&mut inh.opts);
    let rest = rd.common(ptr, m, &mut inh);
    inh.opts = inh.opts.under(&parent_opts);
    let id = m
        .get("id")
        .and_then(u32_of)
        .filter(|&i| i > 0)
        .unwrap_or_else(|| next_id(used));
    let mut s = PlanSubnet4::new(rd.doc.loc(ptr), id, net);
    for (k, v) in rest {
        let p = format!("{ptr}/{k}");
        match k.as_str() {
            "id" | "subnet" => {}
            "pools" => {
                for (i, pool) in v.as_array().into_iter().flatten().enumerate() {
                    let pp = format!("{p}/{i}");
                    if let Some(pool) = pool4(rd, &pp, pool) {
                        s.pools.push(Item {
                            value: pool,
                            loc: rd.doc.loc(&pp),
                        });
                    }
                }
            }
            "reservations" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    if let Some(res) = reservation4(rd, &format!("{p}/{i}"), x) {
                        s.reservations.push(res);
                    }
                }
            }
            _ => {
                if let Some(why) = why_not(k) {
                    rd.skip(&p, format!("subnet4 {net}: {k}"), why);
                }
            }
        }
    }
    s.interface = inh.interface;
    s.relay_addresses = inh.relay;
    s.lease_time = inh.valid;
    s.renew_time = inh.renew;
    s.rebind_time = inh.rebind;
    s.min_lease_time = inh.min;
    s.max_lease_time = inh.max;
    inh.opts.apply4(&mut s, rd.report);
    Some(s)
}

fn pool4(rd: &mut Reader<'_, '_>, ptr: &str, v: &Value) -> Option<Pool4> {
    let m = obj(v)?;
    for k in m.keys().filter(|k| *k != "pool") {
        if let Some(why) = why_not(k) {
            let why = if k == "option-data" {
                "options per pool are not supported (only per subnet)"
            } else {
                why
            };
            rd.skip(&format!("{ptr}/{k}"), format!("pool {k}"), why);
        }
    }
    let text = m.get("pool").and_then(Value::as_str).unwrap_or("");
    let range = if let Some((a, b)) = text.split_once('-') {
        a.trim().parse().ok().zip(b.trim().parse().ok())
    } else {
        parse_net4(text).map(|n| (n.network(), n.broadcast()))
    };
    if range.is_none() {
        rd.skip(
            ptr,
            format!("pool {text}"),
            "not a range `a - b` or prefix `x/len`",
        );
    }
    range.map(|(start, end)| Pool4 { start, end })
}

fn reservation4(rd: &mut Reader<'_, '_>, ptr: &str, v: &Value) -> Option<Item<PlanReservation4>> {
    let m = obj(v)?;
    let mut hw = None;
    let mut client_id = None;
    let mut address = None;
    let mut hostname = None;
    for (k, v) in m {
        let p = format!("{ptr}/{k}");
        let s = v.as_str().unwrap_or("");
        match k.as_str() {
            "hw-address" => {
                hw = parse_mac(s);
                if hw.is_none() {
                    rd.skip(
                        &p,
                        "reservation hw-address",
                        format!("`{s}` is not a MAC address"),
                    );
                    return None;
                }
            }
            "client-id" => {
                client_id = parse_hex_bytes(s);
                if client_id.is_none() {
                    rd.skip(
                        &p,
                        "reservation client-id",
                        format!("`{s}` is not hex bytes"),
                    );
                    return None;
                }
            }
            "ip-address" => address = s.parse::<Ipv4Addr>().ok(),
            "hostname" => hostname = Some(s.to_owned()),
            "duid" | "circuit-id" | "flex-id" => rd.skip(
                &p,
                format!("reservation by {k}"),
                "twinlease reserves DHCPv4 addresses by hw-address or client-id only",
            ),
            "option-data" => rd.skip(
                &p,
                "reservation option-data",
                "options per host are not supported",
            ),
            _ => {
                if let Some(why) = why_not(k) {
                    rd.skip(&p, format!("reservation {k}"), why);
                }
            }
        }
    }
    let Some(address) = address else {
        rd.skip(
            ptr,
            "reservation",
            "it has no ip-address (twinlease reserves addresses only)",
        );
        return None;
    };
    if hw.is_none() && client_id.is_none() {
        rd.skip(
            ptr,
            format!("reservation {address}"),
            "it has no hw-address or client-id",
        );
        return None;
    }
    Some(Item {
        value: PlanReservation4 {
            hw,
            client_id,
            address,
            hostname,
        },
        loc: rd.doc.loc(ptr),
    })
}

/// Read `kea-dhcp6.conf` into `plan`.
pub(super) fn read_config6(
    text: &str,
    file: &str,
    plan: &mut Plan,
    report: &mut Report,
) -> Result<(), ImportError> {
    let (value, doc) = parse_doc(text, file)?;
    let root = top(&value, "Dhcp6", file)?;
    let mut rd = Reader {
        doc,
        report,
        v6: true,
    };
    let mut global = Inherit::default();
    let rest = rd.common("/Dhcp6", root, &mut global);
    let mut subnets: Vec<(String, &Value, Inherit)> = Vec::new();
    let mut globals: Vec<(String, &Value)> = Vec::new();
    for (k, v) in rest {
        let p = format!("/Dhcp6/{k}");
        if k == "hooks-libraries" {
            skip_ha(&mut rd, &p, v);
        }
        match k.as_str() {
            "interfaces-config" => rd.interfaces(&p, v, plan),
            "subnet6" => collect(&p, v, &global, &mut subnets),
            "shared-networks" => shared(&mut rd, &p, v, &global, "subnet6", &mut subnets),
            "reservations" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    globals.push((format!("{p}/{i}"), x));
                }
            }
            "server-id" => rd.skip(
                &p,
                "server-id",
                "twinlease creates its own DUID in the data directory",
            ),
            _ => {
                if let Some(why) = why_not(k) {
                    rd.skip(&p, k.clone(), why);
                }
            }
        }
    }
    let mut used: Vec<u32> = subnets
        .iter()
        .filter_map(|(_, v, _)| v.get("id").and_then(u32_of))
        .collect();
    for (p, v, inh) in subnets {
        if let Some(s) = subnet6(&mut rd, &p, v, inh, &mut used) {
            plan.subnet6.push(s);
        }
    }
    for (p, v) in globals {
        let Some(res) = reservation6(&mut rd, &p, v) else {
            continue;
        };
        let home = plan.subnet6.iter_mut().find(|s| {
            res.value.address.is_some_and(|a| s.prefix.contains(a))
                || res
                    .value
                    .prefix
                    .is_some_and(|n| s.pd_pools.iter().any(|pd| pd.value.prefix.contains_net(&n)))
        });
        match home {
            Some(s) => s.reservations.push(res),
            None => rd.skip(
                &p,
                "global reservation",
                "its address or prefix is in no subnet6",
            ),
        }
    }
    Ok(())
}

fn subnet6(
    rd: &mut Reader<'_, '_>,
    ptr: &str,
    v: &Value,
    mut inh: Inherit,
    used: &mut Vec<u32>,
) -> Option<PlanSubnet6> {
    let m = obj(v)?;
    let text = m.get("subnet").and_then(Value::as_str).unwrap_or("");
    let Some(net) = parse_net6(text) else {
        rd.skip(
            ptr,
            format!("subnet6 {text}"),
            "`subnet` is not an IPv6 prefix",
        );
        return None;
    };
    let parent_opts = std::mem::take(&mut inh.opts);
    let rest = rd.common(ptr, m, &mut inh);
    inh.opts = inh.opts.under(&parent_opts);
    let id = m
        .get("id")
        .and_then(u32_of)
        .filter(|&i| i > 0)
        .unwrap_or_else(|| next_id(used));
    let mut s = PlanSubnet6::new(rd.doc.loc(ptr), id, net);
    for (k, v) in rest {
        let p = format!("{ptr}/{k}");
        match k.as_str() {
            "id" | "subnet" => {}
            "pools" => {
                for (i, pool) in v.as_array().into_iter().flatten().enumerate() {
                    let pp = format!("{p}/{i}");
                    if let Some(pool) = pool6(rd, &pp, pool) {
                        s.pools.push(Item {
                            value: pool,
                            loc: rd.doc.loc(&pp),
                        });
                    }
                }
            }
            "pd-pools" => {
                for (i, pool) in v.as_array().into_iter().flatten().enumerate() {
                    let pp = format!("{p}/{i}");
                    if let Some(pool) = pd_pool(rd, &pp, pool) {
                        s.pd_pools.push(Item {
                            value: pool,
                            loc: rd.doc.loc(&pp),
                        });
                    }
                }
            }
            "reservations" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    if let Some(res) = reservation6(rd, &format!("{p}/{i}"), x) {
                        s.reservations.push(res);
                    }
                }
            }
            _ => {
                if let Some(why) = why_not(k) {
                    rd.skip(&p, format!("subnet6 {net}: {k}"), why);
                }
            }
        }
    }
    s.interface = inh.interface;
    s.interface_id = inh.interface_id;
    s.preferred_lifetime = inh.preferred;
    s.valid_lifetime = inh.valid;
    s.renew_time = inh.renew;
    s.rebind_time = inh.rebind;
    s.rapid_commit = inh.rapid_commit.unwrap_or(false);
    inh.opts.apply6(&mut s);
    Some(s)
}

fn pool6(rd: &mut Reader<'_, '_>, ptr: &str, v: &Value) -> Option<PlanPool6> {
    let m = obj(v)?;
    for k in m.keys().filter(|k| *k != "pool") {
        if let Some(why) = why_not(k) {
            rd.skip(&format!("{ptr}/{k}"), format!("pool {k}"), why);
        }
    }
    let text = m.get("pool").and_then(Value::as_str).unwrap_or("");
    let pool = if let Some((a, b)) = text.split_once('-') {
        a.trim()
            .parse::<Ipv6Addr>()
            .ok()
            .zip(b.trim().parse::<Ipv6Addr>().ok())
            .map(|(a, b)| PlanPool6::Range(a, b))
    } else {
        parse_net6(text).map(PlanPool6::Prefix)
    };
    if pool.is_none() {
        rd.skip(
            ptr,
            format!("pool {text}"),
            "not a range `a - b` or prefix `x/len`",
        );
    }
    pool
}

fn pd_pool(rd: &mut Reader<'_, '_>, ptr: &str, v: &Value) -> Option<PlanPdPool> {
    let m = obj(v)?;
    let len = |k: &str| {
        m.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u8::try_from(n).ok())
    };
    for k in m.keys() {
        if !matches!(
            k.as_str(),
            "prefix" | "prefix-len" | "delegated-len" | "excluded-prefix" | "excluded-prefix-len"
        ) && let Some(why) = why_not(k)
        {
            rd.skip(&format!("{ptr}/{k}"), format!("pd-pool {k}"), why);
        }
    }
    let addr = m
        .get("prefix")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Ipv6Addr>().ok());
    let (Some(addr), Some(plen), Some(dlen)) = (addr, len("prefix-len"), len("delegated-len"))
    else {
        rd.skip(ptr, "pd-pool", "needs prefix, prefix-len and delegated-len");
        return None;
    };
    let Some(prefix) = Ipv6Net::new(addr, plen) else {
        rd.skip(ptr, "pd-pool", format!("prefix length {plen} is above 128"));
        return None;
    };
    let excluded = match (
        m.get("excluded-prefix")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv6Addr>().ok()),
        len("excluded-prefix-len"),
    ) {
        (Some(a), Some(l)) if !a.is_unspecified() && l > 0 => Ipv6Net::new(a, l),
        _ => None,
    };
    Some(PlanPdPool {
        prefix,
        delegated_len: dlen,
        excluded,
    })
}

fn reservation6(rd: &mut Reader<'_, '_>, ptr: &str, v: &Value) -> Option<Item<PlanReservation6>> {
    let m = obj(v)?;
    let mut duid = None;
    let mut address = None;
    let mut prefix = None;
    for (k, v) in m {
        let p = format!("{ptr}/{k}");
        match k.as_str() {
            "duid" => duid = v.as_str().and_then(parse_hex_bytes),
            "ip-addresses" | "prefixes" => {
                for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                    let xp = format!("{p}/{i}");
                    let s = x.as_str().unwrap_or("");
                    let (slot, what) = if k == "ip-addresses" {
                        (address.is_none(), "address")
                    } else {
                        (prefix.is_none(), "prefix")
                    };
                    if !slot {
                        rd.skip(
                            &xp,
                            format!("reservation {what} {s}"),
                            format!("twinlease reserves one {what} per DUID"),
                        );
                    } else if k == "ip-addresses" {
                        address = s.parse::<Ipv6Addr>().ok();
                    } else {
                        prefix = parse_net6(s);
                    }
                }
            }
            "hostname" => rd.skip(
                &p,
                "reservation hostname",
                "DHCPv6 host names are not supported",
            ),
            "hw-address" | "flex-id" => rd.skip(
                &p,
                format!("reservation by {k}"),
                "twinlease reserves DHCPv6 addresses by DUID only",
            ),
            "option-data" => rd.skip(
                &p,
                "reservation option-data",
                "options per host are not supported",
            ),
            _ => {
                if let Some(why) = why_not(k) {
                    rd.skip(&p, format!("reservation {k}"), why);
                }
            }
        }
    }
    let Some(duid) = duid else {
        rd.skip(
            ptr,
            "reservation",
            "it has no DUID (twinlease reserves by DUID)",
        );
        return None;
    };
    if address.is_none() && prefix.is_none() {
        rd.skip(ptr, "reservation", "it reserves no address or prefix");
        return None;
    }
    Some(Item {
        value: PlanReservation6 {
            duid,
            address,
            prefix,
        },
        loc: rd.doc.loc(ptr),
    })
}

/// A CSV row: its line and its fields.
type Row<'t> = (usize, Vec<&'t str>);

/// Rows of a Kea memfile CSV: the header's column names, and each row with its line.
fn csv_rows<'t>(
    text: &'t str,
    file: &str,
    report: &mut Report,
) -> Result<(Vec<&'t str>, Vec<Row<'t>>), ImportError> {
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .map(|(_, l)| l.split(',').map(str::trim).collect())
        .ok_or_else(|| ImportError::Syntax {
            file: file.to_owned(),
            line: 1,
            reason: "empty lease file: no CSV header".into(),
        })?;
    if !header.contains(&"address") {
        return Err(ImportError::Syntax {
            file: file.to_owned(),
            line: 1,
            reason: "no `address` column: not a Kea memfile lease file".into(),
        });
    }
    let mut rows = Vec::new();
    for (i, l) in lines {
        if l.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = l.split(',').collect();
        if fields.len() < header.len() {
            report.skip(
                &Loc::new(file, i + 1),
                "lease record",
                format!("{} fields, the header has {}", fields.len(), header.len()),
            );
            continue;
        }
        rows.push((i + 1, fields));
    }
    Ok((header, rows))
}

fn col<'r>(header: &[&str], row: &[&'r str], name: &str) -> &'r str {
    header
        .iter()
        .position(|h| *h == name)
        .and_then(|i| row.get(i))
        .map_or("", |s| s.trim())
}

fn kea_state(v: &str) -> Result<BindingState, String> {
    Ok(match v {
        "" | "0" => BindingState::Active,
        "1" => BindingState::Abandoned,
        "2" => BindingState::Expired,
        "3" => BindingState::Released,
        other => return Err(format!("unknown lease state {other}")),
    })
}

/// Expiry and CLTT (expiry minus the valid lifetime), clamped into `u32`.
fn times(expire: &str, valid: &str) -> Option<(u32, u32)> {
    let e: u64 = expire.parse().ok()?;
    let v: u64 = valid.parse().ok()?;
    let clamp = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    Some((clamp(e), clamp(e.saturating_sub(v))))
}

/// Read a Kea `lease4` memfile into `plan` (the last line for an address wins).
pub(super) fn read_leases4(
    text: &str,
    file: &str,
    now: u32,
    plan: &mut Plan,
    report: &mut Report,
) -> Result<(), ImportError> {
    let (h, rows) = csv_rows(text, file, report)?;
    let mut out = Vec::new();
    for (line, row) in rows {
        plan.lease_records += 1;
        let loc = Loc::new(file, line);
        let addr_text = col(&h, &row, "address");
        let lease = (|| -> Result<_, String> {
            let addr: Ipv4Addr = addr_text
                .parse()
                .map_err(|_| format!("`{addr_text}` is not an IPv4 address"))?;
            let (expires, cltt) = times(col(&h, &row, "expire"), col(&h, &row, "valid_lifetime"))
                .ok_or("bad expire or valid_lifetime")?;
            let subnet_id = col(&h, &row, "subnet_id").parse().unwrap_or(0);
            let state = settle_state(kea_state(col(&h, &row, "state"))?, expires, now);
            let hw = col(&h, &row, "hwaddr");
            let mac = parse_mac(hw);
            let cid = parse_hex_bytes(col(&h, &row, "client_id")).filter(|c| !c.is_empty());
            let client = match (&cid, mac, state) {
                (Some(c), _, _) => ClientKey::from_client_id(c).map_err(|e| e.to_string())?,
                (None, Some(m), _) => ClientKey::from_hw(1, &m).map_err(|e| e.to_string())?,
                (None, None, BindingState::Abandoned) => {
                    ClientKey::from_hw(1, &[0; 6]).map_err(|e| e.to_string())?
                }
                (None, None, _) => return Err("no client-id and no hardware address".into()),
            };
            Ok((
                addr,
                lease4(
                    addr,
                    state,
                    &client,
                    mac.unwrap_or([0; 6]),
                    subnet_id,
                    expires,
                    cltt,
                ),
            ))
        })();
        match lease {
            Ok((addr, l)) => out.push((addr, Item { value: l, loc })),
            Err(why) => report.skip(&loc, format!("lease {addr_text}"), why),
        }
    }
    plan.leases4.extend(keep_last(out, &mut plan.superseded));
    Ok(())
}

/// Read a Kea `lease6` memfile into `plan` (the last line for an address or prefix wins).
pub(super) fn read_leases6(
    text: &str,
    file: &str,
    now: u32,
    plan: &mut Plan,
    report: &mut Report,
) -> Result<(), ImportError> {
    let (h, rows) = csv_rows(text, file, report)?;
    let mut out = Vec::new();
    for (line, row) in rows {
        plan.lease_records += 1;
        let loc = Loc::new(file, line);
        let addr_text = col(&h, &row, "address");
        let lease = (|| -> Result<Lease6, String> {
            let addr: Ipv6Addr = addr_text
                .parse()
                .map_err(|_| format!("`{addr_text}` is not an IPv6 address"))?;
            let (kind, prefix_len) = match col(&h, &row, "lease_type") {
                "0" | "" => (IaKind::Na, 128),
                "2" => (
                    IaKind::Pd,
                    col(&h, &row, "prefix_len")
                        .parse::<u8>()
                        .ok()
                        .filter(|&l| l <= 128)
                        .ok_or("bad prefix_len")?,
                ),
                "1" => return Err("temporary addresses (IA_TA) are not supported".into()),
                t => return Err(format!("unknown lease_type {t}")),
            };
            let (expires, cltt) = times(col(&h, &row, "expire"), col(&h, &row, "valid_lifetime"))
                .ok_or("bad expire or valid_lifetime")?;
            let pref: u32 = col(&h, &row, "pref_lifetime").parse().unwrap_or(0);
            let duid = parse_hex_bytes(col(&h, &row, "duid"))
                .filter(|d| !d.is_empty())
                .ok_or("no DUID")?;
            Ok(Lease6 {
                kind,
                addr,
                prefix_len,
                state: settle_state(kea_state(col(&h, &row, "state"))?, expires, now),
                client: ClientKey::from_duid(&duid).map_err(|e| e.to_string())?,
                iaid: col(&h, &row, "iaid").parse().unwrap_or(0),
                subnet_id: col(&h, &row, "subnet_id").parse().unwrap_or(0),
                preferred_until: cltt.saturating_add(pref).min(expires),
                expires,
                cltt,
                partner_expires: 0,
                update_pending: false,
            })
        })();
        match lease {
            Ok(l) => out.push(((l.kind as u8, l.addr), Item { value: l, loc })),
            Err(why) => report.skip(&loc, format!("lease {addr_text}"), why),
        }
    }
    plan.leases6.extend(keep_last(out, &mut plan.superseded));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_blanked_outside_strings_only() {
        let t = "{ // one\n \"a#b\": \"x//y\", # two\n /* three\n four */ \"c\": 1 }";
        let s = strip_comments(t);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a#b"], "x//y");
        assert_eq!(v["c"], 1);
        assert_eq!(s.lines().count(), t.lines().count());
        let lines = Lines::index(&s);
        assert_eq!(lines["/c"], 4);
        assert_eq!(lines["/a#b"], 2);
    }
}
