"""Phase A: expand BGPPeer resources into keyed peerings (calico-semantics.md §2.2).

Only the keys that can reach node N are computed: scope ``global`` and scope ``node:N``. The
outcome for N is the same as Calico's cluster-wide expansion, because an emit for ``node:X`` can
only be shadowed by ``global`` or by another ``node:X`` emit.

Order, and the deterministic rule for duplicates
------------------------------------------------
Calico makes three passes: global BGPPeers (no ``node``/``nodeSelector``), then the others, then
the reverse peerings of every BGPPeer. Within a pass it visits BGPPeers in Go map order, which is
random, so when two BGPPeers produce the same key (scope, family, IP, port with 0 and 179 equal)
the winner is undefined. bgpd visits BGPPeers **in name order** within each pass, and within one
BGPPeer the remote nodes in name order; the **first emit wins**, and a ``node:N`` emit is dropped
when a ``global`` emit with the same (family, IP, port) exists. The losers are kept in
`Expansion.shadowed` so that `bgpd peers --why` can say which BGPPeer won.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from ipaddress import ip_interface
from typing import Literal

from bgpd.model.errors import ConfigError
from bgpd.model.resources import BGPPeer, SecretKeyRef
from bgpd.resolve.facts import FAMILIES, Cluster, Family, NodeFacts, family_of, ip_text

Scope = Literal["global", "node"]
Key = tuple[Scope, Family, str, int]
DEFAULT_PORT = 179


@dataclass(frozen=True)
class LocalWorkload:
    """One Felix endpoint-status record: a local workload selected by a BGPPeer's
    ``localWorkloadSelector``. bgpd has no source for these yet; callers may pass them in."""

    name: str
    bgp_peer_name: str
    ipv4_nets: tuple[str, ...] = ()
    ipv6_nets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Peering:
    """One keyed peering, with every attribute Phase B needs. ``port`` 0 means none."""

    scope: Scope
    family: Family
    ip: str
    port: int
    as_number: int
    peer: str
    local_as: int = 0
    rr: str = ""
    calico_node: bool = False
    local_workload: bool = False
    reverse: bool = False
    password: SecretKeyRef | None = None
    use_node_ip: bool = True
    restart_time: float | None = None
    keepalive_time: float | None = None
    ttl_security: int = 0
    filters: tuple[str, ...] = ()
    allow_local_as: int = 0
    reachable_by: str | None = None
    next_hop_mode: Literal["Auto", "Self", "Keep"] | None = None
    keep_next_hop: bool = False
    node: str | None = None

    @property
    def key(self) -> Key:
        return (self.scope, self.family, self.ip, 0 if self.port in (0, DEFAULT_PORT) else self.port)

    @property
    def origin(self) -> tuple[str, ...]:
        peer = f"BGPPeer/{self.peer}" + (" (reverse)" if self.reverse else "")
        return (peer, f"Node/{self.node}") if self.node else (peer,)


@dataclass(frozen=True)
class Expansion:
    peerings: tuple[Peering, ...]
    shadowed: tuple[tuple[Peering, Peering], ...]
    errors: tuple[ConfigError, ...]


def _common(p: BGPPeer, scope: Scope) -> Peering:
    """Attributes branches 2 and 3 and reverse peerings take from the BGPPeer itself."""
    return Peering(
        scope=scope, family=4, ip="", port=0, as_number=0, peer=p.name,
        password=p.password, use_node_ip=p.source_address == "UseNodeIP",
        restart_time=p.max_restart_time, keepalive_time=p.keepalive_time,
        ttl_security=p.ttl_security or 0, filters=p.filters,
        reachable_by=ip_text(p.reachable_by) if p.reachable_by is not None else None,
        next_hop_mode=p.next_hop_mode, keep_next_hop=p.keep_original_next_hop,
    )


def _towards_nodes(cluster: Cluster, base: Peering, nodes: Sequence[NodeFacts],
                   families: Sequence[Family], reverse: bool) -> Iterator[Peering]:
    """Branch 2 and reverse peerings: one peering per node and family it has an address in."""
    for m in nodes:
        for fam in families:
            if m.ip(fam):
                yield replace(base, family=fam, ip=m.ip(fam), port=cluster.port_of(m),
                              as_number=cluster.as_of(m), rr=m.rr, reverse=reverse, node=m.name)


def _by_peer_ip(cluster: Cluster, p: BGPPeer, base: Peering) -> Iterator[Peering]:
    assert p.peer_ip is not None
    host = ip_text(p.peer_ip.ip)
    port = p.peer_ip.port or 0
    nodes = cluster.by_ip.get(host, ())
    if not port:
        wanted_as = p.as_number or cluster.global_as
        same_as = [n for n in nodes if cluster.as_of(n) == wanted_as]
        if same_as:
            port = cluster.port_of(same_as[0])
    yield replace(base, family=family_of(host), ip=host, port=port, as_number=p.as_number or 0,
                  local_as=p.local_as_number or 0, calico_node=bool(nodes),
                  allow_local_as=p.num_allowed_local_as_numbers or 0,
                  node=nodes[0].name if nodes else None)


def _local_workloads(p: BGPPeer, scope: Scope, workloads: Sequence[LocalWorkload]) -> Iterator[Peering]:
    for w in workloads:
        if w.bgp_peer_name != p.name:
            continue
        lists: tuple[tuple[Family, tuple[str, ...]], ...] = ((4, w.ipv4_nets), (6, w.ipv6_nets))
        for fam, nets in lists:
            if nets:
                yield Peering(scope=scope, family=fam, ip=ip_text(ip_interface(nets[0]).ip), port=0,
                              as_number=p.as_number or 0, peer=p.name, local_as=p.local_as_number or 0,
                              local_workload=True, use_node_ip=False, filters=p.filters)


def reachable_by_mismatch(p: BGPPeer) -> bool:
    return (p.peer_ip is not None and p.reachable_by is not None
            and p.reachable_by.version != p.peer_ip.ip.version)


def forward(cluster: Cluster, p: BGPPeer, scope: Scope,
            workloads: Sequence[LocalWorkload]) -> Iterator[Peering]:
    """Branches 1-3 for one BGPPeer that applies to the node, in Calico's order of precedence."""
    if p.local_workload_selector is not None:
        yield from _local_workloads(p, scope, workloads)
    elif p.peer_selector is not None:
        yield from _towards_nodes(cluster, _common(p, scope), cluster.matching(p.peer_selector),
                                  FAMILIES, reverse=False)
    elif p.peer_ip is not None and not reachable_by_mismatch(p):
        yield from _by_peer_ip(cluster, p, _common(p, scope))


