//! `cargo xtask install-deps`: the Debian packages the end-to-end tests and benchmarks use.

use std::path::Path;
use std::process::Command;

use twinlease_tests::{have_program, is_root};

use crate::{Error, run_verbose};

/// (program the tests run, Debian package that provides it).
pub const NEEDED: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("ping", "iputils-ping"),
    ("dhclient", "isc-dhcp-client"),
    ("udhcpc", "udhcpc"),
    ("perfdhcp", "kea-admin"),
    ("kea-dhcp4", "kea-dhcp4-server"),
    ("kea-dhcp6", "kea-dhcp6-server"),
    ("sysctl", "procps"),
    ("dhcpd", "isc-dhcp-server"),
    ("tcpdump", "tcpdump"),
];

/// The packages whose programs are missing, without duplicates.
#[must_use]
pub fn missing_packages() -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for (program, package) in NEEDED {
        if !have_program(program) && !out.contains(package) {
            out.push(package);
        }
    }
    out
}

/// Keeps package scripts from starting the DHCP servers we install on the host: a
/// `policy-rc.d` that refuses every start, removed again on drop (only if we made it).
struct NoServiceStarts {
    path: &'static Path,
    created: bool,
}

impl NoServiceStarts {
    fn new() -> Self {
        let path = Path::new("/usr/sbin/policy-rc.d");
        let created = !path.exists()
            && std::fs::write(path, "#!/bin/sh\n# cargo xtask install-deps\nexit 101\n").is_ok()
            && {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).is_ok()
            };
        Self { path, created }
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// Installs the missing packages with apt-get, non-interactively. Not root: prints what is
/// missing and returns Ok (the tests that need root skip themselves).
pub fn install_deps() -> Result<(), Error> {
    let missing = missing_packages();
    if missing.is_empty() {
        println!("xtask install-deps: all test programs present");
        return Ok(());
    }
    if !is_root() {
        println!(
            "xtask install-deps: skipped: needs root (missing packages: {})",
            missing.join(" ")
        );
        return Ok(());
    }
    println!("xtask install-deps: installing {}", missing.join(" "));
    let _guard = NoServiceStarts::new();
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("NEEDRESTART_MODE", "a");
        cmd
    };
    if !run_verbose(&mut apt(&["update", "-q"]))?.success() {
        return Err("apt-get update failed".into());
    }
    let mut install = apt(&[
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ]);
    install.args(&missing);
    if !run_verbose(&mut install)?.success() {
        return Err(format!("apt-get install {} failed", missing.join(" ")).into());
    }
    let still = missing_packages();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("still missing after install: {}", still.join(" ")).into())
    }
}
