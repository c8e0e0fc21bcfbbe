//! The failover partner link: moves whole draft-ietf-dhc-failover-12 messages between this
//! server and its one configured peer, over TCP or over TLS with mutual authentication.
//!
//! It knows nothing of leases or failover states. [`Link::start`] binds the listener and
//! spawns the tasks; [`LinkEvent`]s (connection up, one whole message, connection down) arrive
//! on a bounded channel, and [`Link::send`] queues one whole message to the current connection.
//!
//! Connection rules (draft-12 §8.2, "Creating the TCP connection"):
//! - Both servers listen; only the primary (`connect = true`) connects, retrying with a
//!   backoff of 1 s doubling to 10 s (1 s after a connection that was up goes down).
//! - "A primary server MUST use a connection that it has initiated in order to send a CONNECT
//!   message" (§8.2): a connection the primary *accepts* from its peer is a secondary's
//!   stimulus. It is closed at once (and counted), and the primary retries its own connection
//!   without waiting for the backoff. This also settles simultaneous connections ("the
//!   primary server MUST send a CONNECT message over one connection and it MUST close the
//!   other", §8.2). Both ends configured `connect = true` therefore never come up: a
//!   configuration error.
//! - The secondary uses the connections it accepts from the peer's address (any source
//!   port). When a new one arrives while one is up, the newer replaces the older (the older
//!   gets `Down`, then the newer `Up`): the primary opens a new connection only after giving
//!   up the old one (a restart, or its tReceive timer expired, §8.3), while our end of the
//!   old one may linger half-open until our own timer fires; keeping the older would lock the
//!   primary out meanwhile. Reject reason 7, "duplicate connection" (§12.21), answers a second
//!   CONNECT and is the protocol layer's business.
//! - Connections from any other address are closed unread and counted
//!   ([`LinkStats::refused_connections`]).
//!
//! Framing: every message starts with its 2-byte length, header included (§6.1); the reader
//! splits the stream with [`frame_len`] and checks each message with [`Packet::new_checked`].
//! A length below the 12-byte header, a message that check rejects, or a length above
//! [`LinkConfig::max_message`] closes the connection (a `tracing` warning and
//! [`LinkEvent::Down`]); nothing is buffered beyond one message, and a reader whose events are
//! not consumed stops reading, so a flooding peer meets TCP backpressure.
//!
//! TLS ([`TlsConfig`]): draft-12 negotiates TLS inside the connection (TLS-request and
//! TLS-reply options of CONNECT and CONNECTACK, §7.8, §7.9, §11.2). This link instead starts
//! TLS 1.3 as soon as TCP connects, both ends configured alike, so it only works between two
//! twinlease servers (ISC dhcpd speaks no TLS); plain TCP is the default. Both certificates
//! must be signed by the configured CA, and both must name the other end (see
//! [`TlsConfig::peer_name`]).

#[cfg(test)]
mod tests;
mod tls;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::wire::failover::{Error as WireError, Packet, field, frame_len};

/// The default and largest [`LinkConfig::max_message`]: the 2-byte length field's limit
/// (draft-12 §6.1).
pub const DEFAULT_MAX_MESSAGE: usize = 65535;
/// Messages [`Link::send`] queues to one connection before answering
/// [`LinkError::QueueFull`].
pub const SEND_QUEUE: usize = 4096;
/// Events buffered for the consumer; a connection stops reading while this is full.
pub const EVENT_QUEUE: usize = 1024;
/// First delay between two connection attempts of the primary; it doubles after each failure.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest delay between two connection attempts of the primary.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Limit on one TCP connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit on one TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit on writing the queued messages when a connection is closed on purpose
/// ([`Link::drop_connection`], [`Link::shutdown`]).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where to listen, which peer to talk to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// The address to listen on; outgoing connections are made from its IP address too
    /// (unless unspecified).
    pub local: SocketAddr,
    /// The peer: its IP address is the only one accepted (from any source port), and the
    /// primary connects to this address and port.
    pub peer: SocketAddr,
    /// True on the primary, which connects; both listen (draft-12 §8.2).
    pub connect: bool,
    /// The largest message accepted from the peer; a larger one closes the connection.
    /// Clamped to 12..=65535 (the header size and the length field's limit, draft-12 §6.1).
    pub max_message: usize,
    /// TLS with mutual authentication, or `None` for plain TCP.
    pub tls: Option<TlsConfig>,
    /// How messages are delimited and checked on the stream.
    pub framing: Framing,
}

