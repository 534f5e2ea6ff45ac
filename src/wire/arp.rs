//! ARP (RFC 826) for IPv4 over Ethernet: the only pairing this stack resolves. Any other hardware or protocol type
//! is `Unsupported` (counted, dropped) rather than an error in the packet.

use std::net::Ipv4Addr;

use super::ethernet::EthernetAddress;
use super::{Result, WireError};

/// ARP opcodes (RFC 826; RARP and InARP opcodes are not ours to answer).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ArpOperation {
    Request,
    Reply,
}

impl ArpOperation {
    /// The opcode for `v`, if it is a request (1) or a reply (2).
    #[inline]
    pub fn from_u16(v: u16) -> Option<ArpOperation> {
        match v {
            OP_REQUEST => Some(ArpOperation::Request),
            OP_REPLY => Some(ArpOperation::Reply),
            _ => None,
        }
    }
}

impl From<ArpOperation> for u16 {
    #[inline]
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => OP_REQUEST,
            ArpOperation::Reply => OP_REPLY,
        }
    }
}

const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;
/// ar$hrd for Ethernet (RFC 826; IANA "Hardware Types").
const HTYPE_ETHERNET: u16 = 1;
/// ar$pro: the EtherType of IPv4.
const PTYPE_IPV4: u16 = 0x0800;

