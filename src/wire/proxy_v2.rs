//! The PROXY protocol version 2 header (HAProxy's "The PROXY protocol", section 2.2): a binary preamble a proxy
//! sends first on a backend connection so the backend learns the client's address. Only what a TCP/IPv4 proxy
//! sends: `PROXY` over `TCP4` (28 bytes) and `LOCAL` (16 bytes, e.g. for health checks). TLVs are skipped on parse.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::{Result, WireError};

/// The 12-byte signature (§2.2): `\r\n\r\n\0\r\nQUIT\n`.
pub const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
/// Fixed part: signature, version/command, family/transport, length.
pub const HEADER_LEN: usize = 16;
/// The address block of `TCP over IPv4`: two addresses and two ports.
pub const IPV4_ADDRESS_LEN: usize = 12;

mod field {
    use core::ops::Range;
    pub const SIGNATURE: Range<usize> = 0..12;
    /// High nibble: version (2); low nibble: command (0 LOCAL, 1 PROXY).
    pub const VER_CMD: usize = 12;
    /// High nibble: address family (0 UNSPEC, 1 INET); low nibble: transport (0 UNSPEC, 1 STREAM).
    pub const FAM: usize = 13;
    /// Length of what follows, network byte order.
    pub const LEN: Range<usize> = 14..16;
    pub const SRC_ADDR: Range<usize> = 16..20;
    pub const DST_ADDR: Range<usize> = 20..24;
    pub const SRC_PORT: Range<usize> = 24..26;
    pub const DST_PORT: Range<usize> = 26..28;
}

const VERSION: u8 = 0x2;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const FAM_UNSPEC: u8 = 0x00;
const FAM_TCP4: u8 = 0x11;

