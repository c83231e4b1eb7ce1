"""Phase B: the sessions node N runs, with their attributes (calico-semantics.md §2.3-§2.4).

One deliberate deviation from Calico's master (DESIGN.md §3): a mesh session's remote AS is the
peer node's own AS, else the cluster default (globalAS), as Calico <= 3.31 did; master uses the
local node's AS, which breaks the mesh once one node has its own AS.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from bgpd.desired import DEFAULT_BGP_PORT, DesiredSession, NextHop, Password, SessionKind
from bgpd.model.resources import SecretKeyRef
from bgpd.model.snapshot import Snapshot
from bgpd.resolve.facts import FAMILIES, MESH_ORIGIN, Cluster, Family, NodeFacts
from bgpd.resolve.peerings import PeerAttrs, Peering


def round_seconds(seconds: float | None) -> int | None:
    """Go's ``math.Round``: half away from zero."""
    if seconds is None:
        return None
    return int(math.copysign(math.floor(abs(seconds) + 0.5), seconds))


def password(snapshot: Snapshot, ref: SecretKeyRef | None) -> Password | None:
    """A Secret key in calico-node's namespace; missing Secret or key means no password."""
    if ref is None:
        return None
    secret = snapshot.secrets.get((snapshot.secret_namespace, ref.name))
    value = secret.data.get(ref.key) if secret is not None else None
    return Password(value) if value is not None else None


def session_name(kind: SessionKind, ip: str, port: int = 0) -> str:
    name = f"{kind}_{ip.replace('.', '_').replace(':', '_')}"
    return f"{name}_port_{port}" if port > 0 else name


def passive_by_address(peer_ip: str, my_ip: str) -> bool:
    """The side with the smaller address *as a string* connects; the other waits."""
    return peer_ip > my_ip


def mesh_sessions(cluster: Cluster, me: NodeFacts, family: Family) -> Iterator[DesiredSession]:
    my_ip = me.ip(family)
    if me.rr or not cluster.mesh_enabled:
        return
    default = cluster.default
    pw = password(cluster.snapshot, default.node_mesh_password if default else None)
    restart = round_seconds(default.node_mesh_max_restart_time if default else None)
    local_as = cluster.as_of(me)
    seen: set[str] = set()
    for m in cluster.nodes:
        ip = m.ip(family)
        if not ip or ip == my_ip or m.rr or ip in seen:
            continue
        seen.add(ip)
        remote_as = cluster.as_of(m)  # the deviation: never the local node's AS
        yield DesiredSession(
            name=session_name("Mesh", ip), family=family, kind="Mesh", peer_ip=ip,
            port=cluster.port_of(m) or DEFAULT_BGP_PORT, remote_as=remote_as, local_as=local_as,
            ibgp=remote_as == local_as, passive=passive_by_address(ip, my_ip), rr_client=False,
            rr_cluster_id=None, password=pw, ttl_security=None, max_restart_time=restart,
            keepalive_time=None, source_address=my_ip, next_hop="auto", allow_local_as=None,
            filters=(), reachable_by=None, origin=(MESH_ORIGIN, f"Node/{m.name}"), peer_node=m.name,
        )


_NEXT_HOP: dict[str, NextHop] = {"Self": "self", "Keep": "keep", "Auto": "auto"}


def _next_hop(attrs: PeerAttrs, ibgp: bool) -> NextHop:
    """``nextHopMode`` wins; legacy ``keepOriginalNextHop`` applies to eBGP sessions only."""
    if attrs.next_hop_mode is not None:
        return _NEXT_HOP[attrs.next_hop_mode]
    return "keep" if attrs.keep_next_hop and not ibgp else "auto"


def _kind(p: Peering) -> SessionKind:
    if p.local_workload:
        return "Local_Workload"
    return "Global" if p.scope == "global" else "Node"


def explicit_session(cluster: Cluster, me: NodeFacts, p: Peering) -> DesiredSession:
    my_ip = me.ip(p.family)
    local_as = p.local_as or cluster.as_of(me)
    ibgp = p.as_number == local_as
    rr_client = ibgp and bool(me.rr) and p.rr != me.rr
    if p.local_workload:
        passive = True
    else:
        passive = p.scope == "global" and p.calico_node and passive_by_address(p.ip, my_ip)
    a = p.attrs
    filters = tuple(f for f in a.filters if f in cluster.snapshot.bgp_filters)
    return DesiredSession(
        name=session_name(_kind(p), p.ip, p.port), family=p.family, kind=_kind(p), peer_ip=p.ip,
        port=p.port or DEFAULT_BGP_PORT, remote_as=p.as_number, local_as=local_as, ibgp=ibgp,
        passive=passive, rr_client=rr_client, rr_cluster_id=me.rr if rr_client else None,
        password=password(cluster.snapshot, a.password),
        ttl_security=a.ttl_security if a.ttl_security > 0 else None,
        max_restart_time=round_seconds(a.restart_time), keepalive_time=round_seconds(a.keepalive_time),
        source_address=my_ip if a.use_node_ip else None, next_hop=_next_hop(a, ibgp),
        allow_local_as=p.allow_local_as if p.allow_local_as > 0 else None, filters=filters,
        reachable_by=a.reachable_by, origin=p.origin, peer_node=p.node,
    )


def node_sessions(cluster: Cluster, me: NodeFacts,
                  peerings: tuple[Peering, ...]) -> tuple[DesiredSession, ...]:
    """Mesh plus explicit sessions of every family the node has an address in, sorted by name."""
    found: list[DesiredSession] = []
    for family in FAMILIES:
        my_ip = me.ip(family)
        if not my_ip:
            continue  # the family is disabled on this node
        found.extend(mesh_sessions(cluster, me, family))
        found.extend(explicit_session(cluster, me, p) for p in peerings
                     if p.family == family and p.ip != my_ip)
    return tuple(sorted(found, key=lambda s: s.name))
