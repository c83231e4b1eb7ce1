"""The RIB's FIB diffs: ECMP, withdrawals, import checks, max-prefix, graceful restart, adoption."""

from __future__ import annotations

import random
from ipaddress import ip_address, ip_network

import pytest

from bgpd.desired import DesiredNode, DesiredSession, ExportPolicy
from bgpd.model.resources import FilterRule
from bgpd.rib import Announce, FibChange, LocalInfo, PeerInfo, Rib, RibDiff, Withdraw
from bgpd.rib.fib import FibKind, fib_grouped
from bgpd.rib.prefix import _MARTIANS, covered_by, inside, is_martian, near, net_span, span
from tests.unit.test_rib_support import LOCAL_AS, attrs, bgp_filter, exports, local, peer, rib_with

TOR1 = peer("tor1", "10.0.1.1", asn=65001)
TOR2 = peer("tor2", "10.0.2.1", asn=65001)
ROUTE = attrs("10.0.1.1", as_path=(65001,))
ROUTE2 = attrs("10.0.2.1", as_path=(65001,))
P = "192.168.10.0/24"


def fib(*changes: tuple[str, tuple[str, ...] | None]) -> list[tuple[str, tuple[str, ...] | None]]:
    return list(changes)


def flat(changes: tuple[FibChange, ...]) -> list[tuple[str, tuple[str, ...] | None]]:
    """A diff's kernel changes one prefix at a time, in order (however the RIB grouped them)."""
    return [(prefix, c.nexthops) for c in changes for prefix in c.prefixes]


def test_ecmp_through_two_tors_then_withdraws() -> None:
    rib = rib_with(TOR1, TOR2)
    assert flat(rib.update("tor1", [P], ROUTE).fib) == fib((P, ("10.0.1.1",)))
    assert flat(rib.update("tor2", [P], ROUTE2).fib) == fib((P, ("10.0.1.1", "10.0.2.1")))
    assert flat(rib.withdraw("tor1", [P]).fib) == fib((P, ("10.0.2.1",)))
    assert rib.withdraw("tor1", [P]) == RibDiff()  # nothing left from tor1
    assert flat(rib.withdraw("tor2", [P]).fib) == fib((P, None))
    assert rib.installed == 0


def test_a_better_path_leaves_the_ecmp_set() -> None:
    rib = rib_with(TOR1, TOR2)
    rib.update("tor1", [P], ROUTE)
    rib.update("tor2", [P], ROUTE2)
    assert flat(rib.update("tor2", [P], attrs("10.0.2.1", as_path=(65001, 1))).fib) == fib((P, ("10.0.1.1",)))


def test_unchanged_next_hops_give_no_fib_change() -> None:
    rib = rib_with(TOR1)
    rib.update("tor1", [P], ROUTE)
    assert rib.update("tor1", [P], attrs("10.0.1.1", as_path=(65001,), med=5)).fib == ()


@pytest.mark.parametrize(
    "prefix",
    ["0.0.0.0/8", "0.1.0.0/16", "127.0.0.1/32", "169.254.1.0/24", "224.0.0.0/4", "239.1.1.1/32",
     "240.0.0.0/4", "255.255.255.255/32", "::1/128", "::/128", "fe80::/64", "ff02::1/128", "::ffff:0:0/96"],
)
def test_martians_are_never_installed(prefix: str) -> None:
    tor = peer("tor", "fd00::2", asn=65001, families=("ipv4 unicast", "ipv6 unicast"))
    rib = rib_with(tor)
    assert rib.update("tor", [prefix], attrs("10.0.1.1", as_path=(65001,))) == RibDiff()
    assert rib.status("tor").received == 1 and rib.status("tor").accepted == 0


