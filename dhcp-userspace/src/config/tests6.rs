//! Unit tests for the `DHCPv6` part of the configuration: `server.listen6`, `[[subnet6]]`
//! and every validation rule of its pools, pd-pools, lifetimes, reservations and options.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::{Path, PathBuf};

use super::*;

const FILE: &str = "test6.toml";

fn errors(text: &str) -> Vec<(String, String)> {
    match parse(text, FILE) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.errors.into_iter().map(|e| (e.field, e.reason)).collect(),
    }
}

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

/// One subnet `2001:db8:1::/64` with id 1; `keys` go into the subnet table, `tables` after it.
fn subnet(keys: &str, tables: &str) -> String {
    format!("[[subnet6]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n{keys}\n{tables}\n")
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

fn net(s: &str) -> Ipv6Net {
    s.parse().expect("test prefix")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

#[test]
fn pd_example_has_the_written_values() {
    let c = load(&example("dhcpv6-pd.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.server.listen6,
        [SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 547, 0, 0)]
    );
    assert_eq!(c.subnet6.len(), 3);
    let res = c.subnet6_by_id(1).expect("subnet 1");
    assert_eq!(res.prefix, net("2001:db8:1::/64"));
    assert!(res.rapid_commit);
    assert_eq!(res.renew_time(), 1500);
    assert_eq!(res.rebind_time(), 2400);
    assert_eq!(res.sol_max_rt, Some(3600));
    assert_eq!(res.dns_servers, [ip("2001:db8::53"), ip("2001:db8::54")]);
    assert_eq!(res.domain_search, ["dyn.example.net", "example.net"]);
    assert_eq!(
        res.pool[1],
        AddressPool6 {
            start: ip("2001:db8:1:0:1::"),
            end: ip("2001:db8:1:0:1:ffff:ffff:ffff")
        }
    );
    let pd = res.pd_pool[0];
    assert_eq!(pd.delegated_len, 56);
    assert_eq!(pd.excluded, Some(net("2001:db8:8000:ff::/64")));
    // RFC 6603 §4.2: the subnet ID bits apply inside every delegated prefix.
    assert_eq!(
        pd.excluded_in(ip("2001:db8:8012:3400::")),
        Some(net("2001:db8:8012:34ff::/64"))
    );
    assert_eq!(res.reservation[0].duid.len(), 14);
    assert_eq!(res.reservation[0].address, Some(ip("2001:db8:1::10")));
    assert_eq!(
        res.reservation[0].prefix,
        Some(net("2001:db8:ff00:100::/56"))
    );
    assert_eq!(res.option[0].code, 21);
    let business = c.subnet6_by_id(2).expect("subnet 2");
    assert_eq!(business.interface_id.as_deref(), Some(&b"ge-0/0/1.200"[..]));
    assert_eq!(
        (business.renew_time(), business.rebind_time()),
        (43200, 69120)
    );
    let lab = c.subnet6_by_id(3).expect("subnet 3");
    assert_eq!(lab.interface.as_deref(), Some("eth1"));
    assert_eq!(lab.interface_id.as_deref(), Some(&[0, 0, 0, 3][..]));
    assert_eq!(lab.information_refresh_time, Some(3600));
}

#[test]
fn defaults() {
    let c = valid("");
    assert_eq!(c.server.listen6, [Server::DEFAULT_LISTEN6]);
    assert!(c.subnet6.is_empty());
    let c = valid(&subnet("", ""));
    let s = &c.subnet6[0];
    assert_eq!(*s, Subnet6::new(1, net("2001:db8:1::/64")));
    assert_eq!((s.preferred_lifetime, s.valid_lifetime), (3000, 4000));
    assert_eq!((s.renew_time(), s.rebind_time()), (1500, 2400));
    // 0.8 of the largest lifetime does not overflow.
    let c = valid(&subnet(
        "preferred-lifetime = 4294967295\nvalid-lifetime = 4294967295",
        "",
    ));
    assert_eq!(c.subnet6[0].rebind_time(), 3_435_973_836);
}

#[test]
fn ipv6net_arithmetic() {
    let n = net("2001:db8::/32");
    assert!(n.contains(ip("2001:db8:ffff::1")));
    assert!(!n.contains(ip("2001:db9::")));
    assert_eq!(n.last(), ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert!(n.contains_net(&net("2001:db8:5::/48")));
    assert!(!net("2001:db8:5::/48").contains_net(&n));
    assert!(n.overlaps(&net("2001:db8:5::/48")) && net("2001:db8:5::/48").overlaps(&n));
    assert!(!n.overlaps(&net("2001:db9::/32")));
    assert_eq!(net("::/0").last(), Ipv6Addr::from_bits(u128::MAX));
    assert_eq!(Ipv6Net::new(ip("::1"), 129), None);
    assert_eq!(
        "2001:db8::/129".parse::<Ipv6Net>(),
        Err(Ipv6NetError::LengthTooLarge(129))
    );
    assert!(matches!(
        "2001:db8::".parse::<Ipv6Net>(),
        Err(Ipv6NetError::MissingSlash(_))
    ));
    assert!(matches!(
        "2001:db8::/x".parse::<Ipv6Net>(),
        Err(Ipv6NetError::BadLength(_))
    ));
    assert!(matches!(
        "10.0.0.0/8".parse::<Ipv6Net>(),
        Err(Ipv6NetError::BadAddress(_))
    ));
}

#[test]
fn listen6_rules() {
    let c = valid("[server]\nlisten6 = [\"[2001:db8::1]:547\", \"[::]:5547\"]\n");
    assert_eq!(
        c.server.listen6,
        [
            SocketAddrV6::new(ip("2001:db8::1"), 547, 0, 0),
            SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 5547, 0, 0)
        ]
    );
    assert_error("[server]\nlisten6 = []\n", "server.listen6", "at least one");
    assert_error(
        "[server]\nlisten6 = [\"0.0.0.0:547\"]\n",
        "server.listen6[0]",
        "is not an IPv6 [address]:port",
    );
    assert_error(
        "[server]\nlisten6 = [\"[::]:0\"]\n",
        "server.listen6[0]",
        "port 0",
    );
    assert_error(
        "[server]\nlisten6 = [\"[::]:547\", \"[::]:547\"]\n",
        "server.listen6[1]",
        "already listed (listen6[0])",
    );
}

#[test]
fn id_and_prefix_rules() {
    assert_error(
        "[[subnet6]]\nprefix = \"2001:db8::/64\"\n",
        "subnet6[0].id",
        "is required",
    );
    assert_error(
        "[[subnet6]]\nid = 0\nprefix = \"2001:db8::/64\"\n",
        "subnet6[0].id",
        "> 0",
    );
    assert_error("[[subnet6]]\nid = 1\n", "subnet6[0].prefix", "is required");
    let two = "[[subnet6]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n\
               [[subnet6]]\nid = 1\nprefix = \"2001:db8:2::/64\"\n";
    assert_error(two, "subnet6[1].id", "id 1 is already used by subnet6[0]");
    // A v4 subnet may carry the same id: the id spaces are separate.
    valid(
        "[[subnet4]]\nid = 1\nsubnet = \"10.0.0.0/24\"\n[[subnet6]]\nid = 1\nprefix = \"2001:db8::/64\"\n",
    );
    assert_error(
        "[[subnet6]]\nid = 1\nprefix = \"2001:db8::1/64\"\n",
        "subnet6[0].prefix",
        "not a network address: the network is 2001:db8::/64",
    );
    assert_error(
        "[[subnet6]]\nid = 1\nprefix = \"2001:db8::/64x\"\n",
        "subnet6[0].prefix",
        "is not a prefix length",
    );
    assert_error(
        "[[subnet6]]\nid = 1\nprefix = \"ff02::/16\"\n",
        "subnet6[0].prefix",
        "multicast",
    );
    let overlap = "[[subnet6]]\nid = 1\nprefix = \"2001:db8::/48\"\n\
                   [[subnet6]]\nid = 2\nprefix = \"2001:db8:0:5::/64\"\n";
    assert_error(
        overlap,
        "subnet6[1].prefix",
        "overlaps subnet6[0] (2001:db8::/48)",
    );
}

#[test]
fn interface_and_interface_id_rules() {
    assert_error(
        &subnet("interface = \"eth9\"", ""),
        "subnet6[0].interface",
        "not listed in server.interfaces",
    );
    let twice = "[server]\ninterfaces = [\"eth1\"]\n\
                 [[subnet6]]\nid = 1\nprefix = \"2001:db8:1::/64\"\ninterface = \"eth1\"\n\
                 [[subnet6]]\nid = 2\nprefix = \"2001:db8:2::/64\"\ninterface = \"eth1\"\n";
    assert_error(twice, "subnet6[1].interface", "already selects subnet6[0]");
    let c = valid(&subnet("interface-id = { hex = \"0a0b\" }", ""));
    assert_eq!(c.subnet6[0].interface_id.as_deref(), Some(&[10, 11][..]));
    let c = valid(&subnet("interface-id = { text = \"port 7\" }", ""));
    assert_eq!(c.subnet6[0].interface_id.as_deref(), Some(&b"port 7"[..]));
    assert_error(
        &subnet("interface-id = \"\"", ""),
        "subnet6[0].interface-id",
        "cannot be empty",
    );
    assert_error(
        &subnet("interface-id = { hex = \"zz\" }", ""),
        "subnet6[0].interface-id.hex",
        "is not hex bytes",
    );
    assert_error(
        &subnet("interface-id = { hex = \"0a\", text = \"a\" }", ""),
        "subnet6[0].interface-id",
        "write the Interface-Id as",
    );
    let dup = "[[subnet6]]\nid = 1\nprefix = \"2001:db8:1::/64\"\ninterface-id = \"a\"\n\
               [[subnet6]]\nid = 2\nprefix = \"2001:db8:2::/64\"\ninterface-id = { hex = \"61\" }\n";
    assert_error(dup, "subnet6[1].interface-id", "already selects subnet6[0]");
}

#[test]
fn pool_rules() {
    let pool = |body: &str| subnet("", &format!("[[subnet6.pool]]\n{body}"));
    let c = valid(&pool("range = \"2001:db8:1::10 - 2001:db8:1::20\""));
    assert_eq!(
        c.subnet6[0].pool,
        [AddressPool6 {
            start: ip("2001:db8:1::10"),
            end: ip("2001:db8:1::20")
        }]
    );
    assert!(c.subnet6[0].pool[0].contains(ip("2001:db8:1::15")));
    assert_error(&pool(""), "subnet6[0].pool[0]", "exactly one of range");
    assert_error(
        &pool("range = \"2001:db8:1::10-2001:db8:1::20\"\nprefix = \"2001:db8:1::/120\""),
        "subnet6[0].pool[0]",
        "exactly one of range",
    );
    assert_error(
        &pool("range = \"2001:db8:1::10\""),
        "subnet6[0].pool[0].range",
        "not a range",
    );
    assert_error(
        &pool("range = \"2001:db8:1::10-2001:db8:1::zz\""),
        "subnet6[0].pool[0].range",
        "`2001:db8:1::zz` is not an IPv6 address",
    );
    assert_error(
        &pool("range = \"2001:db8:1::20-2001:db8:1::10\""),
        "subnet6[0].pool[0]",
        "start 2001:db8:1::20 is after end 2001:db8:1::10",
    );
    assert_error(
        &pool("range = \"2001:db8:1::10-2001:db8:2::10\""),
        "subnet6[0].pool[0]",
        "is outside prefix 2001:db8:1::/64",
    );
    assert_error(
        &pool("prefix = \"2001:db8:2::/80\""),
        "subnet6[0].pool[0]",
        "is outside prefix",
    );
    assert_error(
        &pool("prefix = \"2001:db8:1::1/80\""),
        "subnet6[0].pool[0].prefix",
        "not a network address",
    );
    assert_error(
        &pool("prefix = \"2001:db8:1::/80\""),
        "subnet6[0].pool[0]",
        "Subnet-Router anycast",
    );
    let two = subnet(
        "",
        "[[subnet6.pool]]\nrange = \"2001:db8:1::150-2001:db8:1::160\"\n\
         [[subnet6.pool]]\nprefix = \"2001:db8:1::100/120\"\n",
    );
    assert_error(&two, "subnet6[0].pool[0]", "overlaps subnet6[0].pool[1]");
}

fn pd(body: &str) -> String {
    subnet("", &format!("[[subnet6.pd-pool]]\n{body}"))
}

#[test]
fn pd_pool_rules() {
    let c = valid(&pd("prefix = \"2001:db8:8000::/40\"\ndelegated-len = 56"));
    assert_eq!(
        c.subnet6[0].pd_pool,
        [PrefixPool6 {
            prefix: net("2001:db8:8000::/40"),
            delegated_len: 56,
            excluded: None
        }]
    );
    assert_eq!(
        c.subnet6[0].pd_pool[0].excluded_in(ip("2001:db8:8000::")),
        None
    );
    assert_error(
        &pd("delegated-len = 56"),
        "subnet6[0].pd-pool[0].prefix",
        "is required",
    );
    assert_error(
        &pd("prefix = \"2001:db8:8000::/40\""),
        "subnet6[0].pd-pool[0].delegated-len",
        "is required",
    );
    for bad in ["129", "-1"] {
        assert_error(
            &pd(&format!(
                "prefix = \"2001:db8:8000::/40\"\ndelegated-len = {bad}"
            )),
            "subnet6[0].pd-pool[0].delegated-len",
            "is outside 1..=128",
        );
    }
    assert_error(
        &pd("prefix = \"2001:db8:8000::/40\"\ndelegated-len = 32"),
        "subnet6[0].pd-pool[0].delegated-len",
        "32 is shorter than the pool prefix",
    );
    assert_error(
        &pd("prefix = \"2001:db8:1::/48\"\ndelegated-len = 56"),
        "subnet6[0].pd-pool[0]",
        "overlaps the link prefix of subnet6[0]",
    );
    let two = subnet(
        "",
        "[[subnet6.pd-pool]]\nprefix = \"2001:db8:8000::/40\"\ndelegated-len = 56\n\
         [[subnet6.pd-pool]]\nprefix = \"2001:db8:8000:100::/56\"\ndelegated-len = 60\n",
    );
    assert_error(
        &two,
        "subnet6[0].pd-pool[1]",
        "overlaps subnet6[0].pd-pool[0]",
    );
    let across = "[[subnet6]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n\
                  [[subnet6.pd-pool]]\nprefix = \"2001:db8:8000::/40\"\ndelegated-len = 56\n\
                  [[subnet6]]\nid = 2\nprefix = \"2001:db8:2::/64\"\n\
                  [[subnet6.pd-pool]]\nprefix = \"2001:db8:80ff::/48\"\ndelegated-len = 56\n";
    assert_error(
        across,
        "subnet6[1].pd-pool[0]",
        "overlaps subnet6[0].pd-pool[0]",
    );
}

#[test]
fn excluded_prefix_rules() {
    let with = |e: &str| {
        pd(&format!(
            "prefix = \"2001:db8:8000::/40\"\ndelegated-len = 56\nexcluded-prefix = \"{e}\""
        ))
    };
    let c = valid(&with("2001:db8:8000:1::/64"));
    assert_eq!(
        c.subnet6[0].pd_pool[0].excluded_in(ip("2001:db8:80ab:cd00::")),
        Some(net("2001:db8:80ab:cd01::/64"))
    );
    // RFC 6603 §4.2: longer than the delegated prefix.
    assert_error(
        &with("2001:db8:8000::/56"),
        "subnet6[0].pd-pool[0].excluded-prefix",
        "must be longer than delegated-len 56",
    );
    // Inside the first delegated prefix, whose subnet ID bits it names.
    assert_error(
        &with("2001:db8:8001::/64"),
        "subnet6[0].pd-pool[0].excluded-prefix",
        "inside the pool's first delegated prefix 2001:db8:8000::/56",
    );
    assert_error(
        &with("2001:db8:8000:1::1/64"),
        "subnet6[0].pd-pool[0].excluded-prefix",
        "not a network address",
    );
}

#[test]
fn lifetime_rules() {
    assert_error(
        &subnet("valid-lifetime = 0\npreferred-lifetime = 0", ""),
        "subnet6[0].valid-lifetime",
        "must be > 0",
    );
    assert_error(
        &subnet("preferred-lifetime = 5000\nvalid-lifetime = 4000", ""),
        "subnet6[0].preferred-lifetime",
        "greater than valid-lifetime 4000",
    );
    assert_error(
        &subnet("renew-time = 2000\nrebind-time = 1000", ""),
        "subnet6[0].renew-time",
        "renew-time (T1) 2000 is greater than rebind-time (T2) 1000",
    );
    // Against the default T2 (0.8 × 3000).
    assert_error(
        &subnet("renew-time = 2500", ""),
        "subnet6[0].renew-time",
        "greater than rebind-time (T2) 2400",
    );
    assert_error(
        &subnet("rebind-time = 5000", ""),
        "subnet6[0].rebind-time",
        "greater than valid-lifetime 4000",
    );
    // T1 = T2 is allowed, and so are zeros (RFC 8415 §21.4: the client chooses).
    let c = valid(&subnet("renew-time = 2000\nrebind-time = 2000", ""));
    assert_eq!(c.subnet6[0].renew_time(), 2000);
    valid(&subnet("renew-time = 0\nrebind-time = 0", ""));
}

#[test]
fn stateless_option_rules() {
    let c = valid(&subnet(
        "dns-servers = [\"2001:db8::53\"]\ndomain-search = [\"a.example\"]\n\
         sol-max-rt = 60\ninformation-refresh-time = 600",
        "",
    ));
    assert_eq!(c.subnet6[0].sol_max_rt, Some(60));
    assert_error(
        &subnet("dns-servers = [\"10.0.0.1\"]", ""),
        "subnet6[0].dns-servers[0]",
        "not an IPv6 address",
    );
    assert_error(
        &subnet("dns-servers = [\"ff02::1\"]", ""),
        "subnet6[0].dns-servers[0]",
        "not a unicast address",
    );
    assert_error(
        &subnet("domain-search = [\"ok.example\", \"bad_name\"]", ""),
        "subnet6[0].domain-search[1]",
        "is not a valid name",
    );
    for v in ["59", "86401"] {
        assert_error(
            &subnet(&format!("sol-max-rt = {v}"), ""),
            "subnet6[0].sol-max-rt",
            "RFC 8415 §21.24",
        );
    }
    assert_error(
        &subnet("information-refresh-time = 599", ""),
        "subnet6[0].information-refresh-time",
        "below the minimum of 600",
    );
}

fn reservation(body: &str) -> String {
    subnet(
        "",
        &format!(
            "[[subnet6.pd-pool]]\nprefix = \"2001:db8:8000::/40\"\ndelegated-len = 56\n\
             [[subnet6.reservation]]\n{body}"
        ),
    )
}

#[test]
fn reservation_rules() {
    let c = valid(&reservation(
        "duid = \"000300010a0b0c0d0e0f\"\naddress = \"2001:db8:1::5\"\nprefix = \"2001:db8:8000:500::/56\"",
    ));
    let r = &c.subnet6[0].reservation[0];
    assert_eq!(r.duid, [0, 3, 0, 1, 10, 11, 12, 13, 14, 15]);
    assert_eq!(r.address, Some(ip("2001:db8:1::5")));
    assert_eq!(r.prefix, Some(net("2001:db8:8000:500::/56")));
    // A prefix outside every pd-pool and link is a static delegation.
    valid(&reservation(
        "duid = \"00:03:00:01:02\"\nprefix = \"2001:db8:f000::/48\"",
    ));

    assert_error(
        &reservation("address = \"2001:db8:1::5\""),
        "subnet6[0].reservation[0].duid",
        "is required",
    );
    assert_error(
        &reservation("duid = \"00:01\"\naddress = \"2001:db8:1::5\""),
        "subnet6[0].reservation[0].duid",
        "3 to 130 bytes",
    );
    assert_error(
        &reservation("duid = \"xx\"\naddress = \"2001:db8:1::5\""),
        "subnet6[0].reservation[0].duid",
        "is not hex bytes",
    );
    assert_error(
        &reservation("duid = \"00:03:00:01:02\""),
        "subnet6[0].reservation[0]",
        "needs an address, a prefix or both",
    );
    assert_error(
        &reservation("duid = \"00:03:00:01:02\"\naddress = \"2001:db8:2::5\""),
        "subnet6[0].reservation[0].address",
        "outside prefix 2001:db8:1::/64",
    );
    assert_error(
        &reservation("duid = \"00:03:00:01:02\"\naddress = \"2001:db8:1::\""),
        "subnet6[0].reservation[0].address",
        "Subnet-Router anycast",
    );
    assert_error(
        &reservation("duid = \"00:03:00:01:02\"\nprefix = \"2001:db8:8000:500::/60\""),
        "subnet6[0].reservation[0].prefix",
        "not one of its /56 delegated prefixes",
    );
    assert_error(
        &reservation("duid = \"00:03:00:01:02\"\nprefix = \"2001:db8:1::/60\""),
        "subnet6[0].reservation[0].prefix",
        "overlaps the link prefix of subnet6[0]",
    );
    let dup = reservation(
        "duid = \"00:03:00:01:02\"\naddress = \"2001:db8:1::5\"\n\
         [[subnet6.reservation]]\nduid = \"00:03:00:01:02\"\naddress = \"2001:db8:1::5\"\n\
         prefix = \"2001:db8:f000::/48\"\n\
         [[subnet6.reservation]]\nduid = \"00:03:00:01:03\"\nprefix = \"2001:db8:f000::/52\"",
    );
    assert_error(
        &dup,
        "subnet6[0].reservation[1].duid",
        "already reserved by reservation[0]",
    );
    assert_error(
        &dup,
        "subnet6[0].reservation[1].address",
        "already reserved by reservation[0]",
    );
    assert_error(
        &dup,
        "subnet6[0].reservation[2].prefix",
        "overlaps subnet6[0].reservation[1].prefix",
    );
    // A prefix fitting another subnet's pd-pool is refused: that pool hands it out.
    let other = "[[subnet6]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n\
                 [[subnet6.pd-pool]]\nprefix = \"2001:db8:8000::/40\"\ndelegated-len = 56\n\
                 [[subnet6]]\nid = 2\nprefix = \"2001:db8:2::/64\"\n\
                 [[subnet6.reservation]]\nduid = \"00:03:00:01:02\"\nprefix = \"2001:db8:8000:500::/56\"\n";
    assert_error(
        other,
        "subnet6[1].reservation[0].prefix",
        "overlaps subnet6[0].pd-pool[0]",
    );
}

fn option(body: &str) -> String {
    subnet("", &format!("[[subnet6.option]]\n{body}"))
}

#[test]
fn option_rules() {
    let cases: &[(&str, &[u8])] = &[
        (
            "code = 31\nip = \"2001:db8::7\"",
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
        ),
        ("code = 65000\ntext = \"hi\"", b"hi"),
        ("code = 17\nhex = \"00:00:00:09:01\"", &[0, 0, 0, 9, 1]),
        ("code = 7\nu8 = 255", &[255]),
        ("code = 300\nu16 = 1500", &[0x05, 0xdc]),
        ("code = 300\nu32 = 600", &[0, 0, 2, 0x58]),
    ];
    for (body, data) in cases {
        assert_eq!(
            valid(&option(body)).subnet6[0].option[0].data,
            *data,
            "{body}"
        );
    }
    let c = valid(&option(
        "code = 22\nips = [\"2001:db8::1\", \"2001:db8::2\"]",
    ));
    assert_eq!(c.subnet6[0].option[0].data.len(), 32);
    assert_error(
        &option("text = \"x\""),
        "subnet6[0].option[0].code",
        "is required",
    );
    for n in ["0", "65536"] {
        assert_error(
            &option(&format!("code = {n}\ntext = \"x\"")),
            "subnet6[0].option[0].code",
            "outside 1..=65535",
        );
    }
    assert_error(
        &option("code = 2\nhex = \"00\""),
        "subnet6[0].option[0].code",
        "managed by the server",
    );
    assert_error(
        &option("code = 25\nhex = \"00\""),
        "subnet6[0].option[0].code",
        "managed by the server",
    );
    assert_error(
        &option("code = 23\nip = \"2001:db8::1\""),
        "subnet6[0].option[0].code",
        "use `dns-servers`",
    );
    assert_error(
        &option("code = 82\nu32 = 60"),
        "subnet6[0].option[0].code",
        "use `sol-max-rt`",
    );
    assert_error(
        &option("code = 31"),
        "subnet6[0].option[0]",
        "exactly one value",
    );
    assert_error(
        &option("code = 31\nu8 = 1\nu16 = 2"),
        "subnet6[0].option[0]",
        "exactly one value",
    );
    assert_error(
        &option("code = 31\nip = \"10.0.0.1\""),
        "subnet6[0].option[0].ip",
        "not an IPv6 address",
    );
    assert_error(
        &option("code = 31\nu16 = 70000"),
        "subnet6[0].option[0].u16",
        "outside 0..=65535",
    );
    let big = "ab".repeat(1025);
    assert_error(
        &option(&format!("code = 31\nhex = \"{big}\"")),
        "subnet6[0].option[0]",
        "at most 1024",
    );
    let dup = subnet(
        "",
        "[[subnet6.option]]\ncode = 31\nu8 = 1\n[[subnet6.option]]\ncode = 31\nu8 = 2\n",
    );
    assert_error(
        &dup,
        "subnet6[0].option[1].code",
        "already set by option[0]",
    );
}

#[test]
fn unknown_keys_are_refused() {
    let errs = errors(&subnet("lease-time = 10", ""));
    assert!(errs[0].1.contains("unknown field `lease-time`"), "{errs:?}");
    let errs = errors(&pd("prefix = \"2001:db8:8000::/40\"\ndelegated_len = 56"));
    assert!(
        errs[0].1.contains("unknown field `delegated_len`"),
        "{errs:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "[server]\nlisten6 = [\"nope\"]\n\
                [[subnet6]]\nid = 1\nprefix = \"2001:db8:1::/64\"\nsol-max-rt = 1\n\
                [[subnet6.pool]]\nrange = \"2001:db8:2::1-2001:db8:2::9\"\n\
                [[subnet6.pd-pool]]\nprefix = \"2001:db8:8000::/40\"\ndelegated-len = 30\n";
    let fields: Vec<String> = errors(text).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "server.listen6[0]",
            "subnet6[0].pool[0]",
            "subnet6[0].pd-pool[0].delegated-len",
            "subnet6[0].sol-max-rt"
        ]
    );
}
