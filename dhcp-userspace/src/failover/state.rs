//! The failover state machine of one server in one failover relationship
//! (draft-ietf-dhc-failover-12 §9).
//!
//! [`Machine`] holds the local state, the partner's last known state and the progress of
//! the recovery and conflict-resolution exchanges. It is driven by [`Event`]s and answers
//! each with an [`Outcome`]: the state change (if any), whether a STATE message must go to
//! the partner, and whether an UPDREQ or UPDREQALL must be sent. It performs no I/O: the
//! partner thread sends the messages and records [`Machine::persisted`] in stable storage
//! after every transition (draft-12 §9.2).
//!
//! "Communications OK" (draft-12 §8.3) means: connected ([`Event::Connected`]: TCP up and
//! CONNECT/CONNECTACK done) *and* a STATE message received from the partner
//! ([`Event::PartnerState`]). A STATE message carrying the STARTUP server flag is reported as
//! [`Event::PartnerStartup`]: it does not make communications OK (the partner's real state
//! is not known yet, §9.3.1).

use std::fmt;
use std::str::FromStr;

use super::persist::Persisted;
use super::rules::{Policy, policy_for};
use crate::wire::failover::{ServerState, server_flags};

/// Seconds spent in STARTUP when the server was down for less than the MCLT
/// (draft-12 §5.9: "it can wait only a few (say 5 or 10) seconds").
pub const STARTUP_SHORT_SECS: u32 = 5;

/// Seconds spent in STARTUP when the server was down for the MCLT or longer, or when the
/// down time is unknown (draft-12 §5.9: "a considerably longer startup period of 30 to 60
/// seconds may be warranted").
pub const STARTUP_LONG_SECS: u32 = 30;

/// The role of this server in the relationship (draft-12 §2.2, §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The primary: owns FREE addresses, sends the hash-bucket assignment and the MCLT.
    Primary,
    /// The secondary: owns BACKUP addresses.
    Secondary,
}

impl Role {
    /// `"primary"` or `"secondary"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        }
    }

    /// The partner's role.
    #[must_use]
    pub fn peer(self) -> Self {
        match self {
            Self::Primary => Self::Secondary,
            Self::Secondary => Self::Primary,
        }
    }
}

/// A failover endpoint state (draft-12 §9, values §12.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// STARTUP (§9.3): probing the partner before serving; unresponsive.
    Startup,
    /// NORMAL (§9.8): communicating and synchronised; load balanced.
    Normal,
    /// COMMUNICATIONS-INTERRUPTED (§9.9): partner unreachable; serve from own share.
    CommunicationsInterrupted,
    /// PARTNER-DOWN (§9.4): the partner is known not to be operating.
    PartnerDown,
    /// POTENTIAL-CONFLICT (§9.10): reintegrating after both may have served; unresponsive.
    PotentialConflict,
    /// CONFLICT-DONE (§9.12): the primary has the secondary's updates; fully responsive.
    ConflictDone,
    /// RESOLUTION-INTERRUPTED (§9.11): communications failed during POTENTIAL-CONFLICT.
    ResolutionInterrupted,
    /// RECOVER (§9.5): refreshing the binding database from the partner; unresponsive.
    Recover,
    /// RECOVER-WAIT (§9.6): waiting the MCLT after recovery; unresponsive.
    RecoverWait,
    /// RECOVER-DONE (§9.7): interlock before NORMAL; renewals only.
    RecoverDone,
    /// PAUSED (§9.13): out of service for a short time.
    Paused,
    /// SHUTDOWN (§9.14): out of service for a long time.
    Shutdown,
}

/// A state name that [`State::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failover state {0:?}")]
pub struct ParseStateError(pub String);

impl State {
    /// Every state, in draft-12 §9 order.
    pub const ALL: [Self; 12] = [
        Self::Startup,
        Self::Normal,
        Self::CommunicationsInterrupted,
        Self::PartnerDown,
        Self::PotentialConflict,
        Self::ConflictDone,
        Self::ResolutionInterrupted,
        Self::Recover,
        Self::RecoverWait,
        Self::RecoverDone,
        Self::Paused,
        Self::Shutdown,
    ];

