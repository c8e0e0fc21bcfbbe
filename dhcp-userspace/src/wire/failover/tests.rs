//! Unit and property tests of the failover codec (draft-ietf-dhc-failover-12 §6, §12).

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

/// A CONNECT captured from ISC dhcpd 4.4.3-P1 configured as primary of relationship "p"
/// (max-unacked-updates 10, max-response-delay 30, mclt 3600, split 128).
const ISC_CONNECT: &str = "0067050c6b013e0f000000000016000170000e00040000000a001300040000001e\
001c000c6973632d342e342e332d50310014000101001b000100000f000400000e10000b0020ffffffffffffffff\
ffffffffffffffff00000000000000000000000000000000";

/// The CONNECTACK with which that dhcpd rejected a CONNECT lacking the hash bucket
/// assignment: reject-reason 18 (HBA conflict) and message "invalid HBA".
const ISC_CONNECTACK_REJECT: &str = "004f060c6b013efd747700010016000170000e00040000000a001300040000001e001c000c6973632d34\
2e342e332d50310014000101001a00010000150001120010000b696e76616c696420484241";

/// A STATE from that dhcpd: RECOVER, flags STARTUP, since 0x6b013f26.
const ISC_STATE: &str = "001e0a0c6b013f270000000100180001060017000101001900046b013f26";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn header(t: MessageType) -> Header {
    Header {
        msg_type: t,
        time: 0x6b01_3e0f,
        xid: 0x0102_0304,
    }
}

fn opts(p: &Packet<&[u8]>) -> Vec<Opt<'static>> {
    // Leak for test convenience: values borrowed beyond the packet's scope.
    let payload: &'static [u8] = Box::leak(p.payload().to_vec().into_boxed_slice());
    OptionIter::new(payload)
        .map(|o| Opt::parse(o.unwrap()).unwrap())
        .collect()
}

#[test]
fn isc_connect_parses() {
    let b = hex(ISC_CONNECT);
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.length(), 103);
    assert_eq!(p.message_type(), Ok(MessageType::Connect));
    assert_eq!(p.payload_offset(), 12);
    assert_eq!(p.time(), 0x6b01_3e0f);
    assert_eq!(p.xid(), 0);
    assert!(p.additional_header().is_empty());
    let mut hba = [0u8; 32];
    hba[..16].fill(0xff);
    assert_eq!(
        opts(&p),
        vec![
            Opt::RelationshipName(b"p"),
            Opt::MaxUnackedBndupd(10),
            Opt::ReceiveTimer(30),
            Opt::VendorClassIdentifier(b"isc-4.4.3-P1"),
            Opt::ProtocolVersion(PROTOCOL_VERSION),
            Opt::TlsRequest(0),
            Opt::Mclt(3600),
            Opt::HashBucketAssignment(Box::leak(Box::new(hba))),
        ]
    );
    assert_eq!(p.option(opt::MCLT), Some(&[0, 0, 0x0e, 0x10][..]));
    assert_eq!(p.option(opt::REJECT_REASON), None);
    fuzz_one(&b);
}

#[test]
fn isc_connectack_reject_parses() {
    let b = hex(ISC_CONNECTACK_REJECT);
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.message_type(), Ok(MessageType::ConnectAck));
    assert_eq!(p.xid(), 0x7477_0001);
    let o = opts(&p);
    assert_eq!(o.len(), 8);
    assert_eq!(o[5], Opt::TlsReply(0));
    assert_eq!(o[6], Opt::RejectReason(reject::HBA_CONFLICT));
    assert_eq!(o[7], Opt::Message(b"invalid HBA"));
    fuzz_one(&b);
}

#[test]
fn isc_state_parses() {
    let b = hex(ISC_STATE);
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.message_type(), Ok(MessageType::State));
    assert_eq!(
        opts(&p),
        vec![
            Opt::ServerState(ServerState::Recover.into()),
            Opt::ServerFlags(server_flags::STARTUP),
            Opt::StartTimeOfState(0x6b01_3f26),
        ]
    );
}

