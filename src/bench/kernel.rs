//! The generator on kernel sockets: non-blocking TCP sockets in an edge-triggered epoll set, one thread per core
//! (`--kernel`). Socket helpers here are shared with the kernel server ([`super::server`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::gen::{Generator, NetError, Transport};
use super::stats::{Progress, WorkerStats};
use super::{Clock, Workload};

/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// Longest wait in `epoll_wait` (bounds how late the stop flag and timeouts are noticed).
const MAX_WAIT_MS: i32 = 10;
/// Open loop: when the next intended send is closer than this, poll without sleeping.
const SPIN_NS: u64 = 2_000_000;

pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub(crate) fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

pub(crate) fn set_int_opt(fd: RawFd, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int of the size passed.
    let r = unsafe {
        libc::setsockopt(fd, level, name, &v as *const i32 as *const libc::c_void, std::mem::size_of::<i32>() as u32)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The pending error of a socket (SO_ERROR), which also clears it.
pub(crate) fn so_error(fd: RawFd) -> i32 {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: valid fd, out-pointers to an int and its length.
    let r = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut v as *mut i32 as *mut libc::c_void, &mut len)
    };
    if r == 0 {
        v
    } else {
        errno()
    }
}

pub(crate) fn epoll_add(epfd: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: valid epoll fd and socket fd, a valid event struct.
    if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn epoll_create() -> io::Result<RawFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

fn classify(errno: i32) -> NetError {
    match errno {
        libc::EAGAIN | libc::EINPROGRESS => NetError::WouldBlock,
        libc::ECONNREFUSED => NetError::Refused,
        libc::ECONNRESET => NetError::Reset,
        libc::ETIMEDOUT | libc::EHOSTUNREACH | libc::ENETUNREACH => NetError::TimedOut,
        libc::EADDRNOTAVAIL | libc::EADDRINUSE => NetError::NoPorts,
        libc::EPIPE | libc::ENOTCONN | libc::EBADF => NetError::Closed,
        _ => NetError::Other,
    }
}

/// A socket handle: the fd plus a generation, so an event for a closed fd is never taken for the new socket that
/// reused the number.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Sock {
    pub fd: RawFd,
    pub gen: u32,
}

impl Sock {
    fn token(self) -> u64 {
        ((self.gen as u64) << 32) | self.fd as u32 as u64
    }
    fn from_token(t: u64) -> Sock {
        Sock { fd: t as u32 as RawFd, gen: (t >> 32) as u32 }
    }
}

/// Kernel sockets behind the generator's transport API.
pub struct KernelTransport {
    epfd: RawFd,
    /// Current generation and handshake state, by fd.
    gens: Vec<u32>,
    connected: Vec<bool>,
    /// Source address for active opens (the kernel picks one when `None`).
    bind: Option<Ipv4Addr>,
}

impl KernelTransport {
    pub fn new(bind: Option<Ipv4Addr>) -> io::Result<KernelTransport> {
        Ok(KernelTransport { epfd: epoll_create()?, gens: Vec::new(), connected: Vec::new(), bind })
    }

    fn is_current(&self, s: Sock) -> bool {
        self.gens.get(s.fd as usize) == Some(&s.gen)
    }

    fn release(&mut self, fd: RawFd) {
        if let Some(g) = self.gens.get_mut(fd as usize) {
            *g = g.wrapping_add(1);
        }
        // SAFETY: closing a socket we own; close also removes it from the epoll set.
        unsafe { libc::close(fd) };
    }

    fn open(&mut self, target: SocketAddrV4) -> Result<RawFd, NetError> {
        // SAFETY: plain syscall.
        let fd =
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(NetError::Other);
        }
        let fail = |e: NetError| -> Result<RawFd, NetError> {
            // SAFETY: our own fresh socket, not yet known to anyone else.
            unsafe { libc::close(fd) };
            Err(e)
        };
        let _ = set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        if let Some(ip) = self.bind {
            // Let connect() pick the port with the full four-tuple (more connections than 64k per source address).
            let _ = set_int_opt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
            let a = sockaddr(SocketAddrV4::new(ip, 0));
            // SAFETY: valid fd and sockaddr.
            let r = unsafe {
                libc::bind(fd, &a as *const _ as *const libc::sockaddr, std::mem::size_of_val(&a) as libc::socklen_t)
            };
            if r != 0 {
                let e = errno();
                return fail(classify(e));
            }
        }
        let a = sockaddr(target);
        // SAFETY: valid fd and sockaddr.
        let r = unsafe {
            libc::connect(fd, &a as *const _ as *const libc::sockaddr, std::mem::size_of_val(&a) as libc::socklen_t)
        };
        if r != 0 {
            let e = errno();
            if e != libc::EINPROGRESS {
                return fail(classify(e));
            }
        }
        Ok(fd)
    }
}

