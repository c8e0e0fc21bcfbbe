//! The DHCPv6 wire codec (RFC 8415 §8, §9, §21; RFC 6603 prefix exclude).
//!
//! - [`Message`] and [`RelayMessage`] are zero-copy views over a client/server message
//!   (RFC 8415 §8) and a relay agent/server message (RFC 8415 §9), with checked constructors
//!   and the byte ranges of their fields in [`field`].
//! - [`OptionIter`] walks an options area (RFC 8415 §21.1) with checked lengths; [`Ia`],
//!   [`IaAddr`], [`IaPrefix`] and [`StatusOption`] are typed views over option values that
//!   carry nested options.
//! - [`Request`] is the parsed summary of an incoming datagram: the relay levels it came
//!   through (outermost first) and the inner client message, borrowed from the datagram and
//!   held in fixed-size arrays.
//! - [`client_duid_fast`] finds the client's DUID for the dispatcher with minimal work.
//! - [`ReplyWriter`] emits a message, or a RELAY-REPL chain around one, into a caller's
//!   buffer, with nested options whose lengths are patched when they are closed.
//!
//! Nothing here allocates, and no input bytes make any function panic: malformed input is an
//! [`Error`], whose [`Error::reason`] labels the drop counters.

mod fuzz;
mod options;
mod packet;
mod request;
mod writer;

#[cfg(test)]
mod tests;

#[doc(hidden)]
pub use fuzz::fuzz_one;
pub use options::{Ia, IaAddr, IaPrefix, OptionIter, StatusOption, find_option};
pub use packet::{Message, RelayMessage, field};
pub use request::{Hint, IaRequest, MAX_HINTS, MAX_IA, RelayHop, Request, client_duid_fast};
pub use writer::{MAX_MESSAGE_LEN, MAX_NESTING, OptionHandle, ReplyWriter};

/// The most relay agents a message may pass through (RFC 8415 §7.6). [`Request::parse`]
/// accepts at most this many RELAY-FORW encapsulations and rejects deeper nesting.
pub const HOP_COUNT_LIMIT: usize = 8;

/// UDP port servers and relay agents listen on (RFC 8415 §7.2).
pub const SERVER_PORT: u16 = 547;
/// UDP port clients listen on (RFC 8415 §7.2).
pub const CLIENT_PORT: u16 = 546;

/// Shortest DUID: a 2-byte type code and at least one byte of identifier (RFC 8415 §11.1).
pub const MIN_DUID_LEN: usize = 3;
/// Longest DUID: a 2-byte type code and at most 128 bytes of identifier (RFC 8415 §11.1).
pub const MAX_DUID_LEN: usize = 130;

