//! Fuzz the DHCPv6 codec: `Request::parse` through relay levels, the option iterators,
//! `client_duid_fast`, and a reply written from the parsed request through matching
//! RELAY-REPL levels (see `twinlease::wire::v6::fuzz_one`).
//!
//! Run with `cargo +nightly fuzz run dhcpv6_parse` from `dhcp-userspace/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    twinlease::wire::v6::fuzz_one(data);
});
