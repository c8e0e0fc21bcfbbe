//! Hardening of the failover partner channel (draft-ietf-dhc-failover-12 §8), end to end on
//! the failover bench ([`twinlease_tests::failover`]): connections from addresses other than
//! the peer's are refused while the server keeps serving; malformed frames from the peer's
//! address reset the connection without harm, and the real partner connects afterwards; a
//! flood of BNDUPDs from a fake peer leaves the server's memory bounded.
//!
//! The fake peer is this test process, run on a thread moved into a server namespace
//! (`setns`), so it holds the partner address of that side; its messages are written with
//! the typed writers of `twinlease::wire::failover`. Every test skips without root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use twinlease::wire::failover::{
    BindingStatus, BindingUpdate, Connect, MAX_MESSAGE_LEN, Message, PROTOCOL_VERSION, Packet,
    ServerState, StateMsg, frame_len,
};
use twinlease_tests::clients::udhcpc_once;
use twinlease_tests::failover::{FailoverLab, FailoverParams, PairWait, Side, unix_now};
use twinlease_tests::netns::Netns;
use twinlease_tests::topology::CLIENT_IF;
use twinlease_tests::{Error, Result, require_programs, require_root};

/// How the tests wait for the pair to reach NORMAL: reaching it from a fresh start may
/// include RECOVER-WAIT, one MCLT; roles and name are not checked.
const PAIR_WAIT: PairWait<'static> = PairWait {
    normal: Duration::from_secs(40),
    partner: Duration::from_secs(10),
    relationship: None,
};

/// Run `f` on a thread inside the network namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
) -> Result<T> {
    let path = format!("/run/netns/{}", ns.name());
    let joined = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        // Safety: setns(2) with a valid namespace fd; it moves only this thread, which ends
        // with `f`.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        f()
    })
    .join();
    match joined {
        Ok(r) => r.map_err(Error),
        Err(_) => Err(Error("the namespace thread panicked".into())),
    }
}

/// The pid of the twinlease process in `ns`.
fn server_pid(ns: &Netns) -> Result<u32> {
    let out = twinlease_tests::netns::ip(&["netns", "pids", ns.name()])?;
    out.split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "twinlease")
        })
        .ok_or_else(|| Error(format!("no twinlease process in {}", ns.name())))
}

/// A `Vm…:` line of `/proc/<pid>/status`, in KiB.
fn vm_kib(pid: u32, key: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Error(format!("no {key} in /proc/{pid}/status")))
}

fn log_of(lab: &FailoverLab, side: Side) -> String {
    std::fs::read_to_string(lab.side_dir(side).join("twinlease.log")).unwrap_or_default()
}

fn peer_port(side: Side) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        side.partner_addr(),
        FailoverParams::default().port,
    ))
}

/// Connect (retrying while the server is not yet listening) to `to` from the namespace the
/// calling thread is in.
fn connect(to: SocketAddr) -> std::result::Result<TcpStream, String> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= end => return Err(format!("connect {to}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Read until the server closes the connection (EOF or reset); the bytes it sent first.
fn until_closed(s: &mut TcpStream, timeout: Duration) -> std::result::Result<Vec<u8>, String> {
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("the server kept the connection open: {e}")),
        }
    }
}

#[test]
fn connection_from_a_non_peer_address_is_refused() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["udhcpc", "ip"])?;
    let mut lab = FailoverLab::new(1)?;
    let r = non_peer_body(&mut lab);
    lab.finish(r)
}

