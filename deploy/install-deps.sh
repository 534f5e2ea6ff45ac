#!/bin/sh
# System packages xdptcp needs on Debian/Ubuntu.
#   build: clang/llvm compile the XDP program (libbpf-cargo); libelf, zlib and libpcap are linked by the vendored
#          libbpf and libxdp (xsk-rs builds libxdp, whose configure insists on libpcap headers); m4/make/pkg-config
#          drive those builds; libclang for bindgen.
#   lab and its tests: iproute2 (ip, tc), ethtool, ping, curl, python3; wrk for `xdptcp demo` (optional).
set -eu
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    clang llvm libclang-dev libelf-dev zlib1g-dev libpcap-dev m4 make pkg-config \
    iproute2 ethtool iputils-ping curl python3 wrk
