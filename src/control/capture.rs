//! Packet capture to pcapng, without ever stalling a worker.
//!
//! Each worker taps into its own pair of lock-free queues (crossbeam `ArrayQueue`): `free` holds preallocated
//! fixed-size records (snap length bytes each), `filled` holds captured ones. The worker pops a free record, copies
//! at most `snaplen` bytes of the frame in, and pushes it to `filled`; the writer thread pops filled records,
//! writes them as pcapng Enhanced Packet Blocks and returns them to `free`. Nothing is allocated per packet and no
//! lock is taken; when the writer falls behind the worker finds `free` empty and counts a drop (reported in the
//! summary and in the pcapng Interface Statistics Blocks as `isb_ifdrop`).
//!
//! The file has one Interface Description Block per worker (`xdptcp-w<N>`, Ethernet or raw-IPv4 link type,
//! nanosecond timestamps) and marks each packet inbound or outbound (`epb_flags`), so Wireshark's
//! `frame.interface_name` and `pkt_comment`-free direction filters work as on a kernel capture.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam::queue::ArrayQueue;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::interface_statistics::{InterfaceStatisticsBlock, InterfaceStatisticsOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

use super::filter::{CaptureFilter, LinkType};
use super::protocol::CaptureSummary;
use crate::time::Instant;

/// Which way a frame went through the worker.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Received from the wire (RX ring).
    Rx,
    /// Sent to the wire (TX ring).
    Tx,
}

/// Bytes kept of each frame unless asked otherwise: every header of a TCP/IPv4 frame with options, as in
/// tcpdump's old default of 262 minus change.
pub const DEFAULT_SNAPLEN: u32 = 256;
/// The largest snap length (a maximal IPv4 packet).
pub const MAX_SNAPLEN: u32 = 65535;
/// Records per worker ring...
const RING_RECORDS: usize = 4096;
/// ...but never more than this many bytes of records per worker.
const RING_BYTES: usize = 8 << 20;
/// Records the writer takes from one ring before looking at the next (fairness across workers).
const WRITER_BATCH: usize = 256;

/// One captured frame: fixed capacity (`snaplen`), reused forever.
struct Record {
    ts_ns: u64,
    orig_len: u32,
    direction: Direction,
    data: Vec<u8>,
}

/// One worker's queues and tallies.
struct TapRing {
    worker: u32,
    link: LinkType,
    free: ArrayQueue<Box<Record>>,
    filled: ArrayQueue<Box<Record>>,
    matched: AtomicU64,
    dropped: AtomicU64,
}

/// One interface of a capture: the worker index (named `xdptcp-w<worker>` in the file) and its framing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CaptureInterface {
    pub worker: u32,
    pub link: LinkType,
}

