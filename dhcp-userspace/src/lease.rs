//! The lease record shared by the pools, the write-ahead log and the protocol engine.
//!
//! A lease record carries everything failover (draft-ietf-dhc-failover-12 §5.2, §7.1) will
//! need: binding state, client identity, expiry, client last transaction time (CLTT), the
//! expiry the partner has acknowledged and whether an update to the partner is pending.
//!
//! Its durable form is a fixed little-endian layout, see [`Lease4::encode`]. The first
//! [`KEY_LEN`] bytes of every encoded record are its *key*: the WAL and the snapshot
//! compaction keep only the newest record per key.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest client identifier we store (RFC 2132 §9.14: an option is at most 255 bytes,
/// and RFC 3396 concatenation could make it longer; we refuse anything longer than this).
pub const MAX_CLIENT_KEY: usize = 255;

/// Length of the key prefix of an encoded record: one kind byte and sixteen address bytes.
pub const KEY_LEN: usize = 17;

/// Record kind byte of a DHCPv4 lease.
pub const KIND_V4: u8 = 4;

/// Record kind byte of a DHCPv6 non-temporary address lease (IA_NA, RFC 8415 §21.4).
pub const KIND_V6_NA: u8 = 6;

/// Record kind byte of a DHCPv6 delegated prefix lease (IA_PD, RFC 8415 §21.21).
pub const KIND_V6_PD: u8 = 7;

/// Errors decoding a lease record from its durable form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseError {
    /// The record is shorter than its fixed layout says.
    #[error("lease record truncated: {len} bytes, need {need}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// The kind byte is not one this version knows.
    #[error("unknown lease record kind {0}")]
    UnknownKind(u8),
    /// The binding-state byte is not a known state.
    #[error("unknown binding state {0}")]
    UnknownState(u8),
    /// The client key is longer than [`MAX_CLIENT_KEY`].
    #[error("client key of {0} bytes is too long")]
    KeyTooLong(usize),
}

/// Binding state of a lease, as draft-ietf-dhc-failover-12 §5.2.1 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingState {
    /// Available for allocation by the primary (or by a lone server).
    Free = 1,
    /// Bound to a client until its expiry.
    Active = 2,
    /// The lease time ran out; the address returns to free after the failover rules allow.
    Expired = 3,
    /// The client released it.
    Released = 4,
    /// Declined by a client or found in use: quarantined until its expiry (probation end).
    Abandoned = 5,
    /// Reset by an operator.
    Reset = 6,
    /// Available for allocation by the failover secondary.
    Backup = 7,
}

impl BindingState {
    /// Decode from the durable byte.
    pub fn from_u8(v: u8) -> Result<Self, LeaseError> {
        Ok(match v {
            1 => Self::Free,
            2 => Self::Active,
            3 => Self::Expired,
            4 => Self::Released,
            5 => Self::Abandoned,
            6 => Self::Reset,
            7 => Self::Backup,
            other => return Err(LeaseError::UnknownState(other)),
        })
    }

    /// The name used in JSON output and logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Released => "released",
            Self::Abandoned => "abandoned",
            Self::Reset => "reset",
            Self::Backup => "backup",
        }
    }

    /// Whether the address is held by (or quarantined for) someone and must not be allocated.
    #[must_use]
    pub fn holds_address(self) -> bool {
        matches!(self, Self::Active | Self::Abandoned)
    }
}

/// The identity of a DHCPv4 client: the client identifier (option 61) when the client sent
/// one, else the hardware type followed by `chaddr` (RFC 2131 §4.2).
///
/// Stored inline (no allocation), compared by bytes. The first byte of [`Self::as_bytes`]
/// says which form it is: [`ClientKey::FORM_CLIENT_ID`] or [`ClientKey::FORM_HW`].
#[derive(Clone, Copy)]
pub struct ClientKey {
    len: u16,
    bytes: [u8; MAX_CLIENT_KEY + 1],
}

impl ClientKey {
    /// Form byte of a key made from option 61.
    pub const FORM_CLIENT_ID: u8 = 0;
    /// Form byte of a key made from htype + chaddr.
    pub const FORM_HW: u8 = 1;
    /// Form byte of a DHCPv6 client's DUID (RFC 8415 §11).
    pub const FORM_DUID: u8 = 2;

