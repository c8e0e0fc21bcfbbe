//! The DHCP protocol logic for IPv4 (RFC 2131), pure: request + lease state + now → reply + lease changes.
//!
//! [`Engine::handle`] reads one parsed request, consults and updates the worker's own
//! [`Shard`] and the shared [`FreeMap`], writes the reply into the caller's buffer and pushes
//! every lease change that must be durable before the reply leaves into `changes`. It does
//! no I/O, so every rule here is tested without sockets.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::lease::{BindingState, ClientKey, Lease4};
use crate::pool::{FreeMap, Shard, Share};
use crate::wire::v4::{MessageType, ReplyHeader, ReplyWriter, Request, opt};

/// One subnet as the engine uses it: addresses and options resolved, reservations indexed.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// Configuration id.
    pub id: u32,
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Netmask (option 1).
    pub mask: Ipv4Addr,
    /// Broadcast address (option 28).
    pub broadcast: Ipv4Addr,
    /// Interface name whose directly attached clients this subnet serves.
    pub interface: Option<String>,
    /// giaddr values that select this subnet besides those inside it.
    pub relay_addresses: Vec<Ipv4Addr>,
    /// Dynamic pools (ids in the [`FreeMap`]) and their inclusive ranges.
    pub pools: Vec<(u32, Ipv4Addr, Ipv4Addr)>,
    /// Default lease time (option 51), seconds.
    pub lease_time: u32,
    /// Renewal time T1 (option 58).
    pub t1: u32,
    /// Rebinding time T2 (option 59).
    pub t2: u32,
    /// Smallest lease time a client may ask for.
    pub min_lease: u32,
    /// Largest lease time a client may ask for.
    pub max_lease: u32,
    /// Routers (option 3).
    pub routers: Vec<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns_servers: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain_name: Option<Vec<u8>>,
    /// Further configured options, sent when the client asks for them.
    pub options: Vec<(u8, Vec<u8>)>,
    /// Reservations by hardware address.
    pub res_by_hw: HashMap<[u8; 6], Ipv4Addr>,
    /// Reservations by client identifier (option 61 value).
    pub res_by_client_id: HashMap<Vec<u8>, Ipv4Addr>,
    /// Reserved addresses (never handed out dynamically).
    pub reserved: Vec<Ipv4Addr>,
    /// Whether DHCPDISCOVER with Rapid Commit (option 80) is answered with a DHCPACK.
    pub rapid_commit: bool,
    /// Server identifier override for this subnet.
    pub server_id: Option<Ipv4Addr>,
}

impl Subnet {
    /// Whether `a` is inside this subnet.
    #[must_use]
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let m = u32::from(self.mask);
        u32::from(a) & m == u32::from(self.network)
    }

    fn in_pool(&self, a: Ipv4Addr) -> bool {
        self.pools.iter().any(|&(_, s, e)| s <= a && a <= e)
    }

    fn reservation_for(&self, req: &Request<'_>) -> Option<Ipv4Addr> {
        if let Some(id) = req.client_id
            && let Some(&a) = self.res_by_client_id.get(id)
        {
            return Some(a);
        }
        if req.htype == 1 && req.hlen == 6 {
            let mut hw = [0u8; 6];
            hw.copy_from_slice(&req.chaddr[..6]);
            return self.res_by_hw.get(&hw).copied();
        }
        None
    }

    fn is_reserved(&self, a: Ipv4Addr) -> bool {
        self.reserved.contains(&a)
    }

    /// The lease time to grant: the client's request (option 51) clamped into the
    /// configured bounds, else the default (RFC 2131 §4.3.1).
    fn lease_time_for(&self, requested: Option<u32>) -> u32 {
        // `min(max)`: a hand-built subnet with min > max must not make `clamp` panic.
        requested.map_or(self.lease_time, |r| {
            r.clamp(self.min_lease.min(self.max_lease), self.max_lease)
        })
    }
}

/// Where the reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To the relay agent at giaddr, port 67.
    Relay(Ipv4Addr),
    /// To a client that has an address (ciaddr), port 68, routed normally.
    Unicast(Ipv4Addr),
    /// To 255.255.255.255 port 68 on the receiving interface.
    Broadcast,
    /// To `ip` at link-layer address `mac` on the receiving interface, without ARP: the client
    /// has no address yet and did not ask for broadcast.
    HwUnicast {
        /// Destination IP (yiaddr).
        ip: Ipv4Addr,
        /// Destination MAC (chaddr).
        mac: [u8; 6],
    },
}

/// Facts about how a request arrived, given by the I/O path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress {
    /// Receiving interface index (0: unknown).
    pub ifindex: u32,
    /// The server's address on the receiving interface (default server identifier).
    pub local_addr: Option<Ipv4Addr>,
    /// Whether the request was sent to a broadcast address (REBINDING vs RENEWING).
    pub broadcast: bool,
}

