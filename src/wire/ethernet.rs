//! Ethernet II framing (IEEE 802.3 clause 3.2.6) with at most one IEEE 802.1Q VLAN tag.
//!
//! Frames are seen without preamble and FCS, as AF_XDP delivers them. Double-tagged (802.1ad "QinQ") frames are
//! `Unsupported`: a reply could not be tagged the same way through [`EthernetRepr`], so they are counted and
//! dropped rather than answered on the wrong service VLAN.

use core::fmt;
use core::str::FromStr;

use super::{Result, WireError};

/// A 48-bit IEEE 802 MAC address.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    pub const UNSPECIFIED: EthernetAddress = EthernetAddress([0; 6]);

    /// The address in the first 6 bytes of `bytes`; `None` if shorter.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Option<EthernetAddress> {
        Some(EthernetAddress(bytes.get(..6)?.try_into().ok()?))
    }
    #[inline]
    pub fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    /// Group bit (I/G, the least significant bit of the first octet) set: multicast or broadcast.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
    /// An individual address a host may own (not group, not all-zero).
    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::UNSPECIFIED
    }
    /// U/L bit set: locally administered rather than vendor-assigned.
    #[inline]
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid Ethernet address (expected six hex octets separated by ':' or '-')")]
pub struct AddressParseError;

impl FromStr for EthernetAddress {
    type Err = AddressParseError;

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case, one separator style throughout).
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let sep = match s.as_bytes().get(2) {
            Some(b':') => ':',
            Some(b'-') => '-',
            _ => return Err(AddressParseError),
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let part = parts.next().ok_or(AddressParseError)?;
            if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(AddressParseError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| AddressParseError)?;
        }
        if parts.next().is_some() {
            return Err(AddressParseError);
        }
        Ok(EthernetAddress(out))
    }
}

/// The EtherTypes this stack dispatches on (IEEE 802 numbers; values below 0x0600 are 802.3 lengths).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum EtherType {
    Ipv4,
    Arp,
    /// IEEE 802.1Q customer VLAN tag (TPID 0x8100).
    Vlan,
    Unknown(u16),
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_VLAN: u16 = 0x8100;
/// IEEE 802.1ad service tag: only ever the outer tag of a double-tagged frame.
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// IEEE 802.3 clause 3.2.6: a type/length field below this is a length (an LLC frame), not an EtherType.
const ETHERTYPE_MIN: u16 = 0x0600;

impl From<u16> for EtherType {
    #[inline]
    fn from(v: u16) -> Self {
        match v {
            ETHERTYPE_IPV4 => EtherType::Ipv4,
            ETHERTYPE_ARP => EtherType::Arp,
            ETHERTYPE_VLAN => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => ETHERTYPE_IPV4,
            EtherType::Arp => ETHERTYPE_ARP,
            EtherType::Vlan => ETHERTYPE_VLAN,
            EtherType::Unknown(v) => v,
        }
    }
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// Smallest frame on the wire without FCS (60 bytes): shorter frames are padded, which is why IPv4 trusts its own
/// total length rather than the frame length.
pub const MIN_FRAME_LEN: usize = 60;

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// In a tagged frame: the tag control information, then the inner EtherType.
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const INNER_ETHERTYPE: Range<usize> = 16..18;
    pub const PAYLOAD: usize = 14;
}

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A zero-copy view over an Ethernet II frame. The payload starts right after the first EtherType; a tagged frame's
/// payload therefore begins with the tag's TCI (use [`EthernetRepr::parse`] to look through the tag).
#[derive(Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }
    /// `Truncated` if shorter than the 14-byte header.
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
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(self.buffer.as_ref()[field::DESTINATION].try_into().unwrap())
    }
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(self.buffer.as_ref()[field::SOURCE].try_into().unwrap())
    }
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(&self.buffer.as_ref()[field::ETHERTYPE]))
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0);
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0);
    }
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// An Ethernet header, looked through at most one 802.1Q tag.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct EthernetRepr {
    pub src: EthernetAddress,
    pub dst: EthernetAddress,
    /// The EtherType of the payload (the inner one for a tagged frame): never `Vlan` after a parse.
    pub ethertype: EtherType,
    /// The 802.1Q tag control information (PCP 3 bits, DEI 1 bit, VID 12 bits), if the frame is tagged.
    pub vlan: Option<u16>,
}

