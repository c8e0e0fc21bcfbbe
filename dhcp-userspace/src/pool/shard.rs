//! [`Shard`]: the lease records, offers and expiry sweep of the clients one worker owns.
//!
//! Two tables of compact records:
//!
//! - **leases**: one record per address the shard's clients hold or held (any binding
//!   state). These are what the WAL and the snapshot carry.
//! - **offers**: addresses held for a client between DHCPOFFER and DHCPREQUEST
//!   (RFC 2131 §4.3.1: the server "need not" reserve the offered address, we do for a
//!   bounded hold). An offer is not a binding and is never written to the WAL.
//!
//! Address ownership contract with the [`FreeMap`]: the engine claims an address
//! (`take_free`/`try_take`) before [`Shard::hold_offer`] or before binding it. A held offer
//! keeps the claim until it is turned into a binding by [`Shard::upsert`] of the same address
//! (the binding inherits the claim) or until its hold lapses, when [`Shard::reclaim`] gives
//! the address back. An offer superseded by a newer record of the same client at another
//! address is hidden at once and gives its address back when its hold lapses.

use std::net::Ipv4Addr;

use super::FreeMap;
use super::record::F_MARK;
use super::table::Table;
use crate::lease::{BindingState, ClientKey, Lease4};

/// What one [`Shard::reclaim`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimStats {
    /// Record slots looked at (leases and offers), at most the budget.
    pub visited: usize,
    /// Offers whose hold lapsed: dropped, address given back.
    pub offers_lapsed: usize,
    /// ACTIVE leases past their expiry: now EXPIRED, address given back.
    pub expired: usize,
    /// ABANDONED leases past the end of probation: now FREE, address given back.
    pub abandoned_freed: usize,
}

/// The leases, offers and indexes of one worker's clients. Owned by that worker alone.
pub struct Shard {
    id: usize,
    shards: usize,
    leases: Table,
    /// Held offers; the record's `expires` is the offered lease's, the hold end is in
    /// `hold_until` (same slot numbers). `F_MARK` on a record: superseded (hidden).
    offers: Table,
    hold_until: Vec<u32>,
    /// Next lease slot the expiry sweep looks at.
    lease_cursor: usize,
    /// Next offer slot the expiry sweep looks at.
    offer_cursor: usize,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .field("shards", &self.shards)
            .field("leases", &self.leases.len())
            .field("offers", &self.offers.len())
            .finish_non_exhaustive()
    }
}

impl Shard {
    /// Shard `id` of `shards`.
    #[must_use]
    pub fn new(id: usize, shards: usize) -> Self {
        Self::with_capacity(id, shards, 0)
    }

    /// Shard `id` of `shards` with room for `leases` lease records before any reallocation
    /// (e.g. pool size / shards, to avoid growth doubling the record vector).
    #[must_use]
    pub fn with_capacity(id: usize, shards: usize, leases: usize) -> Self {
        debug_assert!(id < shards, "shard {id} of {shards}");
        let mut t = Table::new();
        t.reserve(leases);
        Self {
            id,
            shards,
            leases: t,
            offers: Table::new(),
            hold_until: Vec::new(),
            lease_cursor: 0,
            offer_cursor: 0,
        }
    }

    /// This shard's index.
    #[must_use]
    pub fn id(&self) -> usize {
        self.id
    }

    /// Whether this shard owns `key` (`key.shard(shards) == id`).
    #[must_use]
    pub fn owns(&self, key: &ClientKey) -> bool {
        key.shard(self.shards) == self.id
    }

    /// The visible offer in `slot` of the offer table, if that slot holds one.
    fn visible_offer(&self, slot: u32) -> bool {
        self.offers.rec(slot).flags & F_MARK == 0
    }

    /// Batch hint: start loading the index bucket that a lookup ([`Self::get_by_client`],
    /// [`Self::lease_of`], [`Self::offer_of`]) or an upsert for (`key`, `subnet_id`) will
    /// read, without waiting for it. A worker handling a batch of requests calls this for
    /// every request first, then does the real work: the cache misses of the whole batch then
    /// overlap instead of following one another. Changes nothing; costs one hash.
    pub fn prefetch_client(&self, key: &ClientKey, subnet_id: u32) {
        let h = Table::client_hash(key.as_bytes(), subnet_id);
        self.leases.prefetch_client_hash(h);
        if self.offers.len() > 0 {
            self.offers.prefetch_client_hash(h);
        }
    }

