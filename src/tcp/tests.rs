//! Engine tests that read like packet traces: two engines joined by a direct, lossless link (with an optional
//! filter that drops or rewrites segments), stepped by a virtual clock. The seeded-fault scenarios live in the
//! simulator (`src/sim`, `tests/sim_*.rs`).
#![allow(clippy::field_reassign_with_default)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::*;
use crate::sim::scenario::forge;
use crate::time::Instant;
use crate::wire::{Ipv4Repr, TcpFlags, TcpRepr};

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

#[derive(Default)]
struct VecSink {
    packets: Vec<Vec<u8>>,
    scratch: Vec<u8>,
}

impl PacketSink for VecSink {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        self.scratch.clear();
        self.scratch.resize(1500, 0);
        Some(&mut self.scratch)
    }
    fn commit(&mut self, len: usize) {
        self.packets.push(self.scratch[..len].to_vec());
    }
}

/// A summary of one segment for assertions.
#[derive(Clone, Debug)]
struct Seg {
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    len: usize,
}

fn parse(p: &[u8]) -> Seg {
    let (ip, payload) = Ipv4Repr::parse(p, true).expect("valid ipv4");
    let t = TcpRepr::parse(payload, ip.src, ip.dst, true).expect("valid tcp");
    Seg { flags: t.flags, seq: t.seq.0, ack: t.ack.0, len: t.payload.len() }
}

type Filter = Box<dyn FnMut(bool, &Seg) -> bool>;

struct Pair {
    a: Engine,
    b: Engine,
    now: Instant,
    /// (from_a, segment) for everything that crossed the link.
    log: Vec<(bool, Seg)>,
    /// When each logged segment was sent.
    times: Vec<Instant>,
    /// Returns false to drop a segment.
    filter: Option<Filter>,
}

impl Pair {
    fn new(cfg_a: Config, cfg_b: Config) -> Pair {
        let now = Instant::from_secs(1);
        Pair {
            a: Engine::new(cfg_a, now, 1),
            b: Engine::new(cfg_b, now, 2),
            now,
            log: Vec::new(),
            times: Vec::new(),
            filter: None,
        }
    }

    /// Exchanges packets until both sides are quiet (no timers are run).
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut sa = VecSink::default();
            let mut sb = VecSink::default();
            self.a.poll_transmit(self.now, &mut sa);
            self.b.poll_transmit(self.now, &mut sb);
            if sa.packets.is_empty() && sb.packets.is_empty() {
                return;
            }
            for p in sa.packets {
                let s = parse(&p);
                let pass = self.filter.as_mut().is_none_or(|f| f(true, &s));
                self.log.push((true, s));
                self.times.push(self.now);
                if pass {
                    self.b.handle_ipv4(self.now, &p);
                }
            }
            for p in sb.packets {
                let s = parse(&p);
                let pass = self.filter.as_mut().is_none_or(|f| f(false, &s));
                self.log.push((false, s));
                self.times.push(self.now);
                if pass {
                    self.a.handle_ipv4(self.now, &p);
                }
            }
        }
        panic!("link never went quiet");
    }

    /// Advances virtual time by `d`, running timers and pumping as it goes.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        self.a.handle_timeout(end);
        self.b.handle_timeout(end);
        self.pump();
    }

    fn events_a(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.a.poll_event()).collect()
    }
    fn events_b(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.b.poll_event()).collect()
    }

    /// A connected pair: A actively opens to B's listener on port 80.
    fn connected(cfg_a: Config, cfg_b: Config) -> (Pair, ConnId, ConnId) {
        let mut p = Pair::new(cfg_a, cfg_b);
        let l = p.b.listen(SocketAddrV4::new(B, 80), 128).unwrap();
        let ca = p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
        p.pump();
        assert!(p.events_a().contains(&Event::Connected(ca)));
        assert!(p.events_b().contains(&Event::Incoming(l)));
        let cb = p.b.accept(l).unwrap();
        (p, ca, cb)
    }
}

fn read_all(e: &mut Engine, c: ConnId) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = e.recv(c, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn three_way_handshake_negotiates_options() {
    let (p, ca, cb) = Pair::connected(Config::default(), Config::default());
    let syn = &p.log[0].1;
    assert_eq!(syn.flags.0, TcpFlags::SYN);
    let synack = &p.log[1].1;
    assert_eq!(synack.flags.0, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.ack, syn.seq.wrapping_add(1));
    assert_eq!(p.log.len(), 3, "SYN, SYN-ACK, ACK: {:?}", p.log);
    let ia = p.a.info(ca).unwrap();
    let ib = p.b.info(cb).unwrap();
    assert_eq!(ia.state, State::Established);
    assert_eq!(ib.state, State::Established);
    assert!(ia.timestamps && ia.sack && ib.timestamps && ib.sack);
    assert_eq!(ia.snd_wscale, ib.rcv_wscale);
    assert_eq!(ia.mss, 1460 - 12);
    assert_eq!(p.a.counters().get(Counter::ActiveOpens), 1);
    assert_eq!(p.b.counters().get(Counter::PassiveOpens), 1);
}

#[test]
fn data_both_ways_then_orderly_close_through_time_wait() {
    let (mut p, ca, cb) = Pair::connected(Config::default(), Config::default());
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    while got.len() < msg.len() {
        if sent < msg.len() {
            sent += p.a.send(p.now, ca, &msg[sent..]).unwrap_or(0);
        }
        p.advance(Duration::from_millis(1));
        got.extend(read_all(&mut p.b, cb));
    }
    assert_eq!(got, msg);
    p.b.send(p.now, cb, b"bye").unwrap();
    p.advance(Duration::from_millis(50));
    assert_eq!(read_all(&mut p.a, ca), b"bye");

    p.a.close(p.now, ca).unwrap();
    p.advance(Duration::from_millis(1));
    assert_eq!(p.b.info(cb).unwrap().state, State::CloseWait);
    let mut buf = [0u8; 8];
    assert_eq!(p.b.recv(cb, &mut buf), Ok(0), "end of stream after FIN");
    p.b.close(p.now, cb).unwrap();
    p.advance(Duration::from_millis(1));
    assert_eq!(p.a.connection_count(), (0, 1), "A holds a TIME_WAIT record");
    assert_eq!(p.b.connection_count(), (0, 0));
    // TIME_WAIT lasts 2*MSL.
    p.advance(Duration::from_secs(59));
    assert_eq!(p.a.connection_count().1, 1);
    p.advance(Duration::from_millis(1001));
    assert_eq!(p.a.connection_count().1, 0);
}

#[test]
fn connect_to_closed_port_is_refused() {
    let mut p = Pair::new(Config::default(), Config::default());
    let c = p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 81)).unwrap();
    p.pump();
    assert_eq!(p.log[1].1.flags.0, TcpFlags::RST | TcpFlags::ACK);
    assert!(p.events_a().contains(&Event::Closed(c, CloseReason::Refused)));
    assert_eq!(p.a.counters().get(Counter::AttemptFails), 1);
    assert_eq!(p.b.counters().get(Counter::OutRsts), 1);
}

