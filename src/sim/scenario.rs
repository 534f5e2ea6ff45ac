//! Named scenarios: two hosts, one link per direction, an application on each, and the checks that make the
//! scenario pass or fail. `xdptcp sim` and the `tests/sim_*.rs` suites both run these.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::app::{CloseMode, Role, StreamApp};
use super::link::LinkConfig;
use super::trace::Trace;
use super::Network;
use crate::tcp::{CloseReason, Config, Counter, Counters, State};
use crate::time::Instant;
use crate::wire::{IpProtocol, Ipv4Repr, SeqNum, TcpFlags, TcpRepr};

pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER_PORT: u16 = 80;
const CLIENT_PORT: u16 = 40000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Handshake,
    Transfer,
    Bidirectional,
    Close,
    SimultaneousOpen,
    SimultaneousClose,
    HalfClose,
    Rst,
    Refused,
    Timewait,
    BlindRst,
    ZeroWindow,
    Keepalive,
}

impl Scenario {
    pub const ALL: &'static [Scenario] = &[
        Scenario::Handshake,
        Scenario::Transfer,
        Scenario::Bidirectional,
        Scenario::Close,
        Scenario::SimultaneousOpen,
        Scenario::SimultaneousClose,
        Scenario::HalfClose,
        Scenario::Rst,
        Scenario::Refused,
        Scenario::Timewait,
        Scenario::BlindRst,
        Scenario::ZeroWindow,
        Scenario::Keepalive,
    ];
}

#[derive(Clone, Debug)]
pub struct ScenarioConfig {
    pub scenario: Scenario,
    /// Impairments, applied to both directions.
    pub link: LinkConfig,
    /// Bytes each sender sends (transfer: client to server; bidirectional: each way).
    pub bytes: u64,
    pub seed: u64,
    pub trace: bool,
    pub config: Config,
    /// Virtual time after which the run fails.
    pub time_limit: Duration,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig {
            scenario: Scenario::Transfer,
            link: LinkConfig::default(),
            bytes: 1 << 20,
            seed: 1,
            trace: false,
            config: Config::default(),
            time_limit: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("virtual time limit of {0:?} reached")]
    TimeLimit(Duration),
    #[error("nothing left to do at {0} but the scenario is not complete")]
    Stalled(Instant),
    #[error("scenario check failed: {0}")]
    Check(String),
    #[error("{0}\n{1}")]
    WithTrace(Box<SimError>, String),
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: Scenario,
    pub seed: u64,
    pub client_sent: u64,
    pub server_received: u64,
    pub server_sent: u64,
    pub client_received: u64,
    pub client_to_server: (String, String),
    pub server_to_client: (String, String),
    pub sha_match: bool,
    pub retransmissions: u64,
    pub segments: u64,
    pub virtual_duration: Duration,
    pub counters: [Counters; 2],
    /// Every state change: (host, from, to, at).
    pub transitions: Vec<(usize, State, State, Instant)>,
    /// Scenario-specific findings, e.g. the measured TIME_WAIT length.
    pub notes: Vec<String>,
    pub trace: Option<String>,
    /// The client's view of the run in conformance-script notation (with `trace`).
    pub script: Option<String>,
    pub client_closed: Option<CloseReason>,
    pub server_closed: Option<CloseReason>,
}

impl Report {
    pub fn saw(&self, host: usize, from: State, to: State) -> bool {
        self.transitions.iter().any(|&(h, f, t, _)| h == host && f == from && t == to)
    }
}

/// A client/server network for `cfg` with idle applications (no data), for tests that drive the engines by hand.
pub fn network_for(cfg: &ScenarioConfig) -> Network {
    let stream = |k: u64| cfg.seed.wrapping_mul(0x9e37_79b9).wrapping_add(k);
    build_network(
        cfg,
        StreamApp::new(client_role(), 0, CloseMode::Keep, stream(1)),
        StreamApp::new(server_role(), 0, CloseMode::Keep, stream(2)),
    )
}

fn build_network(cfg: &ScenarioConfig, client: StreamApp, server: StreamApp) -> Network {
    let mut net = Network::new(Instant::from_secs(1));
    if cfg.trace {
        net.trace = Some(Trace { names: vec!["client".into(), "server".into()], ..Default::default() });
    }
    let c = net.add_host("client", CLIENT_ADDR, cfg.config.clone(), cfg.seed.wrapping_mul(31).wrapping_add(1), client);
    let s = net.add_host("server", SERVER_ADDR, cfg.config.clone(), cfg.seed.wrapping_mul(31).wrapping_add(2), server);
    net.connect(c, s, cfg.link.clone(), cfg.link.clone(), cfg.seed);
    net
}

