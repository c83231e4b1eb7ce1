"""Issue 4 in the lab: learned routes in every node's kernel (ECMP through a BIRD and an FRR ToR),
workload traffic over them, BGPFilters applied live, reachableBy, and the max-prefix limit.

Topology netns-lab/topologies/routes-ecmp.yaml: node-1..3 (bgpd, mesh, IPv4 and IPv6) on one LAN
with tor-a (BIRD) and tor-b (FRR), both AS 65000 announcing 10.99.0.0/16 and fd99::/48; tor-a
also 10.98.0.0/16.
The tests share one lab and leave it as they found it (the max-prefix test, which cannot, is last).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
import yaml
from nslab import Lab, holds_for

from tests.lab.conftest import running_lab
from tests.lab.routes_util import (
    kernel,
    ping,
    remove_resources,
    session,
    status,
    wait_for,
    wait_route,
    write_resources,
)

pytestmark = pytest.mark.lab

NODES = {"node-1": "10.110.0.11", "node-2": "10.110.0.12", "node-3": "10.110.0.13"}
BLOCKS = {"node-1": "10.244.1.0/26", "node-2": "10.244.2.0/26", "node-3": "10.244.3.0/26"}
WORKLOADS = {"node-1": "10.244.1.1", "node-2": "10.244.2.1", "node-3": "10.244.3.1"}
TOR_A, TOR_B = "10.110.0.1", "10.110.0.2"
NODES6 = {n: f"fd10::1{i}" for i, n in enumerate(NODES, 1)}
BLOCKS6 = {n: f"fd00:244:0:{i}::/122" for i, n in enumerate(NODES, 1)}
WORKLOADS6 = {n: f"fd00:244:0:{i}::1" for i, n in enumerate(NODES, 1)}
TOR_A6, TOR_B6 = "fd10::1", "fd10::2"


@pytest.fixture(scope="module")
def rack() -> Iterator[Lab]:
    with running_lab("recmp", "routes-ecmp") as built:
        yield built


@pytest.fixture(autouse=True)
def _dump_on_failure(request: pytest.FixtureRequest, rack: Lab) -> None:
    request.node.labs = [rack]  # tests/lab/conftest.py attaches every node's state to a failure


def expected(node: str) -> dict[str, list[str]]:
    routes = {"10.99.0.0/16": [TOR_A, TOR_B], "10.98.0.0/16": [TOR_A], "fd99::/48": [TOR_A6, TOR_B6]}
    for blocks, addresses in ((BLOCKS, NODES), (BLOCKS6, NODES6)):
        for other, block in blocks.items():
            routes[block] = ["blackhole"] if other == node else [addresses[other]]
    return routes


def has_expected_routes(rack: Lab, node: str) -> bool:
    return kernel(rack, node) == expected(node)


def tor_has_blocks(rack: Lab, tor: str) -> bool:
    routes = rack[tor].routes()
    return all(sorted(routes.get(b, [])) == sorted(NODES.values()) for b in BLOCKS.values()) and all(
        sorted(routes.get(b, [])) == sorted(NODES6.values()) for b in BLOCKS6.values())


def test_every_node_installs_the_mesh_and_both_tors_routes_with_ecmp(rack: Lab) -> None:
    for node in NODES:
        wait_for(rack, f"{node}'s kernel", partial(has_expected_routes, rack, node))
    for tor in ("tor-a", "tor-b"):  # the ToRs learn every block, each from all three nodes
        wait_for(rack, f"blocks at {tor}", partial(tor_has_blocks, rack, tor))
    # routesInstalled counts what is in the kernel from that session (ECMP: the best path's session)
    by_peer = {s["peerIP"]: s["routesInstalled"] for s in status(rack, "node-1")["sessions"]}
    assert by_peer == {TOR_A: 2, TOR_B: 0, NODES["node-2"]: 1, NODES["node-3"]: 1,
                       TOR_A6: 1, TOR_B6: 0, NODES6["node-2"]: 1, NODES6["node-3"]: 1}
    assert status(rack, "node-1")["routes"]["installed"] == 9  # 7 learned + our 2 blackholes


def test_workloads_ping_each_other_across_nodes(rack: Lab) -> None:
    for workloads in (WORKLOADS, WORKLOADS6):
        for node, src in workloads.items():
            for other, dst in workloads.items():
                if other != node:
                    assert ping(rack, node, src, dst), f"{node} ({src}) -> {other} ({dst})"


def test_routes_follow_withdrawals_at_either_tor(rack: Lab) -> None:
    rack.speaker("tor-b").withdraw("10.99.0.0/16")
    for node in NODES:
        wait_route(rack, node, "10.99.0.0/16", [TOR_A])  # ECMP -> the one path left
    rack.speaker("tor-a").withdraw("10.98.0.0/16")
    for node in NODES:
        wait_route(rack, node, "10.98.0.0/16", None)
    rack.speaker("tor-b").announce("10.99.0.0/16")
    rack.speaker("tor-a").announce("10.98.0.0/16")
    for node in NODES:
        wait_for(rack, f"{node} back to the start", partial(has_expected_routes, rack, node))


FILTER = {
    "apiVersion": "projectcalico.org/v3", "kind": "BGPFilter", "metadata": {"name": "tor-a-policy"},
    "spec": {
        "importV4": [{"action": "Reject", "matchOperator": "Equal", "cidr": "10.98.0.0/16"}],
        "exportV4": [{"action": "Reject", "matchOperator": "Equal", "cidr": BLOCKS["node-1"]}],
    },
}


def test_bgpfilters_take_effect_live_without_a_session_reset(rack: Lab) -> None:
    tor_a = rack.speaker("tor-a")
    ups = {n: rack.speaker(n).transitions(TOR_A) for n in NODES}
    bird_ups = {ip: tor_a.transitions(ip) for ip in NODES.values()}
    topo = rack.run_dir / "resources" / "00-topology.yaml"
    original = topo.read_text()
    try:
        # the topology file holds BGPPeer tor-a: name the filter there (and define it in another file)
        docs = list(yaml.safe_load_all(original))
        for doc in docs:
            if doc["kind"] == "BGPPeer" and doc["metadata"]["name"] == "tor-a":
                doc["spec"]["filters"] = ["tor-a-policy"]
        write_resources(rack, "00-topology.yaml", docs)
        write_resources(rack, "30-filter.yaml", [FILTER])
        for node in NODES:  # import: tor-a's 10.98.0.0/16 is rejected everywhere
            wait_route(rack, node, "10.98.0.0/16", None)
            assert kernel(rack, node)["10.99.0.0/16"] == [TOR_A, TOR_B]  # its other route stays
        # export: no node sends node-1's block to tor-a any more; tor-b still has it
        wait_for(rack, "node-1's block gone at tor-a", lambda: BLOCKS["node-1"] not in tor_a.routes())
        assert BLOCKS["node-1"] in rack["tor-b"].routes()
        assert BLOCKS["node-2"] in tor_a.routes()
    finally:
        write_resources(rack, "00-topology.yaml", list(yaml.safe_load_all(original)))
        remove_resources(rack, "30-filter.yaml")
    for node in NODES:
        wait_route(rack, node, "10.98.0.0/16", [TOR_A])
    wait_for(rack, "node-1's block back at tor-a",
             lambda: sorted(tor_a.routes().get(BLOCKS["node-1"], [])) == sorted(NODES.values()))
    assert {n: rack.speaker(n).transitions(TOR_A) for n in NODES} == ups
    assert {ip: tor_a.transitions(ip) for ip in NODES.values()} == bird_ups


def test_reachable_by_route_beats_a_learned_route_for_the_same_prefix(rack: Lab) -> None:
    """A BGPPeer with reachableBy puts a host route to the peer in every node's kernel, over the
    same /32 learned from tor-a; when the peer goes, the learned route takes its place."""
    far = "10.98.0.9"
    peer = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "far"},
            "spec": {"peerIP": far, "asNumber": 65009, "reachableBy": TOR_B}}
    rack.speaker("tor-a").announce(f"{far}/32")
    for node in NODES:
        wait_route(rack, node, f"{far}/32", [TOR_A])
    try:
        write_resources(rack, "40-far.yaml", [peer])
        for node in NODES:
            wait_route(rack, node, f"{far}/32", [TOR_B])  # static wins
    finally:
        remove_resources(rack, "40-far.yaml")
    for node in NODES:
        wait_route(rack, node, f"{far}/32", [TOR_A])  # the learned route again
    rack.speaker("tor-a").withdraw(f"{far}/32")
    for node in NODES:
        wait_route(rack, node, f"{far}/32", None)


def limit_info(rack: Lab) -> str | None:
    info = str(session(rack, "node-3", TOR_A)["info"])
    return info if "limit of 8" in info else None


def test_max_prefix_limit_protects_the_kernel_and_says_so(rack: Lab) -> None:
    """node-3 runs with max_prefixes: 8; tor-a sends it 5 routes, then 8 more."""
    extra = [f"10.97.{i}.0/24" for i in range(8)]
    for prefix in extra:
        rack.speaker("tor-a").announce(prefix)
    wait_for(rack, "all 8 at node-1 (default limit)",
             lambda: all(kernel(rack, "node-1").get(p) == [TOR_A] for p in extra))
    info = wait_for(rack, "node-3 says the limit was hit", lambda: limit_info(rack))
    assert info is not None and "routes dropped over the limit of 8" in info, info
    s = session(rack, "node-3", TOR_A)
    assert s["routesReceived"] == 8 and s["state"] == "up"
    learned = [p for p in extra if p in kernel(rack, "node-3")]
    assert len(learned) == 3  # 5 routes held before, 3 more fit
    assert holds_for(lambda: len([p for p in extra if p in kernel(rack, "node-3")]) == 3, 1.0)
    assert kernel(rack, "node-3")["10.99.0.0/16"] == [TOR_A, TOR_B]  # what it held stays
    log = (rack["node-3"].run_dir / "bgpd.out").read_text()
    assert log.count('"max_prefixes_exceeded"') == 1  # said once, not per UPDATE
