//! [`Shard6`]: one worker's DHCPv6 leases, offers and allocation.

use std::net::Ipv6Addr;
use std::sync::Arc;

use super::space::{Geo, Space6};
use super::table::{Table6, mix64};
use crate::lease::{BindingState, ClientKey, IaKind, Lease6};

/// Hash candidates tried before the cursor scan.
pub(super) const MAX_PROBES: u32 = 32;
/// Partitions of at most this many members are scanned whole when the probes fail, so an
/// allocation in them fails only when the partition is really full.
pub(super) const FULL_SCAN_LIMIT: u128 = 1 << 16;
/// Members a failed allocation scans in a bigger partition (the cursor carries on next time).
pub(super) const SCAN_BUDGET: u128 = 1024;

/// Which members of the pools this server may allocate to new clients: with a DHCPv6
/// failover partner, each server allocates from its own share only (RFC 8156 §4.2). The
/// shares are pure functions of the member, the same on both partners, so nothing about them
/// is stored:
/// - `IA_NA` pools use proportional allocation (RFC 8156 §4.2.2): an address belongs to the
///   primary when a stable hash of it, modulo 100, is below `address_share`;
/// - `IA_PD` pools use independent allocation (RFC 8156 §4.2.1): the first half of the
///   delegatable prefixes (by index in the pool, rounded up) belongs to the primary, the
///   second half to the secondary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Share6 {
    /// Every member: no partner, or PARTNER-DOWN once the MCLT has passed (RFC 8156 §4.2.2).
    #[default]
    Any,
    /// The primary's share.
    Primary {
        /// Percent of each address pool that is the primary's.
        address_share: u8,
    },
    /// The secondary's share.
    Secondary {
        /// Percent of each address pool that is the primary's (the secondary has the rest).
        address_share: u8,
    },
}

impl Share6 {
    /// Whether member `index` (address or prefix `addr`) of a `kind` pool of `count` members
    /// is the primary's, with `address_share` percent of the addresses to the primary.
    #[must_use]
    pub fn primary_owns(
        kind: IaKind,
        addr: u128,
        index: u128,
        count: u128,
        address_share: u8,
    ) -> bool {
        match kind {
            IaKind::Na => {
                let h = mix64((addr >> 64) as u64 ^ mix64(addr as u64 ^ 0x6f66_6f36));
                h % 100 < u64::from(address_share)
            }
            IaKind::Pd => index < count.div_ceil(2),
        }
    }

    /// Whether this share holds member `i` of the pool laid out as `g`.
    pub(super) fn allows(self, g: &Geo, i: u128) -> bool {
        match self {
            Self::Any => true,
            Self::Primary { address_share } => {
                Self::primary_owns(g.kind, g.addr_of(i), i, g.count, address_share)
            }
            Self::Secondary { address_share } => {
                !Self::primary_owns(g.kind, g.addr_of(i), i, g.count, address_share)
            }
        }
    }
}

/// What one [`Shard6::reclaim`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaim6Stats {
    /// Slots looked at (offers and leases).
    pub visited: usize,
    /// Offers whose hold time had passed, dropped.
    pub offers_lapsed: usize,
    /// ACTIVE leases past their valid lifetime, now EXPIRED.
    pub expired: usize,
    /// ABANDONED leases past their probation, now FREE.
    pub abandoned_freed: usize,
}

/// The DHCPv6 leases of the DUIDs one worker owns, its ADVERTISE offers, and allocation from
/// its partition of every pool (see the [module documentation](super)). Owned by one worker:
/// no lock anywhere.
pub struct Shard6 {
    id: usize,
    shards: usize,
    space: Arc<Space6>,
    leases: Table6,
    offers: Table6,
    /// Hold end of the offer in each slot of `offers`.
    hold_until: Vec<u32>,
    /// Per pool (position in the space): next partition-local index of the cursor scan.
    cursors: Vec<u128>,
    lease_cursor: usize,
    offer_cursor: usize,
    /// The members new allocations may take (failover shares, RFC 8156 §4.2).
    share: Share6,
    /// With a failover partner, RELEASED bindings keep their member until the expiry sweep
    /// frees them after the MCLT ([`Self::reclaim_delayed`]).
    hold_ended: bool,
}

impl Shard6 {
    /// Shard `id` of `shards`.
    ///
    /// # Panics
    ///
    /// If `id >= shards` or `shards` differs from the space's [`Space6::shards`] (the
    /// partitions would overlap).
    #[must_use]
    pub fn new(id: usize, shards: usize, space: Arc<Space6>) -> Self {
        assert!(id < shards, "shard {id} of {shards}");
        assert_eq!(
            shards,
            space.shards(),
            "shard count differs from the space's"
        );
        let cursors = vec![0; space.pools().len()];
        Self {
            id,
            shards,
            space,
            leases: Table6::default(),
            offers: Table6::default(),
            hold_until: Vec::new(),
            cursors,
            lease_cursor: 0,
            offer_cursor: 0,
            share: Share6::Any,
            hold_ended: false,
        }
    }

