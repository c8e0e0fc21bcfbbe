//! The worker's side of DHCPv6 failover (RFC 8156): queue committed [`Lease6`] changes to
//! the partner thread, apply the partner's bindings to this worker's [`Shard6`], hold members
//! of this worker's partition bound by another worker's clients, and stream the shard for the
//! partner's update requests. Served between batches, a bounded amount at a time.
//!
//! [`Shard6`]: crate::pool::v6::Shard6

use super::{Worker, unix_now};
use crate::failover::channel::ApplyOutcome;
use crate::failover::channel6::{FromPartner6, ToPartner6, WorkerEnd6};
use crate::lease::{BindingState, Lease6};
use crate::wire::failover6::status;

/// Partner messages handled per call.
const PER_POLL: usize = 256;
/// Records per scan chunk.
const SCAN_CHUNK: usize = 512;

#[derive(Debug, Clone, Copy)]
struct ScanState {
    token: u64,
    pending_only: bool,
    next: u32,
}

/// Per-worker DHCPv6 failover state.
#[derive(Debug)]
pub(super) struct WorkerFailover6 {
    pub(super) end: WorkerEnd6,
    scan: Option<ScanState>,
    resend: bool,
}

impl WorkerFailover6 {
    pub(super) fn new(end: WorkerEnd6) -> Self {
        Self {
            end,
            scan: None,
            resend: false,
        }
    }
}

/// The partner lifetime to send for `l` (RFC 8156 §4.4): what the client will get at its next
/// renewal, the subnet's valid lifetime from its last transaction on.
pub(super) fn potential6(valid: u32, l: &Lease6) -> u32 {
    if l.state == BindingState::Active {
        l.expires.max(l.cltt.saturating_add(valid))
    } else {
        l.expires
    }
}

/// Apply the partner's binding `upd` to `shard` (RFC 8156 §7.5): refused when a live binding
/// of another client of ours is newer; an ended binding of a member held here keeps it until
/// the MCLT has passed (as RELEASED, freed by the expiry sweep).
pub(super) fn apply6(
    shard: &mut crate::pool::v6::Shard6,
    mut upd: Lease6,
    now: u32,
) -> Result<Lease6, u16> {
    if shard
        .space()
        .pool_of(upd.kind, upd.addr, upd.prefix_len)
        .is_none()
    {
        return Err(status::CONFIGURATION_CONFLICT);
    }
    upd.update_pending = false;
    let current = shard.get(upd.kind, upd.addr);
    if let Some(o) = current.filter(|c| c.client != upd.client)
        && o.state == BindingState::Active
        && o.expires > now
        && o.cltt > upd.cltt
    {
        // RFC 8156 §7.5.2: our binding is more recent.
        return Err(status::OUTDATED_BINDING_INFORMATION);
    }
    let held_here =
        current.is_some_and(|c| c.state.holds_address() || c.state == BindingState::Released);
    if !(upd.state.holds_address() || upd.state == BindingState::Released) && held_here {
        upd.state = BindingState::Released;
        upd.expires = upd.expires.min(now);
    }
    if let Some(o) = current.filter(|c| c.client == upd.client) {
        upd.partner_expires = upd.partner_expires.max(o.partner_expires);
    }
    shard.upsert(upd);
    Ok(upd)
}

impl Worker {
    fn valid_of(&self, l: &Lease6) -> u32 {
        self.engine6
            .as_ref()
            .and_then(|e| e.subnets().iter().find(|s| s.id == l.subnet_id))
            .map_or(0, |s| s.valid)
    }

