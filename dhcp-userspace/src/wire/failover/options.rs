//! Failover options: the type-length-value iterator (draft-ietf-dhc-failover-12 §6.2) and
//! the typed representation of each option (§12).

use std::net::Ipv4Addr;

use super::{Error, opt};

/// One option as found on the wire: its code and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverOption<'a> {
    /// The option code, see [`opt`].
    pub code: u16,
    /// The value bytes, without code and length.
    pub value: &'a [u8],
}

/// Iterator over the options of a payload (draft-12 §6.2: 2-byte code, 2-byte length, then
/// the value, all in network order, back to back to the end of the message).
///
/// An option whose length runs past the payload yields `Err(BadOptionLength)`; after the
/// first `Err` the iterator is fused and yields `None`.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> OptionIter<'a> {
    /// Iterate over the options in `payload` (see [`super::Packet::payload`]).
    #[must_use]
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            rest: payload,
            failed: false,
        }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<FailoverOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let (code, len, body) = match self.rest {
            [c0, c1, l0, l1, body @ ..] => (
                u16::from_be_bytes([*c0, *c1]),
                usize::from(u16::from_be_bytes([*l0, *l1])),
                body,
            ),
            [c0, c1, ..] => {
                self.failed = true;
                let code = u16::from_be_bytes([*c0, *c1]);
                return Some(Err(Error::BadOptionLength { code }));
            }
            _ => {
                self.failed = true;
                return Some(Err(Error::BadOptionLength { code: 0 }));
            }
        };
        let Some((value, rest)) = body.split_at_checked(len) else {
            self.failed = true;
            return Some(Err(Error::BadOptionLength { code }));
        };
        self.rest = rest;
        Some(Ok(FailoverOption { code, value }))
    }
}

impl std::iter::FusedIterator for OptionIter<'_> {}

