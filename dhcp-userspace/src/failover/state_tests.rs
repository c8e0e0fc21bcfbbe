//! Unit tests of the draft-12 §9 state machine: one table per kind of transition.

use super::*;
use State as S;

const MCLT: u32 = 3600;
const T0: u32 = 1_000_000;

/// A machine already in `state` (as if it got there at `T0`), not connected.
fn in_state(role: Role, state: State) -> Machine {
    let mut m = Machine::new(role, MCLT, None, None, T0);
    m.state = state;
    m.entered = T0;
    m.previous = state;
    m.time_of_failure = T0;
    m.recover_wait_until = T0 + MCLT;
    if state == S::PartnerDown {
        m.pd_start = Some(T0);
    }
    m
}

fn ps(state: State, now: u32) -> Event {
    Event::PartnerState {
        state,
        start_time: now - 10,
        now,
    }
}

fn persisted(state: State, role: Role) -> Persisted {
    Persisted {
        state,
        entered: T0 - 500,
        partner_state: Some(S::Normal),
        partner_entered: T0 - 600,
        pd_start: (state == S::PartnerDown).then_some(T0 - 500),
        role,
        mclt: MCLT,
        last_operational: T0 - 100,
        recover_all: false,
        partner_took_over: false,
    }
}

#[test]
fn names_wire_values_and_parsing() {
    let mut names = std::collections::HashSet::new();
    for s in State::ALL {
        assert!(names.insert(s.name()), "{s} twice");
        assert_eq!(s.name().parse::<State>(), Ok(s));
        assert_eq!(
            s.name().to_uppercase().replace('-', "_").parse::<State>(),
            Ok(s)
        );
        assert_eq!(State::from_wire(s.to_wire()), Some(s));
        assert_eq!(s.to_string(), s.name());
    }
    assert_eq!("partner-down".parse::<State>(), Ok(S::PartnerDown));
    assert_eq!(u8::from(S::RecoverWait.to_wire()), 254);
    assert!("partner-up".parse::<State>().is_err());
}

#[test]
fn state_message_event_decoding() {
    let e = State::event_of_state_message(ServerState::Normal, server_flags::STARTUP, 5, 9);
    assert_eq!(
        e,
        Some(Event::PartnerStartup {
            state: S::Normal,
            start_time: 5,
            now: 9
        })
    );
    let e = State::event_of_state_message(ServerState::PartnerDown, 0, 5, 9);
    assert_eq!(
        e,
        Some(Event::PartnerState {
            state: S::PartnerDown,
            start_time: 5,
            now: 9
        })
    );
}

#[test]
fn fresh_server_starts_towards_recover() {
    let m = Machine::new(Role::Primary, MCLT, None, None, T0);
    assert_eq!(m.state(), S::Startup);
    assert_eq!(m.previous, S::Recover);
    assert!(m.recover_all);
    assert_eq!(m.time_of_failure, 0, "§9.3.2 step 1: time-of-failure 0");
    assert_eq!(
        m.state_message(),
        (ServerState::Recover, server_flags::STARTUP, T0)
    );
    assert!(!m.policy(T0).respond);
    assert_eq!(m.startup_deadline(), T0 + STARTUP_SHORT_SECS);
}

