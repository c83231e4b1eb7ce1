"""BGPFilter rules, chains and Calico's export policy (calico-semantics.md §1.5, §2.5-§2.7)."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest

from bgpd.desired import ExportPolicy
from bgpd.model.resources import FilterOperation, FilterRule, PrefixLength
from bgpd.rib.policy import (
    RouteContext,
    as_loop,
    calico_export,
    export_policy,
    import_policy,
    rule_matches,
)
from tests.unit.test_rib_support import attrs, bgp_filter

BGP = RouteContext("10.1.2.0/24", "bgp", ibgp=False)
BASE = attrs("10.0.0.2", as_path=(65001, 65002), communities=((65000, 100),),
             large_communities=((1, 2, 3),), local_pref=None)


def rule(**kw: Any) -> FilterRule:
    return FilterRule(action="Accept", **kw)


def net(text: str) -> Any:
    return ip_network(text)


MATCH_CASES: list[tuple[str, FilterRule, RouteContext, bool]] = [
    ("no condition matches all", rule(), BGP, True),
    ("Equal hit", rule(match_operator="Equal", cidr=net("10.1.2.0/24")), BGP, True),
    ("Equal miss on longer cidr", rule(match_operator="Equal", cidr=net("10.1.0.0/16")), BGP, False),
    ("NotEqual", rule(match_operator="NotEqual", cidr=net("10.1.0.0/16")), BGP, True),
    ("In covers subnet", rule(match_operator="In", cidr=net("10.1.0.0/16")), BGP, True),
    ("In covers itself", rule(match_operator="In", cidr=net("10.1.2.0/24")), BGP, True),
    ("In misses outside", rule(match_operator="In", cidr=net("10.2.0.0/16")), BGP, False),
    ("NotIn outside", rule(match_operator="NotIn", cidr=net("10.2.0.0/16")), BGP, True),
    ("NotIn inside", rule(match_operator="NotIn", cidr=net("10.0.0.0/8")), BGP, False),
    ("In other family", rule(match_operator="In", cidr=net("::/0")), BGP, False),
    ("NotIn other family", rule(match_operator="NotIn", cidr=net("::/0")), BGP, True),
    ("prefixLength in range",
     rule(match_operator="In", cidr=net("10.0.0.0/8"), prefix_length=PrefixLength(20, 24)), BGP, True),
    ("prefixLength max below",
     rule(match_operator="In", cidr=net("10.0.0.0/8"), prefix_length=PrefixLength(None, 23)), BGP, False),
    ("prefixLength min above",
     rule(match_operator="In", cidr=net("10.0.0.0/8"), prefix_length=PrefixLength(25, None)), BGP, False),
    ("prefixLength NotIn inverts",
     rule(match_operator="NotIn", cidr=net("10.0.0.0/8"), prefix_length=PrefixLength(25, 32)), BGP, True),
    ("source RemotePeers on bgp", rule(source="RemotePeers"), BGP, True),
    ("source RemotePeers on local", rule(source="RemotePeers"), RouteContext("10.1.2.0/24", "local", False),
     False),
    ("interface glob", rule(interface="eth*"), RouteContext("10.1.2.0/24", "local", False, "eth0"), True),
    ("interface glob miss", rule(interface="eth*"), RouteContext("10.1.2.0/24", "local", False, "cali1"),
     False),
    ("interface needs one", rule(interface="*"), BGP, False),
    ("peerType eBGP on eBGP", rule(peer_type="eBGP"), BGP, True),
    ("peerType iBGP on eBGP", rule(peer_type="iBGP"), BGP, False),
    ("peerType iBGP on iBGP", rule(peer_type="iBGP"), RouteContext("10.1.2.0/24", "bgp", True), True),
    ("community present", rule(community="65000:100"), BGP, True),
    ("community absent", rule(community="65000:101"), BGP, False),
    ("large community present", rule(community="1:2:3"), BGP, True),
    ("large community absent", rule(community="1:2:4"), BGP, False),
    ("asPathPrefix", rule(as_path_prefix=(65001,)), BGP, True),
    ("asPathPrefix full", rule(as_path_prefix=(65001, 65002)), BGP, True),
    ("asPathPrefix not a prefix", rule(as_path_prefix=(65002,)), BGP, False),
    ("asPathPrefix longer than path", rule(as_path_prefix=(65001, 65002, 1)), BGP, False),
    ("priority of default local_pref", rule(priority=2147483647 - 100), BGP, True),
    ("priority mismatch", rule(priority=1024), BGP, False),
    ("all conditions must hold",
     rule(match_operator="In", cidr=net("10.0.0.0/8"), community="65000:101"), BGP, False),
]


@pytest.mark.parametrize(("what", "r", "ctx", "expected"), MATCH_CASES, ids=[c[0] for c in MATCH_CASES])
def test_rule_condition(what: str, r: FilterRule, ctx: RouteContext, expected: bool) -> None:
    assert rule_matches(r, ctx, BASE) is expected


def test_v6_rules_and_prefix_length() -> None:
    ctx = RouteContext("fd00:1::/64", "bgp", ibgp=True)
    r = rule(match_operator="In", cidr=net("fd00::/16"), prefix_length=PrefixLength(48, 64))
    assert rule_matches(r, ctx, BASE)
    f = bgp_filter("f", import_v4=(FilterRule(action="Reject"),), import_v6=(FilterRule(action="Reject",
                   match_operator="Equal", cidr=net("fd00:2::/64")),))
    assert import_policy((f,), ctx, BASE) is BASE  # the v4 reject-all does not apply to v6
    assert import_policy((f,), RouteContext("fd00:2::/64", "bgp", True), BASE) is None


def test_operations_run_in_order_before_accept() -> None:
    ops = (
        FilterOperation(add_community="65000:7"),
        FilterOperation(add_community="65000:100"),  # already there: not doubled
        FilterOperation(add_community="9:8:7"),
        FilterOperation(prepend_as_path=(1, 2)),
        FilterOperation(set_priority=10),
    )
    f = bgp_filter("f", import_v4=(FilterRule(action="Accept", operations=ops),))
    out = import_policy((f,), BGP, BASE)
    assert out == attrs(
        "10.0.0.2", as_path=(1, 2, 65001, 65002), communities=((65000, 100), (65000, 7)),
        large_communities=((1, 2, 3), (9, 8, 7)), local_pref=2147483647 - 10,
    )


def test_first_matching_rule_ends_the_whole_chain() -> None:
    reject_10_1 = FilterRule(action="Reject", match_operator="In", cidr=net("10.1.0.0/16"))
    accept_all = FilterRule(action="Accept", operations=(FilterOperation(add_community="1:1"),))
    first = bgp_filter("first", import_v4=(reject_10_1,))
    second = bgp_filter("second", import_v4=(accept_all,))
    assert import_policy((first, second), BGP, BASE) is None
    # A miss in the first filter falls to the next one.
    other = RouteContext("10.2.0.0/24", "bgp", False)
    result = import_policy((first, second), other, BASE)
    assert result is not None and (1, 1) in result.communities
    # Accept in the first filter ends the chain too: the second filter's reject never runs.
    assert import_policy((second, first), BGP, BASE) == import_policy((second,), BGP, BASE)


def test_import_default_is_accept_and_export_default_is_calico() -> None:
    miss = bgp_filter("m", import_v4=(FilterRule(action="Reject", community="9:9"),),
                      export_v4=(FilterRule(action="Reject", community="9:9"),))
    assert import_policy((miss,), BGP, BASE) is BASE
    policy = ExportPolicy(pools=(net("10.1.0.0/16"),))
    assert export_policy((miss,), policy, BGP, BASE) is BASE
    outside = RouteContext("192.168.0.0/24", "bgp", False)
    assert export_policy((miss,), policy, outside, BASE) is None
    # An export Accept rule exports what Calico's policy would not.
    accept = bgp_filter("a", export_v4=(FilterRule(action="Accept"),))
    assert export_policy((accept,), policy, outside, BASE) is BASE


EXPORT_CASES = [
    ("pool", "10.244.3.0/26", True),
    ("other pool", "10.245.0.0/24", True),
    ("outside pools", "192.168.1.0/24", False),
    ("disabled pool wins", "10.96.5.0/24", False),
    ("own block", "10.244.1.0/26", True),
    ("more specific inside own block", "10.244.1.5/32", False),
    ("service cidr", "10.100.0.0/16", True),
    ("a client's LB route at a route reflector", "80.0.0.5/32", True),
    ("v6 pool", "fd00:244::/122", True),
    ("v6 outside", "fd01::/64", False),
]


@pytest.mark.parametrize(("what", "prefix", "expected"), EXPORT_CASES, ids=[c[0] for c in EXPORT_CASES])
def test_calico_export(what: str, prefix: str, expected: bool) -> None:
    policy = ExportPolicy(
        disabled_pools=(net("10.96.0.0/16"),),
        pools=(net("10.244.0.0/16"), net("10.245.0.0/16"), net("10.96.0.0/16"), net("fd00:244::/48")),
        blocks=(net("10.244.1.0/26"),),
        service_cidrs=(net("10.100.0.0/16"),),
        reflected_service_cidrs=(net("80.0.0.0/24"),),
    )
    assert calico_export(policy, prefix) is expected


@pytest.mark.parametrize(
    ("path", "allowed", "looped"),
    [((65001,), None, False), ((65001, 64512), None, True), ((65001, 64512), 0, True),
     ((65001, 64512), 1, False), ((64512, 65001, 64512), 1, True), ((64512, 65001, 64512), 2, False)],
)
def test_allow_local_as(path: tuple[int, ...], allowed: int | None, looped: bool) -> None:
    assert as_loop(attrs("10.0.0.2", as_path=path), (64512,), allowed) is looped
