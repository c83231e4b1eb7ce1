"""What one route becomes when sent to one session: split horizon, route reflection (RFC 4456),
the session's export chain, and the attribute rewrite for iBGP or eBGP."""

from __future__ import annotations

from dataclasses import replace

from bgpd.bgp import PathAttributes
from bgpd.rib.peer import LocalInfo, PeerInfo
from bgpd.rib.policy import RouteContext, calico_exported, effective_local_pref, export_policy
from bgpd.rib.prefix import family_of

Path = tuple[PeerInfo | None, PathAttributes]  # (source session, attributes); None = the node itself


def may_advertise(source: PeerInfo | None, attrs: PathAttributes, target: PeerInfo, local: LocalInfo) -> bool:
    """BGP's own rules, before any policy: never back to the source; iBGP-learned routes go to iBGP
    peers only by reflection (client -> everyone, non-client -> clients); no reflection to the
    router that originated the route."""
    if source is None or not (source.ibgp and target.ibgp):
        return source is None or source.name != target.name
    if source.name == target.name or local.cluster_id is None:
        return False
    if not (source.rr_client or target.rr_client):
        return False
    originator = attrs.originator_id or source.router_id
    return target.router_id is None or originator != target.router_id


def admit(path: Path, prefix: str, target: PeerInfo, local: LocalInfo) -> PathAttributes | None:
    """The route's attributes after ``target``'s export chain, or None when it is not sent there."""
    if not may_advertise(path[0], path[1], target, local):
        return None
    return export_chain(path, prefix, target, local)


def export_chain(path: Path, prefix: str, target: PeerInfo, local: LocalInfo) -> PathAttributes | None:
    """`admit` for a route that `may_advertise` to ``target``: the checks that depend on the prefix."""
    source, attrs = path
    if family_of(prefix) not in target.families:
        return None
    if not target.filters:  # the common case, without building a context for the rules
        return calico_exported(local.export_policy, prefix, attrs)
    ctx = RouteContext(prefix=prefix, source="local" if source is None else "bgp", ibgp=target.ibgp)
    return export_policy(target.filters, local.export_policy, ctx, attrs)


def rewrite(
    source: PeerInfo | None, out: PathAttributes, target: PeerInfo, local: LocalInfo
) -> PathAttributes:
    """The attributes as sent on ``target``: next hop, AS path and the iBGP-only attributes."""
    self_hop = target.local_address or "self"
    if not target.ibgp:
        keep = source is not None and target.next_hop == "keep"
        # eBGP: our AS goes first; LOCAL_PREF, MED and the reflection attributes stay inside the AS.
        return replace(
            out, next_hop=out.next_hop if keep else self_hop, as_path=(target.local_as, *out.as_path),
            local_pref=None, med=None, originator_id=None, cluster_list=(),
        )
    next_hop = self_hop if source is None or target.next_hop == "self" else out.next_hop
    originator, clusters = out.originator_id, out.cluster_list
    if source is not None and source.ibgp and local.cluster_id is not None:
        originator = originator or source.router_id or source.peer_ip
        clusters = (local.cluster_id, *clusters)
    return replace(
        out, next_hop=next_hop, local_pref=effective_local_pref(out), originator_id=originator,
        cluster_list=clusters,
    )


def outbound(path: Path, prefix: str, target: PeerInfo, local: LocalInfo) -> PathAttributes | None:
    """The attributes to announce ``prefix`` with on ``target``, or None to not announce it."""
    out = admit(path, prefix, target, local)
    return None if out is None else rewrite(path[0], out, target, local)
