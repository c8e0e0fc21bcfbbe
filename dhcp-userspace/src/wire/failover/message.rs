//! Typed failover messages (draft-ietf-dhc-failover-12 §7) over the option codec: each
//! message type parses from a [`Packet`] (borrowing its bytes) and writes into a caller's
//! buffer, with the options draft-12 requires and ISC dhcpd 4.4 checks.
//!
//! What ISC dhcpd 4.4 enforces on what we send (read from its sources and seen on the wire):
//! - CONNECT and CONNECTACK: the header time must be within 60 s of its clock, else it
//!   answers reject-reason 4 (time mismatch); a CONNECT needs relationship-name, MCLT and a
//!   32-byte hash-bucket-assignment.
//! - Every option at most once per message: a duplicate is a protocol error that drops the
//!   connection. So dhcpd neither sends nor accepts several binding update transactions in
//!   one BNDUPD (draft-12 §6.3 allows it); write one address per BNDUPD to dhcpd.
//! - BNDACK: the xid must be the one of the BNDUPD, else the lease stays on dhcpd's ack
//!   queue. Carry only assigned-IP-address (plus reject-reason and message on a reject, as
//!   draft-12 §7.2.1 says): dhcpd 4.4 reads the potential-expiration-time of a BNDACK that
//!   carries a client-identifier, taking 0 when it is absent.
//! - BNDUPD with ACTIVE, EXPIRED or RELEASED needs client-hardware-address (else reject 3);
//!   ABANDONED must carry neither client-hardware-address nor client-identifier.
//!
//! Times in options are absolute seconds since the epoch on the sender's clock (draft-12
//! §6.2); see [`clock_skew`] and [`adjust_time`].

use std::net::Ipv4Addr;

use super::{
    BindingStatus, Error, FailoverOption, Header, MessageType, MessageWriter, Opt, OptionIter,
    Packet, ServerState, opt,
};
use crate::lease::{BindingState, ClientKey, Lease4};

/// Largest message draft-12 allows (§6.1: "The maximum length is 2048 bytes"); a buffer of
/// this size holds any message we write.
pub const MAX_MESSAGE_LEN: usize = 2048;

/// Largest clock difference, in seconds, ISC dhcpd 4.4 accepts in the header time of a
/// CONNECT or CONNECTACK before rejecting the connection with reject-reason 4 (time
/// mismatch). Draft-12 §5.10 lets an implementation require synchronised clocks.
pub const MAX_CONNECT_SKEW: u32 = 60;

/// Bits of the IP-flags option (draft-12 §12.12, numbered from the least significant bit).
pub mod ip_flags {
    /// RESERVED: the address is reserved on the sending server.
    pub const RESERVED: u16 = 0x0001;
    /// BOOTP: the address was allocated to a BOOTP client.
    pub const BOOTP: u16 = 0x0002;
}

/// The difference between the partner's clock and ours: the header time of a message
/// (draft-12 §6.1, the sender's clock at transmission) minus our clock when it arrived.
/// Draft-12 §5.10 asks to keep this delta, smoothed, per partner.
#[must_use]
pub fn clock_skew(header_time: u32, received_at: u32) -> i64 {
    i64::from(header_time) - i64::from(received_at)
}

/// Convert an absolute time from the partner's clock to ours, given the skew from
/// [`clock_skew`] (draft-12 §6.2: times in options are absolute, in the sender's clock).
/// 0 (no time) and `u32::MAX` (infinity) are kept as they are; the result saturates to the
/// range in between.
#[must_use]
pub fn adjust_time(peer_time: u32, skew: i64) -> u32 {
    if peer_time == 0 || peer_time == u32::MAX {
        return peer_time;
    }
    let t = (i64::from(peer_time) - skew).clamp(1, i64::from(u32::MAX - 1));
    u32::try_from(t).unwrap_or(u32::MAX - 1)
}

/// Whether the header time of a CONNECT or CONNECTACK is close enough to our clock for
/// ISC dhcpd's rule ([`MAX_CONNECT_SKEW`]).
#[must_use]
pub fn skew_acceptable(header_time: u32, now: u32) -> bool {
    header_time.abs_diff(now) <= MAX_CONNECT_SKEW
}

/// The first value of every draft-12 option code in a run of options, so that a message
/// reads its options in any order. Codes outside 1..=29 are ignored (draft-12 §6.1: options
/// not understood MUST be ignored); a code seen twice is [`Error::DuplicateOption`]
/// (draft-12 §6.2: "An option that appears twice is not concatenated, but treated as an
/// error").
struct OptTable<'a> {
    values: [Option<&'a [u8]>; 30],
}

impl<'a> OptTable<'a> {
    fn new(options: &'a [u8]) -> Result<Self, Error> {
        let mut values = [None; 30];
        for o in OptionIter::new(options) {
            let o = o?;
            if let Some(slot) = values.get_mut(usize::from(o.code)) {
                if o.code == 0 {
                    continue;
                }
                if slot.is_some() {
                    return Err(Error::DuplicateOption { code: o.code });
                }
                *slot = Some(o.value);
            }
        }
        Ok(Self { values })
    }