/// §9.3.2 step 2: the previous state after the "communications failed" transition.
#[test]
fn restart_previous_state_table() {
    let rows = [
        (S::Normal, S::CommunicationsInterrupted),
        (S::CommunicationsInterrupted, S::CommunicationsInterrupted),
        (S::PartnerDown, S::PartnerDown),
        (S::PotentialConflict, S::ResolutionInterrupted),
        (S::ResolutionInterrupted, S::ResolutionInterrupted),
        (S::ConflictDone, S::ConflictDone),
        (S::Recover, S::Recover),
        (S::RecoverWait, S::RecoverWait),
        (S::RecoverDone, S::RecoverDone),
        (S::Startup, S::CommunicationsInterrupted),
        (S::Paused, S::CommunicationsInterrupted),
        (S::Shutdown, S::CommunicationsInterrupted),
    ];
    assert_eq!(rows.len(), State::ALL.len());
    for (stored, want) in rows {
        let p = persisted(stored, Role::Secondary);
        let mut m = Machine::new(Role::Secondary, MCLT, None, Some(&p), T0);
        assert_eq!(m.state(), S::Startup);
        assert_eq!(m.previous, want, "stored {stored}");
        // Startup time over: the previous state (§9.3.2 step 6).
        let deadline = m.startup_deadline();
        assert_eq!(deadline, T0 + STARTUP_SHORT_SECS, "down 100 s < MCLT");
        assert_eq!(
            m.handle(Event::Tick { now: deadline - 1 }),
            Outcome::default()
        );
        let out = m.handle(Event::Tick { now: deadline });
        let end = if want == S::RecoverWait {
            // RECOVER-WAIT waits the MCLT from the start.
            S::RecoverWait
        } else {
            want
        };
        assert_eq!(m.state(), end, "stored {stored}");
        assert_eq!(out.transition.map(|t| t.to), Some(end));
        assert!(!out.send_state, "not connected");
        if want == S::PartnerDown {
            assert_eq!(m.pd_start(), Some(T0 - 500), "PARTNER-DOWN keeps its start");
            assert_eq!(m.entered(), T0 - 500);
        } else {
            assert_eq!(m.pd_start(), None);
        }
    }
}

#[test]
fn startup_time_depends_on_down_time_and_role_mismatch_ignores_the_record() {
    let mut p = persisted(S::Normal, Role::Primary);
    p.last_operational = T0 - MCLT - 1;
    let m = Machine::new(Role::Primary, MCLT, None, Some(&p), T0);
    assert_eq!(m.startup_deadline(), T0 + STARTUP_LONG_SECS);
    let m = Machine::new(Role::Secondary, MCLT, None, Some(&p), T0);
    assert_eq!(m.previous, S::Recover, "record of the other role ignored");
    let mut m = Machine::new(Role::Primary, MCLT, None, Some(&p), T0);
    m.set_startup_secs(2);
    assert_eq!(m.startup_deadline(), T0 + 2);
}

/// §9.3.2 step 5 with the partner in PARTNER-DOWN.
#[test]
fn startup_meets_partner_down() {
    // Partner went down-mode after our last operation: RECOVER, and with our stable storage
    // intact an UPDREQ for what we missed (§9.5.2).
    let p = persisted(S::Normal, Role::Primary); // last_operational T0-100
    let mut m = Machine::new(Role::Primary, MCLT, None, Some(&p), T0);
    assert!(m.handle(Event::Connected { now: T0 + 1 }).send_state);
    let out = m.handle(Event::PartnerState {
        state: S::PartnerDown,
        start_time: T0 - 50,
        now: T0 + 1,
    });
    assert_eq!(m.state(), S::Recover);
    assert_eq!(out.request, Some(UpdateRequest::Missed));
    assert!(out.send_state);
    assert_eq!(out.transition.unwrap().from, S::Startup);
    // ... before it: POTENTIAL-CONFLICT, the primary asks with UPDREQ.
    let mut m = Machine::new(Role::Primary, MCLT, None, Some(&p), T0);
    m.handle(Event::Connected { now: T0 + 1 });
    let out = m.handle(Event::PartnerState {
        state: S::PartnerDown,
        start_time: T0 - 200,
        now: T0 + 1,
    });
    assert_eq!(m.state(), S::PotentialConflict);
    assert_eq!(out.request, Some(UpdateRequest::Missed));
    // The secondary waits for the primary's request.
    let p = persisted(S::Normal, Role::Secondary);
    let mut m = Machine::new(Role::Secondary, MCLT, None, Some(&p), T0);
    m.handle(Event::Connected { now: T0 + 1 });
    let out = m.handle(Event::PartnerState {
        state: S::PartnerDown,
        start_time: T0 - 200,
        now: T0 + 1,
    });
    assert_eq!(m.state(), S::PotentialConflict);
    assert_eq!(out.request, None);
}

#[test]
fn startup_partner_in_startup_ends_the_wait_only() {
    let p = persisted(S::Normal, Role::Primary);
    let mut m = Machine::new(Role::Primary, MCLT, None, Some(&p), T0);
    m.handle(Event::Connected { now: T0 });
    let out = m.handle(Event::PartnerStartup {
        state: S::Normal,
        start_time: T0 - 600,
        now: T0 + 1,
    });
    assert_eq!(m.state(), S::CommunicationsInterrupted);
    assert!(!m.comm_ok());
    assert!(out.send_state, "tell the partner our new state");
    // Then its real state arrives.
    m.handle(ps(S::CommunicationsInterrupted, T0 + 2));
    assert_eq!(m.state(), S::Normal);
}

