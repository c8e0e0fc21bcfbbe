//! Proves the harness against a real server, Kea's kea-dhcp4: namespaces and links, the
//! dhclient and udhcpc drivers, perfdhcp and its report, packet capture and the pcap
//! reader. The twinlease end-to-end tests reuse exactly these pieces.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use twinlease_tests::capture::{self, Capture};
use twinlease_tests::clients::{Dhclient, udhcpc_once};
use twinlease_tests::kea::{Kea, KeaOptions};
use twinlease_tests::netns::{self, Netns, VethPair};
use twinlease_tests::perfdhcp::{PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::process::{self, ChildGuard};
use twinlease_tests::topology::{CLIENT_IF, Ipv4Net, SERVER_IF, Topology};
use twinlease_tests::{Result, require_programs, require_root};

fn pool() -> (Ipv4Addr, Ipv4Addr) {
    (Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 250))
}

fn in_pool(a: Ipv4Addr, (first, last): (Ipv4Addr, Ipv4Addr)) -> bool {
    (first..=last).contains(&a)
}

fn mac_of(ns: &Netns, dev: &str) -> Result<String> {
    let out = ns.ip(&["-o", "link", "show", dev])?;
    let mac = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| twinlease_tests::Error(format!("no MAC in {out:?}")))?;
    Ok(mac.to_owned())
}

#[test]
fn dhclient_gets_renews_and_releases_a_kea_lease() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp4", "dhclient", "ip"])?;
    let topo = Topology::new(1)?;
    let mut opts = KeaOptions::new(SERVER_IF, topo.subnet(), pool());
    // A short lease so that dhclient renews (at half the lease time) within the test.
    opts.valid_lifetime = 6;
    let kea = Kea::start(topo.srv(), &opts)?;
    let mut client = Dhclient::start(topo.client(0), CLIENT_IF, 20)?;
    let addr = client.wait_bound(Duration::from_secs(30))?;
    assert!(in_pool(addr, pool()), "{addr} outside the pool");
    let bound = client.events();
    let ev = bound.last().expect("an event");
    assert_eq!(ev.addr("new_routers"), Some(topo.server_addr()));
    assert_eq!(ev.var("new_domain_name"), Some("example.net"));

    let mac = mac_of(topo.client(0), CLIENT_IF)?;
    let leases = kea.leases()?;
    let lease = leases.get(&addr).expect("Kea stored the lease");
    assert!(lease.is_active(), "{lease:?}");
    assert_eq!(lease.hwaddr, mac);

    // The script put the address on c0, so the renewal is a unicast REQUEST.
    let renew = client.wait_for(&["RENEW"], bound.len(), Duration::from_secs(20))?;
    assert_eq!(renew.addr("new_ip_address"), Some(addr));

    client.release(topo.client(0))?;
    let released = process::wait_until(Duration::from_secs(5), || {
        kea.leases()
            .ok()
            .filter(|l| l.get(&addr).is_some_and(|l| !l.is_active()))
    });
    assert!(
        released.is_some(),
        "Kea still holds {addr}: {:?}",
        kea.leases()
    );
    assert!(!client.is_running());
    Ok(())
}

#[test]
fn udhcpc_gets_a_kea_lease() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp4", "udhcpc", "ip"])?;
    let topo = Topology::new(1)?;
    let kea = Kea::start(
        topo.srv(),
        &KeaOptions::new(SERVER_IF, topo.subnet(), pool()),
    )?;
    let run = udhcpc_once(topo.client(0), CLIENT_IF, 5, &[])?;
    assert_eq!(run.code, Some(0), "{run:?}");
    let addr = run.leased_addr().expect("udhcpc reported a lease");
    assert!(in_pool(addr, pool()));
    let bound = run.bound().expect("bound event");
    assert_eq!(bound.addr("serverid"), Some(topo.server_addr()));
    assert_eq!(bound.var("lease"), Some("3600"));
    assert_eq!(bound.var("subnet"), Some("255.255.255.0"));
    assert!(
        kea.leases()?
            .get(&addr)
            .is_some_and(twinlease_tests::kea::KeaLease::is_active)
    );
    Ok(())
}

