//! Packet captures with `tcpdump`, and a reader that pulls DHCP messages out of them.
//!
//! The crash test needs the exact set of `(yiaddr, chaddr)` pairs a server acknowledged: perfdhcp
//! cannot tell, the wire can. tcpdump writes the capture to its standard output (`-w -`,
//! packet-buffered), which goes straight into a file; its closing statistics say whether
//! the kernel dropped packets, in which case the capture is incomplete. DHCPv6 captures
//! ([`Capture::start_v6`], [`read_pcap6`]) are decoded below their relay levels with the
//! server's own codec.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use twinlease::wire::v6::{RelayMessage, Request, field, find_option, opt};

use crate::netns::Netns;
use crate::process::{self, ChildGuard};
use crate::{Error, Result};

/// A running capture of DHCP traffic (UDP ports 67 and 68) on one interface.
#[derive(Debug)]
pub struct Capture {
    child: ChildGuard,
    pcap: PathBuf,
}

/// How a capture ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSummary {
    /// The pcap file.
    pub pcap: PathBuf,
    /// Packets tcpdump reported captured.
    pub captured: Option<u64>,
    /// Packets the kernel dropped (0 means the capture is complete).
    pub dropped_by_kernel: Option<u64>,
}

impl Capture {
    /// Starts `tcpdump` on `iface` in `ns`, writing to `pcap` (log next to it, `.log`),
    /// and waits until it listens.
    pub fn start(ns: &Netns, iface: &str, pcap: &Path) -> Result<Self> {
        Self::start_filtered(ns, iface, pcap, "udp port 67 or udp port 68")
    }

    /// Like [`Capture::start`] but for DHCPv6: UDP ports 546 and 547 (RFC 8415 §7.2), in
    /// immediate mode, so that the last packets before [`Capture::stop`] are not left in a
    /// partly filled kernel ring block (a short exchange would otherwise lose its tail).
    pub fn start_v6(ns: &Netns, iface: &str, pcap: &Path) -> Result<Self> {
        Self::spawn(ns, iface, pcap, "udp port 546 or udp port 547", true)
    }

    /// Like [`Capture::start`] with the tcpdump filter expression `filter`.
    pub fn start_filtered(ns: &Netns, iface: &str, pcap: &Path, filter: &str) -> Result<Self> {
        Self::spawn(ns, iface, pcap, filter, false)
    }

    fn spawn(ns: &Netns, iface: &str, pcap: &Path, filter: &str, immediate: bool) -> Result<Self> {
        let log = pcap.with_extension("log");
        let mut args = vec![
            "-i", iface, "-n", "-U", "-B", "32768", "-s", "1500", "-w", "-",
        ];
        if immediate {
            args.push("--immediate-mode");
        }
        args.push(filter);
        let mut cmd = ns.command("tcpdump", &args);
        let child = ChildGuard::spawn_split("tcpdump", &mut cmd, pcap, &log)?
            .with_grace(Duration::from_secs(5));
        let mut me = Self {
            child,
            pcap: pcap.to_path_buf(),
        };
        let ready = process::wait_until(Duration::from_secs(10), || {
            if me.child.log_text().contains("listening on") {
                Some(true)
            } else if !me.child.is_running() {
                Some(false)
            } else {
                None
            }
        });
        if ready == Some(true) {
            Ok(me)
        } else {
            Err(Error(format!(
                "tcpdump did not start on {iface}:\n{}",
                me.child.log_text()
            )))
        }
    }

    /// Stops the capture (SIGTERM, so tcpdump flushes and prints its statistics).
    pub fn stop(mut self) -> Result<CaptureSummary> {
        self.child.terminate()?;
        let log = self.child.log_text();
        let count = |suffix: &str| {
            log.lines()
                .find(|l| l.trim_end().ends_with(suffix))
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
        };
        Ok(CaptureSummary {
            pcap: self.pcap.clone(),
            captured: count("packets captured"),
            dropped_by_kernel: count("packets dropped by kernel"),
        })
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(Error(format!("bad MAC address {s:?}")));
        }
        for (o, p) in out.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| Error(format!("bad MAC address {s:?}")))?;
        }
        Ok(Self(out))
    }
}

