//! End-to-end tests of DHCPv4 failover (draft-ietf-dhc-failover-12) on the failover bench
//! ([`twinlease_tests::failover`]): two servers on one client LAN joined by a partner link
//! that the tests cut. The behaviour checked is the contract in
//! `/work/notes/failover-contract.md`: a fresh pair reaches NORMAL and replicates every
//! binding; after a crash of the primary the secondary keeps existing clients and serves
//! new ones from its own share, and after an operator PARTNER-DOWN and MCLT also from the
//! primary's; under a partition both serve and no address is bound twice; a restarted
//! partner gets only the updates it missed; and each role interoperates with ISC dhcpd 4.4.
//!
//! `failover_topology_smoke` and `dhcpd_pair_smoke` check the bench itself and run today;
//! the others wait for the failover feature (`#[ignore]`). Every test skips without root.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use twinlease_tests::capture::Capture;
use twinlease_tests::clients::{Dhclient, udhcpc_once};
use twinlease_tests::failover::{
    self, DhcpdLease, FailoverLab, FailoverParams, PairWait, Role, Side, UPDATES_SENT_METRIC,
    assert_no_double_ack, assert_no_double_binding, assert_same_bindings, holder, unix_now,
};
use twinlease_tests::perfdhcp::{PerfdhcpOptions, PerfdhcpReport, run_perfdhcp};
use twinlease_tests::process;
use twinlease_tests::topology::CLIENT_IF;
use twinlease_tests::twinlease::LeaseRecord;
use twinlease_tests::{Error, Result, require_programs, require_root};

/// Reaching NORMAL from a fresh start may include RECOVER-WAIT, one MCLT (contract).
const NORMAL_WAIT: Duration = Duration::from_secs(40);
/// How these tests wait for a twinlease pair to reach NORMAL: relationship "edge", s1
/// primary and s2 secondary, the partner's view settled within 10 s.
const PAIR_WAIT: PairWait<'static> = PairWait {
    normal: NORMAL_WAIT,
    partner: Duration::from_secs(10),
    relationship: Some("edge"),
};

/// Runs perfdhcp from client `i` (which must have a LAN address) with `n` new clients
/// whose MACs start with `mac_prefix` (three bytes, e.g. `02:0a:00`), one exchange each,
/// 50 per second, broadcast or to `server`.
fn perf(
    lab: &FailoverLab,
    i: usize,
    n: u32,
    mac_prefix: &str,
    server: Option<Side>,
) -> Result<PerfdhcpReport> {
    let mut p = PerfdhcpOptions::new(CLIENT_IF, n);
    p.rate = Some(50);
    p.num_requests = Some(n);
    p.base_mac = Some(format!("{mac_prefix}:00:00:00"));
    p.server = server.map(|s| s.lan_addr().to_string());
    // A reply counts if it comes within 5 s (perfdhcp's default is 1 s): ISC dhcpd, one of
    // the partners in the interoperability tests, fsyncs every lease, which takes longer
    // than a second on a loaded host.
    p.drop_time_secs = Some(5.0);
    p.exit_wait_us = Some(5_000_000);
    p.timeout = Duration::from_secs(30);
    run_perfdhcp(lab.topo().client(i), &p)
}

/// The addresses in `leases` held (any binding state) by a MAC starting with `prefix`.
fn held_by_prefix(leases: &[LeaseRecord], prefix: &str) -> BTreeSet<Ipv4Addr> {
    leases
        .iter()
        .filter(|l| !failover::NOT_BINDINGS.contains(&l.state.as_str()))
        .filter(|l| l.chaddr.as_deref().is_some_and(|m| m.starts_with(prefix)))
        .map(|l| l.addr)
        .collect()
}

/// Writes a twinlease pair (s1 primary, s2 secondary), starts both and waits until both
/// are in NORMAL, connected, each seeing the other in NORMAL, in their configured roles
/// ([`PAIR_WAIT`]).
fn start_pair(lab: &mut FailoverLab, params: &FailoverParams, lease_time: u32) -> Result<()> {
    lab.start_pair(params, lease_time, &PAIR_WAIT)
}

/// Waits until the relationship of every side in `sides` is in `state` (each for at most
/// `timeout`).
fn wait_states(lab: &FailoverLab, sides: &[Side], state: &str, timeout: Duration) -> Result<()> {
    for side in sides {
        lab.wait_state(*side, state, timeout)?;
    }
    Ok(())
}

