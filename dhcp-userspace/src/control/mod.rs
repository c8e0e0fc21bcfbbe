//! The control API: lease lookup and listing, pool statistics, operator changes to leases,
//! and Prometheus metrics, over HTTP/JSON.
//!
//! ```text
//! HTTP client ──► control thread (api.rs, tiny_http) ──► bounded ring per worker ──► worker w
//!                          ▲                                                            │ between batches,
//!                          └──────────────── reply channel ◄─────────────────────────────┘ and when idle
//! ```
//!
//! Workers own their shards, so the control thread never reads a shard itself: it sends a
//! [`CtlRequest`] to each worker concerned and merges the answers. A worker serves its control
//! ring only between two batches and when its packet ring is idle, a few requests at a time,
//! so an operator never stalls the packet path for long. A lease change (expire, delete) is
//! written to the owning worker's WAL and committed before the worker answers.
//!
//! - [`api`]: the HTTP server and its routes.
//! - [`metrics`]: the histograms and counters kept in [`Stats`], and the Prometheus text.
//! - [`client`]: the HTTP client behind `twinlease ctl`.

pub mod api;
pub mod client;
pub mod metrics;
mod worker;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::dispatch::Stats;
use crate::io::xdp::program::XdpCounters;
pub use crate::lease::AnyLease;
use crate::lease::{BindingState, ClientKey, IaKind};
use crate::pool::FreeMap;
use crate::pool::v6::{Pool6Kind, Space6};

pub(crate) use worker::serve;

/// Capacity of each worker's control ring: requests beyond it are refused as busy.
pub const RING_CAPACITY: usize = 16;

/// Most requests a worker serves from its control ring at one poll.
pub const PER_POLL: usize = 4;

/// Most leases one page of the listing holds.
pub const MAX_PAGE: usize = 1000;

/// Most leases one lookup returns.
pub const MAX_LOOKUP: usize = 1000;

/// What to look leases up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseQuery {
    /// The DHCPv4 lease(s) of an address, or the DHCPv6 address or prefix starting there.
    Addr(IpAddr),
    /// The delegated prefix `addr/len`.
    Prefix(Ipv6Addr, u8),
    /// DHCPv4 leases whose `chaddr` is this hardware address.
    Mac([u8; 6]),
    /// DHCPv4 leases of the client that sent this client identifier (option 61 value).
    ClientId(Vec<u8>),
    /// DHCPv6 leases of the client with this DUID.
    Duid(Vec<u8>),
}

/// A position in the lease listing, which is ordered: DHCPv4 leases by address, then DHCPv6
/// addresses, then delegated prefixes. Written `v4-ADDR`, `na-ADDR` or `pd-ADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageKey {
    /// A DHCPv4 lease.
    V4(u32),
    /// A DHCPv6 address lease.
    Na(u128),
    /// A DHCPv6 delegated prefix.
    Pd(u128),
}

impl PageKey {
    /// The listing position of a lease.
    #[must_use]
    pub fn of(lease: &AnyLease) -> Self {
        match lease {
            AnyLease::V4(l) => Self::V4(u32::from(l.addr)),
            AnyLease::V6(l) => match l.kind {
                IaKind::Na => Self::Na(u128::from(l.addr)),
                IaKind::Pd => Self::Pd(u128::from(l.addr)),
            },
        }
    }
}

impl fmt::Display for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::V4(a) => write!(f, "v4-{}", Ipv4Addr::from(a)),
            Self::Na(a) => write!(f, "na-{}", Ipv6Addr::from(a)),
            Self::Pd(a) => write!(f, "pd-{}", Ipv6Addr::from(a)),
        }
    }
}

