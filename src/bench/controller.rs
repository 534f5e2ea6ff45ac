//! The bench controller behind `xdptcp bench`: the load generator (on xdptcp over AF_XDP, or on kernel sockets with
//! `--kernel`), `bench server` (the kernel-socket epoll server the comparison runs against), `bench sink` and
//! `bench plot`. The argument structs are clap's (the `cli` verb flattens them).
//!
//! The controller starts the workers, samples memory and CPU around the measurement window, prints a progress
//! line each second on stderr, and writes the report (text on stdout, `--json`, `--hgrm`, `--plot`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::report::{Extras, Memory, Report, RunInfo, ServerUsage};
use super::server::{self, ServerApp, ServerCounters};
use super::stats::{merge_all, sum_progress, Progress, ProgressSnapshot, WorkerStats};
use super::xdp::{XdpClient, XdpOptions};
use super::{ceiling, hgrm, kernel, svg, synflood, sys, Clock, Mode, Workload};
use crate::tcp::Counter;
use crate::xdp::{RingsKind, XdpMode, XskBind};

#[derive(clap::Args, Debug, Clone)]
pub struct SinkArgs {
    #[arg(long)]
    pub iface: String,
    /// The address to receive on (not configured in the kernel there), with prefix length.
    #[arg(long, value_name = "IP[/PREFIX]")]
    pub addr: String,
    /// The core to busy-poll on.
    #[arg(long)]
    pub core: Option<usize>,
    /// Seconds to run at most (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,
    /// UMEM frames.
    #[arg(long, default_value_t = 8192)]
    pub frames: u32,
    /// No per-second line.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PlotArgs {
    /// The SVG file to write.
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
    #[arg(long, default_value = "Latency by percentile")]
    pub title: String,
    /// Inputs as LABEL=FILE.hgrm, one line each.
    #[arg(required = true, value_name = "LABEL=FILE.hgrm")]
    pub inputs: Vec<String>,
    /// The latency axis: `log` shows a microsecond median and a millisecond tail on one chart.
    #[arg(long, value_enum, default_value_t = svg::LatencyAxis::Linear)]
    pub latency_axis: svg::LatencyAxis,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Target server.
    #[arg(long, value_name = "IP:PORT", required = true)]
    pub target: Option<SocketAddrV4>,
    #[arg(long, value_enum, default_value_t = Mode::Rps)]
    pub mode: Mode,
    /// Interface of the AF_XDP client (not needed with --kernel).
    #[arg(long, required_unless_present = "kernel")]
    pub iface: Option<String>,
    /// The AF_XDP client's own address (not configured in the kernel there), with prefix length.
    #[arg(long, value_name = "IP[/PREFIX]", required_unless_present = "kernel")]
    pub addr: Option<String>,
    /// Next hop for a target off the local subnet (AF_XDP client).
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// Run on kernel sockets (epoll, one thread per core) instead of xdptcp.
    #[arg(long)]
    pub kernel: bool,
    /// With --kernel: source address for the connections.
    #[arg(long)]
    pub bind: Option<Ipv4Addr>,
    /// Connections in total (cps: at most in flight).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Seconds to run (default 10, unless --requests is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many requests (cps: connections).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Open loop: total requests (cps: connections) per second; latency from the intended send times.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Request bytes (stream: bytes per write, default 65536).
    #[arg(long)]
    pub request_size: Option<usize>,
    /// Response bytes to wait for (default: the request size, echo semantics).
    #[arg(long)]
    pub response_size: Option<usize>,
    /// Cores to run workers on, one worker each (default: one unpinned worker).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// HTTP/1.1 GET keep-alive requests instead of echo (cps: Connection: close).
    #[arg(long)]
    pub http: bool,
    /// Connect and response timeout, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Write the full percentile distribution in HdrHistogram's .hgrm format.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write every figure as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an SVG latency-by-percentile chart.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Name of this run in the chart legend and JSON (default: the client stack).
    #[arg(long)]
    pub label: Option<String>,
    /// Processes of the server under test: their CPU time per request and memory growth are reported.
    #[arg(long = "server-pid", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Do not check echoed bytes against what was sent.
    #[arg(long)]
    pub no_verify: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Synflood: allow a target outside a lab made by `xdptcp lab up`.
    #[arg(long)]
    pub i_own_this_target: bool,
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,
    /// UMEM frames per queue of the AF_XDP client.
    #[arg(long, default_value_t = 8192)]
    pub frames: u32,
    /// Ceiling: Ethernet frame bytes without FCS (60: the minimum; 1514: a full 1500-byte IP MTU).
    #[arg(long, default_value_t = 60)]
    pub frame_size: usize,
    /// AF_XDP client: control socket name for `xdptcp stat/ss/sysctl/capture/log --name NAME` (default
    /// `bench-IFACE-PID`, printed at start; `none` serves none).
    #[arg(long)]
    pub name: Option<String>,
    /// AF_XDP client: write every frame of the run into this pcapng file (bounded rings: drops are counted and
    /// printed, the workers never wait).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// AF_XDP rings of the client: `raw` (our own) or `xsk-rs`.
    #[arg(long, value_enum, default_value_t = RingsKind::Raw)]
    pub rings: RingsKind,
    /// AF_XDP socket mode of the client: auto, copy, zero-copy.
    #[arg(long, value_enum, default_value_t = XskBind::Auto)]
    pub xsk_bind: XskBind,
    /// AF_XDP client with several cores: who owns a connection (`nic`, `hash` or `auto`, as `xdptcp serve`).
    #[arg(long, value_enum, default_value_t = crate::stack::steer::SteeringMode::Auto)]
    pub steering: crate::stack::steer::SteeringMode,
    /// AF_XDP client: the queue of each worker, in --cores order (default 0, 1, ...).
    #[arg(long, value_delimiter = ',')]
    pub queues: Vec<u32>,
    /// AF_XDP client: the NIC's RSS key when it cannot be read (as `xdptcp serve --rss-key`).
    #[arg(long, value_name = "HEX")]
    pub rss_key: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    #[arg(long, value_enum)]
    pub app: ServerApp,
    #[arg(long, value_name = "IP:PORT")]
    pub listen: SocketAddrV4,
    /// One thread per listed core (default: one unpinned thread).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    #[arg(long, default_value_t = 4096)]
    pub backlog: i32,
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is handled exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

fn pin(core: Option<usize>) {
    crate::host::pin_current(core, "this thread");
}

pub fn run_server(a: ServerArgs) -> anyhow::Result<ExitCode> {
    sys::raise_fd_limit();
    let stop = stop_flag()?;
    let threads = a.cores.len().max(1);
    let counters = Arc::new(ServerCounters::default());
    let mut handles = Vec::new();
    for i in 0..threads {
        // All listeners are bound before any thread runs, so a client never finds the port closed.
        let l = server::listen_socket(a.listen, a.backlog).with_context(|| format!("listening on {}", a.listen))?;
        let (stop, counters, core) = (stop.clone(), counters.clone(), a.cores.get(i).copied());
        handles.push(std::thread::spawn(move || {
            pin(core);
            server::run_thread_with(l, a.app, &stop, counters)
        }));
    }
    eprintln!(
        "xdptcp bench server: serving {} on {} with kernel sockets (epoll), {threads} thread(s), cores {:?}, ready",
        a.app.name(),
        a.listen,
        a.cores
    );
    for h in handles {
        match h.join() {
            Ok(r) => {
                r?;
            }
            Err(_) => bail!("a server thread panicked"),
        }
    }
    let l = |x: &AtomicU64| x.load(Ordering::Relaxed);
    println!(
        "accepted {} requests {} bytes_in {} bytes_out {}",
        l(&counters.accepted),
        l(&counters.requests),
        l(&counters.bytes_in),
        l(&counters.bytes_out)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_plot(p: PlotArgs) -> anyhow::Result<ExitCode> {
    let mut series = Vec::new();
    for input in &p.inputs {
        let (label, file) = input.split_once('=').with_context(|| format!("{input:?} is not LABEL=FILE.hgrm"))?;
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        series.push(series_from_hgrm(label, &text));
    }
    std::fs::write(&p.out, svg::render_with(&p.title, &series, p.latency_axis))
        .with_context(|| format!("writing {}", p.out.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// A chart line from `.hgrm` text (values in milliseconds).
fn series_from_hgrm(label: &str, text: &str) -> svg::Series {
    let points = hgrm::parse(text).into_iter().map(|(ms, q)| (q, (ms * 1e6).round() as u64)).collect();
    svg::Series { name: label.to_string(), points }
}

/// The longest run with `--requests` and no `--duration`.
const MAX_UNTIMED_RUN: Duration = Duration::from_secs(3600);

/// The workload of the whole run, from the arguments.
fn workload(a: &RunArgs) -> anyhow::Result<Workload> {
    let target = a.target.context("--target is required")?;
    let mut w = Workload::new(a.mode, target);
    if a.connections == 0 {
        bail!("--connections must be at least 1");
    }
    w.connections = a.connections;
    let default_size = if a.mode == Mode::Stream { 65536 } else { 64 };
    w.request_size = a.request_size.unwrap_or(default_size);
    w.response_size = a.response_size.unwrap_or(w.request_size);
    if w.request_size == 0 && !a.http && matches!(a.mode, Mode::Rps | Mode::Cps | Mode::Stream) {
        bail!("--request-size must be at least 1");
    }
    if w.request_size > 64 << 20 || w.response_size > 64 << 20 {
        bail!("request and response sizes are limited to 64 MiB");
    }
    w.http = a.http;
    if !a.http && w.response_size == 0 && matches!(a.mode, Mode::Rps | Mode::Cps) {
        bail!("--response-size must be at least 1: a request is complete when its response has arrived");
    }
    if let Some(r) = a.rate {
        if !(r > 0.0 && r.is_finite()) {
            bail!("--rate must be a positive number");
        }
        if !matches!(a.mode, Mode::Rps | Mode::Cps | Mode::Synflood | Mode::Ceiling) {
            bail!("--rate applies to rps, cps, synflood and ceiling");
        }
    }
    w.rate = a.rate;
    w.requests = a.requests;
    if !(a.timeout > 0.0 && a.timeout < 3600.0) {
        bail!("--timeout must be between 0 and 3600 seconds");
    }
    w.timeout = Duration::from_secs_f64(a.timeout);
    w.verify = !a.no_verify;
    Ok(w)
}

pub fn run_bench(a: RunArgs) -> anyhow::Result<ExitCode> {
    let w = workload(&a)?;
    let duration = match (a.duration, a.requests) {
        (Some(d), _) if !(d > 0.0 && d <= 86_400.0) => bail!("--duration must be between 0 and 86400 seconds"),
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        // A request count alone ends the run when it is reached, or after an hour whatever happens (a server
        // that refuses every connection would otherwise keep the run going forever).
        (None, Some(_)) if matches!(a.mode, Mode::Rps | Mode::Cps) => Some(MAX_UNTIMED_RUN),
        (None, _) => Some(Duration::from_secs(10)),
    };
    if a.kernel && (a.pcap.is_some() || a.name.is_some()) {
        bail!("--pcap and --name belong to the AF_XDP client; capture kernel sockets with tcpdump");
    }
    let stop = stop_flag()?;
    sys::raise_fd_limit();
    if matches!(a.mode, Mode::Synflood | Mode::Ceiling) {
        return run_synflood(&a, &w, duration.unwrap_or(Duration::from_secs(10)), &stop);
    }
    if a.mode == Mode::Cps && a.kernel {
        warn_tw_reuse();
    }
    let workers = a.cores.len().max(1);
    let parts = w.split(workers);
    let clock = Clock::new();
    let go = Arc::new(AtomicBool::new(false));
    let stack = if a.kernel { "kernel (epoll)" } else { "xdptcp (AF_XDP)" };
    let (progress, runner) = if a.kernel {
        start_kernel(&a, parts, clock, stop.clone(), go.clone())
    } else {
        let o = XdpOptions {
            iface: a.iface.clone().context("--iface is required without --kernel")?,
            addr: a.addr.clone().context("--addr is required without --kernel")?,
            gateway: a.gateway,
            cores: a.cores.clone(),
            xdp_mode: a.xdp_mode,
            frames: a.frames,
            control_name: control_name(&a),
            pcap: a.pcap.clone(),
            rings: a.rings,
            xsk_bind: a.xsk_bind,
            steering: a.steering,
            queues: a.queues.clone(),
            rss_key: a.rss_key.clone(),
        };
        let client = XdpClient::start(&o, parts, clock, stop.clone(), go.clone())?;
        if !a.quiet {
            eprintln!("{}", client.banner);
        }
        (client.progress.clone(), Runner::Xdp(Box::new(client)))
    };
    let info = RunInfo {
        mode: a.mode,
        target: w.target.to_string(),
        stack: a.label.clone().unwrap_or_else(|| stack.to_string()),
        workers: progress.len(),
        connections: w.connections,
        request_size: w.request_size,
        response_size: w.response_size,
        http: w.http,
        rate: w.rate,
    };

    // Baselines, then go.
    let rss0 = sys::own_rss().unwrap_or(0);
    let slab0 = sys::slab_bytes();
    let server0 = sys::usage_of(&a.server_pids);
    let busy0 = sys::system_busy_seconds();
    go.store(true, Ordering::Relaxed);
    let t0 = Instant::now();

    let mut per_second = Vec::new();
    let mut per_worker_second = Vec::new();
    let mut last: Vec<ProgressSnapshot> = progress.iter().map(|p| p.snapshot()).collect();
    let mut last_total = sum_progress(&progress);
    let mut next_tick = t0 + Duration::from_secs(1);
    let mut memory: Option<(Memory, Option<i64>)> = None;
    let mut all_up_since: Option<Instant> = None;
    // Bounded by the duration, the request limit, or a signal.
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let done = progress.iter().all(|p| p.is_done());
        let timed_out = duration.is_some_and(|d| now.duration_since(t0) >= d);
        if a.mode == Mode::Hold && memory.is_none() {
            let total = sum_progress(&progress);
            let all_up = total.established as usize >= w.connections;
            if all_up && all_up_since.is_none() {
                all_up_since = Some(now);
            }
            // Sample once everything is established and has settled, or at the very end with what there is.
            if all_up_since.is_some_and(|t| now.duration_since(t) >= Duration::from_millis(300)) || timed_out {
                memory = Some(sample_memory(&a, &total, rss0, slab0, &server0));
                // bench/hold waits for this line to read the server's own accounting while the connections are
                // still held.
                eprintln!(
                    "xdptcp bench: hold: {} of {} established after {:.1} s, memory sampled",
                    total.established,
                    w.connections,
                    now.duration_since(t0).as_secs_f64()
                );
            }
        }
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            let total = sum_progress(&progress);
            let rate = (total.requests - last_total.requests) as f64;
            per_second.push(rate);
            for (p, l) in progress.iter().zip(last.iter_mut()) {
                let s = p.snapshot();
                per_worker_second.push((s.requests - l.requests) as f64);
                *l = s;
            }
            if !a.quiet {
                eprintln!("{}", progress_line(a.mode, now.duration_since(t0), &total, &last_total, w.connections));
            }
            last_total = total;
        }
        if done || timed_out || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let server1 = sys::usage_of(&a.server_pids);
    let busy1 = sys::system_busy_seconds();
    stop.store(true, Ordering::Relaxed);
    let Finished { stats: stats_list, client_time_wait, client_counters } = runner.wait(&progress)?;
    let stats = merge_all(&stats_list);

    let server = (!a.server_pids.is_empty()).then(|| ServerUsage {
        pids: a.server_pids.clone(),
        cpu_seconds: (server1.cpu_seconds - server0.cpu_seconds).max(0.0),
        rss_delta_bytes: memory.as_ref().and_then(|m| m.1),
    });
    let extras = Extras {
        per_second,
        per_worker_second,
        client_time_wait,
        memory: memory.map(|m| m.0),
        server,
        system_cpu_seconds: busy0.zip(busy1).map(|(a, b)| (b - a).max(0.0)),
        client_counters,
    };
    let label = info.stack.clone();
    let report = Report { info, stats, extras };
    print!("{}", report.text());
    write_outputs(&a, &label, &report)?;
    let nothing = match a.mode {
        Mode::Rps | Mode::Cps => report.stats.requests == 0,
        _ => report.stats.connections_opened == 0,
    };
    Ok(if nothing { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// The kernel client's TIME_WAIT count is per namespace; in a cps run it fills up fast without `tcp_tw_reuse`.
fn warn_tw_reuse() {
    let reuse = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_tw_reuse").unwrap_or_default();
    if reuse.trim() != "1" {
        eprintln!(
            "xdptcp bench: note: net.ipv4.tcp_tw_reuse is {} here; a long cps run may run out of ports \
             (the xdptcp client reuses TIME_WAIT tuples after 1 s, like tcp_tw_reuse=1)",
            reuse.trim()
        );
    }
}

fn sample_memory(
    a: &RunArgs,
    total: &ProgressSnapshot,
    rss0: u64,
    slab0: Option<u64>,
    server0: &sys::Usage,
) -> (Memory, Option<i64>) {
    let rss = sys::own_rss().unwrap_or(rss0);
    let server = sys::usage_of(&a.server_pids);
    let m = Memory {
        connections: total.established,
        rss_delta_bytes: rss as i64 - rss0 as i64,
        engine_buffer_bytes: (!a.kernel).then_some(total.engine_buffer_bytes),
        engine_connections: (!a.kernel).then_some(total.engine_connections),
        kernel_slab_delta_bytes: slab0.zip(sys::slab_bytes()).map(|(a, b)| b as i64 - a as i64),
    };
    let server_rss = (!a.server_pids.is_empty()).then(|| server.rss_bytes as i64 - server0.rss_bytes as i64);
    (m, server_rss)
}

fn progress_line(mode: Mode, t: Duration, s: &ProgressSnapshot, last: &ProgressSnapshot, conns: usize) -> String {
    let secs = t.as_secs_f64().round() as u64;
    let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
    let mb = |b: f64| b / (1024.0 * 1024.0);
    match mode {
        Mode::Stream => format!(
            "[{secs:>4}s] {:.3} Gbit/s out {:.3} Gbit/s in, conns {}/{conns}, errors {}",
            d(s.bytes_sent, last.bytes_sent) * 8.0 / 1e9,
            d(s.bytes_received, last.bytes_received) * 8.0 / 1e9,
            s.established,
            s.errors
        ),
        Mode::Hold => format!(
            "[{secs:>4}s] established {}/{conns}, errors {}{}",
            s.established,
            s.errors,
            if s.engine_connections > 0 {
                format!(", engine connections {} buffers {} B", s.engine_connections, s.engine_buffer_bytes)
            } else {
                String::new()
            }
        ),
        _ => format!(
            "[{secs:>4}s] {:.0} {}/s, {:.2} MB/s in, {:.2} MB/s out, conns {}/{conns}, errors {}",
            d(s.requests, last.requests),
            if mode == Mode::Cps { "conn" } else { "req" },
            mb(d(s.bytes_received, last.bytes_received)),
            mb(d(s.bytes_sent, last.bytes_sent)),
            s.open,
            s.errors
        ),
    }
}

/// Client-side counters worth showing when non-zero: they explain slow connects and retransmissions.
const CLIENT_TROUBLE: &[Counter] = &[
    Counter::TCPSynRetrans,
    Counter::RetransSegs,
    Counter::TCPTimeouts,
    Counter::OutRsts,
    Counter::TCPConnectNoPorts,
    Counter::TxRingFull,
    Counter::TxNoBuffer,
    Counter::FillRingEmpty,
    Counter::ArpQueueDrops,
    Counter::ArpResolveFails,
    Counter::RxMalformed,
    Counter::InCsumErrors,
];

/// What the workers left when they ended.
struct Finished {
    stats: Vec<WorkerStats>,
    /// The client's TIME_WAIT connections.
    client_time_wait: Option<u64>,
    /// xdptcp: the client stack's trouble counters.
    client_counters: Vec<(String, u64)>,
}

enum Runner {
    Xdp(Box<XdpClient>),
    Kernel(Vec<std::thread::JoinHandle<std::io::Result<WorkerStats>>>),
}

impl Runner {
    /// Waits for the workers.
    fn wait(self, progress: &[Arc<Progress>]) -> anyhow::Result<Finished> {
        match self {
            Runner::Xdp(c) => {
                let (stats, counters) = c.wait()?;
                let tw = progress.iter().map(|p| p.engine_time_wait.load(Ordering::Relaxed)).sum();
                let mut trouble: Vec<(String, u64)> = CLIENT_TROUBLE
                    .iter()
                    .map(|&c| (c.name().to_string(), counters.get(c)))
                    .filter(|(_, v)| *v > 0)
                    .collect();
                // Several workers: the hand-offs between them, zeros included (zero is the goal).
                if progress.len() > 1 {
                    for c in [Counter::HandoffOut, Counter::HandoffIn, Counter::HandoffDrop] {
                        trouble.push((c.name().to_string(), counters.get(c)));
                    }
                }
                Ok(Finished { stats, client_time_wait: Some(tw), client_counters: trouble })
            }
            Runner::Kernel(handles) => {
                let mut out = Vec::new();
                for h in handles {
                    match h.join() {
                        Ok(r) => out.push(r.context("kernel client worker")?),
                        Err(_) => bail!("a kernel client worker panicked"),
                    }
                }
                Ok(Finished { stats: out, client_time_wait: sys::kernel_time_wait(), client_counters: Vec::new() })
            }
        }
    }
}

fn start_kernel(
    a: &RunArgs,
    parts: Vec<Workload>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    go: Arc<AtomicBool>,
) -> (Vec<Arc<Progress>>, Runner) {
    let mut progress = Vec::new();
    let mut handles = Vec::new();
    for (i, w) in parts.into_iter().enumerate() {
        let p = Arc::new(Progress::default());
        progress.push(p.clone());
        let (stop, go, core, bind) = (stop.clone(), go.clone(), a.cores.get(i).copied(), a.bind);
        handles.push(std::thread::spawn(move || {
            pin(core);
            kernel::run_worker(w, bind, clock, p, &stop, &go)
        }));
    }
    (progress, Runner::Kernel(handles))
}

fn write_outputs(a: &RunArgs, label: &str, r: &Report) -> anyhow::Result<()> {
    if let Some(path) = &a.hgrm {
        std::fs::write(path, hgrm::render(&r.stats.latency)).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.json {
        std::fs::write(path, r.json().to_pretty()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.plot {
        let title = format!("{} latency by percentile, {}", r.info.mode.name(), r.info.target);
        let svg = svg::render(&title, &[svg::Series::from_histogram(label, &r.stats.latency)]);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The AF_XDP client's control socket name: `--name`, `none` for none, default `bench-IFACE-PID`.
fn control_name(a: &RunArgs) -> Option<String> {
    match a.name.as_deref() {
        Some("none") => None,
        Some(n) => Some(n.to_string()),
        None => Some(format!("bench-{}-{}", a.iface.as_deref().unwrap_or("x"), std::process::id())),
    }
}

/// `--mode synflood` and `--mode ceiling`: raw frames over AF_XDP at a rate (or as fast as they go).
fn run_synflood(a: &RunArgs, w: &Workload, duration: Duration, stop: &AtomicBool) -> anyhow::Result<ExitCode> {
    let why = synflood::check_allowed(*w.target.ip(), a.i_own_this_target)?;
    let ceiling = a.mode == Mode::Ceiling;
    let unit = if ceiling { "frames" } else { "SYN" };
    if a.kernel {
        bail!("{} writes raw frames over AF_XDP: drop --kernel and give --iface/--addr", a.mode.name());
    }
    let o = XdpOptions {
        iface: a.iface.clone().context("--iface is required")?,
        addr: a.addr.clone().context("--addr is required")?,
        gateway: a.gateway,
        cores: a.cores.clone(),
        xdp_mode: a.xdp_mode,
        frames: a.frames,
        // The flood writes raw frames without an engine: nothing to look inside.
        control_name: None,
        pcap: None,
        rings: a.rings,
        xsk_bind: a.xsk_bind,
        steering: a.steering,
        queues: a.queues.clone(),
        rss_key: a.rss_key.clone(),
    };
    let rate = a.rate.unwrap_or(0.0);
    if !a.quiet {
        eprintln!("xdptcp bench: {} allowed: {why}", a.mode.name());
    }
    let sent = Arc::new(AtomicU64::new(0));
    let printer = (!a.quiet).then(|| per_second_printer(sent.clone(), unit));
    pin(a.cores.first().copied());
    let r = if ceiling {
        ceiling::send(&o, w.target, a.frame_size, rate, duration, stop, &sent)
    } else {
        synflood::run(&o, w.target, rate, duration, stop, &sent)
    };
    if let Some((done, p)) = printer {
        done.store(true, Ordering::Relaxed);
        let _ = p.join();
    }
    let r = r?;
    let pps = if r.seconds > 0.0 { r.sent as f64 / r.seconds } else { 0.0 };
    let frame = ceiling::packet_len(a.frame_size) + 14;
    let gbps = pps * frame as f64 * 8.0 / 1e9;
    if ceiling {
        println!("Ceiling @ {} for {:.2}s, {frame}-byte frames", w.target, r.seconds);
        println!("  {} frames sent, {pps:.0} frames/s, {gbps:.3} Gbit/s", r.sent);
    } else {
        println!("Synflood @ {} for {:.2}s", w.target, r.seconds);
        println!("  {} SYNs sent, {pps:.0} SYN/s", r.sent);
    }
    println!("  asked: {}", if rate > 0.0 { format!("{rate}/s") } else { "max".into() });
    println!("  tx path refusals (ring full / no frame): {}", r.refused);
    if let Some(path) = &a.json {
        let mut j = crate::bench::json::Json::object()
            .field("mode", a.mode.name())
            .field("target", w.target.to_string())
            .field("sent", r.sent)
            .field("seconds", r.seconds)
            .field("packets_per_second", pps)
            .field("tx_refusals", r.refused);
        if ceiling {
            j = j.field("frame_size", frame as u64).field("gbps", gbps);
        }
        std::fs::write(path, j.to_pretty())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A thread printing the per-second increase of `count` on stderr until the returned flag is set.
fn per_second_printer(count: Arc<AtomicU64>, unit: &'static str) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let h = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut last = 0;
        while !d.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            let s = count.load(Ordering::Relaxed);
            eprintln!("[{:>4}s] {} {unit}/s", t0.elapsed().as_secs(), s - last);
            last = s;
        }
    });
    (done, h)
}

pub fn run_sink(a: SinkArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_flag()?;
    let o = XdpOptions {
        iface: a.iface.clone(),
        addr: a.addr.clone(),
        gateway: None,
        cores: a.core.into_iter().collect(),
        xdp_mode: a.xdp_mode,
        frames: a.frames,
        control_name: None,
        pcap: None,
        rings: RingsKind::Raw,
        xsk_bind: XskBind::Auto,
        steering: crate::stack::steer::SteeringMode::Auto,
        queues: Vec::new(),
        rss_key: None,
    };
    let duration = match a.duration {
        Some(d) if !(d > 0.0 && d <= 86_400.0) => bail!("--duration must be between 0 and 86400 seconds"),
        Some(d) => Duration::from_secs_f64(d),
        None => Duration::from_secs(86_400),
    };
    let counted = Arc::new(AtomicU64::new(0));
    let printer = (!a.quiet).then(|| per_second_printer(counted.clone(), "frames"));
    pin(a.core);
    eprintln!("xdptcp bench sink: counting TCP frames to {} on {}, ready", a.addr, a.iface);
    let r = ceiling::sink(&o, duration, &stop, &counted);
    if let Some((done, p)) = printer {
        done.store(true, Ordering::Relaxed);
        let _ = p.join();
    }
    let r = r?;
    println!(
        "Sink: {} frames, {} bytes in {:.2}s (first to last): {:.0} frames/s, {:.3} Gbit/s",
        r.frames,
        r.bytes,
        r.seconds,
        r.packets_per_second(),
        r.gbps()
    );
    if let Some(path) = &a.json {
        let j = crate::bench::json::Json::object()
            .field("mode", "sink")
            .field("frames", r.frames)
            .field("bytes", r.bytes)
            .field("seconds", r.seconds)
            .field("packets_per_second", r.packets_per_second())
            .field("gbps", r.gbps());
        std::fs::write(path, j.to_pretty())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_parses() {
        let a = parse(&["--target", "198.18.0.1:7", "--kernel", "--mode", "cps", "--cores", "0,1", "--rate", "1000"])
            .unwrap();
        assert_eq!(a.run.mode, Mode::Cps);
        assert_eq!(a.run.cores, vec![0, 1]);
        let w = workload(&a.run).unwrap();
        assert_eq!((w.request_size, w.response_size, w.rate), (64, 64, Some(1000.0)));
        // Without --kernel the AF_XDP client needs its interface and address.
        assert!(parse(&["--target", "198.18.0.1:7"]).is_err());
        assert!(parse(&["--target", "198.18.0.1:7", "--iface", "xc0", "--addr", "198.18.1.3/24"]).is_ok());
        // Stream defaults to 64 KiB writes.
        let a = parse(&["--target", "198.18.0.1:9", "--kernel", "--mode", "stream"]).unwrap();
        assert_eq!(workload(&a.run).unwrap().request_size, 65536);
    }

    #[test]
    fn hgrm_files_become_chart_lines() {
        let mut h = crate::bench::stats::new_histogram();
        for v in 1..=100u64 {
            h.record(v * 10_000).unwrap();
        }
        let s = series_from_hgrm("x", &hgrm::render(&h));
        assert_eq!(s.name, "x");
        assert_eq!(s.points.len(), hgrm::rows(&h).len());
        let (q, ns) = *s.points.last().unwrap();
        assert_eq!(q, 1.0);
        assert_eq!(ns, 1_000_000, "1.000 ms");
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |extra: &[&str]| {
            let mut v = vec!["--target", "198.18.0.1:7", "--kernel"];
            v.extend_from_slice(extra);
            workload(&parse(&v).unwrap().run).is_err()
        };
        assert!(bad(&["--rate", "0"]));
        assert!(bad(&["--rate=-5"]));
        assert!(bad(&["--mode", "hold", "--rate", "10"]));
        assert!(bad(&["--connections", "0"]));
        assert!(bad(&["--request-size", "0"]));
        assert!(bad(&["--timeout", "0"]));
        assert!(bad(&["--response-size", "0"]));
        assert!(!bad(&["--response-size", "0", "--mode", "stream"]));
    }

    #[test]
    fn progress_lines() {
        let s = ProgressSnapshot { requests: 1500, bytes_received: 2 << 20, open: 4, ..Default::default() };
        let l = ProgressSnapshot { requests: 500, ..Default::default() };
        assert_eq!(
            progress_line(Mode::Rps, Duration::from_secs(3), &s, &l, 4),
            "[   3s] 1000 req/s, 2.00 MB/s in, 0.00 MB/s out, conns 4/4, errors 0"
        );
        let s = ProgressSnapshot { established: 7, ..Default::default() };
        assert_eq!(progress_line(Mode::Hold, Duration::from_secs(1), &s, &l, 10), "[   1s] established 7/10, errors 0");
    }
}
