//! Failover options: the type-length-value iterator (RFC 8415 §21.1, which RFC 8156 §5.2
//! uses) and the typed representation of each option (RFC 8156 §5.5, and the options of
//! RFC 8415, RFC 5007 and RFC 7653 that failover messages carry, RFC 8156 §7.4).

use super::{Error, opt};

/// One option as found on the wire: its code and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverOption<'a> {
    /// The option code, see [`opt`].
    pub code: u16,
    /// The value bytes, without code and length.
    pub value: &'a [u8],
}

/// Iterator over an options area (RFC 8415 §21.1: 2-byte code, 2-byte length, then the
/// value, back to back to the end of the area).
///
/// An option header cut short, or a length running past the area, yields
/// `Err(BadOptionLength)`; after the first `Err` the iterator is fused and yields `None`.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> OptionIter<'a> {
    /// Iterate over `area`: a message's options or an encapsulating option's value.
    #[must_use]
    pub const fn new(area: &'a [u8]) -> Self {
        Self {
            rest: area,
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
        let Some(([c0, c1, l0, l1], body)) = self.rest.split_first_chunk::<4>() else {
            let code = match self.rest {
                [a, b, ..] => u16::from_be_bytes([*a, *b]),
                _ => 0,
            };
            self.failed = true;
            return Some(Err(Error::BadOptionLength { code }));
        };
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some((value, rest)) = body.split_at_checked(len) else {
            self.failed = true;
            return Some(Err(Error::BadOptionLength { code }));
        };
        self.rest = rest;
        Some(Ok(FailoverOption { code, value }))
    }
}

impl std::iter::FusedIterator for OptionIter<'_> {}

/// The value of `OPTION_F_PROTOCOL_VERSION` (RFC 8156 §5.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolVersion {
    /// Incremented on large changes; 1 for RFC 8156.
    pub major: u16,
    /// Incremented on small changes; 0 for RFC 8156.
    pub minor: u16,
}

