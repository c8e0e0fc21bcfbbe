//! Zero-copy view over one failover message (draft-ietf-dhc-failover-12 §6.1).

use super::{Error, MessageType, OptionIter};

/// Byte ranges of the fixed message header (draft-12 §6.1).
pub mod field {
    use std::ops::Range;

    /// Byte range of one field.
    pub type Field = Range<usize>;

    /// Message length: the whole message, header included, in bytes.
    pub const LENGTH: Field = 0..2;
    /// Message type, see [`super::super::MessageType`].
    pub const MSG_TYPE: usize = 2;
    /// Payload offset: where the options start, counted from the first byte.
    pub const PAYLOAD_OFFSET: usize = 3;
    /// Time the sender sent the message, seconds since 1970-01-01 UTC.
    pub const TIME: Field = 4..8;
    /// Transaction id, echoed by the answer.
    pub const XID: Field = 8..12;
    /// Length of the fixed header; additional header bytes, if any, follow it up to the
    /// payload offset.
    pub const HEADER_LEN: usize = 12;
}

/// The length of the message at the start of `stream`, read from its length field
/// (draft-12 §6.1), or `None` when fewer than two bytes are buffered. A TCP reader waits
/// until it holds that many bytes, then calls [`Packet::new_checked`] on them.
#[must_use]
pub fn frame_len(stream: &[u8]) -> Option<usize> {
    match stream {
        [hi, lo, ..] => Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

/// A read/write view over one failover message.
///
/// Use [`Packet::new_checked`] on untrusted bytes: it guarantees every accessor is in
/// bounds. The buffer may hold more than the message (the rest of a TCP stream): accessors
/// stop at the message length field. [`Packet::new_unchecked`] skips the check; its
/// accessors then panic on a buffer that is too short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap `buffer` without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap `buffer` after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Check that the buffer holds the fixed header and the whole message its length field
    /// announces, that the length covers the header, and that the payload offset lies
    /// between the end of the fixed header and the end of the message (draft-12 §6.1).
    pub fn check_len(&self) -> Result<(), Error> {
        let buf = self.buffer.as_ref();
        if buf.len() < field::HEADER_LEN {
            return Err(Error::Truncated {
                len: buf.len(),
                need: field::HEADER_LEN,
            });
        }
        let length = u16::from_be_bytes([buf[0], buf[1]]);
        if usize::from(length) < field::HEADER_LEN {
            return Err(Error::BadLength(length));
        }
        if buf.len() < usize::from(length) {
            return Err(Error::Truncated {
                len: buf.len(),
                need: usize::from(length),
            });
        }
        let offset = buf[field::PAYLOAD_OFFSET];
        if usize::from(offset) < field::HEADER_LEN || u16::from(offset) > length {
            return Err(Error::BadPayloadOffset(offset));
        }
        Ok(())
    }

    /// Give back the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The message length field: the size of the whole message.
    #[must_use]
    pub fn length(&self) -> u16 {
        u16::from_be_bytes([self.data()[0], self.data()[1]])
    }

    /// The raw message type byte.
    #[must_use]
    pub fn msg_type(&self) -> u8 {
        self.data()[field::MSG_TYPE]
    }

    /// The message type, if draft-12 §6.1 defines it.
    pub fn message_type(&self) -> Result<MessageType, Error> {
        MessageType::try_from(self.msg_type())
    }

    /// The payload offset field.
    #[must_use]
    pub fn payload_offset(&self) -> u8 {
        self.data()[field::PAYLOAD_OFFSET]
    }

    /// The time field: when the sender sent the message, seconds since the epoch.
    #[must_use]
    pub fn time(&self) -> u32 {
        let d = &self.data()[field::TIME];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The transaction id.
    #[must_use]
    pub fn xid(&self) -> u32 {
        let d = &self.data()[field::XID];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The message itself: the first [`Packet::length`] bytes of the buffer.
    #[must_use]
    pub fn message(&self) -> &[u8] {
        &self.data()[..usize::from(self.length())]
    }

    /// Additional header bytes between the fixed header and the payload (draft-12 §6.1:
    /// none are defined; a receiver skips them).
    #[must_use]
    pub fn additional_header(&self) -> &[u8] {
        &self.message()[field::HEADER_LEN..usize::from(self.payload_offset())]
    }

    /// The payload: the options, from the payload offset to the end of the message.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.message()[usize::from(self.payload_offset())..]
    }

    /// Iterate over the options of the payload (draft-12 §6.2).
    #[must_use]
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.payload())
    }

    /// The value of the first well-formed option with `code`, if any before a malformed one.
    #[must_use]
    pub fn option(&self, code: u16) -> Option<&[u8]> {
        self.option_iter()
            .map_while(Result::ok)
            .find(|o| o.code == code)
            .map(|o| o.value)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set the message length field.
    pub fn set_length(&mut self, v: u16) {
        self.data_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Set the message type.
    pub fn set_msg_type(&mut self, t: MessageType) {
        self.data_mut()[field::MSG_TYPE] = t.into();
    }

    /// Set the payload offset field.
    pub fn set_payload_offset(&mut self, v: u8) {
        self.data_mut()[field::PAYLOAD_OFFSET] = v;
    }

    /// Set the time field.
    pub fn set_time(&mut self, v: u32) {
        self.data_mut()[field::TIME].copy_from_slice(&v.to_be_bytes());
    }

    /// Set the transaction id.
    pub fn set_xid(&mut self, v: u32) {
        self.data_mut()[field::XID].copy_from_slice(&v.to_be_bytes());
    }
}
