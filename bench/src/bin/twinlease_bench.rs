//! `twinlease_bench`: a closed-loop DHCP client simulator on `AF_XDP` (see
//! [`twinlease_bench::loadgen`]). Runs on the client end of a link (root: it loads an XDP
//! program and binds `AF_XDP` sockets), in the current network namespace or `--netns NAME`.
//!
//! ```text
//! # 20 000 DHCPv4 clients, DORA at 2 000/s for 10 s, through c0:
//! twinlease_bench --iface c0 --clients 20000 --rate 2000 --duration 10
//! # DHCPv6 prefix delegation relayed from 2001:db8:1::2, renew-heavy mix after binding:
//! twinlease_bench -6 --ia pd --relay 2001:db8:1::2 --mix renew=80,dora=20 --rate 5000
//! # the highest rate with at most 1 % lost, 5 s per rung:
//! twinlease_bench --find-max --max-drops 1 --rate 2000 --duration 5
//! ```
//!
//! Prints a table (unless `--json`) and, as the last line, one JSON object. Exit status 0,
//! 1 on an error, 2 when a duplicate lease was seen.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use twinlease_bench::loadgen::clients::Identities;
use twinlease_bench::loadgen::driver::{Driver, DriverConfig, Family, Relay};
use twinlease_bench::loadgen::report::{self, Period, ProgressLine, RunInfo, Totals};
use twinlease_bench::loadgen::scenario::{Mix, Scenario};
use twinlease_bench::loadgen::stats::Op;
use twinlease_bench::loadgen::unique::Uniqueness;

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "Closed-loop DHCP client simulator on AF_XDP")]
#[expect(clippy::struct_excessive_bools, reason = "command-line switches")]
struct Args {
    /// Client-side interface.
    #[arg(long, default_value = "c0")]
    iface: String,
    /// Network namespace to run in (`ip netns` name); default: the current one.
    #[arg(long)]
    netns: Option<String>,
    /// DHCPv6 instead of DHCPv4.
    #[arg(short = '6', long = "v6")]
    v6: bool,
    /// DHCPv6 IAs: na, pd or both.
    #[arg(long, default_value = "na")]
    ia: String,
    /// Simulated clients (at most 10 000 000 is the tested range).
    #[arg(long, default_value_t = 100_000)]
    clients: u32,
    /// Seed of the client identities.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Operation mix, e.g. `renew=80,dora=20` (operations: dora, renew, rebind, release,
    /// decline).
    #[arg(long, default_value = "dora")]
    mix: String,
    /// Offered rate: exchanges started per second (the first rung with --find-max).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of sending (per rung with --find-max).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Reply timeout, milliseconds: an exchange without its reply by then is lost.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Clients to bind before measuring when the mix needs bound clients (default: half
    /// the clients).
    #[arg(long)]
    prebind: Option<u32>,
    /// Rate of the binding phase (default: --rate).
    #[arg(long)]
    prebind_rate: Option<u64>,
    /// Act as a relay agent with this address (`giaddr`, or the DHCPv6 link-address).
    #[arg(long)]
    relay: Option<IpAddr>,
    /// The server's address: where relayed messages go (v4: required with --relay; v6:
    /// default `ff02::1:2`).
    #[arg(long)]
    server: Option<IpAddr>,
    /// The server's hardware address (default: ARP for it when needed).
    #[arg(long)]
    server_mac: Option<String>,
    /// Find the highest rate with at most --max-drops % lost: rungs from --rate upwards.
    #[arg(long)]
    find_max: bool,
    /// Highest loss (percent of ended exchanges) a passing rung may have.
    #[arg(long, default_value_t = 1.0)]
    max_drops: f64,
    /// Rate factor between rungs.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Bisection steps after the first failing rung.
    #[arg(long, default_value_t = 2)]
    bisect: u32,
    /// Highest rung.
    #[arg(long, default_value_t = 2_000_000)]
    max_rate: u64,
    /// Pause between rungs, milliseconds (at least 3 s after a failing rung).
    #[arg(long, default_value_t = 500)]
    pause_ms: u64,
    /// Frames per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Descriptors per AF_XDP ring.
    #[arg(long, default_value_t = 4096)]
    ring: u32,
    /// CPU to pin the generator to.
    #[arg(long)]
    cpu: Option<usize>,
    /// Show the progress line even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
}

