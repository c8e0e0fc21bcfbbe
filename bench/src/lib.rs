//! Benchmarks for twinlease, and the closed-loop DHCP load generator [`loadgen`]
//! (binary `twinlease_bench`).

pub mod fill;
pub mod loadgen;
