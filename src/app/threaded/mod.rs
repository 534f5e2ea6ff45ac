//! Applications on their own threads: the worker's [`Bridge`] (an [`App`](super::App)) hands accepted connections
//! to app threads through a lock-free accept queue per worker, and moves bytes through a pair of lock-free SPSC
//! byte rings per connection. App threads use a socket-like API: [`Listener`] (merging every worker's accept
//! queue), [`Connection`] (blocking and non-blocking read/write, half-close, close, abort) and [`Poller`]
//! (readiness for many connections on one thread).
//!
//! Wake-ups cost nothing while both sides are busy. The app side wakes the worker only when the worker announced it
//! is about to sleep in `poll()` (its [`Doorbell`], an eventfd it also polls, written once per sleep); the worker
//! unparks an app thread only when that thread announced it is parked (its [`Parker`]). Both are the one
//! announce / fence / re-check protocol of `xdptcp_sync::bell`, loom-checked there: one of the two sides always sees
//! the other (no lost wake-up), and a busy pair never makes a syscall.
//!
//! Memory: a connection costs one [`ConnShared`] (flags and the binding) and two ring headers (counters on their
//! own cache lines); each direction's buffer (`ring` bytes) is allocated on its first write, and headers with their
//! buffers are recycled through a per-worker pool when both sides have let go.
//!
//! All safe code: each byte ring is split into a writer and a reader end (`xdptcp_sync::bytes`), the worker
//! holding one end of each ring and the connection the other, and the binding is a mutex-guarded value.

pub mod apps;
mod bridge;
// Item docs still to write (rustdoc covers the module; the public surface is `Listener`, `Connection`, `Poller`).
#[allow(missing_docs)]
pub mod ring;

use std::io;
use std::net::SocketAddrV4;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use crossbeam::queue::{ArrayQueue, SegQueue};
use xdptcp_sync::bell::{Doorbell, Parker};

pub use bridge::Bridge;
#[cfg(test)]
use ring::Ring;
use ring::{Reader, Writer};

/// Sizes of the hand-off structures.
#[derive(Clone, Copy, Debug)]
pub struct HubConfig {
    /// Bytes of each per-connection ring (each direction); rounded up to a power of two.
    pub ring: usize,
    /// Accepted connections each worker may queue for the app threads before it leaves them in the engine's own
    /// accept queue (whose backlog then pushes back on new handshakes).
    pub accept_queue: usize,
    /// Recycled connection headers each worker keeps.
    pub pool: usize,
    /// Disable Nagle on every connection (request/response apps).
    pub nodelay: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig { ring: 32 * 1024, accept_queue: 1024, pool: 4096, nodelay: false }
    }
}

/// Wake-up counters (Relaxed; bumped only on the slow paths, so reading them costs the fast path nothing).
#[derive(Default, Debug)]
pub struct Stats {
    /// Times a worker unparked an app thread.
    pub app_unparks: AtomicU64,
    /// Times an app thread wrote a worker's eventfd.
    pub worker_wakes: AtomicU64,
    /// Times an app thread parked.
    pub app_parks: AtomicU64,
    /// Connections handed to the app threads.
    pub accepted: AtomicU64,
}

/// What every worker and app thread shares.
pub struct Hub {
    workers: Vec<Arc<WorkerShared>>,
    /// App threads parked waiting for a connection (each at most once, see `Waiter::in_accept_queue`).
    accept_waiters: SegQueue<Arc<Waiter>>,
    closed: AtomicBool,
    /// Wake-up counters.
    pub stats: Stats,
    config: HubConfig,
}

impl Hub {
    /// A hub for `workers` workers; returns it and one bridge per worker (worker `i` gets the `i`-th).
    pub fn new(workers: usize, config: HubConfig) -> io::Result<(Arc<Hub>, Vec<Bridge>)> {
        let mut shared = Vec::with_capacity(workers);
        for _ in 0..workers {
            shared.push(Arc::new(WorkerShared::new(config.accept_queue)?));
        }
        let hub = Arc::new(Hub {
            workers: shared,
            accept_waiters: SegQueue::new(),
            closed: AtomicBool::new(false),
            stats: Stats::default(),
            config,
        });
        let bridges = (0..workers).map(|i| Bridge::new(hub.clone(), i)).collect();
        Ok((hub, bridges))
    }

