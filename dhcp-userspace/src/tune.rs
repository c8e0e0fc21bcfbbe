//! Per-NIC queue tuning: channel counts (ethtool), the IRQs of the queues and their CPU
//! affinity, and pinning a thread to a core.
//!
//! The server uses this to pin its I/O loops and workers; `twinlease tune` shows and changes
//! the same settings from the command line. Channel counts go through the `SIOCETHTOOL` ioctl
//! (`ETHTOOL_GCHANNELS` / `ETHTOOL_SCHANNELS`) in the caller's network namespace; IRQs come from
//! `/proc/interrupts` (lines naming the interface, such as `eth0-TxRx-0`) or, for drivers that
//! do not name their vectors after the interface, from the device's `msi_irqs` directory.
//! Every function that reads `/proc` or `/sys` takes the root as a parameter so that tests can
//! point it at a fake tree.

use std::ffi::CString;
use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

/// `ETHTOOL_GCHANNELS` from `<linux/ethtool.h>`: get channel counts.
const ETHTOOL_GCHANNELS: u32 = 0x3c;
/// `ETHTOOL_SCHANNELS` from `<linux/ethtool.h>`: set channel counts.
const ETHTOOL_SCHANNELS: u32 = 0x3d;
/// Largest CPU index a `cpu_set_t` can hold.
const MAX_CORES: usize = 8 * size_of::<libc::cpu_set_t>();

/// Errors of queue tuning. Every variant names the interface, file or core it concerns.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The interface name cannot name a Linux interface.
    #[error("{iface:?}: not a valid interface name (1 to 15 bytes, no '/', no whitespace)")]
    BadInterfaceName {
        /// The name given.
        iface: String,
    },
    /// No interface of that name exists in this network namespace.
    #[error("{iface}: no such interface in this network namespace")]
    NoSuchInterface {
        /// The name given.
        iface: String,
    },
    /// The socket used to carry ethtool ioctls could not be opened.
    #[error("{iface}: cannot open a socket for ethtool ioctls")]
    Socket {
        /// The interface the ioctl was for.
        iface: String,
        /// The error of `socket(2)`.
        #[source]
        source: io::Error,
    },
    /// The driver has no handler for this ethtool command.
    #[error("{iface}: the driver does not support {op}")]
    Unsupported {
        /// The interface.
        iface: String,
        /// The ethtool command.
        op: &'static str,
        /// `EOPNOTSUPP` as the kernel returned it.
        #[source]
        source: io::Error,
    },
    /// The kernel or the driver refused an ethtool command.
    #[error("{iface}: {op} refused by the kernel or driver")]
    Ethtool {
        /// The interface.
        iface: String,
        /// The ethtool command and, for a set, the counts asked for.
        op: String,
        /// The errno of the ioctl (`EINVAL` for counts the driver rejects, `EPERM` without
        /// `CAP_NET_ADMIN`, `EBUSY` while an AF_XDP socket holds a queue that would go away).
        #[source]
        source: io::Error,
    },
    /// A channel count outside what the driver reports as its maximum, or zero.
    #[error("{iface}: {requested} channel(s) requested; the driver allows 1 to {max} {kind}")]
    ChannelsOutOfRange {
        /// The interface.
        iface: String,
        /// The count asked for.
        requested: u32,
        /// The driver's maximum.
        max: u32,
        /// Which channels: "combined" or "rx/tx".
        kind: &'static str,
    },
    /// A file under `/proc` or `/sys` could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The error of the read.
        #[source]
        source: io::Error,
    },
    /// A file under `/proc` could not be written.
    #[error("cannot write {value:?} to {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The error of the write (`EINVAL` for a core that does not exist or is offline,
        /// `EIO` for an IRQ whose affinity is managed by the kernel).
        #[source]
        source: io::Error,
    },
    /// A file's content did not have the expected shape.
    #[error("{}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A physical device whose queue IRQs could not be found.
    #[error("{iface}: no per-queue IRQs found in {} or {}", interrupts.display(), msi_dir.display())]
    NoQueueIrqs {
        /// The interface.
        iface: String,
        /// The `/proc/interrupts` file searched.
        interrupts: PathBuf,
        /// The `msi_irqs` directory searched.
        msi_dir: PathBuf,
    },
    /// A CPU list that is empty or malformed.
    #[error("invalid CPU core list {text:?}: {reason}")]
    BadCoreList {
        /// The list as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A core index beyond what a CPU set can hold.
    #[error("core {core} is beyond the largest CPU set ({MAX_CORES} cores)")]
    CoreOutOfRange {
        /// The core asked for.
        core: usize,
    },
    /// `sched_setaffinity` or `sched_getaffinity` failed.
    #[error("cannot {op} the CPU affinity of the current thread (core {core:?})")]
    Affinity {
        /// "set" or "get".
        op: &'static str,
        /// The core asked for, when setting.
        core: Option<usize>,
        /// The errno (`EINVAL` when the core is offline or outside the cgroup's cpuset).
        #[source]
        source: io::Error,
    },
}

