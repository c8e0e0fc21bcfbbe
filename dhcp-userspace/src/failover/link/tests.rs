//! Tests of the failover link on 127.0.0.1: two links, or one link and a raw TCP peer.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use rcgen::{CertifiedIssuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc::Receiver;

use super::*;

#[path = "../../../tests/common/tls.rs"]
mod pki;

use pki::ca;

/// Longest wait for an expected event.
const WAIT: Duration = Duration::from_secs(10);

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A CONTACT message (type 11, draft-12 §7.11) with `xid` and a message option (code 16)
/// holding `text`.
fn message(xid: u32, text: &[u8]) -> Vec<u8> {
    let len = field::HEADER_LEN + 4 + text.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    m.push(11);
    m.push(12);
    m.extend_from_slice(&1_763_700_000u32.to_be_bytes());
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(&16u16.to_be_bytes());
    m.extend_from_slice(&u16::try_from(text.len()).unwrap().to_be_bytes());
    m.extend_from_slice(text);
    m
}

async fn next(rx: &mut Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("the event channel is open")
}

async fn expect_up(rx: &mut Receiver<LinkEvent>) -> (SocketAddr, bool) {
    match next(rx).await {
        LinkEvent::Up { peer, tls } => (peer, tls),
        other => panic!("expected Up, got {other:?}"),
    }
}

async fn expect_down(rx: &mut Receiver<LinkEvent>) -> String {
    match next(rx).await {
        LinkEvent::Down { reason } => reason,
        other => panic!("expected Down, got {other:?}"),
    }
}

async fn expect_message(rx: &mut Receiver<LinkEvent>) -> Vec<u8> {
    match next(rx).await {
        LinkEvent::Message(m) => m,
        other => panic!("expected Message, got {other:?}"),
    }
}

async fn expect_quiet(rx: &mut Receiver<LinkEvent>, d: Duration) {
    if let Ok(e) = tokio::time::timeout(d, rx.recv()).await {
        panic!("expected no event, got {e:?}");
    }
}

/// Read until the link closes the connection; fails if it stays open.
async fn expect_closed(s: &mut TcpStream) {
    let mut sink = Vec::new();
    // A reset is a close too.
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut sink))
        .await
        .expect("connection closed by the link");
}

