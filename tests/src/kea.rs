//! Kea's DHCP server for version 4 (`kea-dhcp4`) as a reference server: it proves the harness against
//! a real, well-known implementation, and it is the baseline of the socket benchmark.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use crate::netns::Netns;
use crate::process::{self, ChildGuard};
use crate::topology::Ipv4Net;
use crate::{Error, Result};

/// What to configure.
#[derive(Debug, Clone)]
pub struct KeaOptions {
    /// Interface to serve (in the namespace the server runs in).
    pub interface: String,
    /// The subnet served (id 1).
    pub subnet: Ipv4Net,
    /// First and last address of the pool.
    pub pool: (Ipv4Addr, Ipv4Addr),
    /// Routers option.
    pub router: Ipv4Addr,
    /// Valid lifetime of leases, seconds.
    pub valid_lifetime: u32,
    /// `Some((threads, queue))` enables multi-threading with that thread pool and packet
    /// queue size.
    pub multi_threading: Option<(u32, u32)>,
    /// Logger severity (`INFO` logs every lease; use `WARN` for load).
    pub severity: String,
}

impl KeaOptions {
    /// Serves `subnet` on `interface` with pool `pool`, router host(1), lifetime 3600 s,
    /// single-threaded, INFO logging.
    #[must_use]
    pub fn new(interface: &str, subnet: Ipv4Net, pool: (Ipv4Addr, Ipv4Addr)) -> Self {
        Self {
            interface: interface.to_owned(),
            subnet,
            pool,
            router: subnet.host(1),
            valid_lifetime: 3600,
            multi_threading: None,
            severity: "INFO".to_owned(),
        }
    }

    /// The Kea configuration (JSON) with its lease file at `lease_file`.
    #[must_use]
    pub fn config(&self, lease_file: &Path) -> serde_json::Value {
        let (threads, queue, mt) = match self.multi_threading {
            Some((t, q)) => (t, q, true),
            None => (0, 0, false),
        };
        json!({ "Dhcp4": {
            "interfaces-config": { "interfaces": [self.interface], "dhcp-socket-type": "raw" },
            "lease-database": {
                "type": "memfile", "persist": true,
                "name": lease_file.display().to_string(), "lfc-interval": 0
            },
            "multi-threading": {
                "enable-multi-threading": mt, "thread-pool-size": threads,
                "packet-queue-size": queue
            },
            "valid-lifetime": self.valid_lifetime,
            "subnet4": [{
                "id": 1, "subnet": self.subnet.to_string(), "interface": self.interface,
                "pools": [{ "pool": format!("{} - {}", self.pool.0, self.pool.1) }],
                "option-data": [
                    { "name": "routers", "data": self.router.to_string() },
                    { "name": "domain-name-servers", "data": self.router.to_string() },
                    { "name": "domain-name", "data": "example.net" }
                ]
            }],
            "loggers": [{
                "name": "kea-dhcp4", "severity": self.severity,
                "output_options": [{ "output": "stderr" }]
            }]
        }})
    }
}

/// A running `kea-dhcp4`, stopped on drop. Its files live in a temporary folder.
#[derive(Debug)]
pub struct Kea {
    child: ChildGuard,
    lease_file: PathBuf,
    dir: TempDir,
}