/// Option codes (RFC 8415 §21 unless noted).
pub mod opt {
    /// Client Identifier (RFC 8415 §21.2).
    pub const CLIENTID: u16 = 1;
    /// Server Identifier (RFC 8415 §21.3).
    pub const SERVERID: u16 = 2;
    /// Identity Association for Non-temporary Addresses (RFC 8415 §21.4).
    pub const IA_NA: u16 = 3;
    /// Identity Association for Temporary Addresses (RFC 8415 §21.5).
    pub const IA_TA: u16 = 4;
    /// IA Address (RFC 8415 §21.6).
    pub const IAADDR: u16 = 5;
    /// Option Request (RFC 8415 §21.7).
    pub const ORO: u16 = 6;
    /// Preference (RFC 8415 §21.8).
    pub const PREFERENCE: u16 = 7;
    /// Elapsed Time, in hundredths of a second (RFC 8415 §21.9).
    pub const ELAPSED_TIME: u16 = 8;
    /// Relay Message (RFC 8415 §21.10).
    pub const RELAY_MSG: u16 = 9;
    /// Authentication (RFC 8415 §21.11).
    pub const AUTH: u16 = 11;
    /// Server Unicast (RFC 8415 §21.12).
    pub const UNICAST: u16 = 12;
    /// Status Code (RFC 8415 §21.13).
    pub const STATUS_CODE: u16 = 13;
    /// Rapid Commit (RFC 8415 §21.14).
    pub const RAPID_COMMIT: u16 = 14;
    /// User Class (RFC 8415 §21.15).
    pub const USER_CLASS: u16 = 15;
    /// Vendor Class (RFC 8415 §21.16).
    pub const VENDOR_CLASS: u16 = 16;
    /// Vendor-specific Information (RFC 8415 §21.17).
    pub const VENDOR_OPTS: u16 = 17;
    /// Interface-Id (RFC 8415 §21.18).
    pub const INTERFACE_ID: u16 = 18;
    /// Reconfigure Message (RFC 8415 §21.19).
    pub const RECONF_MSG: u16 = 19;
    /// Reconfigure Accept (RFC 8415 §21.20).
    pub const RECONF_ACCEPT: u16 = 20;
    /// DNS recursive name servers (RFC 3646 §3).
    pub const DNS_SERVERS: u16 = 23;
    /// Domain search list (RFC 3646 §4).
    pub const DOMAIN_LIST: u16 = 24;
    /// Identity Association for Prefix Delegation (RFC 8415 §21.21).
    pub const IA_PD: u16 = 25;
    /// IA Prefix (RFC 8415 §21.22).
    pub const IAPREFIX: u16 = 26;
    /// Information Refresh Time (RFC 8415 §21.23).
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
    /// Prefix Exclude, nested in IA Prefix (RFC 6603 §4.2).
    pub const PD_EXCLUDE: u16 = 67;
    /// Client link-layer address, added by relay agents (RFC 6939 §4).
    pub const CLIENT_LINKLAYER_ADDR: u16 = 79;
    /// `SOL_MAX_RT` (RFC 8415 §21.24).
    pub const SOL_MAX_RT: u16 = 82;
    /// `INF_MAX_RT` (RFC 8415 §21.25).
    pub const INF_MAX_RT: u16 = 83;
}

/// Errors parsing or emitting a DHCPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than the fixed header of its kind: 4 bytes for a client/server message
    /// (RFC 8415 §8), 34 for a relay message (RFC 8415 §9).
    #[error("message truncated: {len} bytes")]
    Truncated {
        /// Bytes present.
        len: usize,
    },
    /// An option header is cut short, or its length runs past the end of the area that
    /// holds it (RFC 8415 §21.1). `code` is 0 when not even the code was present.
    #[error("option {code} has a bad length")]
    BadOptionLength {
        /// The option code.
        code: u16,
    },
    /// An option value has the wrong shape for its code (RFC 8415 §21).
    #[error("option {code} has a malformed value")]
    BadOptionValue {
        /// The option code.
        code: u16,
    },
    /// An option that may appear only once appears again (RFC 8415 §21.2, §21.3, §21.10,
    /// §21.18).
    #[error("option {code} appears more than once")]
    DuplicateOption {
        /// The option code.
        code: u16,
    },
    /// `msg-type` is not one of RFC 8415 §7.3.
    #[error("unknown DHCPv6 message type {0}")]
    UnknownMessageType(u8),
    /// A known message type where it cannot be: a RELAY-REPL in a request, a client
    /// message where a relay message was expected (RFC 8415 §9), or the reverse.
    #[error("unexpected DHCPv6 message type {0}")]
    UnexpectedMessageType(u8),
    /// More than [`HOP_COUNT_LIMIT`] relay encapsulations (RFC 8415 §7.6).
    #[error("more than {HOP_COUNT_LIMIT} relay levels")]
    TooManyRelays,
    /// A relay message without a Relay Message option (RFC 8415 §9, §21.10).
    #[error("relay message without relay-msg option")]
    MissingRelayMessage,
    /// The writer was asked to close or fill an option that is not the innermost open one,
    /// or to nest deeper than [`MAX_NESTING`].
    #[error("option nesting misuse")]
    BadNesting,
    /// The output buffer has no room for this.
    #[error("buffer too small")]
    BufferTooSmall,
}

