//! What `cargo xtask bench-socket` (DHCPv4) and `cargo xtask bench-v6` (DHCPv6) share: the
//! rate ladder and its bisection, the measured [`Rung`], the command line, the report
//! (table, machine description, rungs) and the results file.

use std::fmt::Write as _;
use std::path::PathBuf;

use twinlease_tests::perfdhcp::PerfdhcpReport;
use twinlease_tests::{is_root, workspace_root};

use crate::Error;

/// Highest failure fraction a passing rung may have.
pub const MAX_FAIL: f64 = 0.01;
/// Bisection steps after the ladder.
pub const BISECT_STEPS: u32 = 2;
/// Bisection stops once the passing and failing rates are closer than this.
const BISECT_RESOLUTION: u32 = 250;

/// (offered rate, failed fraction, achieved rate) of each rung run.
pub type RungLog = Vec<(u32, f64, f64)>;

/// One measured rung.
pub struct Rung {
    pub rate: u32,
    pub report: PerfdhcpReport,
    /// Server CPU seconds used during the rung (start-up included).
    pub cpu: Option<f64>,
}

impl Rung {
    /// Completed exchanges (DHCPACKs, or REPLYs to REQUEST) per second of the sending
    /// period (perfdhcp's own rate also divides by its wait for the last replies).
    pub fn achieved(&self, secs: u32) -> f64 {
        self.completed() / f64::from(secs.max(1))
    }

    /// Server CPU seconds per 100 000 completed exchanges (leases granted).
    pub fn cpu_per_100k(&self) -> Option<f64> {
        let done = self.completed();
        self.cpu
            .filter(|_| done > 0.0)
            .map(|c| c / done * 100_000.0)
    }

    pub fn passed(&self) -> bool {
        self.report.failed_fraction() <= MAX_FAIL
    }

    fn completed(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
        let n = self.report.acks() as f64;
        n
    }
}

/// The ladder and bisection over any rung outcome: runs `rung` for each rate of `ladder`
/// until one does not pass, then bisects [`BISECT_STEPS`] times between the last passing
/// and the first failing rate. Returns the outcome at the highest passing rate run, if any.
pub fn search<R, E>(
    ladder: &[u32],
    mut rung: impl FnMut(u32) -> Result<R, E>,
    passed: impl Fn(&R) -> bool,
) -> Result<Option<(u32, R)>, E> {
    let mut best: Option<(u32, R)> = None;
    let mut first_fail = None;
    for &rate in ladder {
        let r = rung(rate)?;
        if passed(&r) {
            best = Some((rate, r));
        } else {
            first_fail = Some(rate);
            break;
        }
    }
    if let (Some(mut hi), Some(_)) = (first_fail, best.as_ref()) {
        for _ in 0..BISECT_STEPS {
            let lo = best.as_ref().map_or(0, |b| b.0);
            let mid = lo + (hi - lo) / 2;
            if mid <= lo || hi - lo < BISECT_RESOLUTION {
                break;
            }
            let r = rung(mid)?;
            if passed(&r) {
                best = Some((mid, r));
            } else {
                hi = mid;
            }
        }
    }
    Ok(best)
}

/// [`search`] over measured rungs: (best passing rung, all rungs).
pub fn measure(
    ladder: &[u32],
    secs: u32,
    mut rung: impl FnMut(u32) -> Result<Rung, Error>,
) -> Result<(Option<Rung>, RungLog), Error> {
    let mut log = Vec::new();
    let best = search(
        ladder,
        |rate| {
            let r = rung(rate)?;
            log.push((rate, r.report.failed_fraction(), r.achieved(secs)));
            Ok::<_, Error>(r)
        },
        Rung::passed,
    )?;
    Ok((best.map(|(_, r)| r), log))
}

