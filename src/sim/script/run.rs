//! The script runner: one engine, a virtual clock, and the scripted peer's segments built from the script.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use super::{
    format_packet, format_segment, Action, Expect, Field, Line, Numbering, OptSpec, Script, ScriptError, SegSpec, When,
    PEER_ISN,
};
use crate::tcp::{ConnId, Counter, Engine, Error, ListenerId, PacketSink};
use crate::time::Instant;
use crate::wire::{IpProtocol, Ipv4Repr, TcpPacket, TcpRepr};

/// The engine's address, and the scripted peer's (RFC 2544 benchmarking space, never routed).
pub const LOCAL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The port `listen` binds, and the port `connect` reaches on the peer.
pub const SERVICE_PORT: u16 = 8080;
/// The peer's port when it opens the connection.
pub const PEER_PORT: u16 = 40000;
/// Virtual time of script time 0.
const START: Instant = Instant::from_secs(1);
/// Longest wait for a `*`-timed outbound segment.
const ANY_TIME_LIMIT: Duration = Duration::from_secs(3600);
/// Timer expiries processed between two lines at most (a runaway timer loop is a failure, not a hang).
const MAX_TIMER_ROUNDS: usize = 100_000;
/// Default window of inbound segments without `win`.
const DEFAULT_PEER_WINDOW: u16 = 65535;
/// Byte `i` of any payload (inbound or written): recognisable in a dump.
fn payload_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub lines: usize,
    pub inbound: usize,
    pub outbound: usize,
}

/// Reads, parses and runs one script file.
pub fn run_file(path: &Path) -> Result<Outcome, ScriptError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let text = std::fs::read_to_string(path).map_err(|e| ScriptError {
        file: name.clone(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    run(&super::parse(&name, &text)?)
}

enum Fd {
    Socket { nodelay: bool, keepalive: bool },
    Listener(ListenerId),
    Conn(ConnId),
}

#[derive(Default)]
struct Collect {
    scratch: Vec<u8>,
    packets: Vec<Vec<u8>>,
}

impl PacketSink for Collect {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        self.scratch.resize(65536, 0);
        Some(&mut self.scratch)
    }
    fn commit(&mut self, len: usize) {
        self.packets.push(self.scratch[..len].to_vec());
    }
}

/// One connection of the script, keyed by the peer's port.
#[derive(Copy, Clone)]
struct Peer {
    n: Numbering,
    local_port: u16,
}

impl Default for Peer {
    fn default() -> Self {
        Peer { n: Numbering { local_iss: None, peer_isn: PEER_ISN, ts_base: None }, local_port: SERVICE_PORT }
    }
}

struct Runner<'a> {
    script: &'a Script,
    engine: Engine,
    now: Instant,
    peers: HashMap<u16, Peer>,
    /// The peer port of the last segment (lines without `port N` concern it).
    current: u16,
    /// Sent by the engine and not yet matched by a `>` line.
    out: VecDeque<(Instant, Vec<u8>)>,
    fds: HashMap<i64, Fd>,
    next_fd: i64,
    outcome: Outcome,
}

