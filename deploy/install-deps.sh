#!/usr/bin/env bash
# Installs the system packages xdptcp needs to build (clang for the XDP program, libelf/zlib for libbpf) and to
# run its tests (iproute2/ethtool for the veth lab, curl/wrk/python3/hping3/tcpdump/nginx for the kernel-side peers).
# Idempotent: installs only what is missing.
set -euo pipefail
packages=(clang llvm libclang-dev libelf-dev zlib1g-dev m4 make pkg-config binutils iproute2 ethtool
          curl python3 iperf3 hping3 tcpdump wrk nginx-light)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
