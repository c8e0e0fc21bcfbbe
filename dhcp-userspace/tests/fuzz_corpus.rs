//! Every seed of the cargo-fuzz corpora (`fuzz/seeds/<target>/`) and every crash reproducer
//! kept under `fuzz/regressions/<target>/` runs through the same body as its fuzz target, in
//! plain `cargo test` (no nightly needed). The seeds are also checked to reach what they were
//! written for (grants, relayed replies), so a corpus that stopped exercising the engine fails.

use std::fs;
use std::path::{Path, PathBuf};

const TARGETS: [&str; 7] = [
    "dhcpv4_parse",
    "dhcpv6_parse",
    "failover_parse",
    "failover6_parse",
    "config_parse",
    "engine_v4",
    "engine_v6",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// `(name, bytes)` of every file under `dir`, sorted by name; empty when `dir` is absent.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = rd
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    v.sort();
    v
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let v = files(&fuzz_dir().join("seeds").join(target));
    assert!(!v.is_empty(), "no seeds for {target}");
    v
}

/// Runs `data` through the body of `target`; returns the engine trace (empty for the others).
fn run(target: &str, data: &[u8]) -> Vec<String> {
    match target {
        "dhcpv4_parse" => twinlease::wire::v4::fuzz_one(data),
        "dhcpv6_parse" => twinlease::wire::v6::fuzz_one(data),
        "failover_parse" => twinlease::wire::failover::fuzz_one(data),
        "failover6_parse" => twinlease::wire::failover6::fuzz_one(data),
        "config_parse" => twinlease::config::fuzz::fuzz_one(data),
        "engine_v4" => return twinlease::engine::fuzz::fuzz_v4(data),
        "engine_v6" => return twinlease::engine::fuzz::fuzz_v6(data),
        other => panic!("unknown fuzz target {other}"),
    }
    Vec::new()
}

fn traces(target: &str) -> Vec<(String, Vec<String>)> {
    seeds(target)
        .into_iter()
        .map(|(name, data)| {
            let t = run(target, &data);
            (name, t)
        })
        .collect()
}

fn trace_of<'a>(all: &'a [(String, Vec<String>)], name: &str) -> &'a [String] {
    &all.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("seed {name} missing"))
        .1
}

#[test]
fn every_regression_reproducer_passes() {
    let dir = fuzz_dir().join("regressions");
    for target in TARGETS {
        for (name, data) in files(&dir.join(target)) {
            eprintln!("regression {target}/{name}");
            run(target, &data);
        }
    }
    // A reproducer outside a target's folder would silently never run.
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            assert!(
                name == "README.md" || TARGETS.contains(&name.as_str()),
                "fuzz/regressions/{name} is not a target folder"
            );
        }
    }
}

#[test]
fn wire_seeds_parse_as_requests() {
    for (name, data) in seeds("dhcpv4_parse") {
        run("dhcpv4_parse", &data);
        let mut scratch = twinlease::wire::v4::Scratch::new();
        let r = twinlease::wire::v4::Request::parse(&data, &mut scratch)
            .unwrap_or_else(|e| panic!("v4 seed {name} does not parse: {e}"));
        assert!(r.message_type.is_some(), "v4 seed {name} has no type");
    }
    for (name, data) in seeds("dhcpv6_parse") {
        run("dhcpv6_parse", &data);
        let r = twinlease::wire::v6::Request::parse(&data)
            .unwrap_or_else(|e| panic!("v6 seed {name} does not parse: {e}"));
        assert!(r.client_id.is_some(), "v6 seed {name} has no client id");
    }
    let bytes = fs::read(fuzz_dir().join("seeds/dhcpv6_parse/relay2_request")).expect("seed");
    let relayed = twinlease::wire::v6::Request::parse(&bytes).expect("parses");
    assert_eq!(relayed.relays().len(), 2);
    assert_eq!(relayed.ia_na().len() + relayed.ia_pd().len(), 2);
}

