"""Helpers shared by the issue-4 route lab tests (tests/lab/test_routes_*.py).

One lab per test module (building one takes seconds and the tests of a module read the same
topology); every read is a poll with a deadline, and a failed wait carries the lab's dump.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nslab import Lab, wait_until
from nslab.bgpd_node import BgpdNode

from tests.lab.conftest import TOPOLOGIES

T = TypeVar("T")
PINGER = Path(__file__).with_name("icmp_ping.py")
PROTO = "44"  # bgpd's default route protocol number
DEADLINE = 60.0  # generous: a loaded machine converges slowly; passing runs never wait for it


def kernel(lab: Lab, node: str) -> dict[str, list[str]]:
    """bgpd's routes (proto 44, main table) in a node: prefix -> sorted next hops, or ['blackhole']."""
    routes: dict[str, list[str]] = {}
    for family in ("-4", "-6"):
        out = subprocess.run(["ip", family, "-j", "-n", lab[node].ns, "route", "show", "proto", PROTO],
                             capture_output=True, text=True, check=False, timeout=10).stdout or "[]"
        for r in json.loads(out):
            dst = r["dst"] if "/" in r["dst"] else r["dst"] + ("/32" if family == "-4" else "/128")
            if r.get("type") == "blackhole":
                routes[dst] = ["blackhole"]
            elif "nexthops" in r:
                routes[dst] = sorted(h["gateway"] for h in r["nexthops"])
            else:
                routes[dst] = [r["gateway"]]
    return routes


def wait_for(lab: Lab, what: str, condition: Callable[[], T], timeout: float = DEADLINE) -> T:
    result: T = wait_until(condition, timeout, what, detail=lab.dump)
    return result


def wait_route(lab: Lab, node: str, prefix: str, hops: list[str] | None, timeout: float = DEADLINE) -> None:
    """Until ``node``'s kernel has ``prefix`` via exactly ``hops`` (None: no route of ours)."""
    wait_for(lab, f"{node}: {prefix} -> {hops}", lambda: kernel(lab, node).get(prefix) == hops, timeout)


def status(lab: Lab, node: str) -> dict[str, Any]:
    found = lab[node]
    assert isinstance(found, BgpdNode)
    return found.status() or {}


def session(lab: Lab, node: str, peer_ip: str) -> dict[str, Any]:
    return next(s for s in status(lab, node).get("sessions", []) if s["peerIP"] == peer_ip)


def pinger_argv(lab: Lab, node: str, src: str, dst: str, *, count: int, interval: float = 0.2) -> list[str]:
    return ["ip", "netns", "exec", lab[node].ns, sys.executable, str(PINGER), "--src", src, "--dst", dst,
            "--count", str(count), "--interval", str(interval)]


def ping(lab: Lab, node: str, src: str, dst: str, count: int = 1) -> bool:
    """``count`` pings from address ``src`` (a workload of ``node``) to ``dst``; True when all came back."""
    proc = subprocess.run(pinger_argv(lab, node, src, dst, count=count), capture_output=True, text=True,
                          check=False, timeout=30 + count)
    return proc.returncode == 0


class ContinuousPing:
    """A ping running in the background (``interval`` apart) until `stop`, which returns the result:
    {"sent": n, "received": m, "lost": [sequence numbers]}."""

    def __init__(self, lab: Lab, node: str, src: str, dst: str, interval: float = 0.05) -> None:
        self._proc = subprocess.Popen(pinger_argv(lab, node, src, dst, count=10**9, interval=interval),
                                      stdout=subprocess.PIPE, text=True)

    def stop(self) -> dict[str, Any]:
        self._proc.send_signal(signal.SIGTERM)
        out, _ = self._proc.communicate(timeout=15)
        result: dict[str, Any] = json.loads(out)
        return result

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def write_resources(lab: Lab, file: str, docs: list[dict[str, Any]]) -> None:
    """Replace (or create) one file of the lab's shared datastore, atomically."""
    from nslab import resources  # noqa: PLC0415

    resources.write_documents(lab.run_dir / "resources", file, docs)


def remove_resources(lab: Lab, file: str) -> None:
    (lab.run_dir / "resources" / file).unlink(missing_ok=True)


def topology_path(name: str) -> Path:
    return TOPOLOGIES / f"{name}.yaml"


class RouteMonitor:
    """``ip monitor route`` in a node's namespace from now until `stop`, which returns the lines of
    bgpd's routes (proto 44) the kernel deleted.

    Line-buffered (a pipe would hold the lines back), and the constructor returns only once the
    monitor is subscribed (it has seen a marker route come and go), so an event right after it is
    never missed and "0 deleted" cannot pass by accident.
    """

    MARKER = "192.0.2.254/32 table 250"  # TEST-NET-1, a table nothing else uses

    def __init__(self, lab: Lab, node: str) -> None:
        self._ns = lab[node].ns
        self._proc = subprocess.Popen(["stdbuf", "-oL", "ip", "-n", self._ns, "monitor", "route"],
                                      stdout=subprocess.PIPE, text=True)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        marker = ["ip", "-n", self._ns, "route", "{}", "blackhole", *self.MARKER.split()]
        wait_until(lambda: self._subscribed(marker), timeout=DEADLINE, interval=0.2,
                   what=f"ip monitor subscribed in {self._ns}")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.append(line.rstrip("\n"))

    def _subscribed(self, marker: list[str]) -> bool:
        # add and delete each time: a replace of an unchanged route may notify nobody
        for verb in ("add", "del"):
            subprocess.run([a.replace("{}", verb) for a in marker], capture_output=True, check=False)
        return any("192.0.2.254" in line for line in list(self._lines))

    def stop(self) -> list[str]:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._reader.join(timeout=10)
        return [line for line in self._lines if line.startswith("Deleted") and f"proto {PROTO}" in line]
