//! The `twinlease` binary under test: finding (and if needed building) it, writing its
//! configuration, running it in a namespace, and reading its lease store.
//!
//! The contract tested here: `twinlease run --config FILE` (foreground, logs on stderr,
//! SIGTERM stops it cleanly), `twinlease check-config FILE` (exit 0 valid, 1 with
//! `file: field: reason` lines), `twinlease leases --data-dir DIR` (one JSON object per
//! lease and line; `--family v6` for the DHCPv6 ones, see [`leases6`]).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

use crate::netns::Netns;
use crate::process::{self, ChildGuard, Output};
use crate::topology::{Ipv4Net, PD_DELEGATED_LEN, PD_PREFIX6, SUBNET6};
use crate::{Error, Result, workspace_root};

/// The cargo target folder: `CARGO_TARGET_DIR` (relative to the workspace root) or
/// `<workspace>/target`.
#[must_use]
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Path of the `twinlease` binary: `TWINLEASE_BIN` if set; otherwise runs (once per
/// process) `cargo build -p dhcp-userspace --bin twinlease`, which is quick when nothing
/// changed, and returns `target/debug/twinlease`; if that build fails, an existing
/// `target/{debug,release}/twinlease` is used.
pub fn binary() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("TWINLEASE_BIN") {
            return Ok(PathBuf::from(bin));
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "dhcp-userspace",
                "--bin",
                "twinlease",
            ])
            .current_dir(workspace_root());
        let build_result = process::run(&mut build, Duration::from_mins(20));
        let target = target_dir();
        let candidates = [
            target.join("debug/twinlease"),
            target.join("release/twinlease"),
        ];
        match build_result {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("harness: building twinlease failed:\n{}", out.stderr),
            Err(e) => eprintln!("harness: building twinlease failed: {e}"),
        }
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no twinlease binary under {}", target.display()))
    })
    .clone()
    .map_err(Error)
}

/// Path of an optimised `twinlease` binary for benchmarks: `TWINLEASE_BIN` if set, otherwise
/// `cargo build --release -p dhcp-userspace --bin twinlease` and `target/release/twinlease`.
/// Unlike [`binary`] it never falls back to a debug build: a benchmark of one would mislead.
pub fn release_binary() -> Result<PathBuf> {
    // Built once per process, so every rung of a benchmark runs the same binary.
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("TWINLEASE_BIN") {
            return Ok(PathBuf::from(bin));
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "dhcp-userspace",
                "--bin",
                "twinlease",
            ])
            .current_dir(workspace_root());
        let out = process::run(&mut build, Duration::from_mins(30)).map_err(|e| e.0)?;
        if !out.status.success() {
            return Err(format!(
                "building the release twinlease failed:\n{}",
                out.stderr
            ));
        }
        let bin = target_dir().join("release/twinlease");
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("no {}", bin.display()))
        }
    })
    .clone()
    .map_err(Error)
}

/// One `[[subnet4]]` table.
#[derive(Debug, Clone)]
pub struct Subnet4 {
    /// Subnet id.
    pub id: u32,
    /// The subnet.
    pub subnet: Ipv4Net,
    /// Interface it is on (directly attached clients).
    pub interface: String,
    /// Routers option.
    pub routers: Vec<Ipv4Addr>,
    /// DNS servers option.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Domain name option.
    pub domain_name: String,
    /// Lease time, seconds.
    pub lease_time: u32,
    /// Pools as `first-last` ranges.
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// One `[[subnet6]]` table: `id`, `prefix`, `interface`, `[[subnet6.pool]] range` and
/// `[[subnet6.pd-pool]] prefix` + `delegated-len`.
#[derive(Debug, Clone)]
pub struct Subnet6 {
    /// Subnet id.
    pub id: u32,
    /// The link's prefix, e.g. `2001:db8:1::/64`.
    pub prefix: String,
    /// Interface it is on (directly attached clients).
    pub interface: String,
    /// Address pools as `first-last` ranges.
    pub pools: Vec<(Ipv6Addr, Ipv6Addr)>,
    /// Prefix-delegation pools: (prefix, its length, delegated length).
    pub pd_pools: Vec<(Ipv6Addr, u8, u8)>,
}

impl Subnet6 {
    /// Subnet 1: [`SUBNET6`] on `s0`, addresses `2001:db8:1::1000` to
    /// `2001:db8:1::ffff:ffff`, /56 prefixes from [`PD_PREFIX6`] (the same pools as
    /// [`crate::kea6::Kea6Options::new`]).
    #[must_use]
    pub fn standard() -> Self {
        Self {
            id: 1,
            prefix: SUBNET6.to_owned(),
            interface: "s0".to_owned(),
            pools: vec![(
                Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x1000),
                Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xffff, 0xffff),
            )],
            pd_pools: vec![(PD_PREFIX6.0, PD_PREFIX6.1, PD_DELEGATED_LEN)],
        }
    }
}