#[test]
fn syn_retries_back_off_then_time_out() {
    let mut cfg = Config::default();
    cfg.tcp_syn_retries = 3;
    let mut p = Pair::new(cfg, Config::default());
    p.filter = Some(Box::new(|from_a, _| !from_a));
    let c = p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    for _ in 0..40 {
        if matches!(p.a.info(c), Some(i) if i.state == State::Closed) {
            break;
        }
        p.advance(Duration::from_millis(500));
    }
    let times: Vec<u128> = p.times.iter().map(|t| t.as_micros() as u128 / 1000).collect();
    // SYN, then retries after 1, 2, 4 s (RFC 6298 backoff from the 1 s initial RTO), then give up after 8 s more.
    let gaps: Vec<u128> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, vec![1000, 2000, 4000]);
    assert!(p.events_a().contains(&Event::Closed(c, CloseReason::TimedOut)));
}

#[test]
fn blind_in_window_rst_draws_challenge_ack() {
    let (mut p, ca, cb) = Pair::connected(Config::default(), Config::default());
    let ack_seg = p.log[2].1.clone();
    // Forge a RST from A to B, in window but not at RCV.NXT.
    let mut rst = TcpRepr {
        src_port: p.a.info(ca).unwrap().local.port(),
        dst_port: 80,
        seq: crate::wire::SeqNum(ack_seg.seq.wrapping_add(1000)),
        ack: crate::wire::SeqNum(0),
        flags: TcpFlags(TcpFlags::RST),
        window: 0,
        urgent: 0,
        options: Default::default(),
        payload: &[],
    };
    let packet = forge(&rst, A, B);
    p.b.handle_ipv4(p.now, &packet);
    assert_eq!(p.b.counters().get(Counter::TCPChallengeACK), 1);
    assert_eq!(p.b.info(cb).unwrap().state, State::Established);
    // The exact sequence number resets it.
    rst.seq = crate::wire::SeqNum(ack_seg.seq);
    p.b.handle_ipv4(p.now, &forge(&rst, A, B));
    assert!(p.events_b().contains(&Event::Closed(cb, CloseReason::Reset)));
}

#[test]
fn rto_doubles_and_data_survives_a_blackout() {
    // Tail loss probes off: this checks the RTO alone (tlp_probe_comes_before_the_rto checks the probe).
    let mut cfg = Config::default();
    cfg.tcp_early_retrans = 0;
    let (mut p, ca, cb) = Pair::connected(cfg, Config::default());
    p.a.send(p.now, ca, b"hello").unwrap();
    let blackout_until = p.now + Duration::from_secs(3);
    let clock = std::rc::Rc::new(std::cell::Cell::new(p.now));
    let c2 = clock.clone();
    p.filter = Some(Box::new(move |_, _| c2.get() >= blackout_until));
    for _ in 0..800 {
        p.advance(Duration::from_millis(10));
        clock.set(p.now);
    }
    let retrans_times: Vec<u128> = (0..p.log.len())
        .filter(|&i| p.log[i].0 && p.log[i].1.len == 5)
        .map(|i| p.times[i].as_micros() as u128 / 1000)
        .collect();
    assert_eq!(read_all(&mut p.b, cb), b"hello");
    // First send at 0; RTO starts at 1 s before any RTT sample beyond the handshake's, then doubles.
    // RTO from the handshake's sample is the 200 ms minimum, then it doubles: 200, 400, 800, 1600 ms.
    let gaps: Vec<u128> = retrans_times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(&gaps[..4], &[200, 400, 800, 1600], "{retrans_times:?}");
    assert!(p.a.counters().get(Counter::TCPTimeouts) >= 2);
}

#[test]
fn congestion_control_is_chosen_per_connection() {
    let (mut p, ca, cb) = Pair::connected(Config::default(), Config::default());
    assert_eq!(p.a.info(ca).unwrap().congestion, "cubic");
    p.a.set_congestion_control(ca, "reno").unwrap();
    assert_eq!(p.a.info(ca).unwrap().congestion, "reno");
    assert_eq!(p.a.info(ca).unwrap().ca_state, "slow_start");
    assert_eq!(p.b.info(cb).unwrap().congestion, "cubic", "the other connection keeps the default");
    assert_eq!(p.a.set_congestion_control(ca, "bbr"), Err(Error::InvalidArgument));
    assert_eq!(p.a.info(ca).unwrap().congestion, "reno");
    p.a.send(p.now, ca, &[1u8; 5000]).unwrap();
    p.advance(Duration::from_millis(10));
    assert_eq!(read_all(&mut p.b, cb).len(), 5000);
}

