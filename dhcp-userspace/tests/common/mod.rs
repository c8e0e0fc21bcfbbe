//! Helpers shared by the integration tests that drive the server over loopback: a relay
//! agent speaking for simulated DHCPv4 clients, and a kill-on-drop guard for the server
//! process.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Child;
use std::time::{Duration, Instant};

use twinlease::wire::v4::{MessageType, OptionIter, Packet, ReplyHeader, ReplyWriter, opt};

/// The relay agent address the tests put in giaddr.
pub const GIADDR: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A relay agent speaking for many simulated clients.
pub struct Relay {
    pub sock: UdpSocket,
    pub server: SocketAddrV4,
}

/// What a reply said.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub kind: u8,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    pub lease_time: Option<u32>,
}

pub fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x55, b[0], b[1], b[2], b[3]]
}

impl Relay {
    pub fn new(server_port: u16) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self {
            sock,
            server: SocketAddrV4::new(Ipv4Addr::LOCALHOST, server_port),
        }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    pub fn send(
        &self,
        kind: MessageType,
        i: u32,
        xid: u32,
        ciaddr: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        server_id: Option<Ipv4Addr>,
    ) {
        let mut hw = [0u8; 16];
        hw[..6].copy_from_slice(&mac(i));
        let hdr = ReplyHeader {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 1,
            xid,
            secs: 0,
            flags: 0,
            ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: GIADDR,
            chaddr: hw,
        };
        let mut buf = [0u8; 600];
        let mut w = ReplyWriter::new(&mut buf, &hdr).unwrap();
        w.option_u8(opt::MESSAGE_TYPE, kind as u8).unwrap();
        let mut cid = [0u8; 7];
        cid[0] = 1;
        cid[1..].copy_from_slice(&mac(i));
        w.option(opt::CLIENT_ID, &cid).unwrap();
        if let Some(r) = requested {
            w.option_ip(opt::REQUESTED_IP, r).unwrap();
        }
        if let Some(s) = server_id {
            w.option_ip(opt::SERVER_ID, s).unwrap();
        }
        w.option(opt::PRL, &[1, 3, 6, 15]).unwrap();
        let n = w.finish();
        self.sock.send_to(&buf[..n], self.server).unwrap();
    }

    pub fn recv(&self) -> Option<(Reply, Option<Ipv4Addr>)> {
        let mut buf = [0u8; 1500];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        let p = Packet::new_checked(&buf[..n]).ok()?;
        let mut kind = 0;
        let mut lease_time = None;
        let mut sid = None;
        for o in OptionIter::new(&buf[..n]) {
            let (c, v) = o.ok()?;
            match c {
                opt::MESSAGE_TYPE => kind = v[0],
                opt::LEASE_TIME => lease_time = Some(u32::from_be_bytes(v.try_into().ok()?)),
                opt::SERVER_ID => sid = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                _ => {}
            }
        }
        Some((
            Reply {
                kind,
                xid: p.xid(),
                yiaddr: p.yiaddr(),
                lease_time,
            },
            sid,
        ))
    }

    /// Wait for the reply with this xid (bounded).
    pub fn wait(&self, xid: u32) -> Option<(Reply, Option<Ipv4Addr>)> {
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Some(r) = self.recv()
                && r.0.xid == xid
            {
                return Some(r);
            }
        }
        None
    }

    /// DISCOVER + REQUEST for client `i`; the address it was given.
    pub fn dora(&self, i: u32) -> Option<Ipv4Addr> {
        let xid = i.wrapping_mul(2_654_435_761);
        self.send(
            MessageType::Discover,
            i,
            xid,
            Ipv4Addr::UNSPECIFIED,
            None,
            None,
        );
        let (offer, sid) = self.wait(xid)?;
        assert_eq!(offer.kind, MessageType::Offer as u8);
        self.send(
            MessageType::Request,
            i,
            xid ^ 1,
            Ipv4Addr::UNSPECIFIED,
            Some(offer.yiaddr),
            sid,
        );
        let (ack, _) = self.wait(xid ^ 1)?;
        (ack.kind == MessageType::Ack as u8).then_some(ack.yiaddr)
    }
}

/// The server process, killed and reaped on drop, also when an assertion fails first.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}
