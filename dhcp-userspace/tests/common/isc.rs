//! ISC dhcpd 4.4 as the PRIMARY of failover relationship "p" on 127.0.0.1:6470, for the
//! interoperability tests of the failover codec (`failover_isc.rs`, `failover_isc_msgs.rs`).
//!
//! dhcpd needs a broadcast interface for its subnet (it refuses `lo`), so [`run`] re-runs the
//! calling test inside a private user and network namespace (`unshare -rn`, no root needed)
//! holding a veth pair and loopback: nothing reaches a real network. It skips with a message
//! when `/usr/sbin/dhcpd` is absent or namespaces are unavailable.
//!
//! Included by those tests with `#[path = "common/isc.rs"] mod isc;`.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DHCPD: &str = "/usr/sbin/dhcpd";
const PRIMARY_PORT: u16 = 6470;

const CONFIG: &str = r#"authoritative;
failover peer "p" {
  primary;
  address 127.0.0.1;
  port 6470;
  peer address 127.0.0.1;
  peer port 6471;
  max-response-delay 30;
  max-unacked-updates 10;
  mclt 3600;
  split 128;
  load balance max seconds 3;
}
subnet 10.231.0.0 netmask 255.255.255.0 {
  pool {
    failover peer "p";
    range 10.231.0.10 10.231.0.50;
  }
}
"#;

/// Kills and reaps dhcpd when the test ends, however it ends.
struct Dhcpd(Child);

impl Drop for Dhcpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The time now, as the draft's 32-bit seconds since 1970.
pub fn now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    u32::try_from(secs).expect("time fits the draft's 32-bit field")
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// The body of test `test_name`: outside the namespace (`child_env` unset) re-runs that test
/// inside one and checks that it passed there; inside, starts dhcpd with the lease file
/// `leases()` returns and runs `talk` (which connects with [`connect_primary`]), then prints
/// dhcpd's log and re-raises a panic of `talk`.
pub fn run(child_env: &str, test_name: &str, leases: fn() -> String, talk: fn()) {
    if !Path::new(DHCPD).exists() {
        eprintln!("skipping: {DHCPD} is absent (apt-get install isc-dhcp-server)");
        return;
    }
    if std::env::var_os(child_env).is_none() {
        let probe = Command::new("unshare")
            .args(["-rn", "true"])
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            eprintln!("skipping: cannot create a user+network namespace with `unshare -rn`");
            return;
        }
        let exe = std::env::current_exe().expect("test binary path");
        let out = Command::new("unshare")
            .arg("-rn")
            .arg(exe)
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(child_env, "1")
            .output()
            .expect("re-run the test inside a namespace");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("--- in the namespace ---\n{stdout}\n{stderr}");
        assert!(out.status.success(), "the test failed inside the namespace");
        assert!(
            stdout.contains("1 passed"),
            "the test did not run inside the namespace"
        );
        return;
    }
    in_namespace(leases, talk);
}

fn in_namespace(leases: fn() -> String, talk: fn()) {
    ip(&["link", "set", "lo", "up"]);
    ip(&["link", "add", "fo0", "type", "veth", "peer", "name", "fo1"]);
    ip(&["addr", "add", "10.231.0.1/24", "dev", "fo0"]);
    ip(&["link", "set", "fo0", "up"]);
    ip(&["link", "set", "fo1", "up"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("dhcpd.conf");
    let lease_file = dir.path().join("dhcpd.leases");
    let pid = dir.path().join("dhcpd.pid");
    let log = dir.path().join("dhcpd.log");
    std::fs::write(&conf, CONFIG).expect("write config");
    std::fs::write(&lease_file, leases()).expect("write leases file");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(DHCPD)
        .args(["-4", "-f", "-d", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(&lease_file)
        .arg("-pf")
        .arg(&pid)
        .arg("fo0")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup log"))
        .stderr(log_file)
        .spawn()
        .expect("start dhcpd");
    let dhcpd = Dhcpd(child);
    let result = std::panic::catch_unwind(talk);
    drop(dhcpd);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    println!("--- dhcpd log ---\n{log_text}");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A connection to dhcpd's failover port, retried every 200 ms while dhcpd starts (at most
/// 15 s).
pub fn connect_primary() -> TcpStream {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, PRIMARY_PORT));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("dhcpd never listened on {addr}: {e}"),
        }
    }
}
