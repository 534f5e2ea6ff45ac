//! The kernel-socket server of the comparison (`xdptcp bench server`): the same applications as `xdptcp serve`
//! (echo, http, discard), written the way a fast Linux server is: one thread per core, each with its own
//! `SO_REUSEPORT` listener and edge-triggered epoll set, non-blocking sockets, `TCP_NODELAY`. The HTTP app uses the
//! very parser and response writer of xdptcp's own http app, so both servers put the same bytes on the wire.
//!
//! Back-pressure is the same as xdptcp's apps: a connection is read only while it has no unsent output, so a slow
//! reader closes our receive window instead of growing our memory.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::kernel::{epoll_add, epoll_create, errno, set_int_opt, sockaddr};
use crate::app::http::{parse_request, write_response, Parse};

/// Which application the kernel server runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerApp {
    Echo,
    Http,
    Discard,
}

impl ServerApp {
    pub fn name(self) -> &'static str {
        match self {
            ServerApp::Echo => "echo",
            ServerApp::Http => "http",
            ServerApp::Discard => "discard",
        }
    }
}

/// Scratch buffer per read.
const READ_CHUNK: usize = 64 * 1024;
/// Stop parsing pipelined HTTP requests while this much output is unsent.
const MAX_PENDING_OUT: usize = 64 * 1024;
const EVENTS: usize = 1024;
/// The listener's epoll token (connections use their fd, which is never this).
const LISTENER: u64 = u64::MAX;

