//! `[failover]`: the DHCPv4 failover relationship (draft-ietf-dhc-failover-12), as written and
//! checked; what it shares with `[failover6]` is checked by [`super::relationship`].

use std::net::{Ipv4Addr, SocketAddrV4};

use super::Checker;
use super::relationship::{self, Family, raw_section};
use crate::config::model::Failover;

raw_section! {
    /// `[failover]` as written.
    RawFailover {
        load_balance_split: Option<u16>,
        load_balance_max_seconds: Option<u16>,
        max_lease_misbalance: Option<u8>,
    }
}

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
