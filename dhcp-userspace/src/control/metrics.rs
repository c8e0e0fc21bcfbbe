//! Metrics: the histograms and per-message-type counters kept in
//! [`Stats`](crate::dispatch::Stats), and their Prometheus text exposition (format 0.0.4).
//!
//! Workers count message types in a plain local array per batch ([`MsgLocal`]) and add it to
//! the shared atomics once per batch; histograms are observed once per batch or commit, never
//! per packet.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Handle, PoolStat};

/// Upper bounds of the WAL commit latency buckets, in microseconds.
pub const COMMIT_MICROS_BOUNDS: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Upper bounds of the batch size buckets, in requests.
pub const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

/// A fixed-bucket histogram of integer observations, updated with relaxed atomics.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Non-cumulative counts; one more than `bounds` (the `+Inf` bucket).
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

/// A copy of a [`Histogram`]'s state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)`; the last entry's bound is `None` (`+Inf`).
    pub buckets: Vec<(Option<u64>, u64)>,
    /// Sum of the observations.
    pub sum: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// A histogram with these (ascending) bucket upper bounds.
    #[must_use]
    pub fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Count one observation.
    pub fn observe(&self, v: u64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The current state, buckets cumulative as Prometheus wants them.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                acc += b.load(Ordering::Relaxed);
                (self.bounds.get(i).copied(), acc)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            sum: self.sum.load(Ordering::Relaxed),
            count: acc,
        }
    }
}

/// Message family index for [`MsgCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// DHCPv4.
    V4 = 0,
    /// DHCPv6.
    V6 = 1,
}

/// Packet path index for [`MsgCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Kernel sockets.
    Socket = 0,
    /// `AF_XDP`.
    Xdp = 1,
}

const TYPES: usize = 16;
const SLOTS: usize = 2 * 2 * TYPES;

fn slot(family: Family, path: Path, msg_type: u8) -> usize {
    let t = if usize::from(msg_type) < TYPES {
        usize::from(msg_type)
    } else {
        0
    };
    (family as usize * 2 + path as usize) * TYPES + t
}

/// Name of a DHCP message type code in a metric label (RFC 2132 §9.6, RFC 8415 §7.3);
/// `other` for anything else.
#[must_use]
pub fn type_name(family: Family, code: u8) -> &'static str {
    const V4: [&str; 9] = [
        "other", "discover", "offer", "request", "decline", "ack", "nak", "release", "inform",
    ];
    const V6: [&str; 14] = [
        "other",
        "solicit",
        "advertise",
        "request",
        "confirm",
        "renew",
        "rebind",
        "reply",
        "release",
        "decline",
        "reconfigure",
        "information-request",
        "relay-forw",
        "relay-repl",
    ];
    let t = usize::from(code);
    match family {
        Family::V4 => V4.get(t).copied().unwrap_or("other"),
        Family::V6 => V6.get(t).copied().unwrap_or("other"),
    }
}

/// Messages by family, path and message type (shared, atomic).
#[derive(Debug)]
pub struct MsgCounters([AtomicU64; SLOTS]);

impl Default for MsgCounters {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl MsgCounters {
    /// Add a worker's batch counts and reset them.
    pub fn fold(&self, local: &mut MsgLocal) {
        if !local.dirty {
            return;
        }
        for (a, l) in self.0.iter().zip(local.counts.iter_mut()) {
            if *l != 0 {
                a.fetch_add(u64::from(*l), Ordering::Relaxed);
                *l = 0;
            }
        }
        local.dirty = false;
    }

    /// The count of one (family, path, type).
    #[must_use]
    pub fn get(&self, family: Family, path: Path, msg_type: u8) -> u64 {
        self.0[slot(family, path, msg_type)].load(Ordering::Relaxed)
    }

    /// Every non-zero count as `(family, path, type name, count)`.
    #[must_use]
    pub fn nonzero(&self) -> Vec<(Family, Path, &'static str, u64)> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            for path in [Path::Socket, Path::Xdp] {
                for t in 0..TYPES as u8 {
                    let n = self.get(family, path, t);
                    if n > 0 {
                        out.push((family, path, type_name(family, t), n));
                    }
                }
            }
        }
        out
    }
}

