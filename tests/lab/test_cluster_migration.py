"""The seeds' how-to, live, on 5 bgpd nodes sharing one etcd (topology cluster5-etcd, etcd inside the
lab): every step is done with bgpd's own commands (`bgpd patch/label/apply --store etcd://...`, run in
the etcd node's namespace) while every node's workload probes every other node's workload ten times a
second (nslab.probe: UDP, the lab has no ping). Lost probes are counted per step; the mesh-to-route-
reflector migration, done exactly as Calico's how-to says, must lose none.

Then an etcd outage (`BGPD_ETCD_OUTAGE` seconds, default 20; 60 was run by hand): sessions and routes
unaffected, status stale with the reason, and a change made after etcd returns is applied. And
CalicoNodeStatus: bgpd fills the status of its node's resource, in etcd and in the directory store.

The steps share one lab (module scope), so they run in this file's order.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from bgpd.control.client import request
from tests.lab.conftest import PREFIX, TOKEN, TOPOLOGIES, LabFactory, _missing_tools

from nslab import BgpdNode, EtcdNode, Lab, holds_for, wait_until  # isort: skip
from nslab.probe import Loss, Probers, lost  # isort: skip

pytestmark = pytest.mark.lab
NODES = [f"node-{i}" for i in range(1, 6)]
IPS = {n: f"10.100.0.1{i}" for i, n in enumerate(NODES, 1)}
TOR, RACK_TOR = "10.100.0.1", "10.100.0.3"
RR_NODES = ("node-4", "node-5")
RACK1 = ("node-1", "node-2", "node-3")
OUTAGE = float(os.environ.get("BGPD_ETCD_OUTAGE", "20"))
CONVERGE = 60.0


@dataclass
class Cluster:
    lab: Lab
    probers: Probers
    mark: float = 0.0  # where the next step's window starts
    losses: dict[str, Loss] = field(default_factory=dict)

    @property
    def etcd(self) -> EtcdNode:
        node = self.lab["etcd"]
        assert isinstance(node, EtcdNode)
        return node

    def node(self, name: str) -> BgpdNode:
        node = self.lab[name]
        assert isinstance(node, BgpdNode)
        return node

    def status(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = request(self.node(name).socket, "status", timeout=5)
        return result

    def sessions(self, name: str) -> dict[str, str]:
        return {s["peerIP"]: s["state"] for s in self.status(name)["sessions"]}

    def bgpd(self, *args: str) -> str:
        return str(self.etcd.bgpd(*args).stdout)

    def step(self, name: str, action: Callable[[], object], ready: Callable[[], bool]) -> Loss:
        """Do a step, wait until ``ready``; the loss counted is that of the probes sent from the end
        of the previous step to the moment the step converged (all of them answered or lost by then)."""
        action()
        wait_until(ready, CONVERGE, f"step {name!r} converged", interval=0.3, detail=self.lab.dump)
        end = time.time()
        wait_until(lambda: self.probers.last_answer() > end + 1.0, 15, "probes answered after the step")
        self.losses[name] = loss = lost(self.probers.logs(), self.mark, end)
        self.mark = end
        return loss


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    missing = _missing_tools() + [t for t in ("/usr/bin/etcd", "/usr/bin/etcdctl") if not os.path.exists(t)]
    if missing:
        pytest.skip(f"LAB TEST SKIPPED: missing {', '.join(missing)} (install bird2, frr and etcd-server)")
    lab = Lab(TOPOLOGIES / "cluster5-etcd.yaml", name=f"t{TOKEN}-cmig", prefix=PREFIX)
    probers = Probers({n: (lab[n].ns, f"10.244.{i}.1") for i, n in enumerate(NODES, 1)},
                      lab.run_dir / "probes")
    try:
        lab.up()
        c = Cluster(lab, probers)
        wait_until(lambda: all(_mesh_up(c, n) for n in NODES), CONVERGE, "the mesh", detail=lab.dump)
        probers.start()
        wait_until(lambda: _all_pairs_answer(probers), 30, "every workload answering every other")
        c.mark = time.time()
        yield c
    finally:
        probers.stop()
        lab.down()


@pytest.fixture(autouse=True)
def _dump_on_failure(request: pytest.FixtureRequest) -> None:
    if "cluster" in request.fixturenames:
        request.node.labs = [request.getfixturevalue("cluster").lab]  # read by conftest's failure report


def _mesh_up(c: Cluster, name: str) -> bool:
    sessions = c.sessions(name)
    return all(sessions.get(IPS[o]) == "up" for o in NODES if o != name)


def _all_pairs_answer(probers: Probers) -> bool:
    answered = set()
    for path in probers.logs():
        if path.exists():
            answered |= {(path.stem, line.split()[1]) for line in path.read_text().splitlines()
                         if line.startswith("R ")}
    return len(answered) == len(NODES) * (len(NODES) - 1)


def _established(c: Cluster, name: str, peers: set[str], as_number: int | None = None) -> bool:
    """Exactly these sessions, all up (and the node runs with ``as_number``)."""
    status = c.status(name)
    sessions = {s["peerIP"]: s["state"] for s in status["sessions"]}
    return sessions == dict.fromkeys(peers, "up") and (as_number is None or status["asNumber"] == as_number)


def _routes_everywhere(c: Cluster, prefixes: dict[str, set[str]]) -> bool:
    """Every node has a kernel route for every other node's block (and the extra prefixes named)."""
    for i, name in enumerate(NODES, 1):
        blocks = {f"10.244.{j}.0/26" for j in range(1, 6) if j != i} | prefixes.get(name, set())
        if not blocks <= set(c.node(name).routes()):
            return False
    return True


