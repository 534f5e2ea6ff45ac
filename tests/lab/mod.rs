//! Shared helpers of the lab tests: privilege check, unique lab names, entering a namespace, the xdptcp binary.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A lab name unique to this process and call (namespaces are global; tests run in parallel).
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("xt{}-{}{}", std::process::id(), tag, N.fetch_add(1, Ordering::Relaxed))
}

/// Moves the calling thread into the network namespace `ns` (setns only affects this thread).
pub fn enter_netns(ns: &str) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: a valid namespace fd; CLONE_NEWNET switches only the network namespace of this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

pub fn xdptcp_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xdptcp"))
}

/// Serialises the heavy tests of one test binary: the machine has two cores shared with everything else.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a thread that entered network namespace `ns`, and returns its result.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns).expect("setns");
        f()
    })
    .join()
    .expect("thread in namespace panicked")
}

/// Runs the Python echo client in the lab's client namespace; returns (success, its JSON line).
pub fn echo_client(lab: &xdptcp::lab::Lab, args: &[&str]) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/echo_client.py");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.client_ns(), "python3", script, "--host"])
        .arg(xdptcp::lab::SERVER_ADDR.to_string())
        .args(args)
        .output()
        .expect("running the echo client");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    (out.status.success(), format!("{stdout} {stderr}"))
}

/// Starts `xdptcp serve` in the lab with `extra` arguments; the returned guard stops it.
pub fn serve<S: AsRef<str>>(lab: &xdptcp::lab::Lab, extra: &[S]) -> xdptcp::lab::ServerProcess {
    let extra: Vec<&str> = extra.iter().map(AsRef::as_ref).collect();
    xdptcp::lab::ServerProcess::start(lab, xdptcp_bin(), &extra).expect("xdptcp serve")
}

/// An `xdptcp` subcommand (e.g. `bench server`, `bench sink`) run in namespace `ns`: started and waited for until
/// its stderr says "ready", SIGTERMed and reaped (bounded) on `stop` or drop.
pub struct NsProcess(std::process::Child);

impl NsProcess {
    pub fn start(ns: &str, args: &[&str]) -> NsProcess {
        use std::process::Stdio;
        let mut child = xdptcp::lab::Lab::command_in(ns, xdptcp_bin().to_str().unwrap())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting xdptcp {args:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.ends_with("ready") {
                    let _ = tx.send(());
                }
            }
        });
        let ready = rx.recv_timeout(std::time::Duration::from_secs(10));
        let process = NsProcess(child);
        assert!(ready.is_ok(), "xdptcp {args:?} did not become ready");
        process
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.terminate();
        }
    }
}

/// Where the server's application logic runs: the two models `xdptcp serve` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Callbacks on the worker threads (the default).
    Callbacks,
    /// `--app-threads N`: on threads of its own behind the lock-free bridge.
    AppThreads(usize),
}

impl Model {
    /// `serve` arguments for this model: `base` plus the model's flag.
    pub fn args(self, base: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        if let Model::AppThreads(n) = self {
            v.extend(["--app-threads".to_string(), n.to_string()]);
        }
        v
    }
}
