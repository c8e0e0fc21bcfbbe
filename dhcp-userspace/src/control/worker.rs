//! The worker's side of the control API: answer one [`CtlOp`] from the worker's own shard.
//!
//! Runs on the worker thread, between batches, with the same exclusive access to the shard
//! and the WAL the packet path has: no lock. Changes are appended and committed before the
//! answer, and only then applied in memory (a failed commit leaves the shard as it was).

use std::collections::BinaryHeap;
use std::net::IpAddr;

use super::{AnyLease, CtlOp, CtlReply, LeaseQuery, MAX_LOOKUP, PageKey, StateCounts};
use crate::lease::{BindingState, ClientKey, IaKind, Lease4, Lease6};
use crate::pool::FreeMap;
use crate::store::ShardStore;

/// Answer `op` from this worker's store. `now` is in unix seconds.
pub(crate) fn serve(store: &mut ShardStore, free: &FreeMap, op: &CtlOp, now: u32) -> CtlReply {
    match op {
        CtlOp::Find(q) => CtlReply::Leases(find(store, q)),
        CtlOp::Page { after, limit } => CtlReply::Leases(page(store, *after, *limit)),
        CtlOp::Counts => counts(store, free),
        CtlOp::Expire(addr) => change(store, free, *addr, now, false),
        CtlOp::Delete(addr) => change(store, free, *addr, now, true),
        // Needs the worker's engine and pools: the worker loop serves it itself.
        CtlOp::Reload(_) => CtlReply::Failed("a reload is served by the worker loop".into()),
    }
}

fn find(store: &ShardStore, q: &LeaseQuery) -> Vec<AnyLease> {
    let mut out = Vec::new();
    match q {
        LeaseQuery::Addr(IpAddr::V4(a)) => {
            out.extend(store.shard.get_by_addr(*a).map(AnyLease::V4));
        }
        LeaseQuery::Addr(IpAddr::V6(a)) => {
            for kind in [IaKind::Na, IaKind::Pd] {
                out.extend(store.shard6.get(kind, *a).map(AnyLease::V6));
            }
        }
        LeaseQuery::Prefix(a, len) => out.extend(
            store
                .shard6
                .get(IaKind::Pd, *a)
                .filter(|l| l.prefix_len == *len)
                .map(AnyLease::V6),
        ),
        LeaseQuery::Mac(m) => out.extend(
            store
                .shard
                .iter()
                .filter(|l| l.chaddr == *m)
                .take(MAX_LOOKUP)
                .map(AnyLease::V4),
        ),
        LeaseQuery::ClientId(id) => {
            if let Ok(key) = ClientKey::from_client_id(id) {
                out.extend(
                    store
                        .shard
                        .iter()
                        .filter(|l| l.client == key)
                        .take(MAX_LOOKUP)
                        .map(AnyLease::V4),
                );
            }
        }
        LeaseQuery::Duid(d) => {
            if let Ok(key) = ClientKey::from_duid(d) {
                out.extend(
                    store
                        .shard6
                        .iter()
                        .filter(|l| l.client == key)
                        .take(MAX_LOOKUP)
                        .map(AnyLease::V6),
                );
            }
        }
    }
    out
}

/// The `limit` smallest listing positions after `after`: one pass over the shard keeping a
/// bounded max-heap of positions (no copy of the records), then the records of those.
fn page(store: &ShardStore, after: Option<PageKey>, limit: usize) -> Vec<AnyLease> {
    let limit = limit.max(1);
    let mut heap: BinaryHeap<PageKey> = BinaryHeap::with_capacity(limit + 1);
    let v4 = store.shard.iter().map(|l| PageKey::V4(u32::from(l.addr)));
    let v6 = store.shard6.iter().map(|l| PageKey::of(&AnyLease::V6(l)));
    for k in v4.chain(v6) {
        if after.is_some_and(|a| k <= a) {
            continue;
        }
        if heap.len() < limit {
            heap.push(k);
        } else if heap.peek().is_some_and(|top| k < *top) {
            heap.pop();
            heap.push(k);
        }
    }
    heap.into_sorted_vec()
        .into_iter()
        .filter_map(|k| match k {
            PageKey::V4(a) => store.shard.get_by_addr(a.into()).map(AnyLease::V4),
            PageKey::Na(a) => store.shard6.get(IaKind::Na, a.into()).map(AnyLease::V6),
            PageKey::Pd(a) => store.shard6.get(IaKind::Pd, a.into()).map(AnyLease::V6),
        })
        .collect()
}

