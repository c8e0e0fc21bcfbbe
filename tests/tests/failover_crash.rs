//! `kill -9` during partner resynchronisation (draft-ietf-dhc-failover-12 §7.4, §9.5.2): the
//! secondary restarts on an empty data directory, so it asks for every binding (UPDREQALL)
//! and the primary streams them; the receiver, then the sender, is killed in the middle of
//! that stream. After the restart both servers reach NORMAL, their stores converge (same
//! client for every address, same active bindings), every address perfdhcp was acknowledged
//! stays recorded for its client on both, and no address is bound twice over the union of
//! both stores. Skips without root.
//!
//! The failover bench's LAN is a /24 (pool of 151 addresses), so a stream holds about 151
//! BNDUPDs (a binding per address, leased or not).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use twinlease_tests::failover::{
    self, FailoverLab, FailoverParams, PairWait, Side, UPDATES_SENT_METRIC,
};
use twinlease_tests::perfdhcp::{PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::topology::CLIENT_IF;
use twinlease_tests::{Error, Result, require_programs, require_root};

const RECEIVED_METRIC: &str = "twinlease_failover_updates_received_total";
/// How the test waits for the pair to reach NORMAL (roles and name not checked).
const PAIR_WAIT: PairWait<'static> = PairWait {
    normal: Duration::from_mins(1),
    partner: Duration::from_secs(15),
    relationship: None,
};

/// Which server a cycle kills during the stream.
#[derive(Debug, Clone, Copy)]
enum Victim {
    Receiver,
    Sender,
}

#[test]
fn kill_dash_nine_during_updreqall_stream_converges() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "ip"])?;
    let mut lab = FailoverLab::new(1)?;
    let r = resync_body(&mut lab);
    lab.finish(r)
}

fn resync_body(lab: &mut FailoverLab) -> Result<()> {
    let params = FailoverParams {
        mclt: 5,
        ..FailoverParams::default()
    };
    lab.start_pair(&params, 600, &PAIR_WAIT)?;
    lab.topo().assign_client_addr(0)?;
    let n = 120;
    let mut p = PerfdhcpOptions::new(CLIENT_IF, n);
    p.rate = Some(200);
    p.num_requests = Some(n);
    p.base_mac = Some("02:3c:00:00:00:00".into());
    p.timeout = Duration::from_secs(30);
    let report = run_perfdhcp(lab.topo().client(0), &p)?;
    assert!(report.acks() >= u64::from(n) - 5, "{}", report.raw);
    lab.wait_converged(Duration::from_secs(30))?;
    let acked: BTreeMap<Ipv4Addr, String> = lab
        .leases(Side::S1)?
        .into_iter()
        .filter(|l| l.state == "active")
        .filter_map(|l| Some((l.addr, l.chaddr.filter(|m| m.starts_with("02:3c:00"))?)))
        .collect();
    assert!(acked.len() as u64 >= report.acks(), "{acked:?}");

    for (cycle, victim) in [
        Victim::Receiver,
        Victim::Sender,
        Victim::Receiver,
        Victim::Sender,
    ]
    .into_iter()
    .enumerate()
    {
        // The secondary comes back with nothing: it asks for everything (UPDREQALL).
        lab.stop(Side::S2)?;
        std::fs::remove_dir_all(lab.data_dir(Side::S2))?;
        std::fs::create_dir_all(lab.data_dir(Side::S2))?;
        let sent0 = lab.metric(Side::S1, UPDATES_SENT_METRIC)?;
        lab.start(Side::S2)?;
        // Kill as soon as the stream is under way.
        let end = Instant::now() + Duration::from_secs(30);
        let mut at_kill = None;
        while Instant::now() < end {
            let sent = lab.metric(Side::S1, UPDATES_SENT_METRIC).unwrap_or(sent0) - sent0;
            let got = lab.metric(Side::S2, RECEIVED_METRIC).unwrap_or(0.0);
            if sent >= 5.0 || got >= 5.0 {
                let side = match victim {
                    Victim::Receiver => Side::S2,
                    Victim::Sender => Side::S1,
                };
                lab.kill9(side)?;
                at_kill = Some((sent, got));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let Some((sent, got)) = at_kill else {
            return Err(Error(format!("cycle {cycle}: no UPDREQALL stream seen")));
        };
        println!(
            "cycle {cycle}: killed the {victim:?} with {sent} BNDUPDs sent, {got} received \
             (of about {} bindings)",
            u32::from(failover::POOL.1) - u32::from(failover::POOL.0) + 1
        );
        // Restart the victim as it is (a half-received store, or a sender mid-stream).
        match victim {
            Victim::Receiver => lab.start(Side::S2)?,
            Victim::Sender => lab.start(Side::S1)?,
        }
        lab.wait_pair_normal(&PAIR_WAIT)?;
        let b = wait_same_holders(lab, Duration::from_mins(1))
            .map_err(|e| Error(format!("cycle {cycle}: {}", e.0)))?;
        lab.check_no_double_binding()?;
        // Every acknowledged lease's address is still bound to (or, once its lease ran out,
        // still recorded for) the client it was given to, on both servers.
        for (addr, mac) in &acked {
            let got = b.get(addr).and_then(|x| x.chaddr.clone());
            assert_eq!(got.as_ref(), Some(mac), "cycle {cycle}: {addr}");
        }
    }
    Ok(())
}

/// Waits until both stores record the same client for every address and agree on which
/// addresses are active. (A lease that ran out may read `expired` on one side and
/// `released` on the other: both free the address; see the report of this test.)
fn wait_same_holders(
    lab: &FailoverLab,
    timeout: Duration,
) -> Result<BTreeMap<Ipv4Addr, failover::Binding>> {
    let end = Instant::now() + timeout;
    loop {
        let a = failover::bindings(&lab.leases(Side::S1)?)?;
        let b = failover::bindings(&lab.leases(Side::S2)?)?;
        let keys: BTreeSet<&Ipv4Addr> = a.keys().chain(b.keys()).collect();
        let diff: Vec<String> = keys
            .into_iter()
            .filter(|k| {
                let (x, y) = (a.get(k), b.get(k));
                x.map(|x| (&x.client, x.state == "active"))
                    != y.map(|y| (&y.client, y.state == "active"))
            })
            .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
            .collect();
        if diff.is_empty() {
            return Ok(a);
        }
        if Instant::now() >= end {
            return Err(Error(format!(
                "stores still differ after {timeout:?}:\n{}",
                diff.join("\n")
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
