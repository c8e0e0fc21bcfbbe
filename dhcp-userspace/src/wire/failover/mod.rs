//! The DHCPv4 failover wire codec of draft-ietf-dhc-failover-12 (what ISC dhcpd 4.4 speaks
//! on TCP port 647).
//!
//! - [`Packet`] is a zero-copy view over one failover message (draft-12 §6.1): a 12-byte
//!   header (message length, message type, payload offset, time, xid), optional additional
//!   header bytes, then the payload of options. [`frame_len`] splits a TCP byte stream into
//!   messages.
//! - [`OptionIter`] walks the payload's type-length-value options (draft-12 §6.2: 2-byte
//!   code, 2-byte length); [`Opt`] is the typed representation of one option (draft-12
//!   §12), parsed with [`Opt::parse`] and written with [`MessageWriter::opt`].
//! - [`MessageWriter`] emits a message into a caller's buffer.
//! - [`Message`] and the per-type structs ([`Connect`], [`ConnectAck`], [`StateMsg`],
//!   [`BindingUpdate`], [`BindingAck`], [`Disconnect`], [`PoolResp`]) are the typed
//!   messages of draft-12 §7, parsed from a [`Packet`] and written into a buffer.
//!
//! Nothing here allocates, and no input bytes make any function panic: malformed input is an
//! [`Error`], whose [`Error::reason`] labels the drop counters.

mod fuzz;
mod message;
mod options;
mod packet;
mod writer;

#[cfg(test)]
mod tests;

#[doc(hidden)]
pub use fuzz::fuzz_one;
pub use message::{
    BindingAck, BindingAcks, BindingUpdate, BindingUpdates, Connect, ConnectAck, Disconnect,
    LeaseParts, MAX_CONNECT_SKEW, MAX_MESSAGE_LEN, Message, PoolResp, StateMsg, adjust_time,
    clock_skew, ip_flags, skew_acceptable, transaction_addresses, write_header_only,
};
pub use options::{FailoverOption, Opt, OptionIter};
pub use packet::{Packet, field, frame_len};
pub use writer::{Header, MAX_ADDITIONAL_HEADER, MessageWriter};

/// The TCP port of the failover protocol (draft-12 §6: "dhcp-failover", 647).
pub const PORT: u16 = 647;

/// The protocol version this codec speaks, the value of the protocol-version option
/// (draft-12 §12.20).
pub const PROTOCOL_VERSION: u8 = 1;

