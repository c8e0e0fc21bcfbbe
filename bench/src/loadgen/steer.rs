//! The generator's own XDP program: on the client end of the link it steers the frames a
//! simulated client or relay must see into the generator's `AF_XDP` sockets, and leaves the
//! rest to the kernel.
//!
//! The server's program (`twinlease::io::xdp::program::XdpProgram`, built from `dhcp-ebpf/`)
//! cannot be reused: it steers UDP to the *server* ports 67 and 547 only, and its ports are
//! compiled in. The generator needs replies to the client ports (68, 546), relayed replies
//! (67, 547, when it plays the relay agent) and ARP (the server looks up the addresses of
//! renewing clients and of the relay). That is a 39-instruction program, assembled here and
//! loaded with the `bpf(2)` system call, which spares the generator the eBPF toolchain:
//!
//! - ARP → redirect;
//! - IPv4 without options, UDP to port 68 or 67 → redirect;
//! - IPv6 with UDP as next header (no extension headers), UDP to port 546 or 547 → redirect;
//! - everything else (IPv6 neighbour discovery in particular) → `XDP_PASS`.
//!
//! "Redirect" is `bpf_redirect_map(xsks, rx_queue_index, XDP_PASS)`: to the socket of the
//! receiving queue, or to the kernel when that queue has none. The program is attached
//! through a BPF link, which goes away with its file descriptor, so nothing is left on the
//! interface when the generator exits, even when it is killed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An error loading or attaching the program.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// A `bpf(2)` command failed.
    #[error("bpf({what})")]
    Bpf {
        /// The command.
        what: &'static str,
        /// The kernel's reason.
        #[source]
        source: io::Error,
    },
    /// The verifier refused the program.
    #[error("the kernel refused the steering program: {log}")]
    Verifier {
        /// The verifier's log.
        log: String,
        /// The error code.
        #[source]
        source: io::Error,
    },
}

// linux/bpf.h
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;
// linux/if_link.h
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `XDP_PASS`, also the fallback action of `bpf_redirect_map`.
pub const XDP_PASS: u32 = 2;
/// `XDP_REDIRECT`.
pub const XDP_REDIRECT: u32 = 4;

/// Queues the socket map has room for.
pub const MAX_QUEUES: u32 = 64;

/// `union bpf_attr`, as bytes: the commands used here fit in 128.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Self([0; 128])
    }

    fn u32_at(&mut self, at: usize, v: u32) -> &mut Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64_at(&mut self, at: usize, v: u64) -> &mut Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn get_u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }
}

