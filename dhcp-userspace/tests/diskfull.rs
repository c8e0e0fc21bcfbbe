//! A full disk end to end: the server's data directory on a small tmpfs (mounted under a
//! temporary directory, unmounted on drop; needs root, skipped otherwise), clients renewing
//! over loopback (a relay agent, giaddr 127.0.0.1), a filler file eating the free space.
//!
//! Checks: once the WAL cannot grow, renewals get no DHCPACK (RFC 2131 §4.3.2: nothing is
//! acknowledged that is not recorded; the server stays silent and the client retries), the
//! disk-full gauge and failure counter say so, and when the filler is deleted ACKs come back
//! within a bounded time without a restart; after a restart every `ACKed` lease is in the store
//! with at least the expiry its last ACK announced.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use twinlease::dispatch::Server;
use twinlease::wire::v4::MessageType;

#[expect(
    dead_code,
    reason = "shared helpers; this test uses the relay agent only"
)]
mod common;
use common::Relay;

/// Clients that hold a lease and keep renewing it.
const CLIENTS: u32 = 200;
const LEASE_TIME: u64 = 3600;

/// A tmpfs of `size`, unmounted on drop.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    fn try_mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { dir })
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Write one file until the file system is full; its path.
fn fill_up(dir: &Path, name: &str) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5au8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    path
}

/// Send one renewal (REQUEST, ciaddr set: RENEWING) for each client, then collect ACKs for up
/// to `wait`. Returns, per client, the time (unix s, taken before sending) of its ACK.
fn renew_round(
    relay: &Relay,
    addrs: &HashMap<u32, Ipv4Addr>,
    round: u32,
    wait: Duration,
) -> HashMap<u32, u64> {
    let sent_at = unix_now();
    let xid = |i: u32| 0x4000_0000 | (round << 12) | i;
    for (&i, &a) in addrs {
        relay.send(MessageType::Request, i, xid(i), a, None, None);
    }
    let mut acked = HashMap::new();
    let end = Instant::now() + wait;
    while Instant::now() < end && acked.len() < addrs.len() {
        let Some((r, _)) = relay.recv() else {
            continue;
        };
        let i = r.xid & 0xfff;
        if r.kind == MessageType::Ack as u8 && r.xid == xid(i) && addrs.get(&i) == Some(&r.yiaddr) {
            acked.insert(i, sent_at);
        }
    }
    acked
}

fn metrics(server: &Server) -> String {
    twinlease::control::metrics::render(&server.control())
}

