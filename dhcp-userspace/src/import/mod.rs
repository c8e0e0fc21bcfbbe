//! `twinlease import`: migrate a Kea or ISC dhcpd server to twinlease.
//!
//! The source configuration is read into a [`Plan`] (subnets, pools, options, reservations,
//! each remembering the file and line it came from), together with the source's leases.
//! The plan is written out as a twinlease TOML file and checked with [`config::parse`]; every
//! part the checker refuses is dropped and reported with its source line, until the file
//! passes. The leases are then appended to the shards of a new lease store (each to the shard
//! of its client key) and committed, so clients keep their addresses.
//!
//! Whatever cannot be converted (classes, hooks, DDNS, Kea HA, unknown options…) is listed
//! in the [`Report`] as `FILE:LINE: CONSTRUCT: REASON`. ISC dhcpd's `failover peer` becomes
//! the `[failover]` table (both speak draft-ietf-dhc-failover-12); Kea's HA hook speaks
//! another protocol and is reported.
//!
//! Leases: ACTIVE leases stay active with their expiry; active leases whose expiry has
//! passed are imported as EXPIRED (so the client still gets its old address back if it is
//! free); released and declined/abandoned leases keep those states; free and backup records
//! (no client binding) are skipped and only counted.

mod isc;
mod kea;
mod options;
mod toml_out;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::{self, Config, Ipv4Net, Ipv6Net, Pool4};
use crate::lease::{BindingState, ClientKey, IaKind, Lease4, Lease6};
use crate::pool::FreeMap;
use crate::pool::v6::Space6;
use crate::store;
use crate::wal::{Durability, WalOptions};

pub use options::OptValue;

/// Which server the configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// ISC Kea (`kea-dhcp4.conf`, `kea-dhcp6.conf`, memfile lease CSVs).
    Kea,
    /// ISC dhcpd (`dhcpd.conf`, `dhcpd.leases`).
    Isc,
}

/// Arguments of `twinlease import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The server the files come from.
    #[arg(long, value_enum)]
    pub from: Source,
    /// The `DHCPv4` configuration (`kea-dhcp4.conf` or `dhcpd.conf`).
    #[arg(long)]
    pub config: PathBuf,
    /// The Kea `DHCPv6` configuration (`kea-dhcp6.conf`).
    #[arg(long)]
    pub config6: Option<PathBuf>,
    /// The `DHCPv4` leases (`kea-leases4.csv` or `dhcpd.leases`).
    #[arg(long)]
    pub leases: Option<PathBuf>,
    /// The Kea `DHCPv6` leases (`kea-leases6.csv`).
    #[arg(long)]
    pub leases6: Option<PathBuf>,
    /// Where to write the twinlease configuration (TOML).
    #[arg(long)]
    pub out: PathBuf,
    /// The data directory of the new lease store (must hold no store yet).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Shards (workers) of the store; default: one per core. Written to the configuration.
    #[arg(long)]
    pub workers: Option<usize>,
}

/// Why an import failed as a whole (unreadable or unparsable input, or the output cannot be
/// written). Constructs that cannot be converted are not errors: see [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An input file is not in the expected format at all.
    #[error("{file}:{line}: {reason}")]
    Syntax {
        /// The file.
        file: String,
        /// Line of the problem (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The arguments do not fit together.
    #[error("{0}")]
    Usage(String),
    /// The configuration cannot be written.
    #[error("{file}: cannot write: {source}")]
    Write {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory already holds a lease store.
    #[error(
        "{dir}: already holds a lease store ({shards} shard(s)); import into an empty directory"
    )]
    StoreExists {
        /// The data directory.
        dir: String,
        /// Shards found.
        shards: usize,
    },
    /// The lease store cannot be opened or written.
    #[error("{dir}: lease store: {source}")]
    Store {
        /// The data directory.
        dir: String,
        /// Why.
        #[source]
        source: store::StoreError,
    },
    /// A lease record cannot be appended to or committed in its shard's log.
    #[error("{dir}: shard {shard}: {source}")]
    Wal {
        /// The data directory.
        dir: String,
        /// Shard index.
        shard: usize,
        /// Why.
        #[source]
        source: crate::wal::WalError,
    },
    /// The generated configuration still fails the checks after dropping what could be
    /// dropped (a bug of the importer: the messages say what).
    #[error("{file}: the generated configuration does not pass the checks:\n{errors}")]
    Generated {
        /// The output file.
        file: String,
        /// The checker's messages.
        errors: String,
    },
}

