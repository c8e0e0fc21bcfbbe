//! The compact DHCPv6 record ([`Rec6`], 64 bytes) with its DUID arena, and [`Table6`]: slots
//! of records indexed by (kind, address) and by identity association.
//!
//! A [`Lease6`] holds its [`ClientKey`] inline at the maximum size (258 bytes). DUIDs are
//! short (RFC 8415 §11: DUID-LL 10 bytes, DUID-LLT 14, DUID-UUID 18, DUID-EN usually 12 to
//! 20), so the record keeps up to [`INLINE_KEY`] bytes inline, without the form byte when the
//! key is a DUID (the usual case), and longer keys in the [`Arena`].
//!
//! Index rules:
//! - `by_addr`: exactly one entry per live record, under (kind, address).
//! - `by_ia`: one entry per identity association (DUID, IAID, kind, subnet) with live
//!   records, pointing at the most recently written one; the others follow through `next`,
//!   newest first. An IA holds a handful of records, so unlinking walks its list.

use std::net::Ipv6Addr;

use crate::lease::{BindingState, ClientKey, IaKind, Lease6, MAX_CLIENT_KEY};
use crate::pool::index::Index;

/// No slot.
pub(super) const NONE: u32 = u32::MAX;

/// Longest key body (key without the DUID form byte) stored inside the record.
pub(super) const INLINE_KEY: usize = 16;

/// `Rec6::flags`: a delegated prefix (else an address).
const F_PD: u8 = 1;
/// `Rec6::flags`: the change still has to be sent to the partner.
const F_UPDATE_PENDING: u8 = 2;
/// `Rec6::flags`: the key body lives in the arena (`key[..4]`: offset, little-endian).
const F_ARENA: u8 = 4;
/// `Rec6::flags`: the key's form byte is [`ClientKey::FORM_DUID`] and is not stored.
const F_DUID: u8 = 8;

/// `Rec6::state` of a vacant slot (no `BindingState` is 0).
const STATE_VACANT: u8 = 0;

/// 64-bit finaliser (the `MurmurHash3` fmix64 constants).
pub(super) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn kind_flag(kind: IaKind) -> u8 {
    match kind {
        IaKind::Na => 0,
        IaKind::Pd => F_PD,
    }
}

/// Index hash of (kind, address).
fn addr_hash(kind: IaKind, a: u128) -> u32 {
    let hi = (a >> 64) as u64 ^ u64::from(kind_flag(kind));
    mix64(a as u64 ^ mix64(hi)) as u32
}

