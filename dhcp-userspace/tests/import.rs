//! `twinlease import`: Kea and ISC dhcpd fixtures converted into a configuration that loads
//! and a lease store that holds the clients' leases, with every unconverted construct reported
//! at its line.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use twinlease::config::{self, Config, Pool4, RawOption};
use twinlease::import::{ImportArgs, ImportError, Report, Source, import_at};
use twinlease::lease::{BindingState, ClientKey, IaKind, Lease4, Lease6};
use twinlease::pool::FreeMap;
use twinlease::pool::v6::Space6;
use twinlease::store;
use twinlease::wal::{Durability, WalOptions};

/// 2026-11-18 00:00:00 UTC: the fixtures' 2099 leases are active, their 2020 ones expired.
const NOW: u64 = 1_795_000_000;
/// 2099-01-01 00:00:00 UTC.
const Y2099: u32 = 4_070_908_800;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(name)
}

fn args(from: Source, dir: &Path, workers: usize) -> ImportArgs {
    ImportArgs {
        from,
        config: PathBuf::new(),
        config6: None,
        leases: None,
        leases6: None,
        out: dir.join("twinlease.toml"),
        data_dir: dir.join("data"),
        workers: Some(workers),
    }
}

fn kea_args(dir: &Path) -> ImportArgs {
    ImportArgs {
        config: data("kea-dhcp4.conf"),
        config6: Some(data("kea-dhcp6.conf")),
        leases: Some(data("kea-leases4.csv")),
        leases6: Some(data("kea-leases6.csv")),
        ..args(Source::Kea, dir, 2)
    }
}

fn isc_args(dir: &Path) -> ImportArgs {
    ImportArgs {
        config: data("dhcpd.conf"),
        leases: Some(data("dhcpd.leases")),
        ..args(Source::Isc, dir, 3)
    }
}

/// Every lease of the store in `dir`, opened as the server opens it.
fn stored(dir: &Path, workers: usize) -> (Vec<Lease4>, Vec<Lease6>) {
    let free = FreeMap::new(&[], workers, &|_| false).unwrap();
    let space6 = Arc::new(Space6::new(&[], workers, &[]).unwrap());
    let opts = WalOptions {
        segment_size: 64 << 20,
        durability: Durability::None,
    };
    let (stores, report) = store::open(dir, workers, opts, &free, &|_| false, &space6).unwrap();
    assert_eq!(report.shards.len(), workers);
    let mut v4: Vec<Lease4> = stores.iter().flat_map(|s| s.shard.iter()).collect();
    v4.sort_by_key(|l| l.addr);
    let mut v6: Vec<Lease6> = stores.iter().flat_map(|s| s.shard6.iter()).collect();
    v6.sort_by_key(|l| l.addr);
    // Each lease sits in the shard of its client key.
    for (w, s) in stores.iter().enumerate() {
        assert!(s.shard.iter().all(|l| l.client.shard(workers) == w));
        assert!(s.shard6.iter().all(|l| l.client.shard(workers) == w));
    }
    (v4, v6)
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn lease<'a>(all: &'a [Lease4], addr: &str) -> &'a Lease4 {
    all.iter()
        .find(|l| l.addr == v4(addr))
        .unwrap_or_else(|| panic!("no lease for {addr} in {all:?}"))
}

fn check_config_cli(path: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_twinlease"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_skipped(report: &Report, file: &str, line: usize, what: &str) {
    assert!(
        report.has_skipped(file, line, what),
        "expected `{what}` at {file}:{line} among:\n{report}"
    );
}

