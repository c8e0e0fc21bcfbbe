//! Unit tests for the configuration: examples, defaults, parsing and every validation rule.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use super::*;

const FILE: &str = "test.toml";

/// The errors of `text`, as (field, reason) pairs; panics if it is valid.
fn errors(text: &str) -> Vec<(String, String)> {
    match parse(text, FILE) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e
            .errors
            .into_iter()
            .inspect(|e| assert_eq!(e.file, FILE))
            .map(|e| (e.field, e.reason))
            .collect(),
    }
}

/// Asserts that `text` is rejected with an error at exactly `field` whose reason contains
/// `fragment`.
#[track_caller]
fn assert_error(text: &str, field: &str, fragment: &str) {
    let errs = errors(text);
    assert!(
        errs.iter().any(|(f, r)| f == field && r.contains(fragment)),
        "no error `{field}: ...{fragment}...` in {errs:#?}"
    );
}

#[track_caller]
fn valid(text: &str) -> Config {
    parse(text, FILE).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

/// One subnet 10.0.0.0/24 with id 1; `keys` are added to the subnet table and `tables` after
/// it (pools, reservations, options).
fn subnet(keys: &str, tables: &str) -> String {
    format!("[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/24\"\n{keys}\n{tables}\n")
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

// ---------------------------------------------------------------------------------------
// Examples

#[test]
fn every_example_loads_and_only_invalid_fails() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples/ exists") {
        let path = entry.expect("readable dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = load(&path);
        if name.starts_with("invalid") {
            assert!(result.is_err(), "{name} should be rejected");
        } else if let Err(e) = result {
            panic!("{name} should be valid:\n{e}");
        }
        seen.push(name);
    }
    seen.sort();
    for expected in [
        "failover-pair-primary.toml",
        "failover-pair-secondary.toml",
        "invalid.toml",
        "lab-loopback.toml",
        "relayed-edge.toml",
        "single-server.toml",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "missing example {expected}"
        );
    }
}

#[test]
fn invalid_example_reports_every_mistake() {
    let path = examples_dir().join("invalid.toml");
    let errs = load(&path).expect_err("invalid.toml is invalid");
    let expected: &[(&str, &str)] = &[
        (
            "server.workers",
            "5000 workers is more than the maximum 1024",
        ),
        ("server.io", "unknown io mode `quic`"),
        ("server.batch-size", "0 is outside 1..=4096"),
        ("server.listen[0]", "`0.0.0.0` is not an IPv4 address:port"),
        (
            "subnet4[0].subnet",
            "10.0.0.5/24 is not a network address: the network is 10.0.0.0/24",
        ),
        ("subnet4[1].id", "id 1 is already used by subnet4[0]"),
        (
            "subnet4[1].renew-time",
            "renew-time (T1) 3000 must be less than rebind-time (T2) 2000",
        ),
        (
            "subnet4[1].pool[0]",
            "range 10.0.1.10-10.0.2.50 is outside subnet 10.0.1.0/24",
        ),
        (
            "subnet4[1].pool[1]",
            "contains the broadcast address 10.0.1.255 of subnet 10.0.1.0/24",
        ),
        ("subnet4[1].pool[1]", "overlaps subnet4[1].pool[0]"),
        (
            "subnet4[1].reservation[0]",
            "needs a hw-address or a client-id",
        ),
        (
            "subnet4[1].reservation[1].hw-address",
            "`aa:bb:cc:dd:ee` is not a MAC address",
        ),
        (
            "subnet4[1].reservation[1].address",
            "10.0.9.9 is outside subnet 10.0.1.0/24",
        ),
        (
            "subnet4[1].option[0].code",
            "option 53 (DHCP message type) is managed",
        ),
        (
            "subnet4[2].routers[0]",
            "`10.0.1.300` is not an IPv4 address",
        ),
        (
            "subnet4[2].pool[0]",
            "start 10.0.1.200 is after end 10.0.1.150",
        ),
        (
            "subnet4[2].subnet",
            "10.0.1.128/25 overlaps subnet4[1] (10.0.1.0/24)",
        ),
    ];
    for (field, fragment) in expected {
        assert!(
            errs.iter()
                .any(|e| e.field == *field && e.reason.contains(fragment)),
            "no error `{field}: ...{fragment}...` in:\n{errs}"
        );
    }
    assert_eq!(
        errs.len(),
        expected.len(),
        "unexpected extra errors:\n{errs}"
    );
    for e in &errs {
        assert!(e.file.ends_with("invalid.toml"), "{e}");
    }
}

#[test]
fn relayed_example_has_the_written_values() {
    let c = load(&examples_dir().join("relayed-edge.toml")).expect("valid");
    assert_eq!(c.server.workers, 4);
    assert_eq!(c.workers(), 4);
    assert_eq!(c.server.server_id, Some(Ipv4Addr::new(203, 0, 113, 10)));
    assert_eq!(c.subnet4.len(), 3);
    let business = c.subnet4_by_id(200).expect("subnet 200");
    assert_eq!(
        business.relay_addresses,
        [
            Ipv4Addr::new(198, 51, 100, 2),
            Ipv4Addr::new(198, 51, 100, 3)
        ]
    );
    assert_eq!(business.reservation.len(), 3);
    assert_eq!(
        business.reservation[0].hw_address,
        Some([0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c])
    );
    assert_eq!(
        business.reservation[1].client_id.as_deref(),
        Some(&[0x01, 0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0d][..])
    );
    assert_eq!(
        business.option,
        [
            RawOption {
                code: 66,
                data: b"tftp.example.net".to_vec()
            },
            RawOption {
                code: 43,
                data: vec![1, 4, 192, 168, 0, 1]
            },
        ]
    );
    let residential = c.subnet4_by_id(100).expect("subnet 100");
    assert_eq!(residential.renew_time(), 3600);
    assert_eq!(residential.rebind_time(), 10800);
    assert_eq!(residential.pool.len(), 2);
}

