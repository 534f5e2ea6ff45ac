//! The control socket server: accepts clients on a Unix domain socket and answers their requests through the
//! [`ControlHub`]. See the [module documentation](super) for the protocol.

use std::fs;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::capture::{CaptureLimits, DEFAULT_SNAPLEN};
use super::filter::{CaptureFilter, LinkType};
use super::protocol::{counters_to_pairs, Request, Response, MAX_REQUEST_LINE};
use super::ssfilter::{SsFilter, StateSet};
use super::wait_readable;
use super::worker::{ControlHub, WorkerControl};

/// Where instance sockets live by default.
pub const RUN_DIR: &str = "/run/xdptcp";
/// The instance name clients assume without `--name`.
pub const DEFAULT_NAME: &str = "xdptcp";
/// Clients served at once; more are told to retry.
pub const MAX_CLIENTS: usize = 32;
/// How often idle loops look at the shutdown flag.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// A client that stops reading a listing for this long is dropped.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes per pcapng frame on the socket.
const CAPTURE_FRAME: usize = 64 * 1024;

/// The socket path of instance `name`: `/run/xdptcp/<name>.sock`. Names are limited to `[A-Za-z0-9_.-]`, at most
/// 64 characters, not starting with a dot, so a name can never point outside the directory.
pub fn socket_path_for_name(name: &str) -> Result<PathBuf, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(format!("invalid instance name `{name}` (use letters, digits, `_`, `.`, `-`)"));
    }
    Ok(Path::new(RUN_DIR).join(format!("{name}.sock")))
}

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub path: PathBuf,
}

impl ServerConfig {
    /// The default path for instance `name` (see [`socket_path_for_name`]).
    pub fn for_name(name: &str) -> Result<ServerConfig, String> {
        socket_path_for_name(name).map(|path| ServerConfig { path })
    }
    pub fn at(path: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig { path: path.into() }
    }
}

/// The running server; dropping it stops the accept thread and removes the socket file.
pub struct ControlServer {
    hub: ControlHub,
    path: PathBuf,
    /// Device and inode of the socket we bound, so drop never removes a file someone else put there since.
    identity: (u64, u64),
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds the socket with a new, empty hub; workers register through [`ControlServer::register_worker`].
    pub fn bind(config: ServerConfig) -> io::Result<ControlServer> {
        ControlServer::bind_with_hub(config, ControlHub::new())
    }

    /// Binds the socket serving an existing hub.
    pub fn bind_with_hub(config: ServerConfig, hub: ControlHub) -> io::Result<ControlServer> {
        let path = config.path;
        let listener = bind_socket(&path)?;
        let md = fs::symlink_metadata(&path)?;
        listener.set_nonblocking(true)?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = {
            let (hub, shutdown) = (hub.clone(), shutdown.clone());
            std::thread::Builder::new()
                .name("xdptcp-control".into())
                .spawn(move || accept_loop(listener, hub, shutdown))?
        };
        Ok(ControlServer { hub, path, identity: (md.dev(), md.ino()), shutdown, thread: Some(thread) })
    }