#[test]
fn kea_configuration_converts_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let a = kea_args(dir.path());
    let report = import_at(&a, NOW).unwrap();
    check_config_cli(&a.out);
    let cfg: Config = config::load(&a.out).unwrap();
    assert_eq!(cfg.server.workers, 2);
    assert_eq!(cfg.server.interfaces, ["eth1", "eth2"]);
    assert_eq!(cfg.server.decline_probation_secs, 3600);
    assert_eq!(
        cfg.subnet4.iter().map(|s| s.id).collect::<Vec<_>>(),
        [10, 11, 20]
    );

    // Shared network member: inherits relay, lifetime, NTP; global DNS and domain name.
    let s10 = cfg.subnet4_by_id(10).unwrap();
    assert_eq!(s10.subnet.to_string(), "100.64.0.0/22");
    assert_eq!(
        s10.pool,
        [Pool4 {
            start: v4("100.64.0.10"),
            end: v4("100.64.1.255")
        }]
    );
    assert_eq!(s10.routers, [v4("100.64.0.1")]);
    assert_eq!(s10.dns_servers, [v4("203.0.113.53"), v4("203.0.113.54")]);
    assert_eq!(s10.domain_name.as_deref(), Some("dyn.example.net"));
    assert_eq!(s10.relay_addresses, [v4("198.51.100.1")]);
    assert_eq!(
        (s10.lease_time, s10.renew_time, s10.rebind_time),
        (14_400, Some(1800), Some(5400))
    );
    assert!(s10.option.contains(&RawOption {
        code: 42,
        data: vec![203, 0, 113, 123]
    }));
    assert_eq!(s10.reservation.len(), 2);
    assert_eq!(
        s10.reservation[0].hw_address,
        Some([0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c])
    );
    assert_eq!(s10.reservation[0].hostname.as_deref(), Some("cust-4711"));
    assert_eq!(
        s10.reservation[1].client_id.as_deref(),
        Some(&[1, 0, 0x1b, 0x21, 0x0a, 0x0b, 0x0d][..])
    );
    assert_eq!(s10.reservation[1].address, v4("100.64.0.6"));

    // Second member: the prefix pool, its own DNS override; the shared relay address cannot
    // select two subnets, so it was dropped here and reported.
    let s11 = cfg.subnet4_by_id(11).unwrap();
    assert_eq!(
        s11.pool,
        [Pool4 {
            start: v4("100.64.4.128"),
            end: v4("100.64.4.255")
        }]
    );
    assert_eq!(s11.dns_servers, [v4("203.0.113.55")]);
    assert!(s11.relay_addresses.is_empty());
    assert_skipped(&report, "kea-dhcp4.conf", 33, "relay address 198.51.100.1");

    let s20 = cfg.subnet4_by_id(20).unwrap();
    assert_eq!(s20.interface.as_deref(), Some("eth1"));
    assert_eq!(
        (s20.lease_time, s20.renew_time, s20.rebind_time),
        (600, Some(200), Some(400))
    );
    let codes: Vec<u8> = s20.option.iter().map(|o| o.code).collect();
    assert_eq!(codes, [66, 224, 26]);
    assert_eq!(s20.option[0].data, b"tftp.example.net");
    assert_eq!(s20.option[1].data, [1, 2, 3]);
    assert_eq!(s20.option[2].data, 1492u16.to_be_bytes());
    assert_eq!(s20.reservation.len(), 1);
    assert_eq!(s20.reservation[0].address, v4("10.250.0.8"));

    // DHCPv6.
    assert_eq!(cfg.subnet6.len(), 2);
    let s1 = cfg.subnet6_by_id(1).unwrap();
    assert_eq!(s1.prefix.to_string(), "2001:db8:1::/64");
    assert!(s1.rapid_commit);
    assert_eq!(s1.pool.len(), 2);
    assert_eq!(s1.pool[1].start, v6("2001:db8:1:0:1::"));
    assert_eq!(s1.pool[1].end, v6("2001:db8:1:0:1:ffff:ffff:ffff"));
    assert_eq!(s1.pd_pool[0].prefix.to_string(), "2001:db8:8000::/40");
    assert_eq!(s1.pd_pool[0].delegated_len, 56);
    assert_eq!(
        s1.pd_pool[0].excluded.unwrap().to_string(),
        "2001:db8:8000:ff::/64"
    );
    assert_eq!(s1.dns_servers, [v6("2001:db8::53"), v6("2001:db8::54")]);
    assert_eq!(s1.domain_search, ["dyn.example.net", "example.net"]);
    assert_eq!((s1.preferred_lifetime, s1.valid_lifetime), (3000, 4000));
    assert_eq!(s1.reservation[0].address, Some(v6("2001:db8:1::10")));
    assert_eq!(
        s1.reservation[0].prefix.unwrap().to_string(),
        "2001:db8:8000:100::/56"
    );
    assert_eq!(s1.option[0].code, 31);
    let s2 = cfg.subnet6_by_id(2).unwrap();
    assert_eq!(s2.interface_id.as_deref(), Some(&b"ge-0/0/1.200"[..]));
    assert_eq!(
        (s2.preferred_lifetime, s2.valid_lifetime),
        (86_400, 172_800)
    );
    assert_eq!(
        (s2.renew_time, s2.rebind_time),
        (Some(43_200), Some(69_120))
    );

    // Everything not converted, at its line.
    for (line, what) in [
        (8, "lease-database"),
        (23, "client-classes"),
        (26, "hooks-libraries"),
        (27, "high-availability"),
        (29, "dhcp-ddns"),
        (31, "shared-network residential"),
        (70, "pool client-class"),
        (76, "option foo-bar"),
        (80, "reservation by duid"),
        (83, "ddns-send-updates"),
        (86, "loggers"),
    ] {
        assert_skipped(&report, "kea-dhcp4.conf", line, what);
    }
    // Kea HA is reported with its reason; everything else still converts.
    assert!(
        report.not_converted.iter().any(
            |u| u.what.contains("high-availability") && u.reason.contains("different protocol")
        ),
        "{report}"
    );
    assert!(cfg.failover.is_none());
    for (line, what) in [
        (14, "server-id"),
        (36, "reservation address 2001:db8:1::11"),
        (38, "reservation hostname"),
        (60, "relay"),
        (65, "hooks-libraries"),
    ] {
        assert_skipped(&report, "kea-dhcp6.conf", line, what);
    }
    // Converted settings are not reported.
    assert!(
        !report
            .not_converted
            .iter()
            .any(|u| u.what.contains("interface-mtu") || u.what.contains("routers")),
        "{report}"
    );
}

