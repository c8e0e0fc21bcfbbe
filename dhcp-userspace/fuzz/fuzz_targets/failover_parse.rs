//! Fuzz the DHCPv4 failover codec (draft-ietf-dhc-failover-12): the input is one framed
//! message; it goes through the option iterator, the typed parsers and a rewrite that must
//! parse back the same (see `twinlease::wire::failover::fuzz_one`). Seeds are messages ISC
//! dhcpd 4.4 sent and accepted (`tests/data/failover_isc_messages.txt`).
//!
//! Run with `cargo +nightly fuzz run failover_parse` from `dhcp-userspace/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    twinlease::wire::failover::fuzz_one(data);
});
