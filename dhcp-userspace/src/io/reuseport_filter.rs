//! Kernel-side classification of DHCP requests, so that a DISCOVER/SOLICIT flood cannot crowd
//! renewals out of a socket receive buffer.
//!
//! Each listening address gets two UDP sockets bound to it with `SO_REUSEPORT`, which puts them
//! in one reuseport group: the *normal* socket (joined first: index 0) and the *priority*
//! socket (index 1). Each has its own receive buffer. Three classic BPF programs, built here
//! from one classifier, keep requests of clients that hold a lease apart from the rest:
//!
//! - [`Hook::Group`] (`SO_ATTACH_REUSEPORT_CBPF`) picks the socket of a unicast datagram: it
//!   returns [`PRIORITY_INDEX`] for a priority message and [`NORMAL_INDEX`] otherwise. The
//!   kernel runs it with the data starting at the UDP payload (`net/core/sock_reuseport.c`,
//!   `reuseport_select_sock` → `run_bpf_filter`: "temporarily advance data past protocol
//!   header", `hdr_len` = `sizeof(struct udphdr)`), and an index at or past the number of
//!   sockets in the group falls back to the usual hash selection: with the priority socket
//!   gone, everything reaches the normal one.
//! - Broadcasts and multicasts skip that choice: the kernel gives every socket bound to the
//!   port a copy (`net/ipv4/udp.c` `__udp4_lib_mcast_deliver`, "Multicasts and broadcasts go
//!   to each listener"; likewise `__udp6_lib_mcast_deliver`). So each socket also carries an
//!   ordinary socket filter (`SO_ATTACH_FILTER`), which the kernel runs with the data starting
//!   at the UDP header (`udp_queue_rcv_one_skb` → `sk_filter_trim_cap`): [`Hook::Priority`]
//!   keeps only priority messages, [`Hook::Normal`] only the others. A broadcast DISCOVER
//!   then lands in the normal buffer alone and a REBINDING REQUEST (broadcast, RFC 2131
//!   §4.4.5) or a multicast RENEW (RFC 8415 §18.2.4) in the priority buffer alone.
//!
//! The three programs run the same classifier, so a unicast datagram the group program sends
//! to a socket always passes that socket's filter. Every load is preceded by a length check,
//! so no program ever reads past the packet (a classic BPF load out of bounds ends the
//! program with 0, which for [`Hook::Normal`] would mean a drop): a short or truncated
//! datagram is normal everywhere, and the server counts it as malformed as before.
//!
//! Priority messages:
//! - DHCPv4: `ciaddr` non-zero (RFC 2131 §4.3.2, Table 5): a DHCPREQUEST of a client in
//!   BOUND, RENEWING or REBINDING, a DHCPRELEASE (§4.4.6) and a DHCPINFORM (§4.4.3); DISCOVER,
//!   DECLINE and the SELECTING and INIT-REBOOT REQUESTs leave it zero. Options are not walked (the message type may sit anywhere in them); the
//!   receive loop's own classification ([`crate::dispatch::admission::priority_v4`]) then
//!   decides the worker ring.
//! - DHCPv6: CONFIRM, RENEW, REBIND, RELEASE and DECLINE (RFC 8415 §18.2.3–§18.2.8: messages
//!   of clients that hold leases), also inside a RELAY-FORW (§9) whose Relay Message option
//!   (§21.10) is its first or second option. Deeper positions and nested relays go to the
//!   normal socket (the receive loop still puts them in the priority ring).
//!
//! Classic BPF has forward jumps only and no loops, so the two option positions are unrolled;
//! the second one is addressed with `BPF_IND` loads, X holding the first option's length.
//!
//! [`open_priority`] sets this up next to an already bound socket and undoes it on any
//! failure: on a kernel without `SO_REUSEPORT` (Linux < 3.9) or `SO_ATTACH_REUSEPORT_CBPF`
//! (< 4.5) the server keeps its one socket per address, as before.

use std::io;
use std::os::fd::AsRawFd;

use socket2::Socket;

use crate::wire::v4::field as v4field;
use crate::wire::v6::{MessageType as M6, field as v6field, opt as opt6};

/// Index of the normal socket in its reuseport group: the one bound first.
pub const NORMAL_INDEX: u32 = 0;
/// Index of the priority socket in its reuseport group: the one bound second.
pub const PRIORITY_INDEX: u32 = 1;

/// What a socket filter returns to keep a datagram: the number of bytes to keep, here more
/// than any datagram has (`sk_filter_trim_cap` trims to it).
const KEEP: u32 = u32::MAX;
/// What a socket filter returns to drop a datagram.
const DROP: u32 = 0;