#[test]
fn kea_leases_land_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let a = kea_args(dir.path());
    let report = import_at(&a, NOW).unwrap();
    let (l4, l6) = stored(&a.data_dir, 2);

    let a10 = lease(&l4, "100.64.0.10");
    assert_eq!(a10.state, BindingState::Active);
    assert_eq!(a10.expires, Y2099);
    assert_eq!(a10.cltt, Y2099 - 14_400);
    assert_eq!(a10.subnet_id, 10);
    assert_eq!(
        a10.client,
        ClientKey::from_client_id(&[1, 0, 0x0c, 1, 2, 3, 4]).unwrap()
    );
    // Expired in the source: imported as expired.
    let a11 = lease(&l4, "100.64.0.11");
    assert_eq!(a11.state, BindingState::Expired);
    assert_eq!(a11.expires, 1_600_000_000);
    assert_eq!(
        a11.client,
        ClientKey::from_hw(1, &[0, 0x0c, 1, 2, 3, 5]).unwrap()
    );
    // Two lines for one address: the later one wins.
    let a12 = lease(&l4, "100.64.0.12");
    assert_eq!(a12.chaddr, [0, 0x0c, 1, 2, 3, 8]);
    assert_eq!(a12.expires, Y2099 + 3600);
    // Declined: quarantined.
    assert_eq!(lease(&l4, "100.64.4.130").state, BindingState::Abandoned);
    assert_eq!(lease(&l4, "10.250.0.100").subnet_id, 20);
    assert_eq!(l4.len(), 5, "{l4:?}");
    assert_skipped(&report, "kea-leases4.csv", 8, "lease 192.168.99.5");
    assert_skipped(&report, "kea-leases4.csv", 9, "lease record");

    assert_eq!(l6.len(), 3, "{l6:?}");
    let na = l6
        .iter()
        .find(|l| l.addr == v6("2001:db8:1::1000"))
        .unwrap();
    assert_eq!(
        (na.kind, na.state, na.iaid),
        (IaKind::Na, BindingState::Active, 1)
    );
    assert_eq!(na.preferred_until, Y2099 - 1000);
    assert_eq!(
        na.client,
        ClientKey::from_duid(&[0, 1, 0, 1, 0x32, 0x93, 0xf7, 0xc4, 0, 0x0c, 1, 2, 3, 4]).unwrap()
    );
    let pd = l6.iter().find(|l| l.kind == IaKind::Pd).unwrap();
    assert_eq!(
        (pd.addr, pd.prefix_len, pd.subnet_id),
        (v6("2001:db8:8000:200::"), 56, 1)
    );
    let old = l6.iter().find(|l| l.addr == v6("2001:db8:2::100")).unwrap();
    assert_eq!((old.state, old.subnet_id), (BindingState::Expired, 2));
    assert_skipped(&report, "kea-leases6.csv", 5, "lease 2001:db8:1::2000");
}

