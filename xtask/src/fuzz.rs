//! `cargo xtask fuzz [--seconds N] [TARGET]`: run the cargo-fuzz targets of
//! `dhcp-userspace/fuzz/` (all of them, or TARGET) for N seconds each (default 60), starting
//! from the committed seeds (`fuzz/seeds/<target>/`). New inputs go to the ignored
//! `fuzz/corpus/<target>/`; a crash leaves its input in `fuzz/artifacts/<target>/` and makes
//! the chore fail. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz
//! --locked`).

use std::path::Path;
use std::process::Command;

use crate::{Error, run_verbose};

/// The targets, in the order they run.
pub const TARGETS: [&str; 7] = [
    "dhcpv4_parse",
    "dhcpv6_parse",
    "failover_parse",
    "failover6_parse",
    "config_parse",
    "engine_v4",
    "engine_v6",
];

/// Parsed arguments.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    seconds: u32,
    targets: Vec<&'static str>,
}

fn parse_args(args: &[String]) -> Result<Args, Error> {
    let mut seconds = 60;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--seconds" {
            let v = it.next().ok_or("--seconds needs a value")?;
            seconds = v.parse().map_err(|e| format!("--seconds {v:?}: {e}"))?;
            if seconds == 0 {
                return Err("--seconds must be at least 1".into());
            }
        } else if let Some(t) = TARGETS.iter().find(|t| **t == a.as_str()) {
            targets.push(*t);
        } else {
            return Err(
                format!("unknown fuzz target or option {a:?} (targets: {TARGETS:?})").into(),
            );
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    Ok(Args { seconds, targets })
}

fn cargo_fuzz(dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    // rustup's proxy picks the toolchain; the CARGO of `cargo xtask` would be stable's.
    cmd.env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd.args(["+nightly", "fuzz"]).current_dir(dir);
    cmd
}

/// Runs the chore.
pub fn run(args: &[String]) -> Result<(), Error> {
    let args = parse_args(args)?;
    let dir = twinlease_tests::workspace_root().join("dhcp-userspace");
    let fuzz = dir.join("fuzz");
    let ok = cargo_fuzz(&dir)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err(
            "`cargo +nightly fuzz` is not available: install the nightly toolchain and \
                    `cargo install cargo-fuzz --locked`"
                .into(),
        );
    }
    let mut failed = Vec::new();
    for target in &args.targets {
        let corpus = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let seeds = fuzz.join("seeds").join(target);
        let status = run_verbose(
            cargo_fuzz(&dir)
                .args(["run", target])
                .arg(&corpus)
                .arg(&seeds)
                .arg("--")
                .arg(format!("-max_total_time={}", args.seconds))
                .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"]),
        )?;
        if !status.success() {
            eprintln!(
                "xtask fuzz: {target} failed; its input is under {}: fix the bug, then copy the \
                 input to {} so that `cargo test --test fuzz_corpus` keeps it fixed",
                fuzz.join("artifacts").join(target).display(),
                fuzz.join("regressions").join(target).display()
            );
            failed.push(*target);
        }
    }
    if failed.is_empty() {
        println!(
            "xtask fuzz: {} target(s), {} s each: no crash",
            args.targets.len(),
            args.seconds
        );
        Ok(())
    } else {
        Err(format!("crash or error in {failed:?}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse_args(&[]).unwrap(),
            Args {
                seconds: 60,
                targets: TARGETS.to_vec()
            }
        );
        assert_eq!(
            parse_args(&s(&["--seconds", "30", "engine_v6"])).unwrap(),
            Args {
                seconds: 30,
                targets: vec!["engine_v6"]
            }
        );
        assert!(parse_args(&s(&["--seconds"])).is_err());
        assert!(parse_args(&s(&["--seconds", "0"])).is_err());
        assert!(parse_args(&s(&["nope"])).is_err());
    }

    #[test]
    fn every_target_is_built_and_seeded() {
        let fuzz = twinlease_tests::workspace_root().join("dhcp-userspace/fuzz");
        let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
        for t in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{t}\"")),
                "{t} not in Cargo.toml"
            );
            let seeds = std::fs::read_dir(fuzz.join("seeds").join(t))
                .unwrap()
                .count();
            assert!(seeds > 0, "no seeds for {t}");
        }
    }
}
