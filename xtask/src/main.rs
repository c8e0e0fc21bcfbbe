//! Chores: `cargo xtask demo`, `cargo xtask test`, `cargo xtask bench-*`.
fn main() {}
