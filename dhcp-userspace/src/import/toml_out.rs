//! Writes a [`Plan`] as a twinlease TOML configuration, each table with a comment naming the
//! source line it came from.

use std::fmt::Write as _;
use std::path::Path;

use super::{Item, OptValue, Plan, PlanFailover, PlanPool6, PlanSubnet4, PlanSubnet6};

/// A TOML basic string, quoted and escaped.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text safe inside a `#` comment (no line breaks or other control characters).
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|x| q(&x.to_string())).collect();
    format!("[{}]", v.join(", "))
}

fn hex(bytes: &[u8]) -> String {
    let v: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    q(&v.join(":"))
}

fn opt(out: &mut String, v: &OptValue) {
    let _ = match v {
        OptValue::Ips4(ips) => writeln!(out, "ips = {}", list(ips)),
        OptValue::Ips6(ips) => writeln!(out, "ips = {}", list(ips)),
        OptValue::Text(t) => writeln!(out, "text = {}", q(t)),
        OptValue::Hex(b) => writeln!(out, "hex = {}", hex(b)),
        OptValue::U8(n) => writeln!(out, "u8 = {n}"),
        OptValue::U16(n) => writeln!(out, "u16 = {n}"),
        OptValue::U32(n) => writeln!(out, "u32 = {n}"),
    };
}

fn values<T: Clone>(items: &[Item<T>]) -> Vec<T> {
    items.iter().map(|i| i.value.clone()).collect()
}

/// The whole configuration file.
pub(super) fn render(plan: &Plan, data_dir: &Path, workers: usize) -> String {
    let mut out = String::new();
    out.push_str(
        "# Written by `twinlease import`. Check it with `twinlease check-config`.\n\n[server]\n",
    );
    let _ = writeln!(out, "data-dir = {}", q(&data_dir.display().to_string()));
    let _ = writeln!(
        out,
        "# The lease store was written with {workers} shard(s): keep this in step with it."
    );
    let _ = writeln!(out, "workers = {workers}");
    if !plan.interfaces.is_empty() {
        let _ = writeln!(out, "interfaces = {}", list(values(&plan.interfaces)));
    }
    if let Some(p) = plan.decline_probation_secs {
        let _ = writeln!(out, "decline-probation-secs = {p}");
    }
    if let Some(f) = &plan.failover {
        failover(&mut out, f);
    }
    for s in &plan.subnet4 {
        subnet4(&mut out, s);
    }
    for s in &plan.subnet6 {
        subnet6(&mut out, s);
    }
    out
}

fn failover(out: &mut String, f: &Item<PlanFailover>) {
    let v = &f.value;
    let _ = writeln!(
        out,
        "\n# from {}: covers every [[subnet4]]\n[failover]",
        comment(&f.loc.to_string())
    );
    let _ = writeln!(out, "name = {}\nrole = {}", q(&v.name), q(v.role));
    let _ = writeln!(out, "address = {}", q(&v.address.to_string()));
    opt_u32(out, "port", v.port.map(u32::from));
    let _ = writeln!(out, "peer-address = {}", q(&v.peer_address.to_string()));
    opt_u32(out, "peer-port", v.peer_port.map(u32::from));
    opt_u32(out, "mclt", v.mclt);
    opt_u32(out, "max-response-delay", v.max_response_delay);
    opt_u32(out, "max-unacked-updates", v.max_unacked_updates);
    opt_u32(
        out,
        "load-balance-split",
        v.load_balance_split.map(u32::from),
    );
    opt_u32(
        out,
        "load-balance-max-seconds",
        v.load_balance_max_seconds.map(u32::from),
    );
    opt_u32(
        out,
        "max-lease-misbalance",
        v.max_lease_misbalance.map(u32::from),
    );
    opt_u32(out, "auto-partner-down", v.auto_partner_down);
}

fn opt_u32(out: &mut String, key: &str, v: Option<u32>) {
    if let Some(v) = v {
        let _ = writeln!(out, "{key} = {v}");
    }
}

