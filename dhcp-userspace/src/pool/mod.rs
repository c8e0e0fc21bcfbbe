//! The lease store's in-memory side, sharded by ownership.
//!
//! - [`FreeMap`] (`freemap.rs`, on top of the lock-free bitmap in `bitmap.rs`): the free
//!   addresses of every configured pool, one bit each, shared by all workers in an `Arc`.
//!   Each shard allocates from its own *home* words first and borrows other shards' words
//!   when its own are exhausted; an address is claimed by one atomic RMW, so it is never
//!   handed out twice.
//! - [`Shard`] (`shard.rs`): the lease records of the clients one worker owns (those whose
//!   [`ClientKey::shard`](crate::lease::ClientKey::shard) is the worker's index), indexed by
//!   address and by (client key, subnet), plus the offers it holds, and the incremental
//!   expiry sweep. Only its worker touches it: no lock on the hot path.
//! - `table.rs` / `record.rs`: the compact record (52 bytes instead of a `Lease4`'s 290) with
//!   its key arena, and the slot table with its two indexes.
//! - `index.rs`: the open-addressing index (8 bytes an entry, prefetchable home bucket) both
//!   indexes use.

mod bitmap;
mod freemap;
mod index;
mod record;
mod shard;
mod table;
pub mod v6;

use std::net::Ipv4Addr;

pub use freemap::{FreeMap, Share};
pub use shard::{ReclaimStats, Shard};

/// One configured address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRange {
    /// Pool id from the configuration (unique).
    pub id: u32,
    /// Subnet the pool belongs to.
    pub subnet_id: u32,
    /// First address of the range.
    pub start: Ipv4Addr,
    /// Last address of the range (inclusive).
    pub end: Ipv4Addr,
}

impl PoolRange {
    /// Number of addresses in the range.
    #[must_use]
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end)).saturating_sub(u64::from(u32::from(self.start))) + 1
    }

    /// Whether the range holds no address (`end < start`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        u32::from(self.end) < u32::from(self.start)
    }

    /// Whether `addr` lies in the range.
    #[must_use]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(self.start)..=u32::from(self.end)).contains(&u32::from(addr))
    }
}

/// The scan of [`Shard::scan`] and [`v6::Shard6::scan`] over a table of `slots` record
/// slots: append to `out` the records `take` gives (`None`: a slot to skip) from slot `from`
/// on, up to `max` of them. Returns the slot to continue from, or `None` when the scan
/// reached the end.
fn scan_slots<L>(
    slots: usize,
    from: u32,
    max: usize,
    out: &mut Vec<L>,
    take: impl Fn(u32) -> Option<L>,
) -> Option<u32> {
    let mut s = from as usize;
    let mut taken = 0;
    while s < slots {
        if taken >= max {
            return Some(s as u32);
        }
        if let Some(l) = take(s as u32) {
            out.push(l);
            taken += 1;
        }
        s += 1;
    }
    None
}

/// Errors building the pool structures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// A range ends before it starts.
    #[error("pool {id}: empty range {start}-{end}")]
    EmptyRange {
        /// Pool id.
        id: u32,
        /// Configured start.
        start: Ipv4Addr,
        /// Configured end.
        end: Ipv4Addr,
    },
    /// Two ranges share addresses.
    #[error("pools {a} and {b} overlap")]
    Overlap {
        /// One pool id.
        a: u32,
        /// The other pool id.
        b: u32,
    },
    /// Two ranges carry the same id.
    #[error("pool id {0} is used twice")]
    DuplicateId(u32),
    /// The pools hold more addresses than [`FreeMap::MAX_ADDRESSES`].
    #[error("pools hold {0} addresses, more than the supported {max}", max = FreeMap::MAX_ADDRESSES)]
    TooManyAddresses(u64),
    /// Zero shards were asked for.
    #[error("the number of shards must be at least 1")]
    NoShards,
}
