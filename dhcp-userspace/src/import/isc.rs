//! ISC dhcpd: `dhcpd.conf` and `dhcpd.leases` (see dhcpd.conf(5), dhcpd.leases(5)).
//!
//! Both files are read by one tokenizer (words, quoted strings, `{ } ; ,`, `#` comments)
//! into statements: the words up to `;`, or up to a `{ … }` block.

use std::net::Ipv4Addr;

use super::options::{self, Level, Written};
use super::{
    ImportError, Item, Loc, Plan, PlanFailover, PlanReservation4, PlanSubnet4, Report, keep_last,
    lease4, parse_hex_bytes, settle_state,
};
use crate::config::{Ipv4Net, Pool4};
use crate::lease::{BindingState, ClientKey};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    /// A quoted string, escapes left in.
    Str(String),
    Comma,
}

impl Tok {
    fn text(&self) -> &str {
        match self {
            Self::Word(s) | Self::Str(s) => s,
            Self::Comma => ",",
        }
    }
}

/// One statement: its words and, for a block statement, the statements inside.
#[derive(Debug, Clone)]
struct Stmt {
    line: usize,
    words: Vec<Tok>,
    block: Option<Vec<Stmt>>,
}

impl Stmt {
    fn word(&self, i: usize) -> &str {
        self.words.get(i).map_or("", Tok::text)
    }

    /// The words from `from` on, as the source wrote them.
    fn rest(&self, from: usize) -> String {
        let parts: Vec<String> = self
            .words
            .iter()
            .skip(from)
            .map(|t| match t {
                Tok::Str(s) => format!("\"{s}\""),
                t => t.text().to_owned(),
            })
            .collect();
        parts.join(" ").replace(" ,", ",")
    }
}

fn syntax(file: &str, line: usize, reason: impl Into<String>) -> ImportError {
    ImportError::Syntax {
        file: file.to_owned(),
        line,
        reason: reason.into(),
    }
}

/// Split `text` into statements.
fn parse(text: &str, file: &str) -> Result<Vec<Stmt>, ImportError> {
    let mut toks: Vec<(usize, Option<Tok>, char)> = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '{' | '}' | ';' => toks.push((line, None, c)),
            ',' => toks.push((line, Some(Tok::Comma), ',')),
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(syntax(file, start, "unterminated string")),
                        Some('"') => break,
                        Some('\\') => {
                            s.push('\\');
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                    }
                }
                toks.push((start, Some(Tok::Str(s)), '"'));
            }
            c => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | ',' | '"' | '#') {
                        break;
                    }
                    w.push(n);
                    chars.next();
                }
                toks.push((line, Some(Tok::Word(w)), 'w'));
            }
        }
    }
    let mut pos = 0;
    let stmts = block(&toks, &mut pos, file, false)?;
    Ok(stmts)
}

fn block(
    toks: &[(usize, Option<Tok>, char)],
    pos: &mut usize,
    file: &str,
    nested: bool,
) -> Result<Vec<Stmt>, ImportError> {
    let mut out = Vec::new();
    let mut cur: Option<Stmt> = None;
    while let Some((line, tok, c)) = toks.get(*pos) {
        *pos += 1;
        match (tok, c) {
            (Some(t), _) => cur
                .get_or_insert_with(|| Stmt {
                    line: *line,
                    words: Vec::new(),
                    block: None,
                })
                .words
                .push(t.clone()),
            (None, ';') => {
                if let Some(s) = cur.take() {
                    out.push(s);
                }
            }
            (None, '{') => {
                let mut s = cur.take().unwrap_or(Stmt {
                    line: *line,
                    words: Vec::new(),
                    block: None,
                });
                s.block = Some(block(toks, pos, file, true)?);
                out.push(s);
            }
            _ => {
                if !nested {
                    return Err(syntax(file, *line, "`}` without a matching `{`"));
                }
                if let Some(s) = cur.take() {
                    return Err(syntax(file, s.line, "statement not ended by `;`"));
                }
                return Ok(out);
            }
        }
    }
    if nested {
        return Err(syntax(
            file,
            toks.last().map_or(1, |t| t.0),
            "a `{` block is not closed",
        ));
    }
    if let Some(s) = cur {
        return Err(syntax(file, s.line, "statement not ended by `;`"));
    }
    Ok(out)
}