    /// A listener over every worker's accept queue.
    pub fn listener(self: &Arc<Hub>) -> Listener {
        Listener { hub: self.clone(), next: 0 }
    }

    /// Ends the app side: accept returns an error once the queues are empty, and parked threads wake up.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        while let Some(w) = self.accept_waiters.pop() {
            w.in_accept_queue.store(false, Ordering::Relaxed);
            w.parker.thread().unpark();
        }
    }

    /// Whether [`close`](Hub::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The sizes it was made with.
    pub fn config(&self) -> HubConfig {
        self.config
    }

    /// Wakes one app thread parked in accept (called by a worker after queueing a connection).
    fn wake_acceptor(&self) {
        fence(Ordering::SeqCst);
        // Stale entries (threads that woke for another reason) are dropped; they re-enter before parking again.
        while let Some(w) = self.accept_waiters.pop() {
            w.in_accept_queue.store(false, Ordering::SeqCst);
            if w.wake(&self.stats) {
                return;
            }
        }
    }
}

/// One worker's end: its accept queue, the connections the app side touched, and its doorbell.
struct WorkerShared {
    accept: ArrayQueue<Accepted>,
    /// Worker-side slot numbers of connections with news from the app side (each at most once: `worker_queued`).
    ready: SegQueue<u32>,
    /// The worker announces on it before sleeping in `poll()`; the app thread that takes the announcement writes
    /// its eventfd.
    bell: Doorbell,
    /// The worker left connections in the engine because `accept` was full: tell it when there is room.
    accept_blocked: AtomicBool,
}

impl WorkerShared {
    fn new(accept_queue: usize) -> io::Result<WorkerShared> {
        Ok(WorkerShared {
            accept: ArrayQueue::new(accept_queue.max(1)),
            ready: SegQueue::new(),
            bell: Doorbell::new()?,
            accept_blocked: AtomicBool::new(false),
        })
    }

