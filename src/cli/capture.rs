//! `xdptcp capture`: tcpdump for a running stack. Captures the frames its workers receive and send into a pcapng
//! file that Wireshark, tshark and `tcpdump -r` read (one interface per worker, direction flags set).
//!
//! `xdptcp capture --filter "port 80" -w http.pcapng -c 100`, or `-w - | tcpdump -r -`. The filter is the
//! pcap-filter subset described in [`crate::control::filter`] and may also follow the options, as with tcpdump.
//! Ctrl-C ends the capture cleanly (the file stays complete).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::stat::SocketArgs;
use crate::control::{CaptureFilter, CaptureSummary, DEFAULT_SNAPLEN};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Capture filter, e.g. "host 198.18.0.2 and tcp port 80", "syn or rst".
    #[arg(short = 'f', long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// pcapng output file; `-` writes to standard output.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: PathBuf,
    /// Stop after N frames.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Bytes kept of each frame (0: whole frames).
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = DEFAULT_SNAPLEN)]
    pub snaplen: u32,
    /// The filter, tcpdump style, after the options.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // SIGINT / SIGTERM end the capture cleanly (the pcap file is flushed).
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())?;
    }
    let summary =
        capture(&args, Some(Box::new(move || interrupted.load(Ordering::Relaxed))), &mut |line| eprintln!("{line}"))?;
    eprintln!("{} packets captured", summary.written);
    eprintln!("{} packets received by filter", summary.matched);
    eprintln!("{} packets dropped by ring", summary.dropped);
    Ok(ExitCode::SUCCESS)
}

/// The filter text from `--filter` or the trailing expression (not both).
pub fn filter_text(args: &Args) -> anyhow::Result<String> {
    let text = match (&args.filter, args.expression.is_empty()) {
        (Some(_), false) => anyhow::bail!("give the filter either with --filter or after the options, not both"),
        (Some(f), true) => f.clone(),
        (None, _) => args.expression.join(" "),
    };
    CaptureFilter::parse(&text)?;
    Ok(text)
}

/// Runs the capture into `--write`; `stop` ends it early; `log` gets progress lines (tcpdump's "listening on").
pub fn capture(
    args: &Args,
    stop: Option<Box<dyn Fn() -> bool + Send>>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<CaptureSummary> {
    let filter = filter_text(args)?;
    let duration = match args.duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => anyhow::bail!("--duration takes a positive number of seconds"),
        None => None,
    };
    let client = args.socket.connect()?;
    let mut out: Box<dyn Write> = if args.write.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        let f = crate::control::pcapfile::create_private(&args.write)
            .with_context(|| format!("cannot create {}", args.write.display()))?;
        Box::new(BufWriter::new(f))
    };
    let target = args.socket.path()?;
    let log = std::cell::RefCell::new(log);
    let started = format!("capturing from {} (snaplen {} bytes)", target.display(), args.snaplen);
    let summary = client.capture(
        &filter,
        Some(args.snaplen),
        args.count,
        duration,
        &mut out,
        stop,
        &mut |w| (*log.borrow_mut())(&format!("xdptcp capture: {w}")),
        &mut || (*log.borrow_mut())(&started),
    )?;
    out.flush()?;
    Ok(summary)
}
