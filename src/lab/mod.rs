//! The veth lab (`xdptcp lab`, `xdptcp demo` and the `tests/lab_*` tests): three network namespaces to run xdptcp
//! against real kernel TCP peers, and the impairing router between them ([`netem`]).
//!
//! ```text
//!  N-srv                      N-rtr                              N-cli
//!  xs0 ---------------------- rs0            rc0 --------------- xc0
//!  198.18.0.1 (xdptcp)        198.18.0.254   198.18.1.254        198.18.1.2
//!  198.18.0.2 (kernel)        (impairments, both directions)     default via .254
//! ```
//!
//! The xdptcp server runs inside `N-srv` on `xs0` with 198.18.0.1, an address the kernel there does not have; the
//! kernel keeps 198.18.0.2 on the same interface, so a kernel listener on it proves the XDP program passes
//! unrelated traffic. `N-rtr` routes between the two subnets. Without impairment the kernel forwards; with one, a
//! user-space impairing router ([`netem`], since this kernel has no `sch_netem`) forwards instead and applies loss,
//! delay, reordering and duplication in both directions. Offloads are off on every kernel-side end so the kernel never hands
//! the stack partial checksums or GSO super-frames. Addresses are from 198.18.0.0/15 (RFC 2544 benchmarking).
//!
//! Everything is done with `ip`, `tc` and `ethtool` through `std::process::Command`.
//!
//! Owns: the namespaces, links, addresses and the impairing router. Must not touch: the stack (it runs xdptcp as a
//! separate process, as an operator would) and the command line (`cli::lab` parses the arguments).

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub mod netem;
pub mod process;
pub use netem::Impairment;
pub use process::{capture_in, parse_counters, ServerProcess};

/// Where the impairing router's pid, readiness mark and log live.
const RUN_DIR: &str = "/run/xdptcp-lab";

/// The xdptcp server's address (not configured in the kernel).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// A second, kernel-owned address on the server namespace's interface.
pub const SERVER_KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The router's address on the server subnet (the server's gateway).
pub const ROUTER_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The router's address on the client subnet.
pub const ROUTER_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);
/// The client's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// Prefix length of both subnets.
pub const PREFIX_LEN: u8 = 24;

/// Interface names inside the namespaces (short enough for IFNAMSIZ whatever the lab name).
pub const SERVER_IF: &str = "xs0";
/// The router's interface on the server subnet.
pub const ROUTER_SERVER_IF: &str = "rs0";
/// The router's interface on the client subnet.
pub const ROUTER_CLIENT_IF: &str = "rc0";
/// The client namespace's interface.
pub const CLIENT_IF: &str = "xc0";

/// Lab names become namespace-name prefixes: keep them to a safe alphabet and length.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 40 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("lab name {name:?}: use 1-40 characters of [A-Za-z0-9_-]");
    }
    Ok(())
}

/// A lab, by name. It is not removed on drop: see [`LabGuard`] for that.
#[derive(Debug, Clone)]
pub struct Lab {
    name: String,
    exe: PathBuf,
}