/// Decode a dhcpd string: `\ooo` octal, `\xHH`, `\n`, `\t`, `\\`, `\"`.
fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let e = bytes[i + 1];
        let oct = bytes[i + 1..]
            .iter()
            .take(3)
            .take_while(|c| (b'0'..=b'7').contains(*c))
            .count();
        if oct > 0 {
            let v = bytes[i + 1..i + 1 + oct]
                .iter()
                .fold(0u32, |a, &c| a * 8 + u32::from(c - b'0'));
            out.push(u8::try_from(v & 0xff).unwrap_or(0));
            i += 1 + oct;
        } else if e == b'x' {
            let hex = bytes[i + 2..]
                .iter()
                .take(2)
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            let v = std::str::from_utf8(&bytes[i + 2..i + 2 + hex])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            out.push(v);
            i += 2 + hex;
        } else {
            out.push(match e {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                other => other,
            });
            i += 2;
        }
    }
    out
}

/// Client identifier bytes of `uid "…"` or `uid 01:02:…`.
fn uid_bytes(t: &Tok) -> Option<Vec<u8>> {
    match t {
        Tok::Str(s) => Some(unescape(s)),
        Tok::Word(w) => parse_hex_bytes(w),
        Tok::Comma => None,
    }
}

/// Why a dhcpd statement is not converted.
fn why_not(word: &str) -> &'static str {
    match word {
        "failover" => {
            "not a `failover peer \"NAME\" { … }` declaration nor a pool's reference to one"
        }
        "class" | "subclass" | "match" | "spawn" => "client classes are not supported",
        "if" | "elsif" | "else" | "switch" | "case" | "default" => {
            "conditional statements are not supported"
        }
        "key"
        | "zone"
        | "ddns-update-style"
        | "ddns-updates"
        | "ddns-domainname"
        | "ddns-rev-domainname"
        | "ddns-hostname"
        | "ddns-ttl"
        | "update-static-leases"
        | "update-optimization"
        | "update-conflict-detection"
        | "do-forward-updates"
        | "client-updates" => "DNS updates (DDNS) are not supported",
        "include" => "included files are not read: import them separately or inline them",
        "allow" | "deny" | "ignore" => "access control (allow/deny) is not supported",
        "authoritative" | "not" => {
            "twinlease always answers as the authoritative server of its subnets"
        }
        "next-server" | "filename" | "server-name" => {
            "BOOTP header fields (siaddr, file, sname) are not supported"
        }
        "log-facility" => "twinlease logs to stderr, filtered by TWINLEASE_LOG",
        "lease-file-name" | "pid-file-name" | "db-time-format" => {
            "twinlease keeps leases in its own store (server.data-dir)"
        }
        "ping-check" | "ping-timeout" | "ping-timeout-ms" => {
            "twinlease does not ping an address before offering it"
        }
        "omapi-port" | "omapi-key" => "twinlease has its own control interface",
        "local-address" | "local-port" | "server-identifier" => {
            "set listen and server-id in the [server] table by hand"
        }
        "subnet6" | "range6" | "prefix6" | "fixed-address6" | "fixed-prefix6" => {
            "DHCPv6 configuration of dhcpd -6 is not supported"
        }
        "on" => "event hooks (on commit/release/expiry) are not supported",
        _ => "unknown or unsupported dhcpd statement",
    }
}

#[derive(Debug, Clone, Default)]
struct Inherit {
    opts: Level,
    default_lease: Option<u32>,
    max_lease: Option<u32>,
    min_lease: Option<u32>,
}

struct Host {
    loc: Loc,
    name: String,
    hw: Option<[u8; 6]>,
    client_id: Option<Vec<u8>>,
    addresses: Vec<Ipv4Addr>,
    hostname: Option<String>,
}

struct Reader<'a, 'r> {
    file: &'a str,
    report: &'r mut Report,
    subnets: Vec<PlanSubnet4>,
    ranges: Vec<Item<Pool4>>,
    hosts: Vec<Host>,
    /// The converted `failover peer` declaration.
    failover: Option<Item<PlanFailover>>,
    /// Pools' `failover peer "NAME";` references: where, and the name.
    failover_refs: Vec<(Loc, String)>,
}

impl Reader<'_, '_> {
    fn loc(&self, s: &Stmt) -> Loc {
        Loc::new(self.file, s.line)
    }

    fn skip(&mut self, s: &Stmt, reason: &str) {
        let loc = self.loc(s);
        let mut what = s.rest(0);
        if what.len() > 60 {
            what = format!("{}…", what.chars().take(60).collect::<String>());
        }
        self.report.skip(&loc, what, reason);
    }

