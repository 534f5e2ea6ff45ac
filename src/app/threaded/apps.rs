//! Echo, discard and http as app-thread programs: the same logic as the callback apps, written against the
//! [`Listener`]/[`Connection`]/[`Poller`] API. Each app thread runs one event loop over the connections it
//! accepted (from any worker).

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use super::{Connection, Hub, Listener, Poller};
use crate::app::http::Session;
use crate::app::{AppSpec, READ_CHUNK};

/// What a handler wants after running.
#[derive(PartialEq, Eq)]
enum Next {
    /// Wait for the connection's next news (it returned `WouldBlock`).
    Wait,
    /// Orderly close (FIN after what was written).
    Close,
    /// Reset.
    Abort,
    /// The connection failed: just let go of it.
    Drop,
}

trait Handler: Default {
    fn run(&mut self, c: &mut Connection, buf: &mut [u8], spec: &AppSpec) -> Next;
}

#[derive(Default)]
struct Echo {
    pending: Vec<u8>,
    sent: usize,
    received: u64,
}

impl Handler for Echo {
    fn run(&mut self, c: &mut Connection, buf: &mut [u8], spec: &AppSpec) -> Next {
        let abort_after = match spec {
            AppSpec::Echo { abort_after } => *abort_after,
            _ => None,
        };
        // Bounded: every pass moves bytes through bounded rings or returns.
        loop {
            while self.sent < self.pending.len() {
                match c.try_write(&self.pending[self.sent..]) {
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                    Err(_) => return Next::Drop,
                }
            }
            self.pending.clear();
            self.sent = 0;
            match c.try_read(buf) {
                // Everything read was written back: FIN after it.
                Ok(0) => return Next::Close,
                Ok(n) => {
                    self.received += n as u64;
                    if abort_after.is_some_and(|limit| self.received >= limit) {
                        return Next::Abort;
                    }
                    // Straight back; only what does not fit is kept.
                    let w = match c.try_write(&buf[..n]) {
                        Ok(w) => w,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                        Err(_) => return Next::Drop,
                    };
                    self.pending.extend_from_slice(&buf[w..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                Err(_) => return Next::Drop,
            }
        }
    }
}

#[derive(Default)]
struct Discard;

impl Handler for Discard {
    fn run(&mut self, c: &mut Connection, buf: &mut [u8], _: &AppSpec) -> Next {
        loop {
            match c.try_read(buf) {
                Ok(0) => return Next::Close,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                Err(_) => return Next::Drop,
            }
        }
    }
}

#[derive(Default)]
struct Http(Session);

impl Handler for Http {
    fn run(&mut self, c: &mut Connection, buf: &mut [u8], _: &AppSpec) -> Next {
        let s = &mut self.0;
        loop {
            while s.sent < s.out.len() {
                match c.try_write(&s.out[s.sent..]) {
                    Ok(n) => s.sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                    Err(_) => return Next::Drop,
                }
            }
            s.out.clear();
            s.sent = 0;
            if s.close_after {
                // Unread pipelined input past a `Connection: close` request is dropped so the close is no reset.
                while matches!(c.try_read(buf), Ok(n) if n > 0) {}
                return Next::Close;
            }
            if s.answer(false) > 0 {
                continue;
            }
            if s.eof {
                return Next::Close;
            }
            match c.try_read(buf) {
                Ok(0) => s.eof = true,
                Ok(n) => s.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Wait,
                Err(_) => return Next::Drop,
            }
        }
    }
}

/// Runs `spec`'s logic on the calling thread until the hub closes. Returns the connections it served.
pub fn serve(hub: &Arc<Hub>, spec: &AppSpec) -> u64 {
    match spec {
        AppSpec::Echo { .. } => event_loop::<Echo>(hub, spec),
        AppSpec::Discard => event_loop::<Discard>(hub, spec),
        AppSpec::Http => event_loop::<Http>(hub, spec),
        // The proxy pairs connections inside one worker's engine; `xdptcp proxy` never asks for app threads.
        AppSpec::Proxy(_) => 0,
    }
}

fn event_loop<H: Handler>(hub: &Arc<Hub>, spec: &AppSpec) -> u64 {
    let mut listener: Listener = hub.listener();
    let poller = Poller::new(hub);
    let mut conns: Vec<Option<(Connection, H)>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut served = 0u64;
    loop {
        events.clear();
        // The timeout only bounds how late a closed hub is noticed if no wake-up comes.
        let accept = poller.wait(Some(&listener), &mut events, Some(Duration::from_millis(200)));
        if accept {
            // Bounded by the accept queues, which the workers bound.
            loop {
                match listener.try_accept() {
                    Ok(c) => {
                        let token = free.pop().unwrap_or_else(|| {
                            conns.push(None);
                            conns.len() - 1
                        });
                        poller.register(&c, token);
                        conns[token] = Some((c, H::default()));
                        served += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return served, // the stack is shutting down; dropping `conns` closes them
                }
            }
        }
        for &token in &events {
            let Some((c, h)) = conns.get_mut(token).and_then(Option::as_mut) else { continue };
            let next = h.run(c, &mut buf, spec);
            if next == Next::Wait {
                continue;
            }
            let (c, _) = conns[token].take().expect("present");
            free.push(token);
            match next {
                Next::Abort => c.abort(),
                _ => c.close(),
            }
        }
    }
}
