"""ICMP (or ICMPv6) echo from one address to another, stdlib only (the lab machine has no ping binary).

Run inside a namespace: ``python3 icmp_ping.py --src A --dst B --count N --interval S``. Sends N
echo requests ``interval`` apart (or until SIGTERM), waits up to ``--wait`` seconds for the last
replies and prints one JSON line: {"sent": n, "received": m, "lost": [sequence numbers]}.
Exit status 0 when every request was answered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import struct
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo(ident: int, seq: int, v6: bool) -> bytes:
    payload = b"bgpd-lab"
    if v6:  # the kernel fills in the ICMPv6 checksum (it covers a pseudo-header)
        return struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", required=True)
    parser.add_argument("--dst", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--wait", type=float, default=2.0)
    args = parser.parse_args()
    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    v6 = ":" in args.dst
    if v6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    reply = 129 if v6 else 0
    sock.bind((args.src, 0))
    ident = os.getpid() & 0xFFFF
    sent: set[int] = set()
    answered: set[int] = set()
    next_send = time.monotonic()
    last_send = next_send
    while True:
        now = time.monotonic()
        sending = not stop and len(sent) < args.count
        if sending and now >= next_send:
            seq = len(sent)
            with contextlib.suppress(OSError):  # no route: that request is lost
                sock.sendto(echo(ident, seq, v6), (args.dst, 0))
            sent.add(seq)
            last_send, next_send = now, next_send + args.interval
            continue
        if not sending and (now >= last_send + args.wait or answered >= sent):
            break
        timeout = (next_send - now) if sending else (last_send + args.wait - now)
        ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
        if ready:
            packet, source = sock.recvfrom(2048)
            start = 0 if v6 else (packet[0] & 0x0F) * 4  # IPv4 raw sockets see the IP header
            kind, _, _, rid, rseq = struct.unpack("!BBHHH", packet[start:start + 8])
            if kind == reply and rid == ident and source[0] == args.dst:
                answered.add(rseq)
    lost = sorted(sent - answered)
    print(json.dumps({"sent": len(sent), "received": len(answered & sent), "lost": lost}))
    return 0 if not lost else 1


if __name__ == "__main__":
    raise SystemExit(main())