/// A twinlease configuration file, written as TOML by [`TwinleaseConfig::to_toml`].
#[derive(Debug, Clone)]
pub struct TwinleaseConfig {
    /// `[server] data-dir`.
    pub data_dir: PathBuf,
    /// `[server] workers`.
    pub workers: u32,
    /// `[server] durability`: `"fsync"` or `"none"`.
    pub durability: String,
    /// `[server] io`: `"socket"` or `"xdp"`.
    pub io: String,
    /// `[server] listen`.
    pub listen: Vec<String>,
    /// `[server] interfaces`.
    pub interfaces: Vec<String>,
    /// `[server] offer-hold-secs`.
    pub offer_hold_secs: u32,
    /// `[server] decline-probation-secs`.
    pub decline_probation_secs: u32,
    /// The subnets.
    pub subnets: Vec<Subnet4>,
    /// The DHCPv6 subnets (`[[subnet6]]`); none in [`TwinleaseConfig::standard`].
    pub subnets6: Vec<Subnet6>,
}

impl TwinleaseConfig {
    /// The standard configuration: data in `data_dir`, 2 workers, fsync durability,
    /// listening on 0.0.0.0:67 on `s0`, and one subnet (id 1) with `pool`, router and DNS
    /// host(1) of `subnet`, domain example.net, lease time `lease_time`.
    #[must_use]
    pub fn standard(
        data_dir: &Path,
        subnet: Ipv4Net,
        pool: (Ipv4Addr, Ipv4Addr),
        lease_time: u32,
    ) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            workers: 2,
            durability: "fsync".to_owned(),
            io: "socket".to_owned(),
            listen: vec!["0.0.0.0:67".to_owned()],
            interfaces: vec!["s0".to_owned()],
            offer_hold_secs: 30,
            decline_probation_secs: 86400,
            subnets: vec![Subnet4 {
                id: 1,
                subnet,
                interface: "s0".to_owned(),
                routers: vec![subnet.host(1)],
                dns_servers: vec![subnet.host(1)],
                domain_name: "example.net".to_owned(),
                lease_time,
                pools: vec![pool],
            }],
            subnets6: Vec::new(),
        }
    }

    /// The TOML text.
    #[must_use]
    pub fn to_toml(&self) -> String {
        fn list<T: std::fmt::Display>(items: &[T]) -> String {
            let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
            format!("[{}]", quoted.join(", "))
        }
        let mut s = String::from("# Written by the twinlease test harness.\n[server]\n");
        let _ = writeln!(s, "data-dir = \"{}\"", self.data_dir.display());
        let _ = writeln!(s, "workers = {}", self.workers);
        let _ = writeln!(s, "durability = \"{}\"", self.durability);
        let _ = writeln!(s, "io = \"{}\"", self.io);
        let _ = writeln!(s, "listen = {}", list(&self.listen));
        let _ = writeln!(s, "interfaces = {}", list(&self.interfaces));
        let _ = writeln!(s, "offer-hold-secs = {}", self.offer_hold_secs);
        let _ = writeln!(
            s,
            "decline-probation-secs = {}",
            self.decline_probation_secs
        );
        for n in &self.subnets {
            let _ = writeln!(s, "\n[[subnet4]]");
            let _ = writeln!(s, "id = {}", n.id);
            let _ = writeln!(s, "subnet = \"{}\"", n.subnet);
            let _ = writeln!(s, "interface = \"{}\"", n.interface);
            let _ = writeln!(s, "routers = {}", list(&n.routers));
            let _ = writeln!(s, "dns-servers = {}", list(&n.dns_servers));
            let _ = writeln!(s, "domain-name = \"{}\"", n.domain_name);
            let _ = writeln!(s, "lease-time = {}", n.lease_time);
            for (first, last) in &n.pools {
                let _ = writeln!(s, "\n[[subnet4.pool]]\nrange = \"{first}-{last}\"");
            }
        }
        for n in &self.subnets6 {
            let _ = writeln!(s, "\n[[subnet6]]");
            let _ = writeln!(s, "id = {}", n.id);
            let _ = writeln!(s, "prefix = \"{}\"", n.prefix);
            let _ = writeln!(s, "interface = \"{}\"", n.interface);
            for (first, last) in &n.pools {
                let _ = writeln!(s, "\n[[subnet6.pool]]\nrange = \"{first}-{last}\"");
            }
            for (prefix, len, delegated) in &n.pd_pools {
                let _ = writeln!(
                    s,
                    "\n[[subnet6.pd-pool]]\nprefix = \"{prefix}/{len}\"\ndelegated-len = {delegated}"
                );
            }
        }
        s
    }

    /// Writes the TOML to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_toml())?;
        Ok(())
    }
}

