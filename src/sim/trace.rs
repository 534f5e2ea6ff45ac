//! The time-sequence ladder: every segment on the wire (flags, seq, ack, win, len, options, and what the link did
//! to it) and every state transition, in the two-column form TCP textbooks draw.

use std::fmt::Write as _;

use super::link::Fate;
use crate::tcp::Transition;
use crate::time::Instant;
use crate::wire::{Ipv4Repr, TcpRepr};

#[derive(Clone, Debug)]
pub enum TraceEntry {
    /// A packet put on a link (or injected) at `at`, with its fate.
    Packet { at: Instant, from: usize, to: usize, summary: String, fate: Fate },
    /// A state transition of host `host`.
    State { host: usize, transition: Transition },
}

#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub entries: Vec<TraceEntry>,
    /// Host names, for the column headers.
    pub names: Vec<String>,
    /// Every segment host 0 sent (`true`, at send time) or received (`false`, at arrival), for [`Trace::script`].
    pub host0_wire: Vec<(Instant, bool, Vec<u8>)>,
}

/// `S. 1000:1448(448) ack 5 win 512 <mss 1460,sackOK,TS 1:2,ws 7>` — tcpdump-like, relative to nothing (raw numbers).
pub fn summarize(packet: &[u8]) -> String {
    let Ok((ip, payload)) = Ipv4Repr::parse(packet, false) else {
        return format!("<{} bytes, not IPv4>", packet.len());
    };
    let Ok(t) = TcpRepr::parse(payload, ip.src, ip.dst, false) else { return "<malformed TCP>".to_string() };
    let mut s = format!("{:?} seq {}", t.flags, t.seq.0);
    if !t.payload.is_empty() {
        let _ = write!(s, ":{}({})", t.seq.0.wrapping_add(t.payload.len() as u32), t.payload.len());
    }
    if t.flags.ack() {
        let _ = write!(s, " ack {}", t.ack.0);
    }
    let _ = write!(s, " win {}", t.window);
    let o = &t.options;
    let mut opts = Vec::new();
    if let Some(m) = o.mss {
        opts.push(format!("mss {m}"));
    }
    if o.sack_permitted {
        opts.push("sackOK".to_string());
    }
    if let Some((v, e)) = o.timestamps {
        opts.push(format!("TS {v}:{e}"));
    }
    if let Some(w) = o.window_scale {
        opts.push(format!("ws {w}"));
    }
    if o.sack_count > 0 {
        let blocks: Vec<String> = o.sack_blocks().iter().map(|b| format!("{}-{}", b.left.0, b.right.0)).collect();
        opts.push(format!("sack {}", blocks.join(" ")));
    }
    if let Some(c) = o.tfo_cookie {
        opts.push(format!("tfo {}", c.len));
    }
    if !opts.is_empty() {
        let _ = write!(s, " <{}>", opts.join(","));
    }
    s
}

impl Trace {
    pub fn packet(&mut self, at: Instant, from: usize, to: usize, packet: &[u8], fate: Fate) {
        self.entries.push(TraceEntry::Packet { at, from, to, summary: summarize(packet), fate });
    }

    pub fn transition(&mut self, host: usize, transition: Transition) {
        self.entries.push(TraceEntry::State { host, transition });
    }

    /// Host 0's run in conformance-script notation (`sim::script`), so a failing run can become a script: `>` what
    /// it sent, `<` what reached it, times relative to the previous line, sequence numbers relative to each side's
    /// SYN, host 0's TS val 1000 plus milliseconds since the first line.
    pub fn script(&self) -> String {
        use crate::sim::script::{format_packet, Numbering};
        let mut n = Numbering::default();
        let mut out = String::new();
        let mut prev: Option<Instant> = None;
        let first = self.host0_wire.first().map(|w| w.0);
        for (at, outbound, packet) in &self.host0_wire {
            if let Ok((ip, payload)) = Ipv4Repr::parse(packet, false) {
                if let Ok(t) = TcpRepr::parse(payload, ip.src, ip.dst, false) {
                    if t.flags.syn() {
                        if *outbound && n.local_iss.is_none() {
                            n.local_iss = Some(t.seq.0);
                        } else if !*outbound && n.peer_isn == 0 {
                            n.peer_isn = t.seq.0;
                        }
                    }
                    if let (true, None, Some((v, _))) = (*outbound, n.ts_base, t.options.timestamps) {
                        // 1000 + ms since the first line: never 0, which an echo could not tell from "no echo".
                        let ms = at.saturating_since(first.unwrap_or(*at)).as_millis() as u32;
                        n.ts_base = Some(v.wrapping_sub(ms).wrapping_sub(1000));
                    }
                }
            }
            let delta = prev.map_or(std::time::Duration::ZERO, |p| at.saturating_since(p));
            let when = if prev.is_none() { "0".to_string() } else { format!("+{:.6}", delta.as_secs_f64()) };
            let dir = if *outbound { '>' } else { '<' };
            let _ = writeln!(out, "{when:<10} {dir} {}", format_packet(packet, *outbound, &n));
            prev = Some(*at);
        }
        out
    }

    /// The ladder: host 0 on the left, host 1 on the right.
    pub fn ladder(&self) -> String {
        let name = |i: usize| self.names.get(i).cloned().unwrap_or_else(|| format!("host{i}"));
        let mut out = String::new();
        let _ = writeln!(out, "{:>12}  {:<14}{:^72}{:>14}", "time (s)", name(0), "", name(1));
        for e in &self.entries {
            match e {
                TraceEntry::Packet { at, from, summary, fate, .. } => {
                    let mark = if fate.mark().is_empty() { String::new() } else { format!(" [{}]", fate.mark()) };
                    let body = format!("{summary}{mark}");
                    let arrow = if *from == 0 {
                        format!("--{body}-->")
                    } else if *from == usize::MAX {
                        format!("~~{body}~~>")
                    } else {
                        format!("<--{body}--")
                    };
                    let _ = writeln!(out, "{:>12}  {:<14}{:^72}{:>14}", at.to_string(), "", arrow, "");
                }
                TraceEntry::State { host, transition } => {
                    let text = format!("{} -> {}", transition.from.ss_name(), transition.to.ss_name());
                    let (l, r) = if *host == 0 { (text, String::new()) } else { (String::new(), text) };
                    let _ = writeln!(out, "{:>12}  {:<26}{:^48}{:>26}", transition.at.to_string(), l, "", r);
                }
            }
        }
        out
    }
}
