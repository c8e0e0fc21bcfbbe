//! `[failover6]`: the DHCPv6 failover relationship (RFC 8156), as written and checked.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::PathBuf;

use serde::Deserialize;

use super::Checker;
use crate::config::model::{Failover, Failover6, FailoverRole, FailoverTls};

/// `[failover6]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(super) struct RawFailover6 {
    name: Option<String>,
    role: Option<String>,
    address: Option<String>,
    port: Option<u16>,
    peer_address: Option<String>,
    peer_port: Option<u16>,
    mclt: Option<u32>,
    max_response_delay: Option<u32>,
    max_unacked_updates: Option<u32>,
    address_share: Option<u8>,
    auto_partner_down: Option<u32>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_ca: Option<String>,
    tls_peer_name: Option<String>,
}

/// Longest relationship name accepted (the option could hold more; keep names short).
const MAX_NAME: usize = 64;

fn unicast6(c: &mut Checker<'_>, field: &str, v: Option<String>) -> Option<Ipv6Addr> {
    let Some(t) = v else {
        c.err(field, "missing");
        return None;
    };
    let Ok(ip) = t.trim().parse::<Ipv6Addr>() else {
        c.err(field, format!("`{t}` is not an IPv6 address"));
        return None;
    };
    if ip.is_unspecified() || ip.is_multicast() {
        c.err(field, format!("{ip} is not a unicast address"));
        return None;
    }
    Some(ip)
}

pub(super) fn check_failover6(c: &mut Checker<'_>, raw: RawFailover6) -> Option<Failover6> {
    let errors_before = c.errors.len();
    let name = match raw.name {
        None => {
            c.err(
                "failover6.name",
                "missing: the relationship name both partners share",
            );
            String::new()
        }
        Some(n) if n.is_empty() || n.len() > MAX_NAME => {
            c.err(
                "failover6.name",
                format!("must be 1 to {MAX_NAME} bytes long"),
            );
            n
        }
        Some(n) if n.chars().any(|ch| ch.is_control() || ch == '"') => {
            c.err(
                "failover6.name",
                "must not contain control characters or quotes",
            );
            n
        }
        Some(n) => n,
    };
    let role = match raw.role.as_deref() {
        Some("primary") => FailoverRole::Primary,
        Some("secondary") => FailoverRole::Secondary,
        Some(other) => {
            c.err(
                "failover6.role",
                format!("{other:?} is not a role: use \"primary\" or \"secondary\""),
            );
            FailoverRole::Primary
        }
        None => {
            c.err("failover6.role", "missing: \"primary\" or \"secondary\"");
            FailoverRole::Primary
        }
    };
    let local_ip = unicast6(c, "failover6.address", raw.address);
    let peer_ip = unicast6(c, "failover6.peer-address", raw.peer_address);
    let port = raw.port.unwrap_or(Failover::DEFAULT_PORT);
    let peer_port = raw.peer_port.unwrap_or(Failover::DEFAULT_PORT);
    if port == 0 {
        c.err("failover6.port", "0 is not a port");
    }
    if peer_port == 0 {
        c.err("failover6.peer-port", "0 is not a port");
    }
    if let (Some(l), Some(p)) = (local_ip, peer_ip)
        && l == p
        && port == peer_port
    {
        c.err(
            "failover6.peer-address",
            "the peer is this server's own address and port",
        );
    }
    let mclt = raw.mclt.unwrap_or(3600);
    if mclt == 0 {
        // RFC 8156 §4.4: the MCLT bounds what a partner may not know; 0 would forbid leases.
        c.err("failover6.mclt", "must be at least 1 second");
    }
    let max_response_delay = raw.max_response_delay.unwrap_or(60);
    if max_response_delay < 2 {
        c.err(
            "failover6.max-response-delay",
            "must be at least 2 seconds (CONTACT is sent at a third of it)",
        );
    }
    let max_unacked_updates = raw.max_unacked_updates.unwrap_or(100);
    if max_unacked_updates == 0 || max_unacked_updates > 65_535 {
        c.err("failover6.max-unacked-updates", "must be 1 to 65535");
    }
    let address_share = raw.address_share.unwrap_or(50);
    if address_share > 100 {
        c.err("failover6.address-share", "must be 0 to 100 percent");
    }
    let tls = match (raw.tls_cert, raw.tls_key, raw.tls_ca) {
        (None, None, None) => {
            if raw.tls_peer_name.is_some() {
                c.err(
                    "failover6.tls-peer-name",
                    "given without tls-cert, tls-key and tls-ca",
                );
            }
            None
        }
        (Some(cert), Some(key), Some(ca)) => {
            for (field, v) in [
                ("failover6.tls-cert", &cert),
                ("failover6.tls-key", &key),
                ("failover6.tls-ca", &ca),
            ] {
                if v.is_empty() {
                    c.err(field, "the path is empty");
                }
            }
            Some(FailoverTls {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
                ca: PathBuf::from(ca),
                peer_name: raw.tls_peer_name,
            })
        }
        _ => {
            c.err(
                "failover6.tls-cert",
                "mutual TLS needs all of tls-cert, tls-key and tls-ca",
            );
            None
        }
    };
    if c.errors.len() != errors_before {
        return None;
    }
    Some(Failover6 {
        name,
        role,
        local: SocketAddrV6::new(local_ip?, port, 0, 0),
        peer: SocketAddrV6::new(peer_ip?, peer_port, 0, 0),
        mclt,
        max_response_delay,
        max_unacked_updates,
        address_share,
        auto_partner_down: raw.auto_partner_down.filter(|&s| s > 0),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    const BASE: &str = "[failover6]\nname = \"v6\"\nrole = \"secondary\"\naddress = \"2001:db8::2\"\npeer-address = \"2001:db8::1\"\n";

    #[test]
    fn defaults_and_values() {
        let c = parse(BASE, "t.toml").unwrap();
        let f = c.failover6.unwrap();
        assert_eq!(f.name, "v6");
        assert_eq!(f.role, crate::config::FailoverRole::Secondary);
        assert_eq!(f.local.port(), 647);
        assert_eq!(f.peer.ip().to_string(), "2001:db8::1");
        assert_eq!(f.address_share, 50);
        assert_eq!(f.mclt, 3600);
        let c = parse(&format!("{BASE}address-share = 70\nmclt = 30\n"), "t.toml").unwrap();
        let f = c.failover6.unwrap();
        assert_eq!((f.address_share, f.mclt), (70, 30));
    }

    #[test]
    fn bad_values_are_reported() {
        for (extra, field) in [
            ("address-share = 101\n", "failover6.address-share"),
            ("mclt = 0\n", "failover6.mclt"),
            ("max-unacked-updates = 0\n", "failover6.max-unacked-updates"),
            ("tls-cert = \"/a\"\n", "failover6.tls-cert"),
        ] {
            let e = parse(&format!("{BASE}{extra}"), "t.toml").unwrap_err();
            assert!(e.iter().any(|e| e.field == field), "{extra}: {e}");
        }
        let e = parse(&BASE.replace("2001:db8::1", "192.0.2.1"), "t.toml").unwrap_err();
        assert!(e.iter().any(|e| e.field == "failover6.peer-address"));
    }
}
