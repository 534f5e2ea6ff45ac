//! TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018, RFC 7413), and sequence-number arithmetic.

use core::cmp::Ordering;
use core::ops::{Add, AddAssign, Sub};
use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::IpProtocol;
use super::{Result, WireError};

/// A 32-bit TCP sequence number, compared modulo 2^32 (RFC 9293 §3.4).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance `self - other` in sequence space.
    #[inline]
    pub fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    #[inline]
    pub fn lt(self, o: SeqNum) -> bool {
        self.diff(o) < 0
    }
    #[inline]
    pub fn le(self, o: SeqNum) -> bool {
        self.diff(o) <= 0
    }
    #[inline]
    pub fn gt(self, o: SeqNum) -> bool {
        self.diff(o) > 0
    }
    #[inline]
    pub fn ge(self, o: SeqNum) -> bool {
        self.diff(o) >= 0
    }
    #[inline]
    pub fn max(self, o: SeqNum) -> SeqNum {
        if self.ge(o) {
            self
        } else {
            o
        }
    }
    #[inline]
    pub fn min(self, o: SeqNum) -> SeqNum {
        if self.le(o) {
            self
        } else {
            o
        }
    }
}

impl PartialOrd for SeqNum {
    #[inline]
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}
impl AddAssign<u32> for SeqNum {
    #[inline]
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n)
    }
}
impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}
/// `a - b` as an unsigned count; callers use it only where `a >= b` in sequence space.
impl Sub<SeqNum> for SeqNum {
    type Output = u32;
    #[inline]
    fn sub(self, o: SeqNum) -> u32 {
        self.0.wrapping_sub(o.0)
    }
}

/// Raw TCP header flags (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
    #[inline]
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    #[inline]
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    #[inline]
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    #[inline]
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
    #[inline]
    pub fn psh(self) -> bool {
        self.has(Self::PSH)
    }
    #[inline]
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
}

impl core::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [(u8, &str); 8] = [
            (TcpFlags::SYN, "S"),
            (TcpFlags::FIN, "F"),
            (TcpFlags::RST, "R"),
            (TcpFlags::PSH, "P"),
            (TcpFlags::ACK, "."),
            (TcpFlags::URG, "U"),
            (TcpFlags::ECE, "E"),
            (TcpFlags::CWR, "W"),
        ];
        for (bit, name) in NAMES {
            if self.has(bit) {
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

/// The one control bit a segment carries besides ACK/PSH; `None` for a plain data/ACK segment.
/// (A segment with several of SYN/FIN/RST is representable through `TcpFlags`; this is a convenience view.)
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum TcpControl {
    None,
    Syn,
    Fin,
    Rst,
}

/// One SACK block: `[left, right)` in sequence space (RFC 2018 §3).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct SackBlock {
    pub left: SeqNum,
    pub right: SeqNum,
}

/// Maximum SACK blocks an option can carry (4 without timestamps, 3 with).
pub const MAX_SACK_BLOCKS: usize = 4;
/// Maximum TFO cookie length (RFC 7413 §4.1.1: 4..=16 bytes, even).
pub const MAX_TFO_COOKIE: usize = 16;

/// Minimum TFO cookie length (RFC 7413 §4.1.1).
pub const MIN_TFO_COOKIE: usize = 4;
/// Length of the fixed TCP header (data offset 5).
pub const HEADER_LEN: usize = 20;
/// Most option bytes a header can carry (data offset 15).
pub const MAX_OPTIONS_LEN: usize = 40;

/// Byte offsets of the header fields (RFC 9293 §3.1).
mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset in the upper nibble; reserved bits and AE (formerly NS) in the lower.
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const OPTIONS_START: usize = 20;
}

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
    pub const FAST_OPEN: u8 = 34;
    /// RFC 6994 shared experimental kind; TFO used it with magic 0xF989 before kind 34 was assigned.
    pub const EXPERIMENTAL: u8 = 254;
    pub const FAST_OPEN_MAGIC: [u8; 2] = [0xf9, 0x89];
}

/// A TCP Fast Open cookie (option kind 34). `len == 0` with `present` is a cookie request.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct TfoCookie {
    pub len: u8,
    pub bytes: [u8; MAX_TFO_COOKIE],
}

impl TfoCookie {
    /// A cookie holding `bytes` (at most [`MAX_TFO_COOKIE`]; longer input is `None`). Empty is a cookie request.
    pub fn new(bytes: &[u8]) -> Option<TfoCookie> {
        if bytes.len() > MAX_TFO_COOKIE {
            return None;
        }
        let mut c = TfoCookie { len: bytes.len() as u8, ..TfoCookie::default() };
        c.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(c)
    }
    /// The cookie bytes; empty for a cookie request.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // `len` is a public field: clamp rather than panic on a value no parser produces.
        &self.bytes[..(self.len as usize).min(MAX_TFO_COOKIE)]
    }
    /// Whether the length is one RFC 7413 §4.1.1 allows on the wire (0 = request, or 4..=16).
    #[inline]
    pub fn is_valid_len(&self) -> bool {
        let n = self.len as usize;
        n == 0 || (MIN_TFO_COOKIE..=MAX_TFO_COOKIE).contains(&n)
    }
}