/// Index hash of an identity association; `head` and `body` are the key bytes in order.
fn ia_hash(head: &[u8], body: &[u8], iaid: u32, kind: IaKind, subnet_id: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in head.iter().chain(body) {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let ia = (u64::from(iaid) << 32 | u64::from(subnet_id)) ^ u64::from(kind_flag(kind)) << 31;
    mix64(h ^ mix64(ia)) as u32
}

/// Split a client key into (flag, stored body).
fn split_key(key: &[u8]) -> (u8, &[u8]) {
    if key.first() == Some(&ClientKey::FORM_DUID) {
        (F_DUID, &key[1..])
    } else {
        (0, key)
    }
}

/// One resident DHCPv6 lease (or offer), 64 bytes.
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct Rec6 {
    addr: [u8; 16],
    iaid: u32,
    subnet_id: u32,
    preferred_until: u32,
    pub(super) expires: u32,
    cltt: u32,
    pub(super) partner_expires: u32,
    /// Next (older) record of the same IA, or in a vacant slot the next vacant slot.
    next: u32,
    prefix_len: u8,
    /// `BindingState as u8`, or `STATE_VACANT`.
    state: u8,
    flags: u8,
    /// Length of the full key (form byte included) minus one: 0..=255.
    klen_m1: u8,
    /// Inline key body, or the arena offset.
    key: [u8; INLINE_KEY],
}

const _: () = assert!(size_of::<Rec6>() == 64);

impl Rec6 {
    fn vacant(next: u32) -> Self {
        Self {
            addr: [0; 16],
            iaid: 0,
            subnet_id: 0,
            preferred_until: 0,
            expires: 0,
            cltt: 0,
            partner_expires: 0,
            next,
            prefix_len: 0,
            state: STATE_VACANT,
            flags: 0,
            klen_m1: 0,
            key: [0; INLINE_KEY],
        }
    }

    pub(super) fn is_live(&self) -> bool {
        self.state != STATE_VACANT
    }

    pub(super) fn binding_state(&self) -> BindingState {
        // Only `set_fields` writes a live state, from a `BindingState`.
        BindingState::from_u8(self.state).unwrap_or(BindingState::Free)
    }

    pub(super) fn set_binding_state(&mut self, s: BindingState) {
        self.state = s as u8;
    }

    /// Whether the record's change still has to be sent to the failover partner.
    pub(super) fn update_pending(&self) -> bool {
        self.flags & F_UPDATE_PENDING != 0
    }

    /// Mark the record's change as still to be sent to the failover partner.
    pub(super) fn set_update_pending(&mut self) {
        self.flags |= F_UPDATE_PENDING;
    }

    fn kind(&self) -> IaKind {
        if self.flags & F_PD == 0 {
            IaKind::Na
        } else {
            IaKind::Pd
        }
    }

    fn addr(&self) -> u128 {
        u128::from_be_bytes(self.addr)
    }

    fn body_len(&self) -> usize {
        usize::from(self.klen_m1) + 1 - usize::from(self.flags & F_DUID != 0)
    }

    fn arena_off(&self) -> usize {
        u32::from_le_bytes([self.key[0], self.key[1], self.key[2], self.key[3]]) as usize
    }

    fn body<'a>(&'a self, arena: &'a Arena) -> &'a [u8] {
        let n = self.body_len();
        if self.flags & F_ARENA == 0 {
            &self.key[..n]
        } else {
            arena.get(self.arena_off(), n)
        }
    }

    fn head(&self) -> &'static [u8] {
        if self.flags & F_DUID == 0 {
            &[]
        } else {
            &[ClientKey::FORM_DUID]
        }
    }

    fn ia_hash(&self, arena: &Arena) -> u32 {
        ia_hash(
            self.head(),
            self.body(arena),
            self.iaid,
            self.kind(),
            self.subnet_id,
        )
    }

    /// Whether the record belongs to the IA (`key`, `iaid`, `kind`, `subnet_id`).
    fn is_ia(&self, key: &[u8], iaid: u32, kind: IaKind, subnet_id: u32, arena: &Arena) -> bool {
        let (f, body) = split_key(key);
        self.iaid == iaid
            && self.subnet_id == subnet_id
            && self.flags & (F_PD | F_DUID) == kind_flag(kind) | f
            && usize::from(self.klen_m1) + 1 == key.len()
            && self.body(arena) == body
    }

    /// Whether two records belong to the same IA.
    fn same_ia(&self, o: &Self, arena: &Arena) -> bool {
        self.iaid == o.iaid
            && self.subnet_id == o.subnet_id
            && self.flags & (F_PD | F_DUID) == o.flags & (F_PD | F_DUID)
            && self.klen_m1 == o.klen_m1
            && self.body(arena) == o.body(arena)
    }

    /// Copy everything but the key and the IA link from `l`.
    fn set_fields(&mut self, l: &Lease6) {
        self.addr = l.addr.octets();
        self.iaid = l.iaid;
        self.subnet_id = l.subnet_id;
        self.preferred_until = l.preferred_until;
        self.expires = l.expires;
        self.cltt = l.cltt;
        self.partner_expires = l.partner_expires;
        self.prefix_len = l.prefix_len;
        self.state = l.state as u8;
        self.flags = (self.flags & (F_ARENA | F_DUID))
            | kind_flag(l.kind)
            | if l.update_pending {
                F_UPDATE_PENDING
            } else {
                0
            };
    }

    fn new(l: &Lease6, arena: &mut Arena) -> Self {
        let mut r = Self::vacant(NONE);
        r.store_key(l.client.as_bytes(), arena);
        r.set_fields(l);
        r
    }

    /// Overwrite a live record with `l`, reusing its arena bytes when the key is unchanged.
    fn replace(&mut self, l: &Lease6, arena: &mut Arena) {
        let key = l.client.as_bytes();
        let (f, body) = split_key(key);
        if self.flags & F_DUID != f || self.body(arena) != body {
            self.free_key(arena);
            self.store_key(key, arena);
        }
        self.set_fields(l);
    }

    fn store_key(&mut self, key: &[u8], arena: &mut Arena) {
        debug_assert!((1..=MAX_CLIENT_KEY + 1).contains(&key.len()));
        let (f, body) = split_key(key);
        self.klen_m1 = (key.len() - 1) as u8;
        self.flags = (self.flags & !(F_DUID | F_ARENA)) | f;
        self.key = [0; INLINE_KEY];
        if body.len() <= INLINE_KEY {
            self.key[..body.len()].copy_from_slice(body);
        } else {
            self.flags |= F_ARENA;
            let off = arena.alloc(body);
            self.key[..4].copy_from_slice(&off.to_le_bytes());
        }
    }

    fn free_key(&mut self, arena: &mut Arena) {
        if self.flags & F_ARENA != 0 {
            arena.free(self.arena_off(), self.body_len());
            self.flags &= !F_ARENA;
        }
    }

    fn lease(&self, arena: &Arena) -> Lease6 {
        let mut buf = [0u8; MAX_CLIENT_KEY + 1];
        let head = self.head();
        let body = self.body(arena);
        buf[..head.len()].copy_from_slice(head);
        buf[head.len()..head.len() + body.len()].copy_from_slice(body);
        let client = ClientKey::from_bytes(&buf[..head.len() + body.len()])
            .unwrap_or_else(|_| unreachable!("stored client key is 1..=256 bytes"));
        Lease6 {
            kind: self.kind(),
            addr: Ipv6Addr::from(self.addr),
            prefix_len: self.prefix_len,
            state: self.binding_state(),
            client,
            iaid: self.iaid,
            subnet_id: self.subnet_id,
            preferred_until: self.preferred_until,
            expires: self.expires,
            cltt: self.cltt,
            partner_expires: self.partner_expires,
            update_pending: self.flags & F_UPDATE_PENDING != 0,
        }
    }
}

