//! Crash consistency of the lease store, with the real `twinlease` binary over loopback (a
//! relay agent at 127.0.0.1, no root): `kill -9` at random moments under load, many times,
//! some while a compaction writes its snapshot; and a damaged store refused at start, found
//! by `twinlease store check` and cut by `twinlease store repair`.
//!
//! `TWINLEASE_CRASH_CYCLES` sets the number of kill cycles (default 25).

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

const LEASE_TIME: u32 = 3600;

/// One worker and 1 MiB segments, so that a few seconds of traffic seal enough segments for
/// a compaction.
fn config(dir: &Path, port: u16, relay_port: u16, workers: usize) -> String {
    format!(
        r#"[server]
data-dir = "{}"
workers = {workers}
durability = "fsync"
wal-segment-mib = 1
listen = ["127.0.0.1:{port}"]
relay-port = {relay_port}
offer-hold-secs = 30
[[subnet4]]
id = 7
subnet = "198.18.0.0/16"
relay-addresses = ["127.0.0.1"]
routers = ["198.18.0.1"]
lease-time = {LEASE_TIME}
[[subnet4.pool]]
range = "198.18.1.0-198.18.200.255"
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

fn twinlease(args: &[&str], data: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `twinlease leases` of a stopped server: `addr → (chaddr, state, expires)`, asserting that
/// no address is listed twice.
fn leases(data: &Path) -> HashMap<Ipv4Addr, (String, String, u64)> {
    let out = twinlease(&["leases", "--family", "v4"], data);
    assert!(out.status.success(), "twinlease leases: {}", text(&out));
    let mut m = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let l: serde_json::Value = serde_json::from_str(line).unwrap();
        let addr: Ipv4Addr = l["addr"].as_str().unwrap().parse().unwrap();
        let prev = m.insert(
            addr,
            (
                l["chaddr"].as_str().unwrap().to_owned(),
                l["state"].as_str().unwrap().to_owned(),
                l["expires"].as_u64().unwrap(),
            ),
        );
        assert!(prev.is_none(), "address {addr} listed twice");
    }
    m
}

fn mac_str(i: u32) -> String {
    let m = common::mac(i);
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the clients were told: per client, its address and the earliest expiry an ACK
/// promised (the request's send time, whole seconds, plus the lease time).
#[derive(Default)]
struct Acked {
    by_client: HashMap<u32, (Ipv4Addr, u64)>,
    by_addr: HashMap<Ipv4Addr, u32>,
    acks: u64,
}

impl Acked {
    fn ack(&mut self, client: u32, addr: Ipv4Addr, lease_time: u32, sent: u64) {
        if let Some(&other) = self.by_addr.get(&addr) {
            assert_eq!(
                other, client,
                "{addr} ACKed to clients {other} and {client}"
            );
        }
        self.by_addr.insert(addr, client);
        let promised = sent + u64::from(lease_time);
        let e = self.by_client.entry(client).or_insert((addr, promised));
        if e.0 != addr {
            // The client moved (its old lease was released): only the newest counts.
            self.by_addr.remove(&e.0);
            *e = (addr, promised);
        }
        e.1 = e.1.max(promised);
        self.acks += 1;
    }
}

/// How a cycle chooses the moment of its kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// After this much traffic.
    After(Duration),
    /// As soon as a compaction's temporary snapshot file exists (bounded wait).
    Compaction,
}

/// Append the newest record of every lease again through the library (the server is
/// stopped) until [`twinlease::wal::COMPACT_AFTER_SEALED`] segments wait for compaction: the
/// store's content does not change, and the server starts a compaction in its first
/// maintenance pass (within 100 ms of starting), while it begins to serve.
fn prefill(data: &Path) {
    use twinlease::lease::KEY_LEN;
    use twinlease::wal::{COMPACT_AFTER_SEALED, Wal, WalOptions};
    let opts = WalOptions {
        segment_size: 1 << 20,
        ..WalOptions::default()
    };
    let merged_below = files_in(&data.join("shard-0"), ".snap")
        .last()
        .map_or(0, |p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            u64::from_str_radix(&name["snap-".len()..name.len() - ".snap".len()], 16).unwrap()
        });
    let mut newest: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let (mut wal, _) = Wal::open(data, 0, opts, |p| {
        newest.insert(p[..KEY_LEN].to_vec(), p.to_vec());
    })
    .unwrap();
    while wal.active_seq() < merged_below + COMPACT_AFTER_SEALED {
        for r in newest.values() {
            wal.append(r).unwrap();
        }
        wal.commit().unwrap();
    }
}

/// Whether a compaction is under way in shard 0: its snapshot being written (a temporary
/// snapshot file), or written but the segments it covers not yet all deleted.
fn compaction_running(data: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(data.join("shard-0")) else {
        return false;
    };
    let names: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let seq = |n: &str, prefix: &str, suffix: &str| {
        u64::from_str_radix(n.strip_prefix(prefix)?.strip_suffix(suffix)?, 16).ok()
    };
    let snap = names.iter().filter_map(|n| seq(n, "snap-", ".snap")).max();
    names.iter().any(|n| {
        n.starts_with("snap-") && n.ends_with(".snap.tmp")
            || snap.is_some_and(|s| seq(n, "wal-", ".seg").is_some_and(|w| w < s))
    })
}

/// Drive traffic until the kill condition, then `kill -9`. New clients DISCOVER/REQUEST,
/// known ones renew; every ACK is recorded with its send time. Returns whether the kill landed
/// while a compaction was writing.
#[expect(
    clippy::too_many_lines,
    reason = "one traffic loop, easier to follow in one piece"
)]
fn load_and_kill(
    mut srv: Proc,
    watcher: Option<std::thread::JoinHandle<bool>>,
    relay: &Relay,
    acked: &mut Acked,
    next_client: &mut u32,
    kill_at: KillAt,
    rng: &mut Rng,
) -> bool {
    let start = Instant::now();
    // xid → (client, send time) of the REQUESTs in flight.
    let mut inflight: HashMap<u32, (u32, u64)> = HashMap::new();
    let mut xid = u32::try_from(rng.below(1 << 30)).unwrap();
    relay
        .sock
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let known: Vec<u32> = acked.by_client.keys().copied().collect();
    let mut buf = [0u8; 1500];
    let during_compaction = loop {
        let dead = srv.0.try_wait().unwrap().is_some();
        if let KillAt::After(d) = kill_at
            && start.elapsed() >= d
        {
            // SIGKILL: no chance to flush or finish anything.
            srv.0.kill().unwrap();
            srv.0.wait().unwrap();
            break false;
        }
        if dead {
            srv.0.wait().unwrap();
            break watcher.expect("only the watcher kills").join().unwrap();
        }
        // A window of new clients and renewals.
        if inflight.len() < 400 {
            for _ in 0..16 {
                xid = xid.wrapping_add(1);
                if *next_client < 30_000 && (known.is_empty() || rng.below(3) == 0) {
                    let c = *next_client;
                    *next_client += 1;
                    relay.send(
                        MessageType::Discover,
                        c,
                        xid,
                        Ipv4Addr::UNSPECIFIED,
                        None,
                        None,
                    );
                } else if !known.is_empty() {
                    let c = known[usize::try_from(rng.below(known.len() as u64)).unwrap()];
                    let (addr, _) = acked.by_client[&c];
                    inflight.insert(xid, (c, unix_now()));
                    relay.send(MessageType::Request, c, xid, addr, None, None);
                }
            }
        }
        // A bounded drain, so the kill condition is looked at every few milliseconds.
        for _ in 0..32 {
            let Ok((n, _)) = relay.sock.recv_from(&mut buf) else {
                break;
            };
            let Ok(p) = Packet::new_checked(&buf[..n]) else {
                continue;
            };
            let mut kind = 0;
            let mut lease_time = None;
            let mut sid = None;
            for (c, v) in OptionIter::new(&buf[..n]).filter_map(Result::ok) {
                match c {
                    opt::MESSAGE_TYPE => kind = v[0],
                    opt::LEASE_TIME => lease_time = v.try_into().ok().map(u32::from_be_bytes),
                    opt::SERVER_ID => sid = v.try_into().ok().map(<[u8; 4]>::into),
                    _ => {}
                }
            }
            let ch = p.chaddr();
            let client = u32::from_be_bytes([ch[2], ch[3], ch[4], ch[5]]);
            match MessageType::try_from(kind) {
                Ok(MessageType::Offer) => {
                    xid = xid.wrapping_add(1);
                    inflight.insert(xid, (client, unix_now()));
                    relay.send(
                        MessageType::Request,
                        client,
                        xid,
                        Ipv4Addr::UNSPECIFIED,
                        Some(p.yiaddr()),
                        sid,
                    );
                }
                Ok(MessageType::Ack) => {
                    if let Some((c, sent)) = inflight.remove(&p.xid()) {
                        assert_eq!(c, client);
                        acked.ack(client, p.yiaddr(), lease_time.unwrap(), sent);
                    }
                }
                Ok(MessageType::Nak) => {
                    inflight.remove(&p.xid());
                }
                _ => {}
            }
        }
        // Requests the server dropped (overload) are forgotten after a while.
        if inflight.len() >= 400 {
            std::thread::sleep(Duration::from_millis(2));
            let now = unix_now();
            inflight.retain(|_, (_, sent)| now.saturating_sub(*sent) < 3);
        }
    };
    // Replies that were in flight when the server died still count: they were sent after
    // the grant was durable.
    relay
        .sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while let Ok((n, _)) = relay.sock.recv_from(&mut buf) {
        let Ok(p) = Packet::new_checked(&buf[..n]) else {
            continue;
        };
        let ack = OptionIter::new(&buf[..n])
            .filter_map(Result::ok)
            .any(|(c, v)| c == opt::MESSAGE_TYPE && v[0] == MessageType::Ack as u8);
        if ack && let Some((c, sent)) = inflight.remove(&p.xid()) {
            acked.ack(c, p.yiaddr(), LEASE_TIME, sent);
        }
    }
    during_compaction
}

