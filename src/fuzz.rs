//! Bodies of the fuzz targets in `fuzz/` that reach past the wire layer: one function per target, taking the raw
//! fuzzer input, asserting the target's invariants. The same functions run in `cargo test` (`tests/fuzz_smoke.rs`:
//! each over its seeds plus a few thousand seeded random inputs), so every target is exercised by `make test` on
//! stable Rust and a cargo-fuzz run checks exactly what CI checks.
//!
//! Owns no production logic: it only drives public APIs (and the in-memory rings of `xdp::ring::fake`).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::app::http::{parse_request, Session};
use crate::control::{CaptureFilter, Direction, LinkType, Request, SsFilter};
use crate::stack::rss::RssSteering;
use crate::stack::steer::Owners;
use crate::tcp::{Config, Engine};
use crate::time::Instant;
use crate::worker::neigh::{Due, NeighConfig, NeighborCache, Resolve};
use crate::worker::{Datapath, NetConfig};
use crate::xdp::fake::FakeRings;

/// A little reader over the fuzzer's bytes: every read succeeds (zeros past the end), so any input is a program.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The neighbour cache under any sequence of resolves, ARP learns, statics and polls: every packet handed in comes
/// back exactly once (sent, dropped, released or failed), the table, unresolved entries, waiting packets and the
/// deadline heap stay within their bounds (pinned and static entries on top), and `poll` leaves nothing due.
pub fn neighbour_cache(data: &[u8]) {
    let cfg = NeighConfig {
        max_entries: 8,
        max_incomplete: 2,
        max_queued: 6,
        max_queued_per_entry: 3,
        ..NeighConfig::default()
    };
    let gw = Ipv4Addr::new(198, 18, 0, 1);
    let mut c: NeighborCache<u32> = NeighborCache::new(cfg.clone());
    c.pin(gw);
    let mut b = Bytes(data);
    let mut now = Instant::ZERO;
    let mut next_id = 0u32;
    let mut out: HashSet<u32> = HashSet::new();
    let returned = |id: u32, out: &mut HashSet<u32>| assert!(out.remove(&id), "packet {id} returned twice");
    let mut released = Vec::new();
    let mut due = Due::default();
    while !b.is_empty() {
        let op = b.u8();
        let ip = Ipv4Addr::new(198, 18, 0, 1 + (b.u8() % 16));
        match op % 5 {
            0 | 1 => {
                next_id += 1;
                out.insert(next_id);
                match c.resolve(now, ip, next_id) {
                    Resolve::Send(_, id) | Resolve::Dropped(id) | Resolve::Refused(id) => returned(id, &mut out),
                    Resolve::Queued { .. } => {}
                }
            }
            2 => {
                c.learn(now, ip, [2, 0, 0, 0, 0, op], op & 0x80 != 0, &mut released);
                for id in released.drain(..) {
                    returned(id, &mut out);
                }
            }
            3 => {
                now += std::time::Duration::from_millis(u64::from(b.u16()) * 10);
                due.clear();
                c.poll(now, &mut due);
                for &id in &due.failed {
                    returned(id, &mut out);
                }
                assert!(c.next_deadline().is_none_or(|t| t > now), "poll left due work");
            }
            _ => {
                if op & 0x40 != 0 {
                    c.add_static(ip, [2, 0, 0, 0, 1, op], &mut released);
                    for id in released.drain(..) {
                        returned(id, &mut out);
                    }
                }
            }
        }

        assert_eq!(c.queued(), out.len(), "waiting packets = packets not yet returned");
        assert!(c.queued() <= cfg.max_queued + cfg.max_queued_per_entry, "{} queued", c.queued());
        // Pinned and static entries may come on top of the table's bound.
        assert!(c.len() <= cfg.max_entries + 17, "{} entries", c.len());
        assert!(c.incomplete() <= cfg.max_incomplete + 1, "{} incomplete", c.incomplete());
        assert!(c.timers_len() <= 4 * c.len() + 65, "{} timers for {} entries", c.timers_len(), c.len());
    }
}

