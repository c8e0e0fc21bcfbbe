//! End-to-end tests of the AF_XDP socket on a veth pair between two network namespaces
//! (root only; they print "skipped: needs root" otherwise).
//!
//! TX: frames built by [`frame::build_udp4_reply`] / [`frame::build_udp6_reply`] go out of
//! the socket's TX ring and are received by plain kernel UDP sockets on the peer, which
//! validates the IP and UDP checksums and the VLAN tags independently.
//! RX: the XDP program ([`program::XdpProgram`]) steers DHCP arriving on queue 0 into the
//! socket.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::frame::{self, EthHeader, IpPair, TPID_8021AD, TPID_8021Q, VlanTag};
use super::program::{AttachMode, XdpProgram};
use super::umem::{Umem, UmemConfig};
use super::xsk::{BindMode, BindPreference, Desc, XskConfig, XskSocket};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair (`va` in A with 2 RX/TX queues, `vb` in B with one TX
/// queue so everything B sends lands on A's RX queue 0), deleted on drop.
struct Lab {
    a: String,
    b: String,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    fn new() -> Option<Self> {
        // Safety: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: needs root");
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let lab = Self {
            a: format!("txa{}-{n}", std::process::id()),
            b: format!("txb{}-{n}", std::process::id()),
        };
        // The guard exists before the first namespace does, so a failure below still removes
        // whatever was created.
        run(&["ip", "netns", "add", &lab.a]);
        run(&["ip", "netns", "add", &lab.b]);
        #[rustfmt::skip]
        run(&["ip", "link", "add", "va", "netns", &lab.a, "address", "02:00:00:00:00:0a",
            "numtxqueues", "2", "numrxqueues", "2", "type", "veth", "peer", "name", "vb",
            "netns", &lab.b, "address", "02:00:00:00:00:0b", "numtxqueues", "1",
            "numrxqueues", "2"]);
        let (a, b) = (lab.a.as_str(), lab.b.as_str());
        run(&["ip", "-n", a, "addr", "add", "192.0.2.1/24", "dev", "va"]);
        run(&[
            "ip",
            "-n",
            a,
            "addr",
            "add",
            "2001:db8::1/64",
            "dev",
            "va",
            "nodad",
        ]);
        run(&["ip", "-n", b, "addr", "add", "192.0.2.2/24", "dev", "vb"]);
        run(&[
            "ip",
            "-n",
            b,
            "addr",
            "add",
            "2001:db8::2/64",
            "dev",
            "vb",
            "nodad",
        ]);
        for (ns, dev) in [(a, "va"), (a, "lo"), (b, "vb"), (b, "lo")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        Some(lab)
    }

    /// Run `f` on a thread that has entered namespace `ns` (setns is per thread, so the
    /// test's own thread stays where it is).
    fn within<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(format!("/run/netns/{ns}")).unwrap();
                // Safety: fd is an open namespace file; CLONE_NEWNET checks its type.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end (and its peer) and the VLAN devices.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // Safety: c is NUL-terminated.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}");
    i
}

fn small_umem() -> Umem {
    Umem::new(UmemConfig {
        frame_count: 256,
        frame_size: 2048,
        fill_size: 128,
        comp_size: 128,
    })
    .unwrap()
}

fn udp(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s
}

/// An `AF_PACKET` tap on one interface that gives back whole frames, VLAN tags included: the
/// kernel moves the outer tag of a received frame into the socket buffer's metadata, and
/// `PACKET_AUXDATA` reports it (TPID and TCI), so it is put back in front of the `EtherType`
/// here (IEEE 802.1Q §9.5).
struct Tap {
    fd: std::os::fd::OwnedFd,
}

impl Tap {
    fn open(dev: &str) -> Self {
        use std::os::fd::FromRawFd;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // Safety: plain socket(2); checked and owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        assert!(raw >= 0, "{}", std::io::Error::last_os_error());
        // Safety: raw is a fresh descriptor.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // Safety: all-zero sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = i32::try_from(ifindex(dev)).unwrap();
        // Safety: valid socket and sockaddr of the stated size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        let on: libc::c_int = 1;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // Safety: valid socket; option values of the stated sizes.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            );
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Self { fd }
    }

    /// The next frame, or None after the receive timeout.
    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        let mut ctrl = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Safety: all-zero msghdr is valid; fields set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&ctrl);
        // Safety: msg points at live buffers of the stated sizes.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, 0) };
        let n = usize::try_from(n).ok()?;
        let mut frame = buf[..n].to_vec();
        // Safety: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
        while !c.is_null() {
            // Safety: c is a header inside the control buffer.
            let h = unsafe { &*c };
            if h.cmsg_level == libc::SOL_PACKET && h.cmsg_type == libc::PACKET_AUXDATA {
                // Safety: the data of a PACKET_AUXDATA message is a tpacket_auxdata.
                let aux = unsafe {
                    libc::CMSG_DATA(c)
                        .cast::<libc::tpacket_auxdata>()
                        .read_unaligned()
                };
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        TPID_8021Q
                    };
                    let mut tag = tpid.to_be_bytes().to_vec();
                    tag.extend_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                    frame.splice(12..12, tag);
                }
            }
            // Safety: as above.
            c = unsafe { libc::CMSG_NXTHDR(&raw const msg, c) };
        }
        Some(frame)
    }
}

