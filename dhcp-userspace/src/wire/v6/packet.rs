//! Zero-copy views over DHCPv6 messages: client/server messages (RFC 8415 §8) and relay
//! agent/server messages (RFC 8415 §9).

use std::net::Ipv6Addr;

use super::{Error, MessageType, OptionIter};

/// Byte ranges of the DHCPv6 message headers and of the option values with fixed parts.
pub mod field {
    use std::ops::{Range, RangeFrom};

    /// Byte range of one field.
    pub type Field = Range<usize>;

    /// `msg-type`, in both message formats (RFC 8415 §8, §9).
    pub const MSG_TYPE: usize = 0;
    /// `transaction-id`, 3 bytes (RFC 8415 §8).
    pub const XID: Field = 1..4;
    /// Options of a client/server message (RFC 8415 §8).
    pub const OPTIONS: RangeFrom<usize> = 4..;
    /// Length of the client/server message header.
    pub const HEADER_LEN: usize = 4;

    /// The relay agent/server message header (RFC 8415 §9).
    pub mod relay {
        use super::{Field, RangeFrom};

        /// `hop-count`: relay agents the message passed through.
        pub const HOP_COUNT: usize = 1;
        /// `link-address`: identifies the client's link.
        pub const LINK_ADDRESS: Field = 2..18;
        /// `peer-address`: the client's or previous relay agent's address.
        pub const PEER_ADDRESS: Field = 18..34;
        /// Options of a relay message.
        pub const OPTIONS: RangeFrom<usize> = 34..;
        /// Length of the relay message header.
        pub const HEADER_LEN: usize = 34;
    }

    /// The option header (RFC 8415 §21.1).
    pub mod option {
        use super::Field;

        /// `option-code`.
        pub const CODE: Field = 0..2;
        /// `option-len`: length of the value that follows.
        pub const LEN: Field = 2..4;
        /// Length of the option header.
        pub const HEADER_LEN: usize = 4;
    }

    /// The value of `IA_NA` (RFC 8415 §21.4) and `IA_PD` (RFC 8415 §21.21).
    pub mod ia {
        use super::{Field, RangeFrom};

        /// `IAID`.
        pub const IAID: Field = 0..4;
        /// `T1`, seconds.
        pub const T1: Field = 4..8;
        /// `T2`, seconds.
        pub const T2: Field = 8..12;
        /// Nested options.
        pub const OPTIONS: RangeFrom<usize> = 12..;
        /// Length of the fixed part.
        pub const FIXED_LEN: usize = 12;
    }

    /// The value of IAADDR (RFC 8415 §21.6).
    pub mod iaaddr {
        use super::{Field, RangeFrom};

        /// `IPv6-address`.
        pub const ADDRESS: Field = 0..16;
        /// `preferred-lifetime`, seconds.
        pub const PREFERRED: Field = 16..20;
        /// `valid-lifetime`, seconds.
        pub const VALID: Field = 20..24;
        /// Nested options.
        pub const OPTIONS: RangeFrom<usize> = 24..;
        /// Length of the fixed part.
        pub const FIXED_LEN: usize = 24;
    }

    /// The value of IAPREFIX (RFC 8415 §21.22).
    pub mod iaprefix {
        use super::{Field, RangeFrom};

        /// `preferred-lifetime`, seconds.
        pub const PREFERRED: Field = 0..4;
        /// `valid-lifetime`, seconds.
        pub const VALID: Field = 4..8;
        /// `prefix-length`, bits.
        pub const PREFIX_LEN: usize = 8;
        /// `IPv6-prefix`.
        pub const PREFIX: Field = 9..25;
        /// Nested options.
        pub const OPTIONS: RangeFrom<usize> = 25..;
        /// Length of the fixed part.
        pub const FIXED_LEN: usize = 25;
    }

    /// The value of `STATUS_CODE` (RFC 8415 §21.13).
    pub mod status {
        use super::{Field, RangeFrom};

        /// `status-code`.
        pub const CODE: Field = 0..2;
        /// `status-message`, UTF-8 text.
        pub const MESSAGE: RangeFrom<usize> = 2..;
        /// Length of the fixed part.
        pub const FIXED_LEN: usize = 2;
    }
}

