"""Lab nodes: a namespace with addresses and routes, and (for BGP speakers) one routing daemon.

Every BGP speaker class (Bird, Frr, BgpdNode) answers the same verbs, so a test reads the same whatever
sits on the other end (the GoBGP scenario-test idea).  Session states use the BGP FSM names
(``Idle``, ``Connect``, ``Active``, ``OpenSent``, ``OpenConfirm``, ``Established``).
"""

from __future__ import annotations

import json
import os
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path

from . import netns
from .proc import ProcRef, kill, spawn
from .topology import NodeSpec, Topology

ESTABLISHED = "Established"


class Node:
    """A namespace of the lab (plain ``router`` and ``host`` nodes are just this)."""

    def __init__(self, spec: NodeSpec, topology: Topology, ns: str, run_dir: Path) -> None:
        self.spec = spec
        self.topology = topology
        self.ns = ns
        self.run_dir = run_dir

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ns={self.ns}>"

    def exec(self, *argv: str, check: bool = True, timeout: float = 30.0) -> str:
        """Run a command inside the node's namespace and return its stdout."""
        return netns.run(["ip", "netns", "exec", self.ns, *argv], check=check, timeout=timeout)

    def routes(self) -> dict[str, list[str]]:
        """Routes a routing daemon installed in the node's main kernel table: prefix -> next hops."""
        return netns.learned_routes(self.ns)

    def address(self, family: int = 4) -> str:
        """The node's first link address of ``family`` (without the prefix length)."""
        return self.topology.addresses(self.name, family)[0].split("/")[0]

    def prepare(self) -> None:
        """Create the node's run directory (mode 0700: configs hold passwords)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)

    def start(self) -> None:
        """Plain nodes run no daemon."""

    def stop(self) -> None:
        """Plain nodes run no daemon."""

    def dump(self) -> str:
        return f"===== {self.kind} {self.name} (netns {self.ns})\n{netns.describe(self.ns)}"


class Speaker(Node, ABC):
    """A node running a BGP daemon; the processes it starts are recorded in ``pids.json``."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def sessions(self) -> dict[str, str]:
        """Peer IP -> BGP FSM state of every configured session."""

    @abstractmethod
    def transitions(self, peer_ip: str) -> int:
        """How many times the session with ``peer_ip`` went Established, from the daemon's own log."""

    @abstractmethod
    def restart(self, graceful: bool = False) -> None:
        """Restart the daemon; ``graceful`` keeps peers' routes (BGP graceful restart), else a hard stop."""

    @abstractmethod
    def announce(self, prefix: str) -> None: ...

    @abstractmethod
    def withdraw(self, prefix: str) -> None: ...

    @abstractmethod
    def status_text(self) -> str:
        """The daemon's own session summary, as an operator would ask for it."""

    @abstractmethod
    def daemon_dump(self) -> str:
        """The daemon's own view (sessions, RIB, log tail) for failure output."""

    def announced(self) -> set[str]:
        """The prefixes this node announces now (the topology's ``announce`` until changed)."""
        path = self.run_dir / "announced"
        if not path.exists():
            return set(self.spec.announce)
        return {line for line in path.read_text().split() if line}

    def _save_announced(self, prefixes: set[str]) -> None:
        (self.run_dir / "announced").write_text("".join(f"{p}\n" for p in sorted(prefixes)))

    def established(self, peer_ip: str) -> bool:
        return self.sessions().get(peer_ip) == ESTABLISHED

    def stop(self) -> None:
        """Stop every process of this node (SIGTERM, then SIGKILL), last started first."""
        for ref in reversed(self.procs()):
            kill(ref)
        self._save_procs([])

    def dump(self) -> str:
        try:
            own = self.daemon_dump()
        except Exception as exc:  # a dump must never hide the original failure
            own = f"(daemon dump failed: {exc})"
        return f"{super().dump()}\n{own}"

    # ------------------------------------------------------------ process records

    def procs(self) -> list[ProcRef]:
        path = self.run_dir / "pids.json"
        if not path.exists():
            return []
        return [ProcRef.from_json(p) for p in json.loads(path.read_text())]

    def _spawn(self, name: str, argv: list[str]) -> ProcRef:
        ref, _child = spawn(self.ns, argv, self.run_dir / f"{name}.out", name)
        self._save_procs([*[p for p in self.procs() if p.name != name], ref])
        return ref

    def _forget(self, name: str) -> ProcRef | None:
        procs = self.procs()
        self._save_procs([p for p in procs if p.name != name])
        return next((p for p in procs if p.name == name), None)

    def _save_procs(self, procs: list[ProcRef]) -> None:
        (self.run_dir / "pids.json").write_text(json.dumps([p.to_json() for p in procs]))

    def _running(self, name: str) -> ProcRef:
        ref = next((p for p in self.procs() if p.name == name), None)
        if ref is None or not ref.alive():
            out = self.run_dir / f"{name}.out"
            tail = out.read_text()[-2000:] if out.exists() else ""
            raise RuntimeError(f"{self.name}: {name} is not running\n{tail}")
        return ref


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write a file readable only by its owner (configs carry passwords), optionally chowned."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)
    if owner:
        os.chown(path, *owner)


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_cli(argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
