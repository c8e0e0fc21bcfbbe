//! Interoperability of the failover codec (draft-ietf-dhc-failover-12 §6, §8) with ISC
//! dhcpd 4.4, the reference implementation of the draft.
//!
//! dhcpd runs as the PRIMARY of relationship "p" on 127.0.0.1:6470; the test connects as the
//! SECONDARY, sends CONNECT and STATE written by our codec, and parses everything dhcpd
//! sends with it. dhcpd needs a broadcast interface for its subnet (it refuses `lo`), so the
//! test re-runs itself inside a private user and network namespace (`unshare -rn`, no root
//! needed) holding a veth pair and loopback: nothing reaches a real network. It skips with a
//! message when `/usr/sbin/dhcpd` is absent or namespaces are unavailable.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use twinlease::wire::failover::{
    Header, MessageType, MessageWriter, Opt, PROTOCOL_VERSION, Packet, ServerState, frame_len, opt,
};

const DHCPD: &str = "/usr/sbin/dhcpd";
const CHILD_ENV: &str = "TWINLEASE_FAILOVER_ISC_IN_NETNS";
const TEST_NAME: &str = "isc_dhcpd_primary_accepts_our_connect";
const PRIMARY_PORT: u16 = 6470;

const CONFIG: &str = r#"authoritative;
failover peer "p" {
  primary;
  address 127.0.0.1;
  port 6470;
  peer address 127.0.0.1;
  peer port 6471;
  max-response-delay 30;
  max-unacked-updates 10;
  mclt 3600;
  split 128;
  load balance max seconds 3;
}
subnet 10.231.0.0 netmask 255.255.255.0 {
  pool {
    failover peer "p";
    range 10.231.0.10 10.231.0.50;
  }
}
"#;

/// Kills and reaps dhcpd when the test ends, however it ends.
struct Dhcpd(Child);

impl Drop for Dhcpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    u32::try_from(secs).expect("time fits the draft's 32-bit field")
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// Read one whole message from `s` into `buf`, returning its length.
fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.resize(2, 0);
    s.read_exact(&mut buf[..2])?;
    let len = frame_len(buf).expect("two bytes read");
    assert!(len >= 12, "dhcpd sent a message length of {len}");
    buf.resize(len, 0);
    s.read_exact(&mut buf[2..])?;
    Ok(len)
}

/// Parse a message from dhcpd and every one of its options with our codec.
fn check_all_options(p: &Packet<&[u8]>) {
    for o in p.option_iter() {
        let o = o.unwrap_or_else(|e| panic!("dhcpd option does not parse: {e}"));
        Opt::parse(o).unwrap_or_else(|e| panic!("dhcpd option {} does not decode: {e}", o.code));
    }
}

