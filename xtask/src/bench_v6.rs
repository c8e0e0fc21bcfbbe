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

use std::net::Ipv4Addr;
use std::time::Duration;

use twinlease_tests::kea6::{Kea6, Kea6Options};
use twinlease_tests::perfdhcp::{Lease6Kind, PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::require_programs;
use twinlease_tests::topology::{CLIENT_IF, SERVER_IF, Topology};
use twinlease_tests::twinlease::{self, Subnet6, Twinlease, TwinleaseConfig};

use crate::bench_common::{self, Args, Bench, Rung, RungLog, first_line};
use crate::{Error, deps};

/// Rates tried in order until one fails.
const LADDER: &[u32] = &[
    500, 1000, 2000, 3000, 4000, 6000, 8000, 10_000, 12_000, 15_000,
];
/// Simulated clients (fewer than the 65 536 delegable /56 prefixes).
const CLIENTS: u32 = 60_000;

/// The wording of this benchmark.
const BENCH: Bench = Bench {
    chore: "bench-v6",
    name_width: 10,
    started: "SOLICITs",
    completed: "REPLYs",
    kea: "kea-dhcp6",
    suffix: "v6",
    delay_heading: "avg REQUEST-REPLY delay",
    cpu_heading: "server CPU s per 100k exchanges",
    below_first_rung: "below the first rung | | | | |",
};

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
    BENCH.print_rung(&server, &r, secs);
    Ok(r)
}

/// The ladder and bisection for one server: (best passing rung, all rungs).
fn measure(server: Server, topo: &Topology, secs: u32) -> Result<(Option<Rung>, RungLog), Error> {
    if server == Server::Twinlease {
        probe(topo)?;
    }
    bench_common::measure(LADDER, secs, |rate| rung(server, topo, rate, secs))
}

/// Runs the benchmark. Arguments: `--secs N` (seconds per rung, default 5),
/// `--only kea|twinlease`.
pub fn run(args: &[String]) -> Result<(), Error> {
    if BENCH.skipped_without_root() {
        return Ok(());
    }
    let args = Args::parse(args)?;
    let secs = args.secs;
    deps::install_deps()?;
    require_programs(&["ip", "sysctl", "perfdhcp", "kea-dhcp6"])?;
    let topo = Topology::new(1)?;
    topo.enable_ipv6()?;
    debug_assert_eq!(topo.server_addr(), Ipv4Addr::new(192, 0, 2, 1));

    let results = BENCH.measure_all(
        &args,
        &[Server::Kea, Server::Twinlease],
        Server::label,
        |server| measure(server, &topo, secs),
        |server, e| {
            let why = first_error_line(e);
            println!("bench-v6: {server:?}: not measured: {why}");
            why
        },
    );
    let date = first_line("date", &["+%F"]);
    let intro = format!(
        "# Socket-path DHCPv6 rate, {date}\n\n\
         Highest offered rate (SOLICIT-ADVERTISE-REQUEST-REPLY exchanges per second, each for\n\
         one address and one delegated /56, new leases, {secs} s per rung) at which at most\n\
         1 % of the exchanges perfdhcp started did not end with a REPLY.\n\
         perfdhcp (`-6 -e address-and-prefix`, {CLIENTS} clients) runs in a client namespace,\n\
         the server in another, one veth pair between them; client and server share the\n\
         machine's cores. `cargo xtask bench-v6`.\n\n"
    );
    BENCH.write(&date, &BENCH.report(&intro, &results))
}