/// Length of the UDP header (RFC 768), in front of the message in a socket filter's view.
const UDP_HEADER_LEN: u32 = 8;

/// `SO_ATTACH_REUSEPORT_CBPF` and `SO_DETACH_REUSEPORT_BPF` (`include/uapi/asm-generic/
/// socket.h`, Linux 4.5 and 5.3); the `libc` crate has them for Android only. Alpha, MIPS,
/// PA-RISC and SPARC have socket option numbers of their own: there the priority socket is
/// not attempted.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x",
))]
mod sockopt {
    pub const ATTACH_REUSEPORT_CBPF: Option<libc::c_int> = Some(51);
    pub const DETACH_REUSEPORT_BPF: Option<libc::c_int> = Some(68);
}
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x",
)))]
mod sockopt {
    pub const ATTACH_REUSEPORT_CBPF: Option<libc::c_int> = None;
    pub const DETACH_REUSEPORT_BPF: Option<libc::c_int> = None;
}

/// The classic BPF opcodes the programs use (`include/uapi/linux/filter.h`).
pub mod op {
    #![expect(
        clippy::cast_possible_truncation,
        reason = "every opcode is below 0x100 and fits the 16-bit code field"
    )]

    /// `A = len`: the packet's length from where the data starts.
    pub const LD_LEN: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_LEN) as u16;
    /// `A = P[k]`, one byte.
    pub const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    /// `A = P[k:2]`, big-endian.
    pub const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    /// `A = P[k:4]`, big-endian.
    pub const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    /// `A = P[X + k]`, one byte.
    pub const LD_B_IND: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_IND) as u16;
    /// `A = P[X + k:2]`, big-endian.
    pub const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
    /// `A -= k`.
    pub const SUB_K: u16 = (libc::BPF_ALU | libc::BPF_SUB | libc::BPF_K) as u16;
    /// `X = A`.
    pub const TAX: u16 = (libc::BPF_MISC | libc::BPF_TAX) as u16;
    /// `pc += k`.
    pub const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    /// `pc += (A == k) ? jt : jf`.
    pub const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    /// `pc += (A >= k) ? jt : jf`, unsigned.
    pub const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    /// `pc += (A >= X) ? jt : jf`, unsigned.
    pub const JGE_X: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_X) as u16;
    /// `return k`.
    pub const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
}

/// DHCPv6 message types sent by clients that hold leases (RFC 8415 §7.3, §18.2).
pub const PRIORITY_V6: [M6; 5] = [M6::Confirm, M6::Renew, M6::Rebind, M6::Release, M6::Decline];

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// DHCPv4 (RFC 2131).
    V4,
    /// DHCPv6 (RFC 8415).
    V6,
}

/// Where a program is attached, which fixes where the DHCP message starts in its view and
/// what it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// The reuseport group (`SO_ATTACH_REUSEPORT_CBPF`): data at the UDP payload; returns the
    /// socket index.
    Group,
    /// The priority socket (`SO_ATTACH_FILTER`): data at the UDP header; keeps priority
    /// messages, drops the rest.
    Priority,
    /// The normal socket (`SO_ATTACH_FILTER`): data at the UDP header; drops priority
    /// messages, keeps the rest.
    Normal,
}

impl Hook {
    /// Offset of the DHCP message in the program's view of the packet.
    #[must_use]
    pub fn base(self) -> u32 {
        match self {
            Self::Group => 0,
            Self::Priority | Self::Normal => UDP_HEADER_LEN,
        }
    }

    /// What the program returns for a priority message and for any other.
    #[must_use]
    pub fn verdicts(self) -> (u32, u32) {
        match self {
            Self::Group => (PRIORITY_INDEX, NORMAL_INDEX),
            Self::Priority => (KEEP, DROP),
            Self::Normal => (DROP, KEEP),
        }
    }
}

/// Jump targets of the programs: the next instruction or a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    L(Label),
}

/// Labels of the programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// `return` the priority verdict.
    Prio,
    /// `return` the normal verdict.
    Normal,
    /// A RELAY-FORW: look for its Relay Message option.
    Relay,
    /// The first option is not a Relay Message: try the second.
    Second,
    /// A (relayed) message's type is in A: is it a priority type?
    Inner,
}

/// A classic BPF program under construction, with forward jumps to labels resolved at the
/// end.
struct Asm {
    code: Vec<libc::sock_filter>,
    /// Per instruction: its symbolic targets (`jt`, `jf`; `JA` uses `jt` only).
    targets: Vec<(To, To)>,
    labels: Vec<(Label, usize)>,
}

