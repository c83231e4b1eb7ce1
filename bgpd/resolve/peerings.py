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
when a ``global`` emit with the same (family, IP, port) exists. With ``trace=True`` the losers
are kept in `Expansion.shadowed`, so that `bgpd peers --why` can say which BGPPeer won.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import ip_interface
from typing import Literal

from bgpd.desired import DEFAULT_BGP_PORT
from bgpd.model.errors import ConfigError
from bgpd.model.resources import BGPPeer, SecretKeyRef
from bgpd.resolve.facts import FAMILIES, Cluster, Family, NodeFacts, family_of, ip_text

Scope = Literal["global", "node"]
Key = tuple[Scope, Family, str, int]


@dataclass(frozen=True)
class LocalWorkload:
    """One Felix endpoint-status record: a local workload selected by a BGPPeer's
    ``localWorkloadSelector``. bgpd has no source for these yet; callers may pass them in."""

    name: str
    bgp_peer_name: str
    ipv4_nets: tuple[str, ...] = ()
    ipv6_nets: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeerAttrs:
    """What every peering of one BGPPeer shares (built once per BGPPeer, not per remote end)."""

    peer: str
    password: SecretKeyRef | None = None
    use_node_ip: bool = True
    restart_time: float | None = None
    keepalive_time: float | None = None
    ttl_security: int = 0
    filters: tuple[str, ...] = ()
    reachable_by: str | None = None
    next_hop_mode: Literal["Auto", "Self", "Keep"] | None = None
    keep_next_hop: bool = False


@dataclass(frozen=True)
class Peering:
    """One keyed peering: its remote end plus the BGPPeer's shared attributes. ``port`` 0 = none."""

    scope: Scope
    family: Family
    ip: str
    port: int
    as_number: int
    attrs: PeerAttrs
    local_as: int = 0
    rr: str = ""
    calico_node: bool = False
    local_workload: bool = False
    reverse: bool = False
    allow_local_as: int = 0
    node: str | None = None

    @property
    def key(self) -> Key:
        return make_key(self.scope, self.family, self.ip, self.port)

    @property
    def peer(self) -> str:
        return self.attrs.peer

    @property
    def origin(self) -> tuple[str, ...]:
        peer = f"BGPPeer/{self.peer}" + (" (reverse)" if self.reverse else "")
        return (peer, f"Node/{self.node}") if self.node else (peer,)


@dataclass(frozen=True)
class Shadow:
    """An emit dropped because its key was taken ("first emit wins")."""

    peer: str
    reverse: bool
    key: Key
    winner: Peering


@dataclass(frozen=True)
class Expansion:
    peerings: tuple[Peering, ...]
    shadowed: tuple[Shadow, ...]
    errors: tuple[ConfigError, ...]


def make_key(scope: Scope, family: Family, ip: str, port: int) -> Key:
    return (scope, family, ip, 0 if port in (0, DEFAULT_BGP_PORT) else port)


def peer_attrs(p: BGPPeer) -> PeerAttrs:
    """The attributes branches 2 and 3 and reverse peerings take from the BGPPeer itself."""
    return PeerAttrs(
        peer=p.name, password=p.password, use_node_ip=p.source_address == "UseNodeIP",
        restart_time=p.max_restart_time, keepalive_time=p.keepalive_time,
        ttl_security=p.ttl_security or 0, filters=p.filters,
        reachable_by=ip_text(p.reachable_by) if p.reachable_by is not None else None,
        next_hop_mode=p.next_hop_mode, keep_next_hop=p.keep_original_next_hop,
    )


def reachable_by_mismatch(p: BGPPeer) -> bool:
    return (p.peer_ip is not None and p.reachable_by is not None
            and p.reachable_by.version != p.peer_ip.ip.version)


def by_peer_ip(cluster: Cluster, p: BGPPeer, scope: Scope) -> Peering:
    """Branch 3: a peerIP BGPPeer. The port comes from a Calico node with that IP and AS if unset."""
    assert p.peer_ip is not None
    host = ip_text(p.peer_ip.ip)
    port = p.peer_ip.port or 0
    nodes = cluster.owners(host)
    if not port:
        wanted_as = p.as_number or cluster.global_as
        same_as = [n for n in nodes if cluster.as_of(n) == wanted_as]
        if same_as:
            port = cluster.port_of(same_as[0])
    return Peering(scope=scope, family=family_of(host), ip=host, port=port, as_number=p.as_number or 0,
                   attrs=peer_attrs(p), local_as=p.local_as_number or 0, calico_node=bool(nodes),
                   allow_local_as=p.num_allowed_local_as_numbers or 0,
                   node=nodes[0].name if nodes else None)


def local_workloads(p: BGPPeer, scope: Scope, workloads: Sequence[LocalWorkload]) -> Iterator[Peering]:
    """Branch 1: one passive peering per address of each local workload this BGPPeer selected."""
    attrs = PeerAttrs(peer=p.name, use_node_ip=False, filters=p.filters)
    for w in workloads:
        if w.bgp_peer_name != p.name:
            continue
        lists: tuple[tuple[Family, tuple[str, ...]], ...] = ((4, w.ipv4_nets), (6, w.ipv6_nets))
        for fam, nets in lists:
            if nets:
                yield Peering(scope=scope, family=fam, ip=ip_text(ip_interface(nets[0]).ip), port=0,
                              as_number=p.as_number or 0, attrs=attrs, local_as=p.local_as_number or 0,
                              local_workload=True)


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


