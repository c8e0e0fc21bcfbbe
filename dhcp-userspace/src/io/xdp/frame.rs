//! Ethernet frames of the AF_XDP path: find the UDP datagram in a received frame, and build a
//! reply frame around a payload.
//!
//! [`parse`] reads Ethernet II with up to two VLAN tags (IEEE 802.1Q C-tag `0x8100`, IEEE
//! 802.1ad S-tag `0x88a8`), then IPv4 (RFC 791; unfragmented, options skipped by IHL) or IPv6
//! (RFC 8200; hop-by-hop, routing and destination-options headers skipped, at most
//! [`MAX_IPV6_EXT_HEADERS`] of them), then UDP (RFC 768). It borrows nothing and copies nothing:
//! [`FrameInfo`] holds addresses, ports and the payload's position in the frame. It never panics
//! and never reads past the slice, whatever the input.
//!
//! [`build_udp4_reply`] and [`build_udp6_reply`] write Ethernet, the tags of an [`EthHeader`]
//! (mirrored from the request by [`FrameInfo::reply_eth`]), the IP and UDP headers with their
//! checksums, and the payload into a caller's buffer (an AF_XDP TX frame): no allocation.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::io::socket::{build_ipv4_udp, checksum};

/// IEEE 802.1Q customer VLAN tag protocol identifier.
pub const TPID_8021Q: u16 = 0x8100;
/// IEEE 802.1ad service VLAN tag protocol identifier (outer tag of `QinQ`).
pub const TPID_8021AD: u16 = 0x88a8;
/// `EtherType` of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// `EtherType` of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// At most this many IPv6 extension headers are skipped before UDP.
pub const MAX_IPV6_EXT_HEADERS: usize = 4;
/// Shortest Ethernet frame without the FCS (IEEE 802.3 §4.4.2: 64 bytes with it); shorter
/// replies are padded with zeros.
pub const MIN_FRAME: usize = 60;

const ETH_HEADER: usize = 14;
const VLAN_TAG: usize = 4;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const PROTO_UDP: u8 = 17;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;
/// Hop limit of the IPv6 replies (and TTL of the IPv4 ones, set by `build_ipv4_udp`).
const HOP_LIMIT: u8 = 64;

/// Why a frame was not parsed or a reply not built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame ends inside a header or before the length a header announces.
    #[error("frame truncated in the {0} header")]
    Truncated(&'static str),
    /// More than two VLAN tags.
    #[error("more than two VLAN tags")]
    TooManyVlans,
    /// Neither IPv4 nor IPv6.
    #[error("EtherType {0:#06x} is not IP")]
    NotIp(u16),
    /// A header field is inconsistent (version, IHL, lengths).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// An IPv4 fragment or an IPv6 fragment header: DHCP messages are never fragmented here.
    #[error("fragmented datagram")]
    Fragment,
    /// The transport protocol is not UDP (or an IPv6 extension header we do not skip).
    #[error("protocol {0} is not UDP")]
    NotUdp(u8),
    /// More IPv6 extension headers than [`MAX_IPV6_EXT_HEADERS`].
    #[error("more than {MAX_IPV6_EXT_HEADERS} IPv6 extension headers")]
    TooManyExtHeaders,
    /// The output buffer cannot hold the reply.
    #[error("reply needs {need} bytes, buffer has {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The payload does not fit in one UDP datagram.
    #[error("payload of {0} bytes does not fit in a UDP datagram")]
    PayloadTooLarge(usize),
}

/// One VLAN tag: its TPID and its tag control information (PCP, DEI, VID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Tag protocol identifier ([`TPID_8021Q`] or [`TPID_8021AD`]).
    pub tpid: u16,
    /// Tag control information (IEEE 802.1Q §9.6: PCP 3 bits, DEI 1 bit, VID 12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// The VLAN identifier (low 12 bits of the TCI).
    #[must_use]
    pub fn vid(self) -> u16 {
        self.tci & 0x0fff
    }
}

