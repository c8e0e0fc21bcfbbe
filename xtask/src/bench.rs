//! `cargo xtask bench`: every DHCP server under the closed-loop load generator
//! `twinlease_bench` (crate `twinlease-bench`), with perfdhcp at the same rate for
//! comparison.
//!
//! One topology (server namespace `s0` ─ veth ─ `c0` client namespace, 10.0.0.0/8 and the
//! standard DHCPv6 link); each server in turn is started, driven by `twinlease_bench
//! --find-max --max-drops 1` (rungs of `--secs` seconds from 1 000/s up by ×1.5, then two
//! bisection steps; new clients on every rung, DORA / SOLICIT-ADVERTISE-REQUEST-REPLY with an
//! address and a /56), stopped, started afresh, and driven by perfdhcp for the same time at
//! the highest rate the generator found. Writes `results/<date>-bench.md` (tables, rungs,
//! machine, commands) and `results/<date>-bench.svg` (served vs offered rate, and DORA p99
//! latency vs offered rate, per server).
//!
//! Servers ([`ServerKind`]): twinlease on the XDP and on the socket path (2 workers,
//! `durability = "fsync"`), Kea 2.2 `kea-dhcp4` (memfile, multi-threaded 2 × 64), ISC dhcpd 4.4,
//! and for DHCPv6 twinlease (both paths) and `kea-dhcp6` 2.2 (memfile, multi-threaded).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use twinlease_tests::kea::{Kea, KeaOptions};
use twinlease_tests::netns::{Netns, VethPair};
use twinlease_tests::kea6::{Kea6, Kea6Options};
use twinlease_tests::loadgen::{bench_binary, run_bench};
use twinlease_tests::perfdhcp::{Lease6Kind, PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::process::{self, ChildGuard};
use twinlease_tests::topology::{CLIENT_IF, Ipv4Net, SERVER_IF, Topology};
use twinlease_tests::twinlease::{self, Subnet6, Twinlease, TwinleaseConfig};
use twinlease_tests::{require_programs, workspace_root};

use crate::bench_common::{Args, Bench, first_line};
use crate::{Error, deps};

/// The wording shared with the other benchmarks (machine table, results file).
const BENCH: Bench = Bench {
    chore: "bench",
    name_width: 16,
    started: "exchanges",
    completed: "leases",
    kea: "kea-dhcp4",
    suffix: "bench",
    delay_heading: "",
    cpu_heading: "",
    below_first_rung: "",
};

/// First rung of the generator's ladder, exchanges per second (see [`ServerKind::first_rate`]).
const FIRST_RATE: u32 = 1000;
/// Clients the generator simulates: enough for every rung to use new ones.
const CLIENTS: u32 = 3_000_000;
/// ISC dhcpd allocates a structure per address of its ranges at start: its pool is smaller.
const DHCPD_POOL: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 1, 0, 0), Ipv4Addr::new(10, 3, 255, 255));
/// Delegated prefixes: /56 out of `2001:db8:8000::/33` (8 M prefixes, RFC 3849 space).
const PD_POOL: (Ipv6Addr, u8, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 0x8000, 0, 0, 0, 0, 0), 33, 56);

/// A server under test. The failover-pair variant (two twinlease servers as partners, the
/// generator checking uniqueness across both) is to be added here, with its arm in [`start`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// twinlease, XDP/`AF_XDP` path, DHCPv4.
    TwinleaseXdp,
    /// twinlease, socket path, DHCPv4.
    TwinleaseSocket,
    /// twinlease, socket path, DHCPv4, with a failover partner (a second twinlease in its
    /// own namespace, reached over a separate veth) in NORMAL: the primary answers every
    /// client (load-balance split 256) and sends each lease change to the partner.
    TwinleaseSocketFailover,
    /// Kea 2.2 `kea-dhcp4`.
    Kea4,
    /// ISC dhcpd 4.4.
    Dhcpd4,
    /// twinlease, XDP/`AF_XDP` path, DHCPv6.
    TwinleaseXdp6,
    /// twinlease, socket path, DHCPv6.
    TwinleaseSocket6,
    /// Kea 2.2 `kea-dhcp6`.
    Kea6,
}