/// A running `twinlease run --config FILE` in a namespace, stopped on drop.
#[derive(Debug)]
pub struct Twinlease {
    child: ChildGuard,
}

impl Twinlease {
    /// Starts the server from `bin` in `ns` with `config`, logging to `log`, and waits up
    /// to 20 s until it serves: it has bound UDP port 67 there (socket path) or logged that
    /// it is serving (the `AF_XDP` path binds no UDP port). A restart may reuse `log`: the
    /// log is appended to, and only lines this run wrote count.
    pub fn start(ns: &Netns, bin: &Path, config: &Path, log: &Path) -> Result<Self> {
        Self::start_on_port(ns, bin, config, log, 67)
    }

    /// Like [`Twinlease::start`] but waits for UDP `port` (547 for DHCPv6, RFC 8415 §7.2)
    /// or the serving log line.
    pub fn start_on_port(
        ns: &Netns,
        bin: &Path,
        config: &Path,
        log: &Path,
        port: u16,
    ) -> Result<Self> {
        let bin_s = bin.display().to_string();
        let conf_s = config.display().to_string();
        // The "serving" line of an earlier run in the same log does not make this one ready.
        let log_start = std::fs::metadata(log).map_or(0, |m| m.len());
        let mut cmd = ns.command(&bin_s, &["run", "--config", &conf_s]);
        cmd.env("RUST_BACKTRACE", "1");
        let child =
            ChildGuard::spawn("twinlease", &mut cmd, log)?.with_grace(Duration::from_secs(10));
        let mut me = Self { child };
        let ready = process::wait_until(Duration::from_secs(20), || {
            if !me.child.is_running() {
                Some(false)
            } else if ns.udp_port_bound(port) || logged_since(log, log_start, SERVING) {
                Some(true)
            } else {
                None
            }
        });
        if ready == Some(true) {
            Ok(me)
        } else {
            let status = match me.child.try_status() {
                Ok(Some(status)) => format!("exited with {status}"),
                _ => format!("did not bind UDP port {port} within 20 s"),
            };
            Err(Error(format!(
                "twinlease did not start serving ({status}):\n{}",
                me.child.log_text()
            )))
        }
    }

    /// CPU seconds the server has used so far.
    #[must_use]
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.child.cpu_seconds()
    }

    /// The server's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.child.log_text()
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// SIGTERM; Ok(()) when it exits with status 0 within the grace period.
    pub fn stop(&mut self) -> Result<()> {
        self.child.signal(libc::SIGTERM);
        match self.child.wait_timeout(Duration::from_secs(10))? {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(Error(format!(
                "twinlease exited with {status} on SIGTERM:\n{}",
                self.log()
            ))),
            None => {
                self.child.kill9()?;
                Err(Error(format!(
                    "twinlease ignored SIGTERM for 10 s:\n{}",
                    self.log()
                )))
            }
        }
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill9().map(drop)
    }
}

/// The line `twinlease run` logs once it serves.
const SERVING: &str = "twinlease serving";

/// Whether `needle` is in what was written to the file `log` after its first `offset`
/// bytes (a restarted server appends to the log of the run before).
fn logged_since(log: &Path, offset: u64, needle: &str) -> bool {
    let Ok(bytes) = std::fs::read(log) else {
        return false;
    };
    let from = usize::try_from(offset).map_or(bytes.len(), |o| o.min(bytes.len()));
    String::from_utf8_lossy(&bytes[from..]).contains(needle)
}

/// One line of `twinlease leases`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LeaseRecord {
    /// The address.
    pub addr: Ipv4Addr,
    /// `active`, `released`, `expired`, `declined`, `offered` ...
    pub state: String,
    /// Client key, e.g. `id:01:aa:...` (absent for some states).
    #[serde(default)]
    pub client: Option<String>,
    /// Hardware address `aa:bb:cc:dd:ee:ff`.
    #[serde(default)]
    pub chaddr: Option<String>,
    /// Subnet id.
    pub subnet_id: u32,
    /// Expiry, UNIX seconds.
    pub expires: u64,
    /// Client last transaction time, UNIX seconds.
    #[serde(default)]
    pub cltt: Option<u64>,
}

