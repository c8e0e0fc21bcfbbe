//! End-to-end tests (DHCPv6) of the `twinlease` server with real clients in namespaces:
//! dhclient -6 (bind, renew, release, DNS servers), dhclient -6 -P (a delegated /56, on the
//! socket and the XDP path), perfdhcp -6 with a store that matches the wire, relayed traffic
//! (RELAY-REPL, Interface-Id echo) and a crash (SIGKILL) under load that must lose no lease a
//! REPLY granted. The pieces are the ones `harness_kea6.rs` validates against kea-dhcp6.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use twinlease_tests::capture::{self, Capture, Dhcp6Message, msg6};
use twinlease_tests::clients6::{Dhclient6, Dhcp6Mode};
use twinlease_tests::perfdhcp::{Lease6Kind, PerfdhcpOptions, PerfdhcpReport, run_perfdhcp};
use twinlease_tests::process;
use twinlease_tests::topology::{
    CLIENT_IF, Ipv4Net, PD_DELEGATED_LEN, PD_PREFIX6, SERVER_ADDR6, Topology,
};
use twinlease_tests::twinlease::{self, LeaseRecord6, Subnet6, Twinlease, TwinleaseConfig};
use twinlease_tests::{Error, Result, require_programs, require_root};

/// A twinlease server serving [`Subnet6::standard`] (plus `keys` in its `[[subnet6]]` table)
/// in a fresh IPv6-ready topology. Field order is drop order: the server stops before the
/// namespaces go.
struct Lab6 {
    server: Option<Twinlease>,
    topo: Topology,
    bin: PathBuf,
    dir: TempDir,
}

