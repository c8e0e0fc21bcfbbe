//! What `[failover]` (DHCPv4, draft-ietf-dhc-failover-12) and `[failover6]` (DHCPv6,
//! RFC 8156) check alike: the relationship name, the role, both ends' addresses and ports,
//! the MCLT, max-response-delay, max-unacked-updates, auto-partner-down and mutual TLS.
//! Each section reports its errors under its own name (`failover.mclt`, `failover6.mclt`).

use std::path::PathBuf;

use super::Checker;
use crate::config::model::{Failover, FailoverRole, FailoverTls};

/// Longest relationship name accepted: the option carrying it could hold more (2-byte
/// length), ISC dhcpd's `failover peer "…"` does not bound it; we keep names short and
/// printable.
const MAX_NAME: usize = 64;

/// Implements `take_shared` for a failover section as written (`RawFailover`,
/// `RawFailover6`): takes the settings every relationship has out as a
/// [`RawRelationship`] (the section's own keys stay). The sections themselves are written
/// out as plain structs (tests/docs.rs reads their fields from the source), with the shared
/// keys in the same order: name … max-unacked-updates, the section's own keys, then
/// auto-partner-down and the TLS keys (serde lists the expected keys in this order when one
/// is unknown).
macro_rules! impl_take_shared {
    ($name:ident) => {
        impl $name {
            /// The settings every relationship has, taken out of the section (its own
            /// keys stay).
            fn take_shared(&mut self) -> super::relationship::RawRelationship {
                super::relationship::RawRelationship {
                    name: self.name.take(),
                    role: self.role.take(),
                    address: self.address.take(),
                    port: self.port,
                    peer_address: self.peer_address.take(),
                    peer_port: self.peer_port,
                    mclt: self.mclt,
                    max_response_delay: self.max_response_delay,
                    max_unacked_updates: self.max_unacked_updates,
                    auto_partner_down: self.auto_partner_down,
                    tls_cert: self.tls_cert.take(),
                    tls_key: self.tls_key.take(),
                    tls_ca: self.tls_ca.take(),
                    tls_peer_name: self.tls_peer_name.take(),
                }
            }
        }
    };
}
pub(super) use impl_take_shared;

/// The settings every failover relationship has, as written.
#[derive(Debug)]
pub(super) struct RawRelationship {
    pub(super) name: Option<String>,
    pub(super) role: Option<String>,
    pub(super) address: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) peer_address: Option<String>,
    pub(super) peer_port: Option<u16>,
    pub(super) mclt: Option<u32>,
    pub(super) max_response_delay: Option<u32>,
    pub(super) max_unacked_updates: Option<u32>,
    pub(super) auto_partner_down: Option<u32>,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
    pub(super) tls_ca: Option<String>,
    pub(super) tls_peer_name: Option<String>,
}