/// The failover protocol spoken on a link: it decides how the byte stream is split into
/// messages and how each one is checked. A message always travels whole, with its length
/// field: [`LinkEvent::Message`] holds it so, and [`Link::send`] takes it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// DHCPv4 failover, draft-ietf-dhc-failover-12 §6.1: the 2-byte length opens the 12-byte
    /// header and counts it.
    #[default]
    Draft12,
    /// DHCPv6 failover, RFC 8156 §5.1 (RFC 5460 §5.1 framing): a 2-byte `msg-size` prefix,
    /// then the 8-byte message header ([`crate::wire::failover6::Message`]).
    Rfc8156,
}

impl Framing {
    /// Bytes of the smallest whole message (length field included).
    fn min_len(self) -> usize {
        match self {
            Self::Draft12 => field::HEADER_LEN,
            Self::Rfc8156 => {
                crate::wire::failover6::FRAME_PREFIX_LEN + crate::wire::failover6::field::HEADER_LEN
            }
        }
    }

    /// The length of the whole message at the start of `stream` (length field included),
    /// once its length field is buffered.
    fn frame_len(self, stream: &[u8]) -> Option<usize> {
        match self {
            Self::Draft12 => frame_len(stream),
            Self::Rfc8156 => crate::wire::failover6::frame_len(stream),
        }
    }

    /// Check one whole message of [`Self::frame_len`] bytes.
    fn check(self, msg: &[u8]) -> Result<(), LinkError> {
        match self {
            Self::Draft12 => Packet::new_checked(msg)
                .map(|_| ())
                .map_err(LinkError::InvalidMessage),
            Self::Rfc8156 => crate::wire::failover6::frame_message(msg)
                .and_then(crate::wire::failover6::Message::new_checked)
                .map(|_| ())
                .map_err(LinkError::InvalidMessage6),
        }
    }
}

impl LinkConfig {
    /// A plain TCP link with the default [`DEFAULT_MAX_MESSAGE`].
    #[must_use]
    pub fn new(local: SocketAddr, peer: SocketAddr, connect: bool) -> Self {
        Self {
            local,
            peer,
            connect,
            max_message: DEFAULT_MAX_MESSAGE,
            tls: None,
            framing: Framing::Draft12,
        }
    }

    fn max_message(&self) -> usize {
        // RFC 8156 frames carry 2 bytes beyond the 65535 of their `msg-size`.
        let max = match self.framing {
            Framing::Draft12 => DEFAULT_MAX_MESSAGE,
            Framing::Rfc8156 => DEFAULT_MAX_MESSAGE + crate::wire::failover6::FRAME_PREFIX_LEN,
        };
        self.max_message.clamp(self.framing.min_len(), max)
    }
}

/// TLS files and the peer's expected name. Both ends use the same CA; each presents its
/// certificate, which should carry the `serverAuth` and `clientAuth` extended key usages (or
/// none), since an end is TLS server when it accepts and TLS client when it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// This server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// This server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificate(s) (PEM) that must have signed the peer's certificate.
    pub ca: PathBuf,
    /// The DNS name the peer's certificate must carry (subject alternative name). When
    /// `None`, the certificate must carry the peer's IP address instead. Checked both ways:
    /// by the connecting end on the server's certificate, and by the accepting end on the
    /// client's certificate.
    pub peer_name: Option<String>,
}

