#!/usr/bin/env python3
"""Pre-encoded BGP route injector for the benchmarks (standard library only).

Every UPDATE is encoded before the injector listens, so once the session is Established it only
calls sendall(): the receiver's TCP window, not the injector's CPU, sets the pace. The injector
is passive (listens on --listen:179) so every speaker keeps its ordinary active peer config.

Routes: --n consecutive /--plen prefixes from --base, packed --per-update NLRI per UPDATE (default
as many as fit in 4096 bytes: ~1000 /24s), attributes ORIGIN IGP, AS_PATH <asn>, NEXT_HOP, then
End-of-RIB. With --withdraw, SIGUSR1 sends the same prefixes as withdrawals (packed the same way).

The status file (JSON, replaced atomically) holds CLOCK_MONOTONIC stamps:
  t_established   session reached Established (OPEN + KEEPALIVE both ways)
  t_sent          last announcement (incl. End-of-RIB) handed to TCP
  t_withdraw_sent last withdrawal handed to TCP (after SIGUSR1)
plus updates, prefixes, bytes, encode_s and error (a NOTIFICATION received before t_sent).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator

HEADER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE = 1, 2, 3, 4
MAX_MESSAGE = 4096
END_OF_RIB = b"\x00\x00\x00\x00"  # an UPDATE with no withdrawals and no attributes


def message(kind: int, body: bytes = b"") -> bytes:
    return HEADER + struct.pack("!HB", 19 + len(body), kind) + body


def open_message(asn: int, router_id: str, hold: int) -> bytes:
    caps = (bytes([1, 4]) + struct.pack("!HBB", 1, 0, 1)   # multiprotocol IPv4 unicast
            + bytes([2, 0])                                 # route refresh
            + bytes([65, 4]) + struct.pack("!I", asn))      # four-octet AS
    params = bytes([2, len(caps)]) + caps
    two_octet = asn if asn < 65536 else 23456
    return message(OPEN, struct.pack("!BHH4sB", 4, two_octet, hold, socket.inet_aton(router_id),
                                     len(params)) + params)


def path_attributes(asn: int, next_hop: str) -> bytes:
    return (bytes([0x40, 1, 1, 0])                                    # ORIGIN IGP
            + bytes([0x40, 2, 6, 2, 1]) + struct.pack("!I", asn)      # AS_PATH: one AS_SEQUENCE
            + bytes([0x40, 3, 4]) + socket.inet_aton(next_hop))       # NEXT_HOP


def nlri(n: int, base: str, plen: int) -> Iterator[bytes]:
    first = int(ipaddress.IPv4Address(base))
    size, step = (plen + 7) // 8, 1 << (32 - plen)
    for i in range(n):
        yield bytes([plen]) + struct.pack("!I", first + i * step)[:size]


def chunks(items: Iterator[bytes], room: int, per: int) -> Iterator[bytes]:
    """Concatenations of consecutive items, each at most ``per`` items and ``room`` bytes."""
    batch: list[bytes] = []
    used = 0
    for item in items:
        if batch and (len(batch) == per or used + len(item) > room):
            yield b"".join(batch)
            batch, used = [], 0
        batch.append(item)
        used += len(item)
    if batch:
        yield b"".join(batch)


def announcements(prefixes: Iterator[bytes], attrs: bytes, per: int) -> list[bytes]:
    room = MAX_MESSAGE - 19 - 4 - len(attrs)
    return [message(UPDATE, b"\x00\x00" + struct.pack("!H", len(attrs)) + attrs + packed)
            for packed in chunks(prefixes, room, per)]


def withdrawals(prefixes: Iterator[bytes], per: int) -> list[bytes]:
    room = MAX_MESSAGE - 19 - 4
    return [message(UPDATE, struct.pack("!H", len(packed)) + packed + b"\x00\x00")
            for packed in chunks(prefixes, room, per)]


def read_message(sock: socket.socket) -> tuple[int, bytes]:
    head = _read_exactly(sock, 19)
    length, kind = struct.unpack("!HB", head[16:19])
    return kind, _read_exactly(sock, length - 19)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        got = sock.recv(size - len(data))
        if not got:
            raise ConnectionError("peer closed the connection")
        data += got
    return bytes(data)


class Status:
    def __init__(self, path: str) -> None:
        self.path, self.lock = path, threading.Lock()
        self.data: dict[str, object] = {}

    def set(self, **values: object) -> None:
        with self.lock:
            self.data.update(values)
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.data, f)
            os.replace(tmp, self.path)


def accept(address: str, ready: str | None) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, 179))
    listener.listen(1)
    if ready:
        open(ready, "w").close()
    sock, _ = listener.accept()
    listener.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return sock


def establish(sock: socket.socket, args: argparse.Namespace, status: Status) -> int:
    """OPEN/KEEPALIVE exchange; returns the negotiated hold time."""
    sock.sendall(open_message(args.asn, args.router_id, args.hold))
    hold: int = args.hold
    got_open = got_keepalive = False
    while not (got_open and got_keepalive):
        kind, body = read_message(sock)
        if kind == OPEN:
            got_open = True
            hold = min(hold, int.from_bytes(body[3:5], "big"))
            sock.sendall(message(KEEPALIVE))
        elif kind == KEEPALIVE:
            got_keepalive = True
        elif kind == NOTIFICATION:
            status.set(error=f"NOTIFICATION {body[0]}/{body[1]} during OPEN")
            sys.exit(1)
    status.set(t_established=time.monotonic())
    return hold


def drain(sock: socket.socket, status: Status) -> None:
    """Read (and drop) what the receiver sends; a NOTIFICATION ends the injector."""
    try:
        while True:
            kind, body = read_message(sock)
            if kind == NOTIFICATION:
                key = "peer_notification" if "t_sent" in status.data else "error"
                status.set(**{key: f"NOTIFICATION {body[0]}/{body[1]}"})
                os._exit(1)
    except OSError:
        os._exit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="address to listen on (port 179)")
    ap.add_argument("--asn", type=int, default=65001)
    ap.add_argument("--router-id", default="10.98.0.1")
    ap.add_argument("--next-hop", default="10.98.0.1")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--base", default="16.0.0.0")
    ap.add_argument("--plen", type=int, default=24)
    ap.add_argument("--per-update", type=int, default=0, help="NLRI per UPDATE (0 = as many as fit)")
    ap.add_argument("--hold", type=int, default=180)
    ap.add_argument("--withdraw", action="store_true", help="pre-encode withdrawals, send them on SIGUSR1")
    ap.add_argument("--status", required=True)
    ap.add_argument("--ready", help="file created once the UPDATEs are encoded and the injector listens")
    args = ap.parse_args()

    per = args.per_update or MAX_MESSAGE
    started = time.monotonic()
    updates = announcements(nlri(args.n, args.base, args.plen), path_attributes(args.asn, args.next_hop), per)
    blob = b"".join(updates) + message(UPDATE, END_OF_RIB)
    unblob = b"".join(withdrawals(nlri(args.n, args.base, args.plen), per)) if args.withdraw else b""
    status = Status(args.status)
    status.set(n=args.n, updates=len(updates), bytes=len(blob), encode_s=time.monotonic() - started)
    # SIGUSR1 stays blocked (in every thread) and is taken synchronously by sigtimedwait below
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    sock = accept(args.listen, args.ready)
    hold = establish(sock, args, status)
    threading.Thread(target=drain, args=(sock, status), daemon=True).start()
    sock.sendall(blob)
    status.set(t_sent=time.monotonic())
    keepalive = max(1, hold // 3) if hold else 30
    while True:
        if signal.sigtimedwait({signal.SIGUSR1}, keepalive) and unblob:
            sock.sendall(unblob)
            status.set(t_withdraw_sent=time.monotonic())
            unblob = b""
        sock.sendall(message(KEEPALIVE))


if __name__ == "__main__":
    main()
