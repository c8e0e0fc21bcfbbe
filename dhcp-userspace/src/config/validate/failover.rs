//! `[failover]`: the DHCPv4 failover relationship (draft-ietf-dhc-failover-12), as written and
//! checked; what it shares with `[failover6]` is checked by [`super::relationship`].

use std::net::{Ipv4Addr, SocketAddrV4};

use super::Checker;
use super::relationship::{self, Family, impl_take_shared};
use crate::config::model::Failover;

/// `[failover]` as written.
#[derive(Debug, Default, serde::Deserialize)]
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

impl_take_shared!(RawFailover);

/// A unicast IPv4 address for `field`.
fn unicast4(c: &mut Checker<'_>, field: &str, text: &str) -> Option<Ipv4Addr> {
    let ip = c.ipv4(field, text)?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        c.err(field, format!("{ip} is not a unicast address"));
        return None;
    }
    Some(ip)
}

const V4: Family<Ipv4Addr> = Family {
    section: "failover",
    default_unacked: 2000,
    unicast: unicast4,
};

pub(super) fn check_failover(c: &mut Checker<'_>, mut raw: RawFailover) -> Option<Failover> {
    let shared = raw.take_shared();
    let r = relationship::check(c, &V4, shared, |c| {
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
        (load_balance_split, max_lease_misbalance)
    })?;
    let (load_balance_split, max_lease_misbalance) = r.own;
    Some(Failover {
        name: r.name,
        role: r.role,
        local: SocketAddrV4::new(r.local.0, r.local.1),
        peer: SocketAddrV4::new(r.peer.0, r.peer.1),
        mclt: r.mclt,
        max_response_delay: r.max_response_delay,
        max_unacked_updates: r.max_unacked_updates,
        load_balance_split,
        load_balance_max_seconds: raw.load_balance_max_seconds.unwrap_or(3),
        max_lease_misbalance,
        auto_partner_down: r.auto_partner_down,
        tls: r.tls,
    })
}
