//! `--pcap FILE` on `xdptcp serve` and `xdptcp bench`: every frame of the whole run into one pcapng file, through
//! the same per-worker lock-free rings as `xdptcp capture` (a full ring is a counted drop, never a stall), written
//! by a thread of its own. Independent of the on-demand capture: `xdptcp capture` still works during a run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::capture::{Capture, CaptureError, CaptureLimits};
use super::filter::CaptureFilter;
use super::protocol::CaptureSummary;
use super::worker::{ControlHub, WorkerControl};
use crate::time::Instant;

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
        let file = File::create(path)?;
        let capture = Arc::new(hub.file_capture(filter, snaplen));
        let writer = {
            let capture = capture.clone();
            std::thread::Builder::new().name("xdptcp-pcap".into()).spawn(move || {
                let out = BufWriter::with_capacity(1 << 20, file);
                let (summary, mut out) = capture.write_pcapng(out, CaptureLimits::default(), &mut || true)?;
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