/// The DHCP (version 4) fields the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp4Message {
    /// BOOTP op: 1 request, 2 reply.
    pub op: u8,
    /// Option 53 (1 DISCOVER, 2 OFFER, 3 REQUEST, 4 DECLINE, 5 ACK, 6 NAK, 7 RELEASE ...).
    pub msg_type: Option<u8>,
    /// Transaction id.
    pub xid: u32,
    /// Client hardware address (Ethernet).
    pub chaddr: Mac,
    /// `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// `yiaddr`: the address given.
    pub yiaddr: Ipv4Addr,
    /// `giaddr`: the relay.
    pub giaddr: Ipv4Addr,
    /// IPv4 source of the packet.
    pub ip_src: Ipv4Addr,
    /// IPv4 destination of the packet.
    pub ip_dst: Ipv4Addr,
}

/// DHCP message type DHCPACK.
pub const DHCPACK: u8 = 5;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ip4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(a))
}

/// Parses one Ethernet frame (optionally VLAN-tagged) carrying IPv4/UDP/BOOTP; `None` for
/// anything else or anything truncated.
#[must_use]
pub fn parse_frame(frame: &[u8]) -> Option<Dhcp4Message> {
    let mut off = 12;
    let mut ethertype = be16(frame, off)?;
    off += 2;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        ethertype = be16(frame, off + 2)?;
        off += 4;
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(off..)?;
    if ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let ip_src = ip4(ip, 12)?;
    let ip_dst = ip4(ip, 16)?;
    let udp = ip.get(ihl..)?;
    let (sport, dport) = (be16(udp, 0)?, be16(udp, 2)?);
    if ![67, 68].contains(&sport) && ![67, 68].contains(&dport) {
        return None;
    }
    let b = udp.get(8..)?;
    if b.len() < 240 || b[236..240] != [99, 130, 83, 99] || b[2] != 6 {
        return None;
    }
    let chaddr: [u8; 6] = b[28..34].try_into().ok()?;
    let mut msg_type = None;
    let mut i = 240;
    while i < b.len() {
        match b[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = usize::from(*b.get(i + 1)?);
                if code == 53 && len == 1 {
                    msg_type = Some(*b.get(i + 2)?);
                }
                i += 2 + len;
            }
        }
    }
    Some(Dhcp4Message {
        op: b[0],
        msg_type,
        xid: u32::from_be_bytes(b[4..8].try_into().ok()?),
        chaddr: Mac(chaddr),
        ciaddr: ip4(b, 12)?,
        yiaddr: ip4(b, 16)?,
        giaddr: ip4(b, 24)?,
        ip_src,
        ip_dst,
    })
}

/// Reads a classic pcap file (either byte order, micro- or nanosecond) of Ethernet frames
/// and returns the DHCP messages in it, in order. A truncated last record (the writer
/// was killed) is ignored.
pub fn read_pcap(path: &Path) -> Result<Vec<Dhcp4Message>> {
    let data = std::fs::read(path)?;
    parse_pcap(&data).map_err(|e| Error(format!("{}: {e}", path.display())))
}

/// [`read_pcap`] on bytes.
///
/// # Panics
/// Never: the header length is checked before it is read.
pub fn parse_pcap(data: &[u8]) -> Result<Vec<Dhcp4Message>> {
    Ok(pcap_frames(data)?
        .into_iter()
        .filter_map(parse_frame)
        .collect())
}

/// The Ethernet frames of a classic pcap file, in order; a truncated last record is ignored.
///
/// # Panics
/// Never: the header length is checked before it is read.
pub fn pcap_frames(data: &[u8]) -> Result<Vec<&[u8]>> {
    if data.len() < 24 {
        return Err(Error::msg("not a pcap file: shorter than its header"));
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => return Err(Error(format!("not a pcap file: magic {magic:#x}"))),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let linktype = u32_at(20).unwrap_or(0) & 0x0fff_ffff;
    if linktype != 1 {
        return Err(Error(format!(
            "pcap link type {linktype}, expected Ethernet (1)"
        )));
    }
    let mut out = Vec::new();
    let mut off = 24;
    while let Some(incl) = u32_at(off + 8) {
        let start = off + 16;
        let end = start + incl as usize;
        let Some(frame) = data.get(start..end) else {
            break;
        };
        out.push(frame);
        off = end;
    }
    Ok(out)
}

/// The (yiaddr, chaddr) of every DHCPACK in the file that gives an address, in order
/// (duplicates kept).
pub fn acks_in(path: &Path) -> Result<Vec<(Ipv4Addr, Mac)>> {
    Ok(read_pcap(path)?
        .into_iter()
        .filter(|m| m.op == 2 && m.msg_type == Some(DHCPACK) && !m.yiaddr.is_unspecified())
        .map(|m| (m.yiaddr, m.chaddr))
        .collect())
}

/// One relay level of a DHCPv6 message (RFC 8415 §9): RELAY-FORW or RELAY-REPL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay6 {
    /// 12 RELAY-FORW, 13 RELAY-REPL.
    pub msg_type: u8,
    /// `hop-count`.
    pub hop_count: u8,
    /// `link-address`.
    pub link_address: Ipv6Addr,
    /// `peer-address`.
    pub peer_address: Ipv6Addr,
    /// The Interface-Id option's value (RFC 8415 §21.18), when present.
    pub interface_id: Option<Vec<u8>>,
}