fn non_peer_body(lab: &mut FailoverLab) -> Result<()> {
    lab.start_pair(&FailoverParams::default(), 60, &PAIR_WAIT)?;
    // From s1's own namespace the source address is s1's (192.0.2.1), not its peer's: every
    // connection is accepted by the kernel, then closed by the server without a byte.
    let to = peer_port(Side::S1);
    let tries = 20;
    let sent = in_netns(lab.topo().server(Side::S1), move || {
        let mut unread = 0;
        for _ in 0..tries {
            let mut s = connect(to)?;
            let connect = [0u8; 12];
            let _ = s.write_all(&connect);
            let got = until_closed(&mut s, Duration::from_secs(5))?;
            if !got.is_empty() {
                return Err(format!("the server answered a non-peer: {got:?}"));
            }
            unread += 1;
        }
        Ok(unread)
    })?;
    assert_eq!(sent, tries);
    let log = log_of(lab, Side::S1);
    assert!(
        log.contains("refused a connection from an address that is not the peer's"),
        "no refusal logged:\n{log}"
    );
    // The relationship and the DHCP service are untouched.
    let r = lab.relationship(Side::S1)?;
    assert!(r.connected && r.state == "normal", "{r:?}");
    let run = udhcpc_once(lab.topo().client(0), CLIENT_IF, 5, &[])?;
    assert_eq!(
        run.code,
        Some(0),
        "no lease after the refusals:\n{}",
        run.output
    );
    assert!(lab.is_running(Side::S1));
    Ok(())
}

#[test]
fn malformed_frames_from_the_peer_address_reset_then_the_partner_connects() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["ip"])?;
    let mut lab = FailoverLab::new(1)?;
    let r = malformed_body(&mut lab);
    lab.finish(r)
}

fn malformed_body(lab: &mut FailoverLab) -> Result<()> {
    lab.write_pair(&FailoverParams::default(), 60)?;
    // Only the secondary runs; the fake primary holds 192.0.2.1 in s1's namespace.
    lab.start(Side::S2)?;
    let to = peer_port(Side::S2);
    let closed = in_netns(lab.topo().server(Side::S1), move || {
        let mut closed = Vec::new();
        // A length below the 12-byte header (draft-12 §6.1).
        let mut short = vec![0u8; 12];
        short[..2].copy_from_slice(&5u16.to_be_bytes());
        // A payload offset beyond the message.
        let mut offset = vec![0u8; 100];
        offset[..2].copy_from_slice(&100u16.to_be_bytes());
        offset[2] = 3;
        offset[3] = 200;
        // Pseudo-random garbage whose first word is a short length.
        let mut x = 0x9e37_79b9_u32;
        let mut junk: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        junk[..2].copy_from_slice(&7u16.to_be_bytes());
        for (name, frame) in [
            ("short length", short),
            ("bad offset", offset),
            ("junk", junk),
        ] {
            let mut s = connect(to)?;
            s.write_all(&frame).map_err(|e| format!("{name}: {e}"))?;
            until_closed(&mut s, Duration::from_secs(10)).map_err(|e| format!("{name}: {e}"))?;
            closed.push(name);
        }
        // The largest message the length field can announce, full of garbage: read whole,
        // then dropped by the message checks or the partner thread; it must not kill the
        // server.
        let mut s = connect(to)?;
        let mut big = vec![0xa5u8; 65535];
        big[..2].copy_from_slice(&65535u16.to_be_bytes());
        big[2] = 0x77;
        big[3] = 12;
        let _ = s.write_all(&big);
        let _ = until_closed(&mut s, Duration::from_secs(3));
        Ok(closed)
    })?;
    assert_eq!(closed.len(), 3);
    assert!(lab.is_running(Side::S2), "the secondary died on garbage");
    let log = log_of(lab, Side::S2);
    assert!(
        log.matches("failover: malformed message").count() >= 3,
        "malformed frames not logged:\n{log}"
    );
    // The real primary starts: the pair reaches NORMAL over the same channel.
    lab.start(Side::S1)?;
    lab.wait_pair_normal(&PAIR_WAIT)
}

/// A fast peer that keeps to the max-unacked-BNDUPD window it was given (draft-12 §7.1).
#[test]
fn bndupd_flood_within_the_window_keeps_memory_bounded() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["ip"])?;
    let mut lab = FailoverLab::new(1)?;
    let r = flood_body(&mut lab, Some(100));
    lab.finish(r)
}

/// A misbehaving peer that ignores the window and writes BNDUPDs as fast as TCP takes them.
#[test]
fn bndupd_flood_ignoring_the_window_keeps_memory_bounded() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["ip"])?;
    let mut lab = FailoverLab::new(1)?;
    let r = flood_body(&mut lab, None);
    lab.finish(r)
}

