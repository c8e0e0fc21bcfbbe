//! What a run counts: a latency histogram, and the exchanges started, completed and lost,
//! with the losses by the stage at which they happened.

use std::time::Duration;

/// Sub-buckets per power of two: values are kept with a relative error below 1/32 (3.2 %).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this are counted exactly.
const LINEAR: u64 = 2 * SUB as u64;
/// Powers of two covered above [`LINEAR`]: up to 2^40 µs, about 12.7 days.
const GROUPS: usize = 40 - SUB_BITS as usize;
const BUCKETS: usize = LINEAR as usize + GROUPS * SUB;

/// A latency histogram in microseconds, log-linear (exact below 64 µs, then 32 buckets per
/// power of two), with exact count, minimum, maximum and sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    fn bucket_of(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let k = v.ilog2(); // v in [2^k, 2^(k+1)), k >= SUB_BITS + 1
        let sub = ((v >> (k - SUB_BITS)) as usize) & (SUB - 1);
        let group = (k - SUB_BITS - 1) as usize;
        (LINEAR as usize + group * SUB + sub).min(BUCKETS - 1)
    }

    /// The highest value bucket `b` holds.
    fn bucket_high(b: usize) -> u64 {
        if (b as u64) < LINEAR {
            return b as u64;
        }
        let group = (b - LINEAR as usize) / SUB;
        let sub = (b - LINEAR as usize) % SUB;
        let k = group as u32 + SUB_BITS + 1;
        let width = 1u64 << (k - SUB_BITS);
        (1u64 << k) + (sub as u64 + 1) * width - 1
    }

    /// Counts one value, in microseconds.
    pub fn record(&mut self, us: u64) {
        self.buckets[Self::bucket_of(us)] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(us);
        self.min = self.min.min(us);
        self.max = self.max.max(us);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value counted (0 when empty).
    #[must_use]
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean, microseconds (0 when empty).
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            #[expect(clippy::cast_precision_loss, reason = "a mean for reports")]
            let m = self.sum as f64 / self.count as f64;
            m
        }
    }

    /// The `q`-quantile (`q` in 0..=1) in microseconds: the smallest bucket bound below which
    /// at least `q` of the values lie, clamped to the exact maximum. 0 when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        #[expect(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "rank of a quantile, clamped to 1..=count"
        )]
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::bucket_high(b).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// The operations a simulated client performs (one exchange each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Obtain a lease: DISCOVER/OFFER/REQUEST/ACK, or SOLICIT/ADVERTISE/REQUEST/REPLY.
    Dora,
    /// Extend it with the server that granted it: REQUEST (RENEWING) / RENEW.
    Renew,
    /// Extend it with any server: REQUEST (REBINDING) / REBIND.
    Rebind,
    /// Give it back: RELEASE.
    Release,
    /// Refuse it: DECLINE.
    Decline,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Self; 5] = [
        Self::Dora,
        Self::Renew,
        Self::Rebind,
        Self::Release,
        Self::Decline,
    ];

    /// The name on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Dora => "dora",
            Self::Renew => "renew",
            Self::Rebind => "rebind",
            Self::Release => "release",
            Self::Decline => "decline",
        }
    }

    /// The operation called `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// Where an exchange was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropStage {
    /// No OFFER (v4) or ADVERTISE (v6) before the timeout.
    NoOffer,
    /// No ACK (v4) or REPLY (v6) before the timeout.
    NoAck,
    /// A DHCPNAK, or a REPLY whose status says no lease.
    Nak,
    /// The request could not be queued: no free frame or the TX ring was full.
    TxFull,
}

impl DropStage {
    /// Every stage, in report order.
    pub const ALL: [Self; 4] = [Self::NoOffer, Self::NoAck, Self::Nak, Self::TxFull];

    /// Name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::NoOffer => "no_offer",
            Self::NoAck => "no_ack",
            Self::Nak => "nak",
            Self::TxFull => "tx_full",
        }
    }
}

/// Latency kinds: one per request/reply step, and the whole DORA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// DISCOVER → OFFER, SOLICIT → ADVERTISE.
    Offer,
    /// REQUEST → ACK/REPLY of a DORA.
    Request,
    /// RENEW → reply.
    Renew,
    /// REBIND → reply.
    Rebind,
    /// RELEASE → REPLY (DHCPv6 only; DHCPv4 has no reply).
    Release,
    /// DECLINE → REPLY (DHCPv6 only).
    Decline,
    /// DISCOVER → ACK, SOLICIT → REPLY: the whole DORA.
    Dora,
}

impl Step {
    /// Every kind, in report order.
    pub const ALL: [Self; 7] = [
        Self::Offer,
        Self::Request,
        Self::Dora,
        Self::Renew,
        Self::Rebind,
        Self::Release,
        Self::Decline,
    ];

    /// Name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Request => "request",
            Self::Renew => "renew",
            Self::Rebind => "rebind",
            Self::Release => "release",
            Self::Decline => "decline",
            Self::Dora => "dora",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// The counters of one measurement period.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Exchanges started, per [`Op`] (index `Op as usize`).
    pub started: [u64; 5],
    /// Exchanges completed, per [`Op`].
    pub completed: [u64; 5],
    /// Exchanges lost, per [`DropStage`].
    pub drops: [u64; 4],
    /// Operations the mix asked for that no client could perform (no client in the needed
    /// state), so nothing was sent.
    pub no_eligible: u64,
    /// Latencies per [`Step`].
    pub latency: [Histogram; 7],
    /// Frames sent.
    pub tx_frames: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Received DHCP messages that match no waiting client (late, duplicate, the second
    /// server's OFFER, someone else's).
    pub rx_unmatched: u64,
    /// Received frames that did not parse.
    pub rx_malformed: u64,
    /// ARP requests answered for simulated clients and the relay address.
    pub arp_answered: u64,
    /// Leases the client could not record (address outside the indexable range).
    pub lease_unindexable: u64,
    /// Duration of the period.
    pub elapsed: Duration,
}

impl Stats {
    /// Counts a started exchange.
    pub fn start(&mut self, op: Op) {
        self.started[op as usize] += 1;
    }