def test_another_sessions_stale_route_takes_over_when_the_fresh_one_is_withdrawn() -> None:
    rib = rib_with(TOR1, TOR2)
    rib.update("tor1", [P], ROUTE)
    rib.update("tor2", [P], ROUTE2)
    assert flat(rib.peer_down("tor1", 0.0, graceful=True).fib) == fib((P, ("10.0.2.1",)))  # stale loses
    assert flat(rib.withdraw("tor2", [P]).fib) == fib((P, ("10.0.1.1",)))  # the stale one is all there is
    assert flat(rib.update("tor2", [P], ROUTE2).fib) == fib((P, ("10.0.2.1",)))


def test_martian_shortcut_agrees_with_the_span_check() -> None:
    """is_martian decides most IPv4 prefixes by their first octet; the full check must agree."""
    martians = tuple(net_span(n) for n in _MARTIANS)
    for octet in range(256):
        for prefix in (f"{octet}.0.0.0/8", f"{octet}.254.1.0/24", f"{octet}.1.2.3/32", f"{octet}.0.0.0/4"):
            assert is_martian(prefix) == any(inside(span(prefix), m) for m in martians), prefix


def test_default_route_only_when_configured() -> None:
    rib = rib_with(TOR1)
    assert rib.update("tor1", ["0.0.0.0/0"], ROUTE).fib == ()
    assert rib.best("0.0.0.0/0") is not None  # kept in the RIB, only not installed
    assert flat(rib.set_local(local(install_default=True)).fib) == fib(("0.0.0.0/0", ("10.0.1.1",)))


def test_kernel_reject_cidrs_are_not_installed() -> None:
    rib = rib_with(TOR1, kernel_reject=(ip_network("10.96.0.0/12"),))
    assert flat(rib.update("tor1", ["10.96.0.10/32", P], ROUTE).fib) == fib((P, ("10.0.1.1",)))


def test_own_exports_are_never_installed_and_blackholes_are() -> None:
    own = exports("10.244.1.0/26", "10.244.9.9/32")
    rib = rib_with(TOR1, exports=own, blackholes=frozenset({"10.244.1.0/26"}))
    assert rib.fib() == {"10.244.1.0/26": FibChange(("10.244.1.0/26",), (), "blackhole")}
    assert rib.update("tor1", ["10.244.1.0/26", "10.244.9.9/32"], ROUTE).fib == ()
    # The learned copy comes in once the node stops exporting the prefix.
    # One change for both: they share their next hops.
    assert rib.set_local(local()).fib == (FibChange(("10.244.1.0/26", "10.244.9.9/32"), ("10.0.1.1",)),)


def test_a_new_local_as_is_applied_to_held_routes() -> None:
    rib = rib_with(TOR1)
    rib.update("tor1", [P], attrs("10.0.1.1", as_path=(65001, 64999)))
    assert rib.set_local(local()) == RibDiff()  # unchanged: nothing to do
    moved = LocalInfo(as_number=64999, router_id="10.0.0.1")
    assert flat(rib.set_local(moved).fib) == fib((P, None))


def test_loop_checks_on_import() -> None:
    ibgp = peer("rr", "10.0.0.9", allow_local_as=None)
    rib = rib_with(TOR1, ibgp, cluster_id="1.1.1.1")
    assert rib.update("tor1", [P], attrs("10.0.1.1", as_path=(65001, LOCAL_AS))).fib == ()
    assert rib.update("rr", [P], attrs("10.0.0.9", originator_id="10.0.0.1")).fib == ()
    assert rib.update("rr", [P], attrs("10.0.0.9", cluster_list=("2.2.2.2", "1.1.1.1"))).fib == ()
    reflected = attrs("10.0.0.9", cluster_list=("2.2.2.2",))
    assert flat(rib.update("rr", [P], reflected).fib) == fib((P, ("10.0.0.9",)))


