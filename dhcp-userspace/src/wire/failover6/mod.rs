//! The DHCPv6 failover wire codec of RFC 8156 (DHCPv6 Failover Protocol, TCP port 647).
//!
//! - Framing (RFC 8156 §5.1, which takes it from RFC 5460 §5.1): every message on the TCP
//!   connection is preceded by a 2-byte `msg-size`. [`frame_len`] and [`frame_message`] split
//!   a byte stream into messages.
//! - [`Message`] is a zero-copy view over one message (RFC 8156 §5.2): `msg-type` (1 byte),
//!   `transaction-id` (3 bytes), `sent-time` (4 bytes, seconds since 2000-01-01 UTC), then
//!   DHCPv6-format options (RFC 8415 §21.1), with the byte ranges in [`field`].
//! - [`OptionIter`] walks an options area; [`Opt`] is the typed representation of one option
//!   (RFC 8156 §5.5, plus the DHCPv6 and leasequery options failover reuses).
//! - [`MessageWriter`] emits a framed message, nested options included, into a caller's
//!   buffer.
//! - The typed messages of RFC 8156 §5.3, §6 and §7 ([`Connect6`], [`ConnectReply6`],
//!   [`State6`], [`Disconnect6`], [`BindingUpdate6`], [`BindingReply6`]) parse from a
//!   [`Message`] and emit through a [`MessageWriter`]; [`LeaseBinding`] converts to and from
//!   [`crate::lease::Lease6`].
//!
//! All times on the wire are seconds since midnight 2000-01-01 UTC modulo 2^32 (RFC 8156
//! §5.2, §5.5.7); [`to_unix`] and [`from_unix`] convert. Nothing here allocates, and no input
//! bytes make any function panic: malformed input is an [`Error`], whose [`Error::reason`]
//! labels the drop counters.

mod fuzz;
mod messages;
mod options;
mod packet;
mod writer;

#[cfg(test)]
mod tests;

#[doc(hidden)]
pub use fuzz::fuzz_one;
pub use messages::{
    BindingBody, BindingReply6, BindingTimes, BindingUpdate6, ClientData6, Connect6, ConnectReply6,
    Disconnect6, IaKind6, LeaseBinding, LeaseIter, State6, StatusValue,
};
pub use options::{FailoverOption, Opt, OptionIter, ProtocolVersion};
pub use packet::{FRAME_PREFIX_LEN, Message, field, frame_len, frame_message};
pub use writer::{Header, MAX_MESSAGE_LEN, MAX_NESTING, MessageWriter, OptionHandle};

/// The TCP port of the failover protocol, `dhcp-failover` (RFC 8156 §5.1).
pub const PORT: u16 = 647;

/// The protocol version this codec speaks (RFC 8156 §5.5.14: major 1, minor 0).
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

/// Seconds from the Unix epoch (1970-01-01) to the failover epoch (2000-01-01 UTC).
pub const EPOCH_2000: u32 = 946_684_800;

/// Unix seconds of a failover time (seconds since 2000-01-01 UTC modulo 2^32, RFC 8156
/// §5.5.7); wraps like the wire value does.
#[must_use]
pub const fn to_unix(t: u32) -> u32 {
    t.wrapping_add(EPOCH_2000)
}

/// The failover time (seconds since 2000-01-01 UTC modulo 2^32, RFC 8156 §5.5.7) of Unix
/// seconds `unix`.
#[must_use]
pub const fn from_unix(unix: u32) -> u32 {
    unix.wrapping_sub(EPOCH_2000)
}

/// Option codes: those of RFC 8156 §5.5 (IANA assigned 114 to 134, RFC 8156 §11) and the
/// existing DHCPv6 and leasequery options failover messages carry (RFC 8156 §7.4).
pub mod opt {
    pub use crate::wire::v6::opt::{CLIENTID, IA_NA, IA_PD, IA_TA, IAADDR, IAPREFIX, STATUS_CODE};

