//! The lease store: every worker's [`Shard`] with its [`Wal`], opened and recovered together.
//!
//! Recovery replays each shard's snapshot and log into its shard, then rebuilds the shared
//! [`FreeMap`] from the records that hold an address (ACTIVE, ABANDONED). Two shards can both
//! hold a record for one address only when a release in one shard and the re-allocation in
//! another were in flight at a crash; the newer binding (later expiry, then later CLTT) wins
//! and the loser is written back as RELEASED, so an address is never bound twice.

use std::net::Ipv4Addr;
use std::path::Path;

use std::sync::Arc;

use crate::lease::{AnyLease, BindingState, Lease4, Lease6, decode_any};
use crate::pool::v6::{Shard6, Space6};
use crate::pool::{FreeMap, Shard};
use crate::wal::{RecoveryReport, Wal, WalError, WalOptions};

/// Errors opening or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write-ahead log of a shard failed.
    #[error("shard {shard}: {source}")]
    Wal {
        /// Shard index.
        shard: usize,
        /// Why.
        #[source]
        source: WalError,
    },
    /// A record in the log does not decode: the store is ambiguous, refuse to start.
    #[error("shard {shard}: undecodable lease record #{index}: {source}")]
    Record {
        /// Shard index.
        shard: usize,
        /// Record number in replay order.
        index: u64,
        /// Why.
        #[source]
        source: crate::lease::LeaseError,
    },
    /// The data directory was written with another number of workers.
    #[error(
        "data directory {dir} holds {found} shard(s) but the configuration asks for {wanted} worker(s); \
         set workers = {found} (changing the worker count of an existing store is not supported yet)"
    )]
    ShardCount {
        /// The data directory.
        dir: String,
        /// Shards found.
        found: usize,
        /// Workers configured.
        wanted: usize,
    },
}

/// One worker's part of the store: its DHCPv4 and DHCPv6 records share one log.
pub struct ShardStore {
    /// The in-memory DHCPv4 records.
    pub shard: Shard,
    /// The in-memory DHCPv6 records.
    pub shard6: Shard6,
    /// Its log.
    pub wal: Wal,
    buf: Box<[u8; Lease6::MAX_ENCODED_LEN]>,
}

impl std::fmt::Debug for ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore")
            .field("v4_leases", &self.shard.len())
            .field("v6_leases", &self.shard6.len())
            .finish_non_exhaustive()
    }
}

impl ShardStore {
    /// Append one changed DHCPv4 record to the log (durable after the next [`Wal::commit`]).
    pub fn append(&mut self, lease: &Lease4) -> Result<(), WalError> {
        let n = lease.encode(&mut self.buf[..]);
        self.wal.append(&self.buf[..n])
    }

    /// Append one changed DHCPv6 record to the log (durable after the next [`Wal::commit`]).
    pub fn append6(&mut self, lease: &Lease6) -> Result<(), WalError> {
        let n = lease.encode(&mut self.buf[..]);
        self.wal.append(&self.buf[..n])
    }
}

/// What opening the store found.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// Each shard's WAL recovery report.
    pub shards: Vec<RecoveryReport>,
    /// Records loaded, all shards.
    pub records: u64,
    /// Addresses bound in two shards, resolved in favour of the newer binding.
    pub conflicts_resolved: u64,
}

/// Count the `shard-*` directories under `data_dir`.
#[must_use]
pub fn existing_shards(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("shard-") && e.path().is_dir())
            .count()
    })
}

