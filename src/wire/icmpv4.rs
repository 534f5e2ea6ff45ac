//! ICMPv4 (RFC 792): echo request/reply, destination unreachable (with the RFC 1191 next-hop MTU), and a generic
//! variant for every other message, so that an unknown type is a value to count rather than an error.

use super::checksum;
use super::ipv4::Ipv4Repr;
use super::{Result, WireError};

/// Message types (IANA "ICMP Type Numbers").
mod msg {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
}

/// Destination Unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Icmpv4DstUnreachable {
    NetUnreachable,
    HostUnreachable,
    ProtoUnreachable,
    PortUnreachable,
    /// Fragmentation needed and DF set: carries the next-hop MTU (RFC 1191 §4).
    FragRequired,
    SrcRouteFailed,
    DstNetUnknown,
    DstHostUnknown,
    SrcHostIsolated,
    NetProhibited,
    HostProhibited,
    NetUnreachToS,
    HostUnreachToS,
    CommProhibited,
    HostPrecedenceViolation,
    PrecedenceCutoff,
    Unknown(u8),
}

impl From<u8> for Icmpv4DstUnreachable {
    fn from(code: u8) -> Self {
        use Icmpv4DstUnreachable::*;
        match code {
            0 => NetUnreachable,
            1 => HostUnreachable,
            2 => ProtoUnreachable,
            3 => PortUnreachable,
            4 => FragRequired,
            5 => SrcRouteFailed,
            6 => DstNetUnknown,
            7 => DstHostUnknown,
            8 => SrcHostIsolated,
            9 => NetProhibited,
            10 => HostProhibited,
            11 => NetUnreachToS,
            12 => HostUnreachToS,
            13 => CommProhibited,
            14 => HostPrecedenceViolation,
            15 => PrecedenceCutoff,
            other => Unknown(other),
        }
    }
}

impl From<Icmpv4DstUnreachable> for u8 {
    fn from(c: Icmpv4DstUnreachable) -> u8 {
        use Icmpv4DstUnreachable::*;
        match c {
            NetUnreachable => 0,
            HostUnreachable => 1,
            ProtoUnreachable => 2,
            PortUnreachable => 3,
            FragRequired => 4,
            SrcRouteFailed => 5,
            DstNetUnknown => 6,
            DstHostUnknown => 7,
            SrcHostIsolated => 8,
            NetProhibited => 9,
            HostProhibited => 10,
            NetUnreachToS => 11,
            HostUnreachToS => 12,
            CommProhibited => 13,
            HostPrecedenceViolation => 14,
            PrecedenceCutoff => 15,
            Unknown(other) => other,
        }
    }
}

