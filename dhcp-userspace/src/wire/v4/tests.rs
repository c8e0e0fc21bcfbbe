//! Tests of the DHCP (IPv4) codec: unit tests per option and per malformation, differential
//! tests against `dhcproto`, round trips through [`ReplyWriter`], and no-panic properties.

use std::net::Ipv4Addr;

use dhcproto::v4::relay::{RelayAgentInformation, RelayInfo};
use dhcproto::v4::{self as dp, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use proptest::prelude::*;

use super::*;
use crate::lease::{ClientKey, LeaseError};

const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

/// A BOOTREQUEST header from `MAC` with xid 0x01020304 and the cookie, no options.
fn header() -> Vec<u8> {
    let mut b = vec![0u8; field::MIN_LEN];
    b[field::OP] = BOOTREQUEST;
    b[field::HTYPE] = 1;
    b[field::HLEN] = 6;
    b[field::XID].copy_from_slice(&[1, 2, 3, 4]);
    b[field::CHADDR][..6].copy_from_slice(&MAC);
    b[field::COOKIE].copy_from_slice(&MAGIC_COOKIE);
    b
}

/// A message with `opts` as its options field (caller supplies END if wanted).
fn with_opts(opts: &[u8]) -> Vec<u8> {
    let mut b = header();
    b.extend_from_slice(opts);
    b
}

fn parse(b: &[u8]) -> Result<Request<'_>, Error> {
    // Leaked so the request can borrow it for the test's duration; tests only.
    let scratch = Box::leak(Box::new(Scratch::new()));
    Request::parse(b, scratch)
}