    /// `OPTION_CLIENT_DATA`: one client's bindings (RFC 5007 §4.1.2.2).
    pub const CLIENT_DATA: u16 = 45;
    /// `OPTION_CLT_TIME`: seconds since the server last talked to the client, relative to
    /// `OPTION_LQ_BASE_TIME` (RFC 5007 §4.1.2.3).
    pub const CLT_TIME: u16 = 46;
    /// `OPTION_LQ_RELAY_DATA`: the relay data last seen from the client (RFC 5007 §4.1.2.4).
    pub const LQ_RELAY_DATA: u16 = 47;
    /// `OPTION_LQ_BASE_TIME`: the absolute time the data was put in the option (RFC 7653
    /// §6.3.1).
    pub const LQ_BASE_TIME: u16 = 100;
    /// `OPTION_F_BINDING_STATUS`: 1 byte, see [`super::BindingStatus`] (RFC 8156 §5.5.1).
    pub const F_BINDING_STATUS: u16 = 114;
    /// `OPTION_F_CONNECT_FLAGS`: 2 bytes, see [`super::connect_flags`] (RFC 8156 §5.5.2).
    pub const F_CONNECT_FLAGS: u16 = 115;
    /// `OPTION_F_DNS_REMOVAL_INFO`: encapsulates the three DNS options below (RFC 8156
    /// §5.5.3).
    pub const F_DNS_REMOVAL_INFO: u16 = 116;
    /// `OPTION_F_DNS_HOST_NAME`: RFC 1035 encoded name (RFC 8156 §5.5.4).
    pub const F_DNS_HOST_NAME: u16 = 117;
    /// `OPTION_F_DNS_ZONE_NAME`: RFC 1035 encoded name (RFC 8156 §5.5.5).
    pub const F_DNS_ZONE_NAME: u16 = 118;
    /// `OPTION_F_DNS_FLAGS`: 2 bytes, see [`super::dns_flags`] (RFC 8156 §5.5.6).
    pub const F_DNS_FLAGS: u16 = 119;
    /// `OPTION_F_EXPIRATION_TIME`: 4-byte absolute time (RFC 8156 §5.5.7).
    pub const F_EXPIRATION_TIME: u16 = 120;
    /// `OPTION_F_MAX_UNACKED_BNDUPD`: 4-byte count (RFC 8156 §5.5.8).
    pub const F_MAX_UNACKED_BNDUPD: u16 = 121;
    /// `OPTION_F_MCLT`: 4-byte interval in seconds (RFC 8156 §5.5.9).
    pub const F_MCLT: u16 = 122;
    /// `OPTION_F_PARTNER_LIFETIME`: 4-byte absolute time (RFC 8156 §5.5.10).
    pub const F_PARTNER_LIFETIME: u16 = 123;
    /// `OPTION_F_PARTNER_LIFETIME_SENT`: 4-byte absolute time (RFC 8156 §5.5.11).
    pub const F_PARTNER_LIFETIME_SENT: u16 = 124;
    /// `OPTION_F_PARTNER_DOWN_TIME`: 4-byte absolute time (RFC 8156 §5.5.12).
    pub const F_PARTNER_DOWN_TIME: u16 = 125;
    /// `OPTION_F_PARTNER_RAW_CLT_TIME`: 4-byte absolute time (RFC 8156 §5.5.13).
    pub const F_PARTNER_RAW_CLT_TIME: u16 = 126;
    /// `OPTION_F_PROTOCOL_VERSION`: 2-byte major, 2-byte minor (RFC 8156 §5.5.14).
    pub const F_PROTOCOL_VERSION: u16 = 127;
    /// `OPTION_F_KEEPALIVE_TIME`: 4-byte interval in seconds (RFC 8156 §5.5.15).
    pub const F_KEEPALIVE_TIME: u16 = 128;
    /// `OPTION_F_RECONFIGURE_DATA`: 4-byte absolute time, then the key (RFC 8156 §5.5.16).
    pub const F_RECONFIGURE_DATA: u16 = 129;
    /// `OPTION_F_RELATIONSHIP_NAME`: UTF-8 text, not NUL-terminated (RFC 8156 §5.5.17).
    pub const F_RELATIONSHIP_NAME: u16 = 130;
    /// `OPTION_F_SERVER_FLAGS`: 1 byte, see [`super::server_flags`] (RFC 8156 §5.5.18).
    pub const F_SERVER_FLAGS: u16 = 131;
    /// `OPTION_F_SERVER_STATE`: 1 byte, see [`super::ServerState`] (RFC 8156 §5.5.19).
    pub const F_SERVER_STATE: u16 = 132;
    /// `OPTION_F_START_TIME_OF_STATE`: 4-byte absolute time (RFC 8156 §5.5.20).
    pub const F_START_TIME_OF_STATE: u16 = 133;
    /// `OPTION_F_STATE_EXPIRATION_TIME`: 4-byte absolute time (RFC 8156 §5.5.21).
    pub const F_STATE_EXPIRATION_TIME: u16 = 134;
}

