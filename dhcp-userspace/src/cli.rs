//! The `twinlease` command line: `run`, `check-config`, `leases`, `tune`, `ctl`, `store`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::dispatch::Server;
use crate::lease::Lease4;
use crate::pool::FreeMap;
use crate::store;
use crate::wal::{Durability, WalOptions};

/// twinlease: DHCPv4 server with a durable sharded lease store.
#[derive(Debug, Parser)]
#[command(name = "twinlease", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server in the foreground until SIGTERM or SIGINT.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and report every mistake (file: field: reason).
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Print the lease store of a (stopped) server as JSON lines.
    Leases {
        /// The server's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Only leases in this state (active, released, expired, abandoned…).
        #[arg(long)]
        state: Option<String>,
        /// Which leases: DHCPv4 (`v4`), DHCPv6 addresses and prefixes (`v6`), or `all`.
        #[arg(long, default_value = "all", value_parser = ["v4", "v6", "all"])]
        family: String,
    },
    /// Migrate a Kea or ISC dhcpd server: write a twinlease configuration and import the
    /// leases into a new lease store, reporting every construct not converted.
    Import(crate::import::ImportArgs),
    /// Show and tune an interface's queues: channel counts, queue IRQs and their affinity.
    Tune {
        /// The interface.
        #[arg(long)]
        iface: String,
        /// Queue pairs to configure (combined channels, or rx and tx when the driver has no
        /// combined channels).
        #[arg(long)]
        channels: Option<u32>,
        /// Cores to spread the queue IRQs over: queue q goes to core LIST[q % len] (e.g. 0,1 or 0-3).
        #[arg(long)]
        irq_cores: Option<crate::tune::CoreList>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Talk to a running server's control API: leases, stats, failover, expire, delete.
    Ctl(crate::control::client::CtlArgs),
    /// Check or repair the lease store of a stopped server (docs/operations.md, "Damaged
    /// lease store").
    Store {
        /// What to do.
        #[command(subcommand)]
        command: StoreCommand,
    },
}

/// `twinlease store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Report every damaged snapshot, segment and gap with its file and offset. Exit 0 when a
    /// start would succeed, 1 when it would refuse (damage), 2 when the check cannot run.
    Check {
        /// The server's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Cut each damaged shard's log at its first damage, after copying its files to a backup
    /// directory; a damaged snapshot keeps its intact records. Exit 0 when the store is usable
    /// afterwards, 1 when damage remains, 2 on errors.
    Repair {
        /// The server's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Required: agree that every record after the first damage of a shard is dropped
        /// (kept in the backup).
        #[arg(long)]
        drop_after_corruption: bool,
        /// Where the backup copy goes (default `<data-dir>/repair-backup-<unix time>`).
        #[arg(long)]
        backup_dir: Option<PathBuf>,
    },
}

/// Entry point of the binary.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { file } => check_config(&file),
        Command::Leases {
            data_dir,
            state,
            family,
        } => leases(&data_dir, state.as_deref(), &family),
        Command::Import(args) => crate::import::cli_main(&args),
        Command::Tune {
            iface,
            channels,
            irq_cores,
            json,
        } => crate::tune::cli_main(&crate::tune::TuneArgs {
            iface,
            channels,
            irq_cores: irq_cores.map(|c| c.0),
            json,
        }),
        Command::Ctl(args) => crate::control::client::main(&args),
        Command::Store {
            command: StoreCommand::Check { data_dir },
        } => store::check::cli_check(&data_dir),
        Command::Store {
            command:
                StoreCommand::Repair {
                    data_dir,
                    drop_after_corruption,
                    backup_dir,
                },
        } => store::check::cli_repair(&data_dir, drop_after_corruption, backup_dir),
    }
}