fn write_message(s: &mut TcpStream, header: &Header, opts: &[Opt<'_>]) {
    let mut buf = [0u8; 512];
    let mut w = MessageWriter::new(&mut buf, header).expect("header fits");
    for o in opts {
        w.opt(o).expect("option fits");
    }
    let n = w.finish();
    s.write_all(&buf[..n]).expect("send to dhcpd");
}

#[test]
fn isc_dhcpd_primary_accepts_our_connect() {
    if !Path::new(DHCPD).exists() {
        eprintln!("skipping: {DHCPD} is absent (apt-get install isc-dhcp-server)");
        return;
    }
    if std::env::var_os(CHILD_ENV).is_none() {
        let probe = Command::new("unshare")
            .args(["-rn", "true"])
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            eprintln!("skipping: cannot create a user+network namespace with `unshare -rn`");
            return;
        }
        let exe = std::env::current_exe().expect("test binary path");
        let out = Command::new("unshare")
            .arg("-rn")
            .arg(exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .output()
            .expect("re-run the test inside a namespace");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("--- in the namespace ---\n{stdout}\n{stderr}");
        assert!(out.status.success(), "the test failed inside the namespace");
        assert!(
            stdout.contains("1 passed"),
            "the test did not run inside the namespace"
        );
        return;
    }
    in_namespace();
}

fn in_namespace() {
    ip(&["link", "set", "lo", "up"]);
    ip(&["link", "add", "fo0", "type", "veth", "peer", "name", "fo1"]);
    ip(&["addr", "add", "10.231.0.1/24", "dev", "fo0"]);
    ip(&["link", "set", "fo0", "up"]);
    ip(&["link", "set", "fo1", "up"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    let pid = dir.path().join("dhcpd.pid");
    let log = dir.path().join("dhcpd.log");
    std::fs::write(&conf, CONFIG).expect("write config");
    std::fs::write(&leases, "").expect("create leases file");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(DHCPD)
        .args(["-4", "-f", "-d", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(&pid)
        .arg("fo0")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("dup log"))
        .stderr(log_file)
        .spawn()
        .expect("start dhcpd");
    let dhcpd = Dhcpd(child);
    let result = std::panic::catch_unwind(talk_to_primary);
    drop(dhcpd);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    println!("--- dhcpd log ---\n{log_text}");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn talk_to_primary() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, PRIMARY_PORT));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut s = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("dhcpd never listened on {addr}: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");

    // The primary opens with its CONNECT (draft-12 §8), carrying its MCLT and the
    // hash-bucket-assignment of the relationship.
    let mut buf = Vec::new();
    let n = read_message(&mut s, &mut buf).expect("dhcpd sends CONNECT");
    let theirs = buf[..n].to_vec();
    let p = Packet::new_checked(&theirs[..]).expect("dhcpd's CONNECT parses");
    println!("dhcpd sent {:?}: {:02x?}", p.message_type(), p.message());
    assert_eq!(p.message_type(), Ok(MessageType::Connect));
    check_all_options(&p);
    assert_eq!(p.option(opt::RELATIONSHIP_NAME), Some(&b"p"[..]));
    assert_eq!(p.option(opt::MCLT), Some(&3600u32.to_be_bytes()[..]));
    let hba = p
        .option(opt::HASH_BUCKET_ASSIGNMENT)
        .expect("the primary assigns hash buckets");
    assert_eq!(hba.len(), 32, "256 buckets, one bit each");
    // split 128: the primary takes 128 of the 256 buckets.
    let ones: u32 = hba.iter().map(|b| b.count_ones()).sum();
    assert_eq!(ones, 128);

    // Our CONNECT names the relationship and our limits, and confirms the hash buckets.
    let xid = 0x7477_0001;
    write_message(
        &mut s,
        &Header {
            msg_type: MessageType::Connect,
            time: now(),
            xid,
        },
        &[
            Opt::RelationshipName(b"p"),
            Opt::MaxUnackedBndupd(10),
            Opt::ReceiveTimer(30),
            Opt::VendorClassIdentifier(b"twinlease"),
            Opt::ProtocolVersion(PROTOCOL_VERSION),
            Opt::TlsRequest(0),
            Opt::Mclt(3600),
            Opt::HashBucketAssignment(hba),
        ],
    );

    let mut seen = Vec::new();
    let mut acked = false;
    let mut got_state = false;
    while !(acked && got_state) {
        let n = read_message(&mut s, &mut buf).unwrap_or_else(|e| {
            panic!("dhcpd stopped talking after {seen:?}: {e}");
        });
        let p = Packet::new_checked(&buf[..n]).expect("dhcpd's message parses");
        let t = p.message_type().expect("dhcpd's message type is known");
        println!("dhcpd sent {t:?}, {n} bytes: {:02x?}", p.message());
        seen.push(t);
        check_all_options(&p);
        match t {
            MessageType::ConnectAck => {
                assert_eq!(
                    p.option(opt::REJECT_REASON),
                    None,
                    "dhcpd rejected our CONNECT: {:?}",
                    p.option(opt::MESSAGE).map(String::from_utf8_lossy)
                );
                assert_eq!(p.option(opt::RELATIONSHIP_NAME), Some(&b"p"[..]));
                assert_eq!(
                    p.option(opt::PROTOCOL_VERSION),
                    Some(&[PROTOCOL_VERSION][..])
                );
                assert_eq!(p.xid(), xid, "CONNECTACK echoes our xid");
                acked = true;
            }
            MessageType::State => {
                let st = p
                    .option(opt::SERVER_STATE)
                    .expect("STATE carries server-state");
                assert_eq!(st.len(), 1);
                assert!(ServerState::try_from(st[0]).is_ok(), "state {}", st[0]);
                got_state = true;
            }
            MessageType::Disconnect => panic!("dhcpd disconnected after {seen:?}"),
            _ => {}
        }
    }

    // Answer with our own STATE (draft-12 §8): a fresh secondary starts in RECOVER.
    let t = now();
    write_message(
        &mut s,
        &Header {
            msg_type: MessageType::State,
            time: t,
            xid: xid + 1,
        },
        &[
            Opt::ServerState(ServerState::Recover.into()),
            Opt::ServerFlags(0),
            Opt::StartTimeOfState(t),
        ],
    );
    // Whatever dhcpd says next (UPDREQ, BNDUPD, CONTACT...) must parse and not be a
    // DISCONNECT; stop after a quiet second.
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut after = Vec::new();
    while after.len() < 20 {
        let Ok(n) = read_message(&mut s, &mut buf) else {
            break;
        };
        let p = Packet::new_checked(&buf[..n]).expect("dhcpd's message parses");
        let t = p.message_type().expect("dhcpd's message type is known");
        println!("dhcpd then sent {t:?}, {n} bytes");
        assert_ne!(
            t,
            MessageType::Disconnect,
            "dhcpd disconnected after our STATE"
        );
        check_all_options(&p);
        after.push(t);
    }
    // dhcpd starts in RECOVER itself, so it asks us for every binding (draft-12 §9).
    assert!(
        after.contains(&MessageType::UpdReqAll),
        "no UPDREQALL after our STATE: {after:?}"
    );
}