impl Asm {
    fn new() -> Self {
        Self {
            code: Vec::new(),
            targets: Vec::new(),
            labels: Vec::new(),
        }
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.jump(code, k, To::Next, To::Next);
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push(libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        });
        self.targets.push((jt, jf));
    }

    fn label(&mut self, l: Label) {
        debug_assert!(
            self.labels.iter().all(|(x, _)| *x != l),
            "{l:?} placed twice"
        );
        self.labels.push((l, self.code.len()));
    }

    /// The program, every jump resolved. The programs are fixed and small: a jump backwards,
    /// beyond 255 instructions or to a label never placed is a bug of this module, caught by
    /// its tests.
    fn finish(mut self) -> Vec<libc::sock_filter> {
        let at = |labels: &[(Label, usize)], pc: usize, to: To| -> u32 {
            let target = match to {
                To::Next => pc + 1,
                To::L(l) => labels
                    .iter()
                    .find(|(x, _)| *x == l)
                    .map_or(usize::MAX, |(_, p)| *p),
            };
            assert!(
                target > pc && target != usize::MAX,
                "bad jump {pc} → {to:?}"
            );
            u32::try_from(target - pc - 1).unwrap_or(u32::MAX)
        };
        for (pc, (jt, jf)) in self.targets.iter().enumerate() {
            let insn = &mut self.code[pc];
            if insn.code == op::JA {
                insn.k = at(&self.labels, pc, *jt);
            } else {
                insn.jt = u8::try_from(at(&self.labels, pc, *jt)).unwrap_or(u8::MAX);
                insn.jf = u8::try_from(at(&self.labels, pc, *jf)).unwrap_or(u8::MAX);
            }
        }
        self.code
    }
}

/// The classifier for `family`, as attached at `hook`.
///
/// # Panics
/// Never for the programs of this module (their jumps are checked by the tests).
#[must_use]
pub fn program(family: Family, hook: Hook) -> Vec<libc::sock_filter> {
    match family {
        Family::V4 => program_v4(hook),
        Family::V6 => program_v6(hook),
    }
}

/// `ciaddr != 0` (RFC 2131 §2 Table 1, §4.3.2).
fn program_v4(hook: Hook) -> Vec<libc::sock_filter> {
    let b = hook.base();
    let ciaddr = v4field::CIADDR;
    let mut a = Asm::new();
    a.stmt(op::LD_LEN, 0);
    a.jump(op::JGE_K, b + k(ciaddr.end), To::Next, To::L(Label::Normal));
    a.stmt(op::LD_W_ABS, b + k(ciaddr.start));
    a.jump(op::JEQ_K, 0, To::L(Label::Normal), To::L(Label::Prio));
    verdicts(&mut a, hook);
    a.finish()
}

/// A priority message type, also as the first or second option of a RELAY-FORW (RFC 8415
/// §9, §21.10).
fn program_v6(hook: Hook) -> Vec<libc::sock_filter> {
    let b = hook.base();
    // Offsets in the message: the relay header, then options of code (2) and length (2).
    let relay_opts = k(v6field::relay::HEADER_LEN);
    let opt_hdr = k(v6field::option::HEADER_LEN);
    let opt_len = k(v6field::option::LEN.start);
    let mut a = Asm::new();
    a.stmt(op::LD_LEN, 0);
    a.jump(op::JGE_K, b + 1, To::Next, To::L(Label::Normal));
    a.stmt(op::LD_B_ABS, b + k(v6field::MSG_TYPE));
    a.jump(
        op::JEQ_K,
        M6::RelayForw as u32,
        To::L(Label::Relay),
        To::L(Label::Inner),
    );

    // RELAY-FORW: room for the first option's header and one byte of its value.
    a.label(Label::Relay);
    a.stmt(op::LD_LEN, 0);
    a.jump(
        op::JGE_K,
        b + relay_opts + opt_hdr + 1,
        To::Next,
        To::L(Label::Normal),
    );
    a.stmt(op::LD_H_ABS, b + relay_opts);
    a.jump(
        op::JEQ_K,
        u32::from(opt6::RELAY_MSG),
        To::Next,
        To::L(Label::Second),
    );
    // First option is the Relay Message: an empty one carries no message.
    a.stmt(op::LD_H_ABS, b + relay_opts + opt_len);
    a.jump(op::JEQ_K, 0, To::L(Label::Normal), To::Next);
    a.stmt(op::LD_B_ABS, b + relay_opts + opt_hdr);
    a.jump(op::JA, 0, To::L(Label::Inner), To::Next);

    // Second option, at relay_opts + opt_hdr + X with X the first option's length: room for
    // its header and one byte of its value, i.e. len - (b + second + opt_hdr + 1) >= X.
    a.label(Label::Second);
    let second = relay_opts + opt_hdr;
    let need = b + second + opt_hdr + 1;
    a.stmt(op::LD_H_ABS, b + relay_opts + opt_len);
    a.stmt(op::TAX, 0);
    a.stmt(op::LD_LEN, 0);
    a.jump(op::JGE_K, need, To::Next, To::L(Label::Normal));
    a.stmt(op::SUB_K, need);
    a.jump(op::JGE_X, 0, To::Next, To::L(Label::Normal));
    a.stmt(op::LD_H_IND, b + second);
    a.jump(
        op::JEQ_K,
        u32::from(opt6::RELAY_MSG),
        To::Next,
        To::L(Label::Normal),
    );
    a.stmt(op::LD_H_IND, b + second + opt_len);
    a.jump(op::JEQ_K, 0, To::L(Label::Normal), To::Next);
    a.stmt(op::LD_B_IND, b + second + opt_hdr);

    // A holds a message type.
    a.label(Label::Inner);
    let last = PRIORITY_V6.len() - 1;
    for (i, t) in PRIORITY_V6.iter().enumerate() {
        let miss = if i == last {
            To::L(Label::Normal)
        } else {
            To::Next
        };
        a.jump(op::JEQ_K, *t as u32, To::L(Label::Prio), miss);
    }
    verdicts(&mut a, hook);
    a.finish()
}

