//! The worker's side of DHCPv6 failover (RFC 8156): what [`Lease6`] records and the partner
//! thread's messages need of [`super::partner_side`] (which queues committed changes to the
//! partner thread and streams the shard for its update requests), applying the partner's
//! bindings to this worker's [`Shard6`], and holding members of this worker's partition bound
//! by another worker's clients.
//!
//! [`Shard6`]: crate::pool::v6::Shard6

use super::Worker;
use super::partner_side::{Replicated, Served, WorkerFailover};
use crate::failover::channel::ApplyOutcome;
use crate::failover::channel6::{FromPartner6, SharedView6, ToPartner6};
use crate::lease::{BindingState, Lease6};
use crate::wire::failover6::status;

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

impl Replicated for Lease6 {
    type From = FromPartner6;
    type To = ToPartner6;
    type View = SharedView6;

    fn update_pending(&self) -> bool {
        self.update_pending
    }

    fn update(self, potential: u32) -> ToPartner6 {
        ToPartner6::Update {
            lease: self,
            potential,
        }
    }

    fn scanned(token: u64, leases: Vec<(Self, u32)>, done: bool) -> ToPartner6 {
        ToPartner6::Scanned {
            token,
            leases,
            done,
        }
    }

    fn applied(token: u64, outcome: ApplyOutcome) -> ToPartner6 {
        ToPartner6::Applied { token, outcome }
    }

    fn side(w: &Worker) -> Option<&WorkerFailover<Self>> {
        w.failover6.as_ref()
    }

    fn side_mut(w: &mut Worker) -> Option<&mut WorkerFailover<Self>> {
        w.failover6.as_mut()
    }

    fn potential(w: &Worker, l: &Self) -> u32 {
        potential6(w.valid_of(l), l)
    }

    fn scan(w: &Worker, from: u32, max: usize, pending: bool, out: &mut Vec<Self>) -> Option<u32> {
        w.store.shard6.scan(from, max, pending, out)
    }

    fn commit(w: &mut Worker, records: &[Self]) -> bool {
        w.commit(&[], records)
    }

    fn handle(w: &mut Worker, m: FromPartner6, now: u32, served: &mut Served<Self>) {
        match m {
            FromPartner6::Acked {
                kind,
                addr,
                client,
                cltt,
                potential,
            } => {
                w.store
                    .shard6
                    .partner_acked(kind, addr, &client, cltt, potential);
            }
            FromPartner6::Apply { token, lease } => {
                let outcome = match apply6(&mut w.store.shard6, lease, now) {
                    Ok(l) => {
                        served.records.push(l);
                        ApplyOutcome::Accepted
                    }
                    // RFC 8156 §5.6 codes fit a byte.
                    Err(code) => ApplyOutcome::Rejected(code as u8),
                };
                served.applied.push((token, outcome));
            }
            FromPartner6::Hold { lease, until } => {
                w.store.shard6.hold_offer(lease, until);
            }
            FromPartner6::Scan {
                token,
                pending_only,
            } => {
                if let Some(fo) = w.failover6.as_mut() {
                    fo.request_scan(token, pending_only);
                }
            }
        }
    }
}

impl Worker {
    fn valid_of(&self, l: &Lease6) -> u32 {
        self.engine6
            .as_ref()
            .and_then(|e| e.subnets().iter().find(|s| s.id == l.subnet_id))
            .map_or(0, |s| s.valid)
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
