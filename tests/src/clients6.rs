//! A real DHCPv6 client driven inside a namespace: ISC `dhclient -6`, for addresses
//! (`IA_NA`, `-N`), delegated prefixes (`IA_PD`, `-P`, RFC 8415 §6.3) or both.
//!
//! Like the DHCPv4 driver in [`crate::clients`], it runs with a script of ours that appends
//! one line per event (`reason=BOUND6`, `new_ip6_address=...`, `new_ip6_prefix=...`) to a
//! file, and keeps configuration, lease file (which holds the client's DUID), pid file and
//! log in a temporary folder. The script puts a leased address on the interface (`/128`,
//! no DAD) inside the client namespace only, and removes it again on release or expiry.
//!
//! The interface needs a usable link-local address first, since the client sends from it
//! (RFC 8415 §13.1): see [`crate::topology::Topology::enable_ipv6`].

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::clients::{ClientEvent, read_events, sh_quote, write_script};
use crate::netns::Netns;
use crate::process::{self, ChildGuard};
use crate::{Error, Result};

/// What `dhclient -6` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dhcp6Mode {
    /// One address (`-N`, `IA_NA`).
    Address,
    /// One delegated prefix (`-P`, `IA_PD`).
    Prefix,
    /// Both in the same exchange (`-N -P`).
    AddressAndPrefix,
}

impl Dhcp6Mode {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Self::Address => &["-N"],
            Self::Prefix => &["-P"],
            Self::AddressAndPrefix => &["-N", "-P"],
        }
    }

    fn wants_address(self) -> bool {
        matches!(self, Self::Address | Self::AddressAndPrefix)
    }

    fn wants_prefix(self) -> bool {
        matches!(self, Self::Prefix | Self::AddressAndPrefix)
    }
}

/// What a bound `dhclient -6` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    /// The leased address (`new_ip6_address`), when an `IA_NA` was asked for.
    pub address: Option<Ipv6Addr>,
    /// The delegated prefix and its length (`new_ip6_prefix`), when an `IA_PD` was asked for.
    pub prefix: Option<(Ipv6Addr, u8)>,
    /// Valid lifetime, seconds (`new_max_life`) of the last bound event.
    pub valid_lifetime: Option<u32>,
    /// Preferred lifetime, seconds (`new_preferred_life`) of the last bound event.
    pub preferred_lifetime: Option<u32>,
    /// The server's DUID as dhclient prints it (`new_dhcp6_server_id`).
    pub server_id: Option<String>,
}

/// Parses `2001:db8:8000:100::/56`.
#[must_use]
pub fn parse_prefix(text: &str) -> Option<(Ipv6Addr, u8)> {
    let (a, l) = text.trim().split_once('/')?;
    let len: u8 = l.parse().ok()?;
    (len <= 128).then_some(())?;
    Some((a.parse().ok()?, len))
}

/// The variables the script records.
const DHCLIENT6_VARS: &[&str] = &[
    "interface",
    "new_ip6_address",
    "new_ip6_prefixlen",
    "new_ip6_prefix",
    "new_iaid",
    "new_max_life",
    "new_preferred_life",
    "new_renew",
    "new_rebind",
    "new_dhcp6_server_id",
    "new_dhcp6_client_id",
    "new_dhcp6_name_servers",
    "new_dhcp6_domain_search",
    "old_ip6_address",
    "old_ip6_prefix",
];

/// Reasons dhclient gives the script when a lease is (re)bound.
pub const BOUND6_REASONS: &[&str] = &["BOUND6", "RENEW6", "REBIND6", "REBOOT6"];

