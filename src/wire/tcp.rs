//! TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018, RFC 7413), and sequence-number arithmetic.

use core::cmp::Ordering;
use core::ops::{Add, AddAssign, Sub};
use std::net::Ipv4Addr;

use super::{Result, WireError};

/// A 32-bit TCP sequence number, compared modulo 2^32 (RFC 9293 §3.4).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance `self - other` in sequence space.
    pub fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    pub fn lt(self, o: SeqNum) -> bool {
        self.diff(o) < 0
    }
    pub fn le(self, o: SeqNum) -> bool {
        self.diff(o) <= 0
    }
    pub fn gt(self, o: SeqNum) -> bool {
        self.diff(o) > 0
    }
    pub fn ge(self, o: SeqNum) -> bool {
        self.diff(o) >= 0
    }
    pub fn max(self, o: SeqNum) -> SeqNum {
        if self.ge(o) {
            self
        } else {
            o
        }
    }
    pub fn min(self, o: SeqNum) -> SeqNum {
        if self.le(o) {
            self
        } else {
            o
        }
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}
impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n)
    }
}
impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}
/// `a - b` as an unsigned count; callers use it only where `a >= b` in sequence space.
impl Sub<SeqNum> for SeqNum {
    type Output = u32;
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
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
    pub fn psh(self) -> bool {
        self.has(Self::PSH)
    }
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

/// A TCP Fast Open cookie (option kind 34). `len == 0` with `present` is a cookie request.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct TfoCookie {
    pub len: u8,
    pub bytes: [u8; MAX_TFO_COOKIE],
}

impl TfoCookie {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
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

impl TcpOptions {
    pub fn sack_blocks(&self) -> &[SackBlock] {
        &self.sack[..self.sack_count as usize]
    }
    /// Bytes these options take on the wire, including NOP padding to a multiple of 4.
    pub fn wire_len(&self) -> usize {
        todo!("wire helper")
    }
}

/// A zero-copy view over a TCP header + payload.
#[derive(Debug)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Validates the buffer length against the fixed header and the data offset.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<()> {
        let _ = WireError::Truncated;
        todo!("wire helper")
    }
    pub fn into_inner(self) -> T {
        self.buffer
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
    pub fn parse(bytes: &'a [u8], src: Ipv4Addr, dst: Ipv4Addr, verify_checksum: bool) -> Result<TcpRepr<'a>> {
        let _ = (bytes, src, dst, verify_checksum);
        todo!("wire helper")
    }

    /// Header length (20 + options) this repr emits.
    pub fn header_len(&self) -> usize {
        20 + self.options.wire_len()
    }

    /// Sequence space the segment occupies: payload + SYN + FIN.
    pub fn segment_len(&self) -> u32 {
        self.payload.len() as u32 + self.flags.syn() as u32 + self.flags.fin() as u32
    }

    /// Writes header + options into `buf[..header_len()]` and computes the checksum over the pseudo-header and
    /// `payload_len` bytes of payload that the caller has ALREADY placed at `buf[header_len()..]` (the payload slice
    /// in `self` is ignored on emit, so payload can be copied straight from a send buffer into the frame).
    /// Returns header_len + payload_len.
    pub fn emit(&self, buf: &mut [u8], payload_len: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize> {
        let _ = (buf, payload_len, src, dst);
        todo!("wire helper")
    }
}