def test_allow_local_as_admits_that_many_occurrences() -> None:
    rib = rib_with(peer("tor1", "10.0.1.1", asn=65001, allow_local_as=1))
    looped_once = attrs("10.0.1.1", as_path=(65001, LOCAL_AS))
    assert flat(rib.update("tor1", [P], looped_once).fib) == fib((P, ("10.0.1.1",)))
    looped_twice = attrs("10.0.1.1", as_path=(65001, LOCAL_AS, LOCAL_AS))
    assert flat(rib.update("tor1", [P], looped_twice).fib) == fib((P, None))


def test_ebgp_local_pref_and_reflection_attributes_are_dropped() -> None:
    rib = rib_with(TOR1, TOR2)
    rib.update("tor1", [P], attrs("10.0.1.1", as_path=(65001,), local_pref=500, originator_id="9.9.9.9"))
    assert flat(rib.update("tor2", [P], ROUTE2).fib) == fib((P, ("10.0.1.1", "10.0.2.1")))


def test_import_filter_change_is_applied_to_held_routes() -> None:
    rib = rib_with(TOR1)
    rib.update("tor1", [P, "192.168.11.0/24"], ROUTE)
    reject = bgp_filter("no-10", import_v4=(FilterRule(action="Reject", match_operator="Equal",
                                                         cidr=ip_network(P)),))
    assert flat(rib.set_peer(peer("tor1", "10.0.1.1", asn=65001, filters=(reject,))).fib) == fib((P, None))
    assert rib.status("tor1").accepted == 1
    assert flat(rib.set_peer(TOR1).fib) == fib((P, ("10.0.1.1",)))


def test_max_prefix_limit_refuses_new_prefixes_and_says_so() -> None:
    rib = rib_with(peer("tor1", "10.0.1.1", asn=65001, max_prefixes=2))
    diff = rib.update("tor1", ["192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"], ROUTE)
    assert [p for p, _ in flat(diff.fib)] == ["192.168.1.0/24", "192.168.2.0/24"]
    status = rib.status("tor1")
    assert (status.received, status.dropped, status.over_limit) == (2, 1, True)
    # Held prefixes may still change, and a withdrawal makes room for a new one.
    assert flat(rib.update("tor1", ["192.168.1.0/24"], attrs("10.0.1.9", as_path=(65001,))).fib) == fib(
        ("192.168.1.0/24", ("10.0.1.9",)))
    rib.withdraw("tor1", ["192.168.2.0/24"])
    assert flat(rib.update("tor1", ["192.168.3.0/24"], ROUTE).fib) == fib(("192.168.3.0/24", ("10.0.1.1",)))
    rib.peer_down("tor1", 0.0, graceful=False)
    rib.peer_up(peer("tor1", "10.0.1.1", asn=65001, max_prefixes=2))
    assert not rib.status("tor1").over_limit


def test_graceful_restart_keeps_refreshes_and_sweeps_on_end_of_rib() -> None:
    rib = rib_with(TOR1)
    rib.update("tor1", [P, "192.168.11.0/24", "192.168.12.0/24"], ROUTE)
    assert rib.peer_down("tor1", 100.0, graceful=True) == RibDiff()
    status = rib.status("tor1")
    assert (status.stale, status.stale_deadline, rib.stale, rib.installed, status.installed) == (
        3, 220.0, 3, 3, 3)
    rib.peer_up(TOR1)
    assert rib.update("tor1", [P], ROUTE).fib == ()  # refreshed, same next hop
    assert flat(rib.update("tor1", ["192.168.11.0/24"], ROUTE2).fib) == [("192.168.11.0/24", ("10.0.2.1",))]
    assert rib.end_of_rib("tor1", "ipv6 unicast") == RibDiff()  # other family: nothing swept
    assert flat(rib.end_of_rib("tor1", "ipv4 unicast").fib) == fib(("192.168.12.0/24", None))
    assert rib.status("tor1").stale == 0
    assert rib.expire(1000.0) == RibDiff()