    /// Wakes the worker if (and only if) it announced it sleeps.
    fn wake(&self, stats: &Stats) {
        if self.bell.ring() {
            stats.worker_wakes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues connection `slot` for the worker's attention and wakes it if it sleeps.
    fn notify(&self, conn: &ConnShared, stats: &Stats) {
        if !conn.worker_queued.swap(true, Ordering::AcqRel) {
            self.ready.push(conn.worker_slot.load(Ordering::Relaxed));
        }
        self.wake(stats);
    }
}

/// A connection handed over by a worker.
struct Accepted {
    /// The app's ends of the two rings (declared before `shared`, so they are gone when the worker sees `shared`'s
    /// count drop to one and pools the rings).
    rx: Reader,
    tx: Writer,
    shared: Arc<ConnShared>,
    local: SocketAddrV4,
    remote: SocketAddrV4,
}

/// Worker -> app flags.
const W_EOF: u8 = 1;
const W_RESET: u8 = 2;
const W_TIMEDOUT: u8 = 4;
const W_ABORTED: u8 = 8;
const W_ERROR: u8 = W_RESET | W_TIMEDOUT | W_ABORTED;
/// App -> worker flags.
const A_SHUT_WR: u8 = 1;
const A_CLOSE: u8 = 2;
const A_ABORT: u8 = 4;

/// Where a connection's app-side news go: a thread's waiter, and the poller token if it is registered in one.
struct Binding {
    waiter: Arc<Waiter>,
    token: Option<usize>,
}

/// The state one connection's two sides share (besides the byte rings, whose ends each side holds).
pub struct ConnShared {
    worker_flags: AtomicU8,
    app_flags: AtomicU8,
    /// The worker stopped reading from the engine because `rx` was full: the app tells it when it read.
    rx_blocked: AtomicBool,
    /// The app found `tx` full: the worker tells it when it made room.
    tx_blocked: AtomicBool,
    worker_queued: AtomicBool,
    /// Set while the connection's token sits in its poller's ready queue.
    app_queued: AtomicBool,
    worker_slot: AtomicU32,
    /// Changed rarely (accept, first blocking wait, poller registration); read by the worker once per news.
    binding: Mutex<Option<Binding>>,
    /// Address of the bound waiter (0 if none), so an app thread checks its binding without the lock. Compared only,
    /// never dereferenced; unique while bound, as the binding holds the waiter alive.
    bound_waiter: AtomicUsize,
}

impl ConnShared {
    fn new() -> ConnShared {
        ConnShared {
            worker_flags: AtomicU8::new(0),
            app_flags: AtomicU8::new(0),
            rx_blocked: AtomicBool::new(false),
            tx_blocked: AtomicBool::new(false),
            worker_queued: AtomicBool::new(false),
            app_queued: AtomicBool::new(false),
            worker_slot: AtomicU32::new(0),
            binding: Mutex::new(None),
            bound_waiter: AtomicUsize::new(0),
        }
    }

    /// Makes a recycled header new again. The caller is its only owner.
    fn reset(&mut self, slot: u32) {
        *self.worker_flags.get_mut() = 0;
        *self.app_flags.get_mut() = 0;
        *self.rx_blocked.get_mut() = false;
        *self.tx_blocked.get_mut() = false;
        *self.worker_queued.get_mut() = false;
        *self.app_queued.get_mut() = false;
        *self.worker_slot.get_mut() = slot;
        self.set_binding(None);
    }

    fn binding(&self) -> std::sync::MutexGuard<'_, Option<Binding>> {
        // A panic while holding it leaves a consistent value (a plain store): poisoning carries no meaning here.
        self.binding.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_binding(&self, b: Option<Binding>) {
        let id = b.as_ref().map_or(0, |b| Arc::as_ptr(&b.waiter) as usize);
        let mut g = self.binding();
        self.bound_waiter.store(id, Ordering::Relaxed);
        // The old binding (and its waiter reference) goes after the lock is released.
        let old = std::mem::replace(&mut *g, b);
        drop(g);
        drop(old);
    }

    /// Tells the app side about news (bytes, flags, room): queues the poller token and unparks its thread if parked.
    /// The waiter's `unpark` fences (SeqCst) before it reads the park announcement, which orders our publication
    /// before that load (see `xdptcp_sync::bell`).
    fn notify_app(&self, stats: &Stats) {
        let g = self.binding();
        let Some(b) = g.as_ref() else { return };
        if let Some(token) = b.token {
            if !self.app_queued.swap(true, Ordering::AcqRel) {
                b.waiter.ready.push(token);
            }
        }
        b.waiter.wake(stats);
    }

    fn bound_to(&self, w: &Arc<Waiter>) -> bool {
        // Only the connection's own thread binds it, so its own earlier store is what it reads.
        self.bound_waiter.load(Ordering::Relaxed) == Arc::as_ptr(w) as usize
    }
}

/// One app thread's parking spot, shared with whoever may wake it.
pub struct Waiter {
    parker: Parker,
    /// Poller tokens of connections with news.
    ready: SegQueue<usize>,
    in_accept_queue: AtomicBool,
}

impl Waiter {
    /// The calling thread's waiter.
    fn current() -> Arc<Waiter> {
        thread_local! {
            static W: Arc<Waiter> = Arc::new(Waiter {
                parker: Parker::current(),
                ready: SegQueue::new(),
                in_accept_queue: AtomicBool::new(false),
            });
        }
        W.with(|w| w.clone())
    }

    /// Unparks the thread if it announced it parks; true if it did.
    fn wake(&self, stats: &Stats) -> bool {
        let woke = self.parker.unpark();
        if woke {
            stats.app_unparks.fetch_add(1, Ordering::Relaxed);
        }
        woke
    }

    /// Parks until woken or `deadline`, unless `ready()` holds after the announcement. `ready` re-checks the rings.
    fn park(&self, stats: &Stats, deadline: Option<StdInstant>, ready: impl Fn() -> bool) {
        self.parker.park(deadline, || {
            let r = ready();
            if !r {
                stats.app_parks.fetch_add(1, Ordering::Relaxed);
            }
            r
        });
    }
}

fn deadline_of(timeout: Option<Duration>) -> Option<StdInstant> {
    timeout.map(|t| StdInstant::now() + t)
}

/// Accepts connections from every worker, round-robin.
pub struct Listener {
    hub: Arc<Hub>,
    next: usize,
}

impl Listener {
    /// A connection if one is queued; `WouldBlock` if not; an error once the hub is closed and drained.
    pub fn try_accept(&mut self) -> io::Result<Connection> {
        let n = self.hub.workers.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let w = &self.hub.workers[i];
            if let Some(a) = w.accept.pop() {
                self.next = (i + 1) % n;
                if w.accept_blocked.load(Ordering::Relaxed) && w.accept_blocked.swap(false, Ordering::AcqRel) {
                    // Room again: the worker takes more from its engine on its next pass.
                    w.wake(&self.hub.stats);
                }
                a.shared.set_binding(Some(Binding { waiter: Waiter::current(), token: None }));
                return Ok(Connection {
                    rx: a.rx,
                    tx: a.tx,
                    shared: a.shared,
                    worker: w.clone(),
                    hub: self.hub.clone(),
                    local: a.local,
                    remote: a.remote,
                    done: false,
                });
            }
        }
        if self.hub.is_closed() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the stack is shutting down"));
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Whether some worker has a connection queued.
    pub fn pending(&self) -> bool {
        self.hub.workers.iter().any(|w| !w.accept.is_empty())
    }

    /// Blocks until a connection arrives (or the hub closes).
    pub fn accept(&mut self) -> io::Result<Connection> {
        self.accept_timeout(None)
    }

    /// As [`accept`](Self::accept), giving up with `TimedOut` after `timeout`.
    pub fn accept_timeout(&mut self, timeout: Option<Duration>) -> io::Result<Connection> {
        let deadline = deadline_of(timeout);
        let me = Waiter::current();
        loop {
            match self.try_accept() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            if deadline.is_some_and(|d| StdInstant::now() >= d) {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.enter_accept_queue(&me);
            me.park(&self.hub.stats, deadline, || self.pending() || self.hub.is_closed());
        }
    }

    fn enter_accept_queue(&self, me: &Arc<Waiter>) {
        if !me.in_accept_queue.swap(true, Ordering::SeqCst) {
            self.hub.accept_waiters.push(me.clone());
        }
    }

    /// The hub it accepts from.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// Why a connection ended, as the app sees it.
fn flag_error(flags: u8) -> Option<io::Error> {
    if flags & W_RESET != 0 {
        Some(io::ErrorKind::ConnectionReset.into())
    } else if flags & W_TIMEDOUT != 0 {
        Some(io::ErrorKind::TimedOut.into())
    } else if flags & W_ABORTED != 0 {
        Some(io::ErrorKind::ConnectionAborted.into())
    } else {
        None
    }
}

/// An accepted connection, on an app thread. Dropping it closes it (FIN after what was written).
pub struct Connection {
    /// Worker -> app bytes (this end reads). Before `shared`: see `Accepted`.
    rx: Reader,
    /// App -> worker bytes (this end writes).
    tx: Writer,
    shared: Arc<ConnShared>,
    worker: Arc<WorkerShared>,
    hub: Arc<Hub>,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    done: bool,
}

impl Connection {
    /// Our end of the connection.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }
    /// The peer's end.
    pub fn peer_addr(&self) -> SocketAddrV4 {
        self.remote
    }

    /// Reads what is there: `Ok(0)` at end of stream, `WouldBlock` if nothing yet, the connection's error if it
    /// failed (ConnectionReset, TimedOut, ConnectionAborted) once the data before it was read.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(r) = self.read_once(buf) {
            return r;
        }
        // About to say WouldBlock: news from now on queue the poller token again (EPOLLET), then look once more.
        self.shared.app_queued.store(false, Ordering::SeqCst);
        self.read_once(buf).unwrap_or_else(|| Err(io::ErrorKind::WouldBlock.into()))
    }

    fn read_once(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let s = &*self.shared;
        let n = self.rx.read(buf);
        if n > 0 {
            fence(Ordering::SeqCst);
            if s.rx_blocked.load(Ordering::Relaxed) && s.rx_blocked.swap(false, Ordering::AcqRel) {
                self.worker.notify(s, &self.hub.stats);
            }
            return Some(Ok(n));
        }
        let flags = s.worker_flags.load(Ordering::Acquire);
        if flags & (W_EOF | W_ERROR) != 0 {
            // The flag follows the last bytes: read again in case they arrived between the two loads.
            let n = self.rx.read(buf);
            if n > 0 {
                return Some(Ok(n));
            }
            return Some(match flag_error(flags) {
                Some(e) => Err(e),
                None => Ok(0),
            });
        }
        None
    }

    /// Queues what fits of `data` for sending; `WouldBlock` if nothing fits now.
    pub fn try_write(&mut self, data: &[u8]) -> io::Result<usize> {
        let s = &*self.shared;
        if let Some(e) = flag_error(s.worker_flags.load(Ordering::Acquire)) {
            return Err(e);
        }
        if s.app_flags.load(Ordering::Relaxed) & A_SHUT_WR != 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.tx.write(data);
        if n < data.len() {
            // Announce before the worker's next consumption so it tells us about the room it makes.
            s.tx_blocked.store(true, Ordering::SeqCst);
        }
        if n > 0 {
            self.worker.notify(s, &self.hub.stats);
            return Ok(n);
        }
        // Re-check after announcing (and re-arming the poller token): the worker may have made room just before.
        s.app_queued.store(false, Ordering::SeqCst);
        let n = self.tx.write(data);
        if n > 0 {
            self.worker.notify(s, &self.hub.stats);
            return Ok(n);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Whether a read would not block now.
    pub fn readable(&self) -> bool {
        !self.rx.is_empty() || self.shared.worker_flags.load(Ordering::Acquire) & (W_EOF | W_ERROR) != 0
    }

    /// Whether a write would not block now.
    pub fn writable(&self) -> bool {
        self.tx.free() > 0 || self.shared.worker_flags.load(Ordering::Acquire) & W_ERROR != 0
    }

    fn wait(&self, deadline: Option<StdInstant>, cond: impl Fn(&Connection) -> bool) {
        let me = Waiter::current();
        if !self.shared.bound_to(&me) {
            self.shared.set_binding(Some(Binding { waiter: me.clone(), token: None }));
        }
        me.park(&self.hub.stats, deadline, || cond(self));
    }

    /// Blocking read.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_timeout(buf, None)
    }

    /// Blocking read giving up with `TimedOut` after `timeout`.
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = deadline_of(timeout);
        loop {
            match self.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            if deadline.is_some_and(|d| StdInstant::now() >= d) {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.wait(deadline, Connection::readable);
        }
    }

    /// Blocking write of at least one byte.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            match self.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            self.wait(None, Connection::writable);
        }
    }

    /// Blocking write of everything.
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.write(data)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Half-close: FIN after what was written; reading goes on.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        let s = &*self.shared;
        s.app_flags.fetch_or(A_SHUT_WR, Ordering::Release);
        self.worker.notify(s, &self.hub.stats);
        Ok(())
    }