fn subnet4(out: &mut String, s: &PlanSubnet4) {
    let _ = writeln!(out, "\n# from {}\n[[subnet4]]", comment(&s.loc.to_string()));
    let _ = writeln!(out, "id = {}\nsubnet = {}", s.id, q(&s.subnet.to_string()));
    if let Some(i) = &s.interface {
        let _ = writeln!(out, "interface = {}", q(i));
    }
    if !s.relay_addresses.is_empty() {
        let _ = writeln!(
            out,
            "relay-addresses = {}",
            list(values(&s.relay_addresses))
        );
    }
    if !s.routers.is_empty() {
        let _ = writeln!(out, "routers = {}", list(values(&s.routers)));
    }
    if !s.dns_servers.is_empty() {
        let _ = writeln!(out, "dns-servers = {}", list(values(&s.dns_servers)));
    }
    if let Some(d) = &s.domain_name {
        let _ = writeln!(out, "domain-name = {}", q(&d.value));
    }
    if let Some(b) = &s.broadcast_address {
        let _ = writeln!(out, "broadcast-address = {}", q(&b.value.to_string()));
    }
    opt_u32(out, "lease-time", s.lease_time);
    opt_u32(out, "renew-time", s.renew_time);
    opt_u32(out, "rebind-time", s.rebind_time);
    opt_u32(out, "min-lease-time", s.min_lease_time);
    opt_u32(out, "max-lease-time", s.max_lease_time);
    for p in &s.pools {
        let _ = writeln!(
            out,
            "\n# from {}\n[[subnet4.pool]]\nrange = {}",
            comment(&p.loc.to_string()),
            q(&p.value.to_string())
        );
    }
    for r in &s.reservations {
        let _ = writeln!(
            out,
            "\n# from {}\n[[subnet4.reservation]]",
            comment(&r.loc.to_string())
        );
        if let Some(m) = r.value.hw {
            let _ = writeln!(out, "hw-address = {}", hex(&m));
        }
        if let Some(c) = &r.value.client_id {
            let _ = writeln!(out, "client-id = {}", hex(c));
        }
        let _ = writeln!(out, "address = {}", q(&r.value.address.to_string()));
        if let Some(h) = &r.value.hostname {
            let _ = writeln!(out, "hostname = {}", q(h));
        }
    }
    for o in &s.options {
        let _ = writeln!(
            out,
            "\n# {} from {}\n[[subnet4.option]]\ncode = {}",
            comment(&o.value.name),
            comment(&o.loc.to_string()),
            o.value.code
        );
        opt(out, &o.value.value);
    }
}

fn subnet6(out: &mut String, s: &PlanSubnet6) {
    let _ = writeln!(out, "\n# from {}\n[[subnet6]]", comment(&s.loc.to_string()));
    let _ = writeln!(out, "id = {}\nprefix = {}", s.id, q(&s.prefix.to_string()));
    if let Some(i) = &s.interface {
        let _ = writeln!(out, "interface = {}", q(i));
    }
    if let Some(i) = &s.interface_id {
        let _ = writeln!(out, "interface-id = {}", q(i));
    }
    opt_u32(out, "preferred-lifetime", s.preferred_lifetime);
    opt_u32(out, "valid-lifetime", s.valid_lifetime);
    opt_u32(out, "renew-time", s.renew_time);
    opt_u32(out, "rebind-time", s.rebind_time);
    if s.rapid_commit {
        out.push_str("rapid-commit = true\n");
    }
    if !s.dns_servers.is_empty() {
        let _ = writeln!(out, "dns-servers = {}", list(values(&s.dns_servers)));
    }
    if !s.domain_search.is_empty() {
        let _ = writeln!(out, "domain-search = {}", list(values(&s.domain_search)));
    }
    opt_u32(out, "sol-max-rt", s.sol_max_rt);
    opt_u32(out, "information-refresh-time", s.information_refresh_time);
    for p in &s.pools {
        let _ = writeln!(
            out,
            "\n# from {}\n[[subnet6.pool]]",
            comment(&p.loc.to_string())
        );
        let _ = match p.value {
            PlanPool6::Range(a, b) => writeln!(out, "range = {}", q(&format!("{a}-{b}"))),
            PlanPool6::Prefix(n) => writeln!(out, "prefix = {}", q(&n.to_string())),
        };
    }
    for p in &s.pd_pools {
        let _ = writeln!(
            out,
            "\n# from {}\n[[subnet6.pd-pool]]\nprefix = {}\ndelegated-len = {}",
            comment(&p.loc.to_string()),
            q(&p.value.prefix.to_string()),
            p.value.delegated_len
        );
        if let Some(e) = p.value.excluded {
            let _ = writeln!(out, "excluded-prefix = {}", q(&e.to_string()));
        }
    }
    for r in &s.reservations {
        let _ = writeln!(
            out,
            "\n# from {}\n[[subnet6.reservation]]\nduid = {}",
            comment(&r.loc.to_string()),
            hex(&r.value.duid)
        );
        if let Some(a) = r.value.address {
            let _ = writeln!(out, "address = {}", q(&a.to_string()));
        }
        if let Some(p) = r.value.prefix {
            let _ = writeln!(out, "prefix = {}", q(&p.to_string()));
        }
    }
    for o in &s.options {
        let _ = writeln!(
            out,
            "\n# {} from {}\n[[subnet6.option]]\ncode = {}",
            comment(&o.value.name),
            comment(&o.loc.to_string()),
            o.value.code
        );
        opt(out, &o.value.value);
    }
}
