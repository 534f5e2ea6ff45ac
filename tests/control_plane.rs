//! The control plane against live engines: two worker threads, each owning a `tcp::Engine` and its
//! `WorkerControl`, exchange IPv4 packets in memory (198.18.0.1 serves, 198.18.0.2 connects); every verb's client
//! function then talks to the real Unix socket and its output text is checked.

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use crossbeam::channel::{self, Receiver, Sender};
use xdptcp::cli::{capture, ss, stat, sysctl};
use xdptcp::control::{ControlServer, Direction, LinkType, Metrics, ServerConfig, WorkerControl};
use xdptcp::tcp::{Config, ConnId, Engine, ListenerId, PacketSink};
use xdptcp::time::{Instant, MonotonicClock};

const SERVER: &str = "198.18.0.1";
const CLIENT: &str = "198.18.0.2";

type Command = Box<dyn FnOnce(&mut Engine, Instant) + Send>;

#[derive(Default)]
struct VecSink {
    packets: Vec<Vec<u8>>,
    scratch: Vec<u8>,
}

impl PacketSink for VecSink {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        self.scratch.clear();
        self.scratch.resize(1500, 0);
        Some(&mut self.scratch)
    }
    fn commit(&mut self, len: usize) {
        self.packets.push(self.scratch[..len].to_vec());
    }
}