fn client_role() -> Role {
    Role::Client {
        local: SocketAddrV4::new(CLIENT_ADDR, CLIENT_PORT),
        remote: SocketAddrV4::new(SERVER_ADDR, SERVER_PORT),
    }
}

fn server_role() -> Role {
    Role::Server { listen: SocketAddrV4::new(SERVER_ADDR, SERVER_PORT) }
}

/// Builds an IPv4+TCP packet from `src` to `dst` (for forged segments).
pub fn forge(t: &TcpRepr<'_>, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let h = t.header_len();
    let mut buf = vec![0u8; 20 + h + t.payload.len()];
    buf[20 + h..].copy_from_slice(t.payload);
    t.emit(&mut buf[20..], t.payload.len(), src, dst).expect("buffer sized for the segment");
    let ip = Ipv4Repr {
        src,
        dst,
        protocol: IpProtocol::Tcp,
        payload_len: h + t.payload.len(),
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_fragment: true,
    };
    ip.emit(&mut buf[..20]).expect("20 bytes");
    buf
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), SimError> {
    if cond {
        Ok(())
    } else {
        Err(SimError::Check(what()))
    }
}

/// Runs one scenario to completion and checks its outcome.
pub fn run_scenario(cfg: &ScenarioConfig) -> Result<Report, SimError> {
    let seed = cfg.seed;
    let mut notes = Vec::new();
    let stream = |k: u64| seed.wrapping_mul(0x9e37_79b9).wrapping_add(k);
    let mut net = match cfg.scenario {
        Scenario::Handshake => build_network(
            cfg,
            StreamApp::new(client_role(), 0, CloseMode::Keep, stream(1)),
            server_app(cfg, 0, CloseMode::Keep),
        ),
        Scenario::Transfer | Scenario::Close | Scenario::Timewait => build_network(
            cfg,
            StreamApp::new(client_role(), cfg.bytes, CloseMode::Close, stream(1)),
            server_app(cfg, 0, CloseMode::AfterPeer),
        ),
        Scenario::Bidirectional => build_network(
            cfg,
            StreamApp::new(client_role(), cfg.bytes, CloseMode::Shutdown, stream(1)),
            StreamApp::new(server_role(), cfg.bytes, CloseMode::Shutdown, stream(2)),
        ),
        Scenario::HalfClose => build_network(
            cfg,
            // The client sends a request and shuts down its write side; the server answers after end of stream.
            StreamApp::new(client_role(), 1000, CloseMode::Shutdown, stream(1)),
            StreamApp::new(server_role(), cfg.bytes, CloseMode::AfterPeer, stream(2)),
        ),
        Scenario::Rst => build_network(
            cfg,
            StreamApp::new(client_role(), 10_000, CloseMode::Keep, stream(1)),
            server_app(cfg, 0, CloseMode::Keep),
        ),
        Scenario::Refused => build_network(
            cfg,
            StreamApp::new(client_role(), 0, CloseMode::Keep, stream(1)),
            // Listens on another port: the client's SYN meets a closed port.
            StreamApp::new(
                Role::Server { listen: SocketAddrV4::new(SERVER_ADDR, SERVER_PORT + 1) },
                0,
                CloseMode::Keep,
                stream(2),
            ),
        ),
        Scenario::SimultaneousOpen | Scenario::SimultaneousClose => build_network(
            cfg,
            StreamApp::new(client_role(), 5000, CloseMode::Shutdown, stream(1)),
            StreamApp::new(
                Role::Client {
                    local: SocketAddrV4::new(SERVER_ADDR, SERVER_PORT),
                    remote: SocketAddrV4::new(CLIENT_ADDR, CLIENT_PORT),
                },
                5000,
                CloseMode::Shutdown,
                stream(2),
            ),
        ),
        Scenario::BlindRst => build_network(
            cfg,
            StreamApp::new(client_role(), 0, CloseMode::Keep, stream(1)),
            server_app(cfg, 0, CloseMode::Keep),
        ),
        Scenario::ZeroWindow => {
            let mut server = server_app(cfg, 0, CloseMode::AfterPeer);
            server.read_paused = true;
            build_network(cfg, StreamApp::new(client_role(), cfg.bytes, CloseMode::Close, stream(1)), server)
        }
        Scenario::Keepalive => {
            let mut client = StreamApp::new(client_role(), 100, CloseMode::Keep, stream(1));
            client.keepalive = true;
            build_network(cfg, client, server_app(cfg, 0, CloseMode::Keep))
        }
    };
    let started = net.now;
    net.start();
    match drive(cfg, &mut net, &mut notes) {
        Ok(()) => {}
        Err(e) => {
            return Err(match net.trace.as_ref() {
                Some(t) => SimError::WithTrace(Box::new(e), t.ladder()),
                None => e,
            })
        }
    }
    let report = finish_report(cfg, &mut net, started, notes);
    verify(cfg, &report)?;
    Ok(report)
}

