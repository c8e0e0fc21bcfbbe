//! Runs Kea's `perfdhcp` (DHCPv4, or DHCPv6 with [`PerfdhcpOptions::new_v6`]) in a namespace
//! and parses its final report.
//!
//! For DHCPv4 perfdhcp sends as a relay: it needs a local address (see
//! [`crate::topology::Topology::assign_client_addr`]), puts it in `giaddr`, and the server
//! answers by unicast to that address. For DHCPv6 it sends from the interface's link-local
//! address to `ff02::1:2` (RFC 8415 §7.1) like a directly attached client, or, with
//! [`PerfdhcpOptions::relay_levels`], wraps every message in RELAY-FORW (RFC 8415 §9) as a
//! relay agent whose link-address is a global address of the interface (see
//! [`crate::topology::Topology::assign_client_addr6`]).

use std::time::Duration;

use crate::netns::Netns;
use crate::{Error, Result};

/// What a simulated DHCPv6 client asks for (perfdhcp `-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease6Kind {
    /// `IA_NA` only (`-e address-only`).
    AddressOnly,
    /// `IA_PD` only (`-e prefix-only`).
    PrefixOnly,
    /// `IA_NA` and `IA_PD` in every exchange (`-e address-and-prefix`).
    AddressAndPrefix,
}

impl Lease6Kind {
    /// The `-e` argument.
    #[must_use]
    pub fn arg(self) -> &'static str {
        match self {
            Self::AddressOnly => "address-only",
            Self::PrefixOnly => "prefix-only",
            Self::AddressAndPrefix => "address-and-prefix",
        }
    }
}

/// What to run. Build with [`PerfdhcpOptions::new`] and set fields.
#[derive(Debug, Clone)]
pub struct PerfdhcpOptions {
    /// Local interface or address (`-l`).
    pub local: String,
    /// Exchanges initiated per second (`-r`); `None`: as fast as possible.
    pub rate: Option<u32>,
    /// Number of simulated clients (`-R`).
    pub clients: u32,
    /// Stop after this many exchanges (`-n`).
    pub num_requests: Option<u32>,
    /// Stop after this many seconds (`-p`).
    pub period_secs: Option<u32>,
    /// Check address uniqueness (`-u`).
    pub unique: bool,
    /// Time after which a request counts as lost, seconds (`-d`).
    pub drop_time_secs: Option<f64>,
    /// Base MAC address (`-b mac=...`), to keep runs apart.
    pub base_mac: Option<String>,
    /// Seconds between periodic reports (`-t`).
    pub report_secs: Option<u32>,
    /// After the last request, wait this many microseconds for replies (`-W`).
    pub exit_wait_us: Option<u32>,
    /// More arguments, appended before the server argument.
    pub extra: Vec<String>,
    /// Server address; `None`: broadcast.
    pub server: Option<String>,
    /// Wall-clock limit after which perfdhcp is killed.
    pub timeout: Duration,
    /// `None`: DHCPv4 (`-4`). `Some(kind)`: DHCPv6 (`-6 -e KIND`).
    pub v6: Option<Lease6Kind>,
    /// DHCPv6 only: simulate this many relay agents (`-A N`; perfdhcp supports 1).
    pub relay_levels: Option<u32>,
}

impl PerfdhcpOptions {
    /// Options for `local`, with `clients` clients, a 1 s wait for the last replies, and
    /// everything else unset; timeout 60 s.
    #[must_use]
    pub fn new(local: &str, clients: u32) -> Self {
        Self {
            local: local.to_owned(),
            rate: None,
            clients,
            num_requests: None,
            period_secs: None,
            unique: false,
            drop_time_secs: None,
            base_mac: None,
            report_secs: None,
            exit_wait_us: Some(1_000_000),
            extra: Vec::new(),
            server: None,
            timeout: Duration::from_mins(1),
            v6: None,
            relay_levels: None,
        }
    }

    /// Like [`PerfdhcpOptions::new`] but DHCPv6 (`-6 -e KIND`) on interface `local`.
    #[must_use]
    pub fn new_v6(local: &str, clients: u32, kind: Lease6Kind) -> Self {
        Self {
            v6: Some(kind),
            ..Self::new(local, clients)
        }
    }