    /// Key from a DHCPv6 client identifier option's value (the DUID).
    pub fn from_duid(duid: &[u8]) -> Result<Self, LeaseError> {
        Self::from_parts(Self::FORM_DUID, duid)
    }

    /// Key from a client identifier option's value.
    pub fn from_client_id(id: &[u8]) -> Result<Self, LeaseError> {
        Self::from_parts(Self::FORM_CLIENT_ID, id)
    }

    /// Key from hardware type and the first `hlen` bytes of chaddr.
    pub fn from_hw(htype: u8, chaddr: &[u8]) -> Result<Self, LeaseError> {
        let mut tmp = [0u8; 17];
        let n = chaddr.len().min(16);
        tmp[0] = htype;
        tmp[1..=n].copy_from_slice(&chaddr[..n]);
        Self::from_parts(Self::FORM_HW, &tmp[..=n])
    }

    /// Rebuild a key from [`Self::as_bytes`] output.
    pub fn from_bytes(b: &[u8]) -> Result<Self, LeaseError> {
        if b.is_empty() || b.len() > MAX_CLIENT_KEY + 1 {
            return Err(LeaseError::KeyTooLong(b.len()));
        }
        let mut bytes = [0u8; MAX_CLIENT_KEY + 1];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Self {
            len: b.len() as u16,
            bytes,
        })
    }

    fn from_parts(form: u8, body: &[u8]) -> Result<Self, LeaseError> {
        if body.len() > MAX_CLIENT_KEY {
            return Err(LeaseError::KeyTooLong(body.len()));
        }
        let mut bytes = [0u8; MAX_CLIENT_KEY + 1];
        bytes[0] = form;
        bytes[1..=body.len()].copy_from_slice(body);
        Ok(Self {
            len: body.len() as u16 + 1,
            bytes,
        })
    }

    /// Form byte followed by the identifier bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// A 64-bit hash of the key (FNV-1a folded with a multiply-xorshift finaliser): stable
    /// across processes, used to pick the owning worker and as the index hash.
    #[must_use]
    pub fn hash64(&self) -> u64 {
        hash_bytes(self.as_bytes())
    }

    /// The worker (shard) that owns this client among `workers` workers.
    #[must_use]
    pub fn shard(&self, workers: usize) -> usize {
        shard_of(self.hash64(), workers)
    }
}

/// Stable 64-bit hash of a byte string (FNV-1a with a final avalanche).
#[must_use]
pub fn hash_bytes(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// The shard owning a hash among `workers` shards (multiply-shift, no division bias).
#[must_use]
pub fn shard_of(hash: u64, workers: usize) -> usize {
    ((u128::from(hash >> 32) * workers as u128) >> 32) as usize
}

impl PartialEq for ClientKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for ClientKey {}

impl std::hash::Hash for ClientKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey({self})")
    }
}

impl fmt::Display for ClientKey {
    /// `id:01:aa:bb…` for client identifiers, `hw:01:aa:bb…` for htype+chaddr,
    /// `duid:00:01:…` for DHCPv6 DUIDs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.as_bytes();
        f.write_str(match b[0] {
            Self::FORM_CLIENT_ID => "id",
            Self::FORM_DUID => "duid",
            _ => "hw",
        })?;
        for x in &b[1..] {
            write!(f, ":{x:02x}")?;
        }
        Ok(())
    }
}

/// One DHCPv4 lease record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease4 {
    /// The leased address; the record's key.
    pub addr: Ipv4Addr,
    /// Binding state.
    pub state: BindingState,
    /// Who holds (or last held) the address.
    pub client: ClientKey,
    /// Hardware address (chaddr, first six bytes; Ethernet) for logs and the control API.
    pub chaddr: [u8; 6],
    /// Subnet id from the configuration.
    pub subnet_id: u32,
    /// Unix seconds at which the binding ends (for ABANDONED: end of probation).
    pub expires: u32,
    /// Client last transaction time, unix seconds (draft-12 §7.1.2 CLTT).
    pub cltt: u32,
    /// Expiry the failover partner has acknowledged, unix seconds (0: none).
    pub partner_expires: u32,
    /// Whether this change still has to be sent to the partner.
    pub update_pending: bool,
}