/// Figure 9.2-1: the "communications OK" transition of each state for each partner state.
#[test]
fn communications_ok_table() {
    use S::*;
    let partners = [
        Normal,
        CommunicationsInterrupted,
        PartnerDown,
        PotentialConflict,
        ConflictDone,
        ResolutionInterrupted,
        Recover,
        RecoverWait,
        RecoverDone,
        Paused,
        Shutdown,
    ];
    // For each of our states: the state reached for each partner state (order above).
    let table: [(State, [State; 11]); 8] = [
        // §9.9.3
        (
            CommunicationsInterrupted,
            [
                Normal,
                Normal,
                PotentialConflict,
                PotentialConflict,
                PotentialConflict,
                PotentialConflict,
                CommunicationsInterrupted,
                CommunicationsInterrupted,
                Normal,
                CommunicationsInterrupted,
                PartnerDown,
            ],
        ),
        // §9.4.3
        (
            PartnerDown,
            [
                PotentialConflict,
                PotentialConflict,
                PotentialConflict,
                PotentialConflict,
                PotentialConflict,
                PotentialConflict,
                PartnerDown,
                PartnerDown,
                Normal,
                PartnerDown,
                PartnerDown,
            ],
        ),
        // §9.5.2 (the others send an update request and stay)
        (
            Recover,
            [
                Recover,
                Recover,
                Recover,
                PotentialConflict,
                PotentialConflict,
                PotentialConflict,
                Recover,
                Recover,
                Recover,
                Recover,
                Recover,
            ],
        ),
        // §9.6.2: communications have no effect
        (RecoverWait, [RecoverWait; 11]),
        // §9.7.2
        (
            RecoverDone,
            [
                Normal,
                RecoverDone,
                RecoverDone,
                RecoverDone,
                RecoverDone,
                RecoverDone,
                RecoverDone,
                RecoverDone,
                Normal,
                RecoverDone,
                RecoverDone,
            ],
        ),
        // §9.11.3
        (ResolutionInterrupted, [PotentialConflict; 11]),
        // §9.12.3
        (
            ConflictDone,
            [
                Normal,
                ConflictDone,
                ConflictDone,
                ConflictDone,
                ConflictDone,
                ConflictDone,
                ConflictDone,
                ConflictDone,
                ConflictDone,
                ConflictDone,
                ConflictDone,
            ],
        ),
        // §9.10: no communications-OK transition (entry actions only)
        (PotentialConflict, [PotentialConflict; 11]),
    ];
    for (ours, row) in table {
        for (partner, want) in partners.into_iter().zip(row) {
            let mut m = in_state(Role::Primary, ours);
            m.handle(Event::Connected { now: T0 + 1 });
            let out = m.handle(ps(partner, T0 + 2));
            assert_eq!(m.state(), want, "{ours} with partner {partner}");
            assert_eq!(
                out.transition.map(|t| (t.from, t.to)),
                (want != ours).then_some((ours, want)),
                "{ours} with partner {partner}"
            );
            assert_eq!(out.send_state, want != ours);
            if want == PartnerDown && ours != PartnerDown {
                assert_eq!(m.pd_start(), Some(T0 + 2));
            }
        }
    }
}

/// Figure 9.2-1: "communications failed" transitions.
#[test]
fn communications_failed_table() {
    for ours in State::ALL {
        let mut m = in_state(Role::Primary, ours);
        m.handle(Event::Connected { now: T0 + 1 });
        let out = m.handle(Event::ConnectionLost { now: T0 + 2 });
        let want = match ours {
            S::Normal => S::CommunicationsInterrupted,
            S::PotentialConflict => S::ResolutionInterrupted,
            s => s,
        };
        assert_eq!(m.state(), want, "{ours}");
        assert_eq!(out.transition.is_some(), want != ours);
        assert!(!out.send_state);
        assert!(!m.connected() && !m.comm_ok());
    }
    // Losing a connection that was never up changes nothing.
    let mut m = in_state(Role::Primary, S::Normal);
    assert_eq!(
        m.handle(Event::ConnectionLost { now: T0 }),
        Outcome::default()
    );
}