/// What the engine decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A reply of `len` bytes was written for `dest`; if `durable` the worker must make the
    /// batch's changes durable before sending it (draft-ietf-dhc-failover §3.1.3).
    Reply {
        /// Reply message type.
        kind: MessageType,
        /// Bytes written into the reply buffer.
        len: usize,
        /// Where to send it.
        dest: Destination,
        /// Whether it grants or extends a lease.
        durable: bool,
    },
    /// Handled without a reply (RELEASE, DECLINE, another server's REQUEST, …).
    Silent(&'static str),
    /// Dropped: the reason is a counter label.
    Drop(&'static str),
}

/// RFC 3074 load balancing as the failover state allows it (only in NORMAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadBalance {
    /// The hash buckets this server answers (RFC 3074 §6 bitmap, as exchanged in the
    /// hash-bucket-assignment option).
    pub buckets: crate::failover::lb::Buckets,
    /// A client whose `secs` is above this is answered whatever its bucket (RFC 3074 §5).
    pub max_secs: u16,
}

/// What the failover state (draft-ietf-dhc-failover-12 §9) allows this server to do now: a
/// snapshot the worker takes once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one flag per independent permission of the draft-12 §9 per-state rules"
)]
pub struct FailoverView {
    /// Whether a failover relationship exists; all other fields are ignored when not.
    pub enabled: bool,
    /// Whether to answer clients at all (not in STARTUP, RECOVER, PAUSED, SHUTDOWN...).
    pub respond: bool,
    /// Whether clients without a binding to renew are answered at all (DISCOVER,
    /// SELECTING, INIT-REBOOT); `false`: only RENEWING/REBINDING (RECOVER-DONE, draft-12
    /// §9.7.1).
    pub serve_new: bool,
    /// Whether new addresses may be allocated.
    pub allocate: bool,
    /// Which free addresses new allocations come from.
    pub share: Share,
    /// Maximum client lead time, seconds (draft-12 §5.2.1).
    pub mclt: u32,
    /// Load balancing in force (NORMAL), `None` otherwise.
    pub lb: Option<LoadBalance>,
}

impl FailoverView {
    /// A server without a failover partner: everything allowed, no MCLT bound.
    pub const STANDALONE: Self = Self {
        enabled: false,
        respond: true,
        serve_new: true,
        allocate: true,
        share: Share::Any,
        mclt: 0,
        lb: None,
    };
}

/// Server-wide engine settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Server identifier (option 54) when neither the subnet nor the interface gives one.
    pub server_id: Option<Ipv4Addr>,
    /// How long an offered address stays reserved for the client, seconds.
    pub offer_hold_secs: u32,
    /// How long a declined address stays quarantined, seconds.
    pub decline_probation_secs: u32,
}

/// The protocol engine for DHCP over IPv4: immutable configuration, shared by all workers.
#[derive(Debug, Clone)]
pub struct Engine {
    subnets: Vec<Subnet>,
    by_ifindex: Vec<(u32, usize)>,
    settings: Settings,
}

/// Largest reply we ever build.
pub const MAX_REPLY: usize = 1500;

