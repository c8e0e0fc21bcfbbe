//! The body shared by the cargo-fuzz target and the property tests.

use std::net::Ipv4Addr;

use super::{
    MessageType, OptionIter, Packet, ReplyHeader, ReplyWriter, Request, Scratch, client_key_fast,
    opt,
};

/// Run every parser on `data` and re-emit a reply from what parsed, checking the invariants
/// that tie them together. Panics only when an invariant breaks (a bug), never because the
/// input is malformed.
///
/// Invariants: the option iterator terminates; [`client_key_fast`] agrees with
/// [`Request::client_key`] on every message [`Request::parse`] accepts; a reply written from
/// a parsed request parses back with the same transaction id, client identifier, relay
/// agent information and option values.
///
/// # Panics
/// When one of the invariants above does not hold.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    const OUT: usize = 1500;
    if let Ok(packet) = Packet::new_checked(data) {
        // Each yielded option consumes at least two bytes, so this is bounded by the size.
        let n = packet.option_iter().take_while(Result::is_ok).count();
        assert!(n <= data.len() / 2, "option iterator did not terminate");
    }
    let fast = client_key_fast(data);
    let mut scratch = Scratch::new();
    let Ok(request) = Request::parse(data, &mut scratch) else {
        return;
    };
    if let Ok(key) = request.client_key() {
        assert_eq!(
            fast,
            Ok(key),
            "client_key_fast disagrees with the full parse"
        );
    }

    let mut header = ReplyHeader::for_request(&request);
    header.yiaddr = request.requested_ip.unwrap_or(Ipv4Addr::new(192, 0, 2, 10));
    let mut out = [0u8; OUT];
    let Ok(mut writer) = ReplyWriter::new(&mut out, &header) else {
        panic!("a 1500-byte buffer holds any header");
    };
    if let Some(size) = request.max_message_size {
        writer = writer.with_max_size(size);
    }
    let reply_type = match request.message_type {
        Some(MessageType::Discover) => MessageType::Offer,
        _ => MessageType::Ack,
    };
    let server = Ipv4Addr::new(192, 0, 2, 1);
    // The first options always fit the 548 bytes a client must accept.
    let fixed = [
        writer.option_u8(opt::MESSAGE_TYPE, reply_type.into()),
        writer.option_ip(opt::SERVER_ID, server),
        writer.option_u32(opt::LEASE_TIME, 3600),
    ];
    assert!(fixed.iter().all(Result::is_ok), "fixed options did not fit");
    let routers = [Ipv4Addr::new(192, 0, 2, 254); 3];
    let wrote_routers = writer.option_ips(opt::ROUTER, &routers).is_ok();
    // RFC 6842 §3: echo the client identifier; RFC 3046 §2.2: echo option 82, last.
    let wrote_id = request
        .client_id
        .map(|id| writer.option(opt::CLIENT_ID, id));
    let wrote_rai = request
        .relay_agent_info
        .map(|rai| writer.option(opt::RELAY_AGENT_INFO, rai));
    let before = writer.len();
    let room = writer.remaining();
    assert!(before + room < OUT, "writer limit exceeds its buffer");
    let len = writer.finish();
    assert!(len >= super::MIN_MESSAGE_LEN && len > before);
    if let Some(size) = request.max_message_size {
        let limit = usize::from(size.max(super::MIN_MAX_MESSAGE_SIZE)) - super::IP_UDP_HEADERS;
        assert!(
            len <= limit.max(super::MIN_MESSAGE_LEN),
            "reply exceeds the client's limit"
        );
    }

    let mut scratch2 = Scratch::new();
    let reply = match Request::parse(&out[..len], &mut scratch2) {
        Ok(r) => r,
        Err(e) => panic!("our own reply does not parse: {e}"),
    };
    assert_eq!(reply.op, super::BOOTREPLY);
    assert_eq!(reply.xid, request.xid);
    assert_eq!(reply.chaddr, request.chaddr);
    assert_eq!(reply.message_type, Some(reply_type));
    assert_eq!(reply.server_id, Some(server));
    assert_eq!(reply.lease_time, Some(3600));
    assert_eq!(reply.yiaddr, header.yiaddr);
    if let Some(Ok(())) = wrote_id {
        assert_eq!(reply.client_id, request.client_id);
    }
    if let Some(Ok(())) = wrote_rai {
        assert_eq!(reply.relay_agent_info, request.relay_agent_info);
        assert_eq!(reply.link_selection, request.link_selection);
    }
    if wrote_routers {
        let mut found = OptionIter::new(&out[..len])
            .filter_map(Result::ok)
            .filter(|&(code, _)| code == opt::ROUTER);
        assert_eq!(found.next().map(|(_, v)| v.len()), Some(12));
    }
    if let Ok(key) = reply.client_key() {
        assert_eq!(
            client_key_fast(&out[..len]),
            Ok(key),
            "fast key of our own reply"
        );
    }
}
