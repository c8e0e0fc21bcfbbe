//! End-to-end tests (DHCP version 4) of the `twinlease` server with real clients in namespaces:
//! dhclient (bind, renew, release), udhcpc, perfdhcp load with address uniqueness and a
//! store that matches the wire, and a crash (SIGKILL) under load that must lose no
//! acknowledged lease.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use twinlease_tests::capture::{self, Capture};
use twinlease_tests::clients::{Dhclient, udhcpc_once};
use twinlease_tests::perfdhcp::{PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::topology::{CLIENT_IF, Ipv4Net, Topology};
use twinlease_tests::twinlease::{self, LeaseRecord, Twinlease, TwinleaseConfig};
use twinlease_tests::{Error, Result, require_programs, require_root};

/// A twinlease server in a fresh topology, with its data and config in a temp folder.
/// Field order is drop order: the server stops before the namespaces go.
struct Lab {
    server: Option<Twinlease>,
    topo: Topology,
    bin: PathBuf,
    dir: TempDir,
}

impl Lab {
    fn new(
        n_clients: usize,
        subnet: Ipv4Net,
        pool: (Ipv4Addr, Ipv4Addr),
        lease_time: u32,
    ) -> Result<Self> {
        let bin = twinlease::binary()?;
        let topo = Topology::with_subnet(n_clients, subnet)?;
        let dir = tempfile::Builder::new().prefix("tl-e2e").tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        TwinleaseConfig::standard(&data, subnet, pool, lease_time)
            .write(&dir.path().join("twinlease.toml"))?;
        let mut lab = Self {
            server: None,
            topo,
            bin,
            dir,
        };
        lab.start()?;
        Ok(lab)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("twinlease.toml")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start(&mut self) -> Result<()> {
        let log = self.dir.path().join("twinlease.log");
        self.server = Some(Twinlease::start(
            self.topo.srv(),
            &self.bin,
            &self.config(),
            &log,
        )?);
        Ok(())
    }

    fn leases(&self) -> Result<Vec<LeaseRecord>> {
        twinlease::leases(&self.bin, &self.data_dir())
    }

    /// The leases keyed by address; fails when an address appears more than once.
    fn leases_by_addr(&self) -> Result<BTreeMap<Ipv4Addr, LeaseRecord>> {
        let mut out = BTreeMap::new();
        for l in self.leases()? {
            if let Some(prev) = out.insert(l.addr, l.clone()) {
                return Err(Error(format!("address listed twice: {prev:?} and {l:?}")));
            }
        }
        Ok(out)
    }

    /// Stops the server (SIGTERM, must exit 0): `twinlease leases` reads the store only
    /// while no server holds it.
    fn stop(&mut self) -> Result<()> {
        if let Some(mut server) = self.server.take() {
            server.stop()?;
        }
        Ok(())
    }

    /// Stops the server and requires `addr` to be in `state` in the store.
    fn stopped_state(&mut self, addr: Ipv4Addr, state: &str) -> Result<LeaseRecord> {
        self.stop()?;
        let leases = self.leases_by_addr()?;
        leases
            .get(&addr)
            .filter(|l| l.state == state)
            .cloned()
            .ok_or_else(|| Error(format!("{addr} not {state}: {:?}", leases.get(&addr))))
    }
}

fn small_pool() -> (Ipv4Addr, Ipv4Addr) {
    (Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 250))
}

fn mac_of(topo: &Topology, i: usize) -> Result<String> {
    let out = topo.client(i).ip(&["-o", "link", "show", CLIENT_IF])?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| Error(format!("no MAC in {out:?}")))
}