    /// Allocate only from `share` from now on (the failover state decides, RFC 8156 §4.2).
    pub fn set_share(&mut self, share: Share6) {
        self.share = share;
    }

    /// The share allocations come from.
    #[must_use]
    pub fn share(&self) -> Share6 {
        self.share
    }

    /// With a failover partner: RELEASED bindings hold their member until
    /// [`Self::reclaim_delayed`] frees them (RFC 8156 §4.4: not reused within the MCLT).
    pub fn set_hold_ended(&mut self, hold: bool) {
        self.hold_ended = hold;
    }

    /// Whether `addr/prefix_len` (a `kind` member of some pool) is in the primary's share
    /// with `address_share` percent of the addresses ([`Share6`]); `None` outside the pools.
    #[must_use]
    pub fn primary_owns(
        &self,
        kind: IaKind,
        addr: Ipv6Addr,
        prefix_len: u8,
        address_share: u8,
    ) -> Option<bool> {
        let pos = self
            .space
            .position(self.space.pool_of(kind, addr, prefix_len)?)?;
        let g = self.space.geo(pos);
        let i = g.index_of(u128::from(addr), prefix_len)?;
        Some(Share6::primary_owns(
            kind,
            g.addr_of(i),
            i,
            g.count,
            address_share,
        ))
    }

    /// This shard's index.
    #[must_use]
    pub fn id(&self) -> usize {
        self.id
    }

    /// The pools this shard allocates from.
    #[must_use]
    pub fn space(&self) -> &Arc<Space6> {
        &self.space
    }

    /// Allocate from `space` from now on (a configuration reload). Its shard count must be
    /// this shard's; the scan cursors start over.
    ///
    /// # Panics
    ///
    /// If the shard counts differ.
    pub fn set_space(&mut self, space: Arc<Space6>) {
        assert_eq!(
            self.shards,
            space.shards(),
            "shard count differs from the space's"
        );
        self.cursors = vec![0; space.pools().len()];
        self.space = space;
    }

    /// Make room for `n` more lease records without reallocating.
    pub fn reserve(&mut self, n: usize) {
        self.leases.reserve(n);
    }

    /// The lease record of (`kind`, `addr`) (offers are not lease records).
    #[must_use]
    pub fn get(&self, kind: IaKind, addr: Ipv6Addr) -> Option<Lease6> {
        self.leases
            .slot_of(kind, u128::from(addr))
            .map(|s| self.leases.lease(s))
    }

    /// Append to `out` every lease record (any state) of the identity association (`client`,
    /// `iaid`, `kind`) in `subnet_id`, most recently written first.
    pub fn leases_of(
        &self,
        client: &ClientKey,
        iaid: u32,
        kind: IaKind,
        subnet_id: u32,
        out: &mut Vec<Lease6>,
    ) {
        let head = self
            .leases
            .ia_head(client.as_bytes(), iaid, kind, subnet_id);
        out.extend(self.leases.ia_list(head).map(|s| self.leases.lease(s)));
    }

    /// Whether member `i` of the pool at `pos` can be handed out by this shard now.
    fn is_free(&self, g: &Geo, i: u128) -> bool {
        if g.blocked(i) || !self.share.allows(g, i) {
            return false;
        }
        let a = g.addr_of(i);
        if self.leases.slot_of(g.kind, a).is_some_and(|s| {
            let st = self.leases.rec(s).binding_state();
            st.holds_address() || (self.hold_ended && st == BindingState::Released)
        }) {
            return false;
        }
        self.offers.slot_of(g.kind, a).is_none()
    }

