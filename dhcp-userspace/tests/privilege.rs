//! Privilege drop of `twinlease run` (`[server] user`, `drop-capabilities`): as root, in a
//! fresh network namespace, over loopback as a relay agent (the client of loopback.rs).
//! Skipped (with a message) when not root.

use std::io::Read as _;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[expect(dead_code, reason = "these tests do not read the granted lease time")]
mod common;
use common::{Proc, Relay};

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