impl FromStr for PageKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a cursor (v4-ADDR, na-ADDR or pd-ADDR)");
        let (kind, addr) = s.split_once('-').ok_or_else(bad)?;
        match kind {
            "v4" => addr
                .parse::<Ipv4Addr>()
                .map(|a| Self::V4(a.into()))
                .map_err(|_| bad()),
            "na" => addr
                .parse::<Ipv6Addr>()
                .map(|a| Self::Na(a.into()))
                .map_err(|_| bad()),
            "pd" => addr
                .parse::<Ipv6Addr>()
                .map(|a| Self::Pd(a.into()))
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// Lease records of one pool by binding state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// ACTIVE: bound to a client.
    pub active: u64,
    /// ABANDONED: declined by a client (or found in use), quarantined until probation ends.
    pub declined: u64,
    /// EXPIRED: the lease time ran out (the address is free again).
    pub expired: u64,
    /// RELEASED: the client gave it back.
    pub released: u64,
    /// Any other state (FREE, RESET, BACKUP).
    pub other: u64,
}

impl StateCounts {
    /// Count one record in `state`.
    pub fn add(&mut self, state: BindingState) {
        match state {
            BindingState::Active => self.active += 1,
            BindingState::Abandoned => self.declined += 1,
            BindingState::Expired => self.expired += 1,
            BindingState::Released => self.released += 1,
            BindingState::Free | BindingState::Reset | BindingState::Backup => self.other += 1,
        }
    }

    /// Add another shard's counts.
    pub fn merge(&mut self, o: &Self) {
        self.active += o.active;
        self.declined += o.declined;
        self.expired += o.expired;
        self.released += o.released;
        self.other += o.other;
    }
}

/// What an operator asks one worker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlOp {
    /// Leases matching a query.
    Find(LeaseQuery),
    /// Up to `limit` leases after `after` (from the start when `None`), in listing order.
    Page {
        /// Last position of the previous page.
        after: Option<PageKey>,
        /// Most leases to return.
        limit: usize,
    },
    /// Lease records by pool and binding state.
    Counts,
    /// End the binding of the address (ACTIVE → EXPIRED, ABANDONED → FREE) and free it.
    Expire(IpAddr),
    /// Remove every record of the address and free it.
    Delete(IpAddr),
    /// Take part in a configuration reload (stop-the-world between batches, see
    /// [`crate::dispatch::reload`]); served by the worker loop itself.
    Reload(crate::dispatch::reload::ReloadTicket),
}

/// One request on a worker's control ring, with the channel the answer goes to.
#[derive(Debug)]
pub struct CtlRequest {
    /// What to do.
    pub op: CtlOp,
    /// Where the answer goes.
    pub reply: Sender<CtlReply>,
}

/// A worker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlReply {
    /// Leases found ([`CtlOp::Find`], [`CtlOp::Page`]).
    Leases(Vec<AnyLease>),
    /// Record counts by pool id ([`CtlOp::Counts`]).
    Counts {
        /// DHCPv4 pools.
        v4: Vec<(u32, StateCounts)>,
        /// DHCPv6 pools.
        v6: Vec<(u32, StateCounts)>,
    },
    /// The records changed, now durable ([`CtlOp::Expire`], [`CtlOp::Delete`]), and how many
    /// records of the address the worker holds in all (changed or not).
    Changed {
        /// The records as they are now (for a delete: as they were).
        changed: Vec<AnyLease>,
        /// Records of the address held by the worker.
        found: usize,
    },
    /// The worker took the reloaded configuration ([`CtlOp::Reload`]).
    Reloaded(crate::dispatch::reload::WorkerReload),
    /// The worker could not do it (a WAL error).
    Failed(String),
}

/// Errors of a control operation, each with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtlError {
    /// A worker's control ring is full.
    #[error("worker {0} is busy; try again")]
    Busy(usize),
    /// A worker did not answer in time.
    #[error("worker {0} did not answer within {1:?}")]
    Timeout(usize, Duration),
    /// The server is stopping.
    #[error("the server is stopping")]
    Stopped,
    /// No lease record of the address.
    #[error("no lease of {0}")]
    NotFound(IpAddr),
    /// The lease is in a state the operation does not apply to.
    #[error("{0}")]
    Conflict(String),
    /// A worker failed to make the change durable.
    #[error("{0}")]
    Worker(String),
}