#[test]
fn tlp_probe_comes_before_the_rto() {
    // A 1 s RTO floor (a WAN-like RTO): the probe timeout, 2·SRTT + 200 ms for a one-segment flight, comes first.
    let mut cfg = Config::default();
    cfg.tcp_rto_min_us = 1_000_000;
    let (mut p, ca, cb) = Pair::connected(cfg, Config::default());
    let data = vec![7u8; 3000];
    // Drop the first transmission of the last segment: a tail loss nothing but a timer can reveal.
    let mut dropped = false;
    p.filter = Some(Box::new(move |from_a, seg| {
        if from_a && seg.len > 0 && !dropped && seg.flags.psh() {
            dropped = true;
            return false;
        }
        true
    }));
    p.a.send(p.now, ca, &data).unwrap();
    p.advance(Duration::from_millis(500));
    let got = read_all(&mut p.b, cb);
    assert!(got == data, "{} of {} bytes; {:?}", got.len(), data.len(), p.a.counters());
    // RFC 8985 §7: the probe repaired it, long before the RTO.
    assert_eq!(p.a.counters().get(Counter::TCPLossProbes), 1);
    assert_eq!(p.a.counters().get(Counter::TCPTimeouts), 0);
    assert_eq!(p.a.counters().get(Counter::RetransSegs), 1);
}

#[test]
fn sack_recovery_repairs_several_holes_without_a_timeout() {
    let (mut p, ca, cb) = Pair::connected(Config::default(), Config::default());
    // Within the default 16 KiB send buffer, so one send() queues it all.
    let data: Vec<u8> = (0..16_000u32).map(|i| i as u8).collect();
    // Lose the 3rd, 5th and 7th data segments once each.
    let mut n = 0;
    p.filter = Some(Box::new(move |from_a, seg| {
        if from_a && seg.len > 0 {
            n += 1;
            return !(n == 3 || n == 5 || n == 7);
        }
        true
    }));
    p.a.send(p.now, ca, &data).unwrap();
    p.advance(Duration::from_millis(150));
    let got = read_all(&mut p.b, cb);
    assert!(got == data, "{} of {} bytes; {:?}", got.len(), data.len(), p.a.counters());
    let c = p.a.counters();
    assert_eq!(c.get(Counter::TCPSackRecovery), 1);
    assert_eq!(c.get(Counter::TCPTimeouts), 0);
    assert_eq!(c.get(Counter::RetransSegs), 3, "only the lost segments are resent");
}

#[test]
fn zero_window_is_probed_and_reopens() {
    let mut cfg_b = Config::default();
    cfg_b.tcp_rmem = [4096, 8192, 8192];
    let (mut p, ca, cb) = Pair::connected(Config::default(), cfg_b);
    let data = vec![7u8; 20_000];
    let mut sent = p.a.send(p.now, ca, &data).unwrap();
    p.advance(Duration::from_secs(2));
    assert_eq!(p.b.recv_queue_len(cb), 8192, "receiver buffer full: {:?} {:?}", p.log, p.a.info(ca));
    p.advance(Duration::from_secs(5));
    assert!(p.a.counters().get(Counter::TCPWinProbe) >= 1, "{:?}", p.a.counters());
    let mut got = read_all(&mut p.b, cb);
    for _ in 0..100 {
        if sent < data.len() {
            sent += p.a.send(p.now, ca, &data[sent..]).unwrap_or(0);
        }
        p.advance(Duration::from_millis(50));
        got.extend(read_all(&mut p.b, cb));
    }
    assert_eq!(got.len(), data.len());
}

#[test]
fn simultaneous_open_and_close() {
    let mut p = Pair::new(Config::default(), Config::default());
    p.a.record_transitions(true);
    let ca = p.a.connect(p.now, SocketAddrV4::new(A, 5000), SocketAddrV4::new(B, 6000)).unwrap();
    let cb = p.b.connect(p.now, SocketAddrV4::new(B, 6000), SocketAddrV4::new(A, 5000)).unwrap();
    p.pump();
    assert_eq!(p.a.info(ca).unwrap().state, State::Established);
    assert_eq!(p.b.info(cb).unwrap().state, State::Established);
    p.a.shutdown_write(p.now, ca).unwrap();
    p.b.shutdown_write(p.now, cb).unwrap();
    p.pump();
    let states: Vec<(State, State)> = std::iter::from_fn(|| p.a.poll_transition()).map(|t| (t.from, t.to)).collect();
    assert!(states.contains(&(State::SynSent, State::SynReceived)), "{states:?}");
    assert!(states.contains(&(State::FinWait1, State::Closing)), "{states:?}");
    assert!(states.contains(&(State::Closing, State::TimeWait)), "{states:?}");
}

#[test]
fn accept_queue_overflow_drops_syns() {
    let mut p = Pair::new(Config::default(), Config::default());
    let l = p.b.listen(SocketAddrV4::new(B, 80), 2).unwrap();
    for _ in 0..5 {
        p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    }
    p.pump();
    // As Linux: backlog 2 holds 3 (full means more than the backlog).
    assert_eq!(p.b.counters().get(Counter::PassiveOpens), 3);
    assert_eq!(p.b.listener_info(l).unwrap().accept_queue, 3);
    assert!(p.b.counters().get(Counter::ListenOverflows) >= 2);
}

#[test]
fn idle_connection_holds_no_buffer_memory() {
    let (mut p, ca, cb) = Pair::connected(Config::default(), Config::default());
    assert_eq!(p.a.buffer_bytes_in_use() + p.b.buffer_bytes_in_use(), 0);
    p.a.send(p.now, ca, b"ping").unwrap();
    p.advance(Duration::from_millis(100));
    assert_eq!(read_all(&mut p.b, cb), b"ping");
    assert_eq!(p.a.buffer_bytes_in_use() + p.b.buffer_bytes_in_use(), 0, "drained buffers give chunks back");
}

