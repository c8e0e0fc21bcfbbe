//! AF_XDP echo micro-benchmark on a veth pair between two network namespaces (root).
//!
//! The echo side (namespace A, `va`, queue 0) has the twinlease XDP program steering DHCP to
//! an [`XskSocket`]; one core receives a batch, swaps MACs, IP addresses and UDP ports in place
//! (the checksums do not change: the swapped words stay in the sums) and transmits the same
//! frames. The generator (namespace B, `vb`) transmits prebuilt DHCP-like frames through its
//! own [`XskSocket`] as fast as it can on the other core. Echoed frames go to a hardware
//! address nobody has, so B's kernel drops them early.
//!
//! ```text
//! cargo run --release -p twinlease-bench --bin xsk_echo -- --seconds 5
//! ```

#![expect(
    clippy::cast_precision_loss,
    reason = "packet rates for human-readable output"
)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use twinlease::io::xdp::frame::{EthHeader, build_udp4_reply};
use twinlease::io::xdp::program::{AttachMode, XdpProgram};
use twinlease::io::xdp::umem::{Umem, UmemConfig};
use twinlease::io::xdp::xsk::{BindPreference, Desc, XskConfig, XskSocket};

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "AF_XDP echo on veth: packets/s echoed on one core")]
struct Args {
    /// Measurement time.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// UDP payload bytes of the generated frames.
    #[arg(long, default_value_t = 300)]
    payload: usize,
    /// Descriptors per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
/// The generator's source address: no interface has it, so echoes are dropped as
/// "other host" on arrival.
const MAC_GHOST: [u8; 6] = [0x02, 0, 0, 0, 0, 0xee];

/// Two namespaces joined by a veth pair, deleted on drop.
struct Lab {
    a: String,
    b: String,
}

impl Lab {
    fn new() -> Result<Self, String> {
        let lab = Self {
            a: format!("xea{}", std::process::id()),
            b: format!("xeb{}", std::process::id()),
        };
        Self::run(&["netns", "add", &lab.a])?;
        Self::run(&["netns", "add", &lab.b])?;
        #[rustfmt::skip]
        Self::run(&["link", "add", "va", "netns", &lab.a, "address", "02:00:00:00:00:0a",
            "numtxqueues", "2", "numrxqueues", "2", "type", "veth", "peer", "name", "vb",
            "netns", &lab.b, "numtxqueues", "2", "numrxqueues", "2"])?;
        for (ns, dev) in [(&lab.a, "va"), (&lab.b, "vb")] {
            Self::run(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(lab)
    }

    fn run(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Move the calling thread into namespace `ns` and onto CPU `cpu`.
fn enter(ns: &str, cpu: usize) -> Result<(), String> {
    let f = File::open(format!("/run/netns/{ns}")).map_err(|e| e.to_string())?;
    // Safety: f is an open namespace file; setns affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns: {}", std::io::Error::last_os_error()));
    }
    // Safety: a zeroed cpu_set_t is empty; CPU_SET writes inside it; pid 0 = this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
    }
    Ok(())
}

fn ifindex(name: &str) -> Result<u32, String> {
    let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // Safety: c is NUL-terminated.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(format!("no interface {name}")),
        i => Ok(i),
    }
}

fn socket(dev: &str) -> Result<XskSocket, String> {
    let umem = Umem::new(UmemConfig {
        frame_count: 8192,
        frame_size: 2048,
        fill_size: 4096,
        comp_size: 4096,
    })
    .map_err(|e| e.to_string())?;
    let config = XskConfig {
        rx_size: 2048,
        tx_size: 2048,
        bind: BindPreference::Auto,
        need_wakeup: true,
    };
    XskSocket::new(ifindex(dev)?, 0, umem, &config).map_err(|e| e.to_string())
}

/// Swap two equal-length, non-overlapping ranges of `f`.
fn swap(f: &mut [u8], a: usize, b: usize, len: usize) {
    for i in 0..len {
        f.swap(a + i, b + i);
    }
}

fn echo(ns: &str, batch: usize, stop: &AtomicBool, echoed: &AtomicU64) -> Result<String, String> {
    enter(ns, 0)?;
    let mut prog = XdpProgram::load().map_err(|e| format!("XDP program: {e}"))?;
    prog.attach("va", AttachMode::Driver)
        .map_err(|e| e.to_string())?;
    let mut xsk = socket("va")?;
    prog.register_socket(0, xsk.fd())
        .map_err(|e| e.to_string())?;
    xsk.fill();
    let mut descs = vec![Desc::default(); batch];
    let mut total = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = xsk.recv_batch(&mut descs);
        if n == 0 {
            xsk.poll_rx(10).map_err(|e| e.to_string())?;
            xsk.fill();
            continue;
        }
        for d in &descs[..n] {
            let f = xsk.frame_mut(d.addr);
            // Untagged Ethernet/IPv4 (no options)/UDP, as the generator sends.
            swap(f, 0, 6, 6);
            swap(f, 14 + 12, 14 + 16, 4);
            swap(f, 34, 36, 2);
        }
        let sent = xsk.submit_tx(&descs[..n]);
        for d in &descs[sent..n] {
            xsk.release(d.addr);
        }
        xsk.kick_tx().map_err(|e| e.to_string())?;
        xsk.complete();
        xsk.fill();
        total += sent as u64;
        echoed.store(total, Ordering::Relaxed);
    }
    let stats = xsk.stats().map_err(|e| e.to_string())?;
    prog.unregister_socket(0).map_err(|e| e.to_string())?;
    prog.detach().map_err(|e| e.to_string())?;
    Ok(format!("echo socket mode {:?}, {stats:?}", xsk.mode()))
}

fn generate(
    ns: &str,
    payload: usize,
    batch: usize,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<(), String> {
    enter(ns, 1)?;
    let mut xsk = socket("vb")?;
    let eth = EthHeader {
        dst_mac: MAC_A,
        src_mac: MAC_GHOST,
        vlans: [None, None],
    };
    let body = vec![0x5a; payload];
    let mut proto = [0u8; 2048];
    let len = build_udp4_reply(
        &mut proto,
        &eth,
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 68),
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 67),
        &body,
    )
    .map_err(|e| e.to_string())?;
    // Write every frame once; completed frames come back intact and are sent again.
    let mut all = Vec::new();
    while let Some(slot) = xsk.tx_frame() {
        xsk.frame_mut(slot.addr)[..len].copy_from_slice(&proto[..len]);
        all.push(slot.addr);
    }
    for a in all {
        xsk.release(a);
    }
    let mut descs = Vec::with_capacity(batch);
    let mut total = 0u64;
    while !stop.load(Ordering::Relaxed) {
        xsk.complete();
        descs.clear();
        while descs.len() < batch {
            let Some(slot) = xsk.tx_frame() else {
                break;
            };
            descs.push(Desc {
                addr: slot.addr,
                len: len as u32,
            });
        }
        let n = xsk.submit_tx(&descs);
        for d in &descs[n..] {
            xsk.release(d.addr);
        }
        xsk.kick_tx().map_err(|e| e.to_string())?;
        total += n as u64;
        sent.store(total, Ordering::Relaxed);
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root");
        return;
    }
    let lab = match Lab::new() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("namespace setup: {e}");
            std::process::exit(1);
        }
    };
    let stop = AtomicBool::new(false);
    let echoed = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let outcome = std::thread::scope(|s| {
        let e = s.spawn(|| echo(&lab.a, args.batch, &stop, &echoed));
        // Let the echo side attach and bind before traffic starts.
        std::thread::sleep(Duration::from_millis(500));
        let g = s.spawn(|| generate(&lab.b, args.payload, args.batch, &stop, &sent));
        std::thread::sleep(Duration::from_millis(500));
        let (e0, s0, t0) = (
            echoed.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed),
            Instant::now(),
        );
        let end = t0 + Duration::from_secs(args.seconds);
        while Instant::now() < end && !e.is_finished() && !g.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let dt = t0.elapsed().as_secs_f64();
        let (e1, s1) = (echoed.load(Ordering::Relaxed), sent.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        let er = e
            .join()
            .unwrap_or_else(|_| Err("echo thread panicked".into()));
        let gr = g
            .join()
            .unwrap_or_else(|_| Err("generator panicked".into()));
        (er, gr, (e1 - e0) as f64 / dt, (s1 - s0) as f64 / dt, dt)
    });
    let (er, gr, echo_pps, gen_pps, dt) = outcome;
    if let (Ok(info), Ok(())) = (&er, &gr) {
        println!(
            "xsk_echo: {dt:.1} s, {:.0} packets/s echoed, {:.0} packets/s generated \
                 ({} B frames, batch {})",
            echo_pps,
            gen_pps,
            14 + 28 + args.payload,
            args.batch
        );
        println!("{info}");
    } else {
        eprintln!("echo: {er:?}\ngenerator: {gr:?}");
        drop(lab);
        std::process::exit(1);
    }
}