def test_graceful_restart_deadline_sweeps_what_was_not_refreshed() -> None:
    rib = rib_with(TOR1)
    rib.update("tor1", [P], ROUTE)
    rib.adopt({}, 500.0)
    rib.peer_down("tor1", 100.0, graceful=True)
    assert rib.next_deadline() == 220.0
    assert rib.expire(219.9) == RibDiff()
    assert flat(rib.expire(220.0).fib) == fib((P, None))
    assert rib.next_deadline() == 500.0


def test_non_graceful_loss_or_no_capability_removes_at_once() -> None:
    rib = rib_with(TOR1, peer("tor2", "10.0.2.1", asn=65001, gr_restart_time=None))
    rib.update("tor1", [P], ROUTE)
    rib.update("tor2", ["192.168.20.0/24"], ROUTE2)
    assert flat(rib.peer_down("tor2", 0.0, graceful=True).fib) == fib(("192.168.20.0/24", None))
    assert flat(rib.peer_down("tor1", 0.0, graceful=False).fib) == fib((P, None))


def test_fresh_route_beats_a_stale_better_one() -> None:
    rib = rib_with(TOR1, TOR2)
    rib.update("tor1", [P], ROUTE)
    rib.update("tor2", [P], attrs("10.0.2.1", as_path=(65001, 2)))
    assert flat(rib.peer_down("tor1", 0.0, graceful=True).fib) == fib((P, ("10.0.2.1",)))


MESH = peer("mesh", "10.0.0.2")
BLOCKS = ["10.244.5.0/26", "10.244.6.0/26", "10.244.7.0/26"]  # in the pool: sent on to the mesh peer


def sent(diff: RibDiff) -> list[tuple[str, str, tuple[int, ...] | None]]:
    """A diff's announcements (with the AS path sent) and withdrawals (None), sorted."""
    return sorted((o.peer, o.prefix, o.attributes.as_path if isinstance(o, Announce) else None)
                  for o in diff.out)


def restarted(*peers: PeerInfo) -> Rib:
    """tor1 sent ``BLOCKS`` and P, then restarted gracefully: all of them are stale, it is up again."""
    rib = rib_with(TOR1, *peers, MESH)
    rib.update("tor1", [*BLOCKS, P], ROUTE)
    rib.peer_down("tor1", 0.0, graceful=True)
    rib.peer_up(TOR1)
    return rib


def test_routes_re_sent_as_they_were_after_a_graceful_restart_are_only_fresh_again() -> None:
    rib = restarted()
    assert rib.update("tor1", BLOCKS[:2], attrs("10.0.1.1", as_path=(65001,))) == RibDiff()  # equal, not `is`
    status = rib.status("tor1")
    assert (status.received, status.stale, status.installed, rib.installed) == (2, 2, 4, 4)
    swept = rib.end_of_rib("tor1", "ipv4 unicast")  # what was not re-sent goes
    assert sorted(flat(swept.fib)) == [(BLOCKS[2], None), (P, None)]
    assert sent(swept) == [("mesh", BLOCKS[2], None)]
    gone = rib.withdraw("tor1", BLOCKS[:2])  # fresh routes now: nothing stale keeps them
    assert (flat(gone.fib), sent(gone)) == ([(BLOCKS[0], None), (BLOCKS[1], None)],
                                            [("mesh", BLOCKS[0], None), ("mesh", BLOCKS[1], None)])
    assert rib.fib() == {} and rib.installed == 0