fn collect(b: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, Error> {
    OptionIter::new(b)
        .map(|r| r.map(|(c, v)| (c, v.to_vec())))
        .collect()
}

#[test]
fn header_accessors() {
    let mut b = with_opts(&[opt::END]);
    b[field::HOPS] = 3;
    b[field::SECS].copy_from_slice(&[0x01, 0x02]);
    b[field::FLAGS].copy_from_slice(&[0x80, 0x00]);
    b[field::CIADDR].copy_from_slice(&[10, 0, 0, 1]);
    b[field::YIADDR].copy_from_slice(&[10, 0, 0, 2]);
    b[field::SIADDR].copy_from_slice(&[10, 0, 0, 3]);
    b[field::GIADDR].copy_from_slice(&[10, 0, 0, 4]);
    b[field::SNAME][0] = b's';
    b[field::FILE][0] = b'f';
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!((p.op(), p.htype(), p.hlen(), p.hops()), (1, 1, 6, 3));
    assert_eq!(p.xid(), 0x0102_0304);
    assert_eq!(p.secs(), 0x0102);
    assert_eq!(p.flags(), 0x8000);
    assert!(p.broadcast());
    assert_eq!(p.ciaddr(), Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(p.yiaddr(), Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(p.siaddr(), Ipv4Addr::new(10, 0, 0, 3));
    assert_eq!(p.giaddr(), Ipv4Addr::new(10, 0, 0, 4));
    assert_eq!(p.chaddr().len(), 16);
    assert_eq!(p.client_hw(), &MAC);
    assert_eq!((p.sname()[0], p.sname().len()), (b's', 64));
    assert_eq!((p.file()[0], p.file().len()), (b'f', 128));
    assert_eq!(p.options(), &[opt::END]);

    let r = parse(&b).unwrap();
    assert_eq!(
        (r.op, r.htype, r.hlen, r.hops, r.xid, r.secs),
        (1, 1, 6, 3, 0x0102_0304, 0x0102)
    );
    assert!(r.broadcast);
    assert_eq!(
        (r.ciaddr, r.yiaddr, r.giaddr),
        (p.ciaddr(), p.yiaddr(), p.giaddr())
    );
    assert_eq!(r.client_hw(), &MAC);
    assert_eq!(r.message_type, None);
    assert!(r.expect_op(BOOTREQUEST).is_ok());
    assert_eq!(r.expect_op(BOOTREPLY), Err(Error::BadOp(1)));
}

#[test]
fn setters_write_what_accessors_read() {
    let mut b = [0xffu8; 300];
    let mut p = Packet::new_unchecked(&mut b[..]);
    p.set_op(2);
    p.set_htype(6);
    p.set_hlen(16);
    p.set_hops(9);
    p.set_xid(0xdead_beef);
    p.set_secs(77);
    p.set_flags(FLAG_BROADCAST);
    p.set_ciaddr(Ipv4Addr::new(1, 2, 3, 4));
    p.set_yiaddr(Ipv4Addr::new(5, 6, 7, 8));
    p.set_siaddr(Ipv4Addr::new(9, 10, 11, 12));
    p.set_giaddr(Ipv4Addr::new(13, 14, 15, 16));
    p.set_chaddr(&[7; 16]);
    p.clear_sname_file();
    p.set_cookie();
    p.options_mut()[0] = opt::END;
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!((p.op(), p.htype(), p.hlen(), p.hops()), (2, 6, 16, 9));
    assert_eq!((p.xid(), p.secs(), p.flags()), (0xdead_beef, 77, 0x8000));
    assert_eq!(p.ciaddr(), Ipv4Addr::new(1, 2, 3, 4));
    assert_eq!(p.yiaddr(), Ipv4Addr::new(5, 6, 7, 8));
    assert_eq!(p.siaddr(), Ipv4Addr::new(9, 10, 11, 12));
    assert_eq!(p.giaddr(), Ipv4Addr::new(13, 14, 15, 16));
    assert_eq!(p.client_hw(), &[7; 16]);
    assert!(p.sname().iter().chain(p.file()).all(|&x| x == 0));
}

#[test]
fn every_extracted_option() {
    #[rustfmt::skip]
    let b = with_opts(&[
        opt::MESSAGE_TYPE, 1, 3,
        opt::CLIENT_ID, 7, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
        opt::REQUESTED_IP, 4, 192, 0, 2, 7,
        opt::SERVER_ID, 4, 192, 0, 2, 1,
        opt::LEASE_TIME, 4, 0, 0, 0x0e, 0x10,
        opt::PRL, 4, 1, 3, 6, 15,
        opt::MAX_SIZE, 2, 0x05, 0xdc,
        opt::HOSTNAME, 4, b'h', b'o', b's', b't',
        opt::VENDOR_CLASS, 3, b'v', b'c', b'i',
        opt::RAPID_COMMIT, 0,
        opt::SUBNET_SELECTION, 4, 10, 1, 0, 0,
        opt::PAD, opt::PAD,
        opt::RELAY_AGENT_INFO, 12, 1, 2, 0xab, 0xcd, opt::LINK_SELECTION, 4, 10, 2, 0, 0, 2, 0,
        opt::END,
    ]);
    let r = parse(&b).unwrap();
    assert_eq!(r.message_type, Some(MessageType::Request));
    assert_eq!(
        r.client_id,
        Some(&[1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55][..])
    );
    assert_eq!(r.requested_ip, Some(Ipv4Addr::new(192, 0, 2, 7)));
    assert_eq!(r.server_id, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(r.lease_time, Some(3600));
    assert_eq!(r.parameter_request_list, Some(&[1, 3, 6, 15][..]));
    assert_eq!(r.max_message_size, Some(1500));
    assert_eq!(r.hostname, Some(&b"host"[..]));
    assert_eq!(r.vendor_class, Some(&b"vci"[..]));
    assert!(r.rapid_commit);
    assert_eq!(r.subnet_selection, Some(Ipv4Addr::new(10, 1, 0, 0)));
    assert_eq!(
        r.relay_agent_info,
        Some(&[1, 2, 0xab, 0xcd, 5, 4, 10, 2, 0, 0, 2, 0][..])
    );
    assert_eq!(r.link_selection, Some(Ipv4Addr::new(10, 2, 0, 0)));
    let key = r.client_key().unwrap();
    assert_eq!(
        key,
        ClientKey::from_client_id(&[1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55]).unwrap()
    );
    assert_eq!(client_key_fast(&b), Ok(key));
}

#[test]
fn absent_options_and_hw_key() {
    let b = with_opts(&[opt::MESSAGE_TYPE, 1, 1, opt::END]);
    let r = parse(&b).unwrap();
    assert_eq!(r.message_type, Some(MessageType::Discover));
    assert_eq!(
        (
            r.client_id,
            r.requested_ip,
            r.server_id,
            r.lease_time,
            r.max_message_size
        ),
        (None, None, None, None, None)
    );
    assert_eq!(
        (
            r.hostname,
            r.vendor_class,
            r.relay_agent_info,
            r.parameter_request_list
        ),
        (None, None, None, None)
    );
    assert_eq!(
        (r.link_selection, r.subnet_selection, r.rapid_commit),
        (None, None, false)
    );
    let key = r.client_key().unwrap();
    assert_eq!(key, ClientKey::from_hw(1, &MAC).unwrap());
    assert_eq!(client_key_fast(&b), Ok(key));
}

#[test]
fn message_types_round_trip() {
    for v in 1..=8u8 {
        assert_eq!(u8::from(MessageType::try_from(v).unwrap()), v);
    }
    for v in [0u8, 9, 13, 255] {
        assert_eq!(MessageType::try_from(v), Err(Error::UnknownMessageType(v)));
    }
}

/// Overload value 1: `file` holds options, read after the options field.
#[test]
fn overload_file() {
    let mut b = with_opts(&[opt::OVERLOAD, 1, 1, opt::MESSAGE_TYPE, 1, 1, opt::END]);
    b[field::FILE][..6].copy_from_slice(&[opt::SERVER_ID, 4, 10, 0, 0, 1]);
    b[field::FILE][6] = opt::END;
    b[field::SNAME][..6].copy_from_slice(&[opt::REQUESTED_IP, 4, 10, 0, 0, 9]);
    let r = parse(&b).unwrap();
    assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(r.requested_ip, None, "sname is not overloaded");
    let codes: Vec<u8> = collect(&b).unwrap().into_iter().map(|(c, _)| c).collect();
    assert_eq!(codes, [opt::OVERLOAD, opt::MESSAGE_TYPE, opt::SERVER_ID]);
}

/// Overload value 2: `sname` holds options.
#[test]
fn overload_sname() {
    let mut b = with_opts(&[opt::OVERLOAD, 1, 2, opt::END]);
    b[field::FILE][..6].copy_from_slice(&[opt::SERVER_ID, 4, 10, 0, 0, 1]);
    b[field::SNAME][..7].copy_from_slice(&[opt::REQUESTED_IP, 4, 10, 0, 0, 9, opt::END]);
    let r = parse(&b).unwrap();
    assert_eq!(r.server_id, None, "file is not overloaded");
    assert_eq!(r.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 9)));
}

/// Overload value 3: both, `file` before `sname` (RFC 2131 §4.1), and an option split
/// across all three areas concatenates in that order (RFC 3396 §7).
#[test]
fn overload_both_order_and_split_across_areas() {
    let mut b = with_opts(&[opt::CLIENT_ID, 2, 1, 2, opt::OVERLOAD, 1, 3, opt::END]);
    b[field::FILE][..4].copy_from_slice(&[opt::CLIENT_ID, 2, 3, 4]);
    // No END in file: the area ends with its bytes (zeros are PAD).
    b[field::SNAME][..5].copy_from_slice(&[opt::CLIENT_ID, 2, 5, 6, opt::END]);
    let r = parse(&b).unwrap();
    assert_eq!(r.client_id, Some(&[1, 2, 3, 4, 5, 6][..]));
    let key = ClientKey::from_client_id(&[1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(r.client_key(), Ok(key));
    assert_eq!(
        client_key_fast(&b),
        Ok(key),
        "fast path falls back on overload"
    );
}

/// Option 52 inside `file` or `sname` has no effect (RFC 2131 §4.1: only the options field
/// may carry it).
#[test]
fn overload_inside_file_ignored() {
    let mut b = with_opts(&[opt::OVERLOAD, 1, 1, opt::END]);
    b[field::FILE][..9].copy_from_slice(&[opt::OVERLOAD, 1, 2, opt::SERVER_ID, 4, 10, 0, 0, 1]);
    b[field::SNAME][..6].copy_from_slice(&[opt::REQUESTED_IP, 4, 10, 0, 0, 9]);
    let r = parse(&b).unwrap();
    assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(r.requested_ip, None);
    let packet = Packet::new_checked(&b[..]).unwrap();
    let mut it = packet.option_iter();
    assert!(it.by_ref().all(|x| x.is_ok()));
    assert_eq!(it.overload(), 1);
}

#[test]
fn bad_overload_values() {
    for v in [0u8, 4, 255] {
        assert_eq!(
            parse(&with_opts(&[opt::OVERLOAD, 1, v, opt::END])),
            Err(Error::BadOverload)
        );
    }
    assert_eq!(
        parse(&with_opts(&[opt::OVERLOAD, 2, 1, 1, opt::END])),
        Err(Error::BadOverload)
    );
    let twice = with_opts(&[opt::OVERLOAD, 1, 1, opt::OVERLOAD, 1, 1, opt::END]);
    assert_eq!(parse(&twice), Err(Error::BadOverload));
    assert_eq!(client_key_fast(&twice), Err(Error::BadOverload));
}

/// RFC 3396 §7: instances need not be adjacent; all are concatenated in order.
#[test]
fn split_client_id() {
    #[rustfmt::skip]
    let b = with_opts(&[
        opt::CLIENT_ID, 3, 0xff, 1, 2,
        opt::MESSAGE_TYPE, 1, 1,
        opt::CLIENT_ID, 2, 3, 4,
        opt::CLIENT_ID, 0,
        opt::CLIENT_ID, 1, 5,
        opt::END,
    ]);
    let r = parse(&b).unwrap();
    assert_eq!(r.client_id, Some(&[0xff, 1, 2, 3, 4, 5][..]));
    assert_eq!(r.message_type, Some(MessageType::Discover));
    assert_eq!(
        client_key_fast(&b),
        r.client_key().map_err(|_| Error::BadOp(0))
    );
}

/// A split option 82 where the split falls inside the link selection sub-option.
#[test]
fn split_relay_agent_info() {
    #[rustfmt::skip]
    let b = with_opts(&[
        opt::RELAY_AGENT_INFO, 5, 1, 1, 0x42, opt::LINK_SELECTION, 4,
        opt::HOSTNAME, 1, b'x',
        opt::RELAY_AGENT_INFO, 4, 10, 9, 8, 0,
        opt::END,
    ]);
    let r = parse(&b).unwrap();
    assert_eq!(
        r.relay_agent_info,
        Some(&[1, 1, 0x42, 5, 4, 10, 9, 8, 0][..])
    );
    assert_eq!(r.link_selection, Some(Ipv4Addr::new(10, 9, 8, 0)));
    assert_eq!(r.hostname, Some(&b"x"[..]));
}

#[test]
fn long_split_client_id_too_long_for_a_key() {
    let mut opts = Vec::new();
    for chunk in [255usize, 45] {
        opts.extend([opt::CLIENT_ID, chunk as u8]);
        opts.extend(std::iter::repeat_n(7u8, chunk));
    }
    opts.push(opt::END);
    let b = with_opts(&opts);
    let r = parse(&b).unwrap();
    assert_eq!(r.client_id.map(<[u8]>::len), Some(300));
    assert_eq!(r.client_key(), Err(LeaseError::KeyTooLong(300)));
    assert_eq!(
        client_key_fast(&b),
        Err(Error::OptionTooLong {
            code: opt::CLIENT_ID
        })
    );
}

#[test]
fn scratch_overflow_is_an_error() {
    let mut opts = Vec::new();
    for _ in 0..7 {
        opts.extend([opt::VENDOR_CLASS, 255]);
        opts.extend([b'v'; 255]);
    }
    opts.push(opt::END);
    assert_eq!(
        parse(&with_opts(&opts)),
        Err(Error::OptionTooLong {
            code: opt::VENDOR_CLASS
        })
    );
}

#[test]
fn truncated_and_bad_cookie() {
    for len in [0usize, 1, 100, 235, 236, 239] {
        let b = header();
        assert_eq!(parse(&b[..len]), Err(Error::Truncated { len }));
        assert_eq!(client_key_fast(&b[..len]), Err(Error::Truncated { len }));
        assert_eq!(collect(&b[..len]), Err(Error::Truncated { len }));
    }
    let mut b = with_opts(&[opt::END]);
    b[239] = 0x62;
    assert_eq!(parse(&b), Err(Error::BadCookie));
    assert_eq!(client_key_fast(&b), Err(Error::BadCookie));
    assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadCookie);
}

#[test]
fn cookie_only_is_a_bootp_message() {
    let b = header();
    let r = parse(&b).unwrap();
    assert_eq!(r.message_type, None);
    assert_eq!(
        client_key_fast(&b),
        Ok(ClientKey::from_hw(1, &MAC).unwrap())
    );
}

#[test]
fn lying_lengths() {
    // Length runs past the end of the message.
    let b = with_opts(&[opt::MESSAGE_TYPE, 1, 1, opt::HOSTNAME, 10, b'a', b'b']);
    assert_eq!(
        parse(&b),
        Err(Error::BadOptionLength {
            code: opt::HOSTNAME
        })
    );
    assert_eq!(
        client_key_fast(&b),
        Err(Error::BadOptionLength {
            code: opt::HOSTNAME
        })
    );
    // A code with no length byte.
    let b = with_opts(&[opt::MESSAGE_TYPE, 1, 1, opt::CLIENT_ID]);
    assert_eq!(
        parse(&b),
        Err(Error::BadOptionLength {
            code: opt::CLIENT_ID
        })
    );
    // The iterator yields the good options, then the error, then stops.
    let mut it = OptionIter::new(&b);
    assert_eq!(it.next(), Some(Ok((opt::MESSAGE_TYPE, &[1u8][..]))));
    assert_eq!(
        it.next(),
        Some(Err(Error::BadOptionLength {
            code: opt::CLIENT_ID
        }))
    );
    assert_eq!(it.next(), None);
}

#[test]
fn option_running_past_its_area() {
    // The last option of `file` claims bytes past the end of `file`.
    let mut b = with_opts(&[opt::OVERLOAD, 1, 3, opt::END]);
    let f = field::FILE.end - 3;
    b[f..f + 3].copy_from_slice(&[opt::HOSTNAME, 8, b'a']);
    assert_eq!(
        parse(&b),
        Err(Error::BadOptionLength {
            code: opt::HOSTNAME
        })
    );
    // The same bytes in `sname` with no overload are never read.
    let mut b = with_opts(&[opt::END]);
    b[f..f + 3].copy_from_slice(&[opt::HOSTNAME, 8, b'a']);
    assert!(parse(&b).is_ok());
}

#[test]
fn missing_end_is_tolerated() {
    let b = with_opts(&[opt::MESSAGE_TYPE, 1, 3, opt::REQUESTED_IP, 4, 10, 0, 0, 5]);
    let r = parse(&b).unwrap();
    assert_eq!(r.message_type, Some(MessageType::Request));
    assert_eq!(r.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 5)));
}

#[test]
fn options_after_end_are_ignored() {
    let opts = [
        opt::MESSAGE_TYPE,
        1,
        3,
        opt::END,
        opt::SERVER_ID,
        4,
        1,
        1,
        1,
        1,
    ];
    let b = with_opts(&[&opts[..], &[0xff, 0x77]].concat());
    let r = parse(&b).unwrap();
    assert_eq!(r.server_id, None);
}

#[test]
fn bad_values() {
    let bad = |code| Error::BadOptionValue { code };
    let rai = opt::RELAY_AGENT_INFO;
    let cases: &[(&[u8], Error)] = &[
        (&[opt::MESSAGE_TYPE, 2, 1, 1], bad(opt::MESSAGE_TYPE)),
        (&[opt::MESSAGE_TYPE, 0], bad(opt::MESSAGE_TYPE)),
        (&[opt::MESSAGE_TYPE, 1, 9], Error::UnknownMessageType(9)),
        (&[opt::REQUESTED_IP, 3, 1, 2, 3], bad(opt::REQUESTED_IP)),
        (&[opt::SERVER_ID, 5, 1, 2, 3, 4, 5], bad(opt::SERVER_ID)),
        (&[opt::LEASE_TIME, 2, 1, 2], bad(opt::LEASE_TIME)),
        (&[opt::MAX_SIZE, 1, 2], bad(opt::MAX_SIZE)),
        (&[opt::CLIENT_ID, 1, 1], bad(opt::CLIENT_ID)),
        (&[opt::RAPID_COMMIT, 1, 0], bad(opt::RAPID_COMMIT)),
        (&[opt::SUBNET_SELECTION, 0], bad(opt::SUBNET_SELECTION)),
        // Sub-option 5 of the wrong length; a sub-option cut short; a lying sub-length.
        (&[rai, 3, 1, 5, 0], bad(rai)),
        (&[rai, 1, 1], bad(rai)),
        (&[rai, 5, 5, 3, 1, 2, 3], bad(rai)),
    ];
    for (opts, err) in cases {
        let mut v = opts.to_vec();
        v.push(opt::END);
        assert_eq!(parse(&with_opts(&v)), Err(*err), "{opts:?}");
    }
    // The fast path judges only option 61.
    assert_eq!(
        client_key_fast(&with_opts(&[opt::CLIENT_ID, 1, 1, opt::END])),
        Err(Error::BadOptionValue {
            code: opt::CLIENT_ID
        })
    );
}

#[test]
fn bad_hlen() {
    let mut b = with_opts(&[opt::END]);
    b[field::HLEN] = 17;
    assert_eq!(parse(&b), Err(Error::BadHlen(17)));
    assert_eq!(client_key_fast(&b), Err(Error::BadHlen(17)));
    b[field::HLEN] = 16;
    assert_eq!(parse(&b).unwrap().client_hw().len(), 16);
    b[field::HLEN] = 0;
    let r = parse(&b).unwrap();
    assert_eq!(r.client_key(), Ok(ClientKey::from_hw(1, &[]).unwrap()));
    assert_eq!(
        client_key_fast(&b),
        r.client_key().map_err(|_| Error::BadOp(0))
    );
}

#[test]
fn reasons_are_distinct_snake_case() {
    let all = [
        Error::Truncated { len: 0 },
        Error::BadCookie,
        Error::BadOp(0),
        Error::BadHlen(0),
        Error::BadOptionLength { code: 0 },
        Error::BadOptionValue { code: 0 },
        Error::BadOverload,
        Error::UnknownMessageType(0),
        Error::OptionTooLong { code: 0 },
        Error::ReservedCode(0),
        Error::BufferTooSmall,
    ];
    let mut names: Vec<&str> = all.iter().map(Error::reason).collect();
    assert!(
        names
            .iter()
            .all(|n| n.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'))
    );
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len());
}

fn reply_header() -> ReplyHeader {
    ReplyHeader {
        op: BOOTREPLY,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid: 42,
        secs: 0,
        flags: FLAG_BROADCAST,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::new(10, 0, 0, 5),
        siaddr: Ipv4Addr::new(10, 0, 0, 1),
        giaddr: Ipv4Addr::new(10, 0, 0, 254),
        chaddr: [
            2, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    }
}

#[test]
fn writer_header_padding_and_end() {
    let mut buf = [0xeeu8; 600];
    let w = ReplyWriter::new(&mut buf, &reply_header()).unwrap();
    assert!(w.is_empty());
    assert_eq!(w.remaining(), 600 - 241);
    let n = w.finish();
    assert_eq!(n, MIN_MESSAGE_LEN);
    assert_eq!(buf[240], opt::END);
    assert!(buf[241..300].iter().all(|&x| x == 0));
    assert!(
        buf[field::SNAME.start..field::FILE.end]
            .iter()
            .all(|&x| x == 0)
    );
    let p = Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(
        (p.op(), p.xid(), p.flags()),
        (BOOTREPLY, 42, FLAG_BROADCAST)
    );
    assert_eq!(
        (p.yiaddr(), p.siaddr(), p.giaddr()),
        (
            Ipv4Addr::new(10, 0, 0, 5),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 254)
        )
    );
    assert_eq!(p.client_hw(), &MAC);
}

#[test]
fn writer_rejects_small_buffers_and_bad_hlen() {
    let mut small = [0u8; MIN_MESSAGE_LEN - 1];
    assert_eq!(
        ReplyWriter::new(&mut small, &reply_header()).unwrap_err(),
        Error::BufferTooSmall
    );
    let mut buf = [0u8; 400];
    let h = ReplyHeader {
        hlen: 17,
        ..reply_header()
    };
    assert_eq!(
        ReplyWriter::new(&mut buf, &h).unwrap_err(),
        Error::BadHlen(17)
    );
}

#[test]
fn writer_splits_long_values() {
    let mut buf = [0u8; 1500];
    let mut w = ReplyWriter::new(&mut buf, &reply_header()).unwrap();
    let long: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    w.option(opt::DOMAIN_NAME, &long).unwrap();
    let ips: Vec<Ipv4Addr> = (0..70u8).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect();
    w.option_ips(opt::DNS, &ips).unwrap();
    w.option(opt::RAPID_COMMIT, &[]).unwrap();
    w.option_ips(opt::ROUTER, &[]).unwrap();
    let n = w.finish();
    let opts = collect(&buf[..n]).unwrap();
    let shape: Vec<(u8, usize)> = opts.iter().map(|(c, v)| (*c, v.len())).collect();
    assert_eq!(
        shape,
        [
            (opt::DOMAIN_NAME, 255),
            (opt::DOMAIN_NAME, 45),
            (opt::DNS, 252),
            (opt::DNS, 28),
            (opt::RAPID_COMMIT, 0),
            (opt::ROUTER, 0)
        ]
    );
    assert_eq!([&opts[0].1[..], &opts[1].1[..]].concat(), long);
    let r = parse(&buf[..n]).unwrap();
    assert!(r.rapid_commit);
}

#[test]
fn writer_reserved_codes_and_full_buffer_write_nothing() {
    let mut buf = [0u8; 300];
    let mut w = ReplyWriter::new(&mut buf, &reply_header()).unwrap();
    assert_eq!(w.option(opt::PAD, &[1]), Err(Error::ReservedCode(0)));
    assert_eq!(w.option_ips(opt::END, &[]), Err(Error::ReservedCode(255)));
    // 300 - 240 - 1 (END) = 59 bytes of room.
    assert_eq!(w.remaining(), 59);
    assert_eq!(
        w.option(opt::HOSTNAME, &[b'a'; 58]),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(w.len(), field::MIN_LEN);
    w.option(opt::HOSTNAME, &[b'a'; 57]).unwrap();
    assert_eq!(w.remaining(), 0);
    assert_eq!(w.option(opt::RAPID_COMMIT, &[]), Err(Error::BufferTooSmall));
    assert_eq!(
        w.option_ips(opt::ROUTER, &[Ipv4Addr::LOCALHOST]),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(w.finish(), 300);
    assert_eq!(buf[299], opt::END);
    assert_eq!(parse(&buf).unwrap().hostname.map(<[u8]>::len), Some(57));
}

#[test]
fn writer_honours_max_message_size() {
    for (mms, limit) in [
        (0u16, 548usize),
        (575, 548),
        (576, 548),
        (1000, 972),
        (1500, 1472),
        (9000, 1500),
    ] {
        let mut buf = [0u8; 1500];
        let mut w = ReplyWriter::new(&mut buf, &reply_header())
            .unwrap()
            .with_max_size(mms);
        assert_eq!(w.remaining(), limit - 241, "mms {mms}");
        while w.option(opt::VENDOR_CLASS, &[1; 100]).is_ok() {}
        // A smaller option may still fit after a larger one was refused.
        while w.option(opt::HOSTNAME, &[]).is_ok() {}
        assert!(w.remaining() < 2);
        let n = w.finish();
        assert!(n <= limit && n >= limit - 1, "mms {mms}: {n}");
    }
}

#[test]
fn reply_header_for_request_follows_table_3() {
    let mut b = with_opts(&[opt::MESSAGE_TYPE, 1, 1, opt::END]);
    b[field::HOPS] = 2;
    b[field::SECS].copy_from_slice(&[0, 5]);
    b[field::FLAGS].copy_from_slice(&[0x80, 0]);
    b[field::GIADDR].copy_from_slice(&[10, 9, 9, 1]);
    let r = parse(&b).unwrap();
    let h = ReplyHeader::for_request(&r);
    assert_eq!(
        (h.op, h.htype, h.hlen, h.hops, h.xid, h.secs, h.flags),
        (BOOTREPLY, 1, 6, 0, 0x0102_0304, 0, 0x8000)
    );
    assert_eq!((h.giaddr, h.chaddr), (Ipv4Addr::new(10, 9, 9, 1), r.chaddr));
    assert_eq!(
        (h.ciaddr, h.yiaddr, h.siaddr),
        (
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED
        )
    );
}

#[test]
fn fuzz_body_on_seed_messages() {
    fuzz_one(&[]);
    fuzz_one(&header());
    fuzz_one(&with_opts(&[
        opt::MESSAGE_TYPE,
        1,
        1,
        opt::CLIENT_ID,
        3,
        1,
        2,
        3,
        opt::MAX_SIZE,
        2,
        0,
        0,
        opt::END,
    ]));
    let mut b = with_opts(&[opt::CLIENT_ID, 2, 1, 2, opt::OVERLOAD, 1, 3, opt::END]);
    b[field::FILE][..4].copy_from_slice(&[opt::CLIENT_ID, 2, 3, 4]);
    fuzz_one(&b);
}

// ---- generated messages: dhcproto differential, round trips, no panics ----

/// Relay agent information as generated: circuit id, remote id, link selection.
type GenRelay = (Vec<u8>, Option<Vec<u8>>, Option<Ipv4Addr>);

/// A request as the property tests generate it.
#[derive(Debug, Clone)]
struct GenRequest {
    op: u8,
    htype: u8,
    hops: u8,
    xid: u32,
    secs: u16,
    flags: u16,
    addrs: [Ipv4Addr; 4],
    chaddr: Vec<u8>,
    message_type: Option<u8>,
    client_id: Option<Vec<u8>>,
    requested_ip: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    lease_time: Option<u32>,
    prl: Option<Vec<u8>>,
    max_size: Option<u16>,
    hostname: Option<String>,
    vendor_class: Option<Vec<u8>>,
    rapid_commit: bool,
    relay: Option<GenRelay>,
    subnet_selection: Option<Ipv4Addr>,
}

fn ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn gen_request() -> impl Strategy<Value = GenRequest> {
    let header = (
        1u8..=2,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
    );
    let addrs = [ip(), ip(), ip(), ip()];
    let opts1 = (
        prop::option::of(1u8..=8),
        prop::option::of(prop::collection::vec(any::<u8>(), 2..400)),
        prop::option::of(ip()),
        prop::option::of(ip()),
        prop::option::of(any::<u32>()),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..300)),
    );
    let opts2 = (
        prop::option::of(any::<u16>()),
        prop::option::of("[a-z0-9.-]{1,300}"),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..100)),
        any::<bool>(),
        prop::option::of((
            prop::collection::vec(any::<u8>(), 1..40),
            prop::option::of(prop::collection::vec(any::<u8>(), 1..40)),
            prop::option::of(ip()),
        )),
        prop::option::of(ip()),
    );
    (
        header,
        addrs,
        prop::collection::vec(any::<u8>(), 0..=16),
        opts1,
        opts2,
    )
        .prop_map(
            |((op, htype, hops, xid, secs, flags), addrs, chaddr, o1, o2)| GenRequest {
                op,
                htype,
                hops,
                xid,
                secs,
                flags,
                addrs,
                chaddr,
                message_type: o1.0,
                client_id: o1.1,
                requested_ip: o1.2,
                server_id: o1.3,
                lease_time: o1.4,
                prl: o1.5,
                max_size: o2.0,
                hostname: o2.1,
                vendor_class: o2.2,
                rapid_commit: o2.3,
                relay: o2.4,
                subnet_selection: o2.5,
            },
        )
}