/// Channel counts of an interface as `ETHTOOL_GCHANNELS` reports them: the maxima the driver
/// supports and the counts currently configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Channels {
    /// Most receive-only channels.
    pub max_rx: u32,
    /// Most transmit-only channels.
    pub max_tx: u32,
    /// Most other channels (link interrupts, SR-IOV coordination).
    pub max_other: u32,
    /// Most combined (one RX and one TX queue sharing an IRQ) channels.
    pub max_combined: u32,
    /// Current receive-only channels.
    pub rx: u32,
    /// Current transmit-only channels.
    pub tx: u32,
    /// Current other channels.
    pub other: u32,
    /// Current combined channels.
    pub combined: u32,
}

/// A change of channel counts: `None` keeps the current count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChannelsRequest {
    /// New receive-only count.
    pub rx: Option<u32>,
    /// New transmit-only count.
    pub tx: Option<u32>,
    /// New other count.
    pub other: Option<u32>,
    /// New combined count.
    pub combined: Option<u32>,
}

impl ChannelsRequest {
    /// The request that gives `iface` `n` queue pairs: `n` combined channels when the driver
    /// has combined channels, otherwise `n` RX and `n` TX channels (veth is such a driver).
    pub fn queue_pairs(iface: &str, current: &Channels, n: u32) -> Result<Self, TuneError> {
        let (max, kind) = if current.max_combined > 0 {
            (current.max_combined, "combined")
        } else {
            (current.max_rx.min(current.max_tx), "rx/tx")
        };
        if n == 0 || n > max {
            return Err(TuneError::ChannelsOutOfRange {
                iface: iface.to_owned(),
                requested: n,
                max,
                kind,
            });
        }
        Ok(if current.max_combined > 0 {
            Self {
                combined: Some(n),
                ..Self::default()
            }
        } else {
            Self {
                rx: Some(n),
                tx: Some(n),
                ..Self::default()
            }
        })
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for (name, v) in [
            ("rx", self.rx),
            ("tx", self.tx),
            ("other", self.other),
            ("combined", self.combined),
        ] {
            if let Some(v) = v {
                let _ = write!(s, "{}{name} {v}", if s.is_empty() { "" } else { ", " });
            }
        }
        s
    }
}

/// `struct ethtool_channels` of `<linux/ethtool.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

fn check_name(iface: &str) -> Result<(), TuneError> {
    if iface.is_empty()
        || iface.len() >= libc::IFNAMSIZ
        || iface.contains('/')
        || iface.contains(char::is_whitespace)
        || iface == "."
        || iface == ".."
        || iface.contains('\0')
    {
        return Err(TuneError::BadInterfaceName {
            iface: iface.to_owned(),
        });
    }
    Ok(())
}

