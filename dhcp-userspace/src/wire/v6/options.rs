//! Option iteration (RFC 8415 §21.1) and typed views over option values that carry a fixed
//! part and nested options (RFC 8415 §21.4, §21.6, §21.13, §21.21, §21.22).

use std::net::Ipv6Addr;

use super::packet::{be32, ip6};
use super::{Error, StatusCode, field, opt};

/// Iterator over an options area, yielding `(code, value)` per option in wire order.
///
/// RFC 8415 §21.1: each option is a 2-byte code, a 2-byte length and that many bytes of
/// value, with no padding between options. An area ends exactly at its last option: a
/// header cut short or a length running past the end of the area is an
/// [`Error::BadOptionLength`]. Every yielded value lies inside the area given to
/// [`OptionIter::new`]. After the first `Err` the iterator is fused and yields `None`.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> OptionIter<'a> {
    /// Iterate over `options`, an options area (of a message, a relay message or an option
    /// that encapsulates options).
    #[must_use]
    pub const fn new(options: &'a [u8]) -> Self {
        Self {
            rest: options,
            failed: false,
        }
    }

    /// The bytes not yet read.
    #[must_use]
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<(u16, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let Some(([c0, c1, l0, l1], value)) = self.rest.split_first_chunk::<4>() else {
            // RFC 8415 §21.1: a header is 4 bytes; report the code when it is there.
            let code = match self.rest {
                [a, b, ..] => u16::from_be_bytes([*a, *b]),
                _ => 0,
            };
            self.failed = true;
            return Some(Err(Error::BadOptionLength { code }));
        };
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if len > value.len() {
            self.failed = true;
            return Some(Err(Error::BadOptionLength { code }));
        }
        let (value, rest) = value.split_at(len);
        self.rest = rest;
        Some(Ok((code, value)))
    }
}

impl std::iter::FusedIterator for OptionIter<'_> {}

/// The value of the first option `code` in `options`, or `None`. Options after it are not
/// read; a framing error before it is returned.
pub fn find_option(options: &[u8], code: u16) -> Result<Option<&[u8]>, Error> {
    for item in OptionIter::new(options) {
        let (c, value) = item?;
        if c == code {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// View over the value of an `IA_NA` (RFC 8415 §21.4) or `IA_PD` (RFC 8415 §21.21) option:
/// both are IAID, T1, T2 and nested options (IAADDR or IAPREFIX, and `STATUS_CODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ia<'a> {
    value: &'a [u8],
}

impl<'a> Ia<'a> {
    /// Check `value` holds the 12-byte fixed part. `code` is the option's code (`IA_NA` or
    /// `IA_PD`), used in the error.
    pub fn new(code: u16, value: &'a [u8]) -> Result<Self, Error> {
        if value.len() < field::ia::FIXED_LEN {
            return Err(Error::BadOptionValue { code });
        }
        Ok(Self { value })
    }

    /// `IAID`: the client's identifier for this IA.
    #[must_use]
    pub fn iaid(&self) -> u32 {
        be32(self.value, field::ia::IAID)
    }

    /// `T1`, seconds: when the client should renew (RFC 8415 §21.4).
    #[must_use]
    pub fn t1(&self) -> u32 {
        be32(self.value, field::ia::T1)
    }

    /// `T2`, seconds: when the client should rebind (RFC 8415 §21.4).
    #[must_use]
    pub fn t2(&self) -> u32 {
        be32(self.value, field::ia::T2)
    }

    /// The nested options area.
    #[must_use]
    pub fn options(&self) -> &'a [u8] {
        &self.value[field::ia::OPTIONS]
    }

    /// Iterate over the nested options.
    #[must_use]
    pub fn option_iter(&self) -> OptionIter<'a> {
        OptionIter::new(self.options())
    }
}

/// View over the value of an IAADDR option (RFC 8415 §21.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaAddr<'a> {
    value: &'a [u8],
}

