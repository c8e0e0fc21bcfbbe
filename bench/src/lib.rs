//! Benchmarks for twinlease.
