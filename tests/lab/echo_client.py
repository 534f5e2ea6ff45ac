#!/usr/bin/env python3
"""Echo test client on kernel sockets, for the xdptcp lab tests.

Opens N concurrent connections to an echo server, sends B bytes of seeded random data on each and checks that every
byte comes back in order. Non-blocking sockets in one selector loop; at most WINDOW bytes per connection are in
flight, so memory stays bounded whatever N and B are.

Modes:
  default        send everything, then read the full echo, then close.
  --half-close   shut the write side after sending everything and read the echo to EOF (which must arrive).
  --expect-reset the server resets each connection: success is ECONNRESET on every connection.

Prints one JSON line with the outcome; exit status 0 on success, 1 otherwise. Bounded by --timeout.
"""

import argparse
import errno
import json
import random
import selectors
import socket
import sys
import time

CHUNK = 16 * 1024
WINDOW = 128 * 1024


class Conn:
    def __init__(self, idx, total, seed):
        self.idx = idx
        self.rng = random.Random(seed * 1_000_003 + idx)
        self.total = total
        self.sent = 0
        self.generated = 0
        self.left = b""  # generated, not yet taken by the socket
        self.received = 0
        self.pending = bytearray()  # sent, not yet echoed back
        self.shut = False
        self.eof = False
        self.error = None
        self.sock = None
        self.connected = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--bytes", type=int, default=1 << 20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--half-close", action="store_true")
    ap.add_argument("--expect-reset", action="store_true")
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    sel = selectors.DefaultSelector()
    conns = []
    for i in range(a.conns):
        c = Conn(i, a.bytes, a.seed)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        try:
            s.connect((a.host, a.port))
        except BlockingIOError:
            pass
        except OSError as e:
            c.error = errno.errorcode.get(e.errno, str(e))
        c.sock = s
        conns.append(c)
        if c.error is None:
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    start = time.monotonic()
    deadline = start + a.timeout
    mismatches = 0
    open_count = sum(1 for c in conns if c.error is None)

    def finish(c, error=None):
        nonlocal open_count
        if error is not None and c.error is None:
            c.error = error
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        open_count -= 1

    while open_count > 0 and time.monotonic() < deadline:
        for key, mask in sel.select(timeout=0.5):
            c = key.data
            if c.sock.fileno() < 0:
                continue
            try:
                if not c.connected:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        finish(c, errno.errorcode.get(err, str(err)))
                        continue
                    c.connected = True
                if mask & selectors.EVENT_WRITE and not c.shut:
                    while True:
                        if not c.left:
                            if c.generated == c.total or len(c.pending) >= WINDOW:
                                break
                            n = min(CHUNK, c.total - c.generated, WINDOW - len(c.pending))
                            c.left = c.rng.randbytes(n)
                            c.generated += n
                        k = c.sock.send(c.left)
                        c.pending += c.left[:k]
                        c.sent += k
                        c.left = c.left[k:]
                        if c.left:
                            break  # socket buffer full: wait for the next write event
                    if c.sent == c.total:
                        if a.half_close:
                            c.sock.shutdown(socket.SHUT_WR)
                        c.shut = True
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                if mask & selectors.EVENT_READ:
                    data = c.sock.recv(256 * 1024)
                    if not data:
                        c.eof = True
                        if c.received != c.total:
                            finish(c, "early EOF after %d of %d bytes" % (c.received, c.total))
                        else:
                            finish(c)
                        continue
                    n = len(data)
                    if n > len(c.pending) or c.pending[:n] != data:
                        mismatches += 1
                        finish(c, "data mismatch at byte %d" % c.received)
                        continue
                    del c.pending[:n]
                    c.received += n
                    if c.received == c.total and not a.half_close:
                        finish(c)
                        continue
                    if not c.shut and c.sent < c.total:
                        sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            except BlockingIOError:
                continue
            except OSError as e:
                finish(c, errno.errorcode.get(e.errno, str(e)))

    timed_out = open_count > 0
    for c in conns:
        if c.sock.fileno() >= 0:
            finish(c, "timeout after %d of %d bytes" % (c.received, c.total))

    errors = {}
    for c in conns:
        if c.error is not None:
            key = c.error.split(" after ")[0] if c.error.startswith("timeout") else c.error.split(" at ")[0]
            errors[key] = errors.get(key, 0) + 1
    complete = sum(1 for c in conns if c.error is None and c.received == c.total)
    resets = sum(1 for c in conns if c.error == "ECONNRESET")
    elapsed = time.monotonic() - start
    out = {
        "conns": a.conns,
        "complete": complete,
        "resets": resets,
        "mismatches": mismatches,
        "bytes_echoed": sum(c.received for c in conns),
        "errors": errors,
        "timed_out": timed_out,
        "elapsed": round(elapsed, 3),
    }
    print(json.dumps(out), flush=True)
    if a.expect_reset:
        ok = resets == a.conns
    else:
        ok = complete == a.conns and mismatches == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