/// What happens on the link, in order: `Up`, then any `Message`s, then `Down` for each
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A connection to the peer is up (after the TLS handshake when TLS is configured).
    Up {
        /// The peer's address and port of this connection.
        peer: SocketAddr,
        /// True when the connection is TLS.
        tls: bool,
    },
    /// One whole message from the peer: its length field matches, and
    /// [`Packet::new_checked`] accepts it.
    Message(Vec<u8>),
    /// The connection is gone. Also sent, without a preceding `Up`, when an attempt fails
    /// its TLS handshake while no connection is up; consumers treat `Down` as idempotent.
    Down {
        /// Why, for the log.
        reason: String,
    },
}

/// Errors of the link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The listening address could not be bound (in use, or not local).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A TLS file could not be read.
    #[error("cannot read {}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A TLS file holds no usable PEM object of the kind expected.
    #[error("{}: {what}", path.display())]
    TlsPem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// The configured peer name is not a valid DNS name.
    #[error("invalid TLS peer name {0:?}")]
    PeerName(String),
    /// rustls refused the certificates or the key.
    #[error("TLS configuration")]
    Tls(#[source] rustls::Error),
    /// The CA file gave no usable trust anchor.
    #[error("TLS client verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// No connection is up.
    #[error("no connection to the failover peer")]
    NotConnected,
    /// The connection's send queue ([`SEND_QUEUE`] messages) is full.
    #[error("failover send queue full")]
    QueueFull,
    /// [`Link::send`] was given something that is not one whole failover message.
    #[error("not one failover message")]
    InvalidMessage(#[source] WireError),
    /// [`Link::send`] was given something that is not one whole RFC 8156 message.
    #[error("not one DHCPv6 failover message")]
    InvalidMessage6(#[source] crate::wire::failover6::Error),
    /// [`Link::send`] was given bytes whose length differs from the message length field.
    #[error("message length field says {field} bytes, got {len}")]
    LengthMismatch {
        /// The length field.
        field: usize,
        /// The bytes given.
        len: usize,
    },
}

/// Counters of the link, since [`Link::start`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections accepted from an address other than the peer's, closed unread.
    pub refused_connections: u64,
    /// Connections the primary accepted from its peer (draft-12 §8.2 stimulus), closed.
    pub stimulus_connections: u64,
    /// TLS handshakes that failed or timed out (either direction), and accepted client
    /// certificates that do not name the peer.
    pub tls_failures: u64,
    /// Connections closed because the peer announced a message above `max_message`.
    pub oversized: u64,
    /// Connections closed because of a malformed message (bad length or header).
    pub malformed: u64,
    /// Whole messages received.
    pub messages_in: u64,
    /// Whole messages written to a connection.
    pub messages_out: u64,
    /// Bytes received (after TLS).
    pub bytes_in: u64,
    /// Bytes written (before TLS).
    pub bytes_out: u64,
    /// Connections that came up.
    pub connections: u64,
    /// Connections that came up after a first one: `connections - 1`, or 0.
    pub reconnects: u64,
    /// Outgoing connection attempts (primary).
    pub connect_attempts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    refused: AtomicU64,
    stimulus: AtomicU64,
    tls_failures: AtomicU64,
    oversized: AtomicU64,
    malformed: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    connections: AtomicU64,
    connect_attempts: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The current connection, as seen by [`Link::send`] and [`Link::drop_connection`].
struct Current {
    id: u64,
    /// Dropped to let the writer finish once the queue is drained.
    out: mpsc::Sender<Vec<u8>>,
    /// Tells the connection task to close, and why.
    close: oneshot::Sender<String>,
    /// Completes (with an error: the sender is dropped) once the connection's `Down` is sent.
    finished: oneshot::Receiver<()>,
}

impl Current {
    /// Ask the connection to flush and close; give back what tells when it is gone.
    fn close(self, reason: &str) -> oneshot::Receiver<()> {
        // The connection task may have ended already: nothing to tell then.
        let _ = self.close.send(reason.to_owned());
        self.finished
    }
}

struct Shared {
    cfg: LinkConfig,
    max_message: usize,
    tls: Option<tls::Tls>,
    events: mpsc::Sender<LinkEvent>,
    current: Mutex<Option<Current>>,
    /// Serialises connection changes, so that an old connection's `Down` precedes the new
    /// one's `Up`.
    install: tokio::sync::Mutex<()>,
    closing: watch::Sender<bool>,
    /// Wakes the primary's connect loop (a stimulus connection arrived).
    stimulus: Notify,
    next_id: AtomicU64,
    counters: Counters,
}

impl Shared {
    fn current(&self) -> MutexGuard<'_, Option<Current>> {
        // A panic while holding this lock leaves a consistent Option behind.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        // `wait_for` fails only when the sender is gone, which `self` prevents.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Report a failed attempt that never came up, unless another connection is up.
    async fn attempt_failed(&self, reason: String) {
        if self.current().is_none() && !self.is_closing() {
            let _ = self.events.send(LinkEvent::Down { reason }).await;
        }
    }
}

/// The link to the failover peer. Created by [`Link::start`] inside a tokio runtime; it owns
/// the listener, the accept loop and (on the primary) the connect loop. Dropping it closes
/// everything without waiting; [`Link::shutdown`] waits for the queued messages to be written.
pub struct Link {
    shared: Arc<Shared>,
    local: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("local", &self.local)
            .field("peer", &self.shared.cfg.peer)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Load the TLS files (if any), bind the listener, and spawn the accept loop and, when
    /// `cfg.connect`, the connect loop. Must be called inside a tokio runtime.
    pub async fn start(cfg: LinkConfig) -> Result<(Link, mpsc::Receiver<LinkEvent>), LinkError> {
        let tls = cfg
            .tls
            .as_ref()
            .map(|t| tls::Tls::load(t, cfg.peer.ip()))
            .transpose()?;
        let listener = TcpListener::bind(cfg.local)
            .await
            .map_err(|source| LinkError::Bind {
                addr: cfg.local,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| LinkError::Bind {
            addr: cfg.local,
            source,
        })?;
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let shared = Arc::new(Shared {
            max_message: cfg.max_message(),
            cfg,
            tls,
            events,
            current: Mutex::new(None),
            install: tokio::sync::Mutex::new(()),
            closing: watch::Sender::new(false),
            stimulus: Notify::new(),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
        });
        tracing::info!(listen = %local, peer = %shared.cfg.peer, connect = shared.cfg.connect,
            tls = shared.tls.is_some(), "failover link listening");
        let mut tasks = vec![tokio::spawn(accept_loop(Arc::clone(&shared), listener))];
        if shared.cfg.connect {
            tasks.push(tokio::spawn(connect_loop(Arc::clone(&shared))));
        }
        Ok((
            Link {
                shared,
                local,
                tasks,
            },
            rx,
        ))
    }

    /// The address the listener is bound to (the real port when the configured one is 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queue one whole message to the current connection. Never blocks.
    pub fn send(&self, msg: Vec<u8>) -> Result<(), LinkError> {
        let framing = self.shared.cfg.framing;
        match framing.frame_len(&msg) {
            Some(n) if n == msg.len() => {}
            Some(n) => {
                return Err(LinkError::LengthMismatch {
                    field: n,
                    len: msg.len(),
                });
            }
            None => {
                return Err(match framing {
                    Framing::Draft12 => LinkError::InvalidMessage(WireError::Truncated {
                        len: msg.len(),
                        need: field::HEADER_LEN,
                    }),
                    Framing::Rfc8156 => {
                        LinkError::InvalidMessage6(crate::wire::failover6::Error::Truncated {
                            len: msg.len(),
                            need: framing.min_len(),
                        })
                    }
                });
            }
        }
        framing.check(&msg)?;
        let current = self.shared.current();
        let Some(c) = current.as_ref() else {
            return Err(LinkError::NotConnected);
        };
        c.out.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LinkError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => LinkError::NotConnected,
        })
    }

    /// True while a connection is up (between its `Up` and `Down`).
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.shared.current().is_some()
    }

    /// Close the current connection, if any, after writing what is queued (at most
    /// [`FLUSH_TIMEOUT`]); its `Down` carries `reason`. The primary reconnects after
    /// [`BACKOFF_MIN`].
    pub fn drop_connection(&self, reason: &str) {
        let current = self.shared.current().take();
        if let Some(c) = current {
            tracing::info!(peer = %self.shared.cfg.peer, reason, "failover: dropping the connection");
            drop(c.close(reason));
        }
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let connections = get(&c.connections);
        LinkStats {
            refused_connections: get(&c.refused),
            stimulus_connections: get(&c.stimulus),
            tls_failures: get(&c.tls_failures),
            oversized: get(&c.oversized),
            malformed: get(&c.malformed),
            messages_in: get(&c.messages_in),
            messages_out: get(&c.messages_out),
            bytes_in: get(&c.bytes_in),
            bytes_out: get(&c.bytes_out),
            connections,
            reconnects: connections.saturating_sub(1),
            connect_attempts: get(&c.connect_attempts),
        }
    }

    /// Close politely: stop listening and connecting, write what is queued (the caller
    /// queues a DISCONNECT first, draft-12 §7.12), close the connection (its `Down` says
    /// "shutdown"), and wait for the tasks.
    pub async fn shutdown(mut self) {
        self.shared.closing.send_replace(true);
        let guard = self.shared.install.lock().await;
        let current = self.shared.current().take();
        if let Some(c) = current {
            let finished = c.close("shutdown");
            let _ = tokio::time::timeout(FLUSH_TIMEOUT + Duration::from_secs(1), finished).await;
        }
        drop(guard);
        for t in std::mem::take(&mut self.tasks) {
            t.abort();
            let _ = t.await;
        }
        tracing::info!(listen = %self.local, "failover link shut down");
    }
}