    /// Lower-case hyphenated name, as in logs, the control API and the configuration.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Normal => "normal",
            Self::CommunicationsInterrupted => "communications-interrupted",
            Self::PartnerDown => "partner-down",
            Self::PotentialConflict => "potential-conflict",
            Self::ConflictDone => "conflict-done",
            Self::ResolutionInterrupted => "resolution-interrupted",
            Self::Recover => "recover",
            Self::RecoverWait => "recover-wait",
            Self::RecoverDone => "recover-done",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
        }
    }

    /// The server-state option value (draft-12 §12.24).
    #[must_use]
    pub fn to_wire(self) -> ServerState {
        match self {
            Self::Startup => ServerState::Startup,
            Self::Normal => ServerState::Normal,
            Self::CommunicationsInterrupted => ServerState::CommunicationsInterrupted,
            Self::PartnerDown => ServerState::PartnerDown,
            Self::PotentialConflict => ServerState::PotentialConflict,
            Self::ConflictDone => ServerState::ConflictDone,
            Self::ResolutionInterrupted => ServerState::ResolutionInterrupted,
            Self::Recover => ServerState::Recover,
            Self::RecoverWait => ServerState::RecoverWait,
            Self::RecoverDone => ServerState::RecoverDone,
            Self::Paused => ServerState::Paused,
            Self::Shutdown => ServerState::Shutdown,
        }
    }

    /// The state of a server-state option value. Every value the codec decodes has one;
    /// the `Option` leaves room for codec values this machine does not model.
    #[must_use]
    pub fn from_wire(s: ServerState) -> Option<Self> {
        Some(match s {
            ServerState::Startup => Self::Startup,
            ServerState::Normal => Self::Normal,
            ServerState::CommunicationsInterrupted => Self::CommunicationsInterrupted,
            ServerState::PartnerDown => Self::PartnerDown,
            ServerState::PotentialConflict => Self::PotentialConflict,
            ServerState::ConflictDone => Self::ConflictDone,
            ServerState::ResolutionInterrupted => Self::ResolutionInterrupted,
            ServerState::Recover => Self::Recover,
            ServerState::RecoverWait => Self::RecoverWait,
            ServerState::RecoverDone => Self::RecoverDone,
            ServerState::Paused => Self::Paused,
            ServerState::Shutdown => Self::Shutdown,
        })
    }

    /// The event a received STATE message means: [`Event::PartnerStartup`] when the STARTUP
    /// bit is set in `flags` (server-flags, §12.23; the state is then the partner's previous
    /// state, §9.3.1), else [`Event::PartnerState`]. `None` when the partner reports
    /// STARTUP itself without the flag and nothing can be learned.
    #[must_use]
    pub fn event_of_state_message(
        state: ServerState,
        flags: u8,
        start_time: u32,
        now: u32,
    ) -> Option<Event> {
        let s = Self::from_wire(state)?;
        if flags & server_flags::STARTUP != 0 || s == Self::Startup {
            return Some(Event::PartnerStartup {
                state: s,
                start_time,
                now,
            });
        }
        Some(Event::PartnerState {
            state: s,
            start_time,
            now,
        })
    }

    /// The state after the "communications failed" transition of Figure 9.2-1, used when
    /// communications fail and when a restarted server derives its previous state
    /// (§9.3.2 step 2). States without such a transition stay.
    #[must_use]
    pub fn after_communications_failed(self) -> Self {
        match self {
            // §9.8.4
            Self::Normal => Self::CommunicationsInterrupted,
            // §9.10.3
            Self::PotentialConflict => Self::ResolutionInterrupted,
            other => other,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for State {
    type Err = ParseStateError;

    /// Parses [`State::name`] output (also accepts upper case and underscores).
    fn from_str(s: &str) -> Result<Self, ParseStateError> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|st| st.name() == norm)
            .ok_or_else(|| ParseStateError(s.to_owned()))
    }
}

/// Which update request a server sends (draft-12 §7.3, §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateRequest {
    /// UPDREQ: the bindings the partner has not sent yet.
    Missed,
    /// UPDREQALL: every binding.
    All,
}

