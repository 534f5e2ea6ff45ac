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
