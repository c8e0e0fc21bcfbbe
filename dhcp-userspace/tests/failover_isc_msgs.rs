//! The typed failover messages (draft-ietf-dhc-failover-12 §7) against ISC dhcpd 4.4.
//!
//! dhcpd runs as the PRIMARY of relationship "p" with one ACTIVE lease in its lease file;
//! the test is a fresh SECONDARY driven only by the typed message API: CONNECT, STATE
//! RECOVER, UPDDONE for dhcpd's UPDREQALL, its own UPDREQALL (dhcpd sends every binding as
//! BNDUPDs, then UPDDONE), STATE RECOVER-DONE, and once both are NORMAL it acks the BACKUP
//! BNDUPDs of dhcpd's pool balancing, sends a BNDUPD of its own and a POOLREQ. Every BNDUPD
//! is parsed with [`BindingUpdate`] and checked.
//!
//! Like `failover_isc.rs`, the test re-runs itself inside a private user and network
//! namespace (`unshare -rn`): nothing reaches a real network. It skips when dhcpd is absent
//! or namespaces are unavailable.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use twinlease::wire::failover::{
    BindingAck, BindingStatus, BindingUpdate, Connect, ConnectAck, MAX_MESSAGE_LEN, Message,
    MessageType, PROTOCOL_VERSION, Packet, PoolResp, ServerState, StateMsg, frame_len,
    write_header_only,
};

#[path = "common/isc.rs"]
mod isc;

use isc::now;

const CHILD_ENV: &str = "TWINLEASE_FAILOVER_ISC_MSGS_IN_NETNS";
const TEST_NAME: &str = "isc_dhcpd_primary_reaches_normal_with_us";
const RANGE: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 231, 0, 10), Ipv4Addr::new(10, 231, 0, 50));
const ACTIVE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 20);
const ACTIVE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const ACTIVE_UID: [u8; 7] = [1, 0x02, 0, 0, 0, 0, 0x01];

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The option codes of a message, in order.
fn codes(p: &Packet<&[u8]>) -> Vec<u16> {
    p.option_iter()
        .map(|o| o.expect("option parses").code)
        .collect()
}

#[test]
fn isc_dhcpd_primary_reaches_normal_with_us() {
    isc::run(CHILD_ENV, TEST_NAME, active_lease, talk_to_primary);
}

/// dhcpd's lease file: one ACTIVE lease, so that dhcpd has a binding with a client to send.
fn active_lease() -> String {
    let t = now();
    format!(
        "lease {ACTIVE_ADDR} {{\n  starts epoch {start};\n  ends epoch {end};\n  \
         tstp epoch {end};\n  cltt epoch {start};\n  binding state active;\n  \
         next binding state free;\n  hardware ethernet 02:00:00:00:00:01;\n  \
         uid \"\\001\\002\\000\\000\\000\\000\\001\";\n}}\n",
        start = t - 100,
        end = t + 3500,
    )
}

/// Our end of the connection: reads whole messages, writes typed ones, logs both.
struct Link {
    s: TcpStream,
    buf: Vec<u8>,
    xid: u32,
    /// Option codes of every message type dhcpd sent, first time seen.
    seen: Vec<(MessageType, Vec<u16>)>,
}

impl Link {
    /// The next message from dhcpd, or `None` after `timeout` of silence.
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        self.s.set_read_timeout(Some(timeout)).expect("timeout");
        self.buf.resize(2, 0);
        if self.s.read_exact(&mut self.buf[..2]).is_err() {
            return None;
        }
        let len = frame_len(&self.buf).expect("two bytes read");
        assert!(len >= 12, "dhcpd sent a message length of {len}");
        self.buf.resize(len, 0);
        self.s
            .read_exact(&mut self.buf[2..])
            .expect("whole message");
        let p = Packet::new_checked(&self.buf[..]).expect("dhcpd's message parses");
        let t = p.message_type().expect("known message type");
        println!(
            "<- {t:?} xid {:#x} time {} options {:?}: {}",
            p.xid(),
            p.time(),
            codes(&p),
            hex(p.message())
        );
        if !self.seen.iter().any(|(s, _)| *s == t) {
            self.seen.push((t, codes(&p)));
        }
        Some(self.buf.clone())
    }

    fn send(&mut self, what: &str, write: impl FnOnce(u32, u32, &mut [u8]) -> usize) -> u32 {
        let mut out = [0u8; MAX_MESSAGE_LEN];
        self.xid += 1;
        let xid = self.xid;
        let n = write(now(), xid, &mut out);
        println!("-> {what} xid {xid:#x}: {}", hex(&out[..n]));
        self.s.write_all(&out[..n]).expect("send to dhcpd");
        xid
    }

    /// Answer a BNDUPD with an accepting BNDACK carrying its xid (draft-12 §7.2.1).
    fn ack(&mut self, p: &Packet<&[u8]>, u: &BindingUpdate<'_>) {
        let mut out = [0u8; 64];
        let ack = BindingAck {
            addr: u.addr,
            reject: None,
        };
        let n = ack.write(now(), p.xid(), &mut out).expect("BNDACK fits");
        self.s.write_all(&out[..n]).expect("send BNDACK");
    }
}