#[test]
fn every_message_type_round_trips() {
    for v in 0..=u8::MAX {
        match MessageType::try_from(v) {
            Ok(t) => {
                assert!((1..=12).contains(&v));
                assert_eq!(u8::from(t), v);
                let mut buf = [0u8; 64];
                let mut w = MessageWriter::new(&mut buf, &header(t)).unwrap();
                w.option_u8(opt::REJECT_REASON, reject::UNKNOWN).unwrap();
                let n = w.finish();
                assert_eq!(n, 12 + 5);
                let p = Packet::new_checked(&buf[..n]).unwrap();
                assert_eq!(p.message_type(), Ok(t));
                assert_eq!(p.xid(), 0x0102_0304);
                assert_eq!(p.option(opt::REJECT_REASON), Some(&[254][..]));
            }
            Err(e) => {
                assert!(v == 0 || v > 12);
                assert_eq!(e, Error::UnknownMessageType(v));
            }
        }
    }
}

#[test]
fn unknown_message_type_is_viewable() {
    let mut b = hex(ISC_CONNECT);
    b[2] = 99;
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.msg_type(), 99);
    assert_eq!(p.message_type(), Err(Error::UnknownMessageType(99)));
}

#[test]
fn header_checks() {
    let b = hex(ISC_CONNECT);
    for n in 0..12 {
        assert_eq!(
            Packet::new_checked(&b[..n]).unwrap_err(),
            Error::Truncated { len: n, need: 12 }
        );
    }
    // The length field asks for more than is buffered: wait for the rest of the stream.
    assert_eq!(
        Packet::new_checked(&b[..102]).unwrap_err(),
        Error::Truncated {
            len: 102,
            need: 103
        }
    );
    let mut short = b.clone();
    short[..2].copy_from_slice(&11u16.to_be_bytes());
    assert_eq!(
        Packet::new_checked(&short[..]).unwrap_err(),
        Error::BadLength(11)
    );
    let mut off = b.clone();
    off[3] = 11;
    assert_eq!(
        Packet::new_checked(&off[..]).unwrap_err(),
        Error::BadPayloadOffset(11)
    );
    off[3] = 104;
    assert_eq!(
        Packet::new_checked(&off[..]).unwrap_err(),
        Error::BadPayloadOffset(104)
    );
    // A payload offset equal to the length: no options.
    off[3] = 103;
    let p = Packet::new_checked(&off[..]).unwrap();
    assert!(p.payload().is_empty());
    assert_eq!(p.additional_header().len(), 91);
}

#[test]
fn stream_framing_stops_at_length() {
    let one = hex(ISC_CONNECT);
    let mut stream = one.clone();
    stream.extend_from_slice(&one[..20]);
    assert_eq!(frame_len(&stream), Some(103));
    assert_eq!(frame_len(&stream[..1]), None);
    let p = Packet::new_checked(&stream[..]).unwrap();
    assert_eq!(p.message(), &one[..]);
    assert_eq!(opts(&p).len(), 8);
    let rest = &stream[103..];
    assert_eq!(
        Packet::new_checked(rest).unwrap_err(),
        Error::Truncated { len: 20, need: 103 }
    );
}

#[test]
fn additional_header_round_trips() {
    let mut buf = [0u8; 64];
    let mut w =
        MessageWriter::with_additional_header(&mut buf, &header(MessageType::Contact), b"xyz")
            .unwrap();
    w.option_u32(opt::MCLT, 7).unwrap();
    let n = w.finish();
    let p = Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(p.payload_offset(), 15);
    assert_eq!(p.additional_header(), b"xyz");
    assert_eq!(opts(&p), vec![Opt::Mclt(7)]);
    let big = [0u8; MAX_ADDITIONAL_HEADER + 1];
    let mut out = [0u8; 512];
    assert_eq!(
        MessageWriter::with_additional_header(&mut out, &header(MessageType::Contact), &big)
            .unwrap_err(),
        Error::HeaderTooLong
    );
    let w = MessageWriter::with_additional_header(
        &mut out,
        &header(MessageType::Contact),
        &big[..MAX_ADDITIONAL_HEADER],
    )
    .unwrap();
    let n = w.finish();
    let p = Packet::new_checked(&out[..n]).unwrap();
    assert_eq!(p.payload_offset(), 255);
}

