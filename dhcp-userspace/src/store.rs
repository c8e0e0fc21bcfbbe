//! The lease store: every worker's [`Shard`] with its [`Wal`], opened and recovered together.
//!
//! Recovery replays each shard's snapshot and log into its shard, then rebuilds the shared
//! [`FreeMap`] from the records that hold an address (ACTIVE, ABANDONED). Two shards can both
//! hold a record for one address only when a release in one shard and the re-allocation in
//! another were in flight at a crash; the newer binding (later expiry, then later CLTT) wins
//! and the loser is written back as RELEASED, so an address is never bound twice.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::lease::{AnyLease, BindingState, KEY_LEN, Lease4, Lease6, decode_any};
use crate::pool::v6::{Shard6, Space6};
use crate::pool::{FreeMap, Shard};
use crate::wal::{Durability, RecoveryReport, Wal, WalError, WalOptions};

pub mod check;

/// Errors opening or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write-ahead log of a shard failed.
    #[error("shard {shard}: {source}")]
    Wal {
        /// Shard index.
        shard: usize,
        /// Why.
        #[source]
        source: WalError,
    },
    /// A record in the log does not decode: the store is ambiguous, refuse to start.
    #[error("shard {shard}: undecodable lease record #{index}: {source}")]
    Record {
        /// Shard index.
        shard: usize,
        /// Record number in replay order.
        index: u64,
        /// Why.
        #[source]
        source: crate::lease::LeaseError,
    },
    /// A file-system step of changing the worker count failed.
    #[error("re-shard: {op} {path} failed")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory is in a state a re-shard cannot handle safely: an operator must look.
    #[error("data directory {dir}: {reason}")]
    Layout {
        /// The data directory.
        dir: String,
        /// What is wrong.
        reason: String,
    },
    /// Tests only: the re-shard stopped here as if the process had crashed.
    #[cfg(test)]
    #[error("simulated crash")]
    SimulatedCrash,
}

/// One worker's part of the store: its DHCPv4 and DHCPv6 records share one log.
pub struct ShardStore {
    /// The in-memory DHCPv4 records.
    pub shard: Shard,
    /// The in-memory DHCPv6 records.
    pub shard6: Shard6,
    /// Its log.
    pub wal: Wal,
    buf: Box<[u8; Lease6::MAX_ENCODED_LEN]>,
}

impl std::fmt::Debug for ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore")
            .field("v4_leases", &self.shard.len())
            .field("v6_leases", &self.shard6.len())
            .finish_non_exhaustive()
    }
}

impl ShardStore {
    /// Append one changed DHCPv4 record to the log (durable after the next [`Wal::commit`]).
    pub fn append(&mut self, lease: &Lease4) -> Result<(), WalError> {
        let n = lease.encode(&mut self.buf[..]);
        self.wal.append(&self.buf[..n])
    }

    /// Append one changed DHCPv6 record to the log (durable after the next [`Wal::commit`]).
    pub fn append6(&mut self, lease: &Lease6) -> Result<(), WalError> {
        let n = lease.encode(&mut self.buf[..]);
        self.wal.append(&self.buf[..n])
    }
}

/// What opening the store found.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// Each shard's WAL recovery report.
    pub shards: Vec<RecoveryReport>,
    /// Records loaded, all shards.
    pub records: u64,
    /// Addresses bound in two shards, resolved in favour of the newer binding.
    pub conflicts_resolved: u64,
    /// The worker count was changed at this open (or an interrupted change was finished).
    pub reshard: Option<ReshardReport>,
    /// Staging directories of an interrupted, uncommitted re-shard that were discarded (the
    /// old store was kept).
    pub reshards_rolled_back: usize,
    /// DHCPv6 bindings held by one shard (their client's) whose address or prefix lies in
    /// another shard's partition (after a worker-count change): the partition owner holds
    /// them as never-lapsing offers so it cannot allocate them.
    pub v6_foreign_holds: u64,
}

/// A change of the worker count of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReshardReport {
    /// Shards before.
    pub from: usize,
    /// Shards after.
    pub to: usize,
    /// Live records written into the new shards.
    pub records: u64,
    /// Of those, records now in a shard with another index than before.
    pub moved: u64,
    /// Where the old shard directories were moved (`<data_dir>/pre-reshard-<from>[-k]`).
    pub aside: PathBuf,
    /// Whether this open only finished a switch a crash had interrupted.
    pub resumed: bool,
}

/// Count the shard directories of the store under `data_dir`: the target count of a
/// committed but unfinished re-shard (the next open completes it), else the `shard-*`
/// directories.
#[must_use]
pub fn existing_shards(data_dir: &Path) -> usize {
    if let Ok(stagings) = staging_dirs(data_dir) {
        for st in stagings {
            if let Some(m) = read_marker(&st) {
                return m.to;
            }
        }
    }
    shard_dir_names(data_dir).map_or(0, |v| v.len())
}