/// §9.2: a partner state change while communicating goes through "communications failed"
/// then "communications OK"; §9.8.4 lists the NORMAL cases.
#[test]
fn partner_changes_state_while_communicating() {
    let rows = [
        (
            S::Normal,
            S::Normal,
            S::Paused,
            S::CommunicationsInterrupted,
        ),
        (S::Normal, S::Normal, S::Shutdown, S::PartnerDown),
        (S::Normal, S::Normal, S::PartnerDown, S::PotentialConflict),
        (
            S::Normal,
            S::Normal,
            S::CommunicationsInterrupted,
            S::Normal,
        ),
        (S::Normal, S::ConflictDone, S::Normal, S::Normal),
        (S::PartnerDown, S::Recover, S::RecoverWait, S::PartnerDown),
        (S::PartnerDown, S::RecoverWait, S::RecoverDone, S::Normal),
        (S::RecoverDone, S::PartnerDown, S::Normal, S::Normal),
        (S::ConflictDone, S::PotentialConflict, S::Normal, S::Normal),
        (
            S::PotentialConflict,
            S::PotentialConflict,
            S::ConflictDone,
            S::PotentialConflict,
        ),
        (
            S::CommunicationsInterrupted,
            S::Recover,
            S::Shutdown,
            S::PartnerDown,
        ),
    ];
    for (ours, p0, p1, want) in rows {
        let mut m = in_state(Role::Secondary, ours);
        m.handle(Event::Connected { now: T0 + 1 });
        m.handle(ps(p0, T0 + 2));
        assert_eq!(m.state(), ours, "setup {ours}/{p0}");
        let out = m.handle(ps(p1, T0 + 3));
        assert_eq!(m.state(), want, "{ours}: partner {p0} -> {p1}");
        assert_eq!(out.transition.is_some(), want != ours);
        assert_eq!(m.partner_state(), Some(p1));
        assert_eq!(m.partner_entered(), T0 + 3 - 10);
    }
}

#[test]
fn recover_flow_of_a_fresh_server() {
    // §9.5.2 / Figure 9.5.2-1 with a partner in PARTNER-DOWN.
    let mut m = Machine::new(Role::Secondary, MCLT, None, None, T0);
    m.handle(Event::Connected { now: T0 + 1 });
    let out = m.handle(ps(S::PartnerDown, T0 + 1));
    assert_eq!(m.state(), S::Recover);
    assert_eq!(out.request, Some(UpdateRequest::All), "no stored state");
    // A repeated STATE does not repeat the request.
    assert_eq!(m.handle(ps(S::PartnerDown, T0 + 1)).request, None);
    // UPDDONE: RECOVER-WAIT, whose wait is over at once (time-of-failure 0).
    let out = m.handle(Event::UpdDoneReceived { now: T0 + 5 });
    assert_eq!(m.state(), S::RecoverDone);
    assert_eq!(
        out.transition.map(|t| (t.from, t.to)),
        Some((S::Recover, S::RecoverDone))
    );
    assert!(out.send_state);
    assert!(m.policy(T0 + 5).renew && !m.policy(T0 + 5).serve_new);
    // The partner moves to NORMAL (§9.4.3), so do we (§9.7.2).
    m.handle(ps(S::Normal, T0 + 6));
    assert_eq!(m.state(), S::Normal);
    assert!(!m.persisted().recover_all);
}

