//! `xdptcp ss`: the sockets of a running stack, one line each, like `ss -tan` (`-l` listeners as `ss -ltn`:
//! Recv-Q is the accept queue, Send-Q its limit; `-a` everything including TIME-WAIT; `-i` the TCP internals line;
//! `-o` timers; `--state S` or a leading `state S` / `exclude S` in the filter; then an ss(8) filter such as
//! `dport = :80` or `src 198.18.0.1`). Output is streamed as the workers answer, never collected first.
//!
//! With `-i` the second line reads like Linux's: `ts sack wscale:S,R rto:MS rtt:SRTT/RTTVAR mss:N cwnd:SEGS
//! ssthresh:SEGS bytes_in_flight:N retrans:CUR/TOTAL [sacked:SEGS] snd_wnd:N rcv_wnd:N`, preceded by the congestion
//! algorithm and `ca_state:STATE` (times in milliseconds; cwnd and
//! ssthresh converted from the engine's bytes to segments as Linux reports them; ssthresh omitted while infinite).

use std::io::Write;
use std::process::ExitCode;

use super::stat::SocketArgs;
use crate::control::ssfilter::{SsFilter, StateSet};
use crate::control::{SockRecord, TcpDetails};
use crate::tcp::congestion::INFINITE_SSTHRESH;
use crate::tcp::State;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Listening sockets only.
    #[arg(short = 'l', long = "listening")]
    pub listening: bool,
    /// All sockets: listening, connected, SYN-RECV and TIME-WAIT.
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// TCP sockets (the only kind there is; accepted for muscle memory).
    #[arg(short = 't', long = "tcp")]
    pub tcp: bool,
    /// Numeric addresses (always; accepted for muscle memory).
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,
    /// TCP internals: RTT, RTO, cwnd, ssthresh, bytes in flight, retransmissions.
    #[arg(short = 'i', long = "info")]
    pub info: bool,
    /// Timer information (TIME-WAIT time left).
    #[arg(short = 'o', long = "options")]
    pub timers: bool,
    /// No header line.
    #[arg(short = 'H', long = "no-header")]
    pub no_header: bool,
    /// Only sockets in this state or group (established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait,
    /// closed, close-wait, last-ack, listening, closing, all, connected, synchronized, bucket, big); repeatable.
    #[arg(long = "state", value_name = "STATE")]
    pub states: Vec<String>,
    /// ss filter, e.g. `dport = :80`, `src 198.18.0.1`, `( sport = :80 or sport = :443 )`.
    #[arg(value_name = "FILTER")]
    pub filter: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    report(&args, &mut stdout.lock())?;
    Ok(ExitCode::SUCCESS)
}

/// The states to show and the filter text left after `state X` / `exclude X` words, as ss(8) reads them.
pub fn selection(args: &Args) -> anyhow::Result<(StateSet, String)> {
    let mut included = StateSet::EMPTY;
    let mut explicit = false;
    for s in &args.states {
        included = included.union(StateSet::parse(s).ok_or_else(|| anyhow::anyhow!("unknown state `{s}`"))?);
        explicit = true;
    }
    let mut excluded = StateSet::EMPTY;
    let mut words: &[String] = &args.filter;
    // The filter may also be given as one quoted argument: split it into words first.
    let split: Vec<String> = words.iter().flat_map(|w| w.split_whitespace().map(str::to_string)).collect();
    words = &split;
    while let [kw, name, rest @ ..] = words {
        let set = match kw.as_str() {
            "state" | "exclude" => StateSet::parse(name).ok_or_else(|| anyhow::anyhow!("unknown state `{name}`"))?,
            _ => break,
        };
        if kw == "state" {
            included = included.union(set);
            explicit = true;
        } else {
            excluded = excluded.union(set);
        }
        words = rest;
    }
    let base = if explicit {
        included
    } else if args.all {
        StateSet::all()
    } else if args.listening {
        StateSet::only(State::Listen)
    } else {
        StateSet::connected_default()
    };
    let states = StateSet::from_bits(base.bits() & !excluded.bits());
    let filter = words.join(" ");
    // Parse here too, so a typo is reported before connecting.
    SsFilter::parse(&filter)?;
    Ok((states, filter))
}

