//! Fuzz the configuration parser: arbitrary bytes, when UTF-8, through `config::parse` and,
//! when accepted, the engine/pool builders (see `twinlease::config::fuzz::fuzz_one`).
//!
//! Run with `cargo xtask fuzz config_parse` or `cargo +nightly fuzz run config_parse` from `dhcp-userspace/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    twinlease::config::fuzz::fuzz_one(data);
});