/// The index of `iface` in the caller's network namespace.
pub fn ifindex(iface: &str) -> Result<u32, TuneError> {
    check_name(iface)?;
    let name = CString::new(iface).map_err(|_| TuneError::BadInterfaceName {
        iface: iface.to_owned(),
    })?;
    // Safety: name is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(TuneError::NoSuchInterface {
            iface: iface.to_owned(),
        });
    }
    Ok(index)
}

/// Runs one `SIOCETHTOOL` ioctl carrying `ch` on `iface`.
fn ethtool_channels_ioctl(iface: &str, ch: &mut EthtoolChannels) -> io::Result<()> {
    // Safety: socket(2) has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: fd is a freshly opened descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // Safety: ifreq is plain data (a name array and a union of plain data and a pointer);
    // all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(iface.as_bytes()) {
        *dst = src.cast_signed();
    }
    req.ifr_ifru.ifru_data = std::ptr::from_mut(ch).cast::<libc::c_char>();
    // Safety: req is a valid ifreq with a NUL-terminated name (check_name keeps it under
    // IFNAMSIZ bytes and the array was zeroed) whose data pointer points at a live
    // ethtool_channels, which is what SIOCETHTOOL with a *CHANNELS command reads and writes.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn socket_error(iface: &str, e: io::Error, op: String, op_name: &'static str) -> TuneError {
    match e.raw_os_error() {
        Some(libc::EAFNOSUPPORT | libc::EMFILE | libc::ENFILE | libc::ENOBUFS) => {
            TuneError::Socket {
                iface: iface.to_owned(),
                source: e,
            }
        }
        Some(libc::ENODEV) => TuneError::NoSuchInterface {
            iface: iface.to_owned(),
        },
        Some(libc::EOPNOTSUPP) => TuneError::Unsupported {
            iface: iface.to_owned(),
            op: op_name,
            source: e,
        },
        _ => TuneError::Ethtool {
            iface: iface.to_owned(),
            op,
            source: e,
        },
    }
}

/// The channel counts of `iface` (`ETHTOOL_GCHANNELS`), in the caller's network namespace.
pub fn channels(iface: &str) -> Result<Channels, TuneError> {
    check_name(iface)?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    ethtool_channels_ioctl(iface, &mut ch).map_err(|e| {
        socket_error(
            iface,
            e,
            "ETHTOOL_GCHANNELS".to_owned(),
            "ETHTOOL_GCHANNELS",
        )
    })?;
    Ok(Channels {
        max_rx: ch.max_rx,
        max_tx: ch.max_tx,
        max_other: ch.max_other,
        max_combined: ch.max_combined,
        rx: ch.rx_count,
        tx: ch.tx_count,
        other: ch.other_count,
        combined: ch.combined_count,
    })
}

/// Changes the channel counts of `iface` (`ETHTOOL_SCHANNELS`); fields of `req` left `None`
/// keep their current value. Returns the counts read back after the change. Needs
/// `CAP_NET_ADMIN`; the kernel refuses counts above the driver's maxima and, while an AF_XDP
/// socket or XDP program uses a queue, counts that would remove it.
pub fn set_channels(iface: &str, req: ChannelsRequest) -> Result<Channels, TuneError> {
    let cur = channels(iface)?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_SCHANNELS,
        max_rx: cur.max_rx,
        max_tx: cur.max_tx,
        max_other: cur.max_other,
        max_combined: cur.max_combined,
        rx_count: req.rx.unwrap_or(cur.rx),
        tx_count: req.tx.unwrap_or(cur.tx),
        other_count: req.other.unwrap_or(cur.other),
        combined_count: req.combined.unwrap_or(cur.combined),
    };
    ethtool_channels_ioctl(iface, &mut ch).map_err(|e| {
        socket_error(
            iface,
            e,
            format!("ETHTOOL_SCHANNELS ({})", req.describe()),
            "ETHTOOL_SCHANNELS",
        )
    })?;
    channels(iface)
}

/// Numbers of RX and TX queues the kernel exposes for an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// `rx-N` entries in `queues/`.
    pub rx: usize,
    /// `tx-N` entries in `queues/`.
    pub tx: usize,
}

