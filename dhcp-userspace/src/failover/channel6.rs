//! What the workers and the DHCPv6 partner thread (RFC 8156) say to each other: bounded rings
//! like [`super::channel`]'s, carrying [`Lease6`] records, and the published
//! [`FailoverView6`]. A worker never waits on them.
//!
//! [`SharedView6`] is one `AtomicU64` (release store, acquire load); with
//! `RUSTFLAGS="--cfg twinlease_loom"` it is loom's, and the `loom_tests` module model-checks
//! its publication:
//! `CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg twinlease_loom" cargo test -p dhcp-userspace --lib failover::channel6::loom_tests`.

#[cfg(twinlease_loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
use std::net::Ipv6Addr;
use std::sync::Arc;
#[cfg(not(twinlease_loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender};

use super::channel::{ApplyOutcome, RING};
use crate::engine::v6::FailoverView6;
use crate::lease::{ClientKey, IaKind, Lease6};
use crate::pool::v6::Share6;

/// From a worker to the DHCPv6 partner thread.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "a lease record travels by value on a bounded ring; boxing would allocate per update"
)]
pub enum ToPartner6 {
    /// A committed lease change to send as a BNDUPD, with the partner lifetime to send
    /// (RFC 8156 §4.4, §7.4).
    Update {
        /// The record as committed.
        lease: Lease6,
        /// The partner lifetime (the potential expiry) to send.
        potential: u32,
    },
    /// A chunk of a store scan asked for with [`FromPartner6::Scan`].
    Scanned {
        /// The scan's token.
        token: u64,
        /// Records with their partner lifetime.
        leases: Vec<(Lease6, u32)>,
        /// Whether this worker's scan is complete.
        done: bool,
    },
    /// The outcome of [`FromPartner6::Apply`], sent after the record is durable.
    Applied {
        /// The apply's token.
        token: u64,
        /// What happened ([`ApplyOutcome::Rejected`] carries an RFC 8156 §5.6 status code
        /// truncated to a byte).
        outcome: ApplyOutcome,
    },
}

/// From the DHCPv6 partner thread to a worker.
#[derive(Debug, Clone)]
pub enum FromPartner6 {
    /// The partner acknowledged an update (BNDREPLY without error, RFC 8156 §7.6).
    Acked {
        /// Address or prefix kind.
        kind: IaKind,
        /// The address or prefix.
        addr: Ipv6Addr,
        /// Client of the update.
        client: ClientKey,
        /// CLTT of the update.
        cltt: u32,
        /// Partner lifetime the partner now knows.
        potential: u32,
    },
    /// Apply a partner's binding for one of this worker's clients; `partner_expires` holds
    /// the partner lifetime it sent.
    Apply {
        /// Token echoed in [`ToPartner6::Applied`].
        token: u64,
        /// The binding.
        lease: Lease6,
    },
    /// The member of `lease` lies in this worker's partition of the pools while its client
    /// belongs to another worker: hold it (or let it go after `until`) so this worker does
    /// not allocate it (see [`crate::pool::v6`], "Ownership").
    Hold {
        /// The partner's binding.
        lease: Lease6,
        /// Hold end, unix seconds (`u32::MAX`: until told otherwise).
        until: u32,
    },
    /// Stream this worker's records (all of them, or only those pending an update).
    Scan {
        /// Token echoed in the chunks.
        token: u64,
        /// Only records not yet acknowledged by the partner.
        pending_only: bool,
    },
}

/// The worker's end of its DHCPv6 failover rings.
#[derive(Debug)]
pub struct WorkerEnd6 {
    /// To the partner thread.
    pub to: Sender<ToPartner6>,
    /// From the partner thread.
    pub from: Receiver<FromPartner6>,
    /// The published view.
    pub view: Arc<SharedView6>,
}

/// The partner thread's end of one worker's DHCPv6 rings.
#[derive(Debug)]
pub struct PartnerEnd6 {
    /// From the worker.
    pub from: Receiver<ToPartner6>,
    /// To the worker.
    pub to: Sender<FromPartner6>,
}

/// A pair of rings per worker.
#[must_use]
pub fn rings6(workers: usize, view: &Arc<SharedView6>) -> (Vec<WorkerEnd6>, Vec<PartnerEnd6>) {
    (0..workers)
        .map(|_| {
            let (wt, pr) = crossbeam_channel::bounded(RING);
            let (pt, wr) = crossbeam_channel::bounded(RING);
            (
                WorkerEnd6 {
                    to: wt,
                    from: wr,
                    view: Arc::clone(view),
                },
                PartnerEnd6 { from: pr, to: pt },
            )
        })
        .unzip()
}