impl ServerKind {
    /// Every kind, in run order.
    pub const ALL: [Self; 8] = [
        Self::TwinleaseXdp,
        Self::TwinleaseSocket,
        Self::TwinleaseSocketFailover,
        Self::Kea4,
        Self::Dhcpd4,
        Self::TwinleaseXdp6,
        Self::TwinleaseSocket6,
        Self::Kea6,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::TwinleaseXdp | Self::TwinleaseXdp6 => {
                "twinlease (XDP/AF_XDP path, 2 workers, durability fsync)"
            }
            Self::TwinleaseSocket | Self::TwinleaseSocket6 => {
                "twinlease (socket path, 2 workers, durability fsync)"
            }
            Self::TwinleaseSocketFailover => {
                "twinlease + failover partner in NORMAL (socket path, 2 workers each, fsync, every lease sent to the partner)"
            }
            Self::Kea4 => "Kea 2.2 kea-dhcp4 (memfile persist, MT 2 threads, queue 64)",
            Self::Dhcpd4 => "ISC dhcpd 4.4 (lease file, fsync per commit)",
            Self::Kea6 => "Kea 2.2 kea-dhcp6 (memfile persist, MT 2 threads, queue 64)",
        }
    }

    fn v6(self) -> bool {
        matches!(
            self,
            Self::TwinleaseXdp6 | Self::TwinleaseSocket6 | Self::Kea6
        )
    }

    /// The first rung: ISC dhcpd syncs its lease file for every lease and manages a few
    /// hundred per second, so its ladder starts lower.
    fn first_rate(self) -> u32 {
        match self {
            Self::Dhcpd4 => 100,
            _ => FIRST_RATE,
        }
    }

    fn clients(self) -> u32 {
        match self {
            Self::Dhcpd4 => u32::from(DHCPD_POOL.1) - u32::from(DHCPD_POOL.0),
            _ => CLIENTS,
        }
    }
}

/// A running server, stopped on drop (its temporary folder with it).
enum Running {
    Twinlease(
        Twinlease,
        #[expect(dead_code, reason = "held for its drop")] tempfile::TempDir,
    ),
    /// The primary, its partner, and what they live in.
    Pair(Box<Pair>),
    Kea(Kea),
    Kea6(Kea6),
    Dhcpd(
        ChildGuard,
        #[expect(dead_code, reason = "held for its drop")] tempfile::TempDir,
    ),
}

impl Running {
    fn cpu_seconds(&self) -> Option<f64> {
        match self {
            Self::Twinlease(t, _) => t.cpu_seconds(),
            // Both servers' CPU: replication is part of the cost.
            Self::Pair(p) => Some(p.primary.cpu_seconds()? + p.partner.cpu_seconds()?),
            Self::Kea(k) => k.cpu_seconds(),
            Self::Kea6(k) => k.cpu_seconds(),
            Self::Dhcpd(c, _) => c.cpu_seconds(),
        }
    }
}

fn subnet() -> Ipv4Net {
    Ipv4Net {
        network: Ipv4Addr::new(10, 0, 0, 0),
        prefix: 8,
    }
}

fn pool4() -> (Ipv4Addr, Ipv4Addr) {
    (Ipv4Addr::new(10, 1, 0, 0), Ipv4Addr::new(10, 255, 255, 250))
}

/// The DHCPv6 subnet of every v6 server: [`Subnet6::standard`] addresses, [`PD_POOL`].
fn subnet6() -> Subnet6 {
    let mut s = Subnet6::standard();
    s.pd_pools = vec![PD_POOL];
    s
}

/// Write `n` active leases into the store at `data` before the server starts
/// (`twinlease-bench`'s `store_fill`, release build).
fn prefill(data: &std::path::Path, n: u32) -> Result<(), Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let (first, last) = pool4();
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["run", "--quiet", "--release", "-p", "twinlease-bench", "--bin", "store_fill", "--"])
        .arg("--data-dir")
        .arg(data)
        .args([
            "--leases",
            &n.to_string(),
            "--first",
            &first.to_string(),
            "--last",
            &last.to_string(),
        ])
        .current_dir(workspace_root());
    let out = process::run(&mut cmd, Duration::from_mins(30))?;
    if !out.status.success() {
        return Err(format!("store_fill failed:\n{}", out.stderr).into());
    }
    print!("bench: {}", out.stdout);
    Ok(())
}