/// Bytes of one arena size class.
const CHUNK: usize = 8;
/// Size classes: bodies of `(c - 1) * 8 + 1 ..= c * 8` bytes use class `c`.
const CLASSES: usize = (MAX_CLIENT_KEY + 1) / CHUNK + 1;

/// Storage for key bodies longer than [`INLINE_KEY`], in multiples of 8 bytes, with a free
/// list per size class so churn never grows it beyond its peak use per class.
pub(super) struct Arena {
    bytes: Vec<u8>,
    free: [Vec<u32>; CLASSES],
}

impl Default for Arena {
    fn default() -> Self {
        Self {
            bytes: Vec::new(),
            free: std::array::from_fn(|_| Vec::new()),
        }
    }
}

impl Arena {
    fn get(&self, off: usize, len: usize) -> &[u8] {
        &self.bytes[off..off + len]
    }

    fn alloc(&mut self, body: &[u8]) -> u32 {
        let c = body.len().div_ceil(CHUNK);
        let off = if let Some(off) = self.free[c].pop() {
            off as usize
        } else {
            let off = self.bytes.len();
            assert!(
                u32::try_from(off + c * CHUNK).is_ok(),
                "DUID arena beyond 4 GiB"
            );
            self.bytes.resize(off + c * CHUNK, 0);
            off
        };
        self.bytes[off..off + body.len()].copy_from_slice(body);
        off as u32
    }