#[test]
fn recover_wait_waits_the_mclt_from_the_start() {
    let p = persisted(S::Recover, Role::Primary);
    let mut m = Machine::new(Role::Primary, MCLT, None, Some(&p), T0);
    m.handle(Event::Connected { now: T0 + 1 });
    let out = m.handle(ps(S::CommunicationsInterrupted, T0 + 1));
    assert_eq!(m.state(), S::Recover);
    assert_eq!(
        out.request,
        Some(UpdateRequest::Missed),
        "stored state: UPDREQ"
    );
    // Communications fail before UPDDONE: stay, ask again when back (§9.5.2).
    m.handle(Event::ConnectionLost { now: T0 + 2 });
    assert_eq!(m.state(), S::Recover);
    assert_eq!(
        m.handle(Event::UpdDoneReceived { now: T0 + 2 }).transition,
        None
    );
    m.handle(Event::Connected { now: T0 + 3 });
    assert_eq!(
        m.handle(ps(S::CommunicationsInterrupted, T0 + 3)).request,
        Some(UpdateRequest::Missed)
    );
    m.handle(Event::UpdDoneReceived { now: T0 + 4 });
    assert_eq!(m.state(), S::RecoverWait);
    assert_eq!(m.recover_wait_until(), T0 + MCLT);
    assert_eq!(m.next_deadline(), Some(T0 + MCLT));
    // Communications failing has no effect; the timer runs on (§9.6.2).
    m.handle(Event::ConnectionLost { now: T0 + 10 });
    assert_eq!(
        m.handle(Event::Tick { now: T0 + MCLT - 1 }).transition,
        None
    );
    let out = m.handle(Event::Tick { now: T0 + MCLT });
    assert_eq!(m.state(), S::RecoverDone);
    assert!(!out.send_state);
    // Back in touch with a partner in RECOVER-DONE: NORMAL.
    m.handle(Event::Connected { now: T0 + MCLT + 1 });
    m.handle(ps(S::RecoverDone, T0 + MCLT + 1));
    assert_eq!(m.state(), S::Normal);
}

#[test]
fn potential_conflict_resolution_primary_and_secondary() {
    // §9.10, Figure 9.10.3-1.
    let mut prim = in_state(Role::Primary, S::CommunicationsInterrupted);
    let mut sec = in_state(Role::Secondary, S::PartnerDown);
    prim.handle(Event::Connected { now: T0 + 1 });
    sec.handle(Event::Connected { now: T0 + 1 });
    let out = prim.handle(ps(S::PartnerDown, T0 + 1));
    assert_eq!(prim.state(), S::PotentialConflict);
    assert_eq!(
        out.request,
        Some(UpdateRequest::Missed),
        "primary asks on entry"
    );
    let out = sec.handle(ps(S::PotentialConflict, T0 + 1));
    assert_eq!(sec.state(), S::PotentialConflict);
    assert_eq!(out.request, None, "secondary waits");
    assert!(!sec.policy(T0).respond && !prim.policy(T0).respond);
    // The secondary answers; the primary gets UPDDONE.
    sec.handle(Event::UpdDoneSent { now: T0 + 2 });
    assert!(sec.upd_done_sent());
    let out = prim.handle(Event::UpdDoneReceived { now: T0 + 2 });
    assert_eq!(prim.state(), S::ConflictDone);
    assert!(out.send_state);
    assert!(prim.policy(T0).serve_new);
    // The secondary learns CONFLICT-DONE and asks.
    let out = sec.handle(ps(S::ConflictDone, T0 + 3));
    assert_eq!(out.request, Some(UpdateRequest::Missed));
    assert_eq!(out.transition, None);
    let out = sec.handle(Event::UpdDoneReceived { now: T0 + 4 });
    assert_eq!(sec.state(), S::Normal);
    assert!(out.send_state);
    prim.handle(ps(S::Normal, T0 + 5));
    assert_eq!(prim.state(), S::Normal);
}

#[test]
fn resolution_interrupted_and_conflict_done_on_connection_loss() {
    let mut m = in_state(Role::Primary, S::PotentialConflict);
    m.handle(Event::Connected { now: T0 });
    m.handle(ps(S::PotentialConflict, T0));
    m.handle(Event::ConnectionLost { now: T0 + 1 });
    assert_eq!(m.state(), S::ResolutionInterrupted);
    assert!(m.policy(T0).serve_new, "§9.11.2: responsive");
    m.handle(Event::Connected { now: T0 + 2 });
    let out = m.handle(ps(S::ResolutionInterrupted, T0 + 2));
    assert_eq!(m.state(), S::PotentialConflict);
    assert_eq!(out.request, Some(UpdateRequest::Missed));
    // CONFLICT-DONE stays on loss (§9.12.3).
    let mut m = in_state(Role::Primary, S::ConflictDone);
    m.handle(Event::Connected { now: T0 });
    m.handle(ps(S::PotentialConflict, T0));
    m.handle(Event::ConnectionLost { now: T0 + 1 });
    assert_eq!(m.state(), S::ConflictDone);
}