/// Wait until the server answers, or (killed by a watcher meanwhile) has died.
fn wait_ready(relay: &Relay, probe: u32, srv: &mut Proc) {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if relay.dora(probe).is_some() || srv.0.try_wait().unwrap().is_some() {
            return;
        }
    }
    panic!("server did not answer within 15 s");
}

/// A compaction's snapshot is written in milliseconds: a thread polls for its temporary file
/// and kills the server on sight (after 20 s without one, it kills anyway). Its result says
/// whether the kill landed during a compaction.
fn watch_compaction(srv: &Proc, data: &Path) -> std::thread::JoinHandle<bool> {
    let pid = libc::pid_t::try_from(srv.0.id()).unwrap();
    let data = data.to_path_buf();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(20);
        let seen = loop {
            if compaction_running(&data) {
                break true;
            }
            if Instant::now() >= end {
                break false;
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        // Somewhere in the compaction, not always at its first sight.
        if seen {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            std::thread::sleep(Duration::from_micros(u64::from(nanos % 1000)));
        }
        let hit = seen && compaction_running(&data);
        // Safety: SIGKILL to our own child, which only the test thread reaps.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        hit
    })
}

/// Every lease acknowledged to a client is in the store, active, for that client, with at
/// least the acknowledged expiry; no address is held by two clients.
fn verify(data: &Path, acked: &Acked, cycle: usize) {
    let check = twinlease(&["store", "check"], data);
    assert!(
        check.status.success(),
        "cycle {cycle}: store check after kill -9 found damage:\n{}",
        text(&check)
    );
    let ls = leases(data);
    for (c, (addr, promised)) in &acked.by_client {
        let Some((chaddr, state, expires)) = ls.get(addr) else {
            panic!("cycle {cycle}: ACKed lease {addr} of client {c} lost");
        };
        assert_eq!(
            chaddr,
            &mac_str(*c),
            "cycle {cycle}: {addr} bound to another client"
        );
        assert_eq!(state, "active", "cycle {cycle}: {addr}");
        assert!(
            expires + 1 >= *promised,
            "cycle {cycle}: {addr} expires {expires}, ACK promised {promised}"
        );
    }
}