/// Where a construct was found: `FILE:LINE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    /// The file, as given on the command line.
    pub file: String,
    /// Line, 1-based.
    pub line: usize,
}

impl Loc {
    /// A location in `file` at `line`.
    #[must_use]
    pub fn new(file: &str, line: usize) -> Self {
        Self {
            file: file.to_owned(),
            line,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One construct that was not converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconverted {
    /// Where it is.
    pub loc: Loc,
    /// What it is (`client-classes`, `option foo`, `failover peer "x"`…).
    pub what: String,
    /// Why it was not converted.
    pub reason: String,
}

impl fmt::Display for Unconverted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.loc, self.what, self.reason)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One line per kind of thing converted (`3 subnet4`, `120 active leases`…).
    pub converted: Vec<String>,
    /// Every construct that was not converted, in the order found.
    pub not_converted: Vec<Unconverted>,
}

impl Report {
    /// Record a construct that was not converted.
    pub fn skip(&mut self, loc: &Loc, what: impl Into<String>, reason: impl Into<String>) {
        self.not_converted.push(Unconverted {
            loc: loc.clone(),
            what: what.into(),
            reason: reason.into(),
        });
    }

    /// Whether some not-converted entry at `file:line` mentions `what`.
    #[must_use]
    pub fn has_skipped(&self, file_suffix: &str, line: usize, what: &str) -> bool {
        self.not_converted.iter().any(|u| {
            u.loc.file.ends_with(file_suffix) && u.loc.line == line && u.what.contains(what)
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "converted:")?;
        for c in &self.converted {
            writeln!(f, "  {c}")?;
        }
        if self.not_converted.is_empty() {
            writeln!(f, "not converted: nothing")?;
        } else {
            writeln!(f, "not converted ({}):", self.not_converted.len())?;
            for u in &self.not_converted {
                writeln!(f, "  {u}")?;
            }
        }
        Ok(())
    }
}

/// A list element with its source location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub loc: Loc,
}

/// A custom option of a subnet, not yet encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOption {
    /// Option code.
    pub code: u16,
    /// The source's name for it (for the report).
    pub name: String,
    /// Its value.
    pub value: OptValue,
}

/// The `[failover]` table to write, from ISC dhcpd's `failover peer "NAME" { … }`
/// (draft-ietf-dhc-failover-12, the protocol both speak). `None` fields keep twinlease's
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFailover {
    /// Relationship name.
    pub name: String,
    /// `"primary"` or `"secondary"`.
    pub role: &'static str,
    /// This server's address (`address`).
    pub address: Ipv4Addr,
    /// This server's port (`port`).
    pub port: Option<u16>,
    /// The partner's address (`peer address`).
    pub peer_address: Ipv4Addr,
    /// The partner's port (`peer port`).
    pub peer_port: Option<u16>,
    /// `mclt`.
    pub mclt: Option<u32>,
    /// `max-response-delay`.
    pub max_response_delay: Option<u32>,
    /// `max-unacked-updates`.
    pub max_unacked_updates: Option<u32>,
    /// `split`, or an `hba` that is a split.
    pub load_balance_split: Option<u16>,
    /// `load balance max seconds`.
    pub load_balance_max_seconds: Option<u16>,
    /// `max-lease-misbalance`.
    pub max_lease_misbalance: Option<u8>,
    /// `auto-partner-down`.
    pub auto_partner_down: Option<u32>,
}

/// A `DHCPv4` reservation to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanReservation4 {
    /// Hardware address.
    pub hw: Option<[u8; 6]>,
    /// Client identifier bytes.
    pub client_id: Option<Vec<u8>>,
    /// The reserved address.
    pub address: Ipv4Addr,
    /// Host name (option 12).
    pub hostname: Option<String>,
}

/// A `DHCPv4` subnet to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSubnet4 {
    /// Where the subnet is declared.
    pub loc: Loc,
    /// Subnet id.
    pub id: u32,
    /// The prefix.
    pub subnet: Ipv4Net,
    /// Interface of directly attached clients.
    pub interface: Option<String>,
    /// Relay agent addresses.
    pub relay_addresses: Vec<Item<Ipv4Addr>>,
    /// Ranges.
    pub pools: Vec<Item<Pool4>>,
    /// Option 3.
    pub routers: Vec<Item<Ipv4Addr>>,
    /// Option 6.
    pub dns_servers: Vec<Item<Ipv4Addr>>,
    /// Option 15.
    pub domain_name: Option<Item<String>>,
    /// Option 28.
    pub broadcast_address: Option<Item<Ipv4Addr>>,
    /// Default lease time.
    pub lease_time: Option<u32>,
    /// T1.
    pub renew_time: Option<u32>,
    /// T2.
    pub rebind_time: Option<u32>,
    /// Smallest lease time granted.
    pub min_lease_time: Option<u32>,
    /// Largest lease time granted.
    pub max_lease_time: Option<u32>,
    /// Fixed addresses.
    pub reservations: Vec<Item<PlanReservation4>>,
    /// Further options.
    pub options: Vec<Item<PlanOption>>,
}

