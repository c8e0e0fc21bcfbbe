//! What each failover state allows a DHCP server to do, and the lease-time arithmetic of
//! the maximum client lead time (draft-ietf-dhc-failover-12 §5.2, §5.4, §5.11, §7.1.5, §9).

use super::state::{Role, State};
use crate::lease::BindingState;

/// Whose share of the available addresses an address is in (draft-12 §2.2 "available IP
/// address", §5.4): FREE addresses are the primary's, BACKUP addresses the secondary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Share {
    /// This server's own available addresses.
    Own,
    /// The partner's available addresses.
    Partner,
}

impl Share {
    /// The share of an address in `state` as seen by a server in `role`; `None` for states
    /// that are not available for allocation (ACTIVE, EXPIRED, RELEASED, ABANDONED, RESET).
    #[must_use]
    pub fn of(role: Role, state: BindingState) -> Option<Self> {
        match (role, state) {
            (Role::Primary, BindingState::Free) | (Role::Secondary, BindingState::Backup) => {
                Some(Self::Own)
            }
            (Role::Primary, BindingState::Backup) | (Role::Secondary, BindingState::Free) => {
                Some(Self::Partner)
            }
            _ => None,
        }
    }

    /// The binding state of this server's own available addresses.
    #[must_use]
    pub fn own_state(role: Role) -> BindingState {
        match role {
            Role::Primary => BindingState::Free,
            Role::Secondary => BindingState::Backup,
        }
    }
}

/// The allocation and response rules of one failover state (draft-12 §9, per state
/// "Operation in ... state"; summary in the legend of Figure 9.2-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one flag per independent permission of the draft-12 §9 per-state rules"
)]
pub struct Policy {
    /// May answer a client that needs an address it does not hold yet (DHCPDISCOVER,
    /// DHCPREQUEST/SELECTING, INIT-REBOOT of an unknown binding).
    pub serve_new: bool,
    /// May allocate from this server's own share (FREE for the primary, BACKUP for the
    /// secondary).
    pub allocate_own: bool,
    /// PARTNER-DOWN: the partner's share may be allocated from this time on (`pd_start` +
    /// MCLT, §9.4.2); `None` in every other state.
    pub partner_free_after: Option<u32>,
    /// Set by [`super::Machine::policy`]: whether `partner_free_after` has passed.
    pub partner_free_now: bool,
    /// May answer DHCPREQUEST/RENEWING and REBINDING from any client (§9.8.2, §9.9.2).
    pub renew: bool,
    /// Non-renewal requests are load balanced with the RFC 3074 hash (NORMAL only,
    /// §9.8.2; §9.9.2 and §9.11.2 forbid it elsewhere).
    pub load_balance: bool,
    /// Responsive at all (§9.3.1, §9.5.1, §9.6.1, §9.10.2, §9.14.2 are unresponsive).
    pub respond: bool,
    /// The MCLT: every lease time is bounded with [`grant_expiry`] in every state
    /// (PARTNER-DOWN included: §9.4.2 lets a server keep the bound to survive the loss of
    /// its stable storage, and twinlease does).
    pub mclt: u32,
    /// When PARTNER-DOWN began (`None` outside PARTNER-DOWN): addresses held by a client at
    /// that time are reused only after [`partner_down_reuse_at`].
    pub pd_start: Option<u32>,
}

impl Policy {
    /// Whether an address of `share` may be allocated to a new client at `now`.
    #[must_use]
    pub fn may_allocate(&self, share: Share, now: u32) -> bool {
        match share {
            Share::Own => self.allocate_own,
            Share::Partner => self.partner_free_after.is_some_and(|t| now >= t),
        }
    }

    /// Whether to answer a request: `renewal` for DHCPREQUEST/RENEWING or REBINDING,
    /// `balanced_mine` for what [`super::Buckets::answers`] says about the client.
    #[must_use]
    pub fn answers(&self, renewal: bool, balanced_mine: bool) -> bool {
        if !self.respond {
            return false;
        }
        if renewal {
            return self.renew;
        }
        self.serve_new && (!self.load_balance || balanced_mine)
    }
}

