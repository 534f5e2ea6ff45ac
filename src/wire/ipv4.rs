//! IPv4 header (RFC 791). We accept options on receive (skipped) but never emit them; fragments are reported as
//! `Unsupported` so the caller counts and drops them (TCP here always sets DF and negotiates MSS).

use std::net::Ipv4Addr;

use super::checksum;
use super::{Result, WireError};

/// IP protocol numbers we care about.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// Length of the fixed header (IHL 5).
pub const HEADER_LEN: usize = 20;

/// Byte offsets of the header fields (RFC 791 §3.1).
mod field {
    use core::ops::Range;

    /// Version in the upper nibble, IHL (header length in 32-bit words) in the lower.
    pub const VER_IHL: usize = 0;
    /// DSCP (upper 6 bits) and ECN (lower 2), RFC 2474 / RFC 3168.
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (reserved, DF, MF) in the upper 3 bits, fragment offset (8-byte units) in the lower 13.
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

#[inline]
fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// A zero-copy view over an IPv4 packet.
#[derive(Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checks; getters may panic on a short buffer. Use for emitting into a sized buffer.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Validates version, IHL >= 5, IHL*4 <= total length <= buffer length.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// `Truncated` if the buffer is shorter than 20 bytes or than the total length; `Unsupported` for a version
    /// other than 4; `Malformed` if IHL < 5 or the total length does not cover the header (RFC 791 §3.1).
    /// Bytes beyond the total length (Ethernet padding) are allowed and ignored by `payload`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::Unsupported);
        }
        let header_len = self.header_len();
        let total_len = self.total_len() as usize;
        if header_len < HEADER_LEN || total_len < header_len {
            return Err(WireError::Malformed);
        }
        if total_len > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    /// DSCP and ECN as one byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::TOTAL_LEN])
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_DF != 0
    }
    #[inline]
    pub fn more_fragments(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(&self.buffer.as_ref()[field::FLG_OFF]) & FRAG_OFFSET_MASK) << 3
    }
    /// Whether this is a fragment of a larger datagram (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::DST_ADDR])
    }
    /// The option bytes between the fixed header and IHL * 4.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Whether the options carry a loose or strict source route (RFC 791 §3.1 LSRR type 131, SSRR type 137).
    /// Walks the options as RFC 791 lays them out: End (0) stops, No-op (1) is one byte, others carry a length; a
    /// malformed length ends the walk.
    pub fn has_source_route(&self) -> bool {
        const END: u8 = 0;
        const NOP: u8 = 1;
        const LSRR: u8 = 131;
        const SSRR: u8 = 137;
        let opts = self.options();
        let mut i = 0;
        while i < opts.len() {
            match opts[i] {
                END => return false,
                NOP => i += 1,
                LSRR | SSRR => return true,
                _ => match opts.get(i + 1) {
                    Some(&len) if len >= 2 => i += len as usize,
                    _ => return false,
                },
            }
        }
        false
    }
    /// Whether the header checksum (over IHL * 4 bytes) is right.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(checksum::data(&self.buffer.as_ref()[..self.header_len()]))
    }
    /// The payload as delimited by the total length: trailing link-layer padding is excluded.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the IHL from a header length in bytes (a multiple of 4 in 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len % 4 == 0 && (HEADER_LEN..=60).contains(&header_len));
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | (header_len / 4) as u8;
    }
    #[inline]
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::TOTAL_LEN].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the flags and fragment offset word: DF as given, MF clear, offset 0 (we never fragment).
    #[inline]
    pub fn set_unfragmented(&mut self, dont_fragment: bool) {
        let v = if dont_fragment { FLAG_DF } else { 0 };
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    #[inline]
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.into();
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_src_addr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&v.octets());
    }
    #[inline]
    pub fn set_dst_addr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&v.octets());
    }
    /// Decrements the TTL and patches the checksum incrementally (RFC 1624), as a forwarder would.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let ttl = self.ttl();
        let word = |ttl: u8, proto: u8| u16::from_be_bytes([ttl, proto]);
        let proto = self.buffer.as_ref()[field::PROTOCOL];
        let new = checksum::update(self.checksum(), word(ttl, proto), word(ttl.wrapping_sub(1), proto));
        self.set_ttl(ttl.wrapping_sub(1));
        self.set_checksum(new);
    }
    /// Computes and stores the header checksum over IHL * 4 bytes.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(sum);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[start..end]
    }
}

