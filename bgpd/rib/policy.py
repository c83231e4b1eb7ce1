"""BGPFilter chains and Calico's export policy, evaluated as BIRD runs Calico's generated filters.

Semantics (calico-semantics.md §1.5, §2.5-§2.7): a rule matches when all its conditions hold; the
first matching rule of the whole chain decides (its operations run, then accept or reject); a chain
with no match falls through to the default, accept on import and `calico_export` on export.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bgpd.bgp import PathAttributes
from bgpd.desired import ExportPolicy
from bgpd.model.resources import BGPFilter, FilterOperation, FilterRule
from bgpd.rib.peer import DEFAULT_LOCAL_PREF, PRIORITY_BASE, parse_community
from bgpd.rib.prefix import covered_by, inside, near, net_span, span, spans

Direction = Literal["import", "export"]
Source = Literal["bgp", "local"]


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What a rule can look at besides the attributes.

    ``interface`` is the route's outgoing interface (BIRD's ``ifname``); routes learned over BGP and
    the node's blackholes have none, so an ``interface`` rule never matches them. ``ibgp`` is the
    session's iBGP flag (BIRD's ``is_same_as`` argument).
    """

    prefix: str
    source: Source
    ibgp: bool
    interface: str | None = None


def rules_for(flt: BGPFilter, direction: Direction, v6: bool) -> tuple[FilterRule, ...]:
    if direction == "import":
        return flt.import_v6 if v6 else flt.import_v4
    return flt.export_v6 if v6 else flt.export_v4


def effective_local_pref(attrs: PathAttributes) -> int:
    return DEFAULT_LOCAL_PREF if attrs.local_pref is None else attrs.local_pref


def _cidr_matches(rule: FilterRule, prefix: str) -> bool:
    if rule.cidr is None or rule.match_operator is None:
        return True
    version, _, _, plen = route = span(prefix)
    cidr = net_span(rule.cidr)
    lo: int = cidr[3]
    hi: int = rule.cidr.max_prefixlen
    if rule.prefix_length is not None:
        lo = max(lo, rule.prefix_length.min if rule.prefix_length.min is not None else lo)
        hi = min(hi, rule.prefix_length.max if rule.prefix_length.max is not None else hi)
    # Across families nothing is equal or inside (BIRD's `!=` / `!~` then hold).
    length_ok = version == cidr[0] and lo <= plen <= hi
    if rule.match_operator in ("Equal", "NotEqual"):
        hit = route == cidr and length_ok
    else:
        hit = inside(route, cidr) and length_ok
    return hit if rule.match_operator in ("Equal", "In") else not hit


def _community_matches(text: str, attrs: PathAttributes) -> bool:
    value = parse_community(text)
    if len(value) == 2:
        return value in attrs.communities
    return value in attrs.large_communities


def rule_matches(rule: FilterRule, ctx: RouteContext, attrs: PathAttributes) -> bool:
    if rule.peer_type is not None and (rule.peer_type == "iBGP") != ctx.ibgp:
        return False
    if rule.source == "RemotePeers" and ctx.source != "bgp":
        return False
    if rule.interface is not None and (
        ctx.interface is None or not fnmatch.fnmatchcase(ctx.interface, rule.interface)
    ):
        return False
    if rule.community is not None and not _community_matches(rule.community, attrs):
        return False
    n = len(rule.as_path_prefix)
    if n and attrs.as_path[:n] != rule.as_path_prefix:
        return False
    # An eBGP route's LOCAL_PREF is the default 100, as BIRD sets it on receipt.
    if rule.priority is not None and effective_local_pref(attrs) != PRIORITY_BASE - rule.priority:
        return False
    return _cidr_matches(rule, ctx.prefix)


def apply_operation(op: FilterOperation, attrs: PathAttributes) -> PathAttributes:
    if op.add_community is not None:
        value = parse_community(op.add_community)
        if len(value) == 2:
            if value in attrs.communities:
                return attrs
            return replace(attrs, communities=(*attrs.communities, value))
        if value in attrs.large_communities:
            return attrs
        return replace(attrs, large_communities=(*attrs.large_communities, value))
    if op.prepend_as_path is not None:
        # The list is prepended as written: the path then starts with it (§1.5).
        return replace(attrs, as_path=op.prepend_as_path + attrs.as_path)
    if op.set_priority is not None:
        return replace(attrs, local_pref=PRIORITY_BASE - op.set_priority)
    return attrs


Verdict = tuple[bool, PathAttributes] | None  # (accepted, attributes), or None: no rule matched


