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
pub fn echo_client(lab: &xdptcp::cli::lab::Lab, args: &[&str]) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/echo_client.py");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.client_ns(), "python3", script, "--host"])
        .arg(xdptcp::cli::lab::SERVER_ADDR.to_string())
        .args(args)
        .output()
        .expect("running the echo client");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    (out.status.success(), format!("{stdout} {stderr}"))
}

/// Starts `xdptcp serve` in the lab with `extra` arguments; the returned guard stops it.
pub fn serve(lab: &xdptcp::cli::lab::Lab, extra: &[&str]) -> xdptcp::cli::demo::ServerProcess {
    xdptcp::cli::demo::ServerProcess::start(lab, xdptcp_bin(), extra).expect("xdptcp serve")
}
