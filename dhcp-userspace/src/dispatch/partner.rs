//! The worker's side of failover: queue committed lease changes to the partner thread, apply
//! the partner's binding updates to this worker's shard, surrender addresses another worker
//! needs, and stream the shard for the partner's update requests. Served between batches,
//! a bounded amount at a time; a worker never waits for the partner thread.

use std::net::Ipv4Addr;

use super::{Worker, unix_now};
use crate::failover::channel::{ApplyOutcome, FromPartner, ToPartner, WorkerEnd};
use crate::lease::{BindingState, Lease4};
use crate::wire::failover::reject;

/// Partner messages handled per call.
const PER_POLL: usize = 256;
/// Records per scan chunk.
const SCAN_CHUNK: usize = 512;

/// A store scan in progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct ScanState {
    token: u64,
    pending_only: bool,
    next: u32,
}

/// Per-worker failover state.
#[derive(Debug)]
pub(super) struct WorkerFailover {
    pub(super) end: WorkerEnd,
    /// A scan the partner thread asked for.
    scan: Option<ScanState>,
    /// An update could not be queued (ring full): send every pending record again.
    resend: bool,
}

impl WorkerFailover {
    pub(super) fn new(end: WorkerEnd) -> Self {
        Self {
            end,
            scan: None,
            resend: false,
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

    /// Queue the committed changes of a batch for the partner.
    pub(super) fn queue_updates(&mut self, changes: &[Lease4]) {
        for l in changes.iter().filter(|l| l.update_pending) {
            let potential = self.potential_of(l);
            let Some(fo) = self.failover.as_mut() else {
                return;
            };
            if fo.resend {
                return;
            }
            if fo
                .end
                .to
                .try_send(ToPartner::Update {
                    lease: *l,
                    potential,
                })
                .is_err()
            {
                // The record stays pending in the shard: a later scan sends it again.
                fo.resend = true;
                self.stats
                    .partner_ring_full
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        }
    }

    /// Serve the partner thread's requests and continue a scan in progress.
    pub(super) fn serve_partner(&mut self) {
        let Some(fo) = self.failover.as_mut() else {
            return;
        };
        let mut msgs = Vec::new();
        for _ in 0..PER_POLL {
            match fo.end.from.try_recv() {
                Ok(m) => msgs.push(m),
                Err(_) => break,
            }
        }
        if fo.resend && fo.scan.is_none() {
            // Pending records are sent again as an unsolicited scan (token 0).
            fo.scan = Some(ScanState {
                token: 0,
                pending_only: true,
                next: 0,
            });
            fo.resend = false;
        }
        let mut applied: Vec<(u64, ApplyOutcome)> = Vec::new();
        let mut records: Vec<Lease4> = Vec::new();
        let mut replies: Vec<ToPartner> = Vec::new();
        let now = unix_now();
        for m in msgs {
            match m {
                FromPartner::Acked {
                    addr,
                    client,
                    cltt,
                    potential,
                } => {
                    self.store
                        .shard
                        .partner_acked(addr, &client, cltt, potential);
                }
                FromPartner::Apply {
                    token,
                    lease,
                    transferred,
                } => {
                    let outcome = self.apply(lease, transferred, now, &mut records);
                    applied.push((token, outcome));
                }
                FromPartner::Surrender {
                    token,
                    addr,
                    cltt,
                    client,
                } => {
                    let reply = self.surrender(token, addr, cltt, &client, now, &mut records);
                    replies.push(reply);
                }
                FromPartner::Scan {
                    token,
                    pending_only,
                } => {
                    if let Some(fo) = self.failover.as_mut() {
                        fo.scan = Some(ScanState {
                            token,
                            pending_only,
                            next: 0,
                        });
                    }
                }
            }
        }
        // Everything applied or surrendered is durable before the partner hears of it.
        let durable = records.is_empty() || self.commit(&records, &[]);
        let Some(fo) = self.failover.as_mut() else {
            return;
        };
        for (token, outcome) in applied {
            let outcome = if durable || !matches!(outcome, ApplyOutcome::Accepted) {
                outcome
            } else {
                ApplyOutcome::NotDurable
            };
            let _ = fo.end.to.try_send(ToPartner::Applied { token, outcome });
        }
        for r in replies {
            let _ = fo.end.to.try_send(r);
        }
        self.continue_scan();
    }

    /// Send the next chunk of a scan in progress.
    fn continue_scan(&mut self) {
        let Some(fo) = self.failover.as_ref() else {
            return;
        };
        let Some(sc) = fo.scan else {
            return;
        };
        if fo.end.to.len() + 1 >= fo.end.to.capacity().unwrap_or(usize::MAX) {
            return;
        }
        let mut out = Vec::with_capacity(SCAN_CHUNK);
        let next = self
            .store
            .shard
            .scan(sc.next, SCAN_CHUNK, sc.pending_only, &mut out);
        let leases = out.iter().map(|l| (*l, self.potential_of(l))).collect();
        let done = next.is_none();
        let Some(fo) = self.failover.as_mut() else {
            return;
        };
        let msg = if sc.token == 0 {
            // Unsolicited resend: plain updates.
            for (lease, potential) in leases {
                if fo
                    .end
                    .to
                    .try_send(ToPartner::Update { lease, potential })
                    .is_err()
                {
                    fo.resend = true;
                    fo.scan = None;
                    return;
                }
            }
            None
        } else {
            Some(ToPartner::Scanned {
                token: sc.token,
                leases,
                done,
            })
        };
        if let Some(msg) = msg
            && fo.end.to.try_send(msg).is_err()
        {
            // Retry this chunk on the next call.
            return;
        }
        fo.scan = next.map(|n| ScanState { next: n, ..sc });
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
