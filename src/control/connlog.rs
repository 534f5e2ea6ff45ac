//! `xdptcp log`: per-connection debug logging on demand. The operator names connections with an ss filter
//! (`dport = :80`, `dst 198.18.1.2`); every TCP segment such a connection receives or sends is then logged through
//! `tracing` at debug level under the target `xdptcp::conn`, one tcpdump-like line each:
//!
//! ```text
//! DEBUG xdptcp::conn: w0 in 198.18.1.2:41234 > 198.18.0.1:80 [S] seq 1283 ack 0 win 64240 len 0
//! ```
//!
//! Off by default (the worker then pays one branch per frame on a worker-local field); `xdptcp log --off` turns it
//! off again. The matching reads only bounds-checked header bytes and never allocates unless a line is logged.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::capture::Direction;
use super::filter::LinkType;
use super::ssfilter::SsFilter;

/// The tracing target of the per-connection lines (the CLI's subscriber always lets it through at debug level:
/// the lines only exist while an operator asked for them).
pub const TARGET: &str = "xdptcp::conn";

/// The fields of a TCP/IPv4 segment the log line shows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub payload: usize,
}

/// Parses a TCP/IPv4 frame (Ethernet with up to two VLAN tags, or bare IPv4); `None` for anything else or a
/// truncated header.
pub fn parse_segment(frame: &[u8], link: LinkType) -> Option<Segment> {
    let ip = match link {
        LinkType::RawIpv4 => frame,
        LinkType::Ethernet => {
            let mut off = 12;
            let mut ethertype = u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?);
            for _ in 0..2 {
                if ethertype != 0x8100 && ethertype != 0x88a8 {
                    break;
                }
                off += 4;
                ethertype = u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?);
            }
            if ethertype != 0x0800 {
                return None;
            }
            frame.get(off + 2..)?
        }
    };
    let vihl = *ip.first()?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 || *ip.get(9)? != 6 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes(ip.get(2..4)?.try_into().ok()?)).min(ip.len());
    let frag = u16::from_be_bytes(ip.get(6..8)?.try_into().ok()?);
    if frag & 0x1fff != 0 {
        return None;
    }
    let addr = |o: usize| -> Option<Ipv4Addr> { Some(Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(o..o + 4)?).ok()?)) };
    let (src_ip, dst_ip) = (addr(12)?, addr(16)?);
    let tcp = ip.get(ihl..total)?;
    let be16 = |o: usize| -> Option<u16> { Some(u16::from_be_bytes(tcp.get(o..o + 2)?.try_into().ok()?)) };
    let be32 = |o: usize| -> Option<u32> { Some(u32::from_be_bytes(tcp.get(o..o + 4)?.try_into().ok()?)) };
    let data_off = usize::from(*tcp.get(12)? >> 4) * 4;
    if data_off < 20 || data_off > tcp.len() {
        return None;
    }
    Some(Segment {
        src: SocketAddrV4::new(src_ip, be16(0)?),
        dst: SocketAddrV4::new(dst_ip, be16(2)?),
        seq: be32(4)?,
        ack: be32(8)?,
        flags: *tcp.get(13)?,
        window: be16(14)?,
        payload: tcp.len() - data_off,
    })
}

/// tcpdump's flag notation: `S`, `S.`, `.`, `P.`, `F.`, `R`, `R.`.
pub fn flags_text(flags: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(0x02, 'S'), (0x01, 'F'), (0x08, 'P'), (0x04, 'R'), (0x20, 'U'), (0x40, 'E'), (0x80, 'W')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    if flags & 0x10 != 0 {
        s.push('.');
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

/// The `ss` view of a segment: (local, remote) from the stack's side.
fn ends(seg: &Segment, direction: Direction) -> (SocketAddrV4, SocketAddrV4) {
    match direction {
        Direction::Rx => (seg.dst, seg.src),
        Direction::Tx => (seg.src, seg.dst),
    }
}

/// The log line for `frame` if it is a segment of a connection `filter` selects.
pub fn line(worker: u32, link: LinkType, filter: &SsFilter, frame: &[u8], direction: Direction) -> Option<String> {
    let seg = parse_segment(frame, link)?;
    let (local, remote) = ends(&seg, direction);
    if !filter.matches(local, remote) {
        return None;
    }
    let dir = match direction {
        Direction::Rx => "in",
        Direction::Tx => "out",
    };
    Some(format!(
        "w{worker} {dir} {} > {} [{}] seq {} ack {} win {} len {}",
        seg.src,
        seg.dst,
        flags_text(seg.flags),
        seg.seq,
        seg.ack,
        seg.window,
        seg.payload
    ))
}

/// Logs `frame` if it belongs to a selected connection.
#[cold]
pub fn log_segment(worker: u32, link: LinkType, filter: &SsFilter, frame: &[u8], direction: Direction) {
    if let Some(l) = line(worker, link, filter, frame, direction) {
        tracing::debug!(target: "xdptcp::conn", "{l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8, payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40 + payload];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[28..32].copy_from_slice(&7u32.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = flags;
        p[34..36].copy_from_slice(&512u16.to_be_bytes());
        p
    }

    #[test]
    fn lines_for_selected_connections_only() {
        let f = SsFilter::parse("dport = :80").unwrap();
        let syn = segment([198, 18, 1, 2], 40000, [198, 18, 0, 1], 80, 0x02, 0);
        // Received: the remote is the source, so `dport` (the remote's port) is 40000: not selected.
        assert_eq!(line(0, LinkType::RawIpv4, &f, &syn, Direction::Rx), None);
        let f = SsFilter::parse("sport = :80").unwrap();
        assert_eq!(
            line(1, LinkType::RawIpv4, &f, &syn, Direction::Rx).unwrap(),
            "w1 in 198.18.1.2:40000 > 198.18.0.1:80 [S] seq 1000 ack 7 win 512 len 0"
        );
        let reply = segment([198, 18, 0, 1], 80, [198, 18, 1, 2], 40000, 0x18, 5);
        assert_eq!(
            line(1, LinkType::RawIpv4, &f, &reply, Direction::Tx).unwrap(),
            "w1 out 198.18.0.1:80 > 198.18.1.2:40000 [P.] seq 1000 ack 7 win 512 len 5"
        );
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&reply);
        assert!(line(0, LinkType::Ethernet, &f, &eth, Direction::Tx).is_some());
        assert_eq!(flags_text(0x12), "S.");
        assert_eq!(flags_text(0x04), "R");
    }

    #[test]
    fn truncated_and_foreign_frames_are_ignored() {
        let f = SsFilter::default();
        let syn = segment([198, 18, 1, 2], 40000, [198, 18, 0, 1], 80, 0x02, 0);
        for cut in 0..syn.len() {
            assert_eq!(parse_segment(&syn[..cut], LinkType::RawIpv4), None, "cut at {cut}");
            let _ = line(0, LinkType::Ethernet, &f, &syn[..cut], Direction::Rx);
        }
        let mut udp = syn.clone();
        udp[9] = 17;
        assert_eq!(parse_segment(&udp, LinkType::RawIpv4), None);
    }
}
