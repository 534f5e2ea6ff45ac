//! Hand-off of packets between workers: a packet that arrives on a worker that does not own its connection is copied
//! into a lock-free single-producer single-consumer ring towards the owner, one ring per ordered worker pair.
//!
//! Why a copy and not the UMEM address: every AF_XDP socket has its own UMEM (one per queue, see `xdp::ring`), so a
//! frame address means nothing to another worker, and lending the frame would make its recycling cross cores (a
//! shared UMEM would put every frame pool operation on shared cache lines). Measured here: 27-60 ns per 64-byte
//! hand-off, 50-110 ns per 1500-byte one (`tests::cost_between_two_cores`), which only matters when the steering is
//! unknown (with the NIC's RSS known, hand-offs are zero).
//!
//! The rings are `xdptcp_sync::slots` (loom-checked): fixed-size byte slots, each allocated the first time the ring
//! reaches it; the producer copies the packet straight into the slot and the consumer hands the engine a slice of
//! the slot, so a hand-off is one copy and, in the steady state, no allocation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use xdptcp_sync::bell::Doorbell;
use xdptcp_sync::slots::{self, Consumer, Probe, Producer};

/// Slots per ring (a power of two). 512 × a 1500-byte MTU = 750 KiB per ordered pair at most; slot buffers are
/// allocated only as far as the ring ever fills.
pub const DEFAULT_SLOTS: usize = 512;

pub use xdptcp_sync::slots::PushError;

/// A worker's ends of the mesh: a producer towards every other worker and a consumer from every other worker.
pub struct Handoff {
    me: usize,
    /// Wakes this worker sleeping in `poll()` when a peer hands it a packet: rung only while the worker announced
    /// it sleeps, so the busy path costs one shared load per batch and no system call.
    bell: Arc<Doorbell>,
    /// Peers' doorbells, by worker.
    peers: Vec<Arc<Doorbell>>,
    /// Peers sent to since the last `flush`.
    sent_to: Vec<bool>,
    /// Workers that have not finished yet (shared by the mesh), and whether this one has.
    running: Arc<AtomicUsize>,
    finished: bool,
    /// Indexed by the destination worker; None for `me`.
    out: Vec<Option<Producer>>,
    /// Indexed by the source worker; None for `me`.
    inbox: Vec<Option<Consumer>>,
}

/// What the server keeps to count packets left in the rings after the workers stopped.
#[derive(Clone)]
pub struct MeshProbe {
    /// `rings[from][to]`.
    rings: Vec<Vec<Option<Probe>>>,
}

impl MeshProbe {
    /// Packets still queued towards worker `to` (undelivered: counted as HandoffDrop by whoever reports).
    pub fn queued_for(&self, to: usize) -> u64 {
        self.rings.iter().filter_map(|row| row.get(to).and_then(|r| r.as_ref())).map(|r| r.len() as u64).sum()
    }
}

/// Builds the full mesh for `workers` workers: `workers × (workers - 1)` rings of `slots` slots of `slot_size`
/// bytes. Returns one [`Handoff`] per worker, in worker order, and a probe for leftovers.
pub fn mesh(workers: usize, per_ring: usize, slot_size: usize) -> std::io::Result<(Vec<Handoff>, MeshProbe)> {
    let bells: Vec<Arc<Doorbell>> = (0..workers).map(|_| Doorbell::new().map(Arc::new)).collect::<Result<_, _>>()?;
    let running = Arc::new(AtomicUsize::new(workers));
    fn square<T>(n: usize) -> Vec<Vec<Option<T>>> {
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect()
    }
    // out[from][to], inbox[to][from], probes[from][to].
    let (mut out, mut inbox, mut probes) = (square(workers), square(workers), square(workers));
    for from in 0..workers {
        for to in (0..workers).filter(|&to| to != from) {
            let (p, c, probe) = slots::channel(per_ring, slot_size);
            out[from][to] = Some(p);
            inbox[to][from] = Some(c);
            probes[from][to] = Some(probe);
        }
    }
    let handoffs = out
        .into_iter()
        .zip(inbox)
        .enumerate()
        .map(|(me, (out, inbox))| Handoff {
            me,
            bell: bells[me].clone(),
            peers: bells.clone(),
            sent_to: vec![false; workers],
            running: running.clone(),
            finished: false,
            out,
            inbox,
        })
        .collect();
    Ok((handoffs, MeshProbe { rings: probes }))
}