fn dhclient6_script(events: &Path) -> String {
    let mut s = String::from("#!/bin/sh\n# Written by the twinlease test harness.\n{\n");
    s.push_str("  printf 'reason=%s' \"$reason\"\n");
    for v in DHCLIENT6_VARS {
        let _ = writeln!(s, "  printf '\\t{v}=%s' \"${v}\"");
    }
    let _ = writeln!(s, "  printf '\\n'\n}} >> {}", sh_quote(events));
    s.push_str(
        r#"case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    if [ -n "$old_ip6_address" ] && [ "$old_ip6_address" != "$new_ip6_address" ]; then
      ip -6 addr del "$old_ip6_address/128" dev "$interface" 2>/dev/null
    fi
    if [ -n "$new_ip6_address" ]; then
      ip -6 addr replace "$new_ip6_address/128" dev "$interface" nodad
    fi
    ;;
  EXPIRE6|RELEASE6|STOP6)
    if [ -n "$old_ip6_address" ]; then
      ip -6 addr del "$old_ip6_address/128" dev "$interface" 2>/dev/null
    fi
    ;;
esac
exit 0
"#,
    );
    s
}

/// ISC `dhclient -6` running in the foreground (`-d -1 -v`) in a namespace.
#[derive(Debug)]
pub struct Dhclient6 {
    child: Option<ChildGuard>,
    iface: String,
    ns: String,
    mode: Dhcp6Mode,
    dir: TempDir,
}

impl Dhclient6 {
    /// Starts `dhclient -6 -d -1 -v` with the flags of `mode` on `iface` in `ns`; it gives
    /// up after `timeout_secs` (dhclient.conf `timeout`). Every start has a fresh lease
    /// file, hence a fresh DUID.
    pub fn start(ns: &Netns, iface: &str, mode: Dhcp6Mode, timeout_secs: u32) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("tl-dhclient6").tempdir()?;
        let me = Self {
            child: None,
            iface: iface.to_owned(),
            ns: ns.name().to_owned(),
            mode,
            dir,
        };
        write_script(&me.script(), &dhclient6_script(&me.events_path()))?;
        fs::write(
            me.conf(),
            format!(
                "timeout {timeout_secs};\nretry 1;\n\
                 request dhcp6.name-servers, dhcp6.domain-search;\n"
            ),
        )?;
        let mut first = vec!["-6", "-d", "-1", "-v"];
        first.extend_from_slice(mode.flags());
        let args = me.args(&first);
        let child = ns.spawn("dhclient -6", "dhclient", &args, &me.log_path())?;
        Ok(Self {
            child: Some(child),
            ..me
        })
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("dhclient6-script")
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("dhclient6.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("dhclient6.log")
    }

