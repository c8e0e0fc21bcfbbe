//! Configuration reload without restart (SIGHUP, `POST /v1/reload`, `twinlease ctl reload`).
//!
//! ```text
//! reloader (control or signal thread)           worker 0 … worker n-1 (between two batches)
//!  load + validate the file, refuse restart-only
//!  changes, build Engine/Engine6, FreeMap, Space6
//!  CtlOp::Reload ──────────────────────────────► park at barrier 1 (all workers stopped)
//!                                                 re-claim own held addresses in the new map,
//!                                                 worker 0 copies the BACKUP share bits
//!                                                 barrier 2 (every claim made)
//!                                                 swap Arc<Engine>, Arc<FreeMap>, Space6; resume
//!  ◄──────────────────────────── CtlReply::Reloaded (pause, counts)
//!  partner thread: Command::SetFreeMap; control API: new pool view
//! ```
//!
//! The packet path keeps its lock-free shape: a worker only ever reads its own `Arc`s, which
//! change while every worker is parked between two batches. Requests queue in the bounded
//! rings meanwhile (the pause is timed and reported). A worker that is idle sees the request
//! within its 100 ms receive timeout, which bounds the pause of the others.
//!
//! What may change: subnets, pools, options, reservations, lease times, `server-id`,
//! `offer-hold-secs`, `decline-probation-secs`. What may not (the reload is refused with one
//! `file: field: reason` line each, and the running configuration stays): the rest of
//! `[server]`, `[control]`, `[failover]`, `[failover6]` (and the DHCPv6 subnets with it), and
//! DHCPv6 on a server started without it (no
//! DHCPv6 socket is open).
//!
//! Leases whose address left every pool are kept until they expire and stay in the lease
//! listings; their addresses are never handed out again. A client renewing one is answered
//! DHCPNAK (RFC 2131 §3.2 and §4.3.2: the server SHOULD NAK a client whose notion of its
//! address is incorrect), so it restarts in INIT and gets an address of the new pools.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use crate::config::{Config, ConfigError, ConfigErrors};
use crate::control::{CtlOp, CtlReply, CtlRequest, SharedPools};
use crate::engine::v4::Engine;
use crate::engine::v6::Engine6;
use crate::io::socket::Interface;
use crate::lease::{BindingState, Lease4};
use crate::pool::FreeMap;
use crate::pool::v6::Space6;

/// How long a worker waits at the first barrier for the others before the reload is
/// abandoned (no worker has changed anything then).
const ARRIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the reloader waits for the workers' answers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a reload did not happen; the running configuration is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid, or changes settings that need a restart.
    #[error("{0}")]
    Invalid(#[source] ConfigErrors),
    /// The server was not started from a file (nothing to reload), or the handle is not
    /// attached to a running server.
    #[error("the server has no configuration file to reload")]
    NoFile,
    /// The workers could not all be stopped (a full control ring, a worker that did not
    /// answer): nothing was changed.
    #[error("reload abandoned: {0}")]
    Workers(String),
}

impl ReloadError {
    /// The HTTP status this error is answered with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 422,
            Self::NoFile => 409,
            Self::Workers(_) => 503,
        }
    }

    /// The `file: field: reason` lines of an invalid configuration (empty otherwise).
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Invalid(e) => e.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        }
    }
}

/// What one reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// The longest time a worker was stopped (from its arrival at the first barrier until it
    /// resumed).
    pub pause: Duration,
    /// DHCPv4 subnets and pools, DHCPv6 subnets and pools now configured.
    pub subnets4: usize,
    /// DHCPv4 pools now configured.
    pub pools4: usize,
    /// DHCPv6 subnets now configured.
    pub subnets6: usize,
    /// DHCPv6 pools (address and prefix) now configured.
    pub pools6: usize,
    /// Lease records (any state) whose address is in no pool of the new configuration: kept
    /// until they expire, visible in the listings, never renewed (DHCPNAK).
    pub orphaned_v4: u64,
    /// DHCPv6 lease records whose address or prefix is in no pool any more.
    pub orphaned_v6: u64,
    /// Bound DHCPv4 addresses that the new configuration reserves for a client (the binding
    /// keeps its address until it ends; the reservation's client is refused meanwhile).
    pub reserved_in_use: u64,
    /// DHCPv6 bindings whose member now falls in another worker's partition of a changed
    /// pool (a pool's start moved): logged, see the operations guide.
    pub v6_moved: u64,
    /// Offers dropped because their address left the pools.
    pub offers_dropped: u64,
}

