//! Wire codecs: zero-copy views over packet bytes and allocation-free emitters.
//!
//! Each codec follows the smoltcp pattern: a `Packet<T: AsRef<[u8]>>` view with a checked
//! constructor and a `field` module of byte ranges, plus separate parsed summaries (the
//! incoming representation) and writers (the outgoing one). Nothing on the parse or emit
//! path allocates, and no network input can make it panic.
//!
//! - [`v4`]: DHCP for IPv4 (RFC 2131, RFC 2132 options, RFC 3396 long options).
//! - [`v6`]: DHCPv6 (RFC 8415, with prefix delegation and relay encapsulation).

pub mod failover;
pub mod v4;
pub mod v6;