/// Every option we understand. Unknown kinds are skipped on parse (their length still validated).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct TcpOptions {
    /// Kind 2.
    pub mss: Option<u16>,
    /// Kind 3: the shift count (values above 14 are clamped to 14 by the engine, per RFC 7323 §2.3).
    pub window_scale: Option<u8>,
    /// Kind 4.
    pub sack_permitted: bool,
    /// Kind 5: `sack_count` valid entries in `sack`.
    pub sack: [SackBlock; MAX_SACK_BLOCKS],
    pub sack_count: u8,
    /// Kind 8: (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// Kind 34 (or the experimental 254/0xF989): `Some` with len 0 is a cookie request.
    pub tfo_cookie: Option<TfoCookie>,
}

/// Wire sizes of the option groups as we lay them out (each already a multiple of 4).
const MSS_LEN: usize = 4;
/// `04 02 08 0a` or `01 01 08 0a` + TSval + TSecr (RFC 7323 Appendix A layout).
const TS_LEN: usize = 12;
/// `01 01 04 02` when there are no timestamps to share the word with.
const SACK_PERM_LEN: usize = 4;
/// `01 03 03 shift`.
const WS_LEN: usize = 4;
/// `01 01 05 len` before the blocks.
const SACK_HEAD_LEN: usize = 4;
const SACK_BLOCK_LEN: usize = 8;

impl TcpOptions {
    /// The SACK blocks to report, oldest-to-newest as stored.
    #[inline]
    pub fn sack_blocks(&self) -> &[SackBlock] {
        &self.sack[..(self.sack_count as usize).min(MAX_SACK_BLOCKS)]
    }

    /// Replaces the SACK blocks with the first [`MAX_SACK_BLOCKS`] of `blocks`.
    pub fn set_sack_blocks(&mut self, blocks: &[SackBlock]) {
        let n = blocks.len().min(MAX_SACK_BLOCKS);
        self.sack[..n].copy_from_slice(&blocks[..n]);
        self.sack_count = n as u8;
    }

