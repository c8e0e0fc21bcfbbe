//! Unit and property tests of the typed failover messages (draft-ietf-dhc-failover-12 §7),
//! with messages captured from ISC dhcpd 4.4.3-P1 (`tests/data/failover_isc_messages.txt`).

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::super::{fuzz_one, reject, server_flags};
use super::*;
use crate::lease::MAX_CLIENT_KEY;

const CAPTURES: &str = include_str!("../../../tests/data/failover_isc_messages.txt");

/// The CONNECTACK with which dhcpd rejected a CONNECT lacking the hash bucket assignment.
const ISC_CONNECTACK_REJECT: &str = "004f060c6b013efd747700010016000170000e00040000000a001300040000001e001c000c6973632d34\
2e342e332d50310014000101001a00010000150001120010000b696e76616c696420484241";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn capture(name: &str) -> Vec<u8> {
    let line = CAPTURES
        .lines()
        .find(|l| l.split_once(' ').is_some_and(|(n, _)| n == name))
        .unwrap_or_else(|| panic!("no capture {name}"));
    hex(line.split_once(' ').unwrap().1.trim())
}

fn packet(b: &[u8]) -> Packet<&[u8]> {
    Packet::new_checked(b).unwrap()
}

/// Writing `m` with the header of `b` gives back exactly `b`.
fn rewrites_to(b: &[u8], write: impl FnOnce(u32, u32, &mut [u8]) -> Result<usize, Error>) {
    let p = packet(b);
    let mut out = [0u8; MAX_MESSAGE_LEN];
    let n = write(p.time(), p.xid(), &mut out).unwrap();
    assert_eq!(&out[..n], b);
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 231, 0, last)
}

#[test]
fn isc_connect() {
    let b = capture("connect");
    let p = packet(&b);
    let c = Connect::parse(&p).unwrap();
    let mut hba = [0u8; 32];
    hba[..16].fill(0xff);
    assert_eq!(
        c,
        Connect {
            relationship: b"p",
            max_unacked: 10,
            receive_timer: 30,
            vendor: b"isc-4.4.3-P1",
            protocol_version: 1,
            tls_request: Some(0),
            mclt: Some(3600),
            hba: Some(hba),
        }
    );
    rewrites_to(&b, |t, x, o| c.write(t, x, o));
    assert!(matches!(Message::parse(&p), Ok(Message::Connect(m)) if m == c));
}

#[test]
fn isc_connectack_accept_and_reject() {
    let b = capture("connectack");
    let a = ConnectAck::parse(&packet(&b)).unwrap();
    assert_eq!(
        a,
        ConnectAck {
            relationship: b"p",
            max_unacked: Some(10),
            receive_timer: Some(30),
            vendor: Some(b"isc-4.4.3-P1"),
            protocol_version: 1,
            tls_reply: Some(0),
            reject: None,
        }
    );
    rewrites_to(&b, |t, x, o| a.write(t, x, o));

    let b = hex(ISC_CONNECTACK_REJECT);
    let r = ConnectAck::parse(&packet(&b)).unwrap();
    assert_eq!(r.reject, Some((reject::HBA_CONFLICT, &b"invalid HBA"[..])));
    assert_eq!(r.relationship, b"p");
    assert_eq!(r.max_unacked, Some(10));
    rewrites_to(&b, |t, x, o| r.write(t, x, o));
}

#[test]
fn isc_state() {
    let b = capture("state_recover_startup");
    let s = StateMsg::parse(&packet(&b)).unwrap();
    assert_eq!(s.state, ServerState::Recover);
    assert_eq!(s.flags, server_flags::STARTUP);
    assert_eq!(s.start_time, 0x6b01_5429);
    rewrites_to(&b, |t, x, o| s.write(t, x, o));

    let b = capture("state_normal");
    let s = StateMsg::parse(&packet(&b)).unwrap();
    assert_eq!((s.state, s.flags), (ServerState::Normal, 0));
    rewrites_to(&b, |t, x, o| s.write(t, x, o));
}

