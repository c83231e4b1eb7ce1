"""Issue 4 in the lab: route reflection as in Calico's how-to.

Topology netns-lab/topologies/routes-rr.yaml: rr-1 and rr-2 (one cluster, 244.0.0.1), clients c-1..c-4
(bgpd, a block and a workload each), mesh off, BGPPeer peer-with-route-reflectors; a BIRD router is
an iBGP client of both reflectors, so the reflected attributes can be read at a real BGP speaker.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from functools import partial

import pytest
from nslab import Lab
from nslab.bird import Bird
from nslab.proc import wait_exit

from tests.lab.conftest import running_lab
from tests.lab.routes_util import (
    ContinuousPing,
    RouteMonitor,
    kernel,
    ping,
    remove_resources,
    wait_for,
    write_resources,
)

pytestmark = pytest.mark.lab

RRS = {"rr-1": "10.112.0.1", "rr-2": "10.112.0.2"}
CLIENTS = {f"c-{i}": (f"10.112.0.1{i}", f"10.244.1{i}.0/26", f"10.244.1{i}.1") for i in range(1, 5)}
CLUSTER_ID = "244.0.0.1"


@pytest.fixture(scope="module")
def rack() -> Iterator[Lab]:
    with running_lab("rrr", "routes-rr", wait=60) as built:
        yield built


@pytest.fixture(autouse=True)
def _dump_on_failure(request: pytest.FixtureRequest, rack: Lab) -> None:
    request.node.labs = [rack]  # tests/lab/conftest.py attaches every node's state to a failure


def client_routes(node: str) -> dict[str, list[str]]:
    """What ``node``'s kernel must hold: its own block blackholed, every other client's via that client."""
    return {block: ["blackhole"] if name == node else [ip] for name, (ip, block, _) in CLIENTS.items()}


def has_routes(rack: Lab, node: str, routes: dict[str, list[str]]) -> bool:
    return kernel(rack, node) == routes


def test_every_client_learns_every_other_clients_block_through_the_reflectors(rack: Lab) -> None:
    for node in CLIENTS:
        wait_for(rack, f"{node}'s kernel", partial(has_routes, rack, node, client_routes(node)))
    every_block = {block: [ip] for ip, block, _ in CLIENTS.values()}
    for rr in RRS:  # a reflector is a node too: it routes to every block
        wait_for(rack, f"{rr}'s kernel", partial(has_routes, rack, rr, every_block))


def reflected(bird: Bird, block: str) -> str | None:
    """BIRD's view of ``block`` once it has it from both reflectors."""
    out = bird.birdc(f"show route {block} all")
    return out if out.count("BGP.originator_id") == 2 else None


def rr1_down(rack: Lab, node: str) -> bool:
    return rack.speaker(node).sessions().get(RRS["rr-1"]) not in (None, "Established")


def test_reflected_routes_carry_originator_id_and_cluster_list(rack: Lab) -> None:
    bird = rack["bird"]
    assert isinstance(bird, Bird)
    for ip, block, _ in CLIENTS.values():
        out = wait_for(rack, f"{block} from both reflectors at BIRD", partial(reflected, bird, block)) or ""
        assert out.count(f"BGP.originator_id: {ip}") == 2, out  # the client that originated it
        assert out.count(f"BGP.cluster_list: {CLUSTER_ID}\n") == 2, out  # one reflection, our cluster
        assert out.count(f"via {ip} on eth0") == 2, out  # the next hop is the client's own
        assert "BGP.as_path: \n" in out  # iBGP: no AS added


def paths_with_community(bird: Bird, block: str) -> list[str]:
    """The neighbours whose path for ``block`` at BIRD carries community (65000,100)."""
    paths = bird.birdc(f"show route {block} all").split("unicast [")[1:]
    return sorted(p.split()[0] for p in paths if "(65000,100)" in p)


def test_a_reflectors_prefix_advertisements_reach_the_routes_it_reflects(rack: Lab) -> None:
    """Calico applies prefixAdvertisements to every route its export policy passes: a node-level
    BGPConfiguration on rr-1 tags the clients' blocks rr-1 reflects (rr-2's copies stay untagged)."""
    bird = rack["bird"]
    assert isinstance(bird, Bird)
    block = CLIENTS["c-1"][1]
    config = {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
              "metadata": {"name": "node.rr-1"},
              "spec": {"prefixAdvertisements": [{"cidr": "10.244.0.0/16", "communities": ["65000:100"]}]}}
    try:
        write_resources(rack, "50-rr-1-communities.yaml", [config])
        wait_for(rack, "rr-1's reflected path tagged",
                 lambda: paths_with_community(bird, block) == ["peer_10_112_0_1"])
    finally:
        remove_resources(rack, "50-rr-1-communities.yaml")
    wait_for(rack, "the tag gone again", lambda: paths_with_community(bird, block) == [])


def test_workloads_ping_across_clients(rack: Lab) -> None:
    for node, (_, _, src) in CLIENTS.items():
        for other, (_, _, dst) in CLIENTS.items():
            if other != node:
                assert ping(rack, node, src, dst), f"{node} ({src}) -> {other} ({dst})"


AFTER_FAILOVER = 2.0  # seconds of pings watched once every client has seen rr-1 go


def test_one_reflector_killed_traffic_keeps_flowing_through_the_other(rack: Lab) -> None:
    watch = [RouteMonitor(rack, node) for node in CLIENTS]
    pings = [ContinuousPing(rack, "c-1", CLIENTS["c-1"][2], CLIENTS[c][2]) for c in ("c-2", "c-3", "c-4")]
    try:
        ref = rack["rr-1"]._forget("bgpd")
        assert ref is not None
        os.killpg(ref.pid, signal.SIGKILL)  # the reflector and its ExaBGP die without a NOTIFICATION
        wait_exit(ref, timeout=10)
        for node in CLIENTS:
            wait_for(rack, f"{node} sees rr-1 gone", partial(rr1_down, rack, node))
        for node in CLIENTS:  # the routes never moved: rr-2 reflects the same paths
            assert kernel(rack, node) == client_routes(node)
        time.sleep(AFTER_FAILOVER)  # an observation window, not a wait: traffic must keep flowing
    finally:
        results = [p.stop() for p in pings]
    gone = [line for m in watch for line in m.stop()]
    print("rr-1 SIGKILL: c-1 -> c-2/c-3/c-4 pings sent/lost:",
          [(r["sent"], len(r["lost"])) for r in results], f"{len(gone)} kernel routes deleted")
    for result in results:
        assert result["sent"] > 20 and result["lost"] == [], result
    assert gone == []
