#!/usr/bin/env python3
"""SYN flood, legitimate client and Linux echo server for the xdptcp lab's SYN-flood test (tests/lab_synflood.rs).

Subcommands:
  flood   raw-socket (IP_HDRINCL) TCP SYNs to one lab address and port, at a paced rate for a bounded time, with
          random source ports, ISNs and timestamps, typical Linux SYN options (MSS, SACK-permitted, TS, NOP, WS) and
          valid IP and TCP checksums. Source addresses are spoofed from 198.18.128.0/17 ONLY: the test blackholes that
          prefix in the lab's router, so the SYN-ACKs die inside the lab. Refuses to run in the initial network
          namespace, to aim outside 198.18.0.0/15, or to spoof anything outside 198.18.128.0/17.
  client  legitimate kernel-socket clients: paced connections, each connect + a small echo round trip + close,
          recording success and connect latency.
  server  a kernel (Linux TCP) echo server on one address and port, one selector loop, bounded lifetime.

Each prints one JSON line with its outcome on stdout (the server prints "ready" on stderr once it listens).
"""

import argparse
import errno
import ipaddress
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time

LAB_NET = ipaddress.ip_network("198.18.0.0/15")
SPOOF_NET = ipaddress.ip_network("198.18.128.0/17")
MAX_SECONDS = 120.0
MAX_RATE = 1_000_000


def named_netns():
    """The name of the `ip netns` namespace this process runs in, or None when it is in none of them (for example
    the host's own namespace). A named namespace is a bind mount of the nsfs inode under /run/netns."""
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


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def word_sum(b):
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


# --------------------------------------------------------------------------------------------------------- flood


class SynTemplate:
    """A Linux-like SYN (IPv4 20 + TCP 20 + options 20: MSS 1460, SACK-permitted, TS, NOP, WS 7) whose per-packet
    fields (source address, source port, ISN, TSval) are written in place. The checksums of the constant parts are
    computed once; per packet the variable 16-bit words are added in (RFC 1071 sums are order-free)."""

    TS_OFF = 20 + 20 + 8  # TSval: after the fixed TCP header, MSS (4), SACK-permitted (2), TS kind and length (2)

    def __init__(self, dst_packed, dport):
        options = b"\x02\x04\x05\xb4" + b"\x04\x02" + b"\x08\x0a" + b"\0" * 8 + b"\x01\x03\x03\x07"
        tcp_len = 20 + len(options)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, 0, 0x4000, 64, socket.IPPROTO_TCP, 0, b"\0" * 4,
                         dst_packed)
        tcp = struct.pack("!HHIIBBHHH", 0, dport, 0, 0, (tcp_len // 4) << 4, 0x02, 64240, 0, 0) + options
        self.pkt = bytearray(ip + tcp)
        self.ip_const = word_sum(ip)
        self.tcp_const = word_sum(dst_packed + struct.pack("!BBH", 0, socket.IPPROTO_TCP, tcp_len)) + word_sum(tcp)
        self.dport = dport

    def fill(self, src, sport, seq, tsval):
        hi, lo = src >> 16, src & 0xFFFF
        tcp_sum = self.tcp_const + hi + lo + sport + (seq >> 16) + (seq & 0xFFFF) + (tsval >> 16) + (tsval & 0xFFFF)
        pkt = self.pkt
        struct.pack_into("!HI", pkt, 10, ~fold(self.ip_const + hi + lo) & 0xFFFF, src)
        struct.pack_into("!HHI", pkt, 20, sport, self.dport, seq)
        struct.pack_into("!H", pkt, 36, ~fold(tcp_sum) & 0xFFFF)
        struct.pack_into("!I", pkt, self.TS_OFF, tsval)
        return pkt


def flood(a):
    dst = ipaddress.ip_address(a.dst)
    src_net = ipaddress.ip_network(a.src_net)
    if dst not in LAB_NET:
        sys.exit("refusing: %s is not a lab address (198.18.0.0/15)" % dst)
    if not src_net.subnet_of(SPOOF_NET):
        sys.exit("refusing: spoofed sources %s are not inside %s" % (src_net, SPOOF_NET))
    if dst in SPOOF_NET:
        sys.exit("refusing: the target %s is inside the spoofed range" % dst)
    netns = named_netns()
    if netns is None:
        sys.exit("refusing: run me inside a lab network namespace (ip netns exec NS ...)")
    if not (0 < a.duration <= MAX_SECONDS) or not (0 < a.rate <= MAX_RATE):
        sys.exit("refusing: duration must be in (0, %d] s and rate in (0, %d] pps" % (MAX_SECONDS, MAX_RATE))
    # Hosts of the spoofed prefix without its network and broadcast addresses.
    base = int(src_net.network_address)
    hosts = src_net.num_addresses - 2
    if hosts < 1:
        sys.exit("refusing: %s has no host addresses" % src_net)

    tmpl = SynTemplate(dst.packed, a.dport)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IPPROTO_RAW implies IP_HDRINCL
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    dest = (str(dst), 0)

    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))

    getrandbits = random.Random(a.seed).getrandbits
    fill = tmpl.fill
    sendto = s.sendto
    slots = 0  # packets due so far (sent or refused by the local stack)
    send_errors = {}
    start = time.monotonic()
    end = start + a.duration
    while not stop[0]:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * a.rate) - slots
        if due <= 0:
            time.sleep(min(0.001, end - now))
            continue
        for _ in range(min(due, 64)):
            r = getrandbits(96)
            slots += 1
            pkt = fill(base + 1 + (r & 0x7FFF) % hosts, 1024 + ((r >> 15) & 0xFFFF) % 64512,
                       (r >> 31) & 0xFFFFFFFF, (r >> 63) & 0xFFFFFFFF)
            try:
                sendto(pkt, dest)
            except OSError as e:
                # ENOBUFS and the like: the local stack is full. Counted, not retried (it is a flood).
                name = errno.errorcode.get(e.errno, str(e.errno))
                send_errors[name] = send_errors.get(name, 0) + 1
                break
    elapsed = time.monotonic() - start
    sent = slots - sum(send_errors.values())
    print(json.dumps({
        "target_pps": a.rate,
        "sent": sent,
        "send_errors": send_errors,
        "elapsed": round(elapsed, 3),
        "achieved_pps": round(sent / elapsed, 1) if elapsed > 0 else 0.0,
        "src_net": str(src_net),
        "dst": "%s:%d" % (dst, a.dport),
        "netns": netns,
    }), flush=True)