    /// Path of the lease file (`-lf`), which also holds the client's DUID.
    #[must_use]
    pub fn lease_file(&self) -> PathBuf {
        self.dir.path().join("dhclient6.leases")
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
            ("-pf", self.dir.path().join("dhclient6.pid")),
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
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// What the bound events so far add up to: the first address and prefix reported, and
    /// the lifetimes and server of the last bound event. dhclient reports an address and a
    /// prefix of one exchange in separate events.
    #[must_use]
    pub fn lease(&self) -> Option<Lease6> {
        let bound: Vec<ClientEvent> = self
            .events()
            .into_iter()
            .filter(|e| BOUND6_REASONS.contains(&e.reason.as_str()))
            .collect();
        let last = bound.last()?;
        let num = |k: &str| last.var(k).and_then(|v| v.parse().ok());
        Some(Lease6 {
            address: bound
                .iter()
                .find_map(|e| e.var("new_ip6_address")?.parse().ok()),
            prefix: bound
                .iter()
                .find_map(|e| parse_prefix(e.var("new_ip6_prefix")?)),
            valid_lifetime: num("new_max_life"),
            preferred_lifetime: num("new_preferred_life"),
            server_id: last.var("new_dhcp6_server_id").map(str::to_owned),
        })
    }

    /// Waits up to `timeout` until the client is bound to everything its mode asks for (an
    /// address, a prefix or both) and returns the lease. Fails early if dhclient exits.
    pub fn wait_bound(&mut self, timeout: Duration) -> Result<Lease6> {
        let mode = self.mode;
        let complete = |l: &Lease6| {
            (!mode.wants_address() || l.address.is_some())
                && (!mode.wants_prefix() || l.prefix.is_some())
        };
        let found = process::wait_until(timeout, || {
            if let Some(l) = self.lease().filter(|l| complete(l)) {
                return Some(Ok(l));
            }
            match self.child.as_mut().map(ChildGuard::is_running) {
                // The last events may be written just before exit: look once more.
                Some(false) => Some(self.lease().filter(|l| complete(l)).ok_or(())),
                _ => None,
            }
        });
        match found {
            Some(Ok(l)) => Ok(l),
            Some(Err(())) => Err(Error(format!(
                "dhclient -6 exited before binding {mode:?}; events {:?}\nlog:\n{}",
                self.events(),
                self.log()
            ))),
            None => Err(Error(format!(
                "dhclient -6 not bound ({mode:?}) within {timeout:?}; events {:?}\nlog:\n{}",
                self.events(),
                self.log()
            ))),
        }
    }

    /// Releases the lease: runs `dhclient -6 -r` (same mode and files), which stops the
    /// running dhclient through its pid file and sends a RELEASE (RFC 8415 §18.2.7).
    /// Returns the release's output.
    pub fn release(&mut self, ns: &Netns) -> Result<String> {
        if ns.name() != self.ns {
            return Err(Error::msg("release must run in the client's namespace"));
        }
        let mut first = vec!["-6", "-r", "-v"];
        first.extend_from_slice(self.mode.flags());
        let args = self.args(&first);
        let out = ns
            .exec("dhclient", &args, Duration::from_secs(20))?
            .ok("dhclient -6 -r")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::parse_events;

    #[test]
    fn script_records_every_variable_and_quotes_the_path() {
        let s = dhclient6_script(Path::new("/tmp/a'b/events"));
        assert!(s.contains(r"'/tmp/a'\''b/events'"));
        for v in DHCLIENT6_VARS {
            assert!(s.contains(&format!("\\t{v}=%s' \"${v}\"")), "{v}");
        }
        assert!(s.contains("nodad"));
    }

    #[test]
    fn parses_prefixes() {
        assert_eq!(
            parse_prefix("2001:db8:8001:2a00::/56"),
            Some(("2001:db8:8001:2a00::".parse().unwrap(), 56))
        );
        assert_eq!(parse_prefix("2001:db8::/129"), None);
        assert_eq!(parse_prefix("2001:db8::"), None);
        assert_eq!(parse_prefix("x/56"), None);
    }

    #[test]
    fn lease_combines_address_and_prefix_events() {
        let dir = tempfile::tempdir().unwrap();
        let me = Dhclient6 {
            child: None,
            iface: "c0".into(),
            ns: "none".into(),
            mode: Dhcp6Mode::AddressAndPrefix,
            dir,
        };
        assert!(me.lease().is_none());
        fs::write(
            me.events_path(),
            "reason=PREINIT6\tinterface=c0\n\
             reason=BOUND6\tnew_ip6_address=2001:db8:1::11f1\tnew_max_life=4000\tnew_preferred_life=3000\n\
             reason=BOUND6\tnew_ip6_prefix=2001:db8:8001:8e00::/56\tnew_max_life=4001\tnew_dhcp6_server_id=0:2\n",
        )
        .unwrap();
        let l = me.lease().unwrap();
        assert_eq!(l.address, Some("2001:db8:1::11f1".parse().unwrap()));
        assert_eq!(
            l.prefix,
            Some(("2001:db8:8001:8e00::".parse().unwrap(), 56))
        );
        assert_eq!(l.valid_lifetime, Some(4001));
        assert_eq!(l.preferred_lifetime, None);
        assert_eq!(l.server_id.as_deref(), Some("0:2"));
        assert_eq!(
            parse_events(&fs::read_to_string(me.events_path()).unwrap()).len(),
            3
        );
    }
}