    /// Bytes of every option but the SACK blocks, as [`emit`](Self::emit) lays them out.
    #[inline]
    fn fixed_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += MSS_LEN;
        }
        if self.timestamps.is_some() {
            len += TS_LEN;
        } else if self.sack_permitted {
            len += SACK_PERM_LEN;
        }
        if self.window_scale.is_some() {
            len += WS_LEN;
        }
        if let Some(c) = &self.tfo_cookie {
            len += (2 + c.as_slice().len()).next_multiple_of(4);
        }
        len
    }

    /// How many SACK blocks fit in the 40 option bytes left after the other options (RFC 2018 §3: 3 with
    /// timestamps, 4 without). The first blocks are kept: RFC 2018 §4 puts the most recent one first.
    #[inline]
    fn sack_blocks_that_fit(&self, fixed: usize) -> usize {
        let room = MAX_OPTIONS_LEN.saturating_sub(fixed);
        let fit = room.saturating_sub(SACK_HEAD_LEN) / SACK_BLOCK_LEN;
        self.sack_blocks().len().min(fit)
    }

    /// Bytes these options take on the wire, including NOP padding to a multiple of 4.
    #[inline]
    pub fn wire_len(&self) -> usize {
        let fixed = self.fixed_len();
        match self.sack_blocks_that_fit(fixed) {
            0 => fixed,
            n => fixed + SACK_HEAD_LEN + n * SACK_BLOCK_LEN,
        }
    }

    /// Parses the option bytes of a header (everything between the fixed header and the data offset).
    ///
    /// Every option's length is checked against its kind (RFC 9293 §3.2 requires a receiver to be prepared for
    /// any option and to treat an illegal length as an error): NOP and EOL are one byte, every other kind has a
    /// length byte >= 2 that must not run past the header. Unknown kinds are skipped by their length. A later
    /// instance of an option overrides an earlier one, as in Linux `tcp_parse_options`.
    pub fn parse(bytes: &[u8]) -> Result<TcpOptions> {
        let mut opts = TcpOptions::default();
        let mut i = 0;
        while i < bytes.len() {
            let kind = bytes[i];
            if kind == kind::END {
                break;
            }
            if kind == kind::NOP {
                i += 1;
                continue;
            }
            let Some(&len) = bytes.get(i + 1) else { return Err(WireError::Malformed) };
            let len = len as usize;
            if len < 2 || len > bytes.len() - i {
                return Err(WireError::Malformed);
            }
            let body = &bytes[i + 2..i + len];
            match kind {
                kind::MSS => {
                    let v: [u8; 2] = body.try_into().map_err(|_| WireError::Malformed)?;
                    opts.mss = Some(u16::from_be_bytes(v));
                }
                kind::WINDOW_SCALE => {
                    let [shift] = body else { return Err(WireError::Malformed) };
                    opts.window_scale = Some(*shift);
                }
                kind::SACK_PERMITTED => {
                    if !body.is_empty() {
                        return Err(WireError::Malformed);
                    }
                    opts.sack_permitted = true;
                }
                kind::SACK => {
                    // RFC 2018 §3: 2 + 8n bytes; 40 option bytes bound n by 4.
                    if body.len() % SACK_BLOCK_LEN != 0 || body.len() / SACK_BLOCK_LEN > MAX_SACK_BLOCKS {
                        return Err(WireError::Malformed);
                    }
                    // A repeated SACK option replaces the earlier one whole: no stale blocks past the count.
                    opts.sack = Default::default();
                    let mut n = 0;
                    for b in body.chunks_exact(SACK_BLOCK_LEN) {
                        opts.sack[n] = SackBlock { left: SeqNum(be32(&b[0..4])), right: SeqNum(be32(&b[4..8])) };
                        n += 1;
                    }
                    opts.sack_count = n as u8;
                }
                kind::TIMESTAMPS => {
                    if body.len() != 8 {
                        return Err(WireError::Malformed);
                    }
                    opts.timestamps = Some((be32(&body[0..4]), be32(&body[4..8])));
                }
                kind::FAST_OPEN => opts.tfo_cookie = Some(parse_tfo_cookie(body)?),
                kind::EXPERIMENTAL if body.len() >= 2 && body[..2] == kind::FAST_OPEN_MAGIC => {
                    opts.tfo_cookie = Some(parse_tfo_cookie(&body[2..])?)
                }
                // Unknown (or experimental with another magic): skipped, its length already validated.
                _ => {}
            }
            i += len;
        }
        Ok(opts)
    }

    /// Writes the options into `buf[..wire_len()]` in Linux's order (`tcp_options_write`): MSS, SACK-permitted
    /// sharing a word with timestamps (`04 02 08 0a`, else `01 01 08 0a` / `01 01 04 02`), NOP + window scale,
    /// NOP NOP + SACK blocks, then the TFO cookie padded with NOPs. Every group is 4-byte aligned, so the total is
    /// too and it never exceeds 40 bytes: SACK blocks that do not fit are dropped. Returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let fixed = self.fixed_len();
        let sacks = self.sack_blocks_that_fit(fixed);
        let total = self.wire_len();
        if buf.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        if let Some(c) = &self.tfo_cookie {
            // Never emit what our own parser (and Linux) would reject.
            if !c.is_valid_len() {
                return Err(WireError::Malformed);
            }
        }
        let buf = &mut buf[..total];
        let mut at = 0;
        if let Some(mss) = self.mss {
            buf[at..at + 2].copy_from_slice(&[kind::MSS, 4]);
            buf[at + 2..at + 4].copy_from_slice(&mss.to_be_bytes());
            at += MSS_LEN;
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            let lead = if self.sack_permitted { [kind::SACK_PERMITTED, 2] } else { [kind::NOP, kind::NOP] };
            buf[at..at + 2].copy_from_slice(&lead);
            buf[at + 2..at + 4].copy_from_slice(&[kind::TIMESTAMPS, 10]);
            buf[at + 4..at + 8].copy_from_slice(&tsval.to_be_bytes());
            buf[at + 8..at + 12].copy_from_slice(&tsecr.to_be_bytes());
            at += TS_LEN;
        } else if self.sack_permitted {
            buf[at..at + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
            at += SACK_PERM_LEN;
        }
        if let Some(shift) = self.window_scale {
            buf[at..at + 4].copy_from_slice(&[kind::NOP, kind::WINDOW_SCALE, 3, shift]);
            at += WS_LEN;
        }
        if sacks > 0 {
            let len = 2 + sacks * SACK_BLOCK_LEN;
            buf[at..at + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK, len as u8]);
            at += SACK_HEAD_LEN;
            for b in &self.sack_blocks()[..sacks] {
                buf[at..at + 4].copy_from_slice(&b.left.0.to_be_bytes());
                buf[at + 4..at + 8].copy_from_slice(&b.right.0.to_be_bytes());
                at += SACK_BLOCK_LEN;
            }
        }
        if let Some(c) = &self.tfo_cookie {
            let cookie = c.as_slice();
            buf[at] = kind::FAST_OPEN;
            buf[at + 1] = (2 + cookie.len()) as u8;
            buf[at + 2..at + 2 + cookie.len()].copy_from_slice(cookie);
            at += 2 + cookie.len();
            // Pad the last group to the 4-byte boundary that `fixed_len` counted.
            buf[at..].fill(kind::NOP);
            at = total;
        }
        debug_assert_eq!(at, total);
        debug_assert!(total <= MAX_OPTIONS_LEN && total % 4 == 0);
        Ok(total)
    }
}

/// A TFO cookie option body (RFC 7413 §4.1.1): empty (a request) or 4..=16 bytes.
#[inline]
fn parse_tfo_cookie(cookie: &[u8]) -> Result<TfoCookie> {
    if !cookie.is_empty() && !(MIN_TFO_COOKIE..=MAX_TFO_COOKIE).contains(&cookie.len()) {
        return Err(WireError::Malformed);
    }
    // Cannot fail: the length was just bounded by MAX_TFO_COOKIE.
    TfoCookie::new(cookie).ok_or(WireError::Malformed)
}

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

