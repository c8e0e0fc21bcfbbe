//! What the two partner threads (DHCPv4 draft-12 in [`super::partner`], DHCPv6 RFC 8156 in
//! [`super::partner6`]) do alike, whatever their messages: the thread's event loop, liveness
//! of the connection (CONTACT, max-response-delay), the updates in flight going back to the
//! queue when the connection drops, persisting the state, the operator's partner-down, and
//! the status snapshot for the control API.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::link::{LinkEvent, LinkStats};
use super::partner::{Command, Counters, Status};
use super::state::{Machine, State};

/// One binding update sent and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
pub(super) struct Inflight<L> {
    /// The binding as sent.
    pub(super) lease: L,
    /// The potential expiry sent with it.
    pub(super) potential: u32,
    /// When it was sent.
    pub(super) sent: Instant,
}

/// The connection dropped: every update in flight goes back to the front of the queue, the
/// oldest first, to be sent again on the next connection (a repeat is harmless).
pub(super) fn requeue<K, L: Copy>(
    inflight: &mut HashMap<K, Inflight<L>>,
    outq: &mut VecDeque<(L, u32)>,
) {
    let mut back: Vec<Inflight<L>> = inflight.drain().map(|(_, v)| v).collect();
    back.sort_by_key(|i| i.sent);
    for i in back.into_iter().rev() {
        outq.push_front((i.lease, i.potential));
    }
}

/// What the connection needs, checked once a second (draft-12 §8.3, RFC 8156 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Liveness {
    /// Nothing to do.
    Fine,
    /// No message from the partner within max-response-delay: the connection is down.
    Dead,
    /// We have been silent for a third of max-response-delay: send CONTACT.
    Contact,
}

/// The liveness of a connection that is `up` (handshake done or not).
pub(super) fn liveness(
    up: bool,
    handshake: bool,
    last_recv: Instant,
    last_send: Instant,
    max_response_delay: u32,
) -> Liveness {
    let mrd = Duration::from_secs(u64::from(max_response_delay));
    if !up {
        Liveness::Fine
    } else if last_recv.elapsed() > mrd {
        Liveness::Dead
    } else if handshake && last_send.elapsed() > mrd / 3 {
        Liveness::Contact
    } else {
        Liveness::Fine
    }
}

/// Record the state machine in stable storage (draft-12 §9.2); a failure is logged.
pub(super) fn persist(file: &Path, machine: &Machine, name: &str) {
    if let Err(e) = super::persist::save(file, &machine.persisted()) {
        tracing::error!(relationship = %name, error = %e, "could not persist the failover state");
    }
}

/// The operator's answer to a partner-down request, after the state machine handled it.
pub(super) fn partner_down_answer(
    changed: bool,
    machine: &Machine,
) -> Result<&'static str, String> {
    if changed || machine.state() == State::PartnerDown {
        Ok(machine.state().name())
    } else {
        Err(format!(
            "partner-down is not allowed in state {}",
            machine.state().name()
        ))
    }
}

/// What the status snapshot is made of.
pub(super) struct StatusParts<'a, K, L> {
    /// The state machine.
    pub(super) machine: &'a Machine,
    /// Handshake done on the current connection.
    pub(super) connected: bool,
    /// Updates sent and not yet acknowledged.
    pub(super) inflight: &'a HashMap<K, Inflight<L>>,
    /// Updates waiting to be sent.
    pub(super) pending: usize,
    /// Last message from the partner (unix seconds).
    pub(super) last_contact: Option<u32>,
    /// The thread's counters.
    pub(super) counters: &'a Counters,
    /// The link's counters.
    pub(super) link: LinkStats,
}

/// Write the status snapshot the control API and the metrics read.
pub(super) fn fill_status<K, L>(s: &mut Status, p: &StatusParts<'_, K, L>) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    s.state = p.machine.state().name();
    s.partner_state = p.machine.partner_state().map(State::name);
    s.state_since = p.machine.entered();
    s.connected = p.connected;
    s.unacked_updates = p.inflight.len();
    s.pending_updates = p.pending;
    // One clock reading for the whole window.
    s.oldest_unacked_ms = p
        .inflight
        .values()
        .map(|i| i.sent)
        .min()
        .map_or(0, |t| t.elapsed().as_millis() as u64);
    s.last_contact = p.last_contact;
    s.pd_start = p.machine.pd_start();
    s.updates_sent = load(&p.counters.sent);
    s.updates_acked = load(&p.counters.acked);
    s.updates_rejected = load(&p.counters.rejected);
    s.updates_received = load(&p.counters.received);
    s.updates_refused = load(&p.counters.refused);
    s.addresses_transferred = load(&p.counters.transferred);
    s.refused_connections = p.link.refused_connections;
    s.malformed_messages = p.link.malformed + p.link.oversized;
    s.tls_failures = p.link.tls_failures;
}

/// One partner thread's protocol: what the event loop of [`drive`] calls.
pub(super) trait Driver {
    /// How often the workers' rings are polled and queued updates sent.
    const TICK: Duration;
    /// The connection came up, brought a message, or went down.
    fn on_link(&mut self, ev: LinkEvent);
    /// An operator command.
    fn on_command(&mut self, cmd: Command);
    /// Read the workers' rings and send what the window allows.
    fn tick(&mut self);
    /// Timers: the state machine's, liveness, balancing.
    fn every_second(&mut self);
    /// Publish the status snapshot.
    fn update_status(&self);
    /// Orderly stop: DISCONNECT, persist, close.
    async fn shutdown(self);
}