    fn free(&mut self, off: usize, len: usize) {
        self.free[len.div_ceil(CHUNK)].push(off as u32);
    }

    fn memory_bytes(&self) -> usize {
        self.bytes.capacity() + self.free.iter().map(|f| f.capacity() * 4).sum::<usize>()
    }
}

/// Records plus their two indexes and the arena.
pub(super) struct Table6 {
    recs: Vec<Rec6>,
    /// Head of the vacant-slot list.
    vacant: u32,
    live: usize,
    by_addr: Index,
    by_ia: Index,
    arena: Arena,
}

impl Default for Table6 {
    fn default() -> Self {
        Self {
            recs: Vec::new(),
            vacant: NONE,
            live: 0,
            by_addr: Index::default(),
            by_ia: Index::default(),
            arena: Arena::default(),
        }
    }
}

impl Table6 {
    pub(super) fn reserve(&mut self, n: usize) {
        self.recs.reserve(n);
        self.by_addr.reserve(n);
        self.by_ia.reserve(n);
    }

    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Range of valid slot numbers.
    pub(super) fn slots(&self) -> usize {
        self.recs.len()
    }

    pub(super) fn rec(&self, slot: u32) -> &Rec6 {
        &self.recs[slot as usize]
    }

    /// Mutable record: the caller must not change what the indexes hash (address, kind,
    /// key, IAID, subnet); state and times are fine.
    pub(super) fn rec_mut(&mut self, slot: u32) -> &mut Rec6 {
        &mut self.recs[slot as usize]
    }

    pub(super) fn lease(&self, slot: u32) -> Lease6 {
        self.rec(slot).lease(&self.arena)
    }

    pub(super) fn slot_of(&self, kind: IaKind, addr: u128) -> Option<u32> {
        let recs = &self.recs;
        let f = kind_flag(kind);
        self.by_addr.find(addr_hash(kind, addr), |s| {
            let r = &recs[s as usize];
            r.addr() == addr && r.flags & F_PD == f
        })
    }

    /// Newest record of the IA.
    pub(super) fn ia_head(
        &self,
        key: &[u8],
        iaid: u32,
        kind: IaKind,
        subnet_id: u32,
    ) -> Option<u32> {
        let (f, body) = split_key(key);
        let head: &[u8] = if f == 0 { &[] } else { &[ClientKey::FORM_DUID] };
        let h = ia_hash(head, body, iaid, kind, subnet_id);
        let Self { recs, arena, .. } = self;
        self.by_ia.find(h, |s| {
            recs[s as usize].is_ia(key, iaid, kind, subnet_id, arena)
        })
    }

    /// The slots of an IA's list, from `head`, newest first.
    pub(super) fn ia_list(&self, head: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(head, |&s| {
            Some(self.recs[s as usize].next).filter(|&n| n != NONE)
        })
    }

    /// Insert or replace the record of (`l.kind`, `l.addr`); it becomes its IA's newest.
    pub(super) fn upsert(&mut self, l: &Lease6) -> u32 {
        let a = u128::from(l.addr);
        if let Some(s) = self.slot_of(l.kind, a) {
            self.unlink_ia(s);
            let Self { recs, arena, .. } = self;
            recs[s as usize].replace(l, arena);
            self.link_ia(s);
            s
        } else {
            let rec = Rec6::new(l, &mut self.arena);
            let s = self.alloc_slot(rec);
            self.by_addr.insert_unique(addr_hash(l.kind, a), s);
            self.link_ia(s);
            s
        }
    }

    /// Make `slot` the head of its IA's list.
    fn link_ia(&mut self, slot: u32) {
        let Self {
            recs, by_ia, arena, ..
        } = self;
        let r = recs[slot as usize];
        let old = by_ia.set(r.ia_hash(arena), slot, |s| {
            recs[s as usize].same_ia(&r, arena)
        });
        recs[slot as usize].next = old.unwrap_or(NONE);
    }