/// The DHCPv6 failover view the partner thread publishes and the workers read once per
/// batch: one atomic word, the rest fixed.
#[derive(Debug)]
pub struct SharedView6 {
    word: AtomicU64,
    mclt: u32,
    primary: bool,
    address_share: u8,
}

const RESPOND: u64 = 1;
const ALLOCATE: u64 = 2;
const ANY_SHARE: u64 = 4;

impl SharedView6 {
    /// A view that serves nobody yet (STARTUP), for the primary (`primary`) or the
    /// secondary, with `address_share` percent of the addresses to the primary.
    #[must_use]
    pub fn new(mclt: u32, primary: bool, address_share: u8) -> Self {
        Self {
            word: AtomicU64::new(0),
            mclt,
            primary,
            address_share,
        }
    }

    /// Publish what the current state allows; `any_share`: the partner's share too.
    pub fn publish(&self, respond: bool, allocate: bool, any_share: bool) {
        let w = (u64::from(respond) * RESPOND)
            | (u64::from(allocate) * ALLOCATE)
            | (u64::from(any_share) * ANY_SHARE);
        self.word.store(w, Ordering::Release);
    }

    /// This server's own share.
    #[must_use]
    pub fn own_share(&self) -> Share6 {
        let address_share = self.address_share;
        if self.primary {
            Share6::Primary { address_share }
        } else {
            Share6::Secondary { address_share }
        }
    }

    /// The current view, for the engine.
    #[must_use]
    pub fn load(&self) -> FailoverView6 {
        let w = self.word.load(Ordering::Acquire);
        FailoverView6 {
            enabled: true,
            respond: w & RESPOND != 0,
            allocate: w & ALLOCATE != 0,
            share: if w & ANY_SHARE != 0 {
                Share6::Any
            } else {
                self.own_share()
            },
            mclt: self.mclt,
        }
    }

    /// The MCLT, seconds.
    #[must_use]
    pub fn mclt(&self) -> u32 {
        self.mclt
    }
}

#[cfg(all(test, not(twinlease_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_view_carries_the_share_of_the_role() {
        let v = SharedView6::new(30, false, 70);
        let f = v.load();
        assert!(f.enabled && !f.respond && !f.allocate);
        assert_eq!(f.share, Share6::Secondary { address_share: 70 });
        v.publish(true, true, false);
        let f = v.load();
        assert!(f.respond && f.allocate);
        assert_eq!(f.mclt, 30);
        v.publish(true, true, true);
        assert_eq!(v.load().share, Share6::Any);
        let p = SharedView6::new(30, true, 70);
        assert_eq!(p.load().share, Share6::Primary { address_share: 70 });
    }
}

/// Model check of the view's publication with `RUSTFLAGS="--cfg twinlease_loom"` (command in
/// the module documentation). As for [`super::channel::SharedView`], nothing but the word is
/// published through it (the role and the address share are fixed before it is shared), so
/// the model checks the word alone.
#[cfg(all(test, twinlease_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// One view the partner thread publishes: the arguments of [`SharedView6::publish`].
    type Published = (bool, bool, bool);

    /// STARTUP (nothing), NORMAL (respond, allocate from the own share), PARTNER-DOWN after
    /// the MCLT (respond, allocate from any share).
    const VIEWS: [Published; 3] = [
        (false, false, false),
        (true, true, false),
        (true, true, true),
    ];

    /// What [`SharedView6::load`] must return for a published view of the secondary.
    fn expected((respond, allocate, any_share): Published) -> FailoverView6 {
        FailoverView6 {
            enabled: true,
            respond,
            allocate,
            share: if any_share {
                Share6::Any
            } else {
                Share6::Secondary { address_share: 70 }
            },
            mclt: 30,
        }
    }

    /// The partner thread publishes STARTUP → NORMAL → PARTNER-DOWN while a worker loads the
    /// view three times: each load is exactly one of the views (the initial one included),
    /// never a mix of two, in publication order; after the join the last one is seen.
    #[test]
    fn worker_sees_whole_views_in_order() {
        loom::model(|| {
            let view = Arc::new(SharedView6::new(30, false, 70));
            // `new` serves nobody: the STARTUP view.
            assert_eq!(view.load(), expected(VIEWS[0]));
            let partner = {
                let view = Arc::clone(&view);
                thread::spawn(move || {
                    for (respond, allocate, any_share) in VIEWS {
                        view.publish(respond, allocate, any_share);
                    }
                })
            };
            let worker = {
                let view = Arc::clone(&view);
                thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..3 {
                        let seen = view.load();
                        let at = VIEWS
                            .iter()
                            .position(|&v| expected(v) == seen)
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