/// The command line of both benchmarks: `--secs N` (default 5), `--only NAME`.
pub struct Args {
    pub secs: u32,
    pub only: Option<String>,
    /// Active leases written into twinlease's store before it starts (`--prefill N`, only
    /// `cargo xtask bench`): steady state with a big store.
    pub prefill: u32,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Self, Error> {
        let mut secs = 5;
        let mut only = None;
        let mut prefill = 0;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--secs" => secs = it.next().and_then(|s| s.parse().ok()).ok_or("--secs N")?,
                "--only" => only = it.next().cloned(),
                "--prefill" => {
                    prefill = it
                        .next()
                        .and_then(|s| s.parse().ok())
                        .ok_or("--prefill N")?;
                }
                other => return Err(format!("unknown argument {other:?}").into()),
            }
        }
        Ok(Self {
            secs,
            only,
            prefill,
        })
    }

    /// Whether `--only` leaves out the server named `name` (its `Debug`, any case).
    fn skips(&self, name: &impl std::fmt::Debug) -> bool {
        let name = format!("{name:?}").to_lowercase();
        !self.selects(&name)
    }

    /// Whether `--only` (a comma-separated list of names) includes `name`; true without it.
    pub fn selects(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.split(',').any(|n| n.trim() == name))
    }
}

/// The wording of one benchmark.
pub struct Bench {
    /// The chore, prefixing printed lines: `bench-socket`.
    pub chore: &'static str,
    /// Width of the server name in the per-rung line.
    pub name_width: usize,
    /// What perfdhcp counts as started and completed: `DISCOVERs`, `ACKs`.
    pub started: &'static str,
    pub completed: &'static str,
    /// The Kea binary whose version the machine table shows.
    pub kea: &'static str,
    /// The results file is `results/<date>-<suffix>.md`.
    pub suffix: &'static str,
    /// Headings of the delay and CPU columns.
    pub delay_heading: &'static str,
    pub cpu_heading: &'static str,
    /// The table cells of a server that failed the first rung.
    pub below_first_rung: &'static str,
}

impl Bench {
    /// Whether the benchmark cannot run here (not root); then says so.
    pub fn skipped_without_root(&self) -> bool {
        if is_root() {
            return false;
        }
        println!(
            "xtask {}: skipped: needs root (network namespaces)",
            self.chore
        );
        true
    }

    /// Measures each of `servers` that `args` does not leave out: its row and rungs, or
    /// why it was not measured (`why` of the error).
    pub fn measure_all<S: Copy + std::fmt::Debug>(
        &self,
        args: &Args,
        servers: &[S],
        label: fn(S) -> &'static str,
        mut measure: impl FnMut(S) -> Result<(Option<Rung>, RungLog), Error>,
        why: impl Fn(S, &Error) -> String,
    ) -> Results {
        let mut results = Results::default();
        for &server in servers {
            if args.skips(&server) {
                continue;
            }
            match measure(server) {
                Ok(measured) => results.measured(self, label(server), measured, args.secs),
                Err(e) => results.not_measured(label(server), &why(server, &e)),
            }
        }
        results
    }

    /// Prints one rung's outcome.
    pub fn print_rung(&self, server: &impl std::fmt::Debug, r: &Rung, secs: u32) {
        println!(
            "{}: {:w$} rate {:6}/s: {:6} {} {:6} {}, failed {:5.2} %, achieved {:8.1}/s, CPU {:5.2} s/100k -> {}",
            self.chore,
            format!("{server:?}"),
            r.rate,
            r.report.started(),
            self.started,
            r.report.acks(),
            self.completed,
            r.report.failed_fraction() * 100.0,
            r.achieved(secs),
            r.cpu_per_100k().unwrap_or(f64::NAN),
            if r.passed() { "pass" } else { "FAIL" },
            w = self.name_width,
        );
    }

    /// The machine table: load, cores, kernel, CPU, perfdhcp and Kea versions.
    pub fn machine(&self) -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        format!(
            "| load average at start (shared machine) | {} |\n| nproc | {} |\n| kernel | {} |\n| CPU | {} |\n| perfdhcp | {} |\n| {} | {} |\n",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim(),
            first_line("nproc", &[]),
            first_line("uname", &["-sr"]),
            cpu,
            first_line("perfdhcp", &["-v"]).trim_start_matches("VERSION: "),
            self.kea,
            first_line(self.kea, &["-v"]),
        )
    }

    /// The report: `intro` (title and text, ending with a blank line), the table of
    /// `results`, the machine and the rungs.
    pub fn report(&self, intro: &str, results: &Results) -> String {
        format!(
            "{intro}| server | max rate ≤ 1 % loss (/s) | achieved (/s) | failed | {} | {} |\n\
             |---|---|---|---|---|---|\n{}\n## Machine\n\n| | |\n|---|---|\n{}\n## Rungs\n{}",
            self.delay_heading,
            self.cpu_heading,
            results.rows,
            self.machine(),
            results.details,
        )
    }

    /// Writes `report` to `results/<date>-<suffix>.md` and prints it.
    pub fn write(&self, date: &str, report: &str) -> Result<(), Error> {
        let dir: PathBuf = workspace_root().join("results");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{date}-{}.md", self.suffix));
        std::fs::write(&path, report)?;
        println!("{report}\n{}: written to {}", self.chore, path.display());
        Ok(())
    }
}