impl Lab6 {
    fn new(n_clients: usize, io: &str, keys: &str) -> Result<Self> {
        let bin = twinlease::binary()?;
        let subnet = Ipv4Net::test_net_1();
        // The XDP path wants a queue per worker.
        let queues = if io == "xdp" { 2 } else { 1 };
        let topo = Topology::build(n_clients, subnet, queues)?;
        topo.enable_ipv6()?;
        let dir = tempfile::Builder::new().prefix("tl-e2e6").tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let pool = (subnet.host(100), subnet.host(250));
        let mut config = TwinleaseConfig::standard(&data, subnet, pool, 3600);
        io.clone_into(&mut config.io);
        config.subnets6.push(Subnet6::standard());
        let toml = config.to_toml();
        let head = "[[subnet6]]\nid = 1\n";
        assert!(toml.contains(head), "{toml}");
        let toml = toml.replacen(head, &format!("{head}{keys}\n"), 1);
        std::fs::write(dir.path().join("twinlease.toml"), toml)?;
        let mut lab = Self {
            server: None,
            topo,
            bin,
            dir,
        };
        lab.start("twinlease.log")?;
        Ok(lab)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("twinlease.toml")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start(&mut self, log: &str) -> Result<()> {
        let log = self.dir.path().join(log);
        self.server = Some(Twinlease::start_on_port(
            self.topo.srv(),
            &self.bin,
            &self.config(),
            &log,
            547,
        )?);
        Ok(())
    }

    /// Stops the server (SIGTERM, must exit 0): `twinlease leases` reads the store only
    /// while no server holds it.
    /// Returns the server's log.
    fn stop(&mut self) -> Result<String> {
        match self.server.take() {
            Some(mut server) => {
                server.stop()?;
                Ok(server.log())
            }
            None => Ok(String::new()),
        }
    }

    /// The v6 leases keyed by (address or prefix, length); fails when one is listed twice.
    fn leases6(&self) -> Result<BTreeMap<(Ipv6Addr, u8), LeaseRecord6>> {
        let mut out = BTreeMap::new();
        for l in twinlease::leases6(&self.bin, &self.data_dir())? {
            if let Some(prev) = out.insert((l.addr, l.prefix_len), l.clone()) {
                return Err(Error(format!("listed twice: {prev:?} and {l:?}")));
            }
        }
        Ok(out)
    }
}

/// The number after `key=` in the last line of `log` that has it (colour codes ignored).
fn logged_number(log: &str, key: &str) -> Option<u64> {
    let needle = format!("{key}=");
    log.lines().rev().find_map(|l| {
        let at = l.find(&needle)? + needle.len();
        let digits: String = l[at..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

fn in_pool(a: Ipv6Addr) -> bool {
    let (first, last) = Subnet6::standard().pools[0];
    (first..=last).contains(&a)
}

/// Whether `p`/`len` is a delegated prefix of the test pd-pool.
fn in_pd_pool(p: Ipv6Addr, len: u8) -> bool {
    let (pool, pool_len) = PD_PREFIX6;
    let mask = u128::MAX << (128 - u32::from(pool_len));
    len == PD_DELEGATED_LEN
        && p.to_bits() & mask == pool.to_bits()
        && p.to_bits() & !(u128::MAX << (128 - u32::from(len))) == 0
}

/// What the REPLYs in `replies` granted (valid lifetime > 0): (address or prefix, length)
/// → client key. Fails when one is granted to two clients.
fn granted(replies: &[Dhcp6Message]) -> Result<BTreeMap<(Ipv6Addr, u8), String>> {
    let mut out: BTreeMap<(Ipv6Addr, u8), String> = BTreeMap::new();
    for m in replies {
        let client = m
            .client_key()
            .ok_or_else(|| Error(format!("REPLY without CLIENTID: {m:?}")))?;
        for e in m.addrs.iter().chain(&m.prefixes).filter(|e| e.valid > 0) {
            if let Some(prev) = out.insert((e.addr, e.prefix_len), client.clone())
                && prev != client
            {
                return Err(Error(format!(
                    "{}/{} granted to {prev} and to {client}",
                    e.addr, e.prefix_len
                )));
            }
        }
    }
    Ok(out)
}

/// Every wire grant is an active lease of that client in the store.
fn store_holds(
    store: &BTreeMap<(Ipv6Addr, u8), LeaseRecord6>,
    wire: &BTreeMap<(Ipv6Addr, u8), String>,
) -> Result<()> {
    for ((addr, len), client) in wire {
        let l = store.get(&(*addr, *len)).ok_or_else(|| {
            Error(format!(
                "granted {addr}/{len} ({client}) is missing from the store"
            ))
        })?;
        let kind = if *len == 128 { "na" } else { "pd" };
        if l.state != "active" || l.client.as_deref() != Some(client.as_str()) || l.kind != kind {
            return Err(Error(format!(
                "granted {addr}/{len} to {client}, store has {l:?}"
            )));
        }
    }
    Ok(())
}

fn require_no_drops(report: &PerfdhcpReport) -> Result<()> {
    report.require_clean()?;
    let drops = |s: Option<&twinlease_tests::perfdhcp::ExchangeStats>| s.map_or(1, |s| s.drops);
    if drops(report.solicit_advertise.as_ref()) + drops(report.request_reply.as_ref()) != 0 {
        return Err(Error(format!("drops:\n{}", report.raw)));
    }
    Ok(())
}

/// dhclient -6 -P in a lab with `io`: a /56 of the pd-pool, active in the store for the
/// DUID the client sent.
fn dhclient_gets_a_delegated_prefix(io: &str) -> Result<()> {
    let mut lab = Lab6::new(1, io, "")?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("pd.pcap");
    let cap = Capture::start_v6(lab.topo.client(0), CLIENT_IF, &pcap)?;
    let mut client = Dhclient6::start(lab.topo.client(0), CLIENT_IF, Dhcp6Mode::Prefix, 20)?;
    let lease = client.wait_bound(Duration::from_secs(30))?;
    assert_eq!(lease.address, None);
    let (prefix, len) = lease.prefix.expect("a prefix");
    assert!(
        in_pd_pool(prefix, len),
        "{prefix}/{len} outside the pd-pool"
    );
    assert_eq!(lease.valid_lifetime, Some(4000));
    assert_eq!(lease.preferred_lifetime, Some(3000));
    drop(client);
    cap.stop()?;
    let replies = capture::replies6_to(&pcap, msg6::REQUEST)?;
    let wire = granted(&replies)?;
    assert_eq!(
        wire.len(),
        1,
        "{replies:?} in {:?}",
        capture::read_pcap6(&pcap)?
    );
    let duid = wire.get(&(prefix, len)).expect("the REPLY granted it");

    let log = lab.stop()?;
    if io == "xdp" {
        // SOLICIT and REQUEST came in, ADVERTISE and REPLY went out through AF_XDP.
        for key in ["received_xdp", "sent_xdp"] {
            let n = logged_number(&log, key).unwrap_or(0);
            assert!(n >= 2, "{key}={n} in the log:\n{log}");
        }
    }
    let store = lab.leases6()?;
    store_holds(&store, &wire)?;
    let row = &store[&(prefix, len)];
    assert_eq!((row.subnet_id, row.kind.as_str()), (1, "pd"), "{row:?}");
    assert!(
        row.cltt.is_some_and(|c| row.expires > c),
        "{row:?} for {duid}"
    );
    Ok(())
}

#[test]
fn dhclient6_gets_renews_and_releases_an_address() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "tcpdump", "ip"])?;
    // Short lifetimes: dhclient renews after T1 = 3 s.
    let keys = "preferred-lifetime = 6\nvalid-lifetime = 10\nrenew-time = 3\n\
                rebind-time = 5\ndns-servers = [\"2001:db8::53\", \"2001:db8::54\"]";
    let mut lab = Lab6::new(1, "socket", keys)?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("dhclient6.pcap");
    let cap = Capture::start_v6(lab.topo.client(0), CLIENT_IF, &pcap)?;
    let mut client = Dhclient6::start(lab.topo.client(0), CLIENT_IF, Dhcp6Mode::Address, 20)?;
    let lease = client.wait_bound(Duration::from_secs(30))?;
    let addr = lease.address.expect("an address");
    assert!(in_pool(addr), "{addr} outside the pool");
    assert_eq!(lease.valid_lifetime, Some(10));
    assert_eq!(lease.preferred_lifetime, Some(6));
    let events = client.events();
    let bound = events.last().expect("a bound event");
    // dhclient asks for option 23 (its ORO) and records what it got.
    let dns = bound.var("new_dhcp6_name_servers").unwrap_or_default();
    assert!(
        dns.contains("2001:db8::53") && dns.contains("2001:db8::54"),
        "name servers {dns:?} in {bound:?}"
    );

    // A RENEW6 event keeping the address, after T1 = 3 s.
    let seen = events.len();
    let renew = process::wait_until(Duration::from_secs(20), || {
        client
            .events()
            .into_iter()
            .skip(seen)
            .find(|e| e.reason == "RENEW6")
    });
    let renew = renew.ok_or_else(|| {
        Error(format!(
            "no RENEW6 within 20 s: {:?}\n{}",
            client.events(),
            client.log()
        ))
    })?;
    assert_eq!(
        renew.var("new_ip6_address"),
        Some(addr.to_string().as_str())
    );
    client.release(lab.topo.client(0))?;
    cap.stop()?;

    // On the wire: a RENEW for the address, answered by a REPLY extending it with the
    // DNS servers; the REQUEST's REPLY granted it to the same DUID.
    let all = capture::read_pcap6(&pcap)?;
    let renews: Vec<&Dhcp6Message> = all
        .iter()
        .filter(|m| m.msg_type == msg6::RENEW && m.addrs.iter().any(|e| e.addr == addr))
        .collect();
    assert!(!renews.is_empty(), "no RENEW captured: {all:?}");
    let renew_replies = capture::replies6_to(&pcap, msg6::RENEW)?;
    assert!(
        renew_replies
            .iter()
            .any(|r| r.addrs.iter().any(|e| e.addr == addr && e.valid == 10)),
        "no REPLY to a RENEW extends {addr}: {renew_replies:?}"
    );
    let dns_expected: Vec<Ipv6Addr> = vec![
        "2001:db8::53".parse().expect("address"),
        "2001:db8::54".parse().expect("address"),
    ];
    assert!(
        renew_replies
            .iter()
            .all(|r| r.dns_servers.as_ref() == Some(&dns_expected)),
        "{renew_replies:?}"
    );
    let wire = granted(&capture::replies6_to(&pcap, msg6::REQUEST)?)?;
    let duid = wire
        .get(&(addr, 128))
        .ok_or_else(|| Error(format!("no REPLY to a REQUEST granted {addr}: {wire:?}")))?
        .clone();
    assert!(
        all.iter()
            .any(|m| m.msg_type == msg6::RELEASE && m.addrs.iter().any(|e| e.addr == addr)),
        "no RELEASE captured"
    );

    lab.stop()?;
    let store = lab.leases6()?;
    let row = store
        .get(&(addr, 128))
        .ok_or_else(|| Error(format!("{addr} missing from the store: {store:?}")))?;
    assert_eq!(row.state, "released", "{row:?}");
    assert_eq!(row.client.as_deref(), Some(duid.as_str()), "{row:?}");
    assert_eq!((row.kind.as_str(), row.subnet_id), ("na", 1), "{row:?}");
    Ok(())
}

#[test]
fn dhclient6_gets_a_delegated_prefix() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "tcpdump", "ip"])?;
    dhclient_gets_a_delegated_prefix("socket")
}