/// The typed representation of one option, borrowed from the message. Fixed-size values
/// are decoded; variable ones stay byte slices (containers such as `OPTION_CLIENT_DATA` and
/// `IA_NA` are read with the views of [`super::messages`]). Other codes are
/// [`Opt::Unknown`], so that a receiver can skip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt<'a> {
    /// `OPTION_CLIENTID`: the client's DUID (RFC 8415 §21.2).
    ClientId(&'a [u8]),
    /// `OPTION_STATUS_CODE` (RFC 8415 §21.13).
    StatusCode {
        /// The status code, see [`super::status`].
        code: u16,
        /// UTF-8 text for humans.
        message: &'a [u8],
    },
    /// `OPTION_CLIENT_DATA` (RFC 5007 §4.1.2.2): the client options, raw.
    ClientData(&'a [u8]),
    /// `OPTION_CLT_TIME` (RFC 5007 §4.1.2.3): seconds before the base time.
    CltTime(u32),
    /// `OPTION_LQ_BASE_TIME` (RFC 7653 §6.3.1): absolute time.
    LqBaseTime(u32),
    /// `OPTION_F_BINDING_STATUS` (RFC 8156 §5.5.1), raw: see [`super::BindingStatus`].
    BindingStatus(u8),
    /// `OPTION_F_CONNECT_FLAGS` (RFC 8156 §5.5.2), see [`super::connect_flags`].
    ConnectFlags(u16),
    /// `OPTION_F_DNS_REMOVAL_INFO` (RFC 8156 §5.5.3): encapsulated options, raw.
    DnsRemovalInfo(&'a [u8]),
    /// `OPTION_F_DNS_HOST_NAME` (RFC 8156 §5.5.4): RFC 1035 name.
    DnsHostName(&'a [u8]),
    /// `OPTION_F_DNS_ZONE_NAME` (RFC 8156 §5.5.5): RFC 1035 name.
    DnsZoneName(&'a [u8]),
    /// `OPTION_F_DNS_FLAGS` (RFC 8156 §5.5.6), see [`super::dns_flags`].
    DnsFlags(u16),
    /// `OPTION_F_EXPIRATION_TIME` (RFC 8156 §5.5.7).
    ExpirationTime(u32),
    /// `OPTION_F_MAX_UNACKED_BNDUPD` (RFC 8156 §5.5.8).
    MaxUnackedBndupd(u32),
    /// `OPTION_F_MCLT` (RFC 8156 §5.5.9).
    Mclt(u32),
    /// `OPTION_F_PARTNER_LIFETIME` (RFC 8156 §5.5.10).
    PartnerLifetime(u32),
    /// `OPTION_F_PARTNER_LIFETIME_SENT` (RFC 8156 §5.5.11).
    PartnerLifetimeSent(u32),
    /// `OPTION_F_PARTNER_DOWN_TIME` (RFC 8156 §5.5.12).
    PartnerDownTime(u32),
    /// `OPTION_F_PARTNER_RAW_CLT_TIME` (RFC 8156 §5.5.13).
    PartnerRawCltTime(u32),
    /// `OPTION_F_PROTOCOL_VERSION` (RFC 8156 §5.5.14).
    ProtocolVersion(ProtocolVersion),
    /// `OPTION_F_KEEPALIVE_TIME` (RFC 8156 §5.5.15).
    KeepaliveTime(u32),
    /// `OPTION_F_RECONFIGURE_DATA` (RFC 8156 §5.5.16).
    ReconfigureData {
        /// When the key was created, absolute time.
        time: u32,
        /// The reconfigure key.
        key: &'a [u8],
    },
    /// `OPTION_F_RELATIONSHIP_NAME` (RFC 8156 §5.5.17): UTF-8 text.
    RelationshipName(&'a [u8]),
    /// `OPTION_F_SERVER_FLAGS` (RFC 8156 §5.5.18), see [`super::server_flags`].
    ServerFlags(u8),
    /// `OPTION_F_SERVER_STATE` (RFC 8156 §5.5.19), raw: see [`super::ServerState`].
    ServerState(u8),
    /// `OPTION_F_START_TIME_OF_STATE` (RFC 8156 §5.5.20).
    StartTimeOfState(u32),
    /// `OPTION_F_STATE_EXPIRATION_TIME` (RFC 8156 §5.5.21).
    StateExpirationTime(u32),
    /// Any other code, `IA_NA`, `IA_PD`, IAADDR and IAPREFIX included.
    Unknown {
        /// The option code.
        code: u16,
        /// The value bytes.
        value: &'a [u8],
    },
}

pub(super) fn fixed<const N: usize>(code: u16, value: &[u8]) -> Result<[u8; N], Error> {
    <[u8; N]>::try_from(value).map_err(|_| Error::BadOptionLength { code })
}

pub(super) fn u32_of(code: u16, value: &[u8]) -> Result<u32, Error> {
    fixed::<4>(code, value).map(u32::from_be_bytes)
}

impl<'a> Opt<'a> {
    /// Decode `o`.
    ///
    /// # Errors
    /// [`Error::BadOptionLength`] when a fixed-size option (RFC 8156 §5.5) has another
    /// length, or a status code or reconfigure data lacks its fixed part.
    pub fn parse(o: FailoverOption<'a>) -> Result<Self, Error> {
        let FailoverOption { code, value } = o;
        let u32v = || u32_of(code, value);
        let u16v = || fixed::<2>(code, value).map(u16::from_be_bytes);
        let u8v = || fixed::<1>(code, value).map(|[b]| b);
        Ok(match code {
            opt::CLIENTID => Self::ClientId(value),
            opt::STATUS_CODE => match value {
                [a, b, message @ ..] => Self::StatusCode {
                    code: u16::from_be_bytes([*a, *b]),
                    message,
                },
                _ => return Err(Error::BadOptionLength { code }),
            },
            opt::CLIENT_DATA => Self::ClientData(value),
            opt::CLT_TIME => Self::CltTime(u32v()?),
            opt::LQ_BASE_TIME => Self::LqBaseTime(u32v()?),
            opt::F_BINDING_STATUS => Self::BindingStatus(u8v()?),
            opt::F_CONNECT_FLAGS => Self::ConnectFlags(u16v()?),
            opt::F_DNS_REMOVAL_INFO => Self::DnsRemovalInfo(value),
            opt::F_DNS_HOST_NAME => Self::DnsHostName(value),
            opt::F_DNS_ZONE_NAME => Self::DnsZoneName(value),
            opt::F_DNS_FLAGS => Self::DnsFlags(u16v()?),
            opt::F_EXPIRATION_TIME => Self::ExpirationTime(u32v()?),
            opt::F_MAX_UNACKED_BNDUPD => Self::MaxUnackedBndupd(u32v()?),
            opt::F_MCLT => Self::Mclt(u32v()?),
            opt::F_PARTNER_LIFETIME => Self::PartnerLifetime(u32v()?),
            opt::F_PARTNER_LIFETIME_SENT => Self::PartnerLifetimeSent(u32v()?),
            opt::F_PARTNER_DOWN_TIME => Self::PartnerDownTime(u32v()?),
            opt::F_PARTNER_RAW_CLT_TIME => Self::PartnerRawCltTime(u32v()?),
            opt::F_PROTOCOL_VERSION => {
                let v = fixed::<4>(code, value)?;
                Self::ProtocolVersion(ProtocolVersion {
                    major: u16::from_be_bytes([v[0], v[1]]),
                    minor: u16::from_be_bytes([v[2], v[3]]),
                })
            }
            opt::F_KEEPALIVE_TIME => Self::KeepaliveTime(u32v()?),
            opt::F_RECONFIGURE_DATA => match value.split_first_chunk::<4>() {
                Some((t, key)) => Self::ReconfigureData {
                    time: u32::from_be_bytes(*t),
                    key,
                },
                None => return Err(Error::BadOptionLength { code }),
            },
            opt::F_RELATIONSHIP_NAME => Self::RelationshipName(value),
            opt::F_SERVER_FLAGS => Self::ServerFlags(u8v()?),
            opt::F_SERVER_STATE => Self::ServerState(u8v()?),
            opt::F_START_TIME_OF_STATE => Self::StartTimeOfState(u32v()?),
            opt::F_STATE_EXPIRATION_TIME => Self::StateExpirationTime(u32v()?),
            _ => Self::Unknown { code, value },
        })
    }

    /// The option code of this option.
    #[must_use]
    pub fn code(&self) -> u16 {
        match self {
            Self::ClientId(_) => opt::CLIENTID,
            Self::StatusCode { .. } => opt::STATUS_CODE,
            Self::ClientData(_) => opt::CLIENT_DATA,
            Self::CltTime(_) => opt::CLT_TIME,
            Self::LqBaseTime(_) => opt::LQ_BASE_TIME,
            Self::BindingStatus(_) => opt::F_BINDING_STATUS,
            Self::ConnectFlags(_) => opt::F_CONNECT_FLAGS,
            Self::DnsRemovalInfo(_) => opt::F_DNS_REMOVAL_INFO,
            Self::DnsHostName(_) => opt::F_DNS_HOST_NAME,
            Self::DnsZoneName(_) => opt::F_DNS_ZONE_NAME,
            Self::DnsFlags(_) => opt::F_DNS_FLAGS,
            Self::ExpirationTime(_) => opt::F_EXPIRATION_TIME,
            Self::MaxUnackedBndupd(_) => opt::F_MAX_UNACKED_BNDUPD,
            Self::Mclt(_) => opt::F_MCLT,
            Self::PartnerLifetime(_) => opt::F_PARTNER_LIFETIME,
            Self::PartnerLifetimeSent(_) => opt::F_PARTNER_LIFETIME_SENT,
            Self::PartnerDownTime(_) => opt::F_PARTNER_DOWN_TIME,
            Self::PartnerRawCltTime(_) => opt::F_PARTNER_RAW_CLT_TIME,
            Self::ProtocolVersion(_) => opt::F_PROTOCOL_VERSION,
            Self::KeepaliveTime(_) => opt::F_KEEPALIVE_TIME,
            Self::ReconfigureData { .. } => opt::F_RECONFIGURE_DATA,
            Self::RelationshipName(_) => opt::F_RELATIONSHIP_NAME,
            Self::ServerFlags(_) => opt::F_SERVER_FLAGS,
            Self::ServerState(_) => opt::F_SERVER_STATE,
            Self::StartTimeOfState(_) => opt::F_START_TIME_OF_STATE,
            Self::StateExpirationTime(_) => opt::F_STATE_EXPIRATION_TIME,
            Self::Unknown { code, .. } => *code,
        }
    }

    /// Call `f` with the value bytes in two pieces (a fixed part and a variable one), without
    /// allocating.
    pub(super) fn with_value<R>(&self, f: impl FnOnce(&[u8], &[u8]) -> R) -> R {
        match *self {
            Self::CltTime(v)
            | Self::LqBaseTime(v)
            | Self::ExpirationTime(v)
            | Self::MaxUnackedBndupd(v)
            | Self::Mclt(v)
            | Self::PartnerLifetime(v)
            | Self::PartnerLifetimeSent(v)
            | Self::PartnerDownTime(v)
            | Self::PartnerRawCltTime(v)
            | Self::KeepaliveTime(v)
            | Self::StartTimeOfState(v)
            | Self::StateExpirationTime(v) => f(&v.to_be_bytes(), &[]),
            Self::ConnectFlags(v) | Self::DnsFlags(v) => f(&v.to_be_bytes(), &[]),
            Self::BindingStatus(v) | Self::ServerFlags(v) | Self::ServerState(v) => f(&[v], &[]),
            Self::ProtocolVersion(ProtocolVersion { major, minor }) => {
                let (hi, lo) = (major.to_be_bytes(), minor.to_be_bytes());
                f(&[hi[0], hi[1], lo[0], lo[1]], &[])
            }
            Self::StatusCode { code, message } => f(&code.to_be_bytes(), message),
            Self::ReconfigureData { time, key } => f(&time.to_be_bytes(), key),
            Self::ClientId(v)
            | Self::ClientData(v)
            | Self::DnsRemovalInfo(v)
            | Self::DnsHostName(v)
            | Self::DnsZoneName(v)
            | Self::RelationshipName(v)
            | Self::Unknown { value: v, .. } => f(v, &[]),
        }
    }
}