def run_chain(
    filters: tuple[BGPFilter, ...], direction: Direction, ctx: RouteContext, attrs: PathAttributes
) -> Verdict:
    """The first rule of the chain that matches decides; None when none did."""
    v6 = ":" in ctx.prefix
    for flt in filters:
        for rule in rules_for(flt, direction, v6):
            if not rule_matches(rule, ctx, attrs):
                continue
            if rule.action == "Reject":
                return False, attrs
            for op in rule.operations:
                attrs = apply_operation(op, attrs)
            return True, attrs
    return None


def import_policy(
    filters: tuple[BGPFilter, ...], ctx: RouteContext, attrs: PathAttributes
) -> PathAttributes | None:
    """The attributes to keep, or None when the import chain rejects the route."""
    if not filters:
        return attrs
    verdict = run_chain(filters, "import", ctx, attrs)
    if verdict is None:
        return attrs
    return verdict[1] if verdict[0] else None


def _calico_export(policy: ExportPolicy, prefix: str) -> bool:
    """Calico's `calico_export_to_bgp_peers` (§2.7) for one route: the first matching step decides.

    The interface steps (2, 3) cannot match: routes here have no interface. Step 4 (communities)
    is `with_communities`. Step 6 is ``service_cidrs``, step 7 (on a route reflector, the LB and
    external IP CIDRs its clients advertise) ``reflected_service_cidrs``.
    """
    route = span(prefix)
    if covered_by(route, policy.disabled_pools):
        return False
    for block in spans(policy.blocks):
        if route == block:
            return True
        if inside(route, block):
            return False
    return (covered_by(route, policy.service_cidrs) or covered_by(route, policy.reflected_service_cidrs)
            or covered_by(route, policy.pools))


def with_communities(policy: ExportPolicy, prefix: str, attrs: PathAttributes) -> PathAttributes:
    """Step 4 (`apply_communities`): every route exported by Calico's policy inside a
    prefixAdvertisement's CIDR gets its communities, learned routes too (e.g. reflected blocks).
    The same object comes back when nothing is added (the usual case)."""
    if not policy.communities:
        return attrs
    standard, large = set(attrs.communities), set(attrs.large_communities)
    for cidr, values in policy.communities:
        if covered_by(prefix, (cidr,)):
            for text in values:
                value = parse_community(text)
                if len(value) == 2:
                    standard.add(value)
                else:
                    large.add(value)
    if len(standard) == len(attrs.communities) and len(large) == len(attrs.large_communities):
        return attrs
    return replace(attrs, communities=tuple(sorted(standard)), large_communities=tuple(sorted(large)))


class _LastVerdict:
    """The last `calico_export` answer: one route is judged for every target and for its old and new
    path in a row, and the answer depends only on the policy and the prefix."""

    policy: ExportPolicy | None = None
    prefix = ""
    result = False


def calico_export(policy: ExportPolicy, prefix: str) -> bool:
    last = _LastVerdict
    if last.policy is not policy or last.prefix != prefix:
        last.policy, last.prefix, last.result = policy, prefix, _calico_export(policy, prefix)
    return last.result


def calico_exported(policy: ExportPolicy, prefix: str, attrs: PathAttributes) -> PathAttributes | None:
    """Calico's own export policy for one route (the same for every session without filters)."""
    return with_communities(policy, prefix, attrs) if calico_export(policy, prefix) else None


def calico_exports(policy: ExportPolicy, prefixes: Sequence[str], attrs: PathAttributes
                   ) -> list[tuple[str, PathAttributes]]:
    """`calico_exported` for a batch sharing ``attrs``: (prefix, attributes) of the routes it exports.
    Only a route inside a block, a service CIDR or a pool can be exported (steps 5-8), so the exact
    check runs only on prefixes `near` those: a ToR's routes elsewhere cost no per-prefix parse."""
    reachable = policy.blocks + policy.service_cidrs + policy.reflected_service_cidrs + policy.pools
    return [(p, a) for p in near(prefixes, reachable) if (a := calico_exported(policy, p, attrs)) is not None]


def export_policy(
    filters: tuple[BGPFilter, ...],
    policy: ExportPolicy,
    ctx: RouteContext,
    attrs: PathAttributes,
) -> PathAttributes | None:
    """Export chain of one session (§2.5): BGPFilters, then Calico's policy, then reject."""
    if filters:
        verdict = run_chain(filters, "export", ctx, attrs)
        if verdict is not None:
            return verdict[1] if verdict[0] else None
    return calico_exported(policy, ctx.prefix, attrs)


def count_as(path: tuple[int, ...], asns: tuple[int, ...]) -> int:
    return sum(1 for a in path if a in asns)


def as_loop(attrs: PathAttributes, asns: tuple[int, ...], allowed: int | None) -> bool:
    """Our AS appears more often than `allow local as N` permits (BIRD: N=0 rejects any occurrence)."""
    limit = allowed if allowed and allowed > 0 else 0
    return count_as(attrs.as_path, asns) + count_as(attrs.as_set, asns) > limit

