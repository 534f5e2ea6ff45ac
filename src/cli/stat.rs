//! `xdptcp stat`: every counter of a running stack as `Group:Name value`, like `nstat -a` (absolute) or, with
//! `--watch SECS`, as rates per second every SECS seconds. Zero counters are hidden unless `-z`, as in nstat.
//! Also home of [`SocketArgs`], the `--socket`/`--name` pair every control verb takes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::control::client::CountersReply;
use crate::control::protocol::is_gauge;
use crate::control::server::{socket_path_for_name, DEFAULT_NAME};
use crate::control::Client;
use crate::tcp::Counter;

/// Which running stack to talk to.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SocketArgs {
    /// Control socket of the stack.
    #[arg(long, value_name = "PATH", env = "XDPTCP_SOCKET", conflicts_with = "name")]
    pub socket: Option<PathBuf>,
    /// Instance name: the socket is /run/xdptcp/NAME.sock [default: xdptcp].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

impl SocketArgs {
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        match (&self.socket, &self.name) {
            (Some(p), _) => Ok(p.clone()),
            (None, name) => socket_path_for_name(name.as_deref().unwrap_or(DEFAULT_NAME)).map_err(anyhow::Error::msg),
        }
    }

    pub fn connect(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.path()?)?)
    }
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Print rates per second every SECS seconds (levels such as FramesInUse stay absolute).
    #[arg(short = 'w', long, value_name = "SECS")]
    pub watch: Option<f64>,
    /// Show counters that are zero too.
    #[arg(short = 'z', long = "zeros")]
    pub zeros: bool,
    /// With --watch: stop after N reports.
    #[arg(short = 'c', long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
    /// Only these counters (`ActiveOpens`, `TcpExt:TCPTimeouts`, or a group such as `Tcp:` or `TcpExt`).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    report(&args, &mut stdout.lock())?;
    Ok(ExitCode::SUCCESS)
}

/// Name selection: `ActiveOpens` / `Tcp:ActiveOpens` pick one counter, `Tcp` / `Tcp:` a whole group.
fn selector(names: &[String]) -> anyhow::Result<impl Fn(Counter) -> bool> {
    let mut picked = Vec::new();
    for n in names {
        let group = n.trim_end_matches(':');
        let groups: Vec<Counter> = Counter::ALL.iter().copied().filter(|c| c.group() == group).collect();
        if !groups.is_empty() {
            picked.extend(groups);
        } else {
            let c = Counter::from_name(n).with_context(|| format!("no counter or group named `{n}`"))?;
            if n.contains(':') && !n.starts_with(&format!("{}:", c.group())) {
                anyhow::bail!("no counter named `{n}` (it is {}:{})", c.group(), c.name());
            }
            picked.push(c);
        }
    }
    Ok(move |c: Counter| picked.is_empty() || picked.contains(&c))
}

fn values(reply: &CountersReply) -> Vec<(Counter, u64)> {
    reply.counters.iter().filter_map(|(n, v)| Some((Counter::from_name(n)?, *v))).collect()
}

/// Writes the report to `out`: one snapshot, or `--watch` rates until `--count` reports (forever without it).
pub fn report(args: &Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let wanted = selector(&args.names)?;
    let mut client = args.socket.connect()?;
    let Some(secs) = args.watch else {
        let reply = client.counters(true)?;
        for w in reply.workers.iter().filter(|w| !w.live) {
            eprintln!("xdptcp stat: worker {} did not answer; its numbers are {} ms old", w.worker, w.age_ms);
        }
        for (c, v) in values(&reply) {
            if wanted(c) && (v != 0 || args.zeros) {
                writeln!(out, "{:<31} {v}", format!("{}:{}", c.group(), c.name()))?;
            }
        }
        return Ok(());
    };
    if !(secs.is_finite() && secs > 0.0) {
        anyhow::bail!("--watch takes a positive number of seconds");
    }
    let interval = Duration::from_secs_f64(secs);
    // Fresh counters at each interval (one request per worker per interval): exact deltas, where the ~100 ms
    // published snapshots would add their age jitter to every rate.
    let mut prev = values(&client.counters(true)?);
    let mut prev_at = Instant::now();
    let mut reports = 0u64;
    while args.count.is_none_or(|n| reports < n) {
        std::thread::sleep(interval);
        let cur = values(&client.counters(true)?);
        let now = Instant::now();
        let elapsed = now.duration_since(prev_at).as_secs_f64().max(1e-3);
        writeln!(out, "#xdptcp per second over {elapsed:.1} s")?;
        for ((c, v), (_, p)) in cur.iter().zip(prev.iter()) {
            if !wanted(*c) {
                continue;
            }
            let name = format!("{}:{}", c.group(), c.name());
            if is_gauge(*c) {
                if *v != 0 || args.zeros {
                    writeln!(out, "{name:<31} {v}")?;
                }
                continue;
            }
            let rate = v.saturating_sub(*p) as f64 / elapsed;
            if rate != 0.0 || args.zeros {
                writeln!(out, "{name:<31} {}", fmt_rate(rate))?;
            }
        }
        out.flush()?;
        prev = cur;
        prev_at = now;
        reports += 1;
    }
    Ok(())
}

/// Whole numbers print bare, others with one decimal (`12`, `0.5`).
fn fmt_rate(r: f64) -> String {
    if (r - r.round()).abs() < 0.05 {
        format!("{}", r.round() as u64)
    } else {
        format!("{r:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_and_formatting() {
        let sel = selector(&["Tcp:".into(), "TCPTimeouts".into()]).unwrap();
        assert!(sel(Counter::ActiveOpens) && sel(Counter::TCPTimeouts) && !sel(Counter::InReceives));
        assert!(selector(&["NoSuchCounter".into()]).is_err());
        assert!(selector(&["Ip:ActiveOpens".into()]).is_err());
        assert!(selector(&[]).unwrap()(Counter::RxFrames));
        assert_eq!(fmt_rate(3.0), "3");
        assert_eq!(fmt_rate(0.5), "0.5");
        let a = SocketArgs { socket: None, name: Some("eth0".into()) };
        assert_eq!(a.path().unwrap(), PathBuf::from("/run/xdptcp/eth0.sock"));
        assert!(SocketArgs { socket: None, name: Some("../etc".into()) }.path().is_err());
    }
}