#[test]
fn check_config_accepts_valid_and_names_the_bad_field() -> Result<()> {
    let bin = twinlease::binary()?;
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.toml");
    TwinleaseConfig::standard(dir.path(), Ipv4Net::test_net_1(), small_pool(), 3600)
        .write(&good)?;
    let out = twinlease::check_config(&bin, &good)?;
    assert_eq!(out.code(), Some(0), "{out:?}");

    let bad = dir.path().join("bad.toml");
    // The pool lies outside its subnet.
    let pool = (
        Ipv4Addr::new(198, 51, 100, 10),
        Ipv4Addr::new(198, 51, 100, 20),
    );
    TwinleaseConfig::standard(dir.path(), Ipv4Net::test_net_1(), pool, 3600).write(&bad)?;
    let out = twinlease::check_config(&bin, &bad)?;
    assert_eq!(out.code(), Some(1), "{out:?}");
    let text = format!("{}{}", out.stdout, out.stderr);
    let prefix = format!("{}: ", bad.display());
    assert!(
        text.lines()
            .any(|l| l.starts_with(&prefix) && l.matches(": ").count() >= 2),
        "expected `file: field: reason`, got:\n{text}"
    );
    Ok(())
}

#[test]
fn dhclient_gets_renews_and_releases_a_lease() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "ip"])?;
    // Lease time 20 s: dhclient renews (unicast) after 10 s, and its lease outlives the
    // stop/inspect/restart below even on a loaded machine (an expired lease is not released).
    let mut lab = Lab::new(1, Ipv4Net::test_net_1(), small_pool(), 20)?;
    let mut client = Dhclient::start(lab.topo.client(0), CLIENT_IF, 20)?;
    let addr = client.wait_bound(Duration::from_secs(30))?;
    assert!((small_pool().0..=small_pool().1).contains(&addr), "{addr}");
    let events = client.events();
    let bound = events.last().expect("bound event");
    assert_eq!(bound.addr("new_routers"), Some(lab.topo.server_addr()));
    assert_eq!(
        bound.addr("new_dhcp_server_identifier"),
        Some(lab.topo.server_addr())
    );
    assert_eq!(bound.var("new_domain_name"), Some("example.net"));
    assert_eq!(bound.var("new_dhcp_lease_time"), Some("20"));

    let renew = client.wait_for(&["RENEW"], events.len(), Duration::from_secs(30))?;
    assert_eq!(renew.addr("new_ip_address"), Some(addr));

    let mac = mac_of(&lab.topo, 0)?;
    let active = lab.stopped_state(addr, "active")?;
    assert_eq!(active.chaddr.as_deref(), Some(mac.as_str()));
    assert_eq!(active.subnet_id, 1);
    assert!(
        active.cltt.is_some_and(|c| active.expires > c),
        "{active:?}"
    );

    // A restarted server takes the release of the lease it granted before.
    lab.start()?;
    client.release(lab.topo.client(0))?;
    lab.stopped_state(addr, "released")?;
    Ok(())
}

#[test]
fn udhcpc_gets_a_lease() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["udhcpc", "ip"])?;
    let mut lab = Lab::new(1, Ipv4Net::test_net_1(), small_pool(), 3600)?;
    let run = udhcpc_once(lab.topo.client(0), CLIENT_IF, 5, &[])?;
    assert_eq!(run.code, Some(0), "{run:?}");
    let addr = run.leased_addr().expect("a lease");
    let bound = run.bound().expect("bound");
    assert_eq!(bound.addr("serverid"), Some(lab.topo.server_addr()));
    assert_eq!(bound.var("lease"), Some("3600"));
    assert_eq!(bound.var("domain"), Some("example.net"));
    let lease = lab.stopped_state(addr, "active")?;
    let mac = mac_of(&lab.topo, 0)?;
    assert_eq!(lease.chaddr.as_deref(), Some(mac.as_str()));
    assert_eq!(
        lease.client.as_deref(),
        Some(format!("id:01:{mac}").as_str())
    );
    Ok(())
}

/// Every ACK on the wire is one (address, MAC) binding: no address goes to two MACs.
fn wire_bindings(pcap: &Path) -> Result<BTreeMap<Ipv4Addr, String>> {
    let mut out: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for (addr, mac) in capture::acks_in(pcap)? {
        let mac = mac.to_string();
        if let Some(prev) = out.insert(addr, mac.clone())
            && prev != mac
        {
            return Err(Error(format!("{addr} ACKed to {prev} and to {mac}")));
        }
    }
    Ok(out)
}

