//! End-to-end tests of DHCPv6 failover (RFC 8156) on the failover bench
//! ([`twinlease_tests::failover`], made IPv6-ready with
//! [`FailoverTopology::enable_ipv6`](twinlease_tests::failover::FailoverTopology::enable_ipv6)):
//! two twinlease servers on one client LAN joined by a partner link the tests cut. A fresh
//! pair reaches NORMAL and replicates every address and prefix binding; after a crash of the
//! primary the secondary keeps existing clients and serves new ones from its own share, and
//! after an operator PARTNER-DOWN and the MCLT also from the primary's; under a partition
//! both serve and no member is bound twice; a restarted partner gets only the updates it
//! missed. Every test skips without root.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::time::Duration;

use twinlease_tests::clients6::{Dhclient6, Dhcp6Mode};
use twinlease_tests::failover::{
    FailoverLab, FailoverParams, Lifetimes6, PD_POOL6, POOL6, PairWait, Side, UPDATES_SENT_METRIC,
};
use twinlease_tests::perfdhcp::{Lease6Kind, PerfdhcpOptions, PerfdhcpReport, run_perfdhcp};
use twinlease_tests::process;
use twinlease_tests::topology::CLIENT_IF;
use twinlease_tests::twinlease::LeaseRecord6;
use twinlease_tests::{Error, Result, require_programs, require_root};

/// The relationship's name in `[failover6]` ([`FailoverParams::to_toml6`] adds `-v6`).
const NAME: &str = "edge-v6";
/// MCLT of these tests: short, so first lifetimes and PARTNER-DOWN waits stay short.
const MCLT: u32 = 10;
/// How these tests wait for the pair to reach NORMAL: reaching it from a fresh start may
/// include RECOVER-WAIT, one MCLT; then the partner's view settles within 15 s.
const PAIR_WAIT: PairWait<'static> = PairWait {
    normal: Duration::from_mins(1),
    partner: Duration::from_secs(15),
    relationship: Some(NAME),
};
/// Lifetimes of the `[[subnet6]]`: renewals at 20 s, rebinding at 40 s.
const LIFE: Lifetimes6 = Lifetimes6 {
    preferred: 60,
    valid: 90,
    renew: 20,
    rebind: 40,
};

fn params() -> FailoverParams {
    FailoverParams {
        mclt: MCLT,
        ..FailoverParams::default()
    }
}

fn lab(n_clients: usize) -> Result<FailoverLab> {
    let lab = FailoverLab::new(n_clients)?;
    lab.topo().enable_ipv6()?;
    Ok(lab)
}

/// Writes a DHCPv6 twinlease pair, starts both and waits until both are in NORMAL,
/// connected, each seeing the other in NORMAL ([`PAIR_WAIT`]).
fn start_pair(lab: &mut FailoverLab) -> Result<()> {
    lab.start_pair6(&params(), LIFE, 50, &PAIR_WAIT)
}

/// perfdhcp -6 from client `i` (relayed through nothing: multicast on `c0`), `n` clients
/// of `kind`, one exchange each, 20 per second; `base` makes their DUIDs distinct between
/// runs.
fn perf6(
    lab: &FailoverLab,
    i: usize,
    n: u32,
    kind: Lease6Kind,
    base: &str,
) -> Result<PerfdhcpReport> {
    let mut p = PerfdhcpOptions::new_v6(CLIENT_IF, n, kind);
    p.rate = Some(20);
    p.num_requests = Some(n);
    p.base_mac = Some(base.to_owned());
    p.timeout = Duration::from_mins(1);
    run_perfdhcp(lab.topo().client(i), &p)
}

fn in_pool6(a: Ipv6Addr) -> bool {
    POOL6.0 <= a && a <= POOL6.1
}

/// Whether `p` is in the first half of [`PD_POOL6`] (the primary's share).
fn first_half(p: Ipv6Addr) -> bool {
    let base = u128::from(PD_POOL6.0);
    let half = 1u128 << (128 - u32::from(PD_POOL6.2)) << (u32::from(PD_POOL6.2 - PD_POOL6.1) - 1);
    u128::from(p) >= base && u128::from(p) < base + half
}

fn active(leases: &[LeaseRecord6]) -> impl Iterator<Item = &LeaseRecord6> {
    leases.iter().filter(|l| l.state == "active")
}

/// The store record of `member` on `side`, if active.
fn active_on(
    lab: &FailoverLab,
    side: Side,
    member: (Ipv6Addr, u8),
) -> Result<Option<LeaseRecord6>> {
    Ok(active(&lab.leases6(side)?)
        .find(|l| (l.addr, l.prefix_len) == member)
        .cloned())
}

#[test]
fn v6_pair_reaches_normal_and_replicates() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "perfdhcp", "ip"])?;
    let mut lab = lab(3)?;
    let r = pair_reaches_normal(&mut lab);
    lab.finish(r)
}

