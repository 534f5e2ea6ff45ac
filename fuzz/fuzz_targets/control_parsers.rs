//! See `xdptcp::fuzz::control_parsers` for what is fed and what is checked; `tests/fuzz_smoke.rs` runs the same body in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xdptcp::fuzz::control_parsers(data));
