//! The composition root: the one place a running stack is assembled from an interface, addresses and settings.
//!
//! [`HostBuilder::build`] does, in this order: refuse an address the kernel also has on the interface, check the
//! gateway is on-link, load the XDP program and give it our addresses (and listening ports), per queue create the
//! AF_XDP rings, register the socket and build a [`Datapath`] sharing one neighbour table, attach the program, set
//! up steering and the hand-off mesh between several workers, bind the control socket (and metrics, pcap), and
//! make one [`Engine`] per queue. It returns the [`Host`] (what lives as long as the stack: program, control
//! socket, capture file) and one [`QueueWorker`] per queue, which becomes a [`Worker`] running an [`App`]; run it
//! on a thread of its own with [`spawn_pinned`].
//!
//! Owns: the order of those steps and the teardown ([`Host::finish`]). Must not touch: what runs on the workers
//! (the worker loop is `worker`'s, the apps are `app`'s and `bench`'s) and the command line (`cli` calls this).

pub mod addr;
pub mod server;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};

pub use addr::{parse_addr, parse_addr_range, MAX_SOURCE_ADDRS};

use crate::app::App;
use crate::control::{CaptureFilter, CaptureSummary, ControlHub, ControlServer, LinkType, PcapFile, WorkerControl};
use crate::stack::handoff::{self, MeshProbe};
use crate::stack::steer::{Owners, SteeringMode};
use crate::tcp::{Config, Engine};
use crate::time::MonotonicClock;
use crate::worker::run::Sharding;
use crate::worker::{Datapath, NeighConfig, NeighbourShare, NetConfig, Worker};
use crate::xdp::{
    set_busy_poll, AnyRings, BusyPoll, Interface, RingConfig, RingsKind, SteerStats, XdpMode, XdpProgram, XskBind,
    XskRings,
};

/// Where the worker threads run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Pinning {
    /// Unpinned: the scheduler decides.
    Unpinned,
    /// Worker `i` on core `cores[i]` (one core per queue).
    Cores(Vec<usize>),
    /// The available cores, round-robin in queue order.
    #[default]
    Auto,
}

/// A whole-run capture into a pcapng file (bounded rings per worker: a slow disk costs dropped frames, counted).
#[derive(Clone, Debug)]
pub struct PcapOptions {
    /// The file to write.
    pub path: PathBuf,
    /// Which frames (tcpdump syntax subset, as `xdptcp capture`).
    pub filter: CaptureFilter,
    /// Bytes kept of each frame (0: whole frames).
    pub snaplen: u32,
}

/// How to assemble a stack on an interface; [`build`](HostBuilder::build) does it.
#[derive(Clone, Debug)]
pub struct HostBuilder {
    iface: String,
    addrs: Vec<Ipv4Addr>,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
    queues: Vec<u32>,
    pinning: Pinning,
    rings: RingsKind,
    xsk_bind: XskBind,
    frames: u32,
    xdp_mode: XdpMode,
    busy_poll: Option<BusyPoll>,
    steering: SteeringMode,
    rss_key: Option<String>,
    control_name: Option<String>,
    metrics: Option<String>,
    pcap: Option<PcapOptions>,
    config: Config,
    listen: Vec<u16>,
    kernel_addr_hint: String,
}

impl HostBuilder {
    /// A stack on interface `iface` owning `addr`: `IP[-LAST][/PREFIX]`, one address or a range (connections may
    /// use any of them as source address), none of them configured in the kernel on `iface`.
    pub fn new(iface: &str, addr: &str) -> anyhow::Result<HostBuilder> {
        let (addrs, prefix_len) = parse_addr_range(addr)?;
        Ok(HostBuilder {
            iface: iface.to_string(),
            addrs,
            prefix_len,
            gateway: None,
            queues: Vec::new(),
            pinning: Pinning::Auto,
            rings: RingsKind::Raw,
            xsk_bind: XskBind::Auto,
            frames: RingConfig::default().frame_count,
            xdp_mode: XdpMode::Auto,
            busy_poll: None,
            steering: SteeringMode::Auto,
            rss_key: None,
            control_name: None,
            metrics: None,
            pcap: None,
            config: Config::default(),
            listen: Vec::new(),
            kernel_addr_hint: "Remove it or pick another address.".into(),
        })
    }