    /// Batch hint, second stage: once [`Self::prefetch_client`] has brought the client's
    /// index bucket in (e.g. after it was called for the whole batch), start loading the
    /// client's lease record itself. Changes nothing.
    pub fn prefetch_client_record(&self, key: &ClientKey, subnet_id: u32) {
        let h = Table::client_hash(key.as_bytes(), subnet_id);
        self.leases.prefetch_client_record(h);
    }

    /// Batch hint: start loading the index bucket that [`Self::get_by_addr`],
    /// [`Self::remove`] or an upsert of `addr` will read. Changes nothing.
    pub fn prefetch_addr(&self, addr: Ipv4Addr) {
        let a = u32::from(addr);
        self.leases.prefetch_addr(a);
        if self.offers.len() > 0 {
            self.offers.prefetch_addr(a);
        }
    }

    /// The record of `addr`: the offer holding it if any, else its lease record.
    #[must_use]
    pub fn get_by_addr(&self, addr: Ipv4Addr) -> Option<Lease4> {
        let a = u32::from(addr);
        if let Some(s) = self
            .offers
            .slot_of_addr(a)
            .filter(|&s| self.visible_offer(s))
        {
            return Some(self.offers.lease(s));
        }
        self.leases.slot_of_addr(a).map(|s| self.leases.lease(s))
    }

    /// The client's most recent record in that subnet: its held offer if it has one (an
    /// offer made after its last lease record), else the lease record written last (any
    /// state: active, released, expired…).
    #[must_use]
    pub fn get_by_client(&self, key: &ClientKey, subnet_id: u32) -> Option<Lease4> {
        let k = key.as_bytes();
        if let Some(s) = self.offers.slot_of_client(k, subnet_id) {
            return Some(self.offers.lease(s));
        }
        self.leases
            .slot_of_client(k, subnet_id)
            .map(|s| self.leases.lease(s))
    }

    /// The client's lease record written last in that subnet, ignoring offers.
    #[must_use]
    pub fn lease_of(&self, key: &ClientKey, subnet_id: u32) -> Option<Lease4> {
        self.leases
            .slot_of_client(key.as_bytes(), subnet_id)
            .map(|s| self.leases.lease(s))
    }

    /// The address held for the client in that subnet and the end of the hold (unix secs).
    #[must_use]
    pub fn offer_of(&self, key: &ClientKey, subnet_id: u32) -> Option<(Ipv4Addr, u32)> {
        self.offers
            .slot_of_client(key.as_bytes(), subnet_id)
            .map(|s| (self.offers.rec(s).ip(), self.hold_until[s as usize]))
    }

    /// Insert or replace the lease record of `lease.addr`. It becomes the client's latest
    /// record in its subnet; a previous holder of the address (another client) no longer
    /// finds it through [`Self::get_by_client`]. An offer holding the same address is
    /// dropped (the binding inherits its claim on the address); an offer the client holds at
    /// another address is superseded (hidden; its address returns when the hold lapses).
    pub fn upsert(&mut self, lease: Lease4) {
        debug_assert!(
            self.owns(&lease.client),
            "{} is not owned by shard {}",
            lease.client,
            self.id
        );
        if self.offers.len() > 0 {
            if let Some(s) = self.offers.slot_of_addr(u32::from(lease.addr)) {
                self.offers.remove_slot(s);
            }
            if let Some(s) = self
                .offers
                .slot_of_client(lease.client.as_bytes(), lease.subnet_id)
            {
                self.offers.unlink_client(s);
                self.offers.rec_mut(s).flags |= F_MARK;
            }
        }
        self.leases.upsert(&lease);
    }

    /// Remove the lease record of `addr` (offers are untouched, see [`Self::cancel_offer`]).
    /// The caller gives the address back to the [`FreeMap`] if it held it.
    pub fn remove(&mut self, addr: Ipv4Addr) -> Option<Lease4> {
        let s = self.leases.slot_of_addr(u32::from(addr))?;
        Some(self.leases.remove_slot(s))
    }

    /// Hold `lease.addr` for `lease.client` until `until` (unix secs). Replaces any offer of
    /// the same address; an offer the client holds at another address is superseded.
    pub fn hold_offer(&mut self, lease: Lease4, until: u32) {
        debug_assert!(
            self.owns(&lease.client),
            "{} is not owned by shard {}",
            lease.client,
            self.id
        );
        let key = lease.client.as_bytes();
        if let Some(s) = self.offers.slot_of_client(key, lease.subnet_id)
            && self.offers.rec(s).addr != u32::from(lease.addr)
        {
            self.offers.unlink_client(s);
            self.offers.rec_mut(s).flags |= F_MARK;
        }
        let s = self.offers.upsert(&lease) as usize;
        self.offers.rec_mut(s as u32).flags &= !F_MARK;
        if s >= self.hold_until.len() {
            self.hold_until.resize(s + 1, 0);
        }
        self.hold_until[s] = until;
    }