    /// Queue the committed DHCPv6 changes of a batch for the partner.
    pub(super) fn queue_updates6(&mut self, changes: &[Lease6]) {
        for l in changes.iter().filter(|l| l.update_pending) {
            let potential = potential6(self.valid_of(l), l);
            let Some(fo) = self.failover6.as_mut() else {
                return;
            };
            if fo.resend {
                return;
            }
            if fo
                .end
                .to
                .try_send(ToPartner6::Update {
                    lease: *l,
                    potential,
                })
                .is_err()
            {
                fo.resend = true;
                self.stats
                    .partner_ring_full
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        }
    }

    /// Serve the DHCPv6 partner thread's requests and continue a scan in progress.
    pub(super) fn serve_partner6(&mut self) {
        let Some(fo) = self.failover6.as_mut() else {
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
            fo.scan = Some(ScanState {
                token: 0,
                pending_only: true,
                next: 0,
            });
            fo.resend = false;
        }
        let mut applied: Vec<(u64, ApplyOutcome)> = Vec::new();
        let mut records: Vec<Lease6> = Vec::new();
        let now = unix_now();
        for m in msgs {
            match m {
                FromPartner6::Acked {
                    kind,
                    addr,
                    client,
                    cltt,
                    potential,
                } => {
                    self.store
                        .shard6
                        .partner_acked(kind, addr, &client, cltt, potential);
                }
                FromPartner6::Apply { token, lease } => {
                    let outcome = match apply6(&mut self.store.shard6, lease, now) {
                        Ok(l) => {
                            records.push(l);
                            ApplyOutcome::Accepted
                        }
                        // RFC 8156 §5.6 codes fit a byte.
                        Err(code) => ApplyOutcome::Rejected(code as u8),
                    };
                    applied.push((token, outcome));
                }
                FromPartner6::Hold { lease, until } => {
                    self.store.shard6.hold_offer(lease, until);
                }
                FromPartner6::Scan {
                    token,
                    pending_only,
                } => {
                    // An unsolicited resend (token 0) never cuts short a requested scan,
                    // which ends with the partner's UPDDONE.
                    if let Some(fo) = self.failover6.as_mut()
                        && !(token == 0 && fo.scan.is_some_and(|s| s.token != 0))
                    {
                        fo.scan = Some(ScanState {
                            token,
                            pending_only,
                            next: 0,
                        });
                    }
                }
            }
        }
        let durable = records.is_empty() || self.commit(&[], &records);
        let Some(fo) = self.failover6.as_mut() else {
            return;
        };
        for (token, outcome) in applied {
            let outcome = if durable || !matches!(outcome, ApplyOutcome::Accepted) {
                outcome
            } else {
                ApplyOutcome::NotDurable
            };
            let _ = fo.end.to.try_send(ToPartner6::Applied { token, outcome });
        }
        self.continue_scan6();
    }

    fn continue_scan6(&mut self) {
        let Some(fo) = self.failover6.as_ref() else {
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
            .shard6
            .scan(sc.next, SCAN_CHUNK, sc.pending_only, &mut out);
        let leases: Vec<(Lease6, u32)> = out
            .iter()
            .map(|l| (*l, potential6(self.valid_of(l), l)))
            .collect();
        let done = next.is_none();
        let Some(fo) = self.failover6.as_mut() else {
            return;
        };
        if sc.token == 0 {
            for (lease, potential) in leases {
                if fo
                    .end
                    .to
                    .try_send(ToPartner6::Update { lease, potential })
                    .is_err()
                {
                    fo.resend = true;
                    fo.scan = None;
                    return;
                }
            }
        } else if fo
            .end
            .to
            .try_send(ToPartner6::Scanned {
                token: sc.token,
                leases,
                done,
            })
            .is_err()
        {
            return;
        }
        fo.scan = next.map(|n| ScanState { next: n, ..sc });
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;
    use std::sync::Arc;

    use super::*;
    use crate::lease::{ClientKey, IaKind};
    use crate::pool::v6::{Pool6, Pool6Kind, Shard6, Space6};

    fn shard() -> Shard6 {
        let pools = [Pool6 {
            id: 1,
            subnet_id: 1,
            kind: Pool6Kind::Na {
                start: "2001:db8::100".parse().unwrap(),
                end: "2001:db8::1ff".parse().unwrap(),
            },
        }];
        Shard6::new(0, 1, Arc::new(Space6::new(&pools, 1, &[]).unwrap()))
    }

    fn lease(client: u8, addr: &str, state: BindingState, cltt: u32) -> Lease6 {
        Lease6 {
            kind: IaKind::Na,
            addr: addr.parse().unwrap(),
            prefix_len: 128,
            state,
            client: ClientKey::from_duid(&[0, 3, 0, 1, client, 2, 3, 4, 5, 6]).unwrap(),
            iaid: 1,
            subnet_id: 1,
            preferred_until: cltt + 50,
            expires: cltt + 100,
            cltt,
            partner_expires: cltt + 100,
            update_pending: true,
        }
    }

    #[test]
    fn a_newer_local_binding_wins_and_an_ended_update_keeps_the_member_held() {
        let mut s = shard();
        let now = 1_000;
        s.upsert(lease(1, "2001:db8::100", BindingState::Active, 990));
        // Another client, older: refused.
        let older = lease(2, "2001:db8::100", BindingState::Active, 900);
        assert_eq!(
            apply6(&mut s, older, now),
            Err(status::OUTDATED_BINDING_INFORMATION)
        );
        // The same client's expiry: kept as RELEASED, not pending.
        let ended = lease(1, "2001:db8::100", BindingState::Expired, 995);
        let got = apply6(&mut s, ended, now).unwrap();
        assert_eq!(got.state, BindingState::Released);
        assert!(!got.update_pending);
        assert!(got.expires <= now);
        // Outside the pools: refused.
        let mut out = lease(3, "2001:db8::100", BindingState::Active, 999);
        out.addr = Ipv6Addr::LOCALHOST;
        assert_eq!(
            apply6(&mut s, out, now),
            Err(status::CONFIGURATION_CONFLICT)
        );
    }

    #[test]
    fn the_potential_runs_a_valid_lifetime_past_the_last_transaction() {
        let l = lease(1, "2001:db8::100", BindingState::Active, 1_000);
        assert_eq!(potential6(4_000, &l), 5_000);
        let r = lease(1, "2001:db8::100", BindingState::Released, 1_000);
        assert_eq!(potential6(4_000, &r), r.expires);
    }
}