    fn raw(&self, code: u16) -> Option<&'a [u8]> {
        self.values.get(usize::from(code)).copied().flatten()
    }

    fn typed(&self, code: u16) -> Result<Option<Opt<'a>>, Error> {
        self.raw(code)
            .map(|value| Opt::parse(FailoverOption { code, value }))
            .transpose()
    }

    fn u32(&self, code: u16) -> Result<Option<u32>, Error> {
        Ok(match self.typed(code)? {
            Some(
                Opt::AddressesTransferred(v)
                | Opt::ClientLastTransactionTime(v)
                | Opt::LeaseExpirationTime(v)
                | Opt::MaxUnackedBndupd(v)
                | Opt::Mclt(v)
                | Opt::PotentialExpirationTime(v)
                | Opt::ReceiveTimer(v)
                | Opt::StartTimeOfState(v),
            ) => Some(v),
            _ => None,
        })
    }

    fn u8(&self, code: u16) -> Result<Option<u8>, Error> {
        Ok(match self.typed(code)? {
            Some(
                Opt::BindingStatus(v)
                | Opt::DelayedService(v)
                | Opt::ProtocolVersion(v)
                | Opt::RejectReason(v)
                | Opt::ServerFlags(v)
                | Opt::ServerState(v)
                | Opt::TlsReply(v)
                | Opt::TlsRequest(v),
            ) => Some(v),
            _ => None,
        })
    }

    fn ip(&self, code: u16) -> Result<Option<Ipv4Addr>, Error> {
        Ok(match self.typed(code)? {
            Some(Opt::AssignedIpAddress(a)) => Some(a),
            _ => None,
        })
    }

    fn ip_flags(&self) -> Result<Option<u16>, Error> {
        Ok(match self.typed(opt::IP_FLAGS)? {
            Some(Opt::IpFlags(v)) => Some(v),
            _ => None,
        })
    }

    fn chaddr(&self) -> Result<Option<(u8, &'a [u8])>, Error> {
        Ok(match self.typed(opt::CLIENT_HARDWARE_ADDRESS)? {
            Some(Opt::ClientHardwareAddress { htype, addr }) => Some((htype, addr)),
            _ => None,
        })
    }

    fn need<T>(v: Option<T>, code: u16) -> Result<T, Error> {
        v.ok_or(Error::MissingOption { code })
    }
}

/// The payload of `p`, borrowed from its buffer rather than from the view, so that parsed
/// messages outlive the [`Packet`].
fn payload<'a>(p: &Packet<&'a [u8]>) -> Result<&'a [u8], Error> {
    let buf: &'a [u8] = p.into_inner();
    let (start, end) = (usize::from(p.payload_offset()), usize::from(p.length()));
    buf.get(start..end).ok_or(Error::Truncated {
        len: buf.len(),
        need: end.max(start),
    })
}

/// The options of a message after a check of its type.
fn table<'a>(p: &Packet<&'a [u8]>, expected: MessageType) -> Result<OptTable<'a>, Error> {
    check_type(p, expected)?;
    OptTable::new(payload(p)?)
}

fn check_type<T: AsRef<[u8]>>(p: &Packet<T>, expected: MessageType) -> Result<(), Error> {
    if p.msg_type() == u8::from(expected) {
        Ok(())
    } else {
        Err(Error::WrongMessageType {
            expected,
            got: p.msg_type(),
        })
    }
}

fn writer(
    buf: &mut [u8],
    msg_type: MessageType,
    time: u32,
    xid: u32,
) -> Result<MessageWriter<'_>, Error> {
    MessageWriter::new(
        buf,
        &Header {
            msg_type,
            time,
            xid,
        },
    )
}

/// CONNECT (draft-12 §7.8, Table 7.8-1): opens the failover connection. ISC dhcpd sends it
/// on every connection it makes or accepts, primary or secondary, and answers one with
/// CONNECTACK then STATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// relationship-name (§12.22): must match the receiver's configuration.
    pub relationship: &'a [u8],
    /// max-unacked-BNDUPD (§12.14): BNDUPDs the sender accepts without acking.
    pub max_unacked: u32,
    /// receive-timer (§12.19): seconds without a message before the sender drops the link.
    pub receive_timer: u32,
    /// vendor-class-identifier (§12.28); dhcpd sends `isc-<version>`.
    pub vendor: &'a [u8],
    /// protocol-version (§12.20), [`super::PROTOCOL_VERSION`].
    pub protocol_version: u8,
    /// TLS-request (§12.27): 0 none, 1 desired, 2 required; absent over TLS.
    pub tls_request: Option<u8>,
    /// MCLT (§12.15), seconds. Draft-12 makes it a MUST; dhcpd rejects a CONNECT without it
    /// (reject-reason 5), so a receiver answers `None` with a reject.
    pub mclt: Option<u32>,
    /// hash-bucket-assignment (§12.11): the RFC 3074 buckets (bit `b` of byte `b / 8`,
    /// most significant bit first) the receiver serves in NORMAL. dhcpd requires it
    /// (reject-reason 18 otherwise).
    pub hba: Option<[u8; 32]>,
}

