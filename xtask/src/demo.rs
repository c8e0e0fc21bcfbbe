//! `cargo xtask demo`: twinlease serving real clients in namespaces.
//!
//! Builds the binary, makes a server namespace and two client namespaces on a bridge,
//! starts twinlease with a generated configuration, then runs dhclient and udhcpc in the
//! first client namespace and a short perfdhcp run in the second, prints the leases and
//! perfdhcp's summary, stops the server with SIGTERM and removes everything.

use std::net::Ipv4Addr;
use std::time::Duration;

use twinlease_tests::clients::{Dhclient, udhcpc_once};
use twinlease_tests::perfdhcp::{PerfdhcpOptions, run_perfdhcp};
use twinlease_tests::topology::{CLIENT_IF, Topology};
use twinlease_tests::twinlease::{self, Twinlease, TwinleaseConfig};
use twinlease_tests::{is_root, require_programs};

use crate::{Error, cargo, deps, run_verbose};

/// Runs the demo.
pub fn run() -> Result<(), Error> {
    if !is_root() {
        println!("xtask demo: skipped: needs root (network namespaces)");
        return Ok(());
    }
    deps::install_deps()?;
    require_programs(&["ip", "dhclient", "udhcpc", "perfdhcp"])?;
    if !run_verbose(cargo().args(["build", "-p", "dhcp-userspace", "--bin", "twinlease"]))?
        .success()
    {
        return Err("building twinlease failed".into());
    }
    let bin = twinlease::binary()?;
    let topo = Topology::new(2)?;
    println!(
        "demo: server namespace {} ({} on s0), clients {} and {} on a bridge",
        topo.srv().name(),
        topo.server_addr(),
        topo.client(0).name(),
        topo.client(1).name()
    );
    let dir = tempfile::Builder::new().prefix("tl-demo").tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let pool = (Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 250));
    let config = TwinleaseConfig::standard(&data, topo.subnet(), pool, 3600);
    let conf_path = dir.path().join("twinlease.toml");
    config.write(&conf_path)?;
    println!(
        "demo: configuration {}:\n{}",
        conf_path.display(),
        config.to_toml()
    );
    let log = dir.path().join("twinlease.log");
    let mut server = Twinlease::start(topo.srv(), &bin, &conf_path, &log)?;
    println!("demo: twinlease is serving");

    let outcome = clients(&topo);
    // The store is read once no server holds it.
    let stopped = server.stop();
    let leases = twinlease::leases(&bin, &data);
    println!("demo: server log (last lines):");
    for line in server
        .log()
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .iter()
        .rev()
    {
        println!("  | {line}");
    }
    outcome?;
    let leases = leases?;
    println!("demo: `twinlease leases` lists {} leases:", leases.len());
    for l in leases.iter().take(20) {
        println!(
            "  {} {} chaddr={} client={} expires={}",
            l.addr,
            l.state,
            l.chaddr.as_deref().unwrap_or("-"),
            l.client.as_deref().unwrap_or("-"),
            l.expires
        );
    }
    if leases.len() > 20 {
        println!("  ... {} more", leases.len() - 20);
    }
    stopped?;
    println!("demo: twinlease stopped cleanly on SIGTERM; namespaces removed");
    Ok(())
}

fn clients(topo: &Topology) -> Result<(), Error> {
    let mut dhclient = Dhclient::start(topo.client(0), CLIENT_IF, 20)?;
    let addr = dhclient.wait_bound(Duration::from_secs(30))?;
    println!("demo: dhclient bound {addr}");
    dhclient.release(topo.client(0))?;
    println!("demo: dhclient released {addr}");

    let run = udhcpc_once(topo.client(0), CLIENT_IF, 5, &[])?;
    match run.leased_addr() {
        Some(a) => println!("demo: udhcpc bound {a}"),
        None => return Err(format!("udhcpc got no lease:\n{}", run.output).into()),
    }

    topo.assign_client_addr(1)?;
    let mut p = PerfdhcpOptions::new(CLIENT_IF, 100);
    p.rate = Some(50);
    p.num_requests = Some(100);
    p.unique = true;
    let report = run_perfdhcp(topo.client(1), &p)?;
    println!(
        "demo: perfdhcp: {} DISCOVERs, {} ACKs, {} drops, {} non-unique, rate {:.1}/s",
        report.discover_offer.as_ref().map_or(0, |s| s.sent),
        report.acks(),
        report.total_drops(),
        report.non_unique(),
        report.rate.unwrap_or(0.0)
    );
    Ok(())
}
