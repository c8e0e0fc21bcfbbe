//! End-to-end DHCPDECLINE (RFC 2131 §4.4.1, §4.3.3) with a real client: busybox `udhcpc -a`
//! validates the address it was given with an ARP probe, finds a "squatter" host answering
//! for it on the same segment, declines it, and must then be given another address. The
//! server must quarantine the declined address for `decline-probation-secs`: in the store
//! (ABANDONED, expiring at the end of probation) and on the wire (offered to nobody,
//! neither to the decliner again nor to a client that asks for it by name).
//!
//! ```text
//!  [srv] s0 ── br0 ┬─ [cli0] udhcpc (the decliner)
//!                  ├─ [cli1] the squatter: X configured statically
//!                  └─ [cli2] another udhcpc client, later
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;
use twinlease_tests::capture::{self, Capture, Dhcp4Message};
use twinlease_tests::clients::{UdhcpcRun, udhcpc_once};
use twinlease_tests::topology::{CLIENT_IF, SERVER_IF, Topology};
use twinlease_tests::twinlease::{self, LeaseRecord, Twinlease, TwinleaseConfig};
use twinlease_tests::{Error, Result, require_programs, require_root};

/// Probation configured for the test; the store must show the declined address until
/// the DECLINE's time plus this.
const PROBATION_SECS: u32 = 600;

const DHCPDISCOVER: u8 = 1;
const DHCPOFFER: u8 = 2;
const DHCPDECLINE: u8 = 4;
const DHCPACK: u8 = 5;

/// Server plus topology; field order is drop order (server first, namespaces last).
struct Lab {
    server: Option<Twinlease>,
    topo: Topology,
    bin: PathBuf,
    dir: TempDir,
}

impl Lab {
    fn new(n_clients: usize) -> Result<Self> {
        let bin = twinlease::binary()?;
        let topo = Topology::new(n_clients)?;
        let dir = tempfile::Builder::new().prefix("tl-decline").tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let mut config = TwinleaseConfig::standard(
            &data,
            topo.subnet(),
            (Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 120)),
            3600,
        );
        config.decline_probation_secs = PROBATION_SECS;
        let conf = dir.path().join("twinlease.toml");
        config.write(&conf)?;
        let mut lab = Self {
            server: None,
            topo,
            bin,
            dir,
        };
        lab.start()?;
        Ok(lab)
    }

    /// Starts the server; each start logs to its own file.
    fn start(&mut self) -> Result<()> {
        let n = std::fs::read_dir(self.dir.path())?.count();
        let log = self.dir.path().join(format!("twinlease-{n}.log"));
        let conf = self.dir.path().join("twinlease.toml");
        self.server = Some(Twinlease::start(self.topo.srv(), &self.bin, &conf, &log)?);
        Ok(())
    }

    fn log(&self) -> String {
        self.server.as_ref().map(Twinlease::log).unwrap_or_default()
    }

    /// Stops the server (SIGTERM, exit 0) and reads the store, keyed by address; an
    /// address listed twice is an error.
    fn stop_and_read(&mut self) -> Result<BTreeMap<Ipv4Addr, LeaseRecord>> {
        if let Some(mut s) = self.server.take() {
            s.stop()?;
        }
        let mut out = BTreeMap::new();
        for l in twinlease::leases(&self.bin, &self.dir.path().join("data"))? {
            if let Some(prev) = out.insert(l.addr, l.clone()) {
                return Err(Error(format!("address listed twice: {prev:?} and {l:?}")));
            }
        }
        Ok(out)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mac_of(topo: &Topology, i: usize) -> Result<String> {
    let out = topo.client(i).ip(&["-o", "link", "show", CLIENT_IF])?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| Error(format!("no MAC in {out:?}")))
}

/// The single address a udhcpc run bound; fails (with the run's output) otherwise.
fn bound_once(run: &UdhcpcRun, what: &str) -> Result<Ipv4Addr> {
    let bound: Vec<_> = run.events.iter().filter(|e| e.reason == "bound").collect();
    match (run.code, bound.as_slice()) {
        (Some(0), [one]) => one
            .addr("ip")
            .ok_or_else(|| Error(format!("{what}: bound without address: {run:?}"))),
        _ => Err(Error(format!(
            "{what}: expected exit 0 and one bound event, got {:?} and {} bound events\n\
             events: {:?}\noutput:\n{}",
            run.code,
            bound.len(),
            run.events,
            run.output
        ))),
    }
}

