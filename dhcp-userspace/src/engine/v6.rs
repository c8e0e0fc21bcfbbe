//! The DHCPv6 protocol logic (RFC 8415, with prefix delegation and RFC 6603 prefix exclude),
//! pure: datagram + lease state + now → reply + lease changes.
//!
//! [`Engine6::handle`] parses one datagram (through its relay encapsulations), selects the
//! client's link, decides every `IA_NA` and `IA_PD` of the message against the worker's own
//! [`Shard6`], writes the reply (wrapped in RELAY-REPL layers for a relayed request) into the
//! caller's buffer and pushes every lease change that must be durable into `changes`. It does
//! no I/O; only [`load_or_create_server_duid`] touches the file system, once at start-up.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::Path;

use crate::lease::{BindingState, ClientKey, IaKind, Lease6};
use crate::pool::v6::{Shard6, Share6};
use crate::wire::v6::{
    Error as WireError, Hint, IaRequest, MAX_DUID_LEN, MIN_DUID_LEN, MessageType, ReplyWriter,
    Request, SERVER_PORT, StatusCode, opt,
};

/// `All_DHCP_Relay_Agents_and_Servers` (RFC 8415 §7.1), where directly attached clients send.
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// A pool of delegated prefixes as the engine uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdPool {
    /// Pool id in the [`Space6`](crate::pool::v6::Space6).
    pub id: u32,
    /// Length of the delegated prefixes.
    pub delegated_len: u8,
    /// The excluded prefix inside the pool's first delegated prefix (RFC 6603 §4.2): its bits
    /// from `delegated_len` on are excluded from every delegated prefix.
    pub excluded: Option<(Ipv6Addr, u8)>,
}

/// What a DUID has reserved in one subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserved6 {
    /// The address for the client's `IA_NA`.
    pub address: Option<Ipv6Addr>,
    /// The prefix (and length) for the client's `IA_PD`.
    pub prefix: Option<(Ipv6Addr, u8)>,
}

/// One DHCPv6 subnet (link) as the engine uses it: pools by id, options encoded,
/// reservations indexed by DUID.
#[derive(Debug, Clone)]
pub struct Subnet6 {
    /// Configuration id.
    pub id: u32,
    /// The link's prefix (network address).
    pub prefix: Ipv6Addr,
    /// The link's prefix length.
    pub prefix_len: u8,
    /// Interface whose directly attached clients this subnet serves.
    pub interface: Option<String>,
    /// Relay Interface-Id value selecting this subnet (RFC 8415 §21.18).
    pub interface_id: Option<Vec<u8>>,
    /// `IA_NA` pool ids, in configuration order.
    pub na_pools: Vec<u32>,
    /// `IA_PD` pools, in configuration order.
    pub pd_pools: Vec<PdPool>,
    /// Preferred lifetime, seconds (RFC 8415 §21.6, §21.22).
    pub preferred: u32,
    /// Valid lifetime, seconds.
    pub valid: u32,
    /// T1 of every IA (RFC 8415 §21.4).
    pub t1: u32,
    /// T2 of every IA (RFC 8415 §21.4).
    pub t2: u32,
    /// Whether SOLICIT with Rapid Commit is answered with a committing REPLY (RFC 8415
    /// §18.3.1).
    pub rapid_commit: bool,
    /// `DNS_SERVERS` (option 23, RFC 3646 §3).
    pub dns_servers: Vec<Ipv6Addr>,
    /// `DOMAIN_LIST` value (option 24, RFC 3646 §4), already in DNS wire format.
    pub domain_list: Vec<u8>,
    /// `SOL_MAX_RT` (option 82, RFC 8415 §21.24).
    pub sol_max_rt: Option<u32>,
    /// `INFORMATION_REFRESH_TIME` (option 32, RFC 8415 §21.23).
    pub information_refresh_time: Option<u32>,
    /// Further options, sent when the client's ORO asks for them.
    pub options: Vec<(u16, Vec<u8>)>,
    /// Reservations by DUID.
    pub reservations: HashMap<Vec<u8>, Reserved6>,
}

impl Subnet6 {
    /// A subnet for the link `prefix/prefix_len` with no pools, options or reservations,
    /// lifetimes 3000/4000 and T1/T2 1500/2400 (the configuration defaults).
    #[must_use]
    pub fn new(id: u32, prefix: Ipv6Addr, prefix_len: u8) -> Self {
        Self {
            id,
            prefix,
            prefix_len,
            interface: None,
            interface_id: None,
            na_pools: Vec::new(),
            pd_pools: Vec::new(),
            preferred: 3000,
            valid: 4000,
            t1: 1500,
            t2: 2400,
            rapid_commit: false,
            dns_servers: Vec::new(),
            domain_list: Vec::new(),
            sol_max_rt: None,
            information_refresh_time: None,
            options: Vec::new(),
            reservations: HashMap::new(),
        }
    }

    /// Whether `a` is on this link.
    #[must_use]
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        let m = crate::config::Ipv6Net::mask_of(self.prefix_len);
        a.to_bits() & m == self.prefix.to_bits() & m
    }
}

/// Server-wide engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings6 {
    /// How long an advertised address or prefix stays held for the client, seconds.
    pub offer_hold_secs: u32,
    /// How long a declined address stays quarantined, seconds (RFC 8415 §18.3.8).
    pub decline_probation_secs: u32,
}

/// How a datagram arrived, given by the I/O path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress6 {
    /// Receiving interface index.
    pub ifindex: u32,
    /// Source address and port (a client's link-local address, or a relay agent's).
    pub src: SocketAddrV6,
    /// Destination address: `ff02::1:2` for a directly attached client's multicast.
    pub dst: Ipv6Addr,
}

