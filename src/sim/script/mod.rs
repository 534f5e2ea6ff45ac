//! Packetdrill-style conformance scripts: one engine against a scripted peer, in virtual time.
//!
//! A script is a list of timed lines, in packetdrill's notation:
//!
//! ```text
//! --set tcp_timestamps=1                 // engine settings, like sysctls (before the first timed line)
//! --tolerance_usecs=4000                 // how late or early an outbound segment may be (default 4 ms)
//! 0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
//! +0    bind(3, ..., ...) = 0
//! +0    listen(3, 1) = 0
//! +0    < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
//! +0    > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 0 ecr 100,nop,wscale 7>
//! +.010 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 110 ecr 0>
//! +0    accept(3, ..., ...) = 4
//! +0    < P. 1:1001(1000) ack 1 win 257
//! +0    > . 1:1(0) ack 1001 <...>
//! +0    read(4, ..., 2000) = 1000
//! +0    info(4) state=ESTAB rto_ms=210
//! +0    counter(TCPChallengeACK) = 0
//! ```
//!
//! `<` is a segment the peer sends, `>` one the engine must send. Sequence numbers are relative: the peer's to its
//! ISN (fixed by the harness), the engine's to the ISS of its first SYN or SYN-ACK; SACK blocks likewise, each in
//! its sender's space. The engine's TS val is relative to its value in the first outbound timestamp, and the
//! peer's TS ecr is translated into the engine's clock the same way (packetdrill's convention), so an RTT sample
//! is exactly what the script's times say. In an outbound line, `*` matches any value of a field and `<...>` any
//! options; without `<...>` the options must match exactly (none if omitted), and `win` is checked only when
//! given. Time is `0.100` (absolute), `+0.010` (after the previous line) or `*` (any time, outbound only).
//! `port N` after the fields picks the peer's port, for scripts with more than one connection (each numbered on
//! its own); without it a line concerns the connection of the previous segment.
//!
//! Owns: the script notation (parse, print) and its runner. Must not touch: engine internals (it drives only the
//! public `Engine` API: `handle_ipv4`, `handle_timeout`, `poll_transmit`, the socket calls, `info`, counters).

mod parse;
mod run;

use std::fmt::Write as _;
use std::time::Duration;

pub use parse::parse;
pub use run::{run, run_file, Outcome};

use crate::wire::{Ipv4Repr, TcpFlags, TcpRepr};

/// The peer's initial sequence number: script sequence 0 on the inbound side.
pub const PEER_ISN: u32 = 1_000_000_000;

/// A parse or run failure, naming the script line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ScriptError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// A value in a script: a number, or `*` (any, outbound only).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Field<T> {
    Is(T),
    Any,
}

impl<T: PartialEq + Copy> Field<T> {
    pub fn matches(&self, v: T) -> bool {
        match self {
            Field::Is(x) => *x == v,
            Field::Any => true,
        }
    }
}

/// One TCP option as written in a script, in wire order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptSpec {
    Nop,
    Eol,
    Mss(Field<u16>),
    WScale(Field<u8>),
    SackOk,
    /// Blocks `[left, right)` relative to the data sender's ISN.
    Sack(Vec<(u32, u32)>),
    Ts {
        val: Field<u32>,
        ecr: Field<u32>,
    },
    /// A Fast Open option: `FO` (empty: a cookie request), `FO 0011aabb` (hex) or `FO *` (any non-empty cookie).
    FastOpen(Option<Vec<u8>>),
}

/// A segment line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegSpec {
    pub flags: u8,
    pub seq: Field<u32>,
    pub len: Field<u32>,
    pub ack: Option<Field<u32>>,
    pub win: Option<Field<u16>>,
    /// `None`: `<...>` (any options). `Some(vec![])`: none written, so none expected.
    pub options: Option<Vec<OptSpec>>,
    /// `port N`: the peer's port (a second connection; not packetdrill notation). Default: the current peer.
    pub port: Option<u16>,
}

/// When a line happens.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum When {
    Absolute(Duration),
    Relative(Duration),
    /// Outbound only: whenever the engine sends it (before the next timed line).
    Any,
}

