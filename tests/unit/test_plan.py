"""plan(): which sessions are added, removed, reset or updated in place, and what else changes."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network
from typing import Any

import pytest

from bgpd.desired import DesiredNode, DesiredSession, Export, Password, StaticRoute
from bgpd.plan import RESET_FIELDS, plan


def session(ip: str = "10.0.0.2", **kw: Any) -> DesiredSession:
    base: dict[str, Any] = dict(
        name="Mesh_" + ip.replace(".", "_"), family=4, kind="Mesh", peer_ip=ip, port=179,
        remote_as=64512, local_as=64512, ibgp=True, passive=False, rr_client=False, rr_cluster_id=None,
        password=None, ttl_security=None, max_restart_time=None, keepalive_time=None,
        source_address="10.0.0.1", next_hop="auto", allow_local_as=None, filters=(), reachable_by=None,
        origin=("BGPConfiguration/default",))
    base.update(kw)
    return DesiredSession(**base)


def node(*sessions: DesiredSession, **kw: Any) -> DesiredNode:
    return DesiredNode(node="node-1", as_number=64512, router_id="10.0.0.1", listen_port=None,
                       sessions=sessions, **kw)


A = node(session("10.0.0.2"), session("10.0.0.3"),
         exports=(Export(ip_network("10.244.1.0/26")),))


def test_first_plan_adds_everything_and_configures_the_speaker() -> None:
    p = plan(None, A)
    assert p.of_kind("add") == ("Mesh_10_0_0_2", "Mesh_10_0_0_3")
    assert p.announce == A.exports
    assert p.needs_speaker_config


def test_noop_snapshot_gives_no_actions() -> None:
    p = plan(A, A)
    assert p.actions == ()
    assert p.empty
    assert not p.needs_speaker_config
    assert p.of_kind("noop") == ("Mesh_10_0_0_2", "Mesh_10_0_0_3")


def test_a_b_a_inverts() -> None:
    b = node(session("10.0.0.2", password=Password("s3cret")), session("10.0.0.4"),
             exports=(Export(ip_network("10.244.2.0/26")),))
    ab, ba = plan(A, b), plan(b, A)
    assert ab.of_kind("add") == ba.of_kind("remove") == ("Mesh_10_0_0_4",)
    assert ab.of_kind("remove") == ba.of_kind("add") == ("Mesh_10_0_0_3",)
    assert ab.of_kind("reset") == ba.of_kind("reset") == ("Mesh_10_0_0_2",)
    assert ab.announce == ba.withdraw and ab.withdraw == ba.announce


def test_unrelated_peer_added_resets_nothing_else() -> None:
    p = plan(A, node(*A.sessions, session("10.0.0.9", kind="Global", name="Global_10_0_0_9"),
                     exports=A.exports))
    assert [(a.kind, a.name) for a in p.actions] == [("add", "Global_10_0_0_9")]


def test_password_change_resets_only_that_session() -> None:
    p = plan(A, node(session("10.0.0.2", password=Password("x")), session("10.0.0.3"), exports=A.exports))
    assert [(a.kind, a.name, a.changed) for a in p.actions] == [("reset", "Mesh_10_0_0_2", ("password",))]


@pytest.mark.parametrize(("field", "value"), [
    ("peer_ip", "10.0.0.22"), ("port", 180), ("remote_as", 65000), ("local_as", 65001),
    ("password", Password("p")), ("ttl_security", 1), ("passive", True), ("source_address", None),
    ("max_restart_time", 120), ("keepalive_time", 10), ("family", 6),
])
def test_session_defining_parameters_reset(field: str, value: Any) -> None:
    assert field in RESET_FIELDS
    p = plan(A, node(session("10.0.0.2", **{field: value}), session("10.0.0.3"), exports=A.exports))
    assert [(a.kind, a.name, a.changed) for a in p.actions] == [("reset", "Mesh_10_0_0_2", (field,))]


@pytest.mark.parametrize(("field", "value"), [
    ("filters", ("f1",)), ("next_hop", "self"), ("rr_client", True), ("allow_local_as", 1),
    ("rr_cluster_id", "1.1.1.1"),
])
def test_policy_parameters_update_in_place(field: str, value: Any) -> None:
    p = plan(A, node(session("10.0.0.2", **{field: value}), session("10.0.0.3"), exports=A.exports))
    assert [(a.kind, a.name, a.changed) for a in p.actions] == [("update", "Mesh_10_0_0_2", (field,))]
    assert not p.needs_speaker_config


def test_changed_filter_rules_update_the_sessions_using_it() -> None:
    using = node(session("10.0.0.2", filters=("f1",)), session("10.0.0.3"), filters={"f1": "old"})
    p = plan(using, replace(using, filters={"f1": "new"}))
    assert [(a.kind, a.name, a.changed) for a in p.actions] == [("update", "Mesh_10_0_0_2", ("filter:f1",))]


def test_origin_only_change_is_a_noop() -> None:
    p = plan(A, node(session("10.0.0.2", origin=("BGPPeer/x",)), session("10.0.0.3"), exports=A.exports))
    assert p.empty
    assert p.sessions[0].changed == ("origin",)


def test_router_id_change_resets_every_session() -> None:
    p = plan(A, replace(A, router_id="10.0.0.100"))
    assert p.of_kind("reset") == ("Mesh_10_0_0_2", "Mesh_10_0_0_3")
    assert p.speaker_changed == ("router_id",)


def test_listen_port_change_reconfigures_the_speaker_without_resets() -> None:
    p = plan(A, replace(A, listen_port=1790))
    assert p.actions == () and p.speaker_changed == ("listen_port",) and p.needs_speaker_config


def test_actions_are_ordered_remove_reset_add_update() -> None:
    b = node(session("10.0.0.2", next_hop="self"), session("10.0.0.3", port=180), session("10.0.0.5"))
    c = node(session("10.0.0.1"), *b.sessions)
    p = plan(replace(c, sessions=(session("10.0.0.1"), session("10.0.0.2"), session("10.0.0.3"),
                                  session("10.0.0.4"))), b)
    assert [a.kind for a in p.actions] == ["remove", "remove", "reset", "add", "update"]


def test_exports_static_routes_and_blackholes_diff() -> None:
    s1 = StaticRoute(ip_network("10.0.0.2/32"), "10.0.0.254")
    s2 = StaticRoute(ip_network("10.0.0.3/32"), "10.0.0.254")
    bh1, bh2 = ip_network("10.244.1.0/26"), ip_network("10.244.2.0/26")
    e1, e2 = Export(ip_network("10.244.1.0/26")), Export(ip_network("10.244.2.0/26"))
    e1c = Export(ip_network("10.244.1.0/26"), ("64512:1",))
    old = node(exports=(e1, e2), static_routes=(s1,), blackholes=(bh1,))
    new = node(exports=(e1c,), static_routes=(s2,), blackholes=(bh2,))
    p = plan(old, new)
    assert (p.announce, p.withdraw) == ((e1c,), (e2,))
    assert (p.static_add, p.static_remove) == ((s2,), (s1,))
    assert (p.blackhole_add, p.blackhole_remove) == ((bh2,), (bh1,))
    assert p.static_changed and not p.needs_speaker_config
