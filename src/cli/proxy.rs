//! `xdptcp proxy`: the L4 load balancer on a stack the host builder assembles, one relay per worker.
//!
//! The one-pool case comes from flags (`--listen`, `--backend`, `--balance`); several frontends from a TOML file
//! (`--config`, see [`crate::proxy::config`]). TCP settings come from `--tcp-config` and `--set`. SIGINT/SIGTERM
//! drain: accept nothing more, let open pairs finish for up to `--drain-timeout`; a second signal exits at once.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::app::{AppSpec, ProxySpec};
use crate::host::server::{ServeSpec, Server};
use crate::host::{parse_addr, HostBuilder, PcapOptions, Pinning};
use crate::proxy::{Balance, ProxyConfig};
use crate::stack::steer::SteeringMode;
use crate::tcp::Config;
use crate::xdp::{RingsKind, XdpMode, XskBind};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Interface to serve on (clients and backends are reached through it: one-armed, or via --gateway).
    #[arg(long)]
    pub iface: String,
    /// The stack's own IPv4 address, with prefix length. Must not be configured in the kernel there.
    #[arg(long, value_name = "IP[/PREFIX]")]
    pub addr: String,
    /// Next hop for destinations off the local subnet.
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// Ports to listen on (one pool; or use --config).
    #[arg(long, value_delimiter = ',')]
    pub listen: Vec<u16>,
    /// Backends of the one pool, IP:PORT.
    #[arg(long, value_delimiter = ',')]
    pub backend: Vec<SocketAddrV4>,
    /// Balancing algorithm of the one pool.
    #[arg(long, value_enum, default_value_t = BalanceArg::Roundrobin)]
    pub balance: BalanceArg,
    /// Proxy configuration file (TOML: frontends, backend pools, weights, options); excludes the pool flags.
    #[arg(long, conflicts_with_all = ["listen", "backend"])]
    pub config: Option<PathBuf>,
    /// TCP configuration file (TOML, sysctl-style names).
    #[arg(long)]
    pub tcp_config: Option<PathBuf>,
    /// TCP configuration overrides, `name=value`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Queues to serve (default: all receive queues of the interface).
    #[arg(long, value_delimiter = ',')]
    pub queues: Vec<u32>,
    /// Cores to pin the workers to, in queue order (default: the available cores, round-robin).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Control socket name (`xdptcp stat/ss --name NAME`); `none` for none.
    #[arg(long)]
    pub name: Option<String>,
    /// Serve the counters in Prometheus text format on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Write every frame of the run into this pcapng file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,
    /// Who owns a connection with several queues (see `serve --steering`).
    #[arg(long, value_enum, default_value_t = SteeringMode::Auto)]
    pub steering: SteeringMode,
    /// Accept-queue length of each listener (clients beyond the limits wait here).
    #[arg(long, default_value_t = 4096)]
    pub backlog: u32,
    /// UMEM frames (2 KiB each) per queue.
    #[arg(long, default_value_t = 16384)]
    pub frames: u32,
    /// Seconds open pairs get to finish on SIGTERM.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalanceArg {
    Roundrobin,
    Leastconn,
    Maglev,
}

impl From<BalanceArg> for Balance {
    fn from(b: BalanceArg) -> Balance {
        match b {
            BalanceArg::Roundrobin => Balance::RoundRobin,
            BalanceArg::Leastconn => Balance::LeastConn,
            BalanceArg::Maglev => Balance::Maglev,
        }
    }
}

/// The proxy configuration the arguments describe.
pub fn proxy_config(args: &Args) -> anyhow::Result<ProxyConfig> {
    match &args.config {
        Some(path) => Ok(ProxyConfig::from_file(path).with_context(|| format!("--config {}", path.display()))?),
        None => {
            if args.listen.is_empty() || args.backend.is_empty() {
                bail!("give --listen and --backend, or --config FILE");
            }
            Ok(ProxyConfig::from_flags(&args.listen, &args.backend, args.balance.into())?)
        }
    }
}