impl Engine {
    /// An engine over these subnets.
    #[must_use]
    pub fn new(subnets: Vec<Subnet>, settings: Settings) -> Self {
        Self {
            subnets,
            by_ifindex: Vec::new(),
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
    pub fn subnets(&self) -> &[Subnet] {
        &self.subnets
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every reserved address of every subnet (kept out of the dynamic free map).
    pub fn reserved_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.subnets.iter().flat_map(|s| s.reserved.iter().copied())
    }

    fn subnet_containing(&self, a: Ipv4Addr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.contains(a))
    }

    /// Subnet selection: RFC 3527 link selection, then RFC 3011 subnet selection, then giaddr
    /// (RFC 2131 §4.3.1), then the receiving interface, then ciaddr.
    fn select_subnet(&self, req: &Request<'_>, ingress: &Ingress) -> Option<&Subnet> {
        if let Some(a) = req.link_selection {
            return self.subnet_containing(a);
        }
        if let Some(a) = req.subnet_selection {
            return self.subnet_containing(a);
        }
        if !req.giaddr.is_unspecified() {
            return self.subnet_containing(req.giaddr).or_else(|| {
                self.subnets
                    .iter()
                    .find(|s| s.relay_addresses.contains(&req.giaddr))
            });
        }
        if let Some(&(_, i)) = self
            .by_ifindex
            .iter()
            .find(|(ix, _)| *ix == ingress.ifindex)
        {
            // Several subnets may share an interface (secondary subnets): prefer the one the
            // client's address belongs to.
            if !req.ciaddr.is_unspecified()
                && let Some(s) = self
                    .by_ifindex
                    .iter()
                    .filter(|(ix, _)| *ix == ingress.ifindex)
                    .map(|&(_, j)| &self.subnets[j])
                    .find(|s| s.contains(req.ciaddr))
            {
                return Some(s);
            }
            return Some(&self.subnets[i]);
        }
        if !req.ciaddr.is_unspecified() {
            return self.subnet_containing(req.ciaddr);
        }
        None
    }

    fn server_id(&self, subnet: &Subnet, ingress: &Ingress) -> Option<Ipv4Addr> {
        subnet
            .server_id
            .or(self.settings.server_id)
            .or(ingress.local_addr)
    }

    /// Decide one request.
    ///
    /// `out` receives the reply bytes; `changes` receives the lease records to append to the
    /// WAL (the shard is already updated).
    #[expect(
        clippy::too_many_arguments,
        reason = "a pure function: every piece of state it reads or updates is a parameter"
    )]
    pub fn handle(
        &self,
        req: &Request<'_>,
        ingress: &Ingress,
        now: u32,
        shard: &mut Shard,
        free: &FreeMap,
        out: &mut [u8],
        changes: &mut Vec<Lease4>,
    ) -> Verdict {
        self.handle_fo(
            req,
            ingress,
            now,
            shard,
            free,
            &FailoverView::STANDALONE,
            out,
            changes,
        )
    }

    /// [`Self::handle`] under the failover rules of `fo` (draft-ietf-dhc-failover-12 §9:
    /// which requests are answered, which free addresses are used; §5.2.1: the MCLT bound on
    /// lease times; RFC 3074: load balancing). Changed records are marked as pending an
    /// update to the partner.
    #[expect(
        clippy::too_many_arguments,
        reason = "a pure function: every piece of state it reads or updates is a parameter"
    )]
    pub fn handle_fo(
        &self,
        req: &Request<'_>,
        ingress: &Ingress,
        now: u32,
        shard: &mut Shard,
        free: &FreeMap,
        fo: &FailoverView,
        out: &mut [u8],
        changes: &mut Vec<Lease4>,
    ) -> Verdict {
        if req.op != 1 {
            return Verdict::Drop("not_request");
        }
        let Some(kind) = req.message_type else {
            // Plain BOOTP is not served.
            return Verdict::Drop("no_message_type");
        };
        let Ok(key) = req.client_key() else {
            return Verdict::Drop("bad_client_id");
        };
        let Some(subnet) = self.select_subnet(req, ingress) else {
            return Verdict::Drop("no_subnet");
        };
        let Some(server_id) = self.server_id(subnet, ingress) else {
            return Verdict::Drop("no_server_id");
        };
        if fo.enabled {
            if !fo.respond {
                return Verdict::Silent("failover_not_serving");
            }
            // draft-12 §9.7.1: only DHCPREQUEST/RENEWING and REBINDING.
            let renewal = kind == MessageType::Request
                && req.server_id.is_none()
                && req.requested_ip.is_none()
                && !req.ciaddr.is_unspecified();
            if !fo.serve_new && !renewal {
                return Verdict::Silent("failover_renewals_only");
            }
            // RFC 3074 §5 / draft-12 §5.3: in NORMAL a client outside our hash buckets is the
            // partner's, unless it has been trying for longer than the configured seconds.
            // Load balancing applies to DISCOVER and INIT-REBOOT; every RENEWING and REBINDING
            // is processed (draft-12 §9.8.2), SELECTING names its server.
            let balanced = match kind {
                MessageType::Discover => true,
                MessageType::Request => req.server_id.is_none() && req.requested_ip.is_some(),
                _ => false,
            };
            if balanced
                && let Some(lb) = fo.lb
                && req.secs <= lb.max_secs
            {
                let hw = &req.chaddr[..usize::from(req.hlen.min(16))];
                let h = crate::failover::lb::client_hash(req.client_id, hw);
                if !lb.buckets.serves(h) {
                    return Verdict::Silent("failover_lb_partner");
                }
            }
        }
        let cx = Cx {
            engine: self,
            req,
            subnet,
            server_id,
            key,
            now,
            fo,
        };
        match kind {
            MessageType::Discover => cx.discover(shard, free, out, changes),
            MessageType::Request => cx.request(ingress, shard, free, out, changes),
            MessageType::Release => cx.release(shard, free, changes),
            MessageType::Decline => cx.decline(shard, free, changes),
            MessageType::Inform => cx.inform(out),
            _ => Verdict::Drop("unexpected_message_type"),
        }
    }
}

/// Bytes an option with a value of `len` bytes takes, split into instances of at most 252
/// bytes (RFC 3396 §6; 252 is the writer's split for address lists, the tighter of the two).
fn encoded_len(len: usize) -> usize {
    len + 2 * len.div_ceil(252).max(1)
}

