//! `xdptcp serve`: runs an application on an interface over AF_XDP.
//!
//! Startup: look up the interface, refuse an address the kernel also has there, load the XDP program, create one
//! AF_XDP socket per queue and register it in the XSKMAP, attach the program through a bpf_link, then start one
//! pinned worker thread per queue. SIGINT/SIGTERM start an orderly shutdown (FINs, bounded drain); a second signal
//! exits at once. On exit the program is detached (the interface is left as found) and the summed counters are
//! printed.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::app::AppSpec;
use crate::stack::handoff::{self, MeshProbe};
use crate::stack::steer::{Owners, SteeringMode};
use crate::tcp::{Config, Counter, Counters, Engine};
use crate::time::MonotonicClock;
use crate::worker::run::Sharding;
use crate::worker::{Datapath, NeighConfig, NetConfig, Worker};
use crate::xdp::ring::set_busy_poll;
use crate::xdp::{
    AnyRings, BusyPoll, Interface, KernelStats, RingConfig, RingsKind, SteerStats, XdpMode, XdpProgram, XskBind,
    XskRings,
};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppName {
    Echo,
    Discard,
    Http,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Interface to serve on.
    #[arg(long)]
    pub iface: String,
    /// The stack's own IPv4 address, with prefix length (default /32). Must not be configured in the kernel there.
    #[arg(long, value_name = "IP[/PREFIX]")]
    pub addr: String,
    /// Ports to listen on.
    #[arg(long, value_delimiter = ',', required = true)]
    pub listen: Vec<u16>,
    #[arg(long, value_enum)]
    pub app: AppName,
    /// Next hop for destinations off the local subnet.
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// Queues to serve (default: all receive queues of the interface).
    #[arg(long, value_delimiter = ',')]
    pub queues: Vec<u32>,
    /// Cores to pin the workers to, in queue order (default: the available cores, round-robin).
    #[arg(long, value_delimiter = ',', conflicts_with = "no_pin")]
    pub cores: Vec<usize>,
    /// Leave the workers unpinned.
    #[arg(long)]
    pub no_pin: bool,
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,
    /// Name of the control socket (`/run/xdptcp/NAME.sock`) that `xdptcp stat/ss/sysctl/capture --name NAME` talk
    /// to (default `IFACE-PID`, printed at start); `none` serves no control socket.
    #[arg(long)]
    pub name: Option<String>,
    /// Serve the counters in Prometheus text format on this address (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// TCP configuration file (TOML, sysctl-style names).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Configuration overrides, `name=value` (applied after --config).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Accept-queue length of each listener.
    #[arg(long, default_value_t = 4096)]
    pub backlog: u32,
    /// Echo app: reset each connection (RST) after this many bytes were received.
    #[arg(long)]
    pub abort_after: Option<u64>,
    /// Busy polling: SO_BUSY_POLL microseconds (enables SO_PREFER_BUSY_POLL); 0 = off.
    #[arg(long, default_value_t = 0)]
    pub busy_poll: u32,
    /// SO_BUSY_POLL_BUDGET with --busy-poll.
    #[arg(long, default_value_t = 64)]
    pub busy_poll_budget: u32,
    /// UMEM frames (2 KiB each) per queue.
    #[arg(long, default_value_t = 16384)]
    pub frames: u32,
    /// Run the app logic on this many threads of its own (0: as callbacks on the worker threads). The workers
    /// hand connections and bytes to them through lock-free queues and rings (see README, "Application models").
    #[arg(long, default_value_t = 0)]
    pub app_threads: usize,
    /// With --app-threads: bytes of each connection's ring, each direction.
    #[arg(long, default_value_t = 32 * 1024)]
    pub app_ring: usize,
    /// With --app-threads: cores to pin the app threads to (default: unpinned).
    #[arg(long, value_delimiter = ',')]
    pub app_cores: Vec<usize>,
    /// Write every frame of the run (from start to exit) into this pcapng file; a bounded ring per worker, so a
    /// slow disk costs dropped frames (counted, printed at exit), never a stalled worker.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// With --pcap: capture filter (tcpdump syntax subset, as `xdptcp capture`).
    #[arg(long, value_name = "EXPR", requires = "pcap", default_value = "")]
    pub pcap_filter: String,
    /// With --pcap: bytes kept of each frame (0: whole frames).
    #[arg(long, value_name = "BYTES", requires = "pcap", default_value_t = crate::control::DEFAULT_SNAPLEN)]
    pub pcap_snaplen: u32,
    /// With --pcap: stop writing frames once the file holds about this many bytes (later ones are counted only).
    #[arg(long, value_name = "BYTES", requires = "pcap", default_value_t = crate::control::pcapfile::DEFAULT_PCAP_MAX_BYTES)]
    pub pcap_max_bytes: u64,
    /// Diagnostics/testing aid: the app never accepts on these listening ports, so their accept queues fill (see
    /// them with `xdptcp ss -l`) and further handshakes meet a full backlog, as behind a stalled application.
    #[arg(long, value_delimiter = ',', value_name = "PORT")]
    pub hold_accept: Vec<u16>,
    /// AF_XDP rings: `raw` (our own; UMEM in a memmap2 mapping, huge pages when reserved) or `xsk-rs`.
    #[arg(long, value_enum, default_value_t = RingsKind::Raw)]
    pub rings: RingsKind,
    /// AF_XDP socket mode: zero-copy if the driver can (auto), always copy, or zero-copy or fail.
    #[arg(long, value_enum, default_value_t = XskBind::Auto)]
    pub xsk_bind: XskBind,
    /// Seconds to wait for connections to close on shutdown.
    #[arg(long, default_value_t = 3.0)]
    pub drain_timeout: f64,
    /// Who owns a connection with several queues: `nic` the NIC's RSS (read with ethtool -x; zero hand-offs),
    /// `hash` our own symmetric hash (packets landing on another worker are handed off), `auto` nic if it can be
    /// read and matches, else hash.
    #[arg(long, value_enum, default_value_t = SteeringMode::Auto)]
    pub steering: SteeringMode,
    /// The NIC's RSS key (hex, as `ethtool -x` prints it) when it cannot be read, with the table `ethtool -X IF
    /// equal N` sets over the served queues (see deploy/rss.sh).
    #[arg(long, value_name = "HEX")]
    pub rss_key: Option<String>,
    /// Serve on this 802.1Q VLAN (1..4094) of the interface: only frames tagged with it are taken, replies carry
    /// it; untagged frames and other VLANs stay with the kernel.
    #[arg(long, value_name = "VID", value_parser = clap::value_parser!(u16).range(1..=4094))]
    pub vlan: Option<u16>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    // A second SIGINT/SIGTERM while the first is being handled exits at once (code 1).
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let server = Server::start(&args, stop.clone())?;
    eprintln!("{}", server.banner());
    let report = server.wait()?;
    print!("{}", report.counters.to_text());
    if let Some((path, pcap)) = &report.pcap {
        match pcap {
            Ok(s) => eprintln!(
                "xdptcp: {}: {} frames written, {} matched, {} dropped by ring",
                path.display(),
                s.written,
                s.matched,
                s.dropped
            ),
            Err(e) => eprintln!("xdptcp: {}: {e}", path.display()),
        }
    }
    for (q, c, k) in &report.per_queue {
        println!(
            "Queue{q}: RxFrames {} TxFrames {} PassiveOpens {} ActiveOpens {} HandoffOut {} HandoffIn {} HandoffDrop {}",
            c.get(Counter::RxFrames),
            c.get(Counter::TxFrames),
            c.get(Counter::PassiveOpens),
            c.get(Counter::ActiveOpens),
            c.get(Counter::HandoffOut),
            c.get(Counter::HandoffIn),
            c.get(Counter::HandoffDrop)
        );
        if let Some(k) = k {
            println!(
                "Queue{q}Kernel: rx_dropped {} rx_ring_full {} rx_fill_ring_empty {} rx_invalid {} tx_invalid {} tx_ring_empty {}",
                k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty, k.rx_invalid_descs, k.tx_invalid_descs, k.tx_ring_empty
            );
        }
    }
    if let Some((unparks, wakes, parks, accepted)) = report.app_stats {
        println!("AppThreads: accepted {accepted} app_parks {parks} app_unparks {unparks} worker_wakes {wakes}");
    }
    println!(
        "XdpSteer: seen {} arp {} icmp {} tcp {} pass {} malformed {} no_socket {}",
        report.steer.seen,
        report.steer.redirect_arp,
        report.steer.redirect_icmp,
        report.steer.redirect_tcp,
        report.steer.pass,
        report.steer.malformed,
        report.steer.no_socket
    );
    Ok(ExitCode::SUCCESS)
}

