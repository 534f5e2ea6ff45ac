//! A server on a built stack: one worker per queue running an [`AppSpec`] (as callbacks on the workers, or on app
//! threads of its own), listening on some ports, until a stop flag; then an orderly drain and a report. This is
//! what `xdptcp serve` runs.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;

use super::{spawn_pinned, Host, HostBuilder};
use crate::app::threaded::{Hub, HubConfig};
use crate::app::AppSpec;
use crate::tcp::{Counter, Counters};
use crate::xdp::{KernelStats, SteerStats};

/// What the server runs on the stack.
#[derive(Clone, Debug)]
pub struct ServeSpec {
    /// The application.
    pub app: AppSpec,
    /// Ports to listen on (the same on every worker).
    pub listen: Vec<u16>,
    /// Accept-queue length of each listener.
    pub backlog: u32,
    /// Listening ports whose connections the app is never told about (their accept queues fill).
    pub hold_accept: Vec<u16>,
    /// Run the app on this many threads of its own (0: as callbacks on the workers).
    pub app_threads: usize,
    /// With app threads: bytes of each connection's ring, each direction.
    pub app_ring: usize,
    /// With app threads: cores to pin them to, round-robin (empty: unpinned).
    pub app_cores: Vec<usize>,
    /// How long connections get to close on shutdown.
    pub drain: Duration,
}

/// What a finished server reports.
pub struct Report {
    /// Every worker's counters, summed.
    pub counters: Counters,
    /// Each worker's own counters and its socket's kernel counters, by queue.
    pub per_queue: Vec<(u32, Counters, Option<KernelStats>)>,
    /// What the XDP program steered where.
    pub steer: SteerStats,
    /// With app threads: (app unparks, worker wakes, app parks, connections handed over).
    pub app_stats: Option<(u64, u64, u64, u64)>,
    /// The pcap file and how its capture went.
    pub pcap: Option<(PathBuf, Result<crate::control::CaptureSummary, String>)>,
}

/// A worker thread; it returns its counters and its socket's kernel counters.
type WorkerHandle = std::thread::JoinHandle<(Counters, Option<KernelStats>)>;

/// A running server: the stack and the worker (and app) threads.
pub struct Server {
    host: Host,
    workers: Vec<(u32, WorkerHandle)>,
    /// App threads; they end once the workers closed the hub.
    app_threads: Vec<std::thread::JoinHandle<()>>,
    app_hub: Option<Arc<Hub>>,
    snapshots: Vec<Arc<Mutex<Counters>>>,
    banner: String,
}

impl Server {
    /// Builds the stack and starts the workers; they run until `stop` is set.
    pub fn start(builder: HostBuilder, spec: &ServeSpec, stop: Arc<AtomicBool>) -> anyhow::Result<Server> {
        if let Some(p) = spec.hold_accept.iter().find(|p| !spec.listen.contains(p)) {
            bail!("--hold-accept {p}: not a --listen port");
        }
        let (host, queues) = builder.listen(&spec.listen).build()?;
        let mut app_threads = Vec::new();
        let mut bridges = Vec::new();
        let mut app_hub = None;
        if spec.app_threads > 0 {
            let cfg = HubConfig { ring: spec.app_ring, nodelay: spec.app == AppSpec::Http, ..Default::default() };
            let (hub, b) = Hub::new(queues.len(), cfg)?;
            bridges = b;
            app_hub = Some(hub.clone());
            for i in 0..spec.app_threads {
                let (hub, app) = (hub.clone(), spec.app.clone());
                let core = spec.app_cores.get(i % spec.app_cores.len().max(1)).copied();
                app_threads.push(spawn_pinned(core, format!("xdptcp-app{i}"), move || {
                    crate::app::threaded::apps::serve(&hub, &app);
                })?);
            }
        }
        let mut bridges = bridges.into_iter();
        let mut workers = Vec::new();
        let mut snapshots = Vec::new();
        for qw in queues {
            let app: Box<dyn crate::app::App> = match bridges.next() {
                Some(b) => Box::new(b),
                None => spec.app.build(),
            };
            let (q, core) = (qw.queue, qw.core);
            let mut worker = qw.into_worker(app);
            for &port in &spec.listen {
                let l = worker.listen(port, spec.backlog).map_err(|e| anyhow::anyhow!("listen on port {port}: {e}"))?;
                if spec.hold_accept.contains(&port) {
                    worker.hold_accept(l);
                }
            }
            snapshots.push(worker.published.clone());
            let (stop, drain) = (stop.clone(), spec.drain);
            workers.push((q, spawn_pinned(core, format!("xdptcp-q{q}"), move || worker.run(&stop, drain))?));
        }
        let model =
            if spec.app_threads > 0 { format!(" on {} app thread(s)", spec.app_threads) } else { String::new() };
        let steering = match &host.steering {
            Some((owners, fallback)) => {
                if let Some(why) = fallback {
                    eprintln!("xdptcp: {why}: steering by hash, packets landing on another worker are handed off");
                }
                format!(", {owners}")
            }
            None => String::new(),
        };
        let banner = format!(
            "xdptcp: serving {}{model} on {} {}/{} port(s) {:?}, queues {:?}{steering}, XDP {} mode, {}, control \
             socket `{}`, ready",
            spec.app.name(),
            host.iface.name,
            host.addr(),
            host.prefix_len,
            spec.listen,
            host.queues,
            host.mode,
            host.rings,
            host.control_name.as_deref().unwrap_or("none"),
        );
        Ok(Server { host, workers, app_threads, app_hub, snapshots, banner })
    }

    /// One line saying what runs where (ends in "ready": tests and scripts wait for it).
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// Counters summed over the workers' latest snapshots.
    pub fn counters(&self) -> Counters {
        let mut sum = Counters::default();
        for s in &self.snapshots {
            if let Ok(c) = s.lock() {
                sum.merge(&c);
            }
        }
        sum
    }

    /// Waits for every worker to finish (they do after the stop flag), detaches the program, reports.
    pub fn wait(mut self) -> anyhow::Result<Report> {
        let mut counters = Counters::default();
        let mut per_queue = Vec::new();
        let mut failed = Vec::new();
        let mut failed_apps = 0;
        for (i, (q, h)) in self.workers.drain(..).enumerate() {
            match h.join() {
                Ok((mut c, k)) => {
                    // Handed to this worker after it stopped: never delivered.
                    c.add(Counter::HandoffDrop, self.host.handoff_queued(i));
                    counters.merge(&c);
                    per_queue.push((q, c, k));
                }
                Err(_) => failed.push(q),
            }
        }
        // The workers closed it on their way out; again here in case one panicked first.
        if let Some(hub) = &self.app_hub {
            hub.close();
        }
        for h in self.app_threads.drain(..) {
            if h.join().is_err() {
                failed_apps += 1;
            }
        }
        // Every worker has stopped: what their capture rings hold is the end of the file.
        let finished = self.host.finish();
        if !failed.is_empty() {
            bail!("worker(s) of queue(s) {failed:?} panicked");
        }
        if failed_apps > 0 {
            bail!("{failed_apps} app thread(s) panicked");
        }
        let app_stats = self.app_hub.as_ref().map(|h| crate::app::threaded::stats_snapshot(h));
        Ok(Report { counters, per_queue, steer: finished.steer, app_stats, pcap: finished.pcap })
    }
}