/// Check one BNDUPD from dhcpd and return it (owned fields as parsed).
fn check_bndupd(bytes: &[u8]) -> (Ipv4Addr, BindingStatus) {
    let p = Packet::new_checked(bytes).expect("parses");
    let u = BindingUpdate::parse(&p).expect("dhcpd's BNDUPD parses");
    assert!(
        (RANGE.0..=RANGE.1).contains(&u.addr),
        "BNDUPD for {} outside dhcpd's range",
        u.addr
    );
    // dhcpd's own rule for what it accepts holds for what it sends.
    assert_eq!(u.check(), Ok(()), "{u:?}");
    // dhcpd always sends these two times (draft-12 would omit them outside ACTIVE).
    assert!(u.lease_expiry.is_some() && u.potential_expiry.is_some());
    assert!(u.start_time_of_state.is_some());
    let parts = u.to_lease_parts().expect("lease parts");
    assert_eq!(parts.addr, u.addr);
    if u.addr == ACTIVE_ADDR {
        assert_eq!(u.status, BindingStatus::Active);
        assert_eq!(u.client_id, Some(&ACTIVE_UID[..]));
        assert_eq!(u.chaddr, Some((1, &ACTIVE_MAC[..])));
        assert!(u.lease_expiry.is_some_and(|e| e > now()));
        assert!(u.cltt.is_some_and(|c| c <= now()));
        assert_eq!(
            parts.client.map(|k| k.as_bytes().to_vec()),
            Some([&[0u8][..], &ACTIVE_UID[..]].concat())
        );
        assert_eq!(parts.chaddr, ACTIVE_MAC);
    } else {
        assert!(
            matches!(u.status, BindingStatus::Free | BindingStatus::Backup),
            "{u:?}"
        );
        assert_eq!(u.client_id, None);
        assert_eq!(parts.client, None);
    }
    // Our writer reproduces dhcpd's bytes from the parsed form (same option order).
    let mut out = [0u8; MAX_MESSAGE_LEN];
    let n = u.write(p.time(), p.xid(), &mut out).expect("fits");
    assert_eq!(
        &out[..n],
        p.message(),
        "rewrite differs from dhcpd's BNDUPD"
    );
    (u.addr, u.status)
}

