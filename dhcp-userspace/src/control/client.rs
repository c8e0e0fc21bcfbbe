//! `twinlease ctl`: a small HTTP/1.1 client of the control API, printing tables for humans
//! or the API's JSON for scripts (`--json`).

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::Value;

/// Errors talking to the control API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://HOST:PORT`.
    #[error("{0:?} is not a control URL (http://HOST:PORT)")]
    Url(String),
    /// Connecting, sending or receiving failed.
    #[error("{url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The answer is not HTTP, or not JSON where JSON was expected.
    #[error("{0}: malformed answer")]
    Malformed(String),
    /// The server answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// Status code.
        status: u16,
        /// The `error` field of the answer, or its body.
        message: String,
    },
    /// The token file cannot be read.
    #[error("token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A client of one control API.
#[derive(Clone)]
pub struct Client {
    url: String,
    authority: String,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the API at `url` (`http://HOST:PORT`, an optional trailing `/`).
    pub fn new(url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let authority = url
            .strip_prefix("http://")
            .map(|r| r.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| ClientError::Url(url.to_owned()))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            authority: authority.to_owned(),
            token,
            timeout: Duration::from_secs(30),
        })
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            url: self.url.clone(),
            source,
        }
    }

    /// Send `method path_and_query` and return the status and the body.
    pub fn request(&self, method: &str, path: &str) -> Result<(u16, String), ClientError> {
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(|e| self.io(e))?
            .next()
            .ok_or_else(|| ClientError::Url(self.url.clone()))?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| self.io(e))?;
        s.set_read_timeout(Some(self.timeout))
            .and_then(|()| s.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.io(e))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: 0\r\n",
            self.authority
        );
        if let Some(t) = &self.token {
            let _ = write!(req, "Authorization: Bearer {t}\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).map_err(|e| self.io(e))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| self.io(e))?;
        parse_response(&raw).ok_or_else(|| ClientError::Malformed(self.url.clone()))
    }

    /// Send a request and decode its JSON answer; an error status becomes
    /// [`ClientError::Status`] with the answer's `error` message.
    pub fn json(&self, method: &str, path: &str) -> Result<Value, ClientError> {
        let (status, body) = self.request(method, path)?;
        let v: Option<Value> = serde_json::from_str(&body).ok();
        if !(200..300).contains(&status) {
            let message = v
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map_or_else(|| body.trim().to_owned(), str::to_owned);
            return Err(ClientError::Status { status, message });
        }
        v.ok_or_else(|| ClientError::Malformed(self.url.clone()))
    }
}

/// Split a raw HTTP/1.1 response into status and body (`Content-Length` honoured when given).
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse::<u16>()
        .ok()?;
    let mut body = &raw[end + 4..];
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            let n: usize = v.trim().parse().ok()?;
            body = body.get(..n)?;
        }
    }
    Some((status, String::from_utf8_lossy(body).into_owned()))
}

/// Arguments of `twinlease ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The control API.
    #[arg(long, default_value = "http://127.0.0.1:8547")]
    pub url: String,
    /// A file holding the bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `twinlease ctl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// List every lease (DHCPv4, then DHCPv6), page by page.
    Leases {
        /// Leases per request.
        #[arg(long, default_value_t = 500)]
        page: usize,
    },
    /// Look leases up: by address (positional), or by --mac, --client-id, --duid, --prefix.
    Lease {
        /// An IPv4 or IPv6 address.
        addr: Option<String>,
        /// Hardware address (aa:bb:cc:dd:ee:ff).
        #[arg(long, conflicts_with_all = ["addr", "client_id", "duid", "prefix"])]
        mac: Option<String>,
        /// DHCPv4 client identifier, hex.
        #[arg(long, conflicts_with_all = ["addr", "duid", "prefix"])]
        client_id: Option<String>,
        /// DHCPv6 DUID, hex.
        #[arg(long, conflicts_with_all = ["addr", "prefix"])]
        duid: Option<String>,
        /// Delegated prefix ADDR/LEN.
        #[arg(long, conflicts_with = "addr")]
        prefix: Option<String>,
    },
    /// Per subnet and pool: total, active, free, declined, utilisation.
    Stats,
    /// Failover relationships: state, partner state, unacknowledged updates, last contact.
    Failover,
    /// Declare the failover partner down (enter PARTNER-DOWN): only when it really is down
    /// (draft-ietf-dhc-failover-12, RFC 8156); after the MCLT this server serves all
    /// addresses.
    PartnerDown {
        /// The relationship (needed when the server has a `[failover]` and a `[failover6]`).
        #[arg(long)]
        name: Option<String>,
    },
    /// Read the server's configuration file again and apply it without a restart
    /// (subnets, pools, options, reservations); a refused configuration is listed.
    Reload,
    /// End the binding of an address now and return it to the free pool.
    Expire {
        /// The address.
        addr: String,
    },
    /// Delete the lease records of an address and return it to the free pool.
    Delete {
        /// The address.
        addr: String,
    },
}