fn relay_info(relay: &GenRelay) -> RelayAgentInformation {
    let mut info = RelayAgentInformation::default();
    info.insert(RelayInfo::AgentCircuitId(relay.0.clone()));
    if let Some(remote) = &relay.1 {
        info.insert(RelayInfo::AgentRemoteId(remote.clone()));
    }
    if let Some(link) = relay.2 {
        info.insert(RelayInfo::LinkSelection(link));
    }
    info
}

/// Encode `g` with dhcproto.
fn dhcproto_encode(g: &GenRequest) -> Vec<u8> {
    let [ci, yi, si, gi] = g.addrs;
    let mut m = dp::Message::new_with_id(g.xid, ci, yi, si, gi, &g.chaddr);
    m.set_opcode(g.op.into())
        .set_htype(g.htype.into())
        .set_hops(g.hops)
        .set_secs(g.secs);
    m.set_flags(dp::Flags::new(g.flags));
    let o = m.opts_mut();
    if let Some(t) = g.message_type {
        o.insert(DhcpOption::MessageType(t.into()));
    }
    if let Some(id) = &g.client_id {
        o.insert(DhcpOption::ClientIdentifier(id.clone()));
    }
    if let Some(a) = g.requested_ip {
        o.insert(DhcpOption::RequestedIpAddress(a));
    }
    if let Some(a) = g.server_id {
        o.insert(DhcpOption::ServerIdentifier(a));
    }
    if let Some(t) = g.lease_time {
        o.insert(DhcpOption::AddressLeaseTime(t));
    }
    if let Some(prl) = &g.prl {
        o.insert(DhcpOption::ParameterRequestList(
            prl.iter().map(|&c| OptionCode::from(c)).collect(),
        ));
    }
    if let Some(s) = g.max_size {
        o.insert(DhcpOption::MaxMessageSize(s));
    }
    if let Some(h) = &g.hostname {
        o.insert(DhcpOption::Hostname(h.clone()));
    }
    if let Some(v) = &g.vendor_class {
        o.insert(DhcpOption::ClassIdentifier(v.clone()));
    }
    if g.rapid_commit {
        o.insert(DhcpOption::RapidCommit);
    }
    if let Some(r) = &g.relay {
        o.insert(DhcpOption::RelayAgentInformation(relay_info(r)));
    }
    if let Some(a) = g.subnet_selection {
        o.insert(DhcpOption::SubnetSelection(a));
    }
    let mut out = Vec::new();
    m.encode(&mut Encoder::new(&mut out)).unwrap();
    out
}

