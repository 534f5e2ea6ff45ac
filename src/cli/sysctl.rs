//! `xdptcp sysctl`: read and change a running stack's settings like sysctl(8). `name` prints
//! `net.ipv4.name = value`; `name=value` changes it on every worker (only runtime-settable knobs; the others
//! answer why not); `-a` (or no argument) lists everything. Names may be bare (`tcp_rmem`) or full
//! (`net.ipv4.tcp_rmem`).

use std::io::Write;
use std::process::ExitCode;

use super::stat::SocketArgs;
use crate::control::{Client, Setting};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Every setting.
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Print values only.
    #[arg(short = 'n', long = "values")]
    pub values_only: bool,
    /// Print names only.
    #[arg(short = 'N', long = "names", conflicts_with = "values_only")]
    pub names_only: bool,
    /// Accepted for sysctl(8) compatibility: `name=value` always writes.
    #[arg(short = 'w', long = "write")]
    pub write: bool,
    /// `name` to read, `name=value` to change.
    #[arg(value_name = "NAME[=VALUE]")]
    pub settings: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let ok = report(&args, &mut stdout.lock(), &mut stderr.lock())?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print(args: &Args, out: &mut dyn Write, s: &Setting) -> std::io::Result<()> {
    if args.values_only {
        writeln!(out, "{}", s.value)
    } else if args.names_only {
        writeln!(out, "{}", s.name)
    } else {
        writeln!(out, "{} = {}", s.name, s.value)
    }
}

/// Runs every argument in order; refusals go to `err` and make the result false (the others still run).
pub fn report(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<bool> {
    let mut client: Client = args.socket.connect()?;
    if args.all || args.settings.is_empty() {
        for s in client.sysctl_list()? {
            print(args, out, &s)?;
        }
        return Ok(true);
    }
    let mut ok = true;
    for arg in &args.settings {
        let result = match arg.split_once('=') {
            Some((name, value)) => client.sysctl_set(name.trim(), value.trim()),
            None => client.sysctl_get(arg.trim()),
        };
        match result {
            Ok(s) => print(args, out, &s)?,
            Err(crate::control::ClientError::Remote(why)) => {
                writeln!(err, "xdptcp sysctl: {why}")?;
                ok = false;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ok)
}