/// A worker's per-batch message counts (no atomics), folded into [`MsgCounters`].
#[derive(Debug, Clone)]
pub struct MsgLocal {
    counts: [u32; SLOTS],
    dirty: bool,
}

impl Default for MsgLocal {
    fn default() -> Self {
        Self {
            counts: [0; SLOTS],
            dirty: false,
        }
    }
}

impl MsgLocal {
    /// Count one message.
    #[inline]
    pub fn bump(&mut self, family: Family, path: Path, msg_type: u8) {
        let s = &mut self.counts[slot(family, path, msg_type)];
        *s = s.wrapping_add(1);
        self.dirty = true;
    }
}

fn family_label(f: Family) -> &'static str {
    match f {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

fn path_label(p: Path) -> &'static str {
    match p {
        Path::Socket => "socket",
        Path::Xdp => "xdp",
    }
}

/// Escape a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text writer.
struct Text(String);

impl Text {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot, scale: f64) {
        self.head(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, n) in &h.buckets {
            let le = bound.map_or_else(|| "+Inf".to_owned(), |b| fmt_f64(to_f64(b) / scale));
            self.sample(&bucket, &[("le", &le)], n);
        }
        self.sample(&format!("{name}_sum"), &[], fmt_f64(to_f64(h.sum) / scale));
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "metric values; exact below 2^53"
)]
fn to_f64(v: u64) -> f64 {
    v as f64
}