/// Runs a parsed script.
pub fn run(script: &Script) -> Result<Outcome, ScriptError> {
    let mut config = crate::tcp::Config::default();
    config.apply_overrides(&script.settings).map_err(|e| ScriptError {
        file: script.name.clone(),
        line: 0,
        message: format!("--set: {e}"),
    })?;
    let mut r = Runner {
        script,
        engine: Engine::new(config, START, 1),
        now: START,
        peers: HashMap::new(),
        current: PEER_PORT,
        out: VecDeque::new(),
        fds: HashMap::new(),
        next_fd: 3,
        outcome: Outcome::default(),
    };
    let mut script_time = Duration::ZERO;
    for (i, line) in script.lines.iter().enumerate() {
        let at = match line.when {
            When::Absolute(d) => Some(d),
            When::Relative(d) => Some(script_time + d),
            When::Any => None,
        };
        let err = |message: String| ScriptError { file: script.name.clone(), line: line.number, message };
        match &line.action {
            Action::Outbound(spec) => {
                let limit = match at {
                    Some(t) => START + t + script.tolerance,
                    None => next_time(&script.lines[i + 1..], script_time)
                        .map_or(r.now + ANY_TIME_LIMIT, |t| START + t + script.tolerance),
                };
                let sent = r.expect_outbound(line, spec, at, limit).map_err(err)?;
                script_time = at.unwrap_or(sent.saturating_since(START));
            }
            action => {
                let t = at.expect("only outbound lines may be untimed");
                r.advance(START + t).map_err(&err)?;
                r.no_unexpected(&format!("before line {}", line.number)).map_err(&err)?;
                match action {
                    Action::Inbound(spec) => r.inbound(spec).map_err(&err)?,
                    Action::Call { name, args, expect } => r.call(name, args, expect).map_err(&err)?,
                    Action::Info { fd, checks } => r.info(*fd, checks).map_err(&err)?,
                    Action::Counter { name, expect } => r.counter(name, *expect).map_err(&err)?,
                    Action::Outbound(_) => unreachable!("handled above"),
                }
                r.flush();
                script_time = t;
            }
        }
        r.outcome.lines += 1;
    }
    let last = script.lines.last().map_or(0, |l| l.number);
    r.flush();
    r.no_unexpected("after the last line").map_err(|message| ScriptError {
        file: script.name.clone(),
        line: last,
        message,
    })?;
    Ok(r.outcome)
}

/// The script time of the next timed line.
fn next_time(lines: &[Line], mut script_time: Duration) -> Option<Duration> {
    for l in lines {
        match l.when {
            When::Absolute(d) => return Some(d),
            When::Relative(d) => {
                script_time += d;
                return Some(script_time);
            }
            When::Any => {}
        }
    }
    None
}

fn errno(e: Error) -> &'static str {
    match e {
        Error::WouldBlock => "EAGAIN",
        Error::InvalidHandle => "EBADF",
        Error::NotConnected => "ENOTCONN",
        Error::Reset => "ECONNRESET",
        Error::Refused => "ECONNREFUSED",
        Error::TimedOut => "ETIMEDOUT",
        Error::Aborted => "ECONNABORTED",
        Error::WriteClosed => "EPIPE",
        Error::AddrInUse => "EADDRINUSE",
        Error::NoPorts => "EADDRNOTAVAIL",
        Error::TableFull => "ENOBUFS",
        Error::InvalidArgument => "EINVAL",
    }
}

fn secs(t: Instant) -> String {
    format!("{:.6}", t.saturating_since(START).as_secs_f64())
}

