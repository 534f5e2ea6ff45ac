//! The `xdptcp` command line: one file per verb, each with its clap `Args` and a `run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod capture;
pub mod demo;
pub mod lab;
pub mod log;
pub mod proxy;
pub mod serve;
pub mod sim;
pub mod ss;
pub mod stat;
pub mod sysctl;

#[derive(Parser, Debug)]
#[command(name = "xdptcp", version, about = "A kernel-bypass TCP/IPv4 stack on AF_XDP")]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `xdptcp::tcp=debug`. Quiet by default.
    #[arg(long, global = true, env = "XDPTCP_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate load (rps, cps, stream, hold, synflood) on xdptcp over AF_XDP or on kernel sockets; `bench server`
    /// is the kernel-socket epoll server of the comparison.
    Bench(bench::Args),
    /// Bring up the veth lab, serve HTTP on xdptcp in it, drive it from the kernel side, report, tear down.
    Demo(demo::Args),
    /// Serve an application (echo, discard, http) on an interface over AF_XDP.
    Serve(serve::Args),
    /// Run the L4 load balancer / TCP proxy: listen ports relayed to backend pools (see README "Proxy / load
    /// balancer").
    Proxy(proxy::Args),
    /// Create, inspect or remove the embedded veth lab (network namespaces).
    Lab(lab::Args),
    /// Run two engines against each other in the deterministic network simulator.
    Sim(sim::Args),
    /// Counters of a running stack, like nstat (`Group:Name value`; --watch for rates per second).
    Stat(stat::Args),
    /// Sockets of a running stack, like ss -tan (-l listeners, -a all, -i TCP internals, ss filters).
    Ss(ss::Args),
    /// Read or change a running stack's settings, like sysctl.
    Sysctl(sysctl::Args),
    /// Capture a running stack's frames to pcapng, like tcpdump -w.
    Capture(capture::Args),
    /// Log every segment of the connections an ss filter selects, in a running stack's log (--off stops).
    Log(log::Args),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `xdptcp log` lines (target xdptcp::conn) always pass: they exist only while an operator asked for them.
    let directives = if cli.log.contains(crate::control::connlog::TARGET) {
        cli.log.clone()
    } else {
        format!("{},{}=debug", cli.log, crate::control::connlog::TARGET)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,{}=debug", crate::control::connlog::TARGET))
    });
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Command::Bench(a) => bench::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Proxy(a) => proxy::run(a),
        Command::Lab(a) => lab::run(a),
        Command::Sim(a) => sim::run(a),
        Command::Stat(a) => stat::run(a),
        Command::Ss(a) => ss::run(a),
        Command::Sysctl(a) => sysctl::run(a),
        Command::Capture(a) => capture::run(a),
        Command::Log(a) => log::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xdptcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}
