//! `[failover6]`: the DHCPv6 failover relationship (RFC 8156), as written and checked; what it
//! shares with `[failover]` is checked by [`super::relationship`].

use std::net::{Ipv6Addr, SocketAddrV6};

use super::Checker;
use super::relationship::{self, Family, impl_take_shared};
use crate::config::model::Failover6;

/// `[failover6]` as written.
#[derive(Debug, Default, serde::Deserialize)]
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

impl_take_shared!(RawFailover6);

/// A unicast IPv6 address for `field`.
fn unicast6(c: &mut Checker<'_>, field: &str, text: &str) -> Option<Ipv6Addr> {
    let Ok(ip) = text.trim().parse::<Ipv6Addr>() else {
        c.err(field, format!("`{text}` is not an IPv6 address"));
        return None;
    };
    if ip.is_unspecified() || ip.is_multicast() {
        c.err(field, format!("{ip} is not a unicast address"));
        return None;
    }
    Some(ip)
}

const V6: Family<Ipv6Addr> = Family {
    section: "failover6",
    default_unacked: 100,
    unicast: unicast6,
};

pub(super) fn check_failover6(c: &mut Checker<'_>, mut raw: RawFailover6) -> Option<Failover6> {
    let shared = raw.take_shared();
    let r = relationship::check(c, &V6, shared, |c| {
        let address_share = raw.address_share.unwrap_or(50);
        if address_share > 100 {
            c.err("failover6.address-share", "must be 0 to 100 percent");
        }
        address_share
    })?;
    Some(Failover6 {
        name: r.name,
        role: r.role,
        local: SocketAddrV6::new(r.local.0, r.local.1, 0, 0),
        peer: SocketAddrV6::new(r.peer.0, r.peer.1, 0, 0),
        mclt: r.mclt,
        max_response_delay: r.max_response_delay,
        max_unacked_updates: r.max_unacked_updates,
        address_share: r.own,
        auto_partner_down: r.auto_partner_down,
        tls: r.tls,
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
