//! Protocol logic, pure: given a request, the lease state, the failover state and the time,
//! which reply and which lease change. No I/O happens here.
//!
//! - [`v4`]: DHCPv4 (RFC 2131).
//! - [`v6`]: DHCPv6 (RFC 8415, prefix delegation and RFC 6603 prefix exclude).

pub mod v4;
pub mod v6;
#[doc(hidden)]
pub mod fuzz;

use crate::config::Config;
use crate::pool::PoolRange;

/// Build the DHCPv4 engine and the pool ranges of the free map from a validated configuration.
///
/// Pool ids are assigned in configuration order (subnet by subnet), starting at 1.
#[must_use]
pub fn build_v4(config: &Config) -> (v4::Engine, Vec<PoolRange>) {
    let mut ranges = Vec::new();
    let mut subnets = Vec::with_capacity(config.subnet4.len());
    for s in &config.subnet4 {
        let mut pools = Vec::with_capacity(s.pool.len());
        for p in &s.pool {
            let id = ranges.len() as u32 + 1;
            ranges.push(PoolRange {
                id,
                subnet_id: s.id,
                start: p.start,
                end: p.end,
            });
            pools.push((id, p.start, p.end));
        }
        let mut sub = v4::Subnet {
            id: s.id,
            network: s.subnet.network(),
            prefix_len: s.subnet.prefix_len,
            mask: s.subnet.mask(),
            broadcast: s.broadcast_address(),
            interface: s.interface.clone(),
            relay_addresses: s.relay_addresses.clone(),
            pools,
            lease_time: s.lease_time,
            t1: s.renew_time(),
            t2: s.rebind_time(),
            min_lease: s.min_lease_time.unwrap_or(s.lease_time),
            max_lease: s.max_lease_time.unwrap_or(s.lease_time),
            routers: s.routers.clone(),
            dns_servers: s.dns_servers.clone(),
            domain_name: s.domain_name.as_ref().map(|d| d.as_bytes().to_vec()),
            options: s.option.iter().map(|o| (o.code, o.data.clone())).collect(),
            res_by_hw: std::collections::HashMap::new(),
            res_by_client_id: std::collections::HashMap::new(),
            reserved: Vec::new(),
            rapid_commit: s.rapid_commit,
            server_id: None,
        };
        for r in &s.reservation {
            if let Some(hw) = r.hw_address {
                sub.res_by_hw.insert(hw, r.address);
            }
            if let Some(id) = &r.client_id {
                sub.res_by_client_id.insert(id.clone(), r.address);
            }
            sub.reserved.push(r.address);
        }
        subnets.push(sub);
    }
    let settings = v4::Settings {
        server_id: config.server.server_id,
        offer_hold_secs: config.server.offer_hold_secs,
        decline_probation_secs: config.server.decline_probation_secs,
    };
    (v4::Engine::new(subnets, settings), ranges)
}

/// Build the DHCPv6 engine, answering as `server_duid` (see
/// [`v6::load_or_create_server_duid`]), with the pools of its
/// [`Space6`](crate::pool::v6::Space6) and the reserved addresses and prefixes the space must
/// never allocate dynamically.
///
/// Pool ids are assigned in configuration order, subnet by subnet (its address pools, then
/// its pd-pools), starting at 1. A pd-pool's `excluded-prefix` is not passed to the space: RFC
/// 6603 excludes it from inside every delegated prefix (the engine sends it in
/// `OPTION_PD_EXCLUDE`), so no delegated prefix is withheld for it.
#[must_use]
pub fn build_v6(
    config: &Config,
    server_duid: Vec<u8>,
) -> (
    v6::Engine6,
    Vec<crate::pool::v6::Pool6>,
    Vec<(std::net::Ipv6Addr, u8)>,
) {
    use crate::pool::v6::{Pool6, Pool6Kind};
    let mut pools = Vec::new();
    let mut reserved = Vec::new();
    let mut subnets = Vec::with_capacity(config.subnet6.len());
    for s in &config.subnet6 {
        let mut sub = v6::Subnet6 {
            interface: s.interface.clone(),
            interface_id: s.interface_id.clone(),
            preferred: s.preferred_lifetime,
            valid: s.valid_lifetime,
            t1: s.renew_time(),
            t2: s.rebind_time(),
            rapid_commit: s.rapid_commit,
            dns_servers: s.dns_servers.clone(),
            domain_list: v6::encode_domain_list(&s.domain_search),
            sol_max_rt: s.sol_max_rt,
            information_refresh_time: s.information_refresh_time,
            options: s.option.iter().map(|o| (o.code, o.data.clone())).collect(),
            ..v6::Subnet6::new(s.id, s.prefix.network(), s.prefix.prefix_len)
        };
        for p in &s.pool {
            let id = pools.len() as u32 + 1;
            pools.push(Pool6 {
                id,
                subnet_id: s.id,
                kind: Pool6Kind::Na {
                    start: p.start,
                    end: p.end,
                },
            });
            sub.na_pools.push(id);
        }
        for p in &s.pd_pool {
            let id = pools.len() as u32 + 1;
            pools.push(Pool6 {
                id,
                subnet_id: s.id,
                kind: Pool6Kind::Pd {
                    prefix: p.prefix.network(),
                    prefix_len: p.prefix.prefix_len,
                    delegated_len: p.delegated_len,
                    excluded: None,
                },
            });
            sub.pd_pools.push(v6::PdPool {
                id,
                delegated_len: p.delegated_len,
                excluded: p.excluded.map(|e| (e.network(), e.prefix_len)),
            });
        }
        for r in &s.reservation {
            let prefix = r.prefix.map(|p| (p.network(), p.prefix_len));
            if let Some(a) = r.address {
                reserved.push((a, 128));
            }
            if let Some(p) = prefix {
                reserved.push(p);
            }
            sub.reservations.insert(
                r.duid.clone(),
                v6::Reserved6 {
                    address: r.address,
                    prefix,
                },
            );
        }
        subnets.push(sub);
    }
    let settings = v6::Settings6 {
        offer_hold_secs: config.server.offer_hold_secs,
        decline_probation_secs: config.server.decline_probation_secs,
    };
    (
        v6::Engine6::new(subnets, server_duid, settings),
        pools,
        reserved,
    )
}
