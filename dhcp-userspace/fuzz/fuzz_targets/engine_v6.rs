//! Fuzz the DHCPv6 engine: sequences of datagrams (direct or relayed) through `Engine6::handle`
//! on a small fixed configuration (see `twinlease::engine::fuzz`).
//!
//! Run with `cargo xtask fuzz engine_v6` or `cargo +nightly fuzz run engine_v6` from `dhcp-userspace/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = twinlease::engine::fuzz::fuzz_v6(data);
});