def applies_to(cluster: Cluster, p: BGPPeer, me: NodeFacts) -> bool:
    """Is ``me`` one of the BGPPeer's local nodes (``node``, ``nodeSelector``, or global)?"""
    if p.node is not None:
        return p.node == me.name
    if p.node_selector is not None:
        return cluster.matches(p.node_selector, me)
    return True


def reverse_families(cluster: Cluster, p: BGPPeer, me: NodeFacts) -> tuple[Family, ...]:
    """The families in which ``me`` is a remote end of ``p`` (its reverse-local set R)."""
    if p.reverse_peering == "Manual" or p.local_workload_selector is not None:
        return ()
    if p.peer_selector is not None:
        return FAMILIES if cluster.matches(p.peer_selector, me) else ()
    if p.peer_ip is None:
        return ()
    host = ip_text(p.peer_ip.ip)
    port = p.peer_ip.port or 0
    node_port = cluster.node_ports.get(me.name)
    if host not in (me.ip4, me.ip6) or cluster.as_of(me) != (p.as_number or cluster.global_as):
        return ()
    # Faithful quirk: a different non-zero cluster listenPort excludes the node even when its own
    # listenPort equals the peer's port.
    if port and not ((node_port is None or node_port == port)
                     and cluster.global_port in (0, port)):
        return ()
    return (family_of(host),)


def reverse_nodes(cluster: Cluster, p: BGPPeer) -> tuple[NodeFacts, ...]:
    """Q: the BGPPeer's local nodes, which become the remote ends of its reverse peerings."""
    if p.node is not None:
        node = cluster.by_name.get(p.node)
        return (node,) if node else ()
    if p.node_selector is not None:
        return cluster.matching(p.node_selector)
    return cluster.nodes


def _peer_error(p: BGPPeer) -> ConfigError | None:
    """Problems Calico accepts silently but a user wants to hear about."""
    where = (p.meta.origin.source, p.meta.origin.doc, "BGPPeer", p.name)
    if reachable_by_mismatch(p):
        return ConfigError(*where, "spec.reachableBy",
                           "not the same address family as peerIP; the BGPPeer is skipped",
                           str(p.reachable_by))
    if p.peer_ip is not None and not p.as_number and p.local_workload_selector is None:
        return ConfigError(*where, "spec.asNumber",
                           "unset or 0 with peerIP: the session gets remote AS 0 (as in Calico), "
                           "which no BGP speaker accepts", p.as_number)
    return None


def expand(cluster: Cluster, me: NodeFacts, workloads: Sequence[LocalWorkload] = ()) -> Expansion:
    peers = [cluster.snapshot.bgp_peers[name] for name in sorted(cluster.snapshot.bgp_peers)]
    kept: dict[Key, Peering] = {}
    shadowed: list[tuple[Peering, Peering]] = []

    def emit(peering: Peering) -> None:
        _, fam, ip, port = peering.key
        winner = kept.get(("global", fam, ip, port)) or kept.get(peering.key)
        if winner is None:
            kept[peering.key] = peering
        else:
            shadowed.append((peering, winner))

    errors = [e for p in peers if applies_to(cluster, p, me) and (e := _peer_error(p)) is not None]
    for p in peers:
        if p.is_global:
            for peering in forward(cluster, p, "global", workloads):
                emit(peering)
    for p in peers:
        if not p.is_global and applies_to(cluster, p, me):
            for peering in forward(cluster, p, "node", workloads):
                emit(peering)
    for p in peers:
        families = reverse_families(cluster, p, me)
        if families:
            for peering in _towards_nodes(cluster, _common(p, "node"), reverse_nodes(cluster, p),
                                          families, reverse=True):
                emit(peering)
    return Expansion(tuple(kept.values()), tuple(shadowed), tuple(errors))