/// Parses `IP[/PREFIX]`.
pub fn parse_addr(s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, p.parse::<u8>().with_context(|| format!("prefix length in {s:?}"))?),
        None => (s, 32),
    };
    if prefix > 32 {
        bail!("prefix length {prefix} > 32");
    }
    let ip: Ipv4Addr = ip.parse().with_context(|| format!("IPv4 address {ip:?}"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        bail!("{ip} cannot be a host address");
    }
    Ok((ip, prefix))
}

/// The TCP configuration: defaults, then the file, then the `--set` overrides.
pub fn load_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_toml_file(path).with_context(|| format!("loading {}", path.display()))?,
        None => Config::default(),
    };
    config.apply_overrides(&args.set).context("--set")?;
    Ok(config)
}

/// What a finished server reports.
pub struct Report {
    pub counters: Counters,
    /// Each worker's own counters and its socket's kernel counters, by queue.
    pub per_queue: Vec<(u32, Counters, Option<KernelStats>)>,
    pub steer: SteerStats,
    /// With --app-threads: (app unparks, worker wakes, app parks, connections handed over).
    pub app_stats: Option<(u64, u64, u64, u64)>,
    /// The `--pcap` file and how its capture went.
    pub pcap: Option<(PathBuf, Result<crate::control::CaptureSummary, String>)>,
}