impl<'a> IaAddr<'a> {
    /// Check `value` holds the 24-byte fixed part.
    pub fn new(value: &'a [u8]) -> Result<Self, Error> {
        if value.len() < field::iaaddr::FIXED_LEN {
            return Err(Error::BadOptionValue { code: opt::IAADDR });
        }
        Ok(Self { value })
    }

    /// `IPv6-address`.
    #[must_use]
    pub fn address(&self) -> Ipv6Addr {
        ip6(self.value, field::iaaddr::ADDRESS)
    }

    /// `preferred-lifetime`, seconds.
    #[must_use]
    pub fn preferred(&self) -> u32 {
        be32(self.value, field::iaaddr::PREFERRED)
    }

    /// `valid-lifetime`, seconds.
    #[must_use]
    pub fn valid(&self) -> u32 {
        be32(self.value, field::iaaddr::VALID)
    }

    /// The nested options area (RFC 8415 §21.6: only `STATUS_CODE` is defined there).
    #[must_use]
    pub fn options(&self) -> &'a [u8] {
        &self.value[field::iaaddr::OPTIONS]
    }

    /// Iterate over the nested options.
    #[must_use]
    pub fn option_iter(&self) -> OptionIter<'a> {
        OptionIter::new(self.options())
    }
}

/// View over the value of an IAPREFIX option (RFC 8415 §21.22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaPrefix<'a> {
    value: &'a [u8],
}

impl<'a> IaPrefix<'a> {
    /// Check `value` holds the 25-byte fixed part and a prefix length of at most 128 bits.
    pub fn new(value: &'a [u8]) -> Result<Self, Error> {
        match value.get(field::iaprefix::PREFIX_LEN) {
            Some(&len) if len <= 128 && value.len() >= field::iaprefix::FIXED_LEN => {
                Ok(Self { value })
            }
            _ => Err(Error::BadOptionValue {
                code: opt::IAPREFIX,
            }),
        }
    }

    /// `preferred-lifetime`, seconds.
    #[must_use]
    pub fn preferred(&self) -> u32 {
        be32(self.value, field::iaprefix::PREFERRED)
    }

    /// `valid-lifetime`, seconds.
    #[must_use]
    pub fn valid(&self) -> u32 {
        be32(self.value, field::iaprefix::VALID)
    }

    /// `prefix-length`, bits (at most 128).
    #[must_use]
    pub fn prefix_len(&self) -> u8 {
        self.value[field::iaprefix::PREFIX_LEN]
    }

    /// `IPv6-prefix`, as sent (bits past the prefix length are not cleared).
    #[must_use]
    pub fn prefix(&self) -> Ipv6Addr {
        ip6(self.value, field::iaprefix::PREFIX)
    }

    /// The nested options area (`STATUS_CODE`, RFC 8415 §21.22; `PD_EXCLUDE`, RFC 6603 §4.2).
    #[must_use]
    pub fn options(&self) -> &'a [u8] {
        &self.value[field::iaprefix::OPTIONS]
    }

    /// Iterate over the nested options.
    #[must_use]
    pub fn option_iter(&self) -> OptionIter<'a> {
        OptionIter::new(self.options())
    }
}

/// View over the value of a `STATUS_CODE` option (RFC 8415 §21.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusOption<'a> {
    value: &'a [u8],
}

impl<'a> StatusOption<'a> {
    /// Check `value` holds the 2-byte status code.
    pub fn new(value: &'a [u8]) -> Result<Self, Error> {
        if value.len() < field::status::FIXED_LEN {
            return Err(Error::BadOptionValue {
                code: opt::STATUS_CODE,
            });
        }
        Ok(Self { value })
    }

    /// `status-code`, raw.
    #[must_use]
    pub fn code(&self) -> u16 {
        let b = &self.value[field::status::CODE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// `status-code` as one of the RFC 8415 §21.13 codes, `None` for others.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        StatusCode::from_u16(self.code())
    }

    /// `status-message`: UTF-8 text for humans, raw bytes as sent (RFC 8415 §21.13).
    #[must_use]
    pub fn message(&self) -> &'a [u8] {
        &self.value[field::status::MESSAGE]
    }
}