/// A view over a PROXY v2 header at the start of a buffer.
pub struct ProxyV2Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ProxyV2Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        ProxyV2Packet { buffer }
    }

    /// Checks the signature, the version, and that the buffer holds the whole header the length field claims.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = ProxyV2Packet { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::SIGNATURE] != SIGNATURE || b[field::VER_CMD] >> 4 != VERSION {
            return Err(WireError::Malformed);
        }
        if b.len() < p.total_len() {
            return Err(WireError::Truncated);
        }
        if p.family() == FAM_TCP4 && p.address_len() < IPV4_ADDRESS_LEN {
            return Err(WireError::Malformed);
        }
        Ok(p)
    }

    pub fn command(&self) -> u8 {
        self.buffer.as_ref()[field::VER_CMD] & 0x0f
    }

    pub fn family(&self) -> u8 {
        self.buffer.as_ref()[field::FAM]
    }

    pub fn address_len(&self) -> usize {
        let b = &self.buffer.as_ref()[field::LEN];
        u16::from_be_bytes([b[0], b[1]]) as usize
    }

    /// The whole header's length: what a backend skips before the client's bytes.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.address_len()
    }

    fn ipv4(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[r];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    fn port(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ProxyV2Packet<T> {
    fn set_fixed(&mut self, ver_cmd: u8, fam: u8, len: u16) {
        let b = self.buffer.as_mut();
        b[field::SIGNATURE].copy_from_slice(&SIGNATURE);
        b[field::VER_CMD] = ver_cmd;
        b[field::FAM] = fam;
        b[field::LEN].copy_from_slice(&len.to_be_bytes());
    }
}

/// What a PROXY v2 header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyV2Repr {
    /// The connection was made by the proxy itself (health check): the backend uses the real addresses.
    Local,
    /// A relayed TCP/IPv4 connection: the client (`source`) and the address it connected to (`destination`).
    Tcp4 { source: SocketAddrV4, destination: SocketAddrV4 },
}

impl ProxyV2Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &ProxyV2Packet<T>) -> Result<ProxyV2Repr> {
        match (p.command(), p.family()) {
            (CMD_LOCAL, _) => Ok(ProxyV2Repr::Local),
            (CMD_PROXY, FAM_TCP4) => Ok(ProxyV2Repr::Tcp4 {
                source: SocketAddrV4::new(p.ipv4(field::SRC_ADDR), p.port(field::SRC_PORT)),
                destination: SocketAddrV4::new(p.ipv4(field::DST_ADDR), p.port(field::DST_PORT)),
            }),
            _ => Err(WireError::Malformed),
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            ProxyV2Repr::Local => HEADER_LEN,
            ProxyV2Repr::Tcp4 { .. } => HEADER_LEN + IPV4_ADDRESS_LEN,
        }
    }

    /// Writes the header into the first `buffer_len()` bytes of the packet's buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ProxyV2Packet<T>) {
        match *self {
            ProxyV2Repr::Local => p.set_fixed(VERSION << 4 | CMD_LOCAL, FAM_UNSPEC, 0),
            ProxyV2Repr::Tcp4 { source, destination } => {
                p.set_fixed(VERSION << 4 | CMD_PROXY, FAM_TCP4, IPV4_ADDRESS_LEN as u16);
                let b = p.buffer.as_mut();
                b[field::SRC_ADDR].copy_from_slice(&source.ip().octets());
                b[field::DST_ADDR].copy_from_slice(&destination.ip().octets());
                b[field::SRC_PORT].copy_from_slice(&source.port().to_be_bytes());
                b[field::DST_PORT].copy_from_slice(&destination.port().to_be_bytes());
            }
        }
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut ProxyV2Packet::new_unchecked(&mut v[..]));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp4_header_matches_the_spec_layout() {
        let repr = ProxyV2Repr::Tcp4 {
            source: "198.18.0.1:54321".parse().unwrap(),
            destination: "198.18.0.2:80".parse().unwrap(),
        };
        // Spelled out from section 2.2 of the spec: signature, 0x21 (v2, PROXY), 0x11 (AF_INET, STREAM), length 12,
        // then src addr, dst addr, src port, dst port.
        let expected: [u8; 28] = [
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
            0x21, 0x11, 0x00, 0x0C, // ver/cmd, fam, len
            198, 18, 0, 1, // source address
            198, 18, 0, 2, // destination address
            0xD4, 0x31, // 54321
            0x00, 0x50, // 80
        ];
        assert_eq!(repr.to_bytes(), expected);
        let p = ProxyV2Packet::new_checked(&expected[..]).unwrap();
        assert_eq!(p.total_len(), 28);
        assert_eq!(ProxyV2Repr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn local_header() {
        let b = ProxyV2Repr::Local.to_bytes();
        assert_eq!(&b[12..], &[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(ProxyV2Repr::parse(&ProxyV2Packet::new_checked(&b[..]).unwrap()), Ok(ProxyV2Repr::Local));
    }

    #[test]
    fn malformed_headers_are_errors() {
        let good =
            ProxyV2Repr::Tcp4 { source: "198.18.0.1:1".parse().unwrap(), destination: "198.18.0.2:2".parse().unwrap() }
                .to_bytes();
        assert_eq!(ProxyV2Packet::new_checked(&good[..27]).err(), Some(WireError::Truncated));
        assert_eq!(ProxyV2Packet::new_checked(&good[..10]).err(), Some(WireError::Truncated));
        let mut bad = good.clone();
        bad[3] = 0;
        assert_eq!(ProxyV2Packet::new_checked(&bad[..]).err(), Some(WireError::Malformed));
        let mut v1 = good.clone();
        v1[12] = 0x11;
        assert_eq!(ProxyV2Packet::new_checked(&v1[..]).err(), Some(WireError::Malformed));
        let mut short = good.clone();
        short[15] = 4;
        assert_eq!(ProxyV2Packet::new_checked(&short[..]).err(), Some(WireError::Malformed));
        // TLVs after the addresses are covered by the length and skipped.
        let mut tlv = good.clone();
        tlv[15] = 15;
        tlv.extend_from_slice(&[0x04, 0x00, 0x00]);
        let p = ProxyV2Packet::new_checked(&tlv[..]).unwrap();
        assert_eq!(p.total_len(), 31);
        assert!(ProxyV2Repr::parse(&p).is_ok());
    }
}