/// Set by SIGINT/SIGTERM: stop sending, report what was measured.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // Safety: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler) };
    }
}

/// Moves this (still single-threaded) process into network namespace `ns`.
fn enter_netns(ns: &str) -> Result<(), String> {
    let f = File::open(format!("/run/netns/{ns}")).map_err(|e| format!("netns {ns}: {e}"))?;
    // Safety: f is an open namespace file.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--server-mac {s}: {e}"))?;
    parts
        .try_into()
        .map_err(|_| format!("--server-mac {s}: six bytes expected"))
}

/// Rates of the ladder: from `first`, times `factor`, up to `max`.
fn ladder(first: u64, factor: f64, max: u64) -> Vec<u64> {
    let mut v = vec![first.max(1)];
    while let Some(&last) = v.last() {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "rates far below 2^52"
        )]
        let next = ((last as f64 * factor.max(1.05)).round() as u64).max(last + 1);
        if next > max {
            break;
        }
        v.push(next);
    }
    v
}

fn run(args: &Args) -> Result<bool, String> {
    let family = if args.v6 {
        let (na, pd) = match args.ia.as_str() {
            "na" => (true, false),
            "pd" => (false, true),
            "both" | "na+pd" => (true, true),
            other => return Err(format!("--ia {other}: na, pd or both")),
        };
        Family::V6 { na, pd }
    } else {
        Family::V4
    };
    let relay = match (args.relay, args.v6) {
        (None, _) => None,
        (Some(IpAddr::V4(a)), false) => Some(Relay::V4(a)),
        (Some(IpAddr::V6(a)), true) => Some(Relay::V6(a)),
        (Some(a), _) => return Err(format!("--relay {a}: wrong address family")),
    };
    let (server4, server6) = match args.server {
        Some(IpAddr::V4(a)) => (Some(a), None),
        Some(IpAddr::V6(a)) => (None, Some(a)),
        None => (None, None),
    };
    let server_mac = args.server_mac.as_deref().map(parse_mac).transpose()?;
    let mix = Mix::parse(&args.mix).map_err(|e| e.to_string())?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let ids = Identities::new(args.seed);
    let mut scenario = Scenario::new(
        args.clients.max(1),
        Mix::only(Op::Dora),
        args.v6,
        u32::try_from(timeout.as_micros()).unwrap_or(u32::MAX),
    );
    // Room in the uniqueness tables for the lease kinds the run hands out.
    let n = args.clients as usize;
    scenario.unique = match family {
        Family::V4 => Uniqueness::with_capacity(n, 0),
        Family::V6 { na, pd } => {
            Uniqueness::with_capacity(if na { n } else { 0 }, if pd { n } else { 0 })
        }
    };
    if let Some(cpu) = args.cpu {
        twinlease::tune::pin_current_thread(cpu).map_err(|e| e.to_string())?;
    }
    let cfg = DriverConfig {
        iface: args.iface.clone(),
        family,
        relay,
        server4,
        server6,
        server_mac,
        batch: args.batch,
        ring: args.ring,
        timeout,
    };
    let mut driver = Driver::new(cfg, ids, scenario).map_err(|e| error_chain(&e))?;
    driver
        .resolve_server(Duration::from_secs(3), &STOP)
        .map_err(|e| error_chain(&e))?;
    let info = RunInfo {
        family: if args.v6 { "v6" } else { "v4" }.into(),
        ia: if args.v6 {
            args.ia.clone()
        } else {
            String::new()
        },
        relay: args.relay.map(|r| r.to_string()),
        mix: mix.describe(),
        clients: args.clients.max(1),
        seed: args.seed,
        timeout,
        iface: args.iface.clone(),
        xdp_mode: driver
            .steer_mode()
            .map_or("none".into(), |m| format!("{m:?}").to_lowercase()),
        queues: driver.queues(),
    };
    let mut bar = ProgressLine::new(args.progress);
    let duration = Duration::from_secs_f64(args.duration.clamp(0.1, 3600.0));

    // Binding phase for mixes that renew, rebind, release or decline.
    if mix.needs_bound() {
        let want = args.prebind.unwrap_or(args.clients / 2).min(args.clients);
        let rate = args.prebind_rate.unwrap_or(args.rate).max(1);
        #[expect(clippy::cast_precision_loss, reason = "seconds of a phase")]
        let secs = (f64::from(want) / rate as f64 * 1.5).max(1.0);
        bar.label(format!("bind {want} @ {rate}/s"));
        let pre = driver
            .run_period(
                rate,
                Duration::from_secs_f64(secs),
                u64::from(want),
                &STOP,
                &mut |p| bar.update(p),
            )
            .map_err(|e| error_chain(&e))?;
        bar.finish();
        if !args.json {
            println!(
                "binding phase: {} clients bound (asked {want}, {} lost) in {:.1} s",
                driver.scenario().bound(),
                pre.total_drops(),
                pre.elapsed.as_secs_f64()
            );
        }
    }
    driver.scenario_mut().set_mix(mix);

    let mut rungs: Vec<Period> = Vec::new();
    let main = if args.find_max {
        let mut best: Option<Period> = None;
        let mut fail: Option<u64> = None;
        let measure = |rate: u64, driver: &mut Driver, bar: &mut ProgressLine| {
            bar.label(format!("rate {rate}/s"));
            let r = driver.run_period(rate, duration, u64::MAX, &STOP, &mut |p| bar.update(p));
            bar.finish();
            let r = r.map(|stats| Period { rate, stats });
            // A server that just failed a rung may still be working off its backlog: give it
            // longer before the next one.
            let failed = r.as_ref().is_ok_and(|p| !p.passed(args.max_drops));
            let pause = if failed {
                args.pause_ms.max(3000)
            } else {
                args.pause_ms
            };
            std::thread::sleep(Duration::from_millis(pause));
            r
        };
        for rate in ladder(args.rate, args.factor, args.max_rate) {
            if STOP.load(Ordering::Relaxed) {
                break;
            }
            let p = measure(rate, &mut driver, &mut bar).map_err(|e| error_chain(&e))?;
            rungs.push(p.clone());
            if p.passed(args.max_drops) {
                best = Some(p);
            } else {
                fail = Some(rate);
                break;
            }
        }
        if let (Some(mut hi), true) = (fail, best.is_some()) {
            for _ in 0..args.bisect {
                let lo = best.as_ref().map_or(0, |b| b.rate);
                let mid = lo + (hi - lo) / 2;
                if mid <= lo || STOP.load(Ordering::Relaxed) {
                    break;
                }
                let p = measure(mid, &mut driver, &mut bar).map_err(|e| error_chain(&e))?;
                rungs.push(p.clone());
                if p.passed(args.max_drops) {
                    best = Some(p);
                } else {
                    hi = mid;
                }
            }
        }
        best
    } else {
        bar.label(format!("rate {}/s", args.rate));
        let stats = driver
            .run_period(args.rate, duration, u64::MAX, &STOP, &mut |p| bar.update(p))
            .map_err(|e| error_chain(&e))?;
        bar.finish();
        Some(Period {
            rate: args.rate,
            stats,
        })
    };
    let sc = driver.scenario();
    let totals = Totals {
        duplicates: sc.unique.duplicates(),
        examples: sc.unique.examples().to_vec(),
        leases_held: sc.unique.held(),
        bound: sc.bound(),
        bytes_per_client: Scenario::bytes_per_client(),
        unique_bytes: sc.unique.memory_bytes(),
        servers_seen: driver.servers_seen(),
        socket_drops: driver.socket_drops(),
        max_rss: report::max_rss(),
    };
    if !args.json {
        print!(
            "{}",
            report::table(&info, main.as_ref(), &rungs, args.max_drops, &totals)
        );
    }
    println!(
        "{}",
        report::json_line(&info, main.as_ref(), &rungs, args.max_drops, &totals)
    );
    Ok(totals.duplicates == 0)
}

/// `e` and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("twinlease_bench: needs root (XDP program, AF_XDP sockets)");
        return ExitCode::FAILURE;
    }
    if let Some(ns) = &args.netns
        && let Err(e) = enter_netns(ns)
    {
        eprintln!("twinlease_bench: {e}");
        return ExitCode::FAILURE;
    }
    install_signal_handlers();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("twinlease_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_climbs_by_the_factor_to_the_cap() {
        assert_eq!(ladder(1000, 2.0, 10_000), vec![1000, 2000, 4000, 8000]);
        assert_eq!(ladder(1, 1.0, 4), vec![1, 2, 3, 4]);
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01").unwrap(),
            [2, 0, 0x0a, 0xff, 0, 1]
        );
        assert!(parse_mac("02:00").is_err());
    }
}
