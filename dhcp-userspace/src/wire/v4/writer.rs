//! Allocation-free DHCP message emitter.

use std::net::Ipv4Addr;

use super::{BOOTREPLY, Error, Packet, Request, field, opt};

/// Shortest BOOTP message on the wire: relays and clients may drop shorter ones
/// (RFC 1542 §2.1, after RFC 951's 64-byte vendor area). [`ReplyWriter::finish`] pads to it.
pub const MIN_MESSAGE_LEN: usize = 300;

/// IPv4 header (without options) plus UDP header: what RFC 2132 §9.10's maximum message
/// size counts besides the DHCP message itself.
pub const IP_UDP_HEADERS: usize = 28;

/// The smallest maximum message size a client may announce (RFC 2132 §9.10); smaller values
/// are treated as this one.
pub const MIN_MAX_MESSAGE_SIZE: u16 = 576;

/// Instances of option values longer than this are split (RFC 3396 §6).
const MAX_INSTANCE: usize = 255;

/// Addresses per instance in [`ReplyWriter::option_ips`]: 63 × 4 = 252 bytes, so every
/// instance holds whole addresses.
const IPS_PER_INSTANCE: usize = MAX_INSTANCE / 4;

/// The fixed header of a message to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// `op`: [`BOOTREPLY`] for a server's reply.
    pub op: u8,
    /// Hardware address type.
    pub htype: u8,
    /// Hardware address length, at most 16.
    pub hlen: u8,
    /// Relay hops.
    pub hops: u8,
    /// Transaction id.
    pub xid: u32,
    /// Seconds.
    pub secs: u16,
    /// Flags.
    pub flags: u16,
    /// Client IP address.
    pub ciaddr: Ipv4Addr,
    /// "Your" IP address.
    pub yiaddr: Ipv4Addr,
    /// Next server IP address.
    pub siaddr: Ipv4Addr,
    /// Relay agent IP address.
    pub giaddr: Ipv4Addr,
    /// Client hardware address field.
    pub chaddr: [u8; 16],
}

impl ReplyHeader {
    /// The header of a server reply to `request`, per RFC 2131 §4.3.1 table 3: `op`
    /// BOOTREPLY, `htype`, `hlen`, `xid`, `flags`, `giaddr` and `chaddr` from the client,
    /// `hops` and `secs` zero. `ciaddr`, `yiaddr` and `siaddr` start as 0.0.0.0 for the
    /// caller to fill in according to the message type.
    #[must_use]
    pub fn for_request(request: &Request<'_>) -> Self {
        Self {
            op: BOOTREPLY,
            htype: request.htype,
            hlen: request.hlen,
            hops: 0,
            xid: request.xid,
            secs: 0,
            flags: request.flags,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: request.giaddr,
            chaddr: request.chaddr,
        }
    }
}

/// Writes a DHCP message into a caller's buffer: the fixed header and cookie at creation,
/// then options one by one, then END and padding in [`Self::finish`].
///
/// An option that does not fit (the buffer, or the limit set by [`Self::with_max_size`])
/// returns [`Error::BufferTooSmall`] and writes nothing, so the caller can skip optional
/// options and continue. One byte is always kept for END.
#[derive(Debug)]
pub struct ReplyWriter<'b> {
    buf: &'b mut [u8],
    pos: usize,
    limit: usize,
}

impl<'b> ReplyWriter<'b> {
    /// Start a message in `buf` (at least [`MIN_MESSAGE_LEN`] bytes): write the header,
    /// zero `sname` and `file`, write the cookie (RFC 2131 §3).
    pub fn new(buf: &'b mut [u8], header: &ReplyHeader) -> Result<Self, Error> {
        if buf.len() < MIN_MESSAGE_LEN {
            return Err(Error::BufferTooSmall);
        }
        if usize::from(header.hlen) > field::CHADDR.len() {
            return Err(Error::BadHlen(header.hlen));
        }
        buf[..field::MIN_LEN].fill(0);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_op(header.op);
        p.set_htype(header.htype);
        p.set_hlen(header.hlen);
        p.set_hops(header.hops);
        p.set_xid(header.xid);
        p.set_secs(header.secs);
        p.set_flags(header.flags);
        p.set_ciaddr(header.ciaddr);
        p.set_yiaddr(header.yiaddr);
        p.set_siaddr(header.siaddr);
        p.set_giaddr(header.giaddr);
        p.set_chaddr(&header.chaddr);
        p.set_cookie();
        let limit = buf.len();
        Ok(Self {
            buf,
            pos: field::MIN_LEN,
            limit,
        })
    }