#[inline]
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A zero-copy view over a TCP header + payload.
#[derive(Debug)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checks; getters may panic on a short buffer. Use for emitting into a sized buffer.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Validates the buffer length against the fixed header and the data offset.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// `Truncated` if the buffer is shorter than 20 bytes or than the data offset says; `Malformed` if the data
    /// offset is below 5 words (RFC 9293 §3.1). After this every getter is infallible.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if header_len > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }
    #[inline]
    pub fn seq_number(&self) -> SeqNum {
        SeqNum(be32(&self.buffer.as_ref()[field::SEQ_NUM]))
    }
    #[inline]
    pub fn ack_number(&self) -> SeqNum {
        SeqNum(be32(&self.buffer.as_ref()[field::ACK_NUM]))
    }
    /// Header length in bytes (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::DATA_OFFSET] >> 4) as usize) * 4
    }
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }
    /// The raw (unscaled) window field.
    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WINDOW])
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }
    /// The option bytes (between the fixed header and the data offset).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS_START..self.header_len()]
    }
    /// The data after the header. The view's buffer must be exactly the segment (no link-layer padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Whether the checksum over the pseudo-header and the whole buffer is right (RFC 9293 §3.1).
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let bytes = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::Tcp, bytes.len() as u32);
        checksum::is_valid(checksum::combine(&[pseudo, checksum::data(bytes)]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_seq_number(&mut self, v: SeqNum) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&v.0.to_be_bytes());
    }
    #[inline]
    pub fn set_ack_number(&mut self, v: SeqNum) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&v.0.to_be_bytes());
    }
    /// Sets the data offset from a header length in bytes (a multiple of 4 in 20..=60); clears the reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        debug_assert!(len % 4 == 0 && (HEADER_LEN..=HEADER_LEN + MAX_OPTIONS_LEN).contains(&len));
        self.buffer.as_mut()[field::DATA_OFFSET] = ((len / 4) as u8) << 4;
    }
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::WINDOW].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        self.buffer.as_mut()[field::URGENT].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS_START..end]
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
    /// Computes and stores the checksum over the pseudo-header and the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let bytes = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::Tcp, bytes.len() as u32);
        let sum = checksum::finish(checksum::combine(&[pseudo, checksum::data(bytes)]));
        self.set_checksum(sum);
    }
}