/// One request being decided.
struct Cx<'e, 'r> {
    engine: &'e Engine,
    req: &'e Request<'r>,
    subnet: &'e Subnet,
    server_id: Ipv4Addr,
    key: ClientKey,
    now: u32,
    fo: &'e FailoverView,
}

impl Cx<'_, '_> {
    /// Whether a new allocation may take `addr` (a free address): draft-12 §5.4, a server
    /// allocates only from its own share of the free addresses.
    fn may_take(&self, addr: Ipv4Addr, free: &FreeMap) -> bool {
        !self.fo.enabled || (self.fo.allocate && free.in_share(addr, self.fo.share))
    }

    /// The lease time to grant from `desired`, bounded by the MCLT rule when a partner
    /// exists (draft-12 §5.2.1): never beyond what the partner acknowledged (for this client
    /// at this address) plus the MCLT.
    fn granted_time(&self, desired: u32, addr: Ipv4Addr, shard: &Shard) -> u32 {
        if !self.fo.enabled {
            return desired;
        }
        let acked = shard
            .get_by_addr(addr)
            .filter(|l| l.client == self.key)
            .map_or(0, |l| l.partner_expires);
        let expiry = crate::failover::rules::grant_expiry(self.now, desired, acked, self.fo.mclt);
        expiry.saturating_sub(self.now).max(1)
    }

