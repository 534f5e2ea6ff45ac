//! The worker's side: an [`App`] that accepts connections for the app threads and moves bytes between the engine
//! and each connection's rings.
//!
//! Back-pressure: bytes leave the engine only while the worker->app ring has room, so a slow app thread keeps them
//! in the engine's receive buffer and the advertised window closes; bytes enter the engine only while its send
//! buffer has room (the rest waits in the app->worker ring, and the app's writes block).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::ring::{Reader, Ring, Writer};
use super::{
    Accepted, ConnShared, Hub, WorkerShared, A_ABORT, A_CLOSE, A_SHUT_WR, W_ABORTED, W_EOF, W_RESET, W_TIMEDOUT,
};
use crate::app::App;
use crate::tcp::{CloseReason, ConnId, Engine, Error, Event, ListenerId};
use crate::time::Instant;

/// Ready connections served per loop pass, so one busy app cannot starve the receive path.
const READY_PER_TICK: usize = 4096;
/// Engine reads per connection per service call (each moves at least one byte).
const READS_PER_SERVICE: usize = 64;

struct Slot {
    id: ConnId,
    shared: Arc<ConnShared>,
    /// Engine -> app bytes (this end writes).
    rx: Writer,
    /// App -> engine bytes (this end reads).
    tx: Reader,
    /// End of stream or an error was passed on: nothing more to read from the engine.
    rx_done: bool,
    /// The engine refused to send (the connection failed): whatever the app writes is dropped.
    tx_failed: bool,
    fin_sent: bool,
}

/// One worker's bridge to the app threads.
pub struct Bridge {
    hub: Arc<Hub>,
    me: Arc<WorkerShared>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_id: HashMap<ConnId, u32>,
    /// Recycled connections: a header and the two rings, each with no other owner.
    pool: Vec<(Arc<ConnShared>, Ring, Ring)>,
    /// Listeners with connections we left in the engine because our accept queue was full.
    pending: Vec<ListenerId>,
    shutting_down: bool,
}

fn error_flag(e: Error) -> u8 {
    match e {
        Error::Reset | Error::Refused => W_RESET,
        Error::TimedOut => W_TIMEDOUT,
        _ => W_ABORTED,
    }
}

impl Bridge {
    pub(super) fn new(hub: Arc<Hub>, index: usize) -> Bridge {
        let me = hub.workers[index].clone();
        Bridge {
            hub,
            me,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            pool: Vec::new(),
            pending: Vec::new(),
            shutting_down: false,
        }
    }

    /// Bytes of ring buffers held by live connections and by the pool (memory accounting).
    pub fn ring_bytes(&self) -> usize {
        let live: usize = self.slots.iter().flatten().map(|s| s.rx.buffer_bytes() + s.tx.buffer_bytes()).sum();
        live + self.pool.iter().map(|(_, rx, tx)| rx.buffer_bytes() + tx.buffer_bytes()).sum::<usize>()
    }

