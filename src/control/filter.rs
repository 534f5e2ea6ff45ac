//! The capture filter: a small subset of the pcap-filter(7) language that tcpdump users type without thinking, so
//! `xdptcp capture --filter "host 198.18.0.2 and tcp port 80"` means what it means to tcpdump.
//!
//! Grammar (precedence `not` > `and` > `or`, as in pcap-filter):
//!
//! ```text
//! expr      := and_expr (("or" | "||") and_expr)*
//! and_expr  := unary (("and" | "&&") unary)*
//! unary     := ("not" | "!") unary | "(" expr ")" | primitive
//! primitive := [dir] "host" ADDR | [dir] "net" ADDR "/" LEN | [dir] "net" ADDR "mask" MASK
//!            | [proto] [dir] "port" N | [proto] [dir] "portrange" N "-" M | dir ADDR
//!            | "ip" | "arp" | "tcp" | "udp" | "icmp"
//!            | "inbound" | "outbound"     (received by / sent by the worker)
//!            | FLAG                       (the TCP flag is set: syn fin rst psh ack urg ece cwr, or tcp-syn ...)
//!            | VALUE                      (a bare address or port repeats the previous primitive's kind:
//!                                          "port 80 or 443", "host 198.18.0.1 or 198.18.0.2")
//! dir       := "src" | "dst" | "src or dst" | "src and dst"
//! proto     := "tcp" | "udp"
//! ```
//!
//! Matching never panics and never allocates: it reads only bytes it has bounds-checked, on the whole frame (before
//! the snap length cuts it). Frames are Ethernet (with up to two 802.1Q tags skipped) or bare IPv4, per worker.
//! `host` matches an IPv4 source/destination or an ARP sender/target address, as in tcpdump; `port` matches TCP and
//! UDP ports of first fragments.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::capture::Direction;

/// The link-layer framing of what a worker taps: pcapng `LINKTYPE_ETHERNET` (1) for AF_XDP frames, or
/// `LINKTYPE_IPV4` (228) for engines driven with bare IPv4 packets (simulator, tests).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub enum LinkType {
    #[default]
    Ethernet,
    RawIpv4,
}

