//! Typed failover messages: what RFC 8156 §6 and §7 put in CONNECT, CONNECTREPLY, STATE,
//! DISCONNECT, BNDUPD and BNDREPLY, parsed from a [`Message`] (borrowing it) and written
//! through a [`MessageWriter`]; and the conversion of a binding to and from a [`Lease6`].

use std::net::Ipv6Addr;

use super::options::{fixed, u32_of};
use super::{
    BindingStatus, Error, FailoverOption, Header, Message, MessageType, MessageWriter, Opt,
    OptionIter, ProtocolVersion, ServerState, from_unix, opt, status, to_unix,
};
use crate::lease::{BindingState, ClientKey, IaKind, Lease6};
use crate::wire::v6::field::{ia, iaaddr, iaprefix};
use crate::wire::v6::{MAX_DUID_LEN, MIN_DUID_LEN};

/// The options area of `m`, after checking its type is `want`.
fn body(m: Message<&[u8]>, want: MessageType) -> Result<&[u8], Error> {
    if m.msg_type() != u8::from(want) {
        return Err(Error::UnexpectedMessageType(m.msg_type()));
    }
    Ok(&m.into_inner()[super::field::OPTIONS])
}

/// Store `v` in `slot`, refusing a second occurrence of `code`.
fn once<T>(slot: &mut Option<T>, v: T, code: u16) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::DuplicateOption { code });
    }
    *slot = Some(v);
    Ok(())
}

fn need<T>(v: Option<T>, code: u16) -> Result<T, Error> {
    v.ok_or(Error::MissingOption { code })
}

/// Run `f` inside an option `code` whose value starts with `fixed`; on failure the option
/// and everything `f` wrote are dropped.
fn nested(
    w: &mut MessageWriter<'_>,
    code: u16,
    fixed: &[u8],
    f: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let h = w.begin_option(code, fixed)?;
    match f(w) {
        Ok(()) => w.end_option(&h),
        Err(e) => {
            w.abort_option(&h)?;
            Err(e)
        }
    }
}

fn opt_u32(w: &mut MessageWriter<'_>, code: u16, v: Option<u32>) -> Result<(), Error> {
    v.map_or(Ok(()), |v| w.option_u32(code, v))
}

/// The value of an `OPTION_STATUS_CODE` (RFC 8415 §21.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusValue<'a> {
    /// The status code, see [`super::status`].
    pub code: u16,
    /// UTF-8 text for humans, as sent.
    pub message: &'a [u8],
}

impl<'a> StatusValue<'a> {
    /// A status with `code` and `message`.
    #[must_use]
    pub const fn new(code: u16, message: &'a [u8]) -> Self {
        Self { code, message }
    }

    /// Whether this is Success (RFC 8156 §7.6: a success status is informational only).
    #[must_use]
    pub const fn is_success(&self) -> bool {
        self.code == status::SUCCESS
    }

    fn parse(value: &'a [u8]) -> Result<Self, Error> {
        match Opt::parse(FailoverOption {
            code: opt::STATUS_CODE,
            value,
        })? {
            Opt::StatusCode { code, message } => Ok(Self { code, message }),
            _ => Err(Error::BadOptionValue {
                code: opt::STATUS_CODE,
            }),
        }
    }

    fn write(&self, w: &mut MessageWriter<'_>) -> Result<(), Error> {
        w.opt(&Opt::StatusCode {
            code: self.code,
            message: self.message,
        })
    }
}

fn write_status(w: &mut MessageWriter<'_>, s: Option<&StatusValue<'_>>) -> Result<(), Error> {
    s.map_or(Ok(()), |s| s.write(w))
}

/// Start a message; the typed emitters below all use it.
fn start(
    buf: &mut [u8],
    msg_type: MessageType,
    xid: u32,
    sent_time: u32,
) -> Result<MessageWriter<'_>, Error> {
    MessageWriter::new(
        buf,
        &Header {
            msg_type,
            xid,
            sent_time,
        },
    )
}

/// The connection parameters of a CONNECT (RFC 8156 §6.1.1), also those of an accepting
/// CONNECTREPLY (§6.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect6<'a> {
    /// `OPTION_F_RELATIONSHIP_NAME`; absent when the two servers share one relationship only
    /// (§6.1.1).
    pub relationship: Option<&'a [u8]>,
    /// `OPTION_F_PROTOCOL_VERSION`.
    pub protocol_version: ProtocolVersion,
    /// `OPTION_F_MCLT`, seconds.
    pub mclt: u32,
    /// `OPTION_F_KEEPALIVE_TIME`, seconds: the sender wants a message at least this often.
    pub keepalive: u32,
    /// `OPTION_F_MAX_UNACKED_BNDUPD`: BNDUPDs the sender accepts without blocking.
    pub max_unacked: u32,
    /// `OPTION_F_CONNECT_FLAGS`, see [`super::connect_flags`].
    pub connect_flags: u16,
}

/// The fields of a CONNECT or CONNECTREPLY, each optional, as found.
#[derive(Default)]
struct ConnectFields<'a> {
    relationship: Option<&'a [u8]>,
    version: Option<ProtocolVersion>,
    mclt: Option<u32>,
    keepalive: Option<u32>,
    max_unacked: Option<u32>,
    flags: Option<u16>,
    status: Option<StatusValue<'a>>,
}

