//! End-to-end test of the `twinlease_bench` load generator against the `twinlease` server in
//! namespaces (root only; skipped otherwise): DHCPv4 DORA for 20 000 clients and DHCPv6
//! prefix delegation for 5 000, at modest rates. Every exchange must complete, no lease may
//! go to two clients, the JSON line must parse, and the server's store must hold exactly the
//! leases the generator saw granted.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use twinlease_tests::loadgen::{BenchRun, bench_binary, run_bench};
use twinlease_tests::topology::{CLIENT_IF, Ipv4Net, Topology};
use twinlease_tests::twinlease::{self, Subnet6, Twinlease, TwinleaseConfig};
use twinlease_tests::{Result, require_root};

/// A server in a fresh topology. Field order is drop order: the server stops before the
/// namespaces go.
struct Lab {
    server: Twinlease,
    topo: Topology,
    bin: PathBuf,
    dir: TempDir,
}

impl Lab {
    fn new(v6: bool) -> Result<Self> {
        let bin = twinlease::binary()?;
        let subnet = Ipv4Net::benchmark_net();
        let topo = Topology::build(1, subnet, 1)?;
        if v6 {
            topo.enable_ipv6()?;
        }
        let dir = tempfile::Builder::new().prefix("tl-bench-e2e").tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let pool = (subnet.host(256), subnet.host(subnet.host_count() - 1));
        let mut config = TwinleaseConfig::standard(&data, subnet, pool, 3600);
        if v6 {
            config.subnets6.push(Subnet6::standard());
        }
        let conf = dir.path().join("twinlease.toml");
        config.write(&conf)?;
        let log = dir.path().join("twinlease.log");
        let port = if v6 { 547 } else { 67 };
        let server = Twinlease::start_on_port(topo.srv(), &bin, &conf, &log, port)?;
        Ok(Self {
            server,
            topo,
            bin,
            dir,
        })
    }

    fn bench(&self, args: &[&str]) -> Result<BenchRun> {
        let bench = bench_binary(false)?;
        let mut full: Vec<String> = vec!["--iface".into(), CLIENT_IF.into()];
        full.extend(args.iter().map(|s| (*s).to_owned()));
        run_bench(self.topo.client(0), &bench, &full, Duration::from_mins(3))
    }
}

/// Checks what every run must show: every one of `clients` got its turn and (but for at most
/// one in 2,000, a datagram lost on a loaded host: UDP, no retransmission in one closed-loop
/// exchange) completed, no NAK, no TX ring full, no duplicate, and the identities counted.
/// Returns how many exchanges completed.
fn check_all_granted(run: &BenchRun, clients: u64) -> u64 {
    println!("{}", run.stdout);
    let j = &run.json;
    let ctx = || format!("{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(0), "exit status\n{}", ctx());
    assert_eq!(j["bench"], "twinlease_bench");
    let completed = j["result"]["completed"]["dora"].as_u64().unwrap_or(0);
    let tolerated = clients / 2000;
    assert!(
        completed <= clients && completed + tolerated >= clients,
        "{completed} of {clients} completed\n{}",
        ctx()
    );
    for stage in ["nak", "tx_full"] {
        assert_eq!(
            j["result"]["drops"][stage].as_u64(),
            Some(0),
            "{stage}: {}",
            ctx()
        );
    }
    let lost: u64 = ["no_offer", "no_ack"]
        .iter()
        .map(|st| j["result"]["drops"][*st].as_u64().unwrap_or(0))
        .sum();
    assert!(lost <= tolerated, "{lost} lost: {}", ctx());
    assert_eq!(j["duplicates"].as_u64(), Some(0), "{}", ctx());
    assert_eq!(j["leases_held"].as_u64(), Some(completed), "{}", ctx());
    assert_eq!(j["servers_seen"].as_u64(), Some(1), "{}", ctx());
    assert_eq!(j["bytes_per_client_state"].as_u64(), Some(24));
    let dora = &j["result"]["latency_us"]["dora"];
    assert_eq!(dora["count"].as_u64(), Some(completed), "{}", ctx());
    assert!(dora["p50"].as_u64() <= dora["p99"].as_u64());
    completed
}

#[test]
fn dora_v4_for_20k_clients_all_granted_no_duplicates() -> Result<()> {
    require_root!(Ok(()));
    let mut lab = Lab::new(false)?;
    // 2 500/s for 9 s starts more than 20 000 exchanges: every client gets its turn, the
    // surplus finds no idle client.
    let run = lab.bench(&[
        "--clients",
        "20000",
        "--rate",
        "2500",
        "--duration",
        "9",
        "--timeout-ms",
        "3000",
        "--seed",
        "7",
    ])?;
    let completed = check_all_granted(&run, 20_000);
    assert_eq!(run.json["family"], "v4");
    assert!(run.json["result"]["no_eligible"].as_u64() > Some(0));
    lab.server.stop()?;
    // The server's store agrees: an active lease for every completed exchange (an ACK lost on
    // the way back leaves one more), one per client.
    let leases = twinlease::leases(&lab.bin, &lab.dir.path().join("data"))?;
    let active: Vec<_> = leases.iter().filter(|l| l.state == "active").collect();
    let n = active.len() as u64;
    assert!(
        (completed..=20_000).contains(&n),
        "{n} active, {completed} completed"
    );
    let clients: std::collections::BTreeSet<_> = active.iter().map(|l| l.chaddr.clone()).collect();
    assert_eq!(clients.len(), active.len());
    Ok(())
}

#[test]
fn pd_v6_for_5k_clients_all_granted_no_duplicates() -> Result<()> {
    require_root!(Ok(()));
    let mut lab = Lab::new(true)?;
    let run = lab.bench(&[
        "-6",
        "--ia",
        "pd",
        "--clients",
        "5000",
        "--rate",
        "1000",
        "--duration",
        "7",
        "--timeout-ms",
        "3000",
        "--seed",
        "11",
    ])?;
    let completed = check_all_granted(&run, 5000);
    assert_eq!(run.json["ia"], "pd");
    lab.server.stop()?;
    let leases = twinlease::leases6(&lab.bin, &lab.dir.path().join("data"))?;
    let prefixes = leases
        .iter()
        .filter(|l| l.is_prefix() && l.state == "active")
        .count() as u64;
    assert!(
        (completed..=5000).contains(&prefixes),
        "{prefixes} active prefixes, {completed} completed"
    );
    Ok(())
}