#[test]
fn perfdhcp_capture_and_kea_agree() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp4", "perfdhcp", "tcpdump", "ip"])?;
    let topo = Topology::new(1)?;
    let wide = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 250));
    let mut opts = KeaOptions::new(SERVER_IF, topo.subnet(), wide);
    opts.multi_threading = Some((2, 64));
    opts.severity = "WARN".into();
    let kea = Kea::start(topo.srv(), &opts)?;
    let relay = topo.assign_client_addr(0)?;

    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("acks.pcap");
    let cap = Capture::start(topo.client(0), CLIENT_IF, &pcap)?;
    let mut p = PerfdhcpOptions::new(CLIENT_IF, 200);
    p.rate = Some(100);
    p.num_requests = Some(200);
    p.unique = true;
    let report = run_perfdhcp(topo.client(0), &p)?;
    let summary = cap.stop()?;
    report.require_clean()?;
    assert_eq!(report.acks(), 200, "{}", report.raw);
    assert_eq!(report.exit_code, Some(0));
    assert!(report.rate.is_some_and(|r| r > 50.0), "{:?}", report.rate);
    assert_eq!(summary.dropped_by_kernel, Some(0), "{summary:?}");

    let msgs = capture::read_pcap(&pcap)?;
    assert!(msgs.iter().all(|m| m.op != 2 || m.giaddr == relay));
    let acks = capture::acks_in(&pcap)?;
    assert_eq!(acks.len(), 200);
    let by_addr: BTreeMap<Ipv4Addr, String> =
        acks.iter().map(|(a, m)| (*a, m.to_string())).collect();
    let macs: BTreeSet<String> = by_addr.values().cloned().collect();
    assert_eq!(by_addr.len(), 200, "an address was ACKed twice");
    assert_eq!(macs.len(), 200, "a client got two addresses");

    let leases = kea.leases()?;
    for (addr, mac) in &by_addr {
        let l = leases
            .get(addr)
            .unwrap_or_else(|| panic!("{addr} not in Kea's store"));
        assert!(l.is_active());
        assert_eq!(&l.hwaddr, mac);
    }
    assert_eq!(leases.values().filter(|l| l.is_active()).count(), 200);
    Ok(())
}

#[test]
fn bridged_topology_serves_every_client_namespace() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp4", "udhcpc", "ip"])?;
    let topo = Topology::new(3)?;
    let _kea = Kea::start(
        topo.srv(),
        &KeaOptions::new(SERVER_IF, topo.subnet(), pool()),
    )?;
    let mut got = BTreeSet::new();
    for i in 0..topo.n_clients() {
        let run = udhcpc_once(topo.client(i), CLIENT_IF, 5, &[])?;
        let addr = run
            .leased_addr()
            .unwrap_or_else(|| panic!("client {i}: {run:?}"));
        got.insert(addr);
    }
    assert_eq!(
        got.len(),
        3,
        "each namespace has its own MAC, so its own lease"
    );
    Ok(())
}

#[test]
fn benchmark_subnet_topology_has_room_for_load() -> Result<()> {
    require_root!(Ok(()));
    let net = Ipv4Net::benchmark_net();
    assert!(net.host_count() > 100_000);
    let topo = Topology::with_subnet(1, net)?;
    let addrs = topo.srv().ip(&["-4", "-o", "addr", "show", SERVER_IF])?;
    assert!(addrs.contains("198.18.0.1/15"), "{addrs}");
    Ok(())
}

fn netns_exists(name: &str) -> bool {
    netns::ip(&["netns", "list"])
        .is_ok_and(|l| l.lines().any(|x| x.split_whitespace().next() == Some(name)))
}

#[test]
fn guards_remove_what_they_create() -> Result<()> {
    require_root!(Ok(()));
    let (a_name, b_name, pid);
    {
        let a = Netns::create("ga")?;
        let b = Netns::create("gb")?;
        let _veth = VethPair::create(&a, "x0", &b, "y0", 2)?;
        a.add_addr("x0", "203.0.113.1/24")?;
        b.add_addr("y0", "203.0.113.2/24")?;
        b.exec_ok(
            "ping",
            &["-c", "1", "-W", "2", "203.0.113.1"],
            Duration::from_secs(10),
        )?;
        let log = tempfile::NamedTempFile::new()?;
        let mut sleeper = a.spawn("sleep", "sleep", &["600"], log.path())?;
        pid = sleeper.pid();
        assert!(sleeper.is_running());
        a_name = a.name().to_owned();
        b_name = b.name().to_owned();
        assert!(netns_exists(&a_name) && netns_exists(&b_name));
        // A panic inside the scope must clean up just the same.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _c = Netns::create("gc").expect("namespace");
            panic!("deliberate");
        }));
        assert!(caught.is_err());
    }
    assert!(!netns_exists(&a_name) && !netns_exists(&b_name));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let leftovers = netns::ip(&["netns", "list"])?;
    let mine = format!("tl{}-", std::process::id());
    assert!(
        !leftovers
            .lines()
            .any(|l| l.starts_with(&mine) && l.contains("-gc")),
        "{leftovers}"
    );
    Ok(())
}

#[test]
fn commands_time_out_and_children_die_on_drop() -> Result<()> {
    let start = std::time::Instant::now();
    let r = process::run(
        std::process::Command::new("sleep").arg("30"),
        Duration::from_millis(300),
    );
    assert!(r.is_err());
    assert!(start.elapsed() < Duration::from_secs(5));
    let out = process::run(
        std::process::Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
        Duration::from_secs(10),
    )?;
    assert_eq!(out.code(), Some(3));
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );

    let log = tempfile::NamedTempFile::new()?;
    // Ignores SIGTERM: the guard must fall back to SIGKILL after the grace period.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "trap '' TERM; echo started; sleep 600 & wait"]);
    let guard =
        ChildGuard::spawn("stubborn", &mut cmd, log.path())?.with_grace(Duration::from_millis(300));
    let pid = guard.pid();
    assert!(
        process::wait_until(Duration::from_secs(5), || guard
            .log_text()
            .contains("started")
            .then_some(()))
        .is_some()
    );
    drop(guard);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    Ok(())
}