#[test]
fn isc_configuration_and_leases_convert() {
    let dir = tempfile::tempdir().unwrap();
    let a = isc_args(dir.path());
    let report = import_at(&a, NOW).unwrap();
    check_config_cli(&a.out);
    let cfg = config::load(&a.out).unwrap();
    assert_eq!(cfg.server.workers, 3);
    assert_eq!(
        cfg.subnet4
            .iter()
            .map(|s| (s.id, s.subnet.to_string()))
            .collect::<Vec<_>>(),
        [
            (1, "100.64.0.0/22".to_owned()),
            (2, "100.64.8.0/24".to_owned()),
            (3, "10.250.0.0/26".to_owned())
        ]
    );
    let s1 = &cfg.subnet4[0];
    assert_eq!(s1.pool[0].start, v4("100.64.0.10"));
    assert_eq!(s1.routers, [v4("100.64.0.1")]);
    assert_eq!(s1.dns_servers, [v4("203.0.113.53"), v4("203.0.113.54")]);
    assert_eq!(s1.domain_name.as_deref(), Some("example.net"));
    assert_eq!((s1.lease_time, s1.max_lease_time), (3600, Some(86_400)));
    assert_eq!(s1.option[0].code, 42);
    let s2 = &cfg.subnet4[1];
    assert_eq!(s2.lease_time, 86_400);
    assert_eq!(s2.pool[0].end, v4("100.64.8.199"));
    assert_eq!(s2.reservation.len(), 2);
    assert_eq!(
        s2.reservation[0].hw_address,
        Some([0, 0x1b, 0x21, 0x0a, 0x0b, 0x0c])
    );
    assert_eq!(s2.reservation[0].hostname.as_deref(), Some("cust-4711"));
    // The host declared outside any subnet lands in the subnet of its address; its uid is
    // decoded from the octal escapes.
    assert_eq!(s2.reservation[1].address, v4("100.64.8.11"));
    assert_eq!(
        s2.reservation[1].client_id.as_deref(),
        Some(&[1, 0, 0x1b, 0x21, 0x0a, 0x0b, 0x0d][..])
    );
    assert_eq!(cfg.subnet4[2].pool[0].start, v4("10.250.0.32"));

    for (line, what) in [
        (2, "authoritative"),
        (3, "ddns-update-style"),
        (17, "max-lease-ownership"),
        (22, "class \"voip\""),
        (26, "shared-network access"),
        (39, "option smurf-level"),
        (52, "next-server"),
        (61, "host printer"),
    ] {
        assert_skipped(&report, "dhcpd.conf", line, what);
    }
    assert_skipped(&report, "dhcpd.leases", 65, "failover peer");
    // The failover peer and the pool's reference to it are converted, not reported.
    assert!(
        !report
            .not_converted
            .iter()
            .any(|u| u.loc.file.ends_with("dhcpd.conf") && [9, 31].contains(&u.loc.line)),
        "{report}"
    );
    let fo = cfg.failover.as_ref().expect("[failover] written");
    assert_eq!(fo.name, "edge");
    assert_eq!(fo.role, config::FailoverRole::Primary);
    assert_eq!(fo.local.to_string(), "192.0.2.10:647");
    assert_eq!(fo.peer.to_string(), "192.0.2.11:647");
    assert_eq!(
        (fo.mclt, fo.max_response_delay, fo.max_unacked_updates),
        (3600, 60, 10)
    );
    assert_eq!(
        (fo.load_balance_split, fo.load_balance_max_seconds),
        (128, 3)
    );
    assert_eq!(
        (fo.max_lease_misbalance, fo.auto_partner_down),
        (15, Some(600))
    );

    let (l4, _) = stored(&a.data_dir, 3);
    // Two blocks for 100.64.0.10: the later (active until 2099) wins.
    let a10 = lease(&l4, "100.64.0.10");
    assert_eq!(
        (a10.state, a10.expires, a10.subnet_id),
        (BindingState::Active, Y2099, 1)
    );
    assert_eq!(a10.cltt, Y2099 - 7200);
    assert_eq!(
        a10.client,
        ClientKey::from_client_id(&[1, 0, 0x0c, 1, 2, 3, 4]).unwrap()
    );
    assert_eq!(lease(&l4, "100.64.0.11").state, BindingState::Expired);
    // Active, then free: the address binds no one any more.
    assert!(l4.iter().all(|l| l.addr != v4("100.64.0.12")));
    assert_eq!(lease(&l4, "100.64.8.150").state, BindingState::Released);
    assert_eq!(lease(&l4, "100.64.8.150").subnet_id, 2);
    assert_eq!(lease(&l4, "100.64.1.20").state, BindingState::Abandoned);
    let forever = lease(&l4, "10.250.0.33");
    assert_eq!(
        (forever.state, forever.expires),
        (BindingState::Active, u32::MAX)
    );
    assert_eq!(l4.len(), 5);
    assert!(
        report.converted.iter().any(|c| c.contains("1 free/backup")),
        "{report}"
    );
}