def test_a_route_re_sent_with_other_attributes_after_a_graceful_restart_is_a_change() -> None:
    rib = restarted()
    longer = rib.update("tor1", BLOCKS[:1], attrs("10.0.1.1", as_path=(65001, 65003)))
    assert (longer.fib, sent(longer)) == ((), [("mesh", BLOCKS[0], (65001, 65003))])  # same next hop
    moved = rib.update("tor1", BLOCKS[1:2], ROUTE2)
    assert (flat(moved.fib), sent(moved)) == ([(BLOCKS[1], ("10.0.2.1",))], [("mesh", BLOCKS[1], (65001,))])
    # As received, but import changes it (eBGP LOCAL_PREF is dropped): still no change.
    rib = rib_with(TOR1, MESH)
    with_pref = attrs("10.0.1.1", as_path=(65001,), local_pref=300)
    rib.update("tor1", BLOCKS, with_pref)
    rib.peer_down("tor1", 0.0, graceful=True)
    rib.peer_up(TOR1)
    assert rib.update("tor1", BLOCKS, with_pref) == RibDiff()
    assert rib.end_of_rib("tor1", "ipv4 unicast") == RibDiff()


def test_a_route_re_sent_after_a_graceful_restart_wins_back_from_another_session() -> None:
    rib = restarted(TOR2)
    rib.update("tor2", [BLOCKS[0]], attrs("10.0.2.1", as_path=(65001, 2)))  # fresh: best over a stale one
    back = rib.update("tor1", BLOCKS[:2], ROUTE)  # as before the restart, and better than tor2's
    assert (flat(back.fib), sent(back)) == ([(BLOCKS[0], ("10.0.1.1",))], [
        ("mesh", BLOCKS[0], (65001,)), ("tor1", BLOCKS[0], None), ("tor2", BLOCKS[0], (64512, 65001))])


def test_end_of_rib_leaves_a_prefix_another_session_holds_in_the_kernel() -> None:
    rib = restarted(TOR2)
    rib.update("tor2", [BLOCKS[0]], attrs("10.0.2.1", as_path=(65001, 2)))  # fresh: best over a stale one
    swept = rib.end_of_rib("tor1", "ipv4 unicast")
    assert sorted(flat(swept.fib)) == [(BLOCKS[1], None), (BLOCKS[2], None), (P, None)]
    assert sent(swept) == [(name, b, None) for name in ("mesh", "tor2") for b in BLOCKS[1:]]
    assert rib.fib() == {BLOCKS[0]: FibChange((BLOCKS[0],), ("10.0.2.1",))}
    assert (rib.installed, rib.status("tor1").installed, rib.status("tor2").installed) == (1, 0, 1)


def test_adopted_routes_learned_again_are_written_only_where_the_kernel_has_other_next_hops() -> None:
    rib = rib_with(TOR1, MESH)
    rib.adopt({BLOCKS[0]: ("10.0.1.1",), BLOCKS[1]: ("10.0.9.9",), "0.0.0.0/0": ("10.0.1.1",),
               "172.16.0.0/16": ("10.0.9.9",)}, 60.0)
    diff = rib.update("tor1", [*BLOCKS, "0.0.0.0/0"], ROUTE)
    # Same next hop: nothing to write; another: rewritten; not adopted: installed; a default route,
    # adopted but not to be installed without install_default: deleted.
    assert sorted(flat(diff.fib)) == [
        ("0.0.0.0/0", None), (BLOCKS[1], ("10.0.1.1",)), (BLOCKS[2], ("10.0.1.1",))]
    assert sent(diff) == [("mesh", b, (65001,)) for b in BLOCKS]  # adopted routes were never announced
    assert (rib.installed, rib.status("tor1").installed) == (4, 3)  # 172.16.0.0/16 is still adopted
    # Learned, they are no longer adopted: a withdrawal removes them from the kernel.
    assert flat(rib.withdraw("tor1", BLOCKS[:2]).fib) == [(BLOCKS[0], None), (BLOCKS[1], None)]
    assert set(rib.fib()) == {BLOCKS[2], "172.16.0.0/16"}