#[test]
fn dhclient6_gets_a_delegated_prefix_through_xdp() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["dhclient", "tcpdump", "ip"])?;
    dhclient_gets_a_delegated_prefix("xdp")
}

#[test]
fn perfdhcp6_store_matches_the_replies() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "tcpdump", "ip"])?;
    let mut lab = Lab6::new(1, "socket", "")?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("perf6.pcap");
    let cap = Capture::start_v6(lab.topo.client(0), CLIENT_IF, &pcap)?;
    let mut p = PerfdhcpOptions::new_v6(CLIENT_IF, 300, Lease6Kind::AddressAndPrefix);
    p.rate = Some(100);
    p.num_requests = Some(300);
    p.unique = true;
    let report = run_perfdhcp(lab.topo.client(0), &p)?;
    let summary = cap.stop()?;
    require_no_drops(&report)?;
    assert_eq!(report.acks(), 300, "{}", report.raw);
    assert_eq!(summary.dropped_by_kernel, Some(0), "{summary:?}");

    let replies = capture::replies6_to(&pcap, msg6::REQUEST)?;
    assert_eq!(replies.len(), 300);
    for r in &replies {
        let (a, p) = (&r.addrs, &r.prefixes);
        assert!(
            a.len() == 1 && p.len() == 1 && a[0].valid > 0 && p[0].valid > 0,
            "{r:?}"
        );
        assert!(
            in_pool(a[0].addr) && in_pd_pool(p[0].addr, p[0].prefix_len),
            "{r:?}"
        );
    }
    let wire = granted(&replies)?;
    let clients: BTreeSet<&String> = wire.values().collect();
    assert_eq!(
        wire.len(),
        clients.len() * 2,
        "one address and one prefix per client"
    );

    lab.stop()?;
    let store = lab.leases6()?;
    store_holds(&store, &wire)?;
    let active: BTreeSet<(Ipv6Addr, u8)> = store
        .values()
        .filter(|l| l.state == "active")
        .map(|l| (l.addr, l.prefix_len))
        .collect();
    let on_wire: BTreeSet<(Ipv6Addr, u8)> = wire.keys().copied().collect();
    assert_eq!(
        active, on_wire,
        "the store must hold exactly the granted leases"
    );
    Ok(())
}