#[expect(clippy::too_many_lines, reason = "one scripted conversation, in order")]
fn talk_to_primary() {
    let mut link = Link {
        s: isc::connect_primary(),
        buf: Vec::new(),
        xid: 0x7477_0000,
        seen: Vec::new(),
    };
    let wait = Duration::from_secs(10);

    // dhcpd opens with its CONNECT (draft-12 §7.8).
    let bytes = link.recv(wait).expect("dhcpd sends CONNECT");
    let p = Packet::new_checked(&bytes[..]).expect("parses");
    let theirs = Connect::parse(&p).expect("dhcpd's CONNECT parses");
    assert_eq!(theirs.relationship, b"p");
    assert_eq!(theirs.max_unacked, 10);
    assert_eq!(theirs.receive_timer, 30);
    assert_eq!(theirs.protocol_version, PROTOCOL_VERSION);
    assert_eq!(theirs.tls_request, Some(0));
    assert_eq!(theirs.mclt, Some(3600));
    let hba = theirs.hba.expect("the primary assigns hash buckets");
    assert!(theirs.vendor.starts_with(b"isc-"));

    // Our CONNECT, written by the typed API, echoing the primary's parameters.
    let ours = Connect {
        relationship: b"p",
        max_unacked: 10,
        receive_timer: 30,
        vendor: b"twinlease",
        protocol_version: PROTOCOL_VERSION,
        tls_request: Some(0),
        mclt: Some(3600),
        hba: Some(hba),
    };
    let connect_xid = link.send("CONNECT", |tm, id, out| ours.write(tm, id, out).unwrap());

    // CONNECTACK (our xid) and dhcpd's STATE, in either order.
    let mut dhcpd_state = None;
    let mut acked = false;
    while !(acked && dhcpd_state.is_some()) {
        let bytes = link.recv(wait).expect("dhcpd answers our CONNECT");
        let p = Packet::new_checked(&bytes[..]).expect("parses");
        match Message::parse(&p).expect("typed parse") {
            Message::ConnectAck(a) => {
                assert_eq!(a.reject, None, "dhcpd rejected our CONNECT");
                assert_eq!(a.relationship, b"p");
                assert_eq!(a.protocol_version, PROTOCOL_VERSION);
                assert_eq!(a.max_unacked, Some(10));
                assert_eq!(a.receive_timer, Some(30));
                assert_eq!(a.tls_reply, Some(0));
                assert_eq!(p.xid(), connect_xid, "CONNECTACK echoes our xid");
                let _ = ConnectAck::parse(&p).expect("also parses alone");
                acked = true;
            }
            Message::State(st) => {
                println!("dhcpd state {st:?}");
                dhcpd_state = Some(st);
            }
            other => panic!("unexpected {other:?} during the handshake"),
        }
    }
    let st = dhcpd_state.expect("STATE seen");
    assert_eq!(
        st.state,
        ServerState::Recover,
        "a fresh dhcpd starts in RECOVER"
    );

    // We are a fresh secondary: no recorded state means RECOVER (draft-12 §9.3.2).
    let our_stos = now();
    let state = |state, stos| {
        move |tm, id, out: &mut [u8]| {
            StateMsg {
                state,
                flags: 0,
                start_time: stos,
            }
            .write(tm, id, out)
            .unwrap()
        }
    };
    link.send("STATE recover", state(ServerState::Recover, our_stos));

    // dhcpd (RECOVER, partner RECOVER) asks for all our bindings; we have none.
    let mut updreqall_seen = false;
    let mut bndupds: Vec<(Ipv4Addr, BindingStatus)> = Vec::new();
    let mut captured_active = None;
    let mut captured_free = None;
    let mut captured_backup = None;
    let mut our_updreqall = None;
    let mut updone_from_dhcpd = false;
    let mut dhcpd_states = Vec::new();
    let mut sent_recover_done = false;
    let mut sent_normal = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    // Run the conversation until both are NORMAL and dhcpd has gone quiet.
    while Instant::now() < deadline {
        let quiet = if sent_normal {
            Duration::from_secs(3)
        } else {
            wait
        };
        let Some(bytes) = link.recv(quiet) else {
            assert!(sent_normal, "dhcpd went quiet before NORMAL");
            break;
        };
        let p = Packet::new_checked(&bytes[..]).expect("parses");
        let t = p.message_type().expect("known");
        match Message::parse(&p).expect("typed parse") {
            Message::UpdReqAll => {
                updreqall_seen = true;
                link.send("UPDDONE", |tm, _, out| {
                    write_header_only(MessageType::UpdDone, tm, p.xid(), out).unwrap()
                });
                // Now ask for everything ourselves (draft-12 §9.5.2: a server without stable
                // storage in RECOVER sends UPDREQALL).
                if our_updreqall.is_none() {
                    our_updreqall = Some(link.send("UPDREQALL", |tm, id, out| {
                        write_header_only(MessageType::UpdReqAll, tm, id, out).unwrap()
                    }));
                }
            }
            Message::BndUpd(_) => {
                let (a, status) = check_bndupd(&bytes);
                let u = BindingUpdate::parse(&p).expect("parses");
                let slot = match status {
                    BindingStatus::Active => Some(&mut captured_active),
                    BindingStatus::Free => Some(&mut captured_free),
                    BindingStatus::Backup => Some(&mut captured_backup),
                    _ => None,
                };
                if let Some(slot) = slot {
                    slot.get_or_insert_with(|| bytes.clone());
                }
                bndupds.push((a, status));
                link.ack(&p, &u);
            }
            Message::UpdDone => {
                assert_eq!(Some(p.xid()), our_updreqall, "UPDDONE echoes our UPDREQALL");
                updone_from_dhcpd = true;
                // RECOVER-WAIT (§9.5.2) ends at once for a fresh server, whose
                // time-of-failure is over MCLT ago (§9.3.2, §9.6.2): RECOVER-DONE.
                if !sent_recover_done {
                    sent_recover_done = true;
                    link.send("STATE recover-done", state(ServerState::RecoverDone, now()));
                }
            }
            Message::State(st) => {
                println!("dhcpd moves to {:?}", st.state);
                dhcpd_states.push(st.state);
                // §9.7.2: RECOVER-DONE moves to NORMAL when the partner is NORMAL.
                if st.state == ServerState::Normal && !sent_normal {
                    sent_normal = true;
                    link.send("STATE normal", state(ServerState::Normal, now()));
                }
            }
            Message::Disconnect(d) => {
                panic!(
                    "dhcpd disconnected: reason {} {}",
                    d.reason,
                    String::from_utf8_lossy(d.message)
                );
            }
            Message::Contact => {}
            other => panic!("unexpected {t:?}: {other:?}"),
        }
    }
    assert!(updreqall_seen, "dhcpd never sent UPDREQALL");
    assert!(updone_from_dhcpd, "dhcpd never finished our UPDREQALL");
    assert!(
        dhcpd_states.contains(&ServerState::Normal),
        "dhcpd never reached NORMAL: {dhcpd_states:?}"
    );
    // Every address of the range arrived (UPDREQALL), the active one as ACTIVE.
    let range_len = u32::from(RANGE.1) - u32::from(RANGE.0) + 1;
    let mut distinct: Vec<Ipv4Addr> = bndupds.iter().map(|(a, _)| *a).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), range_len as usize, "one BNDUPD per address");
    assert!(bndupds.contains(&(ACTIVE_ADDR, BindingStatus::Active)));
    let backups: Vec<Ipv4Addr> = bndupds
        .iter()
        .filter(|(_, s)| *s == BindingStatus::Backup)
        .map(|(a, _)| *a)
        .collect();
    assert!(!backups.is_empty(), "no pool balancing to the secondary");

    // As the secondary we lease one of our BACKUP addresses and tell dhcpd (draft-12 §7.1).
    let ours = backups[0];
    let t = now();
    let mac = [0x02, 0, 0, 0, 0, 0x77];
    let u = BindingUpdate {
        addr: ours,
        status: BindingStatus::Active,
        client_id: None,
        chaddr: Some((1, &mac)),
        lease_expiry: Some(t + 600),
        potential_expiry: Some(t + 1200),
        cltt: Some(t),
        start_time_of_state: Some(t),
        ip_flags: None,
    };
    let upd_xid = link.send("BNDUPD active", |tm, id, out| u.write(tm, id, out).unwrap());
    let mut got_ack = false;
    let mut pool_xid = None;
    let mut pool_resp = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !(got_ack && pool_resp.is_some()) {
        let Some(bytes) = link.recv(wait) else { break };
        let p = Packet::new_checked(&bytes[..]).expect("parses");
        match Message::parse(&p).expect("typed parse") {
            Message::BndAck(_) => {
                let a = BindingAck::parse(&p).expect("BNDACK parses");
                assert_eq!(p.xid(), upd_xid, "BNDACK echoes the BNDUPD xid");
                assert_eq!(a.addr, ours);
                assert_eq!(
                    a.reject
                        .map(|(r, m)| (r, String::from_utf8_lossy(m).into_owned())),
                    None,
                    "dhcpd rejected our BNDUPD"
                );
                got_ack = true;
                pool_xid = Some(link.send("POOLREQ", |tm, id, out| {
                    write_header_only(MessageType::PoolReq, tm, id, out).unwrap()
                }));
            }
            Message::PoolResp(r) => {
                assert_eq!(Some(p.xid()), pool_xid, "POOLRESP echoes the POOLREQ xid");
                let _ = PoolResp::parse(&p).expect("parses alone");
                pool_resp = Some(r.transferred);
            }
            Message::BndUpd(_) => {
                check_bndupd(&bytes);
                let u = BindingUpdate::parse(&p).expect("parses");
                link.ack(&p, &u);
            }
            Message::Contact | Message::State(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got_ack, "no BNDACK for our BNDUPD");
    println!("POOLRESP addresses-transferred: {pool_resp:?}");
    assert!(pool_resp.is_some(), "no POOLRESP");

    println!("option codes per message type from dhcpd:");
    for (t, c) in &link.seen {
        println!("  {t:?}: {c:?}");
    }
    for (name, bytes) in [
        ("BNDUPD active", &captured_active),
        ("BNDUPD free", &captured_free),
        ("BNDUPD backup", &captured_backup),
    ] {
        if let Some(bytes) = bytes {
            println!("fixture {name}: {}", hex(bytes));
        }
    }
}