    /// The perfdhcp command line arguments.
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        let mut a = match self.v6 {
            None => vec!["-4".to_owned()],
            Some(kind) => vec!["-6".to_owned(), "-e".to_owned(), kind.arg().to_owned()],
        };
        a.extend([
            "-l".to_owned(),
            self.local.clone(),
            "-R".to_owned(),
            self.clients.to_string(),
        ]);
        if self.v6.is_some()
            && let Some(n) = self.relay_levels
        {
            a.push("-A".to_owned());
            a.push(n.to_string());
        }
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_owned());
                a.push(v);
            }
        };
        opt("-r", self.rate.map(|r| r.to_string()));
        opt("-n", self.num_requests.map(|n| n.to_string()));
        opt("-p", self.period_secs.map(|p| p.to_string()));
        opt("-d", self.drop_time_secs.map(|d| d.to_string()));
        opt("-b", self.base_mac.as_ref().map(|m| format!("mac={m}")));
        opt("-t", self.report_secs.map(|t| t.to_string()));
        opt("-W", self.exit_wait_us.map(|w| w.to_string()));
        if self.unique {
            a.push("-u".to_owned());
        }
        a.extend(self.extra.iter().cloned());
        if let Some(s) = &self.server {
            a.push(s.clone());
        }
        a
    }
}

/// Statistics of one exchange kind (DISCOVER-OFFER or REQUEST-ACK; SOLICIT-ADVERTISE or
/// REQUEST-REPLY).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExchangeStats {
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Requests without a reply.
    pub drops: u64,
    /// Unmatched replies.
    pub orphans: u64,
    /// Leases perfdhcp rejected.
    pub rejected_leases: u64,
    /// Addresses handed out twice (only counted with `-u`).
    pub non_unique: u64,
    /// Average delay in milliseconds, when reported.
    pub avg_delay_ms: Option<f64>,
    /// Maximum delay in milliseconds, when reported.
    pub max_delay_ms: Option<f64>,
}

/// perfdhcp's final report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerfdhcpReport {
    /// Exit code: 0 all exchanges completed, 3 some did not, others: errors.
    pub exit_code: Option<i32>,
    /// Achieved four-way exchanges per second.
    pub rate: Option<f64>,
    /// Malformed packets received.
    pub malformed: u64,
    /// DISCOVER-OFFER statistics.
    pub discover_offer: Option<ExchangeStats>,
    /// REQUEST-ACK statistics.
    pub request_ack: Option<ExchangeStats>,
    /// DHCPv6 SOLICIT-ADVERTISE statistics.
    pub solicit_advertise: Option<ExchangeStats>,
    /// DHCPv6 REQUEST-REPLY statistics.
    pub request_reply: Option<ExchangeStats>,
    /// The whole output (stdout then stderr).
    pub raw: String,
}

impl PerfdhcpReport {
    /// The first exchange: DISCOVER-OFFER (v4), else SOLICIT-ADVERTISE (v6).
    #[must_use]
    pub fn first_exchange(&self) -> Option<&ExchangeStats> {
        self.discover_offer
            .as_ref()
            .or(self.solicit_advertise.as_ref())
    }

    /// The second exchange: REQUEST-ACK (v4), else REQUEST-REPLY (v6).
    #[must_use]
    pub fn second_exchange(&self) -> Option<&ExchangeStats> {
        self.request_ack.as_ref().or(self.request_reply.as_ref())
    }

    /// DHCPACKs (v4) or REPLYs to REQUEST (v6) received: completed four-way exchanges.
    #[must_use]
    pub fn acks(&self) -> u64 {
        self.second_exchange().map_or(0, |s| s.received)
    }

    /// Exchanges started: DISCOVERs (v4) or SOLICITs (v6) sent.
    #[must_use]
    pub fn started(&self) -> u64 {
        self.first_exchange().map_or(0, |s| s.sent)
    }

    /// Drops of both exchanges.
    #[must_use]
    pub fn total_drops(&self) -> u64 {
        [self.first_exchange(), self.second_exchange()]
            .into_iter()
            .flatten()
            .map(|s| s.drops)
            .sum()
    }

    /// Non-unique addresses of both exchanges.
    #[must_use]
    pub fn non_unique(&self) -> u64 {
        [self.first_exchange(), self.second_exchange()]
            .into_iter()
            .flatten()
            .map(|s| s.non_unique)
            .sum()
    }

