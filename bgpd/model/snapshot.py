"""An immutable, validated view of every resource at one store revision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bgpd.model.errors import ConfigError
from bgpd.model.resources import (
    BGPConfiguration,
    BGPFilter,
    BGPPeer,
    BlockAffinity,
    CalicoNodeStatus,
    IPPool,
    Node,
    Secret,
)

DEFAULT_SECRET_NAMESPACE = "kube-system"


@dataclass(frozen=True)
class Snapshot:
    """Resources keyed by name (Secrets by ``(namespace, name)``).

    ``revision`` is the store's revision (a content hash for the YAML directory, etcd's revision
    for etcd). ``errors`` are problems with documents that were left out of this snapshot.
    """

    nodes: Mapping[str, Node] = field(default_factory=dict)
    bgp_configurations: Mapping[str, BGPConfiguration] = field(default_factory=dict)
    bgp_peers: Mapping[str, BGPPeer] = field(default_factory=dict)
    bgp_filters: Mapping[str, BGPFilter] = field(default_factory=dict)
    ip_pools: Mapping[str, IPPool] = field(default_factory=dict)
    block_affinities: Mapping[str, BlockAffinity] = field(default_factory=dict)
    secrets: Mapping[tuple[str, str], Secret] = field(default_factory=dict)
    node_statuses: Mapping[str, CalicoNodeStatus] = field(default_factory=dict)
    revision: str = ""
    errors: tuple[ConfigError, ...] = ()
    secret_namespace: str = DEFAULT_SECRET_NAMESPACE