// ---------------------------------------------------------------------------------------
// Changing the worker count (re-shard).
//
// Protocol (N old shards, M new ones; every step is followed by the fsyncs named):
//
//  S1  create <data_dir>/reshard-<M>.tmp/ (the staging directory)            fsync data_dir
//  S2  replay every old shard-<w> (w < N) with its normal WAL recovery; keep, per old shard,
//      the newest record of each key whose client the old shard owns, drop tombstones;
//      route each to shard `client.shard(M)`; two records of one key meeting in one new
//      shard: the one holding the address wins, then the newer (expires, cltt)
//  S3  write each new shard into reshard-<M>.tmp/shard-<w> with a fresh WAL, commit with
//      fsync (whatever the configured durability)              fsync each shard dir, staging
//  S4  write reshard-<M>.tmp/COMMIT.tmp ("from N / to M / aside NAME / records R"), fsync it,
//      rename it to COMMIT                                      fsync staging, data_dir
//      ==> COMMIT point: before it the old store is the store, after it the new one is.
//  S5  mkdir <data_dir>/NAME (pre-reshard-<N>, or pre-reshard-<N>-<k> if taken); rename
//      every <data_dir>/shard-* into it                         fsync NAME, data_dir
//  S6  rename each reshard-<M>.tmp/shard-<w> to <data_dir>/shard-<w>   fsync data_dir, staging
//  S7  remove COMMIT, then the (now empty) staging directory    fsync data_dir
//
// At every open, before anything else ([`finish_interrupted`]):
//  - a reshard-*.tmp without COMMIT is an unfinished S1–S4 (or a finished S7 missing only its
//    rmdir): it is deleted; the shard-* directories were never touched, the old store stands;
//  - a reshard-*.tmp with COMMIT is rolled forward: if it still holds all M shard dirs, S6
//    has not started and every <data_dir>/shard-* is old: S5 is (re)done; then S6 moves the
//    shard dirs still staged (S5 finished before S6 began), then S7. Every step is
//    idempotent, so a crash during the roll-forward is finished by the next open.
// `existing_shards` reports M as soon as COMMIT exists, so tools that size their open by it
// agree with the roll-forward.
// ---------------------------------------------------------------------------------------

const STAGING_PREFIX: &str = "reshard-";
const STAGING_SUFFIX: &str = ".tmp";
const COMMIT: &str = "COMMIT";
const MARKER_MAGIC: &str = "twinlease-reshard 1";

/// Counts the file-system steps of a re-shard so tests can stop it after any of them.
struct Steps {
    #[cfg(test)]
    left: usize,
}

impl Steps {
    fn unlimited() -> Self {
        Self {
            #[cfg(test)]
            left: usize::MAX,
        }
    }