    /// Drop the offer holding `addr` without giving the address back (the caller decides).
    pub fn cancel_offer(&mut self, addr: Ipv4Addr) -> Option<Lease4> {
        let s = self.offers.slot_of_addr(u32::from(addr))?;
        Some(self.offers.remove_slot(s))
    }

    /// Background expiry: visit at most `budget` record slots, continuing where the previous
    /// call stopped (an incremental sweep: each call costs O(budget), and every record is
    /// seen once per `slots / budget` calls). Half the budget (at least one slot) goes to the
    /// offers when there are any.
    ///
    /// - an offer past its hold: dropped, address given back;
    /// - ACTIVE past its expiry: EXPIRED, address given back; the record stays, so the
    ///   client can get its last address again while it is free (RFC 2131 §4.3.1);
    /// - ABANDONED past its probation end: FREE, address given back
    ///   (draft-ietf-dhc-failover-12 §5.2.1 ABANDONED).
    pub fn reclaim(&mut self, now: u32, budget: usize, free: &FreeMap) -> ReclaimStats {
        self.reclaim_with(now, budget, free, &mut |_| {})
    }

    /// [`Self::reclaim`], calling `changed` with each lease record it rewrote (so the worker
    /// can log it and queue it for the partner). Offers are not reported.
    pub fn reclaim_with(
        &mut self,
        now: u32,
        budget: usize,
        free: &FreeMap,
        changed: &mut dyn FnMut(&Lease4),
    ) -> ReclaimStats {
        self.reclaim_delayed(now, budget, free, 0, changed)
    }

    /// [`Self::reclaim_with`] for a server with a failover partner: an address whose binding
    /// ended is given back only `delay` (the MCLT) seconds after the end, because the partner
    /// may have extended the binding by up to the MCLT without our knowing yet
    /// (draft-ietf-dhc-failover-12 §5.2.1). A RELEASED record keeps its address bit until
    /// then (the engine does not give it back on release when a partner exists) and becomes
    /// FREE. With `delay` 0 this is exactly [`Self::reclaim_with`].
    pub fn reclaim_delayed(
        &mut self,
        now: u32,
        budget: usize,
        free: &FreeMap,
        delay: u32,
        changed: &mut dyn FnMut(&Lease4),
    ) -> ReclaimStats {
        let mut st = ReclaimStats::default();
        let offer_budget = if self.offers.len() > 0 {
            budget.div_ceil(2)
        } else {
            0
        };
        let n = self.offers.slots().min(offer_budget);
        for _ in 0..n {
            if self.offer_cursor >= self.offers.slots() {
                self.offer_cursor = 0;
            }
            let s = self.offer_cursor as u32;
            self.offer_cursor += 1;
            st.visited += 1;
            if self.offers.rec(s).is_live() && self.hold_until[s as usize] <= now {
                let l = self.offers.remove_slot(s);
                free.give_back(l.addr);
                st.offers_lapsed += 1;
            }
        }
        let n = self.leases.slots().min(budget - st.visited);
        for _ in 0..n {
            if self.lease_cursor >= self.leases.slots() {
                self.lease_cursor = 0;
            }
            let s = self.lease_cursor as u32;
            self.lease_cursor += 1;
            st.visited += 1;
            let r = self.leases.rec(s);
            // With a partner the binding may have been extended up to the MCLT past what
            // the partner acknowledged (or told us): the later of the two bounds it.
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
            let addr = r.ip();
            let rec = self.leases.rec_mut(s);
            rec.set_binding_state(next);
            if delay > 0 {
                // With a partner the end of the binding is an update it must hear of, also
                // when it asks later (UPDREQ) for what it missed.
                rec.set_update_pending();
            }
            free.give_back(addr);
            changed(&self.leases.lease(s));
        }
        st
    }

    /// Copy up to `max` records, starting at slot `from`, into `out` (only those still
    /// pending an update to the partner when `pending_only`). Returns the slot to continue
    /// from, or `None` when the scan reached the end. For streaming the store to the
    /// failover partner a chunk at a time (draft-ietf-dhc-failover-12 UPDREQ / UPDREQALL).
    pub fn scan(
        &self,
        from: u32,
        max: usize,
        pending_only: bool,
        out: &mut Vec<Lease4>,
    ) -> Option<u32> {
        super::scan_slots(self.leases.slots(), from, max, out, |s| {
            let r = self.leases.rec(s);
            (r.is_live() && (!pending_only || r.update_pending())).then(|| self.leases.lease(s))
        })
    }

