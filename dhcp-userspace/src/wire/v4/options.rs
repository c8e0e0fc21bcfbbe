//! Option iteration across the `options`, `file` and `sname` areas (RFC 2131 §4.1,
//! RFC 2132 §9.3).

use super::{Error, field, opt};

/// Which area of the message the iterator is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// The options field after the cookie.
    Options,
    /// The `file` field, when option 52 says it holds options.
    File,
    /// The `sname` field, when option 52 says it holds options.
    Sname,
    /// Finished, or stopped after an error.
    Done,
}

/// Iterator over the options of a message, yielding `(code, value)` per instance.
///
/// Order (RFC 2131 §4.1, RFC 3396 §7): the options field, then `file` if option 52 says it
/// is overloaded, then `sname`. PAD (0) is skipped; END (255) ends the current area; an area
/// without END ends with its bytes (a missing END in the options field is tolerated, as
/// deployed clients omit it). Only option 52 found in the options field controls overload;
/// an option 52 inside `file` or `sname` is yielded but has no effect.
///
/// Instances of the same code are yielded separately, in order: concatenating them
/// (RFC 3396) is the caller's job, see [`super::Request`]. After the first `Err` the
/// iterator is fused and yields `None`.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    buf: &'a [u8],
    area: Area,
    pos: usize,
    end: usize,
    overload: u8,
}

impl<'a> OptionIter<'a> {
    /// Iterate over the options of `message`, a whole DHCP message. A buffer shorter than
    /// [`field::MIN_LEN`] yields a single `Err(Truncated)`; the cookie is not checked here
    /// (see [`super::Packet::new_checked`]).
    #[must_use]
    pub fn new(message: &'a [u8]) -> Self {
        Self {
            buf: message,
            area: Area::Options,
            pos: field::OPTIONS.start,
            end: message.len(),
            overload: 0,
        }
    }

    /// The value of option 52 seen so far in the options field (0 when none).
    #[must_use]
    pub fn overload(&self) -> u8 {
        self.overload
    }

    /// Move to the next area to read, per the overload value (RFC 2132 §9.3: 1 = `file`,
    /// 2 = `sname`, 3 = both; RFC 2131 §4.1: `file` before `sname`).
    fn next_area(&mut self) {
        let (area, range) = match self.area {
            Area::Options if self.overload & 1 != 0 => (Area::File, field::FILE),
            Area::Options | Area::File if self.overload & 2 != 0 => (Area::Sname, field::SNAME),
            _ => (Area::Done, 0..0),
        };
        self.area = area;
        self.pos = range.start;
        self.end = range.end;
    }

    /// Stop iterating after a malformed option.
    fn fail(&mut self, e: Error) -> Result<(u8, &'a [u8]), Error> {
        self.area = Area::Done;
        Err(e)
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<(u8, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.area == Area::Options && self.buf.len() < field::MIN_LEN {
            return Some(self.fail(Error::Truncated {
                len: self.buf.len(),
            }));
        }
        loop {
            if self.area == Area::Done {
                return None;
            }
            // `end` never exceeds the buffer: it is its length or a header field's end.
            if self.pos >= self.end {
                self.next_area();
                continue;
            }
            let code = self.buf[self.pos];
            match code {
                // RFC 2132 §3.1: PAD is one byte with no length.
                opt::PAD => {
                    self.pos += 1;
                    continue;
                }
                // RFC 2132 §3.2: END closes the area.
                opt::END => {
                    self.next_area();
                    continue;
                }
                _ => {}
            }
            // RFC 2132 §2: code, length, value; the value must lie inside the area.
            if self.pos + 1 >= self.end {
                return Some(self.fail(Error::BadOptionLength { code }));
            }
            let len = self.buf[self.pos + 1];
            let start = self.pos + 2;
            let stop = start + usize::from(len);
            if stop > self.end {
                return Some(self.fail(Error::BadOptionLength { code }));
            }
            let value = &self.buf[start..stop];
            self.pos = stop;
            if code == opt::OVERLOAD && self.area == Area::Options {
                // RFC 2132 §9.3: one byte, 1..=3. A second instance would be ambiguous.
                match value {
                    [v @ 1..=3] if self.overload == 0 => self.overload = *v,
                    _ => return Some(self.fail(Error::BadOverload)),
                }
            }
            return Some(Ok((code, value)));
        }
    }
}

impl std::iter::FusedIterator for OptionIter<'_> {}
