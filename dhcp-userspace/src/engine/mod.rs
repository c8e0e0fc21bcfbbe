//! Protocol logic, pure: given a request, the lease state, the failover state and the time,
//! which reply and which lease change. No I/O happens here.
//!
//! - [`v4`]: DHCPv4 (RFC 2131).

pub mod v4;

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