impl<'a> ConnectFields<'a> {
    fn scan(options: &'a [u8]) -> Result<Self, Error> {
        let mut f = Self::default();
        for o in OptionIter::new(options) {
            let o = o?;
            match Opt::parse(o)? {
                Opt::RelationshipName(v) => once(&mut f.relationship, v, o.code)?,
                Opt::ProtocolVersion(v) => once(&mut f.version, v, o.code)?,
                Opt::Mclt(v) => once(&mut f.mclt, v, o.code)?,
                Opt::KeepaliveTime(v) => once(&mut f.keepalive, v, o.code)?,
                Opt::MaxUnackedBndupd(v) => once(&mut f.max_unacked, v, o.code)?,
                Opt::ConnectFlags(v) => once(&mut f.flags, v, o.code)?,
                Opt::StatusCode { code, message } => {
                    once(&mut f.status, StatusValue { code, message }, o.code)?;
                }
                // RFC 8415 §16: options a message does not define are ignored.
                _ => {}
            }
        }
        Ok(f)
    }

    fn params(&self) -> Result<Connect6<'a>, Error> {
        Ok(Connect6 {
            relationship: self.relationship,
            protocol_version: need(self.version, opt::F_PROTOCOL_VERSION)?,
            mclt: need(self.mclt, opt::F_MCLT)?,
            keepalive: need(self.keepalive, opt::F_KEEPALIVE_TIME)?,
            max_unacked: need(self.max_unacked, opt::F_MAX_UNACKED_BNDUPD)?,
            connect_flags: need(self.flags, opt::F_CONNECT_FLAGS)?,
        })
    }
}

impl<'a> Connect6<'a> {
    /// Parse a CONNECT. Every option of RFC 8156 §6.1.1 but the relationship name is
    /// required; options other messages use are ignored.
    ///
    /// # Errors
    /// [`Error::UnexpectedMessageType`], [`Error::MissingOption`], [`Error::DuplicateOption`],
    /// or a malformed option.
    pub fn parse(m: Message<&'a [u8]>) -> Result<Self, Error> {
        ConnectFields::scan(body(m, MessageType::Connect)?)?.params()
    }

    fn write_params(&self, w: &mut MessageWriter<'_>) -> Result<(), Error> {
        if let Some(name) = self.relationship {
            w.option(opt::F_RELATIONSHIP_NAME, name)?;
        }
        w.opt(&Opt::ProtocolVersion(self.protocol_version))?;
        w.option_u32(opt::F_MCLT, self.mclt)?;
        w.option_u32(opt::F_KEEPALIVE_TIME, self.keepalive)?;
        w.option_u32(opt::F_MAX_UNACKED_BNDUPD, self.max_unacked)?;
        w.option_u16(opt::F_CONNECT_FLAGS, self.connect_flags)
    }

    /// Write this CONNECT as one frame into `buf`; returns the frame length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::OptionTooLong`].
    pub fn emit(&self, buf: &mut [u8], xid: u32, sent_time: u32) -> Result<usize, Error> {
        let mut w = start(buf, MessageType::Connect, xid, sent_time)?;
        self.write_params(&mut w)?;
        w.finish()
    }
}

/// A CONNECTREPLY (RFC 8156 §6.1.2): the secondary's parameters when it accepts, an
/// `OPTION_STATUS_CODE` with an error when it rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectReply6<'a> {
    /// The status, if any; an error rejects the connection.
    pub status: Option<StatusValue<'a>>,
    /// The secondary's parameters; always present when the reply accepts.
    pub params: Option<Connect6<'a>>,
}

impl<'a> ConnectReply6<'a> {
    /// An accepting reply.
    #[must_use]
    pub const fn accept(params: Connect6<'a>) -> Self {
        Self {
            status: None,
            params: Some(params),
        }
    }

    /// A rejecting reply with status `code` (RFC 8156 §6.1.2) and `message`.
    #[must_use]
    pub const fn reject(code: u16, message: &'a [u8]) -> Self {
        Self {
            status: Some(StatusValue { code, message }),
            params: None,
        }
    }

    /// Whether the reply accepts the connection: no status, or Success.
    #[must_use]
    pub fn accepted(&self) -> bool {
        self.status.is_none_or(|s| s.is_success())
    }

    /// Parse a CONNECTREPLY. An accepting one must carry the parameters of §6.1.2; a
    /// rejecting one may lack them.
    ///
    /// # Errors
    /// [`Error::UnexpectedMessageType`], [`Error::MissingOption`], [`Error::DuplicateOption`],
    /// or a malformed option.
    pub fn parse(m: Message<&'a [u8]>) -> Result<Self, Error> {
        let f = ConnectFields::scan(body(m, MessageType::ConnectReply)?)?;
        let rejected = f.status.is_some_and(|s| !s.is_success());
        let params = match f.params() {
            Ok(p) => Some(p),
            Err(_) if rejected => None,
            Err(e) => return Err(e),
        };
        Ok(Self {
            status: f.status,
            params,
        })
    }

    /// Write this CONNECTREPLY as one frame into `buf`; `xid` is the CONNECT's (RFC 8156
    /// §5.4). Returns the frame length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::OptionTooLong`].
    pub fn emit(&self, buf: &mut [u8], xid: u32, sent_time: u32) -> Result<usize, Error> {
        let mut w = start(buf, MessageType::ConnectReply, xid, sent_time)?;
        write_status(&mut w, self.status.as_ref())?;
        if let Some(p) = &self.params {
            p.write_params(&mut w)?;
        }
        w.finish()
    }
}

/// A STATE message (RFC 8156 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State6 {
    /// `OPTION_F_SERVER_STATE`.
    pub state: ServerState,
    /// `OPTION_F_SERVER_FLAGS`, see [`super::server_flags`].
    pub flags: u8,
    /// `OPTION_F_START_TIME_OF_STATE`: when the sender entered `state`.
    pub start_time: u32,
    /// `OPTION_F_PARTNER_DOWN_TIME`: when the sender went to PARTNER-DOWN; only in that state.
    pub partner_down_time: Option<u32>,
}

