//! The client side of the control socket, used by `xdptcp stat`, `ss`, `sysctl` and `capture`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::protocol::{CaptureSummary, Request, Response, Setting, SockRecord, WorkerGauges};
use super::ssfilter::StateSet;

/// How long the client waits for any one response line (listings wait on workers two seconds at most per batch).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest response line accepted (a generous bound; counter responses are a few KiB).
const MAX_RESPONSE_LINE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {} (is xdptcp running, and are you root?)", path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    #[error("control protocol: {0}")]
    Protocol(String),
    /// The server refused the request.
    #[error("{0}")]
    Remote(String),
    /// The socket is served by a process of another user: not an xdptcp we started (review L13).
    #[error("{} is served by uid {uid} (pid {pid}), neither root nor us; not talking to it", path.display())]
    Untrusted { path: PathBuf, uid: u32, pid: i32 },
}

/// A connection to a running stack's control socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// The answer to a counters request.
#[derive(Clone, Debug)]
pub struct CountersReply {
    /// (`Group:Name`, value), every counter, in display order.
    pub counters: Vec<(String, u64)>,
    pub workers: Vec<WorkerGauges>,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream =
            UnixStream::connect(path).map_err(|source| ClientError::Connect { path: path.to_path_buf(), source })?;
        // The server's credentials, as the kernel recorded them when it bound: a squatter cannot fake them.
        let cred = crate::sys::peer_cred(&stream)?;
        if !super::server::trusted_uid(cred.uid) {
            return Err(ClientError::Untrusted { path: path.to_path_buf(), uid: cred.uid, pid: cred.pid });
        }
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok(Client { reader: BufReader::new(stream), writer })
    }

    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        Ok(())
    }

    fn recv(&mut self) -> Result<Response, ClientError> {
        let mut line = Vec::new();
        let n = (&mut self.reader).take(MAX_RESPONSE_LINE as u64).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(ClientError::Protocol("the server closed the connection".into()));
        }
        if line.last() != Some(&b'\n') {
            return Err(ClientError::Protocol("response line too long or cut short".into()));
        }
        serde_json::from_slice(&line).map_err(|e| ClientError::Protocol(format!("bad response: {e}")))
    }

    fn unexpected(r: Response) -> ClientError {
        match r {
            Response::Error { message } => ClientError::Remote(message),
            other => ClientError::Protocol(format!("unexpected response {other:?}")),
        }
    }

    /// Summed counters: `fresh` asks every worker now; otherwise the ~100 ms snapshots are used.
    pub fn counters(&mut self, fresh: bool) -> Result<CountersReply, ClientError> {
        self.send(&Request::Counters { fresh })?;
        match self.recv()? {
            Response::Counters { counters, workers } => Ok(CountersReply { counters, workers }),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Streams sockets to `on_sock` as they arrive; warnings (a worker that did not answer) go to `on_warning`.
    /// Returns the number of sockets.
    pub fn list(
        &mut self,
        states: StateSet,
        filter: &str,
        info: bool,
        on_sock: &mut dyn FnMut(SockRecord) -> io::Result<()>,
        on_warning: &mut dyn FnMut(&str),
    ) -> Result<u64, ClientError> {
        self.send(&Request::List { states: states.bits(), filter: filter.to_string(), info })?;
        loop {
            match self.recv()? {
                Response::Sock(r) => on_sock(r)?,
                Response::Warning { message } => on_warning(&message),
                Response::End { count } => return Ok(count),
                other => return Err(Self::unexpected(other)),
            }
        }
    }

    fn settings(&mut self, req: Request) -> Result<Vec<Setting>, ClientError> {
        self.send(&req)?;
        match self.recv()? {
            Response::Settings(s) => Ok(s),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Turns the per-connection debug log on for connections matching the ss `filter`, or off (`None`); returns
    /// the number of workers that took it.
    pub fn log(&mut self, filter: Option<&str>) -> Result<u32, ClientError> {
        self.send(&Request::Log { filter: filter.map(str::to_string) })?;
        match self.recv()? {
            Response::Log { workers, .. } => Ok(workers),
            other => Err(Self::unexpected(other)),
        }
    }

    pub fn sysctl_get(&mut self, name: &str) -> Result<Setting, ClientError> {
        let s = self.settings(Request::SysctlGet { name: name.into() })?;
        s.into_iter().next().ok_or_else(|| ClientError::Protocol("empty settings answer".into()))
    }

    pub fn sysctl_list(&mut self) -> Result<Vec<Setting>, ClientError> {
        self.settings(Request::SysctlList)
    }

    pub fn sysctl_set(&mut self, name: &str, value: &str) -> Result<Setting, ClientError> {
        let s = self.settings(Request::SysctlSet { name: name.into(), value: value.into() })?;
        s.into_iter().next().ok_or_else(|| ClientError::Protocol("empty settings answer".into()))
    }

    /// Runs a capture, copying the pcapng stream to `out`, until the server ends it (count or duration reached)
    /// or `stop` returns true (polled every 50 ms; the server is then asked to finish cleanly, so the file is
    /// complete). Warnings go to `on_warning`; `on_started` runs once the workers are tapped.
    #[allow(clippy::too_many_arguments)]
    pub fn capture(
        mut self,
        filter: &str,
        snaplen: Option<u32>,
        count: Option<u64>,
        duration: Option<Duration>,
        out: &mut dyn Write,
        stop: Option<Box<dyn Fn() -> bool + Send>>,
        on_warning: &mut dyn FnMut(&str),
        on_started: &mut dyn FnMut(),
    ) -> Result<CaptureSummary, ClientError> {
        let duration_ms = duration.map(|d| d.as_millis().max(1) as u64);
        self.send(&Request::Capture { filter: filter.into(), snaplen, count, duration_ms })?;
        loop {
            match self.recv()? {
                Response::Warning { message } => on_warning(&message),
                Response::CaptureStarted { .. } => break,
                other => return Err(Self::unexpected(other)),
            }
        }
        on_started();
        // The stream now waits on traffic, which may take any time.
        self.reader.get_ref().set_read_timeout(None)?;
        let done = Arc::new(AtomicBool::new(false));
        let watcher = stop.map(|stop| {
            let (done, mut writer) = (done.clone(), self.writer.try_clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if stop() {
                        if let Ok(w) = writer.as_mut() {
                            let _ = w.write_all(b"stop\n");
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        });
        let result = self.copy_frames(out);
        done.store(true, Ordering::Relaxed);
        if let Some(w) = watcher {
            let _ = w.join();
        }
        result?;
        self.reader.get_ref().set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        match self.recv()? {
            Response::CaptureDone(s) => Ok(s),
            other => Err(Self::unexpected(other)),
        }
    }

    fn copy_frames(&mut self, out: &mut dyn Write) -> Result<(), ClientError> {
        let mut buf = Vec::new();
        loop {
            let mut len = [0u8; 4];
            self.reader.read_exact(&mut len)?;
            let len = u32::from_le_bytes(len) as usize;
            if len == 0 {
                out.flush()?;
                return Ok(());
            }
            if len > 16 << 20 {
                return Err(ClientError::Protocol(format!("capture frame of {len} bytes")));
            }
            buf.resize(len, 0);
            self.reader.read_exact(&mut buf)?;
            out.write_all(&buf)?;
            out.flush()?;
        }
    }
}
