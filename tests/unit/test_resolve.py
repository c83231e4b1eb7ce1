"""Peer resolution rules (calico-semantics.md §2), one small hand-built snapshot per rule."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address, ip_interface, ip_network
from typing import Any

import pytest

from bgpd.desired import DesiredNode, DesiredSession
from bgpd.model.resources import (
    BGPConfiguration,
    BGPFilter,
    BGPPeer,
    BlockAffinity,
    Community,
    FilterRule,
    IPPool,
    Meta,
    Node,
    NodeBGP,
    PeerAddress,
    PrefixAdvertisement,
    Secret,
    SecretKeyRef,
)
from bgpd.model.snapshot import Snapshot
from bgpd.resolve import LocalWorkload, resolve
from bgpd.resolve.explain import why
from bgpd.resolve.facts import cluster_facts
from bgpd.resolve.peerings import expand
from bgpd.selector import parse

Resource = Any


def node(
    name: str,
    ip4: str | None = None,
    ip6: str | None = None,
    asn: int | None = None,
    rr: str | None = None,
    **labels: str,
) -> Node:
    bgp = NodeBGP(
        ipv4_address=ip_interface(f"{ip4}/24") if ip4 else None,  # type: ignore[arg-type]
        ipv6_address=ip_interface(f"{ip6}/64") if ip6 else None,  # type: ignore[arg-type]
        as_number=asn,
        route_reflector_cluster_id=rr,
    )
    return Node(Meta(name, labels=dict(labels)), bgp)


def peer(
    name: str,
    peer_ip: str | None = None,
    *,
    node_selector: str | None = None,
    peer_selector: str | None = None,
    **kw: Any,
) -> BGPPeer:
    address = None
    if peer_ip is not None:
        host, _, port = peer_ip.rpartition(":") if peer_ip.count(":") == 1 else (peer_ip, "", "")
        address = PeerAddress(ip_address(host), int(port) if port else None)
    return BGPPeer(
        Meta(name),
        peer_ip=address,
        node_selector=parse(node_selector) if node_selector is not None else None,
        peer_selector=parse(peer_selector) if peer_selector is not None else None,
        **kw,
    )


def config(name: str = "default", **kw: Any) -> BGPConfiguration:
    return BGPConfiguration(Meta(name), **kw)


def block(node_name: str, cidr: str, state: Any = "confirmed", deleted: bool = False) -> BlockAffinity:
    return BlockAffinity(
        Meta(f"{node_name}-{cidr}"), node=node_name, cidr=ip_network(cidr), state=state, deleted=deleted
    )


def snap(*resources: Resource, namespace: str = "kube-system") -> Snapshot:
    tables: dict[str, dict[Any, Any]] = {
        "nodes": {},
        "bgp_configurations": {},
        "bgp_peers": {},
        "bgp_filters": {},
        "ip_pools": {},
        "block_affinities": {},
        "secrets": {},
    }
    attr = {
        Node: "nodes",
        BGPConfiguration: "bgp_configurations",
        BGPPeer: "bgp_peers",
        BGPFilter: "bgp_filters",
        IPPool: "ip_pools",
        BlockAffinity: "block_affinities",
    }
    for r in resources:
        if isinstance(r, Secret):
            tables["secrets"][(r.meta.namespace or namespace, r.name)] = r
        else:
            tables[attr[type(r)]][r.name] = r
    return Snapshot(**tables, secret_namespace=namespace)


def sessions(desired: DesiredNode) -> dict[str, DesiredSession]:
    return {s.name: s for s in desired.sessions}


THREE = (node("n1", "10.0.0.1", "fd00::1"), node("n2", "10.0.0.2", "fd00::2"), node("n3", "10.0.0.3"))

# ---------------------------------------------------------------- mesh


def test_full_mesh_is_on_by_default_and_skips_self_and_missing_families() -> None:
    got = resolve(snap(*THREE), "n1")
    assert [s.name for s in got.sessions] == ["Mesh_10_0_0_2", "Mesh_10_0_0_3", "Mesh_fd00__2"]
    s = sessions(got)["Mesh_10_0_0_2"]
    assert (s.kind, s.family, s.peer_ip, s.port, s.remote_as, s.local_as, s.ibgp) == (
        "Mesh",
        4,
        "10.0.0.2",
        179,
        64512,
        64512,
        True,
    )
    assert (s.source_address, s.next_hop, s.ttl_security, s.filters, s.password) == (
        "10.0.0.1",
        "auto",
        None,
        (),
        None,
    )
    assert s.origin == ("BGPConfiguration/default", "Node/n2")
    assert got.errors == ()


@pytest.mark.parametrize(
    ("me", "other", "passive"),
    [
        ("10.192.0.9", "10.192.0.10", False),  # "10.192.0.10" < "10.192.0.9" as strings: .9 connects
        ("10.192.0.10", "10.192.0.9", True),
        ("10.0.0.1", "10.0.0.2", True),
    ],
)
def test_passive_is_decided_by_string_order(me: str, other: str, passive: bool) -> None:
    got = resolve(snap(node("a", me), node("b", other)), "a")
    assert [(s.peer_ip, s.passive) for s in got.sessions] == [(other, passive)]


def test_route_reflectors_leave_the_mesh_and_non_rr_skip_them() -> None:
    nodes = (node("rr", "10.0.0.1", rr="1.0.0.1"), node("c1", "10.0.0.2"), node("c2", "10.0.0.3"))
    assert resolve(snap(*nodes), "rr").sessions == ()
    assert [s.name for s in resolve(snap(*nodes), "c1").sessions] == ["Mesh_10_0_0_3"]


def test_mesh_disabled_and_duplicate_ip_skipped() -> None:
    assert resolve(snap(*THREE, config(node_to_node_mesh_enabled=False)), "n1").sessions == ()
    twin = node("twin", "10.0.0.1")
    assert [s.name for s in resolve(snap(*THREE, twin), "n1").sessions if s.family == 4] == [
        "Mesh_10_0_0_2",
        "Mesh_10_0_0_3",
    ]


def test_mesh_remote_as_is_the_peer_nodes_own_as_deliberate_deviation() -> None:
    # DESIGN.md §3: Calico master would use the local node's AS (64514) for n2 and n3 here.
    res = snap(node("n1", "10.0.0.1", asn=64514), node("n2", "10.0.0.2"), config(as_number=64513))
    on_n1 = sessions(resolve(res, "n1"))["Mesh_10_0_0_2"]
    assert (on_n1.remote_as, on_n1.local_as, on_n1.ibgp) == (64513, 64514, False)
    on_n2 = sessions(resolve(res, "n2"))["Mesh_10_0_0_1"]
    assert (on_n2.remote_as, on_n2.local_as, on_n2.ibgp) == (64514, 64513, False)


def test_mesh_password_restart_time_and_peer_listen_port() -> None:
    res = snap(
        *THREE,
        config(node_mesh_password=SecretKeyRef("mesh", "pw"), node_mesh_max_restart_time=2.5),
        config("node.n2", listen_port=1790),
        Secret(Meta("mesh", namespace="kube-system"), {"pw": "s3"}),
    )
    got = sessions(resolve(res, "n1"))
    m2, m3 = got["Mesh_10_0_0_2"], got["Mesh_10_0_0_3"]
    assert (m2.port, m3.port) == (1790, 179)  # mesh names never carry the port
    assert m2.password is not None and m2.password.reveal() == "s3"
    assert m2.max_restart_time == 3  # round half away from zero
    assert resolve(res, "n2").listen_port == 1790
    assert resolve(res, "n1").listen_port is None


# ---------------------------------------------------------------- explicit peers


NO_MESH = config(node_to_node_mesh_enabled=False)


def test_global_peer_external_and_calico_node() -> None:
    res = snap(
        *THREE,
        NO_MESH,
        peer("tor", "10.0.0.254", as_number=64567),
        peer("to-n3", "10.0.0.3", as_number=64512),
    )
    got = sessions(resolve(res, "n1"))
    assert sorted(got) == ["Global_10_0_0_254", "Global_10_0_0_3"]
    tor = got["Global_10_0_0_254"]
    assert (tor.kind, tor.remote_as, tor.local_as, tor.ibgp, tor.passive, tor.origin) == (
        "Global",
        64567,
        64512,
        False,
        False,
        ("BGPPeer/tor",),
    )
    assert got["Global_10_0_0_3"].passive is True  # a Calico node with a larger address (string order)
    assert got["Global_10_0_0_3"].origin == ("BGPPeer/to-n3", "Node/n3")


def test_node_specific_by_name_and_selector_never_passive() -> None:
    res = snap(
        node("n1", "10.0.0.1", rack="rack-1"),
        node("n2", "10.0.0.2"),
        NO_MESH,
        peer("by-name", "10.0.0.9", node="n2", as_number=65000),
        peer("rack1-tor", "10.0.0.250", node_selector="rack == 'rack-1'", as_number=64567),
        peer("to-n2", "10.0.0.2", node="n1", as_number=64512),
    )
    assert sorted(sessions(resolve(res, "n1"))) == ["Node_10_0_0_2", "Node_10_0_0_250"]
    assert sessions(resolve(res, "n1"))["Node_10_0_0_2"].passive is False
    # n2 also gets the reverse of "to-n2" (same AS, no port).
    assert sorted(sessions(resolve(res, "n2"))) == ["Node_10_0_0_1", "Node_10_0_0_9"]


def test_peer_selector_uses_remote_nodes_as_and_listen_port() -> None:
    res = snap(
        node("n1", "10.0.0.1", rr="1.0.0.1", rr_label="yes"),
        node("n2", "10.0.0.2", asn=65002),
        node("n3", "10.0.0.3"),
        NO_MESH,
        config("node.n3", listen_port=1790),
        peer(
            "all-to-n2n3",
            node_selector="has(rr_label)",
            peer_selector="!has(rr_label)",
            num_allowed_local_as_numbers=2,
            local_as_number=65111,
        ),
    )
    got = sessions(resolve(res, "n1"))
    assert sorted(got) == ["Node_10_0_0_2", "Node_10_0_0_3_port_1790"]
    n2, n3 = got["Node_10_0_0_2"], got["Node_10_0_0_3_port_1790"]
    # localASNumber and numAllowedLocalASNumbers are dropped for peerSelector peerings.
    assert (n2.remote_as, n2.local_as, n2.ibgp, n2.rr_client, n2.allow_local_as) == (
        65002,
        64512,
        False,
        False,
        None,
    )
    assert (n3.port, n3.remote_as, n3.rr_client, n3.rr_cluster_id) == (1790, 64512, True, "1.0.0.1")


def test_reverse_peerings_and_manual() -> None:
    nodes = (node("rr", "10.0.0.1", rr="1.0.0.1", role="rr"), node("c1", "10.0.0.2"), node("c2", "10.0.0.3"))
    auto = peer(
        "peer-with-rr", node_selector="all()", peer_selector="role == 'rr'", password=SecretKeyRef("s", "k")
    )
    res = snap(*nodes, auto, Secret(Meta("s", namespace="kube-system"), {"k": "pw"}))
    on_rr = sessions(resolve(res, "rr"))
    assert sorted(on_rr) == ["Node_10_0_0_2", "Node_10_0_0_3"]
    c1 = on_rr["Node_10_0_0_2"]
    assert (c1.rr_client, c1.rr_cluster_id, c1.passive) == (True, "1.0.0.1", False)
    assert c1.password is not None and c1.password.reveal() == "pw"
    assert c1.origin == ("BGPPeer/peer-with-rr (reverse)", "Node/c1")
    on_c1 = sessions(resolve(res, "c1"))
    assert sorted(on_c1) == ["Mesh_10_0_0_3", "Node_10_0_0_1"]
    manual = snap(*nodes, replace(auto, reverse_peering="Manual"))
    assert resolve(manual, "rr").sessions == ()


def test_reverse_peering_of_peer_ip_needs_same_as_and_port() -> None:
    base = (node("a", "10.0.0.1"), node("b", "10.0.0.2"), NO_MESH)
    same = snap(*base, peer("a-to-b", "10.0.0.2", node="a", as_number=64512))
    assert sorted(sessions(resolve(same, "b"))) == ["Node_10_0_0_1"]
    other_as = snap(*base, peer("a-to-b", "10.0.0.2", node="a", as_number=65000))
    assert resolve(other_as, "b").sessions == ()
    with_port = snap(*base, peer("a-to-b", "10.0.0.2:1790", node="a", as_number=64512))
    assert sorted(sessions(resolve(with_port, "b"))) == ["Node_10_0_0_1"]  # b's own port is unset
    wrong_port = snap(
        *base, config("node.b", listen_port=1791), peer("a-to-b", "10.0.0.2:1790", node="a", as_number=64512)
    )
    assert resolve(wrong_port, "b").sessions == ()
    # Faithful quirk: b listens on 1790, but a different cluster-wide listenPort still excludes it.
    quirk = snap(
        *base[:2],
        config(node_to_node_mesh_enabled=False, listen_port=180),
        config("node.b", listen_port=1790),
        peer("a-to-b", "10.0.0.2:1790", node="a", as_number=64512),
    )
    assert resolve(quirk, "b").sessions == ()


def test_rr_client_rule_same_cluster_by_selector_not_client_by_ip_client() -> None:
    nodes = (
        node("rr1", "10.0.0.1", rr="1.0.0.1", role="rr"),
        node("rr2", "10.0.0.2", rr="1.0.0.1", role="rr"),
    )
    by_selector = snap(*nodes, peer("rrs", node_selector="role == 'rr'", peer_selector="role == 'rr'"))
    assert sessions(resolve(by_selector, "rr1"))["Node_10_0_0_2"].rr_client is False
    by_ip = snap(*nodes, peer("rr2", "10.0.0.2", node="rr1", as_number=64512, reverse_peering="Manual"))
    assert sessions(resolve(by_ip, "rr1"))["Node_10_0_0_2"].rr_client is True
    ebgp = snap(*nodes, peer("x", "10.9.0.1", node="rr1", as_number=65000))
    assert sessions(resolve(ebgp, "rr1"))["Node_10_9_0_1"].rr_client is False


@pytest.mark.parametrize(
    ("node_as", "default_as", "local_as_number", "local", "ibgp"),
    [
        (None, None, None, 64512, False),
        (None, 64513, None, 64513, False),
        (64514, 64513, None, 64514, False),
        (64514, 64513, 65000, 65000, True),  # localASNumber is the effective local AS and flips iBGP
    ],
)
def test_local_as(
    node_as: int | None, default_as: int | None, local_as_number: int | None, local: int, ibgp: bool
) -> None:
    res = snap(
        node("n1", "10.0.0.1", asn=node_as),
        config(as_number=default_as),
        peer("p", "10.9.9.9", as_number=65000, local_as_number=local_as_number),
    )
    s = resolve(res, "n1").sessions[0]
    assert (s.local_as, s.ibgp) == (local, ibgp)
    assert resolve(res, "n1").as_number == (node_as or default_as or 64512)


def test_ports_explicit_179_kept_in_name_and_same_key_as_none() -> None:
    res = snap(
        node("n1", "10.0.0.1"),
        peer("a", "10.9.9.9:179", as_number=65000),
        peer("b", "10.9.9.9", as_number=65001),
        peer("c", "10.9.9.9:150", as_number=65002),
    )
    got = sessions(resolve(res, "n1"))
    assert sorted(got) == ["Global_10_9_9_9_port_150", "Global_10_9_9_9_port_179"]
    assert (got["Global_10_9_9_9_port_179"].port, got["Global_10_9_9_9_port_179"].remote_as) == (179, 65000)


def test_port_filled_from_calico_nodes_listen_port_when_as_matches() -> None:
    res = snap(
        node("n1", "10.0.0.1"),
        node("n2", "10.0.0.2"),
        NO_MESH,
        config("node.n2", listen_port=1790),
        peer("same-as", "10.0.0.2", node="n1", as_number=64512),
    )
    assert [(s.name, s.port) for s in resolve(res, "n1").sessions] == [("Node_10_0_0_2_port_1790", 1790)]
    other = snap(
        node("n1", "10.0.0.1"),
        node("n2", "10.0.0.2"),
        NO_MESH,
        config("node.n2", listen_port=1790),
        peer("other-as", "10.0.0.2", node="n1", as_number=65000),
    )
    assert [(s.name, s.port) for s in resolve(other, "n1").sessions] == [("Node_10_0_0_2", 179)]


def test_duplicate_bgppeers_first_by_name_wins_and_global_shadows_node() -> None:
    res = snap(
        node("n1", "10.0.0.1"),
        peer("b-peer", "10.9.9.9", as_number=65002),
        peer("a-peer", "10.9.9.9", as_number=65001),
        peer("0-node", "10.9.9.9", node="n1", as_number=65003),
    )
    got = resolve(res, "n1")
    assert [(s.name, s.remote_as, s.origin) for s in got.sessions] == [
        ("Global_10_9_9_9", 65001, ("BGPPeer/a-peer",))
    ]
    assert resolve(res, "n1") == got  # deterministic
    reasons = why(res, "n1", "10.9.9.9")
    assert any("BGPPeer/b-peer" in r and "shadowed by BGPPeer/a-peer" in r for r in reasons)
    assert any("BGPPeer/0-node" in r and "shadowed by BGPPeer/a-peer" in r for r in reasons)


# ---------------------------------------------------------------- per-session attributes


def test_passwords_from_secrets_missing_never_blocks() -> None:
    ref = SecretKeyRef("bgp", "pw")
    for secrets, want in [
        ((Secret(Meta("bgp", namespace="kube-system"), {"pw": "x"}),), "x"),
        ((), None),
        ((Secret(Meta("bgp", namespace="kube-system"), {"other": "x"}),), None),
        ((Secret(Meta("bgp", namespace="default"), {"pw": "x"}),), None),
    ]:
        s = resolve(
            snap(node("n1", "10.0.0.1"), peer("p", "10.9.9.9", as_number=1, password=ref), *secrets), "n1"
        ).sessions[0]
        assert (s.password.reveal() if s.password else None) == want


def test_timers_ttl_source_address_allow_local_as_filters() -> None:
    f = BGPFilter(Meta("f1"), import_v4=(FilterRule("Accept"),))
    res = snap(
        node("n1", "10.0.0.1"),
        f,
        peer(
            "p",
            "10.9.9.9",
            as_number=1,
            max_restart_time=1.4,
            keepalive_time=2.5,
            ttl_security=2,
            source_address="None",
            num_allowed_local_as_numbers=3,
            filters=("f1", "missing"),
        ),
    )
    got = resolve(res, "n1")
    s = got.sessions[0]
    assert (s.max_restart_time, s.keepalive_time, s.ttl_security, s.source_address, s.allow_local_as) == (
        1,
        3,
        2,
        None,
        3,
    )
    assert s.filters == ("f1",) and dict(got.filters) == {"f1": f}
    zero = resolve(snap(node("n1", "10.0.0.1"), peer("p", "10.9.9.9", as_number=1, ttl_security=0)), "n1")
    assert zero.sessions[0].ttl_security is None


@pytest.mark.parametrize(
    ("mode", "keep", "remote_as", "want"),
    [
        ("Self", False, 64512, "self"),
        ("Keep", False, 64512, "keep"),
        ("Auto", True, 65000, "auto"),
        (None, True, 65000, "keep"),
        (None, True, 64512, "auto"),
        (None, False, 65000, "auto"),
    ],
)
def test_next_hop(mode: Any, keep: bool, remote_as: int, want: str) -> None:
    res = snap(
        node("n1", "10.0.0.1"),
        peer("p", "10.9.9.9", as_number=remote_as, next_hop_mode=mode, keep_original_next_hop=keep),
    )
    assert resolve(res, "n1").sessions[0].next_hop == want


def test_reachable_by_static_routes_incl_reverse_and_self_and_family_mismatch() -> None:
    res = snap(
        node("n1", "10.0.0.1"),
        node("n2", "10.0.0.2"),
        NO_MESH,
        peer("far", "10.9.9.9", as_number=1, reachable_by=ip_address("10.0.0.254")),
        peer("to-self", "10.0.0.1", node="n1", as_number=1, reachable_by=ip_address("10.0.0.253")),
        peer("bad", "10.8.8.8", as_number=1, reachable_by=ip_address("fd00::1")),
        peer("n2-to-n1", "10.0.0.1", node="n2", as_number=64512, reachable_by=ip_address("10.0.0.252")),
    )
    got = resolve(res, "n1")
    assert [r.to_json() for r in got.static_routes] == [
        {"dst": "10.0.0.1/32", "via": "10.0.0.253"},
        {"dst": "10.0.0.2/32", "via": "10.0.0.252"},
        {"dst": "10.9.9.9/32", "via": "10.0.0.254"},
    ]
    assert sorted(sessions(got)) == ["Global_10_9_9_9", "Node_10_0_0_2"]  # "bad" is skipped
    assert [e.name for e in got.errors] == ["bad"]
    assert "spec.reachableBy" in str(got.errors[0])


def test_local_workload_peers_only_when_records_are_given() -> None:
    p = BGPPeer(
        Meta("lw"), local_workload_selector=parse("app == 'x'"), as_number=65001, local_as_number=65002
    )
    res = snap(node("n1", "10.0.0.1", "fd00::1"), NO_MESH, p)
    assert resolve(res, "n1").sessions == ()
    got = resolve(res, "n1", local_workloads=[LocalWorkload("pod", "lw", ("10.1.0.5/32",), ("fd01::5/128",))])
    assert [(s.name, s.passive, s.source_address, s.local_as, s.ibgp) for s in got.sessions] == [
        ("Local_Workload_10_1_0_5", True, None, 65002, False),
        ("Local_Workload_fd01__5", True, None, 65002, False),
    ]


# ---------------------------------------------------------------- node-level facts


def test_router_id_env_hash_and_default() -> None:
    res = snap(node("kube-master", "10.192.0.2"))
    assert resolve(res, "kube-master").router_id == "10.192.0.2"
    assert resolve(res, "kube-master", {"CALICO_ROUTER_ID": "1.2.3.4"}).router_id == "1.2.3.4"
    assert resolve(res, "kube-master", {"CALICO_ROUTER_ID": "hash"}).router_id == "25.79.212.8"
    assert resolve(snap(node("v6", ip6="fd00::1")), "v6").router_id is None


def test_missing_node_gives_error_and_no_sessions() -> None:
    got = resolve(snap(*THREE), "nope")
    assert got.sessions == () and len(got.errors) == 1 and "no Node resource" in str(got.errors[0])
    assert why(snap(*THREE), "nope", "10.0.0.1") == [
        "there is no Node named 'nope', so it has no sessions at all"
    ]


def test_exports_blocks_pools_services_communities_blackholes() -> None:
    res = snap(
        node("n1", "10.0.0.1"),
        node("n2", "10.0.0.2"),
        IPPool(Meta("on"), ip_network("192.168.0.0/16")),
        IPPool(Meta("off"), ip_network("172.16.0.0/16"), disable_bgp_export=True),
        block("n1", "192.168.1.0/26"),
        block("n1", "192.168.2.0/26", ""),
        block("n1", "192.168.3.0/26", "pending"),
        block("n1", "192.168.4.0/26", "pendingDeletion"),
        block("n1", "192.168.5.0/26", deleted=True),
        block("n1", "172.16.1.0/26"),
        block("n1", "10.99.0.1/32"),
        block("n1", "10.98.0.0/26", "pendingDeletion"),
        block("n2", "192.168.9.0/26"),
        config(
            service_cluster_ips=(ip_network("10.96.0.0/12"),),
            service_external_ips=(ip_network("80.0.0.0/24"), ip_network("80.0.1.1/32")),
            communities=(Community("c", "100:1"),),
            prefix_advertisements=(PrefixAdvertisement(ip_network("192.168.0.0/16"), ("c", "200:2")),),
        ),
    )
    got = resolve(res, "n1")
    assert [(str(e.prefix), e.communities) for e in got.exports] == [
        ("10.96.0.0/12", ()),
        ("10.99.0.1/32", ()),
        ("80.0.0.0/24", ()),
        ("192.168.1.0/26", ("100:1", "200:2")),
        ("192.168.2.0/26", ("100:1", "200:2")),
        ("192.168.4.0/26", ("100:1", "200:2")),
    ]
    assert [str(b) for b in got.blackholes] == [
        "10.98.0.0/26",
        "172.16.1.0/26",
        "192.168.1.0/26",
        "192.168.2.0/26",
        "192.168.4.0/26",
    ]
    assert [str(c) for c in got.kernel_reject] == ["10.96.0.0/12", "80.0.0.0/24"]
    node_level = snap(
        *res.nodes.values(),
        *res.block_affinities.values(),
        *res.bgp_configurations.values(),
        config("node.n1", prefix_advertisements=()),
    )
    assert all(e.communities == () for e in resolve(node_level, "n1").exports)
    policy = got.export_policy  # what the RIB applies to learned routes too (§2.7 steps 4 and 7)
    assert policy.communities == ((ip_network("192.168.0.0/16"), ("100:1", "200:2")),)
    assert policy.reflected_service_cidrs == ()  # n1 is no route reflector
    rr = snap(*(n for n in res.nodes.values() if n.meta.name != "n1"), node("n1", "10.0.0.1", rr="1.0.0.1"),
              *res.bgp_configurations.values())
    assert [str(c) for c in resolve(rr, "n1").export_policy.reflected_service_cidrs] == [
        "80.0.0.0/24", "80.0.1.1/32"]


def test_excluded_node_does_not_advertise_service_cidrs() -> None:
    labels = {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}
    n1 = Node(Meta("n1", labels=labels), NodeBGP(ipv4_address=ip_interface("10.0.0.1/24")))
    got = resolve(snap(n1, config(service_cluster_ips=(ip_network("10.96.0.0/12"),))), "n1")
    assert got.exports == () and [str(c) for c in got.kernel_reject] == ["10.96.0.0/12"]


# ---------------------------------------------------------------- explain


def test_why_explains_absent_sessions() -> None:
    nodes = (node("rr", "10.0.0.1", rr="1.0.0.1", role="rr"), node("c1", "10.0.0.2"), node("c2", "10.0.0.3"))
    res = snap(*nodes, peer("tor", "10.0.0.254", node_selector="rack == 'rack-1'", as_number=64567))
    assert why(res, "c1", "10.0.0.1")[:2] == [
        "Node/c1 has no session to 10.0.0.1:",
        "Node/rr is a route reflector (cluster ID 1.0.0.1); route reflectors are left out of the mesh "
        "and are reached only through BGPPeers",
    ]
    assert any(
        "nodeSelector 'rack == \"rack-1\"' does not match Node/c1" in r for r in why(res, "c1", "10.0.0.254")
    )
    assert why(res, "c1", "10.0.0.3")[0].startswith("session Mesh_10_0_0_3 exists")
    assert any("own address" in r for r in why(res, "c1", "10.0.0.2"))
    assert any("no IPv6 address" in r for r in why(res, "c1", "fd00::9"))
    assert any("no Node has the address 10.7.7.7" in r for r in why(res, "c1", "10.7.7.7"))
    assert any("no BGPPeer names 10.7.7.7" in r for r in why(res, "c1", "10.7.7.7"))
    no_mesh = snap(
        *nodes,
        NO_MESH,
        peer("p", node_selector="all()", peer_selector="role == 'rr'", reverse_peering="Manual"),
    )
    assert any("mesh is disabled" in r for r in why(no_mesh, "c1", "10.0.0.3"))
    assert any("reversePeering: Manual" in r for r in why(no_mesh, "rr", "10.0.0.2"))
    assert any(
        "peerSelector 'role == \"rr\"' does not match Node/c2" in r for r in why(no_mesh, "c1", "10.0.0.3")
    )


def test_fast_path_keeps_the_same_peerings_as_the_full_trace() -> None:
    # Several BGPPeers share selectors, so the untraced expansion skips remote-node sets it has
    # already emitted; the result must equal the full, traced expansion.
    nodes = [
        node(
            f"n{i}",
            f"10.0.0.{i}",
            f"fd00::{i}",
            rr="1.0.0.1" if i < 2 else None,
            role="rr" if i < 2 else "client",
            zone=f"z{i % 2}",
        )
        for i in range(6)
    ]
    peers_ = [
        peer(f"p{j}", node_selector=f"zone == 'z{j % 2}'", peer_selector="role == 'rr'") for j in range(4)
    ]
    peers_ += [
        peer("q", peer_selector="role == 'rr'"),
        peer("r", node_selector="all()", peer_selector="has(zone)"),
    ]
    res = snap(*nodes, *peers_, NO_MESH)
    cluster = cluster_facts(res)
    for me in cluster.nodes:
        fast = expand(cluster_facts(res), me)
        full = expand(cluster_facts(res), me, trace=True)
        assert fast.peerings == full.peerings
        assert full.shadowed


def test_peer_ip_without_as_warns_only_where_it_makes_a_session() -> None:
    # The RR is named by IP without asNumber: on the RR this only drives reverse peerings.
    res = snap(
        node("rr", "10.0.0.1", rr="1.0.0.1"), node("c1", "10.0.0.2"), NO_MESH, peer("to-rr", "10.0.0.1")
    )
    on_rr = resolve(res, "rr")
    assert on_rr.errors == () and [s.name for s in on_rr.sessions] == ["Node_10_0_0_2"]
    on_c1 = resolve(res, "c1")
    assert [(s.name, s.remote_as) for s in on_c1.sessions] == [("Global_10_0_0_1", 0)]
    assert [e.field for e in on_c1.errors] == ["spec.asNumber"]


def test_node_prefix_advertisements_replace_the_default_and_resolve_default_names() -> None:
    default = config(
        communities=(Community("c", "100:1"),),
        prefix_advertisements=(PrefixAdvertisement(ip_network("192.168.0.0/16"), ("c",)),),
    )
    own = config(
        "node.n1",
        prefix_advertisements=(
            PrefixAdvertisement(ip_network("192.168.1.0/24"), ("c", "65000:7:9", "undefined")),
        ),
    )
    res = snap(
        node("n1", "10.0.0.1"), block("n1", "192.168.1.0/26"), block("n1", "192.168.2.0/26"), default, own
    )
    assert [(str(e.prefix), e.communities) for e in resolve(res, "n1").exports] == [
        ("192.168.1.0/26", ("100:1", "65000:7:9")),
        ("192.168.2.0/26", ()),
    ]
