"""GTSM (`ttlSecurity`) through `bgpd run` against BIRD and FRR, one and two hops away (root only).

netns-lab/topologies/sgtsm.yaml: node-1 (bgpd) shares the rack segment with bird-near and frr-near;
bird-far and frr-far sit behind the router r1. Every BGPPeer allows 1 hop. The far peers allow 2 hops
themselves, so when they never get a session the refusal is bgpd's, in both directions: the far
peers' own connection attempts are dropped by bgpd's nftables rule (its counters say so) and bgpd's
outgoing connections never complete (ExaBGP's minimum TTL on the socket). Both ends are asked.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from nslab import BgpdNode, Frr, Lab, holds_for, wait_until
from nslab.bgpd_node import BGPD
from nslab.resources import write_documents

from tests.lab.conftest import running_lab

pytestmark = pytest.mark.lab

NODE_IP = "10.110.0.1"
NEAR = {"bird-near": "10.110.0.2", "frr-near": "10.110.0.3"}
FAR = {"bird-far": "10.110.9.2", "frr-far": "10.110.9.3"}
NEVER_UP_WINDOW = 8.0  # several connect retries of every side (BIRD 2 s, FRR 1 s)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab("sgtsm", "sgtsm", wait=None) as built:
        yield built


@pytest.fixture(autouse=True)
def _dump_on_failure(request: pytest.FixtureRequest, lab: Lab) -> None:
    request.node.labs = [lab]


def bgpd_node(lab: Lab) -> BgpdNode:
    found = lab["node-1"]
    assert isinstance(found, BgpdNode)
    return found


def sessions(lab: Lab) -> dict[str, str]:
    """bgpd's peer IP -> FSM state."""
    return bgpd_node(lab).sessions()


def status(lab: Lab) -> dict[str, Any]:
    proc = subprocess.run([str(BGPD), "status", "--json", "--socket", str(bgpd_node(lab).socket)],
                          capture_output=True, text=True, timeout=10, check=False)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def drops(lab: Lab) -> dict[str, int]:
    """Packets bgpd's GTSM table dropped, per peer address (`counter packets N` of each rule)."""
    out = bgpd_node(lab).exec("nft", "list", "table", "inet", "bgpd_gtsm")
    return {m[1]: int(m[2]) for m in re.finditer(r"ip saddr (\S+) .*counter packets (\d+)", out)}


def test_within_the_limit_bird_and_frr_come_up(lab: Lab) -> None:
    node = bgpd_node(lab)
    wait_until(lambda: all(sessions(lab).get(ip) == "Established" for ip in NEAR.values())
               and all(lab.speaker(n).established(NODE_IP) for n in NEAR), 30,
               "the near sessions Established on both ends", detail=lab.dump)
    wait_until(lambda: node.routes().get("10.211.0.0/24") == [NEAR["bird-near"]]
               and node.routes().get("10.212.0.0/24") == [NEAR["frr-near"]], 15,
               "the near peers' routes in node-1's kernel", detail=lab.dump)
    # the near peers require TTL 255 themselves: being up proves bgpd sends with TTL 255
    assert "ttl security on" in (lab.run_dir / "bird-near" / "bird.conf").read_text()
    assert "ttl-security hops 1" in (lab.run_dir / "frr-near" / "bgpd.conf").read_text()


def test_one_hop_too_far_never_comes_up_in_either_direction(lab: Lab) -> None:
    wait_until(lambda: all(sessions(lab).get(ip) == "Established" for ip in NEAR.values()), 30,
               "the near sessions (the daemon is running)", detail=lab.dump)

    def far_down() -> bool:
        ours = sessions(lab)
        return all(ours.get(ip) != "Established" for ip in FAR.values()) \
            and not any(lab.speaker(n).established(NODE_IP) for n in FAR)

    assert holds_for(far_down, NEVER_UP_WINDOW), lab.dump()
    # they kept trying to connect in, with TTL 254 on arrival: bgpd's rule dropped them
    counted = drops(lab)
    assert all(counted.get(ip, 0) > 0 for ip in FAR.values()), counted
    assert all(counted.get(ip, 0) == 0 for ip in NEAR.values()), counted
    # and bgpd's own connections towards them never completed: FRR never saw an OPEN from us
    frr_far = lab["frr-far"]
    assert isinstance(frr_far, Frr)
    info = json.loads(frr_far.vtysh(f"show bgp neighbors {NODE_IP} json"))[NODE_IP]
    assert info["messageStats"]["opensRecv"] == 0, info["messageStats"]
    for s in status(lab)["sessions"]:
        if s["peerIP"] in FAR.values():
            assert s["state"] != "up" and s["info"] != "Established", s


def test_the_far_peers_come_up_once_two_hops_are_allowed(lab: Lab) -> None:
    docs = copy.deepcopy(list(lab.topology.resources))
    for d in docs:
        if d["kind"] == "BGPPeer" and d["metadata"]["name"] in FAR:
            d["spec"]["ttlSecurity"] = 2
    write_documents(lab.run_dir / "resources", "00-topology.yaml", docs)
    wait_until(lambda: all(sessions(lab).get(ip) == "Established" for ip in FAR.values())
               and all(lab.speaker(n).established(NODE_IP) for n in FAR), 30,
               "the far sessions Established on both ends", detail=lab.dump)
    assert all(sessions(lab).get(ip) == "Established" for ip in NEAR.values())
    rules = bgpd_node(lab).exec("nft", "list", "table", "inet", "bgpd_gtsm")
    assert all(re.search(rf"ip saddr {re.escape(ip)} .*ip ttl < 254 ", rules) for ip in FAR.values()), rules
