//! Safe wrappers for the system calls xdptcp makes outside the AF_XDP layer (`xdp` keeps its own). Each function
//! here is safe to call with any argument: memory is passed as Rust slices or owned structs, file descriptors as
//! `AsFd` (or as raw numbers only where the kernel validates them and touches no memory of ours: `poll`, `kill`).
//! `rustix`'s safe API is used where it covers the call; `libc` only where it does not, behind a `// SAFETY:`.
//!
//! Owns the `unsafe` of the calls, nothing else: no policy (what to do on an error is the caller's), no state.
//! The lock-free doorbell (an eventfd) is [`Doorbell`], from `xdptcp_sync`.

pub mod ethtool;
pub mod packet;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

pub use xdptcp_sync::bell::{Doorbell, Parker};

fn timeout_ms(t: Duration) -> i32 {
    t.as_millis().min(i32::MAX as u128) as i32
}

/// Waits up to `timeout_ms` (negative: forever) until one of `fds` is readable; returns how many are. Negative fds
/// are skipped, as poll(2) does (test rings have none). An interrupted wait reports 0.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<usize> {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `p` is a live array of `p.len()` pollfds; poll(2) validates the descriptor numbers itself (an unknown
    // one is reported as POLLNVAL, a negative one is ignored) and writes only `revents`.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
    }
    Ok(p.iter().filter(|p| p.revents & libc::POLLIN != 0).count())
}

/// poll(2) on `fds` for up to `timeout_ms` (negative: forever); returns how many have events, each in its
/// `revents`. An interrupted wait is an `Interrupted` error.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` pollfds; poll(2) validates the descriptor
    // numbers itself (POLLNVAL for an unknown one) and writes only `revents`.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Waits until `fd` is readable (or hung up) or `timeout` passes; true if it is. An interrupted wait reports false.
