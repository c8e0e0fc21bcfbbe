//! Real DHCP clients (version 4) driven inside a namespace: ISC `dhclient` and busybox `udhcpc`.
//!
//! Both run with a script of ours instead of the system one. The scripts append one line
//! per event to a file (tab-separated `key=value` fields), which the drivers parse. The
//! dhclient script also puts the leased address on the interface (inside the client
//! namespace only), so that dhclient's unicast RENEW has a source address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::netns::Netns;
use crate::process::{self, ChildGuard};
use crate::{Error, Result};

/// One event reported by a client's script: the reason (dhclient's `$reason`, udhcpc's
/// `$1`) and the variables recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    /// `BOUND`, `RENEW`, `REBOOT`, `RELEASE`, ... (dhclient) or `bound`, `renew`,
    /// `deconfig`, `leasefail`, `nak` (udhcpc).
    pub reason: String,
    /// The recorded variables; empty values are left out.
    pub vars: BTreeMap<String, String>,
}

impl ClientEvent {
    /// Variable `key`, if recorded and non-empty.
    #[must_use]
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// Variable `key` parsed as an IPv4 address.
    #[must_use]
    pub fn addr(&self, key: &str) -> Option<Ipv4Addr> {
        self.var(key)?.parse().ok()
    }
}

/// Parses the event file written by the scripts: one event per line, tab-separated
/// `key=value` fields, the first being `reason=...`.
#[must_use]
pub fn parse_events(text: &str) -> Vec<ClientEvent> {
    text.lines()
        .filter_map(|line| {
            let mut reason = None;
            let mut vars = BTreeMap::new();
            for field in line.split('\t') {
                let Some((k, v)) = field.split_once('=') else {
                    continue;
                };
                if k == "reason" {
                    reason = Some(v.to_owned());
                } else if !v.is_empty() {
                    vars.insert(k.to_owned(), v.to_owned());
                }
            }
            Some(ClientEvent {
                reason: reason?,
                vars,
            })
        })
        .collect()
}

pub(crate) fn write_script(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

pub(crate) fn read_events(path: &Path) -> Vec<ClientEvent> {
    fs::read_to_string(path)
        .map(|t| parse_events(&t))
        .unwrap_or_default()
}

/// Shell-quotes a path for embedding in a script.
pub(crate) fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

const DHCLIENT_VARS: &[&str] = &[
    "interface",
    "new_ip_address",
    "new_subnet_mask",
    "new_routers",
    "new_domain_name_servers",
    "new_domain_name",
    "new_dhcp_lease_time",
    "new_dhcp_server_identifier",
    "old_ip_address",
    "old_subnet_mask",
];

fn dhclient_script(events: &Path) -> String {
    let mut s = String::from("#!/bin/sh\n# Written by the twinlease test harness.\n{\n");
    s.push_str("  printf 'reason=%s' \"$reason\"\n");
    for v in DHCLIENT_VARS {
        let _ = writeln!(s, "  printf '\\t{v}=%s' \"${v}\"");
    }
    let _ = writeln!(s, "  printf '\\n'\n}} >> {}", sh_quote(events));
    s.push_str(
        r#"case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
      ip -4 addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi
    ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    ;;
  EXPIRE|FAIL|RELEASE|STOP)
    if [ -n "$old_ip_address" ]; then
      ip -4 addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi
    ;;
esac
exit 0
"#,
    );
    s
}

/// ISC `dhclient` running in the foreground in a namespace, with its own configuration,
/// lease file, pid file and script in a temporary folder.
#[derive(Debug)]
pub struct Dhclient {
    child: Option<ChildGuard>,
    iface: String,
    ns: String,
    dir: TempDir,
}

