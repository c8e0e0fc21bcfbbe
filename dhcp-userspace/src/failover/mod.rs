//! The pure DHCPv4 failover protocol logic of draft-ietf-dhc-failover-12: no I/O, no threads.
//!
//! - [`state`]: the failover state machine of one server in one relationship (draft-12 §9),
//!   driven by [`Event`]s (connection up/down, partner STATE messages, UPDDONE, timers,
//!   operator commands) and answering with an [`Outcome`] (transition, STATE to send,
//!   UPDREQ/UPDREQALL to send).
//! - [`rules`]: what each state allows a DHCP server to do ([`Policy`]) and the lease-time
//!   arithmetic of the MCLT (draft-12 §5.2.1, §7.1.5, §9.4.2).
//! - [`lb`]: RFC 3074 load balancing (hash and hash-bucket bitmap).
//! - [`conflict`]: whether an incoming BNDUPD is accepted (draft-12 §7.1.3) and what a BNDACK
//!   teaches the sender (§5.11, §7.1.5).
//! - [`persist`]: the state record kept in stable storage (draft-12 §9.2: "the current state
//!   of a server MUST be recorded in stable storage").
//!
//!
//! Around it, the running parts:
//! - [`link`]: the partner connection (TCP, optionally mutual TLS), whole messages in and out;
//! - [`partner`]: the partner thread, one per relationship: connection, state machine, update
//!   queues, pool balancing;
//! - [`channel`]: the bounded rings between the workers and the partner thread, and the
//!   published view of what the state allows;
//! - [`split`]: the durable FREE/BACKUP split of the free addresses;
//! - [`partner6`] and [`channel6`]: the same for DHCPv6 failover (RFC 8156), which reuses the
//!   state machine, the rules and the link (with its RFC 8156 framing).
//!
//! The partner thread owns the TCP connection and feeds this module; the workers read the
//! [`Machine::policy`] it publishes before allocating or renewing.

pub mod channel;
pub mod channel6;
pub mod conflict;
pub mod lb;
pub mod link;
pub mod partner;
pub mod partner6;
pub mod persist;
pub mod rules;
mod session;
pub mod split;
pub mod state;

#[cfg(test)]
mod model_tests;

pub use conflict::{AckEffect, Binding, Decision, ack_effect, apply_update};
pub use lb::{Buckets, client_hash};
pub use persist::{PersistError, Persisted, load, save};
pub use rules::{
    Policy, Share, grant_expiry, partner_down_reuse_at, policy_for, potential_expiry,
    state_after_ack, state_after_expiry,
};
pub use state::{Event, Machine, Outcome, ParseStateError, Role, State, Transition, UpdateRequest};
