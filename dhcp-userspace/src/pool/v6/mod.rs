//! The DHCPv6 side of the lease store: address (`IA_NA`) and delegated-prefix (`IA_PD`) pools and
//! the per-worker lease shards.
//!
//! - [`Space6`] (`space.rs`): the configured pools, validated and laid out as *indexes*: index
//!   `i` of an `IA_NA` pool is its `i`-th address, index `i` of an `IA_PD` pool its `i`-th aligned
//!   prefix of the delegated length (RFC 8415 §6.3). Immutable, shared by all workers in an
//!   `Arc`. It knows which indexes are never handed out dynamically: addresses and prefixes
//!   reserved for specific DUIDs, and the prefix a pool excludes (RFC 6603 §4.2).
//! - [`Shard6`] (`shard.rs`): the DHCPv6 lease records of the clients one worker owns (those
//!   whose DUID's [`ClientKey::shard`](crate::lease::ClientKey::shard) is the worker's index),
//!   its ADVERTISE offers, allocation, and the incremental expiry sweep.
//! - `table.rs`: the compact 64-byte record (a [`Lease6`](crate::lease::Lease6) is over 300
//!   bytes) with its DUID arena, and the slot table indexed by (kind, address) and by
//!   (DUID, IAID, kind, subnet).
//!
//! # Ownership of the free space without a free map
//!
//! A /64 `IA_NA` pool has 2^64 addresses: no bitmap can describe it. Instead, the index space of
//! every pool is *partitioned* between the shards: shard `w` of `n` may allocate only the
//! indexes `i` with `i % n == w`, so two workers never hand out the same address or prefix,
//! with no lock and no shared state. Whether an index is free is then answered by the owning
//! shard alone: it is free unless reserved or excluded ([`Space6`]), bound by a lease in a
//! holding state (ACTIVE, ABANDONED) or held by an offer in that shard. A candidate is drawn
//! from a hash of (DUID, IAID, attempt), so a client that comes back tends to get the same
//! address (RFC 8415 §18.3.1 lets the server choose; stability helps the client's
//! neighbours), and a bounded number of candidates is tried before a bounded cursor scan.
//!
//! This relies on every lease of partition `w` living in shard `w`: true of every lease the
//! shards allocate themselves. Lease records loaded from elsewhere (a WAL written with another
//! worker count, or a failover partner's binding updates, RFC 8156 §6) must be routed to the
//! shard owning the address's partition, see [`Space6::owner`], or allocation in the owning
//! shard cannot see them.

mod shard;
mod space;
mod table;
#[cfg(test)]
mod tests;

use std::net::Ipv6Addr;

pub use shard::{Reclaim6Stats, Shard6, Share6};
pub use space::Space6;

/// What a DHCPv6 pool hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool6Kind {
    /// Non-temporary addresses (`IA_NA`, RFC 8415 §21.4) from an inclusive range; the range may
    /// be a whole /64 (or larger, up to 2^128 − 1 addresses).
    Na {
        /// First address of the range.
        start: Ipv6Addr,
        /// Last address of the range (inclusive).
        end: Ipv6Addr,
    },
    /// Delegated prefixes (`IA_PD`, RFC 8415 §6.3, §21.22): every aligned prefix of length
    /// `delegated_len` inside `prefix/prefix_len`.
    Pd {
        /// The pool prefix (no bits set past `prefix_len`).
        prefix: Ipv6Addr,
        /// Length of the pool prefix.
        prefix_len: u8,
        /// Length of each delegated prefix, `prefix_len..=128`.
        delegated_len: u8,
        /// A prefix inside the pool that is never delegated: no delegated prefix overlapping
        /// it is handed out (for example the link prefix between the server's relay and the
        /// requesting router, RFC 6603 §1).
        excluded: Option<(Ipv6Addr, u8)>,
    },
}

/// One configured DHCPv6 pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool6 {
    /// Pool id from the configuration (unique among all DHCPv6 pools).
    pub id: u32,
    /// Subnet the pool belongs to.
    pub subnet_id: u32,
    /// Addresses or prefixes.
    pub kind: Pool6Kind,
}

/// Errors building a [`Space6`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Pool6Error {
    /// An address range ends before it starts.
    #[error("pool {id}: empty range {start}-{end}")]
    EmptyRange {
        /// Pool id.
        id: u32,
        /// Configured start.
        start: Ipv6Addr,
        /// Configured end.
        end: Ipv6Addr,
    },
    /// Prefix lengths out of order: `delegated_len` must be in `prefix_len..=128`, and not 0.
    #[error("pool {id}: cannot delegate /{delegated_len} prefixes from a /{prefix_len}")]
    BadLength {
        /// Pool id.
        id: u32,
        /// Configured pool prefix length.
        prefix_len: u8,
        /// Configured delegated length.
        delegated_len: u8,
    },
    /// The pool prefix has bits set past its length.
    #[error("pool {id}: {prefix}/{prefix_len} has bits set past its length")]
    NotAligned {
        /// Pool id.
        id: u32,
        /// Configured prefix.
        prefix: Ipv6Addr,
        /// Configured length.
        prefix_len: u8,
    },
    /// The excluded prefix is not an aligned prefix strictly inside the pool prefix.
    #[error("pool {id}: excluded prefix {prefix}/{len} is not an aligned prefix inside the pool")]
    BadExcluded {
        /// Pool id.
        id: u32,
        /// Configured excluded prefix.
        prefix: Ipv6Addr,
        /// Its length.
        len: u8,
    },
    /// The pool would have 2^128 members (the whole address space), which no count holds.
    #[error("pool {id} spans the whole IPv6 address space")]
    TooLarge {
        /// Pool id.
        id: u32,
    },
    /// Two pools share addresses (whatever their kinds: a delegated prefix must not contain
    /// an address leased to someone else).
    #[error("pools {a} and {b} overlap")]
    Overlap {
        /// One pool id.
        a: u32,
        /// The other pool id.
        b: u32,
    },
    /// Two pools carry the same id.
    #[error("pool id {0} is used twice")]
    DuplicateId(u32),
    /// A reservation's length is above 128 or it has bits set past its length.
    #[error("reservation {prefix}/{len} is not an aligned prefix")]
    BadReservation {
        /// Reserved address or prefix.
        prefix: Ipv6Addr,
        /// Its length.
        len: u8,
    },
    /// Zero shards were asked for.
    #[error("the number of shards must be at least 1")]
    NoShards,
}