impl State6 {
    /// Parse a STATE.
    ///
    /// # Errors
    /// [`Error::UnexpectedMessageType`], [`Error::MissingOption`], [`Error::DuplicateOption`],
    /// [`Error::BadOptionValue`] for a state RFC 8156 §5.5.19 does not define, or a
    /// malformed option.
    pub fn parse(m: Message<&[u8]>) -> Result<Self, Error> {
        let (mut state, mut flags, mut start, mut down) = (None, None, None, None);
        for o in OptionIter::new(body(m, MessageType::State)?) {
            let o = o?;
            match Opt::parse(o)? {
                Opt::ServerState(v) => once(&mut state, v, o.code)?,
                Opt::ServerFlags(v) => once(&mut flags, v, o.code)?,
                Opt::StartTimeOfState(v) => once(&mut start, v, o.code)?,
                Opt::PartnerDownTime(v) => once(&mut down, v, o.code)?,
                _ => {}
            }
        }
        let state = ServerState::try_from(need(state, opt::F_SERVER_STATE)?).map_err(|_| {
            Error::BadOptionValue {
                code: opt::F_SERVER_STATE,
            }
        })?;
        Ok(Self {
            state,
            flags: need(flags, opt::F_SERVER_FLAGS)?,
            start_time: need(start, opt::F_START_TIME_OF_STATE)?,
            partner_down_time: down,
        })
    }

    /// Write this STATE as one frame into `buf`; returns the frame length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8], xid: u32, sent_time: u32) -> Result<usize, Error> {
        let mut w = start(buf, MessageType::State, xid, sent_time)?;
        w.option_u8(opt::F_SERVER_STATE, self.state.into())?;
        w.option_u8(opt::F_SERVER_FLAGS, self.flags)?;
        w.option_u32(opt::F_START_TIME_OF_STATE, self.start_time)?;
        opt_u32(&mut w, opt::F_PARTNER_DOWN_TIME, self.partner_down_time)?;
        w.finish()
    }
}

/// A DISCONNECT (RFC 8156 §5.3.10): it SHOULD carry a status, often `ServerShuttingDown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect6<'a> {
    /// The reason, if given.
    pub status: Option<StatusValue<'a>>,
}

impl<'a> Disconnect6<'a> {
    /// Parse a DISCONNECT.
    ///
    /// # Errors
    /// [`Error::UnexpectedMessageType`], [`Error::DuplicateOption`], or a malformed option.
    pub fn parse(m: Message<&'a [u8]>) -> Result<Self, Error> {
        let mut status = None;
        for o in OptionIter::new(body(m, MessageType::Disconnect)?) {
            let o = o?;
            if let Opt::StatusCode { code, message } = Opt::parse(o)? {
                once(&mut status, StatusValue { code, message }, o.code)?;
            }
        }
        Ok(Self { status })
    }

    /// Write this DISCONNECT as one frame into `buf`; returns the frame length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::OptionTooLong`].
    pub fn emit(&self, buf: &mut [u8], xid: u32, sent_time: u32) -> Result<usize, Error> {
        let mut w = start(buf, MessageType::Disconnect, xid, sent_time)?;
        write_status(&mut w, self.status.as_ref())?;
        w.finish()
    }
}

/// What a binding holds: an address or a delegated prefix. The same as the lease record's
/// kind.
pub type IaKind6 = IaKind;

/// One address or prefix binding of a BNDUPD or BNDREPLY: an IAADDR or IAPREFIX with the
/// IA it sits in (RFC 8156 §7.4, §7.6), or a top-level IAPREFIX for a prefix bound to no
/// client. Absolute times are failover times (seconds since 2000-01-01 UTC), see
/// [`super::to_unix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseBinding<'a> {
    /// Address (IAADDR in `IA_NA`) or prefix (IAPREFIX in `IA_PD`, or top level).
    pub kind: IaKind6,
    /// The IA's IAID (RFC 8415 §21.4, §21.21); 0 for a top-level prefix.
    pub iaid: u32,
    /// The IA's T1 as sent to the client.
    pub t1: u32,
    /// The IA's T2 as sent to the client.
    pub t2: u32,
    /// The address, or the prefix.
    pub addr: Ipv6Addr,
    /// 128 for an address, the prefix length for a prefix.
    pub prefix_len: u8,
    /// Preferred lifetime sent to the client, seconds.
    pub preferred: u32,
    /// Valid lifetime sent to the client, seconds.
    pub valid: u32,
    /// `OPTION_F_BINDING_STATUS` (required in a BNDUPD, §7.4).
    pub status: Option<BindingStatus>,
    /// `OPTION_F_START_TIME_OF_STATE` (required in a BNDUPD, §7.4).
    pub start_time_of_state: Option<u32>,
    /// `OPTION_F_STATE_EXPIRATION_TIME`.
    pub state_expiration_time: Option<u32>,
    /// `OPTION_CLT_TIME`: seconds between the client's last transaction and the base time.
    pub clt_time: Option<u32>,
    /// `OPTION_F_PARTNER_LIFETIME`.
    pub partner_lifetime: Option<u32>,
    /// `OPTION_F_PARTNER_LIFETIME_SENT` (BNDREPLY, §7.6).
    pub partner_lifetime_sent: Option<u32>,
    /// `OPTION_F_PARTNER_RAW_CLT_TIME`.
    pub partner_raw_clt_time: Option<u32>,
    /// `OPTION_F_EXPIRATION_TIME`.
    pub expiration_time: Option<u32>,
    /// `OPTION_LQ_BASE_TIME` inside the IAPREFIX of a top-level prefix, where RFC 8156 §7.4
    /// requires it (a client's is in [`ClientData6`]); written wherever it is `Some`.
    pub base_time: Option<u32>,
    /// `OPTION_STATUS_CODE` inside the IAADDR/IAPREFIX: rejection of this binding (§7.6).
    pub status_code: Option<StatusValue<'a>>,
    /// `OPTION_STATUS_CODE` of the enclosing IA: rejection of the whole IA (§7.7).
    pub ia_status: Option<StatusValue<'a>>,
}