/// Sends `datagram` from `[from]:547` inside network namespace `ns` to `[to]:547` and returns
/// the first answer (3 tries, 2 s each). Runs in its own thread, which alone enters `ns`.
fn relay_exchange(ns: &str, from: Ipv6Addr, to: Ipv6Addr, datagram: &[u8]) -> Result<Vec<u8>> {
    let path = format!("/var/run/netns/{ns}");
    let datagram = datagram.to_vec();
    std::thread::spawn(move || -> Result<Vec<u8>> {
        let f = std::fs::File::open(&path)?;
        // SAFETY: setns on a valid namespace fd changes only this thread's namespace.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(Error(format!(
                "setns {path}: {}",
                std::io::Error::last_os_error()
            )));
        }
        let sock = UdpSocket::bind(SocketAddrV6::new(from, 547, 0, 0))?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = vec![0u8; 2048];
        for _ in 0..3 {
            sock.send_to(&datagram, SocketAddrV6::new(to, 547, 0, 0))?;
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                buf.truncate(n);
                return Ok(buf);
            }
        }
        Err(Error::msg("no answer to the RELAY-FORW within 3 tries"))
    })
    .join()
    .map_err(|_| Error::msg("relay thread panicked"))?
}

fn opt6(code: u16, value: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend(
        u16::try_from(value.len())
            .expect("short option")
            .to_be_bytes(),
    );
    o.extend(value);
    o
}