#[test]
fn isc_bndupd_active() {
    let b = capture("bndupd_active");
    let p = packet(&b);
    let u = BindingUpdate::parse(&p).unwrap();
    let uid = [1, 2, 0, 0, 0, 0, 1];
    let mac = [2, 0, 0, 0, 0, 1];
    assert_eq!(
        u,
        BindingUpdate {
            addr: ip(20),
            status: BindingStatus::Active,
            client_id: Some(&uid),
            chaddr: Some((1, &mac)),
            lease_expiry: Some(0x6b01_61d5),
            potential_expiry: Some(0x6b01_61d5),
            cltt: Some(0x6b01_53c5),
            start_time_of_state: Some(0x6b01_53c5),
            ip_flags: None,
        }
    );
    assert_eq!(u.check(), Ok(()));
    rewrites_to(&b, |t, x, o| u.write(t, x, o));
    let parts = u.to_lease_parts().unwrap();
    assert_eq!(parts.state, BindingState::Active);
    assert_eq!(parts.client, Some(ClientKey::from_client_id(&uid).unwrap()));
    assert_eq!(parts.chaddr, mac);
    assert_eq!(parts.expires, Some(0x6b01_61d5));
    let mut all = BindingUpdate::parse_all(&p).unwrap();
    assert_eq!(all.next(), Some(Ok(u)));
    assert!(all.next().is_none());
}

#[test]
fn isc_bndupd_free_and_backup() {
    // dhcpd sends zero times for a FREE address, and no client.
    let b = capture("bndupd_free");
    let u = BindingUpdate::parse(&packet(&b)).unwrap();
    assert_eq!((u.addr, u.status), (ip(21), BindingStatus::Free));
    assert_eq!((u.client_id, u.chaddr), (None, None));
    assert_eq!(
        (
            u.lease_expiry,
            u.potential_expiry,
            u.start_time_of_state,
            u.cltt
        ),
        (Some(0), Some(0), Some(0), None)
    );
    assert_eq!(u.check(), Ok(()));
    assert_eq!(u.to_lease_parts().unwrap().client, None);
    rewrites_to(&b, |t, x, o| u.write(t, x, o));

    // Pool balancing hands the address to the secondary: BACKUP since now.
    let b = capture("bndupd_backup");
    let p = packet(&b);
    let u = BindingUpdate::parse(&p).unwrap();
    assert_eq!((u.addr, u.status), (ip(21), BindingStatus::Backup));
    assert_eq!(u.potential_expiry, Some(p.time()));
    assert_eq!(u.start_time_of_state, Some(p.time()));
    assert_eq!(u.to_lease_parts().unwrap().state, BindingState::Backup);
    rewrites_to(&b, |t, x, o| u.write(t, x, o));
}

#[test]
fn isc_bndack_poolresp_and_header_only() {
    let b = capture("bndack");
    let a = BindingAck::parse(&packet(&b)).unwrap();
    assert_eq!(
        a,
        BindingAck {
            addr: ip(21),
            reject: None
        }
    );
    rewrites_to(&b, |t, x, o| a.write(t, x, o));
    // It acknowledged exactly the BNDUPD we wrote (same xid).
    let ours = capture("ours_bndupd_active");
    assert_eq!(packet(&ours).xid(), packet(&b).xid());
    assert_eq!(BindingUpdate::parse(&packet(&ours)).unwrap().addr, ip(21));

    let b = capture("poolresp");
    assert_eq!(
        PoolResp::parse(&packet(&b)).unwrap(),
        PoolResp { transferred: 0 }
    );
    rewrites_to(&b, |t, x, o| PoolResp { transferred: 0 }.write(t, x, o));

    for (name, t) in [
        ("updreqall", MessageType::UpdReqAll),
        ("upddone", MessageType::UpdDone),
    ] {
        let b = capture(name);
        assert_eq!(Message::parse(&packet(&b)).unwrap().msg_type(), t);
        rewrites_to(&b, |tm, x, o| write_header_only(t, tm, x, o));
    }
}