impl<'a> Connect<'a> {
    /// Parse a CONNECT. relationship-name, max-unacked-BNDUPD, receive-timer and
    /// protocol-version are required ([`Error::MissingOption`]); a missing
    /// vendor-class-identifier reads as empty; a hash-bucket-assignment that is not 32 bytes
    /// is [`Error::BadOptionLength`].
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self, Error> {
        let t = table(p, MessageType::Connect)?;
        let hba = match t.raw(opt::HASH_BUCKET_ASSIGNMENT) {
            None => None,
            Some(v) => Some(<[u8; 32]>::try_from(v).map_err(|_| Error::BadOptionLength {
                code: opt::HASH_BUCKET_ASSIGNMENT,
            })?),
        };
        Ok(Self {
            relationship: OptTable::need(t.raw(opt::RELATIONSHIP_NAME), opt::RELATIONSHIP_NAME)?,
            max_unacked: OptTable::need(t.u32(opt::MAX_UNACKED_BNDUPD)?, opt::MAX_UNACKED_BNDUPD)?,
            receive_timer: OptTable::need(t.u32(opt::RECEIVE_TIMER)?, opt::RECEIVE_TIMER)?,
            vendor: t.raw(opt::VENDOR_CLASS_IDENTIFIER).unwrap_or_default(),
            protocol_version: OptTable::need(t.u8(opt::PROTOCOL_VERSION)?, opt::PROTOCOL_VERSION)?,
            tls_request: t.u8(opt::TLS_REQUEST)?,
            mclt: t.u32(opt::MCLT)?,
            hba,
        })
    }

    /// Write a CONNECT with ISC dhcpd's option order and return its length.
    pub fn write(&self, time: u32, xid: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = writer(buf, MessageType::Connect, time, xid)?;
        w.opt(&Opt::RelationshipName(self.relationship))?;
        w.opt(&Opt::MaxUnackedBndupd(self.max_unacked))?;
        w.opt(&Opt::ReceiveTimer(self.receive_timer))?;
        w.opt(&Opt::VendorClassIdentifier(self.vendor))?;
        w.opt(&Opt::ProtocolVersion(self.protocol_version))?;
        if let Some(v) = self.tls_request {
            w.opt(&Opt::TlsRequest(v))?;
        }
        if let Some(v) = self.mclt {
            w.opt(&Opt::Mclt(v))?;
        }
        if let Some(hba) = &self.hba {
            w.opt(&Opt::HashBucketAssignment(hba))?;
        }
        Ok(w.finish())
    }
}

/// CONNECTACK (draft-12 §7.9, Table 7.9-1): accepts or, with a reject-reason, refuses a
/// CONNECT. Its xid is the CONNECT's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectAck<'a> {
    /// relationship-name (§12.22); empty when a reject lacks it.
    pub relationship: &'a [u8],
    /// max-unacked-BNDUPD (§12.14); draft-12: MUST on accept, MUST NOT on reject (dhcpd
    /// sends it on both).
    pub max_unacked: Option<u32>,
    /// receive-timer (§12.19), like `max_unacked`.
    pub receive_timer: Option<u32>,
    /// vendor-class-identifier (§12.28), like `max_unacked`.
    pub vendor: Option<&'a [u8]>,
    /// protocol-version (§12.20); 0 when a reject lacks it.
    pub protocol_version: u8,
    /// TLS-reply (§12.26): present when the CONNECT had a TLS-request.
    pub tls_reply: Option<u8>,
    /// reject-reason (§12.21, see [`super::reject`]) and message (§12.16, empty when
    /// absent): the connection is refused.
    pub reject: Option<(u8, &'a [u8])>,
}

impl<'a> ConnectAck<'a> {
    /// Parse a CONNECTACK. An accept needs relationship-name and protocol-version
    /// ([`Error::MissingOption`]); a reject needs only its reject-reason.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self, Error> {
        let t = table(p, MessageType::ConnectAck)?;
        let reject = t
            .u8(opt::REJECT_REASON)?
            .map(|r| (r, t.raw(opt::MESSAGE).unwrap_or_default()));
        let relationship = t.raw(opt::RELATIONSHIP_NAME);
        let protocol_version = t.u8(opt::PROTOCOL_VERSION)?;
        let (relationship, protocol_version) = if reject.is_some() {
            (
                relationship.unwrap_or_default(),
                protocol_version.unwrap_or(0),
            )
        } else {
            (
                OptTable::need(relationship, opt::RELATIONSHIP_NAME)?,
                OptTable::need(protocol_version, opt::PROTOCOL_VERSION)?,
            )
        };
        Ok(Self {
            relationship,
            max_unacked: t.u32(opt::MAX_UNACKED_BNDUPD)?,
            receive_timer: t.u32(opt::RECEIVE_TIMER)?,
            vendor: t.raw(opt::VENDOR_CLASS_IDENTIFIER),
            protocol_version,
            tls_reply: t.u8(opt::TLS_REPLY)?,
            reject,
        })
    }

    /// Write a CONNECTACK with ISC dhcpd's option order (the optional fields only when
    /// present; an empty relationship name or a zero protocol version on a reject are left
    /// out, and so is an empty reject message) and return its length.
    pub fn write(&self, time: u32, xid: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = writer(buf, MessageType::ConnectAck, time, xid)?;
        let rejecting = self.reject.is_some();
        if !(rejecting && self.relationship.is_empty()) {
            w.opt(&Opt::RelationshipName(self.relationship))?;
        }
        if let Some(v) = self.max_unacked {
            w.opt(&Opt::MaxUnackedBndupd(v))?;
        }
        if let Some(v) = self.receive_timer {
            w.opt(&Opt::ReceiveTimer(v))?;
        }
        if let Some(v) = self.vendor {
            w.opt(&Opt::VendorClassIdentifier(v))?;
        }
        if !(rejecting && self.protocol_version == 0) {
            w.opt(&Opt::ProtocolVersion(self.protocol_version))?;
        }
        if let Some(v) = self.tls_reply {
            w.opt(&Opt::TlsReply(v))?;
        }
        if let Some((reason, message)) = self.reject {
            w.opt(&Opt::RejectReason(reason))?;
            if !message.is_empty() {
                w.opt(&Opt::Message(message))?;
            }
        }
        Ok(w.finish())
    }
}

