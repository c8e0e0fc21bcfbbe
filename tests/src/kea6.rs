//! Kea's DHCPv6 server (`kea-dhcp6`) as a reference server: it proves the DHCPv6 harness
//! against a real, well-known implementation, and it is the baseline of `cargo xtask
//! bench-v6`.
//!
//! The server gets a memfile lease database, a fixed server DUID (DUID-EN, not persisted:
//! nothing is written outside the temporary folder), one subnet with an address pool and a
//! prefix-delegation pool, and optionally multi-threading.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use crate::netns::Netns;
use crate::process::{self, ChildGuard};
use crate::topology::{PD_DELEGATED_LEN, PD_PREFIX6, SUBNET6};
use crate::{Error, Result};

/// What to configure.
#[derive(Debug, Clone)]
pub struct Kea6Options {
    /// Interface to serve (in the namespace the server runs in).
    pub interface: String,
    /// The subnet served (id 1), e.g. `2001:db8:1::/64`.
    pub subnet: String,
    /// First and last address of the address pool (`IA_NA`).
    pub pool: (Ipv6Addr, Ipv6Addr),
    /// The prefix-delegation pool (`IA_PD`): prefix, its length and the delegated length.
    pub pd_pool: Option<(Ipv6Addr, u8, u8)>,
    /// Preferred lifetime, seconds.
    pub preferred_lifetime: u32,
    /// Valid lifetime, seconds.
    pub valid_lifetime: u32,
    /// `Some((threads, queue))` enables multi-threading with that thread pool and packet
    /// queue size.
    pub multi_threading: Option<(u32, u32)>,
    /// Logger severity (`INFO` logs every lease; use `WARN` for load).
    pub severity: String,
}

impl Kea6Options {
    /// Serves [`SUBNET6`] on `interface` with addresses `2001:db8:1::1000` to
    /// `2001:db8:1::ffff:ffff`, prefixes /56 from [`PD_PREFIX6`] (`2001:db8:8000::/40`),
    /// lifetimes 3000/4000 s, single-threaded, INFO logging.
    #[must_use]
    pub fn new(interface: &str) -> Self {
        Self {
            interface: interface.to_owned(),
            subnet: SUBNET6.to_owned(),
            pool: (
                Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x1000),
                Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xffff, 0xffff),
            ),
            pd_pool: Some((PD_PREFIX6.0, PD_PREFIX6.1, PD_DELEGATED_LEN)),
            preferred_lifetime: 3000,
            valid_lifetime: 4000,
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
        let pd_pools: Vec<serde_json::Value> = self
            .pd_pool
            .iter()
            .map(|(prefix, len, delegated)| {
                json!({ "prefix": prefix.to_string(), "prefix-len": len, "delegated-len": delegated })
            })
            .collect();
        json!({ "Dhcp6": {
            "interfaces-config": { "interfaces": [self.interface] },
            "server-id": {
                "type": "EN", "enterprise-id": 2495, "identifier": "7477696e6c65617365",
                "persist": false
            },
            "lease-database": {
                "type": "memfile", "persist": true,
                "name": lease_file.display().to_string(), "lfc-interval": 0
            },
            "multi-threading": {
                "enable-multi-threading": mt, "thread-pool-size": threads,
                "packet-queue-size": queue
            },
            "preferred-lifetime": self.preferred_lifetime,
            "valid-lifetime": self.valid_lifetime,
            "subnet6": [{
                "id": 1, "subnet": self.subnet, "interface": self.interface,
                "pools": [{ "pool": format!("{} - {}", self.pool.0, self.pool.1) }],
                "pd-pools": pd_pools,
                "option-data": [
                    { "name": "dns-servers", "data": "2001:db8:1::1" },
                    { "name": "domain-search", "data": "example.net" }
                ]
            }],
            "loggers": [{
                "name": "kea-dhcp6", "severity": self.severity,
                "output_options": [{ "output": "stderr" }]
            }]
        }})
    }
}

/// A running `kea-dhcp6`, stopped on drop. Its files live in a temporary folder.
#[derive(Debug)]
pub struct Kea6 {
    child: ChildGuard,
    lease_file: PathBuf,
    dir: TempDir,
}

