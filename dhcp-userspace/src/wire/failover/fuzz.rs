//! The body shared by a cargo-fuzz target and the property tests.

use super::{Header, Message, MessageWriter, Opt, Packet, frame_len};

/// Parse `data` as a failover message, decode every option, write the message back from
/// what parsed, and check that the copy parses to the same thing. Panics only when an
/// invariant breaks (a bug), never because the input is malformed.
///
/// Invariants: [`frame_len`] agrees with [`Packet::length`]; the option iterator terminates
/// within `len / 4` items; a message rewritten from the parsed header, additional header
/// and well-formed options is no longer than the input (as long when every option is
/// well-formed) and parses back with the same fields and the same options, in order.
///
/// # Panics
/// When one of the invariants above does not hold.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    assert_eq!(frame_len(data), Some(usize::from(packet.length())));
    let n = packet.option_iter().count();
    assert!(
        n <= packet.payload().len() / 4 + 1,
        "option iterator did not terminate"
    );
    let Ok(msg_type) = packet.message_type() else {
        return;
    };
    typed_round_trip(&packet);
    let header = Header {
        msg_type,
        time: packet.time(),
        xid: packet.xid(),
    };
    // The copy holds the same header and at most the same options: the input's length.
    let mut out = vec![0u8; usize::from(packet.length())];
    let Ok(mut w) =
        MessageWriter::with_additional_header(&mut out, &header, packet.additional_header())
    else {
        panic!("a checked header must be writable");
    };
    let mut written = 0usize;
    for o in packet.option_iter().map_while(Result::ok) {
        let parsed = Opt::parse(o);
        let r = match parsed {
            Ok(typed) => w.opt(&typed),
            Err(_) => w.option(o.code, o.value),
        };
        assert!(r.is_ok(), "an option that fit the input must fit the copy");
        written += 1;
    }
    let len = w.finish();
    // A malformed trailing option is dropped from the copy; otherwise it is the same size.
    let whole = usize::from(packet.length());
    if packet.option_iter().all(|o| o.is_ok()) {
        assert_eq!(len, whole, "the copy differs in length");
    } else {
        assert!(len < whole, "the copy is longer");
    }
    let copy = match Packet::new_checked(&out[..len]) {
        Ok(p) => p,
        Err(e) => panic!("our own message does not parse: {e}"),
    };
    assert_eq!(copy.message_type(), Ok(msg_type));
    assert_eq!(copy.time(), packet.time());
    assert_eq!(copy.xid(), packet.xid());
    assert_eq!(copy.additional_header(), packet.additional_header());
    let mut theirs = packet.option_iter().map_while(Result::ok);
    let mut ours = copy.option_iter();
    for _ in 0..written {
        let (Some(a), Some(Ok(b))) = (theirs.next(), ours.next()) else {
            panic!("option count differs");
        };
        assert_eq!(a, b);
        assert_eq!(Opt::parse(a), Opt::parse(b));
    }
    assert!(ours.next().is_none(), "the copy has extra options");
}

/// The typed-message invariant of [`fuzz_one`].
fn typed_round_trip(packet: &Packet<&[u8]>) {
    let Ok(m) = Message::parse(packet) else {
        return;
    };
    assert_eq!(m.msg_type(), packet.message_type().unwrap_or(m.msg_type()));
    // A CONNECT without vendor-class-identifier gains an empty one (4 bytes).
    let mut out = vec![0u8; usize::from(packet.length()) + 4];
    let n = match m.write(packet.time(), packet.xid(), &mut out) {
        Ok(n) => n,
        Err(e) => panic!("a parsed message does not write back: {e}"),
    };
    let copy = match Packet::new_checked(&out[..n]) {
        Ok(p) => p,
        Err(e) => panic!("our typed message does not parse: {e}"),
    };
    let again = match Message::parse(&copy) {
        Ok(m) => m,
        Err(e) => panic!("our typed message does not parse as its type: {e}"),
    };
    let mut out2 = vec![0u8; n];
    let n2 = match again.write(copy.time(), copy.xid(), &mut out2) {
        Ok(n) => n,
        Err(e) => panic!("a rewritten message does not write back: {e}"),
    };
    assert_eq!(&out[..n], &out2[..n2], "typed rewrite is not stable");
}