    /// Orderly close: FIN after what was written. Unread received data makes it a reset, as with kernel sockets.
    pub fn close(mut self) {
        self.finish(A_CLOSE);
    }

    /// Abortive close (RST now).
    pub fn abort(mut self) {
        self.finish(A_ABORT);
    }

    fn finish(&mut self, flag: u8) {
        if self.done {
            return;
        }
        self.done = true;
        let s = &*self.shared;
        s.set_binding(None);
        s.app_flags.fetch_or(flag, Ordering::Release);
        self.worker.notify(s, &self.hub.stats);
    }

    /// Bytes buffered towards the app (received, unread) and towards the worker (written, not yet in the engine).
    pub fn buffered(&self) -> (usize, usize) {
        (self.rx.len(), self.tx.len())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.finish(A_CLOSE);
    }
}

/// Readiness for many connections on one thread: register each with a token, then `wait` returns the tokens of
/// connections with news. Edge-triggered like EPOLLET: a token comes again only after a `try_read` or `try_write`
/// on its connection returned `WouldBlock`, so act until then. Spurious tokens are possible (e.g. of a connection
/// closed meanwhile).
pub struct Poller {
    me: Arc<Waiter>,
    hub: Arc<Hub>,
}

impl Poller {
    /// A poller for the calling thread (wait on this thread only). One per thread: pollers of one thread share its
    /// ready queue.
    pub fn new(hub: &Arc<Hub>) -> Poller {
        Poller { me: Waiter::current(), hub: hub.clone() }
    }

