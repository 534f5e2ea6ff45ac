#!/usr/bin/env python3
"""One byte at the right edge of the server's receive window, on many connections (tests/lab_ooo_memory.rs,
review H1).

Opens COUNT kernel TCP connections to HOST:PORT. For each, reads the kernel's SND.NXT and RCV.NXT with TCP_REPAIR
(leaving repair mode at once, without a window probe) and the server's window from TCP_INFO (tcpi_snd_wnd), then
sends one byte at SND.NXT + window - 1 through a raw socket with the connection's own addresses and ports. The
kernel socket stays open, so the server's duplicate ACKs find a socket and draw no RST. Timestamps are switched off
in this namespace first so the forged byte needs no TS option.

Prints one JSON line ({"opened", "sent", "failed"}), then holds the connections until stdin closes (at most
MAX_SECONDS), then aborts them (RST). Refuses to run outside a named lab namespace or to aim outside 198.18.0.0/15.
"""

import argparse
import ipaddress
import json
import os
import resource
import select
import socket
import struct
import sys

LAB_NET = ipaddress.ip_network("198.18.0.0/15")
MAX_SECONDS = 120.0
MAX_COUNT = 20000
TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ = 19, 20, 21
TCP_RECV_QUEUE, TCP_SEND_QUEUE = 1, 2
TCP_REPAIR_OFF_NO_WP = -1
TCPI_SND_WND = 228  # offset of tcpi_snd_wnd in struct tcp_info (Linux 5.4+)


def named_netns():
    try:
        mine = os.stat("/proc/self/ns/net")
        names = os.listdir("/run/netns")
    except OSError:
        return None
    for name in sorted(names):
        try:
            st = os.stat(os.path.join("/run/netns", name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            return name
    return None


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def segment(src, sport, dst, dport, seq, ack, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, 0x10, 512, 0, 0)
    tcp += payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def queue_seq(s, queue):
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, queue)
    return s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ) & 0xFFFFFFFF


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    a = p.parse_args()
    if ipaddress.ip_address(a.host) not in LAB_NET:
        sys.exit("refusing: %s is not a lab address" % a.host)
    if named_netns() is None:
        sys.exit("refusing: run me inside a lab network namespace (ip netns exec NS ...)")
    count = min(a.count, MAX_COUNT)
    with open("/proc/sys/net/ipv4/tcp_timestamps", "w") as f:
        f.write("0")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, _soft), max(want, hard)))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    conns, sent, failed = [], 0, 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5.0)
        try:
            s.connect((a.host, a.port))
        except OSError:
            failed += 1
            s.close()
            continue
        conns.append(s)
        try:
            s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
            snd_nxt = queue_seq(s, TCP_SEND_QUEUE)
            rcv_nxt = queue_seq(s, TCP_RECV_QUEUE)
            s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP)
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            (wnd,) = struct.unpack_from("I", info, TCPI_SND_WND)
            if wnd == 0:
                failed += 1
                continue
            (src, sport), (dst, dport) = s.getsockname(), s.getpeername()
            raw.sendto(segment(src, sport, dst, dport, snd_nxt + wnd - 1, rcv_nxt, b"x"), (dst, 0))
            sent += 1
        except OSError as e:
            print("ooo_edge.py: %s" % e, file=sys.stderr)
            failed += 1
    print(json.dumps({"opened": len(conns), "sent": sent, "failed": failed}), flush=True)
    select.select([sys.stdin], [], [], MAX_SECONDS)
    for s in conns:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


if __name__ == "__main__":
    main()