/// The table rows and rung details of the servers measured so far.
#[derive(Default)]
pub struct Results {
    rows: String,
    details: String,
}

impl Results {
    /// A measured server: its row (best rung) and its rungs.
    fn measured(
        &mut self,
        bench: &Bench,
        label: &str,
        (best, log): (Option<Rung>, RungLog),
        secs: u32,
    ) {
        let cell = best.map_or_else(
            || bench.below_first_rung.to_owned(),
            |b| {
                format!(
                    "{} | {:.0} | {:.2} % | {:.3} ms | {} |",
                    b.rate,
                    b.achieved(secs),
                    b.report.failed_fraction() * 100.0,
                    b.report
                        .second_exchange()
                        .and_then(|s| s.avg_delay_ms)
                        .unwrap_or(0.0),
                    b.cpu_per_100k()
                        .map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"))
                )
            },
        );
        let _ = writeln!(self.rows, "| {label} | {cell}");
        let _ = writeln!(
            self.details,
            "\n{label}: rungs (offered rate/s, failed %, achieved/s):"
        );
        for (rate, fail, got) in log {
            let _ = writeln!(self.details, "- {rate}: {:.2} %, {got:.0}", fail * 100.0);
        }
    }

    /// A server that could not be measured, and why.
    fn not_measured(&mut self, label: &str, why: &str) {
        let _ = writeln!(self.rows, "| {label} | not measured: {why} | | | | |");
    }
}

/// The first line `cmd args` prints, trimmed; empty when it cannot run.
pub fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
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

#[cfg(test)]
mod tests {
    use super::search;

    /// Runs [`search`] with a fake measurement passing at rates up to `threshold`:
    /// (best rate, rates tried in order).
    fn run(ladder: &[u32], threshold: u32) -> (Option<u32>, Vec<u32>) {
        let mut tried = Vec::new();
        let best = search(
            ladder,
            |rate| {
                tried.push(rate);
                Ok::<_, ()>(rate)
            },
            |&rate| rate <= threshold,
        )
        .unwrap();
        (
            best.map(|(rate, outcome)| {
                assert_eq!(rate, outcome);
                rate
            }),
            tried,
        )
    }

    const LADDER: &[u32] = &[500, 1000, 2000, 4000, 6000, 8000];

    #[test]
    fn bisection_finds_the_highest_passing_rate() {
        // Ladder passes 2000, fails 4000; bisects 3000 (pass), then 3500 (fail).
        assert_eq!(
            run(LADDER, 3000),
            (Some(3000), vec![500, 1000, 2000, 4000, 3000, 3500])
        );
        // 3000 fails, 2500 passes.
        assert_eq!(
            run(LADDER, 2999),
            (Some(2500), vec![500, 1000, 2000, 4000, 3000, 2500])
        );
        // 3000 and 3500 pass: the best of the two bisection steps.
        assert_eq!(run(LADDER, 3700).0, Some(3500));
    }

    #[test]
    fn best_is_the_highest_passing_rate_tried() {
        for threshold in (0..10_000).step_by(37) {
            let (best, tried) = run(LADDER, threshold);
            let passing = tried.iter().copied().filter(|&r| r <= threshold).max();
            assert_eq!(best, passing, "threshold {threshold}");
            assert!(best.is_none_or(|b| b <= threshold));
        }
    }

    #[test]
    fn edges() {
        // Below the first rung: nothing passes, no bisection.
        assert_eq!(run(LADDER, 100), (None, vec![500]));
        // Above the ladder: every rung passes, no bisection.
        assert_eq!(run(LADDER, 50_000), (Some(8000), LADDER.to_vec()));
        // Failing rates closer than the resolution: no bisection.
        assert_eq!(run(&[1000, 1200], 1100), (Some(1000), vec![1000, 1200]));
    }
}
