//! A minimal HTTP/1.1 server (RFC 9112): every request gets `200 OK` with a small fixed body. Persistent connections
//! by default, `Connection: close` honoured (and HTTP/1.0 closes unless it asked for keep-alive), pipelined requests
//! answered in order, requests split across segments reassembled. Request bodies with `Content-Length` are read and
//! ignored; chunked request bodies are refused with 501. Header blocks are bounded (431), bodies too (413).

use std::collections::HashMap;

use super::{accept_all, App, READ_CHUNK};
use crate::tcp::{ConnId, Engine, Error, Event};
use crate::time::Instant;

/// The body every request gets.
pub const BODY: &[u8] = b"Hello from xdptcp\n";
/// Largest header block accepted.
const MAX_HEADER: usize = 16 * 1024;
/// Largest request body accepted (and skipped).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Stop parsing pipelined requests while this much output is unsent (back-pressure).
const MAX_PENDING_OUT: usize = 64 * 1024;

/// The outcome of looking at the start of a connection's input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// Need more bytes.
    Incomplete,
    /// A complete request head of `consumed` bytes, followed by `body` bytes of body (read and dropped as they
    /// arrive, never buffered whole).
    Request {
        /// Bytes of the request head.
        consumed: usize,
        /// Bytes of body that follow it.
        body: usize,
        /// Whether the connection stays open after the response.
        keep_alive: bool,
        /// A HEAD request: the response has no body.
        head_only: bool,
    },
    /// A malformed or unsupported request: answer with this status and close.
    Bad(u16),
}

fn find_header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Parses one request at the start of `buf`.
pub fn parse_request(buf: &[u8]) -> Parse {
    let Some(head_len) = find_header_end(buf) else {
        return if buf.len() > MAX_HEADER { Parse::Bad(431) } else { Parse::Incomplete };
    };
    if head_len > MAX_HEADER {
        return Parse::Bad(431);
    }
    let Ok(head) = std::str::from_utf8(&buf[..head_len - 4]) else { return Parse::Bad(400) };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Bad(400);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || target.is_empty() {
        return Parse::Bad(400);
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Parse::Bad(505),
        _ => return Parse::Bad(400),
    };
    let mut content_length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { return Parse::Bad(400) };
        if name.is_empty() || name.ends_with(' ') || name.ends_with('\t') {
            return Parse::Bad(400); // RFC 9112 §5.1: no whitespace before the colon
        }
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse::<usize>() else { return Parse::Bad(400) };
            if content_length.is_some_and(|old| old != n) {
                return Parse::Bad(400);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parse::Bad(501);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && version == "HTTP/1.0" {
                    keep_alive = true;
                }
            }
        }
    }
    let body = content_length.unwrap_or(0);
    if body > MAX_BODY {
        return Parse::Bad(413);
    }
    Parse::Request { consumed: head_len, body, keep_alive, head_only: method == "HEAD" }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Appends a response to `out`.
pub fn write_response(out: &mut Vec<u8>, status: u16, keep_alive: bool, head_only: bool) {
    let body: &[u8] = if status == 200 { BODY } else { reason(status).as_bytes() };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {}\r\nServer: xdptcp\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n",
            reason(status),
            body.len()
        )
        .as_bytes(),
    );
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// One connection's HTTP/1.1 exchange, whatever carries its bytes (worker callbacks here, an app thread in
/// `threaded::apps`): what was read, the responses not yet written, and when to close.
#[derive(Default)]
pub struct Session {
    /// Received, not yet parsed.
    pub input: Vec<u8>,
    /// Body bytes of the current request still to drop before the next request starts.
    skip: usize,
    /// Responses not yet written.
    pub out: Vec<u8>,
    /// Bytes of `out` already written.
    pub sent: usize,
    /// Close once `out` is sent (Connection: close, HTTP/1.0, or an error response).
    pub close_after: bool,
    /// The peer finished sending.
    pub eof: bool,
}

impl Session {
    /// Answers every complete request buffered, up to the output bound; while `closing` (the server shuts down) the
    /// answer closes the connection. Returns how many responses were queued (error responses included).
    pub fn answer(&mut self, closing: bool) -> u64 {
        let mut answered = 0;
        while self.out.len() < MAX_PENDING_OUT && !self.close_after {
            if self.skip > 0 {
                let n = self.skip.min(self.input.len());
                self.input.drain(..n);
                self.skip -= n;
                if self.skip > 0 {
                    break;
                }
            }
            match parse_request(&self.input) {
                Parse::Incomplete => break,
                Parse::Request { consumed, body, keep_alive, head_only } => {
                    self.input.drain(..consumed);
                    self.skip = body;
                    write_response(&mut self.out, 200, keep_alive, head_only);
                    self.close_after = !keep_alive || closing;
                }
                Parse::Bad(status) => {
                    self.input.clear();
                    write_response(&mut self.out, status, false, false);
                    self.close_after = true;
                }
            }
            answered += 1;
        }
        answered
    }
}

