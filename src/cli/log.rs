//! `xdptcp log`: per-connection debug logging in a running stack. `xdptcp log --name N 'dport = :80'` makes every
//! worker log each TCP segment of the connections the ss filter selects (one tcpdump-like line per segment, debug
//! level, target `xdptcp::conn`) into the server's own log (its stderr, or the journal under systemd); `--off`
//! stops it. Nothing is logged per connection otherwise. The filter is the `xdptcp ss` one (`sport`/`dport`,
//! `src`/`dst`, `and`/`or`/`not`); an empty filter selects every connection.

use std::process::ExitCode;

use super::stat::SocketArgs;
use crate::control::SsFilter;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Stop the per-connection log.
    #[arg(long, conflicts_with = "filter")]
    pub off: bool,
    /// ss filter selecting the connections, e.g. `dport = :80` or `dst 198.18.1.2 and sport = :8080`.
    #[arg(value_name = "FILTER")]
    pub filter: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    eprintln!("{}", apply(&args)?);
    Ok(ExitCode::SUCCESS)
}

/// Sends the request; returns the line to show the operator.
pub fn apply(args: &Args) -> anyhow::Result<String> {
    let filter = args.filter.join(" ");
    if !args.off {
        SsFilter::parse(&filter)?;
    }
    let mut client = args.socket.connect()?;
    if args.off {
        let n = client.log(None)?;
        return Ok(format!("per-connection log off on {n} worker(s)"));
    }
    let n = client.log(Some(&filter))?;
    let what = if filter.trim().is_empty() {
        "every connection".to_string()
    } else {
        format!("connections matching `{filter}`")
    };
    Ok(format!(
        "logging every segment of {what} on {n} worker(s) to the server's log (debug, target xdptcp::conn); \
         `xdptcp log --off` stops"
    ))
}