/// Wait until `cond` holds on the link's counters.
async fn wait_stats(link: &Link, cond: impl Fn(&LinkStats) -> bool) -> LinkStats {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = link.stats();
        if cond(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats never matched: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A secondary listening on 127.0.0.1 (any port), peer 127.0.0.1.
async fn secondary(max_message: usize, tls: Option<TlsConfig>) -> (Link, Receiver<LinkEvent>) {
    let mut cfg = LinkConfig::new(lo(0), lo(crate::wire::failover::PORT), false);
    cfg.max_message = max_message;
    cfg.tls = tls;
    Link::start(cfg).await.expect("secondary starts")
}

/// A primary connecting to `peer`.
async fn primary(peer: SocketAddr, tls: Option<TlsConfig>) -> (Link, Receiver<LinkEvent>) {
    let mut cfg = LinkConfig::new(lo(0), peer, true);
    cfg.tls = tls;
    Link::start(cfg).await.expect("primary starts")
}

/// A primary and a secondary, both up.
async fn pair(
    sec_tls: Option<TlsConfig>,
    pri_tls: Option<TlsConfig>,
) -> (Link, Receiver<LinkEvent>, Link, Receiver<LinkEvent>) {
    let tls = sec_tls.is_some();
    let (sec, mut srx) = secondary(DEFAULT_MAX_MESSAGE, sec_tls).await;
    let (pri, mut prx) = primary(sec.local_addr(), pri_tls).await;
    assert_eq!(expect_up(&mut prx).await, (sec.local_addr(), tls));
    let (from, t) = expect_up(&mut srx).await;
    assert_eq!((from.ip(), t), (lo(0).ip(), tls));
    assert!(pri.is_up() && sec.is_up());
    (pri, prx, sec, srx)
}

async fn exchange(
    pri: &Link,
    prx: &mut Receiver<LinkEvent>,
    sec: &Link,
    srx: &mut Receiver<LinkEvent>,
) {
    let to_sec: Vec<_> = (0..20).map(|i| message(i, b"from primary")).collect();
    let to_pri: Vec<_> = (100..120)
        .map(|i| message(i, b"from secondary, longer"))
        .collect();
    for m in &to_sec {
        pri.send(m.clone()).unwrap();
    }
    for m in &to_pri {
        sec.send(m.clone()).unwrap();
    }
    for m in &to_sec {
        assert_eq!(&expect_message(srx).await, m);
    }
    for m in &to_pri {
        assert_eq!(&expect_message(prx).await, m);
    }
}

#[tokio::test]
async fn two_links_exchange_messages_both_ways() {
    let (pri, mut prx, sec, mut srx) = pair(None, None).await;
    let (p0, s0) = (pri.stats(), sec.stats());
    exchange(&pri, &mut prx, &sec, &mut srx).await;
    let (p, s) = (pri.stats(), sec.stats());
    assert_eq!(
        (
            p.messages_out - p0.messages_out,
            p.messages_in - p0.messages_in
        ),
        (20, 20)
    );
    assert_eq!(
        (
            s.messages_out - s0.messages_out,
            s.messages_in - s0.messages_in
        ),
        (20, 20)
    );
    let bytes_to_sec = 20 * message(0, b"from primary").len() as u64;
    assert_eq!(p.bytes_out - p0.bytes_out, bytes_to_sec);
    assert_eq!(s.bytes_in - s0.bytes_in, bytes_to_sec);
    assert_eq!((p.connections, s.connections, p.reconnects), (1, 1, 0));

    // A polite close: the secondary sees the primary go away.
    pri.shutdown().await;
    assert_eq!(expect_down(&mut prx).await, "shutdown");
    assert!(expect_down(&mut srx).await.contains("peer closed"));
    assert!(!sec.is_up());
    assert!(matches!(
        sec.send(message(1, b"x")),
        Err(LinkError::NotConnected)
    ));
}

#[tokio::test]
async fn send_checks_the_message_and_the_connection() {
    let (sec, _srx) = secondary(DEFAULT_MAX_MESSAGE, None).await;
    let m = message(7, b"hello");
    assert!(matches!(sec.send(m.clone()), Err(LinkError::NotConnected)));
    let mut longer = m.clone();
    longer.push(0);
    assert!(matches!(
        sec.send(longer),
        Err(LinkError::LengthMismatch { field, len }) if field == m.len() && len == m.len() + 1
    ));
    assert!(matches!(
        sec.send(vec![0]),
        Err(LinkError::InvalidMessage(_))
    ));
    let mut bad_offset = m;
    bad_offset[field::PAYLOAD_OFFSET] = 3;
    assert!(matches!(
        sec.send(bad_offset),
        Err(LinkError::InvalidMessage(WireError::BadPayloadOffset(3)))
    ));
}

#[tokio::test]
async fn listener_address_in_use_is_an_error() {
    let (sec, _srx) = secondary(DEFAULT_MAX_MESSAGE, None).await;
    let err = Link::start(LinkConfig::new(sec.local_addr(), lo(647), false))
        .await
        .expect_err("the port is taken");
    assert!(matches!(err, LinkError::Bind { addr, .. } if addr == sec.local_addr()));
}

#[tokio::test]
async fn messages_split_across_single_byte_writes() {
    let (sec, mut srx) = secondary(DEFAULT_MAX_MESSAGE, None).await;
    let mut raw = TcpStream::connect(sec.local_addr()).await.unwrap();
    raw.set_nodelay(true).unwrap();
    expect_up(&mut srx).await;
    let (m1, m2) = (message(1, b"first"), message(2, b"second message"));
    let stream: Vec<u8> = m1.iter().chain(&m2).copied().collect();
    for b in stream {
        raw.write_all(&[b]).await.unwrap();
        raw.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(expect_message(&mut srx).await, m1);
    assert_eq!(expect_message(&mut srx).await, m2);
    // Several messages in one write.
    let (m3, m4) = (message(3, b""), message(4, b"4"));
    raw.write_all(&[m3.clone(), m4.clone()].concat())
        .await
        .unwrap();
    assert_eq!(expect_message(&mut srx).await, m3);
    assert_eq!(expect_message(&mut srx).await, m4);
    assert_eq!(sec.stats().messages_in, 4);
}

#[tokio::test]
async fn oversized_message_resets_the_connection() {
    let (sec, mut srx) = secondary(64, None).await;
    let mut raw = TcpStream::connect(sec.local_addr()).await.unwrap();
    expect_up(&mut srx).await;
    let fits = message(1, &[b'a'; 64 - 16]);
    assert_eq!(fits.len(), 64);
    raw.write_all(&fits).await.unwrap();
    assert_eq!(expect_message(&mut srx).await, fits);
    // Only the length field of the next one: the link must not wait for the rest.
    raw.write_all(&65u16.to_be_bytes()).await.unwrap();
    let reason = expect_down(&mut srx).await;
    assert!(reason.contains("oversized"), "{reason}");
    expect_closed(&mut raw).await;
    let s = sec.stats();
    assert_eq!((s.oversized, s.malformed, s.messages_in), (1, 0, 1));
    assert!(!sec.is_up());
}

#[tokio::test]
async fn garbage_framing_resets_the_connection() {
    let (sec, mut srx) = secondary(DEFAULT_MAX_MESSAGE, None).await;
    // A length shorter than the 12-byte header.
    let mut raw = TcpStream::connect(sec.local_addr()).await.unwrap();
    expect_up(&mut srx).await;
    raw.write_all(&[0, 3, 11]).await.unwrap();
    let reason = expect_down(&mut srx).await;
    assert!(reason.contains("malformed"), "{reason}");
    expect_closed(&mut raw).await;

    // A payload offset inside the header (draft-12 §6.1).
    let mut raw = TcpStream::connect(sec.local_addr()).await.unwrap();
    expect_up(&mut srx).await;
    let mut m = message(9, b"x");
    m[field::PAYLOAD_OFFSET] = 4;
    raw.write_all(&m).await.unwrap();
    let reason = expect_down(&mut srx).await;
    assert!(reason.contains("malformed"), "{reason}");
    expect_closed(&mut raw).await;
    let s = sec.stats();
    assert_eq!((s.malformed, s.oversized, s.messages_in), (2, 0, 0));
}

#[tokio::test]
async fn connection_from_another_address_is_refused() {
    let (sec, mut srx) = secondary(DEFAULT_MAX_MESSAGE, None).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
    let mut raw = socket.connect(sec.local_addr()).await.unwrap();
    let _ = raw.write_all(&message(1, b"let me in")).await;
    expect_closed(&mut raw).await;
    wait_stats(&sec, |s| s.refused_connections == 1).await;
    expect_quiet(&mut srx, Duration::from_millis(300)).await;
    let s = sec.stats();
    assert_eq!((s.connections, s.messages_in), (0, 0));
}

#[tokio::test]
async fn primary_closes_a_stimulus_connection_from_its_peer() {
    // The primary's peer: a port with nothing listening.
    let closed = std::net::TcpListener::bind(lo(0)).unwrap();
    let nobody = closed.local_addr().unwrap();
    drop(closed);
    let (pri, mut prx) = primary(nobody, None).await;
    let mut raw = TcpStream::connect(pri.local_addr()).await.unwrap();
    expect_closed(&mut raw).await;
    wait_stats(&pri, |s| s.stimulus_connections == 1).await;
    expect_quiet(&mut prx, Duration::from_millis(300)).await;
    assert!(!pri.is_up());
}

#[tokio::test]
async fn newer_connection_from_the_peer_replaces_the_older() {
    let (sec, mut srx) = secondary(DEFAULT_MAX_MESSAGE, None).await;
    let mut old = TcpStream::connect(sec.local_addr()).await.unwrap();
    let (first, _) = expect_up(&mut srx).await;
    let mut new = TcpStream::connect(sec.local_addr()).await.unwrap();
    let reason = expect_down(&mut srx).await;
    assert!(reason.contains("replaced"), "{reason}");
    let (second, _) = expect_up(&mut srx).await;
    assert_eq!(second, new.local_addr().unwrap());
    assert_ne!(first, second);
    expect_closed(&mut old).await;
    let m = message(5, b"still here");
    new.write_all(&m).await.unwrap();
    assert_eq!(expect_message(&mut srx).await, m);
    sec.send(m.clone()).unwrap();
    let mut got = vec![0u8; m.len()];
    tokio::time::timeout(WAIT, new.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, m);
}

#[tokio::test]
async fn primary_reconnects_after_the_peer_restarts() {
    let (pri, mut prx, sec, mut srx) = pair(None, None).await;
    let addr = sec.local_addr();
    sec.shutdown().await;
    assert_eq!(expect_down(&mut srx).await, "shutdown");
    assert!(expect_down(&mut prx).await.contains("peer closed"));
    assert!(!pri.is_up());

    let mut cfg = LinkConfig::new(addr, lo(647), false);
    cfg.max_message = DEFAULT_MAX_MESSAGE;
    let (sec, mut srx) = Link::start(cfg)
        .await
        .expect("restarted on the same address");
    assert_eq!(expect_up(&mut prx).await, (addr, false));
    expect_up(&mut srx).await;
    exchange(&pri, &mut prx, &sec, &mut srx).await;
    let s = pri.stats();
    assert_eq!((s.connections, s.reconnects), (2, 1));
}

#[tokio::test]
async fn drop_connection_flushes_then_reconnects() {
    let (pri, mut prx, sec, mut srx) = pair(None, None).await;
    let last = message(77, b"DISCONNECT would go here");
    pri.send(last.clone()).unwrap();
    pri.drop_connection("no traffic within sufficient time");
    assert!(!pri.is_up());
    assert_eq!(
        expect_down(&mut prx).await,
        "no traffic within sufficient time"
    );
    assert_eq!(expect_message(&mut srx).await, last);
    assert!(expect_down(&mut srx).await.contains("peer closed"));
    // The primary comes back after BACKOFF_MIN.
    expect_up(&mut prx).await;
    expect_up(&mut srx).await;
    exchange(&pri, &mut prx, &sec, &mut srx).await;
}

/// Write a server certificate for `sans` signed by `issuer`, its key and `trust` (the CA
/// that must sign the peer's) under `dir`, named `tag` ([`pki::write_cert`]).
fn tls_files(
    dir: &Path,
    tag: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    sans: &[&str],
    trust: &CertifiedIssuer<'static, KeyPair>,
    peer_name: Option<&str>,
) -> TlsConfig {
    let files = pki::write_cert(dir, tag, tag, sans, issuer, trust);
    TlsConfig {
        cert: files.cert,
        key: files.key,
        ca: files.ca,
        peer_name: peer_name.map(str::to_owned),
    }
}

#[tokio::test]
async fn tls_mutual_authentication_with_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("failover CA");
    let pri_tls = tls_files(
        dir.path(),
        "a",
        &ca,
        &["a.test", "127.0.0.1"],
        &ca,
        Some("b.test"),
    );
    let sec_tls = tls_files(dir.path(), "b", &ca, &["b.test"], &ca, Some("a.test"));
    let (pri, mut prx, sec, mut srx) = pair(Some(sec_tls), Some(pri_tls)).await;
    exchange(&pri, &mut prx, &sec, &mut srx).await;
    assert_eq!((pri.stats().tls_failures, sec.stats().tls_failures), (0, 0));
    // Without a peer name, the certificates must carry the peer's IP address.
    let ip_pri = tls_files(dir.path(), "c", &ca, &["127.0.0.1"], &ca, None);
    let ip_sec = tls_files(dir.path(), "d", &ca, &["127.0.0.1"], &ca, None);
    let (pri, mut prx, sec, mut srx) = pair(Some(ip_sec), Some(ip_pri)).await;
    exchange(&pri, &mut prx, &sec, &mut srx).await;
}

#[tokio::test]
async fn tls_refuses_a_client_certificate_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (ca("our CA"), ca("another CA"));
    let sec_tls = tls_files(dir.path(), "sec", &ours, &["127.0.0.1"], &ours, None);
    // The client trusts our CA but presents a certificate from another one.
    let pri_tls = tls_files(dir.path(), "pri", &theirs, &["127.0.0.1"], &ours, None);
    let (sec, mut srx) = secondary(DEFAULT_MAX_MESSAGE, Some(sec_tls)).await;
    let (pri, _prx) = primary(sec.local_addr(), Some(pri_tls)).await;
    let reason = expect_down(&mut srx).await;
    assert!(reason.contains("TLS handshake"), "{reason}");
    wait_stats(&sec, |s| s.tls_failures >= 1).await;
    assert!(!sec.is_up());
    assert_eq!(sec.stats().connections, 0);
    drop(pri);
}

#[tokio::test]
async fn tls_client_refuses_a_server_certificate_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (ca("our CA"), ca("another CA"));
    let sec_tls = tls_files(dir.path(), "sec", &theirs, &["127.0.0.1"], &ours, None);
    let pri_tls = tls_files(dir.path(), "pri", &ours, &["127.0.0.1"], &ours, None);
    let (sec, _srx) = secondary(DEFAULT_MAX_MESSAGE, Some(sec_tls)).await;
    let (pri, mut prx) = primary(sec.local_addr(), Some(pri_tls)).await;
    let reason = expect_down(&mut prx).await;
    assert!(reason.contains("TLS handshake"), "{reason}");
    assert!(pri.stats().tls_failures >= 1);
    assert_eq!((pri.stats().connections, sec.stats().connections), (0, 0));
}