#[test]
fn lossy_link_delivers_every_byte_both_ways() {
    for seed in 1..=20u64 {
        let (mut p, ca, cb) = Pair::connected(Config::default(), Config::default());
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        p.filter = Some(Box::new(move |_, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % 100 >= 10
        }));
        let a_msg: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let b_msg: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let (mut a_sent, mut b_sent) = (0, 0);
        let (mut at_b, mut at_a) = (Vec::new(), Vec::new());
        for _ in 0..200_000 {
            if a_sent < a_msg.len() {
                a_sent += p.a.send(p.now, ca, &a_msg[a_sent..]).unwrap_or(0);
            }
            if b_sent < b_msg.len() {
                b_sent += p.b.send(p.now, cb, &b_msg[b_sent..]).unwrap_or(0);
            }
            p.advance(Duration::from_millis(5));
            at_b.extend(read_all(&mut p.b, cb));
            at_a.extend(read_all(&mut p.a, ca));
            if at_b.len() == a_msg.len() && at_a.len() == b_msg.len() {
                break;
            }
        }
        assert!(
            at_b == a_msg && at_a == b_msg,
            "seed {seed}: {} / {} {:?} {:?} {:?} {:?}",
            at_b.len(),
            at_a.len(),
            p.a.info(ca),
            p.b.info(cb),
            p.a.counters(),
            p.b.counters()
        );
        assert!(p.a.counters().get(Counter::RetransSegs) > 0);
    }
}

#[test]
fn connection_record_size() {
    // Printed for the notes; the bound keeps it from growing unnoticed.
    let size = std::mem::size_of::<super::conn::Conn>();
    eprintln!("Conn: {size} bytes");
    // CUBIC's epoch and HyStart++ samples and the RFC 6675/6937/8985 recovery record live inline (no box).
    assert!(size <= 704, "{size}");
}

fn listening_pair(cfg_a: Config, cfg_b: Config, backlog: u32) -> (Pair, ListenerId) {
    let mut p = Pair::new(cfg_a, cfg_b);
    let l = p.b.listen(SocketAddrV4::new(B, 80), backlog).unwrap();
    (p, l)
}

#[test]
fn syn_cookies_always_keep_options_and_no_state() {
    let mut cfg = Config::default();
    cfg.tcp_syncookies = 2;
    let (mut p, l) = listening_pair(Config::default(), cfg, 16);
    let ca = p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    // Hold the third ACK back to see that the server keeps nothing for the SYN.
    p.filter = Some(Box::new(|from_a, s| !(from_a && s.flags.0 == TcpFlags::ACK)));
    p.pump();
    assert_eq!(p.b.syn_queue_len(), 0);
    assert_eq!(p.b.connection_count(), (0, 0));
    p.filter = None;
    p.a.send(p.now, ca, b"hi").unwrap();
    p.pump();
    assert_eq!(p.b.counters().get(Counter::SyncookiesSent), 1);
    assert_eq!(p.b.counters().get(Counter::SyncookiesRecv), 1);
    let cb = p.b.accept(l).unwrap();
    assert_eq!(read_all(&mut p.b, cb), b"hi");
    let info = p.b.info(cb).unwrap();
    assert!(info.timestamps && info.sack, "{info:?}");
    assert_eq!(info.snd_wscale, p.a.info(ca).unwrap().rcv_wscale, "window scale survived in the timestamp");
}

#[test]
fn forged_cookie_acks_are_dropped_and_counted() {
    let mut cfg = Config::default();
    cfg.tcp_syncookies = 2;
    let (mut p, _l) = listening_pair(Config::default(), cfg, 16);
    // One real cookie exchange so the listener is in cookie mode.
    p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    p.pump();
    let forged = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: crate::wire::SeqNum(1000),
        ack: crate::wire::SeqNum(0x1234_5678),
        flags: TcpFlags(TcpFlags::ACK),
        window: 100,
        urgent: 0,
        options: Default::default(),
        payload: &[],
    };
    for i in 0..100u32 {
        let mut f = forged.clone();
        f.ack = crate::wire::SeqNum(0x1234_5678u32.wrapping_add(i * 7919));
        p.b.handle_ipv4(p.now, &forge(&f, A, B));
    }
    assert_eq!(p.b.counters().get(Counter::SyncookiesFailed), 100);
    assert_eq!(p.b.connection_count().0, 1, "only the real connection");
    let mut sink = VecSink::default();
    p.b.poll_transmit(p.now, &mut sink);
    assert!(sink.packets.is_empty(), "no RST reflected for forged cookies");
}

#[test]
fn full_syn_queue_uses_cookies_or_drops() {
    for syncookies in [0u8, 1] {
        let mut cfg = Config::default();
        cfg.tcp_syncookies = syncookies;
        cfg.tcp_max_syn_backlog = 4;
        let (mut p, l) = listening_pair(Config::default(), cfg, 64);
        // Third ACKs are lost, so half-open records pile up.
        p.filter = Some(Box::new(|from_a, s| !(from_a && s.flags.0 == TcpFlags::ACK)));
        let conns: Vec<ConnId> =
            (0..10).map(|_| p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap()).collect();
        p.pump();
        assert_eq!(p.b.syn_queue_len(), 4);
        let c = p.b.counters();
        if syncookies == 0 {
            assert_eq!(c.get(Counter::TCPReqQFullDrop), 6);
            assert_eq!(c.get(Counter::SyncookiesSent), 0);
        } else {
            assert_eq!(c.get(Counter::TCPReqQFullDoCookies), 6);
            assert_eq!(c.get(Counter::SyncookiesSent), 6);
            // Let the ACKs through: every connection completes (records and cookies alike).
            p.filter = None;
            for &ca in &conns {
                p.a.send(p.now, ca, b"x").unwrap();
            }
            p.pump();
            let mut accepted = 0;
            while p.b.accept(l).is_ok() {
                accepted += 1;
            }
            assert_eq!(accepted, 10);
            assert_eq!(p.b.counters().get(Counter::SyncookiesRecv), 6);
        }
    }
}

