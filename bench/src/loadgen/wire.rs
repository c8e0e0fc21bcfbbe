//! Messages on the wire: the DHCPv4 and DHCPv6 requests a simulated client (or the relay
//! agent the generator plays) sends, the Ethernet frames around them, ARP answers, and the
//! parsing of what comes back, through the library's own parsers (`twinlease::wire`,
//! `twinlease::io::xdp::frame`). Nothing here allocates; every parse of network input returns
//! an error instead of panicking.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use twinlease::io::xdp::frame::{self, EthHeader, IpPair};
use twinlease::wire::v4::{self, MessageType as V4Type, Scratch};
use twinlease::wire::v6::{self, Ia, IaAddr, IaPrefix, MessageType as V6Type, OptionIter};

/// DHCPv4 ports (RFC 2131 §4.1).
pub const V4_SERVER_PORT: u16 = 67;
/// DHCPv4 client port (RFC 2131 §4.1).
pub const V4_CLIENT_PORT: u16 = 68;
/// `All_DHCP_Relay_Agents_and_Servers` (RFC 8415 §7.1).
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// The Ethernet address of [`ALL_DHCP_SERVERS`] (RFC 2464 §7: 33:33 and the low 32 bits).
pub const ALL_DHCP_SERVERS_MAC: [u8; 6] = [0x33, 0x33, 0, 1, 0, 2];
/// Ethernet broadcast.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// The IAID of the one `IA_NA` and the one `IA_PD` each client has.
pub const IAID: u32 = 1;
/// Room for the largest UDP payload built here.
pub const MAX_PAYLOAD: usize = 512;

const ETHERTYPE_ARP: u16 = 0x0806;
/// BOOTP minimum message length (RFC 1542 §2.1: 300 bytes).
const BOOTP_MIN: usize = v4::MIN_MESSAGE_LEN;
/// Magic cookie (RFC 2131 §3).
const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Options a client asks for (RFC 2132 §9.8): mask, routers, DNS, lease time, server id.
const PRL: [u8; 5] = [1, 3, 6, 51, 54];

/// An error building or parsing a message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The output buffer is too small.
    #[error("buffer of {have} bytes too small, need {need}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The frame could not be parsed or built.
    #[error("frame")]
    Frame(#[source] frame::FrameError),
    /// A DHCPv4 message did not parse.
    #[error("DHCPv4 message")]
    V4(#[source] v4::Error),
    /// A DHCPv6 message did not parse.
    #[error("DHCPv6 message")]
    V6(#[source] v6::Error),
    /// An ARP packet is cut short or not Ethernet/IPv4.
    #[error("malformed ARP packet")]
    Arp,
}

/// The DHCPv4 message a client sends (RFC 2131 §4.4, table 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V4Kind {
    /// DHCPDISCOVER, broadcast.
    Discover,
    /// DHCPREQUEST in SELECTING: requested address and server identifier, broadcast.
    Select,
    /// DHCPREQUEST in RENEWING: `ciaddr`, unicast to the server.
    Renew,
    /// DHCPREQUEST in REBINDING: `ciaddr`, broadcast.
    Rebind,
    /// DHCPRELEASE: `ciaddr` and server identifier, unicast to the server.
    Release,
    /// DHCPDECLINE: requested address and server identifier, broadcast (RFC 2131 §4.4.1).
    Decline,
}

/// The fields of a DHCPv4 request.
#[derive(Clone, Copy, Debug)]
pub struct V4Request<'a> {
    /// Which message.
    pub kind: V4Kind,
    /// Transaction id.
    pub xid: u32,
    /// Client hardware address.
    pub mac: [u8; 6],
    /// Client identifier (option 61).
    pub client_id: &'a [u8],
    /// The lease's address: `ciaddr` (Renew, Rebind, Release) or option 50 (Select, Decline).
    pub addr: Ipv4Addr,
    /// Server identifier (option 54) for Select, Release and Decline.
    pub server_id: Ipv4Addr,
    /// `giaddr`: the relay agent's address, unspecified for a direct client.
    pub giaddr: Ipv4Addr,
}

