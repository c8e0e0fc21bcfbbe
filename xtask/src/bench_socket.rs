//! `cargo xtask bench-socket`: the highest DHCP (v4) rate each server sustains with at most
//! 1 % of exchanges failing, measured with perfdhcp through veth pairs in namespaces.
//!
//! For each rate of a ladder the server starts afresh (empty lease store) and perfdhcp
//! initiates `rate` four-way exchanges per second for a few seconds from up to 120 000
//! simulated clients, so nearly every exchange allocates a new lease. The ladder climbs
//! until a rung fails, then bisects between the last passing and the first failing rate.
//!
//! Servers: Kea 2.2 `kea-dhcp4` (memfile, multi-threaded: 2 threads, queue 64), twinlease
//! on the socket path and twinlease on the XDP/`AF_XDP` path (2 workers, `durability =
//! "fsync"`). Besides the rate, each rung records the server's CPU seconds (user + system,
//! from /proc) per 100 000 leases granted. Writes `results/<date>-socket.md` and prints it.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use twinlease_tests::kea::{Kea, KeaOptions};
use twinlease_tests::perfdhcp::{PerfdhcpOptions, PerfdhcpReport, run_perfdhcp};
use twinlease_tests::topology::{CLIENT_IF, Ipv4Net, SERVER_IF, Topology};
use twinlease_tests::twinlease::{self, Twinlease, TwinleaseConfig};
use twinlease_tests::{is_root, require_programs, workspace_root};

use crate::{Error, deps};

/// Highest failure fraction a passing rung may have.
const MAX_FAIL: f64 = 0.01;
/// Rates tried in order until one fails.
const LADDER: &[u32] = &[
    500, 1000, 2000, 4000, 6000, 8000, 10_000, 12_000, 15_000, 20_000,
];
/// (offered rate, failed fraction, achieved rate) of each rung run.
type RungLog = Vec<(u32, f64, f64)>;

/// Bisection steps after the ladder.
const BISECT_STEPS: u32 = 2;
/// Simulated clients.
const CLIENTS: u32 = 120_000;

/// One server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Kea,
    Twinlease,
    TwinleaseXdp,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Self::Kea => "Kea 2.2 kea-dhcp4 (memfile persist, MT 2 threads, queue 64)",
            Self::Twinlease => "twinlease (socket path, 2 workers, durability fsync)",
            Self::TwinleaseXdp => "twinlease (XDP/AF_XDP path, 2 workers, durability fsync)",
        }
    }
}

/// A running server of either kind, held for its drop (which stops it).
struct Running {
    kea: Option<Kea>,
    twinlease: Option<(Twinlease, tempfile::TempDir)>,
}

impl Running {
    fn cpu_seconds(&self) -> Option<f64> {
        self.kea
            .as_ref()
            .and_then(Kea::cpu_seconds)
            .or_else(|| self.twinlease.as_ref().and_then(|(t, _)| t.cpu_seconds()))
    }
}

/// One measured rung.
struct Rung {
    rate: u32,
    report: PerfdhcpReport,
    /// Server CPU seconds used during the rung (start-up included).
    cpu: Option<f64>,
}

impl Rung {
    /// DHCPACKs per second of the sending period (perfdhcp's own rate also divides by
    /// its wait for the last replies).
    fn achieved(&self, secs: u32) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "ACK counts stay far below 2^52")]
        let acks = self.report.acks() as f64;
        acks / f64::from(secs.max(1))
    }

    /// Server CPU seconds per 100 000 leases granted.
    fn cpu_per_100k(&self) -> Option<f64> {
        #[expect(clippy::cast_precision_loss, reason = "ACK counts stay far below 2^52")]
        let acks = self.report.acks() as f64;
        self.cpu.filter(|_| acks > 0.0).map(|c| c / acks * 100_000.0)
    }

    fn passed(&self) -> bool {
        self.report.failed_fraction() <= MAX_FAIL
    }
}

fn pool() -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(198, 18, 1, 0),
        Ipv4Addr::new(198, 19, 255, 250),
    )
}

fn start(server: Server, topo: &Topology) -> Result<Running, Error> {
    match server {
        Server::Kea => {
            let mut o = KeaOptions::new(SERVER_IF, topo.subnet(), pool());
            o.multi_threading = Some((2, 64));
            o.severity = "WARN".into();
            Ok(Running {
                kea: Some(Kea::start(topo.srv(), &o)?),
                twinlease: None,
            })
        }
        Server::Twinlease | Server::TwinleaseXdp => {
            let bin = twinlease::release_binary()?;
            let dir = tempfile::Builder::new().prefix("tl-bench").tempdir()?;
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data)?;
            let conf = dir.path().join("twinlease.toml");
            let mut c = TwinleaseConfig::standard(&data, topo.subnet(), pool(), 3600);
            if server == Server::TwinleaseXdp {
                "xdp".clone_into(&mut c.io);
            }
            c.write(&conf)?;
            let log = dir.path().join("twinlease.log");
            let s = Twinlease::start(topo.srv(), &bin, &conf, &log)?;
            Ok(Running {
                kea: None,
                twinlease: Some((s, dir)),
            })
        }
    }
}