def _apply(c: Cluster, *documents: dict[str, Any]) -> None:
    c.etcd.bgpd("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))


def peer(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": name}, "spec": spec}


def mesh_of(name: str) -> set[str]:
    return {IPS[o] for o in NODES if o != name}


# ---------------------------------------------------------------- CalicoNodeStatus (etcd)


def test_calico_node_status_is_filled_in_etcd(cluster: Cluster) -> None:
    _apply(cluster, {"apiVersion": "projectcalico.org/v3", "kind": "CalicoNodeStatus",
                     "metadata": {"name": "node-2-status"},
                     "spec": {"node": "node-2", "classes": ["Agent", "BGP", "Routes"],
                              "updatePeriodSeconds": 2}})

    def status() -> dict[str, Any] | None:
        body = json.loads(cluster.bgpd("get", "caliconodestatus", "node-2-status", "-o", "json"))
        got: dict[str, Any] = body.get("status") or {}
        peers = (got.get("bgp") or {}).get("peersV4") or []
        return got if len(peers) == 4 and all(p["state"] == "Established" for p in peers) else None

    got = wait_until(status, 30, "node-2's CalicoNodeStatus status with 4 established peers")
    assert got["agent"]["birdV4"]["state"] == "Ready" and got["agent"]["birdV4"]["routerID"] == IPS["node-2"]
    assert got["bgp"]["numberEstablishedV4"] == 4 and got["bgp"]["numberNotEstablishedV4"] == 0
    types = {p["peerIP"]: p["type"] for p in got["bgp"]["peersV4"]}
    assert types == dict.fromkeys(mesh_of("node-2"), "NodeMesh")
    fib = {r["destination"]: r for r in got["routes"]["routesV4"] if r["type"] == "FIB"}
    assert fib["10.244.1.0/26"]["gateway"] == IPS["node-1"]
    assert fib["10.244.1.0/26"]["learnedFrom"] == {"sourceType": "NodeMesh", "peerIP": IPS["node-1"]}
    assert fib["10.244.2.0/26"]["learnedFrom"] == {"sourceType": "Static"}


# ---------------------------------------------------------------- the how-to


def test_how_to_steps_and_the_zero_loss_migration(cluster: Cluster,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    c = cluster
    # 1. Change the default AS number (every mesh session resets; graceful restart keeps the routes).
    c.step("default AS 64513",
           lambda: c.bgpd("patch", "bgpconfiguration", "default", "-p", '{"spec":{"asNumber":64513}}'),
           lambda: all(_established(c, n, mesh_of(n), 64513) for n in NODES) and _routes_everywhere(c, {}))
    # 2. Change the AS number of one node.
    c.step("node-1 AS 64514",
           lambda: c.bgpd("patch", "node", "node-1", "-p", '{"spec":{"bgp":{"asNumber":64514}}}'),
           lambda: _established(c, "node-1", mesh_of("node-1"), 64514)
           and all(_established(c, n, mesh_of(n), 64513) for n in NODES[1:]) and _routes_everywhere(c, {}))
    # 3. A global peer: the ToR (BIRD, AS 64567) announcing 10.99.0.0/16.
    tor = {n: {"10.99.0.0/16"} for n in NODES}
    c.step("global peer",
           lambda: _apply(c, peer("my-global-peer", {"peerIP": TOR, "asNumber": 64567})),
           lambda: all(_established(c, n, mesh_of(n) | {TOR}) for n in NODES) and _routes_everywhere(c, tor))
    # 4. The rack's peer, by node selector, on the nodes labelled rack=rack-1.
    rack = {n: ({RACK_TOR} if n in RACK1 else set()) for n in NODES}

    def label_rack() -> None:
        for n in RACK1:
            c.bgpd("label", "node", n, "rack=rack-1")
        _apply(c, peer("rack1-tor", {"peerIP": RACK_TOR, "asNumber": 63400,
                                     "nodeSelector": "rack == 'rack-1'"}))

    c.step("rack selector peer", label_rack,
           lambda: all(_established(c, n, mesh_of(n) | {TOR} | rack[n]) for n in NODES)
           and _routes_everywhere(c, tor))
    # 5. "Change from node-to-node mesh to route reflectors without any traffic disruption": provision
    # the route reflectors and their BGPPeer, wait for those sessions, then disable the mesh.
    def rr_peers(n: str) -> set[str]:
        return {IPS[o] for o in NODES if o != n and (o in RR_NODES or n in RR_NODES)}

    def migrate() -> None:
        for n in RR_NODES:
            c.bgpd("patch", "node", n, "-p", '{"spec":{"bgp":{"routeReflectorClusterID":"244.0.0.1"}}}')
            c.bgpd("label", "node", n, "route-reflector=true")
        _apply(c, peer("peer-with-route-reflectors",
                       {"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"}))
        wait_until(lambda: all(all(c.sessions(n).get(ip) == "up" for ip in rr_peers(n)) for n in NODES),
                   CONVERGE, "the route reflector sessions Established", interval=0.3, detail=c.lab.dump)
        c.bgpd("patch", "bgpconfiguration", "default", "-p", '{"spec":{"nodeToNodeMeshEnabled":false}}')

    c.step("mesh -> route reflectors", migrate,
           lambda: all(_established(c, n, rr_peers(n) | {TOR} | rack[n]) for n in NODES)
           and _routes_everywhere(c, tor))
    with capsys.disabled():
        print("\nlost probes per step (10 probes/s per ordered pair, 20 pairs):")
        for name, loss in c.losses.items():
            print(f"  {name:28} sent {loss.sent:6}  lost {loss.lost:4}  {dict(loss.by_target) or ''}")
    assert c.losses["mesh -> route reflectors"].lost == 0, c.losses
    assert c.losses["default AS 64513"].lost == 0 and c.losses["node-1 AS 64514"].lost == 0, c.losses


# ---------------------------------------------------------------- etcd outage


def test_etcd_outage_keeps_sessions_and_routes_then_changes_apply(
        cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    c = cluster
    before = {n: c.sessions(n) for n in NODES}
    assert all(set(s.values()) == {"up"} for s in before.values()), before
    flaps = {n: {ip: c.node(n).transitions(ip) for ip in before[n]} for n in NODES}
    start = time.time()
    c.etcd.stop()
    try:
        wait_until(lambda: all(c.status(n)["store"]["stale"] for n in NODES), 30, "every node's store stale")
        reasons = {n: c.status(n)["store"]["errors"] for n in NODES}
        assert all(r and "etcd" in " ".join(r).lower() for r in reasons.values()), reasons
        # the outage itself: every session stays up on every node the whole time
        assert holds_for(lambda: all(c.sessions(n) == before[n] for n in NODES),
                         max(0.0, OUTAGE - (time.time() - start)), interval=1.0), c.lab.status()
    finally:
        c.etcd.start()
    back = time.time()
    wait_until(lambda: not any(c.status(n)["store"]["stale"] for n in NODES), 45, "every store fresh again")
    wait_until(lambda: c.probers.last_answer() > back + 1.0, 15, "probes answered after the outage")
    loss = lost(c.probers.logs(), start, back)
    # a change made after etcd returned is applied: node-3 gets a second block, everyone routes to it
    c.node("node-3").announce("10.244.33.0/26")
    wait_until(lambda: all("10.244.33.0/26" in c.node(n).routes() for n in NODES if n != "node-3"), 30,
               "the block added after the outage routed everywhere", detail=c.lab.dump)
    with capsys.disabled():
        print(f"\netcd outage of {back - start:.0f} s: sent {loss.sent}, lost {loss.lost}; "
              f"stale reason on node-1: {reasons['node-1']}")
    assert loss.lost == 0, loss
    assert {n: {ip: c.node(n).transitions(ip) for ip in before[n]} for n in NODES} == flaps


# ---------------------------------------------------------------- CalicoNodeStatus (directory store)


DIR_LAB: dict[str, Any] = {
    "resources": [
        {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration", "metadata": {"name": "default"},
         "spec": {"asNumber": 64512, "nodeToNodeMeshEnabled": True}},
        {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "pool"},
         "spec": {"cidr": "10.244.0.0/16"}},
        {"apiVersion": "projectcalico.org/v3", "kind": "CalicoNodeStatus", "metadata": {"name": "n1-status"},
         "spec": {"node": "node-1", "classes": ["BGP", "Routes"], "updatePeriodSeconds": 0}},
    ],
    "nodes": {"node-1": {"kind": "bgpd", "announce": ["10.244.1.0/26"]},
              "node-2": {"kind": "bgpd", "announce": ["10.244.2.0/26"]}},
    "lans": [{"name": "lan", "members": [{"node": "node-1", "v4": "10.101.0.11/24"},
                                         {"node": "node-2", "v4": "10.101.0.12/24"}]}],
}


def test_calico_node_status_is_filled_in_the_directory_store(lab: LabFactory) -> None:
    """updatePeriodSeconds 0: written when the resource appears (and its spec changes), not periodically;
    the node's first status may predate its session, so the peer's state is whatever it was then."""
    built = lab(DIR_LAB, name="cstat", wait=30)
    path = built.run_dir / "resources" / "00-topology.yaml"

    def status() -> dict[str, Any] | None:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CalicoNodeStatus"]
        return docs[0].get("status") if docs else None

    got = wait_until(status, 30, "the status written into the resource file")
    assert set(got) == {"lastUpdated", "bgp", "routes"}
    assert [p["peerIP"] for p in got["bgp"]["peersV4"]] == ["10.101.0.12"]
    assert {"destination": "10.244.1.0/26", "gateway": "", "interface": "blackhole", "type": "FIB",
            "learnedFrom": {"sourceType": "Static"}} in got["routes"]["routesV4"]