/// The rules of `state` for a server in `role` (draft-12 §9.3.1 … §9.14.2).
#[must_use]
pub fn policy_for(state: State, role: Role, mclt: u32, pd_start: Option<u32>) -> Policy {
    let _ = role; // the rules are symmetric; the share each role owns is in `Share::of`.
    let off = Policy {
        serve_new: false,
        allocate_own: false,
        partner_free_after: None,
        partner_free_now: false,
        renew: false,
        load_balance: false,
        respond: false,
        mclt,
        pd_start: None,
    };
    let full = Policy {
        serve_new: true,
        allocate_own: true,
        renew: true,
        respond: true,
        ..off
    };
    match state {
        // §9.3.1, §9.5.1, §9.6.1, §9.10.2, §9.13, §9.14.2: unresponsive.
        State::Startup
        | State::Recover
        | State::RecoverWait
        | State::PotentialConflict
        | State::Paused
        | State::Shutdown => off,
        // §9.8.2: renewals from anyone, the rest as the load balancing says.
        State::Normal => Policy {
            load_balance: true,
            ..full
        },
        // §9.9.2, §9.11.2, §9.12.2: responsive to all, own share only, no load balancing.
        State::CommunicationsInterrupted | State::ResolutionInterrupted | State::ConflictDone => {
            full
        }
        // §9.4.2: own share at once, the partner's share MCLT after entering PARTNER-DOWN.
        State::PartnerDown => Policy {
            partner_free_after: pd_start.map(|t| t.saturating_add(mclt)),
            pd_start,
            ..full
        },
        // §9.7.1: "MUST respond only to DHCPREQUEST/RENEWAL and DHCPREQUEST/REBINDING".
        State::RecoverDone => Policy {
            renew: true,
            respond: true,
            ..off
        },
    }
}

/// The expiry to give a client asking for `desired_secs` at `now` (draft-12 §5.2.1: "actual
/// lease interval < acknowledged potential lease interval + MCLT"; §9.9.2 for the states
/// without a partner).
///
/// `partner_acked_expiry` is the latest potential-expiration-time the partner knows for
/// this binding: per §7.1.5, max(acked-potential-expiration-time,
/// received-potential-expiration-time); 0 for a binding the partner has never heard of, so a
/// new client gets at most the MCLT. The lease never runs past
/// max(`partner_acked_expiry`, `now`) + MCLT.
#[must_use]
pub fn grant_expiry(now: u32, desired_secs: u32, partner_acked_expiry: u32, mclt: u32) -> u32 {
    let remaining = partner_acked_expiry.saturating_sub(now);
    let allowed = remaining.saturating_add(mclt);
    now.saturating_add(desired_secs.min(allowed))
}

/// The potential-expiration-time to send to the partner with a grant expiring at
/// `granted_expiry` (draft-12 §5.2.1 example: the renewal interval, half the actual lease
/// interval, plus the desired lease interval; §9.8.3: at least the lease time).
#[must_use]
pub fn potential_expiry(now: u32, desired_secs: u32, granted_expiry: u32) -> u32 {
    let actual = granted_expiry.saturating_sub(now);
    now.saturating_add(actual / 2)
        .saturating_add(desired_secs)
        .max(granted_expiry)
}

/// In PARTNER-DOWN, when an address held by (or last given to) a client at the entry into
/// PARTNER-DOWN may go to a different client: the MCLT after the later of the lease's end
/// and `pd_start` (draft-12 §5.2.1, §5.2.2, §9.4.2).
///
/// `expiry` must be the latest of the times §9.4.2 lists: the client's expiration time, the
/// potential-expiration-time last sent, the last one the partner acked and the last one we
/// acked to the partner.
#[must_use]
pub fn partner_down_reuse_at(expiry: u32, pd_start: u32, mclt: u32) -> u32 {
    expiry.max(pd_start).saturating_add(mclt)
}