/// Status codes RFC 8156 §5.6 adds to the `OPTION_STATUS_CODE` values of RFC 8415 §21.13
/// (IANA numbers), and the Active Leasequery one failover uses to refuse a CONNECT (RFC 8156
/// §6.1.2, RFC 7653).
pub mod status {
    pub use crate::wire::v6::StatusCode;

    /// Success (RFC 8415 §21.13).
    pub const SUCCESS: u16 = 0;
    /// Failure, reason unspecified (RFC 8415 §21.13).
    pub const UNSPEC_FAIL: u16 = 1;
    /// `NotSupported` (defined by RFC 7653): refuses a CONNECT with an unsupported protocol
    /// version (RFC 8156 §6.1.2).
    pub const NOT_SUPPORTED: u16 = 14;
    /// `AddressInUse`: the client's leases conflict between the two servers.
    pub const ADDRESS_IN_USE: u16 = 16;
    /// `ConfigurationConflict`: the BNDUPD contradicts the receiver's configuration.
    pub const CONFIGURATION_CONFLICT: u16 = 17;
    /// `MissingBindingInformation`: the BNDUPD lacks what is needed to process it.
    pub const MISSING_BINDING_INFORMATION: u16 = 18;
    /// `OutdatedBindingInformation`: the receiver's binding is more recent.
    pub const OUTDATED_BINDING_INFORMATION: u16 = 19;
    /// `ServerShuttingDown`: planned shutdown, usually in a DISCONNECT.
    pub const SERVER_SHUTTING_DOWN: u16 = 20;
    /// `DNSUpdateNotSupported`: a BNDUPD carried DNS information the receiver cannot use.
    pub const DNS_UPDATE_NOT_SUPPORTED: u16 = 21;
    /// `ExcessiveTimeSkew`: the partners' clocks differ too much (RFC 8156 §7.1).
    pub const EXCESSIVE_TIME_SKEW: u16 = 22;
}

/// Bits of `OPTION_F_CONNECT_FLAGS` (RFC 8156 §5.5.2; bits counted from the most
/// significant, bit 15 is the lowest).
pub mod connect_flags {
    /// `FIXED_PD_LENGTH`: every prefix delegated from one delegable prefix has the same
    /// length.
    pub const FIXED_PD_LENGTH: u16 = 0x0001;
}

/// Bits of `OPTION_F_DNS_FLAGS` (RFC 8156 §5.5.6).
pub mod dns_flags {
    /// `FWD_UPTODATE` (F): the forward zone is up to date.
    pub const FWD_UPTODATE: u16 = 0x0001;
    /// `REV_UPTODATE` (R): the reverse zone is up to date.
    pub const REV_UPTODATE: u16 = 0x0002;
    /// `SYNTHESIZED_NAME` (S): the name was synthesized by the server.
    pub const SYNTHESIZED_NAME: u16 = 0x0004;
    /// `USING_REQUESTED_FQDN` (U): the name came from the client's FQDN option.
    pub const USING_REQUESTED_FQDN: u16 = 0x0008;
}

