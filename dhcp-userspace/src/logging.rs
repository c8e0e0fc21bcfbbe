//! Logging: the process-wide filter (`[server] log`, overridden by `TWINLEASE_LOG`, changed
//! by a configuration reload) and a rate limit for warnings that could repeat per packet.
//!
//! A per-packet warning goes through [`warn_limited!`](crate::warn_limited) with a
//! [`RateLimit`] of its own (one per reason): at most `burst` lines per interval, and the first
//! line of a later interval says how many were suppressed before it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The environment variable that overrides `[server] log`.
pub const ENV: &str = "TWINLEASE_LOG";

/// The filter when neither `TWINLEASE_LOG` nor `[server] log` says otherwise.
pub const DEFAULT_FILTER: &str = "info";

type ReloadHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static FILTER: OnceLock<ReloadHandle> = OnceLock::new();

/// Check a filter in `tracing`'s `EnvFilter` syntax (`info,twinlease::failover=debug`).
pub fn check_filter(spec: &str) -> Result<(), String> {
    EnvFilter::try_new(spec)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Install the stderr logger: the filter is `TWINLEASE_LOG` when set, else `config` (the
/// `[server] log` key), else [`DEFAULT_FILTER`]. Once per process; later calls do nothing.
pub fn init(config: Option<&str>) {
    let filter = EnvFilter::try_from_env(ENV).unwrap_or_else(|_| {
        EnvFilter::try_new(config.unwrap_or(DEFAULT_FILTER))
            .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
    });
    let (layer, handle) = tracing_subscriber::reload::Layer::new(filter);
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if tracing_subscriber::registry()
        .with(layer)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
}

/// Apply the `[server] log` filter of a (re)loaded configuration, unless `TWINLEASE_LOG` is
/// set (it wins). Returns whether the filter changed.
pub fn apply_config(config: Option<&str>) -> bool {
    if std::env::var_os(ENV).is_some() {
        return false;
    }
    let Some(h) = FILTER.get() else {
        return false;
    };
    let Ok(f) = EnvFilter::try_new(config.unwrap_or(DEFAULT_FILTER)) else {
        return false;
    };
    h.reload(f).is_ok()
}

/// At most `burst` lines per `interval` for one reason; the rest are counted and reported
/// with the first line allowed afterwards. Lock-free; `const`, so each call site can own a
/// `static` one.
#[derive(Debug)]
pub struct RateLimit {
    burst: u64,
    interval_ms: u64,
    /// Start of the current interval (milliseconds, 0: none yet) `<< COUNT_BITS`, plus the
    /// lines allowed in it: one word, so opening an interval and counting cannot race.
    state: AtomicU64,
    /// Lines suppressed since the last allowed one.
    suppressed: AtomicU64,
}

/// Bits of [`RateLimit::state`] holding the count.
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl RateLimit {
    /// At most `burst` (capped at 2^20 − 1) lines per `interval`.
    #[must_use]
    pub const fn new(burst: u32, interval: Duration) -> Self {
        let burst = if (burst as u64) > COUNT_MASK {
            COUNT_MASK
        } else {
            burst as u64
        };
        Self {
            burst,
            interval_ms: interval.as_millis() as u64,
            state: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now: `Some(k)`, where `k` lines were suppressed since
    /// the last one written; `None`: suppress this one (it is counted).
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.allow_at(now)
    }

    /// [`Self::allow`] at `now_ms` (milliseconds since any fixed origin, below 2^44).
    pub fn allow_at(&self, now_ms: u64) -> Option<u64> {
        let now_ms = now_ms.clamp(1, (u64::MAX >> COUNT_BITS) - 1);
        loop {
            let s = self.state.load(Ordering::Acquire);
            let (start, used) = (s >> COUNT_BITS, s & COUNT_MASK);
            let (start, used) = if start == 0 || now_ms.saturating_sub(start) >= self.interval_ms {
                (now_ms, 0)
            } else {
                (start, used)
            };
            if used >= self.burst {
                self.suppressed.fetch_add(1, Ordering::AcqRel);
                return None;
            }
            let next = (start << COUNT_BITS) | (used + 1);
            if self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(self.suppressed.swap(0, Ordering::AcqRel));
            }
        }
    }
}

/// `tracing::warn!` through a [`RateLimit`]: `warn_limited!(LIMIT, field = value, "message")`.
/// A line written after suppressed ones carries `suppressed = K`.
#[macro_export]
macro_rules! warn_limited {
    ($limit:expr, $($arg:tt)+) => {
        match $limit.allow() {
            Some(0) => ::tracing::warn!($($arg)+),
            Some(k) => ::tracing::warn!(suppressed = k, $($arg)+),
            None => {}
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_suppressed_then_summary() {
        let l = RateLimit::new(3, Duration::from_secs(10));
        let t = 1_000_000;
        assert_eq!(l.allow_at(t), Some(0));
        assert_eq!(l.allow_at(t + 1), Some(0));
        assert_eq!(l.allow_at(t + 2), Some(0));
        for i in 0..5 {
            assert_eq!(l.allow_at(t + 3 + i), None);
        }
        // Still the same interval.
        assert_eq!(l.allow_at(t + 9_999), None);
        // A new interval: the first line reports the six suppressed ones.
        assert_eq!(l.allow_at(t + 10_000), Some(6));
        assert_eq!(l.allow_at(t + 10_001), Some(0));
        assert_eq!(l.allow_at(t + 10_002), Some(0));
        assert_eq!(l.allow_at(t + 10_003), None);
    }

    #[test]
    fn concurrent_callers_never_exceed_the_burst() {
        let l = std::sync::Arc::new(RateLimit::new(5, Duration::from_hours(1)));
        let allowed: u64 = (0..4)
            .map(|_| {
                let l = std::sync::Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..1000).filter(|_| l.allow_at(42_000).is_some()).count() as u64
                })
            })
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(allowed, 5);
        assert_eq!(l.suppressed.load(Ordering::Relaxed), 3995);
    }

    #[test]
    fn filters_are_checked() {
        assert!(check_filter("info,twinlease::failover=debug").is_ok());
        assert!(check_filter("twinlease=verbose").is_err());
    }
}