/// STATE (draft-12 §7.10, Table 7.10-1): the sender's failover state. Sent after
/// CONNECTACK by both sides and on every state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateMsg {
    /// server-state (§12.24).
    pub state: ServerState,
    /// server-flags (§12.23), see [`super::server_flags`].
    pub flags: u8,
    /// start-time-of-state (§12.25): when the sender entered `state`, its clock.
    pub start_time: u32,
}

impl StateMsg {
    /// Parse a STATE: all three options are required; a server-state draft-12 does not
    /// define is [`Error::BadValue`].
    pub fn parse(p: &Packet<&[u8]>) -> Result<Self, Error> {
        let t = table(p, MessageType::State)?;
        let raw = OptTable::need(t.u8(opt::SERVER_STATE)?, opt::SERVER_STATE)?;
        let state = ServerState::try_from(raw).map_err(|value| Error::BadValue {
            code: opt::SERVER_STATE,
            value,
        })?;
        Ok(Self {
            state,
            flags: OptTable::need(t.u8(opt::SERVER_FLAGS)?, opt::SERVER_FLAGS)?,
            start_time: OptTable::need(t.u32(opt::START_TIME_OF_STATE)?, opt::START_TIME_OF_STATE)?,
        })
    }

    /// Write a STATE and return its length.
    pub fn write(&self, time: u32, xid: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = writer(buf, MessageType::State, time, xid)?;
        w.opt(&Opt::ServerState(self.state.into()))?;
        w.opt(&Opt::ServerFlags(self.flags))?;
        w.opt(&Opt::StartTimeOfState(self.start_time))?;
        Ok(w.finish())
    }
}

/// DISCONNECT (draft-12 §7.12, Table 7.12-1): the last message before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect<'a> {
    /// reject-reason (§12.21), see [`super::reject`].
    pub reason: u8,
    /// message (§12.16): human-readable text, empty when absent.
    pub message: &'a [u8],
}

impl<'a> Disconnect<'a> {
    /// Parse a DISCONNECT; reject-reason is required.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self, Error> {
        let t = table(p, MessageType::Disconnect)?;
        Ok(Self {
            reason: OptTable::need(t.u8(opt::REJECT_REASON)?, opt::REJECT_REASON)?,
            message: t.raw(opt::MESSAGE).unwrap_or_default(),
        })
    }

    /// Write a DISCONNECT (the message option only when non-empty) and return its length.
    pub fn write(&self, time: u32, xid: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = writer(buf, MessageType::Disconnect, time, xid)?;
        w.opt(&Opt::RejectReason(self.reason))?;
        if !self.message.is_empty() {
            w.opt(&Opt::Message(self.message))?;
        }
        Ok(w.finish())
    }
}

/// POOLRESP (draft-12 §7.7): the primary's answer to POOLREQ, with the xid of the POOLREQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolResp {
    /// addresses-transferred (§12.1): addresses moved to the secondary's BACKUP pool.
    pub transferred: u32,
}

impl PoolResp {
    /// Parse a POOLRESP; addresses-transferred is required.
    pub fn parse(p: &Packet<&[u8]>) -> Result<Self, Error> {
        let t = table(p, MessageType::PoolResp)?;
        Ok(Self {
            transferred: OptTable::need(
                t.u32(opt::ADDRESSES_TRANSFERRED)?,
                opt::ADDRESSES_TRANSFERRED,
            )?,
        })
    }

    /// Write a POOLRESP and return its length.
    pub fn write(&self, time: u32, xid: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = writer(buf, MessageType::PoolResp, time, xid)?;
        w.opt(&Opt::AddressesTransferred(self.transferred))?;
        Ok(w.finish())
    }
}

/// Write a message that carries no options: POOLREQ (§7.6), UPDREQALL (§7.4), UPDDONE
/// (§7.5, with the xid of the UPDREQ or UPDREQALL it answers), UPDREQ (§7.3) or CONTACT
/// (§7.11). Returns [`Error::WrongMessageType`] for the other types, which need options.
pub fn write_header_only(
    msg_type: MessageType,
    time: u32,
    xid: u32,
    buf: &mut [u8],
) -> Result<usize, Error> {
    match msg_type {
        MessageType::PoolReq
        | MessageType::UpdReqAll
        | MessageType::UpdDone
        | MessageType::UpdReq
        | MessageType::Contact => Ok(writer(buf, msg_type, time, xid)?.finish()),
        other => Err(Error::WrongMessageType {
            expected: MessageType::Contact,
            got: other.into(),
        }),
    }
}

/// The binding update transactions of a BNDUPD or BNDACK payload (draft-12 §6.3): each
/// starts at an assigned-IP-address option and runs to the next one. When the payload
/// holds a single assigned-IP-address, every option belongs to it whatever the order; with
/// several, options before the first address (message-level ones) are skipped.
#[derive(Debug, Clone)]
struct Transactions<'a> {
    /// The rest of the payload, starting at an assigned-IP-address option.
    rest: &'a [u8],
    /// The payload holds one transaction: `rest` is the whole payload.
    single: bool,
}