/// The binding state an address takes when its lease runs out (or is released: use
/// [`BindingState::Released`] for that): EXPIRED, in every failover state and for both
/// roles (draft-12 §5.11, Figure 5.11-1). It stays EXPIRED (unavailable) until the partner
/// acknowledges the BNDUPD that reports it ([`state_after_ack`]), or in PARTNER-DOWN until
/// [`partner_down_reuse_at`]; only the same client may have it back before that (§5.2.2).
#[must_use]
pub fn state_after_expiry(role: Role, state: State) -> BindingState {
    let _ = (role, state);
    BindingState::Expired
}

/// The binding state an address takes when the partner acknowledges a BNDUPD that carried
/// `sent` (draft-12 §5.11): EXPIRED, RELEASED and RESET become FREE, for both roles — an
/// address that becomes available again is owned by the primary (§5.4: "When the DHCP
/// client releases the address or the lease on it expires, it will again become available
/// and will be owned by the primary"); the primary hands addresses to the secondary with
/// BNDUPD BACKUP (pool balancing). Other states stay.
#[must_use]
pub fn state_after_ack(role: Role, sent: BindingState) -> BindingState {
    let _ = role;
    match sent {
        BindingState::Expired | BindingState::Released | BindingState::Reset => BindingState::Free,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_of_follows_the_role() {
        assert_eq!(
            Share::of(Role::Primary, BindingState::Free),
            Some(Share::Own)
        );
        assert_eq!(
            Share::of(Role::Primary, BindingState::Backup),
            Some(Share::Partner)
        );
        assert_eq!(
            Share::of(Role::Secondary, BindingState::Backup),
            Some(Share::Own)
        );
        assert_eq!(
            Share::of(Role::Secondary, BindingState::Free),
            Some(Share::Partner)
        );
        for s in [
            BindingState::Active,
            BindingState::Expired,
            BindingState::Released,
            BindingState::Abandoned,
            BindingState::Reset,
        ] {
            assert_eq!(Share::of(Role::Primary, s), None);
            assert_eq!(Share::of(Role::Secondary, s), None);
        }
        assert_eq!(Share::own_state(Role::Primary), BindingState::Free);
        assert_eq!(Share::own_state(Role::Secondary), BindingState::Backup);
    }

    #[test]
    fn policy_table() {
        // (state, respond, serve_new, renew, load_balance, partner share)
        let rows = [
            (State::Startup, false, false, false, false),
            (State::Normal, true, true, true, true),
            (State::CommunicationsInterrupted, true, true, true, false),
            (State::PartnerDown, true, true, true, false),
            (State::PotentialConflict, false, false, false, false),
            (State::ConflictDone, true, true, true, false),
            (State::ResolutionInterrupted, true, true, true, false),
            (State::Recover, false, false, false, false),
            (State::RecoverWait, false, false, false, false),
            (State::RecoverDone, true, false, true, false),
            (State::Paused, false, false, false, false),
            (State::Shutdown, false, false, false, false),
        ];
        assert_eq!(rows.len(), State::ALL.len());
        for (st, respond, new, renew, lb) in rows {
            for role in [Role::Primary, Role::Secondary] {
                let pd = (st == State::PartnerDown).then_some(1000);
                let p = policy_for(st, role, 60, pd);
                assert_eq!(p.respond, respond, "{st} respond");
                assert_eq!(p.serve_new, new, "{st} serve_new");
                assert_eq!(p.allocate_own, new, "{st} allocate_own");
                assert_eq!(p.renew, renew, "{st} renew");
                assert_eq!(p.load_balance, lb, "{st} load_balance");
                assert_eq!(p.mclt, 60);
                if st == State::PartnerDown {
                    assert_eq!(p.partner_free_after, Some(1060));
                    assert_eq!(p.pd_start, Some(1000));
                    assert!(!p.may_allocate(Share::Partner, 1059));
                    assert!(p.may_allocate(Share::Partner, 1060));
                } else {
                    assert_eq!(p.partner_free_after, None);
                    assert!(!p.may_allocate(Share::Partner, u32::MAX));
                }
                assert_eq!(p.may_allocate(Share::Own, 0), new);
            }
        }
    }

    #[test]
    fn answers_combines_state_and_load_balancing() {
        let normal = policy_for(State::Normal, Role::Primary, 60, None);
        assert!(
            normal.answers(true, false),
            "renewals from any client in NORMAL"
        );
        assert!(normal.answers(false, true));
        assert!(!normal.answers(false, false), "other server's bucket");
        let ci = policy_for(State::CommunicationsInterrupted, Role::Secondary, 60, None);
        assert!(ci.answers(false, false), "no load balancing in COMM-INT");
        let rd = policy_for(State::RecoverDone, Role::Primary, 60, None);
        assert!(rd.answers(true, true));
        assert!(
            !rd.answers(false, true),
            "RECOVER-DONE answers renewals only"
        );
        let rec = policy_for(State::Recover, Role::Primary, 60, None);
        assert!(!rec.answers(true, true));
    }

    #[test]
    fn grant_expiry_mclt_bound() {
        // New client: at most the MCLT (§5.2.1 example: first lease = MCLT = 1 hour).
        assert_eq!(grant_expiry(1000, 3 * 86400, 0, 3600), 1000 + 3600);
        // Desired shorter than the bound.
        assert_eq!(grant_expiry(1000, 600, 0, 3600), 1600);
        // Renewal at T1 with acked potential = t + 3 days + 1/2 hour, 1/2 hour later: the
        // remainder (3 days) + MCLT exceeds the desired 3 days → full 3 days.
        let t = 1000;
        let acked = t + 3 * 86400 + 1800;
        assert_eq!(
            grant_expiry(t + 1800, 3 * 86400, acked, 3600),
            t + 1800 + 3 * 86400
        );
        // Acked expiry in the past counts as now.
        assert_eq!(grant_expiry(5000, 86400, 100, 60), 5060);
        // Saturation at the end of time.
        assert_eq!(grant_expiry(u32::MAX - 10, 100, 0, 60), u32::MAX);
    }

    #[test]
    fn potential_expiry_leads_the_client() {
        // §5.2.1 example: actual 1 hour, desired 3 days → t + 1/2 hour + 3 days.
        assert_eq!(potential_expiry(0, 3 * 86400, 3600), 1800 + 3 * 86400);
        // Never below the grant.
        assert_eq!(potential_expiry(0, 0, 500), 500);
        assert!(potential_expiry(100, 10, 1000) >= 1000);
    }

    #[test]
    fn reuse_after_partner_down() {
        // Lease ended before PARTNER-DOWN: MCLT after pd_start.
        assert_eq!(partner_down_reuse_at(500, 1000, 60), 1060);
        // Lease ends after: MCLT after its end.
        assert_eq!(partner_down_reuse_at(2000, 1000, 60), 2060);
        assert_eq!(partner_down_reuse_at(u32::MAX, 0, 60), u32::MAX);
    }

    #[test]
    fn expiry_and_ack_states() {
        for role in [Role::Primary, Role::Secondary] {
            for st in State::ALL {
                assert_eq!(state_after_expiry(role, st), BindingState::Expired);
            }
            assert_eq!(
                state_after_ack(role, BindingState::Expired),
                BindingState::Free
            );
            assert_eq!(
                state_after_ack(role, BindingState::Released),
                BindingState::Free
            );
            assert_eq!(
                state_after_ack(role, BindingState::Reset),
                BindingState::Free
            );
            assert_eq!(
                state_after_ack(role, BindingState::Active),
                BindingState::Active
            );
            assert_eq!(
                state_after_ack(role, BindingState::Backup),
                BindingState::Backup
            );
            assert_eq!(
                state_after_ack(role, BindingState::Abandoned),
                BindingState::Abandoned
            );
        }
    }
}