fn fmt_f64(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'i', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// The failover relationship's gauges and counters (draft-ietf-dhc-failover-12 states,
/// replication lag: unacknowledged updates and the age of the oldest).
fn failover_metrics(t: &mut Text, handle: &Handle) {
    type Field = fn(&crate::failover::partner::Status) -> u64;
    let rels = handle.failover_status();
    if rels.is_empty() {
        return;
    }
    t.head(
        "twinlease_failover_state",
        "gauge",
        "1 for the current failover state of each relationship (label state).",
    );
    for r in &rels {
        t.sample(
            "twinlease_failover_state",
            &[("relationship", &r.name), ("state", r.state)],
            1,
        );
    }
    t.head(
        "twinlease_failover_partner_state",
        "gauge",
        "1 for the partner's last known failover state.",
    );
    for r in &rels {
        if let Some(p) = r.partner_state {
            t.sample(
                "twinlease_failover_partner_state",
                &[("relationship", &r.name), ("state", p)],
                1,
            );
        }
    }
    let gauges: [(&str, &str, Field); 4] = [
        (
            "twinlease_failover_connected",
            "Whether the partner connection is up.",
            |r| u64::from(r.connected),
        ),
        (
            "twinlease_failover_unacked_updates",
            "Binding updates sent and not yet acknowledged.",
            |r| r.unacked_updates as u64,
        ),
        (
            "twinlease_failover_pending_updates",
            "Binding updates waiting to be sent.",
            |r| r.pending_updates as u64,
        ),
        (
            "twinlease_failover_oldest_unacked_milliseconds",
            "Age of the oldest unacknowledged update, milliseconds.",
            |r| r.oldest_unacked_ms,
        ),
    ];
    for (name, help, f) in gauges {
        t.head(name, "gauge", help);
        for r in &rels {
            t.sample(name, &[("relationship", &r.name)], f(r));
        }
    }
    let counters: [(&str, &str, Field); 9] = [
        (
            "twinlease_failover_updates_sent_total",
            "Binding updates (BNDUPD) sent.",
            |r| r.updates_sent,
        ),
        (
            "twinlease_failover_updates_acked_total",
            "Binding updates the partner acknowledged.",
            |r| r.updates_acked,
        ),
        (
            "twinlease_failover_updates_rejected_total",
            "Binding updates the partner rejected.",
            |r| r.updates_rejected,
        ),
        (
            "twinlease_failover_updates_received_total",
            "Binding updates received from the partner.",
            |r| r.updates_received,
        ),
        (
            "twinlease_failover_updates_refused_total",
            "Binding updates from the partner that we rejected.",
            |r| r.updates_refused,
        ),
        (
            "twinlease_failover_addresses_transferred_total",
            "Free addresses moved to the secondary's share by pool balancing.",
            |r| r.addresses_transferred,
        ),
        (
            "twinlease_failover_refused_connections_total",
            "Partner-port connections from other addresses than the peer's, closed unread.",
            |r| r.refused_connections,
        ),
        (
            "twinlease_failover_malformed_messages_total",
            "Partner connections reset for a malformed or oversized message.",
            |r| r.malformed_messages,
        ),
        (
            "twinlease_failover_tls_failures_total",
            "Failed TLS handshakes on the partner connection.",
            |r| r.tls_failures,
        ),
    ];
    for (name, help, f) in counters {
        t.head(name, "counter", help);
        for r in &rels {
            t.sample(name, &[("relationship", &r.name)], f(r));
        }
    }
    t.head(
        "twinlease_failover_partner_ring_full_total",
        "counter",
        "Lease changes that found the ring to the partner thread full (sent later by a rescan).",
    );
    t.sample(
        "twinlease_failover_partner_ring_full_total",
        &[],
        handle.stats().partner_ring_full.load(Ordering::Relaxed),
    );
}

/// The Prometheus text exposition of the server behind `handle`. Pool gauges need an answer
/// from every worker; when one does not come they are left out (and
/// `twinlease_pool_stats_available` is 0).
#[must_use]
pub fn render(handle: &Handle) -> String {
    let s = handle.stats();
    let mut t = Text(String::with_capacity(8192));
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);

    t.head(
        "twinlease_packets_received_total",
        "counter",
        "DHCP datagrams (socket path) or frames (XDP path) received.",
    );
    t.sample(
        "twinlease_packets_received_total",
        &[("path", "socket")],
        ld(&s.received),
    );
    t.sample(
        "twinlease_packets_received_total",
        &[("path", "xdp")],
        ld(&s.received_xdp),
    );
    t.head(
        "twinlease_priority_packets_received_total",
        "counter",
        "Of twinlease_packets_received_total{path=\"socket\"}, those read from a priority socket (renewals the kernel kept apart from the rest).",
    );
    t.sample(
        "twinlease_priority_packets_received_total",
        &[],
        ld(&s.received_priority),
    );
    t.head(
        "twinlease_priority_socket_fallbacks_total",
        "counter",
        "Listeners opened without a priority socket because the kernel refused SO_REUSEPORT or a classic BPF program.",
    );
    t.sample(
        "twinlease_priority_socket_fallbacks_total",
        &[],
        ld(&s.priority_socket_fallbacks),
    );
    t.head("twinlease_packets_sent_total", "counter", "Replies sent.");
    t.sample(
        "twinlease_packets_sent_total",
        &[("path", "socket")],
        ld(&s.sent),
    );
    t.sample(
        "twinlease_packets_sent_total",
        &[("path", "xdp")],
        ld(&s.sent_xdp),
    );

    for (name, help, c) in [
        (
            "twinlease_requests_total",
            "Requests handed to a worker, by family, path and message type (outer type for DHCPv6; `other` when unparsable).",
            &s.requests,
        ),
        (
            "twinlease_replies_total",
            "Replies built, by family, path and message type.",
            &s.replies,
        ),
    ] {
        t.head(name, "counter", help);
        for (f, p, ty, n) in c.nonzero() {
            t.sample(
                name,
                &[
                    ("family", family_label(f)),
                    ("path", path_label(p)),
                    ("type", ty),
                ],
                n,
            );
        }
    }

    let outcomes = s.outcomes();
    let silent = s.silent_labels();
    t.head(
        "twinlease_drops_total",
        "counter",
        "Requests dropped or replies not sent, by reason.",
    );
    t.sample(
        "twinlease_drops_total",
        &[("reason", "ring_full")],
        ld(&s.ring_full),
    );
    t.sample(
        "twinlease_drops_total",
        &[("reason", "send_failed")],
        ld(&s.send_failed),
    );
    for (reason, n) in [
        ("ring_full_priority", &s.ring_full_priority),
        ("stale", &s.stale_dropped),
        ("rate_limited", &s.rate_limited),
    ] {
        t.sample("twinlease_drops_total", &[("reason", reason)], ld(n));
    }
    for (k, v) in &outcomes {
        if !k.starts_with("reply") && !silent.contains(k) {
            t.sample("twinlease_drops_total", &[("reason", k)], v);
        }
    }
    t.head(
        "twinlease_handled_without_reply_total",
        "counter",
        "Requests handled without a reply (release, decline, another server chosen…), by reason.",
    );
    for (k, v) in &outcomes {
        if silent.contains(k) {
            t.sample("twinlease_handled_without_reply_total", &[("reason", k)], v);
        }
    }
    t.head(
        "twinlease_ring_full_total",
        "counter",
        "Requests dropped because the owning worker's ring was full.",
    );
    t.sample("twinlease_ring_full_total", &[], ld(&s.ring_full));
    t.head(
        "twinlease_leases_granted_total",
        "counter",
        "Lease grants and extensions (ACTIVE records) made durable.",
    );
    t.sample(
        "twinlease_leases_granted_total",
        &[("family", "v4")],
        ld(&s.granted_v4),
    );
    t.sample(
        "twinlease_leases_granted_total",
        &[("family", "v6")],
        ld(&s.granted_v6),
    );
    t.head(
        "twinlease_wal_commits_total",
        "counter",
        "Group commits made.",
    );
    t.sample("twinlease_wal_commits_total", &[], ld(&s.commits));
    t.head(
        "twinlease_wal_records_total",
        "counter",
        "DHCPv4 lease records made durable by group commits.",
    );
    t.sample("twinlease_wal_records_total", &[], ld(&s.records));
    t.head(
        "twinlease_wal_disk_full",
        "gauge",
        "Shards whose write-ahead log cannot write because the disk is full; while above 0 their grants and renewals are not sent.",
    );
    t.sample("twinlease_wal_disk_full", &[], ld(&s.wal_disk_full));
    t.head(
        "twinlease_wal_append_failures_total",
        "counter",
        "WAL appends or commits that failed (each withholds a batch's grants), by reason.",
    );
    t.sample(
        "twinlease_wal_append_failures_total",
        &[("reason", "disk_full")],
        ld(&s.wal_failures_disk_full),
    );
    t.sample(
        "twinlease_wal_append_failures_total",
        &[("reason", "io")],
        ld(&s.wal_failures_io),
    );
    t.histogram(
        "twinlease_wal_commit_seconds",
        "Latency of one group commit (append and fdatasync).",
        &s.commit_micros.snapshot(),
        1e6,
    );
    t.histogram(
        "twinlease_batch_size",
        "Requests per worker batch.",
        &s.batch_sizes.snapshot(),
        1.0,
    );

    failover_metrics(&mut t, handle);

    if let Some(r) = handle.reload_counters() {
        t.head(
            "twinlease_reloads_total",
            "counter",
            "Configuration reloads: applied (ok), refused (invalid or restart-only change), failed (workers not stopped).",
        );
        for (result, n) in [("ok", r.ok), ("refused", r.refused), ("failed", r.failed)] {
            t.sample("twinlease_reloads_total", &[("result", result)], n);
        }
        t.head(
            "twinlease_reload_pause_seconds",
            "gauge",
            "How long the workers were stopped by the last reload applied.",
        );
        #[expect(
            clippy::cast_precision_loss,
            reason = "microseconds of a pause, far below 2^52"
        )]
        let pause = r.last_pause_us as f64 / 1e6;
        t.sample("twinlease_reload_pause_seconds", &[], pause);
    }

    let xdp = handle.xdp_counters();
    t.head(
        "twinlease_xdp_frames_total",
        "counter",
        "Frames seen by the XDP program, by interface, queue and verdict.",
    );
    for s in &xdp {
        let q = s.queue.to_string();
        let c = &s.counters;
        for (result, n) in [
            ("redirected_v4", c.redirected_v4),
            ("redirected_v6", c.redirected_v6),
            ("passed", c.passed),
            ("malformed", c.malformed),
            ("no_socket", c.no_socket),
            ("shed", c.shed),
        ] {
            t.sample(
                "twinlease_xdp_frames_total",
                &[("iface", &s.iface), ("queue", &q), ("result", result)],
                n,
            );
        }
    }
    t.head(
        "twinlease_xdp_shed_level",
        "gauge",
        "Shed level of the XDP queue: the program drops level/16 of new-client DHCP frames.",
    );
    for s in &xdp {
        let q = s.queue.to_string();
        t.sample(
            "twinlease_xdp_shed_level",
            &[("iface", &s.iface), ("queue", &q)],
            s.shed_level,
        );
    }

    let pools = handle.pool_stats();
    t.head(
        "twinlease_pool_stats_available",
        "gauge",
        "1 when every worker answered for the pool gauges of this scrape.",
    );
    t.sample(
        "twinlease_pool_stats_available",
        &[],
        u8::from(pools.is_ok()),
    );
    if let Ok(pools) = pools {
        pool_gauges(&mut t, &pools);
    }
    t.0
}

