//! The worker side of the control plane ([`WorkerControl`]) and the registry every control thread uses to reach
//! the workers ([`ControlHub`]).
//!
//! Workers never wait for the control plane: requests reach them through bounded channels that they poll once per
//! loop iteration; replies go back through one-slot channels they fill with `try_send`; counters are published
//! into a mutex-guarded slot with `try_lock` (a contended publish is skipped, never waited for).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};

use super::capture::{Capture, CaptureInterface, CaptureTap, Direction};
use super::filter::{CaptureFilter, LinkType};
use super::protocol::{Setting, SockRecord, WorkerGauges};
use super::ssfilter::{SsFilter, StateSet};
use crate::tcp::{Config, Counter, Counters, Engine, ListenerId, State};
use crate::time::Instant;

/// How often a worker publishes its counters for `stat --watch` and metrics.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);
/// Requests a worker handles per `service` call, so a burst of control traffic cannot hog a loop iteration.
const REQUESTS_PER_SERVICE: usize = 4;
/// Requests queued per worker before senders are told it is busy.
const REQUEST_QUEUE: usize = 64;
/// Records per listing batch: bounds the memory a worker builds for one reply.
pub(crate) const BATCH_RECORDS: usize = 512;
/// Connection slots looked at per batch, so a sparse table does not make one batch walk millions of empty slots.
const BATCH_SLOTS: usize = 8192;
/// How long a control thread waits for a worker to answer (all workers at once for fan-out requests).
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// A worker's counters and gauges at one moment.
#[derive(Clone, Debug)]
pub struct WorkerSnapshot {
    pub counters: Counters,
    pub gauges: WorkerGauges,
    pub taken: std::time::Instant,
}

/// Which part of a listing a batch resumes at.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListCursor {
    Listeners,
    /// Next connection slot to look at.
    Conns(usize),
    /// Next TIME_WAIT slot to look at (slot order is stable: every record is visited once, O(n) in total).
    TimeWait(usize),
}

pub(crate) struct ListQuery {
    pub states: StateSet,
    pub filter: SsFilter,
    pub info: bool,
}

pub(crate) struct ListBatch {
    pub records: Vec<SockRecord>,
    pub next: Option<ListCursor>,
}

type SettingsReply = Result<Vec<Setting>, String>;

pub(crate) enum WorkerRequest {
    Snapshot {
        reply: Sender<WorkerSnapshot>,
    },
    List {
        query: Arc<ListQuery>,
        cursor: ListCursor,
        reply: Sender<ListBatch>,
    },
    SysctlGet {
        name: String,
        reply: Sender<SettingsReply>,
    },
    SysctlList {
        reply: Sender<SettingsReply>,
    },
    SysctlSet {
        name: String,
        value: String,
        reply: Sender<SettingsReply>,
    },
    CaptureStart {
        capture: Arc<Capture>,
        ring: usize,
        reply: Sender<()>,
    },
    /// Per-connection debug log on (`Some`, for connections matching the filter) or off.
    Log {
        filter: Option<Arc<SsFilter>>,
        reply: Sender<()>,
    },
}

/// The slot a worker publishes into.
struct PublishedSlot {
    snapshot: Mutex<Option<WorkerSnapshot>>,
    live: AtomicBool,
}

type Waker = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct WorkerEntry {
    worker: u32,
    link: LinkType,
    requests: Sender<WorkerRequest>,
    published: Arc<PublishedSlot>,
    waker: Option<Waker>,
}

/// What a runtime's worker owns: polled once per loop iteration ([`WorkerControl::service`]) and called on every
/// frame ([`WorkerControl::tap`]).
pub struct WorkerControl {
    worker: u32,
    requests: Receiver<WorkerRequest>,
    published: Arc<PublishedSlot>,
    next_publish: Option<Instant>,
    tap: Option<CaptureTap>,
    /// The whole-run capture to a file (`--pcap`), beside any on-demand capture.
    file_tap: Option<CaptureTap>,
    /// `xdptcp log`: segments of connections matching this filter are logged at debug level (target
    /// `xdptcp::conn`).
    log: Option<Arc<SsFilter>>,
    link: LinkType,
}