#[test]
fn operator_partner_down_table() {
    for ours in State::ALL {
        let mut m = in_state(Role::Secondary, ours);
        let out = m.handle(Event::OperatorPartnerDown { now: T0 + 7 });
        let allowed = matches!(
            ours,
            S::Normal | S::CommunicationsInterrupted | S::ResolutionInterrupted
        );
        let want = if allowed { S::PartnerDown } else { ours };
        assert_eq!(m.state(), want, "{ours}");
        if allowed {
            let t = out.transition.unwrap();
            assert_eq!((t.from, t.to, t.at), (ours, S::PartnerDown, T0 + 7));
            assert_eq!(m.pd_start(), Some(T0 + 7));
            let pol = m.policy(T0 + 7);
            assert_eq!(pol.partner_free_after, Some(T0 + 7 + MCLT));
            assert!(!pol.partner_free_now);
            assert!(m.policy(T0 + 7 + MCLT).partner_free_now);
        } else {
            assert_eq!(out.transition, None);
        }
    }
}

#[test]
fn safe_period_moves_communications_interrupted_to_partner_down() {
    let mut m = Machine::new(Role::Primary, MCLT, Some(600), None, T0);
    m.state = S::CommunicationsInterrupted;
    m.entered = T0;
    assert_eq!(m.next_deadline(), Some(T0 + 600));
    assert_eq!(m.handle(Event::Tick { now: T0 + 599 }).transition, None);
    let out = m.handle(Event::Tick { now: T0 + 600 });
    assert_eq!(m.state(), S::PartnerDown);
    assert_eq!(out.transition.unwrap().reason, "safe period expired");
    assert_eq!(m.pd_start(), Some(T0 + 600));
    // Off when not configured.
    let mut m = in_state(Role::Primary, S::CommunicationsInterrupted);
    assert_eq!(m.next_deadline(), None);
    assert_eq!(m.handle(Event::Tick { now: u32::MAX }).transition, None);
}

#[test]
fn partner_down_ignores_startup_messages_and_leaves_on_recover_done() {
    let mut m = in_state(Role::Primary, S::PartnerDown);
    m.handle(Event::Connected { now: T0 + 1 });
    let out = m.handle(Event::PartnerStartup {
        state: S::Normal,
        start_time: 0,
        now: T0 + 1,
    });
    assert_eq!(out.transition, None);
    assert!(m.partner_in_startup() && !m.comm_ok());
    m.handle(ps(S::Recover, T0 + 2));
    assert_eq!(m.state(), S::PartnerDown);
    m.handle(ps(S::RecoverDone, T0 + 3));
    assert_eq!(m.state(), S::Normal);
    assert_eq!(m.pd_start(), None);
}

#[test]
fn shutdown_and_pause_record_the_state_to_resume() {
    let mut m = in_state(Role::Primary, S::Normal);
    m.handle(Event::Connected { now: T0 });
    m.handle(ps(S::Normal, T0));
    let out = m.handle(Event::Shutdown { now: T0 + 5 });
    assert_eq!(m.state(), S::Shutdown);
    assert!(out.send_state, "§9.14.1: tell the partner");
    assert!(!m.policy(T0 + 5).respond);
    assert_eq!(m.persisted().state, S::Normal);
    assert_eq!(m.persisted().entered, T0);
    // §9.14.2: the partner moves to PARTNER-DOWN → RECOVER next time.
    m.handle(ps(S::PartnerDown, T0 + 6));
    assert_eq!(m.state(), S::Shutdown);
    let p = m.persisted();
    assert_eq!(p.state, S::Recover);
    assert!(p.recover_all);
    let restarted = Machine::new(Role::Primary, MCLT, None, Some(&p), T0 + 100);
    assert_eq!(restarted.previous, S::Recover);

    let mut m = in_state(Role::Secondary, S::PartnerDown);
    m.handle(Event::Pause { now: T0 + 5 });
    assert_eq!(m.state(), S::Paused);
    let p = m.persisted();
    assert_eq!((p.state, p.pd_start), (S::PartnerDown, Some(T0)));
}