    /// A free address or prefix of pool `pool_id` for (`client`, `iaid`), or `None` when the
    /// pool is unknown or this shard's partition of it has no free member found.
    ///
    /// Free: not reserved (nor meeting an `IA_PD` pool's excluded prefix), not bound by a lease
    /// in a holding state (ACTIVE, ABANDONED), not offered, and in this shard's partition.
    /// The `hint` (RFC 8415 §18.2.1, §18.3.1: a client may ask for specific addresses or
    /// prefixes) is returned when it is such a member. Otherwise up to 32
    /// candidates are drawn from a hash of (`client`, `iaid`, pool, attempt) (so a client
    /// tends to get the same member back), then a cursor scans the partition: all of it when
    /// it has at most 2^16 members, else 1024 members from where the last scan
    /// stopped. Never a linear scan of a big pool.
    ///
    /// The member is not held yet: hold it ([`Self::hold_offer`]) or bind it
    /// ([`Self::upsert`]) before allocating again.
    pub fn allocate(
        &mut self,
        pool_id: u32,
        client: &ClientKey,
        iaid: u32,
        hint: Option<(Ipv6Addr, u8)>,
    ) -> Option<(Ipv6Addr, u8)> {
        let space = Arc::clone(&self.space);
        let pos = space.position(pool_id)?;
        let geo = space.geo(pos);
        let nshards = self.shards as u128;
        let own = self.id as u128;
        let member = |i: u128| Some((Ipv6Addr::from(geo.addr_of(i)), geo.len));
        if let Some((a, len)) = hint
            && let Some(i) = geo.index_of(u128::from(a), len)
            && i % nshards == own
            && self.is_free(geo, i)
        {
            return member(i);
        }
        // Members i = k * nshards + own of the partition, k in 0..part.
        if own >= geo.count {
            return None;
        }
        let part = (geo.count - 1 - own) / nshards + 1;
        let seed = client.hash64() ^ mix64(u64::from(iaid) << 32 | u64::from(pool_id));
        for attempt in 0..MAX_PROBES {
            let hash =
                mix64(seed.wrapping_add(u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            let k = if part <= u128::from(u64::MAX) {
                (u128::from(hash) * part) >> 64
            } else {
                (u128::from(mix64(hash ^ 0x5851_f42d_4c95_7f2d)) << 64 | u128::from(hash)) % part
            };
            let i = k * nshards + own;
            if self.is_free(geo, i) {
                return member(i);
            }
        }
        let budget = if part <= FULL_SCAN_LIMIT {
            part
        } else {
            SCAN_BUDGET
        };
        let mut k = self.cursors[pos] % part;
        for _ in 0..budget {
            let i = k * nshards + own;
            k = if k + 1 == part { 0 } else { k + 1 };
            if self.is_free(geo, i) {
                self.cursors[pos] = k;
                return member(i);
            }
        }
        self.cursors[pos] = k;
        None
    }

    /// Hold `lease` as an ADVERTISE offer until `until` (unix seconds): its member is not
    /// allocated to anyone else meanwhile. Not durable, not a lease record (not in
    /// [`Self::iter`]); replaces an offer of the same member.
    pub fn hold_offer(&mut self, lease: Lease6, until: u32) {
        let s = self.offers.upsert(&lease) as usize;
        if self.hold_until.len() <= s {
            self.hold_until.resize(s + 1, 0);
        }
        self.hold_until[s] = until;
    }

    /// The newest offer held for the IA (`client`, `iaid`, `kind`) in `subnet_id`, with its
    /// hold end.
    #[must_use]
    pub fn offer_of(
        &self,
        client: &ClientKey,
        iaid: u32,
        kind: IaKind,
        subnet_id: u32,
    ) -> Option<(Lease6, u32)> {
        let s = self
            .offers
            .ia_head(client.as_bytes(), iaid, kind, subnet_id)?;
        Some((self.offers.lease(s), self.hold_until[s as usize]))
    }

    /// Drop the offer of (`kind`, `addr`), returning it.
    pub fn cancel_offer(&mut self, kind: IaKind, addr: Ipv6Addr) -> Option<Lease6> {
        self.offers.remove(kind, u128::from(addr))
    }

    /// Insert or replace the lease record of (`lease.kind`, `lease.addr`); an offer of the
    /// same member is dropped (the lease supersedes it).
    pub fn upsert(&mut self, lease: Lease6) {
        if self.offers.len() > 0 {
            self.offers.remove(lease.kind, u128::from(lease.addr));
        }
        self.leases.upsert(&lease);
    }

    /// Remove the lease record of (`kind`, `addr`), returning it.
    pub fn remove(&mut self, kind: IaKind, addr: Ipv6Addr) -> Option<Lease6> {
        self.leases.remove(kind, u128::from(addr))
    }

    /// One incremental step of the expiry sweep, visiting at most `budget` slots (half of
    /// them offers while there are offers): offers held until `now` or earlier are dropped;
    /// ACTIVE leases whose valid lifetime ended (`expires <= now`) become EXPIRED (RFC 8415
    /// §18.3.4: the server may then reuse them); ABANDONED leases whose probation ended
    /// become FREE. Successive calls cycle through the whole shard.
    pub fn reclaim(&mut self, now: u32, budget: usize) -> Reclaim6Stats {
        self.reclaim_with(now, budget, &mut |_| {})
    }

    /// [`Self::reclaim`], calling `changed` with each lease record it rewrote (so the worker
    /// can log it and queue it for the partner, RFC 8156 §6). Offers are not reported.
    pub fn reclaim_with(
        &mut self,
        now: u32,
        budget: usize,
        changed: &mut dyn FnMut(&Lease6),
    ) -> Reclaim6Stats {
        self.reclaim_delayed(now, budget, 0, changed)
    }

    /// [`Self::reclaim_with`] for a server with a failover partner (`delay` = the MCLT, not
    /// 0): a binding ends only `delay` seconds after the later of its valid lifetime and what
    /// the partner acknowledged, RELEASED bindings become FREE then too, and every record it
    /// rewrites is marked for an update to the partner (RFC 8156 §4.4: an ended binding's
    /// member waits the MCLT before it can go to another client).
    pub fn reclaim_delayed(
        &mut self,
        now: u32,
        budget: usize,
        delay: u32,
        changed: &mut dyn FnMut(&Lease6),
    ) -> Reclaim6Stats {
        let mut st = Reclaim6Stats::default();
        let offer_budget = if self.offers.len() > 0 {
            budget.div_ceil(2)
        } else {
            0
        };
        for _ in 0..self.offers.slots().min(offer_budget) {
            if self.offer_cursor >= self.offers.slots() {
                self.offer_cursor = 0;
            }
            let s = self.offer_cursor as u32;
            self.offer_cursor += 1;
            st.visited += 1;
            if self.offers.rec(s).is_live() && self.hold_until[s as usize] <= now {
                self.offers.remove_slot(s);
                st.offers_lapsed += 1;
            }
        }
        for _ in 0..self.leases.slots().min(budget - st.visited) {
            if self.lease_cursor >= self.leases.slots() {
                self.lease_cursor = 0;
            }
            let s = self.lease_cursor as u32;
            self.lease_cursor += 1;
            st.visited += 1;
            let r = self.leases.rec(s);
            let end = if delay > 0 {
                r.expires.max(r.partner_expires)
            } else {
                r.expires
            };
            if !r.is_live() || end.saturating_add(delay) > now {
                continue;
            }
            let next = match r.binding_state() {
                BindingState::Active => {
                    st.expired += 1;
                    BindingState::Expired
                }
                BindingState::Abandoned => {
                    st.abandoned_freed += 1;
                    BindingState::Free
                }
                BindingState::Released if delay > 0 => {
                    st.expired += 1;
                    BindingState::Free
                }
                _ => continue,
            };
            let rec = self.leases.rec_mut(s);
            rec.set_binding_state(next);
            if delay > 0 {
                rec.set_update_pending();
            }
            changed(&self.leases.lease(s));
        }
        st
    }

    /// Append to `out` up to `max` lease records from slot `from` on (all of them, or only
    /// those whose change the partner has not acknowledged), for the partner's UPDREQ and
    /// UPDREQALL (RFC 8156 §5.3.5, §5.3.6). Returns the slot to continue from, or `None`
    /// when the whole table was walked.
    pub fn scan(
        &self,
        from: u32,
        max: usize,
        pending_only: bool,
        out: &mut Vec<Lease6>,
    ) -> Option<u32> {
        crate::pool::scan_slots(self.leases.slots(), from, max, out, |s| {
            let r = self.leases.rec(s);
            (r.is_live() && (!pending_only || r.update_pending())).then(|| self.leases.lease(s))
        })
    }

    /// The partner acknowledged (BNDREPLY without error, RFC 8156 §7.6) the update of
    /// (`kind`, `addr`) for `client` sent with client last transaction time `cltt` and
    /// partner lifetime `potential`: remember what the partner knows; the record is no longer
    /// pending unless it changed since. Returns the record as it is now, or `None` when the
    /// member is no longer this client's here.
    pub fn partner_acked(
        &mut self,
        kind: IaKind,
        addr: Ipv6Addr,
        client: &ClientKey,
        cltt: u32,
        potential: u32,
    ) -> Option<Lease6> {
        let s = self.leases.slot_of(kind, u128::from(addr))?;
        let mut l = self.leases.lease(s);
        if l.client != *client {
            return None;
        }
        l.partner_expires = l.partner_expires.max(potential);
        if l.cltt == cltt {
            l.update_pending = false;
        }
        self.leases.upsert(&l);
        Some(l)
    }

    /// Number of lease records (offers not included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether the shard holds no lease record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.leases.len() == 0
    }

    /// Number of offers held.
    #[must_use]
    pub fn offers_len(&self) -> usize {
        self.offers.len()
    }

    /// Every lease record (not the offers), in slot order.
    pub fn iter(&self) -> impl Iterator<Item = Lease6> + '_ {
        self.leases.live_slots().map(|s| self.leases.lease(s))
    }

    /// Approximate heap bytes of the shard (records, indexes, DUID arena, offers).
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.leases.memory_bytes()
            + self.offers.memory_bytes()
            + self.hold_until.capacity() * size_of::<u32>()
            + self.cursors.capacity() * size_of::<u128>()
    }

    /// Check the table invariants (tests only).
    #[cfg(test)]
    pub(super) fn check(&self) {
        self.leases.check();
        self.offers.check();
    }
}
