//! Failover resynchronisation benchmark: how long a fresh secondary takes to copy every
//! lease of its primary (draft-ietf-dhc-failover-12 UPDREQALL → BNDUPD stream → UPDDONE).
//!
//! Two twinlease servers run in this process on loopback (primary 127.0.0.1, secondary
//! 127.0.0.2, failover TCP between them, durable WAL on both). The primary's store is filled
//! with `--leases` active leases before it starts; the secondary starts with an empty data
//! directory, enters RECOVER and asks for everything. Measured: from the secondary's start to
//! the moment it holds every lease (BNDUPDs received and acknowledged), and to NORMAL.
//!
//! ```text
//! cargo run --release -p twinlease-bench --bin failover_resync -- --leases 1000000
//! ```

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use twinlease::config;
use twinlease::dispatch::Server;

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "twinlease failover benchmark: full resynchronisation time (UPDREQALL)")]
struct Args {
    /// Active leases in the primary's store.
    #[arg(long, default_value_t = 1_000_000)]
    leases: u32,
    /// Workers per server.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// max-unacked-updates of both servers.
    #[arg(long, default_value_t = 2000)]
    window: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Directory for the two data directories (removed afterwards).
    #[arg(long, default_value = "/tmp")]
    dir: std::path::PathBuf,
}

const PORT: u16 = 16_647;


/// A /12 holds the pool: 10.16.0.0 – 10.31.255.255.
fn pool_end(leases: u32) -> Ipv4Addr {
    let first = u32::from(Ipv4Addr::new(10, 16, 0, 10));
    Ipv4Addr::from(first + leases.max(1000) + 1000)
}

fn config_text(data: &Path, role: &str, me: u8, workers: usize, leases: u32, window: u32) -> String {
    let peer = if me == 1 { 2 } else { 1 };
    format!(
        r#"
[server]
data-dir = "{data}"
workers = {workers}
listen = ["127.0.0.{me}:{dhcp}"]
drop-capabilities = false

[control]
listen = "127.0.0.{me}:0"

[failover]
name = "bench"
role = "{role}"
address = "127.0.0.{me}"
port = {PORT}
peer-address = "127.0.0.{peer}"
peer-port = {PORT}
mclt = 60
max-response-delay = 30
max-unacked-updates = {window}

[[subnet4]]
id = 1
subnet = "10.16.0.0/12"
lease-time = 3600

[[subnet4.pool]]
range = "10.16.0.10-{end}"
"#,
        data = data.display(),
        dhcp = 16_067 + u16::from(me),
        end = pool_end(leases),
    )
}

fn main() {
    let args = Args::parse();
    let tmp = tempfile::Builder::new()
        .prefix("tl-resync")
        .tempdir_in(&args.dir)
        .expect("temp dir");
    let (a_dir, b_dir) = (tmp.path().join("primary"), tmp.path().join("secondary"));
    std::fs::create_dir_all(&a_dir).expect("mkdir");
    std::fs::create_dir_all(&b_dir).expect("mkdir");
    let t0 = Instant::now();
    twinlease_bench::fill::fill_store(
        &a_dir,
        args.workers,
        Ipv4Addr::new(10, 16, 0, 10),
        pool_end(args.leases),
        args.leases,
        3600,
    )
    .expect("fill the primary's store");
    eprintln!(
        "filled the primary's store with {} leases in {:.1} s",
        args.leases,
        t0.elapsed().as_secs_f64()
    );
    let parse = |text: String, name: &str| config::parse(&text, name).expect("config");
    let a_cfg = parse(
        config_text(&a_dir, "primary", 1, args.workers, args.leases, args.window),
        "primary.toml",
    );
    let b_cfg = parse(
        config_text(&b_dir, "secondary", 2, args.workers, args.leases, args.window),
        "secondary.toml",
    );
    let a = Server::start(&a_cfg).expect("start primary");
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let b = Server::start(&b_cfg).expect("start secondary");
    let (ha, hb) = (a.control(), b.control());
    let deadline = start + Duration::from_secs(args.timeout);
    let mut all_at = None;
    let mut normal_at = None;
    let mut last_print = Instant::now();
    while Instant::now() < deadline && normal_at.is_none() {
        std::thread::sleep(Duration::from_millis(20));
        let sb = hb.failover_status();
        let sa = ha.failover_status();
        let (Some(sb), Some(sa)) = (sb.first(), sa.first()) else {
            continue;
        };
        if all_at.is_none() && sb.updates_received >= u64::from(args.leases) {
            all_at = Some(start.elapsed());
        }
        if sb.state == "normal" && sa.state == "normal" {
            normal_at = Some(start.elapsed());
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "{:>6.1} s: secondary {} received {}, primary {} sent {} acked {}",
                start.elapsed().as_secs_f64(),
                sb.state,
                sb.updates_received,
                sa.state,
                sa.updates_sent,
                sa.updates_acked
            );
        }
    }
    let recs = b.stats.records.load(std::sync::atomic::Ordering::Relaxed);
    b.shutdown();
    a.shutdown();
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    let all = secs(all_at);
    println!(
        "leases {}  workers {}  window {}  all received in {:.2} s ({:.0} leases/s)  both NORMAL after {:.2} s  records made durable by the secondary {}",
        args.leases,
        args.workers,
        args.window,
        all,
        f64::from(args.leases) / all,
        secs(normal_at),
        recs
    );
    println!(
        "{{\"bench\":\"failover_resync\",\"leases\":{},\"workers\":{},\"window\":{},\"all_received_s\":{all:.3},\"normal_s\":{:.3},\"durable_records\":{recs}}}",
        args.leases,
        args.workers,
        args.window,
        secs(normal_at)
    );
}