#[test]
fn persisted_round_trip_through_a_restart() {
    let mut m = in_state(Role::Primary, S::CommunicationsInterrupted);
    m.handle(Event::OperatorPartnerDown { now: T0 + 10 });
    m.note_activity(T0 + 20);
    let p = m.persisted();
    assert_eq!(p.state, S::PartnerDown);
    assert_eq!(p.pd_start, Some(T0 + 10));
    assert_eq!(p.last_operational, T0 + 20);
    let mut r = Machine::new(Role::Primary, MCLT, None, Some(&p), T0 + 30);
    assert_eq!(r.persisted(), p, "STARTUP records what it stands for");
    r.handle(Event::Tick {
        now: T0 + 30 + STARTUP_SHORT_SECS,
    });
    assert_eq!(r.state(), S::PartnerDown);
    assert_eq!(r.pd_start(), Some(T0 + 10));
    assert_eq!(
        r.state_message(),
        (ServerState::PartnerDown, 0, T0 + 10),
        "start-time-of-state is the PARTNER-DOWN entry"
    );
}

#[test]
fn connected_asks_for_our_state_and_resets_the_exchange() {
    let mut m = in_state(Role::Primary, S::Recover);
    m.handle(Event::Connected { now: T0 });
    assert_eq!(
        m.handle(ps(S::PartnerDown, T0)).request,
        Some(UpdateRequest::All)
    );
    assert_eq!(m.requested(), Some(UpdateRequest::All));
    let out = m.handle(Event::Connected { now: T0 + 1 });
    assert!(out.send_state);
    assert_eq!(m.requested(), None);
    assert!(!m.comm_ok());
}

#[test]
fn waiting_in_startup_is_optional() {
    let p = persisted(S::Normal, Role::Primary);
    let mut m = Machine::new(Role::Primary, MCLT, None, Some(&p), T0);
    m.set_wait_in_startup(true);
    assert_eq!(m.handle(Event::Tick { now: u32::MAX }).transition, None);
    assert_eq!(m.state(), S::Startup);
    m.handle(Event::Connected { now: T0 + 100 });
    m.handle(ps(S::CommunicationsInterrupted, T0 + 100));
    assert_eq!(m.state(), S::Normal);
}

/// §9.11.2 "(if that can be determined)": after meeting a partner in PARTNER-DOWN, our own
/// available addresses are not trusted until the resolution completes.
#[test]
fn resolution_interrupted_after_partner_down_serves_renewals_only() {
    let mut m = in_state(Role::Primary, S::CommunicationsInterrupted);
    m.handle(Event::Connected { now: T0 });
    m.handle(ps(S::PartnerDown, T0));
    assert_eq!(m.state(), S::PotentialConflict);
    m.handle(Event::ConnectionLost { now: T0 + 1 });
    assert_eq!(m.state(), S::ResolutionInterrupted);
    let p = m.policy(T0 + 1);
    assert!(p.respond && p.renew);
    assert!(!p.serve_new && !p.allocate_own);
    // Survives a restart.
    let rec = m.persisted();
    assert!(rec.partner_took_over);
    let mut r = Machine::new(Role::Primary, MCLT, None, Some(&rec), T0 + 2);
    r.handle(Event::Tick {
        now: T0 + 2 + STARTUP_LONG_SECS,
    });
    assert_eq!(r.state(), S::ResolutionInterrupted);
    assert!(!r.policy(T0 + 100).serve_new);
    // Resolution completes: NORMAL clears it.
    r.handle(Event::Connected { now: T0 + 200 });
    r.handle(ps(S::ResolutionInterrupted, T0 + 200));
    r.handle(Event::UpdDoneReceived { now: T0 + 201 });
    r.handle(ps(S::Normal, T0 + 202));
    assert_eq!(r.state(), S::Normal);
    assert!(!r.persisted().partner_took_over);
    // Without a partner-down partner, RESOLUTION-INTERRUPTED serves from its own share.
    let mut m = in_state(Role::Primary, S::ResolutionInterrupted);
    assert!(m.policy(T0).serve_new);
    m.handle(Event::OperatorPartnerDown { now: T0 });
    assert_eq!(m.state(), S::PartnerDown);
}
