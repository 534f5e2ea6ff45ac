//! The engine against a hostile peer, as one function that both the `engine` fuzz target (`fuzz/`) and a unit
//! property test drive (the s2n-quic habit: one harness, two drivers). The input plays the peer of one engine that
//! listens on port 80 and has opened a connection of its own; segments are built from the input with sequence and
//! acknowledgment numbers relative to what the engine last sent (so they land in and around its windows),
//! interleaved with time jumps, application calls and raw garbage packets.
//!
//! After every step it checks protocol invariants, not only the absence of panics (issue 12):
//! - SND.UNA <= SND.NXT <= SND.MAX;
//! - a connection's receive memory is what it holds (readable bytes, out-of-order ranges, a chunk of slack each),
//!   and at most its advertised window plus a constant;
//! - a segment whose ACK is unacceptable (RFC 5961 §5.2 with Linux's `min(MAX.SND.WND, bytes acked)` bound)
//!   delivers no data and does not move TS.Recent; TS.Recent moves only from a segment at or before RCV.NXT;
//! - every byte is delivered once and in order: bytes read + readable == RCV.NXT - IRS - 1 (- the FIN).
//!
//! Panics (with a message) when an invariant breaks. Not part of the engine's API.
#![allow(clippy::field_reassign_with_default)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::{Config, ConnAudit, ConnId, Engine, Event, PacketSink, State};
use crate::time::Instant;
use crate::wire::{IpProtocol, Ipv4Repr, SeqNum, TcpFlags, TcpOptions, TcpRepr};

const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

#[derive(Default)]
struct Sink {
    scratch: Vec<u8>,
    last: Vec<Vec<u8>>,
}

impl PacketSink for Sink {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        self.scratch.resize(1500, 0);
        Some(&mut self.scratch)
    }
    fn commit(&mut self, len: usize) {
        self.last.push(self.scratch[..len].to_vec());
    }
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn packet(t: &TcpRepr<'_>) -> Vec<u8> {
    let h = t.header_len();
    let mut buf = vec![0u8; 20 + h + t.payload.len()];
    buf[20 + h..].copy_from_slice(t.payload);
    if t.emit(&mut buf[20..], t.payload.len(), PEER, US).is_err() {
        return Vec::new();
    }
    let ip = Ipv4Repr {
        src: PEER,
        dst: US,
        protocol: IpProtocol::Tcp,
        payload_len: h + t.payload.len(),
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_fragment: true,
    };
    let _ = ip.emit(&mut buf[..20]);
    buf
}

/// A connection the harness owns: its four-tuple, its IRS when first seen, the bytes read from it.
struct Owned {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    irs: Option<SeqNum>,
    read: u64,
}

fn synchronized(s: State) -> bool {
    matches!(
        s,
        State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait | State::Closing | State::LastAck
    )
}

/// Invariants of one connection on its own.
fn check_conn(a: &ConnAudit) {
    assert!(a.snd_una.le(a.snd_nxt) && a.snd_nxt.le(a.snd_max), "SND.UNA <= SND.NXT <= SND.MAX: {a:?}");
    let cs = a.chunk_size;
    // The ring of chunk slots spans at most the buffer's capacity (twice, for VecDeque's growth).
    let slots = 2 * 16 * (a.recv_capacity.div_ceil(cs) + 2);
    let held = cs * (2 + a.recv_queue.div_ceil(cs) + a.ooo_bytes.div_ceil(cs) + 2 * a.ooo_ranges) + slots;
    assert!(a.recv_bytes_held <= held, "receive memory {} > what it holds ({held}): {a:?}", a.recv_bytes_held);
    let window = if a.rcv_adv.gt(a.rcv_nxt) { (a.rcv_adv - a.rcv_nxt) as usize } else { 0 };
    let bound = a.recv_queue.max(a.recv_capacity) + window + 2 * cs + slots;
    assert!(a.recv_bytes_held <= bound, "receive memory {} > window bound {bound}: {a:?}", a.recv_bytes_held);
}

