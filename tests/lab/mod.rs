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
