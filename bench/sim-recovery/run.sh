#!/usr/bin/env bash
# Simulator figures for loss recovery and congestion control (issue 14): completion time (virtual), retransmitted
# segments and RTOs for a 10 MB transfer, NewReno with the old recovery ("before") vs CUBIC + HyStart++ + RFC 6675
# SACK recovery + PRR + tail loss probes ("after"). Deterministic (fixed seed); writes results.md beside this script.
# Usage: bench/sim-recovery/run.sh [path/to/xdptcp]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target/release/xdptcp}
before=(--set tcp_congestion_control=reno --set tcp_sack_recovery=0 --set tcp_early_retrans=0)
after=()

run() { # args...: prints "time retrans rtos"
    "$bin" sim --scenario transfer --seed 42 --counters "$@" 2>&1 | awk '
        /^virtual time/ {t=$3} /^Tcp:RetransSegs/ {r+=$2} /^TcpExt:TCPTimeouts/ {o+=$2} /MATCH/ {ok=1}
        END {printf "%.2f %d %d %s\n", t, r, o, ok ? "ok" : "SHA-MISMATCH"}'
}

row() { # label, args...
    local label=$1; shift
    read -r tb rb ob okb <<<"$(run "$@" "${before[@]}")"
    read -r ta ra oa oka <<<"$(run "$@" "${after[@]}")"
    printf '| %s | %s s | %s | %s | %s s | %s | %s |\n' "$label" "$tb" "$rb" "$ob" "$ta" "$ra" "$oa"
    [[ $okb == ok && $oka == ok ]] || echo "| ^ data mismatch: $okb / $oka |"
}

{
    echo "# sim-recovery: NewReno (before) vs CUBIC+HyStart++ / SACK recovery+PRR / TLP (after)"
    echo
    echo "\`$(basename "$bin") sim --scenario transfer --seed 42\`, 10 MB unless noted; loss/reorder in both directions."
    echo
    echo "| path | before: time | retrans | RTOs | after: time | retrans | RTOs |"
    echo "|---|---|---|---|---|---|---|"
    for loss in 0.001 0.01 0.05 0.15; do
        for reorder in 0 0.03; do
            row "100 Mbit/s, 20 ms RTT, loss $loss, reorder $reorder" \
                --bytes 10000000 --bandwidth 100 --delay 10 --loss $loss --reorder $reorder
        done
    done
    row "10 Mbit/s drop-tail bottleneck, 20 ms RTT, 5 MB" --bytes 5000000 --bandwidth 10 --delay 10
    row "30 % duplication" --bytes 10000000 --dup 0.3
    row "20 ms jitter, 10 ms delay" --bytes 10000000 --jitter 20 --delay 10
    row "issue headline: loss 15 %, reorder 15 %, dup 3 %, corrupt 2 %" \
        --bytes 10000000 --loss 0.15 --reorder 0.15 --dup 0.03 --corrupt 0.02
} | tee "$here/results.md"
