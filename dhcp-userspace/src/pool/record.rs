//! The compact in-memory lease record and the arena holding long client keys.
//!
//! A [`Lease4`] is about 290 bytes because its [`ClientKey`] is stored inline at its maximum
//! size (RFC 2132 §9.14). Resident leases use [`Rec`] instead: 52 bytes, with the client key
//! inline when it is at most [`INLINE_KEY`] bytes and in a per-table [`KeyArena`] otherwise.
//!
//! Why 23 inline bytes: the key is the form byte plus the identifier. `01 + MAC` client ids
//! and htype+chaddr keys take 8 bytes; RFC 4361 node-specific ids (type 255, IAID, DUID)
//! take 16 (DUID-LL), 20 (DUID-LLT, or systemd's 14-byte DUID-EN) bytes; 23 is what
//! fills the record to a multiple of 4 after the fixed fields.

use std::net::Ipv4Addr;

use crate::lease::{BindingState, ClientKey, Lease4};

/// Longest client key (form byte included) stored inside the record.
pub(crate) const INLINE_KEY: usize = 23;

/// `Rec::flags`: the change still has to be sent to the partner.
const F_UPDATE_PENDING: u8 = 1;
/// `Rec::flags`: the key lives in the arena (`key[..4]` offset, little-endian).
const F_ARENA: u8 = 2;
/// `Rec::flags`: table-specific mark (offers: superseded, hidden from the client index).
pub(crate) const F_MARK: u8 = 4;

/// `Rec::state` of an unused slot (no `BindingState` is 0).
const STATE_VACANT: u8 = 0;

/// One resident lease, 52 bytes.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Rec {
    /// Address; in a vacant slot, the next vacant slot (`u32::MAX`: none).
    pub(crate) addr: u32,
    pub(crate) subnet_id: u32,
    pub(crate) expires: u32,
    pub(crate) cltt: u32,
    pub(crate) partner_expires: u32,
    pub(crate) chaddr: [u8; 6],
    /// `BindingState as u8`, or `STATE_VACANT`.
    pub(crate) state: u8,
    pub(crate) flags: u8,
    /// Key length minus one (keys are 1..=256 bytes).
    klen_m1: u8,
    /// Inline key bytes, or the arena offset.
    key: [u8; INLINE_KEY],
}

const _: () = assert!(size_of::<Rec>() == 52);

impl Rec {
    /// A vacant slot linking to `next`.
    pub(crate) fn vacant(next: u32) -> Self {
        Self {
            addr: next,
            subnet_id: 0,
            expires: 0,
            cltt: 0,
            partner_expires: 0,
            chaddr: [0; 6],
            state: STATE_VACANT,
            flags: 0,
            klen_m1: 0,
            key: [0; INLINE_KEY],
        }
    }

    /// Whether the slot holds a record.
    pub(crate) fn is_live(&self) -> bool {
        self.state != STATE_VACANT
    }

    /// The binding state of a live record.
    pub(crate) fn binding_state(&self) -> BindingState {
        // Only `set_fields` writes a live state, from a `BindingState`.
        BindingState::from_u8(self.state).unwrap_or(BindingState::Free)
    }

    pub(crate) fn set_binding_state(&mut self, s: BindingState) {
        self.state = s as u8;
    }

    /// Whether the change still has to be sent to the failover partner.
    pub(crate) fn update_pending(&self) -> bool {
        self.flags & F_UPDATE_PENDING != 0
    }

    /// Mark the record as still to be sent to the failover partner.
    pub(crate) fn set_update_pending(&mut self) {
        self.flags |= F_UPDATE_PENDING;
    }

    pub(crate) fn ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    fn key_len(&self) -> usize {
        usize::from(self.klen_m1) + 1
    }

    fn arena_off(&self) -> usize {
        u32::from_le_bytes([self.key[0], self.key[1], self.key[2], self.key[3]]) as usize
    }

    /// The client key bytes (form byte first).
    pub(crate) fn key<'a>(&'a self, arena: &'a KeyArena) -> &'a [u8] {
        let n = self.key_len();
        if self.flags & F_ARENA == 0 {
            &self.key[..n]
        } else {
            arena.get(self.arena_off(), n)
        }
    }

    /// Whether the record belongs to (`key`, `subnet_id`).
    pub(crate) fn is_client(&self, key: &[u8], subnet_id: u32, arena: &KeyArena) -> bool {
        self.subnet_id == subnet_id && self.key_len() == key.len() && self.key(arena) == key
    }

    /// Copy everything but the key from `l`.
    fn set_fields(&mut self, l: &Lease4) {
        self.addr = u32::from(l.addr);
        self.subnet_id = l.subnet_id;
        self.expires = l.expires;
        self.cltt = l.cltt;
        self.partner_expires = l.partner_expires;
        self.chaddr = l.chaddr;
        self.state = l.state as u8;
        self.flags = (self.flags & F_ARENA)
            | if l.update_pending {
                F_UPDATE_PENDING
            } else {
                0
            };
    }

    /// A new record for `l`, its key stored inline or in `arena`.
    pub(crate) fn new(l: &Lease4, arena: &mut KeyArena) -> Self {
        let mut r = Self::vacant(0);
        r.set_fields(l);
        r.store_key(l.client.as_bytes(), arena);
        r
    }

    /// Overwrite a live record with `l`, reusing its arena bytes when the key is unchanged.
    pub(crate) fn replace(&mut self, l: &Lease4, arena: &mut KeyArena) {
        let key = l.client.as_bytes();
        if self.key(arena) != key {
            self.free_key(arena);
            self.store_key(key, arena);
        }
        self.set_fields(l);
    }