#[test]
fn failover_topology_smoke() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "ping", "ip"])?;
    let mut lab = FailoverLab::new(1)?;
    let r = topology_smoke(&mut lab);
    lab.finish(r)
}

fn topology_smoke(lab: &mut FailoverLab) -> Result<()> {
    // A plain server (no [failover]) on s1, its control API inside s1's namespace.
    lab.write_config(Side::S1, 60, None)?;
    lab.start(Side::S1)?;
    let rel = lab.failover_status(Side::S1)?;
    assert!(rel.is_empty(), "no [failover], no relationship: {rel:?}");
    assert!(lab.metrics(Side::S1)?.contains("twinlease_"));

    // The partner link: up, cut (both directions fail), restored.
    let topo = lab.topo();
    assert!(topo.partner_ping(Side::S1) && topo.partner_ping(Side::S2));
    topo.cut_partner_link()?;
    assert!(
        !topo.partner_ping(Side::S1),
        "ping s1 -> s2 must fail when cut"
    );
    assert!(
        !topo.partner_ping(Side::S2),
        "ping s2 -> s1 must fail when cut"
    );
    topo.restore_partner_link()?;
    let back = process::wait_until(Duration::from_secs(10), || {
        (topo.partner_ping(Side::S1) && topo.partner_ping(Side::S2)).then_some(())
    });
    assert!(back.is_some(), "partner link not back after restore");

    // A client on the LAN gets a lease from s1, and reaches s2 over the LAN (the bridge
    // joins all three).
    let mut client = Dhclient::start(topo.client(0), CLIENT_IF, 20)?;
    let addr = client.wait_bound(Duration::from_secs(30))?;
    assert!((lab.pool().0..=lab.pool().1).contains(&addr), "{addr}");
    let bound = client.events().last().cloned().expect("bound event");
    assert_eq!(
        bound.addr("new_dhcp_server_identifier"),
        Some(Side::S1.lan_addr())
    );
    assert_eq!(bound.addr("new_routers"), Some(Side::S1.lan_addr()));
    let s2 = Side::S2.lan_addr().to_string();
    topo.client(0)
        .exec_ok("ping", &["-c1", "-W2", "-n", &s2], Duration::from_secs(5))?;
    // The LAN is not a path between the partners' failover addresses.
    let p2 = Side::S2.partner_addr().to_string();
    assert!(
        !topo
            .client(0)
            .exec("ping", &["-c1", "-W1", "-n", &p2], Duration::from_secs(5))?
            .status
            .success()
    );

    // The store while running (control API) and stopped (`twinlease leases`) agree.
    let mac = topo.client_mac(0)?;
    let running = lab.leases(Side::S1)?;
    let lease = running
        .iter()
        .find(|l| l.addr == addr)
        .ok_or_else(|| Error(format!("{addr} not in the API listing: {running:?}")))?;
    assert_eq!(lease.state, "active");
    assert_eq!(lease.chaddr.as_deref(), Some(mac.as_str()));
    drop(client);
    lab.stop(Side::S1)?;
    let stopped = lab.leases(Side::S1)?;
    assert_same_bindings(&running, &stopped)?;
    assert_no_double_binding(&[&running, &stopped], unix_now())?;
    Ok(())
}

#[test]
fn dhcpd_pair_smoke() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "ip"])?;
    if !std::path::Path::new(failover::DHCPD).exists() {
        println!("dhcpd_pair_smoke: skipped: {} absent", failover::DHCPD);
        return Ok(());
    }
    let mut lab = FailoverLab::new(1)?;
    let r = dhcpd_pair(&mut lab);
    lab.finish(r)
}