/// Writes the DHCPv4 message of `r` into `out` (padded to the BOOTP minimum of 300 bytes);
/// returns its length.
pub fn build_v4(out: &mut [u8], r: &V4Request<'_>) -> Result<usize, WireError> {
    if out.len() < BOOTP_MIN + 64 {
        return Err(WireError::BufferTooSmall {
            need: BOOTP_MIN + 64,
            have: out.len(),
        });
    }
    out[..BOOTP_MIN].fill(0);
    // RFC 2131 §2 figure 1: op, htype, hlen, hops, xid, secs, flags, ciaddr ... chaddr.
    out[0] = 1;
    out[1] = 1;
    out[2] = 6;
    out[3] = u8::from(!r.giaddr.is_unspecified());
    out[4..8].copy_from_slice(&r.xid.to_be_bytes());
    let ciaddr = match r.kind {
        V4Kind::Renew | V4Kind::Rebind | V4Kind::Release => r.addr,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    out[12..16].copy_from_slice(&ciaddr.octets());
    out[24..28].copy_from_slice(&r.giaddr.octets());
    out[28..34].copy_from_slice(&r.mac);
    out[236..240].copy_from_slice(&COOKIE);
    let mut at = 240;
    let mut put = |code: u8, value: &[u8]| {
        out[at] = code;
        out[at + 1] = value.len() as u8;
        out[at + 2..at + 2 + value.len()].copy_from_slice(value);
        at += 2 + value.len();
    };
    let (ty, requested, server_id, prl) = match r.kind {
        V4Kind::Discover => (V4Type::Discover, false, false, true),
        V4Kind::Select => (V4Type::Request, true, true, true),
        V4Kind::Renew | V4Kind::Rebind => (V4Type::Request, false, false, true),
        V4Kind::Release => (V4Type::Release, false, true, false),
        V4Kind::Decline => (V4Type::Decline, true, true, false),
    };
    put(v4::opt::MESSAGE_TYPE, &[ty as u8]);
    put(
        v4::opt::CLIENT_ID,
        &r.client_id[..r.client_id.len().min(32)],
    );
    if requested {
        put(v4::opt::REQUESTED_IP, &r.addr.octets());
    }
    if server_id {
        put(v4::opt::SERVER_ID, &r.server_id.octets());
    }
    if prl {
        put(v4::opt::PRL, &PRL);
    }
    out[at] = v4::opt::END;
    Ok((at + 1).max(BOOTP_MIN))
}

/// The DHCPv6 message a client sends (RFC 8415 §18.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V6Kind {
    /// SOLICIT.
    Solicit,
    /// REQUEST, to the server that advertised.
    Request,
    /// RENEW, to the server that granted the leases.
    Renew,
    /// REBIND, to any server.
    Rebind,
    /// RELEASE.
    Release,
    /// DECLINE (addresses only).
    Decline,
}

impl V6Kind {
    fn message_type(self) -> V6Type {
        match self {
            Self::Solicit => V6Type::Solicit,
            Self::Request => V6Type::Request,
            Self::Renew => V6Type::Renew,
            Self::Rebind => V6Type::Rebind,
            Self::Release => V6Type::Release,
            Self::Decline => V6Type::Decline,
        }
    }
}

/// An address (`len` 128) or prefix held or asked for in an IA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IaLease {
    /// The address or prefix.
    pub addr: Ipv6Addr,
    /// Prefix length; 128 for an address.
    pub len: u8,
}

/// The fields of a DHCPv6 request.
#[derive(Clone, Copy, Debug)]
pub struct V6Request<'a> {
    /// Which message.
    pub kind: V6Kind,
    /// Transaction id (24 bits).
    pub xid: u32,
    /// The client's DUID.
    pub duid: &'a [u8],
    /// The server's DUID (REQUEST, RENEW, RELEASE, DECLINE: RFC 8415 §18.2).
    pub server_duid: Option<&'a [u8]>,
    /// Include an `IA_NA`, with this address when known.
    pub ia_na: Option<Option<IaLease>>,
    /// Include an `IA_PD`, with this prefix when known.
    pub ia_pd: Option<Option<IaLease>>,
    /// Elapsed time, hundredths of a second (RFC 8415 §21.9).
    pub elapsed: u16,
}