    /// The partner acknowledged the update of `addr` for `client` sent with client last
    /// transaction time `cltt` and potential expiry `potential` (draft-ietf-dhc-failover-12
    /// BNDACK): remember what the partner knows; the record is no longer pending unless it
    /// changed since. Returns the record as it is now, or `None` if the address is no longer
    /// this client's here.
    pub fn partner_acked(
        &mut self,
        addr: Ipv4Addr,
        client: &ClientKey,
        cltt: u32,
        potential: u32,
    ) -> Option<Lease4> {
        let s = self.leases.slot_of_addr(u32::from(addr))?;
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

    /// Whether this shard holds `addr` (a lease record in a state that keeps its free-map
    /// bit, or an offer). `ended_holds`: RELEASED records keep the bit too (a server with a
    /// failover partner, see [`Self::reclaim_delayed`]).
    #[must_use]
    pub fn holds(&self, addr: Ipv4Addr, ended_holds: bool) -> Option<Lease4> {
        if let Some(s) = self.offers.slot_of_addr(u32::from(addr)) {
            return Some(self.offers.lease(s));
        }
        let l = self.get_by_addr(addr)?;
        let held = l.state.holds_address() || (ended_holds && l.state == BindingState::Released);
        held.then_some(l)
    }

    /// Give up `addr` to another shard without returning its free-map bit (the new holder
    /// inherits it): drops an offer of it, and rewrites a lease record of it as `FREE`
    /// (returned, so the caller can log it).
    pub fn surrender(&mut self, addr: Ipv4Addr) -> Option<Lease4> {
        if let Some(s) = self.offers.slot_of_addr(u32::from(addr)) {
            self.offers.remove_slot(s);
        }
        let s = self.leases.slot_of_addr(u32::from(addr))?;
        let mut l = self.leases.lease(s);
        l.state = BindingState::Free;
        l.update_pending = false;
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

    /// Number of offers held (superseded ones included until their hold lapses).
    #[must_use]
    pub fn offers_len(&self) -> usize {
        self.offers.len()
    }

    /// The addresses the held offers claim (superseded offers included until their hold
    /// lapses), in slot order.
    pub fn offer_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.offers
            .live_slots()
            .map(|s| Ipv4Addr::from(self.offers.rec(s).addr))
    }

    /// Every lease record (offers not included: they are never persisted), in slot order.
    pub fn iter(&self) -> impl Iterator<Item = Lease4> + '_ {
        self.leases.live_slots().map(|s| self.leases.lease(s))
    }

    /// Approximate heap bytes used (capacity based): records, indexes, key arenas, offers.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.leases.memory_bytes()
            + self.offers.memory_bytes()
            + self.hold_until.capacity() * size_of::<u32>()
    }
}

