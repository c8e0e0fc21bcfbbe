//! Overload: a DISCOVER flood far above what the server answers, while clients holding a
//! lease renew. Over loopback, no root: the renewing clients sit behind a relay agent at
//! giaddr 127.0.0.1, the flood comes from "relay" 127.0.0.2 (its OFFERs go to a socket that is
//! never read). The server is the `twinlease` binary, so its memory is its own
//! (`/proc/<pid>/status` `VmHWM`).
//!
//! Checks that renewals (DHCPREQUEST with `ciaddr`, RFC 2131 §4.3.2 RENEWING) are still
//! answered during a flood at ten times the server's capacity: the kernel puts them in the
//! priority socket's receive buffer (`SO_REUSEPORT` with a classic BPF program), apart from
//! the DISCOVERs overflowing the normal socket's, and the workers take them from the priority
//! ring first. Also that the server's peak memory stays bounded (the rings are bounded).
//! Prints the figures, those of the unpaced flood included.

#![expect(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation,
    clippy::float_cmp,
    reason = "rates and counters here are far below 2^52 and exact in f64"
)]

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use twinlease::control::client::Client;
use twinlease::wire::v4::{MessageType, ReplyHeader, ReplyWriter, opt};

#[expect(dead_code, reason = "shared helpers; this test uses some of them")]
mod common;
use common::{Proc, Relay};

/// Clients holding a lease, renewing during the flood.
const RENEWERS: u32 = 50;
/// Renewals sent per second in total.
const RENEW_RATE: u64 = 500;
/// Distinct flooding clients (so the pool is never exhausted: their offers are re-used).
const FLOOD_CLIENTS: u32 = 4096;
const FLOOD_GIADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, port: u16, relay_port: u16, control_port: u16) -> String {
    format!(
        r#"[server]
data-dir = "{}"
workers = 1
durability = "fsync"
listen = ["127.0.0.1:{port}"]
relay-port = {relay_port}
[[subnet4]]
id = 7
subnet = "198.18.0.0/16"
relay-addresses = ["127.0.0.1", "127.0.0.2"]
lease-time = 3600
[[subnet4.pool]]
range = "198.18.1.0-198.18.40.255"
[control]
listen = "127.0.0.1:{control_port}"
"#,
        dir.display()
    )
}

