//! Discard (RFC 863 over TCP): reads and drops everything; closes when the peer has finished sending.

use std::collections::HashSet;

use super::{accept_all, App, READ_CHUNK};
use crate::tcp::{ConnId, Engine, Error, Event};
use crate::time::Instant;

/// The discard app (RFC 863 over TCP): reads and drops everything, closes when the peer does.
#[derive(Default)]
pub struct Discard {
    conns: HashSet<ConnId>,
    shutting_down: bool,
    /// Bytes discarded so far.
    pub bytes: u64,
}

impl Discard {
    fn drain(&mut self, engine: &mut Engine, now: Instant, id: ConnId) {
        if !self.conns.contains(&id) {
            return;
        }
        let mut total = 0u64;
        loop {
            // Zero-copy: look at the bytes in the engine's buffer and consume them all. Bounded by what is readable.
            match engine.recv_with(id, &mut |data: &[u8]| {
                total += data.len() as u64;
                data.len()
            }) {
                Ok(0) => {
                    // End of stream: nothing left unread, so this is an orderly close.
                    self.conns.remove(&id);
                    let _ = engine.close(now, id);
                    break;
                }
                Ok(_) => {}
                Err(Error::WouldBlock) => break,
                Err(_) => {
                    self.conns.remove(&id);
                    let _ = engine.abort(now, id);
                    break;
                }
            }
            if total > 16 * READ_CHUNK as u64 {
                break; // let other connections run; the engine raises Readable again while data remains
            }
        }
        self.bytes += total;
    }
}

impl App for Discard {
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
                    self.conns.insert(c);
                    self.drain(engine, now, c);
                }
            }
            Event::Readable(c) => self.drain(engine, now, c),
            Event::Writable(_) | Event::Connected(_) => {}
            Event::Closed(c, _) => {
                self.conns.remove(&c);
                let _ = engine.close(now, c);
            }
        }
    }

    fn shutdown(&mut self, engine: &mut Engine, now: Instant) {
        self.shutting_down = true;
        for id in self.conns.drain() {
            let _ = engine.close(now, id);
        }
    }

    fn connections(&self) -> usize {
        self.conns.len()
    }
}
