"""`bgpd status` says why a peer is down, from evidence, for each classic cause (root only).

One bgpd node on a rack segment with four peers that can never come up, each for another reason:
- bird-as: BIRD is AS 65021, the BGPPeer says 65099 (ExaBGP sends NOTIFICATION 2/2 "Bad Peer AS");
- bird-md5: BIRD's password differs from the Secret's (silent: only the kernel's TcpExt counters show it);
- nobody: a host on the segment with no BGP daemon (connection refused);
- bird-far: two hops away behind r1, but the BGPPeer allows one hop (ttlSecurity 1): GTSM drops.
The INFO column must name each cause, and not blame MD5 where there is no password.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from nslab import BgpdNode, Lab, wait_until
from nslab.bgpd_node import BGPD

from tests.lab.conftest import running_lab

pytestmark = pytest.mark.lab

AS_PEER, MD5_PEER, NOBODY, FAR_PEER = "10.120.0.2", "10.120.0.3", "10.120.0.4", "10.120.9.2"
DEADLINE = 30.0


def _peer(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": name}, "spec": spec}


TOPOLOGY: dict[str, Any] = {
    "name": "diag",
    "resources": [
        {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration", "metadata": {"name": "default"},
         "spec": {"asNumber": 64512, "nodeToNodeMeshEnabled": False}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "bgp-passwords", "namespace": "kube-system"},
         "stringData": {"md5": "wrong-Pa55"}},
        _peer("bird-as", {"peerIP": AS_PEER, "asNumber": 65099}),
        _peer("bird-md5", {"peerIP": MD5_PEER, "asNumber": 65022,
                           "password": {"secretKeyRef": {"name": "bgp-passwords", "key": "md5"}}}),
        _peer("nobody", {"peerIP": NOBODY, "asNumber": 65023}),
        _peer("bird-far", {"peerIP": FAR_PEER, "asNumber": 65024, "ttlSecurity": 1}),
    ],
    "nodes": {
        "node-1": {"kind": "bgpd", "routes": [{"dst": "10.120.9.0/24", "via": "10.120.0.254"}]},
        "bird-as": {"kind": "bird", "as": 65021, "neighbors": [{"peer": "node-1", "as": 64512}]},
        "bird-md5": {"kind": "bird", "as": 65022,
                     "neighbors": [{"peer": "node-1", "as": 64512, "password": "right-Pa55"}]},
        "nobody": {"kind": "host"},
        "r1": {"kind": "router"},
        "bird-far": {"kind": "bird", "as": 65024, "routes": [{"dst": "10.120.0.0/24", "via": "10.120.9.254"}],
                     "neighbors": [{"ip": "10.120.0.1", "as": 64512, "name": "node-1", "ttl_security": 2}]},
    },
    "lans": [
        {"name": "rack", "members": [
            {"node": "node-1", "v4": "10.120.0.1/24"}, {"node": "bird-as", "v4": f"{AS_PEER}/24"},
            {"node": "bird-md5", "v4": f"{MD5_PEER}/24"}, {"node": "nobody", "v4": f"{NOBODY}/24"},
            {"node": "r1", "v4": "10.120.0.254/24"}]},
        {"name": "far", "members": [{"node": "r1", "v4": "10.120.9.254/24"},
                                    {"node": "bird-far", "v4": f"{FAR_PEER}/24"}]},
    ],
}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab("diag", TOPOLOGY, wait=None) as built:
        yield built


@pytest.fixture(autouse=True)
def _dump_on_failure(request: pytest.FixtureRequest, lab: Lab) -> None:
    request.node.labs = [lab]


def info(lab: Lab, peer_ip: str) -> str:
    node = lab["node-1"]
    assert isinstance(node, BgpdNode)
    proc = subprocess.run([str(BGPD), "status", "--json", "--socket", str(node.socket)],
                          capture_output=True, text=True, timeout=10, check=False)
    sessions = json.loads(proc.stdout)["sessions"] if proc.stdout else []
    return next((str(s["info"]) for s in sessions if s["peerIP"] == peer_ip), "")


def wait_info(lab: Lab, peer_ip: str, *words: str) -> str:
    """Poll until the session's INFO holds every word; return it."""
    return wait_until(lambda: (text := info(lab, peer_ip)) and all(w in text for w in words) and text,
                      DEADLINE, f"INFO of {peer_ip} naming {words}", interval=0.5,
                      detail=lambda: f"INFO now: {info(lab, peer_ip)!r}\n{lab.dump()}")


def test_wrong_as_is_named_with_both_numbers(lab: Lab) -> None:
    text = wait_info(lab, AS_PEER, "OPEN error: bad peer AS (peer says AS 65021, we expect 65099)")
    assert "MD5" not in text, text


def test_wrong_password_is_named_with_the_kernel_evidence(lab: Lab) -> None:
    text = wait_info(lab, MD5_PEER, "MD5 password mismatch:", "segments with a wrong signature since")
    assert "no OPEN received" in text, text


def test_nobody_listening_is_connection_refused_not_md5(lab: Lab) -> None:
    text = wait_info(lab, NOBODY, f"connection refused: nothing listens on {NOBODY}:179")
    assert "MD5" not in text and "GTSM" not in text, text


def test_peer_too_many_hops_away_shows_gtsm_drops(lab: Lab) -> None:
    text = wait_info(lab, FAR_PEER, "GTSM:", "more than 1 hop(s) away (ttlSecurity)")
    assert "MD5" not in text, text
