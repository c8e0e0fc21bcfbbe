//! The parsed summary of an incoming DHCP message, and the dispatcher's fast client-key
//! lookup.

use std::net::Ipv4Addr;

use super::{Error, MessageType, OptionIter, Packet, field, opt};
use crate::lease::{ClientKey, LeaseError};

/// Caller-owned buffer where [`Request::parse`] concatenates options that were split into
/// several instances (RFC 3396 §7). Reuse one per worker; it is only written when a message
/// actually carries a split option.
#[derive(Clone)]
pub struct Scratch {
    buf: [u8; Scratch::CAPACITY],
}

impl Scratch {
    /// Bytes available for concatenated options. Larger than the option bytes a
    /// 1500-byte-MTU message can carry (options field plus overloaded `file` and `sname`),
    /// so only jumbo messages can exceed it ([`Error::OptionTooLong`]).
    pub const CAPACITY: usize = 1536;

    /// A zeroed scratch buffer.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            buf: [0; Self::CAPACITY],
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("capacity", &Self::CAPACITY)
            .finish()
    }
}

/// The options [`Request`] extracts; the index of a code here is its slot.
const TRACKED: [u8; 12] = [
    opt::HOSTNAME,
    opt::REQUESTED_IP,
    opt::LEASE_TIME,
    opt::MESSAGE_TYPE,
    opt::SERVER_ID,
    opt::PRL,
    opt::MAX_SIZE,
    opt::VENDOR_CLASS,
    opt::CLIENT_ID,
    opt::RAPID_COMMIT,
    opt::RELAY_AGENT_INFO,
    opt::SUBNET_SELECTION,
];

fn slot_of(code: u8) -> Option<usize> {
    Some(match code {
        opt::HOSTNAME => 0,
        opt::REQUESTED_IP => 1,
        opt::LEASE_TIME => 2,
        opt::MESSAGE_TYPE => 3,
        opt::SERVER_ID => 4,
        opt::PRL => 5,
        opt::MAX_SIZE => 6,
        opt::VENDOR_CLASS => 7,
        opt::CLIENT_ID => 8,
        opt::RAPID_COMMIT => 9,
        opt::RELAY_AGENT_INFO => 10,
        opt::SUBNET_SELECTION => 11,
        _ => return None,
    })
}

/// Where the value of one tracked option is.
#[derive(Clone, Copy, Default)]
struct Slot<'a> {
    /// The first instance, borrowed from the message.
    first: Option<&'a [u8]>,
    /// Number of instances.
    count: usize,
    /// Sum of the instances' lengths.
    total: usize,
    /// Start of the concatenation in the scratch buffer (when `count > 1`).
    off: usize,
}

/// An incoming DHCP message, parsed: the header fields and the options the protocol engine
/// uses. Every slice borrows from the message or from the [`Scratch`] given to
/// [`Request::parse`].
///
/// Each option value is the concatenation of all its instances, in the order RFC 3396 §7
/// prescribes (options field, `file`, `sname`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `op` as sent; 1 (BOOTREQUEST) from clients and relays. See [`Request::expect_op`].
    pub op: u8,
    /// Hardware address type.
    pub htype: u8,
    /// Hardware address length, at most 16.
    pub hlen: u8,
    /// Relay hops.
    pub hops: u8,
    /// Transaction id.
    pub xid: u32,
    /// Seconds since the client began.
    pub secs: u16,
    /// Raw flags.
    pub flags: u16,
    /// The broadcast bit of `flags` (RFC 2131 §2).
    pub broadcast: bool,
    /// Client IP address.
    pub ciaddr: Ipv4Addr,
    /// "Your" IP address.
    pub yiaddr: Ipv4Addr,
    /// Relay agent IP address.
    pub giaddr: Ipv4Addr,
    /// The whole 16-byte `chaddr` field.
    pub chaddr: [u8; 16],
    /// Option 53 (RFC 2132 §9.6); `None` for a plain BOOTP message.
    pub message_type: Option<MessageType>,
    /// Option 61 (RFC 2132 §9.14), at least 2 bytes.
    pub client_id: Option<&'a [u8]>,
    /// Option 50 (RFC 2132 §9.1).
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54 (RFC 2132 §9.7).
    pub server_id: Option<Ipv4Addr>,
    /// Option 51 (RFC 2132 §9.2), seconds.
    pub lease_time: Option<u32>,
    /// Option 55 (RFC 2132 §9.8): requested option codes, in the client's order.
    pub parameter_request_list: Option<&'a [u8]>,
    /// Option 57 (RFC 2132 §9.10), as sent (values below 576 are the writer's to clamp).
    pub max_message_size: Option<u16>,
    /// Option 12 (RFC 2132 §3.14), raw bytes.
    pub hostname: Option<&'a [u8]>,
    /// Option 60 (RFC 2132 §9.13), raw bytes.
    pub vendor_class: Option<&'a [u8]>,
    /// Option 82, the raw value, to be echoed back unchanged (RFC 3046 §2.2).
    pub relay_agent_info: Option<&'a [u8]>,
    /// Sub-option 5 of option 82 (RFC 3527 §3): the link the client is on.
    pub link_selection: Option<Ipv4Addr>,
    /// Option 118 (RFC 3011 §3): the subnet to allocate from.
    pub subnet_selection: Option<Ipv4Addr>,
    /// Option 80 present (RFC 4039 §4).
    pub rapid_commit: bool,
}

