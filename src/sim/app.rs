//! The application on each simulated host: sends a deterministic pseudo-random stream, hashes what it sends and
//! what it receives (SHA-256), and closes the way the scenario asks.

use std::net::SocketAddrV4;

use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sha2::{Digest, Sha256};

use crate::tcp::{CloseReason, ConnId, Engine, Error, Event, ListenerId};
use crate::time::Instant;

/// How a host opens its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Active open from `local` to `remote` when the app starts.
    Client { local: SocketAddrV4, remote: SocketAddrV4 },
    /// Listen on an address and take the first connection.
    Server { listen: SocketAddrV4 },
}

/// What the app does once it has sent everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// `close()` at once (one-way transfers: the sender closes, the receiver closes on end of stream).
    Close,
    /// `shutdown_write()`, keep reading, `close()` after the peer's end of stream (both directions busy).
    Shutdown,
    /// `abort()` (RST).
    Abort,
    /// Leave the connection open.
    Keep,
    /// `close()` only after the peer's end of stream (the passive closer).
    AfterPeer,
}

pub struct StreamApp {
    pub role: Role,
    pub send_total: u64,
    pub close_mode: CloseMode,
    /// While true, received data stays unread (to close the window: zero-window scenario).
    pub read_paused: bool,
    pub keepalive: bool,
    pub conn: Option<ConnId>,
    pub listener: Option<ListenerId>,
    generator: Xoshiro256PlusPlus,
    pending: Vec<u8>,
    pub sent: u64,
    pub received: u64,
    send_hash: Sha256,
    recv_hash: Sha256,
    pub connected_at: Option<Instant>,
    pub peer_eof: bool,
    pub closed: Option<CloseReason>,
    pub errors: Vec<Error>,
    close_done: bool,
    released: bool,
}

impl StreamApp {
    pub fn new(role: Role, send_total: u64, close_mode: CloseMode, stream_seed: u64) -> StreamApp {
        StreamApp {
            role,
            send_total,
            close_mode,
            read_paused: false,
            keepalive: false,
            conn: None,
            listener: None,
            generator: Xoshiro256PlusPlus::seed_from_u64(stream_seed),
            pending: Vec::new(),
            sent: 0,
            received: 0,
            send_hash: Sha256::new(),
            recv_hash: Sha256::new(),
            connected_at: None,
            peer_eof: false,
            closed: None,
            errors: Vec::new(),
            close_done: false,
            released: false,
        }
    }

    pub fn sent_digest(&self) -> String {
        hex(&self.send_hash.clone().finalize())
    }

    pub fn received_digest(&self) -> String {
        hex(&self.recv_hash.clone().finalize())
    }

    pub fn start(&mut self, engine: &mut Engine, now: Instant) {
        match self.role {
            Role::Client { local, remote } => match engine.connect(now, local, remote) {
                Ok(c) => {
                    self.conn = Some(c);
                    if self.keepalive {
                        let _ = engine.set_keepalive(c, true);
                    }
                }
                Err(e) => self.errors.push(e),
            },
            Role::Server { listen } => match engine.listen(listen, 16) {
                Ok(l) => self.listener = Some(l),
                Err(e) => self.errors.push(e),
            },
        }
    }

    pub fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        match event {
            Event::Incoming(l) => {
                while let Ok(c) = engine.accept(l) {
                    if self.conn.is_none() {
                        self.conn = Some(c);
                        self.connected_at = Some(now);
                        if self.keepalive {
                            let _ = engine.set_keepalive(c, true);
                        }
                    } else {
                        let _ = engine.close(now, c);
                    }
                }
            }
            Event::Connected(c) if Some(c) == self.conn => self.connected_at = Some(now),
            Event::Closed(c, reason) if Some(c) == self.conn => {
                self.closed = Some(reason);
                self.read(engine, now);
                if !self.released {
                    self.released = true;
                    let _ = engine.close(now, c);
                }
            }
            _ => {}
        }
    }

    /// Reads what is readable, sends what the send buffer takes, closes when the scenario says so.
    pub fn pump(&mut self, engine: &mut Engine, now: Instant) {
        let Some(c) = self.conn else { return };
        if self.released {
            return;
        }
        self.read(engine, now);
        if self.released {
            return;
        }
        if self.connected_at.is_some() || matches!(self.role, Role::Client { .. }) {
            self.write(engine, now, c);
        }
        if self.sent == self.send_total && self.pending.is_empty() && !self.close_done && self.connected_at.is_some() {
            match self.close_mode {
                CloseMode::Close => {
                    self.close_done = true;
                    self.released = true;
                    let _ = engine.close(now, c);
                }
                CloseMode::Shutdown => {
                    self.close_done = true;
                    let _ = engine.shutdown_write(now, c);
                }
                CloseMode::Abort => {
                    self.close_done = true;
                    self.released = true;
                    let _ = engine.abort(now, c);
                }
                CloseMode::Keep | CloseMode::AfterPeer => {}
            }
        }
        if self.peer_eof && !self.released && matches!(self.close_mode, CloseMode::Shutdown | CloseMode::AfterPeer) {
            let all_sent = self.sent == self.send_total && self.pending.is_empty();
            if all_sent {
                if self.close_mode == CloseMode::AfterPeer && !self.close_done {
                    self.close_done = true;
                }
                self.released = true;
                let _ = engine.close(now, c);
            }
        }
    }

    fn read(&mut self, engine: &mut Engine, _now: Instant) {
        let Some(c) = self.conn else { return };
        if self.read_paused || self.peer_eof {
            return;
        }
        let hash = &mut self.recv_hash;
        let received = &mut self.received;
        loop {
            match engine.recv_with(c, &mut |data: &[u8]| {
                hash.update(data);
                *received += data.len() as u64;
                data.len()
            }) {
                Ok(0) => {
                    self.peer_eof = true;
                    return;
                }
                Ok(_) => continue,
                Err(Error::WouldBlock) => return,
                Err(e) => {
                    if !self.errors.contains(&e) {
                        self.errors.push(e);
                    }
                    return;
                }
            }
        }
    }

    fn write(&mut self, engine: &mut Engine, now: Instant, c: ConnId) {
        loop {
            if self.pending.is_empty() {
                let left = self.send_total - self.sent;
                if left == 0 {
                    return;
                }
                let n = left.min(16 * 1024) as usize;
                self.pending.resize(n, 0);
                self.generator.fill_bytes(&mut self.pending);
            }
            match engine.send(now, c, &self.pending) {
                Ok(n) => {
                    self.send_hash.update(&self.pending[..n]);
                    self.sent += n as u64;
                    self.pending.drain(..n);
                }
                Err(Error::WouldBlock) | Err(Error::NotConnected) => return,
                Err(e) => {
                    if !self.errors.contains(&e) {
                        self.errors.push(e);
                    }
                    return;
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
