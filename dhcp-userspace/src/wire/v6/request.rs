//! The parsed summary of an incoming DHCPv6 datagram, through its relay encapsulations, and
//! the dispatcher's fast DUID lookup.

use std::net::Ipv6Addr;

use super::packet::ip6;
use super::{
    Error, HOP_COUNT_LIMIT, Ia, IaAddr, IaPrefix, MAX_DUID_LEN, MIN_DUID_LEN, Message, MessageType,
    OptionIter, StatusOption, field, opt,
};

/// `IA_NA` and `IA_PD` options [`Request`] keeps, each; further ones are counted in
/// [`Request::ia_na_ignored`] / [`Request::ia_pd_ignored`] and otherwise ignored.
pub const MAX_IA: usize = 8;

/// Requested addresses or prefixes (hints, RFC 8415 §18.2.1) [`IaRequest`] keeps per IA;
/// further ones are counted in [`IaRequest::hints_ignored`] and otherwise ignored.
pub const MAX_HINTS: usize = 4;

/// One relay level the message came through: the fields of its RELAY-FORW (RFC 8415 §9),
/// kept so the reply can be wrapped in the matching RELAY-REPL (RFC 8415 §19.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayHop<'a> {
    /// `hop-count`, copied into the RELAY-REPL (RFC 8415 §9).
    pub hop_count: u8,
    /// `link-address`: the link the client is on, or unspecified (RFC 8415 §9).
    pub link_address: Ipv6Addr,
    /// `peer-address`: where the relay agent got the message from (RFC 8415 §9).
    pub peer_address: Ipv6Addr,
    /// Interface-Id option (RFC 8415 §21.18), to be echoed in the RELAY-REPL
    /// (RFC 8415 §19.3).
    pub interface_id: Option<&'a [u8]>,
    /// The relay message's whole options area (`RELAY_MSG` included), for options such as
    /// the remote-id or the client link-layer address.
    pub options: &'a [u8],
}

impl RelayHop<'_> {
    const EMPTY: Self = Self {
        hop_count: 0,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: Ipv6Addr::UNSPECIFIED,
        interface_id: None,
        options: &[],
    };
}

/// An address (IAADDR, RFC 8415 §21.6) or prefix (IAPREFIX, RFC 8415 §21.22) a client
/// suggests in an IA, with the lifetimes it suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// The address, or the prefix as sent.
    pub address: Ipv6Addr,
    /// The prefix length; 128 for an address.
    pub prefix_len: u8,
    /// Preferred lifetime, seconds.
    pub preferred: u32,
    /// Valid lifetime, seconds.
    pub valid: u32,
}

impl Hint {
    const EMPTY: Self = Self {
        address: Ipv6Addr::UNSPECIFIED,
        prefix_len: 0,
        preferred: 0,
        valid: 0,
    };
}

/// One `IA_NA` (RFC 8415 §21.4) or `IA_PD` (RFC 8415 §21.21) of a request.
///
/// T1 and T2 are as sent; judging them (RFC 8415 §21.4: T1 > T2 > 0 makes the server
/// ignore the IA's times) is the engine's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaRequest {
    /// `IAID`.
    pub iaid: u32,
    /// `T1`, seconds.
    pub t1: u32,
    /// `T2`, seconds.
    pub t2: u32,
    hints: [Hint; MAX_HINTS],
    hint_count: usize,
    /// Hints beyond [`MAX_HINTS`], counted and ignored.
    pub hints_ignored: usize,
}

impl IaRequest {
    const EMPTY: Self = Self {
        iaid: 0,
        t1: 0,
        t2: 0,
        hints: [Hint::EMPTY; MAX_HINTS],
        hint_count: 0,
        hints_ignored: 0,
    };

    /// The first [`MAX_HINTS`] addresses (`IA_NA`) or prefixes (`IA_PD`), in wire order.
    #[must_use]
    pub fn hints(&self) -> &[Hint] {
        &self.hints[..self.hint_count]
    }

    fn push(&mut self, hint: Hint) {
        if self.hint_count < MAX_HINTS {
            self.hints[self.hint_count] = hint;
            self.hint_count += 1;
        } else {
            self.hints_ignored += 1;
        }
    }
}

/// Up to [`MAX_IA`] IAs of one kind and the count of the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IaList {
    items: [IaRequest; MAX_IA],
    count: usize,
    ignored: usize,
}