/// A four-byte option value, or `BadOptionValue`.
fn quad(code: u8, value: &[u8]) -> Result<[u8; 4], Error> {
    value.try_into().map_err(|_| Error::BadOptionValue { code })
}

fn ip4(code: u8, value: &[u8]) -> Result<Ipv4Addr, Error> {
    quad(code, value).map(Ipv4Addr::from)
}

fn u32_of(code: u8, value: &[u8]) -> Result<u32, Error> {
    quad(code, value).map(u32::from_be_bytes)
}

/// Walk the sub-options of option 82 (RFC 3046 §2.0: code, length, value; no PAD or END)
/// and return the link selection sub-option (RFC 3527 §3: exactly 4 bytes).
fn relay_link_selection(v: &[u8]) -> Result<Option<Ipv4Addr>, Error> {
    const BAD: Error = Error::BadOptionValue {
        code: opt::RELAY_AGENT_INFO,
    };
    let mut link = None;
    let mut rest = v;
    while let [code, len, tail @ ..] = rest {
        let len = usize::from(*len);
        if tail.len() < len {
            return Err(BAD);
        }
        let (value, after) = tail.split_at(len);
        if *code == opt::relay::LINK_SELECTION && link.is_none() {
            link = Some(ip4(opt::RELAY_AGENT_INFO, value)?);
        }
        rest = after;
    }
    if rest.is_empty() { Ok(link) } else { Err(BAD) }
}

impl<'a> Request<'a> {
    /// Parse a DHCP message (the UDP payload).
    ///
    /// Rejects a message shorter than the header and cookie, a bad cookie (RFC 2131 §3),
    /// `hlen` above 16, malformed option framing, and malformed values of the options it
    /// extracts. It does not judge `op`: see [`Self::expect_op`].
    pub fn parse(message: &'a [u8], scratch: &'a mut Scratch) -> Result<Self, Error> {
        let packet = Packet::new_checked(message)?;
        let hlen = packet.hlen();
        if usize::from(hlen) > field::CHADDR.len() {
            return Err(Error::BadHlen(hlen));
        }

        // Pass 1: locate every tracked option and count its instances.
        let mut slots = [Slot::default(); TRACKED.len()];
        let mut split = false;
        for item in OptionIter::new(message) {
            let (code, value) = item?;
            if let Some(i) = slot_of(code) {
                let s = &mut slots[i];
                if s.first.is_none() {
                    s.first = Some(value);
                } else {
                    split = true;
                }
                s.count += 1;
                s.total += value.len();
            }
        }

        // Pass 2, only when some option came in several instances: RFC 3396 §7, concatenate
        // all instances of a code in order into the scratch buffer.
        if split {
            let mut off = 0;
            for (i, s) in slots.iter_mut().enumerate() {
                if s.count > 1 {
                    s.off = off;
                    off += s.total;
                    if off > Scratch::CAPACITY {
                        return Err(Error::OptionTooLong { code: TRACKED[i] });
                    }
                }
            }
            let mut cursor = slots.map(|s| s.off);
            for item in OptionIter::new(message) {
                let (code, value) = item?;
                if let Some(i) = slot_of(code).filter(|&i| slots[i].count > 1) {
                    let at = cursor[i];
                    scratch.buf[at..at + value.len()].copy_from_slice(value);
                    cursor[i] = at + value.len();
                }
            }
        }
        let scratch: &'a Scratch = scratch;
        let value = move |code: u8| -> Option<&'a [u8]> {
            let s = slot_of(code).map(|i| slots[i])?;
            match s.count {
                0 => None,
                1 => s.first,
                _ => Some(&scratch.buf[s.off..s.off + s.total]),
            }
        };