/// HTTP/1.1 request parsing is independent of segmentation: the answers to the input delivered in the chunks the
/// fuzzer chose (the first byte of each chunk is its length) equal the answers to the same bytes in one piece, and
/// the resumed header scan agrees with a scan from the start.
pub fn http_parser(data: &[u8]) {
    fn run(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut s = Session::default();
        let mut all = Vec::new();
        for chunk in chunks {
            s.input.extend_from_slice(chunk);
            loop {
                let n = s.answer(false);
                all.append(&mut s.out);
                if n == 0 || s.close_after {
                    break;
                }
            }
            if s.close_after {
                break;
            }
        }
        (all, s.close_after)
    }
    let mut b = Bytes(data);
    let mut chunks = Vec::new();
    while !b.is_empty() {
        let n = usize::from(b.u8() % 64) + 1;
        chunks.push(b.take(n));
    }
    let whole: Vec<u8> = chunks.concat();
    assert_eq!(run(&chunks), run(&[&whole]), "answers depend on segmentation");
    for cut in [0, whole.len() / 2, whole.len()] {
        let head = &whole[..cut];
        if matches!(parse_request(head), crate::app::http::Parse::Incomplete) {
            assert_eq!(
                crate::app::http::parse_request_from(&whole, cut),
                parse_request(&whole),
                "resumed scan from {cut}"
            );
        }
    }
}

/// The control plane's text parsers (a privileged client's input): the JSON request line, the ss filter and the
/// capture filter. No panic, and whatever parses can be evaluated.
pub fn control_parsers(data: &[u8]) {
    let _ = serde_json::from_slice::<Request>(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = SsFilter::parse(&text) {
        let a = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
        let z = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 40000);
        let _ = f.matches(a, z);
    }
    if let Ok(f) = CaptureFilter::parse(&text) {
        let mut frame = [0u8; 54];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[23] = 6;
        for link in [LinkType::Ethernet, LinkType::RawIpv4] {
            let _ = f.matches(&frame, link, Direction::Rx);
            let _ = f.matches(data, link, Direction::Tx);
        }
    }
}

/// Steering: the software model is symmetric and in range for any tuple and worker count, a received packet's
/// owner is its tuple's owner, and a source port picked for a queue hashes to that queue. NIC tables from the
/// input are accepted or refused, never a panic.
pub fn steering(data: &[u8]) {
    let mut b = Bytes(data);
    let workers = usize::from(b.u8() % 8) + 1;
    let o = Owners::hash(workers);
    let table: Vec<u32> = b.take(16).iter().map(|&q| u32::from(q % 4)).collect();
    let _ = Owners::nic(&[0x6d; 40], &table, &[0, 1, 2]);
    while !b.is_empty() {
        let (src, dst) = (Ipv4Addr::from(u32::from(b.u16()) << 8), Ipv4Addr::from(u32::from(b.u16())));
        let (sp, dp) = (b.u16(), b.u16());
        let w = o.owner(src, dst, sp, dp);
        assert!(w < workers);
        assert_eq!(w, o.owner(dst, src, dp, sp), "not symmetric");
        let mut ip = [0u8; 24];
        ip[0] = 0x45;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        ip[20..22].copy_from_slice(&sp.to_be_bytes());
        ip[22..24].copy_from_slice(&dp.to_be_bytes());
        assert_eq!(o.owner_of_packet(&ip), Some(w));
        let _ = o.owner_of_packet(b.take(24));
        let (rss, lane): (RssSteering, u16) = o.engine_steering(w);
        if let Some(port) = rss.pick_source_port(dst, src, sp, lane, (1024, 1100), u32::from(dp), &mut |_| false) {
            assert_eq!(o.owner(src, dst, sp, port), w, "picked port lands elsewhere");
        }
    }
}