/// Streams the listing to `out`. Returns the number of sockets shown.
pub fn report(args: &Args, out: &mut dyn Write) -> anyhow::Result<u64> {
    let (states, filter) = selection(args)?;
    let mut client = args.socket.connect()?;
    if !args.no_header {
        writeln!(out, "{}", header())?;
    }
    let n = client.list(states, &filter, args.info, &mut |r| write_record(out, &r, args.timers), &mut |w| {
        eprintln!("xdptcp ss: {w}")
    })?;
    out.flush()?;
    Ok(n)
}

pub fn header() -> String {
    format!("{:<10} {:<6} {:<6} {:>21} {:>21}", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port")
}

/// One socket as `ss` prints it (plus the `-i` line when the record carries details).
pub fn write_record(out: &mut dyn Write, r: &SockRecord, timers: bool) -> std::io::Result<()> {
    let peer = if r.state == State::Listen.ss_name() { format!("{}:*", r.remote.ip()) } else { r.remote.to_string() };
    let mut line = format!("{:<10} {:<6} {:<6} {:>21} {:>21}", r.state, r.recv_q, r.send_q, r.local.to_string(), peer);
    if timers {
        if let Some(ms) = r.timer_ms {
            let left = if ms >= 1000 { format!("{}sec", ms / 1000) } else { format!("{ms}ms") };
            line.push_str(&format!(" timer:(timewait,{left},0)"));
        }
    }
    writeln!(out, "{line}")?;
    if let Some(i) = &r.info {
        writeln!(out, "\t{}", details(i))?;
    }
    Ok(())
}

/// Milliseconds the way ss prints them: `200`, `0.062`.
fn ms(us: u64) -> String {
    let s = format!("{:.3}", us as f64 / 1000.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The `-i` line.
pub fn details(i: &TcpDetails) -> String {
    let mss = u32::from(i.mss.max(1));
    let mut parts = Vec::new();
    // As Linux: the algorithm first; then (ours) its state.
    if !i.congestion.is_empty() {
        parts.push(i.congestion.clone());
    }
    if !i.ca_state.is_empty() {
        parts.push(format!("ca_state:{}", i.ca_state));
    }
    if i.timestamps {
        parts.push("ts".to_string());
    }
    if i.sack {
        parts.push("sack".to_string());
    }
    parts.push(format!("wscale:{},{}", i.snd_wscale, i.rcv_wscale));
    parts.push(format!("rto:{}", ms(i.rto_us)));
    if i.srtt_us > 0 {
        parts.push(format!("rtt:{}/{}", ms(i.srtt_us), ms(i.rttvar_us)));
    }
    parts.push(format!("mss:{}", i.mss));
    parts.push(format!("cwnd:{}", i.cwnd.div_ceil(mss)));
    if i.ssthresh < INFINITE_SSTHRESH {
        parts.push(format!("ssthresh:{}", i.ssthresh / mss));
    }
    parts.push(format!("bytes_in_flight:{}", i.bytes_in_flight));
    parts.push(format!("retrans:{}/{}", i.retransmits, i.total_retransmits));
    if i.sacked > 0 {
        parts.push(format!("sacked:{}", i.sacked.div_ceil(mss)));
    }
    parts.push(format!("snd_wnd:{}", i.snd_wnd));
    parts.push(format!("rcv_wnd:{}", i.rcv_wnd));
    // As Linux, only once measured: they show receive-buffer autotuning at work.
    if i.rcv_rtt_us > 0 {
        parts.push(format!("rcv_rtt:{}", ms(i.rcv_rtt_us)));
    }
    if i.rcv_space > 0 {
        parts.push(format!("rcv_space:{} rcvbuf:{}", i.rcv_space, i.rcvbuf));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut Args)) -> Args {
        let mut a = Args::default();
        f(&mut a);
        a
    }

    #[test]
    fn state_selection_follows_ss() {
        let (s, f) = selection(&args(|_| {})).unwrap();
        assert_eq!(s, StateSet::connected_default());
        assert!(f.is_empty());
        let (s, _) = selection(&args(|a| a.listening = true)).unwrap();
        assert_eq!(s, StateSet::only(State::Listen));
        let (s, _) = selection(&args(|a| a.all = true)).unwrap();
        assert_eq!(s, StateSet::all());
        let (s, f) = selection(&args(|a| a.filter = vec!["state time-wait dport = :80".into()])).unwrap();
        assert_eq!(s, StateSet::only(State::TimeWait));
        assert_eq!(f, "dport = :80");
        let (s, _) = selection(&args(|a| {
            a.all = true;
            a.filter = vec!["exclude".into(), "listening".into()];
        }))
        .unwrap();
        assert!(!s.contains(State::Listen) && s.contains(State::TimeWait));
        assert!(selection(&args(|a| a.states = vec!["bogus".into()])).is_err());
        assert!(selection(&args(|a| a.filter = vec!["dport".into(), "~".into()])).is_err());
    }

    #[test]
    fn lines_look_like_ss() {
        let listener = SockRecord::from_listener(
            0,
            &crate::tcp::ListenerInfo {
                local: "198.18.0.1:80".parse().unwrap(),
                accept_queue: 2,
                accept_limit: 2,
                syn_queue: 1,
            },
        );
        let mut out = Vec::new();
        write_record(&mut out, &listener, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields, ["LISTEN", "2", "2", "198.18.0.1:80", "0.0.0.0:*"]);
        let tw = SockRecord::from_timewait(
            0,
            "198.18.0.1:80".parse().unwrap(),
            "198.18.0.2:4000".parse().unwrap(),
            std::time::Duration::from_millis(59_500),
        );
        let mut out = Vec::new();
        write_record(&mut out, &tw, true).unwrap();
        assert!(String::from_utf8(out).unwrap().trim_end().ends_with("timer:(timewait,59sec,0)"));
        let d = TcpDetails {
            srtt_us: 62,
            rttvar_us: 31,
            rto_us: 200_000,
            mss: 1448,
            cwnd: 14480,
            ssthresh: INFINITE_SSTHRESH,
            bytes_in_flight: 0,
            snd_wnd: 65535,
            rcv_wnd: 65535,
            retransmits: 0,
            total_retransmits: 2,
            snd_wscale: 7,
            rcv_wscale: 7,
            timestamps: true,
            sack: true,
            rcv_rtt_us: 0,
            rcv_space: 0,
            rcvbuf: 131072,
            congestion: String::new(),
            ca_state: String::new(),
            sacked: 0,
        };
        let cubic =
            TcpDetails { congestion: "cubic".into(), ca_state: "recovery".into(), sacked: 2 * 1448 + 1, ..d.clone() };
        assert!(details(&cubic).starts_with("cubic ca_state:recovery ts sack"), "{}", details(&cubic));
        assert!(details(&cubic).contains("retrans:0/2 sacked:3 "), "{}", details(&cubic));
        assert_eq!(
            details(&d),
            "ts sack wscale:7,7 rto:200 rtt:0.062/0.031 mss:1448 cwnd:10 bytes_in_flight:0 retrans:0/2 \
             snd_wnd:65535 rcv_wnd:65535"
        );
        let tuned = TcpDetails { rcv_rtt_us: 1_000, rcv_space: 400_000, rcvbuf: 900_000, ..d };
        assert!(
            details(&tuned).ends_with("rcv_wnd:65535 rcv_rtt:1 rcv_space:400000 rcvbuf:900000"),
            "{}",
            details(&tuned)
        );
    }
}