/// Counts the `rx-N` and `tx-N` directories in `SYS/class/net/IFACE/queues/` (`sys_root` is
/// normally `/sys`, whose `class/net` shows the network namespace that mounted it).
pub fn queue_counts(iface: &str, sys_root: &Path) -> Result<QueueCounts, TuneError> {
    check_name(iface)?;
    let dir = sys_root.join("class/net").join(iface).join("queues");
    let read_err = |source| TuneError::Read {
        path: dir.clone(),
        source,
    };
    let mut counts = QueueCounts { rx: 0, tx: 0 };
    for entry in std::fs::read_dir(&dir).map_err(read_err)? {
        let name = entry.map_err(read_err)?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("rx-") {
            counts.rx += 1;
        } else if name.starts_with("tx-") {
            counts.tx += 1;
        }
    }
    Ok(counts)
}

/// Whether `iface` is a virtual device (veth, loopback, bridge…): it has no `device` link in
/// sysfs, hence no hardware queues with IRQs of their own.
#[must_use]
pub fn is_virtual(iface: &str, sys_root: &Path) -> bool {
    !sys_root
        .join("class/net")
        .join(iface)
        .join("device")
        .exists()
}

/// One IRQ serving a queue of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueIrq {
    /// The IRQ number.
    pub irq: u32,
    /// The queue (channel) index, when the IRQ's name carries one; `None` for the other
    /// vectors of a device (link, config, admin queues).
    pub queue: Option<usize>,
    /// The IRQ's name in `/proc/interrupts`, such as `eth0-TxRx-3`.
    pub name: String,
    /// Its current affinity (`/proc/irq/N/smp_affinity_list`).
    pub affinity: Vec<usize>,
}

/// One line of `/proc/interrupts` with a numeric IRQ: its number and the name tokens after
/// the per-CPU counts.
fn interrupt_lines(text: &str) -> impl Iterator<Item = (u32, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let (num, rest) = line.trim_start().split_once(':')?;
        let irq = num.parse::<u32>().ok()?;
        let tokens = rest
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .skip_while(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        Some((irq, tokens))
    })
}

/// If `token` names `iface` (bounded by the token's ends or by `-`, `_`, `@`, `:`), the part of
/// the token after the interface name.
fn names_iface<'t>(token: &'t str, iface: &str) -> Option<&'t str> {
    let sep = |c: Option<char>| c.is_none_or(|c| matches!(c, '-' | '_' | '@' | ':'));
    let mut from = 0;
    while let Some(pos) = token[from..].find(iface) {
        let start = from + pos;
        let end = start + iface.len();
        if sep(token[..start].chars().next_back()) && sep(token[end..].chars().next()) {
            return Some(&token[end..]);
        }
        from = start + 1;
    }
    None
}

/// The number ending `s` (after `-`, `.` or letters), if any.
fn trailing_number(s: &str) -> Option<usize> {
    let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    s[s.len() - digits..].parse().ok()
}

/// The queue index of an MSI vector named `label`, for drivers that name vectors after the
/// device rather than the interface (`virtio2-input.0`, `mlx5_comp3@pci:0000:3b:00.0`).
fn msi_queue(label: &str) -> Option<usize> {
    let label = label.split('@').next().unwrap_or(label);
    let lower = label.to_ascii_lowercase();
    let is_queue = ["rx", "tx", "input", "output", "comp", "queue", "fp"]
        .iter()
        .any(|k| lower.contains(k));
    if is_queue {
        trailing_number(label)
    } else {
        None
    }
}

/// Parses a CPU list such as `0-3,6` (the format of `smp_affinity_list` and `--irq-cores`).
pub fn parse_core_list(text: &str) -> Result<Vec<usize>, TuneError> {
    let bad = |reason: &str| TuneError::BadCoreList {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let mut cores = Vec::new();
    for part in text.trim().split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let lo: usize = lo
            .parse()
            .map_err(|_| bad(&format!("{part:?} is not a core or range")))?;
        let hi: usize = hi
            .parse()
            .map_err(|_| bad(&format!("{part:?} is not a core or range")))?;
        if lo > hi {
            return Err(bad(&format!("range {part:?} runs backwards")));
        }
        if hi >= MAX_CORES {
            return Err(TuneError::CoreOutOfRange { core: hi });
        }
        cores.extend(lo..=hi);
    }
    if cores.is_empty() {
        return Err(bad("empty"));
    }
    Ok(cores)
}

