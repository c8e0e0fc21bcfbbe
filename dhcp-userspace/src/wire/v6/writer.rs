//! Allocation-free DHCPv6 message emitter (RFC 8415 §8, §9, §21), with nested options.

use std::net::Ipv6Addr;

use super::{Error, MessageType, Request, StatusCode, field, opt};

/// Largest message the writer produces: the largest UDP payload over IPv6 without jumbograms
/// (65,535 minus the 8-byte UDP header). It also keeps every option length within 16 bits.
pub const MAX_MESSAGE_LEN: usize = 65_527;

/// Options that may be open at once in a [`ReplyWriter`]: enough for [`super::HOP_COUNT_LIMIT`]
/// `RELAY_MSG` levels around an `IA_PD` holding an IAPREFIX holding a `STATUS_CODE`.
pub const MAX_NESTING: usize = 16;

/// An option opened by [`ReplyWriter::begin_option`]; give it back to
/// [`ReplyWriter::end_option`] (or [`ReplyWriter::abort_option`]).
#[must_use = "an open option must be ended or aborted"]
#[derive(Debug, PartialEq, Eq)]
pub struct OptionHandle {
    start: usize,
    depth: usize,
}

/// Writes a DHCPv6 message into a caller's buffer: the header at creation, then options.
///
/// Options may nest: [`Self::begin_option`] writes an option header with length 0, what is
/// written next goes inside it, and [`Self::end_option`] patches its length. A RELAY-REPL
/// carries the message it relays in a `RELAY_MSG` option (RFC 8415 §9, §21.10): open one, write
/// the inner header with [`Self::message_header`] or [`Self::relay_repl_header`], then its
/// options. [`Self::for_request`] does all of this for the relay levels of a request.
///
/// A write that does not fit returns [`Error::BufferTooSmall`] and writes nothing, so the
/// caller can skip an optional option and go on; [`Self::abort_option`] discards an option
/// begun but not finished, with everything inside it. The helpers that take a closure
/// ([`Self::ia_na`], [`Self::ia_addr`], …) abort their option themselves when the closure
/// fails.
#[derive(Debug)]
pub struct ReplyWriter<'b> {
    buf: &'b mut [u8],
    pos: usize,
    limit: usize,
    open: [usize; MAX_NESTING],
    depth: usize,
}

impl<'b> ReplyWriter<'b> {
    fn with_buf(buf: &'b mut [u8]) -> Self {
        let limit = buf.len().min(MAX_MESSAGE_LEN);
        Self {
            buf,
            pos: 0,
            limit,
            open: [0; MAX_NESTING],
            depth: 0,
        }
    }

    /// Start a client/server message (RFC 8415 §8) of type `msg_type` with transaction id
    /// `xid` (its low 24 bits) in `buf`.
    pub fn new_message(buf: &'b mut [u8], msg_type: MessageType, xid: u32) -> Result<Self, Error> {
        let mut w = Self::with_buf(buf);
        w.put_message_header(msg_type, xid)?;
        Ok(w)
    }

    /// Start a RELAY-REPL (RFC 8415 §9) in `buf`. `hop_count`, `link_address` and
    /// `peer_address` are copied from the RELAY-FORW it answers (RFC 8415 §9, §19.3).
    pub fn new_relay_repl(
        buf: &'b mut [u8],
        hop_count: u8,
        link_address: Ipv6Addr,
        peer_address: Ipv6Addr,
    ) -> Result<Self, Error> {
        let mut w = Self::with_buf(buf);
        w.put_relay_header(hop_count, link_address, peer_address)?;
        Ok(w)
    }