impl CtlError {
    /// The HTTP status this error is answered with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Busy(_) | Self::Stopped => 503,
            Self::Timeout(..) => 504,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Worker(_) => 500,
        }
    }
}

/// One page of the lease listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The leases, in listing order.
    pub leases: Vec<AnyLease>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<PageKey>,
}

/// Statistics of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStat {
    /// `v4` or `v6`.
    pub family: &'static str,
    /// Subnet id from the configuration.
    pub subnet_id: u32,
    /// Pool id.
    pub pool_id: u32,
    /// What the pool hands out: `START-END`, or `PREFIX/LEN delegating /N`.
    pub range: String,
    /// Members that can be leased (addresses, or delegatable prefixes).
    pub total: u128,
    /// Members free now. DHCPv4: from the free map (held offers are not free); DHCPv6:
    /// `total - active - declined`.
    pub free: u128,
    /// Of the free members, those in the failover secondary's BACKUP share
    /// (draft-ietf-dhc-failover-12 §5.4); 0 without failover.
    pub backup: u128,
    /// Lease records by state.
    pub counts: StateCounts,
}

impl PoolStat {
    /// `(total - free) / total`, 0 for an empty pool.
    #[must_use]
    #[expect(
        clippy::cast_precision_loss,
        reason = "a ratio for humans and dashboards"
    )]
    pub fn utilisation(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.total.saturating_sub(self.free) as f64 / self.total as f64
        }
    }
}

/// What the XDP path reports of one receive queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpQueueStats {
    /// The interface.
    pub iface: String,
    /// The receive queue.
    pub queue: u32,
    /// The XDP program's counters of the queue, summed over CPUs.
    pub counters: XdpCounters,
    /// The queue's current shed level (0: nothing shed; see
    /// [`crate::io::xdp::program::MAX_SHED_LEVEL`]).
    pub shed_level: u32,
}

/// Reads the XDP path's per-queue counters and shed levels.
pub type XdpCounterSource = Arc<dyn Fn() -> Vec<XdpQueueStats> + Send + Sync>;

/// The control side of a running server: talks to its workers over their control rings.
/// Cheap to clone; used by the HTTP thread and by in-process callers (tests).
#[derive(Clone)]
pub struct Handle {
    workers: Vec<Sender<CtlRequest>>,
    /// The pools the statistics are reported for; replaced by a configuration reload.
    pools: SharedPools,
    /// Reloads the configuration; `None` for a handle not attached to a running server.
    reloader: Option<Arc<crate::dispatch::reload::Reloader>>,
    stats: Arc<Stats>,
    xdp: XdpCounterSource,
    timeout: Duration,
    /// The failover relationships' status and command rings (DHCPv4, then DHCPv6).
    failover: Vec<FailoverControl>,
}

/// The DHCPv4 free map and the DHCPv6 space of the running configuration.
pub(crate) type SharedPools = Arc<std::sync::RwLock<(Arc<FreeMap>, Arc<Space6>)>>;

/// What the control API reaches of the partner thread.
#[derive(Clone)]
pub struct FailoverControl {
    /// The relationship's status, updated by the partner thread.
    pub status: Arc<std::sync::Mutex<crate::failover::partner::Status>>,
    /// Operator commands to the partner thread.
    pub commands: tokio::sync::mpsc::Sender<crate::failover::partner::Command>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.workers.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The control rings of `workers` workers: the senders for the [`Handle`], the receivers for
/// the workers.
#[must_use]
pub fn rings(workers: usize) -> (Vec<Sender<CtlRequest>>, Vec<Receiver<CtlRequest>>) {
    (0..workers).map(|_| bounded(RING_CAPACITY)).unzip()
}

impl Handle {
    /// A handle on the workers behind `workers` (one control ring each, in worker order).
    #[must_use]
    pub fn new(
        workers: Vec<Sender<CtlRequest>>,
        free: Arc<FreeMap>,
        space6: Arc<Space6>,
        stats: Arc<Stats>,
        xdp: XdpCounterSource,
    ) -> Self {
        Self {
            workers,
            pools: Arc::new(std::sync::RwLock::new((free, space6))),
            reloader: None,
            stats,
            xdp,
            timeout: Duration::from_secs(5),
            failover: Vec::new(),
        }
    }