/// A CPU list given on the command line (`0,1` or `0-3,6`), parsed by [`parse_core_list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreList(pub Vec<usize>);

impl std::str::FromStr for CoreList {
    type Err = TuneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_core_list(s).map(CoreList)
    }
}

fn format_core_list(cores: &[usize]) -> String {
    let mut s = String::new();
    for c in cores {
        let _ = write!(s, "{}{c}", if s.is_empty() { "" } else { "," });
    }
    s
}

fn read_affinity(irq: u32, proc_root: &Path) -> Result<Vec<usize>, TuneError> {
    let path = proc_root
        .join("irq")
        .join(irq.to_string())
        .join("smp_affinity_list");
    let text = std::fs::read_to_string(&path).map_err(|source| TuneError::Read {
        path: path.clone(),
        source,
    })?;
    parse_core_list(&text).map_err(|e| TuneError::Parse {
        path,
        reason: e.to_string(),
    })
}

/// The IRQs of `iface`'s queues with their affinity, read from `PROC/interrupts` and
/// `PROC/irq/N/smp_affinity_list` (`proc_root` is normally `/proc`); falls back to the
/// device's `msi_irqs` in `/sys` for drivers that do not name their IRQs after the interface.
/// Empty for a virtual device (see [`is_virtual`]).
pub fn queue_irqs(iface: &str, proc_root: &Path) -> Result<Vec<QueueIrq>, TuneError> {
    queue_irqs_in(iface, proc_root, Path::new("/sys"))
}

/// [`queue_irqs`] with the sysfs root as a parameter too.
pub fn queue_irqs_in(
    iface: &str,
    proc_root: &Path,
    sys_root: &Path,
) -> Result<Vec<QueueIrq>, TuneError> {
    check_name(iface)?;
    if is_virtual(iface, sys_root) {
        return Ok(Vec::new());
    }
    let interrupts = proc_root.join("interrupts");
    let text = std::fs::read_to_string(&interrupts).map_err(|source| TuneError::Read {
        path: interrupts.clone(),
        source,
    })?;
    let mut found: Vec<(u32, Option<usize>, String)> = Vec::new();
    for (irq, tokens) in interrupt_lines(&text) {
        for token in tokens {
            if let Some(rest) = names_iface(token, iface) {
                let queue = if rest.is_empty() {
                    None
                } else {
                    trailing_number(rest.split('@').next().unwrap_or(rest))
                };
                found.push((irq, queue, token.to_owned()));
                break;
            }
        }
    }
    let device = sys_root.join("class/net").join(iface).join("device");
    // virtio-net's `device` is the virtio device; its MSI vectors belong to the PCI parent.
    let msi_dirs = [device.join("msi_irqs"), device.join("../msi_irqs")];
    if found.is_empty()
        && let Some(dir) = msi_dirs.iter().find(|d| d.is_dir())
    {
        let names: Vec<(u32, Vec<&str>)> = interrupt_lines(&text).collect();
        for entry in std::fs::read_dir(dir).map_err(|source| TuneError::Read {
            path: dir.clone(),
            source,
        })? {
            let entry = entry.map_err(|source| TuneError::Read {
                path: dir.clone(),
                source,
            })?;
            let Ok(irq) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let label = names
                .iter()
                .find(|(n, _)| *n == irq)
                .and_then(|(_, t)| t.last().copied())
                .unwrap_or("")
                .to_owned();
            found.push((irq, msi_queue(&label), label));
        }
    }
    if found.is_empty() {
        return Err(TuneError::NoQueueIrqs {
            iface: iface.to_owned(),
            interrupts,
            msi_dir: msi_dirs[0].clone(),
        });
    }
    found.sort_by_key(|(irq, queue, _)| (queue.is_none(), *queue, *irq));
    found
        .into_iter()
        .map(|(irq, queue, name)| {
            Ok(QueueIrq {
                irq,
                queue,
                name,
                affinity: read_affinity(irq, proc_root)?,
            })
        })
        .collect()
}

