//! Tests of the DHCPv6 codec: unit tests per view, option and malformation, relay nesting,
//! the writer's nesting and all-or-nothing writes, differential tests against `dhcproto`,
//! round trips, and no-panic properties.

use std::net::Ipv6Addr;

use dhcproto::v6 as dp;
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use proptest::prelude::*;

use super::request::descend;
use super::*;

const DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
const SDUID: [u8; 6] = [0, 2, 0, 0, 0x12, 0x34];

fn o(code: u16, value: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend((value.len() as u16).to_be_bytes());
    b.extend_from_slice(value);
    b
}

fn msg(t: u8, xid: u32, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![t];
    b.extend(&xid.to_be_bytes()[1..]);
    b.extend(opts.concat());
    b
}

fn relay(t: u8, hop: u8, link: Ipv6Addr, peer: Ipv6Addr, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![t, hop];
    b.extend(link.octets());
    b.extend(peer.octets());
    b.extend(opts.concat());
    b
}

fn ip(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)
}

fn ia(iaid: u32, t1: u32, t2: u32, nested: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [iaid, t1, t2] {
        b.extend(v.to_be_bytes());
    }
    b.extend(nested.concat());
    b
}

fn iaaddr(a: Ipv6Addr, pref: u32, valid: u32, nested: &[Vec<u8>]) -> Vec<u8> {
    let mut b = a.octets().to_vec();
    b.extend(pref.to_be_bytes());
    b.extend(valid.to_be_bytes());
    b.extend(nested.concat());
    b
}

fn iaprefix(pref: u32, valid: u32, len: u8, p: Ipv6Addr, nested: &[Vec<u8>]) -> Vec<u8> {
    let mut b = pref.to_be_bytes().to_vec();
    b.extend(valid.to_be_bytes());
    b.push(len);
    b.extend(p.octets());
    b.extend(nested.concat());
    b
}

fn status(code: u16, m: &str) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend(m.as_bytes());
    o(opt::STATUS_CODE, &b)
}

fn bad<T>(code: u16) -> Result<T, Error> {
    Err(Error::BadOptionValue { code })
}