/// Bytes of the fixed part, before the variable-length addresses.
pub const FIXED_LEN: usize = 8;
/// Bytes of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
}

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A zero-copy view over an ARP packet of any hardware/protocol address lengths.
#[derive(Debug)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// `Truncated` if the buffer cannot hold the fixed part and the four addresses its length fields announce.
    /// Trailing bytes (Ethernet padding) are allowed.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < FIXED_LEN + 2 * (self.hardware_len() + self.protocol_len()) {
            return Err(WireError::Truncated);
        }
        Ok(())
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::HTYPE])
    }
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PTYPE])
    }
    #[inline]
    pub fn hardware_len(&self) -> usize {
        self.buffer.as_ref()[field::HLEN] as usize
    }
    #[inline]
    pub fn protocol_len(&self) -> usize {
        self.buffer.as_ref()[field::PLEN] as usize
    }
    /// The raw opcode ([`ArpOperation::from_u16`] interprets it).
    #[inline]
    pub fn operation(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::OPER])
    }
    #[inline]
    fn sha_start(&self) -> usize {
        field::ADDRESSES
    }
    #[inline]
    fn spa_start(&self) -> usize {
        self.sha_start() + self.hardware_len()
    }
    #[inline]
    fn tha_start(&self) -> usize {
        self.spa_start() + self.protocol_len()
    }
    #[inline]
    fn tpa_start(&self) -> usize {
        self.tha_start() + self.hardware_len()
    }
    #[inline]
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.sha_start()..self.spa_start()]
    }
    #[inline]
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.spa_start()..self.tha_start()]
    }
    #[inline]
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tha_start()..self.tpa_start()]
    }
    #[inline]
    pub fn target_protocol_addr(&self) -> &[u8] {
        let start = self.tpa_start();
        &self.buffer.as_ref()[start..start + self.protocol_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed part for Ethernet/IPv4 (hardware type 1, protocol 0x0800, lengths 6 and 4).
    #[inline]
    pub fn set_ethernet_ipv4(&mut self, op: ArpOperation) {
        let b = self.buffer.as_mut();
        b[field::HTYPE].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b[field::PTYPE].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        b[field::OPER].copy_from_slice(&u16::from(op).to_be_bytes());
    }
    #[inline]
    pub fn source_hardware_addr_mut(&mut self) -> &mut [u8] {
        let r = self.sha_start()..self.spa_start();
        &mut self.buffer.as_mut()[r]
    }
    #[inline]
    pub fn source_protocol_addr_mut(&mut self) -> &mut [u8] {
        let r = self.spa_start()..self.tha_start();
        &mut self.buffer.as_mut()[r]
    }
    #[inline]
    pub fn target_hardware_addr_mut(&mut self) -> &mut [u8] {
        let r = self.tha_start()..self.tpa_start();
        &mut self.buffer.as_mut()[r]
    }
    #[inline]
    pub fn target_protocol_addr_mut(&mut self) -> &mut [u8] {
        let start = self.tpa_start();
        let end = start + self.protocol_len();
        &mut self.buffer.as_mut()[start..end]
    }
}

/// An Ethernet/IPv4 ARP request or reply.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hw: EthernetAddress,
    pub source_ip: Ipv4Addr,
    /// Ignored (usually zero) in a request.
    pub target_hw: EthernetAddress,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an ARP packet (the Ethernet payload; trailing padding allowed).
    ///
    /// Errors: `Truncated`; `Unsupported` for anything but Ethernet (1) / IPv4 (0x0800) with lengths 6 / 4, and
    /// for opcodes other than request and reply.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<ArpRepr> {
        let p = ArpPacket::new_checked(bytes)?;
        if p.hardware_type() != HTYPE_ETHERNET
            || p.protocol_type() != PTYPE_IPV4
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(WireError::Unsupported);
        }
        let operation = ArpOperation::from_u16(p.operation()).ok_or(WireError::Unsupported)?;
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        // The lengths were checked against 6 and 4 above, so these conversions cannot fail.
        let mac = |b: &[u8]| EthernetAddress::from_bytes(b).ok_or(WireError::Truncated);
        Ok(ArpRepr {
            operation,
            source_hw: mac(p.source_hardware_addr())?,
            source_ip: ip(p.source_protocol_addr()),
            target_hw: mac(p.target_hardware_addr())?,
            target_ip: ip(p.target_protocol_addr()),
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the 28-byte packet into `buf[..28]`. Returns 28, or `BufferTooSmall`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < PACKET_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let mut p = ArpPacket::new_unchecked(&mut buf[..PACKET_LEN]);
        p.set_ethernet_ipv4(self.operation);
        p.source_hardware_addr_mut().copy_from_slice(&self.source_hw.0);
        p.source_protocol_addr_mut().copy_from_slice(&self.source_ip.octets());
        p.target_hardware_addr_mut().copy_from_slice(&self.target_hw.0);
        p.target_protocol_addr_mut().copy_from_slice(&self.target_ip.octets());
        Ok(PACKET_LEN)
    }

    /// A request for `target_ip` from `source_hw`/`source_ip` (target hardware address zero, RFC 826).
    #[inline]
    pub fn request(source_hw: EthernetAddress, source_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hw,
            source_ip,
            target_hw: EthernetAddress::UNSPECIFIED,
            target_ip,
        }
    }

    /// The reply to this request, sent by the owner of `target_ip` whose hardware address is `our_hw`
    /// (RFC 826 "Packet Reception": swap the sender and target fields, fill in our address, set the opcode).
    #[inline]
    pub fn reply(&self, our_hw: EthernetAddress) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hw: our_hw,
            source_ip: self.target_ip,
            target_hw: self.source_hw,
            target_ip: self.source_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EthernetRepr;
    use crate::wire::testdata::{self, hex};
    use proptest::prelude::*;

    const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x0a]);
    const R_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x0b]);
    const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const R_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn arp(frame: &str) -> Vec<u8> {
        let f = hex(frame);
        let (_, off) = EthernetRepr::parse(&f).unwrap();
        f[off..].to_vec()
    }

    #[test]
    fn linux_request_and_reply() {
        let req = ArpRepr::parse(&arp(testdata::ARP_REQUEST)).unwrap();
        assert_eq!(req, ArpRepr::request(A_MAC, A_IP, R_IP));
        let rep = ArpRepr::parse(&arp(testdata::ARP_REPLY)).unwrap();
        assert_eq!(
            rep,
            ArpRepr {
                operation: ArpOperation::Reply,
                source_hw: R_MAC,
                source_ip: R_IP,
                target_hw: A_MAC,
                target_ip: A_IP
            }
        );
        // Linux's reply is exactly what `reply` builds from the request.
        assert_eq!(req.reply(R_MAC), rep);
        for (frame, r) in [(testdata::ARP_REQUEST, req), (testdata::ARP_REPLY, rep)] {
            let mut out = [0u8; 30];
            assert_eq!(r.emit(&mut out), Ok(28));
            assert_eq!(&out[..28], &arp(frame)[..]);
            assert_eq!(&out[28..], &[0, 0]);
        }
    }

    #[test]
    fn padding_is_ignored() {
        // Received from a NIC, a 42-byte ARP frame arrives padded to 60 bytes.
        let mut b = arp(testdata::ARP_REPLY);
        b.resize(46, 0);
        assert_eq!(ArpRepr::parse(&b).unwrap().source_hw, R_MAC);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = arp(testdata::ARP_REQUEST);
        for n in 0..b.len() {
            assert_eq!(ArpRepr::parse(&b[..n]), Err(WireError::Truncated), "len {n}");
        }
    }

    #[test]
    fn other_types_are_unsupported() {
        let ok = arp(testdata::ARP_REQUEST);
        for (i, v) in [(1, 6), (3, 0xdd), (4, 8), (5, 16), (7, 3), (7, 8), (7, 0)] {
            let mut b = ok.clone();
            b[i] = v;
            b.resize(8 + 2 * (b[4] as usize + b[5] as usize), 0);
            assert_eq!(ArpRepr::parse(&b), Err(WireError::Unsupported), "byte {i} = {v}");
        }
        // The generic view still reads other address lengths (here IPv6-sized protocol addresses).
        let mut b = ok.clone();
        b[5] = 16;
        assert_eq!(ArpPacket::new_checked(&b[..]).err(), Some(WireError::Truncated));
        b.resize(8 + 2 * (6 + 16), 0xaa);
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.source_protocol_addr().len(), p.target_protocol_addr().len()), (16, 16));
        assert_eq!(p.target_hardware_addr().len(), 6);
    }

    #[test]
    fn emit_errors() {
        assert_eq!(ArpRepr::request(A_MAC, A_IP, R_IP).emit(&mut [0; 27]), Err(WireError::BufferTooSmall));
    }

    fn arb_repr() -> impl Strategy<Value = ArpRepr> {
        (any::<bool>(), any::<[u8; 6]>(), any::<u32>(), any::<[u8; 6]>(), any::<u32>()).prop_map(
            |(req, sh, si, th, ti)| ArpRepr {
                operation: if req { ArpOperation::Request } else { ArpOperation::Reply },
                source_hw: EthernetAddress(sh),
                source_ip: si.into(),
                target_hw: EthernetAddress(th),
                target_ip: ti.into(),
            },
        )
    }

    proptest! {
        #[test]
        fn repr_round_trip(r in arb_repr()) {
            let mut buf = [0u8; 28];
            prop_assert_eq!(r.emit(&mut buf), Ok(r.buffer_len()));
            prop_assert_eq!(ArpRepr::parse(&buf), Ok(r));
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ArpRepr::parse(&bytes);
            if let Ok(p) = ArpPacket::new_checked(&bytes[..]) {
                let _ = (p.source_hardware_addr(), p.source_protocol_addr());
                let _ = (p.target_hardware_addr(), p.target_protocol_addr());
            }
        }

        #[test]
        fn parse_arp_like_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 8..560)) {
            bytes[0..4].copy_from_slice(&[0, 1, 8, 0]);
            let _ = ArpRepr::parse(&bytes);
            if let Ok(p) = ArpPacket::new_checked(&bytes[..]) {
                let _ = (p.target_hardware_addr(), p.target_protocol_addr());
            }
        }
    }
}