        let message_type = match value(opt::MESSAGE_TYPE) {
            None => None,
            Some(&[t]) => Some(MessageType::try_from(t)?),
            Some(_) => {
                return Err(Error::BadOptionValue {
                    code: opt::MESSAGE_TYPE,
                });
            }
        };
        let client_id = value(opt::CLIENT_ID);
        // RFC 2132 §9.14: the minimum length of a client identifier is 2.
        if client_id.is_some_and(|id| id.len() < 2) {
            return Err(Error::BadOptionValue {
                code: opt::CLIENT_ID,
            });
        }
        let max_message_size = match value(opt::MAX_SIZE) {
            None => None,
            Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
            Some(_) => {
                return Err(Error::BadOptionValue {
                    code: opt::MAX_SIZE,
                });
            }
        };
        let rapid_commit = match value(opt::RAPID_COMMIT) {
            None => false,
            // RFC 4039 §4: the option has length 0.
            Some([]) => true,
            Some(_) => {
                return Err(Error::BadOptionValue {
                    code: opt::RAPID_COMMIT,
                });
            }
        };
        let relay_agent_info = value(opt::RELAY_AGENT_INFO);
        let link_selection = match relay_agent_info {
            Some(v) => relay_link_selection(v)?,
            None => None,
        };
        let ip_opt = |code| value(code).map(|v| ip4(code, v)).transpose();

        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(packet.chaddr());
        Ok(Self {
            op: packet.op(),
            htype: packet.htype(),
            hlen,
            hops: packet.hops(),
            xid: packet.xid(),
            secs: packet.secs(),
            flags: packet.flags(),
            broadcast: packet.broadcast(),
            ciaddr: packet.ciaddr(),
            yiaddr: packet.yiaddr(),
            giaddr: packet.giaddr(),
            chaddr,
            message_type,
            client_id,
            requested_ip: ip_opt(opt::REQUESTED_IP)?,
            server_id: ip_opt(opt::SERVER_ID)?,
            lease_time: value(opt::LEASE_TIME)
                .map(|v| u32_of(opt::LEASE_TIME, v))
                .transpose()?,
            parameter_request_list: value(opt::PRL),
            max_message_size,
            hostname: value(opt::HOSTNAME),
            vendor_class: value(opt::VENDOR_CLASS),
            relay_agent_info,
            link_selection,
            subnet_selection: ip_opt(opt::SUBNET_SELECTION)?,
            rapid_commit,
        })
    }

    /// Reject the message unless its `op` is `op` (RFC 2131 §4.1: a server handles
    /// BOOTREQUEST, 1, and silently drops the rest).
    pub fn expect_op(&self, op: u8) -> Result<(), Error> {
        if self.op == op {
            Ok(())
        } else {
            Err(Error::BadOp(self.op))
        }
    }

    /// The client hardware address proper: the first `hlen` bytes of `chaddr`.
    #[must_use]
    pub fn client_hw(&self) -> &[u8] {
        &self.chaddr[..usize::from(self.hlen)]
    }

    /// The client's identity (RFC 2131 §4.2): option 61 when present, else `htype` and the
    /// hardware address.
    pub fn client_key(&self) -> Result<ClientKey, LeaseError> {
        match self.client_id {
            Some(id) => ClientKey::from_client_id(id),
            None => ClientKey::from_hw(self.htype, self.client_hw()),
        }
    }
}

/// The client key of a message with minimal work, for steering it to its worker.
///
/// Scans only the options field for option 61 and gives the same key as
/// [`Request::client_key`] on every message [`Request::parse`] accepts. When the message
/// uses option overload or splits option 61 (RFC 3396), it falls back to the full parse.
/// It checks the header, the cookie, `hlen` and the option framing it walks; the worker's
/// full parse may still reject the message for other reasons.
pub fn client_key_fast(message: &[u8]) -> Result<ClientKey, Error> {
    let packet = Packet::new_checked(message)?;
    let hlen = packet.hlen();
    if usize::from(hlen) > field::CHADDR.len() {
        return Err(Error::BadHlen(hlen));
    }
    let mut client_id = None;
    for item in packet.option_iter() {
        match item? {
            (opt::CLIENT_ID, _) if client_id.is_some() => return client_key_slow(message),
            (opt::CLIENT_ID, v) => client_id = Some(v),
            (opt::OVERLOAD, _) => return client_key_slow(message),
            _ => {}
        }
    }
    let key = match client_id {
        // RFC 2132 §9.14: at least 2 bytes; a single instance is at most 255, so it fits.
        Some(id) if id.len() < 2 => {
            return Err(Error::BadOptionValue {
                code: opt::CLIENT_ID,
            });
        }
        Some(id) => ClientKey::from_client_id(id),
        None => ClientKey::from_hw(packet.htype(), packet.client_hw()),
    };
    key.map_err(|_| Error::OptionTooLong {
        code: opt::CLIENT_ID,
    })
}

fn client_key_slow(message: &[u8]) -> Result<ClientKey, Error> {
    let mut scratch = Scratch::new();
    let request = Request::parse(message, &mut scratch)?;
    request.client_key().map_err(|_| Error::OptionTooLong {
        code: opt::CLIENT_ID,
    })
}
