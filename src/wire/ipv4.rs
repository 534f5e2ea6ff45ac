//! IPv4 header (RFC 791). We accept options on receive (skipped) but never emit them; fragments are reported as
//! `Unsupported` so the caller counts and drops them (TCP here always sets DF and negotiates MSS).

use std::net::Ipv4Addr;

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

/// A zero-copy view over an IPv4 packet.
#[derive(Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Validates version, IHL >= 5, IHL*4 <= total length <= buffer length.
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
    pub fn parse(bytes: &[u8], verify_checksum: bool) -> Result<(Ipv4Repr, &[u8])> {
        let _ = (bytes, verify_checksum);
        todo!("wire helper")
    }

    /// Length of the header this repr emits (always 20: we never emit options).
    pub const HEADER_LEN: usize = 20;

    /// Writes a 20-byte header with a correct checksum into `buf[..20]`. Returns 20.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let _ = buf;
        todo!("wire helper")
    }
}
