//! The TCP engine against a hostile peer. The fuzzer plays the peer of one engine that listens on port 80 and has
//! opened a connection of its own; segments are built from the input with sequence and acknowledgment numbers
//! relative to what the engine last sent (so they land in and around its windows), interleaved with time jumps,
//! application calls and raw garbage packets. Never panics; buffer memory stays bounded.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use xdptcp::tcp::{Config, Engine, Event, PacketSink};
use xdptcp::time::Instant;
use xdptcp::wire::{IpProtocol, Ipv4Repr, SeqNum, TcpFlags, TcpOptions, TcpRepr};

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

fuzz_target!(|data: &[u8]| {
    let mut cfg = Config::default();
    cfg.tcp_rmem = [4096, 16384, 65536];
    cfg.tcp_max_syn_backlog = 8;
    cfg.tcp_syncookies = (data.first().copied().unwrap_or(0) % 3) as u8;
    cfg.tcp_fastopen = 3;
    let mut now = Instant::from_secs(1);
    let mut e = Engine::new(cfg, now, 7);
    let listener = e.listen(SocketAddrV4::new(US, 80), 4).unwrap();
    let active = e.connect(now, SocketAddrV4::new(US, 5000), SocketAddrV4::new(PEER, 6000)).ok();
    let mut conns: Vec<_> = active.into_iter().collect();
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
                    options.timestamps = Some((dseq as u32 * 1000, their_seq));
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
                    e.handle_ipv4(now, &p);
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
                            let _ = e.recv(c, &mut buf);
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
                }
            }
        }
        while let Some(ev) = e.poll_event() {
            if let Event::Readable(c) = ev {
                let _ = e.recv(c, &mut buf);
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
    }
});