/// Check our parse of a dhcproto-encoded `g` field by field.
fn check_request(g: &GenRequest, wire: &[u8]) -> Result<(), TestCaseError> {
    let mut scratch = Scratch::new();
    let r = Request::parse(wire, &mut scratch).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let [ci, yi, _, gi] = g.addrs;
    prop_assert_eq!(
        (r.op, r.htype, r.hops, r.xid, r.secs, r.flags),
        (g.op, g.htype, g.hops, g.xid, g.secs, g.flags)
    );
    prop_assert_eq!(r.broadcast, g.flags & 0x8000 != 0);
    prop_assert_eq!((r.ciaddr, r.yiaddr, r.giaddr), (ci, yi, gi));
    prop_assert_eq!(usize::from(r.hlen), g.chaddr.len());
    prop_assert_eq!(r.client_hw(), &g.chaddr[..]);
    prop_assert!(r.chaddr[g.chaddr.len()..].iter().all(|&x| x == 0));
    prop_assert_eq!(r.message_type.map(u8::from), g.message_type);
    prop_assert_eq!(r.client_id, g.client_id.as_deref());
    prop_assert_eq!(r.requested_ip, g.requested_ip);
    prop_assert_eq!(r.server_id, g.server_id);
    prop_assert_eq!(r.lease_time, g.lease_time);
    prop_assert_eq!(r.parameter_request_list, g.prl.as_deref());
    prop_assert_eq!(r.max_message_size, g.max_size);
    prop_assert_eq!(r.hostname, g.hostname.as_deref().map(str::as_bytes));
    prop_assert_eq!(r.vendor_class, g.vendor_class.as_deref());
    prop_assert_eq!(r.rapid_commit, g.rapid_commit);
    prop_assert_eq!(r.subnet_selection, g.subnet_selection);
    match (&g.relay, r.relay_agent_info) {
        (None, None) => {}
        (Some(rel), Some(raw)) => {
            let decoded = RelayAgentInformation::decode(&mut Decoder::new(raw)).unwrap();
            prop_assert_eq!(decoded, relay_info(rel));
            prop_assert_eq!(r.link_selection, rel.2);
        }
        (want, got) => prop_assert!(false, "relay info {want:?} vs {got:?}"),
    }
    let key = r.client_key();
    match &g.client_id {
        Some(id) if id.len() > 255 => prop_assert_eq!(&key, &Err(LeaseError::KeyTooLong(id.len()))),
        Some(id) => prop_assert_eq!(&key, &ClientKey::from_client_id(id)),
        None => prop_assert_eq!(&key, &ClientKey::from_hw(g.htype, &g.chaddr)),
    }
    let too_long = Error::OptionTooLong {
        code: opt::CLIENT_ID,
    };
    prop_assert_eq!(client_key_fast(wire), key.map_err(|_| too_long));
    Ok(())
}

