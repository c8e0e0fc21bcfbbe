//! `cargo xtask bench-v6`: the highest DHCPv6 rate each server sustains with at most 1 % of
//! exchanges failing, measured with `perfdhcp -6 -e address-and-prefix` through a veth pair
//! in namespaces.
//!
//! Every exchange is SOLICIT-ADVERTISE then REQUEST-REPLY (RFC 8415 §18) for one address
//! (`IA_NA`) and one delegated /56 (`IA_PD`), from the client's link-local address to
//! `ff02::1:2` (RFC 8415 §7.1). For each rate of a ladder the server starts afresh (empty
//! lease store) and perfdhcp initiates `rate` exchanges per second for a few seconds from
//! up to 60 000 simulated clients (below the 65 536 /56 prefixes of the /40 pd-pool, so
//! prefixes never run out). The ladder climbs until a rung fails, then bisects between the
//! last passing and the first failing rate.
//!
//! Servers: Kea 2.2 `kea-dhcp6` (memfile, multi-threaded: 2 threads, queue 64) and twinlease
//! (release build, socket path, `[[subnet6]]` with the same pools). twinlease is measured
//! only once it serves DHCPv6: before the ladder it must accept the configuration, bind UDP
//! 547 and answer a short probe; otherwise its row says why it was not measured. Writes
//! `results/<date>-v6.md` and prints it.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use twinlease_tests::kea6::{Kea6, Kea6Options};
use twinlease_tests::perfdhcp::{Lease6Kind, PerfdhcpOptions, PerfdhcpReport, run_perfdhcp};
use twinlease_tests::topology::{CLIENT_IF, SERVER_IF, Topology};
use twinlease_tests::twinlease::{self, Subnet6, Twinlease, TwinleaseConfig};
use twinlease_tests::{is_root, require_programs, workspace_root};

use crate::{Error, deps};

/// Highest failure fraction a passing rung may have.
const MAX_FAIL: f64 = 0.01;
/// Rates tried in order until one fails.
const LADDER: &[u32] = &[
    500, 1000, 2000, 3000, 4000, 6000, 8000, 10_000, 12_000, 15_000,
];
/// Bisection steps after the ladder.
const BISECT_STEPS: u32 = 2;
/// Simulated clients (fewer than the 65 536 delegable /56 prefixes).
const CLIENTS: u32 = 60_000;
/// (offered rate, failed fraction, achieved rate) of each rung run.
type RungLog = Vec<(u32, f64, f64)>;

/// One server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Kea,
    Twinlease,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Self::Kea => "Kea 2.2 kea-dhcp6 (memfile persist, MT 2 threads, queue 64)",
            Self::Twinlease => "twinlease (socket path, 2 workers, durability fsync)",
        }
    }
}

/// A running server of either kind, held for its drop (which stops it).
enum Running {
    Kea(Kea6),
    /// The server, then its folder (removed after the server has stopped).
    Twinlease {
        server: Twinlease,
        _dir: tempfile::TempDir,
    },
}

impl Running {
    fn cpu_seconds(&self) -> Option<f64> {
        match self {
            Self::Kea(k) => k.cpu_seconds(),
            Self::Twinlease { server, .. } => server.cpu_seconds(),
        }
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
    /// Completed exchanges (REPLYs to REQUEST) per second of the sending period.
    fn achieved(&self, secs: u32) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "reply counts stay far below 2^52"
        )]
        let replies = self.report.acks() as f64;
        replies / f64::from(secs.max(1))
    }

    /// Server CPU seconds per 100 000 completed exchanges.
    fn cpu_per_100k(&self) -> Option<f64> {
        #[expect(
            clippy::cast_precision_loss,
            reason = "reply counts stay far below 2^52"
        )]
        let replies = self.report.acks() as f64;
        self.cpu
            .filter(|_| replies > 0.0)
            .map(|c| c / replies * 100_000.0)
    }

    fn passed(&self) -> bool {
        self.report.failed_fraction() <= MAX_FAIL
    }
}

