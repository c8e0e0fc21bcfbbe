//! Queue tuning: ethtool channels on a veth inside a namespace this test creates, IRQ
//! discovery and affinity against a fake `/proc` and `/sys` in a temp directory, thread
//! pinning, and the `twinlease tune` command line.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use twinlease::tune::{
    self, Channels, ChannelsRequest, QueueIrq, TuneError, VIRTUAL_NOTE, channels,
    current_thread_affinity, pin_current_thread, queue_irqs, queue_irqs_in, set_channels,
    set_irq_affinity, spread_queue_irqs,
};

const BIN: &str = env!("CARGO_BIN_EXE_twinlease");

fn is_root() -> bool {
    // Safety: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace holding a veth pair `tva`/`tvb` with 4 RX and 4 TX queues each;
/// deleting the namespace on drop deletes the pair with it.
struct VethNs {
    name: String,
}

impl VethNs {
    fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        // `tl<pid>-…`: the shape the test harness sweeps if a crashed run leaves it behind.
        let name = format!(
            "tl{}-tune{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ip(&[
            "-n",
            &ns.name,
            "link",
            "add",
            "tva",
            "numrxqueues",
            "4",
            "numtxqueues",
            "4",
            "type",
            "veth",
            "peer",
            "name",
            "tvb",
            "numrxqueues",
            "4",
            "numtxqueues",
            "4",
        ]);
        ip(&["-n", &ns.name, "link", "set", "tva", "up"]);
        ip(&["-n", &ns.name, "link", "set", "tvb", "up"]);
        ns
    }

    /// Runs `f` on a thread that has entered the namespace (only that thread moves).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = fs::File::open(&path).expect("open netns file");
            // Safety: file is an open namespace file; setns only changes this thread's netns.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    /// Runs `twinlease ARGS` inside the namespace (`ip netns exec` remounts /sys for it).
    fn twinlease(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, BIN])
            .args(args)
            .output()
            .expect("run twinlease in namespace")
    }
}

impl Drop for VethNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn rxtx(c: &Channels) -> (u32, u32, u32, u32, u32) {
    (c.rx, c.tx, c.max_rx, c.max_tx, c.combined + c.max_combined)
}

#[test]
fn veth_channels_get_and_set() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ns = VethNs::create();
    ns.run(|| {
        // veth reports rx/tx channels (no combined): current = real queues, max = created.
        let c = channels("tva").unwrap();
        assert_eq!(rxtx(&c), (4, 4, 4, 4, 0), "{c:?}");

        let req = ChannelsRequest::queue_pairs("tva", &c, 2).unwrap();
        assert_eq!((req.rx, req.tx, req.combined), (Some(2), Some(2), None));
        let after = set_channels("tva", req).unwrap();
        assert_eq!(rxtx(&after), (2, 2, 4, 4, 0));
        assert_eq!(rxtx(&channels("tva").unwrap()), (2, 2, 4, 4, 0));

        // The kernel refuses combined channels on veth (max_combined is 0): EINVAL, named.
        let err = set_channels(
            "tva",
            ChannelsRequest {
                combined: Some(2),
                ..ChannelsRequest::default()
            },
        )
        .unwrap_err();
        let TuneError::Ethtool { source, .. } = &err else {
            panic!("expected Ethtool error, got {err:?}");
        };
        assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(
            err.to_string(),
            "tva: ETHTOOL_SCHANNELS (combined 2) refused by the kernel or driver"
        );
        // Above the maximum: refused before the ioctl, with the maximum in the message.
        let err = ChannelsRequest::queue_pairs("tva", &after, 5).unwrap_err();
        assert!(matches!(
            err,
            TuneError::ChannelsOutOfRange {
                requested: 5,
                max: 4,
                ..
            }
        ));

        let back = set_channels(
            "tva",
            ChannelsRequest::queue_pairs("tva", &after, 4).unwrap(),
        )
        .unwrap();
        assert_eq!(rxtx(&back), (4, 4, 4, 4, 0));

        // Loopback has no get_channels handler.
        assert!(matches!(
            channels("lo"),
            Err(TuneError::Unsupported {
                op: "ETHTOOL_GCHANNELS",
                ..
            })
        ));
        assert!(matches!(
            channels("nosuch0"),
            Err(TuneError::NoSuchInterface { .. })
        ));
    });
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "twinlease tune failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn cli_tunes_veth_in_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ns = VethNs::create();
    let v = json_of(&ns.twinlease(&["tune", "--iface", "tva", "--channels", "2", "--json"]));
    assert_eq!(v["iface"], "tva");
    assert_eq!(v["virtual"], true);
    assert_eq!(v["channels"]["rx"], 2);
    assert_eq!(v["channels"]["tx"], 2);
    // The sysfs queue directories follow the channel count.
    assert_eq!(v["queues"]["rx"], 2);
    assert_eq!(v["queues"]["tx"], 2);
    assert_eq!(v["irqs_note"], VIRTUAL_NOTE);
    assert_eq!(
        v["changes"][0],
        "channels: rx 4 -> 2, tx 4 -> 2, combined 0 -> 0"
    );

    // --irq-cores on a virtual device says so and succeeds.
    let v = json_of(&ns.twinlease(&["tune", "--iface", "tva", "--irq-cores", "0,1", "--json"]));
    assert_eq!(v["irqs_note"], VIRTUAL_NOTE);
    assert_eq!(v["irqs"].as_array().map(Vec::len), Some(0));

    let out = ns.twinlease(&["tune", "--iface", "tva", "--channels", "9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tva: 9 channel(s) requested; the driver allows 1 to 4 rx/tx"),
        "{err}"
    );

    let out = ns.twinlease(&["tune", "--iface", "tva", "--channels", "4"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("channels: rx 4/4  tx 4/4"), "{text}");
    assert!(text.contains("queues:   4 rx, 4 tx"), "{text}");
    assert!(text.contains(VIRTUAL_NOTE), "{text}");
}