#[test]
fn setters_match_accessors() {
    let mut b = hex(ISC_CONNECT);
    let mut p = Packet::new_unchecked(&mut b[..]);
    p.set_msg_type(MessageType::State);
    p.set_time(5);
    p.set_xid(6);
    p.set_payload_offset(12);
    p.set_length(103);
    let p = Packet::new_checked(p.into_inner()).unwrap();
    assert_eq!(
        (p.message_type(), p.time(), p.xid()),
        (Ok(MessageType::State), 5, 6)
    );
}

/// Every option draft-12 §12 defines, one value each.
fn all_options() -> Vec<Opt<'static>> {
    vec![
        Opt::AddressesTransferred(17),
        Opt::AssignedIpAddress(Ipv4Addr::new(10, 0, 0, 9)),
        Opt::BindingStatus(BindingStatus::Active.into()),
        Opt::ClientIdentifier(b"\x01\xaa\xbb"),
        Opt::ClientHardwareAddress {
            htype: 1,
            addr: &[2, 0, 0, 0, 0, 1],
        },
        Opt::ClientLastTransactionTime(1_000_000),
        Opt::ClientReplyOptions(&[51, 4, 0, 0, 14, 16]),
        Opt::ClientRequestOptions(&[55, 2, 1, 3]),
        Opt::Ddns(&[0, 1, b'h']),
        Opt::DelayedService(3),
        Opt::HashBucketAssignment(&[0xf0; 32]),
        Opt::IpFlags(0x8000),
        Opt::LeaseExpirationTime(2_000_000),
        Opt::MaxUnackedBndupd(10),
        Opt::Mclt(3600),
        Opt::Message(b"hello"),
        Opt::MessageDigest(&[1, 9, 9, 9]),
        Opt::PotentialExpirationTime(3_000_000),
        Opt::ReceiveTimer(30),
        Opt::ProtocolVersion(1),
        Opt::RejectReason(reject::INVALID_MCLT),
        Opt::RelationshipName(b"p"),
        Opt::ServerFlags(server_flags::STARTUP),
        Opt::ServerState(ServerState::Normal.into()),
        Opt::StartTimeOfState(4_000_000),
        Opt::TlsReply(0),
        Opt::TlsRequest(0),
        Opt::VendorClassIdentifier(b"twinlease"),
        Opt::VendorSpecificOptions(&[1, 2]),
        Opt::Unknown {
            code: 4242,
            value: b"?",
        },
    ]
}

#[test]
fn every_option_round_trips_with_its_code() {
    let all = all_options();
    let codes: Vec<u16> = all.iter().map(Opt::code).collect();
    assert_eq!(codes[..29], (1..=29).collect::<Vec<u16>>()[..]);
    let mut buf = [0u8; 1024];
    let mut w = MessageWriter::new(&mut buf, &header(MessageType::BndUpd)).unwrap();
    for o in &all {
        w.opt(o).unwrap();
    }
    let n = w.finish();
    let p = Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(opts(&p), all);
    // The raw encoding of a few, byte for byte (draft-12 §6.2: code, length, value).
    let mut b = [0u8; 64];
    let mut w = MessageWriter::new(&mut b, &header(MessageType::BndUpd)).unwrap();
    w.opt(&Opt::ClientHardwareAddress {
        htype: 1,
        addr: &[0xaa, 0xbb],
    })
    .unwrap();
    w.option_ip(opt::ASSIGNED_IP_ADDRESS, Ipv4Addr::new(1, 2, 3, 4))
        .unwrap();
    w.option_u16(opt::IP_FLAGS, 0x0102).unwrap();
    let n = w.finish();
    assert_eq!(
        &b[12..n],
        &[
            0, 5, 0, 3, 1, 0xaa, 0xbb, 0, 2, 0, 4, 1, 2, 3, 4, 0, 12, 0, 2, 1, 2
        ]
    );
}

