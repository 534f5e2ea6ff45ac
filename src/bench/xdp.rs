//! The generator on xdptcp itself: the AF_XDP datapath and worker of `xdptcp serve`, set up the same way (XDP
//! program owning our address, one AF_XDP socket per queue, one pinned worker per queue), with [`BenchApp`] as the
//! application. Active opens use any number of source ports: the program owns every TCP segment to our address.
//!
//! The loop around [`Worker::poll_once`] is the bench's own: a load generator must not sleep in `poll()` while a
//! paced request is due (the server loop sleeps up to 5 ms when idle), so it spins on its dedicated core.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};

use super::engine_app::{client_config, BenchApp, Outbox};
use super::stats::{Progress, WorkerStats};
use super::{Clock, Workload};
use crate::cli::serve::parse_addr;
use crate::stack::handoff::{self, MeshProbe};
use crate::stack::steer::{Owners, SteeringMode};
use crate::tcp::Counter;
use crate::tcp::{Counters, Engine};
use crate::time::MonotonicClock;
use crate::worker::run::Sharding;
use crate::worker::{Datapath, NeighConfig, NeighbourShare, NetConfig, Worker};
use crate::xdp::ring::XskRings;
use crate::xdp::{Interface, RingConfig, XdpMode, XdpProgram, XskRsRings};

/// How long the connections get to close after the run (FINs out, last ACKs in).
const DRAIN: Duration = Duration::from_secs(2);
/// Longest a finished worker keeps serving its queue for workers still running (a bound, should one hang).
const HANDOFF_WAIT: Duration = Duration::from_secs(60);

/// Where the AF_XDP client lives.
#[derive(Clone, Debug)]
pub struct XdpOptions {
    pub iface: String,
    /// `IP[/PREFIX]`: our own address, not configured in the kernel on `iface`.
    pub addr: String,
    pub gateway: Option<Ipv4Addr>,
    /// Cores to pin the workers to (one worker per queue, queues 0..n).
    pub cores: Vec<usize>,
    pub xdp_mode: XdpMode,
    pub frames: u32,
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

/// The interface, the attached program and one datapath per queue.
pub struct XdpSetup {
    pub program: XdpProgram,
    pub iface: Interface,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    pub datapaths: Vec<(u32, Datapath<XskRsRings>)>,
    pub mode: XdpMode,
}

impl XdpSetup {
    /// Loads the program, owns `addr` (ARP, ping, all TCP to it), creates `queues` AF_XDP sockets and attaches.
    pub fn new(o: &XdpOptions, queues: usize) -> anyhow::Result<XdpSetup> {
        let (addr, prefix_len) = parse_addr(&o.addr)?;
        let iface = Interface::lookup(&o.iface)?;
        if iface.kernel_ipv4_addrs()?.contains(&addr) {
            bail!(
                "{addr} is configured in the kernel on {}: the xdptcp client needs an address of its own there \
                 (or use --kernel to run on kernel sockets)",
                iface.name
            );
        }
        if let Some(gw) = o.gateway {
            let net = NetConfig { addr, prefix_len, gateway: None, mac: iface.mac, mtu: 0 };
            if !net.on_link(gw) {
                bail!("gateway {gw} is not on {addr}/{prefix_len}");
            }
        }
        let list = o.queue_list(queues);
        if queues == 0 || list.len() != queues || list.iter().any(|&q| q >= iface.rx_queues) {
            bail!(
                "{} has {} receive queue(s); {queues} worker(s) on queues {list:?} do not fit",
                iface.name,
                iface.rx_queues
            );
        }
        let mtu = Engine::new(client_config(), crate::time::Instant::ZERO, 0).config().mtu.min(iface.mtu);
        let mut program = XdpProgram::load()?;
        program.add_local_addr(addr, true)?;
        let ring_cfg = RingConfig { frame_count: o.frames, ..Default::default() };
        let mut shares = NeighbourShare::mesh(queues);
        let mut datapaths = Vec::new();
        for &q in &list {
            let rings = XskRsRings::create(&iface.name, q, &ring_cfg)?;
            program.register_socket(q, rings.fd())?;
            let net = NetConfig { addr, prefix_len, gateway: o.gateway, mac: iface.mac, mtu: mtu as usize };
            let mut dp = Datapath::new(rings, net, ring_cfg.fill_size as usize, NeighConfig::default())?;
            dp.share_neighbours(shares.remove(0));
            datapaths.push((q, dp));
        }
        let mode = program.attach(iface.index, o.xdp_mode)?;
        Ok(XdpSetup { program, iface, addr, prefix_len, mtu, datapaths, mode })
    }

