//! `xdptcp demo`: brings up a uniquely named lab, serves HTTP on xdptcp in it, drives it from the client namespace
//! with curl (one GET, then two requests over one kept-alive connection) and a short `wrk` run if wrk is installed,
//! prints a short report, and tears everything down, also on failure or Ctrl-C.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::bail;

use crate::lab::process::{parse_wrk, run_in, ServerProcess};
use crate::lab::{Lab, LabGuard, SERVER_ADDR};
use crate::tcp::Counter;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Impairment for the lab's router, e.g. "loss 1% delay 1ms".
    #[arg(long)]
    impair: Option<String>,
    /// Seconds of wrk load.
    #[arg(long, default_value_t = 3)]
    duration: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    connections: u32,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())?;
    }
    let exe = std::env::current_exe()?;
    let name = format!("xdpdemo{}", std::process::id());
    println!("== lab {name}: up");
    let lab = LabGuard::up(&name, args.impair.as_deref(), &exe)?;
    // Whatever happens in the demo, the server and the lab go away afterwards (guards, in this order).
    let result = demo(&lab, &exe, &args, &interrupted);
    drop(lab);
    println!("== lab {name}: down");
    result.map(|()| ExitCode::SUCCESS)
}

fn demo(lab: &Lab, exe: &Path, args: &Args, interrupted: &AtomicBool) -> anyhow::Result<()> {
    let mut server = ServerProcess::start(lab, exe, &["--app", "http", "--listen", "80"])?;
    println!("== server: {}", server.banner);
    let client = |program: &str, a: &[&str]| run_in(&lab.client_ns(), program, a, interrupted);

    let url = format!("http://{SERVER_ADDR}/");
    let body = client("curl", &["-sS", "-m", "5", &url])?;
    println!("== curl GET {url}: {}", body.trim());
    if body != String::from_utf8_lossy(crate::app::http::BODY) {
        bail!("unexpected body {body:?}");
    }
    // Two transfers on one connection: curl reports 1 new connection, then 0.
    let ka = client(
        "curl",
        &["-sS", "-m", "5", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", &url, &url],
    )?;
    let ka: Vec<&str> = ka.lines().collect();
    println!("== curl keep-alive (status, new connections per request): {ka:?}");
    if ka != ["200 1", "200 0"] {
        bail!("keep-alive did not reuse the connection: {ka:?}");
    }

    let mut wrk_report = None;
    if Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
        let d = format!("{}s", args.duration.clamp(1, 60));
        let c = args.connections.clamp(1, 1000).to_string();
        println!("== wrk -t1 -c{c} -d{d} {url}");
        let out = client("wrk", &["-t1", "-c", &c, "-d", &d, "--latency", &url])?;
        wrk_report = Some(parse_wrk(&out));
    } else {
        println!("== wrk not installed: load test skipped");
    }

    let counters = server.stop()?;
    println!("== report");
    if let Some(w) = &wrk_report {
        println!("  requests/s     {}", w.requests_per_sec);
        println!("  latency avg    {}", w.latency_avg);
        for (p, v) in &w.percentiles {
            println!("  latency {p:<6} {v}");
        }
        if w.errors.is_empty() {
            println!("  errors         none");
        } else {
            println!("  errors         {}", w.errors);
        }
    }
    for c in [
        Counter::PassiveOpens,
        Counter::InSegs,
        Counter::OutSegs,
        Counter::RetransSegs,
        Counter::OutRsts,
        Counter::RxFrames,
        Counter::TxFrames,
        Counter::ArpRepliesOut,
        Counter::TxRingFull,
        Counter::TxNoBuffer,
    ] {
        println!("  {:<22} {}", format!("{}:{}", c.group(), c.name()), counters.get(c));
    }
    Ok(())
}