/// An address (`IA_NA`/IAADDR) or prefix (`IA_PD`/IAPREFIX) in a DHCPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IaEntry6 {
    /// IAID of the IA it is in.
    pub iaid: u32,
    /// The address or prefix.
    pub addr: Ipv6Addr,
    /// 128 for an address.
    pub prefix_len: u8,
    /// Preferred lifetime, seconds.
    pub preferred: u32,
    /// Valid lifetime, seconds (0: the server takes it back).
    pub valid: u32,
}

/// The DHCPv6 fields the tests look at, decoded with the server's own codec
/// (`twinlease::wire::v6::Request::parse`) below the relay levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp6Message {
    /// IPv6 source.
    pub ip_src: Ipv6Addr,
    /// IPv6 destination.
    pub ip_dst: Ipv6Addr,
    /// UDP source port.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
    /// Relay levels, outermost first (empty when not relayed).
    pub relays: Vec<Relay6>,
    /// The inner message's type (1 SOLICIT, 2 ADVERTISE, 3 REQUEST, 5 RENEW, 7 REPLY ...).
    pub msg_type: u8,
    /// Transaction id.
    pub xid: u32,
    /// CLIENTID (the client's DUID).
    pub client_id: Option<Vec<u8>>,
    /// `RAPID_COMMIT` present.
    pub rapid_commit: bool,
    /// IAADDR entries of every `IA_NA`.
    pub addrs: Vec<IaEntry6>,
    /// IAPREFIX entries of every `IA_PD`.
    pub prefixes: Vec<IaEntry6>,
    /// Option 23 (RFC 3646 §3), when present.
    pub dns_servers: Option<Vec<Ipv6Addr>>,
}

/// DHCPv6 message types used by the tests (RFC 8415 §7.3).
pub mod msg6 {
    /// SOLICIT.
    pub const SOLICIT: u8 = 1;
    /// ADVERTISE.
    pub const ADVERTISE: u8 = 2;
    /// REQUEST.
    pub const REQUEST: u8 = 3;
    /// RENEW.
    pub const RENEW: u8 = 5;
    /// REBIND.
    pub const REBIND: u8 = 6;
    /// REPLY.
    pub const REPLY: u8 = 7;
    /// RELEASE.
    pub const RELEASE: u8 = 8;
    /// RELAY-FORW.
    pub const RELAY_FORW: u8 = 12;
    /// RELAY-REPL.
    pub const RELAY_REPL: u8 = 13;
}

/// `duid:00:01:...`: a DUID as `twinlease leases` names the client.
#[must_use]
pub fn duid_key(duid: &[u8]) -> String {
    let hex: Vec<String> = duid.iter().map(|b| format!("{b:02x}")).collect();
    format!("duid:{}", hex.join(":"))
}

impl Dhcp6Message {
    /// The client's DUID as `twinlease leases` names it (`duid:...`).
    #[must_use]
    pub fn client_key(&self) -> Option<String> {
        self.client_id.as_deref().map(duid_key)
    }

    /// Whether a server sent it (REPLY, ADVERTISE, or a RELAY-REPL around one).
    #[must_use]
    pub fn from_server(&self) -> bool {
        self.sport == 547 && matches!(self.msg_type, msg6::ADVERTISE | msg6::REPLY)
    }
}