impl Lab {
    /// Refers to a lab that may or may not exist (for `down` and `status`).
    pub fn existing(name: &str) -> Lab {
        Lab { name: name.to_string(), exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("xdptcp")) }
    }

    /// A file of the impairing router (pid, readiness mark, log).
    pub fn router_file(&self, what: &str) -> PathBuf {
        Path::new(RUN_DIR).join(format!("{}.netem.{what}", self.name))
    }

    /// Creates the lab. If any step fails, whatever was created is removed again. `exe` is the `xdptcp` binary
    /// (it runs the impairing router when `impair` is given).
    pub fn up(name: &str, impair: Option<&str>, exe: &Path) -> anyhow::Result<Lab> {
        Self::up_with(name, impair, exe, 1)
    }

    /// As [`up`](Self::up), with `queues` rx/tx queues on both ends of the server-side veth pair.
    pub fn up_with(name: &str, impair: Option<&str>, exe: &Path, queues: u32) -> anyhow::Result<Lab> {
        validate_name(name)?;
        if !(1..=64).contains(&queues) {
            bail!("queues must be 1..=64");
        }
        if let Some(spec) = impair {
            Impairment::parse(spec)?;
        }
        let lab = Lab { name: name.to_string(), exe: exe.to_path_buf() };
        if lab.exists()? {
            bail!("lab {name} already exists (xdptcp lab down --name {name})");
        }
        if let Err(e) = lab.build(impair, queues) {
            let _ = lab.down();
            return Err(e);
        }
        Ok(lab)
    }

    /// The lab's name (the prefix of its namespaces).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The server namespace, `NAME-srv`.
    pub fn server_ns(&self) -> String {
        format!("{}-srv", self.name)
    }
    /// The router namespace, `NAME-rtr`.
    pub fn router_ns(&self) -> String {
        format!("{}-rtr", self.name)
    }
    /// The client namespace, `NAME-cli`.
    pub fn client_ns(&self) -> String {
        format!("{}-cli", self.name)
    }
    fn namespaces(&self) -> [String; 3] {
        [self.server_ns(), self.router_ns(), self.client_ns()]
    }

    /// A command run inside namespace `ns` (`ip netns exec ns program ...`).
    pub fn command_in(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    fn build(&self, impair: Option<&str>, queues: u32) -> anyhow::Result<()> {
        let (srv, rtr, cli) = (self.server_ns(), self.router_ns(), self.client_ns());
        for ns in [&srv, &rtr, &cli] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // Links are created inside the namespaces so no name ever exists in the root namespace.
        let q = queues.to_string();
        // veth native XDP needs at least as many rx queues as the peer has tx queues: same count on both ends.
        let mq = ["numtxqueues", q.as_str(), "numrxqueues", q.as_str()];
        ip(&[
            &["-n", &srv, "link", "add", SERVER_IF][..],
            &mq,
            &["type", "veth", "peer", "name", ROUTER_SERVER_IF],
            &mq,
            &["netns", &rtr],
        ]
        .concat())?;
        ip(&["-n", &cli, "link", "add", CLIENT_IF, "type", "veth", "peer", "name", ROUTER_CLIENT_IF, "netns", &rtr])?;

        let srv_kernel = format!("{SERVER_KERNEL_ADDR}/{PREFIX_LEN}");
        let rtr_s = format!("{ROUTER_SERVER_SIDE}/{PREFIX_LEN}");
        let rtr_c = format!("{ROUTER_CLIENT_SIDE}/{PREFIX_LEN}");
        let cli_a = format!("{CLIENT_ADDR}/{PREFIX_LEN}");
        ip(&["-n", &srv, "addr", "add", &srv_kernel, "dev", SERVER_IF])?;
        ip(&["-n", &rtr, "addr", "add", &rtr_s, "dev", ROUTER_SERVER_IF])?;
        ip(&["-n", &rtr, "addr", "add", &rtr_c, "dev", ROUTER_CLIENT_IF])?;
        ip(&["-n", &cli, "addr", "add", &cli_a, "dev", CLIENT_IF])?;
        for (ns, dev) in [(&srv, SERVER_IF), (&rtr, ROUTER_SERVER_IF), (&rtr, ROUTER_CLIENT_IF), (&cli, CLIENT_IF)] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            // Kernel-side ends must hand xdptcp whole, fully checksummed frames.
            run_cmd(
                Self::command_in(ns, "ethtool")
                    .args(["-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"]),
            )
            .with_context(|| format!("turning offloads off on {dev} in {ns}"))?;
        }
        let gw_s = ROUTER_SERVER_SIDE.to_string();
        let gw_c = ROUTER_CLIENT_SIDE.to_string();
        ip(&["-n", &srv, "route", "add", "default", "via", &gw_s])?;
        ip(&["-n", &cli, "route", "add", "default", "via", &gw_c])?;
        self.set_impairment(impair.unwrap_or(""))
    }

    /// Replaces the router's impairment in both directions ("" removes it: the kernel forwards again).
    pub fn set_impairment(&self, spec: &str) -> anyhow::Result<()> {
        Impairment::parse(spec)?;
        let rtr = self.router_ns();
        self.stop_router();
        if spec.trim().is_empty() {
            return run_cmd(Self::command_in(&rtr, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
        }
        // The impairing router forwards instead of the kernel, which must then drop (not forward) transit frames.
        run_cmd(Self::command_in(&rtr, "sysctl").args(["-qw", "net.ipv4.ip_forward=0"]))?;
        std::fs::create_dir_all(RUN_DIR).with_context(|| format!("creating {RUN_DIR}"))?;
        let ready = self.router_file("ready");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::File::create(self.router_file("log"))?;
        let exe = self.exe.to_str().context("xdptcp path is not UTF-8")?;
        let child = Self::command_in(&rtr, exe)
            .args(["lab", "netem-router", "--name", &self.name, "--spec", spec])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: a Ctrl-C meant for `lab up` or a test runner does not reach it; `down` ends it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the impairing router ({exe})"))?;
        std::fs::write(self.router_file("pid"), child.id().to_string())?;
        // Reap it in the background whenever it ends, so a long-lived caller collects no zombies.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ready.exists() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.router_file("log")).unwrap_or_default();
                bail!("the impairing router did not start: {}", log.trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Ends the impairing router, if one runs for this lab (only the process whose pid we recorded, and only if it
    /// still is our router).
    fn stop_router(&self) {
        let pid_file = self.router_file("pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else { return };
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(self.router_file("ready"));
        let Ok(pid) = text.trim().parse::<i32>() else { return };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !(cmdline.contains("netem-router") && cmdline.contains(&format!(" {} ", self.name))) {
            return;
        }
        // A negative or zero pid (a process group) is refused by the wrapper.
        if let Ok(p) = u32::try_from(pid) {
            let _ = crate::sys::kill(p, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            // A zombie still has a /proc entry: the reaper thread (if it is ours) collects it shortly.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if state.split_whitespace().nth(2) == Some("Z") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the impairing router runs.
    pub fn router_running(&self) -> bool {
        self.router_file("pid").exists()
    }

    /// Whether any of the lab's namespaces exists.
    pub fn exists(&self) -> anyhow::Result<bool> {
        let list = netns_list()?;
        Ok(self.namespaces().iter().any(|ns| list.contains(ns)))
    }

    /// Removes the namespaces (their veths go with them). Missing pieces are fine; errors are reported after
    /// trying every namespace.
    pub fn down(&self) -> anyhow::Result<()> {
        self.stop_router();
        let _ = std::fs::remove_file(self.router_file("log"));
        let list = netns_list()?;
        let mut first_err = None;
        for ns in self.namespaces() {
            if !list.contains(&ns) {
                continue;
            }
            if let Err(e) = ip(&["netns", "del", &ns]) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Human-readable status: which namespaces exist, their addresses, XDP attachments, the impairing router.
    pub fn status(&self) -> anyhow::Result<String> {
        let list = netns_list()?;
        let mut s = String::new();
        for ns in self.namespaces() {
            if !list.contains(&ns) {
                s.push_str(&format!("{ns}: absent\n"));
                continue;
            }
            s.push_str(&format!("{ns}:\n"));
            if let Ok(out) = capture(Command::new("ip").args(["-n", &ns, "-br", "addr"])) {
                for l in out.lines() {
                    s.push_str(&format!("  {l}\n"));
                }
            }
            if let Ok(out) = capture(Command::new("ip").args(["-n", &ns, "link"])) {
                for l in out.lines().filter(|l| l.contains("prog/xdp")) {
                    s.push_str(&format!("  xdp: {}\n", l.trim()));
                }
            }
            if ns == self.router_ns() && self.router_running() {
                s.push_str("  impairing router: running\n");
            }
        }
        Ok(s)
    }

    /// The `ip link` text of the server interface (tests look for `xdp` in it).
    pub fn server_link(&self) -> anyhow::Result<String> {
        capture(Command::new("ip").args(["-n", &self.server_ns(), "link", "show", "dev", SERVER_IF]))
    }
}

/// Removes its lab when dropped, also during a panic unwind.
#[derive(Debug)]
pub struct LabGuard {
    /// The lab it removes.
    pub lab: Lab,
}

impl LabGuard {
    /// Brings up lab `name` with one queue (see [`Lab::up`]).
    pub fn up(name: &str, impair: Option<&str>, exe: &Path) -> anyhow::Result<LabGuard> {
        Ok(LabGuard { lab: Lab::up(name, impair, exe)? })
    }
    /// Brings up lab `name` with `queues` queues on the server-side veth pair (see [`Lab::up_with`]).
    pub fn up_with(name: &str, impair: Option<&str>, exe: &Path, queues: u32) -> anyhow::Result<LabGuard> {
        Ok(LabGuard { lab: Lab::up_with(name, impair, exe, queues)? })
    }
}

impl std::ops::Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = self.lab.down() {
            eprintln!("xdptcp: removing lab {}: {e:#}", self.lab.name());
        }
    }
}

fn netns_list() -> anyhow::Result<Vec<String>> {
    let out = capture(Command::new("ip").args(["netns", "list"]))?;
    // Lines look like "name (id: 3)" or just "name".
    Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run_cmd(Command::new("ip").args(args))
}

fn output_of(c: &mut Command) -> anyhow::Result<Output> {
    c.output().with_context(|| format!("running {c:?} (is iproute2/ethtool installed?)"))
}

/// Runs a command, failing with its stderr if it exits non-zero.
pub fn run_cmd(c: &mut Command) -> anyhow::Result<()> {
    capture(c).map(|_| ())
}

/// Runs a command and returns its stdout, failing with its stderr if it exits non-zero.
pub fn capture(c: &mut Command) -> anyhow::Result<String> {
    let out = output_of(c)?;
    if !out.status.success() {
        bail!("{c:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("xdplab").is_ok());
        assert!(validate_name("t-1_a").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("../x").is_err());
        assert!(validate_name(&"x".repeat(41)).is_err());
    }

    #[test]
    fn namespace_names() {
        let lab = Lab::existing("n1");
        assert_eq!(lab.server_ns(), "n1-srv");
        assert_eq!(lab.router_ns(), "n1-rtr");
        assert_eq!(lab.client_ns(), "n1-cli");
    }
}