    /// Next hop for destinations off the local subnet (must be on it).
    pub fn gateway(mut self, gateway: Option<Ipv4Addr>) -> Self {
        self.gateway = gateway;
        self
    }
    /// Queues to run one worker each on (default: every receive queue of the interface).
    pub fn queues(mut self, queues: Vec<u32>) -> Self {
        self.queues = queues;
        self
    }
    /// Where the workers run (default [`Pinning::Auto`]).
    pub fn pinning(mut self, pinning: Pinning) -> Self {
        self.pinning = pinning;
        self
    }
    /// The AF_XDP ring implementation and socket mode.
    pub fn rings(mut self, rings: RingsKind, bind: XskBind) -> Self {
        self.rings = rings;
        self.xsk_bind = bind;
        self
    }
    /// UMEM frames (2 KiB each) per queue.
    pub fn frames(mut self, frames: u32) -> Self {
        self.frames = frames;
        self
    }
    /// How the XDP program is attached.
    pub fn xdp_mode(mut self, mode: XdpMode) -> Self {
        self.xdp_mode = mode;
        self
    }
    /// SO_BUSY_POLL on every socket (`None`: off).
    pub fn busy_poll(mut self, busy_poll: Option<BusyPoll>) -> Self {
        self.busy_poll = busy_poll;
        self
    }
    /// Who owns a connection with several queues, and the NIC's RSS key when it cannot be read.
    pub fn steering(mut self, mode: SteeringMode, rss_key: Option<String>) -> Self {
        self.steering = mode;
        self.rss_key = rss_key;
        self
    }
    /// Serve a control socket `/run/xdptcp/NAME.sock` (`xdptcp stat/ss/sysctl/capture --name NAME`).
    pub fn control(mut self, name: Option<String>) -> Self {
        self.control_name = name;
        self
    }
    /// With a control socket: serve the counters in Prometheus text format on this address.
    pub fn metrics(mut self, addr: Option<String>) -> Self {
        self.metrics = addr;
        self
    }
    /// Capture the whole run into a pcapng file.
    pub fn pcap(mut self, pcap: Option<PcapOptions>) -> Self {
        self.pcap = pcap;
        self
    }
    /// The engines' TCP settings (the MTU is lowered to the interface's if larger).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Ports the workers will listen on (the XDP program is told; the worker opens them, [`Worker::listen`]).
    pub fn listen(mut self, ports: &[u16]) -> Self {
        self.listen = ports.to_vec();
        self
    }
    /// The last sentence of the error when an address is configured in the kernel: what to do about it.
    pub fn kernel_addr_hint(mut self, hint: &str) -> Self {
        self.kernel_addr_hint = hint.to_string();
        self
    }