impl IaList {
    const EMPTY: Self = Self {
        items: [IaRequest::EMPTY; MAX_IA],
        count: 0,
        ignored: 0,
    };

    fn push(&mut self, ia: IaRequest) {
        if self.count < MAX_IA {
            self.items[self.count] = ia;
            self.count += 1;
        } else {
            self.ignored += 1;
        }
    }
}

/// The relay levels above a message and the message itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Descent<'a> {
    pub(super) relays: [RelayHop<'a>; HOP_COUNT_LIMIT],
    pub(super) count: usize,
    pub(super) inner: &'a [u8],
}

/// Unwrap the relay messages of kind `relay` (RELAY-FORW in requests, RELAY-REPL in
/// replies) around a client/server message, recording each level (RFC 8415 §9, §19).
///
/// Rejects more than [`HOP_COUNT_LIMIT`] levels (RFC 8415 §7.6), a relay message without
/// `RELAY_MSG`, duplicate `RELAY_MSG` or `INTERFACE_ID` options, and a relay message of the
/// other kind anywhere.
pub(super) fn descend(datagram: &[u8], relay: MessageType) -> Result<Descent<'_>, Error> {
    let mut d = Descent {
        relays: [RelayHop::EMPTY; HOP_COUNT_LIMIT],
        count: 0,
        inner: datagram,
    };
    loop {
        let Some(&t) = d.inner.first() else {
            return Err(Error::Truncated { len: 0 });
        };
        let t = MessageType::try_from(t)?;
        if !t.is_relay() {
            return Ok(d);
        }
        if t != relay {
            return Err(Error::UnexpectedMessageType(t.into()));
        }
        if d.count == HOP_COUNT_LIMIT {
            return Err(Error::TooManyRelays);
        }
        let b = d.inner;
        if b.len() < field::relay::HEADER_LEN {
            return Err(Error::Truncated { len: b.len() });
        }
        let options = &b[field::relay::OPTIONS];
        let mut relay_msg = None;
        let mut interface_id = None;
        for item in OptionIter::new(options) {
            match item? {
                (code @ (opt::RELAY_MSG | opt::INTERFACE_ID), _)
                    if (code == opt::RELAY_MSG && relay_msg.is_some())
                        || (code == opt::INTERFACE_ID && interface_id.is_some()) =>
                {
                    return Err(Error::DuplicateOption { code });
                }
                (opt::RELAY_MSG, v) => relay_msg = Some(v),
                (opt::INTERFACE_ID, v) => interface_id = Some(v),
                _ => {}
            }
        }
        d.relays[d.count] = RelayHop {
            hop_count: b[field::relay::HOP_COUNT],
            link_address: ip6(b, field::relay::LINK_ADDRESS),
            peer_address: ip6(b, field::relay::PEER_ADDRESS),
            interface_id,
            options,
        };
        d.count += 1;
        d.inner = relay_msg.ok_or(Error::MissingRelayMessage)?;
    }
}

/// Check a Client or Server Identifier holds a DUID of valid length (RFC 8415 §11.1).
fn duid(code: u16, value: &[u8]) -> Result<&[u8], Error> {
    if (MIN_DUID_LEN..=MAX_DUID_LEN).contains(&value.len()) {
        Ok(value)
    } else {
        Err(Error::BadOptionValue { code })
    }
}

/// Check the `STATUS_CODE` options among `options` (the nested options of an IAADDR or
/// IAPREFIX) and the framing of the rest.
fn check_nested(options: OptionIter<'_>) -> Result<(), Error> {
    for item in options {
        if let (opt::STATUS_CODE, v) = item? {
            StatusOption::new(v)?;
        }
    }
    Ok(())
}

/// Parse an `IA_NA` or `IA_PD` value (`code` says which) with its hints.
fn parse_ia(code: u16, value: &[u8]) -> Result<IaRequest, Error> {
    let ia = Ia::new(code, value)?;
    let mut r = IaRequest {
        iaid: ia.iaid(),
        t1: ia.t1(),
        t2: ia.t2(),
        ..IaRequest::EMPTY
    };
    for item in ia.option_iter() {
        let hint = match (code, item?) {
            // RFC 8415 §21.4: an IA_NA carries IAADDR options.
            (opt::IA_NA, (opt::IAADDR, v)) => {
                let a = IaAddr::new(v)?;
                check_nested(a.option_iter())?;
                Hint {
                    address: a.address(),
                    prefix_len: 128,
                    preferred: a.preferred(),
                    valid: a.valid(),
                }
            }
            // RFC 8415 §21.21: an IA_PD carries IAPREFIX options.
            (opt::IA_PD, (opt::IAPREFIX, v)) => {
                let p = IaPrefix::new(v)?;
                check_nested(p.option_iter())?;
                Hint {
                    address: p.prefix(),
                    prefix_len: p.prefix_len(),
                    preferred: p.preferred(),
                    valid: p.valid(),
                }
            }
            (_, (opt::STATUS_CODE, v)) => {
                StatusOption::new(v)?;
                continue;
            }
            _ => continue,
        };
        r.push(hint);
    }
    Ok(r)
}