impl WorkerControl {
    /// The worker's index in listings, metrics and capture interface names.
    pub fn index(&self) -> u32 {
        self.worker
    }

    /// Answers pending control requests and publishes counters every [`PUBLISH_INTERVAL`]. With nothing asked
    /// and nothing due this is one time comparison and one channel emptiness check (two relaxed loads).
    #[inline]
    pub fn service(&mut self, engine: &mut Engine, now: Instant) {
        if self.next_publish.is_none_or(|at| now >= at) {
            self.publish(engine, now);
        }
        if !self.requests.is_empty() {
            self.serve_requests(engine, now);
        }
    }

    /// Hands a frame to a running capture, the `--pcap` file and the per-connection log. With all three off this is
    /// three predictable branches on worker-local fields (not even an atomic); a capture costs a relaxed load, the
    /// filter and two lock-free queue operations; the log parses the headers and matches the ss filter.
    #[inline]
    pub fn tap(&self, now: Instant, frame: &[u8], direction: Direction) {
        if let Some(tap) = &self.tap {
            tap.tap(now, frame, direction);
        }
        if let Some(tap) = &self.file_tap {
            tap.tap(now, frame, direction);
        }
        if let Some(filter) = &self.log {
            super::connlog::log_segment(self.worker, self.link, filter, frame, direction);
        }
    }

    /// Installs the whole-run file capture's tap (see [`super::PcapFile`]); call before the worker runs so the
    /// first frame is in the file.
    pub fn set_file_tap(&mut self, tap: CaptureTap) {
        self.file_tap = Some(tap);
    }

    /// Turns the per-connection debug log on for connections matching `filter`, or off.
    pub fn set_log(&mut self, filter: Option<SsFilter>) {
        self.log = filter.map(Arc::new);
    }

    /// Whether a capture is tapping this worker.
    pub fn capturing(&self) -> bool {
        self.tap.is_some()
    }

    #[cold]
    fn publish(&mut self, engine: &Engine, now: Instant) {
        self.next_publish = Some(now + PUBLISH_INTERVAL);
        if let Some(tap) = &self.tap {
            if !tap.is_running() {
                self.tap = None;
            }
        }
        let snap = snapshot(self.worker, engine);
        // Never wait: a reader copying the slot right now just delays this publish by one interval.
        if let Ok(mut slot) = self.published.snapshot.try_lock() {
            *slot = Some(snap);
        }
    }

    #[cold]
    fn serve_requests(&mut self, engine: &mut Engine, now: Instant) {
        for _ in 0..REQUESTS_PER_SERVICE {
            let Ok(req) = self.requests.try_recv() else { break };
            // Replies go into one-slot channels made for them: `try_send` always finds room unless the asker gave
            // up (then the reply is simply dropped).
            match req {
                WorkerRequest::Snapshot { reply } => {
                    let _ = reply.try_send(snapshot(self.worker, engine));
                }
                WorkerRequest::List { query, cursor, reply } => {
                    let _ = reply.try_send(list_batch(self.worker, engine, &query, cursor));
                }
                WorkerRequest::SysctlGet { name, reply } => {
                    let _ = reply.try_send(get_setting(engine.config(), &name).map(|s| vec![s]));
                }
                WorkerRequest::SysctlList { reply } => {
                    let config = engine.config();
                    let all = Config::names().iter().filter_map(|n| get_setting(config, n).ok()).collect();
                    let _ = reply.try_send(Ok(all));
                }
                WorkerRequest::SysctlSet { name, value, reply } => {
                    let result = engine.config_mut().set_runtime(&name, &value).map_err(|e| e.to_string());
                    let _ = reply.try_send(result.and_then(|()| get_setting(engine.config(), &name).map(|s| vec![s])));
                }
                WorkerRequest::CaptureStart { capture, ring, reply } => {
                    self.tap = capture.tap(ring, now);
                    let _ = reply.try_send(());
                }
                WorkerRequest::Log { filter, reply } => {
                    self.log = filter;
                    let _ = reply.try_send(());
                }
            }
        }
    }
}