/// Big-endian `u32` at `f`; the caller guarantees `f` is a 4-byte range inside `b`.
pub(super) fn be32(b: &[u8], f: field::Field) -> u32 {
    let b = &b[f];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Address at `f`; the caller guarantees `f` is a 16-byte range inside `b`.
pub(super) fn ip6(b: &[u8], f: field::Field) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[f]);
    Ipv6Addr::from(a)
}

/// A read/write view over a client/server message (RFC 8415 §8).
///
/// Use [`Message::new_checked`] on untrusted bytes: it guarantees every accessor is in
/// bounds. [`Message::new_unchecked`] skips the check; its accessors then panic on a buffer
/// shorter than [`field::HEADER_LEN`]. The message type is not judged here: see
/// [`Message::message_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap a buffer after checking it holds the 4-byte header (RFC 8415 §8).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated { len });
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// `msg-type`, raw.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::MSG_TYPE]
    }

    /// `msg-type` as a known type (RFC 8415 §7.3).
    pub fn message_type(&self) -> Result<MessageType, Error> {
        MessageType::try_from(self.msg_type())
    }

    /// `transaction-id`, 24 bits (RFC 8415 §8).
    pub fn xid(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::XID];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The options area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS]
    }

    /// Iterate over the options.
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.options())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    /// Set `msg-type`.
    pub fn set_msg_type(&mut self, t: MessageType) {
        self.buffer.as_mut()[field::MSG_TYPE] = t.into();
    }

    /// Set `transaction-id`; only the low 24 bits of `xid` are written (RFC 8415 §8).
    pub fn set_xid(&mut self, xid: u32) {
        self.buffer.as_mut()[field::XID].copy_from_slice(&xid.to_be_bytes()[1..]);
    }

    /// The options area, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::OPTIONS]
    }
}

/// A read/write view over a relay agent/server message, RELAY-FORW or RELAY-REPL
/// (RFC 8415 §9).
///
/// Use [`RelayMessage::new_checked`] on untrusted bytes; accessors of a view made with
/// [`RelayMessage::new_unchecked`] panic on a buffer shorter than
/// [`field::relay::HEADER_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayMessage<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RelayMessage<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap a buffer after checking it holds the 34-byte relay header and that `msg-type`
    /// is RELAY-FORW or RELAY-REPL (RFC 8415 §9).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < field::relay::HEADER_LEN {
            return Err(Error::Truncated { len: b.len() });
        }
        let t = MessageType::try_from(b[field::MSG_TYPE])?;
        if !t.is_relay() {
            return Err(Error::UnexpectedMessageType(t.into()));
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// `msg-type`, raw.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::MSG_TYPE]
    }

    /// `hop-count`.
    pub fn hop_count(&self) -> u8 {
        self.buffer.as_ref()[field::relay::HOP_COUNT]
    }

    /// `link-address`.
    pub fn link_address(&self) -> Ipv6Addr {
        ip6(self.buffer.as_ref(), field::relay::LINK_ADDRESS)
    }

    /// `peer-address`.
    pub fn peer_address(&self) -> Ipv6Addr {
        ip6(self.buffer.as_ref(), field::relay::PEER_ADDRESS)
    }

    /// The options area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::relay::OPTIONS]
    }

    /// Iterate over the options.
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.options())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RelayMessage<T> {
    /// Set `msg-type`.
    pub fn set_msg_type(&mut self, t: MessageType) {
        self.buffer.as_mut()[field::MSG_TYPE] = t.into();
    }

    /// Set `hop-count`.
    pub fn set_hop_count(&mut self, v: u8) {
        self.buffer.as_mut()[field::relay::HOP_COUNT] = v;
    }

    /// Set `link-address`.
    pub fn set_link_address(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::relay::LINK_ADDRESS].copy_from_slice(&a.octets());
    }

    /// Set `peer-address`.
    pub fn set_peer_address(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::relay::PEER_ADDRESS].copy_from_slice(&a.octets());
    }

    /// The options area, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::relay::OPTIONS]
    }
}