fn check_config(file: &Path) -> ExitCode {
    match config::load(file) {
        Ok(c) => {
            println!(
                "{}: ok ({} subnet(s), {} pool(s), {} reservation(s))",
                file.display(),
                c.subnet4.len(),
                c.subnet4.iter().map(|s| s.pool.len()).sum::<usize>(),
                c.subnet4.iter().map(|s| s.reservation.len()).sum::<usize>()
            );
            ExitCode::SUCCESS
        }
        Err(errs) => {
            eprintln!("{errs}");
            ExitCode::FAILURE
        }
    }
}

/// Block the signals the main thread waits for, so every thread spawned after inherits the
/// mask and only `sigwait` sees them.
fn block_signals() -> libc::sigset_t {
    // Safety: sigset_t is plain data; the sig* calls only write into it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&raw mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
        set
    }
}

fn run(path: &Path) -> ExitCode {
    crate::logging::init(None);
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return ExitCode::FAILURE;
        }
    };
    crate::logging::apply_config(cfg.server.log.as_deref());
    let fail = |e: &dyn std::fmt::Display| {
        tracing::error!("cannot start: {e}");
        eprintln!("twinlease: cannot start: {e}");
        ExitCode::FAILURE
    };
    // The user is resolved and the data directory checked before anything is bound; files
    // the start creates already belong to the user (see privilege.rs).
    let account = match cfg.server.user.as_deref().map(|name| {
        let a = crate::privilege::resolve_user(name)?;
        crate::privilege::check_data_dir(&cfg.server.data_dir, &a)?;
        crate::privilege::create_as(&a)?;
        Ok::<_, crate::privilege::PrivilegeError>(a)
    }) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => return fail(&e),
    };
    let set = block_signals();
    // Without a user to switch to, each server thread clears its own capabilities as it starts.
    crate::privilege::drop_in_new_threads(cfg.server.drop_capabilities && account.is_none());
    let server = match Server::start(&cfg) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    server.set_config_path(path);
    if account.is_some() || cfg.server.drop_capabilities {
        match crate::privilege::drop_privileges(account.as_ref(), cfg.server.drop_capabilities) {
            Ok(d) => {
                tracing::info!(uid = d.uid, gid = d.gid, "privileges dropped");
                // Threads clear their own sets as they start: give them a bounded moment.
                let mut left = d.threads_with_caps;
                for _ in 0..50 {
                    if left.is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    left = crate::privilege::threads_with_caps();
                }
                if !left.is_empty() {
                    tracing::warn!(
                        threads = ?left,
                        "capabilities are per thread: these threads (tid, CapEff) keep theirs; \
                         set server.user to clear every thread"
                    );
                }
            }
            Err(e) => {
                server.shutdown();
                return fail(&e);
            }
        }
    }
    tracing::info!(
        listen = ?server.listening,
        control = ?server.control_addr(),
        workers = cfg.workers(),
        durability = ?cfg.server.durability,
        "twinlease serving"
    );
    loop {
        let mut sig: libc::c_int = 0;
        // Safety: set is a valid signal set, sig a valid out-pointer.
        let rc = unsafe { libc::sigwait(&raw const set, &raw mut sig) };
        if rc != 0 {
            continue;
        }
        if sig == libc::SIGHUP {
            match server.reload() {
                Ok(r) => tracing::info!(
                    pause_us = u64::try_from(r.pause.as_micros()).unwrap_or(u64::MAX),
                    "SIGHUP: configuration reloaded"
                ),
                Err(e) => {
                    let lines = e.lines();
                    for line in &lines {
                        tracing::error!("{line}");
                    }
                    if lines.is_empty() {
                        tracing::error!("SIGHUP: {e}; the running configuration is kept");
                    } else {
                        tracing::error!(
                            "SIGHUP: reload refused; the running configuration is kept"
                        );
                    }
                }
            }
            continue;
        }
        tracing::info!(signal = sig, "stopping");
        break;
    }
    let stats = std::sync::Arc::clone(&server.stats);
    for s in server
        .xdp_counters()
        .into_iter()
        .filter(|s| s.counters.total() > 0)
    {
        let c = &s.counters;
        tracing::info!(
            iface = %s.iface,
            queue = s.queue,
            redirected_v4 = c.redirected_v4,
            redirected_v6 = c.redirected_v6,
            passed = c.passed,
            malformed = c.malformed,
            no_socket = c.no_socket,
            shed = c.shed,
            "XDP counters"
        );
    }
    server.shutdown();
    tracing::info!(
        received = stats.received.load(std::sync::atomic::Ordering::Relaxed),
        sent = stats.sent.load(std::sync::atomic::Ordering::Relaxed),
        received_xdp = stats.received_xdp.load(std::sync::atomic::Ordering::Relaxed),
        sent_xdp = stats.sent_xdp.load(std::sync::atomic::Ordering::Relaxed),
        send_failed = stats.send_failed.load(std::sync::atomic::Ordering::Relaxed),
        ring_full = stats.ring_full.load(std::sync::atomic::Ordering::Relaxed),
        commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed),
        outcomes = ?stats.outcomes(),
        "stopped"
    );
    ExitCode::SUCCESS
}

