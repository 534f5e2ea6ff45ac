//! The link-layer and ICMP handling the worker does itself: Ethernet (+ one VLAN tag) framing, ARP (RFC 826) and
//! ICMP echo (RFC 792). Header layouts are checked once and read by offset; bad input is `None`, never a panic.

use std::net::Ipv4Addr;

use super::neigh::Mac;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const ETH_HEADER_LEN: usize = 14;
pub const BROADCAST: Mac = [0xff; 6];

/// The parts of an Ethernet header the worker uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EthHeader {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: u16,
    /// Bytes before the payload: 14, or 18 with a VLAN tag.
    pub header_len: usize,
}

pub fn parse_eth(frame: &[u8]) -> Option<EthHeader> {
    if frame.len() < ETH_HEADER_LEN {
        return None;
    }
    let dst = frame[0..6].try_into().ok()?;
    let src = frame[6..12].try_into().ok()?;
    let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let mut header_len = ETH_HEADER_LEN;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        if frame.len() < ETH_HEADER_LEN + 4 {
            return None;
        }
        ethertype = u16::from_be_bytes([frame[16], frame[17]]);
        header_len += 4;
    }
    Some(EthHeader { dst, src, ethertype, header_len })
}

/// Writes a 14-byte untagged Ethernet header.
pub fn write_eth(buf: &mut [u8], dst: Mac, src: Mac, ethertype: u16) {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;
pub const ARP_LEN: usize = 28;

/// An ARP packet for IPv4 over Ethernet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

pub fn parse_arp(p: &[u8]) -> Option<Arp> {
    if p.len() < ARP_LEN {
        return None;
    }
    // htype Ethernet (1), ptype IPv4, hlen 6, plen 4.
    if p[0..2] != [0, 1] || p[2..4] != ETHERTYPE_IPV4.to_be_bytes() || p[4] != 6 || p[5] != 4 {
        return None;
    }
    Some(Arp {
        op: u16::from_be_bytes([p[6], p[7]]),
        sender_mac: p[8..14].try_into().ok()?,
        sender_ip: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
        target_mac: p[18..24].try_into().ok()?,
        target_ip: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
    })
}

pub fn write_arp(buf: &mut [u8], a: &Arp) -> usize {
    buf[0..2].copy_from_slice(&1u16.to_be_bytes());
    buf[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    buf[4] = 6;
    buf[5] = 4;
    buf[6..8].copy_from_slice(&a.op.to_be_bytes());
    buf[8..14].copy_from_slice(&a.sender_mac);
    buf[14..18].copy_from_slice(&a.sender_ip.octets());
    buf[18..24].copy_from_slice(&a.target_mac);
    buf[24..28].copy_from_slice(&a.target_ip.octets());
    ARP_LEN
}

/// RFC 1071 one's-complement sum, folded and complemented.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The IPv4 header fields the worker needs, from a checked header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Head {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub header_len: usize,
    pub total_len: usize,
    pub fragmented: bool,
}

/// Checks version, lengths and the header checksum.
pub fn parse_ipv4(p: &[u8]) -> Option<Ipv4Head> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let header_len = ((p[0] & 0x0f) as usize) * 4;
    let total_len = u16::from_be_bytes([p[2], p[3]]) as usize;
    if header_len < 20 || total_len < header_len || total_len > p.len() {
        return None;
    }
    if internet_checksum(&p[..header_len]) != 0 {
        return None;
    }
    let frag = u16::from_be_bytes([p[6], p[7]]);
    Some(Ipv4Head {
        src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        protocol: p[9],
        header_len,
        total_len,
        fragmented: frag & 0x3fff != 0,
    })
}

pub const IPPROTO_ICMP: u8 = 1;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

/// Why an ICMP packet got no reply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Too short or bad checksum (counted as InErrors-like malformed input).
    Malformed,
    /// Valid, but not an echo request (we only answer pings).
    NotEcho,
    /// The reply would not fit the buffer.
    TooBig,
}

