"""Route reflection (RFC 4456) and the per-peer export rewrite."""

from __future__ import annotations

from ipaddress import ip_network

from bgpd.model.resources import FilterRule
from bgpd.rib import Announce, Withdraw
from tests.unit.test_rib_support import LOCAL_AS, attrs, bgp_filter, peer, rib_with

CLUSTER = "10.0.0.100"
C1 = peer("c1", "10.0.0.11", rr_client=True)
C2 = peer("c2", "10.0.0.12", rr_client=True)
RR2 = peer("rr2", "10.0.0.2")  # another reflector: a non-client
TOR = peer("tor", "10.0.9.1", asn=65001)
BLOCK = "10.244.11.0/26"


def by_peer(out: tuple[object, ...]) -> dict[str, object]:
    result: dict[str, object] = {}
    for o in out:
        assert isinstance(o, Announce | Withdraw)
        result[o.peer] = o.attributes if isinstance(o, Announce) else None
    return result


def test_client_route_goes_to_everyone_but_its_source() -> None:
    rib = rib_with(C1, C2, RR2, TOR, cluster_id=CLUSTER)
    out = by_peer(rib.update("c1", [BLOCK], attrs("10.0.0.11")).out)
    reflected = attrs("10.0.0.11", local_pref=100, originator_id="10.0.0.11", cluster_list=(CLUSTER,))
    assert out == {
        "c2": reflected,
        "rr2": reflected,
        "tor": attrs("10.0.0.1", as_path=(LOCAL_AS,)),  # eBGP: next hop self, no RR attributes
    }


def test_non_client_route_goes_to_clients_only() -> None:
    rib = rib_with(C1, C2, RR2, TOR, cluster_id=CLUSTER)
    out = by_peer(rib.update("rr2", [BLOCK], attrs("10.0.0.11", originator_id="10.0.0.11",
                                                    cluster_list=("10.0.0.200",))).out)
    # c1 originated it: not reflected back to it. c2 gets it with our cluster id prepended.
    assert out == {
        "c2": attrs("10.0.0.11", local_pref=100, originator_id="10.0.0.11",
                    cluster_list=(CLUSTER, "10.0.0.200")),
        "tor": attrs("10.0.0.1", as_path=(LOCAL_AS,)),
    }


def test_our_cluster_id_in_the_list_is_a_loop() -> None:
    rib = rib_with(C1, C2, RR2, TOR, cluster_id=CLUSTER)
    assert rib.update("rr2", [BLOCK], attrs("10.0.0.11", cluster_list=(CLUSTER,))).out == ()


def test_ebgp_routes_go_to_every_ibgp_peer_unchanged() -> None:
    rib = rib_with(C1, C2, RR2, TOR, cluster_id=CLUSTER)
    out = by_peer(rib.update("tor", ["10.244.0.0/24"], attrs("10.0.9.1", as_path=(65001,), med=7)).out)
    plain = attrs("10.0.9.1", as_path=(65001,), med=7, local_pref=100)
    assert out == {"c1": plain, "c2": plain, "rr2": plain}


def test_without_a_cluster_id_ibgp_routes_are_not_readvertised_to_ibgp() -> None:
    rib = rib_with(C1, C2, RR2, TOR)
    out = by_peer(rib.update("c1", [BLOCK], attrs("10.0.0.11")).out)
    assert out == {"tor": attrs("10.0.0.1", as_path=(LOCAL_AS,))}


def test_next_hop_modes() -> None:
    self_ibgp = peer("n2", "10.0.0.2", next_hop="self")
    keep_ebgp = peer("tor2", "10.0.8.1", asn=65002, next_hop="keep")
    rib = rib_with(TOR, self_ibgp, keep_ebgp)
    out = by_peer(rib.update("tor", ["10.244.0.0/24"], attrs("10.0.9.1", as_path=(65001,))).out)
    assert out == {
        "n2": attrs("10.0.0.1", as_path=(65001,), local_pref=100),
        "tor2": attrs("10.0.9.1", as_path=(LOCAL_AS, 65001)),
    }


def test_export_filter_applies_per_target() -> None:
    deny = bgp_filter("deny", export_v4=(FilterRule(action="Reject", match_operator="In",
                                                      cidr=ip_network("10.244.0.0/16")),))
    c2_filtered = peer("c2", "10.0.0.12", rr_client=True, filters=(deny,))
    rib = rib_with(C1, c2_filtered, RR2, cluster_id=CLUSTER)
    assert set(by_peer(rib.update("c1", [BLOCK], attrs("10.0.0.11")).out)) == {"rr2"}


def test_routes_outside_calico_pools_are_not_reflected() -> None:
    rib = rib_with(C1, C2, cluster_id=CLUSTER)
    assert rib.update("c1", ["192.168.0.0/24"], attrs("10.0.0.11")).out == ()


def test_withdrawals_and_session_loss_are_reflected() -> None:
    rib = rib_with(C1, C2, RR2, cluster_id=CLUSTER)
    rib.update("c1", [BLOCK], attrs("10.0.0.11"))
    assert rib.peer_down("c1", 0.0, graceful=False).out == (Withdraw("c2", BLOCK), Withdraw("rr2", BLOCK))


def test_a_peer_coming_up_gets_the_table() -> None:
    rib = rib_with(C1, RR2, cluster_id=CLUSTER)
    rib.update("c1", [BLOCK], attrs("10.0.0.11"))
    assert rib.peer_up(C2).out == (Announce("c2", BLOCK, attrs(
        "10.0.0.11", local_pref=100, originator_id="10.0.0.11", cluster_list=(CLUSTER,))),)
    assert set(rib.adj_out("c2")) == {BLOCK}


def test_a_batch_goes_to_each_target_by_its_own_export_chain() -> None:
    """Calico's policy judges a batch once for every target without filters; a filtered target still
    judges each route itself; session loss withdraws exactly what each target got."""
    deny = bgp_filter("deny", export_v4=(FilterRule(action="Reject", match_operator="Equal",
                                                      cidr=ip_network("10.244.1.0/24")),))
    n2, n3 = peer("n2", "10.0.0.2"), peer("n3", "10.0.0.3", filters=(deny,))
    rib = rib_with(TOR, n2, n3)
    batch = ["10.244.1.0/24", "192.168.0.0/24", "10.244.2.0/24"]
    out = rib.update("tor", batch, attrs("10.0.9.1", as_path=(65001,))).out
    plain = attrs("10.0.9.1", as_path=(65001,), local_pref=100)
    assert sorted((o.peer, o.prefix) for o in out) == [
        ("n2", "10.244.1.0/24"), ("n2", "10.244.2.0/24"), ("n3", "10.244.2.0/24")]
    assert all(isinstance(o, Announce) and o.attributes == plain for o in out)
    assert sorted(rib.peer_down("tor", 0.0, graceful=False).out) == sorted(
        Withdraw(o.peer, o.prefix) for o in out)
