"""Helpers of the bench scripts (converge, misc): processes, namespaces, the FIB prefix count.

Standard library only. Namespaces must start with ``bgb``: ns_destroy() kills (by PID) everything
inside one, which is only right for namespaces these scripts created.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

A_IP, B_IP, A_AS, B_AS = "10.98.0.1", "10.98.0.2", 65001, 65002
NS_PREFIX = "bgb"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes

def kill_pid(pid: int, grace: float = 5.0) -> None:
    """TERM, then KILL after ``grace`` seconds, one PID this harness started."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    with suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def descendants(roots: list[int]) -> list[int]:
    """The roots and every live descendant (walks the parent links of /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with suppress(OSError, IndexError):
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    seen: list[int] = []
    todo = [p for p in roots if Path(f"/proc/{p}").exists()]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.append(pid)
            todo.extend(children.get(pid, []))
    return sorted(seen)


def proc_usage(pids: list[int]) -> dict[str, dict[str, float]]:
    """{"<comm>-<pid>": {hwm_kb, rss_kb, cpu_s}} for each live process."""
    out: dict[str, dict[str, float]] = {}
    for pid in pids:
        with suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                          if ":" in line)
            comm = status["Name"].strip()
            out[f"{comm}-{pid}"] = {"hwm_kb": int(status.get("VmHWM", "0 kB").split()[0]),
                                    "rss_kb": int(status.get("VmRSS", "0 kB").split()[0]),
                                    "cpu_s": (int(stat[11]) + int(stat[12])) / CLK_TCK}
    return out


# ------------------------------------------------------------------ namespaces

def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def ns_exists(ns: str) -> bool:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return ns in {line.split()[0] for line in out.splitlines() if line.strip()}


def ns_destroy(ns: str) -> None:
    """Kill (by PID) what still runs in one of this harness's namespaces, then delete it."""
    assert ns.startswith(NS_PREFIX), ns
    if not ns_exists(ns):
        return
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False).stdout
    for pid in pids.split():
        kill_pid(int(pid), grace=2.0)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@contextmanager
def topology(ns_a: str, ns_b: str) -> Iterator[None]:
    for ns in (ns_a, ns_b):
        ns_destroy(ns)  # a leftover of an interrupted run of this harness
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    try:
        ip("-n", ns_a, "link", "add", "bgba0", "type", "veth", "peer", "name", "bgbb0", "netns", ns_b)
        ip("-n", ns_a, "addr", "add", f"{A_IP}/24", "dev", "bgba0")
        ip("-n", ns_b, "addr", "add", f"{B_IP}/24", "dev", "bgbb0")
        ip("-n", ns_a, "link", "set", "bgba0", "up")
        ip("-n", ns_b, "link", "set", "bgbb0", "up")
        yield
    finally:
        ns_destroy(ns_a)
        ns_destroy(ns_b)


class FibCounter:
    """Prefix count of a namespace's main FIB trie, read through /proc/<pid>/net of a holder process
    (``sleep`` in that namespace): one trie walk, no netlink dump, no subprocess per poll."""

    def __init__(self, ns: str) -> None:
        self.holder = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "infinity"])
        self.path = f"/proc/{self.holder.pid}/net/fib_triestat"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _netns_of(self.holder.pid) == _netns_of(os.getpid()):
            time.sleep(0.01)  # until `ip netns exec` has entered the namespace and exec'd sleep

    def count(self) -> int:
        with open(self.path) as f:
            data = f.read()
        return int(data.split("\nMain:\n", 1)[1].split("Prefixes:", 1)[1].split()[0])

    def close(self) -> None:
        kill_pid(self.holder.pid)
        with suppress(subprocess.TimeoutExpired):
            self.holder.wait(5)


def _netns_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


# ------------------------------------------------------------------ waiting for a count

@dataclass
class Wait:
    t_done: float | None = None
    t_prev: float | None = None
    count: int = 0
    timed_out: bool = False
    stalled: bool = False  # gave up early: the count did not move for the stall time
    samples: list[tuple[float, int]] = field(default_factory=list)


def poll_until(fib: FibCounter, done: Callable[[int], bool], timeout: float,
               on_poll: Callable[[], bool] | None = None, stall: float | None = None) -> Wait:
    """Poll the FIB until ``done(count)``; the interval is 3x the read time (>= 5 ms), which bounds the
    poller's share of a core to about a quarter."""
    w = Wait()
    deadline = time.monotonic() + timeout
    while True:
        t0 = time.monotonic()
        w.count = fib.count()
        t1 = time.monotonic()
        if not w.samples or w.samples[-1][1] != w.count:
            w.samples.append((t1, w.count))
        if done(w.count):
            w.t_done = t1
            return w
        w.stalled = stall is not None and w.count > 0 and t1 - w.samples[-1][0] > stall
        if t1 > deadline or w.stalled:
            w.timed_out = True
            return w
        if on_poll is not None and on_poll() is False:
            return w
        w.t_prev = t1
        time.sleep(max(0.005, 3 * (t1 - t0)))


def midpoint(w: Wait, t0: float) -> float | None:
    if w.t_done is None:
        return None
    lo = max(w.t_prev, t0) if w.t_prev is not None else w.t_done
    return (w.t_done + lo) / 2 - t0


def read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "kernel": os.uname().release, "cpu": cpu,
            "date": time.strftime("%Y-%m-%d", time.gmtime()), "load1": os.getloadavg()[0],
            "bgpd_tree": bgpd_tree()}


def bgpd_tree() -> str:
    """The commit bgpd ran from, ``+dirty`` when bgpd/ has uncommitted changes (the figures belong
    to exactly that code)."""
    repo = Path(__file__).resolve().parent.parent.parent
    git = ["git", "-C", str(repo)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "bgpd"], capture_output=True, text=True,
                           check=False)
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")