/// Write one message with `write(time, xid, out)`.
fn send(
    s: &mut TcpStream,
    xid: &mut u32,
    write: impl FnOnce(u32, u32, &mut [u8]) -> usize,
) -> std::result::Result<(), String> {
    let mut out = [0u8; MAX_MESSAGE_LEN];
    *xid += 1;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "unix time fits u32 until 2106"
    )]
    let n = write(unix_now() as u32, *xid, &mut out);
    s.write_all(&out[..n]).map_err(|e| e.to_string())
}

/// Read one whole message (bounded wait).
fn recv(s: &mut TcpStream) -> std::result::Result<Vec<u8>, String> {
    let mut msg = vec![0u8; 2];
    s.read_exact(&mut msg).map_err(|e| format!("read: {e}"))?;
    let len = frame_len(&msg).ok_or("length")?;
    if len < 12 {
        return Err(format!("length {len}"));
    }
    msg.resize(len, 0);
    s.read_exact(&mut msg[2..])
        .map_err(|e| format!("read: {e}"))?;
    Ok(msg)
}

/// Flood the secondary with BNDUPDs for its pool's addresses for `TWINLEASE_FLOOD_SECS`
/// (default 15) seconds from a fake primary, keeping at most `window` unacknowledged when
/// given; then check its memory.
#[expect(clippy::too_many_lines, reason = "one scenario")]
#[expect(
    clippy::many_single_char_names,
    reason = "short-lived message and socket names"
)]
fn flood_body(lab: &mut FailoverLab, window: Option<u64>) -> Result<()> {
    let params = FailoverParams::default();
    lab.write_pair(&params, 60)?;
    lab.start(Side::S2)?;
    let pid = server_pid(lab.topo().server(Side::S2))?;
    let (lo, hi) = lab.pool();
    let to = peer_port(Side::S2);
    let name = params.name.clone();
    let mclt = params.mclt;
    let acks = Arc::new(AtomicU64::new(0));
    let acks2 = Arc::clone(&acks);
    let baseline = Arc::new(AtomicU64::new(0));
    let baseline2 = Arc::clone(&baseline);
    let flood_secs: u64 = std::env::var("TWINLEASE_FLOOD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let acks3 = Arc::clone(&acks);
    let sent = in_netns(lab.topo().server(Side::S1), move || {
        let mut s = connect(to)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut xid = 0u32;
        // draft-12 §7.8: the primary opens with CONNECT, the secondary answers CONNECTACK
        // and STATE.
        let mut hba = [0u8; 32];
        hba[..16].fill(0xff);
        let c = Connect {
            relationship: name.as_bytes(),
            max_unacked: 100,
            receive_timer: 60,
            vendor: b"twinlease-test",
            protocol_version: PROTOCOL_VERSION,
            tls_request: Some(0),
            mclt: Some(mclt),
            hba: Some(hba),
        };
        send(&mut s, &mut xid, |t, x, o| c.write(t, x, o).unwrap())?;
        let mut acked = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !acked && Instant::now() < deadline {
            let m = recv(&mut s)?;
            let p = Packet::new_checked(&m[..]).map_err(|e| e.to_string())?;
            if let Ok(Message::ConnectAck(a)) = Message::parse(&p) {
                if a.reject.is_some() {
                    return Err(format!("CONNECT rejected: {a:?}"));
                }
                acked = true;
            }
        }
        if !acked {
            return Err("no CONNECTACK".into());
        }
        #[expect(
            clippy::cast_possible_truncation,
            reason = "unix time fits u32 until 2106"
        )]
        let stos = unix_now() as u32;
        send(&mut s, &mut xid, |t, x, o| {
            StateMsg {
                state: ServerState::Normal,
                flags: 0,
                start_time: stos,
            }
            .write(t, x, o)
            .unwrap()
        })?;
        // The reader drains whatever the server sends and counts its BNDACKs.
        let mut rd = s.try_clone().map_err(|e| e.to_string())?;
        let reader = std::thread::spawn(move || {
            let _ = rd.set_read_timeout(Some(Duration::from_secs(30)));
            while let Ok(m) = recv(&mut rd) {
                if Packet::new_checked(&m[..])
                    .ok()
                    .and_then(|p| p.message_type().ok())
                    == Some(twinlease::wire::failover::MessageType::BndAck)
                {
                    acks2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Give the secondary a moment to settle, then note its memory.
        std::thread::sleep(Duration::from_secs(2));
        baseline2.store(vm_kib(pid, "VmRSS").map_err(|e| e.0)?, Ordering::Relaxed);
        // As fast as TCP takes them: BNDUPDs for every pool address, round after round,
        // ignoring max-unacked-BNDUPD (a misbehaving peer).
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        let end = Instant::now() + Duration::from_secs(flood_secs);
        let mut n = 0u64;
        let mut a = lo;
        let mut buf = Vec::with_capacity(64 * 1024);
        let burst = window.unwrap_or(200);
        while Instant::now() < end {
            if let Some(w) = window
                && n >= acks3.load(Ordering::Relaxed) + w
            {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            buf.clear();
            let room = window.map_or(burst, |w| w + acks3.load(Ordering::Relaxed) - n);
            for _ in 0..room.min(burst) {
                let addr = Ipv4Addr::from(a);
                a = if a >= hi { lo } else { a + 1 };
                let mac = [2, 0x66, 0, 0, (n >> 8) as u8, n as u8];
                #[expect(clippy::cast_possible_truncation, reason = "unix time fits u32")]
                let now = unix_now() as u32;
                let u = BindingUpdate {
                    addr,
                    status: BindingStatus::Active,
                    client_id: None,
                    chaddr: Some((1, &mac)),
                    lease_expiry: Some(now + 600),
                    potential_expiry: Some(now + 1200),
                    cltt: Some(now),
                    start_time_of_state: Some(now),
                    ip_flags: None,
                };
                let mut out = [0u8; MAX_MESSAGE_LEN];
                xid += 1;
                let k = u.write(now, xid, &mut out).map_err(|e| e.to_string())?;
                buf.extend_from_slice(&out[..k]);
                n += 1;
            }
            if s.write_all(&buf).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        let _ = s.shutdown(std::net::Shutdown::Both);
        let _ = reader.join();
        Ok(n)
    })?;
    let base = baseline.load(Ordering::Relaxed);
    let rss = vm_kib(pid, "VmRSS")?;
    let hwm = vm_kib(pid, "VmHWM")?;
    let rate = sent / flood_secs;
    let acked = acks.load(Ordering::Relaxed);
    println!(
        "BNDUPD flood (window {window:?}): {sent} sent ({rate}/s), {acked} BNDACKs; VmRSS \
         {base} KiB before, {rss} KiB after, VmHWM {hwm} KiB"
    );
    assert!(
        lab.is_running(Side::S2),
        "the secondary died under the flood"
    );
    if window.is_none() {
        // draft-12 §7.1: a partner sending more BNDUPDs ahead of their BNDACKs than the
        // receiver's max-unacked-BNDUPD is dropped, before its flood can be buffered.
        let logs = lab.logs();
        assert!(
            logs.contains("more binding updates than max-unacked-updates allows"),
            "the flooding peer was not dropped:\n{logs}"
        );
    } else {
        assert!(
            acked >= 1000,
            "the secondary processed almost nothing: {acked} BNDACKs"
        );
        assert!(
            acked + 100 >= sent,
            "{sent} sent, {acked} acked: the window was not kept"
        );
    }
    let _ = rate;
    // The pool has a few hundred addresses: the store does not grow with the flood; the
    // pipeline's queues are bounded. 64 MiB of slack covers allocator noise.
    assert!(
        hwm < base + 64 * 1024,
        "memory grew with the flood: VmHWM {hwm} KiB, {base} KiB before"
    );
    // The server still answers its control API.
    lab.relationship(Side::S2)?;
    Ok(())
}
