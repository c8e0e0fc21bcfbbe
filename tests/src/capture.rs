//! Packet captures with `tcpdump`, and a reader that pulls DHCP messages out of them.
//!
//! The crash test needs the exact set of `(yiaddr, chaddr)` pairs a server acknowledged: perfdhcp
//! cannot tell, the wire can. tcpdump writes the capture to its standard output (`-w -`,
//! packet-buffered), which goes straight into a file; its closing statistics say whether
//! the kernel dropped packets, in which case the capture is incomplete.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        let log = pcap.with_extension("log");
        let mut cmd = ns.command(
            "tcpdump",
            &[
                "-i",
                iface,
                "-n",
                "-U",
                "-B",
                "32768",
                "-s",
                "1500",
                "-w",
                "-",
                "udp port 67 or udp port 68",
            ],
        );
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
        if let Some(m) = parse_frame(frame) {
            out.push(m);
        }
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
}