def test_adopted_routes_stay_until_every_peer_sent_end_of_rib() -> None:
    rib = rib_with(TOR1, TOR2)
    rib.adopt({P: ("10.0.1.1",), "192.168.11.0/24": ("10.0.1.1",), "192.168.12.0/24": ("10.0.2.1",)}, 60.0)
    assert rib.installed == 3
    assert rib.update("tor1", [P], ROUTE).fib == ()  # already in the kernel as it is
    assert flat(rib.update("tor1", ["192.168.11.0/24"], ROUTE2).fib) == [("192.168.11.0/24", ("10.0.2.1",))]
    assert rib.end_of_rib("tor1", "ipv4 unicast") == RibDiff()  # tor2 has not finished
    assert flat(rib.end_of_rib("tor2", "ipv4 unicast").fib) == fib(("192.168.12.0/24", None))
    assert rib.installed == 2


def test_a_relearned_adopted_route_does_not_come_back_after_withdrawal() -> None:
    rib = rib_with(TOR1)
    rib.adopt({P: ("10.0.1.1",)}, 60.0)
    rib.update("tor1", [P], ROUTE)
    assert flat(rib.withdraw("tor1", [P]).fib) == fib((P, None))


def test_an_adopted_route_stays_when_only_a_rejected_copy_comes_back() -> None:
    """After a restart a ToR sends a mesh peer's block back (AS loop): no replacement for the kernel's."""
    rib = rib_with(TOR1)
    rib.adopt({P: ("10.0.0.2",)}, 60.0)
    assert rib.update("tor1", [P], attrs("10.0.1.1", as_path=(65001, LOCAL_AS))).fib == ()
    assert rib.fib()[P].nexthops == ("10.0.0.2",)


def test_a_reachable_by_route_beats_a_learned_one_for_the_same_prefix() -> None:
    """Like BIRD's static protocol over BGP: the learned route waits in the RIB, and is not reflected."""
    host = "10.0.1.1/32"
    statics = local(static_routes=((host, "10.0.9.1"),))
    rib = Rib(statics)
    rib.set_peer(TOR1)
    rib.peer_up(TOR1)
    assert rib.fib()[host] == FibChange((host,), ("10.0.9.1",))
    assert rib.update("tor1", [host], ROUTE).fib == ()
    assert flat(rib.set_local(local()).fib) == fib((host, ("10.0.1.1",)))  # no longer wanted: BGP's now
    assert flat(rib.set_local(statics).fib) == fib((host, ("10.0.9.1",)))
    assert rib.withdraw("tor1", [host]).fib == ()


def test_reflected_routes_get_the_prefix_advertisement_communities() -> None:
    """Calico's apply_communities runs for every route its export policy passes, not only its own."""
    policy = ExportPolicy(pools=(ip_network("10.244.0.0/16"),),
                          communities=((ip_network("10.244.0.0/16"), ("65000:7", "1:2:3")),))
    rib = Rib(local(export_policy=policy, cluster_id="1.0.0.1"))
    c1, c2 = peer("c1", "10.0.0.11", rr_client=True), peer("c2", "10.0.0.12", rr_client=True)
    for client in (c1, c2):
        rib.set_peer(client)
        rib.peer_up(client)
    diff = rib.update("c1", ["10.244.11.0/26"], attrs("10.0.0.11", communities=((65000, 7),)))
    [sent] = [o for o in diff.out if isinstance(o, Announce) and o.peer == "c2"]
    assert sent.attributes.communities == ((65000, 7),) and sent.attributes.large_communities == ((1, 2, 3),)
    assert rib.update("c1", ["192.168.0.0/24"], attrs("10.0.0.11")).out == ()  # outside the pools


def test_adopted_routes_go_at_the_deadline() -> None:
    rib = rib_with(TOR1)
    rib.adopt({P: ("10.0.1.1",)}, 60.0)
    assert rib.expire(59.0) == RibDiff()
    assert flat(rib.expire(60.0).fib) == fib((P, None))


def test_adopted_routes_are_not_announced() -> None:
    rib = rib_with(peer("n2", "10.0.0.2"))
    rib.adopt({"10.244.5.0/26": ("10.0.0.5",)}, 60.0)
    assert rib.adj_out("n2") == {}