/// What an app call is expected to return: a value or an errno name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Value(i64),
    Errno(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Inbound(SegSpec),
    Outbound(SegSpec),
    /// `name(args) = expect`.
    Call {
        name: String,
        args: Vec<String>,
        expect: Expect,
    },
    /// `info(fd) key=value ...`: `ss -i`-like checks of one connection.
    Info {
        fd: i64,
        checks: Vec<(String, String)>,
    },
    /// `counter(Name) = n`: an engine MIB counter.
    Counter {
        name: String,
        expect: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub when: When,
    pub action: Action,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub name: String,
    /// `--set name=value` lines, applied over the default configuration.
    pub settings: Vec<String>,
    pub tolerance: Duration,
    pub lines: Vec<Line>,
}

/// How relative numbers map to the wire: learned as the run goes (the engine's ISS and TS base), fixed for the peer.
#[derive(Copy, Clone, Debug, Default)]
pub struct Numbering {
    /// The engine's ISS, once its first SYN or SYN-ACK was seen (0 before: absolute numbers).
    pub local_iss: Option<u32>,
    /// The peer's ISN.
    pub peer_isn: u32,
    /// Engine TS val on the wire minus TS val in the script.
    pub ts_base: Option<u32>,
}

impl Numbering {
    pub fn local(&self) -> u32 {
        self.local_iss.unwrap_or(0)
    }
}

fn flags_text(flags: u8) -> String {
    let mut s = String::new();
    for (bit, name) in [
        (TcpFlags::SYN, 'S'),
        (TcpFlags::FIN, 'F'),
        (TcpFlags::RST, 'R'),
        (TcpFlags::PSH, 'P'),
        (TcpFlags::URG, 'U'),
        (TcpFlags::ECE, 'E'),
        (TcpFlags::CWR, 'W'),
        (TcpFlags::ACK, '.'),
    ] {
        if flags & bit != 0 {
            s.push(name);
        }
    }
    s
}

/// A segment in script notation: `outbound` segments are the engine's (its sequence space is `n.local()`).
pub fn format_segment(seg: &TcpRepr<'_>, outbound: bool, n: &Numbering) -> String {
    let (own, other) = if outbound { (n.local(), n.peer_isn) } else { (n.peer_isn, n.local()) };
    let seq = seg.seq.0.wrapping_sub(own);
    let len = seg.payload.len() as u32;
    let mut s = format!("{} {}:{}({})", flags_text(seg.flags.0), seq, seq.wrapping_add(len), len);
    if seg.flags.ack() {
        let _ = write!(s, " ack {}", seg.ack.0.wrapping_sub(other));
    }
    let _ = write!(s, " win {}", seg.window);
    let o = &seg.options;
    let mut opts = Vec::new();
    if let Some(m) = o.mss {
        opts.push(format!("mss {m}"));
    }
    if o.sack_permitted {
        opts.push("sackOK".to_string());
    }
    if let Some((v, e)) = o.timestamps {
        let (v, e) = if outbound {
            (v.wrapping_sub(n.ts_base.unwrap_or(0)), e)
        } else {
            (v, if e == 0 { 0 } else { e.wrapping_sub(n.ts_base.unwrap_or(0)) })
        };
        opts.push(format!("TS val {v} ecr {e}"));
    }
    if let Some(w) = o.window_scale {
        opts.push(format!("wscale {w}"));
    }
    if o.sack_count > 0 {
        let blocks: Vec<String> = o
            .sack_blocks()
            .iter()
            .map(|b| format!("{}:{}", b.left.0.wrapping_sub(other), b.right.0.wrapping_sub(other)))
            .collect();
        opts.push(format!("sack {}", blocks.join(" ")));
    }
    if let Some(c) = o.tfo_cookie {
        let hex: String = c.as_slice().iter().map(|b| format!("{b:02x}")).collect();
        opts.push(if hex.is_empty() { "FO".to_string() } else { format!("FO {hex}") });
    }
    if !opts.is_empty() {
        let _ = write!(s, " <{}>", opts.join(","));
    }
    s
}

/// An IPv4 packet in script notation, or a note that it is not TCP.
pub fn format_packet(packet: &[u8], outbound: bool, n: &Numbering) -> String {
    let Ok((ip, payload)) = Ipv4Repr::parse(packet, false) else { return "<not IPv4>".to_string() };
    match TcpRepr::parse(payload, ip.src, ip.dst, false) {
        Ok(t) => format_segment(&t, outbound, n),
        Err(_) => "<malformed TCP>".to_string(),
    }
}