/// A cursor writing DHCPv6 options (RFC 8415 §21.1) into a buffer.
struct V6Writer<'b> {
    out: &'b mut [u8],
    at: usize,
}

impl V6Writer<'_> {
    fn need(&self, n: usize) -> Result<(), WireError> {
        if self.at + n > self.out.len() {
            Err(WireError::BufferTooSmall {
                need: self.at + n,
                have: self.out.len(),
            })
        } else {
            Ok(())
        }
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), WireError> {
        self.need(b.len())?;
        self.out[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
        Ok(())
    }

    fn option(&mut self, code: u16, value: &[u8]) -> Result<(), WireError> {
        self.bytes(&code.to_be_bytes())?;
        self.bytes(&(value.len() as u16).to_be_bytes())?;
        self.bytes(value)
    }

    /// Opens an option whose value follows; returns where its length goes.
    fn open(&mut self, code: u16) -> Result<usize, WireError> {
        self.bytes(&code.to_be_bytes())?;
        let len_at = self.at;
        self.bytes(&[0, 0])?;
        Ok(len_at)
    }

    fn close(&mut self, len_at: usize) {
        let len = (self.at - len_at - 2) as u16;
        self.out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// An `IA_NA` (RFC 8415 §21.4) or `IA_PD` (§21.21) with T1 = T2 = 0 (no preference) and
    /// the lease as IAADDR (§21.6) or IAPREFIX (§21.22) with lifetimes 0.
    fn ia(&mut self, code: u16, lease: Option<IaLease>) -> Result<(), WireError> {
        let ia = self.open(code)?;
        self.bytes(&IAID.to_be_bytes())?;
        self.bytes(&[0; 8])?;
        if let Some(l) = lease {
            if code == v6::opt::IA_NA {
                let a = self.open(v6::opt::IAADDR)?;
                self.bytes(&l.addr.octets())?;
                self.bytes(&[0; 8])?;
                self.close(a);
            } else {
                let p = self.open(v6::opt::IAPREFIX)?;
                self.bytes(&[0; 8])?;
                self.bytes(&[l.len])?;
                self.bytes(&l.addr.octets())?;
                self.close(p);
            }
        }
        self.close(ia);
        Ok(())
    }
}

/// Writes the DHCPv6 message of `r` into `out`; returns its length.
pub fn build_v6(out: &mut [u8], r: &V6Request<'_>) -> Result<usize, WireError> {
    let mut w = V6Writer { out, at: 0 };
    // RFC 8415 §8: msg-type and a 3-byte transaction-id.
    let xid = (r.xid & 0x00ff_ffff).to_be_bytes();
    w.bytes(&[r.kind.message_type() as u8, xid[1], xid[2], xid[3]])?;
    w.option(v6::opt::CLIENTID, r.duid)?;
    if let Some(s) = r.server_duid {
        w.option(v6::opt::SERVERID, s)?;
    }
    w.option(v6::opt::ELAPSED_TIME, &r.elapsed.to_be_bytes())?;
    if matches!(
        r.kind,
        V6Kind::Solicit | V6Kind::Request | V6Kind::Renew | V6Kind::Rebind
    ) {
        w.option(v6::opt::ORO, &v6::opt::DNS_SERVERS.to_be_bytes())?;
    }
    if let Some(l) = r.ia_na {
        w.ia(v6::opt::IA_NA, l)?;
    }
    if let Some(l) = r.ia_pd {
        w.ia(v6::opt::IA_PD, l)?;
    }
    Ok(w.at)
}

/// Wraps the client message `inner` in a RELAY-FORW (RFC 8415 §9) from a relay agent on
/// `link` that received it from `peer`; returns the length written to `out`.
pub fn relay_forw(
    out: &mut [u8],
    link: Ipv6Addr,
    peer: Ipv6Addr,
    inner: &[u8],
) -> Result<usize, WireError> {
    let mut w = V6Writer { out, at: 0 };
    w.bytes(&[V6Type::RelayForw as u8, 0])?;
    w.bytes(&link.octets())?;
    w.bytes(&peer.octets())?;
    w.option(v6::opt::RELAY_MSG, inner)?;
    Ok(w.at)
}

/// Writes an Ethernet/IPv4/UDP frame (checksums computed) into `out`; returns its length.
pub fn frame_v4(
    out: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Result<usize, WireError> {
    let eth = EthHeader {
        dst_mac,
        src_mac,
        vlans: [None, None],
    };
    frame::build_udp4_reply(out, &eth, src, dst, payload).map_err(WireError::Frame)
}

/// Writes an Ethernet/IPv6/UDP frame (checksum computed) into `out`; returns its length.
pub fn frame_v6(
    out: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV6,
    dst: SocketAddrV6,
    payload: &[u8],
) -> Result<usize, WireError> {
    let eth = EthHeader {
        dst_mac,
        src_mac,
        vlans: [None, None],
    };
    frame::build_udp6_reply(out, &eth, src, dst, payload).map_err(WireError::Frame)
}

/// ARP operation codes (RFC 826).
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

/// Writes an ARP packet (RFC 826, Ethernet/IPv4) in an Ethernet frame padded to 60 bytes;
/// `request` chooses a request (to broadcast) or a reply (to `target_mac`).
pub fn build_arp(
    out: &mut [u8],
    request: bool,
    sender: ([u8; 6], Ipv4Addr),
    target: ([u8; 6], Ipv4Addr),
) -> Result<usize, WireError> {
    const LEN: usize = 60;
    if out.len() < LEN {
        return Err(WireError::BufferTooSmall {
            need: LEN,
            have: out.len(),
        });
    }
    let dst = if request { BROADCAST_MAC } else { target.0 };
    out[..LEN].fill(0);
    out[..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&sender.0);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    // htype 1, ptype IPv4, hlen 6, plen 4, op.
    out[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 0]);
    let op = if request { ARP_REQUEST } else { ARP_REPLY };
    out[20..22].copy_from_slice(&op.to_be_bytes());
    out[22..28].copy_from_slice(&sender.0);
    out[28..32].copy_from_slice(&sender.1.octets());
    if !request {
        out[32..38].copy_from_slice(&target.0);
    }
    out[38..42].copy_from_slice(&target.1.octets());
    Ok(LEN)
}

/// A DHCPv4 reply, as far as a client needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V4Reply {
    /// Ethernet source: the server's (or the relay's peer's) hardware address.
    pub src_mac: [u8; 6],
    /// IP source.
    pub src_ip: Ipv4Addr,
    /// Option 53.
    pub message_type: V4Type,
    /// Transaction id.
    pub xid: u32,
    /// The first 6 bytes of `chaddr`.
    pub chaddr: [u8; 6],
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
}

