"""The topology file: parsed and checked into frozen values before anything touches the kernel.

Every problem is collected and reported at once, as ``<source> <path>: <problem>; got <value!r>``.
The schema is documented in netns-lab/README.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KINDS = ("bgpd", "bird", "frr", "router", "host", "etcd")
SPEAKERS = ("bgpd", "bird", "frr")
# node and lan names end namespace names and are Calico node names (DNS labels)
NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# ip(8) interface names are at most 15 bytes
IFNAME_MAX = 15


class TopologyError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid topology:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Endpoint:
    node: str
    ifname: str
    v4: str | None = None  # address/prefixlen
    v6: str | None = None


@dataclass(frozen=True)
class Segment:
    """A layer-2 segment: a ``link`` (veth pair, two ends) or a ``lan`` (a bridge, any number of ends)."""

    name: str
    ends: tuple[Endpoint, ...]
    bridged: bool = False


@dataclass(frozen=True)
class StaticRoute:
    dst: str
    via: str | None = None
    dev: str | None = None


@dataclass(frozen=True)
class Neighbor:
    """One BGP neighbor of a BIRD or FRR node, as the topology file describes it."""

    ip: str
    remote_as: int
    name: str  # the peer's node name when known, else the ip
    port: int = 179
    password: str | None = field(default=None, repr=False)
    ttl_security: int | None = None  # GTSM hop count
    multihop: int | None = None
    passive: bool = False
    graceful_restart: int | None = None  # restart time in seconds
    next_hop_self: bool = False
    source: str | None = None
    local_port: int | None = None  # BIRD only: listen on this port instead of 179

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.ip).version


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kind: str
    asn: int | None = None
    router_id: str | None = None
    loopback: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    routes: tuple[StaticRoute, ...] = ()
    forward: bool = True
    announce: tuple[str, ...] = ()
    neighbors: tuple[Neighbor, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    bgpd_args: tuple[str, ...] = ()
    bgpd_settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: Mapping[str, NodeSpec]
    segments: tuple[Segment, ...]
    resources: tuple[Mapping[str, Any], ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def addresses(self, node: str, family: int = 4) -> list[str]:
        """The node's link addresses (address/len) of one family, in link order."""
        key = "v4" if family == 4 else "v6"
        out = []
        for segment in self.segments:
            for end in segment.ends:
                value = getattr(end, key)
                if end.node == node and value:
                    out.append(value)
        return out

    def router_id(self, node: str) -> str:
        spec = self.nodes[node]
        if spec.router_id:
            return spec.router_id
        candidates = [a for a in spec.loopback if ":" not in a] + self.addresses(node, 4)
        return candidates[0].split("/")[0] if candidates else "10.255.255.255"


def load(source: str | Path | Mapping[str, Any], name: str | None = None) -> Topology:
    """Parse a topology from a YAML file path or an already-loaded mapping."""
    where = "<topology>"
    if isinstance(source, (str, Path)):
        where = str(source)
        data = yaml.safe_load(Path(source).read_text())
        name = name or data.get("name") or Path(source).stem
    else:
        data = dict(source)
    return _Parser(where, data).topology(name or str(data.get("name") or "lab"))