/// The twinlease configuration: the standard DHCPv4 part (it serves both families) plus
/// [`Subnet6::standard`]: `2001:db8:1::/64` on `s0`, a pool, and the pd-pool
/// `2001:db8:8000::/40` delegating /56.
fn twinlease_config(topo: &Topology, data: &std::path::Path) -> TwinleaseConfig {
    let v4_pool = (topo.subnet().host(100), topo.subnet().host(250));
    let mut c = TwinleaseConfig::standard(data, topo.subnet(), v4_pool, 3600);
    c.subnets6.push(Subnet6::standard());
    c
}

/// The first non-empty line of an error; when it ends with `:` (a heading such as "building
/// the release twinlease failed:"), with the first compiler `error` line or else the next
/// non-empty line appended.
fn first_error_line(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").to_owned();
    if !first.ends_with(':') {
        return first;
    }
    let rest: Vec<&str> = lines.collect();
    let detail = rest
        .iter()
        .find(|l| l.starts_with("error"))
        .or(rest.first())
        .copied()
        .unwrap_or("");
    format!("{first} {detail}").replace('|', "/")
}

fn start(server: Server, topo: &Topology) -> Result<Running, Error> {
    match server {
        Server::Kea => {
            let mut o = Kea6Options::new(SERVER_IF);
            o.multi_threading = Some((2, 64));
            o.severity = "WARN".into();
            Ok(Running::Kea(Kea6::start(topo.srv(), &o)?))
        }
        Server::Twinlease => {
            let bin = twinlease::release_binary()?;
            let dir = tempfile::Builder::new().prefix("tl-bench6").tempdir()?;
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data)?;
            let conf = dir.path().join("twinlease.toml");
            twinlease_config(topo, &data).write(&conf)?;
            let check = twinlease::check_config(&bin, &conf)?;
            if !check.status.success() {
                let why = format!("{}{}", check.stdout, check.stderr);
                return Err(format!(
                    "twinlease rejects the [[subnet6]] configuration: {}",
                    first_error_line(&why)
                )
                .into());
            }
            let log = dir.path().join("twinlease.log");
            let s = Twinlease::start_on_port(topo.srv(), &bin, &conf, &log, 547)?;
            if !topo.srv().udp_port_bound(547) {
                return Err(
                    "twinlease accepts [[subnet6]] but does not listen on UDP 547 (DHCPv6 \
                     is not wired into the server yet)"
                        .into(),
                );
            }
            Ok(Running::Twinlease {
                server: s,
                _dir: dir,
            })
        }
    }
}

fn perfdhcp_options(rate: u32, secs: u32) -> PerfdhcpOptions {
    let mut p = PerfdhcpOptions::new_v6(CLIENT_IF, CLIENTS, Lease6Kind::AddressAndPrefix);
    p.rate = Some(rate);
    p.period_secs = Some(secs);
    p.timeout = Duration::from_secs(u64::from(secs) + 60);
    p
}

/// Before a ladder for twinlease: does it answer DHCPv6 at all? Ten exchanges per second
/// for two seconds must complete at least one.
fn probe(topo: &Topology) -> Result<(), Error> {
    let running = start(Server::Twinlease, topo)?;
    let report = run_perfdhcp(topo.client(0), &perfdhcp_options(10, 2))?;
    drop(running);
    if report.acks() == 0 {
        let adv = report.first_exchange().map_or(0, |s| s.received);
        return Err(format!(
            "twinlease listens on UDP 547 but completed no DHCPv6 exchange in the probe \
             ({} SOLICITs, {adv} ADVERTISEs, 0 REPLYs)",
            report.started()
        )
        .into());
    }
    Ok(())
}