/// What one IA of a DHCPv6 reply holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IaOutcome {
    /// The first address or prefix with a non-zero valid lifetime.
    pub lease: Option<IaLease>,
    /// The IA's status code, if any (RFC 8415 §21.13).
    pub status: Option<u16>,
}

/// A DHCPv6 reply (after RELAY-REPL unwrapping), as far as a client needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Reply<'a> {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// The inner message's type.
    pub message_type: V6Type,
    /// The inner message's transaction id.
    pub xid: u32,
    /// CLIENTID.
    pub client_duid: Option<&'a [u8]>,
    /// SERVERID.
    pub server_duid: Option<&'a [u8]>,
    /// Top-level status code.
    pub status: Option<u16>,
    /// The `IA_NA`.
    pub ia_na: Option<IaOutcome>,
    /// The `IA_PD`.
    pub ia_pd: Option<IaOutcome>,
}

/// A frame received by the generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A DHCPv4 reply (to port 68, or to port 67 when relayed).
    V4(V4Reply),
    /// A DHCPv6 reply (to port 546, or a RELAY-REPL to port 547).
    V6(V6Reply<'a>),
    /// An ARP request: someone (the server) looks for `target`.
    ArpRequest {
        /// Who asks.
        sender: ([u8; 6], Ipv4Addr),
        /// The address looked for.
        target: Ipv4Addr,
    },
    /// An ARP reply: `sender` is at this hardware address.
    ArpReply {
        /// Who answers.
        sender: ([u8; 6], Ipv4Addr),
    },
    /// Anything else.
    Other,
}

fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn parse_arp(f: &[u8]) -> Result<Inbound<'_>, WireError> {
    let a = f.get(14..42).ok_or(WireError::Arp)?;
    if a[..6] != [0, 1, 8, 0, 6, 4] {
        return Err(WireError::Arp);
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&a[8..14]);
    let sender = (mac, ipv4_at(a, 14));
    match u16::from_be_bytes([a[6], a[7]]) {
        ARP_REQUEST => Ok(Inbound::ArpRequest {
            sender,
            target: ipv4_at(a, 24),
        }),
        ARP_REPLY => Ok(Inbound::ArpReply { sender }),
        _ => Ok(Inbound::Other),
    }
}

/// The lease and status of one IA option's value.
fn parse_ia(code: u16, value: &[u8]) -> Result<IaOutcome, v6::Error> {
    let ia = Ia::new(code, value)?;
    let mut out = IaOutcome::default();
    for item in ia.option_iter() {
        let (c, v) = item?;
        match c {
            v6::opt::IAADDR if out.lease.is_none() => {
                let a = IaAddr::new(v)?;
                if a.valid() > 0 {
                    out.lease = Some(IaLease {
                        addr: a.address(),
                        len: 128,
                    });
                }
            }
            v6::opt::IAPREFIX if out.lease.is_none() => {
                let p = IaPrefix::new(v)?;
                if p.valid() > 0 {
                    out.lease = Some(IaLease {
                        addr: p.prefix(),
                        len: p.prefix_len(),
                    });
                }
            }
            v6::opt::STATUS_CODE => out.status = Some(v6::StatusOption::new(v)?.code()),
            _ => {}
        }
    }
    Ok(out)
}

fn parse_v6(src_mac: [u8; 6], payload: &[u8]) -> Result<V6Reply<'_>, v6::Error> {
    let mut msg = payload;
    // RFC 8415 §19.3: the server's answer to a relay agent is a RELAY-REPL with the reply in
    // its Relay Message option. The generator is the only relay, so one level.
    if msg.first() == Some(&(V6Type::RelayRepl as u8)) {
        let options = payload
            .get(v6::field::relay::OPTIONS)
            .ok_or(v6::Error::Truncated { len: payload.len() })?;
        msg =
            v6::find_option(options, v6::opt::RELAY_MSG)?.ok_or(v6::Error::MissingRelayMessage)?;
    }
    let m = v6::Message::new_checked(msg)?;
    let mut r = V6Reply {
        src_mac,
        message_type: m.message_type()?,
        xid: m.xid(),
        client_duid: None,
        server_duid: None,
        status: None,
        ia_na: None,
        ia_pd: None,
    };
    for item in OptionIter::new(&msg[4..]) {
        let (code, value) = item?;
        match code {
            v6::opt::CLIENTID => r.client_duid = Some(value),
            v6::opt::SERVERID => r.server_duid = Some(value),
            v6::opt::STATUS_CODE => r.status = Some(v6::StatusOption::new(value)?.code()),
            v6::opt::IA_NA if r.ia_na.is_none() => r.ia_na = Some(parse_ia(code, value)?),
            v6::opt::IA_PD if r.ia_pd.is_none() => r.ia_pd = Some(parse_ia(code, value)?),
            _ => {}
        }
    }
    Ok(r)
}

/// Parses a received frame. DHCPv4 goes through [`v4::Request::parse`] (which reads any
/// BOOTP message; the reply's `op` is not judged), DHCPv6 through the library's option views.
pub fn parse_inbound<'a>(f: &'a [u8], scratch: &mut Scratch) -> Result<Inbound<'a>, WireError> {
    if f.len() >= 14 && u16::from_be_bytes([f[12], f[13]]) == ETHERTYPE_ARP {
        return parse_arp(f);
    }
    let info = match frame::parse(f) {
        Ok(i) => i,
        Err(frame::FrameError::NotUdp(_) | frame::FrameError::NotIp(_)) => {
            return Ok(Inbound::Other);
        }
        Err(e) => return Err(WireError::Frame(e)),
    };
    let payload = info.payload(f);
    match info.ip {
        IpPair::V4 { src, .. }
            if info.dst_port == V4_CLIENT_PORT || info.dst_port == V4_SERVER_PORT =>
        {
            let req = v4::Request::parse(payload, scratch).map_err(WireError::V4)?;
            let Some(message_type) = req.message_type else {
                return Ok(Inbound::Other);
            };
            if req.op != 2 {
                return Ok(Inbound::Other);
            }
            let mut chaddr = [0u8; 6];
            chaddr.copy_from_slice(&req.chaddr[..6]);
            Ok(Inbound::V4(V4Reply {
                src_mac: info.eth.src_mac,
                src_ip: src,
                message_type,
                xid: req.xid,
                chaddr,
                yiaddr: req.yiaddr,
                server_id: req.server_id,
            }))
        }
        IpPair::V6 { .. }
            if info.dst_port == v6::CLIENT_PORT || info.dst_port == v6::SERVER_PORT =>
        {
            let r = parse_v6(info.eth.src_mac, payload).map_err(WireError::V6)?;
            Ok(Inbound::V6(r))
        }
        _ => Ok(Inbound::Other),
    }
}