    /// The pools the statistics are reported for, shared with the reloader.
    pub(crate) fn shared_pools(&self) -> SharedPools {
        Arc::clone(&self.pools)
    }

    /// Attach the configuration reloader (the server does this).
    pub(crate) fn set_reloader(&mut self, r: Arc<crate::dispatch::reload::Reloader>) {
        self.reloader = Some(r);
    }

    /// Reload the configuration file the server was started with (`POST /v1/reload`,
    /// SIGHUP): see [`crate::dispatch::reload`].
    pub fn reload(
        &self,
    ) -> Result<crate::dispatch::reload::ReloadReport, crate::dispatch::reload::ReloadError> {
        match &self.reloader {
            Some(r) => r.reload_file(),
            None => Err(crate::dispatch::reload::ReloadError::NoFile),
        }
    }

    /// Replace the running configuration by `config` (validated by the caller, e.g. with
    /// [`crate::config::parse`]); `file` names it in error messages.
    pub fn reload_config(
        &self,
        config: crate::config::Config,
        file: &str,
    ) -> Result<crate::dispatch::reload::ReloadReport, crate::dispatch::reload::ReloadError> {
        match &self.reloader {
            Some(r) => r.apply(config, file),
            None => Err(crate::dispatch::reload::ReloadError::NoFile),
        }
    }

    /// Reloads so far (`None` for a handle not attached to a running server).
    #[must_use]
    pub fn reload_counters(&self) -> Option<crate::dispatch::reload::ReloadCounters> {
        self.reloader.as_ref().map(|r| r.counters())
    }

    /// Attach a failover relationship (the server does this for each one it has).
    pub fn set_failover(&mut self, fo: FailoverControl) {
        self.failover.push(fo);
    }

    /// The failover relationships' status (empty without failover).
    #[must_use]
    pub fn failover_status(&self) -> Vec<crate::failover::partner::Status> {
        self.failover
            .iter()
            .filter_map(|f| f.status.lock().ok().map(|s| s.clone()))
            .collect()
    }

    /// Ask a partner thread to enter PARTNER-DOWN (draft-ietf-dhc-failover-12, RFC 8156
    /// §8: only an operator may say the partner is down): the relationship named `name`, or
    /// the only one when `name` is `None`. Returns the new state's name.
    pub fn partner_down(&self, name: Option<&str>) -> Result<&'static str, String> {
        let f = match name {
            Some(n) => self
                .failover
                .iter()
                .find(|f| f.status.lock().is_ok_and(|s| s.name == n))
                .ok_or_else(|| format!("no failover relationship named {n:?}"))?,
            None => match self.failover.as_slice() {
                [] => return Err("this server has no failover relationship".to_owned()),
                [f] => f,
                _ => {
                    return Err(
                        "this server has several failover relationships: name one".to_owned()
                    );
                }
            },
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        f.commands
            .try_send(crate::failover::partner::Command::PartnerDown(tx))
            .map_err(|_| "the partner thread is busy or stopped".to_owned())?;
        rx.recv_timeout(self.timeout)
            .map_err(|_| "the partner thread did not answer".to_owned())?
    }

    /// The server's counters.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Per-queue counters of the XDP programs (empty on the socket path).
    #[must_use]
    pub fn xdp_counters(&self) -> Vec<XdpQueueStats> {
        (self.xdp)()
    }