/// One message of every type, with every optional field set.
fn samples() -> Vec<Vec<u8>> {
    let hba = [0x0f; 32];
    let mut out = Vec::new();
    let mut put = |write: &dyn Fn(&mut [u8]) -> Result<usize, Error>| {
        let mut b = vec![0u8; MAX_MESSAGE_LEN];
        let n = write(&mut b).unwrap();
        b.truncate(n);
        out.push(b);
    };
    let (t, x) = (1_800_000_000, 7);
    put(&|b| write_header_only(MessageType::PoolReq, t, x, b));
    put(&|b| PoolResp { transferred: 17 }.write(t, x, b));
    put(&|b| {
        BindingUpdate {
            addr: ip(30),
            status: BindingStatus::Released,
            client_id: Some(b"\x01abc"),
            chaddr: Some((1, &[1, 2, 3, 4, 5, 6])),
            lease_expiry: Some(t + 1),
            potential_expiry: Some(t + 2),
            cltt: Some(t - 3),
            start_time_of_state: Some(t - 4),
            ip_flags: Some(ip_flags::BOOTP),
        }
        .write(t, x, b)
    });
    put(&|b| {
        BindingAck {
            addr: ip(30),
            reject: Some((reject::OUTDATED_BINDING, b"older")),
        }
        .write(t, x, b)
    });
    put(&|b| {
        Connect {
            relationship: b"edge",
            max_unacked: 100,
            receive_timer: 60,
            vendor: b"twinlease",
            protocol_version: 1,
            tls_request: Some(0),
            mclt: Some(3600),
            hba: Some(hba),
        }
        .write(t, x, b)
    });
    put(&|b| {
        ConnectAck {
            relationship: b"edge",
            max_unacked: Some(100),
            receive_timer: Some(60),
            vendor: Some(b"twinlease"),
            protocol_version: 1,
            tls_reply: Some(0),
            reject: None,
        }
        .write(t, x, b)
    });
    put(&|b| write_header_only(MessageType::UpdReqAll, t, x, b));
    put(&|b| write_header_only(MessageType::UpdDone, t, x, b));
    put(&|b| write_header_only(MessageType::UpdReq, t, x, b));
    put(&|b| {
        StateMsg {
            state: ServerState::RecoverWait,
            flags: server_flags::STARTUP,
            start_time: t - 10,
        }
        .write(t, x, b)
    });
    put(&|b| write_header_only(MessageType::Contact, t, x, b));
    put(&|b| {
        Disconnect {
            reason: reject::NO_TRAFFIC,
            message: b"bye",
        }
        .write(t, x, b)
    });
    out
}

#[test]
fn every_message_type_round_trips() {
    let all = samples();
    assert_eq!(all.len(), 12);
    for (i, b) in all.iter().enumerate() {
        let p = packet(b);
        assert_eq!(u8::from(p.message_type().unwrap()), i as u8 + 1);
        let m = Message::parse(&p).unwrap();
        assert_eq!(m.msg_type(), p.message_type().unwrap());
        rewrites_to(b, |t, x, o| m.write(t, x, o));
    }
    // Typed values survive, not only bytes.
    let d = Disconnect::parse(&packet(&all[11])).unwrap();
    assert_eq!((d.reason, d.message), (reject::NO_TRAFFIC, &b"bye"[..]));
    let s = StateMsg::parse(&packet(&all[9])).unwrap();
    assert_eq!(s.state, ServerState::RecoverWait);
    let u = BindingUpdate::parse(&packet(&all[2])).unwrap();
    assert_eq!(u.ip_flags, Some(ip_flags::BOOTP));
    assert_eq!(u.cltt, Some(1_800_000_000 - 3));
}