    fn option(&mut self, s: &Stmt, level: &mut Level) {
        let name = s.word(1);
        if s.word(2) == "code" || name == "space" || name.contains('.') {
            self.skip(s, "option definitions and option spaces are not supported");
            return;
        }
        let strings = s.words.iter().skip(2).any(|t| matches!(t, Tok::Str(_)));
        let words: Vec<&Tok> = s
            .words
            .iter()
            .skip(2)
            .filter(|t| **t != Tok::Comma)
            .collect();
        let data = if strings {
            let v: Vec<String> = words
                .iter()
                .map(|t| String::from_utf8_lossy(&unescape(t.text())).into_owned())
                .collect();
            v.join(",")
        } else {
            let v: Vec<&str> = words.iter().map(|t| t.text()).collect();
            v.join(",")
        };
        // `vendor-encapsulated-options 01:04:…` and other hex-only values.
        let hex = !strings
            && words.len() == 1
            && words[0].text().contains(':')
            && words[0].text().parse::<Ipv4Addr>().is_err()
            && parse_hex_bytes(words[0].text()).is_some();
        let written = Written {
            name: Some(name),
            code: None,
            data: &data,
            hex,
        };
        match options::convert(false, &written) {
            Ok(c) => level.set(c, &Loc::new(self.file, s.line)),
            Err(reason) => self.skip(s, &reason),
        }
    }

    /// Statements of a scope: global, shared-network, group, subnet or pool.
    fn scope(&mut self, stmts: &[Stmt], parent: &Inherit, subnet: Option<usize>, in_pool: bool) {
        let mut here = Inherit::default();
        // Settings first, so that they apply to every subnet of the scope whatever the
        // order of the statements.
        for s in stmts {
            let secs = || s.word(1).parse::<u32>().ok();
            match s.word(0) {
                "option" => {
                    if in_pool {
                        self.skip(s, "options per pool are not supported (only per subnet)");
                    } else {
                        let mut l = std::mem::take(&mut here.opts);
                        self.option(s, &mut l);
                        here.opts = l;
                    }
                }
                "default-lease-time" => here.default_lease = secs(),
                "max-lease-time" => here.max_lease = secs(),
                "min-lease-time" => here.min_lease = secs(),
                _ => {}
            }
        }
        let inh = Inherit {
            opts: here.opts.under(&parent.opts),
            default_lease: here.default_lease.or(parent.default_lease),
            max_lease: here.max_lease.or(parent.max_lease),
            min_lease: here.min_lease.or(parent.min_lease),
        };
        if let Some(i) = subnet
            && !in_pool
        {
            let s = &mut self.subnets[i];
            s.lease_time = Some(inh.default_lease.unwrap_or(43_200));
            s.max_lease_time = Some(inh.max_lease.unwrap_or(86_400));
            s.min_lease_time = inh.min_lease;
            if let (Some(l), Some(m)) = (s.lease_time, s.max_lease_time)
                && l > m
            {
                s.lease_time = Some(m);
            }
            if let (Some(l), Some(m)) = (s.lease_time, s.min_lease_time)
                && l < m
            {
                s.lease_time = Some(m);
            }
            let mut sub = std::mem::replace(s, PlanSubnet4::new(s.loc.clone(), s.id, s.subnet));
            inh.opts.clone().apply4(&mut sub, self.report);
            self.subnets[i] = sub;
        }
        for s in stmts {
            let w0 = s.word(0);
            match (w0, &s.block) {
                ("option" | "default-lease-time" | "max-lease-time" | "min-lease-time", None) => {}
                ("subnet", Some(b)) => self.subnet(s, b, &inh),
                ("shared-network", Some(b)) => {
                    let n = b.iter().filter(|x| x.word(0) == "subnet").count();
                    self.skip(
                        s,
                        &format!(
                            "flattened into its {n} subnet(s), which inherit its settings; \
                             twinlease does not pool the addresses of a shared network: each \
                             subnet is selected on its own (relay address, interface)"
                        ),
                    );
                    self.scope(b, &inh, None, false);
                }
                ("group", Some(b)) => self.scope(b, &inh, None, false),
                ("pool", Some(b)) => self.scope(b, &inh, subnet, true),
                ("host", Some(b)) => self.host(s, b),
                ("range", None) => self.range(s),
                ("failover", None) if in_pool && s.word(1) == "peer" => {
                    let loc = self.loc(s);
                    self.failover_refs.push((loc, s.word(2).to_owned()));
                }
                ("failover", Some(b)) if s.word(1) == "peer" => self.failover_peer(s, b),
                _ => self.skip(s, why_not(w0)),
            }
        }
    }

