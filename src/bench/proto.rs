//! What goes on the wire: echo requests (a position-dependent byte pattern, so a misordered, duplicated or
//! corrupted echo is detected) and HTTP/1.1 keep-alive requests with an incremental response parser
//! (RFC 9112: status line, header fields, `Content-Length` body).

/// The byte at offset `i` of request number `seq`'s payload. Shifting by the sequence number makes a response
/// that belongs to another request (a stale or duplicated echo) fail the check.
#[inline]
pub fn pattern_byte(seq: u64, i: usize) -> u8 {
    (seq as usize).wrapping_mul(7).wrapping_add(i) as u8
}

/// Echo payloads: one buffer long enough that every request is a slice of it.
#[derive(Clone, Debug)]
pub struct EchoPattern {
    buf: Vec<u8>,
    size: usize,
}

impl EchoPattern {
    pub fn new(size: usize) -> EchoPattern {
        EchoPattern { buf: (0..size + 256).map(|i| pattern_byte(0, i)).collect(), size }
    }

    /// Request `seq`'s payload.
    pub fn request(&self, seq: u64) -> &[u8] {
        let start = (seq as usize).wrapping_mul(7) % 256;
        &self.buf[start..start + self.size]
    }

    /// Whether `data`, found at `offset` of request `seq`'s echo, is what was sent.
    pub fn check(&self, seq: u64, offset: usize, data: &[u8]) -> bool {
        let start = (seq as usize).wrapping_mul(7) % 256 + offset;
        self.buf.get(start..start + data.len()) == Some(data)
    }
}

/// The `GET` request sent with `--http`.
pub fn http_request(host: &str, close: bool) -> Vec<u8> {
    let conn = if close { "close" } else { "keep-alive" };
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xdptcp-bench\r\nConnection: {conn}\r\n\r\n").into_bytes()
}

/// Largest response header block accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Why a response is unusable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Not `HTTP/1.x NNN ...`, a malformed header line, or headers too long.
    Malformed,
    /// Neither Content-Length nor a bodiless status: the body length is unknown (chunked is not supported).
    NoLength,
}

/// A complete response.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// The server will close after this response (`Connection: close` or HTTP/1.0 without keep-alive).
    pub close: bool,
    /// Header block plus body bytes.
    pub len: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Head,
    Body { remaining: usize },
}

/// Incremental parser of one response at a time.
#[derive(Clone, Debug)]
pub struct HttpResponseParser {
    head: Vec<u8>,
    state: State,
    status: u16,
    close: bool,
    len: usize,
}

impl Default for HttpResponseParser {
    fn default() -> Self {
        HttpResponseParser { head: Vec::new(), state: State::Head, status: 0, close: false, len: 0 }
    }
}