impl<'a> Transactions<'a> {
    fn new(payload: &'a [u8]) -> Result<Self, Error> {
        let mut count = 0usize;
        let mut first = None;
        let mut at = 0usize;
        for o in OptionIter::new(payload) {
            let o = o?;
            if o.code == opt::ASSIGNED_IP_ADDRESS {
                count += 1;
                first.get_or_insert(at);
            }
            at += 4 + o.value.len();
        }
        match (count, first) {
            (0, _) | (_, None) => Err(Error::MissingOption {
                code: opt::ASSIGNED_IP_ADDRESS,
            }),
            (1, _) => Ok(Self {
                rest: payload,
                single: true,
            }),
            (_, Some(first)) => Ok(Self {
                rest: &payload[first..],
                single: false,
            }),
        }
    }
}

impl<'a> Iterator for Transactions<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        if self.single {
            return Some(std::mem::take(&mut self.rest));
        }
        // `new` checked the framing: the walk stops at the next address or the end.
        let mut end = 0usize;
        for (i, o) in OptionIter::new(self.rest).enumerate() {
            let Ok(o) = o else {
                end = self.rest.len();
                break;
            };
            if i > 0 && o.code == opt::ASSIGNED_IP_ADDRESS {
                break;
            }
            end += 4 + o.value.len();
        }
        let (this, rest) = self.rest.split_at(end.min(self.rest.len()));
        self.rest = rest;
        Some(this)
    }
}

/// One binding update transaction of a BNDUPD (draft-12 §7.1, Table 7.1-1): the state of
/// one address. Times are absolute on the sender's clock (§7.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingUpdate<'a> {
    /// assigned-IP-address (§12.2).
    pub addr: Ipv4Addr,
    /// binding-status (§12.3).
    pub status: BindingStatus,
    /// client-identifier (§12.4): the client's DHCP option 61 value.
    pub client_id: Option<&'a [u8]>,
    /// client-hardware-address (§12.5): ARP hardware type and address.
    pub chaddr: Option<(u8, &'a [u8])>,
    /// lease-expiration-time (§12.13).
    pub lease_expiry: Option<u32>,
    /// potential-expiration-time (§12.18).
    pub potential_expiry: Option<u32>,
    /// client-last-transaction-time (§12.6).
    pub cltt: Option<u32>,
    /// start-time-of-state (§12.25): when the binding entered `status`.
    pub start_time_of_state: Option<u32>,
    /// IP-flags (§12.12), see [`ip_flags`].
    pub ip_flags: Option<u16>,
}

/// The lease fields carried by a [`BindingUpdate`], for the lease store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseParts {
    /// The address.
    pub addr: Ipv4Addr,
    /// Its binding state.
    pub state: BindingState,
    /// The client: from the client-identifier when present, else from the hardware
    /// address; `None` when the update names no client (FREE or BACKUP addresses).
    pub client: Option<ClientKey>,
    /// The first six bytes of the hardware address (zeros when absent).
    pub chaddr: [u8; 6],
    /// lease-expiration-time.
    pub expires: Option<u32>,
    /// potential-expiration-time: what the partner may promise (draft-12 §7.1.5, the
    /// receiver's received-potential-expiration-time once acked).
    pub potential_expiry: Option<u32>,
    /// client-last-transaction-time.
    pub cltt: Option<u32>,
    /// start-time-of-state.
    pub start_time_of_state: Option<u32>,
}

impl From<BindingState> for BindingStatus {
    fn from(s: BindingState) -> Self {
        match s {
            BindingState::Free => Self::Free,
            BindingState::Active => Self::Active,
            BindingState::Expired => Self::Expired,
            BindingState::Released => Self::Released,
            BindingState::Abandoned => Self::Abandoned,
            BindingState::Reset => Self::Reset,
            BindingState::Backup => Self::Backup,
        }
    }
}

impl From<BindingStatus> for BindingState {
    fn from(s: BindingStatus) -> Self {
        match s {
            BindingStatus::Free => Self::Free,
            BindingStatus::Active => Self::Active,
            BindingStatus::Expired => Self::Expired,
            BindingStatus::Released => Self::Released,
            BindingStatus::Abandoned => Self::Abandoned,
            BindingStatus::Reset => Self::Reset,
            BindingStatus::Backup => Self::Backup,
        }
    }
}

impl<'a> BindingUpdate<'a> {
    /// Parse the only binding update transaction of a BNDUPD. A BNDUPD with several
    /// (draft-12 §6.3) is [`Error::MultipleTransactions`]: use [`BindingUpdate::parse_all`].
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self, Error> {
        check_type(p, MessageType::BndUpd)?;
        let mut tx = Transactions::new(payload(p)?)?;
        if tx.clone().nth(1).is_some() {
            return Err(Error::MultipleTransactions(tx.count()));
        }
        Self::parse_transaction(tx.next().unwrap_or_default())
    }