fn counts(store: &ShardStore, free: &FreeMap) -> CtlReply {
    let mut v4: Vec<(u32, StateCounts)> = Vec::new();
    let mut v6: Vec<(u32, StateCounts)> = Vec::new();
    let add = |acc: &mut Vec<(u32, StateCounts)>, pool: u32, state: BindingState| {
        if let Some((_, c)) = acc.iter_mut().find(|(p, _)| *p == pool) {
            c.add(state);
        } else {
            let mut c = StateCounts::default();
            c.add(state);
            acc.push((pool, c));
        }
    };
    for l in store.shard.iter() {
        if let Some(p) = free.pool_of(l.addr) {
            add(&mut v4, p, l.state);
        }
    }
    let space = std::sync::Arc::clone(store.shard6.space());
    for l in store.shard6.iter() {
        if let Some(p) = space.pool_of(l.kind, l.addr, l.prefix_len) {
            add(&mut v6, p, l.state);
        }
    }
    CtlReply::Counts { v4, v6 }
}

/// The record an operator change turns `l` into, or `None` when it does not apply.
fn changed_state(state: BindingState, delete: bool) -> Option<BindingState> {
    match (state, delete) {
        (_, true) | (BindingState::Abandoned, false) => Some(BindingState::Free),
        (BindingState::Active, false) => Some(BindingState::Expired),
        _ => None,
    }
}