/// Writes the IPv4 packet answering the ICMP echo request `ip` (a whole IPv4 packet whose header `head` describes)
/// into `out`. The reply carries the request's identifier, sequence number and data unchanged (RFC 792; RFC 1122
/// §3.2.2.6), from our address. Returns the reply's length.
pub fn icmp_echo_reply(ip: &[u8], head: &Ipv4Head, ident: u16, out: &mut [u8]) -> Result<usize, IcmpError> {
    let icmp = &ip[head.header_len..head.total_len];
    if icmp.len() < 8 || internet_checksum(icmp) != 0 {
        return Err(IcmpError::Malformed);
    }
    if icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 {
        return Err(IcmpError::NotEcho);
    }
    let total = 20 + icmp.len();
    if total > out.len() {
        return Err(IcmpError::TooBig);
    }
    let (h, body) = out[..total].split_at_mut(20);
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    h[8] = 64;
    h[9] = IPPROTO_ICMP;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&head.dst.octets());
    h[16..20].copy_from_slice(&head.src.octets());
    let c = internet_checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    body.copy_from_slice(icmp);
    body[0] = ICMP_ECHO_REPLY;
    body[2..4].fill(0);
    let c = internet_checksum(body);
    body[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(total)
}

/// The destination address of an IPv4 packet we are about to send (the engine wrote a valid header).
pub fn ipv4_dst(p: &[u8]) -> Option<Ipv4Addr> {
    (p.len() >= 20).then(|| Ipv4Addr::new(p[16], p[17], p[18], p[19]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_request() -> Vec<u8> {
        let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 7, b'p', b'i', b'n', b'g', b'!'];
        let c = internet_checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0, 198, 18, 1, 2, 198, 18, 0, 1];
        let total = (20 + icmp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let c = internet_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend(icmp);
        ip
    }

    #[test]
    fn echo_reply_mirrors_request() {
        let req = echo_request();
        let head = parse_ipv4(&req).unwrap();
        assert_eq!(head.protocol, IPPROTO_ICMP);
        let mut out = [0u8; 100];
        let n = icmp_echo_reply(&req, &head, 99, &mut out).unwrap();
        let reply = &out[..n];
        let rh = parse_ipv4(reply).unwrap();
        assert_eq!((rh.src, rh.dst), (head.dst, head.src));
        assert_eq!(internet_checksum(&reply[20..]), 0);
        assert_eq!(reply[20], 0);
        assert_eq!(&reply[24..], &req[24..], "identifier, sequence and data unchanged");
    }

    #[test]
    fn bad_icmp_is_rejected() {
        let mut req = echo_request();
        let head = parse_ipv4(&req).unwrap();
        let mut out = [0u8; 100];
        req[25] ^= 1;
        assert_eq!(icmp_echo_reply(&req, &head, 0, &mut out), Err(IcmpError::Malformed));
        let req = echo_request();
        assert_eq!(icmp_echo_reply(&req, &head, 0, &mut out[..30]), Err(IcmpError::TooBig));
    }

    #[test]
    fn ipv4_checks() {
        let mut p = echo_request();
        assert!(parse_ipv4(&p).is_some());
        assert!(parse_ipv4(&p[..19]).is_none());
        p[10] ^= 1;
        assert!(parse_ipv4(&p).is_none(), "bad checksum");
    }

    #[test]
    fn arp_round_trip() {
        let a = Arp {
            op: ARP_REQUEST,
            sender_mac: [2, 0, 0, 0, 0, 1],
            sender_ip: Ipv4Addr::new(198, 18, 0, 254),
            target_mac: [0; 6],
            target_ip: Ipv4Addr::new(198, 18, 0, 1),
        };
        let mut b = [0u8; 28];
        assert_eq!(write_arp(&mut b, &a), 28);
        assert_eq!(parse_arp(&b), Some(a));
        b[4] = 8;
        assert_eq!(parse_arp(&b), None);
        assert_eq!(parse_arp(&b[..27]), None);
    }

    #[test]
    fn ethernet_with_and_without_vlan() {
        let mut f = [0u8; 60];
        write_eth(&mut f, BROADCAST, [2, 0, 0, 0, 0, 1], ETHERTYPE_ARP);
        let h = parse_eth(&f).unwrap();
        assert_eq!((h.ethertype, h.header_len), (ETHERTYPE_ARP, 14));
        f[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let h = parse_eth(&f).unwrap();
        assert_eq!((h.ethertype, h.header_len), (ETHERTYPE_IPV4, 18));
        assert!(parse_eth(&f[..16]).is_none());
        assert!(parse_eth(&f[..13]).is_none());
    }
}
