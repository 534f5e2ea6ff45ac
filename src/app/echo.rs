//! Echo (RFC 862 over TCP): every byte received is sent back. When the peer half-closes, whatever is pending is sent
//! and then our side is shut too, so a client that shut its write side still reads the whole echo.

use std::collections::HashMap;

use super::{accept_all, App, READ_CHUNK};
use crate::tcp::{ConnId, Engine, Error, Event};
use crate::time::Instant;

#[derive(Default)]
struct Conn {
    /// Received, not yet sent back.
    pending: Vec<u8>,
    sent: usize,
    eof: bool,
    shut: bool,
    received: u64,
}

/// The echo app (RFC 862 over TCP), one per worker.
pub struct Echo {
    conns: HashMap<ConnId, Conn>,
    abort_after: Option<u64>,
    buf: Vec<u8>,
    shutting_down: bool,
}

impl Echo {
    /// An echo app; `abort_after`: reset each connection once that many bytes were received.
    pub fn new(abort_after: Option<u64>) -> Echo {
        Echo { conns: HashMap::new(), abort_after, buf: vec![0; READ_CHUNK], shutting_down: false }
    }

    fn pump(&mut self, engine: &mut Engine, now: Instant, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        // Bounded: each pass either makes progress on a bounded buffer or returns.
        loop {
            while c.sent < c.pending.len() {
                match engine.send(now, id, &c.pending[c.sent..]) {
                    Ok(n) => c.sent += n,
                    Err(Error::WouldBlock) => return, // resume on Writable
                    Err(_) => {
                        let _ = engine.abort(now, id);
                        self.conns.remove(&id);
                        return;
                    }
                }
            }
            c.pending.clear();
            c.sent = 0;
            if c.eof {
                if !c.shut {
                    c.shut = true;
                    let _ = engine.shutdown_write(now, id);
                }
                return; // the Closed event releases the handle
            }
            match engine.recv(id, &mut self.buf) {
                Ok(0) => c.eof = true,
                Ok(n) => {
                    c.received += n as u64;
                    if self.abort_after.is_some_and(|limit| c.received >= limit) {
                        let _ = engine.abort(now, id);
                        self.conns.remove(&id);
                        return;
                    }
                    c.pending.extend_from_slice(&self.buf[..n]);
                }
                Err(Error::WouldBlock) => return,
                Err(_) => {
                    let _ = engine.abort(now, id);
                    self.conns.remove(&id);
                    return;
                }
            }
        }
    }
}

impl App for Echo {
    fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        match event {
            Event::Incoming(l) => {
                let mut accepted = Vec::new();
                accept_all(engine, l, |_, c| accepted.push(c));
                for c in accepted {
                    if self.shutting_down {
                        let _ = engine.close(now, c);
                        continue;
                    }
                    self.conns.insert(c, Conn::default());
                    self.pump(engine, now, c);
                }
            }
            Event::Readable(c) | Event::Writable(c) | Event::Connected(c) => self.pump(engine, now, c),
            Event::Closed(c, _) => {
                self.conns.remove(&c);
                let _ = engine.close(now, c);
            }
        }
    }

    fn shutdown(&mut self, engine: &mut Engine, now: Instant) {
        self.shutting_down = true;
        for (id, _) in self.conns.drain() {
            let _ = engine.close(now, id);
        }
    }

    fn connections(&self) -> usize {
        self.conns.len()
    }
}