/// The typed representation of one failover option (draft-12 §12), borrowed from the
/// message. Fixed-size values are decoded; variable ones stay byte slices. Codes draft-12
/// does not define are kept as [`Opt::Unknown`] so that a receiver can skip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt<'a> {
    /// addresses-transferred (§12.1).
    AddressesTransferred(u32),
    /// assigned-IP-address (§12.2).
    AssignedIpAddress(Ipv4Addr),
    /// binding-status (§12.3), raw: see [`super::BindingStatus`].
    BindingStatus(u8),
    /// client-identifier (§12.4).
    ClientIdentifier(&'a [u8]),
    /// client-hardware-address (§12.5): hardware type, then the address.
    ClientHardwareAddress {
        /// ARP hardware type (1 = Ethernet).
        htype: u8,
        /// The hardware address.
        addr: &'a [u8],
    },
    /// client-last-transaction-time (§12.6).
    ClientLastTransactionTime(u32),
    /// client-reply-options (§12.7): DHCP options, RFC 2132 encoding.
    ClientReplyOptions(&'a [u8]),
    /// client-request-options (§12.8): DHCP options, RFC 2132 encoding.
    ClientRequestOptions(&'a [u8]),
    /// DDNS (§12.9), raw.
    Ddns(&'a [u8]),
    /// delayed-service (§12.10).
    DelayedService(u8),
    /// hash-bucket-assignment (§12.11): bitmap of the RFC 3074 hash buckets.
    HashBucketAssignment(&'a [u8]),
    /// IP-flags (§12.12).
    IpFlags(u16),
    /// lease-expiration-time (§12.13).
    LeaseExpirationTime(u32),
    /// max-unacked-BNDUPD (§12.14).
    MaxUnackedBndupd(u32),
    /// MCLT (§12.15).
    Mclt(u32),
    /// message (§12.16): text.
    Message(&'a [u8]),
    /// message-digest (§12.17), raw: digest type then digest.
    MessageDigest(&'a [u8]),
    /// potential-expiration-time (§12.18).
    PotentialExpirationTime(u32),
    /// receive-timer (§12.19).
    ReceiveTimer(u32),
    /// protocol-version (§12.20).
    ProtocolVersion(u8),
    /// reject-reason (§12.21), see [`super::reject`].
    RejectReason(u8),
    /// relationship-name (§12.22).
    RelationshipName(&'a [u8]),
    /// server-flags (§12.23), see [`super::server_flags`].
    ServerFlags(u8),
    /// server-state (§12.24), raw: see [`super::ServerState`].
    ServerState(u8),
    /// start-time-of-state (§12.25).
    StartTimeOfState(u32),
    /// TLS-reply (§12.26).
    TlsReply(u8),
    /// TLS-request (§12.27).
    TlsRequest(u8),
    /// vendor-class-identifier (§12.28).
    VendorClassIdentifier(&'a [u8]),
    /// vendor-specific-options (§12.29).
    VendorSpecificOptions(&'a [u8]),
    /// A code draft-12 does not define.
    Unknown {
        /// The option code.
        code: u16,
        /// The value bytes.
        value: &'a [u8],
    },
}

fn fixed<const N: usize>(code: u16, value: &[u8]) -> Result<[u8; N], Error> {
    <[u8; N]>::try_from(value).map_err(|_| Error::BadOptionLength { code })
}

impl<'a> Opt<'a> {
    /// Decode `o`. A fixed-size option whose length is not its size (draft-12 §12) is
    /// `Err(BadOptionLength)`; so is a client-hardware-address without its type byte.
    pub fn parse(o: FailoverOption<'a>) -> Result<Self, Error> {
        let FailoverOption { code, value } = o;
        let u32_of = || fixed::<4>(code, value).map(u32::from_be_bytes);
        let u8_of = || fixed::<1>(code, value).map(|[b]| b);
        Ok(match code {
            opt::ADDRESSES_TRANSFERRED => Self::AddressesTransferred(u32_of()?),
            opt::ASSIGNED_IP_ADDRESS => {
                Self::AssignedIpAddress(Ipv4Addr::from(fixed::<4>(code, value)?))
            }
            opt::BINDING_STATUS => Self::BindingStatus(u8_of()?),
            opt::CLIENT_IDENTIFIER => Self::ClientIdentifier(value),
            opt::CLIENT_HARDWARE_ADDRESS => match value {
                [htype, addr @ ..] => Self::ClientHardwareAddress {
                    htype: *htype,
                    addr,
                },
                [] => return Err(Error::BadOptionLength { code }),
            },
            opt::CLIENT_LAST_TRANSACTION_TIME => Self::ClientLastTransactionTime(u32_of()?),
            opt::CLIENT_REPLY_OPTIONS => Self::ClientReplyOptions(value),
            opt::CLIENT_REQUEST_OPTIONS => Self::ClientRequestOptions(value),
            opt::DDNS => Self::Ddns(value),
            opt::DELAYED_SERVICE => Self::DelayedService(u8_of()?),
            opt::HASH_BUCKET_ASSIGNMENT => Self::HashBucketAssignment(value),
            opt::IP_FLAGS => Self::IpFlags(u16::from_be_bytes(fixed::<2>(code, value)?)),
            opt::LEASE_EXPIRATION_TIME => Self::LeaseExpirationTime(u32_of()?),
            opt::MAX_UNACKED_BNDUPD => Self::MaxUnackedBndupd(u32_of()?),
            opt::MCLT => Self::Mclt(u32_of()?),
            opt::MESSAGE => Self::Message(value),
            opt::MESSAGE_DIGEST => Self::MessageDigest(value),
            opt::POTENTIAL_EXPIRATION_TIME => Self::PotentialExpirationTime(u32_of()?),
            opt::RECEIVE_TIMER => Self::ReceiveTimer(u32_of()?),
            opt::PROTOCOL_VERSION => Self::ProtocolVersion(u8_of()?),
            opt::REJECT_REASON => Self::RejectReason(u8_of()?),
            opt::RELATIONSHIP_NAME => Self::RelationshipName(value),
            opt::SERVER_FLAGS => Self::ServerFlags(u8_of()?),
            opt::SERVER_STATE => Self::ServerState(u8_of()?),
            opt::START_TIME_OF_STATE => Self::StartTimeOfState(u32_of()?),
            opt::TLS_REPLY => Self::TlsReply(u8_of()?),
            opt::TLS_REQUEST => Self::TlsRequest(u8_of()?),
            opt::VENDOR_CLASS_IDENTIFIER => Self::VendorClassIdentifier(value),
            opt::VENDOR_SPECIFIC_OPTIONS => Self::VendorSpecificOptions(value),
            _ => Self::Unknown { code, value },
        })
    }

    /// The option code of this option.
    #[must_use]
    pub fn code(&self) -> u16 {
        match self {
            Self::AddressesTransferred(_) => opt::ADDRESSES_TRANSFERRED,
            Self::AssignedIpAddress(_) => opt::ASSIGNED_IP_ADDRESS,
            Self::BindingStatus(_) => opt::BINDING_STATUS,
            Self::ClientIdentifier(_) => opt::CLIENT_IDENTIFIER,
            Self::ClientHardwareAddress { .. } => opt::CLIENT_HARDWARE_ADDRESS,
            Self::ClientLastTransactionTime(_) => opt::CLIENT_LAST_TRANSACTION_TIME,
            Self::ClientReplyOptions(_) => opt::CLIENT_REPLY_OPTIONS,
            Self::ClientRequestOptions(_) => opt::CLIENT_REQUEST_OPTIONS,
            Self::Ddns(_) => opt::DDNS,
            Self::DelayedService(_) => opt::DELAYED_SERVICE,
            Self::HashBucketAssignment(_) => opt::HASH_BUCKET_ASSIGNMENT,
            Self::IpFlags(_) => opt::IP_FLAGS,
            Self::LeaseExpirationTime(_) => opt::LEASE_EXPIRATION_TIME,
            Self::MaxUnackedBndupd(_) => opt::MAX_UNACKED_BNDUPD,
            Self::Mclt(_) => opt::MCLT,
            Self::Message(_) => opt::MESSAGE,
            Self::MessageDigest(_) => opt::MESSAGE_DIGEST,
            Self::PotentialExpirationTime(_) => opt::POTENTIAL_EXPIRATION_TIME,
            Self::ReceiveTimer(_) => opt::RECEIVE_TIMER,
            Self::ProtocolVersion(_) => opt::PROTOCOL_VERSION,
            Self::RejectReason(_) => opt::REJECT_REASON,
            Self::RelationshipName(_) => opt::RELATIONSHIP_NAME,
            Self::ServerFlags(_) => opt::SERVER_FLAGS,
            Self::ServerState(_) => opt::SERVER_STATE,
            Self::StartTimeOfState(_) => opt::START_TIME_OF_STATE,
            Self::TlsReply(_) => opt::TLS_REPLY,
            Self::TlsRequest(_) => opt::TLS_REQUEST,
            Self::VendorClassIdentifier(_) => opt::VENDOR_CLASS_IDENTIFIER,
            Self::VendorSpecificOptions(_) => opt::VENDOR_SPECIFIC_OPTIONS,
            Self::Unknown { code, .. } => *code,
        }
    }

    /// Call `f` with the value bytes (one or two pieces: client-hardware-address is its
    /// type byte then its address), without allocating.
    pub(super) fn with_value<R>(&self, f: impl FnOnce(&[u8], &[u8]) -> R) -> R {
        match *self {
            Self::AddressesTransferred(v)
            | Self::ClientLastTransactionTime(v)
            | Self::LeaseExpirationTime(v)
            | Self::MaxUnackedBndupd(v)
            | Self::Mclt(v)
            | Self::PotentialExpirationTime(v)
            | Self::ReceiveTimer(v)
            | Self::StartTimeOfState(v) => f(&v.to_be_bytes(), &[]),
            Self::AssignedIpAddress(a) => f(&a.octets(), &[]),
            Self::IpFlags(v) => f(&v.to_be_bytes(), &[]),
            Self::BindingStatus(v)
            | Self::DelayedService(v)
            | Self::ProtocolVersion(v)
            | Self::RejectReason(v)
            | Self::ServerFlags(v)
            | Self::ServerState(v)
            | Self::TlsReply(v)
            | Self::TlsRequest(v) => f(&[v], &[]),
            Self::ClientHardwareAddress { htype, addr } => f(&[htype], addr),
            Self::ClientIdentifier(v)
            | Self::ClientReplyOptions(v)
            | Self::ClientRequestOptions(v)
            | Self::Ddns(v)
            | Self::HashBucketAssignment(v)
            | Self::Message(v)
            | Self::MessageDigest(v)
            | Self::RelationshipName(v)
            | Self::VendorClassIdentifier(v)
            | Self::VendorSpecificOptions(v)
            | Self::Unknown { value: v, .. } => f(v, &[]),
        }
    }
}
