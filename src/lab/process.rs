//! Processes in the lab's namespaces: `xdptcp serve` in the server namespace ([`ServerProcess`]), commands in
//! any namespace, and readers for what they print (counters, wrk summaries).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{Lab, PREFIX_LEN, ROUTER_SERVER_SIDE, SERVER_ADDR, SERVER_IF};
use crate::tcp::{Counter, Counters};

/// Runs `program args...` in namespace `ns` and returns its stdout; kills it and fails if `interrupted` is set
/// meanwhile (so Ctrl-C does not wait for a load run to end).
pub fn run_in(ns: &str, program: &str, args: &[&str], interrupted: &AtomicBool) -> anyhow::Result<String> {
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    let mut child = Lab::command_in(ns, program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if interrupted.load(Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    if !status.success() {
        bail!("{program} failed ({status}): {}", err.join().unwrap_or_default().trim());
    }
    Ok(out)
}

/// A `wrk` summary.
#[derive(Debug, Default, PartialEq)]
pub struct WrkReport {
    /// The `Requests/sec:` figure, as printed.
    pub requests_per_sec: String,
    /// The average latency, as printed.
    pub latency_avg: String,
    /// The latency distribution: (percentile, latency), as printed.
    pub percentiles: Vec<(String, String)>,
    /// Socket errors and non-2xx lines, joined.
    pub errors: String,
}

/// Reads `wrk --latency` output.
pub fn parse_wrk(out: &str) -> WrkReport {
    let mut r = WrkReport::default();
    let mut in_dist = false;
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().to_string();
        } else if t.starts_with("Latency Distribution") {
            in_dist = true;
        } else if let Some(rest) = t.strip_prefix("Latency") {
            if let Some(avg) = rest.split_whitespace().next() {
                r.latency_avg = avg.to_string();
            }
        } else if in_dist {
            let mut it = t.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(p), Some(v), None) if p.ends_with('%') => r.percentiles.push((p.to_string(), v.to_string())),
                _ => in_dist = false,
            }
        } else if t.starts_with("Socket errors") || t.starts_with("Non-2xx") {
            if !r.errors.is_empty() {
                r.errors.push_str("; ");
            }
            r.errors.push_str(t);
        }
    }
    r
}

/// Runs `program args...` in namespace `ns` and returns its stdout; fails with its stderr.
pub fn capture_in(ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut c = Lab::command_in(ns, program);
    c.args(args);
    super::capture(&mut c)
}

/// `xdptcp serve` running inside the lab's server namespace. Dropping it stops it (SIGTERM, then SIGKILL).
pub struct ServerProcess {
    child: Option<Child>,
    /// Its ready line.
    pub banner: String,
    stdout: Option<std::thread::JoinHandle<String>>,
    /// The last 200 lines it wrote on stderr.
    pub stderr_tail: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `xdptcp serve` on the lab's server interface with `extra` arguments (app, ports, ...) and waits for
    /// its ready line.
    pub fn start(lab: &Lab, exe: &Path, extra: &[&str]) -> anyhow::Result<ServerProcess> {
        let addr = format!("{SERVER_ADDR}/{PREFIX_LEN}");
        let gw = ROUTER_SERVER_SIDE.to_string();
        let exe = exe.to_str().context("xdptcp path is not UTF-8")?;
        let mut child = Lab::command_in(&lab.server_ns(), exe)
            .args(["serve", "--iface", SERVER_IF, "--addr", &addr, "--gateway", &gw])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting xdptcp serve")?;
        let stdout = child.stdout.take().expect("piped");
        let stdout = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
        let stderr = child.stderr.take().expect("piped");
        let tail = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let tail2 = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.ends_with("ready") {
                    let _ = ready_tx.send(line.clone());
                }
                let mut t = tail2.lock().unwrap_or_else(|e| e.into_inner());
                t.push(line);
                if t.len() > 200 {
                    t.remove(0);
                }
            }
        });
        let mut p =
            ServerProcess { child: Some(child), banner: String::new(), stdout: Some(stdout), stderr_tail: tail };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(50)) {
                p.banner = line;
                return Ok(p);
            }
            let exited = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                std::thread::sleep(Duration::from_millis(50));
                let tail = p.stderr_tail.lock().map(|t| t.join("\n")).unwrap_or_default();
                bail!("xdptcp serve did not become ready ({exited:?}): {tail}");
            }
        }
    }

    /// The server's pid (to signal it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // Best effort: the child may have exited already.
            let _ = crate::sys::kill(pid, sig);
        }
    }

    /// Waits (bounded) for the server to exit by itself; then kills it.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let st = child.wait().ok();
        self.child = None;
        st
    }

    /// Orderly stop (SIGTERM), then the counters it printed.
    pub fn stop(&mut self) -> anyhow::Result<Counters> {
        let out = self.stop_output()?;
        Ok(parse_counters(&out))
    }

    /// Orderly stop (SIGTERM); returns everything it printed on stdout.
    pub fn stop_output(&mut self) -> anyhow::Result<String> {
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(Duration::from_secs(15));
        let out = self.stdout.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        match st {
            Some(s) if s.success() => Ok(out),
            other => {
                let tail = self.stderr_tail.lock().map(|t| t.join("\n")).unwrap_or_default();
                bail!("xdptcp serve ended with {other:?}: {tail}")
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
            self.wait_exit(Duration::from_secs(5));
        }
    }
}

/// Reads `Group:Name value` lines (Counters::to_text) back.
pub fn parse_counters(text: &str) -> Counters {
    let mut c = Counters::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if let (Some(name), Some(v), None) = (it.next(), it.next(), it.next()) {
            if let (Some(counter), Ok(v)) = (Counter::from_name(name), v.parse::<u64>()) {
                c.set(counter, v);
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_parses() {
        let out = "Running 3s test @ http://198.18.0.1/\n  1 threads and 16 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   410.22us  120.01us   3.10ms   90.00%\n    Req/Sec    38.12k     1.20k   40.00k    70.00%\n  Latency Distribution\n     50%  390.00us\n     75%  450.00us\n     90%  520.00us\n     99%  900.00us\n  114000 requests in 3.00s, 15.00MB read\nRequests/sec:  38000.12\nTransfer/sec:      5.00MB\n";
        let r = parse_wrk(out);
        assert_eq!(r.requests_per_sec, "38000.12");
        assert_eq!(r.latency_avg, "410.22us");
        assert_eq!(r.percentiles.len(), 4);
        assert_eq!(r.percentiles[3], ("99%".to_string(), "900.00us".to_string()));
        assert!(r.errors.is_empty());
    }

    #[test]
    fn counters_round_trip_through_text() {
        let mut c = Counters::default();
        c.add(Counter::InSegs, 5);
        c.add(Counter::TxFrames, 7);
        let back = parse_counters(&format!("{}XdpSteer: seen 1 arp 2\n", c.to_text()));
        assert_eq!(back.get(Counter::InSegs), 5);
        assert_eq!(back.get(Counter::TxFrames), 7);
    }
}