    /// Every binding update transaction of a BNDUPD (draft-12 §6.3), in order. Fails when
    /// the message is not a BNDUPD, its options are malformed or it holds no
    /// assigned-IP-address; a transaction that fails to parse is an `Err` item, and the
    /// others still parse. [`transaction_addresses`] lists the addresses to reject.
    pub fn parse_all(p: &Packet<&'a [u8]>) -> Result<BindingUpdates<'a>, Error> {
        check_type(p, MessageType::BndUpd)?;
        Ok(BindingUpdates(Transactions::new(payload(p)?)?))
    }

    fn parse_transaction(options: &'a [u8]) -> Result<Self, Error> {
        let t = OptTable::new(options)?;
        let addr = OptTable::need(t.ip(opt::ASSIGNED_IP_ADDRESS)?, opt::ASSIGNED_IP_ADDRESS)?;
        let raw = OptTable::need(t.u8(opt::BINDING_STATUS)?, opt::BINDING_STATUS)?;
        let status = BindingStatus::try_from(raw).map_err(|value| Error::BadValue {
            code: opt::BINDING_STATUS,
            value,
        })?;
        Ok(Self {
            addr,
            status,
            client_id: t.raw(opt::CLIENT_IDENTIFIER),
            chaddr: t.chaddr()?,
            lease_expiry: t.u32(opt::LEASE_EXPIRATION_TIME)?,
            potential_expiry: t.u32(opt::POTENTIAL_EXPIRATION_TIME)?,
            cltt: t.u32(opt::CLIENT_LAST_TRANSACTION_TIME)?,
            start_time_of_state: t.u32(opt::START_TIME_OF_STATE)?,
            ip_flags: t.ip_flags()?,
        })
    }

    /// Append this transaction to a BNDUPD being written: assigned-IP-address first
    /// (draft-12 §6.3, Table 7.1-1 note 3), then the present options in ISC dhcpd's order.
    pub fn append(&self, w: &mut MessageWriter<'_>) -> Result<(), Error> {
        w.opt(&Opt::AssignedIpAddress(self.addr))?;
        w.opt(&Opt::BindingStatus(self.status.into()))?;
        if let Some(id) = self.client_id {
            w.opt(&Opt::ClientIdentifier(id))?;
        }
        if let Some((htype, addr)) = self.chaddr {
            w.opt(&Opt::ClientHardwareAddress { htype, addr })?;
        }
        if let Some(v) = self.lease_expiry {
            w.opt(&Opt::LeaseExpirationTime(v))?;
        }
        if let Some(v) = self.potential_expiry {
            w.opt(&Opt::PotentialExpirationTime(v))?;
        }
        if let Some(v) = self.start_time_of_state {
            w.opt(&Opt::StartTimeOfState(v))?;
        }
        if let Some(v) = self.cltt {
            w.opt(&Opt::ClientLastTransactionTime(v))?;
        }
        if let Some(v) = self.ip_flags {
            w.opt(&Opt::IpFlags(v))?;
        }
        Ok(())
    }

    /// Write a BNDUPD holding this one transaction and return its length.
    pub fn write(&self, time: u32, xid: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = writer(buf, MessageType::BndUpd, time, xid)?;
        self.append(&mut w)?;
        Ok(w.finish())
    }

    /// Whether the receiver should accept this transaction as far as its options go
    /// (draft-12 Table 7.1-1, and what ISC dhcpd rejects): `Err((reject reason, message))`
    /// for a BNDACK when ACTIVE, EXPIRED or RELEASED lacks client-hardware-address, ACTIVE
    /// lacks lease-expiration-time or potential-expiration-time, or ABANDONED names a
    /// client. ISC dhcpd itself sends the expiration times in every state, which draft-12
    /// forbids outside ACTIVE; that is accepted.
    pub fn check(&self) -> Result<(), (u8, &'static str)> {
        use super::reject::{MISSING_BINDING_INFORMATION, UNKNOWN_REASON};
        match self.status {
            BindingStatus::Active | BindingStatus::Expired | BindingStatus::Released
                if self.chaddr.is_none() =>
            {
                Err((
                    MISSING_BINDING_INFORMATION,
                    "BNDUPD without client-hardware-address",
                ))
            }
            BindingStatus::Active if self.lease_expiry.is_none() => Err((
                MISSING_BINDING_INFORMATION,
                "ACTIVE BNDUPD without lease-expiration-time",
            )),
            BindingStatus::Active if self.potential_expiry.is_none() => Err((
                MISSING_BINDING_INFORMATION,
                "ACTIVE BNDUPD without potential-expiration-time",
            )),
            BindingStatus::Abandoned if self.chaddr.is_some() || self.client_id.is_some() => {
                Err((UNKNOWN_REASON, "ABANDONED BNDUPD naming a client"))
            }
            _ => Ok(()),
        }
    }

    /// The transaction with every time moved from the partner's clock to ours
    /// ([`adjust_time`] with the skew of [`clock_skew`]).
    #[must_use]
    pub fn adjusted(self, skew: i64) -> Self {
        let adj = |t: Option<u32>| t.map(|t| adjust_time(t, skew));
        Self {
            lease_expiry: adj(self.lease_expiry),
            potential_expiry: adj(self.potential_expiry),
            cltt: adj(self.cltt),
            start_time_of_state: adj(self.start_time_of_state),
            ..self
        }
    }

    /// The binding update describing `lease`, for a BNDUPD to the partner (draft-12 §7.1.1,
    /// Table 7.1-1).
    ///
    /// - client-identifier when the lease's client key is one; client-hardware-address from
    ///   a hardware key (its type and address), else the lease's six `chaddr` bytes as
    ///   Ethernet (type 1) when not all zero. Neither for ABANDONED (Table 7.1-1 note 2).
    /// - lease-expiration-time and `potential_expiry` only for ACTIVE (MUST there, MUST NOT
    ///   elsewhere).
    /// - client-last-transaction-time when the lease has one; start-time-of-state is the
    ///   CLTT of an ACTIVE lease (when its binding started), else `now`.
    #[must_use]
    pub fn from_lease(lease: &'a Lease4, potential_expiry: u32, now: u32) -> Self {
        let status = BindingStatus::from(lease.state);
        let key = lease.client.as_bytes();
        let abandoned = status == BindingStatus::Abandoned;
        let (client_id, chaddr) = match key {
            _ if abandoned => (None, None),
            [ClientKey::FORM_CLIENT_ID, id @ ..] => {
                let hw = (lease.chaddr != [0; 6]).then_some((1u8, &lease.chaddr[..]));
                (Some(id), hw)
            }
            [ClientKey::FORM_HW, htype, hw @ ..] => (None, Some((*htype, hw))),
            _ => (
                None,
                (lease.chaddr != [0; 6]).then_some((1u8, &lease.chaddr[..])),
            ),
        };
        let active = status == BindingStatus::Active;
        let cltt = (lease.cltt != 0).then_some(lease.cltt);
        Self {
            addr: lease.addr,
            status,
            client_id,
            chaddr,
            lease_expiry: active.then_some(lease.expires),
            potential_expiry: active.then_some(potential_expiry),
            cltt,
            start_time_of_state: Some(if active { lease.cltt.max(1) } else { now }),
            ip_flags: None,
        }
    }

    /// The lease fields of this update, for the store. The client key comes from the
    /// client-identifier when present, else from the hardware address
    /// ([`ClientKey::from_client_id`], [`ClientKey::from_hw`]); a client-identifier longer
    /// than the store keeps is [`Error::OptionTooLong`].
    pub fn to_lease_parts(&self) -> Result<LeaseParts, Error> {
        let client = match (self.client_id, self.chaddr) {
            (Some(id), _) => {
                Some(
                    ClientKey::from_client_id(id).map_err(|_| Error::OptionTooLong {
                        code: opt::CLIENT_IDENTIFIER,
                    })?,
                )
            }
            (None, Some((htype, hw))) => {
                Some(
                    ClientKey::from_hw(htype, hw).map_err(|_| Error::OptionTooLong {
                        code: opt::CLIENT_HARDWARE_ADDRESS,
                    })?,
                )
            }
            (None, None) => None,
        };
        let mut chaddr = [0u8; 6];
        if let Some((_, hw)) = self.chaddr {
            let n = hw.len().min(6);
            chaddr[..n].copy_from_slice(&hw[..n]);
        }
        Ok(LeaseParts {
            addr: self.addr,
            state: self.status.into(),
            client,
            chaddr,
            expires: self.lease_expiry,
            potential_expiry: self.potential_expiry,
            cltt: self.cltt,
            start_time_of_state: self.start_time_of_state,
        })
    }
}

/// Iterator over the binding update transactions of a BNDUPD, see
/// [`BindingUpdate::parse_all`].
#[derive(Debug, Clone)]
pub struct BindingUpdates<'a>(Transactions<'a>);