    fn store_key(&mut self, key: &[u8], arena: &mut KeyArena) {
        debug_assert!((1..=256).contains(&key.len()));
        self.klen_m1 = (key.len() - 1) as u8;
        if key.len() <= INLINE_KEY {
            self.flags &= !F_ARENA;
            self.key = [0; INLINE_KEY];
            self.key[..key.len()].copy_from_slice(key);
        } else {
            self.flags |= F_ARENA;
            let off = arena.alloc(key);
            self.key[..4].copy_from_slice(&off.to_le_bytes());
        }
    }

    /// Return the record's arena bytes (if any) to the arena.
    pub(crate) fn free_key(&mut self, arena: &mut KeyArena) {
        if self.flags & F_ARENA != 0 {
            arena.free(self.arena_off(), self.key_len());
            self.flags &= !F_ARENA;
        }
    }

    /// The full lease.
    pub(crate) fn lease(&self, arena: &KeyArena) -> Lease4 {
        Lease4 {
            addr: self.ip(),
            state: self.binding_state(),
            // A stored key came from a valid `ClientKey`, so it always converts back.
            client: ClientKey::from_bytes(self.key(arena))
                .unwrap_or_else(|_| unreachable!("stored client key is 1..=256 bytes")),
            chaddr: self.chaddr,
            subnet_id: self.subnet_id,
            expires: self.expires,
            cltt: self.cltt,
            partner_expires: self.partner_expires,
            update_pending: self.flags & F_UPDATE_PENDING != 0,
        }
    }
}

/// Bytes of one arena size class.
const CHUNK: usize = 8;
/// Size classes: keys of `(c - 1) * 8 + 1 ..= c * 8` bytes use class `c` (1..=32).
const CLASSES: usize = 256 / CHUNK + 1;

/// Storage for client keys longer than [`INLINE_KEY`]. Space is handed out in multiples of
/// 8 bytes; freed space goes to a free list per size class and is reused by the next key of
/// that class, so churn never grows the arena beyond its peak use per class.
pub(crate) struct KeyArena {
    bytes: Vec<u8>,
    free: [Vec<u32>; CLASSES],
    /// Bytes in the free lists.
    garbage: usize,
}

impl Default for KeyArena {
    fn default() -> Self {
        Self {
            bytes: Vec::new(),
            free: std::array::from_fn(|_| Vec::new()),
            garbage: 0,
        }
    }
}

impl KeyArena {
    fn class(len: usize) -> usize {
        len.div_ceil(CHUNK)
    }

    fn get(&self, off: usize, len: usize) -> &[u8] {
        &self.bytes[off..off + len]
    }

    fn alloc(&mut self, key: &[u8]) -> u32 {
        let c = Self::class(key.len());
        let off = if let Some(off) = self.free[c].pop() {
            self.garbage -= c * CHUNK;
            off as usize
        } else {
            let off = self.bytes.len();
            assert!(
                u32::try_from(off + c * CHUNK).is_ok(),
                "client key arena beyond 4 GiB"
            );
            self.bytes.resize(off + c * CHUNK, 0);
            off
        };
        self.bytes[off..off + key.len()].copy_from_slice(key);
        off as u32
    }

    fn free(&mut self, off: usize, len: usize) {
        let c = Self::class(len);
        self.free[c].push(off as u32);
        self.garbage += c * CHUNK;
    }

    /// Bytes in use by live keys (including their rounding).
    #[cfg(test)]
    pub(crate) fn live_bytes(&self) -> usize {
        self.bytes.len() - self.garbage
    }

    /// Approximate heap bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.bytes.capacity() + self.free.iter().map(|f| f.capacity() * 4).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(key: &[u8]) -> Lease4 {
        Lease4 {
            addr: Ipv4Addr::new(10, 1, 2, 3),
            state: BindingState::Active,
            client: ClientKey::from_client_id(key).unwrap(),
            chaddr: [1, 2, 3, 4, 5, 6],
            subnet_id: 7,
            expires: 100,
            cltt: 50,
            partner_expires: 60,
            update_pending: true,
        }
    }

    #[test]
    fn inline_and_arena_roundtrip_and_reuse() {
        let mut arena = KeyArena::default();
        let short = lease(&[1, 2, 3, 4, 5, 6, 7]);
        let long = lease(&[9u8; 40]);
        let mut a = Rec::new(&short, &mut arena);
        let mut b = Rec::new(&long, &mut arena);
        assert_eq!(a.lease(&arena), short);
        assert_eq!(b.lease(&arena), long);
        assert_eq!(arena.live_bytes(), 48, "41-byte key rounded to 48");
        // Replacing the long key by another of the same class reuses the space.
        let long2 = lease(&[8u8; 44]);
        b.replace(&long2, &mut arena);
        assert_eq!(b.lease(&arena), long2);
        assert_eq!(arena.bytes.len(), 48);
        // Long to short frees the arena bytes; short to long allocates again.
        b.replace(&short, &mut arena);
        assert_eq!(arena.live_bytes(), 0);
        a.replace(&long, &mut arena);
        assert_eq!(a.lease(&arena), long);
        assert_eq!(arena.bytes.len(), 48);
        assert!(a.is_client(long.client.as_bytes(), 7, &arena));
        assert!(!a.is_client(long.client.as_bytes(), 8, &arena));
        assert!(!a.is_client(long2.client.as_bytes(), 7, &arena));
    }
}
