//! What the workers and the partner thread say to each other: bounded rings of these
//! messages, never waited on by a worker (draft-ietf-dhc-failover-12 §3.1.3: the partner
//! protocol adds no delay to a reply).
//!
//! [`SharedView`] is one `AtomicU64` (release store, acquire load); with
//! `RUSTFLAGS="--cfg twinlease_loom"` it is loom's, and the `loom_tests` module model-checks
//! its publication:
//! `CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg twinlease_loom" cargo test -p dhcp-userspace --lib failover::channel::loom_tests`.

#[cfg(twinlease_loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
use std::net::Ipv4Addr;
use std::sync::Arc;
#[cfg(not(twinlease_loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender};

use crate::engine::v4::{FailoverView, LoadBalance};
use crate::lease::{ClientKey, Lease4};
use crate::pool::Share;

/// Capacity of each ring between a worker and the partner thread.
pub const RING: usize = 16_384;

/// From a worker to the partner thread.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "a lease record travels by value on a bounded ring; boxing would allocate per update"
)]
pub enum ToPartner {
    /// A committed lease change to send as a binding update, with the potential expiry to
    /// send ahead (draft-12 §5.2.1).
    Update {
        /// The record as committed.
        lease: Lease4,
        /// Potential expiration time to send.
        potential: u32,
    },
    /// A chunk of a store scan asked for with [`FromPartner::Scan`].
    Scanned {
        /// The scan's token.
        token: u64,
        /// Records (with their potential expiry).
        leases: Vec<(Lease4, u32)>,
        /// Whether this worker's scan is complete.
        done: bool,
    },
    /// The outcome of [`FromPartner::Apply`], sent after the record is durable.
    Applied {
        /// The apply's token.
        token: u64,
        /// What happened.
        outcome: ApplyOutcome,
    },
    /// The outcome of [`FromPartner::Surrender`].
    Surrendered {
        /// The surrender's token.
        token: u64,
        /// Whether this worker held the address and gave it up (bit transferred).
        gave_up: bool,
        /// Reject reason when it held the address and kept it (its binding wins).
        refused: Option<u8>,
    },
}

/// What a worker did with a partner's binding update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Recorded durably.
    Accepted,
    /// Refused with a draft-12 reject reason (`wire::failover::reject`).
    Rejected(u8),
    /// The address is held by another worker's client: ask the others to surrender it.
    HeldElsewhere,
    /// The write-ahead log refused the record (disk full...): not acknowledged.
    NotDurable,
}

/// From the partner thread to a worker.
#[derive(Debug, Clone)]
pub enum FromPartner {
    /// The partner acknowledged an update (BNDACK without reject).
    Acked {
        /// Address.
        addr: Ipv4Addr,
        /// Client of the update.
        client: ClientKey,
        /// CLTT of the update.
        cltt: u32,
        /// Potential expiry the partner now knows.
        potential: u32,
    },
    /// Apply a partner's binding update for one of this worker's clients.
    Apply {
        /// Token echoed in [`ToPartner::Applied`].
        token: u64,
        /// The binding as the partner sent it; `partner_expires` holds the potential expiry
        /// it sent.
        lease: Lease4,
        /// The free-map bit of the address was transferred to this worker by a surrender.
        transferred: bool,
    },
    /// Give up `addr` if held here by a binding older than `cltt` (another worker applies
    /// a partner update for it).
    Surrender {
        /// Token echoed in [`ToPartner::Surrendered`].
        token: u64,
        /// The address.
        addr: Ipv4Addr,
        /// CLTT of the update that wants the address.
        cltt: u32,
        /// Client of that update.
        client: ClientKey,
    },
    /// Stream this worker's records (all of them, or only those pending an update).
    Scan {
        /// Token echoed in the chunks.
        token: u64,
        /// Only records not yet acknowledged by the partner.
        pending_only: bool,
    },
}

/// The worker's end of its rings.
#[derive(Debug)]
pub struct WorkerEnd {
    /// To the partner thread.
    pub to: Sender<ToPartner>,
    /// From the partner thread.
    pub from: Receiver<FromPartner>,
    /// The published failover view.
    pub view: Arc<SharedView>,
}

/// The partner thread's end of one worker's rings.
#[derive(Debug)]
pub struct PartnerEnd {
    /// From the worker.
    pub from: Receiver<ToPartner>,
    /// To the worker.
    pub to: Sender<FromPartner>,
}

/// A pair of rings per worker.
#[must_use]
pub fn rings(workers: usize, view: &Arc<SharedView>) -> (Vec<WorkerEnd>, Vec<PartnerEnd>) {
    (0..workers)
        .map(|_| {
            let (wt, pr) = crossbeam_channel::bounded(RING);
            let (pt, wr) = crossbeam_channel::bounded(RING);
            (
                WorkerEnd {
                    to: wt,
                    from: wr,
                    view: Arc::clone(view),
                },
                PartnerEnd { from: pr, to: pt },
            )
        })
        .unzip()
}

/// The failover view the partner thread publishes and the workers read once per batch: one
/// atomic word (flags and share) plus immutable settings, so publishing needs no lock.
#[derive(Debug)]
pub struct SharedView {
    word: AtomicU64,
    mclt: u32,
    lb: LoadBalance,
}