/// A worker thread; it returns its counters and its socket's kernel counters.
type WorkerHandle = std::thread::JoinHandle<(Counters, Option<KernelStats>)>;

/// A running server: the attached program and the worker threads.
pub struct Server {
    /// Kept alive for the workers' lifetime; dropping removes the socket file and stops the metrics thread.
    _control: Option<(crate::control::ControlServer, Option<crate::control::metrics::Metrics>)>,
    pcap: Option<crate::control::PcapFile>,
    program: XdpProgram,
    workers: Vec<(u32, WorkerHandle)>,
    /// App threads (`--app-threads`); they end once the workers closed the hub.
    app_threads: Vec<std::thread::JoinHandle<()>>,
    app_hub: Option<Arc<crate::app::threaded::Hub>>,
    snapshots: Vec<Arc<Mutex<Counters>>>,
    banner: String,
    /// The hand-off rings, to count what was still queued when the workers stopped.
    mesh: Option<MeshProbe>,
}

impl Server {
    pub fn start(args: &Args, stop: Arc<AtomicBool>) -> anyhow::Result<Server> {
        let (addr, prefix_len) = parse_addr(&args.addr)?;
        let iface = Interface::lookup(&args.iface)?;
        if iface.kernel_ipv4_addrs()?.contains(&addr) {
            bail!(
                "{addr} is configured in the kernel on {}: xdptcp needs an address of its own there \
                 (both stacks would answer ARP and TCP for it). Remove it (ip addr del {addr}/{prefix_len} dev {}) \
                 or pick another address.",
                iface.name,
                iface.name
            );
        }
        if let Some(gw) = args.gateway {
            let net = NetConfig { addr, prefix_len, gateway: None, mac: iface.mac, mtu: 0 };
            if !net.on_link(gw) {
                bail!("gateway {gw} is not on {addr}/{prefix_len}");
            }
        }
        if let Some(p) = args.hold_accept.iter().find(|p| !args.listen.contains(p)) {
            bail!("--hold-accept {p}: not a --listen port");
        }
        let pcap_filter = crate::control::CaptureFilter::parse(&args.pcap_filter).context("--pcap-filter")?;
        let mut config = load_config(args)?;
        // The engine must never write a packet the link cannot carry.
        config.mtu = config.mtu.min(iface.mtu);
        let app = match args.app {
            AppName::Echo => AppSpec::Echo { abort_after: args.abort_after },
            AppName::Discard => AppSpec::Discard,
            AppName::Http => AppSpec::Http,
        };
        let queues: Vec<u32> =
            if args.queues.is_empty() { (0..iface.rx_queues).collect() } else { args.queues.clone() };
        if queues.is_empty() {
            bail!("no queues to serve");
        }
        if !args.cores.is_empty() && args.cores.len() != queues.len() {
            bail!("--cores lists {} cores for {} queues", args.cores.len(), queues.len());
        }
        let cores: Vec<Option<usize>> = if args.no_pin {
            vec![None; queues.len()]
        } else if !args.cores.is_empty() {
            args.cores.iter().map(|&c| Some(c)).collect()
        } else {
            let available: Vec<usize> =
                core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
            (0..queues.len()).map(|i| available.get(i % available.len().max(1)).copied()).collect()
        };

        let mut program = XdpProgram::load()?;
        program.add_local_addr(addr, true)?;
        program.set_vlan(args.vlan)?;
        for &port in &args.listen {
            program.add_listen(addr, port)?;
        }
        let ring_cfg = RingConfig { frame_count: args.frames, bind: args.xsk_bind, ..Default::default() };
        let mut datapaths = Vec::new();
        let mut shares = crate::worker::NeighbourShare::mesh(queues.len());
        let mut rings_desc = String::new();
        for &q in &queues {
            let rings = AnyRings::create(args.rings, &iface.name, q, &ring_cfg)?;
            if rings_desc.is_empty() {
                rings_desc = rings.describe();
            }
            if args.busy_poll > 0 {
                set_busy_poll(rings.fd(), BusyPoll { usecs: args.busy_poll, budget: args.busy_poll_budget })
                    .context("setting busy-poll socket options")?;
            }
            program.register_socket(q, rings.fd())?;
            let net = NetConfig { addr, prefix_len, gateway: args.gateway, mac: iface.mac, mtu: config.mtu as usize };
            let mut dp = Datapath::new(rings, net, ring_cfg.fill_size as usize, NeighConfig::default())?;
            dp.set_vlan(args.vlan)?;
            dp.share_neighbours(shares.remove(0));
            datapaths.push((q, dp));
        }
        // Attach last: by now every queue has its socket, so nothing steered is lost.
        let mode = program.attach(iface.index, args.xdp_mode)?;
        let (mut shards, mesh, steering) = if queues.len() > 1 {
            let (owners, fallback) =
                Owners::for_interface(&iface.name, &queues, args.steering, args.rss_key.as_deref())
                    .map_err(|e| anyhow::anyhow!(e))?;
            if let Some(why) = fallback {
                eprintln!("xdptcp: {why}: steering by hash, packets landing on another worker are handed off");
            }
            let (rings, probe) = handoff::mesh(queues.len(), handoff::DEFAULT_SLOTS, iface.mtu as usize)
                .context("creating the hand-off rings")?;
            let owners = Arc::new(owners);
            let shards: Vec<_> = rings.into_iter().map(|r| Some((owners.clone(), r))).collect();
            (shards, Some(probe), format!(", {}", owners.describe()))
        } else {
            (Vec::new(), None, String::new())
        };

        let drain = Duration::from_secs_f64(args.drain_timeout.clamp(0.0, 3600.0));
        let control_name = args.name.clone().unwrap_or_else(|| format!("{}-{}", iface.name, std::process::id()));
        let control = if control_name == "none" {
            None
        } else {
            let cfg = crate::control::server::ServerConfig::for_name(&control_name).map_err(|e| anyhow::anyhow!(e))?;
            let server = crate::control::ControlServer::bind(cfg).context("binding the control socket")?;
            let metrics = match &args.metrics {
                Some(a) => Some(
                    crate::control::metrics::Metrics::bind(a.as_str(), server.hub().clone())
                        .with_context(|| format!("serving metrics on {a}"))?,
                ),
                None => None,
            };
            Some((server, metrics))
        };
        let mut workers = Vec::new();
        let mut snapshots = Vec::new();
        let mut app_threads = Vec::new();
        let mut bridges = Vec::new();
        let mut app_hub = None;
        if args.app_threads > 0 {
            let cfg = crate::app::threaded::HubConfig {
                ring: args.app_ring,
                nodelay: app == AppSpec::Http,
                ..Default::default()
            };
            let (hub, b) = crate::app::threaded::Hub::new(datapaths.len(), cfg)?;
            bridges = b;
            app_hub = Some(hub.clone());
            for i in 0..args.app_threads {
                let (hub, spec, core) = (hub.clone(), app.clone(), args.app_cores.get(i % args.app_cores.len().max(1)));
                let core = core.copied();
                let h = std::thread::Builder::new()
                    .name(format!("xdptcp-app{i}"))
                    .spawn(move || {
                        if let Some(c) = core {
                            if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                                tracing::warn!("could not pin app thread {i} to core {c}");
                            }
                        }
                        crate::app::threaded::apps::serve(&hub, &spec);
                    })
                    .context("spawning an app thread")?;
                app_threads.push(h);
            }
        }
        // Workers are registered with the hub when a control socket or a --pcap file wants them.
        let hub = match (&control, &args.pcap) {
            (Some((server, _)), _) => Some(server.hub().clone()),
            (None, Some(_)) => Some(crate::control::ControlHub::new()),
            (None, None) => None,
        };
        let mut bridges = bridges.into_iter();
        let mut built = Vec::new();
        for (i, (q, dp)) in datapaths.into_iter().enumerate() {
            let clock = MonotonicClock::new();
            let mut engine = Engine::new(config.clone(), clock.now(), rand::random());
            let sharding = shards.get_mut(i).and_then(Option::take).map(|(o, r)| Sharding::new(o, r, &mut engine));
            let app_impl: Box<dyn crate::app::App> = match bridges.next() {
                Some(b) => Box::new(b),
                None => app.build(),
            };
            let mut worker = Worker::new(dp, engine, app_impl, clock);
            worker.handoff = sharding;
            if let Some(hub) = &hub {
                worker.control = Some(hub.register_worker(crate::control::LinkType::RawIpv4));
            }
            for &port in &args.listen {
                let l = worker.listen(port, args.backlog).map_err(|e| anyhow::anyhow!("listen on port {port}: {e}"))?;
                if args.hold_accept.contains(&port) {
                    worker.hold_accept(l);
                }
            }
            built.push((q, worker, clock));
        }
        let pcap = match (&args.pcap, &hub) {
            (Some(path), Some(hub)) => {
                let f = crate::control::PcapFile::create_capped(
                    path,
                    hub,
                    pcap_filter.clone(),
                    args.pcap_snaplen,
                    args.pcap_max_bytes,
                )
                .with_context(|| format!("creating {}", path.display()))?;
                for (_, worker, clock) in &mut built {
                    if let Some(c) = worker.control.as_mut() {
                        f.attach(c, clock.now());
                    }
                }
                Some(f)
            }
            _ => None,
        };
        for (i, (q, worker, _)) in built.into_iter().enumerate() {
            snapshots.push(worker.published.clone());
            let core = cores[i];
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("xdptcp-q{q}"))
                .spawn(move || {
                    if let Some(c) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                            tracing::warn!("could not pin queue {q} to core {c}");
                        }
                    }
                    worker.run(&stop, drain)
                })
                .context("spawning a worker thread")?;
            workers.push((q, handle));
        }
        let model =
            if args.app_threads > 0 { format!(" on {} app thread(s)", args.app_threads) } else { String::new() };
        let banner = format!(
            "xdptcp: serving {}{model} on {} {addr}/{prefix_len} port(s) {:?}, queues {queues:?}{steering}, XDP {mode} \
             mode, {rings_desc}, control socket `{control_name}`, ready",
            app.name(),
            iface.name,
            args.listen
        );
        Ok(Server { _control: control, pcap, program, workers, app_threads, app_hub, snapshots, banner, mesh })
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
                    if let Some(m) = &self.mesh {
                        c.add(Counter::HandoffDrop, m.queued_for(i));
                    }
                    counters.merge(&c);
                    per_queue.push((q, c, k));
                }
                Err(_) => failed.push(q),
            }
        }
        // Every worker has stopped: what their rings hold is the end of the file.
        let pcap = self.pcap.take().map(|f| {
            let path = f.path().to_path_buf();
            (path, f.finish().map_err(|e| e.to_string()))
        });
        // The workers closed it on their way out; again here in case one panicked first.
        if let Some(hub) = &self.app_hub {
            hub.close();
        }
        for h in self.app_threads.drain(..) {
            if h.join().is_err() {
                failed_apps += 1;
            }
        }
        let steer = self.program.stats().unwrap_or_default();
        for q in 0..256 {
            let _ = self.program.unregister_socket(q);
        }
        self.program.detach();
        if !failed.is_empty() {
            bail!("worker(s) of queue(s) {failed:?} panicked");
        }
        if failed_apps > 0 {
            bail!("{failed_apps} app thread(s) panicked");
        }
        let app_stats = self.app_hub.as_ref().map(|h| crate::app::threaded::stats_snapshot(h));
        Ok(Report { counters, per_queue, steer, app_stats, pcap })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        use clap::Parser;
        let base = ["x", "--iface", "lo", "--addr", "198.18.0.1/24", "--listen", "80", "--app", "http"];
        Cli::try_parse_from(base.iter().chain(extra)).expect("arguments").args
    }

    #[test]
    fn config_file_then_overrides() {
        assert_eq!(load_config(&args(&[])).unwrap(), Config::default());
        let c = load_config(&args(&["--set", "tcp_delack_ms=10", "--set", "mtu=1400"])).unwrap();
        assert_eq!((c.tcp_delack_ms, c.mtu), (10, 1400));
        assert!(load_config(&args(&["--set", "no_such_knob=1"])).is_err());
        let dir = std::env::temp_dir().join(format!("xdptcp-serve-{}.toml", std::process::id()));
        std::fs::write(&dir, "tcp_delack_ms = 20\ntcp_sack = false\n").unwrap();
        let c = load_config(&args(&["--config", dir.to_str().unwrap(), "--set", "tcp_delack_ms=30"])).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!((c.tcp_delack_ms, c.tcp_sack), (30, false));
        assert!(load_config(&args(&["--config", "/nonexistent/xdptcp.toml"])).is_err());
    }

    #[test]
    fn rings_default_to_raw_and_xsk_rs_is_selectable() {
        use clap::Parser;
        let a = args(&[]);
        assert_eq!((a.rings, a.xsk_bind), (RingsKind::Raw, XskBind::Auto));
        let a = args(&["--rings", "xsk-rs", "--xsk-bind", "zero-copy"]);
        assert_eq!((a.rings, a.xsk_bind), (RingsKind::XskRs, XskBind::ZeroCopy));
        assert!(Cli::try_parse_from([
            "x",
            "--iface",
            "lo",
            "--addr",
            "198.18.0.1",
            "--listen",
            "80",
            "--app",
            "http",
            "--rings",
            "libxdp"
        ])
        .is_err());
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(parse_addr("198.18.0.1/24").unwrap(), (Ipv4Addr::new(198, 18, 0, 1), 24));
        assert_eq!(parse_addr("198.18.0.1").unwrap(), (Ipv4Addr::new(198, 18, 0, 1), 32));
        assert!(parse_addr("198.18.0.1/33").is_err());
        assert!(parse_addr("0.0.0.0/0").is_err());
        assert!(parse_addr("224.0.0.1").is_err());
        assert!(parse_addr("x/24").is_err());
    }
}
