"""Per-node and cluster-wide facts that peer computation reads (calico-semantics.md §2.1).

Everything here is derived once per `resolve` call: node addresses as Go would print them, the
AS and listen port of every node, an index of nodes by IP, and a selector cache so that each
distinct selector is evaluated at most once per node per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal

from bgpd.model.resources import BGPConfiguration, Node
from bgpd.model.snapshot import Snapshot
from bgpd.selector import Selector

Family = Literal[4, 6]
FAMILIES: tuple[Family, Family] = (4, 6)
DEFAULT_AS = 64512
DEFAULT_CONFIG = "default"
MESH_ORIGIN = "BGPConfiguration/default"


def ip_text(ip: IPv4Address | IPv6Address) -> str:
    """The address as Go's ``net.IP.String()`` prints it (IPv4-mapped IPv6 prints dotted)."""
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def family_of(ip: str) -> Family:
    return 4 if isinstance(ip_address(ip), IPv4Address) else 6


@dataclass(frozen=True)
class NodeFacts:
    """One Node as peer computation sees it: IPs are "" when unset, ``as_number`` None when unset."""

    name: str
    labels: Mapping[str, str]
    ip4: str
    ip6: str
    as_number: int | None
    rr: str

    def ip(self, family: Family) -> str:
        return self.ip4 if family == 4 else self.ip6


def node_facts(node: Node) -> NodeFacts:
    bgp = node.bgp
    if bgp is None:
        return NodeFacts(node.name, node.meta.labels, "", "", None, "")
    ip4 = ip_text(bgp.ipv4_address.ip) if bgp.ipv4_address is not None else ""
    ip6 = ip_text(bgp.ipv6_address.ip) if bgp.ipv6_address is not None else ""
    return NodeFacts(node.name, node.meta.labels, ip4, ip6, bgp.as_number,
                     bgp.route_reflector_cluster_id or "")


@dataclass
class Cluster:
    """Cluster-wide facts plus the selector cache (the only mutable part, private to one resolve)."""

    snapshot: Snapshot
    nodes: tuple[NodeFacts, ...]
    by_name: Mapping[str, NodeFacts]
    by_ip: Mapping[str, tuple[NodeFacts, ...]]
    default: BGPConfiguration | None
    global_as: int
    mesh_enabled: bool
    global_port: int
    node_ports: Mapping[str, int]
    _all_matches: dict[str, tuple[NodeFacts, ...]] = field(default_factory=dict)
    _one_match: dict[tuple[str, str], bool] = field(default_factory=dict)

    def as_of(self, node: NodeFacts) -> int:
        """AS(n): the node's own AS, else the cluster default."""
        return node.as_number if node.as_number is not None else self.global_as

    def port_of(self, node: NodeFacts) -> int:
        """PORT(n): the node's listenPort, else the default's; 0 means "no port"."""
        return self.node_ports.get(node.name, self.global_port)

    def node_config(self, node_name: str) -> BGPConfiguration | None:
        return self.snapshot.bgp_configurations.get(f"node.{node_name}")

    def matches(self, selector: Selector, node: NodeFacts) -> bool:
        key = (str(selector), node.name)
        hit = self._one_match.get(key)
        if hit is None:
            hit = self._one_match[key] = selector.matches(node.labels)
        return hit

    def matching(self, selector: Selector) -> tuple[NodeFacts, ...]:
        """Every node the selector matches, in name order; one scan per distinct selector."""
        key = str(selector)
        found = self._all_matches.get(key)
        if found is None:
            found = self._all_matches[key] = tuple(n for n in self.nodes if selector.matches(n.labels))
        return found


def cluster_facts(snapshot: Snapshot) -> Cluster:
    nodes = tuple(node_facts(snapshot.nodes[name]) for name in sorted(snapshot.nodes))
    by_ip: dict[str, list[NodeFacts]] = {}
    for n in nodes:
        for ip in (n.ip4, n.ip6):
            if ip:
                by_ip.setdefault(ip, []).append(n)
    default = snapshot.bgp_configurations.get(DEFAULT_CONFIG)
    node_ports: dict[str, int] = {}
    for name, config in snapshot.bgp_configurations.items():
        if name.startswith("node.") and config.listen_port is not None:
            node_ports[name.removeprefix("node.")] = config.listen_port
    return Cluster(
        snapshot=snapshot,
        nodes=nodes,
        by_name={n.name: n for n in nodes},
        by_ip={ip: tuple(ns) for ip, ns in by_ip.items()},
        default=default,
        global_as=default.as_number if default and default.as_number is not None else DEFAULT_AS,
        mesh_enabled=default is None or default.node_to_node_mesh_enabled is not False,
        global_port=(default.listen_port or 0) if default else 0,
        node_ports=node_ports,
    )
