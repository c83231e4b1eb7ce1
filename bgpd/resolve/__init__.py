"""`resolve(snapshot, node_name) -> DesiredNode`: the sessions, exports and routes of one node.

Pure and deterministic: the same snapshot always gives the same DesiredNode, sessions sorted by
name. The rules are Calico's (calico-semantics.md §2), with one deliberate deviation (mesh remote
AS, see `bgpd.resolve.sessions`) and one deterministic choice where Calico is random (duplicate
BGPPeers: name order, first emit wins, see `bgpd.resolve.peerings`).

Local-workload peers (BGPPeer ``localWorkloadSelector``) come from Felix's endpoint-status
records, which bgpd does not read yet: pass them as ``local_workloads``; without them no
``Local_Workload_*`` session is produced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from bgpd.desired import DesiredNode
from bgpd.model.errors import ConfigError
from bgpd.model.resources import BGPFilter
from bgpd.model.snapshot import Snapshot
from bgpd.resolve.exports import (
    blackholes,
    export_policy,
    exported_prefixes,
    global_service_cidrs,
    static_routes,
)
from bgpd.resolve.facts import Cluster, NodeFacts, cluster_facts
from bgpd.resolve.peerings import LocalWorkload, expand
from bgpd.resolve.sessions import node_sessions

__all__ = ["LocalWorkload", "resolve", "router_id"]

ROUTER_ID_ENV = "CALICO_ROUTER_ID"


def router_id(node_name: str, ip4: str, env: Mapping[str, str]) -> str | None:
    """``CALICO_ROUTER_ID`` (``hash``: the first 4 bytes of SHA-256 of the name, first byte
    reduced by 32 when above 223, so it is never multicast/reserved), else the node's IPv4."""
    value = env.get(ROUTER_ID_ENV, "")
    if value == "hash":
        digest = bytearray(hashlib.sha256(node_name.encode()).digest()[:4])
        if digest[0] > 223:
            digest[0] -= 32
        return ".".join(str(b) for b in digest)
    return value or ip4 or None


def _listen_port(cluster: Cluster, node: str) -> int | None:
    own = cluster.node_config(node)
    if own is not None and own.listen_port is not None:
        return own.listen_port
    return cluster.global_port or None


def _log_severity(cluster: Cluster, node: str) -> str | None:
    own = cluster.node_config(node)
    raw = (own.log_severity_screen if own else None) or (
        cluster.default.log_severity_screen if cluster.default else None)
    if raw is None:
        return None
    return raw.lower() if raw.lower() in ("debug", "info") else "none"


def _missing_node(cluster: Cluster, node_name: str, env: Mapping[str, str]) -> DesiredNode:
    error = ConfigError("<resolve>", 0, "Node", node_name, "",
                        "no Node resource with this name; the node has no sessions")
    return DesiredNode(node=node_name, as_number=cluster.global_as, router_id=router_id(node_name, "", env),
                       listen_port=_listen_port(cluster, node_name), errors=(error,))


def _used_filters(snapshot: Snapshot, names: set[str]) -> dict[str, BGPFilter]:
    return {name: snapshot.bgp_filters[name] for name in sorted(names) if name in snapshot.bgp_filters}


def resolve(snapshot: Snapshot, node_name: str, env: Mapping[str, str] | None = None,
            local_workloads: Sequence[LocalWorkload] = ()) -> DesiredNode:
    env = env or {}
    cluster = cluster_facts(snapshot)
    me: NodeFacts | None = cluster.by_name.get(node_name)
    if me is None:
        return _missing_node(cluster, node_name, env)
    expansion = expand(cluster, me, local_workloads)
    found = node_sessions(cluster, me, expansion.peerings)
    return DesiredNode(
        node=node_name,
        as_number=cluster.as_of(me),
        router_id=router_id(node_name, me.ip4, env),
        listen_port=_listen_port(cluster, node_name),
        ipv4=me.ip4 or None,
        ipv6=me.ip6 or None,
        rr_cluster_id=me.rr or None,
        sessions=found,
        exports=exported_prefixes(cluster, me),
        blackholes=blackholes(cluster, me),
        static_routes=static_routes(expansion.peerings),
        kernel_reject=global_service_cidrs(cluster.default),
        export_policy=export_policy(cluster, me),
        filters=_used_filters(snapshot, {f for s in found for f in s.filters}),
        log_severity=_log_severity(cluster, node_name),
        errors=expansion.errors,
    )
