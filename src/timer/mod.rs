//! A hierarchical hashed timer wheel: O(1) insert and cancel, expiry work proportional to what expires.
//!
//! Owns: deadlines and the values attached to them. Must not touch: connections or the clock (time is passed in).
//! TODO(timer helper): implement.
