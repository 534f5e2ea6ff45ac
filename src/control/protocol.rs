//! The control socket's wire format: one JSON object per line each way (see the module documentation of
//! [`crate::control`] for the conversation rules).

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use crate::tcp::{ConnInfo, Counter, Counters, ListenerInfo};

/// Longest request line the server reads; longer lines are refused (bounded memory per client).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// A client's request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Summed counters and per-worker gauges. `fresh` asks every worker now (waiting at most a second per worker,
    /// then falling back to its last published snapshot); otherwise the snapshots published every ~100 ms are
    /// used and no worker is disturbed.
    Counters {
        #[serde(default)]
        fresh: bool,
    },
    /// Sockets, streamed: listeners, connections, TIME_WAIT records whose state is in `states` (a
    /// [`StateSet`](super::ssfilter::StateSet) bit mask) and that pass the ss `filter` text.
    List {
        states: u16,
        #[serde(default)]
        filter: String,
        /// Include the `ss -i` details.
        #[serde(default)]
        info: bool,
    },
    /// One setting's value (`name` as `tcp_rmem` or `net.ipv4.tcp_rmem`).
    SysctlGet { name: String },
    /// Every setting.
    SysctlList,
    /// Changes a runtime-settable setting on every worker.
    SysctlSet { name: String, value: String },
    /// Per-connection debug log: segments of connections matching the ss `filter` are logged at debug level
    /// (target `xdptcp::conn`) in the server's log; `None` turns it off.
    Log {
        #[serde(default)]
        filter: Option<String>,
    },
    /// Starts a capture; the connection then carries the pcapng byte stream (see the module documentation).
    Capture {
        #[serde(default)]
        filter: String,
        /// Bytes kept of each frame (default 256; 0 means 65535 as in tcpdump `-s 0`).
        #[serde(default)]
        snaplen: Option<u32>,
        /// Stop after this many frames.
        #[serde(default)]
        count: Option<u64>,
        /// Stop after this long.
        #[serde(default)]
        duration_ms: Option<u64>,
    },
}

/// Gauges of one worker, published with its counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerGauges {
    pub worker: u32,
    /// Connections in the table (every state but TIME_WAIT).
    pub connections: u64,
    /// TIME_WAIT records.
    pub timewait: u64,
    pub listeners: u64,
    /// UMEM frames held (the runtime's `Xdptcp:FramesInUse` gauge).
    pub frames_in_use: u64,
    /// Bytes of send/receive buffer memory held.
    pub buffer_bytes: u64,
    /// Milliseconds since the numbers were taken.
    pub age_ms: u64,
    /// False if the worker is gone (its last numbers are still reported) or did not answer a fresh request.
    pub live: bool,
}

/// One socket of a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SockRecord {
    pub worker: u32,
    /// The `ss` state name (`ESTAB`, `LISTEN`, `TIME-WAIT`, ...).
    pub state: String,
    pub local: SocketAddrV4,
    /// `0.0.0.0:0` for a listener.
    pub remote: SocketAddrV4,
    /// Connections: unread bytes. Listeners: accept queue length.
    pub recv_q: u32,
    /// Connections: unacknowledged and unsent bytes. Listeners: accept queue limit.
    pub send_q: u32,
    /// Listeners: half-open (SYN-RECV) connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_queue: Option<u32>,
    /// TIME_WAIT records: milliseconds left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<TcpDetails>,
}

/// The `ss -i` part of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpDetails {
    pub srtt_us: u64,
    pub rttvar_us: u64,
    pub rto_us: u64,
    pub mss: u16,
    /// Bytes.
    pub cwnd: u32,
    /// Bytes; [`crate::tcp::congestion::INFINITE_SSTHRESH`] before the first loss.
    pub ssthresh: u32,
    pub bytes_in_flight: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub retransmits: u32,
    pub total_retransmits: u64,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub timestamps: bool,
    pub sack: bool,
    /// Receiver-side RTT that paces buffer autotuning (0: not measured).
    #[serde(default)]
    pub rcv_rtt_us: u64,
    /// Bytes the application read in the last measured RTT.
    #[serde(default)]
    pub rcv_space: u32,
    /// Receive-buffer capacity (grows with autotuning).
    #[serde(default)]
    pub rcvbuf: u32,
    /// Congestion control algorithm and its state (`cubic`, `slow_start`).
    #[serde(default)]
    pub congestion: String,
    #[serde(default)]
    pub ca_state: String,
    /// Bytes SACKed by the peer above SND.UNA.
    #[serde(default)]
    pub sacked: u32,
}

impl SockRecord {
    pub fn from_conn(worker: u32, c: &ConnInfo, info: bool) -> SockRecord {
        SockRecord {
            worker,
            state: c.state.ss_name().to_string(),
            local: c.local,
            remote: c.remote,
            recv_q: c.recv_q,
            send_q: c.send_q,
            syn_queue: None,
            timer_ms: None,
            info: info.then_some(TcpDetails {
                srtt_us: c.srtt.as_micros() as u64,
                rttvar_us: c.rttvar.as_micros() as u64,
                rto_us: c.rto.as_micros() as u64,
                mss: c.mss,
                cwnd: c.cwnd,
                ssthresh: c.ssthresh,
                bytes_in_flight: c.bytes_in_flight,
                snd_wnd: c.snd_wnd,
                rcv_wnd: c.rcv_wnd,
                retransmits: c.retransmits,
                total_retransmits: c.total_retransmits,
                snd_wscale: c.snd_wscale,
                rcv_wscale: c.rcv_wscale,
                timestamps: c.timestamps,
                sack: c.sack,
                rcv_rtt_us: c.rcv_rtt.as_micros() as u64,
                rcv_space: c.rcv_space,
                rcvbuf: c.rcvbuf,
                congestion: c.congestion.to_string(),
                ca_state: c.ca_state.to_string(),
                sacked: c.sacked,
            }),
        }
    }