pub fn wait_readable(fd: impl AsFd, timeout: Duration) -> io::Result<bool> {
    let mut p = [PollFd::new(&fd, PollFlags::IN)];
    let ts = rustix::event::Timespec::try_from(timeout).unwrap_or(rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 });
    match rustix::event::poll(&mut p, Some(&ts)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `fd` has input or its peer hung up, right now (a zero-timeout poll for POLLIN | POLLRDHUP).
pub fn readable_or_hung_up(fd: impl AsFd) -> bool {
    let mut p = [PollFd::new(&fd, PollFlags::IN | PollFlags::RDHUP)];
    let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
    rustix::event::poll(&mut p, Some(&zero)).map(|n| n > 0).unwrap_or(true)
}

/// The credentials of a Unix socket's peer (SO_PEERCRED).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// SO_PEERCRED of a connected Unix socket.
pub fn peer_cred(socket: impl AsFd) -> io::Result<PeerCred> {
    let c = rustix::net::sockopt::socket_peercred(&socket)?;
    Ok(PeerCred { pid: c.pid.as_raw_nonzero().get(), uid: c.uid.as_raw(), gid: c.gid.as_raw() })
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    effective_uid() == 0
}

/// Sends signal `sig` (`libc::SIGTERM`, ...) to process `pid`.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pid <= 0 {
        // 0 and negative pids address process groups: never what a caller of this function means.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill(2) passes no memory; the pid and signal are validated by the kernel.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread into the network namespace `ns` (an open `/var/run/netns/NAME` or `/proc/PID/ns/net`).
pub fn enter_net_namespace(ns: impl AsFd) -> io::Result<()> {
    // SAFETY: setns(2) passes no memory; the descriptor is a live one borrowed for the call.
    if unsafe { libc::setns(ns.as_fd().as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, the unit of `/proc/*/stat` times); 100 if unknown.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// The page size.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// Raises the soft limit of open files to the hard limit; returns the limit now in force (0 if unknown).
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The index of interface `name` in this network namespace, if there is one.
pub fn if_index(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: `cname` is a live NUL-terminated string; if_nametoindex only reads it.
    let i = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    (i != 0).then_some(i)
}

/// Sets an `int` socket option (`setsockopt(fd, level, name, &v, 4)`).
pub fn set_int_opt(fd: impl AsFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` is a live int of the size passed; setsockopt only reads it.
    let rc = unsafe { libc::setsockopt(fd.as_fd().as_raw_fd(), level, name, (&v as *const libc::c_int).cast(), size) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SO_LINGER with a zero timeout: closing the socket then sends RST instead of FIN.
pub fn set_linger_zero(fd: impl AsFd) -> io::Result<()> {
    rustix::net::sockopt::set_socket_linger(&fd, Some(Duration::ZERO))?;
    Ok(())
}

/// SO_ERROR: the socket's pending error (0 when none), e.g. the outcome of a non-blocking connect.
pub fn socket_error(fd: impl AsFd) -> io::Result<i32> {
    Ok(match rustix::net::sockopt::socket_error(&fd)? {
        Ok(()) => 0,
        Err(e) => e.raw_os_error(),
    })
}

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll(std::os::fd::OwnedFd);

/// One readiness report of [`Epoll::wait`]: the token given to [`Epoll::add`] and the `EPOLL*` event bits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EpollEvent {
    pub token: u64,
    pub events: u32,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 passes no memory.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Epoll(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }))
    }

    /// Watches `fd` for `events` (`libc::EPOLLIN | ...`), reported with `token`.
    pub fn add(&self, fd: impl AsFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_fd(), events, token)
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&self, fd: impl AsFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd.as_fd(), events, token)
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live epoll_event; both descriptors are live (owned / borrowed for the call).
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (negative: forever) and replaces `out`'s contents with up to `max` events.
    /// An interrupted wait reports none.
    pub fn wait(&self, out: &mut Vec<EpollEvent>, max: usize, timeout_ms: i32) -> io::Result<()> {
        out.clear();
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; max.clamp(1, 4096)];
        // SAFETY: `evs` is a live array of `evs.len()` events the kernel may fill.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), evs.as_mut_ptr(), evs.len() as libc::c_int, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        out.extend(evs[..n as usize].iter().map(|e| EpollEvent { token: e.u64, events: e.events }));
        Ok(())
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// `timeout` as poll(2)'s milliseconds, saturating.
pub fn poll_timeout(timeout: Duration) -> i32 {
    timeout_ms(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn poll_and_wait_see_a_readable_socket() {
        let (mut a, b) = UnixStream::pair().unwrap();
        assert_eq!(poll_readable(&[b.as_raw_fd(), -1], 0).unwrap(), 0);
        assert!(!wait_readable(&b, Duration::from_millis(1)).unwrap());
        assert!(!readable_or_hung_up(&b));
        a.write_all(b"x").unwrap();
        assert_eq!(poll_readable(&[-1, b.as_raw_fd()], 1000).unwrap(), 1, "negative fds are skipped");
        assert!(wait_readable(&b, Duration::from_secs(1)).unwrap());
        assert!(readable_or_hung_up(&b));
        let (c, d) = UnixStream::pair().unwrap();
        drop(c);
        assert!(readable_or_hung_up(&d), "a hang-up counts");
    }

    #[test]
    fn peer_credentials_are_ours() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = peer_cred(&a).unwrap();
        assert_eq!(c.uid, effective_uid());
        assert_eq!(c.pid as u32, std::process::id());
        assert_eq!(is_root(), effective_uid() == 0);
    }

    #[test]
    fn kill_refuses_process_groups_and_reaches_a_child() {
        assert!(kill(0, libc::SIGTERM).is_err(), "pid 0 is our process group");
        assert!(kill(u32::MAX, libc::SIGTERM).is_err());
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        kill(child.id(), libc::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    #[test]
    fn system_facts_are_plausible() {
        assert!(clock_ticks_per_second() >= 1);
        assert!(page_size() >= 4096 && page_size().is_power_of_two());
        assert!(raise_nofile_limit() >= 64);
        assert_eq!(if_index("lo"), Some(1));
        assert_eq!(if_index("no-such-if0"), None);
        assert_eq!(if_index("bad\0name"), None);
    }

    #[test]
    fn socket_options_round_trip() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        set_int_opt(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
        assert!(set_int_opt(&s, libc::SOL_SOCKET, -1, 1).is_err());
        assert_eq!(socket_error(&s).unwrap(), 0);
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_linger_zero(&t).unwrap();
    }

    #[test]
    fn epoll_reports_the_token() {
        let ep = Epoll::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        ep.add(&b, libc::EPOLLIN as u32, 42).unwrap();
        let mut out = Vec::new();
        ep.wait(&mut out, 8, 0).unwrap();
        assert!(out.is_empty());
        a.write_all(b"x").unwrap();
        ep.wait(&mut out, 8, 1000).unwrap();
        assert_eq!(out, vec![EpollEvent { token: 42, events: libc::EPOLLIN as u32 }]);
        ep.modify(&b, libc::EPOLLOUT as u32, 7).unwrap();
        ep.wait(&mut out, 8, 1000).unwrap();
        assert_eq!(out[0].token, 7);
        assert!(ep.add(&b, libc::EPOLLIN as u32, 1).is_err(), "already added");
    }
}