#[test]
fn fixed_size_options_reject_other_lengths() {
    let fixed: [(u16, usize); 18] = [
        (opt::ADDRESSES_TRANSFERRED, 4),
        (opt::ASSIGNED_IP_ADDRESS, 4),
        (opt::BINDING_STATUS, 1),
        (opt::CLIENT_LAST_TRANSACTION_TIME, 4),
        (opt::DELAYED_SERVICE, 1),
        (opt::IP_FLAGS, 2),
        (opt::LEASE_EXPIRATION_TIME, 4),
        (opt::MAX_UNACKED_BNDUPD, 4),
        (opt::MCLT, 4),
        (opt::POTENTIAL_EXPIRATION_TIME, 4),
        (opt::RECEIVE_TIMER, 4),
        (opt::PROTOCOL_VERSION, 1),
        (opt::REJECT_REASON, 1),
        (opt::SERVER_FLAGS, 1),
        (opt::SERVER_STATE, 1),
        (opt::START_TIME_OF_STATE, 4),
        (opt::TLS_REPLY, 1),
        (opt::TLS_REQUEST, 1),
    ];
    let bytes = [7u8; 8];
    for (code, size) in fixed {
        for len in 0..8 {
            let r = Opt::parse(FailoverOption {
                code,
                value: &bytes[..len],
            });
            if len == size {
                assert_eq!(r.map(|o| o.code()), Ok(code));
            } else {
                assert_eq!(
                    r,
                    Err(Error::BadOptionLength { code }),
                    "code {code} len {len}"
                );
            }
        }
    }
    assert_eq!(
        Opt::parse(FailoverOption {
            code: opt::CLIENT_HARDWARE_ADDRESS,
            value: &[],
        }),
        Err(Error::BadOptionLength {
            code: opt::CLIENT_HARDWARE_ADDRESS
        })
    );
}

#[test]
fn option_iter_malformed_and_fused() {
    for (payload, code) in [
        (&[0u8][..], 0u16),
        (&[0, 15][..], 15),
        (&[0, 15, 0][..], 15),
        (&[0, 15, 0, 5, 1, 2, 3, 4][..], 15),
    ] {
        let mut it = OptionIter::new(payload);
        assert_eq!(it.next(), Some(Err(Error::BadOptionLength { code })));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }
    // A good option before a bad one is yielded; an empty value is valid.
    let mut it = OptionIter::new(&[0, 16, 0, 0, 0, 21, 0, 9]);
    assert_eq!(
        it.next(),
        Some(Ok(FailoverOption {
            code: 16,
            value: &[]
        }))
    );
    assert!(matches!(it.next(), Some(Err(_))));
    assert_eq!(it.next(), None);
    assert_eq!(OptionIter::new(&[]).next(), None);
}

#[test]
fn writer_limits() {
    let mut tiny = [0u8; 11];
    assert_eq!(
        MessageWriter::new(&mut tiny, &header(MessageType::Contact)).unwrap_err(),
        Error::BufferTooSmall
    );
    let mut buf = [0u8; 20];
    let mut w = MessageWriter::new(&mut buf, &header(MessageType::Contact)).unwrap();
    assert_eq!(w.remaining(), 8);
    assert_eq!(w.option(opt::MESSAGE, b"12345"), Err(Error::BufferTooSmall));
    assert_eq!(w.len(), 12, "a failed option leaves the message unchanged");
    w.option(opt::MESSAGE, b"1234").unwrap();
    assert_eq!(w.remaining(), 0);
    assert_eq!(w.finish(), 20);
    // 65535 is the largest message: a value of 65536 bytes cannot be an option, and the
    // buffer beyond 65535 bytes is not used.
    let mut big = vec![0u8; 70_000];
    let value = vec![0u8; 65_536];
    let mut w = MessageWriter::new(&mut big, &header(MessageType::BndUpd)).unwrap();
    assert_eq!(w.remaining(), 65_535 - 12);
    assert_eq!(
        w.option(opt::MESSAGE, &value),
        Err(Error::OptionTooLong { code: opt::MESSAGE })
    );
    assert_eq!(
        w.option(opt::MESSAGE, &value[..65_535 - 12 - 3]),
        Err(Error::BufferTooSmall)
    );
    w.option(opt::MESSAGE, &value[..65_535 - 12 - 4]).unwrap();
    let n = w.finish();
    assert_eq!(n, 65_535);
    let p = Packet::new_checked(&big[..n]).unwrap();
    assert_eq!(p.option(opt::MESSAGE).map(<[u8]>::len), Some(65_519));
}