/// Decodes a DHCPv6 UDP payload: descends RELAY-FORW / RELAY-REPL levels (at most 8, RFC
/// 8415 §7.6), then parses the inner message with the server's codec.
pub fn parse_dhcp6(payload: &[u8]) -> std::result::Result<(Vec<Relay6>, Request<'_>), String> {
    let mut relays = Vec::new();
    let mut inner = payload;
    while matches!(inner.first(), Some(&(msg6::RELAY_FORW | msg6::RELAY_REPL))) {
        if relays.len() == 8 {
            return Err("more than 8 relay levels".to_owned());
        }
        let r = RelayMessage::new_checked(inner).map_err(|e| format!("relay header: {e:?}"))?;
        let options = &inner[field::relay::OPTIONS];
        let interface_id = find_option(options, opt::INTERFACE_ID)
            .map_err(|e| format!("relay options: {e:?}"))?
            .map(<[u8]>::to_vec);
        relays.push(Relay6 {
            msg_type: r.msg_type(),
            hop_count: r.hop_count(),
            link_address: r.link_address(),
            peer_address: r.peer_address(),
            interface_id,
        });
        inner = find_option(options, opt::RELAY_MSG)
            .map_err(|e| format!("relay options: {e:?}"))?
            .ok_or_else(|| "relay message without RELAY_MSG".to_owned())?;
    }
    let req = Request::parse(inner).map_err(|e| format!("DHCPv6 message: {e:?}"))?;
    Ok((relays, req))
}

fn entries(ias: &[twinlease::wire::v6::IaRequest]) -> Vec<IaEntry6> {
    ias.iter()
        .flat_map(|ia| {
            ia.hints().iter().map(|h| IaEntry6 {
                iaid: ia.iaid,
                addr: h.address,
                prefix_len: h.prefix_len,
                preferred: h.preferred,
                valid: h.valid,
            })
        })
        .collect()
}

fn ip6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let a: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(a))
}

/// Parses one Ethernet frame (optionally VLAN-tagged) carrying IPv6/UDP to or from port 546
/// or 547 with a DHCPv6 message; `None` for anything else, truncated or undecodable.
#[must_use]
pub fn parse_frame6(frame: &[u8]) -> Option<Dhcp6Message> {
    let mut off = 12;
    let mut ethertype = be16(frame, off)?;
    off += 2;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        ethertype = be16(frame, off + 2)?;
        off += 4;
    }
    if ethertype != 0x86dd {
        return None;
    }
    let ip = frame.get(off..)?;
    if ip.first()? >> 4 != 6 {
        return None;
    }
    let (ip_src, ip_dst) = (ip6_at(ip, 8)?, ip6_at(ip, 24)?);
    // Skip Hop-by-Hop, Routing and Destination Options headers to UDP.
    let mut next = *ip.get(6)?;
    let mut at = 40;
    while matches!(next, 0 | 43 | 60) {
        let len = (usize::from(*ip.get(at + 1)?) + 1) * 8;
        next = *ip.get(at)?;
        at += len;
    }
    if next != 17 {
        return None;
    }
    let udp = ip.get(at..)?;
    let (sport, dport) = (be16(udp, 0)?, be16(udp, 2)?);
    if ![546, 547].contains(&sport) && ![546, 547].contains(&dport) {
        return None;
    }
    let udp_len = usize::from(be16(udp, 4)?);
    let payload = udp.get(8..udp_len.max(8))?;
    let (relays, req) = parse_dhcp6(payload).ok()?;
    let dns_servers = find_option(req.options, opt::DNS_SERVERS)
        .ok()?
        .map(|v| v.chunks_exact(16).filter_map(|c| ip6_at(c, 0)).collect());
    Some(Dhcp6Message {
        ip_src,
        ip_dst,
        sport,
        dport,
        relays,
        msg_type: req.message_type.into(),
        xid: req.xid,
        client_id: req.client_id.map(<[u8]>::to_vec),
        rapid_commit: req.rapid_commit,
        addrs: entries(req.ia_na()),
        prefixes: entries(req.ia_pd()),
        dns_servers,
    })
}

/// The DHCPv6 messages of a pcap file (see [`read_pcap`]), in order.
pub fn read_pcap6(path: &Path) -> Result<Vec<Dhcp6Message>> {
    let data = std::fs::read(path)?;
    let frames = pcap_frames(&data).map_err(|e| Error(format!("{}: {e}", path.display())))?;
    Ok(frames.into_iter().filter_map(parse_frame6).collect())
}

