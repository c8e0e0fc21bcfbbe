//! `cargo xtask bench-micro [--icount] [ARGS]`: the micro-benchmarks of the hot path.
//!
//! - Without `--icount`: the criterion benches of `bench/benches/` (codec, engine, alloc,
//!   wal, dispatch) with short times (`--warm-up-time 1 --measurement-time 3`; ARGS, e.g. a
//!   filter such as `codec/`, go to criterion), then a summary table read back from
//!   criterion's `target/criterion/*/*/new/` files: median time per iteration, per element
//!   and elements per second.
//! - With `--icount`: instructions per operation of the hot-path operations of
//!   `bench/src/bin/icount.rs`, counted by `valgrind --tool=callgrind` (only inside the
//!   measured loop, `--toggle-collect=icount_measure`) for two iteration counts; the
//!   difference of the counts divided by the difference of the iterations cancels the
//!   fixed costs. Instruction counts do not depend on the machine's load. Writes
//!   `results/<date>-icount.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use twinlease_tests::workspace_root;

use crate::{Error, cargo, run_verbose};

/// The criterion bench targets of `bench/Cargo.toml`.
const BENCHES: &[&str] = &["codec", "engine", "alloc", "wal", "dispatch"];

/// Iteration counts of the two callgrind runs of each operation.
const N1: u64 = 2_000;
const N2: u64 = 12_000;

/// Entry point.
pub fn run(args: &[String]) -> Result<(), Error> {
    if args.iter().any(|a| a == "--icount") {
        let rest: Vec<String> = args.iter().filter(|a| *a != "--icount").cloned().collect();
        icount(&rest)
    } else {
        criterion(args)
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

#[expect(
    clippy::cast_precision_loss,
    reason = "elements per iteration are small"
)]
fn criterion(extra: &[String]) -> Result<(), Error> {
    let started = SystemTime::now();
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "twinlease-bench"]);
    for b in BENCHES {
        cmd.args(["--bench", b]);
    }
    cmd.args(["--", "--warm-up-time", "1", "--measurement-time", "3"]);
    cmd.args(extra);
    let status = run_verbose(&mut cmd)?;
    if !status.success() {
        return Err(format!("cargo bench failed: {status}").into());
    }
    let rows = read_criterion(&target_dir().join("criterion"), started)?;
    if rows.is_empty() {
        return Err("no criterion results written by this run".into());
    }
    let mut out = String::from(
        "\n| benchmark | median / iteration | elements / iteration | per element | elements/s |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        let per = r.median_ns / r.elements as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.id,
            ns(r.median_ns),
            r.elements,
            ns(per),
            rate(1e9 / per)
        );
    }
    println!("{out}\nbench-micro: criterion reports (HTML) under target/criterion/");
    Ok(())
}

/// One criterion benchmark's result.
struct Row {
    id: String,
    median_ns: f64,
    elements: u64,
}

/// Results criterion wrote at or after `since`: `<group>/<bench>/new/{estimates,benchmark}.json`.
#[expect(
    clippy::cast_sign_loss,
    reason = "criterion's element counts are positive"
)]
fn read_criterion(root: &Path, since: SystemTime) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    let Ok(groups) = std::fs::read_dir(root) else {
        return Ok(rows);
    };
    for group in groups.filter_map(Result::ok) {
        let Ok(benches) = std::fs::read_dir(group.path()) else {
            continue;
        };
        for bench in benches.filter_map(Result::ok) {
            let new = bench.path().join("new");
            let est = new.join("estimates.json");
            let fresh = std::fs::metadata(&est)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if !fresh {
                continue;
            }
            let estimates = std::fs::read_to_string(&est)?;
            let meta = std::fs::read_to_string(new.join("benchmark.json"))?;
            let median_ns = json_number_after(&estimates, "\"median\"", "\"point_estimate\":")
                .ok_or_else(|| format!("no median in {}", est.display()))?;
            let elements = json_number_after(&meta, "\"throughput\"", "\"Elements\":")
                .map_or(1, |e: f64| e.max(1.0) as u64);
            let id = json_string(&meta, "\"full_id\":").unwrap_or_else(|| {
                format!(
                    "{}/{}",
                    group.file_name().to_string_lossy(),
                    bench.file_name().to_string_lossy()
                )
            });
            rows.push(Row {
                id,
                median_ns,
                elements,
            });
        }
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

/// The number after the first `key` that follows `section` in a JSON text (enough for
/// criterion's flat files; xtask has no JSON parser).
fn json_number_after(text: &str, section: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(section)?..];
    let rest = rest[rest.find(key)? + key.len()..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn json_string(text: &str, key: &str) -> Option<String> {
    let rest = text[text.find(key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{v:.1} ns")
    }
}

fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} k", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}")
    }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Instructions callgrind counted (the `totals:` or `summary:` line of its output file).