impl Lease4 {
    /// Bytes before the variable client key in the durable form.
    pub const FIXED_LEN: usize = KEY_LEN + 1 + 6 + 4 + 4 + 4 + 4 + 1 + 2;

    /// Largest durable size.
    pub const MAX_ENCODED_LEN: usize = Self::FIXED_LEN + MAX_CLIENT_KEY + 1;

    /// The durable key of the record for `addr`.
    #[must_use]
    pub fn key_of(addr: Ipv4Addr) -> [u8; KEY_LEN] {
        let mut k = [0u8; KEY_LEN];
        k[0] = KIND_V4;
        k[13..17].copy_from_slice(&addr.octets());
        k
    }

    /// Length of [`Self::encode`]'s output.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        Self::FIXED_LEN + self.client.as_bytes().len()
    }

    /// Write the durable form into `out` (at least [`Self::encoded_len`] bytes) and return
    /// its length. Layout, little-endian: key (17) · state (1) · chaddr (6) · subnet id (4) ·
    /// expires (4) · cltt (4) · partner expires (4) · flags (1) · key length (2) · key.
    ///
    /// # Panics
    /// When `out` is shorter than [`Self::encoded_len`] (a caller bug, never input).
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let key = self.client.as_bytes();
        let n = Self::FIXED_LEN + key.len();
        let o = &mut out[..n];
        o[..KEY_LEN].copy_from_slice(&Self::key_of(self.addr));
        o[17] = self.state as u8;
        o[18..24].copy_from_slice(&self.chaddr);
        o[24..28].copy_from_slice(&self.subnet_id.to_le_bytes());
        o[28..32].copy_from_slice(&self.expires.to_le_bytes());
        o[32..36].copy_from_slice(&self.cltt.to_le_bytes());
        o[36..40].copy_from_slice(&self.partner_expires.to_le_bytes());
        o[40] = u8::from(self.update_pending);
        o[41..43].copy_from_slice(&(key.len() as u16).to_le_bytes());
        o[43..].copy_from_slice(key);
        n
    }

    /// Read a record written by [`Self::encode`].
    pub fn decode(b: &[u8]) -> Result<Self, LeaseError> {
        if b.len() < Self::FIXED_LEN {
            return Err(LeaseError::Truncated {
                len: b.len(),
                need: Self::FIXED_LEN,
            });
        }
        if b[0] != KIND_V4 {
            return Err(LeaseError::UnknownKind(b[0]));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let klen = usize::from(u16::from_le_bytes([b[41], b[42]]));
        let need = Self::FIXED_LEN + klen;
        if b.len() < need {
            return Err(LeaseError::Truncated { len: b.len(), need });
        }
        let mut chaddr = [0u8; 6];
        chaddr.copy_from_slice(&b[18..24]);
        Ok(Self {
            addr: Ipv4Addr::new(b[13], b[14], b[15], b[16]),
            state: BindingState::from_u8(b[17])?,
            client: ClientKey::from_bytes(&b[43..need])?,
            chaddr,
            subnet_id: u32_at(24),
            expires: u32_at(28),
            cltt: u32_at(32),
            partner_expires: u32_at(36),
            update_pending: b[40] & 1 == 1,
        })
    }

    /// Whether a record in this state carries no information worth keeping in a snapshot
    /// (the address is simply free again).
    #[must_use]
    pub fn is_tombstone(&self) -> bool {
        self.state == BindingState::Free && !self.update_pending
    }
}

/// What a DHCPv6 lease binds: an address (IA_NA) or a delegated prefix (IA_PD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IaKind {
    /// A non-temporary address (RFC 8415 §21.4).
    Na,
    /// A delegated prefix (RFC 8415 §21.21).
    Pd,
}

impl IaKind {
    /// The record kind byte.
    #[must_use]
    pub fn record_kind(self) -> u8 {
        match self {
            Self::Na => KIND_V6_NA,
            Self::Pd => KIND_V6_PD,
        }
    }
}

