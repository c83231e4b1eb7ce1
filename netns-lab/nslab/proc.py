"""Processes the lab starts: launched inside a namespace, remembered by (pid, start time), killed by pid.

The start time (field 22 of /proc/PID/stat) guards against killing a recycled pid when `lab down` runs
in another process than `lab up`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcRef:
    pid: int
    start_time: int
    name: str

    def alive(self) -> bool:
        return proc_start_time(self.pid) == self.start_time

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "start_time": self.start_time, "name": self.name}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcRef:
        return cls(int(str(data["pid"])), int(str(data["start_time"])), str(data["name"]))


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` in clock ticks, or None when no such (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def spawn(ns: str, argv: list[str], log: Path, name: str) -> tuple[ProcRef, subprocess.Popen[bytes]]:
    """Start ``argv`` in namespace ``ns`` (``ip netns exec`` execs, so the pid is the daemon's own)."""
    with log.open("ab") as out:
        child = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a Ctrl-C of the lab does not hit it
        )
    start = None
    for _ in range(50):
        start = proc_start_time(child.pid)
        if start is not None:
            break
        time.sleep(0.01)
    return ProcRef(child.pid, start or 0, name), child


def kill(ref: ProcRef, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the process (if it is still the one we started), escalate to SIGKILL, reap it."""
    if not ref.alive():
        _reap(ref.pid)
        return
    _signal(ref.pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(ref.pid)
        if not ref.alive():
            return
        time.sleep(0.05)
    _signal(ref.pid, signal.SIGKILL)
    for _ in range(100):
        _reap(ref.pid)
        if not ref.alive():
            return
        time.sleep(0.02)


def wait_exit(ref: ProcRef, timeout: float) -> None:
    """Wait for a process that was asked to exit by other means; SIGKILL it after ``timeout``."""
    kill(ref, timeout=timeout, sig=signal.SIGCONT)  # SIGCONT is harmless: it only starts the clock


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie (no-op for non-children)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