impl EthernetRepr {
    /// Parses the header and returns it with the offset of the payload (14, or 18 behind a tag).
    ///
    /// Errors: `Truncated`; `Unsupported` for an 802.3 length field (an LLC frame such as STP), an 802.1ad outer
    /// tag or a second 802.1Q tag (see the module comment).
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<(EthernetRepr, usize)> {
        let frame = EthernetFrame::new_checked(bytes)?;
        let outer = be16(&bytes[field::ETHERTYPE]);
        let (ethertype, vlan, offset) = match outer {
            ETHERTYPE_VLAN => {
                if bytes.len() < HEADER_LEN + VLAN_TAG_LEN {
                    return Err(WireError::Truncated);
                }
                let inner = be16(&bytes[field::INNER_ETHERTYPE]);
                (inner, Some(be16(&bytes[field::VLAN_TCI])), HEADER_LEN + VLAN_TAG_LEN)
            }
            _ => (outer, None, HEADER_LEN),
        };
        if matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ) || ethertype < ETHERTYPE_MIN {
            return Err(WireError::Unsupported);
        }
        let repr = EthernetRepr { src: frame.src_addr(), dst: frame.dst_addr(), ethertype: ethertype.into(), vlan };
        Ok((repr, offset))
    }

    /// Bytes the header takes: 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The 12-bit VLAN identifier, if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan.map(|tci| tci & 0x0fff)
    }

    /// Writes the header (with the tag if `vlan` is set) into `buf[..header_len()]`. Returns the header length.
    /// `BufferTooSmall` if `buf` cannot hold it.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.header_len();
        if buf.len() < len {
            return Err(WireError::BufferTooSmall);
        }
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..len]);
        frame.set_dst_addr(self.dst);
        frame.set_src_addr(self.src);
        match self.vlan {
            Some(tci) => {
                frame.set_ethertype(EtherType::Vlan);
                buf[field::VLAN_TCI].copy_from_slice(&tci.to_be_bytes());
                buf[field::INNER_ETHERTYPE].copy_from_slice(&u16::from(self.ethertype).to_be_bytes());
            }
            None => frame.set_ethertype(self.ethertype),
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::{self, hex};
    use proptest::prelude::*;

    const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x0a]);
    const R_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x0b]);

    /// The captured ARP request with an 802.1Q tag (PCP 5, VID 100) inserted after the addresses.
    fn tagged_arp_request() -> Vec<u8> {
        let mut f = hex(testdata::ARP_REQUEST);
        f.splice(12..12, [0x81, 0x00, 0xa0, 0x64]);
        f
    }

    #[test]
    fn address_text() {
        assert_eq!(A_MAC.to_string(), "02:00:00:00:00:0a");
        assert_eq!(format!("{:?}", EthernetAddress::BROADCAST), "ff:ff:ff:ff:ff:ff");
        assert_eq!("02:00:00:00:00:0A".parse(), Ok(A_MAC));
        assert_eq!("02-00-00-00-00-0a".parse(), Ok(A_MAC));
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:0a:",
            "02:00:00:00:00:0a:01",
            "2:00:00:00:00:0a0",
            "02:00-00:00:00:0a",
            "02:00:00:00:00:0g",
            "+2:00:00:00:00:0a",
            "020000:00:00:0a",
            "02:00:00:00:00:0é",
        ] {
            assert_eq!(bad.parse::<EthernetAddress>(), Err(AddressParseError), "{bad:?}");
        }
        assert!(EthernetAddress::BROADCAST.is_broadcast() && EthernetAddress::BROADCAST.is_multicast());
        assert!(A_MAC.is_unicast() && A_MAC.is_local() && !A_MAC.is_multicast());
        assert!(!EthernetAddress::UNSPECIFIED.is_unicast());
        assert!(EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert_eq!(EthernetAddress::from_bytes(&[1, 2, 3, 4, 5, 6, 7]), Some(EthernetAddress([1, 2, 3, 4, 5, 6])));
        assert_eq!(EthernetAddress::from_bytes(&[1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn ethertype_numbers() {
        for (t, v) in [(EtherType::Ipv4, 0x0800), (EtherType::Arp, 0x0806), (EtherType::Vlan, 0x8100)] {
            assert_eq!(EtherType::from(v), t);
            assert_eq!(u16::from(t), v);
        }
        assert_eq!(EtherType::from(0x86dd), EtherType::Unknown(0x86dd));
    }

    #[test]
    fn captured_frames() {
        let f = hex(testdata::ARP_REQUEST);
        let (r, off) = EthernetRepr::parse(&f).unwrap();
        assert_eq!(
            r,
            EthernetRepr { src: A_MAC, dst: EthernetAddress::BROADCAST, ethertype: EtherType::Arp, vlan: None }
        );
        assert_eq!(off, 14);
        let f = hex(testdata::SYN);
        let (r, off) = EthernetRepr::parse(&f).unwrap();
        assert_eq!((r.src, r.dst, r.ethertype, off), (A_MAC, R_MAC, EtherType::Ipv4, 14));
        let view = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((view.src_addr(), view.dst_addr(), view.ethertype()), (A_MAC, R_MAC, EtherType::Ipv4));
        assert_eq!(view.payload(), &f[14..]);
        // Re-emitting reproduces the header.
        let mut out = [0u8; 14];
        assert_eq!(r.emit(&mut out), Ok(14));
        assert_eq!(&out[..], &f[..14]);
    }

    #[test]
    fn vlan_tag() {
        let f = tagged_arp_request();
        let (r, off) = EthernetRepr::parse(&f).unwrap();
        assert_eq!((r.ethertype, r.vlan, r.vlan_id(), off), (EtherType::Arp, Some(0xa064), Some(100), 18));
        assert_eq!(&f[off..], &hex(testdata::ARP_REQUEST)[14..]);
        let mut out = [0u8; 18];
        assert_eq!(r.emit(&mut out), Ok(18));
        assert_eq!(&out[..], &f[..18]);
        assert_eq!(r.emit(&mut out[..17]), Err(WireError::BufferTooSmall));
        assert_eq!(EthernetFrame::new_checked(&f[..]).unwrap().ethertype(), EtherType::Vlan);
    }

    #[test]
    fn unsupported_framings() {
        // Two 802.1Q tags, an 802.1ad outer tag, an 802.3 length field (STP/LLC).
        let mut qinq = tagged_arp_request();
        qinq.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        assert_eq!(EthernetRepr::parse(&qinq), Err(WireError::Unsupported));
        qinq[12..14].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(EthernetRepr::parse(&qinq), Err(WireError::Unsupported));
        let mut llc = hex(testdata::ARP_REQUEST);
        llc[12..14].copy_from_slice(&[0x00, 0x26]);
        assert_eq!(EthernetRepr::parse(&llc), Err(WireError::Unsupported));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for f in [hex(testdata::ARP_REQUEST), tagged_arp_request()] {
            let header = EthernetRepr::parse(&f).unwrap().1;
            for n in 0..header {
                assert!(EthernetRepr::parse(&f[..n]).is_err(), "len {n}");
            }
            // A header with nothing behind it is a valid (if empty) frame at this layer.
            assert!(EthernetRepr::parse(&f[..header]).is_ok());
        }
    }

    #[test]
    fn view_setters() {
        let mut buf = [0u8; 20];
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(R_MAC);
        f.set_src_addr(A_MAC);
        f.set_ethertype(EtherType::Unknown(0x88b5));
        f.payload_mut().fill(7);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr(), f.ethertype()), (R_MAC, A_MAC, EtherType::Unknown(0x88b5)));
        assert_eq!(f.payload(), &[7; 6]);
    }

    fn arb_repr() -> impl Strategy<Value = EthernetRepr> {
        let ethertype = prop_oneof![
            Just(EtherType::Ipv4),
            Just(EtherType::Arp),
            (0x0600u16..).prop_filter("not a tag", |v| *v != 0x8100 && *v != 0x88a8).prop_map(EtherType::from),
        ];
        (any::<[u8; 6]>(), any::<[u8; 6]>(), ethertype, proptest::option::of(any::<u16>())).prop_map(
            |(s, d, ethertype, vlan)| EthernetRepr {
                src: EthernetAddress(s),
                dst: EthernetAddress(d),
                ethertype,
                vlan,
            },
        )
    }

    proptest! {
        #[test]
        fn repr_round_trip(r in arb_repr(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = vec![0u8; r.header_len() + payload.len()];
            let n = r.emit(&mut buf).unwrap();
            buf[n..].copy_from_slice(&payload);
            let (back, off) = EthernetRepr::parse(&buf).unwrap();
            prop_assert_eq!(back, r);
            prop_assert_eq!(&buf[off..], &payload[..]);
        }

        #[test]
        fn address_text_round_trip(a in any::<[u8; 6]>()) {
            let a = EthernetAddress(a);
            prop_assert_eq!(a.to_string().parse::<EthernetAddress>(), Ok(a));
        }

        #[test]
        fn parse_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = EthernetRepr::parse(&bytes);
            if let Ok((r, off)) = EthernetRepr::parse(&bytes) {
                prop_assert!(off <= bytes.len());
                prop_assert!(r.ethertype != EtherType::Vlan);
            }
        }

        #[test]
        fn parse_arbitrary_text_never_panics(s in "\\PC{0,24}") {
            let _ = s.parse::<EthernetAddress>();
        }
    }
}