/// One worker thread: its engine, its control, a wire to the other worker, and a command queue for the test.
struct Worker {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(
        mut control: WorkerControl,
        clock: MonotonicClock,
        seed: u64,
        rx: Receiver<Vec<u8>>,
        tx: Sender<Vec<u8>>,
        stop: Arc<AtomicBool>,
    ) -> Worker {
        let (commands, cmd_rx) = channel::unbounded::<Command>();
        let thread = std::thread::spawn(move || {
            let mut engine = Engine::new(Config::default(), clock.now(), seed);
            let mut sink = VecSink::default();
            while !stop.load(Ordering::Relaxed) {
                let now = clock.now();
                let mut busy = false;
                while let Ok(cmd) = cmd_rx.try_recv() {
                    cmd(&mut engine, now);
                    busy = true;
                }
                while let Ok(packet) = rx.try_recv() {
                    control.tap(now, &packet, Direction::Rx);
                    engine.handle_ipv4(now, &packet);
                    busy = true;
                }
                engine.handle_timeout(now);
                engine.poll_transmit(now, &mut sink);
                for packet in sink.packets.drain(..) {
                    control.tap(now, &packet, Direction::Tx);
                    let _ = tx.send(packet);
                    busy = true;
                }
                while engine.poll_event().is_some() {}
                control.service(&mut engine, now);
                if !busy {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        Worker { commands, thread: Some(thread) }
    }

    /// Runs `f` on the worker thread and returns its result.
    fn run<R: Send + 'static>(&self, f: impl FnOnce(&mut Engine, Instant) -> R + Send + 'static) -> R {
        let (tx, rx) = channel::bounded(1);
        self.commands
            .send(Box::new(move |e: &mut Engine, now: Instant| {
                let _ = tx.send(f(e, now));
            }))
            .expect("worker alive");
        rx.recv_timeout(Duration::from_secs(5)).expect("worker answered")
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xdptcp-ctl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Worker 0 serves on 198.18.0.1 with a listener on :80 whose accept queue is full (backlog 2, so three queued as
/// on Linux, four clients, nobody accepting); worker 1 is the client side.
struct Stack {
    server: Option<ControlServer>,
    workers: Vec<Worker>,
    stop: Arc<AtomicBool>,
    socket: PathBuf,
    listener: ListenerId,
    clients: Vec<ConnId>,
    _dir: TempDir,
}

fn sa(ip: &str, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip.parse().unwrap(), port)
}

impl Stack {
    fn start() -> Stack {
        let dir = TempDir::new();
        let socket = dir.0.join("ctl.sock");
        let server = ControlServer::bind(ServerConfig::at(&socket)).expect("bind control socket");
        let clock = MonotonicClock::new();
        let stop = Arc::new(AtomicBool::new(false));
        let (to_client, from_server) = channel::unbounded();
        let (to_server, from_client) = channel::unbounded();
        let w0 =
            Worker::spawn(server.register_worker(LinkType::RawIpv4), clock, 1, from_client, to_client, stop.clone());
        let w1 =
            Worker::spawn(server.register_worker(LinkType::RawIpv4), clock, 2, from_server, to_server, stop.clone());
        let listener = w0.run(|e, _| e.listen(sa(SERVER, 80), 2).unwrap());
        let clients = w1.run(|e, now| (0..4).map(|_| e.connect(now, sa(CLIENT, 0), sa(SERVER, 80)).unwrap()).collect());
        let stack = Stack { server: Some(server), workers: vec![w0, w1], stop, socket, listener, clients, _dir: dir };
        let l = stack.listener;
        stack.wait_for("a full accept queue", || {
            stack.workers[0].run(move |e, _| e.listener_info(l).map(|i| i.accept_queue)) == Some(3)
        });
        stack
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = StdInstant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn socket_args(&self) -> stat::SocketArgs {
        stat::SocketArgs { socket: Some(self.socket.clone()), name: None }
    }

    fn ss(&self, f: impl FnOnce(&mut ss::Args)) -> String {
        let mut args = ss::Args { socket: self.socket_args(), ..Default::default() };
        f(&mut args);
        let mut out = Vec::new();
        ss::report(&args, &mut out).expect("ss");
        String::from_utf8(out).unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        self.server.take();
    }
}

fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines().filter(|l| !l.starts_with('\t')).map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

#[test]
fn ss_shows_a_full_accept_queue_like_linux() {
    let stack = Stack::start();
    let out = stack.ss(|a| {
        a.listening = true;
        a.tcp = true;
        a.numeric = true;
    });
    let r = rows(&out);
    assert_eq!(r[0][0], "State", "{out}");
    assert_eq!(r[1..], [vec!["LISTEN", "3", "2", "198.18.0.1:80", "0.0.0.0:*"]], "{out}");

    // Default (`ss -tn`): connected sockets only. The three queued connections are ESTAB on the server; all four
    // clients are ESTAB on their side (the server answered their SYNs but, its accept queue being full, keeps no
    // connection for the last one: its third ACK was dropped, as Linux does).
    let out = stack.ss(|_| {});
    let r = rows(&out);
    let estab_server = r.iter().filter(|l| l[0] == "ESTAB" && l[3] == "198.18.0.1:80").count();
    let estab_client = r.iter().filter(|l| l[0] == "ESTAB" && l[4] == "198.18.0.1:80").count();
    assert_eq!((estab_server, estab_client), (3, 4), "{out}");
    assert!(!r.iter().any(|l| l[0] == "LISTEN"), "{out}");

    // `-a`: everything, the listener included.
    let out = stack.ss(|a| a.all = true);
    let r = rows(&out);
    let mut server_side: Vec<&str> = r.iter().filter(|l| l[3] == "198.18.0.1:80").map(|l| l[0].as_str()).collect();
    server_side.sort();
    assert_eq!(server_side, ["ESTAB", "ESTAB", "ESTAB", "LISTEN"], "{out}");
    assert_eq!(r.iter().filter(|l| l[4] == "198.18.0.1:80").count(), 4, "{out}");

    // `-i` with a filter: the internals line follows each connection.
    let out = stack.ss(|a| {
        a.info = true;
        a.filter = vec!["dport".into(), "=".into(), ":80".into()];
    });
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 5, "{out}");
    for pair in lines[1..].chunks(2) {
        assert!(pair[0].split_whitespace().nth(4) == Some("198.18.0.1:80"), "{out}");
        let info = pair.get(1).unwrap_or_else(|| panic!("no -i line: {out}"));
        assert!(info.starts_with('\t'), "{out}");
        for field in ["rto:", "mss:", "cwnd:", "bytes_in_flight:", "retrans:", "wscale:"] {
            assert!(info.contains(field), "{field} missing: {info}");
        }
    }
    let established_rtt = lines.iter().any(|l| l.contains("rtt:"));
    assert!(established_rtt, "an established connection has an RTT sample: {out}");

    // Filters that match nothing print only the header.
    let out = stack.ss(|a| {
        a.all = true;
        a.filter = vec!["src 10.0.0.0/8".into()];
    });
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[test]
fn ss_lists_time_wait_with_timers() {
    let stack = Stack::start();
    // A second listener; the client connects, both sides close, the client (active closer) enters TIME_WAIT.
    let l = stack.workers[0].run(|e, _| e.listen(sa(SERVER, 8080), 16).unwrap());
    let c = stack.workers[1].run(|e, now| e.connect(now, sa(CLIENT, 0), sa(SERVER, 8080)).unwrap());
    let mut accepted = None;
    stack.wait_for("the 8080 accept", || {
        accepted = stack.workers[0].run(move |e, _| e.accept(l).ok());
        accepted.is_some()
    });
    stack.workers[1].run(move |e, now| e.close(now, c).unwrap());
    let a = accepted.unwrap();
    stack.wait_for("the server to see the FIN", || {
        stack.workers[0].run(move |e, _| e.info(a).map(|i| i.state)) == Some(xdptcp::tcp::State::CloseWait)
    });
    stack.workers[0].run(move |e, now| e.close(now, a).unwrap());
    stack.wait_for("TIME-WAIT", || stack.workers[1].run(|e, _| e.connection_count().1) == 1);

    let out = stack.ss(|a| {
        a.timers = true;
        a.filter = vec!["state".into(), "time-wait".into()];
    });
    let r = rows(&out);
    assert_eq!(r.len(), 2, "{out}");
    assert_eq!(r[1][0], "TIME-WAIT");
    assert_eq!(r[1][4], "198.18.0.1:8080");
    assert!(r[1][5].starts_with("timer:(timewait,") && r[1][5].ends_with("sec,0)"), "{out}");
    // Not shown by default (ss hides TIME-WAIT without -a).
    assert!(!stack.ss(|_| {}).contains("TIME-WAIT"));
    assert!(stack.ss(|a| a.all = true).contains("TIME-WAIT"));
    let _ = &stack.clients;
}

#[test]
fn stat_sums_workers_and_watch_reports_rates() {
    let stack = Stack::start();
    let mut out = Vec::new();
    stat::report(&stat::Args { socket: stack.socket_args(), ..Default::default() }, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(name)).then(|| it.next().unwrap().parse().unwrap())
            })
            .unwrap_or(0)
    };
    assert_eq!(value("Tcp:ActiveOpens"), 4, "{text}");
    assert_eq!(value("Tcp:PassiveOpens"), 3, "{text}");
    assert!(value("Tcp:OutSegs") >= 6 && value("Tcp:InSegs") >= 6, "{text}");
    assert!(text.lines().all(|l| l.split_whitespace().count() == 2 && l.contains(':')), "{text}");
    assert!(!text.contains(" 0\n"), "zeros hidden without -z: {text}");

    let mut out = Vec::new();
    let zeros =
        stat::Args { socket: stack.socket_args(), zeros: true, names: vec!["Tcp".into()], ..Default::default() };
    stat::report(&zeros, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Tcp:RetransSegs") && !text.contains("TcpExt:"), "{text}");

    let watch = stat::Args {
        socket: stack.socket_args(),
        watch: Some(0.2),
        count: Some(2),
        zeros: true,
        names: vec!["Tcp:InSegs".into()],
    };
    let mut out = Vec::new();
    stat::report(&watch, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let headers = text.lines().filter(|l| l.starts_with("#xdptcp per second")).count();
    assert_eq!(headers, 2, "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("Tcp:InSegs")).count(), 2, "{text}");
}

#[test]
fn sysctl_reads_sets_and_refuses() {
    let stack = Stack::start();
    let run = |settings: &[&str], all: bool| {
        let args = sysctl::Args {
            socket: stack.socket_args(),
            all,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = sysctl::report(&args, &mut out, &mut err).unwrap();
        (ok, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    };
    let (ok, out, _) = run(&["tcp_syn_retries"], false);
    assert!(ok);
    assert_eq!(out, "net.ipv4.tcp_syn_retries = 6\n");
    let (ok, out, _) = run(&["net.ipv4.tcp_syn_retries=3"], false);
    assert!(ok);
    assert_eq!(out, "net.ipv4.tcp_syn_retries = 3\n");
    // Every worker took it.
    for w in &stack.workers {
        assert_eq!(w.run(|e, _| e.config().tcp_syn_retries), 3);
    }
    let (ok, out, err) = run(&["mtu=9000", "tcp_syn_retries", "no_such_knob"], false);
    assert!(!ok);
    assert_eq!(out, "net.ipv4.tcp_syn_retries = 3\n");
    assert!(err.contains("mtu") && err.contains("no_such_knob"), "{err}");
    assert_eq!(stack.workers[0].run(|e, _| e.config().mtu), 1500);
    let (ok, out, _) = run(&[], true);
    assert!(ok);
    assert!(out.lines().count() >= 20 && out.contains("net.ipv4.tcp_rmem = "), "{out}");
    assert!(out.lines().all(|l| l.contains(" = ")));
}

fn tcp_flags_of(packet: &[u8]) -> u8 {
    let ihl = (packet[0] & 0x0f) as usize * 4;
    packet[ihl + 13]
}

#[test]
fn capture_writes_a_handshake_that_readers_understand() {
    let stack = Stack::start();
    stack.workers[0].run(|e, _| e.listen(sa(SERVER, 8080), 16).unwrap());
    let file = stack._dir.0.join("handshake.pcapng");
    let args = capture::Args {
        socket: stack.socket_args(),
        write: file.clone(),
        count: Some(6),
        duration: Some(20.0),
        expression: vec!["tcp".into(), "port".into(), "8080".into()],
        snaplen: 256,
        ..Default::default()
    };
    let (started_tx, started_rx) = channel::bounded(1);
    let capturing = std::thread::spawn(move || {
        let mut log = |line: &str| {
            if line.starts_with("capturing from") {
                let _ = started_tx.send(());
            }
        };
        capture::capture(&args, None, &mut log)
    });
    started_rx.recv_timeout(Duration::from_secs(10)).expect("capture started");
    // Traffic the filter must skip (port 80), then the handshake it must keep.
    let extra = stack.workers[1].run(|e, now| e.connect(now, sa(CLIENT, 0), sa(SERVER, 80)).unwrap());
    stack.workers[1].run(|e, now| e.connect(now, sa(CLIENT, 0), sa(SERVER, 8080)).unwrap());
    let summary = capturing.join().unwrap().expect("capture");
    assert_eq!(summary.written, 6);
    assert_eq!(summary.dropped, 0);
    let _ = extra;

    // Read it back with pcap-file: SYN, SYN-ACK, ACK, each seen leaving one worker and entering the other.
    use pcap_file::pcapng::{Block, PcapNgReader};
    let bytes = std::fs::read(&file).unwrap();
    let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
    let mut packets = Vec::new();
    let mut interfaces = 0;
    while let Some(block) = reader.next_block() {
        match block.unwrap() {
            Block::InterfaceDescription(_) => interfaces += 1,
            Block::EnhancedPacket(p) => {
                packets.push((p.interface_id, tcp_flags_of(&p.data), format!("{:?}", p.options)))
            }
            _ => {}
        }
    }
    assert_eq!(interfaces, 2);
    let flags: Vec<u8> = packets.iter().map(|p| p.1).collect();
    assert_eq!(flags, [0x02, 0x02, 0x12, 0x12, 0x10, 0x10], "{packets:?}");
    // The SYN leaves the client worker (1) before it enters the server worker (0).
    assert_eq!(packets[0].0, 1);
    assert_eq!(packets[1].0, 0);

    // And the tools people use agree, when they are installed.
    if let Some(text) = run_tool("tcpdump", &["-n", "-r", file.to_str().unwrap()]) {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("8080")).collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(
            lines[0].contains("Flags [S]") && lines[2].contains("Flags [S.]") && lines[4].contains("Flags [.]"),
            "{text}"
        );
    }
    if let Some(text) = run_tool("tshark", &["-r", file.to_str().unwrap(), "-T", "fields", "-e", "tcp.flags"]) {
        let flags: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        assert_eq!(flags, ["0x0002", "0x0002", "0x0012", "0x0012", "0x0010", "0x0010"], "{text}");
    }
}

/// Output of an installed packet tool, `None` if it is not installed.
fn run_tool(tool: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(tool).args(args).output().ok()?;
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn metrics_scrape_parses_and_counts_active_opens() {
    let stack = Stack::start();
    let metrics = Metrics::bind("127.0.0.1:0", stack.server.as_ref().unwrap().hub().clone()).unwrap();
    let addr = metrics.local_addr();
    let scrape = |path: &str| -> (String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    };
    let mut body = String::new();
    stack.wait_for("published ActiveOpens", || {
        let (head, b) = scrape("/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
        body = b;
        // Each worker publishes on its own ~100 ms schedule: wait until both snapshots are current.
        body.contains("\nxdptcp_netstat_Tcp_ActiveOpens 4\n")
            && body.contains("\nxdptcp_netstat_Tcp_PassiveOpens 3\n")
            && body.contains("xdptcp_worker_connections{worker=\"0\"} 3\n")
    });
    for line in body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line}"));
                for kv in labels.split(',') {
                    let (k, v) = kv.split_once('=').unwrap();
                    assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
                    assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
                }
                name
            }
            None => series,
        };
        assert!(name.starts_with("xdptcp_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
    }
    assert!(body.contains("xdptcp_worker_connections{worker=\"1\"} 4\n"), "{body}");
    assert!(body.contains("xdptcp_worker_listeners{worker=\"0\"} 1\n"), "{body}");
    assert!(scrape("/nope").0.starts_with("HTTP/1.1 404"));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
}

#[test]
fn socket_file_is_private_replaces_stale_ones_and_goes_away() {
    let dir = TempDir::new();
    let path = dir.0.join("x.sock");
    // A stale socket file (its server died without cleaning up) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = ControlServer::bind(ServerConfig::at(&path)).expect("stale socket replaced");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A live one is not.
    let err = ControlServer::bind(ServerConfig::at(&path)).err().expect("second server refused");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    // Nor is a file that is not a socket.
    let plain = dir.0.join("plain");
    std::fs::write(&plain, b"keep me").unwrap();
    assert!(ControlServer::bind(ServerConfig::at(&plain)).is_err());
    assert_eq!(std::fs::read(&plain).unwrap(), b"keep me");
    drop(server);
    assert!(!path.exists());
    // A missing directory is created private.
    let nested = dir.0.join("run").join("n.sock");
    let s = ControlServer::bind(ServerConfig::at(&nested)).unwrap();
    assert_eq!(std::fs::metadata(nested.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    drop(s);
}

#[test]
fn garbage_requests_and_stalled_workers_get_answers_not_hangs() {
    let dir = TempDir::new();
    let path = dir.0.join("g.sock");
    let server = ControlServer::bind(ServerConfig::at(&path)).unwrap();
    // A worker that never calls `service`.
    let _stalled = server.register_worker(LinkType::Ethernet);
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    let mut ask = |req: &str, line: &mut String| {
        s.write_all(req.as_bytes()).unwrap();
        line.clear();
        std::io::BufRead::read_line(&mut reader, line).unwrap();
    };
    ask("this is not json\n", &mut line);
    assert!(line.starts_with(r#"{"error":{"message":"bad request"#), "{line}");
    ask("{\"cmd\":\"list\",\"states\":2047,\"filter\":\"dport ~ 1\"}\n", &mut line);
    assert!(line.contains("ss filter"), "{line}");
    ask("{\"cmd\":\"capture\",\"filter\":\"port\"}\n", &mut line);
    assert!(line.contains("capture filter"), "{line}");
    drop(server);
    let _ = Path::new(&path);

    // Through the CLI: the stalled worker turns into a warning, and the listing still ends.
    let server = ControlServer::bind(ServerConfig::at(&path)).unwrap();
    let _stalled = server.register_worker(LinkType::Ethernet);
    let mut client = xdptcp::control::Client::connect(&path).unwrap();
    let mut warnings = Vec::new();
    let n = client
        .list(xdptcp::control::StateSet::all(), "", false, &mut |_| Ok(()), &mut |w| warnings.push(w.to_string()))
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(warnings, ["worker 0 did not answer in time"]);
    // Counters fall back to the (empty) published snapshot and say the worker is not live.
    let reply = client.counters(true).unwrap();
    assert!(!reply.workers[0].live);
}

/// `--pcap`: a whole-run capture over every worker of a hub (no socket needed); what the writer could not keep up
/// with is counted as dropped, never waited for: written + dropped = matched, exactly.
#[test]
fn pcap_file_keeps_every_frame_or_counts_it() {
    use xdptcp::control::{CaptureFilter, ControlHub, PcapFile};
    let dir = TempDir::new();
    let path = dir.0.join("run.pcapng");
    let hub = ControlHub::new();
    let mut controls = [hub.register_worker(LinkType::RawIpv4), hub.register_worker(LinkType::RawIpv4)];
    let file = PcapFile::create(&path, &hub, CaptureFilter::parse("tcp").unwrap(), 128).unwrap();
    let clock = MonotonicClock::new();
    for c in &mut controls {
        file.attach(c, clock.now());
    }
    // Real segments: a client engine's SYNs, tapped as fast as a worker could.
    let mut engine = Engine::new(Config::default(), clock.now(), 3);
    for _ in 0..64 {
        engine.connect(clock.now(), sa(CLIENT, 0), sa(SERVER, 80)).unwrap();
    }
    let mut sink = VecSink::default();
    engine.poll_transmit(clock.now(), &mut sink);
    assert_eq!(sink.packets.len(), 64);
    let rounds = 400;
    let t0 = StdInstant::now();
    for _ in 0..rounds {
        for (i, p) in sink.packets.iter().enumerate() {
            controls[i % 2].tap(clock.now(), p, if i % 3 == 0 { Direction::Tx } else { Direction::Rx });
        }
    }
    let tapping = t0.elapsed();
    // Not TCP: filtered out, not counted.
    controls[0].tap(
        clock.now(),
        &[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2],
        Direction::Rx,
    );
    let summary = file.finish().unwrap();
    let frames = 64 * rounds as u64;
    assert_eq!(summary.matched, frames);
    assert_eq!(summary.written + summary.dropped, frames, "{summary:?}");
    assert!(summary.written >= 4096, "{summary:?}");
    eprintln!("{frames} frames tapped in {tapping:?}: {summary:?}");

    use pcap_file::pcapng::{Block, PcapNgReader};
    let bytes = std::fs::read(&path).unwrap();
    let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
    let (mut interfaces, mut packets, mut stats) = (0, 0u64, 0);
    while let Some(block) = reader.next_block() {
        match block.unwrap() {
            Block::InterfaceDescription(_) => interfaces += 1,
            Block::EnhancedPacket(p) => {
                assert_eq!(tcp_flags_of(&p.data), 0x02);
                packets += 1;
            }
            Block::InterfaceStatistics(_) => stats += 1,
            _ => {}
        }
    }
    assert_eq!((interfaces, stats), (2, 2));
    assert_eq!(packets, summary.written);
}

/// A `tracing` writer into a shared buffer, so the test sees what the server would log.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `xdptcp log`: nothing per connection until asked; then every segment of the selected connections, on every
/// worker, and nothing of the others; `--off` stops it.
#[test]
fn log_turns_per_connection_debug_on_and_off() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,xdptcp::conn=debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");
    let stack = Stack::start();
    stack.workers[0].run(|e, _| {
        e.listen(sa(SERVER, 8080), 16).unwrap();
        e.listen(sa(SERVER, 8081), 16).unwrap();
    });
    let conn_lines =
        || buffer.text().lines().filter(|l| l.contains("xdptcp::conn")).map(str::to_string).collect::<Vec<_>>();
    let connect = |port: u16| {
        stack.workers[1].run(move |e, now| {
            let c = e.connect(now, sa(CLIENT, 0), sa(SERVER, port)).unwrap();
            e.local_addr_of(c).unwrap().0.port()
        })
    };
    let quiet = connect(8080);
    std::thread::sleep(Duration::from_millis(100));
    assert!(conn_lines().is_empty(), "{:?}", conn_lines());

    let mut client = xdptcp::control::Client::connect(&stack.socket).unwrap();
    assert_eq!(client.log(Some("sport = :8080 or dport = :8080")).unwrap(), 2);
    let watched = connect(8080);
    let other = connect(8081);
    let syn = format!("{CLIENT}:{watched} > {SERVER}:8080 [S]");
    stack.wait_for("the SYN logged by both workers", || {
        let l = conn_lines();
        l.iter().any(|l| l.contains(&format!("w1 out {syn}"))) && l.iter().any(|l| l.contains(&format!("w0 in {syn}")))
    });
    let synack = format!("{SERVER}:8080 > {CLIENT}:{watched} [S.]");
    stack.wait_for("the SYN-ACK", || conn_lines().iter().any(|l| l.contains(&format!("w0 out {synack}"))));
    let lines = conn_lines();
    assert!(
        lines.iter().all(|l| !l.contains(&format!(":{other} ")) && !l.contains(&format!(":{quiet} "))),
        "{lines:?}"
    );

    assert_eq!(client.log(None).unwrap(), 2);
    let before = conn_lines().len();
    let after = connect(8080);
    std::thread::sleep(Duration::from_millis(200));
    let lines = conn_lines();
    assert!(lines.iter().all(|l| !l.contains(&format!(":{after} "))), "{lines:?}");
    assert!(lines.len() <= before + 1, "only the `log off` notice may follow: {lines:?}");
    assert!(matches!(client.log(Some("dport ~ 1")), Err(xdptcp::control::ClientError::Remote(_))));
}
