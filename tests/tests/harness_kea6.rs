//! Proves the DHCPv6 harness against a real server, Kea's kea-dhcp6: the IPv6 preparation
//! of the topology (DAD, link-local addresses, bridge multicast), the `dhclient -6` driver
//! for addresses and delegated prefixes, perfdhcp `-6` direct and relayed, and the report
//! parser. The twinlease DHCPv6 end-to-end tests reuse exactly these pieces.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::time::Duration;

use twinlease_tests::clients6::{Dhclient6, Dhcp6Mode};
use twinlease_tests::kea6::{Kea6, Kea6Options};
use twinlease_tests::perfdhcp::{Lease6Kind, PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::process;
use twinlease_tests::topology::{
    CLIENT_IF, PD_DELEGATED_LEN, PD_PREFIX6, SERVER_ADDR6, SERVER_IF, Topology,
};
use twinlease_tests::{Result, require_programs, require_root};

fn in_pool(a: Ipv6Addr, o: &Kea6Options) -> bool {
    (o.pool.0..=o.pool.1).contains(&a)
}

/// Whether `p`/`len` is a delegated prefix of the test pd-pool.
fn in_pd_pool(p: Ipv6Addr, len: u8) -> bool {
    let (pool, pool_len) = PD_PREFIX6;
    let mask = u128::MAX << (128 - u32::from(pool_len));
    len == PD_DELEGATED_LEN
        && p.to_bits() & mask == pool.to_bits()
        && p.to_bits() & !(u128::MAX << (128 - u32::from(len))) == 0
}

#[test]
fn enable_ipv6_gives_usable_link_locals_and_the_server_address() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["ip", "sysctl"])?;
    let topo = Topology::new(2)?;
    let ll = topo.enable_ipv6()?;
    assert!(ll.is_unicast_link_local(), "{ll}");
    assert_eq!(topo.server_link_local()?, Some(ll));
    assert!(
        topo.srv()
            .ipv6_addrs(SERVER_IF, "global")?
            .contains(&SERVER_ADDR6)
    );
    // Idempotent: a second call neither fails nor adds the address twice.
    assert_eq!(topo.enable_ipv6()?, ll);
    let c1 = topo.assign_client_addr6(1)?;
    assert_eq!(c1, "2001:db8:1::3".parse::<Ipv6Addr>().unwrap());
    // Across the bridge the server answers the client's link-local and global address.
    let out = topo.client(1).exec_ok(
        "ping",
        &["-6", "-c", "1", "-W", "2", &SERVER_ADDR6.to_string()],
        Duration::from_secs(10),
    )?;
    assert!(out.contains("1 received"), "{out}");
    Ok(())
}

#[test]
fn dhclient6_gets_and_releases_a_kea_address() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp6", "dhclient", "ip"])?;
    let topo = Topology::new(1)?;
    topo.enable_ipv6()?;
    let opts = Kea6Options::new(SERVER_IF);
    let kea = Kea6::start(topo.srv(), &opts)?;
    let mut client = Dhclient6::start(topo.client(0), CLIENT_IF, Dhcp6Mode::Address, 20)?;
    let lease = client.wait_bound(Duration::from_secs(30))?;
    let addr = lease.address.expect("an address");
    assert!(in_pool(addr, &opts), "{addr} outside the pool");
    assert_eq!(lease.prefix, None);
    assert_eq!(lease.valid_lifetime, Some(opts.valid_lifetime));
    assert_eq!(lease.preferred_lifetime, Some(opts.preferred_lifetime));
    // The script put the address on c0.
    assert!(
        topo.client(0)
            .ipv6_addrs(CLIENT_IF, "global")?
            .contains(&addr)
    );
    let stored = kea.leases()?;
    let row = stored.get(&(addr, 128)).expect("Kea stored the lease");
    assert!(row.is_active() && !row.is_prefix, "{row:?}");

    client.release(topo.client(0))?;
    let released = process::wait_until(Duration::from_secs(5), || {
        kea.leases()
            .ok()
            .filter(|l| l.get(&(addr, 128)).is_some_and(|r| !r.is_active()))
    });
    assert!(
        released.is_some(),
        "Kea still holds {addr}: {:?}",
        kea.leases()
    );
    assert!(!client.is_running());
    assert!(
        !topo
            .client(0)
            .ipv6_addrs(CLIENT_IF, "global")?
            .contains(&addr)
    );
    Ok(())
}

