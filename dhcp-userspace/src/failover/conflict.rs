//! Whether a binding update received from the partner is accepted (draft-ietf-dhc-failover-12
//! §7.1.2, §7.1.3, Figure 7.1.3-1), and what an acknowledgement teaches the sender (§5.11,
//! §7.1.5).
//!
//! The same rules apply in every failover state (§7.1.2: "The conflict resolution process
//! MUST be used on the receipt of every BNDUPD message, not just those that are received
//! while in POTENTIAL-CONFLICT state"); a duplicate allocation (two clients, one address)
//! is resolved in the primary's favour (Figure 7.1.3-1 note 5).

use std::net::Ipv4Addr;

use super::rules::state_after_ack;
use super::state::{Role, State};
use crate::lease::BindingState;
use crate::wire::failover::reject;

/// One binding as a BNDUPD carries it, or as the local store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// assigned-IP-address (§12.2).
    pub addr: Ipv4Addr,
    /// binding-status (§12.3).
    pub state: BindingState,
    /// The client key bytes ([`crate::lease::ClientKey::as_bytes`]); `None` when the
    /// update names no client.
    pub client: Option<Vec<u8>>,
    /// lease-expiration-time (§12.13), unix seconds; 0 when absent.
    pub expires: u32,
    /// client-last-transaction-time (§12.6), unix seconds; 0 when absent ("no CLTT").
    /// For a local RESET binding: when it was reset (the start-time-of-state the third
    /// "time" rule of Figure 7.1.3-1 compares with).
    pub cltt: u32,
    /// potential-expiration-time (§12.18): in an update, what the sender asks us to
    /// acknowledge; in a local binding, what we last sent.
    pub potential_expires: u32,
}

/// The verdict on one binding update transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Store the update (state, client, times; the lease-expiration-time only if later,
    /// §7.1.5), record its potential-expiration-time as the partner's
    /// (received-potential-expiration-time), drop any pending local update of this address,
    /// make an accepted EXPIRED/RELEASED/RESET binding FREE (§5.11), then BNDACK.
    Accept,
    /// BNDACK with a reject-reason.
    Reject {
        /// The reject-reason ([`crate::wire::failover::reject`]).
        reason: u8,
        /// The local binding stays as it is and is the newer truth: send it to the partner
        /// (queue a BNDUPD) so the partner's copy is corrected. `false` when the update was
        /// malformed and nothing is known to be wrong on either side.
        keep_local: bool,
    },
}

/// Decide on an update (`update`) from the partner given the local binding of the same
/// address (`local`; `None`: never used, i.e. FREE/BACKUP) at `now` (draft-12 §7.1.3).
///
/// The caller has already checked that the address belongs to this relationship (else
/// reject-reason 1, "Illegal IP address"). `local_state` does not change the table
/// (§7.1.2); `role` decides a duplicate allocation (note 5).
///
/// One refinement of the table: an ACTIVE local binding that has expired (`now` past its
/// expiry) conflicts with nothing, so an ACTIVE update for another client is accepted by
/// the primary too; otherwise a stale record could outvote a live lease.
#[must_use]
pub fn apply_update(
    local: Option<&Binding>,
    update: &Binding,
    now: u32,
    local_state: State,
    role: Role,
) -> Decision {
    use BindingState as B;
    const OUTDATED: Decision = Decision::Reject {
        reason: reject::OUTDATED_BINDING,
        keep_local: true,
    };
    let _ = local_state;
    // §5.11: "ACTIVE -- ... Client identification MUST appear."
    if update.state == B::Active && update.client.as_deref().is_none_or(<[u8]>::is_empty) {
        return Decision::Reject {
            reason: reject::MISSING_BINDING_INFORMATION,
            keep_local: false,
        };
    }
    let Some(local) = local else {
        return Decision::Accept;
    };
    // time(1): the update's CLTT is later than ours. An update without CLTT is never
    // later; a local binding without CLTT is earlier than any update that has one.
    let cltt_later = update.cltt != 0 && (local.cltt == 0 || update.cltt > local.cltt);
    // time(2): our lease has run out.
    let local_expired = now > local.expires;
    let by = |ok: bool| if ok { Decision::Accept } else { OUTDATED };
    match (local.state, update.state) {
        // Row ACTIVE.
        (B::Active, B::Active) => {
            if local.client == update.client || local_expired {
                Decision::Accept
            } else {
                // Note 5: two clients, one address.
                match role {
                    Role::Secondary => Decision::Accept,
                    Role::Primary => Decision::Reject {
                        reason: reject::FATAL_CONFLICT,
                        keep_local: true,
                    },
                }
            }
        }
        (B::Active, B::Expired | B::Free | B::Backup) => by(local_expired),
        // time(1) cells of rows ACTIVE, EXPIRED, RELEASED; time(3) of row RESET (against
        // when it was reset).
        (B::Active, B::Released)
        | (B::Expired | B::Reset, B::Active)
        | (B::Released, B::Active | B::Expired) => by(cltt_later),
        // Row ABANDONED: only RESET or ABANDONED override it (note 4).
        (B::Abandoned, B::Active | B::Expired | B::Released | B::Free | B::Backup) => {
            Decision::Reject {
                reason: reject::LESS_CRITICAL_BINDING,
                keep_local: true,
            }
        }
        // Everything else in Figure 7.1.3-1 is "accept" (rows FREE/BACKUP; the RESET and
        // ABANDONED columns; EXPIRED and RELEASED rows for later states).
        _ => Decision::Accept,
    }
}