/// The Ethernet header of a frame: addresses and up to two VLAN tags, outer first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthHeader {
    /// Destination hardware address.
    pub dst_mac: [u8; 6],
    /// Source hardware address.
    pub src_mac: [u8; 6],
    /// VLAN tags, outer first; a `None` is skipped when writing.
    pub vlans: [Option<VlanTag>; 2],
}

impl EthHeader {
    /// Bytes of the header on the wire, tags included.
    #[must_use]
    pub fn wire_len(&self) -> usize {
        ETH_HEADER + VLAN_TAG * self.vlans.iter().flatten().count()
    }

    /// Write the header with `ethertype` into `out`; returns its length.
    fn write(&self, out: &mut [u8], ethertype: u16) -> Result<usize, FrameError> {
        let n = self.wire_len();
        let Some(o) = out.get_mut(..n) else {
            return Err(FrameError::BufferTooSmall {
                need: n,
                have: out.len(),
            });
        };
        o[..6].copy_from_slice(&self.dst_mac);
        o[6..12].copy_from_slice(&self.src_mac);
        let mut at = 12;
        // IEEE 802.1Q §9.5: a tag is the TPID followed by the TCI, in front of the EtherType.
        for tag in self.vlans.iter().flatten() {
            o[at..at + 2].copy_from_slice(&tag.tpid.to_be_bytes());
            o[at + 2..at + 4].copy_from_slice(&tag.tci.to_be_bytes());
            at += VLAN_TAG;
        }
        o[at..at + 2].copy_from_slice(&ethertype.to_be_bytes());
        Ok(n)
    }
}

/// Source and destination addresses of the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpPair {
    /// IPv4.
    V4 {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
    },
    /// IPv6.
    V6 {
        /// Source.
        src: Ipv6Addr,
        /// Destination.
        dst: Ipv6Addr,
    },
}

/// What [`parse`] found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Ethernet addresses and VLAN tags.
    pub eth: EthHeader,
    /// IP addresses.
    pub ip: IpPair,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Offset of the UDP payload in the frame.
    pub payload_offset: usize,
    /// Length of the UDP payload (from the UDP length field).
    pub payload_len: usize,
}

impl FrameInfo {
    /// The UDP payload inside `frame` (the frame this info was parsed from; empty if it is
    /// too short for the recorded range).
    #[must_use]
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.payload_offset..self.payload_offset.saturating_add(self.payload_len))
            .unwrap_or(&[])
    }

    /// The Ethernet header of a reply: to the request's source, from `our_mac`, with the
    /// request's VLAN tags mirrored (same TPIDs and TCIs, same order).
    #[must_use]
    pub fn reply_eth(&self, our_mac: [u8; 6]) -> EthHeader {
        EthHeader {
            dst_mac: self.eth.src_mac,
            src_mac: our_mac,
            vlans: self.eth.vlans,
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Find the UDP datagram in a received Ethernet frame.
pub fn parse(frame: &[u8]) -> Result<FrameInfo, FrameError> {
    if frame.len() < ETH_HEADER {
        return Err(FrameError::Truncated("Ethernet"));
    }
    let mut dst_mac = [0u8; 6];
    let mut src_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[..6]);
    src_mac.copy_from_slice(&frame[6..12]);
    let mut vlans = [None; 2];
    let mut at = 12;
    let mut ethertype = be16(frame, at).ok_or(FrameError::Truncated("Ethernet"))?;
    for slot in 0..=vlans.len() {
        if ethertype != TPID_8021Q && ethertype != TPID_8021AD {
            break;
        }
        if slot == vlans.len() {
            return Err(FrameError::TooManyVlans);
        }
        let tci = be16(frame, at + 2).ok_or(FrameError::Truncated("VLAN"))?;
        vlans[slot] = Some(VlanTag {
            tpid: ethertype,
            tci,
        });
        at += VLAN_TAG;
        ethertype = be16(frame, at).ok_or(FrameError::Truncated("VLAN"))?;
    }
    let l3 = at + 2;
    let eth = EthHeader {
        dst_mac,
        src_mac,
        vlans,
    };
    let ip_bytes = &frame[l3.min(frame.len())..];
    let (ip, udp_at, udp_room) = match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(ip_bytes)?,
        ETHERTYPE_IPV6 => parse_ipv6(ip_bytes)?,
        other => return Err(FrameError::NotIp(other)),
    };
    // RFC 768: source port, destination port, length (header included), checksum.
    let udp = &ip_bytes[udp_at..];
    if udp.len() < UDP_HEADER || udp_room < UDP_HEADER {
        return Err(FrameError::Truncated("UDP"));
    }
    let src_port = u16::from_be_bytes([udp[0], udp[1]]);
    let dst_port = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if ulen < UDP_HEADER {
        return Err(FrameError::Malformed("UDP length"));
    }
    if ulen > udp_room {
        return Err(FrameError::Truncated("UDP"));
    }
    Ok(FrameInfo {
        eth,
        ip,
        src_port,
        dst_port,
        payload_offset: l3 + udp_at + UDP_HEADER,
        payload_len: ulen - UDP_HEADER,
    })
}