#[test]
fn optional_fields_absent_round_trip() {
    let c = Connect {
        relationship: b"p",
        max_unacked: 1,
        receive_timer: 2,
        vendor: b"",
        protocol_version: 1,
        tls_request: None,
        mclt: None,
        hba: None,
    };
    let mut buf = [0u8; 256];
    let len = c.write(5, 6, &mut buf).unwrap();
    assert_eq!(Connect::parse(&packet(&buf[..len])).unwrap(), c);
    // A reject without name, version or message writes only the reject-reason.
    let r = ConnectAck {
        relationship: b"",
        max_unacked: None,
        receive_timer: None,
        vendor: None,
        protocol_version: 0,
        tls_reply: None,
        reject: Some((reject::INVALID_PARTNER, b"")),
    };
    let len = r.write(5, 6, &mut buf).unwrap();
    assert_eq!(len, 12 + 5);
    assert_eq!(ConnectAck::parse(&packet(&buf[..len])).unwrap(), r);
    let d = Disconnect {
        reason: reject::UNKNOWN,
        message: b"",
    };
    let len = d.write(5, 6, &mut buf).unwrap();
    assert_eq!(Disconnect::parse(&packet(&buf[..len])).unwrap(), d);
}

fn update(last: u8, status: BindingStatus) -> BindingUpdate<'static> {
    BindingUpdate {
        addr: ip(last),
        status,
        client_id: None,
        chaddr: Some((1, &[2, 0, 0, 0, 0, 9])),
        lease_expiry: Some(100),
        potential_expiry: Some(200),
        cltt: Some(50),
        start_time_of_state: Some(50),
        ip_flags: None,
    }
}

#[test]
fn batched_transactions() {
    let header = Header {
        msg_type: MessageType::BndUpd,
        time: 1,
        xid: 2,
    };
    let mut buf = [0u8; 512];
    let mut wr = MessageWriter::new(&mut buf, &header).unwrap();
    // A message-level option first (draft-12 §6.3), skipped.
    wr.opt(&Opt::Unknown {
        code: 300,
        value: b"x",
    })
    .unwrap();
    update(11, BindingStatus::Active).append(&mut wr).unwrap();
    let free = BindingUpdate {
        chaddr: None,
        lease_expiry: None,
        potential_expiry: None,
        cltt: None,
        ..update(12, BindingStatus::Free)
    };
    free.append(&mut wr).unwrap();
    let len = wr.finish();
    let p = packet(&buf[..len]);
    assert_eq!(
        BindingUpdate::parse(&p),
        Err(Error::MultipleTransactions(2))
    );
    let all: Vec<_> = BindingUpdate::parse_all(&p).unwrap().collect();
    assert_eq!(all, vec![Ok(update(11, BindingStatus::Active)), Ok(free)]);
    assert_eq!(
        transaction_addresses(p.payload()).collect::<Vec<_>>(),
        vec![ip(11), ip(12)]
    );
    // The same options repeated per transaction are not duplicates; within one they are.
    let Ok(Message::BndUpd(m)) = Message::parse(&p) else {
        panic!("BNDUPD")
    };
    assert_eq!(m.count(), 2);

    // A batched BNDACK: the second rejected.
    let header = Header {
        msg_type: MessageType::BndAck,
        ..header
    };
    let mut wr = MessageWriter::new(&mut buf, &header).unwrap();
    let acks = [
        BindingAck {
            addr: ip(11),
            reject: None,
        },
        BindingAck {
            addr: ip(12),
            reject: Some((reject::FATAL_CONFLICT, b"no")),
        },
    ];
    for a in &acks {
        a.append(&mut wr).unwrap();
    }
    let len = wr.finish();
    let p = packet(&buf[..len]);
    assert_eq!(BindingAck::parse(&p), Err(Error::MultipleTransactions(2)));
    let got: Vec<_> = BindingAck::parse_all(&p)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, acks);
    rewrites_to(&buf[..len], |t, x, o| {
        Message::parse(&p).unwrap().write(t, x, o)
    });
}