    #[cfg_attr(not(test), expect(clippy::unnecessary_wraps, clippy::unused_self))]
    fn step(&mut self) -> Result<(), StoreError> {
        #[cfg(test)]
        {
            if self.left == 0 {
                return Err(StoreError::SimulatedCrash);
            }
            self.left -= 1;
        }
        Ok(())
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn layout_err(data_dir: &Path, reason: String) -> StoreError {
    StoreError::Layout {
        dir: data_dir.display().to_string(),
        reason,
    }
}

/// Names of the `shard-*` directories directly under `dir`, sorted.
fn shard_dir_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("shard-") && e.path().is_dir() {
            out.push(name);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The `reshard-*.tmp` directories under `data_dir`.
fn staging_dirs(data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(data_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(STAGING_PREFIX) && name.ends_with(STAGING_SUFFIX) && e.path().is_dir() {
            out.push(e.path());
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The content of a `COMMIT` marker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    from: usize,
    to: usize,
    aside: String,
    records: u64,
    moved: u64,
}

impl Marker {
    fn encode(&self) -> String {
        format!(
            "{MARKER_MAGIC}\nfrom {}\nto {}\naside {}\nrecords {}\nmoved {}\n",
            self.from, self.to, self.aside, self.records, self.moved
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != MARKER_MAGIC {
            return None;
        }
        let mut field = |name: &str| {
            lines
                .next()?
                .strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_owned)
        };
        let from = field("from")?.parse().ok()?;
        let to = field("to")?.parse().ok()?;
        let aside = field("aside")?;
        let records = field("records")?.parse().ok()?;
        let moved = field("moved")?.parse().ok()?;
        let ok = to > 0 && aside.starts_with("pre-reshard-") && !aside.contains('/');
        ok.then_some(Self {
            from,
            to,
            aside,
            records,
            moved,
        })
    }
}

/// The marker of a committed staging directory; `None` when there is no `COMMIT` (or it
/// cannot be read, which [`finish_interrupted`] turns into an error).
fn read_marker(staging: &Path) -> Option<Marker> {
    fs::read_to_string(staging.join(COMMIT))
        .ok()
        .and_then(|t| Marker::parse(&t))
}

/// Finish or roll back a re-shard a crash interrupted (see the protocol above).
fn finish_interrupted(
    data_dir: &Path,
    steps: &mut Steps,
) -> Result<(Option<ReshardReport>, usize), StoreError> {
    let mut committed = Vec::new();
    let mut rolled_back = 0;
    for st in staging_dirs(data_dir).map_err(io_err("list directory", data_dir))? {
        let marker = st.join(COMMIT);
        if marker.exists() {
            let m = read_marker(&st).ok_or_else(|| {
                layout_err(
                    data_dir,
                    format!(
                        "{} is unreadable: a worker-count change was committed but cannot be \
                         finished; inspect it",
                        marker.display()
                    ),
                )
            })?;
            committed.push((st, m));
        } else {
            steps.step()?;
            fs::remove_dir_all(&st).map_err(io_err("remove directory", &st))?;
            fsync_dir(data_dir)?;
            rolled_back += 1;
            tracing::warn!(
                staging = %st.display(),
                "discarded an interrupted worker-count change that had not committed; the old store is kept"
            );
        }
    }
    if committed.len() > 1 {
        return Err(layout_err(
            data_dir,
            format!(
                "{} committed re-shard staging directories; expected at most one",
                committed.len()
            ),
        ));
    }
    let Some((st, m)) = committed.pop() else {
        return Ok((None, rolled_back));
    };
    let rep = switch(data_dir, &st, &m, steps)?;
    tracing::warn!(
        from = m.from,
        to = m.to,
        records = m.records,
        aside = %rep.aside.display(),
        "finished a worker-count change interrupted by a crash"
    );
    Ok((
        Some(ReshardReport {
            resumed: true,
            ..rep
        }),
        rolled_back,
    ))
}

/// Steps S5–S7: move the old shards aside, the new ones in, remove the staging directory.
fn switch(
    data_dir: &Path,
    staging: &Path,
    m: &Marker,
    steps: &mut Steps,
) -> Result<ReshardReport, StoreError> {
    let aside = data_dir.join(&m.aside);
    let staged = shard_dir_names(staging).map_err(io_err("list directory", staging))?;
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..m.to).map(|w| format!("shard-{w}")).collect();
        v.sort_unstable();
        v
    };
    if staged == expected {
        // S5 (again, if interrupted): every shard-* in data_dir is old.
        steps.step()?;
        fs::create_dir_all(&aside).map_err(io_err("create directory", &aside))?;
        fsync_dir(data_dir)?;
        for name in shard_dir_names(data_dir).map_err(io_err("list directory", data_dir))? {
            let to = aside.join(&name);
            if to.exists() {
                return Err(layout_err(
                    data_dir,
                    format!("{} exists already; inspect it", to.display()),
                ));
            }
            steps.step()?;
            fs::rename(data_dir.join(&name), &to).map_err(io_err("rename", &to))?;
        }
        fsync_dir(&aside)?;
        fsync_dir(data_dir)?;
    } else if !staged.iter().all(|n| expected.contains(n)) {
        return Err(layout_err(
            data_dir,
            format!("{} holds unexpected shard directories", staging.display()),
        ));
    }
    // S6: data_dir holds only new shards now.
    for name in &staged {
        let to = data_dir.join(name);
        if to.exists() {
            return Err(layout_err(
                data_dir,
                format!(
                    "{} exists while {} is still staged; inspect them",
                    to.display(),
                    staging.join(name).display()
                ),
            ));
        }
        steps.step()?;
        fs::rename(staging.join(name), &to).map_err(io_err("rename", &to))?;
    }
    fsync_dir(data_dir)?;
    fsync_dir(staging)?;
    // S7.
    steps.step()?;
    let marker = staging.join(COMMIT);
    fs::remove_file(&marker).map_err(io_err("remove", &marker))?;
    fsync_dir(staging)?;
    steps.step()?;
    fs::remove_dir_all(staging).map_err(io_err("remove directory", staging))?;
    fsync_dir(data_dir)?;
    Ok(ReshardReport {
        from: m.from,
        to: m.to,
        records: m.records,
        moved: m.moved,
        aside,
        resumed: false,
    })
}

/// Of two records of one key routed to one new shard, the one to keep: a binding that holds
/// the address beats one that does not, then the newer binding (as [`open`] resolves
/// double bindings across shards).
fn prefer(a: &AnyLease, b: &AnyLease) -> AnyLease {
    let rank = |l: &AnyLease| match l {
        AnyLease::V4(l) => (l.state.holds_address(), l.expires, l.cltt),
        AnyLease::V6(l) => (l.state.holds_address(), l.expires, l.cltt),
    };
    if rank(b) > rank(a) { *b } else { *a }
}

/// Steps S1–S7: change the store under `data_dir` from `from` shards to `to`.
fn reshard(
    data_dir: &Path,
    from: usize,
    to: usize,
    opts: WalOptions,
    steps: &mut Steps,
) -> Result<ReshardReport, StoreError> {
    let staging = data_dir.join(format!("{STAGING_PREFIX}{to}{STAGING_SUFFIX}"));
    tracing::info!(from, to, staging = %staging.display(), "changing the worker count of the lease store");
    // S1.
    steps.step()?;
    fs::create_dir_all(&staging).map_err(io_err("create directory", &staging))?;
    fsync_dir(data_dir)?;

    // S2.
    let mut routed: Vec<HashMap<[u8; KEY_LEN], AnyLease>> = vec![HashMap::new(); to];
    let mut moved_keys = 0u64;
    for w in 0..from {
        let mut newest: HashMap<[u8; KEY_LEN], AnyLease> = HashMap::new();
        let mut index = 0u64;
        let mut bad = None;
        let (wal, _) = Wal::open(data_dir, w as u32, opts, |payload| {
            index += 1;
            if bad.is_some() {
                return;
            }
            let client = match decode_any(payload) {
                Ok(l @ AnyLease::V4(l4)) => (l, l4.client),
                Ok(l @ AnyLease::V6(l6)) => (l, l6.client),
                Err(e) => {
                    bad = Some((index, e));
                    return;
                }
            };
            // Only what `open` would have loaded into this shard.
            if client.1.shard(from) == w {
                let mut key = [0u8; KEY_LEN];
                key.copy_from_slice(&payload[..KEY_LEN]);
                newest.insert(key, client.0);
            }
        })
        .map_err(|source| StoreError::Wal { shard: w, source })?;
        drop(wal);
        if let Some((index, source)) = bad {
            return Err(StoreError::Record {
                shard: w,
                index,
                source,
            });
        }
        for (key, l) in newest {
            let (tomb, client) = match l {
                AnyLease::V4(l) => (l.is_tombstone(), l.client),
                AnyLease::V6(l) => (l.is_tombstone(), l.client),
            };
            if tomb {
                continue;
            }
            let nw = client.shard(to);
            if nw != w {
                moved_keys += 1;
            }
            let slot = routed[nw].entry(key).or_insert(l);
            *slot = prefer(slot, &l);
        }
    }

    // S3.
    let fsync_opts = WalOptions {
        durability: Durability::Fsync,
        ..opts
    };
    let mut records = 0u64;
    let mut buf = [0u8; Lease6::MAX_ENCODED_LEN];
    for (w, recs) in routed.iter().enumerate() {
        steps.step()?;
        let (mut wal, _) = Wal::open(&staging, w as u32, fsync_opts, |_| {})
            .map_err(|source| StoreError::Wal { shard: w, source })?;
        let mut keys: Vec<&[u8; KEY_LEN]> = recs.keys().collect();
        keys.sort_unstable();
        for k in keys {
            let n = match recs[k] {
                AnyLease::V4(l) => l.encode(&mut buf),
                AnyLease::V6(l) => l.encode(&mut buf),
            };
            wal.append(&buf[..n])
                .map_err(|source| StoreError::Wal { shard: w, source })?;
            records += 1;
        }
        wal.commit()
            .map_err(|source| StoreError::Wal { shard: w, source })?;
        let dir = wal.dir().to_path_buf();
        drop(wal);
        fsync_dir(&dir)?;
    }
    fsync_dir(&staging)?;

    // S4: the commit point.
    let mut aside = format!("pre-reshard-{from}");
    let mut k = 2;
    while data_dir.join(&aside).exists() {
        aside = format!("pre-reshard-{from}-{k}");
        k += 1;
    }
    let marker = Marker {
        from,
        to,
        aside,
        records,
        moved: moved_keys,
    };
    let tmp = staging.join(format!("{COMMIT}{STAGING_SUFFIX}"));
    steps.step()?;
    File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(marker.encode().as_bytes())?;
            f.sync_all()
        })
        .map_err(io_err("write", &tmp))?;
    steps.step()?;
    fs::rename(&tmp, staging.join(COMMIT)).map_err(io_err("rename", &tmp))?;
    fsync_dir(&staging)?;
    fsync_dir(data_dir)?;

    // S5–S7.
    let rep = switch(data_dir, &staging, &marker, steps)?;
    tracing::info!(
        from,
        to,
        records = rep.records,
        moved = rep.moved,
        aside = %rep.aside.display(),
        "changed the worker count of the lease store"
    );
    Ok(rep)
}

/// Open (or create) the store of `workers` shards under `data_dir`, replay it and claim every
/// held address in `free`. `reserved` addresses are never claimed in the free map (they are
/// not in it).
///
/// A re-shard a crash interrupted is first finished or rolled back; then, when the directory
/// holds another number of shards than `workers`, the store is rewritten into `workers`
/// shards (see the protocol above `finish_interrupted`; the old shard directories are kept
/// under `pre-reshard-<old>`).
///
/// DHCPv6 records go to the [`Shard6`] of their client's worker. Their addresses and
/// prefixes come from that worker's own partition of `space6`, except after a worker-count
/// change: then the partition's owner shard is made to hold the member as an offer that never
/// lapses, so it cannot allocate it again ([`OpenReport::v6_foreign_holds`]).
pub fn open(
    data_dir: &Path,
    workers: usize,
    opts: WalOptions,
    free: &FreeMap,
    reserved: &dyn Fn(Ipv4Addr) -> bool,
    space6: &Arc<Space6>,
) -> Result<(Vec<ShardStore>, OpenReport), StoreError> {
    open_steps(
        data_dir,
        workers,
        opts,
        free,
        reserved,
        space6,
        &mut Steps::unlimited(),
    )
}

fn open_steps(
    data_dir: &Path,
    workers: usize,
    opts: WalOptions,
    free: &FreeMap,
    reserved: &dyn Fn(Ipv4Addr) -> bool,
    space6: &Arc<Space6>,
    steps: &mut Steps,
) -> Result<(Vec<ShardStore>, OpenReport), StoreError> {
    let mut report = OpenReport::default();
    if workers == 0 {
        return Err(layout_err(data_dir, "zero workers configured".to_owned()));
    }
    (report.reshard, report.reshards_rolled_back) = finish_interrupted(data_dir, steps)?;
    let names = shard_dir_names(data_dir).map_err(io_err("list directory", data_dir))?;
    let found = names.len();
    let mut expected: Vec<String> = (0..found).map(|w| format!("shard-{w}")).collect();
    expected.sort_unstable();
    if names != expected {
        return Err(layout_err(
            data_dir,
            format!("shard directories {names:?} are not numbered 0..{found}; inspect them"),
        ));
    }
    if found != 0 && found != workers {
        report.reshard = Some(reshard(data_dir, found, workers, opts, steps)?);
    }
    let mut stores = Vec::with_capacity(workers);
    for w in 0..workers {
        let mut shard = Shard::new(w, workers);
        let mut shard6 = Shard6::new(w, workers, Arc::clone(space6));
        let mut index = 0u64;
        let mut bad = None;
        let (wal, rep) = Wal::open(data_dir, w as u32, opts, |payload| {
            index += 1;
            if bad.is_some() {
                return;
            }
            match decode_any(payload) {
                Ok(AnyLease::V4(l)) if l.client.shard(workers) == w => shard.upsert(l),
                Ok(AnyLease::V6(l)) if l.client.shard(workers) == w => shard6.upsert(l),
                // Cannot happen with a stable shard count; ignored defensively.
                Ok(_) => {}
                Err(e) => bad = Some((index, e)),
            }
        })
        .map_err(|source| StoreError::Wal { shard: w, source })?;
        if let Some((index, source)) = bad {
            return Err(StoreError::Record {
                shard: w,
                index,
                source,
            });
        }
        report.records += index;
        report.shards.push(rep);
        stores.push(ShardStore {
            shard,
            shard6,
            wal,
            buf: Box::new([0u8; Lease6::MAX_ENCODED_LEN]),
        });
    }

    // Claim every held address; collect the rare double claims.
    let mut conflicts: Vec<(usize, Lease4)> = Vec::new();
    for (w, s) in stores.iter().enumerate() {
        for l in s.shard.iter() {
            if l.state.holds_address()
                && !reserved(l.addr)
                && free.pool_of(l.addr).is_some()
                && !free.try_take(l.addr)
            {
                conflicts.push((w, l));
            }
        }
    }
    for (w, l) in conflicts {
        let holder = stores
            .iter()
            .enumerate()
            .filter(|&(v, _)| v != w)
            .find_map(|(v, s)| {
                s.shard
                    .get_by_addr(l.addr)
                    .filter(|o| o.state.holds_address())
                    .map(|o| (v, o))
            });
        let Some((v, other)) = holder else { continue };
        let (loser_shard, mut loser) = if (l.expires, l.cltt) > (other.expires, other.cltt) {
            (v, other)
        } else {
            (w, l)
        };
        loser.state = BindingState::Released;
        let st = &mut stores[loser_shard];
        st.shard.upsert(loser);
        st.append(&loser).map_err(|source| StoreError::Wal {
            shard: loser_shard,
            source,
        })?;
        st.wal.commit().map_err(|source| StoreError::Wal {
            shard: loser_shard,
            source,
        })?;
        report.conflicts_resolved += 1;
    }

    // DHCPv6 bindings outside their shard's partition (after a worker-count change): the
    // partition's owner must not allocate them.
    let mut foreign: Vec<(usize, Lease6)> = Vec::new();
    for (w, s) in stores.iter().enumerate() {
        for l in s.shard6.iter() {
            if l.state.holds_address()
                && let Some(o) = space6.owner(l.kind, l.addr, l.prefix_len)
                && o != w
            {
                foreign.push((o, l));
            }
        }
    }
    for (o, l) in foreign {
        stores[o].shard6.hold_offer(l, u32::MAX);
        report.v6_foreign_holds += 1;
    }
    Ok((stores, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::ClientKey;
    use crate::pool::PoolRange;
    use crate::wal::Durability;

    fn lease(addr: Ipv4Addr, mac: u8, state: BindingState, expires: u32) -> Lease4 {
        Lease4 {
            addr,
            state,
            client: ClientKey::from_hw(1, &[2, 0, 0, 0, 0, mac]).unwrap(),
            chaddr: [2, 0, 0, 0, 0, mac],
            subnet_id: 1,
            expires,
            cltt: expires - 100,
            partner_expires: 0,
            update_pending: false,
        }
    }

    fn pools() -> Vec<PoolRange> {
        vec![PoolRange {
            id: 1,
            subnet_id: 1,
            start: Ipv4Addr::new(10, 0, 0, 10),
            end: Ipv4Addr::new(10, 0, 0, 200),
        }]
    }

    fn space6(shards: usize) -> Arc<Space6> {
        Arc::new(Space6::new(&[], shards, &[]).unwrap())
    }

    const OPTS: WalOptions = WalOptions {
        segment_size: 1 << 16,
        durability: Durability::Fsync,
    };

    #[test]
    fn reopen_restores_records_and_claims() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ipv4Addr::new(10, 0, 0, 10);
        {
            let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
            let (mut st, _) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
            let l = lease(a, 1, BindingState::Active, 5000);
            let w = l.client.shard(2);
            assert!(free.try_take(a));
            st[w].shard.upsert(l);
            st[w].append(&l).unwrap();
            st[w].wal.commit().unwrap();
        }
        let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
        let (st, rep) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
        assert_eq!(rep.records, 1);
        assert!(!free.is_free(a), "held address must be claimed again");
        let total: usize = st.iter().map(|s| s.shard.len()).sum();
        assert_eq!(total, 1);
    }

    #[test]
    fn double_binding_resolved_for_newer() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ipv4Addr::new(10, 0, 0, 11);
        // Find two clients in different shards.
        let c1 = lease(a, 1, BindingState::Active, 5000);
        let c2 = (2..=255u8)
            .map(|m| lease(a, m, BindingState::Active, 9000))
            .find(|l| l.client.shard(2) != c1.client.shard(2))
            .unwrap();
        {
            let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
            let (mut st, _) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
            for l in [c1, c2] {
                let w = l.client.shard(2);
                st[w].shard.upsert(l);
                st[w].append(&l).unwrap();
                st[w].wal.commit().unwrap();
            }
        }
        for _ in 0..2 {
            let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
            let (st, _) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
            let holders: Vec<Lease4> = st
                .iter()
                .filter_map(|s| s.shard.get_by_addr(a))
                .filter(|l| l.state.holds_address())
                .collect();
            assert_eq!(holders.len(), 1, "exactly one binding survives");
            assert_eq!(holders[0].client, c2.client, "the newer binding wins");
        }
    }

    #[test]
    fn v6_records_replay_into_their_shard() {
        use crate::lease::IaKind;
        let dir = tempfile::tempdir().unwrap();
        let duid = ClientKey::from_duid(&[0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
        let l = Lease6 {
            kind: IaKind::Pd,
            addr: "2001:db8:8000:100::".parse().unwrap(),
            prefix_len: 56,
            state: BindingState::Active,
            client: duid,
            iaid: 7,
            subnet_id: 1,
            preferred_until: 3000,
            expires: 4000,
            cltt: 100,
            partner_expires: 0,
            update_pending: false,
        };
        let w = duid.shard(2);
        {
            let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
            let (mut st, _) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
            st[w].shard6.upsert(l);
            st[w].append6(&l).unwrap();
            st[w].wal.commit().unwrap();
        }
        let free = FreeMap::new(&pools(), 2, &|_| false).unwrap();
        let (st, rep) = open(dir.path(), 2, OPTS, &free, &|_| false, &space6(2)).unwrap();
        assert_eq!(rep.records, 1);
        assert_eq!(st[w].shard6.iter().collect::<Vec<_>>(), vec![l]);
        assert_eq!(st[w].shard6.get(IaKind::Pd, l.addr), Some(l));
    }

    mod reshard {
        use super::*;
        use crate::lease::IaKind;
        use crate::pool::v6::{Pool6, Pool6Kind};
        use std::collections::HashSet;
        use std::net::Ipv6Addr;

        const POOL6: u32 = 7;

        fn space6p(n: usize) -> Arc<Space6> {
            let p = Pool6 {
                id: POOL6,
                subnet_id: 1,
                kind: Pool6Kind::Na {
                    start: "2001:db8::100".parse().unwrap(),
                    end: "2001:db8::1ff".parse().unwrap(),
                },
            };
            Arc::new(Space6::new(&[p], n, &[]).unwrap())
        }

        fn duid(i: u8) -> ClientKey {
            ClientKey::from_duid(&[0, 4, i, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap()
        }

        struct Fixture {
            v4: Vec<Lease4>,
            v6: Vec<Lease6>,
            double: Ipv4Addr,
            older: ClientKey,
            newer: ClientKey,
        }

        fn open_n(dir: &Path, n: usize) -> (Vec<ShardStore>, OpenReport) {
            let free = FreeMap::new(&pools(), n, &|_| false).unwrap();
            open(dir, n, OPTS, &free, &|_| false, &space6p(n)).unwrap()
        }

        /// A store of `n` shards: v4 leases in several states (one tombstoned), a v4 address
        /// bound in two shards (as after a crash), v6 leases allocated by their client's shard.
        fn build(dir: &Path, n: usize) -> Fixture {
            let (mut st, _) = open_n(dir, n);
            let put4 = |st: &mut Vec<ShardStore>, l: Lease4| {
                let w = l.client.shard(n);
                st[w].shard.upsert(l);
                st[w].append(&l).unwrap();
                st[w].wal.commit().unwrap();
            };
            let mut v4 = Vec::new();
            for i in 1..=24u8 {
                let state = if i % 5 == 0 {
                    BindingState::Released
                } else {
                    BindingState::Active
                };
                let l = lease(
                    Ipv4Addr::new(10, 0, 0, 20 + i),
                    i,
                    state,
                    5000 + u32::from(i),
                );
                put4(&mut st, l);
                v4.push(l);
            }
            // Bound, then freed: a tombstone that must not come back.
            let gone = lease(Ipv4Addr::new(10, 0, 0, 60), 60, BindingState::Active, 5000);
            put4(&mut st, gone);
            put4(
                &mut st,
                Lease4 {
                    state: BindingState::Free,
                    ..gone
                },
            );
            let double = Ipv4Addr::new(10, 0, 0, 100);
            let c1 = lease(double, 100, BindingState::Active, 5000);
            let c2 = (101..=255u8)
                .map(|m| lease(double, m, BindingState::Active, 9000))
                .find(|l| l.client.shard(n) != c1.client.shard(n))
                .unwrap();
            put4(&mut st, c1);
            put4(&mut st, c2);
            let mut v6 = Vec::new();
            for i in 0..24u8 {
                let client = duid(i);
                let w = client.shard(n);
                let (addr, len) = st[w].shard6.allocate(POOL6, &client, 1, None).unwrap();
                let l = Lease6 {
                    kind: IaKind::Na,
                    addr,
                    prefix_len: len,
                    state: BindingState::Active,
                    client,
                    iaid: 1,
                    subnet_id: 1,
                    preferred_until: 5000,
                    expires: 6000 + u32::from(i),
                    cltt: 100,
                    partner_expires: 0,
                    update_pending: false,
                };
                st[w].shard6.upsert(l);
                st[w].append6(&l).unwrap();
                st[w].wal.commit().unwrap();
                v6.push(l);
            }
            Fixture {
                v4,
                v6,
                double,
                older: c1.client,
                newer: c2.client,
            }
        }

        fn copy_dir(from: &Path, to: &Path) {
            fs::create_dir_all(to).unwrap();
            for e in fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                let t = to.join(e.file_name());
                if e.path().is_dir() {
                    copy_dir(&e.path(), &t);
                } else {
                    fs::copy(e.path(), &t).unwrap();
                }
            }
        }

        /// Reopen with `m` workers and check the store is complete and consistent.
        fn check(dir: &Path, m: usize, fx: &Fixture) -> OpenReport {
            let (mut st, rep) = open_n(dir, m);
            assert_eq!(existing_shards(dir), m);
            assert!(staging_dirs(dir).unwrap().is_empty(), "staging left behind");
            // Every record sits in its client's shard.
            for (w, s) in st.iter().enumerate() {
                for l in s.shard.iter() {
                    assert_eq!(l.client.shard(m), w, "{l:?}");
                }
                for l in s.shard6.iter() {
                    assert_eq!(l.client.shard(m), w, "{l:?}");
                }
            }
            for l in &fx.v4 {
                assert_eq!(st[l.client.shard(m)].shard.get_by_addr(l.addr), Some(*l));
            }
            for l in &fx.v6 {
                assert_eq!(st[l.client.shard(m)].shard6.get(l.kind, l.addr), Some(*l));
            }
            // The tombstone may remain as a FREE record only where no re-shard ran.
            let mut n4 = 0;
            for l in st.iter().flat_map(|s| s.shard.iter()) {
                if l.addr == Ipv4Addr::new(10, 0, 0, 60) {
                    assert_eq!(l.state, BindingState::Free);
                } else {
                    n4 += 1;
                }
            }
            // Both records of the double binding, or only the newer one when a re-shard
            // routed both into one shard (checked below).
            assert!(
                n4 == fx.v4.len() + 2 || n4 == fx.v4.len() + 1,
                "{n4} v4 records"
            );
            let n6: usize = st.iter().map(|s| s.shard6.len()).sum();
            assert_eq!(n6, fx.v6.len());
            // No v4 address bound twice; the newer of the double binding won.
            let mut bound = HashSet::new();
            for l in st.iter().flat_map(|s| s.shard.iter()) {
                if l.state.holds_address() {
                    assert!(bound.insert(l.addr), "{} bound twice", l.addr);
                    if l.addr == fx.double {
                        assert_eq!(l.client, fx.newer);
                    }
                } else if l.addr == fx.double {
                    assert_eq!(l.client, fx.older);
                }
            }
            assert!(bound.contains(&fx.double));
            // No v6 address can be handed out again, by any shard, even when it lies in
            // another shard's partition than its client's.
            let held: HashSet<Ipv6Addr> = fx.v6.iter().map(|l| l.addr).collect();
            let sp = space6p(m);
            let foreign = fx
                .v6
                .iter()
                .filter(|l| sp.owner(l.kind, l.addr, l.prefix_len) != Some(l.client.shard(m)))
                .count();
            assert_eq!(rep.v6_foreign_holds, foreign as u64);
            let probe = duid(200);
            let mut handed = 0;
            for s in &mut st {
                for &a in &held {
                    assert_ne!(
                        s.shard6.allocate(POOL6, &probe, 9, Some((a, 128))),
                        Some((a, 128)),
                        "hint {a} handed out again"
                    );
                }
                while let Some((a, len)) = s.shard6.allocate(POOL6, &probe, 9, None) {
                    assert!(!held.contains(&a), "{a} handed out again");
                    handed += 1;
                    let mut l = fx.v6[0];
                    l.addr = a;
                    l.prefix_len = len;
                    l.client = probe;
                    s.shard6.hold_offer(l, u32::MAX);
                }
            }
            assert_eq!(
                handed,
                256 - held.len(),
                "every other member is allocatable"
            );
            rep
        }

        fn aside_shards(dir: &Path, n: usize) -> usize {
            shard_dir_names(&dir.join(format!("pre-reshard-{n}")))
                .unwrap()
                .len()
        }

        #[test]
        fn change_worker_count() {
            for (n, m) in [(2, 3), (3, 2)] {
                let dir = tempfile::tempdir().unwrap();
                let fx = build(dir.path(), n);
                let rep = check(dir.path(), m, &fx);
                let r = rep.reshard.expect("resharded");
                assert_eq!((r.from, r.to, r.resumed), (n, m, false));
                let same = usize::from(fx.older.shard(m) == fx.newer.shard(m));
                assert_eq!(r.records, (fx.v4.len() + fx.v6.len() + 2 - same) as u64);
                assert!(r.moved > 0);
                assert_eq!(aside_shards(dir.path(), n), n, "old shards kept aside");
                if n == 2 {
                    assert!(rep.v6_foreign_holds > 0, "the fixture must exercise it");
                }
                // Stable afterwards, and back again.
                assert!(check(dir.path(), m, &fx).reshard.is_none());
                let back = check(dir.path(), n, &fx).reshard.expect("resharded back");
                assert_eq!((back.from, back.to), (m, n));
                assert_eq!(aside_shards(dir.path(), m), m);
            }
        }

        fn crash_at(dir: &Path, workers: usize, k: usize) -> bool {
            let free = FreeMap::new(&pools(), workers, &|_| false).unwrap();
            match open_steps(
                dir,
                workers,
                OPTS,
                &free,
                &|_| false,
                &space6p(workers),
                &mut Steps { left: k },
            ) {
                Ok(_) => false,
                Err(StoreError::SimulatedCrash) => true,
                Err(e) => panic!("crash at step {k}: {e}"),
            }
        }

        #[test]
        fn crash_at_every_step_leaves_a_complete_store() {
            for (n, m) in [(2, 3), (3, 2)] {
                let tmpl = tempfile::tempdir().unwrap();
                let fx = build(tmpl.path(), n);
                let mut k = 0;
                loop {
                    let run = tempfile::tempdir().unwrap();
                    let d = run.path().join("data");
                    copy_dir(tmpl.path(), &d);
                    if !crash_at(&d, m, k) {
                        check(&d, m, &fx);
                        break;
                    }
                    // Restart with the new count: finished (or redone) to M shards.
                    check(&d, m, &fx);
                    assert_eq!(aside_shards(&d, n), n, "crash at step {k}");
                    // Or with the old count: a complete store either way.
                    let run2 = tempfile::tempdir().unwrap();
                    let d2 = run2.path().join("data");
                    copy_dir(tmpl.path(), &d2);
                    assert!(crash_at(&d2, m, k));
                    check(&d2, n, &fx);
                    // A crash while finishing the interrupted switch, at every step too.
                    let mut k2 = 0;
                    loop {
                        let run3 = tempfile::tempdir().unwrap();
                        let d3 = run3.path().join("data");
                        copy_dir(tmpl.path(), &d3);
                        assert!(crash_at(&d3, m, k));
                        let again = crash_at(&d3, m, k2);
                        check(&d3, m, &fx);
                        if !again {
                            break;
                        }
                        k2 += 1;
                    }
                    k += 1;
                }
                // S1, S3 per new shard, S4 twice, S5 mkdir + per old shard, S6 per new
                // shard, S7 twice.
                assert_eq!(k, 1 + m + 2 + 1 + n + m + 2, "{n} -> {m}");
            }
        }

        #[test]
        fn marker_roundtrip_and_rejects() {
            let m = Marker {
                from: 3,
                to: 2,
                aside: "pre-reshard-3-2".into(),
                records: 10,
                moved: 4,
            };
            assert_eq!(Marker::parse(&m.encode()), Some(m.clone()));
            assert_eq!(Marker::parse(&m.encode().replace("to 2", "to 0")), None);
            assert_eq!(
                Marker::parse(&m.encode().replace("pre-reshard-3-2", "../x")),
                None
            );
            assert_eq!(Marker::parse(&m.encode()[..20]), None);
        }
    }
}