/// When to stop writing.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureLimits {
    /// Stop after this many frames are written.
    pub count: Option<u64>,
    /// Stop after this long (what is already queued is still written).
    pub duration: Option<Duration>,
    /// Stop once about this many bytes of packet blocks are written (a whole-run `--pcap` must not fill the disk).
    pub max_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture output: {0}")]
    Io(#[from] io::Error),
    #[error("pcapng: {0}")]
    Pcap(#[from] pcap_file::PcapError),
}

struct Shared {
    filter: CaptureFilter,
    snaplen: usize,
    stopped: AtomicBool,
    rings: Vec<TapRing>,
}

/// A capture session: the rings of every tapped worker and the pcapng writer that drains them.
pub struct Capture {
    shared: Arc<Shared>,
}

/// A worker's handle on a running capture. [`CaptureTap::tap`] is what the worker calls on every frame.
pub struct CaptureTap {
    shared: Arc<Shared>,
    ring: usize,
    /// Wall-clock nanoseconds minus engine nanoseconds, fixed when the worker installed the tap (one clock read,
    /// not one per packet).
    wall_offset_ns: i128,
}

impl Capture {
    /// Sets up rings for `interfaces`; `snaplen` 0 means [`MAX_SNAPLEN`].
    pub fn new(filter: CaptureFilter, snaplen: u32, interfaces: &[CaptureInterface]) -> Capture {
        let snaplen = if snaplen == 0 { MAX_SNAPLEN } else { snaplen.min(MAX_SNAPLEN) } as usize;
        let records = (RING_BYTES / snaplen).clamp(16, RING_RECORDS);
        let rings = interfaces
            .iter()
            .map(|i| {
                let free = ArrayQueue::new(records);
                for _ in 0..records {
                    let rec =
                        Record { ts_ns: 0, orig_len: 0, direction: Direction::Rx, data: Vec::with_capacity(snaplen) };
                    let _ = free.push(Box::new(rec));
                }
                TapRing {
                    worker: i.worker,
                    link: i.link,
                    free,
                    filled: ArrayQueue::new(records),
                    matched: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                }
            })
            .collect();
        Capture { shared: Arc::new(Shared { filter, snaplen, stopped: AtomicBool::new(false), rings }) }
    }

    pub fn snaplen(&self) -> u32 {
        self.shared.snaplen as u32
    }

    /// The tap for interface `index` (position in the `interfaces` given to [`Capture::new`]); `now` is the
    /// worker's current time, used once to map its clock onto wall-clock time for the file's timestamps.
    pub fn tap(&self, index: usize, now: Instant) -> Option<CaptureTap> {
        if index >= self.shared.rings.len() {
            return None;
        }
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i128;
        Some(CaptureTap {
            shared: self.shared.clone(),
            ring: index,
            wall_offset_ns: wall - now.as_micros() as i128 * 1000,
        })
    }

    /// Tells every tap to stop at once (they check a flag); the writer stops too.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Relaxed)
    }

    /// Totals so far.
    pub fn summary(&self, written: u64) -> CaptureSummary {
        let (mut matched, mut dropped) = (0, 0);
        for r in &self.shared.rings {
            matched += r.matched.load(Relaxed);
            dropped += r.dropped.load(Relaxed);
        }
        CaptureSummary { written, matched, dropped }
    }

    /// Writes the pcapng stream to `out` until `limits` are reached, [`Capture::stop`] is called, or `keep_going`
    /// (polled whenever the rings are empty, at least every 10 ms) returns false. Flushes `out` whenever the rings
    /// run dry, so a reader piped behind it sees packets promptly. Returns the summary and `out`.
    pub fn write_pcapng<W: Write>(
        &self,
        out: W,
        limits: CaptureLimits,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<(CaptureSummary, W), CaptureError> {
        let start = std::time::Instant::now();
        let start_ns = wall_ns();
        let mut w = PcapNgWriter::new(out)?;
        for ring in &self.shared.rings {
            w.write_pcapng_block(InterfaceDescriptionBlock {
                linktype: match ring.link {
                    LinkType::Ethernet => DataLink::ETHERNET,
                    LinkType::RawIpv4 => DataLink::IPV4,
                },
                snaplen: self.shared.snaplen as u32,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(format!("xdptcp-w{}", ring.worker))),
                    // pcap-file writes EPB timestamps in nanoseconds: say so (pcapng if_tsresol, 10^-9).
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            })?;
        }
        w.get_mut().flush()?;
        let mut written = 0u64;
        let mut per_ring = vec![0u64; self.shared.rings.len()];
        let mut idle_sleep = Duration::from_micros(200);
        let mut bytes = 0u64;
        let limit_reached = |written: u64, bytes: u64| {
            limits.count.is_some_and(|c| written >= c) || limits.max_bytes.is_some_and(|m| bytes >= m)
        };
        // One record per ring waits here so frames of different workers go out oldest first.
        let rings = &self.shared.rings;
        let mut heads: Vec<Option<Box<Record>>> = rings.iter().map(|_| None).collect();
        'outer: loop {
            for (head, ring) in heads.iter_mut().zip(rings) {
                if head.is_none() {
                    *head = ring.filled.pop();
                }
            }
            let mut wrote = 0;
            while wrote < WRITER_BATCH {
                if limit_reached(written, bytes) {
                    break 'outer;
                }
                let oldest = heads.iter().enumerate().filter_map(|(i, h)| Some((h.as_ref()?.ts_ns, i))).min();
                let Some((_, i)) = oldest else { break };
                let Some(mut rec) = heads[i].take() else { break };
                let flags = match rec.direction {
                    Direction::Rx => 0b01,
                    Direction::Tx => 0b10,
                };
                let res = w.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: i as u32,
                    timestamp: Duration::from_nanos(rec.ts_ns),
                    original_len: rec.orig_len,
                    data: Cow::Borrowed(&rec.data),
                    options: vec![EnhancedPacketOption::Flags(flags)],
                });
                // An EPB with one option: 28 bytes of header, the padded data, 12 of options, 4 of trailer.
                bytes += 44 + rec.data.len().next_multiple_of(4) as u64;
                rec.data.clear();
                // Cannot fail: at most `records` boxes exist and `free` holds that many.
                let _ = rings[i].free.push(rec);
                res?;
                written += 1;
                per_ring[i] += 1;
                wrote += 1;
                heads[i] = rings[i].filled.pop();
            }
            if wrote == 0 {
                if self.is_stopped() || limits.duration.is_some_and(|d| start.elapsed() >= d) || !keep_going() {
                    break;
                }
                w.get_mut().flush()?;
                std::thread::sleep(idle_sleep);
                idle_sleep = (idle_sleep * 2).min(Duration::from_millis(10));
            } else {
                idle_sleep = Duration::from_micros(200);
            }
        }
        for (head, ring) in heads.iter_mut().zip(rings) {
            if let Some(rec) = head.take() {
                let _ = ring.free.push(rec);
            }
        }
        self.stop();
        let end_ns = wall_ns();
        for (i, ring) in self.shared.rings.iter().enumerate() {
            w.write_pcapng_block(InterfaceStatisticsBlock {
                interface_id: i as u32,
                timestamp: end_ns,
                options: vec![
                    InterfaceStatisticsOption::IsbStartTime(start_ns),
                    InterfaceStatisticsOption::IsbEndTime(end_ns),
                    InterfaceStatisticsOption::IsbFilterAccept(ring.matched.load(Relaxed)),
                    InterfaceStatisticsOption::IsbIfDrop(ring.dropped.load(Relaxed)),
                    InterfaceStatisticsOption::IsbUsrDeliv(per_ring[i]),
                ],
            })?;
        }
        let mut out = w.into_inner();
        out.flush()?;
        Ok((self.summary(written), out))
    }
}

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
}