impl Dhclient {
    /// Starts `dhclient -d -1 -v` on `iface` in `ns`. It tries for `timeout` seconds
    /// (dhclient.conf `timeout`), retrying requests every second or two.
    pub fn start(ns: &Netns, iface: &str, timeout_secs: u32) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("tl-dhclient").tempdir()?;
        let me = Self {
            child: None,
            iface: iface.to_owned(),
            ns: ns.name().to_owned(),
            dir,
        };
        write_script(&me.script(), &dhclient_script(&me.events_path()))?;
        fs::write(
            me.conf(),
            format!(
                "timeout {timeout_secs};\nretry 1;\ninitial-interval 1;\nbackoff-cutoff 2;\n\
                 request subnet-mask, broadcast-address, routers, domain-name, \
                 domain-name-servers, dhcp-lease-time, dhcp-server-identifier;\n"
            ),
        )?;
        let log = me.dir.path().join("dhclient.log");
        let args = me.args(&["-d", "-1", "-v"]);
        let child = ns.spawn("dhclient", "dhclient", &args, &log)?;
        Ok(Self {
            child: Some(child),
            ..me
        })
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("dhclient-script")
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("dhclient.conf")
    }

    /// Path of the lease file (`-lf`).
    #[must_use]
    pub fn lease_file(&self) -> PathBuf {
        self.dir.path().join("dhclient.leases")
    }

    /// Path of the event file the script appends to.
    #[must_use]
    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    fn args(&self, first: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = first.iter().map(|s| (*s).to_owned()).collect();
        for (flag, path) in [
            ("-cf", self.conf()),
            ("-sf", self.script()),
            ("-lf", self.lease_file()),
            ("-pf", self.dir.path().join("dhclient.pid")),
        ] {
            a.push(flag.to_owned());
            a.push(path.display().to_string());
        }
        a.push(self.iface.clone());
        a
    }

    /// All events so far.
    #[must_use]
    pub fn events(&self) -> Vec<ClientEvent> {
        read_events(&self.events_path())
    }

    /// The dhclient log so far.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dhclient.log")).unwrap_or_default()
    }

    /// Waits up to `timeout` for an event with one of `reasons` among the events after the
    /// first `skip` ones; returns it. Fails early if dhclient exits.
    pub fn wait_for(
        &mut self,
        reasons: &[&str],
        skip: usize,
        timeout: Duration,
    ) -> Result<ClientEvent> {
        let found = process::wait_until(timeout, || {
            self.events()
                .into_iter()
                .skip(skip)
                .find(|e| reasons.contains(&e.reason.as_str()))
                .map(Ok)
                .or_else(|| match self.child.as_mut().map(ChildGuard::is_running) {
                    Some(false) => Some(Err(())),
                    _ => None,
                })
        });
        match found {
            Some(Ok(e)) => Ok(e),
            Some(Err(())) => Err(Error(format!(
                "dhclient exited before {reasons:?}; events {:?}\nlog:\n{}",
                self.events(),
                self.log()
            ))),
            None => Err(Error(format!(
                "no dhclient event {reasons:?} within {timeout:?}; events {:?}\nlog:\n{}",
                self.events(),
                self.log()
            ))),
        }
    }

    /// Waits for the first lease (`BOUND` or `REBOOT`) and returns the address.
    pub fn wait_bound(&mut self, timeout: Duration) -> Result<Ipv4Addr> {
        let e = self.wait_for(&["BOUND", "REBOOT"], 0, timeout)?;
        e.addr("new_ip_address")
            .ok_or_else(|| Error(format!("bound event without address: {e:?}")))
    }

    /// Releases the lease: runs `dhclient -r` with the same files, which sends a
    /// DHCPRELEASE and stops the running dhclient. Returns the release's output.
    pub fn release(&mut self, ns: &Netns) -> Result<String> {
        if ns.name() != self.ns {
            return Err(Error::msg("release must run in the client's namespace"));
        }
        let args = self.args(&["-r", "-v"]);
        let out = ns
            .exec("dhclient", &args, Duration::from_secs(20))?
            .ok("dhclient -r")?;
        if let Some(child) = self.child.as_mut()
            && child.wait_timeout(Duration::from_secs(5))?.is_none()
        {
            child.terminate()?;
        }
        Ok(out.stderr)
    }

    /// Whether the foreground dhclient still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }
}