/// `VmHWM` (peak resident set) of a process, KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A counter of the server's Prometheus text (summed over label sets matching `filter`).
fn metric_sum(api: &Client, name: &str, filter: &str) -> f64 {
    let (status, body) = api.request("GET", "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// A DHCPDISCOVER relayed by [`FLOOD_GIADDR`], its chaddr at 28..34 and xid at 4..8 to patch.
fn discover_template() -> Vec<u8> {
    let hdr = ReplyHeader {
        op: 1,
        htype: 1,
        hlen: 6,
        hops: 1,
        xid: 0,
        secs: 0,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: FLOOD_GIADDR,
        chaddr: [0x02, 0x66, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    let mut buf = [0u8; 600];
    let mut w = ReplyWriter::new(&mut buf, &hdr).unwrap();
    w.option_u8(opt::MESSAGE_TYPE, MessageType::Discover as u8)
        .unwrap();
    w.option(opt::PRL, &[1, 3, 6]).unwrap();
    let n = w.finish();
    buf[..n].to_vec()
}

/// DISCOVERs per `sendmmsg` of a flooder.
const FLOOD_BATCH: usize = 64;

/// Send DISCOVERs until `stop`, at `rate` per second (0: as fast as one thread can), in
/// batches of [`FLOOD_BATCH`] per `sendmmsg` (a send per datagram could not outrun the server
/// tenfold on a small host); counts them in `sent`.
fn flood(server: SocketAddrV4, rate: u64, stop: &AtomicBool, sent: &AtomicU64) {
    let sock = UdpSocket::bind(SocketAddrV4::new(FLOOD_GIADDR, 0)).unwrap();
    sock.connect(server).unwrap();
    let template = discover_template();
    let mut pkts = vec![template; FLOOD_BATCH];
    let mut i: u32 = 0;
    let start = Instant::now();
    let mut total = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if rate > 0 && total as f64 >= start.elapsed().as_secs_f64() * rate as f64 {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        for pkt in &mut pkts {
            i = i.wrapping_add(1);
            let c = i % FLOOD_CLIENTS;
            pkt[4..8].copy_from_slice(&i.to_be_bytes());
            pkt[30..34].copy_from_slice(&c.to_be_bytes());
        }
        let mut iov: Vec<libc::iovec> = pkts
            .iter_mut()
            .map(|p| libc::iovec {
                iov_base: p.as_mut_ptr().cast(),
                iov_len: p.len(),
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // Safety: all-zero is a valid msghdr (no name, no control data).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = v;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // Safety: every header points at one live iovec over a live packet buffer; the socket
        // is connected, so no destination is needed.
        let r = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                FLOOD_BATCH as libc::c_uint,
                0,
            )
        };
        total += FLOOD_BATCH as u64;
        sent.fetch_add(u64::try_from(r).unwrap_or(0), Ordering::Relaxed);
    }
}

/// What one renewal window measured.
#[derive(Debug, Clone, Copy)]
struct Renewals {
    sent: u64,
    answered: u64,
    secs: f64,
}

impl Renewals {
    fn ratio(&self) -> f64 {
        self.answered as f64 / self.sent.max(1) as f64
    }
    fn answered_per_sec(&self) -> f64 {
        self.answered as f64 / self.secs
    }
}

/// Renew at [`RENEW_RATE`] for `secs`, one xid per renewal, then wait a second for late
/// replies; how many got a DHCPACK.
fn renew_for(relay: &Relay, addrs: &[(u32, Ipv4Addr)], secs: u64, epoch: u32) -> Renewals {
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let done = Arc::new(AtomicBool::new(false));
    let rx = relay.sock.try_clone().unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let reader = {
        let acked = Arc::clone(&acked);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !done.load(Ordering::Relaxed) {
                let Ok((n, _)) = rx.recv_from(&mut buf) else {
                    continue;
                };
                // op 2, message type ACK (option 53 = 5) somewhere in the options.
                if n > 240 && buf[0] == 2 && buf[240..n].windows(3).any(|w| w == [53, 1, 5]) {
                    let xid = u32::from_be_bytes(buf[4..8].try_into().unwrap());
                    acked.lock().unwrap().insert(xid);
                }
            }
        })
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut k = 0usize;
    while start.elapsed() < Duration::from_secs(secs) {
        // Keep pace: renewals due by now.
        let due = (start.elapsed().as_secs_f64() * RENEW_RATE as f64) as u64;
        while sent < due {
            let (i, a) = addrs[k % addrs.len()];
            k += 1;
            let xid = (epoch << 24) | (sent as u32 & 0xff_ffff);
            relay.send(MessageType::Request, i, xid, a, None, None);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs_f = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let answered = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|x| **x >> 24 == epoch)
        .count() as u64;
    Renewals {
        sent,
        answered,
        secs: secs_f,
    }
}

/// What one flood measured.
#[derive(Debug)]
struct Storm {
    flood_per_sec: f64,
    received_per_sec: f64,
    offers_per_sec: f64,
    renewals: Renewals,
    /// Renewals (DHCPREQUEST) the worker handled.
    renewals_in: f64,
    /// Datagrams read from the priority socket.
    received_priority: f64,
    ring_full: f64,
    ring_full_prio: f64,
    stale: f64,
}

/// Flood with `flooders` threads at `rate` in total (0: unpaced) while renewing for 5 s.
fn storm(api: &Client, relay: &Relay, addrs: &[(u32, Ipv4Addr)], rate: u64, epoch: u32) -> Storm {
    let flooders = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let floods: Vec<_> = (0..flooders)
        .map(|_| {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            let to = relay.server;
            std::thread::spawn(move || flood(to, rate / flooders, &stop, &sent))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let counters = || {
        (
            metric_sum(api, "twinlease_replies_total", "type=\"offer\""),
            metric_sum(api, "twinlease_packets_received_total", "socket"),
            metric_sum(api, "twinlease_requests_total", "type=\"request\""),
            metric_sum(api, "twinlease_drops_total", "reason=\"ring_full\""),
            metric_sum(
                api,
                "twinlease_drops_total",
                "reason=\"ring_full_priority\"",
            ),
            metric_sum(api, "twinlease_drops_total", "reason=\"stale\""),
            metric_sum(api, "twinlease_priority_packets_received_total", ""),
        )
    };
    let c0 = counters();
    let sent0 = sent.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let renewals = renew_for(relay, addrs, 5, epoch);
    // renew_for waited a second after its last renewal: the flood ran all along.
    let secs = t0.elapsed().as_secs_f64();
    let flooded = sent.load(Ordering::Relaxed) - sent0;
    let c1 = counters();
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    Storm {
        flood_per_sec: flooded as f64 / secs,
        received_per_sec: (c1.1 - c0.1) / secs,
        offers_per_sec: (c1.0 - c0.0) / secs,
        renewals,
        renewals_in: c1.2 - c0.2,
        ring_full: c1.3 - c0.3,
        ring_full_prio: c1.4 - c0.4,
        stale: c1.5 - c0.5,
        received_priority: c1.6 - c0.6,
    }
}

#[test]
fn renewals_are_answered_during_a_discover_flood() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::new(free_udp_port());
    // The flood's OFFERs land here, unread (the kernel drops them when the buffer is full).
    let _sink = UdpSocket::bind(SocketAddrV4::new(FLOOD_GIADDR, relay.port())).unwrap();
    let control = free_tcp_port();
    let cfg = dir.path().join("storm.toml");
    std::fs::write(
        &cfg,
        config(
            &dir.path().join("data"),
            relay.server.port(),
            relay.port(),
            control,
        ),
    )
    .unwrap();
    let server = Proc(
        Command::new(env!("CARGO_BIN_EXE_twinlease"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("TWINLEASE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let pid = server.id();
    let end = Instant::now() + Duration::from_secs(10);
    let mut addrs = Vec::new();
    for i in 0..RENEWERS {
        loop {
            if let Some(a) = relay.dora(i) {
                addrs.push((i, a));
                break;
            }
            assert!(Instant::now() < end, "server did not answer within 10 s");
        }
    }
    let api = Client::new(&format!("http://127.0.0.1:{control}"), None).unwrap();

    // Unloaded.
    let calm = renew_for(&relay, &addrs, 3, 1);
    let hwm_before = vm_hwm_kib(pid);

    // Saturated: the most the flooders send; the server's OFFER rate is its capacity.
    let max = storm(&api, &relay, &addrs, 0, 2);
    let capacity = max.offers_per_sec;
    // A reboot storm: ten times that capacity.
    let paced = storm(&api, &relay, &addrs, (10.0 * capacity) as u64, 3);
    let hwm_after = vm_hwm_kib(pid);
    for (what, s) in [("max", &max), ("paced", &paced)] {
        eprintln!(
            "{what}: {:.0} DISCOVER/s offered ({:.1}x the {capacity:.0} OFFER/s capacity), \
             {:.0}/s received by the server; renewals {}/{} answered ({:.0}/s, {:.1} %), \
             {}/{} of those that reached the worker, {:.0} read from the priority socket; \
             ring_full {:.0} (priority {:.0}), stale {:.0}",
            s.flood_per_sec,
            s.flood_per_sec / capacity.max(1.0),
            s.received_per_sec,
            s.renewals.answered,
            s.renewals.sent,
            s.renewals.answered_per_sec(),
            100.0 * s.renewals.ratio(),
            s.renewals.answered,
            s.renewals_in,
            s.received_priority,
            s.ring_full,
            s.ring_full_prio,
            s.stale,
        );
    }
    eprintln!(
        "unloaded: {}/{} renewals answered ({:.0}/s); VmHWM {hwm_before} KiB -> {hwm_after} KiB",
        calm.answered,
        calm.sent,
        calm.answered_per_sec()
    );
    assert!(calm.ratio() >= 0.99, "unloaded: {calm:?}");
    assert!(
        max.flood_per_sec > 5.0 * capacity,
        "the flood did not overload the server: {max:?}"
    );
    // Whatever the kernel delivers of the renewals is answered, even at the full flood.
    for s in [&max, &paced] {
        assert_eq!(s.ring_full_prio, 0.0, "{s:?}");
        assert!(
            s.renewals.answered as f64 >= 0.99 * s.renewals_in,
            "renewals reaching the worker not answered: {s:?}"
        );
    }
    assert!(
        paced.flood_per_sec > 2.0 * capacity,
        "the paced flood did not overload the worker: {paced:?}"
    );
    // The renewals have a receive buffer of their own: the flood overflowing the other one
    // does not take them with it, at ten times the capacity nor at the full flood (beyond
    // what the receive loop reads: with one socket, most renewals were lost there).
    for (what, s) in [("at 10x capacity", &paced), ("at the full flood", &max)] {
        assert!(
            s.renewals.ratio() >= 0.9,
            "only {:.1} % of renewals answered {what}: {s:?}",
            100.0 * s.renewals.ratio()
        );
        assert!(
            s.received_priority >= s.renewals.sent as f64 * 0.9,
            "the renewals did not come through the priority socket {what}: {s:?}"
        );
    }
    // Rings are bounded: 2 × 4096 jobs of ~1.6 KiB per worker at most, plus socket buffers.
    assert!(
        hwm_after < hwm_before + 64 * 1024,
        "peak memory grew from {hwm_before} KiB to {hwm_after} KiB"
    );
}