/// The dhcpd driver against itself: two ISC dhcpd reach NORMAL over the partner link and
/// both lease files hold the client's binding.
fn dhcpd_pair(lab: &mut FailoverLab) -> Result<()> {
    let params = FailoverParams::default();
    let c1 = lab.dhcpd_config(Side::S1, Role::Primary, &params, 60);
    let c2 = lab.dhcpd_config(Side::S2, Role::Secondary, &params, 60);
    lab.start_dhcpd(&c1)?;
    lab.start_dhcpd(&c2)?;
    for side in Side::BOTH {
        let line = lab.dhcpd(side)?.wait_normal("edge", NORMAL_WAIT)?;
        println!("{side}: {line}");
    }
    let mut client = Dhclient::start(lab.topo().client(0), CLIENT_IF, 30)?;
    let addr = client.wait_bound(Duration::from_secs(40))?;
    let mac = lab.topo().client_mac(0)?;
    for side in Side::BOTH {
        let d = lab.dhcpd(side)?;
        let found = process::wait_until(Duration::from_secs(10), || {
            d.leases().ok()?.into_iter().find(|l| {
                l.addr == addr && l.binding_state == "active" && l.hw.as_deref() == Some(&mac)
            })
        });
        let Some(found) = found else {
            return Err(Error(format!(
                "{side}: {addr} ({mac}) not active in dhcpd.leases: {:?}",
                d.leases()
            )));
        };
        println!("{side}: {found:?}");
    }

    // perfdhcp through the LAN: both answer their hash buckets (split 128), captured on
    // the bridge; no address goes to two clients.
    lab.topo().assign_client_addr(0)?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("lan.pcap");
    let cap = Capture::start(lab.topo().switch(), "br0", &pcap)?;
    let report = perf(lab, 0, 20, "02:5a:00", None)?;
    cap.stop()?;
    assert!(report.acks() >= 18, "{}", report.raw);
    let acks = assert_no_double_ack(&pcap)?;
    for side in Side::BOTH {
        let n = acks
            .values()
            .filter(|(_, src)| *src == side.lan_addr())
            .count();
        assert!(n > 0, "{side} ACKed nothing: {acks:?}");
    }

    // A cut partner link breaks the failover connection; restoring it mends it.
    lab.topo().cut_partner_link()?;
    for side in Side::BOTH {
        lab.dhcpd(side)?.wait_log(
            &["I move from normal to communications-interrupted"],
            Duration::from_secs(30),
        )?;
    }
    lab.topo().restore_partner_link()?;
    for side in Side::BOTH {
        lab.dhcpd(side)?.wait_log(
            &["I move from communications-interrupted to normal"],
            Duration::from_secs(30),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Failover behaviour (contract). Ignored until the feature lands.

#[test]
fn pair_reaches_normal_and_replicates() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "perfdhcp", "tcpdump", "ip"])?;
    let mut lab = FailoverLab::new(3)?;
    let r = replicates(&mut lab);
    lab.finish(r)
}

fn replicates(lab: &mut FailoverLab) -> Result<()> {
    start_pair(lab, &FailoverParams::default(), 60)?;
    lab.topo().assign_client_addr(0)?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("lan.pcap");
    let cap = Capture::start(lab.topo().switch(), "br0", &pcap)?;

    let mut dhclients = Vec::new();
    for i in 1..=2 {
        let mut c = Dhclient::start(lab.topo().client(i), CLIENT_IF, 30)?;
        let addr = c.wait_bound(Duration::from_secs(30))?;
        dhclients.push((c, addr, lab.topo().client_mac(i)?));
    }
    let report = perf(lab, 0, 40, "02:0a:00", None)?;
    assert!(report.acks() >= 38, "perfdhcp:\n{}", report.raw);

    // Both stores converge to the same bindings, which hold every client.
    let b = lab.wait_converged(Duration::from_secs(20))?;
    for (_, addr, mac) in &dhclients {
        let got = b.get(addr);
        assert!(
            got.is_some_and(|x| x.state == "active" && x.chaddr.as_deref() == Some(mac)),
            "{addr} ({mac}): {got:?}"
        );
    }
    let perf_held = b
        .values()
        .filter(|x| {
            x.chaddr
                .as_deref()
                .is_some_and(|m| m.starts_with("02:0a:00"))
        })
        .count();
    assert!(
        perf_held as u64 >= report.acks(),
        "{perf_held} perfdhcp bindings for {} ACKs",
        report.acks()
    );

    // In NORMAL each server answers its RFC 3074 hash buckets (split 128 of 256): with 40
    // random MACs both servers ACK some; no address goes to two clients on the wire.
    drop(dhclients);
    cap.stop()?;
    let acks = assert_no_double_ack(&pcap)?;
    for side in Side::BOTH {
        let n = acks
            .values()
            .filter(|(_, src)| *src == side.lan_addr())
            .count();
        assert!(n > 0, "{side} ACKed nothing in NORMAL: {acks:?}");
    }
    Ok(())
}