#[test]
fn lab_example_is_a_lab() {
    let c = load(&examples_dir().join("lab-loopback.toml")).expect("valid");
    assert_eq!(c.server.durability, Durability::None);
    assert_eq!(
        c.server.listen,
        [SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6767)]
    );
    assert!(c.server.data_dir.starts_with("/tmp"));
}

// ---------------------------------------------------------------------------------------
// Defaults, model helpers, error formatting

#[test]
fn empty_file_gives_all_defaults() {
    let c = valid("");
    assert_eq!(c, Config::default());
    let s = &c.server;
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/twinlease"));
    assert_eq!(s.workers, 0);
    assert_eq!(s.durability, Durability::Fsync);
    assert_eq!(s.io, IoMode::Socket);
    assert_eq!(s.listen, [SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67)]);
    assert!(s.interfaces.is_empty());
    assert_eq!(s.server_id, None);
    assert_eq!(s.offer_hold_secs, 30);
    assert_eq!(s.decline_probation_secs, 86_400);
    assert_eq!(s.batch_size, 64);
    assert_eq!(s.ring_capacity, 4096);
    assert_eq!(s.wal_segment_mib, 64);
    assert_eq!(s.reply_port, 68);
    assert_eq!(s.relay_port, 67);
    assert!(c.subnet4.is_empty());
}

#[test]
fn subnet_defaults_and_derived_values() {
    let c = valid(&subnet("", ""));
    let s = &c.subnet4[0];
    let net = Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 24).unwrap();
    assert_eq!(*s, Subnet4::new(1, net));
    assert_eq!(s.lease_time, 3600);
    assert_eq!(s.renew_time(), 1800);
    assert_eq!(s.rebind_time(), 3150);
    assert_eq!(s.broadcast_address(), Ipv4Addr::new(10, 0, 0, 255));
    let explicit = valid(&subnet("broadcast-address = \"10.0.0.127\"", ""));
    assert_eq!(
        explicit.subnet4[0].broadcast_address(),
        Ipv4Addr::new(10, 0, 0, 127)
    );
}

#[test]
fn rebind_default_does_not_overflow() {
    let c = valid(&subnet("lease-time = 4294967295", ""));
    assert_eq!(c.subnet4[0].rebind_time(), 3_758_096_383);
}

#[test]
fn workers_resolves_zero_to_core_count() {
    let mut c = Config::default();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    assert_eq!(c.workers(), cores);
    c.server.workers = 3;
    assert_eq!(c.workers(), 3);
}

#[test]
fn lease_time_is_clamped_into_min_max() {
    let c = valid(&subnet(
        "lease-time = 3600\nmin-lease-time = 600\nmax-lease-time = 7200",
        "",
    ));
    let s = &c.subnet4[0];
    assert_eq!(s.lease_time_for(None), 3600);
    assert_eq!(s.lease_time_for(Some(60)), 600);
    assert_eq!(s.lease_time_for(Some(1000)), 1000);
    assert_eq!(s.lease_time_for(Some(u32::MAX)), 7200);
    let fixed = valid(&subnet("", ""));
    assert_eq!(fixed.subnet4[0].lease_time_for(Some(60)), 3600);
}

#[test]
fn ipv4net_arithmetic() {
    let n: Ipv4Net = "192.168.4.0/22".parse().unwrap();
    assert_eq!(n.mask(), Ipv4Addr::new(255, 255, 252, 0));
    assert_eq!(n.network(), Ipv4Addr::new(192, 168, 4, 0));
    assert_eq!(n.broadcast(), Ipv4Addr::new(192, 168, 7, 255));
    assert!(n.contains(Ipv4Addr::new(192, 168, 7, 1)));
    assert!(!n.contains(Ipv4Addr::new(192, 168, 8, 0)));
    assert!(!n.contains(Ipv4Addr::new(192, 168, 3, 255)));
    assert_eq!(n.to_string(), "192.168.4.0/22");
    let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
    assert_eq!(all.mask(), Ipv4Addr::UNSPECIFIED);
    assert!(all.contains(Ipv4Addr::BROADCAST));
    assert!(all.overlaps(&n) && n.overlaps(&all));
    let host: Ipv4Net = "10.1.2.3/32".parse().unwrap();
    assert_eq!(host.network(), host.broadcast());
    assert!(!host.has_network_and_broadcast());
    assert!(!host.overlaps(&n));
    assert_eq!(Ipv4Net::new(Ipv4Addr::LOCALHOST, 33), None);
    assert_eq!(
        "10.0.0.0/33".parse::<Ipv4Net>(),
        Err(Ipv4NetError::LengthTooLarge(33))
    );
    assert!(matches!(
        "10.0.0.0".parse::<Ipv4Net>(),
        Err(Ipv4NetError::MissingSlash(_))
    ));
    assert!(matches!(
        "10.0.0/8".parse::<Ipv4Net>(),
        Err(Ipv4NetError::BadAddress(_))
    ));
    assert!(matches!(
        "10.0.0.0/+8".parse::<Ipv4Net>(),
        Err(Ipv4NetError::BadLength(_))
    ));
}