#[test]
fn state_and_status_values() {
    for v in 0..=u8::MAX {
        if let Ok(s) = ServerState::try_from(v) {
            assert_eq!(u8::from(s), v);
            assert!((1..=11).contains(&v) || v == 254);
        } else {
            assert_eq!(ServerState::try_from(v), Err(v));
        }
        if let Ok(s) = BindingStatus::try_from(v) {
            assert_eq!(u8::from(s), v);
            assert!((1..=7).contains(&v));
        }
    }
    assert_eq!(ServerState::try_from(2), Ok(ServerState::Normal));
    assert_eq!(ServerState::try_from(254), Ok(ServerState::RecoverWait));
}

#[test]
fn error_reasons_are_distinct() {
    let all = [
        Error::Truncated { len: 0, need: 12 },
        Error::BadLength(0),
        Error::BadPayloadOffset(0),
        Error::UnknownMessageType(0),
        Error::BadOptionLength { code: 0 },
        Error::OptionTooLong { code: 0 },
        Error::HeaderTooLong,
        Error::BufferTooSmall,
        Error::WrongMessageType {
            expected: MessageType::Connect,
            got: 0,
        },
        Error::MissingOption { code: 0 },
        Error::DuplicateOption { code: 0 },
        Error::BadValue { code: 0, value: 0 },
        Error::MultipleTransactions(2),
    ];
    let mut reasons: Vec<&str> = all.iter().map(Error::reason).collect();
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), all.len());
}

#[test]
fn fuzz_one_edge_cases() {
    fuzz_one(&[]);
    fuzz_one(&[0, 12, 5, 12, 0, 0, 0, 0, 0, 0, 0, 0]);
    fuzz_one(&[0, 15, 5, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    fuzz_one(&[0xff; 300]);
}

fn gen_opt() -> impl Strategy<Value = (u16, Vec<u8>)> {
    (
        prop_oneof![1u16..=30, any::<u16>()],
        prop::collection::vec(any::<u8>(), 0..40),
    )
}

proptest! {
    /// No input makes the parser panic, and what parses survives a rewrite.
    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzz_one(&data);
    }

    /// Arbitrary bytes behind a valid header, so the option walk is exercised.
    #[test]
    fn arbitrary_payload(t in 1u8..=12, extra in 0usize..8, payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let len = 12 + extra + payload.len();
        let mut b = vec![0u8; len];
        b[..2].copy_from_slice(&(len as u16).to_be_bytes());
        b[2] = t;
        b[3] = (12 + extra) as u8;
        b[12 + extra..].copy_from_slice(&payload);
        fuzz_one(&b);
    }

    /// Whatever we write parses back to the same header and options, raw and typed.
    #[test]
    fn write_then_parse(
        t in 1u8..=12,
        time in any::<u32>(),
        xid in any::<u32>(),
        additional in prop::collection::vec(any::<u8>(), 0..20),
        list in prop::collection::vec(gen_opt(), 0..20),
    ) {
        let msg_type = MessageType::try_from(t).unwrap();
        let mut buf = vec![0u8; 2048];
        let mut w = MessageWriter::with_additional_header(&mut buf, &Header { msg_type, time, xid }, &additional).unwrap();
        for (code, value) in &list {
            w.option(*code, value).unwrap();
        }
        let n = w.finish();
        prop_assert_eq!(frame_len(&buf), Some(n));
        let p = Packet::new_checked(&buf[..n]).unwrap();
        prop_assert_eq!(p.message_type(), Ok(msg_type));
        prop_assert_eq!((p.time(), p.xid()), (time, xid));
        prop_assert_eq!(p.additional_header(), &additional[..]);
        let got: Vec<(u16, Vec<u8>)> = p.option_iter().map(|o| { let o = o.unwrap(); (o.code, o.value.to_vec()) }).collect();
        prop_assert_eq!(&got, &list);
        for o in p.option_iter().map(Result::unwrap) {
            if let Ok(typed) = Opt::parse(o) {
                let mut b2 = [0u8; 128];
                let mut w2 = MessageWriter::new(&mut b2, &Header { msg_type, time, xid }).unwrap();
                w2.opt(&typed).unwrap();
                let n2 = w2.finish();
                let mut expected = o.code.to_be_bytes().to_vec();
                expected.extend_from_slice(&(o.value.len() as u16).to_be_bytes());
                expected.extend_from_slice(o.value);
                prop_assert_eq!(&b2[12..n2], &expected[..]);
            }
        }
        fuzz_one(&buf[..n]);
    }
}