def selftest_packet():
    """Checks SynTemplate's incremental checksums against from-scratch RFC 1071 sums (synflood.py selftest)."""
    rng = random.Random(7)
    tmpl = SynTemplate(ipaddress.ip_address("198.18.0.1").packed, 7)
    for _ in range(2000):
        src = int(SPOOF_NET.network_address) + 1 + rng.randrange(32766)
        sport, seq, tsval = rng.randrange(1024, 65536), rng.getrandbits(32), rng.getrandbits(32)
        pkt = bytes(tmpl.fill(src, sport, seq, tsval))
        ip, tcp = pkt[:20], pkt[20:]
        assert fold(word_sum(ip)) == 0xFFFF, "IPv4 header checksum"
        pseudo = ip[12:20] + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
        assert fold(word_sum(pseudo + tcp)) == 0xFFFF, "TCP checksum"
        assert struct.unpack("!I", ip[12:16])[0] == src and ipaddress.ip_address(ip[12:16]) in SPOOF_NET
        assert struct.unpack("!HHI", tcp[:8]) == (sport, 7, seq)
        assert tcp[13] == 0x02 and tcp[12] >> 4 == 10, "a bare SYN with 40 bytes of header"
        assert tcp[20:28] == b"\x02\x04\x05\xb4\x04\x02\x08\x0a", "MSS, SACK-permitted, TS"
        assert struct.unpack("!II", tcp[28:36]) == (tsval, 0) and tcp[36:40] == b"\x01\x03\x03\x07", "TS, WS"
    print(json.dumps({"selftest": "ok"}))


