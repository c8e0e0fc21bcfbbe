//! Unit and property tests of the DHCPv6 failover codec (RFC 8156 §5, §6, §7).

use std::net::Ipv6Addr;

use proptest::prelude::*;

use super::*;
use crate::lease::{BindingState, ClientKey, IaKind, Lease6};

const DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 0x61];
const XID: u32 = 0x00ab_cdef;
const SENT: u32 = 0x2f00_0000;

/// One option, RFC 8415 §21.1: code, length, value.
fn o6(code: u16, value: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// A frame (RFC 5460 §5.1 `msg-size`) around a message of RFC 8156 §5.2.
fn frame(t: u8, xid: u32, sent: u32, options: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&xid.to_be_bytes()[1..]);
    m.extend_from_slice(&sent.to_be_bytes());
    m.extend_from_slice(options);
    let mut f = u16::try_from(m.len()).unwrap().to_be_bytes().to_vec();
    f.extend_from_slice(&m);
    f
}

fn msg(f: &[u8]) -> Message<&[u8]> {
    Message::new_checked(frame_message(f).unwrap()).unwrap()
}

fn emit(f: impl FnOnce(&mut [u8]) -> Result<usize, Error>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = f(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn connect() -> Connect6<'static> {
    Connect6 {
        relationship: Some(b"edge-a"),
        protocol_version: PROTOCOL_VERSION,
        mclt: 3600,
        keepalive: 60,
        max_unacked: 10,
        connect_flags: connect_flags::FIXED_PD_LENGTH,
    }
}

#[test]
fn message_types_are_the_iana_numbers() {
    for v in 0..=u8::MAX {
        match MessageType::try_from(v) {
            Ok(t) => {
                assert!((24..=35).contains(&v), "{v}");
                assert_eq!(u8::from(t), v);
            }
            Err(e) => {
                assert!(!(24..=35).contains(&v));
                assert_eq!(e, Error::UnknownMessageType(v));
            }
        }
    }
    assert_eq!(MessageType::BndUpd as u8, 24);
    assert_eq!(MessageType::UpdReq as u8, 28);
    assert_eq!(MessageType::Connect as u8, 31);
    assert_eq!(MessageType::Contact as u8, 35);
}

/// One typed value of every option, in IANA order for those of RFC 8156 §5.5.
fn all_options() -> Vec<Opt<'static>> {
    vec![
        Opt::BindingStatus(BindingStatus::Active.into()),
        Opt::ConnectFlags(connect_flags::FIXED_PD_LENGTH),
        Opt::DnsRemovalInfo(&[0, 119, 0, 2, 0, 3]),
        Opt::DnsHostName(b"\x04host\0"),
        Opt::DnsZoneName(b"\x07example\0"),
        Opt::DnsFlags(dns_flags::FWD_UPTODATE | dns_flags::REV_UPTODATE),
        Opt::ExpirationTime(1),
        Opt::MaxUnackedBndupd(2),
        Opt::Mclt(3),
        Opt::PartnerLifetime(4),
        Opt::PartnerLifetimeSent(5),
        Opt::PartnerDownTime(6),
        Opt::PartnerRawCltTime(7),
        Opt::ProtocolVersion(ProtocolVersion { major: 1, minor: 2 }),
        Opt::KeepaliveTime(8),
        Opt::ReconfigureData {
            time: 9,
            key: &[1; 16],
        },
        Opt::RelationshipName(b"r"),
        Opt::ServerFlags(server_flags::COMMUNICATED),
        Opt::ServerState(ServerState::Normal.into()),
        Opt::StartTimeOfState(10),
        Opt::StateExpirationTime(11),
        Opt::ClientId(DUID),
        Opt::StatusCode {
            code: status::OUTDATED_BINDING_INFORMATION,
            message: b"older",
        },
        Opt::ClientData(&[]),
        Opt::CltTime(12),
        Opt::LqBaseTime(13),
        Opt::Unknown {
            code: 4242,
            value: b"?",
        },
    ]
}

#[test]
fn option_codes_are_the_iana_numbers_and_round_trip() {
    let all = all_options();
    let codes: Vec<u16> = all.iter().map(Opt::code).collect();
    assert_eq!(codes[..21], (114..=134).collect::<Vec<u16>>()[..]);
    assert_eq!(codes[21..26], [1, 13, 45, 46, 100]);
    let h = Header {
        msg_type: MessageType::BndUpd,
        xid: XID,
        sent_time: SENT,
    };
    let b = emit(|buf| {
        let mut w = MessageWriter::new(buf, &h)?;
        for o in &all {
            w.opt(o)?;
        }
        w.finish()
    });
    let m = msg(&b);
    let back: Vec<Opt<'_>> = m
        .option_iter()
        .map(|o| Opt::parse(o.unwrap()).unwrap())
        .collect();
    assert_eq!(back, all);
    // RFC 8156 §5.5.14: two 16-bit numbers; §5.5.16: the time, then the key.
    assert_eq!(m.option(opt::F_PROTOCOL_VERSION), Some(&[0, 1, 0, 2][..]));
    assert_eq!(
        m.option(opt::F_RECONFIGURE_DATA).map(|v| &v[..5]),
        Some(&[0, 0, 0, 9, 1][..])
    );
}