    /// Assembles the stack (see the module doc for the steps). On error nothing stays attached.
    pub fn build(self) -> anyhow::Result<(Host, Vec<QueueWorker>)> {
        let b = self;
        let (addr, prefix_len) = (b.addrs[0], b.prefix_len);
        let iface = Interface::lookup(&b.iface)?;
        let kernel_addrs = iface.kernel_ipv4_addrs()?;
        if let Some(a) = b.addrs.iter().find(|a| kernel_addrs.contains(a)) {
            bail!(
                "{a} is configured in the kernel on {}: xdptcp needs an address of its own there (both stacks would \
                 answer ARP and TCP for it). {}",
                iface.name,
                b.kernel_addr_hint
            );
        }
        if let Some(gw) = b.gateway {
            let net = NetConfig { addr, prefix_len, gateway: None, mac: iface.mac, mtu: 0 };
            if !net.on_link(gw) {
                bail!("gateway {gw} is not on {addr}/{prefix_len}");
            }
        }
        let queues: Vec<u32> = if b.queues.is_empty() { (0..iface.rx_queues).collect() } else { b.queues.clone() };
        if queues.is_empty() || queues.iter().any(|&q| q >= iface.rx_queues) {
            bail!(
                "{} has {} receive queue(s); {} worker(s) on queues {queues:?} do not fit",
                iface.name,
                iface.rx_queues,
                queues.len()
            );
        }
        let cores: Vec<Option<usize>> = match &b.pinning {
            Pinning::Unpinned => vec![None; queues.len()],
            Pinning::Cores(c) if c.len() != queues.len() => {
                bail!("--cores lists {} cores for {} queues", c.len(), queues.len())
            }
            Pinning::Cores(c) => c.iter().map(|&c| Some(c)).collect(),
            Pinning::Auto => {
                let available: Vec<usize> =
                    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
                (0..queues.len()).map(|i| available.get(i % available.len().max(1)).copied()).collect()
            }
        };
        let mut config = b.config.clone();
        // The engine must never write a packet the link cannot carry.
        config.mtu = config.mtu.min(iface.mtu);

        let mut program = XdpProgram::load()?;
        for &a in &b.addrs {
            program.add_local_addr(a, true)?;
        }
        for &port in &b.listen {
            program.add_listen(addr, port)?;
        }
        let ring_cfg = RingConfig { frame_count: b.frames, bind: b.xsk_bind, ..Default::default() };
        let mut shares = NeighbourShare::mesh(queues.len());
        let mut datapaths = Vec::new();
        let mut rings_desc = String::new();
        for &q in &queues {
            let rings = AnyRings::create(b.rings, &iface.name, q, &ring_cfg)?;
            if rings_desc.is_empty() {
                rings_desc = rings.describe();
            }
            if let Some(bp) = b.busy_poll {
                set_busy_poll(rings.fd(), bp).context("setting busy-poll socket options")?;
            }
            program.register_socket(q, rings.fd())?;
            let net = NetConfig { addr, prefix_len, gateway: b.gateway, mac: iface.mac, mtu: config.mtu as usize };
            let mut dp = Datapath::new(rings, net, ring_cfg.fill_size as usize, NeighConfig::default())?;
            dp.share_neighbours(shares.remove(0));
            for &a in &b.addrs[1..] {
                dp.add_alias(a);
            }
            datapaths.push(dp);
        }
        // Attach last: by now every queue has its socket, so nothing steered is lost. From here on the program is
        // in `host`, whose drop detaches it should a later step fail.
        let mode = program.attach(iface.index, b.xdp_mode)?;
        let mut host = Host {
            iface,
            addrs: b.addrs.clone(),
            prefix_len,
            mtu: config.mtu,
            mode,
            rings: rings_desc,
            steering: None,
            control_name: b.control_name.clone(),
            queues: queues.clone(),
            program: Some(program),
            control: None,
            pcap: None,
            mesh: None,
        };
        let mut shards: Vec<Option<(Arc<Owners>, handoff::Handoff)>> = Vec::new();
        if queues.len() > 1 {
            let (owners, fallback) = Owners::for_interface(&host.iface.name, &queues, b.steering, b.rss_key.as_deref())
                .map_err(|e| anyhow::anyhow!(e))?;
            let (rings, probe) = handoff::mesh(queues.len(), handoff::DEFAULT_SLOTS, host.iface.mtu as usize)
                .context("creating the hand-off rings")?;
            host.steering = Some((owners.describe(), fallback));
            let owners = Arc::new(owners);
            shards = rings.into_iter().map(|r| Some((owners.clone(), r))).collect();
            host.mesh = Some(probe);
        }
        if let Some(name) = &b.control_name {
            let cfg = crate::control::ServerConfig::for_name(name).map_err(anyhow::Error::msg)?;
            let server = ControlServer::bind(cfg).context("binding the control socket")?;
            let metrics = match &b.metrics {
                Some(a) => Some(
                    crate::control::Metrics::bind(a.as_str(), server.hub().clone())
                        .with_context(|| format!("serving metrics on {a}"))?,
                ),
                None => None,
            };
            host.control = Some((server, metrics));
        }
        // Workers are registered with a hub when a control socket or a pcap file wants them.
        let hub = match (&host.control, &b.pcap) {
            (Some((server, _)), _) => Some(server.hub().clone()),
            (None, Some(_)) => Some(ControlHub::new()),
            (None, None) => None,
        };
        let mut workers = Vec::new();
        for (i, dp) in datapaths.into_iter().enumerate() {
            let clock = MonotonicClock::new();
            let mut engine = Engine::new(config.clone(), clock.now(), rand::random());
            // Active opens pick source ports whose replies this worker owns.
            let sharding = shards.get_mut(i).and_then(Option::take).map(|(o, r)| Sharding::new(o, r, &mut engine));
            let control = hub.as_ref().map(|h| h.register_worker(LinkType::RawIpv4));
            workers.push(QueueWorker { queue: queues[i], core: cores[i], engine, dp, clock, control, sharding });
        }
        if let (Some(p), Some(hub)) = (&b.pcap, &hub) {
            let f = PcapFile::create(&p.path, hub, p.filter.clone(), p.snaplen)
                .with_context(|| format!("creating {}", p.path.display()))?;
            for w in &mut workers {
                if let Some(c) = w.control.as_mut() {
                    f.attach(c, w.clock.now());
                }
            }
            host.pcap = Some(f);
        }
        Ok((host, workers))
    }
}