def test_local_exports_are_announced_with_communities() -> None:
    rib = Rib(local(exports=exports("10.244.1.0/26", communities=("65000:1", "1:2:3"))))
    diff = rib.peer_up(TOR1)
    assert diff.out == (Announce("tor1", "10.244.1.0/26", attrs(
        "10.0.0.1", as_path=(LOCAL_AS,), communities=((65000, 1),), large_communities=((1, 2, 3),))),)
    ibgp = peer("n2", "10.0.0.2")
    assert rib.peer_up(ibgp).out == (Announce("n2", "10.244.1.0/26", attrs(
        "10.0.0.1", local_pref=2147483647 - 1024, communities=((65000, 1),),
        large_communities=((1, 2, 3),))),)


def test_export_policy_change_announces_and_withdraws() -> None:
    rib = Rib(LocalInfo(as_number=LOCAL_AS, exports=exports("10.244.1.0/26")))
    assert rib.peer_up(TOR1).out == ()  # no pool covers it: Calico's policy rejects it
    diff = rib.set_local(LocalInfo(as_number=LOCAL_AS, exports=exports("10.244.1.0/26"),
                                   export_policy=ExportPolicy(pools=(ip_network("10.244.0.0/16"),))))
    assert diff.out == (Announce("tor1", "10.244.1.0/26", attrs("10.0.0.1", as_path=(LOCAL_AS,))),)
    assert rib.set_local(LocalInfo(as_number=LOCAL_AS)).out == (Withdraw("tor1", "10.244.1.0/26"),)


def test_ipv6_routes_and_per_family_sessions() -> None:
    v6 = peer("tor6", "fd00:9::1", asn=65001)
    mesh4 = peer("n2", "10.0.0.2")
    mesh6 = peer("n2v6", "fd00::2")
    rib = rib_with(v6, mesh4, mesh6, export_policy=ExportPolicy(pools=(ip_network("fd00:244::/48"),)))
    diff = rib.update("tor6", ["fd00:244:0:1::/64", "fe80::/64"], attrs("fd00:9::1", as_path=(65001,)))
    assert flat(diff.fib) == fib(("fd00:244:0:1::/64", ("fd00:9::1",)))
    assert diff.out == (Announce("n2v6", "fd00:244:0:1::/64",
                                 attrs("fd00:9::1", as_path=(65001,), local_pref=100)),)


def test_removing_a_session_removes_its_routes_and_may_end_adoption() -> None:
    rib = rib_with(TOR1, TOR2)
    rib.adopt({"172.16.0.0/16": ("10.0.9.9",)}, 60.0)
    rib.update("tor1", [P], ROUTE)
    rib.end_of_rib("tor1", "ipv4 unicast")
    assert flat(rib.remove_peer("tor2").fib) == fib(("172.16.0.0/16", None))
    assert flat(rib.remove_peer("tor1").fib) == fib((P, None))


def test_peer_info_from_a_desired_session() -> None:
    session = DesiredSession(
        name="Node_10_0_1_1", family=4, kind="Node", peer_ip="10.0.1.1", port=179, remote_as=65001,
        local_as=64512, ibgp=False, passive=False, rr_client=False, rr_cluster_id=None, password=None,
        ttl_security=None, max_restart_time=90, keepalive_time=None, source_address="10.0.0.1",
        next_hop="keep", allow_local_as=2, filters=("missing", "f"), reachable_by=None, origin=(),
    )
    flt = bgp_filter("f")
    info = PeerInfo.from_session(session, {"f": flt}, router_id="10.0.1.1", gr_restart_time=90.0)
    assert info == PeerInfo(
        name="Node_10_0_1_1", peer_ip="10.0.1.1", remote_as=65001, local_as=64512, ibgp=False,
        router_id="10.0.1.1", gr_restart_time=90.0, families=("ipv4 unicast",), filters=(flt,),
        allow_local_as=2, next_hop="keep", local_address="10.0.0.1",
    )