/// How often [`drive`] publishes the status snapshot.
const STATUS_EVERY: Duration = Duration::from_millis(50);

/// The partner thread's loop, until `stop` is set or the link is gone.
pub(super) async fn drive<D: Driver>(
    mut d: D,
    mut events: tokio::sync::mpsc::Receiver<LinkEvent>,
    mut cmds: tokio::sync::mpsc::Receiver<Command>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(D::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_second = Instant::now();
    let mut last_status = Instant::now();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => d.on_link(ev),
                None => break,
            },
            cmd = cmds.recv() => {
                if let Some(cmd) = cmd {
                    d.on_command(cmd);
                }
            }
            _ = tick.tick() => {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                d.tick();
                let now = Instant::now();
                if now.duration_since(last_second) >= Duration::from_secs(1) {
                    last_second = now;
                    d.every_second();
                }
                // The snapshot for the API and metrics walks the in-flight window: a few
                // times a second is fresh enough, every tick would cost more than the
                // updates themselves.
                if now.duration_since(last_status) >= STATUS_EVERY {
                    last_status = now;
                    d.update_status();
                }
            }
        }
    }
    d.shutdown().await;
}

/// What a relationship's configuration says, whatever its family: enough to start the state
/// machine, the status and the link.
pub(super) struct Relationship<'a> {
    /// Relationship name.
    pub(super) name: &'a str,
    /// `"v4"` or `"v6"`.
    pub(super) family: &'static str,
    /// This server's role.
    pub(super) role: crate::config::FailoverRole,
    /// MCLT, seconds.
    pub(super) mclt: u32,
    /// Seconds in COMMUNICATIONS-INTERRUPTED before PARTNER-DOWN by itself.
    pub(super) auto_partner_down: Option<u32>,
    /// Where the state machine is recorded.
    pub(super) state_file: std::path::PathBuf,
    /// Latest client transaction in the recovered store (0: none).
    pub(super) newest_cltt: u32,
    /// Mutual TLS.
    pub(super) tls: Option<&'a crate::config::FailoverTls>,
}

/// Everything a partner thread starts with besides its protocol's own state.
pub(super) struct Started {
    /// This server's role.
    pub(super) role: super::state::Role,
    /// The state machine, restored from the state file.
    pub(super) machine: Machine,
    /// The status snapshot shared with the control API.
    pub(super) status: Arc<std::sync::Mutex<Status>>,
    /// The thread's runtime (the link was started on it).
    pub(super) rt: tokio::runtime::Runtime,
    /// The partner connection, already listening.
    pub(super) link: super::link::Link,
    /// Its events.
    pub(super) events: tokio::sync::mpsc::Receiver<LinkEvent>,
}

/// Restore the state machine, make the status, build the runtime and start the link
/// (binding now, so a busy port fails the server's start). `link` is completed with the
/// role's connect flag and the TLS files.
pub(super) fn start(
    r: &Relationship<'_>,
    mut link: super::link::LinkConfig,
) -> Result<Started, super::partner::PartnerError> {
    use super::partner::PartnerError;
    use super::state::Role;
    let persisted = super::persist::load(&r.state_file).map_err(PartnerError::State)?;
    let role = match r.role {
        crate::config::FailoverRole::Primary => Role::Primary,
        crate::config::FailoverRole::Secondary => Role::Secondary,
    };
    let mut machine = Machine::new(
        role,
        r.mclt,
        r.auto_partner_down,
        persisted.as_ref(),
        super::partner::unix_now(),
    );
    if r.newest_cltt != 0 {
        machine.note_prior_activity(r.newest_cltt);
    }
    let status = Arc::new(std::sync::Mutex::new(Status {
        name: r.name.to_owned(),
        family: r.family,
        role: role.name(),
        mclt: r.mclt,
        ..Status::default()
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PartnerError::Runtime)?;
    link.connect = role == Role::Primary;
    link.tls = r.tls.map(|t| super::link::TlsConfig {
        cert: t.cert.clone(),
        key: t.key.clone(),
        ca: t.ca.clone(),
        peer_name: t.peer_name.clone(),
    });
    let (link, events) = rt
        .block_on(super::link::Link::start(link))
        .map_err(PartnerError::Link)?;
    Ok(Started {
        role,
        machine,
        status,
        rt,
        link,
        events,
    })
}

/// Run `d` on its own thread `name` and hand back the handle the server keeps.
pub(super) fn launch<D: Driver + Send + 'static>(
    name: String,
    rt: tokio::runtime::Runtime,
    d: D,
    events: tokio::sync::mpsc::Receiver<LinkEvent>,
    status: Arc<std::sync::Mutex<Status>>,
) -> Result<super::partner::PartnerHandle, super::partner::PartnerError> {
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::channel(8);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            crate::privilege::thread_start();
            rt.block_on(drive(d, events, cmd_rx, stop2));
        })
        .map_err(super::partner::PartnerError::Spawn)?;
    Ok(super::partner::PartnerHandle::from_parts(
        status, cmd_tx, stop, thread,
    ))
}