/// Length of the ICMP header (type, code, checksum, and the 4-byte "rest of header").
pub const HEADER_LEN: usize = 8;
/// RFC 792: an error quotes the original IP header and at least the first 64 bits of its data.
pub const MIN_QUOTED_DATA: usize = 8;

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST_OF_HEADER: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    /// RFC 1191 §4: the low 16 bits of the formerly unused word of a Fragmentation Needed message.
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    pub const DATA: usize = 8;
}

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A zero-copy view over an ICMPv4 message (the whole IPv4 payload).
#[derive(Debug)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// `Truncated` if shorter than the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }
    /// The type-specific second word.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::REST_OF_HEADER];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::NEXT_HOP_MTU])
    }
    /// Everything after the 8-byte header: echo data, or the quoted datagram of an error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    /// Whether the checksum over the whole message is right (RFC 792).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(checksum::data(self.buffer.as_ref()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        self.buffer.as_mut()[field::REST_OF_HEADER].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_SEQNO].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
    /// Computes and stores the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// The meaning of an ICMPv4 message, borrowing its data from the packet.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// Type 3. `header` is the quoted original IPv4 header (its `payload_len` is the original datagram's, not what
    /// was quoted) and `data` the quoted bytes after it: at least the first 8 (ports and sequence number of a TCP
    /// segment), up to what the sender included.
    DstUnreachable {
        reason: Icmpv4DstUnreachable,
        /// RFC 1191 next-hop MTU for `FragRequired`; 0 from routers predating RFC 1191 (and for other codes).
        next_hop_mtu: u16,
        header: Ipv4Repr,
        data: &'a [u8],
    },
    /// Any other message (or an echo with a non-zero code), kept raw.
    Other {
        msg_type: u8,
        code: u8,
        rest_of_header: u32,
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses an ICMPv4 message: `bytes` is exactly the IPv4 payload (as delimited by the total length).
    ///
    /// Errors: `Truncated` (short header, or an error message quoting less than RFC 792 requires), `Checksum`
    /// (when `verify_checksum`), and for Destination Unreachable whatever the quoted header fails with.
    pub fn parse(bytes: &'a [u8], verify_checksum: bool) -> Result<Icmpv4Repr<'a>> {
        let p = Icmpv4Packet::new_checked(bytes)?;
        if verify_checksum && !p.verify_checksum() {
            return Err(WireError::Checksum);
        }
        let data = &bytes[field::DATA..];
        Ok(match (p.msg_type(), p.msg_code()) {
            (msg::ECHO_REQUEST, 0) => Icmpv4Repr::EchoRequest { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data },
            (msg::ECHO_REPLY, 0) => Icmpv4Repr::EchoReply { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data },
            (msg::DST_UNREACHABLE, code) => {
                let (header, quoted) = Ipv4Repr::parse_quoted(data)?;
                // Without the first 8 bytes (or all of a shorter original payload) nothing can be matched.
                if quoted.len() < MIN_QUOTED_DATA.min(header.payload_len) {
                    return Err(WireError::Truncated);
                }
                Icmpv4Repr::DstUnreachable { reason: code.into(), next_hop_mtu: p.next_hop_mtu(), header, data: quoted }
            }
            (msg_type, code) => Icmpv4Repr::Other { msg_type, code, rest_of_header: p.rest_of_header(), data },
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. }
            | Icmpv4Repr::EchoReply { data, .. }
            | Icmpv4Repr::Other { data, .. } => HEADER_LEN + data.len(),
            Icmpv4Repr::DstUnreachable { data, .. } => HEADER_LEN + Ipv4Repr::HEADER_LEN + data.len(),
        }
    }

    /// Writes the whole message, data copied in, with its checksum into `buf[..buffer_len()]`. Returns its length.
    /// A quoted header is emitted without options and with a fresh checksum.
    ///
    /// Errors: `BufferTooSmall`; `Malformed` if a quoted header's length does not fit its 16-bit field.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(WireError::BufferTooSmall);
        }
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..len]);
        let (msg_type, code, rest, data): (u8, u8, u32, &[u8]) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
                (msg::ECHO_REQUEST, 0, (ident as u32) << 16 | seq_no as u32, data)
            }
            Icmpv4Repr::EchoReply { ident, seq_no, data } => {
                (msg::ECHO_REPLY, 0, (ident as u32) << 16 | seq_no as u32, data)
            }
            Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data } => {
                header.emit(&mut p.data_mut()[..Ipv4Repr::HEADER_LEN])?;
                p.data_mut()[Ipv4Repr::HEADER_LEN..].copy_from_slice(data);
                (msg::DST_UNREACHABLE, reason.into(), next_hop_mtu as u32, &[])
            }
            Icmpv4Repr::Other { msg_type, code, rest_of_header, data } => (msg_type, code, rest_of_header, data),
        };
        p.set_msg_type(msg_type);
        p.set_msg_code(code);
        p.set_rest_of_header(rest);
        if !data.is_empty() {
            p.data_mut().copy_from_slice(data);
        }
        p.fill_checksum();
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::IpProtocol;
    use crate::wire::testdata::{self, l3};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

    /// The ICMP message of a captured frame.
    fn icmp(frame: &str) -> Vec<u8> {
        let b = l3(frame);
        let (ip, payload) = Ipv4Repr::parse(&b, true).unwrap();
        assert_eq!(ip.protocol, IpProtocol::Icmp);
        payload.to_vec()
    }

    const ALL_CAPTURED: [&str; 4] =
        [testdata::PING_REQUEST, testdata::PING_REPLY, testdata::ICMP_PORT_UNREACHABLE, testdata::ICMP_FRAG_NEEDED];

    #[test]
    fn linux_ping() {
        let data: Vec<u8> = (0x10..0x38).collect();
        let req = icmp(testdata::PING_REQUEST);
        let rep = icmp(testdata::PING_REPLY);
        assert_eq!(
            Icmpv4Repr::parse(&req, true),
            Ok(Icmpv4Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: &data })
        );
        assert_eq!(Icmpv4Repr::parse(&rep, true), Ok(Icmpv4Repr::EchoReply { ident: 0x1234, seq_no: 1, data: &data }));
        let p = Icmpv4Packet::new_checked(&rep[..]).unwrap();
        assert_eq!((p.msg_type(), p.msg_code(), p.echo_ident(), p.echo_seq_no()), (0, 0, 0x1234, 1));
    }

    #[test]
    fn linux_port_unreachable() {
        let b = icmp(testdata::ICMP_PORT_UNREACHABLE);
        let Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data } = Icmpv4Repr::parse(&b, true).unwrap()
        else {
            panic!("not a destination unreachable")
        };
        assert_eq!((reason, next_hop_mtu), (Icmpv4DstUnreachable::PortUnreachable, 0));
        assert_eq!((header.src, header.dst, header.protocol), (A_IP, B_IP, IpProtocol::Udp));
        assert_eq!(header.payload_len, 14);
        // The whole 14-byte UDP datagram was quoted: ports 40257 -> 5998, then "xdptcp".
        assert_eq!(data.len(), 14);
        assert_eq!(&data[..4], &[0x9d, 0x41, 0x17, 0x6e]);
        assert_eq!(&data[8..], b"xdptcp");
    }

    #[test]
    fn linux_frag_needed() {
        let b = icmp(testdata::ICMP_FRAG_NEEDED);
        let Icmpv4Repr::DstUnreachable { reason, next_hop_mtu, header, data } = Icmpv4Repr::parse(&b, true).unwrap()
        else {
            panic!("not a destination unreachable")
        };
        assert_eq!((reason, next_hop_mtu), (Icmpv4DstUnreachable::FragRequired, 1280));
        assert_eq!((header.src, header.dst, header.dont_fragment), (A_IP, B_IP, true));
        assert_eq!(header.payload_len, 1408, "the original datagram's length, not the quoted part's");
        assert_eq!(data.len(), 576 - 20 - 8 - 20, "Linux quotes up to 576 bytes of IP datagram in all");
        assert_eq!(&data[..4], &[0x95, 0x08, 0x17, 0x6d], "UDP ports 38152 -> 5997");
    }

    /// Emitting each parsed message reproduces Linux's bytes (the quoted headers have no options, and Linux
    /// routers quote them unchanged, so even their checksums match).
    #[test]
    fn emit_reproduces_linux_bytes() {
        for frame in ALL_CAPTURED {
            let b = icmp(frame);
            let r = Icmpv4Repr::parse(&b, true).unwrap();
            assert_eq!(r.buffer_len(), b.len());
            let mut out = vec![0x77u8; b.len() + 3];
            assert_eq!(r.emit(&mut out), Ok(b.len()));
            assert_eq!(&out[..b.len()], &b[..], "frame {frame}");
            assert_eq!(&out[b.len()..], &[0x77; 3]);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        // ICMP has no length field: only the checksum can reveal a cut in the data. A cut that removes words
        // summing to zero (here: multiples of three 0xaaaa words in the quoted UDP payload) leaves a message that
        // is valid in every respect, so it must parse; every other cut must fail.
        let mut undetectable = 0;
        for frame in ALL_CAPTURED {
            let b = icmp(frame);
            for n in 0..b.len() {
                match Icmpv4Repr::parse(&b[..n], true) {
                    Err(_) => {}
                    Ok(_) => {
                        assert!(n >= HEADER_LEN + 20 + 8, "len {n} of {frame}");
                        assert!(checksum::is_valid(checksum::data(&b[n..])), "len {n} of {frame}");
                        undetectable += 1;
                    }
                }
            }
        }
        assert!(undetectable < 100, "{undetectable}");
        // Without the checksum, a cut into the quote's first 8 data bytes is still an error.
        let b = icmp(testdata::ICMP_FRAG_NEEDED);
        for n in 0..HEADER_LEN + 20 + 8 {
            assert!(Icmpv4Repr::parse(&b[..n], false).is_err(), "len {n}");
        }
        assert!(Icmpv4Repr::parse(&b[..HEADER_LEN + 20 + 8], false).is_ok());
    }

    #[test]
    fn checksum_is_checked() {
        let mut b = icmp(testdata::PING_REPLY);
        b[20] ^= 0x40;
        assert_eq!(Icmpv4Repr::parse(&b, true), Err(WireError::Checksum));
        assert!(Icmpv4Repr::parse(&b, false).is_ok());
    }

    #[test]
    fn other_messages_are_values() {
        // Time exceeded (11/0) quoting a header; an echo request with a non-zero code; an unassigned type.
        let quoted = &icmp(testdata::ICMP_PORT_UNREACHABLE)[8..];
        for (t, c) in [(11u8, 0u8), (8, 1), (200, 7)] {
            let r = Icmpv4Repr::Other { msg_type: t, code: c, rest_of_header: 0xdead_beef, data: quoted };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut buf).unwrap();
            assert_eq!(Icmpv4Repr::parse(&buf, true), Ok(r));
        }
    }

    #[test]
    fn bad_quotes() {
        let b = icmp(testdata::ICMP_PORT_UNREACHABLE);
        let fix = |mut b: Vec<u8>| {
            Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
            b
        };
        let mut v6 = b.clone();
        v6[8] = 0x65;
        assert_eq!(Icmpv4Repr::parse(&fix(v6), true), Err(WireError::Unsupported));
        let mut ihl = b.clone();
        ihl[8] = 0x43;
        assert_eq!(Icmpv4Repr::parse(&fix(ihl), true), Err(WireError::Malformed));
        let mut later_fragment = b.clone();
        later_fragment[8 + 7] = 0x10;
        assert_eq!(Icmpv4Repr::parse(&fix(later_fragment), true), Err(WireError::Unsupported));
        // A quote shorter than 8 data bytes of a longer datagram cannot be matched.
        let mut short = b[..8 + 20 + 7].to_vec();
        short[8 + 2..8 + 4].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(Icmpv4Repr::parse(&fix(short), true), Err(WireError::Truncated));
    }

    #[test]
    fn emit_errors() {
        let r = Icmpv4Repr::EchoRequest { ident: 1, seq_no: 2, data: &[1, 2, 3] };
        assert_eq!(r.emit(&mut [0; 10]), Err(WireError::BufferTooSmall));
        assert_eq!(r.emit(&mut [0; 11]), Ok(11));
    }

    fn arb_header() -> impl Strategy<Value = Ipv4Repr> {
        (any::<u32>(), any::<u32>(), any::<u8>(), 0usize..2000, any::<u8>(), any::<u8>(), any::<u16>(), any::<bool>())
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
        fn echo_round_trip(req in any::<bool>(), ident in any::<u16>(), seq_no in any::<u16>(),
                           data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let r = if req {
                Icmpv4Repr::EchoRequest { ident, seq_no, data: &data }
            } else {
                Icmpv4Repr::EchoReply { ident, seq_no, data: &data }
            };
            let mut buf = vec![0u8; r.buffer_len()];
            prop_assert_eq!(r.emit(&mut buf), Ok(buf.len()));
            prop_assert_eq!(Icmpv4Repr::parse(&buf, true), Ok(r));
        }

        #[test]
        fn dst_unreachable_round_trip(code in any::<u8>(), mtu in any::<u16>(), header in arb_header(),
                                      quoted in proptest::collection::vec(any::<u8>(), 0..100)) {
            // What a sender may quote: at least min(8, original payload), at most the original payload.
            let n = quoted.len().min(header.payload_len).max(MIN_QUOTED_DATA.min(header.payload_len));
            let mut data = quoted.clone();
            data.resize(n, 0);
            let r = Icmpv4Repr::DstUnreachable { reason: code.into(), next_hop_mtu: mtu, header, data: &data };
            let mut buf = vec![0u8; r.buffer_len()];
            prop_assert_eq!(r.emit(&mut buf), Ok(buf.len()));
            prop_assert_eq!(Icmpv4Repr::parse(&buf, true), Ok(r));
        }

        #[test]
        fn other_round_trip(t in any::<u8>(), code in any::<u8>(), rest in any::<u32>(),
                            data in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assume!(t != msg::DST_UNREACHABLE);
            prop_assume!(!(code == 0 && (t == msg::ECHO_REQUEST || t == msg::ECHO_REPLY)));
            let r = Icmpv4Repr::Other { msg_type: t, code, rest_of_header: rest, data: &data };
            let mut buf = vec![0u8; r.buffer_len()];
            prop_assert_eq!(r.emit(&mut buf), Ok(buf.len()));
            prop_assert_eq!(Icmpv4Repr::parse(&buf, true), Ok(r));
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Icmpv4Repr::parse(&bytes, true);
            let _ = Icmpv4Repr::parse(&bytes, false);
        }

        #[test]
        fn parse_error_like_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 8..80), ihl in 0u8..16) {
            bytes[0] = msg::DST_UNREACHABLE;
            if bytes.len() > 8 {
                bytes[8] = 0x40 | ihl;
            }
            let _ = Icmpv4Repr::parse(&bytes, false);
        }
    }
}
