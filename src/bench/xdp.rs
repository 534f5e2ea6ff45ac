//! The generator on xdptcp itself: the AF_XDP datapath and worker of `xdptcp serve`, set up the same way (XDP
//! program owning our address, one AF_XDP socket per queue, one pinned worker per queue), with [`BenchApp`] as the
//! application. Active opens use any number of source ports: the program owns every TCP segment to our address.
//!
//! The loop around [`Worker::poll_once`] is the bench's own: a load generator must not sleep in `poll()` while a
//! paced request is due (the server loop sleeps up to 5 ms when idle), so it spins on its dedicated core.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};

use super::engine_app::{client_config, BenchApp, Outbox};
use super::stats::{Progress, WorkerStats};
use super::{Clock, Workload};
use crate::host::{spawn_pinned, Host, HostBuilder, PcapOptions, Pinning};
use crate::stack::steer::SteeringMode;
use crate::tcp::{Config, Counter, Counters};
use crate::time::MonotonicClock;
use crate::worker::{Datapath, Worker};
use crate::xdp::{AnyRings, RingsKind, XdpMode, XskBind, XskRings};

/// How long the connections get to close after the run (FINs out, last ACKs in).
const DRAIN: Duration = Duration::from_secs(2);
/// Longest a finished worker keeps serving its queue for workers still running (a bound, should one hang).
const HANDOFF_WAIT: Duration = Duration::from_secs(60);

/// Where the AF_XDP client lives.
#[derive(Clone, Debug)]
pub struct XdpOptions {
    pub iface: String,
    /// `IP[-LAST][/PREFIX]`: our own address, or a range of them (connections take them in turn: one source
    /// address gives at most ~64k four-tuples per server port), not configured in the kernel on `iface`.
    pub addr: String,
    pub gateway: Option<Ipv4Addr>,
    /// Cores to pin the workers to (one worker per queue, queues 0..n).
    pub cores: Vec<usize>,
    pub xdp_mode: XdpMode,
    pub frames: u32,
    /// Control socket name (`xdptcp stat/ss/sysctl/capture/log --name`); `None` serves none.
    pub control_name: Option<String>,
    /// Write every frame of the run into this pcapng file (bounded rings: drops counted, never a stall).
    pub pcap: Option<PathBuf>,
    pub rings: RingsKind,
    pub xsk_bind: XskBind,
    /// Who owns a connection with several workers (see `xdptcp serve --steering`).
    pub steering: SteeringMode,
    /// Queues to run the workers on, one each (default 0..workers).
    pub queues: Vec<u32>,
    /// A configured RSS key (see `xdptcp serve --rss-key`).
    pub rss_key: Option<String>,
}

impl XdpOptions {
    /// The queue of each of `workers` workers.
    pub fn queue_list(&self, workers: usize) -> Vec<u32> {
        if self.queues.is_empty() {
            (0..workers as u32).collect()
        } else {
            self.queues.clone()
        }
    }
}

impl XdpOptions {
    /// The stack of `workers` workers these options describe, with `config` for the engines.
    pub fn builder(&self, workers: usize, config: Config) -> anyhow::Result<HostBuilder> {
        let pinning = if self.cores.is_empty() {
            Pinning::Unpinned
        } else if self.cores.len() < workers {
            bail!("{workers} workers need {workers} cores, --cores lists {}", self.cores.len());
        } else {
            Pinning::Cores(self.cores[..workers].to_vec())
        };
        let queues = self.queue_list(workers);
        if queues.len() != workers {
            bail!("{workers} worker(s) on queues {queues:?} do not fit");
        }
        Ok(HostBuilder::new(&self.iface, &self.addr)?
            .gateway(self.gateway)
            .queues(queues)
            .pinning(pinning)
            .rings(self.rings, self.xsk_bind)
            .frames(self.frames)
            .xdp_mode(self.xdp_mode)
            .steering(self.steering, self.rss_key.clone())
            .control(self.control_name.clone())
            .pcap(self.pcap.clone().map(|path| PcapOptions {
                path,
                filter: Default::default(),
                snaplen: crate::control::DEFAULT_SNAPLEN,
            }))
            .config(config)
            .kernel_addr_hint(
                "The xdptcp client needs addresses of its own (or use --kernel to run on kernel sockets).",
            ))
    }

    /// One worker's stack on queue 0 (or the first listed) for the raw-frame tools: its datapath and the host.
    pub fn single(&self) -> anyhow::Result<(Host, Datapath<AnyRings>)> {
        let (host, mut queues) = self.builder(1, client_config())?.build()?;
        let dp = queues.pop().context("one queue")?.into_datapath();
        Ok((host, dp))
    }
}

/// A running AF_XDP client.
pub struct XdpClient {
    /// The stack (its datapaths moved to the workers).
    host: Host,
    workers: Vec<std::thread::JoinHandle<Counters>>,
    outboxes: Vec<Outbox>,
    /// Each worker's live progress.
    pub progress: Vec<Arc<Progress>>,
    /// What runs where.
    pub banner: String,
}