/// A reply as the property tests generate it.
#[derive(Debug, Clone)]
struct GenReply {
    header: ReplyHeader,
    max_size: Option<u16>,
    message_type: u8,
    server_id: Ipv4Addr,
    lease_time: u32,
    subnet_mask: Option<Ipv4Addr>,
    routers: Vec<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    domain: Option<String>,
    client_id: Option<Vec<u8>>,
    relay: Option<GenRelay>,
}

fn gen_reply() -> impl Strategy<Value = GenReply> {
    let header = (
        (
            any::<u8>(),
            0u8..=16,
            any::<u8>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
        ),
        [ip(), ip(), ip(), ip()],
        any::<[u8; 16]>(),
    )
        .prop_map(
            |((htype, hlen, hops, xid, secs, flags), [ciaddr, yiaddr, siaddr, giaddr], chaddr)| {
                ReplyHeader {
                    op: BOOTREPLY,
                    htype,
                    hlen,
                    hops,
                    xid,
                    secs,
                    flags,
                    ciaddr,
                    yiaddr,
                    siaddr,
                    giaddr,
                    chaddr,
                }
            },
        );
    (
        header,
        prop::option::of(any::<u16>()),
        (1u8..=8, ip(), any::<u32>(), prop::option::of(ip())),
        prop::collection::vec(ip(), 1..80),
        prop::collection::vec(ip(), 1..5),
        prop::option::of("[a-z0-9.-]{1,300}"),
        prop::option::of(prop::collection::vec(any::<u8>(), 2..255)),
        prop::option::of((
            prop::collection::vec(any::<u8>(), 1..40),
            prop::option::of(prop::collection::vec(any::<u8>(), 1..40)),
            prop::option::of(ip()),
        )),
    )
        .prop_map(
            |(
                header,
                max_size,
                (message_type, server_id, lease_time, subnet_mask),
                routers,
                dns,
                domain,
                client_id,
                relay,
            )| {
                GenReply {
                    header,
                    max_size,
                    message_type,
                    server_id,
                    lease_time,
                    subnet_mask,
                    routers,
                    dns,
                    domain,
                    client_id,
                    relay,
                }
            },
        )
}