/// The REPLYs (also inside RELAY-REPL) a server sent in the file, in order.
pub fn replies6_in(path: &Path) -> Result<Vec<Dhcp6Message>> {
    Ok(read_pcap6(path)?
        .into_iter()
        .filter(|m| m.sport == 547 && m.msg_type == msg6::REPLY)
        .collect())
}

/// The REPLYs in the file that answer a client message of type `request_type` (matched by
/// transaction id and client DUID to a captured client message), in order.
pub fn replies6_to(path: &Path, request_type: u8) -> Result<Vec<Dhcp6Message>> {
    let all = read_pcap6(path)?;
    let asked: std::collections::HashSet<(u32, Option<Vec<u8>>)> = all
        .iter()
        .filter(|m| m.dport == 547 && m.msg_type == request_type)
        .map(|m| (m.xid, m.client_id.clone()))
        .collect();
    Ok(all
        .into_iter()
        .filter(|m| {
            m.sport == 547
                && m.msg_type == msg6::REPLY
                && asked.contains(&(m.xid, m.client_id.clone()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/UDP frame with a BOOTP reply of type `kind`.
    fn frame(kind: u8, vlan: bool) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 1]);
        if vlan {
            f.extend([0x81, 0x00, 0x00, 0x05]);
        }
        f.extend([0x08, 0x00]);
        let mut bootp = vec![0u8; 240];
        bootp[0] = 2;
        bootp[1] = 1;
        bootp[2] = 6;
        bootp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        bootp[16..20].copy_from_slice(&[192, 0, 2, 100]);
        bootp[24..28].copy_from_slice(&[192, 0, 2, 2]);
        bootp[28..34].copy_from_slice(&[0, 0x0c, 1, 2, 3, 4]);
        bootp[236..240].copy_from_slice(&[99, 130, 83, 99]);
        bootp.extend([0, 53, 1, kind, 54, 4, 192, 0, 2, 1, 255]);
        let udp_len = 8 + bootp.len();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        let total = (20 + udp_len) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend(ip);
        f.extend(67u16.to_be_bytes());
        f.extend(67u16.to_be_bytes());
        f.extend((udp_len as u16).to_be_bytes());
        f.extend([0, 0]);
        f.extend(bootp);
        f
    }

    fn pcap(frames: &[Vec<u8>], big_endian: bool) -> Vec<u8> {
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut d = Vec::new();
        d.extend(w32(0xa1b2_c3d4));
        d.extend(w16(2));
        d.extend(w16(4));
        d.extend(w32(0));
        d.extend(w32(0));
        d.extend(w32(65535));
        d.extend(w32(1));
        for f in frames {
            d.extend(w32(1));
            d.extend(w32(2));
            d.extend(w32(f.len() as u32));
            d.extend(w32(f.len() as u32));
            d.extend(f);
        }
        d
    }

    #[test]
    fn finds_acks_in_both_byte_orders_and_with_vlan() {
        for be in [false, true] {
            let data = pcap(&[frame(2, false), frame(5, true), frame(5, false)], be);
            let msgs = parse_pcap(&data).unwrap();
            assert_eq!(msgs.len(), 3);
            assert_eq!(msgs[0].msg_type, Some(2));
            assert_eq!(msgs[1].msg_type, Some(5));
            assert_eq!(msgs[1].yiaddr, Ipv4Addr::new(192, 0, 2, 100));
            assert_eq!(msgs[1].giaddr, Ipv4Addr::new(192, 0, 2, 2));
            assert_eq!(msgs[1].chaddr.to_string(), "00:0c:01:02:03:04");
            assert_eq!(msgs[1].xid, 0x1234_5678);
        }
    }

    #[test]
    fn ignores_truncated_tail_and_rejects_garbage() {
        let mut data = pcap(&[frame(5, false), frame(5, false)], false);
        data.truncate(data.len() - 10);
        assert_eq!(parse_pcap(&data).unwrap().len(), 1);
        assert!(parse_pcap(b"not a pcap file at all, really not").is_err());
        let mut short = frame(5, false);
        short.truncate(100);
        assert_eq!(parse_frame(&short), None);
    }

    #[test]
    fn mac_round_trips() {
        let m: Mac = "aa:BB:0c:01:02:ff".parse().unwrap();
        assert_eq!(m.to_string(), "aa:bb:0c:01:02:ff");
        assert!("aa:bb".parse::<Mac>().is_err());
    }

    fn opt6(code: u16, value: &[u8]) -> Vec<u8> {
        let mut o = code.to_be_bytes().to_vec();
        o.extend((value.len() as u16).to_be_bytes());
        o.extend(value);
        o
    }

    /// Ethernet/IPv6/UDP 547→547 with a RELAY-REPL around a REPLY that grants an address
    /// and a prefix and carries DNS servers.
    fn frame6() -> Vec<u8> {
        let addr: Ipv6Addr = "2001:db8:1::1234".parse().unwrap();
        let prefix: Ipv6Addr = "2001:db8:8012:3400::".parse().unwrap();
        let mut iaaddr = addr.octets().to_vec();
        iaaddr.extend(6u32.to_be_bytes());
        iaaddr.extend(10u32.to_be_bytes());
        let mut ia_na = 7u32.to_be_bytes().to_vec();
        ia_na.extend(3u32.to_be_bytes());
        ia_na.extend(5u32.to_be_bytes());
        ia_na.extend(opt6(5, &iaaddr));
        let mut iaprefix = 6u32.to_be_bytes().to_vec();
        iaprefix.extend(10u32.to_be_bytes());
        iaprefix.push(56);
        iaprefix.extend(prefix.octets());
        let mut ia_pd = 8u32.to_be_bytes().to_vec();
        ia_pd.extend([0; 8]);
        ia_pd.extend(opt6(26, &iaprefix));
        let mut dns = "2001:db8::53"
            .parse::<Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec();
        dns.extend("2001:db8::54".parse::<Ipv6Addr>().unwrap().octets());
        let mut reply = vec![7, 0x12, 0x34, 0x56];
        reply.extend(opt6(1, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 9]));
        reply.extend(opt6(2, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]));
        reply.extend(opt6(3, &ia_na));
        reply.extend(opt6(25, &ia_pd));
        reply.extend(opt6(23, &dns));
        let mut relay = vec![13, 0];
        relay.extend("2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
        relay.extend("fe80::9".parse::<Ipv6Addr>().unwrap().octets());
        relay.extend(opt6(18, b"port7"));
        relay.extend(opt6(9, &reply));
        let udp_len = 8 + relay.len();
        let mut f = vec![0x33, 0x33, 0, 1, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend([0x60, 0, 0, 0]);
        f.extend((udp_len as u16).to_be_bytes());
        f.extend([17, 64]);
        f.extend("2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend("2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
        f.extend(547u16.to_be_bytes());
        f.extend(547u16.to_be_bytes());
        f.extend((udp_len as u16).to_be_bytes());
        f.extend([0, 0]);
        f.extend(relay);
        f
    }

    #[test]
    fn decodes_relayed_dhcpv6_replies() {
        let data = pcap(&[frame(5, false), frame6()], false);
        assert_eq!(parse_pcap(&data).unwrap().len(), 1);
        let frames = pcap_frames(&data).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(parse_frame6(frames[0]), None);
        let m = parse_frame6(frames[1]).expect("a DHCPv6 message");
        assert!(m.from_server());
        assert_eq!((m.msg_type, m.xid), (msg6::REPLY, 0x12_3456));
        assert_eq!(m.relays.len(), 1);
        assert_eq!(m.relays[0].msg_type, msg6::RELAY_REPL);
        assert_eq!(m.relays[0].interface_id.as_deref(), Some(&b"port7"[..]));
        assert_eq!(
            m.relays[0].peer_address,
            "fe80::9".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            m.client_key().as_deref(),
            Some("duid:00:03:00:01:02:00:00:00:00:09")
        );
        assert_eq!(m.addrs.len(), 1);
        assert_eq!(
            m.addrs[0].addr,
            "2001:db8:1::1234".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!((m.addrs[0].iaid, m.addrs[0].prefix_len), (7, 128));
        assert_eq!((m.addrs[0].preferred, m.addrs[0].valid), (6, 10));
        assert_eq!(m.prefixes.len(), 1);
        assert_eq!((m.prefixes[0].iaid, m.prefixes[0].prefix_len), (8, 56));
        assert_eq!(m.dns_servers.as_ref().map(Vec::len), Some(2));
        // A truncated payload is not a message.
        let mut short = frame6();
        short.truncate(short.len() - 20);
        assert_eq!(parse_frame6(&short), None);
    }
}