impl XdpClient {
    /// Sets everything up and starts one worker per workload; the generators start when `go` is set and stop
    /// when `stop` is (or their request limit is reached).
    pub fn start(
        o: &XdpOptions,
        workloads: Vec<Workload>,
        clock: Clock,
        stop: Arc<AtomicBool>,
        go: Arc<AtomicBool>,
    ) -> anyhow::Result<XdpClient> {
        let n = workloads.len();
        let (host, queues) = o.builder(n, client_config())?.build()?;
        let steering = match &host.steering {
            Some((owners, Some(why))) => format!(", {owners} ({why})"),
            Some((owners, None)) => format!(", {owners}"),
            None => String::new(),
        };
        let mut banner = format!(
            "xdptcp bench: AF_XDP client {}{}/{} on {} ({} mode, {}), {n} worker(s){steering}",
            host.addr(),
            match host.addrs.last() {
                Some(last) if host.addrs.len() > 1 => format!("-{last} ({} source addresses)", host.addrs.len()),
                _ => String::new(),
            },
            host.prefix_len,
            host.iface.name,
            host.mode,
            host.rings
        );
        if let Some(name) = &o.control_name {
            banner.push_str(&format!(", control socket `{name}`"));
        }
        let mut workers = Vec::new();
        let mut outboxes = Vec::new();
        let mut progress = Vec::new();
        for (qw, w) in queues.into_iter().zip(workloads) {
            let p = Arc::new(Progress::default());
            let outbox: Outbox = Arc::new(Mutex::new(None));
            let app = BenchApp::new(w, host.addrs.clone(), clock, p.clone(), outbox.clone(), go.clone());
            let (q, core, mclock) = (qw.queue, qw.core, qw.clock());
            let worker = qw.into_worker(Box::new(app));
            let (stop, p2) = (stop.clone(), p.clone());
            workers.push(spawn_pinned(core, format!("xdptcp-bench-q{q}"), move || drive(worker, &stop, &p2, mclock))?);
            outboxes.push(outbox);
            progress.push(p);
        }
        Ok(XdpClient { host, workers, outboxes, progress, banner })
    }

    /// Waits for the workers, detaches the program, returns each worker's results and its engine counters.
    pub fn wait(mut self) -> anyhow::Result<(Vec<WorkerStats>, Counters)> {
        let mut counters = Counters::default();
        let mut failed = 0;
        for (i, h) in self.workers.drain(..).enumerate() {
            match h.join() {
                Ok(mut c) => {
                    // Handed to this worker after it stopped: never delivered.
                    c.add(Counter::HandoffDrop, self.host.handoff_queued(i));
                    counters.merge(&c)
                }
                Err(_) => failed += 1,
            }
        }
        let finished = self.host.finish();
        if let Some((path, pcap)) = finished.pcap {
            match pcap {
                Ok(s) => eprintln!(
                    "xdptcp bench: {}: {} frames written, {} matched, {} dropped by ring",
                    path.display(),
                    s.written,
                    s.matched,
                    s.dropped
                ),
                Err(e) => eprintln!("xdptcp bench: {}: {e}", path.display()),
            }
        }
        if failed > 0 {
            bail!("{failed} bench worker(s) panicked");
        }
        let stats = self.outboxes.iter().filter_map(|o| o.lock().ok().and_then(|mut s| s.take())).collect();
        Ok((stats, counters))
    }
}

/// The bench worker loop: poll (events, `on_tick`, transmit) without ever sleeping while the run is on; then an
/// orderly end (the app closes its connections) and a bounded drain.
fn drive<R: XskRings>(
    mut worker: Worker<R>,
    stop: &AtomicBool,
    progress: &Progress,
    clock: MonotonicClock,
) -> Counters {
    worker.dp.announce();
    let mut draining_until = None;
    loop {
        let now = clock.now();
        let work = worker.poll_once(now);
        match draining_until {
            None if stop.load(Ordering::Relaxed) || progress.is_done() => {
                worker.app.shutdown(&mut worker.engine, now);
                draining_until = Some(now + DRAIN);
            }
            None => {}
            Some(until) => {
                let (live, _) = worker.engine.connection_count();
                if (live == 0 && worker.dp.tx_outstanding() == 0) || now >= until {
                    // Replies to the other workers' connections still land on our queue: serve it (handing
                    // them over) until every worker is done (workers finish their share at different times).
                    match worker.handoff.as_mut() {
                        Some(h) if !h.rings.all_finished() && now < until + HANDOFF_WAIT => h.rings.finish(),
                        Some(h) => {
                            h.rings.finish();
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
        if work == 0 {
            std::hint::spin_loop();
        }
    }
    // Whatever is still queued goes out before the socket closes (bounded).
    for _ in 0..100 {
        if worker.dp.tx_outstanding() == 0 {
            break;
        }
        worker.dp.flush();
        worker.dp.reclaim();
        std::thread::sleep(Duration::from_micros(200));
    }
    worker.dp.take_counters(worker.engine.counters_mut());
    worker.engine.counters().clone()
}