impl Kea {
    /// Writes the configuration, checks it (`-t`), starts the server in `ns` and waits
    /// until it has bound UDP port 67.
    pub fn start(ns: &Netns, opts: &KeaOptions) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("tl-kea").tempdir()?;
        let lease_file = dir.path().join("leases4.csv");
        let conf = dir.path().join("kea-dhcp4.json");
        let text = serde_json::to_string_pretty(&opts.config(&lease_file))
            .map_err(|e| Error(format!("kea config: {e}")))?;
        std::fs::write(&conf, text)?;
        let conf_s = conf.display().to_string();
        let envs = [
            ("KEA_PIDFILE_DIR", dir.path()),
            ("KEA_LOCKFILE_DIR", dir.path()),
        ];
        let mut check = ns.command("kea-dhcp4", &["-t", &conf_s]);
        check.envs(envs);
        process::run(&mut check, Duration::from_secs(20))?.ok("kea-dhcp4 -t")?;
        let mut cmd = ns.command("kea-dhcp4", &["-c", &conf_s]);
        cmd.envs(envs);
        let child = ChildGuard::spawn("kea-dhcp4", &mut cmd, &dir.path().join("kea.log"))?;
        let mut kea = Self {
            child,
            lease_file,
            dir,
        };
        let ready = process::wait_until(Duration::from_secs(15), || {
            if !kea.child.is_running() {
                Some(false)
            } else if ns.udp_port_bound(67) {
                Some(true)
            } else {
                None
            }
        });
        if ready == Some(true) {
            Ok(kea)
        } else {
            Err(Error(format!("kea-dhcp4 did not start:\n{}", kea.log())))
        }
    }

    /// The server's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.child.log_text()
    }

    /// CPU seconds the server has used so far.
    #[must_use]
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.child.cpu_seconds()
    }

    /// The folder holding configuration, lease file and log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (SIGTERM) and says whether it exited cleanly.
    pub fn stop(&mut self) -> Result<bool> {
        self.child.terminate_cleanly()
    }

    /// The current leases from the memfile (last row per address wins), keyed by address.
    pub fn leases(&self) -> Result<BTreeMap<Ipv4Addr, KeaLease>> {
        let text = std::fs::read_to_string(&self.lease_file)?;
        Ok(parse_lease_csv(&text))
    }
}

/// One lease row of Kea's memfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeaLease {
    /// The address.
    pub addr: Ipv4Addr,
    /// Hardware address, `aa:bb:...`.
    pub hwaddr: String,
    /// Client identifier, hex with colons (may be empty).
    pub client_id: String,
    /// Valid lifetime; 0 marks a released (deleted) lease.
    pub valid_lifetime: u64,
    /// Expiry, UNIX seconds.
    pub expire: u64,
    /// Kea state: 0 assigned, 1 declined, 2 expired-reclaimed.
    pub state: u32,
}

impl KeaLease {
    /// Whether the lease is assigned and not released.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.valid_lifetime > 0 && self.state == 0
    }
}

/// Parses Kea's `leases4.csv`; later rows for an address replace earlier ones.
#[must_use]
pub fn parse_lease_csv(text: &str) -> BTreeMap<Ipv4Addr, KeaLease> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip_while(|l| l.starts_with("address,")) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 10 {
            continue;
        }
        let Ok(addr) = f[0].parse() else { continue };
        out.insert(
            addr,
            KeaLease {
                addr,
                hwaddr: f[1].to_owned(),
                client_id: f[2].to_owned(),
                valid_lifetime: f[3].parse().unwrap_or(0),
                expire: f[4].parse().unwrap_or(0),
                state: f[9].parse().unwrap_or(0),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_rows_win() {
        let csv = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
                   192.0.2.100,aa:bb:cc:dd:ee:ff,01:aa:bb:cc:dd:ee:ff,3600,1000,1,0,0,,0,\n\
                   192.0.2.101,aa:bb:cc:dd:ee:01,,3600,1000,1,0,0,,0,\n\
                   192.0.2.100,aa:bb:cc:dd:ee:ff,01:aa:bb:cc:dd:ee:ff,0,1000,1,0,0,,0,\n";
        let l = parse_lease_csv(csv);
        assert_eq!(l.len(), 2);
        assert!(!l[&Ipv4Addr::new(192, 0, 2, 100)].is_active());
        assert!(l[&Ipv4Addr::new(192, 0, 2, 101)].is_active());
        assert_eq!(
            l[&Ipv4Addr::new(192, 0, 2, 101)].hwaddr,
            "aa:bb:cc:dd:ee:01"
        );
    }

    #[test]
    fn config_has_pool_and_threads() {
        let mut o = KeaOptions::new(
            "s0",
            Ipv4Net::test_net_1(),
            (Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 250)),
        );
        o.multi_threading = Some((2, 64));
        let c = o.config(Path::new("/tmp/l.csv"));
        assert_eq!(
            c["Dhcp4"]["subnet4"][0]["pools"][0]["pool"],
            "192.0.2.100 - 192.0.2.250"
        );
        assert_eq!(c["Dhcp4"]["multi-threading"]["thread-pool-size"], 2);
        assert_eq!(c["Dhcp4"]["lease-database"]["persist"], true);
    }
}
