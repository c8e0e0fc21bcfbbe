//! The HTTP side of the control API: one thread takes requests from the HTTP server
//! (`tiny_http`), checks the bearer token, routes them and answers JSON (or Prometheus text).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/leases?addr=A` \| `mac=M` \| `client-id=HEX` \| `duid=HEX` \| `prefix=P/L` | lookup |
//! | `GET /v1/leases?cursor=C&limit=N` | paged listing, DHCPv4 then DHCPv6 |
//! | `GET /v1/stats` | per subnet and pool: total, active, free, declined… |
//! | `GET /v1/failover` | failover relationships: states, unacked updates, last contact |
//! | `POST /v1/failover/partner-down` | declare the partner down (PARTNER-DOWN); `{"name": …}` or `?name=` picks the relationship |
//! | `POST /v1/leases/{addr}/expire` | end a binding now, free the address |
//! | `DELETE /v1/leases/{addr}` | remove the lease records of an address, free it |
//! | `POST /v1/reload` | read the configuration file again and apply it (422 with `errors` when refused) |
//! | `GET /metrics` | Prometheus text format 0.0.4 |
//!
//! Errors are `{"error": "..."}` with a matching status code.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use super::{AnyLease, CtlError, Handle, LeaseQuery, PageKey, PoolStat};
use crate::config::Control;

/// Default number of leases per page.
pub const DEFAULT_PAGE: usize = 100;

/// Errors starting the control API.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The listen address is not loopback and no token is configured.
    #[error(
        "control API on {0}: not a loopback address and no token; set control.token or control.token-file"
    )]
    Unprotected(SocketAddr),
    /// The token file cannot be read.
    #[error("control token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds no token.
    #[error("control token file {0} is empty")]
    EmptyToken(PathBuf),
    /// The HTTP server could not listen.
    #[error("control API cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The thread could not be spawned.
    #[error("spawning the control thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// The control API's listening socket and token, before its thread runs.
pub struct Bound {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    token: Option<String>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("addr", &self.addr)
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// Read the token of `cfg`: inline, or the trimmed contents of its token file.
pub fn load_token(cfg: &Control) -> Result<Option<String>, ControlError> {
    if let Some(t) = &cfg.token {
        return Ok(Some(t.clone()));
    }
    let Some(path) = &cfg.token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| ControlError::TokenFile {
        path: path.clone(),
        source,
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(ControlError::EmptyToken(path.clone()));
    }
    Ok(Some(t.to_owned()))
}

/// Check `cfg`, read its token and open the listening socket (port 0: the kernel picks one,
/// see [`Bound::local_addr`]). A non-loopback address without a token is refused.
pub fn bind(cfg: &Control) -> Result<Bound, ControlError> {
    let token = load_token(cfg)?;
    if token.is_none() && !cfg.listen.ip().is_loopback() {
        return Err(ControlError::Unprotected(cfg.listen));
    }
    let http = tiny_http::Server::http(cfg.listen).map_err(|e| ControlError::Listen {
        addr: cfg.listen,
        reason: e.to_string(),
    })?;
    let addr = http
        .server_addr()
        .to_ip()
        .ok_or_else(|| ControlError::Listen {
            addr: cfg.listen,
            reason: "not an IP listener".into(),
        })?;
    Ok(Bound {
        http: Arc::new(http),
        addr,
        token,
    })
}

impl Bound {
    /// The address the API listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Start the control thread serving requests with `handle`.
    pub fn spawn(self, handle: Handle) -> Result<ControlServer, ControlError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (http, flag, token) = (Arc::clone(&self.http), Arc::clone(&stop), self.token);
        let thread = std::thread::Builder::new()
            .name("tl-control".into())
            .spawn(move || {
                crate::privilege::thread_start();
                serve_loop(&http, &flag, token.as_deref(), &handle);
            })
            .map_err(ControlError::Spawn)?;
        tracing::info!(listen = %self.addr, "control API listening");
        Ok(ControlServer {
            http: self.http,
            addr: self.addr,
            stop,
            thread: Some(thread),
        })
    }
}

