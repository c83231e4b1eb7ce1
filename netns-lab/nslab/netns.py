"""Thin wrappers over iproute2 for the namespaces, links, addresses and routes the lab owns."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .proc import ProcRef, kill, proc_start_time

NETNS_DIR = Path("/run/netns")


class LabCommandError(RuntimeError):
    """An iproute2 (or daemon CLI) command failed; the message carries the command and its stderr."""


def run(argv: list[str], check: bool = True, timeout: float = 30.0) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabCommandError(f"{' '.join(argv)} -> exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def list_namespaces(prefix: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def create(ns: str) -> None:
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def pids(ns: str) -> list[int]:
    return [int(p) for p in run(["ip", "netns", "pids", ns], check=False).split()]


def destroy(ns: str) -> None:
    """Kill every process left in ``ns`` (all started by the lab: the namespace is ours), then delete it."""
    if not exists(ns):
        return
    for pid in pids(ns):
        start = proc_start_time(pid)
        if start is not None:
            kill(ProcRef(pid, start, "leftover"), timeout=3.0)
    run(["ip", "netns", "del", ns], check=False)


def sysctl(ns: str, key: str, value: str) -> None:
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])


def veth(ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
    """Create the pair directly inside the two namespaces: the root namespace never sees the names."""
    run(["ip", "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
    run(["ip", "-n", ns_a, "link", "set", if_a, "up"])
    run(["ip", "-n", ns_b, "link", "set", if_b, "up"])


def bridge(ns: str, ifname: str) -> None:
    run(["ip", "-n", ns, "link", "add", ifname, "type", "bridge"])
    run(["ip", "-n", ns, "link", "set", ifname, "up"])


def enslave(ns: str, ifname: str, bridge_name: str) -> None:
    run(["ip", "-n", ns, "link", "set", ifname, "master", bridge_name])


def dummy(ns: str, ifname: str) -> None:
    """A dummy interface, or where the kernel has no dummy driver, a veth pair kept inside ``ns``."""
    try:
        run(["ip", "-n", ns, "link", "add", ifname, "type", "dummy"])
    except LabCommandError:
        peer = f"{ifname[:11]}-end"
        run(["ip", "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", peer])
        run(["ip", "-n", ns, "link", "set", peer, "up"])
    run(["ip", "-n", ns, "link", "set", ifname, "up"])


def add_address(ns: str, ifname: str, cidr: str) -> None:
    # nodad: an IPv6 address is usable at once instead of after duplicate address detection
    extra = ["nodad"] if ":" in cidr else []
    run(["ip", "-n", ns, "addr", "add", cidr, "dev", ifname, *extra])


def add_route(ns: str, dst: str, via: str | None, dev: str | None) -> None:
    family = "-6" if ":" in dst else "-4"
    argv = ["ip", family, "-n", ns, "route", "replace", dst, "proto", "static"]
    if via:
        argv += ["via", via]
    if dev:
        argv += ["dev", dev]
    run(argv)


# Routes the lab or the kernel put there; everything else came from a routing daemon.
_NOT_LEARNED = {"kernel", "static", "boot", "ra", "redirect"}


def learned_routes(ns: str, table: str = "main") -> dict[str, list[str]]:
    """Routes in ``table`` of ``ns`` installed by a routing daemon: prefix -> sorted next hops.

    Next hops are gateway addresses; a multipath route lists each gateway; a route without a gateway
    gives its type (``blackhole``, ``unreachable``) or ``dev <ifname>``.
    """
    routes: dict[str, list[str]] = {}
    for family in ("-4", "-6"):
        out = run(["ip", family, "-j", "-n", ns, "route", "show", "table", table], check=False) or "[]"
        for route in json.loads(out):
            if route.get("protocol") in _NOT_LEARNED:
                continue
            routes[_prefix(route, family)] = sorted(_nexthops(route))
    return routes


def _prefix(route: dict[str, object], family: str) -> str:
    dst = str(route["dst"])
    if dst == "default":
        return "0.0.0.0/0" if family == "-4" else "::/0"
    if "/" not in dst:
        dst += "/32" if family == "-4" else "/128"
    return dst


def _nexthops(route: dict[str, object]) -> list[str]:
    multipath = route.get("nexthops")
    hops = multipath if isinstance(multipath, list) else [route]
    result = []
    for hop in hops:
        if "gateway" in hop:
            result.append(str(hop["gateway"]))
        elif route.get("type") not in (None, "unicast"):
            result.append(str(route["type"]))
        else:
            result.append(f"dev {hop.get('dev')}")
    return result


def describe(ns: str) -> str:
    """Addresses and routes of ``ns``, for failure output."""
    parts = []
    for argv in (["-br", "addr"], ["-4", "route", "show", "table", "all"], ["-6", "route"]):
        parts.append(f"$ ip -n {ns} {' '.join(argv)}\n" + run(["ip", "-n", ns, *argv], check=False))
    return "\n".join(parts)