#[test]
fn pool_len_and_contains() {
    let p = Pool4 {
        start: Ipv4Addr::new(10, 0, 0, 10),
        end: Ipv4Addr::new(10, 0, 1, 9),
    };
    assert_eq!(p.len(), 256);
    assert!(!p.is_empty());
    assert!(p.contains(Ipv4Addr::new(10, 0, 0, 255)));
    assert!(!p.contains(Ipv4Addr::new(10, 0, 1, 10)));
}

#[test]
fn error_display_is_file_field_reason() {
    let e = parse(
        &subnet("", "[[subnet4.pool]]\nrange = \"10.0.1.10-10.0.1.50\""),
        "examples/bad.toml",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "examples/bad.toml: subnet4[0].pool[0]: range 10.0.1.10-10.0.1.50 is outside subnet \
         10.0.0.0/24"
    );
    let two = parse("[server]\nworkers = 2000\nbatch-size = 0\n", "f.toml").unwrap_err();
    assert_eq!(two.len(), 2);
    assert_eq!(two.to_string().lines().count(), 2);
}

#[test]
fn unreadable_file_is_one_error_without_field() {
    let e = load(Path::new("/nonexistent/twinlease.toml")).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e.errors[0].field, "");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/twinlease.toml: cannot read the file:"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// TOML syntax and type errors