impl ReloadReport {
    fn add(&mut self, w: &WorkerReload) {
        self.pause = self.pause.max(w.pause);
        self.orphaned_v4 += w.orphaned_v4;
        self.orphaned_v6 += w.orphaned_v6;
        self.reserved_in_use += w.reserved_in_use;
        self.v6_moved += w.v6_moved;
        self.offers_dropped += w.offers_dropped;
    }
}

/// One worker's part of a reload ([`CtlReply::Reloaded`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReload {
    /// How long this worker was stopped.
    pub pause: Duration,
    /// See [`ReloadReport::orphaned_v4`].
    pub orphaned_v4: u64,
    /// See [`ReloadReport::orphaned_v6`].
    pub orphaned_v6: u64,
    /// See [`ReloadReport::reserved_in_use`].
    pub reserved_in_use: u64,
    /// See [`ReloadReport::v6_moved`].
    pub v6_moved: u64,
    /// See [`ReloadReport::offers_dropped`].
    pub offers_dropped: u64,
}

/// The new engines and pools, handed to every worker.
pub(crate) struct Plan {
    pub(crate) engine: Arc<Engine>,
    pub(crate) engine6: Option<Arc<Engine6>>,
    pub(crate) free: Arc<FreeMap>,
    pub(crate) space6: Arc<Space6>,
    gate: Gate,
}

/// A worker's ticket to a reload ([`CtlOp::Reload`]); compared by identity.
#[derive(Clone)]
pub struct ReloadTicket(pub(crate) Arc<Plan>);

impl fmt::Debug for ReloadTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadTicket")
            .field("workers", &self.0.gate.n)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ReloadTicket {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for ReloadTicket {}

#[derive(Default)]
struct GateState {
    arrived: usize,
    claimed: usize,
    aborted: bool,
}

/// The two barriers of a reload, with a way out before the first one completes.
struct Gate {
    n: usize,
    state: Mutex<GateState>,
    cv: Condvar,
}

impl Gate {
    fn new(n: usize) -> Self {
        Self {
            n,
            state: Mutex::new(GateState::default()),
            cv: Condvar::new(),
        }
    }

    /// Barrier 1: wait until every worker arrived. `false`: the reload was abandoned (by
    /// the reloader, or because a worker did not come within [`ARRIVE_TIMEOUT`]).
    fn arrive(&self) -> bool {
        let Ok(mut g) = self.state.lock() else {
            return false;
        };
        if g.aborted {
            return false;
        }
        g.arrived += 1;
        self.cv.notify_all();
        let end = Instant::now() + ARRIVE_TIMEOUT;
        while g.arrived < self.n && !g.aborted {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                g.aborted = true;
                self.cv.notify_all();
                break;
            }
            g = match self.cv.wait_timeout(g, left) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
        !g.aborted
    }

    /// Abandon the reload unless every worker has arrived already (then it completes).
    fn abort(&self) {
        if let Ok(mut g) = self.state.lock()
            && g.arrived < self.n
        {
            g.aborted = true;
            self.cv.notify_all();
        }
    }

    /// Barrier 2: wait until every worker has made its claims in the new map. Every worker
    /// passed barrier 1, so every one comes here.
    fn claimed(&self) {
        let Ok(mut g) = self.state.lock() else {
            return;
        };
        g.claimed += 1;
        self.cv.notify_all();
        while g.claimed < self.n {
            g = match self.cv.wait(g) {
                Ok(g) => g,
                Err(_) => return,
            };
        }
    }
}

/// What a worker swaps in, and what it needs to re-claim its addresses.
pub(crate) struct WorkerSide<'a> {
    /// The worker's index.
    pub(crate) id: usize,
    /// Its shard store.
    pub(crate) store: &'a mut crate::store::ShardStore,
    /// Its free map (the old one, replaced on success).
    pub(crate) free: &'a mut Arc<FreeMap>,
    /// Its engine.
    pub(crate) engine: &'a mut Arc<Engine>,
    /// Its DHCPv6 engine.
    pub(crate) engine6: &'a mut Option<Arc<Engine6>>,
    /// The failover MCLT, with a partner.
    pub(crate) mclt: Option<u32>,
}