impl Handoff {
    pub fn me(&self) -> usize {
        self.me
    }
    pub fn workers(&self) -> usize {
        self.out.len()
    }

    /// Sends a packet to worker `to` (call [`flush`](Self::flush) after a batch).
    pub fn send(&mut self, to: usize, packet: &[u8]) -> Result<(), PushError> {
        match self.out.get_mut(to).and_then(|p| p.as_mut()) {
            Some(p) => {
                p.push(packet)?;
                self.sent_to[to] = true;
                Ok(())
            }
            // Never to oneself: the caller delivers locally.
            None => Err(PushError::TooLarge),
        }
    }

    /// Publishes the packets sent since the last call and wakes their receivers if they sleep.
    pub fn flush(&mut self) {
        for (to, sent) in self.sent_to.iter_mut().enumerate() {
            if std::mem::take(sent) {
                if let Some(p) = self.out[to].as_mut() {
                    p.publish();
                }
                self.peers[to].ring();
            }
        }
    }

    /// Says this worker is done with its own connections. It must keep its queue served (packets of other
    /// workers' flows still land on it and are handed over) until [`all_finished`](Self::all_finished).
    pub fn finish(&mut self) {
        if !std::mem::replace(&mut self.finished, true) {
            self.running.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Every worker of the mesh has finished.
    pub fn all_finished(&self) -> bool {
        self.running.load(Ordering::Acquire) == 0
    }

    /// Sleeps until the AF_XDP socket `xsk_fd` has input, a peer hands us a packet, `extra_fd` (the app threads'
    /// eventfd) is readable, or `timeout_ms` passes.
    pub fn wait(&mut self, xsk_fd: std::os::fd::RawFd, extra_fd: Option<std::os::fd::RawFd>, timeout_ms: i32) {
        use std::os::fd::AsRawFd;
        self.bell.announce();
        if self.pending() == 0 {
            // An interrupted or failed wait is a short sleep: the worker loop checks its rings either way.
            let _ =
                crate::sys::poll_readable(&[xsk_fd, self.bell.fd().as_raw_fd(), extra_fd.unwrap_or(-1)], timeout_ms);
        }
        self.bell.woke();
    }

    /// Delivers up to `max_each` packets from every other worker to `f`; returns how many.
    pub fn receive(&mut self, max_each: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        self.inbox.iter_mut().flatten().map(|c| c.drain(max_each, f)).sum()
    }

    /// Packets waiting for this worker.
    pub fn pending(&self) -> usize {
        self.inbox.iter().flatten().map(|c| c.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_too_large() {
        let (mut hs, probe) = mesh(2, 4, 64).unwrap();
        let mut b = hs.pop().unwrap();
        let mut a = hs.pop().unwrap();
        for i in 0..4u8 {
            a.send(1, &[i; 10]).unwrap();
        }
        assert_eq!(a.send(1, &[9; 10]), Err(PushError::Full));
        assert_eq!(a.send(1, &[0; 65]), Err(PushError::TooLarge));
        assert_eq!(a.send(0, &[0; 1]), Err(PushError::TooLarge), "never to oneself");
        assert_eq!(probe.queued_for(1), 0, "not published yet");
        assert_eq!(b.receive(16, &mut |_| panic!("unpublished")), 0);
        a.flush();
        assert_eq!(probe.queued_for(1), 4);
        assert_eq!(probe.queued_for(0), 0);
        let mut got = Vec::new();
        assert_eq!(b.receive(3, &mut |p| got.push(p.to_vec())), 3);
        assert_eq!(got, vec![vec![0; 10], vec![1; 10], vec![2; 10]]);
        // Room again; order continues across the wrap.
        a.send(1, &[7; 3]).unwrap();
        a.flush();
        got.clear();
        assert_eq!(b.receive(16, &mut |p| got.push(p.to_vec())), 2);
        assert_eq!(got, vec![vec![3; 10], vec![7; 3]]);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn two_threads_every_packet_in_order() {
        let (mut hs, _) = mesh(2, 64, 32).unwrap();
        let mut b = hs.pop().unwrap();
        let mut a = hs.pop().unwrap();
        const N: u32 = 200_000;
        let producer = std::thread::spawn(move || {
            let mut i = 0u32;
            while i < N {
                let len = 4 + (i % 28) as usize;
                let mut p = [0u8; 32];
                p[..4].copy_from_slice(&i.to_le_bytes());
                p[4..len].fill(i as u8);
                if a.send(1, &p[..len]).is_ok() {
                    i += 1;
                    if i % 16 == 0 {
                        a.flush();
                    }
                } else {
                    a.flush();
                    std::hint::spin_loop();
                }
            }
            a.flush();
        });
        let mut next = 0u32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while next < N && std::time::Instant::now() < deadline {
            b.receive(32, &mut |p| {
                let i = u32::from_le_bytes(p[..4].try_into().unwrap());
                assert_eq!(i, next, "out of order or lost");
                assert_eq!(p.len(), 4 + (i % 28) as usize);
                assert!(p[4..].iter().all(|&x| x == i as u8), "torn slot");
                next += 1;
            });
        }
        producer.join().unwrap();
        assert_eq!(next, N);
    }

    #[test]
    fn a_sleeping_worker_is_woken_by_a_hand_off() {
        let (mut hs, _) = mesh(2, 8, 32).unwrap();
        let mut b = hs.pop().unwrap();
        let mut a = hs.pop().unwrap();
        let sleeper = std::thread::spawn(move || {
            let t = std::time::Instant::now();
            // Bounded: a lost wake-up shows as the full 5 s timeout.
            while b.pending() == 0 && t.elapsed() < std::time::Duration::from_secs(5) {
                b.wait(-1, None, 5000);
            }
            t.elapsed()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        a.send(1, b"x").unwrap();
        a.flush();
        let slept = sleeper.join().unwrap();
        assert!(slept < std::time::Duration::from_secs(4), "not woken: {slept:?}");
    }

    /// The cost of one hand-off between cores (README, "Scaling across cores"):
    /// `cargo test --release --lib stack::handoff::tests::cost_between_two_cores -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement: run by hand"]
    fn cost_between_two_cores() {
        for size in [64usize, 1500] {
            let (mut hs, _) = mesh(2, DEFAULT_SLOTS, 1500).unwrap();
            let mut b = hs.pop().unwrap();
            let mut a = hs.pop().unwrap();
            const N: u64 = 2_000_000;
            let t = std::time::Instant::now();
            let producer = std::thread::spawn(move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
                let packet = vec![7u8; size];
                let mut i = 0;
                while i < N {
                    if a.send(1, &packet).is_ok() {
                        i += 1;
                        // A worker publishes once per receive pass (up to 256 packets); 32 is conservative.
                        if i % 32 == 0 {
                            a.flush();
                        }
                    } else {
                        a.flush();
                        std::hint::spin_loop();
                    }
                }
                a.flush();
            });
            core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
            let (mut got, mut bytes) = (0u64, 0u64);
            while got < N {
                got += b.receive(64, &mut |p| bytes += p.len() as u64) as u64;
            }
            producer.join().unwrap();
            assert_eq!(bytes, N * size as u64);
            let ns = t.elapsed().as_nanos() as f64 / N as f64;
            println!("{size} B: {ns:.1} ns per hand-off ({:.1} M/s)", 1e3 / ns);
        }
    }

    #[test]
    fn all_finished_only_after_every_worker() {
        let (mut hs, _) = mesh(3, 2, 8).unwrap();
        hs[0].finish();
        hs[0].finish();
        hs[1].finish();
        assert!(!hs[0].all_finished());
        hs[2].finish();
        assert!(hs.iter().all(|h| h.all_finished()));
    }
}