/// What differs between the sections in the shared settings.
pub(super) struct Family<A> {
    /// The section's name, the start of every error's field (`failover`, `failover6`).
    pub(super) section: &'static str,
    /// max-unacked-updates when the section does not say.
    pub(super) default_unacked: u32,
    /// Parse `text`, a local or peer address, and check it is unicast; an error is reported
    /// for `field`.
    pub(super) unicast: fn(&mut Checker<'_>, &str, &str) -> Option<A>,
}

/// A relationship's shared settings, checked (addresses `A` of the family), with the
/// section's own (`T`).
#[derive(Debug)]
pub(super) struct Relationship<A, T> {
    pub(super) name: String,
    pub(super) role: FailoverRole,
    /// This server's address and port.
    pub(super) local: (A, u16),
    /// The partner's address and port.
    pub(super) peer: (A, u16),
    pub(super) mclt: u32,
    pub(super) max_response_delay: u32,
    pub(super) max_unacked_updates: u32,
    /// Seconds in COMMUNICATIONS-INTERRUPTED before PARTNER-DOWN; `None` when 0 or not given.
    pub(super) auto_partner_down: Option<u32>,
    pub(super) tls: Option<FailoverTls>,
    /// The section's own settings, as `own` checked them.
    pub(super) own: T,
}

/// Check the shared settings of a section, then (`own`) its own, then mutual TLS, reporting
/// every error in that order. `None` when anything in the section was wrong.
pub(super) fn check<A: Copy + PartialEq, T>(
    c: &mut Checker<'_>,
    family: &Family<A>,
    raw: RawRelationship,
    own: impl FnOnce(&mut Checker<'_>) -> T,
) -> Option<Relationship<A, T>> {
    let errors_before = c.errors.len();
    let section = family.section;
    let field = |key: &str| format!("{section}.{key}");
    let name = match raw.name {
        None => {
            c.err(
                field("name"),
                "missing: the relationship name both partners share",
            );
            String::new()
        }
        Some(n) if n.is_empty() || n.len() > MAX_NAME => {
            c.err(field("name"), format!("must be 1 to {MAX_NAME} bytes long"));
            n
        }
        Some(n) if n.chars().any(|ch| ch.is_control() || ch == '"') => {
            c.err(
                field("name"),
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
                field("role"),
                format!("{other:?} is not a role: use \"primary\" or \"secondary\""),
            );
            FailoverRole::Primary
        }
        None => {
            c.err(field("role"), "missing: \"primary\" or \"secondary\"");
            FailoverRole::Primary
        }
    };
    let addr = |c: &mut Checker<'_>, key: &str, v: Option<String>| {
        let key = field(key);
        let Some(t) = v else {
            c.err(key, "missing");
            return None;
        };
        (family.unicast)(c, &key, &t)
    };
    let local_ip = addr(c, "address", raw.address);
    let peer_ip = addr(c, "peer-address", raw.peer_address);
    let port = raw.port.unwrap_or(Failover::DEFAULT_PORT);
    let peer_port = raw.peer_port.unwrap_or(Failover::DEFAULT_PORT);
    if port == 0 {
        c.err(field("port"), "0 is not a port");
    }
    if peer_port == 0 {
        c.err(field("peer-port"), "0 is not a port");
    }
    if let (Some(l), Some(p)) = (local_ip, peer_ip)
        && l == p
        && port == peer_port
    {
        c.err(
            field("peer-address"),
            "the peer is this server's own address and port",
        );
    }
    let mclt = raw.mclt.unwrap_or(3600);
    if mclt == 0 {
        // draft-12 §5.2.1, RFC 8156 §4.4: the MCLT bounds what a partner may not know; 0
        // would forbid leases.
        c.err(field("mclt"), "must be at least 1 second");
    }
    let max_response_delay = raw.max_response_delay.unwrap_or(60);
    if max_response_delay < 2 {
        c.err(
            field("max-response-delay"),
            "must be at least 2 seconds (CONTACT is sent at a third of it)",
        );
    }
    let max_unacked_updates = raw.max_unacked_updates.unwrap_or(family.default_unacked);
    if max_unacked_updates == 0 || max_unacked_updates > 65_535 {
        c.err(field("max-unacked-updates"), "must be 1 to 65535");
    }
    let own = own(c);
    let tls = match (raw.tls_cert, raw.tls_key, raw.tls_ca) {
        (None, None, None) => {
            if raw.tls_peer_name.is_some() {
                c.err(
                    field("tls-peer-name"),
                    "given without tls-cert, tls-key and tls-ca",
                );
            }
            None
        }
        (Some(cert), Some(key), Some(ca)) => {
            for (key_name, v) in [("tls-cert", &cert), ("tls-key", &key), ("tls-ca", &ca)] {
                if v.is_empty() {
                    c.err(field(key_name), "the path is empty");
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
                field("tls-cert"),
                "mutual TLS needs all of tls-cert, tls-key and tls-ca",
            );
            None
        }
    };
    if c.errors.len() != errors_before {
        return None;
    }
    Some(Relationship {
        name,
        role,
        local: (local_ip?, port),
        peer: (peer_ip?, peer_port),
        mclt,
        max_response_delay,
        max_unacked_updates,
        auto_partner_down: raw.auto_partner_down.filter(|&s| s > 0),
        tls,
        own,
    })
}
