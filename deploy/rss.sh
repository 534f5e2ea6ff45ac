#!/usr/bin/env bash
# Sets up a NIC's receive-side scaling for xdptcp's `--steering nic`: a symmetric Toeplitz key (0x6d5a repeated,
# so both directions of a flow hash alike), an equal indirection table over queues 0..N-1, and TCP/IPv4 hashing on
# addresses and ports (rx-flow-hash tcp4 sdfn). Then every flow lands on the queue xdptcp computes for it, and no
# packet is handed between workers. Serve queues 0..N-1 afterwards (`xdptcp serve --queues 0,...,N-1`).
#
# Usage: deploy/rss.sh [--dry-run] [--key-bytes K] IFACE N
#   --dry-run      print the commands instead of running them (no interface needed)
#   --key-bytes K  key length when the interface cannot be asked (dry run); default: what `ethtool -x` shows, else 40
set -euo pipefail

usage() {
    echo "usage: $0 [--dry-run] [--key-bytes K] IFACE N" >&2
    exit 2
}

dry=0
key_bytes=""
while [[ $# -gt 0 && "$1" == --* ]]; do
    case "$1" in
        --dry-run) dry=1; shift ;;
        --key-bytes) [[ $# -ge 2 ]] || usage; key_bytes="$2"; shift 2 ;;
        --help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; usage ;;
    esac
done
[[ $# -eq 2 ]] || usage
iface="$1"
n="$2"

# Interface names: at most 15 characters (IFNAMSIZ), no slashes or spaces; they end up in commands.
if ! [[ "$iface" =~ ^[A-Za-z0-9_.:-]{1,15}$ ]]; then
    echo "bad interface name: $iface" >&2
    exit 2
fi
if ! [[ "$n" =~ ^[0-9]+$ ]] || (( n < 1 || n > 1024 )); then
    echo "N must be a number of queues, 1..1024: $n" >&2
    exit 2
fi
if [[ -n "$key_bytes" ]] && { ! [[ "$key_bytes" =~ ^[0-9]+$ ]] || (( key_bytes < 2 || key_bytes > 256 || key_bytes % 2 )); }; then
    echo "--key-bytes must be an even number 2..256: $key_bytes" >&2
    exit 2
fi

if (( ! dry )); then
    command -v ethtool >/dev/null || { echo "ethtool is not installed (deploy/install-deps.sh)" >&2; exit 1; }
    [[ -d "/sys/class/net/$iface" ]] || { echo "no interface $iface" >&2; exit 1; }
    rxq=$(find "/sys/class/net/$iface/queues" -maxdepth 1 -name 'rx-*' | wc -l)
    if (( n > rxq )); then
        echo "$iface has $rxq receive queue(s), $n asked (ethtool -L $iface combined $n first)" >&2
        exit 1
    fi
    if [[ -z "$key_bytes" ]]; then
        # The key must be exactly as long as the driver's (40 bytes on most, 52 on i40e/ice).
        key_bytes=$(ethtool -x "$iface" | awk '/RSS hash key:/ {getline; print (length($0) + 1) / 3; exit}')
        [[ "$key_bytes" =~ ^[0-9]+$ ]] && (( key_bytes > 0 )) || key_bytes=40
    fi
fi
key_bytes=${key_bytes:-40}

key=""
for ((i = 0; i < key_bytes; i += 2)); do
    key+="${key:+:}6d:5a"
done

commands=(
    "ethtool -X $iface hkey $key equal $n hfunc toeplitz"
    "ethtool -N $iface rx-flow-hash tcp4 sdfn"
)

for c in "${commands[@]}"; do
    if (( dry )); then
        echo "$c"
    else
        echo "+ $c"
        # Split on spaces on purpose: every word was validated above.
        # shellcheck disable=SC2086
        $c
    fi
done

if (( dry )); then
    echo "# then: xdptcp serve --iface $iface --queues $(seq -s, 0 $((n - 1))) --steering nic ..."
else
    echo "set on $iface: symmetric Toeplitz key ($key_bytes bytes), equal indirection over queues 0..$((n - 1)), tcp4 sdfn"
    ethtool -x "$iface"
    ethtool -n "$iface" rx-flow-hash tcp4
    echo "now: xdptcp serve --iface $iface --queues $(seq -s, 0 $((n - 1))) --steering nic ..."
fi
