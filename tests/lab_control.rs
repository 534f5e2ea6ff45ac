//! The control verbs as an operator uses them, against a RUNNING `xdptcp serve` (and `xdptcp bench`) in the veth
//! lab, with kernel-socket clients: `stat` (MIB names, values that follow what the test did, `--watch` rates),
//! `ss` (`-t`, `-l`, state and address/port filters; a full accept queue shown as Linux's `ss -ltn` shows one,
//! checked against a Linux listener in the same lab), `sysctl` (every setting; a run-time change that takes
//! effect; a refused start-time one), `capture` (pcapng that `tcpdump -r` reads, with a whole handshake), `log`
//! (per-connection debug lines in the server's log only while asked), `--metrics` scraped with curl inside the
//! namespace and parsed as Prometheus text, and `--pcap` on serve and bench. Needs root; skipped otherwise.
//! Labs are uniquely named and always removed.

mod lab;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lab::{in_netns, is_root, serial, serve, unique_name, xdptcp_bin};
use xdptcp::lab::{Lab, LabGuard, CLIENT_ADDR, ROUTER_CLIENT_SIDE, SERVER_ADDR, SERVER_KERNEL_ADDR};
use xdptcp::tcp::Config;

/// Runs an `xdptcp` verb in the test's own namespace (the control socket is a file, reachable from anywhere).
fn xdptcp(args: &[&str]) -> Output {
    Command::new("timeout").arg("30").arg(xdptcp_bin()).args(args).output().expect("running xdptcp")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a verb that must succeed; its stdout.
fn verb(args: &[&str]) -> String {
    let o = xdptcp(args);
    assert!(o.status.success(), "xdptcp {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `Group:Name value` lines of `xdptcp stat`.
fn stat(name: &str) -> HashMap<String, u64> {
    verb(&["stat", "--name", name, "-z"])
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// One parsed `ss` line: state, Recv-Q, Send-Q, local, peer.
#[derive(Debug, Clone, PartialEq)]
struct SsLine {
    state: String,
    recv_q: u64,
    send_q: u64,
    local: String,
    peer: String,
}

fn parse_ss(out: &str) -> Vec<SsLine> {
    out.lines()
        .filter(|l| !l.starts_with("State") && !l.starts_with('\t') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 5, "ss line {l:?}");
            SsLine {
                state: f[0].into(),
                recv_q: f[1].parse().unwrap(),
                send_q: f[2].parse().unwrap(),
                local: f[3].into(),
                peer: f[4].into(),
            }
        })
        .collect()
}

fn ss(name: &str, args: &[&str]) -> Vec<SsLine> {
    let mut all = vec!["ss", "--name", name];
    all.extend_from_slice(args);
    parse_ss(&verb(&all))
}

/// Polls `f` until it returns true or `within` passes.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kernel-socket echo connections from the client namespace to `port`; each exchanges one message. Returns the
/// open streams.
fn echo_connections(lab: &Lab, port: u16, n: usize) -> Vec<TcpStream> {
    in_netns(&lab.client_ns(), move || {
        (0..n)
            .map(|i| {
                let mut s =
                    TcpStream::connect_timeout(&SocketAddr::from((SERVER_ADDR, port)), Duration::from_secs(5)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let msg = format!("hello {i}\n");
                s.write_all(msg.as_bytes()).unwrap();
                let mut back = vec![0u8; msg.len()];
                s.read_exact(&mut back).unwrap();
                assert_eq!(back, msg.as_bytes());
                s
            })
            .collect()
    })
}

/// Plain connects (no data) from the client namespace to `addr`; the streams stay open.
fn connect_only(lab: &Lab, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    in_netns(&lab.client_ns(), move || {
        (0..n).map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap()).collect()
    })
}

fn local_port(s: &TcpStream) -> u16 {
    s.local_addr().unwrap().port()
}

/// `tcpdump -r FILE -nn` lines (needs tcpdump; deploy/install-deps.sh installs it).
fn tcpdump(file: &Path) -> String {
    let o = Command::new("tcpdump").args(["-r"]).arg(file).args(["-nn", "-tt"]).output().expect("tcpdump");
    assert!(o.status.success(), "tcpdump -r {}: {}", file.display(), text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// True if `dump` shows SYN, SYN-ACK and ACK of the handshake between `client` and `server`, in that order.
fn has_handshake(dump: &str, client: &str, server: &str) -> bool {
    let there = format!("{client} > {server}:");
    let back = format!("{server} > {client}:");
    let mut step = 0;
    for l in dump.lines() {
        step = match step {
            0 if l.contains(&there) && l.contains("Flags [S],") => 1,
            1 if l.contains(&back) && l.contains("Flags [S.],") => 2,
            2 if l.contains(&there) && l.contains("Flags [.],") => return true,
            s => s,
        };
    }
    false
}

/// A child process with its stderr lines collected; killed and reaped on drop.
struct Proc {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for pipe in
            [Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stdout.take().unwrap())]
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Proc { child, lines }
    }
    fn saw(&self, what: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(what))
    }
    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
    fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes a file when dropped.
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn conn_lines(server: &xdptcp::lab::ServerProcess) -> Vec<String> {
    server.stderr_tail.lock().unwrap().iter().filter(|l| l.contains("xdptcp::conn")).cloned().collect()
}

#[test]
fn every_verb_against_a_running_server() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let name = unique_name("ctl");
    let lab = LabGuard::up(&name, None, xdptcp_bin()).expect("lab up");
    let pcap = TempFile(std::env::temp_dir().join(format!("{name}-serve.pcapng")));
    let cap = TempFile(std::env::temp_dir().join(format!("{name}-capture.pcapng")));
    let mut server = serve(
        &lab,
        &[
            "--app",
            "echo",
            "--listen",
            "7,8,9",
            "--hold-accept",
            "9",
            "--backlog",
            "4",
            "--name",
            &name,
            "--metrics",
            "127.0.0.1:9100",
            "--pcap",
            pcap.0.to_str().unwrap(),
            "--pcap-filter",
            "tcp",
        ],
    );
    assert!(server.banner.contains(&format!("control socket `{name}`")), "{}", server.banner);

    // capture: started before the traffic, stopped with SIGINT as an operator would.
    let mut capture = Proc::spawn(
        Command::new(xdptcp_bin()).args(["capture", "--name", &name, "--filter", "port 7", "-w"]).arg(&cap.0),
    );
    assert!(eventually(Duration::from_secs(10), || capture.saw("capturing from")), "{}", capture.output());

    // Traffic: 5 echo connections on port 7 (2 stay open), 1 on port 8.
    let mut echo7 = echo_connections(&lab, 7, 5);
    let closed: Vec<u16> = echo7.drain(..3).map(|s| local_port(&s)).collect();
    let open7: Vec<u16> = echo7.iter().map(local_port).collect();
    drop(echo_connections(&lab, 8, 1));

    // Quiet by default: no per-connection lines for any of that.
    assert!(conn_lines(&server).is_empty(), "{:?}", conn_lines(&server));

    // capture: the first connection's handshake is in the file tcpdump reads back.
    capture.signal(libc::SIGINT);
    let st = capture.wait(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "capture: {st:?} {}", capture.output());
    let dump = tcpdump(&cap.0);
    let client = format!("{CLIENT_ADDR}.{}", closed[0]);
    assert!(has_handshake(&dump, &client, &format!("{SERVER_ADDR}.7")), "no handshake of {client}:\n{dump}");
    assert!(!dump.contains(&format!("{SERVER_ADDR}.8:")), "port 8 passed the `port 7` filter:\n{dump}");

    // A listener whose app never accepts (--hold-accept 9, backlog 4): its accept queue fills. The same against a
    // Linux listener (backlog 4, never accepting) in the same lab: `ss -ltn` must read the same.
    let linux = Proc::spawn(Lab::command_in(&lab.server_ns(), "python3").args([
        "-c",
        &format!(
            "import socket,time\ns=socket.socket()\ns.bind(('{SERVER_KERNEL_ADDR}',9))\ns.listen(4)\n\
             print('listening',flush=True)\ntime.sleep(60)"
        ),
    ]));
    assert!(eventually(Duration::from_secs(10), || linux.saw("listening")), "{}", linux.output());
    // Linux queues backlog + 1 before it calls the queue full: five connections complete against backlog 4.
    let held = connect_only(&lab, SocketAddr::from((SERVER_ADDR, 9)), 5);
    let held_linux = connect_only(&lab, SocketAddr::from((SERVER_KERNEL_ADDR, 9)), 5);
    let listener9 = || ss(&name, &["-l", "-t", "-n", "sport = :9"]);
    assert!(
        eventually(Duration::from_secs(5), || listener9().first().is_some_and(|l| l.recv_q == 5)),
        "{:?}",
        listener9()
    );
    let ours = listener9();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!((ours[0].state.as_str(), ours[0].recv_q, ours[0].send_q), ("LISTEN", 5, 4), "{ours:?}");
    let linux_ss =
        Command::new("ip").args(["netns", "exec", &lab.server_ns(), "ss", "-ltnH", "sport = :9"]).output().expect("ss");
    let linux_line: Vec<String> =
        String::from_utf8_lossy(&linux_ss.stdout).split_whitespace().map(str::to_string).collect();
    assert_eq!(linux_line.first().map(String::as_str), Some("LISTEN"), "{linux_line:?}");
    assert_eq!(
        (linux_line[1].parse::<u64>().unwrap(), linux_line[2].parse::<u64>().unwrap()),
        (ours[0].recv_q, ours[0].send_q),
        "Linux {linux_line:?} vs xdptcp {ours:?}"
    );
    drop(held_linux);
    drop(linux);

    // ss -l: every listener, Send-Q the accept-queue limit.
    let listeners = ss(&name, &["-l", "-t", "-n"]);
    let mut ports: Vec<&str> = listeners.iter().map(|l| l.local.as_str()).collect();
    ports.sort();
    assert_eq!(ports, [format!("{SERVER_ADDR}:7"), format!("{SERVER_ADDR}:8"), format!("{SERVER_ADDR}:9")]);
    assert!(listeners.iter().all(|l| l.state == "LISTEN" && l.send_q == 4 && l.peer == "0.0.0.0:*"), "{listeners:?}");
    assert_eq!(listeners.iter().find(|l| l.local.ends_with(":7")).unwrap().recv_q, 0);

    // ss -t: connected sockets; state and address/port filters.
    let estab7 = ss(&name, &["-t", "-n", "state", "established", "( sport = :7 )"]);
    let mut peers: Vec<String> = estab7.iter().map(|l| l.peer.clone()).collect();
    peers.sort();
    let mut want: Vec<String> = open7.iter().map(|p| format!("{CLIENT_ADDR}:{p}")).collect();
    want.sort();
    assert_eq!(peers, want, "{estab7:?}");
    assert_eq!(ss(&name, &["-t", "-n", "--state", "established", "sport = :9"]).len(), 5);
    let one = ss(&name, &["-t", "-n", &format!("dport = :{} and dst {CLIENT_ADDR}", open7[0])]);
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!((one[0].local.clone(), one[0].state.as_str()), (format!("{SERVER_ADDR}:7"), "ESTAB"));
    assert!(ss(&name, &["-t", "-n", "dst 198.19.0.0/16"]).is_empty());
    let all = ss(&name, &["-a", "-t", "-n"]);
    assert!(all.iter().filter(|l| l.state == "LISTEN").count() == 3 && all.len() >= 3 + 2 + 4, "{all:?}");

    // stat: MIB names and values that follow what was done (9 connections completed their handshake).
    let c = stat(&name);
    assert!(c["Tcp:PassiveOpens"] >= 5 + 1 + 4, "{c:?}");
    assert_eq!(c["Tcp:ActiveOpens"], 0, "{c:?}");
    assert!(c["Tcp:InSegs"] >= 5 * 4 && c["Tcp:OutSegs"] >= 5 * 3, "{c:?}");
    assert!(c.keys().all(|k| k.contains(':')));

    // stat --watch: rates while a connection keeps exchanging messages.
    let mut busy = echo7.pop().unwrap();
    let pump = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_millis(2600) {
            busy.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            busy.read_exact(&mut b).unwrap();
            n += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        n
    });
    let watch = verb(&["stat", "--name", &name, "--watch", "1", "-c", "2", "Tcp:InSegs", "Tcp:PassiveOpens"]);
    let exchanged = pump.join().unwrap();
    assert!(exchanged > 50, "{exchanged}");
    assert_eq!(watch.matches("#xdptcp per second").count(), 2, "{watch}");
    let rates: Vec<u64> = watch
        .lines()
        .filter(|l| l.starts_with("Tcp:InSegs"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok().map(|r| r as u64))
        .collect();
    assert!(rates.iter().any(|&r| r >= 20), "InSegs rates {rates:?}\n{watch}");
    assert!(!watch.contains("Tcp:PassiveOpens"), "no new connections, so no PassiveOpens rate:\n{watch}");

    // log: debug lines for the selected connections only, and only until --off.
    let o = xdptcp(&["log", "--name", &name, "sport = :7"]);
    assert!(o.status.success(), "{}", text(&o));
    let logged = echo_connections(&lab, 7, 1);
    let unlogged = echo_connections(&lab, 8, 1);
    let (p7, p8) = (local_port(&logged[0]), local_port(&unlogged[0]));
    let needle7 = format!("{CLIENT_ADDR}:{p7} > {SERVER_ADDR}:7 [S]");
    assert!(
        eventually(Duration::from_secs(5), || conn_lines(&server).iter().any(|l| l.contains(&needle7))),
        "{:?}",
        conn_lines(&server)
    );
    assert!(conn_lines(&server).iter().any(|l| l.contains(&format!("out {SERVER_ADDR}:7 > {CLIENT_ADDR}:{p7} [S.]"))));
    assert!(!conn_lines(&server).iter().any(|l| l.contains(&format!(":{p8} "))), "{:?}", conn_lines(&server));
    let o = xdptcp(&["log", "--name", &name, "--off"]);
    assert!(o.status.success(), "{}", text(&o));
    let after = echo_connections(&lab, 7, 1);
    std::thread::sleep(Duration::from_millis(300));
    let pa = local_port(&after[0]);
    assert!(!conn_lines(&server).iter().any(|l| l.contains(&format!(":{pa} "))), "{:?}", conn_lines(&server));
    assert!(xdptcp(&["log", "--name", &name, "dport ~ 7"]).status.code() == Some(1), "a bad filter is refused");

    // sysctl: every setting with its default; a run-time change that takes effect; a start-time one refused.
    let listed = verb(&["sysctl", "--name", &name, "-a"]);
    let defaults = Config::default();
    for n in Config::names() {
        let line = format!("{} = {}", Config::sysctl_name(n).unwrap(), defaults.get(n).unwrap());
        assert!(listed.lines().any(|l| l == line), "missing `{line}` in\n{listed}");
    }
    assert_eq!(verb(&["sysctl", "--name", &name, "net.ipv4.tcp_syncookies"]).trim(), "net.ipv4.tcp_syncookies = 1");
    let cookies_before = stat(&name)["TcpExt:SyncookiesSent"];
    assert_eq!(cookies_before, 0);
    assert_eq!(verb(&["sysctl", "--name", &name, "tcp_syncookies=2"]).trim(), "net.ipv4.tcp_syncookies = 2");
    drop(echo_connections(&lab, 7, 2));
    assert_eq!(stat(&name)["TcpExt:SyncookiesSent"], 2, "tcp_syncookies=2 answers every SYN with a cookie");
    let refused = xdptcp(&["sysctl", "--name", &name, "mtu=9000"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("restart"), "{}", text(&refused));
    assert_eq!(verb(&["sysctl", "--name", &name, "-n", "mtu"]).trim(), defaults.get("mtu").unwrap());

    // --metrics: scraped with curl inside the server's namespace, parsed as Prometheus text. Metrics come from
    // the snapshots workers publish every ~100 ms, so the last connections may take one more scrape to show.
    let scrape = || {
        let o = Lab::command_in(&lab.server_ns(), "curl")
            .args(["-sS", "--max-time", "10", "http://127.0.0.1:9100/metrics"])
            .output()
            .expect("curl");
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mut body = String::new();
    let caught_up = eventually(Duration::from_secs(5), || {
        body = scrape();
        parse_prometheus(&body)["xdptcp_netstat_TcpExt_SyncookiesSent"] == 2.0
    });
    assert!(caught_up, "{body}");
    let metrics = parse_prometheus(&body);
    assert!(metrics["xdptcp_netstat_Tcp_PassiveOpens"] >= c["Tcp:PassiveOpens"] as f64 + 2.0, "{body}");
    assert_eq!(metrics["xdptcp_worker_up{worker=\"0\"}"], 1.0, "{body}");
    assert_eq!(metrics["xdptcp_workers"], 1.0, "{body}");
    assert!(body.contains("# TYPE xdptcp_netstat_Tcp_PassiveOpens counter"), "{body}");

    drop((echo7, held, logged, unlogged, after));
    let out = server.stop_output().expect("orderly stop");
    // --pcap: the whole run, from the first handshake on, readable by tcpdump; the server reported it.
    let tail = server.stderr_tail.lock().unwrap().join("\n");
    assert!(tail.contains("frames written") && tail.contains("0 dropped by ring"), "{tail}\n{out}");
    let dump = tcpdump(&pcap.0);
    for p in closed.iter().chain(&[p7, p8]) {
        let client = format!("{CLIENT_ADDR}.{p}");
        assert!(dump.contains(&format!("{client} > {SERVER_ADDR}")), "{client} missing from the --pcap file");
    }
    assert!(has_handshake(&dump, &format!("{CLIENT_ADDR}.{}", closed[0]), &format!("{SERVER_ADDR}.7")), "{dump}");
    assert!(!dump.contains(" ARP"), "--pcap-filter tcp let ARP through");
}

/// Prometheus text exposition: `name{labels} value` lines (comments skipped); every value must parse.
fn parse_prometheus(body: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        out.insert(series.to_string(), v);
    }
    assert!(!out.is_empty());
    out
}

#[test]
fn stat_and_ss_against_the_load_generator_and_its_pcap() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let name = unique_name("ctlb");
    let lab = LabGuard::up(&name, None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7", "--name", "none"]);
    let pcap = TempFile(std::env::temp_dir().join(format!("{name}-bench.pcapng")));
    let gw = ROUTER_CLIENT_SIDE.to_string();
    let target = format!("{SERVER_ADDR}:7");
    let bench_name = format!("{name}-b");
    let mut bench = Proc::spawn(
        Command::new("timeout")
            .args(["60", "ip", "netns", "exec", &lab.client_ns()])
            .arg(xdptcp_bin())
            .args(["bench", "--mode", "hold", "--connections", "50", "--duration", "4", "--target", &target])
            .args(["--iface", "xc0", "--addr", "198.18.1.3/24", "--gateway", &gw, "--name", &bench_name, "--pcap"])
            .arg(&pcap.0),
    );
    let estab = || {
        let o = xdptcp(&["ss", "--name", &bench_name, "-H", "state", "established", "dst", &SERVER_ADDR.to_string()]);
        if o.status.success() {
            parse_ss(&String::from_utf8_lossy(&o.stdout))
        } else {
            Vec::new()
        }
    };
    assert!(eventually(Duration::from_secs(15), || estab().len() == 50), "{:?}\n{}", estab(), bench.output());
    assert!(estab().iter().all(|l| l.local.starts_with("198.18.1.3:") && l.peer == target));
    let c = stat(&bench_name);
    assert!(c["Tcp:ActiveOpens"] >= 50 && c["Tcp:PassiveOpens"] == 0, "{c:?}");
    let st = bench.wait(Duration::from_secs(30));
    assert!(st.is_some_and(|s| s.success()), "bench: {st:?}\n{}", bench.output());
    assert!(bench.saw("frames written"), "{}", bench.output());
    assert!(!Path::new(&format!("/run/xdptcp/{bench_name}.sock")).exists(), "socket file left behind");
    let dump = tcpdump(&pcap.0);
    let syns = dump.lines().filter(|l| l.contains(&format!("> {SERVER_ADDR}.7: Flags [S],"))).count();
    assert!(syns >= 50, "{syns} SYNs in the bench's pcap");
    server.stop().expect("orderly stop");
}