    /// Start the reply of type `msg_type` to `request`: for each of its relay levels,
    /// outermost first, a RELAY-REPL header copied from the RELAY-FORW, its Interface-Id
    /// echoed (RFC 8415 §19.3, §21.18) and an open `RELAY_MSG`; then the inner message header
    /// with the request's transaction id (RFC 8415 §16). The `RELAY_MSG` options stay open:
    /// [`Self::finish`] closes them.
    pub fn for_request(
        buf: &'b mut [u8],
        request: &Request<'_>,
        msg_type: MessageType,
    ) -> Result<Self, Error> {
        let mut w = Self::with_buf(buf);
        for hop in request.relays() {
            if w.depth == 0 {
                w.put_relay_header(hop.hop_count, hop.link_address, hop.peer_address)?;
            } else {
                w.relay_repl_header(hop.hop_count, hop.link_address, hop.peer_address)?;
            }
            if let Some(id) = hop.interface_id {
                w.option(opt::INTERFACE_ID, id)?;
            }
            // Left open on purpose: `finish` closes every open option.
            w.open_option(opt::RELAY_MSG)?;
        }
        if w.depth == 0 {
            w.put_message_header(msg_type, request.xid)?;
        } else {
            w.message_header(msg_type, request.xid)?;
        }
        Ok(w)
    }

    fn room(&self, n: usize) -> Result<(), Error> {
        if n > self.limit - self.pos {
            return Err(Error::BufferTooSmall);
        }
        Ok(())
    }

    /// Copy `bytes` at the cursor; the caller checked the room.
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    fn put_option_head(&mut self, code: u16, len: usize) {
        self.put(&code.to_be_bytes());
        self.put(&(len as u16).to_be_bytes());
    }

    fn put_message_header(&mut self, msg_type: MessageType, xid: u32) -> Result<(), Error> {
        if msg_type.is_relay() {
            return Err(Error::UnexpectedMessageType(msg_type.into()));
        }
        self.room(field::HEADER_LEN)?;
        let x = xid.to_be_bytes();
        self.put(&[msg_type.into(), x[1], x[2], x[3]]);
        Ok(())
    }

    fn put_relay_header(&mut self, hop: u8, link: Ipv6Addr, peer: Ipv6Addr) -> Result<(), Error> {
        self.room(field::relay::HEADER_LEN)?;
        self.put(&[MessageType::RelayRepl.into(), hop]);
        self.put(&link.octets());
        self.put(&peer.octets());
        Ok(())
    }

    /// Whether the innermost open option is a `RELAY_MSG` with nothing in it yet.
    fn in_empty_relay_msg(&self) -> bool {
        let Some(&start) = self.depth.checked_sub(1).map(|d| &self.open[d]) else {
            return false;
        };
        self.pos == start + field::option::HEADER_LEN
            && self.buf[start..start + 2] == opt::RELAY_MSG.to_be_bytes()
    }

    /// Write the header of the client/server message a RELAY-REPL carries, as the first
    /// thing in the innermost open `RELAY_MSG` option (RFC 8415 §21.10); else
    /// [`Error::BadNesting`].
    pub fn message_header(&mut self, msg_type: MessageType, xid: u32) -> Result<(), Error> {
        if !self.in_empty_relay_msg() {
            return Err(Error::BadNesting);
        }
        self.put_message_header(msg_type, xid)
    }

    /// Write the header of a RELAY-REPL carried by another, as the first thing in the
    /// innermost open `RELAY_MSG` option (RFC 8415 §19.3: one level per relay agent); else
    /// [`Error::BadNesting`].
    pub fn relay_repl_header(
        &mut self,
        hop_count: u8,
        link_address: Ipv6Addr,
        peer_address: Ipv6Addr,
    ) -> Result<(), Error> {
        if !self.in_empty_relay_msg() {
            return Err(Error::BadNesting);
        }
        self.put_relay_header(hop_count, link_address, peer_address)
    }