    /// Take `slot` out of its IA's list.
    fn unlink_ia(&mut self, slot: u32) {
        let Self {
            recs, by_ia, arena, ..
        } = self;
        let r = recs[slot as usize];
        let h = r.ia_hash(arena);
        let head = by_ia.find(h, |s| recs[s as usize].same_ia(&r, arena));
        let Some(head) = head else {
            debug_assert!(false, "live record {slot} not in its IA list");
            return;
        };
        if head == slot {
            if r.next == NONE {
                by_ia.remove(h, |s| s == slot);
            } else {
                by_ia.set(h, r.next, |s| s == slot);
            }
        } else {
            let mut p = head;
            while recs[p as usize].next != slot {
                p = recs[p as usize].next;
                if p == NONE {
                    debug_assert!(false, "record {slot} missing from its IA list");
                    return;
                }
            }
            recs[p as usize].next = r.next;
        }
        recs[slot as usize].next = NONE;
    }

    pub(super) fn remove_slot(&mut self, slot: u32) -> Lease6 {
        let lease = self.lease(slot);
        self.unlink_ia(slot);
        let r = self.recs[slot as usize];
        self.by_addr
            .remove(addr_hash(r.kind(), r.addr()), |s| s == slot);
        let Self { recs, arena, .. } = self;
        recs[slot as usize].free_key(arena);
        recs[slot as usize] = Rec6::vacant(self.vacant);
        self.vacant = slot;
        self.live -= 1;
        lease
    }

    pub(super) fn remove(&mut self, kind: IaKind, addr: u128) -> Option<Lease6> {
        let s = self.slot_of(kind, addr)?;
        Some(self.remove_slot(s))
    }

    fn alloc_slot(&mut self, rec: Rec6) -> u32 {
        self.live += 1;
        if self.vacant == NONE {
            let slot = u32::try_from(self.recs.len())
                .ok()
                .filter(|&s| s != NONE)
                .unwrap_or_else(|| panic!("more than {} records in one table", NONE - 1));
            self.recs.push(rec);
            slot
        } else {
            let slot = self.vacant;
            self.vacant = self.recs[slot as usize].next;
            self.recs[slot as usize] = rec;
            slot
        }
    }

    /// Slots of the live records.
    pub(super) fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_live())
            .map(|(s, _)| s as u32)
    }

    /// Approximate heap bytes (capacity based).
    pub(super) fn memory_bytes(&self) -> usize {
        self.recs.capacity() * size_of::<Rec6>()
            + self.by_addr.memory_bytes()
            + self.by_ia.memory_bytes()
            + self.arena.memory_bytes()
    }

    /// Check every index invariant of the module documentation (tests only).
    #[cfg(test)]
    pub(super) fn check(&self) {
        let live: Vec<u32> = self.live_slots().collect();
        assert_eq!(live.len(), self.live);
        assert_eq!(self.by_addr.len(), self.live);
        self.by_addr.check();
        self.by_ia.check();
        let mut listed = 0;
        for &s in &live {
            let r = self.rec(s);
            assert_eq!(self.slot_of(r.kind(), r.addr()), Some(s));
            let l = self.lease(s);
            let head = self.ia_head(l.client.as_bytes(), l.iaid, l.kind, l.subnet_id);
            assert!(
                self.ia_list(head).any(|x| x == s),
                "slot {s} not in its IA list"
            );
        }
        for s in self.by_ia.slots() {
            let h = self.rec(s);
            for x in self.ia_list(Some(s)) {
                assert!(self.rec(x).is_live() && self.rec(x).same_ia(h, &self.arena));
                listed += 1;
            }
        }
        assert_eq!(listed, self.live, "IA lists cover every record once");
        let mut n = 0;
        let mut v = self.vacant;
        while v != NONE {
            assert!(!self.rec(v).is_live());
            v = self.rec(v).next;
            n += 1;
        }
        assert_eq!(n + self.live, self.recs.len());
    }
}
