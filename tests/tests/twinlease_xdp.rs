//! End-to-end test of the XDP/`AF_XDP` path: a veth with 2 queues, the server with
//! `io = "xdp"`, dhclient and perfdhcp as clients. The test proves the packets came through
//! `AF_XDP` (the XDP program's counters and the server's per-path statistics, read from its
//! shutdown log), that other traffic on the same interface still reaches the kernel while the
//! program is attached, and that no program is left on the interface afterwards.

use std::net::Ipv4Addr;
use std::time::Duration;

use twinlease_tests::clients::Dhclient;
use twinlease_tests::perfdhcp::{PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::topology::{CLIENT_IF, Ipv4Net, SERVER_IF, Topology};
use twinlease_tests::twinlease::{self, Twinlease, TwinleaseConfig};
use twinlease_tests::{Error, Result, require_programs, require_root};

/// The log without terminal colour sequences (`ESC [ … m`).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number after `key=` in the last log line that has it.
fn logged_number(log: &str, key: &str) -> Option<u64> {
    let needle = format!("{key}=");
    log.lines().rev().find_map(|l| {
        let at = l.find(&needle)? + needle.len();
        let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Sum of `key=` over every "XDP counters" line.
fn xdp_counter(log: &str, key: &str) -> u64 {
    let needle = format!(" {key}=");
    log.lines()
        .filter(|l| l.contains("XDP counters"))
        .filter_map(|l| {
            let at = l.find(&needle)? + needle.len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

fn xdp_attached(topo: &Topology) -> Result<bool> {
    Ok(topo
        .srv()
        .ip(&["link", "show", SERVER_IF])?
        .contains("prog/xdp"))
}

#[test]
fn xdp_path_serves_real_clients_and_passes_other_traffic() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "perfdhcp", "ping", "ip"])?;
    let bin = twinlease::binary()?;
    let subnet = Ipv4Net::test_net_1();
    let topo = Topology::build(1, subnet, 2)?;
    let dir = tempfile::Builder::new().prefix("tl-xdp").tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let pool = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 250));
    let mut config = TwinleaseConfig::standard(&data, subnet, pool, 3600);
    "xdp".clone_into(&mut config.io);
    let conf = dir.path().join("twinlease.toml");
    config.write(&conf)?;
    let log = dir.path().join("twinlease.log");
    let mut server = Twinlease::start(topo.srv(), &bin, &conf, &log)?;
    assert!(xdp_attached(&topo)?, "no XDP program on {SERVER_IF}");

    // A real client, straight through the XDP path (broadcast DISCOVER/REQUEST).
    let mut client = Dhclient::start(topo.client(0), CLIENT_IF, 20)?;
    let addr = client.wait_bound(Duration::from_secs(30))?;
    assert!((pool.0..=pool.1).contains(&addr), "{addr}");
    client.release(topo.client(0))?;

    // Other traffic on the same interface still reaches the kernel.
    let client_addr = topo.assign_client_addr(0)?;
    let ping = topo.client(0).exec(
        "ping",
        &[
            "-c",
            "3",
            "-W",
            "1",
            "-i",
            "0.2",
            &topo.server_addr().to_string(),
        ],
        Duration::from_secs(10),
    )?;
    assert_eq!(
        ping.code(),
        Some(0),
        "ping through the XDP interface failed: {ping:?}"
    );

    // perfdhcp (as a relay from the client's address) with address uniqueness.
    let mut p = PerfdhcpOptions::new(CLIENT_IF, 200);
    p.rate = Some(100);
    p.num_requests = Some(200);
    p.unique = true;
    let report = run_perfdhcp(topo.client(0), &p)?;
    report.require_clean()?;
    assert_eq!(report.acks(), 200, "{report:?}");
    assert_ne!(client_addr, addr);

    server.stop()?;
    assert!(
        !xdp_attached(&topo)?,
        "the XDP program was left attached after SIGTERM"
    );
    let text = plain(&server.log());
    // The DHCP packets came through AF_XDP: the program redirected them, the server
    // received them on its XDP path and nothing on a socket.
    let redirected = xdp_counter(&text, "redirected_v4");
    let received_xdp = logged_number(&text, "received_xdp")
        .ok_or_else(|| Error(format!("no received_xdp in the log:\n{text}")))?;
    let received_socket = logged_number(&text, "received")
        .ok_or_else(|| Error(format!("no received= in the log:\n{text}")))?;
    // dhclient: DISCOVER, REQUEST, RELEASE at least; perfdhcp: 400 messages.
    assert!(
        redirected >= 403,
        "XDP redirected only {redirected}:\n{text}"
    );
    assert!(
        received_xdp >= 403,
        "server received {received_xdp} on AF_XDP:\n{text}"
    );
    assert_eq!(received_socket, 0, "DHCP reached a socket:\n{text}");
    assert!(
        logged_number(&text, "sent_xdp").unwrap_or(0) >= 402,
        "{text}"
    );

    let leases = twinlease::leases(&bin, &data)?;
    let active = leases.iter().filter(|l| l.state == "active").count();
    assert_eq!(active, 200, "perfdhcp's 200 leases are in the store");
    // dhclient's RELEASE came through AF_XDP too (its address may since have gone to one of
    // perfdhcp's clients, so the outcome counter says it).
    assert!(
        text.contains("\"released\": 1"),
        "no RELEASE handled:\n{text}"
    );
    Ok(())
}

/// A relayed BOOTREQUEST (RFC 2131 §2): `kind` (option 53), `xid`, `chaddr` ending in
/// `client`, `ciaddr`, `giaddr`, then `extra` options (code, data).
fn bootrequest(
    kind: u8,
    xid: u32,
    client: u16,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    extra: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6;
    m[3] = 1; // hops: relayed
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[12..16].copy_from_slice(&ciaddr.octets());
    m[24..28].copy_from_slice(&giaddr.octets());
    m[28..34].copy_from_slice(&[0x02, 0x5e, 0, 0, (client >> 8) as u8, client as u8]);
    m.extend_from_slice(&[99, 130, 83, 99]);
    m.extend_from_slice(&[53, 1, kind]);
    for (code, data) in extra {
        m.push(*code);
        m.push(u8::try_from(data.len()).unwrap_or(u8::MAX));
        m.extend_from_slice(data);
    }
    m.push(255);
    m
}

/// The (message type, xid, yiaddr) of a BOOTREPLY.
fn bootreply(m: &[u8]) -> Option<(u8, u32, Ipv4Addr)> {
    if m.len() < 244 || m[0] != 2 {
        return None;
    }
    let xid = u32::from_be_bytes(m[4..8].try_into().ok()?);
    let yiaddr = Ipv4Addr::new(m[16], m[17], m[18], m[19]);
    let mut i = 240;
    while i + 1 < m.len() {
        match m[i] {
            0 => i += 1,
            255 => break,
            53 => return m.get(i + 2).map(|t| (*t, xid, yiaddr)),
            _ => i += 2 + usize::from(m[i + 1]),
        }
    }
    None
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = std::path::PathBuf::from("/run/netns").join(ns);
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd as _;
        let file = std::fs::File::open(&path).expect("open the namespace");
        // Safety: setns(2) with a valid namespace fd; it switches only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Clients with a lease, renewing through the relay during the flood.
const RENEWERS: u16 = 20;
/// Distinct flooding clients (their offers are re-used: the pool never runs out).
const FLOOD_CLIENTS: u16 = 64;
/// How long the flood lasts.
const FLOOD_SECS: u64 = 10;
/// DHCPREQUEST (RFC 2132 §9.6) and the replies.
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;

/// Leases for the renewers: a relayed DISCOVER/OFFER/REQUEST/ACK each, before the flood.
fn lease_renewers(
    sock: &std::net::UdpSocket,
    server: std::net::SocketAddrV4,
    relay: Ipv4Addr,
) -> Vec<Ipv4Addr> {
    let mut buf = [0u8; 1500];
    let mut leased = Vec::new();
    for c in 0..RENEWERS {
        let xid = 0x1000_0000 | u32::from(c);
        let mut got = None;
        'tries: for _ in 0..10 {
            let discover = bootrequest(DISCOVER, xid, c, Ipv4Addr::UNSPECIFIED, relay, &[]);
            sock.send_to(&discover, server).expect("send DISCOVER");
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                if let Some((OFFER, x, offered)) = bootreply(&buf[..n])
                    && x == xid
                {
                    let request = bootrequest(
                        REQUEST,
                        xid,
                        c,
                        Ipv4Addr::UNSPECIFIED,
                        relay,
                        &[(50, &offered.octets()), (54, &server.ip().octets())],
                    );
                    sock.send_to(&request, server).expect("send REQUEST");
                }
                if let Some((ACK, x, acked)) = bootreply(&buf[..n])
                    && x == xid
                {
                    got = Some(acked);
                    break 'tries;
                }
            }
        }
        leased.push(got.unwrap_or_else(|| panic!("renewer {c} got no lease")));
    }
    leased
}

/// A DISCOVER flood through the XDP path far above what one worker answers, while clients
/// holding a lease renew (relayed REQUESTs with `ciaddr`, RFC 2131 §4.3.2): the program sheds
/// DISCOVERs as the queue loop raises the level, never the renewals, which must be answered.
#[test]
fn xdp_sheds_a_discover_flood_and_keeps_the_renewals() -> Result<()> {
    use std::net::{SocketAddrV4, UdpSocket};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Instant;

    require_root!(Ok(()));
    require_programs(&["ip"])?;
    let bin = twinlease::binary()?;
    let subnet = Ipv4Net::test_net_1();
    let topo = Topology::build(1, subnet, 1)?;
    let dir = tempfile::Builder::new().prefix("tl-xdp-shed").tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let pool = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 250));
    let mut config = TwinleaseConfig::standard(&data, subnet, pool, 3600);
    "xdp".clone_into(&mut config.io);
    config.workers = 1;
    let conf = dir.path().join("twinlease.toml");
    config.write(&conf)?;
    let log = dir.path().join("twinlease.log");
    let mut server = Twinlease::start(topo.srv(), &bin, &conf, &log)?;
    // The renewers' relay and, on a second address, the flood's relay (its OFFERs go to a
    // socket that is never read).
    let relay = topo.assign_client_addr(0)?;
    let flood_relay = subnet.host(200);
    topo.client(0).add_addr(
        CLIENT_IF,
        &format!("{flood_relay}/{}", subnet.mask().count_ones()),
    )?;
    let server_addr = SocketAddrV4::new(topo.server_addr(), 67);
    let ns = topo.client(0).name().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let flood_sent = Arc::new(AtomicU64::new(0));
    let (renew_sent, renew_acked, flood_secs) = {
        let stop = Arc::clone(&stop);
        let flood_sent = Arc::clone(&flood_sent);
        let ns2 = ns.clone();
        let renewers = in_netns(&ns, move || {
            let sock = UdpSocket::bind(SocketAddrV4::new(relay, 67)).expect("bind the relay");
            sock.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            let leased = lease_renewers(&sock, server_addr, relay);
            // The flood, from its own threads.
            let flooders: Vec<_> = (0..2u16)
                .map(|t| {
                    let stop = Arc::clone(&stop);
                    let sent = Arc::clone(&flood_sent);
                    in_netns(&ns2, move || {
                        // Any source port: the OFFERs go to the relay address's port 67.
                        let s = UdpSocket::bind(SocketAddrV4::new(flood_relay, 0))
                            .expect("bind the flood");
                        let frames: Vec<Vec<u8>> = (0..FLOOD_CLIENTS)
                            .map(|c| {
                                let client = 0x8000 | (t << 8) | c;
                                bootrequest(
                                    DISCOVER,
                                    0x2000_0000 | u32::from(client),
                                    client,
                                    Ipv4Addr::UNSPECIFIED,
                                    flood_relay,
                                    &[],
                                )
                            })
                            .collect();
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            for f in &frames {
                                if s.send_to(f, server_addr).is_ok() {
                                    n += 1;
                                }
                            }
                        }
                        sent.fetch_add(n, Ordering::Relaxed);
                    })
                })
                .collect();
            let started = Instant::now();
            // Let the flood build up and the level settle, then renew all through the rest.
            std::thread::sleep(Duration::from_secs(1));
            let mut pending = std::collections::HashSet::new();
            let mut sent = 0u64;
            let mut acked = 0u64;
            let mut buf = [0u8; 1500];
            let mut round = 0u32;
            let mut next = Instant::now();
            while started.elapsed() < Duration::from_secs(FLOOD_SECS) {
                if Instant::now() >= next {
                    for (c, addr) in leased.iter().enumerate() {
                        let xid = 0x4000_0000 | (round << 8) | c as u32;
                        let m = bootrequest(REQUEST, xid, c as u16, *addr, relay, &[]);
                        if sock.send_to(&m, server_addr).is_ok() {
                            sent += 1;
                            pending.insert(xid);
                        }
                    }
                    round += 1;
                    next += Duration::from_millis(200);
                }
                sock.set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("timeout");
                while let Ok((n, _)) = sock.recv_from(&mut buf) {
                    if let Some((ACK, x, _)) = bootreply(&buf[..n])
                        && pending.remove(&x)
                    {
                        acked += 1;
                    }
                }
            }
            let flood_secs = started.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            for f in flooders {
                f.join().expect("flood thread");
            }
            // Late answers to the last renewals.
            sock.set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                if let Some((ACK, x, _)) = bootreply(&buf[..n])
                    && pending.remove(&x)
                {
                    acked += 1;
                }
            }
            (sent, acked, flood_secs)
        });
        // The flood's OFFERs land here, unread (no ICMP port unreachable back).
        let sink = in_netns(&ns, move || {
            UdpSocket::bind(SocketAddrV4::new(flood_relay, 67)).expect("bind the flood sink")
        })
        .join()
        .map_err(|_| Error("flood sink thread panicked".into()))?;
        let out = renewers
            .join()
            .map_err(|_| Error("renewing thread panicked".into()))?;
        drop(sink);
        out
    };

    server.stop()?;
    let text = plain(&server.log());
    let shed = xdp_counter(&text, "shed");
    let redirected = xdp_counter(&text, "redirected_v4");
    let sent_xdp = logged_number(&text, "sent_xdp").unwrap_or(0);
    let flood = flood_sent.load(Ordering::Relaxed);
    // What the server answered per second against what the flood offered per second.
    let answered = sent_xdp.saturating_sub(renew_acked + 2 * u64::from(RENEWERS));
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let (flood_rate, answer_rate, ratio) = (
        flood as f64 / flood_secs,
        answered as f64 / flood_secs,
        renew_acked as f64 / renew_sent.max(1) as f64,
    );
    println!(
        "flood: {flood} DISCOVERs in {flood_secs:.1} s ({flood_rate:.0}/s), server answered \
         {answer_rate:.0}/s: flood factor {:.1}; XDP shed {shed}, redirected {redirected}; \
         renewals answered {renew_acked}/{renew_sent} ({:.1} %)",
        flood_rate / answer_rate.max(1.0),
        ratio * 100.0
    );
    assert!(shed > 0, "nothing shed by XDP:\n{text}");
    assert!(
        ratio >= 0.9,
        "only {renew_acked} of {renew_sent} renewals answered under the flood"
    );
    Ok(())
}
