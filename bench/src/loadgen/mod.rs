//! `twinlease_bench`, a closed-loop DHCP client simulator on `AF_XDP`: up to millions of
//! simulated DHCPv4 or DHCPv6 clients (or a relay agent in front of them) on the client end
//! of a link, each waiting for its reply before its next step, driven at a fixed offered rate
//! or up a ladder of rates, with latencies, losses by stage and a check that no address or
//! prefix is handed to two clients.
//!
//! One job per module:
//! - [`clients`]: seeded client identities (MAC, client-id, DUID) and their inversion;
//! - [`scenario`]: the per-client state machine and the operation mix;
//! - [`wire`]: request building and reply parsing;
//! - [`steer`]: the generator-side XDP program that steers replies into its sockets;
//! - [`driver`]: the `AF_XDP` sockets and the paced event loop;
//! - [`stats`]: latency histograms and counters;
//! - [`unique`]: the duplicate-lease detector;
//! - [`report`]: progress line, table and JSON line.

pub mod clients;
pub mod driver;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod steer;
pub mod unique;
pub mod wire;