    pub fn from_listener(worker: u32, l: &ListenerInfo) -> SockRecord {
        SockRecord {
            worker,
            state: crate::tcp::State::Listen.ss_name().to_string(),
            local: l.local,
            remote: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
            recv_q: l.accept_queue,
            send_q: l.accept_limit,
            syn_queue: Some(l.syn_queue),
            timer_ms: None,
            info: None,
        }
    }

    pub fn from_timewait(worker: u32, local: SocketAddrV4, remote: SocketAddrV4, left: std::time::Duration) -> Self {
        SockRecord {
            worker,
            state: crate::tcp::State::TimeWait.ss_name().to_string(),
            local,
            remote,
            recv_q: 0,
            send_q: 0,
            syn_queue: None,
            timer_ms: Some(left.as_millis() as u64),
            info: None,
        }
    }
}

/// One `name = value` setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// The full sysctl name (`net.ipv4.tcp_rmem`).
    pub name: String,
    pub value: String,
    pub runtime_settable: bool,
}

/// What the server says. Externally tagged: `{"end":{"count":3}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Answer to `counters`: every counter (zeroes included) as (`Group:Name`, summed value), and each worker's
    /// gauges.
    Counters { counters: Vec<(String, u64)>, workers: Vec<WorkerGauges> },
    /// One socket of a `list` stream.
    Sock(SockRecord),
    /// Something went wrong with part of a stream (a worker did not answer); the stream goes on.
    Warning { message: String },
    /// End of a `list` stream.
    End { count: u64 },
    /// Answer to the sysctl requests.
    Settings(Vec<Setting>),
    /// The capture is running; pcapng frames follow.
    CaptureStarted { workers: u32, snaplen: u32 },
    /// After the pcapng stream's terminating empty frame.
    CaptureDone(CaptureSummary),
    /// Answer to `log`: the filter now in force (`None`: off) and how many workers took it.
    Log { filter: Option<String>, workers: u32 },
    /// The request failed; nothing else follows for it.
    Error { message: String },
}

/// Totals of one capture, like tcpdump's closing lines.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureSummary {
    /// Frames written to the pcapng stream.
    pub written: u64,
    /// Frames that passed the filter on the workers.
    pub matched: u64,
    /// Frames that passed the filter but found the ring full (dropped, never stalling a worker).
    pub dropped: u64,
}

/// The counters as the `counters` response carries them.
pub fn counters_to_pairs(c: &Counters) -> Vec<(String, u64)> {
    c.iter().map(|(k, v)| (format!("{}:{}", k.group(), k.name()), v)).collect()
}

/// Back from pairs; unknown names (a newer server) are skipped.
pub fn counters_from_pairs(pairs: &[(String, u64)]) -> Counters {
    let mut c = Counters::default();
    for (name, v) in pairs {
        if let Some(k) = Counter::from_name(name) {
            c.set(k, *v);
        }
    }
    c
}

/// Counters that are levels, not event counts (`Counters::set` writes them): shown absolute by `stat --watch`
/// and typed `gauge` in metrics.
pub fn is_gauge(c: Counter) -> bool {
    matches!(c, Counter::FramesInUse | Counter::OrphanConns | Counter::TimeWaitConns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_defaults_apply() {
        let r: Request = serde_json::from_str(r#"{"cmd":"counters"}"#).unwrap();
        assert_eq!(r, Request::Counters { fresh: false });
        let r: Request = serde_json::from_str(r#"{"cmd":"list","states":3}"#).unwrap();
        assert_eq!(r, Request::List { states: 3, filter: String::new(), info: false });
        let r: Request = serde_json::from_str(r#"{"cmd":"capture","filter":"port 80","count":3}"#).unwrap();
        assert_eq!(r, Request::Capture { filter: "port 80".into(), snaplen: None, count: Some(3), duration_ms: None });
        for r in [
            Request::SysctlSet { name: "tcp_rmem".into(), value: "1 2 3".into() },
            Request::SysctlList,
            Request::SysctlGet { name: "x".into() },
        ] {
            let text = serde_json::to_string(&r).unwrap();
            assert!(!text.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }

    #[test]
    fn counters_pairs_round_trip() {
        let mut c = Counters::default();
        c.add(Counter::ActiveOpens, 7);
        c.set(Counter::FramesInUse, 3);
        let pairs = counters_to_pairs(&c);
        assert!(pairs.contains(&("Tcp:ActiveOpens".to_string(), 7)));
        let back = counters_from_pairs(&pairs);
        assert_eq!(back.get(Counter::ActiveOpens), 7);
        assert_eq!(back.get(Counter::FramesInUse), 3);
    }

    #[test]
    fn responses_are_single_lines() {
        let r = Response::Sock(SockRecord::from_timewait(
            1,
            "198.18.0.1:80".parse().unwrap(),
            "198.18.0.2:5000".parse().unwrap(),
            std::time::Duration::from_secs(3),
        ));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.starts_with(r#"{"sock":"#), "{text}");
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), r);
    }
}