fn tcp_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.tcp_config {
        Some(path) => Config::from_toml_file(path).with_context(|| format!("loading {}", path.display()))?,
        None => Config::default(),
    };
    config.apply_overrides(&args.set).context("--set")?;
    Ok(config)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let proxy = proxy_config(&args)?;
    let (addr, prefix_len) = parse_addr(&args.addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let control = args.name.clone().unwrap_or_else(|| format!("{}-{}", args.iface, std::process::id()));
    let pinning = if args.cores.is_empty() { Pinning::Auto } else { Pinning::Cores(args.cores.clone()) };
    let builder = HostBuilder::new(&args.iface, &format!("{addr}/{prefix_len}"))?
        .gateway(args.gateway)
        .queues(args.queues.clone())
        .pinning(pinning)
        .rings(RingsKind::Raw, XskBind::Auto)
        .frames(args.frames)
        .xdp_mode(args.xdp_mode)
        .steering(args.steering, None)
        .control((control != "none").then_some(control))
        .metrics(args.metrics.clone())
        .pcap(args.pcap.clone().map(|path| PcapOptions {
            path,
            filter: crate::control::CaptureFilter::default(),
            snaplen: crate::control::DEFAULT_SNAPLEN,
            max_bytes: crate::control::pcapfile::DEFAULT_PCAP_MAX_BYTES,
        }))
        .config(tcp_config(&args)?)
        .kernel_addr_hint(&format!(
            "Remove it (ip addr del {addr}/{prefix_len} dev {}) or pick another address.",
            args.iface
        ));
    let mut listen: Vec<u16> = proxy.frontends.iter().flat_map(|f| f.listen.iter().copied()).collect();
    listen.sort_unstable();
    let backends: usize = proxy.frontends.iter().map(|f| f.backends.len()).sum();
    let spec = ServeSpec {
        app: AppSpec::Proxy(Box::new(ProxySpec { config: proxy, local_ip: addr })),
        listen,
        backlog: args.backlog,
        hold_accept: Vec::new(),
        app_threads: 0,
        app_ring: 0,
        app_cores: Vec::new(),
        drain: Duration::from_secs_f64(args.drain_timeout.clamp(0.0, 3600.0)),
    };
    let server = Server::start(builder, &spec, stop)?;
    eprintln!("{} ({backends} backend(s))", server.banner());
    let report = server.wait()?;
    print!("{}", report.counters.to_text());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        use clap::Parser;
        let base = ["x", "--iface", "veth0", "--addr", "198.18.0.1/24"];
        Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.args)
    }

    #[test]
    fn flags_or_a_file() {
        let a =
            parse(&["--listen", "80,81", "--backend", "198.18.0.10:80,198.18.0.11:80", "--balance", "maglev"]).unwrap();
        let c = proxy_config(&a).unwrap();
        assert_eq!(c.frontends[0].listen, vec![80, 81]);
        assert_eq!(c.frontends[0].balance, Balance::Maglev);
        assert_eq!(c.frontends[0].backends.len(), 2);
        assert!(proxy_config(&parse(&["--listen", "80"]).unwrap()).is_err(), "no backend");
        assert!(parse(&["--listen", "80", "--config", "x.toml"]).is_err(), "file excludes the pool flags");
        assert!(parse(&["--backend", "198.18.0.10"]).is_err(), "port needed");
        let path = std::env::temp_dir().join(format!("xdptcp-proxy-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[[frontend]]\nlisten = [80]\n[[frontend.backend]]\naddr = \"198.18.0.10:80\"\nweight = 999\n",
        )
        .unwrap();
        let e = proxy_config(&parse(&["--config", path.to_str().unwrap()]).unwrap()).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        let e = format!("{e:#}");
        assert!(e.contains("line 5") && e.contains("0..=256"), "{e}");
    }
}
