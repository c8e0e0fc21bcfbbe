//! Fill a new data directory with synthetic active leases before a benchmark starts the
//! server on it (steady state with millions of leases).
//!
//! ```text
//! cargo run --release -p twinlease-bench --bin store_fill -- --data-dir D --leases 10000000 \
//!     --first 10.1.0.0 --last 10.255.255.250
//! ```

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "Fill a twinlease data directory with synthetic active leases")]
struct Args {
    /// The data directory (created; must hold no store yet).
    #[arg(long)]
    data_dir: PathBuf,
    /// Leases to write.
    #[arg(long)]
    leases: u32,
    /// Worker count of the server that will use the store.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// First address of subnet 1's pool (the leases take the addresses from here on).
    #[arg(long)]
    first: Ipv4Addr,
    /// Last address of that pool.
    #[arg(long)]
    last: Ipv4Addr,
    /// Lease time from now, seconds.
    #[arg(long, default_value_t = 86_400)]
    lease_time: u32,
}

fn main() {
    let a = Args::parse();
    if let Err(e) = std::fs::create_dir_all(&a.data_dir) {
        eprintln!("store_fill: {}: {e}", a.data_dir.display());
        std::process::exit(1);
    }
    let t = Instant::now();
    if let Err(e) = twinlease_bench::fill::fill_store(
        &a.data_dir,
        a.workers,
        a.first,
        a.last,
        a.leases,
        a.lease_time,
    ) {
        eprintln!("store_fill: {e}");
        std::process::exit(1);
    }
    println!(
        "store_fill: {} leases written to {} in {:.1} s",
        a.leases,
        a.data_dir.display(),
        t.elapsed().as_secs_f64()
    );
}