/// Sets the affinity of `irq` to `cores` by writing `PROC/irq/IRQ/smp_affinity_list`.
pub fn set_irq_affinity(irq: u32, cores: &[usize], proc_root: &Path) -> Result<(), TuneError> {
    let path = proc_root
        .join("irq")
        .join(irq.to_string())
        .join("smp_affinity_list");
    if cores.is_empty() {
        return Err(TuneError::BadCoreList {
            text: String::new(),
            reason: format!("no core given for {}", path.display()),
        });
    }
    if let Some(&core) = cores.iter().find(|&&c| c >= MAX_CORES) {
        return Err(TuneError::CoreOutOfRange { core });
    }
    let value = format_core_list(cores);
    // No create: an IRQ directory that does not exist is an error, not a new file.
    let result = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| io::Write::write_all(&mut f, format!("{value}\n").as_bytes()));
    result.map_err(|source| TuneError::Write {
        path,
        value,
        source,
    })
}

/// Where each queue IRQ goes: queue `q`'s IRQ to `cores[q % cores.len()]`. IRQs without a
/// queue index are left out. Empty when `cores` is empty.
#[must_use]
pub fn irq_plan(irqs: &[QueueIrq], cores: &[usize]) -> Vec<(u32, usize)> {
    if cores.is_empty() {
        return Vec::new();
    }
    irqs.iter()
        .filter_map(|i| i.queue.map(|q| (i.irq, cores[q % cores.len()])))
        .collect()
}

/// Applies [`irq_plan`]: writes each queue IRQ's affinity. Returns the moves made.
pub fn spread_queue_irqs(
    irqs: &[QueueIrq],
    cores: &[usize],
    proc_root: &Path,
) -> Result<Vec<(u32, usize)>, TuneError> {
    let plan = irq_plan(irqs, cores);
    for &(irq, core) in &plan {
        set_irq_affinity(irq, &[core], proc_root)?;
    }
    Ok(plan)
}

