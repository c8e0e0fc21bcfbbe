//! What a run shows: the progress line on stderr during long runs, the table for people and
//! the one JSON line for machines (always the last line of standard output).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::driver::Progress;
use super::stats::{DropStage, Op, Stats, Step};
use super::unique::Duplicate;

/// How the run was set up, for the report.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// `v4` or `v6`.
    pub family: String,
    /// `na`, `pd`, `na+pd` (v6), empty for v4.
    pub ia: String,
    /// The relay address, if the generator played a relay agent.
    pub relay: Option<String>,
    /// The mix.
    pub mix: String,
    /// Simulated clients.
    pub clients: u32,
    /// Identity seed.
    pub seed: u64,
    /// Reply timeout.
    pub timeout: Duration,
    /// Interface and how the steering program is attached.
    pub iface: String,
    /// `driver` or `skb`.
    pub xdp_mode: String,
    /// Receive queues served.
    pub queues: usize,
}

/// One measured period (a fixed-rate run, or a rung of the ladder).
#[derive(Clone, Debug)]
pub struct Period {
    /// The offered rate asked for, exchanges per second.
    pub rate: u64,
    /// Its counters.
    pub stats: Stats,
}

impl Period {
    /// Whether the period passes: lost exchanges at most `max_drop_pct` % of those ended,
    /// and the generator offered at least 95 % of the asked rate (else the generator or the
    /// client population, not the server, was the limit).
    #[must_use]
    pub fn passed(&self, max_drop_pct: f64) -> bool {
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let asked = self.rate as f64;
        self.stats.drop_fraction() * 100.0 <= max_drop_pct
            && self.stats.offered_per_sec() >= 0.95 * asked
    }
}

/// Everything the report shows beyond the periods.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Duplicates found over the whole run.
    pub duplicates: u64,
    /// The first duplicates.
    pub examples: Vec<Duplicate>,
    /// Leases held at the end.
    pub leases_held: usize,
    /// Clients bound at the end.
    pub bound: u32,
    /// Bytes of state per client.
    pub bytes_per_client: usize,
    /// Bytes of the uniqueness tables.
    pub unique_bytes: usize,
    /// Servers seen.
    pub servers_seen: usize,
    /// Kernel socket counters: RX dropped, RX ring full, fill ring empty.
    pub socket_drops: (u64, u64, u64),
    /// Peak resident memory of the generator, bytes.
    pub max_rss: u64,
}

/// Peak resident memory of this process (`getrusage`), bytes.
#[must_use]
pub fn max_rss() -> u64 {
    // Safety: an all-zero rusage is valid; getrusage writes into it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // Safety: valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut u) } != 0 {
        return 0;
    }
    // Linux reports kilobytes.
    u64::try_from(u.ru_maxrss).unwrap_or(0) * 1024
}

fn latency_json(s: &Stats) -> Value {
    let mut m = serde_json::Map::new();
    for step in Step::ALL {
        let h = s.histogram(step);
        if h.count() == 0 {
            continue;
        }
        m.insert(
            step.name().into(),
            json!({
                "count": h.count(),
                "p50": h.quantile(0.5),
                "p99": h.quantile(0.99),
                "p999": h.quantile(0.999),
                "max": h.max(),
                "mean": (h.mean() * 10.0).round() / 10.0,
            }),
        );
    }
    Value::Object(m)
}

fn per_op(v: &[u64; 5]) -> Value {
    Value::Object(
        Op::ALL
            .iter()
            .filter(|o| v[**o as usize] > 0)
            .map(|o| (o.name().to_owned(), json!(v[*o as usize])))
            .collect(),
    )
}

