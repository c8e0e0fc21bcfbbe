//! Fuzz the DHCPv4 engine: sequences of datagrams through `Request::parse` and `Engine::handle`
//! on a small fixed configuration (see `twinlease::engine::fuzz`).
//!
//! Run with `cargo xtask fuzz engine_v4` or `cargo +nightly fuzz run engine_v4` from `dhcp-userspace/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = twinlease::engine::fuzz::fuzz_v4(data);
});
