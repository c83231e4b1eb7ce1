"""A small UDP prober for measuring loss between workloads (the lab has no ping).

Run one per node namespace: it binds to the node's workload address, sends a numbered probe to every
target every ``interval`` seconds, answers the probes it receives, and logs to a file one line per
probe sent (``S target seq time``) and per answer received (``R target seq time``), wall-clock time.
`Probers` starts and stops them for a lab; `lost` counts, for a time window, the probes sent that were
never answered (an answer is awaited until the prober stops, so a late answer is not a loss).

Standard library only: the script runs as ``python3 probe.py ...`` inside a namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PORT = 7777


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("targets", nargs="*")
    args = parser.parse_args(argv)
    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    sock = socket.socket(socket.AF_INET6 if ":" in args.bind else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, args.port))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    seq, next_send = 0, time.monotonic()
    with args.out.open("a", buffering=1 << 16) as out:
        while not stop:
            now = time.monotonic()
            if now >= next_send:
                for target in args.targets:
                    with contextlib.suppress(OSError):  # no route yet: the probe is simply lost
                        sock.sendto(f"P {seq}".encode(), (target, args.port))
                    out.write(f"S {target} {seq} {time.time():.3f}\n")
                seq, next_send = seq + 1, next_send + args.interval
                out.flush()
            for _key, _mask in sel.select(max(0.0, next_send - time.monotonic())):
                _answer(sock, out)
    return 0


def _answer(sock: socket.socket, out: object) -> None:
    while True:
        try:
            data, peer = sock.recvfrom(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            continue
        kind, _, seq = data.decode(errors="replace").partition(" ")
        if kind == "P":
            with contextlib.suppress(OSError):
                sock.sendto(f"A {seq}".encode(), peer)
        elif kind == "A":
            out.write(f"R {peer[0]} {seq} {time.time():.3f}\n")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Loss:
    sent: int
    lost: int
    by_target: Mapping[str, int]


def lost(logs: Iterable[Path], start: float, end: float) -> Loss:
    """Probes sent in [start, end) that were never answered, over every prober's log."""
    sent = lost_count = 0
    by_target: dict[str, int] = {}
    for path in logs:
        sends: dict[tuple[str, str], float] = {}
        answered: set[tuple[str, str]] = set()
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue  # a line cut by the stop
            kind, target, seq, when = parts
            if kind == "S":
                sends[(target, seq)] = float(when)
            elif kind == "R":
                answered.add((target, seq))
        for key, sent_at in sends.items():
            if start <= sent_at < end:
                sent += 1
                if key not in answered:
                    lost_count += 1
                    name = f"{path.stem}->{key[0]}"
                    by_target[name] = by_target.get(name, 0) + 1
    return Loss(sent, lost_count, by_target)


class Probers:
    """One prober per (namespace, workload address), each probing every other address."""

    def __init__(self, members: Mapping[str, tuple[str, str]], run_dir: Path, interval: float = 0.1) -> None:
        self.members = members  # name -> (namespace, workload address)
        self.run_dir = run_dir
        self.interval = interval
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def logs(self) -> list[Path]:
        return [self.run_dir / f"{name}.probe" for name in self.members]

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name, (ns, address) in self.members.items():
            targets = [a for n, (_ns, a) in self.members.items() if n != name]
            self.procs[name] = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--bind", address,
                 "--interval", str(self.interval), "--out", str(self.run_dir / f"{name}.probe"), *targets],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def last_answer(self) -> float:
        """The wall-clock time of the newest answer any prober logged (0 when none yet)."""
        newest = 0.0
        for path in self.logs():
            if path.exists():
                for line in reversed(path.read_text().splitlines()[-50:]):
                    parts = line.split()
                    if len(parts) == 4 and parts[0] == "R":
                        newest = max(newest, float(parts[3]))
                        break
        return newest

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


if __name__ == "__main__":
    sys.exit(main())