    /// Who owns which connection for `queues` > 1 workers, and why `auto` fell back to the hash if it did.
    pub fn owners(
        &self,
        mode: SteeringMode,
        rss_key: Option<&str>,
    ) -> anyhow::Result<Option<(Owners, Option<String>)>> {
        if self.datapaths.len() <= 1 {
            return Ok(None);
        }
        let qs: Vec<u32> = self.datapaths.iter().map(|(q, _)| *q).collect();
        Owners::for_interface(&self.iface.name, &qs, mode, rss_key).map(Some).map_err(|e| anyhow::anyhow!(e))
    }

    /// Detaches the program (the interface is left as found).
    pub fn detach(mut self, queues: &[u32]) {
        for &q in queues {
            let _ = self.program.unregister_socket(q);
        }
        self.program.detach();
    }
}

/// A running AF_XDP client.
pub struct XdpClient {
    /// The attached program (its datapaths moved to the workers).
    setup: Option<XdpSetup>,
    workers: Vec<std::thread::JoinHandle<Counters>>,
    /// The hand-off rings (several workers), to count what was left in them.
    mesh: Option<MeshProbe>,
    queues: Vec<u32>,
    outboxes: Vec<Outbox>,
    pub progress: Vec<Arc<Progress>>,
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
        if !o.cores.is_empty() && o.cores.len() < n {
            bail!("{n} workers need {n} cores, --cores lists {}", o.cores.len());
        }
        let mut setup = XdpSetup::new(o, n)?;
        let owners = setup.owners(o.steering, o.rss_key.as_deref())?;
        let queue_list = o.queue_list(n);
        let mut config = client_config();
        config.mtu = setup.mtu;
        let mut steering = String::new();
        let (mut shards, mesh) = match owners {
            Some((owners, fallback)) => {
                if let Some(why) = fallback {
                    steering = format!(" ({why})");
                }
                steering = format!(", {}{steering}", owners.describe());
                let (rings, probe) = handoff::mesh(n, handoff::DEFAULT_SLOTS, setup.iface.mtu as usize)
                    .context("creating the hand-off rings")?;
                let owners = Arc::new(owners);
                (rings.into_iter().map(|r| Some((owners.clone(), r))).collect::<Vec<_>>(), Some(probe))
            }
            None => (Vec::new(), None),
        };
        let banner = format!(
            "xdptcp bench: AF_XDP client {}/{} on {} ({} mode), {n} worker(s){steering}",
            setup.addr, setup.prefix_len, setup.iface.name, setup.mode
        );
        let mut workers = Vec::new();
        let mut outboxes = Vec::new();
        let mut progress = Vec::new();
        for (i, ((q, dp), w)) in setup.datapaths.drain(..).zip(workloads).enumerate() {
            let mclock = MonotonicClock::new();
            let mut engine = Engine::new(config.clone(), mclock.now(), rand::random());
            // Active opens pick source ports whose replies this worker owns.
            let sharding = shards.get_mut(i).and_then(Option::take).map(|(o, r)| Sharding::new(o, r, &mut engine));
            let p = Arc::new(Progress::default());
            let outbox: Outbox = Arc::new(Mutex::new(None));
            let app = BenchApp::new(w, setup.addr, clock, p.clone(), outbox.clone(), go.clone());
            let mut worker = Worker::new(dp, engine, Box::new(app), mclock);
            worker.handoff = sharding;
            let core = o.cores.get(i).copied();
            let (stop, p2) = (stop.clone(), p.clone());
            let h = std::thread::Builder::new()
                .name(format!("xdptcp-bench-q{q}"))
                .spawn(move || {
                    if let Some(c) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                            tracing::warn!("could not pin the bench worker of queue {q} to core {c}");
                        }
                    }
                    drive(worker, &stop, &p2, mclock)
                })
                .context("spawning a bench worker")?;
            workers.push(h);
            outboxes.push(outbox);
            progress.push(p);
        }
        Ok(XdpClient { setup: Some(setup), workers, mesh, queues: queue_list, outboxes, progress, banner })
    }

    /// Waits for the workers, detaches the program, returns each worker's results and its engine counters.
    pub fn wait(mut self) -> anyhow::Result<(Vec<WorkerStats>, Counters)> {
        let mut counters = Counters::default();
        let mut failed = 0;
        for (i, h) in self.workers.drain(..).enumerate() {
            match h.join() {
                Ok(mut c) => {
                    // Handed to this worker after it stopped: never delivered.
                    if let Some(m) = &self.mesh {
                        c.add(Counter::HandoffDrop, m.queued_for(i));
                    }
                    counters.merge(&c)
                }
                Err(_) => failed += 1,
            }
        }
        if let Some(setup) = self.setup.take() {
            setup.detach(&self.queues);
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
