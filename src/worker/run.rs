//! The worker thread's run-to-completion loop:
//!
//! completions -> rx batch -> engine -> app callbacks (events) -> timers -> `poll_transmit` into the tx batch ->
//! tx ring -> counters -> idle strategy (spin a little, then `poll()` until the next timer, at most a few ms).
//!
//! Shutdown is orderly: listeners go away, the app closes what it holds (FINs after queued data), and the loop keeps
//! running until every connection is gone or the drain timeout passes.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::datapath::Datapath;
use crate::app::App;
use crate::control::{Direction, WorkerControl};
use crate::stack::handoff::Handoff;
use crate::stack::steer::Owners;
use crate::tcp::{Counter, Counters, Engine, ListenerId, PacketSink};
use crate::time::{Instant, MonotonicClock};
use crate::xdp::{KernelStats, XskRings};

/// Empty loop iterations before the worker sleeps in `poll()`.
const SPIN_ROUNDS: u32 = 64;
/// Longest sleep: bounds how late the stop flag and counter snapshots are noticed.
const MAX_SLEEP: Duration = Duration::from_millis(5);
/// How often the shared counter snapshot is refreshed.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Receive batches per loop iteration.
const RX_BATCHES: usize = 4;
/// How long past its own drain deadline a worker keeps serving its queue for the others.
pub const HANDOFF_GRACE: Duration = Duration::from_secs(1);

/// One queue's worker: datapath, engine and app, owned by one thread.
pub struct Worker<R: XskRings> {
    pub dp: Datapath<R>,
    pub engine: Engine,
    pub app: Box<dyn App>,
    listeners: Vec<ListenerId>,
    /// Listeners whose connections the app is never told about (`serve --hold-accept`): their accept queues fill.
    held: Vec<ListenerId>,
    clock: MonotonicClock,
    /// Refreshed every [`PUBLISH_EVERY`] for the control plane.
    pub published: Arc<Mutex<Counters>>,
    /// The control plane's end in this worker (`xdptcp stat/ss/sysctl/capture`), if a control socket is served.
    pub control: Option<WorkerControl>,
    /// With several workers: who owns which connection, and the rings to the other workers.
    pub handoff: Option<Sharding>,
}

/// This worker's place among several: the ownership function and its ends of the hand-off mesh.
pub struct Sharding {
    pub owners: Arc<Owners>,
    pub rings: Handoff,
}

impl Sharding {
    /// Joins worker `rings.me()` to the set; its engine's active opens will pick source ports it owns.
    pub fn new(owners: Arc<Owners>, rings: Handoff, engine: &mut Engine) -> Sharding {
        let (rss, lane) = owners.engine_steering(rings.me());
        engine.set_rss_steering(rss, lane);
        Sharding { owners, rings }
    }
}

/// Hands every packet the engine writes to the capture tap (raw IPv4) on its way into the datapath's frame.
struct TappedSink<'a, R: XskRings> {
    inner: &'a mut Datapath<R>,
    control: &'a WorkerControl,
    now: Instant,
}

impl<R: XskRings> PacketSink for TappedSink<'_, R> {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        self.inner.buffer()
    }
    fn commit(&mut self, len: usize) {
        // Read back from the lent frame before the datapath's commit queues it for the tx ring.
        if let Some(packet) = self.inner.lent_packet(len) {
            self.control.tap(self.now, packet, Direction::Tx);
        }
        self.inner.commit(len);
    }
}

impl<R: XskRings> Worker<R> {
    pub fn new(dp: Datapath<R>, engine: Engine, app: Box<dyn App>, clock: MonotonicClock) -> Worker<R> {
        Worker {
            dp,
            engine,
            app,
            listeners: Vec::new(),
            held: Vec::new(),
            clock,
            published: Arc::new(Mutex::new(Counters::default())),
            control: None,
            handoff: None,
        }
    }

    /// Opens a listener on our address.
    pub fn listen(&mut self, port: u16, backlog: u32) -> Result<ListenerId, crate::tcp::Error> {
        let l = self.engine.listen(SocketAddrV4::new(self.dp.net().addr, port), backlog)?;
        self.listeners.push(l);
        Ok(l)
    }

    /// Keeps the app from accepting on `listener` (a diagnostics aid: the accept queue fills and overflows as
    /// behind a stalled application, for `ss -l` and for testing clients against a full backlog).
    pub fn hold_accept(&mut self, listener: ListenerId) {
        self.held.push(listener);
    }

