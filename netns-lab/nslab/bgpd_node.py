"""A bgpd node: the project's own daemon, run as ``bgpd run`` in the node's namespace.

It reads the lab's shared resource directory (see resources.py) and answers on a control socket in
the node's run directory; sessions come from ``bgpd status --json`` (DESIGN.md §4), transitions from
its JSON log (``session_established`` events with ``peer_ip``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import yaml

from . import resources
from .etcd import run_bgpd, store_url
from .node import ESTABLISHED, Speaker, run_cli, tail, write_private
from .proc import kill
from .wait import wait_until


def bgpd_executable() -> Path:
    """$BGPD_BIN, else the ``bgpd`` next to this Python, else the repository's .venv/bin/bgpd."""
    if os.environ.get("BGPD_BIN"):
        return Path(os.environ["BGPD_BIN"])
    beside = Path(sys.executable).parent / "bgpd"
    return beside if beside.exists() else Path(__file__).resolve().parents[2] / ".venv" / "bin" / "bgpd"


BGPD = bgpd_executable()


class BgpdNode(Speaker):
    @property
    def resources_dir(self) -> Path:
        return self.run_dir.parent / "resources"

    @property
    def socket(self) -> Path:
        return self.run_dir / "bgpd.sock"

    @property
    def log(self) -> Path:
        return self.run_dir / "bgpd.out"

    @property
    def store(self) -> str | None:
        """The lab's etcd store URL, or None when the nodes share the resource directory."""
        return store_url(self.topology)

    def argv(self) -> list[str]:
        store = ["--store", self.store] if self.store else ["--resources", str(self.resources_dir)]
        argv = [str(BGPD), "run", "--node", self.name, *store, "--socket", str(self.socket)]
        if self.spec.bgpd_settings:
            settings = self.run_dir / "bgpd.yaml"
            write_private(settings, yaml.safe_dump(dict(self.spec.bgpd_settings), sort_keys=False))
            argv += ["--config", str(settings)]
        return [*argv, *self.spec.bgpd_args]

    def start(self) -> None:
        self._spawn("bgpd", self.argv())
        wait_until(lambda: self._running("bgpd") and self.status() is not None, 20,
                   f"{self.name}: bgpd control socket", detail=lambda: tail(self.log, 20))

    def restart(self, graceful: bool = False) -> None:
        """Graceful: SIGTERM (bgpd closes sessions without NOTIFICATION, peers keep routes as stale);
        otherwise SIGKILL of bgpd and its ExaBGP child (a crash)."""
        ref = self._forget("bgpd")
        if ref:
            if not graceful and ref.alive():
                kill_group(ref.pid)
            kill(ref)
        self.start()

    def status(self) -> dict[str, object] | None:
        """The daemon's ``bgpd status --json`` answer, or None while it does not answer."""
        proc = run_cli([str(BGPD), "status", "--json", "--socket", str(self.socket)])
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def sessions(self) -> dict[str, str]:
        sessions = (self.status() or {}).get("sessions")
        if not isinstance(sessions, list):
            return {}
        return {str(s["peerIP"]): _fsm_state(s) for s in sessions if isinstance(s, dict)}

    def transitions(self, peer_ip: str) -> int:
        if not self.log.exists():
            return 0
        count = 0
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "session_established" \
                    and event.get("peer_ip") == peer_ip:
                count += 1
        return count

    def announce(self, prefix: str) -> None:
        """Give the node a confirmed host block affinity for ``prefix`` (bgpd exports its blocks)."""
        name = f"20-block-{resources.block_name(self.name, prefix)}.yaml"
        document = resources.block_document(self.name, prefix)
        if self.store:
            run_bgpd(self.ns, self.store, ["apply", "-f", "-"], stdin=yaml.safe_dump(document))
        else:
            resources.write_documents(self.resources_dir, name, [document])
        self._save_announced(self.announced() | {prefix})

    def withdraw(self, prefix: str) -> None:
        name = f"20-block-{resources.block_name(self.name, prefix)}.yaml"
        if self.store:
            block = resources.block_name(self.name, prefix)
            run_bgpd(self.ns, self.store, ["delete", "blockaffinity", block])
        else:
            (self.resources_dir / name).unlink(missing_ok=True)
        self._save_announced(self.announced() - {prefix})

    def status_text(self) -> str:
        proc = run_cli([str(BGPD), "status", "--socket", str(self.socket)])
        return proc.stdout + proc.stderr

    def daemon_dump(self) -> str:
        return "\n".join([f"--- bgpd status\n{self.status_text()}",
                          f"--- {self.log} (tail)\n{tail(self.log)}"])


def _fsm_state(session: dict[str, object]) -> str:
    """bgpd reports state ``up``/``start`` as calicoctl does; INFO starts with the FSM state when not up."""
    if session.get("state") == "up":
        return ESTABLISHED
    info = str(session.get("info") or "").split()
    return info[0] if info else str(session.get("state"))


def kill_group(pgid: int) -> None:
    """SIGKILL bgpd's process group (it was started as a session leader, ExaBGP is in its group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
