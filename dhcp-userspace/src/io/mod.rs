//! I/O paths: they move bytes between the network and the workers and decide nothing.
//!
//! - [`socket`]: UDP sockets with batched system calls (the fallback for hosts without XDP,
//!   and the path tests use).
//! - [`xdp`]: the XDP program, AF_XDP sockets and Ethernet frames.

pub mod socket;
pub mod xdp;