#[test]
fn primary_killed() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "udhcpc", "perfdhcp", "ip"])?;
    let mut lab = FailoverLab::new(4)?;
    let r = primary_killed_body(&mut lab);
    lab.finish(r)
}

fn primary_killed_body(lab: &mut FailoverLab) -> Result<()> {
    // A 40-address pool, so that the shares are small enough to exhaust.
    let pool = (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 139));
    lab.set_pool(pool)?;
    // MCLT 15 s: a dhclient's first lease is MCLT long, and its REBINDING window before
    // that lease expires (1/8 of it) must be long enough for a loaded host to answer.
    let params = FailoverParams {
        mclt: 15,
        ..FailoverParams::default()
    };
    // Lease time 30 s: after the kill the dhclients renew (T1 15 s, unicast) or rebind
    // (T2 26 s, broadcast, which the secondary answers) well inside the test.
    start_pair(lab, &params, 30)?;
    lab.topo().assign_client_addr(0)?;

    // Existing clients.
    let mut dhclients = Vec::new();
    for i in 1..=2 {
        let mut c = Dhclient::start(lab.topo().client(i), CLIENT_IF, 30)?;
        let addr = c.wait_bound(Duration::from_secs(30))?;
        dhclients.push((c, addr));
    }

    // Load (8 clients over and over, with renewals) while the primary dies.
    let mut load = PerfdhcpOptions::new(CLIENT_IF, 8);
    load.rate = Some(10);
    load.extra = vec!["-f".to_owned(), "4".to_owned()];
    load.period_secs = Some(8);
    load.base_mac = Some("02:0b:00:00:00:00".to_owned());
    load.timeout = Duration::from_secs(30);
    let (load_report, events_at_kill) = lab.kill9_under(
        Side::S1,
        Duration::from_secs(3),
        |topo| run_perfdhcp(topo.client(0), &load),
        || {
            dhclients
                .iter()
                .map(|(c, _)| c.events().len())
                .collect::<Vec<_>>()
        },
    )?;
    let load_report = load_report?;
    assert!(load_report.acks() > 0, "load:\n{}", load_report.raw);
    lab.wait_state(
        Side::S2,
        "communications-interrupted",
        Duration::from_secs(15),
    )?;

    // Existing clients keep their addresses: their next renewal or rebinding (answered by
    // the secondary, the only server left) gives the same address.
    for ((c, addr), skip) in dhclients.iter_mut().zip(events_at_kill) {
        let e = c.wait_for(
            &["RENEW", "REBIND", "REBOOT", "BOUND", "EXPIRE", "FAIL"],
            skip,
            Duration::from_secs(45),
        )?;
        assert!(
            e.reason != "EXPIRE" && e.reason != "FAIL",
            "client of {addr} lost its lease: {e:?}"
        );
        assert_eq!(e.addr("new_ip_address"), Some(*addr), "{e:?}");
    }

    // A new client is served by the secondary at once, from the secondary's share.
    let run = udhcpc_once(lab.topo().client(3), CLIENT_IF, 5, &[])?;
    let new_addr = run
        .leased_addr()
        .ok_or_else(|| Error(format!("no lease for a new client: {run:?}")))?;
    assert_eq!(
        run.bound().and_then(|b| b.addr("serverid")),
        Some(Side::S2.lan_addr())
    );
    assert!((pool.0..=pool.1).contains(&new_addr));

    // COMMUNICATIONS-INTERRUPTED: more new clients than free addresses get only the
    // secondary's share (draft-ietf-dhc-failover-12 §5.3: BACKUP addresses).
    let before_run1 = lab.leases(Side::S2)?;
    let held_before = failover::bindings(&before_run1)?.len();
    let free = 40_usize.saturating_sub(held_before);
    assert!(
        free > 1,
        "only {free} free addresses left for the exhaustion run"
    );
    let _run1 = perf(lab, 0, 60, "02:0c:00", None)?;
    let after_run1 = lab.leases(Side::S2)?;
    let run1 = held_by_prefix(&after_run1, "02:0c:00");
    assert!(
        !run1.is_empty() && run1.len() < free,
        "in communications-interrupted the secondary gave {} of {free} free addresses",
        run1.len()
    );

    // Operator PARTNER-DOWN; after MCLT the primary's free addresses are usable too.
    let held: BTreeSet<Ipv4Addr> = failover::bindings(&after_run1)?.into_keys().collect();
    assert_eq!(lab.partner_down(Side::S2, "edge")?, "partner-down");
    let pd = lab.wait_state(Side::S2, "partner-down", Duration::from_secs(5))?;
    let pd_start = pd.pd_start.unwrap_or_else(unix_now);
    let mclt_over = pd_start + u64::from(params.mclt) + 1;
    let wait = mclt_over.saturating_sub(unix_now());
    std::thread::sleep(Duration::from_secs(wait.min(30)));
    let _run2 = perf(lab, 0, 60, "02:0d:00", None)?;
    let after_run2 = lab.leases(Side::S2)?;
    let run2 = held_by_prefix(&after_run2, "02:0d:00");
    let from_primary: Vec<&Ipv4Addr> = run2.difference(&held).collect();
    assert!(
        !from_primary.is_empty(),
        "after PARTNER-DOWN + MCLT the secondary gave no address of the primary's share \
         (run 1 took {}, run 2 got {run2:?})",
        run1.len()
    );
    assert_no_double_binding(&[&after_run2], unix_now())?;

    // The primary comes back: both reach NORMAL and converge.
    lab.start(Side::S1)?;
    lab.wait_pair_normal(&PAIR_WAIT)?;
    lab.wait_converged(Duration::from_secs(20))?;
    Ok(())
}

