//! Privilege drop of `twinlease run` (`[server] user`, `drop-capabilities`): as root, in a
//! fresh network namespace, over loopback as a relay agent (the client of loopback.rs).
//! Skipped (with a message) when not root.

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twinlease::wire::v4::{MessageType, OptionIter, Packet, ReplyHeader, ReplyWriter, opt};

const GIADDR: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A relay agent speaking for many simulated clients.
struct Relay {
    sock: UdpSocket,
    server: SocketAddrV4,
}

/// What a reply said.
#[derive(Debug, Clone, Copy)]
struct Reply {
    kind: u8,
    xid: u32,
    yiaddr: Ipv4Addr,
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x55, b[0], b[1], b[2], b[3]]
}

impl Relay {
    fn new(server_port: u16) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self {
            sock,
            server: SocketAddrV4::new(Ipv4Addr::LOCALHOST, server_port),
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    fn send(
        &self,
        kind: MessageType,
        i: u32,
        xid: u32,
        ciaddr: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        server_id: Option<Ipv4Addr>,
    ) {
        let mut hw = [0u8; 16];
        hw[..6].copy_from_slice(&mac(i));
        let hdr = ReplyHeader {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 1,
            xid,
            secs: 0,
            flags: 0,
            ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: GIADDR,
            chaddr: hw,
        };
        let mut buf = [0u8; 600];
        let mut w = ReplyWriter::new(&mut buf, &hdr).unwrap();
        w.option_u8(opt::MESSAGE_TYPE, kind as u8).unwrap();
        let mut cid = [0u8; 7];
        cid[0] = 1;
        cid[1..].copy_from_slice(&mac(i));
        w.option(opt::CLIENT_ID, &cid).unwrap();
        if let Some(r) = requested {
            w.option_ip(opt::REQUESTED_IP, r).unwrap();
        }
        if let Some(s) = server_id {
            w.option_ip(opt::SERVER_ID, s).unwrap();
        }
        w.option(opt::PRL, &[1, 3, 6, 15]).unwrap();
        let n = w.finish();
        self.sock.send_to(&buf[..n], self.server).unwrap();
    }

    fn recv(&self) -> Option<(Reply, Option<Ipv4Addr>)> {
        let mut buf = [0u8; 1500];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        let p = Packet::new_checked(&buf[..n]).ok()?;
        let mut kind = 0;
        let mut sid = None;
        for o in OptionIter::new(&buf[..n]) {
            let (c, v) = o.ok()?;
            match c {
                opt::MESSAGE_TYPE => kind = v[0],
                opt::SERVER_ID => sid = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                _ => {}
            }
        }
        Some((
            Reply {
                kind,
                xid: p.xid(),
                yiaddr: p.yiaddr(),
            },
            sid,
        ))
    }

    /// Wait for the reply with this xid (bounded).
    fn wait(&self, xid: u32) -> Option<(Reply, Option<Ipv4Addr>)> {
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Some(r) = self.recv()
                && r.0.xid == xid
            {
                return Some(r);
            }
        }
        None
    }

    /// DISCOVER + REQUEST for client `i`; the address it was given.
    fn dora(&self, i: u32) -> Option<Ipv4Addr> {
        let xid = i.wrapping_mul(2_654_435_761);
        self.send(
            MessageType::Discover,
            i,
            xid,
            Ipv4Addr::UNSPECIFIED,
            None,
            None,
        );
        let (offer, sid) = self.wait(xid)?;
        assert_eq!(offer.kind, MessageType::Offer as u8);
        self.send(
            MessageType::Request,
            i,
            xid ^ 1,
            Ipv4Addr::UNSPECIFIED,
            Some(offer.yiaddr),
            sid,
        );
        let (ack, _) = self.wait(xid ^ 1)?;
        (ack.kind == MessageType::Ack as u8).then_some(ack.yiaddr)
    }
}

const NOBODY: u32 = 65_534;

/// Root, and the calling thread moved into a fresh network namespace with loopback up (the
/// server and the relay then have ports 67 and any other to themselves). `false`: skip.
fn isolated_root() -> bool {
    // Safety: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (setuid, chown, network namespace)");
        return false;
    }
    // Safety: unshare of the network namespace affects only the calling thread, which is
    // this test's own; children it spawns inherit it.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
    let ok = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(ok.success(), "ip link set lo up");
    true
}

fn config(dir: &Path, relay_port: u16, user: Option<&str>) -> String {
    let user = user.map_or(String::new(), |u| format!("user = \"{u}\"\n"));
    format!(
        r#"[server]
data-dir = "{}"
workers = 2
listen = ["127.0.0.1:67"]
relay-port = {relay_port}
{user}[[subnet4]]
id = 7
subnet = "198.18.0.0/16"
relay-addresses = ["127.0.0.1"]
routers = ["198.18.0.1"]
lease-time = 3600
[[subnet4.pool]]
range = "198.18.1.0-198.18.1.255"
"#,
        dir.display()
    )
}

/// A temp directory the user `nobody` can traverse, and a data directory in it owned by
/// `owner`, mode 0700.
fn dirs(owner: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&data, Some(owner), Some(owner)).unwrap();
    (tmp, data)
}