/// One DHCPv6 lease record: an address or a delegated prefix bound to (DUID, IAID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease6 {
    /// Address (IA_NA) or prefix (IA_PD).
    pub kind: IaKind,
    /// The address, or the prefix's first address; with [`Self::prefix_len`] the record's key.
    pub addr: Ipv6Addr,
    /// 128 for an address, the delegated length for a prefix.
    pub prefix_len: u8,
    /// Binding state.
    pub state: BindingState,
    /// The client's DUID ([`ClientKey::from_duid`]).
    pub client: ClientKey,
    /// The identity association the lease belongs to (RFC 8415 §12).
    pub iaid: u32,
    /// Subnet id from the configuration.
    pub subnet_id: u32,
    /// Unix seconds at which the preferred lifetime ends.
    pub preferred_until: u32,
    /// Unix seconds at which the valid lifetime ends (for ABANDONED: end of probation).
    pub expires: u32,
    /// Client last transaction time, unix seconds.
    pub cltt: u32,
    /// Valid-lifetime end the failover partner has acknowledged (RFC 8156 §4.2), 0: none.
    pub partner_expires: u32,
    /// Whether this change still has to be sent to the partner.
    pub update_pending: bool,
}

impl Lease6 {
    /// Bytes before the variable client key in the durable form.
    pub const FIXED_LEN: usize = KEY_LEN + 1 + 1 + 4 + 4 + 4 + 4 + 4 + 4 + 1 + 2;

    /// Largest durable size.
    pub const MAX_ENCODED_LEN: usize = Self::FIXED_LEN + MAX_CLIENT_KEY + 1;

    /// The durable key of the record for an address or prefix.
    #[must_use]
    pub fn key_of(kind: IaKind, addr: Ipv6Addr) -> [u8; KEY_LEN] {
        let mut k = [0u8; KEY_LEN];
        k[0] = kind.record_kind();
        k[1..17].copy_from_slice(&addr.octets());
        k
    }

    /// Length of [`Self::encode`]'s output.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        Self::FIXED_LEN + self.client.as_bytes().len()
    }

    /// Write the durable form into `out` and return its length. Layout, little-endian:
    /// key (17) · prefix length (1) · state (1) · IAID (4) · subnet id (4) · preferred until
    /// (4) · expires (4) · cltt (4) · partner expires (4) · flags (1) · key length (2) · key.
    ///
    /// # Panics
    /// When `out` is shorter than [`Self::encoded_len`] (a caller bug, never input).
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let key = self.client.as_bytes();
        let n = Self::FIXED_LEN + key.len();
        let o = &mut out[..n];
        o[..KEY_LEN].copy_from_slice(&Self::key_of(self.kind, self.addr));
        o[17] = self.prefix_len;
        o[18] = self.state as u8;
        o[19..23].copy_from_slice(&self.iaid.to_le_bytes());
        o[23..27].copy_from_slice(&self.subnet_id.to_le_bytes());
        o[27..31].copy_from_slice(&self.preferred_until.to_le_bytes());
        o[31..35].copy_from_slice(&self.expires.to_le_bytes());
        o[35..39].copy_from_slice(&self.cltt.to_le_bytes());
        o[39..43].copy_from_slice(&self.partner_expires.to_le_bytes());
        o[43] = u8::from(self.update_pending);
        o[44..46].copy_from_slice(&(key.len() as u16).to_le_bytes());
        o[46..].copy_from_slice(key);
        n
    }

    /// Read a record written by [`Self::encode`].
    pub fn decode(b: &[u8]) -> Result<Self, LeaseError> {
        if b.len() < Self::FIXED_LEN {
            return Err(LeaseError::Truncated {
                len: b.len(),
                need: Self::FIXED_LEN,
            });
        }
        let kind = match b[0] {
            KIND_V6_NA => IaKind::Na,
            KIND_V6_PD => IaKind::Pd,
            other => return Err(LeaseError::UnknownKind(other)),
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let klen = usize::from(u16::from_le_bytes([b[44], b[45]]));
        let need = Self::FIXED_LEN + klen;
        if b.len() < need {
            return Err(LeaseError::Truncated { len: b.len(), need });
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[1..17]);
        Ok(Self {
            kind,
            addr: Ipv6Addr::from(a),
            prefix_len: b[17],
            state: BindingState::from_u8(b[18])?,
            iaid: u32_at(19),
            subnet_id: u32_at(23),
            preferred_until: u32_at(27),
            expires: u32_at(31),
            cltt: u32_at(35),
            partner_expires: u32_at(39),
            update_pending: b[43] & 1 == 1,
            client: ClientKey::from_bytes(&b[46..need])?,
        })
    }

    /// Whether the record carries nothing worth keeping in a snapshot.
    #[must_use]
    pub fn is_tombstone(&self) -> bool {
        self.state == BindingState::Free && !self.update_pending
    }
}