#[test]
fn failover_seeds_are_the_dhcpd_messages_and_parse() {
    use twinlease::wire::failover::{MessageType, Packet};
    let mut seen = Vec::new();
    for (name, data) in seeds("failover_parse") {
        run("failover_parse", &data);
        let p = Packet::new_checked(&data[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            usize::from(p.length()),
            data.len(),
            "{name}: one whole message"
        );
        seen.push(p.message_type().unwrap_or_else(|e| panic!("{name}: {e}")));
    }
    for t in [
        MessageType::Connect,
        MessageType::ConnectAck,
        MessageType::State,
        MessageType::UpdReqAll,
        MessageType::UpdDone,
        MessageType::BndUpd,
        MessageType::BndAck,
        MessageType::PoolResp,
    ] {
        assert!(seen.contains(&t), "no failover_parse seed of type {t:?}");
    }
}

#[test]
fn failover6_seeds_are_whole_streams_of_known_messages() {
    use twinlease::wire::failover6::{
        BindingBody, BindingReply6, BindingUpdate6, Connect6, ConnectReply6, Message, MessageType,
        State6, frame_len, frame_message,
    };
    let mut seen = Vec::new();
    for (name, data) in seeds("failover6_parse") {
        run("failover6_parse", &data);
        let mut rest = &data[..];
        while !rest.is_empty() {
            let msg = frame_message(rest).unwrap_or_else(|e| panic!("{name}: {e}"));
            let m = Message::new_checked(msg).expect("header");
            let t = m.message_type().unwrap_or_else(|e| panic!("{name}: {e}"));
            let typed = match t {
                MessageType::Connect => Connect6::parse(m).map(drop),
                MessageType::ConnectReply => ConnectReply6::parse(m).map(|r| assert!(r.accepted())),
                MessageType::State => State6::parse(m).map(drop),
                MessageType::BndUpd => BindingUpdate6::parse(m).map(|u| match u.body {
                    BindingBody::Client(cd) => assert_eq!(cd.leases().count(), 2),
                    BindingBody::Prefix(p) => assert_eq!(p.prefix_len, 56),
                }),
                MessageType::BndReply => BindingReply6::parse(m).map(|r| {
                    let BindingBody::Client(cd) = r.body else {
                        panic!("{name}: reply without client data");
                    };
                    let l = cd.leases().next().expect("a binding").expect("well formed");
                    assert_eq!(l.status_code.map(|s| s.code), Some(16));
                }),
                _ => Ok(()),
            };
            typed.unwrap_or_else(|e| panic!("{name}: {t:?}: {e}"));
            seen.push(t);
            rest = &rest[frame_len(rest).expect("length")..];
        }
    }
    for t in [
        MessageType::Connect,
        MessageType::ConnectReply,
        MessageType::State,
        MessageType::BndUpd,
        MessageType::BndReply,
        MessageType::Disconnect,
    ] {
        assert!(seen.contains(&t), "no seed has a {t:?}");
    }
}

#[test]
fn config_seeds_run_and_the_examples_are_accepted() {
    for (name, data) in seeds("config_parse") {
        run("config_parse", &data);
        let text = String::from_utf8(data).expect("UTF-8 seed");
        let parsed = twinlease::config::parse(&text, &name);
        assert_eq!(
            parsed.is_err(),
            name == "invalid.toml",
            "{name}: {parsed:?}"
        );
    }
}

#[test]
fn engine_v4_seeds_reach_grants() {
    let all = traces("engine_v4");
    for (name, t) in &all {
        eprintln!("engine_v4/{name}: {t:?}");
    }
    let dora = trace_of(&all, "dora");
    assert_eq!(dora, ["Offer 10.0.0.100", "Ack 10.0.0.100 durable"]);
    let renew = trace_of(&all, "dora_renew_release");
    assert_eq!(renew[2], "Ack 10.0.0.100 durable");
    assert!(renew[3].starts_with("silent"), "{renew:?}");
    let relay = trace_of(&all, "relay_82");
    assert_eq!(
        relay,
        [
            "Offer 10.1.0.100",
            "Ack 10.1.0.100 durable",
            "silent released"
        ]
    );
    assert_eq!(
        trace_of(&all, "relay_rapid_ls")[0],
        "Ack 10.1.0.100 durable"
    );
    assert_eq!(trace_of(&all, "reserved"), ["Offer 10.0.0.10"]);
}

#[test]
fn engine_v6_seeds_reach_grants() {
    let all = traces("engine_v6");
    for (name, t) in &all {
        eprintln!("engine_v6/{name}: {t:?}");
    }
    let sr = trace_of(&all, "solicit_request");
    let na_pd = "2001:db8:1::107/128 2001:db8:8000:700::/56";
    assert_eq!(
        sr,
        [
            format!("Advertise {na_pd}"),
            format!("Reply durable {na_pd}")
        ]
    );
    let rapid = trace_of(&all, "rapid_renew_rebind_release");
    assert!(
        rapid.iter().take(3).all(|t| t.starts_with("Reply durable")),
        "{rapid:?}"
    );
    let relay = trace_of(&all, "relay2");
    assert_eq!(
        relay[1],
        "Reply durable 2001:db8:2::101/128 2001:db8:9000:1::/64"
    );
    let reserved = trace_of(&all, "reserved");
    assert!(reserved[0].contains("2001:db8:1::10/128"), "{reserved:?}");
}
