#!/usr/bin/env bash
# System packages xdptcp needs on Debian/Ubuntu. Idempotent: installs only what is missing.
#   build: clang/llvm compile the XDP program (libbpf-cargo); libelf, zlib and libpcap are linked by the vendored
#          libbpf and libxdp (xsk-rs builds libxdp, whose configure insists on libpcap headers); m4/make/pkg-config
#          drive those builds; libclang for bindgen.
#   lab and its tests: iproute2 (ip, tc), ethtool, ping, curl, python3, tcpdump (reads our pcapng files back);
#          wrk and nginx for `xdptcp demo` and the kernel side of the benchmark comparison.
set -eu
packages="clang llvm libclang-dev libelf-dev zlib1g-dev libpcap-dev m4 make pkg-config binutils
          iproute2 ethtool iputils-ping curl python3 tcpdump wrk nginx-light"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