fn rung(server: Server, topo: &Topology, rate: u32, secs: u32) -> Result<Rung, Error> {
    let running = start(server, topo)?;
    let report = run_perfdhcp(topo.client(0), &perfdhcp_options(rate, secs))?;
    let cpu = running.cpu_seconds();
    drop(running);
    let r = Rung { rate, report, cpu };
    println!(
        "bench-v6: {:10} rate {:6}/s: {:6} SOLICITs {:6} REPLYs, failed {:5.2} %, achieved {:8.1}/s, CPU {:5.2} s/100k -> {}",
        format!("{server:?}"),
        rate,
        r.report.started(),
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
    if server == Server::Twinlease {
        probe(topo)?;
    }
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
        "| load average at start (shared machine) | {} |\n| nproc | {} |\n| kernel | {} |\n| CPU | {} |\n| perfdhcp | {} |\n| kea-dhcp6 | {} |\n",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
        first_line("nproc", &[]),
        first_line("uname", &["-sr"]),
        cpu,
        first_line("perfdhcp", &["-v"]).trim_start_matches("VERSION: "),
        first_line("kea-dhcp6", &["-v"]),
    )
}

fn row(server: Server, best: Option<&Rung>, secs: u32) -> String {
    let cell = best.map_or_else(
        || "below the first rung | | | | |".to_owned(),
        |b| {
            format!(
                "{} | {:.0} | {:.2} % | {:.3} ms | {} |",
                b.rate,
                b.achieved(secs),
                b.report.failed_fraction() * 100.0,
                b.report
                    .second_exchange()
                    .and_then(|s| s.avg_delay_ms)
                    .unwrap_or(0.0),
                b.cpu_per_100k()
                    .map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"))
            )
        },
    );
    format!("| {} | {cell}", server.label())
}

/// Runs the benchmark. Arguments: `--secs N` (seconds per rung, default 5),
/// `--only kea|twinlease`.
pub fn run(args: &[String]) -> Result<(), Error> {
    if !is_root() {
        println!("xtask bench-v6: skipped: needs root (network namespaces)");
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
    require_programs(&["ip", "sysctl", "perfdhcp", "kea-dhcp6"])?;
    let topo = Topology::new(1)?;
    topo.enable_ipv6()?;
    debug_assert_eq!(topo.server_addr(), Ipv4Addr::new(192, 0, 2, 1));

    let mut rows = String::new();
    let mut details = String::new();
    for server in [Server::Kea, Server::Twinlease] {
        let name = format!("{server:?}").to_lowercase();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        match measure(server, &topo, secs) {
            Ok((best, log)) => {
                let _ = writeln!(rows, "{}", row(server, best.as_ref(), secs));
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
                let why = first_error_line(&e);
                println!("bench-v6: {server:?}: not measured: {why}");
                let _ = writeln!(rows, "| {} | not measured: {why} | | | | |", server.label());
            }
        }
    }
    let date = first_line("date", &["+%F"]);
    let report = format!(
        "# Socket-path DHCPv6 rate, {date}\n\n\
         Highest offered rate (SOLICIT-ADVERTISE-REQUEST-REPLY exchanges per second, each for\n\
         one address and one delegated /56, new leases, {secs} s per rung) at which at most\n\
         1 % of the exchanges perfdhcp started did not end with a REPLY.\n\
         perfdhcp (`-6 -e address-and-prefix`, {CLIENTS} clients) runs in a client namespace,\n\
         the server in another, one veth pair between them; client and server share the\n\
         machine's cores. `cargo xtask bench-v6`.\n\n\
         | server | max rate ≤ 1 % loss (/s) | achieved (/s) | failed | avg REQUEST-REPLY delay | server CPU s per 100k exchanges |\n\
         |---|---|---|---|---|---|\n{rows}\n## Machine\n\n| | |\n|---|---|\n{}\n## Rungs\n{details}",
        machine()
    );
    let dir: PathBuf = workspace_root().join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{date}-v6.md"));
    std::fs::write(&path, &report)?;
    println!("{report}\nbench-v6: written to {}", path.display());
    Ok(())
}
