//! `--pcap FILE` on `xdptcp serve` and `xdptcp bench`: every frame of the whole run into one pcapng file, through
//! the same per-worker lock-free rings as `xdptcp capture` (a full ring is a counted drop, never a stall), written
//! by a thread of its own. Independent of the on-demand capture: `xdptcp capture` still works during a run.
//!
//! Capture files hold payloads and are written by root: they are created fresh (never truncating or following a
//! symlink an unprivileged user planted) with mode 0600, and the whole-run file stops growing at a size cap
//! (review L12).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::capture::{Capture, CaptureError, CaptureLimits};
use super::filter::CaptureFilter;
use super::protocol::CaptureSummary;
use super::worker::{ControlHub, WorkerControl};
use crate::time::Instant;

/// Default `--pcap-max-bytes`: packet blocks stop being written past about this size.
pub const DEFAULT_PCAP_MAX_BYTES: u64 = 1 << 30;

/// Creates a capture file that did not exist (`O_EXCL`: an existing file or symlink is an error, nothing is
/// followed or truncated), readable by its owner only.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// A running whole-run capture; [`PcapFile::finish`] ends it after the workers stopped.
pub struct PcapFile {
    capture: Arc<Capture>,
    writer: Option<JoinHandle<Result<CaptureSummary, CaptureError>>>,
    path: PathBuf,
}

impl PcapFile {
    /// Creates `path` and starts the writer for every worker registered with `hub` so far; then give each worker's
    /// control its tap with [`PcapFile::attach`] before the worker runs.
    pub fn create(path: &Path, hub: &ControlHub, filter: CaptureFilter, snaplen: u32) -> std::io::Result<PcapFile> {
        Self::create_capped(path, hub, filter, snaplen, DEFAULT_PCAP_MAX_BYTES)
    }

    /// [`PcapFile::create`] with packet blocks capped at about `max_bytes` (later frames are counted, not written).
    pub fn create_capped(
        path: &Path,
        hub: &ControlHub,
        filter: CaptureFilter,
        snaplen: u32,
        max_bytes: u64,
    ) -> std::io::Result<PcapFile> {
        let file = create_private(path)?;
        let capture = Arc::new(hub.file_capture(filter, snaplen));
        let writer = {
            let capture = capture.clone();
            std::thread::Builder::new().name("xdptcp-pcap".into()).spawn(move || {
                let out = BufWriter::with_capacity(1 << 20, file);
                let limits = CaptureLimits { max_bytes: Some(max_bytes), ..Default::default() };
                let (summary, mut out) = capture.write_pcapng(out, limits, &mut || true)?;
                out.flush()?;
                Ok(summary)
            })?
        };
        Ok(PcapFile { capture, writer: Some(writer), path: path.to_path_buf() })
    }

    /// Installs the tap of worker `control` (`now`: the worker's clock, for the file's timestamps).
    pub fn attach(&self, control: &mut WorkerControl, now: Instant) {
        if let Some(tap) = self.capture.tap(control.index() as usize, now) {
            control.set_file_tap(tap);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops capturing, writes what the rings still hold and the statistics blocks, closes the file.
    pub fn finish(mut self) -> Result<CaptureSummary, CaptureError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<CaptureSummary, CaptureError> {
        self.capture.stop();
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(CaptureError::Io(std::io::Error::other("the pcap writer thread panicked"))),
            None => Ok(self.capture.summary(0)),
        }
    }
}

impl Drop for PcapFile {
    fn drop(&mut self) {
        // An error path that never called finish still leaves a complete file.
        let _ = self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Review L12: a fresh file, mode 0600; an existing file or a planted symlink is refused, never truncated.
    #[test]
    fn capture_files_are_private_and_never_follow_or_truncate() {
        let dir = std::env::temp_dir().join(format!("xdptcp-pcapfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fresh = dir.join("fresh.pcapng");
        drop(create_private(&fresh).unwrap());
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.join("link.pcapng");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_private(&link).is_err(), "a symlink is not followed");
        assert!(create_private(&victim).is_err(), "an existing file is not truncated");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
