//! The TCP engine against a hostile peer: `xdptcp::tcp::hostile::run`, which also runs as a unit property test.
//! Beyond "no panic" it checks protocol invariants after every step (sequence variables ordered, receive memory
//! what was received, no data or TS.Recent from a segment with an unacceptable ACK, each byte delivered once and in
//! order); see that module's doc.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xdptcp::tcp::hostile::run(data);
});