    /// Fraction of started exchanges (DISCOVERs or SOLICITs) that did not end with an ACK
    /// or a REPLY.
    #[must_use]
    pub fn failed_fraction(&self) -> f64 {
        let started = self.started();
        if started == 0 {
            return 1.0;
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "packet counts stay far below 2^52"
        )]
        let f = 1.0 - self.acks() as f64 / started as f64;
        f.max(0.0)
    }

    /// Ok when both exchanges were seen, nothing dropped and (with `-u`) every address
    /// unique; else an error with the raw report.
    pub fn require_clean(&self) -> Result<()> {
        if self.first_exchange().is_none() || self.second_exchange().is_none() {
            return Err(Error(format!("perfdhcp report incomplete:\n{}", self.raw)));
        }
        if self.total_drops() > 0 || self.non_unique() > 0 || self.acks() == 0 {
            return Err(Error(format!(
                "perfdhcp: {} drops, {} non-unique, {} acks:\n{}",
                self.total_drops(),
                self.non_unique(),
                self.acks(),
                self.raw
            )));
        }
        Ok(())
    }
}

fn value_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.trim().strip_prefix(key).map(str::trim)
}

fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.split_whitespace().next()?.parse().ok()
}

/// Parses perfdhcp's final report (the last report in the text wins).
#[must_use]
pub fn parse_report(text: &str) -> PerfdhcpReport {
    let mut report = PerfdhcpReport {
        raw: text.to_owned(),
        ..PerfdhcpReport::default()
    };
    // Which statistics block the following lines belong to: 0 DISCOVER-OFFER, 1
    // REQUEST-ACK, 2 SOLICIT-ADVERTISE, 3 REQUEST-REPLY.
    let mut current: Option<u8> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("***") {
            let blocks = [
                ("Statistics for: DISCOVER-OFFER", &mut report.discover_offer),
                ("Statistics for: REQUEST-ACK", &mut report.request_ack),
                (
                    "Statistics for: SOLICIT-ADVERTISE",
                    &mut report.solicit_advertise,
                ),
                ("Statistics for: REQUEST-REPLY", &mut report.request_reply),
            ];
            current = None;
            for (i, (title, slot)) in blocks.into_iter().enumerate() {
                if t.contains(title) {
                    *slot = Some(ExchangeStats::default());
                    current = u8::try_from(i).ok();
                }
            }
            continue;
        }
        if let Some(v) = value_after(t, "Rate:") {
            report.rate = number(v);
            continue;
        }
        if let Some(v) = value_after(t, "Malformed packets:") {
            report.malformed = number(v).unwrap_or(0);
            continue;
        }
        let stats = match current {
            Some(0) => report.discover_offer.as_mut(),
            Some(1) => report.request_ack.as_mut(),
            Some(2) => report.solicit_advertise.as_mut(),
            Some(3) => report.request_reply.as_mut(),
            _ => None,
        };
        let Some(stats) = stats else { continue };
        let Some((key, v)) = t.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match key.trim() {
            "sent packets" => stats.sent = number(v).unwrap_or(0),
            "received packets" => stats.received = number(v).unwrap_or(0),
            "drops" => stats.drops = number(v).unwrap_or(0),
            "orphans" => stats.orphans = number(v).unwrap_or(0),
            "rejected leases" => stats.rejected_leases = number(v).unwrap_or(0),
            "non unique addresses" => stats.non_unique = number(v).unwrap_or(0),
            "avg delay" => stats.avg_delay_ms = number(v),
            "max delay" => stats.max_delay_ms = number(v),
            _ => {}
        }
    }
    report
}

