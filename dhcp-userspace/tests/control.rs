//! The control API end to end, in process and without root: a server on loopback acting for
//! a relay agent (giaddr 127.0.0.1), leases granted by real DHCP exchanges, then lookups,
//! paging, statistics, expire and delete, metrics, token checks and the `ctl` command.
#![expect(
    clippy::float_cmp,
    clippy::cast_precision_loss,
    reason = "metric values here are small integers, exact in f64"
)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use twinlease::control::client::{Client, ClientError};
use twinlease::dispatch::Server;
use twinlease::wire::v4::{MessageType, OptionIter, Packet, ReplyHeader, ReplyWriter, opt};

const GIADDR: Ipv4Addr = Ipv4Addr::LOCALHOST;
const TOKEN: &str = "s3cret-token";
/// The pool: eight addresses.
const POOL: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(198, 18, 1, 10), Ipv4Addr::new(198, 18, 1, 17));

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, port: u16, relay_port: u16, control: &str) -> String {
    format!(
        r#"[server]
data-dir = "{}"
workers = 2
durability = "fsync"
listen = ["127.0.0.1:{port}"]
relay-port = {relay_port}
offer-hold-secs = 30
[[subnet4]]
id = 7
subnet = "198.18.0.0/16"
relay-addresses = ["127.0.0.1"]
routers = ["198.18.0.1"]
lease-time = 3600
[[subnet4.pool]]
range = "{}-{}"
{control}
"#,
        dir.display(),
        POOL.0,
        POOL.1
    )
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x55, b[0], b[1], b[2], b[3]]
}

fn mac_text(i: u32) -> String {
    mac(i)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A relay agent speaking for many simulated clients (the helper of `loopback.rs`, trimmed),
/// counting what it sends by message type.
struct Relay {
    sock: UdpSocket,
    server: SocketAddrV4,
    sent: HashMap<u8, u64>,
}

impl Relay {
    fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            sock,
            server: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            sent: HashMap::new(),
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    fn send(
        &mut self,
        kind: MessageType,
        i: u32,
        xid: u32,
        requested: Option<Ipv4Addr>,
        sid: Option<Ipv4Addr>,
    ) {
        let mut hw = [0u8; 16];
        hw[..6].copy_from_slice(&mac(i));
        let hdr = ReplyHeader {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 1,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: GIADDR,
            chaddr: hw,
        };
        let mut buf = [0u8; 600];
        let mut w = ReplyWriter::new(&mut buf, &hdr).unwrap();
        w.option_u8(opt::MESSAGE_TYPE, kind as u8).unwrap();
        let mut cid = [0u8; 7];
        cid[0] = 1;
        cid[1..].copy_from_slice(&mac(i));
        w.option(opt::CLIENT_ID, &cid).unwrap();
        if let Some(r) = requested {
            w.option_ip(opt::REQUESTED_IP, r).unwrap();
        }
        if let Some(s) = sid {
            w.option_ip(opt::SERVER_ID, s).unwrap();
        }
        let n = w.finish();
        self.sock.send_to(&buf[..n], self.server).unwrap();
        *self.sent.entry(kind as u8).or_default() += 1;
    }

    /// The reply with this xid: (message type, yiaddr, server id), waiting at most `wait`.
    fn wait(&self, xid: u32, wait: Duration) -> Option<(u8, Ipv4Addr, Option<Ipv4Addr>)> {
        let end = Instant::now() + wait;
        let mut buf = [0u8; 1500];
        while Instant::now() < end {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(p) = Packet::new_checked(&buf[..n]) else {
                continue;
            };
            if p.xid() != xid {
                continue;
            }
            let (mut kind, mut sid) = (0, None);
            for o in OptionIter::new(&buf[..n]) {
                let Ok((c, v)) = o else { break };
                match c {
                    opt::MESSAGE_TYPE => kind = v[0],
                    opt::SERVER_ID => sid = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                    _ => {}
                }
            }
            return Some((kind, p.yiaddr(), sid));
        }
        None
    }

    /// DISCOVER + REQUEST for client `i`: the address acknowledged, or `None` when no offer
    /// came within `wait`.
    fn dora(&mut self, i: u32, wait: Duration) -> Option<Ipv4Addr> {
        let xid = i.wrapping_mul(2_654_435_761);
        self.send(MessageType::Discover, i, xid, None, None);
        let (kind, yiaddr, sid) = self.wait(xid, wait)?;
        assert_eq!(kind, MessageType::Offer as u8);
        self.send(MessageType::Request, i, xid ^ 1, Some(yiaddr), sid);
        let (kind, ack, _) = self.wait(xid ^ 1, Duration::from_secs(3))?;
        assert_eq!(kind, MessageType::Ack as u8, "client {i}");
        Some(ack)
    }
}

/// Parse Prometheus text: `name{labels}` → value; checks every line has the 0.0.4 shape.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "bad line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line:?}");
        }
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "duplicate {series}"
        );
    }
    out
}