/// Run a worker's part of the reload: barrier, re-claim, barrier, swap.
pub(crate) fn serve_worker(t: &ReloadTicket, w: &mut WorkerSide<'_>, now: u32) -> CtlReply {
    let plan = &t.0;
    let arrived = Instant::now();
    if !plan.gate.arrive() {
        return CtlReply::Failed("reload abandoned before any change".into());
    }
    let new = &plan.free;
    let mut r = WorkerReload::default();
    let reserved: Vec<Ipv4Addr> = plan.engine.reserved_addresses().collect();
    // Every address this worker holds is claimed again in the new map (draft-12 §5.2.1:
    // with a partner a RELEASED binding keeps its address until the MCLT has passed).
    let mut to_free: Vec<Lease4> = Vec::new();
    for l in w.store.shard.iter() {
        let holds = match l.state {
            BindingState::Active | BindingState::Abandoned => true,
            BindingState::Released => match w.mclt {
                Some(mclt) if l.expires.max(l.partner_expires).saturating_add(mclt) > now => true,
                Some(_) => {
                    to_free.push(l);
                    false
                }
                None => false,
            },
            _ => false,
        };
        if new.pool_of(l.addr).is_none() {
            r.orphaned_v4 += u64::from(w.free.pool_of(l.addr).is_some());
            continue;
        }
        if holds && !new.try_take(l.addr) && reserved.contains(&l.addr) {
            r.reserved_in_use += 1;
        }
    }
    // Like at start (see `hold_released`): a RELEASED record past the MCLT holds nothing,
    // so the expiry sweep must not give its address back.
    for mut l in to_free {
        l.state = BindingState::Free;
        w.store.shard.upsert(l);
    }
    let offers: Vec<Ipv4Addr> = w.store.shard.offer_addrs().collect();
    for a in offers {
        let keep = if new.pool_of(a).is_some() {
            new.try_take(a) || reserved.contains(&a)
        } else {
            reserved.contains(&a)
        };
        if !keep {
            // Not given back: the address is in no pool, or someone else's now.
            w.store.shard.cancel_offer(a);
            r.offers_dropped += 1;
        }
    }
    let old6 = Arc::clone(w.store.shard6.space());
    for l in w.store.shard6.iter() {
        if plan.space6.pool_of(l.kind, l.addr, l.prefix_len).is_none() {
            r.orphaned_v6 += u64::from(old6.pool_of(l.kind, l.addr, l.prefix_len).is_some());
        } else if l.state.holds_address()
            && plan.space6.owner(l.kind, l.addr, l.prefix_len) != Some(w.id)
        {
            r.v6_moved += 1;
        }
    }
    // draft-12 §5.4: the free addresses keep their share (FREE or BACKUP) across a reload.
    if w.id == 0 {
        for (a, b) in w.free.backup_ranges() {
            for x in u32::from(a)..=u32::from(b) {
                new.set_backup(Ipv4Addr::from(x), true);
            }
        }
    }
    plan.gate.claimed();
    *w.engine = Arc::clone(&plan.engine);
    w.engine6.clone_from(&plan.engine6);
    *w.free = Arc::clone(&plan.free);
    w.store.shard6.set_space(Arc::clone(&plan.space6));
    r.pause = arrived.elapsed();
    CtlReply::Reloaded(r)
}

/// Counts of the reloads since the start (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadCounters {
    /// Reloads applied.
    pub ok: u64,
    /// Reloads refused: an invalid file, or a setting that needs a restart.
    pub refused: u64,
    /// Reloads abandoned because the workers could not all be stopped.
    pub failed: u64,
    /// The pause of the last reload applied, microseconds.
    pub last_pause_us: u64,
}

/// The reloader: holds the running configuration and replaces it. One reload at a time.
pub struct Reloader {
    counters: Mutex<ReloadCounters>,
    workers: Vec<Sender<CtlRequest>>,
    ifaces: Arc<Vec<Interface>>,
    pools: SharedPools,
    partner: Option<tokio::sync::mpsc::Sender<crate::failover::partner::Command>>,
    state: Mutex<State>,
}