/// Open (or create) the store of `workers` shards under `data_dir`, replay it and claim every
/// held address in `free`. `reserved` addresses are never claimed in the free map (they are
/// not in it).
///
/// DHCPv6 records go to the [`Shard6`] of their worker; their addresses and prefixes come from
/// that worker's own partition of `space6`, so no two shards can hold one.
pub fn open(
    data_dir: &Path,
    workers: usize,
    opts: WalOptions,
    free: &FreeMap,
    reserved: &dyn Fn(Ipv4Addr) -> bool,
    space6: &Arc<Space6>,
) -> Result<(Vec<ShardStore>, OpenReport), StoreError> {
    let found = existing_shards(data_dir);
    if found != 0 && found != workers {
        return Err(StoreError::ShardCount {
            dir: data_dir.display().to_string(),
            found,
            wanted: workers,
        });
    }
    let mut report = OpenReport::default();
    let mut stores = Vec::with_capacity(workers);
    for w in 0..workers {
        let mut shard = Shard::new(w, workers);
        let mut shard6 = Shard6::new(w, workers, Arc::clone(space6));
        let mut index = 0u64;
        let mut bad = None;
        let (wal, rep) = Wal::open(data_dir, w as u32, opts, |payload| {
            index += 1;
            if bad.is_some() {
                return;
            }
            match decode_any(payload) {
                Ok(AnyLease::V4(l)) if l.client.shard(workers) == w => shard.upsert(l),
                Ok(AnyLease::V6(l)) if l.client.shard(workers) == w => shard6.upsert(l),
                // Cannot happen with a stable shard count; ignored defensively.
                Ok(_) => {}
                Err(e) => bad = Some((index, e)),
            }
        })
        .map_err(|source| StoreError::Wal { shard: w, source })?;
        if let Some((index, source)) = bad {
            return Err(StoreError::Record {
                shard: w,
                index,
                source,
            });
        }
        report.records += index;
        report.shards.push(rep);
        stores.push(ShardStore {
            shard,
            shard6,
            wal,
            buf: Box::new([0u8; Lease6::MAX_ENCODED_LEN]),
        });
    }

    // Claim every held address; collect the rare double claims.
    let mut conflicts: Vec<(usize, Lease4)> = Vec::new();
    for (w, s) in stores.iter().enumerate() {
        for l in s.shard.iter() {
            if l.state.holds_address()
                && !reserved(l.addr)
                && free.pool_of(l.addr).is_some()
                && !free.try_take(l.addr)
            {
                conflicts.push((w, l));
            }
        }
    }
    for (w, l) in conflicts {
        let holder = stores
            .iter()
            .enumerate()
            .filter(|&(v, _)| v != w)
            .find_map(|(v, s)| {
                s.shard
                    .get_by_addr(l.addr)
                    .filter(|o| o.state.holds_address())
                    .map(|o| (v, o))
            });
        let Some((v, other)) = holder else { continue };
        let (loser_shard, mut loser) = if (l.expires, l.cltt) > (other.expires, other.cltt) {
            (v, other)
        } else {
            (w, l)
        };
        loser.state = BindingState::Released;
        let st = &mut stores[loser_shard];
        st.shard.upsert(loser);
        st.append(&loser).map_err(|source| StoreError::Wal {
            shard: loser_shard,
            source,
        })?;
        st.wal.commit().map_err(|source| StoreError::Wal {
            shard: loser_shard,
            source,
        })?;
        report.conflicts_resolved += 1;
    }
    Ok((stores, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::ClientKey;
    use crate::pool::PoolRange;
    use crate::wal::Durability;

    fn lease(addr: Ipv4Addr, mac: u8, state: BindingState, expires: u32) -> Lease4 {
        Lease4 {
            addr,
            state,
            client: ClientKey::from_hw(1, &[2, 0, 0, 0, 0, mac]).unwrap(),
            chaddr: [2, 0, 0, 0, 0, mac],
            subnet_id: 1,
            expires,
            cltt: expires - 100,
            partner_expires: 0,
            update_pending: false,
        }
    }

    fn pools() -> Vec<PoolRange> {
        vec![PoolRange {
            id: 1,
            subnet_id: 1,
            start: Ipv4Addr::new(10, 0, 0, 10),
            end: Ipv4Addr::new(10, 0, 0, 200),
        }]
    }

    fn space6(shards: usize) -> Arc<Space6> {
        Arc::new(Space6::new(&[], shards, &[]).unwrap())
    }

    const OPTS: WalOptions = WalOptions {
        segment_size: 1 << 16,
        durability: Durability::Fsync,
    };

    #[test]
    fn reopen_restores_records_and_claims() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ipv4Addr::new(10, 0, 0, 10);
        {
            let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
            let (mut st, _) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
            let l = lease(a, 1, BindingState::Active, 5000);
            let w = l.client.shard(2);
            assert!(free.try_take(a));
            st[w].shard.upsert(l);
            st[w].append(&l).unwrap();
            st[w].wal.commit().unwrap();
        }
        let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
        let (st, rep) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
        assert_eq!(rep.records, 1);
        assert!(!free.is_free(a), "held address must be claimed again");
        let total: usize = st.iter().map(|s| s.shard.len()).sum();
        assert_eq!(total, 1);
    }

    #[test]
    fn double_binding_resolved_for_newer() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ipv4Addr::new(10, 0, 0, 11);
        // Find two clients in different shards.
        let c1 = lease(a, 1, BindingState::Active, 5000);
        let c2 = (2..=255u8)
            .map(|m| lease(a, m, BindingState::Active, 9000))
            .find(|l| l.client.shard(2) != c1.client.shard(2))
            .unwrap();
        {
            let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
            let (mut st, _) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
            for l in [c1, c2] {
                let w = l.client.shard(2);
                st[w].shard.upsert(l);
                st[w].append(&l).unwrap();
                st[w].wal.commit().unwrap();
            }
        }
        for _ in 0..2 {
            let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
            let (st, _) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
            let holders: Vec<Lease4> = st
                .iter()
                .filter_map(|s| s.shard.get_by_addr(a))
                .filter(|l| l.state.holds_address())
                .collect();
            assert_eq!(holders.len(), 1, "exactly one binding survives");
            assert_eq!(holders[0].client, c2.client, "the newer binding wins");
        }
    }

    #[test]
    fn v6_records_replay_into_their_shard() {
        use crate::lease::IaKind;
        let dir = tempfile::tempdir().unwrap();
        let duid = ClientKey::from_duid(&[0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
        let l = Lease6 {
            kind: IaKind::Pd,
            addr: "2001:db8:8000:100::".parse().unwrap(),
            prefix_len: 56,
            state: BindingState::Active,
            client: duid,
            iaid: 7,
            subnet_id: 1,
            preferred_until: 3000,
            expires: 4000,
            cltt: 100,
            partner_expires: 0,
            update_pending: false,
        };
        let w = duid.shard(2);
        {
            let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
            let (mut st, _) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
            st[w].shard6.upsert(l);
            st[w].append6(&l).unwrap();
            st[w].wal.commit().unwrap();
        }
        let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
        let (st, rep) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
        assert_eq!(rep.records, 1);
        assert_eq!(st[w].shard6.iter().collect::<Vec<_>>(), vec![l]);
        assert_eq!(st[w].shard6.get(IaKind::Pd, l.addr), Some(l));
    }

    #[test]
    fn shard_count_change_refused() {
        let dir = tempfile::tempdir().unwrap();
        let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
        drop(open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap());
        let free = FreeMap::new(&pools(), 3, &|_| false).unwrap();
        let err = open(dir.path(), 3, OPTS, &free, &|_| false, &space6(3)).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::ShardCount {
                    found: 2,
                    wanted: 3,
                    ..
                }
            ),
            "{err}"
        );
    }
}
