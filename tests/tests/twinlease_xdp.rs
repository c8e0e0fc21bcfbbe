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
