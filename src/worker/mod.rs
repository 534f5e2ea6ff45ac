//! Per-queue run-to-completion worker. TODO