    /// Sends `conn`'s news to this poller under `token`, and queues the token once now (it may have news already).
    pub fn register(&self, conn: &Connection, token: usize) {
        conn.shared.set_binding(Some(Binding { waiter: self.me.clone(), token: Some(token) }));
        conn.shared.app_queued.store(true, Ordering::SeqCst);
        self.me.ready.push(token);
    }

    /// Appends ready tokens to `events`; returns whether `listener` (if given) has connections queued. Parks until
    /// something happens or `timeout` passes.
    pub fn wait(&self, listener: Option<&Listener>, events: &mut Vec<usize>, timeout: Option<Duration>) -> bool {
        let deadline = deadline_of(timeout);
        loop {
            self.drain(events);
            let accept = listener.is_some_and(|l| l.pending() || l.hub.is_closed());
            if !events.is_empty() || accept || deadline.is_some_and(|d| StdInstant::now() >= d) {
                return accept;
            }
            if let Some(l) = listener {
                l.enter_accept_queue(&self.me);
            }
            self.me.park(&self.hub.stats, deadline, || {
                !self.me.ready.is_empty() || listener.is_some_and(|l| l.pending() || l.hub.is_closed())
            });
        }
    }

    /// Appends ready tokens without parking.
    pub fn drain(&self, events: &mut Vec<usize>) {
        // Bounded by what was queued; every connection's token is in the queue at most once.
        while let Some(t) = self.me.ready.pop() {
            events.push(t);
        }
    }
}