/// Times [`LeaseBinding::from_lease6`] needs beyond the lease record, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingTimes {
    /// Now: the base time of the update; lifetimes and `OPTION_CLT_TIME` count from it.
    pub now: u32,
    /// When the lease entered its binding state (start-time-of-state, RFC 8156 §7.3).
    pub start_time_of_state: u32,
    /// partner-lifetime: when the partner may consider the lease expired (§7.3).
    pub partner_lifetime: u32,
    /// expiration-time: the greatest lifetime this server acknowledged to its partner (§7.3).
    pub expiration_time: u32,
}

impl LeaseBinding<'_> {
    /// A binding with no failover options (all `None`), to fill in.
    #[must_use]
    pub const fn new(kind: IaKind6, addr: Ipv6Addr, prefix_len: u8) -> Self {
        Self {
            kind,
            iaid: 0,
            t1: 0,
            t2: 0,
            addr,
            prefix_len,
            preferred: 0,
            valid: 0,
            status: None,
            start_time_of_state: None,
            state_expiration_time: None,
            clt_time: None,
            partner_lifetime: None,
            partner_lifetime_sent: None,
            partner_raw_clt_time: None,
            expiration_time: None,
            base_time: None,
            status_code: None,
            ia_status: None,
        }
    }

    /// The binding a BNDUPD sends for `lease` (RFC 8156 §7.4). Lifetimes count from
    /// `t.now`; the timeout values (state-expiration-time, partner-lifetime,
    /// expiration-time) are sent only for the states the lease record gives an end to,
    /// ACTIVE (valid lifetime) and ABANDONED (probation), as §7.4 requires them exactly
    /// when the status has a timeout. FREE-BACKUP stands for the record's BACKUP; T1 and T2
    /// are 0 (the partner does not need them). `base_time` stays `None`: the client data
    /// carries it ([`ClientData6::new`]); set it to `from_unix(t.now)` for a top-level prefix.
    #[must_use]
    pub fn from_lease6(lease: &Lease6, t: &BindingTimes) -> LeaseBinding<'static> {
        let status = match lease.state {
            BindingState::Free => BindingStatus::Free,
            BindingState::Active => BindingStatus::Active,
            BindingState::Expired => BindingStatus::Expired,
            BindingState::Released => BindingStatus::Released,
            BindingState::Abandoned => BindingStatus::Abandoned,
            BindingState::Reset => BindingStatus::Reset,
            BindingState::Backup => BindingStatus::FreeBackup,
        };
        let timeout = matches!(lease.state, BindingState::Active | BindingState::Abandoned);
        let mut b = LeaseBinding::new(lease.kind, lease.addr, lease.prefix_len);
        b.iaid = lease.iaid;
        if lease.state == BindingState::Active {
            b.preferred = lease.preferred_until.saturating_sub(t.now);
            b.valid = lease.expires.saturating_sub(t.now);
        }
        b.status = Some(status);
        b.start_time_of_state = Some(from_unix(t.start_time_of_state));
        if lease.cltt != 0 {
            b.clt_time = Some(t.now.saturating_sub(lease.cltt));
        }
        if timeout {
            b.state_expiration_time = Some(from_unix(lease.expires));
            b.partner_lifetime = Some(from_unix(t.partner_lifetime));
            b.expiration_time = Some(from_unix(t.expiration_time));
        }
        b
    }

    /// The lease record for this binding of client `duid`, its data captured at `base_time`
    /// (the failover time of the enclosing `OPTION_LQ_BASE_TIME`), in subnet `subnet_id`.
    /// PENDING-FREE becomes FREE (RFC 8156 §7.2 lets an implementation go straight to the
    /// destination state), FREE-BACKUP becomes BACKUP. The expiry is the
    /// state-expiration-time when sent, else the base time plus the valid lifetime; the CLTT
    /// is the base time minus `OPTION_CLT_TIME`, else the start-time-of-state; the partner's
    /// acknowledged expiry is `OPTION_F_PARTNER_LIFETIME_SENT` (what a BNDREPLY echoes,
    /// §7.6), else 0. The record is not marked for update.
    ///
    /// # Errors
    /// [`Error::MissingOption`] without a binding status, [`Error::BadOptionValue`] for a
    /// DUID too long for a [`ClientKey`].
    pub fn to_lease6(&self, duid: &[u8], base_time: u32, subnet_id: u32) -> Result<Lease6, Error> {
        let state = match need(self.status, opt::F_BINDING_STATUS)? {
            BindingStatus::Active => BindingState::Active,
            BindingStatus::Expired => BindingState::Expired,
            BindingStatus::Released => BindingState::Released,
            BindingStatus::PendingFree | BindingStatus::Free => BindingState::Free,
            BindingStatus::FreeBackup => BindingState::Backup,
            BindingStatus::Abandoned => BindingState::Abandoned,
            BindingStatus::Reset => BindingState::Reset,
        };
        let client = ClientKey::from_duid(duid).map_err(|_| Error::BadOptionValue {
            code: opt::CLIENTID,
        })?;
        let base = to_unix(base_time);
        let cltt = match (self.clt_time, self.start_time_of_state) {
            (Some(c), _) => base.saturating_sub(c),
            (None, Some(s)) => to_unix(s),
            (None, None) => base,
        };
        Ok(Lease6 {
            kind: self.kind,
            addr: self.addr,
            prefix_len: self.prefix_len,
            state,
            client,
            iaid: self.iaid,
            subnet_id,
            preferred_until: base.saturating_add(self.preferred),
            expires: self
                .state_expiration_time
                .map_or(base.saturating_add(self.valid), to_unix),
            cltt,
            partner_expires: self.partner_lifetime_sent.map_or(0, to_unix),
            update_pending: false,
        })
    }
}