/// Every wire binding is an active lease of that MAC in the store.
fn store_holds(
    lab: &Lab,
    wire: &BTreeMap<Ipv4Addr, String>,
) -> Result<BTreeMap<Ipv4Addr, LeaseRecord>> {
    let store = lab.leases_by_addr()?;
    for (addr, mac) in wire {
        let l = store
            .get(addr)
            .ok_or_else(|| Error(format!("ACKed {addr} ({mac}) is missing from the store")))?;
        if l.state != "active" || l.chaddr.as_deref() != Some(mac.as_str()) {
            return Err(Error(format!("ACKed {addr} to {mac}, store has {l:?}")));
        }
    }
    Ok(store)
}

#[test]
fn perfdhcp_unique_addresses_and_store_matches_acks() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "tcpdump", "ip"])?;
    let pool = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 250));
    let mut lab = Lab::new(1, Ipv4Net::test_net_1(), pool, 3600)?;
    lab.topo.assign_client_addr(0)?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("acks.pcap");
    let cap = Capture::start(lab.topo.client(0), CLIENT_IF, &pcap)?;
    let mut p = PerfdhcpOptions::new(CLIENT_IF, 200);
    p.rate = Some(100);
    p.num_requests = Some(200);
    p.unique = true;
    let report = run_perfdhcp(lab.topo.client(0), &p)?;
    let summary = cap.stop()?;
    report.require_clean()?;
    assert_eq!(report.acks(), 200);
    assert_eq!(summary.dropped_by_kernel, Some(0), "{summary:?}");

    let wire = wire_bindings(&pcap)?;
    assert_eq!(wire.len(), 200);
    lab.stop()?;
    let store = store_holds(&lab, &wire)?;
    let active: BTreeSet<Ipv4Addr> = store
        .values()
        .filter(|l| l.state == "active")
        .map(|l| l.addr)
        .collect();
    let acked: BTreeSet<Ipv4Addr> = wire.keys().copied().collect();
    assert_eq!(
        active, acked,
        "the store must hold exactly the ACKed addresses"
    );
    Ok(())
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_lease() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "tcpdump", "ip"])?;
    let subnet = Ipv4Net::benchmark_net();
    let pool = (
        Ipv4Addr::new(198, 18, 1, 0),
        Ipv4Addr::new(198, 18, 63, 255),
    );
    let mut lab = Lab::new(1, subnet, pool, 3600)?;
    lab.topo.assign_client_addr(0)?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("crash.pcap");
    let cap = Capture::start(lab.topo.client(0), CLIENT_IF, &pcap)?;

    let mut load = PerfdhcpOptions::new(CLIENT_IF, 4000);
    load.rate = Some(500);
    load.num_requests = Some(4000);
    load.period_secs = Some(10);
    load.timeout = Duration::from_mins(1);
    let config = lab.config();
    let log = lab.dir.path().join("twinlease-restarted.log");
    let Lab {
        server, topo, bin, ..
    } = &mut lab;
    let topo: &Topology = topo;
    let (first, restarted) = std::thread::scope(|s| {
        let load_run = s.spawn(|| run_perfdhcp(topo.client(0), &load));
        std::thread::sleep(Duration::from_secs(3));
        // The crash: no chance to flush anything.
        let crashed = server.as_mut().expect("server started").kill9();
        std::thread::sleep(Duration::from_secs(1));
        let restarted = crashed.and_then(|()| Twinlease::start(topo.srv(), bin, &config, &log));
        (load_run.join().expect("perfdhcp thread"), restarted)
    });
    let first = first?;
    lab.server = Some(restarted?);
    assert!(
        first.acks() > 500,
        "too few ACKs to mean anything:\n{}",
        first.raw
    );

    // The restarted server serves new clients cleanly.
    let mut after = PerfdhcpOptions::new(CLIENT_IF, 200);
    after.rate = Some(100);
    after.num_requests = Some(200);
    after.base_mac = Some("02:0c:99:00:00:00".into());
    run_perfdhcp(lab.topo.client(0), &after)?.require_clean()?;
    let summary = cap.stop()?;
    assert_eq!(summary.dropped_by_kernel, Some(0), "{summary:?}");

    lab.stop()?;
    let wire = wire_bindings(&pcap)?;
    assert!(
        wire.len() >= 700,
        "only {} bindings on the wire",
        wire.len()
    );
    store_holds(&lab, &wire)?;
    Ok(())
}
