//! Record framing shared by WAL segments and snapshots.
//!
//! A frame is `[len: u32 LE][crc32c: u32 LE over the 4 len bytes + payload][payload]`,
//! padded with zeros to a multiple of [`ALIGN`] bytes. A zero length word marks the end of
//! written data, so an empty payload cannot be stored.

/// Bytes of the length and checksum words in front of every payload.
pub(crate) const FRAME_HEADER: usize = 8;

/// Every frame starts on a multiple of this many bytes.
pub(crate) const ALIGN: usize = 8;

/// Bytes a payload of `payload_len` bytes occupies once framed and padded.
pub(crate) const fn framed_len(payload_len: usize) -> usize {
    (FRAME_HEADER + payload_len + ALIGN - 1) & !(ALIGN - 1)
}

/// The checksum stored in a frame: crc32c over the little-endian length word and the payload,
/// so a length corrupted into another plausible value is caught too.
pub(crate) fn frame_crc(payload: &[u8]) -> u32 {
    let len = (payload.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// Write the frame of `payload` into `out`, which must be exactly
/// [`framed_len`]`(payload.len())` bytes long; the padding is zeroed.
///
/// The length word goes last (the compiler may not move it earlier): a process killed in the
/// middle leaves a zero length word, the end of the log, never a frame that fails its checks
/// (the mapping is the page cache, which outlives the process).
pub(crate) fn write_frame(out: &mut [u8], payload: &[u8]) {
    debug_assert_eq!(out.len(), framed_len(payload.len()));
    let n = payload.len();
    out[FRAME_HEADER..FRAME_HEADER + n].copy_from_slice(payload);
    out[FRAME_HEADER + n..].fill(0);
    out[4..8].copy_from_slice(&frame_crc(payload).to_le_bytes());
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::Release);
    out[..4].copy_from_slice(&(n as u32).to_le_bytes());
}

/// Zero `buf` from its end towards its start, so a process killed in the middle leaves a
/// prefix of whole frames followed by zeros (never zeros followed by frames, which recovery
/// would take for damage in the middle of the log).
pub(crate) fn zero_backwards(buf: &mut [u8]) {
    let mut end = buf.len();
    while end > 0 {
        let start = end.saturating_sub(4096);
        buf[start..end].fill(0);
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::Release);
        end = start;
    }
}

/// Why reading a frame failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadFrame {
    /// The length word points past the end of the region.
    Length,
    /// The checksum does not match the length and payload.
    Crc,
}

impl BadFrame {
    /// The name used in [`super::StopPoint::reason`] and in errors.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Length => "bad_length",
            Self::Crc => "crc_mismatch",
        }
    }
}

/// Outcome of reading the frame at one offset.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A valid record and the offset of the next frame.
    Record(&'a [u8], usize),
    /// A zero length word, or no room left for a frame header: the end of written data.
    End,
    /// A frame that fails its checks.
    Bad(BadFrame),
}

/// Read the frame starting at `off` (a multiple of [`ALIGN`]) in `buf`.
pub(crate) fn read_frame(buf: &[u8], off: usize) -> Frame<'_> {
    if off + FRAME_HEADER > buf.len() {
        return Frame::End;
    }
    let word = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let len = word(off) as usize;
    if len == 0 {
        return Frame::End;
    }
    let start = off + FRAME_HEADER;
    if len > buf.len() - start {
        return Frame::Bad(BadFrame::Length);
    }
    let payload = &buf[start..start + len];
    if frame_crc(payload) != word(off + 4) {
        return Frame::Bad(BadFrame::Crc);
    }
    Frame::Record(payload, (off + framed_len(len)).min(buf.len()))
}

/// Whether any valid-looking frame starts at an aligned offset in `buf[from..]`: used after a
/// stop to tell a corrupt record in the middle of the log from a torn tail.
#[cfg(test)]
pub(crate) fn valid_frame_after(buf: &[u8], from: usize) -> bool {
    next_valid_frame(buf, from).is_some()
}

/// Offset of the first valid-looking frame at an aligned offset in `buf[from..]`.
pub(crate) fn next_valid_frame(buf: &[u8], from: usize) -> Option<usize> {
    let mut off = from.next_multiple_of(ALIGN);
    while off + FRAME_HEADER <= buf.len() {
        if matches!(read_frame(buf, off), Frame::Record(..)) {
            return Some(off);
        }
        off += ALIGN;
    }
    None
}

/// Index one past the last non-zero byte of `buf[from..]`, or `None` when it is all zeros.
pub(crate) fn last_nonzero(buf: &[u8], from: usize) -> Option<usize> {
    let tail = &buf[from.min(buf.len())..];
    // Word-at-a-time from the end: the common case is megabytes of zeros.
    let mut end = tail.len();
    while end >= 8 {
        let w = u64::from_ne_bytes(tail[end - 8..end].try_into().expect("8-byte slice"));
        if w != 0 {
            break;
        }
        end -= 8;
    }
    while end > 0 && tail[end - 1] == 0 {
        end -= 1;
    }
    (end > 0).then(|| from + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_and_checks() {
        let payload = b"0123456789abcdefghij-payload";
        let n = framed_len(payload.len());
        assert_eq!(n % ALIGN, 0);
        let mut buf = vec![0u8; n + 16];
        write_frame(&mut buf[..n], payload);
        assert_eq!(read_frame(&buf, 0), Frame::Record(payload, n));
        assert_eq!(read_frame(&buf, n), Frame::End);
        assert!(valid_frame_after(&buf, 0));
        assert!(!valid_frame_after(&buf, 8));

        let mut flipped = buf.clone();
        flipped[FRAME_HEADER + 3] ^= 0x40;
        assert_eq!(read_frame(&flipped, 0), Frame::Bad(BadFrame::Crc));

        let mut long = buf.clone();
        long[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(read_frame(&long, 0), Frame::Bad(BadFrame::Length));
    }

    #[test]
    fn last_nonzero_finds_junk() {
        let mut buf = vec![0u8; 100];
        assert_eq!(last_nonzero(&buf, 0), None);
        buf[37] = 1;
        assert_eq!(last_nonzero(&buf, 0), Some(38));
        assert_eq!(last_nonzero(&buf, 38), None);
        assert_eq!(last_nonzero(&buf, 37), Some(38));
    }
}