/// Pins the calling thread to `core` (`sched_setaffinity`).
pub fn pin_current_thread(core: usize) -> Result<(), TuneError> {
    if core >= MAX_CORES {
        return Err(TuneError::CoreOutOfRange { core });
    }
    // Safety: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // Safety: core < MAX_CORES, the number of bits in the set.
    unsafe { libc::CPU_SET(core, &mut set) };
    // Safety: set is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
    if rc != 0 {
        return Err(TuneError::Affinity {
            op: "set",
            core: Some(core),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The cores the calling thread may run on (`sched_getaffinity`).
pub fn current_thread_affinity() -> Result<Vec<usize>, TuneError> {
    // Safety: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // Safety: set is a valid, writable cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) };
    if rc != 0 {
        return Err(TuneError::Affinity {
            op: "get",
            core: None,
            source: io::Error::last_os_error(),
        });
    }
    // Safety: every index tested is below the number of bits in the set.
    Ok((0..MAX_CORES)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// What `twinlease tune` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct TuneArgs {
    /// The interface.
    pub iface: String,
    /// Queue pairs to configure (`--channels N`).
    pub channels: Option<u32>,
    /// Cores to spread the queue IRQs over (`--irq-cores LIST`).
    pub irq_cores: Option<Vec<usize>>,
    /// Print one JSON object instead of text.
    pub json: bool,
}

/// What `twinlease tune` found and did, as printed (`--json` prints it as it serialises).
#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    /// The interface.
    pub iface: String,
    /// Its index in this network namespace.
    pub ifindex: u32,
    /// Whether it is a virtual device without hardware queues.
    #[serde(rename = "virtual")]
    pub is_virtual: bool,
    /// Channel counts, or `None` with [`TuneReport::channels_error`] set.
    pub channels: Option<Channels>,
    /// Why the channel counts could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels_error: Option<String>,
    /// Queue counts from sysfs, or `None` with [`TuneReport::queues_error`] set.
    pub queues: Option<QueueCounts>,
    /// Why the queue counts could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues_error: Option<String>,
    /// The queue IRQs and their affinity.
    pub irqs: Vec<QueueIrq>,
    /// Why there are no IRQs to show, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irqs_note: Option<String>,
    /// The changes made, one sentence each.
    pub changes: Vec<String>,
}

/// The error and its sources on one line.
#[must_use]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let _ = write!(s, ": {src}");
        cur = src.source();
    }
    s
}

/// Note shown instead of IRQs for a virtual device.
pub const VIRTUAL_NOTE: &str = "no per-queue IRQs: virtual device";

/// Carries out `twinlease tune` against the given `/proc` and `/sys` roots: applies the
/// changes asked for, then reads everything back. Errors of the changes asked for are
/// returned; failures to read what is merely shown are recorded in the report.
pub fn tune(args: &TuneArgs, proc_root: &Path, sys_root: &Path) -> Result<TuneReport, TuneError> {
    let iface = args.iface.as_str();
    let ifindex = ifindex(iface)?;
    let is_virtual = is_virtual(iface, sys_root);
    let mut changes = Vec::new();
    if let Some(n) = args.channels {
        let before = channels(iface)?;
        let req = ChannelsRequest::queue_pairs(iface, &before, n)?;
        let after = set_channels(iface, req)?;
        changes.push(format!(
            "channels: rx {} -> {}, tx {} -> {}, combined {} -> {}",
            before.rx, after.rx, before.tx, after.tx, before.combined, after.combined
        ));
    }
    let mut irqs_note = None;
    if let Some(cores) = &args.irq_cores {
        if is_virtual {
            irqs_note = Some(VIRTUAL_NOTE.to_owned());
        } else {
            let irqs = queue_irqs_in(iface, proc_root, sys_root)?;
            let moves = spread_queue_irqs(&irqs, cores, proc_root)?;
            if moves.is_empty() {
                irqs_note = Some("no IRQ carries a queue index; none moved".to_owned());
            }
            for (irq, core) in moves {
                let name = irqs
                    .iter()
                    .find(|i| i.irq == irq)
                    .map_or("", |i| i.name.as_str());
                changes.push(format!("irq {irq} ({name}) -> core {core}"));
            }
        }
    }
    let (channels, channels_error) = match channels(iface) {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(error_chain(&e))),
    };
    let (queues, queues_error) = match queue_counts(iface, sys_root) {
        Ok(q) => (Some(q), None),
        Err(e) => (None, Some(error_chain(&e))),
    };
    let irqs = if is_virtual {
        irqs_note.get_or_insert_with(|| VIRTUAL_NOTE.to_owned());
        Vec::new()
    } else {
        match queue_irqs_in(iface, proc_root, sys_root) {
            Ok(v) => v,
            Err(e) => {
                irqs_note = Some(error_chain(&e));
                Vec::new()
            }
        }
    };
    Ok(TuneReport {
        iface: iface.to_owned(),
        ifindex,
        is_virtual,
        channels,
        channels_error,
        queues,
        queues_error,
        irqs,
        irqs_note,
        changes,
    })
}

/// The report as text, as `twinlease tune` prints it without `--json`.
#[must_use]
pub fn render_text(r: &TuneReport) -> String {
    let mut s = String::new();
    let kind = if r.is_virtual {
        "virtual device"
    } else {
        "physical device"
    };
    let _ = writeln!(s, "interface {} (ifindex {}, {kind})", r.iface, r.ifindex);
    for c in &r.changes {
        let _ = writeln!(s, "changed:  {c}");
    }
    match (&r.channels, &r.channels_error) {
        (Some(c), _) => {
            let _ = writeln!(
                s,
                "channels: rx {}/{}  tx {}/{}  other {}/{}  combined {}/{}  (current/max)",
                c.rx, c.max_rx, c.tx, c.max_tx, c.other, c.max_other, c.combined, c.max_combined
            );
        }
        (None, e) => {
            let _ = writeln!(s, "channels: unavailable: {}", e.as_deref().unwrap_or("?"));
        }
    }
    match (&r.queues, &r.queues_error) {
        (Some(q), _) => {
            let _ = writeln!(s, "queues:   {} rx, {} tx", q.rx, q.tx);
        }
        (None, e) => {
            let _ = writeln!(s, "queues:   unavailable: {}", e.as_deref().unwrap_or("?"));
        }
    }
    if let Some(note) = &r.irqs_note {
        let _ = writeln!(s, "irqs:     {note}");
    }
    if !r.irqs.is_empty() {
        let _ = writeln!(s, "irqs:     irq   queue  cores  name");
        for i in &r.irqs {
            let q = i.queue.map_or_else(|| "-".to_owned(), |q| q.to_string());
            let _ = writeln!(
                s,
                "          {:<5} {:<6} {:<6} {}",
                i.irq,
                q,
                format_core_list(&i.affinity),
                i.name
            );
        }
    }
    s
}

/// `twinlease tune`: applies what `args` asks for and prints the result.
#[must_use]
pub fn cli_main(args: &TuneArgs) -> ExitCode {
    match tune(args, Path::new("/proc"), Path::new("/sys")) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("twinlease tune: {}: cannot encode JSON: {e}", args.iface);
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", render_text(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("twinlease tune: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_iface_respects_boundaries() {
        assert_eq!(names_iface("eth0-TxRx-3", "eth0"), Some("-TxRx-3"));
        assert_eq!(names_iface("i40e-eth0-TxRx-1", "eth0"), Some("-TxRx-1"));
        assert_eq!(names_iface("eth0", "eth0"), Some(""));
        assert_eq!(names_iface("eth01-TxRx-0", "eth0"), None);
        assert_eq!(names_iface("veth0-rx-0", "eth0"), None);
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_core_list("0-2,5\n").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_core_list("").is_err());
        assert!(parse_core_list("3-1").is_err());
        assert!(parse_core_list("a").is_err());
        assert!(matches!(
            parse_core_list("0,99999"),
            Err(TuneError::CoreOutOfRange { core: 99999 })
        ));
    }

    #[test]
    fn queue_pairs_prefers_combined() {
        let mut c = Channels {
            max_rx: 0,
            max_tx: 0,
            max_other: 1,
            max_combined: 8,
            rx: 0,
            tx: 0,
            other: 1,
            combined: 8,
        };
        let r = ChannelsRequest::queue_pairs("eth0", &c, 4).unwrap();
        assert_eq!((r.combined, r.rx, r.tx), (Some(4), None, None));
        assert!(ChannelsRequest::queue_pairs("eth0", &c, 9).is_err());
        c.max_combined = 0;
        c.max_rx = 4;
        c.max_tx = 2;
        let r = ChannelsRequest::queue_pairs("v", &c, 2).unwrap();
        assert_eq!((r.combined, r.rx, r.tx), (None, Some(2), Some(2)));
        let e = ChannelsRequest::queue_pairs("v", &c, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "v: 3 channel(s) requested; the driver allows 1 to 2 rx/tx"
        );
        assert!(ChannelsRequest::queue_pairs("v", &c, 0).is_err());
    }

    #[test]
    fn msi_labels() {
        assert_eq!(msi_queue("virtio2-input.3"), Some(3));
        assert_eq!(msi_queue("virtio2-config"), None);
        assert_eq!(msi_queue("mlx5_comp5@pci:0000:3b:00.0"), Some(5));
        assert_eq!(msi_queue("mlx5_async0@pci:0000:3b:00.0"), None);
    }
}
