"""A lab: the namespaces, links and daemons of one topology, and their teardown.

Namespaces are named ``<prefix><lab name>-<node>``; state (the topology, each node's run directory,
configs, logs, pids) lives under ``<run root>/<lab name>/``, so ``down()`` works from another process
(the ``lab`` CLI) and after a partial ``up()``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from . import netns, resources
from .bgpd_node import BgpdNode
from .bird import Bird
from .etcd import EtcdNode, etcd_node
from .frr import Frr
from .node import Node, Speaker, write_private
from .topology import Segment, Topology, load
from .wait import wait_until

RUN_ROOT = Path("/run/bgpd-lab")
DEFAULT_PREFIX = "bgl-"
NODE_CLASSES: Mapping[str, type[Node]] = {
    "bird": Bird, "frr": Frr, "bgpd": BgpdNode, "router": Node, "host": Node, "etcd": EtcdNode,
}


class Lab:
    def __init__(self, topology: Topology | Mapping[str, Any] | str | Path, *, name: str | None = None,
                 prefix: str = DEFAULT_PREFIX, run_root: Path = RUN_ROOT) -> None:
        self.topology = topology if isinstance(topology, Topology) else load(topology, name)
        self.name = name or self.topology.name
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(f"a lab name is letters, digits, '.', '_' and '-'; got {self.name!r}")
        if not prefix.startswith("bgl"):
            raise ValueError(f"namespace prefix must start with 'bgl'; got {prefix!r}")
        self.prefix = prefix
        self.run_dir = run_root / self.name
        self.nodes: dict[str, Node] = {
            n: NODE_CLASSES[spec.kind](spec, self.topology, self.ns_name(n), self.run_dir / n)
            for n, spec in self.topology.nodes.items()
        }

    # ------------------------------------------------------------ access

    def ns_name(self, node: str) -> str:
        return f"{self.prefix}{self.name}-{node}"

    def __getitem__(self, node: str) -> Node:
        return self.nodes[node]

    def speaker(self, node: str) -> Speaker:
        found = self.nodes[node]
        if not isinstance(found, Speaker):
            raise TypeError(f"{node} is a {found.kind}, not a BGP speaker")
        return found

    def speakers(self) -> list[Speaker]:
        return [n for n in self.nodes.values() if isinstance(n, Speaker)]

    # ------------------------------------------------------------ lifecycle

    def up(self, wait_established: float | None = None) -> Lab:
        """Build everything, start every daemon; on any failure tear down what was built, then raise.

        With ``wait_established`` (seconds), also wait until every configured session is Established.
        """
        try:
            self._save_state()
            self._build_network()
            # the datastore first (an etcd node), then its documents, then the daemons reading it
            nodes = sorted(self.nodes.values(), key=lambda n: not isinstance(n, EtcdNode))
            for node in nodes:
                node.prepare()
            initial = resources.initial_documents(self.topology)
            if etcd_node(self.topology) is None:
                for file, docs in initial.items():
                    resources.write_documents(self.run_dir / "resources", file, docs)
            for node in nodes:
                node.start()
                if isinstance(node, EtcdNode) and node.name == etcd_node(self.topology):
                    node.apply([doc for docs in initial.values() for doc in docs])
            if wait_established:
                self.wait_established(wait_established)
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Stop every daemon (by pid), delete every namespace of this lab, remove its run directory.

        Idempotent, and safe after a partial ``up()``: every step tolerates what is already gone.
        """
        for node in self.nodes.values():
            if isinstance(node, Speaker | EtcdNode) and node.run_dir.exists():
                node.stop()
        for ns in self.namespaces():
            netns.destroy(ns)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    def wait_established(self, timeout: float) -> None:
        for speaker in self.speakers():
            wait_until(partial(_all_established, speaker), timeout,
                       f"every session of {speaker.name} Established", detail=self.dump)

    def status(self) -> dict[str, dict[str, str]]:
        """Node -> its sessions (peer IP -> state), for every BGP speaker."""
        return {s.name: _safe_sessions(s) for s in self.speakers()}

    def dump(self) -> str:
        return "\n\n".join(node.dump() for node in self.nodes.values())

    # ------------------------------------------------------------ building

    def _build_network(self) -> None:
        for ns in self.namespaces():
            netns.destroy(ns)  # a leftover of an earlier run with the same name
        for node in self.nodes.values():
            netns.create(node.ns)
            for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
                netns.sysctl(node.ns, key, "1" if node.spec.forward else "0")
        for segment in self.topology.segments:
            self._build_segment(segment)
        for node in self.nodes.values():
            self._addresses_and_routes(node)

    def _build_segment(self, segment: Segment) -> None:
        """A link is one veth pair; a lan is a bridge in its own namespace with a veth to each member."""
        ends = segment.ends
        if segment.bridged:
            switch = self.ns_name(segment.name)
            netns.create(switch)
            netns.bridge(switch, "br0")
            for i, end in enumerate(ends):
                netns.veth(self.ns_name(end.node), end.ifname, switch, f"p{i}")
                netns.enslave(switch, f"p{i}", "br0")
        else:
            netns.veth(self.ns_name(ends[0].node), ends[0].ifname, self.ns_name(ends[1].node), ends[1].ifname)
        for end in ends:
            for cidr in (end.v4, end.v6):
                if cidr:
                    netns.add_address(self.ns_name(end.node), end.ifname, cidr)

    def namespaces(self) -> list[str]:
        """Every namespace of this lab: one per node, one per lan."""
        lans = [s.name for s in self.topology.segments if s.bridged]
        return [self.ns_name(n) for n in [*self.nodes, *lans]]

    def _addresses_and_routes(self, node: Node) -> None:
        for cidr in node.spec.loopback:
            netns.add_address(node.ns, "lo", cidr)
        if node.spec.workloads:
            netns.dummy(node.ns, "workloads")
            for cidr in node.spec.workloads:
                netns.add_address(node.ns, "workloads", cidr)
        for route in node.spec.routes:
            netns.add_route(node.ns, route.dst, route.via, route.dev)

    def _save_state(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # traversable (FRR's daemons run as `frr` below it), not listable by others
        os.chmod(self.run_dir, 0o711)
        state = {"name": self.name, "prefix": self.prefix, "topology": dict(self.topology.raw)}
        write_private(self.run_dir / "lab.json", json.dumps(state, indent=1))


def _all_established(speaker: Speaker) -> bool:
    sessions = speaker.sessions()
    return bool(sessions) and all(v == "Established" for v in sessions.values())


def _safe_sessions(speaker: Speaker) -> dict[str, str]:
    try:
        return speaker.sessions()
    except Exception as exc:  # one dead daemon must not hide the others' state
        return {"error": str(exc)}


def attach(name: str, run_root: Path = RUN_ROOT) -> Lab:
    """The lab ``name`` brought up earlier (possibly by another process), from its saved state."""
    state = json.loads((run_root / name / "lab.json").read_text())
    return Lab(state["topology"], name=state["name"], prefix=state["prefix"], run_root=run_root)


def running_labs(run_root: Path = RUN_ROOT) -> list[str]:
    if not run_root.is_dir():
        return []
    return sorted(p.name for p in run_root.iterdir() if (p / "lab.json").exists())


def cleanup_stale(prefix: str, run_root: Path = RUN_ROOT) -> list[str]:
    """Delete every namespace whose name starts with ``prefix`` (killing what runs inside), and the
    saved state of labs using that prefix. For leftovers of crashed runs; returns the namespaces removed."""
    if not prefix.startswith("bgl") or len(prefix) < 4:
        raise ValueError(f"refusing to clean namespaces by a prefix that is not a lab's; got {prefix!r}")
    for name in running_labs(run_root):
        try:
            state = json.loads((run_root / name / "lab.json").read_text())
        except (OSError, ValueError):
            continue
        if str(state.get("prefix", "")).startswith(prefix):
            attach(name, run_root).down()
    removed = netns.list_namespaces(prefix)
    for ns in removed:
        netns.destroy(ns)
    return removed