/// RFC 791 §3.1. Returns the addresses, the UDP header's offset and the bytes the IP header
/// says follow it (checked to be present in `b`).
fn parse_ipv4(b: &[u8]) -> Result<(IpPair, usize, usize), FrameError> {
    if b.len() < IPV4_HEADER {
        return Err(FrameError::Truncated("IPv4"));
    }
    if b[0] >> 4 != 4 {
        return Err(FrameError::Malformed("IPv4 version"));
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    if ihl < IPV4_HEADER {
        return Err(FrameError::Malformed("IPv4 IHL"));
    }
    let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if total < ihl {
        return Err(FrameError::Malformed("IPv4 total length"));
    }
    // Frames may carry Ethernet padding after the datagram, never less than it announces.
    if total > b.len() {
        return Err(FrameError::Truncated("IPv4"));
    }
    // Flags and fragment offset: MF set or a non-zero offset is a fragment.
    if u16::from_be_bytes([b[6], b[7]]) & 0x3fff != 0 {
        return Err(FrameError::Fragment);
    }
    if b[9] != PROTO_UDP {
        return Err(FrameError::NotUdp(b[9]));
    }
    let src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    Ok((IpPair::V4 { src, dst }, ihl, total - ihl))
}

/// RFC 8200 §3 and §4. Returns the addresses, the UDP header's offset and the bytes of the
/// payload length that remain after the extension headers (checked to be present in `b`).
fn parse_ipv6(b: &[u8]) -> Result<(IpPair, usize, usize), FrameError> {
    if b.len() < IPV6_HEADER {
        return Err(FrameError::Truncated("IPv6"));
    }
    if b[0] >> 4 != 6 {
        return Err(FrameError::Malformed("IPv6 version"));
    }
    let plen = usize::from(u16::from_be_bytes([b[4], b[5]]));
    // A zero payload length means a jumbogram (RFC 2675), not a DHCPv6 message.
    if plen == 0 {
        return Err(FrameError::Malformed("IPv6 payload length"));
    }
    let end = IPV6_HEADER + plen;
    if end > b.len() {
        return Err(FrameError::Truncated("IPv6"));
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&b[8..24]);
    dst.copy_from_slice(&b[24..40]);
    let ip = IpPair::V6 {
        src: Ipv6Addr::from(src),
        dst: Ipv6Addr::from(dst),
    };
    let mut next = b[6];
    let mut at = IPV6_HEADER;
    for n in 0..=MAX_IPV6_EXT_HEADERS {
        match next {
            PROTO_UDP => return Ok((ip, at, end - at)),
            // RFC 8200 §4.1: hop-by-hop options only immediately after the IPv6 header.
            IPV6_HOP_BY_HOP if n > 0 => return Err(FrameError::Malformed("IPv6 hop-by-hop")),
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                if n == MAX_IPV6_EXT_HEADERS {
                    return Err(FrameError::TooManyExtHeaders);
                }
                // RFC 8200 §4.3-4.6: next header, length in 8-octet units not counting the
                // first 8 octets.
                if at + 2 > end {
                    return Err(FrameError::Truncated("IPv6 extension"));
                }
                let len = (usize::from(b[at + 1]) + 1) * 8;
                if at + len > end {
                    return Err(FrameError::Truncated("IPv6 extension"));
                }
                next = b[at];
                at += len;
            }
            IPV6_FRAGMENT => return Err(FrameError::Fragment),
            other => return Err(FrameError::NotUdp(other)),
        }
    }
    Err(FrameError::TooManyExtHeaders)
}