/// What the engine decided for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict6 {
    /// A reply of `len` bytes was written for `dest`; if `durable`, the worker makes the
    /// batch's changes durable before sending it (draft-ietf-dhc-failover §3.1.3).
    Reply {
        /// Message type of the (innermost) reply.
        kind: MessageType,
        /// Bytes written into the reply buffer.
        len: usize,
        /// Where to send it: the relay agent (port 547) or the client.
        dest: SocketAddrV6,
        /// Whether the reply grants, extends or gives back leases recorded in `changes`.
        durable: bool,
    },
    /// Handled without a reply; the reason is a counter label.
    Silent(&'static str),
    /// Dropped; the reason is a counter label.
    Drop(&'static str),
}

/// What the DHCPv6 failover state allows (RFC 8156 §4.2, §4.4, §8): the snapshot a worker
/// takes from the partner thread once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverView6 {
    /// Whether a DHCPv6 failover relationship exists; the other fields are ignored when not.
    pub enabled: bool,
    /// Whether to answer clients at all (not in STARTUP, RECOVER...).
    pub respond: bool,
    /// Whether members may be allocated to clients that hold none.
    pub allocate: bool,
    /// Which members new allocations come from.
    pub share: Share6,
    /// Maximum client lead time, seconds (RFC 8156 §4.4).
    pub mclt: u32,
}

impl FailoverView6 {
    /// A server without a DHCPv6 partner: everything allowed, no MCLT bound.
    pub const STANDALONE: Self = Self {
        enabled: false,
        respond: true,
        allocate: true,
        share: Share6::Any,
        mclt: 0,
    };
}

/// The DHCPv6 protocol engine: immutable configuration, shared by all workers.
#[derive(Debug, Clone)]
pub struct Engine6 {
    subnets: Vec<Subnet6>,
    by_ifindex: Vec<(u32, usize)>,
    by_interface_id: HashMap<Vec<u8>, usize>,
    server_duid: Vec<u8>,
    settings: Settings6,
}

/// Encode domain names in DNS wire format (RFC 1035 §3.1), as `DOMAIN_LIST` carries them
/// (RFC 3646 §4, RFC 8415 §10). Names are validated by the configuration.
#[must_use]
pub fn encode_domain_list<S: AsRef<str>>(names: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref();
        for label in name.strip_suffix('.').unwrap_or(name).split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    out
}

/// The server's DUID, kept in `data_dir/server-duid` as hex: read it when the file exists,
/// else generate a DUID-UUID (RFC 8415 §11.5, type 4, RFC 6355) from 16 bytes of
/// `/dev/urandom` and store it, so the server keeps its identity across restarts
/// (RFC 8415 §11: a DUID must not change).
pub fn load_or_create_server_duid(data_dir: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let path = data_dir.join("server-duid");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let t = text.trim();
            let bad = || {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a DUID in hex", path.display()),
                )
            };
            if t.len() % 2 != 0 || !t.is_ascii() {
                return Err(bad());
            }
            let duid = (0..t.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&t[i..i + 2], 16).map_err(|_| bad()))
                .collect::<io::Result<Vec<u8>>>()?;
            if !(MIN_DUID_LEN..=MAX_DUID_LEN).contains(&duid.len()) {
                return Err(bad());
            }
            Ok(duid)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut uuid = [0u8; 16];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut uuid)?;
            // RFC 4122 §4.4: a random (version 4) UUID.
            uuid[6] = (uuid[6] & 0x0f) | 0x40;
            uuid[8] = (uuid[8] & 0x3f) | 0x80;
            let mut duid = vec![0, 4];
            duid.extend_from_slice(&uuid);
            let hex = duid.iter().fold(String::new(), |mut h, b| {
                use std::fmt::Write as _;
                let _ = write!(h, "{b:02x}");
                h
            });
            std::fs::create_dir_all(data_dir)?;
            let tmp = data_dir.join("server-duid.tmp");
            std::fs::write(&tmp, format!("{hex}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(duid)
        }
        Err(e) => Err(e),
    }
}

/// One address or prefix of an IA in the reply.
#[derive(Debug, Clone, Copy)]
struct Item {
    addr: Ipv6Addr,
    len: u8,
    preferred: u32,
    valid: u32,
    /// For a delegated prefix: the prefix excluded from it (RFC 6603).
    excluded: Option<(Ipv6Addr, u8)>,
}

/// One IA of the reply.
#[derive(Debug, Clone)]
struct IaOut {
    kind: IaKind,
    iaid: u32,
    t1: u32,
    t2: u32,
    items: Vec<Item>,
    status: Option<(StatusCode, &'static str)>,
}

/// How the IAs of a message are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// SOLICIT without Rapid Commit: choose and hold (RFC 8415 §18.3.1).
    Advertise,
    /// REQUEST, or SOLICIT with Rapid Commit: bind (RFC 8415 §18.3.2).
    Commit,
    /// RENEW (RFC 8415 §18.3.4).
    Renew,
    /// REBIND (RFC 8415 §18.3.5).
    Rebind,
}