struct State {
    config: Config,
    path: Option<PathBuf>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader of the server running `config` with these workers' control rings.
    pub(crate) fn new(
        config: Config,
        workers: Vec<Sender<CtlRequest>>,
        ifaces: Arc<Vec<Interface>>,
        pools: SharedPools,
        partner: Option<tokio::sync::mpsc::Sender<crate::failover::partner::Command>>,
    ) -> Self {
        Self {
            counters: Mutex::new(ReloadCounters::default()),
            workers,
            ifaces,
            pools,
            partner,
            state: Mutex::new(State { config, path: None }),
        }
    }

    /// Reloads so far.
    #[must_use]
    pub fn counters(&self) -> ReloadCounters {
        self.counters.lock().map(|c| *c).unwrap_or_default()
    }

    fn count(&self, r: &Result<ReloadReport, ReloadError>) {
        if let Ok(mut c) = self.counters.lock() {
            match r {
                Ok(rep) => {
                    c.ok += 1;
                    c.last_pause_us = u64::try_from(rep.pause.as_micros()).unwrap_or(u64::MAX);
                }
                Err(ReloadError::Invalid(_)) => c.refused += 1,
                Err(_) => c.failed += 1,
            }
        }
    }

    /// Remember the file the configuration came from (what [`Self::reload_file`] reads).
    pub fn set_path(&self, path: PathBuf) {
        if let Ok(mut s) = self.state.lock() {
            s.path = Some(path);
        }
    }