/// JSON object of one lease, as `twinlease leases` prints it.
#[must_use]
pub fn lease_json(l: &Lease4) -> serde_json::Value {
    let m = l.chaddr;
    serde_json::json!({
        "addr": l.addr.to_string(),
        "state": l.state.name(),
        "client": l.client.to_string(),
        "chaddr": format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]),
        "subnet_id": l.subnet_id,
        "expires": l.expires,
        "cltt": l.cltt,
    })
}

/// JSON object of one DHCPv6 lease, as `twinlease leases` prints it.
#[must_use]
pub fn lease6_json(l: &crate::lease::Lease6) -> serde_json::Value {
    serde_json::json!({
        "kind": match l.kind { crate::lease::IaKind::Na => "na", crate::lease::IaKind::Pd => "pd" },
        "addr": l.addr.to_string(),
        "prefix_len": l.prefix_len,
        "state": l.state.name(),
        "client": l.client.to_string(),
        "iaid": l.iaid,
        "subnet_id": l.subnet_id,
        "preferred_until": l.preferred_until,
        "expires": l.expires,
        "cltt": l.cltt,
    })
}

fn leases(data_dir: &Path, state: Option<&str>, family: &str) -> ExitCode {
    use std::io::Write as _;
    let shards = store::existing_shards(data_dir);
    if shards == 0 {
        eprintln!(
            "twinlease: {}: no lease store here (no shard-* directories)",
            data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let Ok(free) = FreeMap::new(&[], shards, &|_| false) else {
        return ExitCode::FAILURE;
    };
    // Opening replays the logs exactly as the server would at start (it takes the writer
    // lock, so the server must be stopped).
    let opts = WalOptions {
        segment_size: crate::wal::DEFAULT_SEGMENT_SIZE,
        durability: Durability::None,
    };
    let Ok(space6) = crate::pool::v6::Space6::new(&[], shards, &[]) else {
        return ExitCode::FAILURE;
    };
    let stores = match store::open(
        data_dir,
        shards,
        opts,
        &free,
        &|_| false,
        &std::sync::Arc::new(space6),
    ) {
        Ok((s, _)) => s,
        Err(e) => {
            eprintln!("twinlease: {}: {e}", data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let wanted = |name: &str| state.is_none_or(|s| s == name);
    if family != "v6" {
        let mut all: Vec<Lease4> = stores.iter().flat_map(|s| s.shard.iter()).collect();
        all.sort_by_key(|l| u32::from(l.addr));
        for l in all.iter().filter(|l| wanted(l.state.name())) {
            if writeln!(out, "{}", lease_json(l)).is_err() {
                return ExitCode::FAILURE;
            }
        }
    }
    if family != "v4" {
        let mut all6: Vec<crate::lease::Lease6> =
            stores.iter().flat_map(|s| s.shard6.iter()).collect();
        all6.sort_by_key(|l| (l.kind as u8, u128::from(l.addr)));
        for l in all6.iter().filter(|l| wanted(l.state.name())) {
            if writeln!(out, "{}", lease6_json(l)).is_err() {
                return ExitCode::FAILURE;
            }
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