/// What lives as long as the stack: the attached program, the control socket, the capture file, the hand-off
/// mesh's probe. Dropping it detaches the program; [`finish`](Host::finish) also reports.
pub struct Host {
    /// The interface.
    pub iface: Interface,
    /// Our addresses, the first the main one.
    pub addrs: Vec<Ipv4Addr>,
    /// Their prefix length.
    pub prefix_len: u8,
    /// The engines' MTU (the configured one, at most the interface's).
    pub mtu: u32,
    /// How the program ended up attached.
    pub mode: XdpMode,
    /// What the rings are (for banners).
    pub rings: String,
    /// With several queues: who owns which connection, and why `auto` fell back to the hash if it did.
    pub steering: Option<(String, Option<String>)>,
    /// The control socket's name, if one is served.
    pub control_name: Option<String>,
    /// The queues, one worker each.
    pub queues: Vec<u32>,
    program: Option<XdpProgram>,
    control: Option<(ControlServer, Option<crate::control::Metrics>)>,
    pcap: Option<PcapFile>,
    mesh: Option<MeshProbe>,
}

/// How a stack ended: the XDP program's counters and the capture file's outcome.
pub struct Finished {
    /// What the XDP program steered where.
    pub steer: SteerStats,
    /// The pcap file and how its capture went.
    pub pcap: Option<(PathBuf, Result<CaptureSummary, String>)>,
}

impl Host {
    /// The main address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addrs[0]
    }

    /// The control hub (workers registered with it), if a control socket is served.
    pub fn control_hub(&self) -> Option<&ControlHub> {
        self.control.as_ref().map(|(s, _)| s.hub())
    }

    /// Packets handed to worker `i` that were still queued when it stopped (never delivered: count them as
    /// `HandoffDrop`).
    pub fn handoff_queued(&self, i: usize) -> u64 {
        self.mesh.as_ref().map_or(0, |m| m.queued_for(i))
    }

    /// Call once every worker has stopped: closes the capture file, reads the program's counters, detaches it
    /// (the interface is left as found) and closes the control socket.
    pub fn finish(mut self) -> Finished {
        let pcap = self.pcap.take().map(|f| {
            let path = f.path().to_path_buf();
            (path, f.finish().map_err(|e| e.to_string()))
        });
        let steer = self.program.as_ref().and_then(|p| p.stats().ok()).unwrap_or_default();
        self.detach();
        self.control = None;
        Finished { steer, pcap }
    }

    fn detach(&mut self) {
        if let Some(mut program) = self.program.take() {
            for &q in &self.queues {
                let _ = program.unregister_socket(q);
            }
            program.detach();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.detach();
    }
}

/// One queue's datapath and engine, ready to become a [`Worker`] running an app (or, for raw-frame tools, just the
/// datapath).
pub struct QueueWorker {
    /// The queue.
    pub queue: u32,
    /// The core its thread should run on (`None`: unpinned).
    pub core: Option<usize>,
    /// The engine, to adjust before the app starts (listeners are opened on the [`Worker`]).
    pub engine: Engine,
    dp: Datapath<AnyRings>,
    clock: MonotonicClock,
    control: Option<WorkerControl>,
    sharding: Option<Sharding>,
}

impl QueueWorker {
    /// The clock the engine runs on.
    pub fn clock(&self) -> MonotonicClock {
        self.clock
    }

    /// The worker running `app` (open listeners with [`Worker::listen`], then [`Worker::run`] it on a thread of
    /// its own, [`spawn_pinned`]).
    pub fn into_worker(self, app: Box<dyn App>) -> Worker<AnyRings> {
        let mut worker = Worker::new(self.dp, self.engine, app, self.clock);
        worker.control = self.control;
        worker.handoff = self.sharding;
        worker
    }

    /// Just the datapath, for tools that write raw frames without an engine.
    pub fn into_datapath(self) -> Datapath<AnyRings> {
        self.dp
    }
}

/// Starts thread `name` running `f`, pinned to `core` (a warning if that fails; `None`: unpinned).
pub fn spawn_pinned<T: Send + 'static>(
    core: Option<usize>,
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<T>> {
    let what = name.clone();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            pin_current(core, &what);
            f()
        })
        .with_context(|| format!("spawning thread {name}"))
}

/// Pins the calling thread to `core` (a warning if that fails; `None`: nothing).
pub fn pin_current(core: Option<usize>, what: &str) {
    if let Some(c) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            tracing::warn!("could not pin {what} to core {c}");
        }
    }
}