    /// Read, validate and apply the configuration file again.
    pub fn reload_file(&self) -> Result<ReloadReport, ReloadError> {
        let path = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.path.clone())
            .ok_or(ReloadError::NoFile)?;
        match crate::config::load(&path) {
            Ok(config) => self.apply(config, &path.display().to_string()),
            Err(e) => {
                let r = Err(ReloadError::Invalid(e));
                self.count(&r);
                r
            }
        }
    }

    /// Replace the running configuration by `new` (already validated).
    pub fn apply(&self, new: Config, file: &str) -> Result<ReloadReport, ReloadError> {
        let r = self.apply_counted(new, file);
        self.count(&r);
        r
    }

    fn apply_counted(&self, new: Config, file: &str) -> Result<ReloadReport, ReloadError> {
        let Ok(mut state) = self.state.lock() else {
            return Err(ReloadError::Workers("reloader state poisoned".into()));
        };
        let refused = restart_only_changes(&state.config, &new, file);
        if !refused.is_empty() {
            return Err(ReloadError::Invalid(ConfigErrors { errors: refused }));
        }
        let plan = Arc::new(self.build(&new, file)?);
        let n = self.workers.len();
        let (tx, rx) = bounded(n.max(1));
        for (w, ring) in self.workers.iter().enumerate() {
            let req = CtlRequest {
                op: CtlOp::Reload(ReloadTicket(Arc::clone(&plan))),
                reply: tx.clone(),
            };
            if ring.send_timeout(req, Duration::from_secs(1)).is_err() {
                plan.gate.abort();
                return Err(ReloadError::Workers(format!(
                    "worker {w} did not take the request"
                )));
            }
        }
        drop(tx);
        let mut report = ReloadReport::default();
        let end = Instant::now() + ANSWER_TIMEOUT;
        let mut failed = None;
        for _ in 0..n {
            match rx.recv_deadline(end) {
                Ok(CtlReply::Reloaded(w)) => report.add(&w),
                Ok(CtlReply::Failed(e)) => failed = Some(e),
                Ok(other) => failed = Some(format!("unexpected answer {other:?}")),
                Err(_) => {
                    plan.gate.abort();
                    failed = Some("a worker did not answer".into());
                    break;
                }
            }
        }
        if let Some(e) = failed {
            // The gate lets every worker through or none: a failure means none changed.
            return Err(ReloadError::Workers(e));
        }
        if let Ok(mut p) = self.pools.write() {
            *p = (Arc::clone(&plan.free), Arc::clone(&plan.space6));
        }
        if let Some(cmd) = &self.partner
            && cmd
                .try_send(crate::failover::partner::Command::SetFreeMap(Arc::clone(
                    &plan.free,
                )))
                .is_err()
        {
            tracing::warn!("reload: the failover partner thread did not take the new pools");
        }
        if state.config.server.log != new.server.log
            && crate::logging::apply_config(new.server.log.as_deref())
        {
            tracing::info!(filter = ?new.server.log, "reload: log filter changed");
        }
        report.subnets4 = new.subnet4.len();
        report.pools4 = plan.free.pools().len();
        report.subnets6 = new.subnet6.len();
        report.pools6 = plan.space6.pools().len();
        state.config = new;
        tracing::info!(
            file,
            pause_us = u64::try_from(report.pause.as_micros()).unwrap_or(u64::MAX),
            subnets4 = report.subnets4,
            pools4 = report.pools4,
            subnets6 = report.subnets6,
            pools6 = report.pools6,
            orphaned_v4 = report.orphaned_v4,
            orphaned_v6 = report.orphaned_v6,
            reserved_in_use = report.reserved_in_use,
            offers_dropped = report.offers_dropped,
            "configuration reloaded"
        );
        if report.orphaned_v4 + report.orphaned_v6 > 0 {
            tracing::warn!(
                v4 = report.orphaned_v4,
                v6 = report.orphaned_v6,
                "reload: lease records of removed pools are kept until they expire; renewals are refused (DHCPNAK)"
            );
        }
        if report.v6_moved > 0 {
            tracing::warn!(
                count = report.v6_moved,
                "reload: DHCPv6 bindings now fall in another worker's partition of a changed pool; restart to re-shard them"
            );
        }
        if report.reserved_in_use > 0 {
            tracing::warn!(
                count = report.reserved_in_use,
                "reload: newly reserved addresses are bound to other clients until those bindings end"
            );
        }
        Ok(report)
    }

    /// Build the engines and pools of `new`; nothing running is touched.
    fn build(&self, new: &Config, file: &str) -> Result<Plan, ReloadError> {
        let workers = self.workers.len();
        let invalid = |field: &str, reason: String| {
            ReloadError::Invalid(ConfigErrors {
                errors: vec![ConfigError {
                    file: file.to_owned(),
                    field: field.to_owned(),
                    reason,
                }],
            })
        };
        let (mut engine, ranges) = crate::engine::build_v4(new);
        let reserved: Vec<Ipv4Addr> = engine.reserved_addresses().collect();
        let free = FreeMap::new(&ranges, workers, &|a| reserved.contains(&a))
            .map_err(|e| invalid("subnet4", e.to_string()))?;
        let (mut engine6, space6) = if new.subnet6.is_empty() {
            (
                None,
                Space6::new(&[], workers, &[]).map_err(|e| invalid("subnet6", e.to_string()))?,
            )
        } else {
            let duid = crate::engine::v6::load_or_create_server_duid(&new.server.data_dir)
                .map_err(|e| invalid("server.data-dir", format!("server DUID: {e}")))?;
            let (e6, pools6, reserved6) = crate::engine::build_v6(new, duid);
            let space = Space6::new(&pools6, workers, &reserved6)
                .map_err(|e| invalid("subnet6", e.to_string()))?;
            (Some(e6), space)
        };
        for i in self.ifaces.iter() {
            engine.bind_interface(&i.name, i.ifindex);
            if let Some(e6) = engine6.as_mut() {
                e6.bind_interface(&i.name, i.ifindex);
            }
        }
        Ok(Plan {
            engine: Arc::new(engine),
            engine6: engine6.map(Arc::new),
            free: Arc::new(free),
            space6: Arc::new(space6),
            gate: Gate::new(workers),
        })
    }
}