impl Kea6 {
    /// Writes the configuration, checks it (`-t`), starts the server in `ns` and waits
    /// until it has bound UDP port 547. The interface needs a usable link-local address
    /// (see [`crate::topology::Topology::enable_ipv6`]).
    pub fn start(ns: &Netns, opts: &Kea6Options) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("tl-kea6").tempdir()?;
        let lease_file = dir.path().join("leases6.csv");
        let conf = dir.path().join("kea-dhcp6.json");
        let text = serde_json::to_string_pretty(&opts.config(&lease_file))
            .map_err(|e| Error(format!("kea6 config: {e}")))?;
        std::fs::write(&conf, text)?;
        let conf_s = conf.display().to_string();
        let envs = [
            ("KEA_PIDFILE_DIR", dir.path()),
            ("KEA_LOCKFILE_DIR", dir.path()),
        ];
        let mut check = ns.command("kea-dhcp6", &["-t", &conf_s]);
        check.envs(envs);
        process::run(&mut check, Duration::from_secs(20))?.ok("kea-dhcp6 -t")?;
        let mut cmd = ns.command("kea-dhcp6", &["-c", &conf_s]);
        cmd.envs(envs);
        let child = ChildGuard::spawn("kea-dhcp6", &mut cmd, &dir.path().join("kea6.log"))?;
        let mut kea = Self {
            child,
            lease_file,
            dir,
        };
        let ready = process::wait_until(Duration::from_secs(15), || {
            if !kea.child.is_running() {
                Some(false)
            } else if ns.udp_port_bound(547) {
                Some(true)
            } else {
                None
            }
        });
        if ready == Some(true) {
            Ok(kea)
        } else {
            Err(Error(format!("kea-dhcp6 did not start:\n{}", kea.log())))
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

    /// The current leases from the memfile (last row per address or prefix wins), keyed
    /// by (address, prefix length): 128 for addresses.
    pub fn leases(&self) -> Result<BTreeMap<(Ipv6Addr, u8), Kea6Lease>> {
        let text = std::fs::read_to_string(&self.lease_file)?;
        Ok(parse_lease6_csv(&text))
    }
}

/// One lease row of Kea's DHCPv6 memfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kea6Lease {
    /// The address, or the delegated prefix's first address.
    pub addr: Ipv6Addr,
    /// 128 for an address, the delegated length for a prefix.
    pub prefix_len: u8,
    /// The client's DUID, hex with colons.
    pub duid: String,
    /// `IAID`.
    pub iaid: u32,
    /// Valid lifetime; 0 marks a released lease.
    pub valid_lifetime: u64,
    /// Preferred lifetime.
    pub preferred_lifetime: u64,
    /// Expiry, UNIX seconds.
    pub expire: u64,
    /// Whether this is a delegated prefix (`lease_type` 2) rather than an address (0).
    pub is_prefix: bool,
    /// Kea state: 0 assigned, 1 declined, 2 expired-reclaimed.
    pub state: u32,
}

impl Kea6Lease {
    /// Whether the lease is assigned and not released.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.valid_lifetime > 0 && self.state == 0
    }
}

/// Parses Kea's `leases6.csv` (`address,duid,valid_lifetime,expire,subnet_id,
/// pref_lifetime,lease_type,iaid,prefix_len,...,state,...`); later rows for an address or
/// prefix replace earlier ones.
#[must_use]
pub fn parse_lease6_csv(text: &str) -> BTreeMap<(Ipv6Addr, u8), Kea6Lease> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip_while(|l| l.starts_with("address,")) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 14 {
            continue;
        }
        let Ok(addr) = f[0].parse() else { continue };
        let Ok(prefix_len) = f[8].parse() else {
            continue;
        };
        out.insert(
            (addr, prefix_len),
            Kea6Lease {
                addr,
                prefix_len,
                duid: f[1].to_owned(),
                valid_lifetime: f[2].parse().unwrap_or(0),
                expire: f[3].parse().unwrap_or(0),
                preferred_lifetime: f[5].parse().unwrap_or(0),
                is_prefix: f[6] == "2",
                iaid: f[7].parse().unwrap_or(0),
                state: f[13].parse().unwrap_or(0),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_rows_win_and_prefixes_are_told_apart() {
        let csv = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source\n\
                   2001:db8:1::11f1,00:01:00:01:32:93:f4:79:ea:6f:66:09:12:b7,4000,1795245979,1,3000,0,1711870647,128,0,0,,ea:6f:66:09:12:b7,0,,1,2\n\
                   2001:db8:8001:8e00::,00:01:00:01:32:93:f4:7d:ea:6f:66:09:12:b7,4000,1795245983,1,3000,2,1711870647,56,0,0,,ea:6f:66:09:12:b7,0,,1,2\n\
                   2001:db8:1::11f1,00:01:00:01:32:93:f4:79:ea:6f:66:09:12:b7,0,1795241979,1,0,0,1711870647,128,0,0,,ea:6f:66:09:12:b7,0,,1,2\n";
        let l = parse_lease6_csv(csv);
        assert_eq!(l.len(), 2);
        let a = &l[&("2001:db8:1::11f1".parse().unwrap(), 128)];
        assert!(!a.is_active() && !a.is_prefix);
        let p = &l[&("2001:db8:8001:8e00::".parse().unwrap(), 56)];
        assert!(p.is_active() && p.is_prefix);
        assert_eq!((p.iaid, p.preferred_lifetime), (1_711_870_647, 3000));
    }

    #[test]
    fn config_has_pools_threads_and_a_fixed_duid() {
        let mut o = Kea6Options::new("s0");
        o.multi_threading = Some((2, 64));
        let c = o.config(Path::new("/tmp/l6.csv"));
        let s = &c["Dhcp6"]["subnet6"][0];
        assert_eq!(s["subnet"], "2001:db8:1::/64");
        assert_eq!(
            s["pools"][0]["pool"],
            "2001:db8:1::1000 - 2001:db8:1::ffff:ffff"
        );
        assert_eq!(s["pd-pools"][0]["prefix"], "2001:db8:8000::");
        assert_eq!(s["pd-pools"][0]["prefix-len"], 40);
        assert_eq!(s["pd-pools"][0]["delegated-len"], 56);
        assert_eq!(c["Dhcp6"]["multi-threading"]["thread-pool-size"], 2);
        assert_eq!(c["Dhcp6"]["server-id"]["persist"], false);
        assert_eq!(c["Dhcp6"]["lease-database"]["name"], "/tmp/l6.csv");
    }
}