/// Something that happened to the failover endpoint. Every event carries the current time
/// (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The TCP connection is up and CONNECT/CONNECTACK completed (§8.2, §8.3 items 1-2).
    /// The outcome asks for our STATE message ([`Machine::state_message`]).
    Connected {
        /// Now.
        now: u32,
    },
    /// A STATE message without the STARTUP flag (§7.10): the partner's state and its
    /// start-time-of-state (§12.25). The first one after [`Event::Connected`] makes
    /// communications OK (§8.3 item 3).
    PartnerState {
        /// The partner's state.
        state: State,
        /// When the partner entered it.
        start_time: u32,
        /// Now.
        now: u32,
    },
    /// A STATE message with the STARTUP flag: the partner is in STARTUP and `state` is its
    /// previous state (§9.3.1).
    PartnerStartup {
        /// The partner's previous (pre-STARTUP) state.
        state: State,
        /// When the partner entered that state.
        start_time: u32,
        /// Now.
        now: u32,
    },
    /// The connection failed or the receive timer expired (§8.3).
    ConnectionLost {
        /// Now.
        now: u32,
    },
    /// The operator declared the partner down (§9.8.4, §9.9.3, §9.11.3).
    OperatorPartnerDown {
        /// Now.
        now: u32,
    },
    /// The partner finished answering our UPDREQ/UPDREQALL (UPDDONE received, §7.5).
    UpdDoneReceived {
        /// Now.
        now: u32,
    },
    /// We finished answering the partner's UPDREQ/UPDREQALL (UPDDONE sent, §7.5).
    UpdDoneSent {
        /// Now.
        now: u32,
    },
    /// Timers: the STARTUP time over (§9.3.2 step 6), the safe period of
    /// COMMUNICATIONS-INTERRUPTED (§9.9.3, §10), the MCLT of RECOVER-WAIT (§9.6.2).
    Tick {
        /// Now.
        now: u32,
    },
    /// The server is shutting down for a long time (§9.14).
    Shutdown {
        /// Now.
        now: u32,
    },
    /// The server is going out of service for a short time (§9.13).
    Pause {
        /// Now.
        now: u32,
    },
}

impl Event {
    /// The time the event carries.
    #[must_use]
    pub fn now(&self) -> u32 {
        match *self {
            Self::Connected { now }
            | Self::PartnerState { now, .. }
            | Self::PartnerStartup { now, .. }
            | Self::ConnectionLost { now }
            | Self::OperatorPartnerDown { now }
            | Self::UpdDoneReceived { now }
            | Self::UpdDoneSent { now }
            | Self::Tick { now }
            | Self::Shutdown { now }
            | Self::Pause { now } => now,
        }
    }
}

/// A state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before the event.
    pub from: State,
    /// The state after it (when one event passes through several states, the last).
    pub to: State,
    /// Why, for logs.
    pub reason: &'static str,
    /// When.
    pub at: u32,
}

/// What the partner thread must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The state change, if any: record [`Machine::persisted`] in stable storage and
    /// publish [`Machine::policy`] to the workers (§9.2).
    pub transition: Option<Transition>,
    /// Send a STATE message ([`Machine::state_message`]) to the partner (§9.2: after every
    /// transition while communicating; §8.3: after connecting).
    pub send_state: bool,
    /// Send this update request (§9.5.2, §9.10.1, §9.10.3).
    pub request: Option<UpdateRequest>,
}

/// The draft-12 §9 state machine of one server in one relationship.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent protocol flags of draft-12 §8.3 and §9 (connected, communications OK, \
              exchange progress), not a state encoding"
)]
pub struct Machine {
    role: Role,
    mclt: u32,
    auto_partner_down: Option<u32>,
    state: State,
    entered: u32,
    /// In STARTUP: the state to resume (§9.3.2). In SHUTDOWN/PAUSED: the state to record
    /// for the next start (§9.13.1, §9.14.1).
    previous: State,
    previous_entered: u32,
    partner_state: Option<State>,
    partner_entered: u32,
    partner_in_startup: bool,
    connected: bool,
    comm_ok: bool,
    pd_start: Option<u32>,
    startup_deadline: u32,
    started_at: u32,
    /// Last time of operation before this start (§9.3.2 step 5).
    prior_operational: u32,
    /// Last time this run was responsive to clients.
    operational: u32,
    /// Time of failure for RECOVER-WAIT (§9.3.2 step 1, §9.6.2).
    time_of_failure: u32,
    recover_all: bool,
    recover_wait_until: u32,
    requested: Option<UpdateRequest>,
    upd_done_received: bool,
    upd_done_sent: bool,
    wait_in_startup: bool,
    /// The partner was seen in PARTNER-DOWN since we were last NORMAL: it may have
    /// allocated our available addresses, so they are not ours to allocate until the
    /// conflict resolution completes.
    partner_took_over: bool,
}