/// The running control API; [`ControlServer::stop`] ends it (so does dropping it).
pub struct ControlServer {
    http: Arc<tiny_http::Server>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ControlServer {
    /// The address the API listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and join the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn serve_loop(http: &tiny_http::Server, stop: &AtomicBool, token: Option<&str>, handle: &Handle) {
    while !stop.load(Ordering::Acquire) {
        let mut req = match http.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "control API: receive failed");
                continue;
            }
        };
        let auth = req
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str().to_owned());
        let method = req.method().as_str().to_owned();
        let mut body = String::new();
        // Bodies are small JSON objects; a longer or unreadable one counts as empty.
        if std::io::Read::read_to_string(&mut std::io::Read::take(req.as_reader(), 4096), &mut body)
            .is_err()
        {
            body.clear();
        }
        let reply = respond_with_body(handle, token, &method, req.url(), auth.as_deref(), &body);
        // Always a Content-Length, never chunked: clients (twinlease ctl) read it plainly.
        let mut resp = tiny_http::Response::from_string(reply.body)
            .with_chunked_threshold(usize::MAX)
            .with_status_code(reply.status)
            .with_header(header("Content-Type", reply.content_type));
        if reply.status == 401 {
            resp.add_header(header("WWW-Authenticate", "Bearer"));
        }
        if let Some(allow) = reply.allow {
            resp.add_header(header("Allow", allow));
        }
        if let Err(e) = req.respond(resp) {
            tracing::debug!(error = %e, "control API: answer not delivered");
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| unreachable!("static header {name} is valid"))
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
    /// `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

const JSON: &str = "application/json";
const PROM: &str = "text/plain; version=0.0.4; charset=utf-8";

fn ok(v: &Value) -> Reply {
    Reply {
        status: 200,
        content_type: JSON,
        body: v.to_string(),
        allow: None,
    }
}

fn error(status: u16, msg: impl std::fmt::Display) -> Reply {
    Reply {
        status,
        content_type: JSON,
        body: json!({ "error": msg.to_string() }).to_string(),
        allow: None,
    }
}

fn not_allowed(allow: &'static str) -> Reply {
    Reply {
        allow: Some(allow),
        ..error(405, format!("method not allowed; allowed: {allow}"))
    }
}

/// The relationship a partner-down request names: `{"name": …}` in the body, else
/// `name=…` in the query, else none.
fn partner_down_name(body: &str, query: &str) -> Option<String> {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix("name="))
                .and_then(|v| unescape(v).ok())
        })
}

/// Compare two byte strings in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answer one request: `method`, `url` (path and query as sent), the `Authorization` header.
#[must_use]
pub fn respond(
    handle: &Handle,
    token: Option<&str>,
    method: &str,
    url: &str,
    auth: Option<&str>,
) -> Reply {
    respond_with_body(handle, token, method, url, auth, "")
}

/// [`respond`] with the request's body (`POST /v1/failover/partner-down` takes an optional
/// `{"name": "…"}` naming the relationship).
#[must_use]
pub fn respond_with_body(
    handle: &Handle,
    token: Option<&str>,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: &str,
) -> Reply {
    if let Some(t) = token {
        let given = auth.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
        match given {
            None => return error(401, "missing bearer token (Authorization: Bearer <token>)"),
            Some(g) if !same_secret(g.as_bytes(), t.as_bytes()) => {
                return error(401, "invalid bearer token");
            }
            Some(_) => {}
        }
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segs.as_slice() {
        ["metrics"] => match method {
            "GET" => Reply {
                status: 200,
                content_type: PROM,
                body: super::metrics::render(handle),
                allow: None,
            },
            _ => not_allowed("GET"),
        },
        ["v1", "leases"] => match method {
            "GET" => leases(handle, query),
            _ => not_allowed("GET"),
        },
        ["v1", "leases", addr] => match method {
            "DELETE" => change(handle, addr, true),
            _ => not_allowed("DELETE"),
        },
        ["v1", "leases", addr, "expire"] => match method {
            "POST" => change(handle, addr, false),
            _ => not_allowed("POST"),
        },
        ["v1", "stats"] => match method {
            "GET" => stats(handle),
            _ => not_allowed("GET"),
        },
        ["v1", "failover"] => match method {
            "GET" => ok(&json!({ "relationships": handle.failover_status() })),
            _ => not_allowed("GET"),
        },
        ["v1", "failover", "partner-down"] => match method {
            "POST" => match handle.partner_down(partner_down_name(body, query).as_deref()) {
                Ok(state) => ok(&json!({ "state": state })),
                Err(e) => error(409, e),
            },
            _ => not_allowed("POST"),
        },
        ["v1", "reload"] => match method {
            "POST" => reload(handle),
            _ => not_allowed("POST"),
        },
        _ => error(404, format!("no such endpoint: {path}")),
    }
}

/// `POST /v1/reload`: the report, or the refusal with its `file: field: reason` lines.
fn reload(handle: &Handle) -> Reply {
    match handle.reload() {
        Ok(r) => ok(&reload_json(&r)),
        Err(e) => Reply {
            status: e.status(),
            content_type: JSON,
            body: json!({ "error": e.to_string(), "errors": e.lines() }).to_string(),
            allow: None,
        },
    }
}

/// The JSON answer of a reload.
#[must_use]
pub fn reload_json(r: &crate::dispatch::reload::ReloadReport) -> Value {
    json!({
        "reloaded": true,
        "pause_us": u64::try_from(r.pause.as_micros()).unwrap_or(u64::MAX),
        "subnets4": r.subnets4,
        "pools4": r.pools4,
        "subnets6": r.subnets6,
        "pools6": r.pools6,
        "orphaned_leases_v4": r.orphaned_v4,
        "orphaned_leases_v6": r.orphaned_v6,
        "reserved_in_use": r.reserved_in_use,
        "offers_dropped": r.offers_dropped,
        "v6_moved": r.v6_moved,
    })
}

/// Decode `%XX` escapes and `+` of a query component.
fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad escape in {s:?}"))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

/// Parse `aa:bb:…`, `aa-bb-…` or `aabb…` hex.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s.chars().filter(|c| !matches!(c, ':' | '-')).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(format!("{s:?} is not a hex string"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{s:?} is not a hex string"))
        })
        .collect()
}