fn pair_reaches_normal(lab: &mut FailoverLab) -> Result<()> {
    start_pair(lab)?;
    assert!(lab.topo().partner_ping6(Side::S1), "partner link over IPv6");
    let mut na = Dhclient6::start(lab.topo().client(0), CLIENT_IF, Dhcp6Mode::Address, 30)?;
    let mut pd = Dhclient6::start(lab.topo().client(1), CLIENT_IF, Dhcp6Mode::Prefix, 30)?;
    let a = na.wait_bound(Duration::from_secs(40))?;
    let p = pd.wait_bound(Duration::from_secs(40))?;
    let addr = a
        .address
        .ok_or_else(|| Error::msg("dhclient -6 got no address"))?;
    let (prefix, plen) = p
        .prefix
        .ok_or_else(|| Error::msg("dhclient -6 -P got no prefix"))?;
    assert!(in_pool6(addr), "{addr} outside the pool");
    assert_eq!(plen, PD_POOL6.2);
    // RFC 8156 §4.4: a first lifetime is at most the MCLT.
    assert!(a.valid_lifetime.is_some_and(|v| v <= MCLT), "{a:?}");
    let report = perf6(
        lab,
        2,
        20,
        Lease6Kind::AddressAndPrefix,
        "02:0a:00:00:00:00",
    )?;
    let done = report.request_reply.as_ref().map_or(0, |s| s.received);
    assert!(
        done >= 18,
        "perfdhcp -6 completed {done} of 20:\n{}",
        report.raw
    );
    let b = lab.wait_converged6(Duration::from_secs(30))?;
    assert!(b.contains_key(&(addr, 128)), "{addr} not replicated");
    assert!(
        b.contains_key(&(prefix, plen)),
        "{prefix}/{plen} not replicated"
    );
    let nas = b.keys().filter(|m| m.1 == 128).count();
    let pds = b.keys().filter(|m| m.1 == PD_POOL6.2).count();
    assert!(
        nas >= 19 && pds >= 19,
        "{nas} addresses, {pds} prefixes bound"
    );
    // Each partner allocated from its own share: prefixes from both halves may appear, but
    // every prefix is in one; the status counts the updates.
    for side in Side::BOTH {
        let r = lab.relationship(side)?;
        assert_eq!(r.unacked_updates, 0, "{side}: {r:?}");
    }
    assert!(
        lab.metric(Side::S1, UPDATES_SENT_METRIC)? + lab.metric(Side::S2, UPDATES_SENT_METRIC)?
            >= 42.0
    );
    // The renewal after the first (MCLT-bound) lifetime gets the full lifetime once the
    // partner acknowledged it.
    let renewed = process::wait_until(Duration::from_secs(30), || {
        na.lease().filter(|l| l.valid_lifetime == Some(LIFE.valid))
    });
    assert!(
        renewed.is_some(),
        "no full-lifetime renewal: {:?}",
        na.events()
    );
    drop(na);
    drop(pd);
    Ok(())
}

#[test]
fn v6_primary_crash_secondary_serves_then_partner_down() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "perfdhcp", "ip"])?;
    let mut lab = lab(3)?;
    let r = primary_crash(&mut lab);
    lab.finish(r)
}

fn primary_crash(lab: &mut FailoverLab) -> Result<()> {
    start_pair(lab)?;
    let mut na = Dhclient6::start(lab.topo().client(0), CLIENT_IF, Dhcp6Mode::Address, 30)?;
    let addr = na
        .wait_bound(Duration::from_secs(40))?
        .address
        .ok_or_else(|| Error::msg("no address"))?;
    lab.wait_converged6(Duration::from_secs(30))?;
    lab.kill9(Side::S1)?;
    lab.wait_state(
        Side::S2,
        "communications-interrupted",
        Duration::from_secs(20),
    )?;
    // The client's RENEW goes to the dead primary; its REBIND reaches the secondary, which
    // extends the same address (RFC 8415 §18.3.5).
    let before = na.events().len();
    let rebound = process::wait_until(Duration::from_secs(90), || {
        na.events()
            .into_iter()
            .skip(before)
            .find(|e| e.reason == "REBIND6" || e.reason == "RENEW6")
    });
    let ev = rebound.ok_or_else(|| Error(format!("no renewal from s2: {:?}", na.events())))?;
    assert_eq!(
        ev.var("new_ip6_address"),
        Some(addr.to_string().as_str()),
        "{ev:?}"
    );
    assert!(active_on(lab, Side::S2, (addr, 128))?.is_some());
    // A new client gets a prefix of the secondary's half.
    let mut pd = Dhclient6::start(lab.topo().client(1), CLIENT_IF, Dhcp6Mode::Prefix, 30)?;
    let (p, _) = pd
        .wait_bound(Duration::from_secs(40))?
        .prefix
        .ok_or_else(|| Error::msg("no prefix"))?;
    assert!(!first_half(p), "{p} is in the primary's share");
    // PARTNER-DOWN, then after the MCLT the primary's half too: 150 prefixes do not fit in
    // the secondary's 128.
    assert_eq!(lab.partner_down(Side::S2, NAME)?, "partner-down");
    std::thread::sleep(Duration::from_secs(u64::from(MCLT) + 2));
    let report = perf6(lab, 2, 150, Lease6Kind::PrefixOnly, "02:0b:00:00:00:00")?;
    let leases = lab.leases6(Side::S2)?;
    let primary_half = active(&leases)
        .filter(|l| l.is_prefix() && first_half(l.addr))
        .count();
    assert!(
        primary_half > 0,
        "no prefix of the primary's half used:\n{}",
        report.raw
    );
    // The primary comes back: NORMAL again, and both stores converge.
    lab.start(Side::S1)?;
    lab.wait_pair_normal(&PAIR_WAIT)?;
    lab.wait_converged6(Duration::from_mins(1))?;
    drop(na);
    drop(pd);
    Ok(())
}