#[test]
fn partition() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "perfdhcp", "tcpdump", "ping", "ip"])?;
    let mut lab = FailoverLab::new(2)?;
    let r = partition_body(&mut lab);
    lab.finish(r)
}

fn partition_body(lab: &mut FailoverLab) -> Result<()> {
    // MCLT 30 s: the leases granted during the partition (at most MCLT long) and their
    // addresses (held MCLT past expiry) outlast the test, so the wire check below sees no
    // address legitimately reused for another client after that.
    let params = FailoverParams {
        mclt: 30,
        ..FailoverParams::default()
    };
    start_pair(lab, &params, 60)?;
    lab.topo().assign_client_addr(0)?;
    let before = perf(lab, 0, 20, "02:1a:00", None)?;
    assert!(before.acks() >= 18, "{}", before.raw);
    lab.wait_converged(Duration::from_secs(20))?;
    // The wire check starts here: no address may move between clients from now on (the
    // leases of the clients above may have expired and been freed before).
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("lan.pcap");
    let cap = Capture::start(lab.topo().switch(), "br0", &pcap)?;

    // Cut: both notice within max-response-delay (plus slack) and keep serving.
    lab.topo().cut_partner_link()?;
    assert!(!lab.topo().partner_ping(Side::S1));
    let limit = Duration::from_secs(u64::from(params.max_response_delay) + 15);
    wait_states(lab, &Side::BOTH, "communications-interrupted", limit)?;
    lab.check_no_double_binding()?;

    // Per-server client sets (perfdhcp as a relay, unicast to one server), and one
    // broadcast client both servers may answer.
    let to_s1 = perf(lab, 0, 20, "02:1b:00", Some(Side::S1))?;
    lab.check_no_double_binding()?;
    let to_s2 = perf(lab, 0, 20, "02:1c:00", Some(Side::S2))?;
    lab.check_no_double_binding()?;
    for (side, r) in [(Side::S1, &to_s1), (Side::S2, &to_s2)] {
        assert!(r.acks() >= 15, "{side} stopped serving:\n{}", r.raw);
    }
    let mut c = Dhclient::start(lab.topo().client(1), CLIENT_IF, 30)?;
    c.wait_bound(Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(2));
    let [l1, l2] = lab.check_no_double_binding()?;
    // The partition is real: neither heard of the other's new clients.
    assert!(!held_by_prefix(&l1, "02:1b:00").is_empty());
    assert!(!held_by_prefix(&l2, "02:1c:00").is_empty());
    assert!(
        held_by_prefix(&l1, "02:1c:00").is_empty(),
        "s1 knows s2's clients"
    );
    assert!(
        held_by_prefix(&l2, "02:1b:00").is_empty(),
        "s2 knows s1's clients"
    );
    for side in Side::BOTH {
        let r = lab.relationship(side)?;
        assert!(!r.connected, "{side}: {r:?}");
    }

    // Restore: NORMAL again, identical stores, still no double binding.
    lab.topo().restore_partner_link()?;
    lab.wait_pair_normal(&PAIR_WAIT)?;
    let b = lab.wait_converged(Duration::from_secs(30))?;
    for prefix in ["02:1b:00", "02:1c:00"] {
        assert!(
            b.values()
                .any(|x| x.chaddr.as_deref().is_some_and(|m| m.starts_with(prefix))),
            "{prefix} clients missing after convergence"
        );
    }
    drop(c);
    cap.stop()?;
    // During a partition a server may not move an address to another client (only its
    // own free share is usable, draft-ietf-dhc-failover-12 §5.3), nor right after it.
    assert_no_double_ack(&pcap)?;
    Ok(())
}