impl Engine6 {
    /// An engine over these subnets, answering as `server_duid` (SERVERID, RFC 8415 §21.3).
    #[must_use]
    pub fn new(subnets: Vec<Subnet6>, server_duid: Vec<u8>, settings: Settings6) -> Self {
        let by_interface_id = subnets
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.interface_id.clone().map(|id| (id, i)))
            .collect();
        Self {
            subnets,
            by_ifindex: Vec::new(),
            by_interface_id,
            server_duid,
            settings,
        }
    }

    /// Tell the engine which interface index carries which subnet (resolved by the I/O path).
    pub fn bind_interface(&mut self, name: &str, ifindex: u32) {
        for (i, s) in self.subnets.iter().enumerate() {
            if s.interface.as_deref() == Some(name) {
                self.by_ifindex.push((ifindex, i));
            }
        }
    }

    /// The subnets.
    #[must_use]
    pub fn subnets(&self) -> &[Subnet6] {
        &self.subnets
    }

    /// The server's DUID.
    #[must_use]
    pub fn server_duid(&self) -> &[u8] {
        &self.server_duid
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &Settings6 {
        &self.settings
    }

    /// Link selection. Relayed (RFC 8415 §13.1, §21.18): the Interface-Id of the innermost
    /// relay that sent one, when it names a subnet; else the link-address of the innermost
    /// relay that set one. Direct: the receiving interface.
    fn select_subnet(&self, req: &Request<'_>, ingress: &Ingress6) -> Option<&Subnet6> {
        let relays = req.relays();
        if relays.is_empty() {
            return self
                .by_ifindex
                .iter()
                .find(|(ix, _)| *ix == ingress.ifindex)
                .map(|&(_, i)| &self.subnets[i]);
        }
        if let Some(id) = relays.iter().rev().find_map(|r| r.interface_id)
            && let Some(&i) = self.by_interface_id.get(id)
        {
            return Some(&self.subnets[i]);
        }
        let link = relays
            .iter()
            .rev()
            .map(|r| r.link_address)
            .find(|a| !a.is_unspecified())?;
        self.subnets.iter().find(|s| s.contains(link))
    }

    /// Decide one datagram (the UDP payload).
    ///
    /// `out` receives the reply bytes; `changes` receives the lease records to append to the
    /// WAL (the shard is already updated).
    pub fn handle(
        &self,
        datagram: &[u8],
        ingress: &Ingress6,
        now: u32,
        shard: &mut Shard6,
        out: &mut [u8],
        changes: &mut Vec<Lease6>,
    ) -> Verdict6 {
        self.handle_fo(
            datagram,
            ingress,
            now,
            shard,
            &FailoverView6::STANDALONE,
            out,
            changes,
        )
    }

    /// [`Self::handle`] under a DHCPv6 failover relationship (RFC 8156): silent when the
    /// state does not respond, new members only from this server's share and only when the
    /// state allocates (§4.2), every valid lifetime bounded by what the partner acknowledged
    /// plus the MCLT (§4.4), and every change marked for an update to the partner.
    #[expect(
        clippy::too_many_arguments,
        reason = "the datagram, its context, the shard, the view and the outputs"
    )]
    pub fn handle_fo(
        &self,
        datagram: &[u8],
        ingress: &Ingress6,
        now: u32,
        shard: &mut Shard6,
        fo: &FailoverView6,
        out: &mut [u8],
        changes: &mut Vec<Lease6>,
    ) -> Verdict6 {
        let before = changes.len();
        let v = self.decide(datagram, ingress, now, shard, fo, out, changes);
        if fo.enabled {
            // RFC 8156 §6: every committed change is sent to the partner.
            for c in &mut changes[before..] {
                c.update_pending = true;
                shard.upsert(*c);
            }
        }
        v
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the datagram, its context, the shard, the view and the outputs"
    )]
    fn decide(
        &self,
        datagram: &[u8],
        ingress: &Ingress6,
        now: u32,
        shard: &mut Shard6,
        fo: &FailoverView6,
        out: &mut [u8],
        changes: &mut Vec<Lease6>,
    ) -> Verdict6 {
        shard.set_share(if fo.enabled { fo.share } else { Share6::Any });
        let req = match Request::parse(datagram) {
            Ok(r) => r,
            Err(e) => return Verdict6::Drop(e.reason()),
        };
        let kind = req.message_type;
        // RFC 8415 §16: servers answer client messages only.
        if !kind.from_client() {
            return Verdict6::Drop("not_client_message");
        }
        let ours = req.server_id.map(|s| s == self.server_duid.as_slice());
        // RFC 8415 §16.2-§16.12: required and forbidden identifiers.
        match kind {
            MessageType::Solicit | MessageType::Confirm | MessageType::Rebind => {
                if req.server_id.is_some() {
                    return Verdict6::Drop("server_id_not_allowed");
                }
            }
            MessageType::Request
            | MessageType::Renew
            | MessageType::Release
            | MessageType::Decline => match ours {
                None => return Verdict6::Drop("missing_server_id"),
                Some(false) => return Verdict6::Silent("other_server"),
                Some(true) => {}
            },
            _ => {
                // RFC 8415 §16.12: an Information-request for another server is discarded.
                if ours == Some(false) {
                    return Verdict6::Silent("other_server");
                }
            }
        }
        if kind != MessageType::InformationRequest && req.client_id.is_none() {
            return Verdict6::Drop("missing_client_id");
        }
        let Ok(key) = req.client_id.map(ClientKey::from_duid).transpose() else {
            return Verdict6::Drop("bad_client_id");
        };
        let relayed = !req.relays().is_empty();
        let dest = if relayed {
            // RFC 8415 §19.3: the RELAY-REPL goes to the relay agent's server port.
            SocketAddrV6::new(*ingress.src.ip(), SERVER_PORT, 0, ingress.src.scope_id())
        } else {
            SocketAddrV6::new(*ingress.src.ip(), ingress.src.port(), 0, ingress.ifindex)
        };
        // Server unicast (RFC 8415 §21.12) is never offered, so a direct client must multicast.
        if !relayed && !ingress.dst.is_multicast() {
            return match kind {
                // RFC 8415 §18.3.2, §18.3.4, §18.3.7, §18.3.8: answer with UseMulticast only.
                MessageType::Request
                | MessageType::Renew
                | MessageType::Release
                | MessageType::Decline => self.use_multicast(&req, dest, out),
                // RFC 8415 §16: Solicit, Confirm, Rebind and Information-request sent to a
                // unicast address are discarded.
                _ => Verdict6::Drop("unicast_discarded"),
            };
        }
        let Some(subnet) = self.select_subnet(&req, ingress) else {
            return Verdict6::Drop("no_subnet");
        };
        // RFC 8156 §8: STARTUP, RECOVER, RECOVER-WAIT, POTENTIAL-CONFLICT... do not respond.
        if fo.enabled && !fo.respond {
            return Verdict6::Silent("failover_not_serving");
        }
        let cx = Cx {
            engine: self,
            req: &req,
            subnet,
            key,
            now,
            fo,
        };
        let before = changes.len();
        let mut ias = Vec::with_capacity(req.ia_na().len() + req.ia_pd().len());
        let (reply_kind, top, rapid) = match kind {
            MessageType::Solicit => {
                // RFC 8415 §18.3.1: Rapid Commit, when the client asks and the server allows,
                // commits the leases and answers with a REPLY.
                let rapid = req.rapid_commit && subnet.rapid_commit;
                let mode = if rapid { Mode::Commit } else { Mode::Advertise };
                cx.decide_all(mode, shard, &mut ias, changes);
                let k = if rapid {
                    MessageType::Reply
                } else {
                    MessageType::Advertise
                };
                (k, None, rapid)
            }
            MessageType::Request => {
                cx.decide_all(Mode::Commit, shard, &mut ias, changes);
                (MessageType::Reply, None, false)
            }
            MessageType::Renew => {
                cx.decide_all(Mode::Renew, shard, &mut ias, changes);
                (MessageType::Reply, None, false)
            }
            MessageType::Rebind => {
                cx.decide_all(Mode::Rebind, shard, &mut ias, changes);
                // RFC 8415 §18.3.5: without a binding and nothing to say about the addresses,
                // the server does not answer (another server may hold the bindings).
                if !ias.is_empty()
                    && ias
                        .iter()
                        .all(|ia| ia.status.is_some_and(|(s, _)| s == StatusCode::NoBinding))
                {
                    return Verdict6::Silent("rebind_unknown_binding");
                }
                (MessageType::Reply, None, false)
            }
            MessageType::Release => {
                cx.release_or_decline(false, shard, &mut ias, changes);
                // RFC 8415 §18.3.7: a Status Code option with Success at the top level.
                (
                    MessageType::Reply,
                    Some((StatusCode::Success, "released")),
                    false,
                )
            }
            MessageType::Decline => {
                cx.release_or_decline(true, shard, &mut ias, changes);
                // RFC 8415 §18.3.8: a Status Code option with Success at the top level.
                (
                    MessageType::Reply,
                    Some((StatusCode::Success, "declined")),
                    false,
                )
            }
            MessageType::Confirm => {
                // RFC 8415 §18.3.3: Success when every address is on this link, NotOnLink
                // otherwise; no reply when there are no addresses at all.
                let mut any = false;
                let mut all_on_link = true;
                for ia in req.ia_na() {
                    for h in ia.hints() {
                        any = true;
                        all_on_link &= subnet.contains(h.address);
                    }
                }
                if !any {
                    return Verdict6::Silent("confirm_without_addresses");
                }
                let status = if all_on_link {
                    (StatusCode::Success, "all addresses on link")
                } else {
                    (StatusCode::NotOnLink, "addresses not on link")
                };
                (MessageType::Reply, Some(status), false)
            }
            _ => (MessageType::Reply, None, false), // INFORMATION-REQUEST, RFC 8415 §18.3.6
        };
        let durable = reply_kind == MessageType::Reply && changes.len() > before;
        match cx.write_reply(reply_kind, &ias, top, rapid, out) {
            Some(len) => Verdict6::Reply {
                kind: reply_kind,
                len,
                dest,
                durable,
            },
            None => Verdict6::Drop("reply_buffer"),
        }
    }

    /// RFC 8415 §18.3.2: a unicast REQUEST (RENEW, RELEASE, DECLINE) without Server Unicast
    /// gets a REPLY with `UseMulticast`, the server and client identifiers, and nothing else.
    fn use_multicast(&self, req: &Request<'_>, dest: SocketAddrV6, out: &mut [u8]) -> Verdict6 {
        let written = (|| -> Result<usize, WireError> {
            let mut w = ReplyWriter::for_request(out, req, MessageType::Reply)?;
            w.option(opt::SERVERID, &self.server_duid)?;
            if let Some(c) = req.client_id {
                w.option(opt::CLIENTID, c)?;
            }
            w.status_code(StatusCode::UseMulticast, "use multicast")?;
            Ok(w.finish())
        })();
        match written {
            Ok(len) => Verdict6::Reply {
                kind: MessageType::Reply,
                len,
                dest,
                durable: false,
            },
            Err(_) => Verdict6::Drop("reply_buffer"),
        }
    }
}