/// The HTTP app: a small fixed body for every HTTP/1.x request; keep-alive and pipelining.
#[derive(Default)]
pub struct Http {
    conns: HashMap<ConnId, Session>,
    buf: Vec<u8>,
    shutting_down: bool,
    /// Requests answered.
    pub requests: u64,
}

impl Http {
    fn pump(&mut self, engine: &mut Engine, now: Instant, id: ConnId) {
        if self.buf.len() != READ_CHUNK {
            self.buf.resize(READ_CHUNK, 0);
        }
        let Some(c) = self.conns.get_mut(&id) else { return };
        loop {
            while c.sent < c.out.len() {
                match engine.send(now, id, &c.out[c.sent..]) {
                    Ok(n) => c.sent += n,
                    Err(Error::WouldBlock) => return,
                    Err(_) => {
                        let _ = engine.abort(now, id);
                        self.conns.remove(&id);
                        return;
                    }
                }
            }
            c.out.clear();
            c.sent = 0;
            if c.close_after {
                // Everything is queued; an orderly close sends FIN after it. Unread pipelined input past a
                // `Connection: close` request is dropped first so the close is not turned into a reset.
                while matches!(engine.recv(id, &mut self.buf), Ok(n) if n > 0) {}
                let _ = engine.close(now, id);
                self.conns.remove(&id);
                return;
            }
            // Answer every complete request buffered, up to the output bound.
            let answered = c.answer(self.shutting_down);
            if answered > 0 {
                self.requests += answered;
                continue;
            }
            if c.eof {
                // The peer finished and no complete request is left: close our side too.
                let _ = engine.close(now, id);
                self.conns.remove(&id);
                return;
            }
            match engine.recv(id, &mut self.buf) {
                Ok(0) => c.eof = true,
                Ok(n) => c.input.extend_from_slice(&self.buf[..n]),
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

impl App for Http {
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
                    let _ = engine.set_nodelay(c, true);
                    self.conns.insert(c, Session::default());
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
        // Idle keep-alive connections are closed now; busy ones after their current response.
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let busy = self.conns.get(&id).is_some_and(|c| c.sent < c.out.len());
            if busy {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.close_after = true;
                }
            } else {
                self.conns.remove(&id);
                let _ = engine.close(now, id);
            }
        }
    }

    fn connections(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_get_keeps_alive() {
        let r = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parse_request(r), Parse::Request { consumed: r.len(), body: 0, keep_alive: true, head_only: false });
    }

    #[test]
    fn split_requests_are_incomplete_until_whole() {
        let r = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..r.len() {
            assert_eq!(parse_request(&r[..cut]), Parse::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let two = b"GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\nConnection: close\r\n\r\n";
        let Parse::Request { consumed, body: 0, keep_alive: true, head_only: false } = parse_request(two) else {
            panic!()
        };
        assert_eq!(consumed, 19);
        assert_eq!(
            parse_request(&two[consumed..]),
            Parse::Request { consumed: two.len() - consumed, body: 0, keep_alive: false, head_only: true }
        );
    }

    #[test]
    fn connection_semantics() {
        let close = b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n";
        assert!(matches!(parse_request(close), Parse::Request { keep_alive: false, .. }));
        let old = b"GET / HTTP/1.0\r\n\r\n";
        assert!(matches!(parse_request(old), Parse::Request { keep_alive: false, .. }));
        let old_ka = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        assert!(matches!(parse_request(old_ka), Parse::Request { keep_alive: true, .. }));
    }

    #[test]
    fn bodies_are_announced_for_skipping() {
        let r = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET";
        assert!(matches!(parse_request(&r[..30]), Parse::Incomplete));
        assert!(matches!(parse_request(r), Parse::Request { consumed: 38, body: 5, .. }));
    }

    #[test]
    fn bad_requests() {
        assert_eq!(parse_request(b"GET /\r\n\r\n"), Parse::Bad(400));
        assert_eq!(parse_request(b"get / HTTP/1.1\r\n\r\n"), Parse::Bad(400));
        assert_eq!(parse_request(b"GET / HTTP/2.0\r\n\r\n"), Parse::Bad(505));
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"), Parse::Bad(400));
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"), Parse::Bad(400));
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Parse::Bad(501));
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), Parse::Bad(400));
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"), Parse::Bad(413));
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Parse::Bad(400)
        );
        let huge = vec![b'a'; MAX_HEADER + 1];
        assert_eq!(parse_request(&huge), Parse::Bad(431));
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        write_response(&mut out, 200, true, false);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", BODY.len())));
        assert!(text.contains("Connection: keep-alive\r\n"));
        assert!(out.ends_with(BODY));
        out.clear();
        write_response(&mut out, 200, false, true);
        assert!(String::from_utf8(out).unwrap().ends_with("Connection: close\r\n\r\n"));
    }
}