fn start_twinlease(kind: ServerKind, topo: &Topology, fill: u32) -> Result<Running, Error> {
    let bin = twinlease::release_binary()?;
    let dir = tempfile::Builder::new().prefix("tl-bench").tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    if fill > 0 {
        prefill(&data, fill)?;
    }
    let mut c = TwinleaseConfig::standard(&data, topo.subnet(), pool4(), 3600);
    if matches!(kind, ServerKind::TwinleaseXdp | ServerKind::TwinleaseXdp6) {
        "xdp".clone_into(&mut c.io);
    }
    if kind.v6() {
        c.subnets6.push(subnet6());
    }
    let conf = dir.path().join("twinlease.toml");
    c.write(&conf)?;
    let log = dir.path().join("twinlease.log");
    let port = if kind.v6() { 547 } else { 67 };
    let s = Twinlease::start_on_port(topo.srv(), &bin, &conf, &log, port)?;
    Ok(Running::Twinlease(s, dir))
}

/// ISC dhcpd 4.4 in the foreground (`-f -d`: its log, one line per message, goes to a
/// file), authoritative, without the ping check (which would delay every OFFER by a second).
fn start_dhcpd(topo: &Topology) -> Result<Running, Error> {
    let dir = tempfile::Builder::new().prefix("tl-dhcpd").tempdir()?;
    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(&leases, "")?;
    let net = topo.subnet();
    std::fs::write(
        &conf,
        format!(
            "authoritative;\nddns-update-style none;\nping-check false;\n\
             default-lease-time 3600;\nmax-lease-time 3600;\n\
             subnet {} netmask {} {{\n  range {} {};\n  option routers {};\n  \
             option domain-name-servers {};\n}}\n",
            net.network,
            Ipv4Addr::from(net.mask()),
            DHCPD_POOL.0,
            DHCPD_POOL.1,
            net.host(1),
            net.host(1),
        ),
    )?;
    let log = dir.path().join("dhcpd.log");
    let pid = dir.path().join("dhcpd.pid");
    let args: Vec<String> = vec![
        "-4".into(),
        "-f".into(),
        "-d".into(),
        "-cf".into(),
        conf.display().to_string(),
        "-lf".into(),
        leases.display().to_string(),
        "-pf".into(),
        pid.display().to_string(),
        SERVER_IF.into(),
    ];
    let mut cmd = topo.srv().command("dhcpd", &args);
    let mut child = ChildGuard::spawn("dhcpd", &mut cmd, &log)?;
    let ready = process::wait_until(Duration::from_mins(1), || {
        if !child.is_running() {
            Some(false)
        } else if topo.srv().udp_port_bound(67) {
            Some(true)
        } else {
            None
        }
    });
    if ready != Some(true) {
        return Err(format!("dhcpd did not start:\n{}", child.log_text()).into());
    }
    Ok(Running::Dhcpd(child, dir))
}

/// A failover pair: the primary serves the clients, the partner only replicates.
struct Pair {
    // Field order is drop order: servers first, then their network and files.
    primary: Twinlease,
    partner: Twinlease,
    #[expect(dead_code, reason = "held for its drop")]
    link: VethPair,
    #[expect(dead_code, reason = "held for its drop")]
    ns: Netns,
    #[expect(dead_code, reason = "held for its drop")]
    dir: tempfile::TempDir,
}

/// The `[failover]` table of one side of the benchmark pair (partner link 192.0.2.0/30).
fn failover_toml(role: &str, me: u8) -> String {
    let peer = 3 - me;
    format!(
        "\n[control]\nlisten = \"127.0.0.1:8547\"\n\n[failover]\nname = \"bench\"\nrole = \"{role}\"\n\
         address = \"192.0.2.{me}\"\npeer-address = \"192.0.2.{peer}\"\nmclt = 3600\n\
         max-response-delay = 30\nmax-unacked-updates = 2000\nload-balance-split = 256\n"
    )
}