impl Machine {
    /// A server starting up (§9.1: every start enters STARTUP).
    ///
    /// `persisted` is what the previous run recorded (ignored when its role differs: the
    /// relationship was reconfigured). Per §9.3.2 step 1 a server without a record starts
    /// as if its previous state were RECOVER with a time of failure of 0 ("a time before the
    /// MCLT before now"), so it sends UPDREQALL and skips the RECOVER-WAIT wait. Step 2: a
    /// previous state where communications were OK is replaced by the result of its
    /// "communications failed" transition (NORMAL → COMMUNICATIONS-INTERRUPTED,
    /// POTENTIAL-CONFLICT → RESOLUTION-INTERRUPTED). A server that was PARTNER-DOWN
    /// resumes PARTNER-DOWN with its recorded `pd_start`.
    ///
    /// The STARTUP time (§5.9) is [`STARTUP_SHORT_SECS`] when the last recorded operation
    /// is less than the MCLT ago, else [`STARTUP_LONG_SECS`]. `auto_partner_down` is the
    /// safe period of §10 (`None`: never leave COMMUNICATIONS-INTERRUPTED on a timer).
    #[must_use]
    pub fn new(
        role: Role,
        mclt: u32,
        auto_partner_down: Option<u32>,
        persisted: Option<&Persisted>,
        now: u32,
    ) -> Self {
        let persisted = persisted.filter(|p| p.role == role);
        let mut m = Self {
            role,
            mclt,
            auto_partner_down,
            state: State::Startup,
            entered: now,
            previous: State::Recover,
            previous_entered: now,
            partner_state: None,
            partner_entered: 0,
            partner_in_startup: false,
            connected: false,
            comm_ok: false,
            pd_start: None,
            startup_deadline: now.saturating_add(STARTUP_SHORT_SECS),
            started_at: now,
            prior_operational: 0,
            operational: 0,
            time_of_failure: 0,
            recover_all: true,
            recover_wait_until: 0,
            requested: None,
            upd_done_received: false,
            upd_done_sent: false,
            wait_in_startup: false,
            partner_took_over: false,
        };
        if let Some(p) = persisted {
            let prev = match p.state {
                // Never recorded by this code (persisted() records the state STARTUP,
                // PAUSED and SHUTDOWN stand for), but a hand-edited or foreign record may
                // carry them: resume as a partitioned server would.
                State::Startup | State::Paused | State::Shutdown => {
                    State::CommunicationsInterrupted
                }
                s => s.after_communications_failed(),
            };
            m.previous = prev;
            m.previous_entered = p.entered;
            m.partner_state = p.partner_state;
            m.partner_entered = p.partner_entered;
            m.prior_operational = p.last_operational;
            m.operational = p.last_operational;
            // §9.6.2: the time the server went down is not known exactly; the time it
            // started is a safe upper bound.
            m.time_of_failure = now;
            m.recover_all = p.recover_all;
            m.partner_took_over = p.partner_took_over;
            if prev == State::PartnerDown {
                m.pd_start = Some(p.pd_start.unwrap_or(p.entered));
            }
            let down_for = now.saturating_sub(p.last_operational);
            let secs = if p.last_operational != 0 && down_for < mclt {
                STARTUP_SHORT_SECS
            } else {
                STARTUP_LONG_SECS
            };
            m.startup_deadline = now.saturating_add(secs);
        }
        m
    }

    /// Override the STARTUP time (seconds from the start), e.g. from configuration
    /// (§9.3.2 step 3: "SHOULD be configurable").
    pub fn set_startup_secs(&mut self, secs: u32) {
        self.startup_deadline = self.started_at.saturating_add(secs);
    }