#[test]
fn kill_dash_nine_in_a_loop_keeps_every_acked_lease() {
    let cycles: usize = std::env::var("TWINLEASE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash loop: {cycles} cycles, seed {seed:#x}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let relay = Relay::new(port);
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config(&data, port, relay.port(), 1)).unwrap();
    let mut acked = Acked::default();
    let mut next_client = 1u32;
    let mut in_compaction = 0;
    for cycle in 0..cycles {
        // Every third cycle kills during a compaction; the others after 50 ms .. 1.5 s.
        let kill_at = if cycle % 3 == 2 {
            KillAt::Compaction
        } else {
            KillAt::After(Duration::from_millis(50 + rng.below(1450)))
        };
        if kill_at == KillAt::Compaction {
            prefill(&data);
        }
        let mut srv = spawn_server(&cfg);
        let watcher = (kill_at == KillAt::Compaction).then(|| watch_compaction(&srv, &data));
        wait_ready(&relay, 1_000_000 + u32::try_from(cycle).unwrap(), &mut srv);
        let before = acked.acks;
        let hit = load_and_kill(
            srv,
            watcher,
            &relay,
            &mut acked,
            &mut next_client,
            kill_at,
            &mut rng,
        );
        in_compaction += usize::from(hit);
        eprintln!(
            "cycle {cycle}: {kill_at:?}, {} ACKs, {} clients, killed during compaction: {hit}",
            acked.acks - before,
            acked.by_client.len()
        );
        verify(&data, &acked, cycle);
    }
    eprintln!(
        "crash loop: {cycles} kill -9 cycles survived, {in_compaction} during a compaction, \
         {} leases ACKed",
        acked.by_client.len()
    );
    assert!(
        acked.by_client.len() > 100,
        "too little traffic to mean anything"
    );
    if cycles >= 3 {
        assert!(in_compaction > 0, "no kill landed during a compaction");
    }
}

