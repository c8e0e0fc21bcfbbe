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

use std::net::Ipv4Addr;
use std::time::Duration;

use twinlease_tests::kea::{Kea, KeaOptions};
use twinlease_tests::perfdhcp::{PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::require_programs;
use twinlease_tests::topology::{CLIENT_IF, Ipv4Net, SERVER_IF, Topology};
use twinlease_tests::twinlease::{self, Twinlease, TwinleaseConfig};

use crate::bench_common::{self, Args, Bench, Rung, RungLog, first_line};
use crate::{Error, deps};

/// Rates tried in order until one fails.
const LADDER: &[u32] = &[
    500, 1000, 2000, 4000, 6000, 8000, 10_000, 12_000, 15_000, 20_000,
];
/// Simulated clients.
const CLIENTS: u32 = 120_000;

/// The wording of this benchmark.
const BENCH: Bench = Bench {
    chore: "bench-socket",
    name_width: 12,
    started: "DISCOVERs",
    completed: "ACKs",
    kea: "kea-dhcp4",
    suffix: "socket",
    delay_heading: "avg REQUEST-ACK delay",
    cpu_heading: "server CPU s per 100k leases",
    below_first_rung: "below the first rung",
};

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
    BENCH.print_rung(&server, &r, secs);
    Ok(r)
}

/// The ladder and bisection for one server: (best passing rung, all rungs).
fn measure(server: Server, topo: &Topology, secs: u32) -> Result<(Option<Rung>, RungLog), Error> {
    bench_common::measure(LADDER, secs, |rate| rung(server, topo, rate, secs))
}

/// Runs the benchmark. Arguments: `--secs N` (seconds per rung, default 5),
/// `--only kea|twinlease|twinleasexdp`.
pub fn run(args: &[String]) -> Result<(), Error> {
    if BENCH.skipped_without_root() {
        return Ok(());
    }
    let args = Args::parse(args)?;
    let secs = args.secs;
    deps::install_deps()?;
    require_programs(&["ip", "perfdhcp", "kea-dhcp4"])?;
    let topo = Topology::with_subnet(1, Ipv4Net::benchmark_net())?;
    topo.assign_client_addr(0)?;

    let results = BENCH.measure_all(
        &args,
        &[Server::Kea, Server::Twinlease, Server::TwinleaseXdp],
        Server::label,
        |server| measure(server, &topo, secs),
        |_, e| e.to_string().lines().next().unwrap_or("").to_owned(),
    );
    let date = first_line("date", &["+%F"]);
    let intro = format!(
        "# Socket-path DHCPv4 rate, {date}\n\n\
         Highest offered rate (four-way exchanges per second, new leases, {secs} s per rung) at\n\
         which at most 1 % of the exchanges perfdhcp started did not end with a DHCPACK.\n\
         perfdhcp runs as a relay in a client namespace, the server in another, one veth pair\n\
         between them; client and server share the machine's cores. `cargo xtask bench-socket`.\n\n"
    );
    BENCH.write(&date, &BENCH.report(&intro, &results))
}
