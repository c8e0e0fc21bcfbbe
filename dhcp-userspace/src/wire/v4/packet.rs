//! Zero-copy view over a BOOTP/DHCP message (RFC 2131 §2, figure 1).

use std::net::Ipv4Addr;

use super::{Error, FLAG_BROADCAST, MAGIC_COOKIE, OptionIter};

/// Byte ranges of the fixed BOOTP header (RFC 2131 §2, figure 1).
pub mod field {
    use std::ops::{Range, RangeFrom};

    /// Byte range of one field.
    pub type Field = Range<usize>;

    /// Message op code: 1 = BOOTREQUEST, 2 = BOOTREPLY.
    pub const OP: usize = 0;
    /// Hardware address type (ARP hardware type, e.g. 1 for Ethernet).
    pub const HTYPE: usize = 1;
    /// Hardware address length.
    pub const HLEN: usize = 2;
    /// Relay hops.
    pub const HOPS: usize = 3;
    /// Transaction id.
    pub const XID: Field = 4..8;
    /// Seconds since the client began acquisition.
    pub const SECS: Field = 8..10;
    /// Flags; only the broadcast bit (0x8000) is defined.
    pub const FLAGS: Field = 10..12;
    /// Client IP address.
    pub const CIADDR: Field = 12..16;
    /// "Your" (client) IP address.
    pub const YIADDR: Field = 16..20;
    /// Next server IP address.
    pub const SIADDR: Field = 20..24;
    /// Relay agent IP address.
    pub const GIADDR: Field = 24..28;
    /// Client hardware address.
    pub const CHADDR: Field = 28..44;
    /// Server host name, or options when overloaded (RFC 2132 §9.3).
    pub const SNAME: Field = 44..108;
    /// Boot file name, or options when overloaded (RFC 2132 §9.3).
    pub const FILE: Field = 108..236;
    /// The magic cookie opening the options field (RFC 2131 §3).
    pub const COOKIE: Field = 236..240;
    /// The options field, to the end of the message.
    pub const OPTIONS: RangeFrom<usize> = 240..;

    /// Length of the fixed BOOTP header, without the cookie.
    pub const HEADER_LEN: usize = 236;
    /// Shortest message this codec accepts: header plus cookie.
    pub const MIN_LEN: usize = 240;
}

/// A read/write view over a DHCP message.
///
/// Use [`Packet::new_checked`] on untrusted bytes: it guarantees every accessor is in
/// bounds. [`Packet::new_unchecked`] skips the check; its accessors then panic on a buffer
/// shorter than [`field::MIN_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap a buffer after checking it holds the BOOTP header and the magic cookie.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        packet.check_cookie()?;
        Ok(packet)
    }

    /// Check the buffer is long enough for the header and cookie (RFC 2131 §3).
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < field::MIN_LEN {
            return Err(Error::Truncated { len });
        }
        Ok(())
    }

    /// Check the magic cookie (RFC 2131 §3). Call [`Self::check_len`] first.
    pub fn check_cookie(&self) -> Result<(), Error> {
        if self.buffer.as_ref().get(field::COOKIE) == Some(&MAGIC_COOKIE[..]) {
            Ok(())
        } else {
            Err(Error::BadCookie)
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// `op`: 1 = BOOTREQUEST, 2 = BOOTREPLY.
    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[field::OP]
    }

    /// `htype`: hardware address type.
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[field::HTYPE]
    }

    /// `hlen`: hardware address length, as sent (may exceed 16 in bad input).
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// `hops`: relay hop count.
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[field::HOPS]
    }

    /// `xid`: transaction id.
    pub fn xid(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::XID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// `secs`: seconds elapsed since the client began.
    pub fn secs(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SECS];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// `flags`, raw.
    pub fn flags(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Whether the broadcast flag is set (RFC 2131 §2, figure 2).
    pub fn broadcast(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }

    fn ip(&self, f: field::Field) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[f];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// `ciaddr`: client IP address.
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.ip(field::CIADDR)
    }

    /// `yiaddr`: "your" IP address.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.ip(field::YIADDR)
    }

    /// `siaddr`: next server IP address.
    pub fn siaddr(&self) -> Ipv4Addr {
        self.ip(field::SIADDR)
    }

    /// `giaddr`: relay agent IP address.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.ip(field::GIADDR)
    }

    /// `chaddr`: all 16 bytes of the client hardware address field.
    pub fn chaddr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::CHADDR]
    }

    /// The client hardware address proper: the first `min(hlen, 16)` bytes of `chaddr`.
    pub fn client_hw(&self) -> &[u8] {
        &self.chaddr()[..usize::from(self.hlen()).min(16)]
    }

    /// `sname` field, raw (64 bytes).
    pub fn sname(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SNAME]
    }

    /// `file` field, raw (128 bytes).
    pub fn file(&self) -> &[u8] {
        &self.buffer.as_ref()[field::FILE]
    }

    /// The options field after the magic cookie, to the end of the buffer.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS]
    }

    /// Iterate over the options in RFC 2131 §4.1 order, honouring overload.
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter::new(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set `op`.
    pub fn set_op(&mut self, v: u8) {
        self.data_mut()[field::OP] = v;
    }

    /// Set `htype`.
    pub fn set_htype(&mut self, v: u8) {
        self.data_mut()[field::HTYPE] = v;
    }

    /// Set `hlen`.
    pub fn set_hlen(&mut self, v: u8) {
        self.data_mut()[field::HLEN] = v;
    }

    /// Set `hops`.
    pub fn set_hops(&mut self, v: u8) {
        self.data_mut()[field::HOPS] = v;
    }

    /// Set `xid`.
    pub fn set_xid(&mut self, v: u32) {
        self.data_mut()[field::XID].copy_from_slice(&v.to_be_bytes());
    }

    /// Set `secs`.
    pub fn set_secs(&mut self, v: u16) {
        self.data_mut()[field::SECS].copy_from_slice(&v.to_be_bytes());
    }

    /// Set `flags`, raw.
    pub fn set_flags(&mut self, v: u16) {
        self.data_mut()[field::FLAGS].copy_from_slice(&v.to_be_bytes());
    }

    /// Set `ciaddr`.
    pub fn set_ciaddr(&mut self, a: Ipv4Addr) {
        self.data_mut()[field::CIADDR].copy_from_slice(&a.octets());
    }

    /// Set `yiaddr`.
    pub fn set_yiaddr(&mut self, a: Ipv4Addr) {
        self.data_mut()[field::YIADDR].copy_from_slice(&a.octets());
    }

    /// Set `siaddr`.
    pub fn set_siaddr(&mut self, a: Ipv4Addr) {
        self.data_mut()[field::SIADDR].copy_from_slice(&a.octets());
    }

    /// Set `giaddr`.
    pub fn set_giaddr(&mut self, a: Ipv4Addr) {
        self.data_mut()[field::GIADDR].copy_from_slice(&a.octets());
    }

    /// Set all 16 bytes of `chaddr`.
    pub fn set_chaddr(&mut self, chaddr: &[u8; 16]) {
        self.data_mut()[field::CHADDR].copy_from_slice(chaddr);
    }

    /// Zero the `sname` and `file` fields.
    pub fn clear_sname_file(&mut self) {
        self.data_mut()[field::SNAME.start..field::FILE.end].fill(0);
    }

    /// Write the magic cookie (RFC 2131 §3).
    pub fn set_cookie(&mut self) {
        self.data_mut()[field::COOKIE].copy_from_slice(&MAGIC_COOKIE);
    }

    /// The options field, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        &mut self.data_mut()[field::OPTIONS]
    }
}