class _Parser:
    def __init__(self, where: str, data: Any) -> None:
        self.where = where
        self.data = data if isinstance(data, Mapping) else {}
        self.problems: list[str] = []
        self.counters: dict[str, int] = {}  # interfaces per node, for the default names eth0, eth1, ...
        if not isinstance(data, Mapping):
            self.bad("", "must be a mapping", data)

    def bad(self, path: str, problem: str, value: object) -> None:
        self.problems.append(f"{self.where} {path or '.'}: {problem}; got {value!r}")

    def topology(self, name: str) -> Topology:
        raw_nodes = self.data.get("nodes") or {}
        if not isinstance(raw_nodes, Mapping) or not raw_nodes:
            self.bad("nodes", "must be a non-empty mapping of name -> node", raw_nodes)
            raw_nodes = {}
        segments = tuple(self.links(raw_nodes) + self.lans(raw_nodes))
        partial = Topology(name, {}, segments)
        for node in raw_nodes:
            if not isinstance(node, str) or not NAME.fullmatch(node):
                self.bad("nodes", "node names must be DNS labels (a-z, 0-9, -)", node)
        nodes = {n: self.node(n, spec, raw_nodes, partial) for n, spec in raw_nodes.items()}
        resources = self.data.get("resources") or []
        if not isinstance(resources, list) or not all(isinstance(r, Mapping) for r in resources):
            self.bad("resources", "must be a list of Calico v3 documents", resources)
            resources = []
        if self.problems:
            raise TopologyError(self.problems)
        return Topology(name, nodes, segments, tuple(resources), self.data)

    def links(self, nodes: Mapping[str, Any]) -> list[Segment]:
        out: list[Segment] = []
        for i, raw in enumerate(self.data.get("links") or []):
            ends = [self.endpoint(f"links[{i}].{side}", raw.get(side) if isinstance(raw, Mapping) else None,
                                  nodes) for side in ("a", "b")]
            if ends[0] and ends[1]:
                out.append(Segment(f"link{i}", (ends[0], ends[1])))
        return out

    def lans(self, nodes: Mapping[str, Any]) -> list[Segment]:
        out: list[Segment] = []
        for i, raw in enumerate(self.data.get("lans") or []):
            path = f"lans[{i}]"
            name = raw.get("name") if isinstance(raw, Mapping) else None
            members = raw.get("members") if isinstance(raw, Mapping) else None
            if not isinstance(name, str) or not name or not isinstance(members, list):
                self.bad(path, "must be {name: <name>, members: [{node:, v4:, v6:}, ...]}", raw)
                continue
            if name in nodes or not NAME.fullmatch(name):
                self.bad(f"{path}.name", "must be a DNS label differing from every node name", name)
            ends = [self.endpoint(f"{path}.members[{j}]", m, nodes) for j, m in enumerate(members)]
            out.append(Segment(name, tuple(e for e in ends if e), bridged=True))
        return out

    def endpoint(self, path: str, raw: Any, nodes: Mapping[str, Any]) -> Endpoint | None:
        if not isinstance(raw, Mapping) or raw.get("node") not in nodes:
            self.bad(path, "must be {node: <a node name>, v4: addr/len, v6: addr/len}", raw)
            return None
        node = str(raw["node"])
        self.counters[node] = self.counters.get(node, 0) + 1
        ifname = str(raw.get("ifname") or f"eth{self.counters[node] - 1}")
        if len(ifname) > IFNAME_MAX:
            self.bad(f"{path}.ifname", f"at most {IFNAME_MAX} characters", ifname)
        v4 = self.interface(f"{path}.v4", raw.get("v4"), 4)
        v6 = self.interface(f"{path}.v6", raw.get("v6"), 6)
        return Endpoint(node, ifname, v4, v6)

    def interface(self, path: str, value: Any, family: int) -> str | None:
        if value is None:
            return None
        try:
            iface = ipaddress.ip_interface(str(value))
        except ValueError:
            self.bad(path, "must be an address with prefix length", value)
            return None
        if iface.version != family or "/" not in str(value):
            self.bad(path, f"must be an IPv{family} address with prefix length", value)
        return str(value)

    def node(self, name: str, raw: Any, nodes: Mapping[str, Any], topo: Topology) -> NodeSpec:
        path = f"nodes.{name}"
        if not isinstance(raw, Mapping) or raw.get("kind") not in KINDS:
            self.bad(f"{path}.kind", f"must be one of {', '.join(KINDS)}", raw)
            return NodeSpec(name, "host")
        kind = str(raw["kind"])
        asn = raw.get("as")
        if kind in ("bird", "frr") and not isinstance(asn, int):
            self.bad(f"{path}.as", "a BIRD or FRR node needs its AS number", asn)
        bgpd = raw.get("bgpd") or {}
        return NodeSpec(
            name=name,
            kind=kind,
            asn=asn if isinstance(asn, int) else None,
            router_id=raw.get("router_id"),
            loopback=tuple(self.addresses(f"{path}.loopback", raw.get("loopback"))),
            workloads=tuple(self.addresses(f"{path}.workloads", raw.get("workloads"))),
            routes=tuple(self.routes(f"{path}.routes", raw.get("routes"))),
            forward=bool(raw.get("forward", kind != "host")),
            announce=tuple(self.prefixes(f"{path}.announce", raw.get("announce"))),
            neighbors=tuple(self.neighbors(path, raw.get("neighbors"), nodes, topo)),
            labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
            bgpd_args=tuple(str(a) for a in bgpd.get("args", [])),
            bgpd_settings=dict(bgpd.get("settings") or {}),
        )

    def addresses(self, path: str, values: Any) -> list[str]:
        return [v for i, x in enumerate(values or []) if (v := self.interface(f"{path}[{i}]", x, _fam(x)))]

    def prefixes(self, path: str, values: Any) -> list[str]:
        out = []
        for i, value in enumerate(values or []):
            try:
                out.append(str(ipaddress.ip_network(str(value))))
            except ValueError:
                self.bad(f"{path}[{i}]", "must be a prefix with no host bits set", value)
        return out

    def routes(self, path: str, values: Any) -> list[StaticRoute]:
        out = []
        for i, raw in enumerate(values or []):
            if not isinstance(raw, Mapping) or not raw.get("dst") or not (raw.get("via") or raw.get("dev")):
                self.bad(f"{path}[{i}]", "must be {dst: prefix, via: address} (or dev: ifname)", raw)
                continue
            out.append(StaticRoute(str(raw["dst"]), raw.get("via"), raw.get("dev")))
        return out

    def neighbors(self, path: str, values: Any, nodes: Mapping[str, Any], topo: Topology) -> list[Neighbor]:
        out = []
        for i, raw in enumerate(values or []):
            where = f"{path}.neighbors[{i}]"
            if not isinstance(raw, Mapping):
                self.bad(where, "must be a mapping", raw)
                continue
            neighbor = self.neighbor(where, path.split(".", 1)[1], raw, nodes, topo)
            if neighbor:
                out.append(neighbor)
        return out

    def neighbor(self, where: str, me: str, raw: Mapping[str, Any], nodes: Mapping[str, Any],
                 topo: Topology) -> Neighbor | None:
        peer = raw.get("peer")
        ip = raw.get("ip") or (self.peer_ip(me, str(peer), int(raw.get("family", 4)), topo) if peer else None)
        if not ip:
            self.bad(where, "needs `ip`, or `peer` naming a node on a link shared with this one", dict(raw))
            return None
        peer_raw = nodes.get(peer) if peer else None
        remote_as = raw.get("as", peer_raw.get("as") if isinstance(peer_raw, Mapping) else None)
        if not isinstance(remote_as, int):
            self.bad(f"{where}.as", "needs the remote AS (or a peer node with `as`)", remote_as)
            return None
        gr = raw.get("graceful_restart")
        label = raw.get("name") or peer or ip
        return Neighbor(
            ip=str(ip), remote_as=remote_as, name=str(label), port=int(raw.get("port", 179)),
            password=raw.get("password"), ttl_security=raw.get("ttl_security"),
            multihop=raw.get("multihop"), passive=bool(raw.get("passive", False)),
            graceful_restart=(120 if gr is True else int(gr) if gr else None),
            next_hop_self=bool(raw.get("next_hop_self", False)), source=raw.get("source"),
            local_port=int(raw["local_port"]) if raw.get("local_port") else None,
        )

    def peer_ip(self, me: str, peer: str, family: int, topo: Topology) -> str | None:
        key = "v4" if family == 4 else "v6"
        for segment in topo.segments:
            nodes = {end.node for end in segment.ends}
            for end in segment.ends:
                if me in nodes and end.node == peer and getattr(end, key):
                    return str(getattr(end, key)).split("/")[0]
        return None


def _fam(value: Any) -> int:
    return 6 if ":" in str(value) else 4