const RESPOND: u64 = 1;
const ALLOCATE: u64 = 2;
const LB: u64 = 4;
const SERVE_NEW: u64 = 8;
const SHARE_SHIFT: u32 = 8;

impl SharedView {
    /// A view that serves nobody yet (STARTUP), with the relationship's fixed settings.
    #[must_use]
    pub fn new(mclt: u32, lb: LoadBalance) -> Self {
        Self {
            word: AtomicU64::new(0),
            mclt,
            lb,
        }
    }

    /// Publish what the current state allows.
    #[expect(
        clippy::fn_params_excessive_bools,
        reason = "the independent permissions of the draft-12 §9 per-state rules, packed here"
    )]
    pub fn publish(
        &self,
        respond: bool,
        serve_new: bool,
        allocate: bool,
        share: Share,
        load_balance: bool,
    ) {
        let share = match share {
            Share::Any => 0u64,
            Share::Free => 1,
            Share::Backup => 2,
        };
        let w = (u64::from(respond) * RESPOND)
            | (u64::from(allocate) * ALLOCATE)
            | (u64::from(load_balance) * LB)
            | (u64::from(serve_new) * SERVE_NEW)
            | (share << SHARE_SHIFT);
        self.word.store(w, Ordering::Release);
    }

    /// The current view, for the engine.
    #[must_use]
    pub fn load(&self) -> FailoverView {
        let w = self.word.load(Ordering::Acquire);
        FailoverView {
            enabled: true,
            respond: w & RESPOND != 0,
            serve_new: w & SERVE_NEW != 0,
            allocate: w & ALLOCATE != 0,
            share: match (w >> SHARE_SHIFT) & 3 {
                0 => Share::Any,
                1 => Share::Free,
                _ => Share::Backup,
            },
            mclt: self.mclt,
            lb: (w & LB != 0).then_some(self.lb),
        }
    }

    /// The MCLT, seconds.
    #[must_use]
    pub fn mclt(&self) -> u32 {
        self.mclt
    }
}

/// Model check of the view's publication with `RUSTFLAGS="--cfg twinlease_loom"` (command in
/// the module documentation).
///
/// The settings beside the word (MCLT, bucket split) are fixed before the view is shared, and
/// no other data is published through the word: the FREE/BACKUP split the share refers to is
/// a set of atomic words of its own (`pool::FreeMap`), loaded before the partner thread and
/// the workers start and changed afterwards by binding updates that do not wait for a view
/// change. So the model checks the word alone: every load is exactly one published view,
/// a worker never goes back to an older one, and the last one is seen once the publisher is
/// joined.
#[cfg(all(test, twinlease_loom))]
mod loom_tests {
    use super::*;
    use crate::failover::lb::Buckets;
    use crate::failover::state::Role;
    use loom::sync::Arc;
    use loom::thread;

    /// One view the partner thread publishes: the arguments of [`SharedView::publish`].
    type Published = (bool, bool, bool, Share, bool);

    /// STARTUP (nothing), NORMAL (respond, serve new clients, allocate from FREE, load
    /// balancing), PARTNER-DOWN (respond, allocate from any share, no load balancing).
    const VIEWS: [Published; 3] = [
        (false, false, false, Share::Free, false),
        (true, true, true, Share::Free, true),
        (true, true, true, Share::Any, false),
    ];

    fn lb() -> LoadBalance {
        LoadBalance {
            buckets: Buckets::split(128, Role::Primary),
            max_secs: 7,
        }
    }

    /// What [`SharedView::load`] must return for a published view.
    fn expected((respond, serve_new, allocate, share, load_balance): Published) -> FailoverView {
        FailoverView {
            enabled: true,
            respond,
            serve_new,
            allocate,
            share,
            mclt: 30,
            lb: load_balance.then_some(lb()),
        }
    }

    /// The partner thread publishes STARTUP → NORMAL → PARTNER-DOWN while a worker loads the
    /// view three times: each load is exactly one of the published views (the initial one
    /// included), never a mix of two, in publication order; after the join the last is seen.
    #[test]
    fn worker_sees_whole_views_in_order() {
        loom::model(|| {
            let view = Arc::new(SharedView::new(30, lb()));
            // `new` serves nobody (STARTUP before the partner thread's first publication).
            let initial = view.load();
            assert!(!initial.respond && !initial.serve_new && !initial.allocate);
            // Every view a load may return, in publication order.
            let mut order = vec![initial];
            order.extend(VIEWS.map(expected));
            let partner = {
                let view = Arc::clone(&view);
                thread::spawn(move || {
                    for (respond, serve_new, allocate, share, load_balance) in VIEWS {
                        view.publish(respond, serve_new, allocate, share, load_balance);
                    }
                })
            };
            let worker = {
                let view = Arc::clone(&view);
                thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..3 {
                        let seen = view.load();
                        let at = order
                            .iter()
                            .position(|&v| v == seen)
                            .unwrap_or_else(|| panic!("a view never published: {seen:?}"));
                        // Coherence of the one word: never an older view after a newer one.
                        assert!(at >= last, "view went back from {last} to {at}");
                        last = at;
                    }
                })
            };
            partner.join().unwrap();
            worker.join().unwrap();
            assert_eq!(view.load(), expected(VIEWS[2]));
        });
    }
}