    pub fn hub(&self) -> &ControlHub {
        &self.hub
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers a worker (see [`ControlHub::register_worker`]).
    pub fn register_worker(&self, link: LinkType) -> WorkerControl {
        self.hub.register_worker(link)
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(md) = fs::symlink_metadata(&self.path) {
            if (md.dev(), md.ino()) == self.identity {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds `path`: creates a missing parent directory with mode 0700, refuses an existing one that is not ours or
/// that others may write (review L13), replaces a stale socket (nobody answers it), refuses a live one or a
/// non-socket file, and sets mode 0600.
fn bind_socket(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        check_socket_dir(dir)?;
    }
    match fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is served by a running xdptcp", path.display()),
                ));
            }
            fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket; not replacing it", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The socket's directory must be owned by us and writable by nobody else: in a group- or world-writable one
/// another user could plant the socket name first and then answer our clients (or keep us from starting).
pub fn check_socket_dir(dir: &Path) -> io::Result<()> {
    let md = fs::metadata(dir)?;
    let me = crate::sys::effective_uid();
    if md.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is owned by uid {}, not by us (uid {me}); refusing to serve there", dir.display(), md.uid()),
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by group or others (mode {:o}); refusing to serve there",
                dir.display(),
                md.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

fn accept_loop(listener: UnixListener, hub: ControlHub, shutdown: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !shutdown.load(Ordering::Relaxed) {
        match wait_readable(&listener, POLL_INTERVAL) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("control socket poll: {e}");
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                continue;
            }
        };
        if let Err(e) = peer_allowed(&stream) {
            tracing::warn!("control socket: refused a client: {e}");
            let _ = reply_once(&stream, &format!("permission denied: {e}"));
            continue;
        }
        if active.load(Ordering::Relaxed) >= MAX_CLIENTS {
            let _ = reply_once(&stream, "too many control clients; try again");
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (hub, shutdown, active) = (hub.clone(), shutdown.clone(), active.clone());
        let spawned = std::thread::Builder::new().name("xdptcp-ctl-client".into()).spawn(move || {
            if let Err(e) = serve_client(stream, &hub, &shutdown) {
                tracing::debug!("control client: {e}");
            }
            active.fetch_sub(1, Ordering::Relaxed);
        });
        if let Err(e) = spawned {
            tracing::warn!("control socket: cannot start a client thread: {e}");
        }
    }
}

fn reply_once(stream: &UnixStream, message: &str) -> io::Result<()> {
    let mut s = stream;
    s.set_nonblocking(false)?;
    s.set_write_timeout(Some(Duration::from_millis(200)))?;
    write_response(&mut s, &Response::Error { message: message.into() })
}

/// Root, or the user the server runs as (tests, unprivileged labs). The socket's 0600 mode already keeps others
/// out; this also covers a socket file whose mode someone loosened.
fn peer_allowed(stream: &UnixStream) -> io::Result<()> {
    let cred = crate::sys::peer_cred(stream)?;
    if trusted_uid(cred.uid) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("uid {} (pid {})", cred.uid, cred.pid)))
    }
}

/// Root or our own effective uid: the only peers either side of the control socket trusts.
pub(super) fn trusted_uid(uid: u32) -> bool {
    uid == 0 || uid == crate::sys::effective_uid()
}

fn write_response(w: &mut impl Write, r: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

/// Reads one request line, at most [`MAX_REQUEST_LINE`] bytes. `None` at end of stream or shutdown.
fn read_request_line(r: &mut BufReader<UnixStream>, shutdown: &AtomicBool) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        if shutdown.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(None);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > MAX_REQUEST_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request line too long"));
        }
        if done {
            return Ok(Some(line));
        }
    }
}

fn serve_client(stream: UnixStream, hub: &ControlHub, shutdown: &AtomicBool) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(POLL_INTERVAL))?;
    stream.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = BufWriter::new(stream);
    while let Some(line) = read_request_line(&mut reader, shutdown)? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let request = match serde_json::from_slice::<Request>(&line) {
            Ok(r) => r,
            Err(e) => {
                write_response(&mut out, &Response::Error { message: format!("bad request: {e}") })?;
                out.flush()?;
                continue;
            }
        };
        if let Request::Capture { filter, snaplen, count, duration_ms } = request {
            let limits = CaptureLimits { count, duration: duration_ms.map(Duration::from_millis), max_bytes: None };
            let out = out.into_inner().map_err(|e| e.into_error())?;
            return serve_capture(reader, out, hub, shutdown, &filter, snaplen, limits);
        }
        answer(request, hub, &mut out)?;
        out.flush()?;
    }
    Ok(())
}

fn answer(request: Request, hub: &ControlHub, out: &mut BufWriter<UnixStream>) -> io::Result<()> {
    let error = |message: String| Response::Error { message };
    let settings = |r: Result<Vec<super::Setting>, super::HubError>| match r {
        Ok(s) => Response::Settings(s),
        Err(e) => error(e.to_string()),
    };
    let response = match request {
        Request::Counters { fresh } => {
            let (counters, workers) = if fresh { hub.fresh() } else { hub.published() };
            Response::Counters { counters: counters_to_pairs(&counters), workers }
        }
        Request::List { states, filter, info } => {
            let filter = match SsFilter::parse(&filter) {
                Ok(f) => f,
                Err(e) => return write_response(out, &error(e.to_string())),
            };
            let sink = std::cell::RefCell::new(&mut *out);
            let count = hub.list(
                StateSet::from_bits(states),
                filter,
                info,
                &mut |rec| write_response(&mut **sink.borrow_mut(), &Response::Sock(rec)),
                &mut |e| write_response(&mut **sink.borrow_mut(), &Response::Warning { message: e.to_string() }),
            )?;
            Response::End { count }
        }
        Request::SysctlGet { name } => settings(hub.sysctl_get(&name).map(|s| vec![s])),
        Request::SysctlList => settings(hub.sysctl_list()),
        Request::SysctlSet { name, value } => settings(hub.sysctl_set(&name, &value).map(|s| vec![s])),
        Request::Log { filter } => {
            let parsed = match filter.as_deref().map(SsFilter::parse).transpose() {
                Ok(f) => f,
                Err(e) => return write_response(out, &error(e.to_string())),
            };
            match hub.set_log(parsed) {
                Ok(n) => {
                    match &filter {
                        Some(f) => {
                            tracing::debug!(target: "xdptcp::conn", "per-connection log on for `{f}` ({n} worker(s))")
                        }
                        None => tracing::debug!(target: "xdptcp::conn", "per-connection log off"),
                    }
                    Response::Log { filter, workers: n as u32 }
                }
                Err(e) => error(e.to_string()),
            }
        }
        Request::Capture { .. } => error("capture is handled by the connection loop".into()),
    };
    write_response(out, &response)
}

