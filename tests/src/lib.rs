//! Helpers for the end-to-end tests: namespaces, processes, real DHCP clients.
//!
//! Everything here builds real Linux objects (network namespaces, veth pairs, bridges,
//! processes) and removes them again when the guard that owns them is dropped, also on
//! panic. Names start with `tl<pid>-`, so a later run can sweep what a killed run left
//! behind ([`netns::sweep_stale`]). Addresses are only ever assigned inside the namespaces
//! this crate creates.
//!
//! Map of the modules:
//! - [`process`]: commands with timeouts, [`process::ChildGuard`] that kills on drop;
//! - [`netns`]: [`netns::Netns`], [`netns::VethPair`], `ip` helpers, the stale sweep;
//! - [`topology`]: [`topology::Topology`], a server namespace and client namespaces;
//! - [`clients`]: `dhclient` and `udhcpc` drivers;
//! - [`clients6`]: the `dhclient -6` driver (addresses and delegated prefixes);
//! - [`failover`]: the failover bench: two server hosts, clients, a partner link to cut,
//!   twinlease pairs and ISC dhcpd partners, store invariants;
//! - [`perfdhcp`]: runs `perfdhcp` (`-4` or `-6`) and parses its statistics;
//! - [`loadgen`]: builds and runs the `twinlease_bench` load generator, parses its JSON line;
//! - [`capture`]: `tcpdump` captures and a pcap reader that extracts DHCP messages;
//! - [`kea`]: a Kea DHCP server as a reference peer;
//! - [`kea6`]: Kea's DHCPv6 server as a reference peer;
//! - [`twinlease`]: finds, configures, runs and queries the `twinlease` binary.

pub mod capture;
pub mod clients;
pub mod clients6;
pub mod failover;
pub mod kea;
pub mod kea6;
pub mod loadgen;
pub mod netns;
pub mod perfdhcp;
pub mod process;
pub mod topology;
pub mod twinlease;

use std::fmt;
use std::path::{Path, PathBuf};

/// The error of every harness operation: a message that says what was attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// Builds an error from anything printable.
    pub fn msg(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self(format!("I/O error: {e}"))
    }
}

/// Result type of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// Whether this process runs with effective uid 0 (needed for namespaces).
#[must_use]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns `true` when the test may go on; otherwise prints `skipped: needs root` (with the
/// test's name) and returns `false`. Use it through [`require_root!`].
#[must_use]
pub fn check_root(test: &str) -> bool {
    if is_root() {
        true
    } else {
        println!("{test}: skipped: needs root");
        false
    }
}

/// Returns early from the calling test with the message `skipped: needs root` when not
/// running as root. `require_root!()` returns `()`; `require_root!(value)` returns `value`
/// (for example `require_root!(Ok(()))` in a test returning `Result`).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::check_root(module_path!()) {
            return;
        }
    };
    ($ret:expr) => {
        if !$crate::check_root(module_path!()) {
            return $ret;
        }
    };
}

/// Whether `program` is found in one of the directories of `PATH` (plus the sbin
/// directories, which a non-login root shell may lack).
#[must_use]
pub fn have_program(program: &str) -> bool {
    find_program(program).is_some()
}

/// The full path of `program`, searched in `PATH` and the sbin directories.
#[must_use]
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails with a message naming the missing programs and the command that installs them.
pub fn require_programs(programs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !have_program(p))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error(format!(
            "missing programs {missing:?}: run `cargo xtask install-deps`"
        )))
    }
}

/// The workspace root (the parent of this crate's folder).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