fn change(
    store: &mut ShardStore,
    free: &FreeMap,
    addr: IpAddr,
    now: u32,
    delete: bool,
) -> CtlReply {
    let mut v4: Vec<(Lease4, Lease4)> = Vec::new();
    let mut v6: Vec<(Lease6, Lease6)> = Vec::new();
    let mut found = 0;
    match addr {
        IpAddr::V4(a) => {
            if let Some(l) = store.shard.get_by_addr(a) {
                found += 1;
                if let Some(state) = changed_state(l.state, delete) {
                    let mut n = l;
                    n.state = state;
                    n.expires = n.expires.min(now);
                    n.update_pending = !delete;
                    v4.push((l, n));
                }
            }
        }
        IpAddr::V6(a) => {
            for kind in [IaKind::Na, IaKind::Pd] {
                if let Some(l) = store.shard6.get(kind, a) {
                    found += 1;
                    if let Some(state) = changed_state(l.state, delete) {
                        let mut n = l;
                        n.state = state;
                        n.expires = n.expires.min(now);
                        n.preferred_until = n.preferred_until.min(now);
                        n.update_pending = !delete;
                        v6.push((l, n));
                    }
                }
            }
        }
    }
    if v4.is_empty() && v6.is_empty() {
        return CtlReply::Changed {
            changed: Vec::new(),
            found,
        };
    }
    let appended = v4
        .iter()
        .try_for_each(|(_, n)| store.append(n))
        .and_then(|()| v6.iter().try_for_each(|(_, n)| store.append6(n)))
        .and_then(|()| store.wal.commit().map(|_| ()));
    if let Err(e) = appended {
        tracing::error!(%addr, error = %e, "control: write-ahead log write failed; lease unchanged");
        return CtlReply::Failed(format!("write-ahead log: {e}"));
    }
    let mut changed = Vec::with_capacity(v4.len() + v6.len());
    for (old, new) in v4 {
        if delete {
            store.shard.remove(old.addr);
        } else {
            store.shard.upsert(new);
        }
        if old.state.holds_address() {
            free.give_back(old.addr);
        }
        tracing::info!(addr = %old.addr, client = %old.client, from = old.state.name(), delete, "control: lease changed");
        changed.push(AnyLease::V4(if delete { old } else { new }));
    }
    for (old, new) in v6 {
        // DHCPv6 members are free when no record holds them: no free map to update.
        if delete {
            store.shard6.remove(old.kind, old.addr);
        } else {
            store.shard6.upsert(new);
        }
        tracing::info!(addr = %old.addr, client = %old.client, from = old.state.name(), delete, "control: lease changed");
        changed.push(AnyLease::V6(if delete { old } else { new }));
    }
    CtlReply::Changed { changed, found }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolRange;
    use crate::pool::v6::Space6;
    use crate::wal::{Durability, WalOptions};
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn lease(addr: Ipv4Addr, mac: u8, state: BindingState) -> Lease4 {
        Lease4 {
            addr,
            state,
            client: ClientKey::from_client_id(&[1, 2, 0, 0, 0, 0, mac]).unwrap(),
            chaddr: [2, 0, 0, 0, 0, mac],
            subnet_id: 1,
            expires: 9000,
            cltt: 100,
            partner_expires: 0,
            update_pending: false,
        }
    }

    const OPTS: WalOptions = WalOptions {
        segment_size: 1 << 16,
        durability: Durability::Fsync,
    };

    fn pools() -> Vec<PoolRange> {
        vec![PoolRange {
            id: 3,
            subnet_id: 1,
            start: Ipv4Addr::new(10, 0, 0, 10),
            end: Ipv4Addr::new(10, 0, 0, 19),
        }]
    }

    /// One shard holding the leases of `macs` at .10, .11, … (all owned by shard 0 of 1).
    fn setup(dir: &std::path::Path, states: &[BindingState]) -> (Vec<ShardStore>, FreeMap) {
        let free = FreeMap::new(&pools(), 1, &|_| false).unwrap();
        let space = Arc::new(Space6::new(&[], 1, &[]).unwrap());
        let (mut st, _) = crate::store::open(dir, 1, OPTS, &free, &|_| false, &space).unwrap();
        for (i, s) in states.iter().enumerate() {
            let l = lease(Ipv4Addr::new(10, 0, 0, 10 + i as u8), i as u8, *s);
            if s.holds_address() {
                assert!(free.try_take(l.addr));
            }
            st[0].shard.upsert(l);
        }
        (st, free)
    }

    #[test]
    fn expire_frees_and_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ipv4Addr::new(10, 0, 0, 10);
        {
            let (mut st, free) = setup(dir.path(), &[BindingState::Active]);
            assert!(!free.is_free(a));
            let r = serve(&mut st[0], &free, &CtlOp::Expire(a.into()), 500);
            let CtlReply::Changed { changed, found: 1 } = r else {
                panic!("{r:?}")
            };
            let AnyLease::V4(l) = changed[0] else {
                panic!()
            };
            assert_eq!((l.state, l.expires), (BindingState::Expired, 500));
            assert!(free.is_free(a), "expired address is back in the free map");
            assert_eq!(free.free_count(3), 10);
            // Expiring again: found, nothing to change.
            let r = serve(&mut st[0], &free, &CtlOp::Expire(a.into()), 501);
            assert_eq!(
                r,
                CtlReply::Changed {
                    changed: vec![],
                    found: 1
                }
            );
        }
        // Replayed from the WAL as EXPIRED.
        let free = FreeMap::new(&pools(), 1, &|_| false).unwrap();
        let space = Arc::new(Space6::new(&[], 1, &[]).unwrap());
        let (st, _) = crate::store::open(dir.path(), 1, OPTS, &free, &|_| false, &space).unwrap();
        assert_eq!(
            st[0].shard.get_by_addr(a).map(|l| l.state),
            Some(BindingState::Expired)
        );
        assert!(free.is_free(a));
    }

    #[test]
    fn delete_declined_and_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, free) = setup(dir.path(), &[BindingState::Active, BindingState::Abandoned]);
        let b = Ipv4Addr::new(10, 0, 0, 11);
        let r = serve(&mut st[0], &free, &CtlOp::Delete(b.into()), 700);
        assert!(matches!(r, CtlReply::Changed { ref changed, found: 1 } if changed.len() == 1));
        assert!(st[0].shard.get_by_addr(b).is_none());
        assert!(free.is_free(b));
        let r = serve(
            &mut st[0],
            &free,
            &CtlOp::Delete(Ipv4Addr::new(10, 0, 0, 18).into()),
            700,
        );
        assert_eq!(
            r,
            CtlReply::Changed {
                changed: vec![],
                found: 0
            }
        );
    }

    #[test]
    fn find_page_counts() {
        let dir = tempfile::tempdir().unwrap();
        let states = [
            BindingState::Active,
            BindingState::Active,
            BindingState::Released,
            BindingState::Abandoned,
            BindingState::Active,
        ];
        let (mut st, free) = setup(dir.path(), &states);
        let CtlReply::Leases(l) = serve(
            &mut st[0],
            &free,
            &CtlOp::Find(LeaseQuery::Mac([2, 0, 0, 0, 0, 1])),
            0,
        ) else {
            panic!()
        };
        assert_eq!(l.len(), 1);
        let CtlReply::Leases(l) = serve(
            &mut st[0],
            &free,
            &CtlOp::Find(LeaseQuery::ClientId(vec![1, 2, 0, 0, 0, 0, 4])),
            0,
        ) else {
            panic!()
        };
        assert!(matches!(l[..], [AnyLease::V4(x)] if x.addr == Ipv4Addr::new(10, 0, 0, 14)));
        // Pages of two, in address order, without repeats.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let CtlReply::Leases(p) = serve(&mut st[0], &free, &CtlOp::Page { after, limit: 2 }, 0)
            else {
                panic!()
            };
            if p.is_empty() {
                break;
            }
            assert!(p.len() <= 2);
            after = p.last().map(PageKey::of);
            seen.extend(p.iter().map(PageKey::of));
        }
        let want: Vec<PageKey> = (10..15)
            .map(|i| PageKey::V4(u32::from(Ipv4Addr::new(10, 0, 0, i))))
            .collect();
        assert_eq!(seen, want);
        let CtlReply::Counts { v4, v6 } = serve(&mut st[0], &free, &CtlOp::Counts, 0) else {
            panic!()
        };
        assert!(v6.is_empty());
        let c = v4[0].1;
        assert_eq!(v4[0].0, 3);
        assert_eq!((c.active, c.declined, c.released), (3, 1, 1));
    }
}