/// Which options of a [`GenReply`] the writer accepted.
#[derive(Debug, Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one flag per optional option"
)]
struct Written {
    mask: bool,
    routers: bool,
    dns: bool,
    domain: bool,
    client_id: bool,
    relay: Option<Vec<u8>>,
}

fn write_reply(g: &GenReply, buf: &mut [u8]) -> (usize, Written) {
    let mut w = ReplyWriter::new(buf, &g.header).unwrap();
    if let Some(m) = g.max_size {
        w = w.with_max_size(m);
    }
    w.option_u8(opt::MESSAGE_TYPE, g.message_type).unwrap();
    w.option_ip(opt::SERVER_ID, g.server_id).unwrap();
    w.option_u32(opt::LEASE_TIME, g.lease_time).unwrap();
    let mut done = Written {
        mask: g
            .subnet_mask
            .is_some_and(|m| w.option_ip(opt::SUBNET_MASK, m).is_ok()),
        routers: w.option_ips(opt::ROUTER, &g.routers).is_ok(),
        dns: w.option_ips(opt::DNS, &g.dns).is_ok(),
        domain: g
            .domain
            .as_ref()
            .is_some_and(|d| w.option(opt::DOMAIN_NAME, d.as_bytes()).is_ok()),
        client_id: g
            .client_id
            .as_ref()
            .is_some_and(|id| w.option(opt::CLIENT_ID, id).is_ok()),
        relay: None,
    };
    if let Some(r) = &g.relay {
        let mut raw = Vec::new();
        relay_info(r).encode(&mut Encoder::new(&mut raw)).unwrap();
        if w.option(opt::RELAY_AGENT_INFO, &raw).is_ok() {
            done.relay = Some(raw);
        }
    }
    (w.finish(), done)
}