#[test]
fn dhclient6_gets_and_releases_a_delegated_prefix() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp6", "dhclient", "ip"])?;
    let topo = Topology::new(1)?;
    topo.enable_ipv6()?;
    let kea = Kea6::start(topo.srv(), &Kea6Options::new(SERVER_IF))?;
    let mut client = Dhclient6::start(topo.client(0), CLIENT_IF, Dhcp6Mode::Prefix, 20)?;
    let lease = client.wait_bound(Duration::from_secs(30))?;
    assert_eq!(lease.address, None);
    let (prefix, len) = lease.prefix.expect("a prefix");
    assert!(
        in_pd_pool(prefix, len),
        "{prefix}/{len} outside the pd-pool"
    );
    let row = kea.leases()?.get(&(prefix, len)).cloned();
    assert!(
        row.as_ref().is_some_and(|r| r.is_active() && r.is_prefix),
        "{row:?}"
    );

    client.release(topo.client(0))?;
    let released = process::wait_until(Duration::from_secs(5), || {
        kea.leases()
            .ok()
            .filter(|l| l.get(&(prefix, len)).is_some_and(|r| !r.is_active()))
    });
    assert!(released.is_some(), "Kea still delegates {prefix}/{len}");
    Ok(())
}

#[test]
fn two_dhclient6_behind_a_bridge_get_distinct_addresses_and_prefixes() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp6", "dhclient", "ip"])?;
    let topo = Topology::new(2)?;
    topo.enable_ipv6()?;
    let _kea = Kea6::start(topo.srv(), &Kea6Options::new(SERVER_IF))?;
    let mut a = Dhclient6::start(topo.client(0), CLIENT_IF, Dhcp6Mode::AddressAndPrefix, 20)?;
    let mut b = Dhclient6::start(topo.client(1), CLIENT_IF, Dhcp6Mode::AddressAndPrefix, 20)?;
    let la = a.wait_bound(Duration::from_secs(30))?;
    let lb = b.wait_bound(Duration::from_secs(30))?;
    assert!(la.address.is_some() && la.prefix.is_some(), "{la:?}");
    assert_ne!(la.address, lb.address);
    assert_ne!(la.prefix, lb.prefix);
    assert_eq!(la.server_id, lb.server_id);
    Ok(())
}

#[test]
fn perfdhcp6_address_and_prefix_without_drops_against_multithreaded_kea() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp6", "perfdhcp", "ip"])?;
    let topo = Topology::new(1)?;
    topo.enable_ipv6()?;
    let mut opts = Kea6Options::new(SERVER_IF);
    opts.multi_threading = Some((2, 64));
    opts.severity = "WARN".into();
    let kea = Kea6::start(topo.srv(), &opts)?;
    let mut p = PerfdhcpOptions::new_v6(CLIENT_IF, 5000, Lease6Kind::AddressAndPrefix);
    p.rate = Some(200);
    p.period_secs = Some(3);
    p.unique = true;
    let report = run_perfdhcp(topo.client(0), &p)?;
    report.require_clean()?;
    assert!(report.solicit_advertise.is_some() && report.request_reply.is_some());
    assert!(report.acks() >= 400, "{}", report.raw);
    assert!(report.failed_fraction() < 1e-9);

    // Every completed exchange left one address and one /56 in Kea's lease file.
    let leases = kea.leases()?;
    let addrs: BTreeSet<Ipv6Addr> = leases
        .values()
        .filter(|l| l.is_active() && !l.is_prefix)
        .map(|l| l.addr)
        .collect();
    let prefixes: BTreeSet<Ipv6Addr> = leases
        .values()
        .filter(|l| l.is_active() && l.is_prefix)
        .map(|l| l.addr)
        .collect();
    assert!(addrs.iter().all(|a| in_pool(*a, &opts)));
    assert!(
        leases
            .values()
            .filter(|l| l.is_prefix)
            .all(|l| in_pd_pool(l.addr, l.prefix_len))
    );
    // Clients drawn again among the 5000 renew their lease instead of getting a new one.
    let acks = usize::try_from(report.acks()).unwrap_or(usize::MAX);
    assert!(
        addrs.len() <= acks && addrs.len() * 10 >= acks * 8,
        "{} of {acks}",
        addrs.len()
    );
    assert_eq!(addrs.len(), prefixes.len());
    Ok(())
}

#[test]
fn relayed_perfdhcp6_gets_replies() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["kea-dhcp6", "perfdhcp", "ip"])?;
    let topo = Topology::new(1)?;
    topo.enable_ipv6()?;
    // The relay's link-address (its global address) selects the subnet (RFC 8415 §9).
    topo.assign_client_addr6(0)?;
    let _kea = Kea6::start(topo.srv(), &Kea6Options::new(SERVER_IF))?;
    let mut p = PerfdhcpOptions::new_v6(CLIENT_IF, 200, Lease6Kind::AddressOnly);
    p.relay_levels = Some(1);
    p.rate = Some(50);
    p.period_secs = Some(2);
    let report = run_perfdhcp(topo.client(0), &p)?;
    assert!(report.raw.contains("-A 1"), "{}", report.raw);
    report.require_clean()?;
    assert!(report.acks() >= 50, "{}", report.raw);
    Ok(())
}