impl Runner<'_> {
    /// Collects whatever the engine sends now.
    fn flush(&mut self) {
        while self.engine.poll_event().is_some() {}
        let mut sink = Collect::default();
        self.engine.poll_transmit(self.now, &mut sink);
        for p in sink.packets {
            if let Ok((ip, payload)) = Ipv4Repr::parse(&p, false) {
                if let Ok(t) = TcpRepr::parse(payload, ip.src, ip.dst, false) {
                    let peer = self.peers.entry(t.dst_port).or_default();
                    peer.local_port = t.src_port;
                    if t.flags.syn() && peer.n.local_iss.is_none() {
                        peer.n.local_iss = Some(t.seq.0);
                    }
                    self.current = t.dst_port;
                }
            }
            self.out.push_back((self.now, p));
        }
    }

    /// Runs timers up to `to` (collecting what they send), then sets the clock to `to`.
    fn advance(&mut self, to: Instant) -> Result<(), String> {
        self.advance_until(to, false)
    }

    /// As `advance`, but stops at the first instant something was sent when `stop_on_output`.
    fn advance_until(&mut self, to: Instant, stop_on_output: bool) -> Result<(), String> {
        self.flush();
        for _ in 0..MAX_TIMER_ROUNDS {
            if stop_on_output && !self.out.is_empty() {
                return Ok(());
            }
            match self.engine.poll_timeout() {
                Some(t) if t <= to => {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    self.flush();
                }
                _ => {
                    self.now = self.now.max(to);
                    self.flush();
                    return Ok(());
                }
            }
        }
        Err(format!("more than {MAX_TIMER_ROUNDS} timer rounds before {}", secs(to)))
    }

    fn no_unexpected(&mut self, when: &str) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = self
            .out
            .iter()
            .map(|(t, p)| format!("  {} > {}", secs(*t), format_packet(p, true, &self.numbering_of(p))))
            .collect();
        Err(format!("unexpected outbound segment(s) {when}:\n{}", list.join("\n")))
    }

    fn expect_outbound(
        &mut self,
        line: &Line,
        spec: &SegSpec,
        at: Option<Duration>,
        limit: Instant,
    ) -> Result<Instant, String> {
        let tol = self.script.tolerance;
        let want = |t: Option<Duration>| t.map_or("any time".to_string(), |t| format!("{:.6}", t.as_secs_f64()));
        self.advance_until(limit, true)?;
        let Some((sent, packet)) = self.out.pop_front() else {
            return Err(format!(
                "missing outbound segment: expected `{}` at {}, nothing sent by {}",
                line.text,
                want(at),
                secs(limit)
            ));
        };
        if let Some(t) = at {
            let t = START + t;
            let early = t.saturating_since(sent) > tol;
            let late = sent.saturating_since(t) > tol;
            if early || late {
                return Err(format!(
                    "outbound segment {} (tolerance {} µs):\n  expected {} `{}`\n  actual   {} > {}",
                    if early { "too early" } else { "too late" },
                    tol.as_micros(),
                    want(at),
                    line.text,
                    secs(sent),
                    format_packet(&packet, true, &self.numbering_of(&packet))
                ));
            }
        }
        let (ip, payload) =
            Ipv4Repr::parse(&packet, true).map_err(|e| format!("engine sent a bad IPv4 packet: {e:?}"))?;
        let seg = TcpRepr::parse(payload, ip.src, ip.dst, true).map_err(|e| format!("engine sent bad TCP: {e:?}"))?;
        if let Err(what) = self.matches(spec, &seg) {
            return Err(format!(
                "outbound segment differs ({what}):\n  expected {} `{}`\n  actual   {} > {}",
                want(at),
                line.text,
                secs(sent),
                format_segment(&seg, true, &self.peers.get(&seg.dst_port).copied().unwrap_or_default().n)
            ));
        }
        self.outcome.outbound += 1;
        Ok(sent)
    }

    /// Checks an engine segment against a `>` line; learns the TS base from the first outbound timestamp.
    fn matches(&mut self, spec: &SegSpec, seg: &TcpRepr<'_>) -> Result<(), String> {
        if spec.port.is_some_and(|p| p != seg.dst_port) {
            return Err("peer port".into());
        }
        let now = self.now;
        let tolerance = self.script.tolerance;
        let n = &mut self.peers.entry(seg.dst_port).or_default().n;
        if spec.flags != seg.flags.0 {
            return Err("flags".into());
        }
        if !spec.seq.matches(seg.seq.0.wrapping_sub(n.local())) {
            return Err("sequence number".into());
        }
        if !spec.len.matches(seg.payload.len() as u32) {
            return Err("length".into());
        }
        if let Some(a) = spec.ack {
            if !a.matches(seg.ack.0.wrapping_sub(n.peer_isn)) {
                return Err("ack".into());
            }
        }
        if let Some(w) = spec.win {
            if !w.matches(seg.window) {
                return Err("window".into());
            }
        }
        let Some(opts) = &spec.options else { return Ok(()) };
        let o = &seg.options;
        let (mut mss, mut ws, mut sack_ok, mut ts, mut sack, mut fo) = (None, None, false, None, None, None);
        for opt in opts {
            match opt {
                OptSpec::Nop | OptSpec::Eol => {}
                OptSpec::Mss(v) => mss = Some(*v),
                OptSpec::WScale(v) => ws = Some(*v),
                OptSpec::SackOk => sack_ok = true,
                OptSpec::Ts { val, ecr } => ts = Some((*val, *ecr)),
                OptSpec::Sack(b) => sack = Some(b.clone()),
                OptSpec::FastOpen(c) => fo = Some(c.clone()),
            }
        }
        let field_ok = |f: Option<Field<u16>>, v: Option<u16>| match (f, v) {
            (None, None) => true,
            (Some(f), Some(v)) => f.matches(v),
            _ => false,
        };
        if !field_ok(mss, o.mss) {
            return Err("mss option".into());
        }
        if !field_ok(ws.map(matches_u8), o.window_scale.map(u16::from)) {
            return Err("wscale option".into());
        }
        if sack_ok != o.sack_permitted {
            return Err("sackOK option".into());
        }
        match (ts, o.timestamps) {
            (None, None) => {}
            (Some((val, ecr)), Some((v, e))) => {
                if !ecr.matches(e) {
                    return Err("TS ecr".into());
                }
                if let Field::Is(want) = val {
                    let base = *n.ts_base.get_or_insert(v.wrapping_sub(want));
                    let off = v.wrapping_sub(base).wrapping_sub(want) as i32;
                    if off.unsigned_abs() as u128 > tolerance.as_millis() {
                        return Err(format!("TS val off by {off} ms"));
                    }
                } else if n.ts_base.is_none() {
                    // `*` in the first outbound timestamp: script TS val = ms since script time 0.
                    let ms = (now.saturating_since(START).as_millis()) as u32;
                    n.ts_base = Some(v.wrapping_sub(ms));
                }
            }
            _ => return Err("TS option".into()),
        }
        let blocks: Vec<(u32, u32)> = o
            .sack_blocks()
            .iter()
            .map(|b| (b.left.0.wrapping_sub(n.peer_isn), b.right.0.wrapping_sub(n.peer_isn)))
            .collect();
        if sack.unwrap_or_default() != blocks {
            return Err("SACK blocks".into());
        }
        match (fo, o.tfo_cookie) {
            (None, None) => {}
            (Some(None), Some(c)) if c.len > 0 => {}
            (Some(Some(want)), Some(c)) if want == c.as_slice() => {}
            _ => return Err("Fast Open option".into()),
        }
        Ok(())
    }

    /// Builds the peer's segment, options in script order, and hands it to the engine.
    fn inbound(&mut self, spec: &SegSpec) -> Result<(), String> {
        let port = spec.port.unwrap_or(self.current);
        self.current = port;
        let peer = *self.peers.entry(port).or_default();
        let n = peer.n;
        let concrete = |f: Field<u32>| match f {
            Field::Is(v) => v,
            Field::Any => 0,
        };
        let mut opts = Vec::new();
        for o in spec.options.iter().flatten() {
            match o {
                OptSpec::Nop => opts.push(1),
                OptSpec::Eol => opts.push(0),
                OptSpec::Mss(v) => {
                    let v = if let Field::Is(v) = v { *v } else { 0 };
                    opts.extend_from_slice(&[2, 4]);
                    opts.extend_from_slice(&v.to_be_bytes());
                }
                OptSpec::WScale(v) => opts.extend_from_slice(&[3, 3, if let Field::Is(v) = v { *v } else { 0 }]),
                OptSpec::SackOk => opts.extend_from_slice(&[4, 2]),
                OptSpec::Sack(blocks) => {
                    opts.extend_from_slice(&[5, 2 + 8 * blocks.len() as u8]);
                    for (l, r) in blocks {
                        opts.extend_from_slice(&l.wrapping_add(n.local()).to_be_bytes());
                        opts.extend_from_slice(&r.wrapping_add(n.local()).to_be_bytes());
                    }
                }
                OptSpec::Ts { val, ecr } => {
                    let ecr = concrete(*ecr);
                    let ecr = if ecr == 0 { 0 } else { ecr.wrapping_add(n.ts_base.unwrap_or(0)) };
                    opts.extend_from_slice(&[8, 10]);
                    opts.extend_from_slice(&concrete(*val).to_be_bytes());
                    opts.extend_from_slice(&ecr.to_be_bytes());
                }
                OptSpec::FastOpen(c) => {
                    let c = c.clone().unwrap_or_default();
                    opts.extend_from_slice(&[34, 2 + c.len() as u8]);
                    opts.extend_from_slice(&c);
                }
            }
        }
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        if opts.len() > 40 {
            return Err(format!("options take {} bytes, more than 40", opts.len()));
        }
        let len = concrete(spec.len) as usize;
        let header = 20 + opts.len();
        let mut buf = vec![0u8; 20 + header + len];
        {
            let mut t = TcpPacket::new_unchecked(&mut buf[20..]);
            t.set_src_port(port);
            t.set_dst_port(peer.local_port);
            t.set_seq_number(crate::wire::SeqNum(concrete(spec.seq).wrapping_add(n.peer_isn)));
            let ack = spec.ack.map_or(0, |a| concrete(a).wrapping_add(n.local()));
            t.set_ack_number(crate::wire::SeqNum(ack));
            t.set_header_len(header);
            t.set_flags(crate::wire::TcpFlags(spec.flags));
            t.set_window_len(match spec.win {
                Some(Field::Is(w)) => w,
                _ => DEFAULT_PEER_WINDOW,
            });
            t.options_mut().copy_from_slice(&opts);
            for (i, b) in t.payload_mut().iter_mut().enumerate() {
                *b = payload_byte(i);
            }
            t.fill_checksum(PEER_ADDR, LOCAL_ADDR);
        }
        let ip = Ipv4Repr {
            src: PEER_ADDR,
            dst: LOCAL_ADDR,
            protocol: IpProtocol::Tcp,
            payload_len: header + len,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_fragment: true,
        };
        ip.emit(&mut buf[..20]).map_err(|e| format!("cannot build the IPv4 header: {e:?}"))?;
        self.engine.handle_ipv4(self.now, &buf);
        self.outcome.inbound += 1;
        Ok(())
    }

    /// The numbering of the connection an engine packet belongs to.
    fn numbering_of(&self, packet: &[u8]) -> Numbering {
        let port = Ipv4Repr::parse(packet, false)
            .ok()
            .and_then(|(ip, p)| TcpRepr::parse(p, ip.src, ip.dst, false).ok().map(|t| t.dst_port));
        port.and_then(|p| self.peers.get(&p)).copied().unwrap_or_default().n
    }

    fn conn(&self, fd: i64) -> Result<ConnId, String> {
        match self.fds.get(&fd) {
            Some(Fd::Conn(id)) => Ok(*id),
            _ => Err(format!("fd {fd} is not a connection")),
        }
    }

    fn fd_arg(args: &[String]) -> Result<i64, String> {
        args.first().and_then(|a| a.parse().ok()).ok_or_else(|| "first argument must be a file descriptor".into())
    }

    fn size_arg(args: &[String], i: usize) -> Result<usize, String> {
        args.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| format!("argument {} must be a byte count", i + 1))
    }

    fn new_fd(&mut self, fd: Fd) -> i64 {
        let n = self.next_fd;
        self.next_fd += 1;
        self.fds.insert(n, fd);
        n
    }

    /// One socket call, its result compared with the script's.
    fn call(&mut self, name: &str, args: &[String], expect: &Expect) -> Result<(), String> {
        let now = self.now;
        let local = SocketAddrV4::new(LOCAL_ADDR, SERVICE_PORT);
        let result: Result<i64, &'static str> = match name {
            "socket" => Ok(self.new_fd(Fd::Socket { nodelay: false, keepalive: false })),
            "bind" => Self::fd_arg(args).map(|_| Ok(0))?,
            "setsockopt" => {
                let fd = Self::fd_arg(args)?;
                let on = args.get(3).is_some_and(|v| v.trim_matches(|c| c == '[' || c == ']') != "0");
                let opt = args.get(2).map(String::as_str).unwrap_or("");
                match (self.fds.get_mut(&fd), opt) {
                    (Some(Fd::Socket { nodelay, .. }), "TCP_NODELAY") => *nodelay = on,
                    (Some(Fd::Socket { keepalive, .. }), "SO_KEEPALIVE") => *keepalive = on,
                    (Some(Fd::Conn(id)), "TCP_NODELAY") => self.engine.set_nodelay(*id, on).map_err(errno)?,
                    (Some(Fd::Conn(id)), "SO_KEEPALIVE") => self.engine.set_keepalive(*id, on).map_err(errno)?,
                    (Some(_), "SO_REUSEADDR" | "SO_REUSEPORT") => {}
                    (Some(_), o) => return Err(format!("setsockopt {o} is not supported by the harness")),
                    (None, _) => return Err(format!("no fd {fd}")),
                }
                Ok(0)
            }
            "listen" => {
                let fd = Self::fd_arg(args)?;
                let backlog = Self::size_arg(args, 1)? as u32;
                match self.engine.listen(local, backlog) {
                    Ok(l) => {
                        self.fds.insert(fd, Fd::Listener(l));
                        Ok(0)
                    }
                    Err(e) => Err(errno(e)),
                }
            }
            "accept" => {
                let fd = Self::fd_arg(args)?;
                let Some(Fd::Listener(l)) = self.fds.get(&fd) else { return Err(format!("fd {fd} is not listening")) };
                match self.engine.accept(*l) {
                    Ok(id) => Ok(self.new_fd(Fd::Conn(id))),
                    Err(e) => Err(errno(e)),
                }
            }
            "connect" | "sendto" => {
                let fd = Self::fd_arg(args)?;
                let Some(Fd::Socket { nodelay, keepalive }) = self.fds.get(&fd) else {
                    return Err(format!("fd {fd} is not a fresh socket"));
                };
                let (nodelay, keepalive) = (*nodelay, *keepalive);
                let here = SocketAddrV4::new(LOCAL_ADDR, 0);
                let peer = SocketAddrV4::new(PEER_ADDR, SERVICE_PORT);
                let opened = if name == "connect" {
                    self.engine.connect(now, here, peer).map(|id| (id, None))
                } else {
                    if !args.get(3).is_some_and(|f| f.contains("MSG_FASTOPEN")) {
                        return Err("sendto on a fresh socket needs MSG_FASTOPEN".into());
                    }
                    let data: Vec<u8> = (0..Self::size_arg(args, 2)?).map(payload_byte).collect();
                    self.engine.connect_with_data(now, here, peer, &data).map(|(id, n)| (id, Some(n as i64)))
                };
                match opened {
                    Ok((id, queued)) => {
                        self.fds.insert(fd, Fd::Conn(id));
                        if nodelay {
                            self.engine.set_nodelay(id, true).map_err(errno)?;
                        }
                        if keepalive {
                            self.engine.set_keepalive(id, true).map_err(errno)?;
                        }
                        // A non-blocking connect is in progress, as packetdrill scripts write it.
                        queued.ok_or("EINPROGRESS")
                    }
                    Err(e) => Err(errno(e)),
                }
            }
            "write" => {
                let id = self.conn(Self::fd_arg(args)?)?;
                let data: Vec<u8> = (0..Self::size_arg(args, 2)?).map(payload_byte).collect();
                self.engine.send(now, id, &data).map(|n| n as i64).map_err(errno)
            }
            "read" => {
                let id = self.conn(Self::fd_arg(args)?)?;
                let mut buf = vec![0u8; Self::size_arg(args, 2)?];
                self.engine.recv(id, &mut buf).map(|n| n as i64).map_err(errno)
            }
            "shutdown" => {
                let id = self.conn(Self::fd_arg(args)?)?;
                if args.get(1).map(String::as_str) != Some("SHUT_WR") {
                    return Err("only shutdown(fd, SHUT_WR) is supported".into());
                }
                self.engine.shutdown_write(now, id).map(|_| 0).map_err(errno)
            }
            "close" => {
                let fd = Self::fd_arg(args)?;
                match self.fds.remove(&fd) {
                    Some(Fd::Conn(id)) => self.engine.close(now, id).map(|_| 0).map_err(errno),
                    Some(Fd::Listener(l)) => self.engine.unlisten(l).map(|_| 0).map_err(errno),
                    Some(Fd::Socket { .. }) => Ok(0),
                    None => Err("EBADF"),
                }
            }
            _ => return Err(format!("unknown call `{name}`")),
        };
        let got = match &result {
            Ok(v) => Expect::Value(*v),
            Err(e) => Expect::Errno(e.to_string()),
        };
        if &got != expect {
            return Err(format!("{name}: expected {}, got {}", show(expect), show(&got)));
        }
        Ok(())
    }

    fn info(&mut self, fd: i64, checks: &[(String, String)]) -> Result<(), String> {
        let id = self.conn(fd)?;
        let info = self.engine.info(id);
        for (key, want) in checks {
            let Some(i) = &info else {
                if key == "state" && want == "CLOSED" {
                    continue;
                }
                return Err(format!("info({fd}): the connection is gone (want {key}={want})"));
            };
            let ms = |d: Duration| d.as_micros() as f64 / 1000.0;
            let got: String = match key.as_str() {
                "state" => i.state.ss_name().to_string(),
                "rto_ms" => format!("{}", ms(i.rto)),
                "srtt_ms" => format!("{}", ms(i.srtt)),
                "rttvar_ms" => format!("{}", ms(i.rttvar)),
                "mss" => i.mss.to_string(),
                "cwnd" => i.cwnd.to_string(),
                "ssthresh" => i.ssthresh.to_string(),
                "snd_wnd" => i.snd_wnd.to_string(),
                "rcv_wnd" => i.rcv_wnd.to_string(),
                "recv_q" => i.recv_q.to_string(),
                "send_q" => i.send_q.to_string(),
                "bytes_in_flight" => i.bytes_in_flight.to_string(),
                "retransmits" => i.retransmits.to_string(),
                "total_retrans" => i.total_retransmits.to_string(),
                "snd_wscale" => i.snd_wscale.to_string(),
                "rcv_wscale" => i.rcv_wscale.to_string(),
                "timestamps" => (i.timestamps as u8).to_string(),
                "sack" => (i.sack as u8).to_string(),
                _ => return Err(format!("info: unknown key `{key}`")),
            };
            let equal = if key.ends_with("_ms") {
                // Durations to within a millisecond: the estimator works in microseconds.
                match (got.parse::<f64>(), want.parse::<f64>()) {
                    (Ok(g), Ok(w)) => (g - w).abs() <= 1.0,
                    _ => false,
                }
            } else {
                &got == want
            };
            if !equal {
                return Err(format!("info({fd}): {key} is {got}, expected {want}"));
            }
        }
        Ok(())
    }

    fn counter(&self, name: &str, expect: u64) -> Result<(), String> {
        let c = Counter::from_name(name).ok_or_else(|| format!("unknown counter `{name}`"))?;
        let got = self.engine.counters().get(c);
        if got != expect {
            return Err(format!("counter {name} is {got}, expected {expect}"));
        }
        Ok(())
    }
}

fn matches_u8(f: Field<u8>) -> Field<u16> {
    match f {
        Field::Is(v) => Field::Is(v as u16),
        Field::Any => Field::Any,
    }
}

fn show(e: &Expect) -> String {
    match e {
        Expect::Value(v) => v.to_string(),
        Expect::Errno(s) => format!("-1 {s}"),
    }
}