    /// What to do when the STARTUP time ends without reaching the partner (§9.3.2 step 6):
    /// `false` (the default) resumes the previous state; `true` waits in STARTUP until the
    /// partner answers. Resuming keeps a lone server serving, but if the partner went to
    /// PARTNER-DOWN while this server was down and the two are now partitioned, both may
    /// allocate this server's available addresses ("Reasons to wait").
    pub fn set_wait_in_startup(&mut self, wait: bool) {
        self.wait_in_startup = wait;
    }

    /// Record that the server served a client at `now` (call on every grant, or at least
    /// every few seconds while responsive). Recorded as `last_operational`, which the next
    /// start compares with the partner's PARTNER-DOWN start (§9.3.2 step 5).
    pub fn note_activity(&mut self, now: u32) {
        self.operational = self.operational.max(now);
    }

    /// Raise the last time of operation of the previous run (e.g. to the newest CLTT found
    /// in the lease store when it is later than the recorded one).
    pub fn note_prior_activity(&mut self, t: u32) {
        self.prior_operational = self.prior_operational.max(t);
        self.operational = self.operational.max(t);
    }

    /// This server's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The maximum client lead time, seconds.
    #[must_use]
    pub fn mclt(&self) -> u32 {
        self.mclt
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// When the current state was entered.
    #[must_use]
    pub fn entered(&self) -> u32 {
        self.entered
    }

    /// The partner's last known state (kept across connection losses; `None` before the
    /// first STATE message ever).
    #[must_use]
    pub fn partner_state(&self) -> Option<State> {
        self.partner_state
    }

    /// When the partner entered its last known state (its start-time-of-state).
    #[must_use]
    pub fn partner_entered(&self) -> u32 {
        self.partner_entered
    }

    /// Whether the partner's last STATE message had the STARTUP flag.
    #[must_use]
    pub fn partner_in_startup(&self) -> bool {
        self.partner_in_startup
    }

    /// When PARTNER-DOWN began (`None` outside PARTNER-DOWN).
    #[must_use]
    pub fn pd_start(&self) -> Option<u32> {
        self.pd_start
    }

    /// Whether the connection is up (CONNECT/CONNECTACK done).
    #[must_use]
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Whether communications are OK: connected and a partner STATE received (§8.3).
    #[must_use]
    pub fn comm_ok(&self) -> bool {
        self.comm_ok
    }

    /// The update request sent on this connection in this state, if any.
    #[must_use]
    pub fn requested(&self) -> Option<UpdateRequest> {
        self.requested
    }

    /// Whether the partner answered our request with UPDDONE (this connection and state).
    #[must_use]
    pub fn upd_done_received(&self) -> bool {
        self.upd_done_received
    }

    /// Whether we answered the partner's request with UPDDONE (this connection).
    #[must_use]
    pub fn upd_done_sent(&self) -> bool {
        self.upd_done_sent
    }

    /// When the STARTUP time ends.
    #[must_use]
    pub fn startup_deadline(&self) -> u32 {
        self.startup_deadline
    }

    /// When RECOVER-WAIT may end (meaningful in RECOVER-WAIT).
    #[must_use]
    pub fn recover_wait_until(&self) -> u32 {
        self.recover_wait_until
    }

    /// The next time a [`Event::Tick`] can change something, if any timer runs.
    #[must_use]
    pub fn next_deadline(&self) -> Option<u32> {
        match self.state {
            State::Startup => Some(self.startup_deadline),
            State::RecoverWait => Some(self.recover_wait_until),
            State::CommunicationsInterrupted => self
                .auto_partner_down
                .map(|s| self.entered.saturating_add(s)),
            _ => None,
        }
    }

    /// The allocation rules of the current state (see [`policy_for`]).
    #[must_use]
    pub fn policy(&self, now: u32) -> Policy {
        let mut p = policy_for(self.state, self.role, self.mclt, self.pd_start);
        if self.partner_took_over
            && matches!(
                self.state,
                State::ResolutionInterrupted | State::CommunicationsInterrupted
            )
        {
            // §9.11.2: "each server SHOULD allocate from its own IP address pool (if that can
            // be determined)". After the partner ran PARTNER-DOWN it cannot: the partner may
            // have given our available addresses away (§9.4.2). Renewals only.
            p.serve_new = false;
            p.allocate_own = false;
        }
        p.partner_free_now = p.partner_free_after.is_some_and(|t| now >= t);
        p
    }

    /// The server-state option, server-flags option and start-time-of-state option of our
    /// STATE message. In STARTUP: the previous state with the STARTUP flag (§9.3.1).
    #[must_use]
    pub fn state_message(&self) -> (ServerState, u8, u32) {
        match self.state {
            State::Startup => (
                self.previous.to_wire(),
                server_flags::STARTUP,
                self.previous_entered,
            ),
            s => (s.to_wire(), 0, self.entered),
        }
    }

    /// What to record in stable storage (§9.2). In STARTUP, PAUSED and SHUTDOWN the state
    /// recorded is the one the next start resumes (§9.3.2, §9.13.1, §9.14.1; RECOVER when
    /// the partner went PARTNER-DOWN meanwhile, §9.14.2).
    #[must_use]
    pub fn persisted(&self) -> Persisted {
        let (state, entered) = match self.state {
            State::Startup | State::Paused | State::Shutdown => {
                (self.previous, self.previous_entered)
            }
            s => (s, self.entered),
        };
        Persisted {
            state,
            entered,
            partner_state: self.partner_state,
            partner_entered: self.partner_entered,
            pd_start: if state == State::PartnerDown {
                self.pd_start
            } else {
                None
            },
            role: self.role,
            mclt: self.mclt,
            last_operational: self.operational,
            recover_all: state == State::Recover && self.recover_all,
            partner_took_over: self.partner_took_over,
        }
    }

    /// Apply one event.
    pub fn handle(&mut self, ev: Event) -> Outcome {
        let from = self.state;
        let now = ev.now();
        let mut reason = "";
        let mut out = Outcome::default();
        match ev {
            Event::Connected { .. } => {
                self.connected = true;
                self.comm_ok = false;
                self.partner_in_startup = false;
                self.reset_exchange();
                self.upd_done_sent = false;
                out.send_state = true;
            }
            Event::ConnectionLost { .. } => {
                let was = self.connected || self.comm_ok;
                self.connected = false;
                self.comm_ok = false;
                self.partner_in_startup = false;
                self.reset_exchange();
                self.upd_done_sent = false;
                if was && self.state != State::Startup {
                    let t = self.state.after_communications_failed();
                    if t != self.state {
                        reason = "communications failed";
                        self.go(t, now);
                    }
                }
            }
            Event::PartnerStartup {
                state: p,
                start_time,
                ..
            } => {
                self.connected = true;
                self.comm_ok = false;
                self.partner_in_startup = true;
                self.partner_took_over |= p == State::PartnerDown;
                if self.state == State::Startup {
                    // §9.3.2 step 5, with the partner's previous state: the partner is
                    // reachable, so the startup wait is over; the "communications okay"
                    // transition waits for its real state.
                    let (t, r) = self.startup_target(p, start_time);
                    reason = r;
                    self.go(t, now);
                }
                // §9.4.3: PARTNER-DOWN ignores STATE messages with the STARTUP flag; the
                // other states have no partner state to act on yet either.
            }
            Event::PartnerState {
                state: p,
                start_time,
                ..
            } => {
                let was_ok = self.comm_ok;
                let changed = self.partner_state != Some(p);
                self.connected = true;
                self.comm_ok = true;
                self.partner_in_startup = false;
                self.partner_state = Some(p);
                self.partner_entered = start_time;
                self.partner_took_over |= p == State::PartnerDown;
                match self.state {
                    State::Startup => {
                        let (t, r) = self.startup_target(p, start_time);
                        reason = r;
                        // §9.3.2 step 5: "transition to the current state and take the
                        // communications okay state transition".
                        let fin = comm_ok_target(t, p).map_or(t, |(s, r2)| {
                            reason = r2;
                            s
                        });
                        self.go(fin, now);
                    }
                    // §9.14.2
                    State::Shutdown | State::Paused if p == State::PartnerDown => {
                        // §9.14.2: back as RECOVER; what we missed comes with UPDREQ
                        // (§9.5.2), our storage is intact.
                        self.previous = State::Recover;
                        self.previous_entered = now;
                    }
                    State::Shutdown | State::Paused => {}
                    s if !was_ok => {
                        if let Some((t, r)) = comm_ok_target(s, p) {
                            reason = r;
                            self.go(t, now);
                        }
                    }
                    s if changed => {
                        // §9.2: a partner state change while communicating passes through
                        // the communications-failed transition, then the communications-OK
                        // transition for the new partner state.
                        let mid = s.after_communications_failed();
                        let (fin, r) = comm_ok_target(mid, p)
                            .unwrap_or((mid, "partner changed state while communicating"));
                        if fin != s {
                            reason = r;
                            self.go(fin, now);
                        }
                    }
                    _ => {}
                }
            }
            Event::OperatorPartnerDown { .. } => {
                // §9.8.4, §9.9.3, §9.11.3
                if matches!(
                    self.state,
                    State::Normal | State::CommunicationsInterrupted | State::ResolutionInterrupted
                ) {
                    reason = "operator: partner is down";
                    self.go(State::PartnerDown, now);
                }
            }
            Event::UpdDoneReceived { .. } => match self.state {
                State::Recover if self.requested.is_some() => {
                    // §9.5.2
                    reason = "UPDDONE received: recovered the partner's bindings";
                    self.go(State::RecoverWait, now);
                }
                State::PotentialConflict if self.requested.is_some() => {
                    // §9.10.3
                    reason = "UPDDONE received: conflicts resolved";
                    let t = match self.role {
                        Role::Primary => State::ConflictDone,
                        Role::Secondary => State::Normal,
                    };
                    self.go(t, now);
                }
                _ => self.upd_done_received = true,
            },
            Event::UpdDoneSent { .. } => self.upd_done_sent = true,
            Event::Tick { .. } => match self.state {
                State::Startup if !self.wait_in_startup && now >= self.startup_deadline => {
                    // §9.3.2 step 6: "The server MAY go to the previous-state".
                    reason = "startup time over without reaching the partner";
                    self.go(self.previous, now);
                }
                State::CommunicationsInterrupted
                    if self
                        .auto_partner_down
                        .is_some_and(|s| now >= self.entered.saturating_add(s)) =>
                {
                    // §9.9.3, §10
                    reason = "safe period expired";
                    self.go(State::PartnerDown, now);
                }
                _ => {}
            },
            Event::Shutdown { .. } | Event::Pause { .. } => {
                let target = if matches!(ev, Event::Shutdown { .. }) {
                    State::Shutdown
                } else {
                    State::Paused
                };
                if self.state != target {
                    if !matches!(self.state, State::Startup | State::Shutdown | State::Paused) {
                        self.previous = self.state;
                        self.previous_entered = self.entered;
                    }
                    reason = if target == State::Shutdown {
                        "shutting down"
                    } else {
                        "pausing"
                    };
                    self.go(target, now);
                }
            }
        }
        if let Some(r) = self.settle(now, &mut out) {
            reason = r;
        }
        if self.policy(now).respond {
            self.operational = self.operational.max(now);
        }
        if self.state != from {
            out.transition = Some(Transition {
                from,
                to: self.state,
                reason,
                at: now,
            });
            out.send_state |= self.connected;
        }
        out
    }

    /// Where a server leaves STARTUP to, given the partner's state (§9.3.2 step 5).
    fn startup_target(&mut self, partner: State, start_time: u32) -> (State, &'static str) {
        if partner == State::PartnerDown {
            if start_time > self.prior_operational {
                // §9.5.2: RECOVER asks for what it missed (UPDREQ); UPDREQALL only when the
                // stable storage was lost, which `recover_all` already records (§5.16: the
                // partner keeps track of what we have not acknowledged).
                (
                    State::Recover,
                    "partner entered partner-down after our last operation",
                )
            } else {
                (
                    State::PotentialConflict,
                    "partner entered partner-down before our last operation",
                )
            }
        } else {
            (self.previous, "startup: resuming the previous state")
        }
    }

    /// Timer-free follow-ups and the entry actions that send update requests.
    fn settle(&mut self, now: u32, out: &mut Outcome) -> Option<&'static str> {
        let mut reason = None;
        for _ in 0..4 {
            match self.state {
                State::RecoverWait if now >= self.recover_wait_until => {
                    // §9.6.2
                    reason = Some("MCLT since the time of failure elapsed");
                    self.go(State::RecoverDone, now);
                }
                State::RecoverDone
                    if self.comm_ok
                        && matches!(
                            self.partner_state,
                            Some(State::Normal | State::RecoverDone)
                        ) =>
                {
                    // §9.7.2
                    reason = Some("partner is normal or recover-done");
                    self.go(State::Normal, now);
                }
                _ => break,
            }
        }
        if self.comm_ok && self.requested.is_none() {
            let req = match self.state {
                // §9.5.2: "If the other server is in any other state ... request an update".
                State::Recover
                    if !matches!(
                        self.partner_state,
                        Some(
                            State::PotentialConflict
                                | State::ResolutionInterrupted
                                | State::ConflictDone
                        )
                    ) =>
                {
                    Some(if self.recover_all {
                        UpdateRequest::All
                    } else {
                        UpdateRequest::Missed
                    })
                }
                // §9.10.1: the primary asks on entry; §9.10.3: the secondary asks once the
                // primary is CONFLICT-DONE.
                State::PotentialConflict
                    if self.role == Role::Primary
                        || self.partner_state == Some(State::ConflictDone) =>
                {
                    Some(UpdateRequest::Missed)
                }
                _ => None,
            };
            if req.is_some() {
                self.requested = req;
                out.request = req;
            }
        }
        reason
    }