/// The whole counters as numbers: (app unparks, worker wakes, app parks, accepted).
pub fn stats_snapshot(hub: &Hub) -> (u64, u64, u64, u64) {
    let s = &hub.stats;
    (
        s.app_unparks.load(Ordering::Relaxed),
        s.worker_wakes.load(Ordering::Relaxed),
        s.app_parks.load(Ordering::Relaxed),
        s.accepted.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-connection header stays small: idle connections cost this and no ring buffers.
    #[test]
    fn connection_header_is_small_and_buffers_are_lazy() {
        let size = std::mem::size_of::<ConnShared>();
        assert!(size <= 256, "{size} bytes");
        let (mut w, r) = Ring::new(32 * 1024).split();
        assert_eq!(r.buffer_bytes(), 0);
        w.write(b"x");
        assert_eq!(r.buffer_bytes(), 32 * 1024);
    }

    /// A parked thread is woken by `wake`, and a wake before the park is not lost (the park returns at once).
    #[test]
    fn waiter_wake_before_and_during_park() {
        let stats = Arc::new(Stats::default());
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, f2) = (stats.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            let me = Waiter::current();
            tx.send(me.clone()).unwrap();
            let t0 = StdInstant::now();
            while !f2.load(Ordering::SeqCst) {
                me.park(&s2, Some(StdInstant::now() + Duration::from_secs(10)), || f2.load(Ordering::SeqCst));
            }
            t0.elapsed()
        });
        let w = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::SeqCst);
        w.wake(&stats);
        let waited = t.join().unwrap();
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // Nobody parked: wake is a load, no unpark.
        let before = stats.app_unparks.load(Ordering::Relaxed);
        assert!(!w.wake(&stats));
        assert_eq!(stats.app_unparks.load(Ordering::Relaxed), before);
    }
}