    /// Counts a completed exchange.
    pub fn complete(&mut self, op: Op) {
        self.completed[op as usize] += 1;
    }

    /// Counts a lost exchange.
    pub fn drop_at(&mut self, stage: DropStage) {
        self.drops[stage as usize] += 1;
    }

    /// Records a latency.
    pub fn latency(&mut self, step: Step, us: u64) {
        self.latency[step.slot()].record(us);
    }

    /// The histogram of `step`.
    #[must_use]
    pub fn histogram(&self, step: Step) -> &Histogram {
        &self.latency[step.slot()]
    }

    /// Exchanges started, all operations.
    #[must_use]
    pub fn total_started(&self) -> u64 {
        self.started.iter().sum()
    }

    /// Exchanges completed, all operations.
    #[must_use]
    pub fn total_completed(&self) -> u64 {
        self.completed.iter().sum()
    }

    /// Exchanges lost, all stages.
    #[must_use]
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Lost exchanges as a fraction of the ended ones (completed + lost); 0 when none ended.
    #[must_use]
    pub fn drop_fraction(&self) -> f64 {
        let lost = self.total_drops();
        let ended = lost + self.total_completed();
        if ended == 0 {
            0.0
        } else {
            #[expect(clippy::cast_precision_loss, reason = "a ratio for reports")]
            let f = lost as f64 / ended as f64;
            f
        }
    }

    /// Completed exchanges per second of the period.
    #[must_use]
    pub fn completed_per_sec(&self) -> f64 {
        per_sec(self.total_completed(), self.elapsed)
    }

    /// Leases granted (completed DORAs) per second of the period.
    #[must_use]
    pub fn leases_per_sec(&self) -> f64 {
        per_sec(self.completed[Op::Dora as usize], self.elapsed)
    }

    /// Exchanges started per second of the period (the offered rate achieved).
    #[must_use]
    pub fn offered_per_sec(&self) -> f64 {
        per_sec(self.total_started(), self.elapsed)
    }
}

/// `n` per second of `d` (0 for an empty period).
#[must_use]
pub fn per_sec(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        #[expect(clippy::cast_precision_loss, reason = "a rate for reports")]
        let r = n as f64 / s;
        r
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn percentiles_of_uniform_values() {
        let mut h = Histogram::new();
        for v in 1..=10_000 {
            h.record(v);
        }
        assert_eq!(h.count(), 10_000);
        for (q, want) in [(0.5, 5_000.0), (0.99, 9_900.0), (0.999, 9_990.0)] {
            #[expect(clippy::cast_precision_loss, reason = "test values are small")]
            let got = h.quantile(q) as f64;
            assert!(
                got >= want && got <= want * 1.032,
                "q{q}: {got}, want {want} (+3.2 %)"
            );
        }
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(h.quantile(0.0), 1);
        assert!((h.mean() - 5000.5).abs() < 1e-9);
    }

    #[test]
    fn small_values_are_exact_and_a_tail_shows() {
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record(40);
        }
        for _ in 0..10 {
            h.record(2_000_000);
        }
        assert_eq!(h.quantile(0.5), 40);
        assert_eq!(h.quantile(0.99), 40);
        let p999 = h.quantile(0.999);
        assert!(
            (2_000_000..=2_000_000 * 1032 / 1000).contains(&p999),
            "{p999}"
        );
        assert_eq!(h.max(), 2_000_000);
        assert_eq!(Histogram::new().quantile(0.99), 0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1000);
        b.record(1000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.34), 1000);
        assert_eq!(a.quantile(0.3), 10);
        assert!(a.quantile(0.9) >= 1000);
    }

    #[test]
    fn drop_fraction_and_rates() {
        let mut s = Stats::default();
        for _ in 0..99 {
            s.start(Op::Dora);
            s.complete(Op::Dora);
        }
        s.start(Op::Dora);
        s.drop_at(DropStage::NoOffer);
        s.elapsed = Duration::from_secs(2);
        assert!((s.drop_fraction() - 0.01).abs() < 1e-12);
        assert!((s.leases_per_sec() - 49.5).abs() < 1e-12);
        assert!((s.offered_per_sec() - 50.0).abs() < 1e-12);
        assert_eq!(s.drops[DropStage::NoOffer as usize], 1);
    }

    proptest! {
        #[test]
        fn quantile_is_within_three_percent_above_the_true_one(
            mut values in proptest::collection::vec(0u64..50_000_000, 1..500),
            q in 0.0f64..=1.0,
        ) {
            let mut h = Histogram::new();
            for &v in &values {
                h.record(v);
            }
            values.sort_unstable();
            #[expect(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "test ranks")]
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let truth = values[rank - 1];
            let got = h.quantile(q);
            prop_assert!(got >= truth, "q {} got {} truth {}", q, got, truth);
            prop_assert!(got <= truth + truth / 31 + 1, "q {} got {} truth {}", q, got, truth);
        }
    }
}
