//! Fuzz the DHCPv4 codec: `Request::parse`, the option iterator, `client_key_fast`, and a
//! reply re-emitted from the parsed request (see `twinlease::wire::v4::fuzz_one`).
//!
//! Run with `cargo +nightly fuzz run dhcpv4_parse` from `dhcp-userspace/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    twinlease::wire::v4::fuzz_one(data);
});
