//! `xdptcp sim`: two engines against each other in the deterministic simulator, with a summary and an optional
//! ladder trace.

use std::process::ExitCode;
use std::time::Duration;

use crate::sim::{run_scenario, LinkConfig, Scenario, ScenarioConfig};
use crate::tcp::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value = "transfer")]
    scenario: Scenario,
    /// Loss probability per packet, each direction (0..1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Reordering probability per packet.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Duplication probability per packet.
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    /// Single-bit corruption probability per packet.
    #[arg(long, default_value_t = 0.0)]
    corrupt: f64,
    /// One-way delay in milliseconds.
    #[arg(long, default_value_t = 5.0)]
    delay: f64,
    /// Extra random delay up to this many milliseconds.
    #[arg(long, default_value_t = 0.0)]
    jitter: f64,
    /// Link rate in Mbit/s (unlimited if absent).
    #[arg(long)]
    bandwidth: Option<f64>,
    /// Bytes to transfer (per direction for `bidirectional`).
    #[arg(long, default_value_t = 1_000_000)]
    bytes: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the time-sequence ladder of every segment and state change.
    #[arg(long)]
    trace: bool,
    /// With --trace: print the client's view in conformance-script notation (tests/scripts) instead of the ladder.
    #[arg(long)]
    script: bool,
    /// Print both engines' non-zero counters.
    #[arg(long)]
    counters: bool,
    /// Engine setting for both hosts, like a sysctl (repeatable): `--set tcp_sack=0`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Give up after this many seconds of virtual time.
    #[arg(long, default_value_t = 3600)]
    time_limit: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for (name, p) in [("loss", args.loss), ("reorder", args.reorder), ("dup", args.dup), ("corrupt", args.corrupt)] {
        anyhow::ensure!((0.0..=1.0).contains(&p), "--{name} must be a probability in [0, 1], got {p}");
    }
    anyhow::ensure!(args.delay >= 0.0 && args.jitter >= 0.0, "--delay and --jitter must not be negative");
    let mut config = Config::default();
    config.apply_overrides(&args.set)?;
    let link = LinkConfig {
        loss: args.loss,
        reorder: args.reorder,
        duplicate: args.dup,
        corrupt: args.corrupt,
        delay: Duration::from_secs_f64(args.delay / 1000.0),
        jitter: Duration::from_secs_f64(args.jitter / 1000.0),
        bandwidth: args.bandwidth.map(|m| (m * 1e6) as u64),
        ..Default::default()
    };
    let cfg = ScenarioConfig {
        scenario: args.scenario,
        link,
        bytes: args.bytes,
        seed: args.seed,
        trace: args.trace || args.script,
        config,
        time_limit: Duration::from_secs(args.time_limit),
    };
    let wall = std::time::Instant::now();
    let result = run_scenario(&cfg);
    let elapsed = wall.elapsed();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            println!("scenario {:?} (seed {}): FAILED: {e}", cfg.scenario, cfg.seed);
            return Ok(ExitCode::FAILURE);
        }
    };
    match (&report.trace, &report.script) {
        (_, Some(s)) if args.script => println!("{s}"),
        (Some(t), _) => println!("{t}"),
        _ => {}
    }
    println!("scenario        {:?} (seed {})", report.scenario, report.seed);
    println!("client -> server {} bytes sent, {} received", report.client_sent, report.server_received);
    println!("server -> client {} bytes sent, {} received", report.server_sent, report.client_received);
    println!("sha256 c->s     sent {}", report.client_to_server.0);
    println!("                recv {}", report.client_to_server.1);
    if report.server_sent > 0 {
        println!("sha256 s->c     sent {}", report.server_to_client.0);
        println!("                recv {}", report.server_to_client.1);
    }
    println!("sha256          {}", if report.sha_match { "MATCH" } else { "MISMATCH" });
    println!("segments        {} sent, {} retransmitted", report.segments, report.retransmissions);
    println!("virtual time    {:.6} s", report.virtual_duration.as_secs_f64());
    println!("real time       {:.3} s", elapsed.as_secs_f64());
    if let Some(r) = report.client_closed {
        println!("client closed   {r:?}");
    }
    if let Some(r) = report.server_closed {
        println!("server closed   {r:?}");
    }
    for n in &report.notes {
        println!("note            {n}");
    }
    if args.counters {
        for (name, c) in ["client", "server"].iter().zip(report.counters.iter()) {
            println!("--- {name} counters");
            for (counter, v) in c.iter().filter(|(_, v)| *v != 0) {
                println!("{}:{} {}", counter.group(), counter.name(), v);
            }
        }
    }
    Ok(if report.sha_match { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
