"""Frozen facts about the RIB's sessions (`PeerInfo`) and about the node itself (`LocalInfo`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bgpd.bgp import FAMILIES, Family, PathAttributes
from bgpd.desired import DesiredNode, DesiredSession, Export, ExportPolicy, NextHop
from bgpd.model.resources import BGPFilter, IPNetwork

# A Calico node that learns more than this from one session is being flooded (a leaked full table
# is ~1M IPv4 routes); 250k leaves room for large fabrics and the 100k-route case of issue 4.
DEFAULT_MAX_PREFIXES = 250_000

# Calico's normal route priority (ipv4/ipv6NormalRoutePriority default): local routes are sent with
# LOCAL_PREF = 2147483647 - 1024, as calico-node's export filter does (calico-semantics.md §2.5).
PRIORITY_BASE = 2147483647
NORMAL_ROUTE_PRIORITY = 1024
DEFAULT_LOCAL_PREF = 100


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One session as the RIB sees it.

    ``router_id`` and ``gr_restart_time`` come from the peer's OPEN (``gr_restart_time is None``:
    the peer did not offer graceful restart). ``filters`` are the session's BGPFilters in order.
    ``local_address`` is our source address on the session, the next hop when we announce "self"
    (the literal ``"self"`` is sent when it is not known, for the speaker to resolve).
    ``max_prefixes=None`` disables the limit.
    """

    name: str
    peer_ip: str
    remote_as: int
    local_as: int
    ibgp: bool
    router_id: str | None = None
    rr_client: bool = False
    gr_restart_time: float | None = None
    families: tuple[Family, ...] = FAMILIES
    filters: tuple[BGPFilter, ...] = ()
    allow_local_as: int | None = None
    next_hop: NextHop = "auto"
    local_address: str | None = None
    max_prefixes: int | None = DEFAULT_MAX_PREFIXES

    @classmethod
    def from_session(
        cls,
        session: DesiredSession,
        filters: Mapping[str, BGPFilter],
        *,
        router_id: str | None = None,
        gr_restart_time: float | None = None,
        max_prefixes: int | None = DEFAULT_MAX_PREFIXES,
        node: DesiredNode | None = None,
    ) -> PeerInfo:
        """``node``: its address of the session's family is our next hop when the session has no
        source address (Calico's ``sourceAddress: None``: the kernel would pick that one)."""
        family: Family = "ipv4 unicast" if session.family == 4 else "ipv6 unicast"
        local_address = session.source_address
        if local_address is None and node is not None:
            local_address = node.ipv4 if session.family == 4 else node.ipv6
        return cls(
            name=session.name, peer_ip=session.peer_ip, remote_as=session.remote_as,
            local_as=session.local_as, ibgp=session.ibgp, router_id=router_id,
            rr_client=session.rr_client, gr_restart_time=gr_restart_time, families=(family,),
            # Names of missing filters are skipped silently, as Calico does (§1.4).
            filters=tuple(filters[n] for n in session.filters if n in filters),
            allow_local_as=session.allow_local_as, next_hop=session.next_hop,
            local_address=local_address, max_prefixes=max_prefixes,
        )


@dataclass(frozen=True, slots=True)
class LocalInfo:
    """The node: its AS and ids, what it originates, and what must never reach the kernel.

    ``cluster_id`` set makes the node a route reflector. ``blackholes`` are installed as blackhole
    routes; ``static_routes`` (``reachableBy``: destination, gateway) are installed as they are, over
    any learned route for the same prefix (BIRD's static protocol beats BGP by preference);
    learned routes for any exported prefix are never installed; learned routes inside
    ``kernel_reject`` stay in the RIB (and may be reflected) but are not installed; default routes
    are installed only with ``install_default``.
    """

    as_number: int
    router_id: str | None = None
    cluster_id: str | None = None
    exports: tuple[Export, ...] = ()
    blackholes: frozenset[str] = frozenset()
    static_routes: tuple[tuple[str, str], ...] = ()
    kernel_reject: tuple[IPNetwork, ...] = ()
    export_policy: ExportPolicy = field(default_factory=ExportPolicy)
    install_default: bool = False

    @classmethod
    def from_desired(cls, node: DesiredNode, *, install_default: bool = False) -> LocalInfo:
        return cls(
            as_number=node.as_number, router_id=node.router_id,
            cluster_id=node.rr_cluster_id, exports=node.exports,
            blackholes=frozenset(str(b) for b in node.blackholes),
            static_routes=tuple((str(r.dst), r.via) for r in node.static_routes),
            kernel_reject=node.kernel_reject, export_policy=node.export_policy,
            install_default=install_default,
        )


def parse_community(text: str) -> tuple[int, int] | tuple[int, int, int]:
    """``aa:nn`` (standard) or ``a:b:c`` (large) as a tuple of ints."""
    parts = tuple(int(p) for p in text.split(":"))
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise ValueError(f"community must be aa:nn or aa:nn:mm; got {text!r}")


def local_attributes(export: Export) -> PathAttributes:
    """The attributes of a route the node originates (next hop filled in per peer on export)."""
    standard: set[tuple[int, int]] = set()
    large: set[tuple[int, int, int]] = set()
    for text in export.communities:
        value = parse_community(text)
        if len(value) == 2:
            standard.add(value)
        else:
            large.add(value)
    return PathAttributes(
        next_hop="self", local_pref=PRIORITY_BASE - NORMAL_ROUTE_PRIORITY,
        communities=tuple(sorted(standard)), large_communities=tuple(sorted(large)),
    )