/// Runs perfdhcp in `ns` with `opts` and parses its report. Exit codes 0 and 3 (some
/// exchanges incomplete) give a report; other codes are errors.
pub fn run_perfdhcp(ns: &Netns, opts: &PerfdhcpOptions) -> Result<PerfdhcpReport> {
    let args = opts.args();
    let out = ns.exec("perfdhcp", &args, opts.timeout)?;
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let mut report = parse_report(&text);
    report.exit_code = out.code();
    match out.code() {
        Some(0 | 3) => Ok(report),
        _ => Err(Error(format!(
            "perfdhcp {args:?} failed ({}):\n{text}",
            out.status
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running: perfdhcp -4 -l c0 -r 100 -R 200 -p 3 -u
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 83.3243 4-way exchanges/second, expected rate: 100

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 299
received packets: 250
drops: 49
drops ratio: 16.388 %
orphans: 0
rejected leases: 0
non unique addresses: 99

min delay: 0.185 ms
avg delay: 0.259 ms
max delay: 0.491 ms
std deviation: 0.041 ms
collected packets: 0

***Statistics for: REQUEST-ACK***
sent packets: 250
received packets: 248
drops: 2
drops ratio: 0.8 %
orphans: 1
rejected leases: 0
non unique addresses: 98

min delay: 0.133 ms
avg delay: 0.187 ms
max delay: 0.289 ms
std deviation: 0.031 ms
collected packets: 0
";

    #[test]
    fn parses_final_report() {
        let r = parse_report(SAMPLE);
        assert_eq!(r.rate, Some(83.3243));
        let d = r.discover_offer.clone().unwrap();
        assert_eq!(
            (d.sent, d.received, d.drops, d.non_unique),
            (299, 250, 49, 99)
        );
        assert_eq!(d.avg_delay_ms, Some(0.259));
        let a = r.request_ack.clone().unwrap();
        assert_eq!((a.sent, a.received, a.drops, a.orphans), (250, 248, 2, 1));
        assert_eq!(r.acks(), 248);
        assert_eq!(r.total_drops(), 51);
        assert_eq!(r.non_unique(), 197);
        assert!((r.failed_fraction() - (1.0 - 248.0 / 299.0)).abs() < 1e-9);
        assert!(r.require_clean().is_err());
    }

    #[test]
    fn empty_output_is_not_clean() {
        let r = parse_report("ERROR: running perfdhcp: no address");
        assert!(r.require_clean().is_err());
        assert!((r.failed_fraction() - 1.0).abs() < f64::EPSILON);
    }

    const SAMPLE6: &str =
        "Running: perfdhcp -6 -e address-and-prefix -l c0 -R 1000 -r 100 -p 3 -W 1000000 -u
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 74.7377 4-way exchanges/second, expected rate: 100

***Malformed Packets***
Malformed packets: 0
***Statistics for: SOLICIT-ADVERTISE***
sent packets: 299
received packets: 297
drops: 2
drops ratio: 0.669 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.236 ms
avg delay: 0.484 ms
max delay: 4.572 ms
std deviation: 0.591 ms
collected packets: 0

***Statistics for: REQUEST-REPLY***
sent packets: 297
received packets: 296
drops: 1
drops ratio: 0.337 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.148 ms
avg delay: 0.256 ms
max delay: n/a
std deviation: 0.239 ms
collected packets: 0
";

    #[test]
    fn parses_v6_report() {
        let r = parse_report(SAMPLE6);
        assert!(r.discover_offer.is_none() && r.request_ack.is_none());
        let s = r.solicit_advertise.clone().unwrap();
        assert_eq!((s.sent, s.received, s.drops), (299, 297, 2));
        assert_eq!(s.avg_delay_ms, Some(0.484));
        let q = r.request_reply.clone().unwrap();
        assert_eq!((q.sent, q.received, q.drops), (297, 296, 1));
        assert_eq!(q.max_delay_ms, None);
        assert_eq!(r.started(), 299);
        assert_eq!(r.acks(), 296);
        assert_eq!(r.total_drops(), 3);
        assert!((r.failed_fraction() - 3.0 / 299.0).abs() < 1e-9);
        assert!(r.require_clean().is_err());
        let clean = SAMPLE6
            .replace("received packets: 297", "received packets: 299")
            .replace("drops: 2", "drops: 0")
            .replace("sent packets: 297", "sent packets: 299")
            .replace("received packets: 296", "received packets: 299")
            .replace("drops: 1", "drops: 0");
        let c = parse_report(&clean);
        c.require_clean().unwrap();
        assert_eq!(c.acks(), 299);
    }

    #[test]
    fn builds_v6_arguments() {
        let mut o = PerfdhcpOptions::new_v6("c0", 1000, Lease6Kind::AddressAndPrefix);
        o.rate = Some(100);
        o.unique = true;
        o.relay_levels = Some(1);
        assert_eq!(
            o.args().join(" "),
            "-6 -e address-and-prefix -l c0 -R 1000 -A 1 -r 100 -W 1000000 -u"
        );
        o.v6 = None;
        assert!(o.args().join(" ").starts_with("-4 -l c0 -R 1000 -r 100"));
    }

    #[test]
    fn builds_arguments() {
        let mut o = PerfdhcpOptions::new("c0", 200);
        o.rate = Some(100);
        o.period_secs = Some(3);
        o.unique = true;
        o.base_mac = Some("00:0c:01:00:00:00".into());
        assert_eq!(
            o.args().join(" "),
            "-4 -l c0 -R 200 -r 100 -p 3 -b mac=00:0c:01:00:00:00 -W 1000000 -u"
        );
    }
}