/// A parse error with the token where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("capture filter: {message} (at `{near}`)")]
pub struct FilterError {
    pub message: String,
    pub near: String,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Dir {
    Src,
    Dst,
    SrcOrDst,
    SrcAndDst,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Proto {
    Any,
    Tcp,
    Udp,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Primitive {
    /// An address (a /32 network) or network, in the given direction.
    Net {
        dir: Dir,
        addr: u32,
        mask: u32,
    },
    Port {
        proto: Proto,
        dir: Dir,
        lo: u16,
        hi: u16,
    },
    Ip,
    Arp,
    IpProto(u8),
    /// TCP segments with any of these flag bits set.
    TcpFlags(u8),
    Direction(Direction),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Prim(Primitive),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A compiled capture filter; the empty filter matches every frame.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CaptureFilter {
    expr: Option<Expr>,
}

/// The few fields of a frame the filter looks at, pulled out once with bounds checks.
struct Fields {
    direction: Direction,
    ipv4: bool,
    arp: bool,
    src: u32,
    dst: u32,
    proto: u8,
    /// Present only for TCP/UDP first fragments with 4 bytes of header.
    ports: Option<(u16, u16)>,
    /// Present only for TCP first fragments with 14 bytes of header.
    tcp_flags: Option<u8>,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

impl Fields {
    fn extract(frame: &[u8], link: LinkType, direction: Direction) -> Fields {
        let mut f =
            Fields { direction, ipv4: false, arp: false, src: 0, dst: 0, proto: 0, ports: None, tcp_flags: None };
        let (ethertype, l3) = match link {
            LinkType::RawIpv4 => (ETHERTYPE_IPV4, 0),
            LinkType::Ethernet => {
                let mut at = 12;
                let mut ty = match be16(frame, at) {
                    Some(t) => t,
                    None => return f,
                };
                // Skip up to two VLAN tags (802.1Q, 802.1ad).
                for _ in 0..2 {
                    if ty != ETHERTYPE_VLAN && ty != ETHERTYPE_QINQ {
                        break;
                    }
                    at += 4;
                    ty = match be16(frame, at) {
                        Some(t) => t,
                        None => return f,
                    };
                }
                (ty, at + 2)
            }
        };
        match ethertype {
            ETHERTYPE_IPV4 => f.extract_ipv4(frame.get(l3..).unwrap_or(&[])),
            ETHERTYPE_ARP => {
                // RFC 826 for Ethernet/IPv4: sender protocol address at 14, target at 24.
                let arp = frame.get(l3..).unwrap_or(&[]);
                if let (Some(spa), Some(tpa)) = (be32(arp, 14), be32(arp, 24)) {
                    f.arp = true;
                    f.src = spa;
                    f.dst = tpa;
                }
            }
            _ => {}
        }
        f
    }

    fn extract_ipv4(&mut self, ip: &[u8]) {
        let Some(&vihl) = ip.first() else { return };
        let ihl = (vihl & 0x0f) as usize * 4;
        if vihl >> 4 != 4 || ihl < 20 {
            return;
        }
        let (Some(src), Some(dst), Some(&proto), Some(frag)) = (be32(ip, 12), be32(ip, 16), ip.get(9), be16(ip, 6))
        else {
            return;
        };
        self.ipv4 = true;
        self.src = src;
        self.dst = dst;
        self.proto = proto;
        // Only the first fragment carries the transport header.
        if frag & 0x1fff != 0 {
            return;
        }
        let l4 = ip.get(ihl..).unwrap_or(&[]);
        if proto == 6 || proto == 17 {
            if let (Some(sp), Some(dp)) = (be16(l4, 0), be16(l4, 2)) {
                self.ports = Some((sp, dp));
            }
        }
        if proto == 6 {
            self.tcp_flags = l4.get(13).copied();
        }
    }
}

fn dir_match<T: Copy>(dir: Dir, src: T, dst: T, pred: impl Fn(T) -> bool) -> bool {
    match dir {
        Dir::Src => pred(src),
        Dir::Dst => pred(dst),
        Dir::SrcOrDst => pred(src) || pred(dst),
        Dir::SrcAndDst => pred(src) && pred(dst),
    }
}

impl Primitive {
    fn matches(&self, f: &Fields) -> bool {
        match *self {
            Primitive::Net { dir, addr, mask } => {
                (f.ipv4 || f.arp) && dir_match(dir, f.src, f.dst, |a| a & mask == addr & mask)
            }
            Primitive::Port { proto, dir, lo, hi } => {
                let proto_ok = match proto {
                    Proto::Any => true,
                    Proto::Tcp => f.proto == 6,
                    Proto::Udp => f.proto == 17,
                };
                match f.ports {
                    Some((sp, dp)) if f.ipv4 && proto_ok => dir_match(dir, sp, dp, |p| (lo..=hi).contains(&p)),
                    _ => false,
                }
            }
            Primitive::Ip => f.ipv4,
            Primitive::Arp => f.arp,
            Primitive::IpProto(p) => f.ipv4 && f.proto == p,
            Primitive::TcpFlags(bits) => f.ipv4 && f.tcp_flags.is_some_and(|fl| fl & bits != 0),
            Primitive::Direction(d) => f.direction == d,
        }
    }
}

impl Expr {
    fn matches(&self, f: &Fields) -> bool {
        match self {
            Expr::Prim(p) => p.matches(f),
            Expr::Not(e) => !e.matches(f),
            Expr::And(a, b) => a.matches(f) && b.matches(f),
            Expr::Or(a, b) => a.matches(f) || b.matches(f),
        }
    }
}

impl CaptureFilter {
    /// Compiles a filter expression; blank text is the match-everything filter.
    pub fn parse(text: &str) -> Result<CaptureFilter, FilterError> {
        let tokens = tokenize(text);
        if tokens.is_empty() {
            return Ok(CaptureFilter { expr: None });
        }
        let mut p = Parser { tokens, pos: 0, last: None };
        let expr = p.expr(0)?;
        if let Some(t) = p.peek() {
            return Err(p.error(format!("unexpected `{t}`")));
        }
        Ok(CaptureFilter { expr: Some(expr) })
    }

    /// True if the filter matches everything (no expression).
    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }

    /// Does `frame` (framed as `link`, going `direction`) pass the filter?
    pub fn matches(&self, frame: &[u8], link: LinkType, direction: Direction) -> bool {
        match &self.expr {
            None => true,
            Some(e) => e.matches(&Fields::extract(frame, link, direction)),
        }
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let flush = |cur: &mut String, out: &mut Vec<String>| {
            if !cur.is_empty() {
                out.push(std::mem::take(cur));
            }
        };
        match c {
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            '(' | ')' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            '&' | '|' if chars.peek() == Some(&c) => {
                chars.next();
                flush(&mut cur, &mut out);
                out.push(format!("{c}{c}"));
            }
            '!' if cur.is_empty() => out.push("!".into()),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a bare value after `or`/`and` repeats.
#[derive(Copy, Clone)]
enum Last {
    Host(Dir),
    Port(Proto, Dir),
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
    last: Option<Last>,
}

/// Nesting deeper than this is refused (the recursion is bounded whatever the input).
const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }
    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += t.is_some() as usize;
        t
    }
    fn error(&self, message: String) -> FilterError {
        let near = self.tokens.get(self.pos.min(self.tokens.len().saturating_sub(1))).cloned().unwrap_or_default();
        FilterError { message, near }
    }
    fn expect_value(&mut self, what: &str) -> Result<String, FilterError> {
        match self.next() {
            Some(t) if !matches!(t.as_str(), "(" | ")" | "and" | "or" | "not" | "&&" | "||" | "!") => Ok(t),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.error(format!("expected {what}")))
            }
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.and_expr(depth)?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.pos += 1;
            let right = self.and_expr(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.unary(depth)?;
        while matches!(self.peek(), Some("and" | "&&")) {
            self.pos += 1;
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply".into()));
        }
        match self.peek() {
            Some("not" | "!") => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some("(") => {
                self.pos += 1;
                let e = self.expr(depth + 1)?;
                if self.next().as_deref() != Some(")") {
                    self.pos = self.pos.saturating_sub(1);
                    return Err(self.error("expected `)`".into()));
                }
                Ok(e)
            }
            Some(_) => self.primitive().map(Expr::Prim),
            None => Err(self.error("unexpected end of filter".into())),
        }
    }

    /// `src`, `dst`, `src or dst`, `src and dst` (the two-word forms only when followed by a qualifier or value,
    /// so that `src host a or dst host b` still parses as an `or` of two primitives).
    fn dir(&mut self) -> Option<Dir> {
        let first = match self.peek() {
            Some("src") => Dir::Src,
            Some("dst") => Dir::Dst,
            _ => return None,
        };
        self.pos += 1;
        let second = self.tokens.get(self.pos + 1).map(String::as_str);
        let combined = match (self.peek(), second) {
            (Some("or"), Some(s)) if (s == "src" || s == "dst") && s != dir_word(first) => Some(Dir::SrcOrDst),
            (Some("and"), Some(s)) if (s == "src" || s == "dst") && s != dir_word(first) => Some(Dir::SrcAndDst),
            _ => None,
        };
        if let Some(d) = combined {
            // Only a combined direction if what follows the second word is a qualifier or a value, not another
            // primitive's direction (e.g. `src or dst port 80`).
            self.pos += 2;
            return Some(d);
        }
        Some(first)
    }

    fn primitive(&mut self) -> Result<Primitive, FilterError> {
        let proto = match self.peek() {
            Some("tcp") | Some("udp") => {
                let follows = self.tokens.get(self.pos + 1).map(String::as_str);
                if matches!(follows, Some("port" | "portrange" | "src" | "dst")) {
                    let p = if self.peek() == Some("tcp") { Proto::Tcp } else { Proto::Udp };
                    self.pos += 1;
                    Some(p)
                } else {
                    None
                }
            }
            _ => None,
        };
        let dir = self.dir();
        let word = self.expect_value("a filter primitive")?;
        let d = dir.unwrap_or(Dir::SrcOrDst);
        let prim = match word.as_str() {
            "host" => {
                let v = self.expect_value("an IPv4 address")?;
                self.last = Some(Last::Host(d));
                host(&v).ok_or_else(|| self.error_prev(format!("bad IPv4 address `{v}`")))?.with_dir(d)
            }
            "net" => {
                let v = self.expect_value("a network")?;
                let prim = if self.peek() == Some("mask") {
                    self.pos += 1;
                    let m = self.expect_value("a netmask")?;
                    let addr: Ipv4Addr = v.parse().map_err(|_| self.error_prev(format!("bad network `{v}`")))?;
                    let mask: Ipv4Addr = m.parse().map_err(|_| self.error_prev(format!("bad netmask `{m}`")))?;
                    let mask = u32::from(mask);
                    Primitive::Net { dir: d, addr: u32::from(addr) & mask, mask }
                } else {
                    net(&v).ok_or_else(|| self.error_prev(format!("bad network `{v}`")))?.with_dir(d)
                };
                self.last = Some(Last::Host(d));
                prim
            }
            "port" => {
                let v = self.expect_value("a port number")?;
                let port: u16 = v.parse().map_err(|_| self.error_prev(format!("bad port `{v}`")))?;
                let proto = proto.unwrap_or(Proto::Any);
                self.last = Some(Last::Port(proto, d));
                Primitive::Port { proto, dir: d, lo: port, hi: port }
            }
            "portrange" => {
                let v = self.expect_value("a port range like 8000-8080")?;
                let range = v.split_once('-').and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)));
                let (lo, hi) = range.ok_or_else(|| self.error_prev(format!("bad port range `{v}`")))?;
                Primitive::Port { proto: proto.unwrap_or(Proto::Any), dir: d, lo: lo.min(hi), hi: lo.max(hi) }
            }
            _ if proto.is_some() => {
                return Err(self.error_prev(format!("expected `port` after the protocol, got `{word}`")))
            }
            "ip" if dir.is_none() => Primitive::Ip,
            "arp" if dir.is_none() => Primitive::Arp,
            "tcp" if dir.is_none() => Primitive::IpProto(6),
            "udp" if dir.is_none() => Primitive::IpProto(17),
            "icmp" if dir.is_none() => Primitive::IpProto(1),
            "inbound" if dir.is_none() => Primitive::Direction(Direction::Rx),
            "outbound" if dir.is_none() => Primitive::Direction(Direction::Tx),
            w if dir.is_none() && tcp_flag(w).is_some() => Primitive::TcpFlags(tcp_flag(w).unwrap_or(0)),
            value => {
                // A bare value: `src 198.18.0.1`, or a repeat of the previous kind (`port 80 or 443`).
                let kind = match (dir, self.last) {
                    (Some(d), _) => Last::Host(d),
                    (None, Some(last)) => last,
                    (None, None) => return Err(self.error_prev(format!("unknown filter primitive `{value}`"))),
                };
                match kind {
                    Last::Host(d) => {
                        net(value).ok_or_else(|| self.error_prev(format!("bad address `{value}`")))?.with_dir(d)
                    }
                    Last::Port(proto, d) => {
                        let port: u16 = value.parse().map_err(|_| self.error_prev(format!("bad port `{value}`")))?;
                        Primitive::Port { proto, dir: d, lo: port, hi: port }
                    }
                }
            }
        };
        Ok(prim)
    }

    fn error_prev(&self, message: String) -> FilterError {
        FilterError { message, near: self.tokens.get(self.pos.saturating_sub(1)).cloned().unwrap_or_default() }
    }
}

fn dir_word(d: Dir) -> &'static str {
    match d {
        Dir::Src => "src",
        _ => "dst",
    }
}