fn start_pair(topo: &Topology) -> Result<Running, Error> {
    let bin = twinlease::release_binary()?;
    let dir = tempfile::Builder::new().prefix("tl-bench-pair").tempdir()?;
    let ns = Netns::create("fo")?;
    let link = VethPair::create(topo.srv(), "fo0", &ns, "fo0", 1)?;
    topo.srv().add_addr("fo0", "192.0.2.1/30")?;
    ns.add_addr("fo0", "192.0.2.2/30")?;
    ns.link_up("lo")?;
    topo.srv().link_up("lo")?;
    let (d1, d2) = (dir.path().join("primary"), dir.path().join("partner"));
    std::fs::create_dir_all(&d1)?;
    std::fs::create_dir_all(&d2)?;
    let c = TwinleaseConfig::standard(&d1, topo.subnet(), pool4(), 3600);
    let conf1 = dir.path().join("primary.toml");
    std::fs::write(&conf1, c.to_toml() + &failover_toml("primary", 1))?;
    // The partner has no client interface: the same subnet and pool, selected by nothing.
    let (first, last) = pool4();
    let net = topo.subnet();
    let conf2 = dir.path().join("partner.toml");
    std::fs::write(
        &conf2,
        format!(
            "[server]\ndata-dir = \"{}\"\nworkers = 2\ndurability = \"fsync\"\n\
             listen = [\"192.0.2.2:67\"]\n\n[[subnet4]]\nid = 1\nsubnet = \"{}/{}\"\n\
             lease-time = 3600\n\n[[subnet4.pool]]\nrange = \"{first}-{last}\"\n{}",
            d2.display(),
            net.network,
            net.prefix,
            failover_toml("secondary", 2)
        ),
    )?;
    let partner = Twinlease::start(&ns, &bin, &conf2, &dir.path().join("partner.log"))?;
    let primary =
        Twinlease::start_on_port(topo.srv(), &bin, &conf1, &dir.path().join("primary.log"), 67)?;
    // Both must be NORMAL before the ladder starts (a fresh pair: RECOVER → NORMAL).
    let log1 = dir.path().join("primary.log");
    let normal = process::wait_until(Duration::from_mins(2), || {
        std::fs::read_to_string(&log1)
            .ok()
            .filter(|t| t.contains("to=\"normal\""))
            .map(|_| true)
    });
    if normal != Some(true) {
        return Err(format!(
            "the failover pair did not reach NORMAL:\n{}",
            std::fs::read_to_string(&log1).unwrap_or_default()
        )
        .into());
    }
    Ok(Running::Pair(Box::new(Pair {
        primary,
        partner,
        link,
        ns,
        dir,
    })))
}

fn start(kind: ServerKind, topo: &Topology, fill: u32) -> Result<Running, Error> {
    match kind {
        ServerKind::TwinleaseSocketFailover => start_pair(topo),
        ServerKind::TwinleaseXdp
        | ServerKind::TwinleaseSocket
        | ServerKind::TwinleaseXdp6
        | ServerKind::TwinleaseSocket6 => start_twinlease(kind, topo, fill),
        ServerKind::Kea4 => {
            let mut o = KeaOptions::new(SERVER_IF, topo.subnet(), pool4());
            o.multi_threading = Some((2, 64));
            o.severity = "WARN".into();
            Ok(Running::Kea(Kea::start(topo.srv(), &o)?))
        }
        ServerKind::Kea6 => {
            let mut o = Kea6Options::new(SERVER_IF);
            o.pd_pool = Some(PD_POOL);
            o.multi_threading = Some((2, 64));
            o.severity = "WARN".into();
            Ok(Running::Kea6(Kea6::start(topo.srv(), &o)?))
        }
        ServerKind::Dhcpd4 => start_dhcpd(topo),
    }
}

/// One rung of the generator's ladder, from its JSON line.
#[derive(Clone, Debug, Default)]
struct GenRung {
    rate: f64,
    offered: f64,
    completed: f64,
    drop_pct: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    pass: bool,
}

impl GenRung {
    fn from_json(v: &serde_json::Value) -> Self {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        let dora = &v["latency_us"]["dora"];
        let ms = |k: &str| dora[k].as_f64().unwrap_or(f64::NAN) / 1000.0;
        Self {
            rate: f("rate"),
            offered: f("offered_per_s"),
            completed: f("completed_per_s"),
            drop_pct: f("drop_pct"),
            p50_ms: ms("p50"),
            p99_ms: ms("p99"),
            p999_ms: ms("p999"),
            pass: v["pass"].as_bool().unwrap_or(false),
        }
    }
}

/// A server's outcome.
struct Measured {
    kind: ServerKind,
    best: Option<GenRung>,
    rungs: Vec<GenRung>,
    duplicates: u64,
    cpu_per_100k: Option<f64>,
    perfdhcp: Option<(f64, f64)>,
    error: Option<String>,
}