#[test]
fn v6_partition_both_serve_without_double_binding() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "ip"])?;
    let mut lab = lab(2)?;
    let r = partition(&mut lab);
    lab.finish(r)
}

fn partition(lab: &mut FailoverLab) -> Result<()> {
    start_pair(lab)?;
    perf6(
        lab,
        0,
        10,
        Lease6Kind::AddressAndPrefix,
        "02:0c:00:00:00:00",
    )?;
    lab.wait_converged6(Duration::from_secs(30))?;
    lab.topo().cut_partner_link()?;
    for side in Side::BOTH {
        lab.wait_state(side, "communications-interrupted", Duration::from_secs(20))?;
    }
    // Both serve, each from its own share.
    perf6(
        lab,
        0,
        30,
        Lease6Kind::AddressAndPrefix,
        "02:0d:00:00:00:00",
    )?;
    perf6(
        lab,
        1,
        30,
        Lease6Kind::AddressAndPrefix,
        "02:0e:00:00:00:00",
    )?;
    lab.check_no_double_binding6()?;
    let [a, b] = [lab.leases6(Side::S1)?, lab.leases6(Side::S2)?];
    let prefixes = |ls: &[LeaseRecord6]| -> BTreeSet<Ipv6Addr> {
        active(ls)
            .filter(|l| l.is_prefix())
            .map(|l| l.addr)
            .collect()
    };
    // What each granted alone during the partition comes from its own half.
    let only_a: Vec<_> = prefixes(&a).difference(&prefixes(&b)).copied().collect();
    let only_b: Vec<_> = prefixes(&b).difference(&prefixes(&a)).copied().collect();
    assert!(
        !only_a.is_empty() || !only_b.is_empty(),
        "nobody served during the partition"
    );
    assert!(
        only_a.iter().all(|p| first_half(*p)),
        "the primary used the secondary's share: {only_a:?}"
    );
    assert!(
        only_b.iter().all(|p| !first_half(*p)),
        "the secondary used the primary's share: {only_b:?}"
    );
    lab.topo().restore_partner_link()?;
    lab.wait_pair_normal(&PAIR_WAIT)?;
    lab.wait_converged6(Duration::from_mins(1))?;
    Ok(())
}

#[test]
fn v6_restart_resends_only_what_was_missed() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "ip"])?;
    let mut lab = lab(1)?;
    let r = restart_missed(&mut lab);
    lab.finish(r)
}

fn restart_missed(lab: &mut FailoverLab) -> Result<()> {
    // A long MCLT: the first lifetimes (at most the MCLT) outlast the test, so no expiry
    // adds updates of its own.
    let params = FailoverParams {
        mclt: 120,
        ..FailoverParams::default()
    };
    lab.start_pair6(&params, LIFE, 50, &PAIR_WAIT)?;
    perf6(lab, 0, 40, Lease6Kind::AddressOnly, "02:0f:00:00:00:00")?;
    lab.wait_converged6(Duration::from_secs(30))?;
    lab.stop(Side::S2)?;
    lab.wait_state(
        Side::S1,
        "communications-interrupted",
        Duration::from_secs(20),
    )?;
    perf6(lab, 0, 10, Lease6Kind::AddressOnly, "02:10:00:00:00:00")?;
    let sent_before = lab.metric(Side::S1, UPDATES_SENT_METRIC)?;
    lab.start(Side::S2)?;
    lab.wait_pair_normal(&PAIR_WAIT)?;
    let b = lab.wait_converged6(Duration::from_mins(1))?;
    assert!(b.len() >= 48, "{} bindings", b.len());
    let resent = lab.metric(Side::S1, UPDATES_SENT_METRIC)? - sent_before;
    // The 10 missed bindings (sent again at most once more on the partner's UPDREQ), not
    // all 50.
    assert!(
        (8.0..=25.0).contains(&resent),
        "the primary sent {resent} updates after the restart"
    );
    Ok(())
}