impl<'a> LeaseBinding<'a> {
    /// Parse the value of an IAADDR (`kind` Na) or IAPREFIX (`kind` Pd) with its failover
    /// options (RFC 8156 §7.4, §7.6); `iaid`, `t1`, `t2` and `ia_status` come from the
    /// enclosing IA.
    fn parse_value(
        kind: IaKind6,
        value: &'a [u8],
        ia_fixed: (u32, u32, u32),
        ia_status: Option<StatusValue<'a>>,
    ) -> Result<Self, Error> {
        let (addr, prefix_len, preferred, valid, options) = match kind {
            IaKind::Na => {
                let code = opt::IAADDR;
                let Some(fixed_part) = value.get(..iaaddr::FIXED_LEN) else {
                    return Err(Error::BadOptionLength { code });
                };
                let a: [u8; 16] = fixed(code, &fixed_part[iaaddr::ADDRESS])?;
                (
                    Ipv6Addr::from(a),
                    128,
                    u32_of(code, &fixed_part[iaaddr::PREFERRED])?,
                    u32_of(code, &fixed_part[iaaddr::VALID])?,
                    &value[iaaddr::OPTIONS],
                )
            }
            IaKind::Pd => {
                let code = opt::IAPREFIX;
                let Some(fixed_part) = value.get(..iaprefix::FIXED_LEN) else {
                    return Err(Error::BadOptionLength { code });
                };
                let len = fixed_part[iaprefix::PREFIX_LEN];
                if len > 128 {
                    return Err(Error::BadOptionValue { code });
                }
                let a: [u8; 16] = fixed(code, &fixed_part[iaprefix::PREFIX])?;
                (
                    Ipv6Addr::from(a),
                    len,
                    u32_of(code, &fixed_part[iaprefix::PREFERRED])?,
                    u32_of(code, &fixed_part[iaprefix::VALID])?,
                    &value[iaprefix::OPTIONS],
                )
            }
        };
        let mut bind = Self::new(kind, addr, prefix_len);
        (bind.iaid, bind.t1, bind.t2) = ia_fixed;
        bind.preferred = preferred;
        bind.valid = valid;
        bind.ia_status = ia_status;
        for o in OptionIter::new(options) {
            let o = o?;
            let c = o.code;
            match Opt::parse(o)? {
                Opt::BindingStatus(v) => {
                    let s = BindingStatus::try_from(v)
                        .map_err(|_| Error::BadOptionValue { code: c })?;
                    once(&mut bind.status, s, c)?;
                }
                Opt::StartTimeOfState(v) => once(&mut bind.start_time_of_state, v, c)?,
                Opt::StateExpirationTime(v) => once(&mut bind.state_expiration_time, v, c)?,
                Opt::CltTime(v) => once(&mut bind.clt_time, v, c)?,
                Opt::PartnerLifetime(v) => once(&mut bind.partner_lifetime, v, c)?,
                Opt::PartnerLifetimeSent(v) => once(&mut bind.partner_lifetime_sent, v, c)?,
                Opt::PartnerRawCltTime(v) => once(&mut bind.partner_raw_clt_time, v, c)?,
                Opt::ExpirationTime(v) => once(&mut bind.expiration_time, v, c)?,
                Opt::LqBaseTime(v) => once(&mut bind.base_time, v, c)?,
                Opt::StatusCode { code, message } => {
                    once(&mut bind.status_code, StatusValue { code, message }, c)?;
                }
                // The client FQDN, OPTION_VSS, DNS removal data: not interpreted here.
                _ => {}
            }
        }
        Ok(bind)
    }

    /// The fixed part of the IAADDR or IAPREFIX value.
    fn fixed_part(&self) -> ([u8; iaprefix::FIXED_LEN], usize) {
        let mut f = [0u8; iaprefix::FIXED_LEN];
        let a = self.addr.octets();
        match self.kind {
            IaKind::Na => {
                f[iaaddr::ADDRESS].copy_from_slice(&a);
                f[iaaddr::PREFERRED].copy_from_slice(&self.preferred.to_be_bytes());
                f[iaaddr::VALID].copy_from_slice(&self.valid.to_be_bytes());
                (f, iaaddr::FIXED_LEN)
            }
            IaKind::Pd => {
                f[iaprefix::PREFERRED].copy_from_slice(&self.preferred.to_be_bytes());
                f[iaprefix::VALID].copy_from_slice(&self.valid.to_be_bytes());
                f[iaprefix::PREFIX_LEN] = self.prefix_len;
                f[iaprefix::PREFIX].copy_from_slice(&a);
                (f, iaprefix::FIXED_LEN)
            }
        }
    }