    /// `failover peer "NAME" { … }` (dhcpd.conf(5) "DHCP FAILOVER"): the `[failover]` table.
    fn failover_peer(&mut self, s: &Stmt, b: &[Stmt]) {
        let name = s.word(2).to_owned();
        if name.is_empty() {
            self.skip(s, "a failover peer without a name");
            return;
        }
        if self.failover.is_some() {
            self.skip(
                s,
                "twinlease has one failover relationship, covering every subnet4: only the \
                 first declaration is converted",
            );
            return;
        }
        let mut f = PlanFailover {
            name,
            role: "",
            address: Ipv4Addr::UNSPECIFIED,
            port: None,
            peer_address: Ipv4Addr::UNSPECIFIED,
            peer_port: None,
            mclt: None,
            max_response_delay: None,
            max_unacked_updates: None,
            load_balance_split: None,
            load_balance_max_seconds: None,
            max_lease_misbalance: None,
            auto_partner_down: None,
        };
        for st in b {
            if !self.failover_statement(st, &mut f) {
                self.skip(st, "not a valid value");
            }
        }
        let mut missing = Vec::new();
        if f.role.is_empty() {
            missing.push("primary or secondary");
        }
        if f.address.is_unspecified() {
            missing.push("address");
        }
        if f.peer_address.is_unspecified() {
            missing.push("peer address");
        }
        if !missing.is_empty() {
            self.skip(
                s,
                &format!(
                    "not converted: no {} (host names are not resolved)",
                    missing.join(", no ")
                ),
            );
            return;
        }
        if f.role == "secondary" && f.mclt.is_none() {
            self.report.converted.push(format!(
                "failover peer \"{}\": dhcpd's secondary takes the primary's mclt; set \
                 failover.mclt to the primary's value (twinlease's default is 3600)",
                f.name
            ));
        }
        let loc = self.loc(s);
        self.failover = Some(Item { value: f, loc });
    }

    /// One statement of a `failover peer` block into `f`; `false` when its value is not
    /// valid (reported by the caller). Statements twinlease has no equivalent for are
    /// reported here, and `true` returned.
    fn failover_statement(&mut self, st: &Stmt, f: &mut PlanFailover) -> bool {
        fn num<T: std::str::FromStr>(st: &Stmt, i: usize, out: &mut Option<T>) -> bool {
            match st.word(i).parse::<T>() {
                Ok(v) => {
                    *out = Some(v);
                    true
                }
                Err(_) => false,
            }
        }
        fn ip(st: &Stmt, i: usize, out: &mut Ipv4Addr) -> bool {
            match st.word(i).parse::<Ipv4Addr>() {
                Ok(v) => {
                    *out = v;
                    true
                }
                Err(_) => false,
            }
        }
        match (st.word(0), st.word(1)) {
            ("primary", "") => f.role = "primary",
            ("secondary", "") => f.role = "secondary",
            ("address", _) => return ip(st, 1, &mut f.address),
            ("port", _) => return num(st, 1, &mut f.port),
            ("peer", "address") => return ip(st, 2, &mut f.peer_address),
            ("peer", "port") => return num(st, 2, &mut f.peer_port),
            ("max-response-delay", _) => return num(st, 1, &mut f.max_response_delay),
            ("max-unacked-updates", _) => return num(st, 1, &mut f.max_unacked_updates),
            ("mclt", _) => return num(st, 1, &mut f.mclt),
            ("split", _) => return num(st, 1, &mut f.load_balance_split),
            ("hba", _) => {
                // The RFC 3074 hash bucket assignment the primary serves: twinlease assigns
                // buckets 0..N (what dhcpd's `split N` writes).
                let Some(bits) = parse_hex_bytes(st.word(1)).filter(|b| b.len() == 32) else {
                    return false;
                };
                let n = (0..=256u16).find(|&n| {
                    crate::failover::lb::Buckets::split(n, crate::failover::state::Role::Primary)
                        .0
                        .as_slice()
                        == bits.as_slice()
                });
                match n {
                    Some(n) => f.load_balance_split = Some(n),
                    None => self.skip(
                        st,
                        "an hba other than the first N buckets: twinlease's primary serves \
                         buckets 0..load-balance-split; set it by hand",
                    ),
                }
            }
            ("load", "balance") if st.word(2) == "max" && st.word(3) == "seconds" => {
                return num(st, 4, &mut f.load_balance_max_seconds);
            }
            ("auto-partner-down", _) => return num(st, 1, &mut f.auto_partner_down),
            ("max-lease-misbalance", _) => return num(st, 1, &mut f.max_lease_misbalance),
            ("max-lease-ownership" | "min-balance" | "max-balance", _) => self.skip(
                st,
                "twinlease's primary rebalances every few seconds when a pool's split drifts \
                 past max-lease-misbalance",
            ),
            _ => self.skip(st, "unknown failover peer statement"),
        }
        true
    }