/// Parse a query string into a lookup or a page request.
fn parse_leases_query(query: &str) -> Result<(Option<LeaseQuery>, Option<PageKey>, usize), String> {
    let mut lookup = None;
    let mut cursor = None;
    let mut limit = DEFAULT_PAGE;
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let v = unescape(v)?;
        let q = match k {
            "addr" => Some(LeaseQuery::Addr(
                v.parse::<IpAddr>()
                    .map_err(|_| format!("addr: {v:?} is not an IP address"))?,
            )),
            "prefix" => {
                let bad = || format!("prefix: {v:?} is not an IPv6 prefix (ADDR/LEN)");
                let (a, l) = v.split_once('/').ok_or_else(bad)?;
                let a = a.parse::<Ipv6Addr>().map_err(|_| bad())?;
                let l = l.parse::<u8>().ok().filter(|l| *l <= 128).ok_or_else(bad)?;
                Some(LeaseQuery::Prefix(a, l))
            }
            "mac" => {
                let b = parse_hex(&v).map_err(|e| format!("mac: {e}"))?;
                let m: [u8; 6] = b
                    .try_into()
                    .map_err(|_| format!("mac: {v:?} is not 6 bytes"))?;
                Some(LeaseQuery::Mac(m))
            }
            "client-id" => Some(LeaseQuery::ClientId(
                parse_hex(&v).map_err(|e| format!("client-id: {e}"))?,
            )),
            "duid" => Some(LeaseQuery::Duid(
                parse_hex(&v).map_err(|e| format!("duid: {e}"))?,
            )),
            "cursor" => {
                if !v.is_empty() && v != "0" {
                    cursor = Some(v.parse::<PageKey>().map_err(|e| format!("cursor: {e}"))?);
                }
                None
            }
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=super::MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        format!("limit: {v:?} is not a number from 1 to {}", super::MAX_PAGE)
                    })?;
                None
            }
            other => return Err(format!("unknown query parameter {other:?}")),
        };
        if let Some(q) = q {
            if lookup.is_some() {
                return Err("give one of addr, prefix, mac, client-id, duid".into());
            }
            lookup = Some(q);
        }
    }
    if lookup.is_some() && cursor.is_some() {
        return Err("cursor applies to the listing, not to a lookup".into());
    }
    Ok((lookup, cursor, limit))
}

/// JSON of a lease of either family (with a `family` field).
#[must_use]
pub fn lease_value(l: &AnyLease) -> Value {
    let (mut v, family) = match l {
        AnyLease::V4(l) => (crate::cli::lease_json(l), "v4"),
        AnyLease::V6(l) => (crate::cli::lease6_json(l), "v6"),
    };
    if let Value::Object(m) = &mut v {
        m.insert("family".into(), family.into());
    }
    v
}

fn ctl_error(e: &CtlError) -> Reply {
    error(e.status(), e)
}

fn leases(handle: &Handle, query: &str) -> Reply {
    let (lookup, cursor, limit) = match parse_leases_query(query) {
        Ok(q) => q,
        Err(e) => return error(400, e),
    };
    if let Some(q) = lookup {
        return match handle.find(&q) {
            Ok(l) => ok(&json!({ "leases": l.iter().map(lease_value).collect::<Vec<_>>() })),
            Err(e) => ctl_error(&e),
        };
    }
    match handle.page(cursor, limit) {
        Ok(p) => ok(&json!({
            "leases": p.leases.iter().map(lease_value).collect::<Vec<_>>(),
            "next_cursor": p.next.map(|k| k.to_string()),
        })),
        Err(e) => ctl_error(&e),
    }
}

fn change(handle: &Handle, addr: &str, delete: bool) -> Reply {
    let Ok(Ok(addr)) = unescape(addr).map(|a| a.parse::<IpAddr>()) else {
        return error(400, format!("{addr:?} is not an IP address"));
    };
    let r = if delete {
        handle.delete(addr)
    } else {
        handle.expire(addr)
    };
    match r {
        Ok(l) => {
            let key = if delete { "deleted" } else { "expired" };
            let mut m = serde_json::Map::new();
            m.insert(key.into(), l.iter().map(lease_value).collect());
            ok(&Value::Object(m))
        }
        Err(e) => ctl_error(&e),
    }
}