#[test]
fn tx_ring_frames_reach_the_peer_with_checksums_and_vlan_tags_intact() {
    let Some(lab) = Lab::new() else {
        return;
    };
    let (rx4, rx6, tap) = Lab::within(&lab.b, || {
        (
            udp("0.0.0.0:6800"),
            udp("[2001:db8::2]:6800"),
            Tap::open("vb"),
        )
    });
    let mut xsk = Lab::within(&lab.a, || {
        XskSocket::new(
            ifindex("va"),
            0,
            small_umem(),
            &XskConfig {
                rx_size: 64,
                tx_size: 64,
                bind: BindPreference::Auto,
                need_wakeup: true,
            },
        )
        .unwrap()
    });
    // veth refuses zero-copy: the bind fell back to copy mode.
    assert_eq!(xsk.mode(), BindMode::Copy);
    let untagged = [None, None];
    let dot1q = [
        Some(VlanTag {
            tpid: TPID_8021Q,
            tci: 0x2007,
        }),
        None,
    ];
    let qinq = [
        Some(VlanTag {
            tpid: TPID_8021AD,
            tci: 100,
        }),
        Some(VlanTag {
            tpid: TPID_8021Q,
            tci: 7,
        }),
    ];
    let variants = [
        ("v4", untagged),
        ("v6", untagged),
        ("dot1q", dot1q),
        ("qinq", qinq),
    ];
    let mut descs = Vec::new();
    let mut tagged = Vec::new();
    for (name, vlans) in variants {
        let eth = EthHeader {
            dst_mac: MAC_B,
            src_mac: MAC_A,
            vlans,
        };
        for i in 0..8 {
            let slot = xsk.tx_frame().unwrap();
            let payload = format!("{name} {i}");
            let out = xsk.frame_mut(slot.addr);
            let len = if name == "v6" {
                frame::build_udp6_reply(
                    out,
                    &eth,
                    SocketAddrV6::new("2001:db8::1".parse().unwrap(), 547, 0, 0),
                    SocketAddrV6::new("2001:db8::2".parse().unwrap(), 6800, 0, 0),
                    payload.as_bytes(),
                )
            } else {
                frame::build_udp4_reply(
                    out,
                    &eth,
                    SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 67),
                    SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 6800),
                    payload.as_bytes(),
                )
            }
            .unwrap();
            if vlans[0].is_some() {
                tagged.push(out[..len].to_vec());
            }
            descs.push(Desc {
                addr: slot.addr,
                len: len as u32,
            });
        }
    }
    assert_eq!(xsk.umem().free_frames(), 256 - 32);
    assert_eq!(xsk.submit_tx(&descs), 32);
    let mut completed = 0;
    for _ in 0..200 {
        xsk.kick_tx().unwrap();
        completed += xsk.complete();
        if completed == 32 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(completed, 32);
    assert_eq!(xsk.umem().free_frames(), 256);
    assert_eq!(xsk.tx_pending(), 0);
    assert_eq!(xsk.stats().unwrap().tx_invalid_descs, 0);

    // Untagged: the peer's kernel accepted them, so the IPv4 header checksum and the UDP
    // checksums (mandatory for IPv6) verified.
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    for s in [&rx4, &rx6] {
        for _ in 0..8 {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                break;
            };
            got.push((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
        }
    }
    got.sort();
    let mut want: Vec<(String, SocketAddr)> = (0..8)
        .flat_map(|i| {
            [
                (format!("v4 {i}"), "192.0.2.1:67".parse().unwrap()),
                (format!("v6 {i}"), "[2001:db8::1]:547".parse().unwrap()),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    // Tagged: the peer has no VLAN devices (this kernel lacks 802.1Q), so the frames are
    // taken off the wire whole and compared byte for byte.
    let mut seen = 0;
    for _ in 0..200 {
        let Some(f) = tap.recv() else {
            break;
        };
        if let Some(i) = tagged.iter().position(|t| *t == f) {
            tagged.swap_remove(i);
            seen += 1;
        }
        if tagged.is_empty() {
            break;
        }
    }
    assert_eq!(seen, 16, "tagged frames not seen: {}", tagged.len());
}

#[test]
fn rx_ring_receives_dhcp_steered_by_the_xdp_program() {
    let Some(lab) = Lab::new() else {
        return;
    };
    let (mut prog, mut xsk) = Lab::within(&lab.a, || {
        let mut prog = XdpProgram::load().unwrap();
        prog.attach("va", AttachMode::Driver).unwrap();
        let xsk = XskSocket::new(
            ifindex("va"),
            0,
            small_umem(),
            &XskConfig {
                rx_size: 128,
                tx_size: 64,
                bind: BindPreference::Copy,
                need_wakeup: true,
            },
        )
        .unwrap();
        prog.register_socket(0, xsk.fd()).unwrap();
        (prog, xsk)
    });
    assert_eq!(
        xsk.fill(),
        128,
        "the fill ring takes as many frames as it has entries"
    );
    Lab::within(&lab.b, || {
        let s4 = UdpSocket::bind("0.0.0.0:68").unwrap();
        let s6 = UdpSocket::bind("[::]:546").unwrap();
        for i in 0..8 {
            s4.send_to(format!("dhcp4 {i}").as_bytes(), "192.0.2.1:67")
                .unwrap();
            s6.send_to(format!("dhcp6 {i}").as_bytes(), "[2001:db8::1]:547")
                .unwrap();
            // Not DHCP: the program passes it to the kernel, the socket never sees it.
            s4.send_to(b"other", "192.0.2.1:6999").unwrap();
        }
    });
    let mut got = Vec::new();
    let mut descs = [Desc::default(); 32];
    for _ in 0..100 {
        if got.len() == 16 {
            break;
        }
        xsk.poll_rx(20).unwrap();
        let n = xsk.recv_batch(&mut descs);
        for d in &descs[..n] {
            let f = xsk.packet(*d);
            let info = frame::parse(f).unwrap();
            assert_eq!(info.eth.dst_mac, MAC_A);
            assert_eq!(info.eth.src_mac, MAC_B);
            let text = String::from_utf8_lossy(info.payload(f)).into_owned();
            match info.ip {
                IpPair::V4 { src, dst } => {
                    assert_eq!(
                        (src, dst),
                        (Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 1))
                    );
                    assert_eq!((info.src_port, info.dst_port), (68, 67));
                }
                IpPair::V6 { dst, .. } => {
                    assert_eq!(dst, "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap());
                    assert_eq!((info.src_port, info.dst_port), (546, 547));
                }
            }
            got.push(text);
            xsk.release(d.addr);
        }
        xsk.fill();
    }
    got.sort();
    let mut want: Vec<String> = (0..8)
        .flat_map(|i| [format!("dhcp4 {i}"), format!("dhcp6 {i}")])
        .collect();
    want.sort();
    assert_eq!(got, want);
    let stats = xsk.stats().unwrap();
    assert_eq!(stats.rx_invalid_descs, 0);
    assert_eq!(stats.rx_dropped, 0);
    Lab::within(&lab.a, || {
        prog.unregister_socket(0).unwrap();
        prog.detach().unwrap();
    });
    assert_eq!(prog.attachments().count(), 0);
}
