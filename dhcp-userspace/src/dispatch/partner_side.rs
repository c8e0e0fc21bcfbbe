//! What the worker's side of both failover relationships (DHCPv4 in [`super::partner`],
//! DHCPv6 in [`super::partner6`]) does alike, whatever the lease type: queue committed
//! changes for the partner thread (and send every pending record again when its ring was
//! full), take the partner thread's requests a bounded number at a time, answer its applies
//! once they are durable, and stream the shard a chunk at a time for its scans. Served
//! between batches; a worker never waits for the partner thread.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::{Worker, unix_now};
use crate::failover::channel::ApplyOutcome;

/// Partner messages handled per call.
const PER_POLL: usize = 256;
/// Records per scan chunk.
const SCAN_CHUNK: usize = 512;

/// A store scan in progress.
#[derive(Debug, Clone, Copy)]
struct ScanState {
    /// The partner thread's token; 0: an unsolicited resend of the pending records.
    token: u64,
    pending_only: bool,
    /// The slot to continue from.
    next: u32,
}

/// A lease type a worker replicates to a failover partner: its rings to the partner thread,
/// the messages on them, and where the worker keeps it.
pub(super) trait Replicated: Copy {
    /// A message from the partner thread.
    type From;
    /// A message to the partner thread.
    type To;
    /// The failover view the partner thread publishes.
    type View;

    /// Whether the partner has not acknowledged this record's change yet.
    fn update_pending(&self) -> bool;
    /// A binding update to send, with its potential expiry.
    fn update(self, potential: u32) -> Self::To;
    /// A chunk of the scan `token`.
    fn scanned(token: u64, leases: Vec<(Self, u32)>, done: bool) -> Self::To;
    /// The outcome of the apply `token`.
    fn applied(token: u64, outcome: ApplyOutcome) -> Self::To;

    /// The worker's state of this relationship, when there is one.
    fn side(w: &Worker) -> Option<&WorkerFailover<Self>>;
    /// The same, to change.
    fn side_mut(w: &mut Worker) -> Option<&mut WorkerFailover<Self>>;
    /// The potential expiry to send ahead for `l`.
    fn potential(w: &Worker, l: &Self) -> u32;
    /// Copy up to `max` records of the worker's shard (only those `pending` an update,
    /// or all) from slot `from` on into `out`; the slot to continue from, `None` at the end.
    fn scan(w: &Worker, from: u32, max: usize, pending: bool, out: &mut Vec<Self>) -> Option<u32>;
    /// Make `records` durable; whether that worked.
    fn commit(w: &mut Worker, records: &[Self]) -> bool;
    /// Handle one request of the partner thread (applies and changed records go to
    /// `served`; a scan request to [`WorkerFailover::request_scan`]).
    fn handle(w: &mut Worker, m: Self::From, now: u32, served: &mut Served<Self>);
}

/// What the requests of one call leave to do.
pub(super) struct Served<L: Replicated> {
    /// Applies to answer once `records` are durable.
    pub(super) applied: Vec<(u64, ApplyOutcome)>,
    /// Records changed here, to commit.
    pub(super) records: Vec<L>,
    /// Other answers, sent after those of the applies.
    pub(super) replies: Vec<L::To>,
}

/// Per-worker failover state of the relationship of lease type `L`.
#[derive(Debug)]
pub(super) struct WorkerFailover<L: Replicated> {
    /// The published failover view.
    pub(super) view: Arc<L::View>,
    /// The ring to the partner thread.
    to: Sender<L::To>,
    /// The ring from the partner thread.
    from: Receiver<L::From>,
    /// A scan the partner thread asked for, or a resend.
    scan: Option<ScanState>,
    /// An update could not be queued (ring full): send every pending record again.
    resend: bool,
}

impl<L: Replicated> WorkerFailover<L> {
    /// The worker's end of a relationship's rings, no scan in progress.
    pub(super) fn new(to: Sender<L::To>, from: Receiver<L::From>, view: Arc<L::View>) -> Self {
        Self {
            view,
            to,
            from,
            scan: None,
            resend: false,
        }
    }

    /// The partner thread asks for a scan (all records, or the pending ones). An
    /// unsolicited resend (token 0) never cuts short a requested scan, which the partner
    /// thread waits for.
    pub(super) fn request_scan(&mut self, token: u64, pending_only: bool) {
        if !(token == 0 && self.scan.is_some_and(|s| s.token != 0)) {
            self.scan = Some(ScanState {
                token,
                pending_only,
                next: 0,
            });
        }
    }
}

impl Worker {
    /// Queue the committed changes of a batch for the partner.
    pub(super) fn queue_updates<L: Replicated>(&mut self, changes: &[L]) {
        for l in changes.iter().filter(|l| l.update_pending()) {
            let potential = L::potential(self, l);
            let Some(fo) = L::side_mut(self) else {
                return;
            };
            if fo.resend {
                return;
            }
            if fo.to.try_send(l.update(potential)).is_err() {
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
    pub(super) fn serve_partner<L: Replicated>(&mut self) {
        let Some(fo) = L::side_mut(self) else {
            return;
        };
        let mut msgs = Vec::new();
        for _ in 0..PER_POLL {
            match fo.from.try_recv() {
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
        let mut served = Served {
            applied: Vec::new(),
            records: Vec::new(),
            replies: Vec::new(),
        };
        let now = unix_now();
        for m in msgs {
            L::handle(self, m, now, &mut served);
        }
        // Everything applied or surrendered is durable before the partner hears of it.
        let durable = served.records.is_empty() || L::commit(self, &served.records);
        let Some(fo) = L::side_mut(self) else {
            return;
        };
        let to = &fo.to;
        for (token, outcome) in served.applied {
            let outcome = if durable || !matches!(outcome, ApplyOutcome::Accepted) {
                outcome
            } else {
                ApplyOutcome::NotDurable
            };
            let _ = to.try_send(L::applied(token, outcome));
        }
        for r in served.replies {
            let _ = to.try_send(r);
        }
        self.continue_scan::<L>();
    }

    /// Send the next chunk of a scan in progress.
    fn continue_scan<L: Replicated>(&mut self) {
        let Some(fo) = L::side(self) else {
            return;
        };
        let Some(sc) = fo.scan else {
            return;
        };
        let to = &fo.to;
        if to.len() + 1 >= to.capacity().unwrap_or(usize::MAX) {
            return;
        }
        let mut out = Vec::with_capacity(SCAN_CHUNK);
        let next = L::scan(self, sc.next, SCAN_CHUNK, sc.pending_only, &mut out);
        let leases: Vec<(L, u32)> = out.iter().map(|l| (*l, L::potential(self, l))).collect();
        let done = next.is_none();
        let Some(fo) = L::side_mut(self) else {
            return;
        };
        let to = &fo.to;
        if sc.token == 0 {
            // Unsolicited resend: plain updates.
            for (lease, potential) in leases {
                if to.try_send(lease.update(potential)).is_err() {
                    fo.resend = true;
                    fo.scan = None;
                    return;
                }
            }
        } else if to.try_send(L::scanned(sc.token, leases, done)).is_err() {
            // Retry this chunk on the next call.
            return;
        }
        fo.scan = next.map(|n| ScanState { next: n, ..sc });
    }
}