/// The settings of `new` that differ from `old` and cannot change while the server runs,
/// one error each. Changeable: subnets, pools, options, reservations, `server-id`,
/// `offer-hold-secs`, `decline-probation-secs`, `log`.
#[must_use]
pub fn restart_only_changes(old: &Config, new: &Config, file: &str) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut refuse = |field: &str, what: &str| {
        out.push(ConfigError {
            file: file.to_owned(),
            field: field.to_owned(),
            reason: format!("{what} cannot change while the server runs; restart to apply it (the running configuration is kept)"),
        });
    };
    let (o, n) = (&old.server, &new.server);
    let fields: [(&str, bool); 18] = [
        ("server.data-dir", o.data_dir != n.data_dir),
        ("server.workers", o.workers != n.workers),
        ("server.durability", o.durability != n.durability),
        ("server.io", o.io != n.io),
        ("server.listen", o.listen != n.listen),
        ("server.listen6", o.listen6 != n.listen6),
        ("server.interfaces", o.interfaces != n.interfaces),
        ("server.batch-size", o.batch_size != n.batch_size),
        ("server.ring-capacity", o.ring_capacity != n.ring_capacity),
        (
            "server.stale-request-ms",
            o.stale_request_ms != n.stale_request_ms,
        ),
        (
            "server.per-client-rate",
            o.per_client_rate != n.per_client_rate,
        ),
        (
            "server.wal-segment-mib",
            o.wal_segment_mib != n.wal_segment_mib,
        ),
        ("server.reply-port", o.reply_port != n.reply_port),
        ("server.relay-port", o.relay_port != n.relay_port),
        ("server.xdp", o.xdp != n.xdp),
        ("server.worker-cores", o.worker_cores != n.worker_cores),
        ("server.user", o.user != n.user),
        (
            "server.drop-capabilities",
            o.drop_capabilities != n.drop_capabilities,
        ),
    ];
    for (field, changed) in fields {
        if changed {
            refuse(field, "this setting");
        }
    }
    if old.control != new.control {
        refuse("control", "the control API");
    }
    if old.failover != new.failover {
        refuse("failover", "the failover relationship");
    }
    if old.failover6 != new.failover6 {
        refuse("failover6", "the DHCPv6 failover relationship");
    }
    if new.failover6.is_some() && old.subnet6 != new.subnet6 {
        // The partner thread and the shares of RFC 8156 are built for the pools at start.
        refuse(
            "subnet6",
            "the DHCPv6 subnets of a server with a [failover6] relationship",
        );
    }
    if old.subnet6.is_empty() && !new.subnet6.is_empty() {
        refuse(
            "subnet6",
            "DHCPv6 on a server started without it (no DHCPv6 socket is open)",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::ClientKey;
    use crate::wal::{Durability, WalOptions};

    const OPTS: WalOptions = WalOptions {
        segment_size: 1 << 16,
        durability: Durability::None,
    };
    const NOW: u32 = 1_000_000;

    fn cfg(pools: &[&str], extra: &str) -> Config {
        let mut text = String::from(
            "[server]\nworkers = 2\n[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/16\"\nrelay-addresses = [\"10.0.0.1\"]\n",
        );
        for p in pools {
            text.push_str("[[subnet4.pool]]\nrange = \"");
            text.push_str(p);
            text.push_str("\"\n");
        }
        text.push_str(extra);
        crate::config::parse(&text, "t.toml").unwrap()
    }

    fn lease(last: [u8; 2], mac: u8, state: BindingState, expires: u32) -> Lease4 {
        Lease4 {
            addr: Ipv4Addr::new(10, 0, last[0], last[1]),
            state,
            client: ClientKey::from_client_id(&[1, 2, 0, 0, 0, 0, mac]).unwrap(),
            chaddr: [2, 0, 0, 0, 0, mac],
            subnet_id: 1,
            expires,
            cltt: NOW - 100,
            partner_expires: 0,
            update_pending: false,
        }
    }

    fn map(c: &Config) -> (Engine, Arc<FreeMap>) {
        let (e, ranges) = crate::engine::build_v4(c);
        let reserved: Vec<Ipv4Addr> = e.reserved_addresses().collect();
        let f = FreeMap::new(&ranges, 2, &|a| reserved.contains(&a)).unwrap();
        (e, Arc::new(f))
    }

    #[test]
    fn workers_claim_their_addresses_and_keep_the_split() {
        let dir = tempfile::tempdir().unwrap();
        let old_cfg = cfg(&["10.0.0.10-10.0.0.49", "10.0.1.10-10.0.1.19"], "");
        let (old_engine, old) = map(&old_cfg);
        let space = Arc::new(Space6::new(&[], 2, &[]).unwrap());
        let (mut stores, _) =
            crate::store::open(dir.path(), 2, OPTS, &old, &|_| false, &space).unwrap();
        let leases = [
            lease([0, 10], 1, BindingState::Active, NOW + 3600),
            lease([0, 11], 2, BindingState::Abandoned, NOW + 3600),
            // Released 10 s ago: within the MCLT, still held (draft-12 §5.2.1).
            lease([0, 12], 3, BindingState::Released, NOW - 10),
            // Released long ago: holds nothing.
            lease([0, 13], 4, BindingState::Released, NOW - 10_000),
            lease([0, 14], 5, BindingState::Expired, NOW - 10),
            // In pool B, which the reload removes.
            lease([1, 10], 6, BindingState::Active, NOW + 3600),
        ];
        for l in leases {
            if l.state.holds_address() || l.addr.octets()[3] == 12 {
                assert!(old.try_take(l.addr));
            }
            stores[l.client.shard(2)].shard.upsert(l);
        }
        // An offer held by a client of its shard.
        let offer = lease([0, 20], 7, BindingState::Active, NOW + 3600);
        assert!(old.try_take(offer.addr));
        stores[offer.client.shard(2)]
            .shard
            .hold_offer(offer, NOW + 30);
        // The secondary's share.
        for a in [30, 31] {
            old.set_backup(Ipv4Addr::new(10, 0, 0, a), true);
        }

        // Pool A grows, pool B goes, a reservation appears on a bound address.
        let res = "[[subnet4.reservation]]\nhw-address = \"02:00:00:00:00:63\"\naddress = \"10.0.0.10\"\n";
        let new_cfg = cfg(&["10.0.0.10-10.0.0.59"], res);
        let (new_engine, new) = map(&new_cfg);
        let ticket = ReloadTicket(Arc::new(Plan {
            engine: Arc::new(new_engine),
            engine6: None,
            free: Arc::clone(&new),
            space6: Arc::clone(&space),
            gate: Gate::new(2),
        }));
        let old_engine = Arc::new(old_engine);
        let replies: Vec<CtlReply> = std::thread::scope(|sc| {
            let handles: Vec<_> = stores
                .iter_mut()
                .enumerate()
                .map(|(w, st)| {
                    let (ticket, old, old_engine) = (&ticket, &old, &old_engine);
                    sc.spawn(move || {
                        let mut free = Arc::clone(old);
                        let mut engine = Arc::clone(old_engine);
                        let mut engine6 = None;
                        let r = serve_worker(
                            ticket,
                            &mut WorkerSide {
                                id: w,
                                store: st,
                                free: &mut free,
                                engine: &mut engine,
                                engine6: &mut engine6,
                                mclt: Some(3600),
                            },
                            NOW,
                        );
                        assert!(Arc::ptr_eq(&free, &ticket.0.free), "worker {w} swapped");
                        assert!(Arc::ptr_eq(&engine, &ticket.0.engine));
                        r
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut report = ReloadReport::default();
        for r in &replies {
            let CtlReply::Reloaded(w) = r else {
                panic!("{r:?}")
            };
            report.add(w);
        }
        assert_eq!(report.orphaned_v4, 1, "{report:?}");
        assert_eq!(report.reserved_in_use, 1, "{report:?}");
        assert_eq!(report.offers_dropped, 0);
        let a = |x: u8| Ipv4Addr::new(10, 0, 0, x);
        for held in [10, 11, 12, 20] {
            assert!(!new.is_free(a(held)), ".{held} held in the new map");
        }
        for free in [13, 14, 15, 50, 59] {
            assert!(new.is_free(a(free)), ".{free} free in the new map");
        }
        assert!(new.is_backup(a(30)) && new.is_backup(a(31)));
        assert!(!new.is_backup(a(32)) && !new.is_backup(a(50)));
        // The long-released record no longer claims its address (the sweep must not free it).
        let st13 = &stores[leases[3].client.shard(2)];
        assert_eq!(
            st13.shard.get_by_addr(a(13)).map(|l| l.state),
            Some(BindingState::Free)
        );
        // The lease of the removed pool is kept.
        let b = Ipv4Addr::new(10, 0, 1, 10);
        assert!(
            stores[leases[5].client.shard(2)]
                .shard
                .get_by_addr(b)
                .is_some()
        );
        // Free count of the grown pool: 50 addresses, 4 held, 1 reserved (and held).
        assert_eq!(new.free_count(1), 50 - 4);
    }

    #[test]
    fn dhcpv6_space_is_swapped_and_orphans_counted() {
        use crate::lease::{IaKind, Lease6};
        use crate::pool::v6::{Pool6, Pool6Kind};
        use std::net::Ipv6Addr;
        let na = |id: u32, a: &str, b: &str| Pool6 {
            id,
            subnet_id: 1,
            kind: Pool6Kind::Na {
                start: a.parse().unwrap(),
                end: b.parse().unwrap(),
            },
        };
        let dir = tempfile::tempdir().unwrap();
        let (engine, free) = map(&cfg(&["10.0.0.10-10.0.0.49"], ""));
        let old6 =
            Arc::new(Space6::new(&[na(1, "2001:db8::100", "2001:db8::1ff")], 1, &[]).unwrap());
        let (mut stores, _) =
            crate::store::open(dir.path(), 1, OPTS, &free, &|_| false, &old6).unwrap();
        let key = ClientKey::from_duid(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 9]).unwrap();
        let addr: Ipv6Addr = "2001:db8::105".parse().unwrap();
        stores[0].shard6.upsert(Lease6 {
            kind: IaKind::Na,
            addr,
            prefix_len: 128,
            state: BindingState::Active,
            client: key,
            iaid: 1,
            subnet_id: 1,
            preferred_until: NOW + 100,
            expires: NOW + 200,
            cltt: NOW,
            partner_expires: 0,
            update_pending: false,
        });
        // The pool is replaced by another range.
        let new6 =
            Arc::new(Space6::new(&[na(1, "2001:db8::1000", "2001:db8::10ff")], 1, &[]).unwrap());
        let ticket = ReloadTicket(Arc::new(Plan {
            engine: Arc::new(engine),
            engine6: None,
            free: Arc::clone(&free),
            space6: Arc::clone(&new6),
            gate: Gate::new(1),
        }));
        let mut own_free = Arc::clone(&free);
        let mut own_engine = Arc::clone(&ticket.0.engine);
        let mut own_engine6 = None;
        let reply = serve_worker(
            &ticket,
            &mut WorkerSide {
                id: 0,
                store: &mut stores[0],
                free: &mut own_free,
                engine: &mut own_engine,
                engine6: &mut own_engine6,
                mclt: None,
            },
            NOW,
        );
        let CtlReply::Reloaded(w) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!((w.orphaned_v6, w.v6_moved), (1, 0));
        assert!(Arc::ptr_eq(stores[0].shard6.space(), &new6));
        // The record is kept; allocation now draws from the new range.
        assert!(stores[0].shard6.get(IaKind::Na, addr).is_some());
        let got = stores[0].shard6.allocate(1, &key, 2, None).unwrap();
        assert!(
            got.0 >= "2001:db8::1000".parse::<Ipv6Addr>().unwrap(),
            "{got:?}"
        );
    }

    #[test]
    fn an_abandoned_reload_changes_nothing() {
        let gate = Arc::new(Gate::new(2));
        let g = Arc::clone(&gate);
        let t = std::thread::spawn(move || g.arrive());
        while gate.state.lock().unwrap().arrived == 0 {
            std::thread::yield_now();
        }
        gate.abort();
        assert!(!t.join().unwrap(), "the waiting worker gives up");
        assert!(!gate.arrive(), "a late worker does not wait");
        // Once everyone arrived, an abort comes too late: the reload completes.
        let gate = Arc::new(Gate::new(2));
        let g = Arc::clone(&gate);
        let t = std::thread::spawn(move || g.arrive());
        assert!(gate.arrive());
        gate.abort();
        assert!(t.join().unwrap());
    }

    #[test]
    fn restart_only_settings_are_named() {
        let old = cfg(&["10.0.0.10-10.0.0.49"], "");
        let mut new = cfg(&["10.0.0.10-10.0.0.59"], "");
        assert!(restart_only_changes(&old, &new, "f").is_empty());
        new.server.offer_hold_secs = 7;
        new.server.log = Some("debug".into());
        assert!(restart_only_changes(&old, &new, "f").is_empty());
        new.server.listen = vec!["127.0.0.1:6767".parse().unwrap()];
        new.server.durability = crate::config::Durability::None;
        new.control = Some(crate::config::Control::default());
        let e = restart_only_changes(&old, &new, "f");
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["server.durability", "server.listen", "control"]);
        assert!(e[0].to_string().starts_with("f: server.durability: "));
        assert!(e[0].reason.contains("restart"));
    }
}
