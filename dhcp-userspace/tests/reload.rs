//! Configuration reload without restart, in process and without root: a server on loopback
//! acting for a relay agent (giaddr 127.0.0.1); pools, options and reservations change under
//! it, invalid and restart-only changes are refused, and under load no acknowledged lease is
//! lost.

#[expect(
    dead_code,
    reason = "shared helpers; this test uses the relay agent only"
)]
mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use common::Relay;
use twinlease::config::Config;
use twinlease::control::AnyLease;
use twinlease::dispatch::Server;
use twinlease::dispatch::reload::ReloadError;
use twinlease::wire::v4::{MessageType, OptionIter, opt};

struct Setup<'a> {
    dir: &'a Path,
    port: u16,
    relay_port: u16,
    workers: usize,
    durability: &'a str,
}

/// A configuration with the given pools (`START-END`), routers, lease time and extra text.
fn config(s: &Setup<'_>, pools: &[&str], router: &str, lease: u32, extra: &str) -> Config {
    twinlease::config::parse(&config_text(s, pools, router, lease, extra), "reload.toml").unwrap()
}

/// The text of [`config`].
fn config_text(s: &Setup<'_>, pools: &[&str], router: &str, lease: u32, extra: &str) -> String {
    use std::fmt::Write as _;
    let mut text = format!(
        r#"[server]
data-dir = "{}"
workers = {}
durability = "{}"
listen = ["127.0.0.1:{}"]
relay-port = {}
[[subnet4]]
id = 7
subnet = "198.18.0.0/16"
relay-addresses = ["127.0.0.1"]
routers = ["{router}"]
lease-time = {lease}
"#,
        s.dir.display(),
        s.workers,
        s.durability,
        s.port,
        s.relay_port,
    );
    for p in pools {
        let _ = write!(text, "[[subnet4.pool]]\nrange = \"{p}\"\n");
    }
    text.push_str(extra);
    text.push_str("[control]\nlisten = \"127.0.0.1:0\"\n");
    text
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One reply's message type, yiaddr, lease time and first router.
#[derive(Debug, Clone, Copy)]
struct Seen {
    kind: u8,
    yiaddr: Ipv4Addr,
    lease: Option<u32>,
    router: Option<Ipv4Addr>,
}

fn wait_raw(relay: &Relay, xid: u32) -> Option<Seen> {
    let end = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        let Ok((n, _)) = relay.sock.recv_from(&mut buf) else {
            continue;
        };
        let p = twinlease::wire::v4::Packet::new_checked(&buf[..n]).ok()?;
        if p.xid() != xid {
            continue;
        }
        let mut seen = Seen {
            kind: 0,
            yiaddr: p.yiaddr(),
            lease: None,
            router: None,
        };
        for o in OptionIter::new(&buf[..n]) {
            let (code, v) = o.ok()?;
            match code {
                opt::MESSAGE_TYPE => seen.kind = v[0],
                opt::LEASE_TIME => seen.lease = Some(u32::from_be_bytes(v.try_into().ok()?)),
                opt::ROUTER => seen.router = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                _ => {}
            }
        }
        return Some(seen);
    }
    None
}

/// DISCOVER + REQUEST for client `i`: the ACK (or what came instead).
fn dora(r: &Relay, i: u32, xid: u32) -> Option<Seen> {
    r.send(
        MessageType::Discover,
        i,
        xid,
        Ipv4Addr::UNSPECIFIED,
        None,
        None,
    );
    let offer = wait_raw(r, xid)?;
    if offer.kind != MessageType::Offer as u8 {
        return Some(offer);
    }
    r.send(
        MessageType::Request,
        i,
        xid ^ 1,
        Ipv4Addr::UNSPECIFIED,
        Some(offer.yiaddr),
        Some(Ipv4Addr::LOCALHOST),
    );
    wait_raw(r, xid ^ 1)
}

fn in_range(a: Ipv4Addr, lo: [u8; 4], hi: [u8; 4]) -> bool {
    Ipv4Addr::from(lo) <= a && a <= Ipv4Addr::from(hi)
}

