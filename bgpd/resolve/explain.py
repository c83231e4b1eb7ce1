"""`why(snapshot, node_name, peer_ip)`: human reasons a session to an address exists or does not.

It replays the same rules `resolve` uses (same functions, same order), then reports, for the
address asked about: the sessions that exist, the node's own family/self checks, the mesh rules
(mesh disabled, route reflectors, no Node with that address), and every BGPPeer that names the
address or could select a node with it (wrong node, selector not matching with the selector's
text, reachableBy family mismatch, reversePeering Manual, duplicate key shadowed by another BGPPeer).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from ipaddress import ip_address

from bgpd.model.resources import BGPPeer
from bgpd.model.snapshot import Snapshot
from bgpd.resolve import resolve
from bgpd.resolve.facts import Cluster, Family, NodeFacts, cluster_facts, family_of, ip_text
from bgpd.resolve.peerings import (
    Expansion,
    LocalWorkload,
    applies_to,
    expand,
    reachable_by_mismatch,
    reverse_nodes,
)


def _labels(node: NodeFacts) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(node.labels.items())) + "}"


def _describe(scope: str, family: int, ip: str, port: int) -> str:
    where = f"[{ip}]:{port}" if port and family == 6 else f"{ip}:{port}" if port else ip
    return f"{'global' if scope == 'global' else 'node-specific'} peering to {where}"


def _not_local(cluster: Cluster, p: BGPPeer, me: NodeFacts) -> str | None:
    """Why BGPPeer ``p`` does not apply to this node, or None when it does."""
    if applies_to(cluster, p, me):
        return None
    if p.node is not None:
        return f"BGPPeer/{p.name} applies only to node {p.node!r}, not {me.name!r}"
    return (f"BGPPeer/{p.name} nodeSelector {str(p.node_selector)!r} does not match Node/{me.name} "
            f"(labels {_labels(me)})")


def _mesh(cluster: Cluster, me: NodeFacts, ip: str, family: Family) -> Iterator[str]:
    owners = [m for m in cluster.owners(ip) if m.name != me.name]
    if not owners:
        if ip != me.ip(family):
            yield f"no Node has the address {ip}, so there is no mesh session to it"
        return
    for m in owners:
        if not cluster.mesh_enabled:
            yield (f"the node-to-node mesh is disabled (BGPConfiguration/default nodeToNodeMeshEnabled: "
                   f"false), so there is no mesh session to Node/{m.name}")
        elif me.rr:
            yield (f"Node/{me.name} is a route reflector (cluster ID {me.rr}); route reflectors take no "
                   f"part in the mesh, so there is no mesh session to Node/{m.name}")
        elif m.rr:
            yield (f"Node/{m.name} is a route reflector (cluster ID {m.rr}); route reflectors are left "
                   f"out of the mesh and are reached only through BGPPeers")
        elif ip == me.ip(family):
            yield f"Node/{m.name} has this node's own address {ip}; nodes with the same address never peer"


def _peer(cluster: Cluster, me: NodeFacts, ip: str, p: BGPPeer) -> Iterator[str]:
    owners = cluster.owners(ip)
    if p.peer_ip is not None and ip_text(p.peer_ip.ip) == ip:
        reason = _not_local(cluster, p, me)
        if reason:
            yield reason
        elif reachable_by_mismatch(p):
            yield (f"BGPPeer/{p.name} is skipped: reachableBy {p.reachable_by} is not the same address "
                   f"family as peerIP {ip}")
    if p.peer_selector is not None:
        reason = _not_local(cluster, p, me)
        for m in owners:
            if not p.peer_selector.matches(m.labels):
                yield (f"BGPPeer/{p.name} peerSelector {str(p.peer_selector)!r} does not match Node/{m.name} "
                       f"(labels {_labels(m)})")
            elif reason:
                yield reason
        selected = reverse_nodes(cluster, p)
        for m in owners:
            if m in selected and m.name != me.name and p.local_workload_selector is None:
                if p.reverse_peering == "Manual":
                    yield (f"BGPPeer/{p.name} has reversePeering: Manual, so Node/{m.name}'s peering with "
                           f"this node is not mirrored here")
                elif not p.peer_selector.matches(me.labels):
                    yield (f"BGPPeer/{p.name} makes Node/{m.name} peer with the nodes its peerSelector "
                           f"{str(p.peer_selector)!r} matches, and that does not match Node/{me.name} "
                           f"(labels {_labels(me)})")


def _shadowed(expansion: Expansion, ip: str) -> Iterator[str]:
    for loser in expansion.shadowed:
        winner = loser.winner
        if loser.key[2] == ip and loser.peer != winner.peer:
            reverse = " (reverse)" if loser.reverse else ""
            yield (f"BGPPeer/{loser.peer}'s {_describe(*loser.key)}{reverse} is "
                   f"shadowed by BGPPeer/{winner.peer}'s {_describe(*winner.key)}: same address and port; "
                   f"global BGPPeers come first, then node-specific, then reverse peerings, each in name "
                   f"order, and the first wins")


def why(snapshot: Snapshot, node_name: str, peer_ip: str, env: Mapping[str, str] | None = None,
        local_workloads: Sequence[LocalWorkload] = ()) -> list[str]:
    cluster = cluster_facts(snapshot)
    me = cluster.by_name.get(node_name)
    if me is None:
        return [f"there is no Node named {node_name!r}, so it has no sessions at all"]
    try:
        ip = ip_text(ip_address(peer_ip.strip("[]")))
    except ValueError:
        return [f"{peer_ip!r} is not an IP address"]
    family = family_of(ip)
    reasons: list[str] = [
        f"session {s.name} exists ({s.kind}, remote AS {s.remote_as}, port {s.port}), "
        f"made by {', '.join(s.origin)}"
        for s in resolve(snapshot, node_name, env, local_workloads).sessions if s.peer_ip == ip]
    if not reasons:
        reasons.append(f"Node/{me.name} has no session to {ip}:")
    if not me.ip(family):
        reasons.append(f"Node/{me.name} has no IPv{family} address, so it has no IPv{family} sessions")
    elif ip == me.ip(family):
        reasons.append(f"{ip} is Node/{me.name}'s own address; a node never peers with itself")
    reasons += _mesh(cluster, me, ip, family)
    before = len(reasons)
    expansion = expand(cluster, me, local_workloads, trace=True)
    made = {k.peer for k in expansion.peerings if k.ip == ip}
    for name in sorted(snapshot.bgp_peers):
        if name not in made:  # a BGPPeer that made a session here needs no excuse for its other rules
            reasons += _peer(cluster, me, ip, snapshot.bgp_peers[name])
    reasons += _shadowed(expansion, ip)
    if len(reasons) == before and not any(r.startswith("session ") for r in reasons):
        reasons.append(f"no BGPPeer names {ip} or selects a node with that address")
    return reasons