    fn subnet(&mut self, s: &Stmt, b: &[Stmt], inh: &Inherit) {
        let net = s
            .word(1)
            .parse::<Ipv4Addr>()
            .ok()
            .zip(s.word(3).parse::<Ipv4Addr>().ok())
            .filter(|_| s.word(2) == "netmask")
            .and_then(|(a, m)| {
                let bits = m.to_bits();
                let len = u8::try_from(bits.leading_ones()).ok()?;
                (bits.count_ones() == bits.leading_ones())
                    .then(|| Ipv4Net::new(a, len))
                    .flatten()
            });
        let Some(net) = net.filter(|n| n.addr == n.network()) else {
            self.skip(
                s,
                "not `subnet NETWORK netmask MASK` with a contiguous mask",
            );
            return;
        };
        let id = u32::try_from(self.subnets.len() + 1).unwrap_or(u32::MAX);
        self.subnets.push(PlanSubnet4::new(self.loc(s), id, net));
        let i = self.subnets.len() - 1;
        self.scope(b, inh, Some(i), false);
    }

    fn range(&mut self, s: &Stmt) {
        let first = usize::from(s.word(1) == "dynamic-bootp") + 1;
        let a = s.word(first).parse::<Ipv4Addr>().ok();
        let b = if s.word(first + 1).is_empty() {
            a
        } else {
            s.word(first + 1).parse().ok()
        };
        match a.zip(b) {
            Some((start, end)) => self.ranges.push(Item {
                value: Pool4 { start, end },
                loc: self.loc(s),
            }),
            None => self.skip(s, "not `range FIRST LAST`"),
        }
    }

    fn host(&mut self, s: &Stmt, b: &[Stmt]) {
        let mut h = Host {
            loc: self.loc(s),
            name: s.word(1).to_owned(),
            hw: None,
            client_id: None,
            addresses: Vec::new(),
            hostname: None,
        };
        for st in b {
            match (st.word(0), st.word(1)) {
                ("hardware", "ethernet") => match super::parse_mac(st.word(2)) {
                    Some(m) => h.hw = Some(m),
                    None => self.skip(st, "not an Ethernet address"),
                },
                ("hardware", _) => self.skip(st, "only Ethernet hardware addresses are supported"),
                ("fixed-address", _) => {
                    for t in st.words.iter().skip(1).filter(|t| **t != Tok::Comma) {
                        match t.text().parse() {
                            Ok(a) => h.addresses.push(a),
                            Err(_) => self.skip(
                                st,
                                "fixed addresses given as host names are not resolved; write \
                                 the address",
                            ),
                        }
                    }
                }
                ("option", "dhcp-client-identifier") => {
                    h.client_id = st.words.get(2).and_then(uid_bytes);
                }
                ("option", "host-name") => {
                    h.hostname = Some(String::from_utf8_lossy(&unescape(st.word(2))).into_owned());
                }
                ("option", _) => self.skip(st, "options per host are not supported"),
                (w, _) => self.skip(st, why_not(w)),
            }
        }
        self.hosts.push(h);
    }
}