#[test]
fn syn_ack_retransmits_then_half_open_is_freed() {
    let mut cfg = Config::default();
    cfg.tcp_synack_retries = 3;
    let (mut p, _l) = listening_pair(Config::default(), cfg, 16);
    // The client's SYN gets through once; everything else from A is lost.
    let mut first = true;
    p.filter = Some(Box::new(move |from_a, _| {
        let pass = !from_a || first;
        if from_a {
            first = false;
        }
        pass
    }));
    p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    p.advance(Duration::from_secs(20));
    let synack_times: Vec<u64> = (0..p.log.len())
        .filter(|&i| !p.log[i].0 && p.log[i].1.flags.0 == TcpFlags::SYN | TcpFlags::ACK)
        .map(|i| p.times[i].as_millis())
        .collect();
    let gaps: Vec<u64> = synack_times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, vec![1000, 2000, 4000], "{synack_times:?}");
    assert_eq!(p.b.syn_queue_len(), 0, "freed after tcp_synack_retries");
    assert_eq!(p.b.listener_info(_l).unwrap().syn_queue, 0);
}

#[test]
fn abort_on_overflow_answers_rst() {
    let mut cfg = Config::default();
    cfg.tcp_abort_on_overflow = true;
    let (mut p, _l) = listening_pair(Config::default(), cfg, 1);
    // All SYNs are answered before any handshake completes; backlog 1 holds two (as Linux), so the third third
    // ACK finds the queue full.
    p.filter = Some(Box::new(|from_a, s| !(from_a && s.flags.0 == TcpFlags::ACK)));
    let c1 = p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    let c2 = p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    let c3 = p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    p.pump();
    p.filter = None;
    p.a.send(p.now, c1, b"1").unwrap();
    p.pump();
    p.a.send(p.now, c2, b"2").unwrap();
    p.pump();
    assert_eq!(p.b.counters().get(Counter::ListenOverflows), 0);
    p.a.send(p.now, c3, b"3").unwrap();
    p.pump();
    assert_eq!(p.b.counters().get(Counter::ListenOverflows), 1);
    let events = p.events_a();
    assert!(events.contains(&Event::Closed(c3, CloseReason::Reset)), "{events:?}");
    assert!(!events.contains(&Event::Closed(c2, CloseReason::Reset)), "{events:?}");
}

#[test]
fn fast_open_cookie_then_data_in_syn() {
    let mut cfg_b = Config::default();
    cfg_b.tcp_fastopen = 3;
    let mut cfg_a = Config::default();
    cfg_a.tcp_fastopen = 1;
    let (mut p, l) = listening_pair(cfg_a, cfg_b, 16);
    // First connection: asks for a cookie; data follows the handshake.
    let (c1, n) = p.a.connect_with_data(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80), b"first").unwrap();
    assert_eq!(n, 5);
    p.pump();
    assert_eq!(p.b.counters().get(Counter::TCPFastOpenCookieReqd), 1);
    let s1 = p.b.accept(l).unwrap();
    assert_eq!(read_all(&mut p.b, s1), b"first");
    p.a.close(p.now, c1).unwrap();
    p.pump();
    // Second: the data rides in the SYN and the server reads it before the handshake completes.
    p.filter = Some(Box::new(|from_a, s| !(from_a && s.flags.0 == TcpFlags::ACK && s.len == 0)));
    let (_c2, _) = p.a.connect_with_data(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80), b"GET /").unwrap();
    p.pump();
    let syn = p.log.iter().rev().find(|(a, s)| *a && s.flags.syn()).unwrap();
    assert_eq!(syn.1.len, 5, "data in the SYN");
    let s2 = p.b.accept(l).unwrap();
    assert_eq!(p.b.info(s2).unwrap().state, State::SynReceived);
    assert_eq!(read_all(&mut p.b, s2), b"GET /");
    assert_eq!(p.b.counters().get(Counter::TCPFastOpenPassive), 1);
    assert_eq!(p.a.counters().get(Counter::TCPFastOpenActive), 1);
}