fn period_json(p: &Period, max_drop_pct: f64) -> Value {
    let s = &p.stats;
    json!({
        "rate": p.rate,
        "seconds": s.elapsed.as_secs_f64(),
        "offered_per_s": s.offered_per_sec().round(),
        "completed_per_s": s.completed_per_sec().round(),
        "leases_per_s": s.leases_per_sec().round(),
        "started": per_op(&s.started),
        "completed": per_op(&s.completed),
        "drops": DropStage::ALL.iter().map(|d| (d.name().to_owned(), json!(s.drops[*d as usize]))).collect::<serde_json::Map<_, _>>(),
        "drop_pct": (s.drop_fraction() * 1e4).round() / 100.0,
        "no_eligible": s.no_eligible,
        "latency_us": latency_json(s),
        "tx_frames": s.tx_frames,
        "rx_frames": s.rx_frames,
        "rx_unmatched": s.rx_unmatched,
        "rx_malformed": s.rx_malformed,
        "arp_answered": s.arp_answered,
        "lease_unindexable": s.lease_unindexable,
        "pass": p.passed(max_drop_pct),
    })
}

/// The JSON line: the run, the main period (the fixed-rate one, or the best passing rung),
/// the ladder's rungs, and the totals.
#[must_use]
pub fn json_line(
    info: &RunInfo,
    main: Option<&Period>,
    ladder: &[Period],
    max_drop_pct: f64,
    t: &Totals,
) -> String {
    #[expect(clippy::cast_precision_loss, reason = "bytes per client for reports")]
    let unique_per_client = t.unique_bytes as f64 / f64::from(info.clients.max(1));
    let v = json!({
        "bench": "twinlease_bench",
        "family": info.family,
        "ia": info.ia,
        "relay": info.relay,
        "mix": info.mix,
        "clients": info.clients,
        "seed": info.seed,
        "timeout_ms": info.timeout.as_millis(),
        "iface": info.iface,
        "xdp_mode": info.xdp_mode,
        "queues": info.queues,
        "result": main.map(|p| period_json(p, max_drop_pct)),
        "max_rate": if ladder.is_empty() { None } else { main.map(|p| p.rate) },
        "max_drop_pct": max_drop_pct,
        "ladder": ladder.iter().map(|p| period_json(p, max_drop_pct)).collect::<Vec<_>>(),
        "duplicates": t.duplicates,
        "duplicate_examples": t.examples.iter().map(|d| json!({
            "kind": format!("{:?}", d.kind), "key": d.key, "holder": d.holder, "other": d.other,
        })).collect::<Vec<_>>(),
        "leases_held": t.leases_held,
        "bound": t.bound,
        "servers_seen": t.servers_seen,
        "bytes_per_client_state": t.bytes_per_client,
        "bytes_per_client_unique_index": (unique_per_client * 10.0).round() / 10.0,
        "socket_rx_dropped": t.socket_drops.0,
        "socket_rx_ring_full": t.socket_drops.1,
        "socket_fill_ring_empty": t.socket_drops.2,
        "max_rss_bytes": t.max_rss,
    });
    v.to_string()
}