impl Drop for Link {
    /// Stop listening and connecting and close the connection; the tasks wind down by
    /// themselves (within [`HANDSHAKE_TIMEOUT`] or [`FLUSH_TIMEOUT`]).
    fn drop(&mut self) {
        self.shared.closing.send_replace(true);
        let current = self.shared.current().take();
        if let Some(c) = current {
            drop(c.close("link dropped"));
        }
    }
}

/// Accept connections: the peer's become the connection (secondary) or a stimulus
/// (primary); others are refused.
async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let peer_ip = shared.cfg.peer.ip().to_canonical();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.closed() => return,
            r = listener.accept() => r,
        };
        let (stream, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and the like: do not spin.
                tracing::warn!(error = %e, "failover: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if from.ip().to_canonical() != peer_ip {
            bump(&shared.counters.refused, 1);
            tracing::warn!(from = %from, peer = %shared.cfg.peer,
                "failover: refused a connection from an address that is not the peer's");
            continue;
        }
        if shared.cfg.connect {
            // draft-12 §8.2: the primary only uses connections it initiated; one from the
            // secondary says it is ready, so connect now.
            bump(&shared.counters.stimulus, 1);
            tracing::debug!(from = %from, "failover: closed the peer's stimulus connection");
            drop(stream);
            shared.stimulus.notify_one();
            continue;
        }
        tokio::spawn(inbound(Arc::clone(&shared), stream, from));
    }
}