#[cfg(all(test, not(twinlease_loom)))]
mod tests {
    use super::*;
    use crate::pool::PoolRange;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn key(id: &[u8]) -> ClientKey {
        ClientKey::from_client_id(id).unwrap()
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    #[expect(
        clippy::large_types_passed_by_value,
        reason = "mirrors the Lease4 field it fills"
    )]
    fn lease(addr: Ipv4Addr, client: ClientKey, state: BindingState, expires: u32) -> Lease4 {
        Lease4 {
            addr,
            state,
            client,
            chaddr: [2, 0, 0, 0, 0, addr.octets()[3]],
            subnet_id: 1,
            expires,
            cltt: expires / 2,
            partner_expires: 0,
            update_pending: false,
        }
    }

    fn check(s: &Shard) {
        s.leases.check();
        s.offers.check();
    }

    #[test]
    fn upsert_get_remove() {
        let mut s = Shard::new(0, 1);
        let a = key(&[1, 2, 3, 4, 5, 6, 7]);
        let l = lease(ip(5), a, BindingState::Active, 100);
        s.upsert(l);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get_by_addr(ip(5)), Some(l));
        assert_eq!(s.get_by_client(&a, 1), Some(l));
        assert_eq!(s.get_by_client(&a, 2), None, "other subnet");
        assert_eq!(s.get_by_addr(ip(6)), None);
        // Replace in place (renewal).
        let l2 = Lease4 {
            expires: 200,
            update_pending: true,
            ..l
        };
        s.upsert(l2);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get_by_client(&a, 1), Some(l2));
        assert_eq!(s.iter().collect::<Vec<_>>(), [l2]);
        check(&s);
        assert_eq!(s.remove(ip(5)), Some(l2));
        assert_eq!(s.remove(ip(5)), None);
        assert!(s.is_empty());
        assert_eq!(s.get_by_client(&a, 1), None);
        check(&s);
    }

    #[test]
    fn scan_streams_live_records_a_chunk_at_a_time() {
        let mut s = Shard::new(0, 1);
        for k in 1..=10u8 {
            let mut l = lease(ip(k), key(&[k, 0]), BindingState::Active, 100);
            l.update_pending = k % 2 == 0;
            s.upsert(l);
        }
        s.remove(ip(4));
        let mut pending = Vec::new();
        let mut next = Some(0);
        while let Some(from) = next {
            let before = pending.len();
            next = s.scan(from, 2, true, &mut pending);
            assert!(pending.len() - before <= 2);
            assert!(next.is_none_or(|n| n > from));
        }
        let mut addrs: Vec<u8> = pending.iter().map(|l| l.addr.octets()[3]).collect();
        addrs.sort_unstable();
        assert_eq!(addrs, [2, 6, 8, 10]);
        let mut all = Vec::new();
        let next = s.scan(0, 5, false, &mut all);
        assert_eq!(all.len(), 5);
        assert!(next.is_some());
        assert_eq!(s.scan(next.unwrap(), 100, false, &mut all), None);
        assert_eq!(all.len(), 9);
        assert_eq!(s.scan(0, 0, false, &mut Vec::new()), Some(0));
    }

    #[test]
    fn address_handed_from_a_to_b() {
        let mut s = Shard::new(0, 1);
        let (a, b) = (key(b"client-a"), key(b"client-b"));
        s.upsert(lease(ip(1), a, BindingState::Expired, 10));
        let lb = lease(ip(1), b, BindingState::Active, 500);
        s.upsert(lb);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get_by_addr(ip(1)), Some(lb));
        assert_eq!(s.get_by_client(&b, 1), Some(lb));
        assert_eq!(
            s.get_by_client(&a, 1),
            None,
            "A's entry must not follow the address"
        );
        check(&s);
    }

    #[test]
    fn client_moves_from_x_to_y() {
        let mut sh = Shard::new(0, 1);
        let (a, b) = (key(b"client-a"), key(b"client-b"));
        let x = lease(ip(1), a, BindingState::Released, 10);
        let y = lease(ip(2), a, BindingState::Active, 20);
        sh.upsert(x);
        sh.upsert(y);
        assert_eq!(sh.get_by_client(&a, 1), Some(y));
        assert_eq!(
            sh.get_by_addr(ip(1)),
            Some(x),
            "old record stays reachable by address"
        );
        // Rewriting the older record makes it the latest again.
        sh.upsert(x);
        assert_eq!(sh.get_by_client(&a, 1), Some(x));
        // Removing the latest leaves the client without index entry.
        sh.remove(ip(1));
        assert_eq!(sh.get_by_client(&a, 1), None);
        assert_eq!(sh.get_by_addr(ip(2)), Some(y));
        sh.upsert(lease(ip(2), b, BindingState::Active, 30));
        assert_eq!(sh.get_by_client(&a, 1), None);
        assert_eq!(sh.len(), 1);
        check(&sh);
    }

    #[test]
    fn long_keys_live_in_the_arena_and_its_space_is_reused() {
        let mut s = Shard::new(0, 1);
        // RFC 4361 style ids beyond the inline size, up to the longest option.
        let long = |i: u8, n: usize| {
            let mut v = vec![0xff, 0, 0, 0, i];
            v.resize(n, i);
            key(&v)
        };
        for round in 0..20u32 {
            for i in 0..50u8 {
                let n = 24 + (usize::from(i) * 5) % 232;
                let l = lease(
                    ip(i),
                    long(i.wrapping_add(round as u8), n),
                    BindingState::Active,
                    round,
                );
                s.upsert(l);
                assert_eq!(s.get_by_addr(ip(i)), Some(l));
                assert_eq!(s.get_by_client(&l.client, 1), Some(l));
            }
            check(&s);
        }
        let peak = s.leases.arena_live_bytes();
        let mem = s.memory_bytes();
        for round in 20..40u32 {
            for i in 0..50u8 {
                let n = 24 + (usize::from(i) * 5) % 232;
                s.upsert(lease(
                    ip(i),
                    long(i.wrapping_add(round as u8), n),
                    BindingState::Active,
                    round,
                ));
            }
        }
        assert_eq!(s.leases.arena_live_bytes(), peak);
        assert_eq!(
            s.memory_bytes(),
            mem,
            "churn of same-size keys must not grow the arena"
        );
        for i in 0..50u8 {
            s.remove(ip(i));
        }
        assert_eq!(s.leases.arena_live_bytes(), 0);
        check(&s);
    }

    fn free_map() -> FreeMap {
        let pools = [PoolRange {
            id: 1,
            subnet_id: 1,
            start: ip(0),
            end: ip(255),
        }];
        FreeMap::new(&pools, 1, &|_| false).unwrap()
    }

    #[test]
    fn offers_are_seen_then_bound_or_lapse() {
        let free = free_map();
        let mut s = Shard::new(0, 1);
        let a = key(b"client-a");
        // The client had X; it is offered Y (claimed from the free map first).
        let x = lease(ip(1), a, BindingState::Expired, 10);
        s.upsert(x);
        assert!(free.try_take(ip(2)));
        let offer = lease(ip(2), a, BindingState::Free, 3600);
        s.hold_offer(offer, 100);
        assert_eq!(s.offer_of(&a, 1), Some((ip(2), 100)));
        assert_eq!(s.get_by_client(&a, 1), Some(offer));
        assert_eq!(s.lease_of(&a, 1), Some(x));
        assert_eq!(s.get_by_addr(ip(2)), Some(offer));
        assert_eq!((s.len(), s.offers_len()), (1, 1));
        assert_eq!(s.iter().count(), 1, "offers are not persisted");
        // DHCPREQUEST: the offer becomes a binding of the same address.
        let bound = lease(ip(2), a, BindingState::Active, 3600);
        s.upsert(bound);
        assert_eq!(s.offers_len(), 0);
        assert_eq!(s.offer_of(&a, 1), None);
        assert_eq!(s.get_by_client(&a, 1), Some(bound));
        // Reclaim long after the hold must not give the bound address back.
        s.reclaim(200, 100, &free);
        assert!(!free.is_free(ip(2)));

        // A second offer, to B, lapses: the address goes back.
        let b = key(b"client-b");
        assert!(free.try_take(ip(3)));
        s.hold_offer(lease(ip(3), b, BindingState::Free, 3600), 300);
        let st = s.reclaim(299, 100, &free);
        assert_eq!(st.offers_lapsed, 0);
        assert!(!free.is_free(ip(3)));
        let st = s.reclaim(300, 100, &free);
        assert_eq!(st.offers_lapsed, 1);
        assert!(free.is_free(ip(3)));
        assert_eq!(s.get_by_client(&b, 1), None);
        assert_eq!(s.get_by_addr(ip(3)), None);
        check(&s);
    }

    #[test]
    fn superseded_offer_is_hidden_and_returns_its_address_on_lapse() {
        let free = free_map();
        let mut s = Shard::new(0, 1);
        let a = key(b"client-a");
        assert!(free.try_take(ip(7)));
        s.hold_offer(lease(ip(7), a, BindingState::Free, 3600), 50);
        // The client gets its old address instead (INIT-REBOOT): the offer is superseded.
        let y = lease(ip(8), a, BindingState::Active, 3600);
        s.upsert(y);
        assert_eq!(s.get_by_client(&a, 1), Some(y));
        assert_eq!(s.offer_of(&a, 1), None);
        assert_eq!(s.get_by_addr(ip(7)), None);
        assert_eq!(s.offers_len(), 1, "still held until the hold ends");
        assert!(!free.is_free(ip(7)));
        s.reclaim(50, 10, &free);
        assert!(free.is_free(ip(7)));
        assert_eq!(s.offers_len(), 0);

        // A new offer to the same client at another address supersedes the first one.
        assert!(free.try_take(ip(9)));
        s.hold_offer(lease(ip(9), a, BindingState::Free, 3600), 60);
        assert!(free.try_take(ip(10)));
        s.hold_offer(lease(ip(10), a, BindingState::Free, 3600), 70);
        assert_eq!(s.offer_of(&a, 1), Some((ip(10), 70)));
        assert_eq!(s.get_by_addr(ip(9)), None);
        s.reclaim(65, 10, &free);
        assert!(free.is_free(ip(9)));
        assert!(!free.is_free(ip(10)));
        assert_eq!(s.cancel_offer(ip(10)).map(|l| l.addr), Some(ip(10)));
        assert_eq!(s.offer_of(&a, 1), None);
        check(&s);
    }

    #[test]
    fn reclaim_transitions_and_budget() {
        let free = free_map();
        let mut s = Shard::new(0, 1);
        let states = [
            BindingState::Active,
            BindingState::Abandoned,
            BindingState::Released,
            BindingState::Expired,
        ];
        // 40 records: addresses i, state by i % 4, expiry 100 (odd i) or 1000 (even i).
        for i in 0..40u8 {
            assert!(free.try_take(ip(i)));
            let exp = if i % 2 == 1 { 100 } else { 1000 };
            s.upsert(lease(ip(i), key(&[i; 8]), states[usize::from(i % 4)], exp));
        }
        let mut changed = Vec::new();
        let mut total = ReclaimStats::default();
        // Budget 7 per call: after 5 calls 35 slots seen, the 6th call finishes the sweep.
        for call in 0..6 {
            let st = s.reclaim_with(500, 7, &free, &mut |l| changed.push(*l));
            assert_eq!(st.visited, 7, "call {call}");
            total.expired += st.expired;
            total.abandoned_freed += st.abandoned_freed;
            if call == 4 {
                assert!(
                    free.is_free(ip(33)) && !free.is_free(ip(37)),
                    "sweep is incremental"
                );
            }
        }
        // Odd i expire at 100: i % 4 == 1 are ABANDONED → FREE, i % 4 == 3 already EXPIRED.
        // Even i (ACTIVE, RELEASED) expire at 1000: untouched at 500.
        assert_eq!(total.expired, 0);
        assert_eq!(total.abandoned_freed, 10);
        assert_eq!(changed.len(), 10);
        for i in 0..40u8 {
            let l = s.get_by_addr(ip(i)).unwrap();
            if i % 4 == 1 {
                assert_eq!(l.state, BindingState::Free);
                assert!(free.is_free(ip(i)));
                assert_eq!(s.get_by_client(&key(&[i; 8]), 1), Some(l), "record kept");
            } else {
                assert_eq!(l.state, states[usize::from(i % 4)]);
                assert!(!free.is_free(ip(i)), "{i}");
            }
        }
        // At 1000: i % 4 == 0 ACTIVE → EXPIRED (record kept), i % 4 == 2 RELEASED stays.
        let st = s.reclaim(1000, 1000, &free);
        assert_eq!(
            st.visited, 40,
            "never more than one pass over the slots per call"
        );
        assert_eq!((st.expired, st.abandoned_freed), (10, 0));
        for i in (0..40u8).step_by(4) {
            assert_eq!(s.get_by_addr(ip(i)).unwrap().state, BindingState::Expired);
            assert!(free.is_free(ip(i)));
            assert!(!free.is_free(ip(i + 2)));
        }
        assert_eq!(
            s.reclaim(1000, 1000, &free),
            ReclaimStats {
                visited: 40,
                ..Default::default()
            }
        );
        check(&s);
    }

    #[test]
    fn reclaim_frees_abandoned_after_probation() {
        let free = free_map();
        let mut s = Shard::new(0, 1);
        assert!(free.try_take(ip(4)));
        s.upsert(lease(ip(4), key(b"decliner"), BindingState::Abandoned, 300));
        assert_eq!(s.reclaim(299, 10, &free).abandoned_freed, 0);
        assert!(!free.is_free(ip(4)));
        assert_eq!(s.reclaim(300, 10, &free).abandoned_freed, 1);
        assert!(free.is_free(ip(4)));
        assert_eq!(s.get_by_addr(ip(4)).unwrap().state, BindingState::Free);
        assert_eq!(s.reclaim(300, 0, &free), ReclaimStats::default());
    }

    #[test]
    fn prefetch_hints_change_nothing() {
        let free = free_map();
        let mut s = Shard::new(0, 1);
        let (a, b) = (key(b"client-a"), key(b"client-b"));
        // Before any allocation: no-ops.
        s.prefetch_client(&a, 1);
        s.prefetch_client_record(&a, 1);
        s.prefetch_addr(ip(1));
        assert!(s.is_empty());
        let la = lease(ip(1), a, BindingState::Active, 100);
        s.upsert(la);
        assert!(free.try_take(ip(2)));
        let ob = lease(ip(2), b, BindingState::Free, 100);
        s.hold_offer(ob, 50);
        for k in [&a, &b, &key(b"absent")] {
            for subnet in 0..3 {
                s.prefetch_client(k, subnet);
                s.prefetch_client_record(k, subnet);
            }
        }
        for i in 0..=255 {
            s.prefetch_addr(ip(i));
        }
        assert_eq!(s.get_by_client(&a, 1), Some(la));
        assert_eq!(s.get_by_client(&b, 1), Some(ob));
        assert_eq!(s.get_by_addr(ip(2)), Some(ob));
        assert_eq!((s.len(), s.offers_len()), (1, 1));
        check(&s);
    }

    #[test]
    fn indexes_survive_growth_and_churn() {
        // Enough records for several index doublings, in a shard grown from empty and in
        // one reserved up front; then every other record removed and the rest rewritten
        // for new clients (the address changes hands).
        for mut s in [Shard::new(0, 1), Shard::with_capacity(0, 1, 20_000)] {
            let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
            let at = |i: u32| Ipv4Addr::from(base + i);
            let k = |i: u32| key(&i.to_be_bytes());
            for i in 0..20_000 {
                s.prefetch_client(&k(i), 1);
                s.prefetch_addr(at(i));
                s.upsert(lease(at(i), k(i), BindingState::Active, i));
            }
            check(&s);
            for i in (0..20_000).step_by(2) {
                assert_eq!(s.remove(at(i)).map(|l| l.client), Some(k(i)));
            }
            for i in (1..20_000).step_by(2) {
                s.upsert(lease(at(i), k(i + 100_000), BindingState::Active, i));
            }
            check(&s);
            assert_eq!(s.len(), 10_000);
            for i in 0..20_000 {
                let want =
                    (i % 2 == 1).then(|| lease(at(i), k(i + 100_000), BindingState::Active, i));
                assert_eq!(s.get_by_addr(at(i)), want);
                assert_eq!(s.get_by_client(&k(i + 100_000), 1), want);
                assert_eq!(s.get_by_client(&k(i), 1), None);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert {
            addr: u8,
            client: u8,
            subnet: u32,
            state: u8,
            expires: u32,
        },
        Remove {
            addr: u8,
        },
    }

    /// Client keys: short ones inline, long ones (≥ 24 bytes) in the arena.
    fn model_key(c: u8) -> ClientKey {
        if c.is_multiple_of(3) {
            let mut v = vec![0xff, c];
            v.resize(24 + usize::from(c) * 7, c);
            key(&v)
        } else {
            ClientKey::from_hw(1, &[0, 0, 0, 0, 0, c]).unwrap()
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24, 0u8..10, 1u32..3, 1u8..8, 0u32..1000).prop_map(
                |(addr, client, subnet, state, expires)| Op::Upsert { addr, client, subnet, state, expires }
            ),
            1 => (0u8..24).prop_map(|addr| Op::Remove { addr }),
        ]
    }

    proptest! {
        /// Random upsert/remove sequences against a `HashMap` model of the index rules.
        #[test]
        fn matches_hashmap_model(ops in prop::collection::vec(op(), 1..200)) {
            let mut s = Shard::new(0, 1);
            let mut recs: HashMap<Ipv4Addr, Lease4> = HashMap::new();
            let mut latest: HashMap<(ClientKey, u32), Ipv4Addr> = HashMap::new();
            for op in ops {
                match op {
                    Op::Upsert { addr, client, subnet, state, expires } => {
                        let l = Lease4 {
                            subnet_id: subnet,
                            state: BindingState::from_u8(state).unwrap(),
                            ..lease(ip(addr), model_key(client), BindingState::Free, expires)
                        };
                        if let Some(old) = recs.insert(l.addr, l) {
                            let k = (old.client, old.subnet_id);
                            if k != (l.client, l.subnet_id) && latest.get(&k) == Some(&l.addr) {
                                latest.remove(&k);
                            }
                        }
                        latest.insert((l.client, l.subnet_id), l.addr);
                        s.upsert(l);
                    }
                    Op::Remove { addr } => {
                        let want = recs.remove(&ip(addr));
                        if let Some(old) = want {
                            let k = (old.client, old.subnet_id);
                            if latest.get(&k) == Some(&old.addr) {
                                latest.remove(&k);
                            }
                        }
                        prop_assert_eq!(s.remove(ip(addr)), want);
                    }
                }
                prop_assert_eq!(s.len(), recs.len());
                for a in 0..24 {
                    prop_assert_eq!(s.get_by_addr(ip(a)), recs.get(&ip(a)).copied());
                }
                for c in 0..10 {
                    for subnet in 1..3 {
                        let k = model_key(c);
                        let want = latest.get(&(k, subnet)).map(|a| recs[a]);
                        prop_assert_eq!(s.get_by_client(&k, subnet), want);
                    }
                }
            }
            let mut all: Vec<Lease4> = s.iter().collect();
            all.sort_by_key(|l| u32::from(l.addr));
            let mut want: Vec<Lease4> = recs.into_values().collect();
            want.sort_by_key(|l| u32::from(l.addr));
            prop_assert_eq!(all, want);
            check(&s);
        }
    }
}
