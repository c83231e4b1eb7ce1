"""Frozen dataclasses for the Calico v3 resources bgpd reads.

Field names follow Python style; each docstring names the Calico field. Values are already
validated and normalised by `bgpd.model.loader` (AS numbers as ints, durations in seconds,
selectors parsed, addresses as `ipaddress` objects). `Optional` means "not set in the resource",
which Calico often treats differently from an explicit zero or empty list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Literal

from bgpd.selector import Selector

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True)
class Origin:
    """Where a resource came from: file (or etcd key) and document number, for error messages."""

    source: str
    doc: int


@dataclass(frozen=True)
class Meta:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str | None = None
    origin: Origin = Origin("<memory>", 0)


@dataclass(frozen=True)
class PeerAddress:
    """BGPPeer ``peerIP``: ``ip``, ``a.b.c.d:port`` or ``[v6]:port``.

    ``port`` is the port as written (None when absent); Calico keeps an explicit ``:179`` in the
    session name although it dials the same port, so the literal port is kept here.
    """

    ip: IPAddress
    port: int | None = None


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


# ---------------------------------------------------------------- Node


@dataclass(frozen=True)
class NodeBGP:
    """Node ``spec.bgp``."""

    ipv4_address: IPv4Interface | None = None
    ipv6_address: IPv6Interface | None = None
    as_number: int | None = None
    route_reflector_cluster_id: str | None = None
    ipv4_ipip_tunnel_addr: IPv4Address | None = None


@dataclass(frozen=True)
class Node:
    meta: Meta
    bgp: NodeBGP | None = None

    @property
    def name(self) -> str:
        return self.meta.name


# ---------------------------------------------------------------- BGPConfiguration


@dataclass(frozen=True)
class Community:
    """A named community of BGPConfiguration ``communities``; value ``aa:nn`` or ``aa:nn:mm``."""

    name: str
    value: str


@dataclass(frozen=True)
class PrefixAdvertisement:
    cidr: IPNetwork
    communities: tuple[str, ...]


@dataclass(frozen=True)
class BGPConfiguration:
    meta: Meta
    log_severity_screen: str | None = None
    node_to_node_mesh_enabled: bool | None = None
    as_number: int | None = None
    service_cluster_ips: tuple[IPNetwork, ...] = ()
    service_external_ips: tuple[IPNetwork, ...] = ()
    service_load_balancer_ips: tuple[IPNetwork, ...] = ()
    service_load_balancer_aggregation: Literal["Enabled", "Disabled"] | None = None
    communities: tuple[Community, ...] = ()
    prefix_advertisements: tuple[PrefixAdvertisement, ...] | None = None
    listen_port: int | None = None
    node_mesh_password: SecretKeyRef | None = None
    node_mesh_max_restart_time: float | None = None
    bind_mode: Literal["None", "NodeIP"] | None = None
    ignored_interfaces: tuple[str, ...] = ()
    local_workload_peering_ipv4: IPv4Address | None = None
    local_workload_peering_ipv6: IPv6Address | None = None
    program_cluster_routes: str | None = None
    ipv4_normal_route_priority: int | None = None
    ipv6_normal_route_priority: int | None = None

    @property
    def name(self) -> str:
        return self.meta.name


# ---------------------------------------------------------------- BGPPeer


@dataclass(frozen=True)
class BGPPeer:
    meta: Meta
    node: str | None = None
    node_selector: Selector | None = None
    peer_ip: PeerAddress | None = None
    as_number: int | None = None
    peer_selector: Selector | None = None
    keep_original_next_hop: bool = False
    next_hop_mode: Literal["Auto", "Self", "Keep"] | None = None
    password: SecretKeyRef | None = None
    source_address: Literal["UseNodeIP", "None"] = "UseNodeIP"
    max_restart_time: float | None = None
    num_allowed_local_as_numbers: int | None = None
    ttl_security: int | None = None
    reachable_by: IPAddress | None = None
    filters: tuple[str, ...] = ()
    local_workload_selector: Selector | None = None
    local_as_number: int | None = None
    reverse_peering: Literal["Auto", "Manual"] | None = None
    keepalive_time: float | None = None

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def is_global(self) -> bool:
        return self.node is None and self.node_selector is None


# ---------------------------------------------------------------- BGPFilter


@dataclass(frozen=True)
class PrefixLength:
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True)
class FilterOperation:
    """One of ``addCommunity``, ``prependASPath`` or ``setPriority`` (exactly one is set)."""

    add_community: str | None = None
    prepend_as_path: tuple[int, ...] | None = None
    set_priority: int | None = None


@dataclass(frozen=True)
class FilterRule:
    action: Literal["Accept", "Reject"]
    match_operator: Literal["Equal", "NotEqual", "In", "NotIn"] | None = None
    cidr: IPNetwork | None = None
    prefix_length: PrefixLength | None = None
    source: Literal["RemotePeers"] | None = None
    interface: str | None = None
    peer_type: Literal["eBGP", "iBGP"] | None = None
    community: str | None = None
    as_path_prefix: tuple[int, ...] = ()
    priority: int | None = None
    operations: tuple[FilterOperation, ...] = ()


@dataclass(frozen=True)
class BGPFilter:
    meta: Meta
    export_v4: tuple[FilterRule, ...] = ()
    import_v4: tuple[FilterRule, ...] = ()
    export_v6: tuple[FilterRule, ...] = ()
    import_v6: tuple[FilterRule, ...] = ()

    @property
    def name(self) -> str:
        return self.meta.name


# ---------------------------------------------------------------- IPAM


@dataclass(frozen=True)
class IPPool:
    meta: Meta
    cidr: IPNetwork
    ipip_mode: Literal["Never", "Always", "CrossSubnet"] = "Never"
    vxlan_mode: Literal["Never", "Always", "CrossSubnet"] = "Never"
    disable_bgp_export: bool = False
    disabled: bool = False
    block_size: int | None = None
    node_selector: Selector | None = None
    allowed_uses: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.meta.name


@dataclass(frozen=True)
class BlockAffinity:
    meta: Meta
    node: str
    cidr: IPNetwork
    type: Literal["host", "virtual"] = "host"
    state: Literal["", "confirmed", "pending", "pendingDeletion"] = ""
    deleted: bool = False

    @property
    def name(self) -> str:
        return self.meta.name


# ---------------------------------------------------------------- Secret, CalicoNodeStatus


@dataclass(frozen=True)
class Secret:
    """Kubernetes ``v1`` Secret; ``data`` is base64-decoded and merged with ``stringData``.

    The values never appear in a repr, so a Secret cannot leak into a log line by accident.
    """

    meta: Meta
    data: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.meta.name


@dataclass(frozen=True)
class CalicoNodeStatus:
    meta: Meta
    node: str
    classes: tuple[Literal["Agent", "BGP", "Routes"], ...] = ()
    update_period_seconds: int = 0

    @property
    def name(self) -> str:
        return self.meta.name


Resource = Node | BGPConfiguration | BGPPeer | BGPFilter | IPPool | BlockAffinity | Secret | CalicoNodeStatus