/// The generator's command line for `kind`.
fn generator_args(kind: ServerKind, secs: u32) -> Vec<String> {
    let mut a: Vec<String> = [
        "--iface",
        CLIENT_IF,
        "--find-max",
        "--max-drops",
        "1",
        "--factor",
        "1.5",
        "--bisect",
        "2",
        "--timeout-ms",
        "1000",
        "--json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    a.extend([
        "--rate".into(),
        kind.first_rate().to_string(),
        "--duration".into(),
        secs.to_string(),
        "--clients".into(),
        kind.clients().to_string(),
    ]);
    if kind.v6() {
        a.extend(["-6".into(), "--ia".into(), "both".into()]);
    }
    a
}

fn measure(kind: ServerKind, topo: &Topology, secs: u32, fill: u32) -> Result<Measured, Error> {
    let gen_bin = bench_binary(true)?;
    let running = start(kind, topo, fill)?;
    let cpu0 = running.cpu_seconds();
    let args = generator_args(kind, secs);
    println!("bench: {kind:?}: twinlease_bench {}", args.join(" "));
    let run = run_bench(
        topo.client(0),
        &gen_bin,
        &args,
        Duration::from_secs(u64::from(secs + 4) * 40 + 120),
    )?;
    let cpu1 = running.cpu_seconds();
    drop(running);
    let rungs: Vec<GenRung> = run.json["ladder"]
        .as_array()
        .map(|a| a.iter().map(GenRung::from_json).collect())
        .unwrap_or_default();
    for r in &rungs {
        println!(
            "bench: {kind:?}: rate {:7.0}/s offered {:8.0} done {:8.0} lost {:5.2} % p99 {:7.2} ms {}",
            r.rate,
            r.offered,
            r.completed,
            r.drop_pct,
            r.p99_ms,
            if r.pass { "pass" } else { "FAIL" }
        );
    }
    let best = if run.json["result"].is_null() {
        None
    } else {
        Some(GenRung::from_json(&run.json["result"]))
    };
    let done: f64 = rungs.iter().map(|r| r.completed * f64::from(secs)).sum();
    let cpu_per_100k = match (cpu0, cpu1) {
        (Some(a), Some(b)) if done > 0.0 => Some((b - a) / done * 100_000.0),
        _ => None,
    };
    // perfdhcp at the generator's best rate, on a fresh server.
    let rate = best.as_ref().map_or(kind.first_rate(), |b| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a rate"
        )]
        let r = b.rate as u32;
        r
    });
    let perfdhcp = {
        let running = start(kind, topo, fill)?;
        let mut p = if kind.v6() {
            PerfdhcpOptions::new_v6(CLIENT_IF, 1_000_000, Lease6Kind::AddressAndPrefix)
        } else {
            PerfdhcpOptions::new(CLIENT_IF, 1_000_000)
        };
        p.rate = Some(rate);
        p.period_secs = Some(secs);
        p.timeout = Duration::from_secs(u64::from(secs) + 60);
        let outcome = run_perfdhcp(topo.client(0), &p);
        drop(running);
        match outcome {
            Ok(report) => {
                #[expect(clippy::cast_precision_loss, reason = "a rate")]
                let achieved = report.acks() as f64 / f64::from(secs.max(1));
                println!(
                    "bench: {kind:?}: perfdhcp at {rate}/s: {achieved:.0}/s, failed {:.2} %",
                    report.failed_fraction() * 100.0
                );
                Some((achieved, report.failed_fraction() * 100.0))
            }
            Err(e) => {
                println!("bench: {kind:?}: perfdhcp failed: {e}");
                None
            }
        }
    };
    Ok(Measured {
        kind,
        best,
        rungs,
        duplicates: run.json["duplicates"].as_u64().unwrap_or(0),
        cpu_per_100k,
        perfdhcp,
        error: None,
    })
}

/// Formats a number, or `?` for none/NaN.
fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "?".into(),
    }
}

fn table(results: &[Measured], v6: bool) -> String {
    let mut o = String::from(
        "| server | max rate ≤ 1 % lost (/s) | completed (/s) | lost | p50 / p99 / p99.9 (ms) | duplicates | server CPU s per 100k | perfdhcp at that rate: achieved (/s), failed |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for m in results.iter().filter(|m| m.kind.v6() == v6) {
        if let Some(e) = &m.error {
            let _ = writeln!(o, "| {} | not measured: {e} | | | | | | |", m.kind.label());
            continue;
        }
        let Some(b) = &m.best else {
            let _ = writeln!(
                o,
                "| {} | below the first rung ({}/s) | | | | {} | | |",
                m.kind.label(),
                m.kind.first_rate(),
                m.duplicates
            );
            continue;
        };
        let _ = writeln!(
            o,
            "| {} | {:.0} | {:.0} | {:.2} % | {} / {} / {} | {} | {} | {} |",
            m.kind.label(),
            b.rate,
            b.completed,
            b.drop_pct,
            num(Some(b.p50_ms), 2),
            num(Some(b.p99_ms), 2),
            num(Some(b.p999_ms), 2),
            m.duplicates,
            num(m.cpu_per_100k, 2),
            m.perfdhcp
                .map_or_else(|| "?".to_owned(), |(a, f)| format!("{a:.0}, {f:.2} %")),
        );
    }
    o
}

