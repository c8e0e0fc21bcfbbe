//! TCP framing (RFC 8156 §5.1, RFC 5460 §5.1) and the zero-copy view over one failover
//! message (RFC 8156 §5.2).

use super::{Error, MessageType, OptionIter};

/// Bytes of the `msg-size` prefix in front of every message on the TCP connection (RFC 8156
/// §5.1 uses the framing of RFC 5460 §5.1).
pub const FRAME_PREFIX_LEN: usize = 2;

/// Byte ranges of the message header (RFC 8156 §5.2), counted from the first byte of the
/// message, after the framing prefix.
pub mod field {
    use std::ops::{Range, RangeFrom};

    /// Byte range of one field.
    pub type Field = Range<usize>;

    /// `msg-type`, see [`super::super::MessageType`].
    pub const MSG_TYPE: usize = 0;
    /// `transaction-id`, 3 bytes.
    pub const XID: Field = 1..4;
    /// `sent-time`: when the sender sent the message, seconds since 2000-01-01 UTC.
    pub const SENT_TIME: Field = 4..8;
    /// The options.
    pub const OPTIONS: RangeFrom<usize> = 8..;
    /// Length of the message header.
    pub const HEADER_LEN: usize = 8;
}

/// The length of the frame at the start of `stream`: the 2-byte `msg-size` prefix plus the
/// message it announces (RFC 5460 §5.1), or `None` while fewer than two bytes are buffered.
/// A TCP reader waits until it holds that many bytes, then calls [`frame_message`].
#[must_use]
pub fn frame_len(stream: &[u8]) -> Option<usize> {
    match stream {
        [a, b, ..] => Some(FRAME_PREFIX_LEN + usize::from(u16::from_be_bytes([*a, *b]))),
        _ => None,
    }
}

/// The message of the frame at the start of `stream`, without its prefix. The frame is
/// [`frame_len`] bytes; whatever follows belongs to the next frames.
///
/// # Errors
/// [`Error::Truncated`] while the frame is not wholly buffered; [`Error::BadLength`] when
/// `msg-size` cannot hold the 8-byte header (RFC 8156 §5.2), after which the stream cannot
/// be resynchronised.
pub fn frame_message(stream: &[u8]) -> Result<&[u8], Error> {
    let Some(need) = frame_len(stream) else {
        return Err(Error::Truncated {
            len: stream.len(),
            need: FRAME_PREFIX_LEN,
        });
    };
    let size = need - FRAME_PREFIX_LEN;
    if size < field::HEADER_LEN {
        // `size` is a u16 read from the stream.
        return Err(Error::BadLength(size as u16));
    }
    stream.get(FRAME_PREFIX_LEN..need).ok_or(Error::Truncated {
        len: stream.len(),
        need,
    })
}

/// A view over one failover message (RFC 8156 §5.2): the whole buffer is the message, as
/// [`frame_message`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wrap `buffer` without checks; the accessors may panic on a buffer shorter than the
    /// header. Use [`Self::new_checked`] on input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap `buffer` after checking it holds the 8-byte header.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it does not.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated {
                len,
                need: field::HEADER_LEN,
            });
        }
        Ok(Self { buffer })
    }

    /// Give back the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The whole message.
    #[must_use]
    pub fn message(&self) -> &[u8] {
        self.data()
    }

    /// The raw `msg-type` byte.
    #[must_use]
    pub fn msg_type(&self) -> u8 {
        self.data()[field::MSG_TYPE]
    }

    /// The message type, if RFC 8156 §5.3 defines it.
    ///
    /// # Errors
    /// [`Error::UnknownMessageType`] otherwise.
    pub fn message_type(&self) -> Result<MessageType, Error> {
        MessageType::try_from(self.msg_type())
    }

    /// The 24-bit `transaction-id` (RFC 8156 §5.4).
    #[must_use]
    pub fn xid(&self) -> u32 {
        let d = &self.data()[field::XID];
        u32::from_be_bytes([0, d[0], d[1], d[2]])
    }

    /// `sent-time`: seconds since 2000-01-01 UTC, modulo 2^32 (RFC 8156 §5.2, §7.1).
    #[must_use]
    pub fn sent_time(&self) -> u32 {
        let d = &self.data()[field::SENT_TIME];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The options area.
    #[must_use]
    pub fn options(&self) -> &[u8] {
        &self.data()[field::OPTIONS]
    }

    /// Iterate over the top-level options (RFC 8415 §21.1).
    #[must_use]
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.options())
    }

    /// The value of the first well-formed top-level option with `code`, if any before a
    /// malformed one.
    #[must_use]
    pub fn option(&self, code: u16) -> Option<&[u8]> {
        self.option_iter()
            .map_while(Result::ok)
            .find(|o| o.code == code)
            .map(|o| o.value)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set the message type.
    pub fn set_msg_type(&mut self, t: MessageType) {
        self.data_mut()[field::MSG_TYPE] = t.into();
    }

    /// Set the transaction id (its low 24 bits).
    pub fn set_xid(&mut self, v: u32) {
        self.data_mut()[field::XID].copy_from_slice(&v.to_be_bytes()[1..]);
    }

    /// Set `sent-time`.
    pub fn set_sent_time(&mut self, v: u32) {
        self.data_mut()[field::SENT_TIME].copy_from_slice(&v.to_be_bytes());
    }
}