/// Bits of `OPTION_F_SERVER_FLAGS` (RFC 8156 §5.5.18).
pub mod server_flags {
    /// `COMMUNICATED` (C): the sender has communicated with its partner.
    pub const COMMUNICATED: u8 = 0x01;
    /// `STARTUP` (S): the sender is in STARTUP state (RFC 8156 §8.3).
    pub const STARTUP: u8 = 0x02;
    /// `ACK_STARTUP` (A): the last server flags received had STARTUP set.
    pub const ACK_STARTUP: u8 = 0x04;
}

/// Errors parsing or emitting a DHCPv6 failover message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the framing prefix, the fixed header, or what `msg-size` announces.
    #[error("message truncated: {len} bytes, need {need}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// `msg-size` is smaller than the 8-byte message header (RFC 8156 §5.1, §5.2).
    #[error("message size {0} shorter than the header")]
    BadLength(u16),
    /// The message type is not one of RFC 8156 §5.3.
    #[error("unknown failover message type {0}")]
    UnknownMessageType(u8),
    /// The message is of another type than the typed parser expects.
    #[error("unexpected failover message type {0}")]
    UnexpectedMessageType(u8),
    /// An option header is cut short or its length runs past its area (RFC 8415 §21.1), or a
    /// fixed-size option has another length (RFC 8156 §5.5).
    #[error("bad length for option {code}")]
    BadOptionLength {
        /// The option code.
        code: u16,
    },
    /// An option value that is well framed but meaningless (an unknown state, a prefix
    /// length over 128, a DUID out of bounds).
    #[error("bad value for option {code}")]
    BadOptionValue {
        /// The option code.
        code: u16,
    },
    /// An option the message must carry is absent (RFC 8156 §6.1, §6.3, §7.4).
    #[error("missing option {code}")]
    MissingOption {
        /// The option code.
        code: u16,
    },
    /// An option that may appear once appears twice, or a BNDUPD carries more than one
    /// binding (RFC 8156 §7.5.3).
    #[error("option {code} appears more than once")]
    DuplicateOption {
        /// The option code.
        code: u16,
    },
    /// An option this codec does not turn into leases (`IA_TA`: twinlease keeps no temporary
    /// addresses).
    #[error("unsupported option {code}")]
    UnsupportedOption {
        /// The option code.
        code: u16,
    },
    /// A value too long for one option (more than 65535 bytes).
    #[error("option {code} value too long")]
    OptionTooLong {
        /// The option code.
        code: u16,
    },
    /// Closing an option that is not the innermost open one, or nesting deeper than
    /// [`MAX_NESTING`].
    #[error("option nesting misuse")]
    BadNesting,
    /// The output buffer, or the 65535-byte message limit, has no room for this.
    #[error("buffer too small")]
    BufferTooSmall,
}

impl Error {
    /// A short `snake_case` name for this error, used as a drop-counter label.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::BadLength(_) => "bad_length",
            Self::UnknownMessageType(_) => "unknown_message_type",
            Self::UnexpectedMessageType(_) => "unexpected_message_type",
            Self::BadOptionLength { .. } => "bad_option_length",
            Self::BadOptionValue { .. } => "bad_option_value",
            Self::MissingOption { .. } => "missing_option",
            Self::DuplicateOption { .. } => "duplicate_option",
            Self::UnsupportedOption { .. } => "unsupported_option",
            Self::OptionTooLong { .. } => "option_too_long",
            Self::BadNesting => "bad_nesting",
            Self::BufferTooSmall => "buffer_too_small",
        }
    }
}