/// The plot: served vs offered rate (left) and DORA p99 latency vs offered rate (right,
/// logarithmic), one line per server; plain SVG.
fn svg(results: &[Measured]) -> String {
    const W: f64 = 460.0;
    const H: f64 = 320.0;
    const M: f64 = 60.0;
    const COLOURS: [&str; 7] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    ];
    let series: Vec<(&Measured, Vec<GenRung>)> = results
        .iter()
        .filter(|m| !m.rungs.is_empty())
        .map(|m| {
            let mut r = m.rungs.clone();
            r.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            (m, r)
        })
        .collect();
    let max_rate = series
        .iter()
        .flat_map(|(_, r)| r.iter().map(|x| x.rate.max(x.completed)))
        .fold(1000.0_f64, f64::max)
        * 1.05;
    let (lat_min, lat_max) = series
        .iter()
        .flat_map(|(_, r)| r.iter().map(|x| x.p99_ms))
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lat_lo, lat_hi) = if lat_max > 0.0 {
        (
            10f64.powf(lat_min.log10().floor()),
            10f64.powf(lat_max.log10().ceil()),
        )
    } else {
        (0.1, 1000.0)
    };
    let legend_h = 18.0 * f64::from(u32::try_from(series.len()).unwrap_or(0));
    let total_h = H + 40.0 + legend_h;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{total_h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * W
    );
    let x_of = |x0: f64, rate: f64| x0 + M + (W - 1.5 * M) * rate / max_rate;
    let y_lin = |v: f64| H - M + -(H - 1.5 * M) * v / max_rate;
    let y_log = |v: f64| {
        let f = (v.max(lat_lo).log10() - lat_lo.log10()) / (lat_hi.log10() - lat_lo.log10());
        H - M - (H - 1.5 * M) * f
    };
    for (panel, title) in [
        (0.0, "completed exchanges/s vs offered/s"),
        (
            W,
            "p99 latency of the whole exchange (ms, log) vs offered/s",
        ),
    ] {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"20\" font-size=\"13\">{title}</text>\n\
             <line x1=\"{x0}\" y1=\"{yb}\" x2=\"{x1}\" y2=\"{yb}\" stroke=\"black\"/>\n\
             <line x1=\"{x0}\" y1=\"{yb}\" x2=\"{x0}\" y2=\"{yt}\" stroke=\"black\"/>",
            panel + M,
            x0 = panel + M,
            x1 = panel + W - M / 2.0,
            yb = H - M,
            yt = M / 2.0,
        );
        for i in 0..=4 {
            let rate = max_rate * f64::from(i) / 4.0;
            let x = x_of(panel, rate);
            let _ = writeln!(
                s,
                "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/>\
                 <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                H - M,
                M / 2.0,
                H - M + 15.0,
                rate_label(rate)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">offered exchanges/s</text>",
            panel + W / 2.0,
            H - M + 32.0
        );
    }
    for i in 0..=4 {
        let v = max_rate * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            M - 4.0,
            y_lin(v) + 4.0,
            rate_label(v)
        );
    }
    let mut decade = lat_lo;
    while decade <= lat_hi * 1.001 {
        let y = y_log(decade);
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{decade}</text>",
            W + M,
            2.0 * W - M / 2.0,
            W + M - 4.0,
            y + 4.0
        );
        decade *= 10.0;
    }
    // The ideal: served = offered.
    let _ = writeln!(
        s,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
        x_of(0.0, 0.0),
        y_lin(0.0),
        x_of(0.0, max_rate),
        y_lin(max_rate)
    );
    for (k, (m, rungs)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let served: Vec<String> = rungs
            .iter()
            .map(|r| format!("{:.1},{:.1}", x_of(0.0, r.rate), y_lin(r.completed)))
            .collect();
        let lat: Vec<String> = rungs
            .iter()
            .filter(|r| r.p99_ms.is_finite() && r.p99_ms > 0.0)
            .map(|r| format!("{:.1},{:.1}", x_of(W, r.rate), y_log(r.p99_ms)))
            .collect();
        for points in [&served, &lat] {
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
            for p in points.as_slice() {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    s,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{colour}\"/>"
                );
            }
        }
        let y = H + 20.0 + 18.0 * f64::from(u32::try_from(k).unwrap_or(0));
        let _ = writeln!(
            s,
            "<rect x=\"{M}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"{}\">{} {}</text>",
            y - 4.0,
            M + 20.0,
            y,
            if m.kind.v6() { "DHCPv6" } else { "DHCPv4" },
            xml_escape(m.kind.label())
        );
    }
    s.push_str("</svg>\n");
    s
}