#[test]
fn disk_full_withholds_acks_and_service_resumes_when_space_returns() {
    let Some(fs) = TinyFs::try_mount("4m") else {
        eprintln!("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    let data = fs.dir.path().join("data");
    let relay = Relay::new(free_port());
    let text = format!(
        r#"[server]
data-dir = "{}"
workers = 1
durability = "fsync"
wal-segment-mib = 1
listen = ["127.0.0.1:{}"]
relay-port = {}
[[subnet4]]
id = 7
subnet = "198.18.0.0/16"
relay-addresses = ["127.0.0.1"]
lease-time = {LEASE_TIME}
[[subnet4.pool]]
range = "198.18.1.0-198.18.4.255"
"#,
        data.display(),
        relay.server.port(),
        relay.port()
    );
    let cfg = twinlease::config::parse(&text, "diskfull.toml").unwrap();
    let server = Server::start(&cfg).unwrap();

    let mut addrs = HashMap::new();
    for i in 0..CLIENTS {
        let a = (0..3)
            .find_map(|_| relay.dora(i))
            .expect("DORA before the disk is full");
        addrs.insert(i, a);
    }
    // Per client: when its newest ACK was asked for (the lease must outlive that + LEASE_TIME).
    let mut last_ack: HashMap<u32, u64> = HashMap::new();

    // The store holds one 1 MiB segment being written and a preallocated spare; the filler
    // takes the rest. Renewals go on until both segments are full.
    let mut fillers = vec![fill_up(fs.dir.path(), "filler")];
    let mut round = 0;
    let started = Instant::now();
    while server.stats.wal_disk_full.load(Ordering::Relaxed) == 0 {
        assert!(
            started.elapsed() < Duration::from_mins(2),
            "the WAL never ran out of space"
        );
        round += 1;
        last_ack.extend(renew_round(
            &relay,
            &addrs,
            round,
            Duration::from_millis(300),
        ));
    }
    let filled_after = round;
    let m = metrics(&server);
    assert!(m.contains("\ntwinlease_wal_disk_full 1\n"), "{m}");
    assert!(
        !m.contains("twinlease_wal_append_failures_total{reason=\"disk_full\"} 0\n"),
        "{m}"
    );

    // While the disk stays full renewals are withheld (the server stays silent): a batch that
    // needs a new segment fails. A small batch may still fit in the tail of the segment being
    // written, which is preallocated: those few are durable and acknowledged, and the final
    // check below finds them in the store. The server's background compaction may free a
    // segment meanwhile: whatever it frees is taken again before each round.
    let mut acked_while_full = 0;
    for k in 0..3 {
        fillers.push(fill_up(fs.dir.path(), &format!("filler-{k}")));
        round += 1;
        let acked = renew_round(&relay, &addrs, round, Duration::from_millis(500));
        acked_while_full += acked.len();
        last_ack.extend(acked);
    }
    assert!(
        acked_while_full * 4 < addrs.len() * 3,
        "{acked_while_full} of {} renewals ACKed over 3 rounds on a full disk",
        addrs.len() * 3
    );
    let failures_full = server.stats.wal_failures_disk_full.load(Ordering::Relaxed);
    assert!(failures_full >= 3, "{failures_full} failed batches");
    assert_eq!(server.stats.wal_failures_io.load(Ordering::Relaxed), 0);

    // Space returns: ACKs come back within a bounded time, no restart.
    for f in &fillers {
        std::fs::remove_file(f).unwrap();
    }
    let freed = Instant::now();
    let resumed = loop {
        round += 1;
        let acked = renew_round(&relay, &addrs, round, Duration::from_millis(300));
        if !acked.is_empty() {
            last_ack.extend(acked);
            break freed.elapsed();
        }
        assert!(
            freed.elapsed() < Duration::from_secs(5),
            "no ACK within 5 s after space returned"
        );
    };
    // Every client renews again.
    let mut pending: HashMap<u32, Ipv4Addr> = addrs.clone();
    let end = Instant::now() + Duration::from_secs(10);
    while !pending.is_empty() && Instant::now() < end {
        round += 1;
        let acked = renew_round(&relay, &pending, round, Duration::from_millis(300));
        for i in acked.keys() {
            pending.remove(i);
        }
        last_ack.extend(acked);
    }
    assert!(
        pending.is_empty(),
        "{} clients never renewed",
        pending.len()
    );
    assert_eq!(server.stats.wal_disk_full.load(Ordering::Relaxed), 0);
    assert!(metrics(&server).contains("\ntwinlease_wal_disk_full 0\n"));
    eprintln!(
        "disk full after {filled_after} renewal rounds of {CLIENTS}; {failures_full} failed batches; \
         first ACK {} ms after the filler was deleted",
        resumed.as_millis()
    );
    server.shutdown();

    // A restart (the store replayed from disk): every ACKed lease is there, at least as long
    // as its last ACK said.
    let out = Command::new(env!("CARGO_BIN_EXE_twinlease"))
        .args(["leases", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: HashMap<String, serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["addr"].as_str().unwrap().to_owned(), v))
        .collect();
    for (i, a) in &addrs {
        let l = stored
            .get(&a.to_string())
            .unwrap_or_else(|| panic!("lease of client {i} ({a}) lost"));
        assert_eq!(l["state"], "active", "{l}");
        let expires = l["expires"].as_u64().unwrap();
        let acked_at = last_ack[i];
        assert!(
            expires >= acked_at + LEASE_TIME,
            "client {i}: stored expiry {expires} before the ACKed {}",
            acked_at + LEASE_TIME
        );
    }
}