fn callgrind_total(file: &Path) -> Result<u64, Error> {
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no totals in {}", file.display()).into())
}

fn callgrind(bin: &Path, op: &str, n: u64, dir: &Path) -> Result<u64, Error> {
    let out = dir.join(format!("callgrind.{op}.{n}"));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--toggle-collect=icount_measure")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(bin)
        .arg(op)
        .arg(n.to_string());
    println!(
        "xtask: running {}",
        twinlease_tests::process::describe(&cmd)
    );
    let o = cmd.output()?;
    if !o.status.success() {
        return Err(format!(
            "callgrind of {op} {n} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    callgrind_total(&out)
}

fn icount(extra: &[String]) -> Result<(), Error> {
    if first_line("which", &["valgrind"]).is_empty() {
        return Err(
            "valgrind not found: install it (`apt-get install valgrind`), \
                    then run `cargo xtask bench-micro --icount` again"
                .into(),
        );
    }
    let status = run_verbose(cargo().args([
        "build",
        "--release",
        "-p",
        "twinlease-bench",
        "--bin",
        "icount",
    ]))?;
    if !status.success() {
        return Err(format!("building icount failed: {status}").into());
    }
    let bin = target_dir().join("release").join("icount");
    let list = Command::new(&bin).arg("--list").output()?;
    let ops: Vec<(String, String)> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .filter(|(a, _)| extra.is_empty() || extra.iter().any(|e| a.contains(e.as_str())))
        .collect();
    if ops.is_empty() {
        return Err("no operation to count (check the filter)".into());
    }
    let tmp = tempfile::tempdir()?;
    let mut rows = String::new();
    for (op, what) in &ops {
        let i1 = callgrind(&bin, op, N1, tmp.path())?;
        let i2 = callgrind(&bin, op, N2, tmp.path())?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "instruction counts far below 2^52"
        )]
        let per = (i2 as f64 - i1 as f64) / (N2 - N1) as f64;
        println!("bench-micro: {op}: {per:.1} instructions per operation");
        let _ = writeln!(rows, "| `{op}` | {what} | {i1} | {i2} | {per:.1} |");
    }
    let date = first_line("date", &["+%F"]);
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = if first_line("git", &["status", "--porcelain"]).is_empty() {
        ""
    } else {
        " (work tree modified)"
    };
    let report = format!(
        "# Hot-path instruction counts, {date}\n\n\
         Instructions executed per operation, counted by callgrind inside the measured loop\n\
         only (`--toggle-collect=icount_measure`), for {N1} and {N2} iterations; per\n\
         operation = (I({N2}) − I({N1})) / {}. Counts include the loop and the indirect call\n\
         of the closure (a few instructions). They do not depend on the machine's load, so\n\
         they compare across commits. `cargo xtask bench-micro --icount`; the fixtures are\n\
         those of `bench/benches/common` (engine: one shard of 16 384 clients, steady state).\n\n\
         | operation | what | I({N1}) | I({N2}) | instructions / op |\n\
         |---|---|---:|---:|---:|\n{rows}\n\
         | | |\n|---|---|\n| commit | {commit}{dirty} |\n| rustc | {} |\n| valgrind | {} |\n",
        N2 - N1,
        first_line("rustc", &["--version"]),
        first_line("valgrind", &["--version"]),
    );
    let dir = workspace_root().join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{date}-icount.md"));
    std::fs::write(&path, &report)?;
    println!("{report}\nbench-micro: written to {}", path.display());
    Ok(())
}
