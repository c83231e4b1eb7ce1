"""What node N originates and writes to the kernel (calico-semantics.md §1.7, §2.7).

- Blocks: N's host BlockAffinities that are not ``pending`` and not ``deleted``. Confirmed and
  ``""`` blocks are exported unless inside a pool with ``disableBGPExport``; a
  ``pendingDeletion`` block has no rule of its own in Calico and falls through to the pool rule,
  so it is exported only when it lies inside an exporting pool.
- Service CIDRs of the default BGPConfiguration (cluster IPs, non-single external IPs, non-single
  LB IPs with aggregation on), unless N carries the exclude-from-external-load-balancers label.
  Per-service /32 routes need Kubernetes Services and EndpointSlices, which bgpd does not read.
- Blackholes for every non-pending block except /32 and /128.
- Communities from the prefixAdvertisements in force (the node instance replaces the default's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import ip_network

from bgpd.desired import Export, ExportPolicy, StaticRoute
from bgpd.model.resources import BGPConfiguration, BlockAffinity, IPNetwork, IPPool
from bgpd.resolve.facts import Cluster, NodeFacts
from bgpd.resolve.peerings import Peering

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


def _sorted(nets: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(sorted(set(nets), key=lambda n: (n.version, n.network_address, n.prefixlen)))


def _inside(net: IPNetwork, pools: Sequence[IPPool]) -> bool:
    return any(net.version == p.cidr.version and net.subnet_of(p.cidr) for p in pools)  # type: ignore[arg-type]


def own_blocks(cluster: Cluster, node: str) -> tuple[BlockAffinity, ...]:
    found = [b for b in cluster.snapshot.block_affinities.values()
             if b.node == node and b.type == "host" and not b.deleted and b.state != "pending"]
    return tuple(sorted(found, key=lambda b: (b.cidr.version, b.cidr.network_address, b.cidr.prefixlen)))


def global_service_cidrs(default: BGPConfiguration | None) -> tuple[IPNetwork, ...]:
    if default is None:
        return ()
    single = {32, 128}
    cidrs = list(default.service_cluster_ips)
    cidrs += [c for c in default.service_external_ips if c.prefixlen not in single]
    if default.service_load_balancer_aggregation != "Disabled":
        cidrs += [c for c in default.service_load_balancer_ips if c.prefixlen not in single]
    return _sorted(cidrs)


def _communities(config: BGPConfiguration | None, default: BGPConfiguration | None,
                 prefix: IPNetwork) -> tuple[str, ...]:
    """Community values for ``prefix``; names resolve in ``config``, then in the default instance."""
    if config is None or not config.prefix_advertisements:
        return ()
    named = {c.name: c.value for c in (*(default.communities if default else ()), *config.communities)}
    values: set[str] = set()
    for adv in config.prefix_advertisements:
        if adv.cidr.version == prefix.version and prefix.subnet_of(adv.cidr):  # type: ignore[arg-type]
            # Undefined names are dropped silently, as confd does.
            values.update(named.get(c, c if ":" in c else "") for c in adv.communities)
    values.discard("")
    return tuple(sorted(values))


def advertisement_config(cluster: Cluster, node: str) -> BGPConfiguration | None:
    """The node instance masks the default's prefixAdvertisements for both families."""
    own = cluster.node_config(node)
    if own is not None and own.prefix_advertisements is not None:
        return own
    return cluster.default


def export_policy(cluster: Cluster, me: NodeFacts) -> ExportPolicy:
    pools = list(cluster.snapshot.ip_pools.values())
    excluded = me.labels.get(EXCLUDE_LABEL) == "true"
    return ExportPolicy(
        disabled_pools=_sorted(p.cidr for p in pools if p.disable_bgp_export),
        pools=_sorted(p.cidr for p in pools if not p.disable_bgp_export),
        blocks=_sorted(b.cidr for b in own_blocks(cluster, me.name) if b.state != "pendingDeletion"),
        service_cidrs=() if excluded else global_service_cidrs(cluster.default),
        reflected_service_cidrs=reflected_service_cidrs(cluster.default) if me.rr else (),
        communities=advertised_communities(advertisement_config(cluster, me.name), cluster.default),
    )


def reflected_service_cidrs(default: BGPConfiguration | None) -> tuple[IPNetwork, ...]:
    """§2.7 step 7: a route reflector passes on its clients' service LB and external IP routes."""
    if default is None:
        return ()
    return _sorted([*default.service_load_balancer_ips, *default.service_external_ips])


def advertised_communities(config: BGPConfiguration | None, default: BGPConfiguration | None,
                           ) -> tuple[tuple[IPNetwork, tuple[str, ...]], ...]:
    """§2.7 step 4: each prefixAdvertisement's CIDR with its community values (names resolved)."""
    if config is None or not config.prefix_advertisements:
        return ()
    return tuple((adv.cidr, _communities(config, default, adv.cidr)) for adv in config.prefix_advertisements)


def exported_prefixes(cluster: Cluster, me: NodeFacts) -> tuple[Export, ...]:
    pools = list(cluster.snapshot.ip_pools.values())
    disabled = [p for p in pools if p.disable_bgp_export]
    exporting = [p for p in pools if not p.disable_bgp_export]
    prefixes: list[IPNetwork] = []
    for b in own_blocks(cluster, me.name):
        if _inside(b.cidr, disabled):
            continue
        if b.state != "pendingDeletion" or _inside(b.cidr, exporting):
            prefixes.append(b.cidr)
    prefixes += export_policy(cluster, me).service_cidrs
    config = advertisement_config(cluster, me.name)
    return tuple(Export(p, _communities(config, cluster.default, p)) for p in _sorted(prefixes))


def blackholes(cluster: Cluster, me: NodeFacts) -> tuple[IPNetwork, ...]:
    return _sorted(b.cidr for b in own_blocks(cluster, me.name) if b.cidr.prefixlen not in (32, 128))


def static_routes(peerings: Iterable[Peering]) -> tuple[StaticRoute, ...]:
    """``reachableBy`` host routes for every kept peering, including ones to the node's own IP."""
    routes = {(p.family, p.ip, p.attrs.reachable_by) for p in peerings if p.attrs.reachable_by is not None}
    return tuple(
        StaticRoute(_host_net(ip, fam), via)
        for fam, ip, via in sorted(routes, key=lambda r: (r[0], _host_net(r[1], r[0]), r[2] or ""))
        if via is not None and (":" in via) == (fam == 6)
    )


def _host_net(ip: str, family: int) -> IPNetwork:
    return ip_network(f"{ip}/{32 if family == 4 else 128}")