/// Length-prefixed frames of pcapng bytes on the client socket (see the module documentation).
struct FrameWriter {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl FrameWriter {
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&(self.buf.len() as u32).to_le_bytes())?;
        self.stream.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for FrameWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CAPTURE_FRAME {
            self.emit()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.emit()?;
        self.stream.flush()
    }
}

/// True while the client neither sent anything nor hung up (either ends the capture).
fn client_still_listening(stream: &UnixStream) -> bool {
    !crate::sys::readable_or_hung_up(stream)
}

fn serve_capture(
    reader: BufReader<UnixStream>,
    mut out: UnixStream,
    hub: &ControlHub,
    shutdown: &AtomicBool,
    filter: &str,
    snaplen: Option<u32>,
    limits: CaptureLimits,
) -> io::Result<()> {
    let filter = match CaptureFilter::parse(filter) {
        Ok(f) => f,
        Err(e) => return write_response(&mut out, &Response::Error { message: e.to_string() }),
    };
    let guard = match hub.start_capture(filter, snaplen.unwrap_or(DEFAULT_SNAPLEN)) {
        Ok(g) => g,
        Err(e) => return write_response(&mut out, &Response::Error { message: e.to_string() }),
    };
    for missing in &guard.missing {
        write_response(&mut out, &Response::Warning { message: format!("not capturing: {missing}") })?;
    }
    let workers = hub.worker_count() as u32;
    write_response(&mut out, &Response::CaptureStarted { workers, snaplen: guard.capture().snaplen() })?;
    let probe = reader.into_inner();
    let mut keep_going = || !shutdown.load(Ordering::Relaxed) && client_still_listening(&probe);
    let frames = FrameWriter { stream: out, buf: Vec::with_capacity(CAPTURE_FRAME + 4096) };
    let (summary, mut frames) = guard.capture().write_pcapng(frames, limits, &mut keep_going).map_err(|e| match e {
        super::capture::CaptureError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    })?;
    drop(guard);
    frames.flush()?;
    frames.stream.write_all(&0u32.to_le_bytes())?;
    write_response(&mut frames.stream, &Response::CaptureDone(summary))?;
    frames.stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xdptcp-srv-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Review L13: a socket directory others may write is refused; ours with 0755 is fine.
    #[test]
    fn a_shared_socket_directory_is_refused() {
        let dir = scratch("dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = ControlServer::bind(ServerConfig::at(dir.join("x.sock"))).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        drop(ControlServer::bind(ServerConfig::at(dir.join("x.sock"))).expect("ours, not shared"));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Review L13: the client refuses a socket served by another user (a squatter), by SO_PEERCRED.
    #[test]
    fn the_client_refuses_a_server_of_another_user() {
        // SAFETY: geteuid cannot fail.
        if !crate::sys::is_root() || !Path::new("/usr/bin/python3").exists() {
            eprintln!("skipped: needs root and /usr/bin/python3 to run a listener as another user");
            return;
        }
        let dir = scratch("squat");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let sock = dir.join("x.sock");
        let script = format!(
            "import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind({:?})\ns.listen()\ntime.sleep(20)",
            sock.to_str().unwrap()
        );
        let mut child = std::process::Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3", "-c", &script])
            .spawn()
            .expect("setpriv");
        for _ in 0..100 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let res = super::super::Client::connect(&sock);
        let _ = child.kill();
        let _ = child.wait();
        let _ = fs::remove_dir_all(&dir);
        match res {
            Err(super::super::ClientError::Untrusted { uid, .. }) => assert_eq!(uid, 65534),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("talked to another user's server"),
        }
    }
}