fn rung(server: Server, topo: &Topology, rate: u32, secs: u32) -> Result<Rung, Error> {
    let running = start(server, topo)?;
    let mut p = PerfdhcpOptions::new(CLIENT_IF, CLIENTS);
    p.rate = Some(rate);
    p.period_secs = Some(secs);
    p.timeout = Duration::from_secs(u64::from(secs) + 60);
    let report = run_perfdhcp(topo.client(0), &p)?;
    let cpu = running.cpu_seconds();
    drop(running);
    let r = Rung { rate, report, cpu };
    println!(
        "bench-socket: {:12} rate {:6}/s: {:6} DISCOVERs {:6} ACKs, failed {:5.2} %, achieved {:8.1}/s, CPU {:5.2} s/100k -> {}",
        format!("{server:?}"),
        rate,
        r.report.discover_offer.as_ref().map_or(0, |s| s.sent),
        r.report.acks(),
        r.report.failed_fraction() * 100.0,
        r.achieved(secs),
        r.cpu_per_100k().unwrap_or(f64::NAN),
        if r.passed() { "pass" } else { "FAIL" }
    );
    Ok(r)
}

/// The ladder and bisection for one server: (best passing rung, all rungs).
fn measure(server: Server, topo: &Topology, secs: u32) -> Result<(Option<Rung>, RungLog), Error> {
    let mut best: Option<Rung> = None;
    let mut first_fail = None;
    let mut log = Vec::new();
    for &rate in LADDER {
        let r = rung(server, topo, rate, secs)?;
        log.push((rate, r.report.failed_fraction(), r.achieved(secs)));
        if r.passed() {
            best = Some(r);
        } else {
            first_fail = Some(rate);
            break;
        }
    }
    if let (Some(mut hi), Some(_)) = (first_fail, best.as_ref()) {
        for _ in 0..BISECT_STEPS {
            let lo = best.as_ref().map_or(0, |b| b.rate);
            let mid = lo + (hi - lo) / 2;
            if mid <= lo || hi - lo < 250 {
                break;
            }
            let r = rung(server, topo, mid, secs)?;
            log.push((mid, r.report.failed_fraction(), r.achieved(secs)));
            if r.passed() {
                best = Some(r);
            } else {
                hi = mid;
            }
        }
    }
    Ok((best, log))
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    format!(
        "| load average at start (shared machine) | {} |\n| nproc | {} |\n| kernel | {} |\n| CPU | {} |\n| perfdhcp | {} |\n| kea-dhcp4 | {} |\n",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
        first_line("nproc", &[]),
        first_line("uname", &["-sr"]),
        cpu,
        first_line("perfdhcp", &["-v"]).trim_start_matches("VERSION: "),
        first_line("kea-dhcp4", &["-v"]),
    )
}

/// Runs the benchmark. Arguments: `--secs N` (seconds per rung, default 5),
/// `--only kea|twinlease|twinleasexdp`.
pub fn run(args: &[String]) -> Result<(), Error> {
    if !is_root() {
        println!("xtask bench-socket: skipped: needs root (network namespaces)");
        return Ok(());
    }
    let mut secs = 5;
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => secs = it.next().and_then(|s| s.parse().ok()).ok_or("--secs N")?,
            "--only" => only = it.next().cloned(),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    deps::install_deps()?;
    require_programs(&["ip", "perfdhcp", "kea-dhcp4"])?;
    let topo = Topology::with_subnet(1, Ipv4Net::benchmark_net())?;
    topo.assign_client_addr(0)?;

    let mut rows = String::new();
    let mut details = String::new();
    for server in [Server::Kea, Server::Twinlease, Server::TwinleaseXdp] {
        let name = format!("{server:?}").to_lowercase();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        match measure(server, &topo, secs) {
            Ok((best, log)) => {
                let cell = best.as_ref().map_or_else(
                    || "below the first rung".to_owned(),
                    |b| {
                        format!(
                            "{} | {:.0} | {:.2} % | {:.3} ms | {} |",
                            b.rate,
                            b.achieved(secs),
                            b.report.failed_fraction() * 100.0,
                            b.report
                                .request_ack
                                .as_ref()
                                .and_then(|s| s.avg_delay_ms)
                                .unwrap_or(0.0),
                            b.cpu_per_100k().map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"))
                        )
                    },
                );
                let _ = writeln!(rows, "| {} | {cell}", server.label());
                let _ = writeln!(
                    details,
                    "\n{}: rungs (offered rate/s, failed %, achieved/s):",
                    server.label()
                );
                for (rate, fail, got) in log {
                    let _ = writeln!(details, "- {rate}: {:.2} %, {got:.0}", fail * 100.0);
                }
            }
            Err(e) => {
                let first = e.to_string().lines().next().unwrap_or("").to_owned();
                let _ = writeln!(rows, "| {} | not measured: {first} | | | | |", server.label());
            }
        }
    }
    let date = first_line("date", &["+%F"]);
    let report = format!(
        "# Socket-path DHCPv4 rate, {date}\n\n\
         Highest offered rate (four-way exchanges per second, new leases, {secs} s per rung) at\n\
         which at most 1 % of the exchanges perfdhcp started did not end with a DHCPACK.\n\
         perfdhcp runs as a relay in a client namespace, the server in another, one veth pair\n\
         between them; client and server share the machine's cores. `cargo xtask bench-socket`.\n\n\
         | server | max rate ≤ 1 % loss (/s) | achieved (/s) | failed | avg REQUEST-ACK delay | server CPU s per 100k leases |\n\
         |---|---|---|---|---|---|\n{rows}\n## Machine\n\n| | |\n|---|---|\n{}\n## Rungs\n{details}",
        machine()
    );
    let dir: PathBuf = workspace_root().join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{date}-socket.md"));
    std::fs::write(&path, &report)?;
    println!("{report}\nbench-socket: written to {}", path.display());
    Ok(())
}
