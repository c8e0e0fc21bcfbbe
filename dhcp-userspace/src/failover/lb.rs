//! RFC 3074 load balancing: which of the two failover servers answers a client's
//! non-renewal requests in NORMAL state (draft-ietf-dhc-failover-12 §5.3, §9.8.2).
//!
//! The client's key (the client-identifier option 61 value if present, else the `hlen`
//! bytes of `chaddr`: draft-12 §9.8.2) is hashed with the Pearson hash of RFC 3074 §6 to
//! one of 256 buckets; a 256-bit hash-bucket assignment says which buckets a server serves.
//!
//! Bit order: bucket `b` is bit `b & 7` (least significant first) of byte `b >> 3`, the
//! encoding ISC dhcpd 4.4 uses in the hash-bucket-assignment option (draft-12 §12.11).
//! Meaning of the option: draft-12 §12.11 says a set bit is a bucket the *secondary*
//! serves, but ISC dhcpd 4.4 sends its split as bits `0..split` set, the buckets the
//! *primary* serves, and its secondary serves the clear bits. [`Buckets::from_isc_hba`]
//! and [`Buckets::isc_hba`] follow ISC (interoperability target); [`Buckets::to_wire`] is
//! the plain bitmap of the buckets a server serves.

/// The Pearson permutation table of RFC 3074 §6.
const TABLE: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, //
    31, 32, 55, 60, 152, 58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223, //
    59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179, 197, 65, //
    180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97, 16, //
    40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67, //
    207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, //
    20, 113, 71, 35, 128, 13, 182, 94, 25, 226, 227, 199, 75, 27, 41, 245, //
    230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241, 73, 88, 105, //
    39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, //
    82, 163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, //
    195, 42, 106, 198, 118, 112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253, //
    137, 185, 99, 164, 102, 147, 45, 66, 231, 52, 141, 211, 194, 206, 246, 238, //
    56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171, 72, 50, //
    33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213, //
    96, 235, 136, 208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, //
    216, 131, 89, 21, 28, 133, 37, 153, 149, 80, 170, 68, 6, 169, 234, 151, //
];

use super::state::Role;

/// The RFC 3074 §6 hash of a key: start from the key length (mod 256) and fold the bytes
/// from last to first through the permutation table.
#[must_use]
pub fn hash(key: &[u8]) -> u8 {
    let mut h = key.len() as u8;
    for &b in key.iter().rev() {
        h = TABLE[usize::from(h ^ b)];
    }
    h
}

/// The bucket of a DHCPv4 client: the hash of its client identifier (option 61 value)
/// when it sent one, else of `chaddr` (the caller passes the first `hlen` bytes)
/// (draft-12 §9.8.2).
#[must_use]
pub fn client_hash(client_id: Option<&[u8]>, chaddr: &[u8]) -> u8 {
    match client_id {
        Some(id) if !id.is_empty() => hash(id),
        _ => hash(chaddr),
    }
}

/// A hash-bucket assignment: the set of the 256 buckets one server serves.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Buckets(pub [u8; 32]);

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buckets({} of 256:", self.count())?;
        for b in &self.0 {
            write!(f, " {b:02x}")?;
        }
        f.write_str(")")
    }
}

impl Buckets {
    /// No bucket.
    pub const NONE: Self = Self([0; 32]);
    /// Every bucket.
    pub const ALL: Self = Self([0xff; 32]);

    /// The buckets `role` serves when the primary serves buckets `0..primary_buckets`
    /// (capped at 256) and the secondary the rest (ISC dhcpd's `split`).
    #[must_use]
    pub fn split(primary_buckets: u16, role: Role) -> Self {
        let n = usize::from(primary_buckets.min(256));
        let mut b = Self::NONE;
        for i in 0..256 {
            if (i < n) == (role == Role::Primary) {
                b.0[i >> 3] |= 1 << (i & 7);
            }
        }
        b
    }

    /// Whether the bucket `hash` is in the set.
    #[must_use]
    pub fn serves(&self, hash: u8) -> bool {
        self.0[usize::from(hash >> 3)] & (1 << (hash & 7)) != 0
    }

    /// Whether this server answers a non-renewal request of a client in bucket `hash` whose
    /// `secs` field is `secs`: its own buckets always, and any client that has been trying
    /// for more than `max_secs` seconds (ISC dhcpd's load-balance-max-seconds: a client the
    /// other server seems not to answer is answered by both).
    #[must_use]
    pub fn answers(&self, hash: u8, secs: u16, max_secs: u16) -> bool {
        secs > max_secs || self.serves(hash)
    }

    /// Number of buckets in the set.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }

    /// The buckets not in the set (the partner's).
    #[must_use]
    pub fn complement(&self) -> Self {
        let mut b = *self;
        for x in &mut b.0 {
            *x = !*x;
        }
        b
    }