/// The server process, killed and reaped on drop, also when an assertion fails first.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn spawn(cfg: &Path, log: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_twinlease"))
            .args(["run", "--config"])
            .arg(cfg)
            .env("TWINLEASE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// `key` of a /proc status file.
fn field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_owned()
}

/// Every thread's status file, once the process logged that it dropped its privileges.
fn threads_after_drop(pid: u32, log: &Path) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap();
        if text.contains("privileges dropped") {
            break;
        }
        assert!(Instant::now() < end, "no privilege drop logged: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        out.push(std::fs::read_to_string(e.unwrap().path().join("status")).unwrap());
    }
    out
}

fn stop(mut child: Proc, log: &Path) {
    // Safety: SIGTERM to our own child.
    unsafe { libc::kill(libc::pid_t::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Some(st) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(log).unwrap();
            assert!(st.success(), "exit {st}: {text}");
            assert!(text.contains("stopped"), "{text}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("server did not stop on SIGTERM");
}

fn files_owned_by(dir: &Path, uid: u32) -> usize {
    use std::os::unix::fs::MetadataExt as _;
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.uid(), uid, "{} belongs to uid {}", p.display(), m.uid());
        n += 1;
        if m.is_dir() {
            n += files_owned_by(&p, uid);
        }
    }
    n
}

#[test]
fn runs_as_nobody_without_capabilities() {
    if !isolated_root() {
        return;
    }
    let (tmp, data) = dirs(NOBODY);
    let relay = Relay::new(67);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, config(&data, relay.port(), Some("nobody"))).unwrap();
    let log = tmp.path().join("log");
    let child = spawn(&cfg, &log);
    let threads = threads_after_drop(child.id(), &log);
    assert!(
        threads.len() > 3,
        "expected worker threads: {}",
        threads.len()
    );
    for st in &threads {
        let name = field(st, "Name:");
        assert_eq!(field(st, "Uid:"), "65534\t65534\t65534\t65534", "{name}");
        assert_eq!(field(st, "Gid:"), "65534\t65534\t65534\t65534", "{name}");
        assert_eq!(field(st, "Groups:"), "", "{name}");
        for k in ["CapEff:", "CapPrm:", "CapAmb:"] {
            assert_eq!(u64::from_str_radix(&field(st, k), 16), Ok(0), "{name} {k}");
        }
    }
    // The main thread also cleared its inheritable set and set no_new_privs.
    let main = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    assert_eq!(u64::from_str_radix(&field(&main, "CapInh:"), 16), Ok(0));
    assert_eq!(field(&main, "NoNewPrivs:"), "1");
    // DHCP still works (the WAL is written by the unprivileged workers), twice so that a
    // renewal of a stored lease is covered too.
    let a = relay.dora(1).expect("no DORA after the privilege drop");
    assert_eq!(relay.dora(1), Some(a));
    assert!(files_owned_by(&data, NOBODY) > 0, "no store files");
    stop(child, &log);
    // Restart on the same store, as the same user: it recovers the lease.
    let child = spawn(&cfg, &log);
    threads_after_drop(child.id(), &log);
    assert_eq!(relay.dora(1), Some(a));
    stop(child, &log);
}

#[test]
fn refuses_a_data_dir_the_user_cannot_write() {
    if !isolated_root() {
        return;
    }
    let (tmp, data) = dirs(0);
    let relay = Relay::new(67);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, config(&data, relay.port(), Some("nobody"))).unwrap();
    let log = tmp.path().join("log");
    let mut child = spawn(&cfg, &log);
    let st = child.wait().unwrap();
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(!st.success(), "{text}");
    assert!(
        text.contains(&format!("server.data-dir: {}", data.display()))
            && text.contains("for user `nobody` (uid 65534"),
        "{text}"
    );
    // Nothing was bound or written.
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    assert!(UdpSocket::bind("127.0.0.1:67").is_ok());
    // A file below an otherwise fine directory that the user cannot write is refused too.
    std::os::unix::fs::chown(&data, Some(NOBODY), Some(NOBODY)).unwrap();
    let stray = data.join("shard-0");
    std::fs::create_dir(&stray).unwrap();
    let mut child = spawn(&cfg, &log);
    assert!(!child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("{} is not readable, writable", stray.display())),
        "{text}"
    );
}

#[test]
fn without_user_every_thread_drops_its_capabilities() {
    if !isolated_root() {
        return;
    }
    let (tmp, data) = dirs(0);
    let relay = Relay::new(67);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, config(&data, relay.port(), None)).unwrap();
    let log = tmp.path().join("log");
    let child = spawn(&cfg, &log);
    threads_after_drop(child.id(), &log);
    let main = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    for k in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"] {
        assert_eq!(u64::from_str_radix(&field(&main, k), 16), Ok(0), "{k}");
    }
    assert_eq!(field(&main, "NoNewPrivs:"), "1");
    // Every thread cleared its own sets as it started (capabilities are per thread).
    for t in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap() {
        let st = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        for k in ["CapEff:", "CapPrm:"] {
            assert_eq!(
                u64::from_str_radix(&field(&st, k), 16),
                Ok(0),
                "{k} of {}",
                field(&st, "Name:")
            );
        }
    }
    assert!(relay.dora(2).is_some());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("keep theirs"), "{text}");
    stop(child, &log);
}