/// One connection accepted by the secondary: TLS handshake if configured, then run it.
async fn inbound(shared: Arc<Shared>, stream: TcpStream, from: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "failover: TCP_NODELAY");
    }
    let Some(tls) = &shared.tls else {
        establish(&shared, stream, from, false).await;
        return;
    };
    match tls.accept(stream).await {
        Ok(s) => establish(&shared, s, from, true).await,
        Err(e) => {
            bump(&shared.counters.tls_failures, 1);
            tracing::warn!(from = %from, error = %e, "failover: TLS handshake failed");
            shared
                .attempt_failed(format!("TLS handshake with {from} failed: {e}"))
                .await;
        }
    }
}

/// The primary's connect loop (draft-12 §8.2, §8.6: reconnect at once, then periodically).
async fn connect_loop(shared: Arc<Shared>) {
    let mut backoff = BACKOFF_MIN;
    while !shared.is_closing() {
        bump(&shared.counters.connect_attempts, 1);
        let delay = match connect_once(&shared).await {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                BACKOFF_MIN
            }
            Err(e) => {
                let d = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tracing::debug!(peer = %shared.cfg.peer, error = %e, retry_in = ?d,
                    "failover: connection attempt failed");
                d
            }
        };
        tokio::select! {
            () = shared.closed() => return,
            () = tokio::time::sleep(delay) => {}
            () = shared.stimulus.notified() => {}
        }
    }
}