#[test]
fn fixed_size_options_reject_other_lengths() {
    let sizes: [(u16, usize); 19] = [
        (opt::F_BINDING_STATUS, 1),
        (opt::F_CONNECT_FLAGS, 2),
        (opt::F_DNS_FLAGS, 2),
        (opt::F_EXPIRATION_TIME, 4),
        (opt::F_MAX_UNACKED_BNDUPD, 4),
        (opt::F_MCLT, 4),
        (opt::F_PARTNER_LIFETIME, 4),
        (opt::F_PARTNER_LIFETIME_SENT, 4),
        (opt::F_PARTNER_DOWN_TIME, 4),
        (opt::F_PARTNER_RAW_CLT_TIME, 4),
        (opt::F_PROTOCOL_VERSION, 4),
        (opt::F_KEEPALIVE_TIME, 4),
        (opt::F_SERVER_FLAGS, 1),
        (opt::F_SERVER_STATE, 1),
        (opt::F_START_TIME_OF_STATE, 4),
        (opt::F_STATE_EXPIRATION_TIME, 4),
        (opt::CLT_TIME, 4),
        (opt::LQ_BASE_TIME, 4),
        (opt::STATUS_CODE, 2),
    ];
    let bytes = [7u8; 8];
    for (code, size) in sizes {
        for len in 0..8 {
            let r = Opt::parse(FailoverOption {
                code,
                value: &bytes[..len],
            });
            // A status code and reconfigure data have a variable tail after their fixed part.
            if len == size || (code == opt::STATUS_CODE && len > size) {
                assert_eq!(r.map(|o| o.code()), Ok(code), "{code} {len}");
            } else {
                assert_eq!(r, Err(Error::BadOptionLength { code }), "{code} {len}");
            }
        }
    }
    for len in 0..4 {
        assert_eq!(
            Opt::parse(FailoverOption {
                code: opt::F_RECONFIGURE_DATA,
                value: &bytes[..len],
            }),
            Err(Error::BadOptionLength {
                code: opt::F_RECONFIGURE_DATA
            })
        );
    }
}

/// A CONNECT written byte by byte from RFC 8156 §5.1, §5.2 and §5.5 equals what
/// [`Connect6::emit`] writes, and parses into the same fields.
#[test]
fn connect_matches_the_rfc_layout() {
    let mut opts = Vec::new();
    opts.extend(o6(130, b"edge-a")); // OPTION_F_RELATIONSHIP_NAME, §5.5.17
    opts.extend([0, 127, 0, 4, 0, 1, 0, 0]); // OPTION_F_PROTOCOL_VERSION 1.0, §5.5.14
    opts.extend([0, 122, 0, 4, 0, 0, 0x0e, 0x10]); // OPTION_F_MCLT 3600, §5.5.9
    opts.extend([0, 128, 0, 4, 0, 0, 0, 60]); // OPTION_F_KEEPALIVE_TIME 60, §5.5.15
    opts.extend([0, 121, 0, 4, 0, 0, 0, 10]); // OPTION_F_MAX_UNACKED_BNDUPD 10, §5.5.8
    opts.extend([0, 115, 0, 2, 0, 1]); // OPTION_F_CONNECT_FLAGS FIXED_PD_LENGTH, §5.5.2
    let f = frame(31, XID, SENT, &opts);
    // msg-size, then msg-type 31, the 3-byte transaction-id and sent-time.
    assert_eq!(&f[..10], &[0, 56, 31, 0xab, 0xcd, 0xef, 0x2f, 0, 0, 0]);
    assert_eq!(frame_len(&f), Some(f.len()));
    assert_eq!(emit(|b| connect().emit(b, XID, SENT)), f);
    let m = msg(&f);
    assert_eq!(m.message_type(), Ok(MessageType::Connect));
    assert_eq!((m.xid(), m.sent_time()), (XID, SENT));
    assert_eq!(Connect6::parse(m), Ok(connect()));
    // Without the relationship name (one relationship between the pair, §6.1.1).
    let single = Connect6 {
        relationship: None,
        ..connect()
    };
    let b = emit(|buf| single.emit(buf, 1, 2));
    assert_eq!(Connect6::parse(msg(&b)), Ok(single));
}

#[test]
fn connect_requires_its_options() {
    let full = [
        o6(127, &[0, 1, 0, 0]),
        o6(122, &[0; 4]),
        o6(128, &[0; 4]),
        o6(121, &[0; 4]),
        o6(115, &[0; 2]),
    ];
    for skip in 0..full.len() {
        let opts: Vec<u8> = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .flat_map(|(_, o)| o.clone())
            .collect();
        let f = frame(31, 1, 0, &opts);
        let code = u16::from_be_bytes([full[skip][0], full[skip][1]]);
        assert_eq!(Connect6::parse(msg(&f)), Err(Error::MissingOption { code }));
    }
    let mut twice: Vec<u8> = full.concat();
    twice.extend(o6(122, &[0; 4]));
    assert_eq!(
        Connect6::parse(msg(&frame(31, 1, 0, &twice))),
        Err(Error::DuplicateOption { code: 122 })
    );
    assert_eq!(
        Connect6::parse(msg(&frame(32, 1, 0, &full.concat()))),
        Err(Error::UnexpectedMessageType(32))
    );
    // An option of the wrong size is an error, an unknown one is skipped.
    let mut bad = full.concat();
    bad.extend(o6(999, b"x"));
    assert!(Connect6::parse(msg(&frame(31, 1, 0, &bad))).is_ok());
    bad.extend(o6(130, b""));
    bad.extend([0, 128, 0, 3, 0, 0, 0]);
    assert_eq!(
        Connect6::parse(msg(&frame(31, 1, 0, &bad))),
        Err(Error::BadOptionLength { code: 128 })
    );
}

