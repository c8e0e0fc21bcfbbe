//! The XDP/`AF_XDP` path: an XDP program steers DHCP to `AF_XDP` sockets, one per receive queue.

#[cfg(test)]
mod e2e;
pub mod frame;
pub mod program;
mod ring;
pub mod umem;
pub mod xsk;
