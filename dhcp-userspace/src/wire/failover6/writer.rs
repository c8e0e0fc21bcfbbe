//! Allocation-free emitter of framed failover messages (RFC 8156 §5.1, §5.2), with nested
//! options (RFC 8415 §21.1).

use super::{Error, FRAME_PREFIX_LEN, MessageType, Opt, field};

/// Largest message: `msg-size` is 16 bits (RFC 5460 §5.1). The frame adds its 2-byte
/// prefix.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// Options that may be open at once: `OPTION_CLIENT_DATA` > `IA_PD` > IAPREFIX >
/// `OPTION_F_DNS_REMOVAL_INFO` is the deepest RFC 8156 §7.4 builds, with room to spare.
pub const MAX_NESTING: usize = 8;

/// The header of a message to write (RFC 8156 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub msg_type: MessageType,
    /// Transaction id, low 24 bits; an answer echoes the one of its request (RFC 8156 §5.4).
    pub xid: u32,
    /// `sent-time`, seconds since 2000-01-01 UTC (RFC 8156 §5.2, §7.1).
    pub sent_time: u32,
}

/// An option opened by [`MessageWriter::begin_option`]; close it with
/// [`MessageWriter::end_option`] or [`MessageWriter::abort_option`], which refuse any handle
/// but the innermost open option's (a misuse leaves the message unchanged).
#[must_use = "an open option must be ended or aborted"]
#[derive(Debug, PartialEq, Eq)]
pub struct OptionHandle {
    start: usize,
    depth: usize,
}

/// Writes one framed failover message into a caller's buffer: the `msg-size` prefix and the
/// header at creation, then options in the order of the calls. [`Self::finish`] fills in
/// `msg-size`.
///
/// Options nest: [`Self::begin_option`] writes an option header with length 0, what follows
/// goes inside it, and [`Self::end_option`] patches its length. A failed call leaves the
/// message as it was before the call.
#[derive(Debug)]
pub struct MessageWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
    open: [usize; MAX_NESTING],
    depth: usize,
}

impl<'a> MessageWriter<'a> {
    /// Start a message with `header`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `buf` cannot hold the prefix and the header.
    pub fn new(buf: &'a mut [u8], header: &Header) -> Result<Self, Error> {
        let start = FRAME_PREFIX_LEN + field::HEADER_LEN;
        if buf.len() < start {
            return Err(Error::BufferTooSmall);
        }
        let m = &mut buf[FRAME_PREFIX_LEN..start];
        m[field::MSG_TYPE] = header.msg_type.into();
        m[field::XID].copy_from_slice(&header.xid.to_be_bytes()[1..]);
        m[field::SENT_TIME].copy_from_slice(&header.sent_time.to_be_bytes());
        let limit = buf.len().min(FRAME_PREFIX_LEN + MAX_MESSAGE_LEN);
        let mut w = Self {
            buf,
            len: start,
            limit,
            open: [0; MAX_NESTING],
            depth: 0,
        };
        w.patch_size();
        Ok(w)
    }

    /// Write a message without options as one frame (POOLREQ, POOLRESP, UPDREQ, UPDREQALL,
    /// UPDDONE and CONTACT carry none, RFC 8156 §5.3); returns the frame length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn header_only(buf: &'a mut [u8], header: &Header) -> Result<usize, Error> {
        Self::new(buf, header)?.finish()
    }

    fn patch_size(&mut self) {
        // `limit` keeps the message within u16.
        let size = (self.len - FRAME_PREFIX_LEN) as u16;
        self.buf[..FRAME_PREFIX_LEN].copy_from_slice(&size.to_be_bytes());
    }

    /// Bytes of the frame written so far, prefix included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written; never true, as the header is written at creation.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes still available, counting option headers.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.limit - self.len
    }

    /// How many options are open.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.depth
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

    /// Append an option with `code` and raw `value` (RFC 8415 §21.1).
    ///
    /// # Errors
    /// [`Error::OptionTooLong`] or [`Error::BufferTooSmall`].
    pub fn option(&mut self, code: u16, value: &[u8]) -> Result<(), Error> {
        self.option_parts(code, value, &[])
    }

    /// Append a one-byte option.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn option_u8(&mut self, code: u16, v: u8) -> Result<(), Error> {
        self.option(code, &[v])
    }

    /// Append a two-byte option, network order.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn option_u16(&mut self, code: u16, v: u16) -> Result<(), Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Append a four-byte option, network order (times, counts, intervals).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn option_u32(&mut self, code: u16, v: u32) -> Result<(), Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Append a typed option; [`Opt::parse`] reads it back equal.
    ///
    /// # Errors
    /// [`Error::OptionTooLong`] or [`Error::BufferTooSmall`].
    pub fn opt(&mut self, o: &Opt<'_>) -> Result<(), Error> {
        let code = o.code();
        o.with_value(|a, b| self.option_parts(code, a, b))
    }

    /// Open an option with `code` whose value starts with `fixed` (an IA's IAID, T1 and T2;
    /// an IAADDR's address and lifetimes); the options written next go inside it until
    /// [`Self::end_option`].
    ///
    /// # Errors
    /// [`Error::BadNesting`] beyond [`MAX_NESTING`], [`Error::BufferTooSmall`].
    pub fn begin_option(&mut self, code: u16, fixed: &[u8]) -> Result<OptionHandle, Error> {
        if self.depth == MAX_NESTING {
            return Err(Error::BadNesting);
        }
        let start = self.len;
        self.option_parts(code, fixed, &[])?;
        self.open[self.depth] = start;
        self.depth += 1;
        Ok(OptionHandle {
            start,
            depth: self.depth,
        })
    }

    fn check_innermost(&self, h: &OptionHandle) -> Result<(), Error> {
        if h.depth == 0 || h.depth != self.depth || self.open[h.depth - 1] != h.start {
            return Err(Error::BadNesting);
        }
        Ok(())
    }

    /// Close the innermost open option and patch its length.
    ///
    /// # Errors
    /// [`Error::BadNesting`] when `h` is not the innermost open option.
    pub fn end_option(&mut self, h: &OptionHandle) -> Result<(), Error> {
        self.check_innermost(h)?;
        // The whole message is within u16, so is any option in it.
        let vlen = (self.len - h.start - 4) as u16;
        self.buf[h.start + 2..h.start + 4].copy_from_slice(&vlen.to_be_bytes());
        self.depth -= 1;
        Ok(())
    }

    /// Drop the innermost open option and everything written inside it.
    ///
    /// # Errors
    /// [`Error::BadNesting`] when `h` is not the innermost open option.
    pub fn abort_option(&mut self, h: &OptionHandle) -> Result<(), Error> {
        self.check_innermost(h)?;
        self.len = h.start;
        self.depth -= 1;
        Ok(())
    }

    /// Write `msg-size` and return the length of the frame, prefix included.
    ///
    /// # Errors
    /// [`Error::BadNesting`] while an option is still open.
    pub fn finish(mut self) -> Result<usize, Error> {
        if self.depth != 0 {
            return Err(Error::BadNesting);
        }
        self.patch_size();
        Ok(self.len)
    }
}