#[tokio::test]
async fn tls_refuses_a_client_certificate_for_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("failover CA");
    let sec_tls = tls_files(
        dir.path(),
        "sec",
        &ca,
        &["127.0.0.1"],
        &ca,
        Some("expected.test"),
    );
    let pri_tls = tls_files(dir.path(), "pri", &ca, &["intruder.test"], &ca, None);
    let (sec, mut srx) = secondary(DEFAULT_MAX_MESSAGE, Some(sec_tls)).await;
    let (_pri, _prx) = primary(sec.local_addr(), Some(pri_tls)).await;
    let reason = expect_down(&mut srx).await;
    assert!(reason.contains("client certificate"), "{reason}");
    assert_eq!(sec.stats().connections, 0);
}

#[tokio::test]
async fn plain_client_to_a_tls_listener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("failover CA");
    let sec_tls = tls_files(dir.path(), "sec", &ca, &["127.0.0.1"], &ca, None);
    let (sec, mut srx) = secondary(DEFAULT_MAX_MESSAGE, Some(sec_tls)).await;
    let mut raw = TcpStream::connect(sec.local_addr()).await.unwrap();
    raw.write_all(&message(1, b"CONNECT in the clear"))
        .await
        .unwrap();
    expect_closed(&mut raw).await;
    let reason = expect_down(&mut srx).await;
    assert!(reason.contains("TLS handshake"), "{reason}");
    let s = sec.stats();
    assert_eq!((s.tls_failures, s.connections, s.messages_in), (1, 0, 0));
}