fn drive(cfg: &ScenarioConfig, net: &mut Network, notes: &mut Vec<String>) -> Result<(), SimError> {
    let limit = cfg.time_limit;
    match cfg.scenario {
        Scenario::Handshake => {
            net.run_until(limit, |n| n.hosts[0].app.connected_at.is_some() && n.hosts[1].app.connected_at.is_some())?;
        }
        Scenario::Transfer | Scenario::Close | Scenario::Bidirectional | Scenario::HalfClose => {
            net.run_until(limit, all_closed)?;
        }
        Scenario::Timewait => {
            net.run_until(limit, |n| all_closed(n) && n.hosts[0].engine.connection_count() == (0, 0))?;
        }
        Scenario::SimultaneousOpen | Scenario::SimultaneousClose => {
            net.run_until(limit, |n| all_closed(n) && n.hosts.iter().all(|h| h.engine.connection_count() == (0, 0)))?;
        }
        Scenario::Rst => {
            // Abort (SO_LINGER 0) once the server has the data: the server must see a reset.
            net.run_until(limit, |n| n.hosts[1].app.received == 10_000)?;
            let now = net.now;
            let c = net.hosts[0].app.conn.expect("connected");
            net.hosts[0].engine.abort(now, c).map_err(|e| SimError::Check(format!("abort: {e}")))?;
            net.hosts[0].app.closed = Some(CloseReason::Aborted);
            net.settle();
            net.run_until(limit, |n| n.hosts[1].app.closed.is_some())?;
        }
        Scenario::Refused => {
            net.run_until(limit, |n| n.hosts[0].app.closed.is_some())?;
        }
        Scenario::BlindRst => blind_rst(net, limit, notes)?,
        Scenario::ZeroWindow => {
            // Let the sender fill the receiver's buffer and probe the closed window for a while, then read.
            net.run_for(Duration::from_secs(10));
            let probes = net.hosts[0].engine.counters().get(Counter::TCPWinProbe);
            check(probes > 0, || "no zero-window probes while the receiver's window was closed".into())?;
            notes.push(format!("zero-window probes while paused: {probes}"));
            net.hosts[1].app.read_paused = false;
            net.run_until(limit, all_closed)?;
        }
        Scenario::Keepalive => {
            net.run_until(limit, |n| n.hosts[1].app.received == 100)?;
            // Idle past tcp_keepalive_time: probes are answered and the connection stays up.
            let first = Duration::from_secs(cfg.config.tcp_keepalive_time as u64);
            net.run_for(first * 2);
            let probes = net.hosts[0].engine.counters().get(Counter::TCPKeepAlive);
            check(probes >= 1 && net.hosts[0].app.closed.is_none(), || format!("keepalive probes {probes}"))?;
            // Then the path dies: probes go unanswered and the connection times out.
            net.set_loss(1.0);
            net.run_until(limit, |n| n.hosts[0].app.closed.is_some())?;
            check(net.hosts[0].app.closed == Some(CloseReason::TimedOut), || {
                format!("keepalive ended with {:?}", net.hosts[0].app.closed)
            })?;
        }
    }
    Ok(())
}

fn server_app(cfg: &ScenarioConfig, bytes: u64, close: CloseMode) -> StreamApp {
    StreamApp::new(server_role(), bytes, close, cfg.seed.wrapping_mul(0x9e37_79b9).wrapping_add(2))
}

fn all_closed(n: &Network) -> bool {
    n.hosts.iter().all(|h| h.app.closed.is_some() || (h.app.conn.is_some() && released(h)))
        && n.hosts.iter().all(|h| h.engine.connection_count().0 == 0)
}

fn released(h: &super::Host) -> bool {
    h.app.conn.is_some_and(|c| h.engine.info(c).is_none_or(|i| i.state == State::Closed))
}

