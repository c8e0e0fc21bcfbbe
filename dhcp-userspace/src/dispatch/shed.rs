//! The shed level of one `AF_XDP` queue: how much of the new-client DHCP traffic the XDP
//! program drops before it reaches the queue's RX ring (see `dhcp_ebpf_common::MAX_SHED_LEVEL`).
//!
//! A reboot storm (DISCOVER/SOLICIT far above the workers' capacity) would otherwise fill the
//! RX ring, and the kernel drops frames there without looking at them, renewals included.
//! The program never sheds renewals, so raising the level in time keeps them flowing.
//!
//! The queue loop feeds [`ShedControl`] what it sees on every poll (a full receive batch, the
//! requests a full bulk ring refused) and, once per [`INTERVAL_MS`], the fill of the workers'
//! bulk rings. At the end of each interval the level moves by at most one step:
//!
//! - up after [`RAISE_AFTER`] consecutive *hot* intervals (a bulk ring refused a request, half
//!   or more of the polls returned a full batch, or a bulk ring was at least
//!   [`HOT_FILL_PERCENT`] full);
//! - down after [`LOWER_AFTER`] consecutive *calm* intervals (nothing refused, no full batch,
//!   every bulk ring below [`CALM_FILL_PERCENT`]);
//! - unchanged otherwise; an interval that is neither resets both streaks.
//!
//! Raising is quicker than lowering (40 ms against 200 ms per step): during a storm the level
//! settles where the rings stop overflowing and stays there, and it falls back to 0 within
//! about three seconds once the storm is over. The map is written only when the level changes.

/// Length of one observation interval, in milliseconds of the coarse clock.
pub(super) const INTERVAL_MS: u32 = 20;
/// Consecutive hot intervals before the level goes up one step.
pub(super) const RAISE_AFTER: u32 = 2;
/// Consecutive calm intervals before the level goes down one step.
pub(super) const LOWER_AFTER: u32 = 10;
/// A bulk ring at least this full (percent) makes the interval hot.
pub(super) const HOT_FILL_PERCENT: u32 = 75;
/// Every bulk ring below this fill (percent) is needed for a calm interval.
pub(super) const CALM_FILL_PERCENT: u32 = 25;

/// The level controller of one queue (a pure state machine: no clock, no map).
#[derive(Debug)]
pub(super) struct ShedControl {
    /// Current level, `0..=max`.
    level: u32,
    /// Highest level.
    max: u32,
    /// Start of the current interval (coarse ms, wrapping).
    since: u32,
    /// Polls in the current interval, and those that returned a full batch.
    polls: u32,
    full_polls: u32,
    /// Requests refused by a full bulk ring in the current interval.
    refused: u32,
    /// Consecutive hot and calm intervals.
    hot: u32,
    calm: u32,
}

impl ShedControl {
    /// A controller at level 0 whose first interval starts at `now`; levels go up to `max`.
    pub(super) const fn new(now: u32, max: u32) -> Self {
        Self {
            level: 0,
            max,
            since: now,
            polls: 0,
            full_polls: 0,
            refused: 0,
            hot: 0,
            calm: 0,
        }
    }

    /// The current level.
    #[cfg(test)]
    pub(super) const fn level(&self) -> u32 {
        self.level
    }

    /// One poll of the RX ring: `received` frames in a batch of at most `batch`, of which
    /// `refused` were dropped at a full bulk ring.
    pub(super) const fn poll(&mut self, received: usize, batch: usize, refused: u32) {
        self.polls = self.polls.saturating_add(1);
        if received > 0 && received >= batch {
            self.full_polls = self.full_polls.saturating_add(1);
        }
        self.refused = self.refused.saturating_add(refused);
    }

    /// Whether the current interval is over at `now` (coarse ms): then call [`Self::tick`].
    pub(super) const fn due(&self, now: u32) -> bool {
        now.wrapping_sub(self.since) >= INTERVAL_MS
    }