    /// One pass of the loop. Returns the amount of work done (0: idle).
    pub fn poll_once(&mut self, now: Instant) -> usize {
        let Worker { dp, engine, app, control, held, handoff, .. } = self;
        dp.set_now(now);
        let mut work = dp.reclaim();
        // Several rx batches per pass while they come full, so a burst is taken in before the kernel's rx ring
        // overflows; bounded so transmission and timers still get their turn.
        for _ in 0..RX_BATCHES {
            let n = dp.receive(now, &mut |t, pkt| {
                if let Some(c) = control.as_ref() {
                    c.tap(t, pkt, Direction::Rx);
                }
                if let Some(h) = handoff.as_mut() {
                    // Another worker owns this flow: copy the packet to it (SYNs too, so the flow's whole life
                    // meets one engine). Out = In + Drop once the rings are empty.
                    match h.owners.owner_of_packet(pkt) {
                        Some(owner) if owner != h.rings.me() => {
                            tracing::trace!(
                                from = h.rings.me(),
                                to = owner,
                                flags = pkt.get(((pkt[0] & 0x0f) as usize) * 4 + 13).copied().unwrap_or(0),
                                len = pkt.len(),
                                "hand-off"
                            );
                            let c = engine.counters_mut();
                            c.inc(Counter::HandoffOut);
                            if h.rings.send(owner, pkt).is_err() {
                                c.inc(Counter::HandoffDrop);
                            }
                            return;
                        }
                        _ => {}
                    }
                }
                engine.handle_ipv4(t, pkt)
            });
            work += n;
            if n < super::BATCH {
                break;
            }
        }
        dp.refill();
        if let Some(h) = handoff.as_mut() {
            h.rings.flush();
            // What the other workers handed us, read in place from the ring slots; bounded per pass like rx.
            work += h.rings.receive(RX_BATCHES * super::BATCH, &mut |pkt| {
                engine.counters_mut().inc(Counter::HandoffIn);
                engine.handle_ipv4(now, pkt)
            });
        }
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
            work += 1;
        }
        // Bounded by the events the engine queued during this pass plus what the app's calls add.
        while let Some(ev) = engine.poll_event() {
            if matches!(ev, crate::tcp::Event::Incoming(l) if held.contains(&l)) {
                continue;
            }
            app.on_event(engine, now, ev);
            work += 1;
        }
        app.on_tick(engine, now);
        dp.absorb_neighbours(now);
        if dp.next_deadline().is_some_and(|t| t <= now) {
            dp.poll_neighbours(now);
        }
        // The sink flushes every full batch into the tx ring itself and refuses once the ring is full.
        match control.as_mut() {
            Some(c) => {
                engine.poll_transmit(now, &mut TappedSink { inner: dp, control: c, now });
                work += dp.flush();
                dp.take_counters(engine.counters_mut());
                c.service(engine, now);
            }
            None => {
                engine.poll_transmit(now, dp);
                work += dp.flush();
                dp.take_counters(engine.counters_mut());
            }
        }
        work
    }

    /// Runs until `stop` is set, then drains for at most `drain` and returns the final counters and the kernel's
    /// view of the socket.
    pub fn run(mut self, stop: &AtomicBool, drain: Duration) -> (Counters, Option<KernelStats>) {
        self.dp.announce();
        let mut idle = 0u32;
        let mut draining_until: Option<Instant> = None;
        let mut last_publish = self.clock.now();
        loop {
            let now = self.clock.now();
            let work = self.poll_once(now);

            if draining_until.is_none() && stop.load(Ordering::Relaxed) {
                for l in self.listeners.drain(..) {
                    let _ = self.engine.unlisten(l);
                }
                self.app.shutdown(&mut self.engine, now);
                draining_until = Some(now + drain);
                continue;
            }
            if let Some(until) = draining_until {
                let (live, _time_wait) = self.engine.connection_count();
                if (live == 0 && self.dp.tx_outstanding() == 0) || now >= until {
                    match self.handoff.as_mut() {
                        // Our queue still carries other workers' flows: keep handing them over until every
                        // worker is done (bounded: each stops at its own drain deadline, we a little later).
                        Some(h) if !h.rings.all_finished() && now < until + HANDOFF_GRACE => h.rings.finish(),
                        Some(h) => {
                            h.rings.finish();
                            break;
                        }
                        None => break,
                    }
                }
            }
            if now.saturating_since(last_publish) >= PUBLISH_EVERY {
                last_publish = now;
                self.publish();
            }
            if work > 0 {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle < SPIN_ROUNDS {
                std::hint::spin_loop();
                continue;
            }
            self.sleep(now);
        }
        // Whatever is still queued goes out before the socket closes.
        for _ in 0..100 {
            if self.dp.tx_outstanding() == 0 {
                break;
            }
            self.dp.flush();
            self.dp.reclaim();
            std::thread::sleep(Duration::from_micros(200));
        }
        self.dp.take_counters(self.engine.counters_mut());
        self.publish();
        (self.engine.counters().clone(), self.dp.rings().kernel_stats())
    }

    fn publish(&self) {
        if let Ok(mut p) = self.published.lock() {
            *p = self.engine.counters().clone();
        }
    }

    /// Sleeps in `poll()` until a frame arrives or the next timer (engine or ARP) is due, at most [`MAX_SLEEP`].
    fn sleep(&mut self, now: Instant) {
        let mut wake = now + MAX_SLEEP;
        for t in [self.engine.poll_timeout(), self.dp.next_deadline()].into_iter().flatten() {
            wake = wake.min(t);
        }
        let wait = wake.saturating_since(now);
        self.engine.counters_mut().inc(Counter::RxRingEmpty);
        if self.dp.tx_outstanding() > 0 || wait < Duration::from_millis(1) {
            // Completions are due soon (copy mode completes inside sendto) or a timer is imminent: just yield.
            std::thread::yield_now();
            return;
        }
        let ms = wait.as_millis().clamp(1, MAX_SLEEP.as_millis()) as i32;
        // App threads feed this worker through an eventfd: they ring it only after we said we are going to sleep.
        let app_fd = self.app.wake_fd();
        if app_fd.is_some() && !self.app.prepare_sleep() {
            return;
        }
        match self.handoff.as_mut() {
            // Also woken by a peer handing us a packet (its doorbell).
            Some(h) => h.rings.wait(self.dp.rings().fd(), app_fd, ms),
            None => match app_fd {
                None => {
                    let _ = self.dp.rings_mut().poll_rx(ms);
                }
                Some(efd) => {
                    // A failed or interrupted wait is a short sleep: the loop checks everything either way.
                    let _ = crate::sys::poll_readable(&[self.dp.rings().fd(), efd], ms);
                }
            },
        }
        if app_fd.is_some() {
            self.app.woke();
        }
    }
}
