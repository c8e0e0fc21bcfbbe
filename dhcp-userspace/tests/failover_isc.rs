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
use std::net::TcpStream;
use std::time::Duration;

use twinlease::wire::failover::{
    Header, MessageType, MessageWriter, Opt, PROTOCOL_VERSION, Packet, ServerState, frame_len, opt,
};

#[path = "common/isc.rs"]
mod isc;

use isc::now;

const CHILD_ENV: &str = "TWINLEASE_FAILOVER_ISC_IN_NETNS";
const TEST_NAME: &str = "isc_dhcpd_primary_accepts_our_connect";

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
    isc::run(CHILD_ENV, TEST_NAME, String::new, talk_to_primary);
}

fn talk_to_primary() {
    let mut s = isc::connect_primary();
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