/// A fake `/proc` and `/sys`: `eth9` names its IRQs (`eth9-TxRx-N` plus a link vector
/// `eth9`), `eth90` is a decoy with a longer name, `eth8` is virtio-like (vectors named after
/// the PCI device, found through `device/../msi_irqs`), `veth7` is virtual.
fn fake_tree(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let proc_root = root.join("proc");
    let sys_root = root.join("sys");
    let interrupts = "           CPU0       CPU1
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 60:         10         20  IR-PCI-MSI 524288-edge      eth9
 61:        100          0  IR-PCI-MSI 524289-edge      eth9-TxRx-0
 62:          0        100  IR-PCI-MSI 524290-edge      eth9-TxRx-1
 63:          5          5  IR-PCI-MSI 524291-edge      eth9-TxRx-2
 70:          5          5  IR-PCI-MSI 524292-edge      eth90-TxRx-0
 64:          5          5  IR-PCI-MSI 524293-edge      eth9-TxRx-3
 80:          0          0  PCI-MSIX-0000:00:07.0   0-edge      virtio5-config
 81:          9          0  PCI-MSIX-0000:00:07.0   1-edge      virtio5-input.0
 82:          0          9  PCI-MSIX-0000:00:07.0   2-edge      virtio5-output.0
NMI:          0          0   Non-maskable interrupts
LOC:       1234       5678   Local timer interrupts
";
    fs::create_dir_all(&proc_root).unwrap();
    fs::write(proc_root.join("interrupts"), interrupts).unwrap();
    for irq in [24, 60, 61, 62, 63, 64, 70, 80, 81, 82] {
        let d = proc_root.join(format!("irq/{irq}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("smp_affinity_list"), "0-1\n").unwrap();
    }
    fs::create_dir_all(sys_root.join("class/net/eth9/device")).unwrap();
    fs::create_dir_all(sys_root.join("class/net/eth90/device")).unwrap();
    // eth8/device/.. is the PCI function holding msi_irqs.
    let pci = sys_root.join("devices/pci0000:00/0000:00:07.0");
    fs::create_dir_all(pci.join("virtio5")).unwrap();
    fs::create_dir_all(pci.join("msi_irqs")).unwrap();
    for irq in [80, 81, 82] {
        fs::write(pci.join(format!("msi_irqs/{irq}")), "msix\n").unwrap();
    }
    fs::create_dir_all(sys_root.join("class/net/eth8")).unwrap();
    std::os::unix::fs::symlink(pci.join("virtio5"), sys_root.join("class/net/eth8/device"))
        .unwrap();
    fs::create_dir_all(sys_root.join("class/net/veth7/queues/rx-0")).unwrap();
    fs::create_dir_all(sys_root.join("class/net/veth7/queues/tx-0")).unwrap();
    fs::create_dir_all(sys_root.join("class/net/veth7/queues/tx-1")).unwrap();
    (proc_root, sys_root)
}

fn summary(irqs: &[QueueIrq]) -> Vec<(u32, Option<usize>, &str, Vec<usize>)> {
    irqs.iter()
        .map(|i| (i.irq, i.queue, i.name.as_str(), i.affinity.clone()))
        .collect()
}

fn affinity_file(proc_root: &Path, irq: u32) -> String {
    fs::read_to_string(proc_root.join(format!("irq/{irq}/smp_affinity_list"))).unwrap()
}

#[test]
fn irqs_found_and_spread_in_fake_proc() {
    let tmp = tempfile::tempdir().unwrap();
    let (proc_root, sys_root) = fake_tree(tmp.path());

    let irqs = queue_irqs_in("eth9", &proc_root, &sys_root).unwrap();
    assert_eq!(
        summary(&irqs),
        vec![
            (61, Some(0), "eth9-TxRx-0", vec![0, 1]),
            (62, Some(1), "eth9-TxRx-1", vec![0, 1]),
            (63, Some(2), "eth9-TxRx-2", vec![0, 1]),
            (64, Some(3), "eth9-TxRx-3", vec![0, 1]),
            (60, None, "eth9", vec![0, 1]),
        ]
    );

    let moves = spread_queue_irqs(&irqs, &[0, 1], &proc_root).unwrap();
    assert_eq!(moves, vec![(61, 0), (62, 1), (63, 0), (64, 1)]);
    assert_eq!(affinity_file(&proc_root, 61), "0\n");
    assert_eq!(affinity_file(&proc_root, 62), "1\n");
    assert_eq!(affinity_file(&proc_root, 63), "0\n");
    assert_eq!(affinity_file(&proc_root, 64), "1\n");
    // The link vector, the decoy eth90 and unrelated IRQs are left alone.
    for irq in [60, 70, 24] {
        assert_eq!(affinity_file(&proc_root, irq), "0-1\n", "irq {irq}");
    }
    let again = queue_irqs_in("eth9", &proc_root, &sys_root).unwrap();
    let affinities: Vec<_> = again.iter().map(|i| i.affinity.clone()).collect();
    assert_eq!(
        affinities,
        vec![vec![0], vec![1], vec![0], vec![1], vec![0, 1]]
    );

    set_irq_affinity(60, &[1, 3], &proc_root).unwrap();
    assert_eq!(affinity_file(&proc_root, 60), "1,3\n");

    // Errors name the file.
    let err = set_irq_affinity(99, &[0], &proc_root).unwrap_err();
    assert!(matches!(err, TuneError::Write { .. }), "{err:?}");
    assert!(
        err.to_string().contains("irq/99/smp_affinity_list"),
        "{err}"
    );
    assert!(set_irq_affinity(60, &[], &proc_root).is_err());
    fs::write(proc_root.join("irq/62/smp_affinity_list"), "garbage\n").unwrap();
    let err = queue_irqs_in("eth9", &proc_root, &sys_root).unwrap_err();
    assert!(matches!(err, TuneError::Parse { .. }), "{err:?}");
    assert!(
        err.to_string().contains("irq/62/smp_affinity_list"),
        "{err}"
    );
}

#[test]
fn msi_fallback_virtual_and_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let (proc_root, sys_root) = fake_tree(tmp.path());

    let irqs = queue_irqs_in("eth8", &proc_root, &sys_root).unwrap();
    assert_eq!(
        summary(&irqs),
        vec![
            (81, Some(0), "virtio5-input.0", vec![0, 1]),
            (82, Some(0), "virtio5-output.0", vec![0, 1]),
            (80, None, "virtio5-config", vec![0, 1]),
        ]
    );
    assert_eq!(
        tune::irq_plan(&irqs, &[1, 0]),
        vec![(81, 1), (82, 1)],
        "both directions of queue 0 go to the first core"
    );

    assert!(tune::is_virtual("veth7", &sys_root));
    assert!(!tune::is_virtual("eth9", &sys_root));
    assert!(
        queue_irqs_in("veth7", &proc_root, &sys_root)
            .unwrap()
            .is_empty()
    );
    let q = tune::queue_counts("veth7", &sys_root).unwrap();
    assert_eq!((q.rx, q.tx), (1, 2));

    // A physical device whose IRQs cannot be found is an error naming both places searched.
    fs::create_dir_all(sys_root.join("class/net/eth6/device")).unwrap();
    let err = queue_irqs_in("eth6", &proc_root, &sys_root).unwrap_err();
    assert!(matches!(err, TuneError::NoQueueIrqs { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("eth6: no per-queue IRQs found in"),
        "{err}"
    );

    let err = queue_irqs("../etc", &proc_root).unwrap_err();
    assert!(matches!(err, TuneError::BadInterfaceName { .. }), "{err:?}");
}

#[test]
fn pin_current_thread_to_core_0() {
    std::thread::spawn(|| {
        pin_current_thread(0).unwrap();
        assert_eq!(current_thread_affinity().unwrap(), vec![0]);
        // A core the CPU set cannot hold, and one no machine here has.
        assert!(matches!(
            pin_current_thread(1 << 20),
            Err(TuneError::CoreOutOfRange { .. })
        ));
        let err = pin_current_thread(1000).unwrap_err();
        let TuneError::Affinity { source, .. } = &err else {
            panic!("expected Affinity error, got {err:?}");
        };
        assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
        // A failed pin leaves the affinity as it was.
        assert_eq!(current_thread_affinity().unwrap(), vec![0]);
    })
    .join()
    .unwrap();
}

#[test]
fn cli_lo_json() {
    let out = Command::new(BIN)
        .args(["tune", "--iface", "lo", "--json"])
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["iface"], "lo");
    assert_eq!(v["ifindex"], 1);
    assert_eq!(v["virtual"], true);
    assert!(v["channels"].is_null());
    assert!(
        v["channels_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not support ETHTOOL_GCHANNELS")),
        "{v}"
    );
    assert!(v["queues"]["rx"].as_u64().is_some_and(|n| n >= 1), "{v}");
    assert_eq!(v["irqs_note"], VIRTUAL_NOTE);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    let out = Command::new(BIN)
        .args(["tune", "--iface", "nosuch0", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("nosuch0: no such interface in this network namespace")
    );
}