fn ips_of(opts: &dp::DhcpOptions, code: OptionCode) -> Option<Vec<Ipv4Addr>> {
    match opts.get(code)? {
        DhcpOption::Router(v) | DhcpOption::DomainNameServer(v) => Some(v.clone()),
        other => panic!("unexpected {other:?}"),
    }
}

proptest! {
    /// dhcproto encodes, we parse: every field agrees.
    #[test]
    fn dhcproto_to_ours(g in gen_request()) {
        let wire = dhcproto_encode(&g);
        check_request(&g, &wire)?;
        fuzz_one(&wire);
    }

    /// We write, dhcproto decodes: every field we wrote is what dhcproto reads.
    #[test]
    fn ours_to_dhcproto(g in gen_reply()) {
        let mut buf = [0u8; 1500];
        let (n, done) = write_reply(&g, &mut buf);
        prop_assert!(n >= MIN_MESSAGE_LEN);
        if let Some(m) = g.max_size {
            prop_assert!(n <= usize::from(m.max(576)) - 28);
        }
        let m = dp::Message::decode(&mut Decoder::new(&buf[..n])).unwrap();
        let h = &g.header;
        prop_assert_eq!(u8::from(m.opcode()), h.op);
        prop_assert_eq!(u8::from(m.htype()), h.htype);
        prop_assert_eq!((m.hlen(), m.hops(), m.xid(), m.secs()), (h.hlen, h.hops, h.xid, h.secs));
        prop_assert_eq!(u16::from(m.flags()), h.flags);
        prop_assert_eq!((m.ciaddr(), m.yiaddr(), m.siaddr(), m.giaddr()), (h.ciaddr, h.yiaddr, h.siaddr, h.giaddr));
        prop_assert_eq!(m.chaddr(), &h.chaddr[..usize::from(h.hlen)]);
        prop_assert_eq!((m.sname(), m.fname()), (None, None));
        let o = m.opts();
        prop_assert_eq!(o.get(OptionCode::MessageType), Some(&DhcpOption::MessageType(g.message_type.into())));
        prop_assert_eq!(o.get(OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(g.server_id)));
        prop_assert_eq!(o.get(OptionCode::AddressLeaseTime), Some(&DhcpOption::AddressLeaseTime(g.lease_time)));
        prop_assert_eq!(o.get(OptionCode::SubnetMask).cloned(), g.subnet_mask.filter(|_| done.mask).map(DhcpOption::SubnetMask));
        prop_assert_eq!(ips_of(o, OptionCode::Router), done.routers.then(|| g.routers.clone()));
        prop_assert_eq!(ips_of(o, OptionCode::DomainNameServer), done.dns.then(|| g.dns.clone()));
        prop_assert_eq!(o.get(OptionCode::DomainName).cloned(), g.domain.clone().filter(|_| done.domain).map(DhcpOption::DomainName));
        prop_assert_eq!(o.get(OptionCode::ClientIdentifier).cloned(), g.client_id.clone().filter(|_| done.client_id).map(DhcpOption::ClientIdentifier));
        prop_assert_eq!(
            o.get(OptionCode::RelayAgentInformation).cloned(),
            g.relay.as_ref().filter(|_| done.relay.is_some()).map(|r| DhcpOption::RelayAgentInformation(relay_info(r)))
        );
        let expected = 3 + usize::from(done.mask) + usize::from(done.routers) + usize::from(done.dns)
            + usize::from(done.domain) + usize::from(done.client_id) + usize::from(done.relay.is_some());
        prop_assert_eq!(o.len(), expected);
    }

    /// We write, we parse: the same message comes back.
    #[test]
    fn ours_round_trip(g in gen_reply()) {
        let mut buf = [0u8; 1500];
        let (n, done) = write_reply(&g, &mut buf);
        let mut scratch = Scratch::new();
        let r = Request::parse(&buf[..n], &mut scratch).unwrap();
        let h = &g.header;
        prop_assert_eq!((r.op, r.htype, r.hlen, r.hops, r.xid, r.secs, r.flags), (h.op, h.htype, h.hlen, h.hops, h.xid, h.secs, h.flags));
        prop_assert_eq!((r.ciaddr, r.yiaddr, r.giaddr, r.chaddr), (h.ciaddr, h.yiaddr, h.giaddr, h.chaddr));
        prop_assert_eq!(Packet::new_checked(&buf[..n]).unwrap().siaddr(), h.siaddr);
        prop_assert_eq!(r.message_type.map(u8::from), Some(g.message_type));
        prop_assert_eq!((r.server_id, r.lease_time), (Some(g.server_id), Some(g.lease_time)));
        prop_assert_eq!(r.client_id, g.client_id.as_deref().filter(|_| done.client_id));
        prop_assert_eq!(r.relay_agent_info, done.relay.as_deref());
        prop_assert_eq!(r.link_selection, g.relay.as_ref().and_then(|r| r.2).filter(|_| done.relay.is_some()));
        // Concatenate every instance per code with the iterator and compare to what we wrote.
        let mut routers = Vec::new();
        let mut domain = Vec::new();
        for item in OptionIter::new(&buf[..n]) {
            let (code, value) = item.unwrap();
            match code {
                opt::ROUTER => routers.extend_from_slice(value),
                opt::DOMAIN_NAME => domain.extend_from_slice(value),
                _ => {}
            }
        }
        let want: Vec<u8> = g.routers.iter().flat_map(Ipv4Addr::octets).collect();
        prop_assert_eq!(routers, if done.routers { want } else { Vec::new() });
        let want = g.domain.clone().filter(|_| done.domain).unwrap_or_default();
        prop_assert_eq!(domain, want.into_bytes());
        fuzz_one(&buf[..n]);
    }

    /// Arbitrary bytes never panic any parser (the fuzz body asserts the invariants).
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1600)) {
        fuzz_one(&data);
    }

    /// Arbitrary options behind a valid header never panic, and parse or fail cleanly.
    #[test]
    fn arbitrary_options_never_panic(
        opts in prop::collection::vec(any::<u8>(), 0..600),
        overload in prop::option::of(0u8..=4),
        file in any::<[u8; 32]>(),
        sname in any::<[u8; 16]>(),
    ) {
        let mut b = header();
        b[field::FILE][..32].copy_from_slice(&file);
        b[field::SNAME][..16].copy_from_slice(&sname);
        if let Some(v) = overload {
            b.extend([opt::OVERLOAD, 1, v]);
        }
        b.extend_from_slice(&opts);
        fuzz_one(&b);
    }

    /// Mutated valid messages never panic.
    #[test]
    fn mutated_messages_never_panic(
        g in gen_request(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = dhcproto_encode(&g);
        for (at, byte) in &edits {
            let i = at.index(wire.len());
            wire[i] = *byte;
        }
        fuzz_one(&wire);
        // Mutations confined to the options also never panic; and truncations.
        let cut = cut.index(wire.len() + 1);
        fuzz_one(&wire[..cut]);
    }
}