    /// Number of workers.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Send `op` to each worker in `targets`, then wait for every answer (all requests are
    /// queued before the first wait, so the workers serve them in parallel).
    fn ask(&self, targets: &[usize], op: &CtlOp) -> Result<Vec<CtlReply>, CtlError> {
        let (tx, rx) = bounded(targets.len().max(1));
        for &w in targets {
            let req = CtlRequest {
                op: op.clone(),
                reply: tx.clone(),
            };
            match self.workers[w].try_send(req) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Err(CtlError::Busy(w)),
                Err(TrySendError::Disconnected(_)) => return Err(CtlError::Stopped),
            }
        }
        drop(tx);
        let end = Instant::now() + self.timeout;
        let mut out = Vec::with_capacity(targets.len());
        for &w in targets {
            match rx.recv_deadline(end) {
                Ok(r) => out.push(r),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    return Err(CtlError::Timeout(w, self.timeout));
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(CtlError::Stopped);
                }
            }
        }
        Ok(out)
    }

    fn all(&self) -> Vec<usize> {
        (0..self.workers.len()).collect()
    }

    fn leases_of(replies: Vec<CtlReply>) -> Result<Vec<AnyLease>, CtlError> {
        let mut out = Vec::new();
        for r in replies {
            match r {
                CtlReply::Leases(l) => out.extend(l),
                CtlReply::Failed(e) => return Err(CtlError::Worker(e)),
                other => return Err(CtlError::Worker(format!("unexpected answer {other:?}"))),
            }
        }
        Ok(out)
    }

    /// Leases matching `query`, in listing order. A client identifier or DUID is asked of its
    /// owning worker only; other queries of every worker.
    pub fn find(&self, query: &LeaseQuery) -> Result<Vec<AnyLease>, CtlError> {
        let n = self.workers.len();
        let targets = match query {
            LeaseQuery::ClientId(id) => ClientKey::from_client_id(id)
                .map(|k| vec![k.shard(n)])
                .unwrap_or_default(),
            LeaseQuery::Duid(d) => ClientKey::from_duid(d)
                .map(|k| vec![k.shard(n)])
                .unwrap_or_default(),
            _ => self.all(),
        };
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Self::leases_of(self.ask(&targets, &CtlOp::Find(query.clone()))?)?;
        out.sort_by_key(PageKey::of);
        out.truncate(MAX_LOOKUP);
        Ok(out)
    }

    /// One page of the listing: up to `limit` (at most [`MAX_PAGE`]) leases after `after`.
    pub fn page(&self, after: Option<PageKey>, limit: usize) -> Result<Page, CtlError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut all = Self::leases_of(self.ask(&self.all(), &CtlOp::Page { after, limit })?)?;
        all.sort_by_key(PageKey::of);
        let more = all.len() > limit;
        all.truncate(limit);
        let next = if more {
            all.last().map(PageKey::of)
        } else {
            None
        };
        Ok(Page { leases: all, next })
    }

    /// Statistics of every DHCPv4 pool, then every DHCPv6 pool, in configuration order.
    pub fn pool_stats(&self) -> Result<Vec<PoolStat>, CtlError> {
        let mut v4: Vec<(u32, StateCounts)> = Vec::new();
        let mut v6: Vec<(u32, StateCounts)> = Vec::new();
        let merge = |acc: &mut Vec<(u32, StateCounts)>, part: Vec<(u32, StateCounts)>| {
            for (id, c) in part {
                match acc.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, a)) => a.merge(&c),
                    None => acc.push((id, c)),
                }
            }
        };
        for r in self.ask(&self.all(), &CtlOp::Counts)? {
            match r {
                CtlReply::Counts { v4: a, v6: b } => {
                    merge(&mut v4, a);
                    merge(&mut v6, b);
                }
                CtlReply::Failed(e) => return Err(CtlError::Worker(e)),
                other => return Err(CtlError::Worker(format!("unexpected answer {other:?}"))),
            }
        }
        let counts_of = |acc: &[(u32, StateCounts)], id: u32| {
            acc.iter()
                .find(|(i, _)| *i == id)
                .map(|(_, c)| *c)
                .unwrap_or_default()
        };
        let (free, space6) = self
            .pools
            .read()
            .map(|p| (Arc::clone(&p.0), Arc::clone(&p.1)))
            .map_err(|_| CtlError::Worker("pool view poisoned".into()))?;
        let mut out = Vec::new();
        for p in free.pools() {
            out.push(PoolStat {
                family: "v4",
                subnet_id: p.subnet_id,
                pool_id: p.id,
                range: format!("{}-{}", p.start, p.end),
                total: u128::from(free.size(p.id)),
                free: u128::from(free.free_count(p.id)),
                backup: u128::from(free.share_counts(p.id).1),
                counts: counts_of(&v4, p.id),
            });
        }
        for p in space6.pools() {
            let counts = counts_of(&v6, p.id);
            let total = space6.size(p.id);
            let range = match p.kind {
                Pool6Kind::Na { start, end } => format!("{start}-{end}"),
                Pool6Kind::Pd {
                    prefix,
                    prefix_len,
                    delegated_len,
                    ..
                } => format!("{prefix}/{prefix_len} delegating /{delegated_len}"),
            };
            out.push(PoolStat {
                family: "v6",
                subnet_id: p.subnet_id,
                pool_id: p.id,
                range,
                total,
                free: total.saturating_sub(u128::from(counts.active + counts.declined)),
                backup: 0,
                counts,
            });
        }
        Ok(out)
    }

    fn change(&self, op: &CtlOp, addr: IpAddr) -> Result<Vec<AnyLease>, CtlError> {
        let mut changed = Vec::new();
        let mut found = 0;
        for r in self.ask(&self.all(), op)? {
            match r {
                CtlReply::Changed {
                    changed: c,
                    found: f,
                } => {
                    changed.extend(c);
                    found += f;
                }
                CtlReply::Failed(e) => return Err(CtlError::Worker(e)),
                other => return Err(CtlError::Worker(format!("unexpected answer {other:?}"))),
            }
        }
        if found == 0 {
            return Err(CtlError::NotFound(addr));
        }
        if changed.is_empty() {
            return Err(CtlError::Conflict(format!(
                "the lease of {addr} is neither active nor declined: nothing to expire"
            )));
        }
        changed.sort_by_key(PageKey::of);
        Ok(changed)
    }

    /// End the binding of `addr` now: ACTIVE becomes EXPIRED, ABANDONED (declined) becomes
    /// FREE; the change is durable and the address free when this returns. The changed
    /// records are returned.
    pub fn expire(&self, addr: IpAddr) -> Result<Vec<AnyLease>, CtlError> {
        self.change(&CtlOp::Expire(addr), addr)
    }

    /// Remove every lease record of `addr` (durably: a FREE record replaces it in the WAL and
    /// is dropped at the next compaction) and free the address. The removed records are
    /// returned.
    pub fn delete(&self, addr: IpAddr) -> Result<Vec<AnyLease>, CtlError> {
        self.change(&CtlOp::Delete(addr), addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_key_order_and_text() {
        let keys = [
            "v4-10.0.0.1",
            "v4-10.0.0.2",
            "na-2001:db8::1",
            "pd-2001:db8:100::",
        ];
        let parsed: Vec<PageKey> = keys.iter().map(|k| k.parse().unwrap()).collect();
        let mut sorted = parsed.clone();
        sorted.sort();
        assert_eq!(parsed, sorted, "listing order: v4, then na, then pd");
        for (k, p) in keys.iter().zip(&parsed) {
            assert_eq!(&p.to_string(), k);
        }
        assert!("x-1".parse::<PageKey>().is_err());
        assert!("v4-2001:db8::1".parse::<PageKey>().is_err());
        assert!("17".parse::<PageKey>().is_err());
    }

    #[test]
    fn state_counts() {
        let mut c = StateCounts::default();
        for s in [
            BindingState::Active,
            BindingState::Active,
            BindingState::Abandoned,
            BindingState::Expired,
            BindingState::Released,
            BindingState::Free,
        ] {
            c.add(s);
        }
        let mut d = c;
        d.merge(&c);
        assert_eq!(
            (d.active, d.declined, d.expired, d.released, d.other),
            (4, 2, 2, 2, 2)
        );
    }
}