    fn reset_exchange(&mut self) {
        self.requested = None;
        self.upd_done_received = false;
    }

    fn go(&mut self, to: State, now: u32) {
        let from = self.state;
        self.state = to;
        self.entered = now;
        self.reset_exchange();
        match to {
            State::PartnerDown => {
                if from == State::Startup && self.pd_start.is_some() {
                    // Resuming PARTNER-DOWN after a restart keeps its start (§9.4.2 counts
                    // the MCLT from the entry into PARTNER-DOWN).
                    self.entered = self.pd_start.unwrap_or(now);
                } else {
                    self.pd_start = Some(now);
                }
            }
            State::Shutdown | State::Paused => {}
            _ => self.pd_start = None,
        }
        match to {
            State::RecoverWait => {
                self.recover_wait_until = self.time_of_failure.saturating_add(self.mclt);
            }
            State::Normal => {
                self.recover_all = false;
                self.partner_took_over = false;
            }
            _ => {}
        }
    }
}

/// The "communications OK" transition of `state` given the partner's state (Figure 9.2-1;
/// §9.4.3, §9.5.2, §9.7.2, §9.9.3, §9.11.3, §9.12.3). `None`: stay.
fn comm_ok_target(state: State, partner: State) -> Option<(State, &'static str)> {
    use State as S;
    match (state, partner) {
        (_, S::Startup) => None,
        // §9.4.3
        (
            S::PartnerDown,
            S::Normal
            | S::CommunicationsInterrupted
            | S::PartnerDown
            | S::PotentialConflict
            | S::ResolutionInterrupted
            | S::ConflictDone,
        ) => Some((
            S::PotentialConflict,
            "partner may have served while we were partner-down",
        )),
        (S::PartnerDown, S::RecoverDone) => Some((S::Normal, "partner recovered")),
        // §9.5.2
        (S::Recover, S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone) => {
            Some((S::PotentialConflict, "partner is resolving conflicts"))
        }
        // §9.7.2
        (S::RecoverDone, S::Normal | S::RecoverDone) => {
            Some((S::Normal, "partner is normal or recover-done"))
        }
        // §9.9.3
        (
            S::CommunicationsInterrupted,
            S::Normal | S::CommunicationsInterrupted | S::RecoverDone,
        ) => Some((S::Normal, "communications restored")),
        (
            S::CommunicationsInterrupted,
            S::PartnerDown | S::PotentialConflict | S::ConflictDone | S::ResolutionInterrupted,
        ) => Some((
            S::PotentialConflict,
            "partner may have served from our share",
        )),
        (S::CommunicationsInterrupted, S::Shutdown) => {
            Some((S::PartnerDown, "partner is shutting down"))
        }
        // §9.11.3
        (S::ResolutionInterrupted, _) => Some((
            S::PotentialConflict,
            "communications restored during conflict resolution",
        )),
        // §9.12.3
        (S::ConflictDone, S::Normal) => Some((S::Normal, "secondary is normal")),
        _ => None,
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