/// Read `dhcpd.conf` into `plan`.
pub(super) fn read_config(
    text: &str,
    file: &str,
    plan: &mut Plan,
    report: &mut Report,
) -> Result<(), ImportError> {
    let stmts = parse(text, file)?;
    let mut r = Reader {
        file,
        report,
        subnets: Vec::new(),
        ranges: Vec::new(),
        hosts: Vec::new(),
        failover: None,
        failover_refs: Vec::new(),
    };
    r.scope(&stmts, &Inherit::default(), None, false);
    let Reader {
        report,
        mut subnets,
        ranges,
        hosts,
        failover,
        failover_refs,
        ..
    } = r;
    for (loc, name) in failover_refs {
        if failover.as_ref().is_none_or(|f| f.value.name != name) {
            report.skip(
                &loc,
                format!("failover peer \"{name}\""),
                "names a relationship that was not converted; the pool's ranges are converted \
                 without it",
            );
        }
    }
    if let Some(f) = &failover {
        report.converted.push(format!(
            "failover peer \"{}\" ({}) → [failover], covering every subnet4 (twinlease has no \
             per-pool relationship)",
            f.value.name, f.value.role
        ));
    }
    plan.failover = failover;
    for p in ranges {
        match subnets
            .iter_mut()
            .find(|s| s.subnet.contains(p.value.start))
        {
            Some(s) => s.pools.push(p),
            None => report.skip(
                &p.loc,
                format!("range {}", p.value),
                "in no declared subnet",
            ),
        }
    }
    for h in hosts {
        let what = format!("host {}", h.name);
        if h.hw.is_none() && h.client_id.is_none() {
            report.skip(
                &h.loc,
                what,
                "no hardware ethernet or dhcp-client-identifier",
            );
            continue;
        }
        if h.addresses.is_empty() {
            report.skip(
                &h.loc,
                what,
                "no fixed-address (twinlease reserves addresses only)",
            );
            continue;
        }
        let mut placed = false;
        for a in &h.addresses {
            let home = subnets.iter_mut().find(|s| s.subnet.contains(*a));
            match home {
                Some(s) if !placed => {
                    s.reservations.push(Item {
                        value: PlanReservation4 {
                            hw: h.hw,
                            client_id: h.client_id.clone(),
                            address: *a,
                            hostname: h.hostname.clone(),
                        },
                        loc: h.loc.clone(),
                    });
                    placed = true;
                }
                Some(_) => report.skip(
                    &h.loc,
                    format!("{what} fixed-address {a}"),
                    "twinlease reserves one address per client",
                ),
                None => report.skip(
                    &h.loc,
                    format!("{what} fixed-address {a}"),
                    "the address is in no declared subnet",
                ),
            }
        }
    }
    plan.subnet4.append(&mut subnets);
    Ok(())
}