#[test]
fn relayed_perfdhcp6_gets_relay_replies_and_interface_id_is_echoed() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "tcpdump", "ip"])?;
    let lab = Lab6::new(1, "socket", "")?;
    // The relay's link-address (its global address) selects the subnet (RFC 8415 §9).
    let relay_addr = lab.topo.assign_client_addr6(0)?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("relay6.pcap");
    let cap = Capture::start_v6(lab.topo.client(0), CLIENT_IF, &pcap)?;
    let mut p = PerfdhcpOptions::new_v6(CLIENT_IF, 200, Lease6Kind::AddressAndPrefix);
    p.relay_levels = Some(1);
    p.rate = Some(50);
    p.num_requests = Some(100);
    let report = run_perfdhcp(lab.topo.client(0), &p)?;
    assert!(report.raw.contains("-A 1"), "{}", report.raw);
    require_no_drops(&report)?;
    assert_eq!(report.acks(), 100, "{}", report.raw);

    // A relay of our own whose RELAY-FORW carries an Interface-Id (perfdhcp's has none).
    let interface_id = b"ge-0/0/1.200\x00\xff".to_vec();
    let mut solicit = vec![msg6::SOLICIT, 0xab, 0xcd, 0xef];
    solicit.extend(opt6(1, &[0, 3, 0, 1, 2, 0x5e, 0, 0, 0, 0x42]));
    solicit.extend(opt6(8, &[0, 0]));
    solicit.extend(opt6(3, &[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]));
    let mut forw = vec![msg6::RELAY_FORW, 0];
    let peer: Ipv6Addr = "fe80::5e:ff:fe00:42".parse().expect("address");
    forw.extend(relay_addr.octets());
    forw.extend(peer.octets());
    forw.extend(opt6(18, &interface_id));
    forw.extend(opt6(9, &solicit));
    let answer = relay_exchange(lab.topo.client(0).name(), relay_addr, SERVER_ADDR6, &forw)?;
    let summary = cap.stop()?;
    assert_eq!(summary.dropped_by_kernel, Some(0), "{summary:?}");

    let (relays, inner) = capture::parse_dhcp6(&answer).map_err(Error)?;
    assert_eq!(relays.len(), 1, "{answer:02x?}");
    let r = &relays[0];
    assert_eq!(r.msg_type, msg6::RELAY_REPL);
    assert_eq!(
        (r.hop_count, r.link_address, r.peer_address),
        (0, relay_addr, peer)
    );
    assert_eq!(
        r.interface_id.as_deref(),
        Some(interface_id.as_slice()),
        "Interface-Id not echoed byte for byte (RFC 8415 §19.3)"
    );
    assert_eq!(u8::from(inner.message_type), msg6::ADVERTISE);
    assert_eq!(inner.xid, 0x00ab_cdef);
    assert!(
        inner
            .ia_na()
            .first()
            .and_then(|ia| ia.hints().first())
            .is_some_and(|h| in_pool(h.address)),
        "{inner:?}"
    );

    // The wire: every perfdhcp message went up as RELAY-FORW and came back as RELAY-REPL
    // to the relay, with the forward's hop-count, link- and peer-address (and Interface-Id,
    // when there was one).
    let all = capture::read_pcap6(&pcap)?;
    let forwards: BTreeMap<u32, &Dhcp6Message> = all
        .iter()
        .filter(|m| {
            m.dport == 547 && m.relays.first().map(|r| r.msg_type) == Some(msg6::RELAY_FORW)
        })
        .map(|m| (m.xid, m))
        .collect();
    let answers: Vec<&Dhcp6Message> = all.iter().filter(|m| m.from_server()).collect();
    assert!(answers.len() >= 200, "{} answers captured", answers.len());
    assert!(
        forwards.len() >= 200,
        "{} RELAY-FORWs captured",
        forwards.len()
    );
    let with_id = forwards
        .values()
        .filter(|f| f.relays.first().is_some_and(|r| r.interface_id.is_some()))
        .count();
    println!(
        "perfdhcp RELAY-FORWs carrying an Interface-Id: {with_id} of {}",
        forwards.len()
    );
    for a in &answers {
        let f = forwards
            .get(&a.xid)
            .ok_or_else(|| Error(format!("no RELAY-FORW captured for {a:?}")))?;
        assert_eq!(f.relays.len(), 1, "{f:?}");
        assert_eq!(a.relays.len(), 1, "not a RELAY-REPL: {a:?}");
        let (fr, ar) = (&f.relays[0], &a.relays[0]);
        assert_eq!(ar.msg_type, msg6::RELAY_REPL);
        assert_eq!(
            (
                ar.hop_count,
                ar.link_address,
                ar.peer_address,
                &ar.interface_id
            ),
            (
                fr.hop_count,
                fr.link_address,
                fr.peer_address,
                &fr.interface_id
            ),
            "{a:?} answers {f:?}"
        );
        assert_eq!(a.ip_dst, relay_addr, "{a:?}");
    }
    Ok(())
}