/// An incoming DHCPv6 datagram, parsed: the relay levels it came through and the options of
/// the inner client message the protocol engine uses. Every slice borrows from the datagram;
/// everything else is held in fixed-size arrays.
///
/// Limits: at most [`HOP_COUNT_LIMIT`] relay levels (more is an error), [`MAX_IA`] `IA_NA` and
/// [`MAX_IA`] `IA_PD` options (further ones are validated like the others, then only counted,
/// in [`Self::ia_na_ignored`] and [`Self::ia_pd_ignored`]), and
/// [`MAX_HINTS`] hints per IA.
///
/// Options that may appear once: a second CLIENTID, SERVERID, `RELAY_MSG` or `INTERFACE_ID` (in
/// one relay level) is an error; for ORO, `ELAPSED_TIME`, `RAPID_COMMIT` and `RECONF_ACCEPT` the
/// first instance counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    relays: [RelayHop<'a>; HOP_COUNT_LIMIT],
    relay_count: usize,
    /// The inner message's type. Any type except the relay ones; servers answer only the
    /// ones [`MessageType::from_client`] accepts (RFC 8415 §16).
    pub message_type: MessageType,
    /// The inner message's `transaction-id`, 24 bits.
    pub xid: u32,
    /// The inner message, whole.
    pub message: &'a [u8],
    /// The inner message's options area, for options not summarized here.
    pub options: &'a [u8],
    /// CLIENTID (RFC 8415 §21.2): the client's DUID, 3 to 130 bytes.
    pub client_id: Option<&'a [u8]>,
    /// SERVERID (RFC 8415 §21.3): the DUID of the server the client addresses.
    pub server_id: Option<&'a [u8]>,
    /// ORO (RFC 8415 §21.7): requested option codes, 2 bytes each, in the client's order.
    /// See [`Self::oro_codes`].
    pub oro: Option<&'a [u8]>,
    /// `RAPID_COMMIT` present (RFC 8415 §21.14).
    pub rapid_commit: bool,
    /// `ELAPSED_TIME` (RFC 8415 §21.9), hundredths of a second.
    pub elapsed_time: Option<u16>,
    /// `RECONF_ACCEPT` present (RFC 8415 §21.20).
    pub reconfigure_accept: bool,
    ia_na: IaList,
    ia_pd: IaList,
}

impl<'a> Request<'a> {
    /// Parse a DHCPv6 datagram (the UDP payload), descending through RELAY-FORW
    /// encapsulations (RFC 8415 §9) to the client message.
    ///
    /// Rejects deeper nesting than [`HOP_COUNT_LIMIT`], RELAY-REPL anywhere, unknown message
    /// types, malformed option framing at any level of the options it reads, and malformed
    /// values of the options it extracts (including inside IAs).
    pub fn parse(datagram: &'a [u8]) -> Result<Self, Error> {
        let descent = descend(datagram, MessageType::RelayForw)?;
        let msg = Message::new_checked(descent.inner)?;
        let message_type = msg.message_type()?;
        let options = &descent.inner[field::OPTIONS];
        let mut req = Self {
            relays: descent.relays,
            relay_count: descent.count,
            message_type,
            xid: msg.xid(),
            message: descent.inner,
            options,
            client_id: None,
            server_id: None,
            oro: None,
            rapid_commit: false,
            elapsed_time: None,
            reconfigure_accept: false,
            ia_na: IaList::EMPTY,
            ia_pd: IaList::EMPTY,
        };
        let bad = |code| Error::BadOptionValue { code };
        for item in OptionIter::new(options) {
            let (code, value) = item?;
            match code {
                opt::CLIENTID | opt::SERVERID => {
                    let slot = if code == opt::CLIENTID {
                        &mut req.client_id
                    } else {
                        &mut req.server_id
                    };
                    if slot.is_some() {
                        return Err(Error::DuplicateOption { code });
                    }
                    *slot = Some(duid(code, value)?);
                }
                // RFC 8415 §21.7: a list of 2-byte codes.
                opt::ORO if value.len() % 2 != 0 => return Err(bad(code)),
                opt::ORO => {
                    req.oro.get_or_insert(value);
                }
                opt::ELAPSED_TIME => match value {
                    [hi, lo] => {
                        req.elapsed_time
                            .get_or_insert(u16::from_be_bytes([*hi, *lo]));
                    }
                    _ => return Err(bad(code)),
                },
                // RFC 8415 §21.14, §21.20: both have length 0.
                opt::RAPID_COMMIT | opt::RECONF_ACCEPT if !value.is_empty() => {
                    return Err(bad(code));
                }
                opt::RAPID_COMMIT => req.rapid_commit = true,
                opt::RECONF_ACCEPT => req.reconfigure_accept = true,
                opt::IA_NA => {
                    let ia = parse_ia(code, value)?;
                    req.ia_na.push(ia);
                }
                opt::IA_PD => {
                    let ia = parse_ia(code, value)?;
                    req.ia_pd.push(ia);
                }
                _ => {}
            }
        }
        Ok(req)
    }