impl HttpResponseParser {
    /// Whether no byte of a response has been seen yet.
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.head.is_empty()
    }

    /// Feeds bytes. Returns how many were used and, when a response completed, the response (the parser is then
    /// ready for the next one; unused bytes belong to it).
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, Option<HttpResponse>), HttpError> {
        let mut used = 0;
        if self.state == State::Head {
            // Only look for the end of the header block in the new bytes plus the last three old ones.
            let from = self.head.len().saturating_sub(3);
            let before = self.head.len();
            let take = data.len().min(MAX_HEAD + 4 - before.min(MAX_HEAD + 4));
            self.head.extend_from_slice(&data[..take]);
            let Some(end) = self.head[from..].windows(4).position(|w| w == b"\r\n\r\n").map(|p| from + p + 4) else {
                if self.head.len() > MAX_HEAD {
                    return Err(HttpError::Malformed);
                }
                return Ok((data.len(), None));
            };
            used = end - before;
            self.head.truncate(end);
            let body = self.parse_head()?;
            self.len = end;
            self.state = State::Body { remaining: body };
        }
        let State::Body { remaining } = &mut self.state else { unreachable!("head was parsed above") };
        let n = (*remaining).min(data.len() - used);
        *remaining -= n;
        used += n;
        self.len += n;
        if *remaining > 0 {
            return Ok((used, None));
        }
        let done = HttpResponse { status: self.status, close: self.close, len: self.len };
        *self = HttpResponseParser { head: std::mem::take(&mut self.head), ..Default::default() };
        self.head.clear();
        Ok((used, Some(done)))
    }

    /// Parses the status line and header fields; returns the body length.
    fn parse_head(&mut self) -> Result<usize, HttpError> {
        let text = std::str::from_utf8(&self.head[..self.head.len() - 4]).map_err(|_| HttpError::Malformed)?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().unwrap_or("");
        let http10 = match version {
            "HTTP/1.1" => false,
            "HTTP/1.0" => true,
            _ => return Err(HttpError::Malformed),
        };
        if code.len() != 3 {
            return Err(HttpError::Malformed);
        }
        self.status = code.parse().map_err(|_| HttpError::Malformed)?;
        self.close = http10;
        let mut length = None;
        for line in lines {
            let (name, value) = line.split_once(':').ok_or(HttpError::Malformed)?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| HttpError::Malformed)?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(HttpError::NoLength);
            } else if name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        self.close = false;
                    }
                }
            }
        }
        // RFC 9112 §6.3: 1xx, 204 and 304 have no body.
        let bodiless = self.status < 200 || self.status == 204 || self.status == 304;
        match length {
            _ if bodiless => Ok(0),
            Some(n) => Ok(n),
            None => Err(HttpError::NoLength),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_pattern_detects_wrong_bytes_and_wrong_requests() {
        let p = EchoPattern::new(100);
        let r5 = p.request(5).to_vec();
        assert_eq!(r5.len(), 100);
        assert!(p.check(5, 0, &r5));
        assert!(p.check(5, 40, &r5[40..]));
        assert!(!p.check(6, 0, &r5), "another request's echo");
        let mut bad = r5.clone();
        bad[17] ^= 1;
        assert!(!p.check(5, 0, &bad));
        assert!(!p.check(5, 1, &r5), "shifted");
        assert!(!p.check(5, 90, &r5[..20]), "past the end");
        for seq in 0..600 {
            assert_eq!(p.request(seq).len(), 100);
        }
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";

    #[test]
    fn parses_a_response_in_one_piece() {
        let mut p = HttpResponseParser::default();
        let (used, r) = p.feed(OK).unwrap();
        assert_eq!(used, OK.len());
        assert_eq!(r, Some(HttpResponse { status: 200, close: false, len: OK.len() }));
        assert!(p.is_idle());
    }

    #[test]
    fn parses_a_response_byte_by_byte_and_back_to_back() {
        let mut p = HttpResponseParser::default();
        let mut done = Vec::new();
        let two = [OK, OK].concat();
        for b in two.chunks(1) {
            let (used, r) = p.feed(b).unwrap();
            assert_eq!(used, 1);
            done.extend(r);
        }
        assert_eq!(done.len(), 2);
        // Two responses in one buffer: the first call stops at the end of the first.
        let (used, r) = p.feed(&two).unwrap();
        assert_eq!((used, r.map(|r| r.len)), (OK.len(), Some(OK.len())));
        let (used, r) = p.feed(&two[OK.len()..]).unwrap();
        assert_eq!((used, r.is_some()), (OK.len(), true));
    }

    #[test]
    fn close_status_and_errors() {
        let mut p = HttpResponseParser::default();
        let r = p.feed(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap().1.unwrap();
        assert_eq!((r.status, r.close), (503, true));
        let r = p.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap().1.unwrap();
        assert!(r.close, "HTTP/1.0 closes by default");
        let r = p.feed(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().1.unwrap();
        assert_eq!(r.status, 204);
        assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\n\r\n"), Err(HttpError::NoLength));
        let mut p = HttpResponseParser::default();
        assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(HttpError::NoLength));
        let mut p = HttpResponseParser::default();
        assert_eq!(p.feed(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(HttpError::Malformed));
        let mut p = HttpResponseParser::default();
        assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n"), Err(HttpError::Malformed));
        let mut p = HttpResponseParser::default();
        assert_eq!(p.feed(&vec![b'a'; MAX_HEAD + 10]), Err(HttpError::Malformed), "bounded header block");
    }

    #[test]
    fn the_request_is_keep_alive_http_1_1() {
        let r = String::from_utf8(http_request("198.18.0.1:80", false)).unwrap();
        assert!(r.starts_with("GET / HTTP/1.1\r\nHost: 198.18.0.1:80\r\n"));
        assert!(r.ends_with("Connection: keep-alive\r\n\r\n"));
        assert!(matches!(
            crate::app::http::parse_request(r.as_bytes()),
            crate::app::http::Parse::Request { keep_alive: true, .. }
        ));
        let c = http_request("h", true);
        assert!(matches!(
            crate::app::http::parse_request(&c),
            crate::app::http::Parse::Request { keep_alive: false, .. }
        ));
    }
}