impl CaptureTap {
    /// Captures `frame` if the session is running and the filter matches. Never blocks and never allocates: a full
    /// ring is a counted drop.
    pub fn tap(&self, now: Instant, frame: &[u8], direction: Direction) {
        let shared = &*self.shared;
        if shared.stopped.load(Relaxed) {
            return;
        }
        let ring = &shared.rings[self.ring];
        if !shared.filter.matches(frame, ring.link, direction) {
            return;
        }
        ring.matched.fetch_add(1, Relaxed);
        let Some(mut rec) = ring.free.pop() else {
            ring.dropped.fetch_add(1, Relaxed);
            return;
        };
        let keep = frame.len().min(shared.snaplen);
        rec.data.clear();
        rec.data.extend_from_slice(&frame[..keep]);
        rec.orig_len = frame.len() as u32;
        rec.direction = direction;
        rec.ts_ns = (now.as_micros() as i128 * 1000 + self.wall_offset_ns).max(0) as u64;
        if let Err(rec) = ring.filled.push(rec) {
            // Unreachable while both queues have the same capacity; keep the record rather than leak it.
            let _ = ring.free.push(rec);
            ring.dropped.fetch_add(1, Relaxed);
        }
    }

    /// False once the writer has stopped (the worker then drops the tap).
    pub fn is_running(&self) -> bool {
        !self.shared.stopped.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    fn tcp_packet(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&[198, 18, 0, 1]);
        p[16..20].copy_from_slice(&[198, 18, 0, 2]);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[32] = 0x50;
        p[33] = flags;
        p
    }

