//! I/O paths: they move bytes between the network and the workers and decide nothing.
//!
//! - [`socket`]: UDP sockets with batched system calls (the fallback for hosts without XDP,
//!   and the path tests use).
//! - [`socket6`]: the same for DHCPv6 (port 547, `ff02::1:2`, `IPV6_PKTINFO`).
//! - [`reuseport_filter`]: the classic BPF programs that give renewals a socket (and a
//!   receive buffer) of their own on both socket paths.
//! - [`xdp`]: the XDP program, AF_XDP sockets and Ethernet frames.

pub mod reuseport_filter;
pub mod socket;
pub mod socket6;
pub mod xdp;
