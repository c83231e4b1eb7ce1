"""What one node must run: the output of `bgpd.resolve.resolve` and the input of `bgpd.plan`.

Plain frozen values, deterministic and sorted, so two DesiredNodes can be compared field by field
and printed as the JSON contract of DESIGN.md §4 (`bgpd peers --json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bgpd.model.errors import ConfigError
from bgpd.model.resources import BGPFilter, IPNetwork

SessionKind = Literal["Mesh", "Global", "Node", "Local_Workload"]
NextHop = Literal["self", "keep", "auto"]
DEFAULT_BGP_PORT = 179


@dataclass(frozen=True)
class Password:
    """A TCP-MD5 key. Its repr and str never show the value; only `reveal()` does."""

    value: str = field(repr=False)

    def reveal(self) -> str:
        return self.value

    def __str__(self) -> str:
        return "<password>"


@dataclass(frozen=True)
class DesiredSession:
    name: str
    family: Literal[4, 6]
    kind: SessionKind
    peer_ip: str
    port: int
    remote_as: int
    local_as: int
    ibgp: bool
    passive: bool
    rr_client: bool
    rr_cluster_id: str | None
    password: Password | None
    ttl_security: int | None
    max_restart_time: int | None
    keepalive_time: int | None
    source_address: str | None
    next_hop: NextHop
    allow_local_as: int | None
    filters: tuple[str, ...]
    reachable_by: str | None
    origin: tuple[str, ...]
    peer_node: str | None = None  # the Calico node at the other end (mesh, peerSelector, a node's IP)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "family": self.family, "kind": self.kind, "peerIP": self.peer_ip,
            "port": self.port, "remoteAS": self.remote_as, "localAS": self.local_as, "ibgp": self.ibgp,
            "passive": self.passive, "routeReflectorClient": self.rr_client,
            "routeReflectorClusterID": self.rr_cluster_id, "password": self.password is not None,
            "ttlSecurity": self.ttl_security, "maxRestartTime": self.max_restart_time,
            "sourceAddress": self.source_address,
            "nextHop": self.next_hop, "allowLocalAS": self.allow_local_as,
            "filters": list(self.filters), "reachableBy": self.reachable_by, "origin": list(self.origin),
        }


@dataclass(frozen=True)
class Export:
    """A prefix this node originates, with the communities of `prefixAdvertisements` that apply."""

    prefix: IPNetwork
    communities: tuple[str, ...] = ()


@dataclass(frozen=True)
class StaticRoute:
    """A `reachableBy` host route to a peer: ``dst`` via gateway ``via``."""

    dst: IPNetwork
    via: str

    def to_json(self) -> dict[str, str]:
        return {"dst": str(self.dst), "via": self.via}


@dataclass(frozen=True)
class ExportPolicy:
    """The facts Calico's `calico_export_to_bgp_peers` decides on (calico-semantics.md §2.7)."""

    disabled_pools: tuple[IPNetwork, ...] = ()
    pools: tuple[IPNetwork, ...] = ()
    blocks: tuple[IPNetwork, ...] = ()
    service_cidrs: tuple[IPNetwork, ...] = ()
    # step 7: on a route reflector, the serviceLoadBalancerIPs/serviceExternalIPs CIDRs (its clients')
    reflected_service_cidrs: tuple[IPNetwork, ...] = ()
    # step 4 (apply_communities): prefixAdvertisements in force, names resolved to values
    communities: tuple[tuple[IPNetwork, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class DesiredNode:
    node: str
    as_number: int
    router_id: str | None
    listen_port: int | None
    ipv4: str | None = None
    ipv6: str | None = None
    rr_cluster_id: str | None = None
    sessions: tuple[DesiredSession, ...] = ()
    exports: tuple[Export, ...] = ()
    blackholes: tuple[IPNetwork, ...] = ()
    static_routes: tuple[StaticRoute, ...] = ()
    kernel_reject: tuple[IPNetwork, ...] = ()
    export_policy: ExportPolicy = ExportPolicy()
    filters: Mapping[str, BGPFilter] = field(default_factory=dict)
    log_severity: str | None = None
    errors: tuple[ConfigError, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Exactly the `bgpd peers --json` contract of DESIGN.md §4 (tools parse it)."""
        return {
            "node": self.node, "asNumber": self.as_number, "routerID": self.router_id,
            "sessions": [s.to_json() for s in self.sessions],
            "exports": [str(e.prefix) for e in self.exports],
            "staticRoutes": [r.to_json() for r in self.static_routes],
            "errors": [str(e) for e in self.errors],
        }