    #[test]
    fn filter_snaplen_directions_and_stats_reach_the_file() {
        let filter = CaptureFilter::parse("port 80").unwrap();
        let cap = Capture::new(filter, 32, &[CaptureInterface { worker: 3, link: LinkType::RawIpv4 }]);
        let tap = cap.tap(0, Instant::from_secs(5)).unwrap();
        assert!(cap.tap(1, Instant::ZERO).is_none());
        tap.tap(Instant::from_secs(5), &tcp_packet(40000, 80, 0x02), Direction::Tx);
        tap.tap(Instant::from_secs(6), &tcp_packet(22, 40000, 0x02), Direction::Rx); // filtered out
        tap.tap(Instant::from_secs(6), &tcp_packet(80, 40000, 0x12), Direction::Rx);
        let (summary, bytes) = cap.write_pcapng(Vec::new(), CaptureLimits::default(), &mut || false).unwrap();
        assert_eq!(summary, CaptureSummary { written: 2, matched: 2, dropped: 0 });
        assert!(!tap.is_running());
        tap.tap(Instant::from_secs(7), &tcp_packet(40000, 80, 0x10), Direction::Tx);
        assert_eq!(cap.summary(2).matched, 2, "a stopped tap captures nothing");

        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut packets = Vec::new();
        let mut stats = Vec::new();
        while let Some(block) = reader.next_block() {
            match block.unwrap() {
                Block::InterfaceDescription(idb) => {
                    assert_eq!(idb.linktype, DataLink::IPV4);
                    assert_eq!(idb.snaplen, 32);
                    assert!(idb.options.contains(&InterfaceDescriptionOption::IfName("xdptcp-w3".into())));
                }
                Block::EnhancedPacket(p) => packets.push(p.into_owned()),
                Block::InterfaceStatistics(s) => stats.push(s.into_owned()),
                _ => {}
            }
        }
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].original_len, 40);
        assert_eq!(packets[0].data.len(), 32, "cut at the snap length");
        assert_eq!(packets[0].options, vec![EnhancedPacketOption::Flags(0b10)]);
        assert_eq!(packets[1].options, vec![EnhancedPacketOption::Flags(0b01)]);
        assert_eq!(packets[1].timestamp - packets[0].timestamp, Duration::from_secs(1));
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(wall.saturating_sub(packets[0].timestamp) < Duration::from_secs(60), "wall-clock timestamps");
        assert_eq!(stats.len(), 1);
        assert!(stats[0].options.contains(&InterfaceStatisticsOption::IsbIfDrop(0)));
    }

    #[test]
    fn a_full_ring_drops_and_counts_and_the_count_limit_holds() {
        let cap = Capture::new(
            CaptureFilter::default(),
            MAX_SNAPLEN,
            &[CaptureInterface { worker: 0, link: LinkType::RawIpv4 }],
        );
        let tap = cap.tap(0, Instant::ZERO).unwrap();
        let records = RING_BYTES / MAX_SNAPLEN as usize;
        for i in 0..records + 10 {
            tap.tap(Instant::from_micros(i as u64), &tcp_packet(1, 2, 0x10), Direction::Rx);
        }
        let s = cap.summary(0);
        assert_eq!(s.matched, records as u64 + 10);
        assert_eq!(s.dropped, 10);
        let limits = CaptureLimits { count: Some(5), ..Default::default() };
        let (summary, _) = cap.write_pcapng(io::sink(), limits, &mut || true).unwrap();
        assert_eq!(summary.written, 5);
        // The byte cap (review L12): each block here is 44 + 40 bytes, so 1000 bytes take 12 of them.
        let limits = CaptureLimits { max_bytes: Some(1000), ..Default::default() };
        let (summary, _) = cap.write_pcapng(io::sink(), limits, &mut || true).unwrap();
        assert_eq!(summary.written, 12);
    }

    #[test]
    fn frames_of_several_workers_are_written_oldest_first() {
        let ifaces = [
            CaptureInterface { worker: 0, link: LinkType::RawIpv4 },
            CaptureInterface { worker: 1, link: LinkType::RawIpv4 },
        ];
        let cap = Capture::new(CaptureFilter::default(), 64, &ifaces);
        let (t0, t1) = (cap.tap(0, Instant::ZERO).unwrap(), cap.tap(1, Instant::ZERO).unwrap());
        t1.tap(Instant::from_millis(1), &tcp_packet(1, 2, 0x02), Direction::Tx);
        t1.tap(Instant::from_millis(3), &tcp_packet(1, 2, 0x10), Direction::Tx);
        t0.tap(Instant::from_millis(2), &tcp_packet(2, 1, 0x12), Direction::Tx);
        let (_, bytes) = cap.write_pcapng(Vec::new(), CaptureLimits::default(), &mut || false).unwrap();
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut order = Vec::new();
        while let Some(block) = reader.next_block() {
            if let Block::EnhancedPacket(p) = block.unwrap() {
                order.push((p.interface_id, p.data[33]));
            }
        }
        assert_eq!(order, [(1, 0x02), (0, 0x12), (1, 0x10)]);
    }

    #[test]
    fn duration_limit_ends_an_idle_capture() {
        let cap = Capture::new(CaptureFilter::default(), 0, &[]);
        assert_eq!(cap.snaplen(), MAX_SNAPLEN);
        let limits = CaptureLimits { duration: Some(Duration::from_millis(30)), ..Default::default() };
        let t = std::time::Instant::now();
        let (summary, _) = cap.write_pcapng(io::sink(), limits, &mut || true).unwrap();
        assert_eq!(summary.written, 0);
        assert!(t.elapsed() >= Duration::from_millis(30) && t.elapsed() < Duration::from_secs(5));
    }
}