/// The datapath's receive path with an engine on top: frames (Ethernet, VLAN tags, ARP, ICMP, IPv4/TCP) from the
/// input, interleaved with time steps, go through `Datapath::receive` into the engine, whose output goes back
/// through the datapath's ARP resolution. Checked: no panic, the neighbour cache's bounds, and no frame leaks:
/// once everything is sent and every unresolved next hop has failed, only the fill ring holds frames.
pub fn datapath_receive(data: &[u8]) {
    const OUR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const FILL: usize = 32;
    let net = NetConfig {
        addr: OUR,
        prefix_len: 24,
        gateway: Some(Ipv4Addr::new(198, 18, 0, 254)),
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
    };
    let mut b = Bytes(data);
    let neigh = NeighConfig { max_entries: 16, max_incomplete: 4, max_queued: 16, ..NeighConfig::default() };
    let mut dp = Datapath::new(FakeRings::new(256, 2048, FILL), net, FILL, neigh.clone()).expect("datapath");
    if b.u8() & 1 == 1 {
        dp.set_vlan(Some(7)).expect("vlan");
    }
    let mut engine = Engine::new(Config::default(), Instant::ZERO, 1);
    engine.listen(SocketAddrV4::new(OUR, 80), 16).expect("listen");
    let mut now = Instant::from_secs(1);
    dp.refill();
    let step = |dp: &mut Datapath<FakeRings>, engine: &mut Engine, now: Instant| {
        dp.set_now(now);
        dp.receive(now, &mut |t, pkt| engine.handle_ipv4(t, pkt));
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        if dp.next_deadline().is_some_and(|t| t <= now) {
            dp.poll_neighbours(now);
        }
        engine.poll_transmit(now, dp);
        dp.flush();
        dp.rings_mut().transmit();
        dp.reclaim();
        dp.refill();
    };
    while !b.is_empty() {
        let op = b.u8();
        match op % 4 {
            0 => now += std::time::Duration::from_millis(u64::from(b.u8()) * 20),
            1 => {
                // A raw frame.
                let n = usize::from(b.u16() % 1600);
                let f = b.take(n).to_vec();
                dp.rings_mut().deliver(&f);
            }
            _ => {
                // A frame to us with a well-formed start, so the fuzzer reaches ARP, ICMP and TCP quickly: our
                // MAC or broadcast, an optional tag, then the EtherType and body from the input.
                let mut f = vec![2, 0, 0, 0, 0, 1];
                if op & 0x10 != 0 {
                    f = vec![0xff; 6];
                }
                f.extend_from_slice(&[2, 0, 0, 0, 0, 9]);
                if op & 0x20 != 0 {
                    f.extend_from_slice(&[0x81, 0x00, 0x00, b.u8() % 9]);
                }
                let kind = b.u8();
                let body_len = usize::from(b.u8());
                let body = b.take(body_len);
                if kind & 1 == 0 {
                    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1 + (kind >> 7)]);
                    f.extend_from_slice(&[2, 0, 0, 0, 0, 9, 198, 18, 0, kind >> 1]);
                    f.extend_from_slice(&[0; 6]);
                    f.extend_from_slice(&OUR.octets());
                    f.extend_from_slice(body);
                } else {
                    let total = (20 + body.len()) as u16;
                    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
                    f.extend_from_slice(&total.to_be_bytes());
                    f.extend_from_slice(&[0, 0, 0x40, 0, 64, if kind & 2 == 0 { 6 } else { 1 }, 0, 0]);
                    f.extend_from_slice(&[198, 18, (kind >> 2) & 1, kind]);
                    f.extend_from_slice(&OUR.octets());
                    f.extend_from_slice(body);
                }
                dp.rings_mut().deliver(&f);
            }
        }
        step(&mut dp, &mut engine, now);
    }
    // Drain: every unresolved next hop fails after its probes, every frame sent comes back.
    for _ in 0..8 {
        now += std::time::Duration::from_secs(1);
        dp.set_now(now);
        dp.poll_neighbours(now);
        dp.flush();
        dp.rings_mut().transmit();
        dp.reclaim();
    }
    // A frame the engine was lent but did not fill is the sink's until the next buffer(): give it back.
    crate::tcp::PacketSink::commit(&mut dp, 0);
    let in_use = dp.frames_in_use();
    assert!(
        in_use <= FILL,
        "{in_use} frames held beyond the fill ring ({FILL}): a leak (tx outstanding {})",
        dp.tx_outstanding()
    );
}