/// The PD exclude option value (RFC 6603 §4.2): the excluded prefix length, then its bits
/// past the delegated prefix length, left-aligned in as few bytes as hold them.
fn pd_exclude_value(delegated_len: u8, excluded: (Ipv6Addr, u8), out: &mut [u8; 17]) -> usize {
    let (x, xlen) = excluded;
    let nbits = u32::from(xlen - delegated_len);
    let nbytes = nbits.div_ceil(8) as usize;
    let bits = (x.to_bits() << delegated_len) & crate::config::Ipv6Net::mask_of(nbits as u8);
    out[0] = xlen;
    out[1..=nbytes].copy_from_slice(&bits.to_be_bytes()[..nbytes]);
    1 + nbytes
}

/// One message being decided.
struct Cx<'e, 'r> {
    engine: &'e Engine6,
    req: &'e Request<'r>,
    subnet: &'e Subnet6,
    /// The client (absent only for an INFORMATION-REQUEST without CLIENTID).
    key: Option<ClientKey>,
    now: u32,
    fo: &'e FailoverView6,
}

impl Cx<'_, '_> {
    fn reservation(&self) -> Reserved6 {
        self.req
            .client_id
            .and_then(|d| self.subnet.reservations.get(d))
            .copied()
            .unwrap_or_default()
    }

