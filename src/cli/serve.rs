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
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::app::AppSpec;
use crate::host::server::{ServeSpec, Server};
use crate::host::{parse_addr, HostBuilder, PcapOptions, Pinning};
use crate::stack::steer::SteeringMode;
use crate::tcp::{Config, Counter};
use crate::xdp::{BusyPoll, RingsKind, XdpMode, XskBind};

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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    // A second SIGINT/SIGTERM while the first is being handled exits at once (code 1).
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let builder = host_builder(&args, load_config(&args)?)?;
    let server = Server::start(builder, &serve_spec(&args), stop.clone())?;
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

/// The TCP configuration: defaults, then the file, then the `--set` overrides.
pub fn load_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_toml_file(path).with_context(|| format!("loading {}", path.display()))?,
        None => Config::default(),
    };
    config.apply_overrides(&args.set).context("--set")?;
    Ok(config)
}

/// The stack `serve` runs on, as the arguments describe it.
pub fn host_builder(args: &Args, config: Config) -> anyhow::Result<HostBuilder> {
    let (addr, prefix_len) = parse_addr(&args.addr)?;
    let pcap_filter = crate::control::CaptureFilter::parse(&args.pcap_filter).context("--pcap-filter")?;
    let pinning = if args.no_pin {
        Pinning::Unpinned
    } else if !args.cores.is_empty() {
        Pinning::Cores(args.cores.clone())
    } else {
        Pinning::Auto
    };
    let control = args.name.clone().unwrap_or_else(|| format!("{}-{}", args.iface, std::process::id()));
    Ok(HostBuilder::new(&args.iface, &format!("{addr}/{prefix_len}"))?
        .gateway(args.gateway)
        .queues(args.queues.clone())
        .pinning(pinning)
        .rings(args.rings, args.xsk_bind)
        .frames(args.frames)
        .xdp_mode(args.xdp_mode)
        .busy_poll((args.busy_poll > 0).then_some(BusyPoll { usecs: args.busy_poll, budget: args.busy_poll_budget }))
        .steering(args.steering, args.rss_key.clone())
        .control((control != "none").then_some(control))
        .metrics(args.metrics.clone())
        .pcap(args.pcap.clone().map(|path| PcapOptions { path, filter: pcap_filter, snaplen: args.pcap_snaplen }))
        .config(config)
        .kernel_addr_hint(&format!(
            "Remove it (ip addr del {addr}/{prefix_len} dev {}) or pick another address.",
            args.iface
        )))
}

/// What `serve` runs on the stack.
pub fn serve_spec(args: &Args) -> ServeSpec {
    ServeSpec {
        app: match args.app {
            AppName::Echo => AppSpec::Echo { abort_after: args.abort_after },
            AppName::Discard => AppSpec::Discard,
            AppName::Http => AppSpec::Http,
        },
        listen: args.listen.clone(),
        backlog: args.backlog,
        hold_accept: args.hold_accept.clone(),
        app_threads: args.app_threads,
        app_ring: args.app_ring,
        app_cores: args.app_cores.clone(),
        drain: Duration::from_secs_f64(args.drain_timeout.clamp(0.0, 3600.0)),
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
}
