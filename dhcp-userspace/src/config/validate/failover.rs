//! `[failover]`: the DHCPv4 failover relationship (draft-ietf-dhc-failover-12), as written and
//! checked.

use std::net::SocketAddrV4;
use std::path::PathBuf;

use serde::Deserialize;

use super::Checker;
use crate::config::model::{Failover, FailoverRole, FailoverTls};

/// `[failover]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(super) struct RawFailover {
    name: Option<String>,
    role: Option<String>,
    address: Option<String>,
    port: Option<u16>,
    peer_address: Option<String>,
    peer_port: Option<u16>,
    mclt: Option<u32>,
    max_response_delay: Option<u32>,
    max_unacked_updates: Option<u32>,
    load_balance_split: Option<u16>,
    load_balance_max_seconds: Option<u16>,
    max_lease_misbalance: Option<u8>,
    auto_partner_down: Option<u32>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_ca: Option<String>,
    tls_peer_name: Option<String>,
}

/// Longest relationship name ISC dhcpd accepts in its `failover peer "…"` statement is not
/// bounded, but the option carrying it is (2-byte length); we keep names short and printable.
const MAX_NAME: usize = 64;

pub(super) fn check_failover(c: &mut Checker<'_>, raw: RawFailover) -> Option<Failover> {
    let errors_before = c.errors.len();
    let name = match raw.name {
        None => {
            c.err(
                "failover.name",
                "missing: the relationship name both partners share",
            );
            String::new()
        }
        Some(n) if n.is_empty() || n.len() > MAX_NAME => {
            c.err(
                "failover.name",
                format!("must be 1 to {MAX_NAME} bytes long"),
            );
            n
        }
        Some(n) if n.chars().any(|ch| ch.is_control() || ch == '"') => {
            c.err(
                "failover.name",
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
                "failover.role",
                format!("{other:?} is not a role: use \"primary\" or \"secondary\""),
            );
            FailoverRole::Primary
        }
        None => {
            c.err("failover.role", "missing: \"primary\" or \"secondary\"");
            FailoverRole::Primary
        }
    };
    let addr = |c: &mut Checker<'_>, field: &str, v: Option<String>| match v {
        None => {
            c.err(field, "missing");
            None
        }
        Some(t) => {
            let ip = c.ipv4(field, &t)?;
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                c.err(field, format!("{ip} is not a unicast address"));
                return None;
            }
            Some(ip)
        }
    };
    let local_ip = addr(c, "failover.address", raw.address);
    let peer_ip = addr(c, "failover.peer-address", raw.peer_address);
    let port = raw.port.unwrap_or(Failover::DEFAULT_PORT);
    let peer_port = raw.peer_port.unwrap_or(Failover::DEFAULT_PORT);
    if port == 0 {
        c.err("failover.port", "0 is not a port");
    }
    if peer_port == 0 {
        c.err("failover.peer-port", "0 is not a port");
    }
    if let (Some(l), Some(p)) = (local_ip, peer_ip)
        && l == p
        && port == peer_port
    {
        c.err(
            "failover.peer-address",
            "the peer is this server's own address and port",
        );
    }
    let mclt = raw.mclt.unwrap_or(3600);
    if mclt == 0 {
        // draft-12 §5.2.1: the MCLT bounds what a partner may not know; 0 would forbid leases.
        c.err("failover.mclt", "must be at least 1 second");
    }
    let max_response_delay = raw.max_response_delay.unwrap_or(60);
    if max_response_delay < 2 {
        c.err(
            "failover.max-response-delay",
            "must be at least 2 seconds (CONTACT is sent at a third of it)",
        );
    }
    let max_unacked_updates = raw.max_unacked_updates.unwrap_or(2000);
    if max_unacked_updates == 0 || max_unacked_updates > 65_535 {
        c.err("failover.max-unacked-updates", "must be 1 to 65535");
    }
    let load_balance_split = raw.load_balance_split.unwrap_or(128);
    if load_balance_split > 256 {
        c.err(
            "failover.load-balance-split",
            "must be 0 to 256 (RFC 3074 hash buckets the primary answers)",
        );
    }
    let max_lease_misbalance = raw.max_lease_misbalance.unwrap_or(15);
    if max_lease_misbalance > 50 {
        c.err("failover.max-lease-misbalance", "must be 0 to 50 percent");
    }
    let tls = match (raw.tls_cert, raw.tls_key, raw.tls_ca) {
        (None, None, None) => {
            if raw.tls_peer_name.is_some() {
                c.err(
                    "failover.tls-peer-name",
                    "given without tls-cert, tls-key and tls-ca",
                );
            }
            None
        }
        (Some(cert), Some(key), Some(ca)) => {
            for (field, v) in [
                ("failover.tls-cert", &cert),
                ("failover.tls-key", &key),
                ("failover.tls-ca", &ca),
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
                "failover.tls-cert",
                "mutual TLS needs all of tls-cert, tls-key and tls-ca",
            );
            None
        }
    };
    if c.errors.len() != errors_before {
        return None;
    }
    Some(Failover {
        name,
        role,
        local: SocketAddrV4::new(local_ip?, port),
        peer: SocketAddrV4::new(peer_ip?, peer_port),
        mclt,
        max_response_delay,
        max_unacked_updates,
        load_balance_split,
        load_balance_max_seconds: raw.load_balance_max_seconds.unwrap_or(3),
        max_lease_misbalance,
        auto_partner_down: raw.auto_partner_down.filter(|&s| s > 0),
        tls,
    })
}
