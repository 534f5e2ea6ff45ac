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
use crate::cli::serve::parse_addr;
use crate::stack::handoff::{self, MeshProbe};
use crate::stack::steer::{Owners, SteeringMode};
use crate::tcp::Counter;
use crate::tcp::{Counters, Engine};
use crate::time::MonotonicClock;
use crate::worker::run::Sharding;
use crate::worker::{Datapath, NeighConfig, NeighbourShare, NetConfig, Worker};
use crate::xdp::ring::XskRings;
use crate::xdp::{AnyRings, Interface, RingConfig, RingsKind, XdpMode, XdpProgram, XskBind};

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

/// The interface, the attached program and one datapath per queue.
pub struct XdpSetup {
    pub program: XdpProgram,
    pub iface: Interface,
    pub addr: Ipv4Addr,
    /// Every source address, `addr` first.
    pub addrs: Vec<Ipv4Addr>,
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
        let (addrs, prefix_len) = parse_addr_range(&o.addr)?;
        let addr = addrs[0];
        let iface = Interface::lookup(&o.iface)?;
        let kernel_addrs = iface.kernel_ipv4_addrs()?;
        if let Some(a) = addrs.iter().find(|a| kernel_addrs.contains(a)) {
            bail!(
                "{a} is configured in the kernel on {}: the xdptcp client needs addresses of its own there \
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
        for &a in &addrs {
            program.add_local_addr(a, true)?;
        }
        let ring_cfg = RingConfig { frame_count: o.frames, bind: o.xsk_bind, ..Default::default() };
        let mut shares = NeighbourShare::mesh(queues);
        let mut datapaths = Vec::new();
        let mut rings_desc = String::new();
        for &q in &list {
            let rings = AnyRings::create(o.rings, &iface.name, q, &ring_cfg)?;
            if rings_desc.is_empty() {
                rings_desc = rings.describe();
            }
            program.register_socket(q, rings.fd())?;
            let net = NetConfig { addr, prefix_len, gateway: o.gateway, mac: iface.mac, mtu: mtu as usize };
            let mut dp = Datapath::new(rings, net, ring_cfg.fill_size as usize, NeighConfig::default())?;
            dp.share_neighbours(shares.remove(0));
            for &a in &addrs[1..] {
                dp.add_alias(a);
            }
            datapaths.push((q, dp));
        }
        let mode = program.attach(iface.index, o.xdp_mode)?;
        Ok(XdpSetup { program, iface, addr, addrs, prefix_len, mtu, datapaths, mode, rings: rings_desc })
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

/// Most source addresses of one client (the XDP program's address map holds 256).
pub const MAX_SOURCE_ADDRS: usize = 250;

/// `IP[-LAST][/PREFIX]`: one address or an inclusive range, all on the same subnet.
pub fn parse_addr_range(s: &str) -> anyhow::Result<(Vec<Ipv4Addr>, u8)> {
    let (ips, prefix) = match s.split_once('/') {
        Some((ips, p)) => (ips, Some(p)),
        None => (s, None),
    };
    let with_prefix = |ip: &str| match prefix {
        Some(p) => format!("{ip}/{p}"),
        None => ip.to_string(),
    };
    let Some((first, last)) = ips.split_once('-') else {
        let (a, p) = parse_addr(s)?;
        return Ok((vec![a], p));
    };
    let (first, p) = parse_addr(&with_prefix(first))?;
    let (last, _) = parse_addr(&with_prefix(last))?;
    let (lo, hi) = (u32::from(first), u32::from(last));
    if hi < lo {
        bail!("address range {s:?} ends before it starts");
    }
    if (hi - lo) as usize >= MAX_SOURCE_ADDRS {
        bail!("address range {s:?} has {} addresses; at most {MAX_SOURCE_ADDRS}", hi - lo + 1);
    }
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p as u32) };
    if lo & mask != hi & mask {
        bail!("address range {s:?} crosses its /{p} subnet");
    }
    let addrs: Vec<Ipv4Addr> = (lo..=hi).map(Ipv4Addr::from).collect();
    if p < 31 && addrs.iter().any(|a| u32::from(*a) & !mask == 0 || u32::from(*a) & !mask == !mask) {
        bail!("address range {s:?} includes the network or broadcast address of its /{p} subnet");
    }
    Ok((addrs, p))
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
    /// Kept for the run: the control socket (removed on drop) and the whole-run capture.
    control: Option<crate::control::ControlServer>,
    pcap: Option<crate::control::PcapFile>,
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
        let control = match &o.control_name {
            Some(name) => {
                let cfg = crate::control::ServerConfig::for_name(name).map_err(anyhow::Error::msg)?;
                Some(crate::control::ControlServer::bind(cfg).context("binding the control socket")?)
            }
            None => None,
        };
        let hub = match (&control, &o.pcap) {
            (Some(server), _) => Some(server.hub().clone()),
            (None, Some(_)) => Some(crate::control::ControlHub::new()),
            (None, None) => None,
        };
        let mut banner = format!(
            "xdptcp bench: AF_XDP client {}{}/{} on {} ({} mode, {}), {n} worker(s){steering}",
            setup.addr,
            match setup.addrs.last() {
                Some(last) if setup.addrs.len() > 1 => format!("-{last} ({} source addresses)", setup.addrs.len()),
                _ => String::new(),
            },
            setup.prefix_len,
            setup.iface.name,
            setup.mode,
            setup.rings
        );
        if let Some(name) = &o.control_name {
            banner.push_str(&format!(", control socket `{name}`"));
        }
        let mut built = Vec::new();
        for (q, dp) in setup.datapaths.drain(..) {
            let mclock = MonotonicClock::new();
            let engine = Engine::new(config.clone(), mclock.now(), rand::random());
            built.push((q, dp, engine, mclock));
        }
        let mut workers = Vec::new();
        let mut outboxes = Vec::new();
        let mut progress = Vec::new();
        let mut controls: Vec<_> =
            built.iter().map(|_| hub.as_ref().map(|h| h.register_worker(crate::control::LinkType::RawIpv4))).collect();
        let pcap = match (&o.pcap, &hub) {
            (Some(path), Some(hub)) => {
                let f =
                    crate::control::PcapFile::create(path, hub, Default::default(), crate::control::DEFAULT_SNAPLEN)
                        .with_context(|| format!("creating {}", path.display()))?;
                for (c, (_, _, _, mclock)) in controls.iter_mut().zip(&built) {
                    if let Some(c) = c.as_mut() {
                        f.attach(c, mclock.now());
                    }
                }
                Some(f)
            }
            _ => None,
        };
        for (i, (((q, dp, mut engine, mclock), w), control)) in
            built.into_iter().zip(workloads).zip(controls).enumerate()
        {
            // Active opens pick source ports whose replies this worker owns.
            let sharding = shards.get_mut(i).and_then(Option::take).map(|(o, r)| Sharding::new(o, r, &mut engine));
            let p = Arc::new(Progress::default());
            let outbox: Outbox = Arc::new(Mutex::new(None));
            let app = BenchApp::new(w, setup.addrs.clone(), clock, p.clone(), outbox.clone(), go.clone());
            let mut worker = Worker::new(dp, engine, Box::new(app), mclock);
            worker.control = control;
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
        Ok(XdpClient {
            setup: Some(setup),
            workers,
            mesh,
            queues: queue_list,
            outboxes,
            progress,
            banner,
            control,
            pcap,
        })
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
        self.control = None;
        if let Some(f) = self.pcap.take() {
            let path = f.path().to_path_buf();
            match f.finish() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges() {
        let (a, p) = parse_addr_range("198.18.1.3/24").unwrap();
        assert_eq!((a, p), (vec![Ipv4Addr::new(198, 18, 1, 3)], 24));
        let (a, p) = parse_addr_range("198.18.1.10-198.18.1.40/24").unwrap();
        assert_eq!((a.len(), p), (31, 24));
        assert_eq!((a[0], a[30]), (Ipv4Addr::new(198, 18, 1, 10), Ipv4Addr::new(198, 18, 1, 40)));
        assert!(parse_addr_range("198.18.1.40-198.18.1.10/24").is_err(), "backwards");
        assert!(parse_addr_range("198.18.1.10-198.18.2.10/24").is_err(), "crosses the subnet");
        assert!(parse_addr_range("198.18.1.10-198.18.1.255/24").is_err(), "broadcast");
        assert!(parse_addr_range("198.18.0.1-198.18.3.1/16").is_err(), "too many");
        assert!(parse_addr_range("198.18.1.10-x/24").is_err());
    }
}
