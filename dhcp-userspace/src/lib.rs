//! twinlease: a DHCPv4/DHCPv6 failover server for Linux ISP edge hosts.
//!
//! A newcomer finds where a packet is parsed, decided, stored and sent by the module names:
//! [`wire`] parses and emits, [`engine`] decides (pure protocol logic), [`pool`] holds the
//! per-worker lease shards, [`wal`] makes lease changes durable, [`io`] moves bytes, and
//! [`dispatch`] runs the workers that glue these together; [`control`] is the operator's
//! HTTP/JSON API and Prometheus metrics.

pub mod cli;
pub mod config;
pub mod control;
pub mod dispatch;
pub mod engine;
pub mod failover;
pub mod import;
pub mod io;
pub mod lease;
pub mod logging;
pub mod pool;
pub mod privilege;
pub mod store;
pub mod tune;
pub mod wal;
pub mod wire;
