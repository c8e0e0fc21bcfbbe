//! Fuzz the DHCPv6 failover codec (RFC 8156): the input is a TCP byte stream, split into
//! frames; every message goes through the option iterator, a raw rewrite and the typed
//! parsers and emitters (see `twinlease::wire::failover6::fuzz_one`).
//!
//! Run with `cargo +nightly fuzz run failover6_parse` from `dhcp-userspace/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    twinlease::wire::failover6::fuzz_one(data);
});