impl Error {
    /// A short `snake_case` name for this error, used as a drop-counter label.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadOptionLength { .. } => "bad_option_length",
            Self::BadOptionValue { .. } => "bad_option_value",
            Self::DuplicateOption { .. } => "duplicate_option",
            Self::UnknownMessageType(_) => "unknown_message_type",
            Self::UnexpectedMessageType(_) => "unexpected_message_type",
            Self::TooManyRelays => "too_many_relays",
            Self::MissingRelayMessage => "missing_relay_message",
            Self::BadNesting => "bad_nesting",
            Self::BufferTooSmall => "buffer_too_small",
        }
    }
}

/// DHCPv6 message type, the `msg-type` field (RFC 8415 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// SOLICIT: a client looks for servers.
    Solicit = 1,
    /// ADVERTISE: a server answers a SOLICIT.
    Advertise = 2,
    /// REQUEST: a client asks one server for leases.
    Request = 3,
    /// CONFIRM: a client asks whether its addresses are still on-link.
    Confirm = 4,
    /// RENEW: a client extends leases with the server that granted them.
    Renew = 5,
    /// REBIND: a client extends leases with any server.
    Rebind = 6,
    /// REPLY: a server's answer to most client messages.
    Reply = 7,
    /// RELEASE: a client gives leases back.
    Release = 8,
    /// DECLINE: a client found an address already in use.
    Decline = 9,
    /// RECONFIGURE: a server tells a client to renew or ask for information.
    Reconfigure = 10,
    /// INFORMATION-REQUEST: a client asks for configuration without leases.
    InformationRequest = 11,
    /// RELAY-FORW: a relay agent forwards a message towards servers.
    RelayForw = 12,
    /// RELAY-REPL: a server sends a message back through a relay agent.
    RelayRepl = 13,
}

impl MessageType {
    /// Whether clients send this type to servers (RFC 8415 §7.3, §16): the types a server
    /// answers, as opposed to server and relay messages, which it discards.
    #[must_use]
    pub fn from_client(self) -> bool {
        matches!(
            self,
            Self::Solicit
                | Self::Request
                | Self::Confirm
                | Self::Renew
                | Self::Rebind
                | Self::Release
                | Self::Decline
                | Self::InformationRequest
        )
    }

    /// Whether this is RELAY-FORW or RELAY-REPL, which have the relay header (RFC 8415 §9).
    #[must_use]
    pub fn is_relay(self) -> bool {
        matches!(self, Self::RelayForw | Self::RelayRepl)
    }
}

impl TryFrom<u8> for MessageType {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self, Error> {
        Ok(match v {
            1 => Self::Solicit,
            2 => Self::Advertise,
            3 => Self::Request,
            4 => Self::Confirm,
            5 => Self::Renew,
            6 => Self::Rebind,
            7 => Self::Reply,
            8 => Self::Release,
            9 => Self::Decline,
            10 => Self::Reconfigure,
            11 => Self::InformationRequest,
            12 => Self::RelayForw,
            13 => Self::RelayRepl,
            other => return Err(Error::UnknownMessageType(other)),
        })
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        t as u8
    }
}

/// Status codes of the Status Code option (RFC 8415 §21.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum StatusCode {
    /// Success.
    Success = 0,
    /// Failure, reason unspecified.
    UnspecFail = 1,
    /// The server has no addresses available to assign to the IA(s).
    NoAddrsAvail = 2,
    /// Client record (binding) unavailable.
    NoBinding = 3,
    /// The prefix for the address is not appropriate for the link.
    NotOnLink = 4,
    /// The client must use multicast to talk to the server.
    UseMulticast = 5,
    /// The server has no prefixes available to assign to the `IA_PD`(s).
    NoPrefixAvail = 6,
}

impl StatusCode {
    /// The status code with value `v`, or `None` for codes defined elsewhere or unassigned
    /// (RFC 8415 §21.13 lets other documents define more).
    #[must_use]
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            0 => Self::Success,
            1 => Self::UnspecFail,
            2 => Self::NoAddrsAvail,
            3 => Self::NoBinding,
            4 => Self::NotOnLink,
            5 => Self::UseMulticast,
            6 => Self::NoPrefixAvail,
            _ => return None,
        })
    }
}

impl From<StatusCode> for u16 {
    fn from(s: StatusCode) -> u16 {
        s as u16
    }
}
