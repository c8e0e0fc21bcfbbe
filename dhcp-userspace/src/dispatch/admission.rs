//! Admission on the receive path: which requests go to a worker's priority ring, which are
//! refused by a per-client rate limit, and the coarse clock that stamps each job so a worker
//! can drop requests that waited too long.
//!
//! Under overload (a reboot storm, a DISCOVER/SOLICIT flood) the clients that already hold a
//! lease must keep it: their renewals are classified as priority and each worker drains its
//! priority ring before its bulk ring ([`super::Inbox`]). Classification reads a few bytes of
//! the datagram, no parse and no allocation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Select, Sender, TryRecvError};

use super::{Job, Stats};
use crate::io::reuseport_filter::PRIORITY_V6;
use crate::wire::v6::{HOP_COUNT_LIMIT, MessageType as M6, field, find_option, opt as opt6};

/// What a receive loop keeps for admission: its clock reading for the current batch and its
/// rate limiter (`per-client-rate`), if any.
#[derive(Debug)]
pub(super) struct Admission {
    limiter: Option<RateLimiter>,
    now: u32,
    /// Requests refused since the last [`Self::begin`].
    limited: u64,
}

impl Admission {
    /// For a receive loop; `rate` 0 is no rate limit.
    pub(super) fn new(rate: u32) -> Self {
        Self {
            limiter: (rate > 0).then(|| RateLimiter::new(rate)),
            now: coarse_ms(),
            limited: 0,
        }
    }

    /// Start a receive batch: read the clock once and fold the refusals into `stats`.
    pub(super) fn begin(&mut self, stats: &Stats) {
        self.now = coarse_ms();
        if self.limited > 0 {
            stats
                .rate_limited
                .fetch_add(std::mem::take(&mut self.limited), Ordering::Relaxed);
        }
    }

    /// The time stamp of this batch's jobs.
    pub(super) fn now(&self) -> u32 {
        self.now
    }

    /// Whether the client whose key hashes to `hash` may be served (always without a limit).
    pub(super) fn admit(&mut self, hash: u64) -> bool {
        let Some(l) = self.limiter.as_mut() else {
            return true;
        };
        if l.admit(hash, self.now) {
            return true;
        }
        self.limited += 1;
        false
    }
}

/// Milliseconds of a coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`, a few ms resolution,
/// read without a syscall), wrapping at 2^32: compare with `wrapping_sub`.
#[must_use]
pub(super) fn coarse_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every
    // Linux since 2.6.32, and on failure `ts` stays zero (a harmless timestamp).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
    let ms = ts
        .tv_sec
        .cast_unsigned()
        .wrapping_mul(1000)
        .wrapping_add(ts.tv_nsec.cast_unsigned() / 1_000_000);
    ms as u32
}

/// DHCPv4 `ciaddr` (RFC 2131 §2, Table 1).
const V4_CIADDR: std::ops::Range<usize> = 12..16;
/// Start of the DHCPv4 options: after the 236-byte fixed header and the magic cookie.
const V4_OPTIONS: usize = 240;
/// DHCPv4 option codes used here (RFC 2132 §3.1, §3.2, §9.6).
const V4_PAD: u8 = 0;
const V4_END: u8 = 255;
const V4_MESSAGE_TYPE: u8 = 53;
/// DHCPREQUEST and DHCPRELEASE (RFC 2132 §9.6).
const V4_REQUEST: u8 = 3;
const V4_RELEASE: u8 = 7;

/// Whether a DHCPv4 datagram comes from a client that holds a lease: a DHCPREQUEST with
/// `ciaddr` set (RENEWING or REBINDING, RFC 2131 §4.3.2; SELECTING and INIT-REBOOT leave it
/// zero, §4.3.2 and Table 5) or a DHCPRELEASE (§4.4.6). A DISCOVER has `ciaddr` zero, so a
/// DISCOVER flood costs four byte loads per packet here. Option overload is not followed:
/// such a request simply goes to the bulk ring.
#[must_use]
pub fn priority_v4(bytes: &[u8]) -> bool {
    match bytes.get(V4_CIADDR) {
        Some(c) if c != [0, 0, 0, 0] => {}
        _ => return false,
    }
    let mut i = V4_OPTIONS;
    while let Some(&code) = bytes.get(i) {
        match code {
            V4_PAD => i += 1,
            V4_END => return false,
            _ => {
                let Some(&len) = bytes.get(i + 1) else {
                    return false;
                };
                if code == V4_MESSAGE_TYPE {
                    return len == 1
                        && matches!(bytes.get(i + 2), Some(&(V4_REQUEST | V4_RELEASE)));
                }
                i += 2 + usize::from(len);
            }
        }
    }
    false
}

