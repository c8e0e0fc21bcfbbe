//! The `twinlease_bench` load generator (crate `twinlease-bench`): finding or building its
//! binary and running it in a client namespace, returning its JSON line.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::netns::Netns;
use crate::process;
use crate::twinlease::target_dir;
use crate::{Error, Result, workspace_root};

/// Path of the `twinlease_bench` binary: `TWINLEASE_BENCH_BIN` if set; otherwise runs (once
/// per process) `cargo build [--release] -p twinlease-bench --bin twinlease_bench` and returns
/// `target/{debug,release}/twinlease_bench`.
pub fn bench_binary(release: bool) -> Result<PathBuf> {
    static BIN: [OnceLock<std::result::Result<PathBuf, String>>; 2] =
        [OnceLock::new(), OnceLock::new()];
    BIN[usize::from(release)]
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("TWINLEASE_BENCH_BIN") {
                return Ok(PathBuf::from(bin));
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.args([
                "build",
                "--quiet",
                "-p",
                "twinlease-bench",
                "--bin",
                "twinlease_bench",
            ]);
            if release {
                build.arg("--release");
            }
            build.current_dir(workspace_root());
            let out = process::run(&mut build, Duration::from_mins(30)).map_err(|e| e.0)?;
            if !out.status.success() {
                return Err(format!("building twinlease_bench failed:\n{}", out.stderr));
            }
            let bin = target_dir()
                .join(if release { "release" } else { "debug" })
                .join("twinlease_bench");
            if bin.is_file() {
                Ok(bin)
            } else {
                Err(format!("no {}", bin.display()))
            }
        })
        .clone()
        .map_err(Error)
}

/// The outcome of one `twinlease_bench` run.
#[derive(Debug, Clone)]
pub struct BenchRun {
    /// The parsed JSON line (the last line of standard output).
    pub json: serde_json::Value,
    /// Everything it printed on standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its exit code (0, 1 on an error, 2 when it saw a duplicate lease).
    pub code: Option<i32>,
}

impl BenchRun {
    /// The main result's field `key` as a number (0 when absent).
    #[must_use]
    pub fn result_u64(&self, key: &str) -> u64 {
        self.json["result"][key].as_u64().unwrap_or(0)
    }
}

/// Runs `bin args...` in `ns` (killed after `timeout`) and parses its JSON line.
pub fn run_bench(
    ns: &Netns,
    bin: &std::path::Path,
    args: &[String],
    timeout: Duration,
) -> Result<BenchRun> {
    let bin_s = bin.display().to_string();
    let out = ns.exec(&bin_s, args, timeout)?;
    let last = out
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let json = serde_json::from_str(last).map_err(|e| {
        Error(format!(
            "twinlease_bench printed no JSON line ({e}); exit {:?}\nstdout:\n{}\nstderr:\n{}",
            out.code(),
            out.stdout,
            out.stderr
        ))
    })?;
    Ok(BenchRun {
        json,
        code: out.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}