def _peer_error(p: BGPPeer, me: NodeFacts) -> ConfigError | None:
    """Problems Calico accepts silently but a user wants to hear about, on this node."""
    where = (p.meta.origin.source, p.meta.origin.doc, "BGPPeer", p.name)
    if reachable_by_mismatch(p):
        return ConfigError(*where, "spec.reachableBy",
                           "not the same address family as peerIP; the BGPPeer is skipped",
                           str(p.reachable_by))
    # A peerIP BGPPeer without asNumber naming this node is the usual way to get reverse
    # peerings ("0 means the cluster AS" there); only a session it makes here is broken.
    if p.peer_ip is not None and not p.as_number and ip_text(p.peer_ip.ip) not in (me.ip4, me.ip6):
        return ConfigError(*where, "spec.asNumber",
                           "unset or 0 with peerIP: the session gets remote AS 0 (as in Calico), "
                           "which no BGP speaker accepts", p.as_number)
    return None


class _Emitter:
    """First emit wins; a node-scoped emit also loses to a global one with the same (family, IP, port).

    Peerings towards a set of nodes are emitted key first and built only when kept. A set of remote
    nodes already emitted in full in the same scope and families can only produce losers, so it is
    skipped unless ``trace`` asks for every loser (`bgpd peers --why`).
    """

    def __init__(self, trace: bool) -> None:
        self.kept: dict[Key, Peering] = {}
        self.shadowed: list[Shadow] = []
        self.trace = trace
        self._done: set[tuple[Scope, str, tuple[Family, ...]]] = set()

    def _winner(self, key: Key) -> Peering | None:
        return self.kept.get(("global", *key[1:])) or self.kept.get(key)

    def one(self, peering: Peering) -> None:
        winner = self._winner(peering.key)
        if winner is None:
            self.kept[peering.key] = peering
        elif self.trace:
            self.shadowed.append(Shadow(peering.peer, peering.reverse, peering.key, winner))

    def towards(self, cluster: Cluster, scope: Scope, attrs: PeerAttrs, *, nodes_id: str,
                nodes: Sequence[NodeFacts], families: tuple[Family, ...], reverse: bool) -> None:
        """Branch 2 and reverse peerings: IP, AS, port and rr of each remote node."""
        done = (scope, nodes_id, families)
        if done in self._done and not self.trace:
            return
        self._done.add(done)
        for m in nodes:
            for fam in families:
                ip = m.ip(fam)
                if not ip:
                    continue
                port = cluster.port_of(m)
                key = make_key(scope, fam, ip, port)
                winner = self._winner(key)
                if winner is None:
                    self.kept[key] = Peering(scope, fam, ip, port, cluster.as_of(m), attrs, rr=m.rr,
                                             reverse=reverse, node=m.name)
                elif self.trace:
                    self.shadowed.append(Shadow(attrs.peer, reverse, key, winner))


def _forward(cluster: Cluster, emit: _Emitter, p: BGPPeer, scope: Scope,
             workloads: Sequence[LocalWorkload]) -> None:
    """Branches 1-3 for one BGPPeer that applies to the node, in Calico's order of precedence."""
    if p.local_workload_selector is not None:
        for peering in local_workloads(p, scope, workloads):
            emit.one(peering)
    elif p.peer_selector is not None:
        emit.towards(cluster, scope, peer_attrs(p), nodes_id=f"selector:{p.peer_selector}",
                     nodes=cluster.matching(p.peer_selector), families=FAMILIES, reverse=False)
    elif p.peer_ip is not None and not reachable_by_mismatch(p):
        emit.one(by_peer_ip(cluster, p, scope))


def _reverse_id(p: BGPPeer) -> str:
    if p.node is not None:
        return f"node:{p.node}"
    return f"selector:{p.node_selector}" if p.node_selector is not None else "all"


def expand(cluster: Cluster, me: NodeFacts, workloads: Sequence[LocalWorkload] = (),
           trace: bool = False) -> Expansion:
    peers = [cluster.snapshot.bgp_peers[name] for name in sorted(cluster.snapshot.bgp_peers)]
    emit = _Emitter(trace)
    errors = [e for p in peers if applies_to(cluster, p, me) and (e := _peer_error(p, me)) is not None]
    for p in peers:
        if p.is_global:
            _forward(cluster, emit, p, "global", workloads)
    for p in peers:
        if not p.is_global and applies_to(cluster, p, me):
            _forward(cluster, emit, p, "node", workloads)
    for p in peers:
        families = reverse_families(cluster, p, me)
        if families:
            emit.towards(cluster, "node", peer_attrs(p), nodes_id=_reverse_id(p),
                         nodes=reverse_nodes(cluster, p), families=families, reverse=True)
    return Expansion(tuple(emit.kept.values()), tuple(emit.shadowed), tuple(errors))