fn pool_gauges(t: &mut Text, pools: &[PoolStat]) {
    t.head(
        "twinlease_pool_addresses",
        "gauge",
        "Members of a pool (addresses or delegated prefixes) by state: total, free, backup (the failover secondary's share of the free ones), active, declined.",
    );
    for p in pools {
        let (subnet, pool) = (p.subnet_id.to_string(), p.pool_id.to_string());
        for (state, n) in [
            ("total", fmt_u128(p.total)),
            ("free", fmt_u128(p.free)),
            ("backup", fmt_u128(p.backup)),
            ("active", p.counts.active.to_string()),
            ("declined", p.counts.declined.to_string()),
        ] {
            t.sample(
                "twinlease_pool_addresses",
                &[
                    ("family", p.family),
                    ("subnet", &subnet),
                    ("pool", &pool),
                    ("state", state),
                ],
                n,
            );
        }
    }
    t.head(
        "twinlease_pool_utilisation",
        "gauge",
        "Share of a pool's members not free, 0 to 1.",
    );
    for p in pools {
        let (subnet, pool) = (p.subnet_id.to_string(), p.pool_id.to_string());
        t.sample(
            "twinlease_pool_utilisation",
            &[("family", p.family), ("subnet", &subnet), ("pool", &pool)],
            fmt_f64(p.utilisation()),
        );
    }
}