/// A u128 as a JSON number (a float beyond `u64`).
#[expect(clippy::cast_precision_loss, reason = "beyond u64 only")]
fn big(n: u128) -> Value {
    u64::try_from(n).map_or_else(|_| json!(n as f64), |v| json!(v))
}

fn pool_value(p: &PoolStat) -> Value {
    json!({
        "id": p.pool_id,
        "range": p.range,
        "total": big(p.total),
        "free": big(p.free),
        "backup": big(p.backup),
        "active": p.counts.active,
        "declined": p.counts.declined,
        "expired": p.counts.expired,
        "released": p.counts.released,
        "utilisation": p.utilisation(),
    })
}

/// The `/v1/stats` document from pool statistics: subnets (each with totals and its pools),
/// in configuration order, DHCPv4 first.
#[must_use]
pub fn stats_value(pools: &[PoolStat]) -> Value {
    let mut subnets: Vec<(&'static str, u32, Vec<&PoolStat>)> = Vec::new();
    for p in pools {
        match subnets
            .iter_mut()
            .find(|(f, id, _)| *f == p.family && *id == p.subnet_id)
        {
            Some((_, _, v)) => v.push(p),
            None => subnets.push((p.family, p.subnet_id, vec![p])),
        }
    }
    let subnets: Vec<Value> = subnets
        .iter()
        .map(|(family, id, ps)| {
            let sum = |f: &dyn Fn(&PoolStat) -> u128| ps.iter().map(|p| f(p)).sum::<u128>();
            json!({
                "family": family,
                "id": id,
                "total": big(sum(&|p| p.total)),
                "free": big(sum(&|p| p.free)),
                "active": big(sum(&|p| u128::from(p.counts.active))),
                "declined": big(sum(&|p| u128::from(p.counts.declined))),
                "expired": big(sum(&|p| u128::from(p.counts.expired))),
                "released": big(sum(&|p| u128::from(p.counts.released))),
                "pools": ps.iter().map(|p| pool_value(p)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "subnets": subnets })
}

fn stats(handle: &Handle) -> Reply {
    match handle.pool_stats() {
        Ok(p) => ok(&stats_value(&p)),
        Err(e) => ctl_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_down_names_the_relationship_by_body_or_query() {
        assert_eq!(
            partner_down_name(r#"{"name": "edge-v6"}"#, "name=other"),
            Some("edge-v6".to_owned())
        );
        assert_eq!(
            partner_down_name("", "x=1&name=edge%2Dv6"),
            Some("edge-v6".to_owned())
        );
        assert_eq!(partner_down_name("not json", ""), None);
        assert_eq!(partner_down_name("{}", ""), None);
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            parse_leases_query("addr=10.0.0.1").unwrap().0,
            Some(LeaseQuery::Addr("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_leases_query("mac=02%3A55%3A00%3A00%3A00%3A01")
                .unwrap()
                .0,
            Some(LeaseQuery::Mac([2, 0x55, 0, 0, 0, 1]))
        );
        assert_eq!(
            parse_leases_query("prefix=2001:db8:100::/56").unwrap().0,
            Some(LeaseQuery::Prefix("2001:db8:100::".parse().unwrap(), 56))
        );
        let (l, c, n) = parse_leases_query("cursor=v4-10.0.0.9&limit=5").unwrap();
        assert_eq!((l, c, n), (None, Some("v4-10.0.0.9".parse().unwrap()), 5));
        assert_eq!(
            parse_leases_query("cursor=0").unwrap(),
            (None, None, DEFAULT_PAGE)
        );
        for bad in [
            "addr=x",
            "mac=0102",
            "limit=0",
            "limit=100000",
            "foo=1",
            "addr=10.0.0.1&mac=02:00:00:00:00:01",
            "addr=10.0.0.1&cursor=v4-10.0.0.1",
            "client-id=abc",
            "prefix=2001:db8::/129",
        ] {
            assert!(parse_leases_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_and_secrets() {
        assert_eq!(parse_hex("01:aa-BB02").unwrap(), vec![1, 0xaa, 0xbb, 2]);
        assert!(parse_hex("").is_err());
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn non_loopback_without_token_refused() {
        let cfg = Control {
            listen: "0.0.0.0:0".parse().unwrap(),
            token: None,
            token_file: None,
        };
        assert!(matches!(bind(&cfg), Err(ControlError::Unprotected(_))));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "  \n").unwrap();
        let cfg = Control {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
            token_file: Some(f.clone()),
        };
        assert!(matches!(bind(&cfg), Err(ControlError::EmptyToken(_))));
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(load_token(&cfg).unwrap().as_deref(), Some("s3cret"));
    }
}