    /// Ends the interval at `now`, `bulk_fill_percent` being the fullest bulk ring's fill:
    /// the new level when it changed.
    pub(super) fn tick(&mut self, now: u32, bulk_fill_percent: u32) -> Option<u32> {
        let backlog = self.polls > 0 && self.full_polls * 2 >= self.polls;
        let hot = self.refused > 0 || backlog || bulk_fill_percent >= HOT_FILL_PERCENT;
        let calm =
            self.refused == 0 && self.full_polls == 0 && bulk_fill_percent < CALM_FILL_PERCENT;
        self.since = now;
        self.polls = 0;
        self.full_polls = 0;
        self.refused = 0;
        let before = self.level;
        if hot {
            self.calm = 0;
            self.hot += 1;
            if self.hot >= RAISE_AFTER {
                self.hot = 0;
                self.level = (self.level + 1).min(self.max);
            }
        } else if calm {
            self.hot = 0;
            self.calm += 1;
            if self.calm >= LOWER_AFTER {
                self.calm = 0;
                self.level = self.level.saturating_sub(1);
            }
        } else {
            self.hot = 0;
            self.calm = 0;
        }
        (self.level != before).then_some(self.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` intervals with the given per-interval inputs; returns the levels after each.
    fn run(c: &mut ShedControl, now: &mut u32, n: u32, refused: u32, full: bool, ring: u32) {
        for _ in 0..n {
            c.poll(if full { 64 } else { 3 }, 64, refused);
            *now = now.wrapping_add(INTERVAL_MS);
            assert!(c.due(*now));
            c.tick(*now, ring);
        }
    }

    #[test]
    fn idle_stays_at_zero() {
        let mut now = 0;
        let mut c = ShedControl::new(now, 15);
        run(&mut c, &mut now, 100, 0, false, 0);
        assert_eq!(c.level(), 0);
    }

    #[test]
    fn not_due_before_the_interval_ends() {
        let c = ShedControl::new(1000, 15);
        assert!(!c.due(1000 + INTERVAL_MS - 1));
        assert!(c.due(1000 + INTERVAL_MS));
        // Across the wrap of the coarse clock.
        let c = ShedControl::new(u32::MAX - 5, 15);
        assert!(!c.due(3));
        assert!(c.due(INTERVAL_MS));
    }

    #[test]
    fn overload_raises_one_step_per_raise_after_intervals_up_to_max() {
        let mut now = 0;
        let mut c = ShedControl::new(now, 15);
        c.poll(64, 64, 5);
        now += INTERVAL_MS;
        assert_eq!(c.tick(now, 0), None, "one hot interval is not enough");
        c.poll(3, 64, 1);
        now += INTERVAL_MS;
        assert_eq!(c.tick(now, 0), Some(1));
        run(&mut c, &mut now, 2 * 20, 1, false, 0);
        assert_eq!(c.level(), 15, "capped at max");
    }

    #[test]
    fn each_hot_signal_alone_raises() {
        for (refused, full, fill) in [(1, false, 0), (0, true, 0), (0, false, HOT_FILL_PERCENT)] {
            let mut now = 0;
            let mut c = ShedControl::new(now, 15);
            run(&mut c, &mut now, RAISE_AFTER, refused, full, fill);
            assert_eq!(c.level(), 1, "{refused} {full} {fill}");
        }
    }

    #[test]
    fn calm_lowers_slowly_to_zero() {
        let mut now = 0;
        let mut c = ShedControl::new(now, 15);
        run(&mut c, &mut now, 2 * RAISE_AFTER, 1, true, 100);
        assert_eq!(c.level(), 2);
        run(&mut c, &mut now, LOWER_AFTER - 1, 0, false, 0);
        assert_eq!(c.level(), 2, "not yet");
        run(&mut c, &mut now, 1, 0, false, 0);
        assert_eq!(c.level(), 1);
        run(&mut c, &mut now, 10 * LOWER_AFTER, 0, false, 0);
        assert_eq!(c.level(), 0, "floor at 0");
    }

    #[test]
    fn neither_hot_nor_calm_holds_the_level_and_resets_the_streaks() {
        let mut now = 0;
        let mut c = ShedControl::new(now, 15);
        run(&mut c, &mut now, RAISE_AFTER, 1, false, 0);
        assert_eq!(c.level(), 1);
        // A half-full ring with no refusals: hold, for as long as it lasts.
        run(&mut c, &mut now, 100, 0, false, 50);
        assert_eq!(c.level(), 1);
        // Calm streaks interrupted by a lukewarm interval never lower the level.
        for _ in 0..10 {
            run(&mut c, &mut now, LOWER_AFTER - 1, 0, false, 0);
            run(&mut c, &mut now, 1, 0, false, 50);
        }
        assert_eq!(c.level(), 1);
        // Hot intervals separated by a lukewarm one never raise it.
        for _ in 0..10 {
            run(&mut c, &mut now, RAISE_AFTER - 1, 1, false, 0);
            run(&mut c, &mut now, 1, 0, false, 50);
        }
        assert_eq!(c.level(), 1);
    }

    #[test]
    fn a_tick_reports_only_changes() {
        let mut now = 0;
        let mut c = ShedControl::new(now, 1);
        let mut changes = Vec::new();
        for _ in 0..10 {
            c.poll(64, 64, 1);
            now += INTERVAL_MS;
            changes.extend(c.tick(now, 100));
        }
        assert_eq!(changes, [1], "one change, then capped at max 1");
    }
}
