//! Raw path cost of the server's XDP path: packets per second one worker moves through
//! XDP → `AF_XDP` socket → ring → worker → `AF_XDP` TX on a veth (root).
//!
//! Builds a server namespace and a client namespace joined by one veth (`s0`/`c0`, one queue),
//! starts the release `twinlease` in the server namespace with `io = "xdp"`, `workers` (default
//! 1), a pool of about 16.7 M addresses (10.1.0.0-10.255.255.250 on 10.0.0.0/8, addresses that
//! exist only inside the namespaces), a short offer hold and the given durability. In the client
//! namespace an `AF_XDP` generator (as `xsk_echo`'s) transmits prebuilt broadcast DHCPDISCOVER
//! frames (UDP 68→67), each with its own chaddr, Ethernet source, client-id and xid, as fast as
//! it can (or at `--rate`) for `--seconds`. Every DISCOVER is a new client and asks for a new
//! OFFER; the OFFERs go to the client's (unowned) hardware address, so `c0` counts them in
//! `rx_packets` and its kernel drops them early.
//!
//! Reported: frames `c0` transmitted, frames the XDP program redirected, the server's
//! `received_xdp`, `ring_full`, `reply_offer` and `sent_xdp` (from its shutdown log), replies
//! counted on `c0`, all per second of generation, and the server's CPU seconds (user + system
//! from `/proc/PID/stat`) per 100 000 replies. A table, then one JSON line.
//!
//! ```text
//! cargo run --release -p twinlease-bench --bin xdp_path_bench -- --seconds 5 --durability none
//! ```

#![expect(
    clippy::cast_precision_loss,
    reason = "packet rates for human-readable output"
)]

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use twinlease::io::xdp::frame::{EthHeader, build_udp4_reply};
use twinlease::io::xdp::umem::{Umem, UmemConfig};
use twinlease::io::xdp::xsk::{BindPreference, Desc, XskConfig, XskSocket};
use twinlease_tests::netns::Netns;
use twinlease_tests::topology::{CLIENT_IF, Ipv4Net, SERVER_IF, Topology};
use twinlease_tests::twinlease::{Twinlease, TwinleaseConfig, release_binary};

/// Durability of the server's lease records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Durability {
    /// No fsync.
    None,
    /// fdatasync per batch.
    Fsync,
}

impl Durability {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fsync => "fsync",
        }
    }
}

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "twinlease XDP path: DISCOVER→OFFER packets/s through one worker")]
struct Args {
    /// Generation time, seconds (1..=120).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Server workers.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Server durability.
    #[arg(long, value_enum, default_value_t = Durability::None)]
    durability: Durability,
    /// Generator rate limit in frames/s (0: as fast as it can).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Generator descriptors per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// CPU the generator thread is pinned to.
    #[arg(long, default_value_t = 1)]
    gen_cpu: usize,
    /// Server `offer-hold-secs`.
    #[arg(long, default_value_t = 2)]
    offer_hold: u32,
}

/// Set by SIGINT/SIGTERM/SIGHUP: stop early, but still clean up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // Safety: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler) };
    }
}

fn interrupted() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Move the calling thread into namespace `ns` and onto CPU `cpu`.
fn enter(ns: &str, cpu: usize) -> Result<(), String> {
    let f = File::open(format!("/run/netns/{ns}")).map_err(|e| e.to_string())?;
    // Safety: f is an open namespace file; setns affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns: {}", std::io::Error::last_os_error()));
    }
    // Safety: a zeroed cpu_set_t is empty; CPU_SET writes inside it; pid 0 = this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
    }
    Ok(())
}

fn ifindex(name: &str) -> Result<u32, String> {
    let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // Safety: c is NUL-terminated.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(format!("no interface {name}")),
        i => Ok(i),
    }
}

/// Offsets in the generated frame (untagged Ethernet, IPv4 without options, UDP).
const ETH_SRC: usize = 6;
const UDP_CSUM: usize = 14 + 20 + 6;
const DHCP: usize = 14 + 20 + 8;
const XID: usize = DHCP + 4;
const CHADDR: usize = DHCP + 28;
/// The 6 hardware-address bytes of option 61 (53/1/1, then 61/7/type 1).
const CLIENT_ID_MAC: usize = DHCP + 240 + 3 + 3;

/// A DHCPDISCOVER (RFC 2131 §2, RFC 2132) from `mac`, padded to the BOOTP minimum of 300
/// bytes; the broadcast flag is clear, so the OFFER goes to `mac` at the link layer.
fn discover(mac: [u8; 6]) -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6;
    m[28..34].copy_from_slice(&mac);
    m[236..240].copy_from_slice(&[99, 130, 83, 99]);
    m.extend_from_slice(&[53, 1, 1, 61, 7, 1]);
    m.extend_from_slice(&mac);
    m.extend_from_slice(&[55, 4, 1, 3, 6, 51, 255]);
    m.resize(300, 0);
    m
}