/// Flip bytes in `file` at `offset`.
fn flip(file: &Path, offset: u64, len: usize) {
    let mut b = std::fs::read(file).unwrap();
    let o = usize::try_from(offset).unwrap();
    for x in &mut b[o..o + len] {
        *x ^= 0x5a;
    }
    std::fs::write(file, b).unwrap();
}

fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// Offset of the `n`-th frame of a segment (frames: 4-byte length, 4-byte crc, payload,
/// padded to 8; the first at 64).
fn frame_offset(seg: &Path, n: usize) -> u64 {
    let b = std::fs::read(seg).unwrap();
    let mut off = 64usize;
    for _ in 0..n {
        let len = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
        assert!(len > 0, "fewer than {n} frames");
        off += (8 + len).next_multiple_of(8);
    }
    off as u64
}

/// Run a server, give `n` clients a lease, stop it.
fn populate(cfg: &Path, relay: &Relay, data: &Path, first: u32, n: u32) {
    let mut srv = spawn_server(cfg);
    wait_ready(relay, first, &mut srv);
    for i in first + 1..first + n {
        relay.dora(i).expect("DORA answered");
    }
    stop(srv);
    let _ = leases(data);
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
fn damaged_segment_and_snapshot_refuse_start_and_repair_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let relay = Relay::new(port);
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config(&data, port, relay.port(), 1)).unwrap();
    populate(&cfg, &relay, &data, 1, 300);
    let shard = data.join("shard-0");
    let seg = files_in(&shard, ".seg").remove(0);
    let all = leases(&data);
    assert_eq!(all.len(), 300);

    // A clean store checks clean.
    let out = twinlease(&["store", "check"], &data);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Damage record 100 of the log: the start refuses, naming file and offset.
    let victim = frame_offset(&seg, 100);
    flip(&seg, victim + 12, 2);
    let run = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("TWINLEASE_LOG", "error")
        .output()
        .unwrap();
    let msg = text(&run);
    assert!(!run.status.success(), "server started on a damaged log");
    assert!(
        msg.contains(&seg.display().to_string()) && msg.contains(&format!("offset {victim}")),
        "refusal does not name the damage: {msg}"
    );
    assert!(msg.contains("twinlease store repair"), "{msg}");
    let out = twinlease(&["leases"], &data);
    assert!(!out.status.success(), "leases opened a damaged store");

    let out = twinlease(&["store", "check"], &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!("{}: offset {victim}: DAMAGE", seg.display())),
        "{report}"
    );

    // Repair without the explicit flag does nothing.
    let out = twinlease(&["store", "repair"], &data);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let backup = dir.path().join("backup");
    let out = Command::new(bin())
        .args(["store", "repair", "--drop-after-corruption", "--data-dir"])
        .arg(&data)
        .arg("--backup-dir")
        .arg(&backup)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The backup holds the damaged segment as it was.
    let copy = backup.join("shard-0").join(seg.file_name().unwrap());
    assert_eq!(frame_offset(&copy, 100), victim);
    assert!(std::fs::read(&copy).unwrap().len() > 1 << 19);
    let out = twinlease(&["store", "check"], &data);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The records before the damage survive, unchanged; those after it are gone.
    let kept = leases(&data);
    assert!(!kept.is_empty() && kept.len() < all.len(), "{}", kept.len());
    for (a, v) in &kept {
        assert_eq!(all.get(a), Some(v), "{a} changed by the repair");
    }

    // The server starts again and renews a lease kept by the repair.
    let mut srv = spawn_server(&cfg);
    wait_ready(&relay, 5000, &mut srv);
    let (addr, (chaddr, _, _)) = kept.iter().next().unwrap();
    let client = (1..400).find(|i| mac_str(*i) == *chaddr).unwrap();
    relay.send(MessageType::Request, client, 4242, *addr, None, None);
    let (r, _) = relay.wait(4242).expect("renewal answered");
    assert_eq!(
        (r.kind, r.yiaddr, r.lease_time),
        (MessageType::Ack as u8, *addr, Some(LEASE_TIME))
    );
}