    /// The relay levels, outermost (the one that reached the server) first; empty when the
    /// client sent the message directly.
    #[must_use]
    pub fn relays(&self) -> &[RelayHop<'a>] {
        &self.relays[..self.relay_count]
    }

    /// The first [`MAX_IA`] `IA_NA` options, in wire order.
    #[must_use]
    pub fn ia_na(&self) -> &[IaRequest] {
        &self.ia_na.items[..self.ia_na.count]
    }

    /// `IA_NA` options beyond [`MAX_IA`], counted and ignored.
    #[must_use]
    pub fn ia_na_ignored(&self) -> usize {
        self.ia_na.ignored
    }

    /// The first [`MAX_IA`] `IA_PD` options, in wire order.
    #[must_use]
    pub fn ia_pd(&self) -> &[IaRequest] {
        &self.ia_pd.items[..self.ia_pd.count]
    }

    /// `IA_PD` options beyond [`MAX_IA`], counted and ignored.
    #[must_use]
    pub fn ia_pd_ignored(&self) -> usize {
        self.ia_pd.ignored
    }

    /// The option codes of the ORO, in order (empty without an ORO).
    pub fn oro_codes(&self) -> impl Iterator<Item = u16> + 'a {
        self.oro
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    /// Whether the ORO asks for option `code` (RFC 8415 §21.7).
    #[must_use]
    pub fn requests_option(&self, code: u16) -> bool {
        self.oro_codes().any(|c| c == code)
    }
}

/// The client's DUID (CLIENTID, RFC 8415 §21.2) with minimal work, for steering the
/// datagram to its worker: descends RELAY-FORW levels through their first `RELAY_MSG` and
/// returns the first CLIENTID of the inner message, `None` when there is none (an
/// INFORMATION-REQUEST may omit it, RFC 8415 §18.2.6).
///
/// Gives the same DUID as [`Request::parse`] on every datagram that parse accepts. It stops
/// reading at what it looks for, so the worker's full parse may still reject the datagram.
pub fn client_duid_fast(datagram: &[u8]) -> Result<Option<&[u8]>, Error> {
    let mut data = datagram;
    let mut levels = 0;
    loop {
        let Some(&t) = data.first() else {
            return Err(Error::Truncated { len: 0 });
        };
        match MessageType::try_from(t)? {
            MessageType::RelayForw => {
                if levels == HOP_COUNT_LIMIT {
                    return Err(Error::TooManyRelays);
                }
                levels += 1;
                let Some(options) = data.get(field::relay::OPTIONS) else {
                    return Err(Error::Truncated { len: data.len() });
                };
                data = super::find_option(options, opt::RELAY_MSG)?
                    .ok_or(Error::MissingRelayMessage)?;
            }
            MessageType::RelayRepl => return Err(Error::UnexpectedMessageType(t)),
            _ => {
                let Some(options) = data.get(field::OPTIONS) else {
                    return Err(Error::Truncated { len: data.len() });
                };
                return super::find_option(options, opt::CLIENTID)?
                    .map(|v| duid(opt::CLIENTID, v))
                    .transpose();
            }
        }
    }
}