/// Option codes (draft-12 §12; each option is a 2-byte code, a 2-byte length and the value,
/// §6.2).
pub mod opt {
    /// addresses-transferred: 4-byte count (draft-12 §12.1).
    pub const ADDRESSES_TRANSFERRED: u16 = 1;
    /// assigned-IP-address: 4-byte IPv4 address (draft-12 §12.2).
    pub const ASSIGNED_IP_ADDRESS: u16 = 2;
    /// binding-status: 1 byte, see [`super::BindingStatus`] (draft-12 §12.3).
    pub const BINDING_STATUS: u16 = 3;
    /// client-identifier: the client's option 61 value (draft-12 §12.4).
    pub const CLIENT_IDENTIFIER: u16 = 4;
    /// client-hardware-address: hardware type byte then the address (draft-12 §12.5).
    pub const CLIENT_HARDWARE_ADDRESS: u16 = 5;
    /// client-last-transaction-time: 4-byte seconds since the epoch (draft-12 §12.6).
    pub const CLIENT_LAST_TRANSACTION_TIME: u16 = 6;
    /// client-reply-options: DHCP options the server sent (draft-12 §12.7).
    pub const CLIENT_REPLY_OPTIONS: u16 = 7;
    /// client-request-options: DHCP options the client sent (draft-12 §12.8).
    pub const CLIENT_REQUEST_OPTIONS: u16 = 8;
    /// DDNS: dynamic DNS flags and name (draft-12 §12.9).
    pub const DDNS: u16 = 9;
    /// delayed-service: 1-byte parameter (draft-12 §12.10).
    pub const DELAYED_SERVICE: u16 = 10;
    /// hash-bucket-assignment: bitmap of the RFC 3074 buckets (draft-12 §12.11).
    pub const HASH_BUCKET_ASSIGNMENT: u16 = 11;
    /// IP-flags: 2-byte flags (draft-12 §12.12).
    pub const IP_FLAGS: u16 = 12;
    /// lease-expiration-time: 4-byte seconds since the epoch (draft-12 §12.13).
    pub const LEASE_EXPIRATION_TIME: u16 = 13;
    /// max-unacked-BNDUPD: 4-byte count (draft-12 §12.14).
    pub const MAX_UNACKED_BNDUPD: u16 = 14;
    /// MCLT: 4-byte maximum client lead time in seconds (draft-12 §12.15).
    pub const MCLT: u16 = 15;
    /// message: text (draft-12 §12.16).
    pub const MESSAGE: u16 = 16;
    /// message-digest: digest type byte then the digest (draft-12 §12.17).
    pub const MESSAGE_DIGEST: u16 = 17;
    /// potential-expiration-time: 4-byte seconds since the epoch (draft-12 §12.18).
    pub const POTENTIAL_EXPIRATION_TIME: u16 = 18;
    /// receive-timer: 4-byte seconds (draft-12 §12.19).
    pub const RECEIVE_TIMER: u16 = 19;
    /// protocol-version: 1 byte (draft-12 §12.20).
    pub const PROTOCOL_VERSION: u16 = 20;
    /// reject-reason: 1 byte, see [`super::reject`] (draft-12 §12.21).
    pub const REJECT_REASON: u16 = 21;
    /// relationship-name: text naming the failover relationship (draft-12 §12.22).
    pub const RELATIONSHIP_NAME: u16 = 22;
    /// server-flags: 1 byte, see [`super::server_flags`] (draft-12 §12.23).
    pub const SERVER_FLAGS: u16 = 23;
    /// server-state: 1 byte, see [`super::ServerState`] (draft-12 §12.24).
    pub const SERVER_STATE: u16 = 24;
    /// start-time-of-state: 4-byte seconds since the epoch (draft-12 §12.25).
    pub const START_TIME_OF_STATE: u16 = 25;
    /// TLS-reply: 1 byte (draft-12 §12.26).
    pub const TLS_REPLY: u16 = 26;
    /// TLS-request: 1 byte (draft-12 §12.27).
    pub const TLS_REQUEST: u16 = 27;
    /// vendor-class-identifier: text (draft-12 §12.28).
    pub const VENDOR_CLASS_IDENTIFIER: u16 = 28;
    /// vendor-specific-options: opaque (draft-12 §12.29).
    pub const VENDOR_SPECIFIC_OPTIONS: u16 = 29;
}

/// Values of the reject-reason option (draft-12 §12.21).
pub mod reject {
    /// Illegal IP address (not part of any address pool).
    pub const ILLEGAL_IP_ADDRESS: u8 = 1;
    /// Fatal conflict exists: address in use by another client.
    pub const FATAL_CONFLICT: u8 = 2;
    /// Missing binding information.
    pub const MISSING_BINDING_INFORMATION: u8 = 3;
    /// Connection rejected, time mismatch too great.
    pub const TIME_MISMATCH: u8 = 4;
    /// Connection rejected, invalid MCLT.
    pub const INVALID_MCLT: u8 = 5;
    /// Connection rejected, unknown reason.
    pub const UNKNOWN_REASON: u8 = 6;
    /// Connection rejected, duplicate connection.
    pub const DUPLICATE_CONNECTION: u8 = 7;
    /// Connection rejected, invalid failover partner.
    pub const INVALID_PARTNER: u8 = 8;
    /// TLS not supported.
    pub const TLS_NOT_SUPPORTED: u8 = 9;
    /// TLS supported but not configured.
    pub const TLS_NOT_CONFIGURED: u8 = 10;
    /// TLS required but not supported by partner.
    pub const TLS_REQUIRED: u8 = 11;
    /// Message digest not supported.
    pub const DIGEST_NOT_SUPPORTED: u8 = 12;
    /// Message digest not configured.
    pub const DIGEST_NOT_CONFIGURED: u8 = 13;
    /// Protocol version mismatch.
    pub const VERSION_MISMATCH: u8 = 14;
    /// Outdated binding information.
    pub const OUTDATED_BINDING: u8 = 15;
    /// Less critical binding information.
    pub const LESS_CRITICAL_BINDING: u8 = 16;
    /// No traffic within sufficient time.
    pub const NO_TRAFFIC: u8 = 17;
    /// Hash bucket assignment conflict.
    pub const HBA_CONFLICT: u8 = 18;
    /// IP not reserved on this server.
    pub const IP_NOT_RESERVED: u8 = 19;
    /// Message digest failed to compare.
    pub const DIGEST_MISMATCH: u8 = 20;
    /// Missing message digest.
    pub const DIGEST_MISSING: u8 = 21;
    /// Unknown: the reason is none of the above.
    pub const UNKNOWN: u8 = 254;
}