#[test]
fn connect_reply_accepts_and_rejects() {
    let ok = ConnectReply6::accept(connect());
    assert!(ok.accepted());
    let b = emit(|buf| ok.emit(buf, XID, SENT));
    let m = msg(&b);
    assert_eq!(m.message_type(), Ok(MessageType::ConnectReply));
    assert_eq!(ConnectReply6::parse(m), Ok(ok));
    // A rejection carries only the status (RFC 8156 §6.1.2).
    let no = ConnectReply6::reject(status::NOT_SUPPORTED, b"version 2 only");
    assert!(!no.accepted());
    let b = emit(|buf| no.emit(buf, XID, SENT));
    assert_eq!(
        &b[10..],
        &o6(13, &[&[0, 14][..], b"version 2 only"].concat())[..]
    );
    assert_eq!(ConnectReply6::parse(msg(&b)), Ok(no));
    // An accepting reply without its parameters is malformed.
    let f = frame(32, 1, 0, &o6(13, &[0, 0]));
    assert_eq!(
        ConnectReply6::parse(msg(&f)),
        Err(Error::MissingOption {
            code: opt::F_PROTOCOL_VERSION
        })
    );
}

/// A STATE (RFC 8156 §6.3) byte by byte.
#[test]
fn state_matches_the_rfc_layout() {
    let s = State6 {
        state: ServerState::PartnerDown,
        flags: server_flags::COMMUNICATED | server_flags::ACK_STARTUP,
        start_time: 0x2f00_1000,
        partner_down_time: Some(0x2f00_1000),
    };
    let mut opts = Vec::new();
    opts.extend([0, 132, 0, 1, 4]); // OPTION_F_SERVER_STATE PARTNER-DOWN, §5.5.19
    opts.extend([0, 131, 0, 1, 0x05]); // OPTION_F_SERVER_FLAGS A|C, §5.5.18
    opts.extend([0, 133, 0, 4, 0x2f, 0, 0x10, 0]); // OPTION_F_START_TIME_OF_STATE, §5.5.20
    opts.extend([0, 125, 0, 4, 0x2f, 0, 0x10, 0]); // OPTION_F_PARTNER_DOWN_TIME, §5.5.12
    let f = frame(34, 7, SENT, &opts);
    assert_eq!(emit(|b| s.emit(b, 7, SENT)), f);
    assert_eq!(State6::parse(msg(&f)), Ok(s));
    let normal = State6 {
        state: ServerState::Normal,
        flags: 0,
        start_time: 1,
        partner_down_time: None,
    };
    let b = emit(|buf| normal.emit(buf, 8, SENT));
    assert_eq!(State6::parse(msg(&b)), Ok(normal));
    // A state §5.5.19 does not define.
    let f = frame(
        34,
        1,
        0,
        &[o6(132, &[11]), o6(131, &[0]), o6(133, &[0; 4])].concat(),
    );
    assert_eq!(
        State6::parse(msg(&f)),
        Err(Error::BadOptionValue {
            code: opt::F_SERVER_STATE
        })
    );
    for v in 0..=u8::MAX {
        match ServerState::try_from(v) {
            Ok(st) => {
                assert!((1..=10).contains(&v));
                assert_eq!(u8::from(st), v);
            }
            Err(back) => assert_eq!(back, v),
        }
        if let Ok(bs) = BindingStatus::try_from(v) {
            assert!((1..=8).contains(&v));
            assert_eq!(u8::from(bs), v);
        }
    }
}

#[test]
fn disconnect_and_header_only_messages_round_trip() {
    let d = Disconnect6 {
        status: Some(StatusValue::new(status::SERVER_SHUTTING_DOWN, b"bye")),
    };
    let b = emit(|buf| d.emit(buf, XID, SENT));
    assert_eq!(Disconnect6::parse(msg(&b)), Ok(d));
    let none = Disconnect6 { status: None };
    let b = emit(|buf| none.emit(buf, XID, SENT));
    assert_eq!(b.len(), 10);
    assert_eq!(Disconnect6::parse(msg(&b)), Ok(none));
    for t in [
        MessageType::PoolReq,
        MessageType::PoolResp,
        MessageType::UpdReq,
        MessageType::UpdReqAll,
        MessageType::UpdDone,
        MessageType::Contact,
    ] {
        let h = Header {
            msg_type: t,
            xid: 0x0100_0002, // only the low 24 bits go on the wire (RFC 8156 §5.2)
            sent_time: SENT,
        };
        let b = emit(|buf| MessageWriter::header_only(buf, &h));
        assert_eq!(b, frame(t.into(), 2, SENT, &[]));
        let m = msg(&b);
        assert_eq!(m.message_type(), Ok(t));
        assert_eq!((m.xid(), m.sent_time()), (2, SENT));
        assert_eq!(m.option_iter().count(), 0);
    }
}

fn na_binding() -> LeaseBinding<'static> {
    let mut b = LeaseBinding::new(IaKind::Na, addr("2001:db8:1::107"), 128);
    b.iaid = 1;
    b.t1 = 1800;
    b.t2 = 2880;
    b.preferred = 3600;
    b.valid = 7200;
    b.status = Some(BindingStatus::Active);
    b.start_time_of_state = Some(0x2f00_0100);
    b.state_expiration_time = Some(0x2f00_1c20);
    b.clt_time = Some(5);
    b.partner_lifetime = Some(0x2f00_2a30);
    b.partner_raw_clt_time = Some(0x2f00_00f0);
    b.expiration_time = Some(0x2f00_1c20);
    b
}

fn pd_binding() -> LeaseBinding<'static> {
    let mut b = LeaseBinding::new(IaKind::Pd, addr("2001:db8:8000:700::"), 56);
    b.iaid = 2;
    b.preferred = 3600;
    b.valid = 7200;
    b.status = Some(BindingStatus::Active);
    b.start_time_of_state = Some(0x2f00_0100);
    b
}

