//! Chores: `cargo xtask install-deps`, `cargo xtask test`, `cargo xtask demo`,
//! `cargo xtask bench-socket`, `cargo xtask bench-v6`, `cargo xtask bench`.
//!
//! Every chore prints what it runs. Those that build networks do it in their own network
//! namespaces (through the `twinlease-tests` harness) and remove them when done.

mod bench;
mod bench_common;
mod bench_micro;
mod bench_socket;
mod bench_v6;
mod demo;
mod deps;
mod ebpf;
mod fuzz;

use std::process::{Command, ExitCode};

/// The error of a chore: a message for the user.
pub type Error = Box<dyn std::error::Error>;

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  install-deps   install the programs the tests need (apt, as root; skipped otherwise)
  test [ARGS]    install-deps, then run the whole workspace's tests (ARGS go to the runner)
  demo           run twinlease in namespaces and serve dhclient, udhcpc and perfdhcp
  bench-socket   find the highest rate with <= 1 % loss for Kea and twinlease (socket path);
                 writes results/<date>-socket.md
  bench-v6       the same for DHCPv6 (perfdhcp -6 -e address-and-prefix), Kea and twinlease;
                 writes results/<date>-v6.md
  bench [--secs N] [--only SERVER]
                 every server (twinlease XDP and socket, kea-dhcp4, dhcpd; v6: twinlease,
                 kea-dhcp6) under the AF_XDP load generator twinlease_bench, ladder to the
                 highest rate with <= 1 % lost, perfdhcp at that rate; writes
                 results/<date>-bench.md and results/<date>-bench.svg
  bench-micro [--icount] [FILTER]
                 criterion micro-benchmarks of the hot path (short times) and a summary;
                 --icount: instructions per operation under callgrind, writes
                 results/<date>-icount.md
  ebpf [--check] rebuild the XDP program into dhcp-ebpf/prebuilt/ (nightly, rust-src,
                 bpf-linker); --check fails when the committed object is stale
  fuzz [--seconds N] [TARGET]
                 run the cargo-fuzz targets (nightly + cargo-fuzz) N s each (default 60),
                 from dhcp-userspace/fuzz/seeds/; fails when a target crashes";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "install-deps" => deps::install_deps().map(|()| ExitCode::SUCCESS),
        "test" => test(rest),
        "demo" => demo::run().map(|()| ExitCode::SUCCESS),
        "bench-socket" => bench_socket::run(rest).map(|()| ExitCode::SUCCESS),
        "bench" => bench::run(rest).map(|()| ExitCode::SUCCESS),
        "bench-micro" => bench_micro::run(rest).map(|()| ExitCode::SUCCESS),
        "bench-v6" => bench_v6::run(rest).map(|()| ExitCode::SUCCESS),
        "ebpf" => ebpf::run(rest).map(|()| ExitCode::SUCCESS),
        "fuzz" => fuzz::run(rest).map(|()| ExitCode::SUCCESS),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("unknown command {other:?}\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask {cmd}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A `cargo` command for the workspace (the cargo that runs us, when known).
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(twinlease_tests::workspace_root());
    cmd
}

/// Prints `cmd` and runs it with inherited output; returns its exit status.
fn run_verbose(cmd: &mut Command) -> Result<std::process::ExitStatus, Error> {
    println!("xtask: running {}", twinlease_tests::process::describe(cmd));
    Ok(cmd.status()?)
}

/// `cargo xtask test`: install what the tests need, then run every test of the workspace
/// with nextest when installed, else `cargo test`; the runner's exit code is ours.
fn test(extra: &[String]) -> Result<ExitCode, Error> {
    deps::install_deps()?;
    let nextest = cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if nextest {
        // nextest does not run doc tests: run them first, so that the run closes on the
        // summary of the whole suite.
        let doc = run_verbose(cargo().args(["test", "--workspace", "--doc"]))?;
        if !doc.success() {
            return Ok(exit_code(doc));
        }
    }
    let mut cmd = cargo();
    if nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra);
    let status = run_verbose(&mut cmd)?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}
