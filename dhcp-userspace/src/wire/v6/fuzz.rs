//! The body shared by the cargo-fuzz target and the property tests.

use super::request::descend;
use super::{
    Error, HOP_COUNT_LIMIT, MAX_IA, Message, MessageType, RelayMessage, ReplyWriter, Request,
    StatusCode, client_duid_fast, field, opt,
};

/// The server DUID the fuzz body writes: DUID-LLT (RFC 8415 §11.2), Ethernet.
const SERVER_DUID: [u8; 14] = [0, 1, 0, 1, 0x2a, 0, 0, 1, 0x02, 0, 0x5e, 0, 0x53, 1];

/// Run every parser on `data` and write a reply from what parsed, checking the invariants
/// that tie them together. Panics only when an invariant breaks (a bug), never because the
/// input is malformed.
///
/// Invariants: the option iterators terminate; [`client_duid_fast`] agrees with
/// [`Request::parse`] on every datagram the latter accepts; [`ReplyWriter::for_request`]
/// fails only when the relay levels do not fit its buffer; the reply unwraps through the same
/// relay levels (Interface-Id echoed) to a message with the same transaction id, client id
/// and IAs (IAIDs, T1, T2, addresses and prefixes with their lifetimes) as the request.
///
/// # Panics
/// When one of the invariants above does not hold.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    const OUT: usize = 4096;
    // Each yielded option consumes at least its 4-byte header, so this is bounded.
    if let Ok(m) = Message::new_checked(data) {
        let n = m.option_iter().take_while(Result::is_ok).count();
        assert!(n <= data.len() / 4, "option iterator did not terminate");
    }
    if let Ok(m) = RelayMessage::new_checked(data) {
        let n = m.option_iter().take_while(Result::is_ok).count();
        assert!(n <= data.len() / 4, "option iterator did not terminate");
    }
    let fast = client_duid_fast(data);
    let Ok(request) = Request::parse(data) else {
        return;
    };
    assert_eq!(fast, Ok(request.client_id), "client_duid_fast disagrees");
    assert!(request.relays().len() <= HOP_COUNT_LIMIT);
    assert!(request.ia_na().len() <= MAX_IA && request.ia_pd().len() <= MAX_IA);

    let reply_type = match request.message_type {
        MessageType::Solicit if !request.rapid_commit => MessageType::Advertise,
        _ => MessageType::Reply,
    };
    let need = field::HEADER_LEN
        + request
            .relays()
            .iter()
            .map(|h| {
                field::relay::HEADER_LEN
                    + field::option::HEADER_LEN
                    + h.interface_id
                        .map_or(0, |id| field::option::HEADER_LEN + id.len())
            })
            .sum::<usize>();
    let mut out = [0u8; OUT];
    let mut w = match ReplyWriter::for_request(&mut out, &request, reply_type) {
        Ok(w) => {
            assert!(need <= OUT, "relay levels cannot fit");
            w
        }
        Err(e) => {
            assert_eq!(e, Error::BufferTooSmall);
            assert!(need > OUT, "relay levels fit but were refused");
            return;
        }
    };
    assert_eq!(w.len(), need);
    let wrote_server = w.option(opt::SERVERID, &SERVER_DUID).is_ok();
    let wrote_client = request
        .client_id
        .map(|id| w.option(opt::CLIENTID, id).is_ok());
    let mut na = [false; MAX_IA];
    for (i, ia) in request.ia_na().iter().enumerate() {
        na[i] = w
            .ia_na(ia.iaid, ia.t1, ia.t2, |w| {
                for h in ia.hints() {
                    w.ia_addr(h.address, h.preferred, h.valid, |w| {
                        w.status_code(StatusCode::Success, "ok")
                    })?;
                }
                Ok(())
            })
            .is_ok();
    }
    let mut pd = [false; MAX_IA];
    for (i, ia) in request.ia_pd().iter().enumerate() {
        pd[i] = w
            .ia_pd(ia.iaid, ia.t1, ia.t2, |w| {
                for h in ia.hints() {
                    w.ia_prefix(h.address, h.prefix_len, h.preferred, h.valid, |_| Ok(()))?;
                }
                w.status_code(StatusCode::NoPrefixAvail, "")
            })
            .is_ok();
    }
    assert_eq!(w.open_options(), request.relays().len());
    let len = w.finish();

    let reply = match descend(&out[..len], MessageType::RelayRepl) {
        Ok(d) => d,
        Err(e) => panic!("our reply does not unwrap: {e}"),
    };
    assert_eq!(reply.count, request.relays().len(), "relay levels differ");
    for (got, want) in reply.relays.iter().zip(request.relays()) {
        // RFC 8415 §9, §19.3: header copied, Interface-Id echoed.
        assert_eq!(
            (
                got.hop_count,
                got.link_address,
                got.peer_address,
                got.interface_id
            ),
            (
                want.hop_count,
                want.link_address,
                want.peer_address,
                want.interface_id
            ),
            "relay level differs"
        );
    }
    let r = match Request::parse(reply.inner) {
        Ok(r) => r,
        Err(e) => panic!("our reply's inner message does not parse: {e}"),
    };
    assert_eq!((r.message_type, r.xid), (reply_type, request.xid));
    assert_eq!(r.server_id, wrote_server.then_some(&SERVER_DUID[..]));
    assert_eq!(
        r.client_id,
        request.client_id.filter(|_| wrote_client == Some(true))
    );
    let same = |got: &[super::IaRequest], want: &[super::IaRequest], wrote: &[bool]| {
        let mut got = got.iter();
        for (ia, _) in want.iter().zip(wrote).filter(|(_, w)| **w) {
            let g = got.next().expect("a written IA is missing");
            assert_eq!(
                (g.iaid, g.t1, g.t2, g.hints()),
                (ia.iaid, ia.t1, ia.t2, ia.hints())
            );
        }
        assert!(got.next().is_none(), "an IA appeared that was not written");
    };
    same(r.ia_na(), request.ia_na(), &na);
    same(r.ia_pd(), request.ia_pd(), &pd);
}
