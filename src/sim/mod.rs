//! Deterministic network simulator. TODO