impl Drop for WorkerControl {
    fn drop(&mut self) {
        self.published.live.store(false, Ordering::Relaxed);
    }
}

fn snapshot(worker: u32, engine: &Engine) -> WorkerSnapshot {
    let (connections, timewait) = engine.connection_count();
    let counters = engine.counters().clone();
    WorkerSnapshot {
        gauges: WorkerGauges {
            worker,
            connections: connections as u64,
            timewait: timewait as u64,
            listeners: engine.listeners.iter().filter(|l| l.is_some()).count() as u64,
            frames_in_use: counters.get(Counter::FramesInUse),
            buffer_bytes: engine.buffer_bytes_in_use() as u64,
            age_ms: 0,
            live: true,
        },
        counters,
        taken: std::time::Instant::now(),
    }
}

fn get_setting(config: &Config, name: &str) -> Result<Setting, String> {
    match (Config::sysctl_name(name), config.get(name)) {
        (Some(full), Some(value)) => {
            Ok(Setting { name: full, value, runtime_settable: Config::is_runtime_settable(name) })
        }
        _ => Err(format!("unknown setting `{name}`")),
    }
}

/// One bounded step of a listing: listeners (few), then connection slots from the cursor, then TIME_WAIT records.
fn list_batch(worker: u32, engine: &Engine, q: &ListQuery, mut cursor: ListCursor) -> ListBatch {
    let mut records = Vec::new();
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    loop {
        match cursor {
            ListCursor::Listeners => {
                if q.states.contains(State::Listen) {
                    for i in 0..engine.listeners.len() {
                        if let Some(l) = engine.listener_info(ListenerId(i as u32)) {
                            if q.filter.matches(l.local, any) {
                                records.push(SockRecord::from_listener(worker, &l));
                            }
                        }
                    }
                }
                cursor = ListCursor::Conns(0);
            }
            ListCursor::Conns(start) => {
                let wanted = q.states.without(State::Listen).without(State::TimeWait);
                let slots = &engine.slots;
                let mut i = start;
                if !wanted.is_empty() {
                    let end = slots.len().min(start.saturating_add(BATCH_SLOTS));
                    while i < end && records.len() < BATCH_RECORDS {
                        if let Some(c) = slots[i].conn.as_deref() {
                            if !c.finished
                                && wanted.contains(c.state)
                                && q.filter.matches(c.tuple.local(), c.tuple.remote())
                            {
                                records.push(SockRecord::from_conn(worker, &c.info(), q.info));
                            }
                        }
                        i += 1;
                    }
                    if i < slots.len() {
                        return ListBatch { records, next: Some(ListCursor::Conns(i)) };
                    }
                }
                cursor = ListCursor::TimeWait(0);
            }
            ListCursor::TimeWait(start) => {
                if !q.states.contains(State::TimeWait) {
                    return ListBatch { records, next: None };
                }
                // At most `room` records are visited, so every visited match fits; BATCH_SLOTS bounds the walk when
                // the filter matches little.
                let room = BATCH_RECORDS.saturating_sub(records.len()).max(1);
                let next = engine.for_each_timewait_from(start, room, BATCH_SLOTS, &mut |local, remote, left| {
                    if q.filter.matches(local, remote) {
                        records.push(SockRecord::from_timewait(worker, local, remote, left));
                    }
                });
                return ListBatch { records, next: next.map(ListCursor::TimeWait) };
            }
        }
    }
}

struct HubInner {
    workers: Mutex<Vec<WorkerEntry>>,
    next_worker: AtomicU32,
    capture_busy: AtomicBool,
}

/// The registry of workers that the control socket, metrics and in-process tools talk through. Cheap to clone.
#[derive(Clone)]
pub struct ControlHub {
    inner: Arc<HubInner>,
}