/// Failover message types (RFC 8156 §5.3; IANA numbers, RFC 8156 §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// BNDUPD: sends binding changes to the partner (§5.3.1).
    BndUpd = 24,
    /// BNDREPLY: answers a BNDUPD, accepting or rejecting (§5.3.2).
    BndReply = 25,
    /// POOLREQ: the secondary asks for delegable prefixes (§5.3.3).
    PoolReq = 26,
    /// POOLRESP: the primary received the POOLREQ (§5.3.4).
    PoolResp = 27,
    /// UPDREQ: asks for the binding changes not yet acknowledged (§5.3.5).
    UpdReq = 28,
    /// UPDREQALL: asks for the whole binding database (§5.3.6).
    UpdReqAll = 29,
    /// UPDDONE: all requested updates were sent and acknowledged (§5.3.7).
    UpdDone = 30,
    /// CONNECT: the primary opens the failover connection (§5.3.8).
    Connect = 31,
    /// CONNECTREPLY: the secondary accepts or rejects a CONNECT (§5.3.9).
    ConnectReply = 32,
    /// DISCONNECT: closes the connection (§5.3.10).
    Disconnect = 33,
    /// STATE: announces the sender's failover state (§5.3.11).
    State = 34,
    /// CONTACT: keep-alive (§5.3.12).
    Contact = 35,
}

impl TryFrom<u8> for MessageType {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self, Error> {
        Ok(match v {
            24 => Self::BndUpd,
            25 => Self::BndReply,
            26 => Self::PoolReq,
            27 => Self::PoolResp,
            28 => Self::UpdReq,
            29 => Self::UpdReqAll,
            30 => Self::UpdDone,
            31 => Self::Connect,
            32 => Self::ConnectReply,
            33 => Self::Disconnect,
            34 => Self::State,
            35 => Self::Contact,
            other => return Err(Error::UnknownMessageType(other)),
        })
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        t as u8
    }
}

/// Values of `OPTION_F_SERVER_STATE` (RFC 8156 §5.5.19; the states of §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ServerState {
    /// STARTUP (never sent: the STARTUP server flag says it, §5.5.19).
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
    /// RECOVER-WAIT.
    RecoverWait = 7,
    /// RECOVER-DONE.
    RecoverDone = 8,
    /// RESOLUTION-INTERRUPTED.
    ResolutionInterrupted = 9,
    /// CONFLICT-DONE.
    ConflictDone = 10,
}

impl TryFrom<u8> for ServerState {
    type Error = u8;

    /// The state with this value, or the value back when RFC 8156 defines none.
    fn try_from(v: u8) -> Result<Self, u8> {
        Ok(match v {
            1 => Self::Startup,
            2 => Self::Normal,
            3 => Self::CommunicationsInterrupted,
            4 => Self::PartnerDown,
            5 => Self::PotentialConflict,
            6 => Self::Recover,
            7 => Self::RecoverWait,
            8 => Self::RecoverDone,
            9 => Self::ResolutionInterrupted,
            10 => Self::ConflictDone,
            other => return Err(other),
        })
    }
}

impl From<ServerState> for u8 {
    fn from(s: ServerState) -> u8 {
        s as u8
    }
}

/// Values of `OPTION_F_BINDING_STATUS` (RFC 8156 §5.5.1; their meaning in §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingStatus {
    /// ACTIVE: assigned to a client.
    Active = 1,
    /// EXPIRED: the client's lifetime ran out.
    Expired = 2,
    /// RELEASED: the client released it.
    Released = 3,
    /// PENDING-FREE: expired or released and acknowledged, on its way to FREE/FREE-BACKUP.
    PendingFree = 4,
    /// FREE: available to the primary.
    Free = 5,
    /// FREE-BACKUP: available to the secondary.
    FreeBackup = 6,
    /// ABANDONED: unusable (declined).
    Abandoned = 7,
    /// RESET: made available by an operator.
    Reset = 8,
}

impl TryFrom<u8> for BindingStatus {
    type Error = u8;

    /// The status with this value, or the value back when RFC 8156 defines none.
    fn try_from(v: u8) -> Result<Self, u8> {
        Ok(match v {
            1 => Self::Active,
            2 => Self::Expired,
            3 => Self::Released,
            4 => Self::PendingFree,
            5 => Self::Free,
            6 => Self::FreeBackup,
            7 => Self::Abandoned,
            8 => Self::Reset,
            other => return Err(other),
        })
    }
}

impl From<BindingStatus> for u8 {
    fn from(s: BindingStatus) -> u8 {
        s as u8
    }
}