    fn reserved_for(&self, kind: IaKind) -> Option<(Ipv6Addr, u8)> {
        let r = self.reservation();
        match kind {
            IaKind::Na => r.address.map(|a| (a, 128)),
            IaKind::Pd => r.prefix,
        }
    }

    /// The excluded prefix (RFC 6603 §4.2) of the delegated prefix `p`, when its pool has one.
    fn excluded_of(&self, shard: &Shard6, p: Ipv6Addr, len: u8) -> Option<(Ipv6Addr, u8)> {
        let pool = shard.space().pool_of(IaKind::Pd, p, len)?;
        let pd = self.subnet.pd_pools.iter().find(|pp| pp.id == pool)?;
        let (x, xlen) = pd.excluded?;
        let high = crate::config::Ipv6Net::mask_of(pd.delegated_len);
        let bits = (p.to_bits() & high) | (x.to_bits() & !high);
        Some((Ipv6Addr::from_bits(bits), xlen))
    }

    /// Whether `addr/len` may be bound to this client on this link now: the client's own
    /// reservation, or a member of one of the subnet's pools not reserved for someone else.
    fn appropriate(&self, shard: &Shard6, kind: IaKind, addr: Ipv6Addr, len: u8) -> bool {
        if self.reserved_for(kind) == Some((addr, len)) {
            return true;
        }
        let space = shard.space();
        let Some(pool) = space.pool_of(kind, addr, len) else {
            return false;
        };
        let ours = match kind {
            IaKind::Na => self.subnet.na_pools.contains(&pool),
            IaKind::Pd => self.subnet.pd_pools.iter().any(|p| p.id == pool),
        };
        ours && !space.is_reserved(kind, addr, len)
    }

    fn lease(
        &self,
        key: &ClientKey,
        (kind, iaid): (IaKind, u32),
        (addr, len): (Ipv6Addr, u8),
        state: BindingState,
        (preferred_until, expires): (u32, u32),
    ) -> Lease6 {
        Lease6 {
            kind,
            addr,
            prefix_len: len,
            state,
            client: *key,
            iaid,
            subnet_id: self.subnet.id,
            preferred_until,
            expires,
            cltt: self.now,
            partner_expires: 0,
            update_pending: false,
        }
    }

    /// The preferred and valid lifetimes to give `key` for `member` now: the subnet's,
    /// with a partner bounded so the binding never runs past what the partner acknowledged
    /// for this client and member plus the MCLT (RFC 8156 §4.4), the preferred lifetime never
    /// above the valid one (RFC 8415 §21.6).
    fn lifetimes(
        &self,
        shard: &Shard6,
        key: &ClientKey,
        kind: IaKind,
        member: (Ipv6Addr, u8),
    ) -> (u32, u32) {
        let (preferred, valid) = (self.subnet.preferred, self.subnet.valid);
        if !self.fo.enabled {
            return (preferred, valid);
        }
        let acked = shard
            .get(kind, member.0)
            .filter(|l| l.client == *key && l.prefix_len == member.1)
            .map_or(0, |l| l.partner_expires);
        let expiry = crate::failover::rules::grant_expiry(self.now, valid, acked, self.fo.mclt);
        let valid = expiry.saturating_sub(self.now).max(1);
        (preferred.min(valid), valid)
    }

    fn item(&self, shard: &Shard6, kind: IaKind, member: (Ipv6Addr, u8), live: bool) -> Item {
        let lifetimes = if live {
            match self.key {
                Some(k) => self.lifetimes(shard, &k, kind, member),
                None => (self.subnet.preferred, self.subnet.valid),
            }
        } else {
            (0, 0)
        };
        self.item_with(shard, kind, member, lifetimes)
    }

    fn item_with(
        &self,
        shard: &Shard6,
        kind: IaKind,
        (addr, len): (Ipv6Addr, u8),
        (preferred, valid): (u32, u32),
    ) -> Item {
        Item {
            addr,
            len,
            preferred,
            valid,
            excluded: (kind == IaKind::Pd)
                .then(|| self.excluded_of(shard, addr, len))
                .flatten(),
        }
    }

    fn ia_out(&self, kind: IaKind, iaid: u32, items: Vec<Item>) -> IaOut {
        // RFC 8415 §21.4: T1/T2 only matter while some lease is live.
        let live = items.iter().any(|i| i.valid > 0);
        let (t1, t2) = if live {
            // Lifetimes cut by the MCLT (RFC 8156 §4.4): renew at 0.5 and rebind at 0.8 of
            // the shortest preferred lifetime (RFC 8415 §21.4 recommends those ratios).
            let shortest = items
                .iter()
                .filter(|i| i.valid > 0)
                .map(|i| i.preferred)
                .min()
                .unwrap_or(self.subnet.preferred);
            if shortest < self.subnet.preferred {
                (
                    self.subnet.t1.min(shortest / 2),
                    self.subnet.t2.min(shortest / 5 * 4),
                )
            } else {
                (self.subnet.t1, self.subnet.t2)
            }
        } else {
            (0, 0)
        };
        IaOut {
            kind,
            iaid,
            t1,
            t2,
            items,
            status: None,
        }
    }

    fn ia_status(kind: IaKind, iaid: u32, status: StatusCode, why: &'static str) -> IaOut {
        IaOut {
            kind,
            iaid,
            t1: 0,
            t2: 0,
            items: Vec::new(),
            status: Some((status, why)),
        }
    }