#[test]
fn single_transaction_in_any_order() {
    // binding-status before assigned-IP-address: one address, so all options are its own.
    let header = Header {
        msg_type: MessageType::BndUpd,
        time: 1,
        xid: 2,
    };
    let mut buf = [0u8; 128];
    let mut wr = MessageWriter::new(&mut buf, &header).unwrap();
    wr.opt(&Opt::BindingStatus(7)).unwrap();
    wr.opt(&Opt::AssignedIpAddress(ip(40))).unwrap();
    let len = wr.finish();
    let u = BindingUpdate::parse(&packet(&buf[..len])).unwrap();
    assert_eq!((u.addr, u.status), (ip(40), BindingStatus::Backup));
}

fn raw_message(t: MessageType, opts: &[Opt<'_>]) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    let mut w = MessageWriter::new(
        &mut b,
        &Header {
            msg_type: t,
            time: 1,
            xid: 2,
        },
    )
    .unwrap();
    for o in opts {
        w.opt(o).unwrap();
    }
    let n = w.finish();
    b.truncate(n);
    b
}

#[test]
fn parse_errors() {
    let state = raw_message(
        MessageType::State,
        &[
            Opt::ServerState(2),
            Opt::ServerFlags(0),
            Opt::StartTimeOfState(3),
        ],
    );
    assert_eq!(
        Connect::parse(&packet(&state)),
        Err(Error::WrongMessageType {
            expected: MessageType::Connect,
            got: 10
        })
    );
    let b = raw_message(
        MessageType::State,
        &[Opt::ServerState(2), Opt::ServerFlags(0)],
    );
    assert_eq!(
        StateMsg::parse(&packet(&b)),
        Err(Error::MissingOption {
            code: opt::START_TIME_OF_STATE
        })
    );
    let b = raw_message(
        MessageType::State,
        &[
            Opt::ServerState(12),
            Opt::ServerFlags(0),
            Opt::StartTimeOfState(3),
        ],
    );
    assert_eq!(
        StateMsg::parse(&packet(&b)),
        Err(Error::BadValue {
            code: opt::SERVER_STATE,
            value: 12
        })
    );
    let b = raw_message(
        MessageType::State,
        &[
            Opt::ServerState(2),
            Opt::ServerState(2),
            Opt::ServerFlags(0),
        ],
    );
    assert_eq!(
        StateMsg::parse(&packet(&b)),
        Err(Error::DuplicateOption {
            code: opt::SERVER_STATE
        })
    );
    // Unknown and out-of-range codes are ignored (draft-12 §6.1), also when repeated.
    let b = raw_message(
        MessageType::PoolResp,
        &[
            Opt::Unknown {
                code: 0,
                value: b"",
            },
            Opt::Unknown {
                code: 0,
                value: b"",
            },
            Opt::Unknown {
                code: 999,
                value: b"z",
            },
            Opt::Unknown {
                code: 999,
                value: b"z",
            },
            Opt::AddressesTransferred(4),
        ],
    );
    assert_eq!(
        PoolResp::parse(&packet(&b)),
        Ok(PoolResp { transferred: 4 })
    );
    let b = raw_message(
        MessageType::BndUpd,
        &[Opt::AssignedIpAddress(ip(1)), Opt::BindingStatus(8)],
    );
    assert_eq!(
        BindingUpdate::parse(&packet(&b)),
        Err(Error::BadValue {
            code: opt::BINDING_STATUS,
            value: 8
        })
    );
    assert!(Message::parse(&packet(&b)).is_err());
    let b = raw_message(MessageType::BndUpd, &[Opt::BindingStatus(1)]);
    assert_eq!(
        BindingUpdate::parse(&packet(&b)),
        Err(Error::MissingOption {
            code: opt::ASSIGNED_IP_ADDRESS
        })
    );
    let b = raw_message(MessageType::BndAck, &[]);
    assert!(BindingAck::parse(&packet(&b)).is_err());
    // A hash-bucket-assignment must be 32 bytes.
    let b = raw_message(
        MessageType::Connect,
        &[
            Opt::RelationshipName(b"p"),
            Opt::MaxUnackedBndupd(1),
            Opt::ReceiveTimer(1),
            Opt::ProtocolVersion(1),
            Opt::HashBucketAssignment(&[0xff; 16]),
        ],
    );
    assert_eq!(
        Connect::parse(&packet(&b)),
        Err(Error::BadOptionLength {
            code: opt::HASH_BUCKET_ASSIGNMENT
        })
    );
    // An accepting CONNECTACK needs the relationship name.
    let b = raw_message(MessageType::ConnectAck, &[Opt::ProtocolVersion(1)]);
    assert_eq!(
        ConnectAck::parse(&packet(&b)),
        Err(Error::MissingOption {
            code: opt::RELATIONSHIP_NAME
        })
    );
    let mut out = [0u8; 64];
    assert!(write_header_only(MessageType::State, 0, 0, &mut out).is_err());
    assert_eq!(
        StateMsg {
            state: ServerState::Normal,
            flags: 0,
            start_time: 0
        }
        .write(0, 0, &mut out[..20]),
        Err(Error::BufferTooSmall)
    );
}