/// Parses the output of `twinlease leases` (one JSON object per non-empty line).
pub fn parse_leases(text: &str) -> Result<Vec<LeaseRecord>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| Error(format!("lease line {l:?}: {e}"))))
        .collect()
}

/// Runs `twinlease leases --data-dir DIR` and parses it.
pub fn leases(bin: &Path, data_dir: &Path) -> Result<Vec<LeaseRecord>> {
    let mut cmd = Command::new(bin);
    cmd.arg("leases").arg("--data-dir").arg(data_dir).args(["--family", "v4"]);
    let out = process::run_ok(&mut cmd, Duration::from_mins(1))?;
    parse_leases(&out)
}

/// One line of `twinlease leases --family v6`: an address (`IA_NA`) or delegated prefix
/// (`IA_PD`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LeaseRecord6 {
    /// `na` (address) or `pd` (delegated prefix).
    pub kind: String,
    /// The address, or the prefix.
    pub addr: Ipv6Addr,
    /// 128 for an address.
    pub prefix_len: u8,
    /// `active`, `released`, `expired`, `declined` ...
    pub state: String,
    /// Client key, `duid:00:01:...`.
    #[serde(default)]
    pub client: Option<String>,
    /// IAID of the IA the lease is in.
    #[serde(default)]
    pub iaid: Option<u32>,
    /// Subnet id.
    pub subnet_id: u32,
    /// End of the preferred lifetime, UNIX seconds.
    #[serde(default)]
    pub preferred_until: Option<u64>,
    /// End of the valid lifetime, UNIX seconds.
    pub expires: u64,
    /// Client last transaction time, UNIX seconds.
    #[serde(default)]
    pub cltt: Option<u64>,
}

impl LeaseRecord6 {
    /// Whether it is a delegated prefix.
    #[must_use]
    pub fn is_prefix(&self) -> bool {
        self.kind == "pd"
    }
}

/// Parses the output of `twinlease leases --family v6` (one JSON object per non-empty line).
pub fn parse_leases6(text: &str) -> Result<Vec<LeaseRecord6>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| Error(format!("lease line {l:?}: {e}"))))
        .collect()
}

/// Runs `twinlease leases --data-dir DIR --family v6` and parses it.
pub fn leases6(bin: &Path, data_dir: &Path) -> Result<Vec<LeaseRecord6>> {
    let mut cmd = Command::new(bin);
    cmd.arg("leases")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--family", "v6"]);
    let out = process::run_ok(&mut cmd, Duration::from_mins(1))?;
    parse_leases6(&out)
}