    /// A slot for `id`; returns the app's ends of its rings and the shared header.
    fn new_slot(&mut self, id: ConnId) -> (Reader, Writer, Arc<ConnShared>) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        // Pooled headers have no other owner (pooled only at strong count 1, and nothing can clone them then).
        let pooled = self.pool.pop().and_then(|(mut s, rx, tx)| Arc::get_mut(&mut s).is_some().then_some((s, rx, tx)));
        let (shared, rx, tx) = match pooled {
            Some((mut s, rx, tx)) => {
                if let Some(m) = Arc::get_mut(&mut s) {
                    m.reset(index);
                }
                (s, rx, tx)
            }
            None => {
                let mut s = ConnShared::new();
                s.reset(index);
                (Arc::new(s), Ring::new(self.hub.config.ring), Ring::new(self.hub.config.ring))
            }
        };
        let (rx_w, rx_r) = rx.split();
        let (tx_w, tx_r) = tx.split();
        self.slots[index as usize] = Some(Slot {
            id,
            shared: shared.clone(),
            rx: rx_w,
            tx: tx_r,
            rx_done: false,
            tx_failed: false,
            fin_sent: false,
        });
        self.by_id.insert(id, index);
        (rx_r, tx_w, shared)
    }

    fn release(&mut self, index: u32) {
        let Some(slot) = self.slots[index as usize].take() else { return };
        self.by_id.remove(&slot.id);
        self.free.push(index);
        // Recycle the header and the rings (with their buffers) once the app side has let go of all three.
        if Arc::strong_count(&slot.shared) == 1 && self.pool.len() < self.hub.config.pool {
            if let (Ok(rx), Ok(tx)) = (slot.rx.rejoin(), slot.tx.rejoin()) {
                self.pool.push((slot.shared, rx, tx));
            }
        }
    }

    /// Takes connections from the engine into our accept queue while it has room.
    fn accept_from(&mut self, engine: &mut Engine, now: Instant, l: ListenerId) {
        let mut handed = 0;
        // Bounded by the engine's accept queue.
        loop {
            if self.me.accept.is_full() {
                // Leave the rest in the engine (its backlog pushes back on new handshakes); retry when there is room.
                self.me.accept_blocked.store(true, Ordering::SeqCst);
                if !self.pending.contains(&l) {
                    self.pending.push(l);
                }
                break;
            }
            let Ok(c) = engine.accept(l) else {
                self.pending.retain(|&p| p != l);
                break;
            };
            if self.shutting_down {
                let _ = engine.close(now, c);
                continue;
            }
            let Some((local, remote)) = engine.local_addr_of(c) else {
                let _ = engine.abort(now, c);
                continue;
            };
            if self.hub.config.nodelay {
                let _ = engine.set_nodelay(c, true);
            }
            let (rx, tx, shared) = self.new_slot(c);
            if self.me.accept.push(Accepted { rx, tx, shared, local, remote }).is_err() {
                // Cannot happen (checked for room above, and only we push); never lose the connection silently.
                let index = self.by_id[&c];
                let _ = engine.abort(now, c);
                self.release(index);
                break;
            }
            handed += 1;
        }
        if handed > 0 {
            self.hub.stats.accepted.fetch_add(handed, Ordering::Relaxed);
            self.hub.wake_acceptor();
        }
    }

    /// Moves what can move for one connection, both ways, and passes on end of stream, errors and closes.
    fn service(&mut self, engine: &mut Engine, now: Instant, index: u32) {
        let Some(slot) = self.slots.get_mut(index as usize).and_then(Option::as_mut) else { return };
        let id = slot.id;
        let s = &*slot.shared;
        let app = s.app_flags.load(Ordering::Acquire);
        if app & A_ABORT != 0 {
            let _ = engine.abort(now, id);
            self.release(index);
            return;
        }
        let mut news = false;
        // Engine -> app.
        if !slot.rx_done && app & A_CLOSE == 0 {
            for _ in 0..READS_PER_SERVICE {
                if slot.rx.free() == 0 && engine.recv_queue_len(id) > 0 {
                    // Full: stop reading (the window closes); the app tells us when it has read.
                    s.rx_blocked.store(true, Ordering::SeqCst);
                    if slot.rx.free() == 0 {
                        break;
                    }
                    s.rx_blocked.store(false, Ordering::Relaxed);
                }
                // With room in the ring the closure takes at least one byte of any chunk, so Ok(0) is only ever end
                // of stream (recv_with cannot tell "consumed nothing" from "nothing there").
                let rx = &mut slot.rx;
                match engine.recv_with(id, &mut |chunk: &[u8]| rx.write(chunk)) {
                    Ok(0) => {
                        s.worker_flags.fetch_or(W_EOF, Ordering::Release);
                        slot.rx_done = true;
                        news = true;
                        break;
                    }
                    Ok(_) => news = true,
                    Err(Error::WouldBlock) => break,
                    Err(e) => {
                        s.worker_flags.fetch_or(error_flag(e), Ordering::Release);
                        slot.rx_done = true;
                        news = true;
                        break;
                    }
                }
            }
        }
        // App -> engine.
        let mut made_room = false;
        while !slot.tx_failed {
            let chunk = slot.tx.peek();
            if chunk.is_empty() {
                break;
            }
            match engine.send(now, id, chunk) {
                Ok(n) => {
                    let short = n < chunk.len();
                    slot.tx.consume(n);
                    made_room = true;
                    if short {
                        break; // send buffer full: Writable resumes us
                    }
                }
                Err(Error::WouldBlock) => break,
                Err(e) => {
                    // The connection failed: tell the app; what it wrote can no longer go anywhere.
                    s.worker_flags.fetch_or(error_flag(e), Ordering::Release);
                    slot.tx_failed = true;
                    news = true;
                }
            }
        }
        if slot.tx_failed {
            // Drop unsendable bytes so a blocked writer sees the error instead of a full ring.
            slot.tx.clear();
        }
        if made_room {
            fence(Ordering::SeqCst);
            if s.tx_blocked.load(Ordering::Relaxed) && s.tx_blocked.swap(false, Ordering::AcqRel) {
                news = true;
            }
        }
        if news {
            s.notify_app(&self.hub.stats);
        }
        if slot.tx.is_empty() || slot.tx_failed {
            if app & A_CLOSE != 0 {
                // Closing with unread data resets, as kernel sockets do (RFC 2525 §2.17).
                if !slot.rx.is_empty() || engine.recv_queue_len(id) > 0 {
                    let _ = engine.abort(now, id);
                } else {
                    let _ = engine.close(now, id);
                }
                self.release(index);
            } else if app & A_SHUT_WR != 0 && !slot.fin_sent {
                slot.fin_sent = true;
                let _ = engine.shutdown_write(now, id);
            }
        }
    }

    fn closed(&mut self, engine: &mut Engine, now: Instant, id: ConnId, reason: CloseReason) {
        let Some(&index) = self.by_id.get(&id) else {
            // Not ours (already released): let the engine free it.
            let _ = engine.close(now, id);
            return;
        };
        // Pass on what arrived before the end, then the end itself.
        self.service(engine, now, index);
        let Some(slot) = self.slots.get_mut(index as usize).and_then(Option::as_mut) else { return };
        let flag = match reason {
            CloseReason::Normal => 0,
            CloseReason::Reset | CloseReason::Refused => W_RESET,
            CloseReason::TimedOut => W_TIMEDOUT,
            CloseReason::Aborted => W_ABORTED,
        };
        // Bytes still in the engine (the ring is full) come first: the receive path reports the error after them.
        if flag != 0 && (slot.rx_done || engine.recv_queue_len(id) == 0) {
            slot.shared.worker_flags.fetch_or(flag, Ordering::Release);
            slot.rx_done = true;
            slot.shared.notify_app(&self.hub.stats);
        }
    }
}

