"""Builders shared by the RIB tests (no tests here)."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

from bgpd.bgp import PathAttributes
from bgpd.desired import Export, ExportPolicy
from bgpd.model.resources import BGPFilter, FilterRule, Meta
from bgpd.rib import LocalInfo, PeerInfo, Rib

LOCAL_AS = 64512
POOL = ip_network("10.244.0.0/16")


def peer(name: str, ip: str, *, asn: int = LOCAL_AS, **kw: Any) -> PeerInfo:
    """An established-looking session; iBGP when ``asn`` is ours. The router id defaults to the IP."""
    v6 = ":" in ip
    defaults: dict[str, Any] = {
        "router_id": None if v6 else ip,
        "families": ("ipv6 unicast",) if v6 else ("ipv4 unicast",),
        "local_address": "fd00::1" if v6 else "10.0.0.1",
        "gr_restart_time": 120.0,
    }
    defaults.update(kw)
    return PeerInfo(name=name, peer_ip=ip, remote_as=asn, local_as=LOCAL_AS, ibgp=asn == LOCAL_AS, **defaults)


def local(**kw: Any) -> LocalInfo:
    defaults: dict[str, Any] = {"router_id": "10.0.0.1", "export_policy": ExportPolicy(pools=(POOL,))}
    defaults.update(kw)
    return LocalInfo(as_number=LOCAL_AS, **defaults)


def exports(*prefixes: str, communities: tuple[str, ...] = ()) -> tuple[Export, ...]:
    return tuple(Export(ip_network(p), communities) for p in prefixes)


def attrs(next_hop: str, **kw: Any) -> PathAttributes:
    return PathAttributes(next_hop=next_hop, **kw)


def bgp_filter(name: str, **rules: tuple[FilterRule, ...]) -> BGPFilter:
    return BGPFilter(Meta(name=name), **rules)


def rib_with(*peers: PeerInfo, **local_kw: Any) -> Rib:
    rib = Rib(local(**local_kw))
    for p in peers:
        rib.peer_up(p)
    return rib
