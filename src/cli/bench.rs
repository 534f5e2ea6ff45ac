//! `xdptcp bench`: the load generator, `bench server`, `bench sink` and `bench plot` (the controller is
//! [`crate::bench::controller`]).

use std::process::ExitCode;

use crate::bench::controller::{run_bench, run_plot, run_server, run_sink, PlotArgs, RunArgs, ServerArgs, SinkArgs};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    sub: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Serve echo, http or discard on kernel sockets (epoll, one SO_REUSEPORT listener per thread).
    Server(ServerArgs),
    /// Draw .hgrm files (from --hgrm) into one SVG latency-by-percentile chart.
    Plot(PlotArgs),
    /// Count the frames of `--mode ceiling` on an AF_XDP socket (and recycle them); report packets/s and Gbit/s.
    Sink(SinkArgs),
}

/// Runs `xdptcp bench`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.sub {
        Some(Sub::Server(s)) => run_server(s),
        Some(Sub::Plot(p)) => run_plot(p),
        Some(Sub::Sink(s)) => run_sink(s),
        None => run_bench(args.run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::server::ServerApp;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        a: Args,
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.a)
    }

    #[test]
    fn subcommands_parse() {
        // The server subcommand needs no --target.
        let a = parse(&["server", "--app", "http", "--listen", "198.18.0.2:80"]).unwrap();
        assert!(matches!(a.sub, Some(Sub::Server(ServerArgs { app: ServerApp::Http, .. }))));
        let a = parse(&["plot", "--out", "x.svg", "a=1.hgrm", "b=2.hgrm"]).unwrap();
        assert!(matches!(a.sub, Some(Sub::Plot(PlotArgs { ref inputs, .. })) if inputs.len() == 2));
        let a = parse(&["--target", "198.18.0.1:7", "--kernel"]).unwrap();
        assert!(a.sub.is_none() && a.run.kernel);
        // Without --kernel the AF_XDP client needs its interface and address.
        assert!(parse(&["--target", "198.18.0.1:7"]).is_err());
    }
}
