//! [`Space6`]: the validated DHCPv6 pools, as index spaces.

use std::net::Ipv6Addr;

use super::{Pool6, Pool6Error, Pool6Kind};
use crate::lease::IaKind;

/// Mask of the host bits of a prefix of length `len` (0..=128).
fn host_mask(len: u8) -> u128 {
    u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
}

/// A pool laid out as an index space.
#[derive(Debug, Clone)]
pub(super) struct Geo {
    pub(super) kind: IaKind,
    /// Address of index 0.
    pub(super) base: u128,
    /// Last address covered by the pool.
    pub(super) last: u128,
    /// Indexes (addresses or prefixes).
    pub(super) count: u128,
    /// `128 - delegated_len` (0 for addresses): index `i` is `base + (i << shift)`.
    pub(super) shift: u32,
    /// 128, or the delegated length.
    pub(super) len: u8,
    /// Excluded prefix as an address range (RFC 6603).
    excluded: Option<(u128, u128)>,
    /// Sorted, disjoint address ranges never allocated dynamically (reservations and the
    /// excluded prefix) that meet the pool.
    blocked: Vec<(u128, u128)>,
}

impl Geo {
    /// Address of index `i`.
    pub(super) fn addr_of(&self, i: u128) -> u128 {
        self.base + (i << self.shift)
    }

    /// Last address of the member at index `i`.
    fn end_of(&self, i: u128) -> u128 {
        self.addr_of(i) + host_mask(self.len)
    }

    /// Index of the member `addr/len`, if it is one of this pool's members.
    pub(super) fn index_of(&self, addr: u128, len: u8) -> Option<u128> {
        if len != self.len || addr < self.base || addr > self.last {
            return None;
        }
        let off = addr - self.base;
        (off & host_mask(len) == 0).then_some(off >> self.shift)
    }

    /// Whether the member at index `i` meets a reservation or the excluded prefix.
    pub(super) fn blocked(&self, i: u128) -> bool {
        let (a, e) = (self.addr_of(i), self.end_of(i));
        let k = self.blocked.partition_point(|r| r.0 <= e);
        k > 0 && self.blocked[k - 1].1 >= a
    }

    /// Whether `addr/len` meets the excluded prefix.
    fn meets_excluded(&self, addr: u128, len: u8) -> bool {
        self.excluded
            .is_some_and(|(s, e)| s <= addr + host_mask(len) && addr <= e)
    }
}

/// The DHCPv6 pools, validated: the layout of every pool's members, the reservations, and
/// the partition of the members between the shards (see the [module documentation](super)).
///
/// Immutable after [`Space6::new`]; `Send + Sync`, shared by all workers in an `Arc`.
#[derive(Debug)]
pub struct Space6 {
    pools: Vec<Pool6>,
    /// Same order as `pools`.
    geo: Vec<Geo>,
    /// `(id, position)` sorted by id.
    by_id: Vec<(u32, usize)>,
    /// `(first address, last address, position)` sorted by first address; disjoint.
    by_start: Vec<(u128, u128, usize)>,
    shards: usize,
}

// Workers share one `Space6` through an `Arc`.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Space6>();
};