/// The hardware address of generated client `n`: locally administered, unicast.
fn client_mac(n: u64) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// What the generator did.
struct GenResult {
    submitted: u64,
    elapsed: Duration,
}

fn generate(
    ns: &str,
    args: &Args,
    started: &AtomicBool,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<GenResult, String> {
    enter(ns, args.gen_cpu)?;
    let umem = Umem::new(UmemConfig {
        frame_count: 8192,
        frame_size: 2048,
        fill_size: 4096,
        comp_size: 4096,
    })
    .map_err(|e| e.to_string())?;
    let config = XskConfig {
        rx_size: 2048,
        tx_size: 2048,
        bind: BindPreference::Auto,
        need_wakeup: true,
    };
    let mut xsk = XskSocket::new(ifindex(CLIENT_IF)?, 0, umem, &config)
        .map_err(|e| format!("generator socket: {e}"))?;
    let first = client_mac(0);
    let eth = EthHeader {
        dst_mac: [0xff; 6],
        src_mac: first,
        vlans: [None, None],
    };
    let mut proto = [0u8; 2048];
    let len = build_udp4_reply(
        &mut proto,
        &eth,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        &discover(first),
    )
    .map_err(|e| e.to_string())?;
    // RFC 768: checksum 0 means "none" over IPv4, so the per-frame fields need no update.
    proto[UDP_CSUM..UDP_CSUM + 2].fill(0);
    // Write every frame once; per send only the client fields change.
    let mut all = Vec::new();
    while let Some(slot) = xsk.tx_frame() {
        xsk.frame_mut(slot.addr)[..len].copy_from_slice(&proto[..len]);
        all.push(slot.addr);
    }
    for a in all {
        xsk.release(a);
    }
    let frame_len = u32::try_from(len).map_err(|e| e.to_string())?;
    let mut descs = Vec::with_capacity(args.batch);
    let mut total = 0u64;
    let mut next = 1u64;
    started.store(true, Ordering::Release);
    let t0 = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        xsk.complete();
        let mut want = args.batch as u64;
        if args.rate > 0 {
            let allowed = u64::try_from(t0.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .saturating_mul(args.rate)
                / 1_000_000;
            want = want.min(allowed.saturating_sub(total));
            if want == 0 {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
        }
        descs.clear();
        while (descs.len() as u64) < want {
            let Some(slot) = xsk.tx_frame() else {
                break;
            };
            let mac = client_mac(next);
            let xid = (next as u32).to_be_bytes();
            next += 1;
            let f = xsk.frame_mut(slot.addr);
            f[ETH_SRC..ETH_SRC + 6].copy_from_slice(&mac);
            f[XID..XID + 4].copy_from_slice(&xid);
            f[CHADDR..CHADDR + 6].copy_from_slice(&mac);
            f[CLIENT_ID_MAC..CLIENT_ID_MAC + 6].copy_from_slice(&mac);
            descs.push(Desc {
                addr: slot.addr,
                len: frame_len,
            });
        }
        let n = xsk.submit_tx(&descs);
        // Frames not taken are released; their client numbers are simply skipped.
        for d in &descs[n..] {
            xsk.release(d.addr);
        }
        xsk.kick_tx().map_err(|e| e.to_string())?;
        total += n as u64;
        sent.store(total, Ordering::Relaxed);
    }
    let elapsed = t0.elapsed();
    // Let the kernel send what is still queued before the socket closes.
    for _ in 0..100 {
        xsk.kick_tx().map_err(|e| e.to_string())?;
        xsk.complete();
        if xsk.tx_pending() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(GenResult {
        submitted: total,
        elapsed,
    })
}

/// RX/TX packet and drop counters of one interface.
#[derive(Debug, Clone, Copy, Default)]
struct LinkStats {
    rx_packets: u64,
    rx_dropped: u64,
    tx_packets: u64,
    tx_dropped: u64,
}

impl LinkStats {
    fn read(ns: &Netns, dev: &str) -> Result<Self, String> {
        let out = ns
            .ip(&["-s", "-j", "link", "show", "dev", dev])
            .map_err(|e| e.0)?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        let s = &v[0]["stats64"];
        let get = |dir: &str, k: &str| {
            s[dir][k]
                .as_u64()
                .ok_or_else(|| format!("no stats64.{dir}.{k} for {dev} in {out}"))
        };
        Ok(Self {
            rx_packets: get("rx", "packets")?,
            rx_dropped: get("rx", "dropped")?,
            tx_packets: get("tx", "packets")?,
            tx_dropped: get("tx", "dropped")?,
        })
    }

    fn delta(self, before: Self) -> Self {
        Self {
            rx_packets: self.rx_packets.saturating_sub(before.rx_packets),
            rx_dropped: self.rx_dropped.saturating_sub(before.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(before.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(before.tx_dropped),
        }
    }
}

/// Remove ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The numeric `key=value` fields of a log line.
fn fields(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// `outcomes={"reply_offer": 5, "x": 1}` of a log line.
fn outcomes(line: &str) -> BTreeMap<String, u64> {
    let Some(at) = line.find("outcomes={") else {
        return BTreeMap::new();
    };
    let rest = &line[at + "outcomes={".len()..];
    let body = &rest[..rest.find('}').unwrap_or(rest.len())];
    body.split(',')
        .filter_map(|e| {
            let (k, v) = e.split_once(':')?;
            Some((
                k.trim().trim_matches('"').to_owned(),
                v.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// The server's counters from its log: the `stopped` line and the `XDP counters` lines.
#[derive(Debug, Default)]
struct ServerCounters {
    stopped: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    redirected_v4: u64,
    passed: u64,
}

fn parse_log(log: &str) -> Result<ServerCounters, String> {
    let mut c = ServerCounters::default();
    let mut found = false;
    for line in strip_ansi(log).lines() {
        if line.contains("XDP counters") {
            let f = fields(line);
            c.redirected_v4 += f.get("redirected_v4").copied().unwrap_or(0);
            c.passed += f.get("passed").copied().unwrap_or(0);
        } else if line.contains("received_xdp=") && line.contains("stopped") {
            c.stopped = fields(line);
            c.outcomes = outcomes(line);
            found = true;
        }
    }
    if found {
        Ok(c)
    } else {
        Err(format!("no shutdown counters in the server log:\n{log}"))
    }
}

fn run(args: &Args) -> Result<(), String> {
    let bin = release_binary().map_err(|e| e.0)?;
    interrupted()?;
    let subnet = Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).map_err(|e| e.0)?;
    // Declared before the server, so the server is stopped before the namespaces go.
    let topo = Topology::build(1, subnet, 1).map_err(|e| e.0)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cfg = TwinleaseConfig::standard(
        &dir.path().join("data"),
        subnet,
        (Ipv4Addr::new(10, 1, 0, 0), Ipv4Addr::new(10, 255, 255, 250)),
        3600,
    );
    cfg.workers = args.workers;
    "xdp".clone_into(&mut cfg.io);
    args.durability.as_str().clone_into(&mut cfg.durability);
    cfg.offer_hold_secs = args.offer_hold;
    cfg.interfaces = vec![SERVER_IF.to_owned()];
    let conf = dir.path().join("twinlease.toml");
    cfg.write(&conf).map_err(|e| e.0)?;
    let log = dir.path().join("twinlease.log");
    let mut server = Twinlease::start(topo.srv(), &bin, &conf, &log).map_err(|e| e.0)?;
    std::thread::sleep(Duration::from_millis(300));
    interrupted()?;

    let client = topo.client(0);
    let c0_before = LinkStats::read(client, CLIENT_IF)?;
    let s0_before = LinkStats::read(topo.srv(), SERVER_IF)?;
    let cpu_before = server.cpu_seconds().ok_or("no server CPU time")?;
    let stop = AtomicBool::new(false);
    let started = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let gen_result = std::thread::scope(|s| {
        let g = s.spawn(|| generate(client.name(), args, &started, &stop, &sent));
        let setup_end = Instant::now() + Duration::from_secs(10);
        while !started.load(Ordering::Acquire) && !g.is_finished() && Instant::now() < setup_end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let end = Instant::now() + Duration::from_secs(args.seconds);
        while Instant::now() < end && !g.is_finished() && !INTERRUPTED.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        g.join()
            .unwrap_or_else(|_| Err("generator panicked".into()))
    })?;
    // Let the rings drain: replies to the last DISCOVERs are still on their way.
    std::thread::sleep(Duration::from_secs(1));
    let c0 = LinkStats::read(client, CLIENT_IF)?.delta(c0_before);
    let s0 = LinkStats::read(topo.srv(), SERVER_IF)?.delta(s0_before);
    let cpu = server.cpu_seconds().ok_or("no server CPU time")? - cpu_before;
    let alive = server.is_running();
    server.stop().map_err(|e| e.0)?;
    if !alive {
        return Err(format!("the server died during the run:\n{}", server.log()));
    }
    let sc = parse_log(&server.log())?;
    interrupted()?;

    let secs = gen_result.elapsed.as_secs_f64();
    let get = |k: &str| sc.stopped.get(k).copied().unwrap_or(0);
    let offers = sc.outcomes.get("reply_offer").copied().unwrap_or(0);
    let replies = c0.rx_packets;
    let per_100k = if replies > 0 {
        cpu * 100_000.0 / replies as f64
    } else {
        f64::NAN
    };
    let rate = |n: u64| n as f64 / secs;
    let rows: [(&str, u64, &str); 9] = [
        (
            "generator submitted",
            gen_result.submitted,
            "TX descriptors",
        ),
        ("c0 transmitted", c0.tx_packets, "veth tx_packets"),
        ("XDP redirected", sc.redirected_v4, "program counter"),
        ("server received_xdp", get("received_xdp"), "AF_XDP RX"),
        ("ring_full drops", get("ring_full"), "loop → worker ring"),
        ("reply_offer", offers, "worker outcome"),
        ("server sent_xdp", get("sent_xdp"), "AF_XDP TX"),
        ("replies at c0", replies, "veth rx_packets"),
        ("veth drops", c0.tx_dropped + s0.rx_dropped, "c0 tx + s0 rx"),
    ];
    println!(
        "xdp_path_bench: durability {}, workers {}, {secs:.2} s of generation, rate {}",
        args.durability.as_str(),
        args.workers,
        if args.rate == 0 {
            "unlimited".to_owned()
        } else {
            format!("{}/s", args.rate)
        }
    );
    println!("  {:<22} {:>12} {:>12}  source", "", "frames", "per second");
    for (name, n, src) in rows {
        println!("  {name:<22} {n:>12} {:>12.0}  {src}", rate(n));
    }
    println!(
        "  server CPU {cpu:.2} s = {per_100k:.3} s per 100 000 replies; other outcomes {:?}",
        sc.outcomes
            .iter()
            .filter(|(k, _)| k.as_str() != "reply_offer")
            .collect::<BTreeMap<_, _>>()
    );
    let json = serde_json::json!({
        "bench": "xdp_path_bench",
        "durability": args.durability.as_str(),
        "workers": args.workers,
        "seconds": secs,
        "rate_limit": args.rate,
        "generator_submitted": gen_result.submitted,
        "offered_per_s": rate(c0.tx_packets),
        "xdp_redirected": sc.redirected_v4,
        "received_xdp_per_s": rate(get("received_xdp")),
        "ring_full": get("ring_full"),
        "reply_offer": offers,
        "sent_xdp_per_s": rate(get("sent_xdp")),
        "send_failed": get("send_failed"),
        "replies": replies,
        "replies_per_s": rate(replies),
        "veth_drops": c0.tx_dropped + s0.rx_dropped,
        "server_cpu_s": cpu,
        "server_cpu_s_per_100k_replies": per_100k,
        "commits": get("commits"),
        "outcomes": sc.outcomes,
    });
    println!("{json}");
    Ok(())
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root");
        return ExitCode::SUCCESS;
    }
    args.seconds = args.seconds.clamp(1, 120);
    args.batch = args.batch.clamp(1, 1024);
    install_signal_handlers();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdp_path_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shutdown_line() {
        let log = "\u{1b}[2m2024\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m twinlease::cli: XDP counters \
                   iface=s0 queue=0 redirected_v4=10 redirected_v6=0 passed=2 malformed=0 \
                   no_socket=0\n\
                   INFO twinlease::cli: stopped received=0 sent=0 received_xdp=10 sent_xdp=9 \
                   send_failed=0 ring_full=1 commits=3 outcomes={\"reply_offer\": 9, \"x y\": 1}\n";
        let c = parse_log(log).unwrap();
        assert_eq!(c.redirected_v4, 10);
        assert_eq!(c.passed, 2);
        assert_eq!(c.stopped["received_xdp"], 10);
        assert_eq!(c.stopped["ring_full"], 1);
        assert_eq!(c.outcomes["reply_offer"], 9);
        assert_eq!(c.outcomes["x y"], 1);
    }

    #[test]
    fn discover_fields_sit_where_the_generator_writes() {
        let mac = client_mac(0x01_0203_0405);
        let m = discover(mac);
        assert_eq!(&m[CHADDR - DHCP..CHADDR - DHCP + 6], &mac);
        assert_eq!(&m[CLIENT_ID_MAC - DHCP..CLIENT_ID_MAC - DHCP + 6], &mac);
        assert_eq!(m[CLIENT_ID_MAC - DHCP - 3], 61);
        assert_eq!(m.len(), 300);
    }
}