/// Zero-pad a frame of `n` bytes up to [`MIN_FRAME`] if `out` has room; returns the length.
fn pad(out: &mut [u8], n: usize) -> usize {
    if n >= MIN_FRAME || out.len() < MIN_FRAME {
        return n;
    }
    out[n..MIN_FRAME].fill(0);
    MIN_FRAME
}

/// Write an Ethernet/IPv4/UDP frame carrying `payload` from `src` to `dst` into `out`; returns
/// the frame length. The IPv4 header (no options, TTL 64) and its checksum (RFC 791 §3.1) and
/// the UDP checksum over the pseudo-header (RFC 768) are written by
/// [`crate::io::socket::build_ipv4_udp`]. Frames shorter than [`MIN_FRAME`] are zero-padded
/// when `out` has the room.
pub fn build_udp4_reply(
    out: &mut [u8],
    eth: &EthHeader,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Result<usize, FrameError> {
    if payload.len() > usize::from(u16::MAX) - IPV4_HEADER - UDP_HEADER {
        return Err(FrameError::PayloadTooLarge(payload.len()));
    }
    let need = eth.wire_len() + IPV4_HEADER + UDP_HEADER + payload.len();
    if need > out.len() {
        return Err(FrameError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    let l2 = eth.write(out, ETHERTYPE_IPV4)?;
    // The size checks above are exactly build_ipv4_udp's, so it cannot refuse.
    let n = build_ipv4_udp(&mut out[l2..], src, dst, payload).map_err(|_| {
        FrameError::BufferTooSmall {
            need,
            have: out.len(),
        }
    })?;
    Ok(pad(out, l2 + n))
}

/// Write an Ethernet/IPv6/UDP frame carrying `payload` from `src` to `dst` into `out`; returns
/// the frame length. Traffic class and flow label 0, hop limit 64, no extension headers; the
/// UDP checksum, mandatory over IPv6 (RFC 8200 §8.1), covers the pseudo-header of source,
/// destination, upper-layer length and next header. Scope ids and flow info of the socket
/// addresses are ignored.
pub fn build_udp6_reply(
    out: &mut [u8],
    eth: &EthHeader,
    src: SocketAddrV6,
    dst: SocketAddrV6,
    payload: &[u8],
) -> Result<usize, FrameError> {
    if payload.len() > usize::from(u16::MAX) - UDP_HEADER {
        return Err(FrameError::PayloadTooLarge(payload.len()));
    }
    let need = eth.wire_len() + IPV6_HEADER + UDP_HEADER + payload.len();
    if need > out.len() {
        return Err(FrameError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    let l2 = eth.write(out, ETHERTYPE_IPV6)?;
    let ulen = (UDP_HEADER + payload.len()) as u16;
    let o = &mut out[l2..need];
    // RFC 8200 §3: version 6, traffic class, flow label, payload length, next header, hop limit.
    o[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    o[4..6].copy_from_slice(&ulen.to_be_bytes());
    o[6] = PROTO_UDP;
    o[7] = HOP_LIMIT;
    o[8..24].copy_from_slice(&src.ip().octets());
    o[24..40].copy_from_slice(&dst.ip().octets());
    let u = &mut o[IPV6_HEADER..];
    u[..2].copy_from_slice(&src.port().to_be_bytes());
    u[2..4].copy_from_slice(&dst.port().to_be_bytes());
    u[4..6].copy_from_slice(&ulen.to_be_bytes());
    u[6..8].fill(0);
    u[UDP_HEADER..].copy_from_slice(payload);
    // RFC 8200 §8.1 pseudo-header: the two addresses, the 32-bit upper-layer length and the
    // next header value, summed as 16-bit words into the initial value of the checksum.
    let mut pseudo = 0u32;
    for a in [src.ip().octets(), dst.ip().octets()] {
        for w in a.chunks_exact(2) {
            pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
    }
    pseudo += u32::from(ulen) + u32::from(PROTO_UDP);
    let mut sum = checksum(u, pseudo);
    // RFC 768 / RFC 8200 §8.1: a computed zero is sent as all ones (zero means "none").
    if sum == 0 {
        sum = 0xffff;
    }
    u[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(pad(out, need))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        LinkExtHeader, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader, VlanId,
    };
    use proptest::prelude::*;

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];
    const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    fn eth(vlans: [Option<VlanTag>; 2]) -> EthHeader {
        EthHeader {
            dst_mac: CLIENT_MAC,
            src_mac: SERVER_MAC,
            vlans,
        }
    }

    fn v4(a: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), port)
    }

    fn v6(a: &str, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(a.parse().unwrap(), port, 0, 0)
    }

    /// Check a built frame with etherparse: checksums recomputed independently, VLAN ids,
    /// addresses, ports and payload.
    fn verify_with_etherparse(frame: &[u8], vlans: &[u16], payload: &[u8]) {
        let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
        let ids: Vec<u16> = h
            .link_exts
            .iter()
            .map(|x| match x {
                LinkExtHeader::Vlan(v) => v.vlan_id.value(),
                LinkExtHeader::Macsec(_) => panic!("macsec"),
            })
            .collect();
        assert_eq!(ids, vlans);
        let Some(TransportHeader::Udp(udp)) = h.transport else {
            panic!("no UDP");
        };
        let got = &h.payload.slice()[..usize::from(udp.length) - 8];
        assert_eq!(got, payload);
        match h.net {
            Some(NetHeaders::Ipv4(ip, _)) => {
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ip, got).unwrap());
            }
            Some(NetHeaders::Ipv6(ip, _)) => {
                assert_ne!(udp.checksum, 0, "RFC 8200 §8.1: the checksum is mandatory");
                assert_eq!(udp.checksum, udp.calc_checksum_ipv6(&ip, got).unwrap());
            }
            other => panic!("not IP: {other:?}"),
        }
    }

    #[test]
    fn udp4_round_trip_with_two_tags_and_independent_checksums() {
        let tags = [
            Some(VlanTag {
                tpid: TPID_8021AD,
                tci: 0x2064,
            }),
            Some(VlanTag {
                tpid: TPID_8021Q,
                tci: 0x0007,
            }),
        ];
        let payload: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let mut out = [0u8; 2048];
        let n = build_udp4_reply(
            &mut out,
            &eth(tags),
            v4([192, 0, 2, 1], 67),
            v4([192, 0, 2, 77], 68),
            &payload,
        )
        .unwrap();
        assert_eq!(n, 14 + 8 + 20 + 8 + 300);
        verify_with_etherparse(&out[..n], &[100, 7], &payload);
        let info = parse(&out[..n]).unwrap();
        assert_eq!(info.eth, eth(tags));
        assert_eq!(
            info.ip,
            IpPair::V4 {
                src: Ipv4Addr::new(192, 0, 2, 1),
                dst: Ipv4Addr::new(192, 0, 2, 77)
            }
        );
        assert_eq!((info.src_port, info.dst_port), (67, 68));
        assert_eq!(info.payload(&out[..n]), &payload[..]);
        assert_eq!(info.eth.vlans[0].unwrap().vid(), 100);
    }

    #[test]
    fn udp6_round_trip_untagged_and_single_tag() {
        let payload = b"\x07\x12\x34\x56 dhcpv6 reply";
        for (tags, ids) in [
            ([None, None], &[][..]),
            (
                [
                    Some(VlanTag {
                        tpid: TPID_8021Q,
                        tci: 0xe00a,
                    }),
                    None,
                ],
                &[10][..],
            ),
        ] {
            let mut out = [0u8; 512];
            let n = build_udp6_reply(
                &mut out,
                &eth(tags),
                v6("fe80::1", 547),
                v6("fe80::2:3", 546),
                payload,
            )
            .unwrap();
            verify_with_etherparse(&out[..n], ids, payload);
            let info = parse(&out[..n]).unwrap();
            assert_eq!(info.eth.vlans, tags);
            assert_eq!(
                info.ip,
                IpPair::V6 {
                    src: "fe80::1".parse().unwrap(),
                    dst: "fe80::2:3".parse().unwrap()
                }
            );
            assert_eq!((info.src_port, info.dst_port), (547, 546));
            assert_eq!(info.payload(&out[..n]), payload);
        }
    }

    #[test]
    fn reply_mirrors_request_tags_and_addresses_the_client() {
        // A tagged DISCOVER built by etherparse, not by us.
        let b = PacketBuilder::ethernet2(CLIENT_MAC, [0xff; 6])
            .double_vlan(VlanId::try_new(300).unwrap(), VlanId::try_new(12).unwrap())
            .ipv4([0, 0, 0, 0], [255, 255, 255, 255], 64)
            .udp(68, 67);
        let req_payload = [1u8, 1, 6, 0, 0xde, 0xad];
        let mut req = Vec::new();
        b.write(&mut req, &req_payload).unwrap();
        let info = parse(&req).unwrap();
        assert_eq!(info.payload(&req), &req_payload);
        assert_eq!((info.src_port, info.dst_port), (68, 67));
        assert_eq!(info.eth.vlans[0].map(VlanTag::vid), Some(300));
        assert_eq!(info.eth.vlans[1].map(VlanTag::vid), Some(12));
        let reth = info.reply_eth(SERVER_MAC);
        assert_eq!(reth.dst_mac, CLIENT_MAC);
        assert_eq!(reth.src_mac, SERVER_MAC);
        let mut out = [0u8; 600];
        let n = build_udp4_reply(
            &mut out,
            &reth,
            v4([192, 0, 2, 1], 67),
            v4([192, 0, 2, 50], 68),
            b"offer",
        )
        .unwrap();
        // Same TPIDs as the request, byte for byte, in the same place.
        assert_eq!(out[12..20], req[12..20]);
        assert_eq!(n, MIN_FRAME.max(14 + 8 + 28 + 5));
        verify_with_etherparse(&out[..n], &[300, 12], b"offer");
        let back = parse(&out[..n]).unwrap();
        assert_eq!(back.eth.vlans, info.eth.vlans);
        assert_eq!(back.payload(&out[..n]), b"offer");
    }

    #[test]
    fn short_reply_is_padded_and_padding_is_not_payload() {
        let mut out = [0xaau8; 128];
        let n = build_udp4_reply(
            &mut out,
            &eth([None, None]),
            v4([10, 0, 0, 1], 67),
            v4([10, 0, 0, 2], 68),
            b"x",
        )
        .unwrap();
        assert_eq!(n, MIN_FRAME);
        assert!(out[14 + 29..n].iter().all(|&b| b == 0));
        assert_eq!(parse(&out[..n]).unwrap().payload(&out[..n]), b"x");
    }

    #[test]
    fn ipv6_extension_headers_are_skipped_up_to_the_bound() {
        let payload = b"solicit";
        let mut base = [0u8; 256];
        let n = build_udp6_reply(
            &mut base,
            &eth([None, None]),
            v6("fe80::2", 546),
            v6("ff02::1:2", 547),
            payload,
        )
        .unwrap();
        // Insert `k` extension headers of 8 octets (hop-by-hop first, then destination
        // options), each with one PadN option, in front of UDP.
        let with_ext = |kinds: &[u8]| -> Vec<u8> {
            let mut f = base[..14 + 40].to_vec();
            let first = kinds.first().copied().unwrap_or(PROTO_UDP);
            f[14 + 6] = first;
            for (i, _) in kinds.iter().enumerate() {
                let next = kinds.get(i + 1).copied().unwrap_or(PROTO_UDP);
                f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
            f.extend_from_slice(&base[14 + 40..n]);
            let plen = (f.len() - 14 - 40) as u16;
            f[14 + 4..14 + 6].copy_from_slice(&plen.to_be_bytes());
            f
        };
        let f = with_ext(&[IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_DEST_OPTS]);
        let info = parse(&f).unwrap();
        assert_eq!(info.payload(&f), payload);
        assert_eq!(info.dst_port, 547);
        // etherparse agrees on where the payload is.
        let h = PacketHeaders::from_ethernet_slice(&f).unwrap();
        assert_eq!(&h.payload.slice()[..payload.len()], payload);
        assert_eq!(
            parse(&with_ext(&[IPV6_DEST_OPTS, IPV6_HOP_BY_HOP])),
            Err(FrameError::Malformed("IPv6 hop-by-hop"))
        );
        assert!(parse(&with_ext(&[IPV6_DEST_OPTS; MAX_IPV6_EXT_HEADERS])).is_ok());
        assert_eq!(
            parse(&with_ext(&[IPV6_DEST_OPTS; MAX_IPV6_EXT_HEADERS + 1])),
            Err(FrameError::TooManyExtHeaders)
        );
        assert_eq!(
            parse(&with_ext(&[IPV6_FRAGMENT])),
            Err(FrameError::Fragment)
        );
    }

    fn udp4_frame() -> Vec<u8> {
        let mut out = vec![0u8; 400];
        let n = build_udp4_reply(
            &mut out,
            &eth([
                Some(VlanTag {
                    tpid: TPID_8021Q,
                    tci: 5,
                }),
                None,
            ]),
            v4([192, 0, 2, 9], 68),
            v4([255, 255, 255, 255], 67),
            &[0x55; 250],
        )
        .unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn malformed_frames_are_refused_with_the_reason() {
        let good = udp4_frame();
        let ip = 18;
        let set = |at: usize, v: &[u8]| {
            let mut f = good.clone();
            f[at..at + v.len()].copy_from_slice(v);
            f
        };
        assert_eq!(parse(&good[..13]), Err(FrameError::Truncated("Ethernet")));
        assert_eq!(
            parse(&set(16, &[0x08, 0x06])),
            Err(FrameError::NotIp(0x0806))
        );
        // Three tags.
        let mut three = good[..12].to_vec();
        for _ in 0..3 {
            three.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        three.extend_from_slice(&good[16..]);
        assert_eq!(parse(&three), Err(FrameError::TooManyVlans));
        assert_eq!(
            parse(&set(ip, &[0x65])),
            Err(FrameError::Malformed("IPv4 version"))
        );
        assert_eq!(
            parse(&set(ip, &[0x44])),
            Err(FrameError::Malformed("IPv4 IHL"))
        );
        assert_eq!(parse(&set(ip + 6, &[0x20, 0])), Err(FrameError::Fragment));
        assert_eq!(
            parse(&set(ip + 6, &[0x00, 0x01])),
            Err(FrameError::Fragment)
        );
        assert!(
            parse(&set(ip + 6, &[0x40, 0])).is_ok(),
            "DF alone is not a fragment"
        );
        assert_eq!(parse(&set(ip + 9, &[6])), Err(FrameError::NotUdp(6)));
        assert_eq!(
            parse(&set(ip + 2, &[0xff, 0xff])),
            Err(FrameError::Truncated("IPv4"))
        );
        assert_eq!(
            parse(&set(ip + 2, &[0, 19])),
            Err(FrameError::Malformed("IPv4 total length"))
        );
        assert_eq!(
            parse(&set(ip + 20 + 4, &[0, 7])),
            Err(FrameError::Malformed("UDP length"))
        );
        assert_eq!(
            parse(&set(ip + 20 + 4, &[0xff, 0])),
            Err(FrameError::Truncated("UDP"))
        );
        // IPv4 options (RFC 791 §3.1): IHL 6 and four option bytes (NOP, NOP, NOP, EOL) move
        // UDP by four bytes.
        let mut opt = good.clone();
        opt[ip] = 0x46;
        opt.splice(ip + 20..ip + 20, [1, 1, 1, 0]);
        let total = u16::from_be_bytes([opt[ip + 2], opt[ip + 3]]) + 4;
        opt[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        let info = parse(&opt).unwrap();
        assert_eq!(info.payload(&opt), &[0x55; 250]);
        let mut tiny = [0u8; 8];
        assert_eq!(
            build_udp4_reply(
                &mut tiny,
                &eth([None, None]),
                v4([1, 2, 3, 4], 1),
                v4([1, 2, 3, 4], 2),
                b""
            ),
            Err(FrameError::BufferTooSmall { need: 42, have: 8 })
        );
        let mut big = vec![0u8; 70_000];
        let payload = vec![0u8; 65_530];
        assert_eq!(
            build_udp6_reply(
                &mut big,
                &eth([None, None]),
                v6("::1", 1),
                v6("::1", 2),
                &payload
            ),
            Err(FrameError::PayloadTooLarge(65_530))
        );
    }

    #[test]
    fn every_truncation_of_valid_frames_is_refused() {
        let mut v6f = [0u8; 300];
        let n6 = build_udp6_reply(
            &mut v6f,
            &eth([None, None]),
            v6("2001:db8::1", 547),
            v6("2001:db8::2", 546),
            &[9; 200],
        )
        .unwrap();
        for f in [udp4_frame(), v6f[..n6].to_vec()] {
            assert!(parse(&f).is_ok());
            for cut in 0..f.len() {
                assert!(parse(&f[..cut]).is_err(), "cut at {cut} accepted");
            }
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_stays_inside(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(info) = parse(&data) {
                prop_assert!(info.payload_offset + info.payload_len <= data.len());
            }
        }

        #[test]
        fn parse_of_mutated_frames_never_panics(
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8),
            cut in 0usize..400,
            use_v6 in any::<bool>(),
        ) {
            let mut f = if use_v6 {
                let mut o = vec![0u8; 300];
                let n = build_udp6_reply(&mut o, &eth([None, None]), v6("fe80::1", 547),
                    v6("fe80::2", 546), &[3; 100]).unwrap();
                o.truncate(n);
                o
            } else {
                udp4_frame()
            };
            for (at, v) in flips {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(cut.min(f.len()));
            if let Ok(info) = parse(&f) {
                prop_assert!(info.payload_offset + info.payload_len <= f.len());
                prop_assert_eq!(info.payload(&f).len(), info.payload_len);
            }
        }

        #[test]
        fn build_then_parse_round_trips(
            payload in proptest::collection::vec(any::<u8>(), 0..1400),
            tags in proptest::collection::vec((prop_oneof![Just(TPID_8021Q), Just(TPID_8021AD)], any::<u16>()), 0..=2),
            sport in any::<u16>(),
            dport in any::<u16>(),
            a in any::<[u8; 4]>(),
            b6 in any::<[u8; 16]>(),
        ) {
            let mut vl = [None; 2];
            for (i, (tpid, tci)) in tags.iter().enumerate() {
                vl[i] = Some(VlanTag { tpid: *tpid, tci: *tci });
            }
            let e = eth(vl);
            let mut out = [0u8; 1600];
            let n = build_udp4_reply(&mut out, &e, v4(a, sport), v4([192, 0, 2, 1], dport), &payload).unwrap();
            let info = parse(&out[..n]).unwrap();
            prop_assert_eq!(info.eth, e);
            prop_assert_eq!((info.src_port, info.dst_port), (sport, dport));
            prop_assert_eq!(info.payload(&out[..n]), &payload[..]);
            let ids: Vec<u16> = tags.iter().map(|t| t.1 & 0xfff).collect();
            verify_with_etherparse(&out[..n], &ids, &payload);
            let s6 = SocketAddrV6::new(Ipv6Addr::from(b6), sport, 0, 0);
            let n = build_udp6_reply(&mut out, &e, s6, v6("fe80::1", dport), &payload).unwrap();
            let info = parse(&out[..n]).unwrap();
            prop_assert_eq!(info.ip, IpPair::V6 { src: Ipv6Addr::from(b6), dst: "fe80::1".parse().unwrap() });
            prop_assert_eq!(info.payload(&out[..n]), &payload[..]);
            verify_with_etherparse(&out[..n], &ids, &payload);
        }
    }
}