    /// What identifies the IA this binding is written in.
    fn ia_key(&self) -> (IaKind6, u32, u32, u32, Option<StatusValue<'a>>) {
        (self.kind, self.iaid, self.t1, self.t2, self.ia_status)
    }

    fn code(&self) -> u16 {
        match self.kind {
            IaKind::Na => opt::IAADDR,
            IaKind::Pd => opt::IAPREFIX,
        }
    }

    /// The IAADDR or IAPREFIX with its failover options, in the order of RFC 8156 §7.4.
    fn write_address(&self, w: &mut MessageWriter<'_>) -> Result<(), Error> {
        let (f, n) = self.fixed_part();
        nested(w, self.code(), &f[..n], |w| {
            opt_u32(w, opt::LQ_BASE_TIME, self.base_time)?;
            write_status(w, self.status_code.as_ref())?;
            if let Some(s) = self.status {
                w.option_u8(opt::F_BINDING_STATUS, s.into())?;
            }
            opt_u32(w, opt::F_START_TIME_OF_STATE, self.start_time_of_state)?;
            opt_u32(w, opt::F_STATE_EXPIRATION_TIME, self.state_expiration_time)?;
            opt_u32(w, opt::CLT_TIME, self.clt_time)?;
            opt_u32(w, opt::F_PARTNER_LIFETIME, self.partner_lifetime)?;
            opt_u32(w, opt::F_PARTNER_LIFETIME_SENT, self.partner_lifetime_sent)?;
            opt_u32(w, opt::F_PARTNER_RAW_CLT_TIME, self.partner_raw_clt_time)?;
            opt_u32(w, opt::F_EXPIRATION_TIME, self.expiration_time)
        })
    }

    /// Write this binding as a top-level IAPREFIX: a delegable prefix bound to no client
    /// (RFC 8156 §7.4).
    ///
    /// # Errors
    /// [`Error::BadOptionValue`] when it is not a prefix, [`Error::BufferTooSmall`].
    pub fn write_prefix(&self, w: &mut MessageWriter<'_>) -> Result<(), Error> {
        if self.kind != IaKind::Pd {
            return Err(Error::BadOptionValue {
                code: opt::IAPREFIX,
            });
        }
        self.write_address(w)
    }
}

/// The value of an `OPTION_CLIENT_DATA` (RFC 5007 §4.1.2.2) in a BNDUPD or BNDREPLY: the
/// client, the base time of its data, and its IAs (RFC 8156 §7.4, §7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientData6<'a> {
    /// `OPTION_CLIENTID`: the client's DUID.
    pub duid: &'a [u8],
    /// `OPTION_LQ_BASE_TIME` (required in a BNDUPD, §7.4).
    pub base_time: Option<u32>,
    /// `OPTION_F_RECONFIGURE_DATA`: when the key was made, and the key.
    pub reconfigure: Option<(u32, &'a [u8])>,
    /// `OPTION_STATUS_CODE` at the top of the client data: rejection of it all (§7.6).
    pub status: Option<StatusValue<'a>>,
    options: &'a [u8],
}

impl<'a> ClientData6<'a> {
    /// Client data to write, for client `duid` at base time `base_time` (a failover time).
    #[must_use]
    pub const fn new(duid: &'a [u8], base_time: u32) -> Self {
        Self {
            duid,
            base_time: Some(base_time),
            reconfigure: None,
            status: None,
            options: &[],
        }
    }

    /// Parse the value of an `OPTION_CLIENT_DATA`.
    ///
    /// # Errors
    /// [`Error::MissingOption`] without a client id, [`Error::BadOptionValue`] for a DUID
    /// outside RFC 8415 §11.1's bounds, [`Error::DuplicateOption`], or a malformed option.
    pub fn parse(value: &'a [u8]) -> Result<Self, Error> {
        let (mut duid, mut base, mut reconf, mut st) = (None, None, None, None);
        for o in OptionIter::new(value) {
            let o = o?;
            match Opt::parse(o)? {
                Opt::ClientId(d) => {
                    if !(MIN_DUID_LEN..=MAX_DUID_LEN).contains(&d.len()) {
                        return Err(Error::BadOptionValue { code: o.code });
                    }
                    once(&mut duid, d, o.code)?;
                }
                Opt::LqBaseTime(v) => once(&mut base, v, o.code)?,
                Opt::ReconfigureData { time, key } => once(&mut reconf, (time, key), o.code)?,
                Opt::StatusCode { code, message } => {
                    once(&mut st, StatusValue { code, message }, o.code)?;
                }
                _ => {}
            }
        }
        Ok(Self {
            duid: need(duid, opt::CLIENTID)?,
            base_time: base,
            reconfigure: reconf,
            status: st,
            options: value,
        })
    }