impl App for Bridge {
    fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        match event {
            Event::Incoming(l) => self.accept_from(engine, now, l),
            Event::Readable(c) | Event::Writable(c) | Event::Connected(c) => {
                if let Some(&i) = self.by_id.get(&c) {
                    self.service(engine, now, i);
                }
            }
            Event::Closed(c, reason) => self.closed(engine, now, c, reason),
        }
    }

    fn on_tick(&mut self, engine: &mut Engine, now: Instant) {
        for _ in 0..READY_PER_TICK {
            let Some(i) = self.me.ready.pop() else { break };
            if let Some(slot) = self.slots.get(i as usize).and_then(Option::as_ref) {
                // Cleared before acting, so news from now on queue the slot again.
                slot.shared.worker_queued.store(false, Ordering::SeqCst);
                self.service(engine, now, i);
            }
        }
        if !self.pending.is_empty() && !self.me.accept.is_full() {
            for l in std::mem::take(&mut self.pending) {
                self.accept_from(engine, now, l);
            }
        }
    }

    fn shutdown(&mut self, engine: &mut Engine, now: Instant) {
        self.shutting_down = true;
        self.hub.close();
        for i in 0..self.slots.len() as u32 {
            let Some(slot) = self.slots[i as usize].as_ref() else { continue };
            // Queued data still goes out (FIN after it); the app side sees the connection aborted.
            let s = slot.shared.clone();
            self.service(engine, now, i);
            if let Some(slot) = self.slots[i as usize].as_ref() {
                let _ = engine.close(now, slot.id);
                self.release(i);
            }
            s.worker_flags.fetch_or(W_ABORTED, Ordering::Release);
            s.notify_app(&self.hub.stats);
        }
        // Connections the app never took: their headers go (the engine side was closed above).
        while self.me.accept.pop().is_some() {}
    }

    fn connections(&self) -> usize {
        self.by_id.len()
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.me.bell.fd().as_raw_fd())
    }

    fn prepare_sleep(&mut self) -> bool {
        self.me.bell.announce();
        if !self.me.ready.is_empty() || (!self.pending.is_empty() && !self.me.accept.is_full()) {
            self.me.bell.withdraw();
            return false;
        }
        true
    }

    fn woke(&mut self) {
        self.me.bell.woke();
    }
}