/// A BNDUPD (RFC 8156 §7.4) byte by byte: `OPTION_CLIENT_DATA` holding the client id, the
/// base time, an `IA_NA` with one IAADDR and an `IA_PD` with one IAPREFIX, each with its
/// failover options.
#[test]
fn binding_update_matches_the_rfc_layout() {
    let a = addr("2001:db8:1::107").octets();
    let mut iaaddr = a.to_vec(); // IPv6-address, RFC 8415 §21.6
    iaaddr.extend([0, 0, 0x0e, 0x10, 0, 0, 0x1c, 0x20]); // preferred 3600, valid 7200
    iaaddr.extend([0, 114, 0, 1, 1]); // OPTION_F_BINDING_STATUS ACTIVE
    iaaddr.extend([0, 133, 0, 4, 0x2f, 0, 1, 0]); // OPTION_F_START_TIME_OF_STATE
    iaaddr.extend([0, 134, 0, 4, 0x2f, 0, 0x1c, 0x20]); // OPTION_F_STATE_EXPIRATION_TIME
    iaaddr.extend([0, 46, 0, 4, 0, 0, 0, 5]); // OPTION_CLT_TIME 5 s
    iaaddr.extend([0, 123, 0, 4, 0x2f, 0, 0x2a, 0x30]); // OPTION_F_PARTNER_LIFETIME
    iaaddr.extend([0, 126, 0, 4, 0x2f, 0, 0, 0xf0]); // OPTION_F_PARTNER_RAW_CLT_TIME
    iaaddr.extend([0, 120, 0, 4, 0x2f, 0, 0x1c, 0x20]); // OPTION_F_EXPIRATION_TIME
    let mut ia_na = vec![0, 0, 0, 1, 0, 0, 0x07, 0x08, 0, 0, 0x0b, 0x40]; // IAID 1, T1, T2
    ia_na.extend(o6(5, &iaaddr));
    let mut iaprefix = vec![0, 0, 0x0e, 0x10, 0, 0, 0x1c, 0x20, 56]; // RFC 8415 §21.22
    iaprefix.extend(addr("2001:db8:8000:700::").octets());
    iaprefix.extend([0, 114, 0, 1, 1, 0, 133, 0, 4, 0x2f, 0, 1, 0]);
    let mut ia_pd = vec![0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
    ia_pd.extend(o6(26, &iaprefix));
    let mut client = o6(1, DUID); // OPTION_CLIENTID
    client.extend(o6(100, &[0x2f, 0, 2, 0])); // OPTION_LQ_BASE_TIME
    client.extend(o6(3, &ia_na));
    client.extend(o6(25, &ia_pd));
    let f = frame(24, XID, SENT, &o6(45, &client));

    let cd = ClientData6::new(DUID, 0x2f00_0200);
    let ours =
        emit(|b| BindingUpdate6::emit_client(&cd, [na_binding(), pd_binding()], b, XID, SENT));
    assert_eq!(ours, f);

    let u = BindingUpdate6::parse(msg(&f)).unwrap();
    let BindingBody::Client(got) = u.body else {
        panic!("not client data: {u:?}");
    };
    assert_eq!(got.duid, DUID);
    assert_eq!(got.base_time, Some(0x2f00_0200));
    assert_eq!(got.options(), &client[..]);
    let leases: Vec<_> = got.leases().map(Result::unwrap).collect();
    assert_eq!(leases, [na_binding(), pd_binding()]);
    // Re-emitting the parsed update gives the same bytes.
    assert_eq!(emit(|b| u.emit(b, XID, SENT)), f);
}

#[test]
fn bindings_of_one_ia_share_it() {
    let mut second = na_binding();
    second.addr = addr("2001:db8:1::108");
    let mut other_ia = na_binding();
    other_ia.iaid = 9;
    let cd = ClientData6::new(DUID, 1);
    let b =
        emit(|buf| BindingUpdate6::emit_client(&cd, [na_binding(), second, other_ia], buf, 1, 0));
    let m = msg(&b);
    let BindingBody::Client(got) = BindingUpdate6::parse(m).unwrap().body else {
        panic!("not client data");
    };
    let ias = OptionIter::new(got.options())
        .filter(|o| o.unwrap().code == opt::IA_NA)
        .count();
    assert_eq!(ias, 2);
    let leases: Vec<_> = got.leases().map(Result::unwrap).collect();
    assert_eq!(leases, [na_binding(), second, other_ia]);
}

#[test]
fn binding_update_requires_what_section_7_4_requires() {
    let cd = ClientData6::new(DUID, 1);
    let mut no_status = na_binding();
    no_status.status = None;
    let b = emit(|buf| BindingUpdate6::emit_client(&cd, [no_status], buf, 1, 0));
    assert_eq!(
        BindingUpdate6::parse(msg(&b)),
        Err(Error::MissingOption {
            code: opt::F_BINDING_STATUS
        })
    );
    let mut no_start = na_binding();
    no_start.start_time_of_state = None;
    let b = emit(|buf| BindingUpdate6::emit_client(&cd, [no_start], buf, 1, 0));
    assert_eq!(
        BindingUpdate6::parse(msg(&b)),
        Err(Error::MissingOption {
            code: opt::F_START_TIME_OF_STATE
        })
    );
    let mut no_base = cd;
    no_base.base_time = None;
    let b = emit(|buf| BindingUpdate6::emit_client(&no_base, [na_binding()], buf, 1, 0));
    assert_eq!(
        BindingUpdate6::parse(msg(&b)),
        Err(Error::MissingOption {
            code: opt::LQ_BASE_TIME
        })
    );
    let b = emit(|buf| BindingUpdate6::emit_client(&cd, [], buf, 1, 0));
    assert_eq!(
        BindingUpdate6::parse(msg(&b)),
        Err(Error::MissingOption { code: opt::IA_NA })
    );
    // Neither client data nor a prefix; two client data (RFC 8156 §7.5.3).
    assert_eq!(
        BindingUpdate6::parse(msg(&frame(24, 1, 0, &[]))),
        Err(Error::MissingOption {
            code: opt::CLIENT_DATA
        })
    );
    let one = emit(|buf| BindingUpdate6::emit_client(&cd, [na_binding()], buf, 1, 0));
    let body = &one[10..];
    let two = frame(24, 1, 0, &[body, body].concat());
    assert_eq!(
        BindingUpdate6::parse(msg(&two)),
        Err(Error::DuplicateOption {
            code: opt::CLIENT_DATA
        })
    );
    // No client id.
    let f = frame(24, 1, 0, &o6(45, &o6(100, &[0; 4])));
    assert_eq!(
        BindingUpdate6::parse(msg(&f)),
        Err(Error::MissingOption {
            code: opt::CLIENTID
        })
    );
    // A DUID longer than RFC 8415 §11.1 allows.
    let f = frame(24, 1, 0, &o6(45, &o6(1, &[1; 131])));
    assert_eq!(
        BindingUpdate6::parse(msg(&f)),
        Err(Error::BadOptionValue {
            code: opt::CLIENTID
        })
    );
}

#[test]
fn malformed_bindings_are_errors() {
    let ia_with = |code: u16, inner: &[u8]| {
        let mut ia = vec![0u8; 12];
        ia.extend_from_slice(inner);
        let mut client = o6(1, DUID);
        client.extend(o6(100, &[0; 4]));
        client.extend(o6(code, &ia));
        frame(24, 1, 0, &o6(45, &client))
    };
    let mut prefix = vec![0u8; 8];
    prefix.push(129); // prefix-length over 128
    prefix.extend([0u8; 16]);
    for (f, e) in [
        (
            ia_with(opt::IA_TA, &[]),
            Error::UnsupportedOption { code: opt::IA_TA },
        ),
        (
            ia_with(opt::IA_PD, &o6(26, &prefix)),
            Error::BadOptionValue {
                code: opt::IAPREFIX,
            },
        ),
        (
            ia_with(opt::IA_NA, &o6(5, &[0; 23])),
            Error::BadOptionLength { code: opt::IAADDR },
        ),
        (
            ia_with(opt::IA_NA, &o6(26, &[0; 25])),
            Error::BadOptionValue {
                code: opt::IAPREFIX,
            },
        ),
        (
            ia_with(opt::IA_NA, &[0, 5, 0, 30, 0]),
            Error::BadOptionLength { code: opt::IAADDR },
        ),
        (
            ia_with(
                opt::IA_NA,
                &o6(5, &[&[0u8; 24][..], &o6(114, &[9])].concat()),
            ),
            Error::BadOptionValue {
                code: opt::F_BINDING_STATUS,
            },
        ),
        (
            ia_with(
                opt::IA_NA,
                &o6(
                    5,
                    &[&[0u8; 24][..], &o6(133, &[0; 4]), &o6(133, &[0; 4])].concat(),
                ),
            ),
            Error::DuplicateOption {
                code: opt::F_START_TIME_OF_STATE,
            },
        ),
    ] {
        assert_eq!(BindingUpdate6::parse(msg(&f)), Err(e), "{e:?}");
        // The reply parser accepts the envelope; the bindings report the error.
        let mut r = f.clone();
        r[2] = 25;
        let reply = BindingReply6::parse(msg(&r)).unwrap();
        let BindingBody::Client(cd) = reply.body else {
            panic!("not client data");
        };
        let mut it = cd.leases();
        assert_eq!(it.next(), Some(Err(e)));
        assert_eq!(it.next(), None);
        let mut buf = [0u8; 512];
        assert_eq!(reply.emit(&mut buf, 1, 0), Err(e));
    }
    // An IA shorter than its 12-byte fixed part.
    let mut client = o6(1, DUID);
    client.extend(o6(100, &[0; 4]));
    client.extend(o6(opt::IA_PD, &[0; 11]));
    assert_eq!(
        BindingUpdate6::parse(msg(&frame(24, 1, 0, &o6(45, &client)))),
        Err(Error::BadOptionLength { code: opt::IA_PD })
    );
}

#[test]
fn binding_reply_carries_statuses() {
    let mut rejected = na_binding();
    rejected.status_code = Some(StatusValue::new(status::ADDRESS_IN_USE, b"other client"));
    rejected.partner_lifetime_sent = Some(0x2f00_2a30);
    let mut ia_rejected = pd_binding();
    ia_rejected.ia_status = Some(StatusValue::new(status::CONFIGURATION_CONFLICT, b""));
    let mut cd = ClientData6::new(DUID, 3);
    cd.status = Some(StatusValue::new(status::SUCCESS, b"note"));
    let b = emit(|buf| BindingReply6::emit_client(&cd, [rejected, ia_rejected], buf, XID, SENT));
    let m = msg(&b);
    assert_eq!(m.message_type(), Ok(MessageType::BndReply));
    let r = BindingReply6::parse(m).unwrap();
    assert_eq!(
        r.top_status(),
        Some(StatusValue::new(status::SUCCESS, b"note"))
    );
    assert!(r.top_status().unwrap().is_success());
    let BindingBody::Client(got) = r.body else {
        panic!("not client data");
    };
    let leases: Vec<_> = got.leases().map(Result::unwrap).collect();
    assert_eq!(leases, [rejected, ia_rejected]);
    assert_eq!(emit(|buf| r.emit(buf, XID, SENT)), b);
}

#[test]
fn top_level_prefix_update_and_reply() {
    let mut prefix = pd_binding();
    prefix.iaid = 0;
    prefix.status = Some(BindingStatus::FreeBackup);
    prefix.base_time = Some(0x2f00_0300);
    let u = BindingUpdate6 {
        body: BindingBody::Prefix(prefix),
    };
    let b = emit(|buf| u.emit(buf, XID, SENT));
    // The IAPREFIX is a top-level option of the BNDUPD (RFC 8156 §7.4).
    assert_eq!(&b[10..12], &[0, 26]);
    assert_eq!(BindingUpdate6::parse(msg(&b)), Ok(u));
    let mut no_base = prefix;
    no_base.base_time = None;
    let b = emit(|buf| {
        BindingUpdate6 {
            body: BindingBody::Prefix(no_base),
        }
        .emit(buf, 1, 0)
    });
    assert_eq!(
        BindingUpdate6::parse(msg(&b)),
        Err(Error::MissingOption {
            code: opt::LQ_BASE_TIME
        })
    );
    let mut reply = prefix;
    reply.status_code = Some(StatusValue::new(status::OUTDATED_BINDING_INFORMATION, b""));
    let r = BindingReply6 {
        body: BindingBody::Prefix(reply),
    };
    let b = emit(|buf| r.emit(buf, XID, SENT));
    let back = BindingReply6::parse(msg(&b)).unwrap();
    assert_eq!(back, r);
    assert_eq!(
        back.top_status().map(|s| s.code),
        Some(status::OUTDATED_BINDING_INFORMATION)
    );
    // An address cannot be written as a top-level prefix.
    let mut buf = [0u8; 256];
    let mut w = MessageWriter::new(
        &mut buf,
        &Header {
            msg_type: MessageType::BndUpd,
            xid: 1,
            sent_time: 0,
        },
    )
    .unwrap();
    assert_eq!(
        na_binding().write_prefix(&mut w),
        Err(Error::BadOptionValue {
            code: opt::IAPREFIX
        })
    );
    assert_eq!(w.len(), 10);
}

fn lease(kind: IaKind, a: &str, len: u8, state: BindingState) -> Lease6 {
    Lease6 {
        kind,
        addr: addr(a),
        prefix_len: len,
        state,
        client: ClientKey::from_duid(DUID).unwrap(),
        iaid: 7,
        subnet_id: 3,
        preferred_until: 1_700_003_600,
        expires: 1_700_007_200,
        cltt: 1_699_999_990,
        partner_expires: 0,
        update_pending: false,
    }
}

#[test]
fn time_conversion() {
    assert_eq!(to_unix(0), 946_684_800);
    assert_eq!(from_unix(946_684_800), 0);
    assert_eq!(from_unix(1_700_000_000), 753_315_200);
    // Modulo 2^32 (RFC 8156 §5.5.7).
    assert_eq!(to_unix(u32::MAX), 946_684_799);
}

#[test]
fn lease6_round_trips_through_a_binding_update() {
    let now = 1_700_000_000;
    let times = BindingTimes {
        now,
        start_time_of_state: 1_699_999_000,
        partner_lifetime: 1_700_010_800,
        expiration_time: 1_700_007_200,
    };
    let na = lease(IaKind::Na, "2001:db8:1::107", 128, BindingState::Active);
    let pd = lease(IaKind::Pd, "2001:db8:8000:700::", 56, BindingState::Active);
    let bn = LeaseBinding::from_lease6(&na, &times);
    assert_eq!(bn.status, Some(BindingStatus::Active));
    assert_eq!((bn.preferred, bn.valid), (3600, 7200));
    assert_eq!(bn.clt_time, Some(10));
    assert_eq!(bn.start_time_of_state, Some(from_unix(1_699_999_000)));
    assert_eq!(bn.state_expiration_time, Some(from_unix(na.expires)));
    assert_eq!(bn.partner_lifetime, Some(from_unix(1_700_010_800)));
    assert_eq!(bn.expiration_time, Some(from_unix(1_700_007_200)));
    let bp = LeaseBinding::from_lease6(&pd, &times);
    let cd = ClientData6::new(DUID, from_unix(now));
    let b = emit(|buf| BindingUpdate6::emit_client(&cd, [bn, bp], buf, XID, SENT));
    let BindingBody::Client(got) = BindingUpdate6::parse(msg(&b)).unwrap().body else {
        panic!("not client data");
    };
    let back: Vec<Lease6> = got
        .leases()
        .map(|l| {
            l.unwrap()
                .to_lease6(got.duid, got.base_time.unwrap(), 3)
                .unwrap()
        })
        .collect();
    assert_eq!(back, [na, pd]);
}

#[test]
fn lease6_states_map_both_ways() {
    let now = 1_700_000_000;
    let times = BindingTimes {
        now,
        start_time_of_state: now,
        partner_lifetime: now,
        expiration_time: now,
    };
    for (state, status, timeout) in [
        (BindingState::Free, BindingStatus::Free, false),
        (BindingState::Active, BindingStatus::Active, true),
        (BindingState::Expired, BindingStatus::Expired, false),
        (BindingState::Released, BindingStatus::Released, false),
        (BindingState::Abandoned, BindingStatus::Abandoned, true),
        (BindingState::Reset, BindingStatus::Reset, false),
        (BindingState::Backup, BindingStatus::FreeBackup, false),
    ] {
        let l = lease(IaKind::Na, "2001:db8::1", 128, state);
        let b = LeaseBinding::from_lease6(&l, &times);
        assert_eq!(b.status, Some(status));
        // §7.4: the timeout values appear exactly when the status has a timeout.
        assert_eq!(b.state_expiration_time.is_some(), timeout, "{state:?}");
        assert_eq!(b.partner_lifetime.is_some(), timeout);
        assert_eq!(b.expiration_time.is_some(), timeout);
        let back = b.to_lease6(DUID, from_unix(now), 3).unwrap();
        assert_eq!(back.state, state);
        assert_eq!(back.cltt, l.cltt);
    }
    let mut pending = LeaseBinding::new(IaKind::Na, addr("2001:db8::1"), 128);
    pending.status = Some(BindingStatus::PendingFree);
    assert_eq!(
        pending.to_lease6(DUID, 0, 1).unwrap().state,
        BindingState::Free
    );
    pending.partner_lifetime_sent = Some(100);
    assert_eq!(
        pending.to_lease6(DUID, 0, 1).unwrap().partner_expires,
        to_unix(100)
    );
    pending.status = None;
    assert_eq!(
        pending.to_lease6(DUID, 0, 1),
        Err(Error::MissingOption {
            code: opt::F_BINDING_STATUS
        })
    );
    pending.status = Some(BindingStatus::Free);
    assert_eq!(
        pending.to_lease6(&[0; 300], 0, 1),
        Err(Error::BadOptionValue {
            code: opt::CLIENTID
        })
    );
}

#[test]
fn framing_truncations_and_lying_lengths() {
    let f = emit(|b| connect().emit(b, XID, SENT));
    let mut stream = f.clone();
    stream.extend_from_slice(&f[..5]);
    assert_eq!(frame_len(&stream), Some(f.len()));
    assert_eq!(frame_message(&stream), Ok(&f[2..]));
    assert_eq!(
        frame_message(&stream[f.len()..]),
        Err(Error::Truncated {
            len: 5,
            need: f.len()
        })
    );
    for n in 0..f.len() {
        let r = frame_message(&f[..n]);
        if n < 2 {
            assert_eq!(frame_len(&f[..n]), None);
            assert_eq!(r, Err(Error::Truncated { len: n, need: 2 }));
        } else {
            assert_eq!(
                r,
                Err(Error::Truncated {
                    len: n,
                    need: f.len()
                })
            );
        }
    }
    // msg-size shorter than the 8-byte header (RFC 8156 §5.2).
    for size in 0..8u16 {
        let mut b = size.to_be_bytes().to_vec();
        b.extend([0u8; 8]);
        assert_eq!(frame_message(&b), Err(Error::BadLength(size)));
    }
    for n in 0..8 {
        assert_eq!(
            Message::new_checked(&f[2..2 + n]).unwrap_err(),
            Error::Truncated { len: n, need: 8 }
        );
    }
    // An option length running past the message.
    let mut lying = f.clone();
    lying[13] = 0xff; // length of the first option
    let m = msg(&lying);
    assert_eq!(
        m.option_iter().next(),
        Some(Err(Error::BadOptionLength { code: 130 }))
    );
    assert_eq!(
        Connect6::parse(m),
        Err(Error::BadOptionLength { code: 130 })
    );
    assert_eq!(m.option(opt::F_MCLT), None);
    let mut unknown = f.clone();
    unknown[2] = 23;
    assert_eq!(
        msg(&unknown).message_type(),
        Err(Error::UnknownMessageType(23))
    );
    fuzz_one(&stream);
    fuzz_one(&lying);
}

#[test]
fn setters_match_accessors() {
    let mut b = emit(|buf| connect().emit(buf, XID, SENT));
    let mut m = Message::new_unchecked(&mut b[2..]);
    m.set_msg_type(MessageType::State);
    m.set_xid(0x0102_0304);
    m.set_sent_time(9);
    let m = Message::new_checked(m.into_inner()).unwrap();
    assert_eq!(
        (m.message_type(), m.xid(), m.sent_time()),
        (Ok(MessageType::State), 0x02_0304, 9)
    );
}

#[test]
fn writer_nesting_and_limits() {
    let h = Header {
        msg_type: MessageType::BndUpd,
        xid: 1,
        sent_time: 2,
    };
    let mut tiny = [0u8; 9];
    assert_eq!(
        MessageWriter::new(&mut tiny, &h).unwrap_err(),
        Error::BufferTooSmall
    );
    let mut buf = [0u8; 64];
    let mut w = MessageWriter::new(&mut buf, &h).unwrap();
    let outer = w.begin_option(opt::CLIENT_DATA, &[]).unwrap();
    let inner = w.begin_option(opt::IA_NA, &[0; 12]).unwrap();
    assert_eq!(w.depth(), 2);
    assert_eq!(w.end_option(&outer), Err(Error::BadNesting));
    assert_eq!(w.abort_option(&outer), Err(Error::BadNesting));
    w.option_u8(opt::F_BINDING_STATUS, 1).unwrap();
    w.end_option(&inner).unwrap();
    assert_eq!(w.end_option(&inner), Err(Error::BadNesting));
    let junk = w.begin_option(999, b"junk").unwrap();
    w.option(998, b"more").unwrap();
    w.abort_option(&junk).unwrap();
    w.end_option(&outer).unwrap();
    let n = w.finish().unwrap();
    let m = msg(&buf[..n]);
    let cd = m.option(opt::CLIENT_DATA).unwrap();
    assert_eq!(cd, &o6(3, &[&[0u8; 12][..], &o6(114, &[1])].concat())[..]);
    // Still open at the end.
    let mut buf = [0u8; 64];
    let mut w = MessageWriter::new(&mut buf, &h).unwrap();
    let _open = w.begin_option(1, &[]).unwrap();
    assert_eq!(w.finish(), Err(Error::BadNesting));
    // Too deep.
    let mut buf = [0u8; 128];
    let mut w = MessageWriter::new(&mut buf, &h).unwrap();
    for _ in 0..MAX_NESTING {
        let _h = w.begin_option(1, &[]).unwrap();
    }
    assert_eq!(w.begin_option(1, &[]), Err(Error::BadNesting));
    // A failed option leaves the message as it was.
    let mut buf = [0u8; 20];
    let mut w = MessageWriter::new(&mut buf, &h).unwrap();
    assert_eq!(w.remaining(), 10);
    assert_eq!(
        w.option(opt::F_RELATIONSHIP_NAME, b"1234567"),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(w.len(), 10);
    w.option(opt::F_RELATIONSHIP_NAME, b"123456").unwrap();
    assert_eq!(w.remaining(), 0);
    assert_eq!(w.finish(), Ok(20));
    assert_eq!(&buf[..2], &[0, 18]);
    // The largest message: msg-size is 16 bits.
    let mut big = vec![0u8; 70_000];
    let value = vec![0u8; 65_536];
    let mut w = MessageWriter::new(&mut big, &h).unwrap();
    assert_eq!(w.remaining(), 65_535 - 8);
    assert_eq!(
        w.option(opt::F_RELATIONSHIP_NAME, &value),
        Err(Error::OptionTooLong {
            code: opt::F_RELATIONSHIP_NAME
        })
    );
    w.option(opt::F_RELATIONSHIP_NAME, &value[..65_535 - 8 - 4])
        .unwrap();
    let n = w.finish().unwrap();
    assert_eq!(n, 65_537);
    assert_eq!(frame_len(&big), Some(65_537));
    fuzz_one(&big[..n]);
}

#[test]
fn error_reasons_are_distinct() {
    let all = [
        Error::Truncated { len: 0, need: 2 },
        Error::BadLength(0),
        Error::UnknownMessageType(0),
        Error::UnexpectedMessageType(0),
        Error::BadOptionLength { code: 0 },
        Error::BadOptionValue { code: 0 },
        Error::MissingOption { code: 0 },
        Error::DuplicateOption { code: 0 },
        Error::UnsupportedOption { code: 0 },
        Error::OptionTooLong { code: 0 },
        Error::BadNesting,
        Error::BufferTooSmall,
    ];
    let mut reasons: Vec<&str> = all.iter().map(Error::reason).collect();
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), all.len());
}