/// A u128 as a Prometheus float: exact below 2^53, else in exponent form.
#[expect(
    clippy::cast_precision_loss,
    reason = "gauge values beyond 2^53 are shown as floats"
)]
fn fmt_u128(v: u128) -> String {
    if v < (1 << 53) {
        v.to_string()
    } else {
        format!("{:e}", v as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1, 10, 100]);
        for v in [0, 1, 2, 10, 11, 5000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(
            s.buckets,
            vec![(Some(1), 2), (Some(10), 4), (Some(100), 5), (None, 6)]
        );
        assert_eq!((s.sum, s.count), (5024, 6));
    }

    #[test]
    fn msg_counters_fold() {
        let c = MsgCounters::default();
        let mut l = MsgLocal::default();
        l.bump(Family::V4, Path::Socket, 1);
        l.bump(Family::V4, Path::Socket, 1);
        l.bump(Family::V6, Path::Xdp, 200);
        c.fold(&mut l);
        c.fold(&mut l);
        assert_eq!(c.get(Family::V4, Path::Socket, 1), 2);
        assert_eq!(c.get(Family::V6, Path::Xdp, 0), 1);
        assert_eq!(
            c.nonzero(),
            vec![
                (Family::V4, Path::Socket, "discover", 2),
                (Family::V6, Path::Xdp, "other", 1)
            ]
        );
    }

    #[test]
    fn text_format() {
        let mut t = Text(String::new());
        t.sample("m", &[("a", "x\"y\\z\n")], 3);
        assert_eq!(t.0, "m{a=\"x\\\"y\\\\z\\n\"} 3\n");
        assert_eq!(fmt_f64(1.0), "1.0");
        assert_eq!(fmt_f64(0.25), "0.25");
        assert_eq!(fmt_u128(1 << 64), "1.8446744073709552e19");
    }
}