impl Primitive {
    fn with_dir(self, d: Dir) -> Primitive {
        match self {
            Primitive::Net { addr, mask, .. } => Primitive::Net { dir: d, addr, mask },
            other => other,
        }
    }
}

fn host(v: &str) -> Option<Primitive> {
    let a: Ipv4Addr = v.parse().ok()?;
    Some(Primitive::Net { dir: Dir::SrcOrDst, addr: u32::from(a), mask: u32::MAX })
}

/// `198.18.0.0/15` or a plain address (a /32).
fn net(v: &str) -> Option<Primitive> {
    let (a, len) = match v.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 32)?),
        None => (v, 32),
    };
    let a: Ipv4Addr = a.parse().ok()?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len as u32) };
    Some(Primitive::Net { dir: Dir::SrcOrDst, addr: u32::from(a) & mask, mask })
}

/// TCP flag bits by name (RFC 9293 §3.1, RFC 3168 for ECE/CWR); `tcp-` prefix optional as in tcpdump.
fn tcp_flag(w: &str) -> Option<u8> {
    Some(match w.strip_prefix("tcp-").unwrap_or(w) {
        "fin" => 0x01,
        "syn" => 0x02,
        "rst" => 0x04,
        "push" | "psh" => 0x08,
        "ack" => 0x10,
        "urg" => 0x20,
        "ece" => 0x40,
        "cwr" => 0x80,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare IPv4/TCP packet: src:sport -> dst:dport with `flags`.
    fn tcp_packet(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[32] = 0x50;
        p[33] = flags;
        p
    }

    fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    const A: [u8; 4] = [198, 18, 0, 1];
    const B: [u8; 4] = [198, 18, 0, 2];

    fn m(filter: &str, frame: &[u8]) -> bool {
        let f = CaptureFilter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        f.matches(frame, LinkType::RawIpv4, Direction::Tx)
    }

    #[test]
    fn hosts_ports_and_directions() {
        let syn = tcp_packet(A, 40000, B, 80, 0x02);
        assert!(m("", &syn));
        assert!(m("host 198.18.0.2", &syn));
        assert!(m("src host 198.18.0.1", &syn));
        assert!(!m("dst host 198.18.0.1", &syn));
        assert!(m("src 198.18.0.1", &syn));
        assert!(m("port 80", &syn));
        assert!(m("tcp port 80", &syn));
        assert!(!m("udp port 80", &syn));
        assert!(m("dst port 80", &syn));
        assert!(!m("src port 80", &syn));
        assert!(m("src or dst port 80", &syn));
        assert!(!m("src and dst port 80", &syn));
        assert!(m("portrange 79-81", &syn));
        assert!(m("net 198.18.0.0/15", &syn));
        assert!(m("net 198.18.0.0 mask 255.254.0.0", &syn));
        assert!(!m("net 10.0.0.0/8", &syn));
        assert!(m("port 443 or 80", &syn), "a bare value repeats the previous primitive");
        assert!(m("host 10.0.0.1 or 198.18.0.2", &syn));
        assert!(m("tcp and not udp", &syn));
        assert!(m("icmp or (tcp && port 80)", &syn));
        assert!(!m("!tcp", &syn));
        assert!(m("src host 198.18.0.1 or dst host 10.1.1.1", &syn));
        assert!(m("outbound and port 80", &syn) && !m("inbound", &syn));
    }

    #[test]
    fn tcp_flags() {
        let syn = tcp_packet(A, 40000, B, 80, 0x02);
        let synack = tcp_packet(B, 80, A, 40000, 0x12);
        let ack = tcp_packet(A, 40000, B, 80, 0x10);
        assert!(m("tcp-syn", &syn) && m("syn", &synack) && !m("syn", &ack));
        assert!(m("syn and ack", &synack) && !m("syn and ack", &syn));
        assert!(m("syn and not ack", &syn) && !m("syn and not ack", &synack));
        assert!(m("rst or fin or ack", &ack));
    }

    #[test]
    fn ethernet_vlan_and_arp() {
        let syn = tcp_packet(A, 40000, B, 80, 0x02);
        let f = CaptureFilter::parse("host 198.18.0.2 and port 80").unwrap();
        assert!(f.matches(&ethernet(0x0800, &syn), LinkType::Ethernet, Direction::Rx));
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&0x8100u16.to_be_bytes());
        tagged.extend_from_slice(&[0, 5]);
        tagged.extend_from_slice(&0x0800u16.to_be_bytes());
        tagged.extend_from_slice(&syn);
        assert!(f.matches(&tagged, LinkType::Ethernet, Direction::Rx));
        // ARP request from .1 asking for .2 (RFC 826 layout for Ethernet/IPv4).
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&A);
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&B);
        let arp = ethernet(0x0806, &arp);
        let host = CaptureFilter::parse("arp and host 198.18.0.2").unwrap();
        assert!(host.matches(&arp, LinkType::Ethernet, Direction::Rx));
        assert!(!CaptureFilter::parse("port 80").unwrap().matches(&arp, LinkType::Ethernet, Direction::Rx));
    }

    #[test]
    fn fragments_have_no_ports() {
        let mut frag = tcp_packet(A, 40000, B, 80, 0x02);
        frag[6..8].copy_from_slice(&100u16.to_be_bytes());
        assert!(!m("port 80", &frag));
        assert!(m("host 198.18.0.2", &frag));
    }

    #[test]
    fn errors_are_reported() {
        for bad in
            ["host", "host 1.2.3", "port x", "(tcp", "tcp)", "frobnicate", "net 1.2.3.4/33", "and", "tcp host 1.1.1.1"]
        {
            assert!(CaptureFilter::parse(bad).is_err(), "{bad} should not parse");
        }
        let deep = "(".repeat(200) + "tcp" + &")".repeat(200);
        assert!(CaptureFilter::parse(&deep).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let f = CaptureFilter::parse("host 198.18.0.2 and port 80 and syn or arp").unwrap();
        let mut x = 0x1234_5678u32;
        for len in 0..128usize {
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            if len > 14 {
                buf[12] = 0x08;
                buf[13] = (len % 2 * 6) as u8;
            }
            let _ = f.matches(&buf, LinkType::Ethernet, Direction::Rx);
            let _ = f.matches(&buf, LinkType::RawIpv4, Direction::Tx);
        }
    }
}
