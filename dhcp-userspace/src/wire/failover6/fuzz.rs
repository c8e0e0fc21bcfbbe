//! The body shared by the `failover6_parse` cargo-fuzz target and the property tests.

use super::{
    BindingBody, BindingReply6, BindingTimes, BindingUpdate6, Connect6, ConnectReply6, Disconnect6,
    Error, FRAME_PREFIX_LEN, Header, LeaseBinding, Message, MessageType, MessageWriter, Opt,
    State6, frame_len, frame_message,
};

/// Room for the largest frame.
const FRAME_MAX: usize = FRAME_PREFIX_LEN + super::MAX_MESSAGE_LEN;

/// Treat `data` as a failover TCP stream: split it into frames and run every message
/// through the codec. Panics only when an invariant breaks (a bug), never because the input
/// is malformed.
///
/// Invariants, per message: the option iterator terminates within `len / 4 + 1` items; a
/// copy rewritten from the header and the well-formed top-level options (typed where they
/// parse) has the same header and options; a typed message that parses (CONNECT,
/// CONNECTREPLY, STATE, DISCONNECT, BNDUPD, BNDREPLY) emits and parses back equal, its
/// bindings included; converting a binding to a lease record and back does not panic.
///
/// # Panics
/// When one of the invariants above does not hold.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let mut rest = data;
    while let Ok(msg) = frame_message(rest) {
        one_message(msg);
        let Some(n) = frame_len(rest) else {
            panic!("a frame was split without a length");
        };
        assert_eq!(n, FRAME_PREFIX_LEN + msg.len());
        rest = &rest[n..];
    }
}

fn one_message(msg: &[u8]) {
    let Ok(m) = Message::new_checked(msg) else {
        panic!("frame_message returned a message shorter than the header");
    };
    let n = m.option_iter().count();
    assert!(
        n <= m.options().len() / 4 + 1,
        "option iterator did not terminate"
    );
    let Ok(msg_type) = m.message_type() else {
        return;
    };
    rewrite_raw(m, msg_type);
    typed(m, msg_type);
}

fn rewrite_raw(m: Message<&[u8]>, msg_type: MessageType) {
    let header = Header {
        msg_type,
        xid: m.xid(),
        sent_time: m.sent_time(),
    };
    let mut out = vec![0u8; FRAME_PREFIX_LEN + m.message().len()];
    let Ok(mut w) = MessageWriter::new(&mut out, &header) else {
        panic!("a header must fit a buffer of the input's size");
    };
    let mut written = 0usize;
    for o in m.option_iter().map_while(Result::ok) {
        let r = match Opt::parse(o) {
            Ok(typed) => w.opt(&typed),
            Err(_) => w.option(o.code, o.value),
        };
        assert!(r.is_ok(), "an option that fit the input must fit the copy");
        written += 1;
    }
    let Ok(len) = w.finish() else {
        panic!("no option was left open");
    };
    let copy = match frame_message(&out[..len]) {
        Ok(c) => Message::new_unchecked(c),
        Err(e) => panic!("our own frame does not split: {e}"),
    };
    assert_eq!(copy.message_type(), Ok(msg_type));
    assert_eq!((copy.xid(), copy.sent_time()), (m.xid(), m.sent_time()));
    let theirs: Vec<_> = m.option_iter().map_while(Result::ok).collect();
    let ours: Vec<_> = copy
        .option_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            panic!("our own options do not parse: {e}");
        });
    assert_eq!(ours.len(), written);
    assert_eq!(theirs, ours);
}

/// Emit `f` into a fresh buffer and give back the message of the frame.
fn emitted(f: impl FnOnce(&mut [u8]) -> Result<usize, Error>) -> Vec<u8> {
    let mut buf = vec![0u8; FRAME_MAX];
    let n = match f(&mut buf) {
        Ok(n) => n,
        Err(e) => panic!("a parsed message does not emit: {e}"),
    };
    buf.truncate(n);
    buf.drain(..FRAME_PREFIX_LEN);
    buf
}

