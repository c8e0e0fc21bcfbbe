//! Wire codecs: zero-copy views over packet bytes and allocation-free emitters.
//!
//! Each codec follows the smoltcp pattern: a `Packet<T: AsRef<[u8]>>` view with a checked
//! constructor and a `field` module of byte ranges, plus separate parsed summaries (the
//! incoming representation) and writers (the outgoing one). Nothing on the parse or emit
//! path allocates, and no network input can make it panic.
//!
//! - [`v4`]: DHCP for IPv4 (RFC 2131, RFC 2132 options, RFC 3396 long options).
//! - [`v6`]: DHCPv6 (RFC 8415, with prefix delegation and relay encapsulation).
//! - [`failover`]: DHCPv4 failover (draft-ietf-dhc-failover-12).
//! - [`failover6`]: DHCPv6 failover (RFC 8156).

pub mod failover;
pub mod failover6;
pub mod v4;
pub mod v6;