impl Default for ControlHub {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ControlHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlHub").field("workers", &self.worker_count()).finish()
    }
}

/// Why a fan-out request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    #[error("no workers are registered")]
    NoWorkers,
    #[error("worker {0} is gone")]
    WorkerGone(u32),
    #[error("worker {0} is busy (its request queue is full)")]
    WorkerBusy(u32),
    #[error("worker {0} did not answer in time")]
    WorkerTimeout(u32),
    #[error("{0}")]
    Refused(String),
    #[error("a capture is already running (one at a time)")]
    CaptureBusy,
}

/// A running capture; dropping it stops the capture and frees the capture slot.
pub struct CaptureGuard {
    capture: Arc<Capture>,
    hub: ControlHub,
    /// Workers that did not install their tap.
    pub missing: Vec<HubError>,
}

impl CaptureGuard {
    pub fn capture(&self) -> &Capture {
        &self.capture
    }
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        self.capture.stop();
        self.hub.inner.capture_busy.store(false, Ordering::Release);
    }
}

impl WorkerEntry {
    /// Queues a request without waiting (a full queue means the worker is far behind: busy).
    fn post<T>(&self, make: impl FnOnce(Sender<T>) -> WorkerRequest) -> Result<Receiver<T>, HubError> {
        let (tx, rx) = channel::bounded(1);
        match self.requests.try_send(make(tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(HubError::WorkerBusy(self.worker)),
            Err(TrySendError::Disconnected(_)) => return Err(HubError::WorkerGone(self.worker)),
        }
        if let Some(wake) = &self.waker {
            wake();
        }
        Ok(rx)
    }

    fn wait<T>(&self, rx: &Receiver<T>, deadline: std::time::Instant) -> Result<T, HubError> {
        match rx.recv_deadline(deadline) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Timeout) => Err(HubError::WorkerTimeout(self.worker)),
            // The worker dropped the request unanswered: it exited.
            Err(RecvTimeoutError::Disconnected) => Err(HubError::WorkerGone(self.worker)),
        }
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> WorkerRequest) -> Result<T, HubError> {
        let rx = self.post(make)?;
        self.wait(&rx, std::time::Instant::now() + REPLY_TIMEOUT)
    }

    fn published(&self) -> Option<WorkerSnapshot> {
        self.published.snapshot.lock().ok()?.clone()
    }
}

impl ControlHub {
    pub fn new() -> ControlHub {
        ControlHub {
            inner: Arc::new(HubInner {
                workers: Mutex::new(Vec::new()),
                next_worker: AtomicU32::new(0),
                capture_busy: AtomicBool::new(false),
            }),
        }
    }

    /// Registers a worker whose frames are framed as `link`; the worker thread owns the returned control.
    pub fn register_worker(&self, link: LinkType) -> WorkerControl {
        self.register(link, None)
    }

    /// As [`register_worker`](Self::register_worker), for a worker that may sleep (e.g. in `poll(2)` on its XDP
    /// socket): `waker` is called after each request is queued so it runs `service` promptly (an eventfd write).
    pub fn register_worker_with_waker(&self, link: LinkType, waker: Arc<dyn Fn() + Send + Sync>) -> WorkerControl {
        self.register(link, Some(waker))
    }

    fn register(&self, link: LinkType, waker: Option<Waker>) -> WorkerControl {
        let worker = self.inner.next_worker.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel::bounded(REQUEST_QUEUE);
        let published = Arc::new(PublishedSlot { snapshot: Mutex::new(None), live: AtomicBool::new(true) });
        let entry = WorkerEntry { worker, link, requests: tx, published: published.clone(), waker };
        self.inner.workers.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
        WorkerControl {
            worker,
            requests: rx,
            published,
            next_publish: None,
            tap: None,
            file_tap: None,
            log: None,
            link,
        }
    }