/// The table for people.
#[must_use]
#[expect(clippy::many_single_char_names, reason = "a long formatting function")]
pub fn table(
    info: &RunInfo,
    main: Option<&Period>,
    ladder: &[Period],
    max_drop_pct: f64,
    t: &Totals,
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "twinlease_bench: {}{} {}, mix {}, {} clients (seed {}), timeout {} ms, {} ({} XDP, {} queue(s))",
        info.family,
        if info.ia.is_empty() {
            String::new()
        } else {
            format!(" {}", info.ia)
        },
        info.relay
            .as_ref()
            .map_or_else(|| "direct".to_owned(), |r| format!("relayed via {r}")),
        info.mix,
        info.clients,
        info.seed,
        info.timeout.as_millis(),
        info.iface,
        info.xdp_mode,
        info.queues,
    );
    if !ladder.is_empty() {
        let _ = writeln!(
            o,
            "\n  ladder (≤ {max_drop_pct} % lost):\n  {:>9} {:>10} {:>10} {:>8} {:>10} {:>10}  pass",
            "rate/s", "offered/s", "done/s", "lost %", "p99 µs", "p99.9 µs"
        );
        for p in ladder {
            let h = p.stats.histogram(main_step(&p.stats));
            let _ = writeln!(
                o,
                "  {:>9} {:>10.0} {:>10.0} {:>8.2} {:>10} {:>10}  {}",
                p.rate,
                p.stats.offered_per_sec(),
                p.stats.completed_per_sec(),
                p.stats.drop_fraction() * 100.0,
                h.quantile(0.99),
                h.quantile(0.999),
                if p.passed(max_drop_pct) { "yes" } else { "NO" }
            );
        }
    }
    match main {
        None => {
            let _ = writeln!(o, "\n  no rung passed");
        }
        Some(p) => {
            let s = &p.stats;
            let _ = writeln!(
                o,
                "\n  {} at {}/s asked: {:.2} s, offered {:.0}/s, completed {:.0}/s, leases {:.0}/s, lost {:.2} %",
                if ladder.is_empty() {
                    "run"
                } else {
                    "best rung"
                },
                p.rate,
                s.elapsed.as_secs_f64(),
                s.offered_per_sec(),
                s.completed_per_sec(),
                s.leases_per_sec(),
                s.drop_fraction() * 100.0
            );
            let _ = writeln!(
                o,
                "  {:<10} {:>10} {:>10}",
                "operation", "started", "completed"
            );
            for op in Op::ALL {
                let (a, b) = (s.started[op as usize], s.completed[op as usize]);
                if a + b > 0 {
                    let _ = writeln!(o, "  {:<10} {a:>10} {b:>10}", op.name());
                }
            }
            let _ = writeln!(
                o,
                "  lost: no offer {}, no ack/reply {}, nak {}, tx ring full {}; no eligible client {}",
                s.drops[DropStage::NoOffer as usize],
                s.drops[DropStage::NoAck as usize],
                s.drops[DropStage::Nak as usize],
                s.drops[DropStage::TxFull as usize],
                s.no_eligible
            );
            let _ = writeln!(
                o,
                "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency µs", "count", "p50", "p99", "p99.9", "max"
            );
            for step in Step::ALL {
                let h = s.histogram(step);
                if h.count() > 0 {
                    let _ = writeln!(
                        o,
                        "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                        step.name(),
                        h.count(),
                        h.quantile(0.5),
                        h.quantile(0.99),
                        h.quantile(0.999),
                        h.max()
                    );
                }
            }
            let _ = writeln!(
                o,
                "  frames: tx {}, rx {}, unmatched {}, malformed {}, ARP answered {}",
                s.tx_frames, s.rx_frames, s.rx_unmatched, s.rx_malformed, s.arp_answered
            );
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "bytes per client for reports")]
    let unique_per_client = t.unique_bytes as f64 / f64::from(info.clients.max(1));
    let _ = writeln!(
        o,
        "  uniqueness: {} duplicate(s) over {} leases held, {} server(s) seen{}",
        t.duplicates,
        t.leases_held,
        t.servers_seen,
        if t.examples.is_empty() {
            String::new()
        } else {
            format!(", first: {:?}", t.examples[0])
        }
    );
    #[expect(clippy::cast_precision_loss, reason = "MiB for reports")]
    let rss_mib = t.max_rss as f64 / 1_048_576.0;
    let _ = writeln!(
        o,
        "  memory per client: {} B state + {unique_per_client:.1} B uniqueness index (peak RSS {rss_mib:.0} MiB); socket drops (rx, ring full, fill empty) {:?}",
        t.bytes_per_client, t.socket_drops
    );
    o
}

/// The step whose latency a ladder rung shows: the whole DORA when there were any.
fn main_step(s: &Stats) -> Step {
    Step::ALL
        .into_iter()
        .filter(|&st| st != Step::Offer && st != Step::Request)
        .max_by_key(|&st| s.histogram(st).count())
        .unwrap_or(Step::Dora)
}