/// What a BNDACK without reject-reason changes in the sender's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckEffect {
    /// The binding state to store.
    pub state: BindingState,
    /// The acked-potential-expiration-time to store (§7.1.5).
    pub partner_expires: u32,
    /// The binding changed again after the acked update was sent: its update is still
    /// pending.
    pub still_pending: bool,
}

/// The effect of the partner acknowledging `acked` (the binding as sent in the BNDUPD) on
/// the local binding `local` (draft-12 §5.11, §7.1.5): the partner now knows
/// `acked.potential_expires`; if the local binding is still what was sent, its update is
/// done and an EXPIRED/RELEASED/RESET address becomes FREE ([`state_after_ack`]).
/// `partner_expires` is the previously acked potential expiry (never lowered).
#[must_use]
pub fn ack_effect(local: &Binding, acked: &Binding, partner_expires: u32, role: Role) -> AckEffect {
    let unchanged = local.state == acked.state
        && local.client == acked.client
        && local.expires == acked.expires
        && local.cltt == acked.cltt;
    AckEffect {
        state: if unchanged {
            state_after_ack(role, local.state)
        } else {
            local.state
        },
        partner_expires: partner_expires.max(acked.potential_expires),
        still_pending: !unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BindingState as B;

    const NOW: u32 = 10_000;

    fn b(state: BindingState, client: u8, expires: u32, cltt: u32) -> Binding {
        Binding {
            addr: Ipv4Addr::new(10, 0, 0, 1),
            state,
            client: (client != 0).then(|| vec![1, client]),
            expires,
            cltt,
            potential_expires: expires + 100,
        }
    }

    const OUT: Decision = Decision::Reject {
        reason: reject::OUTDATED_BINDING,
        keep_local: true,
    };
    const LESS: Decision = Decision::Reject {
        reason: reject::LESS_CRITICAL_BINDING,
        keep_local: true,
    };
    const FATAL: Decision = Decision::Reject {
        reason: reject::FATAL_CONFLICT,
        keep_local: true,
    };

    /// Figure 7.1.3-1, every cell, with the "time" cells tried both ways.
    #[test]
    fn figure_7_1_3_1() {
        let live = NOW + 500; // local lease not over
        let over = NOW - 1; // local lease over
        // (local, update, primary verdict, secondary verdict)
        let rows: Vec<(Binding, Binding, Decision, Decision)> = vec![
            // ACTIVE row
            (
                b(B::Active, 1, live, 50),
                b(B::Active, 1, live, 60),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Active, 1, live, 50),
                b(B::Active, 2, live, 60),
                FATAL,
                Decision::Accept,
            ),
            (
                b(B::Active, 1, over, 50),
                b(B::Active, 2, live, 60),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Active, 1, live, 50),
                b(B::Expired, 1, live, 60),
                OUT,
                OUT,
            ),
            (
                b(B::Active, 1, over, 50),
                b(B::Expired, 1, over, 40),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Active, 1, live, 50),
                b(B::Released, 1, live, 60),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Active, 1, live, 50),
                b(B::Released, 1, live, 50),
                OUT,
                OUT,
            ),
            (
                b(B::Active, 1, live, 50),
                b(B::Released, 1, live, 0),
                OUT,
                OUT,
            ),
            (b(B::Active, 1, live, 50), b(B::Free, 0, 0, 0), OUT, OUT),
            (
                b(B::Active, 1, over, 50),
                b(B::Free, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            (b(B::Active, 1, live, 50), b(B::Backup, 0, 0, 0), OUT, OUT),
            (
                b(B::Active, 1, over, 50),
                b(B::Backup, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Active, 1, live, 50),
                b(B::Reset, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Active, 1, live, 50),
                b(B::Abandoned, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            // EXPIRED row
            (
                b(B::Expired, 1, over, 50),
                b(B::Active, 2, live, 60),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Expired, 1, over, 50),
                b(B::Active, 2, live, 40),
                OUT,
                OUT,
            ),
            (
                b(B::Expired, 1, over, 50),
                b(B::Expired, 1, over, 40),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Expired, 1, over, 50),
                b(B::Released, 1, over, 40),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Expired, 1, over, 50),
                b(B::Free, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Expired, 1, over, 50),
                b(B::Abandoned, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            // RELEASED row
            (
                b(B::Released, 1, live, 50),
                b(B::Active, 1, live, 60),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Released, 1, live, 50),
                b(B::Active, 1, live, 49),
                OUT,
                OUT,
            ),
            (
                b(B::Released, 1, live, 50),
                b(B::Expired, 1, live, 60),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Released, 1, live, 50),
                b(B::Expired, 1, live, 50),
                OUT,
                OUT,
            ),
            (
                b(B::Released, 1, live, 50),
                b(B::Released, 1, live, 10),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Released, 1, live, 50),
                b(B::Backup, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Released, 1, live, 50),
                b(B::Reset, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            // FREE/BACKUP rows
            (
                b(B::Free, 0, 0, 0),
                b(B::Active, 1, live, 60),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Backup, 0, 0, 0),
                b(B::Active, 1, live, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Free, 0, 0, 0),
                b(B::Expired, 1, over, 60),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Backup, 0, 0, 0),
                b(B::Free, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Free, 0, 0, 0),
                b(B::Backup, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            // RESET row: time(3) against the reset time (kept in cltt).
            (
                b(B::Reset, 0, 0, 70),
                b(B::Active, 1, live, 80),
                Decision::Accept,
                Decision::Accept,
            ),
            (b(B::Reset, 0, 0, 70), b(B::Active, 1, live, 60), OUT, OUT),
            (
                b(B::Reset, 0, 0, 70),
                b(B::Expired, 1, over, 10),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Reset, 0, 0, 70),
                b(B::Free, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            // ABANDONED row
            (
                b(B::Abandoned, 0, live, 0),
                b(B::Active, 1, live, 60),
                LESS,
                LESS,
            ),
            (
                b(B::Abandoned, 0, live, 0),
                b(B::Expired, 1, live, 60),
                LESS,
                LESS,
            ),
            (
                b(B::Abandoned, 0, live, 0),
                b(B::Released, 1, live, 60),
                LESS,
                LESS,
            ),
            (b(B::Abandoned, 0, live, 0), b(B::Free, 0, 0, 0), LESS, LESS),
            (
                b(B::Abandoned, 0, live, 0),
                b(B::Backup, 0, 0, 0),
                LESS,
                LESS,
            ),
            (
                b(B::Abandoned, 0, live, 0),
                b(B::Reset, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
            (
                b(B::Abandoned, 0, live, 0),
                b(B::Abandoned, 0, 0, 0),
                Decision::Accept,
                Decision::Accept,
            ),
        ];
        for (i, (local, update, prim, sec)) in rows.iter().enumerate() {
            for st in State::ALL {
                assert_eq!(
                    apply_update(Some(local), update, NOW, st, Role::Primary),
                    *prim,
                    "row {i} primary in {st}: {local:?} <- {update:?}"
                );
                assert_eq!(
                    apply_update(Some(local), update, NOW, st, Role::Secondary),
                    *sec,
                    "row {i} secondary in {st}"
                );
            }
        }
    }

    #[test]
    fn unknown_address_accepts_and_active_needs_a_client() {
        assert_eq!(
            apply_update(
                None,
                &b(B::Active, 1, NOW, NOW),
                NOW,
                State::Normal,
                Role::Primary
            ),
            Decision::Accept
        );
        let missing = Decision::Reject {
            reason: reject::MISSING_BINDING_INFORMATION,
            keep_local: false,
        };
        assert_eq!(
            apply_update(
                None,
                &b(B::Active, 0, NOW, NOW),
                NOW,
                State::Normal,
                Role::Primary
            ),
            missing
        );
        let mut empty = b(B::Active, 1, NOW, NOW);
        empty.client = Some(Vec::new());
        assert_eq!(
            apply_update(None, &empty, NOW, State::Normal, Role::Secondary),
            missing
        );
    }

    #[test]
    fn ack_frees_expired_and_released() {
        for st in [B::Expired, B::Released, B::Reset] {
            let local = b(st, 1, NOW, 50);
            let e = ack_effect(&local, &local, 0, Role::Secondary);
            assert_eq!(e.state, B::Free);
            assert!(!e.still_pending);
            assert_eq!(e.partner_expires, local.potential_expires);
        }
        let active = b(B::Active, 1, NOW + 100, 50);
        let e = ack_effect(&active, &active, 0, Role::Primary);
        assert_eq!(e.state, B::Active);
        assert_eq!(e.partner_expires, NOW + 200);
    }

    #[test]
    fn ack_of_an_older_version_keeps_the_update_pending() {
        let sent = b(B::Active, 1, NOW + 100, 50);
        let now_local = b(B::Released, 1, NOW + 100, 80);
        let e = ack_effect(&now_local, &sent, 0, Role::Primary);
        assert_eq!(
            e.state,
            B::Released,
            "not freed: the release is not acked yet"
        );
        assert!(e.still_pending);
        assert_eq!(e.partner_expires, sent.potential_expires);
        // Never lowers what the partner acked before.
        let e = ack_effect(&now_local, &sent, u32::MAX, Role::Primary);
        assert_eq!(e.partner_expires, u32::MAX);
    }
}
