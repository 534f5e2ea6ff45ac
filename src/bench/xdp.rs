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
use crate::stack::rss::{read_nic_rss, RssSteering, Toeplitz};
use crate::tcp::{Counters, Engine};
use crate::time::MonotonicClock;
use crate::worker::{Datapath, NeighConfig, NeighbourShare, NetConfig, Worker};
use crate::xdp::ring::XskRings;
use crate::xdp::{AnyRings, Interface, RingConfig, RingsKind, XdpMode, XdpProgram, XskBind};

/// How long the connections get to close after the run (FINs out, last ACKs in).
const DRAIN: Duration = Duration::from_secs(2);

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
    pub rings: RingsKind,
    pub xsk_bind: XskBind,
}

/// The interface, the attached program and one datapath per queue.
pub struct XdpSetup {
    pub program: XdpProgram,
    pub iface: Interface,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    pub datapaths: Vec<(u32, Datapath<AnyRings>)>,
    pub mode: XdpMode,
    /// What the rings are (for the banner).
    pub rings: String,
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
        if queues == 0 || queues as u32 > iface.rx_queues {
            bail!("{} has {} receive queue(s); {queues} worker(s) need as many", iface.name, iface.rx_queues);
        }
        let mtu = Engine::new(client_config(), crate::time::Instant::ZERO, 0).config().mtu.min(iface.mtu);
        let mut program = XdpProgram::load()?;
        program.add_local_addr(addr, true)?;
        let ring_cfg = RingConfig { frame_count: o.frames, bind: o.xsk_bind, ..Default::default() };
        let mut shares = NeighbourShare::mesh(queues);
        let mut datapaths = Vec::new();
        let mut rings_desc = String::new();
        for q in 0..queues as u32 {
            let rings = AnyRings::create(o.rings, &iface.name, q, &ring_cfg)?;
            if rings_desc.is_empty() {
                rings_desc = rings.describe();
            }
            program.register_socket(q, rings.fd())?;
            let net = NetConfig { addr, prefix_len, gateway: o.gateway, mac: iface.mac, mtu: mtu as usize };
            let mut dp = Datapath::new(rings, net, ring_cfg.fill_size as usize, NeighConfig::default())?;
            dp.share_neighbours(shares.remove(0));
            datapaths.push((q, dp));
        }
        let mode = program.attach(iface.index, o.xdp_mode)?;
        Ok(XdpSetup { program, iface, addr, prefix_len, mtu, datapaths, mode, rings: rings_desc })
    }

    /// RSS steering for `queues` > 1, so replies to our active opens arrive on the queue of the worker that opened.
    pub fn steering(&self, queues: usize) -> anyhow::Result<Option<RssSteering>> {
        if queues <= 1 {
            return Ok(None);
        }
        let (key, table) = read_nic_rss(&self.iface.name).with_context(|| {
            format!("{} does not report its RSS hash (ethtool -x); run the xdptcp client on one core", self.iface.name)
        })?;
        let key: [u8; 40] = key.get(..40).and_then(|k| k.try_into().ok()).context("RSS key shorter than 40 bytes")?;
        let indirection = table.iter().map(|&q| q as u16).collect();
        Ok(Some(RssSteering { toeplitz: Toeplitz::new(key), indirection }))
    }

    /// Detaches the program (the interface is left as found).
    pub fn detach(mut self, queues: usize) {
        for q in 0..queues as u32 {
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
        let steering = setup.steering(n)?;
        let mut config = client_config();
        config.mtu = setup.mtu;
        let banner = format!(
            "xdptcp bench: AF_XDP client {}/{} on {} ({} mode, {}), {n} worker(s)",
            setup.addr, setup.prefix_len, setup.iface.name, setup.mode, setup.rings
        );
        let mut workers = Vec::new();
        let mut outboxes = Vec::new();
        let mut progress = Vec::new();
        for (i, ((q, dp), w)) in setup.datapaths.drain(..).zip(workloads).enumerate() {
            let mclock = MonotonicClock::new();
            let mut engine = Engine::new(config.clone(), mclock.now(), rand::random());
            if let Some(s) = &steering {
                engine.set_rss_steering(s.clone(), q as u16);
            }
            let p = Arc::new(Progress::default());
            let outbox: Outbox = Arc::new(Mutex::new(None));
            let app = BenchApp::new(w, setup.addr, clock, p.clone(), outbox.clone(), go.clone());
            let worker = Worker::new(dp, engine, Box::new(app), mclock);
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
        Ok(XdpClient { setup: Some(setup), workers, outboxes, progress, banner })
    }

    /// Waits for the workers, detaches the program, returns each worker's results and its engine counters.
    pub fn wait(mut self) -> anyhow::Result<(Vec<WorkerStats>, Counters)> {
        let mut counters = Counters::default();
        let mut failed = 0;
        for h in self.workers.drain(..) {
            match h.join() {
                Ok(c) => counters.merge(&c),
                Err(_) => failed += 1,
            }
        }
        if let Some(setup) = self.setup.take() {
            setup.detach(self.outboxes.len());
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
                    break;
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