#[test]
fn fuzz_one_edge_cases() {
    fuzz_one(&[]);
    fuzz_one(&[0]);
    fuzz_one(&[0, 0]);
    fuzz_one(&[0, 8, 24, 0, 0, 0, 0, 0, 0, 0]);
    fuzz_one(&[0xff; 300]);
    fuzz_one(&frame(25, 1, 0, &o6(45, &o6(1, DUID))));
}

/// A binding of either kind from arbitrary fields.
fn gen_binding() -> impl Strategy<Value = LeaseBinding<'static>> {
    (
        any::<bool>(),
        (
            any::<u32>(),
            0u8..=128,
            any::<[u8; 16]>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (
            0u8..=9,
            any::<u32>(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
        ),
        (
            any::<Option<u32>>(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
        ),
        prop::option::of(0u16..30),
    )
        .prop_map(
            |(pd, (iaid, len, a, pref, valid), (st, start, sexp, clt), (pl, raw, exp), sc)| {
                let kind = if pd { IaKind::Pd } else { IaKind::Na };
                let mut b = LeaseBinding::new(kind, Ipv6Addr::from(a), if pd { len } else { 128 });
                b.iaid = iaid % 4;
                b.preferred = pref;
                b.valid = valid;
                b.status = BindingStatus::try_from(st).ok();
                b.start_time_of_state = Some(start);
                b.state_expiration_time = sexp;
                b.clt_time = clt;
                b.partner_lifetime = pl;
                b.partner_raw_clt_time = raw;
                b.expiration_time = exp;
                b.status_code = sc.map(|c| StatusValue::new(c, b"s"));
                b
            },
        )
}

proptest! {
    /// No input makes the codec panic, and what parses survives a rewrite.
    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..400)) {
        fuzz_one(&data);
    }

    /// Arbitrary options behind a valid frame and header of every type.
    #[test]
    fn arbitrary_options(t in 24u8..=35, options in prop::collection::vec(any::<u8>(), 0..400)) {
        fuzz_one(&frame(t, 1, 2, &options));
    }

    /// Arbitrary well-framed options of the failover codes, in every message type.
    #[test]
    fn arbitrary_failover_options(
        t in 24u8..=35,
        list in prop::collection::vec((prop_oneof![114u16..=134, Just(1u16), Just(13), Just(45), Just(46), Just(100), Just(3), Just(25), Just(26)], prop::collection::vec(any::<u8>(), 0..40)), 0..12),
    ) {
        let options: Vec<u8> = list.iter().flat_map(|(c, v)| o6(*c, v)).collect();
        fuzz_one(&frame(t, 1, 2, &options));
        fuzz_one(&frame(t, 1, 2, &o6(45, &[&o6(1, DUID)[..], &options].concat())));
    }

    /// Client data written from arbitrary bindings parses back to the same bindings.
    #[test]
    fn client_data_round_trips(
        base in any::<u32>(),
        leases in prop::collection::vec(gen_binding(), 0..6),
        reply in any::<bool>(),
    ) {
        let cd = ClientData6::new(DUID, base);
        let mut buf = vec![0u8; 8192];
        let n = if reply {
            BindingReply6::emit_client(&cd, leases.iter().copied(), &mut buf, 3, 4)
        } else {
            BindingUpdate6::emit_client(&cd, leases.iter().copied(), &mut buf, 3, 4)
        }.unwrap();
        let m = msg(&buf[..n]);
        let body = if reply {
            BindingReply6::parse(m).map(|r| r.body)
        } else {
            let u = BindingUpdate6::parse(m);
            let all_ok = !leases.is_empty() && leases.iter().all(|l| l.status.is_some());
            prop_assert_eq!(u.is_ok(), all_ok, "{:?}", u);
            u.map(|u| u.body)
        };
        if let Ok(body) = body {
            let BindingBody::Client(got) = body else { panic!("not client data") };
            prop_assert_eq!(got.duid, DUID);
            prop_assert_eq!(got.base_time, Some(base));
            let back: Vec<_> = got.leases().map(Result::unwrap).collect();
            prop_assert_eq!(back, leases);
        }
        fuzz_one(&buf[..n]);
    }
}