def test_local_info_from_a_desired_node() -> None:
    block = ip_network("10.244.1.0/26")
    node = DesiredNode(
        node="n1", as_number=64512, router_id="10.0.0.1", listen_port=None, rr_cluster_id="1.0.0.1",
        exports=exports("10.244.1.0/26"), blackholes=(block,),
        sessions=(DesiredSession(
            name="Node_10_0_0_5", family=4, kind="Node", peer_ip="10.0.0.5", port=179, remote_as=64512,
            local_as=64512, ibgp=True, passive=False, rr_client=True, rr_cluster_id="1.0.0.1", password=None,
            ttl_security=None, max_restart_time=None, keepalive_time=None, source_address="10.0.0.1",
            next_hop="auto", allow_local_as=None, filters=(), reachable_by=None, origin=()),),
    )
    info = LocalInfo.from_desired(node)
    assert (info.cluster_id, info.blackholes, info.exports) == ("1.0.0.1", frozenset({"10.244.1.0/26"}),
                                                                node.exports)


def test_an_updates_prefixes_reach_the_kernel_as_one_change_without_the_martians() -> None:
    rib = rib_with(TOR1)
    batch = [f"20.{i >> 8}.{i & 255}.0/24" for i in range(1000)]
    assert rib.update("tor1", batch, ROUTE).fib == (FibChange(tuple(batch), ("10.0.1.1",)),)
    mixed = ["21.0.0.0/24", "127.0.0.0/8", "21.0.1.0/24", "169.254.0.0/16"]
    assert rib.update("tor1", mixed, ROUTE).fib == (FibChange(("21.0.0.0/24", "21.0.1.0/24"), ("10.0.1.1",)),)
    assert rib.peer_down("tor1", 0.0, graceful=False).fib == (
        FibChange((*batch, "21.0.0.0/24", "21.0.1.0/24"), None),)


def test_fib_grouped_joins_runs_with_equal_next_hops_and_keeps_order() -> None:
    a, b = ("10.0.0.1",), ("10.0.0.2",)
    decisions: list[tuple[str, tuple[str, ...] | None, FibKind]] = [
        ("p1", a, "unicast"), ("p2", ("10.0.0.1",), "unicast"), ("p3", b, "unicast"), ("p4", None, "unicast"),
        ("p5", None, "unicast"), ("p6", (), "blackhole"), ("p7", a, "unicast")]
    assert fib_grouped(decisions) == (
        FibChange(("p1", "p2"), a), FibChange(("p3",), b), FibChange(("p4", "p5"), None),
        FibChange(("p6",), (), "blackhole"), FibChange(("p7",), a))


def test_near_keeps_every_prefix_inside_the_nets_and_drops_those_whose_address_is_outside() -> None:
    rng = random.Random(7)
    nets = (ip_network("10.244.0.0/16"), ip_network("10.244.3.0/26"), ip_network("10.96.0.0/12"),
            ip_network("192.168.4.0/24"))
    prefixes = [f"{rng.choice([10, 192])}.{rng.choice([244, 96, 100, 168])}.{rng.randrange(256)}.0/"
                f"{rng.choice([8, 12, 16, 24, 26, 32])}" for _ in range(2000)]
    kept = near(prefixes, nets)
    assert {p for p in prefixes if covered_by(p, nets)} <= set(kept)
    by_address = [p for p in prefixes
                  if any(ip_address(p.split("/")[0]) in n for n in nets)]
    assert kept == by_address
    assert near(["10.0.0.0/8", "fd00::/64"], nets) == ["10.0.0.0/8", "fd00::/64"]  # mixed: all, unjudged
    assert near(["fd00:1::/64", "fd00:2::/64"], (ip_network("fd00:1::/48"),)) == ["fd00:1::/64"]