    /// Limit the message to what the client accepts: `max_message_size` is option 57, the
    /// largest IP datagram the client takes (RFC 2132 §9.10), so the DHCP message may use it
    /// minus [`IP_UDP_HEADERS`]; values below 576 count as 576. Call before writing options.
    #[must_use]
    pub fn with_max_size(mut self, max_message_size: u16) -> Self {
        let size = usize::from(max_message_size.max(MIN_MAX_MESSAGE_SIZE)) - IP_UDP_HEADERS;
        self.limit = self.limit.min(size);
        self
    }

    /// Bytes still available for options (code and length bytes included), keeping one for
    /// END.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.pos + 1)
    }

    /// Bytes written so far (header, cookie and options; END not yet).
    #[must_use]
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether no option has been written yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pos == field::MIN_LEN
    }

    fn reserve(&self, code: u8, value_len: usize, per_instance: usize) -> Result<(), Error> {
        if code == opt::PAD || code == opt::END {
            return Err(Error::ReservedCode(code));
        }
        let instances = value_len.div_ceil(per_instance).max(1);
        if value_len + 2 * instances > self.remaining() {
            return Err(Error::BufferTooSmall);
        }
        Ok(())
    }

    fn put_head(&mut self, code: u8, len: usize) {
        self.buf[self.pos] = code;
        self.buf[self.pos + 1] = len as u8;
        self.pos += 2;
    }

    /// Write option `code` with `value`. A value longer than 255 bytes is written as
    /// consecutive instances of at most 255 bytes (RFC 3396 §6); an empty value as one
    /// instance of length 0.
    pub fn option(&mut self, code: u8, value: &[u8]) -> Result<(), Error> {
        self.reserve(code, value.len(), MAX_INSTANCE)?;
        if value.is_empty() {
            self.put_head(code, 0);
        }
        for chunk in value.chunks(MAX_INSTANCE) {
            self.put_head(code, chunk.len());
            self.buf[self.pos..self.pos + chunk.len()].copy_from_slice(chunk);
            self.pos += chunk.len();
        }
        Ok(())
    }

    /// Write a one-byte option.
    pub fn option_u8(&mut self, code: u8, v: u8) -> Result<(), Error> {
        self.option(code, &[v])
    }

    /// Write a two-byte option, network byte order.
    pub fn option_u16(&mut self, code: u8, v: u16) -> Result<(), Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Write a four-byte option, network byte order.
    pub fn option_u32(&mut self, code: u8, v: u32) -> Result<(), Error> {
        self.option(code, &v.to_be_bytes())
    }

    /// Write an option holding one address.
    pub fn option_ip(&mut self, code: u8, ip: Ipv4Addr) -> Result<(), Error> {
        self.option(code, &ip.octets())
    }

    /// Write an option holding a list of addresses. Lists longer than 63 addresses are
    /// split into instances of whole addresses (RFC 3396 §6 allows any split; whole
    /// addresses also serve clients that do not concatenate).
    pub fn option_ips(&mut self, code: u8, ips: &[Ipv4Addr]) -> Result<(), Error> {
        self.reserve(code, ips.len() * 4, IPS_PER_INSTANCE * 4)?;
        if ips.is_empty() {
            self.put_head(code, 0);
        }
        for chunk in ips.chunks(IPS_PER_INSTANCE) {
            self.put_head(code, chunk.len() * 4);
            for ip in chunk {
                self.buf[self.pos..self.pos + 4].copy_from_slice(&ip.octets());
                self.pos += 4;
            }
        }
        Ok(())
    }

    /// Write END (RFC 2132 §3.2), pad with zeros to [`MIN_MESSAGE_LEN`] (RFC 1542 §2.1) and
    /// return the message length.
    #[must_use]
    pub fn finish(self) -> usize {
        // `new` checked the buffer holds MIN_MESSAGE_LEN bytes and `reserve` kept a byte
        // for END, so both writes are in bounds.
        self.buf[self.pos] = opt::END;
        let end = self.pos + 1;
        let len = end.max(MIN_MESSAGE_LEN);
        self.buf[end..len].fill(0);
        len
    }
}