    fn entries(&self) -> Vec<WorkerEntry> {
        self.inner.workers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Number of registered workers (live or not).
    pub fn worker_count(&self) -> usize {
        self.inner.workers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Summed counters and each worker's gauges from the published snapshots: never waits on a worker. A worker
    /// that has not published yet contributes zeroes.
    pub fn published(&self) -> (Counters, Vec<WorkerGauges>) {
        let mut sum = Counters::default();
        let mut gauges = Vec::new();
        for e in self.entries() {
            let live = e.published.live.load(Ordering::Relaxed);
            match e.published() {
                Some(s) => {
                    sum.merge(&s.counters);
                    let age_ms = s.taken.elapsed().as_millis() as u64;
                    gauges.push(WorkerGauges { age_ms, live, ..s.gauges });
                }
                None => gauges.push(WorkerGauges { worker: e.worker, live, ..WorkerGauges::default() }),
            }
        }
        (sum, gauges)
    }

    /// Summed counters asked of every worker now; a worker that does not answer contributes its last published
    /// snapshot and is marked not live.
    pub fn fresh(&self) -> (Counters, Vec<WorkerGauges>) {
        let entries = self.entries();
        // Ask everyone first, then collect against one deadline: stalled workers cost two seconds in total.
        let pending: Vec<_> = entries.iter().map(|e| e.post(|reply| WorkerRequest::Snapshot { reply })).collect();
        let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
        let mut sum = Counters::default();
        let mut gauges = Vec::new();
        for (e, rx) in entries.iter().zip(pending) {
            match rx.and_then(|rx| e.wait(&rx, deadline)) {
                Ok(s) => {
                    sum.merge(&s.counters);
                    gauges.push(s.gauges);
                }
                Err(_) => match e.published() {
                    Some(s) => {
                        sum.merge(&s.counters);
                        let age_ms = s.taken.elapsed().as_millis() as u64;
                        gauges.push(WorkerGauges { age_ms, live: false, ..s.gauges });
                    }
                    None => gauges.push(WorkerGauges { worker: e.worker, live: false, ..WorkerGauges::default() }),
                },
            }
        }
        (sum, gauges)
    }

    /// Streams the sockets matching `states` and `filter` of every worker, one bounded batch per worker round
    /// trip, to `sink` (which may fail, e.g. when the client went away: the listing stops). Workers that do not
    /// answer are reported to `warn` and skipped. Returns the number of records.
    pub fn list(
        &self,
        states: StateSet,
        filter: SsFilter,
        info: bool,
        sink: &mut dyn FnMut(SockRecord) -> std::io::Result<()>,
        warn: &mut dyn FnMut(HubError) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        let query = Arc::new(ListQuery { states, filter, info });
        let mut count = 0;
        for e in self.entries() {
            let mut cursor = ListCursor::Listeners;
            loop {
                let q = query.clone();
                match e.ask(|reply| WorkerRequest::List { query: q, cursor, reply }) {
                    Ok(batch) => {
                        for r in batch.records {
                            count += 1;
                            sink(r)?;
                        }
                        match batch.next {
                            Some(c) => cursor = c,
                            None => break,
                        }
                    }
                    Err(err) => {
                        warn(err)?;
                        break;
                    }
                }
            }
        }
        Ok(count)
    }

    /// One setting (from the first worker that answers: all workers share the configuration).
    pub fn sysctl_get(&self, name: &str) -> Result<Setting, HubError> {
        self.first_answer(|reply| WorkerRequest::SysctlGet { name: name.to_string(), reply })
            .and_then(|v| v.into_iter().next().ok_or(HubError::NoWorkers))
    }

    /// Every setting.
    pub fn sysctl_list(&self) -> Result<Vec<Setting>, HubError> {
        self.first_answer(|reply| WorkerRequest::SysctlList { reply })
    }

    fn first_answer(&self, make: impl Fn(Sender<SettingsReply>) -> WorkerRequest) -> Result<Vec<Setting>, HubError> {
        let mut last = HubError::NoWorkers;
        for e in self.entries() {
            match e.ask(&make) {
                Ok(r) => return r.map_err(HubError::Refused),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// Sets a runtime-settable knob on every live worker. A refusal (unknown name, not settable at run time, out
    /// of range) comes from the first worker, before any other is changed.
    pub fn sysctl_set(&self, name: &str, value: &str) -> Result<Setting, HubError> {
        if !Config::is_runtime_settable(name) {
            // Let the configuration say why (unknown name with a suggestion, or restart needed).
            let why = Config::default().set_runtime(name, value).err().map(|e| e.to_string());
            return Err(HubError::Refused(why.unwrap_or_else(|| format!("{name} cannot be changed while running"))));
        }
        let mut result = Err(HubError::NoWorkers);
        for e in self.entries() {
            if !e.published.live.load(Ordering::Relaxed) {
                continue;
            }
            let answer =
                e.ask(|reply| WorkerRequest::SysctlSet { name: name.to_string(), value: value.to_string(), reply })?;
            let setting = answer.map_err(HubError::Refused)?;
            result = setting.into_iter().next().ok_or(HubError::NoWorkers);
        }
        result
    }

    /// Turns the per-connection debug log on (for connections matching `filter`) or off on every live worker;
    /// returns how many workers took it.
    pub fn set_log(&self, filter: Option<SsFilter>) -> Result<usize, HubError> {
        let filter = filter.map(Arc::new);
        let entries: Vec<_> = self.entries().into_iter().filter(|e| e.published.live.load(Ordering::Relaxed)).collect();
        if entries.is_empty() {
            return Err(HubError::NoWorkers);
        }
        let pending: Vec<_> =
            entries.iter().map(|e| e.post(|reply| WorkerRequest::Log { filter: filter.clone(), reply })).collect();
        let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
        let mut done = 0;
        let mut last_err = None;
        for (e, rx) in entries.iter().zip(pending) {
            match rx.and_then(|rx| e.wait(&rx, deadline)) {
                Ok(()) => done += 1,
                Err(err) => last_err = Some(err),
            }
        }
        match (done, last_err) {
            (0, Some(err)) => Err(err),
            _ => Ok(done),
        }
    }

    /// A capture over every registered worker whose taps the caller installs itself
    /// ([`WorkerControl::set_file_tap`]), independent of the on-demand capture slot: for `--pcap`.
    pub fn file_capture(&self, filter: CaptureFilter, snaplen: u32) -> Capture {
        let interfaces: Vec<CaptureInterface> =
            self.entries().iter().map(|e| CaptureInterface { worker: e.worker, link: e.link }).collect();
        Capture::new(filter, snaplen, &interfaces)
    }

    /// Starts the (single) capture on every registered worker and waits until each live worker has installed its
    /// tap, so no frame after this returns is missed.
    pub fn start_capture(&self, filter: CaptureFilter, snaplen: u32) -> Result<CaptureGuard, HubError> {
        if self.inner.capture_busy.swap(true, Ordering::Acquire) {
            return Err(HubError::CaptureBusy);
        }
        let entries = self.entries();
        let interfaces: Vec<CaptureInterface> =
            entries.iter().map(|e| CaptureInterface { worker: e.worker, link: e.link }).collect();
        let capture = Arc::new(Capture::new(filter, snaplen, &interfaces));
        let mut guard = CaptureGuard { capture: capture.clone(), hub: self.clone(), missing: Vec::new() };
        let pending: Vec<_> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.published.live.load(Ordering::Relaxed))
            .map(|(ring, e)| (e, e.post(|reply| WorkerRequest::CaptureStart { capture: capture.clone(), ring, reply })))
            .collect();
        let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
        for (e, rx) in pending {
            if let Err(err) = rx.and_then(|rx| e.wait(&rx, deadline)) {
                guard.missing.push(err);
            }
        }
        Ok(guard)
    }
}

/// Helpers for tests of the worker side without a server.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::PacketSink;

    struct Sink(Vec<Vec<u8>>, Vec<u8>);
    impl PacketSink for Sink {
        fn buffer(&mut self) -> Option<&mut [u8]> {
            self.1.clear();
            self.1.resize(1500, 0);
            Some(&mut self.1)
        }
        fn commit(&mut self, len: usize) {
            self.0.push(self.1[..len].to_vec());
        }
    }

    #[test]
    fn idle_service_publishes_on_schedule_only() {
        let hub = ControlHub::new();
        let mut wc = hub.register_worker(LinkType::RawIpv4);
        let mut engine = Engine::new(Config::default(), Instant::from_secs(1), 7);
        engine.counters_mut().add(Counter::InSegs, 5);
        assert_eq!(hub.published().0.get(Counter::InSegs), 0);
        wc.service(&mut engine, Instant::from_secs(1));
        assert_eq!(hub.published().0.get(Counter::InSegs), 5);
        engine.counters_mut().add(Counter::InSegs, 5);
        wc.service(&mut engine, Instant::from_secs(1) + Duration::from_millis(50));
        assert_eq!(hub.published().0.get(Counter::InSegs), 5, "not yet due");
        wc.service(&mut engine, Instant::from_secs(1) + PUBLISH_INTERVAL);
        assert_eq!(hub.published().0.get(Counter::InSegs), 10);
        drop(wc);
        assert!(!hub.published().1[0].live);
    }

    /// A worker thread that keeps answering the hub for `engine` until the flag is set.
    fn service_in_background(
        mut wc: WorkerControl,
        mut engine: Engine,
        now: Instant,
    ) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let worker = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                wc.service(&mut engine, now);
                std::thread::yield_now();
            }
        });
        (stop, worker)
    }

    #[test]
    fn listing_is_batched_and_filtered() {
        let hub = ControlHub::new();
        let wc = hub.register_worker(LinkType::RawIpv4);
        let now = Instant::from_secs(1);
        let mut engine = Engine::new(Config::default(), now, 7);
        let local = "198.18.0.1:0".parse().unwrap();
        let n = BATCH_RECORDS * 2 + 3;
        for i in 0..n {
            let remote = SocketAddrV4::new(Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250) as u8 + 1), 80);
            engine.connect(now, local, remote).unwrap();
        }
        let mut sink = Sink(Vec::new(), Vec::new());
        engine.poll_transmit(now, &mut sink);
        assert_eq!(sink.0.len(), n);
        engine.listen("198.18.0.1:80".parse().unwrap(), 16).unwrap();
        let (stop, worker) = service_in_background(wc, engine, now);
        let mut got = Vec::new();
        let count = hub
            .list(
                StateSet::all(),
                SsFilter::default(),
                true,
                &mut |r| {
                    got.push(r);
                    Ok(())
                },
                &mut |e| panic!("{e}"),
            )
            .unwrap();
        assert_eq!(count as usize, n + 1);
        assert_eq!(got[0].state, "LISTEN");
        assert!(got[1..].iter().all(|r| r.state == "SYN-SENT" && r.info.is_some()));
        let mut some = 0;
        let filter = SsFilter::parse("dst 198.19.1.0/24").unwrap();
        hub.list(
            StateSet::all(),
            filter,
            false,
            &mut |_| {
                some += 1;
                Ok(())
            },
            &mut |e| panic!("{e}"),
        )
        .unwrap();
        assert_eq!(some, 250);
        let mut none = 0;
        hub.list(
            StateSet::only(State::Established),
            SsFilter::default(),
            false,
            &mut |_| {
                none += 1;
                Ok(())
            },
            &mut |e| panic!("{e}"),
        )
        .unwrap();
        assert_eq!(none, 0);
        assert_eq!(hub.sysctl_get("tcp_syn_retries").unwrap().value, "6");
        assert_eq!(hub.sysctl_set("tcp_syn_retries", "3").unwrap().value, "3");
        assert!(hub.sysctl_set("mtu", "9000").is_err());
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();
        assert_eq!(hub.sysctl_get("tcp_syn_retries"), Err(HubError::WorkerGone(0)));
    }

    /// A large TIME_WAIT table lists every record exactly once through many resumed batches, also when records
    /// come and go between batches (those that live throughout must all appear, none twice).
    #[test]
    fn timewait_listing_is_resumable_and_complete() {
        use std::collections::HashSet;
        let now = Instant::from_secs(1);
        let ttl = Duration::from_secs(60);
        let local = |i: u32| SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80 + (i >> 24) as u16);
        let remote = |i: u32| {
            SocketAddrV4::new(Ipv4Addr::new(198, 19, (i >> 16) as u8, (i >> 8) as u8), 1024 + (i & 0xff) as u16)
        };
        let n = 100_000u32;
        let mut engine = Engine::new(Config::default(), now, 7);
        for i in 0..n {
            engine.insert_timewait_for_test(local(i), remote(i), ttl);
        }
        assert_eq!(engine.connection_count().1, n as usize);
        let query = ListQuery { states: StateSet::only(State::TimeWait), filter: SsFilter::default(), info: false };
        let mut seen = HashSet::new();
        let mut batches = 0;
        let mut cursor = Some(ListCursor::Listeners);
        while let Some(c) = cursor {
            let batch = list_batch(0, &engine, &query, c);
            assert!(batch.records.len() <= BATCH_RECORDS);
            for r in batch.records {
                assert!(seen.insert((r.local, r.remote)), "{} listed twice", r.remote);
            }
            cursor = batch.next;
            batches += 1;
            // Churn between batches: drop a record far ahead of the cursor and add new ones (which reuse freed
            // slots, possibly behind the cursor).
            if batches % 50 == 0 {
                let victim = n - batches as u32;
                assert!(engine.remove_timewait_for_test(local(victim), remote(victim)));
                // A new record (another local port) that may reuse the freed slot.
                let fresh = batches as u32 | 1 << 24;
                engine.insert_timewait_for_test(local(fresh), remote(fresh), ttl);
            }
            assert!(batches < 10 * n as usize / BATCH_RECORDS, "listing does not progress");
        }
        let removed: HashSet<u32> = (1..=batches as u32 / 50).map(|k| n - 50 * k).collect();
        for i in (0..n).filter(|i| !removed.contains(i)) {
            assert!(seen.contains(&(local(i), remote(i))), "{} missed", remote(i));
        }
        assert!(batches >= n as usize / BATCH_RECORDS);
        // Unchanged table: exactly n records, through the hub as `ss` asks it, with a filter too.
        let mut engine = Engine::new(Config::default(), now, 7);
        for i in 0..n {
            engine.insert_timewait_for_test(local(i), remote(i), ttl);
        }
        let hub = ControlHub::new();
        let wc = hub.register_worker(LinkType::RawIpv4);
        let (stop, worker) = service_in_background(wc, engine, now);
        let mut all = HashSet::new();
        let t0 = std::time::Instant::now();
        let count = hub
            .list(
                StateSet::all(),
                SsFilter::default(),
                false,
                &mut |r| {
                    assert_eq!(r.state, "TIME-WAIT");
                    assert!(all.insert(r.remote), "{} listed twice", r.remote);
                    Ok(())
                },
                &mut |e| panic!("{e}"),
            )
            .unwrap();
        assert_eq!((count, all.len()), (n as u64, n as usize));
        // A figure for the record, not an assertion: the whole table through the hub, batch by batch.
        eprintln!("listed {n} TIME_WAIT records in {:?}", t0.elapsed());
        let mut some = 0;
        let filter = SsFilter::parse("dst 198.19.1.0/24 and dport = :1030").unwrap();
        hub.list(
            StateSet::only(State::TimeWait),
            filter,
            false,
            &mut |_| {
                some += 1;
                Ok(())
            },
            &mut |e| panic!("{e}"),
        )
        .unwrap();
        let expected = (0..n).filter(|&i| (i >> 16) & 0xff == 1 && i & 0xff == 6).count();
        assert!(expected > 100);
        assert_eq!(some, expected);
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();
    }
}