impl Drop for KernelTransport {
    fn drop(&mut self) {
        // SAFETY: our epoll fd.
        unsafe { libc::close(self.epfd) };
    }
}

impl Transport for KernelTransport {
    type Handle = Sock;

    fn connect(&mut self, target: SocketAddrV4) -> Result<Sock, NetError> {
        let fd = self.open(target)?;
        let i = fd as usize;
        if self.gens.len() <= i {
            self.gens.resize(i + 1, 0);
            self.connected.resize(i + 1, false);
        }
        self.connected[i] = false;
        let s = Sock { fd, gen: self.gens[i] };
        let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        if epoll_add(self.epfd, fd, events, s.token()).is_err() {
            self.release(fd);
            return Err(NetError::Other);
        }
        Ok(s)
    }

    fn send(&mut self, h: Sock, data: &[u8]) -> Result<usize, NetError> {
        // SAFETY: valid fd and buffer; MSG_NOSIGNAL: a reset peer is an error value, not SIGPIPE.
        let n = unsafe { libc::send(h.fd, data.as_ptr() as *const libc::c_void, data.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            Ok(n as usize)
        } else {
            Err(classify(errno()))
        }
    }

    fn recv(&mut self, h: Sock, buf: &mut [u8]) -> Result<usize, NetError> {
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::recv(h.fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n >= 0 {
            Ok(n as usize)
        } else {
            Err(classify(errno()))
        }
    }

    fn close(&mut self, h: Sock) {
        if self.is_current(h) {
            self.release(h.fd);
        }
    }

    fn abort(&mut self, h: Sock) {
        if self.is_current(h) {
            let l = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: valid fd and struct; SO_LINGER 0 makes close send RST.
            unsafe {
                libc::setsockopt(
                    h.fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &l as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as u32,
                )
            };
            self.release(h.fd);
        }
    }
}

/// Runs one generator on kernel sockets until `stop` is set or its request limit is reached; starts once `go` is
/// set. Returns its results.
pub fn run_worker(
    w: Workload,
    bind: Option<Ipv4Addr>,
    clock: Clock,
    progress: Arc<Progress>,
    stop: &AtomicBool,
    go: &AtomicBool,
) -> io::Result<WorkerStats> {
    let mut t = KernelTransport::new(bind)?;
    let mut gen: Generator<Sock> = Generator::new(w, progress);
    while !go.load(Ordering::Relaxed) {
        if stop.load(Ordering::Relaxed) {
            return Ok(gen.take_stats());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    gen.start(clock.now_ns(), &mut t);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        let now = clock.now_ns();
        if stop.load(Ordering::Relaxed) || gen.is_complete() {
            gen.finish(now, &mut t);
            break;
        }
        let timeout = match gen.next_deadline() {
            Some(at) if at <= now + SPIN_NS => 0,
            Some(at) => (((at - now - SPIN_NS) / 1_000_000) as i32).clamp(0, MAX_WAIT_MS),
            None => MAX_WAIT_MS,
        };
        // SAFETY: valid epoll fd and event buffer of the given length.
        let n = unsafe { libc::epoll_wait(t.epfd, events.as_mut_ptr(), EVENTS as i32, timeout) };
        let now = clock.now_ns();
        for ev in events.iter().take(n.max(0) as usize) {
            let s = Sock::from_token(ev.u64);
            let flags = ev.events;
            if !t.is_current(s) {
                continue;
            }
            let i = s.fd as usize;
            if !t.connected[i] {
                if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                    continue;
                }
                match so_error(s.fd) {
                    0 if flags & libc::EPOLLHUP as u32 == 0 => {
                        t.connected[i] = true;
                        gen.on_connected(now, &mut t, s);
                    }
                    0 => gen.on_closed(now, &mut t, s, Some(NetError::Other)),
                    e => gen.on_closed(now, &mut t, s, Some(classify(e))),
                }
                if !t.is_current(s) {
                    continue;
                }
            }
            let readable = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
            if flags & readable != 0 {
                gen.on_readable(now, &mut t, s);
            }
            if flags & libc::EPOLLOUT as u32 != 0 && t.is_current(s) {
                gen.on_writable(now, &mut t, s);
            }
        }
        gen.tick(now, &mut t);
    }
    Ok(gen.take_stats())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::server::{self, ServerApp};
    use crate::bench::Mode;
    use std::net::{TcpListener, TcpStream};

    /// A kernel server of ours on loopback, on an ephemeral port; stopped when the guard drops.
    struct Loopback {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
        addr: SocketAddrV4,
    }

    impl Loopback {
        fn start(app: ServerApp) -> Loopback {
            // Find a free port, then let the server bind it (SO_REUSEADDR makes the quick re-bind safe).
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
            let stop = Arc::new(AtomicBool::new(false));
            let s2 = stop.clone();
            let listener = server::listen_socket(addr, 128).unwrap();
            let thread = std::thread::spawn(move || {
                server::run_thread(listener, app, &s2).unwrap();
            });
            Loopback { stop, thread: Some(thread), addr }
        }
    }

    impl Drop for Loopback {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn run(w: Workload, for_ms: u64) -> WorkerStats {
        let stop = Arc::new(AtomicBool::new(false));
        let go = AtomicBool::new(true);
        let s2 = stop.clone();
        let timer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(for_ms));
            s2.store(true, Ordering::Relaxed);
        });
        let stats = run_worker(w, None, Clock::new(), Arc::new(Progress::default()), &stop, &go).unwrap();
        stop.store(true, Ordering::Relaxed);
        timer.join().unwrap();
        stats
    }

