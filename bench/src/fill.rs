//! Filling a lease store with synthetic active leases, for benchmarks that need a big store
//! before the server starts (failover resynchronisation, steady state at millions of leases).

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use twinlease::lease::{BindingState, ClientKey, Lease4};
use twinlease::pool::v6::Space6;
use twinlease::pool::{FreeMap, PoolRange};
use twinlease::store;
use twinlease::wal::{Durability, WalOptions};

/// Errors filling a store.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// The pool cannot hold the leases, or is invalid.
    #[error("pool {first}-{last}: {reason}")]
    Pool {
        /// First address.
        first: Ipv4Addr,
        /// Last address.
        last: Ipv4Addr,
        /// Why.
        reason: String,
    },
    /// The store could not be opened or written.
    #[error("lease store: {0}")]
    Store(String),
}

/// Write `n` active leases of subnet 1, addresses `first`, `first + 1`, … (inside the pool
/// `first..=last`), clients with locally administered MACs `02:10:xx:xx:xx:xx`, expiring
/// `lease_time` from now, into a new store of `workers` shards at `data` (as the server
/// would have written them: the same WAL format, made durable).
pub fn fill_store(
    data: &Path,
    workers: usize,
    first: Ipv4Addr,
    last: Ipv4Addr,
    n: u32,
    lease_time: u32,
) -> Result<(), FillError> {
    let pool_err = |reason: String| FillError::Pool {
        first,
        last,
        reason,
    };
    if u64::from(u32::from(last)) + 1 - u64::from(u32::from(first)) < u64::from(n) {
        return Err(pool_err(format!("fewer than {n} addresses")));
    }
    let pool = PoolRange {
        id: 1,
        subnet_id: 1,
        start: first,
        end: last,
    };
    let free = FreeMap::new(&[pool], workers, &|_| false).map_err(|e| pool_err(e.to_string()))?;
    let space6 = Arc::new(
        Space6::new(&[], workers, &[]).map_err(|e| FillError::Store(e.to_string()))?,
    );
    let opts = WalOptions {
        segment_size: 64 << 20,
        durability: Durability::Fsync,
    };
    let (mut stores, _) = store::open(data, workers, opts, &free, &|_| false, &space6)
        .map_err(|e| FillError::Store(e.to_string()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let base = u32::from(first);
    for i in 0..n {
        let b = i.to_be_bytes();
        let mac = [2, 0x10, b[0], b[1], b[2], b[3]];
        let client = ClientKey::from_hw(1, &mac).map_err(|e| FillError::Store(e.to_string()))?;
        let l = Lease4 {
            addr: Ipv4Addr::from(base + i),
            state: BindingState::Active,
            client,
            chaddr: mac,
            subnet_id: 1,
            expires: now + lease_time,
            cltt: now,
            partner_expires: 0,
            update_pending: true,
        };
        stores[client.shard(workers)]
            .append(&l)
            .map_err(|e| FillError::Store(e.to_string()))?;
        if i % 65_536 == 65_535 {
            for s in &mut stores {
                s.wal.commit().map_err(|e| FillError::Store(e.to_string()))?;
            }
        }
    }
    for s in &mut stores {
        s.wal.commit().map_err(|e| FillError::Store(e.to_string()))?;
    }
    Ok(())
}