/// The two `return`s every program ends with.
fn verdicts(a: &mut Asm, hook: Hook) {
    let (prio, normal) = hook.verdicts();
    a.label(Label::Prio);
    a.stmt(op::RET_K, prio);
    a.label(Label::Normal);
    a.stmt(op::RET_K, normal);
}

/// An offset of the wire format as a BPF constant (all are below 256).
fn k(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

/// `setsockopt(SOL_SOCKET, name)` with a classic BPF program.
fn set_program(sock: &Socket, name: libc::c_int, prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: prog.as_ptr().cast_mut(),
    };
    // Safety: valid fd; the option value is a sock_fprog of the stated size whose filter
    // pointer covers `len` instructions; the kernel copies the program during the call and
    // never writes through the pointer.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attach the group program through `sock`, a member of the reuseport group (it applies to
/// the whole group, members joining later included).
pub fn attach_group(sock: &Socket, family: Family) -> io::Result<()> {
    let name = sockopt::ATTACH_REUSEPORT_CBPF.ok_or(io::ErrorKind::Unsupported)?;
    set_program(sock, name, &program(family, Hook::Group))
}

/// Remove the group's program (Linux 5.3+; before, it stays and is harmless with one socket
/// left: its out-of-range index falls back to the hash selection).
pub fn detach_group(sock: &Socket) -> io::Result<()> {
    let name = sockopt::DETACH_REUSEPORT_BPF.ok_or(io::ErrorKind::Unsupported)?;
    let zero: libc::c_int = 0;
    // Safety: valid fd; the option value is a c_int of the stated size (the kernel ignores
    // it for this option).
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const zero).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attach the socket filter of `hook` ([`Hook::Priority`] or [`Hook::Normal`]) to `sock`.
pub fn attach_socket(sock: &Socket, family: Family, hook: Hook) -> io::Result<()> {
    debug_assert!(hook != Hook::Group);
    sock.attach_filter(&program(family, hook))
}

/// A listening address: the socket every request may arrive on, and the priority socket
/// next to it, or why there is none.
#[derive(Debug)]
pub struct Listener {
    /// The normal socket (index 0 of the group); replies leave from it.
    pub socket: Socket,
    /// The priority socket, or the error that left the listener without one.
    pub priority: io::Result<Socket>,
}

/// Open the priority socket next to `main`, already bound with `SO_REUSEPORT` set (so it is
/// index 0 of its group). `open` creates, configures and binds a socket to `main`'s address,
/// calling the hook it is given between configuring and binding.
///
/// The order keeps every datagram deliverable throughout: the group program goes on first
/// (its index 1 is out of range while `main` is alone: hash selection, i.e. `main`); the
/// priority socket gets its filter before it binds and joins the group; the normal filter goes
/// on `main` last, once priority datagrams have somewhere else to go. On failure every step
/// is undone and `main` serves alone.
///
/// # Errors
/// The first step the kernel refused.
pub fn open_priority<F>(main: &Socket, family: Family, open: F) -> io::Result<Socket>
where
    F: FnOnce(&dyn Fn(&Socket) -> io::Result<()>) -> io::Result<Socket>,
{
    attach_group(main, family)?;
    let prepare = |s: &Socket| -> io::Result<()> {
        s.set_reuse_port(true)?;
        attach_socket(s, family, Hook::Priority)
    };
    let prio = match open(&prepare) {
        Ok(s) => s,
        Err(e) => {
            let _ = detach_group(main);
            return Err(e);
        }
    };
    if let Err(e) = attach_socket(main, family, Hook::Normal) {
        drop(prio);
        let _ = detach_group(main);
        return Err(e);
    }
    Ok(prio)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::dispatch::admission::{priority_v4, priority_v6};
    use crate::wire::v4::{MessageType as M4, ReplyHeader, ReplyWriter, opt as opt4};
    use crate::wire::v6::ReplyWriter as Writer6;

    /// How a classic BPF program ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum End {
        Ret(u32),
        /// A load past the packet (the kernel would return 0).
        OutOfBounds,
    }

    /// A classic BPF interpreter of the opcodes in [`op`], over `pkt` as the program sees it.
    fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> End {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |off: u32, size: usize| -> Option<u32> {
            let off = usize::try_from(off).ok()?;
            let bytes = pkt.get(off..off.checked_add(size)?)?;
            Some(bytes.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b)))
        };
        loop {
            let i = prog[pc];
            pc += 1;
            let mut cond = None;
            match i.code {
                op::LD_LEN => a = u32::try_from(pkt.len()).unwrap(),
                op::LD_B_ABS | op::LD_H_ABS | op::LD_W_ABS | op::LD_B_IND | op::LD_H_IND => {
                    let size = match i.code {
                        op::LD_B_ABS | op::LD_B_IND => 1,
                        op::LD_H_ABS | op::LD_H_IND => 2,
                        _ => 4,
                    };
                    let off = if matches!(i.code, op::LD_B_IND | op::LD_H_IND) {
                        x.wrapping_add(i.k)
                    } else {
                        i.k
                    };
                    match load(off, size) {
                        Some(v) => a = v,
                        None => return End::OutOfBounds,
                    }
                }
                op::SUB_K => a = a.wrapping_sub(i.k),
                op::TAX => x = a,
                op::JA => pc += usize::try_from(i.k).unwrap(),
                op::JEQ_K => cond = Some(a == i.k),
                op::JGE_K => cond = Some(a >= i.k),
                op::JGE_X => cond = Some(a >= x),
                op::RET_K => return End::Ret(i.k),
                other => panic!("opcode {other:#x} not interpreted"),
            }
            if let Some(c) = cond {
                pc += usize::from(if c { i.jt } else { i.jf });
            }
        }
    }

    /// The verdict of `family`'s programs on a DHCP message `msg`: true for priority. Runs
    /// all three hooks (with an 8-byte UDP header in front for the socket filters) and checks
    /// that they agree and never read out of bounds.
    fn classify(family: Family, msg: &[u8]) -> bool {
        let group = run(&program(family, Hook::Group), msg);
        let mut udp = vec![0u8; 8];
        udp.extend_from_slice(msg);
        let prio = run(&program(family, Hook::Priority), &udp);
        let normal = run(&program(family, Hook::Normal), &udp);
        let verdict = match group {
            End::Ret(PRIORITY_INDEX) => true,
            End::Ret(NORMAL_INDEX) => false,
            other => panic!("group program ended with {other:?} on {msg:02x?}"),
        };
        let (keep_p, keep_n) = if verdict { (KEEP, DROP) } else { (DROP, KEEP) };
        assert_eq!(prio, End::Ret(keep_p), "priority filter on {msg:02x?}");
        assert_eq!(normal, End::Ret(keep_n), "normal filter on {msg:02x?}");
        verdict
    }

    fn v4(kind: M4, ciaddr: Ipv4Addr) -> Vec<u8> {
        let hdr = ReplyHeader {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0x1234_5678,
            secs: 0,
            flags: 0,
            ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [2, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let mut buf = [0u8; 600];
        let mut w = ReplyWriter::new(&mut buf, &hdr).unwrap();
        w.option_u8(opt4::MESSAGE_TYPE, kind as u8).unwrap();
        w.option(opt4::CLIENT_ID, &[1, 2, 0, 0, 0, 0, 9]).unwrap();
        w.option(opt4::PRL, &[1, 3, 6]).unwrap();
        let n = w.finish();
        buf[..n].to_vec()
    }

    /// A client message of `t` with a client identifier (RFC 8415 §8).
    fn v6(t: M6) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let mut w = Writer6::new_message(&mut buf, t, 0x00ab_cdef).unwrap();
        w.option(opt6::CLIENTID, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 7])
            .unwrap();
        w.option_u16(opt6::ELAPSED_TIME, 0).unwrap();
        let n = w.finish();
        buf[..n].to_vec()
    }

    /// `inner` in a RELAY-FORW (RFC 8415 §9) with `before` options ahead of its Relay Message.
    fn relay_forw(inner: &[u8], before: &[(u16, &[u8])]) -> Vec<u8> {
        let mut buf = [0u8; 1024];
        let link: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let peer: Ipv6Addr = "fe80::2".parse().unwrap();
        // The writer makes server messages: write a RELAY-REPL, then make it a RELAY-FORW
        // (the two share their format, RFC 8415 §9).
        let mut w = Writer6::new_relay_repl(&mut buf, 0, link, peer).unwrap();
        for (code, value) in before {
            w.option(*code, value).unwrap();
        }
        w.option(opt6::RELAY_MSG, inner).unwrap();
        let n = w.finish();
        buf[v6field::MSG_TYPE] = M6::RelayForw as u8;
        buf[..n].to_vec()
    }

    #[test]
    fn programs_are_valid_classic_bpf() {
        for family in [Family::V4, Family::V6] {
            for hook in [Hook::Group, Hook::Priority, Hook::Normal] {
                let p = program(family, hook);
                assert!(p.len() < 64, "{family:?} {hook:?}: {} insns", p.len());
                // The kernel's checker wants a return last and jumps inside the program.
                assert_eq!(p.last().unwrap().code, op::RET_K);
                let jumps = p.iter().enumerate();
                for (pc, i) in jumps.filter(|(_, i)| u32::from(i.code) & 0x07 == libc::BPF_JMP) {
                    let reach = if i.code == op::JA {
                        pc + 1 + i.k as usize
                    } else {
                        pc + 1 + usize::from(i.jt.max(i.jf))
                    };
                    assert!(reach < p.len(), "{family:?} {hook:?}: jump out at {pc}");
                }
            }
        }
    }

    #[test]
    fn v4_ciaddr_decides() {
        let a = Ipv4Addr::new(198, 18, 1, 7);
        let z = Ipv4Addr::UNSPECIFIED;
        // RENEWING/REBINDING REQUEST, RELEASE, INFORM: ciaddr set (RFC 2131 Table 5).
        for (kind, ciaddr, want) in [
            (M4::Request, a, true),
            (M4::Release, a, true),
            (M4::Inform, a, true),
            (M4::Discover, z, false),
            (M4::Request, z, false),
            (M4::Decline, z, false),
        ] {
            let m = v4(kind, ciaddr);
            assert_eq!(classify(Family::V4, &m), want, "{kind:?} ciaddr {ciaddr}");
            // The kernel never prioritises what the rings would not, but INFORM.
            if kind != M4::Inform {
                assert_eq!(priority_v4(&m), want, "{kind:?}");
            }
        }
        // Short or cut datagrams: normal everywhere, no load out of bounds.
        let m = v4(M4::Request, a);
        for cut in 0..m.len() {
            let want = cut >= v4field::CIADDR.end;
            assert_eq!(classify(Family::V4, &m[..cut]), want, "cut at {cut}");
        }
    }

    #[test]
    fn v6_types_direct_and_relayed() {
        let iid: &[u8] = b"eth0/7";
        for t in [
            M6::Solicit,
            M6::Request,
            M6::Confirm,
            M6::Renew,
            M6::Rebind,
            M6::Release,
            M6::Decline,
            M6::InformationRequest,
        ] {
            let want = PRIORITY_V6.contains(&t);
            let m = v6(t);
            assert_eq!(classify(Family::V6, &m), want, "{t:?}");
            assert_eq!(priority_v6(&m), want, "rings: {t:?}");
            // Relay Message first, second (after an Interface-Id), third: the kernel looks at
            // the first two.
            let first = relay_forw(&m, &[]);
            let second = relay_forw(&m, &[(opt6::INTERFACE_ID, iid)]);
            let empty_before = relay_forw(&m, &[(opt6::INTERFACE_ID, &[])]);
            let third = relay_forw(&m, &[(opt6::INTERFACE_ID, iid), (37, b"remote-id")]);
            assert_eq!(classify(Family::V6, &first), want, "first {t:?}");
            assert_eq!(classify(Family::V6, &second), want, "second {t:?}");
            assert_eq!(
                classify(Family::V6, &empty_before),
                want,
                "after empty {t:?}"
            );
            assert!(!classify(Family::V6, &third), "third {t:?}");
            for r in [&first, &second, &third] {
                assert_eq!(priority_v6(r), want, "rings, relayed {t:?}");
            }
            // Nested relays go to the normal socket.
            assert!(
                !classify(Family::V6, &relay_forw(&first, &[])),
                "nested {t:?}"
            );
            // Every truncation: normal unless the type byte survived, no load out of bounds.
            for r in [&m, &first, &second] {
                for cut in 0..r.len() {
                    let _ = classify(Family::V6, &r[..cut]);
                }
            }
        }
        // Cut right after the relayed type byte still counts; before it, not.
        let r = relay_forw(&v6(M6::Renew), &[(opt6::INTERFACE_ID, iid)]);
        let at = v6field::relay::HEADER_LEN + 4 + iid.len() + 4;
        assert!(classify(Family::V6, &r[..=at]));
        assert!(!classify(Family::V6, &r[..at]));
        // An empty Relay Message, first or second: nothing relayed.
        assert!(!classify(Family::V6, &relay_forw(&[], &[])));
        assert!(!classify(
            Family::V6,
            &relay_forw(&[], &[(opt6::INTERFACE_ID, iid)])
        ));
        assert!(!classify(Family::V6, &[]));
        // A RELAY-REPL is never priority.
        let mut repl = relay_forw(&v6(M6::Renew), &[]);
        repl[0] = M6::RelayRepl as u8;
        assert!(!classify(Family::V6, &repl));
    }

    /// The programs' meaning, written plainly.
    fn reference_v6(m: &[u8]) -> bool {
        let prio = |t: Option<&u8>| t.is_some_and(|t| PRIORITY_V6.iter().any(|p| *p as u8 == *t));
        if m.first() != Some(&(M6::RelayForw as u8)) {
            return prio(m.first());
        }
        let opts = m.get(v6field::relay::HEADER_LEN..).unwrap_or_default();
        let mut at = 0;
        for _ in 0..2 {
            let (Some(code), Some(len)) = (opts.get(at..at + 2), opts.get(at + 2..at + 4)) else {
                return false;
            };
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            if code == opt6::RELAY_MSG.to_be_bytes() {
                return len > 0 && prio(opts.get(at + 4));
            }
            at += 4 + len;
        }
        false
    }

    proptest! {
        #[test]
        fn v4_matches_ciaddr_on_any_bytes(m in proptest::collection::vec(any::<u8>(), 0..300)) {
            let want = m.get(v4field::CIADDR).is_some_and(|c| c != [0, 0, 0, 0]);
            prop_assert_eq!(classify(Family::V4, &m), want);
        }

        /// RELAY-FORWs with random options (lengths possibly lying) around a random message.
        #[test]
        fn v6_matches_its_reference(
            relay in any::<bool>(),
            t in 0u8..16,
            opts in proptest::collection::vec(
                (prop_oneof![Just(9u16), Just(18), any::<u16>()],
                 proptest::collection::vec(any::<u8>(), 0..40),
                 any::<bool>()),
                0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut m = Vec::new();
            if relay {
                m.push(M6::RelayForw as u8);
                m.extend_from_slice(&[0u8; 33]);
                for (code, value, lie) in &opts {
                    m.extend_from_slice(&code.to_be_bytes());
                    let len = if *lie { 0xfff0 } else { value.len() as u16 };
                    m.extend_from_slice(&len.to_be_bytes());
                    if *code == 9 && !value.is_empty() {
                        m.push(t);
                        m.extend_from_slice(&value[1..]);
                    } else {
                        m.extend_from_slice(value);
                    }
                }
            } else {
                m.extend_from_slice(&[t, 1, 2, 3]);
            }
            let m = &m[..=cut.index(m.len())];
            prop_assert_eq!(classify(Family::V6, m), reference_v6(m));
        }
    }

    /// A UDP socket for `addr`'s family, `prepare`d, then bound to `addr`.
    fn bound(addr: SocketAddr, prepare: &dyn Fn(&Socket) -> io::Result<()>) -> io::Result<Socket> {
        let s = Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        prepare(&s)?;
        s.bind(&addr.into())?;
        Ok(s)
    }

    /// A normal socket bound to `addr` (port 0: any) with `SO_REUSEPORT`, and its priority
    /// socket.
    fn group(addr: SocketAddr) -> (Socket, Socket, u16) {
        let family = if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let main = bound(addr, &|s| s.set_reuse_port(true)).unwrap();
        let local = main.local_addr().unwrap().as_socket().unwrap();
        let prio = open_priority(&main, family, |prepare| bound(local, prepare))
            .expect("priority socket on this kernel");
        (main, prio, local.port())
    }

    /// Receive what is queued on `s` within a short while.
    fn drain(s: &Socket) -> Vec<Vec<u8>> {
        let s: UdpSocket = s.try_clone().unwrap().into();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = s.recv(&mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    #[test]
    fn kernel_v4_unicast_and_broadcast_land_on_their_socket() {
        for bind in [Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED] {
            let (main, prio, port) = group(SocketAddr::from((bind, 0)));
            let cli = UdpSocket::bind("127.0.0.1:0").unwrap();
            cli.set_broadcast(true).unwrap();
            let renew = v4(M4::Request, Ipv4Addr::new(198, 18, 1, 7));
            let discover = v4(M4::Discover, Ipv4Addr::UNSPECIFIED);
            let short = b"\x01\x01\x06".to_vec();
            let mut to = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
            if bind.is_unspecified() {
                // A broadcast reaches every socket bound to the port (127.255.255.255 is the
                // loopback's broadcast route): the socket filters sort it.
                to.push(SocketAddr::from((Ipv4Addr::new(127, 255, 255, 255), port)));
            }
            for dst in &to {
                for m in [&renew, &discover, &short] {
                    cli.send_to(m, dst).unwrap();
                }
                assert_eq!(drain(&prio), vec![renew.clone()], "priority, to {dst}");
                assert_eq!(
                    drain(&main),
                    vec![discover.clone(), short.clone()],
                    "normal, to {dst}"
                );
            }
        }
    }

    #[test]
    fn kernel_v6_unicast_lands_on_its_socket() {
        let (main, prio, port) = group(SocketAddr::from((Ipv6Addr::LOCALHOST, 0)));
        let cli = UdpSocket::bind("[::1]:0").unwrap();
        let dst = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        let iid: &[u8] = b"ge-0/0/1";
        let renew = v6(M6::Renew);
        let solicit = v6(M6::Solicit);
        // A lone type byte is enough for the classifier: a one-byte "RENEW" is priority.
        let high = [
            renew.clone(),
            v6(M6::Confirm),
            relay_forw(&renew, &[]),
            relay_forw(&v6(M6::Release), &[(opt6::INTERFACE_ID, iid)]),
            vec![M6::Renew as u8],
        ];
        let low = [
            solicit.clone(),
            v6(M6::Request),
            relay_forw(&solicit, &[(opt6::INTERFACE_ID, iid)]),
            relay_forw(&relay_forw(&renew, &[]), &[]),
            vec![M6::Solicit as u8],
        ];
        for m in high.iter().chain(&low) {
            cli.send_to(m, dst).unwrap();
        }
        assert_eq!(drain(&prio), high.to_vec());
        assert_eq!(drain(&main), low.to_vec());
    }

    #[test]
    fn failed_priority_socket_leaves_the_normal_one_serving_everything() {
        let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let main = bound(lo, &|s| s.set_reuse_port(true)).unwrap();
        let port = main.local_addr().unwrap().as_socket().unwrap().port();
        // The priority socket cannot be opened (here: refused by the test).
        let e = open_priority(&main, Family::V4, |_| {
            Err(io::Error::from(io::ErrorKind::AddrInUse))
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // The group program stays harmless even where it cannot be detached (before Linux
        // 5.3): its index 1 is out of range with one socket, so the hash picks `main`.
        let cli = UdpSocket::bind("127.0.0.1:0").unwrap();
        let renew = v4(M4::Request, Ipv4Addr::new(198, 18, 1, 7));
        let discover = v4(M4::Discover, Ipv4Addr::UNSPECIFIED);
        for m in [&renew, &discover] {
            cli.send_to(m, (Ipv4Addr::LOCALHOST, port)).unwrap();
        }
        assert_eq!(drain(&main), vec![renew.clone(), discover.clone()]);
        // Likewise a group program left attached to a lone socket.
        let solo = bound(lo, &|s| s.set_reuse_port(true)).unwrap();
        attach_group(&solo, Family::V4).unwrap();
        let port = solo.local_addr().unwrap().as_socket().unwrap().port();
        for m in [&renew, &discover] {
            cli.send_to(m, (Ipv4Addr::LOCALHOST, port)).unwrap();
        }
        assert_eq!(drain(&solo), vec![renew, discover]);
    }
}