    fn decide_all(
        &self,
        mode: Mode,
        shard: &mut Shard6,
        ias: &mut Vec<IaOut>,
        changes: &mut Vec<Lease6>,
    ) {
        let Some(key) = self.key else { return };
        let mut scratch = Vec::new();
        for (kind, list) in [
            (IaKind::Na, self.req.ia_na()),
            (IaKind::Pd, self.req.ia_pd()),
        ] {
            for ia in list {
                let out = match mode {
                    Mode::Advertise | Mode::Commit => {
                        self.assign(mode, &key, kind, ia, shard, &mut scratch, changes)
                    }
                    Mode::Renew | Mode::Rebind => {
                        self.extend(mode, &key, kind, ia, shard, &mut scratch, changes)
                    }
                };
                ias.push(out);
            }
        }
    }

    /// Choose the address or prefix of one IA: the IA's current binding, its held offer, the
    /// client's reservation, its last binding if still free, a hint (RFC 8415 §18.2.1), then
    /// any free member of the subnet's pools.
    fn pick(
        &self,
        key: &ClientKey,
        kind: IaKind,
        ia: &IaRequest,
        shard: &mut Shard6,
        scratch: &mut Vec<Lease6>,
    ) -> Option<(Ipv6Addr, u8)> {
        scratch.clear();
        shard.leases_of(key, ia.iaid, kind, self.subnet.id, scratch);
        if let Some(l) = scratch.iter().find(|l| {
            l.state == BindingState::Active && self.appropriate(shard, kind, l.addr, l.prefix_len)
        }) {
            return Some((l.addr, l.prefix_len));
        }
        if let Some((o, _)) = shard.offer_of(key, ia.iaid, kind, self.subnet.id)
            && self.appropriate(shard, kind, o.addr, o.prefix_len)
        {
            return Some((o.addr, o.prefix_len));
        }
        // RFC 8156 §8: in some states only existing bindings are served.
        if self.fo.enabled && !self.fo.allocate {
            return None;
        }
        if let Some(r) = self.reserved_for(kind) {
            // Not when another of the client's IAs holds it already.
            let taken = shard.get(kind, r.0).is_some_and(|l| {
                l.state.holds_address() && !(l.client == *key && l.iaid == ia.iaid)
            });
            if !taken {
                return Some(r);
            }
        }
        let pools: Vec<(u32, u8)> = match kind {
            IaKind::Na => self.subnet.na_pools.iter().map(|&id| (id, 128)).collect(),
            IaKind::Pd => self
                .subnet
                .pd_pools
                .iter()
                .map(|p| (p.id, p.delegated_len))
                .collect(),
        };
        // The IA's previous lease, then the client's hints, when still free.
        let previous = scratch
            .iter()
            .filter(|l| !l.state.holds_address())
            .map(|l| (l.addr, l.prefix_len));
        let hints = ia
            .hints()
            .iter()
            .filter(|h| !h.address.is_unspecified())
            .map(|h| (h.address, h.prefix_len));
        let wanted: Vec<(Ipv6Addr, u8)> = previous.chain(hints).collect();
        for want in wanted {
            if let Some(pool) = shard.space().pool_of(kind, want.0, want.1)
                && pools.iter().any(|&(id, _)| id == pool)
                && shard.allocate(pool, key, ia.iaid, Some(want)) == Some(want)
            {
                return Some(want);
            }
        }
        // A hinted prefix length (RFC 8415 §18.2.1: `::/56` asks for a /56) orders the pools.
        let wanted_len = ia.hints().first().map(|h| h.prefix_len);
        let mut order = pools;
        if kind == IaKind::Pd
            && let Some(l) = wanted_len
        {
            order.sort_by_key(|&(_, d)| d != l);
        }
        order
            .iter()
            .find_map(|&(id, _)| shard.allocate(id, key, ia.iaid, None))
    }