/// What a server thread did.
#[derive(Debug, Default)]
pub struct ServerCounters {
    pub accepted: AtomicU64,
    pub requests: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

#[derive(Default)]
struct Conn {
    input: Vec<u8>,
    /// HTTP request body bytes still to arrive, read and dropped.
    skip: usize,
    out: Vec<u8>,
    sent: usize,
    /// Close once `out` is sent (HTTP Connection: close, an error response, or the peer's FIN).
    close_after: bool,
}

/// A bound, listening, non-blocking socket with SO_REUSEADDR and SO_REUSEPORT (one per thread).
pub fn listen_socket(addr: SocketAddrV4, backlog: i32) -> io::Result<RawFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let setup = || -> io::Result<()> {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        let a = sockaddr(addr);
        // SAFETY: valid fd and sockaddr.
        if unsafe { libc::bind(fd, &a as *const _ as *const libc::sockaddr, std::mem::size_of_val(&a) as u32) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: valid fd.
        if unsafe { libc::listen(fd, backlog) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    if let Err(e) = setup() {
        // SAFETY: our own socket.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

struct Thread {
    app: ServerApp,
    epfd: RawFd,
    conns: Vec<Option<Box<Conn>>>,
    buf: Vec<u8>,
    counters: Arc<ServerCounters>,
}

impl Thread {
    fn close(&mut self, fd: RawFd) {
        if let Some(slot) = self.conns.get_mut(fd as usize) {
            *slot = None;
        }
        // SAFETY: a connection socket we own; close removes it from the epoll set.
        unsafe { libc::close(fd) };
    }

    fn accept_all(&mut self, listener: RawFd) {
        // Bounded by the listener's accept queue.
        loop {
            // SAFETY: valid listening fd; no peer address wanted.
            let fd = unsafe {
                libc::accept4(
                    listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return; // EAGAIN, or an error the next event retries (EMFILE is counted by the client as a timeout)
            }
            let _ = set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
            let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
            if epoll_add(self.epfd, fd, events, fd as u64).is_err() {
                // SAFETY: the socket we just accepted.
                unsafe { libc::close(fd) };
                continue;
            }
            let i = fd as usize;
            if self.conns.len() <= i {
                self.conns.resize_with(i + 1, || None);
            }
            self.conns[i] = Some(Box::default());
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends pending output. Returns false when the connection was closed.
    fn flush(&mut self, fd: RawFd) -> bool {
        let Some(c) = self.conns.get_mut(fd as usize).and_then(Option::as_mut) else { return false };
        while c.sent < c.out.len() {
            let rest = &c.out[c.sent..];
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::send(fd, rest.as_ptr() as *const libc::c_void, rest.len(), libc::MSG_NOSIGNAL) };
            if n < 0 {
                if errno() == libc::EAGAIN {
                    return true;
                }
                self.close(fd);
                return false;
            }
            c.sent += n as usize;
            self.counters.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        c.out.clear();
        c.sent = 0;
        if c.close_after {
            self.close(fd);
            return false;
        }
        true
    }

    /// Reads and answers until the socket is drained or output backs up.
    fn serve(&mut self, fd: RawFd) {
        if !self.flush(fd) {
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        // Ends when the socket has no more data (its buffer is bounded), output backs up, or it closes.
        while let Some(c) = self.conns.get_mut(fd as usize).and_then(Option::as_mut) {
            if !c.out.is_empty() || c.close_after {
                break; // resume on EPOLLOUT once the output is gone
            }
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n < 0 {
                if errno() != libc::EAGAIN {
                    self.close(fd);
                }
                break;
            }
            if n == 0 {
                // The peer's FIN: finish what is owed, then close (echo and http send nothing more).
                c.close_after = true;
                self.flush(fd);
                break;
            }
            let data = &buf[..n as usize];
            self.counters.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            match self.app {
                ServerApp::Discard => {}
                ServerApp::Echo => c.out.extend_from_slice(data),
                ServerApp::Http => {
                    // A request body is dropped as it arrives, never buffered whole.
                    let skipped = c.skip.min(data.len());
                    c.skip -= skipped;
                    c.input.extend_from_slice(&data[skipped..]);
                    let mut used = 0;
                    while c.out.len() < MAX_PENDING_OUT {
                        match parse_request(&c.input[used..]) {
                            Parse::Incomplete => break,
                            Parse::Request { consumed, body, keep_alive, head_only } => {
                                used += consumed;
                                let in_buffer = body.min(c.input.len() - used);
                                used += in_buffer;
                                c.skip = body - in_buffer;
                                write_response(&mut c.out, 200, keep_alive, head_only);
                                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                                if !keep_alive {
                                    c.close_after = true;
                                    break;
                                }
                            }
                            Parse::Bad(status) => {
                                write_response(&mut c.out, status, false, false);
                                c.close_after = true;
                                break;
                            }
                        }
                    }
                    c.input.drain(..used);
                }
            }
            if !self.flush(fd) {
                break;
            }
        }
        self.buf = buf;
    }
}

/// Serves `app` on an already listening socket until `stop` is set (one thread of the server).
pub fn run_thread(listener: RawFd, app: ServerApp, stop: &AtomicBool) -> io::Result<Arc<ServerCounters>> {
    run_thread_with(listener, app, stop, Arc::new(ServerCounters::default()))
}

pub fn run_thread_with(
    listener: RawFd,
    app: ServerApp,
    stop: &AtomicBool,
    counters: Arc<ServerCounters>,
) -> io::Result<Arc<ServerCounters>> {
    let epfd = epoll_create()?;
    epoll_add(epfd, listener, libc::EPOLLIN as u32, LISTENER)?;
    let mut th = Thread { app, epfd, conns: Vec::new(), buf: vec![0; READ_CHUNK], counters };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: valid epoll fd and event buffer.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), EVENTS as i32, 100) };
        for ev in events.iter().take(n.max(0) as usize) {
            let (token, flags) = (ev.u64, ev.events);
            if token == LISTENER {
                th.accept_all(listener);
                continue;
            }
            let fd = token as RawFd;
            if flags & (libc::EPOLLERR as u32) != 0 {
                th.close(fd);
                continue;
            }
            th.serve(fd);
        }
    }
    for fd in 0..th.conns.len() {
        if th.conns[fd].is_some() {
            th.close(fd as RawFd);
        }
    }
    // SAFETY: our own descriptors.
    unsafe {
        libc::close(epfd);
        libc::close(listener);
    }
    Ok(th.counters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpStream};
    use std::time::Duration;

    fn start(app: ServerApp) -> (SocketAddrV4, Arc<AtomicBool>, std::thread::JoinHandle<Arc<ServerCounters>>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let l = listen_socket(addr, 64).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        (addr, stop, std::thread::spawn(move || run_thread(l, app, &s2).unwrap()))
    }

    #[test]
    fn echo_returns_a_large_transfer_and_closes_after_the_client() {
        let (addr, stop, h) = start(ServerApp::Echo);
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = s.try_clone().unwrap();
        let d2 = data.clone();
        let writer = std::thread::spawn(move || {
            w.write_all(&d2).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert!(back == data, "echo differs ({} of {} bytes)", back.len(), data.len());
        stop.store(true, Ordering::Relaxed);
        let c = h.join().unwrap();
        assert_eq!(c.accepted.load(Ordering::Relaxed), 1);
        assert_eq!(c.bytes_out.load(Ordering::Relaxed), 3_000_000);
    }

    #[test]
    fn http_answers_pipelined_requests_like_the_xdptcp_app() {
        let (addr, stop, h) = start(ServerApp::Http);
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        // A body is skipped, also when it arrives after its head.
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"world").unwrap();
        s.write_all(format!("{req}GET / HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        let mut expected = Vec::new();
        write_response(&mut expected, 200, true, false);
        write_response(&mut expected, 200, true, false);
        write_response(&mut expected, 200, false, false);
        assert_eq!(String::from_utf8_lossy(&back), String::from_utf8_lossy(&expected));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(h.join().unwrap().requests.load(Ordering::Relaxed), 3);
    }
}
