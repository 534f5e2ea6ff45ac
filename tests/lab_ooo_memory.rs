//! Review H1 in the lab: thousands of kernel connections each put one byte at the right edge of the server's
//! receive window (tests/lab/ooo_edge.py: TCP_REPAIR reads the sequence numbers, a raw socket sends the byte, the
//! kernel socket stays open so nothing answers with RST). xdptcp's RSS must grow by a small, bounded amount; Linux's
//! own accounting for the same load on a kernel listener in the same lab (`ss -tm`'s `skmem r`, the receive memory
//! including the out-of-order queue) is printed beside it. Needs root (namespaces, XDP, TCP_REPAIR); skipped
//! otherwise.

mod lab;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::Duration;

use lab::{is_root, serial, serve, unique_name, xdptcp_bin};
use xdptcp::lab::{Lab, LabGuard, SERVER_ADDR, SERVER_KERNEL_ADDR};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/ooo_edge.py");
const ECHO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/synflood.py");
const CONNECTIONS: usize = 2000;
/// What xdptcp may grow by per connection: its control block (~0.6 KiB), one 4 KiB chunk for the byte, table and
/// allocator slack. Before the fix each byte pinned the whole 128 KiB window.
const GROWTH_LIMIT_PER_CONN_KIB: u64 = 12;

/// A child killed and reaped on drop, also during a panic unwind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Starts the client; returns it (holding its connections until its stdin closes) and its JSON report line.
fn attack(lab: &LabGuard, host: &str, port: u16) -> (Reaped, String) {
    let count = CONNECTIONS.to_string();
    let mut child = Reaped(
        Lab::command_in(&lab.client_ns(), "python3")
            .args([SCRIPT, "--host", host, "--port", &port.to_string(), "--count", &count])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 ooo_edge.py"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(120)).expect("ooo_edge.py report");
    (child, line)
}

fn field(json: &str, name: &str) -> u64 {
    let at = json.find(&format!("\"{name}\": ")).unwrap_or_else(|| panic!("{name} in {json}"));
    json[at + name.len() + 4..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

/// Sum of `skmem r` (receive memory, out-of-order queue included) over the server namespace's sockets on `port`.
fn linux_rmem(lab: &LabGuard, port: u16) -> u64 {
    let out = Lab::command_in(&lab.server_ns(), "ss")
        .args(["-Htnm", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .expect("ss");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("skmem:(r")
        .skip(1)
        .filter_map(|s| s.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u64>().ok())
        .sum()
}

#[test]
fn one_byte_at_the_window_edge_grows_rss_little() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces, XDP and TCP_REPAIR");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("ooo"), None, xdptcp_bin()).expect("lab up");

    // xdptcp.
    let server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    let pid = server.pid().expect("server pid");
    let before = rss_kib(pid);
    let (mut client, report) = attack(&lab, &SERVER_ADDR.to_string(), 7);
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    let (opened, sent) = (field(&report, "opened"), field(&report, "sent"));
    if let Some(mut stdin) = client.0.stdin.take() {
        let _ = stdin.write_all(b"done\n");
    }
    drop(client);
    let growth = after.saturating_sub(before);
    eprintln!(
        "xdptcp: {opened} connections, {sent} edge bytes: RSS {before} -> {after} KiB, +{growth} KiB \
         ({:.1} KiB per connection)",
        growth as f64 / opened.max(1) as f64
    );
    assert!(opened as usize >= CONNECTIONS * 95 / 100, "{report}");
    assert_eq!(sent, opened, "{report}");
    assert!(growth <= opened * GROWTH_LIMIT_PER_CONN_KIB, "RSS grew {growth} KiB for {opened} connections");
    drop(server);

    // Linux, same lab, same load, on a kernel echo listener in the server namespace.
    let port = 7000u16;
    let mut echo = Reaped(
        Lab::command_in(&lab.server_ns(), "python3")
            .args([ECHO, "server", "--addr", &SERVER_KERNEL_ADDR.to_string(), "--port", &port.to_string()])
            .args(["--backlog", "4096", "--max-seconds", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kernel echo server"),
    );
    let stderr = echo.0.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.ends_with("ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("kernel echo server ready");
    let (mut client, report) = attack(&lab, &SERVER_KERNEL_ADDR.to_string(), port);
    std::thread::sleep(Duration::from_millis(500));
    let linux = linux_rmem(&lab, port);
    let opened = field(&report, "opened");
    eprintln!(
        "Linux: {opened} connections: receive memory {} KiB ({:.1} KiB per connection)",
        linux / 1024,
        linux as f64 / 1024.0 / opened.max(1) as f64
    );
    if let Some(mut stdin) = client.0.stdin.take() {
        let _ = stdin.write_all(b"done\n");
    }
    drop(client);
    drop(echo);
}