    /// SOLICIT (RFC 8415 §18.3.1) and REQUEST (RFC 8415 §18.3.2) for one IA.
    #[expect(
        clippy::too_many_arguments,
        reason = "the IA's identity, the shard and the outputs are all needed"
    )]
    fn assign(
        &self,
        mode: Mode,
        key: &ClientKey,
        kind: IaKind,
        ia: &IaRequest,
        shard: &mut Shard6,
        scratch: &mut Vec<Lease6>,
        changes: &mut Vec<Lease6>,
    ) -> IaOut {
        // RFC 8415 §18.3.2: addresses the client asks for that are not on this link make the
        // IA NotOnLink (prefixes are not on-link, so IA_PD is not checked).
        if mode == Mode::Commit
            && self.req.message_type == MessageType::Request
            && kind == IaKind::Na
            && ia
                .hints()
                .iter()
                .any(|h| !h.address.is_unspecified() && !self.subnet.contains(h.address))
        {
            return Self::ia_status(kind, ia.iaid, StatusCode::NotOnLink, "address not on link");
        }
        let Some(chosen) = self.pick(key, kind, ia, shard, scratch) else {
            // RFC 8415 §18.3.1, §18.3.2: the IA with NoAddrsAvail / NoPrefixAvail.
            return match kind {
                IaKind::Na => Self::ia_status(
                    kind,
                    ia.iaid,
                    StatusCode::NoAddrsAvail,
                    "no addresses available",
                ),
                IaKind::Pd => Self::ia_status(
                    kind,
                    ia.iaid,
                    StatusCode::NoPrefixAvail,
                    "no prefixes available",
                ),
            };
        };
        let mut items = Vec::with_capacity(1);
        if mode == Mode::Advertise {
            let bound = shard.get(kind, chosen.0).is_some_and(|l| {
                l.state == BindingState::Active && l.client == *key && l.iaid == ia.iaid
            });
            if !bound {
                // Drop an older offer of this IA at another member, then hold this one.
                if let Some((o, _)) = shard.offer_of(key, ia.iaid, kind, self.subnet.id)
                    && o.addr != chosen.0
                {
                    shard.cancel_offer(kind, o.addr);
                }
                let until = self
                    .now
                    .saturating_add(self.engine.settings.offer_hold_secs);
                let offer = self.lease(
                    key,
                    (kind, ia.iaid),
                    chosen,
                    BindingState::Free,
                    (until, until),
                );
                shard.hold_offer(offer, until);
            }
            items.push(self.item(shard, kind, chosen, true));
            return self.ia_out(kind, ia.iaid, items);
        }
        // Commit: bind the chosen member; other live bindings of the IA are given up and
        // shown with lifetimes 0 (RFC 8415 §18.3.2 lets the server return them so).
        scratch.clear();
        shard.leases_of(key, ia.iaid, kind, self.subnet.id, scratch);
        for old in scratch
            .iter()
            .filter(|l| l.state == BindingState::Active && (l.addr, l.prefix_len) != chosen)
        {
            let mut r = *old;
            r.state = BindingState::Released;
            r.expires = self.now;
            r.preferred_until = self.now;
            r.cltt = self.now;
            shard.upsert(r);
            changes.push(r);
            items.push(self.item(shard, kind, (old.addr, old.prefix_len), false));
        }
        if let Some((o, _)) = shard.offer_of(key, ia.iaid, kind, self.subnet.id)
            && o.addr != chosen.0
        {
            shard.cancel_offer(kind, o.addr);
        }
        let life = self.lifetimes(shard, key, kind, chosen);
        let mut l = self.lease(
            key,
            (kind, ia.iaid),
            chosen,
            BindingState::Active,
            (
                self.now.saturating_add(life.0),
                self.now.saturating_add(life.1),
            ),
        );
        // What the partner acknowledged for this client and member still holds.
        l.partner_expires = shard
            .get(kind, chosen.0)
            .filter(|o| o.client == *key && o.prefix_len == chosen.1)
            .map_or(0, |o| o.partner_expires);
        shard.upsert(l);
        changes.push(l);
        items.insert(0, self.item_with(shard, kind, chosen, life));
        self.ia_out(kind, ia.iaid, items)
    }

    /// RENEW (RFC 8415 §18.3.4) and REBIND (RFC 8415 §18.3.5) for one IA.
    #[expect(
        clippy::too_many_arguments,
        reason = "the IA's identity, the shard and the outputs are all needed"
    )]
    fn extend(
        &self,
        mode: Mode,
        key: &ClientKey,
        kind: IaKind,
        ia: &IaRequest,
        shard: &mut Shard6,
        scratch: &mut Vec<Lease6>,
        changes: &mut Vec<Lease6>,
    ) -> IaOut {
        scratch.clear();
        shard.leases_of(key, ia.iaid, kind, self.subnet.id, scratch);
        let records = std::mem::take(scratch);
        let mut items = Vec::new();
        let mut bound_any = false;
        for l in &records {
            let member = (l.addr, l.prefix_len);
            let holds = match l.state {
                BindingState::Active => true,
                // A binding the expiry sweep ended: revive it when the member is still free
                // (the client is still using it, RFC 8415 §18.3.4).
                BindingState::Expired => shard
                    .space()
                    .pool_of(kind, l.addr, l.prefix_len)
                    .is_some_and(|pool| {
                        shard.allocate(pool, key, ia.iaid, Some(member)) == Some(member)
                    }),
                _ => false,
            };
            if !holds {
                continue;
            }
            bound_any = true;
            if self.appropriate(shard, kind, l.addr, l.prefix_len) {
                let life = self.lifetimes(shard, key, kind, member);
                let mut r = *l;
                r.state = BindingState::Active;
                r.preferred_until = self.now.saturating_add(life.0);
                r.expires = self.now.saturating_add(life.1);
                r.cltt = self.now;
                shard.upsert(r);
                changes.push(r);
                items.push(self.item_with(shard, kind, member, life));
            } else {
                // RFC 8415 §18.3.4: no longer appropriate for the link: lifetimes 0.
                let mut r = *l;
                r.state = BindingState::Released;
                r.expires = self.now;
                r.preferred_until = self.now;
                r.cltt = self.now;
                shard.upsert(r);
                changes.push(r);
                items.push(self.item(shard, kind, member, false));
            }
        }
        *scratch = records;
        // Hints the server has no binding for and that are not appropriate for the link are
        // returned with lifetimes 0 (RFC 8415 §18.3.4, §18.3.5).
        let mut refused = Vec::new();
        for h in ia.hints().iter().filter(|h| !h.address.is_unspecified()) {
            let listed = items
                .iter()
                .any(|i| i.addr == h.address && i.len == h.prefix_len);
            if !listed && !self.hint_appropriate(shard, kind, h) {
                refused.push(self.item(shard, kind, (h.address, h.prefix_len), false));
            }
        }
        if !bound_any {
            if mode == Mode::Rebind && !refused.is_empty() {
                // RFC 8415 §18.3.5: no binding, and the addresses are not appropriate for the
                // link: send them back with lifetimes 0.
                return self.ia_out(kind, ia.iaid, refused);
            }
            // RFC 8415 §18.3.4, §18.3.5: NoBinding.
            return Self::ia_status(
                kind,
                ia.iaid,
                StatusCode::NoBinding,
                "no binding for this IA",
            );
        }
        items.extend(refused);
        self.ia_out(kind, ia.iaid, items)
    }

    /// Whether a hinted address could belong to this link: an address on the link, or a
    /// prefix of the subnet's pd-pools or its reservation.
    fn hint_appropriate(&self, shard: &Shard6, kind: IaKind, h: &Hint) -> bool {
        match kind {
            IaKind::Na => self.subnet.contains(h.address),
            IaKind::Pd => self.appropriate(shard, kind, h.address, h.prefix_len),
        }
    }

    /// RELEASE (RFC 8415 §18.3.7) and DECLINE (RFC 8415 §18.3.8): each listed address the
    /// client holds in the IA is released, or quarantined for the probation; an IA with none
    /// of them gets `NoBinding`.
    fn release_or_decline(
        &self,
        decline: bool,
        shard: &mut Shard6,
        ias: &mut Vec<IaOut>,
        changes: &mut Vec<Lease6>,
    ) {
        let Some(key) = self.key else { return };
        let kinds: &[(IaKind, &[IaRequest])] = if decline {
            // RFC 8415 §18.2.8: a client declines addresses.
            &[(IaKind::Na, self.req.ia_na())]
        } else {
            &[
                (IaKind::Na, self.req.ia_na()),
                (IaKind::Pd, self.req.ia_pd()),
            ]
        };
        for &(kind, list) in kinds {
            for ia in list {
                let mut found = false;
                for h in ia.hints() {
                    let Some(l) = shard.get(kind, h.address) else {
                        continue;
                    };
                    if l.client != key
                        || l.iaid != ia.iaid
                        || l.state != BindingState::Active
                        || l.prefix_len != h.prefix_len
                    {
                        continue;
                    }
                    found = true;
                    let mut r = l;
                    r.cltt = self.now;
                    r.preferred_until = self.now;
                    if decline {
                        r.state = BindingState::Abandoned;
                        r.expires = self
                            .now
                            .saturating_add(self.engine.settings.decline_probation_secs);
                    } else {
                        r.state = BindingState::Released;
                        r.expires = self.now;
                    }
                    shard.upsert(r);
                    changes.push(r);
                }
                if !found {
                    ias.push(Self::ia_status(
                        kind,
                        ia.iaid,
                        StatusCode::NoBinding,
                        "no binding for this IA",
                    ));
                }
            }
        }
    }

    /// Write the reply: identifiers, IAs, top-level status, then the options the ORO asks for
    /// (RFC 8415 §18.3, §21.7). Optional options that do not fit are skipped.
    fn write_reply(
        &self,
        kind: MessageType,
        ias: &[IaOut],
        top: Option<(StatusCode, &'static str)>,
        rapid: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let req = self.req;
        let s = self.subnet;
        let mut w = ReplyWriter::for_request(out, req, kind).ok()?;
        w.option(opt::SERVERID, &self.engine.server_duid).ok()?;
        if let Some(c) = req.client_id {
            w.option(opt::CLIENTID, c).ok()?;
        }
        if rapid {
            // RFC 8415 §18.3.1: the REPLY carries Rapid Commit.
            w.option(opt::RAPID_COMMIT, &[]).ok()?;
        }
        if let Some((code, msg)) = top {
            w.status_code(code, msg).ok()?;
        }
        let pd_exclude = req.requests_option(opt::PD_EXCLUDE);
        for ia in ias {
            let body = |w: &mut ReplyWriter<'_>| -> Result<(), WireError> {
                for it in &ia.items {
                    match ia.kind {
                        IaKind::Na => w.ia_addr(it.addr, it.preferred, it.valid, |_| Ok(()))?,
                        IaKind::Pd => {
                            w.ia_prefix(it.addr, it.len, it.preferred, it.valid, |w| {
                                // RFC 6603 §4.2: inside the IAPREFIX, when the client asked.
                                if pd_exclude && let Some(x) = it.excluded {
                                    let mut v = [0u8; 17];
                                    let n = pd_exclude_value(it.len, x, &mut v);
                                    w.option(opt::PD_EXCLUDE, &v[..n])?;
                                }
                                Ok(())
                            })?;
                        }
                    }
                }
                if let Some((code, msg)) = ia.status {
                    w.status_code(code, msg)?;
                }
                Ok(())
            };
            match ia.kind {
                IaKind::Na => w.ia_na(ia.iaid, ia.t1, ia.t2, body).ok()?,
                IaKind::Pd => w.ia_pd(ia.iaid, ia.t1, ia.t2, body).ok()?,
            }
        }
        let solicit = req.message_type == MessageType::Solicit;
        let info = req.message_type == MessageType::InformationRequest;
        let mut sent: Vec<u16> = Vec::new();
        for code in req.oro_codes() {
            if sent.contains(&code) {
                continue;
            }
            sent.push(code);
            // Options that do not fit are left out; the message stays well-formed.
            let _ = match code {
                opt::DNS_SERVERS if !s.dns_servers.is_empty() => {
                    w.option_ip6s(opt::DNS_SERVERS, &s.dns_servers)
                }
                opt::DOMAIN_LIST if !s.domain_list.is_empty() => {
                    w.option(opt::DOMAIN_LIST, &s.domain_list)
                }
                // RFC 8415 §21.24: in replies to SOLICIT.
                opt::SOL_MAX_RT if solicit => match s.sol_max_rt {
                    Some(v) => w.option_u32(opt::SOL_MAX_RT, v),
                    None => Ok(()),
                },
                // RFC 8415 §21.23: only in a REPLY to INFORMATION-REQUEST.
                opt::INFORMATION_REFRESH_TIME if info => match s.information_refresh_time {
                    Some(v) => w.option_u32(opt::INFORMATION_REFRESH_TIME, v),
                    None => Ok(()),
                },
                c => match s.options.iter().find(|(oc, _)| *oc == c) {
                    Some((oc, v)) => w.option(*oc, v),
                    None => Ok(()),
                },
            };
        }
        Some(w.finish())
    }
}

#[cfg(test)]
#[path = "v6_tests.rs"]
mod tests;
