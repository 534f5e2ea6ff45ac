#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) one after another and prints each one's verdict.
# Usage: fuzz/run-all.sh [SECONDS]
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
status=0
for t in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v xdptcp-fuzz); do
  mkdir -p "corpus/$t"
  seeds=""; [ -d "seeds/$t" ] && seeds="seeds/$t"
  if RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" $seeds -- -jobs=1 -max_total_time="$secs" > "/tmp/fuzz-$t.log" 2>&1; then
    echo "$t: $(grep -h -o 'Done [0-9]* runs in [0-9]* second(s)' /tmp/fuzz-$t.log fuzz-*.log 2>/dev/null | tail -1), no crash"
  else
    echo "$t: FAILED (see /tmp/fuzz-$t.log and artifacts/$t)"; status=1
  fi
done
exit $status