#[test]
fn kill_9_under_v6_load_loses_no_granted_lease() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["perfdhcp", "tcpdump", "ip"])?;
    let mut lab = Lab6::new(1, "socket", "")?;
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("crash6.pcap");
    let cap = Capture::start_v6(lab.topo.client(0), CLIENT_IF, &pcap)?;
    let mut load = PerfdhcpOptions::new_v6(CLIENT_IF, 4000, Lease6Kind::AddressAndPrefix);
    load.rate = Some(500);
    load.num_requests = Some(4000);
    load.period_secs = Some(10);
    load.timeout = Duration::from_mins(1);
    let config = lab.config();
    let log = lab.dir.path().join("twinlease-restarted.log");
    let Lab6 {
        server, topo, bin, ..
    } = &mut lab;
    let topo: &Topology = topo;
    let (first, restarted) = std::thread::scope(|s| {
        let load_run = s.spawn(|| run_perfdhcp(topo.client(0), &load));
        std::thread::sleep(Duration::from_secs(3));
        // The crash: no chance to flush anything.
        let crashed = server.as_mut().expect("server started").kill9();
        std::thread::sleep(Duration::from_secs(1));
        let restarted =
            crashed.and_then(|()| Twinlease::start_on_port(topo.srv(), bin, &config, &log, 547));
        (load_run.join().expect("perfdhcp thread"), restarted)
    });
    let first = first?;
    lab.server = Some(restarted?);
    assert!(
        first.acks() > 500,
        "too few REPLYs to mean anything:\n{}",
        first.raw
    );

    // The restarted server serves new clients cleanly.
    let mut after = PerfdhcpOptions::new_v6(CLIENT_IF, 200, Lease6Kind::AddressAndPrefix);
    after.rate = Some(100);
    after.num_requests = Some(200);
    after.base_mac = Some("02:0c:99:00:00:00".into());
    require_no_drops(&run_perfdhcp(lab.topo.client(0), &after)?)?;
    let summary = cap.stop()?;
    assert_eq!(summary.dropped_by_kernel, Some(0), "{summary:?}");

    lab.stop()?;
    let wire = granted(&capture::replies6_to(&pcap, msg6::REQUEST)?)?;
    assert!(wire.len() >= 1400, "only {} grants on the wire", wire.len());
    // leases6 fails on anything listed twice; store_holds on any grant lost or moved.
    let store = lab.leases6()?;
    println!(
        "crash: {} REPLYs before/through the crash, {} grants on the wire, {} leases stored",
        first.acks(),
        wire.len(),
        store.len()
    );
    store_holds(&store, &wire)?;
    // No IA of a client holds two active addresses or prefixes.
    let mut per_client: BTreeMap<(String, bool, Option<u32>), usize> = BTreeMap::new();
    for l in store.values().filter(|l| l.state == "active") {
        *per_client
            .entry((l.client.clone().unwrap_or_default(), l.is_prefix(), l.iaid))
            .or_default() += 1;
    }
    let doubled: Vec<_> = per_client.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "clients bound twice: {doubled:?}");
    Ok(())
}