/// Runs `twinlease check-config FILE`.
pub fn check_config(bin: &Path, config: &Path) -> Result<Output> {
    let mut cmd = Command::new(bin);
    cmd.arg("check-config").arg(config);
    process::run(&mut cmd, Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::write_script;
    use crate::require_root;

    #[test]
    fn logged_since_reads_only_past_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("twinlease.log");
        assert!(!logged_since(&log, 0, SERVING));
        std::fs::write(
            &log,
            "INFO twinlease::cli: twinlease serving listen=[0.0.0.0:67]\n",
        )
        .unwrap();
        assert!(logged_since(&log, 0, SERVING));
        let end = std::fs::metadata(&log).unwrap().len();
        assert!(!logged_since(&log, end, SERVING));
        assert!(!logged_since(&log, end + 10, SERVING));
        let mut text = std::fs::read_to_string(&log).unwrap();
        text.push_str("INFO twinlease::cli: twinlease serving listen=[0.0.0.0:67]\n");
        std::fs::write(&log, text).unwrap();
        assert!(logged_since(&log, end, SERVING));
    }

    /// A restart reuses the log of the run before, whose last lines say it served: the
    /// restarted server is not ready until it has bound its port or logged so itself. (Taken
    /// as ready at once, a restarted server in the dhclient test got the DHCPRELEASE before
    /// it had bound port 67, while it was still reading its store: ICMP port unreachable.)
    #[test]
    fn start_ignores_the_serving_line_of_an_earlier_run() {
        require_root!();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("twinlease.log");
        std::fs::write(
            &log,
            "INFO twinlease::cli: twinlease serving listen=[0.0.0.0:67]\n\
             INFO twinlease::cli: stopping signal=15\n",
        )
        .unwrap();
        let ns = Netns::create("ready").unwrap();
        // A server that never serves: it exits with status 3 after a second.
        let dead = dir.path().join("dead");
        write_script(&dead, "#!/bin/sh\nsleep 1\nexit 3\n").unwrap();
        let err = Twinlease::start(&ns, &dead, Path::new("/nonexistent.toml"), &log)
            .expect_err("ready on the earlier run's line");
        assert!(err.to_string().contains("exited with"), "{err}");
        // A server that logs "serving" itself (after half a second) is ready.
        let slow = dir.path().join("slow");
        write_script(
            &slow,
            "#!/bin/sh\nsleep 0.5\necho 'INFO twinlease::cli: twinlease serving' >&2\nexec sleep 30\n",
        )
        .unwrap();
        let mut server =
            Twinlease::start(&ns, &slow, Path::new("/nonexistent.toml"), &log).unwrap();
        assert!(server.is_running());
        server.kill9().unwrap();
    }

    #[test]
    fn writes_the_contract_shape() {
        let c = TwinleaseConfig::standard(
            Path::new("/tmp/x"),
            Ipv4Net::test_net_1(),
            (Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 250)),
            3600,
        );
        let t = c.to_toml();
        for want in [
            "[server]\ndata-dir = \"/tmp/x\"\nworkers = 2\ndurability = \"fsync\"\n",
            "listen = [\"0.0.0.0:67\"]\ninterfaces = [\"s0\"]\n",
            "offer-hold-secs = 30\ndecline-probation-secs = 86400\n",
            "[[subnet4]]\nid = 1\nsubnet = \"192.0.2.0/24\"\ninterface = \"s0\"\n",
            "routers = [\"192.0.2.1\"]\ndns-servers = [\"192.0.2.1\"]\n",
            "domain-name = \"example.net\"\nlease-time = 3600\n",
            "[[subnet4.pool]]\nrange = \"192.0.2.100-192.0.2.250\"\n",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
    }

    #[test]
    fn writes_subnet6_tables() {
        let mut c = TwinleaseConfig::standard(
            Path::new("/tmp/x"),
            Ipv4Net::test_net_1(),
            (Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 250)),
            3600,
        );
        assert!(!c.to_toml().contains("subnet6"));
        c.subnets6.push(Subnet6::standard());
        let t = c.to_toml();
        for want in [
            "[[subnet6]]\nid = 1\nprefix = \"2001:db8:1::/64\"\ninterface = \"s0\"\n",
            "[[subnet6.pool]]\nrange = \"2001:db8:1::1000-2001:db8:1::ffff:ffff\"\n",
            "[[subnet6.pd-pool]]\nprefix = \"2001:db8:8000::/40\"\ndelegated-len = 56\n",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        // The v6 tables come after every v4 table, so they cannot end up inside one.
        assert!(t.find("[[subnet6]]").unwrap() > t.rfind("[[subnet4.pool]]").unwrap());
    }

    #[test]
    fn parses_lease_lines() {
        let text = r#"{"addr":"192.0.2.100","state":"active","client":"id:01:aa:bb:cc:dd:ee:ff","chaddr":"aa:bb:cc:dd:ee:ff","subnet_id":1,"expires":1700003600,"cltt":1700000000}

{"addr":"192.0.2.101","state":"released","subnet_id":1,"expires":0}"#;
        let l = parse_leases(text).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].addr, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(l[0].chaddr.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(l[1].state, "released");
        assert_eq!(l[1].client, None);
        assert!(parse_leases("{\"addr\":1}").is_err());
    }

    #[test]
    fn parses_lease6_lines() {
        let text = r#"{"kind":"na","addr":"2001:db8:1::1000","prefix_len":128,"state":"active","client":"duid:00:01:00:01:aa:bb","iaid":1,"subnet_id":1,"preferred_until":1700000006,"expires":1700000010,"cltt":1700000000}
{"kind":"pd","addr":"2001:db8:8000:100::","prefix_len":56,"state":"released","client":"duid:00:03:00:01:02","iaid":7,"subnet_id":1,"preferred_until":0,"expires":0,"cltt":1700000000}
"#;
        let l = parse_leases6(text).unwrap();
        assert_eq!(l.len(), 2);
        assert!(!l[0].is_prefix() && l[1].is_prefix());
        assert_eq!(l[0].addr, "2001:db8:1::1000".parse::<Ipv6Addr>().unwrap());
        assert_eq!((l[1].prefix_len, l[1].iaid), (56, Some(7)));
        assert_eq!(l[0].client.as_deref(), Some("duid:00:01:00:01:aa:bb"));
        assert!(
            parse_leases6(r#"{"addr":"192.0.2.1","state":"active","subnet_id":1,"expires":0}"#)
                .is_err()
        );
    }
}