/// Whether a DHCPv6 datagram comes from a client that holds leases: CONFIRM, RENEW, REBIND,
/// RELEASE or DECLINE (RFC 8415 §18.2.3–§18.2.8), also inside RELAY-FORW (§9). The same set
/// as the kernel's classifier ([`crate::io::reuseport_filter::PRIORITY_V6`]).
#[must_use]
pub fn priority_v6(bytes: &[u8]) -> bool {
    let mut data = bytes;
    for _ in 0..=HOP_COUNT_LIMIT {
        match data.first().copied() {
            Some(t) if PRIORITY_V6.iter().any(|p| *p as u8 == t) => return true,
            Some(t) if t == M6::RelayForw as u8 => {
                let Some(options) = data.get(field::relay::OPTIONS) else {
                    return false;
                };
                match find_option(options, opt6::RELAY_MSG) {
                    Ok(Some(inner)) => data = inner,
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
    false
}

/// The rings one worker reads: priority first, then bulk, dropping bulk requests older than
/// `stale_ms`. Same calls and errors as a channel [`Receiver`], so the worker loop reads it
/// like one: the first job of a batch with [`Self::recv_timeout`], the rest with
/// [`Self::try_recv`].
pub(super) struct Inbox {
    prio: Receiver<Box<Job>>,
    bulk: Receiver<Box<Job>>,
    /// Where dropped stale jobs go back to.
    recycle: Sender<Box<Job>>,
    /// Bulk jobs older than this many milliseconds are dropped; 0 never.
    stale_ms: u32,
    /// The clock, read once per batch (in [`Self::recv_timeout`]).
    now: u32,
    /// Stale jobs dropped since the counter was last folded into `stats`.
    stale: u64,
    /// Whether the priority and the bulk ring were found disconnected (and empty).
    closed: [bool; 2],
    stats: Arc<Stats>,
    /// The worker's control ring: a request there ends the wait early (as a timeout), so an
    /// idle worker serves it (a reload's barrier) without waiting out its receive timeout.
    control: Option<Receiver<crate::control::CtlRequest>>,
}

impl Inbox {
    /// A worker's inbox: its `prio` and `bulk` rings, the ring stale jobs are recycled to,
    /// the age limit of bulk jobs (`stale-request-ms`, 0 none) and where drops are counted.
    pub(super) fn new(
        prio: Receiver<Box<Job>>,
        bulk: Receiver<Box<Job>>,
        recycle: Sender<Box<Job>>,
        stale_ms: u32,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            prio,
            bulk,
            recycle,
            stale_ms,
            now: coarse_ms(),
            stale: 0,
            closed: [false; 2],
            stats,
            control: None,
        }
    }

    /// Let a request on the worker's control ring `ctl` end a wait early.
    pub(super) fn watch_control(&mut self, ctl: Receiver<crate::control::CtlRequest>) {
        self.control = Some(ctl);
    }

    /// Wait up to `timeout` for the first job of a batch.
    pub(super) fn recv_timeout(&mut self, timeout: Duration) -> Result<Box<Job>, RecvTimeoutError> {
        if self.stale > 0 {
            self.stats
                .stale_dropped
                .fetch_add(std::mem::take(&mut self.stale), Ordering::Relaxed);
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.now = coarse_ms();
            match self.try_recv() {
                Ok(j) => return Ok(j),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            // Both rings close together (their senders live in the same links); until then
            // wait on whichever is still open.
            let mut sel = Select::new();
            if !self.closed[0] {
                sel.recv(&self.prio);
            }
            if !self.closed[1] {
                sel.recv(&self.bulk);
            }
            let ctl = self.control.as_ref().map(|c| sel.recv(c));
            match sel.ready_deadline(deadline) {
                Err(_) => return Err(RecvTimeoutError::Timeout),
                Ok(i) if Some(i) == ctl => {
                    if self.control.as_ref().is_some_and(|c| !c.is_empty()) {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    // Ready and empty: the control ring closed (the server is stopping).
                    self.control = None;
                }
                Ok(_) => {}
            }
        }
    }

    /// The next job without waiting: priority first.
    pub(super) fn try_recv(&mut self) -> Result<Box<Job>, TryRecvError> {
        match self.prio.try_recv() {
            Ok(j) => return Ok(j),
            Err(e) => self.closed[0] = e.is_disconnected(),
        }
        loop {
            match self.bulk.try_recv() {
                Ok(j) if self.stale_ms > 0 && self.now.wrapping_sub(j.at) > self.stale_ms => {
                    // The client has retransmitted or given up by now (RFC 2131 §4.1,
                    // RFC 8415 §15): answering it would only delay fresher requests.
                    self.stale += 1;
                    let _ = self.recycle.try_send(j);
                }
                Ok(j) => return Ok(j),
                Err(e) => {
                    self.closed[1] = e.is_disconnected();
                    return Err(if self.closed == [true, true] {
                        TryRecvError::Disconnected
                    } else {
                        TryRecvError::Empty
                    });
                }
            }
        }
    }
}

/// Slots of a [`RateLimiter`] table (a power of two).
const RATE_SLOTS: usize = 4096;

/// One client's token bucket, found by hash; a different client hashing to the same slot
/// takes it over with a full bucket (the limiter fails open, never shut).
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// High half of the client key's hash; 0 for an unused slot.
    tag: u32,
    /// [`coarse_ms`] of the last refill.
    last: u32,
    /// Tokens, in thousandths.
    milli: u32,
}

/// A per-client token bucket limiter for one receive loop (`[server] per-client-rate`): a
/// fixed table of [`RATE_SLOTS`] buckets indexed by the client key's hash, no allocation after
/// construction. Each client may send a burst of `max(rate, 4)` requests, then `rate` per
/// second.
#[derive(Debug)]
pub struct RateLimiter {
    /// Requests per second per client.
    rate: u32,
    /// Bucket size, in thousandths of a token.
    cap_milli: u32,
    table: Box<[Bucket]>,
}

impl RateLimiter {
    /// A limiter allowing `rate` requests per second per client (`rate` ≥ 1; at most
    /// 1 000 000).
    #[must_use]
    pub fn new(rate: u32) -> Self {
        let rate = rate.clamp(1, 1_000_000);
        Self {
            rate,
            cap_milli: rate.max(4).saturating_mul(1000),
            table: vec![Bucket::default(); RATE_SLOTS].into_boxed_slice(),
        }
    }

    /// Whether the client whose key hashes to `hash` may send one more request at `now`
    /// ([`coarse_ms`]); takes a token when it may.
    pub fn admit(&mut self, hash: u64, now: u32) -> bool {
        let tag = ((hash >> 32) as u32) | 1;
        let b = &mut self.table[(hash as usize) & (RATE_SLOTS - 1)];
        if b.tag == tag {
            let elapsed = u64::from(now.wrapping_sub(b.last).min(1 << 30));
            // `rate` tokens per second are `rate` thousandths per millisecond.
            let refill = elapsed * u64::from(self.rate);
            b.milli = (u64::from(b.milli) + refill).min(u64::from(self.cap_milli)) as u32;
        } else {
            *b = Bucket {
                tag,
                last: now,
                milli: self.cap_milli,
            };
        }
        b.last = now;
        if b.milli >= 1000 {
            b.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::wire::v4::{MessageType, ReplyHeader, ReplyWriter, opt};

    fn v4(kind: MessageType, ciaddr: Ipv4Addr, pad_options: usize) -> Vec<u8> {
        let hdr = ReplyHeader {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 7,
            secs: 0,
            flags: 0,
            ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [2; 16],
        };
        let mut buf = [0u8; 600];
        let mut w = ReplyWriter::new(&mut buf, &hdr).unwrap();
        for _ in 0..pad_options {
            w.option(opt::PRL, &[1, 3, 6]).unwrap();
        }
        w.option_u8(opt::MESSAGE_TYPE, kind as u8).unwrap();
        let n = w.finish();
        buf[..n].to_vec()
    }

    #[test]
    fn v4_renewals_and_releases_are_priority_nothing_else() {
        let a = Ipv4Addr::new(10, 0, 0, 9);
        let z = Ipv4Addr::UNSPECIFIED;
        assert!(priority_v4(&v4(MessageType::Request, a, 0)));
        assert!(priority_v4(&v4(MessageType::Request, a, 3)));
        assert!(priority_v4(&v4(MessageType::Release, a, 1)));
        // SELECTING / INIT-REBOOT (ciaddr zero), DISCOVER, INFORM with ciaddr.
        assert!(!priority_v4(&v4(MessageType::Request, z, 0)));
        assert!(!priority_v4(&v4(MessageType::Discover, z, 0)));
        assert!(!priority_v4(&v4(MessageType::Inform, a, 0)));
        assert!(!priority_v4(&v4(MessageType::Decline, a, 0)));
        // Truncated in the options: not priority, no panic.
        let full = v4(MessageType::Request, a, 2);
        for cut in 0..full.len() {
            let _ = priority_v4(&full[..cut]);
        }
        assert!(!priority_v4(&full[..V4_OPTIONS + 3]));
    }

    #[test]
    fn v6_renew_rebind_release_are_priority_also_relayed() {
        for (t, want) in [
            (1u8, false),
            (3, false),
            (4, true),
            (5, true),
            (6, true),
            (8, true),
            (9, true),
            (11, false),
        ] {
            let msg = [t, 1, 2, 3, 0, 1, 0, 0];
            assert_eq!(priority_v6(&msg), want, "type {t}");
            // RELAY-FORW: type, hop count, link address, peer address, then RELAY_MSG.
            let mut relayed = vec![12u8, 0];
            relayed.extend_from_slice(&[0u8; 32]);
            relayed.extend_from_slice(&opt6::RELAY_MSG.to_be_bytes());
            relayed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            relayed.extend_from_slice(&msg);
            assert_eq!(priority_v6(&relayed), want, "relayed type {t}");
        }
        assert!(!priority_v6(&[]));
        assert!(!priority_v6(&[12, 0, 1]));
    }

    #[test]
    fn rate_limiter_allows_burst_then_rate() {
        let mut r = RateLimiter::new(10);
        let t0 = 1_000_000u32;
        let admitted = (0..50).filter(|_| r.admit(42, t0)).count();
        assert_eq!(admitted, 10, "a burst of `rate`");
        // 100 ms later: one more token.
        assert!(r.admit(42, t0 + 100));
        assert!(!r.admit(42, t0 + 100));
        // Another client is independent.
        assert!(r.admit(43, t0 + 100));
        // Full again after a long pause, never above the bucket size; across the clock wrap.
        let mut r = RateLimiter::new(2);
        let t = u32::MAX - 5;
        assert_eq!(
            (0..10).filter(|_| r.admit(7, t)).count(),
            4,
            "burst of at least 4"
        );
        assert_eq!(
            (0..10)
                .filter(|_| r.admit(7, t.wrapping_add(10_000)))
                .count(),
            4
        );
    }

    proptest! {
        /// Over any schedule, one client gets at most burst + rate × elapsed seconds.
        #[test]
        fn rate_limiter_never_exceeds_its_budget(
            rate in 1u32..200,
            gaps in proptest::collection::vec(0u32..50, 1..500),
        ) {
            let mut r = RateLimiter::new(rate);
            let mut now = 5u32;
            let mut admitted = 0u64;
            for g in &gaps {
                now += g;
                if r.admit(99, now) {
                    admitted += 1;
                }
            }
            let elapsed_ms = u64::from(now - 5);
            let budget = u64::from(rate.max(4)) + elapsed_ms * u64::from(rate) / 1000;
            prop_assert!(admitted <= budget, "{admitted} > {budget}");
        }
    }
}