impl PlanSubnet4 {
    /// A subnet with nothing but its id and prefix.
    #[must_use]
    pub fn new(loc: Loc, id: u32, subnet: Ipv4Net) -> Self {
        Self {
            loc,
            id,
            subnet,
            interface: None,
            relay_addresses: Vec::new(),
            pools: Vec::new(),
            routers: Vec::new(),
            dns_servers: Vec::new(),
            domain_name: None,
            broadcast_address: None,
            lease_time: None,
            renew_time: None,
            rebind_time: None,
            min_lease_time: None,
            max_lease_time: None,
            reservations: Vec::new(),
            options: Vec::new(),
        }
    }
}

/// A `DHCPv6` address pool: a range or a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanPool6 {
    /// First and last address.
    Range(Ipv6Addr, Ipv6Addr),
    /// Every address of the prefix.
    Prefix(Ipv6Net),
}

/// A delegated-prefix pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanPdPool {
    /// The prefix delegated prefixes are cut from.
    pub prefix: Ipv6Net,
    /// Length of each delegated prefix.
    pub delegated_len: u8,
    /// RFC 6603 excluded prefix.
    pub excluded: Option<Ipv6Net>,
}

/// A `DHCPv6` reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanReservation6 {
    /// The client's DUID.
    pub duid: Vec<u8>,
    /// Reserved address.
    pub address: Option<Ipv6Addr>,
    /// Reserved prefix.
    pub prefix: Option<Ipv6Net>,
}

/// A `DHCPv6` subnet to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSubnet6 {
    /// Where the subnet is declared.
    pub loc: Loc,
    /// Subnet id.
    pub id: u32,
    /// The link prefix.
    pub prefix: Ipv6Net,
    /// Interface of directly attached clients.
    pub interface: Option<String>,
    /// Relay Interface-Id selecting this subnet (text).
    pub interface_id: Option<String>,
    /// Address pools.
    pub pools: Vec<Item<PlanPool6>>,
    /// Prefix pools.
    pub pd_pools: Vec<Item<PlanPdPool>>,
    /// Preferred lifetime.
    pub preferred_lifetime: Option<u32>,
    /// Valid lifetime.
    pub valid_lifetime: Option<u32>,
    /// T1.
    pub renew_time: Option<u32>,
    /// T2.
    pub rebind_time: Option<u32>,
    /// Rapid commit.
    pub rapid_commit: bool,
    /// Option 23.
    pub dns_servers: Vec<Item<Ipv6Addr>>,
    /// Option 24.
    pub domain_search: Vec<Item<String>>,
    /// Option 82.
    pub sol_max_rt: Option<u32>,
    /// Option 32.
    pub information_refresh_time: Option<u32>,
    /// Fixed assignments.
    pub reservations: Vec<Item<PlanReservation6>>,
    /// Further options.
    pub options: Vec<Item<PlanOption>>,
}

impl PlanSubnet6 {
    /// A subnet with nothing but its id and prefix.
    #[must_use]
    pub fn new(loc: Loc, id: u32, prefix: Ipv6Net) -> Self {
        Self {
            loc,
            id,
            prefix,
            interface: None,
            interface_id: None,
            pools: Vec::new(),
            pd_pools: Vec::new(),
            preferred_lifetime: None,
            valid_lifetime: None,
            renew_time: None,
            rebind_time: None,
            rapid_commit: false,
            dns_servers: Vec::new(),
            domain_search: Vec::new(),
            sol_max_rt: None,
            information_refresh_time: None,
            reservations: Vec::new(),
            options: Vec::new(),
        }
    }
}