/// Brief description of DHCP messages for failure messages.
fn describe(msgs: &[Dhcp4Message]) -> String {
    msgs.iter()
        .map(|m| {
            format!(
                "op={} type={:?} chaddr={} ciaddr={} yiaddr={} {}->{}",
                m.op, m.msg_type, m.chaddr, m.ciaddr, m.yiaddr, m.ip_src, m.ip_dst
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn udhcpc_declines_an_address_in_use_and_the_server_quarantines_it() -> Result<()> {
    require_root!(Ok(()));
    require_programs(&["udhcpc", "tcpdump", "ip"])?;
    let mut lab = Lab::new(3)?;
    let (decliner, squatter, other) = (0, 1, 2);
    let mac = mac_of(&lab.topo, decliner)?;

    // 1. Learn the address X the server gives the decliner; -R releases it on exit, so
    //    the server's next offer to this client is X again (its last address).
    let first = udhcpc_once(lab.topo.client(decliner), CLIENT_IF, 5, &["-R"])?;
    let x = bound_once(&first, "first udhcpc run")?;

    // 2. The squatter takes X statically: it answers ARP for X.
    lab.topo
        .client(squatter)
        .add_addr(CLIENT_IF, &format!("{x}/{}", lab.topo.subnet().prefix))?;

    // 3. udhcpc with the ARP check: given X, it must see the squatter, DECLINE X and bind
    //    another address Y.
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("decline.pcap");
    let cap = Capture::start(lab.topo.srv(), SERVER_IF, &pcap)?;
    let t0 = now_secs();
    let second = udhcpc_once(lab.topo.client(decliner), CLIENT_IF, 5, &["-a1000"])?;
    let t1 = now_secs();

    let summary = cap.stop()?;
    let wire = capture::read_pcap(&pcap)?;
    let context = format!(
        "second run output:\n{}\nwire:\n{}\nserver log:\n{}",
        second.output,
        describe(&wire),
        lab.log()
    );

    let y = bound_once(&second, "udhcpc -a run").map_err(|e| Error(format!("{e}\n{context}")))?;
    assert_ne!(
        y, x,
        "udhcpc bound the address the squatter holds\n{context}"
    );
    assert!(
        second.output.contains("declining"),
        "udhcpc did not report declining {x}\n{context}"
    );
    let ours = |m: &&Dhcp4Message| m.chaddr.to_string() == mac;
    let decline_msgs: Vec<_> = wire
        .iter()
        .filter(ours)
        .filter(|m| m.op == 1 && m.msg_type == Some(DHCPDECLINE))
        .collect();
    assert_eq!(decline_msgs.len(), 1, "one DECLINE on the wire\n{context}");
    assert_eq!(summary.dropped_by_kernel, Some(0), "{summary:?}");
    // The exchange on the wire: X offered and ACKed, DECLINE, then only Y offered and
    // ACKed to the decliner: the server never offers a quarantined address again.
    let after_decline: Vec<_> = wire
        .iter()
        .skip_while(|m| m.msg_type != Some(DHCPDECLINE))
        .filter(ours)
        .collect();
    assert!(
        after_decline
            .iter()
            .any(|m| m.op == 1 && m.msg_type == Some(DHCPDISCOVER)),
        "no DISCOVER after the DECLINE\n{context}"
    );
    for m in &after_decline {
        if m.op == 2 && [Some(DHCPOFFER), Some(DHCPACK)].contains(&m.msg_type) {
            assert_eq!(m.yiaddr, y, "reply after the DECLINE\n{context}");
        }
    }
    let before_decline: Vec<_> = wire
        .iter()
        .take_while(|m| m.msg_type != Some(DHCPDECLINE))
        .filter(ours)
        .filter(|m| m.op == 2 && m.msg_type == Some(DHCPACK))
        .collect();
    assert!(
        before_decline.iter().any(|m| m.yiaddr == x),
        "X was not ACKed before the DECLINE\n{context}"
    );

    // 4. The store, after a clean stop: X ABANDONED until the DECLINE time + probation,
    //    Y ACTIVE for the decliner.
    let store = lab.stop_and_read()?;
    let abandoned = &store
        .get(&x)
        .cloned()
        .ok_or_else(|| Error(format!("{x} missing from the store: {store:?}")))?;
    assert_eq!(
        abandoned.state, "abandoned",
        "{x} was declined at [{t0}, {t1}] and must stay quarantined for {PROBATION_SECS} s, \
         also once the decliner is bound to {y}: {abandoned:?}\n{store:?}"
    );
    let probation = u64::from(PROBATION_SECS);
    assert!(
        (t0 + probation..=t1 + probation + 1).contains(&abandoned.expires),
        "{x} expires at {}, expected within [{}, {}]",
        abandoned.expires,
        t0 + probation,
        t1 + probation + 1
    );
    let active = store
        .get(&y)
        .ok_or_else(|| Error(format!("{y} missing from the store: {store:?}")))?;
    assert_eq!(active.state, "active", "{active:?}");
    assert_eq!(active.chaddr.as_deref(), Some(mac.as_str()), "{active:?}");
    assert_eq!(
        active.client.as_deref(),
        Some(format!("id:01:{mac}").as_str()),
        "{active:?}"
    );

    // 5. After a restart, another client asks for X by name (option 50): X is still
    //    quarantined, so it gets a third address, and X stays ABANDONED.
    lab.start()?;
    let pcap = dir.path().join("other.pcap");
    let cap = Capture::start(lab.topo.srv(), SERVER_IF, &pcap)?;
    let third = udhcpc_once(
        lab.topo.client(other),
        CLIENT_IF,
        5,
        &["-r", &x.to_string()],
    )?;
    cap.stop()?;
    let context = format!(
        "third run output:\n{}\nwire:\n{}\nserver log:\n{}",
        third.output,
        describe(&capture::read_pcap(&pcap)?),
        lab.log()
    );
    let z = bound_once(&third, "udhcpc -r X on another client")
        .map_err(|e| Error(format!("{e}\n{context}")))?;
    assert_ne!(
        z, x,
        "the quarantined address went to another client\n{context}"
    );
    assert_ne!(z, y, "two clients got {y}\n{context}");
    let store = lab.stop_and_read()?;
    assert_eq!(store.get(&x), Some(abandoned), "{store:?}");
    assert_eq!(store.get(&z).map(|l| l.state.as_str()), Some("active"));
    Ok(())
}