/// The fields of an IPv4 header the stack reasons about.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Length of the payload (total length minus header length).
    pub payload_len: usize,
    pub ttl: u8,
    /// DSCP (upper 6 bits) and ECN (lower 2 bits) as one byte.
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

impl Ipv4Repr {
    /// Parses a packet: returns the repr and the payload slice delimited by the total-length field (trailing
    /// Ethernet padding is excluded). Fragments (MF set or offset != 0) are `Err(Unsupported)`.
    ///
    /// Other errors: `Truncated`, `Malformed` (IHL < 5, total length < header), `Unsupported` (version != 4),
    /// `Checksum` (when `verify_checksum`). Options are skipped, not interpreted.
    #[inline]
    pub fn parse(bytes: &[u8], verify_checksum: bool) -> Result<(Ipv4Repr, &[u8])> {
        let packet = Ipv4Packet::new_checked(bytes)?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(WireError::Checksum);
        }
        // We never reassemble: TCP here negotiates MSS and sets DF, so a fragment is counted and dropped.
        if packet.is_fragment() {
            return Err(WireError::Unsupported);
        }
        let repr = Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() as usize - packet.header_len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_fragment: packet.dont_fragment(),
        };
        Ok((repr, &bytes[packet.header_len()..packet.total_len() as usize]))
    }

    /// Parses the header of a datagram quoted inside an ICMP error (RFC 792): only its first bytes are present, so
    /// the total length is not checked against the buffer and the checksum is not verified. Returns the repr (with
    /// `payload_len` from the original total length) and the quoted payload bytes that follow the header.
    pub fn parse_quoted(bytes: &[u8]) -> Result<(Ipv4Repr, &[u8])> {
        if bytes.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let packet = Ipv4Packet::new_unchecked(bytes);
        if packet.version() != 4 {
            return Err(WireError::Unsupported);
        }
        let header_len = packet.header_len();
        let total_len = packet.total_len() as usize;
        if header_len < HEADER_LEN || total_len < header_len {
            return Err(WireError::Malformed);
        }
        if header_len > bytes.len() {
            return Err(WireError::Truncated);
        }
        // A later fragment's quoted bytes are not a transport header; nothing could be matched against them.
        if packet.is_fragment() && packet.frag_offset() != 0 {
            return Err(WireError::Unsupported);
        }
        let repr = Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: total_len - header_len,
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_fragment: packet.dont_fragment(),
        };
        let quoted_end = total_len.min(bytes.len());
        Ok((repr, &bytes[header_len..quoted_end]))
    }

    /// Length of the header this repr emits (always 20: we never emit options).
    pub const HEADER_LEN: usize = 20;

    /// Total length of the datagram this repr describes.
    #[inline]
    pub fn total_len(&self) -> usize {
        Self::HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header with a correct checksum into `buf[..20]`. Returns 20.
    ///
    /// Errors: `BufferTooSmall` if `buf` is shorter than 20 bytes; `Malformed` if the total length exceeds 65535.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < Self::HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let total_len = u16::try_from(self.total_len()).map_err(|_| WireError::Malformed)?;
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..Self::HEADER_LEN]);
        p.set_version_and_header_len(Self::HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len(total_len);
        p.set_ident(self.ident);
        p.set_unfragmented(self.dont_fragment);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        Ok(Self::HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::{self, l3};
    use proptest::prelude::*;

    const ALL_CAPTURED: [&str; 13] = [
        testdata::PING_REQUEST,
        testdata::PING_REPLY,
        testdata::SYN_TO_CLOSED_PORT,
        testdata::RST_ACK,
        testdata::UDP_TO_CLOSED_PORT,
        testdata::ICMP_PORT_UNREACHABLE,
        testdata::ICMP_FRAG_NEEDED,
        testdata::SYN,
        testdata::SYN_ACK,
        testdata::ACK,
        testdata::DATA,
        testdata::SACK_3,
        testdata::FIN_ACK,
    ];

    #[test]
    fn linux_ping() {
        let bytes = l3(testdata::PING_REQUEST);
        let (r, payload) = Ipv4Repr::parse(&bytes, true).unwrap();
        assert_eq!(
            r,
            Ipv4Repr {
                src: Ipv4Addr::new(198, 18, 0, 1),
                dst: Ipv4Addr::new(198, 18, 1, 2),
                protocol: IpProtocol::Icmp,
                payload_len: 48,
                ttl: 64,
                tos: 0,
                ident: 0xcd82,
                dont_fragment: true,
            }
        );
        assert_eq!(payload.len(), 48);
        assert_eq!(payload[0], 8, "echo request");
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 68));
        assert!(!p.more_fragments() && p.frag_offset() == 0 && !p.is_fragment());
        assert!(p.options().is_empty());
        // The router's ICMP error carries DSCP CS6 (0xc0), as Linux sets for ICMP errors.
        let (r, _) = Ipv4Repr::parse(&l3(testdata::ICMP_FRAG_NEEDED), true).unwrap();
        assert_eq!((r.tos, r.dont_fragment, r.src), (0xc0, false, Ipv4Addr::new(198, 18, 0, 2)));
        let p = Ipv4Packet::new_checked(l3(testdata::ICMP_FRAG_NEEDED)).unwrap();
        assert_eq!((p.dscp(), p.ecn()), (0x30, 0));
    }

    #[test]
    fn emit_reproduces_linux_headers() {
        for frame in ALL_CAPTURED {
            let bytes = l3(frame);
            let (r, _) = Ipv4Repr::parse(&bytes, true).unwrap();
            let mut out = [0x55u8; 24];
            assert_eq!(r.emit(&mut out), Ok(20));
            assert_eq!(&out[..20], &bytes[..20], "frame {frame}");
            assert_eq!(&out[20..], &[0x55; 4], "emit wrote past the header");
            assert_eq!(r.total_len(), bytes.len());
        }
    }

    #[test]
    fn trailing_padding_is_ignored() {
        // A 40-byte RST in a minimum-size Ethernet frame arrives with 6 bytes of padding.
        let mut bytes = l3(testdata::RST_ACK);
        let len = bytes.len();
        bytes.extend_from_slice(&[0; 6]);
        let (r, payload) = Ipv4Repr::parse(&bytes, true).unwrap();
        assert_eq!((r.payload_len, payload.len()), (20, 20));
        assert_eq!(payload, &bytes[20..len]);
        assert_eq!(Ipv4Packet::new_checked(&bytes[..]).unwrap().payload(), &bytes[20..len]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for frame in ALL_CAPTURED {
            let bytes = l3(frame);
            for n in 0..bytes.len() {
                assert!(Ipv4Repr::parse(&bytes[..n], false).is_err(), "len {n} of {frame}");
                assert!(Ipv4Repr::parse(&bytes[..n], true).is_err(), "len {n} of {frame}");
                assert!(Ipv4Repr::parse_quoted(&bytes[..n]).is_err() == (n < 20));
            }
        }
    }

    /// Sets a header byte and repairs the checksum, so that only the field under test is wrong.
    fn with(bytes: &[u8], i: usize, v: u8) -> Vec<u8> {
        let mut b = bytes.to_vec();
        b[i] = v;
        let hl = Ipv4Packet::new_unchecked(&b[..]).header_len().clamp(20, b.len());
        let mut p = Ipv4Packet::new_unchecked(&mut b[..hl]);
        p.set_checksum(0);
        let c = checksum::checksum(&p.into_inner()[..hl]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn malformed_headers() {
        let ok = l3(testdata::SYN);
        assert_eq!(Ipv4Repr::parse(&with(&ok, 0, 0x65), true), Err(WireError::Unsupported), "version 6");
        assert_eq!(Ipv4Repr::parse(&with(&ok, 0, 0x44), false), Err(WireError::Malformed), "IHL 4");
        assert_eq!(Ipv4Repr::parse(&with(&ok, 0, 0x40), false), Err(WireError::Malformed), "IHL 0");
        // IHL 15 (60 bytes) exceeds the 60-byte total? equal here: header fine, payload empty but then total < hl.
        assert_eq!(Ipv4Repr::parse(&with(&ok, 0, 0x4f), true).map(|(r, _)| r.payload_len), Ok(0));
        let short_total = with(&with(&ok, 2, 0), 3, 19);
        assert_eq!(Ipv4Repr::parse(&short_total, true), Err(WireError::Malformed), "total length < header");
        let long_total = with(&ok, 3, 61);
        assert_eq!(Ipv4Repr::parse(&long_total, true), Err(WireError::Truncated), "total length > buffer");
        let mut bad_sum = ok.clone();
        bad_sum[11] ^= 1;
        assert_eq!(Ipv4Repr::parse(&bad_sum, true), Err(WireError::Checksum));
        assert!(Ipv4Repr::parse(&bad_sum, false).is_ok());
        // Fragments: MF set, or any offset.
        assert_eq!(Ipv4Repr::parse(&with(&ok, 6, 0x20), true), Err(WireError::Unsupported));
        assert_eq!(Ipv4Repr::parse(&with(&ok, 7, 1), true), Err(WireError::Unsupported));
        assert_eq!(Ipv4Repr::parse(&with(&ok, 6, 0x5f), true), Err(WireError::Unsupported));
        // The reserved ("evil") bit alone is not a fragment.
        assert!(Ipv4Repr::parse(&with(&ok, 6, 0xc0), true).is_ok());
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6 with a 4-byte option (NOP NOP NOP EOL) in front of the captured TCP SYN.
        let ok = l3(testdata::SYN);
        let mut b = ok[..20].to_vec();
        b.extend_from_slice(&[1, 1, 1, 0]);
        b.extend_from_slice(&ok[20..]);
        b[0] = 0x46;
        b[2..4].copy_from_slice(&(ok.len() as u16 + 4).to_be_bytes());
        let b = with(&b, 1, 0);
        let (r, payload) = Ipv4Repr::parse(&b, true).unwrap();
        assert_eq!(payload, &ok[20..]);
        assert_eq!(r.payload_len, ok.len() - 20);
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap().options(), &[1, 1, 1, 0]);
    }

    #[test]
    fn emit_errors() {
        let r = Ipv4Repr::parse(&l3(testdata::SYN), true).unwrap().0;
        assert_eq!(r.emit(&mut [0; 19]), Err(WireError::BufferTooSmall));
        let big = Ipv4Repr { payload_len: 65515, ..r };
        assert_eq!(big.emit(&mut [0; 20]), Ok(20));
        let too_big = Ipv4Repr { payload_len: 65516, ..r };
        assert_eq!(too_big.emit(&mut [0; 20]), Err(WireError::Malformed));
    }

    #[test]
    fn ttl_decrement_keeps_checksum() {
        let mut b = l3(testdata::DATA);
        for _ in 0..300 {
            let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
            p.decrement_ttl();
            assert!(p.verify_checksum());
        }
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap().ttl(), 64u8.wrapping_sub(300u32 as u8));
    }

    #[test]
    fn quoted_header() {
        // The first 28 bytes of a datagram whose total length says 1428.
        let b = l3(testdata::ICMP_FRAG_NEEDED);
        let quoted = &b[28..56];
        let (r, rest) = Ipv4Repr::parse_quoted(quoted).unwrap();
        assert_eq!((r.payload_len, r.protocol, rest.len()), (1408, IpProtocol::Udp, 8));
        assert!(Ipv4Repr::parse(quoted, false).is_err(), "a quoted header is not a whole datagram");
    }

    fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (any::<u32>(), any::<u32>(), any::<u8>(), 0usize..1500, any::<u8>(), any::<u8>(), any::<u16>(), any::<bool>())
            .prop_map(|(s, d, p, payload_len, ttl, tos, ident, df)| Ipv4Repr {
                src: s.into(),
                dst: d.into(),
                protocol: p.into(),
                payload_len,
                ttl,
                tos,
                ident,
                dont_fragment: df,
            })
    }

    proptest! {
        #[test]
        fn repr_round_trip(r in arb_repr(), padding in 0usize..8) {
            let mut buf = vec![0xa5u8; r.total_len() + padding];
            prop_assert_eq!(r.emit(&mut buf), Ok(20));
            let (back, payload) = Ipv4Repr::parse(&buf, true).unwrap();
            prop_assert_eq!(back, r);
            prop_assert_eq!(payload.len(), r.payload_len);
            // Unknown protocol numbers survive too, and map back to the same byte.
            prop_assert_eq!(u8::from(back.protocol), buf[9]);
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Ipv4Repr::parse(&bytes, true);
            let _ = Ipv4Repr::parse(&bytes, false);
            let _ = Ipv4Repr::parse_quoted(&bytes);
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = (p.payload(), p.options(), p.verify_checksum());
            }
        }

        #[test]
        fn header_like_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 20..100), ihl in 0u8..16) {
            bytes[0] = 0x40 | ihl;
            let _ = Ipv4Repr::parse(&bytes, false);
            let _ = Ipv4Repr::parse_quoted(&bytes);
        }
    }
}