fn rate_label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn report(date: &str, stem: &str, secs: u32, results: &[Measured], machine: &str) -> String {
    let mut o = format!(
        "# Closed-loop DHCP load with twinlease_bench, {date}\n\n\
         Each server in turn, alone in a server namespace, is driven by `twinlease_bench` (one\n\
         thread, AF_XDP on the client end of the veth pair): rungs of {secs} s from {FIRST_RATE}/s\n\
         (dhcpd: 100/s) up by ×1.5 until more than 1 % of the exchanges started end without their final\n\
         reply (1 s timeout per step) or the generator cannot offer 95 % of the rate, then two\n\
         bisection steps. Every exchange is a new client (DHCPv4 DORA; DHCPv6\n\
         SOLICIT/ADVERTISE/REQUEST/REPLY with an address and a /56). Latencies are of the\n\
         whole exchange at the best rung. perfdhcp then runs for {secs} s at that rate against a\n\
         fresh server (as a relay, its own clients). The machine is shared (other builds ran):\n\
         figures are indicative. `cargo xtask bench`.\n\n\
         ## DHCPv4 (DORA)\n\n{}\n## DHCPv6 (address + /56 prefix)\n\n{}\n\
         ![served vs offered, p99 vs offered]({stem}.svg)\n\n## Machine\n\n| | |\n|---|---|\n{machine}| dhcpd | {} |\n\n## Rungs\n",
        table(results, false),
        table(results, true),
        first_line("sh", &["-c", "dhcpd --version 2>&1"]),
    );
    for m in results {
        let _ = writeln!(
            o,
            "\n{} ({}): rate/s → offered/s, completed/s, lost %, p99 ms",
            m.kind.label(),
            if m.kind.v6() { "DHCPv6" } else { "DHCPv4" }
        );
        for r in &m.rungs {
            let _ = writeln!(
                o,
                "- {:.0} → {:.0}, {:.0}, {:.2} %, {:.2}{}",
                r.rate,
                r.offered,
                r.completed,
                r.drop_pct,
                r.p99_ms,
                if r.pass { "" } else { " (fail)" }
            );
        }
    }
    let _ = writeln!(
        o,
        "\n## Commands\n\n```sh\ncargo xtask bench --secs {secs}\n# per server, in the client namespace:\n\
         twinlease_bench {}\ntwinlease_bench {}\n```",
        generator_args(ServerKind::TwinleaseXdp, secs).join(" "),
        generator_args(ServerKind::Kea6, secs).join(" "),
    );
    o
}

