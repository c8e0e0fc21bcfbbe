//! The XDP program's loader: load, attach/detach, AF_XDP socket registration, counters and
//! test runs.
//!
//! The program itself lives in `dhcp-ebpf/` (see its crate docs for the steering rules). Its
//! object is embedded at build time by `build.rs`: built from source when the eBPF
//! toolchain is present, else the committed `dhcp-ebpf/prebuilt/dhcp-xdp.o`
//! ([`OBJECT_SOURCE`] says which).
//!
//! The types shared with the program ([`XdpCounters`] and the map and program names) come
//! from the `no_std` crate `dhcp-ebpf-common`, compiled into both sides, so the layouts
//! cannot drift apart.
//!
//! An attached program is detached by [`XdpProgram::detach`] or, at the latest, when the
//! [`XdpProgram`] is dropped. Attachments are made through BPF links where the kernel has
//! them, so they also go away when the process dies.

use std::{
    os::fd::{AsFd, OwnedFd, RawFd},
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{Array, Map, MapData, MapError, PerCpuArray, XskMap},
    programs::{TestRun, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
pub use dhcp_ebpf_common::{
    COUNTERS_MAP, MAX_QUEUES, MAX_SHED_LEVEL, PROGRAM_NAME, SHED_MAP, SHED_STEPS, XSK_MAP,
    XdpCounters,
};

/// Where the embedded object comes from: built from `dhcp-ebpf/` or the committed prebuilt
/// object (set by `build.rs`).
pub const OBJECT_SOURCE: &str = env!("TWINLEASE_EBPF_SOURCE");

/// The XDP program's ELF object, aligned for the ELF parser.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dhcp-xdp.o"));

/// XDP actions (`enum xdp_action` in `linux/bpf.h`), as returned by [`XdpProgram::test_run`].
pub mod action {
    /// Error in the program: the frame is dropped and a tracepoint fires.
    pub const ABORTED: u32 = 0;
    /// The frame is dropped.
    pub const DROP: u32 = 1;
    /// The frame goes on to the kernel's network stack.
    pub const PASS: u32 = 2;
    /// The frame is sent back out of the interface it came in on.
    pub const TX: u32 = 3;
    /// The frame is redirected (here: to an AF_XDP socket).
    pub const REDIRECT: u32 = 4;
}

/// How to attach the program to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode when the driver supports it, else generic (skb) mode, with a
    /// log line saying so.
    #[default]
    Auto,
    /// Native mode, run by the driver before any socket buffer exists; an error if the
    /// driver does not support it.
    Driver,
    /// Generic mode, run by the kernel on socket buffers (any interface, slower).
    Skb,
}

/// An error of the loader.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The embedded object could not be parsed or its maps created.
    #[error("loading the XDP object ({OBJECT_SOURCE})")]
    Object(#[source] aya::EbpfError),
    /// The object lacks a program or map the loader needs.
    #[error("the XDP object has no {kind} named {name:?}")]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// The name looked up.
        name: &'static str,
    },
    /// The program is not an XDP program, or the kernel (verifier) refused it.
    #[error("loading the XDP program {PROGRAM_NAME:?} into the kernel")]
    Load(#[source] aya::programs::ProgramError),
    /// A map has an unexpected type or layout.
    #[error("opening map {name:?}")]
    MapType {
        /// The map's name.
        name: &'static str,
        /// Why it could not be opened.
        #[source]
        source: MapError,
    },
    /// Attaching to an interface failed.
    #[error("attaching XDP to {ifname} in {mode:?} mode")]
    Attach {
        /// The interface.
        ifname: String,
        /// The mode tried last.
        mode: AttachMode,
        /// The kernel's or aya's reason.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The program is already attached to this interface.
    #[error("XDP is already attached to {0} by this loader")]
    AlreadyAttached(String),
    /// Detaching from an interface failed.
    #[error("detaching XDP from {ifname}")]
    Detach {
        /// The interface.
        ifname: String,
        /// The kernel's or aya's reason.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Registering or unregistering an AF_XDP socket failed.
    #[error("updating the AF_XDP socket of queue {queue} (queues 0..{MAX_QUEUES})")]
    Socket {
        /// The receive queue.
        queue: u32,
        /// The map update's error.
        #[source]
        source: MapError,
    },
    /// Writing a queue's shed level failed.
    #[error("setting the shed level of queue {queue} (queues 0..{MAX_QUEUES})")]
    Shed {
        /// The receive queue.
        queue: u32,
        /// The map update's error.
        #[source]
        source: MapError,
    },
    /// The shed map's descriptor could not be duplicated for a [`ShedHandle`].
    #[error("duplicating the descriptor of map {SHED_MAP:?}")]
    ShedHandle(#[source] std::io::Error),
    /// Reading the counters failed.
    #[error("reading the XDP counters of queue {queue}")]
    Counters {
        /// The receive queue whose counters could not be read.
        queue: u32,
        /// The map lookup's error.
        #[source]
        source: MapError,
    },
    /// `BPF_PROG_TEST_RUN` failed (for XDP the kernel refuses frames shorter than an
    /// Ethernet header, 14 bytes).
    #[error("BPF_PROG_TEST_RUN of the XDP program on a {len}-byte frame")]
    TestRun {
        /// Length of the frame.
        len: usize,
        /// The kernel's reason.
        #[source]
        source: aya::programs::ProgramError,
    },
}

/// The outcome of one [`XdpProgram::test_run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestRunOutcome {
    /// The program's verdict: one of the [`action`] constants.
    pub action: u32,
    /// How long the run took, as measured by the kernel.
    pub duration: Duration,
}

/// [`XdpCounters`] as a map value. `aya::Pod` is foreign to `dhcp-ebpf-common`, so the
/// impl lives on this transparent wrapper.
#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodCounters(XdpCounters);

// Safety: `XdpCounters` is `#[repr(C)]`, made only of `u64` fields (no padding), and every bit
// pattern is a valid value; the wrapper is transparent.
unsafe impl aya::Pod for PodCounters {}

/// One attachment of the program to an interface.
#[derive(Debug)]
struct Attachment {
    ifname: String,
    mode: AttachMode,
    link: XdpLinkId,
}

/// The loaded XDP program with its maps and attachments.
pub struct XdpProgram {
    ebpf: Ebpf,
    sockets: XskMap<MapData>,
    counters: PerCpuArray<MapData, PodCounters>,
    shed: Array<MapData, u32>,
    /// A descriptor of the `SHED` map, duplicated for each [`ShedHandle`].
    shed_fd: OwnedFd,
    attachments: Vec<Attachment>,
}

/// A writer of one queue's shed level, usable from another thread than the
/// [`XdpProgram`]'s (it holds its own descriptor of the `SHED` map, which stays valid as long
/// as either is open).
pub struct ShedHandle {
    map: Array<MapData, u32>,
    queue: u32,
}

impl std::fmt::Debug for ShedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShedHandle")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl ShedHandle {
    /// Sets the queue's shed level (clamped to [`MAX_SHED_LEVEL`]): the program drops
    /// `level / SHED_STEPS` of the queue's new-client DHCP frames. One `bpf(2)` call.
    pub fn set(&mut self, level: u32) -> Result<(), ProgramError> {
        let queue = self.queue;
        self.map
            .set(queue, level.min(MAX_SHED_LEVEL), 0)
            .map_err(|source| ProgramError::Shed { queue, source })
    }
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads the embedded object into the kernel (needs `CAP_BPF` and `CAP_NET_ADMIN`, or
    /// root). Nothing is attached yet.
    pub fn load() -> Result<Self, ProgramError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(ProgramError::Object)?;
        xdp_mut(&mut ebpf)?.load().map_err(ProgramError::Load)?;
        let sockets = take_map(&mut ebpf, XSK_MAP)?;
        let sockets = XskMap::try_from(sockets).map_err(|source| ProgramError::MapType {
            name: XSK_MAP,
            source,
        })?;
        let counters = take_map(&mut ebpf, COUNTERS_MAP)?;
        let counters = PerCpuArray::try_from(counters).map_err(|source| ProgramError::MapType {
            name: COUNTERS_MAP,
            source,
        })?;
        let shed = take_map(&mut ebpf, SHED_MAP)?;
        let shed_fd = match &shed {
            Map::Array(data) => data.fd().as_fd().try_clone_to_owned(),
            _ => Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)),
        }
        .map_err(ProgramError::ShedHandle)?;
        let shed = Array::try_from(shed).map_err(|source| ProgramError::MapType {
            name: SHED_MAP,
            source,
        })?;
        tracing::debug!(source = OBJECT_SOURCE, "XDP program loaded");
        Ok(Self {
            ebpf,
            sockets,
            counters,
            shed,
            shed_fd,
            attachments: Vec::new(),
        })
    }

    /// Attaches the program to `ifname`. With [`AttachMode::Auto`], native mode is tried
    /// first and generic mode used, with a warning, when the driver refuses it.
    pub fn attach(&mut self, ifname: &str, mode: AttachMode) -> Result<(), ProgramError> {
        if self.attachments.iter().any(|a| a.ifname == ifname) {
            return Err(ProgramError::AlreadyAttached(ifname.to_owned()));
        }
        let xdp = xdp_mut(&mut self.ebpf)?;
        let attach = |xdp: &mut Xdp, mode: AttachMode| {
            let xdp_mode = match mode {
                AttachMode::Skb => XdpMode::Skb,
                AttachMode::Auto | AttachMode::Driver => XdpMode::Driver,
            };
            xdp.attach(ifname, xdp_mode)
                .map_err(|source| ProgramError::Attach {
                    ifname: ifname.to_owned(),
                    mode,
                    source,
                })
        };
        let (link, used) = match mode {
            AttachMode::Auto => match attach(xdp, AttachMode::Driver) {
                Ok(link) => (link, AttachMode::Driver),
                Err(e) => {
                    tracing::warn!(
                        ifname,
                        error = %error_chain(&e),
                        "native XDP unavailable, falling back to generic (skb) mode"
                    );
                    (attach(xdp, AttachMode::Skb)?, AttachMode::Skb)
                }
            },
            other => (attach(xdp, other)?, other),
        };
        tracing::info!(ifname, mode = ?used, "XDP program attached");
        self.attachments.push(Attachment {
            ifname: ifname.to_owned(),
            mode: used,
            link,
        });
        Ok(())
    }

    /// The interfaces the program is attached to, with the mode in use on each
    /// ([`AttachMode::Driver`] or [`AttachMode::Skb`]).
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachMode)> {
        self.attachments.iter().map(|a| (a.ifname.as_str(), a.mode))
    }

    /// Detaches the program from every interface. All are tried; the first error is
    /// returned. Called by `Drop`; call it explicitly to see errors (shutdown, SIGTERM).
    pub fn detach(&mut self) -> Result<(), ProgramError> {
        let mut first_error = None;
        let attachments = std::mem::take(&mut self.attachments);
        for Attachment { ifname, link, .. } in attachments {
            let result = xdp_mut(&mut self.ebpf).and_then(|xdp| {
                xdp.detach(link).map_err(|source| ProgramError::Detach {
                    ifname: ifname.clone(),
                    source,
                })
            });
            match result {
                Ok(()) => tracing::info!(ifname, "XDP program detached"),
                Err(e) => {
                    tracing::error!(ifname, error = %error_chain(&e), "XDP detach failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Registers the AF_XDP socket `fd` for receive queue `queue`: DHCP arriving on that
    /// queue is redirected to it. The socket must be bound to the same queue of the
    /// interface (the kernel drops redirected frames otherwise).
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), ProgramError> {
        self.sockets
            .set(queue, fd, 0)
            .map_err(|source| ProgramError::Socket { queue, source })
    }

    /// Removes the socket of `queue`: DHCP on that queue goes to the kernel again (and is
    /// counted in [`XdpCounters::no_socket`]).
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), ProgramError> {
        self.sockets
            .unset(queue)
            .map_err(|source| ProgramError::Socket { queue, source })
    }

    /// Sets the shed level of `queue` (clamped to [`MAX_SHED_LEVEL`]; 0 sheds nothing).
    pub fn set_shed_level(&mut self, queue: u32, level: u32) -> Result<(), ProgramError> {
        self.shed
            .set(queue, level.min(MAX_SHED_LEVEL), 0)
            .map_err(|source| ProgramError::Shed { queue, source })
    }

    /// A writer of the shed level of `queue` for a queue loop (its own map descriptor).
    pub fn shed_handle(&self, queue: u32) -> Result<ShedHandle, ProgramError> {
        let fd = self.shed_fd.try_clone().map_err(ProgramError::ShedHandle)?;
        let data = MapData::from_fd(fd).map_err(|source| ProgramError::MapType {
            name: SHED_MAP,
            source,
        })?;
        let map = Array::try_from(Map::Array(data)).map_err(|source| ProgramError::MapType {
            name: SHED_MAP,
            source,
        })?;
        Ok(ShedHandle { map, queue })
    }

    /// The counters of every queue `0..MAX_QUEUES` (index = queue), summed over CPUs.
    pub fn counters(&self) -> Result<Vec<XdpCounters>, ProgramError> {
        (0..MAX_QUEUES)
            .map(|queue| {
                let per_cpu = self
                    .counters
                    .get(&queue, 0)
                    .map_err(|source| ProgramError::Counters { queue, source })?;
                let mut sum = XdpCounters::default();
                for cpu in per_cpu.iter() {
                    sum.add(&cpu.0);
                }
                Ok(sum)
            })
            .collect()
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` (receive queue 0, no
    /// interface): nothing is sent or redirected, but the verdict and the counters are
    /// those a real frame would produce. aya 0.14's `TestRun` issues the system call.
    pub fn test_run(&self, frame: &[u8]) -> Result<TestRunOutcome, ProgramError> {
        let xdp: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or(ProgramError::Missing {
                kind: "program",
                name: PROGRAM_NAME,
            })?
            .try_into()
            .map_err(ProgramError::Load)?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        let result = xdp.test_run(opts).map_err(|source| ProgramError::TestRun {
            len: frame.len(),
            source,
        })?;
        Ok(TestRunOutcome {
            action: result.return_value,
            duration: result.duration,
        })
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Errors are logged by `detach`; the links also close with the program's fds.
        let _ = self.detach();
    }
}

/// The XDP program of `ebpf`.
fn xdp_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, ProgramError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(ProgramError::Missing {
            kind: "program",
            name: PROGRAM_NAME,
        })?
        .try_into()
        .map_err(ProgramError::Load)
}

/// Takes map `name` out of `ebpf` (the loader owns it from then on).
fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, ProgramError> {
    ebpf.take_map(name)
        .ok_or(ProgramError::Missing { kind: "map", name })
}

/// `e` and its sources, `: `-separated, for one log line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv6Addr, process::Command};

    use etherparse::{
        IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6Header,
        Ipv6RawExtHeader, PacketBuilder, PacketBuilderStep, UdpHeader,
    };

    use super::{AttachMode, MAX_QUEUES, ProgramError, XdpCounters, XdpProgram, action};

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const BROADCAST_MAC: [u8; 6] = [0xff; 6];
    /// DHCPv6 `All_DHCP_Relay_Agents_and_Servers` (RFC 8415 §7.1).
    const ALL_DHCP_SERVERS: [u8; 16] = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2).octets();
    const LINK_LOCAL: [u8; 16] = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets();
    /// Stands for a BOOTP/DHCP message: its content does not matter to the program.
    const PAYLOAD: [u8; 64] = [0x5a; 64];

    fn is_root() -> bool {
        // Safety: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    /// Loads the program, or `None` (with the skip line) when not root.
    fn load_as_root() -> Option<XdpProgram> {
        if !is_root() {
            println!("skipped: needs root");
            return None;
        }
        Some(XdpProgram::load().expect("load the XDP program"))
    }

    fn write(builder: PacketBuilderStep<UdpHeader>) -> Vec<u8> {
        let mut frame = Vec::new();
        builder.write(&mut frame, &PAYLOAD).expect("build frame");
        frame
    }

    fn v4_udp(dst_port: u16) -> Vec<u8> {
        write(
            PacketBuilder::ethernet2(CLIENT_MAC, BROADCAST_MAC)
                .ipv4([0; 4], [255; 4], 64)
                .udp(68, dst_port),
        )
    }

    fn v4_header() -> Ipv4Header {
        Ipv4Header::new(0, 64, IpNumber::UDP, [0; 4], [255; 4]).expect("IPv4 header")
    }

    fn v4_with(header: Ipv4Header) -> Vec<u8> {
        write(
            PacketBuilder::ethernet2(CLIENT_MAC, BROADCAST_MAC)
                .ip(IpHeaders::Ipv4(header, Ipv4Extensions::default()))
                .udp(68, 67),
        )
    }

    /// IHL 6: a Router Alert option (RFC 2113), 4 bytes.
    fn v4_with_options() -> Vec<u8> {
        let mut header = v4_header();
        header.options = Ipv4Options::try_from(&[0x94, 0x04, 0x00, 0x00][..]).expect("options");
        let frame = v4_with(header);
        assert_eq!(frame[14] & 0x0f, 6, "IHL 6");
        frame
    }

    fn v6(exts: Ipv6Extensions, dst_port: u16) -> Vec<u8> {
        let header = Ipv6Header {
            hop_limit: 1,
            source: LINK_LOCAL,
            destination: ALL_DHCP_SERVERS,
            ..Ipv6Header::default()
        };
        write(
            PacketBuilder::ethernet2(CLIENT_MAC, [0x33, 0x33, 0, 1, 0, 2])
                .ip(IpHeaders::Ipv6(header, exts))
                .udp(546, dst_port),
        )
    }

    fn v6_udp(dst_port: u16) -> Vec<u8> {
        v6(Ipv6Extensions::default(), dst_port)
    }

    /// A hop-by-hop header with a Router Alert option (RFC 2711) and padding.
    fn v6_hop_by_hop(dst_port: u16) -> Vec<u8> {
        let hbh = Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[0x05, 0x02, 0x00, 0x00, 0x01, 0x00])
            .expect("hop-by-hop");
        let frame = v6(
            Ipv6Extensions {
                hop_by_hop_options: Some(hbh),
                ..Ipv6Extensions::default()
            },
            dst_port,
        );
        assert_eq!(frame[14 + 6], 0, "next header is hop-by-hop");
        frame
    }

    /// A hop-by-hop then a destination options header (RFC 8200 §4.1 order).
    fn v6_two_ext_headers() -> Vec<u8> {
        let hbh = Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[0x01, 0x04, 0, 0, 0, 0])
            .expect("hop-by-hop");
        let dst = Ipv6RawExtHeader::new_raw(
            IpNumber::UDP,
            &[0x01, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        )
        .expect("destination options");
        v6(
            Ipv6Extensions {
                hop_by_hop_options: Some(hbh),
                destination_options: Some(dst),
                ..Ipv6Extensions::default()
            },
            547,
        )
    }

    /// `frame` with VLAN tags of the given TPIDs inserted after the MAC addresses
    /// (IEEE 802.1Q: TPID, then TCI; the original `EtherType` follows the last tag).
    fn tagged(frame: &[u8], tpids: &[u16]) -> Vec<u8> {
        let mut out = frame[..12].to_vec();
        for (i, tpid) in tpids.iter().enumerate() {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&(100 + i as u16).to_be_bytes());
        }
        out.extend_from_slice(&frame[12..]);
        out
    }

    fn arp() -> Vec<u8> {
        let mut frame = [BROADCAST_MAC, CLIENT_MAC].concat();
        frame.extend_from_slice(&[0x08, 0x06]);
        // Ethernet/IPv4 request, RFC 826 layout.
        frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
        frame.extend_from_slice(&CLIENT_MAC);
        frame.extend_from_slice(&[192, 0, 2, 1]);
        frame.extend_from_slice(&[0; 6]);
        frame.extend_from_slice(&[192, 0, 2, 2]);
        frame
    }

    fn tcp_to_67() -> Vec<u8> {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, BROADCAST_MAC)
            .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .tcp(40000, 67, 1, 1024)
            .write(&mut frame, &PAYLOAD)
            .expect("build frame");
        frame
    }

    fn v4_fragment(more_fragments: bool, offset_units: u16) -> Vec<u8> {
        let mut header = v4_header();
        header.more_fragments = more_fragments;
        header.fragment_offset = offset_units.try_into().expect("offset");
        v4_with(header)
    }

    /// The DHCP frames the program must steer: (name, frame, is IPv4).
    fn dhcp_frames() -> Vec<(&'static str, Vec<u8>, bool)> {
        let v4 = v4_udp(67);
        vec![
            ("DHCPv4 untagged", v4.clone(), true),
            ("DHCPv4 802.1Q", tagged(&v4, &[0x8100]), true),
            ("DHCPv4 QinQ 802.1ad", tagged(&v4, &[0x88a8, 0x8100]), true),
            ("DHCPv4 IHL 6", v4_with_options(), true),
            ("DHCPv6", v6_udp(547), false),
            (
                "DHCPv6 802.1Q hop-by-hop",
                tagged(&v6_hop_by_hop(547), &[0x8100]),
                false,
            ),
            ("DHCPv6 two extension headers", v6_two_ext_headers(), false),
        ]
    }

    /// Frames that are not DHCP to the server and must reach the kernel.
    fn other_frames() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("UDP to 53", v4_udp(53)),
            ("UDP to 68 (a client's port)", v4_udp(68)),
            ("TCP to 67", tcp_to_67()),
            ("ARP", arp()),
            ("IPv4 first fragment (MF)", v4_fragment(true, 0)),
            ("IPv4 last fragment (offset)", v4_fragment(false, 185)),
            ("UDPv6 to 546", v6_udp(546)),
            ("UDPv6 hop-by-hop to 53", v6_hop_by_hop(53)),
            (
                "three VLAN tags",
                tagged(&v4_udp(67), &[0x88a8, 0x8100, 0x8100]),
            ),
        ]
    }

    /// Frames with inconsistent headers.
    fn malformed_frames() -> Vec<(&'static str, Vec<u8>)> {
        let mut bad_checksum = v4_udp(67);
        bad_checksum[14 + 10] ^= 0xff;
        let mut ihl4 = v4_udp(67);
        ihl4[14] = 0x44;
        let mut version5 = v4_udp(67);
        version5[14] = 0x55;
        let mut v6_long = v6_udp(547);
        v6_long[14 + 4] = 0x40; // payload length far beyond the frame
        let mut udp_len_short = v4_udp(67);
        udp_len_short[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&4u16.to_be_bytes());
        vec![
            ("DHCPv4 bad header checksum", bad_checksum),
            ("IPv4 IHL 4", ihl4),
            ("IP version 5 in an IPv4 EtherType", version5),
            ("IPv6 payload length beyond the frame", v6_long),
            ("UDP length below 8", udp_len_short),
        ]
    }

    fn verdict(program: &XdpProgram, name: &str, frame: &[u8]) -> u32 {
        program
            .test_run(frame)
            .unwrap_or_else(|e| panic!("{name}: test run failed: {e}"))
            .action
    }

    fn queue0(program: &XdpProgram) -> XdpCounters {
        let counters = program.counters().expect("read counters");
        assert_eq!(counters.len(), MAX_QUEUES as usize);
        assert!(
            counters[1..].iter().all(|c| c.total() == 0),
            "only queue 0 counts test runs"
        );
        counters[0]
    }

    /// An AF_XDP socket with a UMEM and an RX ring: what the kernel requires of an `XskMap`
    /// entry. It is never bound, so nothing is ever delivered to it.
    struct UnboundXsk {
        fd: std::os::fd::OwnedFd,
        umem: *mut libc::c_void,
        len: usize,
    }

    impl UnboundXsk {
        fn new() -> Self {
            use std::os::fd::FromRawFd as _;
            const FRAMES: usize = 16;
            const FRAME_SIZE: u32 = 4096;
            let len = FRAMES * FRAME_SIZE as usize;
            // Safety: plain socket(2) call; the result is checked.
            let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            assert!(
                raw >= 0,
                "socket(AF_XDP): {}",
                std::io::Error::last_os_error()
            );
            // Safety: `raw` is a fresh descriptor we own.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
            // Safety: anonymous private mapping, checked below; unmapped in Drop.
            let umem = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(umem, libc::MAP_FAILED, "mmap UMEM");
            let reg = libc::xdp_umem_reg {
                addr: umem as u64,
                len: len as u64,
                chunk_size: FRAME_SIZE,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            let ring_size: u32 = 64;
            for (opt, value, size) in [
                (
                    libc::XDP_UMEM_REG,
                    (&raw const reg).cast::<libc::c_void>(),
                    size_of_val(&reg),
                ),
                (
                    libc::XDP_RX_RING,
                    (&raw const ring_size).cast(),
                    size_of_val(&ring_size),
                ),
            ] {
                use std::os::fd::AsRawFd as _;
                // Safety: `value` points to a live value of `size` bytes of the type the
                // option expects (linux/if_xdp.h).
                let rc = unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::SOL_XDP,
                        opt,
                        value,
                        size as libc::socklen_t,
                    )
                };
                assert_eq!(
                    rc,
                    0,
                    "setsockopt {opt}: {}",
                    std::io::Error::last_os_error()
                );
            }
            Self { fd, umem, len }
        }

        fn raw_fd(&self) -> std::os::fd::RawFd {
            use std::os::fd::AsRawFd as _;
            self.fd.as_raw_fd()
        }
    }

    impl Drop for UnboundXsk {
        fn drop(&mut self) {
            // Safety: `umem`/`len` are the mapping made in `new`, unmapped once here.
            unsafe { libc::munmap(self.umem, self.len) };
        }
    }

    #[test]
    fn without_a_socket_dhcp_falls_back_to_pass() {
        let Some(program) = load_as_root() else {
            return;
        };
        let dhcp = dhcp_frames();
        for (name, frame, _) in &dhcp {
            assert_eq!(verdict(&program, name, frame), action::PASS, "{name}");
        }
        let others = other_frames();
        for (name, frame) in &others {
            assert_eq!(verdict(&program, name, frame), action::PASS, "{name}");
        }
        let malformed = malformed_frames();
        for (name, frame) in &malformed {
            assert_eq!(verdict(&program, name, frame), action::PASS, "{name}");
        }
        assert_eq!(
            queue0(&program),
            XdpCounters {
                no_socket: dhcp.len() as u64,
                passed: others.len() as u64,
                malformed: malformed.len() as u64,
                ..XdpCounters::default()
            }
        );
    }

    /// A DHCPv4 frame carrying `payload` (a 240-byte BOOTP header) as its UDP data.
    fn v4_dhcp(payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, BROADCAST_MAC)
            .ipv4([0; 4], [255; 4], 64)
            .udp(68, 67)
            .write(&mut frame, payload)
            .expect("build frame");
        frame
    }

    /// A DHCPv6 frame carrying `payload` as its UDP data.
    fn v6_dhcp(payload: &[u8]) -> Vec<u8> {
        let header = Ipv6Header {
            hop_limit: 1,
            source: LINK_LOCAL,
            destination: ALL_DHCP_SERVERS,
            ..Ipv6Header::default()
        };
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, [0x33, 0x33, 0, 1, 0, 2])
            .ip(IpHeaders::Ipv6(header, Ipv6Extensions::default()))
            .udp(546, 547)
            .write(&mut frame, payload)
            .expect("build frame");
        frame
    }

    /// A RELAY-FORW whose first option is `first` (code, data), then a Relay Message of type
    /// `inner` (when `first` is not itself the Relay Message).
    fn relay_forw(first: (u16, &[u8]), inner: u8) -> Vec<u8> {
        let mut m = vec![12, 0];
        m.extend_from_slice(&[0u8; 32]);
        m.extend_from_slice(&first.0.to_be_bytes());
        m.extend_from_slice(&u16::try_from(first.1.len()).expect("short").to_be_bytes());
        m.extend_from_slice(first.1);
        if first.0 != 9 {
            m.extend_from_slice(&9u16.to_be_bytes());
            m.extend_from_slice(&4u16.to_be_bytes());
            m.extend_from_slice(&[inner, 1, 2, 3]);
        }
        m
    }

    #[test]
    fn shedding_drops_only_new_clients_in_the_levels_share() {
        const RUNS: u64 = 320;
        let Some(mut program) = load_as_root() else {
            return;
        };
        let mut discover = vec![0u8; 240];
        discover[0] = 1;
        let mut renew = discover.clone();
        renew[12..16].copy_from_slice(&[192, 0, 2, 7]);
        // (name, frame, kept whatever the level).
        let frames = [
            ("DHCPv4 ciaddr 0", v4_dhcp(&discover), false),
            ("DHCPv4 ciaddr set", v4_dhcp(&renew), true),
            (
                "DHCPv4 ciaddr set, 802.1Q",
                tagged(&v4_dhcp(&renew), &[0x8100]),
                true,
            ),
            ("SOLICIT", v6_dhcp(&[1, 0, 0, 1]), false),
            ("REQUEST", v6_dhcp(&[3, 0, 0, 1]), false),
            ("CONFIRM", v6_dhcp(&[4, 0, 0, 1]), true),
            ("RENEW", v6_dhcp(&[5, 0, 0, 1]), true),
            ("REBIND", v6_dhcp(&[6, 0, 0, 1]), true),
            ("RELEASE", v6_dhcp(&[8, 0, 0, 1]), true),
            ("DECLINE", v6_dhcp(&[9, 0, 0, 1]), true),
            (
                "RELAY-FORW(SOLICIT)",
                v6_dhcp(&relay_forw((9, &[1, 0, 0, 1]), 0)),
                false,
            ),
            (
                "RELAY-FORW(RENEW)",
                v6_dhcp(&relay_forw((9, &[5, 0, 0, 1]), 0)),
                true,
            ),
            (
                "RELAY-FORW(interface-id, SOLICIT): inner type not read",
                v6_dhcp(&relay_forw((18, b"eth0"), 1)),
                true,
            ),
            (
                "RELAY-FORW(RELAY-FORW(...))",
                v6_dhcp(&relay_forw((9, &relay_forw((9, &[1, 0, 0, 1]), 0)), 0)),
                true,
            ),
        ];
        let mut expected_shed = 0;
        for level in [0, 15, 99] {
            program.set_shed_level(0, level).expect("set the level");
            for (name, frame, kept) in &frames {
                let mut dropped = 0;
                for _ in 0..RUNS {
                    match verdict(&program, name, frame) {
                        action::DROP => dropped += 1,
                        a => assert_eq!(a, action::PASS, "{name}: no socket, so kept is PASS"),
                    }
                }
                expected_shed += dropped;
                if *kept || level == 0 {
                    assert_eq!(dropped, 0, "{name} at level {level}");
                } else {
                    // 15/16 of 320 is 300 (standard deviation 4.3); 99 counts as 15.
                    assert!(
                        (270..=318).contains(&dropped),
                        "{name}: {dropped} at {level}"
                    );
                }
            }
        }
        let c = queue0(&program);
        assert_eq!(c.shed, expected_shed);
        assert_eq!(c.total(), 3 * RUNS * frames.len() as u64);
    }

    #[test]
    fn dhcp_is_redirected_to_the_receiving_queues_socket_only() {
        let Some(mut program) = load_as_root() else {
            return;
        };
        let xsk = UnboundXsk::new();
        // A socket on queue 1 does not catch what arrives on queue 0 (test runs are queue 0).
        program
            .register_socket(1, xsk.raw_fd())
            .expect("register queue 1");
        let dhcp = dhcp_frames();
        for (name, frame, _) in &dhcp {
            assert_eq!(
                verdict(&program, name, frame),
                action::PASS,
                "{name} on queue 0"
            );
        }
        program
            .register_socket(0, xsk.raw_fd())
            .expect("register queue 0");
        for (name, frame, _) in &dhcp {
            assert_eq!(verdict(&program, name, frame), action::REDIRECT, "{name}");
        }
        for (name, frame) in other_frames().iter().chain(&malformed_frames()) {
            assert_eq!(verdict(&program, name, frame), action::PASS, "{name}");
        }
        let v4 = dhcp.iter().filter(|(_, _, is_v4)| *is_v4).count() as u64;
        let counters = queue0(&program);
        assert_eq!(counters.redirected_v4, v4);
        assert_eq!(counters.redirected_v6, dhcp.len() as u64 - v4);
        assert_eq!(counters.no_socket, dhcp.len() as u64);
        assert_eq!(counters.passed, other_frames().len() as u64);
        assert_eq!(counters.malformed, malformed_frames().len() as u64);

        program.unregister_socket(0).expect("unregister");
        assert_eq!(verdict(&program, "DHCPv4", &dhcp[0].1), action::PASS);
        assert_eq!(queue0(&program).no_socket, dhcp.len() as u64 + 1);
        assert!(matches!(
            program.register_socket(MAX_QUEUES, xsk.raw_fd()),
            Err(ProgramError::Socket { queue, .. }) if queue == MAX_QUEUES
        ));
    }

    #[test]
    fn every_truncation_of_a_dhcp_frame_is_passed_as_malformed() {
        let Some(mut program) = load_as_root() else {
            return;
        };
        let xsk = UnboundXsk::new();
        // With a socket registered, a truncated frame wrongly accepted would be redirected.
        program
            .register_socket(0, xsk.raw_fd())
            .expect("register queue 0");
        let mut runs = 0;
        for (name, frame, _) in dhcp_frames() {
            for len in 0..frame.len() {
                let truncated = &frame[..len];
                match program.test_run(truncated) {
                    Ok(outcome) => {
                        assert_eq!(outcome.action, action::PASS, "{name} cut at {len}");
                        runs += 1;
                    }
                    // The kernel runs XDP programs only on frames of an Ethernet header or more.
                    Err(ProgramError::TestRun { len: l, .. }) if l < 14 => {}
                    Err(e) => panic!("{name} cut at {len}: {e}"),
                }
            }
            assert_eq!(
                verdict(&program, name, &frame),
                action::REDIRECT,
                "{name} whole"
            );
        }
        let counters = queue0(&program);
        assert_eq!(counters.malformed, runs);
        assert_eq!(counters.passed, 0);
        assert_eq!(
            counters.redirected_v4 + counters.redirected_v6,
            dhcp_frames().len() as u64
        );
    }

    /// A network namespace with a veth pair, removed (with the veths) on drop.
    struct VethNamespace {
        name: String,
    }

    fn ip(args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    impl VethNamespace {
        fn new() -> Self {
            let name = format!("twl-xdp-{}", std::process::id());
            ip(&["netns", "add", &name]);
            let ns = Self { name };
            ip(&[
                "-n", &ns.name, "link", "add", "xdp0", "type", "veth", "peer", "name", "xdp1",
            ]);
            ip(&["-n", &ns.name, "link", "set", "xdp0", "up"]);
            ip(&["-n", &ns.name, "link", "set", "xdp1", "up"]);
            ns
        }

        fn link(&self, dev: &str) -> String {
            ip(&["-n", &self.name, "-d", "link", "show", "dev", dev])
        }

        /// Runs `f` on a thread that entered the namespace (setns affects only that thread).
        fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
            use std::os::fd::AsRawFd as _;
            let file =
                std::fs::File::open(format!("/run/netns/{}", self.name)).expect("open netns");
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        // Safety: `file` is an open namespace descriptor; the thread is ours and
                        // ends with the scope, so no other code runs in the namespace.
                        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                        f()
                    })
                    .join()
                    .expect("namespace thread")
            })
        }
    }

    impl Drop for VethNamespace {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
    }

    #[test]
    fn attach_shows_on_the_veth_and_is_gone_after_drop() {
        if !is_root() {
            println!("skipped: needs root");
            return;
        }
        let ns = VethNamespace::new();
        assert!(
            !ns.link("xdp0").contains("prog/xdp"),
            "veth starts without XDP"
        );
        ns.run_inside(|| {
            let mut program = XdpProgram::load().expect("load");
            program.attach("xdp0", AttachMode::Auto).expect("attach");
            // veth supports native XDP: Auto must not have fallen back.
            assert_eq!(
                program.attachments().collect::<Vec<_>>(),
                [("xdp0", AttachMode::Driver)]
            );
            assert!(matches!(
                program.attach("xdp0", AttachMode::Skb),
                Err(ProgramError::AlreadyAttached(_))
            ));
            program
                .attach("xdp1", AttachMode::Skb)
                .expect("attach generic");
            let shown = ns.link("xdp0");
            assert!(
                shown.contains("prog/xdp"),
                "ip link shows the program:\n{shown}"
            );
            let shown = ns.link("xdp1");
            assert!(
                shown.contains("xdpgeneric"),
                "generic mode on xdp1:\n{shown}"
            );
            assert!(matches!(
                program.attach("no-such-if", AttachMode::Skb),
                Err(ProgramError::Attach { .. })
            ));
            drop(program);
        });
        for dev in ["xdp0", "xdp1"] {
            let shown = ns.link(dev);
            assert!(
                !shown.contains("prog/xdp"),
                "{dev} still has XDP after drop:\n{shown}"
            );
        }
    }
}