#[test]
fn check_follows_table_7_1_1() {
    assert_eq!(update(1, BindingStatus::Active).check(), Ok(()));
    for s in [
        BindingStatus::Active,
        BindingStatus::Expired,
        BindingStatus::Released,
    ] {
        let u = BindingUpdate {
            chaddr: None,
            ..update(1, s)
        };
        assert_eq!(
            u.check().map_err(|e| e.0),
            Err(reject::MISSING_BINDING_INFORMATION)
        );
    }
    let u = BindingUpdate {
        potential_expiry: None,
        ..update(1, BindingStatus::Active)
    };
    assert!(u.check().is_err());
    let u = BindingUpdate {
        lease_expiry: None,
        ..update(1, BindingStatus::Active)
    };
    assert!(u.check().is_err());
    assert!(update(1, BindingStatus::Abandoned).check().is_err());
    let u = BindingUpdate {
        chaddr: None,
        ..update(1, BindingStatus::Abandoned)
    };
    assert_eq!(u.check(), Ok(()));
    let u = BindingUpdate {
        chaddr: None,
        ..update(1, BindingStatus::Free)
    };
    assert_eq!(u.check(), Ok(()));
}

fn lease(state: BindingState, client: &ClientKey, chaddr: [u8; 6]) -> Lease4 {
    Lease4 {
        addr: ip(33),
        state,
        client: *client,
        chaddr,
        subnet_id: 1,
        expires: 5000,
        cltt: 1000,
        partner_expires: 0,
        update_pending: true,
    }
}