/// Offset of the `n`-th record of a snapshot (header of 64 bytes, frames as in segments).
fn snapshot_frame_offset(snap: &Path, n: usize) -> u64 {
    frame_offset(snap, n)
}

#[test]
fn damaged_snapshot_refuses_start_and_repair_keeps_its_intact_records() {
    use twinlease::wal::{Wal, WalOptions};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let relay = Relay::new(port);
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config(&data, port, relay.port(), 1)).unwrap();
    populate(&cfg, &relay, &data, 1, 200);
    let before = leases(&data);
    // Fill segments with copies of the same records (small new segments) and compact, as a
    // long-running server would.
    {
        let opts = WalOptions {
            segment_size: 64 << 10,
            ..WalOptions::default()
        };
        let mut recs = Vec::new();
        let (mut wal, _) = Wal::open(&data, 0, opts, |p| recs.push(p.to_vec())).unwrap();
        for _ in 0..80 {
            for r in &recs {
                wal.append(r).unwrap();
            }
            wal.commit().unwrap();
        }
        let rep = wal.compactor().run().unwrap();
        drop(rep);
    }
    let shard = data.join("shard-0");
    let snap = files_in(&shard, ".snap").pop().expect("a snapshot");
    assert_eq!(leases(&data), before);
    let victim = snapshot_frame_offset(&snap, 50);
    flip(&snap, victim + 9, 3);

    let run = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("TWINLEASE_LOG", "error")
        .output()
        .unwrap();
    let msg = text(&run);
    assert!(
        !run.status.success(),
        "server started on a damaged snapshot"
    );
    assert!(
        msg.contains(&snap.display().to_string()) && msg.contains(&format!("offset {victim}")),
        "refusal does not name the damage: {msg}"
    );
    let out = twinlease(&["store", "check"], &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{}: offset {victim}: DAMAGE", snap.display())),
        "{}",
        text(&out)
    );
    let out = twinlease(&["store", "repair", "--drop-after-corruption"], &data);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        files_in(&data, "").iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("repair-backup-")),
        "no backup directory"
    );
    let out = twinlease(&["store", "check"], &data);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Every lease but the damaged record's (unless a later segment holds it) survives.
    let after = leases(&data);
    assert!(
        after.len() + 1 >= before.len(),
        "{} of {}",
        after.len(),
        before.len()
    );
    for (a, v) in &after {
        assert_eq!(before.get(a), Some(v), "{a} changed by the repair");
    }
    let mut srv = spawn_server(&cfg);
    wait_ready(&relay, 9000, &mut srv);
    assert!(relay.dora(9001).is_some());
}