#[test]
fn restart_resends_only_missed() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "ip"])?;
    let mut lab = FailoverLab::new(1)?;
    let r = resend_body(&mut lab);
    lab.finish(r)
}

/// Assumption (adjust to the implementation): the primary counts every BNDUPD it sends in
/// [`UPDATES_SENT_METRIC`] on `/metrics`, one per binding change, and nothing while
/// disconnected. MCLT 30 s: the first lease of a client lasts MCLT (draft-12 §5.2.1), and
/// the whole sequence below ends before any of them expires, so expiries add no updates.
fn resend_body(lab: &mut FailoverLab) -> Result<()> {
    let params = FailoverParams {
        mclt: 30,
        ..FailoverParams::default()
    };
    start_pair(lab, &params, 300)?;
    lab.topo().assign_client_addr(0)?;
    let n = 40;
    let first = perf(lab, 0, n, "02:2a:00", None)?;
    assert!(first.acks() >= u64::from(n) - 2, "{}", first.raw);
    lab.wait_converged(Duration::from_secs(20))?;
    let sent0 = lab.metric(Side::S1, UPDATES_SENT_METRIC)?;
    assert!(sent0 >= 1.0, "no updates counted in {UPDATES_SENT_METRIC}");

    // The secondary stops cleanly; the primary serves alone.
    lab.stop(Side::S2)?;
    let gone = process::wait_until(Duration::from_secs(15), || {
        lab.relationship(Side::S1).ok().filter(|r| !r.connected)
    });
    assert!(
        gone.is_some(),
        "primary still connected: {:?}",
        lab.relationship(Side::S1)
    );
    let k = 10;
    let missed = perf(lab, 0, k, "02:2b:00", None)?;
    assert!(missed.acks() >= u64::from(k) - 1, "{}", missed.raw);
    let sent_mid = lab.metric(Side::S1, UPDATES_SENT_METRIC)?;
    assert!(
        (sent_mid - sent0).abs() < 0.5,
        "sent {sent0} -> {sent_mid} with no partner"
    );

    // The secondary returns: NORMAL, all leases, and only the missed updates were sent.
    lab.start(Side::S2)?;
    lab.wait_pair_normal(&PAIR_WAIT)?;
    let b = lab.wait_converged(Duration::from_secs(20))?;
    let new = b
        .values()
        .filter(|x| {
            x.chaddr
                .as_deref()
                .is_some_and(|m| m.starts_with("02:2b:00"))
        })
        .count();
    assert!(
        new as u64 >= missed.acks(),
        "{new} of {} missed leases",
        missed.acks()
    );
    let sent1 = lab.metric(Side::S1, UPDATES_SENT_METRIC)?;
    let delta = sent1 - sent0;
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let (acked, total) = (missed.acks() as f64, f64::from(n + k));
    assert!(
        delta >= acked && delta < total - acked,
        "after the restart the primary sent {delta} updates for {acked} missed leases \
         ({total} leases in all): expected only the missed ones"
    );
    Ok(())
}