#[test]
fn isc_failover_peer_variants() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhcpd.conf");
    // The primary serves buckets 0..64: the hba dhcpd writes for `split 64`.
    let hba: Vec<&str> = (0..32).map(|i| if i < 8 { "ff" } else { "00" }).collect();
    let text = format!(
        "failover peer \"a\" {{\n secondary;\n address 10.0.0.2;\n peer address 10.0.0.1;\n \
         hba {};\n}}\nfailover peer \"b\" {{\n primary;\n address 10.0.0.3;\n \
         peer address 10.0.0.4;\n}}\nsubnet 10.1.0.0 netmask 255.255.255.0 {{\n pool {{\n \
         failover peer \"b\";\n range 10.1.0.10 10.1.0.20;\n }}\n}}\n",
        hba.join(":")
    );
    std::fs::write(&conf, text).unwrap();
    let a = ImportArgs {
        config: conf,
        ..args(Source::Isc, dir.path(), 1)
    };
    let report = import_at(&a, NOW).unwrap();
    check_config_cli(&a.out);
    let cfg = config::load(&a.out).unwrap();
    let fo = cfg.failover.unwrap();
    assert_eq!(
        (fo.name.as_str(), fo.role, fo.load_balance_split),
        ("a", config::FailoverRole::Secondary, 64)
    );
    assert_eq!(fo.peer.to_string(), "10.0.0.1:647");
    // A second relationship, and the pool referring to it, are reported.
    assert_skipped(&report, "dhcpd.conf", 7, "failover peer \"b\"");
    assert_skipped(&report, "dhcpd.conf", 14, "failover peer \"b\"");
    assert!(
        report
            .converted
            .iter()
            .any(|c| c.contains("takes the primary's mclt")),
        "{report}"
    );
    assert_eq!(cfg.subnet4[0].pool.len(), 1);

    // A relationship twinlease's checks refuse is dropped and reported; the rest converts.
    let conf = dir.path().join("bad.conf");
    std::fs::write(
        &conf,
        "failover peer \"c\" {\n primary;\n address 10.0.0.2;\n peer address 10.0.0.1;\n \
         mclt 0;\n}\nsubnet 10.1.0.0 netmask 255.255.255.0 {\n range 10.1.0.10 10.1.0.20;\n}\n",
    )
    .unwrap();
    let sub = dir.path().join("bad");
    std::fs::create_dir(&sub).unwrap();
    let a = ImportArgs {
        config: conf,
        ..args(Source::Isc, &sub, 1)
    };
    let report = import_at(&a, NOW).unwrap();
    let cfg = config::load(&a.out).unwrap();
    assert!(cfg.failover.is_none());
    assert_eq!(cfg.subnet4.len(), 1);
    assert!(
        report.has_skipped("bad.conf", 1, "failover peer \"c\""),
        "{report}"
    );
}

#[test]
fn unreadable_input_fails_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinlease"))
        .args(["import", "--from", "isc", "--config"])
        .arg(dir.path().join("missing.conf"))
        .arg("--out")
        .arg(dir.path().join("t.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.conf: cannot read"));
    assert!(!dir.path().join("t.toml").exists());

    let bad = dir.path().join("kea.conf");
    std::fs::write(&bad, "{ \"Dhcp4\": {\n  // fine\n  \"subnet4\": [ }\n}").unwrap();
    let a = ImportArgs {
        config: bad,
        ..args(Source::Kea, dir.path(), 1)
    };
    match import_at(&a, NOW) {
        Err(ImportError::Syntax { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cli_converts_with_warnings_and_refuses_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_twinlease"))
            .args(["import", "--from", "isc", "--workers", "2", "--config"])
            .arg(data("dhcpd.conf"))
            .arg("--leases")
            .arg(data("dhcpd.leases"))
            .arg("--out")
            .arg(dir.path().join("t.toml"))
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(first.status.code(), Some(0));
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        text.contains("dhcpd.conf:17: max-lease-ownership"),
        "{text}"
    );
    assert!(
        text.contains("failover peer \"edge\" (primary) → [failover]"),
        "{text}"
    );
    let second = run();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already holds a lease store"));
}