/// Runs the benchmark. Arguments: `--secs N` (seconds per rung, default 5), `--only NAME`
/// (a [`ServerKind`] in lower case, e.g. `twinleasexdp`, `kea4`, `dhcpd4`, `kea6`).
pub fn run(args: &[String]) -> Result<(), Error> {
    if BENCH.skipped_without_root() {
        return Ok(());
    }
    let args = Args::parse(args)?;
    let secs = args.secs;
    deps::install_deps()?;
    require_programs(&["ip", "perfdhcp"])?;
    // Build both binaries before the topology exists (the build is long on a busy machine).
    twinlease::release_binary()?;
    bench_binary(true)?;
    let machine = BENCH.machine();
    let topo = Topology::with_subnet(1, subnet())?;
    topo.enable_ipv6()?;
    // perfdhcp relays DHCPv4 from c0's address (the generator ignores it).
    topo.assign_client_addr(0)?;
    topo.assign_client_addr6(0)?;
    let mut results = Vec::new();
    for kind in ServerKind::ALL {
        let name = format!("{kind:?}").to_lowercase();
        if !args.selects(&name) {
            continue;
        }
        let needs: &[&str] = match kind {
            ServerKind::Kea4 => &["kea-dhcp4"],
            ServerKind::Kea6 => &["kea-dhcp6"],
            ServerKind::Dhcpd4 => &["dhcpd"],
            _ => &[],
        };
        let outcome = require_programs(needs)
            .map_err(Error::from)
            .and_then(|()| measure(kind, &topo, secs, args.prefill));
        match outcome {
            Ok(m) => results.push(m),
            Err(e) => {
                let why = e.to_string().lines().next().unwrap_or("").replace('|', "/");
                println!("bench: {kind:?}: not measured: {why}");
                results.push(Measured {
                    kind,
                    best: None,
                    rungs: Vec::new(),
                    duplicates: 0,
                    cpu_per_100k: None,
                    perfdhcp: None,
                    error: Some(why),
                });
            }
        }
    }
    drop(topo);
    let date = first_line("date", &["+%F"]);
    // A partial run (`--only`) gets its own files, so it does not replace a full report.
    let stem = match &args.only {
        Some(only) => format!("{date}-bench-{}", only.replace(',', "-")),
        None => format!("{date}-bench"),
    };
    let stem = if args.prefill > 0 {
        format!("{stem}-prefill{}", args.prefill)
    } else {
        stem
    };
    let dir = workspace_root().join("results");
    std::fs::create_dir_all(&dir)?;
    let svg_path = dir.join(format!("{stem}.svg"));
    std::fs::write(&svg_path, svg(&results))?;
    let md_path = dir.join(format!("{stem}.md"));
    let mut text = report(&date, &stem, secs, &results, &machine);
    if args.prefill > 0 {
        let _ = write!(
            text,
            "\nScale: each twinlease server started on a store already holding {} active leases \
             (written by `store_fill`, durable), so every rung ran against a store of at least that \
             size (`--prefill {}`).\n",
            args.prefill, args.prefill
        );
    }
    std::fs::write(&md_path, &text)?;
    println!("{text}\nbench: written to {}", md_path.display());
    println!("bench: plot written to {}", svg_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(kind: ServerKind) -> Measured {
        let rung = |rate: f64, completed: f64, p99: f64, pass: bool| GenRung {
            rate,
            offered: rate,
            completed,
            drop_pct: if pass { 0.0 } else { 5.0 },
            p50_ms: p99 / 3.0,
            p99_ms: p99,
            p999_ms: p99 * 2.0,
            pass,
        };
        Measured {
            kind,
            best: Some(rung(1500.0, 1500.0, 2.0, true)),
            rungs: vec![
                rung(1000.0, 1000.0, 1.5, true),
                rung(1500.0, 1500.0, 2.0, true),
                rung(2250.0, 1900.0, 900.0, false),
            ],
            duplicates: 0,
            cpu_per_100k: Some(2.5),
            perfdhcp: Some((1480.0, 0.3)),
            error: None,
        }
    }

    #[test]
    fn svg_has_a_line_per_server_and_panel() {
        let results = [
            measured(ServerKind::TwinleaseXdp),
            measured(ServerKind::Kea6),
        ];
        let s = svg(&results);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 4);
        assert!(s.contains("Kea 2.2 kea-dhcp6"));
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn report_tables_split_by_family() {
        let mut failed = measured(ServerKind::Dhcpd4);
        failed.error = Some("dhcpd did not start".into());
        let r = report(
            "2026-01-01",
            "2026-01-01-bench",
            5,
            &[
                measured(ServerKind::Kea4),
                failed,
                measured(ServerKind::Kea6),
            ],
            "| nproc | 2 |\n",
        );
        let v4 = &r[r.find("## DHCPv4").unwrap()..r.find("## DHCPv6").unwrap()];
        assert!(v4.contains("| Kea 2.2 kea-dhcp4 (memfile persist, MT 2 threads, queue 64) | 1500 | 1500 | 0.00 % | 0.67 / 2.00 / 4.00 | 0 | 2.50 | 1480, 0.30 % |"), "{v4}");
        assert!(v4.contains("not measured: dhcpd did not start"));
        assert!(!v4.contains("kea-dhcp6"));
        assert!(r.contains("- 2250 → 2250, 1900, 5.00 %, 900.00 (fail)"));
    }
}
