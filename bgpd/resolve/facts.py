"""Per-node and cluster-wide facts that peer computation reads (calico-semantics.md §2.1).

Everything here is derived once per `resolve` call: node addresses as Go would print them, the
AS and listen port of every node, an index of nodes by IP, and a selector cache so that each
distinct selector is evaluated at most once per node per call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
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


AddressKey = tuple[int, int]


_MAPPED_PREFIX = 0xFFFF


def address_key(ip: IPv4Address | IPv6Address) -> AddressKey:
    """(version, integer): cheap to hash, and an IPv4-mapped IPv6 address is its IPv4 address,
    as both print the same in Go."""
    value = int(ip)
    if ip.version == 6 and value >> 32 == _MAPPED_PREFIX:
        return (4, value & 0xFFFFFFFF)
    return (ip.version, value)


@dataclass(frozen=True)
class NodeFacts:
    """One Node as peer computation sees it (a thin view: built for every node on each resolve).

    The text forms of the addresses (``ip4``/``ip6``, "" when unset) are computed on first use:
    a resolve touches only the nodes it peers with, and printing IPv6 addresses is not cheap.
    """

    node: Node

    @property
    def name(self) -> str:
        return self.node.meta.name

    @property
    def labels(self) -> Mapping[str, str]:
        return self.node.meta.labels

    @property
    def as_number(self) -> int | None:
        """The node's own AS, None when unset."""
        return self.node.bgp.as_number if self.node.bgp is not None else None

    @property
    def rr(self) -> str:
        """The route-reflector cluster ID, "" when the node is not a route reflector."""
        bgp = self.node.bgp
        return (bgp.route_reflector_cluster_id or "") if bgp is not None else ""

    @cached_property
    def ip4(self) -> str:
        bgp = self.node.bgp
        return ip_text(bgp.ipv4_address.ip) if bgp is not None and bgp.ipv4_address is not None else ""

    @cached_property
    def ip6(self) -> str:
        bgp = self.node.bgp
        return ip_text(bgp.ipv6_address.ip) if bgp is not None and bgp.ipv6_address is not None else ""

    def ip(self, family: Family) -> str:
        return self.ip4 if family == 4 else self.ip6


@dataclass
class Cluster:
    """Cluster-wide facts plus the selector cache (the only mutable part, private to one resolve)."""

    snapshot: Snapshot
    nodes: tuple[NodeFacts, ...]
    by_name: Mapping[str, NodeFacts]
    default: BGPConfiguration | None
    global_as: int
    mesh_enabled: bool
    global_port: int
    node_ports: Mapping[str, int]
    _all_matches: dict[str, tuple[NodeFacts, ...]] = field(default_factory=dict)
    _one_match: dict[tuple[str, str], bool] = field(default_factory=dict)

    @cached_property
    def by_address(self) -> Mapping[AddressKey, Sequence[NodeFacts]]:
        """Nodes by address, in name order; built on first use (only peerIP lookups need it)."""
        index: dict[AddressKey, list[NodeFacts]] = {}
        for n in self.nodes:  # a hot loop on big clusters: no generators, no `.ip` objects
            bgp = n.node.bgp
            if bgp is None:
                continue
            if bgp.ipv4_address is not None:  # an interface converts to its address's integer
                index.setdefault((4, int(bgp.ipv4_address)), []).append(n)
            if bgp.ipv6_address is not None:
                index.setdefault(address_key(bgp.ipv6_address), []).append(n)
        return index

    def owners(self, ip: str) -> Sequence[NodeFacts]:
        """The nodes (in name order) whose IPv4 or IPv6 address is ``ip``."""
        return self.by_address.get(address_key(ip_address(ip)), ())

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
    by_name = {name: NodeFacts(snapshot.nodes[name]) for name in sorted(snapshot.nodes)}
    default = snapshot.bgp_configurations.get(DEFAULT_CONFIG)
    node_ports: dict[str, int] = {}
    for name, config in snapshot.bgp_configurations.items():
        if name.startswith("node.") and config.listen_port is not None:
            node_ports[name.removeprefix("node.")] = config.listen_port
    return Cluster(
        snapshot=snapshot,
        nodes=tuple(by_name.values()),
        by_name=by_name,
        default=default,
        global_as=default.as_number if default and default.as_number is not None else DEFAULT_AS,
        mesh_enabled=default is None or default.node_to_node_mesh_enabled is not False,
        global_port=(default.listen_port or 0) if default else 0,
        node_ports=node_ports,
    )
