#!/usr/bin/env bash
# The README's test command: every test (unit, property, simulator, and as root the AF_XDP veth lab), then one
# closing summary line over all test binaries.
set -uo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --release --no-fail-fast -- --test-threads=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The lock-free protocols (ring cursor, doorbell, app-thread parking) under loom: every interleaving. Only the small
# xdptcp-sync crate is built with --cfg loom, in a target folder of its own so the main build is not invalidated.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
    cargo test --release -p xdptcp-sync --test loom 2>&1 | tee -a "$log"
loom_status=${PIPESTATUS[0]}
cargo test --release -p xdptcp-sync 2>&1 | tee -a "$log"
sync_status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && status=$loom_status
[ "$status" -eq 0 ] && status=$sync_status
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "all tests: ${passed} passed, ${failed} failed"
exit "$status"