/// Runs one input. Panics when the engine breaks an invariant; returns how many steps ended with an accepted
/// connection established (so a test can tell its input got somewhere).
pub fn run(data: &[u8]) -> usize {
    let mut established_steps = 0;
    let mut cfg = Config::default();
    cfg.tcp_rmem = [4096, 65536, 262144];
    cfg.tcp_max_syn_backlog = 8;
    cfg.tcp_syncookies = data.first().copied().unwrap_or(0) % 3;
    cfg.tcp_fastopen = 3;
    let mut now = Instant::from_secs(1);
    let mut e = Engine::new(cfg, now, 7);
    let listener = e.listen(SocketAddrV4::new(US, 80), 4).unwrap();
    let active = e.connect(now, SocketAddrV4::new(US, 5000), SocketAddrV4::new(PEER, 6000)).ok();
    let mut conns: Vec<_> = active.into_iter().collect();
    let mut owned: HashMap<ConnId, Owned> = HashMap::new();
    if let Some(c) = active {
        owned.insert(
            c,
            Owned { local: SocketAddrV4::new(US, 5000), remote: SocketAddrV4::new(PEER, 6000), irs: None, read: 0 },
        );
    }
    let mut sink = Sink::default();
    // What the engine last told the peer: its sequence number and what it acknowledged.
    let (mut their_seq, mut their_ack) = (0u32, 0u32);
    let mut input = Cursor(data);
    let mut buf = [0u8; 2048];
    for _ in 0..256 {
        let Some(op) = input.u8() else { break };
        match op % 8 {
            0..=3 => {
                let Some(flags) = input.u8() else { break };
                let Some(dseq) = input.u16() else { break };
                let Some(dack) = input.u16() else { break };
                let Some(window) = input.u16() else { break };
                let Some(misc) = input.u8() else { break };
                let payload_len = input.u8().unwrap_or(0) as usize * 8;
                let payload = input.bytes(payload_len).to_vec();
                let mut options = TcpOptions::default();
                if misc & 1 != 0 {
                    options.mss = Some(window.max(1));
                }
                if misc & 2 != 0 {
                    options.window_scale = Some(misc >> 4);
                }
                options.sack_permitted = misc & 4 != 0;
                if misc & 8 != 0 {
                    options.timestamps = Some((dseq as u32 * 1000 + (misc >> 4) as u32 * 0x0800_0000, their_seq));
                }
                let port = if op % 2 == 0 { (80, 40000 + (misc as u16 % 4)) } else { (5000, 6000) };
                let t = TcpRepr {
                    src_port: port.1,
                    dst_port: port.0,
                    seq: SeqNum(their_ack.wrapping_add(dseq as u32).wrapping_sub(0x8000)),
                    ack: SeqNum(their_seq.wrapping_add(dack as u32).wrapping_sub(0x8000)),
                    flags: TcpFlags(flags),
                    window,
                    urgent: 0,
                    options,
                    payload: &payload,
                };
                let p = packet(&t);
                if !p.is_empty() {
                    let (local, remote) = (SocketAddrV4::new(US, t.dst_port), SocketAddrV4::new(PEER, t.src_port));
                    let before = e.audit(local, remote);
                    e.handle_ipv4(now, &p);
                    if let (Some(pre), Some(post)) = (before, e.audit(local, remote)) {
                        check_segment(&pre, &post, &t);
                    }
                }
            }
            4 => {
                let ms = input.u16().unwrap_or(1) as u64 * 8;
                now += Duration::from_millis(ms);
                e.handle_timeout(now);
            }
            5 => {
                let n = input.u8().unwrap_or(0) as usize;
                let raw = input.bytes(n).to_vec();
                e.handle_ipv4(now, &raw);
            }
            6 => {
                let which = input.u8().unwrap_or(0);
                if let Some(&c) = conns.get(which as usize % conns.len().max(1)) {
                    match which % 6 {
                        0 => {
                            let _ = e.send(now, c, &[0x55; 3000]);
                        }
                        1 => {
                            let n = e.recv(c, &mut buf).unwrap_or(0);
                            if let Some(o) = owned.get_mut(&c) {
                                o.read += n as u64;
                            }
                        }
                        2 => {
                            let _ = e.close(now, c);
                        }
                        3 => {
                            let _ = e.abort(now, c);
                        }
                        4 => {
                            let _ = e.shutdown_write(now, c);
                        }
                        _ => {
                            let _ = e.info(c);
                        }
                    }
                }
            }
            _ => {
                while let Ok(c) = e.accept(listener) {
                    conns.push(c);
                    if let Some((local, remote)) = e.local_addr_of(c) {
                        owned.insert(c, Owned { local, remote, irs: None, read: 0 });
                    }
                }
            }
        }
        while let Some(ev) = e.poll_event() {
            if let Event::Readable(c) = ev {
                let n = e.recv(c, &mut buf).unwrap_or(0);
                if let Some(o) = owned.get_mut(&c) {
                    o.read += n as u64;
                }
            }
        }
        sink.last.clear();
        e.poll_transmit(now, &mut sink);
        for p in &sink.last {
            if let Ok((ip, payload)) = Ipv4Repr::parse(p, true) {
                let t = TcpRepr::parse(payload, ip.src, ip.dst, true).expect("the engine emits valid segments");
                their_seq = t.seq.0;
                if t.flags.ack() {
                    their_ack = t.ack.0;
                }
            }
        }
        // Memory stays bounded by the configured buffers, whatever the peer does.
        assert!(e.buffer_bytes_in_use() <= 64 * (65536 + 4194304 + 8192));
        for o in owned.values_mut() {
            let Some(a) = e.audit(o.local, o.remote) else { continue };
            check_conn(&a);
            established_steps += (a.state == State::Established && o.local.port() == 80) as usize;
            if a.state == State::SynSent {
                continue;
            }
            // The same incarnation only (a four-tuple can be reused after a close).
            if *o.irs.get_or_insert(a.irs) != a.irs {
                continue;
            }
            let received = (a.rcv_nxt - a.irs) as u64 - 1 - a.peer_fin as u64;
            assert_eq!(o.read + a.recv_queue as u64, received, "bytes read + readable != RCV.NXT - IRS - 1: {a:?}");
        }
    }
    established_steps
}