impl<'a> Iterator for BindingUpdates<'a> {
    type Item = Result<BindingUpdate<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(BindingUpdate::parse_transaction)
    }
}

/// The assigned-IP-address of every well-formed option before a malformed one: the
/// addresses a BNDACK must name (draft-12 §6.3), also when the BNDUPD does not parse.
pub fn transaction_addresses(payload: &[u8]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    OptionIter::new(payload)
        .map_while(Result::ok)
        .filter_map(|o| match Opt::parse(o) {
            Ok(Opt::AssignedIpAddress(a)) => Some(a),
            _ => None,
        })
}

/// One acknowledgement of a BNDACK (draft-12 §7.2, Table 7.2-1): the address, and on a
/// reject its reason and message. The BNDACK's xid is the BNDUPD's (§7.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingAck<'a> {
    /// assigned-IP-address (§12.2) of the acknowledged transaction.
    pub addr: Ipv4Addr,
    /// reject-reason (§12.21, see [`super::reject`]) and message (§12.16, empty when
    /// absent): the update was not taken.
    pub reject: Option<(u8, &'a [u8])>,
}

impl<'a> BindingAck<'a> {
    /// Parse the only acknowledgement of a BNDACK; with several (draft-12 §6.3),
    /// [`Error::MultipleTransactions`]: use [`BindingAck::parse_all`]. Other options
    /// (draft-12: SHOULD NOT appear) are ignored.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self, Error> {
        check_type(p, MessageType::BndAck)?;
        let mut tx = Transactions::new(payload(p)?)?;
        if tx.clone().nth(1).is_some() {
            return Err(Error::MultipleTransactions(tx.count()));
        }
        Self::parse_transaction(tx.next().unwrap_or_default())
    }

    /// Every acknowledgement of a BNDACK, in order.
    pub fn parse_all(p: &Packet<&'a [u8]>) -> Result<BindingAcks<'a>, Error> {
        check_type(p, MessageType::BndAck)?;
        Ok(BindingAcks(Transactions::new(payload(p)?)?))
    }

    fn parse_transaction(options: &'a [u8]) -> Result<Self, Error> {
        let t = OptTable::new(options)?;
        Ok(Self {
            addr: OptTable::need(t.ip(opt::ASSIGNED_IP_ADDRESS)?, opt::ASSIGNED_IP_ADDRESS)?,
            reject: t
                .u8(opt::REJECT_REASON)?
                .map(|r| (r, t.raw(opt::MESSAGE).unwrap_or_default())),
        })
    }

    /// Append this acknowledgement to a BNDACK being written: assigned-IP-address, then on
    /// a reject the reject-reason and the message when non-empty (draft-12 §7.2.1).
    pub fn append(&self, w: &mut MessageWriter<'_>) -> Result<(), Error> {
        w.opt(&Opt::AssignedIpAddress(self.addr))?;
        if let Some((reason, message)) = self.reject {
            w.opt(&Opt::RejectReason(reason))?;
            if !message.is_empty() {
                w.opt(&Opt::Message(message))?;
            }
        }
        Ok(())
    }

    /// Write a BNDACK holding this one acknowledgement and return its length; `xid` must
    /// be the BNDUPD's.
    pub fn write(&self, time: u32, xid: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = writer(buf, MessageType::BndAck, time, xid)?;
        self.append(&mut w)?;
        Ok(w.finish())
    }
}