    /// Bytes still available.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.limit - self.pos
    }

    /// Bytes written so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been written (never, once a header is written).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Options currently open.
    #[must_use]
    pub fn open_options(&self) -> usize {
        self.depth
    }

    /// Open option `code`: what is written until [`Self::end_option`] is its value.
    pub fn begin_option(&mut self, code: u16) -> Result<OptionHandle, Error> {
        let start = self.open_option(code)?;
        Ok(OptionHandle {
            start,
            depth: self.depth - 1,
        })
    }

    /// Open option `code` and return where it starts.
    fn open_option(&mut self, code: u16) -> Result<usize, Error> {
        if self.depth == MAX_NESTING {
            return Err(Error::BadNesting);
        }
        self.room(field::option::HEADER_LEN)?;
        let start = self.pos;
        self.put_option_head(code, 0);
        self.open[self.depth] = start;
        self.depth += 1;
        Ok(start)
    }

    fn is_open(&self, start: usize, depth: usize) -> bool {
        depth < self.depth && self.open[depth] == start
    }

    /// Patch the length of the innermost open option and close it.
    fn close_innermost(&mut self) {
        self.depth -= 1;
        let start = self.open[self.depth];
        // `limit` is at most MAX_MESSAGE_LEN, so the value length fits 16 bits.
        let len = self.pos - start - field::option::HEADER_LEN;
        self.buf[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
    }

    /// Close the option `handle` opened, patching its length (RFC 8415 §21.1). It must be
    /// the innermost open option, else [`Error::BadNesting`] and nothing changes.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "taking the handle ends its use, so it cannot be closed twice"
    )]
    pub fn end_option(&mut self, handle: OptionHandle) -> Result<(), Error> {
        if handle.depth + 1 != self.depth || !self.is_open(handle.start, handle.depth) {
            return Err(Error::BadNesting);
        }
        self.close_innermost();
        Ok(())
    }

    /// Discard the option `handle` opened, with everything written inside it (options still
    /// open inside it included): the message is as it was before [`Self::begin_option`].
    /// [`Error::BadNesting`] when the option is no longer open.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "taking the handle ends its use, so it cannot be closed twice"
    )]
    pub fn abort_option(&mut self, handle: OptionHandle) -> Result<(), Error> {
        if !self.is_open(handle.start, handle.depth) {
            return Err(Error::BadNesting);
        }
        self.pos = handle.start;
        self.depth = handle.depth;
        Ok(())
    }

    /// Write option `code` with `value` (RFC 8415 §21.1).
    pub fn option(&mut self, code: u16, value: &[u8]) -> Result<(), Error> {
        self.room(field::option::HEADER_LEN + value.len())?;
        self.put_option_head(code, value.len());
        self.put(value);
        Ok(())
    }

    /// Write a one-byte option (e.g. PREFERENCE, RFC 8415 §21.8).
    pub fn option_u8(&mut self, code: u16, v: u8) -> Result<(), Error> {
        self.option(code, &[v])
    }

    /// Write a two-byte option, network byte order.
    pub fn option_u16(&mut self, code: u16, v: u16) -> Result<(), Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Write a four-byte option, network byte order (e.g. `INFORMATION_REFRESH_TIME`,
    /// RFC 8415 §21.23).
    pub fn option_u32(&mut self, code: u16, v: u32) -> Result<(), Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Write an option holding a list of addresses (e.g. `DNS_SERVERS`, RFC 3646 §3).
    pub fn option_ip6s(&mut self, code: u16, ips: &[Ipv6Addr]) -> Result<(), Error> {
        let len = ips.len() * 16;
        self.room(field::option::HEADER_LEN + len)?;
        self.put_option_head(code, len);
        for ip in ips {
            self.put(&ip.octets());
        }
        Ok(())
    }

    /// Write a `STATUS_CODE` option (RFC 8415 §21.13) with a UTF-8 `message`.
    pub fn status_code(&mut self, status: StatusCode, message: &str) -> Result<(), Error> {
        let len = field::status::FIXED_LEN + message.len();
        self.room(field::option::HEADER_LEN + len)?;
        self.put_option_head(opt::STATUS_CODE, len);
        self.put(&u16::from(status).to_be_bytes());
        self.put(message.as_bytes());
        Ok(())
    }

    /// Write option `code` whose value is `fixed` followed by what `nested` writes. When
    /// anything fails, the option is discarded whole and the error returned.
    pub fn nested<F>(&mut self, code: u16, fixed: &[u8], nested: F) -> Result<(), Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Error>,
    {
        let handle = self.begin_option(code)?;
        let (start, depth) = (handle.start, handle.depth);
        let written = self
            .room(fixed.len())
            .map(|()| self.put(fixed))
            .and_then(|()| nested(self))
            .and_then(|()| {
                // The closure must leave exactly this option innermost.
                if self.depth == depth + 1 && self.is_open(start, depth) {
                    Ok(())
                } else {
                    Err(Error::BadNesting)
                }
            });
        match written {
            Ok(()) => self.end_option(handle),
            Err(e) => {
                if self.is_open(start, depth) {
                    self.abort_option(handle)?;
                }
                Err(e)
            }
        }
    }

    fn ia(
        &mut self,
        code: u16,
        iaid: u32,
        t1: u32,
        t2: u32,
        nested: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut fixed = [0u8; field::ia::FIXED_LEN];
        fixed[field::ia::IAID].copy_from_slice(&iaid.to_be_bytes());
        fixed[field::ia::T1].copy_from_slice(&t1.to_be_bytes());
        fixed[field::ia::T2].copy_from_slice(&t2.to_be_bytes());
        self.nested(code, &fixed, nested)
    }

    /// Write an `IA_NA` (RFC 8415 §21.4) whose nested options (IAADDR, `STATUS_CODE`) `nested`
    /// writes; see [`Self::nested`].
    pub fn ia_na<F>(&mut self, iaid: u32, t1: u32, t2: u32, nested: F) -> Result<(), Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Error>,
    {
        self.ia(opt::IA_NA, iaid, t1, t2, nested)
    }

    /// Write an `IA_PD` (RFC 8415 §21.21) whose nested options (IAPREFIX, `STATUS_CODE`)
    /// `nested` writes; see [`Self::nested`].
    pub fn ia_pd<F>(&mut self, iaid: u32, t1: u32, t2: u32, nested: F) -> Result<(), Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Error>,
    {
        self.ia(opt::IA_PD, iaid, t1, t2, nested)
    }

    /// Write an IAADDR (RFC 8415 §21.6) whose nested options (`STATUS_CODE`) `nested` writes;
    /// see [`Self::nested`].
    pub fn ia_addr<F>(
        &mut self,
        address: Ipv6Addr,
        preferred: u32,
        valid: u32,
        nested: F,
    ) -> Result<(), Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Error>,
    {
        let mut fixed = [0u8; field::iaaddr::FIXED_LEN];
        fixed[field::iaaddr::ADDRESS].copy_from_slice(&address.octets());
        fixed[field::iaaddr::PREFERRED].copy_from_slice(&preferred.to_be_bytes());
        fixed[field::iaaddr::VALID].copy_from_slice(&valid.to_be_bytes());
        self.nested(opt::IAADDR, &fixed, nested)
    }

    /// Write an IAPREFIX (RFC 8415 §21.22) whose nested options (`STATUS_CODE`, `PD_EXCLUDE`)
    /// `nested` writes; see [`Self::nested`]. A `prefix_len` above 128 is an
    /// [`Error::BadOptionValue`].
    pub fn ia_prefix<F>(
        &mut self,
        prefix: Ipv6Addr,
        prefix_len: u8,
        preferred: u32,
        valid: u32,
        nested: F,
    ) -> Result<(), Error>
    where
        F: FnOnce(&mut Self) -> Result<(), Error>,
    {
        if prefix_len > 128 {
            return Err(Error::BadOptionValue {
                code: opt::IAPREFIX,
            });
        }
        let mut fixed = [0u8; field::iaprefix::FIXED_LEN];
        fixed[field::iaprefix::PREFERRED].copy_from_slice(&preferred.to_be_bytes());
        fixed[field::iaprefix::VALID].copy_from_slice(&valid.to_be_bytes());
        fixed[field::iaprefix::PREFIX_LEN] = prefix_len;
        fixed[field::iaprefix::PREFIX].copy_from_slice(&prefix.octets());
        self.nested(opt::IAPREFIX, &fixed, nested)
    }

    /// Close every option still open (patching their lengths, innermost first) and return
    /// the message length.
    #[must_use]
    pub fn finish(mut self) -> usize {
        while self.depth > 0 {
            self.close_innermost();
        }
        self.pos
    }
}
