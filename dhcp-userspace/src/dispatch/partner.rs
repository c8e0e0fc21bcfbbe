//! The worker's side of DHCPv4 failover: what [`Lease4`] records and the partner thread's
//! messages need of [`super::partner_side`] (which queues committed changes to the partner
//! thread and streams the shard for its update requests), applying the partner's binding
//! updates to this worker's shard, and surrendering addresses another worker needs.

use std::net::Ipv4Addr;

use super::Worker;
use super::partner_side::{Replicated, Served, WorkerFailover};
use crate::failover::channel::{ApplyOutcome, FromPartner, SharedView, ToPartner};
use crate::lease::{BindingState, Lease4};
use crate::wire::failover::reject;

impl Replicated for Lease4 {
    type From = FromPartner;
    type To = ToPartner;
    type View = SharedView;

    fn update_pending(&self) -> bool {
        self.update_pending
    }

    fn update(self, potential: u32) -> ToPartner {
        ToPartner::Update {
            lease: self,
            potential,
        }
    }

    fn scanned(token: u64, leases: Vec<(Self, u32)>, done: bool) -> ToPartner {
        ToPartner::Scanned {
            token,
            leases,
            done,
        }
    }

    fn applied(token: u64, outcome: ApplyOutcome) -> ToPartner {
        ToPartner::Applied { token, outcome }
    }

    fn side(w: &Worker) -> Option<&WorkerFailover<Self>> {
        w.failover.as_ref()
    }

    fn side_mut(w: &mut Worker) -> Option<&mut WorkerFailover<Self>> {
        w.failover.as_mut()
    }

    fn potential(w: &Worker, l: &Self) -> u32 {
        w.potential_of(l)
    }

    fn scan(w: &Worker, from: u32, max: usize, pending: bool, out: &mut Vec<Self>) -> Option<u32> {
        w.store.shard.scan(from, max, pending, out)
    }

    fn commit(w: &mut Worker, records: &[Self]) -> bool {
        w.commit(records, &[])
    }

    fn handle(w: &mut Worker, m: FromPartner, now: u32, served: &mut Served<Self>) {
        match m {
            FromPartner::Acked {
                addr,
                client,
                cltt,
                potential,
            } => {
                w.store.shard.partner_acked(addr, &client, cltt, potential);
            }
            FromPartner::Apply {
                token,
                lease,
                transferred,
            } => {
                let outcome = w.apply(lease, transferred, now, &mut served.records);
                served.applied.push((token, outcome));
            }
            FromPartner::Surrender {
                token,
                addr,
                cltt,
                client,
            } => {
                let reply = w.surrender(token, addr, cltt, &client, now, &mut served.records);
                served.replies.push(reply);
            }
            FromPartner::Scan {
                token,
                pending_only,
            } => {
                if let Some(fo) = w.failover.as_mut() {
                    fo.request_scan(token, pending_only);
                }
            }
        }
    }
}

impl Worker {
    /// The potential expiration time to send ahead for `l` (draft-12 §5.2.1): what the
    /// client will get at its next renewal, the subnet's lease time from now on.
    fn potential_of(&self, l: &Lease4) -> u32 {
        let t = self
            .engine
            .subnets()
            .iter()
            .find(|s| s.id == l.subnet_id)
            .map_or(0, |s| s.lease_time);
        if l.state == BindingState::Active {
            l.expires.max(l.cltt.saturating_add(t))
        } else {
            l.expires
        }
    }

    /// Apply a partner's binding update for one of this worker's clients
    /// (draft-ietf-dhc-failover-12 §7.1.3 conflict rules via [`crate::failover::conflict`]).
    fn apply(
        &mut self,
        mut upd: Lease4,
        transferred: bool,
        now: u32,
        records: &mut Vec<Lease4>,
    ) -> ApplyOutcome {
        if self.free.pool_of(upd.addr).is_none() {
            return ApplyOutcome::Rejected(reject::ILLEGAL_IP_ADDRESS);
        }
        upd.update_pending = false;
        let shard = &mut self.store.shard;
        let current = shard.get_by_addr(upd.addr);
        let ours = current.filter(|c| c.client == upd.client);
        let other = current.filter(|c| c.client != upd.client);
        if let Some(o) = other
            && (o.state.holds_address() || o.state == BindingState::Released)
        {
            // Another of our clients holds it here.
            if o.state == BindingState::Active && o.expires > now && o.cltt > upd.cltt {
                return ApplyOutcome::Rejected(reject::FATAL_CONFLICT);
            }
            // The partner's binding is newer: ours is superseded, the bit stays held.
        }
        let held_here = current
            .is_some_and(|c| c.state.holds_address() || c.state == BindingState::Released)
            || shard.holds(upd.addr, true).is_some();
        let ended = !(upd.state.holds_address() || upd.state == BindingState::Released);
        if !ended && !held_here && !transferred && !self.free.try_take(upd.addr) {
            return ApplyOutcome::HeldElsewhere;
        }
        if let Some(o) = ours {
            // Keep what we know the partner acknowledged.
            upd.partner_expires = upd.partner_expires.max(o.partner_expires);
        }
        shard.upsert(upd);
        records.push(upd);
        if ended && held_here {
            // The partner ended the binding (EXPIRED, FREE, RESET): it will not extend it any
            // more, and the address returns to the share it belongs to (draft-12 §5.2.1,
            // §5.4).
            self.free.give_back(upd.addr);
        }
        ApplyOutcome::Accepted
    }

    /// Give up `addr` for the partner's binding of another worker's client, unless our
    /// binding of it is live and newer.
    fn surrender(
        &mut self,
        token: u64,
        addr: Ipv4Addr,
        cltt: u32,
        client: &crate::lease::ClientKey,
        now: u32,
        records: &mut Vec<Lease4>,
    ) -> ToPartner {
        let shard = &mut self.store.shard;
        let Some(held) = shard.holds(addr, true) else {
            return ToPartner::Surrendered {
                token,
                gave_up: false,
                refused: None,
            };
        };
        if held.client != *client
            && held.state == BindingState::Active
            && held.expires > now
            && held.cltt > cltt
        {
            return ToPartner::Surrendered {
                token,
                gave_up: false,
                refused: Some(reject::FATAL_CONFLICT),
            };
        }
        if let Some(l) = shard.surrender(addr) {
            records.push(l);
        }
        ToPartner::Surrendered {
            token,
            gave_up: true,
            refused: None,
        }
    }
}