    fn chaddr6(&self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.req.chaddr[..6]);
        m
    }

    fn lease(&self, addr: Ipv4Addr, state: BindingState, expires: u32) -> Lease4 {
        Lease4 {
            addr,
            state,
            client: self.key,
            chaddr: self.chaddr6(),
            subnet_id: self.subnet.id,
            expires,
            cltt: self.now,
            partner_expires: 0,
            update_pending: self.fo.enabled,
        }
    }

    /// Whether the client's existing record for `addr` (from the shard) is usable by it.
    fn own_record(&self, shard: &Shard) -> Option<Lease4> {
        shard.lease_of(&self.key, self.subnet.id)
    }

    /// Drop the offer held for this client, returning its address (still claimed).
    fn drop_offer(&self, shard: &mut Shard) -> Option<Ipv4Addr> {
        let (a, _) = shard.offer_of(&self.key, self.subnet.id)?;
        shard.cancel_offer(a);
        Some(a)
    }

    /// RFC 2131 §4.3.1: choose the address to offer.
    fn pick_address(&self, shard: &mut Shard, free: &FreeMap) -> Option<Ipv4Addr> {
        // A reservation always wins.
        if let Some(a) = self.subnet.reservation_for(self.req) {
            return Some(a);
        }
        // An outstanding offer, then the client's current binding, then its last address
        // if nobody took it meanwhile. An ACTIVE record always holds its address's bit in the
        // free map (the expiry sweep clears both together), so it is still the client's.
        if let Some((a, _)) = shard.offer_of(&self.key, self.subnet.id) {
            return Some(a);
        }
        if let Some(l) = self.own_record(shard)
            && self.subnet.in_pool(l.addr)
            && !self.subnet.is_reserved(l.addr)
        {
            let usable = match l.state {
                BindingState::Active => true,
                // With a partner a RELEASED record keeps its address until the MCLT has
                // passed (draft-12 §5.2.1): it is still this client's to take again.
                BindingState::Released if self.fo.enabled => true,
                BindingState::Expired | BindingState::Released | BindingState::Free => {
                    self.may_take(l.addr, free) && free.try_take(l.addr)
                }
                _ => false,
            };
            if usable {
                return Some(l.addr);
            }
        }
        // The requested address (option 50) if it is free and belongs here.
        if let Some(a) = self.req.requested_ip
            && self.subnet.in_pool(a)
            && !self.subnet.is_reserved(a)
            && self.may_take(a, free)
            && free.try_take(a)
        {
            return Some(a);
        }
        if self.fo.enabled && !self.fo.allocate {
            return None;
        }
        let from = if self.fo.enabled {
            self.fo.share
        } else {
            Share::Any
        };
        // Any free address of the subnet's pools (own shard's share first, then borrowed).
        let mut cursor = 0u32;
        for &(pool_id, _, _) in &self.subnet.pools {
            if let Some(a) = free.take_free_in(pool_id, shard.id(), &mut cursor, from) {
                return Some(a);
            }
        }
        None
    }

    fn discover(
        &self,
        shard: &mut Shard,
        free: &FreeMap,
        out: &mut [u8],
        changes: &mut Vec<Lease4>,
    ) -> Verdict {
        let Some(addr) = self.pick_address(shard, free) else {
            return Verdict::Drop("pool_exhausted");
        };
        let lease_time =
            self.granted_time(self.subnet.lease_time_for(self.req.lease_time), addr, shard);
        // RFC 4039 §4: Rapid Commit answers DISCOVER with an ACK that commits the lease.
        if self.req.rapid_commit && self.subnet.rapid_commit {
            let t = self.commit(shard, free, addr, lease_time, changes);
            return self.reply(MessageType::Ack, addr, Some(t), true, out);
        }
        let hold_until = self
            .now
            .saturating_add(self.engine.settings.offer_hold_secs);
        let active = shard
            .get_by_addr(addr)
            .is_some_and(|l| l.state == BindingState::Active && l.client == self.key);
        if !active {
            shard.hold_offer(self.lease(addr, BindingState::Free, hold_until), hold_until);
        }
        self.reply(MessageType::Offer, addr, Some(lease_time), false, out)
    }

    /// Bind `addr` to the client: the new record, plus the release of another address the
    /// client held in this subnet.
    fn commit(
        &self,
        shard: &mut Shard,
        free: &FreeMap,
        addr: Ipv4Addr,
        lease_time: u32,
        changes: &mut Vec<Lease4>,
    ) -> u32 {
        let lease_time = self.granted_time(lease_time, addr, shard);
        if let Some(old) = self.own_record(shard)
            && old.addr != addr
            // Only a live binding is given up; a DECLINEd (ABANDONED) address stays
            // quarantined for its probation (RFC 2131 §4.3.3).
            && old.state == BindingState::Active
            && old.client == self.key
        {
            let mut r = old;
            r.state = BindingState::Released;
            r.expires = self.now;
            r.cltt = self.now;
            r.update_pending |= self.fo.enabled;
            shard.upsert(r);
            changes.push(r);
            if !self.subnet.is_reserved(old.addr) && !self.fo.enabled {
                free.give_back(old.addr);
            }
        }
        // An offer at another address (the client asked for a different one) is given back.
        if let Some(a) = self.drop_offer(shard)
            && a != addr
            && shard
                .get_by_addr(a)
                .is_none_or(|l| !l.state.holds_address())
        {
            free.give_back(a);
        }
        let mut l = self.lease(
            addr,
            BindingState::Active,
            self.now.saturating_add(lease_time),
        );
        // What the partner acknowledged for this binding stays known (draft-12 §5.2.1).
        if let Some(prev) = shard.get_by_addr(addr)
            && prev.client == self.key
        {
            l.partner_expires = prev.partner_expires;
        }
        shard.upsert(l);
        changes.push(l);
        lease_time
    }

    /// RFC 2131 §4.3.2.
    fn request(
        &self,
        ingress: &Ingress,
        shard: &mut Shard,
        free: &FreeMap,
        out: &mut [u8],
        changes: &mut Vec<Lease4>,
    ) -> Verdict {
        let req = self.req;
        let lease_time = self.subnet.lease_time_for(req.lease_time);
        let record = self.own_record(shard);
        let reserved = self.subnet.reservation_for(req);

        if let Some(sid) = req.server_id {
            // SELECTING.
            if sid != self.server_id {
                // The client chose another server: release what we offered it.
                if let Some(a) = self.drop_offer(shard)
                    && shard
                        .get_by_addr(a)
                        .is_none_or(|l| !l.state.holds_address())
                {
                    free.give_back(a);
                }
                return Verdict::Silent("other_server");
            }
            let Some(want) = req.requested_ip else {
                return Verdict::Drop("selecting_without_requested_ip");
            };
            let ok = reserved == Some(want)
                || shard
                    .offer_of(&self.key, self.subnet.id)
                    .is_some_and(|(a, _)| a == want)
                || record.is_some_and(|l| l.addr == want && l.state == BindingState::Active)
                || (reserved.is_none()
                    && self.subnet.in_pool(want)
                    && !self.subnet.is_reserved(want)
                    && self.may_take(want, free)
                    && free.try_take(want));
            if !ok {
                return self.nak("requested address not available", out);
            }
            let t = self.commit(shard, free, want, lease_time, changes);
            return self.reply(MessageType::Ack, want, Some(t), true, out);
        }

        let (addr, rebinding) = if let Some(want) = req.requested_ip {
            if !req.ciaddr.is_unspecified() {
                return Verdict::Drop("request_ciaddr_and_requested_ip");
            }
            (want, false) // INIT-REBOOT
        } else if !req.ciaddr.is_unspecified() {
            (req.ciaddr, ingress.broadcast) // RENEWING (unicast) or REBINDING (broadcast)
        } else {
            return Verdict::Drop("request_without_address");
        };
        let init_reboot = req.requested_ip.is_some();

        // The address must be on the client's network.
        if !self.subnet.contains(addr) {
            return if init_reboot || rebinding || req.giaddr.is_unspecified() {
                self.nak("address not on this network", out)
            } else {
                Verdict::Silent("not_our_network")
            };
        }
        if let Some(r) = reserved {
            if r == addr {
                let t = self.commit(shard, free, addr, lease_time, changes);
                return self.reply(MessageType::Ack, addr, Some(t), true, out);
            }
            return self.nak("address reserved for this client differs", out);
        }
        // RFC 2131 §4.3.2 INIT-REBOOT: the server SHOULD NAK when "the client's notion of its
        // IP address is incorrect": it holds an unexpired binding with us at another address.
        if init_reboot
            && let Some(l) = record
            && l.addr != addr
            && l.state == BindingState::Active
            && l.expires > self.now
        {
            return self.nak("client is bound to another address", out);
        }
        if let Some(l) = record
            && l.addr == addr
        {
            // The address left every pool (a configuration reload removed its pool): the
            // client's notion of its address is no longer valid here (RFC 2131 §3.2, §4.3.2:
            // the server SHOULD NAK), so it restarts in INIT and gets an address of the
            // pools now configured. The record stays until it expires.
            if !self.subnet.in_pool(addr) {
                return self.nak("address no longer in a pool", out);
            }
            let still_ours = l.state == BindingState::Active
                || (matches!(
                    l.state,
                    BindingState::Expired | BindingState::Released | BindingState::Free
                ) && free.try_take(addr));
            if still_ours {
                let t = self.commit(shard, free, addr, lease_time, changes);
                return self.reply(MessageType::Ack, addr, Some(t), true, out);
            }
            return self.nak("lease no longer valid", out);
        }
        // We have no binding of this client for that address.
        if self.subnet.is_reserved(addr) {
            return self.nak("address reserved for another client", out);
        }
        if !self.subnet.in_pool(addr) {
            // RFC 2131 §4.3.2 INIT-REBOOT: "If the DHCP server has no record of this client,
            // then it MUST remain silent": another server of this network may own the address.
            if init_reboot {
                return Verdict::Silent("init_reboot_unknown_client");
            }
            return self.nak("address outside our pools", out);
        }
        if init_reboot {
            // RFC 2131 §4.3.2 INIT-REBOOT: "If the DHCP server has no record of this client,
            // then it MUST remain silent" — unless the address is known to be someone else's.
            if free.is_free(addr) {
                return Verdict::Silent("init_reboot_unknown_client");
            }
            return self.nak("address in use", out);
        }
        // RENEWING/REBINDING with no record (e.g. our store was lost): re-establish the
        // binding when the address is free, refuse when it is someone else's. With a partner,
        // a free address of the partner's share may be its client's binding that we have not
        // heard of yet (draft-12 §5.4): stay silent, the client retries.
        if free.is_free(addr) && !self.may_take(addr, free) {
            return Verdict::Silent("failover_partner_share");
        }
        if free.try_take(addr) {
            let t = self.commit(shard, free, addr, lease_time, changes);
            return self.reply(MessageType::Ack, addr, Some(t), true, out);
        }
        self.nak("address in use", out)
    }

    /// RFC 2131 §4.3.4: the client gives the address back; no reply.
    fn release(&self, shard: &mut Shard, free: &FreeMap, changes: &mut Vec<Lease4>) -> Verdict {
        if self.req.server_id.is_some_and(|s| s != self.server_id) {
            return Verdict::Silent("other_server");
        }
        let addr = self.req.ciaddr;
        match shard.get_by_addr(addr) {
            Some(l) if l.client == self.key && l.state == BindingState::Active => {
                let mut r = l;
                r.state = BindingState::Released;
                r.expires = self.now;
                r.cltt = self.now;
                r.update_pending |= self.fo.enabled;
                shard.upsert(r);
                changes.push(r);
                // With a partner the address stays held until the MCLT has passed (the
                // expiry sweep frees it, draft-12 §5.2.1).
                if !self.subnet.is_reserved(addr) && !self.fo.enabled {
                    free.give_back(addr);
                }
                Verdict::Silent("released")
            }
            _ => Verdict::Drop("release_unknown_binding"),
        }
    }

    /// RFC 2131 §4.3.3: the client found the address in use; quarantine it.
    fn decline(&self, shard: &mut Shard, free: &FreeMap, changes: &mut Vec<Lease4>) -> Verdict {
        if self.req.server_id.is_some_and(|s| s != self.server_id) {
            return Verdict::Silent("other_server");
        }
        let Some(addr) = self.req.requested_ip else {
            return Verdict::Drop("decline_without_address");
        };
        // Only the client holding (or offered) the address may decline it: a client cannot
        // quarantine addresses it was never given.
        let held = shard
            .get_by_addr(addr)
            .is_some_and(|l| l.client == self.key && l.state == BindingState::Active)
            || shard
                .offer_of(&self.key, self.subnet.id)
                .is_some_and(|(a, _)| a == addr);
        if !held {
            return Verdict::Drop("decline_unknown_binding");
        }
        // An offer the client holds at another address is cancelled: give that address back,
        // or nothing would ever free it (the shard's sweep only frees offers it still holds).
        if let Some(a) = self.drop_offer(shard)
            && a != addr
            && shard
                .get_by_addr(a)
                .is_none_or(|l| !l.state.holds_address())
        {
            free.give_back(a);
        }
        let until = self
            .now
            .saturating_add(self.engine.settings.decline_probation_secs);
        let mut l = self.lease(addr, BindingState::Abandoned, until);
        l.cltt = self.now;
        shard.upsert(l);
        changes.push(l);
        Verdict::Silent("declined")
    }

    /// RFC 2131 §4.3.5: configuration only, no lease.
    fn inform(&self, out: &mut [u8]) -> Verdict {
        self.reply(MessageType::Ack, Ipv4Addr::UNSPECIFIED, None, false, out)
    }

    fn nak(&self, why: &str, out: &mut [u8]) -> Verdict {
        let req = self.req;
        // RFC 2131 §4.3.2: a relayed DHCPNAK has the broadcast bit set.
        let flags = if req.giaddr.is_unspecified() {
            req.flags
        } else {
            req.flags | 0x8000
        };
        let hdr = self.header(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, flags);
        let Ok(mut w) = ReplyWriter::new(out, &hdr) else {
            return Verdict::Drop("reply_buffer");
        };
        let written = w
            .option_u8(opt::MESSAGE_TYPE, MessageType::Nak as u8)
            .is_ok()
            && w.option_ip(opt::SERVER_ID, self.server_id).is_ok();
        if !written {
            return Verdict::Drop("reply_buffer");
        }
        let _ = w.option(opt::MESSAGE, why.as_bytes());
        self.echo_options(&mut w);
        self.echo_relay_info(&mut w);
        let len = w.finish();
        // RFC 2131 §4.1: with giaddr zero, DHCPNAK is always broadcast.
        let dest = if req.giaddr.is_unspecified() {
            Destination::Broadcast
        } else {
            Destination::Relay(req.giaddr)
        };
        Verdict::Reply {
            kind: MessageType::Nak,
            len,
            dest,
            durable: false,
        }
    }

    fn header(&self, ciaddr: Ipv4Addr, yiaddr: Ipv4Addr, flags: u16) -> ReplyHeader {
        let req = self.req;
        ReplyHeader {
            op: 2,
            htype: req.htype,
            hlen: req.hlen,
            hops: 0,
            xid: req.xid,
            secs: 0,
            flags,
            ciaddr,
            yiaddr,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: req.giaddr,
            chaddr: req.chaddr,
        }
    }

    /// Options every reply echoes: the client identifier (RFC 6842 §3) and the relay agent
    /// information (RFC 3046 §2.2), last so that they are never crowded out.
    fn echo_options(&self, w: &mut ReplyWriter<'_>) {
        if let Some(id) = self.req.client_id {
            let _ = w.option(opt::CLIENT_ID, id);
        }
        // RFC 3011 §2: a server supporting the subnet selection option MUST return an
        // identical copy of it; clients discard replies without it.
        if let Some(a) = self.req.subnet_selection {
            let _ = w.option_ip(opt::SUBNET_SELECTION, a);
        }
    }

    /// RFC 3046 §2.2: the server SHOULD copy the relay agent information option as the last
    /// option of the reply (callers keep [`Self::relay_info_room`] bytes free for it).
    fn echo_relay_info(&self, w: &mut ReplyWriter<'_>) {
        if let Some(ri) = self.req.relay_agent_info {
            let _ = w.option(opt::RELAY_AGENT_INFO, ri);
        }
    }

    /// Bytes the relay agent information option will take in the reply.
    fn relay_info_room(&self) -> usize {
        self.req
            .relay_agent_info
            .map_or(0, |ri| encoded_len(ri.len()))
    }

    /// Build OFFER/ACK (with `lease_time`) or the INFORM ACK (without).
    fn reply(
        &self,
        kind: MessageType,
        yiaddr: Ipv4Addr,
        lease_time: Option<u32>,
        durable: bool,
        out: &mut [u8],
    ) -> Verdict {
        let req = self.req;
        let s = self.subnet;
        // RFC 2131 Table 3: ciaddr is echoed in ACKs to INFORM and to RENEWING/REBINDING.
        let ciaddr = if kind == MessageType::Ack {
            req.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let hdr = self.header(ciaddr, yiaddr, req.flags);
        let Ok(w) = ReplyWriter::new(out, &hdr) else {
            return Verdict::Drop("reply_buffer");
        };
        let mut w = match req.max_message_size {
            // RFC 2132 §9.10: the limit covers the IP datagram; never below 576.
            Some(m) => w.with_max_size(m.max(576)),
            None => w.with_max_size(576),
        };
        let mut ok = w.option_u8(opt::MESSAGE_TYPE, kind as u8).is_ok()
            && w.option_ip(opt::SERVER_ID, self.server_id).is_ok();
        if let Some(t) = lease_time {
            // RFC 2131 §4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease time; the
            // configured values apply to the configured lease time.
            let (t1, t2) = if t == s.lease_time || s.lease_time == 0 {
                (s.t1, s.t2)
            } else {
                // A clamped or requested lease time keeps the configured T1/T2 proportions.
                let scale = |x: u32| (u64::from(t) * u64::from(x) / u64::from(s.lease_time)) as u32;
                (scale(s.t1), scale(s.t2))
            };
            ok = ok
                && w.option_u32(opt::LEASE_TIME, t).is_ok()
                && w.option_u32(opt::RENEWAL_T1, t1).is_ok()
                && w.option_u32(opt::REBINDING_T2, t2).is_ok();
        }
        if req.rapid_commit && kind == MessageType::Ack && s.rapid_commit && lease_time.is_some() {
            ok = ok && w.option(opt::RAPID_COMMIT, &[]).is_ok();
        }
        ok = ok && w.option_ip(opt::SUBNET_MASK, s.mask).is_ok();
        if !ok {
            return Verdict::Drop("reply_buffer");
        }
        // Echo options first so a small max-message-size never drops them; option 82 goes
        // last, and the room it needs is kept free while optional options are added.
        self.echo_options(&mut w);
        let room = self.relay_info_room();
        // RFC 2132 §9.8: when the client sent a parameter request list, send what it asked for
        // in its order; otherwise the usual set. Options that no longer fit are skipped.
        let put = |w: &mut ReplyWriter<'_>, code: u8| -> bool {
            let value_len = match code {
                opt::ROUTER => 4 * s.routers.len(),
                opt::DNS => 4 * s.dns_servers.len(),
                opt::DOMAIN_NAME => s.domain_name.as_ref().map_or(0, Vec::len),
                opt::BROADCAST => 4,
                c => s
                    .options
                    .iter()
                    .find(|(oc, _)| *oc == c)
                    .map_or(0, |(_, v)| v.len()),
            };
            if w.remaining() < encoded_len(value_len) + room {
                return false;
            }
            match code {
                opt::ROUTER if !s.routers.is_empty() => {
                    w.option_ips(opt::ROUTER, &s.routers).is_ok()
                }
                opt::DNS if !s.dns_servers.is_empty() => {
                    w.option_ips(opt::DNS, &s.dns_servers).is_ok()
                }
                opt::DOMAIN_NAME => s
                    .domain_name
                    .as_ref()
                    .is_some_and(|d| w.option(opt::DOMAIN_NAME, d).is_ok()),
                opt::BROADCAST => w.option_ip(opt::BROADCAST, s.broadcast).is_ok(),
                c => s
                    .options
                    .iter()
                    .find(|(oc, _)| *oc == c)
                    .is_some_and(|(oc, v)| w.option(*oc, v).is_ok()),
            }
        };
        if let Some(prl) = req.parameter_request_list {
            // RFC 3396 §7: two instances of a code are concatenated by the client, so a code
            // listed twice in the PRL is answered once.
            let mut sent = [false; 256];
            for &c in prl {
                if !std::mem::replace(&mut sent[usize::from(c)], true) {
                    put(&mut w, c);
                }
            }
        } else {
            for c in [opt::ROUTER, opt::DNS, opt::DOMAIN_NAME, opt::BROADCAST] {
                put(&mut w, c);
            }
            for (c, _) in &s.options {
                put(&mut w, *c);
            }
        }
        self.echo_relay_info(&mut w);
        let len = w.finish();
        Verdict::Reply {
            kind,
            len,
            dest: self.destination(yiaddr),
            durable,
        }
    }

    /// RFC 2131 §4.1, "If the 'giaddr' field in a DHCP message from a client is non-zero…".
    fn destination(&self, yiaddr: Ipv4Addr) -> Destination {
        let req = self.req;
        if !req.giaddr.is_unspecified() {
            Destination::Relay(req.giaddr)
        } else if !req.ciaddr.is_unspecified() {
            Destination::Unicast(req.ciaddr)
        } else if req.broadcast || yiaddr.is_unspecified() || req.htype != 1 || req.hlen != 6 {
            Destination::Broadcast
        } else {
            Destination::HwUnicast {
                ip: yiaddr,
                mac: self.chaddr6(),
            }
        }
    }
}

#[cfg(test)]
#[path = "v4_tests.rs"]
mod tests;
