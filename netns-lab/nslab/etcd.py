"""An etcd node: the cluster's datastore, run inside the lab so no traffic leaves the namespaces.

A topology node of ``kind: etcd`` runs one etcd member in its namespace, listening for clients on its
first link address, port 2379 (peers on the namespace's loopback). When a lab has one, every bgpd node
runs with ``--store etcd://<that address>:2379`` instead of the shared directory, the topology's initial
documents are written with ``bgpd apply`` against it, and `EtcdNode.bgpd` runs bgpd's own commands
(``apply``, ``patch``, ``label``...) from inside its namespace, where the address is reachable.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .node import Node, tail
from .proc import ProcRef, kill, spawn
from .topology import Topology
from .wait import wait_until

ETCD = "/usr/bin/etcd"
CLIENT_PORT = 2379


def etcd_node(topology: Topology) -> str | None:
    """The name of the lab's etcd node, if it has one (the first, in topology order)."""
    return next((n for n, spec in topology.nodes.items() if spec.kind == "etcd"), None)


def store_url(topology: Topology) -> str | None:
    """``etcd://ADDRESS:2379`` of the lab's etcd node, or None for a directory-store lab."""
    name = etcd_node(topology)
    if name is None:
        return None
    return f"etcd://{topology.addresses(name, 4)[0].split('/')[0]}:{CLIENT_PORT}"


class EtcdNode(Node):
    @property
    def url(self) -> str:
        url = store_url(self.topology)
        assert url is not None
        return url

    @property
    def log(self) -> Path:
        return self.run_dir / "etcd.out"

    def argv(self) -> list[str]:
        client = f"http://{self.address(4)}:{CLIENT_PORT}"
        peer = "http://127.0.0.1:2380"
        return [ETCD, "--name", self.name, "--data-dir", str(self.run_dir / "data"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}"]

    def start(self) -> None:
        ref, _child = spawn(self.ns, self.argv(), self.log, "etcd")
        (self.run_dir / "pids.json").write_text(json.dumps([ref.to_json()]))
        wait_until(self.healthy, 30, f"{self.name}: etcd answering on {self.url}",
                   detail=lambda: tail(self.log, 30))

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) the member; its data stays, so `start` brings the same store back."""
        path = self.run_dir / "pids.json"
        if not path.exists():
            return
        for ref in (ProcRef.from_json(p) for p in json.loads(path.read_text())):
            kill(ref)
        path.write_text("[]")

    def running(self) -> bool:
        path = self.run_dir / "pids.json"
        refs = [ProcRef.from_json(p) for p in json.loads(path.read_text())] if path.exists() else []
        return any(ref.alive() for ref in refs)

    def healthy(self) -> bool:
        proc = subprocess.run(["ip", "netns", "exec", self.ns, "etcdctl", "--endpoints",
                               f"http://{self.address(4)}:{CLIENT_PORT}", "--command-timeout=2s",
                               "endpoint", "health"], capture_output=True, text=True, check=False, timeout=10)
        return proc.returncode == 0

    def bgpd(self, *args: str, check: bool = True,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``bgpd ARGS --store etcd://...`` run in this node's namespace (calicoctl's role)."""
        return run_bgpd(self.ns, self.url, args, check=check, stdin=stdin)

    def apply(self, documents: Iterable[Mapping[str, Any]]) -> None:
        """Create or update documents with ``bgpd apply -f -``."""
        self.bgpd("apply", "-f", "-", stdin=yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))

    def dump(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"{super().dump()}\n--- etcd ({state}) log tail\n{tail(self.log, 20)}"


def run_bgpd(ns: str, url: str, args: Iterable[str], check: bool = True,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``bgpd ARGS --store URL`` in namespace ``ns``; raises with bgpd's output when it fails."""
    from .bgpd_node import BGPD  # noqa: PLC0415  (bgpd_node imports this module)

    args = list(args)
    proc = subprocess.run(["ip", "netns", "exec", ns, str(BGPD), *args, "--store", url],
                          input=stdin, capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"bgpd {' '.join(args)} --store {url} in {ns} failed ({proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}")
    return proc