/// Unix seconds of a UTC civil date (days from 1970-01-01 by the proleptic Gregorian
/// calendar).
fn unix_time(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

/// `N YYYY/MM/DD HH:MM:SS`, `epoch N` or `never` (as `u32::MAX`).
fn lease_time(st: &Stmt) -> Option<u32> {
    let clamp = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    match st.word(1) {
        "never" => Some(u32::MAX),
        "epoch" => st.word(2).parse::<i64>().ok().map(clamp),
        _ => {
            let d: Vec<i64> = st
                .word(2)
                .split('/')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            let t: Vec<i64> = st
                .word(3)
                .split(':')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            match (d.as_slice(), t.as_slice()) {
                ([y, m, dd], [hh, mm, ss])
                    if (1..=12).contains(m) && (1..=31).contains(dd) && *hh < 24 =>
                {
                    Some(clamp(unix_time(*y, *m, *dd, *hh, *mm, *ss)))
                }
                _ => None,
            }
        }
    }
}

/// Read `dhcpd.leases` into `plan` (the last block for an address wins).
pub(super) fn read_leases(
    text: &str,
    file: &str,
    now: u32,
    plan: &mut Plan,
    report: &mut Report,
) -> Result<(), ImportError> {
    let stmts = parse(text, file)?;
    let mut out = Vec::new();
    for s in &stmts {
        let loc = Loc::new(file, s.line);
        match (s.word(0), &s.block) {
            ("lease", Some(b)) => {
                plan.lease_records += 1;
                let Ok(addr) = s.word(1).parse::<Ipv4Addr>() else {
                    report.skip(&loc, s.rest(0), "not an IPv4 address");
                    continue;
                };
                match lease_block(addr, b, now) {
                    Ok(Some(l)) => out.push((addr, Some(Item { value: l, loc }))),
                    Ok(None) => out.push((addr, None)),
                    Err(why) => report.skip(&loc, format!("lease {addr}"), why),
                }
            }
            ("server-duid" | "authoring-byte-order", _) => {}
            ("failover", _) => report.skip(
                &loc,
                s.rest(0),
                "dhcpd's failover state is not imported: twinlease keeps its own in the data \
                 directory and learns the partner's when they connect (draft-ietf-dhc-failover-12)",
            ),
            ("lease6" | "ia-na" | "ia-pd" | "ia-ta", _) => {
                report.skip(&loc, s.rest(0), "dhcpd -6 leases are not supported");
            }
            ("host", _) => report.skip(
                &loc,
                s.rest(0),
                "hosts added through OMAPI are not converted; put them into dhcpd.conf",
            ),
            _ => report.skip(&loc, s.rest(0), "unknown statement in a lease file"),
        }
    }
    // Keep the last record per address; a last record that binds no one (free, backup)
    // removes the address's earlier binding.
    let mut unbound = 0;
    let kept: Vec<Item<Option<Item<crate::lease::Lease4>>>> = keep_last(
        out.into_iter()
            .map(|(a, l)| {
                let loc = l
                    .as_ref()
                    .map_or_else(|| Loc::new(file, 0), |i| i.loc.clone());
                (a, Item { value: l, loc })
            })
            .collect(),
        &mut plan.superseded,
    );
    for k in kept {
        match k.value {
            Some(l) => plan.leases4.push(l),
            None => unbound += 1,
        }
    }
    plan.unbound_records += unbound;
    Ok(())
}

/// One `lease` block; `Ok(None)` for free and backup records.
fn lease_block(
    addr: Ipv4Addr,
    b: &[Stmt],
    now: u32,
) -> Result<Option<crate::lease::Lease4>, String> {
    let mut state = None;
    let mut starts = None;
    let mut ends = None;
    let mut cltt = None;
    let mut hw: Option<(u8, Vec<u8>)> = None;
    let mut uid = None;
    for s in b {
        match (s.word(0), s.word(1)) {
            ("starts", _) => starts = lease_time(s),
            ("ends", _) => ends = lease_time(s),
            ("cltt", _) => cltt = lease_time(s),
            ("binding", "state") => state = Some(s.word(2).to_owned()),
            ("abandoned", _) => state = Some("abandoned".into()),
            ("hardware", kind) => {
                let htype = match kind {
                    "ethernet" => 1,
                    "token-ring" => 6,
                    "fddi" => 8,
                    _ => 0,
                };
                hw = parse_hex_bytes(s.word(2)).map(|m| (htype, m));
            }
            ("uid", _) => uid = s.words.get(1).and_then(uid_bytes),
            _ => {}
        }
    }
    let state = match state.as_deref().unwrap_or("active") {
        "active" => BindingState::Active,
        "expired" => BindingState::Expired,
        "released" => BindingState::Released,
        "abandoned" => BindingState::Abandoned,
        "reset" => BindingState::Reset,
        "free" | "backup" => return Ok(None),
        other => return Err(format!("unknown binding state {other}")),
    };
    let expires = ends.ok_or("no `ends` time")?;
    let state = settle_state(state, expires, now);
    let client = match (&uid, &hw) {
        (Some(u), _) if !u.is_empty() => ClientKey::from_client_id(u),
        (_, Some((t, m))) if *t != 0 => ClientKey::from_hw(*t, m),
        _ if state == BindingState::Abandoned => ClientKey::from_hw(1, &[0; 6]),
        _ => return Err("no uid and no hardware address".into()),
    }
    .map_err(|e| e.to_string())?;
    let chaddr = hw
        .as_ref()
        .and_then(|(_, m)| <[u8; 6]>::try_from(m.as_slice()).ok())
        .unwrap_or([0; 6]);
    let cltt = cltt.or(starts).unwrap_or(0);
    Ok(Some(lease4(addr, state, &client, chaddr, 0, expires, cltt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(unix_time(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_time(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_time(2026, 11, 20, 10, 0, 0), 1_795_168_800);
    }

    #[test]
    fn uid_escapes() {
        assert_eq!(
            unescape(r"\001\000\033!\x41\\"),
            vec![1, 0, 0o33, b'!', 0x41, b'\\']
        );
    }

    #[test]
    fn statements_and_blocks() {
        let s = parse("a b;\n# c\nsubnet x { d \"e;f\"; }\n", "f").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].line, 3);
        assert_eq!(s[1].block.as_ref().unwrap()[0].word(1), "e;f");
        assert!(parse("a {", "f").is_err());
        assert!(parse("a }", "f").is_err());
    }
}