/// One connection attempt; returns once the connection (if it came up) is down.
async fn connect_once(shared: &Arc<Shared>) -> Result<(), String> {
    let peer = shared.cfg.peer;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tcp_connect(shared.cfg.local.ip(), peer))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "failover: TCP_NODELAY");
    }
    let Some(tls) = &shared.tls else {
        establish(shared, stream, peer, false).await;
        return Ok(());
    };
    match tls.connect(stream).await {
        Ok(s) => {
            establish(shared, s, peer, true).await;
            Ok(())
        }
        Err(e) => {
            bump(&shared.counters.tls_failures, 1);
            tracing::warn!(peer = %peer, error = %e, "failover: TLS handshake failed");
            let reason = format!("TLS handshake with {peer} failed: {e}");
            shared.attempt_failed(reason.clone()).await;
            Err(reason)
        }
    }
}

/// Connect from `local` (its port chosen by the kernel) to `peer`.
async fn tcp_connect(local: IpAddr, peer: SocketAddr) -> io::Result<TcpStream> {
    let socket = if peer.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if !local.is_unspecified() && local.is_ipv4() == peer.is_ipv4() {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.connect(peer).await
}

/// Make `stream` the current connection (closing the previous one first), report `Up`, run
/// it until it ends, then report `Down`.
async fn establish<S>(shared: &Arc<Shared>, stream: S, peer: SocketAddr, tls: bool)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let guard = shared.install.lock().await;
    if shared.is_closing() {
        return;
    }
    let previous = shared.current().take();
    if let Some(old) = previous {
        tracing::info!(peer = %peer, "failover: a newer connection from the peer replaces the current one");
        let _ = old
            .close("replaced by a newer connection from the peer")
            .await;
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (out_tx, out_rx) = mpsc::channel(SEND_QUEUE);
    let (close_tx, close_rx) = oneshot::channel();
    let (finished_tx, finished_rx) = oneshot::channel::<()>();
    // Installed before `Up` is reported, removed before `Down` is: `is_up` agrees with the
    // last event seen.
    *shared.current() = Some(Current {
        id,
        out: out_tx,
        close: close_tx,
        finished: finished_rx,
    });
    if shared
        .events
        .send(LinkEvent::Up { peer, tls })
        .await
        .is_err()
    {
        shared.current().take(); // nobody listens any more
        return;
    }
    drop(guard);
    bump(&shared.counters.connections, 1);
    tracing::info!(peer = %peer, tls, "failover: connection up");

    let reason = drive(shared, stream, out_rx, close_rx).await;

    {
        let mut current = shared.current();
        if current.as_ref().is_some_and(|c| c.id == id) {
            *current = None;
        }
    }
    tracing::info!(peer = %peer, reason = %reason, "failover: connection down");
    let _ = shared.events.send(LinkEvent::Down { reason }).await;
    drop(finished_tx);
}

/// Run one connection: read messages into events, write queued messages, until the peer
/// closes, an error, or a close request. Returns the reason it ended.
async fn drive<S>(
    shared: &Shared,
    stream: S,
    out_rx: mpsc::Receiver<Vec<u8>>,
    close_rx: oneshot::Receiver<String>,
) -> String
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (rd, wr) = tokio::io::split(stream);
    let reader = read_loop(shared, rd);
    // Queued messages are coalesced into one write (flushed whenever the queue runs empty):
    // one system call for a burst of binding updates instead of one each.
    let wr = tokio::io::BufWriter::with_capacity(64 * 1024, wr);
    let writer = write_loop(shared, wr, out_rx);
    tokio::pin!(reader, writer, close_rx);
    tokio::select! {
        biased;
        reason = &mut close_rx => {
            let reason = reason.unwrap_or_else(|_| "link closed".to_owned());
            // The sender of our queue is gone with the close request: the writer ends once
            // the queue is written, then closes (TLS close_notify, TCP FIN).
            if tokio::time::timeout(FLUSH_TIMEOUT, &mut writer).await.is_err() {
                tracing::warn!(reason = %reason, "failover: queued messages not written in time");
            }
            reason
        }
        reason = &mut reader => reason,
        reason = &mut writer => reason,
    }
}

