"""Issue 4 in the lab: graceful restart, both roles.

Topology netns-lab/topologies/routes-gr.yaml: node-1 and node-2 (bgpd, mesh, a workload each), tor
(BIRD with graceful restart: 10.99.0.0/16, 10.95.0.0/16) and edge (BIRD without: 10.96.0.0/16).
Helper: BIRD's graceful restart keeps its routes (stale) until its End-of-RIB; a non-GR peer or a
Cease removes them at once. Restarter: bgpd's SIGTERM, SIGKILL and ExaBGP's death remove no kernel
route (`ip monitor route` in both nodes sees no deletion of ours) and lose no ping between workloads.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from functools import partial

import pytest
from nslab import Lab
from nslab.bird import Bird
from nslab.proc import kill, wait_exit

from tests.lab.conftest import running_lab
from tests.lab.routes_util import (
    ContinuousPing,
    RouteMonitor,
    kernel,
    session,
    status,
    wait_for,
    wait_route,
)

pytestmark = pytest.mark.lab

TOR, EDGE, N1, N2 = "10.111.0.1", "10.111.0.2", "10.111.0.11", "10.111.0.12"
W1, W2 = "10.244.1.1", "10.244.2.1"
NODES = ("node-1", "node-2")


@pytest.fixture(scope="module")
def rack() -> Iterator[Lab]:
    with running_lab("rgr", "routes-gr") as built:
        yield built


@pytest.fixture(autouse=True)
def _dump_on_failure(request: pytest.FixtureRequest, rack: Lab) -> None:
    request.node.labs = [rack]  # tests/lab/conftest.py attaches every node's state to a failure


def settled(rack: Lab) -> None:
    """Every session up and every route where it belongs."""
    rack.wait_established(30)
    for node, other in (("node-1", N2), ("node-2", N1)):
        wait_route(rack, node, "10.244.1.0/26" if node == "node-1" else "10.244.2.0/26", ["blackhole"])
        for prefix, hops in (("10.99.0.0/16", [TOR]), ("10.95.0.0/16", [TOR]), ("10.96.0.0/16", [EDGE])):
            wait_route(rack, node, prefix, hops)
        wait_route(rack, node, "10.244.2.0/26" if node == "node-1" else "10.244.1.0/26", [other])


def stale_is(rack: Lab, node: str, count: int) -> bool:
    return bool(status(rack, node)["routes"]["stale"] == count)


def monitors(rack: Lab) -> list[RouteMonitor]:
    return [RouteMonitor(rack, n) for n in NODES]


def deleted(watch: list[RouteMonitor]) -> list[str]:
    return [line for m in watch for line in m.stop()]


def test_gr_helper_keeps_birds_routes_stale_until_its_end_of_rib(rack: Lab) -> None:
    settled(rack)
    tor = rack.speaker("tor")
    assert isinstance(tor, Bird)
    held = {n: session(rack, n, TOR)["routesReceived"] for n in NODES}  # incl. blocks it sends back
    watch = monitors(rack)
    ref = tor._forget("bird")
    assert ref is not None
    tor.birdc("graceful restart")
    wait_exit(ref, timeout=10)
    for node in NODES:
        wait_for(rack, f"{node}: tor's routes stale", partial(stale_is, rack, node, held[node]))
        assert session(rack, node, TOR)["state"] != "up"
        assert "routes kept stale (graceful restart" in session(rack, node, TOR)["info"]
        assert kernel(rack, node)["10.99.0.0/16"] == [TOR]
    # BIRD comes back without 10.95.0.0/16: after its End-of-RIB that stale route goes, 10.99 stays
    tor._write_config(tor.announced() - {"10.95.0.0/16"})
    tor.start()
    for node in NODES:
        wait_route(rack, node, "10.95.0.0/16", None)
        wait_for(rack, f"{node}: nothing stale", partial(stale_is, rack, node, 0))
        assert kernel(rack, node)["10.99.0.0/16"] == [TOR]
    gone = deleted(watch)
    assert gone and all("10.95.0.0/16" in line for line in gone), gone
    tor.announce("10.95.0.0/16")
    settled(rack)


def test_routes_of_a_peer_without_gr_or_after_a_cease_go_at_once(rack: Lab) -> None:
    settled(rack)
    edge = rack.speaker("edge")
    ref = edge._forget("bird")
    assert ref is not None
    kill(ref, sig=signal.SIGKILL)  # no NOTIFICATION, but edge never offered graceful restart
    for node in NODES:
        wait_route(rack, node, "10.96.0.0/16", None)
        assert status(rack, node)["routes"]["stale"] == 0
    edge.start()
    watch = monitors(rack)
    rack.speaker("tor").restart(graceful=False)  # SIGTERM: BIRD sends a Cease
    settled(rack)
    gone = deleted(watch)
    # the Cease removed tor's routes at both nodes; they came back with the new session
    assert len([line for line in gone if "10.99.0.0/16" in line]) == 2, gone


def test_bgpd_sigterm_restart_loses_no_ping_and_removes_no_route(rack: Lab) -> None:
    settled(rack)
    node1 = rack.speaker("node-1")
    ups = rack.speaker("node-2").transitions(N1)
    watch = monitors(rack)
    ping = ContinuousPing(rack, "node-1", W1, W2)
    try:
        node1.restart(graceful=True)  # SIGTERM, then a new bgpd
        wait_for(rack, "node-2 sees node-1 back", lambda: rack.speaker("node-2").transitions(N1) > ups)
        settled(rack)
    finally:
        result = ping.stop()
    gone = deleted(watch)
    print(f"bgpd SIGTERM: {result['sent']} pings sent, {len(result['lost'])} lost, {len(gone)} deleted")
    assert result["sent"] > 20 and result["lost"] == [], (result, gone)
    assert gone == []


def test_exabgp_killed_removes_no_route(rack: Lab) -> None:
    settled(rack)
    first = status(rack, "node-1")["exabgp"]
    watch = monitors(rack)
    ping = ContinuousPing(rack, "node-1", W1, W2)
    try:
        os.kill(first["pid"], signal.SIGKILL)
        wait_for(rack, "ExaBGP restarted",
                 lambda: status(rack, "node-1")["exabgp"]["restarts"] == first["restarts"] + 1)
        settled(rack)
    finally:
        result = ping.stop()
    gone = deleted(watch)
    print(f"ExaBGP SIGKILL: {result['sent']} pings sent, {len(result['lost'])} lost, {len(gone)} deleted")
    assert result["sent"] > 20 and result["lost"] == [], (result, gone)
    assert gone == []


def test_bgpd_sigkill_adopts_kernel_routes_and_sweeps_the_stale_one_later(rack: Lab) -> None:
    settled(rack)
    node1 = rack.speaker("node-1")
    watch = monitors(rack)
    ping = ContinuousPing(rack, "node-1", W1, W2)
    try:
        ref = node1._forget("bgpd")
        assert ref is not None
        os.killpg(ref.pid, signal.SIGKILL)  # bgpd and ExaBGP crash
        wait_exit(ref, timeout=10)
        rack.speaker("tor").withdraw("10.95.0.0/16")  # while node-1 is down: its copy is now stale
        node1.start()
        settled_without_95 = ("10.99.0.0/16", [TOR]), ("10.96.0.0/16", [EDGE]), ("10.244.2.0/26", [N2])
        rack.wait_established(30)
        for prefix, hops in settled_without_95:
            wait_route(rack, "node-1", prefix, hops)
        wait_route(rack, "node-1", "10.95.0.0/16", None)  # swept once every session resynced
    finally:
        result = ping.stop()
    log = (rack["node-1"].run_dir / "bgpd.out").read_text()
    assert '"kernel_routes_adopted"' in log
    gone = deleted(watch)
    print(f"bgpd SIGKILL + start: {result['sent']} pings sent, {len(result['lost'])} lost, deleted {gone}")
    assert result["sent"] > 20 and result["lost"] == [], result
    assert gone and all("10.95.0.0/16" in line for line in gone), gone
    rack.speaker("tor").announce("10.95.0.0/16")
    settled(rack)