/// Polls (at most `timeout`) until every binding on each side is known to the other: the
/// active twinlease leases are in dhcpd.leases with the same hardware address (any state
/// but free/backup), and the active dhcpd leases are in twinlease's store with the same
/// chaddr. Returns both lists.
fn wait_cross_replicated(
    lab: &mut FailoverLab,
    tw: Side,
    timeout: Duration,
) -> Result<(Vec<LeaseRecord>, Vec<DhcpdLease>)> {
    let deadline = Instant::now() + timeout;
    loop {
        let t = lab.leases(tw)?;
        let d = lab.dhcpd_leases(tw.other())?;
        let diff = cross_diff(&t, &d);
        if diff.is_empty() {
            return Ok((t, d));
        }
        if Instant::now() >= deadline {
            return Err(Error(format!("not replicated within {timeout:?}:\n{diff}")));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn cross_diff(t: &[LeaseRecord], d: &[DhcpdLease]) -> String {
    let now = unix_now();
    let tmap: BTreeMap<Ipv4Addr, &LeaseRecord> = t
        .iter()
        .filter(|l| !failover::NOT_BINDINGS.contains(&l.state.as_str()))
        .map(|l| (l.addr, l))
        .collect();
    let dmap: BTreeMap<Ipv4Addr, &DhcpdLease> = d
        .iter()
        .filter(|l| !matches!(l.binding_state.as_str(), "free" | "backup"))
        .map(|l| (l.addr, l))
        .collect();
    let mut diff = String::new();
    for l in t.iter().filter(|l| l.state == "active" && l.expires > now) {
        let theirs = dmap.get(&l.addr);
        if theirs.and_then(|x| x.hw.clone()) != holder(l) {
            let _ = writeln!(
                diff,
                "  twinlease {} {:?}: dhcpd {theirs:?}",
                l.addr, l.chaddr
            );
        }
    }
    for l in d.iter().filter(|l| l.binding_state == "active") {
        let ours = tmap.get(&l.addr);
        if ours.and_then(|x| holder(x)) != l.hw {
            let _ = writeln!(diff, "  dhcpd {} {:?}: twinlease {ours:?}", l.addr, l.hw);
        }
    }
    diff
}

fn interop(lab: &mut FailoverLab, tw_role: Role) -> Result<()> {
    let params = FailoverParams::default();
    // twinlease on s1 for the primary role, on s2 for the secondary role; dhcpd opposite.
    let (tw, dh, dh_role) = match tw_role {
        Role::Primary => (Side::S1, Side::S2, Role::Secondary),
        Role::Secondary => (Side::S2, Side::S1, Role::Primary),
    };
    lab.write_config(tw, 60, Some((tw_role, &params)))?;
    let dconf = lab.dhcpd_config(dh, dh_role, &params, 60);
    lab.start_dhcpd(&dconf)?;
    lab.start(tw)?;
    lab.wait_state(tw, "normal", NORMAL_WAIT)?;
    lab.dhcpd(dh)?.wait_normal(&params.name, NORMAL_WAIT)?;
    let r = lab.relationship(tw)?;
    assert!(r.connected && r.role == tw_role.as_str(), "{r:?}");

    lab.topo().assign_client_addr(0)?;
    let mut clients = Vec::new();
    for i in 1..=2 {
        let mut c = Dhclient::start(lab.topo().client(i), CLIENT_IF, 30)?;
        let addr = c.wait_bound(Duration::from_secs(30))?;
        clients.push((c, addr, lab.topo().client_mac(i)?));
    }
    let report = perf(lab, 0, 20, "02:3a:00", None)?;
    assert!(report.acks() >= 18, "{}", report.raw);

    let (t, d) = wait_cross_replicated(lab, tw, Duration::from_secs(20))?;
    for (_, addr, mac) in &clients {
        assert!(
            t.iter()
                .any(|l| l.addr == *addr && l.chaddr.as_deref() == Some(mac)),
            "{addr} ({mac}) missing in twinlease"
        );
        assert!(
            d.iter()
                .any(|l| l.addr == *addr && l.hw.as_deref() == Some(mac)),
            "{addr} ({mac}) missing in dhcpd.leases"
        );
    }
    // Both servers answered some clients (split 128), so each store got the other's.
    let perf_t = held_by_prefix(&t, "02:3a:00").len();
    assert!(
        perf_t as u64 >= report.acks(),
        "{perf_t} of {}",
        report.acks()
    );
    Ok(())
}

#[test]
fn interop_twinlease_primary_dhcpd_secondary() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "perfdhcp", "ip", "dhcpd"])?;
    let mut lab = FailoverLab::new(3)?;
    let r = interop(&mut lab, Role::Primary);
    lab.finish(r)
}

#[test]
fn interop_dhcpd_primary_twinlease_secondary() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "perfdhcp", "ip", "dhcpd"])?;
    let mut lab = FailoverLab::new(3)?;
    let r = interop(&mut lab, Role::Secondary);
    lab.finish(r)
}