/// Iterator over the acknowledgements of a BNDACK, see [`BindingAck::parse_all`].
#[derive(Debug, Clone)]
pub struct BindingAcks<'a>(Transactions<'a>);

impl<'a> Iterator for BindingAcks<'a> {
    type Item = Result<BindingAck<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(BindingAck::parse_transaction)
    }
}

/// Any failover message, parsed by its type (draft-12 §6.1).
#[derive(Debug, Clone)]
pub enum Message<'a> {
    /// POOLREQ (§7.6).
    PoolReq,
    /// POOLRESP (§7.7).
    PoolResp(PoolResp),
    /// BNDUPD (§7.1): its transactions, each already checked to parse.
    BndUpd(BindingUpdates<'a>),
    /// BNDACK (§7.2): its acknowledgements, each already checked to parse.
    BndAck(BindingAcks<'a>),
    /// CONNECT (§7.8).
    Connect(Connect<'a>),
    /// CONNECTACK (§7.9).
    ConnectAck(ConnectAck<'a>),
    /// UPDREQALL (§7.4).
    UpdReqAll,
    /// UPDDONE (§7.5).
    UpdDone,
    /// UPDREQ (§7.3).
    UpdReq,
    /// STATE (§7.10).
    State(StateMsg),
    /// CONTACT (§7.11).
    Contact,
    /// DISCONNECT (§7.12).
    Disconnect(Disconnect<'a>),
}

impl<'a> Message<'a> {
    /// Parse `p` as the message its type says. A BNDUPD or BNDACK is an error when any of
    /// its transactions is (use [`BindingUpdate::parse_all`] to answer the others).
    /// Options of header-only messages are ignored (draft-12 §6.1).
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self, Error> {
        Ok(match p.message_type()? {
            MessageType::PoolReq => Self::PoolReq,
            MessageType::PoolResp => Self::PoolResp(PoolResp::parse(p)?),
            MessageType::BndUpd => {
                let all = BindingUpdate::parse_all(p)?;
                if let Some(Err(e)) = all.clone().find(Result::is_err) {
                    return Err(e);
                }
                Self::BndUpd(all)
            }
            MessageType::BndAck => {
                let all = BindingAck::parse_all(p)?;
                if let Some(Err(e)) = all.clone().find(Result::is_err) {
                    return Err(e);
                }
                Self::BndAck(all)
            }
            MessageType::Connect => Self::Connect(Connect::parse(p)?),
            MessageType::ConnectAck => Self::ConnectAck(ConnectAck::parse(p)?),
            MessageType::UpdReqAll => Self::UpdReqAll,
            MessageType::UpdDone => Self::UpdDone,
            MessageType::UpdReq => Self::UpdReq,
            MessageType::State => Self::State(StateMsg::parse(p)?),
            MessageType::Contact => Self::Contact,
            MessageType::Disconnect => Self::Disconnect(Disconnect::parse(p)?),
        })
    }

    /// The message type.
    #[must_use]
    pub fn msg_type(&self) -> MessageType {
        match self {
            Self::PoolReq => MessageType::PoolReq,
            Self::PoolResp(_) => MessageType::PoolResp,
            Self::BndUpd(_) => MessageType::BndUpd,
            Self::BndAck(_) => MessageType::BndAck,
            Self::Connect(_) => MessageType::Connect,
            Self::ConnectAck(_) => MessageType::ConnectAck,
            Self::UpdReqAll => MessageType::UpdReqAll,
            Self::UpdDone => MessageType::UpdDone,
            Self::UpdReq => MessageType::UpdReq,
            Self::State(_) => MessageType::State,
            Self::Contact => MessageType::Contact,
            Self::Disconnect(_) => MessageType::Disconnect,
        }
    }

    /// Write the message and return its length (a BNDUPD or BNDACK with all its
    /// transactions; one whose transaction does not parse writes the ones that do).
    pub fn write(&self, time: u32, xid: u32, buf: &mut [u8]) -> Result<usize, Error> {
        match self {
            Self::PoolResp(m) => m.write(time, xid, buf),
            Self::BndUpd(all) => {
                let mut w = writer(buf, MessageType::BndUpd, time, xid)?;
                for u in all.clone().flatten() {
                    u.append(&mut w)?;
                }
                Ok(w.finish())
            }
            Self::BndAck(all) => {
                let mut w = writer(buf, MessageType::BndAck, time, xid)?;
                for a in all.clone().flatten() {
                    a.append(&mut w)?;
                }
                Ok(w.finish())
            }
            Self::Connect(m) => m.write(time, xid, buf),
            Self::ConnectAck(m) => m.write(time, xid, buf),
            Self::State(m) => m.write(time, xid, buf),
            Self::Disconnect(m) => m.write(time, xid, buf),
            Self::PoolReq | Self::UpdReqAll | Self::UpdDone | Self::UpdReq | Self::Contact => {
                write_header_only(self.msg_type(), time, xid, buf)
            }
        }
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