    #[test]
    fn rps_cps_stream_and_hold_on_loopback() {
        let echo = Loopback::start(ServerApp::Echo);
        let mut w = Workload::new(Mode::Rps, echo.addr);
        w.connections = 4;
        w.request_size = 1024;
        w.response_size = 1024;
        w.requests = Some(2000);
        let s = run(w, 10_000);
        assert_eq!(s.requests, 2000, "{:?}", s.errors);
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);

        let mut w = Workload::new(Mode::Cps, echo.addr);
        w.connections = 2;
        w.requests = Some(200);
        let s = run(w, 10_000);
        assert_eq!((s.requests, s.client_closed_first), (200, 200));
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);

        let mut w = Workload::new(Mode::Stream, echo.addr);
        w.connections = 2;
        w.request_size = 65536;
        let s = run(w, 300);
        assert!(s.bytes_sent > 1 << 20 && s.bytes_received > 1 << 20, "{s:?}");
        assert_eq!(s.stream.len(), 2);
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);

        let mut w = Workload::new(Mode::Hold, echo.addr);
        w.connections = 50;
        let s = run(w, 300);
        assert_eq!(s.connections_opened, 50);
    }

    #[test]
    fn http_and_open_loop_on_loopback() {
        let http = Loopback::start(ServerApp::Http);
        let mut w = Workload::new(Mode::Rps, http.addr);
        w.http = true;
        w.connections = 2;
        w.rate = Some(2000.0);
        let s = run(w, 500);
        // About 1000 requests in 0.5 s at 2000/s.
        assert!((800..=1100).contains(&s.requests), "{} requests", s.requests);
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);
        assert!(s.latency.value_at_quantile(0.5) < 5_000_000, "loopback median under 5 ms");
    }

    #[test]
    fn refused_and_reset_are_counted() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut w = Workload::new(Mode::Rps, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        w.connections = 2;
        let s = run(w, 100);
        assert_eq!(s.requests, 0);
        assert!(s.errors.connect_refused >= 2, "{:?}", s.errors);

        // A server that resets every connection after reading the first request.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let resetter = std::thread::spawn(move || {
            use std::io::Read;
            use std::os::fd::AsRawFd;
            for _ in 0..2 {
                let (mut s, _): (TcpStream, _) = l.accept().unwrap();
                let mut b = [0u8; 64];
                let _ = s.read_exact(&mut b);
                let lin = libc::linger { l_onoff: 1, l_linger: 0 };
                // SAFETY: valid socket fd; SO_LINGER 0 makes the drop send RST.
                unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        &lin as *const _ as *const libc::c_void,
                        std::mem::size_of::<libc::linger>() as u32,
                    )
                };
            }
        });
        let mut w = Workload::new(Mode::Rps, addr);
        w.connections = 2;
        w.requests = Some(2);
        let s = run(w, 300);
        resetter.join().unwrap();
        assert_eq!(s.requests, 0);
        assert!(s.errors.resets >= 1 || s.errors.short_reads >= 1, "{:?}", s.errors);
    }
}