#[test]
fn reload_changes_pools_options_reservations_and_refuses_bad_configs() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::new(0);
    let setup = Setup {
        dir: dir.path(),
        port: free_port(),
        relay_port: relay.port(),
        workers: 2,
        durability: "fsync",
    };
    let cfg_a = config(&setup, &["198.18.1.10-198.18.1.17"], "198.18.0.1", 3600, "");
    let server = Server::start(&cfg_a).unwrap();
    relay.server = std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.listening[0].port());
    let ctl = server.control();

    // Three clients bound in pool A.
    let mut bound = Vec::new();
    for i in 0..3 {
        let ack = dora(&relay, i, 0x1000 + i * 4).unwrap();
        assert_eq!(ack.kind, MessageType::Ack as u8);
        assert!(in_range(ack.yiaddr, [198, 18, 1, 10], [198, 18, 1, 17]));
        assert_eq!(ack.router, Some(Ipv4Addr::new(198, 18, 0, 1)));
        bound.push(ack.yiaddr);
    }

    // Without a file: nothing to reload.
    assert!(matches!(ctl.reload(), Err(ReloadError::NoFile)));

    // Pool A removed, pool B added, the router and the lease time changed, a reservation.
    let res =
        "[[subnet4.reservation]]\nhw-address = \"02:55:00:00:00:64\"\naddress = \"198.18.3.5\"\n";
    let cfg_b = config(
        &setup,
        &["198.18.2.10-198.18.2.19"],
        "198.18.0.2",
        1800,
        res,
    );
    let r = ctl.reload_config(cfg_b.clone(), "reload.toml").unwrap();
    assert_eq!((r.subnets4, r.pools4), (1, 1));
    assert_eq!(r.orphaned_v4, 3, "{r:?}");
    assert!(r.pause < Duration::from_secs(1), "{r:?}");
    let stats = ctl.pool_stats().unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].range, "198.18.2.10-198.18.2.19");
    assert_eq!(stats[0].free, 10);

    // The leases of the removed pool are kept and listed.
    let page = ctl.page(None, 100).unwrap();
    let listed: Vec<Ipv4Addr> = page
        .leases
        .iter()
        .filter_map(|l| match l {
            AnyLease::V4(l) => Some(l.addr),
            AnyLease::V6(_) => None,
        })
        .collect();
    for a in &bound {
        assert!(listed.contains(a), "{a} kept in the listing");
    }

    // A renewal of an address of the removed pool: DHCPNAK (RFC 2131 §3.2).
    relay.send(MessageType::Request, 0, 0x2000, bound[0], None, None);
    let nak = wait_raw(&relay, 0x2000).unwrap();
    assert_eq!(nak.kind, MessageType::Nak as u8);

    // New clients: pool B, new router and lease time.
    let ack = dora(&relay, 10, 0x3000).unwrap();
    assert_eq!(ack.kind, MessageType::Ack as u8);
    assert!(
        in_range(ack.yiaddr, [198, 18, 2, 10], [198, 18, 2, 19]),
        "{ack:?}"
    );
    assert_eq!(ack.router, Some(Ipv4Addr::new(198, 18, 0, 2)));
    assert_eq!(ack.lease, Some(1800));
    // The NAKed client starts over and lands in pool B.
    let ack = dora(&relay, 0, 0x3100).unwrap();
    assert!(
        in_range(ack.yiaddr, [198, 18, 2, 10], [198, 18, 2, 19]),
        "{ack:?}"
    );
    // The reservation added by the reload.
    let ack = dora(&relay, 100, 0x3200).unwrap();
    assert_eq!(ack.yiaddr, Ipv4Addr::new(198, 18, 3, 5));

    // An invalid configuration is refused with its `file: field: reason` lines.
    let bad = "[server]\nworkers = 2\n[[subnet4]]\nid = 7\nsubnet = \"198.18.0.0/16\"\n[[subnet4.pool]]\nrange = \"10.0.0.1-10.0.0.9\"\n";
    let errs = twinlease::config::parse(bad, "bad.toml").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.field.starts_with("subnet4[0].pool[0]")),
        "{errs}"
    );
    // A restart-only change is refused with the field and the reason; nothing changes.
    let mut restart = cfg_b.clone();
    restart.server.workers = 3;
    restart.server.batch_size = 8;
    let e = ctl.reload_config(restart, "reload.toml").unwrap_err();
    let lines = e.lines();
    assert_eq!(e.status(), 422);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("reload.toml: server.workers: ") && l.contains("restart")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("server.batch-size")),
        "{lines:?}"
    );
    let ack = dora(&relay, 11, 0x4000).unwrap();
    assert!(
        in_range(ack.yiaddr, [198, 18, 2, 10], [198, 18, 2, 19]),
        "{ack:?}"
    );
    assert_eq!(ack.lease, Some(1800));

    // From a file, through the control API and `twinlease ctl reload`.
    let file = dir.path().join("twinlease.toml");
    server.set_config_path(&file);
    let url = format!("http://{}", server.control_addr().unwrap());
    let api = twinlease::control::client::Client::new(&url, None).unwrap();
    std::fs::write(&file, "[server\n").unwrap();
    let (code, body) = api.request("POST", "/v1/reload").unwrap();
    assert_eq!(code, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = v["errors"][0].as_str().unwrap();
    assert!(first.starts_with(&file.display().to_string()), "{body}");
    let ack = dora(&relay, 12, 0x5000).unwrap();
    assert!(
        in_range(ack.yiaddr, [198, 18, 2, 10], [198, 18, 2, 19]),
        "{ack:?}"
    );
    // Pool B grows by a second pool, from the file.
    let text = config_text(
        &setup,
        &["198.18.2.10-198.18.2.19", "198.18.5.1-198.18.5.9"],
        "198.18.0.2",
        1800,
        res,
    );
    std::fs::write(&file, text).unwrap();
    let v = api.json("POST", "/v1/reload").unwrap();
    assert_eq!(v["pools4"], 2, "{v}");
    assert!(v["pause_us"].as_u64().is_some(), "{v}");
    let out = Command::new(env!("CARGO_BIN_EXE_twinlease"))
        .args(["ctl", "--url", &url, "reload"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.starts_with("reloaded: 1 subnet4 (2 pools)"), "{text}");
    let stats = ctl.pool_stats().unwrap();
    assert_eq!(stats.len(), 2);
    let metrics = api.request("GET", "/metrics").unwrap().1;
    for line in [
        "twinlease_reloads_total{result=\"ok\"} 3",
        "twinlease_reloads_total{result=\"refused\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(
        metrics.contains("twinlease_reload_pause_seconds "),
        "{metrics}"
    );
    server.shutdown();
    // A handle of a stopped server cannot reload.
    assert!(matches!(
        ctl.reload_config(cfg_b, "x"),
        Err(ReloadError::Workers(_))
    ));
}

/// The `twinlease leases` dump of a stopped server's store: (chaddr, addr) of ACTIVE leases.
fn active_leases(dir: &Path) -> HashMap<String, Ipv4Addr> {
    let out = Command::new(env!("CARGO_BIN_EXE_twinlease"))
        .args(["leases", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut m = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["state"] == "active" {
            m.insert(
                v["chaddr"].as_str().unwrap().to_owned(),
                v["addr"].as_str().unwrap().parse().unwrap(),
            );
        }
    }
    m
}

fn mac_text(i: u32) -> String {
    common::mac(i)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn reload_under_load_keeps_every_acked_lease() {
    const A: &str = "198.18.1.1-198.18.31.254";
    const B: &str = "198.18.64.1-198.18.95.254";
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::new(0);
    let setup = Setup {
        dir: dir.path(),
        port: free_port(),
        relay_port: relay.port(),
        workers: 2,
        durability: "fsync",
    };
    let cfg1 = config(&setup, &[A], "198.18.0.1", 3600, "");
    let server = Server::start(&cfg1).unwrap();
    relay.server = std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.listening[0].port());
    let relay = Arc::new(relay);
    let ctl = server.control();
    // 0: pool A only; 1: A and B; 2: B only (A removed).
    let epoch = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // One client thread: replies are matched by xid on the shared socket.
    let load = {
        let (relay, epoch, stop) = (Arc::clone(&relay), Arc::clone(&epoch), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut acked: Vec<(u32, Ipv4Addr, u8)> = Vec::new();
            let mut i = 0u32;
            let mut per_epoch = [0u32; 3];
            while !stop.load(Ordering::Acquire) {
                let e = epoch.load(Ordering::Acquire);
                // At most 2000 clients per phase: neither pool runs out on a fast machine.
                per_epoch[usize::from(e)] += 1;
                if per_epoch[usize::from(e)] > 2000 {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                if let Some(ack) = dora(&relay, i, 0x10_0000 + i * 4)
                    && ack.kind == MessageType::Ack as u8
                {
                    acked.push((i, ack.yiaddr, e));
                }
                i += 1;
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let r1 = ctl
        .reload_config(
            config(&setup, &[A, B], "198.18.0.1", 3600, ""),
            "reload.toml",
        )
        .unwrap();
    epoch.store(1, Ordering::Release);
    std::thread::sleep(Duration::from_millis(300));
    let r2 = ctl
        .reload_config(config(&setup, &[B], "198.18.0.1", 3600, ""), "reload.toml")
        .unwrap();
    epoch.store(2, Ordering::Release);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    let acked = load.join().unwrap();
    server.shutdown();
    eprintln!(
        "reload pauses: add {:?}, remove {:?}; ACKs {}",
        r1.pause,
        r2.pause,
        acked.len()
    );
    assert_eq!(r1.orphaned_v4, 0);
    let before_removal = acked.iter().filter(|a| a.2 < 2).count() as u64;
    assert!(
        before_removal > 10,
        "clients were served before the removal"
    );
    assert!(r2.orphaned_v4 > 0 && r2.orphaned_v4 <= before_removal);
    let late: Vec<_> = acked.iter().filter(|a| a.2 == 2).collect();
    assert!(late.len() > 10, "clients were served after the removal");
    for (i, a, _) in &late {
        assert!(
            in_range(*a, [198, 18, 64, 1], [198, 18, 95, 254]),
            "client {i} got {a}"
        );
    }
    // Every ACKed lease is in the store, at the ACKed address, ACTIVE.
    let store = active_leases(dir.path());
    let mut seen = std::collections::HashSet::new();
    for (i, a, _) in &acked {
        assert!(seen.insert(*a), "{a} ACKed twice");
        assert_eq!(store.get(&mac_text(*i)), Some(a), "client {i}");
    }
}

/// `twinlease run` reloads its file on SIGHUP: a new pool is served, an invalid file is
/// refused with its `file: field: reason` lines in the log and the running configuration kept.
#[test]
fn sighup_reloads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::new(0);
    let port = free_port();
    relay.server = std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let setup = Setup {
        dir: dir.path(),
        port,
        relay_port: relay.port(),
        workers: 2,
        durability: "fsync",
    };
    let file = dir.path().join("twinlease.toml");
    // No control API (SIGHUP only); the log filter from the file.
    let write = |pools: &[&str]| {
        let text = config_text(&setup, pools, "198.18.0.1", 3600, "")
            .replace("[control]\nlisten = \"127.0.0.1:0\"\n", "")
            .replacen("[server]\n", "[server]\nlog = \"info\"\n", 1);
        std::fs::write(&file, text).unwrap();
    };
    write(&["198.18.1.10-198.18.1.17"]);
    let log = dir.path().join("stderr.log");
    let child = Command::new(env!("CARGO_BIN_EXE_twinlease"))
        .args(["run", "--config"])
        .arg(&file)
        .env_remove("TWINLEASE_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let proc = common::Proc(child);
    let pid = i32::try_from(proc.id()).unwrap();
    let mut xid = 0x7000;
    let mut next = |relay: &Relay, i: u32| {
        xid += 4;
        dora(relay, i, xid)
    };
    let end = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(a) = next(&relay, 1).filter(|a| a.kind == MessageType::Ack as u8) {
            break a;
        }
        assert!(Instant::now() < end, "server did not answer");
    };
    assert!(in_range(first.yiaddr, [198, 18, 1, 10], [198, 18, 1, 17]));

    write(&["198.18.2.10-198.18.2.19"]);
    // Safety: `pid` is our child, alive (it answered); SIGHUP is a plain signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let end = Instant::now() + Duration::from_secs(5);
    let mut i = 2;
    loop {
        let ack = next(&relay, i).unwrap();
        i += 1;
        if in_range(ack.yiaddr, [198, 18, 2, 10], [198, 18, 2, 19]) {
            break;
        }
        assert!(Instant::now() < end, "the new pool is not served: {ack:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Invalid: a range outside the subnet. Refused, logged, the pool of the last reload kept.
    write(&["10.9.9.1-10.9.9.9"]);
    // Safety: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let end = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap();
        if t.contains("reload refused") {
            break t;
        }
        assert!(Instant::now() < end, "no refusal logged:\n{t}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("configuration reloaded"), "{text}");
    assert!(text.contains("subnet4[0].pool[0]"), "{text}");
    let ack = next(&relay, 50).unwrap();
    assert!(
        in_range(ack.yiaddr, [198, 18, 2, 10], [198, 18, 2, 19]),
        "{ack:?}"
    );
    drop(proc);
}