/// A decoded record of any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyLease {
    /// DHCPv4.
    V4(Lease4),
    /// DHCPv6 (address or prefix).
    V6(Lease6),
}

/// Decode a record of any kind by its kind byte.
pub fn decode_any(b: &[u8]) -> Result<AnyLease, LeaseError> {
    match b.first() {
        Some(&KIND_V4) => Lease4::decode(b).map(AnyLease::V4),
        Some(&(KIND_V6_NA | KIND_V6_PD)) => Lease6::decode(b).map(AnyLease::V6),
        Some(&other) => Err(LeaseError::UnknownKind(other)),
        None => Err(LeaseError::Truncated { len: 0, need: 1 }),
    }
}

/// Whether an encoded record (any kind) is a tombstone that compaction may drop.
#[must_use]
pub fn encoded_is_tombstone(b: &[u8]) -> bool {
    match decode_any(b) {
        Ok(AnyLease::V4(l)) => l.is_tombstone(),
        Ok(AnyLease::V6(l)) => l.is_tombstone(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let l = Lease4 {
            addr: Ipv4Addr::new(10, 0, 0, 7),
            state: BindingState::Active,
            client: ClientKey::from_client_id(&[1, 2, 3, 4, 5, 6, 7]).unwrap(),
            chaddr: [2, 3, 4, 5, 6, 7],
            subnet_id: 9,
            expires: 1_000_000,
            cltt: 999_000,
            partner_expires: 0,
            update_pending: true,
        };
        let mut buf = [0u8; Lease4::MAX_ENCODED_LEN];
        let n = l.encode(&mut buf);
        assert_eq!(n, l.encoded_len());
        assert_eq!(Lease4::decode(&buf[..n]).unwrap(), l);
        assert_eq!(&buf[..KEY_LEN], &Lease4::key_of(l.addr));
        assert!(matches!(
            Lease4::decode(&buf[..n - 1]),
            Err(LeaseError::Truncated { .. })
        ));
    }

    #[test]
    fn v6_roundtrip_and_kinds() {
        for (kind, addr, len) in [
            (IaKind::Na, "2001:db8::10".parse().unwrap(), 128),
            (IaKind::Pd, "2001:db8:100::".parse().unwrap(), 56),
        ] {
            let l = Lease6 {
                kind,
                addr,
                prefix_len: len,
                state: BindingState::Active,
                client: ClientKey::from_duid(&[0, 1, 0, 1, 9, 8, 7, 6, 1, 2, 3, 4, 5, 6]).unwrap(),
                iaid: 0xdead_beef,
                subnet_id: 3,
                preferred_until: 1000,
                expires: 2000,
                cltt: 500,
                partner_expires: 0,
                update_pending: false,
            };
            let mut buf = [0u8; Lease6::MAX_ENCODED_LEN];
            let n = l.encode(&mut buf);
            assert_eq!(n, l.encoded_len());
            assert_eq!(decode_any(&buf[..n]).unwrap(), AnyLease::V6(l));
            assert_eq!(&buf[..KEY_LEN], &Lease6::key_of(kind, addr));
            assert!(matches!(
                Lease6::decode(&buf[..n - 1]),
                Err(LeaseError::Truncated { .. })
            ));
            assert!(!encoded_is_tombstone(&buf[..n]));
        }
        // The same bytes as an address and as a prefix are different keys.
        let a: Ipv6Addr = "2001:db8::".parse().unwrap();
        assert_ne!(Lease6::key_of(IaKind::Na, a), Lease6::key_of(IaKind::Pd, a));
        assert_eq!(
            ClientKey::from_duid(&[0, 3, 0, 1, 2]).unwrap().to_string(),
            "duid:00:03:00:01:02"
        );
    }

    #[test]
    fn keys_differ_by_form() {
        let a = ClientKey::from_client_id(&[1, 2, 3]).unwrap();
        let b = ClientKey::from_hw(1, &[2, 3]).unwrap();
        assert_ne!(a, b);
        assert_eq!(b.to_string(), "hw:01:02:03");
        assert!(a.shard(4) < 4);
    }
}