const UDHCPC_VARS: &[&str] = &[
    "interface",
    "ip",
    "subnet",
    "mask",
    "router",
    "dns",
    "domain",
    "serverid",
    "lease",
];

fn udhcpc_script(events: &Path) -> String {
    let mut s = String::from("#!/bin/sh\n# Written by the twinlease test harness.\n{\n");
    s.push_str("  printf 'reason=%s' \"$1\"\n");
    for v in UDHCPC_VARS {
        let _ = writeln!(s, "  printf '\\t{v}=%s' \"${v}\"");
    }
    let _ = writeln!(s, "  printf '\\n'\n}} >> {}\nexit 0", sh_quote(events));
    s
}

/// What one `udhcpc` run did.
#[derive(Debug, Clone)]
pub struct UdhcpcRun {
    /// Exit code (0: got a lease).
    pub code: Option<i32>,
    /// Script events in order.
    pub events: Vec<ClientEvent>,
    /// udhcpc's own output.
    pub output: String,
}

impl UdhcpcRun {
    /// The `bound` event's address, if there was one.
    #[must_use]
    pub fn leased_addr(&self) -> Option<Ipv4Addr> {
        self.bound().and_then(|e| e.addr("ip"))
    }

    /// The `bound` event.
    #[must_use]
    pub fn bound(&self) -> Option<&ClientEvent> {
        self.events.iter().find(|e| e.reason == "bound")
    }
}

/// Runs `udhcpc -f -q -n` once on `iface` in `ns`: up to `tries` DISCOVERs one second
/// apart, exits after obtaining a lease (or when none came). `extra` are more udhcpc
/// arguments (e.g. `["-x", "0x3d:01aabbccddeeff"]`). Killed after `tries + 15` seconds.
pub fn udhcpc_once(ns: &Netns, iface: &str, tries: u32, extra: &[&str]) -> Result<UdhcpcRun> {
    let dir = tempfile::Builder::new().prefix("tl-udhcpc").tempdir()?;
    let script = dir.path().join("udhcpc-script");
    let events = dir.path().join("events");
    write_script(&script, &udhcpc_script(&events))?;
    let tries_s = tries.to_string();
    let script_s = script.display().to_string();
    let mut args = vec![
        "-f", "-q", "-n", "-t", &tries_s, "-T", "1", "-A", "1", "-i", iface, "-s", &script_s,
    ];
    args.extend_from_slice(extra);
    let out = ns.exec("udhcpc", &args, Duration::from_secs(u64::from(tries) + 15))?;
    Ok(UdhcpcRun {
        code: out.code(),
        events: read_events(&events),
        output: format!("{}{}", out.stdout, out.stderr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_and_drops_empty_values() {
        let text = "reason=PREINIT\tinterface=c0\tnew_ip_address=\n\
                    reason=BOUND\tinterface=c0\tnew_ip_address=192.0.2.100\tnew_domain_name_servers=192.0.2.1 192.0.2.2\n\
                    garbage line\n";
        let ev = parse_events(text);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].reason, "PREINIT");
        assert_eq!(ev[0].var("new_ip_address"), None);
        assert_eq!(
            ev[1].addr("new_ip_address"),
            Some(Ipv4Addr::new(192, 0, 2, 100))
        );
        assert_eq!(
            ev[1].var("new_domain_name_servers"),
            Some("192.0.2.1 192.0.2.2")
        );
    }

    #[test]
    fn scripts_quote_paths_and_record_every_variable() {
        let s = dhclient_script(Path::new("/tmp/a'b/events"));
        assert!(s.contains(r"'/tmp/a'\''b/events'"));
        for v in DHCLIENT_VARS {
            assert!(s.contains(&format!("\\t{v}=%s")), "{v}");
        }
        let u = udhcpc_script(Path::new("/tmp/e"));
        assert!(u.contains("reason=%s' \"$1\""));
    }
}