    /// The bitmap bytes (bucket `b` = bit `b & 7` of byte `b >> 3`).
    #[must_use]
    pub fn to_wire(&self) -> [u8; 32] {
        self.0
    }

    /// The set of a bitmap (see [`Self::to_wire`]).
    #[must_use]
    pub fn from_wire(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The buckets `role` serves given the bitmap of a hash-bucket-assignment option as ISC
    /// dhcpd 4.4 sends it (set bits: the primary's buckets).
    #[must_use]
    pub fn from_isc_hba(hba: [u8; 32], role: Role) -> Self {
        match role {
            Role::Primary => Self(hba),
            Role::Secondary => Self(hba).complement(),
        }
    }

    /// The hash-bucket-assignment option value ISC dhcpd 4.4 expects from a primary that
    /// serves `self` (set bits: the primary's buckets).
    #[must_use]
    pub fn isc_hba(&self) -> [u8; 32] {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_a_permutation() {
        let mut seen = [false; 256];
        for &v in &TABLE {
            assert!(!seen[usize::from(v)], "{v} twice");
            seen[usize::from(v)] = true;
        }
        // First and last entries as printed in RFC 3074 §6.
        assert_eq!(&TABLE[..4], &[251, 175, 119, 215]);
        assert_eq!(&TABLE[250..], &[170, 68, 6, 169, 234, 151]);
    }

    #[test]
    fn hash_vectors() {
        // Worked by hand from the table: h0 = len, h = T[h ^ byte] from the last byte.
        assert_eq!(hash(&[]), 0);
        assert_eq!(hash(&[0x00]), 175); // T[1 ^ 0] = T[1]
        assert_eq!(hash(&[0x01]), 251); // T[1 ^ 1] = T[0]
        assert_eq!(hash(&[1, 2]), 170); // T[2 ^ 2] = 251, T[251 ^ 1] = T[250]
        // Computed with an independent script of the RFC 3074 §6 algorithm.
        assert_eq!(hash(&[0x00, 0x0c, 0x29, 0xa1, 0xb2, 0xc3]), 210);
        assert_eq!(hash(&[0x01, 0x00, 0x0c, 0x29, 0xa1, 0xb2, 0xc3]), 143);
        assert_eq!(hash(&[0xff; 6]), 79);
    }

    #[test]
    fn client_hash_prefers_the_client_identifier() {
        let chaddr = [0x00, 0x0c, 0x29, 0xa1, 0xb2, 0xc3];
        let id = [0x01, 0x00, 0x0c, 0x29, 0xa1, 0xb2, 0xc3];
        assert_eq!(client_hash(None, &chaddr), 210);
        assert_eq!(client_hash(Some(&id), &chaddr), 143);
        assert_eq!(
            client_hash(Some(&[]), &chaddr),
            210,
            "empty option 61 ignored"
        );
    }

    #[test]
    fn split_partitions_the_buckets() {
        for n in [0u16, 1, 7, 8, 128, 200, 255, 256, 1000] {
            let p = Buckets::split(n, Role::Primary);
            let s = Buckets::split(n, Role::Secondary);
            assert_eq!(p.count(), u32::from(n.min(256)));
            assert_eq!(p.count() + s.count(), 256);
            assert_eq!(s, p.complement());
            for h in 0..=255u8 {
                assert_ne!(p.serves(h), s.serves(h), "bucket {h} served by exactly one");
                assert_eq!(p.serves(h), u16::from(h) < n);
            }
        }
    }

    #[test]
    fn bit_order_is_lsb_first() {
        let p = Buckets::split(1, Role::Primary);
        assert_eq!(p.to_wire()[0], 0x01);
        let p = Buckets::split(9, Role::Primary);
        assert_eq!(&p.to_wire()[..2], &[0xff, 0x01]);
        let b = Buckets::from_wire({
            let mut w = [0; 32];
            w[31] = 0x80;
            w
        });
        assert!(b.serves(255));
        assert!(!b.serves(254));
    }

    #[test]
    fn isc_hba_round_trip() {
        let prim = Buckets::split(128, Role::Primary);
        let hba = prim.isc_hba();
        assert_eq!(Buckets::from_isc_hba(hba, Role::Primary), prim);
        assert_eq!(
            Buckets::from_isc_hba(hba, Role::Secondary),
            Buckets::split(128, Role::Secondary)
        );
    }

    #[test]
    fn answers_after_max_secs() {
        let b = Buckets::split(128, Role::Primary);
        assert!(b.answers(0, 0, 3));
        assert!(!b.answers(200, 3, 3));
        assert!(b.answers(200, 4, 3), "waited too long: both answer");
    }

    #[test]
    fn split_halves_a_population_roughly() {
        let p = Buckets::split(128, Role::Primary);
        let mine = (0u32..4096)
            .filter(|i| p.serves(client_hash(None, &i.to_be_bytes())))
            .count();
        assert!((1700..2400).contains(&mine), "{mine} of 4096");
    }
}