/// Why a read loop ended: the connection is to be closed.
async fn read_loop<R: AsyncRead + Unpin>(shared: &Shared, mut rd: R) -> String {
    let max = shared.max_message;
    // One fixed buffer per connection: a whole message always fits, since longer ones are
    // refused as soon as their length field arrives.
    let mut buf = vec![0u8; max];
    let (mut start, mut end) = (0usize, 0usize);
    let c = &shared.counters;
    let framing = shared.cfg.framing;
    loop {
        while let Some(len) = framing.frame_len(&buf[start..end]) {
            // draft-12 §6.1: the length covers the whole message, 12-byte header included;
            // RFC 8156 §5.1: `msg-size` follows its 2 bytes and covers at least the header.
            if len < framing.min_len() {
                bump(&c.malformed, 1);
                let reason = format!("malformed message: length {len} shorter than the header");
                tracing::warn!(peer = %shared.cfg.peer, "failover: {reason}, closing the connection");
                return reason;
            }
            if len > max {
                bump(&c.oversized, 1);
                let reason = format!("oversized message: {len} bytes, limit {max}");
                tracing::warn!(peer = %shared.cfg.peer, "failover: {reason}, closing the connection");
                return reason;
            }
            if end - start < len {
                break;
            }
            let msg = &buf[start..start + len];
            if let Err(e) = framing.check(msg) {
                bump(&c.malformed, 1);
                let reason = format!("malformed message: {e}");
                tracing::warn!(peer = %shared.cfg.peer, "failover: {reason}, closing the connection");
                return reason;
            }
            bump(&c.messages_in, 1);
            if shared
                .events
                .send(LinkEvent::Message(msg.to_vec()))
                .await
                .is_err()
            {
                return "event receiver closed".to_owned();
            }
            start += len;
        }
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        // `end < max`: what is left is a partial message shorter than its length <= max.
        match rd.read(&mut buf[end..]).await {
            Ok(0) if end == 0 => return "peer closed the connection".to_owned(),
            Ok(0) => {
                return format!("peer closed the connection inside a message ({end} bytes)");
            }
            Ok(n) => {
                bump(&c.bytes_in, n as u64);
                end += n;
            }
            Err(e) => return format!("read: {e}"),
        }
    }
}

/// Why a write loop ended. It ends normally when the queue's sender is dropped (a close
/// request), after writing everything queued and closing its half.
async fn write_loop<W: AsyncWrite + Unpin>(
    shared: &Shared,
    mut wr: W,
    mut out_rx: mpsc::Receiver<Vec<u8>>,
) -> String {
    let c = &shared.counters;
    while let Some(msg) = out_rx.recv().await {
        if let Err(e) = wr.write_all(&msg).await {
            return format!("write: {e}");
        }
        bump(&c.messages_out, 1);
        bump(&c.bytes_out, msg.len() as u64);
        if out_rx.is_empty()
            && let Err(e) = wr.flush().await
        {
            return format!("write: {e}");
        }
    }
    if let Err(e) = wr.shutdown().await {
        return format!("close: {e}");
    }
    "closed locally".to_owned()
}
