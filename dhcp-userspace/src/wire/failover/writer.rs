//! Allocation-free failover message emitter (draft-ietf-dhc-failover-12 §6.1, §6.2).

use std::net::Ipv4Addr;

use super::{Error, MessageType, Opt, field};

/// Most additional header bytes a message can carry: the payload offset is one byte
/// (draft-12 §6.1), so the payload starts at byte 255 at the latest.
pub const MAX_ADDITIONAL_HEADER: usize = u8::MAX as usize - field::HEADER_LEN;

/// The fixed header of a message to write (draft-12 §6.1). The length and payload offset
/// fields are the writer's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub msg_type: MessageType,
    /// Send time, seconds since the epoch (the receiver compares it with its own clock).
    pub time: u32,
    /// Transaction id; an answer echoes the one of its request.
    pub xid: u32,
}

/// Writes one failover message into a caller's buffer: the header, then options in the
/// order of the calls. [`MessageWriter::finish`] fills in the length field.
///
/// A failed call leaves the message as it was before the call.
#[derive(Debug)]
pub struct MessageWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> MessageWriter<'a> {
    /// Start a message with `header` and no additional header bytes.
    pub fn new(buf: &'a mut [u8], header: &Header) -> Result<Self, Error> {
        Self::with_additional_header(buf, header, &[])
    }

    /// Start a message with `header` followed by `additional` header bytes (draft-12 §6.1;
    /// the payload offset then points after them).
    pub fn with_additional_header(
        buf: &'a mut [u8],
        header: &Header,
        additional: &[u8],
    ) -> Result<Self, Error> {
        if additional.len() > MAX_ADDITIONAL_HEADER {
            return Err(Error::HeaderTooLong);
        }
        let offset = field::HEADER_LEN + additional.len();
        if buf.len() < offset {
            return Err(Error::BufferTooSmall);
        }
        buf[field::LENGTH].copy_from_slice(&(offset as u16).to_be_bytes());
        buf[field::MSG_TYPE] = header.msg_type.into();
        buf[field::PAYLOAD_OFFSET] = offset as u8;
        buf[field::TIME].copy_from_slice(&header.time.to_be_bytes());
        buf[field::XID].copy_from_slice(&header.xid.to_be_bytes());
        buf[field::HEADER_LEN..offset].copy_from_slice(additional);
        Ok(Self { buf, len: offset })
    }

    /// Bytes written so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written; never true, as the header is written at creation.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes still available for options, counting their 4-byte code and length.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.buf.len().min(usize::from(u16::MAX)) - self.len
    }

    fn option_parts(&mut self, code: u16, a: &[u8], b: &[u8]) -> Result<(), Error> {
        let vlen = a.len() + b.len();
        let Ok(vlen16) = u16::try_from(vlen) else {
            return Err(Error::OptionTooLong { code });
        };
        if 4 + vlen > self.remaining() {
            return Err(Error::BufferTooSmall);
        }
        let at = self.len;
        self.buf[at..at + 2].copy_from_slice(&code.to_be_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&vlen16.to_be_bytes());
        self.buf[at + 4..at + 4 + a.len()].copy_from_slice(a);
        self.buf[at + 4 + a.len()..at + 4 + vlen].copy_from_slice(b);
        self.len = at + 4 + vlen;
        Ok(())
    }

    /// Append an option with `code` and raw `value` (draft-12 §6.2).
    pub fn option(&mut self, code: u16, value: &[u8]) -> Result<(), Error> {
        self.option_parts(code, value, &[])
    }

    /// Append a one-byte option.
    pub fn option_u8(&mut self, code: u16, v: u8) -> Result<(), Error> {
        self.option(code, &[v])
    }

    /// Append a two-byte option, network order.
    pub fn option_u16(&mut self, code: u16, v: u16) -> Result<(), Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Append a four-byte option, network order (times, counts, MCLT).
    pub fn option_u32(&mut self, code: u16, v: u32) -> Result<(), Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Append an IPv4 address option.
    pub fn option_ip(&mut self, code: u16, a: Ipv4Addr) -> Result<(), Error> {
        self.option(code, &a.octets())
    }

    /// Append a typed option; [`Opt::parse`] reads it back equal.
    pub fn opt(&mut self, o: &Opt<'_>) -> Result<(), Error> {
        let code = o.code();
        o.with_value(|a, b| self.option_parts(code, a, b))
    }

    /// Write the length field and return the message length.
    #[must_use]
    pub fn finish(self) -> usize {
        // `remaining` keeps `len` within u16.
        self.buf[field::LENGTH].copy_from_slice(&(self.len as u16).to_be_bytes());
        self.len
    }
}
