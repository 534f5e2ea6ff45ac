//! Applications: run-to-completion callbacks on engine events, on the worker thread, with no locks and no
//! allocation per event in the steady state; or (`threaded`) app logic on threads of its own, reached through
//! lock-free queues and rings by a bridge that is itself such a callback app.
//!
//! Owns: the apps, the app-thread API (`threaded`: [`Listener`](threaded::Listener),
//! [`Connection`](threaded::Connection), [`Poller`](threaded::Poller)) and its per-connection byte rings. Must not
//! touch: the engine's tables (apps use the `Engine` API), frames or rings of the AF_XDP layer, system calls (the
//! doorbells and parking are `xdptcp_sync`'s, the rest `sys`'s).
//!
//! Every app handles back-pressure the same way: it reads only when it has no unsent output, and when `send` takes
//! less than offered it keeps the rest and resumes on `Writable`. So a slow reader closes our receive window instead
//! of growing our memory.

use crate::tcp::{ConnId, Engine, Event};
use crate::time::Instant;

pub mod discard;
pub mod echo;
pub mod http;
pub mod threaded;

/// An application driven by engine events.
pub trait App: Send {
    /// Reacts to one event (accept, read, write, release handles).
    fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event);
    /// Starts an orderly shutdown: stop taking work, close every connection held (FIN after queued data).
    fn shutdown(&mut self, engine: &mut Engine, now: Instant);
    /// Connections whose handles the app still holds.
    fn connections(&self) -> usize;
    /// Called once per worker loop iteration, after events: lets a client app open connections and pace requests.
    fn on_tick(&mut self, _engine: &mut Engine, _now: Instant) {}
    /// A file descriptor the worker also polls while it sleeps (readable: the app has work for it); see `threaded`.
    fn wake_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// The worker is about to sleep in `poll()`; false if work arrived meanwhile (then it does not sleep).
    fn prepare_sleep(&mut self) -> bool {
        true
    }
    /// The worker is back from `poll()`.
    fn woke(&mut self) {}
}

/// Which app to run, with its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppSpec {
    /// Sends back every byte; half-close aware. `abort_after`: reset the connection (RST) once that many bytes
    /// were received (to exercise ECONNRESET in peers).
    Echo {
        /// Reset after this many bytes received (`None`: never).
        abort_after: Option<u64>,
    },
    /// Reads and drops everything; closes when the peer does.
    Discard,
    /// Answers every HTTP/1.x request with a small fixed body; keep-alive, pipelining.
    Http,
}

impl AppSpec {
    /// Its name on the command line (`--app NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            AppSpec::Echo { .. } => "echo",
            AppSpec::Discard => "discard",
            AppSpec::Http => "http",
        }
    }

    /// A fresh instance (one per worker).
    pub fn build(&self) -> Box<dyn App> {
        match self {
            AppSpec::Echo { abort_after } => Box::new(echo::Echo::new(*abort_after)),
            AppSpec::Discard => Box::new(discard::Discard::default()),
            AppSpec::Http => Box::new(http::Http::default()),
        }
    }
}

/// Accepts every pending connection of a listener, calling `f` for each.
pub(crate) fn accept_all(
    engine: &mut Engine,
    listener: crate::tcp::ListenerId,
    mut f: impl FnMut(&mut Engine, ConnId),
) {
    // Bounded by the accept queue, which the engine bounds.
    while let Ok(c) = engine.accept(listener) {
        f(engine, c);
    }
}

/// Scratch buffer size for reads.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