fn metric(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// Scrape until `series` reaches `want` (counters are folded once per batch, just after the
/// replies go out), at most 3 s; the last scrape.
fn scrape_until(c: &Client, series: &str, want: f64) -> HashMap<String, f64> {
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = c.request("GET", "/metrics").unwrap();
        assert_eq!(status, 200, "{body}");
        let m = parse_metrics(&body);
        if (metric(&m, series) - want).abs() < f64::EPSILON || Instant::now() > end {
            return m;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn leases_of(v: &Value) -> Vec<Value> {
    v["leases"].as_array().cloned().unwrap_or_default()
}

fn addr_of(l: &Value) -> Ipv4Addr {
    l["addr"].as_str().unwrap().parse().unwrap()
}

fn pool_stats(c: &Client) -> Value {
    let v = c.json("GET", "/v1/stats").unwrap();
    let subnets = v["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 1, "{v}");
    assert_eq!(
        (subnets[0]["family"].as_str(), subnets[0]["id"].as_u64()),
        (Some("v4"), Some(7))
    );
    subnets[0].clone()
}

#[test]
fn control_api_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::new();
    let port = free_port();
    relay.server = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let text = config(
        &dir.path().join("data"),
        port,
        relay.port(),
        &format!("[control]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\""),
    );
    let cfg = twinlease::config::parse(&text, "control.toml").unwrap();
    let server = Server::start(&cfg).unwrap();
    let api_addr = server.control_addr().expect("control API listening");
    let url = format!("http://{api_addr}");
    let api = Client::new(&url, Some(TOKEN.into())).unwrap();

    // Token: required, and must match.
    for token in [None, Some("wrong".to_owned())] {
        let (status, body) = Client::new(&url, token)
            .unwrap()
            .request("GET", "/v1/stats")
            .unwrap();
        assert_eq!(status, 401, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("token"), "{body}");
    }

    // Fill the pool: eight clients, eight addresses.
    let mut by_client = HashMap::new();
    for i in 1..=8 {
        let a = relay
            .dora(i, Duration::from_secs(5))
            .expect("lease granted");
        assert!((u32::from(POOL.0)..=u32::from(POOL.1)).contains(&u32::from(a)));
        by_client.insert(i, a);
    }
    let a3 = by_client[&3];

    // Lookup by address, MAC and client identifier.
    let v = api.json("GET", &format!("/v1/leases?addr={a3}")).unwrap();
    let found = leases_of(&v);
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(
        (
            found[0]["family"].as_str(),
            found[0]["state"].as_str(),
            found[0]["subnet_id"].as_u64()
        ),
        (Some("v4"), Some("active"), Some(7))
    );
    assert_eq!(found[0]["chaddr"].as_str(), Some(mac_text(3).as_str()));
    let v = api
        .json("GET", &format!("/v1/leases?mac={}", mac_text(5)))
        .unwrap();
    assert_eq!(
        leases_of(&v).iter().map(addr_of).collect::<Vec<_>>(),
        vec![by_client[&5]]
    );
    let v = api
        .json("GET", &format!("/v1/leases?client-id=01:{}", mac_text(6)))
        .unwrap();
    assert_eq!(
        leases_of(&v).iter().map(addr_of).collect::<Vec<_>>(),
        vec![by_client[&6]]
    );
    let v = api.json("GET", "/v1/leases?mac=02:55:ff:ff:ff:ff").unwrap();
    assert!(leases_of(&v).is_empty());
    let err = api.json("GET", "/v1/leases?addr=nonsense").unwrap_err();
    assert!(
        matches!(err, ClientError::Status { status: 400, .. }),
        "{err}"
    );

    // Paging: 3 + 3 + 2, in address order, every lease once.
    let mut listed = Vec::new();
    let mut path = "/v1/leases?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let v = api.json("GET", &path).unwrap();
        let page = leases_of(&v);
        pages += 1;
        assert!(page.len() <= 3);
        listed.extend(page.iter().map(addr_of));
        match v["next_cursor"].as_str() {
            Some(cur) => path = format!("/v1/leases?limit=3&cursor={cur}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut want: Vec<Ipv4Addr> = by_client.values().copied().collect();
    want.sort();
    assert_eq!(listed, want);

    // Statistics match the pool.
    let subnet = pool_stats(&api);
    assert_eq!(
        (
            subnet["total"].as_u64(),
            subnet["active"].as_u64(),
            subnet["free"].as_u64(),
            subnet["declined"].as_u64()
        ),
        (Some(8), Some(8), Some(0), Some(0)),
        "{subnet}"
    );

    // The pool is full: a ninth client gets no offer.
    assert_eq!(relay.dora(9, Duration::from_millis(600)), None);

    // Metrics match what was sent.
    let discovers = relay.sent[&(MessageType::Discover as u8)] as f64;
    let requests = relay.sent[&(MessageType::Request as u8)] as f64;
    let m = scrape_until(
        &api,
        r#"twinlease_requests_total{family="v4",path="socket",type="discover"}"#,
        discovers,
    );
    assert_eq!(
        metric(
            &m,
            r#"twinlease_requests_total{family="v4",path="socket",type="discover"}"#
        ),
        discovers
    );
    assert_eq!(
        metric(
            &m,
            r#"twinlease_requests_total{family="v4",path="socket",type="request"}"#
        ),
        requests
    );
    assert_eq!(
        metric(
            &m,
            r#"twinlease_replies_total{family="v4",path="socket",type="offer"}"#
        ),
        8.0
    );
    assert_eq!(
        metric(
            &m,
            r#"twinlease_replies_total{family="v4",path="socket",type="ack"}"#
        ),
        8.0
    );
    assert_eq!(
        metric(&m, r#"twinlease_packets_received_total{path="socket"}"#),
        discovers + requests
    );
    assert_eq!(
        metric(&m, r#"twinlease_packets_sent_total{path="socket"}"#),
        16.0
    );
    assert_eq!(
        metric(&m, r#"twinlease_leases_granted_total{family="v4"}"#),
        8.0
    );
    assert_eq!(
        metric(&m, r#"twinlease_drops_total{reason="pool_exhausted"}"#),
        1.0
    );
    assert_eq!(metric(&m, "twinlease_ring_full_total"), 0.0);
    let commits = metric(&m, "twinlease_wal_commits_total");
    assert!(commits >= 1.0);
    assert_eq!(metric(&m, "twinlease_wal_commit_seconds_count"), commits);
    assert_eq!(
        metric(&m, r#"twinlease_wal_commit_seconds_bucket{le="+Inf"}"#),
        commits
    );
    assert!(metric(&m, "twinlease_batch_size_sum") >= discovers + requests);
    assert_eq!(metric(&m, "twinlease_pool_stats_available"), 1.0);
    let pool_series = |state: &str| {
        m.iter()
            .find(|(k, _)| {
                k.starts_with("twinlease_pool_addresses{family=\"v4\",subnet=\"7\"")
                    && k.contains(&format!("state=\"{state}\""))
            })
            .map(|(_, v)| *v)
    };
    assert_eq!(
        (
            pool_series("total"),
            pool_series("free"),
            pool_series("active")
        ),
        (Some(8.0), Some(0.0), Some(8.0))
    );
    assert!(m.iter().any(|(k, v)| {
        k.starts_with("twinlease_pool_utilisation{family=\"v4\",subnet=\"7\"")
            && (*v - 1.0).abs() < 1e-9
    }));

    // Expire: durable, free again, and offered to the next client.
    let v = api
        .json("POST", &format!("/v1/leases/{a3}/expire"))
        .unwrap();
    let e = v["expired"].as_array().unwrap();
    assert_eq!(
        (e.len(), e[0]["state"].as_str()),
        (1, Some("expired")),
        "{v}"
    );
    let v = api.json("GET", &format!("/v1/leases?addr={a3}")).unwrap();
    assert_eq!(leases_of(&v)[0]["state"].as_str(), Some("expired"));
    let subnet = pool_stats(&api);
    assert_eq!(
        (
            subnet["active"].as_u64(),
            subnet["free"].as_u64(),
            subnet["expired"].as_u64()
        ),
        (Some(7), Some(1), Some(1)),
        "{subnet}"
    );
    assert_eq!(
        relay.dora(10, Duration::from_secs(3)),
        Some(a3),
        "the expired address is offered again"
    );
    let err = api
        .json(
            "POST",
            &format!("/v1/leases/{}/expire", Ipv4Addr::new(198, 18, 9, 9)),
        )
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Status { status: 404, .. }),
        "{err}"
    );

    // Delete: the record is gone and the address free; deleting again is 404.
    let a5 = by_client[&5];
    let v = api.json("DELETE", &format!("/v1/leases/{a5}")).unwrap();
    assert_eq!(v["deleted"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(leases_of(&api.json("GET", &format!("/v1/leases?addr={a5}")).unwrap()).is_empty());
    let err = api.json("DELETE", &format!("/v1/leases/{a5}")).unwrap_err();
    assert!(
        matches!(err, ClientError::Status { status: 404, .. }),
        "{err}"
    );
    let subnet = pool_stats(&api);
    assert_eq!(
        (subnet["active"].as_u64(), subnet["free"].as_u64()),
        (Some(7), Some(1)),
        "{subnet}"
    );
    // Expiring a lease that is not active: 409.
    let a6 = by_client[&6];
    api.json("POST", &format!("/v1/leases/{a6}/expire"))
        .unwrap();
    let err = api
        .json("POST", &format!("/v1/leases/{a6}/expire"))
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Status { status: 409, .. }),
        "{err}"
    );

    // The other endpoints.
    let v = api.json("GET", "/v1/failover").unwrap();
    assert_eq!(v["relationships"], serde_json::json!([]));
    for (method, path, status) in [
        ("POST", "/v1/reload", 409),
        ("GET", "/v1/nothing", 404),
        ("POST", "/v1/stats", 405),
        ("GET", "/v1/leases?limit=0", 400),
    ] {
        let (st, body) = api.request(method, path).unwrap();
        assert_eq!(st, status, "{method} {path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].is_string(), "{body}");
    }

    // `twinlease ctl`, for humans and for scripts.
    let tok = dir.path().join("token");
    std::fs::write(&tok, format!("{TOKEN}\n")).unwrap();
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_twinlease"))
            .args(["ctl", "--url", &url, "--token-file"])
            .arg(&tok)
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, out) = ctl(&["--json", "stats"]);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["subnets"][0]["total"].as_u64(), Some(8));
    let (code, out) = ctl(&["leases"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("FAMILY"), "{out}");
    assert!(
        out.contains(&by_client[&1].to_string()) && out.contains("8 lease(s)"),
        "{out}"
    );
    let (code, out) = ctl(&["lease", &by_client[&2].to_string()]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("active") && out.contains(&mac_text(2)),
        "{out}"
    );
    let (code, _) = ctl(&["expire", &by_client[&2].to_string()]);
    assert_eq!(code, Some(0));
    let (code, out) = ctl(&["--json", "lease", &by_client[&2].to_string()]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"expired\""), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_twinlease"))
        .args(["ctl", "--url", &url, "stats"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    server.shutdown();

    // After a restart the expired and deleted records are as the API left them.
    let server = Server::start(&cfg).unwrap();
    let api = Client::new(
        &format!("http://{}", server.control_addr().unwrap()),
        Some(TOKEN.into()),
    )
    .unwrap();
    let v = api.json("GET", &format!("/v1/leases?addr={a6}")).unwrap();
    assert_eq!(leases_of(&v)[0]["state"].as_str(), Some("expired"));
    // Client 3's expired record and client 10's binding (two records when the clients
    // belong to different workers).
    let v = api.json("GET", &format!("/v1/leases?addr={a3}")).unwrap();
    let active: Vec<Value> = leases_of(&v)
        .into_iter()
        .filter(|l| l["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{v}");
    assert_eq!(active[0]["chaddr"].as_str(), Some(mac_text(10).as_str()));
    server.shutdown();
}

#[test]
fn non_loopback_control_requires_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let base = |control: &str| config(dir.path(), 6767, 6768, control);
    let errs = twinlease::config::parse(&base("[control]\nlisten = \"0.0.0.0:8547\""), "c.toml")
        .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert_eq!(e.field, "control.listen");
    assert!(e.reason.contains("token"), "{e}");
    assert!(
        twinlease::config::parse(
            &base("[control]\nlisten = \"0.0.0.0:8547\"\ntoken = \"t\""),
            "c.toml"
        )
        .is_ok()
    );
    assert!(
        twinlease::config::parse(
            &base("[control]\nlisten = \"[::]:8547\"\ntoken-file = \"/etc/t\""),
            "c.toml"
        )
        .is_ok()
    );
    let cfg = twinlease::config::parse(&base("[control]"), "c.toml").unwrap();
    assert_eq!(
        cfg.control.unwrap().listen,
        "127.0.0.1:8547".parse().unwrap()
    );
    assert!(
        twinlease::config::parse(&base(""), "c.toml")
            .unwrap()
            .control
            .is_none()
    );
    let errs = twinlease::config::parse(
        &base("[control]\ntoken = \"a\"\ntoken-file = \"/t\""),
        "c.toml",
    )
    .unwrap_err();
    assert_eq!(errs.errors[0].field, "control.token-file");

    // A configuration built in code is refused at start, before any thread or socket.
    let mut cfg = twinlease::config::parse(&base(""), "c.toml").unwrap();
    cfg.control = Some(twinlease::config::Control {
        listen: "0.0.0.0:0".parse().unwrap(),
        token: None,
        token_file: None,
    });
    let err = Server::start(&cfg).err().expect("refused");
    assert!(err.to_string().contains("no token"), "{err}");
}