/// A one-line progress display on stderr, redrawn in place.
#[derive(Debug)]
pub struct ProgressLine {
    enabled: bool,
    label: String,
}

impl ProgressLine {
    /// Enabled when asked, or when stderr is a terminal.
    #[must_use]
    pub fn new(force: bool) -> Self {
        // Safety: isatty has no preconditions.
        let tty = unsafe { libc::isatty(2) } == 1;
        Self {
            enabled: force || tty,
            label: String::new(),
        }
    }

    /// Sets the text in front of the bar (the rung).
    pub fn label(&mut self, text: String) {
        self.label = text;
    }

    /// Redraws the line.
    pub fn update(&self, p: &Progress) {
        if !self.enabled {
            return;
        }
        let total = p.duration.as_secs_f64().max(1e-9);
        let frac = (p.elapsed.as_secs_f64() / total).clamp(0.0, 1.0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a bar width of 0..=30"
        )]
        let filled = (frac * 30.0).round() as usize;
        let _ = write!(
            std::io::stderr(),
            "\r{} [{}{}] {:5.1}/{:.0} s  started {}  done {}  lost {}  bound {}   ",
            self.label,
            "#".repeat(filled),
            ".".repeat(30 - filled),
            p.elapsed.as_secs_f64(),
            total,
            p.started,
            p.completed,
            p.drops,
            p.bound
        );
    }

    /// Ends the line.
    pub fn finish(&self) {
        if self.enabled {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RunInfo {
        RunInfo {
            family: "v4".into(),
            ia: String::new(),
            relay: None,
            mix: "dora=1".into(),
            clients: 1000,
            seed: 1,
            timeout: Duration::from_secs(1),
            iface: "c0".into(),
            xdp_mode: "driver".into(),
            queues: 1,
        }
    }

    #[test]
    fn json_line_is_one_parsable_line_with_the_figures() {
        let mut s = Stats::default();
        for _ in 0..990 {
            s.start(Op::Dora);
            s.complete(Op::Dora);
            s.latency(Step::Dora, 250);
        }
        for _ in 0..10 {
            s.start(Op::Dora);
            s.drop_at(DropStage::NoAck);
        }
        s.elapsed = Duration::from_secs(1);
        let p = Period {
            rate: 1000,
            stats: s,
        };
        let t = Totals {
            bytes_per_client: 24,
            unique_bytes: 9000,
            ..Totals::default()
        };
        let line = json_line(&info(), Some(&p), &[], 1.0, &t);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["result"]["leases_per_s"], 990.0);
        assert_eq!(v["result"]["drops"]["no_ack"], 10);
        assert_eq!(v["result"]["drop_pct"], 1.0);
        assert_eq!(v["result"]["pass"], true);
        assert_eq!(v["result"]["latency_us"]["dora"]["p99"], 250);
        assert_eq!(v["duplicates"], 0);
        assert_eq!(v["bytes_per_client_unique_index"], 9.0);
        assert!(v["max_rate"].is_null());
        let text = table(&info(), Some(&p), &[], 1.0, &t);
        assert!(text.contains("leases 990/s"), "{text}");
    }

    #[test]
    fn a_rung_fails_on_drops_or_a_short_offered_rate() {
        let mut s = Stats::default();
        for _ in 0..98 {
            s.start(Op::Dora);
            s.complete(Op::Dora);
        }
        s.start(Op::Dora);
        s.start(Op::Dora);
        s.drop_at(DropStage::NoOffer);
        s.drop_at(DropStage::NoOffer);
        s.elapsed = Duration::from_secs(1);
        assert!(
            !Period {
                rate: 100,
                stats: s.clone()
            }
            .passed(1.0),
            "2 % lost"
        );
        assert!(
            Period {
                rate: 100,
                stats: s.clone()
            }
            .passed(2.0)
        );
        assert!(
            !Period {
                rate: 200,
                stats: s
            }
            .passed(2.0),
            "offered half the rate"
        );
    }
}