#[test]
fn syntax_error_has_line_and_column() {
    let errs = errors("[server]\nworkers = 2\nlisten = [\"0.0.0.0:67\" \"127.0.0.1:67\"]\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, "line 3, column 24");
    assert!(!errs[0].1.contains('\n'), "one line per error: {errs:?}");
}

#[test]
fn type_error_has_line_and_column() {
    let errs = errors("\n[server]\n  workers = \"four\"\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, "line 3, column 13");
}

#[test]
fn unknown_field_is_refused() {
    let errs = errors("[server]\nwrkers = 4\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, "line 2, column 1");
    assert!(errs[0].1.contains("unknown field `wrkers`"), "{errs:?}");
    let errs = errors(&subnet("", "[[subnet4.pool]]\nstart = \"10.0.0.1\""));
    assert!(errs[0].1.contains("unknown field `start`"), "{errs:?}");
}

#[test]
fn snake_case_keys_are_refused() {
    let errs = errors("[server]\ndata_dir = \"/x\"\n");
    assert!(errs[0].1.contains("unknown field `data_dir`"), "{errs:?}");
}

// ---------------------------------------------------------------------------------------
// [server]

#[test]
fn server_values_are_read() {
    let c = valid(
        "[server]\ndata-dir = \"/srv/tl\"\nworkers = 8\ndurability = \"none\"\nio = \"socket\"\n\
         listen = [\"127.0.0.1:6767\", \"10.0.0.1:67\"]\ninterfaces = [\"eth0\", \"vlan.100\"]\n\
         server-id = \"10.0.0.1\"\noffer-hold-secs = 5\ndecline-probation-secs = 600\n\
         batch-size = 4096\nring-capacity = 4096\nwal-segment-mib = 16\nreply-port = 6868\n\
         relay-port = 6767\n",
    );
    let s = c.server;
    assert_eq!(s.data_dir, PathBuf::from("/srv/tl"));
    assert_eq!(s.workers, 8);
    assert_eq!(s.durability, Durability::None);
    assert_eq!(
        s.listen,
        [
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6767),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 67)
        ]
    );
    assert_eq!(s.interfaces, ["eth0", "vlan.100"]);
    assert_eq!(s.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!((s.offer_hold_secs, s.decline_probation_secs), (5, 600));
    assert_eq!(
        (s.batch_size, s.ring_capacity, s.wal_segment_mib),
        (4096, 4096, 16)
    );
    assert_eq!((s.reply_port, s.relay_port), (6868, 6767));
}

#[test]
fn workers_above_1024_refused() {
    valid("[server]\nworkers = 1024\n");
    assert_error(
        "[server]\nworkers = 1025\n",
        "server.workers",
        "maximum 1024",
    );
}

#[test]
fn batch_size_bounds() {
    assert_error(
        "[server]\nbatch-size = 0\n",
        "server.batch-size",
        "outside 1..=4096",
    );
    assert_error(
        "[server]\nbatch-size = 4097\nring-capacity = 8192\n",
        "server.batch-size",
        "outside 1..=4096",
    );
    valid("[server]\nbatch-size = 1\n");
}

#[test]
fn ring_must_hold_a_batch() {
    assert_error(
        "[server]\nbatch-size = 128\nring-capacity = 64\n",
        "server.ring-capacity",
        "64 is smaller than batch-size 128",
    );
    valid("[server]\nbatch-size = 128\nring-capacity = 128\n");
}

#[test]
fn durability_and_io_values() {
    assert_error(
        "[server]\ndurability = \"sometimes\"\n",
        "server.durability",
        "expected \"fsync\" or \"none\"",
    );
    assert_error(
        "[server]\nio = \"xdp\"\n",
        "server.interfaces",
        "needs at least one interface",
    );
    assert_error("[server]\nio = \"quic\"\n", "server.io", "unknown io mode");
    assert_error(
        "[server.xdp]\nring-size = 1000\n",
        "server.xdp.ring-size",
        "power of two",
    );
    assert_error(
        "[server.xdp]\nattach-mode = \"fast\"\n",
        "server.xdp.attach-mode",
        "unknown attach mode",
    );
    assert_error(
        "[server]\nio = \"dpdk\"\n",
        "server.io",
        "unknown io mode `dpdk`",
    );
}

#[test]
fn listen_rules() {
    assert_error("[server]\nlisten = []\n", "server.listen", "at least one");
    assert_error(
        "[server]\nlisten = [\"127.0.0.1:6767\", \"localhost:67\"]\n",
        "server.listen[1]",
        "`localhost:67` is not an IPv4 address:port",
    );
    assert_error(
        "[server]\nlisten = [\"[::1]:547\"]\n",
        "server.listen[0]",
        "not an IPv4 address:port",
    );
    assert_error(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n",
        "server.listen[0]",
        "port 0",
    );
    assert_error(
        "[server]\nlisten = [\"127.0.0.1:67\", \"127.0.0.1:67\"]\n",
        "server.listen[1]",
        "already listed (listen[0])",
    );
}

#[test]
fn server_id_must_be_unicast() {
    assert_error(
        "[server]\nserver-id = \"10.0.0\"\n",
        "server.server-id",
        "`10.0.0` is not an IPv4 address",
    );
    assert_error(
        "[server]\nserver-id = \"255.255.255.255\"\n",
        "server.server-id",
        "not a unicast address",
    );
}

#[test]
fn interface_names() {
    assert_error(
        "[server]\ninterfaces = [\"averyveryverylongname\"]\n",
        "server.interfaces[0]",
        "longer than 15 bytes",
    );
    assert_error(
        "[server]\ninterfaces = [\"eth0\", \"eth0:1\"]\n",
        "server.interfaces[1]",
        "not a valid interface name",
    );
    assert_error(
        "[server]\ninterfaces = [\"eth0\", \"eth0\"]\n",
        "server.interfaces[1]",
        "listed twice",
    );
}

#[test]
fn zero_durations_and_ports_refused() {
    let errs = errors(
        "[server]\noffer-hold-secs = 0\ndecline-probation-secs = 0\nwal-segment-mib = 0\n\
         reply-port = 0\nrelay-port = 0\ndata-dir = \"\"\n",
    );
    let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "server.data-dir",
            "server.offer-hold-secs",
            "server.decline-probation-secs",
            "server.wal-segment-mib",
            "server.reply-port",
            "server.relay-port",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// [[subnet4]]: identity and prefix

#[test]
fn subnet_id_rules() {
    assert_error(
        "[[subnet4]]\nsubnet = \"10.0.0.0/24\"\n",
        "subnet4[0].id",
        "is required",
    );
    assert_error(
        "[[subnet4]]\nid = 0\nsubnet = \"10.0.0.0/24\"\n",
        "subnet4[0].id",
        "must be > 0",
    );
    assert_error(
        "[[subnet4]]\nid = 7\nsubnet = \"10.0.0.0/24\"\n[[subnet4]]\nid = 7\nsubnet = \"10.0.1.0/24\"\n",
        "subnet4[1].id",
        "id 7 is already used by subnet4[0]",
    );
}

#[test]
fn subnet_prefix_rules() {
    assert_error("[[subnet4]]\nid = 1\n", "subnet4[0].subnet", "is required");
    assert_error(
        "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/33\"\n",
        "subnet4[0].subnet",
        "prefix length 33 is larger than 32",
    );
    assert_error(
        "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0\"\n",
        "subnet4[0].subnet",
        "not a prefix",
    );
    assert_error(
        "[[subnet4]]\nid = 1\nsubnet = \"10.0.256.0/24\"\n",
        "subnet4[0].subnet",
        "`10.0.256.0` is not an IPv4 address",
    );
    assert_error(
        "[[subnet4]]\nid = 1\nsubnet = \"172.16.5.9/20\"\n",
        "subnet4[0].subnet",
        "172.16.5.9/20 is not a network address: the network is 172.16.0.0/20",
    );
}

#[test]
fn overlapping_subnets_refused() {
    let text = "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/16\"\n\
                [[subnet4]]\nid = 2\nsubnet = \"10.1.0.0/16\"\n\
                [[subnet4]]\nid = 3\nsubnet = \"10.0.42.0/24\"\n";
    assert_error(
        text,
        "subnet4[2].subnet",
        "10.0.42.0/24 overlaps subnet4[0] (10.0.0.0/16)",
    );
    assert_eq!(errors(text).len(), 1);
    valid(
        "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/24\"\n[[subnet4]]\nid = 2\nsubnet = \"10.0.1.0/24\"\n",
    );
}

#[test]
fn subnet_inside_an_earlier_wide_one_is_found_past_a_smaller_one() {
    // Sorted: 10.0.0.0/8, 10.1.0.0/24, 10.2.0.0/24: each overlaps the /8, not the previous.
    let text = "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/8\"\n\
                [[subnet4]]\nid = 2\nsubnet = \"10.1.0.0/24\"\n\
                [[subnet4]]\nid = 3\nsubnet = \"10.2.0.0/24\"\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_error(
        text,
        "subnet4[2].subnet",
        "overlaps subnet4[0] (10.0.0.0/8)",
    );
}

#[test]
fn interface_selection_rules() {
    let server = "[server]\ninterfaces = [\"eth1\"]\n";
    valid(&format!("{server}{}", subnet("interface = \"eth1\"", "")));
    assert_error(
        &subnet("interface = \"eth1\"", ""),
        "subnet4[0].interface",
        "not listed in server.interfaces",
    );
    assert_error(
        &format!(
            "{server}{}[[subnet4]]\nid = 2\nsubnet = \"10.0.1.0/24\"\ninterface = \"eth1\"\n",
            subnet("interface = \"eth1\"", "")
        ),
        "subnet4[1].interface",
        "`eth1` already selects subnet4[0]",
    );
}

#[test]
fn relay_address_rules() {
    let c = valid(&subnet("relay-addresses = [\"192.0.2.1\"]", ""));
    assert_eq!(c.subnet4[0].relay_addresses, [Ipv4Addr::new(192, 0, 2, 1)]);
    assert_error(
        &subnet("relay-addresses = [\"192.0.2\"]", ""),
        "subnet4[0].relay-addresses[0]",
        "`192.0.2` is not an IPv4 address",
    );
    assert_error(
        &subnet("relay-addresses = [\"0.0.0.0\"]", ""),
        "subnet4[0].relay-addresses[0]",
        "giaddr 0",
    );
    let two = "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/24\"\nrelay-addresses = [\"192.0.2.1\"]\n\
               [[subnet4]]\nid = 2\nsubnet = \"10.0.1.0/24\"\n";
    assert_error(
        &format!("{two}relay-addresses = [\"192.0.2.1\"]\n"),
        "subnet4[1].relay-addresses[0]",
        "already listed at subnet4[0].relay-addresses[0]",
    );
    assert_error(
        &format!("{two}relay-addresses = [\"10.0.0.1\"]\n"),
        "subnet4[1].relay-addresses[0]",
        "inside subnet4[0] (10.0.0.0/24)",
    );
}

#[test]
fn routers_dns_domain() {
    let c = valid(&subnet(
        "routers = [\"10.0.0.1\"]\ndns-servers = [\"9.9.9.9\"]\ndomain-name = \"example.net.\"",
        "",
    ));
    assert_eq!(c.subnet4[0].routers, [Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(c.subnet4[0].dns_servers, [Ipv4Addr::new(9, 9, 9, 9)]);
    assert_eq!(c.subnet4[0].domain_name.as_deref(), Some("example.net."));
    assert_error(
        &subnet("routers = [\"10.0.1.1\"]", ""),
        "subnet4[0].routers[0]",
        "not a host address of subnet 10.0.0.0/24",
    );
    assert_error(
        &subnet("routers = [\"10.0.0.255\"]", ""),
        "subnet4[0].routers[0]",
        "not a host address",
    );
    assert_error(
        &subnet("dns-servers = [\"9.9.9.9\", \"nine\"]", ""),
        "subnet4[0].dns-servers[1]",
        "`nine` is not an IPv4 address",
    );
    assert_error(
        &subnet("dns-servers = [\"224.0.0.1\"]", ""),
        "subnet4[0].dns-servers[0]",
        "not a unicast address",
    );
    assert_error(
        &subnet("domain-name = \"bad_name.example\"", ""),
        "subnet4[0].domain-name",
        "label `bad_name`",
    );
    assert_error(
        &subnet("broadcast-address = \"10.0.1.255\"", ""),
        "subnet4[0].broadcast-address",
        "outside subnet",
    );
}

// ---------------------------------------------------------------------------------------
// Pools

#[test]
fn pool_is_read() {
    let c = valid(&subnet(
        "",
        "[[subnet4.pool]]\nrange = \"10.0.0.100 - 10.0.0.200\"\n\
         [[subnet4.pool]]\nrange = \"10.0.0.201-10.0.0.201\"",
    ));
    assert_eq!(
        c.subnet4[0].pool,
        [
            Pool4 {
                start: Ipv4Addr::new(10, 0, 0, 100),
                end: Ipv4Addr::new(10, 0, 0, 200)
            },
            Pool4 {
                start: Ipv4Addr::new(10, 0, 0, 201),
                end: Ipv4Addr::new(10, 0, 0, 201)
            },
        ]
    );
}

#[test]
fn pool_parse_errors() {
    assert_error(
        &subnet("", "[[subnet4.pool]]\nrange = \"10.0.0.100\""),
        "subnet4[0].pool[0].range",
        "not a range FIRST-LAST",
    );
    assert_error(
        &subnet("", "[[subnet4.pool]]\nrange = \"10.0.0.100-10.0.0.x\""),
        "subnet4[0].pool[0].range",
        "`10.0.0.x` is not an IPv4 address",
    );
    assert_error(
        &subnet("", "[[subnet4.pool]]"),
        "subnet4[0].pool[0].range",
        "is required",
    );
}

#[test]
fn pool_start_after_end() {
    assert_error(
        &subnet("", "[[subnet4.pool]]\nrange = \"10.0.0.9-10.0.0.1\""),
        "subnet4[0].pool[0]",
        "start 10.0.0.9 is after end 10.0.0.1",
    );
}

#[test]
fn pool_outside_subnet() {
    assert_error(
        &subnet("", "[[subnet4.pool]]\nrange = \"10.0.0.200-10.0.1.20\""),
        "subnet4[0].pool[0]",
        "range 10.0.0.200-10.0.1.20 is outside subnet 10.0.0.0/24",
    );
}

#[test]
fn pool_with_network_or_broadcast() {
    assert_error(
        &subnet("", "[[subnet4.pool]]\nrange = \"10.0.0.0-10.0.0.20\""),
        "subnet4[0].pool[0]",
        "contains the network address 10.0.0.0",
    );
    assert_error(
        &subnet("", "[[subnet4.pool]]\nrange = \"10.0.0.200-10.0.0.255\""),
        "subnet4[0].pool[0]",
        "contains the broadcast address 10.0.0.255",
    );
    // RFC 3021: a /31 has no network or broadcast address to keep out.
    let c = valid(
        "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/31\"\n[[subnet4.pool]]\nrange = \"10.0.0.0-10.0.0.1\"\n",
    );
    assert_eq!(c.subnet4[0].pool[0].len(), 2);
}

#[test]
fn pool_with_router() {
    assert_error(
        &subnet(
            "routers = [\"10.0.0.1\"]",
            "[[subnet4.pool]]\nrange = \"10.0.0.1-10.0.0.20\"",
        ),
        "subnet4[0].pool[0]",
        "contains router address 10.0.0.1",
    );
}

#[test]
fn overlapping_pools_within_a_subnet() {
    let text = subnet(
        "",
        "[[subnet4.pool]]\nrange = \"10.0.0.10-10.0.0.100\"\n\
         [[subnet4.pool]]\nrange = \"10.0.0.150-10.0.0.160\"\n\
         [[subnet4.pool]]\nrange = \"10.0.0.50-10.0.0.60\"",
    );
    assert_error(
        &text,
        "subnet4[0].pool[2]",
        "range 10.0.0.50-10.0.0.60 overlaps subnet4[0].pool[0] (10.0.0.10-10.0.0.100)",
    );
    assert_eq!(errors(&text).len(), 1);
    // Adjacent is fine.
    valid(&subnet(
        "",
        "[[subnet4.pool]]\nrange = \"10.0.0.10-10.0.0.100\"\n\
         [[subnet4.pool]]\nrange = \"10.0.0.101-10.0.0.200\"",
    ));
}

#[test]
fn overlapping_pools_across_subnets() {
    // The subnets themselves overlap too; both problems are reported.
    let text = "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/16\"\n\
                [[subnet4.pool]]\nrange = \"10.0.3.1-10.0.3.100\"\n\
                [[subnet4]]\nid = 2\nsubnet = \"10.0.3.0/24\"\n\
                [[subnet4.pool]]\nrange = \"10.0.3.50-10.0.3.60\"\n";
    assert_error(
        text,
        "subnet4[1].pool[0]",
        "overlaps subnet4[0].pool[0] (10.0.3.1-10.0.3.100)",
    );
    assert_error(text, "subnet4[1].subnet", "overlaps subnet4[0]");
}

// ---------------------------------------------------------------------------------------
// Lease times

#[test]
fn lease_time_zero() {
    assert_error(
        &subnet("lease-time = 0", ""),
        "subnet4[0].lease-time",
        "must be > 0",
    );
}

#[test]
fn t1_t2_order() {
    let c = valid(&subnet(
        "lease-time = 1000\nrenew-time = 400\nrebind-time = 800",
        "",
    ));
    assert_eq!(
        (c.subnet4[0].renew_time(), c.subnet4[0].rebind_time()),
        (400, 800)
    );
    assert_error(
        &subnet("lease-time = 1000\nrenew-time = 800\nrebind-time = 800", ""),
        "subnet4[0].renew-time",
        "renew-time (T1) 800 must be less than rebind-time (T2) 800",
    );
    assert_error(
        &subnet("lease-time = 1000\nrebind-time = 1000", ""),
        "subnet4[0].rebind-time",
        "rebind-time (T2) 1000 must be less than lease-time 1000",
    );
    // An explicit T1 is checked against the default T2 (7/8 of 1000 = 875).
    assert_error(
        &subnet("lease-time = 1000\nrenew-time = 900", ""),
        "subnet4[0].renew-time",
        "(T1) 900 must be less than rebind-time (T2) 875",
    );
    // An explicit T2 is checked against the default T1 (half of 1000).
    assert_error(
        &subnet("lease-time = 1000\nrebind-time = 300", ""),
        "subnet4[0].renew-time",
        "(T1) 500 must be less than rebind-time (T2) 300",
    );
}

#[test]
fn min_max_lease_time() {
    assert_error(
        &subnet("min-lease-time = 7200\nmax-lease-time = 600", ""),
        "subnet4[0].min-lease-time",
        "min-lease-time 7200 is greater than max-lease-time 600",
    );
    assert_error(
        &subnet("min-lease-time = 0", ""),
        "subnet4[0].min-lease-time",
        "must be > 0",
    );
    assert_error(
        &subnet("lease-time = 3600\nmax-lease-time = 600", ""),
        "subnet4[0].lease-time",
        "above max-lease-time 600",
    );
    assert_error(
        &subnet("lease-time = 3600\nmin-lease-time = 7200", ""),
        "subnet4[0].lease-time",
        "below min-lease-time 7200",
    );
}

// ---------------------------------------------------------------------------------------
// Reservations

#[test]
fn reservations_are_read() {
    let c = valid(&subnet(
        "",
        "[[subnet4.reservation]]\nhw-address = \"AA-BB-CC-DD-EE-01\"\naddress = \"10.0.0.5\"\n\
         hostname = \"host-1\"\n\
         [[subnet4.reservation]]\nclient-id = \"01aabbccddee02\"\naddress = \"10.0.0.6\"",
    ));
    let r = &c.subnet4[0].reservation;
    assert_eq!(
        r[0],
        Reservation4 {
            hw_address: Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01]),
            client_id: None,
            address: Ipv4Addr::new(10, 0, 0, 5),
            hostname: Some("host-1".to_owned()),
        }
    );
    assert_eq!(
        r[1].client_id.as_deref(),
        Some(&[0x01, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x02][..])
    );
}

#[test]
fn reservation_parse_errors() {
    let res = |body: &str| subnet("", &format!("[[subnet4.reservation]]\n{body}"));
    assert_error(
        &res("hw-address = \"aa:bb:cc:dd:ee:fg\"\naddress = \"10.0.0.5\""),
        "subnet4[0].reservation[0].hw-address",
        "not a MAC address",
    );
    assert_error(
        &res("hw-address = \"aa:bb:cc:dd:ee:ff:00\"\naddress = \"10.0.0.5\""),
        "subnet4[0].reservation[0].hw-address",
        "not a MAC address",
    );
    assert_error(
        &res("client-id = \"01:a:bb\"\naddress = \"10.0.0.5\""),
        "subnet4[0].reservation[0].client-id",
        "not hex bytes",
    );
    assert_error(
        &res("client-id = \"01\"\naddress = \"10.0.0.5\""),
        "subnet4[0].reservation[0].client-id",
        "at least 2 bytes",
    );
    assert_error(
        &res("hw-address = \"aa:bb:cc:dd:ee:ff\"\naddress = \"10.0.0.500\""),
        "subnet4[0].reservation[0].address",
        "`10.0.0.500` is not an IPv4 address",
    );
    assert_error(
        &res("hw-address = \"aa:bb:cc:dd:ee:ff\""),
        "subnet4[0].reservation[0].address",
        "is required",
    );
    assert_error(
        &res("hw-address = \"aa:bb:cc:dd:ee:ff\"\naddress = \"10.0.0.5\"\nhostname = \"-x\""),
        "subnet4[0].reservation[0].hostname",
        "not a valid name",
    );
}

#[test]
fn reservation_outside_subnet() {
    assert_error(
        &subnet(
            "",
            "[[subnet4.reservation]]\nhw-address = \"aa:bb:cc:dd:ee:ff\"\naddress = \"10.0.1.5\"",
        ),
        "subnet4[0].reservation[0].address",
        "10.0.1.5 is outside subnet 10.0.0.0/24",
    );
    assert_error(
        &subnet(
            "",
            "[[subnet4.reservation]]\nhw-address = \"aa:bb:cc:dd:ee:ff\"\naddress = \"10.0.0.0\"",
        ),
        "subnet4[0].reservation[0].address",
        "network or broadcast address",
    );
    assert_error(
        &subnet(
            "routers = [\"10.0.0.1\"]",
            "[[subnet4.reservation]]\nhw-address = \"aa:bb:cc:dd:ee:ff\"\naddress = \"10.0.0.1\"",
        ),
        "subnet4[0].reservation[0].address",
        "is a router",
    );
}

#[test]
fn reservation_without_identifier() {
    assert_error(
        &subnet("", "[[subnet4.reservation]]\naddress = \"10.0.0.5\""),
        "subnet4[0].reservation[0]",
        "needs a hw-address or a client-id",
    );
}

#[test]
fn duplicate_reservations() {
    let text = subnet(
        "",
        "[[subnet4.reservation]]\nhw-address = \"aa:bb:cc:dd:ee:ff\"\nclient-id = \"01:02\"\n\
         address = \"10.0.0.5\"\n\
         [[subnet4.reservation]]\nhw-address = \"AA:BB:CC:DD:EE:FF\"\naddress = \"10.0.0.6\"\n\
         [[subnet4.reservation]]\nclient-id = \"0102\"\naddress = \"10.0.0.7\"\n\
         [[subnet4.reservation]]\nhw-address = \"aa:bb:cc:dd:ee:00\"\naddress = \"10.0.0.5\"",
    );
    assert_error(
        &text,
        "subnet4[0].reservation[1].hw-address",
        "AA:BB:CC:DD:EE:FF is already reserved by reservation[0]",
    );
    assert_error(
        &text,
        "subnet4[0].reservation[2].client-id",
        "0102 is already reserved by reservation[0]",
    );
    assert_error(
        &text,
        "subnet4[0].reservation[3].address",
        "10.0.0.5 is already reserved by reservation[0]",
    );
    assert_eq!(errors(&text).len(), 3);
    // The same client may have a reservation in each of two subnets.
    valid(
        "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/24\"\n\
         [[subnet4.reservation]]\nhw-address = \"aa:bb:cc:dd:ee:ff\"\naddress = \"10.0.0.5\"\n\
         [[subnet4]]\nid = 2\nsubnet = \"10.0.1.0/24\"\n\
         [[subnet4.reservation]]\nhw-address = \"aa:bb:cc:dd:ee:ff\"\naddress = \"10.0.1.5\"\n",
    );
}

// ---------------------------------------------------------------------------------------
// Custom options

fn option(body: &str) -> String {
    subnet("", &format!("[[subnet4.option]]\n{body}"))
}

#[test]
fn option_values_are_encoded() {
    let cases: &[(&str, &[u8])] = &[
        ("code = 42\nip = \"10.0.0.1\"", &[10, 0, 0, 1]),
        (
            "code = 42\nips = [\"10.0.0.1\", \"10.0.0.2\"]",
            &[10, 0, 0, 1, 10, 0, 0, 2],
        ),
        ("code = 66\ntext = \"tftp\"", b"tftp"),
        ("code = 43\nhex = \"01:02:ff\"", &[1, 2, 0xff]),
        ("code = 43\nhex = \"0102FF\"", &[1, 2, 0xff]),
        ("code = 80\nhex = \"\"", &[]),
        ("code = 19\nu8 = 1", &[1]),
        ("code = 26\nu16 = 1500", &[0x05, 0xdc]),
        ("code = 24\nu32 = 600", &[0, 0, 0x02, 0x58]),
        ("code = 2\nu32 = 4294967295", &[0xff; 4]),
    ];
    for (body, data) in cases {
        let c = valid(&option(body));
        assert_eq!(c.subnet4[0].option[0].data, *data, "{body}");
    }
    assert_eq!(
        valid(&option("code = 254\nu8 = 0")).subnet4[0].option[0].code,
        254
    );
}

#[test]
fn option_codes_refused() {
    assert_error(
        &option("code = 0\nu8 = 1"),
        "subnet4[0].option[0].code",
        "pad option",
    );
    assert_error(
        &option("code = 255\nu8 = 1"),
        "subnet4[0].option[0].code",
        "end option",
    );
    assert_error(
        &option("code = 256\nu8 = 1"),
        "subnet4[0].option[0].code",
        "outside 1..=254",
    );
    assert_error(
        &option("code = -1\nu8 = 1"),
        "subnet4[0].option[0].code",
        "outside 1..=254",
    );
    assert_error(
        &option("u8 = 1"),
        "subnet4[0].option[0].code",
        "is required",
    );
    for code in (50..=59).chain([61, 82]) {
        assert_error(
            &option(&format!("code = {code}\nu8 = 1")),
            "subnet4[0].option[0].code",
            "is managed by the server",
        );
    }
    assert_error(
        &option("code = 3\nip = \"10.0.0.1\""),
        "subnet4[0].option[0].code",
        "use `routers`",
    );
    assert_error(
        &option("code = 42\nip = \"10.0.0.1\"\n[[subnet4.option]]\ncode = 42\nip = \"10.0.0.2\""),
        "subnet4[0].option[1].code",
        "option 42 is already set by option[0]",
    );
}

#[test]
fn option_value_errors() {
    assert_error(
        &option("code = 42"),
        "subnet4[0].option[0]",
        "needs a value",
    );
    assert_error(
        &option("code = 42\nip = \"10.0.0.1\"\ntext = \"x\""),
        "subnet4[0].option[0]",
        "exactly one value, found ip, text",
    );
    assert_error(
        &option("code = 42\nip = \"10.0.0\""),
        "subnet4[0].option[0].ip",
        "`10.0.0` is not an IPv4 address",
    );
    assert_error(
        &option("code = 42\nips = [\"10.0.0.1\", \"x\"]"),
        "subnet4[0].option[0].ips[1]",
        "`x` is not an IPv4 address",
    );
    assert_error(
        &option("code = 43\nhex = \"0g\""),
        "subnet4[0].option[0].hex",
        "not hex bytes",
    );
    assert_error(
        &option("code = 43\nhex = \"012\""),
        "subnet4[0].option[0].hex",
        "not hex bytes",
    );
    assert_error(
        &option("code = 19\nu8 = 256"),
        "subnet4[0].option[0].u8",
        "outside 0..=255",
    );
    assert_error(
        &option("code = 26\nu16 = -1"),
        "subnet4[0].option[0].u16",
        "outside 0..=65535",
    );
    assert_error(
        &option("code = 24\nu32 = 4294967296"),
        "subnet4[0].option[0].u32",
        "outside 0..=4294967295",
    );
    let long = "a".repeat(256);
    assert_error(
        &option(&format!("code = 66\ntext = \"{long}\"")),
        "subnet4[0].option[0]",
        "256 bytes; an option holds at most 255",
    );
}

// ---------------------------------------------------------------------------------------
// Collecting

#[test]
fn all_problems_are_reported_at_once() {
    let text = format!(
        "[server]\nworkers = 2000\n{}",
        subnet(
            "lease-time = 0\nrouters = [\"x\"]",
            "[[subnet4.pool]]\nrange = \"10.0.5.1-10.0.5.9\"\n\
             [[subnet4.reservation]]\naddress = \"10.0.0.9\"",
        )
    );
    let fields: Vec<String> = errors(&text).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "server.workers",
            "subnet4[0].routers[0]",
            "subnet4[0].pool[0]",
            "subnet4[0].lease-time",
            "subnet4[0].reservation[0]",
        ]
    );
}

#[test]
fn pinning_cores_must_exist() {
    assert_error(
        "[server]\nworker-cores = [0, 4096]\n",
        "server.worker-cores[1]",
        "core 4096 does not exist here",
    );
    assert_error(
        "[server.xdp]\nqueue-cores = [9999]\n",
        "server.xdp.queue-cores[0]",
        "does not exist",
    );
    let c = parse(
        "[server]\nworker-cores = [0]\n[server.xdp]\nqueue-cores = [0, 0]\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.server.worker_cores, vec![0]);
    assert_eq!(c.server.xdp.queue_cores, vec![0, 0]);
}

#[test]
fn log_filter_is_checked() {
    let c = valid("[server]\nlog = \"info,twinlease::failover=debug\"\n");
    assert_eq!(
        c.server.log.as_deref(),
        Some("info,twinlease::failover=debug")
    );
    assert_eq!(valid("").server.log, None);
    assert_error(
        "[server]\nlog = \"twinlease=loud\"\n",
        "server.log",
        "is not a log filter",
    );
}