/// Bits of the server-flags option (draft-12 §12.23).
pub mod server_flags {
    /// The sender is in its STARTUP period.
    pub const STARTUP: u8 = 0x01;
}

/// Errors parsing or emitting a failover message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the fixed header, or than the message length field says (§6.1).
    #[error("message truncated: {len} bytes, need {need}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The message length field is smaller than the fixed header (draft-12 §6.1).
    #[error("message length {0} shorter than the header")]
    BadLength(u16),
    /// The payload offset points inside the fixed header or past the message (§6.1).
    #[error("bad payload offset {0}")]
    BadPayloadOffset(u8),
    /// The message type is not one of draft-12 §6.1's.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// An option's length runs past the payload, or does not suit its code (§6.2, §12).
    #[error("bad length for option {code}")]
    BadOptionLength {
        /// The option code.
        code: u16,
    },
    /// A value too long for one option (more than 65535 bytes).
    #[error("option {code} value too long")]
    OptionTooLong {
        /// The option code.
        code: u16,
    },
    /// Additional header bytes beyond [`MAX_ADDITIONAL_HEADER`].
    #[error("additional header too long")]
    HeaderTooLong,
    /// The output buffer, or the 65535-byte message limit, has no room for this.
    #[error("buffer too small")]
    BufferTooSmall,
    /// The message is not of the type being parsed or written.
    #[error("message type {got}, expected {expected:?}")]
    WrongMessageType {
        /// The type the parser or writer handles.
        expected: MessageType,
        /// The type byte found.
        got: u8,
    },
    /// An option the message type requires is absent (draft-12 §7).
    #[error("missing option {code}")]
    MissingOption {
        /// The option code.
        code: u16,
    },
    /// An option appears twice in one message or binding update transaction (draft-12
    /// §6.2: "treated as an error").
    #[error("duplicate option {code}")]
    DuplicateOption {
        /// The option code.
        code: u16,
    },
    /// A one-byte option holds a value draft-12 does not define (server-state §12.24,
    /// binding-status §12.3).
    #[error("option {code} has undefined value {value}")]
    BadValue {
        /// The option code.
        code: u16,
        /// The value found.
        value: u8,
    },
    /// A BNDUPD or BNDACK carries this many binding update transactions (draft-12 §6.3)
    /// where one was expected.
    #[error("{0} binding update transactions in one message")]
    MultipleTransactions(usize),
}

impl Error {
    /// A short `snake_case` name for this error, used as a drop-counter label.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadLength(_) => "bad_length",
            Self::BadPayloadOffset(_) => "bad_payload_offset",
            Self::UnknownMessageType(_) => "unknown_message_type",
            Self::BadOptionLength { .. } => "bad_option_length",
            Self::OptionTooLong { .. } => "option_too_long",
            Self::HeaderTooLong => "header_too_long",
            Self::BufferTooSmall => "buffer_too_small",
            Self::WrongMessageType { .. } => "wrong_message_type",
            Self::MissingOption { .. } => "missing_option",
            Self::DuplicateOption { .. } => "duplicate_option",
            Self::BadValue { .. } => "bad_value",
            Self::MultipleTransactions(_) => "multiple_transactions",
        }
    }
}