#[cfg(test)]
mod tests {
    use twinlease::wire::v6::Request as V6Parsed;

    use super::*;

    const MAC: [u8; 6] = [0x02, 1, 2, 3, 4, 5];
    const CID: [u8; 7] = [1, 0x02, 1, 2, 3, 4, 5];
    const DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 1, 2, 3, 4, 5];
    const SRV_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 9, 9, 9, 9, 9];

    fn v4(kind: V4Kind, giaddr: Ipv4Addr) -> Vec<u8> {
        let mut buf = [0u8; MAX_PAYLOAD];
        let n = build_v4(
            &mut buf,
            &V4Request {
                kind,
                xid: 0xdead_beef,
                mac: MAC,
                client_id: &CID,
                addr: Ipv4Addr::new(10, 1, 2, 3),
                server_id: Ipv4Addr::new(10, 0, 0, 1),
                giaddr,
            },
        )
        .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn v4_requests_parse_with_the_servers_parser() {
        let addr = Ipv4Addr::new(10, 1, 2, 3);
        let srv = Some(Ipv4Addr::new(10, 0, 0, 1));
        let cases = [
            (V4Kind::Discover, V4Type::Discover, None, None, false),
            (V4Kind::Select, V4Type::Request, Some(addr), srv, false),
            (V4Kind::Renew, V4Type::Request, None, None, true),
            (V4Kind::Rebind, V4Type::Request, None, None, true),
            (V4Kind::Release, V4Type::Release, None, srv, true),
            (V4Kind::Decline, V4Type::Decline, Some(addr), srv, false),
        ];
        for (kind, ty, requested, server_id, ciaddr) in cases {
            for giaddr in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(10, 0, 0, 2)] {
                let m = v4(kind, giaddr);
                assert!(m.len() >= 300, "{kind:?}: BOOTP minimum");
                let mut scratch = Scratch::default();
                let r = v4::Request::parse(&m, &mut scratch).unwrap();
                r.expect_op(1).unwrap();
                assert_eq!(r.message_type, Some(ty), "{kind:?}");
                assert_eq!(r.xid, 0xdead_beef);
                assert_eq!(r.client_hw(), &MAC);
                assert_eq!(r.client_id, Some(&CID[..]));
                assert_eq!(r.requested_ip, requested, "{kind:?}");
                assert_eq!(r.server_id, server_id, "{kind:?}");
                assert_eq!(r.giaddr, giaddr);
                assert_eq!(r.hops, u8::from(!giaddr.is_unspecified()));
                let want = if ciaddr { addr } else { Ipv4Addr::UNSPECIFIED };
                assert_eq!(r.ciaddr, want, "{kind:?}");
                assert!(!r.broadcast);
            }
        }
    }

    fn v6(kind: V6Kind, na: bool, pd: bool) -> Vec<u8> {
        let lease_na = IaLease {
            addr: "2001:db8:1::1234".parse().unwrap(),
            len: 128,
        };
        let lease_pd = IaLease {
            addr: "2001:db8:8000:100::".parse().unwrap(),
            len: 56,
        };
        let known = kind != V6Kind::Solicit;
        let mut buf = [0u8; MAX_PAYLOAD];
        let n = build_v6(
            &mut buf,
            &V6Request {
                kind,
                xid: 0x12_3456,
                duid: &DUID,
                server_duid: matches!(
                    kind,
                    V6Kind::Request | V6Kind::Renew | V6Kind::Release | V6Kind::Decline
                )
                .then_some(&SRV_DUID[..]),
                ia_na: na.then_some(known.then_some(lease_na)),
                ia_pd: pd.then_some(known.then_some(lease_pd)),
                elapsed: 0,
            },
        )
        .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn v6_requests_parse_with_the_servers_parser() {
        for kind in [
            V6Kind::Solicit,
            V6Kind::Request,
            V6Kind::Renew,
            V6Kind::Rebind,
            V6Kind::Release,
            V6Kind::Decline,
        ] {
            for (na, pd) in [(true, false), (false, true), (true, true)] {
                let m = v6(kind, na, pd);
                let r = V6Parsed::parse(&m).unwrap();
                assert_eq!(r.message_type, kind.message_type());
                assert_eq!(r.xid, 0x12_3456);
                assert_eq!(r.client_id, Some(&DUID[..]));
                assert_eq!(
                    r.server_id.is_some(),
                    kind != V6Kind::Solicit && kind != V6Kind::Rebind
                );
                assert_eq!(r.elapsed_time, Some(0));
                assert_eq!(r.ia_na().len(), usize::from(na));
                assert_eq!(r.ia_pd().len(), usize::from(pd));
                let hints = usize::from(kind != V6Kind::Solicit);
                if na {
                    assert_eq!(r.ia_na()[0].iaid, IAID);
                    assert_eq!(r.ia_na()[0].hints().len(), hints);
                }
                if pd {
                    assert_eq!(r.ia_pd()[0].hints().len(), hints);
                    if hints == 1 {
                        assert_eq!(r.ia_pd()[0].hints()[0].prefix_len, 56);
                    }
                }
                // Wrapped by the generator acting as a relay agent, the same message comes out.
                let link: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
                let peer: Ipv6Addr = "fe80::1".parse().unwrap();
                let mut relayed = [0u8; MAX_PAYLOAD];
                let n = relay_forw(&mut relayed, link, peer, &m).unwrap();
                let r2 = V6Parsed::parse(&relayed[..n]).unwrap();
                assert_eq!(r2.relays().len(), 1);
                assert_eq!(r2.relays()[0].link_address, link);
                assert_eq!(r2.relays()[0].peer_address, peer);
                assert_eq!(r2.message, &m[..]);
            }
        }
    }

    /// A server reply built with the library's writer, in a frame, parsed back.
    #[test]
    #[expect(clippy::many_single_char_names, reason = "buffers of a test")]
    fn replies_parse() {
        // DHCPv4 OFFER.
        let mut buf = [0u8; 600];
        let mut scratch = Scratch::default();
        let req = v4(V4Kind::Discover, Ipv4Addr::UNSPECIFIED);
        let parsed = v4::Request::parse(&req, &mut scratch).unwrap();
        let mut header = v4::ReplyHeader::for_request(&parsed);
        header.yiaddr = Ipv4Addr::new(10, 1, 0, 9);
        let mut w = v4::ReplyWriter::new(&mut buf, &header).unwrap();
        w.option_u8(v4::opt::MESSAGE_TYPE, V4Type::Offer as u8)
            .unwrap();
        w.option_ip(v4::opt::SERVER_ID, Ipv4Addr::new(10, 0, 0, 1))
            .unwrap();
        let n = w.finish();
        let mut f = [0u8; 2048];
        let len = frame_v4(
            &mut f,
            [2, 0, 0, 0, 0, 1],
            MAC,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 67),
            SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 9), 68),
            &buf[..n],
        )
        .unwrap();
        let mut scratch = Scratch::default();
        match parse_inbound(&f[..len], &mut scratch).unwrap() {
            Inbound::V4(r) => {
                assert_eq!(r.message_type, V4Type::Offer);
                assert_eq!(r.xid, 0xdead_beef);
                assert_eq!(r.chaddr, MAC);
                assert_eq!(r.yiaddr, Ipv4Addr::new(10, 1, 0, 9));
                assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
                assert_eq!(r.src_mac, [2, 0, 0, 0, 0, 1]);
            }
            other => panic!("{other:?}"),
        }

        // DHCPv6 REPLY with an address and a prefix, once direct and once in a RELAY-REPL.
        let mut m = Vec::new();
        m.extend_from_slice(&[7, 0x12, 0x34, 0x56]);
        let opt = |m: &mut Vec<u8>, code: u16, v: &[u8]| {
            m.extend_from_slice(&code.to_be_bytes());
            m.extend_from_slice(&(v.len() as u16).to_be_bytes());
            m.extend_from_slice(v);
        };
        opt(&mut m, v6::opt::CLIENTID, &DUID);
        opt(&mut m, v6::opt::SERVERID, &SRV_DUID);
        let mut ia = vec![0, 0, 0, 1, 0, 0, 0, 50, 0, 0, 0, 80];
        let mut addr = "2001:db8:1::77"
            .parse::<Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec();
        addr.extend_from_slice(&[0, 0, 0, 100, 0, 0, 0, 200]);
        opt(&mut ia, v6::opt::IAADDR, &addr);
        opt(&mut m, v6::opt::IA_NA, &ia);
        let mut ia = vec![0, 0, 0, 1, 0, 0, 0, 50, 0, 0, 0, 80];
        let mut pfx = vec![0, 0, 0, 100, 0, 0, 0, 200, 56];
        pfx.extend_from_slice(&"2001:db8:8000:200::".parse::<Ipv6Addr>().unwrap().octets());
        opt(&mut ia, v6::opt::IAPREFIX, &pfx);
        opt(&mut ia, v6::opt::STATUS_CODE, &[0, 0]);
        opt(&mut m, v6::opt::IA_PD, &ia);
        let mut relay = vec![13, 0];
        relay.extend_from_slice(&"2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
        relay.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
        opt(&mut relay, v6::opt::RELAY_MSG, &m);
        for (payload, port) in [(&m, 546), (&relay, 547)] {
            let len = frame_v6(
                &mut f,
                [2, 0, 0, 0, 0, 1],
                MAC,
                SocketAddrV6::new("fe80::1".parse().unwrap(), 547, 0, 0),
                SocketAddrV6::new("fe80::2".parse().unwrap(), port, 0, 0),
                payload,
            )
            .unwrap();
            match parse_inbound(&f[..len], &mut scratch).unwrap() {
                Inbound::V6(r) => {
                    assert_eq!(r.message_type, V6Type::Reply);
                    assert_eq!(r.xid, 0x12_3456);
                    assert_eq!(r.client_duid, Some(&DUID[..]));
                    assert_eq!(r.server_duid, Some(&SRV_DUID[..]));
                    let na = r.ia_na.unwrap().lease.unwrap();
                    assert_eq!((na.addr, na.len), ("2001:db8:1::77".parse().unwrap(), 128));
                    let pd = r.ia_pd.unwrap();
                    assert_eq!(pd.status, Some(0));
                    assert_eq!(pd.lease.unwrap().len, 56);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn arp_round_trip_and_garbage() {
        let mut f = [0u8; 64];
        let me = ([2, 0, 0, 0, 0, 7], Ipv4Addr::new(10, 0, 0, 2));
        let n = build_arp(&mut f, true, me, ([0; 6], Ipv4Addr::new(10, 0, 0, 1))).unwrap();
        let mut scratch = Scratch::default();
        assert_eq!(
            parse_inbound(&f[..n], &mut scratch).unwrap(),
            Inbound::ArpRequest {
                sender: me,
                target: Ipv4Addr::new(10, 0, 0, 1)
            }
        );
        let n = build_arp(&mut f, false, me, ([2; 6], Ipv4Addr::new(10, 0, 0, 1))).unwrap();
        assert_eq!(&f[..6], &[2; 6]);
        assert_eq!(
            parse_inbound(&f[..n], &mut scratch).unwrap(),
            Inbound::ArpReply { sender: me }
        );
        // Every truncation of a valid frame is handled without a panic.
        let len = frame_v4(
            &mut f,
            [2; 6],
            MAC,
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 67),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 68),
            &[0; 20],
        )
        .unwrap();
        for cut in 0..len {
            let _ = parse_inbound(&f[..cut], &mut scratch);
        }
    }
}