/// Percent-encode a query value (unreserved characters kept).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Run `twinlease ctl`.
#[must_use]
pub fn main(args: &CtlArgs) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("twinlease ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &CtlArgs) -> Result<ExitCode, ClientError> {
    let token = match &args.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|source| ClientError::TokenFile {
                    path: p.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let c = Client::new(&args.url, token)?;
    let out: String;
    match &args.command {
        CtlCommand::Leases { page } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/v1/leases?limit={}", (*page).clamp(1, super::MAX_PAGE));
                if let Some(cur) = &cursor {
                    let _ = write!(path, "&cursor={}", enc(cur));
                }
                let v = c.json("GET", &path)?;
                all.extend(
                    v.get("leases")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
                match v.get("next_cursor").and_then(Value::as_str) {
                    Some(n) => cursor = Some(n.to_owned()),
                    None => break,
                }
            }
            if args.json {
                out = serde_json::json!({ "leases": all }).to_string();
            } else {
                out = lease_table(&all);
            }
        }
        CtlCommand::Lease {
            addr,
            mac,
            client_id,
            duid,
            prefix,
        } => {
            let q = [
                ("addr", addr),
                ("mac", mac),
                ("client-id", client_id),
                ("duid", duid),
                ("prefix", prefix),
            ]
            .into_iter()
            .find_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
            .ok_or_else(|| ClientError::Status {
                status: 400,
                message: "give an address, or --mac, --client-id, --duid or --prefix".into(),
            })?;
            let v = c.json("GET", &format!("/v1/leases?{q}"))?;
            let leases = v
                .get("leases")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if args.json {
                out = v.to_string();
            } else if leases.is_empty() {
                eprintln!("no lease found");
                return Ok(ExitCode::from(1));
            } else {
                out = lease_table(&leases);
            }
        }
        CtlCommand::Stats => {
            let v = c.json("GET", "/v1/stats")?;
            out = if args.json {
                v.to_string()
            } else {
                stats_table(&v)
            };
        }
        CtlCommand::Failover => {
            let v = c.json("GET", "/v1/failover")?;
            let rel = v
                .get("relationships")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            out = if args.json {
                v.to_string()
            } else if rel == 0 {
                "no failover relationships (no [failover] table in the configuration)".into()
            } else {
                failover_table(&v)
            };
        }
        CtlCommand::PartnerDown { name } => {
            let path = match name {
                Some(n) => format!("/v1/failover/partner-down?name={}", enc(n)),
                None => "/v1/failover/partner-down".to_owned(),
            };
            let v = c.json("POST", &path)?;
            out = if args.json {
                v.to_string()
            } else {
                format!(
                    "state: {}",
                    v.get("state").and_then(Value::as_str).unwrap_or("?")
                )
            };
        }
        CtlCommand::Reload => {
            let v = c.json("POST", "/v1/reload")?;
            out = if args.json {
                v.to_string()
            } else {
                let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
                format!(
                    "reloaded: {} subnet4 ({} pools), {} subnet6 ({} pools); workers paused {} us; \
                     {} lease(s) of removed pools kept until they expire",
                    n("subnets4"),
                    n("pools4"),
                    n("subnets6"),
                    n("pools6"),
                    n("pause_us"),
                    n("orphaned_leases_v4") + n("orphaned_leases_v6"),
                )
            };
        }
        CtlCommand::Expire { addr } | CtlCommand::Delete { addr } => {
            let (method, path, key) = if matches!(args.command, CtlCommand::Expire { .. }) {
                (
                    "POST",
                    format!("/v1/leases/{}/expire", enc(addr)),
                    "expired",
                )
            } else {
                ("DELETE", format!("/v1/leases/{}", enc(addr)), "deleted")
            };
            let v = c.json(method, &path)?;
            out = if args.json {
                v.to_string()
            } else {
                let l = v
                    .get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                format!("{key}:\n{}", lease_table(&l))
            };
        }
    }
    println!("{}", out.trim_end());
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<width$}  ", width = w[i]);
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// Leases as a table: family, address, state, client, subnet, expiry.
#[must_use]
pub fn lease_table(leases: &[Value]) -> String {
    let now = unix_now();
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            let addr = match l.get("prefix_len").and_then(Value::as_u64) {
                Some(p) if p < 128 => format!("{}/{p}", text(l, "addr")),
                _ => text(l, "addr"),
            };
            let expires = l.get("expires").and_then(Value::as_i64).map_or_else(
                || "-".to_owned(),
                |e| {
                    if e > now {
                        format!("in {}s", e - now)
                    } else {
                        format!("{}s ago", now - e)
                    }
                },
            );
            vec![
                text(l, "family"),
                addr,
                text(l, "state"),
                text(l, "client"),
                l.get("chaddr")
                    .map_or_else(|| "-".into(), |_| text(l, "chaddr")),
                text(l, "subnet_id"),
                expires,
            ]
        })
        .collect();
    let mut t = table(
        &[
            "FAMILY", "ADDRESS", "STATE", "CLIENT", "MAC", "SUBNET", "EXPIRES",
        ],
        &rows,
    );
    let _ = writeln!(t, "{} lease(s)", rows.len());
    t
}