    /// The client options as received (empty for one made with [`Self::new`]).
    #[must_use]
    pub const fn options(&self) -> &'a [u8] {
        self.options
    }

    /// The address and prefix bindings of the received IAs, in order.
    #[must_use]
    pub fn leases(&self) -> LeaseIter<'a> {
        LeaseIter {
            outer: OptionIter::new(self.options),
            ia: None,
            failed: false,
        }
    }

    /// Write an `OPTION_CLIENT_DATA` holding this client's fields and `leases`. Consecutive
    /// bindings of the same IA (kind, IAID, T1, T2 and IA status alike) share one IA option.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::OptionTooLong`]; the message is left as it was.
    pub fn write<'l>(
        &self,
        w: &mut MessageWriter<'_>,
        leases: impl IntoIterator<Item = LeaseBinding<'l>>,
    ) -> Result<(), Error> {
        self.write_results(w, leases.into_iter().map(Ok))
    }

    fn write_results<'l>(
        &self,
        w: &mut MessageWriter<'_>,
        leases: impl Iterator<Item = Result<LeaseBinding<'l>, Error>>,
    ) -> Result<(), Error> {
        nested(w, opt::CLIENT_DATA, &[], |w| {
            w.option(opt::CLIENTID, self.duid)?;
            opt_u32(w, opt::LQ_BASE_TIME, self.base_time)?;
            if let Some((time, key)) = self.reconfigure {
                w.opt(&Opt::ReconfigureData { time, key })?;
            }
            write_status(w, self.status.as_ref())?;
            let mut leases = leases.peekable();
            while let Some(first) = leases.next() {
                let first = first?;
                let code = match first.kind {
                    IaKind::Na => opt::IA_NA,
                    IaKind::Pd => opt::IA_PD,
                };
                let key = first.ia_key();
                let mut f = [0u8; ia::FIXED_LEN];
                f[ia::IAID].copy_from_slice(&first.iaid.to_be_bytes());
                f[ia::T1].copy_from_slice(&first.t1.to_be_bytes());
                f[ia::T2].copy_from_slice(&first.t2.to_be_bytes());
                nested(w, code, &f, |w| {
                    write_status(w, first.ia_status.as_ref())?;
                    first.write_address(w)?;
                    while let Some(next) =
                        leases.next_if(|l| l.as_ref().is_ok_and(|l| l.ia_key() == key))
                    {
                        next?.write_address(w)?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })
    }
}

/// The IA being walked by a [`LeaseIter`].
#[derive(Debug, Clone)]
struct IaWalk<'a> {
    kind: IaKind6,
    fixed: (u32, u32, u32),
    status: Option<StatusValue<'a>>,
    options: OptionIter<'a>,
}

/// Iterator over the bindings of a [`ClientData6`]: each IAADDR of an `IA_NA` and each
/// IAPREFIX of an `IA_PD` (RFC 8156 §7.4), with its IA's IAID, T1, T2 and status. An
/// `IA_TA` yields [`Error::UnsupportedOption`]; a malformed option yields its error, after
/// which the iterator is fused.
#[derive(Debug, Clone)]
pub struct LeaseIter<'a> {
    outer: OptionIter<'a>,
    ia: Option<IaWalk<'a>>,
    failed: bool,
}

impl<'a> LeaseIter<'a> {
    fn enter_ia(kind: IaKind6, code: u16, value: &'a [u8]) -> Result<IaWalk<'a>, Error> {
        let Some(fixed_part) = value.get(..ia::FIXED_LEN) else {
            return Err(Error::BadOptionLength { code });
        };
        let options = &value[ia::OPTIONS];
        // The IA's own status may follow its addresses: find it first (RFC 8156 §7.7).
        let mut status = None;
        for o in OptionIter::new(options) {
            let o = o?;
            if o.code == opt::STATUS_CODE {
                once(&mut status, StatusValue::parse(o.value)?, o.code)?;
            }
        }
        Ok(IaWalk {
            kind,
            fixed: (
                u32_of(code, &fixed_part[ia::IAID])?,
                u32_of(code, &fixed_part[ia::T1])?,
                u32_of(code, &fixed_part[ia::T2])?,
            ),
            status,
            options: OptionIter::new(options),
        })
    }

    fn step(&mut self) -> Option<Result<LeaseBinding<'a>, Error>> {
        loop {
            if let Some(walk) = &mut self.ia {
                match walk.options.next() {
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(o)) => {
                        let wanted = match walk.kind {
                            IaKind::Na => opt::IAADDR,
                            IaKind::Pd => opt::IAPREFIX,
                        };
                        if o.code == wanted {
                            return Some(LeaseBinding::parse_value(
                                walk.kind,
                                o.value,
                                walk.fixed,
                                walk.status,
                            ));
                        }
                        if matches!(o.code, opt::IAADDR | opt::IAPREFIX) {
                            // An address in an IA_PD or a prefix in an IA_NA.
                            return Some(Err(Error::BadOptionValue { code: o.code }));
                        }
                        continue;
                    }
                    None => self.ia = None,
                }
            }
            let o = match self.outer.next()? {
                Ok(o) => o,
                Err(e) => return Some(Err(e)),
            };
            let kind = match o.code {
                opt::IA_NA => IaKind::Na,
                opt::IA_PD => IaKind::Pd,
                opt::IA_TA => return Some(Err(Error::UnsupportedOption { code: o.code })),
                _ => continue,
            };
            match Self::enter_ia(kind, o.code, o.value) {
                Ok(walk) => self.ia = Some(walk),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<'a> Iterator for LeaseIter<'a> {
    type Item = Result<LeaseBinding<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.step();
        if matches!(r, Some(Err(_))) {
            self.failed = true;
        }
        r
    }
}

impl std::iter::FusedIterator for LeaseIter<'_> {}

/// What one BNDUPD or BNDREPLY is about (RFC 8156 §7.5.3): one client's bindings, or one
/// delegable prefix bound to no client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingBody<'a> {
    /// An `OPTION_CLIENT_DATA`.
    Client(ClientData6<'a>),
    /// A top-level `OPTION_IAPREFIX`.
    Prefix(LeaseBinding<'a>),
}

impl<'a> BindingBody<'a> {
    /// The single `OPTION_CLIENT_DATA` or top-level IAPREFIX of `options`.
    fn scan(options: &'a [u8]) -> Result<Self, Error> {
        let mut found: Option<Self> = None;
        for o in OptionIter::new(options) {
            let o = o?;
            let b = match o.code {
                opt::CLIENT_DATA => Self::Client(ClientData6::parse(o.value)?),
                opt::IAPREFIX => Self::Prefix(LeaseBinding::parse_value(
                    IaKind::Pd,
                    o.value,
                    (0, 0, 0),
                    None,
                )?),
                _ => continue,
            };
            // RFC 8156 §7.5.3: a single OPTION_CLIENT_DATA or a single OPTION_IAPREFIX.
            once(&mut found, b, o.code)?;
        }
        need(found, opt::CLIENT_DATA)
    }

    fn write(&self, w: &mut MessageWriter<'_>) -> Result<(), Error> {
        match self {
            Self::Client(cd) => cd.write_results(w, cd.leases()),
            Self::Prefix(p) => p.write_prefix(w),
        }
    }

    fn emit(
        &self,
        msg_type: MessageType,
        buf: &mut [u8],
        xid: u32,
        sent_time: u32,
    ) -> Result<usize, Error> {
        let mut w = start(buf, msg_type, xid, sent_time)?;
        self.write(&mut w)?;
        w.finish()
    }
}

/// A BNDUPD (RFC 8156 §5.3.1, §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingUpdate6<'a> {
    /// The client or the prefix the update is about.
    pub body: BindingBody<'a>,
}

impl<'a> BindingUpdate6<'a> {
    /// Parse a BNDUPD and check what §7.4 says MUST appear: the base time, at least one IA
    /// in client data, and the binding status and start-time-of-state of every binding.
    ///
    /// # Errors
    /// [`Error::UnexpectedMessageType`], [`Error::MissingOption`], [`Error::DuplicateOption`]
    /// (two bindings, §7.5.3), or a malformed option anywhere in the binding.
    pub fn parse(m: Message<&'a [u8]>) -> Result<Self, Error> {
        let body = BindingBody::scan(body(m, MessageType::BndUpd)?)?;
        let check = |l: &LeaseBinding<'_>| -> Result<(), Error> {
            need(l.status, opt::F_BINDING_STATUS)?;
            need(l.start_time_of_state, opt::F_START_TIME_OF_STATE)?;
            Ok(())
        };
        match &body {
            BindingBody::Client(cd) => {
                need(cd.base_time, opt::LQ_BASE_TIME)?;
                let mut any = false;
                for l in cd.leases() {
                    check(&l?)?;
                    any = true;
                }
                if !any {
                    return Err(Error::MissingOption { code: opt::IA_NA });
                }
            }
            BindingBody::Prefix(p) => {
                need(p.base_time, opt::LQ_BASE_TIME)?;
                check(p)?;
            }
        }
        Ok(Self { body })
    }

    /// Write this BNDUPD as one frame into `buf`; returns the frame length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::OptionTooLong`], or an error of the received
    /// bindings being copied.
    pub fn emit(&self, buf: &mut [u8], xid: u32, sent_time: u32) -> Result<usize, Error> {
        self.body.emit(MessageType::BndUpd, buf, xid, sent_time)
    }

    /// Write a BNDUPD for client `cd` with `leases` (see [`ClientData6::write`]).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::OptionTooLong`].
    pub fn emit_client<'l>(
        cd: &ClientData6<'_>,
        leases: impl IntoIterator<Item = LeaseBinding<'l>>,
        buf: &mut [u8],
        xid: u32,
        sent_time: u32,
    ) -> Result<usize, Error> {
        let mut w = start(buf, MessageType::BndUpd, xid, sent_time)?;
        cd.write(&mut w, leases)?;
        w.finish()
    }
}

/// A BNDREPLY (RFC 8156 §5.3.2, §7.6): the same client data or prefix as the BNDUPD, with
/// `OPTION_STATUS_CODE`s where something was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingReply6<'a> {
    /// The client or the prefix the reply is about.
    pub body: BindingBody<'a>,
}