fn collect(b: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, Error> {
    OptionIter::new(b)
        .map(|r| r.map(|(c, v)| (c, v.to_vec())))
        .collect()
}

#[test]
fn message_view_and_setters() {
    let mut b = msg(1, 0x00ab_cdef, &[o(opt::CLIENTID, &DUID)]);
    let m = Message::new_checked(&b[..]).unwrap();
    assert_eq!((m.msg_type(), m.xid()), (1, 0x00ab_cdef));
    assert_eq!(m.message_type(), Ok(MessageType::Solicit));
    assert_eq!(m.options(), &o(opt::CLIENTID, &DUID)[..]);
    assert_eq!(m.option_iter().count(), 1);
    assert_eq!(m.as_bytes().len(), 4 + 4 + DUID.len());
    let mut m = Message::new_unchecked(&mut b[..]);
    m.set_msg_type(MessageType::Reply);
    m.set_xid(0xff12_3456);
    m.options_mut()[0] = 0xee;
    let m = Message::new_checked(&b[..]).unwrap();
    assert_eq!(
        (m.msg_type(), m.xid(), m.options()[0]),
        (7, 0x0012_3456, 0xee)
    );
    for len in 0..4 {
        assert_eq!(
            Message::new_checked(&b[..len]),
            Err(Error::Truncated { len })
        );
    }
    assert_eq!(
        Message::new_checked(&[0u8, 0, 0, 0][..])
            .unwrap()
            .message_type(),
        Err(Error::UnknownMessageType(0))
    );
}

#[test]
fn relay_view_and_setters() {
    let mut b = relay(12, 3, ip(1), ip(2), &[o(opt::INTERFACE_ID, b"eth0")]);
    let r = RelayMessage::new_checked(&b[..]).unwrap();
    assert_eq!((r.msg_type(), r.hop_count()), (12, 3));
    assert_eq!((r.link_address(), r.peer_address()), (ip(1), ip(2)));
    assert_eq!(
        collect(r.options()),
        Ok(vec![(opt::INTERFACE_ID, b"eth0".to_vec())])
    );
    let mut r = RelayMessage::new_unchecked(&mut b[..]);
    r.set_msg_type(MessageType::RelayRepl);
    r.set_hop_count(9);
    r.set_link_address(ip(7));
    r.set_peer_address(ip(8));
    r.options_mut()[0] = 0xab;
    let r = RelayMessage::new_checked(&b[..]).unwrap();
    assert_eq!(
        (
            r.msg_type(),
            r.hop_count(),
            r.link_address(),
            r.peer_address()
        ),
        (13, 9, ip(7), ip(8))
    );
    assert_eq!(r.options()[0], 0xab);
    assert_eq!(
        RelayMessage::new_checked(&b[..33]),
        Err(Error::Truncated { len: 33 })
    );
    b[0] = 1;
    assert_eq!(
        RelayMessage::new_checked(&b[..]),
        Err(Error::UnexpectedMessageType(1))
    );
    b[0] = 99;
    assert_eq!(
        RelayMessage::new_checked(&b[..]),
        Err(Error::UnknownMessageType(99))
    );
}

#[test]
fn option_iter_framing() {
    assert_eq!(collect(&[]), Ok(vec![]));
    let good = [o(1, &[9, 9]), o(14, &[]), o(0xffff, &[1])].concat();
    assert_eq!(
        collect(&good),
        Ok(vec![(1, vec![9, 9]), (14, vec![]), (0xffff, vec![1])])
    );
    // Header cut short after a good option: 1, 2 and 3 stray bytes.
    for (tail, code) in [
        (&[0x00][..], 0),
        (&[0x00, 0x07][..], 7),
        (&[0x00, 0x07, 0x00][..], 7),
    ] {
        let mut b = o(1, &[1]);
        b.extend_from_slice(tail);
        let mut it = OptionIter::new(&b);
        assert_eq!(it.next(), Some(Ok((1, &[1][..]))));
        assert_eq!(it.next(), Some(Err(Error::BadOptionLength { code })));
        assert_eq!(it.next(), None, "fused after an error");
    }
    // Lying length: one byte more than present, and the maximum.
    let mut b = o(8, &[0, 1]);
    b[3] = 3;
    assert_eq!(collect(&b), Err(Error::BadOptionLength { code: 8 }));
    let b = [0, 2, 0xff, 0xff, 1, 2, 3];
    assert_eq!(collect(&b), Err(Error::BadOptionLength { code: 2 }));
    let it = OptionIter::new(&good);
    assert_eq!(it.remainder(), &good[..]);
    assert_eq!(find_option(&good, 14), Ok(Some(&[][..])));
    assert_eq!(find_option(&good, 2), Ok(None));
    // A framing error after the option sought is not read; one before it is returned.
    let b = [o(1, &[5]), vec![0, 9]].concat();
    assert_eq!(find_option(&b, 1), Ok(Some(&[5][..])));
    assert_eq!(find_option(&b, 2), Err(Error::BadOptionLength { code: 9 }));
}

#[test]
fn ia_views() {
    let st = status(2, "none");
    let ia_value = ia(
        7,
        100,
        200,
        &[o(
            opt::IAADDR,
            &iaaddr(ip(5), 300, 400, std::slice::from_ref(&st)),
        )],
    );
    let view = Ia::new(opt::IA_NA, &ia_value).unwrap();
    assert_eq!((view.iaid(), view.t1(), view.t2()), (7, 100, 200));
    let (code, addr) = view.option_iter().next().unwrap().unwrap();
    assert_eq!(code, opt::IAADDR);
    assert_eq!(view.options().len(), 4 + addr.len());
    let addr = IaAddr::new(addr).unwrap();
    assert_eq!(
        (addr.address(), addr.preferred(), addr.valid()),
        (ip(5), 300, 400)
    );
    assert_eq!(addr.options(), &st[..]);
    let (code, st_value) = addr.option_iter().next().unwrap().unwrap();
    assert_eq!(code, opt::STATUS_CODE);
    let sv = StatusOption::new(st_value).unwrap();
    assert_eq!(
        (sv.code(), sv.status(), sv.message()),
        (2, Some(StatusCode::NoAddrsAvail), &b"none"[..])
    );
    assert_eq!(StatusOption::new(&[0, 99]).unwrap().status(), None);

    let pv = iaprefix(1, 2, 56, ip(0x100), &[o(opt::PD_EXCLUDE, &[64, 0x12])]);
    let p = IaPrefix::new(&pv).unwrap();
    assert_eq!(
        (p.preferred(), p.valid(), p.prefix_len(), p.prefix()),
        (1, 2, 56, ip(0x100))
    );
    assert_eq!(
        collect(p.options()),
        Ok(vec![(opt::PD_EXCLUDE, vec![64, 0x12])])
    );
    assert_eq!(p.option_iter().count(), 1);
    assert!(IaPrefix::new(&iaprefix(1, 2, 128, ip(1), &[])).is_ok());

    assert_eq!(Ia::new(opt::IA_PD, &ia_value[..11]), bad(opt::IA_PD));
    assert_eq!(
        Ia::new(opt::IA_NA, &ia_value[..12]).unwrap().options(),
        &[] as &[u8]
    );
    assert_eq!(IaAddr::new(&[0; 23]), bad(opt::IAADDR));
    assert_eq!(IaPrefix::new(&pv[..24]), bad(opt::IAPREFIX));
    assert_eq!(
        IaPrefix::new(&iaprefix(1, 2, 129, ip(1), &[])),
        bad(opt::IAPREFIX)
    );
    assert_eq!(IaPrefix::new(&[]), bad(opt::IAPREFIX));
    assert_eq!(StatusOption::new(&[0]), bad(opt::STATUS_CODE));
}

fn full_solicit() -> Vec<u8> {
    msg(
        1,
        0x0012_3456,
        &[
            o(opt::CLIENTID, &DUID),
            o(opt::SERVERID, &SDUID),
            o(opt::ORO, &[0, 23, 0, 24, 0, 82]),
            o(opt::ELAPSED_TIME, &[0x01, 0x02]),
            o(opt::RAPID_COMMIT, &[]),
            o(opt::RECONF_ACCEPT, &[]),
            o(opt::VENDOR_CLASS, &[0, 0, 0, 9, 0, 1, b'x']),
            o(
                opt::IA_NA,
                &ia(
                    1,
                    10,
                    20,
                    &[
                        o(opt::IAADDR, &iaaddr(ip(1), 30, 40, &[status(0, "")])),
                        status(0, "fine"),
                        o(opt::IAADDR, &iaaddr(ip(2), 50, 60, &[])),
                        o(opt::IAPREFIX, &iaprefix(1, 1, 64, ip(9), &[])),
                    ],
                ),
            ),
            o(
                opt::IA_PD,
                &ia(
                    2,
                    0,
                    0,
                    &[o(
                        opt::IAPREFIX,
                        &iaprefix(70, 80, 56, ip(0x100), &[o(opt::PD_EXCLUDE, &[64, 1])]),
                    )],
                ),
            ),
        ],
    )
}

#[test]
fn request_every_option() {
    let b = full_solicit();
    let r = Request::parse(&b).unwrap();
    assert_eq!((r.message_type, r.xid), (MessageType::Solicit, 0x0012_3456));
    assert!(r.relays().is_empty());
    assert_eq!(r.message, &b[..]);
    assert_eq!(r.options, &b[4..]);
    assert_eq!(r.client_id, Some(&DUID[..]));
    assert_eq!(r.server_id, Some(&SDUID[..]));
    assert_eq!(r.oro_codes().collect::<Vec<_>>(), [23, 24, 82]);
    assert!(r.requests_option(opt::DNS_SERVERS) && !r.requests_option(opt::SOL_MAX_RT - 1));
    assert_eq!(r.elapsed_time, Some(0x0102));
    assert!(r.rapid_commit && r.reconfigure_accept);
    assert_eq!(r.ia_na().len(), 1);
    let na = r.ia_na()[0];
    assert_eq!((na.iaid, na.t1, na.t2, na.hints_ignored), (1, 10, 20, 0));
    let h = |address, prefix_len, preferred, valid| Hint {
        address,
        prefix_len,
        preferred,
        valid,
    };
    // The IAPREFIX inside the IA_NA is not an address hint.
    assert_eq!(na.hints(), [h(ip(1), 128, 30, 40), h(ip(2), 128, 50, 60)]);
    assert_eq!(r.ia_pd().len(), 1);
    assert_eq!((r.ia_pd()[0].iaid, r.ia_pd()[0].t1), (2, 0));
    assert_eq!(r.ia_pd()[0].hints(), [h(ip(0x100), 56, 70, 80)]);
    assert_eq!((r.ia_na_ignored(), r.ia_pd_ignored()), (0, 0));
    assert_eq!(client_duid_fast(&b), Ok(Some(&DUID[..])));
    fuzz_one(&b);
}

#[test]
fn absent_options() {
    let b = msg(11, 5, &[]);
    let r = Request::parse(&b).unwrap();
    assert_eq!(r.message_type, MessageType::InformationRequest);
    assert_eq!(
        (r.client_id, r.server_id, r.oro, r.elapsed_time),
        (None, None, None, None)
    );
    assert!(!r.rapid_commit && !r.reconfigure_accept);
    assert_eq!(r.oro_codes().count(), 0);
    assert!(r.ia_na().is_empty() && r.ia_pd().is_empty());
    assert_eq!(client_duid_fast(&b), Ok(None));
    fuzz_one(&b);
}

#[test]
fn first_instance_wins_for_repeatable_singletons() {
    let b = msg(
        1,
        5,
        &[
            o(opt::ELAPSED_TIME, &[0, 1]),
            o(opt::ELAPSED_TIME, &[0, 2]),
            o(opt::ORO, &[0, 23]),
            o(opt::ORO, &[]),
        ],
    );
    let r = Request::parse(&b).unwrap();
    assert_eq!((r.elapsed_time, r.oro), (Some(1), Some(&[0, 23][..])));
}

/// Options of a message and what parsing it gives.
type Case = (Vec<Vec<u8>>, Result<(), Error>);

#[test]
fn bad_values_are_rejected() {
    let cases: Vec<Case> = vec![
        (vec![o(opt::CLIENTID, &[0, 1])], bad(opt::CLIENTID)),
        (vec![o(opt::CLIENTID, &[7; 131])], bad(opt::CLIENTID)),
        (vec![o(opt::SERVERID, &[])], bad(opt::SERVERID)),
        (
            vec![o(opt::CLIENTID, &DUID), o(opt::CLIENTID, &DUID)],
            Err(Error::DuplicateOption {
                code: opt::CLIENTID,
            }),
        ),
        (
            vec![o(opt::SERVERID, &SDUID), o(opt::SERVERID, &SDUID)],
            Err(Error::DuplicateOption {
                code: opt::SERVERID,
            }),
        ),
        (vec![o(opt::ORO, &[0, 23, 0])], bad(opt::ORO)),
        (
            vec![o(opt::ELAPSED_TIME, &[0, 0, 0])],
            bad(opt::ELAPSED_TIME),
        ),
        (vec![o(opt::ELAPSED_TIME, &[0])], bad(opt::ELAPSED_TIME)),
        (vec![o(opt::RAPID_COMMIT, &[0])], bad(opt::RAPID_COMMIT)),
        (vec![o(opt::RECONF_ACCEPT, &[1])], bad(opt::RECONF_ACCEPT)),
        (vec![o(opt::IA_NA, &[0; 11])], bad(opt::IA_NA)),
        (vec![o(opt::IA_PD, &[0; 3])], bad(opt::IA_PD)),
        (
            vec![o(opt::IA_NA, &ia(1, 0, 0, &[o(opt::IAADDR, &[0; 20])]))],
            bad(opt::IAADDR),
        ),
        (
            vec![o(
                opt::IA_PD,
                &ia(
                    1,
                    0,
                    0,
                    &[o(opt::IAPREFIX, &iaprefix(0, 0, 200, ip(1), &[]))],
                ),
            )],
            bad(opt::IAPREFIX),
        ),
        (
            vec![o(opt::IA_NA, &ia(1, 0, 0, &[o(opt::STATUS_CODE, &[0])]))],
            bad(opt::STATUS_CODE),
        ),
        // Status code nested two levels down, inside an IAADDR inside an IA_NA.
        (
            vec![o(
                opt::IA_NA,
                &ia(
                    1,
                    0,
                    0,
                    &[o(
                        opt::IAADDR,
                        &iaaddr(ip(1), 0, 0, &[o(opt::STATUS_CODE, &[1])]),
                    )],
                ),
            )],
            bad(opt::STATUS_CODE),
        ),
        // Lying lengths inside an IA and inside an IAPREFIX.
        (
            vec![o(
                opt::IA_NA,
                &[ia(1, 0, 0, &[]), vec![0, 5, 0, 30, 0]].concat(),
            )],
            Err(Error::BadOptionLength { code: 5 }),
        ),
        (
            vec![o(
                opt::IA_PD,
                &ia(
                    1,
                    0,
                    0,
                    &[o(
                        opt::IAPREFIX,
                        &[iaprefix(0, 0, 48, ip(1), &[]), vec![0, 67, 0, 2, 1]].concat(),
                    )],
                ),
            )],
            Err(Error::BadOptionLength { code: 67 }),
        ),
    ];
    for (opts, want) in cases {
        let b = msg(3, 1, &opts);
        assert_eq!(Request::parse(&b).map(|_| ()), want, "{opts:?}");
        fuzz_one(&b);
    }
    // Lying top-level length, unknown and misplaced message types, truncation.
    let mut b = msg(1, 1, &[o(opt::CLIENTID, &DUID)]);
    b[7] += 1;
    assert_eq!(
        Request::parse(&b).map(|_| ()),
        Err(Error::BadOptionLength { code: 1 })
    );
    assert_eq!(
        client_duid_fast(&b),
        Err(Error::BadOptionLength { code: 1 })
    );
    for t in [0u8, 14, 255] {
        assert_eq!(
            Request::parse(&msg(t, 1, &[])).map(|_| ()),
            Err(Error::UnknownMessageType(t))
        );
        assert_eq!(
            client_duid_fast(&msg(t, 1, &[])),
            Err(Error::UnknownMessageType(t))
        );
    }
    let repl = relay(13, 0, ip(1), ip(2), &[o(opt::RELAY_MSG, &msg(7, 1, &[]))]);
    assert_eq!(
        Request::parse(&repl).map(|_| ()),
        Err(Error::UnexpectedMessageType(13))
    );
    assert_eq!(
        client_duid_fast(&repl),
        Err(Error::UnexpectedMessageType(13))
    );
    for len in 0..4 {
        let b = msg(1, 1, &[]);
        assert_eq!(
            Request::parse(&b[..len]).map(|_| ()),
            Err(Error::Truncated { len })
        );
        assert_eq!(client_duid_fast(&b[..len]), Err(Error::Truncated { len }));
    }
}

#[test]
fn ia_and_hint_limits() {
    let hints: Vec<Vec<u8>> = (0..6)
        .map(|i| o(opt::IAADDR, &iaaddr(ip(i), 1, 2, &[])))
        .collect();
    let mut opts: Vec<Vec<u8>> = (0..10u32)
        .map(|i| o(opt::IA_NA, &ia(i, 0, 0, &hints)))
        .collect();
    opts.extend((0..9u32).map(|i| o(opt::IA_PD, &ia(100 + i, 0, 0, &[]))));
    let b = msg(3, 1, &opts);
    let r = Request::parse(&b).unwrap();
    assert_eq!((r.ia_na().len(), r.ia_na_ignored()), (MAX_IA, 2));
    assert_eq!((r.ia_pd().len(), r.ia_pd_ignored()), (MAX_IA, 1));
    assert_eq!(
        r.ia_na().iter().map(|i| i.iaid).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(r.ia_pd()[7].iaid, 107);
    for i in r.ia_na() {
        assert_eq!((i.hints().len(), i.hints_ignored), (MAX_HINTS, 2));
        assert_eq!(i.hints()[3].address, ip(3));
    }
    // An ignored IA is still validated.
    opts.push(o(opt::IA_NA, &[0; 5]));
    assert_eq!(
        Request::parse(&msg(3, 1, &opts)).map(|_| ()),
        Err(Error::BadOptionValue { code: opt::IA_NA })
    );
    fuzz_one(&b);
}

/// `levels` RELAY-FORW around a REQUEST; level i (outermost = 0) has hop count
/// `levels - 1 - i`, link ip(i), peer ip(100 + i) and an Interface-Id on even levels.
fn nested_relays(levels: usize) -> Vec<u8> {
    let mut b = msg(
        3,
        0x42,
        &[o(opt::CLIENTID, &DUID), o(opt::IA_NA, &ia(9, 1, 2, &[]))],
    );
    for i in (0..levels).rev() {
        let n = i as u16;
        let mut opts = vec![o(opt::RELAY_MSG, &b)];
        if i % 2 == 0 {
            opts.insert(0, o(opt::INTERFACE_ID, format!("if{i}").as_bytes()));
            opts.push(o(opt::CLIENT_LINKLAYER_ADDR, &[0, 1, 2, 3, 4, 5, 6, 7]));
        }
        b = relay(12, (levels - 1 - i) as u8, ip(n), ip(100 + n), &opts);
    }
    b
}

#[test]
fn relay_nesting_up_to_the_limit() {
    for levels in 1..=HOP_COUNT_LIMIT {
        let b = nested_relays(levels);
        let r = Request::parse(&b).unwrap();
        assert_eq!(r.relays().len(), levels);
        for (i, hop) in r.relays().iter().enumerate() {
            let n = i as u16;
            assert_eq!(
                (hop.hop_count, hop.link_address, hop.peer_address),
                ((levels - 1 - i) as u8, ip(n), ip(100 + n))
            );
            let want = (i % 2 == 0).then(|| format!("if{i}").into_bytes());
            assert_eq!(hop.interface_id.map(<[u8]>::to_vec), want);
            assert_eq!(
                find_option(hop.options, opt::CLIENT_LINKLAYER_ADDR)
                    .unwrap()
                    .is_some(),
                i % 2 == 0
            );
        }
        assert_eq!(
            (r.message_type, r.xid, r.client_id),
            (MessageType::Request, 0x42, Some(&DUID[..]))
        );
        assert_eq!(r.ia_na()[0].iaid, 9);
        assert_eq!(client_duid_fast(&b), Ok(Some(&DUID[..])));
        fuzz_one(&b);
    }
    let b = nested_relays(HOP_COUNT_LIMIT + 1);
    assert_eq!(Request::parse(&b).map(|_| ()), Err(Error::TooManyRelays));
    assert_eq!(client_duid_fast(&b), Err(Error::TooManyRelays));
}

#[test]
fn malformed_relays() {
    let inner = msg(1, 1, &[o(opt::CLIENTID, &DUID)]);
    let cases = [
        (
            relay(12, 0, ip(1), ip(2), &[o(opt::INTERFACE_ID, b"x")]),
            Error::MissingRelayMessage,
        ),
        (
            relay(
                12,
                0,
                ip(1),
                ip(2),
                &[o(opt::RELAY_MSG, &inner), o(opt::RELAY_MSG, &inner)],
            ),
            Error::DuplicateOption {
                code: opt::RELAY_MSG,
            },
        ),
        (
            relay(
                12,
                0,
                ip(1),
                ip(2),
                &[
                    o(opt::INTERFACE_ID, b"a"),
                    o(opt::INTERFACE_ID, b"b"),
                    o(opt::RELAY_MSG, &inner),
                ],
            ),
            Error::DuplicateOption {
                code: opt::INTERFACE_ID,
            },
        ),
        (
            relay(12, 0, ip(1), ip(2), &[o(opt::RELAY_MSG, &[])]),
            Error::Truncated { len: 0 },
        ),
        (
            relay(12, 0, ip(1), ip(2), &[o(opt::RELAY_MSG, &[1, 2])]),
            Error::Truncated { len: 2 },
        ),
        (
            relay(12, 0, ip(1), ip(2), &[o(opt::RELAY_MSG, &[12; 20])]),
            Error::Truncated { len: 20 },
        ),
        (
            relay(
                12,
                0,
                ip(1),
                ip(2),
                &[o(opt::RELAY_MSG, &relay(13, 0, ip(1), ip(2), &[]))],
            ),
            Error::UnexpectedMessageType(13),
        ),
        (
            relay(12, 0, ip(1), ip(2), &[vec![0, 9, 0, 1]]),
            Error::BadOptionLength { code: 9 },
        ),
        (
            relay(12, 0, ip(1), ip(2), &[])[..33].to_vec(),
            Error::Truncated { len: 33 },
        ),
    ];
    for (b, e) in cases {
        assert_eq!(Request::parse(&b).map(|_| ()), Err(e), "{b:?}");
        fuzz_one(&b);
    }
    // The fast path only reads the first RELAY_MSG: it accepts what parse rejects as a
    // duplicate, and agrees on everything parse accepts.
    let dup = relay(
        12,
        0,
        ip(1),
        ip(2),
        &[o(opt::RELAY_MSG, &inner), o(opt::RELAY_MSG, &inner)],
    );
    assert_eq!(client_duid_fast(&dup), Ok(Some(&DUID[..])));
    assert_eq!(
        client_duid_fast(&relay(12, 0, ip(1), ip(2), &[])),
        Err(Error::MissingRelayMessage)
    );
    assert_eq!(
        client_duid_fast(&relay(12, 0, ip(1), ip(2), &[])[..20]),
        Err(Error::Truncated { len: 20 })
    );
}

#[test]
fn writer_nested_ia_and_status() {
    let mut buf = [0u8; 512];
    let mut w = ReplyWriter::new_message(&mut buf, MessageType::Reply, 0x0100_0042).unwrap();
    assert!(!w.is_empty());
    w.option(opt::SERVERID, &SDUID).unwrap();
    w.ia_na(7, 100, 200, |w| {
        w.ia_addr(ip(5), 300, 400, |w| {
            w.status_code(StatusCode::Success, "ok")
        })?;
        w.status_code(StatusCode::Success, "all")
    })
    .unwrap();
    w.ia_pd(8, 1, 2, |w| {
        w.ia_prefix(ip(0x100), 56, 3, 4, |w| w.option(opt::PD_EXCLUDE, &[64, 1]))
    })
    .unwrap();
    w.option_u8(opt::PREFERENCE, 255).unwrap();
    w.option_u16(opt::ELAPSED_TIME, 7).unwrap();
    w.option_u32(opt::INFORMATION_REFRESH_TIME, 86_400).unwrap();
    w.option_ip6s(opt::DNS_SERVERS, &[ip(53), ip(54)]).unwrap();
    w.option(opt::RAPID_COMMIT, &[]).unwrap();
    let n = w.finish();
    let want = msg(
        7,
        0x42,
        &[
            o(opt::SERVERID, &SDUID),
            o(
                opt::IA_NA,
                &ia(
                    7,
                    100,
                    200,
                    &[
                        o(opt::IAADDR, &iaaddr(ip(5), 300, 400, &[status(0, "ok")])),
                        status(0, "all"),
                    ],
                ),
            ),
            o(
                opt::IA_PD,
                &ia(
                    8,
                    1,
                    2,
                    &[o(
                        opt::IAPREFIX,
                        &iaprefix(3, 4, 56, ip(0x100), &[o(opt::PD_EXCLUDE, &[64, 1])]),
                    )],
                ),
            ),
            o(opt::PREFERENCE, &[255]),
            o(opt::ELAPSED_TIME, &[0, 7]),
            o(opt::INFORMATION_REFRESH_TIME, &86_400u32.to_be_bytes()),
            o(
                opt::DNS_SERVERS,
                &[ip(53).octets(), ip(54).octets()].concat(),
            ),
            o(opt::RAPID_COMMIT, &[]),
        ],
    );
    assert_eq!(&buf[..n], &want[..]);
}

#[test]
fn writer_handles() {
    let mut buf = [0u8; 128];
    let mut w = ReplyWriter::new_message(&mut buf, MessageType::Reply, 1).unwrap();
    let outer = w.begin_option(opt::VENDOR_OPTS).unwrap();
    w.option(1, &[1, 2]).unwrap();
    let inner = w.begin_option(2).unwrap();
    assert_eq!(w.open_options(), 2);
    // Only the innermost option can be ended.
    let outer = match w.end_option(outer) {
        Err(Error::BadNesting) => w.begin_option(3).unwrap(),
        other => panic!("{other:?}"),
    };
    // `outer` now names option 3, innermost; abort it, then end option 2 and 17.
    w.abort_option(outer).unwrap();
    w.end_option(inner).unwrap();
    assert_eq!(w.open_options(), 1);
    let len = w.finish();
    assert_eq!(
        &buf[..len],
        &msg(
            7,
            1,
            &[o(opt::VENDOR_OPTS, &[o(1, &[1, 2]), o(2, &[])].concat())]
        )[..]
    );

    // Aborting an outer option discards the inner ones too; stale handles are refused.
    let mut w = ReplyWriter::new_message(&mut buf, MessageType::Reply, 1).unwrap();
    let first = w.begin_option(10).unwrap();
    let second = w.begin_option(11).unwrap();
    w.option(12, &[9]).unwrap();
    w.abort_option(first).unwrap();
    assert_eq!((w.len(), w.open_options()), (4, 0));
    assert_eq!(w.end_option(second), Err(Error::BadNesting));
    // Nesting deeper than MAX_NESTING is refused.
    for _ in 0..MAX_NESTING {
        let _open = w.begin_option(1).unwrap();
    }
    assert_eq!(w.begin_option(1).map(|_| ()), Err(Error::BadNesting));
    let len = w.finish();
    assert_eq!(len, 4 + 4 * MAX_NESTING);
    let mut depth = 0;
    let mut rest = &buf[4..len];
    while let Some(Ok((1, v))) = OptionIter::new(rest).next() {
        depth += 1;
        rest = v;
    }
    assert_eq!(depth, MAX_NESTING);

    // Headers go only first inside a RELAY_MSG; a closure leaving options open fails whole.
    let mut w = ReplyWriter::new_relay_repl(&mut buf, 0, ip(1), ip(2)).unwrap();
    assert_eq!(
        w.message_header(MessageType::Reply, 1),
        Err(Error::BadNesting)
    );
    let h = w.begin_option(opt::RELAY_MSG).unwrap();
    w.message_header(MessageType::Reply, 1).unwrap();
    assert_eq!(
        w.message_header(MessageType::Reply, 1),
        Err(Error::BadNesting)
    );
    assert_eq!(w.relay_repl_header(0, ip(1), ip(2)), Err(Error::BadNesting));
    let before = w.len();
    assert_eq!(
        w.ia_na(1, 0, 0, |w| w.begin_option(5).map(|_| ())),
        Err(Error::BadNesting)
    );
    assert_eq!(
        w.ia_pd(1, 0, 0, |w| w.ia_prefix(ip(1), 129, 0, 0, |_| Ok(()))),
        Err(Error::BadOptionValue {
            code: opt::IAPREFIX
        })
    );
    assert_eq!(w.len(), before);
    w.end_option(h).unwrap();
    let len = w.finish();
    assert_eq!(
        &buf[..len],
        &relay(13, 0, ip(1), ip(2), &[o(opt::RELAY_MSG, &msg(7, 1, &[]))])[..]
    );
    assert_eq!(
        ReplyWriter::new_message(&mut buf, MessageType::RelayForw, 1).map(|_| ()),
        Err(Error::UnexpectedMessageType(12))
    );
}

/// Write a fixed reply into `buf`, skipping what does not fit; return its length and which
/// of the five optional parts were written.
fn write_some(buf: &mut [u8]) -> Result<(usize, [bool; 5]), Error> {
    let mut w = ReplyWriter::new_relay_repl(buf, 1, ip(1), ip(2))?;
    let mut done = [false; 5];
    done[0] = w.option(opt::INTERFACE_ID, b"ge-0/0/1").is_ok();
    let h = w.begin_option(opt::RELAY_MSG)?;
    w.message_header(MessageType::Reply, 77)?;
    done[1] = w.option(opt::SERVERID, &SDUID).is_ok();
    done[2] = w
        .ia_na(1, 2, 3, |w| {
            w.ia_addr(ip(5), 6, 7, |w| {
                w.status_code(StatusCode::Success, "assigned")
            })?;
            w.ia_addr(ip(6), 6, 7, |_| Ok(()))
        })
        .is_ok();
    done[3] = w.option_ip6s(opt::DNS_SERVERS, &[ip(53); 3]).is_ok();
    done[4] = w.status_code(StatusCode::UnspecFail, "x").is_ok();
    w.end_option(h)?;
    Ok((w.finish(), done))
}

#[test]
fn writer_all_or_nothing_at_every_buffer_size() {
    let mut full = [0u8; 512];
    let (len, done) = write_some(&mut full).unwrap();
    assert_eq!(done, [true; 5]);
    for size in 0..=len {
        let mut buf = vec![0xa5u8; size];
        let Ok((n, done)) = write_some(&mut buf) else {
            // Only the mandatory parts can fail: relay header (34), RELAY_MSG (4) and inner
            // header (4); when the optional 12-byte Interface-Id fitted first, they need 12
            // more.
            assert!(
                size < 42 || (46..54).contains(&size),
                "failed at {size} bytes"
            );
            continue;
        };
        if size == len {
            assert_eq!((n, done), (len, [true; 5]));
        }
        assert!(n <= size);
        let d = descend(&buf[..n], MessageType::RelayRepl).unwrap();
        assert_eq!(d.relays[0].interface_id.is_some(), done[0]);
        let r = Request::parse(d.inner).unwrap();
        assert_eq!((r.message_type, r.xid), (MessageType::Reply, 77));
        assert_eq!(r.server_id.is_some(), done[1]);
        assert_eq!(r.ia_na().len(), usize::from(done[2]));
        if done[2] {
            assert_eq!(r.ia_na()[0].hints().len(), 2);
        }
        assert_eq!(
            find_option(r.options, opt::DNS_SERVERS)
                .unwrap()
                .map(<[u8]>::len),
            done[3].then_some(48)
        );
        assert_eq!(
            find_option(r.options, opt::STATUS_CODE).unwrap().is_some(),
            done[4]
        );
    }
}

#[test]
fn for_request_wraps_matching_relay_levels() {
    let b = nested_relays(3);
    let r = Request::parse(&b).unwrap();
    let mut buf = [0u8; 600];
    let mut w = ReplyWriter::for_request(&mut buf, &r, MessageType::Reply).unwrap();
    assert_eq!(w.open_options(), 3);
    w.option(opt::CLIENTID, r.client_id.unwrap()).unwrap();
    let n = w.finish();
    let mut want = msg(7, 0x42, &[o(opt::CLIENTID, &DUID)]);
    for i in (0..3usize).rev() {
        let n = i as u16;
        let mut opts = vec![o(opt::RELAY_MSG, &want)];
        if i % 2 == 0 {
            opts.insert(0, o(opt::INTERFACE_ID, format!("if{i}").as_bytes()));
        }
        want = relay(13, (2 - i) as u8, ip(n), ip(100 + n), &opts);
    }
    assert_eq!(&buf[..n], &want[..]);
    // Direct: a plain message; too small a buffer: an error.
    let direct = msg(1, 9, &[]);
    let r = Request::parse(&direct).unwrap();
    let n = ReplyWriter::for_request(&mut buf, &r, MessageType::Advertise)
        .unwrap()
        .finish();
    assert_eq!(&buf[..n], &msg(2, 9, &[])[..]);
    let r = Request::parse(&b).unwrap();
    assert_eq!(
        ReplyWriter::for_request(&mut buf[..40], &r, MessageType::Reply).map(|_| ()),
        Err(Error::BufferTooSmall)
    );
}

#[test]
fn enums_round_trip() {
    for v in 0..=255u8 {
        if let Ok(t) = MessageType::try_from(v) {
            assert_eq!(u8::from(t), v);
            assert_eq!(t.is_relay(), v == 12 || v == 13);
            assert_eq!(t.from_client(), matches!(v, 1 | 3 | 4 | 5 | 6 | 8 | 9 | 11));
        } else {
            assert!(v == 0 || v > 13);
        }
    }
    for v in 0..100u16 {
        assert_eq!(
            StatusCode::from_u16(v).map(u16::from),
            (v <= 6).then_some(v)
        );
    }
}

#[test]
fn reasons_are_distinct_snake_case() {
    let all = [
        Error::Truncated { len: 0 },
        Error::BadOptionLength { code: 0 },
        Error::BadOptionValue { code: 0 },
        Error::DuplicateOption { code: 0 },
        Error::UnknownMessageType(0),
        Error::UnexpectedMessageType(0),
        Error::TooManyRelays,
        Error::MissingRelayMessage,
        Error::BadNesting,
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

#[test]
fn fuzz_body_on_seed_messages() {
    fuzz_one(&[]);
    fuzz_one(&[12]);
    fuzz_one(&full_solicit());
    fuzz_one(&nested_relays(HOP_COUNT_LIMIT));
    // An Interface-Id too large for the fuzz body's 4096-byte reply buffer.
    let big = relay(
        12,
        0,
        ip(1),
        ip(2),
        &[
            o(opt::INTERFACE_ID, &[1; 5000]),
            o(opt::RELAY_MSG, &msg(1, 1, &[])),
        ],
    );
    assert!(Request::parse(&big).is_ok());
    fuzz_one(&big);
}

// ---- generated messages: dhcproto differential, round trips, no panics ----

/// An IA as generated: IAID, T1, T2, hints (address or prefix, prefix length, preferred,
/// valid).
type GenIa = (u32, u32, u32, Vec<(Ipv6Addr, u8, u32, u32)>);

/// A relay level as generated: hop count, link, peer, Interface-Id.
type GenRelay = (u8, Ipv6Addr, Ipv6Addr, Option<Vec<u8>>);

#[derive(Debug, Clone)]
struct GenMsg {
    msg_type: u8,
    xid: u32,
    client_id: Option<Vec<u8>>,
    server_id: Option<Vec<u8>>,
    oro: Option<Vec<u16>>,
    elapsed: Option<u16>,
    rapid_commit: bool,
    reconf_accept: bool,
    ia_na: Vec<GenIa>,
    ia_pd: Vec<GenIa>,
    relays: Vec<GenRelay>,
}

fn ip6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn gen_ia(pd: bool) -> impl Strategy<Value = GenIa> {
    let hint = (
        ip6(),
        if pd {
            (0u8..=128).boxed()
        } else {
            Just(128u8).boxed()
        },
        any::<u32>(),
        any::<u32>(),
    );
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(hint, 0..=MAX_HINTS),
    )
}

fn gen_relay() -> impl Strategy<Value = GenRelay> {
    (
        any::<u8>(),
        ip6(),
        ip6(),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..24)),
    )
}

fn gen_msg() -> impl Strategy<Value = GenMsg> {
    let duid = || prop::collection::vec(any::<u8>(), MIN_DUID_LEN..=MAX_DUID_LEN);
    (
        (
            prop::sample::select(vec![1u8, 3, 4, 5, 6, 8, 9, 11]),
            0u32..1 << 24,
            prop::option::of(duid()),
            prop::option::of(duid()),
        ),
        (
            prop::option::of(prop::collection::vec(0u16..100, 0..6)),
            prop::option::of(any::<u16>()),
            any::<bool>(),
            any::<bool>(),
        ),
        prop::collection::vec(gen_ia(false), 0..4),
        prop::collection::vec(gen_ia(true), 0..4),
        prop::collection::vec(gen_relay(), 0..=HOP_COUNT_LIMIT),
    )
        .prop_map(
            |(
                (msg_type, xid, client_id, server_id),
                (oro, elapsed, rapid_commit, reconf_accept),
                ia_na,
                ia_pd,
                relays,
            )| GenMsg {
                msg_type,
                xid,
                client_id,
                server_id,
                oro,
                elapsed,
                rapid_commit,
                reconf_accept,
                ia_na,
                ia_pd,
                relays,
            },
        )
}

fn dp_encode<T: Encodable>(m: &T) -> Vec<u8> {
    let mut b = Vec::new();
    m.encode(&mut Encoder::new(&mut b)).unwrap();
    b
}

/// A dhcproto relay message with the given header and options: dhcproto 0.12 has no
/// constructor, so decode a bare header and add the options.
fn dp_relay(
    t: u8,
    hop: u8,
    link: Ipv6Addr,
    peer: Ipv6Addr,
    opts: Vec<dp::DhcpOption>,
) -> dp::RelayMessage {
    let mut m =
        dp::RelayMessage::decode(&mut Decoder::new(&relay(t, hop, link, peer, &[]))).unwrap();
    for o in opts {
        m.opts_mut().insert(o);
    }
    m
}

/// Encode `g` with dhcproto. Relay levels carry the inner message as raw bytes (dhcproto
/// 0.12 models `RELAY_MSG` as a relay message only).
fn dhcproto_encode(g: &GenMsg) -> Vec<u8> {
    let mut m = dp::Message::new_with_id(
        g.msg_type.into(),
        g.xid.to_be_bytes()[1..].try_into().unwrap(),
    );
    let opts = m.opts_mut();
    if let Some(id) = &g.client_id {
        opts.insert(dp::DhcpOption::ClientId(id.clone()));
    }
    if let Some(id) = &g.server_id {
        opts.insert(dp::DhcpOption::ServerId(id.clone()));
    }
    if let Some(codes) = &g.oro {
        opts.insert(dp::DhcpOption::ORO(dp::ORO {
            opts: codes.iter().map(|&c| c.into()).collect(),
        }));
    }
    if let Some(e) = g.elapsed {
        opts.insert(dp::DhcpOption::ElapsedTime(e));
    }
    if g.rapid_commit {
        opts.insert(dp::DhcpOption::RapidCommit);
    }
    if g.reconf_accept {
        opts.insert(dp::DhcpOption::ReconfAccept);
    }
    for (id, t1, t2, hints) in &g.ia_na {
        let opts = hints
            .iter()
            .map(|&(addr, _, preferred_life, valid_life)| {
                dp::DhcpOption::IAAddr(dp::IAAddr {
                    addr,
                    preferred_life,
                    valid_life,
                    opts: dp::DhcpOptions::new(),
                })
            })
            .collect();
        m.opts_mut().insert(dp::DhcpOption::IANA(dp::IANA {
            id: *id,
            t1: *t1,
            t2: *t2,
            opts,
        }));
    }
    for (id, t1, t2, hints) in &g.ia_pd {
        let opts = hints
            .iter()
            .map(
                |&(prefix_ip, prefix_len, preferred_lifetime, valid_lifetime)| {
                    dp::DhcpOption::IAPrefix(dp::IAPrefix {
                        preferred_lifetime,
                        valid_lifetime,
                        prefix_len,
                        prefix_ip,
                        opts: dp::DhcpOptions::new(),
                    })
                },
            )
            .collect();
        m.opts_mut().insert(dp::DhcpOption::IAPD(dp::IAPD {
            id: *id,
            t1: *t1,
            t2: *t2,
            opts,
        }));
    }
    let mut wire = dp_encode(&m);
    for (hop, link, peer, ifid) in g.relays.iter().rev() {
        let mut opts = vec![dp::DhcpOption::Unknown(dp::UnknownOption::new(
            dp::OptionCode::RelayMsg,
            wire,
        ))];
        if let Some(id) = ifid {
            opts.push(dp::DhcpOption::InterfaceId(id.clone()));
        }
        wire = dp_encode(&dp_relay(12, *hop, *link, *peer, opts));
    }
    wire
}

/// IAs as comparable values, sorted: dhcproto reorders options of the same code.
fn sorted(mut v: Vec<GenIa>) -> Vec<GenIa> {
    for ia in &mut v {
        ia.3.sort_unstable();
    }
    v.sort_unstable();
    v
}

fn ours(ias: &[IaRequest]) -> Vec<GenIa> {
    sorted(
        ias.iter()
            .map(|i| {
                (
                    i.iaid,
                    i.t1,
                    i.t2,
                    i.hints()
                        .iter()
                        .map(|h| (h.address, h.prefix_len, h.preferred, h.valid))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// A reply as the writer tests generate it.
#[derive(Debug, Clone)]
struct GenReply {
    advertise: bool,
    xid: u32,
    client_id: Vec<u8>,
    ia_na: Vec<GenIa>,
    ia_pd: Vec<GenIa>,
    status: Option<(u16, String)>,
    dns: Vec<Ipv6Addr>,
    preference: Option<u8>,
    relays: Vec<GenRelay>,
}

fn gen_reply() -> impl Strategy<Value = GenReply> {
    (
        (
            any::<bool>(),
            0u32..1 << 24,
            prop::collection::vec(any::<u8>(), MIN_DUID_LEN..=MAX_DUID_LEN),
        ),
        prop::collection::vec(gen_ia(false), 0..4),
        prop::collection::vec(gen_ia(true), 0..4),
        (
            prop::option::of((0u16..=6, "[a-z ]{0,20}")),
            prop::collection::vec(ip6(), 0..4),
            prop::option::of(any::<u8>()),
        ),
        prop::collection::vec(gen_relay(), 0..=3),
    )
        .prop_map(
            |((advertise, xid, client_id), ia_na, ia_pd, (status, dns, preference), relays)| {
                GenReply {
                    advertise,
                    xid,
                    client_id,
                    ia_na,
                    ia_pd,
                    status,
                    dns,
                    preference,
                    relays,
                }
            },
        )
}

/// Write `g` with our writer: each IAADDR carries a Success status code.
fn write_reply(g: &GenReply, buf: &mut [u8]) -> usize {
    let msg_type = if g.advertise {
        MessageType::Advertise
    } else {
        MessageType::Reply
    };
    let mut w;
    if let Some(((hop, link, peer, ifid), rest)) = g.relays.split_first() {
        w = ReplyWriter::new_relay_repl(buf, *hop, *link, *peer).unwrap();
        if let Some(id) = ifid {
            w.option(opt::INTERFACE_ID, id).unwrap();
        }
        let _outer = w.begin_option(opt::RELAY_MSG).unwrap();
        for (hop, link, peer, ifid) in rest {
            w.relay_repl_header(*hop, *link, *peer).unwrap();
            if let Some(id) = ifid {
                w.option(opt::INTERFACE_ID, id).unwrap();
            }
            let _inner = w.begin_option(opt::RELAY_MSG).unwrap();
        }
        w.message_header(msg_type, g.xid).unwrap();
    } else {
        w = ReplyWriter::new_message(buf, msg_type, g.xid).unwrap();
    }
    w.option(opt::SERVERID, &SDUID).unwrap();
    w.option(opt::CLIENTID, &g.client_id).unwrap();
    for (iaid, t1, t2, hints) in &g.ia_na {
        w.ia_na(*iaid, *t1, *t2, |w| {
            for &(a, _, p, v) in hints {
                w.ia_addr(a, p, v, |w| w.status_code(StatusCode::Success, "ok"))?;
            }
            Ok(())
        })
        .unwrap();
    }
    for (iaid, t1, t2, hints) in &g.ia_pd {
        w.ia_pd(*iaid, *t1, *t2, |w| {
            for &(a, len, p, v) in hints {
                w.ia_prefix(a, len, p, v, |_| Ok(()))?;
            }
            Ok(())
        })
        .unwrap();
    }
    if let Some((code, text)) = &g.status {
        w.status_code(StatusCode::from_u16(*code).unwrap(), text)
            .unwrap();
    }
    if !g.dns.is_empty() {
        w.option_ip6s(opt::DNS_SERVERS, &g.dns).unwrap();
    }
    if let Some(p) = g.preference {
        w.option_u8(opt::PREFERENCE, p).unwrap();
    }
    w.finish()
}

fn dp_ias(opts: &dp::DhcpOptions, pd: bool) -> Vec<GenIa> {
    let mut out = Vec::new();
    for o in opts.iter() {
        match o {
            dp::DhcpOption::IANA(dp::IANA { id, t1, t2, opts }) if !pd => {
                let hints = opts
                    .iter()
                    .map(|h| match h {
                        dp::DhcpOption::IAAddr(a) => {
                            let st = a.opts.get(dp::OptionCode::StatusCode);
                            assert_eq!(
                                st,
                                Some(&dp::DhcpOption::StatusCode(dp::StatusCode {
                                    status: dp::Status::Success,
                                    msg: "ok".into()
                                }))
                            );
                            (a.addr, 128, a.preferred_life, a.valid_life)
                        }
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect();
                out.push((*id, *t1, *t2, hints));
            }
            dp::DhcpOption::IAPD(dp::IAPD { id, t1, t2, opts }) if pd => {
                let hints = opts
                    .iter()
                    .map(|h| match h {
                        dp::DhcpOption::IAPrefix(p) => (
                            p.prefix_ip,
                            p.prefix_len,
                            p.preferred_lifetime,
                            p.valid_lifetime,
                        ),
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect();
                out.push((*id, *t1, *t2, hints));
            }
            _ => {}
        }
    }
    sorted(out)
}

/// Unwrap the RELAY-REPL levels of our output with dhcproto: the `RELAY_MSG` option code is
/// first rewritten to an unassigned one so dhcproto hands its bytes back raw.
fn dp_unwrap(g: &GenReply, wire: &[u8]) -> Result<Vec<u8>, TestCaseError> {
    let mut wire = wire.to_vec();
    for (hop, link, peer, ifid) in &g.relays {
        // Our writer puts the Interface-Id first, then RELAY_MSG.
        let at = 34 + ifid.as_ref().map_or(0, |id| 4 + id.len());
        prop_assert_eq!(&wire[at..at + 2], &opt::RELAY_MSG.to_be_bytes()[..]);
        wire[at..at + 2].copy_from_slice(&0xfff0u16.to_be_bytes());
        let m = dp::RelayMessage::decode(&mut Decoder::new(&wire)).unwrap();
        prop_assert_eq!(m.msg_type(), dp::MessageType::RelayRepl);
        prop_assert_eq!(
            (m.hop_count(), m.link_addr(), m.peer_addr()),
            (*hop, *link, *peer)
        );
        prop_assert_eq!(
            m.opts().get(dp::OptionCode::InterfaceId).cloned(),
            ifid.clone().map(dp::DhcpOption::InterfaceId)
        );
        let inner = m.opts().iter().find_map(|o| match o {
            dp::DhcpOption::Unknown(u) if u16::from(u.code()) == 0xfff0 => Some(u.data().to_vec()),
            _ => None,
        });
        prop_assert_eq!(m.opts().iter().count(), 1 + usize::from(ifid.is_some()));
        wire = inner.unwrap();
    }
    Ok(wire)
}

proptest! {
    /// dhcproto encodes, we parse: every field agrees, through any relay levels.
    #[test]
    fn dhcproto_to_ours(g in gen_msg()) {
        let wire = dhcproto_encode(&g);
        let r = Request::parse(&wire).unwrap();
        prop_assert_eq!(r.relays().len(), g.relays.len());
        for (hop, (h, l, p, id)) in r.relays().iter().zip(&g.relays) {
            prop_assert_eq!((hop.hop_count, hop.link_address, hop.peer_address), (*h, *l, *p));
            prop_assert_eq!(hop.interface_id, id.as_deref());
        }
        prop_assert_eq!((u8::from(r.message_type), r.xid), (g.msg_type, g.xid));
        prop_assert_eq!(r.client_id, g.client_id.as_deref());
        prop_assert_eq!(r.server_id, g.server_id.as_deref());
        prop_assert_eq!(r.oro.map(|_| r.oro_codes().collect::<Vec<_>>()), g.oro.clone());
        prop_assert_eq!((r.elapsed_time, r.rapid_commit, r.reconfigure_accept), (g.elapsed, g.rapid_commit, g.reconf_accept));
        prop_assert_eq!(ours(r.ia_na()), sorted(g.ia_na.clone()));
        prop_assert_eq!(ours(r.ia_pd()), sorted(g.ia_pd.clone()));
        prop_assert_eq!((r.ia_na_ignored(), r.ia_pd_ignored()), (0, 0));
        prop_assert_eq!(client_duid_fast(&wire), Ok(g.client_id.as_deref()));
        fuzz_one(&wire);
    }

    /// We write, dhcproto decodes: every field we wrote is what dhcproto reads.
    #[test]
    fn ours_to_dhcproto(g in gen_reply()) {
        let mut buf = [0u8; 4096];
        let n = write_reply(&g, &mut buf);
        let inner = dp_unwrap(&g, &buf[..n])?;
        let m = dp::Message::decode(&mut Decoder::new(&inner)).unwrap();
        let want_type = if g.advertise { dp::MessageType::Advertise } else { dp::MessageType::Reply };
        prop_assert_eq!((m.msg_type(), m.xid_num()), (want_type, g.xid));
        let o = m.opts();
        prop_assert_eq!(o.get(dp::OptionCode::ServerId), Some(&dp::DhcpOption::ServerId(SDUID.to_vec())));
        prop_assert_eq!(o.get(dp::OptionCode::ClientId), Some(&dp::DhcpOption::ClientId(g.client_id.clone())));
        prop_assert_eq!(dp_ias(o, false), sorted(g.ia_na.clone()));
        prop_assert_eq!(dp_ias(o, true), sorted(g.ia_pd.clone()));
        prop_assert_eq!(
            o.get(dp::OptionCode::StatusCode).cloned(),
            g.status.clone().map(|(c, msg)| dp::DhcpOption::StatusCode(dp::StatusCode { status: c.into(), msg }))
        );
        prop_assert_eq!(o.get(dp::OptionCode::DomainNameServers).cloned(), (!g.dns.is_empty()).then(|| dp::DhcpOption::DomainNameServers(g.dns.clone())));
        prop_assert_eq!(o.get(dp::OptionCode::Preference).cloned(), g.preference.map(dp::DhcpOption::Preference));
        let count = 2 + g.ia_na.len() + g.ia_pd.len() + usize::from(g.status.is_some()) + usize::from(!g.dns.is_empty()) + usize::from(g.preference.is_some());
        prop_assert_eq!(o.iter().count(), count);
    }

    /// We write, we parse: the same message comes back, in order, through the relay levels.
    #[test]
    fn ours_round_trip(g in gen_reply()) {
        let mut buf = [0u8; 4096];
        let n = write_reply(&g, &mut buf);
        let d = descend(&buf[..n], MessageType::RelayRepl).unwrap();
        prop_assert_eq!(d.count, g.relays.len());
        for (hop, (h, l, p, id)) in d.relays.iter().zip(&g.relays) {
            prop_assert_eq!((hop.hop_count, hop.link_address, hop.peer_address, hop.interface_id), (*h, *l, *p, id.as_deref()));
        }
        let r = Request::parse(d.inner).unwrap();
        prop_assert_eq!(r.client_id, Some(&g.client_id[..]));
        let plain = |ias: &[IaRequest]| -> Vec<GenIa> {
            ias.iter().map(|i| (i.iaid, i.t1, i.t2, i.hints().iter().map(|h| (h.address, h.prefix_len, h.preferred, h.valid)).collect())).collect()
        };
        prop_assert_eq!(plain(r.ia_na()), g.ia_na.clone());
        prop_assert_eq!(plain(r.ia_pd()), g.ia_pd.clone());
        let st = find_option(r.options, opt::STATUS_CODE).unwrap().map(|v| {
            let s = StatusOption::new(v).unwrap();
            (s.code(), String::from_utf8(s.message().to_vec()).unwrap())
        });
        prop_assert_eq!(st, g.status.clone());
    }

    /// Arbitrary bytes never panic any parser (the fuzz body asserts the invariants).
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1600)) {
        fuzz_one(&data);
    }

    /// Arbitrary options behind valid headers, relayed or not, never panic.
    #[test]
    fn arbitrary_options_never_panic(
        t in 0u8..16,
        opts in prop::collection::vec((prop::sample::select(vec![1u16, 2, 3, 5, 6, 8, 9, 13, 14, 18, 20, 25, 26, 67, 999]), prop::collection::vec(any::<u8>(), 0..40)), 0..8),
        levels in 0usize..=HOP_COUNT_LIMIT + 1,
    ) {
        let body: Vec<Vec<u8>> = opts.iter().map(|(c, v)| o(*c, v)).collect();
        let mut b = msg(t, 1, &body);
        fuzz_one(&b);
        for i in 0..levels {
            b = relay(12, i as u8, ip(1), ip(2), &[o(opt::RELAY_MSG, &b), body.concat()]);
            fuzz_one(&b);
        }
    }

    /// Mutated and truncated valid messages never panic.
    #[test]
    fn mutated_messages_never_panic(
        g in gen_msg(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = dhcproto_encode(&g);
        for (at, byte) in &edits {
            let i = at.index(wire.len());
            wire[i] = *byte;
        }
        fuzz_one(&wire);
        let cut = cut.index(wire.len() + 1);
        fuzz_one(&wire[..cut]);
    }
}
