//! The whole server over loopback, acting as a relay agent (giaddr 127.0.0.1): no root, no
//! namespaces. Covers the socket path, dispatch to workers, group commit, restart recovery,
//! and a kill -9 crash test of the `twinlease` binary.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use twinlease::wire::v4::{MessageType, OptionIter, Packet, opt};

mod common;
use common::{Proc, Relay};

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, port: u16, relay_port: u16, durability: &str) -> String {
    format!(
        r#"[server]
data-dir = "{}"
workers = 2
durability = "{durability}"
listen = ["127.0.0.1:{port}"]
relay-port = {relay_port}
offer-hold-secs = 30
[[subnet4]]
id = 7
subnet = "198.18.0.0/16"
relay-addresses = ["127.0.0.1"]
routers = ["198.18.0.1"]
dns-servers = ["198.18.0.2"]
domain-name = "lab.example"
lease-time = 3600
[[subnet4.pool]]
range = "198.18.1.0-198.18.40.255"
"#,
        dir.display()
    )
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_twinlease")
}

fn spawn_server(cfg: &Path) -> Proc {
    let child = Command::new(bin())
        .args(["run", "--config"])
        .arg(cfg)
        .env("TWINLEASE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(child)
}

fn wait_ready(relay: &Relay, probe: u32) -> Ipv4Addr {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Some(a) = relay.dora(probe) {
            return a;
        }
    }
    panic!("server did not answer within 10 s");
}

fn leases(data_dir: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(bin())
        .args(["leases", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "twinlease leases failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stop(mut p: Proc) {
    // Safety: sending SIGTERM to our own child process.
    unsafe { libc::kill(libc::pid_t::try_from(p.0.id()).unwrap(), libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if p.0.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server did not stop on SIGTERM");
}

#[test]
fn dora_renew_release_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::new(0);
    let port = free_port();
    let relay = Relay {
        server: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        ..relay
    };
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        config(&dir.path().join("data"), port, relay.port(), "fsync"),
    )
    .unwrap();
    let srv = spawn_server(&cfg);
    let first = wait_ready(&relay, 1);

    // 200 clients, distinct addresses inside the pool.
    let mut got = HashMap::new();
    for i in 2..202 {
        let a = relay.dora(i).expect("DORA answered");
        assert!(u32::from(a) >= u32::from(Ipv4Addr::new(198, 18, 1, 0)));
        assert!(got.insert(a, i).is_none(), "address {a} given twice");
    }
    // Renewal of client 2 keeps its address (INIT-REBOOT style request, RFC 2131 §4.3.2).
    let a2 = *got.iter().find(|(_, c)| **c == 2).unwrap().0;
    relay.send(
        MessageType::Request,
        2,
        77,
        Ipv4Addr::UNSPECIFIED,
        Some(a2),
        None,
    );
    let (r, _) = relay.wait(77).unwrap();
    assert_eq!((r.kind, r.yiaddr), (MessageType::Ack as u8, a2));
    assert_eq!(r.lease_time, Some(3600));
    // Release by client 3.
    let a3 = *got.iter().find(|(_, c)| **c == 3).unwrap().0;
    relay.send(
        MessageType::Release,
        3,
        78,
        a3,
        None,
        Some(Ipv4Addr::LOCALHOST),
    );
    std::thread::sleep(Duration::from_millis(300));
    stop(srv);

    let ls = leases(&dir.path().join("data"));
    let state = |a: Ipv4Addr| {
        ls.iter()
            .find(|l| l["addr"] == a.to_string())
            .map(|l| l["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state(first).as_deref(), Some("active"));
    assert_eq!(state(a2).as_deref(), Some("active"));
    assert_eq!(state(a3).as_deref(), Some("released"));
    assert_eq!(ls.iter().filter(|l| l["state"] == "active").count(), 200);

    // After a restart the same client gets the same address back.
    let srv = spawn_server(&cfg);
    wait_ready(&relay, 1);
    let again = relay.dora(5).unwrap();
    assert_eq!(Some(&5), got.get(&again));
    stop(srv);
}

#[test]
fn kill_dash_nine_loses_no_acked_lease() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let relay = Relay::new(port);
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config(&data, port, relay.port(), "fsync")).unwrap();
    let mut acked: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
    let mut next = 1u32;
    for round in 0..3 {
        let srv = spawn_server(&cfg);
        wait_ready(&relay, 1_000_000 + round);
        // Drive DISCOVER/REQUEST pipelined from a second thread while this one collects ACKs,
        // then kill -9 at a moment that depends on the round.
        let sender = relay.sock.try_clone().unwrap();
        let server = relay.server;
        let start = next;
        let count = 3000u32;
        next += count;
        let stop_at = Instant::now() + Duration::from_millis(300 + 200 * u64::from(round));
        let mut offers: HashSet<u32> = HashSet::new();
        let r2 = Relay {
            sock: sender,
            server,
        };
        let mut i = start;
        let mut killed = false;
        let mut srv = Some(srv);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if i < start + count {
                for _ in 0..20 {
                    r2.send(
                        MessageType::Discover,
                        i,
                        i,
                        Ipv4Addr::UNSPECIFIED,
                        None,
                        None,
                    );
                    i += 1;
                }
            }
            // Drain replies: REQUEST every OFFER, record every ACK.
            let mut buf = [0u8; 1500];
            relay
                .sock
                .set_read_timeout(Some(Duration::from_millis(2)))
                .unwrap();
            while let Ok((n, _)) = relay.sock.recv_from(&mut buf) {
                let Ok(p) = Packet::new_checked(&buf[..n]) else {
                    continue;
                };
                let kind = OptionIter::new(&buf[..n])
                    .filter_map(Result::ok)
                    .find(|(c, _)| *c == opt::MESSAGE_TYPE)
                    .map(|(_, v)| v[0]);
                let mut ch = [0u8; 6];
                ch.copy_from_slice(&p.chaddr()[..6]);
                let client = u32::from_be_bytes([ch[2], ch[3], ch[4], ch[5]]);
                match kind {
                    Some(2) if offers.insert(client) => {
                        r2.send(
                            MessageType::Request,
                            client,
                            p.xid(),
                            Ipv4Addr::UNSPECIFIED,
                            Some(p.yiaddr()),
                            Some(Ipv4Addr::LOCALHOST),
                        );
                    }
                    Some(5) => {
                        let prev = acked.insert(p.yiaddr(), ch);
                        assert!(
                            prev.is_none() || prev == Some(ch),
                            "{} ACKed to two clients",
                            p.yiaddr()
                        );
                    }
                    _ => {}
                }
            }
            if !killed && Instant::now() >= stop_at {
                // SIGKILL: no chance to flush anything.
                drop(srv.take());
                killed = true;
                // Drain what was already in flight to us.
                continue;
            }
            if killed && i >= start + count {
                break;
            }
            if killed {
                break;
            }
        }
        assert!(killed);
        let ls = leases(&data);
        let mut bound: HashMap<String, String> = HashMap::new();
        for l in &ls {
            if l["state"] == "active" {
                let prev = bound.insert(
                    l["addr"].as_str().unwrap().to_owned(),
                    l["chaddr"].as_str().unwrap().to_owned(),
                );
                assert!(prev.is_none(), "address {} bound twice", l["addr"]);
            }
        }
        for (a, m) in &acked {
            let m = format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            );
            assert_eq!(
                bound.get(&a.to_string()),
                Some(&m),
                "ACKed lease {a} for {m} lost after kill -9 (round {round})"
            );
        }
        assert!(
            acked.len() > 10,
            "round {round}: too few ACKs ({}) to mean anything",
            acked.len()
        );
    }
}