/// `/v1/stats` as a table: one line per pool.
#[must_use]
pub fn stats_table(v: &Value) -> String {
    let mut rows = Vec::new();
    for s in v
        .get("subnets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for p in s
            .get("pools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let util = p
                .get("utilisation")
                .and_then(Value::as_f64)
                .map_or_else(|| "-".into(), |u| format!("{:.1}%", u * 100.0));
            rows.push(vec![
                text(s, "family"),
                text(s, "id"),
                text(p, "id"),
                text(p, "range"),
                text(p, "total"),
                text(p, "active"),
                text(p, "free"),
                text(p, "declined"),
                util,
            ]);
        }
    }
    table(
        &[
            "FAMILY", "SUBNET", "POOL", "RANGE", "TOTAL", "ACTIVE", "FREE", "DECLINED", "USED",
        ],
        &rows,
    )
}

/// The failover relationships as a table, one row per relationship.
fn failover_table(v: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "NAME        ROLE       STATE                      PARTNER                    CONNECTED  UNACKED  PENDING  MCLT\n",
    );
    for r in v
        .get("relationships")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
        let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<11} {:<10} {:<26} {:<26} {:<10} {:<8} {:<8} {}",
            s("name"),
            s("role"),
            s("state"),
            s("partner_state"),
            r.get("connected").and_then(Value::as_bool).unwrap_or(false),
            n("unacked_updates"),
            n("pending_updates"),
            n("mclt"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(Client::new("http://127.0.0.1:8547", None).is_ok());
        assert!(Client::new("http://127.0.0.1:8547/", None).is_ok());
        assert!(Client::new("https://x:1", None).is_err());
        assert!(Client::new("http://x:1/api", None).is_err());
        assert!(Client::new("http://", None).is_err());
    }

    #[test]
    fn responses() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"error\":\"no\"}\nextra";
        assert_eq!(
            parse_response(raw),
            Some((404, "{\"error\":\"no\"}\n".to_owned()))
        );
        assert_eq!(parse_response(b"garbage"), None);
        assert_eq!(enc("v4-10.0.0.1"), "v4-10.0.0.1");
        assert_eq!(enc("na-2001:db8::1"), "na-2001%3Adb8%3A%3A1");
    }

    #[test]
    fn tables() {
        let v: Value = serde_json::from_str(
            r#"{"subnets":[{"family":"v4","id":7,"pools":[{"id":1,"range":"10.0.0.1-10.0.0.4","total":4,"active":1,"free":3,"declined":0,"utilisation":0.25}]}]}"#,
        )
        .unwrap();
        let t = stats_table(&v);
        assert!(t.lines().nth(1).unwrap().contains("10.0.0.1-10.0.0.4"));
        assert!(t.contains("25.0%"), "{t}");
    }
}