/// RFC 5961 §3.2: a RST that is in the window but not at RCV.NXT draws a challenge ACK and changes nothing; the
/// exact sequence number resets.
fn blind_rst(net: &mut Network, limit: Duration, notes: &mut Vec<String>) -> Result<(), SimError> {
    net.run_until(limit, |n| n.hosts[0].app.connected_at.is_some() && n.hosts[1].app.connected_at.is_some())?;
    net.run_for(Duration::from_millis(100));
    let server_conn = net.hosts[1].app.conn.expect("accepted");
    let (local, remote) = net.hosts[1].engine.local_addr_of(server_conn).expect("live");
    let info = net.hosts[1].engine.info(server_conn).expect("live");
    // The server's RCV.NXT is where the client's next byte goes; its window is rcv_wnd bytes beyond.
    let (_, _, rcv_nxt) = net.hosts[1].engine.sequence_numbers(server_conn).expect("live");
    let in_window = rcv_nxt + info.rcv_wnd / 2;
    let rst = |seq: SeqNum| TcpRepr {
        src_port: remote.port(),
        dst_port: local.port(),
        seq,
        ack: SeqNum(0),
        flags: TcpFlags(TcpFlags::RST),
        window: 0,
        urgent: 0,
        options: Default::default(),
        payload: &[],
    };
    let before = net.hosts[1].engine.counters().get(Counter::TCPChallengeACK);
    net.inject(1, &forge(&rst(in_window), *remote.ip(), *local.ip()));
    net.run_for(Duration::from_millis(50));
    let after = net.hosts[1].engine.counters().get(Counter::TCPChallengeACK);
    check(after == before + 1, || format!("challenge ACKs {before} -> {after}"))?;
    check(net.hosts[1].engine.info(server_conn).is_some_and(|i| i.state == State::Established), || {
        "a blind in-window RST must not reset".into()
    })?;
    notes.push("in-window RST: challenge ACK sent, connection kept".into());
    net.inject(1, &forge(&rst(rcv_nxt), *remote.ip(), *local.ip()));
    net.run_for(Duration::from_millis(50));
    check(net.hosts[1].app.closed == Some(CloseReason::Reset), || "an exact RST must reset".into())?;
    notes.push("exact-sequence RST: connection reset".into());
    Ok(())
}

fn finish_report(cfg: &ScenarioConfig, net: &mut Network, started: Instant, mut notes: Vec<String>) -> Report {
    let transitions: Vec<_> = net.transitions.iter().map(|(h, t)| (*h, t.from, t.to, t.at)).collect();
    let tw: Vec<_> = transitions.iter().filter(|t| t.0 == 0).collect();
    if let (Some(enter), Some(leave)) = (
        tw.iter().find(|t| t.2 == State::TimeWait).map(|t| t.3),
        tw.iter().find(|t| t.1 == State::TimeWait && t.2 == State::Closed).map(|t| t.3),
    ) {
        notes.push(format!("TIME_WAIT lasted {:?} (2*MSL = {:?})", leave - enter, cfg.config.time_wait_len()));
    }
    let (c, s) = (&net.hosts[0], &net.hosts[1]);
    let client_to_server = (c.app.sent_digest(), s.app.received_digest());
    let server_to_client = (s.app.sent_digest(), c.app.received_digest());
    let sha_match = client_to_server.0 == client_to_server.1 && server_to_client.0 == server_to_client.1;
    let counters = [c.engine.counters().clone(), s.engine.counters().clone()];
    let retransmissions = counters.iter().map(|k| k.get(Counter::RetransSegs)).sum();
    let segments = counters.iter().map(|k| k.get(Counter::OutSegs)).sum();
    Report {
        scenario: cfg.scenario,
        seed: cfg.seed,
        client_sent: c.app.sent,
        server_received: s.app.received,
        server_sent: s.app.sent,
        client_received: c.app.received,
        client_to_server,
        server_to_client,
        sha_match,
        retransmissions,
        segments,
        virtual_duration: net.now - started,
        counters,
        transitions,
        notes,
        trace: net.trace.as_ref().map(|t| t.ladder()),
        script: net.trace.as_ref().map(|t| t.script()),
        client_closed: c.app.closed,
        server_closed: s.app.closed,
    }
}

/// The checks every scenario must pass besides completing.
fn verify(cfg: &ScenarioConfig, r: &Report) -> Result<(), SimError> {
    let data_scenario = matches!(
        cfg.scenario,
        Scenario::Transfer
            | Scenario::Bidirectional
            | Scenario::Close
            | Scenario::HalfClose
            | Scenario::Timewait
            | Scenario::ZeroWindow
            | Scenario::SimultaneousOpen
            | Scenario::SimultaneousClose
    );
    if data_scenario {
        check(r.sha_match, || format!("SHA-256 mismatch: {:?} {:?}", r.client_to_server, r.server_to_client))?;
        check(r.server_received == r.client_sent && r.client_received == r.server_sent, || {
            format!(
                "byte counts {} -> {}, {} <- {}",
                r.client_sent, r.server_received, r.client_received, r.server_sent
            )
        })?;
    }
    match cfg.scenario {
        Scenario::Rst => check(r.server_closed == Some(CloseReason::Reset), || format!("{:?}", r.server_closed)),
        Scenario::Refused => check(r.client_closed == Some(CloseReason::Refused), || format!("{:?}", r.client_closed)),
        _ => Ok(()),
    }
}