/// Failover message types (draft-12 §6.1, messages described in §7 to §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// POOLREQ: the secondary asks for its share of the free addresses.
    PoolReq = 1,
    /// POOLRESP: answer to POOLREQ.
    PoolResp = 2,
    /// BNDUPD: a binding update (lazy update of one lease).
    BndUpd = 3,
    /// BNDACK: acknowledges a BNDUPD, or rejects it with a reject reason.
    BndAck = 4,
    /// CONNECT: opens the failover connection.
    Connect = 5,
    /// CONNECTACK: accepts or rejects a CONNECT.
    ConnectAck = 6,
    /// UPDREQALL: asks for every binding.
    UpdReqAll = 7,
    /// UPDDONE: all requested updates were sent.
    UpdDone = 8,
    /// UPDREQ: asks for the bindings not yet sent.
    UpdReq = 9,
    /// STATE: announces a failover state change.
    State = 10,
    /// CONTACT: keep-alive.
    Contact = 11,
    /// DISCONNECT: closes the connection, with a reject reason.
    Disconnect = 12,
}

impl TryFrom<u8> for MessageType {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self, Error> {
        Ok(match v {
            1 => Self::PoolReq,
            2 => Self::PoolResp,
            3 => Self::BndUpd,
            4 => Self::BndAck,
            5 => Self::Connect,
            6 => Self::ConnectAck,
            7 => Self::UpdReqAll,
            8 => Self::UpdDone,
            9 => Self::UpdReq,
            10 => Self::State,
            11 => Self::Contact,
            12 => Self::Disconnect,
            other => return Err(Error::UnknownMessageType(other)),
        })
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        t as u8
    }
}

/// Values of the server-state option (draft-12 §12.24; the states of §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ServerState {
    /// STARTUP.
    Startup = 1,
    /// NORMAL.
    Normal = 2,
    /// COMMUNICATIONS-INTERRUPTED.
    CommunicationsInterrupted = 3,
    /// PARTNER-DOWN.
    PartnerDown = 4,
    /// POTENTIAL-CONFLICT.
    PotentialConflict = 5,
    /// RECOVER.
    Recover = 6,
    /// PAUSED.
    Paused = 7,
    /// SHUTDOWN.
    Shutdown = 8,
    /// RECOVER-DONE.
    RecoverDone = 9,
    /// RESOLUTION-INTERRUPTED.
    ResolutionInterrupted = 10,
    /// CONFLICT-DONE.
    ConflictDone = 11,
    /// RECOVER-WAIT.
    RecoverWait = 254,
}

impl TryFrom<u8> for ServerState {
    type Error = u8;

    /// The state with this value, or the value back when draft-12 defines none.
    fn try_from(v: u8) -> Result<Self, u8> {
        Ok(match v {
            1 => Self::Startup,
            2 => Self::Normal,
            3 => Self::CommunicationsInterrupted,
            4 => Self::PartnerDown,
            5 => Self::PotentialConflict,
            6 => Self::Recover,
            7 => Self::Paused,
            8 => Self::Shutdown,
            9 => Self::RecoverDone,
            10 => Self::ResolutionInterrupted,
            11 => Self::ConflictDone,
            254 => Self::RecoverWait,
            other => return Err(other),
        })
    }
}

impl From<ServerState> for u8 {
    fn from(s: ServerState) -> u8 {
        s as u8
    }
}

/// Values of the binding-status option (draft-12 §12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingStatus {
    /// FREE.
    Free = 1,
    /// ACTIVE.
    Active = 2,
    /// EXPIRED.
    Expired = 3,
    /// RELEASED.
    Released = 4,
    /// ABANDONED.
    Abandoned = 5,
    /// RESET.
    Reset = 6,
    /// BACKUP.
    Backup = 7,
}

impl TryFrom<u8> for BindingStatus {
    type Error = u8;

    /// The status with this value, or the value back when draft-12 defines none.
    fn try_from(v: u8) -> Result<Self, u8> {
        Ok(match v {
            1 => Self::Free,
            2 => Self::Active,
            3 => Self::Expired,
            4 => Self::Released,
            5 => Self::Abandoned,
            6 => Self::Reset,
            7 => Self::Backup,
            other => return Err(other),
        })
    }
}

impl From<BindingStatus> for u8 {
    fn from(s: BindingStatus) -> u8 {
        s as u8
    }
}