impl Space6 {
    /// Validate `pools` and lay them out for `shards` workers. `reserved` lists addresses
    /// (length 128) and prefixes reserved for specific DUIDs: no member meeting one of them
    /// is ever allocated dynamically (they are bound only through
    /// [`Shard6::upsert`](super::Shard6::upsert) by whoever knows the reservation).
    pub fn new(
        pools: &[Pool6],
        shards: usize,
        reserved: &[(Ipv6Addr, u8)],
    ) -> Result<Self, Pool6Error> {
        if shards == 0 {
            return Err(Pool6Error::NoShards);
        }
        let mut res = Vec::with_capacity(reserved.len());
        for &(prefix, len) in reserved {
            let a = u128::from(prefix);
            if len > 128 || a & host_mask(len) != 0 {
                return Err(Pool6Error::BadReservation { prefix, len });
            }
            res.push((a, a | host_mask(len)));
        }
        let mut geo = Vec::with_capacity(pools.len());
        for p in pools {
            geo.push(Self::layout(p, &res)?);
        }
        let mut by_id: Vec<(u32, usize)> =
            pools.iter().enumerate().map(|(k, p)| (p.id, k)).collect();
        by_id.sort_unstable();
        if let Some(w) = by_id.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Pool6Error::DuplicateId(w[0].0));
        }
        let mut by_start: Vec<(u128, u128, usize)> = geo
            .iter()
            .enumerate()
            .map(|(k, g)| (g.base, g.last, k))
            .collect();
        by_start.sort_unstable();
        if let Some(w) = by_start.windows(2).find(|w| w[1].0 <= w[0].1) {
            return Err(Pool6Error::Overlap {
                a: pools[w[0].2].id,
                b: pools[w[1].2].id,
            });
        }
        Ok(Self {
            pools: pools.to_vec(),
            geo,
            by_id,
            by_start,
            shards,
        })
    }

    /// Check one pool and compute its layout.
    fn layout(p: &Pool6, reserved: &[(u128, u128)]) -> Result<Geo, Pool6Error> {
        let id = p.id;
        let mut g = match p.kind {
            Pool6Kind::Na { start, end } => {
                let (s, e) = (u128::from(start), u128::from(end));
                if e < s {
                    return Err(Pool6Error::EmptyRange { id, start, end });
                }
                let count = (e - s).checked_add(1).ok_or(Pool6Error::TooLarge { id })?;
                Geo {
                    kind: IaKind::Na,
                    base: s,
                    last: e,
                    count,
                    shift: 0,
                    len: 128,
                    excluded: None,
                    blocked: Vec::new(),
                }
            }
            Pool6Kind::Pd {
                prefix,
                prefix_len,
                delegated_len,
                excluded,
            } => {
                if delegated_len == 0 || delegated_len > 128 || delegated_len < prefix_len {
                    return Err(Pool6Error::BadLength {
                        id,
                        prefix_len,
                        delegated_len,
                    });
                }
                let base = u128::from(prefix);
                if base & host_mask(prefix_len) != 0 {
                    return Err(Pool6Error::NotAligned {
                        id,
                        prefix,
                        prefix_len,
                    });
                }
                let bits = u32::from(delegated_len - prefix_len);
                let count = 1u128.checked_shl(bits).filter(|_| bits < 128);
                let count = count.ok_or(Pool6Error::TooLarge { id })?;
                let last = base | host_mask(prefix_len);
                let excluded = match excluded {
                    None => None,
                    Some((x, len)) => {
                        let xa = u128::from(x);
                        if len > 128
                            || len <= prefix_len
                            || xa & host_mask(len) != 0
                            || xa < base
                            || xa > last
                        {
                            return Err(Pool6Error::BadExcluded { id, prefix: x, len });
                        }
                        Some((xa, xa | host_mask(len)))
                    }
                };
                Geo {
                    kind: IaKind::Pd,
                    base,
                    last,
                    count,
                    shift: 128 - u32::from(delegated_len),
                    len: delegated_len,
                    excluded,
                    blocked: Vec::new(),
                }
            }
        };
        let mut blocked: Vec<(u128, u128)> = reserved
            .iter()
            .chain(g.excluded.iter())
            .filter(|&&(s, e)| s <= g.last && e >= g.base)
            .copied()
            .collect();
        blocked.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(blocked.len());
        for (s, e) in blocked {
            match merged.last_mut() {
                Some(m) if s <= m.1.saturating_add(1) => m.1 = m.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        g.blocked = merged;
        Ok(g)
    }

    /// Position of pool `pool_id` in [`Self::pools`].
    pub(super) fn position(&self, pool_id: u32) -> Option<usize> {
        self.by_id
            .binary_search_by_key(&pool_id, |&(id, _)| id)
            .ok()
            .map(|k| self.by_id[k].1)
    }

    /// Layout of the pool at `pos`.
    pub(super) fn geo(&self, pos: usize) -> &Geo {
        &self.geo[pos]
    }

    /// Position and member index of `addr/prefix_len` as a `kind` member of some pool.
    fn locate(&self, kind: IaKind, addr: Ipv6Addr, prefix_len: u8) -> Option<(usize, u128)> {
        let a = u128::from(addr);
        let k = self.by_start.partition_point(|r| r.0 <= a);
        let &(_, last, pos) = self.by_start.get(k.checked_sub(1)?)?;
        let g = &self.geo[pos];
        if a > last || g.kind != kind || g.meets_excluded(a, prefix_len) {
            return None;
        }
        g.index_of(a, prefix_len).map(|i| (pos, i))
    }

    /// The pool `addr/prefix_len` belongs to: for [`IaKind::Na`], an address (`prefix_len`
    /// 128) inside an `IA_NA` range; for [`IaKind::Pd`], a prefix of exactly the pool's
    /// delegated length, aligned, inside the pool prefix and not meeting its excluded prefix
    /// (RFC 6603). Reservations do not matter here: a reserved address is still in its pool.
    #[must_use]
    pub fn pool_of(&self, kind: IaKind, addr: Ipv6Addr, prefix_len: u8) -> Option<u32> {
        self.locate(kind, addr, prefix_len)
            .map(|(pos, _)| self.pools[pos].id)
    }

    /// The shard whose partition holds `addr/prefix_len` (see [`Self::pool_of`]): the only
    /// shard that may allocate it, and so the shard that must hold any lease record of it.
    #[must_use]
    pub fn owner(&self, kind: IaKind, addr: Ipv6Addr, prefix_len: u8) -> Option<usize> {
        self.locate(kind, addr, prefix_len)
            .map(|(_, i)| (i % self.shards as u128) as usize)
    }

    /// Whether `addr/prefix_len` meets a reservation given to [`Self::new`] (or, for a
    /// member of an `IA_PD` pool, its excluded prefix).
    #[must_use]
    pub fn is_reserved(&self, kind: IaKind, addr: Ipv6Addr, prefix_len: u8) -> bool {
        self.locate(kind, addr, prefix_len)
            .is_some_and(|(pos, i)| self.geo[pos].blocked(i))
    }

    /// The configured pools, in configuration order.
    #[must_use]
    pub fn pools(&self) -> &[Pool6] {
        &self.pools
    }

    /// Members of pool `pool_id` that can be leased: addresses, or delegatable prefixes (those
    /// meeting the excluded prefix are not counted; reserved ones are). 0 for an unknown id.
    #[must_use]
    pub fn size(&self, pool_id: u32) -> u128 {
        let Some(pos) = self.position(pool_id) else {
            return 0;
        };
        let g = &self.geo[pos];
        let excluded = g.excluded.map_or(0, |(s, e)| {
            // Delegated prefixes meeting [s, e]: from the one holding s to the one holding e.
            ((e - g.base) >> g.shift) - ((s - g.base) >> g.shift) + 1
        });
        g.count - excluded
    }

    /// Number of shards the members are partitioned between.
    #[must_use]
    pub fn shards(&self) -> usize {
        self.shards
    }
}