#[tokio::test]
async fn missing_tls_file_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LinkConfig::new(lo(0), lo(647), false);
    cfg.tls = Some(TlsConfig {
        cert: dir.path().join("none.crt"),
        key: dir.path().join("none.key"),
        ca: dir.path().join("none-ca.crt"),
        peer_name: None,
    });
    let err = Link::start(cfg).await.expect_err("no files");
    assert!(matches!(err, LinkError::TlsFile { .. }), "{err:?}");
}

/// An RFC 8156 CONTACT (type 35, §5.3.12): 2-byte `msg-size`, then the 8-byte header.
fn contact6(xid: u32) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let n = crate::wire::failover6::MessageWriter::header_only(
        &mut buf,
        &crate::wire::failover6::Header {
            msg_type: crate::wire::failover6::MessageType::Contact,
            xid,
            sent_time: 1,
        },
    )
    .unwrap();
    buf[..n].to_vec()
}

#[tokio::test]
async fn rfc8156_framing_moves_prefixed_messages_and_refuses_short_ones() {
    let mut scfg = LinkConfig::new(lo(0), lo(crate::wire::failover6::PORT), false);
    scfg.framing = Framing::Rfc8156;
    let (sec, mut srx) = Link::start(scfg).await.unwrap();
    let mut pcfg = LinkConfig::new(lo(0), sec.local_addr(), true);
    pcfg.framing = Framing::Rfc8156;
    let (pri, mut prx) = Link::start(pcfg).await.unwrap();
    expect_up(&mut prx).await;
    expect_up(&mut srx).await;
    let m = contact6(0x00ab_cdef);
    assert_eq!(m.len(), 10);
    pri.send(m.clone()).unwrap();
    assert_eq!(expect_message(&mut srx).await, m);
    // A draft-12 message is not an RFC 8156 frame (its length field differs).
    assert!(matches!(
        pri.send(message(1, b"x")),
        Err(LinkError::LengthMismatch { .. })
    ));
    assert!(matches!(
        pri.send(vec![0, 3, 35, 0, 0]),
        Err(LinkError::InvalidMessage6(_))
    ));
    // A raw peer whose msg-size cannot hold the header is disconnected.
    pri.shutdown().await;
    let mut raw = TcpStream::connect(sec.local_addr()).await.unwrap();
    raw.write_all(&[0, 3, 35, 0, 0]).await.unwrap();
    expect_closed(&mut raw).await;
    wait_stats(&sec, |s| s.malformed >= 1).await;
    sec.shutdown().await;
}
