//! Network namespaces and veth pairs that remove themselves.
//!
//! Names are `tl<pid>-<n>...`: unique per test process, and recognisable by
//! [`sweep_stale`], which deletes namespaces and links left by test processes that no
//! longer exist.

use std::net::Ipv6Addr;
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::process::{self, ChildGuard, Output};
use crate::{Error, Result};

/// Timeout of one `ip` command.
const IP_TIMEOUT: Duration = Duration::from_secs(15);

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// A fresh name prefix `tl<pid>-<n>`, unique within this process.
#[must_use]
pub fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("tl{}-{n}", std::process::id())
}

/// Runs `ip ARGS...` and requires success; returns its standard output.
pub fn ip(args: &[&str]) -> Result<String> {
    process::run_ok(Command::new("ip").args(args), IP_TIMEOUT)
}

/// The pid encoded in a name `tl<pid>-...`, if the name has that shape.
#[must_use]
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("tl")?;
    let (digits, _) = rest.split_once('-')?;
    digits.parse().ok()
}

fn is_dead(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces and root-namespace links named `tl<pid>-...` whose pid is no longer
/// running. Runs once per process, from [`Netns::create`]; safe to call more often.
pub fn sweep_stale() {
    SWEEP.call_once(|| {
        if let Ok(list) = ip(&["netns", "list"]) {
            for line in list.lines() {
                let Some(name) = line.split_whitespace().next() else {
                    continue;
                };
                if owner_pid(name).is_some_and(is_dead) {
                    eprintln!("harness: removing stale namespace {name}");
                    let _ = ip(&["netns", "del", name]);
                }
            }
        }
        if let Ok(links) = ip(&["-o", "link", "show"]) {
            for line in links.lines() {
                // "7: tl123-4a@if6: <...>"
                let Some(field) = line.split(": ").nth(1) else {
                    continue;
                };
                let name = field.split('@').next().unwrap_or(field);
                if owner_pid(name).is_some_and(is_dead) {
                    eprintln!("harness: removing stale link {name}");
                    let _ = ip(&["link", "del", name]);
                }
            }
        }
    });
}

/// A network namespace, deleted on drop. Processes started inside it should be dropped
/// first (declare the namespace before them).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `tl<pid>-<n>-<role>` with its loopback up.
    pub fn create(role: &str) -> Result<Self> {
        sweep_stale();
        let name = format!("{}-{role}", unique_prefix());
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...` and requires success.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// A command that runs `program args...` inside the namespace.
    #[must_use]
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, program: &str, args: &[S]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        cmd
    }

    /// Runs `program args...` inside the namespace to completion (killed after `timeout`).
    pub fn exec<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &str,
        args: &[S],
        timeout: Duration,
    ) -> Result<Output> {
        process::run(&mut self.command(program, args), timeout)
    }

    /// Like [`Netns::exec`] but requires exit status 0; returns standard output.
    pub fn exec_ok<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &str,
        args: &[S],
        timeout: Duration,
    ) -> Result<String> {
        process::run_ok(&mut self.command(program, args), timeout)
    }

    /// Starts `program args...` inside the namespace; its output goes to `log`.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        &self,
        name: &str,
        program: &str,
        args: &[S],
        log: &Path,
    ) -> Result<ChildGuard> {
        ChildGuard::spawn(name, &mut self.command(program, args), log)
    }

    /// Adds `cidr` (e.g. `192.0.2.1/24`) to interface `dev`.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        self.ip(&["addr", "add", cidr, "dev", dev]).map(drop)
    }

    /// Sets interface `dev` up.
    pub fn link_up(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "up"]).map(drop)
    }

    /// Sets sysctl `key` (e.g. `net.ipv6.conf.s0.accept_dad`) to `value` in the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let kv = format!("{key}={value}");
        self.exec_ok("sysctl", &["-q", "-w", &kv], IP_TIMEOUT)
            .map(drop)
    }

    /// Turns IPv6 duplicate address detection off on `dev` (RFC 4862 §5.4), so addresses
    /// added from now on are usable at once. Addresses already tentative finish their DAD.
    pub fn disable_dad(&self, dev: &str) -> Result<()> {
        self.sysctl(&format!("net.ipv6.conf.{dev}.accept_dad"), "0")
    }

    /// Adds the IPv6 address `cidr` (e.g. `2001:db8:1::1/64`) to `dev` without DAD
    /// (`nodad`), so it is usable at once.
    pub fn add_addr6(&self, dev: &str, cidr: &str) -> Result<()> {
        self.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"])
            .map(drop)
    }

    /// The IPv6 addresses of `dev` with scope `scope` (`link` or `global`) that have passed
    /// DAD (not `tentative`, not `dadfailed`).
    pub fn ipv6_addrs(&self, dev: &str, scope: &str) -> Result<Vec<Ipv6Addr>> {
        let text = self.ip(&["-6", "-o", "addr", "show", "dev", dev, "scope", scope])?;
        Ok(parse_ipv6_addrs(&text))
    }

    /// Waits up to `timeout` until `dev` has a usable link-local address (DAD done) and
    /// returns it. DHCPv6 clients send from it and servers answer to it (RFC 8415 §13.1).
    pub fn wait_link_local(&self, dev: &str, timeout: Duration) -> Result<Ipv6Addr> {
        let found = process::wait_until(timeout, || {
            self.ipv6_addrs(dev, "link")
                .ok()
                .and_then(|v| v.first().copied())
        });
        found.ok_or_else(|| {
            let now = self
                .ip(&["-6", "addr", "show", "dev", dev])
                .unwrap_or_else(|e| e.0);
            Error(format!(
                "{dev} in {} has no usable link-local address after {timeout:?}:\n{now}",
                self.name
            ))
        })
    }

    /// Whether some UDP socket in the namespace is bound to local `port`.
    #[must_use]
    pub fn udp_port_bound(&self, port: u16) -> bool {
        let filter = format!("sport = :{port}");
        self.exec("ss", &["-H", "-u", "-a", "-n", &filter], IP_TIMEOUT)
            .is_ok_and(|o| o.status.success() && !o.stdout.trim().is_empty())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("harness: deleting namespace {}: {e}", self.name);
        }
    }
}

/// The usable addresses in `ip -6 -o addr show` output: lines whose flags include neither
/// `tentative` nor `dadfailed`.
#[must_use]
pub fn parse_ipv6_addrs(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter(|l| !l.contains("tentative") && !l.contains("dadfailed"))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "inet6");
            words.nth(1)?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// A veth pair whose two ends live in two namespaces under chosen names. Deleting either
/// end deletes both; drop deletes it (and a namespace's deletion does too).
#[derive(Debug)]
pub struct VethPair {
    ns_a: String,
    name_a: String,
    name_b: String,
}

impl VethPair {
    /// Creates the pair, moves end A into `ns_a` as `name_a` and end B into `ns_b` as
    /// `name_b`, and sets both up. `queues` > 1 gives each end that many RX/TX queues.
    pub fn create(
        ns_a: &Netns,
        name_a: &str,
        ns_b: &Netns,
        name_b: &str,
        queues: u32,
    ) -> Result<Self> {
        let prefix = unique_prefix();
        let tmp_a = format!("{prefix}a");
        let tmp_b = format!("{prefix}b");
        let q = queues.max(1).to_string();
        ip(&[
            "link",
            "add",
            &tmp_a,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &tmp_b,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ])?;
        let moved = (|| {
            ip(&["link", "set", &tmp_a, "netns", ns_a.name()])?;
            ip(&["link", "set", &tmp_b, "netns", ns_b.name()])?;
            ns_a.ip(&["link", "set", &tmp_a, "name", name_a])?;
            ns_b.ip(&["link", "set", &tmp_b, "name", name_b])?;
            ns_a.link_up(name_a)?;
            ns_b.link_up(name_b)
        })();
        if let Err(e) = moved {
            // Whichever name and namespace the end has now, one of these removes it.
            let _ = ip(&["link", "del", &tmp_a]);
            let _ = ns_a.ip(&["link", "del", &tmp_a]);
            let _ = ns_a.ip(&["link", "del", name_a]);
            return Err(Error(format!("setting up veth {name_a}/{name_b}: {e}")));
        }
        Ok(Self {
            ns_a: ns_a.name().to_owned(),
            name_a: name_a.to_owned(),
            name_b: name_b.to_owned(),
        })
    }

    /// Name of end A.
    #[must_use]
    pub fn name_a(&self) -> &str {
        &self.name_a
    }

    /// Name of end B.
    #[must_use]
    pub fn name_b(&self) -> &str {
        &self.name_b
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // The namespace may already be gone, taking the pair with it: that is fine.
        let _ = ip(&["-n", &self.ns_a, "link", "del", &self.name_a]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_usable_ipv6_addresses() {
        let text = "2: s0    inet6 2001:db8:1::1/64 scope global \\       valid_lft forever preferred_lft forever\n\
                    2: s0    inet6 2001:db8:1::9/64 scope global tentative \\       valid_lft forever\n\
                    2: s0    inet6 fe80::dc3a:28ff:fea2:a291/64 scope link \\       valid_lft forever\n\
                    2: s0    inet6 fe80::1/64 scope link dadfailed tentative \\       valid_lft forever\n";
        assert_eq!(
            parse_ipv6_addrs(text),
            vec![
                "2001:db8:1::1".parse::<Ipv6Addr>().unwrap(),
                "fe80::dc3a:28ff:fea2:a291".parse().unwrap()
            ]
        );
        assert!(parse_ipv6_addrs("").is_empty());
    }

    #[test]
    fn owner_pid_reads_the_prefix() {
        assert_eq!(owner_pid("tl123-4-srv"), Some(123));
        assert_eq!(owner_pid("eth0"), None);
    }
}
