//! The DHCP (IPv4) wire codec (RFC 2131 §2, §3; RFC 2132 options; RFC 3396 long options).
//!
//! - [`Packet`] is a zero-copy view over a BOOTP/DHCP message with a checked constructor
//!   and the byte ranges of every header field in [`field`].
//! - [`OptionIter`] walks the options in the order RFC 2131 §4.1 prescribes, honouring
//!   option overload (option 52): the `options` field, then `file`, then `sname`.
//! - [`Request`] is the parsed summary of an incoming message: the fields and options the
//!   protocol engine needs, borrowed from the packet (and from a caller-owned [`Scratch`]
//!   when RFC 3396 made an option appear in several instances).
//! - [`client_key_fast`] finds the client identity for the dispatcher with minimal work.
//! - [`ReplyWriter`] emits a message into a caller's buffer.
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
pub use options::OptionIter;
pub use packet::{Packet, field};
pub use request::{Request, Scratch, client_key_fast};
pub use writer::{IP_UDP_HEADERS, MIN_MAX_MESSAGE_SIZE, MIN_MESSAGE_LEN, ReplyHeader, ReplyWriter};

/// BOOTP `op` of a message from a client (RFC 951 §3, RFC 2131 §2).
pub const BOOTREQUEST: u8 = 1;
/// BOOTP `op` of a message from a server (RFC 951 §3, RFC 2131 §2).
pub const BOOTREPLY: u8 = 2;

/// The magic cookie 99.130.83.99 that opens the options field (RFC 2131 §3, RFC 1497).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Flag bit asking the server to broadcast its reply (RFC 2131 §2, figure 2).
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Option codes (RFC 2132 unless noted).
pub mod opt {
    /// Pad: a single byte with no length, used for alignment (RFC 2132 §3.1).
    pub const PAD: u8 = 0;
    /// Subnet mask (RFC 2132 §3.3).
    pub const SUBNET_MASK: u8 = 1;
    /// Routers (RFC 2132 §3.5).
    pub const ROUTER: u8 = 3;
    /// Domain name servers (RFC 2132 §3.8).
    pub const DNS: u8 = 6;
    /// Host name (RFC 2132 §3.14).
    pub const HOSTNAME: u8 = 12;
    /// Domain name (RFC 2132 §3.17).
    pub const DOMAIN_NAME: u8 = 15;
    /// Broadcast address (RFC 2132 §5.3).
    pub const BROADCAST: u8 = 28;
    /// Requested IP address (RFC 2132 §9.1).
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time (RFC 2132 §9.2).
    pub const LEASE_TIME: u8 = 51;
    /// Option overload (RFC 2132 §9.3).
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type (RFC 2132 §9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier (RFC 2132 §9.7).
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list (RFC 2132 §9.8).
    pub const PRL: u8 = 55;
    /// Message (RFC 2132 §9.9).
    pub const MESSAGE: u8 = 56;
    /// Maximum DHCP message size (RFC 2132 §9.10).
    pub const MAX_SIZE: u8 = 57;
    /// Renewal (T1) time value (RFC 2132 §9.11).
    pub const RENEWAL_T1: u8 = 58;
    /// Rebinding (T2) time value (RFC 2132 §9.12).
    pub const REBINDING_T2: u8 = 59;
    /// Vendor class identifier (RFC 2132 §9.13).
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier (RFC 2132 §9.14).
    pub const CLIENT_ID: u8 = 61;
    /// Rapid commit (RFC 4039 §4).
    pub const RAPID_COMMIT: u8 = 80;
    /// Relay agent information (RFC 3046 §2.0).
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// Subnet selection (RFC 3011 §3).
    pub const SUBNET_SELECTION: u8 = 118;
    /// End of the options in an area (RFC 2132 §3.2).
    pub const END: u8 = 255;

    /// Relay agent information sub-option codes (RFC 3046 §2.0).
    pub mod relay {
        /// Agent circuit ID (RFC 3046 §2.0).
        pub const CIRCUIT_ID: u8 = 1;
        /// Agent remote ID (RFC 3046 §2.0).
        pub const REMOTE_ID: u8 = 2;
        /// Link selection (RFC 3527 §3).
        pub const LINK_SELECTION: u8 = 5;
    }

    /// Relay sub-option link selection (RFC 3527 §3), re-exported at the top of `opt`.
    pub const LINK_SELECTION: u8 = relay::LINK_SELECTION;
}

/// Errors parsing or emitting a DHCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than the fixed BOOTP header plus the magic cookie (RFC 2131 §3).
    #[error("message truncated: {len} bytes, need at least {}", field::MIN_LEN)]
    Truncated {
        /// Bytes present.
        len: usize,
    },
    /// The four bytes after the header are not 99.130.83.99 (RFC 2131 §3).
    #[error("bad magic cookie")]
    BadCookie,
    /// `op` is not the one the caller expects (RFC 2131 §2).
    #[error("unexpected op {0}")]
    BadOp(u8),
    /// `hlen` is larger than the 16-byte `chaddr` field (RFC 2131 §2).
    #[error("hardware address length {0} exceeds 16")]
    BadHlen(u8),
    /// An option's length byte is missing or runs past the end of its area (RFC 2131 §4.1).
    #[error("option {code} has a bad length")]
    BadOptionLength {
        /// The option code.
        code: u8,
    },
    /// A fixed-size or structured option has a value of the wrong shape (RFC 2132).
    #[error("option {code} has a malformed value")]
    BadOptionValue {
        /// The option code.
        code: u8,
    },
    /// Option overload (52) has a value other than 1, 2 or 3, or appears more than once
    /// (RFC 2132 §9.3).
    #[error("bad option overload")]
    BadOverload,
    /// Option 53 carries a message type this server does not know (RFC 2132 §9.6).
    #[error("unknown DHCP message type {0}")]
    UnknownMessageType(u8),
    /// The concatenation of a split option (RFC 3396) does not fit the scratch buffer, or a
    /// client identifier is longer than a client key can hold.
    #[error("option {code} is too long")]
    OptionTooLong {
        /// The option code.
        code: u8,
    },
    /// PAD or END given to the writer as an option with a value.
    #[error("option code {0} cannot carry a value")]
    ReservedCode(u8),
    /// The output buffer (or the client's maximum message size) has no room for this.
    #[error("buffer too small")]
    BufferTooSmall,
}

impl Error {
    /// A short `snake_case` name for this error, used as a drop-counter label.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadCookie => "bad_cookie",
            Self::BadOp(_) => "bad_op",
            Self::BadHlen(_) => "bad_hlen",
            Self::BadOptionLength { .. } => "bad_option_length",
            Self::BadOptionValue { .. } => "bad_option_value",
            Self::BadOverload => "bad_overload",
            Self::UnknownMessageType(_) => "unknown_message_type",
            Self::OptionTooLong { .. } => "option_too_long",
            Self::ReservedCode(_) => "reserved_code",
            Self::BufferTooSmall => "buffer_too_small",
        }
    }
}

/// DHCP message type, the value of option 53 (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// DHCPDISCOVER.
    Discover = 1,
    /// DHCPOFFER.
    Offer = 2,
    /// DHCPREQUEST.
    Request = 3,
    /// DHCPDECLINE.
    Decline = 4,
    /// DHCPACK.
    Ack = 5,
    /// DHCPNAK.
    Nak = 6,
    /// DHCPRELEASE.
    Release = 7,
    /// DHCPINFORM.
    Inform = 8,
}

impl TryFrom<u8> for MessageType {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self, Error> {
        Ok(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            other => return Err(Error::UnknownMessageType(other)),
        })
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        t as u8
    }
}