fn typed(m: Message<&[u8]>, msg_type: MessageType) {
    let (xid, t) = (m.xid(), m.sent_time());
    match msg_type {
        MessageType::Connect => {
            if let Ok(c) = Connect6::parse(m) {
                let b = emitted(|buf| c.emit(buf, xid, t));
                assert_eq!(Connect6::parse(Message::new_unchecked(&b[..])), Ok(c));
            }
        }
        MessageType::ConnectReply => {
            if let Ok(c) = ConnectReply6::parse(m) {
                let b = emitted(|buf| c.emit(buf, xid, t));
                assert_eq!(ConnectReply6::parse(Message::new_unchecked(&b[..])), Ok(c));
            }
        }
        MessageType::State => {
            if let Ok(s) = State6::parse(m) {
                let b = emitted(|buf| s.emit(buf, xid, t));
                assert_eq!(State6::parse(Message::new_unchecked(&b[..])), Ok(s));
            }
        }
        MessageType::Disconnect => {
            if let Ok(d) = Disconnect6::parse(m) {
                let b = emitted(|buf| d.emit(buf, xid, t));
                assert_eq!(Disconnect6::parse(Message::new_unchecked(&b[..])), Ok(d));
            }
        }
        MessageType::BndUpd => {
            if let Ok(u) = BindingUpdate6::parse(m) {
                let b = emitted(|buf| u.emit(buf, xid, t));
                let again = BindingUpdate6::parse(Message::new_unchecked(&b[..]));
                let Ok(again) = again else {
                    panic!("our BNDUPD does not parse: {again:?}");
                };
                same_body(&u.body, &again.body);
                convert(&u.body);
            }
        }
        MessageType::BndReply => {
            if let Ok(r) = BindingReply6::parse(m) {
                let leases_ok = match &r.body {
                    BindingBody::Client(cd) => cd.leases().all(|l| l.is_ok()),
                    BindingBody::Prefix(_) => true,
                };
                let mut buf = vec![0u8; FRAME_MAX];
                let res = r.emit(&mut buf, xid, t);
                assert_eq!(res.is_ok(), leases_ok, "{res:?}");
                if let Ok(n) = res {
                    let again =
                        BindingReply6::parse(Message::new_unchecked(&buf[FRAME_PREFIX_LEN..n]));
                    let Ok(again) = again else {
                        panic!("our BNDREPLY does not parse: {again:?}");
                    };
                    same_body(&r.body, &again.body);
                    convert(&r.body);
                }
            }
        }
        _ => {}
    }
}

fn same_body(a: &BindingBody<'_>, b: &BindingBody<'_>) {
    match (a, b) {
        (BindingBody::Client(x), BindingBody::Client(y)) => {
            assert_eq!(
                (x.duid, x.base_time, x.reconfigure, x.status),
                (y.duid, y.base_time, y.reconfigure, y.status)
            );
            let xs: Vec<_> = x.leases().collect();
            let ys: Vec<_> = y.leases().collect();
            assert_eq!(xs, ys);
        }
        (BindingBody::Prefix(x), BindingBody::Prefix(y)) => assert_eq!(x, y),
        _ => panic!("the body changed kind"),
    }
}

fn convert(body: &BindingBody<'_>) {
    let one = |l: &LeaseBinding<'_>, duid: &[u8], base: u32| {
        if let Ok(lease) = l.to_lease6(duid, base, 1) {
            let times = BindingTimes {
                now: lease.cltt,
                start_time_of_state: lease.cltt,
                partner_lifetime: lease.expires,
                expiration_time: lease.expires,
            };
            let back = LeaseBinding::from_lease6(&lease, &times);
            assert_eq!((back.addr, back.prefix_len), (l.addr, l.prefix_len));
        }
    };
    match body {
        BindingBody::Client(cd) => {
            for l in cd.leases().map_while(Result::ok) {
                one(&l, cd.duid, cd.base_time.unwrap_or(0));
            }
        }
        BindingBody::Prefix(p) => one(p, &[], p.base_time.unwrap_or(0)),
    }
}