# -------------------------------------------------------------------------------------------------------- client


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def client(a):
    if ipaddress.ip_address(a.host) not in LAB_NET:
        sys.exit("refusing: %s is not a lab address" % a.host)
    if not (0 < a.duration <= MAX_SECONDS):
        sys.exit("refusing: duration must be in (0, %d] s" % MAX_SECONDS)
    lock = threading.Lock()
    results = []  # (ok, connect_ms or None, total_ms, error)
    start = time.monotonic()
    end = start + a.duration
    interval = a.lanes / a.rate  # each lane's share of the aggregate rate

    def one(rng):
        payload = rng.randbytes(a.payload)
        t0 = time.perf_counter()
        connect_ms = None
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(a.connect_timeout)
            s.connect((a.host, a.port))
            connect_ms = (time.perf_counter() - t0) * 1000.0
            s.settimeout(a.io_timeout)
            s.sendall(payload)
            got = bytearray()
            while len(got) < len(payload):
                chunk = s.recv(len(payload) - len(got))
                if not chunk:
                    return (False, connect_ms, None, "early EOF")
                got += chunk
            if bytes(got) != payload:
                return (False, connect_ms, None, "echo mismatch")
            return (True, connect_ms, (time.perf_counter() - t0) * 1000.0, None)
        except socket.timeout:
            return (False, connect_ms, None, "connect timeout" if connect_ms is None else "echo timeout")
        except OSError as e:
            return (False, connect_ms, None, errno.errorcode.get(e.errno, str(e)))
        finally:
            s.close()

    def lane(i):
        rng = random.Random(a.seed * 1_000_003 + i)
        next_start = start + (i / a.lanes) * interval
        while next_start < end:
            now = time.monotonic()
            if now < next_start:
                time.sleep(next_start - now)
            r = one(rng)
            with lock:
                results.append(r)
            # Paced, not closed-loop. A lane that fell behind (a slow connect) starts its next connection at once
            # but does not burst to catch up.
            next_start = max(next_start + interval, time.monotonic())

    threads = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(a.lanes)]
    for t in threads:
        t.start()
    # One deadline for everything, so a report always comes even on a starved machine: a connection still running
    # by then (its own timeouts have long passed) counts as a failure.
    deadline = end + a.connect_timeout + a.io_timeout + 2.0
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - start

    with lock:
        res = list(results)
    res += [(False, None, None, "unfinished at deadline")] * sum(1 for t in threads if t.is_alive())
    ok = [r for r in res if r[0]]
    errors = {}
    for r in res:
        if not r[0]:
            errors[r[3]] = errors.get(r[3], 0) + 1
    connect = sorted(r[1] for r in res if r[1] is not None)
    rnd = lambda v: None if v is None else round(v, 3)
    out = {
        "attempts": len(res),
        "ok": len(ok),
        "success_pct": round(100.0 * len(ok) / len(res), 2) if res else 0.0,
        "errors": errors,
        "connected": len(connect),
        "connect_ms_p50": rnd(percentile(connect, 50)),
        "connect_ms_p99": rnd(percentile(connect, 99)),
        "connect_ms_max": rnd(connect[-1] if connect else None),
        # Connects that took a SYN retransmission (the first retry is at 1 s).
        "connect_over_900ms": sum(1 for c in connect if c > 900.0),
        "elapsed": round(elapsed, 3),
    }
    print(json.dumps(out), flush=True)
    os._exit(0)  # do not wait for lanes stuck past the deadline (daemon threads in blocking calls)


# -------------------------------------------------------------------------------------------------------- server


def server(a):
    if ipaddress.ip_address(a.addr) not in LAB_NET:
        sys.exit("refusing: %s is not a lab address" % a.addr)
    if named_netns() is None:
        sys.exit("refusing: run me inside a lab network namespace (ip netns exec NS ...)")
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.addr, a.port))
    ls.listen(a.backlog)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    accepted = 0
    conns = 0
    print("synflood.py server: echo on %s:%d backlog %d, ready" % (a.addr, a.port, a.backlog), file=sys.stderr,
          flush=True)
    deadline = time.monotonic() + a.max_seconds
    while not stop[0] and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            if key.data is None:
                for _ in range(64):
                    try:
                        c, _peer = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, bytearray())
                    accepted += 1
                    conns += 1
                continue
            c, pending = key.fileobj, key.data
            try:
                data = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(c)
                c.close()
                conns -= 1
                continue
            try:
                # Small request/response: the reply fits the send buffer; a short write closes the connection.
                if c.send(data) != len(data):
                    raise OSError("short write")
            except OSError:
                sel.unregister(c)
                c.close()
                conns -= 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    print(json.dumps({"accepted": accepted}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("flood")
    f.add_argument("--dst", required=True)
    f.add_argument("--dport", type=int, required=True)
    f.add_argument("--rate", type=float, required=True, help="SYNs per second")
    f.add_argument("--duration", type=float, required=True, help="seconds")
    f.add_argument("--src-net", default=str(SPOOF_NET))
    f.add_argument("--seed", type=int, default=1)

    c = sub.add_parser("client")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--rate", type=float, default=200.0, help="connections per second, all lanes together")
    c.add_argument("--lanes", type=int, default=8)
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--connect-timeout", type=float, default=3.5)
    c.add_argument("--io-timeout", type=float, default=2.0)
    c.add_argument("--payload", type=int, default=64)
    c.add_argument("--seed", type=int, default=1)

    s = sub.add_parser("server")
    s.add_argument("--addr", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--backlog", type=int, default=128)
    s.add_argument("--max-seconds", type=float, default=MAX_SECONDS)

    sub.add_parser("selftest")

    a = ap.parse_args()
    if a.cmd == "flood":
        flood(a)
    elif a.cmd == "client":
        client(a)
    elif a.cmd == "server":
        server(a)
    else:
        selftest_packet()


if __name__ == "__main__":
    main()
