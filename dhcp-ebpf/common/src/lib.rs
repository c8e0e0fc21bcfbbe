//! Types and names shared by the twinlease XDP program (`dhcp-ebpf`, built for
//! `bpfel-unknown-none`) and its loader (`twinlease::io::xdp::program`).
//!
//! This crate is `no_std` and has no dependencies so that both sides compile the very same
//! definitions: the layout of [`XdpCounters`] is the layout of the values in the
//! [`COUNTERS_MAP`] per-CPU array, and the names below are the ELF symbols the loader looks up.

#![no_std]

/// Name of the XDP program (the function's symbol in the object).
pub const PROGRAM_NAME: &str = "dhcp_xdp";

/// Name of the `BPF_MAP_TYPE_XSKMAP` that holds one AF_XDP socket per receive queue, indexed
/// by queue number.
pub const XSK_MAP: &str = "XSKS";

/// Name of the `BPF_MAP_TYPE_PERCPU_ARRAY` of [`XdpCounters`], indexed by receive queue.
pub const COUNTERS_MAP: &str = "COUNTERS";

/// Name of the `BPF_MAP_TYPE_ARRAY` of `u32` shed levels, indexed by receive queue, that the
/// queue loops write (see [`MAX_SHED_LEVEL`]).
pub const SHED_MAP: &str = "SHED";

/// Highest shed level. At level `k` (`0..=MAX_SHED_LEVEL`) the program drops `k` in
/// [`SHED_STEPS`] of the new-client DHCP frames of the queue (DHCPDISCOVER, SOLICIT, ...:
/// everything not classified as a renewal), chosen by `bpf_get_prandom_u32`; level 0 drops
/// nothing. The top level still lets one frame in 16 through, so new clients keep getting
/// served during a storm. Higher values in the map count as this level.
pub const MAX_SHED_LEVEL: u32 = 15;

/// The denominator of a shed level: level `k` drops `k / SHED_STEPS` of the new-client frames.
pub const SHED_STEPS: u32 = 16;

/// Number of receive queues the maps have a slot for (queues `0..MAX_QUEUES`). Frames that
/// arrive on a higher queue are never redirected (the `XskMap` has no slot for them: the
/// redirect falls back to `XDP_PASS`) and are not counted.
pub const MAX_QUEUES: u32 = 64;

/// UDP port of a DHCPv4 server (RFC 2131 §4.1: servers receive on port 67).
pub const DHCPV4_SERVER_PORT: u16 = 67;

/// UDP port of DHCPv6 servers and relay agents (RFC 8415 §7.2: they listen on port 547).
pub const DHCPV6_SERVER_PORT: u16 = 547;

/// Per-receive-queue counters of the XDP program.
///
/// Every frame the program sees on a queue below [`MAX_QUEUES`] increments exactly one
/// field. The map is per CPU: the loader sums the CPUs' copies.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// DHCPv4 frames (UDP to port 67 over IPv4) redirected to the queue's AF_XDP socket.
    pub redirected_v4: u64,
    /// DHCPv6 frames (UDP to port 547 over IPv6) redirected to the queue's AF_XDP socket.
    pub redirected_v6: u64,
    /// Frames passed to the kernel because they are not DHCP to the server (other protocols,
    /// other ports, IPv4 fragments, IPv6 fragments, too many VLAN tags or extension headers).
    pub passed: u64,
    /// Frames passed to the kernel because their headers are truncated or inconsistent
    /// (short frame, bad IP version, IHL below 5, lengths beyond the frame, bad IPv4 header
    /// checksum on a DHCP frame): the kernel drops them and counts them in its own statistics.
    pub malformed: u64,
    /// DHCP frames passed to the kernel because no AF_XDP socket is registered for the
    /// queue they arrived on (`bpf_redirect_map` fell back to `XDP_PASS`).
    pub no_socket: u64,
    /// New-client DHCP frames dropped (`XDP_DROP`) by the queue's shed level (see
    /// [`MAX_SHED_LEVEL`]); renewals are never shed.
    pub shed: u64,
}

impl XdpCounters {
    /// All frames counted: the sum of every field.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.redirected_v4
            + self.redirected_v6
            + self.passed
            + self.malformed
            + self.no_socket
            + self.shed
    }

    /// Adds `other` field by field (wrapping, as the kernel-side counters do).
    pub const fn add(&mut self, other: &Self) {
        self.redirected_v4 = self.redirected_v4.wrapping_add(other.redirected_v4);
        self.redirected_v6 = self.redirected_v6.wrapping_add(other.redirected_v6);
        self.passed = self.passed.wrapping_add(other.passed);
        self.malformed = self.malformed.wrapping_add(other.malformed);
        self.no_socket = self.no_socket.wrapping_add(other.no_socket);
        self.shed = self.shed.wrapping_add(other.shed);
    }
}

#[cfg(test)]
mod tests {
    use super::XdpCounters;

    #[test]
    fn layout_is_six_u64_in_declaration_order() {
        // The eBPF side writes these offsets; a reordering would silently swap counters.
        assert_eq!(size_of::<XdpCounters>(), 48);
        assert_eq!(core::mem::offset_of!(XdpCounters, redirected_v4), 0);
        assert_eq!(core::mem::offset_of!(XdpCounters, redirected_v6), 8);
        assert_eq!(core::mem::offset_of!(XdpCounters, passed), 16);
        assert_eq!(core::mem::offset_of!(XdpCounters, malformed), 24);
        assert_eq!(core::mem::offset_of!(XdpCounters, no_socket), 32);
        assert_eq!(core::mem::offset_of!(XdpCounters, shed), 40);
    }

    #[test]
    fn add_and_total() {
        let mut a = XdpCounters {
            redirected_v4: 1,
            passed: 2,
            ..XdpCounters::default()
        };
        a.add(&XdpCounters {
            redirected_v6: 3,
            malformed: 4,
            no_socket: 5,
            passed: 1,
            redirected_v4: 0,
            shed: 6,
        });
        assert_eq!(
            a,
            XdpCounters {
                redirected_v4: 1,
                redirected_v6: 3,
                passed: 3,
                malformed: 4,
                no_socket: 5,
                shed: 6,
            }
        );
        assert_eq!(a.total(), 22);
    }
}