/// Everything read from the source, before checking.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The `[failover]` table (ISC dhcpd's `failover peer`).
    pub failover: Option<Item<PlanFailover>>,
    /// `server.interfaces`.
    pub interfaces: Vec<Item<String>>,
    /// `server.decline-probation-secs`.
    pub decline_probation_secs: Option<u32>,
    /// `DHCPv4` subnets.
    pub subnet4: Vec<PlanSubnet4>,
    /// `DHCPv6` subnets.
    pub subnet6: Vec<PlanSubnet6>,
    /// `DHCPv4` leases, one per address (the source's last record for it).
    pub leases4: Vec<Item<Lease4>>,
    /// `DHCPv6` leases, one per address or prefix.
    pub leases6: Vec<Item<Lease6>>,
    /// Lease records read (all, before keeping the last per address).
    pub lease_records: usize,
    /// Free/backup records skipped (they bind no client).
    pub unbound_records: usize,
    /// Records replaced by a later record for the same address.
    pub superseded: usize,
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Run `twinlease import` with `args`: print the report, return the exit code (0 when the
/// configuration was written, even with constructs not converted; 1 on unreadable input).
#[must_use]
pub fn cli_main(args: &ImportArgs) -> ExitCode {
    match import(args) {
        Ok(report) => {
            print!("{report}");
            println!(
                "wrote {} and the lease store in {}",
                args.out.display(),
                args.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("twinlease import: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Import with the current time deciding which leases have expired.
pub fn import(args: &ImportArgs) -> Result<Report, ImportError> {
    import_at(args, unix_now())
}

fn read(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        file: path.display().to_string(),
        source,
    })
}

/// Import as if the time were `now` (Unix seconds): read the sources, write the
/// configuration to `args.out` and the leases to a new store in `args.data_dir`.
pub fn import_at(args: &ImportArgs, now: u64) -> Result<Report, ImportError> {
    let workers = match args.workers {
        Some(0) => return Err(ImportError::Usage("--workers must be at least 1".into())),
        Some(n) if n > config::Server::MAX_WORKERS => {
            return Err(ImportError::Usage(format!(
                "--workers {n} is more than the maximum {}",
                config::Server::MAX_WORKERS
            )));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
    };
    let now = u32::try_from(now).unwrap_or(u32::MAX);
    let mut report = Report::default();
    let mut plan = Plan::default();
    match args.from {
        Source::Kea => {
            let name = args.config.display().to_string();
            kea::read_config4(&read(&args.config)?, &name, &mut plan, &mut report)?;
            if let Some(p) = &args.config6 {
                let name = p.display().to_string();
                kea::read_config6(&read(p)?, &name, &mut plan, &mut report)?;
            }
            if let Some(p) = &args.leases {
                let name = p.display().to_string();
                kea::read_leases4(&read(p)?, &name, now, &mut plan, &mut report)?;
            }
            if let Some(p) = &args.leases6 {
                let name = p.display().to_string();
                kea::read_leases6(&read(p)?, &name, now, &mut plan, &mut report)?;
            }
        }
        Source::Isc => {
            if args.config6.is_some() || args.leases6.is_some() {
                return Err(ImportError::Usage(
                    "--config6 and --leases6 are for --from kea; ISC dhcpd -6 is not supported"
                        .into(),
                ));
            }
            let name = args.config.display().to_string();
            isc::read_config(&read(&args.config)?, &name, &mut plan, &mut report)?;
            if let Some(p) = &args.leases {
                let name = p.display().to_string();
                isc::read_leases(&read(p)?, &name, now, &mut plan, &mut report)?;
            }
        }
    }

    let data_dir = std::path::absolute(&args.data_dir).unwrap_or_else(|_| args.data_dir.clone());
    let out_name = args.out.display().to_string();
    let (text, cfg) = settle(&mut plan, &mut report, &data_dir, workers, &out_name)?;
    let shards = store::existing_shards(&data_dir);
    if shards != 0 {
        return Err(ImportError::StoreExists {
            dir: data_dir.display().to_string(),
            shards,
        });
    }
    let (l4, l6) = attach_subnets(&plan, &cfg, &mut report);
    count_config(&cfg, &mut report);
    std::fs::write(&args.out, text).map_err(|source| ImportError::Write {
        file: out_name.clone(),
        source,
    })?;
    write_store(&data_dir, &cfg, workers, &l4, &l6)?;
    count_leases(&plan, &l4, &l6, &mut report);
    // Each file's entries in line order, the files in the order they were read.
    let mut files: Vec<String> = Vec::new();
    for u in &report.not_converted {
        if !files.contains(&u.loc.file) {
            files.push(u.loc.file.clone());
        }
    }
    report
        .not_converted
        .sort_by_key(|u| (files.iter().position(|f| *f == u.loc.file), u.loc.line));
    Ok(report)
}

fn count_config(cfg: &Config, report: &mut Report) {
    let s4 = &cfg.subnet4;
    let s6 = &cfg.subnet6;
    report.converted.push(format!(
        "{} subnet4, {} pool(s), {} reservation(s), {} extra option(s)",
        s4.len(),
        s4.iter().map(|s| s.pool.len()).sum::<usize>(),
        s4.iter().map(|s| s.reservation.len()).sum::<usize>(),
        s4.iter().map(|s| s.option.len()).sum::<usize>(),
    ));
    if !s6.is_empty() {
        report.converted.push(format!(
            "{} subnet6, {} pool(s), {} pd-pool(s), {} reservation(s), {} extra option(s)",
            s6.len(),
            s6.iter().map(|s| s.pool.len()).sum::<usize>(),
            s6.iter().map(|s| s.pd_pool.len()).sum::<usize>(),
            s6.iter().map(|s| s.reservation.len()).sum::<usize>(),
            s6.iter().map(|s| s.option.len()).sum::<usize>(),
        ));
    }
    if !cfg.server.interfaces.is_empty() {
        report
            .converted
            .push(format!("interfaces: {}", cfg.server.interfaces.join(", ")));
    }
}

fn count_leases(plan: &Plan, l4: &[Lease4], l6: &[Lease6], report: &mut Report) {
    let mut by_state: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for s in l4.iter().map(|l| l.state).chain(l6.iter().map(|l| l.state)) {
        *by_state.entry(s.name()).or_default() += 1;
    }
    let states: Vec<String> = by_state.iter().map(|(k, v)| format!("{v} {k}")).collect();
    report.converted.push(format!(
        "{} lease record(s) read: {} DHCPv4 and {} DHCPv6 lease(s) imported ({}); \
         {} older record(s) superseded by later ones; {} free/backup record(s) skipped \
         (no client binding); expired leases are imported as expired",
        plan.lease_records,
        l4.len(),
        l6.len(),
        if states.is_empty() {
            "none".to_owned()
        } else {
            states.join(", ")
        },
        plan.superseded,
        plan.unbound_records,
    ));
}

/// Give each lease the id of the configured subnet holding it; report those outside every
/// converted subnet.
fn attach_subnets(plan: &Plan, cfg: &Config, report: &mut Report) -> (Vec<Lease4>, Vec<Lease6>) {
    let mut out4 = Vec::with_capacity(plan.leases4.len());
    for it in &plan.leases4 {
        let mut l = it.value;
        let by_id = cfg
            .subnet4_by_id(l.subnet_id)
            .filter(|s| s.subnet.contains(l.addr));
        match by_id.or_else(|| cfg.subnet4.iter().find(|s| s.subnet.contains(l.addr))) {
            Some(s) => {
                l.subnet_id = s.id;
                out4.push(l);
            }
            None => report.skip(
                &it.loc,
                format!("lease {}", l.addr),
                "the address is in no converted subnet4",
            ),
        }
    }
    let mut out6 = Vec::with_capacity(plan.leases6.len());
    for it in &plan.leases6 {
        let mut l = it.value;
        let net = Ipv6Net {
            addr: l.addr,
            prefix_len: l.prefix_len,
        };
        let fits = |s: &config::Subnet6| match l.kind {
            IaKind::Na => s.prefix.contains(l.addr),
            IaKind::Pd => {
                s.pd_pool.iter().any(|p| p.prefix.contains_net(&net))
                    || s.reservation.iter().any(|r| r.prefix == Some(net))
            }
        };
        let by_id = cfg.subnet6_by_id(l.subnet_id).filter(|s| fits(s));
        match by_id.or_else(|| cfg.subnet6.iter().find(|s| fits(s))) {
            Some(s) => {
                l.subnet_id = s.id;
                out6.push(l);
            }
            None => report.skip(
                &it.loc,
                format!("lease {net}"),
                "the address or prefix is in no converted subnet6",
            ),
        }
    }
    (out4, out6)
}

fn write_store(
    data_dir: &Path,
    cfg: &Config,
    workers: usize,
    l4: &[Lease4],
    l6: &[Lease6],
) -> Result<(), ImportError> {
    let dir = data_dir.display().to_string();
    std::fs::create_dir_all(data_dir).map_err(|source| ImportError::Write {
        file: dir.clone(),
        source,
    })?;
    let opts = WalOptions {
        segment_size: u64::from(cfg.server.wal_segment_mib) << 20,
        durability: Durability::Fsync,
    };
    let free = FreeMap::new(&[], workers, &|_| false)
        .map_err(|e| ImportError::Usage(format!("cannot build the store's free map: {e}")))?;
    let space6 = Space6::new(&[], workers, &[])
        .map_err(|e| ImportError::Usage(format!("cannot build the DHCPv6 space: {e}")))?;
    let (mut stores, _) = store::open(
        data_dir,
        workers,
        opts,
        &free,
        &|_| false,
        &Arc::new(space6),
    )
    .map_err(|source| ImportError::Store {
        dir: dir.clone(),
        source,
    })?;
    let wal_err = |shard: usize| {
        let dir = dir.clone();
        move |source| ImportError::Wal { dir, shard, source }
    };
    for l in l4 {
        let w = l.client.shard(workers);
        stores[w].append(l).map_err(wal_err(w))?;
    }
    for l in l6 {
        let w = l.client.shard(workers);
        stores[w].append6(l).map_err(wal_err(w))?;
    }
    for (w, s) in stores.iter_mut().enumerate() {
        s.wal.commit().map_err(wal_err(w))?;
    }
    Ok(())
}

/// What to drop from the plan because the checker refused it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Removal {
    /// The `[failover]` table.
    Failover,
    /// `server.interfaces[k]`.
    Interface(usize),
    /// A part of `subnet4[i]` (v6 false) or `subnet6[i]` (v6 true).
    Part { v6: bool, subnet: usize, part: Part },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Part {
    Whole,
    Attr(String),
    Elem(String, usize),
    Excluded(usize),
}

/// Split `subnet4[3].pool[1].range` into (`subnet4`, 3, `pool[1].range`).
fn split_index(path: &str) -> Option<(&str, usize, &str)> {
    let open = path.find('[')?;
    let close = open + path[open..].find(']')?;
    let idx = path[open + 1..close].parse().ok()?;
    let rest = path[close + 1..]
        .strip_prefix('.')
        .unwrap_or(&path[close + 1..]);
    Some((&path[..open], idx, rest))
}

fn removal_of(field: &str) -> Option<Removal> {
    if field == "failover" || field.starts_with("failover.") {
        return Some(Removal::Failover);
    }
    let (head, i, rest) = split_index(field)?;
    let v6 = match head {
        "server.interfaces" => return Some(Removal::Interface(i)),
        "subnet4" => false,
        "subnet6" => true,
        _ => return None,
    };
    let attr = rest.split(['.', '[']).next().unwrap_or("");
    let part = match attr {
        "pool" | "pd-pool" | "reservation" | "option" | "routers" | "dns-servers"
        | "relay-addresses" | "domain-search" => match split_index(rest) {
            Some((_, k, sub)) if attr == "pd-pool" && sub == "excluded-prefix" => Part::Excluded(k),
            Some((_, k, _)) => Part::Elem(attr.to_owned(), k),
            None => Part::Attr(attr.to_owned()),
        },
        "interface"
        | "interface-id"
        | "domain-name"
        | "broadcast-address"
        | "lease-time"
        | "min-lease-time"
        | "max-lease-time"
        | "renew-time"
        | "rebind-time"
        | "preferred-lifetime"
        | "valid-lifetime"
        | "sol-max-rt"
        | "information-refresh-time" => Part::Attr(attr.to_owned()),
        _ => Part::Whole,
    };
    Some(Removal::Part {
        v6,
        subnet: i,
        part,
    })
}

/// Write the plan as TOML and check it; drop what the checks refuse (reporting each) until it
/// passes.
fn settle(
    plan: &mut Plan,
    report: &mut Report,
    data_dir: &Path,
    workers: usize,
    out_name: &str,
) -> Result<(String, Config), ImportError> {
    loop {
        let text = toml_out::render(plan, data_dir, workers);
        let errs = match config::parse(&text, out_name) {
            Ok(cfg) => return Ok((text, cfg)),
            Err(errs) => errs,
        };
        let mut removals: HashMap<Removal, String> = HashMap::new();
        for e in &errs {
            let Some(r) = removal_of(&e.field) else {
                return Err(ImportError::Generated {
                    file: out_name.to_owned(),
                    errors: errs.to_string(),
                });
            };
            removals
                .entry(r)
                .or_insert_with(|| format!("refused by the twinlease checks: {}", e.reason));
        }
        let wholes: BTreeSet<(bool, usize)> = removals
            .keys()
            .filter_map(|r| match r {
                Removal::Part {
                    v6,
                    subnet,
                    part: Part::Whole,
                } => Some((*v6, *subnet)),
                _ => None,
            })
            .collect();
        let mut ordered: Vec<(Removal, String)> = removals.into_iter().collect();
        ordered.sort();
        for (r, reason) in ordered.into_iter().rev() {
            if let Removal::Part { v6, subnet, part } = &r
                && *part != Part::Whole
                && wholes.contains(&(*v6, *subnet))
            {
                continue;
            }
            apply_removal(plan, report, &r, &reason);
        }
    }
}

fn take<T>(list: &mut Vec<Item<T>>, k: usize) -> Option<Item<T>> {
    (k < list.len()).then(|| list.remove(k))
}

fn apply_removal(plan: &mut Plan, report: &mut Report, r: &Removal, reason: &str) {
    match r {
        Removal::Failover => {
            if let Some(it) = plan.failover.take() {
                report.converted.retain(|c| !c.contains("→ [failover]"));
                report.skip(
                    &it.loc,
                    format!("failover peer \"{}\"", it.value.name),
                    reason,
                );
            }
        }
        Removal::Interface(k) => {
            if let Some(it) = take(&mut plan.interfaces, *k) {
                report.skip(&it.loc, format!("interface {}", it.value), reason);
            }
        }
        Removal::Part {
            v6: false,
            subnet,
            part,
        } => {
            if *subnet >= plan.subnet4.len() {
                return;
            }
            let s = &mut plan.subnet4[*subnet];
            let loc = s.loc.clone();
            let name = format!("subnet4 {} (id {})", s.subnet, s.id);
            match part {
                Part::Whole | Part::Excluded(_) => {
                    plan.subnet4.remove(*subnet);
                    report.skip(&loc, name, reason);
                }
                Part::Elem(what, k) => {
                    let removed = match what.as_str() {
                        "pool" => {
                            take(&mut s.pools, *k).map(|i| (i.loc, format!("pool {}", i.value)))
                        }
                        "reservation" => take(&mut s.reservations, *k)
                            .map(|i| (i.loc, format!("reservation {}", i.value.address))),
                        "option" => take(&mut s.options, *k).map(|i| {
                            (i.loc, format!("option {} ({})", i.value.name, i.value.code))
                        }),
                        "routers" => {
                            take(&mut s.routers, *k).map(|i| (i.loc, format!("router {}", i.value)))
                        }
                        "dns-servers" => take(&mut s.dns_servers, *k)
                            .map(|i| (i.loc, format!("DNS server {}", i.value))),
                        "relay-addresses" => take(&mut s.relay_addresses, *k)
                            .map(|i| (i.loc, format!("relay address {}", i.value))),
                        _ => None,
                    };
                    if let Some((l, what)) = removed {
                        report.skip(&l, format!("{name}: {what}"), reason);
                    } else {
                        plan.subnet4.remove(*subnet);
                        report.skip(&loc, name, reason);
                    }
                }
                Part::Attr(a) => {
                    let l = match a.as_str() {
                        "interface" => s.interface.take().map(|v| format!("interface {v}")),
                        "domain-name" => s
                            .domain_name
                            .take()
                            .map(|v| format!("domain-name {}", v.value)),
                        "broadcast-address" => s
                            .broadcast_address
                            .take()
                            .map(|v| format!("broadcast-address {}", v.value)),
                        "lease-time" | "min-lease-time" | "max-lease-time" => {
                            let (a, b) = (s.min_lease_time.take(), s.max_lease_time.take());
                            Some(format!("min/max lease time {a:?}/{b:?}"))
                        }
                        "renew-time" | "rebind-time" => {
                            let (a, b) = (s.renew_time.take(), s.rebind_time.take());
                            Some(format!("renew/rebind timers {a:?}/{b:?}"))
                        }
                        _ => None,
                    };
                    if let Some(what) = l {
                        report.skip(&loc, format!("{name}: {what}"), reason);
                    } else {
                        plan.subnet4.remove(*subnet);
                        report.skip(&loc, name, reason);
                    }
                }
            }
        }
        Removal::Part {
            v6: true,
            subnet,
            part,
        } => apply_removal6(plan, report, *subnet, part, reason),
    }
}

fn apply_removal6(plan: &mut Plan, report: &mut Report, subnet: usize, part: &Part, reason: &str) {
    if subnet >= plan.subnet6.len() {
        return;
    }
    let s = &mut plan.subnet6[subnet];
    let loc = s.loc.clone();
    let name = format!("subnet6 {} (id {})", s.prefix, s.id);
    let done = match part {
        Part::Whole => None,
        Part::Elem(what, k) => match what.as_str() {
            "pool" => take(&mut s.pools, *k).map(|i| (i.loc, format!("pool {:?}", i.value))),
            "pd-pool" => take(&mut s.pd_pools, *k).map(|i| {
                (
                    i.loc,
                    format!("pd-pool {}/{}", i.value.prefix, i.value.delegated_len),
                )
            }),
            "reservation" => {
                take(&mut s.reservations, *k).map(|i| (i.loc, "reservation".to_owned()))
            }
            "option" => take(&mut s.options, *k)
                .map(|i| (i.loc, format!("option {} ({})", i.value.name, i.value.code))),
            "dns-servers" => {
                take(&mut s.dns_servers, *k).map(|i| (i.loc, format!("DNS server {}", i.value)))
            }
            "domain-search" => take(&mut s.domain_search, *k)
                .map(|i| (i.loc, format!("domain-search {}", i.value))),
            _ => None,
        },
        Part::Excluded(k) => s.pd_pools.get_mut(*k).and_then(|p| {
            p.value
                .excluded
                .take()
                .map(|e| (p.loc.clone(), format!("excluded-prefix {e}")))
        }),
        Part::Attr(a) => {
            let what = match a.as_str() {
                "interface" => s.interface.take().map(|v| format!("interface {v}")),
                "interface-id" => s.interface_id.take().map(|v| format!("interface-id {v}")),
                "preferred-lifetime" | "valid-lifetime" | "renew-time" | "rebind-time" => {
                    s.preferred_lifetime = None;
                    s.valid_lifetime = None;
                    s.renew_time = None;
                    s.rebind_time = None;
                    Some("lifetimes and timers (defaults used)".to_owned())
                }
                "sol-max-rt" => s.sol_max_rt.take().map(|v| format!("sol-max-rt {v}")),
                "information-refresh-time" => s
                    .information_refresh_time
                    .take()
                    .map(|v| format!("information-refresh-time {v}")),
                _ => None,
            };
            what.map(|w| (loc.clone(), w))
        }
    };
    if let Some((l, what)) = done {
        report.skip(&l, format!("{name}: {what}"), reason);
    } else {
        plan.subnet6.remove(subnet);
        report.skip(&loc, name, reason);
    }
}

/// Keep the last lease per key (the sources append newer records after older ones).
fn keep_last<K: std::hash::Hash + Eq, T>(
    records: Vec<(K, Item<T>)>,
    superseded: &mut usize,
) -> Vec<Item<T>> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<Option<Item<T>>> = Vec::new();
    for (k, it) in records {
        if let Some(&i) = index.get(&k) {
            out[i] = None;
            *superseded += 1;
        }
        index.insert(k, out.len());
        out.push(Some(it));
    }
    out.into_iter().flatten().collect()
}

/// A twinlease state for a source lease: active leases past their expiry become expired.
fn settle_state(state: BindingState, expires: u32, now: u32) -> BindingState {
    if state == BindingState::Active && expires <= now {
        BindingState::Expired
    } else {
        state
    }
}

/// A `DHCPv4` lease record with no failover fields set.
fn lease4(
    addr: Ipv4Addr,
    state: BindingState,
    client: &ClientKey,
    chaddr: [u8; 6],
    subnet_id: u32,
    expires: u32,
    cltt: u32,
) -> Lease4 {
    Lease4 {
        addr,
        state,
        client: *client,
        chaddr,
        subnet_id,
        expires,
        cltt,
        partner_expires: 0,
        update_pending: false,
    }
}

/// Parse a MAC address written with `:` or `-` separators and 1-2 hex digits per byte.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let bytes = parse_hex_bytes(text)?;
    <[u8; 6]>::try_from(bytes.as_slice()).ok()
}

/// Parse hex bytes written `01:aa:b`, `01-aa-0b` or `01aa0b`.
fn parse_hex_bytes(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    if t.contains([':', '-', ' ']) {
        t.split([':', '-', ' '])
            .filter(|p| !p.is_empty())
            .map(|p| {
                (p.len() <= 2)
                    .then(|| u8::from_str_radix(p, 16).ok())
                    .flatten()
            })
            .collect()
    } else if t.len().is_multiple_of(2) && t.is_ascii() {
        (0..t.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&t[i..i + 2], 16).ok())
            .collect()
    } else {
        None
    }
}

/// Parse `a.b.c.d/len` as the network (host bits must be clear).
fn parse_net4(text: &str) -> Option<Ipv4Net> {
    let n: Ipv4Net = text.trim().parse().ok()?;
    (n.addr == n.network()).then_some(n)
}

/// Parse `x::/len`.
fn parse_net6(text: &str) -> Option<Ipv6Net> {
    text.trim().parse().ok()
}