/// The meaning of a TCP segment, borrowed from the packet bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    /// The acknowledgment field; meaningful only when `flags.ack()`.
    pub ack: SeqNum,
    pub flags: TcpFlags,
    /// The raw 16-bit window field (unscaled).
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses and (when `verify_checksum`) checks the checksum over the pseudo-header of `src`/`dst`.
    /// `bytes` is exactly the TCP segment (the IPv4 payload as delimited by the IPv4 total length).
    ///
    /// Errors: `Truncated` (shorter than the header), `Malformed` (data offset < 5, port 0, a bad option length),
    /// `Checksum`. The checksum is checked before the options so that corruption is counted as such.
    pub fn parse(bytes: &'a [u8], src: Ipv4Addr, dst: Ipv4Addr, verify_checksum: bool) -> Result<TcpRepr<'a>> {
        let packet = TcpPacket::new_checked(bytes)?;
        // Port 0 is reserved (IANA); no connection can use it, and answering it would only reflect garbage.
        if packet.src_port() == 0 || packet.dst_port() == 0 {
            return Err(WireError::Malformed);
        }
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(WireError::Checksum);
        }
        let options = TcpOptions::parse(packet.options())?;
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options,
            payload: &bytes[packet.header_len()..],
        })
    }

    /// Header length (20 + options) this repr emits.
    #[inline]
    pub fn header_len(&self) -> usize {
        20 + self.options.wire_len()
    }

    /// Sequence space the segment occupies: payload + SYN + FIN.
    #[inline]
    pub fn segment_len(&self) -> u32 {
        self.payload.len() as u32 + self.flags.syn() as u32 + self.flags.fin() as u32
    }

    /// The control bit the segment carries, SYN before RST before FIN when (abnormally) several are set.
    #[inline]
    pub fn control(&self) -> TcpControl {
        if self.flags.syn() {
            TcpControl::Syn
        } else if self.flags.rst() {
            TcpControl::Rst
        } else if self.flags.fin() {
            TcpControl::Fin
        } else {
            TcpControl::None
        }
    }

    /// Writes header + options into `buf[..header_len()]` and computes the checksum over the pseudo-header and
    /// `payload_len` bytes of payload that the caller has ALREADY placed at `buf[header_len()..]` (the payload slice
    /// in `self` is ignored on emit, so payload can be copied straight from a send buffer into the frame).
    /// Returns header_len + payload_len.
    ///
    /// `buf` may be longer than the segment; only `buf[..header_len() + payload_len]` is touched. Errors:
    /// `BufferTooSmall`, or `Malformed` for a segment longer than the 16-bit length fields can describe or an
    /// invalid TFO cookie length.
    pub fn emit(&self, buf: &mut [u8], payload_len: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize> {
        let header_len = self.header_len();
        let total = header_len.checked_add(payload_len).ok_or(WireError::Malformed)?;
        if total > u16::MAX as usize {
            return Err(WireError::Malformed);
        }
        if buf.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        let mut p = TcpPacket::new_unchecked(&mut buf[..total]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq);
        p.set_ack_number(self.ack);
        p.set_header_len(header_len);
        p.set_flags(self.flags);
        p.set_window_len(self.window);
        p.set_urgent_at(self.urgent);
        self.options.emit(p.options_mut())?;
        p.fill_checksum(src, dst);
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata;
    use crate::wire::Ipv4Repr;
    use proptest::prelude::*;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

    /// The TCP segment of a captured frame, and its IPv4 addresses.
    fn segment(frame: &str) -> (Vec<u8>, Ipv4Addr, Ipv4Addr) {
        let l3 = testdata::l3(frame);
        let (ip, payload) = Ipv4Repr::parse(&l3, true).unwrap();
        (payload.to_vec(), ip.src, ip.dst)
    }

    const ALL_CAPTURED: [&str; 11] = [
        testdata::SYN_TO_CLOSED_PORT,
        testdata::RST_ACK,
        testdata::SYN,
        testdata::SYN_ACK,
        testdata::ACK,
        testdata::DATA,
        testdata::SACK_1,
        testdata::SACK_2,
        testdata::SACK_3,
        testdata::FIN_ACK,
        testdata::ACK,
    ];

    #[test]
    fn seqnum_wraps() {
        let a = SeqNum(u32::MAX - 1);
        let b = a + 4;
        assert_eq!(b, SeqNum(2));
        assert!(a.lt(b) && b.gt(a) && a < b);
        assert_eq!(b - a, 4);
        assert_eq!(a.diff(b), -4);
        assert_eq!(b - 4u32, a);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        // Exactly half the space apart: the sign bit decides, as in Linux `before()`.
        assert!(SeqNum(0).gt(SeqNum(0x8000_0001)));
    }

    #[test]
    fn linux_syn() {
        let (seg, src, dst) = segment(testdata::SYN);
        let r = TcpRepr::parse(&seg, src, dst, true).unwrap();
        assert_eq!((r.src_port, r.dst_port), (55368, 5201));
        assert_eq!(r.seq, SeqNum(0x5439_ebee));
        assert_eq!(r.flags, TcpFlags(TcpFlags::SYN));
        assert_eq!(r.control(), TcpControl::Syn);
        assert_eq!(r.window, 64480);
        assert_eq!(r.segment_len(), 1);
        assert!(r.payload.is_empty());
        let o = r.options;
        assert_eq!(o.mss, Some(1240));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, Some((0x20cd_a2d8, 0)));
        assert_eq!(o.window_scale, Some(10));
        assert_eq!(o.sack_blocks(), &[]);
        assert_eq!(o.tfo_cookie, None);
        assert_eq!(o.wire_len(), 20);
        assert_eq!(r.header_len(), 40);
    }

    #[test]
    fn linux_sack_blocks() {
        let (seg, src, dst) = segment(testdata::SACK_3);
        let r = TcpRepr::parse(&seg, src, dst, true).unwrap();
        assert_eq!(r.flags, TcpFlags(TcpFlags::ACK));
        assert_eq!(r.ack, SeqNum(0x543a_3d81));
        assert_eq!(r.options.timestamps, Some((0x5284_1d70, 0x20cd_a3a1)));
        assert_eq!(
            r.options.sack_blocks(),
            &[
                SackBlock { left: SeqNum(0x543a_93d9), right: SeqNum(0x543a_98a5) },
                SackBlock { left: SeqNum(0x543a_80a9), right: SeqNum(0x543a_8a41) },
                SackBlock { left: SeqNum(0x543a_5a49), right: SeqNum(0x543a_63e1) },
            ]
        );
        assert_eq!(r.options.wire_len(), 40);
    }

    #[test]
    fn data_segment_payload() {
        let (seg, src, dst) = segment(testdata::DATA);
        let r = TcpRepr::parse(&seg, src, dst, true).unwrap();
        assert_eq!(r.payload, b"hello\n");
        assert!(r.flags.psh() && r.flags.ack());
        assert_eq!(r.segment_len(), 6);
        let (fin, src, dst) = segment(testdata::FIN_ACK);
        let r = TcpRepr::parse(&fin, src, dst, true).unwrap();
        assert_eq!((r.control(), r.segment_len()), (TcpControl::Fin, 1));
        let (rst, src, dst) = segment(testdata::RST_ACK);
        let r = TcpRepr::parse(&rst, src, dst, true).unwrap();
        assert_eq!((r.control(), r.options), (TcpControl::Rst, TcpOptions::default()));
    }

    /// Our emitter lays options out exactly as Linux does: re-emitting every captured segment from its repr
    /// reproduces it byte for byte, checksum included.
    #[test]
    fn emit_reproduces_linux_bytes() {
        for frame in ALL_CAPTURED {
            let (seg, src, dst) = segment(frame);
            let r = TcpRepr::parse(&seg, src, dst, true).unwrap();
            let mut out = vec![0xeeu8; seg.len() + 7];
            let hl = r.header_len();
            out[hl..hl + r.payload.len()].copy_from_slice(r.payload);
            let n = r.emit(&mut out, r.payload.len(), src, dst).unwrap();
            assert_eq!(n, seg.len());
            assert_eq!(&out[..n], &seg[..], "frame {frame}");
            assert!(out[n..].iter().all(|&b| b == 0xee), "emit wrote past the segment");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for frame in ALL_CAPTURED {
            let (seg, src, dst) = segment(frame);
            let hl = TcpPacket::new_checked(&seg[..]).unwrap().header_len();
            for n in 0..seg.len() {
                // With the checksum checked, any cut fails; without, any cut into the header does.
                assert!(TcpRepr::parse(&seg[..n], src, dst, true).is_err(), "len {n} of {frame}");
                if n < hl {
                    assert!(TcpRepr::parse(&seg[..n], src, dst, false).is_err(), "len {n} of {frame}");
                    assert!(TcpPacket::new_checked(&seg[..n]).is_err());
                }
            }
        }
    }

    #[test]
    fn every_bit_flip_fails_the_checksum() {
        let (seg, src, dst) = segment(testdata::DATA);
        for i in 0..seg.len() * 8 {
            let mut bad = seg.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(TcpRepr::parse(&bad, src, dst, true).is_err(), "bit {i}");
        }
        // And a wrong pseudo-header (a spoofed or rewritten address) fails too.
        assert_eq!(TcpRepr::parse(&seg, src, Ipv4Addr::new(198, 18, 1, 3), true), Err(WireError::Checksum));
        assert!(TcpRepr::parse(&seg, src, Ipv4Addr::new(198, 18, 1, 3), false).is_ok());
    }

    #[test]
    fn header_length_checks() {
        let (seg, src, dst) = segment(testdata::SYN);
        for offset in 0..5u8 {
            let mut bad = seg.clone();
            bad[12] = offset << 4;
            assert_eq!(TcpRepr::parse(&bad, src, dst, false), Err(WireError::Malformed));
        }
        let mut bad = seg.clone();
        bad[12] = 11 << 4; // 44 bytes of header in a 40-byte segment
        assert_eq!(TcpRepr::parse(&bad, src, dst, false), Err(WireError::Truncated));
        assert_eq!(TcpRepr::parse(&seg[..19], src, dst, false), Err(WireError::Truncated));
        for port in [0..2, 2..4] {
            let mut bad = seg.clone();
            bad[port].fill(0);
            assert_eq!(TcpRepr::parse(&bad, src, dst, false), Err(WireError::Malformed));
        }
    }

    #[test]
    fn option_lengths_are_validated() {
        use WireError::Malformed;
        let cases: &[(&[u8], Result<()>)] = &[
            (&[2], Err(Malformed)),          // kind without a length byte
            (&[2, 4, 5], Err(Malformed)),    // runs past the header
            (&[2, 3, 5, 1], Err(Malformed)), // MSS must be 4
            (&[3, 4, 7, 0], Err(Malformed)), // WS must be 3
            (&[4, 3, 0, 1], Err(Malformed)), // SACK-permitted must be 2
            (&[8, 9, 0, 0, 0, 0, 0, 0, 0], Err(Malformed)),
            (&[5, 9, 0, 0, 0, 0, 0, 0, 0], Err(Malformed)), // SACK: 2 + 8n
            (&[34, 3, 7, 1], Err(Malformed)),               // TFO cookie of 1 byte
            (&[34, 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Err(Malformed)), // 17 bytes
            (&[254, 5, 0xf9, 0x89, 1], Err(Malformed)),     // experimental TFO with a 1-byte cookie
            (&[99, 1, 1, 1], Err(Malformed)),               // unknown kind, length < 2
            (&[99, 0, 1, 1], Err(Malformed)),
            (&[99, 5, 1, 1], Err(Malformed)), // unknown kind running past the end
            (&[99, 4, 1, 1], Ok(())),         // unknown kind skipped
            (&[254, 4, 0x12, 0x34], Ok(())),  // another experiment: skipped
            (&[1, 1, 1, 1], Ok(())),
            (&[0, 77, 1], Ok(())), // EOL: whatever follows is padding
            (&[], Ok(())),
        ];
        for (bytes, want) in cases {
            let got = TcpOptions::parse(bytes).map(|_| ());
            assert_eq!(got, *want, "options {bytes:?}");
        }
        // 5 SACK blocks cannot fit in 40 bytes, but the option parser enforces the limit on its own too.
        let mut five = vec![5u8, 42];
        five.extend([0u8; 40]);
        assert_eq!(TcpOptions::parse(&five), Err(Malformed));
    }

    #[test]
    fn option_values() {
        let o = TcpOptions::parse(&[2, 4, 0x05, 0xb4, 2, 4, 0x02, 0x18, 1, 3, 3, 14, 4, 2, 1, 1]).unwrap();
        assert_eq!(o.mss, Some(536), "a later instance overrides an earlier one");
        assert_eq!(o.window_scale, Some(14));
        assert!(o.sack_permitted);
        let o = TcpOptions::parse(&[5, 2]).unwrap();
        assert_eq!(o.sack_count, 0);
        // A repeated SACK option replaces the first one whole, leaving no stale blocks behind the count.
        let o =
            TcpOptions::parse(&[5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 5, 10, 0, 0, 0, 5, 0, 0, 0, 6])
                .unwrap();
        assert_eq!(o.sack_blocks(), &[SackBlock { left: SeqNum(5), right: SeqNum(6) }]);
        assert_eq!(o.sack[1], SackBlock::default());
        let o = TcpOptions::parse(&[34, 2, 1, 1]).unwrap();
        assert_eq!(o.tfo_cookie.map(|c| c.len), Some(0), "a cookie request");
        let o = TcpOptions::parse(&[34, 6, 1, 2, 3, 4]).unwrap();
        assert_eq!(o.tfo_cookie.unwrap().as_slice(), &[1, 2, 3, 4]);
        let o = TcpOptions::parse(&[254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(o.tfo_cookie.unwrap().as_slice(), &[1, 2, 3, 4, 5, 6, 7, 8], "experimental TFO");
        let o = TcpOptions::parse(&[254, 4, 0xf9, 0x89]).unwrap();
        assert_eq!(o.tfo_cookie.map(|c| c.len), Some(0));
    }

    fn sack(n: usize) -> [SackBlock; MAX_SACK_BLOCKS] {
        let mut s = [SackBlock::default(); MAX_SACK_BLOCKS];
        for (i, b) in s.iter_mut().enumerate().take(n) {
            *b = SackBlock { left: SeqNum(1000 * i as u32), right: SeqNum(1000 * i as u32 + 500) };
        }
        s
    }

    #[test]
    fn sack_blocks_that_do_not_fit_are_dropped() {
        let mut o = TcpOptions { sack: sack(4), sack_count: 4, ..Default::default() };
        assert_eq!(o.wire_len(), 36);
        o.timestamps = Some((1, 2));
        assert_eq!(o.wire_len(), 40);
        let mut buf = [0u8; 40];
        assert_eq!(o.emit(&mut buf), Ok(40));
        let back = TcpOptions::parse(&buf).unwrap();
        assert_eq!(back.sack_blocks(), &o.sack_blocks()[..3], "the first (most recent) blocks are kept");
        // With MSS + TS + WS + a 16-byte cookie there is no room left at all.
        o.mss = Some(1460);
        o.window_scale = Some(7);
        o.tfo_cookie = TfoCookie::new(&[9; 16]);
        assert_eq!(o.wire_len(), 40);
        assert_eq!(o.emit(&mut buf), Ok(40));
        assert_eq!(TcpOptions::parse(&buf).unwrap().sack_count, 0);
    }

    #[test]
    fn emit_layout() {
        let mut buf = [0u8; 40];
        let o = TcpOptions { sack_permitted: true, ..Default::default() };
        assert_eq!(o.emit(&mut buf), Ok(4));
        assert_eq!(&buf[..4], &[1, 1, 4, 2]);
        let o = TcpOptions { mss: Some(1460), tfo_cookie: TfoCookie::new(&[]), ..Default::default() };
        assert_eq!(o.emit(&mut buf), Ok(8));
        assert_eq!(&buf[..8], &[2, 4, 5, 0xb4, 34, 2, 1, 1]);
        let o = TcpOptions { tfo_cookie: TfoCookie::new(&[1, 2, 3, 4, 5, 6, 7, 8]), ..Default::default() };
        assert_eq!(o.emit(&mut buf), Ok(12));
        assert_eq!(&buf[..12], &[34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1]);
        let o = TcpOptions { tfo_cookie: TfoCookie::new(&[1, 2, 3, 4, 5]), ..Default::default() };
        assert_eq!(o.emit(&mut buf), Ok(8));
        assert_eq!(&buf[..8], &[34, 7, 1, 2, 3, 4, 5, 1]);
        // A cookie length the RFC forbids is refused rather than sent.
        let o = TcpOptions { tfo_cookie: TfoCookie::new(&[1, 2]), ..Default::default() };
        assert_eq!(o.emit(&mut buf), Err(WireError::Malformed));
        let o = TcpOptions { mss: Some(1), ..Default::default() };
        assert_eq!(o.emit(&mut buf[..3]), Err(WireError::BufferTooSmall));
        assert_eq!(TcpOptions::default().wire_len(), 0);
    }

    #[test]
    fn emit_errors() {
        let r = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: SeqNum(3),
            ack: SeqNum(4),
            flags: TcpFlags(TcpFlags::ACK),
            window: 5,
            urgent: 0,
            options: TcpOptions { timestamps: Some((1, 2)), ..Default::default() },
            payload: &[],
        };
        let mut buf = vec![0u8; 70000];
        assert_eq!(r.emit(&mut buf[..31], 0, A, B), Err(WireError::BufferTooSmall));
        assert_eq!(r.emit(&mut buf[..40], 9, A, B), Err(WireError::BufferTooSmall));
        assert_eq!(r.emit(&mut buf, 65536 - 32, A, B), Err(WireError::Malformed));
        assert_eq!(r.emit(&mut buf, usize::MAX, A, B), Err(WireError::Malformed));
        assert_eq!(r.emit(&mut buf[..32], 0, A, B), Ok(32));
    }

    #[test]
    fn view_accessors() {
        let mut buf = [0u8; 24];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(0x1234);
        p.set_dst_port(0x5678);
        p.set_seq_number(SeqNum(0xdead_beef));
        p.set_ack_number(SeqNum(0x0102_0304));
        p.set_header_len(24);
        p.set_flags(TcpFlags(TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR));
        p.set_window_len(0xabcd);
        p.set_urgent_at(7);
        p.options_mut().copy_from_slice(&[2, 4, 1, 2]);
        p.fill_checksum(A, B);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (0x1234, 0x5678));
        assert_eq!((p.seq_number(), p.ack_number()), (SeqNum(0xdead_beef), SeqNum(0x0102_0304)));
        assert_eq!(p.header_len(), 24);
        assert_eq!(format!("{:?}", p.flags()), "SEW");
        assert_eq!((p.window_len(), p.urgent_at()), (0xabcd, 7));
        assert_eq!(p.options(), &[2, 4, 1, 2]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(A, B));
        assert!(!p.verify_checksum(A, Ipv4Addr::new(198, 18, 1, 3)));
    }

    fn arb_options() -> impl Strategy<Value = TcpOptions> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4),
            proptest::option::of((any::<u32>(), any::<u32>())),
            proptest::option::of(
                prop_oneof![Just(0usize), 4usize..=16].prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n..=n)),
            ),
        )
            .prop_map(|(mss, ws, sack_permitted, blocks, ts, cookie)| {
                let mut o = TcpOptions {
                    mss,
                    window_scale: ws,
                    sack_permitted,
                    timestamps: ts,
                    tfo_cookie: cookie.map(|c| TfoCookie::new(&c).unwrap()),
                    ..Default::default()
                };
                let blocks: Vec<SackBlock> =
                    blocks.into_iter().map(|(l, r)| SackBlock { left: SeqNum(l), right: SeqNum(r) }).collect();
                // Keep only what fits so the round trip is exact (dropping is tested on its own).
                let fit = {
                    let mut probe = o;
                    probe.set_sack_blocks(&blocks);
                    probe.sack_blocks_that_fit(probe.fixed_len())
                };
                o.set_sack_blocks(&blocks[..fit]);
                o
            })
    }

    proptest! {
        #[test]
        fn repr_round_trip(
            ports in (1u16.., 1u16..),
            seq in any::<u32>(),
            ack in any::<u32>(),
            flags in any::<u8>(),
            window in any::<u16>(),
            urgent in any::<u16>(),
            options in arb_options(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            src in any::<u32>(),
            dst in any::<u32>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = TcpRepr {
                src_port: ports.0,
                dst_port: ports.1,
                seq: SeqNum(seq),
                ack: SeqNum(ack),
                flags: TcpFlags(flags),
                window,
                urgent,
                options,
                payload: &payload,
            };
            let hl = repr.header_len();
            prop_assert!(hl <= 60 && hl % 4 == 0);
            let mut buf = vec![0u8; hl + payload.len()];
            buf[hl..].copy_from_slice(&payload);
            let n = repr.emit(&mut buf, payload.len(), src, dst).unwrap();
            prop_assert_eq!(n, buf.len());
            let parsed = TcpRepr::parse(&buf, src, dst, true).unwrap();
            prop_assert_eq!(parsed, repr);
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TcpRepr::parse(&bytes, A, B, true);
            let _ = TcpRepr::parse(&bytes, A, B, false);
            let _ = TcpOptions::parse(&bytes);
        }

        /// A valid header whose option area is random: every outcome is a value, and a success means every
        /// length byte was consistent.
        #[test]
        fn random_options_never_panic(words in 0usize..=10, opts in proptest::collection::vec(any::<u8>(), 40)) {
            let mut seg = vec![0u8; 20 + words * 4];
            seg[0..4].copy_from_slice(&[0, 1, 0, 2]);
            seg[12] = ((5 + words) as u8) << 4;
            seg[20..].copy_from_slice(&opts[..words * 4]);
            if let Ok(r) = TcpRepr::parse(&seg, A, B, false) {
                prop_assert!(r.options.sack_blocks().len() <= MAX_SACK_BLOCKS);
                prop_assert!(r.options.tfo_cookie.is_none_or(|c| c.is_valid_len()));
            }
        }
    }
}