/// `bpf(cmd, attr)`; a non-negative result, or the error.
fn bpf(cmd: libc::c_long, attr: &mut Attr, what: &'static str) -> Result<i64, SteerError> {
    // Safety: attr is a live, 8-aligned, zero-initialised buffer of the size passed; the
    // pointers stored inside it point to buffers that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (&raw mut attr.0).cast::<libc::c_void>(),
            size_of::<Attr>(),
        )
    };
    if r < 0 {
        Err(SteerError::Bpf {
            what,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(r)
    }
}

fn owned(fd: i64) -> OwnedFd {
    // Safety: the kernel just returned this descriptor to us; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// One eBPF instruction (`struct bpf_insn`: code, dst and src registers in one byte,
/// offset, immediate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const MOV64_REG: u8 = 0xbf;
const MOV64_IMM: u8 = 0xb7;
const ADD64_IMM: u8 = 0x07;
const LDX_W: u8 = 0x61;
const LDX_H: u8 = 0x69;
const LDX_B: u8 = 0x71;
const JGT_REG: u8 = 0x2d;
const JEQ_IMM: u8 = 0x15;
const JNE_IMM: u8 = 0x55;
const JA: u8 = 0x05;
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

/// A jump target while assembling.
#[derive(Clone, Copy)]
enum To {
    Pass,
    Redirect,
    V4,
    V6,
}

/// The program for socket map `map_fd`. Packet loads are in host order; x86 and arm64 are
/// little-endian, so the big-endian wire values are compared byte-swapped (`0x0800` as
/// `0x0008`).
fn program(map_fd: RawFd) -> Vec<Insn> {
    use To::{Pass, Redirect, V4, V6};
    // (instruction, jump target) in order; labels are resolved below.
    let swap = |v: u16| i32::from(v.swap_bytes());
    let body: Vec<(Insn, Option<To>, Option<To>)> = vec![
        // r6 = ctx; r2 = data; r3 = data_end (struct xdp_md).
        (insn(MOV64_REG, 6, 1, 0, 0), None, None),
        (insn(LDX_W, 2, 6, 0, 0), None, None),
        (insn(LDX_W, 3, 6, 4, 0), None, None),
        // Ethernet header present?
        (insn(MOV64_REG, 4, 2, 0, 0), None, None),
        (insn(ADD64_IMM, 4, 0, 0, 14), None, None),
        (insn(JGT_REG, 4, 3, 0, 0), Some(Pass), None),
        (insn(LDX_H, 5, 2, 12, 0), None, None),
        (insn(JEQ_IMM, 5, 0, 0, swap(0x0806)), Some(Redirect), None),
        (insn(JEQ_IMM, 5, 0, 0, swap(0x0800)), Some(V4), None),
        (insn(JEQ_IMM, 5, 0, 0, swap(0x86dd)), Some(V6), None),
        (insn(JA, 0, 0, 0, 0), Some(Pass), None),
        // V4: Ethernet + 20-byte IPv4 header + UDP header present, IHL 5, protocol UDP.
        (insn(MOV64_REG, 4, 2, 0, 0), None, Some(V4)),
        (insn(ADD64_IMM, 4, 0, 0, 42), None, None),
        (insn(JGT_REG, 4, 3, 0, 0), Some(Pass), None),
        (insn(LDX_B, 5, 2, 14, 0), None, None),
        (insn(JNE_IMM, 5, 0, 0, 0x45), Some(Pass), None),
        (insn(LDX_B, 5, 2, 23, 0), None, None),
        (insn(JNE_IMM, 5, 0, 0, 17), Some(Pass), None),
        (insn(LDX_H, 5, 2, 36, 0), None, None),
        (insn(JEQ_IMM, 5, 0, 0, swap(68)), Some(Redirect), None),
        (insn(JEQ_IMM, 5, 0, 0, swap(67)), Some(Redirect), None),
        (insn(JA, 0, 0, 0, 0), Some(Pass), None),
        // V6: Ethernet + 40-byte IPv6 header + UDP header present, next header UDP.
        (insn(MOV64_REG, 4, 2, 0, 0), None, Some(V6)),
        (insn(ADD64_IMM, 4, 0, 0, 62), None, None),
        (insn(JGT_REG, 4, 3, 0, 0), Some(Pass), None),
        (insn(LDX_B, 5, 2, 20, 0), None, None),
        (insn(JNE_IMM, 5, 0, 0, 17), Some(Pass), None),
        (insn(LDX_H, 5, 2, 56, 0), None, None),
        (insn(JEQ_IMM, 5, 0, 0, swap(546)), Some(Redirect), None),
        (insn(JEQ_IMM, 5, 0, 0, swap(547)), Some(Redirect), None),
        (insn(JA, 0, 0, 0, 0), Some(Pass), None),
        // Redirect: bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS).
        (insn(LDX_W, 2, 6, 16, 0), None, Some(Redirect)),
        (insn(LD_IMM64, 1, BPF_PSEUDO_MAP_FD, 0, map_fd), None, None),
        (insn(0, 0, 0, 0, 0), None, None),
        (insn(MOV64_IMM, 3, 0, 0, XDP_PASS.cast_signed()), None, None),
        (insn(CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP), None, None),
        (insn(EXIT, 0, 0, 0, 0), None, None),
        // Pass.
        (
            insn(MOV64_IMM, 0, 0, 0, XDP_PASS.cast_signed()),
            None,
            Some(Pass),
        ),
        (insn(EXIT, 0, 0, 0, 0), None, None),
    ];
    let label = |t: To| {
        body.iter()
            .position(|(_, _, l)| l.is_some_and(|l| l as u8 == t as u8))
            .unwrap_or(0)
    };
    body.iter()
        .enumerate()
        .map(|(pc, (i, jump, _))| {
            let mut i = *i;
            if let Some(t) = jump {
                // Jumps count from the next instruction.
                // The program has 39 instructions: the offsets fit an i16.
                let (to, from) = (i16::try_from(label(*t)), i16::try_from(pc));
                i.off = to.unwrap_or(0) - from.unwrap_or(0) - 1;
            }
            i
        })
        .collect()
}

/// How the program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Native (driver) XDP.
    Driver,
    /// Generic (skb) XDP.
    Skb,
}

/// The loaded program and its socket map, attached to one interface while this lives.
#[derive(Debug)]
pub struct Steer {
    map: OwnedFd,
    prog: OwnedFd,
    link: Option<OwnedFd>,
    mode: Option<Mode>,
}

impl Steer {
    /// Creates the socket map and loads the program (needs `CAP_BPF` and `CAP_NET_ADMIN`).
    pub fn load() -> Result<Self, SteerError> {
        let mut a = Attr::new();
        a.u32_at(0, BPF_MAP_TYPE_XSKMAP)
            .u32_at(4, 4)
            .u32_at(8, 4)
            .u32_at(12, MAX_QUEUES);
        a.0[28..28 + 10].copy_from_slice(b"tlbench_xs");
        let map = owned(bpf(BPF_MAP_CREATE, &mut a, "MAP_CREATE xskmap")?);
        let insns = program(map.as_raw_fd());
        let license = b"GPL\0";
        let mut log = vec![0u8; 1 << 16];
        let mut a = Attr::new();
        a.u32_at(0, BPF_PROG_TYPE_XDP)
            .u32_at(4, insns.len() as u32)
            .u64_at(8, insns.as_ptr() as u64)
            .u64_at(16, license.as_ptr() as u64)
            .u32_at(24, 1)
            .u32_at(28, log.len() as u32)
            .u64_at(32, log.as_mut_ptr() as u64)
            .u32_at(68, BPF_XDP);
        a.0[48..48 + 14].copy_from_slice(b"tlbench_steer\0");
        let prog = match bpf(BPF_PROG_LOAD, &mut a, "PROG_LOAD") {
            Ok(fd) => owned(fd),
            Err(SteerError::Bpf { source, .. }) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                return Err(SteerError::Verifier {
                    log: String::from_utf8_lossy(&log[..end]).into_owned(),
                    source,
                });
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            map,
            prog,
            link: None,
            mode: None,
        })
    }

    /// Attaches to interface `ifindex`: native mode, else generic mode.
    pub fn attach(&mut self, ifindex: u32) -> Result<Mode, SteerError> {
        let mut last = None;
        for (flags, mode) in [
            (XDP_FLAGS_DRV_MODE, Mode::Driver),
            (XDP_FLAGS_SKB_MODE, Mode::Skb),
        ] {
            let mut a = Attr::new();
            a.u32_at(0, self.prog.as_raw_fd().cast_unsigned())
                .u32_at(4, ifindex)
                .u32_at(8, BPF_XDP)
                .u32_at(12, flags);
            match bpf(BPF_LINK_CREATE, &mut a, "LINK_CREATE xdp") {
                Ok(fd) => {
                    self.link = Some(owned(fd));
                    self.mode = Some(mode);
                    return Ok(mode);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(SteerError::Bpf {
            what: "LINK_CREATE xdp",
            source: io::Error::from_raw_os_error(libc::EINVAL),
        }))
    }

    /// The mode of the attachment, if attached.
    #[must_use]
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Steers what arrives on `queue` to the `AF_XDP` socket `fd` (bound to that queue).
    pub fn register(&self, queue: u32, fd: RawFd) -> Result<(), SteerError> {
        let key = queue;
        let value = fd.cast_unsigned();
        let mut a = Attr::new();
        a.u32_at(0, self.map.as_raw_fd().cast_unsigned())
            .u64_at(8, (&raw const key) as u64)
            .u64_at(16, (&raw const value) as u64)
            .u64_at(24, 0);
        bpf(BPF_MAP_UPDATE_ELEM, &mut a, "MAP_UPDATE_ELEM xskmap").map(drop)
    }

    /// Stops steering `queue` to a socket.
    pub fn unregister(&self, queue: u32) -> Result<(), SteerError> {
        let key = queue;
        let mut a = Attr::new();
        a.u32_at(0, self.map.as_raw_fd().cast_unsigned())
            .u64_at(8, (&raw const key) as u64);
        bpf(BPF_MAP_DELETE_ELEM, &mut a, "MAP_DELETE_ELEM xskmap").map(drop)
    }

    /// Runs the program on `frame` with `BPF_PROG_TEST_RUN` (queue 0); returns its verdict.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, SteerError> {
        let mut a = Attr::new();
        a.u32_at(0, self.prog.as_raw_fd().cast_unsigned())
            .u32_at(8, frame.len() as u32)
            .u64_at(16, frame.as_ptr() as u64)
            .u32_at(32, 1);
        bpf(BPF_PROG_TEST_RUN, &mut a, "PROG_TEST_RUN")?;
        Ok(a.get_u32(4))
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    use super::*;
    use crate::loadgen::wire;

    #[test]
    fn jumps_land_on_their_labels() {
        let p = program(3);
        assert_eq!(p.len(), 39);
        // Every conditional or unconditional jump stays inside the program.
        let target = |pc: usize, off: i16| pc.checked_add_signed(1 + isize::from(off));
        for (pc, i) in p.iter().enumerate() {
            if matches!(i.code, JGT_REG | JEQ_IMM | JNE_IMM | JA) {
                let to = target(pc, i.off);
                assert!(to.is_some_and(|t| t < p.len()), "pc {pc} jumps to {to:?}");
            }
        }
        // The first bounds check goes to the pass tail: r0 = XDP_PASS; exit.
        let to = target(5, p[5].off).unwrap();
        assert_eq!(p[to], insn(MOV64_IMM, 0, 0, 0, XDP_PASS.cast_signed()));
        assert_eq!(p[to + 1].code, EXIT);
        assert_eq!(p[32].imm, 3, "map fd in the ld_imm64");
    }

    fn udp4(dst_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 400];
        let n = wire::frame_v4(
            &mut f,
            [2; 6],
            [4; 6],
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 67),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), dst_port),
            &[0; 300],
        )
        .unwrap();
        f.truncate(n);
        f
    }

    fn udp6(dst_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 400];
        let n = wire::frame_v6(
            &mut f,
            [2; 6],
            [4; 6],
            SocketAddrV6::new(Ipv6Addr::LOCALHOST, 547, 0, 0),
            SocketAddrV6::new(Ipv6Addr::LOCALHOST, dst_port, 0, 0),
            &[0; 100],
        )
        .unwrap();
        f.truncate(n);
        f
    }

    /// An `AF_XDP` socket with a UMEM and an RX ring, never bound: enough for the kernel to
    /// accept it in an `XSKMAP`, so that `bpf_redirect_map` finds an entry in a test run.
    struct UnboundXsk {
        fd: OwnedFd,
        umem: *mut libc::c_void,
        len: usize,
    }

    impl UnboundXsk {
        fn new() -> Self {
            let len = 16 * 4096;
            // Safety: plain socket(2); checked.
            let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            assert!(raw >= 0, "socket(AF_XDP): {}", io::Error::last_os_error());
            // Safety: a fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // Safety: anonymous private mapping, checked, unmapped in Drop.
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
            assert_ne!(umem, libc::MAP_FAILED);
            let reg = libc::xdp_umem_reg {
                addr: umem as u64,
                len: len as u64,
                chunk_size: 4096,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            let ring: u32 = 64;
            for (opt, value, size) in [
                (
                    libc::XDP_UMEM_REG,
                    (&raw const reg).cast::<libc::c_void>(),
                    size_of_val(&reg),
                ),
                (
                    libc::XDP_RX_RING,
                    (&raw const ring).cast(),
                    size_of_val(&ring),
                ),
            ] {
                // Safety: value points to a live value of `size` bytes of the option's type.
                let rc = unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::SOL_XDP,
                        opt,
                        value,
                        size as libc::socklen_t,
                    )
                };
                assert_eq!(rc, 0, "setsockopt {opt}: {}", io::Error::last_os_error());
            }
            Self { fd, umem, len }
        }
    }

    impl Drop for UnboundXsk {
        fn drop(&mut self) {
            // Safety: the mapping made in `new`, unmapped once.
            unsafe { libc::munmap(self.umem, self.len) };
        }
    }

    #[test]
    fn steers_client_and_relay_ports_and_arp_only() {
        if !twinlease_tests::is_root() {
            println!("skipped: needs root");
            return;
        }
        let steer = Steer::load().expect("the verifier accepts the program");
        let xsk = UnboundXsk::new();
        let mut arp = [0u8; 60];
        wire::build_arp(
            &mut arp,
            true,
            ([2; 6], Ipv4Addr::new(10, 0, 0, 1)),
            ([0; 6], Ipv4Addr::new(10, 0, 0, 9)),
        )
        .unwrap();
        let steered = [udp4(68), udp4(67), udp6(546), udp6(547), arp.to_vec()];
        let passed = [
            udp4(53),
            udp4(69),
            udp6(53),
            udp6(548),
            vec![0u8; 14],
            udp4(68)[..40].to_vec(),
        ];
        // Without a socket, everything goes to the kernel.
        for f in steered.iter().chain(&passed) {
            assert_eq!(steer.test_run(f).unwrap(), XDP_PASS);
        }
        steer.register(0, xsk.fd.as_raw_fd()).unwrap();
        for (i, f) in steered.iter().enumerate() {
            assert_eq!(
                steer.test_run(f).unwrap(),
                XDP_REDIRECT,
                "steered frame {i}"
            );
        }
        for (i, f) in passed.iter().enumerate() {
            assert_eq!(steer.test_run(f).unwrap(), XDP_PASS, "passed frame {i}");
        }
        steer.unregister(0).unwrap();
        assert_eq!(steer.test_run(&steered[0]).unwrap(), XDP_PASS);
    }
}