impl<'a> BindingReply6<'a> {
    /// Parse a BNDREPLY.
    ///
    /// # Errors
    /// [`Error::UnexpectedMessageType`], [`Error::MissingOption`], [`Error::DuplicateOption`],
    /// or a malformed option in the client data or prefix.
    pub fn parse(m: Message<&'a [u8]>) -> Result<Self, Error> {
        Ok(Self {
            body: BindingBody::scan(body(m, MessageType::BndReply)?)?,
        })
    }

    /// The status rejecting the whole update, if any (RFC 8156 §7.6, "Entire BNDUPD").
    #[must_use]
    pub fn top_status(&self) -> Option<StatusValue<'a>> {
        match &self.body {
            BindingBody::Client(cd) => cd.status,
            BindingBody::Prefix(p) => p.status_code,
        }
    }

    /// Write this BNDREPLY as one frame into `buf`; `xid` is the BNDUPD's (RFC 8156 §7.5.3).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::OptionTooLong`], or an error of the received
    /// bindings being copied.
    pub fn emit(&self, buf: &mut [u8], xid: u32, sent_time: u32) -> Result<usize, Error> {
        self.body.emit(MessageType::BndReply, buf, xid, sent_time)
    }

    /// Write a BNDREPLY for client `cd` with `leases` (see [`ClientData6::write`]).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`], [`Error::OptionTooLong`].
    pub fn emit_client<'l>(
        cd: &ClientData6<'_>,
        leases: impl IntoIterator<Item = LeaseBinding<'l>>,
        buf: &mut [u8],
        xid: u32,
        sent_time: u32,
    ) -> Result<usize, Error> {
        let mut w = start(buf, MessageType::BndReply, xid, sent_time)?;
        cd.write(&mut w, leases)?;
        w.finish()
    }
}