#[test]
fn lease_conversions() {
    let mac = [2, 0, 0, 0, 0, 5];
    let by_id = lease(
        BindingState::Active,
        &ClientKey::from_client_id(b"\x01xyz").unwrap(),
        mac,
    );
    let u = BindingUpdate::from_lease(&by_id, 6000, 1234);
    assert_eq!(u.addr, ip(33));
    assert_eq!(u.status, BindingStatus::Active);
    assert_eq!(u.client_id, Some(&b"\x01xyz"[..]));
    assert_eq!(u.chaddr, Some((1, &mac[..])));
    assert_eq!(
        (
            u.lease_expiry,
            u.potential_expiry,
            u.cltt,
            u.start_time_of_state
        ),
        (Some(5000), Some(6000), Some(1000), Some(1000))
    );
    assert_eq!(u.check(), Ok(()));
    let parts = u.to_lease_parts().unwrap();
    assert_eq!(parts.client, Some(by_id.client));
    assert_eq!((parts.state, parts.chaddr), (BindingState::Active, mac));

    // A hardware key gives client-hardware-address with its own type and length.
    let hw = lease(
        BindingState::Released,
        &ClientKey::from_hw(6, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
        [0; 6],
    );
    let u = BindingUpdate::from_lease(&hw, 6000, 1234);
    assert_eq!(u.client_id, None);
    assert_eq!(u.chaddr, Some((6, &[1, 2, 3, 4, 5, 6, 7, 8][..])));
    // Outside ACTIVE no expiration times (Table 7.1-1 MUST NOT); state start is `now`.
    assert_eq!((u.lease_expiry, u.potential_expiry), (None, None));
    assert_eq!(u.start_time_of_state, Some(1234));
    assert_eq!(u.to_lease_parts().unwrap().client, Some(hw.client));

    // ABANDONED names no client (Table 7.1-1 note 2).
    let ab = lease(BindingState::Abandoned, &by_id.client, mac);
    let u = BindingUpdate::from_lease(&ab, 0, 1);
    assert_eq!((u.client_id, u.chaddr), (None, None));
    assert_eq!(u.check(), Ok(()));

    // Every state maps both ways with the same value.
    for v in 1..=7u8 {
        let s = BindingState::from_u8(v).unwrap();
        let st = BindingStatus::from(s);
        assert_eq!(u8::from(st), v);
        assert_eq!(BindingState::from(st), s);
    }

    // A client identifier the store cannot key is an error, not a panic.
    let long = [7u8; MAX_CLIENT_KEY + 1];
    let u = BindingUpdate {
        client_id: Some(&long),
        ..update(1, BindingStatus::Active)
    };
    assert_eq!(
        u.to_lease_parts(),
        Err(Error::OptionTooLong {
            code: opt::CLIENT_IDENTIFIER
        })
    );
}

#[test]
fn time_helpers() {
    // The partner is 100 s ahead: its times move back by 100.
    let skew = clock_skew(1100, 1000);
    assert_eq!(skew, 100);
    assert_eq!(adjust_time(5100, skew), 5000);
    assert_eq!(adjust_time(0, skew), 0);
    assert_eq!(adjust_time(u32::MAX, skew), u32::MAX);
    assert_eq!(adjust_time(50, skew), 1);
    assert_eq!(adjust_time(u32::MAX - 5, -100), u32::MAX - 1);
    assert_eq!(clock_skew(0, u32::MAX), -i64::from(u32::MAX));
    assert!(skew_acceptable(1060, 1000));
    assert!(skew_acceptable(940, 1000));
    assert!(!skew_acceptable(1061, 1000));
    let u = update(1, BindingStatus::Active).adjusted(-10);
    assert_eq!((u.lease_expiry, u.cltt), (Some(110), Some(60)));
}

fn gen_status() -> impl Strategy<Value = BindingStatus> {
    (1u8..=7).prop_map(|v| BindingStatus::try_from(v).unwrap())
}

proptest! {
    /// Arbitrary payloads framed as a message of any type: the typed parsers never panic,
    /// and what parses rewrites to bytes that parse and rewrite identically.
    #[test]
    fn typed_parse_never_panics(t in 1u8..=12, payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let len = 12 + payload.len();
        let mut b = vec![0u8; len];
        b[..2].copy_from_slice(&(len as u16).to_be_bytes());
        b[2] = t;
        b[3] = 12;
        b[12..].copy_from_slice(&payload);
        fuzz_one(&b);
        let p = packet(&b);
        let _ = BindingUpdate::parse(&p);
        let _ = BindingAck::parse(&p);
        let _ = transaction_addresses(p.payload()).count();
        if let Ok(all) = BindingUpdate::parse_all(&p) {
            for u in all.flatten() {
                let _ = u.check();
                let _ = u.to_lease_parts();
            }
        }
    }

    /// Options drawn from the draft-12 codes, so that the typed parsers get past the
    /// framing: same invariants.
    #[test]
    fn typed_parse_of_plausible_options(
        t in 1u8..=12,
        list in prop::collection::vec((1u16..=30, prop::collection::vec(any::<u8>(), 0..6)), 0..12),
    ) {
        let msg_type = MessageType::try_from(t).unwrap();
        let mut b = vec![0u8; 1024];
        let mut w = MessageWriter::new(&mut b, &Header { msg_type, time: 1, xid: 2 }).unwrap();
        for (code, value) in &list {
            w.option(*code, value).unwrap();
        }
        let n = w.finish();
        fuzz_one(&b[..n]);
    }

    /// Any binding update writes and parses back equal, and its lease parts keep it.
    #[test]
    fn binding_update_round_trip(
        a in any::<u32>(),
        status in gen_status(),
        id in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        hw in prop::option::of((1u8.., prop::collection::vec(any::<u8>(), 0..16))),
        times in any::<[Option<u32>; 4]>(),
        flags in prop::option::of(any::<u16>()),
    ) {
        let u = BindingUpdate {
            addr: Ipv4Addr::from(a),
            status,
            client_id: id.as_deref(),
            chaddr: hw.as_ref().map(|(t, h)| (*t, &h[..])),
            lease_expiry: times[0],
            potential_expiry: times[1],
            cltt: times[2],
            start_time_of_state: times[3],
            ip_flags: flags,
        };
        let mut b = [0u8; MAX_MESSAGE_LEN];
        let n = u.write(9, 10, &mut b).unwrap();
        let p = packet(&b[..n]);
        prop_assert_eq!(BindingUpdate::parse(&p), Ok(u));
        let parts = u.to_lease_parts().unwrap();
        prop_assert_eq!(parts.addr, u.addr);
        prop_assert_eq!(BindingStatus::from(parts.state), status);
        prop_assert_eq!(parts.client.is_some(), id.is_some() || hw.is_some());
        prop_assert_eq!(parts.expires, u.lease_expiry);
        let ack = BindingAck { addr: u.addr, reject: id.as_deref().map(|m| (3, m)) };
        let n = ack.write(9, 10, &mut b).unwrap();
        prop_assert_eq!(BindingAck::parse(&packet(&b[..n])), Ok(ack));
    }

    /// Connect, ConnectAck and StateMsg with arbitrary values write and parse back equal.
    #[test]
    fn control_messages_round_trip(
        name in prop::collection::vec(any::<u8>(), 0..20),
        nums in any::<(u32, u32, u8, Option<u8>, Option<u32>)>(),
        hba in prop::option::of(any::<[u8; 32]>()),
        state in prop_oneof![1u8..=11, Just(254u8)],
        flags in any::<u8>(),
    ) {
        let c = Connect {
            relationship: &name,
            max_unacked: nums.0,
            receive_timer: nums.1,
            vendor: &name,
            protocol_version: nums.2,
            tls_request: nums.3,
            mclt: nums.4,
            hba,
        };
        let mut b = [0u8; MAX_MESSAGE_LEN];
        let n = c.write(1, 2, &mut b).unwrap();
        prop_assert_eq!(Connect::parse(&packet(&b[..n])), Ok(c));
        let a = ConnectAck {
            relationship: &name,
            max_unacked: nums.4,
            receive_timer: Some(nums.1),
            vendor: Some(&name),
            protocol_version: nums.2.max(1),
            tls_reply: nums.3,
            reject: None,
        };
        let n = a.write(1, 2, &mut b).unwrap();
        prop_assert_eq!(ConnectAck::parse(&packet(&b[..n])), Ok(a));
        let s = StateMsg { state: ServerState::try_from(state).unwrap(), flags, start_time: nums.0 };
        let n = s.write(1, 2, &mut b).unwrap();
        prop_assert_eq!(StateMsg::parse(&packet(&b[..n])), Ok(s));
    }
}