/// What one segment may have changed on its connection.
fn check_segment(pre: &ConnAudit, post: &ConnAudit, t: &TcpRepr<'_>) {
    if post.irs != pre.irs || !synchronized(pre.state) {
        return;
    }
    if post.ts_recent != pre.ts_recent {
        let tsval = t.options.timestamps.map(|(v, _)| v);
        assert_eq!(tsval, Some(post.ts_recent), "TS.Recent from nowhere: {pre:?} -> {post:?}");
        assert!(t.seq.le(pre.rcv_nxt), "TS.Recent from a segment beyond RCV.NXT: {pre:?} -> {post:?}");
    }
    let f = t.flags;
    if !f.ack() || f.rst() || f.syn() {
        return;
    }
    // RFC 5961 §5.2 with Linux's bound: nothing acknowledged yet means no old ACK is acceptable.
    let acked = (pre.snd_una - pre.iss).saturating_sub(1);
    let lower = pre.snd_una - pre.max_snd_wnd.min(acked);
    if t.ack.lt(lower) || t.ack.gt(pre.snd_max) {
        assert_eq!(post.ts_recent, pre.ts_recent, "TS.Recent moved on an unacceptable ACK: {pre:?} -> {post:?}");
        assert_eq!(post.rcv_nxt, pre.rcv_nxt, "data accepted with an unacceptable ACK: {pre:?} -> {post:?}");
        assert_eq!(post.ooo_bytes, pre.ooo_bytes, "data queued with an unacceptable ACK: {pre:?} -> {post:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn hostile_peer_keeps_the_invariants(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            run(&data);
        }
    }

    /// Builds an input: an empty garbage packet (so the engine's own SYN goes out first: the harness tracks the
    /// last segment the engine sent), a SYN to port 80 from 40000, the third ACK, an accept, then `rest`.
    fn established_then(rest: &[u8]) -> Vec<u8> {
        // 21: op 5 (garbage) and, as the first byte, tcp_syncookies = 21 % 3 = 0.
        let mut v = vec![21u8, 0];
        // op, flags, dseq, dack, window, misc, payload_len/8
        v.extend([0u8, TcpFlags::SYN, 0x80, 0x00, 0x80, 0x00, 0xff, 0xff, 8 | 4, 0]);
        v.extend([0, TcpFlags::ACK, 0x80, 0x00, 0x80, 0x01, 0xff, 0xff, 8, 0]);
        v.push(7);
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn a_bad_ack_with_a_newer_timestamp_is_caught_if_it_poisons_paws() {
        // The review's M1 proof in harness form: SEQ = RCV.NXT, ACK 0x7fff past what we sent, TSval far ahead.
        assert!(run(&established_then(&[0, TcpFlags::ACK, 0x80, 0x00, 0xff, 0xff, 0xff, 0xff, 8 | 0x10, 0])) > 0);
    }

    #[test]
    fn data_with_an_old_ack_is_caught_if_accepted() {
        // The review's M2 proof: data at RCV.NXT whose ACK lies 0x7000 below SND.UNA on a fresh connection.
        assert!(
            run(&established_then(&[
                0,
                TcpFlags::ACK,
                0x80,
                0x00,
                0x10,
                0x00,
                0xff,
                0xff,
                0,
                1,
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8
            ])) > 0
        );
    }

    #[test]
    fn one_byte_at_the_window_edge_is_caught_if_it_pins_the_window() {
        // H1: a segment far out of order (SEQ = RCV.NXT + 0x7ff8) with 8 bytes.
        assert!(
            run(&established_then(&[
                0,
                TcpFlags::ACK,
                0xff,
                0xf8,
                0x80,
                0x01,
                0xff,
                0xff,
                0,
                1,
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8
            ])) > 0
        );
    }
}