#[test]
fn rss_steering_picks_ports_whose_replies_return_to_this_queue() {
    use crate::stack::rss::{RssSteering, MICROSOFT_KEY};
    let mut e = Engine::new(Config::default(), Instant::from_secs(1), 3);
    let steering = RssSteering::new(MICROSOFT_KEY, 4, 128);
    e.set_rss_steering(steering.clone(), 2);
    for _ in 0..100 {
        let c = e.connect(Instant::from_secs(1), SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
        let (local, _) = e.local_addr_of(c).unwrap();
        assert_eq!(steering.queue_of(B, A, 80, local.port()), 2);
    }
}

// ----- Hardening (issue 12, review 2026-12): each test replays one finding's proof of concept. -----

/// B's side of one connection, for forging segments from A: (tuple as B keys it, SND.UNA, SND.MAX, RCV.NXT,
/// advertised window, TS.Recent).
struct Peer {
    tuple: super::conn::FourTuple,
    una: u32,
    max: u32,
    rcv_nxt: u32,
    wnd: u32,
    ts_recent: Option<u32>,
}

fn peer_of(e: &Engine, c: ConnId) -> Peer {
    let conn = e.conn_checked(c).expect("live connection");
    Peer {
        tuple: conn.tuple,
        una: conn.snd_una.0,
        max: conn.snd_max.0,
        rcv_nxt: conn.rcv_nxt.0,
        wnd: conn.rcv_adv - conn.rcv_nxt,
        ts_recent: conn.ts_enabled.then_some(conn.ts_recent),
    }
}

/// A segment from the remote end of `peer`'s connection, with a current timestamp (TS.Recent itself, so PAWS
/// passes) unless `tsval` overrides it.
fn forge_to(peer: &Peer, seq: u32, ack: u32, flags: u8, payload: &[u8], tsval: Option<u32>) -> Vec<u8> {
    let mut options = crate::wire::TcpOptions::default();
    if let Some(ts) = peer.ts_recent {
        options.timestamps = Some((tsval.unwrap_or(ts), 0));
    }
    let t = TcpRepr {
        src_port: peer.tuple.remote_port,
        dst_port: peer.tuple.local_port,
        seq: crate::wire::SeqNum(seq),
        ack: crate::wire::SeqNum(ack),
        flags: TcpFlags(flags),
        window: 1024,
        urgent: 0,
        options,
        payload,
    };
    forge(&t, peer.tuple.remote_ip, peer.tuple.local_ip)
}

/// `n` connections from A to B's port 80, accepted on B; returns B's handles.
fn many_connections(p: &mut Pair, n: usize) -> Vec<ConnId> {
    let l = p.b.listen(SocketAddrV4::new(B, 80), 4096).unwrap();
    for _ in 0..n {
        p.a.connect(p.now, SocketAddrV4::new(A, 0), SocketAddrV4::new(B, 80)).unwrap();
    }
    p.pump();
    let conns: Vec<ConnId> = std::iter::from_fn(|| p.b.accept(l).ok()).collect();
    assert_eq!(conns.len(), n);
    conns
}

#[test]
fn one_byte_at_the_window_edge_of_thousands_of_connections_holds_one_chunk_each() {
    // Review H1 / PoC F1: before, each such byte made B allocate its whole 128 KiB window.
    const N: usize = 2000;
    let mut p = Pair::new(Config::default(), Config::default());
    let conns = many_connections(&mut p, N);
    let before = p.b.buffer_bytes_in_use();
    for &cb in &conns {
        let peer = peer_of(&p.b, cb);
        assert!(peer.wnd >= 65535, "{}", peer.wnd);
        p.b.handle_ipv4(p.now, &forge_to(&peer, peer.rcv_nxt + peer.wnd - 1, peer.max, TcpFlags::ACK, b"x", None));
    }
    let held = p.b.buffer_bytes_in_use() - before;
    eprintln!("{N} connections x 1 byte at the window edge: {held} bytes held");
    assert!(held <= N * 4096, "{held} bytes held for {N} one-byte segments");
    assert_eq!(p.b.counters().get(Counter::TCPOFOQueue), N as u64);
    assert_eq!(p.b.counters().get(Counter::TCPMemoryPressures), 0);
}

#[test]
fn tcp_mem_caps_out_of_order_memory_and_in_order_data_prunes_it() {
    const N: usize = 1000;
    let mut cfg = Config::default();
    cfg.tcp_mem = [64, 128, 256];
    let mut p = Pair::new(Config::default(), cfg);
    let conns = many_connections(&mut p, N);
    for &cb in &conns {
        let peer = peer_of(&p.b, cb);
        p.b.handle_ipv4(p.now, &forge_to(&peer, peer.rcv_nxt + peer.wnd - 1, peer.max, TcpFlags::ACK, b"x", None));
    }
    let c = p.b.counters();
    assert!(p.b.buffer_bytes_in_use() <= 256 * 4096, "{}", p.b.buffer_bytes_in_use());
    assert_eq!(c.get(Counter::TCPMemoryPressures), 1);
    assert_eq!(c.get(Counter::TCPOFOQueue), 256);
    assert_eq!(c.get(Counter::TCPOFODrop), (N - 256) as u64);
    // Past `high`, in-order data on a connection with out-of-order data prunes that queue to make room.
    let cb = conns[0];
    let peer = peer_of(&p.b, cb);
    p.b.handle_ipv4(p.now, &forge_to(&peer, peer.rcv_nxt, peer.max, TcpFlags::ACK, b"in order", None));
    assert_eq!(p.b.recv_queue_len(cb), 8);
    let c = p.b.counters();
    assert_eq!(c.get(Counter::PruneCalled), 1 + (N - 256) as u64);
    assert_eq!(c.get(Counter::OfoPruned), 1);
    // In-order data on a connection with nothing to prune is dropped (the peer sends it again).
    let cb = conns[N - 1];
    let peer = peer_of(&p.b, cb);
    p.b.handle_ipv4(p.now, &forge_to(&peer, peer.rcv_nxt, peer.max, TcpFlags::ACK, b"in order", None));
    assert_eq!(p.b.recv_queue_len(cb), 0);
    assert_eq!(p.b.counters().get(Counter::RcvPruned), 1);
    assert!(p.b.buffer_bytes_in_use() <= 256 * 4096);
}

/// PoC F7: an off-path prober sends one spoofed RST at the victim's four-tuple (in window when `hit`), then
/// `tcp_challenge_ack_limit` in-window RSTs on its own connection, and counts the challenge ACKs it gets back.
fn challenge_acks_seen_by_prober(hit: bool) -> usize {
    let mut p = Pair::new(Config::default(), Config::default());
    let conns = many_connections(&mut p, 2);
    let (victim, prober) = (peer_of(&p.b, conns[0]), peer_of(&p.b, conns[1]));
    let probe_seq = if hit { victim.rcv_nxt + 100 } else { victim.rcv_nxt.wrapping_add(1 << 31) };
    p.b.handle_ipv4(p.now, &forge_to(&victim, probe_seq, 0, TcpFlags::RST, b"", None));
    let mut sink = VecSink::default();
    p.b.poll_transmit(p.now, &mut sink);
    let mut seen = 0;
    for i in 0..p.b.config().tcp_challenge_ack_limit {
        let rst = forge_to(&prober, prober.rcv_nxt + 1 + i, 0, TcpFlags::RST, b"", None);
        p.b.handle_ipv4(p.now, &rst);
        let mut sink = VecSink::default();
        p.b.poll_transmit(p.now, &mut sink);
        seen += sink.packets.iter().map(|x| parse(x)).filter(|s| s.flags.ack() && !s.flags.rst()).count();
    }
    seen
}

#[test]
fn challenge_ack_count_does_not_reveal_a_probe_hit() {
    // Review H2 (CVE-2016-5696): before, a hit left 999 challenge ACKs for the prober and a miss 1000.
    let (hit, miss) = (challenge_acks_seen_by_prober(true), challenge_acks_seen_by_prober(false));
    assert_eq!(hit, miss);
    assert_eq!(hit, 1, "one challenge ACK per tcp_invalid_ratelimit per connection");
}

#[test]
fn challenge_ack_budget_is_randomized_per_second() {
    let mut e = Engine::new(Config::default(), Instant::from_secs(1), 7);
    let mut budgets = std::collections::HashSet::new();
    for s in 1..20 {
        let now = Instant::from_secs(s);
        let n = (0..2000).take_while(|_| e.challenge_ack_allowed(now)).count();
        assert!((500..1500).contains(&n), "{n}");
        budgets.insert(n);
    }
    assert!(budgets.len() > 10, "{budgets:?}");
}

#[test]
fn out_of_window_acks_are_rate_limited_per_connection() {
    // Review L15: 100 out-of-window bare ACKs draw one duplicate ACK per tcp_invalid_ratelimit, not 100.
    let (mut p, _ca, cb) = Pair::connected(Config::default(), Config::default());
    let peer = peer_of(&p.b, cb);
    let mut acks = 0;
    for i in 0..100u32 {
        let seg = forge_to(&peer, peer.rcv_nxt.wrapping_add(1 << 30) + i, peer.max, TcpFlags::ACK, b"", None);
        p.b.handle_ipv4(p.now, &seg);
        let mut sink = VecSink::default();
        p.b.poll_transmit(p.now, &mut sink);
        acks += sink.packets.len();
    }
    assert_eq!(acks, 1);
    assert_eq!(p.b.counters().get(Counter::TCPACKSkippedSeq), 99);
    // After the interval, one more.
    let later = p.now + Duration::from_millis(500);
    let seg = forge_to(&peer, peer.rcv_nxt.wrapping_add(1 << 30), peer.max, TcpFlags::ACK, b"", None);
    p.b.handle_ipv4(later, &seg);
    let mut sink = VecSink::default();
    p.b.poll_transmit(later, &mut sink);
    assert_eq!(sink.packets.len(), 1);
}

#[test]
fn a_forged_segment_with_a_bad_ack_does_not_poison_paws() {
    // Review M1 / PoC F2: right SEQ, ACK 2^30 ahead, TSval far ahead.
    let (mut p, ca, cb) = Pair::connected(Config::default(), Config::default());
    let peer = peer_of(&p.b, cb);
    let ts = peer.ts_recent.expect("timestamps negotiated");
    let forged =
        forge_to(&peer, peer.rcv_nxt, peer.max.wrapping_add(1 << 30), TcpFlags::ACK, b"", Some(ts + (1 << 30)));
    p.b.handle_ipv4(p.now, &forged);
    assert_eq!(peer_of(&p.b, cb).ts_recent, Some(ts), "TS.Recent moved on an unacceptable ACK");
    p.now += Duration::from_millis(10);
    p.a.send(p.now, ca, b"still alive").unwrap();
    p.pump();
    assert_eq!(read_all(&mut p.b, cb), b"still alive");
    assert_eq!(p.b.counters().get(Counter::PAWSEstab), 0);
}

#[test]
fn a_fresh_connection_accepts_no_ack_below_snd_una() {
    // Review M2 / PoC F3: data with an ACK below SND.UNA on a connection that has sent nothing is injected data.
    let (mut p, _ca, cb) = Pair::connected(Config::default(), Config::default());
    let peer = peer_of(&p.b, cb);
    let forged = forge_to(&peer, peer.rcv_nxt, peer.una.wrapping_sub(1000), TcpFlags::ACK, b"injected", None);
    p.b.handle_ipv4(p.now, &forged);
    assert_eq!(p.b.recv_queue_len(cb), 0);
    assert_eq!(p.b.counters().get(Counter::TCPChallengeACK), 1);
}

#[test]
fn old_acks_within_what_was_acknowledged_are_still_accepted() {
    let (mut p, ca, cb) = Pair::connected(Config::default(), Config::default());
    p.b.send(p.now, cb, &[1u8; 3000]).unwrap();
    p.pump();
    assert_eq!(read_all(&mut p.a, ca).len(), 3000);
    let peer = peer_of(&p.b, cb);
    // A reordered segment whose ACK is 1000 below SND.UNA (3000 bytes acknowledged) carries good data.
    let seg = forge_to(&peer, peer.rcv_nxt, peer.una - 1000, TcpFlags::ACK, b"late", None);
    p.b.handle_ipv4(p.now, &seg);
    assert_eq!(p.b.recv_queue_len(cb), 4);
}

/// B closes first and ends in TIME_WAIT; returns the pair, B's record tuple and its RCV.NXT.
fn b_in_time_wait(cfg_b: Config) -> (Pair, super::conn::FourTuple, Peer) {
    let (mut p, ca, cb) = Pair::connected(Config::default(), cfg_b);
    let peer = peer_of(&p.b, cb);
    p.b.close(p.now, cb).unwrap();
    p.pump();
    p.a.close(p.now, ca).unwrap();
    p.pump();
    assert_eq!(p.b.connection_count().1, 1);
    let rec = p.b.timewait.get(&peer.tuple).unwrap().clone();
    let peer =
        Peer { rcv_nxt: rec.rcv_nxt.0, una: rec.snd_nxt.0, max: rec.snd_nxt.0, ts_recent: Some(rec.ts_recent), ..peer };
    (p, rec.tuple, peer)
}

#[test]
fn time_wait_is_killed_only_by_a_reset_at_rcv_nxt_with_rfc1337_off() {
    // Review L1 / PoC F6.
    let mut cfg = Config::default();
    cfg.tcp_rfc1337 = false;
    let (mut p, tuple, peer) = b_in_time_wait(cfg);
    p.b.handle_ipv4(p.now, &forge_to(&peer, peer.rcv_nxt.wrapping_add(1 << 30), 0, TcpFlags::RST, b"", None));
    assert!(p.b.timewait.get(&tuple).is_some(), "an out-of-window RST killed TIME_WAIT");
    // A bare ACK away from RCV.NXT with a newer TSval does not move TS.Recent.
    let ts = peer.ts_recent.unwrap();
    let ack = forge_to(&peer, peer.rcv_nxt + 5000, peer.max, TcpFlags::ACK, b"", Some(ts + 100_000));
    p.b.handle_ipv4(p.now, &ack);
    assert_eq!(p.b.timewait.get(&tuple).unwrap().ts_recent, ts);
    p.b.handle_ipv4(p.now, &forge_to(&peer, peer.rcv_nxt, 0, TcpFlags::RST, b"", None));
    assert!(p.b.timewait.get(&tuple).is_none());
    assert_eq!(p.b.counters().get(Counter::TWKilled), 1);
}

#[test]
fn data_beyond_an_out_of_order_fin_forgets_the_fin() {
    // Review L10: FIN at +10, data at +20..+30, then +0..+10: the stream must not end at +10.
    let (mut p, _ca, cb) = Pair::connected(Config::default(), Config::default());
    let peer = peer_of(&p.b, cb);
    let r = peer.rcv_nxt;
    p.b.handle_ipv4(p.now, &forge_to(&peer, r + 10, peer.max, TcpFlags::ACK | TcpFlags::FIN, b"", None));
    p.b.handle_ipv4(p.now, &forge_to(&peer, r + 20, peer.max, TcpFlags::ACK, b"0123456789", None));
    p.b.handle_ipv4(p.now, &forge_to(&peer, r, peer.max, TcpFlags::ACK, b"abcdefghij", None));
    assert_eq!(p.b.info(cb).unwrap().state, State::Established);
    assert_eq!(read_all(&mut p.b, cb), b"abcdefghij");
}

#[test]
fn fast_open_key_rotates_and_the_previous_key_still_validates() {
    // Review L4 / RFC 7413 §4.1.2.
    let start = Instant::from_secs(1);
    let mut e = Engine::new(Config::default(), start, 9);
    let old = e.tfo_cookie_for(A);
    e.rotate_tfo_key(start + Duration::from_secs(60));
    assert_eq!(e.tfo_cookie_for(A).as_slice(), old.as_slice(), "no rotation before the period");
    e.rotate_tfo_key(start + super::listener::TFO_KEY_PERIOD);
    assert_ne!(e.tfo_cookie_for(A).as_slice(), old.as_slice());
    assert!(e.tfo_cookie_valid(A, &old), "the previous key still validates");
    e.rotate_tfo_key(start + super::listener::TFO_KEY_PERIOD * 2);
    assert!(!e.tfo_cookie_valid(A, &old), "two periods on, the old cookie is refused");
}

#[test]
fn every_bit_of_the_secret_keys_the_isn() {
    // Review L4: the second half of the 256-bit secret matters too (not a function of the first 64 bits).
    let now = Instant::from_secs(1);
    let mut s = [7u8; 32];
    let e1 = Engine::with_secret(Config::default(), now, s);
    s[31] ^= 1;
    let e2 = Engine::with_secret(Config::default(), now, s);
    let (l, r) = (SocketAddrV4::new(A, 1000), SocketAddrV4::new(B, 80));
    assert_ne!(e1.isn.isn(l, r, now), e2.isn.isn(l, r, now));
    assert_ne!(e1.tfo_cookie_for(A).as_slice(), e2.tfo_cookie_for(A).as_slice());
}

#[test]
fn a_tiny_peer_mss_is_floored_and_sack_never_shrinks_the_payload_below_it() {
    // Review L11: MSS 40 is raised to tcp_min_snd_mss (48), and with timestamps the 36-byte payload keeps priority
    // over SACK blocks (before: 24-byte payloads with three blocks were possible).
    let mut p = Pair::new(Config::default(), Config::default());
    let l = p.b.listen(SocketAddrV4::new(B, 80), 16).unwrap();
    let mut options = crate::wire::TcpOptions::default();
    options.mss = Some(40);
    options.sack_permitted = true;
    options.timestamps = Some((100, 0));
    let mut syn = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: crate::wire::SeqNum(1000),
        ack: crate::wire::SeqNum(0),
        flags: TcpFlags(TcpFlags::SYN),
        window: 65535,
        urgent: 0,
        options,
        payload: &[],
    };
    p.b.handle_ipv4(p.now, &forge(&syn, A, B));
    let mut sink = VecSink::default();
    p.b.poll_transmit(p.now, &mut sink);
    let synack = parse(&sink.packets[0]);
    assert!(synack.flags.syn() && synack.flags.ack());
    syn.flags = TcpFlags(TcpFlags::ACK);
    syn.seq = crate::wire::SeqNum(1001);
    syn.ack = crate::wire::SeqNum(synack.seq.wrapping_add(1));
    syn.options.mss = None;
    syn.options.sack_permitted = false;
    p.b.handle_ipv4(p.now, &forge(&syn, A, B));
    let cb = p.b.accept(l).unwrap();
    // An out-of-order segment makes B owe SACK blocks on everything it sends.
    syn.seq = crate::wire::SeqNum(1101);
    syn.payload = b"0123456789";
    p.b.handle_ipv4(p.now, &forge(&syn, A, B));
    let mut sink = VecSink::default();
    p.b.poll_transmit(p.now, &mut sink);
    p.b.send(p.now, cb, &[7u8; 1000]).unwrap();
    let mut sink = VecSink::default();
    p.b.poll_transmit(p.now, &mut sink);
    let data: Vec<usize> = sink.packets.iter().map(|x| parse(x).len).filter(|&n| n > 0).collect();
    assert!(!data.is_empty());
    assert!(data.iter().all(|&n| n == 36), "{data:?}");
}
